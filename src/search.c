/* The search loop. Every rank runs it; rank 0 proposes, logs and decides.
 *
 * A round: rank 0 proposes one configuration per group (G = search.parallel; the later ones of a
 * round with the earlier ones pending, fantasized by the GP), broadcasts the values, each group
 * trains its trial data-parallel on its own communicator (MPI_Comm_split), the group leaders'
 * results are gathered to rank 0, which appends the round to trials.jsonl in one write and
 * fsync, prints a line per trial, rewrites best.yaml when the best improved, and broadcasts the
 * round's records so every rank holds the same history (early stopping reads it). That is
 * search.schedule: sync; async (the default) has no rounds: see "the asynchronous schedule".
 * Trial ids, random draws and proposals depend only on (run.seed, trial id, history), so a
 * resumed sync search proposes what the uninterrupted one would have; an async one depends also
 * on the order in which groups finish, which no run reproduces (and so do asha's stops with more
 * than one group, sync or async: the order in which trials reach a rung). The trial log
 * (trials.jsonl) is src/trial_log.c, the proposals and the stopping rule src/policy.c; here are
 * the loop, the trial runner, the ranks' own logs and rank 0's lines. */
#include "search.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "json.h"
#include "objective.h"
#include "policy.h"
#include "rng.h"
#include "signals.h"
#include "space.h"
#include "run.h"
#include "trial_log.h"
#include "util.h"

/* strncpy that always terminates, for messages that may be cut */
static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static const char *objective_label(const dpt_config *cfg)
{
    if (cfg->objective.function != DPT_FUNCTION_NONE)
        return dpt_function_name(cfg->objective.function);
    return dpt_search_objective_name(cfg->search.objective);
}

/* ---- early stopping: the group's leader asks the policy, the group follows ------------------ */

/* What a trial's ranks need besides its values: the history the median rule reads (on the
 * group's leader), this rank's own log, and, on rank 0 under the async schedule, the coordinator's
 * poll, called between its training steps (at most once a millisecond), between epochs and
 * during an evaluation's wait (NULL elsewhere). */
typedef struct {
    const dpt_trial *hist;
    int n_hist;
    int rank_log;
    void (*poll)(void *ctx);
    void *poll_ctx;
    /* asha with more than one group (either schedule): the decision at a rung, taken by rank 0
     * against every trial that reached the rung so far (finished or running); NULL: the policy
     * on hist */
    int (*rung_stop)(void *ctx, const dpt_trial *run);
    void *rung_ctx;
} trial_env;

typedef struct {
    const dpt_config *cfg;  /* the search's */
    const trial_env *env;
    dpt_comm *group;
    dpt_trial *run;      /* the trial being trained: its curve grows */
} stop_ctx;

/* asha with early_stopping.screen: every new trial trains a complete schedule of the screen's
 * epochs (asha's one rung; train.epochs set to it, so its learning rate ends there) and stops
 * there; what goes on are fills of the epoch budget, each trained again from the start for
 * train.epochs (from_screen). */
static int next_stop(const dpt_config *c, int e);
static int screening(const dpt_config *c)
{
    return c->search.stop_rule == DPT_STOP_ASHA && c->search.stop_screen &&
           c->objective.function == DPT_FUNCTION_NONE;
}

static int screen_epochs(const dpt_config *c)
{
    return next_stop(c, 0);
}

/* A new trial's run under the screen: a complete schedule of the screen's epochs. */
static int screen_run(const dpt_config *c, const dpt_trial *t)
{
    return screening(c) && t->resumed_from == 0;
}

/* A run of a trial promoted from the screen (a fill): from the start, for train.epochs. */
static int from_screen(const dpt_config *c, const dpt_trial *t)
{
    return screening(c) && t->resumed_from > 0 && t->resumed_from == screen_epochs(c);
}

/* A regression has no classification error: its val_error is val_rmse. */
static double objective_of(const dpt_config *cfg, double val_loss, double val_accuracy,
                           double val_rmse)
{
    if (cfg->search.objective == DPT_SEARCH_VAL_LOSS)
        return val_loss;
    if (cfg->search.objective == DPT_SEARCH_VAL_RMSE || cfg->data.task == DPT_TASK_REGRESSION)
        return val_rmse;
    return 1.0 - val_accuracy;
}

/* After each epoch, on every rank of the group: the leader decides, the group follows. */
static int stop_hook(void *ctx, const dpt_epoch_metrics *em)
{
    stop_ctx *c = ctx;
    if (c->env->poll)
        c->env->poll(c->env->poll_ctx);
    /* by the epoch's number: a promoted trial (asha, promote) resumes at its rung with the
     * curve so far, or, its checkpoint gone, trains again from the start */
    if (em->epoch >= 1 && em->epoch <= DPT_TRIAL_MAX_CURVE) {
        c->run->curve[em->epoch - 1] =
            objective_of(c->cfg, em->val_loss, em->val_accuracy, em->val_rmse);
        c->run->n_curve = em->epoch;
    }
    int stop = 0;
    if (c->run->n_curve <= c->run->resumed_from) /* promoted past it already */
        stop = 0;
    else if (screen_run(c->cfg, c->run)) /* a screen: ends at its rung */
        stop = 0;
    else if (c->group->rank == 0 && c->env->rung_stop &&
             dpt_policy_rung(c->cfg, c->run->n_curve) >= 0)
        stop = c->env->rung_stop(c->env->rung_ctx, c->run);
    else if (c->group->rank == 0)
        stop = dpt_policy_should_stop(c->cfg, c->env->hist, c->env->n_hist, c->run);
    if (stop == 2) /* rank 0: the rule let it on, the hard epoch budget did not */
        snprintf(c->run->message, sizeof c->run->message,
                 "stopped at epoch %d by the epoch budget (search.budget_epochs_hard): its next "
                 "stretch did not fit in what was left", c->run->n_curve);
    dpt_comm_bcast(c->group, &stop, sizeof stop, 0);
    return stop != 0;
}

/* ---- one trial ------------------------------------------------------------------------------- */

/* Every rank of the group: its own line of what it trains, from its own config. */
static void log_rank(int fd, const dpt_config *tcfg, const dpt_config *cfg, int id,
                     const dpt_comm *group, int group_index)
{
    if (fd < 0)
        return;
    char line[8192];
    dpt_json j;
    dpt_json_init(&j, line, sizeof line, 0);
    dpt_json_object(&j, NULL);
    dpt_json_int(&j, "trial", id);
    dpt_json_int(&j, "rank", group->world_rank);
    dpt_json_string(&j, "host", group->host);
    dpt_json_int(&j, "group", group_index);
    dpt_json_int(&j, "group_rank", group->rank);
    dpt_json_object(&j, "params");
    for (int i = 0; i < cfg->search.n_params && j.len < sizeof line; i++) {
        char text[DPT_PATH_MAX];
        int is_string;
        if (dpt_config_get(tcfg, cfg->search.params[i].key, text, sizeof text, &is_string) != 0)
            snprintf(text, sizeof text, "?");
        if (is_string)
            dpt_json_string(&j, cfg->search.params[i].key, text);
        else
            dpt_json_raw(&j, cfg->search.params[i].key, text);
    }
    dpt_json_end(&j);
    dpt_json_end(&j);
    dpt_json_tail(&j, "\n");
    if (j.len < sizeof line && write(fd, line, j.len) != (ssize_t)j.len)
        fprintf(stderr, "%s warning: cannot write this rank's search log: %s\n", dpt_error_tag(),
                strerror(errno));
}

/* The duration model (objective.duration): the evaluation waits duration * scale(x) *
 * exp(0.5 N), N a standard normal drawn from (run.seed, trial id), so every rank of the group
 * waits alike. Rank 0 waits in 1 ms slices and answers the other groups between them. */
static void wait_duration(const dpt_config *cfg, dpt_objective_kind kind, const double *x, int id,
                          const trial_env *env)
{
    if (!(cfg->objective.duration > 0.0))
        return;
    double z = dpt_rng_normal(cfg->run.seed, DPT_RNG_SEARCH, (5ULL << 40) | (uint64_t)id);
    double t = cfg->objective.duration * dpt_objective_duration_scale(kind, x) * exp(0.5 * z);
    double end = dpt_now() + t;
    for (double left = t; left > 0.0 && !dpt_signals_pending(); left = end - dpt_now()) {
        double slice = env->poll ? fmin(left, 1e-3) : fmin(left, 0.05);
        struct timespec ts = {(time_t)slice, (long)((slice - (double)(time_t)slice) * 1e9)};
        nanosleep(&ts, NULL);
        if (env->poll)
            env->poll(env->poll_ctx);
    }
}

/* Function mode: the built-in objective at the trial's point, as one epoch. */
static void evaluate_function(const dpt_config *cfg, const dpt_config *tcfg, dpt_trial *rec,
                              const trial_env *env)
{
    dpt_objective_kind kind = cfg->objective.function == DPT_FUNCTION_BRANIN
                                  ? DPT_OBJECTIVE_BRANIN
                                  : DPT_OBJECTIVE_HARTMANN6;
    wait_duration(cfg, kind, tcfg->objective.x, rec->trial, env);
    rec->objective = dpt_objective_eval_natural(kind, tcfg->objective.x);
    /* the feasibility benchmark's divergent region: one of Branin's three minima lies in it */
    if (cfg->objective.diverge_corner && kind == DPT_OBJECTIVE_BRANIN &&
        tcfg->objective.x[0] > 5.0 && tcfg->objective.x[1] < 5.0)
        rec->objective = NAN;
    rec->curve[0] = rec->objective;
    rec->n_curve = 1;
    rec->epochs = 1;
    rec->status = isfinite(rec->objective) ? DPT_TRIAL_OK : DPT_TRIAL_DIVERGED;
}

/* Training: the group trains tcfg into OUT/trials/NNNN, the median rule asked after each epoch;
 * the outcome (ok, stopped early, diverged, failed, interrupted, error) into rec. */
static void train_trial(const dpt_config *cfg, dpt_config *tcfg, dpt_comm *group,
                        const trial_env *env, dpt_trial *rec)
{
    if (snprintf(tcfg->run.out_dir, sizeof tcfg->run.out_dir, "%s/trials/%04d", cfg->run.out_dir,
                 rec->trial) >= (int)sizeof tcfg->run.out_dir) {
        rec->status = DPT_TRIAL_ERROR;
        snprintf(rec->message, sizeof rec->message, "the output directory path is too long");
        return;
    }
    tcfg->run.progress = DPT_PROGRESS_OFF;
    /* promoted (asha, promote): resumes the checkpoint its run left at the rung; if that is not
     * there (no file system shared with the group that stopped it, or a later epoch's, from a
     * promotion cut short by the job's end), it trains again from the start */
    int resume = 0, restart = from_screen(cfg, rec);
    if (screen_run(cfg, rec))
        tcfg->train.epochs = screen_epochs(cfg);
    if (restart) {
        rec->n_curve = 0;
    } else if (rec->resumed_from > 0) {
        int at = -1;
        if (group->rank == 0) {
            char path[DPT_PATH_MAX + 32];
            dpt_ckpt_header h;
            dpt_error ignored;
            snprintf(path, sizeof path, "%s/checkpoint.bin", tcfg->run.out_dir);
            if (dpt_checkpoint_load(path, &h, NULL, NULL, &ignored) == DPT_OK)
                at = (int)h.epoch;
        }
        dpt_comm_bcast(group, &at, sizeof at, 0);
        resume = at == rec->resumed_from;
        if (!resume)
            rec->n_curve = 0;
    }
    stop_ctx sc = {cfg, env, group, rec};
    dpt_train_opts to = {.config_path = NULL, .resume = resume, .quiet = 1,
                         .epoch_hook = stop_hook, .hook_ctx = &sc,
                         .step_hook = env->poll, .step_ctx = env->poll_ctx};
    dpt_train_result res;
    dpt_error terr = {0};
    int rc = dpt_train_run(tcfg, group, &to, &res, &terr);
    rec->epochs = res.epochs > rec->n_curve ? res.epochs : rec->n_curve;
    if (restart) { /* the screen's epochs, recorded in the line this one replaces, and these */
        rec->epochs += rec->resumed_from;
        snprintf(rec->message, sizeof rec->message,
                 "promoted from the screen at epoch %d (asha, screen; a fill): trained again from "
                 "the start for %d epochs", rec->resumed_from, tcfg->train.epochs);
    } else if (rec->resumed_from > 0 && !resume)
        snprintf(rec->message, sizeof rec->message,
                 "promoted at epoch %d (asha), but its checkpoint of that epoch was not found (no "
                 "file system shared with the group that stopped it, or one of a later epoch "
                 "left by a promotion the job's end cut short): trained again from the start",
                 rec->resumed_from);
    if (rc == DPT_OK) {
        rec->status = res.stopped_early ? DPT_TRIAL_STOPPED_EARLY : DPT_TRIAL_OK;
        if (screen_run(cfg, rec)) {
            rec->status = DPT_TRIAL_STOPPED_EARLY;
            snprintf(rec->message, sizeof rec->message,
                     "screened (asha, screen): a complete schedule of %d epochs; it goes on "
                     "only as a fill, trained again from the start", tcfg->train.epochs);
        }
        rec->objective = objective_of(cfg, res.val_loss, res.val_accuracy, res.val_rmse);
        rec->val_accuracy = res.val_accuracy;
        if (!isfinite(rec->objective)) {
            rec->status = DPT_TRIAL_DIVERGED;
            snprintf(rec->message, sizeof rec->message, "the validation %s is not finite",
                     cfg->search.objective == DPT_SEARCH_VAL_LOSS ? "loss"
                     : cfg->data.task == DPT_TASK_REGRESSION       ? "RMSE"
                                                                   : "accuracy");
        }
    } else if (res.interrupted) {
        rec->status = DPT_TRIAL_INTERRUPTED;
        rec->epochs = res.interrupted; /* carries the signal to rank 0 */
    } else {
        rec->status = res.diverged       ? DPT_TRIAL_DIVERGED
                      : rc == DPT_EUSAGE ? DPT_TRIAL_FAILED
                                         : DPT_TRIAL_ERROR;
        copy_text(rec->message, sizeof rec->message, terr.msg);
    }
}

/* Every rank of the group: the trial's config (a value combination the config refuses fails the
 * trial, not the search), this rank's log line, then the objective or the training. */
static void run_trial(const dpt_config *cfg, dpt_comm *group, int group_index,
                      const trial_env *env, dpt_trial *rec)
{
    double t0 = dpt_now();
    rec->group = group_index;
    rec->objective = rec->val_accuracy = NAN;
    dpt_config *tcfg = malloc(sizeof *tcfg);
    DPT_CHECK(tcfg != NULL, "out of memory");
    dpt_error terr = {0};
    if (dpt_space_apply(cfg, rec->values, tcfg, &terr) != DPT_OK) {
        rec->status = DPT_TRIAL_FAILED;
        copy_text(rec->message, sizeof rec->message, terr.msg);
    } else {
        log_rank(env->rank_log, tcfg, cfg, rec->trial, group, group_index);
        if (cfg->objective.function != DPT_FUNCTION_NONE)
            evaluate_function(cfg, tcfg, rec, env);
        else
            train_trial(cfg, tcfg, group, env, rec);
    }
    free(tcfg);
    rec->time_s = dpt_now() - t0;
}

/* ---- rank 0's lines -------------------------------------------------------------------------- */

static void describe_values(const dpt_config *cfg, const dpt_space_value *v, char *out, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < cfg->search.n_params && used < n; i++) {
        const dpt_space_param *p = &cfg->search.params[i];
        if (p->type == DPT_SPACE_CATEGORICAL)
            used += (size_t)snprintf(out + used, n - used, "%s%s=%s", i ? " " : "", p->key,
                                     p->choices[v[i].choice]);
        else
            used += (size_t)snprintf(out + used, n - used, "%s%s=%.4g", i ? " " : "", p->key,
                                     v[i].num);
    }
}

static void print_trial(const dpt_config *cfg, const dpt_trial *r, double best, int total)
{
    char params[2048], obj[32], bst[32], t[32];
    describe_values(cfg, r->values, params, sizeof params);
    if (isfinite(r->objective))
        snprintf(obj, sizeof obj, "%.6g", r->objective);
    else
        snprintf(obj, sizeof obj, "-");
    if (isfinite(best))
        snprintf(bst, sizeof bst, "%.6g", best);
    else
        snprintf(bst, sizeof bst, "-");
    if (isfinite(r->time_s))
        snprintf(t, sizeof t, "%.1fs", r->time_s);
    else
        snprintf(t, sizeof t, "-");
    char id[32];
    snprintf(id, sizeof id, "%d/%d", r->trial + 1, total);
    char start[32];
    snprintf(start, sizeof start, "%.1fs", r->start_s);
    printf("%9s  %-13s %12s %12s %6d %8s %5d %8s  %s\n", id, dpt_trial_status_name(r->status), obj,
           bst, r->epochs, t, r->group, start, params);
    int restarted = r->resumed_from > 0 && strncmp(r->message, "promoted", 8) == 0;
    if (r->message[0] && (r->status != DPT_TRIAL_OK || restarted))
        printf("%9s  %s\n", "", r->message);
    if (r->resumed_from > 0 && !restarted && r->status != DPT_TRIAL_INFRA_FAILED)
        printf("%9s  promoted at epoch %d (asha): ran on from its checkpoint there\n", "",
               r->resumed_from);
    fflush(stdout);
}

/* asha's rungs, as the policy computes them: "rungs at epochs 1 3 9, top 1/3 continue". */
static void print_rungs(const dpt_config *c)
{
    printf("  %-9s asha: rungs at epoch", "stopping");
    int n = 0;
    for (int e = 1; e < c->train.epochs; e++)
        if (dpt_policy_rung(c, e) >= 0)
            printf("%s %d", n++ ? "," : "s", e);
    if (n == 0)
        printf("s: none below %d epochs, every trial trains them all", c->train.epochs);
    if (screening(c)) {
        printf(": the screen\n  %-9s asha: every new trial trains a complete schedule of %d "
               "epochs (its learning rate ends there) and stops; once every trial is screened, "
               "what is left of the epoch budget goes to the best of them, each trained again "
               "from the start for %d epochs (screen, fill)\n", "", screen_epochs(c),
               c->train.epochs);
        printf("  %-9s asha: the GP reads every trial at its screen value\n", "");
        return;
    }
    printf("; the top 1/%d at each continue\n", c->search.stop_eta);
    if (n > 0 && c->search.stop_promote)
        printf("  %-9s asha: a stopped trial waits at its rung and resumes from its checkpoint "
               "once it ranks in the top 1/%d there (promote)\n", "", c->search.stop_eta);
    if (n > 0 && c->search.stop_promote && c->search.budget_epochs > 0)
        printf("  %-9s asha: once no new trial may start, what is left of the epoch budget goes "
               "to the stopped trials, highest rung first, that can train to the end within it "
               "(fill)\n", "");
    if (n > 0 && c->search.stop_fidelity == DPT_FIDELITY_MEDIAN_GAP)
        printf("  %-9s asha: the GP reads a stopped trial at its rung value plus the median "
               "(final - rung) gap of the completed trials (raw until %d have completed)\n",
               "", DPT_FIDELITY_GAP_MIN);
    else if (n > 0 && c->search.stop_fidelity == DPT_FIDELITY_GP)
        printf("  %-9s asha: the GP reads every trial's values at its rungs and where it ended, "
               "with the epochs as an input; proposals for the last epoch\n", "");
    else if (n > 0)
        printf("  %-9s asha: the GP reads a stopped trial at its rung value, as if final\n", "");
}

static void print_startup(const dpt_config *cfg, const dpt_comm *comm, const dpt_search_opts *opts,
                          int trials, int groups, const char *hosts)
{
    const dpt_config *c = cfg;
    printf("dptrain %s  search %s\n", DPT_VERSION, opts->config_path ? opts->config_path : "");
    if (c->search.algorithm == DPT_SEARCH_BAYES)
        printf("  %-9s bayes (GP, Matern 5/2, Expected Improvement%s), %d trials, the first %d "
               "random%s; minimizing %s\n",
               "search",
               c->search.acquisition == DPT_ACQUISITION_EI_PER_SECOND ? " per second" : "", trials, c->search.initial_random < trials ? c->search.initial_random : trials,
               c->search.start_from_config ? " (trial 1: the config's own values)" : "",
               objective_label(c));
    else
        printf("  %-9s %s, %d trials; minimizing %s\n", "search",
               dpt_search_algorithm_name(c->search.algorithm), trials, objective_label(c));
    printf("  %-9s %d rank%s on %d host%s: %s; ", "ranks", comm->size, comm->size > 1 ? "s" : "",
           comm->n_nodes, comm->n_nodes > 1 ? "s" : "", hosts);
    if (groups == 1)
        printf("all ranks train each trial together\n");
    else
        printf("%d groups train different trials at once (%s)\n", groups,
               c->search.schedule == DPT_SCHEDULE_ASYNC
                   ? "async: each gets its next trial as it finishes"
                   : "sync: in rounds");
    if (c->search.budget_epochs > 0 && c->search.budget_epochs_hard)
        printf("  %-9s %d epochs in all, held: a trial starts, or goes on past a rung, only if the "
               "epochs to its next rung (or its last epoch) fit in what is left, or %d trials\n",
               "budget", c->search.budget_epochs, trials);
    else if (c->search.budget_epochs > 0)
        printf("  %-9s %d epochs in all: no new trial once the trials have trained them (the "
               "running ones finish), or %d trials\n", "budget", c->search.budget_epochs, trials);
    if (c->search.budget_seconds > 0.0)
        printf("  %-9s %g seconds: no new trial once the search's clock reaches them (the "
               "running ones finish), or %d trials\n", "budget", c->search.budget_seconds, trials);
    if (c->objective.function == DPT_FUNCTION_NONE) {
        if (c->search.stop_rule == DPT_STOP_MEDIAN)
            printf("  %-9s median rule after %d grace epoch%s, once %d trials have finished\n",
                   "stopping", c->search.stop_grace_epochs,
                   c->search.stop_grace_epochs == 1 ? "" : "s", c->search.stop_min_trials);
        else if (c->search.stop_rule == DPT_STOP_ASHA)
            print_rungs(c);
        else
            printf("  %-9s none: every trial trains all %d epochs\n", "stopping", c->train.epochs);
    }
    for (int i = 0; i < c->search.n_params; i++) {
        const dpt_space_param *p = &c->search.params[i];
        printf("  %-9s %-24s %s", i == 0 ? "space" : "", p->key, dpt_space_type_name(p->type));
        if (p->type == DPT_SPACE_CATEGORICAL) {
            for (int k = 0; k < p->n_choices; k++)
                printf("%s%s", k ? ", " : " ", p->choices[k]);
        } else {
            printf(" [%g, %g]%s", p->low, p->high, p->type == DPT_SPACE_INT && p->log ? " log" : "");
        }
        printf("\n");
    }
    printf("  %-9s %s (trials.jsonl, best.yaml%s)\n", "output", c->run.out_dir,
           c->objective.function == DPT_FUNCTION_NONE ? ", trials/NNNN/" : "");
    printf("%9s  %-13s %12s %12s %6s %8s %5s %8s  %s\n", "trial", "status", objective_label(c),
           "best", "epochs", "time", "group", "start", "params");
    fflush(stdout);
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Checks every rank can make alike (the config is the same everywhere). */
static int check_search(const dpt_config *cfg, const dpt_comm *comm, dpt_error *err)
{
    const dpt_config *c = cfg;
    if (c->search.n_params == 0)
        return dpt_error_set(err, DPT_EUSAGE, "search.space is empty: nothing to search");
    if (c->objective.function == DPT_FUNCTION_NONE && c->data.validation_fraction <= 0.0)
        return dpt_error_set(err, DPT_EUSAGE,
                             "the search minimizes a validation objective, but "
                             "data.validation_fraction is 0: set it above 0 (e.g. 0.1)");
    if (c->search.budget_epochs > 0 && c->objective.function != DPT_FUNCTION_NONE)
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.budget_epochs is %d, but objective.function %s trains no "
                             "epochs: bound the search with search.trials instead",
                             c->search.budget_epochs, dpt_function_name(c->objective.function));
    if (c->search.budget_epochs_hard &&
        (c->search.budget_epochs <= 0 || c->search.schedule != DPT_SCHEDULE_ASYNC))
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.budget_epochs_hard holds each trial to search.budget_epochs "
                             "as rank 0 hands it out and at its rungs: it needs "
                             "search.budget_epochs above 0 and search.schedule: async (sync "
                             "rounds are not built for it)");
    if (c->search.stop_promote && (c->search.stop_rule != DPT_STOP_ASHA ||
                                   c->search.schedule != DPT_SCHEDULE_ASYNC ||
                                   c->objective.function != DPT_FUNCTION_NONE))
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.early_stopping.promote resumes trials asha stopped at a "
                             "rung when they later rank in its top 1/eta: it needs "
                             "early_stopping.rule: asha, search.schedule: async and a training "
                             "search (not objective.function)");
    if (c->search.stop_screen &&
        (!c->search.stop_promote || c->search.budget_epochs <= 0 ||
         c->search.stop_fidelity != DPT_FIDELITY_RAW))
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.early_stopping.screen trains every new trial for a complete "
                             "schedule of grace_epochs epochs and then the best of them again "
                             "from the start as fills of the epoch budget: it needs "
                             "early_stopping.promote: true, search.budget_epochs above 0 and "
                             "early_stopping.fidelity: raw");
    if (c->search.stop_screen && (screen_epochs(c) >= c->train.epochs ||
                                  next_stop(c, screen_epochs(c)) < c->train.epochs))
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.early_stopping.screen needs exactly one asha rung below "
                             "train.epochs (%d), the screen: grace_epochs below it and "
                             "grace_epochs * eta at or past it (%s)", c->train.epochs,
                             screen_epochs(c) >= c->train.epochs ? "here there is none"
                                                                 : "here there are more");
    if (c->search.parallel > comm->size)
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.parallel is %d but there %s only %d rank%s: each group "
                             "needs at least one",
                             c->search.parallel, comm->size == 1 ? "is" : "are", comm->size,
                             comm->size == 1 ? "" : "s");
    return dpt_policy_check(c, err);
}

/* The async schedule's messages (see "the asynchronous schedule" below). */
enum { TAG_DONE = 7101, TAG_WORK = 7102, TAG_HIST = 7103, TAG_RUNG = 7104, TAG_RUNG_STOP = 7105 };

/* asha with more than one group: a trial's value at a rung, as its leader reports it to rank 0 */
typedef struct {
    int trial, epoch;
    double value;
    int stop; /* rank 0's decision, as kept: 0 on, 1 stopped by the rule, 2 by the hard budget */
} rung_report;

typedef struct {
    int stop;       /* 1: no more trials for this group */
    int n_hist;     /* history records that follow (TAG_HIST), for the median rule */
    dpt_trial rec;  /* the trial: id, values, propose_s, group, start_s */
} assignment;

typedef struct {
    dpt_trial rec;  /* the outcome */
    int sig;        /* a signal the group's leader holds */
} report;

typedef struct {
    int id, attempt;
} slot;

/* What every rank holds during a search. */
typedef struct {
    const dpt_config *cfg;
    dpt_comm *comm;
    int root;
    int trials;               /* the budget (dpt_policy_budget) */
    int groups, my_group;     /* G, and this rank's group: contiguous blocks of ranks */
    dpt_comm group;
    int leader_of[4096];      /* group g is led by its lowest rank */
    slot slots[4096];         /* sync: the round's trial per group */
    char trials_path[DPT_PATH_MAX + 32], best_path[DPT_PATH_MAX + 32];
    dpt_trial *hist;          /* n_hist records, room for the whole budget */
    int n_hist;
    int best;                 /* index into hist of the best result, -1 while none */
    int next_id;              /* no id below it is free */
    int trials_fd;            /* rank 0: trials.jsonl, open for appending */
    char journal_path[DPT_PATH_MAX + 32];
    int journal_fd;           /* rank 0: running.jsonl, each hand-out and interruption */
    dpt_trial *infra;         /* rank 0: the infrastructure failures recorded (n_infra) */
    int n_infra, cap_infra, n_infra0;
    dpt_trial *retry;         /* rank 0: trials to run again with their values, oldest first */
    int n_retry, cap_retry;
    int rank_log;             /* this rank's own log of what it trained, -1 if none */
    dpt_trial *gathered;      /* rank 0: one record per rank */
    dpt_trial *mine_rec;      /* this rank's record of the round */
    dpt_config *best_cfg;     /* rank 0: best.yaml's config */
    double t0;                /* rank 0: dpt_now() at this run's start */
    double clock0;            /* the search's clock then: 0, or the last end_s recorded */
    int n_hist0;              /* records before this run (utilization counts this run's) */
    /* rank 0 under the async schedule */
    dpt_trial *running;       /* (G) each group's trial while active[g] */
    int *active, n_active;
    int *waiting;             /* (G) asha with promote: a group with nothing to do now, told
                               * once a trial is promotable or none is running */
    double busy_replaced;     /* rank-seconds of this run's records that promoted trials'
                               * records replaced in the history (utilization counts them) */
    int stopping;             /* a signal's number: hand out no more trials */
    int fatal;                /* the first error, kept in mine */
    dpt_error mine;
    assignment own;           /* group 0's trial, trained by rank 0 */
    rung_report *rungs;       /* asha: rung values of the trials not yet in the history */
    int n_rungs, cap_rungs;
    FILE *rung_log;           /* OUT/rungs.jsonl: each rung decision and what it saw */
} search_state;

/* The search's clock: seconds from its start, continued across --resume. */
static double search_clock(const search_state *s)
{
    return s->clock0 + (dpt_now() - s->t0);
}

static int group_ranks(const search_state *s, int g)
{
    return (g + 1 < s->groups ? s->leader_of[g + 1] : s->comm->size) - s->leader_of[g];
}

/* ---- asha's rung decisions on rank 0, under either schedule with more than one group --------- */

/* A trial reaching a rung is compared with every trial rank 0 knows to have reached it: the
 * finished ones (their curves in the history) and the running ones that reported it (s->rungs,
 * dropped when their record arrives). Rank 0 decides for its own group at once; another group's
 * leader asks (TAG_RUNG) and waits for the answer, which rank 0 gives at its next poll: at most a
 * step or an evaluation of its own trial, or about 1 ms. Under async the running trials are the
 * other groups' current ones; under sync, the round's (rank 0 answers until every group has
 * finished its trial: round_end). Each decision is a line of OUT/rungs.jsonl with the trials it
 * saw, so that a test can replay it. */
static int rungs_on_root(const search_state *s)
{
    return s->cfg->search.stop_rule == DPT_STOP_ASHA &&
           (s->groups > 1 || s->cfg->search.stop_promote || s->cfg->search.budget_epochs_hard);
}

static void open_rung_log(search_state *s)
{
    char path[DPT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/rungs.jsonl", s->cfg->run.out_dir);
    s->rung_log = fopen(path, "a");
    if (!s->rung_log)
        fprintf(stderr, "%s warning: cannot open %s: the rung decisions are not logged\n",
                dpt_error_tag(), path);
}

static void forget_rungs(search_state *s, int trial)
{
    int n = 0;
    for (int k = 0; k < s->n_rungs; k++)
        if (s->rungs[k].trial != trial)
            s->rungs[n++] = s->rungs[k];
    s->n_rungs = n;
}

/* A running trial's report counts at rep's rung: same rung, another trial, a finite value (a
 * trial with no finite value yet counts nowhere, as a diverged one in the history). */
static int rung_counts(const rung_report *r, const rung_report *rep)
{
    return r->epoch == rep->epoch && r->trial != rep->trial && isfinite(r->value);
}

/* A line of OUT/rungs.jsonl: rep's decision (key "continue" at its arrival, "promote" for a
 * trial stopped there earlier) and the values it was compared with: the history's other
 * trials with a curve through the rung and the running trials that reported it. */
static void log_rung(search_state *s, rung_report rep, const char *key, int yes, int budget)
{
    if (!s->rung_log)
        return;
    char value[32] = "null"; /* no finite value yet: JSON has no inf */
    if (isfinite(rep.value))
        snprintf(value, sizeof value, "%.17g", rep.value);
    fprintf(s->rung_log, "{\"trial\":%d,\"epoch\":%d,\"value\":%s,\"seen\":[", rep.trial,
            rep.epoch, value);
    int first = 1;
    for (int k = 0; k < s->n_hist; k++) /* not a fill from the screen: its curve is a new run's */
        if (s->hist[k].trial != rep.trial && dpt_trial_has_result(&s->hist[k]) &&
            s->hist[k].n_curve >= rep.epoch && !from_screen(s->cfg, &s->hist[k])) {
            fprintf(s->rung_log, "%s[%d,%.17g]", first ? "" : ",", s->hist[k].trial,
                    dpt_policy_rung_value(&s->hist[k], rep.epoch));
            first = 0;
        }
    for (int k = 0; k < s->n_rungs; k++)
        if (rung_counts(&s->rungs[k], &rep)) {
            fprintf(s->rung_log, "%s[%d,%.17g]", first ? "" : ",", s->rungs[k].trial,
                    s->rungs[k].value);
            first = 0;
        }
    fprintf(s->rung_log, "],\"%s\":%s%s}\n", key, yes ? "true" : "false",
            budget ? ",\"budget\":true" : "");
    fflush(s->rung_log);
}

static void wake_waiting(search_state *s);
static int hard_budget(const dpt_config *c);
static int next_stop(const dpt_config *c, int e);
static long epochs_held(const search_state *s);

/* Returns 0 (on), 1 (stopped by the rule) or 2 (stopped by the hard budget). */
static int rung_decide(search_state *s, rung_report rep, const dpt_trial *run)
{
    double *v = malloc(((size_t)s->n_rungs + 1) * sizeof *v);
    DPT_CHECK(v != NULL, "out of memory");
    int m = 0;
    for (int k = 0; k < s->n_rungs; k++)
        if (rung_counts(&s->rungs[k], &rep))
            v[m++] = s->rungs[k].value;
    int stop = dpt_policy_asha_stop_seen(s->cfg, s->hist, s->n_hist, v, m, run);
    /* the hard budget: on only if the epochs to its next rung (or the end) fit; this trial's
     * epochs to this rung are already held (epochs_held) */
    if (!stop && hard_budget(s->cfg) &&
        epochs_held(s) + next_stop(s->cfg, rep.epoch) - rep.epoch > s->cfg->search.budget_epochs)
        stop = 2;
    log_rung(s, rep, "continue", !stop, stop == 2);
    free(v);
    rep.stop = stop;
    if (s->n_rungs == s->cap_rungs) {
        s->cap_rungs = s->cap_rungs ? 2 * s->cap_rungs : 64;
        rung_report *grown = realloc(s->rungs, (size_t)s->cap_rungs * sizeof *grown);
        DPT_CHECK(grown != NULL, "out of memory");
        s->rungs = grown;
    }
    s->rungs[s->n_rungs++] = rep;
    wake_waiting(s); /* one more at the rung: a stopped trial there may rank in its top now */
    return stop;
}

/* Rank 0's own group at a rung. */
static int rung_stop_root(void *ctx, const dpt_trial *run)
{
    search_state *s = ctx;
    rung_report rep = {run->trial, run->n_curve, dpt_policy_rung_value(run, run->n_curve), 0};
    return rung_decide(s, rep, run);
}

/* Rank 0: another group's question at a rung (only the curve up to the rung matters). */
static void answer_rung(search_state *s, int source)
{
    rung_report rep;
    MPI_Comm w = s->comm->world;
    DPT_MPI_CHECK(MPI_Recv(&rep, (int)sizeof rep, MPI_BYTE, source, TAG_RUNG, w,
                           MPI_STATUS_IGNORE));
    dpt_trial *run = calloc(1, sizeof *run);
    DPT_CHECK(run != NULL, "out of memory");
    run->trial = rep.trial;
    run->n_curve = rep.epoch;
    for (int e = 0; e < rep.epoch; e++) /* its best through the rung is all the rule reads */
        run->curve[e] = rep.value;
    int stop = rung_decide(s, rep, run);
    free(run);
    DPT_MPI_CHECK(MPI_Send(&stop, 1, MPI_INT, source, TAG_RUNG_STOP, w));
}

/* A group's leader at a rung: asks rank 0. */
static int rung_stop_ask(void *ctx, const dpt_trial *run)
{
    search_state *s = ctx;
    rung_report rep = {run->trial, run->n_curve, dpt_policy_rung_value(run, run->n_curve), 0};
    MPI_Comm w = s->comm->world;
    int stop;
    DPT_MPI_CHECK(MPI_Send(&rep, (int)sizeof rep, MPI_BYTE, 0, TAG_RUNG, w));
    DPT_MPI_CHECK(MPI_Recv(&stop, 1, MPI_INT, 0, TAG_RUNG_STOP, w, MPI_STATUS_IGNORE));
    return stop;
}

/* Rank 0: the rung questions waiting, answered without blocking; returns how many. */
static int answer_rungs(search_state *s)
{
    for (int n = 0;; n++) {
        int flag = 0;
        MPI_Status st;
        DPT_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_RUNG, s->comm->world, &flag, &st));
        if (!flag)
            return n;
        answer_rung(s, st.MPI_SOURCE);
    }
}

/* Rank 0's poll during a sync round. */
static void serve_rungs(void *ctx)
{
    answer_rungs(ctx);
}

/* The end of a sync round whose rungs rank 0 decides: every rank enters a non-blocking barrier
 * once its trial is done, and rank 0 answers the groups still at their rungs until all have. */
static void round_end(search_state *s)
{
    MPI_Request req;
    DPT_MPI_CHECK(MPI_Ibarrier(s->comm->world, &req));
    if (!s->root) {
        DPT_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));
        return;
    }
    for (;;) {
        int done = 0;
        DPT_MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
        if (done)
            return;
        serve_rungs(s);
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

/* ---- infrastructure failures: recorded, kept out of the model, run again ---------------------
 *
 * A trial the infrastructure failed (an I/O error inside it, or the whole job ended while it ran:
 * a lost or stalled rank, which the watchdog ends with MPI_Abort, a SIGKILL, a node that died)
 * says nothing about its configuration. It is recorded in trials.jsonl with status infra_failed
 * and its reason, kept out of the history (no GP, no early stopping, no budget), and runs again
 * with the same id and values up to search.max_retries times; after that it is recorded as
 * failed with the reason. A job that dies cannot record anything, so rank 0 keeps a journal,
 * OUT/running.jsonl: a line per hand-out (status running, with its attempt) and per trial a
 * signal interrupted (which runs again afresh, as before). On --resume a hand-out with neither
 * an outcome, nor an infra_failed record, nor an interruption was lost with the job. */

static void push_trial(dpt_trial **a, int *n, int *cap, const dpt_trial *r)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        dpt_trial *grown = realloc(*a, (size_t)*cap * sizeof **a);
        DPT_CHECK(grown != NULL, "out of memory");
        *a = grown;
    }
    (*a)[(*n)++] = *r;
}

static int infra_count(const search_state *s, int id)
{
    int n = 0;
    for (int k = 0; k < s->n_infra; k++)
        n += s->infra[k].trial == id;
    return n;
}

/* A line of the journal; a warning when it cannot be written (the results are not at stake, only
 * what a later --resume learns of this trial). */
static void journal_note(search_state *s, const dpt_trial *r, int status)
{
    dpt_trial *line = malloc(sizeof *line);
    DPT_CHECK(line != NULL, "out of memory");
    *line = *r;
    line->status = status;
    line->n_curve = 0;
    line->message[0] = '\0';
    dpt_error jerr;
    if (s->journal_fd >= 0 &&
        dpt_trial_log_append(s->journal_fd, s->journal_path, s->cfg, line, 1, &jerr) != DPT_OK)
        fprintf(stderr, "%s warning: %s\n", dpt_error_tag(), jerr.msg);
    free(line);
}

/* Rank 0: r (status infra_failed, its reason in message) into trials.jsonl and infra, and its
 * line. Returns the error so far. */
static int log_infra(search_state *s, dpt_trial *r, int fatal, dpt_error *mine)
{
    r->status = DPT_TRIAL_INFRA_FAILED;
    r->objective = r->val_accuracy = NAN;
    dpt_error ignored;
    int rc = dpt_trial_log_append(s->trials_fd, s->trials_path, s->cfg, r, 1,
                                  fatal == DPT_OK ? mine : &ignored);
    push_trial(&s->infra, &s->n_infra, &s->cap_infra, r);
    print_trial(s->cfg, r, NAN, s->trials);
    return fatal == DPT_OK ? rc : fatal;
}

/* Rank 0: after r's infra_failed record, its next run, queued with the same id and values, or,
 * past search.max_retries, its outcome: failed, into hist[n_hist + n_new] (*added = 1). */
static void plan_retry(search_state *s, const dpt_trial *r, int n_new, int *added)
{
    int failures = infra_count(s, r->trial);
    dpt_trial *again = malloc(sizeof *again);
    DPT_CHECK(again != NULL, "out of memory");
    *again = *r;
    again->n_curve = 0;
    again->epochs = 0;
    if (failures <= s->cfg->search.max_retries) {
        again->attempt = failures;
        again->time_s = again->end_s = NAN;
        again->message[0] = '\0';
        push_trial(&s->retry, &s->n_retry, &s->cap_retry, again);
        printf("%9s  trial %d runs again with the same values (attempt %d of %d)\n", "",
               r->trial + 1, failures + 1, s->cfg->search.max_retries + 1);
    } else {
        again->status = DPT_TRIAL_FAILED;
        snprintf(again->message, sizeof again->message,
                 "the infrastructure failed it %d times; the last: %.400s", failures, r->message);
        s->hist[s->n_hist + n_new] = *again;
        *added = 1;
        print_trial(s->cfg, again, s->best >= 0 ? s->hist[s->best].objective : NAN, s->trials);
    }
    free(again);
}

/* 1 when the journal's hand-out jl[j] ended some way: an outcome of its id, an infra_failed
 * record of the same attempt, or a later interruption of it. */
static int handout_ended(const search_state *s, const dpt_trial *jl, int nj, int j)
{
    const dpt_trial *h = &jl[j];
    if (h->status != DPT_TRIAL_RUNNING || dpt_trial_recorded(s->hist, s->n_hist, h->trial))
        return 1;
    for (int k = 0; k < s->n_infra; k++)
        if (s->infra[k].trial == h->trial && s->infra[k].attempt == h->attempt)
            return 1;
    for (int k = j + 1; k < nj; k++)
        if (jl[k].status == DPT_TRIAL_INTERRUPTED && jl[k].trial == h->trial &&
            jl[k].attempt == h->attempt)
            return 1;
    return 0;
}

/* Rank 0, after trials.jsonl is read: its infra_failed records out of the history into infra.
 * With --resume: the journal's hand-outs the job lost recorded as infra_failed; then every id
 * whose infrastructure failures have no outcome yet queued to run again (or failed, past the
 * retries), in the order they failed. Then the journal, opened for this run. */
static int resume_lost(search_state *s, int resume, dpt_error *err)
{
    int n = 0, rc = DPT_OK;
    for (int k = 0; k < s->n_hist; k++) {
        if (s->hist[k].status == DPT_TRIAL_INFRA_FAILED)
            push_trial(&s->infra, &s->n_infra, &s->cap_infra, &s->hist[k]);
        else if (dpt_trial_is_final(s->hist[k].status))
            s->hist[n++] = s->hist[k];
    }
    s->n_hist = n;
    dpt_trial *jl = NULL;
    int nj = 0;
    if (resume)
        rc = dpt_trial_log_read(s->cfg, s->journal_path, 1, &jl, &nj, err);
    for (int j = 0; j < nj && rc == DPT_OK; j++) {
        if (handout_ended(s, jl, nj, j))
            continue;
        printf("resume: trial %d (attempt %d) was running when the job ended: an infrastructure "
               "failure\n", jl[j].trial + 1, jl[j].attempt + 1);
        jl[j].time_s = jl[j].end_s = NAN;
        snprintf(jl[j].message, sizeof jl[j].message,
                 "the job ended while it ran (a lost or stalled rank, a kill, a node failure)");
        rc = log_infra(s, &jl[j], rc, err);
    }
    free(jl);
    dpt_trial *grown = realloc(s->hist, ((size_t)s->n_hist + (size_t)s->n_infra + 1) *
                                            sizeof *s->hist);
    DPT_CHECK(grown != NULL, "out of memory");
    s->hist = grown;
    for (int k = 0; k < s->n_infra && rc == DPT_OK; k++) {
        const dpt_trial *r = &s->infra[k];
        int later = 0;  /* the id's last failure plans its next run */
        for (int j = k + 1; j < s->n_infra; j++)
            later |= s->infra[j].trial == r->trial;
        if (later || dpt_trial_recorded(s->hist, s->n_hist, r->trial))
            continue;
        int added = 0;
        plan_retry(s, r, 0, &added);
        if (added)
            rc = dpt_trial_log_append(s->trials_fd, s->trials_path, s->cfg,
                                      s->hist + s->n_hist++, 1, err);
    }
    s->n_infra0 = s->n_infra;
    if (rc == DPT_OK) {
        s->journal_fd = open(s->journal_path,
                             O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (resume ? 0 : O_TRUNC),
                             0644);
        if (s->journal_fd < 0)
            rc = dpt_error_set(err, DPT_ERUNTIME, "cannot open '%s': %s", s->journal_path,
                               strerror(errno));
    }
    return rc;
}

/* Rank 0: the output directory, the earlier trials (--resume), config.yaml and trials.jsonl open
 * for appending; every rank learns whether that worked. */
static int open_outputs(search_state *s, const dpt_search_opts *opts, dpt_error *err)
{
    const char *out_dir = s->cfg->run.out_dir;
    dpt_error mine = {0};
    int rc = DPT_OK;
    if (s->root) {
        char cfg_path[DPT_PATH_MAX + 32];
        snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", out_dir);
        rc = dpt_mkdir_p(out_dir, &mine);
        if (rc == DPT_OK)
            rc = dpt_probe_writable(out_dir, &mine);
        if (rc == DPT_OK)
            rc = dpt_trial_log_read(s->cfg, s->trials_path, opts->resume, &s->hist, &s->n_hist,
                                    &mine);
        if (rc == DPT_OK)
            rc = dpt_config_save(s->cfg, cfg_path, &mine);
        if (rc == DPT_OK)
            rc = dpt_trial_log_open(s->trials_path, &s->trials_fd, &mine);
        if (rc == DPT_OK)
            rc = resume_lost(s, opts->resume, &mine);
    }
    return dpt_comm_agree_error(s->comm, rc, &mine, err);
}

/* Every rank holds the history, with room for the trials still to come. */
static void share_history(search_state *s)
{
    dpt_comm_bcast(s->comm, &s->n_hist, sizeof s->n_hist, 0);
    dpt_trial *grown =
        realloc(s->hist, ((size_t)s->n_hist + (size_t)s->trials + 1) * sizeof *s->hist);
    DPT_CHECK(grown != NULL, "out of memory for the search history");
    s->hist = grown;
    if (s->n_hist > 0)
        dpt_comm_bcast(s->comm, s->hist, (size_t)s->n_hist * sizeof *s->hist, 0);
}

/* search.parallel groups of contiguous ranks, each with its own communicator. */
static void form_groups(search_state *s)
{
    dpt_comm *comm = s->comm;
    s->groups = s->cfg->search.parallel;
    s->my_group = (int)((int64_t)comm->rank * s->groups / comm->size);
    dpt_comm_split(comm, s->my_group, &s->group);
    for (int r = comm->size - 1; r >= 0; r--)
        s->leader_of[(int64_t)r * s->groups / comm->size] = r;
}

/* OUT/ranks/rank-R.jsonl: each rank's own log of what it trained (a warning if it cannot be). */
static void open_rank_log(search_state *s)
{
    char rank_dir[DPT_PATH_MAX + 32], rank_path[DPT_PATH_MAX + 64];
    snprintf(rank_dir, sizeof rank_dir, "%s/ranks", s->cfg->run.out_dir);
    snprintf(rank_path, sizeof rank_path, "%s/rank-%d.jsonl", rank_dir, s->comm->rank);
    dpt_error ignored;
    s->rank_log = -1;
    if (dpt_mkdir_p(rank_dir, &ignored) == DPT_OK)
        s->rank_log = open(rank_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->rank_log < 0)
        fprintf(stderr, "%s warning: cannot open %s: its own log of the trials is not written\n",
                dpt_error_tag(), rank_path);
}

/* hist[k] becomes the best when it beats it. */
static void note_best(search_state *s, int k)
{
    if (dpt_trial_has_result(&s->hist[k]) &&
        (s->best < 0 || s->hist[k].objective < s->hist[s->best].objective))
        s->best = k;
}

/* Collective (the host list); rank 0 prints the resume notice, the start-up lines and the
 * trials recorded before. */
static void announce(search_state *s, const dpt_search_opts *opts)
{
    char hosts[1024] = "";
    dpt_comm_hosts(s->comm, hosts, sizeof hosts);
    if (!s->root)
        return;
    int n = s->n_hist;
    if (opts->resume && n == 0)
        printf("resume: no trials recorded in %s yet: starting the search\n", s->trials_path);
    else if (opts->resume)
        printf("resume: %d trial%s recorded in %s; %d to go\n", n, n == 1 ? "" : "s",
               s->trials_path, n < s->trials ? s->trials - n : 0);
    print_startup(s->cfg, s->comm, opts, s->trials, s->groups, hosts);
    for (int k = 0; k < n; k++)
        print_trial(s->cfg, &s->hist[k], NAN, s->trials);
}

/* The ids of the next k trials: those not yet recorded, smallest first (after a parallel round
 * cut by a signal, the ids of its unfinished trials come before new ones). */
static void next_ids(search_state *s, int k, int *ids)
{
    for (int j = 0; j < k; j++) {
        while (dpt_trial_recorded(s->hist, s->n_hist, s->next_id) ||
               dpt_trial_recorded(s->infra, s->n_infra, s->next_id))
            s->next_id++;
        ids[j] = s->next_id++;
    }
}

/* Rank 0: the next trial to hand out: the oldest queued retry (id, values and attempt as it
 * failed; 1), or a fresh id (0: the caller proposes its values). */
static int next_trial(search_state *s, dpt_trial *rec)
{
    if (s->n_retry == 0) {
        next_ids(s, 1, &rec->trial);
        rec->attempt = 0;
        return 0;
    }
    rec->trial = s->retry[0].trial;
    rec->attempt = s->retry[0].attempt;
    memcpy(rec->values, s->retry[0].values, sizeof rec->values);
    s->n_retry--;
    memmove(s->retry, s->retry + 1, (size_t)s->n_retry * sizeof *s->retry);
    return 1;
}

/* Rank 0 proposes the round's k trials, each with the earlier ones pending; every rank gets
 * the values and the time each proposal took. */
static void propose_round(search_state *s, int k, dpt_space_value (*prop)[DPT_SEARCH_MAX_PARAMS],
                          double *prop_s)
{
    if (s->root) {
        dpt_trial *t = malloc(sizeof *t);
        DPT_CHECK(t != NULL, "out of memory");
        for (int j = 0; j < k; j++) {
            memset(t, 0, sizeof *t);
            double t0 = dpt_now();
            if (!next_trial(s, t))
                dpt_policy_propose(s->cfg, s->hist, s->n_hist,
                                   (const dpt_space_value(*)[DPT_SEARCH_MAX_PARAMS])prop, j,
                                   t->trial, t->values);
            memcpy(prop[j], t->values, sizeof prop[j]);
            prop_s[j] = dpt_now() - t0;
            s->slots[j] = (slot){t->trial, t->attempt};
            t->group = j;
            t->start_s = search_clock(s);
            journal_note(s, t, DPT_TRIAL_RUNNING);
        }
        free(t);
    }
    dpt_comm_bcast(s->comm, s->slots, (size_t)k * sizeof *s->slots, 0);
    dpt_comm_bcast(s->comm, prop, (size_t)k * sizeof *prop, 0);
    dpt_comm_bcast(s->comm, prop_s, (size_t)k * sizeof *prop_s, 0);
}

/* Rank 0: one trial as its group's leader reported it. A trial that ran to an outcome joins the
 * history at hist[n_hist + n_new] (*added = 1) and gets its line; one the infrastructure failed
 * is recorded so and runs again (log_infra, plan_retry); an interrupted one ends the search
 * (the first such sets the error). Returns the error so far. */
static int record_trial(search_state *s, dpt_trial *r, int n_new, int fatal, int *added,
                        dpt_error *mine)
{
    *added = 0;
    if (r->status == DPT_TRIAL_IDLE)
        return fatal;
    if (r->status == DPT_TRIAL_INTERRUPTED) {
        journal_note(s, r, DPT_TRIAL_INTERRUPTED);
        if (fatal == DPT_OK)
            fatal = dpt_error_set(mine, DPT_ESIGNAL(r->epochs),
                                  "stopped by %s during trial %d: %s has every finished trial; "
                                  "continue with --resume",
                                  dpt_signals_name(r->epochs), r->trial + 1, s->trials_path);
        return fatal;
    }
    if (r->status == DPT_TRIAL_ERROR) {
        fatal = log_infra(s, r, fatal, mine);
        plan_retry(s, r, n_new, added);
        return fatal;
    }
    int k = s->n_hist + n_new;
    *added = 1;
    s->hist[k] = *r;
    note_best(s, k);
    print_trial(s->cfg, r, s->best >= 0 ? s->hist[s->best].objective : NAN, s->trials);
    return fatal;
}

/* Rank 0: best.yaml, the best trial's whole config, where its training would write to OUT/best. */
static int save_best(search_state *s, dpt_error *err)
{
    dpt_error berr;
    dpt_config *c = s->best_cfg;
    if (dpt_space_apply(s->cfg, s->hist[s->best].values, c, &berr) != DPT_OK)
        return DPT_OK;
    if (snprintf(c->run.out_dir, sizeof c->run.out_dir, "%s/best", s->cfg->run.out_dir) >=
        (int)sizeof c->run.out_dir)
        c->run.out_dir[0] = '\0';
    return dpt_config_save(c, s->best_path, err);
}

/* Rank 0: the round's records, in group order, into the history (n_new of them), onto the
 * screen, into trials.jsonl in one durable write, and best.yaml when the best improved. Even a
 * round that ends the search appends the trials that finished. */
static int record_round(search_state *s, int k, double round_start, int *n_new,
                        dpt_error *mine)
{
    int fatal = DPT_OK, best_before = s->best;
    *n_new = 0;
    for (int j = 0; j < k; j++) {
        dpt_trial *r = &s->gathered[s->leader_of[j]];
        r->start_s = round_start;
        r->end_s = round_start + r->time_s;
        r->attempt = s->slots[j].attempt;
        int added;
        fatal = record_trial(s, r, *n_new, fatal, &added, mine);
        *n_new += added;
    }
    dpt_error ignored;
    int rc = dpt_trial_log_append(s->trials_fd, s->trials_path, s->cfg, s->hist + s->n_hist,
                                  *n_new, fatal == DPT_OK ? mine : &ignored);
    if (fatal == DPT_OK)
        fatal = rc;
    if (fatal == DPT_OK && s->best != best_before)
        fatal = save_best(s, mine);
    return fatal;
}

/* Every rank holds the same history (early stopping reads it); best follows. */
static void share_round(search_state *s, int n_new)
{
    dpt_comm_bcast(s->comm, &n_new, sizeof n_new, 0);
    if (n_new > 0)
        dpt_comm_bcast(s->comm, s->hist + s->n_hist, (size_t)n_new * sizeof *s->hist, 0);
    if (!s->root)
        for (int j = 0; j < n_new; j++)
            note_best(s, s->n_hist + j);
    s->n_hist += n_new;
}

/* One round: propose, train (each group its trial), record on rank 0, share. Collective. */
static int run_round(search_state *s, dpt_error *err)
{
    const dpt_config *cfg = s->cfg;
    int left = s->trials - s->n_hist;
    int k = left < s->groups ? left : s->groups;
    dpt_space_value (*prop)[DPT_SEARCH_MAX_PARAMS] = calloc((size_t)k, sizeof *prop);
    double *prop_s = calloc((size_t)k, sizeof *prop_s);
    DPT_CHECK(prop && prop_s, "out of memory");
    propose_round(s, k, prop, prop_s);
    double round_start = s->root ? search_clock(s) : 0.0;
    /* asha with more than one group: rank 0 decides every rung, seeing the round's other trials */
    int asha_on_root = rungs_on_root(s);

    dpt_trial *rec = s->mine_rec;
    memset(rec, 0, sizeof *rec);
    rec->status = DPT_TRIAL_IDLE;
    if (s->my_group < k) {
        rec->trial = s->slots[s->my_group].id;
        rec->attempt = s->slots[s->my_group].attempt;
        memcpy(rec->values, prop[s->my_group], sizeof rec->values);
        rec->propose_s = prop_s[s->my_group];
        trial_env env = {s->hist, s->n_hist, s->rank_log, NULL, NULL, NULL, NULL};
        if (asha_on_root && s->root) {
            env.poll = serve_rungs;
            env.poll_ctx = s;
        }
        if (asha_on_root && s->group.rank == 0) {
            env.rung_stop = s->root ? rung_stop_root : rung_stop_ask;
            env.rung_ctx = s;
        }
        run_trial(cfg, &s->group, s->my_group, &env, rec);
    }
    free(prop);
    free(prop_s);
    if (asha_on_root)
        round_end(s);

    dpt_comm_gather(s->comm, rec, sizeof *rec, s->gathered);
    dpt_error mine = {0};
    int fatal = DPT_OK, n_new = 0;
    if (s->root)
        fatal = record_round(s, k, round_start, &n_new, &mine);
    /* a signal between trials (the test functions take no training steps to notice it) */
    int sig = dpt_comm_agree(s->comm, dpt_signals_pending());
    if (s->root && fatal == DPT_OK && sig)
        fatal = dpt_error_set(&mine, DPT_ESIGNAL(sig),
                              "stopped by %s after trial %d: %s has every finished trial; "
                              "continue with --resume",
                              dpt_signals_name(sig), s->slots[k - 1].id + 1, s->trials_path);
    share_round(s, n_new);
    for (int g = 0; s->root && g < k; g++) /* their records are in the history now */
        forget_rungs(s, s->slots[g].id);
    return dpt_comm_agree_error(s->comm, fatal, &mine, err);
}

/* ---- the asynchronous schedule -------------------------------------------------------------- */

/* As Spearmint dispatched trials through its job queue: a group that finishes reports to rank 0,
 * which records the trial at once (one fsync'd line of trials.jsonl) and hands that group its
 * next configuration, proposed with the other groups' running trials pending; no round barrier.
 * Rank 0 also trains group 0: it answers the others by polling (MPI_Iprobe) after its own
 * training steps (at most once a millisecond), between its epochs and in 1 ms slices of an
 * evaluation's wait, so a finished group waits for its next trial at most one training step of
 * group 0's trial or its evaluation (training), or about 1 ms (the test functions), plus a
 * proposal. Messages go point to point on the world communicator: a report (TAG_DONE) from a
 * group's leader; an assignment (TAG_WORK) and the history (TAG_HIST) to it; the leader
 * broadcasts the assignment in its group. */

/* search.budget_epochs: the epochs the recorded trials trained (a trial the infrastructure
 * failed is not in the history and not counted), and on rank 0 under async + asha the highest
 * rung each running trial has reported; the running trials' other epochs are not known until
 * they finish, so a search ends at most a running trial's remaining epochs per group past the
 * budget. Every rank computes the same number from the shared history in the sync schedule. */
static long epochs_recorded(const search_state *s)
{
    long e = 0;
    for (int k = 0; k < s->n_hist; k++)
        e += s->hist[k].epochs > 0 ? s->hist[k].epochs : 0;
    return e;
}

/* The highest rung running trial t has reported to rank 0 past the epoch it resumed from (that
 * epoch if none), and in *stopped rank 0's decision there. */
static int last_rung(const search_state *s, const dpt_trial *t, int *stopped)
{
    int at = t->resumed_from;
    *stopped = 0;
    for (int r = 0; r < s->n_rungs; r++)
        if (s->rungs[r].trial == t->trial && s->rungs[r].epoch > at) {
            at = s->rungs[r].epoch;
            *stopped = s->rungs[r].stop;
        }
    return at;
}

/* Running trial t's epochs through epoch `at` of its run, past those the history holds: a
 * promoted trial's up to its rung are there; a fill from the screen trains again from the start
 * (the screen's epochs are in the history, and `at` is its rung until it reports another). */
static int past_history(const search_state *s, const dpt_trial *t, int at)
{
    if (from_screen(s->cfg, t))
        return at > t->resumed_from ? at : 0;
    return at - t->resumed_from;
}

static long epochs_spent(const search_state *s)
{
    long e = epochs_recorded(s);
    int stopped;
    for (int g = 0; s->active && g < s->groups; g++) /* past those in the history already */
        if (s->active[g])
            e += past_history(s, &s->running[g], last_rung(s, &s->running[g], &stopped));
    return e;
}

/* The most epochs the search can have trained once every running trial has trained to
 * train.epochs: the recorded trials' epochs, and for each running trial the epochs past those
 * already in the history (a promoted trial's, up to its rung). */
static long epochs_committed(const search_state *s)
{
    long e = epochs_recorded(s);
    for (int g = 0; s->active && g < s->groups; g++)
        if (s->active[g])
            e += past_history(s, &s->running[g], s->cfg->train.epochs);
    return e;
}

/* search.budget_epochs_hard (async): every running trial holds the epochs up to the next point
 * where rank 0 may stop it (next_stop: its next rung under asha, else its last epoch); a trial
 * starts, is promoted, or goes on past a rung only if what it would then hold fits in the
 * budget, so the search never trains more than the budget. */
static int hard_budget(const dpt_config *c)
{
    return c->search.budget_epochs > 0 && c->search.budget_epochs_hard;
}

/* The first epoch after e at which rank 0 may stop a trial: asha's next rung, else the last. */
static int next_stop(const dpt_config *c, int e)
{
    for (int f = e + 1; f < c->train.epochs; f++)
        if (dpt_policy_rung(c, f) >= 0)
            return f;
    return c->train.epochs;
}

/* The recorded trials' epochs, and each running trial's up to its next stop past the last rung
 * it reported (to that rung, if rank 0 stopped it there), less those in the history already (a
 * promoted trial's, up to its rung). */
static long epochs_held(const search_state *s)
{
    long e = epochs_recorded(s);
    for (int g = 0; s->active && g < s->groups; g++) {
        if (!s->active[g])
            continue;
        int stopped, at = last_rung(s, &s->running[g], &stopped);
        e += past_history(s, &s->running[g], stopped ? at : next_stop(s->cfg, at));
    }
    return e;
}

/* No new trial: the budget is spent, or under the hard budget a new trial's first stretch (to
 * its first rung, or to the end) does not fit in what is left of it. */
static int budget_spent(const search_state *s)
{
    if (hard_budget(s->cfg))
        return epochs_held(s) + next_stop(s->cfg, 0) > s->cfg->search.budget_epochs;
    return s->cfg->search.budget_epochs > 0 && epochs_spent(s) >= s->cfg->search.budget_epochs;
}

/* search.budget_seconds, on rank 0: the search's clock (the one start_s and end_s are read on,
 * which --resume continues from the last record) has reached the budget. */
static int time_spent(const search_state *s)
{
    return s->cfg->search.budget_seconds > 0.0 && search_clock(s) >= s->cfg->search.budget_seconds;
}

/* Sync rounds: whether another round starts, decided on rank 0 (the only clock) and broadcast,
 * so every rank leaves the loop together. Collective. */
static int another_round(search_state *s)
{
    int go = s->n_hist < s->trials && !budget_spent(s);
    if (s->cfg->search.budget_seconds > 0.0) {
        int late = s->root ? time_spent(s) : 0;
        dpt_comm_bcast(s->comm, &late, sizeof late, 0);
        go = go && !late;
    }
    return go;
}

/* asha with promote: the trial stopped at a rung that now ranks in the rung's top 1/eta (see
 * dpt_policy_asha_promotable), from the highest rung down, the best first; -1 if none. Not one
 * running (being promoted), nor one whose promotions the infrastructure failed more than
 * search.max_retries times. Each promotion is a line of rungs.jsonl ("promote": true).
 * fill: once no new trial may start, with an epoch budget (search.budget_epochs) left, the
 * budget goes to the stopped trials in the same order, whether or not they rank in the top:
 * any whose epochs to the end (train.epochs) fit in what is left of it once the running trials
 * have trained to the end, so a fill never takes the search past the budget ("fill": true). */
static int running_new(const search_state *s);
static int pick_promotion(search_state *s, int fill)
{
    if (!s->cfg->search.stop_promote || (fill && s->cfg->search.budget_epochs <= 0))
        return -1;
    /* a screen promotes by fills only, once every screen has its result: the rung complete, as
     * successive halving decides */
    if (screening(s->cfg) && (!fill || running_new(s) > 0))
        return -1;
    int hard = hard_budget(s->cfg);
    long room = s->cfg->search.budget_epochs - (hard ? epochs_held(s) : epochs_committed(s));
    int pick = -1;
    double *v = malloc(((size_t)s->n_rungs + 1) * sizeof *v);
    DPT_CHECK(v != NULL, "out of memory");
    for (int k = 0; k < s->n_hist; k++) {
        const dpt_trial *t = &s->hist[k];
        int busy = 0;
        for (int g = 0; g < s->groups; g++)
            busy |= s->active[g] && s->running[g].trial == t->trial;
        if (busy || t->status != DPT_TRIAL_STOPPED_EARLY ||
            infra_count(s, t->trial) > s->cfg->search.max_retries)
            continue;
        rung_report rep = {t->trial, t->n_curve, dpt_policy_rung_value(t, t->n_curve), 0};
        int m = 0;
        for (int r = 0; r < s->n_rungs; r++)
            if (rung_counts(&s->rungs[r], &rep))
                v[m++] = s->rungs[r].value;
        /* > 0: no rung at the last epoch; a fill from the screen trains from the start */
        int left = s->cfg->train.epochs - (screening(s->cfg) ? 0 : t->n_curve);
        if (fill ? left <= 0 || left > room
                 : !dpt_policy_asha_promotable(s->cfg, s->hist, s->n_hist, k, v, m) ||
                       (hard && next_stop(s->cfg, t->n_curve) - t->n_curve > room))
            continue;
        const dpt_trial *p = pick >= 0 ? &s->hist[pick] : NULL;
        if (!p || t->n_curve > p->n_curve ||
            (t->n_curve == p->n_curve && rep.value < dpt_policy_rung_value(p, p->n_curve)))
            pick = k;
    }
    free(v);
    if (pick >= 0) {
        const dpt_trial *t = &s->hist[pick];
        log_rung(s, (rung_report){t->trial, t->n_curve, dpt_policy_rung_value(t, t->n_curve), 0},
                 fill ? "fill" : "promote", 1, 0);
    }
    return pick;
}

/* The groups running a trial of their own (not a promoted one, which the history holds). */
static int running_new(const search_state *s)
{
    int n = 0;
    for (int g = 0; g < s->groups; g++)
        n += s->active[g] && s->running[g].resumed_from == 0;
    return n;
}

/* Rank 0: group g's next trial: a promoted one (asha, promote; once every trial is handed out,
 * a fill of the epoch budget), a new one, or stop (budget spent, a signal, an error, every
 * trial handed out); sent to its leader, or kept in s->own for group 0. Under promote, a group
 * with nothing to do while others run waits (s->waiting): their rung values and outcomes may
 * make a stopped trial promotable, or leave the budget room for a fill. */
static void dispatch(search_state *s, int g)
{
    assignment *a = g == 0 ? &s->own : malloc(sizeof *a);
    DPT_CHECK(a != NULL, "out of memory");
    memset(a, 0, sizeof *a);
    /* under the hard budget, a spent budget stops new trials only: a promotion or fill that fits
     * may still go (pick_promotion), and a free group waits while others run if a new trial may
     * still come (one stopped at a rung leaves room) */
    int hard = hard_budget(s->cfg);
    int blocked = s->stopping || s->fatal != DPT_OK || (!hard && budget_spent(s)) || time_spent(s);
    int k = blocked ? -1 : pick_promotion(s, 0);
    int cap = s->n_hist + running_new(s) >= s->trials || (hard && budget_spent(s));
    if (k < 0 && !blocked && cap)
        k = pick_promotion(s, 1);
    a->stop = blocked || (k < 0 && cap);
    int may_come = s->cfg->search.stop_promote || (hard && s->n_hist + running_new(s) < s->trials);
    if (a->stop && !blocked && may_come && s->n_active > 0) {
        s->waiting[g] = 1;
        if (g != 0)
            free(a);
        return;
    }
    if (k >= 0) {
        a->rec = s->hist[k];
        a->rec.resumed_from = s->hist[k].n_curve;
        a->rec.attempt = 0;
        a->rec.propose_s = 0.0;
        a->rec.time_s = a->rec.end_s = NAN;
        a->rec.message[0] = '\0';
    } else if (!a->stop) {
        dpt_space_value (*pend)[DPT_SEARCH_MAX_PARAMS] = calloc((size_t)s->groups, sizeof *pend);
        DPT_CHECK(pend != NULL, "out of memory");
        int m = 0;
        for (int h = 0; h < s->groups; h++)
            if (s->active[h])
                memcpy(pend[m++], s->running[h].values, sizeof *pend);
        double t0 = dpt_now();
        if (!next_trial(s, &a->rec))
            dpt_policy_propose(s->cfg, s->hist, s->n_hist,
                               (const dpt_space_value(*)[DPT_SEARCH_MAX_PARAMS])pend, m,
                               a->rec.trial, a->rec.values);
        free(pend);
        a->rec.propose_s = dpt_now() - t0;
    }
    if (!a->stop) { /* handed out: journaled, and group g runs it */
        a->rec.group = g;
        a->rec.start_s = search_clock(s);
        journal_note(s, &a->rec, DPT_TRIAL_RUNNING);
        a->n_hist = s->n_hist;
        s->running[g] = a->rec;
        s->active[g] = 1;
        s->n_active++;
    }
    if (g == 0)
        return;
    MPI_Comm w = s->comm->world;
    DPT_MPI_CHECK(MPI_Send(a, (int)sizeof *a, MPI_BYTE, s->leader_of[g], TAG_WORK, w));
    if (!a->stop && a->n_hist > 0)
        DPT_MPI_CHECK(MPI_Send(s->hist, (int)((size_t)a->n_hist * sizeof *s->hist), MPI_BYTE,
                               s->leader_of[g], TAG_HIST, w));
    free(a);
}

/* Rank 0: the groups waiting for work (asha, promote) get it, or stop once none is running. */
static void wake_waiting(search_state *s)
{
    for (int g = 0; s->waiting && g < s->groups; g++)
        if (s->waiting[g]) {
            s->waiting[g] = 0;
            dispatch(s, g);
        }
}

/* Rank 0: a promoted trial's outcome replaces its stopped record hist[k] (trials.jsonl keeps
 * both lines; --resume reads the last). Returns the error so far. */
static int replace_trial(search_state *s, int k, const dpt_trial *r, int fatal)
{
    const dpt_trial *gone = k >= s->n_hist0 ? &s->hist[k] : r; /* utilization: this run's */
    if (isfinite(gone->time_s))
        s->busy_replaced += gone->time_s * group_ranks(s, gone->group);
    int best_before = s->best;
    double best_value = best_before >= 0 ? s->hist[best_before].objective : NAN;
    s->hist[k] = *r;
    s->best = -1;
    for (int j = 0; j < s->n_hist; j++)
        note_best(s, j);
    print_trial(s->cfg, r, s->best >= 0 ? s->hist[s->best].objective : NAN, s->trials);
    dpt_error ignored;
    int rc = dpt_trial_log_append(s->trials_fd, s->trials_path, s->cfg, r, 1,
                                  fatal == DPT_OK ? &s->mine : &ignored);
    if (fatal == DPT_OK)
        fatal = rc;
    if (fatal == DPT_OK && s->best >= 0 &&
        (s->best != best_before || s->hist[s->best].objective != best_value))
        fatal = save_best(s, &s->mine);
    return fatal;
}

/* Rank 0: a group's finished trial into the history, onto the screen, into trials.jsonl (one
 * durable line) and best.yaml; then that group's next trial. */
static void receive_report(search_state *s, report *rep)
{
    dpt_trial *r = &rep->rec;
    int g = r->group;
    r->start_s = s->running[g].start_s;
    r->end_s = search_clock(s);
    forget_rungs(s, r->trial);
    s->active[g] = 0;
    s->n_active--;
    int sig = rep->sig ? rep->sig : dpt_signals_pending();
    if (sig && !s->stopping)
        s->stopping = sig;
    int best_before = s->best;
    int added = 0, k = -1;
    for (int j = 0; r->resumed_from > 0 && j < s->n_hist; j++)
        if (s->hist[j].trial == r->trial)
            k = j;
    int fatal = s->fatal;
    if (k >= 0 && dpt_trial_is_final(r->status))
        fatal = replace_trial(s, k, r, fatal);
    else if (k >= 0 && r->status == DPT_TRIAL_ERROR) /* its stopped record stays; it may be */
        fatal = log_infra(s, r, fatal, &s->mine);      /* promoted again (pick_promotion) */
    else
        fatal = record_trial(s, r, 0, fatal, &added, &s->mine);
    if (added) {
        dpt_error ignored;
        int rc = dpt_trial_log_append(s->trials_fd, s->trials_path, s->cfg, s->hist + s->n_hist,
                                      1, fatal == DPT_OK ? &s->mine : &ignored);
        s->n_hist++;
        if (fatal == DPT_OK)
            fatal = rc;
        if (fatal == DPT_OK && s->best != best_before)
            fatal = save_best(s, &s->mine);
    }
    s->fatal = fatal;
    dispatch(s, g);
    wake_waiting(s);
}

/* Rank 0: the reports that have arrived; with wait, blocks (in 0.5 ms sleeps, which leave the
 * core to the ranks training) until one arrives. */
static void serve(search_state *s, int wait)
{
    for (;;) {
        if (answer_rungs(s) > 0 && wait)
            return;
        int flag = 0;
        MPI_Status st;
        DPT_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_DONE, s->comm->world, &flag, &st));
        if (!flag && !wait)
            return;
        if (!flag) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        report *rep = malloc(sizeof *rep);
        DPT_CHECK(rep != NULL, "out of memory");
        DPT_MPI_CHECK(MPI_Recv(rep, (int)sizeof *rep, MPI_BYTE, st.MPI_SOURCE, TAG_DONE,
                               s->comm->world, MPI_STATUS_IGNORE));
        receive_report(s, rep);
        free(rep);
        if (wait)
            return;
    }
}

static void poll_root(void *ctx)
{
    serve(ctx, 0);
}

/* Rank 0: the first trial of every group, then group 0's trials, answering the others between
 * epochs; then the reports of the groups still running. */
static void async_root(search_state *s)
{
    s->running = calloc((size_t)s->groups, sizeof *s->running);
    s->active = calloc((size_t)s->groups, sizeof *s->active);
    s->waiting = calloc((size_t)s->groups, sizeof *s->waiting);
    DPT_CHECK(s->running && s->active && s->waiting, "out of memory");
    for (int g = 0; g < s->groups; g++)
        dispatch(s, g);
    trial_env env = {s->hist, 0, s->rank_log, poll_root, s, NULL, NULL};
    if (s->cfg->search.stop_rule == DPT_STOP_ASHA) {
        env.rung_stop = rung_stop_root;
        env.rung_ctx = s;
    }
    report *rep = malloc(sizeof *rep);
    DPT_CHECK(rep != NULL, "out of memory");
    for (;;) {
        dpt_comm_bcast(&s->group, &s->own, sizeof s->own, 0);
        if (s->own.stop)
            break;
        memset(rep, 0, sizeof *rep);
        rep->rec = s->own.rec;
        env.n_hist = s->own.n_hist;
        run_trial(s->cfg, &s->group, 0, &env, &rep->rec);
        rep->sig = dpt_signals_pending();
        receive_report(s, rep);
        while (s->waiting[0]) /* promote: until a trial is promotable or none runs */
            serve(s, 1);
    }
    free(rep);
    while (s->n_active > 0)
        serve(s, 1);
}

/* Every other rank: the group's trials as rank 0 hands them out, until it says stop. */
static void async_worker(search_state *s)
{
    int leader = s->group.rank == 0;
    trial_env env = {s->hist, 0, s->rank_log, NULL, NULL, NULL, NULL};
    if (leader && s->cfg->search.stop_rule == DPT_STOP_ASHA) {
        env.rung_stop = rung_stop_ask;
        env.rung_ctx = s;
    }
    assignment *a = malloc(sizeof *a);
    report *rep = malloc(sizeof *rep);
    DPT_CHECK(a && rep, "out of memory");
    MPI_Comm w = s->comm->world;
    for (;;) {
        if (leader) {
            DPT_MPI_CHECK(MPI_Recv(a, (int)sizeof *a, MPI_BYTE, 0, TAG_WORK, w, MPI_STATUS_IGNORE));
            if (!a->stop && a->n_hist > 0)
                DPT_MPI_CHECK(MPI_Recv(s->hist, (int)((size_t)a->n_hist * sizeof *s->hist),
                                       MPI_BYTE, 0, TAG_HIST, w, MPI_STATUS_IGNORE));
        }
        dpt_comm_bcast(&s->group, a, sizeof *a, 0);
        if (a->stop)
            break;
        memset(rep, 0, sizeof *rep);
        rep->rec = a->rec;
        env.n_hist = leader ? a->n_hist : 0;
        run_trial(s->cfg, &s->group, s->my_group, &env, &rep->rec);
        rep->sig = dpt_signals_pending();
        if (leader)
            DPT_MPI_CHECK(MPI_Send(rep, (int)sizeof *rep, MPI_BYTE, 0, TAG_DONE, w));
    }
    free(a);
    free(rep);
}

/* The whole async search. Collective at its end: every rank learns rank 0's outcome. */
static int run_async(search_state *s, dpt_error *err)
{
    if (s->root)
        async_root(s);
    else
        async_worker(s);
    if (s->root && s->fatal == DPT_OK && s->stopping)
        s->fatal = dpt_error_set(&s->mine, DPT_ESIGNAL(s->stopping),
                                 "stopped by %s after %d trial%s: %s has every finished trial; "
                                 "continue with --resume",
                                 dpt_signals_name(s->stopping), s->n_hist,
                                 s->n_hist == 1 ? "" : "s", s->trials_path);
    return dpt_comm_agree_error(s->comm, s->fatal, &s->mine, err);
}

/* Rank 0's last lines: how the trials ended and the best one, with its config. */
static void print_summary(const search_state *s, double seconds)
{
    const dpt_config *cfg = s->cfg;
    char dur[32];
    dpt_format_duration(seconds, dur, sizeof dur);
    int counts[4] = {0};
    for (int k = 0; k < s->n_hist; k++)
        if (s->hist[k].status >= 0 && s->hist[k].status < 4)
            counts[s->hist[k].status]++;
    printf("done: %d trials in %s (%d ok, %d stopped early, %d diverged, %d failed)\n", s->n_hist,
           dur, counts[DPT_TRIAL_OK], counts[DPT_TRIAL_STOPPED_EARLY], counts[DPT_TRIAL_DIVERGED],
           counts[DPT_TRIAL_FAILED]);
    if (cfg->search.budget_epochs > 0)
        printf("epochs: %ld trained of a budget of %d%s\n", epochs_spent(s),
               cfg->search.budget_epochs,
               budget_spent(s) ? ": spent, no new trial after it" : "");
    if (cfg->search.budget_seconds > 0.0)
        printf("time: the search's clock at %.1f s of a budget of %g s%s\n", search_clock(s),
               cfg->search.budget_seconds,
               time_spent(s) ? ": spent, no new trial after it" : "");
    if (s->n_infra > s->n_infra0)
        printf("infrastructure failures: %d, each run again with the same values (up to "
               "search.max_retries = %d times)\n", s->n_infra - s->n_infra0,
               cfg->search.max_retries);
    /* this run's trials only: a resumed search's earlier ones ran in another wall time */
    double busy = 0.0;
    for (int k = s->n_hist0; k < s->n_hist; k++)
        if (isfinite(s->hist[k].time_s)) /* a trial lost with a job has no time */
            busy += s->hist[k].time_s * group_ranks(s, s->hist[k].group);
    busy += s->busy_replaced;
    if (seconds > 0.0 && s->n_hist > s->n_hist0)
        printf("utilization: %.1f%% (busy rank-seconds / (%d ranks x %.1f wall seconds)), "
               "schedule %s\n",
               100.0 * busy / (s->comm->size * seconds), s->comm->size, seconds,
               s->groups > 1 && cfg->search.schedule == DPT_SCHEDULE_ASYNC ? "async" : "sync");
    if (s->best >= 0) {
        const dpt_trial *b = &s->hist[s->best];
        char params[2048];
        describe_values(cfg, b->values, params, sizeof params);
        printf("best: trial %d, %s %.6g", b->trial + 1, objective_label(cfg), b->objective);
        if (isfinite(b->val_accuracy))
            printf(" (val accuracy %.2f%%)", 100.0 * b->val_accuracy);
        printf("\n  %s\n  config: %s (train it: dptrain train %s)\n", params, s->best_path,
               s->best_path);
    } else {
        printf("best: none: no trial finished with a finite objective\n");
    }
    fflush(stdout);
}

static void search_free(search_state *s)
{
    free(s->running);
    free(s->active);
    free(s->waiting);
    free(s->best_cfg);
    free(s->mine_rec);
    free(s->gathered);
    free(s->hist);
    if (s->rank_log >= 0)
        close(s->rank_log);
    if (s->trials_fd >= 0)
        close(s->trials_fd);
    if (s->journal_fd >= 0)
        close(s->journal_fd);
    free(s->infra);
    free(s->retry);
    free(s->rungs);
    if (s->rung_log)
        fclose(s->rung_log);
}

int dpt_search_run(const dpt_config *cfg, dpt_comm *comm, const dpt_search_opts *opts,
                   dpt_error *err)
{
    int rc = check_search(cfg, comm, err);
    if (rc != DPT_OK)
        return rc;
    search_state *s = calloc(1, sizeof *s);
    DPT_CHECK(s != NULL, "out of memory");
    *s = (search_state){.cfg = cfg, .comm = comm, .root = comm->rank == 0,
                        .trials = dpt_policy_budget(cfg), .best = -1, .trials_fd = -1, .journal_fd = -1,
                        .rank_log = -1};
    snprintf(s->trials_path, sizeof s->trials_path, "%s/trials.jsonl", cfg->run.out_dir);
    snprintf(s->best_path, sizeof s->best_path, "%s/best.yaml", cfg->run.out_dir);
    snprintf(s->journal_path, sizeof s->journal_path, "%s/running.jsonl", cfg->run.out_dir);
    rc = open_outputs(s, opts, err);
    if (rc != DPT_OK) {
        search_free(s);
        free(s);
        return rc;
    }
    share_history(s);
    form_groups(s);
    open_rank_log(s);
    for (int k = 0; k < s->n_hist; k++)
        note_best(s, k);
    announce(s, opts);

    s->gathered = s->root ? malloc((size_t)comm->size * sizeof *s->gathered) : NULL;
    s->mine_rec = malloc(sizeof *s->mine_rec);
    s->best_cfg = s->root ? malloc(sizeof *s->best_cfg) : NULL;
    DPT_CHECK(s->mine_rec && (!s->root || (s->gathered && s->best_cfg)), "out of memory");
    s->t0 = dpt_now();
    s->n_hist0 = s->n_hist;
    for (int k = 0; k < s->n_hist; k++)
        s->clock0 = fmax(s->clock0, s->hist[k].end_s);
    for (int k = 0; s->root && k < s->n_infra; k++) /* a lost trial's end is unknown (null) */
        s->clock0 = fmax(s->clock0, fmax(s->infra[k].start_s, s->infra[k].end_s));
    if (s->root && rungs_on_root(s))
        open_rung_log(s);
    if (cfg->search.schedule == DPT_SCHEDULE_ASYNC &&
        (s->groups > 1 || cfg->search.stop_promote || cfg->search.budget_epochs_hard))
        rc = run_async(s, err); /* ends with every trial run, or an error */
    else
        while (rc == DPT_OK && another_round(s))
            rc = run_round(s, err);
    if (s->root && rc == DPT_OK)
        print_summary(s, dpt_now() - s->t0);
    dpt_comm_free(&s->group);
    search_free(s);
    free(s);
    return rc;
}
