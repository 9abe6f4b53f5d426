/* dptrain's own ring allreduce over MPI point-to-point: reduce-scatter then allgather around the
 * ring of ranks (Patarasuk & Yuan 2009; the algorithm NCCL and Horovod use), every segment cut
 * into small messages sent eagerly, with each message's receive posted before its data can
 * arrive, and each chunk moving on to its next step as soon as it is in (a pipeline).
 *
 * Why not MPI_Allreduce: over TCP, Open MPI sends messages above its eager limit (64 KiB) by a
 * rendezvous, whose acknowledgement travels back on the same connection as the peer's own bulk
 * data and so waits behind it. When both directions of a link carry an allreduce's data, one
 * direction then stalls until the other drains: measured here on emulated 1 Gbit/s machines,
 * MPI_Allreduce of 16 MiB between 2 ranks took 260-280 ms on a duplicated communicator (the
 * trainer's) where 139 ms is the link's rate. Messages below the eager limit need no
 * acknowledgement, so both directions run at once (docs/cluster.md).
 *
 * Non-blocking: start, then progress as often as convenient (between layers of backward), then
 * wait. Any element type with a sum function: floats, and bfloat16 (comm.compress). Several
 * rings may be in flight on one communicator when their tag ranges (dpt_ring_tags) differ.
 * Every rank ends with the same bits: each element is summed once, on one rank, and copied. */
#ifndef DPT_RING_H
#define DPT_RING_H

#include <mpi.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* inout[i] += in[i] for n elements */
typedef void (*dpt_ring_sum_fn)(const void *in, void *inout, size_t n);

/* Bytes per message: half of Open MPI's TCP eager limit, so a message and its header always go
 * eagerly. */
#define DPT_RING_CHUNK_BYTES 32768

typedef struct {
    MPI_Comm comm;
    int rank, size, left, right;
    MPI_Datatype type;
    size_t elem;           /* bytes per element */
    dpt_ring_sum_fn sum;
    char *buf;             /* the operation in flight */
    size_t n, seg, chunk;  /* elements: in all, per segment (one per rank), per message */
    int n_chunks;          /* messages per segment, this operation */
    int cap_chunks;        /* ... at most (init's n) */
    int tag0;              /* tags tag0 .. tag0 + dpt_ring_tags() - 1 */
    int *step;             /* (n_chunks) chunk j's current step; 2(size - 1) when it is done */
    int *flags;            /* (n_chunks) what of the current step is posted: SENT, RECV_POSTED */
    MPI_Request *rreq;     /* (cap_chunks) the posted receive of each chunk, followed by: */
    MPI_Request *sreq;     /* (2 cap_chunks) sends of the chunk's last two steps */
    int *idx;              /* (3 cap_chunks) for MPI_Testsome */
    char *tmp;             /* (seg) reduce-scatter receives land here, then are summed in */
} dpt_ring;

/* Tags one operation of n elements uses on a communicator of `size` ranks. */
int dpt_ring_tags(size_t n, size_t elem, int size);

/* Prepares a ring for operations of at most n elements of `type` (elem bytes) summed by `sum`,
 * on comm, using tags tag0 onwards. Not collective. */
void dpt_ring_init(dpt_ring *r, MPI_Comm comm, MPI_Datatype type, size_t elem, dpt_ring_sum_fn sum,
                   size_t n, int tag0);
void dpt_ring_free(dpt_ring *r);

/* Starts summing buf (n elements, at most the n of init) in place across comm's ranks; buf must
 * not be touched until dpt_ring_test returns 1. */
void dpt_ring_start(dpt_ring *r, void *buf, size_t n);
/* Moves the operation along (cheap; call often). Returns 1 when it is complete. */
int dpt_ring_test(dpt_ring *r);

void dpt_ring_sum_float(const void *in, void *inout, size_t n);

#ifdef __cplusplus
}
#endif

#endif
