/* libFuzzer target: the CSV loader (dpt_data_load with data.format csv). The first byte chooses
 * the case, the rest is the CSV file:
 *   bit 0     data.csv_header
 *   bit 1     data.sharding sharded (2 ranks), bit 2 which rank
 *   bits 3-4  data.scaling: unit, standardize, none, unit
 *   bit 5     data.validation_fraction 0.5 (else 0)
 *   bit 6     the same file is also the test set
 *   bit 7     gzip the file in memory first
 * The second byte chooses the columns and labels (CSV as people write it):
 *   bits 0-1  data.label_column: "" (first), "-1" (last), "y" (by name), "1"
 *   bits 2-3  data.feature_columns: "", "1:", "a, b, c" (names), "0:3"
 *   bit 4     data.class_names "u, v, w, x" (string labels in a stated order)
 *   bit 5     predict's reader: no labels, standardized with preset statistics
 * The model is 3 inputs and 4 classes. A load that succeeds must hold finite features and
 * labels below 4. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "fuzz_common.h"

#define FEATURES 3
#define CLASSES 4

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 16)
        return 0;
    init_once();
    const unsigned mode = data[0], cols = data[1];
    fuzz_write_maybe_gzip(csv_path, data + 2, size - 2, (mode >> 7) & 1);
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

    dpt_data d;
    dpt_error err;
    static const char *const labels[4] = {"", "-1", "y", "1"};
    static const char *const features[4] = {"", "1:", "a, b, c", "0:3"};
    snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "%s", labels[cols & 3]);
    snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "%s",
             features[(cols >> 2) & 3]);
    if ((cols >> 4) & 1)
        snprintf(cfg.data.class_names, sizeof cfg.data.class_names, "u, v, w, x");
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
        /* standardizing finite floats near FLT_MAX may overflow to inf: that is arithmetic,
         * not a loader bug, so finiteness is checked only without scaling */
        fuzz_check_split("fuzz_csv", &d.train, "train", FEATURES, CLASSES, !scaled);
        fuzz_check_split("fuzz_csv", &d.val, "val", FEATURES, CLASSES, !scaled);
        fuzz_check_split("fuzz_csv", &d.test, "test", FEATURES, CLASSES, !scaled);
    }
    dpt_data_free(&d);
    return 0;
}
