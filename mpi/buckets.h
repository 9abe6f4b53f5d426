/* The gradient allreduce in buckets, on the MPI path: the flat gradient buffer is cut into
 * buckets (ranges of floats, set by the caller), each bucket's reduction starts with
 * non-blocking MPI as soon as the caller says its floats are final, and progresses whenever the
 * caller polls (between layers of backward) while computation goes on. As in PyTorch DDP's
 * gradient bucketing (Li et al., "PyTorch Distributed: Experiences on Accelerating Data
 * Parallel Training", VLDB 2020). Each bucket is reduced flat (one MPI_Iallreduce over all
 * ranks) or hierarchically (reduce within the node, allreduce among node leaders, broadcast
 * within the node: a small state machine per bucket), the leaders' allreduce by MPI or by
 * dptrain's ring (mpi/ring.h, for TCP links), in fp32 or compressed to bfloat16.
 * Knows nothing of the model: only offsets into one buffer of floats. */
#ifndef DPT_BUCKETS_H
#define DPT_BUCKETS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "comm.h"
#include "comm_types.h"
#include "ring.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DPT_BUCKET_IDLE,       /* not started this step */
    DPT_BUCKET_REDUCE,     /* hierarchical: MPI_Ireduce to local rank 0 */
    DPT_BUCKET_ALLREDUCE,  /* flat: MPI_Iallreduce over all ranks; hierarchical: among leaders */
    DPT_BUCKET_BCAST,      /* hierarchical: MPI_Ibcast from local rank 0 */
    DPT_BUCKET_DONE
};

typedef struct {
    size_t off, n;         /* the bucket is floats [off, off + n) of the buffer */
    size_t n_stats;        /* its last n_stats floats are statistics: always summed in fp32 */
    int phase;             /* DPT_BUCKET_* */
    double t_done;         /* this step: when its sum was complete (seen at a poll) */
    uint16_t *half;        /* (n - n_stats) bfloat16 copy, when compressing */
    int n_rings;           /* ring, on leaders of 2+ nodes: one per piece (gradients;
                            * statistics apart with bf16); 0 elsewhere */
    dpt_ring ring[2];
} dpt_bucket;

typedef struct {
    dpt_comm *c;
    dpt_comm_algorithm algorithm; /* flat: MPI_Iallreduce over all ranks; hierarchical:
                                   * MPI_Ireduce in the node, MPI_Iallreduce of leaders,
                                   * MPI_Ibcast; ring: as hierarchical, with dpt_ring among the
                                   * leaders (shared memory within a node, the ring between) */
    int bf16;              /* 1: the gradients travel as bfloat16 */
    MPI_Comm world;        /* dups, so that these collectives never meet the trainer's, and */
    MPI_Comm local_reduce; /* one per phase: ranks reach a bucket's phases at different times, */
    MPI_Comm local_bcast;  /* and collectives on one communicator must start in one order */
    MPI_Comm leaders;      /* MPI_COMM_NULL on ranks that are not their node's leader */
    MPI_Op bf16_sum;       /* MPI_OP_NULL unless bf16 */
    int ring_tags;         /* ring: tags the buckets added so far use on `leaders` */
    int n_buckets, cap;
    dpt_bucket *b;
    MPI_Request *req;      /* (2 n_buckets): bucket k's data and statistics requests */
    int *done_idx;         /* (2 n_buckets) for MPI_Testsome */
    float *buf;            /* the buffer of this step (set by dpt_buckets_start) */
    double t_start, t_end; /* this step: first bucket started, last bucket finished */
    volatile int first_pending; /* in dpt_buckets_wait: the first bucket not yet summed, read
                                 * by the watchdog (mpi/watchdog.h) for its report */
    /* the progress thread: polls the buckets in flight while the caller computes */
    int thread_on;
    pthread_t thread;
    pthread_mutex_t mu;    /* held around every MPI call of the buckets, by either thread */
    pthread_cond_t cv;
    int active;            /* buckets in flight: from a step's first start to its wait */
    int quit;
} dpt_buckets;

/* Collective over c (it duplicates c's communicators). With progress_thread (and an MPI that
 * allows calls from another thread, c->thread_serialized), a thread polls the buckets in flight
 * every DPT_BUCKETS_POLL_US while the caller computes: Open MPI only moves non-blocking
 * operations inside MPI calls, and a layer's GEMM is tens of milliseconds without one. */
void dpt_buckets_init(dpt_buckets *g, dpt_comm *c, dpt_comm_algorithm algorithm, int bf16,
                      int progress_thread);
void dpt_buckets_free(dpt_buckets *g);

/* Appends a bucket of floats [off, off + n) whose last n_stats floats are statistics. Buckets
 * must be started in the order they were added, on every rank alike. */
void dpt_buckets_add(dpt_buckets *g, size_t off, size_t n, size_t n_stats);

/* Bucket k's floats of buf are final: starts its reduction (the first bucket of a step resets
 * the others to idle). */
void dpt_buckets_start(dpt_buckets *g, float *buf, int k);

/* Drives the started buckets (MPI_Testsome) and starts their next phases. Cheap; call often. */
void dpt_buckets_progress(dpt_buckets *g);

/* Waits until every bucket is reduced (all must have been started). The buffer then holds the
 * sums, as one MPI_Allreduce of the whole buffer would (up to summation order). */
void dpt_buckets_wait(dpt_buckets *g);

/* A barrier on comm while buckets are in flight: tested between polls of the buckets, so that
 * they move on meanwhile (a blocking barrier would hold the lock, and so the progress thread,
 * for all its wait, and over TCP it queues behind the buckets' data). */
void dpt_buckets_barrier(dpt_buckets *g, MPI_Comm comm);

/* The caller's own MPI calls between a step's first dpt_buckets_start and dpt_buckets_wait
 * must sit between these two (MPI_THREAD_SERIALIZED: one thread in MPI at a time). */
void dpt_buckets_lock(dpt_buckets *g);
void dpt_buckets_unlock(dpt_buckets *g);

#define DPT_BUCKETS_POLL_US 500
/* dpt_buckets_wait on rings, dpt_buckets_barrier: one poll every this many microseconds (6 KB
 * of a 1 Gbit/s link) */
#define DPT_BUCKETS_WAIT_POLL_US 50
/* rings (comm.algorithm ring) in flight at once; the later buckets' rings wait their turn */
#define DPT_BUCKETS_RINGS_IN_FLIGHT 2

/* Seconds from the first bucket's start to the last one's end, this step (seen at the polls). */
double dpt_buckets_busy_s(const dpt_buckets *g);

/* bfloat16: the top 16 bits of an IEEE-754 float, rounded to nearest, ties to even, the
 * conversion of Intel's "BFLOAT16 - Hardware Numerics Definition" (2018) and PyTorch's
 * c10::BFloat16 (round_to_nearest_even). NaNs stay NaN (quiet), infinities stay infinite. */
static inline uint16_t dpt_bf16_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float dpt_bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* inout[i] = bf16(float(in[i]) + float(inout[i])): the MPI_Op of the compressed allreduce. */
void dpt_bf16_sum(const uint16_t *in, uint16_t *inout, size_t n);

#ifdef __cplusplus
}
#endif

#endif
