/* `dptrain bench allreduce`: the gradient allreduce timed over a sweep of message sizes through
 * the trainer's own reducer (mpi/reducer.h), in the format of nccl-tests' all_reduce_perf, on
 * three communicators (all ranks, within each node, across node leaders), with a correctness
 * count, plain MPI_Allreduce as an optional baseline and the alpha-beta model of a ring
 * allreduce fitted to each sweep. Exists so that scaling work
 * (bucketing, hierarchical allreduce) is measured against the network, not guessed. */
#ifndef DPT_BENCH_ALLREDUCE_H
#define DPT_BENCH_ALLREDUCE_H

#include <stddef.h>

#include "comm.h"
#include "comm_types.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t min_bytes, max_bytes; /* -b, -e: message sizes in bytes, rounded down to whole floats */
    size_t factor;               /* -f: each size is the previous one times this (>= 2) */
    int iters, warmup;           /* -n timed iterations per size, -w untimed ones before them */
    dpt_device_kind device;      /* --device: host buffers (cpu: MPI) or device buffers (cuda:
                                  * NCCL) */
    int baseline;                /* --baseline: also time plain MPI_Allreduce on host buffers */
    dpt_comm_algorithm algorithm; /* --algorithm, as comm.algorithm: the trainer's reducer */
} dpt_bench_allreduce_opts;

/* nccl-tests' defaults: -b 8 -e 64M -f 2 -n 20 -w 5, on the CPU, no baseline. */
void dpt_bench_allreduce_defaults(dpt_bench_allreduce_opts *o);

/* A byte count with an optional K, M or G suffix (powers of 1024, as nccl-tests reads them):
 * "8", "64K", "1M", "2g". Returns 0 and sets *bytes, or -1 for anything else (empty, signs,
 * fractions, other suffixes, overflow). */
int dpt_bench_parse_bytes(const char *s, size_t *bytes);

/* Parses the flags after `bench allreduce` (argv[first..argc-1]). Returns DPT_OK, or DPT_EUSAGE
 * with a message in err that names the flag. */
int dpt_bench_allreduce_parse(int argc, char **argv, int first, dpt_bench_allreduce_opts *o,
                              dpt_error *err);

/* The alpha-beta model of a ring allreduce of S bytes over R ranks (Thakur, Rabenseifner & Gropp
 * 2005, "Optimization of collective communication operations in MPICH", IJHPCA 19(1); the
 * reduction's compute term left out): t = 2(R-1) alpha + 2(R-1)/R * S / beta.
 * alpha in us (latency per step), beta in GB/s (1e9 bytes/s); returns t in us. */
double dpt_bench_ring_time_us(int R, double bytes, double alpha_us, double beta_gbs);

/* Fits alpha (us) and beta (GB/s) of that model to n measured (bytes, time in us) points by
 * least squares on the relative error (each residual divided by its measured time, so 8-byte
 * and 64-MB messages, seven decades apart, weigh alike). alpha is kept >= 0 and beta > 0: when
 * the free fit breaks one bound, the other parameter alone is fitted (beta = INFINITY when the
 * times do not grow with size). Returns 0, or -1 when nothing can be fitted (R < 2, n < 1). */
int dpt_bench_fit_alpha_beta(int R, const double *bytes, const double *time_us, int n,
                             double *alpha_us, double *beta_gbs);

/* The correctness check's data (public for the unit tests): rank r's element i, small integers
 * a(i) + b(r) with b(r) >= 1, and the exact sum of element i over ranks 0..R-1. Every partial sum
 * in any order is an integer below 2^24, hence exact in float, for R < 500000. */
float dpt_bench_allreduce_fill_value(size_t i, int rank);
float dpt_bench_allreduce_expected(size_t i, int R);

/* Collective over c->world: runs the benchmark and rank 0 prints the tables. DPT_OK, or
 * DPT_ERUNTIME when any result was wrong (or, with --device cuda, no usable GPU), with the
 * message on rank 0 and an echo of the code on the others; every rank returns the same code. */
int dpt_bench_allreduce(dpt_comm *c, const dpt_bench_allreduce_opts *o, dpt_error *err);

#ifdef __cplusplus
}
#endif

#endif
