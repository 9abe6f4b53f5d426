/* The trial log of a search, OUT/trials.jsonl: one JSON line per finished trial (and per run of
 * one the infrastructure failed), appended a round at a time (a trial at a time with
 * search.schedule: async) in one write and fsync, so a killed search leaves whole lines. On
 * --resume it is read back (a last line cut short by the kill is removed) and the search
 * continues from it. The same format serves rank 0's journal of hand-outs, OUT/running.jsonl. */
#ifndef DPT_TRIAL_LOG_H
#define DPT_TRIAL_LOG_H

#include <stddef.h>

#include "config.h"
#include "error.h"
#include "space.h"

#define DPT_TRIAL_MAX_CURVE 512  /* epochs of a trial's curve kept for early stopping */

typedef enum {
    DPT_TRIAL_OK = 0,
    DPT_TRIAL_DIVERGED = 1,
    DPT_TRIAL_FAILED = 2,
    DPT_TRIAL_STOPPED_EARLY = 3,
    DPT_TRIAL_ERROR = 4,       /* not a trial outcome: I/O or the system failed inside it; the
                                * search records it infra_failed and runs it again */
    DPT_TRIAL_IDLE = 5,        /* this group had no trial this round */
    DPT_TRIAL_INTERRUPTED = 6, /* SIGINT/SIGTERM: runs again on --resume (the journal says so) */
    DPT_TRIAL_INFRA_FAILED = 7, /* the infrastructure failed it (an I/O error, a job that died
                                 * while it ran): recorded, kept out of the model, run again */
    DPT_TRIAL_RUNNING = 8      /* the journal (running.jsonl): handed out to a group */
} dpt_trial_status;

/* One trial as trials.jsonl records it; plain bytes, so it can be gathered and broadcast. */
typedef struct {
    int trial;            /* id, from 0 */
    int status;           /* dpt_trial_status */
    int group;
    int epochs;           /* epochs trained */
    int attempt;          /* 0; n: the n-th run again after an infrastructure failure */
    int resumed_from;     /* asha with promote: the rung (epoch) this run of the trial was
                           * promoted from, resuming its checkpoint; 0: a run from the start */
    double objective;     /* minimized; NAN unless ok or stopped_early */
    double val_accuracy;  /* NAN in function mode */
    double time_s;        /* wall time of the trial, data loading included */
    double propose_s;     /* rank 0's time to propose it */
    double start_s;       /* seconds from the search's start (resumed: continuing the recorded
                           * clock) when rank 0 handed the trial to its group */
    double end_s;         /* start_s + time_s */
    int n_curve;
    double curve[DPT_TRIAL_MAX_CURVE];  /* objective after each epoch */
    dpt_space_value values[DPT_SEARCH_MAX_PARAMS];
    char message[512];    /* failed, diverged, error: why */
} dpt_trial;

/* "ok", "diverged", ... as trials.jsonl and the trial lines name a status. */
const char *dpt_trial_status_name(int status);

/* 1 when the trial produced an objective the search can compare (ok or stopped early, finite). */
int dpt_trial_has_result(const dpt_trial *r);

/* 1 for an outcome of the trial itself (ok, diverged, failed, stopped early): what the search's
 * history holds and its budget counts; not an infrastructure failure or a journal line. */
int dpt_trial_is_final(int status);

/* 1 when some trial of hist[0..n) has this id. */
int dpt_trial_recorded(const dpt_trial *hist, int n, int id);

/* One line of trials.jsonl, newline included, into out. Returns its length (>= n: cut short). */
size_t dpt_trial_format(const dpt_config *cfg, const dpt_trial *r, char *out, size_t n);

/* Reads one line of trials.jsonl (len bytes, no newline). Returns 0, or -1 with why. */
int dpt_trial_parse(const dpt_config *cfg, const char *line, size_t len, dpt_trial *r, char *why,
                    size_t wn);

/* Rank 0, before a search: refuses an existing log unless resume; with resume reads the records
 * of path into *hist (malloc'ed, *n of them; none when the file does not exist), removing a last
 * line cut short with a notice. A record resumed_from a rung replaces its trial's earlier
 * stopped_early record in place (asha with promote); any other second outcome of an id is
 * DPT_EUSAGE, as is a malformed line, naming the line; I/O, DPT_ERUNTIME. */
int dpt_trial_log_read(const dpt_config *cfg, const char *path, int resume, dpt_trial **hist,
                       int *n, dpt_error *err);
int dpt_trial_log_open(const char *path, int *fd, dpt_error *err);

/* Appends the records recs[0..n) to the log in one write and flushes it to the disk. */
int dpt_trial_log_append(int fd, const char *path, const dpt_config *cfg, const dpt_trial *recs,
                         int n, dpt_error *err);

#endif
