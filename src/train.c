/* The data-parallel training step and loop. Rank r of R computes gradients on rows
 * [r*B/R, (r+1)*B/R) of each global batch B drawn from one permutation that every rank derives
 * from the seed; the loss is scaled by 1/B, so summing the gradients across ranks gives exactly
 * the mean gradient one rank would compute over the whole batch (up to summation order). */
#define _GNU_SOURCE
#include "train.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif
#ifdef DPT_HAVE_NCCL
#include "nccl_comm.h"
#endif
#include "metrics.h"
#include "rng.h"
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

int dpt_trainer_init(dpt_trainer *t, const dpt_config *cfg, dpt_comm *comm, dpt_error *err)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->comm = comm;
    t->perm_epoch = -1;
    int R = comm->size, r = comm->rank;
    int B = cfg->train.batch_size;
    int rc = DPT_OK;
    dpt_error mine = {0};

    if (B < R) /* every rank must have at least one row; the same verdict on every rank */
        return dpt_error_set(err, DPT_EUSAGE,
                             "train.batch_size %d is smaller than the number of ranks %d: "
                             "every rank needs at least one row of the global batch",
                             B, R);
    t->threads = dpt_train_threads(cfg, comm);
    rc = start_backend(t, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    /* one backend for all: with run.device auto, hosts with and without GPUs would otherwise
     * reduce gradients through different paths and never meet */
    int on_host = t->be.host_memory ? 1 : 0;
    int any_host = dpt_comm_agree(comm, on_host), any_gpu = dpt_comm_agree(comm, 1 - on_host);
    if (any_host && any_gpu) { /* every rank takes this branch, and agrees again at fail */
        rc = dpt_error_set(&mine, DPT_EUSAGE,
                           "run.device is auto and some hosts see a GPU while others do not "
                           "(%s: %s): set run.device to cpu or cuda",
                           comm->host, on_host ? "no GPU" : "a GPU");
        goto fail;
    }
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

    const dpt_data_spec data_spec = dpt_data_spec_from_config(cfg);
    rc = dpt_data_load(&data_spec, r, R, sum_doubles, comm, &t->data, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;

    t->row0 = (int64_t)r * B / R;
    t->rows = (int)((int64_t)(r + 1) * B / R - t->row0);
    int64_t spe = t->data.sharded ? t->data.train.n / t->rows : t->data.train.n / B;
    t->steps_per_epoch = dpt_comm_min_i64(comm, spe);
    if (t->steps_per_epoch < 1) {
        rc = dpt_error_set(&mine, DPT_EUSAGE,
                           "the training split has %lld rows, fewer than one global batch of %d "
                           "(train.batch_size)",
                           (long long)t->data.train.n_total, B);
        goto fail;
    }

    int max_rows = t->rows > EVAL_CHUNK ? t->rows : EVAL_CHUNK;
    int I = cfg->model.widths[0];
    const dpt_model_spec model_spec = dpt_model_spec_from_config(cfg);
    const dpt_optim_params optim_params = dpt_optim_params_from_config(cfg);
    rc = dpt_model_init(&t->model, &model_spec, &t->be, max_rows, &mine);
    if (rc == DPT_OK)
        rc = dpt_optim_init(&t->opt, &optim_params, &t->be, t->model.n_params, &mine);
    if (rc == DPT_OK) {
        t->perm = malloc((size_t)(t->data.train.n > 0 ? t->data.train.n : 1) * sizeof(int64_t));
        t->idx = t->be.alloc(&t->be, (size_t)t->rows * sizeof(int64_t));
        t->xb = t->be.alloc(&t->be, (size_t)max_rows * I * sizeof(float));
        t->yb = t->be.alloc(&t->be, (size_t)max_rows * sizeof(int32_t));
        if (!t->perm || !t->idx || !t->xb || !t->yb)
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "out of memory for batch buffers");
    }
    if (rc == DPT_OK && t->be.host_memory) {
        t->x_train = t->data.train.x;
        t->y_train = t->data.train.y;
    } else if (rc == DPT_OK) {
        /* the training rows go to the device once when they fit (each batch is then gathered
         * there by index); otherwise batches are staged through pinned host memory */
        size_t n = (size_t)t->data.train.n;
        if (cfg->data.device_resident != DPT_RESIDENT_OFF) {
            t->x_dev = t->be.alloc(&t->be, (n ? n : 1) * I * sizeof(float));
            t->y_dev = t->be.alloc(&t->be, (n ? n : 1) * sizeof(int32_t));
        }
        if ((!t->x_dev || !t->y_dev) && cfg->data.device_resident == DPT_RESIDENT_ON) {
            rc = dpt_error_set(&mine, DPT_ERUNTIME,
                               "data.device_resident: on, but the training set (%zu rows x %d "
                               "features) does not fit in %s memory: use auto or off",
                               n, I, t->be.name);
        } else if (!t->x_dev || !t->y_dev) {
            t->be.free(&t->be, t->x_dev);
            t->be.free(&t->be, t->y_dev);
            t->x_dev = NULL;
            t->y_dev = NULL;
            t->staged = 1;
            for (int k = 0; k < 2 && rc == DPT_OK; k++) {
                t->pin_x[k] = t->be.alloc_pinned(&t->be, (size_t)t->rows * I * sizeof(float));
                t->pin_y[k] = t->be.alloc_pinned(&t->be, (size_t)t->rows * sizeof(int32_t));
                t->stage_x[k] = t->be.alloc(&t->be, (size_t)t->rows * I * sizeof(float));
                t->stage_y[k] = t->be.alloc(&t->be, (size_t)t->rows * sizeof(int32_t));
                t->staged_step[k] = -1;
                if (!t->pin_x[k] || !t->pin_y[k] || !t->stage_x[k] || !t->stage_y[k])
                    rc = dpt_error_set(&mine, DPT_ERUNTIME,
                                       "out of memory for the staged batch buffers");
            }
        } else {
            t->be.upload(&t->be, t->x_dev, t->data.train.x, n * I * sizeof(float));
            t->be.upload(&t->be, t->y_dev, t->data.train.y, n * sizeof(int32_t));
            t->x_train = t->x_dev;
            t->y_train = t->y_dev;
        }
    }
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    start_comm(t);
    return DPT_OK;

fail:
    /* every rank returns the agreed failure; a rank without its own message says which rank */
    rc = dpt_comm_agree_error(comm, rc, &mine, err);
    dpt_trainer_free(t);
    return rc;
}

void dpt_trainer_free(dpt_trainer *t)
{
    if (t->buckets) {
        dpt_buckets_free(t->buckets);
        free(t->buckets);
    }
    if (t->be.free) {
        t->be.free(&t->be, t->idx);
        t->be.free(&t->be, t->xb);
        t->be.free(&t->be, t->yb);
        t->be.free(&t->be, t->x_dev);
        t->be.free(&t->be, t->y_dev);
        for (int k = 0; k < 2; k++) {
            t->be.free_pinned(&t->be, t->pin_x[k]);
            t->be.free_pinned(&t->be, t->pin_y[k]);
            t->be.free(&t->be, t->stage_x[k]);
            t->be.free(&t->be, t->stage_y[k]);
        }
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
    free(t->perm);
    dpt_data_free(&t->data);
    memset(t, 0, sizeof *t);
}

/* This epoch's order of the training rows: Fisher-Yates driven by the counter-based RNG keyed
 * by (seed, epoch), so every rank (and a resumed run) draws the same permutation. Sharded data
 * is shuffled within each rank's shard. */
static void shuffle(dpt_trainer *t, int epoch)
{
    int64_t n = t->data.train.n;
    for (int64_t i = 0; i < n; i++)
        t->perm[i] = i;
    if (t->cfg->data.shuffle) {
        uint64_t key = t->cfg->run.seed;
        if (t->data.sharded)
            key = dpt_rng_mix(key ^ (uint64_t)(t->comm->rank + 1));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)dpt_rng_below(key, DPT_RNG_SHUFFLE, ((uint64_t)epoch << 40) | (uint64_t)i,
                                               (uint64_t)i + 1);
            int64_t tmp = t->perm[i];
            t->perm[i] = t->perm[j];
            t->perm[j] = tmp;
        }
    }
    t->perm_epoch = epoch;
}

/* Staged batches: the host gathers batch `step` (its rows of epoch `epoch`, in-epoch index s)
 * into slot's pinned buffers and queues their copy to the device, which runs on the copy stream
 * while the compute stream works on the other slot. */
static void stage_batch(dpt_trainer *t, int epoch, int64_t s, int64_t step, int slot)
{
    if (t->staged_step[slot] == step)
        return;
    dpt_backend *be = &t->be;
    int I = t->model.widths[0];
    if (t->perm_epoch != epoch)
        shuffle(t, epoch);
    be->host_wait_slot(be, slot); /* the previous copy out of these pinned buffers is done */
    int64_t base = t->data.sharded ? s * t->rows : s * t->cfg->train.batch_size + t->row0;
    for (int i = 0; i < t->rows; i++) {
        int64_t r = t->perm[base + i];
        memcpy(t->pin_x[slot] + (size_t)i * I, t->data.train.x + (size_t)r * I,
               (size_t)I * sizeof(float));
        t->pin_y[slot][i] = t->data.train.y[r];
    }
    be->upload_async(be, t->stage_x[slot], t->pin_x[slot], (size_t)t->rows * I * sizeof(float), slot);
    be->upload_async(be, t->stage_y[slot], t->pin_y[slot], (size_t)t->rows * sizeof(int32_t), slot);
    t->staged_step[slot] = step;
}

int dpt_trainer_step(dpt_trainer *t, int epoch, int64_t step_in_epoch, int64_t step, double lr)
{
    const dpt_config *cfg = t->cfg;
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    int I = m->widths[0], C = m->widths[m->n_layers];
    double t0 = dpt_now();

    float *xb = t->xb;
    int32_t *yb = t->yb;
    int slot = (int)(step & 1);
    if (t->staged) {
        stage_batch(t, epoch, step_in_epoch, step, slot);
        /* prefetch the next batch of this epoch into the other slot (not across epochs: the
         * evaluation between epochs uses the batch buffers' neighbours, and the next epoch's
         * order is drawn when it starts) */
        if (step_in_epoch + 1 < t->steps_per_epoch)
            stage_batch(t, epoch, step_in_epoch + 1, step + 1, slot ^ 1);
        be->wait_slot(be, slot);
        xb = t->stage_x[slot];
        yb = t->stage_y[slot];
    } else {
        if (t->perm_epoch != epoch)
            shuffle(t, epoch);
        int64_t base = t->data.sharded ? step_in_epoch * t->rows
                                       : step_in_epoch * cfg->train.batch_size + t->row0;
        be->upload(be, t->idx, t->perm + base, (size_t)t->rows * sizeof(int64_t));
        be->gather(be, t->x_train, t->y_train, t->idx, t->rows, I, t->xb, t->yb);
    }
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
    if (t->staged)
        be->release_slot(be, slot); /* backward was the last reader of this slot's batch */
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
        dpt_optim_step(&t->opt, m->params, m->grads, step, lr);
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

/* ---- the whole run ---------------------------------------------------------------------- */

static int write_config(const dpt_config *cfg, const char *out_dir, dpt_error *err)
{
    char path[DPT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", out_dir);
    return dpt_config_save(cfg, path, err);
}

static int save_checkpoint(dpt_trainer *t, const char *path, int epochs_done, int64_t step,
                           dpt_error *err)
{
    dpt_model *m = &t->model;
    dpt_ckpt_header h = {0};
    h.n_layers = (uint32_t)m->n_layers;
    for (int l = 0; l <= m->n_layers; l++)
        h.widths[l] = (uint32_t)m->widths[l];
    h.epoch = (uint32_t)epochs_done;
    h.step = (uint64_t)step;
    snprintf(h.optimizer, sizeof h.optimizer, "%s", dpt_optimizer_name(t->cfg->train.optimizer));
    h.n_state = (uint32_t)t->opt.n_state;
    h.n_params = m->n_params;
    h.seed = t->cfg->run.seed;
    const float *params = m->params, *state = t->opt.state;
    float *host = NULL;
    if (!t->be.host_memory) {
        size_t n = m->n_params * (1 + (size_t)t->opt.n_state);
        host = malloc(n * sizeof(float));
        if (!host)
            return dpt_error_set(err, DPT_ERUNTIME, "out of memory writing a checkpoint");
        t->be.download(&t->be, host, m->params, m->n_params * sizeof(float));
        t->be.download(&t->be, host + m->n_params, t->opt.state,
                       m->n_params * t->opt.n_state * sizeof(float));
        params = host;
        state = host + m->n_params;
    }
    int rc = dpt_checkpoint_save(path, &h, params, state, err);
    free(host);
    return rc;
}

/* Rank 0 reads the checkpoint and broadcasts it, so ranks need no shared file system.
 * Returns the step to continue from (0 when starting afresh) through *step. */
static int resume_from(dpt_trainer *t, const char *path, int64_t *step, dpt_error *err)
{
    dpt_comm *c = t->comm;
    dpt_model *m = &t->model;
    size_t n_all = m->n_params * (1 + (size_t)t->opt.n_state);
    float *host = malloc(n_all * sizeof(float));
    DPT_CHECK(host != NULL, "out of memory reading the checkpoint");
    dpt_error mine = {0};
    int64_t info[2] = {0, 0}; /* found, step */
    int rc = DPT_OK;
    if (c->rank == 0) {
        struct stat st;
        if (stat(path, &st) == 0) {
            dpt_ckpt_header h;
            rc = dpt_checkpoint_load(path, &h, NULL, NULL, &mine);
            if (rc == DPT_OK)
                rc = dpt_checkpoint_check(&h, t->cfg, path, &mine);
            if (rc == DPT_OK)
                rc = dpt_checkpoint_load(path, &h, host, host + m->n_params, &mine);
            info[0] = 1;
            info[1] = (int64_t)h.step;
        }
    }
    if ((rc = dpt_comm_agree_error(c, rc, &mine, err)) != DPT_OK) {
        free(host);
        return rc;
    }
    dpt_comm_bcast(c, info, sizeof info, 0);
    if (info[0]) {
        dpt_comm_bcast(c, host, n_all * sizeof(float), 0);
        t->be.upload(&t->be, m->params, host, m->n_params * sizeof(float));
        t->be.upload(&t->be, t->opt.state, host + m->n_params,
                     m->n_params * t->opt.n_state * sizeof(float));
    }
    free(host);
    *step = info[0] ? info[1] : -1;
    return DPT_OK;
}

static void print_startup(dpt_trainer *t, const dpt_train_opts *opts, const char *out_dir,
                          const char *hosts)
{
    const dpt_config *cfg = t->cfg;
    const dpt_data *d = &t->data;
    char widths[256] = "";
    for (int l = 0; l <= cfg->model.n_layers && strlen(widths) < 200; l++)
        snprintf(widths + strlen(widths), sizeof widths - strlen(widths), "%s%d", l ? "-" : "",
                 cfg->model.widths[l]);
    int R = t->comm->size, B = cfg->train.batch_size;
    printf("dptrain %s  train %s\n", DPT_VERSION, opts->config_path ? opts->config_path : "");
    printf("  %-9s %d rank%s on %d host%s: %s\n", "ranks", R, R > 1 ? "s" : "", t->comm->n_nodes,
           t->comm->n_nodes > 1 ? "s" : "", hosts);
    if (t->be.host_memory)
        printf("  %-9s %s (%s), %d BLAS thread%s per rank%s%s%s\n", "device", t->be.name,
               DPT_BLAS_NAME, t->threads, t->threads > 1 ? "s" : "", t->device_note ? " (" : "",
               t->device_note ? t->device_note : "", t->device_note ? ")" : "");
    else
        printf("  %-9s %s: one GPU per rank (local rank = device index), gradients through %s, "
               "training rows %s\n",
               "device", t->be.name, t->nccl ? "NCCL" : "MPI",
               t->staged ? "staged through pinned memory" : "resident on the device");
    char comm_line[320];
    dpt_trainer_describe_comm(t, comm_line, sizeof comm_line);
    printf("  %-9s %s\n", "comm", comm_line);
    printf("  %-9s %s, %s: %lld train, %lld val, %lld test rows; %d features, %d classes\n", "data",
           dpt_format_name(cfg->data.format), d->sharded ? "sharded" : "replicated",
           (long long)d->train.n_total, (long long)d->val.n_total, (long long)d->test.n_total,
           cfg->model.widths[0], cfg->model.widths[cfg->model.n_layers]);
    printf("  %-9s %s %s, dropout %g, %s, %zu parameters\n", "model", widths,
           dpt_activation_name(cfg->model.activation), cfg->model.dropout,
           dpt_loss_name(cfg->model.loss), t->model.n_params);
    printf("  %-9s %d epochs x %lld steps, global batch %d (%d-%d per rank), %s lr %g", "train",
           cfg->train.epochs, (long long)t->steps_per_epoch, B, B / R, (B + R - 1) / R,
           dpt_optimizer_name(cfg->train.optimizer), cfg->train.lr);
    if (cfg->train.optimizer == DPT_OPT_SGD)
        printf(" momentum %g%s", cfg->train.momentum, cfg->train.nesterov ? " nesterov" : "");
    printf(", wd %g, %s schedule, warmup %d\n", cfg->train.weight_decay,
           dpt_schedule_name(cfg->train.schedule), cfg->train.warmup_epochs);
    printf("  %-9s %s (seed %llu)\n", "output", out_dir, (unsigned long long)cfg->run.seed);
    fflush(stdout);
}

/* run.check_every: every rank hashes its parameters (CRC-32 of the bytes) and all compare. Data
 * parallelism keeps them bitwise equal, so any difference is a fault (a flipped bit, a rank
 * that skipped an update, mismatched builds). Returns DPT_OK or DPT_ERUNTIME naming the ranks
 * that differ from rank 0, the same on every rank. */
static int check_consistency(dpt_trainer *t, int64_t step, dpt_error *err)
{
    dpt_comm *c = t->comm;
    dpt_model *m = &t->model;
    const float *params = m->params;
    float *host = NULL;
    if (!t->be.host_memory) {
        host = malloc(m->n_params * sizeof(float));
        DPT_CHECK(host != NULL, "out of memory");
        t->be.download(&t->be, host, m->params, m->n_params * sizeof(float));
        params = host;
    }
    /* fault injection for the tests: DPT_INJECT_PARAM_FAULT=RANK:STEP perturbs one parameter
     * of that rank before the check at that step */
    const char *inject = getenv("DPT_INJECT_PARAM_FAULT");
    int bad_rank = -1;
    long long bad_step = -1;
    float *copy = NULL;
    if (inject && sscanf(inject, "%d:%lld", &bad_rank, &bad_step) == 2 && bad_rank == c->rank &&
        bad_step == step) {
        copy = malloc(m->n_params * sizeof(float));
        DPT_CHECK(copy != NULL, "out of memory");
        memcpy(copy, params, m->n_params * sizeof(float));
        copy[m->n_params / 2] += 1e-3f;
        params = copy;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *bytes = (const unsigned char *)params;
    for (size_t off = 0, n = m->n_params * sizeof(float); off < n; off += 1u << 30) {
        size_t chunk = n - off < (1u << 30) ? n - off : (1u << 30);
        crc = crc32(crc, bytes + off, (uInt)chunk);
    }
    free(copy);
    free(host);
    uint32_t mine = (uint32_t)crc;
    uint32_t *all = malloc((size_t)c->size * sizeof *all);
    DPT_CHECK(all != NULL, "out of memory");
    DPT_MPI_CHECK(MPI_Allgather(&mine, 1, MPI_UINT32_T, all, 1, MPI_UINT32_T, c->world));
    char list[512] = "";
    size_t used = 0;
    int n_bad = 0;
    for (int r = 1; r < c->size; r++) {
        if (all[r] == all[0])
            continue;
        n_bad++;
        if (used < sizeof list - 16)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", used ? ", " : "", r);
    }
    uint32_t h0 = all[0];
    free(all);
    if (n_bad == 0)
        return DPT_OK;
    return dpt_error_set(err, DPT_ERUNTIME,
                         "run.check_every: at step %lld the parameters of rank%s %s differ from "
                         "rank 0's (CRC-32 %08x): the ranks are no longer in step; stopping",
                         (long long)step, n_bad > 1 ? "s" : "", list, h0);
}

int dpt_train_run(const dpt_config *cfg, dpt_comm *comm, const dpt_train_opts *opts,
                  dpt_train_result *res, dpt_error *err)
{
    memset(res, 0, sizeof *res);
    res->train_loss = res->val_loss = res->val_accuracy = res->test_accuracy = NAN;
    const char *out_dir = cfg->run.out_dir;
    int root = comm->rank == 0;
    int rc = DPT_OK;
    dpt_error mine = {0};
    char ckpt[DPT_PATH_MAX + 32], metrics_path[DPT_PATH_MAX + 32];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.bin", out_dir);
    snprintf(metrics_path, sizeof metrics_path, "%s/metrics.jsonl", out_dir);

    /* the output directory is checked before any work: a full or read-only disk shows now */
    if (root) {
        rc = dpt_mkdir_p(out_dir, &mine);
        if (rc == DPT_OK) rc = dpt_probe_writable(out_dir, &mine);
        if (rc == DPT_OK) rc = write_config(cfg, out_dir, &mine);
    }
    if ((rc = dpt_comm_agree_error(comm, rc, &mine, err)) != DPT_OK) {
        return rc;
    }

    dpt_trainer t;
    if ((rc = dpt_trainer_init(&t, cfg, comm, err)) != DPT_OK)
        return rc;
    int64_t spe = t.steps_per_epoch;

    int64_t step = 0;
    if (opts->resume) {
        if ((rc = resume_from(&t, ckpt, &step, err)) != DPT_OK) {
            dpt_trainer_free(&t);
            return rc;
        }
        if (root && step < 0)
            printf("resume: no checkpoint at %s, starting from the beginning\n", ckpt);
        else if (root)
            printf("resume: %s at step %lld (epoch %lld of %d)\n", ckpt, (long long)step,
                   (long long)(step / spe), cfg->train.epochs);
        if (step < 0) step = 0;
    }

    char hosts[1024] = "";
    dpt_comm_hosts(comm, hosts, sizeof hosts);
    FILE *mf = NULL;
    if (root) {
        if (!opts->quiet)
            print_startup(&t, opts, out_dir, hosts);
        mf = fopen(metrics_path, opts->resume ? "a" : "w");
        if (!mf) {
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot open '%s': %m", metrics_path);
        }
    }
    if ((rc = dpt_comm_agree_error(comm, rc, &mine, err)) != DPT_OK) {
        dpt_trainer_free(&t);
        return rc;
    }

    int tty = root && (cfg->run.progress == DPT_PROGRESS_ON ||
                       (cfg->run.progress == DPT_PROGRESS_AUTO && isatty(fileno(stdout)) &&
                        getenv("OMPI_COMM_WORLD_SIZE") == NULL && getenv("PMI_SIZE") == NULL));
    double last_progress = 0.0;
    int64_t total_steps = spe * cfg->train.epochs;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < total_steps)
        total_steps = cfg->train.max_steps;
    double run_start = dpt_now();
    int64_t run_start_step = step;
    int header_printed = 0;
    int last_good_epoch = (int)(step / spe);
    /* DPT_TEST_STEP_SLEEP_US: a pause after every step, so that the signal tests can interrupt a
     * run mid-way however fast the machine is; it changes no result */
    const char *sleep_env = getenv("DPT_TEST_STEP_SLEEP_US");
    long step_sleep_us = sleep_env ? strtol(sleep_env, NULL, 10) : 0;
    int wrote_ckpt = opts->resume && step > 0;
    int epoch = (int)(step / spe);
    const dpt_optim_params schedule = dpt_optim_params_from_config(cfg);

    for (; epoch < cfg->train.epochs && step < total_steps; epoch++) {
        t.t_data = t.t_compute = t.t_comm = 0.0;
        double ep_loss = 0.0, ep_correct = 0.0, ep_rows = 0.0, lr = 0.0;
        double ep_start = dpt_now();
        int64_t first = step - (int64_t)epoch * spe;
        for (int64_t s = first; s < spe && step < total_steps; s++) {
            lr = dpt_optim_lr(&schedule, step, spe);
            if (dpt_trainer_step(&t, epoch, s, step, lr) == DPT_STEP_DIVERGED) {
                if (tty) printf("\r\033[K");
                res->diverged = 1;
                rc = DPT_ERUNTIME;
                if (wrote_ckpt)
                    dpt_error_set(err, rc,
                                  "diverged: the training loss is %g at epoch %d, step %lld (lr "
                                  "%g); the last good checkpoint (epoch %d) is kept at %s",
                                  t.last_loss, epoch + 1, (long long)step, lr, last_good_epoch,
                                  ckpt);
                else
                    dpt_error_set(err, rc,
                                  "diverged: the training loss is %g at epoch %d, step %lld (lr "
                                  "%g); no checkpoint had been written yet",
                                  t.last_loss, epoch + 1, (long long)step, lr);
                goto done;
            }
            step++;
            if (step_sleep_us > 0) /* test hook, see below */
                usleep((useconds_t)step_sleep_us);
            if (t.stop_requested) {
                /* every rank learned it from the same allreduce: all stop after this step */
                if (tty) printf("\r\033[K");
                int sig = dpt_signals_pending(), any = 0;
                DPT_MPI_CHECK(MPI_Allreduce(&sig, &any, 1, MPI_INT, MPI_MAX, comm->world));
                res->interrupted = any;
                if (root)
                    rc = save_checkpoint(&t, ckpt, (int)(step / spe), step, &mine);
                if ((rc = dpt_comm_agree_error(comm, rc, &mine, err)) != DPT_OK) {
                    goto done;
                }
                rc = 128 + any;
                dpt_error_set(err, rc,
                              "stopped by %s at epoch %d, step %lld: checkpoint written to %s; "
                              "continue with --resume",
                              dpt_signals_name(any), epoch + 1, (long long)step, ckpt);
                res->steps = step;
                res->time_s = dpt_now() - run_start;
                goto done;
            }
            if (cfg->run.check_every > 0 && step % cfg->run.check_every == 0 &&
                (rc = check_consistency(&t, step, err)) != DPT_OK) {
                if (tty) printf("\r\033[K");
                goto done;
            }
            ep_loss += t.last_loss;
            ep_correct += t.last_correct;
            ep_rows += cfg->train.batch_size;
            if (tty && (step % cfg->train.log_every == 0) && dpt_now() - last_progress > 0.25) {
                last_progress = dpt_now();
                double el = last_progress - run_start;
                double done_steps = (double)(step - run_start_step);
                double rate = done_steps * cfg->train.batch_size / el;
                char eta[32];
                dpt_format_duration(el / done_steps * (double)(total_steps - step), eta, sizeof eta);
                printf("\r\033[K  epoch %d/%d  step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s",
                       epoch + 1, cfg->train.epochs, (long long)(s + 1), (long long)spe,
                       t.last_loss / cfg->train.batch_size, rate, eta);
                fflush(stdout);
            }
        }
        double ep_time = dpt_now() - ep_start;
        if (tty) printf("\r\033[K");

        dpt_epoch_metrics em = {0};
        em.epoch = epoch + 1;
        em.step = step;
        em.lr = lr;
        em.train_loss = ep_rows > 0 ? ep_loss / ep_rows : NAN;
        em.train_accuracy = ep_rows > 0 ? ep_correct / ep_rows : NAN;
        em.val_loss = em.val_accuracy = em.test_loss = em.test_accuracy = NAN;
        if (t.data.val.n_total > 0)
            dpt_trainer_evaluate(&t, &t.data.val, &em.val_loss, &em.val_accuracy);
        if (t.data.test.n_total > 0)
            dpt_trainer_evaluate(&t, &t.data.test, &em.test_loss, &em.test_accuracy);
        em.samples_per_s = ep_rows / ep_time;
        em.time_s = ep_time;
        em.compute_s = t.t_compute;
        em.comm_s = t.t_comm;
        em.data_s = t.t_data;
        em.ranks = comm->size;
        em.rss_mb = dpt_metrics_rss_mb();

        if (root) {
            if (!header_printed && !opts->quiet) {
                dpt_metrics_print_header(stdout);
                header_printed = 1;
            }
            if (!opts->quiet)
                dpt_metrics_print_row(stdout, &em);
            if (dpt_metrics_append(mf, &em) != 0 && rc == DPT_OK)
                rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot append to '%s': %m", metrics_path);
            if (rc == DPT_OK)
                rc = save_checkpoint(&t, ckpt, (int)(step / spe), step, &mine);
        }
        if ((rc = dpt_comm_agree_error(comm, rc, &mine, err)) != DPT_OK) {
            goto done;
        }
        wrote_ckpt = 1;
        last_good_epoch = (int)(step / spe);
        res->epochs = epoch + 1;
        res->train_loss = em.train_loss;
        res->val_loss = em.val_loss;
        res->val_accuracy = em.val_accuracy;
        res->test_accuracy = em.test_accuracy;
        /* the hook sees every epoch (a search records the whole curve); stopping after the
         * last one would change nothing */
        if (opts->epoch_hook && opts->epoch_hook(opts->hook_ctx, &em) && step < total_steps &&
            epoch + 1 < cfg->train.epochs) {
            res->stopped_early = 1;
            break;
        }
    }
    res->steps = step;
    res->time_s = dpt_now() - run_start;
    if (root && !opts->quiet) {
        char dur[32];
        dpt_format_duration(res->time_s, dur, sizeof dur);
        if (step == run_start_step)
            printf("nothing to do: the checkpoint is already at step %lld\n", (long long)step);
        else
        {
            char acc[128] = "";
            if (!isnan(res->val_accuracy))
                snprintf(acc, sizeof acc, "; val accuracy %.2f%%", 100.0 * res->val_accuracy);
            if (!isnan(res->test_accuracy))
                snprintf(acc + strlen(acc), sizeof acc - strlen(acc), "; test accuracy %.2f%%",
                         100.0 * res->test_accuracy);
            printf("done: %d epoch%s, %lld steps in %s%s; outputs in %s\n", res->epochs,
                   res->epochs == 1 ? "" : "s", (long long)step, dur, acc, out_dir);
        }
        fflush(stdout);
    }
done:
    if (mf)
        fclose(mf);
    dpt_trainer_free(&t);
    return rc;
}
