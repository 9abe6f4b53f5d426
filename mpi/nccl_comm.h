/* The gradient allreduce on GPUs: one NCCL communicator over all ranks of a dpt_comm, set up
 * through MPI (rank 0 makes the unique id and broadcasts it), and sums of one flat device buffer
 * (whole, or bucket by bucket during backward) queued on a communication stream ordered by
 * events, waited for with a timeout so that a dead or stalled peer ends the job with a message
 * naming the collective and the rank instead of a hang. */
#ifndef DPT_NCCL_COMM_H
#define DPT_NCCL_COMM_H

#include <stddef.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    ncclComm_t comm;   /* NULL until dpt_nccl_init */
    cudaStream_t stream; /* communication stream: NCCL work runs here, beside the compute */
    cudaEvent_t ready;   /* recorded on the compute stream when the gradients are complete */
    cudaEvent_t done;    /* recorded behind each allreduce, polled for completion */
    int rank, size;    /* in the MPI communicator it was made from, the same numbering NCCL uses */
    int local_rank;    /* for messages */
    size_t pending;    /* floats in the allreduces started since the last finish */
    int started;       /* allreduces started since the last finish */
    size_t queued;     /* floats of the last step queued behind `done` (for messages) */
    int queued_n;      /* its allreduces */
    int queued_steps;  /* steps queued behind `done` that no host wait has seen complete */
} dpt_nccl;

/* Collective over c->world. The caller has already selected this rank's device
 * (cudaSetDevice, done by dpt_cuda_backend_init); each rank must own a different GPU. An init
 * not finished after timeout_s (<= 0: no limit) ends the job, as a collective does. */
void dpt_nccl_init(dpt_nccl *n, dpt_comm *c, double timeout_s);

/* The allreduce of the reducer's NCCL path, whole or bucket by bucket during backward: queues
 * the sum of count floats of dev_buf in place across all ranks on the communication stream
 * behind an event recorded now on `stream` (the compute stream), so it runs as soon as the
 * compute work queued so far (this bucket's gradients) is done, while later compute goes on.
 * Returns at once. Buckets must be started in the same order on every rank. */
void dpt_nccl_allreduce_start(dpt_nccl *n, float *dev_buf, size_t count, cudaStream_t stream);

/* As dpt_nccl_allreduce_start with the count floats travelling as bfloat16 (comm.compress:
 * bf16): on the communication stream, converted into half (count bf16 elements of device
 * memory, 2 bytes each), summed by ncclAllReduce with ncclBfloat16 (NCCL adds in float and
 * rounds each partial sum to bf16), and converted back into dev_buf. */
void dpt_nccl_allreduce_start_bf16(dpt_nccl *n, float *dev_buf, void *half, size_t count,
                                   cudaStream_t stream);

/* Orders later work on `stream` after every allreduce started so far (the optimizer reads the
 * sums), without waiting on the host: an event is recorded behind them for dpt_nccl_wait. An
 * NCCL error already known ends the job. */
void dpt_nccl_allreduce_queue(dpt_nccl *n, cudaStream_t stream);

/* The watchdog: waits on the host, polling the event behind the allreduces queued so far (no
 * blocking synchronize, so the wait has a limit). timeout_s <= 0 waits forever. On an NCCL error
 * or the timeout the communicator is aborted and the job ends through dpt_fatal. */
void dpt_nccl_wait(dpt_nccl *n, double timeout_s);

/* A CUDA Graph holding this communicator's allreduces (captured through allreduce_start and
 * allreduce_queue) was launched on `stream`: the event dpt_nccl_wait polls is recorded there now,
 * behind the replay (the one recorded during the capture is a node of the graph). */
void dpt_nccl_replayed(dpt_nccl *n, cudaStream_t stream);

/* dpt_nccl_allreduce_queue, then dpt_nccl_wait. */
void dpt_nccl_allreduce_finish(dpt_nccl *n, cudaStream_t stream, double timeout_s);

/* "NCCL 2.28.3" (the library's version, no device needed), for `dptrain --version`. */
void dpt_nccl_describe(char *out, size_t n);
/* Collective (ncclCommDestroy); safe on a zeroed or already freed dpt_nccl. */
void dpt_nccl_free(dpt_nccl *n);

#ifdef __cplusplus
}
#endif

#endif
