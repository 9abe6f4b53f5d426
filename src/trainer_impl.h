/* The trainer's state, private to the trainer's own files (train.c, run.c): every other module
 * holds a dpt_trainer through the opaque handle of train.h and reads it through its accessors,
 * so the state can change without their knowing. */
#ifndef DPT_TRAINER_IMPL_H
#define DPT_TRAINER_IMPL_H

#include <stdint.h>

#include "backend.h"
#include "batch.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "model.h"
#include "optim.h"
#include "reducer.h"
#include "trace.h"
#include "train.h"

struct dpt_trainer {
    const dpt_config *cfg;
    dpt_comm *comm;
    dpt_backend be;
    dpt_data data;
    dpt_model model;
    dpt_optim opt;
    dpt_batch batch;            /* this rank's rows of each global batch */
    int threads;                /* BLAS threads per rank */
    int rows;                   /* B: this rank's rows of the global batch */
    int64_t row0;               /* first row of this rank's slice within the global batch */
    int64_t steps_per_epoch;
    float *xb;                  /* (max_rows, I) backend memory: gathered batches, evaluation */
    int32_t *yb;                /* (max_rows) backend memory */
    const float *t_train;       /* regression: the training target table in backend memory */
    float *t_dev;               /* its device copy (not host-memory backends) */
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
    dpt_trace *trace;           /* run.trace (owned by the run); NULL: none */
    double layer_end[2][DPT_MAX_LAYERS]; /* a traced step's per-layer times (model.layer_end) */
    int stop_requested;         /* a rank received SIGINT/SIGTERM before the last step's
                                 * allreduce: every rank stops after that step */
    /* On a device backend the step's statistics stay on the device (no host synchronization
     * inside a step): summed there over steps and read by the host every train.log_every steps
     * and at an epoch's last step (device_stats; see dpt_trainer_step). */
    int device_stats;
    double *acc;                /* (2) backend memory: global loss and hit sums since the read */
    double *acc_host;           /* (2) pinned host memory: where the read lands */
    int64_t acc_steps;          /* steps summed in acc */
    int64_t steps_read;         /* steps whose sums last_loss and last_correct hold */
    /* train.cuda_graph: the step captured once (after a warm-up step) and replayed */
    int graph_on;
    char graph_why[160];        /* on, or off and why, for the start-up table */
    char epilogue_why[160];     /* train.gemm_epilogue's verdict, for the start-up table */
    int graph_ready;            /* the step is captured */
    int64_t steps_run;          /* steps of this trainer */
};

#endif
