/* The reducer's factory and everything both of its paths share: the refusals, the bucket plan,
 * the mapping from backward's pieces to buckets, the step's times and the one-line description.
 * The paths themselves are function tables (reducer_impl.h): MPI in reducer_mpi.c, NCCL in
 * reducer_nccl.c; this file is the only one that chooses between them. */
#include "reducer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvtx.h"
#include "reducer_impl.h"
#include "ring.h"
#include "util.h"
#include "watchdog.h"

struct dpt_reducer {
    dpt_comm *c;
    dpt_reducer_settings s;
    const dpt_reducer_ops *ops;
    void *impl;
    int may_overlap;       /* overlap asked for and possible on this path */
    int overlap;           /* the plan's buckets start during backward */
    int n_buckets, n_pieces;
    size_t n;              /* floats in the planned buffer */
    double cap;            /* the plan's bucket size in floats (cap_floats) */
    int *bucket_of_piece;  /* (n_pieces) the bucket a piece completes; -1: none */
    size_t *off, *len;     /* (n_buckets) bucket k is floats [off[k], off[k] + len[k]) */
    double *t_begin, *t_end; /* (n_buckets) this step: when bucket k started and was summed */
    uint64_t *nvtx;        /* (n_buckets) bucket k's NVTX range, start to summed (src/nvtx.h) */
    double t_start;        /* this step: when bucket 0 started */
    int64_t step;          /* the caller's step, for the watchdog's report */
    dpt_watchdog *wd;      /* the MPI path's watchdog (run.comm_timeout_s); NULL: none */
    dpt_reducer_stats last;
};

#ifdef DPT_HAVE_NCCL
/* The combinations the NCCL path cannot run: user errors, reported like a bad config key
 * (comm.compress bf16 it runs: ncclBfloat16, reducer_nccl.c). */
static int refuse_for_nccl(const dpt_reducer_settings *s, dpt_error *err)
{
    if (s->algorithm != DPT_COMM_FLAT)
        return dpt_error_set(err, DPT_EUSAGE,
                             "comm.algorithm: %s is for the MPI path (run.device cpu); "
                             "with the CUDA backend NCCL reduces the gradients and picks its own "
                             "rings and trees within and across nodes: use comm.algorithm flat",
                             dpt_comm_algorithm_name(s->algorithm));
    return DPT_OK;
}
#endif

int dpt_reducer_create(dpt_reducer **out, dpt_comm *c, const dpt_reducer_settings *s,
                       dpt_error *err)
{
    *out = NULL;
    int nccl = 0;
#ifdef DPT_HAVE_NCCL
    /* device buffers on 2 or more ranks: NCCL (one rank has nothing to sum) */
    nccl = s->device_buffers && c->size > 1;
    if (nccl) {
        int rc = refuse_for_nccl(s, err);
        if (rc != DPT_OK)
            return rc;
    }
#else
    (void)err; /* nothing to refuse: device buffers go through a host copy */
#endif
    dpt_reducer *r = calloc(1, sizeof *r);
    DPT_CHECK(r != NULL, "out of memory");
    r->c = c;
    r->s = *s;
    /* device buffers without NCCL go through a host copy, after backward */
    r->may_overlap = s->overlap && c->size > 1 && (!s->device_buffers || nccl);
#ifdef DPT_HAVE_NCCL
    if (nccl)
        r->impl = dpt_reducer_nccl_create(c, s, &r->ops);
#endif
    if (!r->impl) {
        r->impl = dpt_reducer_mpi_create(c, s, &r->ops);
        r->wd = dpt_watchdog_create(c, s->timeout_s);
    }
    *out = r;
    return DPT_OK;
}

void dpt_reducer_free(dpt_reducer *r)
{
    if (!r)
        return;
    dpt_watchdog_free(r->wd);
    r->ops->free(r->impl);
    free(r->bucket_of_piece);
    free(r->off);
    free(r->len);
    free(r->t_begin);
    free(r->t_end);
    free(r->nvtx);
    free(r);
}

/* The floats a bucket closes at, in a buffer of n: comm.bucket_mb, as the path adjusts it (the
 * NCCL path's rule is in reducer_nccl.c). */
static double cap_floats(const dpt_reducer *r, double n)
{
    double cap = r->s.bucket_mb * 1048576.0 / sizeof(float);
    return r->ops->bucket_cap ? r->ops->bucket_cap(cap, n) : cap;
}

int dpt_reducer_blocks(const dpt_reducer *r, double n, double floats, int rows, int budget)
{
    int blocks = 1;
    double cap = cap_floats(r, n);
    if (r->may_overlap && floats > cap) {
        double b = ceil(floats / cap);
        blocks = b > rows ? rows : (int)b;
        if (blocks > budget)
            blocks = budget;
    }
    return blocks;
}

void dpt_reducer_plan(dpt_reducer *r, size_t n, size_t n_stats, const size_t *start,
                      int n_pieces)
{
    DPT_CHECK(n_pieces >= 1 && n_pieces <= DPT_REDUCER_MAX_PIECES, "bucket plan: 1 to "
              "DPT_REDUCER_MAX_PIECES pieces");
    free(r->bucket_of_piece);
    free(r->off);
    free(r->len);
    free(r->t_begin);
    free(r->t_end);
    free(r->nvtx);
    r->bucket_of_piece = malloc((size_t)n_pieces * sizeof *r->bucket_of_piece);
    r->off = malloc((size_t)n_pieces * sizeof *r->off);
    r->len = malloc((size_t)n_pieces * sizeof *r->len);
    r->t_begin = calloc((size_t)n_pieces, sizeof *r->t_begin);
    r->t_end = calloc((size_t)n_pieces, sizeof *r->t_end);
    r->nvtx = calloc((size_t)n_pieces, sizeof *r->nvtx);
    DPT_CHECK(r->bucket_of_piece && r->off && r->len && r->t_begin && r->t_end && r->nvtx,
              "out of memory");
    r->n = n;
    r->n_pieces = n_pieces;
    r->n_buckets = 0;
    size_t end = n;
    double cap = r->cap = cap_floats(r, (double)n);
    for (int i = 0; i < n_pieces; i++) {
        r->bucket_of_piece[i] = -1;
        if (i == n_pieces - 1 || (r->may_overlap && (double)(end - start[i]) >= cap)) {
            int k = r->n_buckets++;
            r->bucket_of_piece[i] = k;
            r->off[k] = start[i];
            r->len[k] = end - start[i];
            end = start[i];
        }
    }
    /* a single bucket would start when backward ends: nothing to overlap, so the plain
     * allreduce after backward (MPI's tuned algorithms, no polling) */
    r->overlap = r->may_overlap && r->n_buckets > 1;
    if (r->ops->plan)
        r->ops->plan(r->impl, r->off, r->len, r->n_buckets, n_stats, r->overlap);
}

int dpt_reducer_overlaps(const dpt_reducer *r) { return r->overlap; }

int dpt_reducer_n_buckets(const dpt_reducer *r) { return r->n_buckets; }

static void start_bucket(dpt_reducer *r, float *buf, int k)
{
    r->nvtx[k] = dpt_nvtx_start_k("allreduce bucket", k);
    r->t_begin[k] = dpt_now();
    if (k == 0)
        r->t_start = r->t_begin[k];
    r->ops->start(r->impl, buf, k, r->off[k], r->len[k]);
}

void dpt_reducer_piece_done(dpt_reducer *r, float *buf, int piece)
{
    DPT_CHECK(piece >= 0 && piece < r->n_pieces, "piece index out of range");
    int k = r->bucket_of_piece[piece];
    if (k >= 0)
        start_bucket(r, buf, k);
    if (r->ops->progress)
        r->ops->progress(r->impl);
}

static const volatile int *pending_bucket(dpt_reducer *r)
{
    return r->ops->pending_bucket ? r->ops->pending_bucket(r->impl) : NULL;
}

void dpt_reducer_set_step(dpt_reducer *r, int64_t step) { r->step = step; }

void dpt_reducer_barrier(dpt_reducer *r)
{
    dpt_watchdog_enter(r->wd, "barrier before the gradient allreduce", r->step, NULL, 0);
    r->ops->barrier(r->impl);
    dpt_watchdog_leave(r->wd);
}

void dpt_reducer_watch(dpt_reducer *r, const char *what)
{
    if (what)
        dpt_watchdog_enter(r->wd, what, r->step, NULL, 0);
    else
        dpt_watchdog_leave(r->wd);
}

static void finish(dpt_reducer *r, float *buf, int queue_only)
{
    double t0 = dpt_now();
    /* watched from here: the one allreduce blocks in start, buckets block in wait */
    dpt_watchdog_enter(r->wd, "gradient allreduce", r->step, pending_bucket(r), r->n_buckets);
    if (!r->overlap) {
        DPT_CHECK(r->n_buckets == 1, "one allreduce after backward needs a plan of one bucket");
        start_bucket(r, buf, 0);
    }
    if (queue_only && r->ops->queue)
        r->ops->queue(r->impl, buf);
    else
        r->ops->wait(r->impl, buf);
    dpt_watchdog_leave(r->wd);
    double t1 = dpt_now();
    for (int k = 0; k < r->n_buckets; k++) {
        double end = r->ops->bucket_end_s ? r->ops->bucket_end_s(r->impl, k) : 0.0;
        r->t_end[k] = end > 0.0 ? end : t1;
        dpt_nvtx_end(r->nvtx[k]);
    }
    r->last.exposed_s = t1 - t0;
    if (r->overlap)
        r->last.total_s = r->ops->busy_s ? r->ops->busy_s(r->impl) : t1 - r->t_start;
    else
        r->last.total_s = t1 - t0;
}

void dpt_reducer_finish(dpt_reducer *r, float *buf) { finish(r, buf, 0); }

void dpt_reducer_queue(dpt_reducer *r, float *buf) { finish(r, buf, 1); }

void dpt_reducer_drain(dpt_reducer *r)
{
    if (!r->ops->drain)
        return;
    dpt_watchdog_enter(r->wd, "gradient allreduce", r->step, NULL, 0);
    r->ops->drain(r->impl);
    dpt_watchdog_leave(r->wd);
}

int dpt_reducer_on_device(const dpt_reducer *r)
{
    return r->c->size == 1 || (r->s.device_buffers && r->ops->queue != NULL);
}

void dpt_reducer_replayed(dpt_reducer *r)
{
    if (r->ops->replayed)
        r->ops->replayed(r->impl);
}

dpt_reducer_stats dpt_reducer_last_stats(const dpt_reducer *r) { return r->last; }

void dpt_reducer_bucket_times(const dpt_reducer *r, int k, double *begin, double *end)
{
    *begin = r->t_begin[k];
    *end = r->t_end[k];
}

const char *dpt_reducer_path(const dpt_reducer *r) { return r->ops->name; }

void dpt_reducer_describe(const dpt_reducer *r, char *out, size_t n)
{
    const dpt_reducer_settings *s = &r->s;
    const dpt_comm *c = r->c;
    const char *prec = s->compress == DPT_COMPRESS_BF16 ? "bfloat16" : "fp32";
    if (c->size == 1) {
        snprintf(out, n, "none (one rank)");
        return;
    }
    char how[160];
    int thread = r->ops->polled_by_thread && r->ops->polled_by_thread(r->impl);
    double cap_mb = r->cap * sizeof(float) / 1048576.0;
    char cap[96] = "";
    if (r->ops->bucket_cap && cap_mb < s->bucket_mb) /* the NCCL path's rule made them smaller */
        snprintf(cap, sizeof cap, "; NCCL: at most 1/4 of the gradients, at least 1 MiB: %.3g "
                 "MiB", cap_mb);
    if (r->overlap)
        snprintf(how, sizeof how, "%d bucket%s (comm.bucket_mb %g%s) overlapped with backward%s",
                 r->n_buckets, r->n_buckets == 1 ? "" : "s", s->bucket_mb, cap,
                 thread ? " (progress thread)" : "");
    else if (s->overlap && r->n_buckets == 1)
        snprintf(how, sizeof how, "one allreduce after backward (the model fits one bucket of "
                 "comm.bucket_mb %g: nothing to overlap)", s->bucket_mb);
    else
        snprintf(how, sizeof how, "one allreduce after backward");
    if (strcmp(dpt_reducer_path(r), "NCCL") == 0)
        snprintf(out, n, "NCCL sum, %s, %s", how, prec);
    else if (s->algorithm == DPT_COMM_HIERARCHICAL)
        snprintf(out, n, "MPI hierarchical (reduce in the node, allreduce among %d node "
                 "leaders, broadcast), %s, %s", c->n_nodes, how, prec);
    else if (s->algorithm == DPT_COMM_RING && c->n_nodes == 1)
        snprintf(out, n, "MPI ring between nodes (one node here: flat allreduce), %s, %s", how,
                 prec);
    else if (s->algorithm == DPT_COMM_RING)
        snprintf(out, n, "MPI ring between nodes (reduce in the node, ring of %d KiB eager "
                 "messages among %d node leaders, broadcast), %s, %s",
                 DPT_RING_CHUNK_BYTES / 1024, c->n_nodes, how, prec);
    else
        snprintf(out, n, "MPI flat allreduce, %s, %s", how, prec);
}
