/* The CUDA backend's function table: device memory, copies, the cuBLAS GEMM, start-up and
 * tear-down, and the version report. The kernels live in elementwise.cu, loss.cu and optim.cu,
 * the bf16 GEMM in gemm.cu.
 * Everything is queued on one stream, so ops run in the order the model calls them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* This process's counts (one device per rank; the trainer's ranks are processes). Plain
 * integers: every call that moves them is made by the host thread that drives the stream. */
static dpt_device_counts counts;

void dpt_cuda_count(dpt_cuda_count_kind kind, size_t bytes)
{
    if (kind == DPT_CUDA_COUNT_LAUNCH) {
        counts.launches++;
    } else if (kind == DPT_CUDA_COUNT_SYNC) {
        counts.syncs++;
    } else {
        counts.copies++;
        counts.copy_bytes += (long long)bytes;
    }
}

void dpt_cuda_counts_read(dpt_device_counts *out) { *out = counts; }

/* cudaMemsetAsync is queued work like a kernel: counted as a launch. */
static void memset_async(void *p, size_t bytes, cudaStream_t stream)
{
    dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0);
    DPT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
}

static void *cuda_alloc(dpt_backend *be, size_t bytes)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    void *p = NULL;
    /* cudaMalloc(0) may return NULL, which the table reserves for failure */
    size_t want = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is not sticky: clear it, report NULL */
        /* the caller names the buffer; the bytes and the device are known only here */
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
            (void)cudaGetLastError();
        char pci[32] = "?";
        (void)dpt_cuda_device_pci(ctx->device, pci, sizeof pci);
        fprintf(stderr, "%s cudaMalloc of %zu bytes on GPU %d (PCI %s) failed: %s (%zu MiB free of "
                "%zu MiB)\n", dpt_error_tag(), want, ctx->device, pci, cudaGetErrorString(e),
                free_b >> 20, total_b >> 20);
        return NULL;
    }
    /* zeroed, as the table promises; ordered before every later use on the stream */
    memset_async(p, want, ctx->stream);
    return p;
}

static void cuda_free(dpt_backend *be, void *p)
{
    if (p) {
        dpt_cuda_bf16_weights_touched(dpt_cuda_ctx_of(be), p, 1, 1);
        DPT_CUDA_SYNC(cudaFree(p)); /* synchronizes the device first */
    }
}

/* From pageable host memory the runtime stages the source before returning, so the caller may
 * reuse src at once (CUDA runtime API, "API synchronization behavior"). */
static void cuda_upload(dpt_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes) {
        DPT_CUDA_COPY(dst, src, bytes, cudaMemcpyHostToDevice, dpt_cuda_ctx_of(be)->stream);
        dpt_cuda_bf16_weights_touched(dpt_cuda_ctx_of(be), dst, bytes, 0);
    }
}

static void cuda_download(dpt_backend *be, void *dst, const void *src, size_t bytes)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (!bytes)
        return;
    DPT_CUDA_COPY(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
}

static void cuda_zero(dpt_backend *be, void *p, size_t bytes)
{
    if (bytes) {
        memset_async(p, bytes, dpt_cuda_ctx_of(be)->stream);
        dpt_cuda_bf16_weights_touched(dpt_cuda_ctx_of(be), p, bytes, 0);
    }
}

static void cuda_sync(dpt_backend *be)
{
    DPT_CUDA_SYNC(cudaStreamSynchronize(dpt_cuda_ctx_of(be)->stream));
}

/* Row-major to column-major, the one mapping of this backend. cuBLAS reads a buffer as
 * column-major, and a row-major (R, C) matrix with leading dimension ld is, read column-major,
 * its transpose (C, R) with the same ld. So the row-major product C(m,n) = op(A) op(B) is the
 * column-major product C^T(n,m) = op(B)^T op(A)^T: pass B first and A second, swap m and n,
 * keep each transpose flag with its own matrix, and keep every leading dimension as given. */
static void cuda_gemm(dpt_backend *be, int trans_a, int trans_b, int m, int n, int k,
                      float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                      float *c, int ldc)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (m <= 0 || n <= 0)
        return;
    if (ctx->precision == DPT_PREC_BF16) {
        dpt_cuda_gemm_bf16(be, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    /* one cuBLAS call counted as one launch (cuBLAS may split it into more kernels) */
    dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0);
    DPT_CUBLAS_CHECK(cublasSgemm(ctx->cublas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda,
                                 &beta, c, ldc));
}

static void cuda_destroy(dpt_backend *be)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (!ctx)
        return;
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->copy));
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
    if (ctx->exec)
        DPT_CUDA_CHECK(cudaGraphExecDestroy(ctx->exec));
    if (ctx->graph)
        DPT_CUDA_CHECK(cudaGraphDestroy(ctx->graph));
    DPT_CUDA_CHECK(cudaFree(ctx->clip_scale));
    DPT_CUDA_CHECK(cudaFree(ctx->scalars));
    DPT_CUDA_CHECK(cudaFree(ctx->step_dev));
    DPT_CUDA_CHECK(cudaFree(ctx->stats_dev));
    DPT_CUDA_CHECK(cudaFree(ctx->loss_dev));
    DPT_CUDA_CHECK(cudaFreeHost(ctx->loss_host));
    DPT_CUDA_CHECK(cudaFree(ctx->ss_partial));
    DPT_CUDA_CHECK(cudaFree(ctx->ss_block));
    DPT_CUDA_CHECK(cudaFreeHost(ctx->ss_host));
    dpt_cuda_gemm_free(ctx);
    dpt_cuda_lt_free(ctx);
    DPT_CUBLAS_CHECK(cublasDestroy(ctx->cublas));
    for (int k = 0; k < 2; k++) {
        DPT_CUDA_CHECK(cudaEventDestroy(ctx->copied[k]));
        DPT_CUDA_CHECK(cudaEventDestroy(ctx->freed[k]));
    }
    DPT_CUDA_CHECK(cudaStreamDestroy(ctx->copy));
    DPT_CUDA_CHECK(cudaStreamDestroy(ctx->stream));
    free(ctx);
    be->ctx = NULL;
}

static int cuda_mem_info(dpt_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    if (cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}

static void *cuda_alloc_pinned(dpt_backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 256) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cuda_free_pinned(dpt_backend *be, void *p)
{
    (void)be;
    if (p)
        DPT_CUDA_CHECK(cudaFreeHost(p));
}

/* The copy stream waits for the compute work that last read dst (an event never recorded
 * counts as complete), so a slot's device buffer is refilled only once it is free. */
static void cuda_upload_async(dpt_backend *be, void *dst, const void *src, size_t bytes, int slot)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_CUDA_CHECK(cudaStreamWaitEvent(ctx->copy, ctx->freed[slot], 0));
    DPT_CUDA_COPY(dst, src, bytes, cudaMemcpyHostToDevice, ctx->copy);
    DPT_CUDA_CHECK(cudaEventRecord(ctx->copied[slot], ctx->copy));
}

static void cuda_wait_slot(dpt_backend *be, int slot)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_CUDA_CHECK(cudaStreamWaitEvent(ctx->stream, ctx->copied[slot], 0));
}

static void cuda_release_slot(dpt_backend *be, int slot)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_CUDA_CHECK(cudaEventRecord(ctx->freed[slot], ctx->stream));
}

static void cuda_host_wait_slot(dpt_backend *be, int slot)
{
    DPT_CUDA_SYNC(cudaEventSynchronize(dpt_cuda_ctx_of(be)->copied[slot]));
}

int dpt_cuda_probe(int *count, char *why, size_t n)
{
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    *count = e == cudaSuccess ? c : 0;
    if (e == cudaSuccess || e == cudaErrorNoDevice) {
        (void)cudaGetLastError();
        return 0;
    }
    int drv = 0, rt = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess)
        drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess)
        rt = 0;
    (void)cudaGetLastError();
    /* the static runtime on an older driver (CUDA 13 on a CUDA 12 cluster): name both versions */
    if (e == cudaErrorInsufficientDriver && drv == 0)
        snprintf(why, n, "no NVIDIA driver is installed (cudaErrorInsufficientDriver; this "
                 "dptrain's CUDA runtime is %d.%d)", rt / 1000, rt % 1000 / 10);
    else if (e == cudaErrorInsufficientDriver)
        snprintf(why, n, "the NVIDIA driver supports CUDA %d.%d, older than this dptrain's CUDA "
                 "runtime %d.%d (cudaErrorInsufficientDriver): update the driver, or build "
                 "dptrain with a CUDA toolkit of version %d.x", drv / 1000, drv % 1000 / 10,
                 rt / 1000, rt % 1000 / 10, drv / 1000);
    else
        snprintf(why, n, "cudaGetDeviceCount failed: %s (%s); CUDA driver %d.%d, runtime %d.%d",
                 cudaGetErrorString(e), cudaGetErrorName(e), drv / 1000, drv % 1000 / 10,
                 rt / 1000, rt % 1000 / 10);
    return -1;
}

int dpt_cuda_device_count(void)
{
    int n = 0;
    char why[400];
    (void)dpt_cuda_probe(&n, why, sizeof why); /* no driver, or no device: 0 here */
    return n;
}

int dpt_cuda_device_pci(int device, char *out, size_t n)
{
    cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    snprintf(out, n, "%04x:%02x:%02x.0", (unsigned)prop.pciDomainID, (unsigned)prop.pciBusID,
             (unsigned)prop.pciDeviceID);
    return 0;
}

int dpt_cuda_backend_init(dpt_backend *be, int device, dpt_precision precision, dpt_error *err)
{
    memset(be, 0, sizeof *be);
    int count = 0;
    char why[320];
    if (dpt_cuda_probe(&count, why, sizeof why) != 0)
        return dpt_error_set(err, DPT_ERUNTIME, "%s: run with --device cpu", why);
    if (count == 0)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "no CUDA device is visible (CUDA_VISIBLE_DEVICES empty or listing "
                             "no GPU of this host): run with --device cpu");
    if (device < 0 || device >= count)
        return dpt_error_set(err, DPT_ERUNTIME, "CUDA device %d does not exist (%d visible)",
                             device, count);

    dpt_cuda_ctx *ctx = (dpt_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!ctx)
        return dpt_error_set(err, DPT_ERUNTIME, "out of host memory for the CUDA backend");
    ctx->device = device;
    ctx->precision = precision;
    DPT_CUDA_CHECK(cudaSetDevice(device));
    /* non-blocking: no implicit synchronization with the legacy default stream */
    DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->copy, cudaStreamNonBlocking));
    for (int k = 0; k < 2; k++) {
        DPT_CUDA_CHECK(cudaEventCreateWithFlags(&ctx->copied[k], cudaEventDisableTiming));
        DPT_CUDA_CHECK(cudaEventCreateWithFlags(&ctx->freed[k], cudaEventDisableTiming));
    }
    DPT_CUBLAS_CHECK(cublasCreate(&ctx->cublas));
    DPT_CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
    /* TF32 tensor cores (Ampere and later) round the GEMM inputs to 10 mantissa bits; the
     * default math mode keeps full FP32, as the CPU backend (BF16 rounds its operands itself,
     * gemm.cu, and needs no math mode). */
    DPT_CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, precision == DPT_PREC_TF32
                                                        ? CUBLAS_TF32_TENSOR_OP_MATH
                                                        : CUBLAS_DEFAULT_MATH));
    be->ctx = ctx; /* cuda_alloc names the device of a failed allocation */
    ctx->ss_partial =
        (double *)cuda_alloc(be, (size_t)DPT_CUDA_SS_BLOCKS * DPT_CUDA_THREADS * sizeof(double));
    ctx->ss_block = (double *)cuda_alloc(be, DPT_CUDA_SS_BLOCKS * sizeof(double));
    ctx->clip_scale = (float *)cuda_alloc(be, sizeof(float));
    ctx->scalars = (float *)cuda_alloc(be, 3 * sizeof(float));
    ctx->step_dev = (uint64_t *)cuda_alloc(be, sizeof(uint64_t));
    if (!ctx->ss_partial || !ctx->ss_block || !ctx->clip_scale || !ctx->scalars || !ctx->step_dev)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "out of cuda memory for the backend's sum-of-squares buffers");
    DPT_CUDA_CHECK(cudaMallocHost((void **)&ctx->ss_host, DPT_CUDA_SS_BLOCKS * sizeof(double)));

    be->name = "cuda";
    be->host_memory = 0;
    be->gemm_row_exact = 1; /* the overlap's blocks of rows (docs/gpu.md, "Buckets") */
    be->ctx = ctx;
    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->zero = cuda_zero;
    be->sync = cuda_sync;
    be->gemm = cuda_gemm;
    be->gather = dpt_cuda_gather;
    be->bias_act_forward = dpt_cuda_bias_act_forward;
    be->act_backward = dpt_cuda_act_backward;
    be->bias_grad = dpt_cuda_bias_grad;
    be->gemm_epilogue = dpt_cuda_gemm_epilogue;
    be->loss = dpt_cuda_loss;
    be->loss_targets = dpt_cuda_loss_targets;
    be->loss_stats = dpt_cuda_loss_stats;
    be->loss_targets_stats = dpt_cuda_loss_targets_stats;
    be->accumulate = dpt_cuda_accumulate;
    be->sum_squares = dpt_cuda_sum_squares;
    be->scale = dpt_cuda_scale;
    be->clip_grad_norm = dpt_cuda_clip_grad_norm;
    be->sgd_step = dpt_cuda_sgd_step;
    be->adam_step = dpt_cuda_adam_step;
    be->alloc_pinned = cuda_alloc_pinned;
    be->mem_info = cuda_mem_info;
    be->free_pinned = cuda_free_pinned;
    be->upload_async = cuda_upload_async;
    be->wait_slot = cuda_wait_slot;
    be->release_slot = cuda_release_slot;
    be->host_wait_slot = cuda_host_wait_slot;
    be->destroy = cuda_destroy;
    dpt_backend_check_complete(be);
    return DPT_OK;
}

/* Global mode: any potentially unsafe call (an allocation, a blocking copy, a synchronization)
 * made while the step is captured fails and invalidates the capture, so a step that needs the
 * host cannot be captured by mistake: the end of the capture reports it. */
void dpt_cuda_graph_begin(dpt_backend *be)
{
    DPT_CUDA_CHECK(cudaStreamBeginCapture(dpt_cuda_ctx_of(be)->stream,
                                          cudaStreamCaptureModeGlobal));
    dpt_cuda_ctx_of(be)->capturing = 1;
}

void dpt_cuda_graph_end(dpt_backend *be)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (ctx->exec)
        DPT_CUDA_CHECK(cudaGraphExecDestroy(ctx->exec));
    if (ctx->graph)
        DPT_CUDA_CHECK(cudaGraphDestroy(ctx->graph));
    ctx->exec = NULL;
    ctx->graph = NULL;
    ctx->capturing = 0;
    DPT_CUDA_CHECK(cudaStreamEndCapture(ctx->stream, &ctx->graph));
    DPT_CUDA_CHECK(cudaGraphInstantiate(&ctx->exec, ctx->graph, 0));
}

/* One launch, whatever the graph holds: what the host asks of the GPU per step. */
void dpt_cuda_graph_launch(dpt_backend *be)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0);
    DPT_CUDA_CHECK(cudaGraphLaunch(ctx->exec, ctx->stream));
    dpt_cuda_bf16_act_touched(ctx, NULL, 0); /* the host no longer knows what the copies hold */
}

void *dpt_cuda_backend_stream(dpt_backend *be)
{
    return be && be->ctx ? (void *)dpt_cuda_ctx_of(be)->stream : NULL;
}

/* Appends printf-style text at *len, never past n. */
static void appendf(char *out, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *out, size_t n, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(out + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w > 0)
        *len = *len + (size_t)w < n ? *len + (size_t)w : n - 1;
}

void dpt_cuda_describe(char *out, size_t n)
{
    size_t len = 0;
    if (!out || n == 0)
        return;
    out[0] = '\0';
    int drv = 0, rt = 0, blas = 0;
    if (cudaDriverGetVersion(&drv) != cudaSuccess)
        drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess)
        rt = 0;
    (void)cudaGetLastError();
    /* cublasGetVersion ignores the handle: the library's version, no device needed */
    if (cublasGetVersion(NULL, &blas) != CUBLAS_STATUS_SUCCESS)
        blas = 0;
    if (drv > 0)
        appendf(out, n, &len, "CUDA driver %d.%d", drv / 1000, drv % 1000 / 10);
    else
        appendf(out, n, &len, "CUDA driver none");
    /* CUDA versions are 1000*major + 10*minor; cuBLAS 10000*major + 100*minor + patch */
    appendf(out, n, &len, ", runtime %d.%d, cuBLAS %d.%d.%d", rt / 1000, rt % 1000 / 10,
            blas / 10000, blas % 10000 / 100, blas % 100);
    int count = dpt_cuda_device_count();
    if (count == 0)
        appendf(out, n, &len, "\nno CUDA device visible");
    for (int d = 0; d < count; d++) {
        cudaDeviceProp prop;
        memset(&prop, 0, sizeof prop);
        if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) {
            (void)cudaGetLastError();
            appendf(out, n, &len, "\ndevice %d: properties unavailable", d);
            continue;
        }
        appendf(out, n, &len, "\ndevice %d: %s, sm_%d%d, %d SMs, %.1f GiB", d, prop.name,
                prop.major, prop.minor, prop.multiProcessorCount,
                (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    }
}
