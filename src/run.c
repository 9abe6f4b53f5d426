/* The whole training run around the trainer's step: the output directory and config.yaml, resume,
 * the start-up table, the epochs with their live progress line, metrics.jsonl and checkpoint.bin,
 * the drift check, and the stop after a signal. Rank 0 writes; every rank takes the same path, so
 * that none is left waiting in a collective while another has stopped. */
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "model_info.h"
#include "signals.h"
#include "trainer_impl.h"
#include "util.h"

/* One run's state, shared by the steps of dpt_train_run. */
typedef struct {
    const dpt_config *cfg;
    dpt_comm *comm;
    const dpt_train_opts *opts;
    dpt_train_result *res;
    dpt_trainer *t;
    int root;
    char ckpt[DPT_PATH_MAX + 32], metrics_path[DPT_PATH_MAX + 32];
    FILE *mf;                   /* metrics.jsonl, rank 0 */
    int tty;                    /* rank 0 draws a live progress line */
    int64_t spe;                /* steps per epoch */
    dpt_optim_params schedule;  /* the learning-rate schedule's parameters */
    int64_t step;               /* global steps done */
    int64_t total_steps;        /* where the run ends: the epochs, or train.max_steps */
    int64_t run_start_step;
    double run_start, last_progress;
    int header_printed;
    int wrote_ckpt;             /* checkpoint.bin holds this run's progress */
    int last_good_epoch;        /* the epoch the checkpoint holds */
    long step_sleep_us;
    double last_step_hook;     /* when opts->step_hook last ran */
} run_state;

/* This epoch's sums over its steps. */
typedef struct {
    double loss, correct, rows, lr, start;
} epoch_sums;

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
        printf("  %-9s %s: one GPU per rank (its only visible GPU, else its local rank's), "
               "gradients through %s, training rows %s; CUDA Graph %s; GEMM epilogues %s\n",
               "device", t->be.name, dpt_reducer_path(t->reducer),
               t->batch.staged ? "staged through pinned memory" : "resident on the device",
               t->graph_why, t->epilogue_why);
    char comm_line[320];
    dpt_trainer_describe_comm(t, comm_line, sizeof comm_line);
    printf("  %-9s %s\n", "comm", comm_line);
    printf("  %-9s %s, %s: %lld train, %lld val, %lld test rows; %d features, %d %s\n", "data",
           dpt_format_name(cfg->data.format), d->sharded ? "sharded" : "replicated",
           (long long)d->train.n_total, (long long)d->val.n_total, (long long)d->test.n_total,
           cfg->model.widths[0], cfg->model.widths[cfg->model.n_layers],
           d->targets ? "targets" : "classes");
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

/* CRC-32 of this rank's parameter bytes. Fault injection for the tests:
 * DPT_INJECT_PARAM_FAULT=RANK:STEP perturbs one parameter of that rank before the check at that
 * step. */
static uint32_t params_crc(dpt_trainer *t, int64_t step)
{
    dpt_model *m = &t->model;
    const float *params = m->params;
    float *host = NULL;
    if (!t->be.host_memory) {
        host = malloc(m->n_params * sizeof(float));
        DPT_CHECK(host != NULL, "out of memory");
        t->be.download(&t->be, host, m->params, m->n_params * sizeof(float));
        params = host;
    }
    const char *inject = getenv("DPT_INJECT_PARAM_FAULT");
    int bad_rank = -1;
    long long bad_step = -1;
    float *copy = NULL;
    if (inject && sscanf(inject, "%d:%lld", &bad_rank, &bad_step) == 2 &&
        bad_rank == t->comm->rank && bad_step == step) {
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
    return (uint32_t)crc;
}

/* run.check_every: every rank hashes its parameters and all compare. Data parallelism keeps
 * them bitwise equal, so any difference is a fault (a flipped bit, a rank that skipped an
 * update, mismatched builds). Returns DPT_OK or DPT_ERUNTIME naming the ranks that differ from
 * rank 0, the same on every rank. */
static int check_consistency(dpt_trainer *t, int64_t step, dpt_error *err)
{
    dpt_comm *c = t->comm;
    uint32_t mine = params_crc(t, step);
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


/* The output directory is checked before any work: a full or read-only disk shows now. */
static int prepare_out_dir(const dpt_config *cfg, dpt_comm *comm, dpt_error *err)
{
    const char *out_dir = cfg->run.out_dir;
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (comm->rank == 0) {
        rc = dpt_mkdir_p(out_dir, &mine);
        if (rc == DPT_OK) rc = dpt_probe_writable(out_dir, &mine);
        if (rc == DPT_OK) rc = write_config(cfg, out_dir, &mine);
    }
    return dpt_comm_agree_error(comm, rc, &mine, err);
}

/* --resume: the run continues from the checkpoint's step when there is one. */
static int resume(run_state *r, dpt_error *err)
{
    int64_t step = 0;
    int rc = resume_from(r->t, r->ckpt, &step, err);
    if (rc != DPT_OK)
        return rc;
    /* quiet: a search's promoted trial, whose trial line says how it resumed */
    if (r->root && !r->opts->quiet && step < 0)
        printf("resume: no checkpoint at %s, starting from the beginning\n", r->ckpt);
    else if (r->root && !r->opts->quiet)
        printf("resume: %s at step %lld (epoch %lld of %d)\n", r->ckpt, (long long)step,
               (long long)(step / r->spe), r->cfg->train.epochs);
    r->step = step < 0 ? 0 : step;
    return DPT_OK;
}

/* model.json beside checkpoint.bin: what predict, eval and export need besides the weights. */
static int save_model_info(run_state *r, dpt_error *err)
{
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (r->root) {
        char path[DPT_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/model.json", r->cfg->run.out_dir);
        rc = dpt_model_info_save(path, r->cfg, &r->t->data, &mine);
    }
    return dpt_comm_agree_error(r->comm, rc, &mine, err);
}

/* Rank 0's start-up table and metrics.jsonl (appended to when resuming). */
static int open_outputs(run_state *r, dpt_error *err)
{
    int rc = DPT_OK;
    dpt_error mine = {0};
    char hosts[1024] = "";
    dpt_comm_hosts(r->comm, hosts, sizeof hosts);
    if (r->root) {
        if (!r->opts->quiet)
            print_startup(r->t, r->opts, r->cfg->run.out_dir, hosts);
        r->mf = fopen(r->metrics_path, r->opts->resume ? "a" : "w");
        if (!r->mf)
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot open '%s': %m", r->metrics_path);
    }
    return dpt_comm_agree_error(r->comm, rc, &mine, err);
}

/* Where the run ends, whether rank 0 draws a live line, and the clock, from the step the run
 * starts at. */
static void start_clock(run_state *r)
{
    const dpt_config *cfg = r->cfg;
    r->tty = r->root && (cfg->run.progress == DPT_PROGRESS_ON ||
                         (cfg->run.progress == DPT_PROGRESS_AUTO && isatty(fileno(stdout)) &&
                          getenv("OMPI_COMM_WORLD_SIZE") == NULL && getenv("PMI_SIZE") == NULL));
    r->total_steps = r->spe * cfg->train.epochs;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < r->total_steps)
        r->total_steps = cfg->train.max_steps;
    r->run_start = dpt_now();
    r->run_start_step = r->step;
    r->last_good_epoch = (int)(r->step / r->spe);
    /* DPT_TEST_STEP_SLEEP_US: a pause after every step, so that the signal tests can interrupt a
     * run mid-way however fast the machine is; it changes no result */
    const char *sleep_env = getenv("DPT_TEST_STEP_SLEEP_US");
    r->step_sleep_us = sleep_env ? strtol(sleep_env, NULL, 10) : 0;
    r->wrote_ckpt = r->opts->resume && r->step > 0;
}

static void clear_line(const run_state *r)
{
    if (r->tty)
        printf("\r\033[K");
}

/* The step's global loss is not finite: the run stops, and the error says what is kept. */
static int report_divergence(run_state *r, int epoch, double lr, dpt_error *err)
{
    dpt_step_stats st;
    dpt_trainer_stats(r->t, &st);
    clear_line(r);
    r->res->diverged = 1;
    if (r->wrote_ckpt)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "diverged: the training loss is %g at epoch %d, step %lld (lr "
                             "%g); the last good checkpoint (epoch %d) is kept at %s",
                             st.last_loss, epoch + 1, (long long)r->step, lr, r->last_good_epoch,
                             r->ckpt);
    return dpt_error_set(err, DPT_ERUNTIME,
                         "diverged: the training loss is %g at epoch %d, step %lld (lr "
                         "%g); no checkpoint had been written yet",
                         st.last_loss, epoch + 1, (long long)r->step, lr);
}

/* A rank received SIGINT or SIGTERM: every rank learned it from the same allreduce and stops
 * after this step, with a checkpoint. Returns 128 + the signal (or the checkpoint's failure). */
static int stop_on_signal(run_state *r, int epoch, dpt_error *err)
{
    clear_line(r);
    int sig = dpt_signals_pending(), any = 0;
    DPT_MPI_CHECK(MPI_Allreduce(&sig, &any, 1, MPI_INT, MPI_MAX, r->comm->world));
    r->res->interrupted = any;
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (r->root)
        rc = save_checkpoint(r->t, r->ckpt, (int)(r->step / r->spe), r->step, &mine);
    if ((rc = dpt_comm_agree_error(r->comm, rc, &mine, err)) != DPT_OK)
        return rc;
    rc = 128 + any;
    dpt_error_set(err, rc,
                  "stopped by %s at epoch %d, step %lld: checkpoint written to %s; "
                  "continue with --resume",
                  dpt_signals_name(any), epoch + 1, (long long)r->step, r->ckpt);
    r->res->steps = r->step;
    r->res->time_s = dpt_now() - r->run_start;
    return rc;
}

/* Rank 0's live line on a terminal: at most four times a second, every train.log_every steps. */
static void print_progress(run_state *r, int epoch, int64_t s, double last_loss)
{
    const dpt_config *cfg = r->cfg;
    if (!r->tty || r->step % cfg->train.log_every != 0 || !(dpt_now() - r->last_progress > 0.25))
        return;
    r->last_progress = dpt_now();
    double el = r->last_progress - r->run_start;
    double done_steps = (double)(r->step - r->run_start_step);
    double rate = done_steps * cfg->train.batch_size / el;
    char eta[32];
    dpt_format_duration(el / done_steps * (double)(r->total_steps - r->step), eta, sizeof eta);
    printf("\r\033[K  epoch %d/%d  step %lld/%lld  loss %.4f  %.0f samples/s  ETA %s",
           epoch + 1, cfg->train.epochs, (long long)(s + 1), (long long)r->spe,
           last_loss / cfg->train.batch_size, rate, eta);
    fflush(stdout);
}

/* The steps of one epoch, from where a resumed run left off. DPT_OK, or the code that ends the
 * run: divergence, a signal, a failed drift check. */
static int train_epoch(run_state *r, int epoch, epoch_sums *e, dpt_error *err)
{
    const dpt_config *cfg = r->cfg;
    dpt_step_stats st;
    dpt_trainer_reset_stats(r->t);
    memset(e, 0, sizeof *e);
    e->start = dpt_now();
    for (int64_t s = r->step - (int64_t)epoch * r->spe; s < r->spe && r->step < r->total_steps;
         s++) {
        e->lr = dpt_optim_lr(&r->schedule, r->step, r->spe);
        if (dpt_trainer_step(r->t, epoch, s, r->step, e->lr) == DPT_STEP_DIVERGED)
            return report_divergence(r, epoch, e->lr, err);
        r->step++;
        if (r->step_sleep_us > 0) /* test hook, see start_clock */
            usleep((useconds_t)r->step_sleep_us);
        if (r->opts->step_hook && dpt_now() - r->last_step_hook >= 1e-3) {
            r->opts->step_hook(r->opts->step_ctx);
            r->last_step_hook = dpt_now();
        }
        dpt_trainer_stats(r->t, &st);
        if (st.stop_requested)
            return stop_on_signal(r, epoch, err);
        int rc;
        if (cfg->run.check_every > 0 && r->step % cfg->run.check_every == 0 &&
            (rc = check_consistency(r->t, r->step, err)) != DPT_OK) {
            clear_line(r);
            return rc;
        }
        e->rows += cfg->train.batch_size;
        if (st.steps_read > 0) { /* the sums of the steps read: see dpt_step_stats */
            e->loss += st.last_loss;
            e->correct += st.last_correct;
            print_progress(r, epoch, s, st.last_loss / (double)st.steps_read);
        }
    }
    /* a device backend's steps since its last read (the run ended at train.max_steps) */
    if (dpt_trainer_read_stats(r->t) == DPT_STEP_DIVERGED)
        return report_divergence(r, epoch, e->lr, err);
    dpt_trainer_stats(r->t, &st);
    if (st.steps_read > 0) {
        e->loss += st.last_loss;
        e->correct += st.last_correct;
    }
    return DPT_OK;
}

/* The epoch's metrics: its sums, its times, and the evaluation of the validation and test
 * splits (every rank evaluates its part). */
static void measure_epoch(run_state *r, int epoch, const epoch_sums *e, double ep_time,
                          dpt_epoch_metrics *em)
{
    dpt_trainer *t = r->t;
    dpt_step_stats st;
    dpt_trainer_stats(t, &st);
    memset(em, 0, sizeof *em);
    em->epoch = epoch + 1;
    em->step = r->step;
    em->lr = e->lr;
    em->train_loss = e->rows > 0 ? e->loss / e->rows : NAN;
    em->train_accuracy = e->rows > 0 ? e->correct / e->rows : NAN;
    em->val_loss = em->val_accuracy = em->test_loss = em->test_accuracy = NAN;
    double t_eval = dpt_trace_begin(DPT_SPAN_EVALUATION);
    /* test hook DPT_TEST_STOP_AT_EVAL=R: rank R stops itself (SIGSTOP, a hung node) as evaluation
     * starts, so the stall test can hang the evaluation's collective however fast the machine */
    const char *stop_env = getenv("DPT_TEST_STOP_AT_EVAL");
    if (stop_env && atoi(stop_env) == r->comm->rank)
        raise(SIGSTOP);
    em->regression = t->data.targets > 0;
    em->val_rmse = em->val_mae = em->val_r2 = em->test_rmse = em->test_mae = em->test_r2 = NAN;
    if (em->regression) {
        em->train_accuracy = NAN;
        if (t->data.val.n_total > 0)
            dpt_trainer_evaluate_regression(t, &t->data.val, &em->val_loss, &em->val_rmse,
                                            &em->val_mae, &em->val_r2);
        if (t->data.test.n_total > 0)
            dpt_trainer_evaluate_regression(t, &t->data.test, &em->test_loss, &em->test_rmse,
                                            &em->test_mae, &em->test_r2);
    } else {
        if (t->data.val.n_total > 0)
            dpt_trainer_evaluate(t, &t->data.val, &em->val_loss, &em->val_accuracy);
        if (t->data.test.n_total > 0)
            dpt_trainer_evaluate(t, &t->data.test, &em->test_loss, &em->test_accuracy);
    }
    dpt_trace_span(t->trace, DPT_SPAN_EVALUATION, t_eval, dpt_trace_end(), r->step, -1);
    em->samples_per_s = e->rows / ep_time;
    em->time_s = ep_time;
    em->compute_s = st.t_compute;
    em->comm_s = st.t_comm;
    em->data_s = st.t_data;
    em->ranks = r->comm->size;
    em->rss_mb = dpt_metrics_rss_mb();
}

/* After an epoch: its metrics, rank 0's epoch line, metrics.jsonl and the checkpoint, and the
 * run's result so far. */
static int end_epoch(run_state *r, int epoch, const epoch_sums *e, dpt_epoch_metrics *em,
                     dpt_error *err)
{
    double ep_time = dpt_now() - e->start;
    clear_line(r);
    measure_epoch(r, epoch, e, ep_time, em);
    int rc = DPT_OK;
    dpt_error mine = {0};
    if (r->root) {
        if (!r->header_printed && !r->opts->quiet) {
            (em->regression ? dpt_metrics_print_header_regression
                            : dpt_metrics_print_header)(stdout);
            r->header_printed = 1;
        }
        if (!r->opts->quiet)
            dpt_metrics_print_row(stdout, em);
        if (dpt_metrics_append(r->mf, em) != 0)
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot append to '%s': %m", r->metrics_path);
        double t_ckpt = dpt_trace_begin(DPT_SPAN_CHECKPOINT);
        if (rc == DPT_OK)
            rc = save_checkpoint(r->t, r->ckpt, (int)(r->step / r->spe), r->step, &mine);
        dpt_trace_span(r->t->trace, DPT_SPAN_CHECKPOINT, t_ckpt, dpt_trace_end(), r->step, -1);
    }
    dpt_reducer_watch(r->t->reducer, "the checkpoint's agreement");
    rc = dpt_comm_agree_error(r->comm, rc, &mine, err);
    dpt_reducer_watch(r->t->reducer, NULL);
    if (rc != DPT_OK)
        return rc;
    r->wrote_ckpt = 1;
    r->last_good_epoch = (int)(r->step / r->spe);
    r->res->epochs = epoch + 1;
    r->res->train_loss = em->train_loss;
    r->res->val_loss = em->val_loss;
    r->res->val_accuracy = em->val_accuracy;
    r->res->val_rmse = em->val_rmse;
    r->res->test_accuracy = em->test_accuracy;
    return DPT_OK;
}

/* The epochs, until the last one, train.max_steps, or the epoch hook says stop. */
static int train_epochs(run_state *r, dpt_error *err)
{
    const dpt_config *cfg = r->cfg;
    for (int epoch = (int)(r->step / r->spe);
         epoch < cfg->train.epochs && r->step < r->total_steps; epoch++) {
        epoch_sums e;
        dpt_epoch_metrics em;
        int rc = train_epoch(r, epoch, &e, err);
        if (rc == DPT_OK)
            rc = end_epoch(r, epoch, &e, &em, err);
        if (rc != DPT_OK)
            return rc;
        /* the hook sees every epoch (a search records the whole curve); stopping after the
         * last one would change nothing */
        if (r->opts->epoch_hook && r->opts->epoch_hook(r->opts->hook_ctx, &em) &&
            r->step < r->total_steps && epoch + 1 < cfg->train.epochs) {
            r->res->stopped_early = 1;
            break;
        }
    }
    return DPT_OK;
}

static void print_summary(const run_state *r)
{
    const dpt_train_result *res = r->res;
    if (!r->root || r->opts->quiet)
        return;
    char dur[32];
    dpt_format_duration(res->time_s, dur, sizeof dur);
    if (r->step == r->run_start_step) {
        printf("nothing to do: the checkpoint is already at step %lld\n", (long long)r->step);
    } else {
        char acc[128] = "";
        if (!isnan(res->val_accuracy))
            snprintf(acc, sizeof acc, "; val accuracy %.2f%%", 100.0 * res->val_accuracy);
        if (!isnan(res->test_accuracy))
            snprintf(acc + strlen(acc), sizeof acc - strlen(acc), "; test accuracy %.2f%%",
                     100.0 * res->test_accuracy);
        if (!isnan(res->val_rmse))
            snprintf(acc, sizeof acc, "; val RMSE %.6g", res->val_rmse);
        printf("done: %d epoch%s, %lld steps in %s%s; outputs in %s\n", res->epochs,
               res->epochs == 1 ? "" : "s", (long long)r->step, dur, acc, r->cfg->run.out_dir);
    }
    fflush(stdout);
}

int dpt_train_run(const dpt_config *cfg, dpt_comm *comm, const dpt_train_opts *opts,
                  dpt_train_result *res, dpt_error *err)
{
    memset(res, 0, sizeof *res);
    res->train_loss = res->val_loss = res->val_accuracy = res->test_accuracy = res->val_rmse = NAN;
    int rc = prepare_out_dir(cfg, comm, err);
    if (rc != DPT_OK)
        return rc;
    run_state r = {.cfg = cfg, .comm = comm, .opts = opts, .res = res, .root = comm->rank == 0};
    snprintf(r.ckpt, sizeof r.ckpt, "%s/checkpoint.bin", cfg->run.out_dir);
    snprintf(r.metrics_path, sizeof r.metrics_path, "%s/metrics.jsonl", cfg->run.out_dir);
    if ((rc = dpt_trainer_init(&r.t, cfg, comm, err)) != DPT_OK)
        return rc;
    /* a search's trials (quiet) are not traced: groups of ranks would write one file at once */
    const char *trace = opts->quiet ? "" : cfg->run.trace;
    rc = dpt_trace_open(&r.t->trace, comm, trace, cfg->run.trace_steps, err);
    if (rc == DPT_OK)
        rc = save_model_info(&r, err);
    if (rc != DPT_OK) {
        dpt_trainer_free(r.t);
        return rc;
    }
    r.spe = dpt_trainer_steps_per_epoch(r.t);
    r.schedule = dpt_optim_params_from_config(cfg);

    if (opts->resume)
        rc = resume(&r, err);
    if (rc == DPT_OK)
        rc = open_outputs(&r, err);
    if (rc == DPT_OK) {
        start_clock(&r);
        rc = train_epochs(&r, err);
    }
    if (rc == DPT_OK) {
        res->steps = r.step;
        res->time_s = dpt_now() - r.run_start;
        print_summary(&r);
    }
    if (rc == DPT_OK) /* every rank gets here alike: the errors above are agreed */
        rc = dpt_trace_write(r.t->trace, err);
    if (r.mf)
        fclose(r.mf);
    dpt_trace_free(r.t->trace);
    dpt_trainer_free(r.t);
    return rc;
}
