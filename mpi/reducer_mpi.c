/* The reducer's MPI path: one MPI_Allreduce of the whole buffer after backward when that is all
 * the settings ask for (flat, fp32, no overlap: MPI's tuned algorithms, no polling), the buckets
 * of mpi/buckets.c otherwise (overlapped, hierarchical, ring or bfloat16). Device buffers
 * (a CUDA backend built without NCCL) are summed through a host copy, in one piece. */
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "reducer_impl.h"

typedef struct {
    dpt_comm *c;
    dpt_reducer_settings s;
    dpt_buckets *g;  /* NULL: one MPI_Allreduce */
    int overlap;     /* the plan's buckets start during backward */
    size_t n;        /* floats in the planned buffer */
    float *host;     /* (n) device buffers: the host copy */
} mpi_reducer;

static void drop_buckets(mpi_reducer *m)
{
    if (m->g) {
        dpt_buckets_free(m->g);
        free(m->g);
        m->g = NULL;
    }
}

static void mpi_plan(void *impl, const size_t *off, const size_t *len, int n_buckets,
                     size_t n_stats, int overlap)
{
    mpi_reducer *m = impl;
    const dpt_reducer_settings *s = &m->s;
    drop_buckets(m);
    m->overlap = overlap;
    m->n = off[0] + len[0]; /* bucket 0 holds the buffer's last floats */
    if (s->device_buffers) {
        free(m->host);
        m->host = malloc((m->n ? m->n : 1) * sizeof(float));
        DPT_CHECK(m->host != NULL, "out of memory");
    }
    if (m->c->size == 1 ||
        (!overlap && s->algorithm == DPT_COMM_FLAT && s->compress == DPT_COMPRESS_NONE))
        return;
    m->g = calloc(1, sizeof *m->g);
    DPT_CHECK(m->g != NULL, "out of memory");
    dpt_buckets_init(m->g, m->c, s->algorithm, s->compress == DPT_COMPRESS_BF16,
                     overlap && s->progress_thread);
    for (int k = 0; k < n_buckets; k++)
        dpt_buckets_add(m->g, off[k], len[k], k == 0 ? n_stats : 0);
}

static void mpi_start(void *impl, float *buf, int k, size_t off, size_t len)
{
    mpi_reducer *m = impl;
    if (m->c->size == 1)
        return;
    float *host = buf;
    if (m->s.device_buffers) { /* never overlapped: bucket 0 is the whole buffer */
        m->s.copy.download(m->s.copy.ctx, m->host, buf, m->n * sizeof(float));
        host = m->host;
    }
    if (m->g)
        dpt_buckets_start(m->g, host, k);
    else
        dpt_comm_allreduce_sum(m->c, host + off, len);
}

static void mpi_progress(void *impl)
{
    mpi_reducer *m = impl;
    if (m->g)
        dpt_buckets_progress(m->g);
}

static void mpi_wait(void *impl, float *buf)
{
    mpi_reducer *m = impl;
    if (m->c->size == 1)
        return;
    if (m->g)
        dpt_buckets_wait(m->g);
    if (m->s.device_buffers)
        m->s.copy.upload(m->s.copy.ctx, buf, m->host, m->n * sizeof(float));
}

static void mpi_barrier(void *impl)
{
    mpi_reducer *m = impl;
    if (m->overlap && m->g) { /* buckets in flight: they move on while it waits */
        dpt_buckets_barrier(m->g, m->c->world);
        return;
    }
    if (m->g)
        dpt_buckets_lock(m->g);
    DPT_MPI_CHECK(MPI_Barrier(m->c->world));
    if (m->g)
        dpt_buckets_unlock(m->g);
}

static double mpi_busy_s(void *impl) { return dpt_buckets_busy_s(((mpi_reducer *)impl)->g); }

static int mpi_polled_by_thread(const void *impl)
{
    const mpi_reducer *m = impl;
    return m->g && m->g->thread_on;
}

static const volatile int *mpi_pending_bucket(void *impl)
{
    mpi_reducer *m = impl;
    return m->g ? &m->g->first_pending : NULL;
}

static double mpi_bucket_end_s(void *impl, int k)
{
    mpi_reducer *m = impl;
    return m->g && k < m->g->n_buckets ? m->g->b[k].t_done : 0.0;
}

static void mpi_free(void *impl)
{
    mpi_reducer *m = impl;
    drop_buckets(m);
    free(m->host);
    free(m);
}

static const dpt_reducer_ops mpi_ops = {
    .name = "MPI",
    .plan = mpi_plan,
    .start = mpi_start,
    .progress = mpi_progress,
    .wait = mpi_wait,
    .barrier = mpi_barrier,
    .busy_s = mpi_busy_s,
    .polled_by_thread = mpi_polled_by_thread,
    .pending_bucket = mpi_pending_bucket,
    .bucket_end_s = mpi_bucket_end_s,
    .free = mpi_free,
};

void *dpt_reducer_mpi_create(dpt_comm *c, const dpt_reducer_settings *s,
                             const dpt_reducer_ops **ops)
{
    mpi_reducer *m = calloc(1, sizeof *m);
    DPT_CHECK(m != NULL, "out of memory");
    m->c = c;
    m->s = *s;
    *ops = &mpi_ops;
    return m;
}
