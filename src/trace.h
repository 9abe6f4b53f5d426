/* The timeline (run.trace): spans of each traced step on every rank (data, forward, backward,
 * the barrier wait, the gradient allreduce and each bucket's, the optimizer) and of evaluation
 * and checkpoints, kept in memory and written by rank 0 at the end as Chrome trace-event JSON
 * (Perfetto, chrome://tracing), every rank a process. Bounded: the first run.trace_steps steps
 * of each epoch and DPT_TRACE_MAX_EVENTS spans per rank. */
#ifndef DPT_TRACE_H
#define DPT_TRACE_H

#include <stdint.h>

#include "comm.h"
#include "error.h"

#define DPT_TRACE_MAX_EVENTS 20000

/* What a span is: its name in the trace, and the row (thread) it is drawn on. */
typedef enum {
    DPT_SPAN_STEP,       /* the whole step, around the spans below */
    DPT_SPAN_DATA,
    DPT_SPAN_FORWARD,
    DPT_SPAN_BACKWARD,
    DPT_SPAN_WAIT,       /* the barrier before the allreduce (bench's split of waiting) */
    DPT_SPAN_ALLREDUCE,  /* after backward: waiting for the gradient sum (exposed) */
    DPT_SPAN_OPTIMIZER,
    DPT_SPAN_BUCKET,     /* one bucket's allreduce, start to end (its own row) */
    DPT_SPAN_EVALUATION,
    DPT_SPAN_CHECKPOINT,
    DPT_SPAN_LAYER_FORWARD,  /* layer `bucket`'s part of forward, nested in it */
    DPT_SPAN_LAYER_BACKWARD, /* layer `bucket`'s part of backward (the last: with the loss) */
    DPT_SPAN_COUNT
} dpt_span_kind;

typedef struct dpt_trace dpt_trace;

/* Collective over c (a barrier sets every rank's time origin). *out is NULL when path is
 * empty. Rank 0 opens the file now, so that a path it cannot write fails before training:
 * DPT_ERUNTIME on every rank, with rank 0's message. */
int dpt_trace_open(dpt_trace **out, dpt_comm *c, const char *path,
                   int64_t steps_per_epoch_traced, dpt_error *err);
/* Whether step step_in_epoch of an epoch is traced; 0 on NULL. */
int dpt_trace_wants(const dpt_trace *t, int64_t step_in_epoch);
/* A span from t0 to t1 (dpt_now() seconds); bucket -1 when none. Safe on NULL. */
void dpt_trace_span(dpt_trace *t, dpt_span_kind kind, double t0, double t1, int64_t step,
                    int bucket);
/* The step's phase boundaries, for both timelines at one call site: each returns dpt_now() (the
 * times the caller keeps for dpt_trace_span and its statistics) and opens or closes the NVTX range
 * of the same name (src/nvtx.h; Nsight Systems), on every step whether or not it is traced.
 * Ranges nest: begin STEP, then begin DATA, next FORWARD, ..., end, end. */
double dpt_trace_begin(dpt_span_kind kind);
double dpt_trace_end(void);
double dpt_trace_next(dpt_span_kind kind); /* end the current phase, begin kind */
/* Collective: rank 0 gathers every rank's spans and writes the file. DPT_ERUNTIME (on every
 * rank) when it cannot be written. Safe on NULL (returns DPT_OK). */
int dpt_trace_write(dpt_trace *t, dpt_error *err);
void dpt_trace_free(dpt_trace *t);

#endif
