/* The kernel side of the host emulation (C++ only; forced ahead of the cuda/ sources by the
 * emulated build):
 * the built-in variables and DPT_EMU_LAUNCH, which checks the launch configuration as CUDA does
 * and then queues on the stream a run of the kernel once for every thread of every block, one at
 * a time, to completion.
 * So a grid one block short really leaves elements unwritten, and ASan sees every access.
 * DPT_EMU_SHUFFLE=1 visits blocks, and threads within a block, in a scrambled order, to catch
 * kernels that depend on an order CUDA does not promise. */
#ifndef DPT_CUDA_EMU_KERNEL_H
#define DPT_CUDA_EMU_KERNEL_H

#ifndef __cplusplus
#error "cuda_emu_kernel.h is C++: compile the .cu sources with g++ -x c++ -DDPT_CUDA_EMU"
#endif

#include <stdint.h>

#include <functional>

#include "cuda_runtime.h"

/* What the launch contract (cuda/launch.h) rules out fails to compile, with a name that says why.
 * One thread runs to completion before the next starts, so a barrier would deadlock and shared
 * memory would not be shared. */
#define __syncthreads() dpt_emu_unsupported_syncthreads_see_cuda_launch_h()
#define __shared__ dpt_emu_unsupported_shared_memory_see_cuda_launch_h

/* The built-in variables, per host thread (the emulation runs a launch on the calling thread). */
inline thread_local uint3 blockIdx;
inline thread_local uint3 threadIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

/* One host thread runs one CUDA thread at a time, so these are atomic; they return the old
 * value, as CUDA's do. */
static inline float atomicAdd(float *address, float val)
{
    float old = *address;
    *address = old + val;
    return old;
}
static inline double atomicAdd(double *address, double val)
{
    double old = *address;
    *address = old + val;
    return old;
}
static inline int atomicAdd(int *address, int val)
{
    int old = *address;
    *address = (int)((unsigned)old + (unsigned)val); /* wraps, as on the GPU */
    return old;
}
static inline unsigned int atomicAdd(unsigned int *address, unsigned int val)
{
    unsigned int old = *address;
    *address = old + val;
    return old;
}
static inline unsigned long long atomicAdd(unsigned long long *address, unsigned long long val)
{
    unsigned long long old = *address;
    *address = old + val;
    return old;
}

namespace dpt_emu {

/* Checks grid and block against the device limits and the stream handle; on failure sets the
 * thread's last error (cudaErrorInvalidConfiguration or cudaErrorInvalidResourceHandle), prints
 * why when DPT_EMU_VERBOSE is set, and returns false: the kernel does not run. */
bool launch_check(dim3 grid, dim3 block, cudaStream_t stream, const char *kernel,
                  const char *file, int line);
/* 0 unless DPT_EMU_SHUFFLE=1; then a different seed for every launch. */
unsigned long long launch_shuffle_seed();
/* Queues work on the stream (stream_emu.cpp); returns its id there. */
uint64_t enqueue(cudaStream_t s, std::function<void()> work);

__extension__ typedef unsigned __int128 u128; /* i * mul below may pass 2^64 */

/* A bijection of [0, n): i -> (i * mul + add) mod n with mul coprime to n, or the identity. */
class scramble {
  public:
    scramble(unsigned long long n, unsigned long long seed) : n_(n), mul_(1), add_(0)
    {
        if (seed == 0 || n < 2)
            return;
        add_ = seed % n;
        unsigned long long m = (seed >> 17) % n | 1u;
        while (gcd(m, n) != 1)
            m += 2;
        mul_ = m % n;
    }
    unsigned long long operator()(unsigned long long i) const
    {
        return (unsigned long long)(((u128)i * mul_ + add_) % n_);
    }

  private:
    static unsigned long long gcd(unsigned long long a, unsigned long long b)
    {
        while (b) {
            unsigned long long t = a % b;
            a = b;
            b = t;
        }
        return a;
    }
    unsigned long long n_, mul_, add_;
};

template <class T> struct same {
    typedef T type;
};

/* Holds the kernel and its configuration; the call operator takes the kernel's own parameter
 * types, so the arguments convert exactly as in kernel<<<...>>>(args) and are evaluated once. */
template <class... P> class launcher {
  public:
    launcher(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream, const char *name,
             const char *file, int line)
        : kernel_(kernel), grid_(grid), block_(block), stream_(stream), name_(name), file_(file),
          line_(line)
    {
    }

    /* Checks the launch now (errors belong to the launching call) and queues the grid on the
     * stream with copies of the arguments, as CUDA takes them at launch. */
    void operator()(typename same<P>::type... args) const
    {
        if (!launch_check(grid_, block_, stream_, name_, file_, line_))
            return;
        const unsigned long long seed = launch_shuffle_seed();
        void (*kernel)(P...) = kernel_;
        const dim3 grid = grid_, block = block_;
        enqueue(stream_, [=]() { run(kernel, grid, block, seed, args...); });
    }

  private:
    static void run(void (*kernel_)(P...), dim3 grid_, dim3 block_, unsigned long long seed,
                    typename same<P>::type... args)
    {
        const unsigned long long gx = grid_.x, gy = grid_.y;
        const unsigned long long bx = block_.x, by = block_.y;
        const unsigned long long blocks = gx * gy * grid_.z, threads = bx * by * block_.z;
        const scramble block_order(blocks, seed);
        const scramble thread_order(threads, seed * 0x9E3779B97F4A7C15ull);
        gridDim = grid_;
        blockDim = block_;
        for (unsigned long long bi = 0; bi < blocks; bi++) {
            unsigned long long b = block_order(bi);
            blockIdx = uint3{(unsigned)(b % gx), (unsigned)(b / gx % gy),
                             (unsigned)(b / (gx * gy))};
            for (unsigned long long ti = 0; ti < threads; ti++) {
                unsigned long long t = thread_order(ti);
                threadIdx = uint3{(unsigned)(t % bx), (unsigned)(t / bx % by),
                                  (unsigned)(t / (bx * by))};
                kernel_(args...); /* parameters are copies: each thread gets fresh ones */
            }
        }
    }

    void (*kernel_)(P...);
    dim3 grid_, block_;
    cudaStream_t stream_;
    const char *name_, *file_;
    int line_;
};

template <class... P>
launcher<P...> launcher_for(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream,
                            const char *name, const char *file, int line)
{
    return launcher<P...>(kernel, grid, block, stream, name, file, line);
}

} // namespace dpt_emu

/* kernel<<<grid, block, 0, stream>>>(args...) on the host. grid and block are dim3 or
 * integers, as in CUDA. */
#define DPT_EMU_LAUNCH(kernel, grid, block, stream, ...)                                       \
    ::dpt_emu::launcher_for(kernel, ::dim3(grid), ::dim3(block), (stream), #kernel, __FILE__,  \
                            __LINE__)(__VA_ARGS__)

/* The launch of cuda/launch.h, defined here first so that header keeps it. */
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    DPT_EMU_LAUNCH(kernel, grid, block, stream, __VA_ARGS__)

#endif
