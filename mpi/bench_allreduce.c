/* dptrain bench allreduce: times dptrain's gradient allreduce, the trainer's own reducer
 * (mpi/reducer.h) called as a training step calls it, over a sweep of message sizes on three
 * sets of ranks (all ranks, within each node, across node leaders), checks every element of the
 * result against the exact sum, optionally times plain MPI_Allreduce beside it, fits the
 * alpha-beta model of a ring allreduce to each sweep, and prints it all in the format of
 * nccl-tests' all_reduce_perf so that the numbers read like the field's.
 *
 * Shapes: `count` floats per message (size = 4 * count bytes); one host buffer (max_count) and,
 * with --device cuda, one device buffer (max_count) per rank, reused by every size and table. */
#include "bench_allreduce.h"

#include <errno.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lapacke.h>

#include "device.h"
#include "reducer.h"
#include "util.h"

#ifdef DPT_HAVE_NCCL
#include <cuda_runtime.h> /* the GPU's PCI bus id for the header */
#endif

/* The largest -e: one MPI call carries at most INT_MAX elements (8 GiB of floats); 4 GiB keeps
 * well inside it. */
#define MAX_BYTES ((size_t)4 << 30)
/* The NCCL path's watchdog, as run.comm_timeout_s's default: a stalled peer ends the run. */
#define NCCL_TIMEOUT_S 300.0

void dpt_bench_allreduce_defaults(dpt_bench_allreduce_opts *o)
{
    memset(o, 0, sizeof *o);
    o->min_bytes = 8;
    o->max_bytes = (size_t)64 << 20;
    o->factor = 2;
    o->iters = 20;
    o->warmup = 5;
    o->device = DPT_DEVICE_CPU;
    o->algorithm = DPT_COMM_FLAT;
}

int dpt_bench_parse_bytes(const char *s, size_t *bytes)
{
    if (!s || *s < '0' || *s > '9') /* strtoull would take spaces and signs */
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -1;
    unsigned long long mult = 1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    default: return -1;
    }
    if (*end != '\0' || v > (unsigned long long)SIZE_MAX / mult)
        return -1;
    *bytes = (size_t)(v * mult);
    return 0;
}

/* A non-negative int flag value no larger than max; -1 when it is not one. */
static long parse_count(const char *s, long max)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return *end || errno == ERANGE || v > max ? -1 : v;
}

/* -b, -e: a byte count; *arg keeps the text for the messages of check_sizes. */
static int parse_size_flag(const char *a, const char *v, dpt_bench_allreduce_opts *o,
                           const char **arg, dpt_error *err)
{
    size_t bytes;
    if (dpt_bench_parse_bytes(v, &bytes) != 0)
        return dpt_error_set(err, DPT_EUSAGE,
                             "bench allreduce: %s must be a byte count such as 8, 64K, "
                             "1M or 2G (K, M, G = powers of 1024), got '%s'", a, v);
    *(a[1] == 'b' ? &o->min_bytes : &o->max_bytes) = bytes;
    *arg = v;
    return DPT_OK;
}

/* -f, -n, -w: an integer. */
static int parse_count_flag(const char *a, const char *v, dpt_bench_allreduce_opts *o,
                            dpt_error *err)
{
    if (a[1] == 'f') {
        long f = parse_count(v, 1L << 30);
        if (f < 2)
            return dpt_error_set(err, DPT_EUSAGE,
                                 "bench allreduce: -f must be an integer factor >= 2 "
                                 "between successive sizes, got '%s'", v);
        o->factor = (size_t)f;
        return DPT_OK;
    }
    long n = parse_count(v, 100000000);
    int is_n = a[1] == 'n';
    if (n < (is_n ? 1 : 0))
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: %s must be a %s integer, "
                             "got '%s'", a, is_n ? "positive" : "non-negative", v);
    *(is_n ? &o->iters : &o->warmup) = (int)n;
    return DPT_OK;
}

/* --algorithm: comm.algorithm's names; --device: cpu or cuda. */
static int parse_name_flag(const char *a, const char *v, dpt_bench_allreduce_opts *o,
                           dpt_error *err)
{
    if (strcmp(a, "--algorithm") == 0) {
        for (int k = DPT_COMM_FLAT; k <= DPT_COMM_RING; k++)
            if (strcmp(v, dpt_comm_algorithm_name((dpt_comm_algorithm)k)) == 0) {
                o->algorithm = (dpt_comm_algorithm)k;
                return DPT_OK;
            }
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: --algorithm must be flat, "
                             "hierarchical or ring, got '%s'", v);
    }
    if (strcmp(v, "cpu") == 0) {
        o->device = DPT_DEVICE_CPU;
        return DPT_OK;
    }
    if (strcmp(v, "cuda") != 0)
        return dpt_error_set(err, DPT_EUSAGE,
                             "bench allreduce: --device must be cpu or cuda, got '%s'", v);
#ifdef DPT_HAVE_NCCL
    o->device = DPT_DEVICE_CUDA;
    return DPT_OK;
#else
    return dpt_error_set(err, DPT_EUSAGE,
                         "bench allreduce: --device cuda needs the CUDA backend with "
                         "NCCL, which this build lacks (`dptrain version` says what it "
                         "has); use --device cpu");
#endif
}

/* What the flags say together. */
static int check_opts(const dpt_bench_allreduce_opts *o, const char *b_arg, const char *e_arg,
                      dpt_error *err)
{
    if (o->algorithm != DPT_COMM_FLAT && o->device == DPT_DEVICE_CUDA)
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: --algorithm %s is dptrain's MPI "
                             "path on host buffers; with --device cuda NCCL picks its own rings",
                             dpt_comm_algorithm_name(o->algorithm));
    if (o->min_bytes < sizeof(float))
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: -b must be at least 4 bytes "
                             "(one float), got '%s'", b_arg);
    if (o->max_bytes > MAX_BYTES)
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: -e must be at most 4G, got '%s'",
                             e_arg);
    if (o->max_bytes < o->min_bytes)
        return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: -e %s (%zu bytes) is smaller "
                             "than -b %s (%zu bytes)", e_arg, o->max_bytes, b_arg, o->min_bytes);
    return DPT_OK;
}

int dpt_bench_allreduce_parse(int argc, char **argv, int first, dpt_bench_allreduce_opts *o,
                              dpt_error *err)
{
    dpt_bench_allreduce_defaults(o);
    const char *b_arg = "8", *e_arg = "64M";
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--baseline") == 0) {
            o->baseline = 1;
            continue;
        }
        int size = strcmp(a, "-b") == 0 || strcmp(a, "-e") == 0;
        int count = strcmp(a, "-f") == 0 || strcmp(a, "-n") == 0 || strcmp(a, "-w") == 0;
        int name = strcmp(a, "--device") == 0 || strcmp(a, "--algorithm") == 0;
        if (!size && !count && !name)
            return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: %s '%s'",
                                 a[0] == '-' ? "unknown option" : "unexpected argument", a);
        if (i + 1 >= argc)
            return dpt_error_set(err, DPT_EUSAGE, "bench allreduce: %s needs a value", a);
        const char *v = argv[++i];
        int rc = size    ? parse_size_flag(a, v, o, a[1] == 'b' ? &b_arg : &e_arg, err)
                 : count ? parse_count_flag(a, v, o, err)
                         : parse_name_flag(a, v, o, err);
        if (rc != DPT_OK)
            return rc;
    }
    return check_opts(o, b_arg, e_arg, err);
}

double dpt_bench_ring_time_us(int R, double bytes, double alpha_us, double beta_gbs)
{
    /* 2(R-1) steps (R-1 of reduce-scatter, R-1 of allgather), each moving S/R bytes per rank;
     * beta in GB/s = 1e3 bytes/us */
    double steps = 2.0 * (R - 1);
    return steps * alpha_us + steps / R * bytes / (1e3 * beta_gbs);
}

/* Sum of squared relative residuals of t_i = a x1 + b x2_i. */
static double rel_ssr(double a, double b, double x1, const double *x2, const double *t, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        double r = (t[i] - a * x1 - b * x2[i]) / t[i];
        s += r * r;
    }
    return s;
}

int dpt_bench_fit_alpha_beta(int R, const double *bytes, const double *time_us, int n,
                             double *alpha_us, double *beta_gbs)
{
    if (R < 2 || n < 1)
        return -1;
    /* t = a x1 + b x2 with a = alpha (us), b = 1/beta (us per byte), x1 = 2(R-1) and
     * x2 = 2(R-1)/R S: linear in (a, b). Row i divided by t_i makes the residual relative. */
    double x1 = 2.0 * (R - 1);
    double *x2 = malloc((size_t)n * sizeof *x2), *t = malloc((size_t)n * sizeof *t);
    int ldb = n > 2 ? n : 2;
    double *A = malloc((size_t)2 * n * sizeof *A), *y = malloc((size_t)ldb * sizeof *y);
    DPT_CHECK(x2 && t && A && y, "out of memory");
    int m = 0; /* the usable points: a positive, finite time */
    for (int i = 0; i < n; i++)
        if (time_us[i] > 0 && isfinite(time_us[i])) {
            t[m] = time_us[i];
            x2[m] = x1 / R * bytes[i];
            m++;
        }
    double a = -1, b = -1;
    if (m >= 2) {
        for (int i = 0; i < m; i++) { /* A (m, 2) column-major */
            A[i] = x1 / t[i];
            A[m + i] = x2[i] / t[i];
            y[i] = 1.0;
        }
        if (LAPACKE_dgels(LAPACK_COL_MAJOR, 'N', m, 2, 1, A, m, y, ldb) == 0) {
            a = y[0];
            b = y[1];
        }
    }
    int ok = m >= 1;
    if (ok && !(a >= 0 && b > 0)) {
        /* the bounded optimum lies on an edge: alpha alone (b = 0) or beta alone (a = 0),
         * each a one-parameter least squares; keep the better */
        double s11 = 0, s1 = 0, s22 = 0, s2 = 0;
        for (int i = 0; i < m; i++) {
            s11 += (x1 / t[i]) * (x1 / t[i]);
            s1 += x1 / t[i];
            s22 += (x2[i] / t[i]) * (x2[i] / t[i]);
            s2 += x2[i] / t[i];
        }
        double a_only = s1 / s11, b_only = s22 > 0 ? s2 / s22 : 0;
        if (b_only > 0 && rel_ssr(0, b_only, x1, x2, t, m) < rel_ssr(a_only, 0, x1, x2, t, m)) {
            a = 0;
            b = b_only;
        } else {
            a = a_only;
            b = 0;
        }
    }
    free(x2);
    free(t);
    free(A);
    free(y);
    if (!ok)
        return -1;
    *alpha_us = a;
    *beta_gbs = b > 0 ? 1e-3 / b : INFINITY;
    return 0;
}

/* ---- the benchmark ---- */

/* One set of ranks a table is measured on. */
typedef struct {
    const char *name;  /* "world", "intra", "inter" */
    int split;         /* 0: all ranks (the world); 1: the ranks of this rank's color */
    int color;         /* split: the group this rank joins */
    int member;        /* this rank measures (inter: node leaders only) */
    int size;          /* ranks in this rank's group (0 when not a member) */
    int R;             /* ranks the busbw factor and the model use (intra: the most on a node) */
} bench_group;

/* The run's state on one rank. */
typedef struct bench bench;

/* Sums n floats of buf in place across the ranks of b->comm: the call whose time is measured.
 * buf is host memory, or device memory on dptrain's --device cuda path. */
typedef void (*bench_allreduce_fn)(bench *b, float *buf, size_t n);

struct bench {
    const dpt_bench_allreduce_opts *o;
    dpt_comm *c;
    MPI_Comm comm;             /* the current table's ranks */
    dpt_reducer *world;        /* the trainer's reducer over all ranks (the world table) */
    dpt_reducer *reducer;      /* the current table's, on its members */
    float *host;               /* (max_count) host floats: the MPI paths and the staging area */
    float *dev;                /* (max_count) device floats (--device cuda), else NULL */
    dpt_backend be;            /* --device cuda: the CUDA backend, started as training starts it */
    int gpu;                   /* --device cuda: this rank's GPU; -1 on the CPU */
};

/* The trainer's reducer over the ranks of tc, with the settings of o: one allreduce of the
 * whole buffer after backward, as a training step without overlap calls it. Collective. */
static dpt_reducer *make_reducer(bench *b, dpt_comm *tc)
{
    dpt_reducer_settings rs = {
        .algorithm = b->o->algorithm,
        .compress = DPT_COMPRESS_NONE,
        .timeout_s = NCCL_TIMEOUT_S,
        .device_buffers = b->dev != NULL,
        .stream = b->dev ? dpt_device_stream(&b->be) : NULL,
    };
    dpt_reducer *r = NULL;
    dpt_error e;
    /* what the reducer would refuse (an algorithm with NCCL), the flags have refused */
    DPT_CHECK(dpt_reducer_create(&r, tc, &rs, &e) == DPT_OK, e.msg);
    return r;
}

/* dptrain's path: the reducer's call of a training step, on a plan of one bucket of n floats. */
static void allreduce_reducer(bench *b, float *buf, size_t n)
{
    (void)n;
    dpt_reducer_finish(b->reducer, buf);
}

/* The baseline: one plain MPI_Allreduce in place, on host memory. */
static void allreduce_plain_mpi(bench *b, float *buf, size_t n)
{
    DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, b->comm));
}

/* The check's data: a(i) in [-11, 11] with period 23, b(r) in [1, 7]; a rank left out or
 * counted twice changes every element but the 1 in 23 where its own value is 0. */
static double pattern_a(size_t i) { return (double)((i * 5) % 23) - 11.0; }
static double pattern_b(int r) { return (double)(r % 7 + 1); }

static double pattern_sum_b(int R)
{
    double s = 0;
    for (int r = 0; r < R; r++)
        s += pattern_b(r);
    return s;
}

float dpt_bench_allreduce_fill_value(size_t i, int rank)
{
    return (float)(pattern_a(i) + pattern_b(rank));
}

float dpt_bench_allreduce_expected(size_t i, int R)
{
    return (float)(R * pattern_a(i) + pattern_sum_b(R));
}

/* The mean time of one call over o->iters calls timed together after o->warmup untimed ones
 * and a barrier (nccl-tests' method), in us, on this rank. */
static double time_calls(bench *b, bench_allreduce_fn fn, float *buf, size_t count)
{
    for (int i = 0; i < b->o->warmup; i++)
        fn(b, buf, count);
    DPT_MPI_CHECK(MPI_Barrier(b->comm));
    double t0 = dpt_now();
    for (int i = 0; i < b->o->iters; i++)
        fn(b, buf, count);
    return (dpt_now() - t0) * 1e6 / b->o->iters;
}

/* --baseline: dptrain's path (buf) and plain MPI_Allreduce (b->host) in alternation, each call
 * timed on its own and the two orders taking turns (A B, B A, ...), so that the other jobs of a
 * shared machine slow both alike and their ratio stays meaningful; blocks of 20 calls each were
 * seen to differ by 3x under such load. Means per call in us, on this rank, in t[0] and t[1]. */
static void time_calls_paired(bench *b, float *buf, size_t count, double t[2])
{
    bench_allreduce_fn fn[2] = {allreduce_reducer, allreduce_plain_mpi};
    float *bufs[2] = {buf, b->host};
    for (int i = 0; i < b->o->warmup; i++)
        for (int k = 0; k < 2; k++)
            fn[k](b, bufs[k], count);
    DPT_MPI_CHECK(MPI_Barrier(b->comm));
    double sum[2] = {0, 0};
    for (int i = 0; i < b->o->iters; i++)
        for (int j = 0; j < 2; j++) {
            int k = (i + j) % 2;
            double t0 = dpt_now();
            fn[k](b, bufs[k], count);
            sum[k] += dpt_now() - t0;
        }
    for (int k = 0; k < 2; k++)
        t[k] = sum[k] * 1e6 / b->o->iters;
}

/* Fills buf (host or device) with this rank's pattern. */
static void fill(bench *b, float *buf, size_t count, int rank)
{
    for (size_t i = 0; i < count; i++)
        b->host[i] = dpt_bench_allreduce_fill_value(i, rank);
    if (buf == b->dev) /* queued on the compute stream, before the allreduce */
        b->be.upload(&b->be, b->dev, b->host, count * sizeof(float));
}

/* As nccl-tests validates: fresh data, one more call of the timed path on the same buffer,
 * every element compared with the exact sum. Returns the elements that differ, on this rank. */
static long long check_call(bench *b, bench_allreduce_fn fn, float *buf, size_t count)
{
    int rank, R;
    DPT_MPI_CHECK(MPI_Comm_rank(b->comm, &rank));
    DPT_MPI_CHECK(MPI_Comm_size(b->comm, &R));
    double sum_b = pattern_sum_b(R);
    fill(b, buf, count, rank);
    fn(b, buf, count);
    if (buf == b->dev)
        b->be.download(&b->be, b->host, b->dev, count * sizeof(float));
    long long wrong = 0;
    for (size_t i = 0; i < count; i++)
        wrong += b->host[i] != (float)(R * pattern_a(i) + sum_b);
    return wrong;
}

/* One size of a table, reduced to rank 0 of the world. */
typedef struct {
    size_t bytes, count;
    double time_us;    /* dptrain's path: the slowest rank's mean */
    double base_us;    /* plain MPI_Allreduce (--baseline): the same */
    long long wrong;   /* over every rank */
} bench_row;

static double busbw_gbs(double bytes, double time_us, int R)
{
    /* nccl-tests doc/PERFORMANCE.md: algbw = S / t; busbw = algbw * 2(R-1)/R for allreduce, the
     * bandwidth every link of a ring must carry, comparable across rank counts */
    return time_us > 0 ? bytes / (time_us * 1e3) * 2.0 * (R - 1) / R : 0.0;
}

static void print_table(const dpt_bench_allreduce_opts *o, const bench_group *g,
                        const bench_row *rows, int n_rows)
{
    int R = g->R;
    double *bytes = malloc((size_t)n_rows * sizeof *bytes);
    double *times = malloc((size_t)n_rows * sizeof *times);
    DPT_CHECK(bytes && times, "out of memory");
    for (int i = 0; i < n_rows; i++) {
        bytes[i] = (double)rows[i].bytes;
        times[i] = rows[i].time_us;
    }
    double alpha = 0, beta = 0;
    int fitted = dpt_bench_fit_alpha_beta(R, bytes, times, n_rows, &alpha, &beta) == 0;
    free(bytes);
    free(times);

    printf("#\n#%12s  %12s  %8s  %6s  %10s  %7s  %7s  %6s  %10s", "size", "count", "type",
           "redop", "time", "algbw", "busbw", "#wrong", "model");
    if (o->baseline)
        printf("  %10s  %9s  %6s", "mpi_time", "mpi_busbw", "ratio");
    printf("\n#%12s  %12s  %8s  %6s  %10s  %7s  %7s  %6s  %10s", "(B)", "(elements)", "", "",
           "(us)", "(GB/s)", "(GB/s)", "", "(us)");
    if (o->baseline)
        printf("  %10s  %9s  %6s", "(us)", "(GB/s)", "");
    printf("\n");
    long long wrong = 0;
    double bus_sum = 0, base_sum = 0, err_max = 0, err_sum = 0;
    double worst_ratio = INFINITY, worst_ratio_big = INFINITY; /* all sizes, sizes >= 1 MB */
    int n_big = 0;
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        double algbw = r->time_us > 0 ? (double)r->bytes / (r->time_us * 1e3) : 0.0;
        double busbw = busbw_gbs((double)r->bytes, r->time_us, R);
        char model[32] = "-";
        if (fitted) {
            double pred = dpt_bench_ring_time_us(R, (double)r->bytes, alpha, beta);
            snprintf(model, sizeof model, "%.2f", pred);
            if (r->bytes >= ((size_t)1 << 20) && r->time_us > 0) {
                double e = fabs(pred - r->time_us) / r->time_us;
                err_max = e > err_max ? e : err_max;
                err_sum += e;
                n_big++;
            }
        }
        printf(" %12zu  %12zu  %8s  %6s  %10.2f  %7.2f  %7.2f  %6lld  %10s", r->bytes, r->count,
               "float", "sum", r->time_us, algbw, busbw, r->wrong, model);
        if (o->baseline) {
            double base_busbw = busbw_gbs((double)r->bytes, r->base_us, R);
            /* dptrain's busbw over MPI's, i.e. MPI's time over dptrain's */
            double ratio = r->time_us > 0 ? r->base_us / r->time_us : 0.0;
            printf("  %10.2f  %9.2f  %6.3f", r->base_us, base_busbw, ratio);
            base_sum += base_busbw;
            if (ratio < worst_ratio)
                worst_ratio = ratio;
            if (r->bytes >= ((size_t)1 << 20) && ratio < worst_ratio_big)
                worst_ratio_big = ratio;
        }
        printf("\n");
        wrong += r->wrong;
        bus_sum += busbw;
    }
    if (fitted) {
        printf("# alpha-beta model of a ring allreduce, t = 2(R-1) alpha + 2(R-1)/R size/beta "
               "(Thakur, Rabenseifner & Gropp 2005),\n# fitted by least squares on relative "
               "error over %d sizes: alpha %.3f us, beta %.3f GB/s\n", n_rows, alpha, beta);
        if (n_big > 0)
            printf("# model vs measured at sizes >= 1 MB: mean |error| %.1f%%, max %.1f%% "
                   "(%d size%s)\n", 100.0 * err_sum / n_big, 100.0 * err_max, n_big,
                   n_big == 1 ? "" : "s");
    } else {
        printf("# alpha-beta model: not fitted (%s)\n",
               R < 2 ? "one rank: nothing is communicated" : "no usable times");
    }
    printf("# Out of bounds values : %lld %s\n", wrong, wrong == 0 ? "OK" : "FAILED");
    printf("# Avg bus bandwidth    : %.4f \n", n_rows ? bus_sum / n_rows : 0.0);
    if (o->baseline) {
        printf("# Avg bus bandwidth of plain MPI_Allreduce : %.4f \n",
               n_rows ? base_sum / n_rows : 0.0);
        printf("# dptrain busbw / MPI_Allreduce busbw: lowest %.3f over all sizes", worst_ratio);
        if (isfinite(worst_ratio_big))
            printf(", %.3f at sizes >= 1 MB", worst_ratio_big);
        printf("\n");
    }
}

/* One size on the members of a table: the reducer planned for count floats, timed (with the
 * baseline beside it under --baseline) and checked. t[0], t[1]: this rank's mean times. */
static long long run_size(bench *b, size_t count, double t[2])
{
    float *buf = b->dev ? b->dev : b->host;
    const size_t whole = 0; /* one piece from float 0: one bucket, as without overlap */
    dpt_reducer_plan(b->reducer, count, 0, &whole, 1);
    if (b->o->baseline)
        time_calls_paired(b, buf, count, t);
    else
        t[0] = time_calls(b, allreduce_reducer, buf, count);
    return check_call(b, allreduce_reducer, buf, count);
}

/* Runs one table on every rank of the world (members measure; the others take part in the
 * reductions to rank 0 only); rank 0 prints it. Returns the table's wrong elements on rank 0. */
static long long run_table(bench *b, const bench_group *g)
{
    const dpt_bench_allreduce_opts *o = b->o;
    int root = b->c->rank == 0;
    dpt_comm sub, *tc = b->c;
    b->reducer = b->world;
    if (g->split) { /* collective over the world: every rank joins its group */
        dpt_comm_split(b->c, g->color, &sub);
        tc = &sub;
        b->reducer = g->member ? make_reducer(b, tc) : NULL;
    }
    b->comm = tc->world;
    int cap = 1;
    for (size_t s = o->min_bytes; s <= o->max_bytes / o->factor; s *= o->factor)
        cap++;
    bench_row *rows = calloc((size_t)cap, sizeof *rows);
    DPT_CHECK(rows != NULL, "out of memory");
    int n_rows = 0;
    for (size_t size = o->min_bytes;; size *= o->factor) {
        size_t count = size / sizeof(float);
        double t[2] = {0, 0}, t_max[2] = {0, 0}; /* dptrain's path, baseline */
        long long wrong = 0, wrong_all = 0;
        DPT_MPI_CHECK(MPI_Barrier(b->c->world));
        if (g->member)
            wrong = run_size(b, count, t);
        DPT_MPI_CHECK(MPI_Reduce(t, t_max, 2, MPI_DOUBLE, MPI_MAX, 0, b->c->world));
        DPT_MPI_CHECK(MPI_Reduce(&wrong, &wrong_all, 1, MPI_LONG_LONG, MPI_SUM, 0, b->c->world));
        rows[n_rows++] = (bench_row){count * sizeof(float), count, t_max[0], t_max[1], wrong_all};
        if (size > o->max_bytes / o->factor)
            break;
    }
    if (g->split) {
        dpt_reducer_free(b->reducer);
        dpt_comm_free(&sub);
    }
    b->reducer = NULL;
    long long wrong = 0;
    if (root) {
        print_table(o, g, rows, n_rows);
        for (int i = 0; i < n_rows; i++)
            wrong += rows[i].wrong;
    }
    free(rows);
    return wrong;
}

/* What rank 0 prints about every rank. */
typedef struct {
    int pid, device, local_rank, local_size, node, n_nodes;
    char host[64];
    char where[32]; /* "cpu", or the GPU's PCI bus id */
} rank_info;

/* This rank's line of the header. */
static void rank_info_of(const bench *b, rank_info *me)
{
    const dpt_comm *c = b->c;
    memset(me, 0, sizeof *me);
    me->pid = (int)getpid();
    me->device = b->gpu;
    me->local_rank = c->local_rank;
    me->local_size = c->local_size;
    me->node = c->node;
    me->n_nodes = c->n_nodes;
    memcpy(me->host, c->host, sizeof me->host - 1); /* longer host names are cut */
    snprintf(me->where, sizeof me->where, "cpu");
#ifdef DPT_HAVE_NCCL
    if (b->gpu >= 0) {
        struct cudaDeviceProp prop; /* "struct": the real header is C++-first */
        cudaError_t e = cudaGetDeviceProperties(&prop, b->gpu);
        if (e != cudaSuccess)
            dpt_fatal(__FILE__, __LINE__, "cudaGetDeviceProperties(&prop, b->gpu)",
                      cudaGetErrorString(e));
        snprintf(me->where, sizeof me->where, "0x%02x", prop.pciBusID);
    }
#endif
}

static void print_header(bench *b)
{
    const dpt_bench_allreduce_opts *o = b->o;
    dpt_comm *c = b->c;
    rank_info me;
    rank_info_of(b, &me);
    rank_info *all = c->rank == 0 ? calloc((size_t)c->size, sizeof *all) : NULL;
    if (c->rank == 0)
        DPT_CHECK(all != NULL, "out of memory");
    DPT_MPI_CHECK(MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, 0,
                             c->world));
    if (c->rank != 0)
        return;
    char path[320];
    dpt_reducer_describe(b->world, path, sizeof path);
    printf("# dptrain bench allreduce (the format of nccl-tests' all_reduce_perf)\n");
    printf("# nRanks %d nNodes %d minBytes %zu maxBytes %zu step: %zu(factor) warmup iters: %d "
           "iters: %d validation: 1 device: %s\n", c->size, c->n_nodes, o->min_bytes,
           o->max_bytes, o->factor, o->warmup, o->iters,
           o->device == DPT_DEVICE_CUDA ? "cuda" : "cpu");
    printf("# dptrain path: --algorithm %s through the trainer's reducer (dpt_reducer, "
           "mpi/reducer.h), the call a training step makes: %s\n",
           dpt_comm_algorithm_name(o->algorithm), path);
    if (o->baseline)
        printf("# baseline: plain MPI_Allreduce in place on host buffers, in alternation with "
               "dptrain's path call by call,\n# each call timed on its own; ratio = dptrain busbw "
               "/ MPI busbw\n");
    printf("# time: the slowest rank's mean over %d calls timed %s after a barrier and %d "
           "untimed calls\n", o->iters, o->baseline ? "one by one" : "together", o->warmup);
    printf("# algbw = size / time; busbw = algbw * 2(R-1)/R (nccl-tests doc/PERFORMANCE.md)\n");
    printf("# #wrong: elements not equal to the exact sum after one more call on freshly filled "
           "buffers, over all ranks\n");
    printf("#\n# Using devices\n");
    for (int r = 0; r < c->size; r++) {
        const rank_info *p = &all[r];
        printf("#  Rank %3d Pid %6d on %12s device %2d [%s] local %d/%d node %d/%d\n", r, p->pid,
               p->host, p->device, p->where, p->local_rank, p->local_size, p->node, p->n_nodes);
    }
    free(all);
}

/* Allocates the buffers and, with --device cuda, chooses this rank's GPU and starts the CUDA
 * backend on it as training does (src/device.c). A missing GPU or a failed allocation is
 * reported (every rank agrees on the outcome) rather than aborting. */
static int bench_start(bench *b, dpt_error *err)
{
    const dpt_bench_allreduce_opts *o = b->o;
    dpt_comm *c = b->c;
    size_t max_count = o->max_bytes / sizeof(float);
    int rc = DPT_OK;
    b->gpu = -1;
    if (o->device == DPT_DEVICE_CUDA) {
        dpt_device d;
        rc = dpt_device_choose(DPT_DEVICE_CUDA, c, DPT_DEVICE_FOR_BENCH, &d, err);
        if (rc == DPT_OK)
            rc = dpt_device_start(&d, 1, 0, &b->be, err);
        if (rc == DPT_OK) {
            b->gpu = d.gpu;
            b->dev = b->be.alloc(&b->be, max_count * sizeof(float));
            if (!b->dev)
                rc = dpt_error_set(err, DPT_ERUNTIME, "-e %zu: cannot allocate %zu bytes of "
                                   "device memory on %s; lower -e", o->max_bytes,
                                   max_count * sizeof(float), c->host);
        }
    }
    if (rc == DPT_OK) {
        b->host = malloc(max_count * sizeof(float));
        if (!b->host)
            rc = dpt_error_set(err, DPT_ERUNTIME, "-e %zu: cannot allocate %zu bytes of host "
                               "memory on %s; lower -e", o->max_bytes, max_count * sizeof(float),
                               c->host);
    }
    return rc;
}

static void bench_stop(bench *b)
{
    dpt_reducer_free(b->world);
    free(b->host);
    if (b->dev)
        b->be.free(&b->be, b->dev);
    if (b->be.destroy)
        b->be.destroy(&b->be);
}

/* The three tables' groups: all ranks, the ranks of each node, one rank per node. */
static void make_groups(dpt_comm *c, bench_group groups[3])
{
    int max_local = c->local_size;
    DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &max_local, 1, MPI_INT, MPI_MAX, c->world));
    int leader = c->local_rank == 0;
    groups[0] = (bench_group){"world", 0, 0, 1, c->size, c->size};
    groups[1] = (bench_group){"intra", 1, c->node, 1, c->local_size, max_local};
    groups[2] = (bench_group){"inter", 1, leader ? 0 : 1, leader, leader ? c->n_nodes : 0,
                              c->n_nodes};
}

/* Why table k is not run (the same on every rank), or NULL. */
static const char *table_skip(const bench *b, int k, const bench_group *g)
{
    const dpt_comm *c = b->c;
    if (k == 2 && c->n_nodes == 1)
        return "one node: there is no inter-node communicator";
#if defined(DPT_HAVE_NCCL) && defined(DPT_CUDA_EMU_RUNTIME)
    /* the emulated NCCL (tests/cuda_emu) makes communicators over all of MPI_COMM_WORLD only */
    int partial = !g->member || g->size != c->size; /* whether g leaves out some rank */
    DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &partial, 1, MPI_INT, MPI_MAX, c->world));
    if (b->o->device == DPT_DEVICE_CUDA && partial)
        return "the NCCL host emulation makes communicators over all ranks only";
#else
    (void)g;
#endif
    return NULL;
}

/* Rank 0: the title of table k. */
static void print_title(const dpt_comm *c, int k, const bench_group *g, const char *skip)
{
    int min_local = c->local_size;
    DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &min_local, 1, MPI_INT, MPI_MIN, c->world));
    if (c->rank != 0)
        return;
    if (k == 0)
        printf("#\n# == world: all %d ranks, R = %d\n", c->size, g->R);
    else if (k == 1)
        printf("#\n# == intra: within each node, all %d node%s at once; R = %d ranks per "
               "node%s; time of the slowest node, #wrong over all nodes\n",
               c->n_nodes, c->n_nodes == 1 ? "" : "s", g->R,
               min_local != g->R ? " (the most on any node: nodes differ)" : "");
    else
        printf("#\n# == inter: across nodes, local rank 0 of each, R = %d\n", g->R);
    if (skip)
        printf("# skipped: %s\n", skip);
    fflush(stdout);
}

int dpt_bench_allreduce(dpt_comm *c, const dpt_bench_allreduce_opts *o, dpt_error *err)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.o = o;
    b.c = c;
    int rc = bench_start(&b, err);
    /* a rank that failed speaks for itself; the rest only learn the code */
    int all = dpt_comm_agree(c, rc);
    if (all != DPT_OK) {
        bench_stop(&b);
        return rc != DPT_OK ? rc : dpt_error_echo(err, all);
    }
    b.world = make_reducer(&b, c);
    print_header(&b);
    bench_group groups[3];
    make_groups(c, groups);
    long long wrong = 0;
    for (int k = 0; k < 3; k++) {
        const char *skip = table_skip(&b, k, &groups[k]);
        print_title(c, k, &groups[k], skip);
        if (!skip)
            wrong += run_table(&b, &groups[k]);
        if (c->rank == 0)
            fflush(stdout);
    }
    bench_stop(&b);
    rc = DPT_OK;
    if (c->rank == 0 && wrong > 0)
        rc = dpt_error_set(err, DPT_ERUNTIME, "bench allreduce: %lld result element%s differ%s "
                           "from the exact sum (see #wrong above)", wrong, wrong == 1 ? "" : "s",
                           wrong == 1 ? "s" : "");
    all = dpt_comm_agree(c, rc);
    return rc != DPT_OK ? rc : (all != DPT_OK ? dpt_error_echo(err, all) : DPT_OK);
}
