/* The CUDA backend: the function table of src/backend.h on one GPU, with cuBLAS for the GEMMs
 * and the kernels of the cuda/ sources for everything else, all queued on one non-blocking stream.
 * A plain C header, so the trainer (C) can start it; the implementation is C++ (nvcc). */
#ifndef DPT_CUDA_BACKEND_H
#define DPT_CUDA_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
/* The project's headers are C: their functions (dpt_error_set) need C linkage. The system
 * headers they include come first, outside the extern "C" block (C++ <math.h> has templates). */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
extern "C" {
#endif

#include "backend.h"
#include "error.h"

/* Selects `device` (cudaSetDevice), creates the compute stream and the cuBLAS handle (GEMMs in
 * `precision`: FP32, TF32 tensor-op math, or bf16 operands with FP32 accumulation through
 * cublasGemmEx) and fills the table. A missing or out-of-range device is
 * returned as DPT_ERUNTIME with a message; failures of the CUDA calls themselves abort through
 * the check macros. Backend memory is device memory (be->host_memory = 0). */
int dpt_cuda_backend_init(dpt_backend *be, int device, dpt_precision precision, dpt_error *err);

/* Visible devices; 0 when there is no driver or no device (never fails). */
int dpt_cuda_device_count(void);

/* The visible devices in *count, and 0; or, when the CUDA runtime cannot count them for another
 * reason than "no device" (a driver older than the runtime: cudaErrorInsufficientDriver), -1
 * with a sentence in why naming the error and the driver and runtime versions. */
int dpt_cuda_probe(int *count, char *why, size_t n);

/* The PCI address "domain:bus:device.0" of visible device `device` in out, and 0; -1 when its
 * properties cannot be read. What tells two processes' devices apart: each process numbers the
 * GPUs it sees from 0 (CUDA_VISIBLE_DEVICES), so the index does not. */
int dpt_cuda_device_pci(int device, char *out, size_t n);

/* For `dptrain version`: CUDA driver, runtime and cuBLAS versions (NCCL's is the NCCL code's:
 * the backend does not use it), then one line per visible device (name, compute capability,
 * SMs, memory). Lines separated by '\n', no trailing newline. */
void dpt_cuda_describe(char *out, size_t n);

/* The counters behind dpt_device_counts (src/backend.h): this process's kernel launches, host
 * synchronizations and copies. The backend counts its own calls through the macros of
 * cuda/check.h; mpi/nccl_comm.c counts the host waits of the NCCL path here too. */
typedef enum { DPT_CUDA_COUNT_LAUNCH, DPT_CUDA_COUNT_SYNC, DPT_CUDA_COUNT_COPY } dpt_cuda_count_kind;
void dpt_cuda_count(dpt_cuda_count_kind kind, size_t bytes);
void dpt_cuda_counts_read(dpt_device_counts *out);

/* bench train's GPU-event timing (cuda/timing.cu), process-wide like the counters: arm creates
 * the events of `steps` timed steps (0 frees them, and marks do nothing); slot says which timed
 * step the next marks belong to (-1: an untimed step); mark records an event on `stream` (a
 * cudaStream_t) for the slot, or, while the stream is capturing, as an external record node of
 * the graph (every replay records it); read waits for the events and fills `out` with the steps'
 * mean, or with the last replay's when a graph held the marks. */
void dpt_cuda_timing_arm(int steps);
void dpt_cuda_timing_slot(int slot);
void dpt_cuda_mark(dpt_mark_kind kind, void *stream);
void dpt_cuda_timing_read(dpt_device_times *out);

/* train.cuda_graph: begin captures what is queued on the compute stream (and on the streams
 * that join it through events, NCCL's); end instantiates it, replacing the graph before;
 * launch replays it on the compute stream. A capture that meets a synchronization fails at
 * end (through the check macros). */
void dpt_cuda_graph_begin(dpt_backend *be);
void dpt_cuda_graph_end(dpt_backend *be);
void dpt_cuda_graph_launch(dpt_backend *be);
/* The update's values that change per step ({lr, bc1, bc2}: dpt_optim_scalars) and the step
 * (dropout's key; not written when step < 0), written on the device before a launch; a captured
 * update and captured dropout kernels read them there. */
void dpt_cuda_step_scalars(dpt_backend *be, float lr, float bc1, float bc2, int64_t step);

/* train.gemm_epilogue (mode 0 auto, 1 on, 2 off): probes cuBLASLt once for each epilogue the
 * model fuses (cuda/lt.cu) in this backend's precision and sets be->epilogues to those it
 * accepts (none for off); why gets the start-up table's words. 0, or -1 when mode is on and
 * cuBLASLt refuses some (be->epilogues then holds the accepted ones; why says which not). */
int dpt_cuda_epilogues(dpt_backend *be, int mode, char *why, size_t n);

/* The backend's compute stream (a cudaStream_t), so that the NCCL allreduce can be queued
 * behind the backward pass that produced the gradients. */
void *dpt_cuda_backend_stream(dpt_backend *be);

/* The gradients' bf16 conversions (comm.compress: bf16 on the NCCL path), queued on `stream`
 * (a cudaStream_t): dst(n) bf16 = src(n) float rounded to nearest even (device memory, 2 bytes
 * per element); and back, exactly. */
void dpt_cuda_to_bf16(void *dst, const float *src, size_t n, void *stream);
void dpt_cuda_from_bf16(float *dst, const void *src, size_t n, void *stream);

#ifdef __cplusplus
}
#endif

#endif
