/* The CUDA runtime emulation: device memory from per-GPU arenas the host cannot touch outside
 * emulated work (memory_emu.cpp), pinned memory from malloc, both kept in an allocation table (so
 * bad frees and out-of-bounds copies return cudaErrorInvalidValue and say why on stderr), streams
 * and events as tokens, devices counted from DPT_EMU_DEVICES, the per-thread last error, and
 * the launch check behind DPT_EMU_LAUNCH. Kernels, copies, sets and event records are queued on
 * their stream (stream_emu.cpp): run at once by default, when the host needs them with
 * DPT_EMU_ASYNC=SEED.
 *
 * Environment: DPT_EMU_DEVICES (the host's physical devices, default 1; 0 means none), of which
 * the process sees those CUDA_VISIBLE_DEVICES lists, renumbered from 0 (as the CUDA runtime
 * does; see visible_devices), DPT_EMU_DRIVER_VERSION (the driver's CUDA version, default the
 * runtime's 13000; an older major version, or 0 for no driver, makes cudaGetDeviceCount fail
 * with cudaErrorInsufficientDriver as the static CUDA 13 runtime does on an old driver),
 * DPT_EMU_DEVICE_MEM_MB
 * (memory per device, default 16384, shared with cuBLAS's workspace and NCCL's buffers),
 * DPT_EMU_ALLOC_FAIL_AFTER=N (the process's cudaMalloc calls after its first N fail with
 * cudaErrorMemoryAllocation), DPT_EMU_POISON=0 (do not fill new allocations with 0xff
 * bytes, which read as NaN floats: on a GPU fresh memory is not zero either), DPT_EMU_SHUFFLE=SEED
 * (block and thread order scrambled by SEED; block_emu.cpp), DPT_EMU_VERBOSE=1 (explain launch
 * errors on stderr). */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "cuda_emu_internal.h"
#include "cuda_emu_kernel.h"

namespace dpt_emu {

static long env_long(const char *name, long fallback, long lo, long hi)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return fallback;
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi) {
        static std::atomic<int> warned{0}; /* once: this is read on every call */
        if (!warned.exchange(1))
            report("cuda_emu", "%s=%s is not a whole number in [%ld, %ld]; using %ld", name, s,
                   lo, hi, fallback);
        return fallback;
    }
    return v;
}

void report(const char *who, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int init = 0, fin = 0, rank = -1;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank >= 0)
        fprintf(stderr, "[cuda_emu rank %d] %s: %s\n", rank, who, msg);
    else
        fprintf(stderr, "[cuda_emu] %s: %s\n", who, msg);
}

static int physical_count() { return (int)env_long("DPT_EMU_DEVICES", 1, 0, 64); }

int driver_version() { return (int)env_long("DPT_EMU_DRIVER_VERSION", CUDART_VERSION, 0, 99999); }

/* CUDA's minor-version compatibility: a driver of the runtime's major version or newer runs it. */
static bool driver_sufficient() { return driver_version() / 1000 >= CUDART_VERSION / 1000; }

/* The physical devices this process sees, in the order CUDA_VISIBLE_DEVICES lists them (device
 * i of the process is physical device visible[i]). Unset: all of them. As the CUDA runtime, the
 * list ends at the first entry that is not a device of the host (a number out of range, a
 * repeated one, or anything else, GPU UUIDs included: the emulation has none); an empty value
 * hides every device. Read on every call: cheap, and tests change it between calls. */
static int visible_devices(int *visible, int max)
{
    int n = physical_count();
    const char *s = getenv("CUDA_VISIBLE_DEVICES");
    if (!s) {
        for (int i = 0; i < n && i < max; i++)
            visible[i] = i;
        return n < max ? n : max;
    }
    int k = 0;
    while (*s && k < max) {
        char *end = NULL;
        long v = strtol(s, &end, 10);
        if (end == s || (*end != ',' && *end != '\0') || v < 0 || v >= n)
            break;
        bool repeated = false;
        for (int i = 0; i < k; i++)
            repeated = repeated || visible[i] == (int)v;
        if (repeated)
            break;
        visible[k++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return k;
}

int device_count()
{
    if (!driver_sufficient())
        return 0;
    int visible[64];
    return visible_devices(visible, 64);
}

int physical_device(int device)
{
    int visible[64];
    int n = visible_devices(visible, 64);
    return device >= 0 && device < n ? visible[device] : -1;
}

static size_t device_mem_bytes()
{
    return (size_t)env_long("DPT_EMU_DEVICE_MEM_MB", 16384, 1, 1L << 24) << 20;
}

/* ---- the tables ---- */

struct stream_rec {
    unsigned flags;
    int device;
    int priority; /* cudaStreamCreateWithPriority's, clamped; only reported back */
};
struct event_rec {
    unsigned flags;
    bool recorded;
    double when;         /* seconds, CLOCK_MONOTONIC, when the last record ran */
    cudaStream_t stream; /* the last record: complete once stream ran through id */
    uint64_t id;
};

static std::mutex g_lock;                            /* guards everything below */
static std::map<uintptr_t, region> g_regions;        /* by base address */
static std::map<int, size_t> g_used;                 /* device bytes in use, by device */
static std::set<const void *> g_streams;             /* live stream tokens */
static std::map<const void *, event_rec> g_events;   /* live event tokens */
static thread_local cudaError_t t_last_error = cudaSuccess;
static thread_local int t_device = 0;

/* Records e as this thread's last error (CUDA: every failing call does) and returns it. */
static cudaError_t fail(cudaError_t e)
{
    t_last_error = e;
    return e;
}

int current_device() { return t_device; }

static bool find_locked(const void *p, region *out)
{
    uintptr_t a = (uintptr_t)p;
    auto it = g_regions.upper_bound(a);
    if (it == g_regions.begin())
        return false;
    --it;
    if (a - it->first >= it->second.size)
        return false;
    *out = it->second;
    return true;
}

bool find_region(const void *p, region *out)
{
    std::lock_guard<std::mutex> g(g_lock);
    return find_locked(p, out);
}

bool try_find_region(const void *p, region *out)
{
    std::unique_lock<std::mutex> g(g_lock, std::try_to_lock);
    return g.owns_lock() && find_locked(p, out);
}

static const char *kind_name(mem_kind k)
{
    if (k == MEM_DEVICE)
        return "device (cudaMalloc)";
    return k == MEM_PINNED ? "pinned host (cudaMallocHost)" : "untracked";
}

bool check_range(const char *who, const char *what, const void *p, size_t bytes, int kinds)
{
    if (bytes == 0)
        return true;
    region r;
    bool found = find_region(p, &r);
    if (found && (r.kind & kinds) && (size_t)((const char *)p - r.base) + bytes <= r.size)
        return true;
    if (!found) {
        report(who, "%s %p (%zu bytes) is not inside any %s allocation", what, p, bytes,
               kinds == MEM_DEVICE ? "device" : "device-accessible");
    } else if (!(r.kind & kinds)) {
        report(who, "%s %p lies in %s memory, which is not allowed here", what, p,
               kind_name(r.kind));
    } else {
        size_t off = (size_t)((const char *)p - r.base);
        report(who,
               "%s [%p, +%zu bytes) runs %zu bytes past the end of its allocation [%p, +%zu "
               "bytes) (starts at byte %zu of it)",
               what, p, bytes, off + bytes - r.size, (const void *)r.base, r.size, off);
    }
    return false;
}

bool stream_valid(cudaStream_t s)
{
    if (s == 0)
        return true;
    std::lock_guard<std::mutex> g(g_lock);
    return g_streams.count((const void *)s) != 0;
}

/* ---- the launch check of DPT_EMU_LAUNCH ---- */

bool launch_check(dim3 grid, dim3 block, cudaStream_t stream, const char *kernel,
                  const char *file, int line)
{
    const char *why = NULL;
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0)
        why = "a grid or block dimension is 0";
    else if (block.x > 1024 || block.y > 1024 || block.z > 64)
        why = "block dimensions exceed (1024, 1024, 64)";
    else if (threads > 1024)
        why = "more than 1024 threads per block";
    else if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        why = "grid dimensions exceed (2^31 - 1, 65535, 65535)";
    cudaError_t e = cudaErrorInvalidConfiguration;
    if (!why && t_device >= device_count()) {
        why = "no device";
        e = cudaErrorNoDevice;
    }
    if (!why && !stream_valid(stream)) {
        why = "the stream was never created or is already destroyed";
        e = cudaErrorInvalidResourceHandle;
    }
    if (!why)
        return true;
    fail(e);
    if (getenv("DPT_EMU_VERBOSE"))
        report("launch", "%s:%d: %s<<<(%u,%u,%u), (%u,%u,%u)>>> not run: %s", file, line, kernel,
               grid.x, grid.y, grid.z, block.x, block.y, block.z, why);
    return false;
}

unsigned long long launch_shuffle_seed()
{
    static std::atomic<unsigned long long> launches{0};
    const char *s = getenv("DPT_EMU_SHUFFLE");
    char *end = NULL;
    unsigned long long base = s ? strtoull(s, &end, 10) : 0;
    if (s && (end == s || *end)) { /* a seed is a number: say so rather than guess */
        report("launch", "DPT_EMU_SHUFFLE=%s is not a seed (a number; 0 = off)", s);
        exit(2);
    }
    if (base == 0)
        return 0;
    /* SplitMix64 of the launch count and seed: a different order every launch, the same every
     * run of a seed (seed 1 as before seeds existed) */
    unsigned long long z = ++launches + (base - 1) * 0xD1B54A32D192ED03ull;
    z *= 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 1;
}

static double now_seconds()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Device memory comes from the device's arena (memory_emu.cpp: inaccessible to the host outside
 * emulated work), pinned memory from malloc. `program`: the program's own allocation, which
 * DPT_EMU_ALLOC_FAIL_AFTER counts and which is filled with 0xff bytes (NaN) unless
 * DPT_EMU_POISON=0; a library's internal buffers (never read) are neither. */
static cudaError_t alloc(void **ptr, size_t size, mem_kind kind, const char *who,
                         const char *label, bool program)
{
    if (!ptr)
        return fail(cudaErrorInvalidValue);
    *ptr = NULL;
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    if (size == 0) /* as CUDA: success, and no pointer */
        return cudaSuccess;
    const int phys = physical_device(t_device);
    std::lock_guard<std::mutex> g(g_lock);
    if (kind == MEM_DEVICE && size > device_mem_bytes() - g_used[phys])
        return fail(cudaErrorMemoryAllocation);
    static long device_allocs = 0; /* under g_lock */
    const long fail_after = env_long("DPT_EMU_ALLOC_FAIL_AFTER", -1, -1, 1L << 40);
    if (kind == MEM_DEVICE && program && fail_after >= 0 && device_allocs++ >= fail_after)
        return fail(cudaErrorMemoryAllocation);
    char *p = kind == MEM_DEVICE ? (char *)arena_alloc(phys, size, device_mem_bytes())
                                 : (char *)malloc(size);
    if (!p) {
        report(who, "%s of %zu bytes failed", kind == MEM_DEVICE ? "the device arena's reservation"
               : "host malloc", size);
        return fail(cudaErrorMemoryAllocation);
    }
    const char *poison = getenv("DPT_EMU_POISON");
    if (program && (!poison || strcmp(poison, "0") != 0)) { /* a library's: never read */
        work_scope w; /* the emulation writes device memory: open it for that */
        device_memory_open();
        memset(p, 0xff, size);
    }
    g_regions[(uintptr_t)p] = region{p, size, kind, phys, label};
    if (kind == MEM_DEVICE)
        g_used[phys] += size;
    *ptr = p;
    return cudaSuccess;
}

static cudaError_t release(void *ptr, mem_kind kind, const char *who)
{
    if (!ptr)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_regions.find((uintptr_t)ptr);
    if (it == g_regions.end() || it->second.kind != kind) {
        region r;
        if (it != g_regions.end())
            report(who, "%p is %s memory; free it with %s", ptr, kind_name(it->second.kind),
                   it->second.kind == MEM_DEVICE ? "cudaFree" : "cudaFreeHost");
        else if (find_locked(ptr, &r))
            report(who, "%p points %zu bytes into the allocation at %p, not to its start", ptr,
                   (size_t)((char *)ptr - r.base), (const void *)r.base);
        else
            report(who, "%p was never allocated or is already freed", ptr);
        return fail(cudaErrorInvalidValue);
    }
    const region r = it->second;
    g_regions.erase(it);
    if (kind == MEM_DEVICE) {
        g_used[r.device] -= r.size;
        arena_free(r.device, ptr, r.size);
    } else {
        free(ptr);
    }
    return cudaSuccess;
}

cudaError_t library_alloc(void **ptr, size_t size, const char *label)
{
    return alloc(ptr, size, MEM_DEVICE, label, label, false);
}

cudaError_t library_free(void *ptr)
{
    /* no synchronize: ncclCommAbort frees behind a collective that may never complete */
    return release(ptr, MEM_DEVICE, "library free");
}

/* Where a pointer lives according to the table: device, pinned or plain host. */
static mem_kind where(const void *p)
{
    region r;
    return find_region(p, &r) ? r.kind : MEM_NONE;
}

/* A host-side operand: plain host memory or pinned; when it starts inside a tracked allocation
 * it must also end inside it. */
static bool check_host_side(const char *who, const char *what, const void *p, size_t bytes)
{
    region r;
    if (!find_region(p, &r))
        return true; /* pageable host memory: ASan watches it */
    if (r.kind == MEM_DEVICE) {
        report(who, "%s %p is device memory but the copy kind says host", what, p);
        return false;
    }
    return check_range(who, what, p, bytes, MEM_PINNED);
}

/* Checks a copy's operands as CUDA does, before anything is queued. */
static cudaError_t check_copy(void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                              const char *who)
{
    if (count == 0)
        return cudaSuccess;
    if (!dst || !src) {
        report(who, "%s is NULL", dst ? "src" : "dst");
        return fail(cudaErrorInvalidValue);
    }
    const int dev = MEM_DEVICE | MEM_PINNED; /* device-accessible (pinned memory is mapped) */
    bool ok = true;
    switch (kind) {
    case cudaMemcpyHostToHost:
        ok = check_host_side(who, "dst", dst, count) && check_host_side(who, "src", src, count);
        break;
    case cudaMemcpyHostToDevice:
        ok = check_range(who, "dst", dst, count, dev) && check_host_side(who, "src", src, count);
        break;
    case cudaMemcpyDeviceToHost:
        ok = check_range(who, "src", src, count, dev) && check_host_side(who, "dst", dst, count);
        break;
    case cudaMemcpyDeviceToDevice:
        ok = check_range(who, "dst", dst, count, dev) && check_range(who, "src", src, count, dev);
        break;
    case cudaMemcpyDefault: /* unified addressing: each side is what the table says it is */
        ok = (where(dst) == MEM_NONE ? true : check_range(who, "dst", dst, count, dev)) &&
             (where(src) == MEM_NONE ? true : check_range(who, "src", src, count, dev));
        break;
    default:
        report(who, "copy kind %d is not a cudaMemcpyKind", (int)kind);
        return fail(cudaErrorInvalidMemcpyDirection);
    }
    if (!ok)
        return fail(cudaErrorInvalidValue);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + count && s < d + count) {
        report(who, "dst [%p, +%zu) and src [%p, +%zu) overlap, which cudaMemcpy does not allow",
               dst, count, src, count);
        return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

/* Queues a checked copy on stream as CUDA orders it (the "API synchronization behavior" page):
 * a pageable host source is taken now (the runtime stages it before returning), pinned memory
 * and device memory when the copy runs. A pageable host destination, a blocking call from
 * pinned memory, or any blocking copy to the host returns once the copy ran; a blocking
 * pageable-to-device copy returns once its source is staged, before the device is written. */
static cudaError_t copy(void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                        cudaStream_t stream, bool blocking, const char *who)
{
    if (count == 0)
        return cudaSuccess;
    cudaError_t e = check_copy(dst, src, count, kind, who);
    if (e != cudaSuccess)
        return e;
    const bool src_pageable = where(src) == MEM_NONE, dst_pageable = where(dst) == MEM_NONE;
    if (capture_refuse_pageable(stream, src_pageable || dst_pageable, who))
        return fail(cudaErrorStreamCaptureUnsupported);
    if (blocking) /* the legacy stream's earlier work first */
        synchronize_stream(stream);
    uint64_t id;
    if (src_pageable) {
        std::shared_ptr<std::vector<char>> staged =
            std::make_shared<std::vector<char>>((const char *)src, (const char *)src + count);
        id = enqueue(stream, [dst, staged] { memcpy(dst, staged->data(), staged->size()); });
    } else {
        id = enqueue(stream, [dst, src, count] { memcpy(dst, src, count); });
    }
    const bool d2d = where(src) == MEM_DEVICE && where(dst) == MEM_DEVICE;
    if (dst_pageable || (blocking && !src_pageable && !d2d))
        run_through(stream, id);
    return cudaSuccess;
}

/* Queued like a kernel; on pinned memory the blocking form returns when it ran. */
static cudaError_t set(void *ptr, int value, size_t count, cudaStream_t stream, bool blocking,
                       const char *who)
{
    if (count == 0)
        return cudaSuccess;
    if (!check_range(who, "destination", ptr, count, MEM_DEVICE | MEM_PINNED))
        return fail(cudaErrorInvalidValue);
    uint64_t id = enqueue(stream, [ptr, value, count] { memset(ptr, value, count); });
    if (blocking && where(ptr) == MEM_PINNED)
        run_through(stream, id);
    return cudaSuccess;
}

static bool event_get(cudaEvent_t e, event_rec *out)
{
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_events.find((const void *)e);
    if (it == g_events.end())
        return false;
    *out = it->second;
    return true;
}

/* The work of a record: the event's time, taken when the stream runs it (DPT_EMU_ASYNC: when the
 * queue reaches it, so two streams' records interleave as their work did). */
static std::function<void()> stamp_work(const void *token)
{
    return [token] {
        std::lock_guard<std::mutex> g(g_lock);
        auto it = g_events.find(token);
        if (it != g_events.end())
            it->second.when = now_seconds();
    };
}

void event_launched(const void *token, cudaStream_t stream, uint64_t id)
{
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_events.find(token);
    if (it != g_events.end()) {
        it->second.recorded = true;
        it->second.stream = stream;
        it->second.id = id;
    }
}

} // namespace dpt_emu

using namespace dpt_emu;

extern "C" {

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count)
        return fail(cudaErrorInvalidValue);
    *count = device_count();
    if (!driver_sufficient())
        return fail(cudaErrorInsufficientDriver);
    return *count > 0 ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device)
{
    if (!driver_sufficient())
        return fail(cudaErrorInsufficientDriver);
    int n = device_count();
    if (n == 0)
        return fail(cudaErrorNoDevice);
    if (device < 0 || device >= n)
        return fail(cudaErrorInvalidDevice);
    t_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    if (!device)
        return fail(cudaErrorInvalidValue);
    if (device_count() == 0)
        return fail(cudaErrorNoDevice);
    *device = t_device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device)
{
    if (!prop)
        return fail(cudaErrorInvalidValue);
    int n = device_count();
    if (n == 0)
        return fail(cudaErrorNoDevice);
    if (device < 0 || device >= n)
        return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "dptrain host emulation");
    prop->totalGlobalMem = device_mem_bytes();
    prop->sharedMemPerBlock = 48 * 1024;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->major = 9; /* reported as sm_90; one SM: it is one host thread */
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->pciBusID = physical_device(device); /* tells the host's devices apart across processes */
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = driver_version();
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (!version)
        return fail(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    if (capture_refuse_unsafe("cudaDeviceSynchronize"))
        return fail(cudaErrorStreamCaptureUnsupported);
    synchronize_all();
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    if (!free_bytes || !total_bytes)
        return fail(cudaErrorInvalidValue);
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    const int phys = physical_device(t_device);
    std::lock_guard<std::mutex> g(g_lock);
    *total_bytes = device_mem_bytes();
    *free_bytes = *total_bytes - g_used[phys];
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    if (capture_refuse_unsafe("cudaMalloc"))
        return fail(cudaErrorStreamCaptureUnsupported);
    return alloc(ptr, size, MEM_DEVICE, "cudaMalloc", "cudaMalloc", true);
}
/* Frees synchronize the device first, as CUDA's do: no queued work outlives its memory. */
cudaError_t cudaFree(void *ptr)
{
    if (capture_refuse_unsafe("cudaFree"))
        return fail(cudaErrorStreamCaptureUnsupported);
    if (ptr)
        synchronize_all();
    return release(ptr, MEM_DEVICE, "cudaFree");
}
cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    if (capture_refuse_unsafe("cudaMallocHost"))
        return fail(cudaErrorStreamCaptureUnsupported);
    return alloc(ptr, size, MEM_PINNED, "cudaMallocHost", "cudaMallocHost", true);
}
cudaError_t cudaFreeHost(void *ptr)
{
    if (capture_refuse_unsafe("cudaFreeHost"))
        return fail(cudaErrorStreamCaptureUnsupported);
    if (ptr)
        synchronize_all();
    return release(ptr, MEM_PINNED, "cudaFreeHost");
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind)
{
    if (capture_refuse_unsafe("cudaMemcpy"))
        return fail(cudaErrorStreamCaptureUnsupported);
    return copy(dst, src, count, kind, 0, true, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    return copy(dst, src, count, kind, stream, false, "cudaMemcpyAsync");
}

cudaError_t cudaMemset(void *ptr, int value, size_t count)
{
    if (capture_refuse_unsafe("cudaMemset"))
        return fail(cudaErrorStreamCaptureUnsupported);
    return set(ptr, value, count, 0, true, "cudaMemset");
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream)
{
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    return set(ptr, value, count, stream, false, "cudaMemsetAsync");
}

cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    if (!stream || (flags & ~cudaStreamNonBlocking))
        return fail(cudaErrorInvalidValue);
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    stream_rec *s = new stream_rec{flags, t_device, 0};
    stream_created((cudaStream_t)(void *)s, !(flags & cudaStreamNonBlocking));
    std::lock_guard<std::mutex> g(g_lock);
    g_streams.insert(s);
    *stream = (cudaStream_t)(void *)s;
    return cudaSuccess;
}

/* A range like a GPU's (lower numbers are greater priorities); the emulation runs streams in
 * the order its seed picks whatever their priority, so the value is only stored and reported. */
enum { EMU_PRIORITY_LEAST = 0, EMU_PRIORITY_GREATEST = -5 };

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest)
{
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    if (least)
        *least = EMU_PRIORITY_LEAST;
    if (greatest)
        *greatest = EMU_PRIORITY_GREATEST;
    return cudaSuccess;
}

/* As CUDA, a priority outside the range is clamped to it. */
cudaError_t cudaStreamCreateWithPriority(cudaStream_t *stream, unsigned int flags, int priority)
{
    cudaError_t rc = cudaStreamCreateWithFlags(stream, flags);
    if (rc != cudaSuccess)
        return rc;
    int p = priority > EMU_PRIORITY_LEAST ? EMU_PRIORITY_LEAST : priority;
    ((stream_rec *)(void *)*stream)->priority = p < EMU_PRIORITY_GREATEST ? EMU_PRIORITY_GREATEST : p;
    return cudaSuccess;
}

cudaError_t cudaStreamGetPriority(cudaStream_t stream, int *priority)
{
    if (!priority)
        return fail(cudaErrorInvalidValue);
    if (!stream) { /* the legacy default stream */
        *priority = EMU_PRIORITY_LEAST;
        return cudaSuccess;
    }
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    *priority = ((stream_rec *)(void *)stream)->priority;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (!stream || !stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    stream_destroyed(stream);
    std::lock_guard<std::mutex> g(g_lock);
    if (!g_streams.erase((const void *)stream))
        return fail(cudaErrorInvalidResourceHandle);
    delete (stream_rec *)(void *)stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    if (capture_refuse_sync(stream, "cudaStreamSynchronize"))
        return fail(cudaErrorStreamCaptureUnsupported);
    synchronize_stream(stream);
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags)
{
    if (flags != 0)
        return fail(cudaErrorInvalidValue);
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    event_rec ev;
    if (!event_get(event, &ev))
        return fail(cudaErrorInvalidResourceHandle);
    cudaError_t ce = cudaSuccess;
    if (capture_wait_event(stream, event, &ce)) /* a capture's dependency, fork or refusal */
        return ce == cudaSuccess ? ce : fail(ce);
    /* the record most recent at this call; an event never recorded is complete */
    enqueue_wait(stream, ev.stream, ev.id);
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
    if (!event || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming)))
        return fail(cudaErrorInvalidValue);
    if (t_device >= device_count())
        return fail(cudaErrorNoDevice);
    /* the token is a unique address; the record lives in the table */
    char *token = new char;
    std::lock_guard<std::mutex> g(g_lock);
    g_events[token] = event_rec{flags, false, 0.0, 0, 0};
    *event = (cudaEvent_t)(void *)token;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    return cudaEventRecordWithFlags(event, stream, cudaEventRecordDefault);
}

cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream, unsigned int flags)
{
    if (flags & ~cudaEventRecordExternal)
        return fail(cudaErrorInvalidValue);
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle);
    event_rec ev;
    if (!event_get(event, &ev))
        return fail(cudaErrorInvalidResourceHandle);
    const void *token = (const void *)event;
    if (flags & cudaEventRecordExternal) { /* a node of the graph, or refused */
        if (capture_take_record(stream, event, stamp_work(token)))
            return cudaSuccess;
        report("cudaEventRecordWithFlags", "cudaEventRecordExternal on stream %p, which is not "
               "capturing: the flag is valid only during stream capture", (void *)stream);
        return fail(cudaErrorInvalidValue);
    }
    if (capture_record_event(event, stream)) /* a node of the capture, not a completion */
        return cudaSuccess;
    /* complete, with its time, when the stream reaches it */
    event_launched(token, stream, enqueue(stream, stamp_work(token)));
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    event_rec ev;
    if (!event_get(event, &ev))
        return fail(cudaErrorInvalidResourceHandle);
    if (capture_event_captured(event, "cudaEventSynchronize"))
        return fail(cudaErrorCapturedEvent);
    run_through(ev.stream, ev.id);
    return cudaSuccess;
}

/* Not ready until the stream has reached the record: each query moves the queued work one step
 * on (a GPU runs without the host), so a poll loop ends, and one behind a hang never does. */
cudaError_t cudaEventQuery(cudaEvent_t event)
{
    event_rec ev;
    if (!event_get(event, &ev))
        return fail(cudaErrorInvalidResourceHandle);
    if (capture_event_captured(event, "cudaEventQuery"))
        return fail(cudaErrorCapturedEvent);
    if (is_done(ev.stream, ev.id))
        return cudaSuccess;
    (void)step_toward(ev.stream, ev.id);
    return cudaErrorNotReady; /* not an error: the last error stays */
}

/* CUDA's rules: an event created with cudaEventDisableTiming, or never recorded, is an invalid
 * handle here; one recorded but not yet complete is cudaErrorNotReady; an event last recorded in
 * a capture (not by an external node) has no time. The time is the one its record's work took
 * when its stream ran it. */
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    if (!ms)
        return fail(cudaErrorInvalidValue);
    event_rec a, b;
    if (!event_get(start, &a) || !event_get(end, &b))
        return fail(cudaErrorInvalidResourceHandle);
    if ((a.flags | b.flags) & cudaEventDisableTiming)
        return fail(cudaErrorInvalidResourceHandle);
    if (!a.recorded || !b.recorded)
        return fail(cudaErrorInvalidResourceHandle);
    if (capture_event_captured(start, "cudaEventElapsedTime") ||
        capture_event_captured(end, "cudaEventElapsedTime"))
        return fail(cudaErrorCapturedEvent);
    /* outside the table's lock: is_done takes the queues' lock, which work holds while it stamps */
    if (!is_done(a.stream, a.id) || !is_done(b.stream, b.id))
        return cudaErrorNotReady; /* not an error: the last error stays */
    event_get(start, &a);
    event_get(end, &b);
    *ms = (float)(1e3 * (b.when - a.when));
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    capture_event_destroyed(event);
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_events.find((const void *)event);
    if (it == g_events.end())
        return fail(cudaErrorInvalidResourceHandle);
    g_events.erase(it);
    delete (char *)(void *)event;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return t_last_error; }

const char *cudaGetErrorString(cudaError_t error)
{
    /* the runtime's own wording */
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInsufficientDriver:
        return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorIllegalState:
        return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported:
        return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
        return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureMerge:
        return "operation would result in a merge of separate capture sequences";
    case cudaErrorStreamCaptureUnmatched:
        return "capture was not ended in the same stream as it began";
    case cudaErrorStreamCaptureUnjoined:
        return "capturing stream has unjoined work";
    case cudaErrorStreamCaptureIsolation:
        return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent:
        return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread:
        return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorUnknown: return "unknown error";
    }
    return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t error)
{
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureMerge: return "cudaErrorStreamCaptureMerge";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureUnjoined: return "cudaErrorStreamCaptureUnjoined";
    case cudaErrorStreamCaptureIsolation: return "cudaErrorStreamCaptureIsolation";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorUnknown: return "cudaErrorUnknown";
    }
    return "unrecognized error code";
}

size_t dpt_emu_live_allocations(size_t *bytes)
{
    std::lock_guard<std::mutex> g(g_lock);
    size_t n = 0, b = 0;
    for (const auto &kv : g_regions) /* the program's: not NCCL's or cuBLAS's own */
        if (kv.second.kind == MEM_DEVICE && strcmp(kv.second.label, "cudaMalloc") == 0) {
            n++;
            b += kv.second.size;
        }
    if (bytes)
        *bytes = b;
    return n;
}

} /* extern "C" */
