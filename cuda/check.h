/* The check macros for CUDA runtime and cuBLAS calls: a failure is a system failure, so it goes
 * to dpt_fatal (src/error.h), which prints "[rank R host] file:line: stmt -> error" and ends the
 * job through the hook the application installed (MPI_Abort), so that no other rank hangs. A
 * hint follows the error string where one helps.
 * Included from the .cu files (C++ under nvcc or the host emulation) and from mpi/nccl_comm.c. */
#ifndef DPT_CUDA_CHECK_H
#define DPT_CUDA_CHECK_H

#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include "cuda_backend.h"
#include "error.h"

/* What the user can do about the commonest failures. */
static inline const char *dpt_cuda_hint(cudaError_t e)
{
    if (e == cudaErrorMemoryAllocation)
        return " (out of device memory: lower train.batch_size or the layer widths in "
               "model.layers, or run fewer ranks per GPU)";
    if (e == cudaErrorNoDevice)
        return " (no CUDA device visible: check CUDA_VISIBLE_DEVICES and the driver, or run "
               "with --device cpu)";
    return "";
}

static inline const char *dpt_cublas_hint(cublasStatus_t s)
{
    if (s == CUBLAS_STATUS_ALLOC_FAILED)
        return " (out of device memory: lower train.batch_size or the layer widths)";
    if (s == CUBLAS_STATUS_NOT_INITIALIZED)
        return " (cuBLAS could not start: is the GPU visible and the driver loaded?)";
    return "";
}

#define DPT_CUDA_CHECK(stmt)                                                                \
    do {                                                                                    \
        cudaError_t dpt_ce_ = (stmt);                                                       \
        if (dpt_ce_ != cudaSuccess) {                                                       \
            char dpt_cmsg_[512];                                                            \
            snprintf(dpt_cmsg_, sizeof dpt_cmsg_, "%s%s", cudaGetErrorString(dpt_ce_),      \
                     dpt_cuda_hint(dpt_ce_));                                               \
            dpt_fatal(__FILE__, __LINE__, #stmt, dpt_cmsg_);                                \
        }                                                                                   \
    } while (0)

#define DPT_CUBLAS_CHECK(stmt)                                                              \
    do {                                                                                    \
        cublasStatus_t dpt_bs_ = (stmt);                                                    \
        if (dpt_bs_ != CUBLAS_STATUS_SUCCESS) {                                             \
            char dpt_bmsg_[512];                                                            \
            snprintf(dpt_bmsg_, sizeof dpt_bmsg_, "%s%s", cublasGetStatusString(dpt_bs_),   \
                     dpt_cublas_hint(dpt_bs_));                                             \
            dpt_fatal(__FILE__, __LINE__, #stmt, dpt_bmsg_);                                \
        }                                                                                   \
    } while (0)

/* After a kernel launch: launch-configuration errors surface here, execution errors at the
 * next synchronizing call. Every launch of the backend is followed by it, so it is also where
 * launches are counted (dpt_cuda_count, cuda_backend.h). */
#define DPT_CUDA_CHECK_LAUNCH()                                                             \
    do {                                                                                    \
        dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0);                                           \
        DPT_CUDA_CHECK(cudaGetLastError());                                                 \
    } while (0)

/* The host synchronizations and copies of the backend, counted where they are made: every
 * call site goes through these (a blocking call's counter moves before it blocks). */
#define DPT_CUDA_SYNC(stmt)                                                                 \
    do {                                                                                    \
        dpt_cuda_count(DPT_CUDA_COUNT_SYNC, 0);                                             \
        DPT_CUDA_CHECK(stmt);                                                               \
    } while (0)
#define DPT_CUDA_COPY(dst, src, bytes, kind, stream)                                        \
    do {                                                                                    \
        dpt_cuda_count(DPT_CUDA_COUNT_COPY, (bytes));                                       \
        DPT_CUDA_CHECK(cudaMemcpyAsync((dst), (src), (bytes), (kind), (stream)));           \
    } while (0)

#endif
