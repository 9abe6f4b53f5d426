/* One way to launch a kernel and declare shared memory, so the same CUDA sources run on a GPU
 * (nvcc) and in CI on the host. Kernels written for both: 1-D or 2-D grids; blockIdx,
 * threadIdx, blockDim, gridDim; atomicAdd on float and double; __syncthreads(), reached by
 * every thread of the block (none may return early past a barrier the others wait at); shared
 * memory only through DPT_SHARED, indexed as s[i] (no pointers into it), so the emulation sees
 * every access. The build selects the definitions: nvcc gets the ones below; the emulated build
 * (tests/cuda_emu/CMakeLists.txt) forces its own kernel header in ahead of every source, which
 * runs each block's threads as fibers and checks every shared access for races and bounds. */
#ifndef DPT_CUDA_LAUNCH_H
#define DPT_CUDA_LAUNCH_H

#ifndef DPT_LAUNCH
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

/* A block's shared array of n elements of type: DPT_SHARED(float, s, 256); then s[i]. */
#ifndef DPT_SHARED
#define DPT_SHARED(type, name, n) __shared__ type name[(n)]
#endif

#endif
