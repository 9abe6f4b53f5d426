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
} dpt_epoch_metrics;

/* This process's resident set size in MiB (from /proc/self/statm), NAN where unknown. */
double dpt_metrics_rss_mb(void);

/* Appends one JSON line and flushes it to the file system. Non-finite values become null. */
int dpt_metrics_append(FILE *f, const dpt_epoch_metrics *m);

/* The header and one row of the fixed-width epoch table printed by rank 0. */
void dpt_metrics_print_header(FILE *out);
void dpt_metrics_print_row(FILE *out, const dpt_epoch_metrics *m);

#endif
