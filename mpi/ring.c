/* The pipelined ring allreduce of ring.h. With R ranks and segments 0..R-1 of the buffer, step
 * s < R-1 (reduce-scatter) sends segment (rank - s) to the right neighbour and receives segment
 * (rank - s - 1) from the left one, summing it in; after R-1 steps each rank holds one segment
 * fully summed, and steps s = R-1 .. 2R-3 (allgather) pass those along, received in place. The
 * segment a rank sends at step s is the one it received at step s-1, so each chunk (one message
 * of a segment) goes through the steps on its own: chunk j's step s+1 starts when its step s is
 * in, whatever the other chunks do. Message (s, j) has tag tag0 + s * n_chunks + j, so the
 * order in which receives are posted never matters. */
#include "ring.h"

#include <stdlib.h>
#include <string.h>

#include "comm.h"

enum { SENT = 1, RECV_POSTED = 2 };

void dpt_ring_sum_float(const void *in, void *inout, size_t n)
{
    const float *a = in;
    float *b = inout;
    for (size_t i = 0; i < n; i++)
        b[i] += a[i];
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

static size_t chunk_elems(size_t elem) { return DPT_RING_CHUNK_BYTES / elem; }

int dpt_ring_tags(size_t n, size_t elem, int size)
{
    if (size < 2)
        return 0;
    size_t seg = ceil_div(n, (size_t)size), chunks = seg ? ceil_div(seg, chunk_elems(elem)) : 1;
    size_t tags = 2 * (size_t)(size - 1) * chunks;
    return tags > (size_t)INT32_MAX ? INT32_MAX : (int)tags;
}

void dpt_ring_init(dpt_ring *r, MPI_Comm comm, MPI_Datatype type, size_t elem, dpt_ring_sum_fn sum,
                   size_t n, int tag0)
{
    memset(r, 0, sizeof *r);
    r->comm = comm;
    DPT_MPI_CHECK(MPI_Comm_rank(comm, &r->rank));
    DPT_MPI_CHECK(MPI_Comm_size(comm, &r->size));
    r->left = (r->rank + r->size - 1) % r->size;
    r->right = (r->rank + 1) % r->size;
    r->type = type;
    r->elem = elem;
    r->sum = sum;
    r->chunk = chunk_elems(elem);
    r->tag0 = tag0;
    if (r->size < 2)
        return;
    int *ub = NULL, found = 0;
    DPT_MPI_CHECK(MPI_Comm_get_attr(comm, MPI_TAG_UB, &ub, &found));
    DPT_CHECK(!found || (long long)tag0 + dpt_ring_tags(n, elem, r->size) - 1 <= *ub,
              "the ring allreduce needs more message tags than this MPI offers (MPI_TAG_UB): "
              "use comm.algorithm flat");
    size_t seg = ceil_div(n, (size_t)r->size);
    int chunks = seg ? (int)ceil_div(seg, r->chunk) : 1;
    r->step = calloc((size_t)chunks, sizeof *r->step);
    /* the receives and the sends in one array: one MPI_Testsome tests them all */
    r->rreq = malloc(3 * (size_t)chunks * sizeof *r->rreq);
    r->sreq = r->rreq ? r->rreq + chunks : NULL;
    r->flags = calloc((size_t)chunks, sizeof *r->flags);
    r->idx = malloc(3 * (size_t)chunks * sizeof *r->idx);
    r->tmp = malloc((seg ? seg : 1) * elem);
    DPT_CHECK(r->step && r->flags && r->rreq && r->idx && r->tmp, "out of memory");
    for (int j = 0; j < 3 * chunks; j++)
        r->rreq[j] = MPI_REQUEST_NULL;
    r->cap_chunks = r->n_chunks = chunks;
}

void dpt_ring_free(dpt_ring *r)
{
    free(r->step);
    free(r->flags);
    free(r->rreq); /* and sreq, the same allocation */
    free(r->idx);
    free(r->tmp);
    memset(r, 0, sizeof *r);
}

static int steps(const dpt_ring *r) { return 2 * (r->size - 1); }

/* Segment and element range [*off, *off + *len) of chunk j at step s, sent (send = 1) or
 * received. */
static void chunk_range(const dpt_ring *r, int s, int j, int send, size_t *off, size_t *len)
{
    int R = r->size, k;
    if (s < R - 1)
        k = send ? r->rank - s : r->rank - s - 1;
    else
        k = send ? r->rank + 1 - (s - (R - 1)) : r->rank - (s - (R - 1));
    k = ((k % R) + R) % R;
    size_t seg_start = (size_t)k * r->seg;
    size_t seg_len = seg_start < r->n ? r->n - seg_start : 0;
    if (seg_len > r->seg)
        seg_len = r->seg;
    size_t c0 = (size_t)j * r->chunk;
    *off = seg_start + c0;
    *len = c0 < seg_len ? (seg_len - c0 < r->chunk ? seg_len - c0 : r->chunk) : 0;
}

static int tag(const dpt_ring *r, int s, int j) { return r->tag0 + s * r->n_chunks + j; }

/* Completed requests are set to MPI_REQUEST_NULL by the MPI_Testsome calls of dpt_ring_test
 * (one pass of MPI's progress engine for all of them, rather than one per request). */
static int request_done(const MPI_Request *q) { return *q == MPI_REQUEST_NULL; }

/* Takes chunk j as far through its steps as its messages allow without waiting. A step's send
 * goes out when the chunk's send two steps back has completed (its request slot is reused); an
 * allgather receive, which lands in the buffer, is posted only when the sends that read that
 * place have completed. Returns 1 when the chunk has finished its last step. */
static int advance(dpt_ring *r, int j)
{
    int S = steps(r), *flags = &r->flags[j];
    while (r->step[j] < S) {
        int s = r->step[j];
        size_t off, len;
        if (!(*flags & SENT)) {
            if (!request_done(&r->sreq[2 * j + s % 2]))
                return 0;
            chunk_range(r, s, j, 1, &off, &len);
            DPT_MPI_CHECK(MPI_Isend(r->buf + off * r->elem, (int)len, r->type, r->right,
                                    tag(r, s, j), r->comm, &r->sreq[2 * j + s % 2]));
            *flags |= SENT;
        }
        chunk_range(r, s, j, 0, &off, &len);
        int reduce = s < r->size - 1;
        if (!(*flags & RECV_POSTED)) {
            if (!reduce && !request_done(&r->sreq[2 * j + (s + 1) % 2]))
                return 0;
            char *into = reduce ? r->tmp + (size_t)j * r->chunk * r->elem : r->buf + off * r->elem;
            DPT_MPI_CHECK(MPI_Irecv(into, (int)len, r->type, r->left, tag(r, s, j), r->comm,
                                    &r->rreq[j]));
            *flags |= RECV_POSTED;
        }
        if (!request_done(&r->rreq[j]))
            return 0;
        if (reduce)
            r->sum(r->tmp + (size_t)j * r->chunk * r->elem, r->buf + off * r->elem, len);
        r->step[j] = s + 1;
        *flags = 0;
    }
    return 1;
}

void dpt_ring_start(dpt_ring *r, void *buf, size_t n)
{
    r->buf = buf;
    r->n = n;
    if (r->size < 2)
        return;
    r->seg = ceil_div(n, (size_t)r->size);
    int chunks = r->seg ? (int)ceil_div(r->seg, r->chunk) : 1;
    DPT_CHECK(chunks <= r->cap_chunks, "dpt_ring_start: more elements than dpt_ring_init's");
    r->n_chunks = chunks;
    for (int j = 0; j < chunks; j++) {
        r->step[j] = 0;
        r->flags[j] = 0;
    }
    for (int j = 0; j < chunks; j++)
        advance(r, j);
}

/* One MPI call per test: each MPI test call runs Open MPI's progress engine, which over TCP is a
 * poll() system call, and a wait that tests many rings in a loop made hundreds of thousands of
 * them per second. */
int dpt_ring_test(dpt_ring *r)
{
    if (r->size < 2)
        return 1;
    int S = steps(r), pending = 0, out = 0;
    DPT_MPI_CHECK(MPI_Testsome(3 * r->cap_chunks, r->rreq, &out, r->idx, MPI_STATUSES_IGNORE));
    for (int j = 0; j < r->n_chunks; j++)
        if (r->step[j] < S && !advance(r, j))
            pending++;
    if (pending)
        return 0;
    for (int j = 0; j < 2 * r->n_chunks; j++) /* the last sends, tested by the next call */
        if (!request_done(&r->sreq[j]))
            return 0;
    return 1;
}
