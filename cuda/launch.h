/* One way to launch a kernel, so the same CUDA sources run on a GPU (nvcc) and in CI on the
 * host. Kernels written for both: 1-D or 2-D grids; blockIdx, threadIdx, blockDim, gridDim;
 * atomicAdd on float and double; no __syncthreads and no __shared__ (the host emulation runs
 * one thread at a time, to completion). The build selects the launch: nvcc gets the <<<>>> one
 * below; the emulated build (tests/cuda_emu/CMakeLists.txt) forces its own kernel header in
 * ahead of every source, which defines DPT_LAUNCH as loops over every block and thread. */
#ifndef DPT_CUDA_LAUNCH_H
#define DPT_CUDA_LAUNCH_H

#ifndef DPT_LAUNCH
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

#endif
