/* Benchmarks. `dptrain bench train`: the training step's throughput on all ranks against one
 * rank with the same per-rank batch (weak scaling), or over 1, 2, 4, ... ranks (--scaling weak
 * or strong), split into compute, wait, communication and data time, beside the GEMM-only cap
 * of this machine for the same shapes. */
#ifndef DPT_BENCH_H
#define DPT_BENCH_H

#include "comm.h"
#include "config.h"
#include "error.h"

typedef enum { DPT_BENCH_SCALING_NONE, DPT_BENCH_SCALING_WEAK, DPT_BENCH_SCALING_STRONG } dpt_bench_scaling;

typedef struct {
    const char *config_path;
    int steps, warmup;
    dpt_bench_scaling scaling;  /* NONE: all ranks and one; WEAK/STRONG: 1, 2, 4, ... all */
    const char *csv;            /* append one row per rank count (NULL: none) */
    const char *label;          /* first CSV column (e.g. "2 machines x 1, 1 Gbit/s") */
} dpt_bench_train_opts;

/* Weak scaling keeps train.batch_size / ranks rows per rank at every count; strong scaling keeps
 * the global batch train.batch_size. Collective; rank 0 prints. */
int dpt_bench_train(const dpt_config *cfg, dpt_comm *comm, const dpt_bench_train_opts *o,
                    dpt_error *err);

#endif
