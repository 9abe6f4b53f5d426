/* Bucketed, non-blocking gradient allreduce over MPI: flat, hierarchical or hierarchical with
 * dptrain's ring between nodes, fp32 or bfloat16.
 * Open MPI (like most MPIs without an asynchronous progress thread) moves a non-blocking
 * collective (or dptrain's ring) forward only inside MPI calls, so the buckets are polled: by
 * the caller between layers of backward (dpt_buckets_progress), by the progress thread while
 * backward computes, and by the caller after backward until done (dpt_buckets_wait). */
#include "buckets.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

void dpt_bf16_sum(const uint16_t *in, uint16_t *inout, size_t n)
{
    /* added in float and rounded once, as a bfloat16 unit with fp32 accumulation would; the
     * sum of two bfloat16 values is exact in float, so the only rounding is the final one */
    for (size_t i = 0; i < n; i++)
        inout[i] = dpt_bf16_from_float(dpt_bf16_to_float(in[i]) + dpt_bf16_to_float(inout[i]));
}

static void bf16_sum_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type; /* only ever MPI_UINT16_T */
    dpt_bf16_sum(in, inout, (size_t)*len);
}

static void bf16_sum_ring(const void *in, void *inout, size_t n) { dpt_bf16_sum(in, inout, n); }

static MPI_Comm dup_or_null(MPI_Comm c)
{
    MPI_Comm d = MPI_COMM_NULL;
    if (c != MPI_COMM_NULL)
        DPT_MPI_CHECK(MPI_Comm_dup(c, &d));
    return d;
}

static void progress_locked(dpt_buckets *g);

/* The progress thread: while buckets are in flight, one poll every DPT_BUCKETS_POLL_US, under
 * the lock; asleep on the condition variable otherwise. Signals stay with the main thread. */
static void *progress_main(void *arg)
{
    dpt_buckets *g = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    const struct timespec poll = {0, DPT_BUCKETS_POLL_US * 1000L};
    pthread_mutex_lock(&g->mu);
    while (!g->quit) {
        if (!g->active) {
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        progress_locked(g);
        pthread_mutex_unlock(&g->mu);
        nanosleep(&poll, NULL);
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

void dpt_buckets_lock(dpt_buckets *g)
{
    if (g->thread_on)
        pthread_mutex_lock(&g->mu);
}

void dpt_buckets_unlock(dpt_buckets *g)
{
    if (g->thread_on)
        pthread_mutex_unlock(&g->mu);
}

void dpt_buckets_init(dpt_buckets *g, dpt_comm *c, dpt_comm_algorithm algorithm, int bf16,
                      int progress_thread)
{
    memset(g, 0, sizeof *g);
    g->c = c;
    g->algorithm = algorithm;
    g->bf16 = bf16;
    g->world = dup_or_null(c->world);
    g->local_reduce = dup_or_null(c->local);
    g->local_bcast = dup_or_null(c->local);
    g->leaders = dup_or_null(c->leaders);
    g->bf16_sum = MPI_OP_NULL;
    if (bf16)
        DPT_MPI_CHECK(MPI_Op_create(bf16_sum_op, 1, &g->bf16_sum));
    if (progress_thread && c->thread_serialized && c->size > 1) {
        DPT_CHECK(pthread_mutex_init(&g->mu, NULL) == 0 && pthread_cond_init(&g->cv, NULL) == 0,
                  "cannot create the progress thread's lock");
        DPT_CHECK(pthread_create(&g->thread, NULL, progress_main, g) == 0,
                  "cannot start the gradient buckets' progress thread");
        g->thread_on = 1;
    }
}

void dpt_buckets_free(dpt_buckets *g)
{
    if (!g->c)
        return;
    if (g->thread_on) {
        pthread_mutex_lock(&g->mu);
        g->quit = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->thread, NULL);
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
    }
    for (int k = 0; k < g->n_buckets; k++) {
        free(g->b[k].half);
        for (int i = 0; i < g->b[k].n_rings; i++)
            dpt_ring_free(&g->b[k].ring[i]);
    }
    free(g->b);
    free(g->req);
    free(g->done_idx);
    MPI_Comm *comms[] = {&g->world, &g->local_reduce, &g->local_bcast, &g->leaders};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL)
            DPT_MPI_CHECK(MPI_Comm_free(comms[i]));
    if (g->bf16_sum != MPI_OP_NULL)
        DPT_MPI_CHECK(MPI_Op_free(&g->bf16_sum));
    memset(g, 0, sizeof *g);
}

/* Gives bucket b a ring for a piece of n elements (none when n is 0), on the next free tags. */
static void add_ring(dpt_buckets *g, dpt_bucket *b, MPI_Datatype type, size_t elem,
                     dpt_ring_sum_fn sum, size_t n)
{
    if (n == 0)
        return;
    dpt_ring_init(&b->ring[b->n_rings++], g->leaders, type, elem, sum, n, g->ring_tags);
    g->ring_tags += dpt_ring_tags(n, elem, g->c->n_nodes);
}

void dpt_buckets_add(dpt_buckets *g, size_t off, size_t n, size_t n_stats)
{
    DPT_CHECK(n_stats <= n, "a bucket's statistics are part of it");
    DPT_CHECK(n <= (size_t)INT_MAX, "a gradient bucket of more than 2^31 floats: lower "
                                    "comm.bucket_mb (MPI counts are int)");
    if (g->n_buckets == g->cap) {
        int cap = g->cap ? 2 * g->cap : 8;
        dpt_bucket *b = realloc(g->b, (size_t)cap * sizeof *b);
        MPI_Request *req = realloc(g->req, 2 * (size_t)cap * sizeof *req);
        int *idx = realloc(g->done_idx, 2 * (size_t)cap * sizeof *idx);
        DPT_CHECK(b && req && idx, "out of memory");
        g->b = b;
        g->req = req;
        g->done_idx = idx;
        g->cap = cap;
    }
    int k = g->n_buckets++;
    dpt_bucket *b = &g->b[k];
    memset(b, 0, sizeof *b);
    b->off = off;
    b->n = n;
    b->n_stats = n_stats;
    if (g->bf16) {
        b->half = malloc((n - n_stats > 0 ? n - n_stats : 1) * sizeof(uint16_t));
        DPT_CHECK(b->half != NULL, "out of memory");
    }
    g->req[2 * k] = g->req[2 * k + 1] = MPI_REQUEST_NULL;
    if (g->algorithm == DPT_COMM_RING && g->leaders != MPI_COMM_NULL && g->c->n_nodes > 1) {
        /* the pieces' sizes and types, as pieces() will give them */
        size_t ng = g->bf16 ? n - n_stats : n, ns = g->bf16 ? n_stats : 0;
        if (g->bf16)
            add_ring(g, b, MPI_UINT16_T, sizeof(uint16_t), bf16_sum_ring, ng);
        else
            add_ring(g, b, MPI_FLOAT, sizeof(float), dpt_ring_sum_float, ng);
        add_ring(g, b, MPI_FLOAT, sizeof(float), dpt_ring_sum_float, ns);
    }
}

/* The pieces a phase moves: with bf16 the compressed gradients and, apart, the statistics in
 * fp32 (a correct count or a loss sum in bfloat16 would lose digits); otherwise all n floats. */
typedef struct {
    void *p;
    int count;
    MPI_Datatype type;
    MPI_Op op;
} piece;

static int pieces(dpt_buckets *g, dpt_bucket *b, piece out[2])
{
    float *f = g->buf + b->off;
    if (!g->bf16) {
        out[0] = (piece){f, (int)b->n, MPI_FLOAT, MPI_SUM};
        return 1;
    }
    int np = 0;
    size_t ng = b->n - b->n_stats;
    if (ng > 0)
        out[np++] = (piece){b->half, (int)ng, MPI_UINT16_T, g->bf16_sum};
    if (b->n_stats > 0)
        out[np++] = (piece){f + ng, (int)b->n_stats, MPI_FLOAT, MPI_SUM};
    return np;
}

/* Posts bucket k's requests for `phase`; posts none where the phase has nothing to do. */
static void post(dpt_buckets *g, int k, int phase)
{
    dpt_bucket *b = &g->b[k];
    dpt_comm *c = g->c;
    piece pc[2];
    int np = pieces(g, b, pc);
    MPI_Request *req = &g->req[2 * k];
    /* ring: hierarchical, with dptrain's ring as the leaders' allreduce; on one node, flat */
    int hierarchical = g->algorithm == DPT_COMM_HIERARCHICAL ||
                       (g->algorithm == DPT_COMM_RING && c->n_nodes > 1);
    for (int i = 0; i < np; i++) {
        piece *p = &pc[i];
        switch (phase) {
        case DPT_BUCKET_REDUCE:
            if (!hierarchical || c->local_size == 1)
                break;
            if (c->local_rank == 0)
                DPT_MPI_CHECK(MPI_Ireduce(MPI_IN_PLACE, p->p, p->count, p->type, p->op, 0,
                                          g->local_reduce, &req[i]));
            else
                DPT_MPI_CHECK(MPI_Ireduce(p->p, NULL, p->count, p->type, p->op, 0,
                                          g->local_reduce, &req[i]));
            break;
        case DPT_BUCKET_ALLREDUCE:
            if (!hierarchical && c->size > 1)
                DPT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p->p, p->count, p->type, p->op,
                                             g->world, &req[i]));
            else if (i < b->n_rings) /* ring, on the leaders of 2 or more nodes */
                dpt_ring_start(&b->ring[i], p->p, (size_t)p->count);
            else if (g->algorithm == DPT_COMM_HIERARCHICAL && g->leaders != MPI_COMM_NULL &&
                     c->n_nodes > 1)
                DPT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p->p, p->count, p->type, p->op,
                                             g->leaders, &req[i]));
            break;
        case DPT_BUCKET_BCAST:
            if (hierarchical && c->local_size > 1)
                DPT_MPI_CHECK(MPI_Ibcast(p->p, p->count, p->type, 0, g->local_bcast, &req[i]));
            break;
        default:
            break;
        }
    }
}

/* Whether bucket k's current phase has finished: its requests and, in the ring's phase, its
 * rings (tested, which moves them along). */
static int phase_done(dpt_buckets *g, int k)
{
    dpt_bucket *b = &g->b[k];
    int done = g->req[2 * k] == MPI_REQUEST_NULL && g->req[2 * k + 1] == MPI_REQUEST_NULL;
    if (b->phase == DPT_BUCKET_ALLREDUCE)
        for (int i = 0; i < b->n_rings; i++)
            done &= dpt_ring_test(&b->ring[i]);
    return done;
}

/* Moves bucket k through the phases whose requests have completed. A bucket enters a phase
 * only after the bucket before it has, so every communicator sees its collectives started in
 * bucket order on every rank (MPI requires one order per communicator), whatever order the
 * requests complete in. */
static void advance(dpt_buckets *g, int k)
{
    dpt_bucket *b = &g->b[k];
    while (b->phase != DPT_BUCKET_IDLE && b->phase != DPT_BUCKET_DONE && phase_done(g, k)) {
        int next = b->phase + 1;
        if (next != DPT_BUCKET_DONE && k > 0 && g->b[k - 1].phase < next)
            return;
        /* rings: at most DPT_BUCKETS_RINGS_IN_FLIGHT at once. Each ring in flight costs an MPI
         * test call (a poll() over TCP) per poll; the link is kept busy by two. */
        if (next == DPT_BUCKET_ALLREDUCE && b->n_rings > 0 && k >= DPT_BUCKETS_RINGS_IN_FLIGHT &&
            g->b[k - DPT_BUCKETS_RINGS_IN_FLIGHT].phase <= DPT_BUCKET_ALLREDUCE)
            return;
        b->phase = next;
        if (next == DPT_BUCKET_DONE) {
            if (g->bf16) {
                float *f = g->buf + b->off;
                for (size_t i = 0; i < b->n - b->n_stats; i++)
                    f[i] = dpt_bf16_to_float(b->half[i]);
            }
            g->t_end = b->t_done = dpt_now();
            return;
        }
        post(g, k, next);
    }
}

void dpt_buckets_start(dpt_buckets *g, float *buf, int k)
{
    DPT_CHECK(k >= 0 && k < g->n_buckets, "bucket index out of range");
    dpt_buckets_lock(g);
    if (k == 0) {
        for (int j = 0; j < g->n_buckets; j++)
            g->b[j].phase = DPT_BUCKET_IDLE;
        g->buf = buf;
        g->t_start = dpt_now();
        g->t_end = g->t_start;
    }
    dpt_bucket *b = &g->b[k];
    DPT_CHECK(b->phase == DPT_BUCKET_IDLE && (k == 0 || g->b[k - 1].phase != DPT_BUCKET_IDLE),
              "gradient buckets must start in order, once per step");
    if (g->bf16) {
        const float *f = buf + b->off;
        for (size_t i = 0; i < b->n - b->n_stats; i++)
            b->half[i] = dpt_bf16_from_float(f[i]);
    }
    b->phase = DPT_BUCKET_REDUCE;
    post(g, k, DPT_BUCKET_REDUCE);
    advance(g, k);
    if (g->thread_on && !g->active) {
        g->active = 1;
        pthread_cond_signal(&g->cv);
    }
    dpt_buckets_unlock(g);
}

static void advance_all(dpt_buckets *g)
{
    for (int k = 0; k < g->n_buckets; k++)
        advance(g, k);
}

static void progress_locked(dpt_buckets *g)
{
    /* MPI_Testsome rather than MPI_Testall: Testall reports nothing until every request is
     * complete, and the state machine must see each bucket's phase end to start the next */
    int out = 0;
    DPT_MPI_CHECK(MPI_Testsome(2 * g->n_buckets, g->req, &out, g->done_idx, MPI_STATUSES_IGNORE));
    advance_all(g);
}

void dpt_buckets_progress(dpt_buckets *g)
{
    dpt_buckets_lock(g);
    progress_locked(g);
    dpt_buckets_unlock(g);
}

/* The sleep between polls where nothing else waits on the caller's thread. */
static void nap(void)
{
    const struct timespec ts = {0, DPT_BUCKETS_WAIT_POLL_US * 1000L};
    nanosleep(&ts, NULL);
}

void dpt_buckets_barrier(dpt_buckets *g, MPI_Comm comm)
{
    MPI_Request req;
    int done = 0;
    dpt_buckets_lock(g);
    DPT_MPI_CHECK(MPI_Ibarrier(comm, &req));
    for (;;) {
        DPT_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done)
            break;
        progress_locked(g);
        dpt_buckets_unlock(g);
        nap();
        dpt_buckets_lock(g);
    }
    dpt_buckets_unlock(g);
}

void dpt_buckets_wait(dpt_buckets *g)
{
    dpt_buckets_lock(g);
    g->active = 0; /* the thread sleeps from its next turn on: this thread polls now */
    for (;;) {
        advance_all(g);
        int pending = 0;
        for (int k = g->n_buckets - 1; k >= 0; k--) {
            DPT_CHECK(g->b[k].phase != DPT_BUCKET_IDLE, "a gradient bucket was never started");
            if (g->b[k].phase != DPT_BUCKET_DONE) {
                pending++;
                g->first_pending = k;
            }
        }
        if (!pending)
            break;
        if (g->algorithm == DPT_COMM_RING) { /* rings make no request MPI_Waitsome sees */
            progress_locked(g);
            /* while only rings are in flight, polled rather than spun: a spinning wait made
             * hundreds of thousands of poll() calls a second, on a core that the ranks still
             * in backward (on the same machine) and the kernel's network stack need. Not while
             * MPI's non-blocking reduce or broadcast within the node is: it moves one round
             * per call, and with a sleep between calls the 2 x 2 step took 4x as long. */
            int mpi_pending = 0;
            for (int i = 0; i < 2 * g->n_buckets; i++)
                mpi_pending |= g->req[i] != MPI_REQUEST_NULL;
            if (!mpi_pending)
                nap();
            continue;
        }
        int out = 0;
        DPT_MPI_CHECK(
            MPI_Waitsome(2 * g->n_buckets, g->req, &out, g->done_idx, MPI_STATUSES_IGNORE));
        DPT_CHECK(out != MPI_UNDEFINED, "gradient buckets pending with no request in flight");
    }
    dpt_buckets_unlock(g);
}

double dpt_buckets_busy_s(const dpt_buckets *g) { return g->t_end - g->t_start; }
