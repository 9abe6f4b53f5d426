/* Data-parallel training. A dpt_trainer holds one rank's share of a run: data, model,
 * optimizer and the step that computes gradients on this rank's rows of the global batch,
 * averages them across ranks and updates the parameters. The whole run with its outputs is in
 * run.h; the benchmark drives the same step. The trainer is opaque: its state is private to
 * train.c and run.c (trainer_impl.h), others read it through the accessors below. */
#ifndef DPT_TRAIN_H
#define DPT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "config.h"
#include "data.h"
#include "error.h"

enum { DPT_STEP_OK = 0, DPT_STEP_DIVERGED = 1 };

typedef struct dpt_trainer dpt_trainer;

/* What the steps since the last dpt_trainer_reset_stats cost, and what the last one found. */
typedef struct {
    double t_data;              /* seconds gathering or staging batches */
    double t_compute;           /* forward, backward and the update */
    double t_comm;              /* the EXPOSED communication: after backward, waiting for the
                                 * allreduce(s) */
    double t_comm_total;        /* from the first bucket's start to the last one's end,
                                 * overlapped with backward or not */
    double t_wait;              /* the split_wait barrier (bench) */
    double last_loss, last_correct;     /* global sums (all ranks) of the last steps_read
                                         * steps, read by the last step */
    int64_t steps_read;         /* 1 on the CPU backend (every step reads its own sums); on a
                                 * device backend 0, except every train.log_every steps and at
                                 * an epoch's last step, which read the sums of the steps since
                                 * the last read (no host synchronization in the others) */
    int stop_requested;         /* a rank received SIGINT/SIGTERM before the last read step's
                                 * allreduce (CPU: the last step's; device: learned at the read):
                                 * every rank stops after that step */
} dpt_step_stats;

/* Loads the data, builds the backend, model and optimizer; *out is the new trainer (NULL on
 * failure). Collective: every rank calls it; an error on any rank is returned on all of them
 * (this rank's message when it had one). */
int dpt_trainer_init(dpt_trainer **out, const dpt_config *cfg, dpt_comm *comm, dpt_error *err);
void dpt_trainer_free(dpt_trainer *t);   /* NULL is fine */

/* One optimizer step: batch `step_in_epoch` of epoch `epoch`, global step `step`. Returns
 * DPT_STEP_DIVERGED (on every rank alike) when the global loss is not finite; on the CPU backend
 * the parameters are then left as they were before the step. On a device backend the loss is
 * seen only when the statistics are read (steps_read above): the step that returns
 * DPT_STEP_DIVERGED is then the read that found a non-finite sum, up to train.log_every - 1
 * steps after the first bad one, and the parameters have been updated with it. */
int dpt_trainer_step(dpt_trainer *t, int epoch, int64_t step_in_epoch, int64_t step, double lr);

/* Reads the statistics of the steps not read yet (a device backend's, when a run ends between
 * two reads: train.max_steps); steps_read is then their number, 0 when there were none.
 * Returns DPT_STEP_DIVERGED as dpt_trainer_step does. Collective. */
int dpt_trainer_read_stats(dpt_trainer *t);

/* One line on how gradients travel (comm.*): path, algorithm, buckets, overlap, compression. */
void dpt_trainer_describe_comm(const dpt_trainer *t, char *out, size_t n);

/* Mean loss and accuracy over a split, reduced across ranks. */
void dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, double *loss, double *accuracy);

/* Regression: mean loss (in the trained, maybe standardized, units) and RMSE, MAE, R^2 in the
 * targets' own units over a split, reduced across ranks. */
void dpt_trainer_evaluate_regression(dpt_trainer *t, const dpt_dataset *ds, double *loss,
                                     double *rmse, double *mae, double *r2);

void dpt_trainer_stats(const dpt_trainer *t, dpt_step_stats *out);
void dpt_trainer_reset_stats(dpt_trainer *t);   /* the times back to zero */
int64_t dpt_trainer_steps_per_epoch(const dpt_trainer *t);

/* bench: with split_wait on, each step waits at a barrier before the allreduce, timed as
 * t_wait, so that t_comm is the allreduce alone, not waiting for a slower rank. */
void dpt_trainer_set_split_wait(dpt_trainer *t, int on);

/* What the device backend was asked so far (src/backend.h), and 0; -1 on the CPU backend. */
int dpt_trainer_device_counts(const dpt_trainer *t, dpt_device_counts *out);

/* BLAS threads for this rank: run.threads, or the cores this rank may use divided among the
 * ranks on its node. */
int dpt_train_threads(const dpt_config *cfg, const dpt_comm *comm);

#endif
