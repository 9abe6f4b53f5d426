/* The kernel side of the host emulation (C++ only; forced ahead of the cuda/ sources by the
 * emulated build):
 * the built-in variables and DPT_EMU_LAUNCH, which checks the launch configuration as CUDA does
 * and then queues on the stream a run of the kernel for every thread of every block. A block's
 * threads run as fibers (block_emu.cpp), each to its next __syncthreads(); DPT_SHARED arrays
 * (cuda/launch.h) are shared by the block and check every access for races and bounds.
 * So a grid one block short really leaves elements unwritten, and ASan sees every access.
 * DPT_EMU_SHUFFLE=SEED (a number, 0 = off) visits blocks, and threads within a block and within
 * every barrier interval, in orders the seed scrambles, to catch kernels that depend on an
 * order CUDA does not promise. */
#ifndef DPT_CUDA_EMU_KERNEL_H
#define DPT_CUDA_EMU_KERNEL_H

#ifndef __cplusplus
#error "cuda_emu_kernel.h is C++: compile the .cu sources with g++ -x c++ -DDPT_CUDA_EMU"
#endif

#include <stdint.h>

#include <functional>

#include "cuda_runtime.h"

/* Raw __shared__ fails to compile: its accesses would escape the race detector. DPT_SHARED
 * (cuda/launch.h) declares shared memory in both builds. */
#define __shared__ dpt_emu_raw_shared_escapes_the_race_detector_use_DPT_SHARED_of_cuda_launch_h
#define __syncthreads() ::dpt_emu::syncthreads(__FILE__, __LINE__)

/* The built-in variables, per host thread (the emulation runs a launch on the calling thread). */
inline thread_local uint3 blockIdx;
inline thread_local uint3 threadIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

/* One host thread runs one CUDA thread at a time (fibers switch only at barriers), so these are
 * atomic; they return the old
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
/* 0 unless DPT_EMU_SHUFFLE=SEED (not 0); then a different seed for every launch, the same
 * sequence every run of a given SEED. */
unsigned long long launch_shuffle_seed();
/* Queues work on the stream (stream_emu.cpp); returns its id there. */
uint64_t enqueue(cudaStream_t s, std::function<void()> work);

/* One launch as block_emu.cpp runs it: thread(arg) runs the kernel once for the current
 * blockIdx and threadIdx. */
struct grid_launch {
    const char *kernel;
    dim3 grid, block;
    unsigned long long seed;
    void (*thread)(void *);
    void *arg;
};
void run_grid(const grid_launch &g);
/* __syncthreads(): the calling thread waits until every thread of its block reached the same
 * barrier; threads that exit or wait elsewhere meanwhile end the process with a report. */
void syncthreads(const char *file, int line);

/* Shared memory: the block's array for a DPT_SHARED declaration (made, full of 0xff bytes, when
 * the block's first thread reaches it), and one access to element i, checked for bounds and
 * for a race with another thread in this barrier interval (reported, and the process ends). */
struct shared_slot;
shared_slot *shared_attach(const char *name, const char *file, int line, size_t elem_bytes,
                           size_t elems);
void *shared_access(shared_slot *s, size_t i, size_t elem_bytes, bool write);

template <class T, size_t N> class shared_array {
  public:
    shared_array(const char *name, const char *file, int line)
        : s_(shared_attach(name, file, line, sizeof(T), N))
    {
    }
    /* s[i] as a value reads, s[i] = v writes, s[i] += v reads then writes */
    class ref {
      public:
        ref(shared_slot *s, size_t i) : s_(s), i_(i) {}
        operator T() const { return *(const T *)shared_access(s_, i_, sizeof(T), false); }
        ref &operator=(T v)
        {
            *(T *)shared_access(s_, i_, sizeof(T), true) = v;
            return *this;
        }
        ref &operator=(const ref &o) { return *this = (T)o; }
        ref &operator+=(T v) { return *this = (T)*this + v; }
        ref &operator-=(T v) { return *this = (T)*this - v; }
        ref &operator*=(T v) { return *this = (T)*this * v; }

      private:
        shared_slot *s_;
        size_t i_;
    };
    ref operator[](size_t i) const { return ref(s_, i); }

  private:
    shared_slot *s_;
};

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
        const char *name = name_;
        enqueue(stream_, [=]() { run(kernel, grid, block, seed, name, args...); });
    }

  private:
    static void run(void (*kernel)(P...), dim3 grid, dim3 block, unsigned long long seed,
                    const char *name, typename same<P>::type... args)
    {
        /* parameters are copies: each thread gets fresh ones */
        auto thread = [&]() { kernel(args...); };
        grid_launch g{name, grid, block, seed,
                      [](void *p) { (*static_cast<decltype(thread) *>(p))(); }, &thread};
        run_grid(g);
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

/* The shared memory of cuda/launch.h: a handle on the block's array, per thread. */
#define DPT_SHARED(type, name, n) \
    ::dpt_emu::shared_array<type, (n)> name(#name, __FILE__, __LINE__)

/* The launch of cuda/launch.h, defined here first so that header keeps it. */
#define DPT_LAUNCH(kernel, grid, block, stream, ...) \
    DPT_EMU_LAUNCH(kernel, grid, block, stream, __VA_ARGS__)

#endif
