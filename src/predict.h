/* dptrain predict and dptrain eval: a trained run directory (model.json, checkpoint.bin)
 * applied to a file, on the CPU backend (predict: by every rank of a job, each its share of the
 * rows; eval: by one process): predictions as CSV, or metrics on a
 * labelled file (accuracy, per-class precision / recall / F1, confusion matrix). */
#ifndef DPT_PREDICT_H
#define DPT_PREDICT_H

#include "error.h"

typedef struct {
    const char *run_dir;   /* holds model.json and checkpoint.bin */
    const char *input;     /* CSV, or IDX images (with labels) when the training read IDX */
    const char *labels;    /* IDX labels; NULL for CSV */
    const char *output;    /* predict: CSV path; NULL = stdout */
    int json;              /* eval: print JSON instead of the table */
    /* predict under mpirun (ranks > 1): this rank's share of the rows; sum adds n doubles
     * across the ranks in place (collective) */
    int rank, ranks;
    void (*sum)(double *buf, int n, void *ctx);
    void *sum_ctx;
} dpt_predict_opts;

/* Writes one CSV line per input row: the predicted class (its name when the training had class
 * names) and every class's probability, or a regression's targets. Collective with ranks > 1:
 * each rank predicts a contiguous share of the rows, rank 0 writes them all in input order;
 * every rank returns the same status. */
int dpt_predict_run(const dpt_predict_opts *o, dpt_error *err);

/* Prints accuracy, mean loss, per-class precision / recall / F1 and the confusion matrix. */
int dpt_eval_run(const dpt_predict_opts *o, dpt_error *err);

#endif
