/* NVTX ranges, so that Nsight Systems (`nsys profile`) shows a step's phases and each bucket's
 * allreduce by name beside the CUDA kernels. With the CUDA toolkit (the build defines DPT_NVTX)
 * NVTX v3, header-only (nvtx3/nvToolsExt.h: nothing to link, a no-op unless a tool is attached);
 * in the CPU-only and emulated builds inline functions that do nothing. */
#ifndef DPT_NVTX_H
#define DPT_NVTX_H

#include <stdint.h>

#ifdef DPT_NVTX
#include <stdio.h>

#include <nvtx3/nvToolsExt.h>

/* A nested range on this thread (the step's phases). */
static inline void dpt_nvtx_push(const char *name) { nvtxRangePushA(name); }
static inline void dpt_nvtx_pop(void) { nvtxRangePop(); }
/* A range that may overlap others and end elsewhere (a bucket's allreduce): "name k". */
static inline uint64_t dpt_nvtx_start_k(const char *name, int k)
{
    char s[64];
    snprintf(s, sizeof s, "%s %d", name, k);
    return nvtxRangeStartA(s);
}
static inline void dpt_nvtx_end(uint64_t id) { nvtxRangeEnd(id); }
#else
static inline void dpt_nvtx_push(const char *name) { (void)name; }
static inline void dpt_nvtx_pop(void) {}
static inline uint64_t dpt_nvtx_start_k(const char *name, int k)
{
    (void)name;
    (void)k;
    return 0;
}
static inline void dpt_nvtx_end(uint64_t id) { (void)id; }
#endif

#endif
