/* The gradient reducer: the one interface that sums the flat gradient buffer across ranks, used
 * by the training step and by `dptrain bench allreduce` alike, so the benchmark times exactly
 * what a step calls. It plans the buckets, starts bucket k when backward has produced it, moves
 * the buckets in flight along, finishes (waits), keeps the step's times and describes itself in
 * one line. Behind it: MPI (flat, hierarchical, ring; fp32 or bf16 on the wire; mpi/buckets.c)
 * or NCCL on device buffers (mpi/reducer_nccl.c). dpt_reducer_create is the one place that
 * decides which, and the one place that refuses a combination. */
#ifndef DPT_REDUCER_H
#define DPT_REDUCER_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "comm_types.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* At most this many pieces of a buffer (whole layers, or blocks of a large layer's rows), and
 * so buckets, in one plan. */
#define DPT_REDUCER_MAX_PIECES 256

/* Device buffers without NCCL are summed through a host copy, made by these. */
typedef struct {
    void *ctx;
    void (*download)(void *ctx, void *host, const void *dev, size_t bytes);
    void (*upload)(void *ctx, void *dev, const void *host, size_t bytes); /* and waits for it */
} dpt_reducer_copy;

/* What the reducer is built from: the comm.* settings and where the buffer lives. */
typedef struct {
    dpt_comm_algorithm algorithm; /* comm.algorithm (the MPI path) */
    dpt_compress compress;        /* comm.compress (the MPI path) */
    double bucket_mb;             /* comm.bucket_mb: a bucket closes once it holds this much */
    int overlap;                  /* comm.overlap: buckets start during backward */
    int progress_thread;          /* overlapped MPI buckets are polled by a thread meanwhile */
    double timeout_s;             /* run.comm_timeout_s: the watchdog (both paths); <= 0 waits
                                   * forever */
    int device_buffers;           /* 1: the buffer is device memory (the CUDA backend) */
    void *stream;                 /* device buffers: the compute stream (cudaStream_t) that
                                   * produces the gradients */
    dpt_reducer_copy copy;        /* device buffers without NCCL */
} dpt_reducer_settings;

typedef struct dpt_reducer dpt_reducer;

/* The last finished step's communication, in seconds. */
typedef struct {
    double exposed_s; /* in dpt_reducer_finish: waiting after backward */
    double total_s;   /* from the first bucket's start to the last one's end */
} dpt_reducer_stats;

/* Builds the reducer over c: NCCL for device buffers on 2 or more ranks (when built with NCCL),
 * MPI otherwise. Collective (NCCL's set-up). Returns DPT_OK, or DPT_EUSAGE with the message in
 * err (and *out NULL) for a combination it refuses (the same on every rank). */
int dpt_reducer_create(dpt_reducer **out, dpt_comm *c, const dpt_reducer_settings *s,
                       dpt_error *err);
/* Collective; safe on NULL. */
void dpt_reducer_free(dpt_reducer *r);

/* How many blocks of rows backward should cut a layer of `floats` floats (`rows` output rows)
 * into, so that its gradient can leave in buckets of about comm.bucket_mb (on the NCCL path at
 * most 1/4 of the whole buffer of n floats, at least 1 MiB: reducer_nccl.c): 1 unless the
 * buckets overlap backward, at most rows and at most budget. */
int dpt_reducer_blocks(const dpt_reducer *r, double n, double floats, int rows, int budget);

/* Plans the buckets over a buffer of n floats whose last n_stats floats are statistics (always
 * summed in fp32, and with the first bucket), produced in n_pieces pieces in the order backward
 * finishes them: piece i begins at float start[i] and ends where piece i - 1 begins (piece 0
 * at n). As PyTorch DDP closes a bucket once it reaches bucket_cap_mb
 * (compute_bucket_assignment_by_size; Li et al., VLDB 2020), a bucket closes at the first piece
 * that brings it to comm.bucket_mb; the last piece closes the last bucket. Without overlap: one
 * bucket, the whole buffer. Collective (MPI buckets duplicate communicators); may be called
 * again to replace the plan. */
void dpt_reducer_plan(dpt_reducer *r, size_t n, size_t n_stats, const size_t *start,
                      int n_pieces);

/* 1 when the plan's buckets start during backward (call dpt_reducer_piece_done as pieces are
 * produced), 0 when the buffer is summed in one piece by dpt_reducer_finish. */
int dpt_reducer_overlaps(const dpt_reducer *r);
int dpt_reducer_n_buckets(const dpt_reducer *r);

/* Piece i of the plan is final in buf: starts the bucket it completes, if any, and moves the
 * buckets in flight along (Open MPI progresses non-blocking collectives only inside MPI calls).
 * The layer hook of backward. */
void dpt_reducer_piece_done(dpt_reducer *r, float *buf, int piece);

/* A barrier over all ranks that lets buckets in flight move on meanwhile (the benchmark's
 * split of waiting for a slower rank from the allreduce itself). */
void dpt_reducer_barrier(dpt_reducer *r);

/* The caller's step number, named by the watchdog's report if this step's collective stalls
 * (run.comm_timeout_s on the MPI path: mpi/watchdog.h). */
void dpt_reducer_set_step(dpt_reducer *r, int64_t step);

/* The caller enters (what: a string that outlives the wait) or leaves (NULL) a collective of its
 * own beside the gradient allreduce (evaluation's sums, the checkpoint's agreement): the MPI
 * path's watchdog times it as it times the allreduce, so a rank stalled there is named too. */
void dpt_reducer_watch(dpt_reducer *r, const char *what);

/* After backward: sums buf in one piece (no overlap) or waits for every bucket. buf then holds
 * the sums on every rank, as one MPI_Allreduce of the whole buffer would (up to summation
 * order). */
void dpt_reducer_finish(dpt_reducer *r, float *buf);
/* As finish, but on the NCCL path without a host wait: the device work queued next (the
 * optimizer) is ordered after the sums, and dpt_reducer_drain waits for them on the host with the
 * watchdog (before the host reads anything the sums produced). The MPI path waits here. */
void dpt_reducer_queue(dpt_reducer *r, float *buf);
void dpt_reducer_drain(dpt_reducer *r);
/* 1 when a step's sums need nothing of the host (one rank, or NCCL): the step may be captured
 * as a CUDA Graph. After each replay of one, dpt_reducer_replayed arms the watchdog's event. */
int dpt_reducer_on_device(const dpt_reducer *r);
void dpt_reducer_replayed(dpt_reducer *r);
dpt_reducer_stats dpt_reducer_last_stats(const dpt_reducer *r);
/* The last finished step's bucket k (0 <= k < dpt_reducer_n_buckets): when it started and
 * when its sum was complete (dpt_now seconds; the end of dpt_reducer_finish where the path
 * does not tell buckets apart). For run.trace. */
void dpt_reducer_bucket_times(const dpt_reducer *r, int k, double *begin, double *end);

/* "NCCL" or "MPI": which library sums the buffer. */
const char *dpt_reducer_path(const dpt_reducer *r);

/* One line on how the buffer travels: path, algorithm, buckets, overlap, precision. */
void dpt_reducer_describe(const dpt_reducer *r, char *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif
