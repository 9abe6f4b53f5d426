/* The trial log (trials.jsonl): writing a trial's line with the JSON writer, reading the lines
 * back with a reader that knows only what this file writes (objects, arrays, strings, numbers,
 * true/false/null), cutting a line a kill left incomplete, and appending a round durably. */
#include "trial_log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

static const char *const status_names[] = {"ok",     "diverged",    "failed",
                                           "stopped_early", "error", "idle",
                                           "interrupted",   "infra_failed", "running"};

const char *dpt_trial_status_name(int status)
{
    return status >= 0 && status <= DPT_TRIAL_RUNNING ? status_names[status] : "unknown";
}

int dpt_trial_is_final(int status)
{
    return status >= DPT_TRIAL_OK && status <= DPT_TRIAL_STOPPED_EARLY;
}

int dpt_trial_has_result(const dpt_trial *r)
{
    return (r->status == DPT_TRIAL_OK || r->status == DPT_TRIAL_STOPPED_EARLY) &&
           isfinite(r->objective);
}

int dpt_trial_recorded(const dpt_trial *hist, int n, int id)
{
    for (int k = 0; k < n; k++)
        if (hist[k].trial == id)
            return 1;
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------- */

size_t dpt_trial_format(const dpt_config *cfg, const dpt_trial *r, char *out, size_t n)
{
    dpt_json j;
    dpt_json_init(&j, out, n, 0);
    dpt_json_object(&j, NULL);
    dpt_json_int(&j, "trial", r->trial);
    dpt_json_object(&j, "params");
    for (int i = 0; i < cfg->search.n_params; i++) {
        char text[DPT_SEARCH_CHOICE_MAX + 32];
        int is_string;
        dpt_space_format(cfg, i, r->values, text, sizeof text, &is_string);
        if (is_string)
            dpt_json_string(&j, cfg->search.params[i].key, text);
        else
            dpt_json_raw(&j, cfg->search.params[i].key, text);
    }
    dpt_json_end(&j);
    dpt_json_double(&j, "objective", r->objective);
    dpt_json_string(&j, "status", dpt_trial_status_name(r->status));
    dpt_json_int(&j, "epochs", r->epochs);
    if (r->attempt > 0)
        dpt_json_int(&j, "attempt", r->attempt);
    if (r->resumed_from > 0)
        dpt_json_int(&j, "resumed_from", r->resumed_from);
    dpt_json_double(&j, "time_s", round(r->time_s * 1e3) / 1e3);
    dpt_json_double(&j, "val_accuracy", r->val_accuracy);
    dpt_json_double(&j, "propose_s", round(r->propose_s * 1e6) / 1e6);
    dpt_json_int(&j, "group", r->group);
    dpt_json_double(&j, "start_s", round(r->start_s * 1e3) / 1e3);
    dpt_json_double(&j, "end_s", round(r->end_s * 1e3) / 1e3);
    dpt_json_array(&j, "curve");
    for (int e = 0; e < r->n_curve; e++)
        dpt_json_double(&j, NULL, r->curve[e]);
    dpt_json_end(&j);
    if (r->message[0])
        dpt_json_string(&j, "message", r->message);
    dpt_json_end(&j);
    dpt_json_tail(&j, "\n");
    return j.len;
}

/* ---- reading ------------------------------------------------------------------------------- */

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

/* An integer member (trial, epochs, group): a whole number in [0, 1e9). */
static int parse_count(json_in *j, int *out)
{
    double v;
    if (js_number(j, &v) != 0 || !(v >= 0 && v < 1e9) || v != floor(v))
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_status(json_in *j, int *status)
{
    char s[64];
    if (js_string(j, s, sizeof s) != 0)
        return -1;
    /* what files hold: outcomes, infrastructure failures, the journal's hand-outs and
     * interruptions; never error or idle */
    for (int k = 0; k <= DPT_TRIAL_RUNNING; k++)
        if (strcmp(s, status_names[k]) == 0 && k != DPT_TRIAL_ERROR && k != DPT_TRIAL_IDLE)
            *status = k;
    return *status < 0 ? -1 : 0;
}

/* [number or null, ...]; entries beyond DPT_TRIAL_MAX_CURVE are read and dropped. */
static int parse_curve(json_in *j, dpt_trial *r)
{
    if (js_char(j, '[') != 0)
        return -1;
    if (js_char(j, ']') == 0)
        return 0;
    for (;;) {
        double v;
        if (js_number(j, &v) != 0)
            return -1;
        if (r->n_curve < DPT_TRIAL_MAX_CURVE)
            r->curve[r->n_curve++] = v;
        if (js_char(j, ',') != 0)
            return js_char(j, ']');
    }
}

/* {"key": value, ...}: every key a parameter of the space, every value inside it; seen[i] marks
 * the parameters given. Returns 0; 1 for malformed JSON; -1 with why for a value the space
 * does not have. */
static int parse_params(const dpt_config *cfg, json_in *j, dpt_trial *r, int *seen, char *why,
                        size_t wn)
{
    if (js_char(j, '{') != 0)
        return 1;
    if (js_char(j, '}') == 0)
        return 0;
    for (;;) {
        char pk[DPT_SEARCH_KEY_MAX + 64], text[DPT_SEARCH_CHOICE_MAX + 64];
        int is_string, is_null;
        if (js_string(j, pk, sizeof pk) != 0 || js_char(j, ':') != 0 ||
            js_scalar(j, text, sizeof text, &is_string, &is_null) != 0)
            return 1;
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
        if (js_char(j, ',') != 0)
            return js_char(j, '}') != 0;
    }
}

/* The value of member key. Returns 0; 1 for a bad value; -1 with why already written. */
static int parse_member(const dpt_config *cfg, json_in *j, const char *key, dpt_trial *r,
                        int *seen, int *have_params, char *why, size_t wn)
{
    /* the counts (whole numbers) and the numbers (or null) of a record */
    static const struct {
        const char *key;
        size_t offset;
        int is_count;
    } fields[] = {
        {"trial", offsetof(dpt_trial, trial), 1},
        {"epochs", offsetof(dpt_trial, epochs), 1},
        {"group", offsetof(dpt_trial, group), 1},
        {"attempt", offsetof(dpt_trial, attempt), 1},
        {"resumed_from", offsetof(dpt_trial, resumed_from), 1},
        {"objective", offsetof(dpt_trial, objective), 0},
        {"val_accuracy", offsetof(dpt_trial, val_accuracy), 0},
        {"time_s", offsetof(dpt_trial, time_s), 0},
        {"propose_s", offsetof(dpt_trial, propose_s), 0},
        {"start_s", offsetof(dpt_trial, start_s), 0},
        {"end_s", offsetof(dpt_trial, end_s), 0},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        if (strcmp(key, fields[f].key) != 0)
            continue;
        char *field = (char *)r + fields[f].offset;
        return (fields[f].is_count ? parse_count(j, (int *)field)
                                   : js_number(j, (double *)field)) != 0;
    }
    if (strcmp(key, "status") == 0)
        return parse_status(j, &r->status) != 0;
    if (strcmp(key, "message") == 0)
        return js_string(j, r->message, sizeof r->message) != 0;
    if (strcmp(key, "curve") == 0)
        return parse_curve(j, r) != 0;
    if (strcmp(key, "params") == 0) {
        *have_params = 1;
        return parse_params(cfg, j, r, seen, why, wn);
    }
    return js_skip(j, 0) != 0;
}

/* What a complete record must have: an id, a status, and a value for every parameter. */
static int check_complete(const dpt_config *cfg, const dpt_trial *r, const int *seen,
                          int have_params, char *why, size_t wn)
{
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

int dpt_trial_parse(const dpt_config *cfg, const char *line, size_t len, dpt_trial *r, char *why,
                    size_t wn)
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
        int bad = parse_member(cfg, &j, key, r, seen, &have_params, why, wn);
        if (bad < 0)
            return -1;
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
    return check_complete(cfg, r, seen, have_params, why, wn);
}

/* Rank 0: the records of OUT/trials.jsonl. A last line cut short (the search was killed while
 * writing it) is dropped with a notice; anything else malformed is an error naming the line. */
static int load_history(const dpt_config *cfg, const char *path, dpt_trial **hist, int *n,
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
            dpt_trial *grown = realloc(*hist, (size_t)cap_records * sizeof **hist);
            if (!grown) {
                rc = dpt_error_set(err, DPT_ERUNTIME, "out of memory reading '%s'", path);
                break;
            }
            *hist = grown;
        }
        char why[256];
        if (dpt_trial_parse(cfg, line, (size_t)len, &(*hist)[*n], why, sizeof why) != 0) {
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
        /* an id has one outcome; its infrastructure failures and journal lines are beside it.
         * Under asha with promote a trial stopped at a rung may be promoted later: the record
         * of that run (resumed_from its rung) replaces the stopped one in place. */
        int replaced = 0;
        for (int k = 0; k < *n && dpt_trial_is_final((*hist)[*n].status); k++) {
            const dpt_trial *old = &(*hist)[k], *r = &(*hist)[*n];
            if (!dpt_trial_is_final(old->status) || old->trial != r->trial)
                continue;
            if (r->resumed_from > 0 && old->status == DPT_TRIAL_STOPPED_EARLY &&
                old->epochs <= r->resumed_from) {
                (*hist)[k] = *r;
                replaced = 1;
                continue;
            }
            rc = dpt_error_set(err, DPT_EUSAGE, "%s:%d: trial %d is recorded twice", path,
                               lineno, old->trial);
            break;
        }
        if (rc != DPT_OK)
            break;
        if (!replaced)
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


int dpt_trial_log_read(const dpt_config *cfg, const char *path, int resume, dpt_trial **hist,
                       int *n, dpt_error *err)
{
    *hist = NULL;
    *n = 0;
    struct stat st;
    if (!resume && stat(path, &st) == 0)
        return dpt_error_set(err, DPT_EUSAGE,
                             "%s exists: a search already ran in %s; add --resume to continue "
                             "it, or choose another --out",
                             path, cfg->run.out_dir);
    if (!resume)
        return DPT_OK;
    long keep_bytes = -1;
    int rc = load_history(cfg, path, hist, n, &keep_bytes, err);
    if (rc == DPT_OK && keep_bytes >= 0 && truncate(path, keep_bytes) != 0)
        rc = dpt_error_set(err, DPT_ERUNTIME, "cannot cut the incomplete line of '%s': %s", path,
                           strerror(errno));
    return rc;
}

int dpt_trial_log_open(const char *path, int *fd, dpt_error *err)
{
    *fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (*fd < 0)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot open '%s': %s", path, strerror(errno));
    return DPT_OK;
}

int dpt_trial_log_append(int fd, const char *path, const dpt_config *cfg, const dpt_trial *recs,
                         int n, dpt_error *err)
{
    if (n <= 0)
        return DPT_OK;
    size_t cap = (size_t)n * 16384, used = 0;
    char *text = malloc(cap);
    DPT_CHECK(text != NULL, "out of memory");
    for (int k = 0; k < n; k++) {
        size_t len = dpt_trial_format(cfg, &recs[k], text + used, cap - used);
        if (used + len >= cap) { /* a record longer than its share: room for it and the rest */
            cap = 2 * (used + len) + (size_t)(n - k) * 16384;
            char *grown = realloc(text, cap);
            DPT_CHECK(grown != NULL, "out of memory");
            text = grown;
            len = dpt_trial_format(cfg, &recs[k], text + used, cap - used);
        }
        used += len;
    }
    int rc = append_durably(fd, text, used, path, err);
    free(text);
    return rc;
}
