/* dptrain bench train: times the real training step (dpt_trainer_step) with no evaluation or
 * output, on all ranks and then on rank 0 alone with the same per-rank batch, and times the
 * step's GEMMs alone, which bound what any trainer can reach on this machine. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "device.h"
#include "trace.h"
#include "train.h"
#include "trainer_impl.h" /* to hand the trainer the trace, as run.c does */
#include "util.h"

static int cmp_double(const void *a, const void *b);

typedef struct {
    double samples_per_s, step_s, compute_s, wait_s, comm_s, comm_total_s, data_s;
    /* a device backend's counts per timed step (has_counts): launches, copies and their bytes
     * averaged; host synchronizations in the step with the fewest and with the most */
    int has_counts;
    double launches, copies, copy_bytes;
    long long syncs_min, syncs_max;
    /* the GPU events' times per step (has_times): compute against communication */
    int has_times;
    dpt_device_times gpu;
} bench_row;

/* Adds one step's counts (the backend's totals before and after it) to the row. */
static void count_step(bench_row *row, const dpt_device_counts *a, const dpt_device_counts *b,
                       int first)
{
    long long syncs = b->syncs - a->syncs;
    row->launches += (double)(b->launches - a->launches);
    row->copies += (double)(b->copies - a->copies);
    row->copy_bytes += (double)(b->copy_bytes - a->copy_bytes);
    row->syncs_min = first || syncs < row->syncs_min ? syncs : row->syncs_min;
    row->syncs_max = first || syncs > row->syncs_max ? syncs : row->syncs_max;
}

static int time_steps(const dpt_config *cfg, dpt_comm *comm, int steps, int warmup, bench_row *row,
                      char *comm_line, size_t comm_n, dpt_error *err)
{
    dpt_trainer *t;
    int rc = dpt_trainer_init(&t, cfg, comm, err);
    if (rc != DPT_OK)
        return rc;
    if (comm_line)
        dpt_trainer_describe_comm(t, comm_line, comm_n);
    dpt_trainer_set_split_wait(t, 1);
    /* run.trace: the all-ranks row's steps, warm-up included (the spans carry the step) */
    if (comm_line && (rc = dpt_trace_open(&t->trace, comm, cfg->run.trace, cfg->run.trace_steps,
                                          err)) != DPT_OK) {
        dpt_trainer_free(t);
        return rc;
    }
    /* GPU events in the timed steps only, read after them: no host wait inside a step */
    dpt_device_timing_arm(&t->be, steps);
    int64_t spe = dpt_trainer_steps_per_epoch(t);
    double lr = cfg->train.lr;
    int64_t step = 0;
    dpt_device_counts before, after;
    for (int i = 0; i < warmup + steps; i++, step++) {
        if (i == warmup) {
            MPI_Barrier(comm->world);
            dpt_trainer_reset_stats(t);
            row->step_s = dpt_now();
        }
        row->has_counts = dpt_trainer_device_counts(t, &before) == 0;
        dpt_device_timing_slot(&t->be, i - warmup);
        if (dpt_trainer_step(t, (int)(step / spe), step % spe, step, lr) != DPT_STEP_OK) {
            dpt_device_timing_arm(&t->be, 0);
            dpt_trace_free(t->trace);
            dpt_trainer_free(t);
            return dpt_error_set(err, DPT_ERUNTIME, "the loss diverged during the benchmark: lower train.lr");
        }
        if (row->has_counts && i >= warmup && dpt_trainer_device_counts(t, &after) == 0)
            count_step(row, &before, &after, i == warmup);
    }
    MPI_Barrier(comm->world);
    double total = dpt_now() - row->step_s;
    row->has_times = dpt_device_timing_read(&t->be, &row->gpu) == 0 && row->gpu.steps > 0;
    dpt_device_timing_arm(&t->be, 0);
    dpt_step_stats st;
    dpt_trainer_stats(t, &st);
    row->step_s = total / steps;
    row->samples_per_s = (double)steps * cfg->train.batch_size / total;
    row->compute_s = st.t_compute / steps;
    row->comm_s = st.t_comm / steps;
    row->comm_total_s = st.t_comm_total / steps;
    row->wait_s = st.t_wait / steps;
    row->data_s = st.t_data / steps;
    row->launches /= steps;
    row->copies /= steps;
    row->copy_bytes /= steps;
    rc = dpt_trace_write(t->trace, err);
    dpt_trace_free(t->trace);
    dpt_trainer_free(t);
    return rc;
}

/* The GEMMs of one training step alone (forward, weight gradients, input gradients except the
 * first layer's), on the CPU backend with the given threads: samples/s no trainer can exceed. */
static double gemm_cap(const dpt_config *cfg, int rows, int threads, int reps, double *flops_per_sample)
{
    dpt_backend be;
    dpt_cpu_backend_init(&be, threads);
    int L = cfg->model.n_layers, maxw = 0;
    size_t nw = 0;
    for (int l = 0; l <= L; l++)
        if (cfg->model.widths[l] > maxw) maxw = cfg->model.widths[l];
    for (int l = 0; l < L; l++)
        nw += (size_t)cfg->model.widths[l] * cfg->model.widths[l + 1];
    float *w = be.alloc(&be, nw * sizeof(float)), *gw = be.alloc(&be, nw * sizeof(float));
    float *act = be.alloc(&be, (size_t)(L + 1) * rows * maxw * sizeof(float));
    float *d = be.alloc(&be, (size_t)2 * rows * maxw * sizeof(float));
    double flops = 0;
    /* the median of the repetitions: one slow repetition (another process woke up) moves the
     * mean of a short run but not the median */
    double *times = calloc((size_t)reps, sizeof(double));
    DPT_CHECK(times != NULL, "out of memory");
    for (int rep = -2; rep < reps; rep++) {
        double t0 = dpt_now();
        size_t off = 0;
        for (int l = 0; l < L; l++) {
            int I = cfg->model.widths[l], O = cfg->model.widths[l + 1];
            be.gemm(&be, 0, 1, rows, O, I, 1.0f, act + (size_t)l * rows * maxw, I, w + off, I, 0.0f,
                    act + (size_t)(l + 1) * rows * maxw, O);
            off += (size_t)I * O;
        }
        for (int l = L - 1; l >= 0; l--) {
            int I = cfg->model.widths[l], O = cfg->model.widths[l + 1];
            off -= (size_t)I * O;
            be.gemm(&be, 1, 0, O, I, rows, 1.0f, d, O, act + (size_t)l * rows * maxw, I, 0.0f,
                    gw + off, I);
            if (l > 0)
                be.gemm(&be, 0, 0, rows, I, O, 1.0f, d, O, w + off, I, 0.0f, d + (size_t)rows * maxw, I);
            if (rep == 0)
                flops += 2.0 * I * O * rows * (l > 0 ? 2 : 1);
        }
        if (rep == 0)
            for (int l = 0; l < L; l++)
                flops += 2.0 * cfg->model.widths[l] * cfg->model.widths[l + 1] * rows;
        if (rep >= 0)
            times[rep] = dpt_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    double per_step = times[reps / 2];
    free(times);
    *flops_per_sample = flops / rows;
    be.free(&be, w);
    be.free(&be, gw);
    be.free(&be, act);
    be.free(&be, d);
    return rows / per_step;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_row(int ranks, int nodes, int batch, const bench_row *r, double eff)
{
    printf("%7d %6d %8d %11.1f %9.3f %10.3f %9.3f %9.3f %13.3f %9.3f %10.1f%%\n", ranks, nodes,
           batch, r->samples_per_s, 1e3 * r->step_s, 1e3 * r->compute_s, 1e3 * r->wait_s,
           1e3 * r->comm_s, 1e3 * r->comm_total_s, 1e3 * r->data_s, 100.0 * eff);
}

/* Waits for every rank of comm without spinning: the ranks left out of a row would otherwise
 * poll MPI at full speed for the whole measurement, on the same cores as the ranks being timed
 * when they share a machine (on a 2-core box, 4 ranks: the one-rank row ran at half speed). */
static void barrier_sleeping(dpt_comm *comm)
{
    const struct timespec nap = {0, 1000000L}; /* 1 ms: after the timing, so it costs nothing */
    MPI_Request req;
    int done = 0;
    DPT_MPI_CHECK(MPI_Ibarrier(comm->world, &req));
    for (;;) {
        DPT_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done)
            return;
        nanosleep(&nap, NULL);
    }
}

/* Times the step on the first n ranks of comm (the others wait), with the global batch given.
 * On rank 0: the row and the node count of those n ranks. Collective over comm. */
static int time_on_first(const dpt_config *cfg, dpt_comm *comm, int n, int batch, int steps,
                         int warmup, int threads, bench_row *row, int *nodes, char *comm_line,
                         size_t comm_n, dpt_error *err)
{
    dpt_comm sub;
    int in = comm->rank < n;
    dpt_comm_split(comm, in ? 0 : 1, &sub);
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (in) {
        dpt_config c = *cfg;
        c.train.batch_size = batch;
        c.run.threads = threads;
        rc = time_steps(&c, &sub, steps, warmup, row, n == comm->size ? comm_line : NULL, comm_n,
                        &mine);
        *nodes = sub.n_nodes;
    }
    dpt_comm_free(&sub);
    barrier_sleeping(comm);
    /* a rank that failed keeps its reason (main prints it), the rest echo */
    return dpt_comm_agree_error(comm, rc, &mine, err);
}

/* What the rank counts measured, for the report. */
typedef struct {
    int counts[40], n_counts;   /* the rank counts timed, in the order they ran */
    bench_row rows[40];
    int nodes[40];
    int threads;                /* BLAS threads per rank at every count */
    int B, per_rank;            /* train.batch_size, and its rows per rank with all ranks */
    int i_one;                  /* the one-rank row */
    char comm_line[320];        /* how gradients travel with all ranks */
} bench_results;

/* The rank counts: all ranks and one (the default), or 1, 2, 4, ... and all (--scaling). */
static void choose_counts(int R, dpt_bench_scaling scaling, bench_results *br)
{
    br->n_counts = 0;
    if (scaling == DPT_BENCH_SCALING_NONE) {
        br->counts[br->n_counts++] = R;
        if (R > 1)
            br->counts[br->n_counts++] = 1;
    } else {
        for (int n = 1; n < R && br->n_counts < 38; n *= 2)
            br->counts[br->n_counts++] = n;
        br->counts[br->n_counts++] = R;
    }
    br->i_one = 0;
    for (int i = 0; i < br->n_counts; i++)
        if (br->counts[i] == 1)
            br->i_one = i;
}

/* The global batch of row i: the same at every count (strong scaling), or per_rank rows per
 * rank (weak). */
static int batch_of(const dpt_bench_train_opts *o, const bench_results *br, int i)
{
    return o->scaling == DPT_BENCH_SCALING_STRONG ? br->B : br->counts[i] * br->per_rank;
}

static double efficiency(const bench_results *br, int i)
{
    return br->rows[i].samples_per_s / (br->counts[i] * br->rows[br->i_one].samples_per_s);
}

static void print_header(const dpt_config *cfg, const dpt_bench_train_opts *o, int R,
                         const char *hosts, const bench_results *br)
{
    int threads = br->threads;
    char widths[256] = "";
    for (int l = 0; l <= cfg->model.n_layers && strlen(widths) < 200; l++)
        snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "%s%d", l ? "-" : "",
                 cfg->model.widths[l]);
    const char *mode = o->scaling == DPT_BENCH_SCALING_STRONG ? "strong" : "weak";
    printf("# dptrain bench train %s%s%s\n", o->config_path,
           o->scaling == DPT_BENCH_SCALING_NONE ? "" : " --scaling ", o->scaling == DPT_BENCH_SCALING_NONE ? "" : mode);
    if (o->scaling == DPT_BENCH_SCALING_STRONG)
        printf("# model %s, %s, strong scaling: global batch %d at every rank count, %d step%s "
               "after %d warmup\n", widths, dpt_optimizer_name(cfg->train.optimizer), br->B, o->steps,
               o->steps == 1 ? "" : "s", o->warmup);
    else
        printf("# model %s, %s, weak scaling: %d rows per rank at every rank count, %d step%s "
               "after %d warmup\n", widths, dpt_optimizer_name(cfg->train.optimizer), br->per_rank,
               o->steps, o->steps == 1 ? "" : "s", o->warmup);
    if (br->rows[br->i_one].has_counts)
        printf("# ranks %d on %s; cuda backend, one GPU per rank; the first N ranks run each row, "
               "the others wait\n", R, hosts);
    else
        printf("# ranks %d on %s; cpu backend, %d BLAS thread%s per rank (%s); the first N ranks "
               "run each row, the others wait\n", R, hosts, threads, threads > 1 ? "s" : "",
               DPT_BLAS_NAME);
    printf("# gradients (all ranks): %s\n", br->comm_line);
    printf("# times per step on rank 0: compute = forward, backward and update; wait = for the "
           "slowest rank to finish backward (a timed barrier); comm = EXPOSED communication (after "
           "backward and the barrier,\n# waiting for the gradient allreduces); comm_total = from "
           "the first bucket's start to the last one's end, overlapped with backward or not\n# "
           "(compare a run with --set comm.overlap=false); data = batch gathering; efficiency = "
           "samples/s / (ranks x one-rank samples/s)\n");
    if (br->rows[br->i_one].has_counts)
        printf("# device work (counted by the CUDA backend where it makes the calls): launches = "
               "kernels, cuBLAS calls and memsets; host syncs = stream, event and device\n# "
               "synchronizations, blocking copies and polled waits; copies = host<->device. The "
               "statistics are read every train.log_every steps\n# and at an epoch's last step; "
               "times are the host's, which does not wait for the device between reads\n"
               "# GPU events (cudaEventElapsedTime, read after the timed steps): compute = forward + "
               "backward + update on the compute stream; comm = the allreduces on the\n# "
               "communication stream; overlapped = the part of comm inside forward + backward; "
               "exposed = comm - overlapped (what the update waited for)\n");
    printf("%7s %6s %8s %11s %9s %10s %9s %9s %13s %9s %11s\n", "ranks", "nodes", "batch",
           "samples/s", "step_ms", "compute_ms", "wait_ms", "comm_ms", "comm_total_ms", "data_ms",
           "efficiency");
}

/* The GPU events' line of one row (a fixed format: scripts/gpu_check.sh reads it). */
static void print_gpu_times(int ranks, const dpt_device_times *g)
{
    char comm[200];
    if (g->comm)
        snprintf(comm, sizeof comm, "comm %.3f ms, overlapped %.3f ms, exposed %.3f ms%s",
                 g->comm_ms, g->overlapped_ms, g->exposed_ms,
                 g->comm_untimed ? " (allreduces past the first 32 of a step untimed)" : "");
    else
        snprintf(comm, sizeof comm, "comm not timed (no allreduce on the device's streams: one "
                 "rank, or the MPI path)");
    printf("# GPU events per step on rank 0, %d rank%s: compute %.3f ms (forward+backward %.3f, "
           "update %.3f), %s; %s\n", ranks, ranks == 1 ? "" : "s", g->compute_ms, g->fwd_bwd_ms,
           g->optim_ms, comm, g->graph ? "the CUDA Graph's last replay"
                                       : g->steps == 1 ? "1 timed step" : "mean of the timed steps");
}

static void print_table(const dpt_bench_train_opts *o, const bench_results *br, double cap,
                        double flops_per_sample)
{
    /* ascending rank counts */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < br->n_counts; i++) {
            if ((pass == 0) != (i == br->i_one))
                continue;
            print_row(br->counts[i], br->nodes[i], batch_of(o, br, i), &br->rows[i],
                      efficiency(br, i));
        }
    for (int i = 0; i < br->n_counts; i++) {
        const bench_row *r = &br->rows[i];
        if (r->has_counts)
            printf("# device work per step on rank 0, %d rank%s: %.1f launches, %lld host syncs "
                   "(%lld in a step that reads the statistics), %.1f copies (%.0f bytes)\n",
                   br->counts[i], br->counts[i] == 1 ? "" : "s", r->launches, r->syncs_min,
                   r->syncs_max, r->copies, r->copy_bytes);
        if (r->has_times)
            print_gpu_times(br->counts[i], &r->gpu);
    }
    printf("# GEMM-only cap, one rank: %.1f samples/s (%.2f MFLOP/sample, %.1f GFLOP/s); "
           "one rank reaches %.1f%% of it\n",
           cap, flops_per_sample / 1e6, cap * flops_per_sample / 1e9,
           100.0 * br->rows[br->i_one].samples_per_s / cap);
    fflush(stdout);
}

/* --csv: one line per rank count, after a header line when the file is new. */
static int append_csv(const dpt_bench_train_opts *o, const bench_results *br, dpt_error *err)
{
    const char *mode = o->scaling == DPT_BENCH_SCALING_STRONG ? "strong" : "weak";
    FILE *f = fopen(o->csv, "a");
    if (!f)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot append to '%s'", o->csv);
    if (ftell(f) == 0)
        fprintf(f, "label,mode,config,ranks,nodes,batch,samples_per_s,step_ms,compute_ms,"
                   "wait_ms,comm_ms,comm_total_ms,data_ms,efficiency\n");
    for (int i = 0; i < br->n_counts; i++) {
        const bench_row *r = &br->rows[i];
        fprintf(f, "%s,%s,%s,%d,%d,%d,%.2f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n",
                o->label ? o->label : "", mode, o->config_path, br->counts[i], br->nodes[i],
                batch_of(o, br, i), r->samples_per_s, 1e3 * r->step_s, 1e3 * r->compute_s,
                1e3 * r->wait_s, 1e3 * r->comm_s, 1e3 * r->comm_total_s, 1e3 * r->data_s,
                efficiency(br, i));
    }
    if (fclose(f) != 0)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot write '%s'", o->csv);
    return DPT_OK;
}

int dpt_bench_train(const dpt_config *cfg, dpt_comm *comm, const dpt_bench_train_opts *o,
                    dpt_error *err)
{
    int R = comm->size;
    bench_results br;
    memset(&br, 0, sizeof br);
    br.B = cfg->train.batch_size;
    br.per_rank = br.B / R;
    if (br.per_rank < 1)
        return dpt_error_set(err, DPT_EUSAGE, "train.batch_size %d is smaller than the %d ranks",
                             br.B, R);
    choose_counts(R, o->scaling, &br);
    /* every count with the BLAS threads all ranks get (cores per node / ranks per node), so that
     * one rank does not run on all the cores the full job shares */
    br.threads = dpt_train_threads(cfg, comm);
    for (int i = 0; i < br.n_counts; i++) {
        int rc = time_on_first(cfg, comm, br.counts[i], batch_of(o, &br, i), o->steps, o->warmup,
                               br.threads, &br.rows[i], &br.nodes[i], br.comm_line,
                               sizeof br.comm_line, err);
        if (rc != DPT_OK)
            return rc;
    }
    char hosts[1024] = "";
    dpt_comm_hosts(comm, hosts, sizeof hosts);
    if (comm->rank != 0)
        return DPT_OK;

    double flops_per_sample = 0;
    double cap = gemm_cap(cfg, br.per_rank, br.threads, o->steps, &flops_per_sample);
    print_header(cfg, o, R, hosts, &br);
    print_table(o, &br, cap, flops_per_sample);
    return o->csv ? append_csv(o, &br, err) : DPT_OK;
}
