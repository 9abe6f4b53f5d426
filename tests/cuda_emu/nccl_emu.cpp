/* The NCCL emulation over MPI. A communicator is a dup of MPI_COMM_WORLD (or of the communicator
 * dptEmuNcclSetMpiComm named, for groups of ranks); ncclCommInitRank
 * gathers every rank's view (rank, size, unique id, host, device) so that all ranks fail
 * together, with NCCL's result codes, instead of one failing and the others hanging. Detail of
 * a failure goes to ncclGetLastError, and to stderr as "NCCL WARN" when NCCL_DEBUG is set.
 * DPT_EMU_NCCL_FAIL_AFTER=N (read at init; set it on every rank): the N-th allreduce of the
 * communicator to run (replays of a captured one count) does not, and leaves ncclRemoteError as the
 * asynchronous error, which every later call returns too, as NCCL does after a remote failure.
 * DPT_EMU_NCCL_HANG_AFTER=N: the N-th allreduce call and every later one never complete (a peer that
 * stalls) until the communicator is aborted. DPT_EMU_NCCL_INIT_HANG=1: a non-blocking
 * ncclCommInitRankConfig never finishes (until aborted); a blocking one ends the process. Collectives run when their stream reaches them
 * (stream_emu.cpp), so the error shows asynchronously, as NCCL's does. ncclBfloat16 sums (and
 * averages) as NCCL's ring does: each partial sum computed in float from two bf16 values and
 * rounded to bf16 (round to nearest even) before the next rank adds to it; the emulation adds
 * in MPI's reduction order, which for 2 ranks is NCCL's one addition. A communicator's ring
 * buffers take device memory at its first collective (connect_buffers). */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_emu_internal.h"
#include "nccl.h"

using namespace dpt_emu;

struct ncclComm {
    MPI_Comm mpi;
    int rank, nranks;
    long fail_after;          /* 0: no injected fault */
    long hang_after;          /* 0: no injected hang */
    long allreduces;          /* calls so far */
    long runs;                /* allreduces run so far (a CUDA Graph's replays run without calls) */
    ncclResult_t async_error; /* ncclSuccess until a fault; ncclInProgress while initializing */
    int init_polls;           /* non-blocking init: queries left saying ncclInProgress (-1: for ever) */
    void *buffers;            /* the connection buffers on the device (connect_buffers) */
    char last_error[512];
};

namespace {

std::mutex g_lock;
std::set<const void *> g_comms;
char g_init_error[512]; /* the last failed ncclCommInitRank's detail */
MPI_Comm g_next_comm = MPI_COMM_NULL; /* dptEmuNcclSetMpiComm: the next init's ranks */

bool comm_valid(ncclComm_t c)
{
    std::lock_guard<std::mutex> g(g_lock);
    return c && g_comms.count((const void *)c);
}

/* Stores the detail where ncclGetLastError finds it; prints it when NCCL_DEBUG is set. */
void warn(char *where, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void warn(char *where, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, n, fmt, ap);
    va_end(ap);
    if (getenv("NCCL_DEBUG"))
        report("NCCL WARN", "%s", where);
}

/* What each rank tells the others at init. */
struct peer_info {
    int mpi_rank, rank, nranks, device;
    char id[NCCL_UNIQUE_ID_BYTES];
};

MPI_Datatype mpi_type(ncclDataType_t t, size_t *size)
{
    switch (t) {
    case ncclInt8: *size = 1; return MPI_INT8_T;
    case ncclUint8: *size = 1; return MPI_UINT8_T;
    case ncclInt32: *size = 4; return MPI_INT32_T;
    case ncclUint32: *size = 4; return MPI_UINT32_T;
    case ncclInt64: *size = 8; return MPI_INT64_T;
    case ncclUint64: *size = 8; return MPI_UINT64_T;
    case ncclFloat32: *size = 4; return MPI_FLOAT;
    case ncclFloat64: *size = 8; return MPI_DOUBLE;
    case ncclBfloat16: *size = 2; return MPI_UINT16_T; /* summed by bf16_sum_op */
    default: *size = 0; return MPI_DATATYPE_NULL; /* fp16, fp8: not emulated */
    }
}

/* ncclAvg: the sum divided by the rank count, in the element type (integers truncate). */
template <class T> void divide(void *buf, size_t count, int nranks)
{
    T *p = (T *)buf;
    for (size_t i = 0; i < count; i++)
        p[i] = (T)(p[i] / (T)nranks);
}

/* inout = bf16(float(in) + float(inout)): one step of NCCL's bf16 sum. */
void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const __nv_bfloat16 *a = (const __nv_bfloat16 *)in;
    __nv_bfloat16 *b = (__nv_bfloat16 *)inout;
    for (int i = 0; i < *len; i++)
        b[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

MPI_Op bf16_sum_op()
{
    static std::once_flag once;
    static MPI_Op op = MPI_OP_NULL;
    std::call_once(once, [] { MPI_Op_create(bf16_sum, 1, &op); });
    return op;
}

void bf16_divide(void *buf, size_t count, int nranks)
{
    __nv_bfloat16 *p = (__nv_bfloat16 *)buf;
    for (size_t i = 0; i < count; i++)
        p[i] = __float2bfloat16(__bfloat162float(p[i]) / (float)nranks);
}

/* The device memory of a communicator's ring connections, modelled on NCCL's: per channel one
 * receive connection with a buffer per protocol, SIMPLE (NCCL_BUFFSIZE, default 4 MiB), LL128
 * (120 x 640 threads x 8 steps x 8 bytes = 4,915,200) and LL (8 lines x 512 threads x 8 steps x
 * 16 bytes = 524,288), over NCCL_MAX_NCHANNELS channels (default 16, a ring over NVLink). A
 * communicator of one rank has no peers and no buffers. */
size_t connection_bytes(int nranks)
{
    if (nranks < 2)
        return 0;
    const char *b = getenv("NCCL_BUFFSIZE"), *c = getenv("NCCL_MAX_NCHANNELS");
    long simple = b && *b ? strtol(b, NULL, 10) : 4L << 20;
    long channels = c && *c ? strtol(c, NULL, 10) : 16;
    if (simple <= 0)
        simple = 4L << 20;
    if (channels <= 0)
        channels = 16;
    return (size_t)channels * ((size_t)simple + 4915200 + 524288);
}

/* Allocates the connection buffers on the current device: at the first collective (NCCL's lazy
 * connection, the default since NCCL 2.22) or at init when NCCL_RUNTIME_CONNECT=0. Out of
 * memory is NCCL's ncclUnhandledCudaError, with the detail in where. */
ncclResult_t connect_buffers(ncclComm_t comm, char *where, size_t n)
{
    const size_t bytes = connection_bytes(comm->nranks);
    if (comm->buffers || bytes == 0)
        return ncclSuccess;
    if (library_alloc(&comm->buffers, bytes, "NCCL connection buffer") != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b);
        warn(where, n, "Cuda failure 'out of memory': connecting rank %d's ring (%zu bytes of "
             "buffers; %zu MiB of %zu MiB free on the GPU)", comm->rank, bytes, free_b >> 20,
             total_b >> 20);
        comm->buffers = NULL;
        return ncclUnhandledCudaError;
    }
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version)
{
    if (!version)
        return ncclInvalidArgument;
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *unique_id)
{
    if (!unique_id)
        return ncclInvalidArgument;
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (got < sizeof unique_id->internal) {
            ssize_t r = read(fd, unique_id->internal + got, sizeof unique_id->internal - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close(fd);
    }
    if (got < sizeof unique_id->internal) { /* no /dev/urandom: time and pid, mixed */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t z = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                     ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < sizeof unique_id->internal; i++) {
            z += 0x9E3779B97F4A7C15ull;
            uint64_t x = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
            unique_id->internal[i] = (char)(x ^ (x >> 31));
        }
    }
    return ncclSuccess;
}

extern "C" void dptEmuNcclSetMpiCommHandle(void *comm) { g_next_comm = (MPI_Comm)comm; }

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank)
{
    return ncclCommInitRankConfig(comm, nranks, comm_id, rank, NULL);
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank,
                                    ncclConfig_t *config)
{
    char *err = g_init_error;
    const size_t n = sizeof g_init_error;
    if (!comm) {
        warn(err, n, "ncclCommInitRank: comm argument is NULL");
        return ncclInvalidArgument;
    }
    *comm = NULL;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) {
        warn(err, n, "ncclCommInitRank: the NCCL emulation runs over MPI: call MPI_Init first");
        return ncclInvalidUsage;
    }
    int device = current_device();
    if (device >= device_count()) {
        warn(err, n, "ncclCommInitRank: no CUDA device (cudaErrorNoDevice)");
        return ncclUnhandledCudaError;
    }

    /* collective from here on: every rank takes part whatever its own arguments */
    MPI_Comm world = MPI_COMM_NULL, local = MPI_COMM_NULL;
    MPI_Comm over = g_next_comm != MPI_COMM_NULL ? g_next_comm : MPI_COMM_WORLD;
    g_next_comm = MPI_COMM_NULL;
    if (MPI_Comm_dup(over, &world) != MPI_SUCCESS) {
        warn(err, n, "ncclCommInitRank: MPI_Comm_dup failed");
        return ncclSystemError;
    }
    MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN);
    int wrank = 0, wsize = 0;
    MPI_Comm_rank(world, &wrank);
    MPI_Comm_size(world, &wsize);
    peer_info me;
    memset(&me, 0, sizeof me);
    me.mpi_rank = wrank;
    me.rank = rank;
    me.nranks = nranks;
    me.device = physical_device(device); /* NCCL compares the GPUs themselves (bus ids) */
    memcpy(me.id, comm_id.internal, sizeof me.id);
    std::vector<peer_info> all((size_t)wsize), here;
    int lsize = 0;
    bool mpi_ok =
        MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all.data(), (int)sizeof me, MPI_BYTE,
                      world) == MPI_SUCCESS &&
        MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
            MPI_SUCCESS &&
        MPI_Comm_size(local, &lsize) == MPI_SUCCESS;
    if (mpi_ok) {
        here.resize((size_t)lsize);
        mpi_ok = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, here.data(), (int)sizeof me,
                               MPI_BYTE, local) == MPI_SUCCESS;
    }
    if (local != MPI_COMM_NULL)
        MPI_Comm_free(&local);
    if (!mpi_ok) {
        MPI_Comm_free(&world);
        warn(err, n, "ncclCommInitRank: MPI exchange of the rank information failed");
        return ncclSystemError;
    }

    /* the verdict: this rank's own fault first, else any other rank's (so none hangs) */
    ncclResult_t res = ncclSuccess;
    if (nranks != wsize || rank != wrank) {
        warn(err, n,
             "ncclCommInitRank: rank %d of nranks %d given, but this is MPI rank %d of %d (the "
             "emulation spans the MPI communicator given by dptEmuNcclSetMpiComm, or "
             "MPI_COMM_WORLD)",
             rank, nranks, wrank, wsize);
        res = ncclInvalidArgument;
    } else if (memcmp(me.id, all[0].id, sizeof me.id) != 0) {
        warn(err, n,
             "ncclCommInitRank: this rank's ncclUniqueId differs from rank 0's (broadcast "
             "the id from one rank before init)");
        res = ncclInvalidUsage;
    }
    for (const peer_info &p : here)
        if (res == ncclSuccess && p.mpi_rank != wrank && p.device == me.device) {
            /* NCCL's words, from its transport set-up */
            warn(err, n,
                 "Duplicate GPU detected : rank %d and rank %d both on CUDA device %d "
                 "(emulated; physical device %d of the host)",
                 wrank, p.mpi_rank, device, me.device);
            res = ncclInvalidUsage;
        }
    for (const peer_info &p : all) {
        if (res != ncclSuccess)
            break;
        if (p.nranks != wsize || p.rank != p.mpi_rank ||
            memcmp(p.id, all[0].id, sizeof p.id) != 0) {
            warn(err, n, "ncclCommInitRank: rank %d failed to initialize", p.mpi_rank);
            res = ncclRemoteError;
        }
    }
    for (const peer_info &p : here) /* two other ranks of this host sharing a device */
        for (const peer_info &q : here)
            if (res == ncclSuccess && p.mpi_rank < q.mpi_rank && p.device == q.device) {
                warn(err, n, "ncclCommInitRank: Duplicate GPU detected on ranks %d and %d",
                     p.mpi_rank, q.mpi_rank);
                res = ncclRemoteError;
            }
    if (res != ncclSuccess) {
        MPI_Comm_free(&world);
        return res;
    }

    ncclComm_t c = new ncclComm;
    c->mpi = world;
    c->rank = wrank;
    c->nranks = wsize;
    const char *fa = getenv("DPT_EMU_NCCL_FAIL_AFTER");
    c->fail_after = fa ? strtol(fa, NULL, 10) : 0;
    const char *ha = getenv("DPT_EMU_NCCL_HANG_AFTER");
    c->hang_after = ha ? strtol(ha, NULL, 10) : 0;
    c->allreduces = 0;
    c->runs = 0;
    c->async_error = ncclSuccess;
    c->init_polls = 0;
    c->buffers = NULL;
    c->last_error[0] = '\0';
    const char *rc = getenv("NCCL_RUNTIME_CONNECT");
    if (rc && strcmp(rc, "0") == 0 && connect_buffers(c, err, n) != ncclSuccess) {
        MPI_Comm_free(&c->mpi);
        delete c;
        return ncclUnhandledCudaError;
    }
    /* non-blocking: the work above is done, but the caller must poll for it as on NCCL, where
     * it runs in the background; the injected hang never finishes */
    const bool nonblocking = config && config->blocking == 0;
    const char *ih = getenv("DPT_EMU_NCCL_INIT_HANG");
    const bool hang = ih && strcmp(ih, "1") == 0;
    if (hang && !nonblocking) { /* NCCL would block here for ever: say so and end instead */
        fprintf(stderr, "nccl_emu: ncclCommInitRank never returns (an injected hang, "
                "DPT_EMU_NCCL_INIT_HANG=1); a blocking init would hang here\n");
        _Exit(70);
    }
    if (nonblocking) {
        c->async_error = ncclInProgress;
        c->init_polls = hang ? -1 : 0;
    }
    std::lock_guard<std::mutex> g(g_lock);
    g_comms.insert(c);
    *comm = c;
    return nonblocking ? ncclInProgress : ncclSuccess;
}

/* The collective itself, when its stream runs it: over MPI, or the injected asynchronous error
 * (DPT_EMU_NCCL_FAIL_AFTER). Nothing on a communicator aborted meanwhile. */
static void run_allreduce(ncclComm_t comm, const void *sendbuff, void *recvbuff, size_t count,
                          MPI_Datatype mt, ncclDataType_t datatype, ncclRedOp_t op)
{
    if (!comm_valid(comm) || comm->async_error != ncclSuccess)
        return;
    const long nth = ++comm->runs; /* the fault counts runs: replays of a captured call too */
    char *err = comm->last_error;
    const size_t n = sizeof comm->last_error;
    size_t esize = 0;
    (void)mpi_type(datatype, &esize);
    const size_t bytes = count * esize;
    if (comm->fail_after > 0 && nth == comm->fail_after) {
        /* the injected fault: queued fine, then lost; the result is garbage */
        memset(recvbuff, 0xff, bytes);
        warn(err, n, "AllReduce %ld: injected remote error (DPT_EMU_NCCL_FAIL_AFTER)", nth);
        comm->async_error = ncclRemoteError;
        return;
    }
    static const MPI_Op ops[] = {MPI_SUM, MPI_PROD, MPI_MAX, MPI_MIN, MPI_SUM};
    const MPI_Op mop = datatype == ncclBfloat16 ? bf16_sum_op() : ops[op];
    int rc = MPI_Allreduce(sendbuff == recvbuff ? MPI_IN_PLACE : sendbuff, recvbuff, (int)count,
                           mt, mop, comm->mpi);
    if (rc != MPI_SUCCESS) {
        warn(err, n, "AllReduce: MPI_Allreduce failed (%d)", rc);
        comm->async_error = ncclSystemError;
        return;
    }
    if (op == ncclAvg) {
        switch (datatype) {
        case ncclInt8: divide<int8_t>(recvbuff, count, comm->nranks); break;
        case ncclUint8: divide<uint8_t>(recvbuff, count, comm->nranks); break;
        case ncclInt32: divide<int32_t>(recvbuff, count, comm->nranks); break;
        case ncclUint32: divide<uint32_t>(recvbuff, count, comm->nranks); break;
        case ncclInt64: divide<int64_t>(recvbuff, count, comm->nranks); break;
        case ncclUint64: divide<uint64_t>(recvbuff, count, comm->nranks); break;
        case ncclFloat32: divide<float>(recvbuff, count, comm->nranks); break;
        case ncclFloat64: divide<double>(recvbuff, count, comm->nranks); break;
        case ncclBfloat16: bf16_divide(recvbuff, count, comm->nranks); break;
        default: break;
        }
    }
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream)
{
    if (!comm_valid(comm)) {
        warn(g_init_error, sizeof g_init_error, "AllReduce: invalid communicator %p",
             (void *)comm);
        return ncclInvalidArgument;
    }
    char *err = comm->last_error;
    const size_t n = sizeof comm->last_error;
    if (comm->async_error != ncclSuccess) /* a broken communicator stays broken */
        return comm->async_error;
    size_t esize = 0;
    MPI_Datatype mt = mpi_type(datatype, &esize);
    if (mt == MPI_DATATYPE_NULL) {
        warn(err, n, "AllReduce: datatype %d is not emulated (8/32/64-bit types, bfloat16)",
             (int)datatype);
        return ncclInvalidArgument;
    }
    if ((unsigned)op >= (unsigned)ncclNumOps) {
        warn(err, n, "AllReduce: invalid reduction operation %d", (int)op);
        return ncclInvalidArgument;
    }
    if (datatype == ncclBfloat16 && op != ncclSum && op != ncclAvg) {
        warn(err, n, "AllReduce: ncclBfloat16 with operation %d is not emulated (sum, avg)",
             (int)op);
        return ncclInvalidArgument;
    }
    if (!stream_valid(stream)) {
        warn(err, n, "AllReduce: stream %p is not a live stream", (void *)stream);
        return ncclInvalidArgument; /* NCCL meets the CUDA error when it enqueues */
    }
    if (count == 0)
        return ncclSuccess;
    if (!sendbuff || !recvbuff) {
        warn(err, n, "AllReduce : %s argument is NULL", sendbuff ? "recvbuff" : "sendbuff");
        return ncclInvalidArgument;
    }
    /* NCCL checks that both buffers are device memory; the emulation checks the whole range */
    if (count > (size_t)INT32_MAX) {
        warn(err, n, "AllReduce: count %zu exceeds what the MPI emulation carries", count);
        return ncclInvalidArgument;
    }
    const size_t bytes = count * esize;
    if (!check_range("ncclAllReduce", "sendbuff", sendbuff, bytes, MEM_DEVICE) ||
        !check_range("ncclAllReduce", "recvbuff", recvbuff, bytes, MEM_DEVICE)) {
        warn(err, n, "AllReduce: a buffer is not inside one device allocation");
        return ncclInvalidArgument;
    }

    ncclResult_t connected = connect_buffers(comm, err, n);
    if (connected != ncclSuccess)
        return connected;
    comm->allreduces++;
    if (comm->hang_after > 0 && comm->allreduces >= comm->hang_after) {
        /* the injected hang: queued fine, never completes until the communicator is aborted */
        enqueue_hang(stream, [comm] { return comm_valid(comm); });
        return ncclSuccess;
    }
    /* runs when the stream reaches it, as NCCL's kernel does (at each replay when captured) */
    enqueue(stream, [=] { run_allreduce(comm, sendbuff, recvbuff, count, mt, datatype, op); });
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error)
{
    if (!comm_valid(comm) || !async_error)
        return ncclInvalidArgument;
    std::lock_guard<std::mutex> g(g_lock);
    *async_error = comm->async_error;
    if (comm->async_error == ncclInProgress && comm->init_polls >= 0 && comm->init_polls-- == 0)
        comm->async_error = ncclSuccess; /* the init finished: the next query says so */
    return ncclSuccess;
}

/* Local: frees this rank's side without talking to the others (they may be gone). The MPI
 * communicator is left to MPI_Finalize, since freeing it is collective. */
ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (!comm)
        return ncclSuccess;
    std::lock_guard<std::mutex> g(g_lock);
    if (!g_comms.erase((const void *)comm))
        return ncclInvalidArgument;
    (void)library_free(comm->buffers);
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm)
        return ncclSuccess;
    synchronize_all(); /* its queued collectives complete first */
    {
        std::lock_guard<std::mutex> g(g_lock);
        if (!g_comms.erase((const void *)comm))
            return ncclInvalidArgument;
    }
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin)
        MPI_Comm_free(&comm->mpi);
    (void)library_free(comm->buffers);
    delete comm;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result)
{
    /* NCCL's own wording */
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
        return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm)
{
    if (comm && comm_valid(comm) && comm->last_error[0])
        return comm->last_error;
    return g_init_error;
}

} /* extern "C" */
