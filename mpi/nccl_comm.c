/* NCCL set-up over MPI and the gradient allreduce with a timeout. Written in C against nccl.h
 * and cuda_runtime.h (or the host emulation's versions of them in CI); of the CUDA backend only
 * its C header, to count the host waits with the backend's own. NCCL itself never times
 * out, so completion is polled: a peer that died or stalls would otherwise hang every rank. */
#define _POSIX_C_SOURCE 200809L
#include "nccl_comm.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cuda_backend.h"
#include "error.h"

/* CUDA runtime calls: a failure ends the job (dpt_fatal). Its own macro rather than the CUDA
 * backend's cuda/check.h, so that the backend and this file depend on each other in no way. */
#define DPT_NCCL_CUDA_CHECK(stmt)                                                           \
    do {                                                                                    \
        cudaError_t dpt_ce_ = (stmt);                                                       \
        if (dpt_ce_ != cudaSuccess)                                                         \
            dpt_fatal(__FILE__, __LINE__, #stmt, cudaGetErrorString(dpt_ce_));              \
    } while (0)

/* NCCL calls: a failure ends the job (dpt_fatal), with where to look next. */
#define DPT_NCCL_CHECK(stmt)                                                                \
    do {                                                                                    \
        ncclResult_t dpt_nr_ = (stmt);                                                      \
        if (dpt_nr_ != ncclSuccess) {                                                       \
            char dpt_nmsg_[512];                                                            \
            snprintf(dpt_nmsg_, sizeof dpt_nmsg_,                                           \
                     "%s (NCCL_DEBUG=INFO prints NCCL's own account; across machines check " \
                     "NCCL_SOCKET_IFNAME)",                                                 \
                     ncclGetErrorString(dpt_nr_));                                          \
            dpt_fatal(__FILE__, __LINE__, #stmt, dpt_nmsg_);                                \
        }                                                                                   \
    } while (0)

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sleeps between polls of a wait: yields the core for the first millisecond (small operations
 * finish within it), then 100 us at a time so a long wait does not burn a core. */
static void poll_pause(double waited)
{
#ifdef DPT_CUDA_EMU
    /* the emulation runs the queued work inside the queries themselves (one operation each): a
     * pause would only delay it, by 100 us an operation over a read's ten steps of work */
    waited = 0.0;
#endif
    if (waited < 1e-3) {
        sched_yield();
    } else {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

/* Non-blocking init (NCCL 2.14+), polled as the collectives are: a rank whose peers never
 * join (dead, or stuck before their init) would otherwise wait in ncclCommInitRank for ever. */
static void init_comm(dpt_nccl *n, ncclUniqueId id, double timeout_s)
{
    char what[96], msg[512];
    snprintf(what, sizeof what, "ncclCommInitRankConfig(non-blocking) on rank %d of %d", n->rank,
             n->size);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t rc = ncclCommInitRankConfig(&n->comm, n->size, id, n->rank, &config);
    double start = monotonic_s();
    ncclResult_t state = rc;
    while (state == ncclInProgress) {
        double waited = monotonic_s() - start;
        if (timeout_s > 0 && waited > timeout_s) {
            snprintf(msg, sizeof msg, "not finished after %.1f s (run.comm_timeout_s %g): a peer "
                     "rank died or never reached its init (check its log; across machines also "
                     "NCCL_SOCKET_IFNAME) (communicator aborted)", waited, timeout_s);
            ncclCommAbort(n->comm);
            n->comm = NULL;
            dpt_fatal(__FILE__, __LINE__, what, msg);
        }
        poll_pause(waited);
        if (ncclCommGetAsyncError(n->comm, &state) != ncclSuccess)
            state = ncclInvalidArgument;
    }
    if (state != ncclSuccess) {
        snprintf(msg, sizeof msg, "%s (%s; NCCL_DEBUG=INFO prints NCCL's own account)",
                 ncclGetErrorString(state), ncclGetLastError(n->comm));
        if (n->comm)
            ncclCommAbort(n->comm);
        n->comm = NULL;
        dpt_fatal(__FILE__, __LINE__, what, msg);
    }
}

void dpt_nccl_init(dpt_nccl *n, dpt_comm *c, double timeout_s)
{
    MPI_Comm comm = c->world;
    memset(n, 0, sizeof *n);
    DPT_MPI_CHECK(MPI_Comm_rank(comm, &n->rank));
    DPT_MPI_CHECK(MPI_Comm_size(comm, &n->size));
    n->local_rank = c->device;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (n->rank == 0)
        DPT_NCCL_CHECK(ncclGetUniqueId(&id));
    DPT_MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm));
#ifdef DPT_CUDA_EMU
    /* the emulation carries NCCL over MPI and must be told which ranks meet (real NCCL's
     * ranks find each other through the unique id) */
    dptEmuNcclSetMpiComm(comm);
#endif
    init_comm(n, id, timeout_s);
    /* the greatest priority: a bucket's allreduce queued during backward is scheduled ahead of
     * the compute stream's waiting kernels, so it runs beside backward instead of after it */
    int greatest = 0;
    DPT_NCCL_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(NULL, &greatest));
    DPT_NCCL_CUDA_CHECK(cudaStreamCreateWithPriority(&n->stream, cudaStreamNonBlocking, greatest));
    DPT_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming));
    DPT_NCCL_CUDA_CHECK(cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming));
}

/* Ends the job after aborting the communicator (so no NCCL kernel keeps this rank's GPU busy
 * and the peers' collectives fail instead of waiting for us). */
static _Noreturn void fail_collective(dpt_nccl *n, int line, size_t count, const char *detail)
{
    char what[160], msg[512];
    snprintf(what, sizeof what, "ncclAllReduce(sum, %zu floats%s) on rank %d of %d", count,
             (n->started ? n->started : n->queued_n) > 1 ? " in buckets" : "", n->rank,
             n->size);
    snprintf(msg, sizeof msg, "%s (communicator aborted; NCCL_DEBUG=INFO prints NCCL's own "
             "account)", detail);
    if (n->comm) {
        ncclCommAbort(n->comm);
        n->comm = NULL;
    }
    dpt_fatal(__FILE__, line, what, msg);
}

/* The communication stream waits for the compute queued so far on `stream`: the bucket's
 * gradients are complete once the compute stream reaches this point; the comm stream waits for
 * that, not for the compute queued later (the rest of backward). */
static void comm_stream_waits(dpt_nccl *n, cudaStream_t stream)
{
    DPT_NCCL_CUDA_CHECK(cudaEventRecord(n->ready, stream));
    DPT_NCCL_CUDA_CHECK(cudaStreamWaitEvent(n->stream, n->ready, 0));
}

/* ncclSum, not ncclAvg: every rank scaled its loss by 1/(global batch), so the sum is the mean
 * over the global batch even when R does not divide it (shards of B/R and B/R + 1 rows), where
 * ncclAvg's 1/R weighting would be wrong. */
static void queue_sum(dpt_nccl *n, void *dev_buf, size_t count, ncclDataType_t type)
{
    ncclResult_t rc = ncclAllReduce(dev_buf, dev_buf, count, type, ncclSum, n->comm, n->stream);
    if (rc != ncclSuccess)
        fail_collective(n, __LINE__, count, ncclGetErrorString(rc));
    n->pending += count;
    n->started++;
}

void dpt_nccl_allreduce_start(dpt_nccl *n, float *dev_buf, size_t count, cudaStream_t stream)
{
    if (count == 0)
        return;
    comm_stream_waits(n, stream);
    dpt_cuda_mark(DPT_MARK_COMM, (void *)n->stream); /* bench train's timing: once armed */
    queue_sum(n, dev_buf, count, ncclFloat);
    dpt_cuda_mark(DPT_MARK_COMM_END, (void *)n->stream);
}

void dpt_nccl_allreduce_start_bf16(dpt_nccl *n, float *dev_buf, void *half, size_t count,
                                   cudaStream_t stream)
{
    if (count == 0)
        return;
    comm_stream_waits(n, stream);
    /* all three on the comm stream, in order: the compute stream goes on with backward */
    dpt_cuda_mark(DPT_MARK_COMM, (void *)n->stream);
    dpt_cuda_to_bf16(half, dev_buf, count, (void *)n->stream);
    queue_sum(n, half, count, ncclBfloat16);
    dpt_cuda_from_bf16(dev_buf, half, count, (void *)n->stream);
    dpt_cuda_mark(DPT_MARK_COMM_END, (void *)n->stream);
}

/* An error NCCL already knows of (a peer failed): after a remote failure NCCL's kernels end with
 * the data unreduced, and only the asynchronous error tells (else: NaN, "diverged"). */
static void check_async(dpt_nccl *n, size_t count, double waited)
{
    ncclResult_t async = ncclSuccess;
    ncclResult_t rc = ncclCommGetAsyncError(n->comm, &async);
    if (rc != ncclSuccess || async != ncclSuccess) {
        char msg[512];
        snprintf(msg, sizeof msg, "NCCL error after %.1f s: %s (%s)", waited,
                 ncclGetErrorString(rc != ncclSuccess ? rc : async), ncclGetLastError(n->comm));
        fail_collective(n, __LINE__, count, msg);
    }
}

void dpt_nccl_allreduce_queue(dpt_nccl *n, cudaStream_t stream)
{
    if (n->started == 0)
        return;
    /* the comm stream runs its allreduces in the order they were queued: an event behind the
     * last one marks them (and every earlier one) done */
    DPT_NCCL_CUDA_CHECK(cudaEventRecord(n->done, n->stream));
    /* the optimizer, queued next on the compute stream, reads the summed gradients */
    DPT_NCCL_CUDA_CHECK(cudaStreamWaitEvent(stream, n->done, 0));
    n->queued = n->pending;
    n->queued_n = n->started;
    n->queued_steps++;
    n->pending = 0;
    n->started = 0;
    check_async(n, n->queued, 0.0);
}

void dpt_nccl_wait(dpt_nccl *n, double timeout_s)
{
    if (n->queued_steps == 0)
        return;
    size_t count = n->queued;
    /* a host synchronization, polled: counted as the backend counts its own */
    dpt_cuda_count(DPT_CUDA_COUNT_SYNC, 0);
    double start = monotonic_s();
    for (;;) {
        cudaError_t q = cudaEventQuery(n->done);
        double waited = monotonic_s() - start;
        char msg[512];
        if (q != cudaSuccess && q != cudaErrorNotReady) {
            snprintf(msg, sizeof msg, "CUDA error %s after %.1f s", cudaGetErrorString(q), waited);
            fail_collective(n, __LINE__, count, msg);
        }
        check_async(n, count, waited); /* also once the event completed */
        if (q == cudaSuccess) {
            n->queued_steps = 0;
            return;
        }
        if (timeout_s > 0 && waited > timeout_s) {
            snprintf(msg, sizeof msg, "not finished after %.1f s (run.comm_timeout_s %g): a peer "
                     "rank died or stalls (check its log; across machines also "
                     "NCCL_SOCKET_IFNAME)", waited, timeout_s);
            fail_collective(n, __LINE__, count, msg);
        }
        poll_pause(waited);
    }
}

void dpt_nccl_replayed(dpt_nccl *n, cudaStream_t stream)
{
    DPT_NCCL_CUDA_CHECK(cudaEventRecord(n->done, stream));
    n->queued_steps++;
    check_async(n, n->queued, 0.0);
}

void dpt_nccl_allreduce_finish(dpt_nccl *n, cudaStream_t stream, double timeout_s)
{
    dpt_nccl_allreduce_queue(n, stream);
    dpt_nccl_wait(n, timeout_s);
}

void dpt_nccl_free(dpt_nccl *n)
{
    if (n->comm)
        DPT_NCCL_CHECK(ncclCommDestroy(n->comm));
    if (n->done)
        DPT_NCCL_CUDA_CHECK(cudaEventDestroy(n->done));
    if (n->ready)
        DPT_NCCL_CUDA_CHECK(cudaEventDestroy(n->ready));
    if (n->stream)
        DPT_NCCL_CUDA_CHECK(cudaStreamDestroy(n->stream));
    memset(n, 0, sizeof *n);
}

void dpt_nccl_describe(char *out, size_t n)
{
    int v = 0; /* NCCL 2.9 and later: 10000*major + 100*minor + patch */
    if (ncclGetVersion(&v) != ncclSuccess)
        v = 0;
    snprintf(out, n, "NCCL %d.%d.%d", v / 10000, v % 10000 / 100, v % 100);
}
