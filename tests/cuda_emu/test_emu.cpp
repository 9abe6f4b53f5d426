/* Proves the host emulation catches what it exists to catch: a launch runs exactly grid x block
 * threads (one block short leaves elements unwritten), bad launch configurations reach
 * cudaGetLastError, SGEMM matches a naive row-major product through the backend's row-major to
 * column-major mapping for all four transposes, and bad leading dimensions, out-of-bounds copies
 * and bad frees come back as errors instead of silently reading a neighbour's memory; a block
 * reduction through DPT_SHARED and __syncthreads() is exact under any shuffle seed, and a missing
 * barrier, a shared index out of bounds and a barrier some threads miss stop the process with a
 * report naming kernel, block and threads.
 * NCCL over MPI is proved by nccl_emu_check.c under mpirun (the unit tests do not start MPI). */
#include <criterion/criterion.h>

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda_emu_kernel.h" /* DPT_LAUNCH, as the emulated build forces it ahead of cuda/ */

/* ---- kernels ---- */

static __global__ void fill_kernel(float *__restrict__ x, size_t n, float v)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = v;
}

/* Counts every (block, thread) visit of a 2-D grid of 3-D blocks in hits (one slot per thread),
 * and every visit at all in *total. */
static __global__ void count_kernel(unsigned *hits, unsigned long long *total)
{
    size_t block = (size_t)blockIdx.y * gridDim.x + blockIdx.x;
    size_t thread = ((size_t)threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    atomicAdd(&hits[block * blockDim.x * blockDim.y * blockDim.z + thread], 1u);
    atomicAdd(total, 1ull);
}

/* Records the order in which blocks run. */
static __global__ void order_kernel(unsigned *order, unsigned *next)
{
    if (threadIdx.x == 0)
        order[atomicAdd(next, 1u)] = blockIdx.x;
}

static __global__ void sum_kernel(const float *x, size_t n, float *sum)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        atomicAdd(sum, x[i]);
}

/* ---- launches ---- */

Test(launch, one_block_short_leaves_the_tail_unwritten)
{
    const size_t n = 1000;
    const unsigned threads = 128, blocks = (unsigned)((n + threads - 1) / threads); /* 8 */
    float *d = NULL;
    cr_assert_eq(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemset(d, 0, n * sizeof(float)), cudaSuccess);
    DPT_LAUNCH(fill_kernel, blocks - 1, threads, 0, d, n, 1.0f);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    std::vector<float> h(n);
    cr_assert_eq(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    size_t written = 0, first_unwritten = n;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == 1.0f)
            written++;
        else if (first_unwritten == n)
            first_unwritten = i;
    }
    /* 7 blocks of 128 threads write exactly the first 896 elements */
    cr_assert_eq(written, (size_t)(blocks - 1) * threads, "written %zu", written);
    cr_assert_eq(first_unwritten, (size_t)(blocks - 1) * threads);
    DPT_LAUNCH(fill_kernel, blocks, threads, 0, d, n, 1.0f);
    cr_assert_eq(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(h[i], 1.0f, "element %zu not written by the full grid", i);
    cr_assert_eq(cudaFree(d), cudaSuccess);
}

Test(launch, every_thread_of_a_2d_grid_of_3d_blocks_runs_exactly_once)
{
    const dim3 grid(5, 3), block(4, 3, 2);
    const size_t n = 5 * 3 * 4 * 3 * 2;
    std::vector<unsigned> hits(n, 0);
    unsigned long long total = 0;
    DPT_LAUNCH(count_kernel, grid, block, 0, hits.data(), &total);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    cr_assert_eq(total, (unsigned long long)n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(hits[i], 1u, "thread slot %zu ran %u times", i, hits[i]);
}

Test(launch, shuffle_visits_every_block_once_in_another_order)
{
    setenv("DPT_EMU_SHUFFLE", "1", 1);
    const unsigned blocks = 64;
    std::vector<unsigned> order(blocks, 0), seen(blocks, 0);
    unsigned next = 0;
    DPT_LAUNCH(order_kernel, blocks, 32, 0, order.data(), &next);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    cr_assert_eq(next, blocks);
    int in_order = 1;
    for (unsigned i = 0; i < blocks; i++) {
        seen[order[i]]++;
        in_order &= order[i] == i;
    }
    for (unsigned b = 0; b < blocks; b++)
        cr_assert_eq(seen[b], 1u, "block %u ran %u times", b, seen[b]);
    cr_assert(!in_order, "DPT_EMU_SHUFFLE=1 ran the blocks in order");
}

Test(launch, invalid_configurations_reach_cudaGetLastError_and_do_not_run)
{
    float x = 0.0f, sum = 0.0f;
    const dim3 bad[][2] = {
        {dim3(1), dim3(1025)},         /* more than 1024 threads in x */
        {dim3(1), dim3(32, 32, 2)},    /* 2048 threads per block */
        {dim3(1), dim3(1, 1, 65)},     /* block.z > 64 */
        {dim3(0), dim3(32)},           /* empty grid */
        {dim3(1), dim3(32, 0)},        /* empty block */
        {dim3(1, 65536), dim3(32)},    /* grid.y > 65535 */
        {dim3(1, 1, 65536), dim3(32)}, /* grid.z > 65535 */
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        x = 1.0f;
        DPT_LAUNCH(sum_kernel, bad[c][0], bad[c][1], 0, &x, (size_t)1, &sum);
        cr_assert_eq(cudaPeekAtLastError(), cudaErrorInvalidConfiguration, "case %zu", c);
        cr_assert_eq(cudaGetLastError(), cudaErrorInvalidConfiguration, "case %zu", c);
        cr_assert_eq(cudaGetLastError(), cudaSuccess, "the error is not sticky (case %zu)", c);
        cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
        cr_assert_eq(sum, 0.0f, "case %zu ran the kernel", c);
    }
    /* the limits themselves are fine: thread x = 0 of every block adds x once */
    DPT_LAUNCH(sum_kernel, dim3(1, 65535), dim3(1), 0, &x, (size_t)1, &sum);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    cr_assert_eq(sum, 65535.0f);
    DPT_LAUNCH(sum_kernel, 1, dim3(1024), 0, &x, (size_t)1, &sum);
    DPT_LAUNCH(sum_kernel, 1, dim3(16, 16, 4), 0, &x, (size_t)1, &sum);
    DPT_LAUNCH(sum_kernel, 1, dim3(1, 1, 64), 0, &x, (size_t)1, &sum);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    /* threads with threadIdx.x == 0 add: 1 of (1024), 16 * 4 of (16,16,4), 64 of (1,1,64) */
    cr_assert_eq(sum, 65535.0f + 1.0f + 64.0f + 64.0f, "sum %g", sum);
}

/* The NCCL stream asks for the greatest priority (mpi/nccl_comm.c): the range and clamping. */
Test(launch, stream_priorities_are_clamped_to_the_device_range)
{
    int least = 1, greatest = 1, p = 1;
    cudaStream_t s;
    cr_assert_eq(cudaDeviceGetStreamPriorityRange(&least, &greatest), cudaSuccess);
    cr_assert(greatest < least, "greatest %d, least %d", greatest, least);
    cr_assert_eq(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest), cudaSuccess);
    cr_assert_eq(cudaStreamGetPriority(s, &p), cudaSuccess);
    cr_assert_eq(p, greatest);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, greatest - 100), cudaSuccess);
    cr_assert_eq(cudaStreamGetPriority(s, &p), cudaSuccess);
    cr_assert_eq(p, greatest);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaStreamGetPriority(s, &p), cudaErrorInvalidResourceHandle);
}

Test(launch, destroyed_stream_is_an_invalid_handle)
{
    cudaStream_t s;
    float x = 1.0f, sum = 0.0f;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    DPT_LAUNCH(sum_kernel, 1, 1, s, &x, (size_t)1, &sum);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    DPT_LAUNCH(sum_kernel, 1, 1, s, &x, (size_t)1, &sum);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidResourceHandle);
    cr_assert_eq(sum, 1.0f);
    cr_assert_eq(cudaStreamSynchronize(s), cudaErrorInvalidResourceHandle);
    cr_assert_eq(cudaStreamDestroy(s), cudaErrorInvalidResourceHandle);
}

/* ---- memory ---- */

Test(memory, out_of_bounds_copies_are_invalid_values)
{
    const size_t n = 64;
    float *d = NULL, *e = NULL;
    std::vector<float> h(2 * n, 3.0f);
    cr_assert_eq(cudaMalloc(&d, n * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMalloc(&e, n * sizeof(float)), cudaSuccess);
    /* one float too many, each direction; and starting inside but ending outside */
    cr_assert_eq(cudaMemcpy(d, h.data(), (n + 1) * sizeof(float), cudaMemcpyHostToDevice),
                 cudaErrorInvalidValue);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue);
    cr_assert_eq(cudaMemcpy(h.data(), d, (n + 1) * sizeof(float), cudaMemcpyDeviceToHost),
                 cudaErrorInvalidValue);
    cr_assert_eq(cudaMemcpyAsync(d + 1, e, n * sizeof(float), cudaMemcpyDeviceToDevice, 0),
                 cudaErrorInvalidValue);
    cr_assert_eq(cudaMemset(d + n - 1, 0, 2 * sizeof(float)), cudaErrorInvalidValue);
    /* a host pointer where the kind says device, and a device pointer where it says host */
    cr_assert_eq(cudaMemcpy(h.data(), h.data() + n, sizeof(float), cudaMemcpyDeviceToHost),
                 cudaErrorInvalidValue);
    cr_assert_eq(cudaMemcpy(d, e, sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    /* in bounds works, Default infers the sides */
    cr_assert_eq(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    cr_assert_eq(cudaMemcpy(e, d, n * sizeof(float), cudaMemcpyDefault), cudaSuccess);
    cr_assert_eq(cudaMemcpy(e + n - 1, d, 2 * sizeof(float), cudaMemcpyDefault),
                 cudaErrorInvalidValue);
    float back = 0.0f;
    cr_assert_eq(cudaMemcpy(&back, e + n - 1, sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(back, 3.0f);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFree(e), cudaSuccess);
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidValue); /* the last failure above */
}

Test(memory, bad_frees_are_invalid_values)
{
    float *d = NULL, *p = NULL;
    float local = 0.0f;
    cr_assert_eq(cudaMalloc(&d, 16 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMallocHost(&p, 16 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaFree(d + 1), cudaErrorInvalidValue);  /* not the start */
    cr_assert_eq(cudaFree(&local), cudaErrorInvalidValue); /* never allocated */
    cr_assert_eq(cudaFree(p), cudaErrorInvalidValue);      /* pinned: cudaFreeHost */
    cr_assert_eq(cudaFreeHost(d), cudaErrorInvalidValue);  /* device: cudaFree */
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaErrorInvalidValue); /* double free */
    cr_assert_eq(cudaFreeHost(p), cudaSuccess);
    cr_assert_eq(cudaFree(NULL), cudaSuccess);
    cr_assert_eq(dpt_emu_live_allocations(NULL), (size_t)0);
}

Test(memory, fresh_allocations_read_as_nan_and_memory_is_accounted)
{
    float *d = NULL;
    size_t free0 = 0, free1 = 0, total = 0, bytes = 0;
    cr_assert_eq(cudaMemGetInfo(&free0, &total), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 4 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemGetInfo(&free1, &total), cudaSuccess);
    cr_assert_eq(free0 - free1, 4 * sizeof(float));
    cr_assert_eq(dpt_emu_live_allocations(&bytes), (size_t)1);
    cr_assert_eq(bytes, 4 * sizeof(float));
    float h[4];
    cr_assert_eq(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    for (int i = 0; i < 4; i++)
        cr_assert(isnan(h[i]), "fresh device memory should not look like zeros");
    cr_assert_eq(cudaFree(d), cudaSuccess);
    /* more than the device has */
    void *big = NULL;
    cr_assert_eq(cudaMalloc(&big, total + 1), cudaErrorMemoryAllocation);
    cr_assert_null(big);
    cr_assert_eq(cudaGetLastError(), cudaErrorMemoryAllocation);
}

Test(devices, count_comes_from_DPT_EMU_DEVICES)
{
    int n = -1, dev = -1;
    cudaDeviceProp prop;
    setenv("DPT_EMU_DEVICES", "3", 1);
    cr_assert_eq(cudaGetDeviceCount(&n), cudaSuccess);
    cr_assert_eq(n, 3);
    cr_assert_eq(cudaSetDevice(2), cudaSuccess);
    cr_assert_eq(cudaGetDevice(&dev), cudaSuccess);
    cr_assert_eq(dev, 2);
    cr_assert_eq(cudaSetDevice(3), cudaErrorInvalidDevice);
    cr_assert_eq(cudaGetDeviceProperties(&prop, 1), cudaSuccess);
    cr_assert_str_eq(prop.name, "dptrain host emulation");
    cr_assert_eq(cudaGetDeviceProperties(&prop, 3), cudaErrorInvalidDevice);
    setenv("DPT_EMU_DEVICES", "0", 1);
    cr_assert_eq(cudaGetDeviceCount(&n), cudaErrorNoDevice);
    cr_assert_eq(n, 0);
    cr_assert_eq(cudaSetDevice(0), cudaErrorNoDevice);
    cr_assert_str_eq(cudaGetErrorString(cudaErrorNoDevice), "no CUDA-capable device is detected");
    int rt = 0;
    cr_assert_eq(cudaRuntimeGetVersion(&rt), cudaSuccess);
    cr_assert_eq(rt, CUDART_VERSION);
}

/* CUDA_VISIBLE_DEVICES as the CUDA runtime reads it: the listed physical devices renumbered from
 * 0, the list cut at the first entry that is not a device of the host; the physical device shows
 * as the PCI bus id, which is what tells two processes' "device 0" apart. */
Test(devices, CUDA_VISIBLE_DEVICES_selects_and_renumbers_the_hosts_devices)
{
    int n = -1;
    cudaDeviceProp prop;
    setenv("DPT_EMU_DEVICES", "4", 1);
    const struct {
        const char *visible;
        int count, bus0;
    } cases[] = {
        {"3", 1, 3},   {"2,0", 2, 2}, {"1,7,2", 1, 1}, {"1,1", 1, 1},
        {"0,x", 1, 0}, {"GPU-1", 0, -1}, {"", 0, -1},
    };
    for (const auto &c : cases) {
        setenv("CUDA_VISIBLE_DEVICES", c.visible, 1);
        cudaError_t want = c.count > 0 ? cudaSuccess : cudaErrorNoDevice;
        cr_assert_eq(cudaGetDeviceCount(&n), want, "CUDA_VISIBLE_DEVICES=%s", c.visible);
        cr_assert_eq(n, c.count, "CUDA_VISIBLE_DEVICES=%s: %d devices", c.visible, n);
        if (c.count > 0) {
            cr_assert_eq(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
            cr_assert_eq(prop.pciBusID, c.bus0, "CUDA_VISIBLE_DEVICES=%s: device 0 is bus %d",
                         c.visible, prop.pciBusID);
        }
    }
    (void)cudaGetLastError();
    /* memory is the physical device's: two names of one device share it */
    setenv("DPT_EMU_DEVICE_MEM_MB", "1", 1);
    setenv("CUDA_VISIBLE_DEVICES", "2", 1);
    void *a = NULL, *b = NULL;
    cr_assert_eq(cudaSetDevice(0), cudaSuccess);
    cr_assert_eq(cudaMalloc(&a, 768 << 10), cudaSuccess);
    setenv("CUDA_VISIBLE_DEVICES", "3,2", 1);
    cr_assert_eq(cudaSetDevice(1), cudaSuccess);
    cr_assert_eq(cudaMalloc(&b, 768 << 10), cudaErrorMemoryAllocation);
    cr_assert_eq(cudaSetDevice(0), cudaSuccess);
    cr_assert_eq(cudaMalloc(&b, 768 << 10), cudaSuccess);
    cr_assert_eq(cudaFree(a), cudaSuccess);
    cr_assert_eq(cudaFree(b), cudaSuccess);
    unsetenv("CUDA_VISIBLE_DEVICES");
}

/* The static CUDA 13 runtime on an older driver: counting fails with cudaErrorInsufficientDriver
 * (not "no device"), and the driver's version is what cudaDriverGetVersion says. */
Test(devices, an_old_driver_is_insufficient_not_absent)
{
    int n = -1, v = -1;
    setenv("DPT_EMU_DEVICES", "2", 1);
    setenv("DPT_EMU_DRIVER_VERSION", "12040", 1);
    cr_assert_eq(cudaGetDeviceCount(&n), cudaErrorInsufficientDriver);
    cr_assert_eq(n, 0);
    cr_assert_eq(cudaGetLastError(), cudaErrorInsufficientDriver);
    cr_assert_eq(cudaSetDevice(0), cudaErrorInsufficientDriver);
    cr_assert_eq(cudaDriverGetVersion(&v), cudaSuccess);
    cr_assert_eq(v, 12040);
    setenv("DPT_EMU_DRIVER_VERSION", "13020", 1); /* a newer minor version runs 13.0 */
    cr_assert_eq(cudaGetDeviceCount(&n), cudaSuccess);
    cr_assert_eq(n, 2);
    setenv("DPT_EMU_DRIVER_VERSION", "0", 1); /* no driver at all */
    cr_assert_eq(cudaGetDeviceCount(&n), cudaErrorInsufficientDriver);
    cr_assert_eq(cudaDriverGetVersion(&v), cudaSuccess);
    cr_assert_eq(v, 0);
    unsetenv("DPT_EMU_DRIVER_VERSION");
}

/* ---- asynchronous streams (DPT_EMU_ASYNC): each test is its own process (Criterion forks), so
 * setting the seed before the first CUDA call turns them on for it ---- */

static float *pinned_floats(size_t n, float v)
{
    float *p = NULL;
    cr_assert_eq(cudaMallocHost(&p, n * sizeof(float)), cudaSuccess);
    for (size_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

/* Work runs when the host synchronizes, not when it is queued: a device result read into pinned
 * memory before the synchronize is still the old value. */
Test(async, queued_work_runs_at_the_synchronize)
{
    setenv("DPT_EMU_ASYNC", "7", 1);
    cudaStream_t s;
    cudaEvent_t e;
    float *d = NULL, *h = pinned_floats(64, -1.0f);
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&e), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 64 * sizeof(float)), cudaSuccess);
    DPT_LAUNCH(fill_kernel, 1, 64, s, d, (size_t)64, 3.0f);
    cr_assert_eq(cudaMemcpyAsync(h, d, 64 * sizeof(float), cudaMemcpyDeviceToHost, s),
                 cudaSuccess);
    cr_assert_eq(cudaEventRecord(e, s), cudaSuccess);
    cr_assert_eq(h[0], -1.0f, "the copy ran before any synchronization");
    cr_assert_eq(cudaEventQuery(e), cudaErrorNotReady);
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "not ready is not an error");
    int polls = 1;
    while (cudaEventQuery(e) == cudaErrorNotReady)
        polls++;
    cr_assert_eq(h[63], 3.0f, "the event completed before the copy ran");
    cr_assert_geq(polls, 3, "each query moves the stream one step: kernel, copy, record");
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(e), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFreeHost(h), cudaSuccess);
}

/* Two streams: without an event wait the second does not see the first's writes when only the
 * second is synchronized (the missing-wait bug); with cudaStreamWaitEvent it does. */
Test(async, a_stream_sees_another_streams_writes_only_through_an_event_wait)
{
    setenv("DPT_EMU_ASYNC", "1", 1); /* as late as possible: other seeds may run a early */
    cudaStream_t a, b;
    cudaEvent_t e;
    float *d = NULL, *h = pinned_floats(16, -1.0f);
    cr_assert_eq(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 16 * sizeof(float)), cudaSuccess);
    for (int wait = 0; wait < 2; wait++) {
        cr_assert_eq(cudaMemset(d, 0, 16 * sizeof(float)), cudaSuccess);
        cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
        DPT_LAUNCH(fill_kernel, 1, 16, a, d, (size_t)16, 5.0f);
        cr_assert_eq(cudaEventRecord(e, a), cudaSuccess);
        if (wait)
            cr_assert_eq(cudaStreamWaitEvent(b, e, 0), cudaSuccess);
        cr_assert_eq(cudaMemcpyAsync(h, d, 16 * sizeof(float), cudaMemcpyDeviceToHost, b),
                     cudaSuccess);
        cr_assert_eq(cudaStreamSynchronize(b), cudaSuccess);
        cr_assert_eq(h[0], wait ? 5.0f : 0.0f, "wait %d: the copy read %g", wait, h[0]);
        cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess);
    }
    cr_assert_eq(cudaStreamDestroy(a), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(b), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(e), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFreeHost(h), cudaSuccess);
}

/* CUDA's rule for host-to-device copies: a pageable source is read when the copy is queued,
 * a pinned one when it runs, so a pinned buffer refilled before its copy ran sends the new
 * contents (the reused-staging-buffer bug). The blocking pageable copy returns before the
 * device is written, and a non-blocking stream does not wait for it. */
Test(async, pageable_sources_are_taken_at_the_call_pinned_ones_when_the_copy_runs)
{
    setenv("DPT_EMU_ASYNC", "7", 1);
    cudaStream_t s;
    float *d = NULL, *h = pinned_floats(4, 1.0f), page[4] = {1.0f, 1.0f, 1.0f, 1.0f}, out[4];
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 8 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(d, page, sizeof page, cudaMemcpyHostToDevice, s), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(d + 4, h, 4 * sizeof(float), cudaMemcpyHostToDevice, s),
                 cudaSuccess);
    page[0] = 2.0f;
    h[0] = 2.0f;
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(cudaMemcpy(out, d, sizeof out, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(out[0], 1.0f, "pageable: the value at the call");
    cr_assert_eq(cudaMemcpy(out, d + 4, sizeof out, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(out[0], 2.0f, "pinned: the value when the copy ran");
    /* the legacy stream's pageable upload, then a copy on a non-blocking stream without a wait */
    page[0] = 9.0f;
    cr_assert_eq(cudaMemcpy(d, page, sizeof page, cudaMemcpyHostToDevice), cudaSuccess);
    cr_assert_eq(cudaMemcpyAsync(h, d, 4 * sizeof(float), cudaMemcpyDeviceToHost, s),
                 cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(h[0], 1.0f, "the non-blocking stream waited for the legacy stream's upload");
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFreeHost(h), cudaSuccess);
}

Test(events, record_query_and_wait)
{
    cudaStream_t s;
    cudaEvent_t a, b;
    float ms = -1.0f;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&a), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&b, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaEventRecord(a, s), cudaSuccess);
    cr_assert_eq(cudaEventRecord(b, s), cudaSuccess);
    cudaError_t q;
    while ((q = cudaEventQuery(a)) == cudaErrorNotReady) {
    }
    cr_assert_eq(q, cudaSuccess);
    cr_assert_eq(cudaStreamWaitEvent(0, a, 0), cudaSuccess);
    cr_assert_eq(cudaEventSynchronize(b), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, a), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle);
    cr_assert_eq(cudaEventDestroy(a), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(b), cudaSuccess);
    cr_assert_eq(cudaEventQuery(a), cudaErrorInvalidResourceHandle);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    (void)cudaGetLastError();
}

/* cudaEventElapsedTime's rules (CUDA runtime API, Event Management): an event never recorded or
 * created with cudaEventDisableTiming is an invalid handle, one recorded but not complete is not
 * ready; and the time is the one the record took when its stream ran it, not when the host queued
 * it: s2's record, run first, precedes s1's although the host queued it 2 ms later. */
Test(events, elapsed_time_follows_cudas_rules)
{
    setenv("DPT_EMU_ASYNC", "1", 1); /* work runs only when the host needs it */
    cudaStream_t s1, s2;
    cudaEvent_t a, b, never, untimed;
    float ms = -7.0f;
    cr_assert_eq(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&a), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&b, cudaEventDefault), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&never), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&untimed, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(NULL, a, b), cudaErrorInvalidValue);
    cr_assert_eq(cudaEventRecord(a, s1), cudaSuccess);
    const struct timespec two_ms = {0, 2000000L};
    nanosleep(&two_ms, NULL);
    cr_assert_eq(cudaEventRecord(b, s2), cudaSuccess);
    cr_assert_eq(cudaEventRecord(untimed, s2), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, never), cudaErrorInvalidResourceHandle,
                 "an event never recorded has no time");
    cr_assert_eq(cudaEventElapsedTime(&ms, never, a), cudaErrorInvalidResourceHandle);
    (void)cudaGetLastError();
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady, "queued, not yet run");
    cr_assert_eq(cudaGetLastError(), cudaSuccess, "not ready is not an error");
    cr_assert_eq(ms, -7.0f, "nothing written while not ready");
    cr_assert_eq(cudaStreamSynchronize(s2), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady, "b is done, a is not");
    cr_assert_eq(cudaStreamSynchronize(s1), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
    cr_assert_leq(ms, 0.0f, "b ran before a: %g ms, the time of the host's call, not the run's", ms);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, a), cudaSuccess);
    cr_assert_eq(ms, 0.0f);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, untimed), cudaErrorInvalidResourceHandle,
                 "cudaEventDisableTiming: no time");
    cr_assert_eq(cudaGetLastError(), cudaErrorInvalidResourceHandle);
    cudaEvent_t evs[] = {a, b, never, untimed};
    for (cudaEvent_t e : evs)
        cr_assert_eq(cudaEventDestroy(e), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle, "destroyed");
    cr_assert_eq(cudaStreamDestroy(s1), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s2), cudaSuccess);
    (void)cudaGetLastError();
}

/* ---- cuBLAS ---- */

/* Deterministic values with no common pattern, so a swapped index shows. */
static float value(unsigned seed, size_t i)
{
    uint32_t z = (uint32_t)(seed * 2654435761u + (uint32_t)i * 40503u + 12345u);
    z ^= z >> 13;
    z *= 0x5bd1e995u;
    z ^= z >> 15;
    return (float)(z % 2001u) / 1000.0f - 1.0f;
}

/* A device copy of n host floats. */
static float *upload(const std::vector<float> &h)
{
    float *d = NULL;
    cr_assert_eq(cudaMalloc(&d, h.size() * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice),
                 cudaSuccess);
    return d;
}

/* The backend's mapping (cuda/backend.cu, cuda_gemm): row-major C(m,n) = op(A) op(B) is the
 * column-major C^T(n,m) = op(B)^T op(A)^T, so B goes first, m and n swap, flags stay. */
static cublasStatus_t gemm_row_major(cublasHandle_t h, int ta, int tb, int m, int n, int k,
                                     float alpha, const float *a, int lda, const float *b,
                                     int ldb, float beta, float *c, int ldc)
{
    return cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, n, m,
                       k, &alpha, b, ldb, a, lda, &beta, c, ldc);
}

Test(cublas, all_four_transposes_match_a_naive_row_major_product)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    const int m = 7, n = 5, k = 9, pad = 3; /* leading dimensions padded by 3 */
    const float alpha = 0.75f, beta = -0.5f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* stored shapes: A (m,k) or (k,m); B (k,n) or (n,k); C (m,n); all row-major */
            const int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
            const int lda = ac + pad, ldb = bc + pad, ldc = n + pad;
            std::vector<float> a((size_t)ar * lda), b((size_t)br * ldb), c((size_t)m * ldc);
            for (size_t i = 0; i < a.size(); i++)
                a[i] = value(1, i);
            for (size_t i = 0; i < b.size(); i++)
                b[i] = value(2, i);
            for (size_t i = 0; i < c.size(); i++)
                c[i] = value(3, i);
            float *da = upload(a), *db = upload(b), *dc = upload(c);
            cr_assert_eq(gemm_row_major(h, ta, tb, m, n, k, alpha, da, lda, db, ldb, beta, dc, ldc),
                         CUBLAS_STATUS_SUCCESS, "ta %d tb %d", ta, tb);
            std::vector<float> got(c.size());
            cr_assert_eq(cudaMemcpy(got.data(), dc, got.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost), cudaSuccess);
            double worst = 0.0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < ldc; j++) {
                    double want = c[(size_t)i * ldc + j]; /* padding must stay as it was */
                    if (j < n) {
                        double s = 0.0;
                        for (int l = 0; l < k; l++)
                            s += (double)(ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l]) *
                                 (double)(tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j]);
                        want = alpha * s + beta * want;
                    }
                    double d = fabs(want - got[(size_t)i * ldc + j]);
                    worst = d > worst ? d : worst;
                }
            /* both sum in double in the same order: only the final rounding to float differs,
             * |C| < 10 here, so half an ulp of 10 (5e-7) bounds it */
            cr_assert_leq(worst, 1e-6, "ta %d tb %d: largest difference %g", ta, tb, worst);
            cudaFree(da);
            cudaFree(db);
            cudaFree(dc);
        }
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
}

Test(cublas, argument_rules_of_the_documentation)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    std::vector<float> z(64, 1.0f);
    float *a = upload(z), *b = upload(z), *c = upload(z);
    const float one = 1.0f;
    /* column-major: A (4,3) lda >= 4, B (3,2) ldb >= 3, C (4,2) ldc >= 4 */
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &one, c, 4),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 3, b, 3, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 2, 3, &one, a, 2, b, 3, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "lda < k with transa = T");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 2, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "ldb < k");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, 4, 2, 3, &one, a, 4, b, 1, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "ldb < n with transb = T");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &one, c, 3),
                 CUBLAS_STATUS_INVALID_VALUE, "ldc < m");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 2, 3, &one, a, 4, b, 3, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "m < 0");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, NULL, a, 4, b, 3, &one, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "alpha NULL");
    cr_assert_eq(cublasSgemm(NULL, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &one, c, 4),
                 CUBLAS_STATUS_NOT_INITIALIZED, "no handle");
    /* an empty product still obeys the rules: ld >= max(1, rows), so lda 1 for m = 0 */
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 0, 2, 3, &one, a, 1, b, 3, &one, c, 1),
                 CUBLAS_STATUS_SUCCESS);
    int v = 0;
    cr_assert_eq(cublasGetVersion(NULL, &v), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(v, CUBLAS_VERSION);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_NOT_INITIALIZED);
}

Test(cublas, a_leading_dimension_past_the_allocation_fails_loudly)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    /* A (4,3) column-major needs 12 floats with lda 4; lda 5 legal by the rules, walks 2 past */
    std::vector<float> a12(12, 1.0f), b6(6, 1.0f), c8(8, 0.0f);
    float *a = upload(a12), *b = upload(b6), *c = upload(c8);
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &zero, c, 4),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 5, b, 3, &zero, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "A read past its end");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 4, &zero, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "B read past its end");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &zero, c, 5),
                 CUBLAS_STATUS_INVALID_VALUE, "C written past its end");
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a + 1, 4, b, 3, &zero, c,
                             4),
                 CUBLAS_STATUS_INVALID_VALUE, "A offset by one");
    /* host memory is not device memory */
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a12.data(), 4, b, 3,
                             &zero, c, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "A in host memory");
    /* the output may not alias an input */
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 3, &one, a, 4, b, 3, &zero, a, 4),
                 CUBLAS_STATUS_INVALID_VALUE, "C aliases A");
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cublasDestroy(h);
}

Test(cublas, beta_zero_does_not_read_c_and_tf32_rounds_the_inputs)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    /* 1x1x1: C = a * b with a = 1 + 2^-12, not representable in TF32 (10 mantissa bits) */
    const float x = 1.0f + 1.0f / 4096.0f, nan = NAN, one = 1.0f, zero = 0.0f;
    float *a = upload(std::vector<float>(1, x)), *b = upload(std::vector<float>(1, 1.0f));
    float *c = upload(std::vector<float>(1, nan));
    float got = 0.0f;
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaMemcpy(&got, c, sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(got, x, "beta = 0 must overwrite the NaN in C, got %g", got);
    cr_assert_eq(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, a, 1, b, 1, &zero, c, 1),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaMemcpy(&got, c, sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(got, 1.0f, "TF32 rounds 1 + 2^-12 to 1, got %.9g", got);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cublasDestroy(h);
}

/* ---- cuBLASLt: the epilogues dptrain fuses (cuda/lt.cu) ---- */

/* A matmul descriptor (FP32, compute `compute`) with transposes, epilogue, bias and aux set. */
static cublasLtMatmulDesc_t lt_desc(cublasComputeType_t compute, cublasOperation_t ta,
                                    cublasOperation_t tb, cublasLtEpilogue_t e, const void *bias,
                                    const void *aux, int64_t aux_ld)
{
    cublasLtMatmulDesc_t d;
    cr_assert_eq(cublasLtMatmulDescCreate(&d, compute, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), 0);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), 0);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e), 0);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof bias), 0);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                                sizeof aux), 0);
    cr_assert_eq(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld,
                                                sizeof aux_ld), 0);
    return d;
}

static cublasLtMatrixLayout_t lt_layout(cudaDataType t, int rows, int cols, int ld)
{
    cublasLtMatrixLayout_t l;
    cr_assert_eq(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld), CUBLAS_STATUS_SUCCESS);
    return l;
}

/* The heuristic's verdict on (desc, A, B, D) with D also C: its status, *n the algorithms. */
static cublasStatus_t lt_heuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                   cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                   cublasLtMatrixLayout_t c, int *n)
{
    cublasLtMatmulPreference_t p;
    cr_assert_eq(cublasLtMatmulPreferenceCreate(&p), CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t r;
    *n = -1;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(h, d, a, b, c, c, p, 1, &r, n);
    cublasLtMatmulPreferenceDestroy(p);
    return s;
}

Test(cublaslt, argument_rules_of_cublasLt_h)
{
    cublasLtHandle_t h;
    cr_assert_eq(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
    std::vector<float> z(1024, 1.0f);
    float *mem = upload(z);
    /* column-major D (200 x 4) = A (200 x 8) B (8 x 4) */
    cublasLtMatrixLayout_t a = lt_layout(CUDA_R_32F, 200, 8, 200), b = lt_layout(CUDA_R_32F, 8, 4, 8);
    cublasLtMatrixLayout_t c = lt_layout(CUDA_R_32F, 200, 4, 200);
    cublasLtMatrixLayout_t a16 = lt_layout(CUDA_R_16BF, 200, 8, 200);
    int n = 0;
    cublasLtMatmulDesc_t ok = lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N,
                                      CUBLASLT_EPILOGUE_RELU_AUX_BIAS, mem, mem, 256);
    cr_assert_eq(lt_heuristic(h, ok, a, b, c, &n), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(n, 1);
    int32_t small = 0;
    cr_assert_eq(cublasLtMatmulDescSetAttribute(ok, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &small,
                                                sizeof small), CUBLAS_STATUS_INVALID_VALUE,
                 "an int64 attribute given 4 bytes");
    cublasLtMatmulPreference_t p;
    cublasLtMatmulHeuristicResult_t r;
    cr_assert_eq(cublasLtMatmulPreferenceCreate(&p), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtMatmulAlgoGetHeuristic(h, ok, a, b, c, c, p, 0, &r, &n),
                 CUBLAS_STATUS_INVALID_VALUE, "requestedAlgoCount 0");
    cublasLtMatmulPreferenceDestroy(p);
    cr_assert_eq(lt_heuristic(h, ok, a16, b, c, &n), CUBLAS_STATUS_NOT_SUPPORTED, "bf16 A, FP32 B");
    cublasLtMatmulDesc_t bad[] = {
        lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_RELU_AUX_BIAS, mem,
                mem, 200), /* aux ld not divisible by 128 */
        lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DRELU, NULL, mem,
                128), /* aux ld below D's 200 rows */
        lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DRELU, NULL, NULL,
                256), /* no aux pointer */
        lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_BGRADB, NULL, NULL,
                0), /* no bias pointer */
        lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_T, CUBLAS_OP_N, CUBLASLT_EPILOGUE_BIAS, mem, NULL,
                0), /* op(A) (8 x 200) does not fit D */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(lt_heuristic(h, bad[i], a, b, c, &n), CUBLAS_STATUS_INVALID_VALUE, "case %zu", i);
        cr_assert_eq(cublasLtMatmul(h, bad[i], &z[0], mem, a, mem, b, &z[0], mem, c, mem, c, NULL,
                                    NULL, 0, 0), CUBLAS_STATUS_INVALID_VALUE, "case %zu", i);
        cublasLtMatmulDescDestroy(bad[i]);
    }
    cublasLtMatmulDesc_t tf32 = lt_desc(CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_OP_N, CUBLAS_OP_N,
                                        CUBLASLT_EPILOGUE_BIAS, mem, NULL, 0);
    cublasLtMatrixLayout_t b16 = lt_layout(CUDA_R_16BF, 8, 4, 8);
    cr_assert_eq(lt_heuristic(h, tf32, a16, b16, c, &n), CUBLAS_STATUS_NOT_SUPPORTED,
                 "FAST_TF32 with bf16 operands");
    cublasLtMatmulDescDestroy(tf32);
    for (cublasLtMatrixLayout_t l : {a, b, c, a16, b16})
        cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(ok);
    cudaFree(mem);
    cr_assert_eq(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasLtDestroy(h), CUBLAS_STATUS_NOT_INITIALIZED);
}

/* D (3 x 2, column-major) = A (3 x 2) B (2 x 2) under each epilogue, run on a stream: the bias
 * broadcast down D's rows, the ReLU and its bit-mask (bit i + j * 128), the mask applied by
 * DRELU, and BGRADB's sums of B over k (one per column of D). */
Test(cublaslt, epilogues_compute_what_cublasLt_h_documents)
{
    cublasLtHandle_t h;
    cr_assert_eq(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
    cudaStream_t s;
    cr_assert_eq(cudaStreamCreate(&s), cudaSuccess);
    /* A = [1 -2; 3 4; -5 6], B = [1 0; 2 -1] column-major; A B = [-3 2; 11 -4; 7 -6] */
    float *a = upload({1, 3, -5, -2, 4, 6}), *b = upload({1, 2, 0, -1});
    float *bias = upload({1, -20, 0.5f}), *d = upload(std::vector<float>(6, NAN));
    uint8_t *mask = NULL;
    cr_assert_eq(cudaMalloc((void **)&mask, 32), cudaSuccess);
    cublasLtMatrixLayout_t la = lt_layout(CUDA_R_32F, 3, 2, 3), lb = lt_layout(CUDA_R_32F, 2, 2, 2);
    cublasLtMatrixLayout_t ld = lt_layout(CUDA_R_32F, 3, 2, 3);
    const float one = 1.0f, zero = 0.0f;
    struct {
        cublasLtEpilogue_t e;
        float want[6];
    } cases[] = {
        {CUBLASLT_EPILOGUE_BIAS, {-2, -9, 7.5f, 3, -24, -5.5f}},
        {CUBLASLT_EPILOGUE_RELU_AUX_BIAS, {0, 0, 7.5f, 3, 0, 0}},
        {CUBLASLT_EPILOGUE_DRELU, {0, 0, 7, 2, 0, 0}}, /* the mask the case before wrote */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cublasLtMatmulDesc_t desc = lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N,
                                            cases[i].e, bias, mask, 128);
        cr_assert_eq(cublasLtMatmul(h, desc, &one, a, la, b, lb, &zero, d, ld, d, ld, NULL, NULL, 0,
                                    s), CUBLAS_STATUS_SUCCESS);
        cublasLtMatmulDescDestroy(desc);
        cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
        float got[6];
        cr_assert_eq(cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
        for (int j = 0; j < 6; j++)
            cr_assert_eq(got[j], cases[i].want[j], "epilogue %d element %d: %g, want %g",
                         (int)cases[i].e, j, got[j], cases[i].want[j]);
        if (cases[i].e == CUBLASLT_EPILOGUE_RELU_AUX_BIAS) {
            uint8_t bits[32];
            cr_assert_eq(cudaMemcpy(bits, mask, 32, cudaMemcpyDeviceToHost), cudaSuccess);
            /* column 0: rows 0-2 -> bits 0-2 of byte 0; column 1: bits 128-130 -> byte 16 */
            cr_assert_eq(bits[0] & 7, 4);
            cr_assert_eq(bits[16] & 7, 1);
        }
    }
    /* DRELU_BGRAD: D as DRELU's, [0 2; 0 0; 7 0], and its rows' sums as the bias gradient */
    cublasLtMatmulDesc_t dbg = lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N,
                                       CUBLASLT_EPILOGUE_DRELU_BGRAD, bias, mask, 128);
    cr_assert_eq(cublasLtMatmul(h, dbg, &one, a, la, b, lb, &zero, d, ld, d, ld, NULL, NULL, 0, s),
                 CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDescDestroy(dbg);
    float got[3];
    cr_assert_eq(cudaMemcpy(got, bias, sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert(got[0] == 2.0f && got[1] == 0.0f && got[2] == 7.0f, "DRELU_BGRAD: %g %g %g, want 2 0 7",
              got[0], got[1], got[2]);
    cublasLtMatmulDesc_t bg = lt_desc(CUBLAS_COMPUTE_32F, CUBLAS_OP_N, CUBLAS_OP_N,
                                      CUBLASLT_EPILOGUE_BGRADB, bias, NULL, 0);
    cr_assert_eq(cublasLtMatmul(h, bg, &one, a, la, b, lb, &zero, d, ld, d, ld, NULL, NULL, 0, s),
                 CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDescDestroy(bg);
    cr_assert_eq(cudaMemcpy(got, bias, 2 * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cr_assert_eq(got[0], 3.0f, "column 0 of B sums to 3, got %g", got[0]);
    cr_assert_eq(got[1], -1.0f, "column 1 of B sums to -1, got %g", got[1]);
    for (cublasLtMatrixLayout_t l : {la, lb, ld})
        cublasLtMatrixLayoutDestroy(l);
    cudaFree(a), cudaFree(b), cudaFree(bias), cudaFree(d), cudaFree(mask);
    cudaStreamDestroy(s);
    cr_assert_eq(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
}

/* ---- bf16: the conversions and cublasGemmEx ---- */

static __nv_bfloat16 *upload_bf16(const std::vector<float> &h)
{
    std::vector<__nv_bfloat16> b(h.size());
    for (size_t i = 0; i < h.size(); i++)
        b[i] = __float2bfloat16(h[i]);
    __nv_bfloat16 *d = NULL;
    cr_assert_eq(cudaMalloc(&d, b.size() * sizeof(__nv_bfloat16)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, b.data(), b.size() * sizeof(__nv_bfloat16), cudaMemcpyHostToDevice),
                 cudaSuccess);
    return d;
}

Test(bf16, float2bfloat16_rounds_to_nearest_even)
{
    const struct {
        float x, want;
    } cases[] = {
        {1.0f + 0x1p-8f, 1.0f},                      /* tie: to even */
        {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f},         /* tie: to even, upwards */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f},  /* above the tie */
        {-3.0f, -3.0f},                              /* exact */
        {INFINITY, INFINITY},
        {3.4e38f, INFINITY},                         /* past bf16's largest finite: overflows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float got = __bfloat162float(__float2bfloat16(cases[i].x));
        cr_expect_eq(got, cases[i].want, "bf16(%.9g) = %.9g, want %.9g", (double)cases[i].x,
                     (double)got, (double)cases[i].want);
    }
    cr_expect(isnan(__bfloat162float(__float2bfloat16(NAN))));
    cr_expect_eq(sizeof(__nv_bfloat16), 2u);
}

Test(cublas, gemm_ex_bf16_sums_exact_products_in_fp32_and_checks_arguments)
{
    cublasHandle_t h;
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    /* (2,3) x (3,1) column-major; values exact in bf16, so C is exact */
    __nv_bfloat16 *a = upload_bf16({1.0f, 2.0f, 0.5f, -1.0f, 4.0f, 8.0f});
    __nv_bfloat16 *b = upload_bf16({1.0f, 2.0f, 0.25f});
    float *c = upload(std::vector<float>(2, NAN));
    const float one = 1.0f, zero = 0.0f;
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 3, &one, a, CUDA_R_16BF, 2, b,
                              CUDA_R_16BF, 3, &zero, c, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
    float got[2];
    cr_assert_eq(cudaMemcpy(got, c, sizeof got, cudaMemcpyDeviceToHost), cudaSuccess);
    cr_expect_eq(got[0], 1.0f + 1.0f + 1.0f, "got %g", (double)got[0]);
    cr_expect_eq(got[1], 2.0f - 2.0f + 2.0f, "got %g", (double)got[1]);
    /* FP32 accumulation: 1 + 2^-24 is lost, as in float (double would keep it) */
    __nv_bfloat16 *a2 = upload_bf16({1.0f, 0x1p-12f}), *b2 = upload_bf16({1.0f, 0x1p-12f});
    cr_assert_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 2, &one, a2, CUDA_R_16BF, 1, b2,
                              CUDA_R_16BF, 2, &zero, c, CUDA_R_32F, 1, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT_TENSOR_OP),
                 CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaMemcpy(got, c, sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cr_expect_eq(got[0], 1.0f, "FP32 accumulation keeps 1 + 2^-24 as 1, got %.9g", (double)got[0]);
    /* the argument rules: combinations cuBLAS refuses, leading dimensions, bounds; each call
     * is the 2x1x3 product above with one argument changed */
    struct {
        cublasHandle_t h;
        cudaDataType bt;
        int lda, ldc;
        cublasComputeType_t compute;
        cublasStatus_t want;
        const char *why;
    } bad[] = {
        {h, CUDA_R_32F, 2, 2, CUBLAS_COMPUTE_32F, CUBLAS_STATUS_NOT_SUPPORTED, "Atype != Btype"},
        {h, CUDA_R_16BF, 2, 2, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_STATUS_NOT_SUPPORTED,
         "bf16 inputs under a FAST_TF32 compute type"},
        {h, CUDA_R_16BF, 2, 2, CUBLAS_COMPUTE_16F, CUBLAS_STATUS_NOT_SUPPORTED,
         "bf16 inputs under COMPUTE_16F"},
        {h, CUDA_R_16BF, 1, 2, CUBLAS_COMPUTE_32F, CUBLAS_STATUS_INVALID_VALUE, "lda < m"},
        {h, CUDA_R_16BF, 3, 2, CUBLAS_COMPUTE_32F, CUBLAS_STATUS_INVALID_VALUE,
         "lda 3: A (6 bf16) read past its end"},
        {h, CUDA_R_16BF, 2, 1, CUBLAS_COMPUTE_32F, CUBLAS_STATUS_INVALID_VALUE, "ldc < m"},
        {NULL, CUDA_R_16BF, 2, 2, CUBLAS_COMPUTE_32F, CUBLAS_STATUS_NOT_INITIALIZED, "no handle"},
    };
    for (const auto &t : bad)
        cr_expect_eq(cublasGemmEx(t.h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 1, 3, &one, a, CUDA_R_16BF,
                                  t.lda, b, t.bt, 3, &zero, c, CUDA_R_32F, t.ldc, t.compute,
                                  CUBLAS_GEMM_DEFAULT),
                     t.want, "%s", t.why);
    cudaFree(a);
    cudaFree(b);
    cudaFree(a2);
    cudaFree(b2);
    cudaFree(c);
    cublasDestroy(h);
}

/* ---- stream capture and graphs ---- */

/* x = a x + b: the order of two of them shows in the result. */
static __global__ void axpb_kernel(float *x, size_t n, float a, float b)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] = a * x[i] + b;
}

/* The device value of x[0] (blocking copy, outside any capture). */
static float first_of(const float *d)
{
    float h = NAN;
    cr_assert_eq(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
}

/* Captured work does not run at capture; each launch runs all of it, in capture order, on the
 * launch stream. */
Test(graph, captured_work_runs_at_each_launch_in_capture_order)
{
    setenv("DPT_EMU_ASYNC", "7", 1);
    cudaStream_t s;
    float *d = NULL;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 32 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemset(d, 0, 32 * sizeof(float)), cudaSuccess);
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusInvalidated;
    cr_assert_eq(cudaStreamIsCapturing(s, &st), cudaSuccess);
    cr_assert_eq(st, cudaStreamCaptureStatusNone);
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaStreamIsCapturing(s, &st), cudaSuccess);
    cr_assert_eq(st, cudaStreamCaptureStatusActive);
    DPT_LAUNCH(axpb_kernel, 1, 32, s, d, (size_t)32, 2.0f, 1.0f); /* 2x + 1 */
    DPT_LAUNCH(axpb_kernel, 1, 32, s, d, (size_t)32, 1.0f, 3.0f); /* then + 3 */
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
    cr_assert_not_null(graph);
    cr_assert_eq(first_of(d), 0.0f, "captured work ran at capture");
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int launch = 0; launch < 2; launch++)
        cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(first_of(d), 12.0f, "two launches of 2x+1, +3 from 0: 4, then 12 (got %g)",
                 first_of(d));
    cr_assert_eq(cudaGraphExecDestroy(exec), cudaSuccess);
    cr_assert_eq(cudaGraphDestroy(graph), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
}

/* A synchronization of the capturing stream, a query of an event recorded in the capture and
 * (global mode) an allocation are refused and invalidate the capture, which then yields no
 * graph; relaxed mode allows the allocation. */
Test(graph, a_sync_in_a_capture_is_refused_and_invalidates_it)
{
    cudaStream_t s;
    cudaEvent_t e;
    cudaGraph_t graph = NULL;
    float *d = NULL;
    void *p = NULL;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 8 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    DPT_LAUNCH(axpb_kernel, 1, 8, s, d, (size_t)8, 1.0f, 1.0f);
    cr_assert_eq(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
    cr_assert_eq(cudaGetLastError(), cudaErrorStreamCaptureUnsupported);
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cr_assert_eq(cudaStreamIsCapturing(s, &st), cudaSuccess);
    cr_assert_eq(st, cudaStreamCaptureStatusInvalidated);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    cr_assert_null(graph);
    cr_assert_eq(cudaStreamIsCapturing(s, &st), cudaSuccess);
    cr_assert_eq(st, cudaStreamCaptureStatusNone, "the capture has ended");

    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaEventRecord(e, s), cudaSuccess);
    cr_assert_eq(cudaEventQuery(e), cudaErrorCapturedEvent);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);

    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaMalloc(&p, 64), cudaErrorStreamCaptureUnsupported);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), cudaSuccess);
    cr_assert_eq(cudaMalloc(&p, 64), cudaSuccess, "relaxed mode allows the allocation");
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
    cr_assert_eq(cudaGraphDestroy(graph), cudaSuccess);
    (void)cudaGetLastError();
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(e), cudaSuccess);
    void *const mine[] = {p, d};
    for (int k = 0; k < 2; k++)
        cr_assert_eq(cudaFree(mine[k]), cudaSuccess);
}

/* A second stream joins by waiting on an event recorded in the capture and must be joined back;
 * the replay runs both streams' work. A capturing stream may not wait on uncaptured work. */
Test(graph, capture_across_streams_joined_by_events)
{
    setenv("DPT_EMU_ASYNC", "1", 1);
    cudaStream_t s, t;
    cudaEvent_t fork, join, outside;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    float *d = NULL;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaStreamCreateWithFlags(&t, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&join, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaEventCreateWithFlags(&outside, cudaEventDisableTiming), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 8 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemset(d, 0, 8 * sizeof(float)), cudaSuccess);
    for (int joined = 0; joined < 2; joined++) {
        cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
        DPT_LAUNCH(axpb_kernel, 1, 8, s, d, (size_t)8, 1.0f, 1.0f); /* + 1 on s */
        cr_assert_eq(cudaEventRecord(fork, s), cudaSuccess);
        cr_assert_eq(cudaStreamWaitEvent(t, fork, 0), cudaSuccess);
        cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
        cr_assert_eq(cudaStreamIsCapturing(t, &st), cudaSuccess);
        cr_assert_eq(st, cudaStreamCaptureStatusActive, "t joined the capture");
        DPT_LAUNCH(axpb_kernel, 1, 8, t, d, (size_t)8, 10.0f, 0.0f); /* then x 10 on t */
        if (joined) {
            cr_assert_eq(cudaEventRecord(join, t), cudaSuccess);
            cr_assert_eq(cudaStreamWaitEvent(s, join, 0), cudaSuccess);
            DPT_LAUNCH(axpb_kernel, 1, 8, s, d, (size_t)8, 1.0f, 2.0f); /* then + 2 on s */
        }
        cudaError_t want = joined ? cudaSuccess : cudaErrorStreamCaptureUnjoined;
        cr_assert_eq(cudaStreamEndCapture(s, &graph), want, "joined %d", joined);
    }
    cr_assert_eq(first_of(d), 0.0f, "captured work ran at capture");
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
    cr_assert_eq(first_of(d), 12.0f, "(0 + 1) x 10 + 2, got %g", first_of(d));

    cr_assert_eq(cudaEventRecord(outside, t), cudaSuccess);
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaStreamWaitEvent(s, outside, 0), cudaErrorStreamCaptureIsolation);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    cr_assert_eq(cudaGraphExecDestroy(exec), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(fork), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(join), cudaSuccess);
    cr_assert_eq(cudaEventDestroy(outside), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(t), cudaSuccess);
}

/* ---- two memory spaces (memory_emu.cpp) ---- */

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>

/* Runs body in a forked child with its stderr captured; returns the child's exit status (-1 when
 * a signal ended it) and what it printed. */
static int run_child(void (*body)(void), std::string *err)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        body();
        _exit(0); /* body returned: its access was not caught */
    }
    close(fds[1]);
    char buf[4096];
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof buf)) > 0)
        err->append(buf, (size_t)r);
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void host_reads_device_memory(void)
{
    float *d = NULL;
    if (cudaMalloc(&d, 64 * sizeof(float)) != cudaSuccess)
        _exit(3);
    volatile float x = d[3];
    (void)x;
}

static void host_writes_device_memory(void)
{
    float *d = NULL;
    if (cudaMalloc(&d, 64 * sizeof(float)) != cudaSuccess)
        _exit(3);
    ((volatile float *)d)[5] = 1.0f;
}

static void host_reads_freed_device_memory(void)
{
    float *d = NULL, *e = NULL;
    if (cudaMalloc(&d, 64 * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&e, 64 * sizeof(float)) != cudaSuccess || cudaFree(d) != cudaSuccess)
        _exit(3);
    volatile float x = d[0];
    (void)x;
}

Test(devmem, a_host_read_of_a_device_pointer_stops_with_a_report)
{
    std::string err;
    int rc = run_child(host_reads_device_memory, &err);
    cr_assert_eq(rc, 70, "exit %d, stderr: %s", rc, err.c_str());
    cr_assert(err.find("device memory at 0x") != std::string::npos, "%s", err.c_str());
    cr_assert(err.find("(byte 12 of a 256-byte cudaMalloc on GPU 0) outside any emulated kernel "
                       "or copy: copy it to the host with cudaMemcpy first") != std::string::npos,
              "%s", err.c_str());
#if defined(__x86_64__)
    cr_assert(err.find("host read of device memory") != std::string::npos, "%s", err.c_str());
#endif
}

Test(devmem, a_host_write_to_a_device_pointer_stops_with_a_report)
{
    std::string err;
    int rc = run_child(host_writes_device_memory, &err);
    cr_assert_eq(rc, 70, "exit %d, stderr: %s", rc, err.c_str());
    cr_assert(err.find("(byte 20 of a 256-byte cudaMalloc on GPU 0)") != std::string::npos, "%s",
              err.c_str());
#if defined(__x86_64__)
    cr_assert(err.find("host write to device memory") != std::string::npos, "%s", err.c_str());
#endif
}

Test(devmem, a_host_read_of_freed_device_memory_is_reported_too)
{
    std::string err;
    int rc = run_child(host_reads_freed_device_memory, &err);
#if defined(__SANITIZE_ADDRESS__) /* freed device memory is poisoned: ASan sees the read first */
    cr_assert(rc != 0 && err.find("use-after-poison") != std::string::npos, "exit %d: %s", rc,
              err.c_str());
#else
    cr_assert_eq(rc, 70, "exit %d, stderr: %s", rc, err.c_str());
    cr_assert(err.find("not inside a live allocation") != std::string::npos, "%s", err.c_str());
#endif
}

/* Pinned memory is host memory: the host reads and writes it directly, and kernels, copies and
 * memsets on device memory work as before the protection (the earlier tests run them all). */
Test(devmem, pinned_memory_stays_host_accessible_and_device_memory_round_trips)
{
    float *h = NULL, *d = NULL;
    cr_assert_eq(cudaMallocHost(&h, 8 * sizeof(float)), cudaSuccess);
    cr_assert(isnan(h[0]), "fresh pinned memory is filled like device memory");
    for (int i = 0; i < 8; i++)
        h[i] = (float)i;
    cr_assert_eq(cudaMalloc(&d, 8 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaMemcpy(d, h, 8 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    DPT_LAUNCH(fill_kernel, 1, 4, 0, d, (size_t)4, 7.0f);
    cr_assert_eq(cudaMemcpy(h, d, 8 * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(h[i], i < 4 ? 7.0f : (float)i, "element %d", i);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaFreeHost(h), cudaSuccess);
}

/* cuBLAS's workspace is device memory: cublasCreate takes the 32 MiB a Hopper handle has,
 * cublasSetWorkspace hands it back for the caller's, cublasDestroy frees what is left; on a
 * device without 32 MiB free, cublasCreate fails as cuBLAS does. */
Test(devmem, the_cublas_workspace_counts_against_the_device)
{
    size_t free0 = 0, free1 = 0, total = 0;
    cublasHandle_t h;
    cr_assert_eq(cudaMemGetInfo(&free0, &total), cudaSuccess);
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaMemGetInfo(&free1, &total), cudaSuccess);
    cr_assert_eq(free0 - free1, (size_t)32 << 20, "cublasCreate took %zu bytes", free0 - free1);
    void *ws = NULL;
    cr_assert_eq(cudaMalloc(&ws, 4 << 20), cudaSuccess);
    cr_assert_eq(cublasSetWorkspace(h, ws, 4 << 20), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaMemGetInfo(&free1, &total), cudaSuccess);
    cr_assert_eq(free0 - free1, (size_t)4 << 20, "the default workspace was not given back");
    cr_assert_eq(cublasSetWorkspace(h, ws, 8 << 20), CUBLAS_STATUS_INVALID_VALUE,
                 "a workspace past its allocation");
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cudaFree(ws), cudaSuccess);
    cr_assert_eq(cudaMemGetInfo(&free1, &total), cudaSuccess);
    cr_assert_eq(free1, free0);

    setenv("DPT_EMU_DEVICE_MEM_MB", "31", 1);
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_ALLOC_FAILED);
    setenv("DPT_EMU_DEVICE_MEM_MB", "33", 1);
    cr_assert_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
    cr_assert_eq(cublasDestroy(h), CUBLAS_STATUS_SUCCESS);
    unsetenv("DPT_EMU_DEVICE_MEM_MB");
}

/* ---- blocks: __syncthreads, DPT_SHARED, the race detector (block_emu.cpp) ---- */

/* out[block] = the sum of x over the block's threads (blockDim.x a power of two), a tree in
 * shared memory; with missing_barrier the loop's __syncthreads() is left out (the planted bug). */
static __global__ void block_sum_kernel(const float *x, float *out, int missing_barrier)
{
    DPT_SHARED(float, s, 64);
    const unsigned t = threadIdx.x;
    s[t] = x[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half)
            s[t] += s[t + half];
        if (!missing_barrier)
            __syncthreads();
    }
    if (t == 0)
        out[blockIdx.x] = s[0];
}

/* order[i] = the i-th thread to run after the barrier */
static __global__ void barrier_order_kernel(unsigned *order, unsigned *next)
{
    __syncthreads();
    order[atomicAdd(next, 1u)] = threadIdx.x;
}

static __global__ void shared_past_the_end_kernel(float *out)
{
    DPT_SHARED(float, s, 32);
    s[threadIdx.x + 1] = 1.0f; /* thread 31 writes s[32] */
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}

static __global__ void early_exit_kernel(float *out)
{
    if (threadIdx.x >= 16)
        return; /* threads 16..31 skip the barrier the others wait at */
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

static __global__ void two_barriers_kernel(float *out)
{
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

static __global__ void fresh_shared_kernel(float *out)
{
    DPT_SHARED(float, s, 32);
    out[threadIdx.x] = s[threadIdx.x];
}

/* 4 blocks of 64 threads, x[i] = i (exact in float), summed per block */
static std::vector<float> block_sums(int missing_barrier)
{
    const unsigned blocks = 4, threads = 64;
    std::vector<float> h(blocks * threads), out(blocks, -1.0f);
    for (size_t i = 0; i < h.size(); i++)
        h[i] = (float)i;
    float *x = upload(h), *d = upload(out);
    DPT_LAUNCH(block_sum_kernel, blocks, threads, 0, x, d, missing_barrier);
    cr_assert_eq(cudaGetLastError(), cudaSuccess);
    cr_assert_eq(cudaMemcpy(out.data(), d, blocks * sizeof(float), cudaMemcpyDeviceToHost),
                 cudaSuccess);
    cudaFree(x);
    cudaFree(d);
    return out;
}

/* Runs fn in a child process and returns what it wrote on stderr; *status: waitpid's. */
static std::string stderr_of_child(void (*fn)(), int *status)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        fn();
        _exit(0);
    }
    close(fd[1]);
    std::string text;
    char buf[4096];
    ssize_t got;
    while ((got = read(fd[0], buf, sizeof buf)) > 0)
        text.append(buf, (size_t)got);
    close(fd[0]);
    cr_assert_eq(waitpid(pid, status, 0), pid);
    return text;
}

static void expect_abort_saying(void (*fn)(), const std::vector<const char *> &says)
{
    int status = 0;
    std::string err = stderr_of_child(fn, &status);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
              "the child was not stopped by abort (status %#x); stderr:\n%s", status,
              err.c_str());
    for (const char *s : says)
        cr_assert(strstr(err.c_str(), s), "stderr lacks \"%s\":\n%s", s, err.c_str());
}

Test(blocks, a_block_reduction_is_exact_under_several_shuffle_seeds)
{
    const char *seeds[] = {"0", "1", "2", "12345"};
    for (const char *seed : seeds) {
        setenv("DPT_EMU_SHUFFLE", seed, 1);
        std::vector<float> out = block_sums(0);
        for (unsigned b = 0; b < out.size(); b++) {
            /* sum of 64b .. 64b+63 */
            float want = (float)(64 * b * 64 + 63 * 64 / 2);
            cr_assert_eq(out[b], want, "seed %s block %u: %g, want %g", seed, b, out[b], want);
        }
    }
}

Test(blocks, seeds_shuffle_the_threads_of_a_barrier_interval)
{
    const unsigned threads = 64;
    std::vector<std::vector<unsigned>> orders;
    const char *seeds[] = {"0", "1", "2"};
    for (const char *seed : seeds) {
        setenv("DPT_EMU_SHUFFLE", seed, 1);
        std::vector<unsigned> order(threads, 0);
        unsigned *d = NULL, *next = NULL, zero = 0;
        cr_assert_eq(cudaMalloc(&d, threads * sizeof(unsigned)), cudaSuccess);
        cr_assert_eq(cudaMalloc(&next, sizeof(unsigned)), cudaSuccess);
        cr_assert_eq(cudaMemcpy(next, &zero, sizeof zero, cudaMemcpyHostToDevice), cudaSuccess);
        DPT_LAUNCH(barrier_order_kernel, 1, threads, 0, d, next);
        cr_assert_eq(cudaMemcpy(order.data(), d, threads * sizeof(unsigned),
                                cudaMemcpyDeviceToHost), cudaSuccess);
        std::vector<unsigned> seen(threads, 0);
        for (unsigned t : order)
            seen[t < threads ? t : 0]++;
        for (unsigned t = 0; t < threads; t++)
            cr_assert_eq(seen[t], 1u, "seed %s: thread %u ran %u times after the barrier", seed,
                         t, seen[t]);
        orders.push_back(order);
        cudaFree(d);
        cudaFree(next);
    }
    for (unsigned t = 0; t < threads; t++)
        cr_assert_eq(orders[0][t], t, "seed 0 resumes the threads in order");
    cr_assert(orders[1] != orders[0] && orders[2] != orders[1],
              "seeds 1 and 2 should each resume the threads in another order");
}

Test(blocks, fresh_shared_memory_is_not_zero)
{
    std::vector<float> out(32, 0.0f);
    float *d = upload(out);
    DPT_LAUNCH(fresh_shared_kernel, 1, 32, 0, d);
    cr_assert_eq(cudaMemcpy(out.data(), d, 32 * sizeof(float), cudaMemcpyDeviceToHost),
                 cudaSuccess);
    for (unsigned t = 0; t < 32; t++)
        cr_assert(isnan(out[t]), "shared word %u read %g before any write", t, out[t]);
    cudaFree(d);
}

static void run_missing_barrier() { block_sums(1); }

Test(racecheck, a_missing_syncthreads_is_reported_under_two_seeds)
{
    const char *seeds[] = {"0", "3"};
    for (const char *seed : seeds) {
        setenv("DPT_EMU_SHUFFLE", seed, 1);
        expect_abort_saying(run_missing_barrier,
                            {"racecheck", "kernel block_sum_kernel block (",
                             "hazard on shared s[", "in one barrier interval"});
    }
}

static void run_past_the_end()
{
    float *d = upload(std::vector<float>(32, 0.0f));
    DPT_LAUNCH(shared_past_the_end_kernel, 1, 32, 0, d);
    cudaDeviceSynchronize();
}

Test(racecheck, a_shared_index_out_of_bounds_is_reported)
{
    expect_abort_saying(run_past_the_end,
                        {"kernel shared_past_the_end_kernel block (0,0,0)",
                         "thread (31,0,0) writes shared s[32], out of bounds [0, 32)"});
}

static void run_early_exit()
{
    float *d = upload(std::vector<float>(32, 0.0f));
    DPT_LAUNCH(early_exit_kernel, 1, 32, 0, d);
    cudaDeviceSynchronize();
}

static void run_two_barriers()
{
    float *d = upload(std::vector<float>(32, 0.0f));
    DPT_LAUNCH(two_barriers_kernel, 1, 32, 0, d);
    cudaDeviceSynchronize();
}

Test(synccheck, barrier_divergence_is_reported_not_a_deadlock)
{
    expect_abort_saying(run_early_exit, {"synccheck", "kernel early_exit_kernel",
                                         "barrier divergence", "exited without reaching it",
                                         "(16 of 32 threads exited)"});
    expect_abort_saying(run_two_barriers, {"synccheck", "kernel two_barriers_kernel",
                                           "barrier divergence", "at another one"});
}

static void run_with_a_bad_seed()
{
    setenv("DPT_EMU_SHUFFLE", "yes", 1);
    run_early_exit();
}

Test(launch, a_shuffle_seed_that_is_not_a_number_is_refused)
{
    int status = 0;
    std::string err = stderr_of_child(run_with_a_bad_seed, &status);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x; stderr:\n%s", status,
              err.c_str());
    cr_assert(strstr(err.c_str(), "DPT_EMU_SHUFFLE=yes is not a seed"), "stderr:\n%s",
              err.c_str());
}

/* cudaEventRecordExternal: refused outside a capture; inside one, a node that records the event
 * (pending from the launch, complete with its time when the stream runs it) at every launch,
 * where a plain record in a capture is an internal dependency with no time. */
Test(graph, an_external_event_record_is_a_node_that_records_at_each_launch)
{
    setenv("DPT_EMU_ASYNC", "1", 1);
    cudaStream_t s;
    cudaEvent_t a, b, inner;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    float *d = NULL, ms = -1.0f;
    cr_assert_eq(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&a), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&b), cudaSuccess);
    cr_assert_eq(cudaEventCreate(&inner), cudaSuccess);
    cr_assert_eq(cudaMalloc(&d, 8 * sizeof(float)), cudaSuccess);
    cr_assert_eq(cudaEventRecordWithFlags(a, s, cudaEventRecordExternal), cudaErrorInvalidValue,
                 "the external flag is valid only in a capture");
    cr_assert_eq(cudaEventRecordWithFlags(a, s, 0x4u), cudaErrorInvalidValue);
    (void)cudaGetLastError();
    cr_assert_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
    cr_assert_eq(cudaEventRecordWithFlags(a, s, cudaEventRecordExternal), cudaSuccess);
    DPT_LAUNCH(axpb_kernel, 1, 8, s, d, (size_t)8, 1.0f, 1.0f);
    cr_assert_eq(cudaEventRecordWithFlags(b, s, cudaEventRecordExternal), cudaSuccess);
    cr_assert_eq(cudaEventRecord(inner, s), cudaSuccess);
    cr_assert_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
    cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorInvalidResourceHandle,
                 "captured, never launched: not recorded");
    (void)cudaGetLastError();
    for (int launch = 0; launch < 2; launch++) {
        cr_assert_eq(cudaGraphLaunch(exec, s), cudaSuccess);
        cr_assert_eq(cudaEventQuery(b), cudaErrorNotReady, "launched, not yet run");
        cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaErrorNotReady);
        cr_assert_eq(cudaStreamSynchronize(s), cudaSuccess);
        cr_assert_eq(cudaEventElapsedTime(&ms, a, b), cudaSuccess);
        cr_assert_geq(ms, 0.0f, "launch %d: %g ms", launch, ms);
    }
    cr_assert_eq(cudaEventElapsedTime(&ms, a, inner), cudaErrorInvalidResourceHandle,
                 "a plain record in a capture has no time");
    (void)cudaGetLastError();
    cr_assert_eq(cudaGraphExecDestroy(exec), cudaSuccess);
    cr_assert_eq(cudaGraphDestroy(graph), cudaSuccess);
    cudaEvent_t evs[] = {a, b, inner};
    for (cudaEvent_t e : evs)
        cr_assert_eq(cudaEventDestroy(e), cudaSuccess);
    cr_assert_eq(cudaFree(d), cudaSuccess);
    cr_assert_eq(cudaStreamDestroy(s), cudaSuccess);
}
