/* The batch source of the training step: this rank's rows of each global batch, in backend
 * memory, in the order of the epoch's seeded permutation. Kept apart from the step so that where
 * the rows live (resident on the device, or staged through pinned memory) is decided once here. */
#ifndef DPT_BATCH_H
#define DPT_BATCH_H

#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "data.h"
#include "error.h"

/* What the batch source needs to know of the run. */
typedef struct {
    int rows;                   /* B: this rank's rows of the global batch */
    int I;                      /* features per row (model.widths[0]) */
    int64_t row0;               /* first row of this rank's slice within the global batch */
    int batch_size;             /* the global batch */
    int64_t steps_per_epoch;
    int sharded;                /* 1: the training rows are this rank's shard */
    int shuffle;                /* data.shuffle */
    uint64_t seed;              /* run.seed */
    int rank;                   /* keys a sharded shuffle */
    dpt_resident resident;      /* data.device_resident (backends without host memory) */
} dpt_batch_spec;

typedef struct {
    dpt_batch_spec spec;
    dpt_backend *be;
    const dpt_dataset *train;   /* the training rows on the host */
    int64_t *perm;              /* (n train rows) this epoch's order, host */
    int perm_epoch;             /* epoch perm was drawn for; -1 = none */
    const float *x_train;       /* (n, I) training rows in backend memory, unless staged */
    const int32_t *y_train;     /* (n) */
    float *x_dev;               /* device copies of the training rows (not host-memory backends) */
    int32_t *y_dev;
    int64_t *idx;               /* (rows) backend memory: the rows a gather picks (CPU) */
    int64_t *perm_dev;          /* (n train rows) device memory: perm, uploaded once an epoch
                                 * so that a step gathers at an offset into it without a copy */
    float *xb;                  /* (rows, I) backend memory, the gather's destination; borrowed */
    int32_t *yb;                /* (rows) */
    int staged;                 /* 1: batches staged through pinned memory, double-buffered */
    float *pin_x[2];            /* (rows, I) pinned host memory, per slot */
    int32_t *pin_y[2];          /* (rows) */
    float *stage_x[2];          /* (rows, I) backend memory, per slot */
    int32_t *stage_y[2];        /* (rows) */
    int64_t staged_step[2];     /* global step whose batch a slot holds; -1 none */
} dpt_batch;

/* Resident when the backend works in host memory or the training rows fit on the device (as
 * data.device_resident allows), staged otherwise. xb and yb (rows of the batch, backend memory)
 * receive the resident path's gathers; the caller keeps them. Returns DPT_ERUNTIME when memory
 * runs out, or when data.device_resident is on and the rows do not fit. */
int dpt_batch_init(dpt_batch *b, const dpt_batch_spec *spec, dpt_backend *be,
                   const dpt_dataset *train, float *xb, int32_t *yb, dpt_error *err);
void dpt_batch_free(dpt_batch *b);

/* Batch s of epoch `epoch` (global step `step`) in backend memory: *x (rows, I), *y (rows).
 * Staged, it also starts the copy of the epoch's next batch. */
void dpt_batch_next(dpt_batch *b, int epoch, int64_t s, int64_t step, const float **x,
                    const int32_t **y);

/* The step's compute queued so far is the last reader of its batch (staged: the slot may be
 * refilled once that work is done). */
void dpt_batch_done(dpt_batch *b, int64_t step);

#endif
