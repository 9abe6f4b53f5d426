/* Data-parallel training. A dpt_trainer holds one rank's share of a run: data, model,
 * optimizer and the step that computes gradients on this rank's rows of the global batch,
 * averages them across ranks and updates the parameters. dpt_train_run is the whole loop with
 * its outputs (start-up table, epoch lines, metrics.jsonl, checkpoint.bin, config.yaml);
 * the benchmark drives the same step. */
#ifndef DPT_TRAIN_H
#define DPT_TRAIN_H

#include <stdint.h>

#include "backend.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "reducer.h"

enum { DPT_STEP_OK = 0, DPT_STEP_DIVERGED = 1 };

typedef struct {
    const dpt_config *cfg;
    dpt_comm *comm;
    dpt_backend be;
    dpt_data data;
    dpt_model model;
    dpt_optim opt;
    int threads;                /* BLAS threads per rank */
    int rows;                   /* B: this rank's rows of the global batch */
    int64_t row0;               /* first row of this rank's slice within the global batch */
    int64_t steps_per_epoch;
    int64_t *perm;              /* (n train rows) this epoch's order, host */
    int perm_epoch;             /* epoch perm was drawn for; -1 = none */
    const float *x_train;       /* training rows in backend memory */
    const int32_t *y_train;
    float *x_dev;               /* device copies of the training rows (not host-memory backends) */
    int32_t *y_dev;
    int staged;                 /* 1: batches staged through pinned memory, double-buffered */
    float *pin_x[2];            /* (rows, I) pinned host memory, per slot */
    int32_t *pin_y[2];          /* (rows) */
    float *stage_x[2];          /* (rows, I) backend memory, per slot */
    int32_t *stage_y[2];        /* (rows) */
    int64_t staged_step[2];     /* global step whose batch a slot holds; -1 none */
    int64_t *idx;               /* (rows) backend memory */
    float *xb;                  /* (max_rows, I) backend memory */
    int32_t *yb;                /* (max_rows) backend memory */
    const char *device_note;    /* why this device was chosen, for the start-up table */
    /* the gradients' allreduce (comm.*): pieces of the gradient (whole layers, or blocks of a
     * large layer's rows) in the order backward finishes them, grouped into buckets by it */
    dpt_reducer *reducer;
    int piece0[DPT_MAX_LAYERS]; /* layer l's last block is piece piece0[l] */
    double t_data, t_compute, t_comm;   /* seconds accumulated by dpt_trainer_step; t_comm is
                                         * the EXPOSED communication: after backward, waiting
                                         * for the allreduce(s) */
    double t_comm_total;        /* communication from the first bucket's start to the last
                                 * one's end (overlapped with backward or not) */
    int split_wait;             /* bench: a barrier before the allreduce, timed as t_wait, so
                                 * t_comm is the allreduce alone, not waiting for a slower rank */
    double t_wait;
    double last_loss, last_correct;     /* global sums of the last step (all ranks) */
    int stop_requested;         /* a rank received SIGINT/SIGTERM before the last step's
                                 * allreduce: every rank stops after that step */
} dpt_trainer;

/* Loads the data, builds the backend, model and optimizer. Collective: every rank calls it;
 * an error on any rank is returned on all of them (this rank's message when it had one). */
int dpt_trainer_init(dpt_trainer *t, const dpt_config *cfg, dpt_comm *comm, dpt_error *err);
void dpt_trainer_free(dpt_trainer *t);

/* One optimizer step: batch `step_in_epoch` of epoch `epoch`, global step `step`. Returns
 * DPT_STEP_DIVERGED (on every rank alike) when the global loss is not finite; the parameters
 * are then left as they were before the step. */
int dpt_trainer_step(dpt_trainer *t, int epoch, int64_t step_in_epoch, int64_t step, double lr);

/* One line on how gradients travel (comm.*): path, algorithm, buckets, overlap, compression. */
void dpt_trainer_describe_comm(const dpt_trainer *t, char *out, size_t n);

/* Mean loss and accuracy over a split, reduced across ranks. */
void dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, double *loss, double *accuracy);

/* Called on every rank after each epoch's evaluation, with that epoch's metrics (the same on
 * every rank); returns 1 to end the run there (early stopping), 0 to go on. */
typedef int (*dpt_epoch_hook)(void *ctx, const dpt_epoch_metrics *em);

typedef struct {
    const char *config_path;    /* for the start-up table */
    int resume;                 /* continue from OUT/checkpoint.bin when it exists */
    int quiet;                  /* no start-up table, epoch lines or summary (a search trial) */
    dpt_epoch_hook epoch_hook;  /* NULL: none */
    void *hook_ctx;
} dpt_train_opts;

typedef struct {
    int diverged;
    int interrupted;            /* the signal that stopped the run, or 0 */
    int stopped_early;          /* the epoch hook ended the run */
    int epochs;
    int64_t steps;
    double train_loss, val_loss, val_accuracy, test_accuracy;
    double time_s;
} dpt_train_result;

/* The whole run. Returns DPT_OK, DPT_EUSAGE (config/data/checkpoint mismatch), DPT_ERUNTIME
 * (divergence, I/O), or 128 + the signal when SIGINT/SIGTERM stopped it (after a checkpoint at
 * the step every rank stopped at); the same code on every rank. */
int dpt_train_run(const dpt_config *cfg, dpt_comm *comm, const dpt_train_opts *opts,
                  dpt_train_result *res, dpt_error *err);

/* BLAS threads for this rank: run.threads, or the cores this rank may use divided among the
 * ranks on its node. */
int dpt_train_threads(const dpt_config *cfg, const dpt_comm *comm);

#endif
