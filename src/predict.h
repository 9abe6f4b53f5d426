/* dptrain predict and dptrain eval: a trained run directory (model.json, checkpoint.bin)
 * applied to a file on the CPU or CUDA backend (--device, chosen as training chooses it), by
 * every rank of a job, each its contiguous share of the rows: predictions as CSV, or metrics on
 * a labelled file (accuracy, per-class precision / recall / F1, confusion matrix; RMSE, MAE,
 * R^2 for a regression) that do not depend on the number of ranks. */
#ifndef DPT_PREDICT_H
#define DPT_PREDICT_H

#include "comm.h"
#include "comm_types.h"
#include "error.h"

typedef struct {
    const char *run_dir;   /* holds model.json and checkpoint.bin */
    const char *input;     /* CSV, or IDX images (with labels) when the training read IDX */
    const char *labels;    /* IDX labels; NULL for CSV */
    const char *output;    /* predict: CSV path; NULL = stdout */
    int json;              /* eval: print JSON instead of the table */
    dpt_device_kind device; /* --device: auto (0, the default), cpu or cuda; one GPU per rank */
    dpt_comm *comm;        /* the job: every rank takes a contiguous share of the rows */
} dpt_predict_opts;

/* Writes one CSV line per input row: the predicted class (its name when the training had class
 * names) and every class's probability, or a regression's targets. Collective: each rank
 * predicts a contiguous share of the rows, rank 0 writes them all in input order; every rank
 * returns the same status. */
int dpt_predict_run(const dpt_predict_opts *o, dpt_error *err);

/* Prints (rank 0) accuracy, mean loss, per-class precision / recall / F1 and the confusion
 * matrix, or a regression's RMSE, MAE, R^2 and loss. Collective, as dpt_predict_run: each rank
 * evaluates a contiguous share of whole batches; the output is the same bytes for any number of
 * ranks. */
int dpt_eval_run(const dpt_predict_opts *o, dpt_error *err);

#endif
