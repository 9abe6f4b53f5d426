/* Unit tests of `dptrain bench allreduce`'s pieces that need no second rank: the byte-count
 * parser (K/M/G suffixes), the flag checks and their messages, the alpha-beta least-squares fit
 * on synthetic times (exact, noisy, and at its bounds), and the data of the correctness check
 * (exact in float, and able to see a rank left out or counted twice). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "bench_allreduce.h"

Test(parse_bytes, plain_and_suffixed)
{
    struct {
        const char *s;
        size_t want;
    } ok[] = {{"0", 0},           {"8", 8},
              {"4096", 4096},     {"1K", 1024},
              {"64k", 65536},     {"1M", 1048576},
              {"64M", (size_t)64 << 20}, {"2G", (size_t)2 << 30},
              {"3g", (size_t)3 << 30}};
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        size_t got = 12345;
        cr_expect_eq(dpt_bench_parse_bytes(ok[k].s, &got), 0, "'%s' rejected", ok[k].s);
        cr_expect_eq(got, ok[k].want, "'%s' -> %zu, expected %zu", ok[k].s, got, ok[k].want);
    }
}

Test(parse_bytes, rejects)
{
    const char *bad[] = {"", "abc", "-1", "+8", " 8", "8 ", "1.5M", "8KB", "1T", "K", "0x10",
                         "99999999999999999999999", "18446744073709551615K"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        size_t got = 777;
        cr_expect_eq(dpt_bench_parse_bytes(bad[k], &got), -1, "'%s' accepted", bad[k]);
        cr_expect_eq(got, 777, "'%s' wrote the result although rejected", bad[k]);
    }
    size_t got;
    cr_expect_eq(dpt_bench_parse_bytes(NULL, &got), -1);
}

/* Runs the flag parser on a NULL-terminated list after "dptrain bench allreduce". */
static int parse(dpt_bench_allreduce_opts *o, dpt_error *e, const char **args)
{
    char *argv[32] = {"dptrain", "bench", "allreduce"};
    int argc = 3;
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    memset(e, 0, sizeof *e);
    return dpt_bench_allreduce_parse(argc, argv, 3, o, e);
}

Test(bench_allreduce_flags, defaults_are_nccl_tests)
{
    dpt_bench_allreduce_opts o;
    dpt_error e;
    const char *none[] = {NULL};
    cr_assert_eq(parse(&o, &e, none), DPT_OK, "%s", e.msg);
    cr_expect_eq(o.min_bytes, 8);
    cr_expect_eq(o.max_bytes, (size_t)64 << 20);
    cr_expect_eq(o.factor, 2);
    cr_expect_eq(o.iters, 20);
    cr_expect_eq(o.warmup, 5);
    cr_expect_eq(o.device, DPT_DEVICE_CPU);
    cr_expect_eq(o.baseline, 0);
    cr_expect_eq(o.algorithm, DPT_COMM_FLAT);
}

Test(bench_allreduce_flags, all_set)
{
    dpt_bench_allreduce_opts o;
    dpt_error e;
    const char *args[] = {"-b", "1K", "-e", "2M", "-f", "4", "-n", "3", "-w", "0", "--baseline",
                          "--device", "cpu", NULL};
    cr_assert_eq(parse(&o, &e, args), DPT_OK, "%s", e.msg);
    cr_expect_eq(o.min_bytes, 1024);
    cr_expect_eq(o.max_bytes, (size_t)2 << 20);
    cr_expect_eq(o.factor, 4);
    cr_expect_eq(o.iters, 3);
    cr_expect_eq(o.warmup, 0);
    cr_expect_eq(o.baseline, 1);
    /* equal ends: one size */
    const char *same[] = {"-b", "4K", "-e", "4096", NULL};
    cr_expect_eq(parse(&o, &e, same), DPT_OK, "%s", e.msg);
}

/* --algorithm takes comm.algorithm's names: the trainer's reducer runs each. */
Test(bench_allreduce_flags, algorithms)
{
    dpt_bench_allreduce_opts o;
    dpt_error e;
    const char *names[] = {"flat", "hierarchical", "ring"};
    dpt_comm_algorithm want[] = {DPT_COMM_FLAT, DPT_COMM_HIERARCHICAL, DPT_COMM_RING};
    for (int k = 0; k < 3; k++) {
        const char *args[] = {"--algorithm", names[k], NULL};
        cr_assert_eq(parse(&o, &e, args), DPT_OK, "%s: %s", names[k], e.msg);
        cr_expect_eq(o.algorithm, want[k], "%s", names[k]);
    }
}

/* Each mistake: DPT_EUSAGE, and the message names the flag (and the value where one was given). */
Test(bench_allreduce_flags, mistakes_name_the_flag)
{
    struct {
        const char *args[6];
        const char *says[2];
    } cases[] = {
        {{"-b", "abc"}, {"-b", "'abc'"}},
        {{"-b", "2"}, {"-b", "at least 4 bytes"}},
        {{"-e", "1K", "-b", "2K"}, {"-e 1K", "smaller than -b 2K"}},
        {{"-e", "5G"}, {"-e", "at most 4G"}},
        {{"-f", "1"}, {"-f", "'1'"}},
        {{"-f", "x"}, {"-f", ">= 2"}},
        {{"-n", "0"}, {"-n", "positive"}},
        {{"-w", "-1"}, {"-w", "non-negative"}},
        {{"--device", "gpu"}, {"--device", "'gpu'"}},
        {{"-x"}, {"unknown option", "'-x'"}},
        {{"extra"}, {"unexpected argument", "'extra'"}},
        {{"-n"}, {"-n", "needs a value"}},
        {{"--algorithm", "tree"}, {"--algorithm", "'tree'"}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dpt_bench_allreduce_opts o;
        dpt_error e;
        cr_expect_eq(parse(&o, &e, cases[k].args), DPT_EUSAGE, "case %zu (%s) accepted", k,
                     cases[k].args[0]);
        for (int j = 0; j < 2; j++)
            cr_expect(strstr(e.msg, cases[k].says[j]) != NULL, "case %zu: '%s' lacks '%s'", k,
                      e.msg, cases[k].says[j]);
    }
}

Test(alpha_beta, model_formula)
{
    /* R = 4: 6 steps of alpha, and 2*3/4 of the bytes over beta; 1 GB/s = 1e3 bytes/us */
    cr_expect_float_eq(dpt_bench_ring_time_us(4, 8e6, 2.0, 4.0), 6 * 2.0 + 1.5 * 8e6 / 4e3, 1e-9);
    cr_expect_float_eq(dpt_bench_ring_time_us(2, 1e6, 0.5, INFINITY), 1.0, 1e-12);
}

/* Times of the sweep -b 8 -e 64M -f 2 from the model itself: the fit returns its parameters. */
Test(alpha_beta, recovers_exact_parameters)
{
    int Rs[] = {2, 3, 4, 16};
    double alphas[] = {0.3, 2.5, 5.0, 20.0}, betas[] = {4.5, 2.0, 10.0, 100.0};
    for (int k = 0; k < 4; k++) {
        double bytes[24], t[24], a, b;
        for (int i = 0; i < 24; i++) {
            bytes[i] = 8.0 * pow(2, i);
            t[i] = dpt_bench_ring_time_us(Rs[k], bytes[i], alphas[k], betas[k]);
        }
        cr_assert_eq(dpt_bench_fit_alpha_beta(Rs[k], bytes, t, 24, &a, &b), 0);
        /* a well-conditioned 2-parameter QR fit: round-off only */
        cr_expect(fabs(a - alphas[k]) < 1e-9 * alphas[k], "R=%d alpha %.12g vs %.12g", Rs[k], a,
                  alphas[k]);
        cr_expect(fabs(b - betas[k]) < 1e-9 * betas[k], "R=%d beta %.12g vs %.12g", Rs[k], b,
                  betas[k]);
    }
}

/* Multiplicative noise of +-10% (a fixed pseudo-random sequence): both parameters within 10%,
 * since the relative fit averages the noise over 24 sizes instead of following one of them. */
Test(alpha_beta, noisy_times)
{
    double bytes[24], t[24], a, b;
    unsigned s = 12345;
    for (int i = 0; i < 24; i++) {
        s = s * 1103515245u + 12345u;
        double u = (double)((s >> 8) & 0xffff) / 65535.0; /* [0, 1] */
        bytes[i] = 8.0 * pow(2, i);
        t[i] = dpt_bench_ring_time_us(2, bytes[i], 1.0, 5.0) * (0.9 + 0.2 * u);
    }
    cr_assert_eq(dpt_bench_fit_alpha_beta(2, bytes, t, 24, &a, &b), 0);
    cr_expect(fabs(a - 1.0) < 0.1, "alpha %.4g, expected 1 +- 10%%", a);
    cr_expect(fabs(b - 5.0) < 0.5, "beta %.4g, expected 5 +- 10%%", b);
}

Test(alpha_beta, bounds)
{
    double bytes[5] = {8, 64, 512, 4096, 32768}, t[5], a, b;
    /* times that do not grow with size: latency only, beta infinite */
    for (int i = 0; i < 5; i++)
        t[i] = 4.0 + (i % 2 ? 0.1 : -0.1) - 0.01 * i;
    cr_assert_eq(dpt_bench_fit_alpha_beta(3, bytes, t, 5, &a, &b), 0);
    cr_expect(isinf(b) && b > 0, "beta %g, expected +inf", b);
    cr_expect(a > 0 && fabs(4 * a - 4.0) < 0.2, "alpha %g, expected about 1 (4 steps of 1 us)", a);
    /* pure bandwidth whose free fit would want a negative alpha: alpha held at 0 */
    for (int i = 0; i < 5; i++)
        t[i] = bytes[i] / 1e3 * (i == 0 ? 1.5 : 1.0); /* R = 2, beta 1 GB/s; the smallest slow */
    cr_assert_eq(dpt_bench_fit_alpha_beta(2, bytes, t, 5, &a, &b), 0);
    cr_expect(a >= 0, "alpha %g < 0", a);
    cr_expect(b > 0 && isfinite(b), "beta %g", b);
    /* nothing to fit */
    cr_expect_eq(dpt_bench_fit_alpha_beta(1, bytes, t, 5, &a, &b), -1, "one rank fitted");
    cr_expect_eq(dpt_bench_fit_alpha_beta(2, bytes, t, 0, &a, &b), -1, "no points fitted");
}

/* The check's data: summed in any order (forward, backward, pairwise) the float sum equals the
 * expected value exactly, and leaving a rank out or counting one twice changes all but the
 * elements where that rank's value is 0 (a(i) = -b(r): 1 residue of 23), so #wrong cannot stay 0
 * under those faults. */
Test(check_data, exact_and_sensitive)
{
    int Rs[] = {1, 2, 3, 7, 64, 1000};
    for (int k = 0; k < 6; k++) {
        int R = Rs[k], n = 0, seen_left_out = 0, seen_twice = 0;
        for (size_t i = 0; i < 2300; i += 1, n++) {
            float fwd = 0, bwd = 0, pair = 0, left_out = 0;
            for (int r = 0; r < R; r++) {
                fwd += dpt_bench_allreduce_fill_value(i, r);
                bwd += dpt_bench_allreduce_fill_value(i, R - 1 - r);
                if (r != R / 2)
                    left_out += dpt_bench_allreduce_fill_value(i, r);
            }
            for (int r = 0; r + 1 < R; r += 2)
                pair += dpt_bench_allreduce_fill_value(i, r) +
                        dpt_bench_allreduce_fill_value(i, r + 1);
            if (R % 2)
                pair += dpt_bench_allreduce_fill_value(i, R - 1);
            float want = dpt_bench_allreduce_expected(i, R);
            cr_assert_eq(fwd, want, "R=%d i=%zu: forward %g vs %g", R, i, fwd, want);
            cr_assert_eq(bwd, want, "R=%d i=%zu: backward %g vs %g", R, i, bwd, want);
            cr_assert_eq(pair, want, "R=%d i=%zu: pairwise %g vs %g", R, i, pair, want);
            seen_left_out += left_out != want;
            seen_twice += fwd + dpt_bench_allreduce_fill_value(i, 0) != want;
        }
        /* 22 of every 23 consecutive elements */
        cr_expect_eq(seen_left_out, n / 23 * 22, "R=%d: a rank left out seen in %d of %d", R,
                     seen_left_out, n);
        cr_expect_eq(seen_twice, n / 23 * 22, "R=%d: rank 0 counted twice seen in %d of %d", R,
                     seen_twice, n);
    }
}
