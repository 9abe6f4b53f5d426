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
    int failed = dpt_selftest_run(&be, &copy, 0, stdout, 0, &n);
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
    int failed = dpt_selftest_training(&comm, DPT_DEVICE_CPU, 0, stdout, 1, &n);
    fflush(stdout);
    cr_expect_eq(n, 1);
    cr_expect_eq(failed, 0, "the training step on the CPU differs from itself");
    dpt_comm_finalize(&comm);
}

#ifdef DPT_HAVE_CUDA
/* The CUDA backend on device 0 against the CPU reference, FP32 and TF32 GEMMs. Skipped where no
 * device is visible (an nvcc build on a machine without a GPU); the emulated build shows one. */
static void cuda_parity(int tf32)
{
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_backend cpu, gpu;
    dpt_error err = {0};
    cr_assert_eq(dpt_cpu_backend_init(&cpu, 1), 0);
    cr_assert_eq(dpt_cuda_backend_init(&gpu, 0, tf32, &err), DPT_OK, "%s", err.msg);
    int n = 0;
    int failed = dpt_selftest_run(&cpu, &gpu, tf32, stdout, 1, &n);
    fflush(stdout);
    cr_expect_eq(failed, 0, "%d of %d parity checks failed (NOT OK lines above)", failed, n);
    gpu.destroy(&gpu);
    cpu.destroy(&cpu);
}

Test(parity, cuda_matches_cpu_fp32, .timeout = 600)
{
    cuda_parity(0);
}

Test(parity, cuda_matches_cpu_tf32, .timeout = 600)
{
    cuda_parity(1);
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
