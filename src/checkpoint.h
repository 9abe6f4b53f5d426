/* checkpoint.bin: parameters, optimizer state and position of a run, written atomically
 * (temp file, fsync, rename, fsync of the directory) so a crash at any moment leaves either the
 * old or the new checkpoint, never a mix. Layout (little-endian) in docs/checkpoint.md. */
#ifndef DPT_CHECKPOINT_H
#define DPT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

#define DPT_CKPT_MAGIC "DPTRCKPT"
#define DPT_CKPT_VERSION 1u

typedef struct {
    uint32_t n_layers;
    uint32_t widths[DPT_MAX_LAYERS + 1];
    uint32_t epoch;          /* completed epochs */
    uint64_t step;           /* optimizer steps taken */
    char optimizer[8];       /* "sgd", "adam", "adamw", NUL-padded */
    uint32_t n_state;        /* optimizer state copies of the parameter layout */
    uint64_t n_params;
    uint64_t seed;           /* run.seed: with step, the whole state of the counter-based RNG */
} dpt_ckpt_header;

/* Writes header, params (n_params floats) and state (n_state * n_params floats) from host
 * memory to path atomically. A failure leaves any previous file at path untouched. */
int dpt_checkpoint_save(const char *path, const dpt_ckpt_header *h, const float *params,
                        const float *state, dpt_error *err);

/* Reads and checks the header (magic, version, sizes, CRC of the payload) and, when params is
 * not NULL, the payload into params (n_params) and state (n_state * n_params). Refuses a
 * truncated or corrupt file with DPT_EUSAGE naming what is wrong. */
int dpt_checkpoint_load(const char *path, dpt_ckpt_header *h, float *params, float *state,
                        dpt_error *err);

/* Checks that h matches the configured model and optimizer; DPT_EUSAGE naming the mismatch. */
int dpt_checkpoint_check(const dpt_ckpt_header *h, const dpt_config *cfg, const char *path,
                         dpt_error *err);

#endif
