/* Which device a rank computes on, decided in one place for the trainer and `dptrain bench
 * allreduce`: run.device (--device) against the GPUs visible to the rank, one GPU per rank (its
 * only visible GPU, or the one at its index on the node); and starting the backend for it. */
#ifndef DPT_DEVICE_H
#define DPT_DEVICE_H

#include "backend.h"
#include "comm.h"
#include "comm_types.h"
#include "error.h"

/* Who asks: the refusals name the remedies each command offers. */
typedef enum { DPT_DEVICE_FOR_TRAINING, DPT_DEVICE_FOR_BENCH } dpt_device_caller;

typedef struct {
    dpt_device_kind kind; /* DPT_DEVICE_CPU or DPT_DEVICE_CUDA, never AUTO */
    int gpu;              /* CUDA: the GPU, 0 when the rank sees one, else its index among the
                           * job's ranks on its node */
    const char *note;     /* why this device, for the start-up table; NULL: nothing to say */
} dpt_device;

/* Chooses this rank's device for `want`: auto takes the GPU when one is usable. Returns DPT_OK,
 * or DPT_ERUNTIME with a message (no GPU visible, a driver older than the CUDA runtime, more
 * ranks on the node than GPUs, two ranks of the node on one physical GPU, a build without
 * CUDA). Collective over comm->local unless want is CPU (the physical-GPU comparison); the
 * caller agrees on the outcome across ranks. */
int dpt_device_choose(dpt_device_kind want, const dpt_comm *comm, dpt_device_caller who,
                      dpt_device *out, dpt_error *err);

/* Starts the backend of the chosen device: the CPU backend with `threads` BLAS threads, or the
 * CUDA backend on d->gpu, its GEMMs in `precision` (train.precision; TF32 only on the GPU). */
int dpt_device_start(const dpt_device *d, int threads, dpt_precision precision,
                     dpt_backend *be, dpt_error *err);

/* train.gemm_epilogue (a dpt_gemm_epilogue): which bias/ReLU epilogues the backend fuses into
 * its GEMMs (be->epilogues; the CPU backend none), decided once before the model is built; why
 * gets the start-up table's words. DPT_EUSAGE when `on` and cuBLASLt refuses some. */
int dpt_device_epilogues(dpt_backend *be, int mode, char *why, size_t n, dpt_error *err);

/* The backend's compute stream (a cudaStream_t) for the NCCL reducer; NULL for the CPU. */
void *dpt_device_stream(dpt_backend *be);

/* The step as a CUDA Graph (cuda_backend.h's dpt_cuda_graph_*); never called for the CPU
 * backend (the trainer enables graphs only on the CUDA backend). */
void dpt_device_graph_begin(dpt_backend *be);
void dpt_device_graph_end(dpt_backend *be);
void dpt_device_graph_launch(dpt_backend *be);
/* The update's per-step values {lr, bc1, bc2} (dpt_optim_scalars) and the step (dropout's
 * key), where a captured step reads them: set before each launch. */
void dpt_device_graph_scalars(dpt_backend *be, const float sc[3], int64_t step);

/* The device backend's counts of launches, host synchronizations and copies, and 0; -1 for the
 * CPU backend (nothing to count). */
int dpt_device_counts_read(const dpt_backend *be, dpt_device_counts *out);

/* bench train's GPU-event timing (cuda_backend.h's dpt_cuda_timing_*): arm for `steps` timed
 * steps (0: off), the timed step about to run (-1: untimed), a mark on the compute stream, and
 * the times read after the steps (0; -1 for the CPU backend, where the marks do nothing). */
void dpt_device_timing_arm(dpt_backend *be, int steps);
void dpt_device_timing_slot(dpt_backend *be, int slot);
void dpt_device_mark(dpt_backend *be, dpt_mark_kind kind);
int dpt_device_timing_read(dpt_backend *be, dpt_device_times *out);

#endif
