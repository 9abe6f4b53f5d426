/* Backend parity (src/selftest.c): the CUDA backend against the CPU reference, op by op and over
 * 100 steps of the real training step, when the build has a CUDA backend (a real GPU, or the
 * host emulation of tests/cuda_emu); and in every build, proof that the checks can fail: the CPU
 * backend against copies of itself with one op broken the way GPU code breaks (a leading
 * dimension ignored, a launch grid one block short, a dropout mask or a Nesterov term left out);
 * the training step on the CPU against itself; the op list's completeness check; and the
 * coverage report, which must name no op today and must name an op whose check is taken away. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "comm.h"
#include "selftest.h"
#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif

/* The real CPU ops the sabotaged copies call into. */
static dpt_backend cpu_ref;

static void fixture_cpu(dpt_backend *be)
{
    cr_assert_eq(dpt_cpu_backend_init(be, 1), 0);
    cpu_ref = *be;
}

/* ---- sabotaged copies of the CPU backend ---- */

/* Ignores the leading dimension of A: uses the packed width (what a kernel that assumes
 * contiguous rows does). Reads stay inside A, which is larger, so only the values are wrong. */
static void gemm_packed_lda(dpt_backend *be, int ta, int tb, int m, int n, int k, float alpha,
                            const float *a, int lda, const float *b, int ldb, float beta, float *c,
                            int ldc)
{
    (void)lda;
    cpu_ref.gemm(be, ta, tb, m, n, k, alpha, a, ta ? m : k, b, ldb, beta, c, ldc);
}

/* Leaves the last row undone: a launch grid one block too small. */
static void bias_act_short_grid(dpt_backend *be, float *z, float *a, const float *b, int rows,
                                int cols, dpt_activation act, const dpt_dropout *drop, int layer)
{
    cpu_ref.bias_act_forward(be, z, a, b, rows > 1 ? rows - 1 : rows, cols, act, drop, layer);
}

/* Forgets the dropout mask on the way back. */
static void act_backward_no_mask(dpt_backend *be, float *d, const float *z, const float *a,
                                 int rows, int cols, dpt_activation act, const dpt_dropout *drop,
                                 int layer)
{
    (void)drop;
    cpu_ref.act_backward(be, d, z, a, rows, cols, act, NULL, layer);
}

/* Plain momentum where Nesterov was asked for. */
static void sgd_no_nesterov(dpt_backend *be, float *p, const float *g, float *m, size_t n,
                            float lr, float momentum, int nesterov, float wd)
{
    (void)nesterov;
    cpu_ref.sgd_step(be, p, g, m, n, lr, momentum, 0, wd);
}

/* The GEMM alone, every epilogue forgotten (a fused call whose epilogue attribute was never
 * set): no bias, no ReLU or mask, no bias gradient. */
static void epilogue_forgotten(dpt_backend *be, int epi, int ta, int tb, int m, int n, int k,
                               const float *a, int lda, const float *b, int ldb, float *c, int ldc,
                               float *vec, void *mask)
{
    (void)epi, (void)vec, (void)mask;
    cpu_ref.gemm(be, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

/* Runs the parity of the CPU backend against a sabotaged copy; returns the failed checks. */
static int parity_against(dpt_backend *sabotaged)
{
    printf("---- cpu vs sabotaged cpu: NOT OK lines expected ----\n");
    int failed = dpt_selftest_backends(&cpu_ref, sabotaged, stdout, 0);
    printf("---- %d checks failed, as they should ----\n", failed);
    fflush(stdout);
    return failed;
}

Test(parity, cpu_against_itself_passes)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend copy = be;
    copy.name = "cpu-copy";
    int n = 0;
    int failed = dpt_selftest_run(&be, &copy, DPT_PREC_FP32, stdout, 0, &n);
    cr_expect(n >= 70, "only %d checks ran", n);
    cr_expect_eq(failed, 0, "%d of %d checks failed comparing the CPU backend with itself",
                 failed, n);
    be.destroy(&be);
}

Test(parity, catches_gemm_ignoring_lda)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend bad = be;
    bad.name = "cpu-packed-lda";
    bad.gemm = gemm_packed_lda;
    cr_expect_gt(parity_against(&bad), 0, "a GEMM ignoring lda passed the parity checks");
    be.destroy(&be);
}

Test(parity, catches_gemm_epilogue_forgotten)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend bad = be;
    bad.name = "cpu-no-epilogue";
    bad.gemm_epilogue = epilogue_forgotten;
    /* bias, relu_bias (2 shapes, value and mask each), drelu (2 shapes, value and bias grad) */
    cr_expect_geq(parity_against(&bad), 7, "GEMMs without their epilogues passed the checks");
    be.destroy(&be);
}

Test(parity, catches_grid_one_block_short)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend bad = be;
    bad.name = "cpu-short-grid";
    bad.bias_act_forward = bias_act_short_grid;
    cr_expect_gt(parity_against(&bad), 0, "a forward skipping the last row passed");
    be.destroy(&be);
}

Test(parity, catches_dropout_mask_missing_in_backward)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend bad = be;
    bad.name = "cpu-no-mask";
    bad.act_backward = act_backward_no_mask;
    cr_expect_gt(parity_against(&bad), 0, "a backward without the dropout mask passed");
    be.destroy(&be);
}

Test(parity, catches_nesterov_missing)
{
    dpt_backend be;
    fixture_cpu(&be);
    dpt_backend bad = be;
    bad.name = "cpu-no-nesterov";
    bad.sgd_step = sgd_no_nesterov;
    cr_expect_gt(parity_against(&bad), 0, "an SGD step without Nesterov passed");
    be.destroy(&be);
}

/* ---- bf16 GEMMs (train.precision: bf16) ---- */

/* 1x1x1 products on the CPU backend's bf16 twin: the operands are rounded to bfloat16 (8
 * significant bits) to nearest, ties to even, before the FP32 GEMM. */
Test(parity, cpu_bf16_gemm_rounds_operands_to_nearest_even)
{
    dpt_backend be;
    cr_assert_eq(dpt_cpu_backend_init_precision(&be, 1, DPT_PREC_BF16), 0);
    const struct {
        float a, want;
    } cases[] = {
        {1.0f + 0x1p-8f, 1.0f},                   /* a tie: to the even 1.0 */
        {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f},      /* a tie: to the even 1 + 2^-6 */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f}, /* above the tie: up */
        {-(1.0f + 0x1p-9f), -1.0f},                /* below the tie: down, sign kept */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float a = cases[i].a, b = 1.0f, c = 123.0f;
        be.gemm(&be, 0, 0, 1, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &c, 1);
        cr_expect_eq(c, cases[i].want, "bf16(%.9g) * 1 = %.9g, want %.9g", (double)a, (double)c,
                     (double)cases[i].want);
    }
    be.destroy(&be);
}

/* A padded, transposed bf16 GEMM equals the FP32 GEMM of the hand-rounded, packed operands
 * exactly (the same OpenBLAS call on the same values), so the twin rounds every element it
 * reads and honours the leading dimensions. */
Test(parity, cpu_bf16_gemm_is_fp32_gemm_of_rounded_operands)
{
    dpt_backend b16, f32;
    cr_assert_eq(dpt_cpu_backend_init_precision(&b16, 1, DPT_PREC_BF16), 0);
    cr_assert_eq(dpt_cpu_backend_init(&f32, 1), 0);
    enum { M = 3, N = 4, K = 5, LDA = M + 2, LDB = K + 1 };
    float a[K * LDA], b[N * LDB], ar[K * M], br[N * K], c1[M * N], c2[M * N];
    for (int i = 0; i < K * LDA; i++)
        a[i] = 1.0f + (float)i * 0.0123457f;
    for (int i = 0; i < N * LDB; i++)
        b[i] = -2.0f + (float)i * 0.0098765f;
    for (int l = 0; l < K; l++) /* A stored (K, M), lda LDA: transposed */
        for (int i = 0; i < M; i++)
            ar[l * M + i] = dpt_op_round_bf16(a[l * LDA + i]);
    for (int j = 0; j < N; j++) /* B stored (N, K), ldb LDB: transposed */
        for (int l = 0; l < K; l++)
            br[j * K + l] = dpt_op_round_bf16(b[j * LDB + l]);
    b16.gemm(&b16, 1, 1, M, N, K, 0.5f, a, LDA, b, LDB, 0.0f, c1, N);
    f32.gemm(&f32, 1, 1, M, N, K, 0.5f, ar, M, br, K, 0.0f, c2, N);
    cr_expect_arr_eq(c1, c2, sizeof c1);
    f32.gemm(&f32, 1, 1, M, N, K, 0.5f, a, LDA, b, LDB, 0.0f, c2, N);
    cr_expect_neq(memcmp(c1, c2, sizeof c1), 0, "the bf16 GEMM equals the unrounded FP32 one");
    b16.destroy(&b16);
    f32.destroy(&f32);
}

Test(parity, cpu_bf16_against_itself_passes)
{
    dpt_backend be;
    cr_assert_eq(dpt_cpu_backend_init_precision(&be, 1, DPT_PREC_BF16), 0);
    dpt_backend copy = be;
    copy.name = "cpu-bf16-copy";
    int n = 0;
    int failed = dpt_selftest_run(&be, &copy, DPT_PREC_BF16, stdout, 0, &n);
    cr_expect_eq(failed, 0, "%d of %d checks failed comparing the bf16 CPU backend with itself",
                 failed, n);
    be.destroy(&be);
}

/* A bf16 GEMM that forgets to round (the FP32 CPU GEMM standing in for it) fails the bf16
 * parity checks: their tolerance is FP32's, far below bf16's rounding. */
Test(parity, catches_bf16_gemm_not_rounding)
{
    dpt_backend ref, plain;
    cr_assert_eq(dpt_cpu_backend_init_precision(&ref, 1, DPT_PREC_BF16), 0);
    cr_assert_eq(dpt_cpu_backend_init(&plain, 1), 0);
    plain.name = "cpu-fp32-as-bf16";
    printf("---- cpu bf16 vs cpu fp32: NOT OK gemm lines expected ----\n");
    int failed = dpt_selftest_run(&ref, &plain, DPT_PREC_BF16, stdout, 0, NULL);
    fflush(stdout);
    cr_expect_gt(failed, 0, "a GEMM without bf16 rounding passed the bf16 parity checks");
    ref.destroy(&ref);
    plain.destroy(&plain);
}

/* ---- the op list: completeness and coverage ---- */

Test(parity, backend_table_is_complete)
{
    dpt_backend be;
    fixture_cpu(&be); /* dpt_cpu_backend_init already ended the process if an op were missing */
    cr_expect_null(dpt_backend_missing_op(&be));
    dpt_backend holed = be;
    holed.bias_grad = NULL;
    const char *missing = dpt_backend_missing_op(&holed);
    cr_assert_not_null(missing);
    cr_expect_str_eq(missing, "bias_grad");
    cr_expect_str_eq(dpt_backend_op_name(DPT_BACKEND_OP_bias_grad), "bias_grad");
    be.destroy(&be);
}

/* A table with an op left out of the list ends the process, naming the op. */
Test(parity, backend_init_refuses_an_incomplete_table, .exit_code = 1)
{
    dpt_backend be;
    fixture_cpu(&be);
    be.upload_async = NULL;
    dpt_backend_check_complete(&be);
}

/* Runs the coverage report into a string; returns the number of uncovered ops. */
static int coverage_of(const char *const checks[], char **text)
{
    size_t len = 0;
    FILE *f = open_memstream(text, &len);
    cr_assert_not_null(f);
    int missing = dpt_selftest_uncovered(checks, f);
    fclose(f);
    printf("%s", *text);
    return missing;
}

Test(parity, coverage_lists_no_uncovered_op)
{
    char *text = NULL;
    cr_expect_eq(coverage_of(dpt_selftest_op_checks(), &text), 0);
    cr_expect_null(strstr(text, "UNCOVERED"), "%s", text);
    free(text);
}

Test(parity, coverage_names_an_unmarked_op)
{
    const char *checks[DPT_BACKEND_N_OPS];
    memcpy(checks, dpt_selftest_op_checks(), sizeof checks);
    checks[DPT_BACKEND_OP_sum_squares] = NULL;
    char *text = NULL;
    cr_expect_eq(coverage_of(checks, &text), 1);
    cr_expect_not_null(strstr(text, "op sum_squares"), "%s", text);
    free(text);
}

/* ---- the real training step (needs MPI: a singleton here) ---- */

Test(parity, training_step_cpu_against_itself, .timeout = 300)
{
    dpt_comm comm;
    dpt_comm_init(&comm, NULL, NULL);
    int n = 0;
    int failed = dpt_selftest_training(&comm, DPT_DEVICE_CPU, DPT_PREC_FP32, stdout, 1, &n);
    fflush(stdout);
    cr_expect_eq(n, 1);
    cr_expect_eq(failed, 0, "the training step on the CPU differs from itself");
    dpt_comm_finalize(&comm);
}

#ifdef DPT_HAVE_CUDA
/* The CUDA backend on device 0 against the CPU reference, FP32, TF32 and BF16 GEMMs (BF16
 * against the CPU's BF16 twin). Skipped where no device is visible (an nvcc build on a machine
 * without a GPU); the emulated build shows one. */
static void cuda_parity(dpt_precision prec)
{
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_backend cpu, gpu;
    dpt_error err = {0};
    cr_assert_eq(dpt_cpu_backend_init_precision(&cpu, 1, prec), 0);
    cr_assert_eq(dpt_cuda_backend_init(&gpu, 0, prec, &err), DPT_OK, "%s", err.msg);
    char why[160];
    cr_assert_eq(dpt_cuda_epilogues(&gpu, 0, why, sizeof why), 0);
#ifdef DPT_CUDA_EMU
    /* the emulated cuBLASLt accepts every epilogue the model fuses, in every precision */
    cr_expect_eq(gpu.epilogues, DPT_EPI_BIAS | DPT_EPI_RELU_BIAS | DPT_EPI_DRELU,
                 "%s", why);
#endif
    int n = 0;
    int failed = dpt_selftest_run(&cpu, &gpu, prec, stdout, 1, &n);
    fflush(stdout);
    cr_expect_eq(failed, 0, "%d of %d parity checks failed (NOT OK lines above)", failed, n);
    gpu.destroy(&gpu);
    cpu.destroy(&cpu);
}

Test(parity, cuda_matches_cpu_fp32, .timeout = 600)
{
    cuda_parity(DPT_PREC_FP32);
}

Test(parity, cuda_matches_cpu_tf32, .timeout = 600)
{
    cuda_parity(DPT_PREC_TF32);
}

Test(parity, cuda_matches_cpu_bf16, .timeout = 600)
{
    cuda_parity(DPT_PREC_BF16);
}

/* 100 steps of the real training step in BF16 on both backends. */
Test(parity, training_step_cuda_matches_cpu_bf16, .timeout = 600)
{
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_comm comm;
    dpt_comm_init(&comm, NULL, NULL);
    int n = 0;
    int failed = dpt_selftest_training(&comm, DPT_DEVICE_CUDA, DPT_PREC_BF16, stdout, 1, &n);
    fflush(stdout);
    cr_expect_eq(failed, 0, "bf16 training on the CUDA backend differs from the CPU's twin");
    dpt_comm_finalize(&comm);
}

/* comm.compress bf16 on the NCCL path converts the gradients with dpt_cuda_to_bf16 and back;
 * their CPU twin is the rounding of ops.h (= mpi/buckets.h's dpt_bf16_from_float, the MPI
 * path's): bit for bit equal on ties, both signs, subnormals, overflow and infinities, and the
 * way back exact. */
Test(parity, cuda_bf16_conversions_match_the_cpu_rounding)
{
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_backend gpu;
    dpt_error err = {0};
    cr_assert_eq(dpt_cuda_backend_init(&gpu, 0, DPT_PREC_FP32, &err), DPT_OK, "%s", err.msg);
    enum { N = 4099 }; /* not a multiple of the block size */
    static float x[N], back[N];
    static uint16_t half[N];
    const float special[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f), 0x1p-130f,
                             3.4e38f, -3.4e38f, INFINITY, -INFINITY, 0.0f, -0.0f};
    const size_t n_special = sizeof special / sizeof special[0];
    for (size_t i = 0; i < N; i++)
        x[i] = i < n_special ? special[i]
                             : (float)((int)(i * 2654435761u % 20001u) - 10000) / 77.0f;
    float *dx = gpu.alloc(&gpu, sizeof x), *dback = gpu.alloc(&gpu, sizeof back);
    void *dhalf = gpu.alloc(&gpu, sizeof half);
    cr_assert(dx && dback && dhalf);
    gpu.upload(&gpu, dx, x, sizeof x);
    void *stream = dpt_cuda_backend_stream(&gpu);
    dpt_cuda_to_bf16(dhalf, dx, N, stream);
    dpt_cuda_from_bf16(dback, dhalf, N, stream);
    gpu.download(&gpu, half, dhalf, sizeof half);
    gpu.download(&gpu, back, dback, sizeof back);
    int bad = 0;
    for (size_t i = 0; i < N; i++) {
        float want = dpt_op_round_bf16(x[i]);
        uint32_t w;
        memcpy(&w, &want, sizeof w);
        if ((uint32_t)half[i] << 16 != w || memcmp(&back[i], &want, sizeof want) != 0) {
            if (bad++ < 5)
                printf("x %.9g: gpu bits %#06x back %.9g, cpu %.9g (bits %#010x)\n",
                       (double)x[i], half[i], (double)back[i], (double)want, w);
        }
    }
    cr_expect_eq(bad, 0, "%d of %d conversions differ from the CPU's rounding", bad, N);
    gpu.free(&gpu, dx);
    gpu.free(&gpu, dback);
    gpu.free(&gpu, dhalf);
    gpu.destroy(&gpu);
}

/* The public entry point of `dptrain selftest`: 0 when everything passed. */
Test(parity, selftest_main_passes, .timeout = 600)
{
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_comm comm;
    dpt_comm_init(&comm, NULL, NULL);
    cr_expect_eq(dpt_selftest_main(stdout, &comm), 0);
    dpt_comm_finalize(&comm);
}
#else
Test(parity, selftest_main_skips_without_cuda)
{
    cr_expect_eq(dpt_selftest_main(stdout, NULL), 77);
}
#endif
