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

#include "device.h"
#include "metrics.h"
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

/* The device (src/device.c, shared with `dptrain bench allreduce`) and its backend. */
static int start_backend(dpt_trainer *t, dpt_error *err)
{
    dpt_device d;
    int rc = dpt_device_choose(t->cfg->run.device, t->comm, DPT_DEVICE_FOR_TRAINING, &d, err);
    if (rc != DPT_OK)
        return rc;
    t->device_note = d.note;
    /* NCCL starts in dpt_trainer_init, once every rank's device is known to be good: its
     * set-up is collective, and a rank that failed here would leave the others in it */
    rc = dpt_device_start(&d, t->threads, t->cfg->train.precision, &t->be, err);
    if (rc != DPT_OK)
        return rc;
    /* before the model: it allocates the ReLU masks only when the backend fuses ReLU */
    return dpt_device_epilogues(&t->be, (int)t->cfg->train.gemm_epilogue, t->epilogue_why,
                                sizeof t->epilogue_why, err);
}

/* The layer hook of backward with overlapped buckets: block `block` of layer `layer`'s
 * gradients is final; the reducer starts the bucket it completes. */
static void on_layer_grads(int layer, int block, void *ctx)
{
    dpt_trainer *t = ctx;
    int piece = t->piece0[layer] + t->model.grad_blocks[layer] - 1 - block;
    dpt_reducer_piece_done(t->reducer, t->model.grads, piece);
}

/* The gradient buffer's pieces in the order backward finishes them (layers last first, a large
 * layer's blocks of rows last first, as the reducer cuts them: the first bucket of a large layer
 * leaves after a fraction of that layer's weight-gradient GEMM instead of all of it), handed to
 * the reducer to group into buckets. The step's statistics sit at the end of the buffer. */
static void plan_buckets(dpt_trainer *t)
{
    dpt_model *m = &t->model;
    size_t start[DPT_REDUCER_MAX_PIECES];
    int pieces = 0;
    size_t n = m->n_params + DPT_GRAD_STATS;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int O = m->widths[l + 1], I = m->widths[l];
        /* at least one piece is left for each layer below */
        int blocks = dpt_reducer_blocks(t->reducer, (double)n, (double)O * I + O, O,
                                        DPT_REDUCER_MAX_PIECES - pieces - l);
        m->grad_blocks[l] = blocks;
        t->piece0[l] = pieces;
        for (int j = blocks - 1; j >= 0; j--) {
            int r0, r1;
            dpt_model_grad_block(m, l, j, &r0, &r1);
            start[pieces++] = m->w_off[l] + (size_t)r0 * I;
        }
    }
    dpt_reducer_plan(t->reducer, n, DPT_GRAD_STATS, start, pieces);
}

static void be_download(void *ctx, void *host, const void *dev, size_t bytes)
{
    dpt_backend *be = ctx;
    be->download(be, host, dev, bytes);
}

static void be_upload(void *ctx, void *dev, const void *host, size_t bytes)
{
    dpt_backend *be = ctx;
    be->upload(be, dev, host, bytes);
    be->sync(be);
}

/* comm.*: the reducer that averages the gradients (mpi/reducer.h), which also refuses what
 * the backend cannot do. Collective (NCCL's set-up). */
static int start_comm(dpt_trainer *t, dpt_error *err)
{
    const dpt_config *cfg = t->cfg;
    /* overlapped MPI buckets are polled by a progress thread while backward computes;
     * DPT_PROGRESS_THREAD=0 turns it off (polls between layers only), for comparison */
    const char *pt = getenv("DPT_PROGRESS_THREAD");
    dpt_reducer_settings rs = {
        .algorithm = cfg->comm.algorithm,
        .compress = cfg->comm.compress,
        .bucket_mb = cfg->comm.bucket_mb,
        .overlap = cfg->comm.overlap,
        .progress_thread = !(pt && strcmp(pt, "0") == 0),
        .timeout_s = cfg->run.comm_timeout_s,
        .device_buffers = !t->be.host_memory,
        .stream = dpt_device_stream(&t->be),
        .copy = {&t->be, be_download, be_upload},
    };
    return dpt_reducer_create(&t->reducer, t->comm, &rs, err);
}

static void sum_doubles(double *buf, int n, void *ctx) { dpt_comm_allreduce_sum_double(ctx, buf, n); }

void dpt_trainer_describe_comm(const dpt_trainer *t, char *out, size_t n)
{
    dpt_reducer_describe(t->reducer, out, n);
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

/* Regression: the training target table (the training and validation rows) where the loss op
 * reads it; small next to the rows (T floats a row), so it stays resident even when batches are
 * staged. */
static int upload_targets(dpt_trainer *t, dpt_error *mine)
{
    dpt_backend *be = &t->be;
    const dpt_data *d = &t->data;
    size_t bytes = (size_t)(d->train.n + d->val.n) * d->targets * sizeof(float);
    if (be->host_memory) {
        t->t_train = d->train.t;
        return DPT_OK;
    }
    t->t_dev = be->alloc(be, bytes ? bytes : sizeof(float));
    if (!t->t_dev)
        return dpt_error_set(mine, DPT_ERUNTIME, "out of %s memory for the regression targets "
                             "(%zu bytes)", be->name, bytes);
    be->upload(be, t->t_dev, d->train.t, bytes);
    t->t_train = t->t_dev;
    return DPT_OK;
}

/* The model, its optimizer, the input buffers (a batch, or a chunk of rows when evaluating) and
 * the batch source that fills them. */
static int build_model(dpt_trainer *t, dpt_error *mine)
{
    const dpt_config *cfg = t->cfg;
    int max_rows = t->rows > EVAL_CHUNK ? t->rows : EVAL_CHUNK;
    int I = cfg->model.widths[0];
    const dpt_model_spec model_spec = dpt_model_spec_from_config(cfg);
    const dpt_optim_params optim_params = dpt_optim_params_from_config(cfg);
    int rc = dpt_model_init(&t->model, &model_spec, &t->be, max_rows, mine);
    if (rc == DPT_OK)
        rc = dpt_optim_init(&t->opt, &optim_params, &t->be, t->model.n_params, mine);
    if (rc != DPT_OK)
        return rc;
    /* a device keeps the step's sums (loss_stats, a regression's loss_targets_stats) */
    t->device_stats = !t->be.host_memory;
    if (t->device_stats) {
        t->acc = t->be.alloc(&t->be, 2 * sizeof(double));
        t->acc_host = t->be.alloc_pinned(&t->be, 2 * sizeof(double));
        if (!t->acc || !t->acc_host)
            return dpt_error_set(mine, DPT_ERUNTIME, "out of %s memory for the step's "
                                 "statistics", t->be.name);
    }
    t->xb = t->be.alloc(&t->be, (size_t)max_rows * I * sizeof(float));
    t->yb = t->be.alloc(&t->be, (size_t)max_rows * sizeof(int32_t));
    if (!t->xb || !t->yb)
        return dpt_error_set(mine, DPT_ERUNTIME,
                             "out of %s memory for the batch buffers (%d rows x %d features)",
                             t->be.name, max_rows, I);
    dpt_batch_spec spec = {
        .rows = t->rows, .I = I, .row0 = t->row0, .batch_size = cfg->train.batch_size,
        .steps_per_epoch = t->steps_per_epoch, .sharded = t->data.sharded,
        .shuffle = cfg->data.shuffle, .seed = cfg->run.seed, .rank = t->comm->rank,
        .resident = cfg->data.device_resident,
    };
    if (t->data.targets && upload_targets(t, mine) != DPT_OK) /* the labels index it (data.h) */
        return DPT_ERUNTIME;
    return dpt_batch_init(&t->batch, &spec, &t->be, &t->data.train, t->xb, t->yb, mine);
}

/* train.cuda_graph: auto captures the step when it needs nothing of the host and nothing in it
 * changes from step to step except through device memory (the learning rate, Adam's bias
 * corrections and dropout's step do: dpt_device_graph_scalars); what rules it out is said in
 * the start-up table (auto) or refused (on). The same verdict on every rank (it depends on the
 * config, the path and the data's fit, which every rank shares). */
static int graph_verdict(dpt_trainer *t, dpt_error *err)
{
    const dpt_config *cfg = t->cfg;
    const char *no = NULL;
    if (!t->device_stats)
        no = "the CPU backend";
    else if (!dpt_reducer_on_device(t->reducer))
        no = "the gradients go through the host (no NCCL)";
    else if (t->batch.staged)
        no = "batches are staged through pinned memory (data.device_resident)";
    t->graph_on = cfg->train.cuda_graph != DPT_GRAPH_OFF && !no;
    snprintf(t->graph_why, sizeof t->graph_why, "%s%s",
             cfg->train.cuda_graph == DPT_GRAPH_OFF ? "off (train.cuda_graph)"
             : t->graph_on ? "on (the step captured once, then replayed)" : "off: ",
             cfg->train.cuda_graph != DPT_GRAPH_OFF && no ? no : "");
    if (cfg->train.cuda_graph == DPT_GRAPH_ON && no)
        return dpt_error_set(err, DPT_EUSAGE, "train.cuda_graph: on, but the step cannot be "
                             "captured as a CUDA Graph: %s; use auto or off", no);
    return DPT_OK;
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
    if ((rc = start_comm(t, &mine)) != DPT_OK)
        goto fail;

    const dpt_data_spec data_spec = dpt_data_spec_from_config(cfg);
    rc = dpt_data_load(&data_spec, comm->rank, R, sum_doubles, comm, &t->data, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    if ((rc = slice_batches(t, &mine)) != DPT_OK)
        goto fail;
    rc = build_model(t, &mine);
    if (dpt_comm_agree(comm, rc) != DPT_OK)
        goto fail;
    plan_buckets(t);
    if ((rc = graph_verdict(t, &mine)) != DPT_OK) /* the same verdict on every rank */
        goto fail;
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
    dpt_reducer_free(t->reducer);
    dpt_batch_free(&t->batch);
    if (t->be.free) {
        t->be.free(&t->be, t->xb);
        t->be.free(&t->be, t->yb);
        t->be.free(&t->be, t->t_dev);
        t->be.free(&t->be, t->acc);
        t->be.free_pinned(&t->be, t->acc_host);
        dpt_optim_free(&t->opt);
        dpt_model_free(&t->model);
        if (t->be.destroy)
            t->be.destroy(&t->be);
    }
    dpt_data_free(&t->data);
    free(t);
}

/* run.trace: the step's phases from its times at[] = {start, data done, forward done, backward
 * done, barrier done, allreduce done, optimizer done}, each layer's part of forward and of
 * backward (nested in them), and each bucket's allreduce. */
static void trace_step(dpt_trainer *t, int64_t step, const double at[7])
{
    static const dpt_span_kind phase[] = {DPT_SPAN_DATA, DPT_SPAN_FORWARD, DPT_SPAN_BACKWARD,
                                          DPT_SPAN_WAIT, DPT_SPAN_ALLREDUCE, DPT_SPAN_OPTIMIZER};
    dpt_trace_span(t->trace, DPT_SPAN_STEP, at[0], at[6], step, -1);
    for (int i = 0; i < 6; i++)
        if (at[i + 1] > at[i] || phase[i] != DPT_SPAN_WAIT)
            dpt_trace_span(t->trace, phase[i], at[i], at[i + 1], step, -1);
    const dpt_model *m = &t->model;
    int L = m->n_layers;
    if (m->layer_end[0] && t->layer_end[1][0] > 0.0) /* not a graph replay: the layers ran */
        for (int l = 0; l < L; l++) {
            dpt_trace_span(t->trace, DPT_SPAN_LAYER_FORWARD, l ? t->layer_end[0][l - 1] : at[1],
                           t->layer_end[0][l], step, l);
            dpt_trace_span(t->trace, DPT_SPAN_LAYER_BACKWARD,
                           l == L - 1 ? at[2] : t->layer_end[1][l + 1], t->layer_end[1][l], step, l);
        }
    if (t->comm->size == 1)
        return;
    for (int k = 0; k < dpt_reducer_n_buckets(t->reducer); k++) {
        double b0, b1;
        dpt_reducer_bucket_times(t->reducer, k, &b0, &b1);
        dpt_trace_span(t->trace, DPT_SPAN_BUCKET, b0, b1, step, k);
    }
}

/* The step's loss, hit count, rows and signal flag into the statistics slots after the gradients
 * (they travel with the first bucket, which starts as soon as the last layer's gradients are
 * done, so they are written before backward). On the CPU the host writes them; on a device the
 * loss kernel does (no synchronization), and signals are exchanged when the sums are read. */
static void step_loss(dpt_trainer *t, const float *logits, const int32_t *yb, float *dlogits)
{
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    int C = m->widths[m->n_layers];
    float grad_scale = 1.0f / (float)t->cfg->train.batch_size;
    if (t->device_stats && t->t_train) { /* regression: the labels index the target table */
        be->loss_targets_stats(be, logits, yb, t->t_train, t->rows, C, m->loss, m->huber_delta,
                               grad_scale, dlogits, m->grads + m->n_params);
        return;
    }
    if (t->device_stats) {
        be->loss_stats(be, logits, yb, t->rows, C, m->loss, grad_scale, dlogits,
                       m->grads + m->n_params);
        return;
    }
    float stats[DPT_GRAD_STATS] = {0};
    double loss_sum = 0.0, correct = 0.0;
    if (t->t_train) /* regression: the labels index the target table */
        be->loss_targets(be, logits, yb, t->t_train, t->rows, C, m->loss, m->huber_delta,
                         grad_scale, dlogits, &loss_sum);
    else
        be->loss(be, logits, yb, t->rows, C, m->loss, grad_scale, dlogits, &loss_sum, &correct);
    stats[0] = (float)loss_sum;
    stats[1] = (float)correct;
    stats[2] = (float)t->rows;
    stats[3] = dpt_signals_pending() ? 1.0f : 0.0f;
    be->upload(be, m->grads + m->n_params, stats, sizeof stats);
}

/* CPU: the summed statistics of this step, read at once. Returns 1 when the loss diverged. */
static int read_host_stats(dpt_trainer *t)
{
    dpt_model *m = &t->model;
    float stats[DPT_GRAD_STATS];
    t->be.download(&t->be, stats, m->grads + m->n_params, sizeof stats);
    t->last_loss = stats[0];
    t->last_correct = stats[1];
    t->steps_read = 1;
    t->stop_requested = stats[3] > 0.0f;
    return !isfinite(stats[0]);
}

/* Device: the sums of the steps since the last read, waited for once (the NCCL watchdog polls
 * the event behind the last allreduce first, so a dead peer is named rather than waited for),
 * landing in pinned memory; and whether any rank was signalled. Collective. Returns 1 when the
 * loss diverged in one of those steps (a non-finite term makes the sum non-finite). */
static int read_device_stats(dpt_trainer *t)
{
    dpt_backend *be = &t->be;
    t->steps_read = t->acc_steps;
    if (t->acc_steps == 0)
        return 0;
    dpt_reducer_drain(t->reducer);
    be->download(be, t->acc_host, t->acc, 2 * sizeof(double));
    be->zero(be, t->acc, 2 * sizeof(double));
    t->last_loss = t->acc_host[0];
    t->last_correct = t->acc_host[1];
    t->acc_steps = 0;
    t->stop_requested = dpt_comm_agree(t->comm, dpt_signals_pending() ? 1 : 0) != 0;
    return !isfinite(t->last_loss);
}

int dpt_trainer_read_stats(dpt_trainer *t)
{
    if (!t->device_stats) {
        t->steps_read = 0;
        return DPT_STEP_OK;
    }
    return read_device_stats(t) ? DPT_STEP_DIVERGED : DPT_STEP_OK;
}

/* After the allreduce: the update (CPU: with this step's statistics read at once, and a
 * diverged step not applied; device: the statistics summed on the device, read by the caller).
 * Returns 1 when the loss diverged (CPU). */
static int step_update(dpt_trainer *t, int64_t step, double lr)
{
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    if (!t->device_stats) {
        int diverged = read_host_stats(t);
        dpt_device_mark(be, DPT_MARK_OPTIM);
        if (!diverged)
            dpt_optim_step(&t->opt, m->params, m->grads, step, lr);
        dpt_device_mark(be, DPT_MARK_OPTIM_END);
        be->sync(be);
        return diverged;
    }
    dpt_device_mark(be, DPT_MARK_OPTIM); /* bench train's GPU-event timing, when armed */
    be->accumulate(be, t->acc, m->grads + m->n_params, 2);
    dpt_optim_step(&t->opt, m->params, m->grads, step, lr);
    dpt_device_mark(be, DPT_MARK_OPTIM_END);
    return 0;
}

/* train.cuda_graph: whether this step runs as queued (NONE), is captured and then launched
 * (CAPTURE), or launches the graph captured before (REPLAY). A trainer's first step runs plainly,
 * a warm-up: the loss scratch and cuBLAS's workspace are allocated then, which a capture
 * refuses. The learning rate and Adam's bias corrections reach the graph through device memory
 * (dpt_device_graph_scalars before each launch), so one capture serves every step. */
enum { GRAPH_NONE, GRAPH_CAPTURE, GRAPH_REPLAY };

static int graph_phase(const dpt_trainer *t)
{
    if (!t->graph_on || t->steps_run == 0)
        return GRAPH_NONE;
    return t->graph_ready ? GRAPH_REPLAY : GRAPH_CAPTURE;
}

/* Forward, loss, backward, the allreduce and the update of one batch; at[] gets the times of
 * forward's end, backward's end, the barrier's end and the allreduce's end (run.trace). Queued
 * on the device without a host wait when t->device_stats, so that it can be captured. Returns 1
 * when the loss diverged (CPU). */
static int step_compute(dpt_trainer *t, const float *xb, const int32_t *yb, int64_t step,
                        double lr, int barrier, double at[4])
{
    const dpt_config *cfg = t->cfg;
    dpt_model *m = &t->model;
    dpt_dropout drop = {(float)cfg->model.dropout, cfg->run.seed, (uint64_t)step, t->row0};
    dpt_trace_begin(DPT_SPAN_FORWARD); /* run.trace's times and the NVTX ranges (nsys) */
    dpt_device_mark(&t->be, DPT_MARK_STEP); /* bench train's GPU-event timing, when armed */
    const float *logits = dpt_model_forward(m, xb, t->rows, &drop);
    at[0] = dpt_trace_next(DPT_SPAN_BACKWARD); /* backward: with the loss below */
    float *dlogits = m->d[0];
    step_loss(t, logits, yb, dlogits);
    dpt_reducer_set_step(t->reducer, step);
    dpt_model_backward(m, xb, dlogits, t->rows, &drop,
                       dpt_reducer_overlaps(t->reducer) ? on_layer_grads : NULL, t);
    dpt_device_mark(&t->be, DPT_MARK_BACKWARD_END);
    dpt_batch_done(&t->batch, step); /* backward was the last reader of this batch */
    if (!t->device_stats)
        t->be.sync(&t->be);
    at[1] = at[2] = dpt_trace_end();
    if (barrier) {
        dpt_trace_begin(DPT_SPAN_WAIT);
        dpt_reducer_barrier(t->reducer); /* buckets in flight move on while it waits */
        at[2] = dpt_trace_end();
        t->t_wait += at[2] - at[1];
    }
    /* gradients and the step's statistics: in buckets already under way (overlap), or in one
     * allreduce now; on a device, the update is queued behind them without a host wait */
    dpt_trace_begin(DPT_SPAN_ALLREDUCE);
    if (t->device_stats)
        dpt_reducer_queue(t->reducer, m->grads);
    else
        dpt_reducer_finish(t->reducer, m->grads);
    at[3] = dpt_trace_next(DPT_SPAN_OPTIMIZER);
    t->t_comm_total += dpt_reducer_last_stats(t->reducer).total_s;
    int diverged = step_update(t, step, lr);
    dpt_trace_end();
    return diverged;
}

int dpt_trainer_step(dpt_trainer *t, int epoch, int64_t step_in_epoch, int64_t step, double lr)
{
    dpt_backend *be = &t->be;
    double t0 = dpt_trace_begin(DPT_SPAN_STEP);
    dpt_trace_begin(DPT_SPAN_DATA);
    const float *xb;
    const int32_t *yb;
    dpt_batch_next(&t->batch, epoch, step_in_epoch, step, &xb, &yb);
    double t1 = dpt_trace_end();

    int graph = graph_phase(t), diverged = 0, traced = dpt_trace_wants(t->trace, step_in_epoch);
    if (traced) { /* only a traced step records its layers' times */
        memset(t->layer_end, 0, sizeof t->layer_end);
        t->model.layer_end[0] = t->layer_end[0];
        t->model.layer_end[1] = t->layer_end[1];
    }
    double at[4] = {t1, t1, t1, t1};
    if (graph == GRAPH_CAPTURE)
        dpt_device_graph_begin(be);
    if (graph != GRAPH_REPLAY) /* a replay has no barrier: the graph holds none */
        diverged = step_compute(t, xb, yb, step, lr,
                                graph == GRAPH_NONE && t->split_wait && t->comm->size > 1, at);
    if (graph == GRAPH_CAPTURE) {
        dpt_device_graph_end(be); /* captured, not run: the launch below runs it */
        t->graph_ready = 1;
    }
    if (graph != GRAPH_NONE) {
        float sc[3];
        dpt_optim_scalars(&t->opt, step, lr, sc);
        dpt_device_graph_scalars(be, sc, step);
        dpt_device_graph_launch(be);
        dpt_reducer_replayed(t->reducer); /* the watchdog polls an event behind the replay */
    }
    t->steps_run++;
    if (t->device_stats) {
        t->acc_steps++;
        t->steps_read = 0;
        if ((step + 1) % t->cfg->train.log_every == 0 || step_in_epoch + 1 == t->steps_per_epoch)
            diverged = read_device_stats(t);
    }
    double t4 = dpt_trace_end(); /* the step */
    if (traced) {
        const double times[] = {t0, t1, at[0], at[1], at[2], at[3], t4};
        trace_step(t, step, times);
    }
    t->model.layer_end[0] = t->model.layer_end[1] = NULL; /* evaluation's forward: untraced */
    t->t_data += t1 - t0;
    t->t_compute += (at[2] - t1) + (t4 - at[3]);
    t->t_comm += at[3] - at[2];
    return diverged ? DPT_STEP_DIVERGED : DPT_STEP_OK;
}

/* The rows [lo, hi) of a split this rank evaluates. */
static void eval_slice(const dpt_trainer *t, const dpt_dataset *ds, int64_t *lo, int64_t *hi)
{
    *lo = 0;
    *hi = ds->n;
    if (!t->data.sharded) { /* replicated: each rank evaluates its slice of the split */
        *lo = (int64_t)t->comm->rank * ds->n / t->comm->size;
        *hi = (int64_t)(t->comm->rank + 1) * ds->n / t->comm->size;
    }
}

void dpt_trainer_evaluate(dpt_trainer *t, const dpt_dataset *ds, double *loss, double *accuracy)
{
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    int I = m->widths[0], C = m->widths[m->n_layers];
    int64_t lo, hi;
    eval_slice(t, ds, &lo, &hi);
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
    dpt_reducer_watch(t->reducer, "evaluation's allreduce");
    dpt_comm_allreduce_sum_double(t->comm, sums, 3);
    dpt_reducer_watch(t->reducer, NULL);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
}

void dpt_trainer_evaluate_regression(dpt_trainer *t, const dpt_dataset *ds, double *loss,
                                     double *rmse, double *mae, double *r2)
{
    dpt_backend *be = &t->be;
    dpt_model *m = &t->model;
    const int I = m->widths[0], T = ds->targets;
    const dpt_data *d = &t->data;
    int64_t lo, hi;
    eval_slice(t, ds, &lo, &hi);
    size_t n_sums = DPT_REGRESS_SUMS(T) + 1; /* and the loss sum */
    double *sums = calloc(n_sums, sizeof *sums);
    float *out = malloc((size_t)EVAL_CHUNK * T * sizeof *out);
    DPT_CHECK(sums && out, "out of memory");
    for (int64_t r = lo; r < hi; r += EVAL_CHUNK) {
        int rows = (int)(hi - r < EVAL_CHUNK ? hi - r : EVAL_CHUNK);
        const float *x = ds->x + (size_t)r * I;
        if (!be->host_memory) {
            be->upload(be, t->xb, x, (size_t)rows * I * sizeof(float));
            x = t->xb;
        }
        be->download(be, out, dpt_model_forward(m, x, rows, NULL), (size_t)rows * T * sizeof(float));
        for (int i = 0; i < rows; i++) /* the training loss's own math, on the host */
            sums[n_sums - 1] += dpt_op_regress_row(out + (size_t)i * T,
                                                   ds->t + (size_t)ds->y[r + i] * T, T, m->loss,
                                                   m->huber_delta, 0.0f, NULL);
        dpt_regress_sums_add(sums, T, out, ds->t, ds->y + r, rows, d->t_mean, d->t_std);
    }
    dpt_reducer_watch(t->reducer, "evaluation's allreduce");
    dpt_comm_allreduce_sum_double(t->comm, sums, (int)n_sums);
    dpt_reducer_watch(t->reducer, NULL);
    *loss = sums[0] > 0 ? sums[n_sums - 1] / sums[0] : NAN;
    dpt_regress_metrics(sums, T, rmse, mae, r2);
    free(sums);
    free(out);
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
    out->steps_read = t->steps_read;
    out->stop_requested = t->stop_requested;
}

void dpt_trainer_reset_stats(dpt_trainer *t)
{
    t->t_data = t->t_compute = t->t_comm = t->t_comm_total = t->t_wait = 0.0;
}

int64_t dpt_trainer_steps_per_epoch(const dpt_trainer *t) { return t->steps_per_epoch; }

void dpt_trainer_set_split_wait(dpt_trainer *t, int on) { t->split_wait = on; }

int dpt_trainer_device_counts(const dpt_trainer *t, dpt_device_counts *out)
{
    return dpt_device_counts_read(&t->be, out);
}
