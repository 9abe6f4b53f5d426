/* libFuzzer target: the CSV loader (dpt_data_load with data.format csv) and the reader of
 * dptrain predict and eval (dpt_csv_stream) on the file the training read. The first three
 * bytes choose the case, the rest is the CSV file:
 * byte 0: the load
 *   bit 0     data.csv_header
 *   bit 1     data.sharding sharded (2 ranks), bit 2 which rank
 *   bits 3-4  data.scaling: unit, standardize, none, unit
 *   bit 5     data.validation_fraction 0.5 (else 0)
 *   bit 6     the same file is also the test set
 *   bit 7     gzip the file in memory first
 * byte 1: the columns and labels (CSV as people write it)
 *   bits 0-1  data.label_column: "" (first), "-1" (last), "y" (by name), "1"; regression: the
 *             target columns "-1", "y", "y, z" (two, by name), "1, 2" (two, by index)
 *   bits 2-3  data.feature_columns: "", "1:", "a, b, c" (names), "0:3"
 *   bit 4     data.class_names "u, v, w, x" (string labels in a stated order); regression:
 *             data.target_scaling standardize
 *   bit 5     no labels (predict's reader), standardized with preset statistics
 * byte 2: the task, the missing values, the lists, predict's and eval's reader
 *   bit 0     data.task regression (real targets; 1 or 2 by byte 1)
 *   bit 1     data.missing mean
 *   bit 2     the names in those lists quoted as CSV fields, with commas and doubled quotes:
 *             "y,1" for y, "a,1" and "c ""q""" for a and c, "u,1" and "w ""x""" for u and w,
 *             "z ""q""" for z
 *   bit 3     after a load that succeeds, read the same file again with dpt_csv_stream, as
 *             predict (byte 1's bit 5) or eval do: the spec predict.c builds from model.json
 *             (the header's names quoted into lists, the class names in id order, the
 *             statistics and means), 7 rows a batch; with the rows kept in order (one rank, no
 *             validation split) every row must be the one the load read, bitwise.
 * The model is 3 inputs and 4 classes (or 1-2 targets). A load that succeeds must hold finite
 * features (without scaling), labels below 4, targets in their table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "csv.h"
#include "data.h"
#include "fuzz_common.h"

#define FEATURES 3
#define CLASSES 4
#define BATCH 7

static dpt_config base;
static const char *csv_path;

static void init_once(void)
{
    static int ready;
    if (ready)
        return;
    ready = 1;
    dpt_config_defaults(&base);
    dpt_error err;
    if (dpt_config_set(&base, "model.layers=[3, 5, 4]", &err) ||
        dpt_config_set(&base, "data.format=csv", &err)) {
        fprintf(stderr, "fuzz_csv: %s\n", err.msg);
        abort();
    }
    csv_path = fuzz_temp_path("data.csv");
    snprintf(base.data.train_csv, sizeof base.data.train_csv, "%s", csv_path);
}

static void fail(const char *what, int64_t row)
{
    fprintf(stderr, "fuzz_csv: %s (row %lld)\n", what, (long long)row);
    abort();
}

/* The columns of bytes 1 and 2 into cfg; returns the model's outputs (classes or targets). */
static int set_columns(dpt_config *cfg, unsigned cols, unsigned opts)
{
    static const char *const labels[2][4] = {{"", "-1", "y", "1"}, {"", "-1", "\"y,1\"", "1"}};
    static const char *const targets[2][4] = {{"-1", "y", "y, z", "1, 2"},
                                              {"-1", "\"y,1\"", "\"y,1\", \"z \"\"q\"\"\"",
                                               "1, 2"}};
    static const char *const features[2][4] = {{"", "1:", "a, b, c", "0:3"},
                                               {"", "1:", "\"a,1\", b, \"c \"\"q\"\"\"", "0:3"}};
    static const char *const classes[2] = {"u, v, w, x", "\"u,1\", v, \"w \"\"x\"\"\", x"};
    const int quoted = (opts >> 2) & 1, regression = opts & 1;
    snprintf(cfg->data.feature_columns, sizeof cfg->data.feature_columns, "%s",
             features[quoted][(cols >> 2) & 3]);
    cfg->data.missing = (opts >> 1) & 1 ? DPT_MISSING_MEAN : DPT_MISSING_ERROR;
    if (!regression) {
        snprintf(cfg->data.label_column, sizeof cfg->data.label_column, "%s",
                 labels[quoted][cols & 3]);
        if ((cols >> 4) & 1)
            snprintf(cfg->data.class_names, sizeof cfg->data.class_names, "%s",
                     classes[quoted]);
        return CLASSES;
    }
    cfg->data.task = DPT_TASK_REGRESSION;
    snprintf(cfg->data.label_column, sizeof cfg->data.label_column, "%s",
             targets[quoted][cols & 3]);
    cfg->data.target_scaling =
        (cols >> 4) & 1 ? DPT_TARGET_SCALING_STANDARDIZE : DPT_TARGET_SCALING_NONE;
    const int T = (cols & 3) >= 2 ? 2 : 1;
    cfg->model.widths[cfg->model.n_layers] = T;
    return T;
}

/* A regression's split: its rows index its target table, whose targets are finite unless
 * standardized (a standardized float near FLT_MAX may overflow: arithmetic, not the loader). */
static void check_targets(const dpt_dataset *d, int T, int check_finite)
{
    if (d->n < 0 || d->n > d->n_total || d->features != FEATURES ||
        (d->n > 0 && (!d->x || !d->y || !d->t || d->targets != T)))
        fail("inconsistent regression split", d->n);
    for (int64_t i = 0; i < d->n; i++) {
        if (d->y[i] < 0)
            fail("negative target row", i);
        for (int k = 0; k < T; k++) /* out of the table: ASan stops here */
            if (check_finite && !isfinite(d->t[(size_t)d->y[i] * T + k]))
                fail("target not finite", i);
    }
}

/* names joined as predict.c joins model.json's names into data.* lists */
static void join(char *out, size_t cap, char *const *names, int n)
{
    out[0] = '\0';
    for (int k = 0; k < n; k++)
        if (dpt_csv_list_append_name(out, cap, names[k]))
            fail("a list of names does not fit", k);
}

/* predict's and eval's reader on the training file (byte 2's bit 3): the spec as predict.c's
 * load_input builds it from model.json, which holds what the load found. */
static void check_stream(const dpt_data_spec *train, const dpt_data *d, int T, int same_rows)
{
    static char features[4096], label[4096], classes[4096];
    const int regression = T > 0, C = regression ? T : CLASSES;
    dpt_data_spec s = *train;
    s.test_csv = "";
    s.validation_fraction = 0.0;
    s.sharding = DPT_SHARDING_REPLICATED;
    if (d->feature_names) {
        join(features, sizeof features, d->feature_names, FEATURES);
        s.feature_columns = features;
    }
    if (d->target_names || d->label_name) {
        join(label, sizeof label, d->target_names ? d->target_names : &d->label_name,
             d->target_names ? T : 1);
        s.label_column = label;
    }
    if (d->class_names) {
        join(classes, sizeof classes, d->class_names, CLASSES);
        s.class_names = classes;
    }
    if (d->mean) {
        s.mean = d->mean;
        s.std = d->std;
    }
    s.fill = d->fill;
    s.t_mean = d->t_mean;
    s.t_std = d->t_std;
    float x[BATCH * FEATURES], t[BATCH * 2];
    int32_t y[BATCH];
    dpt_csv_stream *st;
    dpt_error err;
    int rc = dpt_csv_stream_open(&s, csv_path, &st, &err), got = 1;
    fuzz_check_error(rc, &err, "dpt_csv_stream_open");
    int64_t row = 0;
    while (!rc && got > 0) {
        rc = dpt_csv_stream_read(st, x, s.no_labels || regression ? NULL : y,
                                 regression && !s.no_labels ? t : NULL, BATCH, &got, &err);
        fuzz_check_error(rc, &err, "dpt_csv_stream_read");
        if (rc)
            break;
        if (got < 0 || got > BATCH)
            fail("a batch of a wrong size", row);
        for (int i = 0; i < got && same_rows; i++, row++) {
            if (row >= d->train.n)
                fail("predict's reader reads more rows than the training", row);
            if (memcmp(x + i * FEATURES, d->train.x + row * FEATURES, sizeof x[0] * FEATURES))
                fail("predict's reader reads other features than the training", row);
            if (!s.no_labels && !regression && y[i] != d->train.y[row])
                fail("eval's reader reads another label than the training", row);
            for (int k = 0; !s.no_labels && regression && !d->t_mean && k < C; k++)
                if (memcmp(&t[i * C + k], &d->train.t[(size_t)d->train.y[row] * C + k],
                           sizeof t[0]))
                    fail("eval's reader reads another target than the training", row);
        }
    }
    if (!rc && same_rows && row != d->train.n)
        fail("predict's reader reads fewer rows than the training", row);
    dpt_csv_stream_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 1 << 16)
        return 0;
    init_once();
    const unsigned mode = data[0], cols = data[1], opts = data[2];
    fuzz_write_maybe_gzip(csv_path, data + 3, size - 3, (mode >> 7) & 1);
    dpt_config cfg;
    memcpy(&cfg, &base, sizeof cfg);
    cfg.data.csv_header = mode & 1;
    cfg.data.sharding = (mode >> 1) & 1 ? DPT_SHARDING_SHARDED : DPT_SHARDING_REPLICATED;
    static const dpt_scaling scalings[4] = {DPT_SCALING_UNIT, DPT_SCALING_STANDARDIZE,
                                            DPT_SCALING_NONE, DPT_SCALING_UNIT};
    cfg.data.scaling = scalings[(mode >> 3) & 3];
    cfg.data.validation_fraction = (mode >> 5) & 1 ? 0.5 : 0.0;
    if ((mode >> 6) & 1)
        snprintf(cfg.data.test_csv, sizeof cfg.data.test_csv, "%s", csv_path);
    const int sharded = cfg.data.sharding == DPT_SHARDING_SHARDED;
    const int outputs = set_columns(&cfg, cols, opts), T = opts & 1 ? outputs : 0;

    dpt_data d;
    dpt_error err;
    dpt_data_spec spec = dpt_data_spec_from_config(&cfg);
    static const double mean[FEATURES] = {0.5, -1.0, 2.0}, std[FEATURES] = {1.0, 0.5, 3.0};
    if ((cols >> 5) & 1) {
        spec.no_labels = 1;
        spec.mean = mean;
        spec.std = std;
    }
    int rc = dpt_data_load(&spec, sharded ? (mode >> 2) & 1 : 0, sharded ? 2 : 1, NULL, NULL, &d,
                           &err);
    fuzz_check_error(rc, &err, "dpt_data_load");
    if (rc == DPT_OK) {
        const int scaled = cfg.data.scaling == DPT_SCALING_STANDARDIZE;
        const dpt_dataset *splits[3] = {&d.train, &d.val, &d.test};
        for (int k = 0; k < 3; k++) {
            /* standardizing finite floats near FLT_MAX may overflow to inf: that is
             * arithmetic, not a loader bug, so finiteness is checked only without scaling */
            if (T)
                check_targets(splits[k], T,
                              cfg.data.target_scaling == DPT_TARGET_SCALING_NONE);
            else
                fuzz_check_split("fuzz_csv", splits[k], k ? (k == 1 ? "val" : "test") : "train",
                                 FEATURES, CLASSES, !scaled);
        }
        if ((opts >> 3) & 1)
            check_stream(&spec, &d, T, !sharded && cfg.data.validation_fraction == 0.0);
    }
    dpt_data_free(&d);
    return 0;
}
