/* Tests of the bfloat16 conversion and sum of mpi/buckets.h (the gradient compression of
 * comm.compress: bf16): round to nearest with ties to even as Intel's BFLOAT16 definition and
 * PyTorch's c10::BFloat16, NaN and infinity kept, and the sum rounded once from float. The
 * bucketed allreduce itself runs under mpirun in tests/integration/buckets.sh. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "buckets.h"

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

Test(bf16, exact_values_pass_unchanged)
{
    const float v[] = {0.0f, -0.0f, 1.0f, -2.0f, 0.5f, 1.0078125f /* 1 + 2^-7 */, 0x1p-130f};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        if (u & 0xffffu)
            continue; /* not representable: covered below */
        cr_assert_eq(dpt_bf16_to_float(dpt_bf16_from_float(v[i])), v[i], "value %g", v[i]);
    }
    cr_assert_eq(dpt_bf16_from_float(1.0f), 0x3f80);
    cr_assert_eq(dpt_bf16_from_float(-2.0f), 0xc000);
}

Test(bf16, rounds_to_nearest_ties_to_even)
{
    /* 1.0 = 0x3f800000; one bf16 step at 1.0 is 2^-7 (0x00010000 in float bits) */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0x3f807fffu)), 0x3f80);  /* below half: down */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0x3f808000u)), 0x3f80);  /* tie, even below */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0x3f808001u)), 0x3f81);  /* above half: up */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0x3f818000u)), 0x3f82);  /* tie, odd below: up */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0xbf808001u)), 0xbf81);  /* sign symmetric */
    /* the largest float rounds up to infinity, as IEEE rounding to a narrower format does */
    cr_assert_eq(dpt_bf16_from_float(from_bits(0x7f7fffffu)), 0x7f80);
    /* a truncation (no rounding) would give 0x3f80 for 1 + 2^-7 * 0.75 */
    cr_assert_eq(dpt_bf16_from_float(1.0f + 0.75f / 128.0f), 0x3f81);
}

Test(bf16, nan_and_infinity)
{
    cr_assert(isnan(dpt_bf16_to_float(dpt_bf16_from_float(NAN))));
    /* a NaN whose payload sits only in the low 16 bits must not round to infinity */
    cr_assert(isnan(dpt_bf16_to_float(dpt_bf16_from_float(from_bits(0x7f800001u)))));
    cr_assert(isnan(dpt_bf16_to_float(dpt_bf16_from_float(from_bits(0xff800001u)))));
    cr_assert_eq(dpt_bf16_to_float(dpt_bf16_from_float(INFINITY)), INFINITY);
    cr_assert_eq(dpt_bf16_to_float(dpt_bf16_from_float(-INFINITY)), -INFINITY);
}

Test(bf16, sum_adds_in_float_and_rounds_once)
{
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1. 256 + 1 rounds to 256 (8 bits). */
    uint16_t in[3] = {dpt_bf16_from_float(1.0f), dpt_bf16_from_float(256.0f),
                      dpt_bf16_from_float(0.375f)};
    uint16_t inout[3] = {dpt_bf16_from_float(1.0f / 256.0f), dpt_bf16_from_float(1.0f),
                         dpt_bf16_from_float(-0.125f)};
    dpt_bf16_sum(in, inout, 3);
    cr_assert_eq(dpt_bf16_to_float(inout[0]), 1.0f);
    cr_assert_eq(dpt_bf16_to_float(inout[1]), 256.0f);
    cr_assert_eq(dpt_bf16_to_float(inout[2]), 0.25f);
}
