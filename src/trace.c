/* The timeline of run.trace (see trace.h): spans as fixed-size records in memory, gathered to
 * rank 0 at the end (padded to the largest rank's count, so one gather of equal sizes) and
 * written there as Chrome trace-event JSON: "X" (complete) events in microseconds from a common
 * origin, one process per rank, thread 0 the step's phases, thread 1 + k bucket k's allreduce. */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvtx.h"
#include "util.h"

typedef struct {
    double t0, t1;
    int64_t step;
    int32_t kind, bucket;
} span;

struct dpt_trace {
    dpt_comm *c;
    char path[4096];
    FILE *f;          /* rank 0: the file, open from the start */
    int64_t steps_traced;
    double origin;
    int n, dropped;
    span *ev; /* (DPT_TRACE_MAX_EVENTS) */
};

static const char *const span_names[DPT_SPAN_COUNT] = {
    "step", "data", "forward", "backward", "barrier wait", "allreduce (exposed)", "optimizer",
    "bucket allreduce", "evaluation", "checkpoint", "forward layer", "backward layer"};

double dpt_trace_begin(dpt_span_kind kind)
{
    dpt_nvtx_push(span_names[kind]);
    return dpt_now();
}

double dpt_trace_end(void)
{
    double t = dpt_now();
    dpt_nvtx_pop();
    return t;
}

double dpt_trace_next(dpt_span_kind kind)
{
    double t = dpt_trace_end();
    dpt_nvtx_push(span_names[kind]);
    return t;
}

int dpt_trace_open(dpt_trace **out, dpt_comm *c, const char *path,
                   int64_t steps_per_epoch_traced, dpt_error *err)
{
    *out = NULL;
    if (!path || !path[0])
        return DPT_OK;
    int rc = DPT_OK;
    dpt_error mine = {0};
    FILE *f = NULL;
    if (c->rank == 0 && !(f = fopen(path, "w")))
        rc = dpt_error_set(&mine, DPT_ERUNTIME, "run.trace: cannot write '%s': %m", path);
    if ((rc = dpt_comm_agree_error(c, rc, &mine, err)) != DPT_OK) {
        if (f)
            fclose(f);
        return rc;
    }
    dpt_trace *t = calloc(1, sizeof *t);
    DPT_CHECK(t != NULL, "out of memory");
    t->ev = calloc(DPT_TRACE_MAX_EVENTS, sizeof *t->ev); /* zeros: gathered padded */
    DPT_CHECK(t->ev != NULL, "out of memory");
    t->c = c;
    t->f = f;
    snprintf(t->path, sizeof t->path, "%s", path);
    t->steps_traced = steps_per_epoch_traced;
    dpt_comm_agree(c, 0); /* a barrier: every rank's origin within its skew */
    t->origin = dpt_now();
    *out = t;
    return DPT_OK;
}

int dpt_trace_wants(const dpt_trace *t, int64_t step_in_epoch)
{
    return t && step_in_epoch < t->steps_traced;
}

void dpt_trace_span(dpt_trace *t, dpt_span_kind kind, double t0, double t1, int64_t step,
                    int bucket)
{
    if (!t)
        return;
    if (t->n == DPT_TRACE_MAX_EVENTS) {
        t->dropped++;
        return;
    }
    t->ev[t->n++] = (span){t0 - t->origin, t1 - t->origin, step, (int32_t)kind, bucket};
}

static void write_rank(FILE *f, int rank, const char *host, const span *ev, int n, int *first)
{
    fprintf(f, "%s\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"name\":\"rank %d (%s)\"}}",
            *first ? "" : ",", rank, rank, host);
    *first = 0;
    fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"name\":\"step\"}}", rank);
    int buckets = 0;
    for (int i = 0; i < n; i++)
        if (ev[i].kind == DPT_SPAN_BUCKET && ev[i].bucket >= buckets)
            buckets = ev[i].bucket + 1;
    for (int k = 0; k < buckets; k++) /* a row per bucket: their spans overlap, not nest */
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
                   "\"args\":{\"name\":\"bucket %d allreduce\"}}", rank, 1 + k, k);
    for (int i = 0; i < n; i++) {
        const span *s = &ev[i];
        int kind = s->kind >= 0 && s->kind < DPT_SPAN_COUNT ? s->kind : 0;
        int layer = kind == DPT_SPAN_LAYER_FORWARD || kind == DPT_SPAN_LAYER_BACKWARD;
        char name[48];
        snprintf(name, sizeof name, layer ? "%s %d" : "%s", span_names[kind], s->bucket);
        fprintf(f, ",\n{\"name\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,"
                   "\"dur\":%.3f,\"args\":{\"step\":%lld",
                name, rank, kind == DPT_SPAN_BUCKET ? 1 + s->bucket : 0, s->t0 * 1e6,
                (s->t1 - s->t0) * 1e6, (long long)s->step);
        if (s->bucket >= 0)
            fprintf(f, layer ? ",\"layer\":%d" : ",\"bucket\":%d", s->bucket);
        fputs("}}", f);
    }
}

int dpt_trace_write(dpt_trace *t, dpt_error *err)
{
    if (!t)
        return DPT_OK;
    dpt_comm *c = t->c;
    int64_t most = -dpt_comm_min_i64(c, -(int64_t)t->n);
    int64_t dropped = -dpt_comm_min_i64(c, -(int64_t)t->dropped);
    int root = c->rank == 0;
    int32_t *counts = root ? malloc((size_t)c->size * sizeof *counts) : NULL;
    char(*hosts)[64] = root ? malloc((size_t)c->size * sizeof *hosts) : NULL;
    span *all = root ? malloc((size_t)c->size * (size_t)(most ? most : 1) * sizeof *all) : NULL;
    DPT_CHECK(!root || (counts && hosts && all), "out of memory for the trace");
    int32_t n = t->n;
    char host[64];
    snprintf(host, sizeof host, "%.63s", c->host);
    dpt_comm_gather(c, &n, sizeof n, counts);
    dpt_comm_gather(c, host, sizeof host, hosts);
    if (most > 0) /* padded to the largest count: one gather of equal sizes */
        dpt_comm_gather(c, t->ev, (size_t)most * sizeof *t->ev, all);
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (root) {
        FILE *f = t->f;
        t->f = NULL;
        int first = 1;
        fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"dropped_spans\":", f);
        fprintf(f, "%lld},\"traceEvents\":[", (long long)dropped);
        for (int r = 0; r < c->size; r++)
            write_rank(f, r, hosts[r], all + (size_t)r * (size_t)most, counts[r], &first);
        fputs("\n]}\n", f);
        if (fclose(f) != 0)
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "run.trace: cannot write '%s': %m", t->path);
    }
    free(counts);
    free(hosts);
    free(all);
    return dpt_comm_agree_error(c, rc, &mine, err);
}

void dpt_trace_free(dpt_trace *t)
{
    if (!t)
        return;
    if (t->f)
        fclose(t->f);
    free(t->ev);
    free(t);
}
