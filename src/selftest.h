/* The backend parity self-test behind `dptrain selftest` and tests/test_parity.c: every op of the
 * backend table (src/backend.h) run on two backends with the same inputs and compared with stated
 * tolerances, then 100 SGD steps of a small MLP on both. Needs no MPI; a GPU only for main. */
#ifndef DPT_SELFTEST_H
#define DPT_SELFTEST_H

#include <stdio.h>

#include "backend.h"

/* Runs every op of the table on ref (the reference, normally the CPU backend) and dev with the
 * same inputs (counter-based RNG, fixed seed), then the end-to-end training check. Prints one
 * fixed-width line per check to out (NULL: silent): "OK" or "NOT OK", the op, the shape, the
 * scale the difference is measured against, the largest absolute and relative difference and
 * the tolerance; a failed check adds its first mismatches. verbose = 0 prints only the failed
 * checks, verbose != 0 every check and a header. Returns the number of failed checks. GEMM
 * tolerances are those of full FP32 on both backends. */
int dpt_selftest_backends(dpt_backend *ref, dpt_backend *dev, FILE *out, int verbose);

/* As dpt_selftest_backends, with dev_tf32 != 0 when dev's GEMMs round their inputs to TF32
 * (the CUDA backend started with tf32 = 1): GEMM and end-to-end tolerances widen to what TF32
 * allows. When n_checks is not NULL it receives the number of checks run. */
int dpt_selftest_run(dpt_backend *ref, dpt_backend *dev, int dev_tf32, FILE *out, int verbose,
                     int *n_checks);

/* `dptrain selftest`: the CPU backend (1 thread) against the CUDA backend on device 0, in FP32
 * and in TF32 GEMM mode, then "selftest: N checks, M failed". Returns 0 when all passed, 1 when
 * any failed or a backend could not start, 77 when built without CUDA or no device is visible
 * (nothing to test: the caller maps it to its "skipped" status). */
int dpt_selftest_main(FILE *out);

#endif
