/* Private to tests/cuda_emu: what the cuBLAS and NCCL emulations ask of the runtime emulation
 * (the allocation table, the stream table, the current device) and the one way every part
 * reports a misuse on stderr. */
#ifndef DPT_CUDA_EMU_INTERNAL_H
#define DPT_CUDA_EMU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <functional>

#include "cuda_runtime.h"

namespace dpt_emu {

enum mem_kind { MEM_NONE = 0, MEM_DEVICE = 1, MEM_PINNED = 2 };

/* One emulated allocation: [base, base + size). */
struct region {
    const char *base;
    size_t size;
    mem_kind kind;
    int device;        /* physical (physical_device) */
    const char *label; /* device memory: "cudaMalloc", or the library's buffer it is */
};

/* The allocation holding p (any kind), or false. */
bool find_region(const void *p, region *out);
/* The same without waiting for the table's lock (false when another thread holds it): for the
 * SIGSEGV handler. */
bool try_find_region(const void *p, region *out);
/* True when [p, p + bytes) lies inside one allocation whose kind is in kinds (a mask of
 * mem_kind); otherwise prints "who: what [p, p+bytes) ..." with the nearest allocation and
 * returns false. bytes == 0 is always inside. */
bool check_range(const char *who, const char *what, const void *p, size_t bytes, int kinds);

/* Device memory as a library allocates it inside (NCCL's buffers, cuBLAS's workspace): counted
 * against the current device's capacity like cudaMalloc, named label in reports, not subject to
 * DPT_EMU_ALLOC_FAIL_AFTER (which injects failures into the program's own cudaMalloc calls). */
cudaError_t library_alloc(void **ptr, size_t size, const char *label);
cudaError_t library_free(void *ptr);

/* The device arenas (memory_emu.cpp). Work runs between work_begin and work_end; inside, the
 * first device_memory_open makes every arena read-write, and the outermost work_end makes them
 * inaccessible again, so consecutive and nested work costs one mprotect each way. */
void work_begin();
void device_memory_open();
void work_end();
struct work_scope {
    work_scope() { work_begin(); }
    ~work_scope() { work_end(); }
    work_scope(const work_scope &) = delete;
    work_scope &operator=(const work_scope &) = delete;
};
/* size bytes from physical device phys's arena (reserved for a capacity of `capacity` bytes on
 * first use), NULL when it has no room; arena_free takes the same size back. */
void *arena_alloc(int phys, size_t size, size_t capacity);
void arena_free(int phys, void *ptr, size_t size);

/* Streams: 0 (the default stream) or created and not yet destroyed. */
bool stream_valid(cudaStream_t s);

/* The calling thread's current device, and how many this process sees (DPT_EMU_DEVICES, then
 * CUDA_VISIBLE_DEVICES; 0 with an insufficient driver). */
int current_device();
int device_count();
/* The host's physical device behind this process's device `device`, -1 when not visible: what
 * two processes compare to tell whether they share a GPU. */
int physical_device(int device);
/* The driver's CUDA version (DPT_EMU_DRIVER_VERSION; default the runtime's). */
int driver_version();

/* The stream queues (stream_emu.cpp). Work is identified by the id enqueue returns, increasing
 * along each stream; stream 0 is the legacy default stream. With DPT_EMU_ASYNC unset or 0 every
 * enqueue runs its stream to the end before returning. */
unsigned long long async_seed();
void stream_created(cudaStream_t s, bool blocking);
void stream_destroyed(cudaStream_t s);
uint64_t enqueue(cudaStream_t s, std::function<void()> work);
/* s waits until `on` ran through `through` (an event wait); nothing when it already has */
void enqueue_wait(cudaStream_t s, cudaStream_t on, uint64_t through);
/* work that does not complete while hung() is true (the injected hung collective, until its
 * communicator is aborted) */
void enqueue_hang(cudaStream_t s, std::function<bool()> hung);
/* Runs what s needs to reach id (ends the process, with a message, at a hang). */
bool run_through(cudaStream_t s, uint64_t id);
/* One unit of that work, for queries; true when s has reached id. */
bool step_toward(cudaStream_t s, uint64_t id);
bool is_done(cudaStream_t s, uint64_t id);
bool synchronize_stream(cudaStream_t s);
bool synchronize_all();

/* Stream capture (graph_emu.cpp). capture_take: when stream is capturing, work is recorded
 * (moved from) instead of queued, true. The refusals return true (and invalidate the capture)
 * when the call must fail: a synchronization of a capturing stream, a potentially unsafe call
 * under a capture whose mode prohibits it, a pageable copy on a capturing stream, a wait or query
 * on an event recorded in a capture (capture_event_captured). capture_record_event: true when the
 * record was captured. capture_wait_event: true when the capture decided the wait (*err). */
bool capture_take(cudaStream_t stream, std::function<void()> &work);
bool capture_refuse_sync(cudaStream_t stream, const char *who);
bool capture_refuse_unsafe(const char *who);
bool capture_refuse_pageable(cudaStream_t stream, bool pageable, const char *who);
bool capture_record_event(cudaEvent_t event, cudaStream_t stream);
bool capture_wait_event(cudaStream_t stream, cudaEvent_t event, cudaError_t *err);
bool capture_event_captured(cudaEvent_t event, const char *who);
/* An external event record node (cudaEventRecordExternal): false when stream is not capturing.
 * When a launch queues the node, graph_emu calls event_launched (the event is pending until the
 * stream runs the node, whose work stamps the time). */
bool capture_take_record(cudaStream_t stream, cudaEvent_t event, std::function<void()> work);
void event_launched(const void *event, cudaStream_t stream, uint64_t id);
void capture_event_destroyed(cudaEvent_t event);

/* The emulated cuBLAS's products (cublas_emu.cpp), for cuBLASLt's emulation: column-major
 * C(m,n) = al op(A) op(B) + be C, FP32 operands summed in double (TF32-rounded when tf32), bf16
 * ones in float; A and B are read only when reads_ab. */
void blas_sgemm(bool ta, bool tb, int m, int n, int k, double al, const float *A, int lda,
                const float *B, int ldb, double be, float *C, int ldc, bool reads_ab, bool tf32);
void blas_gemm_bf16(bool ta, bool tb, int m, int n, int k, float al, const void *A, int lda,
                    const void *B, int ldb, float be, float *C, int ldc, bool reads_ab);

/* Prints "[cuda_emu rank R] who: message" on stderr (rank when MPI is running). */
void report(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

} // namespace dpt_emu

#endif
