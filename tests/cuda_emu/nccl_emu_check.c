/* Checks the NCCL emulation over MPI; run under mpirun with 2 or more ranks on one host
 * (nccl_emu_check.sh). Written in C, as mpi/nccl_comm.c is, so it also proves the headers are C.
 * Covers: allreduce sum / avg / max in place and out of place in float, double and int32;
 * bfloat16 sum and avg, rounded to bf16 after each addition;
 * buffers that are not device memory or too short; a rank or id that does not match; two ranks
 * on one device ("Duplicate GPU detected"), also when each rank sees its own CUDA_VISIBLE_DEVICES
 * (the physical device decides, not the index); the injected asynchronous remote error; and
 * the device memory of the ring buffers, taken at the first collective and given back at destroy.
 * Prints one line per failed check and a summary on rank 0; exits non-zero on any failure. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#include <nccl.h>

static int g_rank, g_size, g_checks, g_failures;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        g_checks++;                                                                         \
        if (!(cond)) {                                                                      \
            g_failures++;                                                                   \
            fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", g_rank, __FILE__,         \
                    __LINE__, #cond);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
        }                                                                                   \
    } while (0)

/* Every rank gets rank 0's id, as a launcher would broadcast it. */
static ncclUniqueId shared_id(void)
{
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (g_rank == 0)
        CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId");
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    return id;
}

static void check_reductions(ncclComm_t comm)
{
    enum { N = 1000 };
    float h[N], *d = NULL, *out = NULL;
    double hd[N], *dd = NULL;
    int hi[N], *di = NULL;
    CHECK(cudaMalloc((void **)&d, sizeof h) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMalloc((void **)&out, sizeof h) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMalloc((void **)&dd, sizeof hd) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMalloc((void **)&di, sizeof hi) == cudaSuccess, "cudaMalloc");
    /* rank r holds (r + 1) * (i + 1) / 8: sums of ranks are exact in float */
    for (int i = 0; i < N; i++) {
        h[i] = (float)((g_rank + 1) * (i + 1)) / 8.0f;
        hd[i] = h[i];
        hi[i] = (g_rank + 1) * (i + 1);
    }
    const double rsum = g_size * (g_size + 1) / 2.0; /* sum of (r + 1) over ranks */

    /* float sum, in place */
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(d, d, N, ncclFloat, ncclSum, comm, 0) == ncclSuccess, "sum in place");
    float got[N];
    cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += got[i] != (float)(rsum * (i + 1) / 8.0);
    CHECK(bad == 0, "%d wrong float sums (first %g, want %g)", bad, got[0], rsum / 8.0);

    /* float average, out of place: the send buffer stays as it was */
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(d, out, N, ncclFloat, ncclAvg, comm, 0) == ncclSuccess, "avg");
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += fabsf(got[i] - (float)(rsum * (i + 1) / 8.0 / g_size)) > 1e-6f * (i + 1);
    CHECK(bad == 0, "%d wrong float averages (first %g)", bad, got[0]);
    cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost);
    CHECK(memcmp(got, h, sizeof h) == 0, "out-of-place allreduce changed the send buffer");

    /* double max */
    cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(dd, dd, N, ncclDouble, ncclMax, comm, 0) == ncclSuccess, "max");
    double gotd[N];
    cudaMemcpy(gotd, dd, sizeof gotd, cudaMemcpyDeviceToHost);
    CHECK(gotd[N - 1] == g_size * (double)N / 8.0, "double max %g", gotd[N - 1]);

    /* int32 average truncates, as NCCL's integer average does */
    cudaMemcpy(di, hi, sizeof hi, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(di, di, N, ncclInt32, ncclAvg, comm, 0) == ncclSuccess, "int avg");
    int goti[N];
    cudaMemcpy(goti, di, sizeof goti, cudaMemcpyDeviceToHost);
    CHECK(goti[0] == (int)(rsum) / g_size, "int avg %d", goti[0]);

    /* misuse: host memory, a count past the allocation, a half type, a bad op */
    CHECK(ncclAllReduce(h, h, N, ncclFloat, ncclSum, comm, 0) == ncclInvalidArgument,
          "host buffers accepted");
    CHECK(ncclAllReduce(d, d, N + 1, ncclFloat, ncclSum, comm, 0) == ncclInvalidArgument,
          "count past the allocation accepted");
    CHECK(ncclAllReduce(d, d, N, ncclFloat16, ncclSum, comm, 0) == ncclInvalidArgument,
          "half accepted");
    CHECK(ncclAllReduce(d, d, N, ncclFloat, (ncclRedOp_t)9, comm, 0) == ncclInvalidArgument,
          "bad op accepted");
    CHECK(ncclAllReduce(d, d, 0, ncclFloat, ncclSum, comm, 0) == ncclSuccess, "count 0");
    ncclResult_t async = ncclInternalError;
    CHECK(ncclCommGetAsyncError(comm, &async) == ncclSuccess && async == ncclSuccess,
          "async error %d after plain misuse", (int)async);
    cudaFree(d);
    cudaFree(out);
    cudaFree(dd);
    cudaFree(di);
}

static void check_injected_fault(void)
{
    setenv("DPT_EMU_NCCL_FAIL_AFTER", "2", 1); /* every rank, so all fail at the same call */
    ncclComm_t comm = NULL;
    CHECK(ncclCommInitRank(&comm, g_size, shared_id(), g_rank) == ncclSuccess, "init");
    unsetenv("DPT_EMU_NCCL_FAIL_AFTER");
    float *d = NULL;
    cudaMalloc((void **)&d, 16 * sizeof(float));
    ncclResult_t async = ncclInternalError;
    CHECK(ncclAllReduce(d, d, 16, ncclFloat, ncclSum, comm, 0) == ncclSuccess, "first");
    CHECK(ncclCommGetAsyncError(comm, &async) == ncclSuccess && async == ncclSuccess, "async");
    /* the second is queued fine and fails afterwards, when the stream runs it, as a remote
     * failure would */
    CHECK(ncclAllReduce(d, d, 16, ncclFloat, ncclSum, comm, 0) == ncclSuccess, "second");
    CHECK(cudaStreamSynchronize(0) == cudaSuccess, "synchronize");
    CHECK(ncclCommGetAsyncError(comm, &async) == ncclSuccess && async == ncclRemoteError,
          "async error %d after the injected fault", (int)async);
    CHECK(ncclAllReduce(d, d, 16, ncclFloat, ncclSum, comm, 0) == ncclRemoteError,
          "a broken communicator accepted more work");
    CHECK(strstr(ncclGetLastError(comm), "injected") != NULL, "last error: %s",
          ncclGetLastError(comm));
    CHECK(ncclCommAbort(comm) == ncclSuccess, "abort");
    cudaFree(d);
}

static void check_bad_inits(void)
{
    ncclComm_t comm = NULL;
    /* ranks given in reverse: every rank's own arguments are wrong */
    if (g_size > 1) {
        ncclResult_t r = ncclCommInitRank(&comm, g_size, shared_id(), g_size - 1 - g_rank);
        int mine_wrong = g_size - 1 - g_rank != g_rank;
        CHECK(r == (mine_wrong ? ncclInvalidArgument : ncclRemoteError), "swapped ranks: %s",
              ncclGetErrorString(r));
        CHECK(comm == NULL, "comm set on failure");
    }
    /* the last rank makes its own id instead of taking rank 0's */
    ncclUniqueId id = shared_id();
    if (g_rank == g_size - 1 && g_size > 1)
        ncclGetUniqueId(&id);
    ncclResult_t r = ncclCommInitRank(&comm, g_size, id, g_rank);
    if (g_size > 1)
        CHECK(r == (g_rank == g_size - 1 ? ncclInvalidUsage : ncclRemoteError),
              "mismatched ids: %s", ncclGetErrorString(r));
    else if (r == ncclSuccess)
        ncclCommDestroy(comm);

    /* every rank on device 0 of one host: NCCL refuses two ranks per GPU */
    cudaSetDevice(0);
    r = ncclCommInitRank(&comm, g_size, shared_id(), g_rank);
    if (g_size > 1) {
        CHECK(r == ncclInvalidUsage, "duplicate device: %s", ncclGetErrorString(r));
        CHECK(strstr(ncclGetLastError(NULL), "Duplicate GPU detected") != NULL, "last error: %s",
              ncclGetLastError(NULL));
    } else if (r == ncclSuccess) {
        ncclCommDestroy(comm);
    }
}

/* Each rank sees one GPU through its own CUDA_VISIBLE_DEVICES, so every rank is on its "device
 * 0": distinct physical devices are fine, one physical device for all is a duplicate. */
static void check_visible_devices(void)
{
    char mine[16];
    for (int shared = 0; shared < 2 && g_size > 1; shared++) {
        snprintf(mine, sizeof mine, "%d", shared ? 0 : g_size - 1 - g_rank);
        setenv("CUDA_VISIBLE_DEVICES", mine, 1);
        CHECK(cudaSetDevice(0) == cudaSuccess, "cudaSetDevice(0) with CUDA_VISIBLE_DEVICES=%s",
              mine);
        ncclComm_t comm = NULL;
        ncclResult_t r = ncclCommInitRank(&comm, g_size, shared_id(), g_rank);
        if (shared) {
            CHECK(r == ncclInvalidUsage, "one physical device for all: %s",
                  ncclGetErrorString(r));
            CHECK(strstr(ncclGetLastError(NULL), "Duplicate GPU detected") != NULL,
                  "last error: %s", ncclGetLastError(NULL));
        } else {
            CHECK(r == ncclSuccess, "own devices: %s (%s)", ncclGetErrorString(r),
                  ncclGetLastError(NULL));
            if (r == ncclSuccess)
                ncclCommDestroy(comm);
        }
    }
    unsetenv("CUDA_VISIBLE_DEVICES");
}

/* bfloat16 (as its bits: the upper half of a float). Element 0: rank 0 holds 1, the others
 * 2^-8; with 2 ranks NCCL adds 1 + 2^-8 in float and rounds to bf16, a tie that goes to the even
 * 1.0 (a float sum would keep 1.00390625). Element 1: rank r holds r + 1, sums exact. */
static void check_bf16(ncclComm_t comm)
{
    uint16_t h[2] = {g_rank == 0 ? 0x3f80u : 0x3b80u, 0}, got[2] = {0, 0}, *d = NULL;
    float r1 = (float)(g_rank + 1);
    uint32_t u;
    memcpy(&u, &r1, sizeof u);
    h[1] = (uint16_t)(u >> 16); /* small integers are exact in bf16 */
    CHECK(cudaMalloc((void **)&d, sizeof h) == cudaSuccess, "cudaMalloc");
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(d, d, 2, ncclBfloat16, ncclSum, comm, 0) == ncclSuccess, "bf16 sum");
    cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost);
    float sum1 = 0.0f;
    u = (uint32_t)got[1] << 16;
    memcpy(&sum1, &u, sizeof sum1);
    CHECK(sum1 == (float)(g_size * (g_size + 1) / 2), "bf16 sum of ranks %g", sum1);
    if (g_size == 2)
        CHECK(got[0] == 0x3f80u, "bf16 1 + 2^-8 gave bits %#x, want 0x3f80 (1.0: tie to even)",
              got[0]);
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    CHECK(ncclAllReduce(d, d, 2, ncclBfloat16, ncclAvg, comm, 0) == ncclSuccess, "bf16 avg");
    cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost);
    u = (uint32_t)got[1] << 16;
    memcpy(&sum1, &u, sizeof sum1);
    CHECK(sum1 == (float)(g_size + 1) / 2.0f, "bf16 average of ranks %g", sum1);
    CHECK(ncclAllReduce(d, d, 2, ncclBfloat16, ncclMax, comm, 0) == ncclInvalidArgument,
          "bf16 max is not emulated and must be refused");
    CHECK(ncclAllReduce(d, d, 3, ncclBfloat16, ncclSum, comm, 0) == ncclInvalidArgument,
          "bf16 count past the allocation accepted");
    cudaFree(d);
}

/* NCCL's lazy connection: the ring buffers (16 channels x (4 MiB + 4,915,200 + 524,288 bytes),
 * nccl_emu.cpp connection_bytes) come out of the device's memory at the first collective, not at
 * init, and go back at destroy; with less free memory than that the collective fails. */
static void check_buffer_memory(void)
{
    const size_t ring = 16 * ((size_t)(4 << 20) + 4915200 + 524288);
    size_t free0 = 0, free1 = 0, free2 = 0, total = 0;
    float *d = NULL;
    CHECK(cudaMalloc((void **)&d, 64 * sizeof(float)) == cudaSuccess, "cudaMalloc");
    CHECK(cudaMemset(d, 0, 64 * sizeof(float)) == cudaSuccess, "cudaMemset");
    ncclComm_t comm = NULL;
    CHECK(ncclCommInitRank(&comm, g_size, shared_id(), g_rank) == ncclSuccess, "init");
    CHECK(cudaMemGetInfo(&free0, &total) == cudaSuccess, "cudaMemGetInfo");
    CHECK(ncclAllReduce(d, d, 64, ncclFloat, ncclSum, comm, 0) == ncclSuccess, "allreduce");
    CHECK(cudaMemGetInfo(&free1, &total) == cudaSuccess, "cudaMemGetInfo");
    CHECK(free0 - free1 == ring, "the first collective took %zu bytes, not %zu", free0 - free1,
          ring);
    CHECK(ncclCommDestroy(comm) == ncclSuccess, "destroy");
    CHECK(cudaMemGetInfo(&free2, &total) == cudaSuccess, "cudaMemGetInfo");
    CHECK(free2 == free0, "destroy gave back %zu of %zu bytes", free2 - free1, ring);

    /* a device with the data but not the buffers: the collective is NCCL's unhandled CUDA error */
    setenv("DPT_EMU_DEVICE_MEM_MB", "100", 1);
    CHECK(ncclCommInitRank(&comm, g_size, shared_id(), g_rank) == ncclSuccess, "init");
    ncclResult_t r = ncclAllReduce(d, d, 64, ncclFloat, ncclSum, comm, 0);
    CHECK(r == ncclUnhandledCudaError, "allreduce without room for the ring: %s",
          ncclGetErrorString(r));
    CHECK(strstr(ncclGetLastError(comm), "out of memory") != NULL, "last error: %s",
          ncclGetLastError(comm));
    CHECK(ncclCommAbort(comm) == ncclSuccess, "abort");
    unsetenv("DPT_EMU_DEVICE_MEM_MB");
    CHECK(cudaFree(d) == cudaSuccess, "cudaFree");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    char n[16];
    snprintf(n, sizeof n, "%d", g_size);
    setenv("DPT_EMU_DEVICES", n, 1); /* one emulated device per rank */
    int v = 0;
    CHECK(ncclGetVersion(&v) == ncclSuccess && v == NCCL_VERSION_CODE, "version %d", v);

    CHECK(cudaSetDevice(g_rank) == cudaSuccess, "cudaSetDevice(%d)", g_rank);
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRank(&comm, g_size, shared_id(), g_rank);
    CHECK(r == ncclSuccess, "init: %s (%s)", ncclGetErrorString(r), ncclGetLastError(NULL));
    if (r == ncclSuccess) {
        check_reductions(comm);
        check_bf16(comm);
        CHECK(ncclCommDestroy(comm) == ncclSuccess, "destroy");
    }
    check_buffer_memory();
    check_injected_fault();
    check_bad_inits();
    check_visible_devices();

    int total = 0;
    MPI_Allreduce(&g_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0)
        printf("nccl_emu_check: %d ranks, %d checks per rank, %d failed\n", g_size, g_checks,
               total);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
