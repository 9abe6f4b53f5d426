/* The whole training run with its outputs: the start-up table, one line per epoch,
 * metrics.jsonl, checkpoint.bin after every epoch and on a signal, config.yaml, resuming from
 * a checkpoint and the cross-rank drift check. `dptrain train` and each search trial call it. */
#ifndef DPT_RUN_H
#define DPT_RUN_H

#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "error.h"
#include "metrics.h"

/* Called on every rank after each epoch's evaluation, with that epoch's metrics (the same on
 * every rank); returns 1 to end the run there (early stopping), 0 to go on. */
typedef int (*dpt_epoch_hook)(void *ctx, const dpt_epoch_metrics *em);

typedef struct {
    const char *config_path;    /* for the start-up table */
    int resume;                 /* continue from OUT/checkpoint.bin when it exists */
    int quiet;                  /* no start-up table, epoch lines or summary (a search trial) */
    dpt_epoch_hook epoch_hook;  /* NULL: none */
    void *hook_ctx;
    /* Called on this rank after a training step, at most once a millisecond (the async search's
     * coordinator answers the other groups there: docs/search.md); it must not change what the
     * rank trains. NULL: none. */
    void (*step_hook)(void *ctx);
    void *step_ctx;
} dpt_train_opts;

typedef struct {
    int diverged;
    int interrupted;            /* the signal that stopped the run, or 0 */
    int stopped_early;          /* the epoch hook ended the run */
    int epochs;
    int64_t steps;
    double train_loss, val_loss, val_accuracy, test_accuracy;
    double val_rmse;            /* regression; NAN otherwise */
    double time_s;
} dpt_train_result;

/* The whole run. Returns DPT_OK, DPT_EUSAGE (config/data/checkpoint mismatch), DPT_ERUNTIME
 * (divergence, I/O), or 128 + the signal when SIGINT/SIGTERM stopped it (after a checkpoint at
 * the step every rank stopped at); the same code on every rank. */
int dpt_train_run(const dpt_config *cfg, dpt_comm *comm, const dpt_train_opts *opts,
                  dpt_train_result *res, dpt_error *err);

#endif
