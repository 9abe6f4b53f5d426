/* Counter-based random numbers: every draw is a pure function of (seed, stream, counter), so any
 * rank, any backend and any resumed run draws the same value for the same sample, unit and step
 * without carrying generator state (the idea of Random123's counter-based generators; the mixing
 * function is SplitMix64's finalizer, Steele, Lea & Flood 2014). */
#ifndef DPT_RNG_H
#define DPT_RNG_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DPT_HD __host__ __device__
#else
#define DPT_HD
#endif

/* Streams keep independent uses apart. */
enum {
    DPT_RNG_INIT = 1,      /* weight initialization: counter = layer << 40 | index */
    DPT_RNG_DROPOUT = 2,   /* dropout: counter from (step, global sample, unit) */
    DPT_RNG_SHUFFLE = 3,   /* epoch permutations */
    DPT_RNG_SPLIT = 4,     /* train/validation split */
    DPT_RNG_SYNTH_X = 5,   /* synthetic inputs */
    DPT_RNG_SYNTH_TEACHER = 6,
    DPT_RNG_SEARCH = 7
};

static inline DPT_HD uint64_t dpt_rng_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline DPT_HD uint64_t dpt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return dpt_rng_mix(dpt_rng_mix(seed ^ (stream * 0xd1b54a32d192ed03ULL)) ^ counter);
}

/* Uniform in [0, 1) with 24 bits, exact in float. */
static inline DPT_HD float dpt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (float)(dpt_rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal by Box-Muller from two 32-bit halves of one draw. */
static inline DPT_HD float dpt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t r = dpt_rng_u64(seed, stream, counter);
    double u1 = ((double)(r >> 32) + 1.0) * (1.0 / 4294967297.0); /* (0, 1]: log stays finite */
    double u2 = (double)(r & 0xffffffffULL) * (1.0 / 4294967296.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Uniform integer in [0, n) (n > 0); the modulo bias is below 2^-32 for n < 2^32. */
static inline DPT_HD uint64_t dpt_rng_below(uint64_t seed, uint64_t stream, uint64_t counter,
                                            uint64_t n)
{
    return dpt_rng_u64(seed, stream, counter) % n;
}

#endif
