/* The batch source: every rank derives the same permutation of the training rows from the seed
 * each epoch and takes its slice of each global batch, either gathered by index from rows that
 * live in backend memory or copied through pinned host memory while the device computes. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* auto: the rows fit when they leave the reserve free for what is allocated later on the device
 * (NCCL's buffers at the first collective, cuBLAS's workspace), which a cudaMalloc that merely
 * succeeds would not: free - bytes >= max(256 MiB, 5 % of the device's memory). */
static int fits_with_headroom(dpt_backend *be, size_t bytes)
{
    size_t free_b = 0, total_b = 0;
    if (be->mem_info(be, &free_b, &total_b) != 0)
        return 1; /* unknown: let the allocation decide */
    size_t reserve = total_b / 20 > ((size_t)256 << 20) ? total_b / 20 : (size_t)256 << 20;
    return bytes <= free_b && free_b - bytes >= reserve;
}

/* The training rows go to the device once when they fit (each batch is then gathered there by
 * index); otherwise batches are staged through pinned host memory, two slots. */
static int place_rows(dpt_batch *b, dpt_error *err)
{
    dpt_backend *be = b->be;
    size_t n = (size_t)b->train->n;
    int I = b->spec.I, rows = b->spec.rows;
    size_t bytes = (n ? n : 1) * ((size_t)I * sizeof(float) + sizeof(int32_t));
    if (b->spec.resident == DPT_RESIDENT_ON ||
        (b->spec.resident == DPT_RESIDENT_AUTO && fits_with_headroom(be, bytes))) {
        b->x_dev = be->alloc(be, (n ? n : 1) * I * sizeof(float));
        b->y_dev = be->alloc(be, (n ? n : 1) * sizeof(int32_t));
    }
    if ((!b->x_dev || !b->y_dev) && b->spec.resident == DPT_RESIDENT_ON)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "data.device_resident: on, but the training set (%zu rows x %d "
                             "features) does not fit in %s memory: use auto or off",
                             n, I, be->name);
    if (b->x_dev && b->y_dev)
        b->perm_dev = be->alloc(be, (n ? n : 1) * sizeof(int64_t));
    if (b->x_dev && b->y_dev && !b->perm_dev && b->spec.resident == DPT_RESIDENT_ON)
        return dpt_error_set(err, DPT_ERUNTIME, "out of %s memory for the permutation (%zu "
                             "rows)", be->name, n);
    if (b->x_dev && b->y_dev && b->perm_dev) {
        be->upload(be, b->x_dev, b->train->x, n * I * sizeof(float));
        be->upload(be, b->y_dev, b->train->y, n * sizeof(int32_t));
        b->x_train = b->x_dev;
        b->y_train = b->y_dev;
        return DPT_OK;
    }
    be->free(be, b->x_dev);
    be->free(be, b->y_dev);
    be->free(be, b->perm_dev);
    b->x_dev = NULL;
    b->y_dev = NULL;
    b->perm_dev = NULL;
    b->staged = 1;
    for (int k = 0; k < 2; k++) {
        b->pin_x[k] = be->alloc_pinned(be, (size_t)rows * I * sizeof(float));
        b->pin_y[k] = be->alloc_pinned(be, (size_t)rows * sizeof(int32_t));
        b->stage_x[k] = be->alloc(be, (size_t)rows * I * sizeof(float));
        b->stage_y[k] = be->alloc(be, (size_t)rows * sizeof(int32_t));
        b->staged_step[k] = -1;
        if (!b->pin_x[k] || !b->pin_y[k] || !b->stage_x[k] || !b->stage_y[k])
            return dpt_error_set(err, DPT_ERUNTIME,
                                 "out of %s memory for the staged batch buffers (2 x %d rows x "
                                 "%d features)", be->name, rows, I);
    }
    /* alloc() zeroes on the compute stream, the uploads write these buffers on the copy stream,
     * which waits only for a slot's release: without this the first zeroing may land after the
     * first upload (caught by integration_staged under DPT_EMU_ASYNC=2) */
    be->sync(be);
    return DPT_OK;
}

int dpt_batch_init(dpt_batch *b, const dpt_batch_spec *spec, dpt_backend *be,
                   const dpt_dataset *train, float *xb, int32_t *yb, dpt_error *err)
{
    memset(b, 0, sizeof *b);
    b->spec = *spec;
    b->be = be;
    b->train = train;
    b->perm_epoch = -1;
    b->xb = xb;
    b->yb = yb;
    b->perm = malloc((size_t)(train->n > 0 ? train->n : 1) * sizeof(int64_t));
    b->idx = be->alloc(be, (size_t)spec->rows * sizeof(int64_t));
    if (!b->perm)
        return dpt_error_set(err, DPT_ERUNTIME, "out of host memory for the permutation");
    if (!b->idx)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "out of %s memory for the batch's row index (%d rows)", be->name,
                             spec->rows);
    if (be->host_memory) {
        b->x_train = train->x;
        b->y_train = train->y;
        return DPT_OK;
    }
    return place_rows(b, err);
}

void dpt_batch_free(dpt_batch *b)
{
    dpt_backend *be = b->be;
    if (be) {
        be->free(be, b->idx);
        be->free(be, b->x_dev);
        be->free(be, b->y_dev);
        be->free(be, b->perm_dev);
        for (int k = 0; k < 2; k++) {
            be->free_pinned(be, b->pin_x[k]);
            be->free_pinned(be, b->pin_y[k]);
            be->free(be, b->stage_x[k]);
            be->free(be, b->stage_y[k]);
        }
    }
    free(b->perm);
    memset(b, 0, sizeof *b);
}

/* This epoch's order of the training rows: Fisher-Yates driven by the counter-based RNG keyed
 * by (seed, epoch), so every rank (and a resumed run) draws the same permutation. Sharded data
 * is shuffled within each rank's shard. */
static void shuffle(dpt_batch *b, int epoch)
{
    int64_t n = b->train->n;
    for (int64_t i = 0; i < n; i++)
        b->perm[i] = i;
    if (b->spec.shuffle) {
        uint64_t key = b->spec.seed;
        if (b->spec.sharded)
            key = dpt_rng_mix(key ^ (uint64_t)(b->spec.rank + 1));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)dpt_rng_below(key, DPT_RNG_SHUFFLE, ((uint64_t)epoch << 40) | (uint64_t)i,
                                               (uint64_t)i + 1);
            int64_t tmp = b->perm[i];
            b->perm[i] = b->perm[j];
            b->perm[j] = tmp;
        }
    }
    b->perm_epoch = epoch;
}

/* Where batch s of the epoch starts in the permutation: this rank's slice of the global batch,
 * or of its own shard. */
static int64_t first_row(const dpt_batch *b, int64_t s)
{
    return b->spec.sharded ? s * b->spec.rows : s * b->spec.batch_size + b->spec.row0;
}

/* Staged batches: the host gathers batch `step` (its rows of epoch `epoch`, in-epoch index s)
 * into slot's pinned buffers and queues their copy to the device, which runs on the copy stream
 * while the compute stream works on the other slot. */
static void stage_batch(dpt_batch *b, int epoch, int64_t s, int64_t step, int slot)
{
    if (b->staged_step[slot] == step)
        return;
    dpt_backend *be = b->be;
    int I = b->spec.I, rows = b->spec.rows;
    if (b->perm_epoch != epoch)
        shuffle(b, epoch);
    be->host_wait_slot(be, slot); /* the previous copy out of these pinned buffers is done */
    int64_t base = first_row(b, s);
    for (int i = 0; i < rows; i++) {
        int64_t r = b->perm[base + i];
        memcpy(b->pin_x[slot] + (size_t)i * I, b->train->x + (size_t)r * I,
               (size_t)I * sizeof(float));
        b->pin_y[slot][i] = b->train->y[r];
    }
    be->upload_async(be, b->stage_x[slot], b->pin_x[slot], (size_t)rows * I * sizeof(float), slot);
    be->upload_async(be, b->stage_y[slot], b->pin_y[slot], (size_t)rows * sizeof(int32_t), slot);
    b->staged_step[slot] = step;
}

void dpt_batch_next(dpt_batch *b, int epoch, int64_t s, int64_t step, const float **x,
                    const int32_t **y)
{
    dpt_backend *be = b->be;
    int slot = (int)(step & 1);
    if (b->staged) {
        stage_batch(b, epoch, s, step, slot);
        /* prefetch the next batch of this epoch into the other slot (not across epochs: the
         * evaluation between epochs uses the batch buffers' neighbours, and the next epoch's
         * order is drawn when it starts) */
        if (s + 1 < b->spec.steps_per_epoch)
            stage_batch(b, epoch, s + 1, step + 1, slot ^ 1);
        be->wait_slot(be, slot);
        *x = b->stage_x[slot];
        *y = b->stage_y[slot];
        return;
    }
    if (b->perm_epoch != epoch) {
        shuffle(b, epoch);
        if (b->perm_dev) /* one copy an epoch instead of one a step */
            be->upload(be, b->perm_dev, b->perm, (size_t)b->train->n * sizeof(int64_t));
    }
    const int64_t *idx = b->idx;
    if (b->perm_dev)
        idx = b->perm_dev + first_row(b, s);
    else
        be->upload(be, b->idx, b->perm + first_row(b, s), (size_t)b->spec.rows * sizeof(int64_t));
    be->gather(be, b->x_train, b->y_train, idx, b->spec.rows, b->spec.I, b->xb, b->yb);
    *x = b->xb;
    *y = b->yb;
}

void dpt_batch_done(dpt_batch *b, int64_t step)
{
    if (b->staged)
        b->be->release_slot(b->be, (int)(step & 1));
}
