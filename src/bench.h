/* Benchmarks. `dptrain bench train`: the training step's throughput on all ranks against one
 * rank with the same per-rank batch (weak scaling), split into compute, communication and data
 * time, beside the GEMM-only cap of this machine for the same shapes. */
#ifndef DPT_BENCH_H
#define DPT_BENCH_H

#include "comm.h"
#include "config.h"
#include "error.h"

int dpt_bench_train(const dpt_config *cfg, dpt_comm *comm, const char *config_path, int steps,
                    int warmup, dpt_error *err);

#endif
