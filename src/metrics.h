/* Per-epoch metrics: one JSON object per line in OUT/metrics.jsonl (appended and flushed per
 * epoch, so a killed run keeps every finished epoch), and rank 0's fixed-width epoch line. */
#ifndef DPT_METRICS_H
#define DPT_METRICS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    int epoch;               /* 1-based; a run cut by train.max_steps reports its partial epoch */
    int64_t step;            /* optimizer steps so far */
    double lr;
    double train_loss, train_accuracy;
    double val_loss, val_accuracy;       /* NAN when there is no validation split */
    double test_loss, test_accuracy;     /* NAN when there is no test set */
    double samples_per_s;
    double time_s;                       /* wall time of the epoch's training steps */
    double compute_s, comm_s, data_s;    /* parts of time_s (rank 0's clock) */
    int ranks;
    double rss_mb;                       /* rank 0's resident memory at the end of the epoch */
    int regression;                      /* data.task regression: the accuracies are NAN and
                                          * these are written instead (NAN where no split) */
    double val_rmse, val_mae, val_r2, test_rmse, test_mae, test_r2;
} dpt_epoch_metrics;

/* Regression metrics in the targets' own units, from sums that add across row chunks and ranks:
 * a flat array of DPT_REGRESS_SUMS(T) doubles = [rows, then per target: squared error, absolute
 * error, target, target squared]. */
#define DPT_REGRESS_SUMS(T) (1 + 4 * (size_t)(T))

/* Adds rows predictions pred (rows, T) against targets: row i's are table[idx[i] * T ...] (idx
 * NULL: row i of table). With mean and std (target standardization), both are mapped back to
 * the original units first: v * std + mean. */
void dpt_regress_sums_add(double *sums, int T, const float *pred, const float *table,
                          const int32_t *idx, int rows, const double *mean, const double *std);

/* RMSE and MAE over all rows and targets; R^2 the mean over targets of 1 - SSE / SST (as
 * scikit-learn's r2_score with uniform_average), NAN where a target is constant. */
void dpt_regress_metrics(const double *sums, int T, double *rmse, double *mae, double *r2);

/* This process's resident set size in MiB (from /proc/self/statm), NAN where unknown. */
double dpt_metrics_rss_mb(void);

/* Appends one JSON line and flushes it to the file system. Non-finite values become null. */
int dpt_metrics_append(FILE *f, const dpt_epoch_metrics *m);

/* The header and one row of the fixed-width epoch table printed by rank 0. */
void dpt_metrics_print_header(FILE *out);
void dpt_metrics_print_header_regression(FILE *out); /* m->regression's columns */
void dpt_metrics_print_row(FILE *out, const dpt_epoch_metrics *m);

#endif
