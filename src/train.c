/* The data-parallel trainer: device, communication, the step and evaluation. Rank r of R
 * computes gradients on rows [r*B/R, (r+1)*B/R) of each global batch B drawn from one
 * permutation that every rank derives from the seed (batch.c); the loss is scaled by 1/B, so
 * summing the gradients across ranks gives exactly the mean gradient one rank would compute
 * over the whole batch (up to summation order). The run around it is in run.c. */
#define _GNU_SOURCE
#include "trainer_impl.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif
#ifdef DPT_HAVE_NCCL
#include "nccl_comm.h"
#endif
#include "signals.h"
#include "util.h"

enum { EVAL_CHUNK = 256 }; /* rows per forward pass when evaluating */

int dpt_train_threads(const dpt_config *cfg, const dpt_comm *comm)
{
    if (cfg->run.threads > 0)
        return cfg->run.threads;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int avail = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    if (online < 1)
        online = 1;
    if (avail > 0 && avail < online) /* the launcher bound this rank: use what it was given */
        return avail;
    int t = (int)(online / (comm->node_ranks > 0 ? comm->node_ranks : 1)); /* all groups */
    return t > 0 ? t : 1;
}

/* One GPU per rank, chosen by the rank's index on its node (CUDA_VISIBLE_DEVICES is honoured by
 * the runtime), the CPU backend otherwise. --device auto takes the GPU when one is visible. */
static int start_backend(dpt_trainer *t, dpt_error *err)
{
    const dpt_config *cfg = t->cfg;
    int want_cuda = cfg->run.device == DPT_DEVICE_CUDA;
#ifdef DPT_HAVE_CUDA
    int ndev = cfg->run.device == DPT_DEVICE_CPU ? 0 : dpt_cuda_device_count();
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (want_cuda && ndev == 0)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "--device cuda: no GPU is visible on %s (CUDA_VISIBLE_DEVICES=%s); "
                             "use --device cpu or auto",
                             t->comm->host, visible ? visible : "unset");
    if (cfg->run.device == DPT_DEVICE_AUTO && ndev > 0)
        want_cuda = 1;
    if (cfg->run.device == DPT_DEVICE_AUTO && ndev == 0)
        t->device_note = "auto: no GPU visible";
    if (want_cuda) {
        if (t->comm->device >= ndev)
            return dpt_error_set(err, DPT_ERUNTIME,
                                 "%d ranks on %s but %d GPU%s visible: dptrain runs one rank per "
                                 "GPU (NCCL refuses two ranks on one GPU: \"Duplicate GPU "
                                 "detected\"); start at most %d ranks per host",
                                 t->comm->node_ranks, t->comm->host, ndev, ndev == 1 ? "" : "s",
                                 ndev);
        /* NCCL starts in dpt_trainer_init, once every rank's device is known to be good:
         * its set-up is collective, and a rank that failed here would leave the others in it */
        return dpt_cuda_backend_init(&t->be, t->comm->device,
                                     cfg->train.precision == DPT_PREC_TF32, err);
    }
#else
    if (want_cuda)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "--device cuda: this build of dptrain has no CUDA backend "
                             "(rebuild with the CUDA toolkit, or use --device cpu)");
#endif
    return dpt_cpu_backend_init(&t->be, t->threads);
}

/* Sums the gradient buffer across ranks after backward, in one piece (comm.overlap false):
 * NCCL on device memory, MPI on host memory (and, for a device backend built without NCCL,
 * through a host copy); hierarchical or compressed through the one-bucket dpt_buckets. */
static void allreduce_grads(dpt_trainer *t, float *grads, size_t n)
{
#ifdef DPT_HAVE_NCCL
    if (t->nccl) {
        dpt_nccl_allreduce_sum(t->nccl, grads, n, (cudaStream_t)dpt_cuda_backend_stream(&t->be),
                               t->cfg->run.comm_timeout_s);
        return;
    }
#endif
    if (t->comm->size == 1)
        return;
    float *host = grads;
    if (!t->be.host_memory) {
        host = malloc(n * sizeof(float));
        DPT_CHECK(host != NULL, "out of memory");
        t->be.download(&t->be, host, grads, n * sizeof(float));
    }
    if (t->buckets) {
        dpt_buckets_start(t->buckets, host, 0);
        dpt_buckets_wait(t->buckets);
    } else {
        dpt_comm_allreduce_sum(t->comm, host, n);
    }
    if (!t->be.host_memory) {
        t->be.upload(&t->be, grads, host, n * sizeof(float));
        t->be.sync(&t->be);
        free(host);
    }
}

/* The layer hook of backward with comm.overlap: a piece of layer `layer`'s gradients is final.
 * Starts the bucket that piece completes and, on the MPI path, moves the buckets in flight
 * along (Open MPI progresses non-blocking collectives only inside MPI calls). */
static void on_layer_grads(int layer, int block, void *ctx)
{
    dpt_trainer *t = ctx;
    int k = t->bucket_of_piece[t->piece0[layer] + block];
    float *grads = t->model.grads;
#ifdef DPT_HAVE_NCCL
    if (t->nccl) {
        if (k == 0)
            t->comm_start = dpt_now();
        if (k >= 0)
            dpt_nccl_allreduce_start(t->nccl, grads + t->bucket_off[k], t->bucket_n[k],
                                     (cudaStream_t)dpt_cuda_backend_stream(&t->be));
        return;
    }
#endif
    if (k >= 0)
        dpt_buckets_start(t->buckets, grads, k);
    dpt_buckets_progress(t->buckets);
}

/* After backward with comm.overlap: waits for every bucket (the exposed communication). */
static void finish_buckets(dpt_trainer *t)
{
#ifdef DPT_HAVE_NCCL
    if (t->nccl) {
        dpt_nccl_allreduce_finish(t->nccl, (cudaStream_t)dpt_cuda_backend_stream(&t->be),
                                  t->cfg->run.comm_timeout_s);
        return;
    }
#endif
    dpt_buckets_wait(t->buckets);
}

/* Gradient buckets: pieces of the gradient taken last first (the order in which backward
 * finishes them) until a bucket holds comm.bucket_mb MiB, as PyTorch DDP closes a bucket once it
 * reaches bucket_cap_mb (compute_bucket_assignment_by_size; Li et al., VLDB 2020). Unlike DDP,
 * with overlap a layer larger than a bucket is cut into blocks of output rows of about a
 * bucket each (model.grad_blocks), which backward finishes one by one: the first bucket of a
 * large layer leaves after a fraction of that layer's weight-gradient GEMM instead of all of it.
 * Bucket 0 ends with the step's statistics (they travel with the first allreduce). Without
 * overlap: one bucket, the whole buffer, layers whole. */
static void plan_buckets(dpt_trainer *t)
{
    dpt_model *m = &t->model;
    size_t end = m->n_params + DPT_GRAD_STATS;
    double cap_floats = t->cfg->comm.bucket_mb * 1048576.0 / sizeof(float);
    int pieces = 0;
    t->n_buckets = 0;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int O = m->widths[l + 1], I = m->widths[l];
        double layer = (double)O * I + O;
        int blocks = 1, budget = DPT_MAX_BUCKETS - pieces - l; /* >= 1 piece per layer below */
        if (t->overlap && layer > cap_floats) {
            double b = ceil(layer / cap_floats);
            blocks = b > O ? O : (int)b;
            if (blocks > budget)
                blocks = budget;
        }
        m->grad_blocks[l] = blocks;
        t->piece0[l] = pieces;
        for (int j = blocks - 1; j >= 0; j--) {
            int r0, r1;
            dpt_model_grad_block(m, l, j, &r0, &r1);
            int p = pieces + j;
            size_t start = m->w_off[l] + (size_t)r0 * I;
            t->bucket_of_piece[p] = -1;
            if ((l == 0 && j == 0) || (t->overlap && (double)(end - start) >= cap_floats)) {
                int k = t->n_buckets++;
                t->bucket_of_piece[p] = k;
                t->bucket_off[k] = start;
                t->bucket_n[k] = end - start;
                end = start;
            }
        }
        pieces += blocks;
    }
}

/* comm.*: which path the gradients take. Collective (dpt_buckets_init duplicates communicators). */
static void start_comm(dpt_trainer *t)
{
    const dpt_config *cfg = t->cfg;
    dpt_comm *comm = t->comm;
    t->overlap = cfg->comm.overlap && comm->size > 1 && (t->be.host_memory || t->nccl);
    plan_buckets(t);
    /* a single bucket would start when backward ends: nothing to overlap, so the plain
     * blocking allreduce after backward (MPI's tuned algorithms, no polling) */
    if (t->n_buckets == 1)
        t->overlap = 0;
    if (comm->size > 1 && !t->nccl &&
        (t->overlap || cfg->comm.algorithm != DPT_COMM_FLAT ||
         cfg->comm.compress != DPT_COMPRESS_NONE)) {
        t->buckets = calloc(1, sizeof *t->buckets);
        DPT_CHECK(t->buckets != NULL, "out of memory");
        dpt_buckets_algorithm a = cfg->comm.algorithm == DPT_COMM_HIERARCHICAL
                                      ? DPT_BUCKETS_HIERARCHICAL
                                  : cfg->comm.algorithm == DPT_COMM_RING ? DPT_BUCKETS_RING
                                                                         : DPT_BUCKETS_FLAT;
        /* overlapped buckets are polled by a progress thread while backward computes;
         * DPT_PROGRESS_THREAD=0 turns it off (polls between layers only), for comparison */
        const char *pt = getenv("DPT_PROGRESS_THREAD");
        dpt_buckets_init(t->buckets, comm, a, cfg->comm.compress == DPT_COMPRESS_BF16,
                         t->overlap && !(pt && strcmp(pt, "0") == 0));
        for (int k = 0; k < t->n_buckets; k++)
            dpt_buckets_add(t->buckets, t->bucket_off[k], t->bucket_n[k],
                            k == 0 ? DPT_GRAD_STATS : 0);
    }
}

static void sum_doubles(double *buf, int n, void *ctx) { dpt_comm_allreduce_sum_double(ctx, buf, n); }

void dpt_trainer_describe_comm(const dpt_trainer *t, char *out, size_t n)
{
    const dpt_config *cfg = t->cfg;
    const char *prec = cfg->comm.compress == DPT_COMPRESS_BF16 ? "bfloat16" : "fp32";
    if (t->comm->size == 1) {
        snprintf(out, n, "none (one rank)");
        return;
    }
    char how[160];
    if (t->overlap)
        snprintf(how, sizeof how, "%d bucket%s (comm.bucket_mb %g) overlapped with backward%s",
                 t->n_buckets, t->n_buckets == 1 ? "" : "s", cfg->comm.bucket_mb,
                 t->buckets && t->buckets->thread_on ? " (progress thread)" : "");
    else if (cfg->comm.overlap && t->n_buckets == 1)
        snprintf(how, sizeof how, "one allreduce after backward (the model fits one bucket of "
                 "comm.bucket_mb %g: nothing to overlap)", cfg->comm.bucket_mb);
    else
        snprintf(how, sizeof how, "one allreduce after backward");
    if (t->nccl)
        snprintf(out, n, "NCCL sum, %s", how);
    else if (cfg->comm.algorithm == DPT_COMM_HIERARCHICAL)
        snprintf(out, n, "MPI hierarchical (reduce in the node, allreduce among %d node "
                 "leaders, broadcast), %s, %s", t->comm->n_nodes, how, prec);
    else if (cfg->comm.algorithm == DPT_COMM_RING && t->comm->n_nodes == 1)
        snprintf(out, n, "MPI ring between nodes (one node here: flat allreduce), %s, %s", how,
                 prec);
    else if (cfg->comm.algorithm == DPT_COMM_RING)
        snprintf(out, n, "MPI ring between nodes (reduce in the node, ring of %d KiB eager "
                 "messages among %d node leaders, broadcast), %s, %s",
                 DPT_RING_CHUNK_BYTES / 1024, t->comm->n_nodes, how, prec);
    else
        snprintf(out, n, "MPI flat allreduce, %s, %s", how, prec);
}

/* One backend for all: with run.device auto, hosts with and without GPUs would otherwise reduce
 * gradients through different paths and never meet. Collective; the same verdict on every rank. */
static int check_one_backend(dpt_trainer *t, dpt_error *mine)
{
    dpt_comm *comm = t->comm;
    int on_host = t->be.host_memory ? 1 : 0;
    int any_host = dpt_comm_agree(comm, on_host), any_gpu = dpt_comm_agree(comm, 1 - on_host);
    if (any_host && any_gpu)
        return dpt_error_set(mine, DPT_EUSAGE,
                             "run.device is auto and some hosts see a GPU while others do not "
                             "(%s: %s): set run.device to cpu or cuda",
                             comm->host, on_host ? "no GPU" : "a GPU");
    return DPT_OK;
}

/* This rank's slice of the global batch, and the steps of an epoch: the fewest any rank's rows
 * allow (sharded data). Collective; the same verdict on every rank. */
static int slice_batches(dpt_trainer *t, dpt_error *mine)
{
    int R = t->comm->size, r = t->comm->rank;
    int B = t->cfg->train.batch_size;
    t->row0 = (int64_t)r * B / R;
    t->rows = (int)((int64_t)(r + 1) * B / R - t->row0);
    int64_t spe = t->data.sharded ? t->data.train.n / t->rows : t->data.train.n / B;
    t->steps_per_epoch = dpt_comm_min_i64(t->comm, spe);
    if (t->steps_per_epoch < 1)
        return dpt_error_set(mine, DPT_EUSAGE,
                             "the training split has %lld rows, fewer than one global batch of %d "
                             "(train.batch_size)",
                             (long long)t->data.train.n_total, B);
    return DPT_OK;
}

/* The model, its optimizer, the input buffers (a batch, or a chunk of rows when evaluating) and
 * the batch source that fills them. */
static int build_model(dpt_trainer *t, dpt_error *mine)
{
    const dpt_config *cfg = t->cfg;
    int max_rows = t->rows > EVAL_CHUNK ? t->rows : EVAL_CHUNK;
    int I = cfg->model.widths[0];
    int rc = dpt_model_init(&t->model, cfg, &t->be, max_rows, mine);
    if (rc == DPT_OK)
        rc = dpt_optim_init(&t->opt, cfg, &t->be, t->model.n_params, mine);
    if (rc != DPT_OK)
        return rc;
    t->xb = t->be.alloc(&t->be, (size_t)max_rows * I * sizeof(float));
    t->yb = t->be.alloc(&t->be, (size_t)max_rows * sizeof(int32_t));
    if (!t->xb || !t->yb)
        return dpt_error_set(mine, DPT_ERUNTIME, "out of memory for batch buffers");
    dpt_batch_spec spec = {
        .rows = t->rows, .I = I, .row0 = t->row0, .batch_size = cfg->train.batch_size,
        .steps_per_epoch = t->steps_per_epoch, .sharded = t->data.sharded,
        .shuffle = cfg->data.shuffle, .seed = cfg->run.seed, .rank = t->comm->rank,
        .resident = cfg->data.device_resident,
    };
    return dpt_batch_init(&t->batch, &spec, &t->be, &t->data.train, t->xb, t->yb, mine);
}

int dpt_trainer_init(dpt_trainer **out, const dpt_config *cfg, dpt_comm *comm, dpt_error *err)
{
    *out = NULL;
    int R = comm->size;
    int B = cfg->train.batch_size;
    if (B < R) /* every rank must have at least one row; the same verdict on every rank */
        return dpt_error_set(err, DPT_EUSAGE,
                             "train.batch_size %d is smaller than the number of ranks %d: "
                             "every rank needs at least one row of the global batch",
                             B, R);
    dpt_trainer *t = calloc(1, sizeof *t);
    DPT_CHECK(t != NULL, "out of memory");
    t->cfg = cfg;
    t->comm = comm;
    int rc = DPT_OK;
    dpt_error mine = {0};

    t->threads = dpt_train_threads(cfg, comm);
    rc = start_backend(t, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    if ((rc = check_one_backend(t, &mine)) != DPT_OK) /* every rank, and again at fail */
        goto fail;
#ifdef DPT_HAVE_NCCL
    if (!t->be.host_memory && comm->size > 1 && cfg->comm.algorithm != DPT_COMM_FLAT) {
        rc = dpt_error_set(&mine, DPT_EUSAGE,
                           "comm.algorithm: %s is for the MPI path (run.device cpu); "
                           "with the CUDA backend NCCL reduces the gradients and picks its own "
                           "rings and trees within and across nodes: use comm.algorithm flat",
                           dpt_comm_algorithm_name(cfg->comm.algorithm));
        goto fail;
    }
    if (!t->be.host_memory && comm->size > 1 && cfg->comm.compress != DPT_COMPRESS_NONE) {
        rc = dpt_error_set(&mine, DPT_EUSAGE,
                           "comm.compress: bf16 is not supported with the CUDA backend (the "
                           "host emulation of NCCL that CI tests it against has no "
                           "ncclBfloat16): use comm.compress none, or run.device cpu");
        goto fail;
    }
    if (!t->be.host_memory && comm->size > 1) {
        dpt_nccl *n = calloc(1, sizeof *n);
        DPT_CHECK(n != NULL, "out of memory");
        dpt_nccl_init(n, comm);
        t->nccl = n;
    }
#endif

    rc = dpt_data_load(cfg, comm->rank, R, sum_doubles, comm, &t->data, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    if ((rc = slice_batches(t, &mine)) != DPT_OK)
        goto fail;
    rc = build_model(t, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    start_comm(t);
    *out = t;
    return DPT_OK;

fail:
    /* every rank returns the agreed failure; a rank without its own message says which rank */
    rc = dpt_comm_agree_error(comm, rc, &mine, err);
    dpt_trainer_free(t);
    return rc;
}

void dpt_trainer_free(dpt_trainer *t)
{
    if (!t)
        return;
    if (t->buckets) {
        dpt_buckets_free(t->buckets);
        free(t->buckets);
    }
    dpt_batch_free(&t->batch);
    if (t->be.free) {
        t->be.free(&t->be, t->xb);
        t->be.free(&t->be, t->yb);
        dpt_optim_free(&t->opt);
        dpt_model_free(&t->model);
#ifdef DPT_HAVE_NCCL
        if (t->nccl) {
            dpt_nccl_free(t->nccl);
            free(t->nccl);
        }
#endif
        if (t->be.destroy)
            t->be.destroy(&t->be);
    }
    dpt_data_free(&t->data);
    free(t);
}

int dpt_trainer_step(dpt_trainer *t, int epoch, int64_t step_in_epoch, int64_t step, double lr)
{
    const dpt_config *cfg = t->cfg;
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    int C = m->widths[m->n_layers];
    double t0 = dpt_now();

    const float *xb;
    const int32_t *yb;
    dpt_batch_next(&t->batch, epoch, step_in_epoch, step, &xb, &yb);
    double t1 = dpt_now();

    dpt_dropout drop = {(float)cfg->model.dropout, cfg->run.seed, (uint64_t)step, t->row0};
    const float *logits = dpt_model_forward(m, xb, t->rows, &drop);
    float stats[DPT_GRAD_STATS] = {0};
    double loss_sum = 0.0, correct = 0.0;
    float *dlogits = m->d[0];
    be->loss(be, logits, yb, t->rows, C, m->loss, 1.0f / (float)cfg->train.batch_size, dlogits,
             &loss_sum, &correct);
    /* the statistics sit after the gradients and travel with the first bucket, which starts
     * as soon as the last layer's gradients are done: they are written before backward */
    stats[0] = (float)loss_sum;
    stats[1] = (float)correct;
    stats[2] = (float)t->rows;
    stats[3] = dpt_signals_pending() ? 1.0f : 0.0f;
    be->upload(be, m->grads + m->n_params, stats, sizeof stats);
    dpt_model_backward(m, xb, dlogits, t->rows, &drop, t->overlap ? on_layer_grads : NULL, t);
    dpt_batch_done(&t->batch, step); /* backward was the last reader of this batch */
    be->sync(be);
    double t2 = dpt_now();

    if (t->split_wait && t->comm->size > 1) {
        if (t->overlap && t->buckets) { /* buckets in flight: they move on while it waits */
            dpt_buckets_barrier(t->buckets, t->comm->world);
        } else {
            if (t->buckets)
                dpt_buckets_lock(t->buckets);
            DPT_MPI_CHECK(MPI_Barrier(t->comm->world));
            if (t->buckets)
                dpt_buckets_unlock(t->buckets);
        }
        double tw = dpt_now();
        t->t_wait += tw - t2;
        t2 = tw;
    }
    /* gradients and the step's statistics: in buckets already under way (overlap), or in one
     * allreduce now */
    if (t->overlap)
        finish_buckets(t);
    else
        allreduce_grads(t, m->grads, m->n_params + DPT_GRAD_STATS);
    double t3 = dpt_now();
    if (t->overlap && t->buckets)
        t->t_comm_total += dpt_buckets_busy_s(t->buckets);
    else if (t->overlap)
        t->t_comm_total += t3 - t->comm_start; /* NCCL: queued to done, seen from the host */
    else
        t->t_comm_total += t3 - t2;

    be->download(be, stats, m->grads + m->n_params, sizeof stats);
    t->last_loss = stats[0];
    t->last_correct = stats[1];
    t->stop_requested = stats[3] > 0.0f;
    int diverged = !isfinite(stats[0]);
    if (!diverged)
        dpt_optim_step(&t->opt, cfg, m->params, m->grads, step, lr);
    be->sync(be);
    double t4 = dpt_now();

    t->t_data += t1 - t0;
    t->t_compute += (t2 - t1) + (t4 - t3);
    t->t_comm += t3 - t2;
    return diverged ? DPT_STEP_DIVERGED : DPT_STEP_OK;
}

void dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, double *loss, double *accuracy)
{
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    int I = m->widths[0], C = m->widths[m->n_layers];
    int64_t lo = 0, hi = ds->n;
    if (!t->data.sharded) { /* replicated: each rank evaluates its slice of the split */
        lo = (int64_t)t->comm->rank * ds->n / t->comm->size;
        hi = (int64_t)(t->comm->rank + 1) * ds->n / t->comm->size;
    }
    double sums[3] = {0.0, 0.0, (double)(hi - lo)};
    for (int64_t r = lo; r < hi; r += EVAL_CHUNK) {
        int rows = (int)(hi - r < EVAL_CHUNK ? hi - r : EVAL_CHUNK);
        const float *x = ds->x + (size_t)r * I;
        const int32_t *y = ds->y + r;
        if (!be->host_memory) {
            be->upload(be, t->xb, x, (size_t)rows * I * sizeof(float));
            be->upload(be, t->yb, y, (size_t)rows * sizeof(int32_t));
            x = t->xb;
            y = t->yb;
        }
        const float *logits = dpt_model_forward(m, x, rows, NULL);
        be->loss(be, logits, y, rows, C, m->loss, 0.0f, NULL, &sums[0], &sums[1]);
    }
    dpt_comm_allreduce_sum_double(t->comm, sums, 3);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
}

void dpt_trainer_stats(const dpt_trainer *t, dpt_step_stats *out)
{
    out->t_data = t->t_data;
    out->t_compute = t->t_compute;
    out->t_comm = t->t_comm;
    out->t_comm_total = t->t_comm_total;
    out->t_wait = t->t_wait;
    out->last_loss = t->last_loss;
    out->last_correct = t->last_correct;
    out->stop_requested = t->stop_requested;
}

void dpt_trainer_reset_stats(dpt_trainer *t)
{
    t->t_data = t->t_compute = t->t_comm = t->t_comm_total = t->t_wait = 0.0;
}

int64_t dpt_trainer_steps_per_epoch(const dpt_trainer *t) { return t->steps_per_epoch; }

void dpt_trainer_set_split_wait(dpt_trainer *t, int on) { t->split_wait = on; }
