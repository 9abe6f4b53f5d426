/* One way to launch a kernel, so the same CUDA sources run on a GPU (nvcc) and in CI on the
 * host through the emulation in tests/cuda_emu (DPT_CUDA_EMU), which turns a launch into loops
 * over every block and thread. Kernels written for both: 1-D or 2-D grids; blockIdx, threadIdx,
 * blockDim, gridDim; atomicAdd on float and double; no __syncthreads and no __shared__ (the
 * emulation runs one thread at a time, to completion). */
#ifndef DPT_CUDA_LAUNCH_H
#define DPT_CUDA_LAUNCH_H

#ifdef DPT_CUDA_EMU
#include "cuda_emu_kernel.h" /* tests/cuda_emu: DPT_EMU_LAUNCH and the built-in variables */
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    DPT_EMU_LAUNCH(kernel, grid, block, stream, __VA_ARGS__)
#else
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#endif
