/* Host emulation of the toolkit's cuda_bf16.h, the subset dptrain uses: the __nv_bfloat16
 * storage type (the upper 16 bits of an IEEE float) and its conversions, so the CUDA backend's
 * bf16 kernels run under the emulation with the toolkit's rounding (round to nearest even). */
#ifndef DPT_CUDA_EMU_CUDA_BF16_H
#define DPT_CUDA_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

#include "cuda_runtime.h"

/* 2 bytes, as in the toolkit (cuda_bf16.hpp: __CUDA_ALIGN__(2), one unsigned short) */
typedef struct __nv_bfloat16 {
    unsigned short __x;
} __nv_bfloat16;
typedef __nv_bfloat16 nv_bfloat16;

/* float to bf16, round to nearest, ties to even; a NaN becomes the canonical NaN 0x7fff, as
 * the toolkit's __float2bfloat16 returns it. */
static inline __host__ __device__ __nv_bfloat16 __float2bfloat16_rn(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        r.__x = 0x7fffu;
        return r;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.__x = (unsigned short)(u >> 16);
    return r;
}

static inline __host__ __device__ __nv_bfloat16 __float2bfloat16(float f)
{
    return __float2bfloat16_rn(f);
}

/* exact: every bf16 value is a float */
static inline __host__ __device__ float __bfloat162float(__nv_bfloat16 h)
{
    uint32_t u = (uint32_t)h.__x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#endif
