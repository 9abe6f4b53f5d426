/* The search loop. Every rank runs it; rank 0 proposes, logs and decides.
 *
 * A round: rank 0 proposes one configuration per group (G = search.parallel; the later ones of a
 * round with the earlier ones pending, fantasized by the GP), broadcasts the values, each group
 * trains its trial data-parallel on its own communicator (MPI_Comm_split), the group leaders'
 * results are gathered to rank 0, which appends the round to trials.jsonl in one write and
 * fsync, prints a line per trial, rewrites best.yaml when the best improved, and broadcasts the
 * round's records so every rank holds the same history (early stopping reads it). Trial ids,
 * random draws and proposals depend only on (run.seed, trial id, history), so a resumed search
 * proposes what the uninterrupted one would have. */
#include "search.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gp.h"
#include "objective.h"
#include "rng.h"
#include "signals.h"
#include "space.h"
#include "run.h"
#include "util.h"

#define MAX_CURVE 512  /* epochs of a trial's curve kept for early stopping */

typedef enum {
    TRIAL_OK = 0,
    TRIAL_DIVERGED = 1,
    TRIAL_FAILED = 2,
    TRIAL_STOPPED_EARLY = 3,
    TRIAL_ERROR = 4,  /* not a trial outcome: I/O or the system failed; ends the search */
    TRIAL_IDLE = 5,   /* this group had no trial this round */
    TRIAL_INTERRUPTED = 6  /* SIGINT/SIGTERM: not recorded, runs again on --resume */
} trial_status;

static const char *const status_names[] = {"ok", "diverged", "failed", "stopped_early", "error",
                                           "idle", "interrupted"};

/* One trial as trials.jsonl records it; plain bytes, so it can be gathered and broadcast. */
typedef struct {
    int trial;            /* id, from 0 */
    int status;           /* trial_status */
    int group;
    int epochs;           /* epochs trained */
    double objective;     /* minimized; NAN unless ok or stopped_early */
    double val_accuracy;  /* NAN in function mode */
    double time_s;        /* wall time of the trial, data loading included */
    double propose_s;     /* rank 0's time to propose it */
    int n_curve;
    double curve[MAX_CURVE];  /* objective after each epoch */
    dpt_space_value values[DPT_SEARCH_MAX_PARAMS];
    char message[512];    /* failed, diverged, error: why */
} trial_record;

/* strncpy that always terminates, for messages that may be cut */
static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static int counts_as_result(const trial_record *r)
{
    return (r->status == TRIAL_OK || r->status == TRIAL_STOPPED_EARLY) && isfinite(r->objective);
}

static const char *objective_label(const dpt_config *cfg)
{
    if (cfg->objective.function != DPT_FUNCTION_NONE)
        return dpt_function_name(cfg->objective.function);
    return dpt_search_objective_name(cfg->search.objective);
}

/* ---- JSON: writing a record, and reading back the records this file wrote -------------------- */

static size_t json_string(char *out, size_t n, const char *s)
{
    size_t used = 0;
#define PUT(...) used += (size_t)snprintf(out + used, used < n ? n - used : 0, __VA_ARGS__)
    PUT("\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            PUT("\\%c", *p);
        else if (*p < 0x20)
            PUT("\\u%04x", *p);
        else
            PUT("%c", *p);
    }
    PUT("\"");
    return used;
}

static size_t json_number(char *out, size_t n, double v)
{
    if (!isfinite(v))
        return (size_t)snprintf(out, n, "null");
    char buf[64];
    dpt_config_format_double(v, buf, sizeof buf);
    return (size_t)snprintf(out, n, "%s", buf);
}

/* One line of trials.jsonl, newline included. Returns its length (>= n: cut short). */
static size_t format_record(const dpt_config *cfg, const trial_record *r, char *out, size_t n)
{
    size_t used = 0;
#define AT out + used, used < n ? n - used : 0
    used += (size_t)snprintf(AT, "{\"trial\":%d,\"params\":{", r->trial);
    for (int i = 0; i < cfg->search.n_params; i++) {
        char text[DPT_SEARCH_CHOICE_MAX + 32];
        int is_string;
        dpt_space_format(cfg, i, r->values, text, sizeof text, &is_string);
        used += (size_t)snprintf(AT, "%s", i ? "," : "");
        used += json_string(AT, cfg->search.params[i].key);
        used += (size_t)snprintf(AT, ":");
        used += is_string ? json_string(AT, text) : (size_t)snprintf(AT, "%s", text);
    }
    used += (size_t)snprintf(AT, "},\"objective\":");
    used += json_number(AT, r->objective);
    used += (size_t)snprintf(AT, ",\"status\":\"%s\",\"epochs\":%d,\"time_s\":", status_names[r->status],
                             r->epochs);
    used += json_number(AT, round(r->time_s * 1e3) / 1e3);
    used += (size_t)snprintf(AT, ",\"val_accuracy\":");
    used += json_number(AT, r->val_accuracy);
    used += (size_t)snprintf(AT, ",\"propose_s\":");
    used += json_number(AT, round(r->propose_s * 1e6) / 1e6);
    used += (size_t)snprintf(AT, ",\"group\":%d,\"curve\":[", r->group);
    for (int e = 0; e < r->n_curve; e++) {
        used += (size_t)snprintf(AT, "%s", e ? "," : "");
        used += json_number(AT, r->curve[e]);
    }
    used += (size_t)snprintf(AT, "]");
    if (r->message[0]) {
        used += (size_t)snprintf(AT, ",\"message\":");
        used += json_string(AT, r->message);
    }
    used += (size_t)snprintf(AT, "}\n");
#undef AT
    return used;
}

typedef struct {
    const char *s;
    size_t i, n;
} json_in;

static void js_ws(json_in *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\r'))
        j->i++;
}

static int js_peek(json_in *j)
{
    js_ws(j);
    return j->i < j->n ? (unsigned char)j->s[j->i] : -1;
}

static int js_char(json_in *j, char c)
{
    if (js_peek(j) != c)
        return -1;
    j->i++;
    return 0;
}

/* A string into out (escapes decoded; \u beyond ASCII becomes '?'). */
static int js_string(json_in *j, char *out, size_t n)
{
    if (js_char(j, '"') != 0)
        return -1;
    size_t used = 0;
    while (j->i < j->n && j->s[j->i] != '"') {
        char c = j->s[j->i++];
        if (c == '\\') {
            if (j->i >= j->n)
                return -1;
            char e = j->s[j->i++];
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                if (j->i + 4 > j->n)
                    return -1;
                char hex[5] = {0};
                memcpy(hex, j->s + j->i, 4);
                j->i += 4;
                long v = strtol(hex, NULL, 16);
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            default: c = e;  /* \" \\ \/ */
            }
        }
        if (used + 1 < n)
            out[used++] = c;
    }
    if (j->i >= j->n)
        return -1;
    j->i++;
    out[used < n ? used : n - 1] = '\0';
    return 0;
}

/* A scalar (number, string, true/false/null) as text. */
static int js_scalar(json_in *j, char *out, size_t n, int *is_string, int *is_null)
{
    *is_string = *is_null = 0;
    int c = js_peek(j);
    if (c == '"') {
        *is_string = 1;
        return js_string(j, out, n);
    }
    size_t start = j->i;
    while (j->i < j->n && strchr("+-.0123456789eEtruefalsn", j->s[j->i]))
        j->i++;
    size_t len = j->i - start;
    if (len == 0 || len >= n)
        return -1;
    memcpy(out, j->s + start, len);
    out[len] = '\0';
    *is_null = strcmp(out, "null") == 0;
    return 0;
}

static int js_number(json_in *j, double *v)
{
    char text[64];
    int is_string, is_null;
    if (js_scalar(j, text, sizeof text, &is_string, &is_null) != 0 || is_string)
        return -1;
    if (is_null) {
        *v = NAN;
        return 0;
    }
    char *end;
    *v = strtod(text, &end);
    return *end == '\0' ? 0 : -1;
}

/* Skips any value. */
static int js_skip(json_in *j, int depth)
{
    int c = js_peek(j);
    if (depth > 32)
        return -1;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->i++;
        if (js_char(j, close) == 0)
            return 0;
        for (;;) {
            if (c == '{') {
                char key[256];
                if (js_string(j, key, sizeof key) != 0 || js_char(j, ':') != 0)
                    return -1;
            }
            if (js_skip(j, depth + 1) != 0)
                return -1;
            if (js_char(j, ',') == 0)
                continue;
            return js_char(j, close);
        }
    }
    char text[1024];
    int s, nl;
    return js_scalar(j, text, sizeof text, &s, &nl);
}

/* Reads one line of trials.jsonl. Returns 0, or -1 with why. */
static int parse_record(const dpt_config *cfg, const char *line, size_t len, trial_record *r,
                        char *why, size_t wn)
{
    memset(r, 0, sizeof *r);
    r->objective = r->val_accuracy = NAN;
    r->trial = -1;
    r->status = -1;
    json_in j = {line, 0, len};
    int seen[DPT_SEARCH_MAX_PARAMS] = {0};
    int have_params = 0;
    if (js_char(&j, '{') != 0) {
        snprintf(why, wn, "not a JSON object");
        return -1;
    }
    for (;;) {
        char key[256];
        if (js_string(&j, key, sizeof key) != 0 || js_char(&j, ':') != 0) {
            snprintf(why, wn, "malformed JSON");
            return -1;
        }
        int bad = 0;
        double v;
        if (strcmp(key, "trial") == 0 || strcmp(key, "epochs") == 0 || strcmp(key, "group") == 0) {
            bad = js_number(&j, &v) != 0 || !(v >= 0 && v < 1e9) || v != floor(v);
            if (!bad)
                *(strcmp(key, "trial") == 0 ? &r->trial : strcmp(key, "epochs") == 0 ? &r->epochs
                                                                                        : &r->group) = (int)v;
        } else if (strcmp(key, "objective") == 0) {
            bad = js_number(&j, &r->objective) != 0;
        } else if (strcmp(key, "val_accuracy") == 0) {
            bad = js_number(&j, &r->val_accuracy) != 0;
        } else if (strcmp(key, "time_s") == 0) {
            bad = js_number(&j, &r->time_s) != 0;
        } else if (strcmp(key, "propose_s") == 0) {
            bad = js_number(&j, &r->propose_s) != 0;
        } else if (strcmp(key, "status") == 0) {
            char s[64];
            bad = js_string(&j, s, sizeof s) != 0;
            for (int k = 0; !bad && k <= TRIAL_STOPPED_EARLY; k++)
                if (strcmp(s, status_names[k]) == 0)
                    r->status = k;
            bad |= r->status < 0;
        } else if (strcmp(key, "message") == 0) {
            bad = js_string(&j, r->message, sizeof r->message) != 0;
        } else if (strcmp(key, "curve") == 0) {
            bad = js_char(&j, '[') != 0;
            if (!bad && js_char(&j, ']') != 0) {
                for (;;) {
                    if (js_number(&j, &v) != 0) {
                        bad = 1;
                        break;
                    }
                    if (r->n_curve < MAX_CURVE)
                        r->curve[r->n_curve++] = v;
                    if (js_char(&j, ',') == 0)
                        continue;
                    bad = js_char(&j, ']') != 0;
                    break;
                }
            }
        } else if (strcmp(key, "params") == 0) {
            have_params = 1;
            bad = js_char(&j, '{') != 0;
            if (!bad && js_char(&j, '}') != 0) {
                for (;;) {
                    char pk[DPT_SEARCH_KEY_MAX + 64], text[DPT_SEARCH_CHOICE_MAX + 64];
                    int is_string, is_null;
                    if (js_string(&j, pk, sizeof pk) != 0 || js_char(&j, ':') != 0 ||
                        js_scalar(&j, text, sizeof text, &is_string, &is_null) != 0) {
                        bad = 1;
                        break;
                    }
                    int i = 0;
                    while (i < cfg->search.n_params && strcmp(cfg->search.params[i].key, pk) != 0)
                        i++;
                    if (i == cfg->search.n_params) {
                        snprintf(why, wn, "parameter '%s' is not in search.space", pk);
                        return -1;
                    }
                    if (dpt_space_parse(cfg, i, text, is_string, r->values) != 0) {
                        snprintf(why, wn, "%.64s: value %.64s is outside search.space", pk, text);
                        return -1;
                    }
                    seen[i] = 1;
                    if (js_char(&j, ',') == 0)
                        continue;
                    bad = js_char(&j, '}') != 0;
                    break;
                }
            }
        } else {
            bad = js_skip(&j, 0) != 0;
        }
        if (bad) {
            snprintf(why, wn, "bad value for '%.64s'", key);
            return -1;
        }
        if (js_char(&j, ',') == 0)
            continue;
        if (js_char(&j, '}') != 0) {
            snprintf(why, wn, "malformed JSON");
            return -1;
        }
        break;
    }
    if (r->trial < 0 || r->status < 0 || !have_params) {
        snprintf(why, wn, "missing %s", r->trial < 0 ? "trial" : r->status < 0 ? "status" : "params");
        return -1;
    }
    for (int i = 0; i < cfg->search.n_params; i++) {
        if (!seen[i]) {
            snprintf(why, wn, "no value for '%s' of search.space", cfg->search.params[i].key);
            return -1;
        }
    }
    return 0;
}

/* Rank 0: the records of OUT/trials.jsonl. A last line cut short (the search was killed while
 * writing it) is dropped with a notice; anything else malformed is an error naming the line. */
static int load_history(const dpt_config *cfg, const char *path, trial_record **hist, int *n,
                        long *keep_bytes, dpt_error *err)
{
    *hist = NULL;
    *n = 0;
    *keep_bytes = -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return DPT_OK;
        return dpt_error_set(err, DPT_ERUNTIME, "cannot read '%s': %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, cap_records = 0, rc = DPT_OK;
    long offset = 0;  /* where this line starts */
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        int complete = line[len - 1] == '\n';
        long line_start = offset;
        offset += (long)len;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        if (*n == cap_records) {
            cap_records = cap_records ? 2 * cap_records : 64;
            trial_record *grown = realloc(*hist, (size_t)cap_records * sizeof **hist);
            if (!grown) {
                rc = dpt_error_set(err, DPT_ERUNTIME, "out of memory reading '%s'", path);
                break;
            }
            *hist = grown;
        }
        char why[256];
        if (parse_record(cfg, line, (size_t)len, &(*hist)[*n], why, sizeof why) != 0) {
            if (!complete) {
                printf("resume: %s:%d: the last line is incomplete (the search stopped while "
                       "writing it): removed; that trial runs again\n", path, lineno);
                *keep_bytes = line_start;
                break;
            }
            rc = dpt_error_set(err, DPT_EUSAGE, "%s:%d: not a trial of this search: %s", path,
                               lineno, why);
            break;
        }
        for (int k = 0; k < *n; k++) {
            if ((*hist)[k].trial == (*hist)[*n].trial) {
                rc = dpt_error_set(err, DPT_EUSAGE, "%s:%d: trial %d is recorded twice", path,
                                   lineno, (*hist)[k].trial);
                break;
            }
        }
        if (rc != DPT_OK)
            break;
        (*n)++;
    }
    free(line);
    fclose(f);
    return rc;
}

/* Appends text in one write and flushes it to the disk, so a killed search leaves whole lines. */
static int append_durably(int fd, const char *text, size_t len, const char *path, dpt_error *err)
{
    while (len > 0) {
        ssize_t w = write(fd, text, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return dpt_error_set(err, DPT_ERUNTIME, "cannot append to '%s': %s", path,
                                 strerror(errno));
        text += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot flush '%s': %s", path, strerror(errno));
    return DPT_OK;
}

static int id_recorded(const trial_record *hist, int n, int id)
{
    for (int k = 0; k < n; k++)
        if (hist[k].trial == id)
            return 1;
    return 0;
}

/* ---- proposals ---------------------------------------------------------------------------- */

/* Rank 0: the values of trial `id`, given the history and the trials of this round proposed
 * before it (pending). */
static void propose(const dpt_config *cfg, const trial_record *hist, int n_hist,
                    const dpt_space_value (*pending)[DPT_SEARCH_MAX_PARAMS], int n_pending,
                    int id, dpt_space_value *out)
{
    uint64_t seed = cfg->run.seed;
    if (cfg->search.algorithm == DPT_SEARCH_GRID) {
        dpt_space_grid_point(cfg, id, out);
        return;
    }
    if (id == 0 && cfg->search.start_from_config) {
        char why[256];
        if (dpt_space_from_config(cfg, out, why, sizeof why) == 0)  /* checked at the start */
            return;
    }
    if (cfg->search.algorithm == DPT_SEARCH_RANDOM || id < cfg->search.initial_random) {
        dpt_space_random(cfg, seed, (uint64_t)id, out);
        return;
    }
    /* Bayesian optimization. Diverged and failed trials enter as the worst objective seen, so
     * the GP steers away from them without a NaN (Spearmint models them with a separate
     * classifier; the worst value is the simpler, common substitute). */
    int dim = dpt_space_dim(cfg);
    double *X = malloc(((size_t)n_hist + (size_t)n_pending + 1) * (size_t)dim * sizeof(double));
    double *y = malloc(((size_t)n_hist + 1) * sizeof(double));
    double *P = X ? X + (size_t)n_hist * (size_t)dim : NULL;
    if (!X || !y) {
        free(X);
        free(y);
        dpt_space_random(cfg, seed, (uint64_t)id, out);
        return;
    }
    double worst = -INFINITY;
    for (int k = 0; k < n_hist; k++)
        if (counts_as_result(&hist[k]) && hist[k].objective > worst)
            worst = hist[k].objective;
    int n = 0;
    for (int k = 0; k < n_hist; k++) {
        double v = counts_as_result(&hist[k])          ? hist[k].objective
                   : (hist[k].status == TRIAL_DIVERGED ||
                      hist[k].status == TRIAL_FAILED) && isfinite(worst) ? worst
                                                                         : NAN;
        if (!isfinite(v))
            continue;
        dpt_space_encode(cfg, hist[k].values, X + (size_t)n * (size_t)dim);
        y[n++] = v;
    }
    for (int m = 0; m < n_pending; m++)
        dpt_space_encode(cfg, pending[m], P + (size_t)m * (size_t)dim);
    if (n < 2) {
        dpt_space_random(cfg, seed, (uint64_t)id, out);
    } else {
        /* the pending rows follow the observed ones in X; move them up to follow row n */
        memmove(X + (size_t)n * (size_t)dim, P, (size_t)n_pending * (size_t)dim * sizeof(double));
        dpt_bo_opts o;
        dpt_bo_opts_default(&o);
        /* the GP's matrices are at most a few hundred rows: threads only add overhead (the
         * trainer sets its own thread count when the next trial starts) */
        openblas_set_num_threads(1);
        double u[DPT_SEARCH_MAX_PARAMS * DPT_SEARCH_MAX_CHOICES];
        uint64_t s = dpt_rng_u64(seed, DPT_RNG_SEARCH, (1ULL << 40) | (uint64_t)id);
        dpt_bo_propose(&o, dim, X, y, n, X + (size_t)n * (size_t)dim, n_pending, s, u);
        dpt_space_decode(cfg, u, out);
    }
    free(X);
    free(y);
}

/* ---- early stopping ------------------------------------------------------------------------ */

/* The median stopping rule (Golovin et al. 2017, "Google Vizier", section 3.2.2): after epoch e
 * (past the grace epochs), stop a trial whose best objective so far is worse than the median of
 * the best objectives the finished trials had reached by epoch e. It needs no model of learning
 * curves and no tuning beyond the grace period, and comparing best-so-far with best-so-far keeps
 * one noisy epoch from stopping a trial. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double best_prefix(const double *curve, int e)
{
    double b = INFINITY;
    for (int k = 0; k < e; k++)
        if (isfinite(curve[k]) && curve[k] < b)
            b = curve[k];
    return b;
}

static int median_says_stop(const dpt_config *cfg, const trial_record *hist, int n_hist,
                            const trial_record *run)
{
    int e = run->n_curve;
    if (cfg->search.stop_rule != DPT_STOP_MEDIAN || e <= cfg->search.stop_grace_epochs ||
        e > MAX_CURVE)
        return 0;
    double *v = malloc((size_t)(n_hist + 1) * sizeof(double));
    if (!v)
        return 0;
    int m = 0;
    for (int k = 0; k < n_hist; k++)
        if (counts_as_result(&hist[k]) && hist[k].n_curve >= e)
            v[m++] = best_prefix(hist[k].curve, e);
    int stop = 0;
    if (m >= cfg->search.stop_min_trials) {
        qsort(v, (size_t)m, sizeof *v, cmp_double);
        double median = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
        stop = best_prefix(run->curve, e) > median;
    }
    free(v);
    return stop;
}

typedef struct {
    const dpt_config *cfg;  /* the search's */
    const trial_record *hist;
    int n_hist;
    dpt_comm *group;
    trial_record *run;      /* the trial being trained: its curve grows */
} stop_ctx;

static double objective_of(const dpt_config *cfg, double val_loss, double val_accuracy)
{
    return cfg->search.objective == DPT_SEARCH_VAL_LOSS ? val_loss : 1.0 - val_accuracy;
}

/* After each epoch, on every rank of the group: the leader decides, the group follows. */
static int stop_hook(void *ctx, const dpt_epoch_metrics *em)
{
    stop_ctx *c = ctx;
    if (c->run->n_curve < MAX_CURVE)
        c->run->curve[c->run->n_curve++] = objective_of(c->cfg, em->val_loss, em->val_accuracy);
    int stop = c->group->rank == 0 && median_says_stop(c->cfg, c->hist, c->n_hist, c->run);
    dpt_comm_bcast(c->group, &stop, sizeof stop, 0);
    return stop;
}

/* ---- one trial ------------------------------------------------------------------------------- */

/* Every rank of the group: its own line of what it trains, from its own config. */
static void log_rank(int fd, const dpt_config *tcfg, const dpt_config *cfg, int id,
                     const dpt_comm *group, int group_index)
{
    if (fd < 0)
        return;
    char line[8192];
    size_t used = (size_t)snprintf(line, sizeof line,
                                   "{\"trial\":%d,\"rank\":%d,\"host\":\"%s\",\"group\":%d,"
                                   "\"group_rank\":%d,\"params\":{",
                                   id, group->world_rank, group->host, group_index, group->rank);
    for (int i = 0; i < cfg->search.n_params && used < sizeof line; i++) {
        char text[DPT_PATH_MAX];
        int is_string;
        if (dpt_config_get(tcfg, cfg->search.params[i].key, text, sizeof text, &is_string) != 0)
            snprintf(text, sizeof text, "?");
        used += (size_t)snprintf(line + used, sizeof line - used, "%s", i ? "," : "");
        used += json_string(line + used, sizeof line - used, cfg->search.params[i].key);
        used += (size_t)snprintf(line + used, sizeof line - used, ":");
        used += is_string ? json_string(line + used, sizeof line - used, text)
                          : (size_t)snprintf(line + used, sizeof line - used, "%s", text);
    }
    used += (size_t)snprintf(line + used, sizeof line - used, "}}\n");
    if (used < sizeof line && write(fd, line, used) != (ssize_t)used)
        fprintf(stderr, "%s warning: cannot write this rank's search log: %s\n", dpt_error_tag(),
                strerror(errno));
}

static void run_trial(const dpt_config *cfg, dpt_comm *group, int group_index, const char *out_dir,
                      const trial_record *hist, int n_hist, int rank_log, trial_record *rec)
{
    double t0 = dpt_now();
    rec->group = group_index;
    rec->objective = rec->val_accuracy = NAN;
    dpt_config *tcfg = malloc(sizeof *tcfg);
    DPT_CHECK(tcfg != NULL, "out of memory");
    dpt_error terr = {0};
    if (dpt_space_apply(cfg, rec->values, tcfg, &terr) != DPT_OK) {
        rec->status = TRIAL_FAILED;
        copy_text(rec->message, sizeof rec->message, terr.msg);
        free(tcfg);
        rec->time_s = dpt_now() - t0;
        return;
    }
    log_rank(rank_log, tcfg, cfg, rec->trial, group, group_index);

    if (cfg->objective.function != DPT_FUNCTION_NONE) {
        dpt_objective_kind kind = cfg->objective.function == DPT_FUNCTION_BRANIN
                                      ? DPT_OBJECTIVE_BRANIN
                                      : DPT_OBJECTIVE_HARTMANN6;
        rec->objective = dpt_objective_eval_natural(kind, tcfg->objective.x);
        rec->curve[0] = rec->objective;
        rec->n_curve = 1;
        rec->epochs = 1;
        rec->status = isfinite(rec->objective) ? TRIAL_OK : TRIAL_DIVERGED;
        free(tcfg);
        rec->time_s = dpt_now() - t0;
        return;
    }

    if (snprintf(tcfg->run.out_dir, sizeof tcfg->run.out_dir, "%s/trials/%04d", out_dir,
                 rec->trial) >= (int)sizeof tcfg->run.out_dir) {
        rec->status = TRIAL_ERROR;
        snprintf(rec->message, sizeof rec->message, "the output directory path is too long");
        free(tcfg);
        return;
    }
    tcfg->run.progress = DPT_PROGRESS_OFF;
    stop_ctx sc = {cfg, hist, n_hist, group, rec};
    dpt_train_opts to = {.config_path = NULL, .resume = 0, .quiet = 1,
                         .epoch_hook = stop_hook, .hook_ctx = &sc};
    dpt_train_result res;
    int rc = dpt_train_run(tcfg, group, &to, &res, &terr);
    rec->epochs = res.epochs;
    if (rc == DPT_OK) {
        rec->status = res.stopped_early ? TRIAL_STOPPED_EARLY : TRIAL_OK;
        rec->objective = objective_of(cfg, res.val_loss, res.val_accuracy);
        rec->val_accuracy = res.val_accuracy;
        if (!isfinite(rec->objective)) {
            rec->status = TRIAL_DIVERGED;
            snprintf(rec->message, sizeof rec->message, "the validation %s is not finite",
                     cfg->search.objective == DPT_SEARCH_VAL_LOSS ? "loss" : "accuracy");
        }
    } else if (res.interrupted) {
        rec->status = TRIAL_INTERRUPTED;
        rec->epochs = res.interrupted; /* carries the signal to rank 0 */
    } else {
        rec->status = res.diverged ? TRIAL_DIVERGED : rc == DPT_EUSAGE ? TRIAL_FAILED : TRIAL_ERROR;
        copy_text(rec->message, sizeof rec->message, terr.msg);
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

static void print_trial(const dpt_config *cfg, const trial_record *r, double best, int total)
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
    snprintf(t, sizeof t, "%.1fs", r->time_s);
    char id[32];
    snprintf(id, sizeof id, "%d/%d", r->trial + 1, total);
    printf("%9s  %-13s %12s %12s %6d %8s  %s\n", id, status_names[r->status], obj, bst, r->epochs,
           t, params);
    if (r->message[0] && r->status != TRIAL_OK)
        printf("%9s  %s\n", "", r->message);
    fflush(stdout);
}

static void print_startup(const dpt_config *cfg, const dpt_comm *comm, const dpt_search_opts *opts,
                          int trials, int groups, const char *hosts)
{
    const dpt_config *c = cfg;
    printf("dptrain %s  search %s\n", DPT_VERSION, opts->config_path ? opts->config_path : "");
    if (c->search.algorithm == DPT_SEARCH_BAYES)
        printf("  %-9s bayes (GP, Matern 5/2, Expected Improvement), %d trials, the first %d "
               "random%s; minimizing %s\n",
               "search", trials, c->search.initial_random < trials ? c->search.initial_random : trials,
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
        printf("%d groups train different trials at once\n", groups);
    if (c->objective.function == DPT_FUNCTION_NONE) {
        if (c->search.stop_rule == DPT_STOP_MEDIAN)
            printf("  %-9s median rule after %d grace epoch%s, once %d trials have finished\n",
                   "stopping", c->search.stop_grace_epochs,
                   c->search.stop_grace_epochs == 1 ? "" : "s", c->search.stop_min_trials);
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
    printf("%9s  %-13s %12s %12s %6s %8s  %s\n", "trial", "status", objective_label(c), "best",
           "epochs", "time", "params");
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
    if (c->search.parallel > comm->size)
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.parallel is %d but there %s only %d rank%s: each group "
                             "needs at least one",
                             c->search.parallel, comm->size == 1 ? "is" : "are", comm->size,
                             comm->size == 1 ? "" : "s");
    dpt_space_value base[DPT_SEARCH_MAX_PARAMS];
    char why[256];
    if (c->search.start_from_config && dpt_space_from_config(c, base, why, sizeof why) != 0)
        return dpt_error_set(err, DPT_EUSAGE, "search.start_from_config: %s", why);
    int dim = dpt_space_dim(c);
    if (c->search.algorithm == DPT_SEARCH_BAYES && dim > DPT_GP_MAX_DIM)
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.space spans %d dimensions (a categorical counts one per "
                             "choice); the GP takes at most %d: drop parameters or choices, or "
                             "use algorithm random",
                             dim, DPT_GP_MAX_DIM);
    return DPT_OK;
}

int dpt_search_run(const dpt_config *cfg, dpt_comm *comm, const dpt_search_opts *opts,
                   dpt_error *err)
{
    int rc = check_search(cfg, comm, err);
    if (rc != DPT_OK)
        return rc;
    int root = comm->rank == 0;
    const char *out_dir = cfg->run.out_dir;
    char trials_path[DPT_PATH_MAX + 32], best_path[DPT_PATH_MAX + 32], cfg_path[DPT_PATH_MAX + 32];
    snprintf(trials_path, sizeof trials_path, "%s/trials.jsonl", out_dir);
    snprintf(best_path, sizeof best_path, "%s/best.yaml", out_dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.yaml", out_dir);

    int trials = cfg->search.trials;
    if (cfg->search.algorithm == DPT_SEARCH_GRID && dpt_space_grid_size(cfg) < trials)
        trials = (int)dpt_space_grid_size(cfg);

    /* rank 0: output directory, earlier trials, config.yaml, trials.jsonl open for appending */
    dpt_error mine = {0};
    trial_record *hist = NULL;
    int n_hist = 0, trials_fd = -1;
    if (root) {
        long keep_bytes = -1;
        struct stat st;
        rc = dpt_mkdir_p(out_dir, &mine);
        if (rc == DPT_OK)
            rc = dpt_probe_writable(out_dir, &mine);
        if (rc == DPT_OK && !opts->resume && stat(trials_path, &st) == 0)
            rc = dpt_error_set(&mine, DPT_EUSAGE,
                               "%s exists: a search already ran in %s; add --resume to continue "
                               "it, or choose another --out",
                               trials_path, out_dir);
        if (rc == DPT_OK && opts->resume)
            rc = load_history(cfg, trials_path, &hist, &n_hist, &keep_bytes, &mine);
        if (rc == DPT_OK && keep_bytes >= 0 && truncate(trials_path, keep_bytes) != 0)
            rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot cut the incomplete line of '%s': %s",
                               trials_path, strerror(errno));
        if (rc == DPT_OK)
            rc = dpt_config_save(cfg, cfg_path, &mine);
        if (rc == DPT_OK) {
            trials_fd = open(trials_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (trials_fd < 0)
                rc = dpt_error_set(&mine, DPT_ERUNTIME, "cannot open '%s': %s", trials_path,
                                   strerror(errno));
        }
    }
    if ((rc = dpt_comm_agree_error(comm, rc, &mine, err)) != DPT_OK) {
        if (trials_fd >= 0) close(trials_fd);
        free(hist);
        return rc;
    }

    /* everyone holds the history */
    dpt_comm_bcast(comm, &n_hist, sizeof n_hist, 0);
    trial_record *grown = realloc(hist, ((size_t)n_hist + (size_t)trials + 1) * sizeof *hist);
    DPT_CHECK(grown != NULL, "out of memory for the search history");
    hist = grown;
    if (n_hist > 0)
        dpt_comm_bcast(comm, hist, (size_t)n_hist * sizeof *hist, 0);
    /* trial ids not yet recorded, smallest first: after a parallel round cut by a signal, the
     * ids of its unfinished trials come before new ones */
    int next_id = 0;

    /* groups: contiguous blocks of ranks, group g led by its lowest rank */
    int G = cfg->search.parallel;
    int my_group = (int)((int64_t)comm->rank * G / comm->size);
    dpt_comm group;
    dpt_comm_split(comm, my_group, &group);
    int leader_of[4096];
    for (int r = comm->size - 1; r >= 0; r--)
        leader_of[(int64_t)r * G / comm->size] = r;

    /* each rank's own log of what it trained */
    char rank_dir[DPT_PATH_MAX + 32], rank_path[DPT_PATH_MAX + 64];
    snprintf(rank_dir, sizeof rank_dir, "%s/ranks", out_dir);
    snprintf(rank_path, sizeof rank_path, "%s/rank-%d.jsonl", rank_dir, comm->rank);
    int rank_log = -1;
    if (dpt_mkdir_p(rank_dir, &mine) == DPT_OK)
        rank_log = open(rank_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (rank_log < 0)
        fprintf(stderr, "%s warning: cannot open %s: its own log of the trials is not written\n",
                dpt_error_tag(), rank_path);

    char hosts[1024] = "";
    dpt_comm_hosts(comm, hosts, sizeof hosts);
    int best = -1;
    for (int k = 0; k < n_hist; k++)
        if (counts_as_result(&hist[k]) && (best < 0 || hist[k].objective < hist[best].objective))
            best = k;
    if (root) {
        if (opts->resume && n_hist == 0)
            printf("resume: no trials recorded in %s yet: starting the search\n", trials_path);
        else if (opts->resume)
            printf("resume: %d trial%s recorded in %s; %d to go\n", n_hist, n_hist == 1 ? "" : "s",
                   trials_path, n_hist < trials ? trials - n_hist : 0);
        print_startup(cfg, comm, opts, trials, G, hosts);
        for (int k = 0; k < n_hist; k++)
            print_trial(cfg, &hist[k], NAN, trials);
    }

    trial_record *gathered = root ? malloc((size_t)comm->size * sizeof *gathered) : NULL;
    trial_record *mine_rec = malloc(sizeof *mine_rec);
    dpt_config *best_cfg = root ? malloc(sizeof *best_cfg) : NULL;
    DPT_CHECK(mine_rec && (!root || (gathered && best_cfg)), "out of memory");
    double search_start = dpt_now();

    while (rc == DPT_OK && n_hist < trials) {
        int k = trials - n_hist < G ? trials - n_hist : G;
        int ids[4096];
        for (int j = 0; j < k; j++) {
            while (id_recorded(hist, n_hist, next_id))
                next_id++;
            ids[j] = next_id++;
        }
        /* rank 0 proposes the round */
        dpt_space_value (*prop)[DPT_SEARCH_MAX_PARAMS] = calloc((size_t)k, sizeof *prop);
        double *prop_s = calloc((size_t)k, sizeof *prop_s);
        DPT_CHECK(prop && prop_s, "out of memory");
        if (root) {
            for (int j = 0; j < k; j++) {
                double t0 = dpt_now();
                propose(cfg, hist, n_hist, (const dpt_space_value(*)[DPT_SEARCH_MAX_PARAMS])prop, j,
                        ids[j], prop[j]);
                prop_s[j] = dpt_now() - t0;
            }
        }
        dpt_comm_bcast(comm, prop, (size_t)k * sizeof *prop, 0);
        dpt_comm_bcast(comm, prop_s, (size_t)k * sizeof *prop_s, 0);

        /* every group trains its trial */
        memset(mine_rec, 0, sizeof *mine_rec);
        mine_rec->status = TRIAL_IDLE;
        if (my_group < k) {
            mine_rec->trial = ids[my_group];
            memcpy(mine_rec->values, prop[my_group], sizeof mine_rec->values);
            mine_rec->propose_s = prop_s[my_group];
            run_trial(cfg, &group, my_group, out_dir, hist, n_hist, rank_log, mine_rec);
        }
        free(prop);
        free(prop_s);

        /* the leaders' records to rank 0, which logs them */
        dpt_comm_gather(comm, mine_rec, sizeof *mine_rec, gathered);
        int fatal = DPT_OK, n_new = 0;
        if (root) {
            size_t cap = (size_t)k * 16384, used = 0;
            char *text = malloc(cap);
            DPT_CHECK(text != NULL, "out of memory");
            int best_before = best;
            for (int j = 0; j < k; j++) {
                const trial_record *r = &gathered[leader_of[j]];
                if (r->status == TRIAL_IDLE)
                    continue;
                if (r->status == TRIAL_INTERRUPTED) {
                    if (fatal == DPT_OK)
                        fatal = dpt_error_set(&mine, DPT_ESIGNAL(r->epochs),
                                              "stopped by %s during trial %d: %s has every "
                                              "finished trial; continue with --resume",
                                              dpt_signals_name(r->epochs), r->trial + 1,
                                              trials_path);
                    continue;
                }
                if (r->status == TRIAL_ERROR) {
                    if (fatal == DPT_OK)
                        fatal = dpt_error_set(&mine, DPT_ERUNTIME, "trial %d: %s", r->trial,
                                              r->message);
                    continue;
                }
                used += format_record(cfg, r, text + used, cap - used);
                hist[n_hist + n_new] = *r;
                if (counts_as_result(r) && (best < 0 || r->objective < hist[best].objective))
                    best = n_hist + n_new;
                n_new++;
                print_trial(cfg, r, best >= 0 ? hist[best].objective : NAN, trials);
            }
            if (used > 0 && fatal == DPT_OK)
                fatal = append_durably(trials_fd, text, used, trials_path, &mine);
            else if (used > 0) {
                dpt_error ignored;
                append_durably(trials_fd, text, used, trials_path, &ignored);
            }
            free(text);
            if (fatal == DPT_OK && best != best_before) {
                dpt_error berr;
                if (dpt_space_apply(cfg, hist[best].values, best_cfg, &berr) == DPT_OK) {
                    if (snprintf(best_cfg->run.out_dir, sizeof best_cfg->run.out_dir, "%s/best",
                                 out_dir) >= (int)sizeof best_cfg->run.out_dir)
                        best_cfg->run.out_dir[0] = '\0';
                    fatal = dpt_config_save(best_cfg, best_path, &mine);
                }
            }
        }
        /* a signal between trials (the test functions take no training steps to notice it) */
        int sig = dpt_comm_agree(comm, dpt_signals_pending());
        if (root && fatal == DPT_OK && sig)
            fatal = dpt_error_set(&mine, DPT_ESIGNAL(sig),
                                  "stopped by %s after trial %d: %s has every finished trial; "
                                  "continue with --resume",
                                  dpt_signals_name(sig), ids[k - 1] + 1, trials_path);
        /* every rank holds the same history (early stopping reads it); best follows */
        dpt_comm_bcast(comm, &n_new, sizeof n_new, 0);
        if (n_new > 0)
            dpt_comm_bcast(comm, hist + n_hist, (size_t)n_new * sizeof *hist, 0);
        if (!root)
            for (int j = 0; j < n_new; j++)
                if (counts_as_result(&hist[n_hist + j]) &&
                    (best < 0 || hist[n_hist + j].objective < hist[best].objective))
                    best = n_hist + j;
        n_hist += n_new;
        dpt_comm_bcast(comm, &fatal, sizeof fatal, 0);
        if (fatal != DPT_OK) {
            if (!root) dpt_error_echo(err, fatal);
            else *err = mine;
            rc = fatal;
            break;
        }
    }

    if (root && rc == DPT_OK) {
        char dur[32];
        dpt_format_duration(dpt_now() - search_start, dur, sizeof dur);
        int counts[4] = {0};
        for (int k = 0; k < n_hist; k++)
            if (hist[k].status >= 0 && hist[k].status < 4)
                counts[hist[k].status]++;
        printf("done: %d trials in %s (%d ok, %d stopped early, %d diverged, %d failed)\n", n_hist,
               dur, counts[TRIAL_OK], counts[TRIAL_STOPPED_EARLY], counts[TRIAL_DIVERGED],
               counts[TRIAL_FAILED]);
        if (best >= 0) {
            char params[2048];
            describe_values(cfg, hist[best].values, params, sizeof params);
            printf("best: trial %d, %s %.6g", hist[best].trial + 1, objective_label(cfg),
                   hist[best].objective);
            if (isfinite(hist[best].val_accuracy))
                printf(" (val accuracy %.2f%%)", 100.0 * hist[best].val_accuracy);
            printf("\n  %s\n  config: %s (train it: dptrain train %s)\n", params, best_path,
                   best_path);
        } else {
            printf("best: none: no trial finished with a finite objective\n");
        }
        fflush(stdout);
    }
    free(best_cfg);
    free(mine_rec);
    free(gathered);
    free(hist);
    if (rank_log >= 0)
        close(rank_log);
    if (trials_fd >= 0)
        close(trials_fd);
    dpt_comm_free(&group);
    return rc;
}
