/* The backend parity self-test behind `dptrain selftest` and tests/test_parity.c: every op of the
 * backend table (src/backend.h) run on two backends with the same inputs and compared with stated
 * tolerances; the real training step (src/train.h) for 100 steps on two devices; and the report
 * of the ops of the table that no check covers. The op checks need no MPI; a GPU only for main. */
#ifndef DPT_SELFTEST_H
#define DPT_SELFTEST_H

#include <stdio.h>

#include "backend.h"
#include "comm.h"
#include "config.h"

/* Runs every op of the table on ref (the reference, normally the CPU backend) and dev with the
 * same inputs (counter-based RNG, fixed seed). Prints one fixed-width line per check to out
 * (NULL: silent): "OK" or "NOT OK", the op, the shape, the scale the difference is measured
 * against, the largest absolute and relative difference and the tolerance; a failed check adds
 * its first mismatches. verbose = 0 prints only the failed checks, verbose != 0 every check and
 * a header. Returns the number of failed checks. GEMM tolerances are those of full FP32 on both
 * backends. */
int dpt_selftest_backends(dpt_backend *ref, dpt_backend *dev, FILE *out, int verbose);

/* As dpt_selftest_backends, with the precision the backends were started in: DPT_PREC_TF32
 * when dev's GEMMs round their inputs to TF32 (ref in FP32): GEMM tolerances widen to what TF32
 * allows; DPT_PREC_BF16 when both round their operands to bf16 (ref the CPU backend's BF16
 * twin): the FP32 tolerances, measured against the rounded operands. When n_checks is not NULL
 * it receives the number of checks run. */
int dpt_selftest_run(dpt_backend *ref, dpt_backend *dev, dpt_precision prec, FILE *out,
                     int verbose, int *n_checks);

/* The end-to-end check: a small MLP on a synthetic data set trained for 100 steps through the
 * real step (dpt_trainer_init, dpt_trainer_step, dpt_trainer_evaluate, dpt_trainer_free) with
 * run.device cpu (the reference, in BF16 when prec is BF16, else FP32) and with run.device dev
 * in train.precision prec,
 * on `self`, a communicator of one rank; compares the final loss over the training rows. Prints
 * as dpt_selftest_run; returns the failed checks, *n_checks (when not NULL) the checks run. */
int dpt_selftest_training(dpt_comm *self, dpt_device_kind dev, dpt_precision prec, FILE *out,
                          int verbose, int *n_checks);

/* Coverage, as ggml's test-backend-ops lists untested ops: for each op of DPT_BACKEND_OPS (index
 * DPT_BACKEND_OP_*), the name of the parity check that covers it, or NULL. */
const char *const *dpt_selftest_op_checks(void);

/* Walks the op list and prints "UNCOVERED  op NAME ..." to out (NULL: silent) for each op whose
 * entry in checks (DPT_BACKEND_N_OPS entries) is NULL, or one line saying every op is covered.
 * Returns the number of uncovered ops. */
int dpt_selftest_uncovered(const char *const checks[], FILE *out);

/* `dptrain selftest`, called on every rank of comm (collective: it splits comm into one-rank
 * groups); rank 0 runs it, the other ranks return 0 at once. The coverage report, then the CPU
 * backend (1 thread) against the CUDA backend on this rank's device, op by op and through the
 * training step, in FP32, TF32 and BF16 GEMM mode, then "selftest: N checks, M failed". Returns 0
 * when all passed, 1 when any failed or a backend could not start, 77 when built without CUDA or
 * no device is visible (nothing to test: the caller maps it to its "skipped" status). comm may
 * be NULL in a build without CUDA. */
int dpt_selftest_main(FILE *out, dpt_comm *comm);

#endif
