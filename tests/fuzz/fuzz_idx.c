/* libFuzzer target: the IDX loader (dpt_data_load with data.format idx). The first byte chooses
 * the case, the rest is file contents:
 *   bits 0-1  0: the rest is the images file, beside a fixed valid labels file
 *             1: the rest is the labels file, beside a fixed valid images file
 *             2, 3: both: byte 1 is how many of the remaining bytes are the images file
 *   bit 2     data.sharding sharded (2 ranks), bit 3 which rank
 *   bits 4-5  data.scaling: unit, standardize, none, unit
 *   bit 6     data.validation_fraction 0.5 (else 0)
 *   bit 7     gzip the fuzzed file(s) in memory first (the bytes as they are may be gzip too:
 *             the loader detects gzip by its magic)
 * The model is 4 inputs (2x2 images) and 3 classes. A load that succeeds must hold what the
 * header promised: rows, labels below 3, features in range. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "fuzz_common.h"

#define FEATURES 4
#define CLASSES 3

static dpt_config base;
static const char *images_path, *labels_path, *fixed_images, *fixed_labels;

static void init_once(void)
{
    static int ready;
    if (ready)
        return;
    ready = 1;
    dpt_config_defaults(&base);
    dpt_error err;
    if (dpt_config_set(&base, "model.layers=[4, 5, 3]", &err) ||
        dpt_config_set(&base, "data.test_images=", &err) ||
        dpt_config_set(&base, "data.test_labels=", &err)) {
        fprintf(stderr, "fuzz_idx: %s\n", err.msg);
        abort();
    }
    images_path = fuzz_temp_path("images.idx");
    labels_path = fuzz_temp_path("labels.idx");
    fixed_images = fuzz_temp_path("fixed_images.idx");
    fixed_labels = fuzz_temp_path("fixed_labels.idx");
    /* three 2x2 images and their labels 0, 1, 2 */
    static const unsigned char images[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                           0, 64, 128, 255, 1, 2, 3, 4, 250, 0, 9, 17};
    static const unsigned char labels[] = {0, 0, 8, 1, 0, 0, 0, 3, 0, 1, 2};
    fuzz_write_file(fixed_images, images, sizeof images);
    fuzz_write_file(fixed_labels, labels, sizeof labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16)
        return 0;
    init_once();
    const unsigned mode = data[0];
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    const int gzip = (mode >> 7) & 1;
    dpt_config cfg;
    memcpy(&cfg, &base, sizeof cfg);
    switch (mode & 3) {
    case 0:
        fuzz_write_maybe_gzip(images_path, rest, n, gzip);
        snprintf(cfg.data.train_images, sizeof cfg.data.train_images, "%s", images_path);
        snprintf(cfg.data.train_labels, sizeof cfg.data.train_labels, "%s", fixed_labels);
        break;
    case 1:
        fuzz_write_maybe_gzip(labels_path, rest, n, gzip);
        snprintf(cfg.data.train_images, sizeof cfg.data.train_images, "%s", fixed_images);
        snprintf(cfg.data.train_labels, sizeof cfg.data.train_labels, "%s", labels_path);
        break;
    default: {
        size_t cut = n > 0 ? rest[0] : 0;
        rest += n > 0;
        n -= n > 0;
        if (cut > n)
            cut = n;
        fuzz_write_maybe_gzip(images_path, rest, cut, gzip);
        fuzz_write_maybe_gzip(labels_path, rest + cut, n - cut, gzip);
        snprintf(cfg.data.train_images, sizeof cfg.data.train_images, "%s", images_path);
        snprintf(cfg.data.train_labels, sizeof cfg.data.train_labels, "%s", labels_path);
        break;
    }
    }
    cfg.data.sharding = (mode >> 2) & 1 ? DPT_SHARDING_SHARDED : DPT_SHARDING_REPLICATED;
    static const dpt_scaling scalings[4] = {DPT_SCALING_UNIT, DPT_SCALING_STANDARDIZE,
                                            DPT_SCALING_NONE, DPT_SCALING_UNIT};
    cfg.data.scaling = scalings[(mode >> 4) & 3];
    cfg.data.validation_fraction = (mode >> 6) & 1 ? 0.5 : 0.0;
    const int rank = (mode >> 3) & 1, ranks = cfg.data.sharding == DPT_SHARDING_SHARDED ? 2 : 1;

    dpt_data d;
    dpt_error err;
    const dpt_data_spec spec = dpt_data_spec_from_config(&cfg);
    int rc = dpt_data_load(&spec, ranks == 2 ? rank : 0, ranks, NULL, NULL, &d, &err);
    fuzz_check_error(rc, &err, "dpt_data_load");
    if (rc == DPT_OK) {
        fuzz_check_split("fuzz_idx", &d.train, "train", FEATURES, CLASSES, 1);
        fuzz_check_split("fuzz_idx", &d.val, "val", FEATURES, CLASSES, 1);
        fuzz_check_split("fuzz_idx", &d.test, "test", FEATURES, CLASSES, 1);
        if (d.test.n != 0) {
            fprintf(stderr, "fuzz_idx: a test split from no test files\n");
            abort();
        }
    }
    dpt_data_free(&d);
    return 0;
}
