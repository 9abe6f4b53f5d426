/* libFuzzer target: the checkpoint reader. The input is checkpoint.bin: dpt_checkpoint_load
 * reads the header alone, then (when the header's sizes are small) the whole file into buffers
 * sized from the header, once with and once without a state buffer, then dpt_checkpoint_check
 * compares the header with a fixed config. A header that loads must describe exactly the file's
 * size (docs/checkpoint.md: H + 4·P·(1+S) bytes) and parameters that its widths add up to. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "config.h"
#include "fuzz_common.h"

#define MAX_PARAMS (1u << 20) /* buffers allocated from a header: 4 MB each at most */

static dpt_config cfg;
static const char *path;

static void init_once(void)
{
    static int ready;
    if (ready)
        return;
    ready = 1;
    dpt_config_defaults(&cfg);
    dpt_error err;
    if (dpt_config_set(&cfg, "model.layers=[4, 3, 2]", &err) ||
        dpt_config_set(&cfg, "run.seed=7", &err)) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", err.msg);
        abort();
    }
    path = fuzz_temp_path("checkpoint.bin");
}

/* The header's promise, in arithmetic that cannot wrap: widths sum to n_params and the file
 * holds H + 4·P·(1+S) bytes. */
static void check_header(const dpt_ckpt_header *h, size_t file_size)
{
    unsigned __int128 expect = 0;
    for (uint32_t l = 0; l < h->n_layers; l++)
        expect += (unsigned __int128)h->widths[l + 1] * h->widths[l] + h->widths[l + 1];
    unsigned __int128 bytes = 68 + 4 * ((unsigned __int128)h->n_layers + 1) +
                              (unsigned __int128)4 * h->n_params * (1 + (unsigned __int128)h->n_state);
    if (h->n_layers < 1 || h->n_layers > DPT_MAX_LAYERS || h->n_state > 2 ||
        expect != h->n_params || bytes != file_size) {
        fprintf(stderr,
                "fuzz_checkpoint: a header that loads does not describe the file: L %u, "
                "P %llu, S %u, file %zu bytes\n",
                h->n_layers, (unsigned long long)h->n_params, h->n_state, file_size);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    init_once();
    fuzz_write_file(path, data, size);
    dpt_ckpt_header h;
    dpt_error err;
    int rc = dpt_checkpoint_load(path, &h, NULL, NULL, &err);
    fuzz_check_error(rc, &err, "dpt_checkpoint_load (header)");
    if (rc != DPT_OK)
        return 0;
    check_header(&h, size);
    if (h.n_params <= MAX_PARAMS) {
        size_t p = (size_t)h.n_params, s = p * h.n_state;
        float *params = malloc((p ? p : 1) * sizeof *params);
        float *state = malloc((s ? s : 1) * sizeof *state);
        if (!params || !state)
            abort();
        dpt_ckpt_header h2;
        rc = dpt_checkpoint_load(path, &h2, params, state, &err);
        fuzz_check_error(rc, &err, "dpt_checkpoint_load (full)");
        if (memcmp(&h, &h2, sizeof h) != 0) {
            fprintf(stderr, "fuzz_checkpoint: the header read twice differs\n");
            abort();
        }
        /* without a state buffer the reader still checks the CRC over the state it skips */
        int rc2 = dpt_checkpoint_load(path, &h2, params, NULL, &err);
        fuzz_check_error(rc2, &err, "dpt_checkpoint_load (no state)");
        if (rc2 != rc) {
            fprintf(stderr, "fuzz_checkpoint: with a state buffer %d, without %d\n", rc, rc2);
            abort();
        }
        free(params);
        free(state);
    }
    rc = dpt_checkpoint_check(&h, &cfg, path, &err);
    fuzz_check_error(rc, &err, "dpt_checkpoint_check");
    return 0;
}
