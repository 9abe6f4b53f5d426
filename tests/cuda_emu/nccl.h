/* Host emulation of the NCCL subset dptrain uses, carried over MPI: a communicator is a dup of
 * MPI_COMM_WORLD, an allreduce is MPI_Allreduce. Emulates the failures worth testing: a rank or
 * size that does not match MPI's, ranks holding different unique ids, two ranks of one host on
 * the same device ("Duplicate GPU detected"), and an asynchronous remote error injected with
 * DPT_EMU_NCCL_FAIL_AFTER=N (the N-th allreduce of a communicator fails), for the watchdog. */
#ifndef DPT_CUDA_EMU_NCCL_H
#define DPT_CUDA_EMU_NCCL_H

#include <stddef.h>

#include "cuda_runtime.h"

/* The NCCL release whose API this follows; the suffix marks the emulation. */
#define NCCL_MAJOR 2
#define NCCL_MINOR 27
#define NCCL_PATCH 0
#define NCCL_SUFFIX "dptrain-host-emulation"
#define NCCL_VERSION(X, Y, Z) \
    (((X) <= 2 && (Y) <= 8) ? (X) * 1000 + (Y) * 100 + (Z) : (X) * 10000 + (Y) * 100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)

#define NCCL_UNIQUE_ID_BYTES 128

typedef struct ncclComm *ncclComm_t;
typedef struct {
    char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

/* NCCL 2.14's communicator options; the emulation reads only blocking (0: the init returns
 * ncclInProgress and ncclCommGetAsyncError says when it has finished). */
typedef struct {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
} ncclConfig_t;
#define NCCL_CONFIG_UNDEF_INT (-2147483647 - 1)
#define NCCL_CONFIG_INITIALIZER \
    {sizeof(ncclConfig_t), 0xcafebeef, NCCL_VERSION_CODE, NCCL_CONFIG_UNDEF_INT}

/* Numeric values as in the real nccl.h. */
typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
    ncclNumResults = 8
} ncclResult_t;

typedef enum {
    ncclInt8 = 0,
    ncclChar = 0,
    ncclUint8 = 1,
    ncclInt32 = 2,
    ncclInt = 2,
    ncclUint32 = 3,
    ncclInt64 = 4,
    ncclUint64 = 5,
    ncclFloat16 = 6, /* not emulated: ncclInvalidArgument */
    ncclHalf = 6,
    ncclFloat32 = 7,
    ncclFloat = 7,
    ncclFloat64 = 8,
    ncclDouble = 8,
    ncclBfloat16 = 9, /* sum and avg: float additions rounded to bf16 at each step */
    ncclNumTypes = 10
} ncclDataType_t;

typedef enum {
    ncclSum = 0,
    ncclProd = 1,
    ncclMax = 2,
    ncclMin = 3,
    ncclAvg = 4,
    ncclNumOps = 5
} ncclRedOp_t;

#ifdef __cplusplus
extern "C" {
#endif

ncclResult_t ncclGetVersion(int *version);
ncclResult_t ncclGetUniqueId(ncclUniqueId *unique_id);
/* Collective over MPI_COMM_WORLD: MPI must be initialized and nranks, rank must be MPI's. */
ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank);
/* The same with options; blocking = 0 emulates the non-blocking init: ncclInProgress, then the
 * communicator's asynchronous error is ncclInProgress for one query, or for ever with
 * DPT_EMU_NCCL_INIT_HANG=1 (an init whose peers never answer), until ncclCommAbort. */
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId comm_id, int rank,
                                    ncclConfig_t *config);
ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *async_error);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
const char *ncclGetErrorString(ncclResult_t result);
/* The detail of the last failure (of comm, or of the last failed init when comm is NULL). */
const char *ncclGetLastError(ncclComm_t comm);

#ifdef __cplusplus
}
#endif

/* Emulation only (no NCCL function): the MPI communicator the next ncclCommInitRank on this
 * rank spans, instead of MPI_COMM_WORLD; real NCCL needs none, its ranks meet through the unique
 * id. The argument is an MPI_Comm, passed as a pointer-sized handle so this header needs no
 * mpi.h (Open MPI's MPI_Comm is a pointer). */
#ifdef __cplusplus
extern "C" {
#endif
void dptEmuNcclSetMpiCommHandle(void *comm);
#ifdef __cplusplus
}
#endif
#define dptEmuNcclSetMpiComm(comm) dptEmuNcclSetMpiCommHandle((void *)(comm))

#endif
