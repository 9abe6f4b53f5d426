/* The run configuration: defaults, YAML files (libyaml's document API, so every node keeps its
 * line and column), --set overrides, cross-key validation and the resolved file.
 * Every key is one row of keys[] below; defaults, parsing, --set and writing all walk that table,
 * so adding a key is adding one row. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "csv.h"

/* ---------------------------------------------------------------------------------------------
 * The key table */

typedef enum {
    KEY_STRING,   /* char[size], any scalar; a plain null (empty, ~, null) is "" */
    KEY_BOOL,     /* int 0/1: true/false, yes/no, on/off */
    KEY_INT,      /* int in [imin, imax] */
    KEY_INT64,    /* int64_t in [imin, imax] */
    KEY_UINT64,   /* uint64_t, any value >= 0 */
    KEY_DOUBLE,   /* finite double between dmin and dmax, each end closed unless flagged open */
    KEY_ENUM,     /* int-sized enum: the value is the index of its name in names[] */
    KEY_INT_LIST  /* int[size], entries in [imin, imax]; entries + len_bias stored at len_offset */
} key_type;

enum { LO_OPEN = 1, HI_OPEN = 2 };

typedef struct {
    const char *key;           /* "section.name" */
    key_type type;
    size_t offset;             /* offsetof the field in dpt_config */
    size_t size;               /* string: buffer bytes; int list: capacity */
    const char *def;           /* default value, as YAML text */
    int64_t imin, imax;        /* int, int64, int list entries */
    double dmin, dmax;         /* double */
    unsigned flags;            /* LO_OPEN, HI_OPEN (double) */
    const char *const *names;  /* enum: NULL-terminated */
    size_t len_offset;         /* int list: offsetof its length field */
    int len_bias;              /* int list: stored length = entries + len_bias */
    int min_len;               /* int list: fewest entries */
} config_key;

/* offsetof with a compile-time check that the field has type T (a warning otherwise). */
#define FIELD(f, T) (offsetof(dpt_config, f) + 0 * sizeof((T *)0 == &((dpt_config *)0)->f))
#define SIZEOF(f) sizeof(((dpt_config *)0)->f)

#define ROW_STRING(k, f, d) \
    {.key = k, .type = KEY_STRING, .offset = FIELD(f[0], char), .size = SIZEOF(f), .def = d}
#define ROW_BOOL(k, f, d) {.key = k, .type = KEY_BOOL, .offset = FIELD(f, int), .def = d}
#define ROW_INT(k, f, d, lo, hi) \
    {.key = k, .type = KEY_INT, .offset = FIELD(f, int), .def = d, .imin = lo, .imax = hi}
#define ROW_INT64(k, f, d, lo, hi) \
    {.key = k, .type = KEY_INT64, .offset = FIELD(f, int64_t), .def = d, .imin = lo, .imax = hi}
#define ROW_UINT64(k, f, d) {.key = k, .type = KEY_UINT64, .offset = FIELD(f, uint64_t), .def = d}
#define ROW_DOUBLE(k, f, d, lo, hi, fl)                                                          \
    {.key = k, .type = KEY_DOUBLE, .offset = FIELD(f, double), .def = d, .dmin = lo, .dmax = hi, \
     .flags = fl}
/* Enums are stored through an int pointer: the size check makes a mismatch a compile error. */
#define ROW_ENUM(k, f, d, n)                                                                   \
    {.key = k, .type = KEY_ENUM,                                                               \
     .offset = offsetof(dpt_config, f) + 0 * sizeof(char[SIZEOF(f) == sizeof(int) ? 1 : -1]), \
     .def = d, .names = n}
#define ROW_INT_LIST(k, f, lenf, bias, d, minlen, lo, hi)                                          \
    {.key = k, .type = KEY_INT_LIST, .offset = FIELD(f[0], int), .size = SIZEOF(f) / sizeof(int), \
     .def = d, .imin = lo, .imax = hi, .len_offset = FIELD(lenf, int), .len_bias = bias,          \
     .min_len = minlen}

static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const format_names[] = {"idx", "csv", "synthetic", NULL};
static const char *const sharding_names[] = {"replicated", "sharded", NULL};
static const char *const scaling_names[] = {"unit", "standardize", "none", NULL};
static const char *const activation_names[] = {"relu", "tanh", "sigmoid", "gelu", "identity", NULL};
static const char *const loss_names[] = {"softmax_cross_entropy", "mse", "huber", NULL};
static const char *const task_names[] = {"classification", "regression", NULL};
static const char *const target_scaling_names[] = {"none", "standardize", NULL};
static const char *const missing_names[] = {"error", "mean", NULL};
static const char *const init_names[] = {"auto", "he", "xavier", NULL};
static const char *const optimizer_names[] = {"sgd", "adam", "adamw", NULL};
static const char *const schedule_names[] = {"constant", "step", "cosine", NULL};
static const char *const precision_names[] = {"fp32", "tf32", "bf16", NULL};
static const char *const progress_names[] = {"auto", "on", "off", NULL};
static const char *const resident_names[] = {"auto", "on", "off", NULL};
static const char *const cuda_graph_names[] = {"auto", "on", "off", NULL};
static const char *const gemm_epilogue_names[] = {"auto", "on", "off", NULL};
static const char *const comm_algorithm_names[] = {"flat", "hierarchical", "ring", NULL};
static const char *const compress_names[] = {"none", "bf16", NULL};
static const char *const algorithm_names[] = {"bayes", "random", "grid", NULL};
static const char *const objective_names[] = {"val_error", "val_loss", "val_rmse", NULL};
static const char *const stop_rule_names[] = {"none", "median", "asha", NULL};
static const char *const stop_fidelity_names[] = {"raw", "median_gap", "gp", NULL};
static const char *const search_schedule_names[] = {"async", "sync", NULL};
static const char *const feasibility_names[] = {"model", "worst", NULL};
static const char *const acquisition_names[] = {"ei", "ei_per_second", NULL};
static const char *const function_names[] = {"none", "branin", "hartmann6", NULL};
static const char *const space_type_names[] = {"uniform", "log_uniform", "int", "categorical",
                                               NULL};

#define N_NAMES(a) (sizeof(a) / sizeof(a[0]) - 1)
_Static_assert(N_NAMES(device_names) == DPT_DEVICE_CUDA + 1, "device names");
_Static_assert(N_NAMES(format_names) == DPT_FORMAT_SYNTHETIC + 1, "format names");
_Static_assert(N_NAMES(sharding_names) == DPT_SHARDING_SHARDED + 1, "sharding names");
_Static_assert(N_NAMES(scaling_names) == DPT_SCALING_NONE + 1, "scaling names");
_Static_assert(N_NAMES(activation_names) == DPT_ACT_IDENTITY + 1, "activation names");
_Static_assert(N_NAMES(loss_names) == DPT_LOSS_HUBER + 1, "loss names");
_Static_assert(N_NAMES(task_names) == DPT_TASK_REGRESSION + 1, "task names");
_Static_assert(N_NAMES(target_scaling_names) == DPT_TARGET_SCALING_STANDARDIZE + 1, "target scaling names");
_Static_assert(N_NAMES(missing_names) == DPT_MISSING_MEAN + 1, "missing names");
_Static_assert(N_NAMES(init_names) == DPT_INIT_XAVIER + 1, "init names");
_Static_assert(N_NAMES(optimizer_names) == DPT_OPT_ADAMW + 1, "optimizer names");
_Static_assert(N_NAMES(schedule_names) == DPT_SCHED_COSINE + 1, "schedule names");
_Static_assert(N_NAMES(precision_names) == DPT_PREC_BF16 + 1, "precision names");
_Static_assert(N_NAMES(cuda_graph_names) == DPT_GRAPH_OFF + 1, "cuda_graph names");
_Static_assert(N_NAMES(gemm_epilogue_names) == DPT_GEMM_EPI_OFF + 1, "gemm_epilogue names");
_Static_assert(N_NAMES(comm_algorithm_names) == DPT_COMM_RING + 1, "comm algorithm names");
_Static_assert(N_NAMES(compress_names) == DPT_COMPRESS_BF16 + 1, "compress names");
_Static_assert(N_NAMES(algorithm_names) == DPT_SEARCH_GRID + 1, "algorithm names");
_Static_assert(N_NAMES(objective_names) == DPT_SEARCH_VAL_RMSE + 1, "objective names");
_Static_assert(N_NAMES(stop_rule_names) == DPT_STOP_ASHA + 1, "stop rule names");
_Static_assert(N_NAMES(stop_fidelity_names) == DPT_FIDELITY_GP + 1, "fidelity names");
_Static_assert(N_NAMES(search_schedule_names) == DPT_SCHEDULE_SYNC + 1, "schedule names");
_Static_assert(N_NAMES(feasibility_names) == DPT_FEASIBILITY_WORST + 1, "feasibility names");
_Static_assert(N_NAMES(acquisition_names) == DPT_ACQUISITION_EI_PER_SECOND + 1,
               "acquisition names");
_Static_assert(N_NAMES(function_names) == DPT_FUNCTION_HARTMANN6 + 1, "function names");
_Static_assert(N_NAMES(space_type_names) == DPT_SPACE_CATEGORICAL + 1, "space type names");

#define FMNIST "/usr/share/datasets/fashion-mnist/"

/* Sections must be contiguous: the writer opens a section where the prefix changes. */
static const config_key keys[] = {
    ROW_STRING("run.name", run.name, "fashion_mnist"),
    ROW_STRING("run.out_dir", run.out_dir, "runs/fashion_mnist"),
    ROW_UINT64("run.seed", run.seed, "1"),
    ROW_ENUM("run.device", run.device, "auto", device_names),
    ROW_INT("run.threads", run.threads, "0", 0, 1024),
    ROW_ENUM("run.progress", run.progress, "auto", progress_names),
    ROW_DOUBLE("run.comm_timeout_s", run.comm_timeout_s, "300", 0.0, 1e9, 0),
    ROW_INT64("run.check_every", run.check_every, "0", 0, INT64_MAX),
    ROW_STRING("run.trace", run.trace, "\"\""),
    ROW_INT64("run.trace_steps", run.trace_steps, "20", 1, INT64_MAX),

    ROW_ENUM("data.format", data.format, "idx", format_names),
    ROW_STRING("data.train_images", data.train_images, FMNIST "train-images-idx3-ubyte.gz"),
    ROW_STRING("data.train_labels", data.train_labels, FMNIST "train-labels-idx1-ubyte.gz"),
    ROW_STRING("data.test_images", data.test_images, FMNIST "t10k-images-idx3-ubyte.gz"),
    ROW_STRING("data.test_labels", data.test_labels, FMNIST "t10k-labels-idx1-ubyte.gz"),
    ROW_STRING("data.train_csv", data.train_csv, "\"\""),
    ROW_STRING("data.test_csv", data.test_csv, "\"\""),
    ROW_BOOL("data.csv_header", data.csv_header, "false"),
    ROW_STRING("data.label_column", data.label_column, "\"\""),
    ROW_STRING("data.feature_columns", data.feature_columns, "\"\""),
    ROW_STRING("data.class_names", data.class_names, "\"\""),
    ROW_INT64("data.synthetic_train", data.synthetic_train, "60000", 1, INT64_MAX),
    ROW_INT64("data.synthetic_test", data.synthetic_test, "10000", 0, INT64_MAX),
    ROW_INT("data.synthetic_teacher_width", data.synthetic_teacher_width, "64", 1, INT_MAX),
    ROW_DOUBLE("data.validation_fraction", data.validation_fraction, "0.1", 0.0, 0.9, 0),
    ROW_BOOL("data.shuffle", data.shuffle, "true"),
    ROW_ENUM("data.sharding", data.sharding, "replicated", sharding_names),
    ROW_ENUM("data.scaling", data.scaling, "unit", scaling_names),
    ROW_ENUM("data.device_resident", data.device_resident, "auto", resident_names),
    ROW_ENUM("data.task", data.task, "classification", task_names),
    ROW_ENUM("data.target_scaling", data.target_scaling, "none", target_scaling_names),
    ROW_ENUM("data.missing", data.missing, "error", missing_names),

    ROW_INT_LIST("model.layers", model.widths, model.n_layers, -1, "[784, 512, 512, 10]", 2, 1,
                 1000000),
    ROW_ENUM("model.activation", model.activation, "relu", activation_names),
    ROW_DOUBLE("model.dropout", model.dropout, "0.0", 0.0, 1.0, HI_OPEN),
    ROW_ENUM("model.loss", model.loss, "softmax_cross_entropy", loss_names),
    ROW_DOUBLE("model.huber_delta", model.huber_delta, "1.0", 0.0, INFINITY, LO_OPEN),
    ROW_ENUM("model.init", model.init, "auto", init_names),

    ROW_INT("train.epochs", train.epochs, "10", 1, 100000),
    ROW_INT("train.batch_size", train.batch_size, "128", 1, 1 << 24),
    ROW_ENUM("train.optimizer", train.optimizer, "sgd", optimizer_names),
    ROW_DOUBLE("train.lr", train.lr, "0.05", 0.0, 10.0, LO_OPEN),
    ROW_DOUBLE("train.momentum", train.momentum, "0.9", 0.0, 1.0, HI_OPEN),
    ROW_BOOL("train.nesterov", train.nesterov, "false"),
    ROW_DOUBLE("train.weight_decay", train.weight_decay, "0.0", 0.0, 1.0, 0),
    ROW_DOUBLE("train.beta1", train.beta1, "0.9", 0.0, 1.0, HI_OPEN),
    ROW_DOUBLE("train.beta2", train.beta2, "0.999", 0.0, 1.0, HI_OPEN),
    ROW_DOUBLE("train.eps", train.eps, "1.0e-8", 0.0, INFINITY, LO_OPEN),
    ROW_ENUM("train.schedule", train.schedule, "constant", schedule_names),
    ROW_INT("train.step_epochs", train.step_epochs, "10", 1, INT_MAX),
    ROW_DOUBLE("train.step_gamma", train.step_gamma, "0.1", 0.0, 1.0, LO_OPEN),
    ROW_DOUBLE("train.min_lr", train.min_lr, "0.0", 0.0, INFINITY, 0),
    ROW_INT("train.warmup_epochs", train.warmup_epochs, "0", 0, INT_MAX),
    ROW_DOUBLE("train.clip_grad_norm", train.clip_grad_norm, "0.0", 0.0, INFINITY, 0),
    ROW_ENUM("train.precision", train.precision, "fp32", precision_names),
    ROW_INT64("train.max_steps", train.max_steps, "0", 0, INT64_MAX),
    ROW_INT("train.log_every", train.log_every, "10", 1, INT_MAX),
    ROW_ENUM("train.cuda_graph", train.cuda_graph, "auto", cuda_graph_names),
    ROW_ENUM("train.gemm_epilogue", train.gemm_epilogue, "auto", gemm_epilogue_names),

    ROW_DOUBLE("comm.bucket_mb", comm.bucket_mb, "25.0", 0.0, 1e6, LO_OPEN),
    ROW_BOOL("comm.overlap", comm.overlap, "true"),
    ROW_ENUM("comm.algorithm", comm.algorithm, "flat", comm_algorithm_names),
    ROW_ENUM("comm.compress", comm.compress, "none", compress_names),

    /* search.space is not a row: a mapping of config keys to ranges (apply_space) */
    ROW_ENUM("search.algorithm", search.algorithm, "bayes", algorithm_names),
    ROW_INT("search.trials", search.trials, "20", 1, 10000),
    ROW_INT("search.budget_epochs", search.budget_epochs, "0", 0, INT_MAX),
    ROW_BOOL("search.budget_epochs_hard", search.budget_epochs_hard, "false"),
    ROW_DOUBLE("search.budget_seconds", search.budget_seconds, "0", 0.0, 1e9, 0),
    ROW_INT("search.initial_random", search.initial_random, "5", 0, 10000),
    ROW_ENUM("search.objective", search.objective, "val_error", objective_names),
    ROW_INT("search.parallel", search.parallel, "1", 1, 4096),
    ROW_ENUM("search.schedule", search.schedule, "async", search_schedule_names),
    ROW_ENUM("search.feasibility", search.feasibility, "worst", feasibility_names),
    ROW_ENUM("search.acquisition", search.acquisition, "ei", acquisition_names),
    ROW_INT("search.max_retries", search.max_retries, "2", 0, 100),
    ROW_ENUM("search.early_stopping.rule", search.stop_rule, "median", stop_rule_names),
    ROW_INT("search.early_stopping.grace_epochs", search.stop_grace_epochs, "2", 0, INT_MAX),
    ROW_INT("search.early_stopping.min_trials", search.stop_min_trials, "3", 1, INT_MAX),
    ROW_INT("search.early_stopping.eta", search.stop_eta, "3", 2, 1000),
    ROW_ENUM("search.early_stopping.fidelity", search.stop_fidelity, "raw", stop_fidelity_names),
    ROW_BOOL("search.early_stopping.promote", search.stop_promote, "false"),
    ROW_BOOL("search.early_stopping.screen", search.stop_screen, "false"),
    ROW_INT("search.grid_points", search.grid_points, "3", 1, 1000),
    ROW_BOOL("search.start_from_config", search.start_from_config, "false"),

    ROW_ENUM("objective.function", objective.function, "none", function_names),
    ROW_DOUBLE("objective.x1", objective.x[0], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.x2", objective.x[1], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.x3", objective.x[2], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.x4", objective.x[3], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.x5", objective.x[4], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.x6", objective.x[5], "0.0", -1e300, 1e300, 0),
    ROW_DOUBLE("objective.duration", objective.duration, "0.0", 0.0, 3600.0, 0),
    ROW_BOOL("objective.diverge_corner", objective.diverge_corner, "false"),
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const config_key *find_key(const char *key)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return &keys[i];
    return NULL;
}

/* A section is a prefix "P" such that some key is "P.name". */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].key, name, n) == 0 && keys[i].key[n] == '.')
            return 1;
    return 0;
}

static void *field_ptr(dpt_config *cfg, size_t offset) { return (char *)cfg + offset; }
static const void *field_cptr(const dpt_config *cfg, size_t offset)
{
    return (const char *)cfg + offset;
}

/* Number of entries of an int list, clamped to its capacity. */
static int list_len(const dpt_config *cfg, const config_key *k)
{
    int n = *(const int *)field_cptr(cfg, k->len_offset) - k->len_bias;
    if (n < 0)
        n = 0;
    if ((size_t)n > k->size)
        n = (int)k->size;
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Scalar parsing: text -> field, with a reason (no location, no key) when it is rejected */

/* "'text'" for messages, cut short when long. */
static const char *quoted(char *buf, size_t n, const char *s)
{
    size_t len = strlen(s);
    if (len > 80)
        snprintf(buf, n, "'%.77s...'", s);
    else
        snprintf(buf, n, "'%s'", s);
    return buf;
}

/* Decimal integer with optional sign. Returns 0, -1 (not an integer), -2 (outside int64). */
static int parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0')
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -2;
    *out = (int64_t)v;
    return 0;
}

/* Finite decimal number (ints and YAML floats such as 1.0e-3, 1e-3, .5). 0 or -1. */
static int parse_double(const char *s, double *out)
{
    if (*s == '\0' || *s == ' ' || *s == '\t')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v))  /* underflow to 0 or a subnormal is fine */
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* "one of relu, tanh, ...". */
static void enum_choices(const config_key *k, char *buf, size_t n)
{
    size_t used = (size_t)snprintf(buf, n, "one of");
    for (size_t i = 0; k->names[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s %s", i ? "," : "", k->names[i]);
}

/* What a key expects, for type errors: "an integer", "one of a, b; got ..." style. */
static void expectation(const config_key *k, char *buf, size_t n)
{
    switch (k->type) {
    case KEY_STRING: snprintf(buf, n, "a string"); break;
    case KEY_BOOL: snprintf(buf, n, "true or false"); break;
    case KEY_INT:
    case KEY_INT64:
    case KEY_UINT64: snprintf(buf, n, "an integer"); break;
    case KEY_DOUBLE: snprintf(buf, n, "a number"); break;
    case KEY_ENUM: enum_choices(k, buf, n); break;
    case KEY_INT_LIST: snprintf(buf, n, "a list of integers"); break;
    }
}

/* Range check of an integer; fills why on failure. */
static int check_int_range(int64_t v, int64_t lo, int64_t hi, const char *text, char *why,
                           size_t n)
{
    if (v < lo) {
        snprintf(why, n, "must be >= %" PRId64 " (got %.80s)", lo, text);
        return -1;
    }
    if (v > hi) {
        snprintf(why, n, "must be <= %" PRId64 " (got %.80s)", hi, text);
        return -1;
    }
    return 0;
}

/* Parses one integer entry (int, int64 or a list element) within [lo, hi]. */
static int parse_ranged_int(const char *s, int64_t lo, int64_t hi, int64_t *out, char *why,
                            size_t n)
{
    char q[96];
    int rc = parse_int64(s, out);
    if (rc == -1) {
        snprintf(why, n, "expected an integer, got %s", quoted(q, sizeof q, s));
        return -1;
    }
    if (rc == -2) {
        if (s[0] == '-')
            snprintf(why, n, "must be >= %" PRId64 " (got %.80s)", lo, s);
        else
            snprintf(why, n, "must be <= %" PRId64 " (got %.80s)", hi, s);
        return -1;
    }
    return check_int_range(*out, lo, hi, s, why, n);
}

/* A string key: a plain null (empty, ~, null) is the empty string. */
static int set_string(void *p, const config_key *k, const char *s, size_t len, int plain,
                      char *why, size_t n)
{
    if (plain && (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
                  strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0))
        len = 0;
    if (len >= k->size) {
        snprintf(why, n, "too long (%zu bytes, at most %zu)", len, k->size - 1);
        return -1;
    }
    memset(p, 0, k->size);  /* whole buffer, so equal configs are equal bytes */
    memcpy(p, s, len);
    return 0;
}

/* An unsigned 64-bit key (run.seed): any integer >= 0. */
static int set_uint64(void *p, const char *s, char *why, size_t n)
{
    char q[96];
    int64_t neg;
    const char *d = s[0] == '+' ? s + 1 : s;
    if (s[0] == '-' && parse_int64(s, &neg) != -1) {
        snprintf(why, n, "must be >= 0 (got %.80s)", s);
        return -1;
    }
    int digits = *d != '\0';
    for (const char *c = d; *c; c++)
        digits &= *c >= '0' && *c <= '9';
    if (!digits) {
        snprintf(why, n, "expected an integer, got %s", quoted(q, sizeof q, s));
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(d, NULL, 10);
    if (errno == ERANGE) {
        snprintf(why, n, "must be <= %" PRIu64 " (got %.80s)", UINT64_MAX, s);
        return -1;
    }
    *(uint64_t *)p = (uint64_t)v;
    return 0;
}

/* A number within the key's range, each end closed unless flagged open; text is v as the user
 * wrote it, for the message. */
static int set_double(void *p, const config_key *k, double v, const char *text, char *why,
                      size_t n)
{
    int lo_bad = (k->flags & LO_OPEN) ? !(v > k->dmin) : !(v >= k->dmin);
    int hi_bad = (k->flags & HI_OPEN) ? !(v < k->dmax) : !(v <= k->dmax);
    if (lo_bad) {
        snprintf(why, n, "must be %s %g (got %.80s)", (k->flags & LO_OPEN) ? ">" : ">=", k->dmin,
                 text);
        return -1;
    }
    if (hi_bad) {
        snprintf(why, n, "must be %s %g (got %.80s)", (k->flags & HI_OPEN) ? "<" : "<=", k->dmax,
                 text);
        return -1;
    }
    *(double *)p = v;
    return 0;
}

/* An int or int64 key. */
static void store_int(void *p, const config_key *k, int64_t v)
{
    if (k->type == KEY_INT)
        *(int *)p = (int)v;
    else
        *(int64_t *)p = v;
}

static int set_enum(void *p, const config_key *k, const char *s, char *why, size_t n)
{
    char q[96], choices[256];
    for (int i = 0; k->names[i]; i++) {
        if (strcmp(k->names[i], s) == 0) {
            *(int *)p = i;
            return 0;
        }
    }
    enum_choices(k, choices, sizeof choices);
    snprintf(why, n, "expected %s; got %s", choices, quoted(q, sizeof q, s));
    return -1;
}

/* Stores scalar text s (len bytes, plain = unquoted YAML scalar) into k's field.
 * Returns 0, or -1 with the reason in why. */
static int set_scalar(dpt_config *cfg, const config_key *k, const char *s, size_t len, int plain,
                      char *why, size_t n)
{
    char q[96];
    void *p = field_ptr(cfg, k->offset);
    if (strlen(s) != len) {
        snprintf(why, n, "the value contains a NUL byte");
        return -1;
    }
    int64_t i;
    double d;
    int b;
    switch (k->type) {
    case KEY_STRING: return set_string(p, k, s, len, plain, why, n);
    case KEY_BOOL:
        if (parse_bool(s, &b) != 0) {
            snprintf(why, n, "expected true or false, got %s", quoted(q, sizeof q, s));
            return -1;
        }
        *(int *)p = b;
        return 0;
    case KEY_INT:
    case KEY_INT64:
        if (parse_ranged_int(s, k->imin, k->imax, &i, why, n) != 0)
            return -1;
        store_int(p, k, i);
        return 0;
    case KEY_UINT64: return set_uint64(p, s, why, n);
    case KEY_DOUBLE:
        if (parse_double(s, &d) != 0) {
            snprintf(why, n, "expected a number, got %s", quoted(q, sizeof q, s));
            return -1;
        }
        return set_double(p, k, d, s, why, n);
    case KEY_ENUM: return set_enum(p, k, s, why, n);
    case KEY_INT_LIST:
        snprintf(why, n, "expected a list of integers, got %s", quoted(q, sizeof q, s));
        return -1;
    }
    return -1;
}

static void format_double(double v, char *buf, size_t n);

/* A typed value into k's field: numbers go straight to numeric keys with the same range checks
 * as their text; anything else is read as the scalar text it would be written as. Returns 0, or
 * -1 with the reason in why. */
static int set_value(dpt_config *cfg, const config_key *k, const dpt_value *v, char *why,
                     size_t n)
{
    void *p = field_ptr(cfg, k->offset);
    char text[64];
    if (v->kind == DPT_VALUE_STRING)
        return set_scalar(cfg, k, v->s, v->len, v->plain, why, n);
    if (v->kind == DPT_VALUE_INT) {
        snprintf(text, sizeof text, "%" PRId64, v->i);
        if (k->type == KEY_INT || k->type == KEY_INT64) {
            if (check_int_range(v->i, k->imin, k->imax, text, why, n) != 0)
                return -1;
            store_int(p, k, v->i);
            return 0;
        }
        if (k->type == KEY_DOUBLE)
            return set_double(p, k, (double)v->i, text, why, n);
    } else if (v->kind == DPT_VALUE_DOUBLE) {
        format_double(v->d, text, sizeof text);
        if (k->type == KEY_DOUBLE && isfinite(v->d))
            return set_double(p, k, v->d, text, why, n);
    } else {
        snprintf(why, n, "a YAML value must be parsed first");
        return -1;
    }
    return set_scalar(cfg, k, text, strlen(text), 1, why, n);
}

/* ---------------------------------------------------------------------------------------------
 * Walking a libyaml document */

typedef struct {
    const char *source;  /* the file's path, the --set assignment, or NULL (a typed value) */
    int is_file;         /* messages "FILE:LINE:COL: ...", "--set A: ..." or "KEY: ..." */
    dpt_error *err;
} parse_ctx;

static int fail_at(const parse_ctx *ctx, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(const parse_ctx *ctx, yaml_mark_t mark, const char *fmt, ...)
{
    char what[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ctx->is_file) /* libyaml marks are 0-based */
        return dpt_error_set(ctx->err, DPT_EUSAGE, "%s:%zu:%zu: %s", ctx->source, mark.line + 1,
                             mark.column + 1, what);
    if (ctx->source)
        return dpt_error_set(ctx->err, DPT_EUSAGE, "--set %s: %s", ctx->source, what);
    return dpt_error_set(ctx->err, DPT_EUSAGE, "%s", what);
}

static const char *node_kind(const yaml_node_t *node)
{
    return node->type == YAML_MAPPING_NODE ? "a mapping" : node->type == YAML_SEQUENCE_NODE
                                                                ? "a list"
                                                                : "a scalar";
}

static int is_null_scalar(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)node->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

/* Levenshtein distance for "did you mean"; large for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[128];
    if (la >= 128 || lb >= 128)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* A known key or section within edit distance 2 of key, else a key with the same last part
 * ("lr" -> "train.lr"), written into out; 0 if none. */
static int suggest(const char *key, char *out, size_t n)
{
    size_t best = 3;
    out[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        char section[64];
        const char *dot = strchr(keys[i].key, '.');
        snprintf(section, sizeof section, "%.*s", (int)(dot - keys[i].key), keys[i].key);
        const char *cand[2] = {keys[i].key, section};
        for (int c = 0; c < 2; c++) {
            size_t d = edit_distance(key, cand[c]);
            size_t len = strlen(cand[c]);
            if (d < best && len < n) {
                best = d;
                memcpy(out, cand[c], len + 1);
            }
        }
    }
    if (out[0])
        return 1;
    const char *leaf = strrchr(key, '.');
    leaf = leaf ? leaf + 1 : key;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(strchr(keys[i].key, '.') + 1, leaf) == 0) {
            snprintf(out, n, "%s", keys[i].key);
            return 1;
        }
    }
    return 0;
}

static int fail_unknown(const parse_ctx *ctx, yaml_mark_t mark, const char *key)
{
    char hint[128];
    if (suggest(key, hint, sizeof hint))
        return fail_at(ctx, mark, "unknown key '%s' (did you mean '%s'?)", key, hint);
    return fail_at(ctx, mark, "unknown key '%s'", key);
}

/* Sets one entry of an int list from a scalar node; name is "model.layers[i]". */
static int set_list_item(const parse_ctx *ctx, dpt_config *cfg, const config_key *k, int index,
                         const yaml_node_t *item, const char *name)
{
    char why[512];
    int64_t v;
    if (item->type != YAML_SCALAR_NODE)
        return fail_at(ctx, item->start_mark, "%s: expected an integer, got %s", name,
                       node_kind(item));
    const char *s = (const char *)item->data.scalar.value;
    if (parse_ranged_int(s, k->imin, k->imax, &v, why, sizeof why) != 0)
        return fail_at(ctx, item->start_mark, "%s: %s", name, why);
    ((int *)field_ptr(cfg, k->offset))[index] = (int)v;
    return DPT_OK;
}

static int apply_list(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                      const config_key *k, yaml_node_t *node)
{
    char expect[64];
    if (node->type != YAML_SEQUENCE_NODE) {
        expectation(k, expect, sizeof expect);
        if (node->type == YAML_SCALAR_NODE) {
            char q[96];
            return fail_at(ctx, node->start_mark, "%s: expected %s, got %s", k->key, expect,
                           quoted(q, sizeof q, (const char *)node->data.scalar.value));
        }
        return fail_at(ctx, node->start_mark, "%s: expected %s, got %s", k->key, expect,
                       node_kind(node));
    }
    long count = node->data.sequence.items.top - node->data.sequence.items.start;
    if (count < k->min_len || (size_t)count > k->size)
        return fail_at(ctx, node->start_mark, "%s: expected %d to %zu entries, got %ld", k->key,
                       k->min_len, k->size, count);
    memset(field_ptr(cfg, k->offset), 0, k->size * sizeof(int));
    for (long i = 0; i < count; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s[%ld]", k->key, i);
        yaml_node_t *item = yaml_document_get_node(doc, node->data.sequence.items.start[i]);
        int rc = set_list_item(ctx, cfg, k, (int)i, item, name);
        if (rc != DPT_OK)
            return rc;
    }
    *(int *)field_ptr(cfg, k->len_offset) = (int)count + k->len_bias;
    return DPT_OK;
}

/* data.label_column, data.feature_columns and data.class_names also take a YAML list of
 * scalars, stored joined by ", " as the comma-separated text they take, a name with a comma or
 * a quote in double quotes (dpt_csv_list_append: the CSV reader splits it back). */
static int apply_joined_list(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                             const config_key *k, yaml_node_t *node)
{
    char *dst = field_ptr(cfg, k->offset);
    dst[0] = '\0';
    for (yaml_node_item_t *it = node->data.sequence.items.start;
         it < node->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        if (item->type != YAML_SCALAR_NODE)
            return fail_at(ctx, item->start_mark, "%s: expected names or indices, got %s",
                           k->key, node_kind(item));
        const char *v = (const char *)item->data.scalar.value;
        if (dpt_csv_list_append(dst, k->size, v) != 0)
            return fail_at(ctx, node->start_mark, "%s: the list is longer than %zu characters",
                           k->key, k->size - 1);
    }
    return DPT_OK;
}

static int apply_key(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                     const config_key *k, yaml_node_t *node)
{
    if (k->type == KEY_INT_LIST)
        return apply_list(ctx, cfg, doc, k, node);
    if (node->type == YAML_SEQUENCE_NODE && (strcmp(k->key, "data.feature_columns") == 0 ||
                                             strcmp(k->key, "data.class_names") == 0 ||
                                             strcmp(k->key, "data.label_column") == 0))
        return apply_joined_list(ctx, cfg, doc, k, node);
    if (node->type != YAML_SCALAR_NODE) {
        char expect[256];
        expectation(k, expect, sizeof expect);
        return fail_at(ctx, node->start_mark, "%s: expected %s%s got %s", k->key, expect,
                       k->type == KEY_ENUM ? ";" : ",", node_kind(node));
    }
    char why[512];
    dpt_value v = {.kind = DPT_VALUE_STRING,
                   .s = (const char *)node->data.scalar.value,
                   .len = node->data.scalar.length,
                   .plain = node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE};
    if (set_value(cfg, k, &v, why, sizeof why) != 0)
        return fail_at(ctx, node->start_mark, "%s: %s", k->key, why);
    return DPT_OK;
}

static int apply_node(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                      const char *key, yaml_mark_t key_mark, yaml_node_t *node);

/* A mapping of keys under prefix ("" for the top level, "train" for a section). */
static int apply_mapping(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                         const char *prefix, yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE) {
        if (is_null_scalar(node))  /* "train:" with nothing under it */
            return DPT_OK;
        if (prefix[0] == '\0')
            return fail_at(ctx, node->start_mark,
                           "expected a mapping of sections (run, data, model, train), got %s",
                           node_kind(node));
        return fail_at(ctx, node->start_mark, "%s: expected a mapping of keys, got %s", prefix,
                       node_kind(node));
    }
    yaml_node_pair_t *start = node->data.mapping.pairs.start;
    yaml_node_pair_t *top = node->data.mapping.pairs.top;
    for (yaml_node_pair_t *pair = start; pair < top; pair++) {
        yaml_node_t *knode = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vnode = yaml_document_get_node(doc, pair->value);
        if (knode->type != YAML_SCALAR_NODE)
            return fail_at(ctx, knode->start_mark, "%s%skeys must be scalars, got %s", prefix,
                           prefix[0] ? ": " : "", node_kind(knode));
        const char *name = (const char *)knode->data.scalar.value;
        for (yaml_node_pair_t *prev = start; prev < pair; prev++) {
            yaml_node_t *pk = yaml_document_get_node(doc, prev->key);
            if (pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value, name) == 0) {
                if (ctx->is_file)
                    return fail_at(ctx, knode->start_mark,
                                   "duplicate key '%s%s%s' (first given at line %zu)", prefix,
                                   prefix[0] ? "." : "", name, pk->start_mark.line + 1);
                return fail_at(ctx, knode->start_mark, "duplicate key '%s%s%s'", prefix,
                               prefix[0] ? "." : "", name);
            }
        }
        char full[256];
        snprintf(full, sizeof full, "%s%s%s", prefix, prefix[0] ? "." : "", name);
        int rc = apply_node(ctx, cfg, doc, full, knode->start_mark, vnode);
        if (rc != DPT_OK)
            return rc;
    }
    return DPT_OK;
}


/* ---------------------------------------------------------------------------------------------
 * search.space: a mapping from the config key a parameter sets to its range,
 *   train.lr: {type: log_uniform, low: 1.0e-3, high: 0.5}
 * Here the structure, the types and that the key exists are checked (with marks); that every
 * value of the range is valid for its key is checked by dpt_config_validate, once the whole
 * config (for instance the length of model.layers) is known. */

/* Keys --set and the search accept beyond the table: they rebuild model.layers. */
static int is_derived_key(const char *key)
{
    return strcmp(key, "model.hidden_layers") == 0 || strcmp(key, "model.hidden_width") == 0;
}

typedef enum { TARGET_UNKNOWN, TARGET_INT, TARGET_DOUBLE, TARGET_OTHER } target_kind;

/* What kind of value key takes: integers (int keys, list entries, derived keys), numbers, or
 * anything else (names, booleans, strings, whole lists). */
static target_kind target_of(const char *key)
{
    if (is_derived_key(key))
        return TARGET_INT;
    char base[256];
    const char *open = strchr(key, '[');
    snprintf(base, sizeof base, "%.*s", open ? (int)(open - key) : (int)strlen(key), key);
    const config_key *k = find_key(base);
    if (!k)
        return TARGET_UNKNOWN;
    if (open)
        return k->type == KEY_INT_LIST ? TARGET_INT : TARGET_UNKNOWN;
    if (k->type == KEY_INT || k->type == KEY_INT64 || k->type == KEY_UINT64)
        return TARGET_INT;
    return k->type == KEY_DOUBLE ? TARGET_DOUBLE : TARGET_OTHER;
}

static int space_number(const parse_ctx *ctx, const yaml_node_t *v, const char *where,
                        double *out)
{
    if (v->type != YAML_SCALAR_NODE || parse_double((const char *)v->data.scalar.value, out) != 0)
        return fail_at(ctx, v->start_mark, "%s: expected a number", where);
    return DPT_OK;
}

/* The key a parameter sets: short enough, a config key (or a derived one), not one of the
 * search's own. *target gets what kind of value it takes. */
static int check_space_key(const parse_ctx *ctx, const char *key, yaml_node_t *knode,
                           dpt_space_param *p, target_kind *target)
{
    char where[160];
    snprintf(where, sizeof where, "search.space.%s", key);
    if (strlen(key) >= sizeof p->key)
        return fail_at(ctx, knode->start_mark, "%s: key too long (at most %zu bytes)", where,
                       sizeof p->key - 1);
    memcpy(p->key, key, strlen(key));
    *target = target_of(key);
    if (*target == TARGET_UNKNOWN) {
        char hint[128];
        if (suggest(key, hint, sizeof hint))
            return fail_at(ctx, knode->start_mark,
                           "search.space: '%s' is not a config key (did you mean '%s'?)", key,
                           hint);
        return fail_at(ctx, knode->start_mark, "search.space: '%s' is not a config key", key);
    }
    if (strncmp(key, "search.", 7) == 0 || strcmp(key, "run.out_dir") == 0 ||
        strcmp(key, "objective.function") == 0)
        return fail_at(ctx, knode->start_mark, "search.space: '%s' cannot be searched", key);
    return DPT_OK;
}

/* The fields of a parameter's mapping, each given at most once. */
typedef struct {
    yaml_node_t *type, *low, *high, *log, *choices;
} space_fields;

static int read_space_fields(const parse_ctx *ctx, yaml_document_t *doc, yaml_node_t *node,
                             const char *where, space_fields *f)
{
    memset(f, 0, sizeof *f);
    if (node->type != YAML_MAPPING_NODE)
        return fail_at(ctx, node->start_mark,
                       "%s: expected a mapping such as {type: uniform, low: 0, high: 1}, got %s",
                       where, node_kind(node));
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *fk = yaml_document_get_node(doc, pair->key);
        yaml_node_t *fv = yaml_document_get_node(doc, pair->value);
        const char *name = fk->type == YAML_SCALAR_NODE ? (const char *)fk->data.scalar.value : "";
        yaml_node_t **slot = strcmp(name, "type") == 0      ? &f->type
                             : strcmp(name, "low") == 0     ? &f->low
                             : strcmp(name, "high") == 0    ? &f->high
                             : strcmp(name, "log") == 0     ? &f->log
                             : strcmp(name, "choices") == 0 ? &f->choices
                                                            : NULL;
        if (!slot)
            return fail_at(ctx, fk->start_mark,
                           "%s: unknown field '%s' (expected type, low, high, log, choices)",
                           where, name);
        if (*slot)
            return fail_at(ctx, fk->start_mark, "%s: duplicate field '%s'", where, name);
        *slot = fv;
    }
    if (!f->type)
        return fail_at(ctx, node->start_mark,
                       "%s: missing 'type' (uniform, log_uniform, int or categorical)", where);
    return DPT_OK;
}

static int read_space_type(const parse_ctx *ctx, const yaml_node_t *type, const char *where,
                           dpt_space_param *p)
{
    const char *tname = type->type == YAML_SCALAR_NODE ? (const char *)type->data.scalar.value : "";
    int t = -1;
    for (int i = 0; space_type_names[i]; i++)
        if (strcmp(space_type_names[i], tname) == 0)
            t = i;
    if (t < 0)
        return fail_at(ctx, type->start_mark,
                       "%s: type must be uniform, log_uniform, int or categorical (got '%.60s')",
                       where, tname);
    p->type = (dpt_space_type)t;
    return DPT_OK;
}

/* A categorical parameter: 'choices', a list of distinct short scalars. */
static int read_space_choices(const parse_ctx *ctx, yaml_document_t *doc, yaml_node_t *node,
                              const space_fields *f, const char *where, dpt_space_param *p)
{
    if (f->low || f->high || f->log)
        return fail_at(ctx, (f->low ? f->low : f->high ? f->high : f->log)->start_mark,
                       "%s: a categorical parameter takes 'choices', not low/high/log", where);
    yaml_node_t *choices = f->choices;
    if (!choices || choices->type != YAML_SEQUENCE_NODE)
        return fail_at(ctx, (choices ? choices : node)->start_mark,
                       "%s: categorical needs 'choices', a list of values", where);
    long count = choices->data.sequence.items.top - choices->data.sequence.items.start;
    if (count < 1 || count > DPT_SEARCH_MAX_CHOICES)
        return fail_at(ctx, choices->start_mark, "%s: expected 1 to %d choices, got %ld", where,
                       DPT_SEARCH_MAX_CHOICES, count);
    for (long i = 0; i < count; i++) {
        yaml_node_t *c = yaml_document_get_node(doc, choices->data.sequence.items.start[i]);
        if (c->type != YAML_SCALAR_NODE || c->data.scalar.length >= DPT_SEARCH_CHOICE_MAX ||
            strlen((const char *)c->data.scalar.value) != c->data.scalar.length)
            return fail_at(ctx, c->start_mark,
                           "%s: each choice must be a value shorter than %d bytes", where,
                           DPT_SEARCH_CHOICE_MAX);
        memcpy(p->choices[i], c->data.scalar.value, c->data.scalar.length);
        for (long j = 0; j < i; j++)
            if (strcmp(p->choices[j], p->choices[i]) == 0)
                return fail_at(ctx, c->start_mark, "%s: choice '%s' is listed twice", where,
                               p->choices[i]);
    }
    p->n_choices = (int)count;
    return DPT_OK;
}

/* A numeric parameter: low < high (> 0 on a log scale, integers for int), a type the key
 * takes, 'log' only for int. */
static int read_space_range(const parse_ctx *ctx, yaml_node_t *node, const space_fields *f,
                            const char *key, target_kind target, const char *where,
                            dpt_space_param *p)
{
    if (f->choices)
        return fail_at(ctx, f->choices->start_mark, "%s: 'choices' is for type categorical", where);
    if (target == TARGET_OTHER)
        return fail_at(ctx, f->type->start_mark,
                       "%s: %s does not take numbers; use type categorical with choices", where,
                       key);
    if (target == TARGET_INT && p->type != DPT_SPACE_INT)
        return fail_at(ctx, f->type->start_mark, "%s: %s is an integer; use type int (log: true for "
                       "a log scale)", where, key);
    if (!f->low || !f->high)
        return fail_at(ctx, node->start_mark, "%s: needs 'low' and 'high'", where);
    int rc = space_number(ctx, f->low, where, &p->low);
    if (rc == DPT_OK)
        rc = space_number(ctx, f->high, where, &p->high);
    if (rc != DPT_OK)
        return rc;
    if (f->log) {
        if (p->type != DPT_SPACE_INT)
            return fail_at(ctx, f->log->start_mark, "%s: 'log' is for type int (use log_uniform)",
                           where);
        if (f->log->type != YAML_SCALAR_NODE ||
            parse_bool((const char *)f->log->data.scalar.value, &p->log) != 0)
            return fail_at(ctx, f->log->start_mark, "%s: log: expected true or false", where);
    }
    if (!(p->low < p->high))
        return fail_at(ctx, f->high->start_mark, "%s: high (%g) must be greater than low (%g)",
                       where, p->high, p->low);
    if ((p->type == DPT_SPACE_LOG_UNIFORM || p->log) && !(p->low > 0))
        return fail_at(ctx, f->low->start_mark, "%s: a log scale needs low > 0 (got %g)", where,
                       p->low);
    if (p->type == DPT_SPACE_INT && (p->low != floor(p->low) || p->high != floor(p->high) ||
                                     fabs(p->low) > 1e15 || fabs(p->high) > 1e15))
        return fail_at(ctx, f->low->start_mark, "%s: type int needs integer low and high", where);
    return DPT_OK;
}

static int apply_space_param(const parse_ctx *ctx, yaml_document_t *doc, const char *key,
                             yaml_node_t *knode, yaml_node_t *node, dpt_space_param *p)
{
    char where[160];
    snprintf(where, sizeof where, "search.space.%s", key);
    memset(p, 0, sizeof *p);
    target_kind target = TARGET_UNKNOWN;
    space_fields f;
    int rc = check_space_key(ctx, key, knode, p, &target);
    if (rc == DPT_OK)
        rc = read_space_fields(ctx, doc, node, where, &f);
    if (rc == DPT_OK)
        rc = read_space_type(ctx, f.type, where, p);
    if (rc != DPT_OK)
        return rc;
    if (p->type == DPT_SPACE_CATEGORICAL)
        return read_space_choices(ctx, doc, node, &f, where, p);
    return read_space_range(ctx, node, &f, key, target, where, p);
}

static int apply_space(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                       yaml_node_t *node)
{
    if (is_null_scalar(node)) {
        cfg->search.n_params = 0;
        memset(cfg->search.params, 0, sizeof cfg->search.params);
        return DPT_OK;
    }
    if (node->type != YAML_MAPPING_NODE)
        return fail_at(ctx, node->start_mark,
                       "search.space: expected a mapping of config keys to ranges, got %s",
                       node_kind(node));
    int n = 0;
    dpt_space_param params[DPT_SEARCH_MAX_PARAMS];
    memset(params, 0, sizeof params);
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *knode = yaml_document_get_node(doc, pair->key);
        yaml_node_t *vnode = yaml_document_get_node(doc, pair->value);
        if (knode->type != YAML_SCALAR_NODE)
            return fail_at(ctx, knode->start_mark, "search.space: keys must be scalars");
        const char *key = (const char *)knode->data.scalar.value;
        if (n == DPT_SEARCH_MAX_PARAMS)
            return fail_at(ctx, knode->start_mark, "search.space: at most %d parameters",
                           DPT_SEARCH_MAX_PARAMS);
        for (int j = 0; j < n; j++)
            if (strcmp(params[j].key, key) == 0)
                return fail_at(ctx, knode->start_mark, "search.space: duplicate key '%s'", key);
        int rc = apply_space_param(ctx, doc, key, knode, vnode, &params[n]);
        if (rc != DPT_OK)
            return rc;
        n++;
    }
    int has_depth = 0;
    for (int j = 0; j < n; j++)
        has_depth |= strcmp(params[j].key, "model.hidden_layers") == 0;
    for (int j = 0; j < n; j++)
        if (has_depth && strncmp(params[j].key, "model.layers", 12) == 0)
            return fail_at(ctx, node->start_mark,
                           "search.space: %s and model.hidden_layers both set the layers; use "
                           "model.hidden_width with model.hidden_layers",
                           params[j].key);
    memcpy(cfg->search.params, params, sizeof params);
    cfg->search.n_params = n;
    return DPT_OK;
}

/* Applies node as the value of key: a table row, or a whole section. */
static int apply_node(const parse_ctx *ctx, dpt_config *cfg, yaml_document_t *doc,
                      const char *key, yaml_mark_t key_mark, yaml_node_t *node)
{
    if (strcmp(key, "search.space") == 0)
        return apply_space(ctx, cfg, doc, node);
    const config_key *k = find_key(key);
    if (k)
        return apply_key(ctx, cfg, doc, k, node);
    if (is_section(key))
        return apply_mapping(ctx, cfg, doc, key, node);
    return fail_unknown(ctx, key_mark, key);
}

/* libyaml's own problem text, with its line and column. */
static int syntax_error(const parse_ctx *ctx, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return dpt_error_set(ctx->err, DPT_ERUNTIME, "%s: out of memory while parsing YAML",
                             ctx->source ? ctx->source : "a config value");
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR) {
        if (ctx->is_file)
            return dpt_error_set(ctx->err, DPT_EUSAGE, "%s: %s (at byte %zu)", ctx->source,
                                 problem, p->problem_offset);
        return fail_at(ctx, p->problem_mark, "%s", problem);
    }
    char context[256] = "";
    if (p->context && ctx->is_file)
        snprintf(context, sizeof context, " (%s that starts at line %zu, column %zu)", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    else if (p->context)
        snprintf(context, sizeof context, " (%s)", p->context);
    if (ctx->is_file)
        return fail_at(ctx, p->problem_mark, "%s%s", problem, context);
    return fail_at(ctx, p->problem_mark, "invalid YAML value: %s%s", problem, context);
}

/* Loads the first document of the parser's input, and checks that no second one follows.
 * On success the caller deletes *doc. */
static int load_document(const parse_ctx *ctx, yaml_parser_t *parser, yaml_document_t *doc)
{
    if (!yaml_parser_load(parser, doc))  /* libyaml deletes doc on failure */
        return syntax_error(ctx, parser);
    if (!yaml_document_get_root_node(doc))
        return DPT_OK;  /* empty input: end of stream */
    yaml_document_t next;
    if (!yaml_parser_load(parser, &next)) {
        yaml_document_delete(doc);
        return syntax_error(ctx, parser);
    }
    yaml_node_t *extra = yaml_document_get_root_node(&next);
    int rc = DPT_OK;
    if (extra)
        rc = fail_at(ctx, extra->start_mark, "only one YAML document is allowed");
    yaml_document_delete(&next);
    if (rc != DPT_OK)
        yaml_document_delete(doc);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Public functions */

void dpt_config_defaults(dpt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);  /* padding too: the struct is broadcast and compared as bytes */
    for (size_t i = 0; i < N_KEYS; i++) {
        char assignment[512];
        dpt_error err;
        snprintf(assignment, sizeof assignment, "%s=%s", keys[i].key, keys[i].def);
        if (dpt_config_set(cfg, assignment, &err) != DPT_OK) {
            /* A broken row is a programming error, caught by the defaults test. */
            fprintf(stderr, "dptrain: bad default in the config table: %s\n", err.msg);
            abort();
        }
    }
}

int dpt_config_load_file(dpt_config *cfg, const char *path, dpt_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dpt_error_set(err, DPT_EUSAGE, "cannot open config '%s': %s", path,
                             strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return dpt_error_set(err, DPT_EUSAGE, "cannot open config '%s': %s", path,
                             strerror(EISDIR));
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return dpt_error_set(err, DPT_ERUNTIME, "%s: cannot initialize the YAML parser", path);
    }
    yaml_parser_set_input_file(&parser, f);

    /* Work on a copy so that a failed load leaves cfg as it was. */
    dpt_config work;
    memcpy(&work, cfg, sizeof work);
    parse_ctx ctx = {.source = path, .is_file = 1, .err = err};
    yaml_document_t doc;
    int rc = load_document(&ctx, &parser, &doc);
    if (rc == DPT_OK) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        /* An empty file would train every default (Fashion-MNIST) and exit 0: almost always a
         * wrong path or an unsaved editor buffer, so it is refused. */
        if (!root || (root->type == YAML_MAPPING_NODE &&
                      root->data.mapping.pairs.start == root->data.mapping.pairs.top))
            rc = dpt_error_set(err, DPT_EUSAGE, "%s: the config file is empty (no keys); "
                               "write at least one key, e.g. 'train: {epochs: 10}'", path);
        else
            rc = apply_mapping(&ctx, &work, &doc, "", root);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc == DPT_OK)
        memcpy(cfg, &work, sizeof *cfg);
    return rc;
}

/* "model.layers[3]" -> base "model.layers", index 3; returns 1 if indexed, 0 if not, -1 if the
 * brackets are malformed. */
static int split_index(const char *key, char *base, size_t n, long *index)
{
    const char *open = strchr(key, '[');
    if (!open) {
        snprintf(base, n, "%s", key);
        return 0;
    }
    size_t len = strlen(key);
    if (key[len - 1] != ']' || open + 1 >= key + len - 1)
        return -1;
    long v = 0;
    for (const char *p = open + 1; p < key + len - 1; p++) {
        if (*p < '0' || *p > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*p - '0');
    }
    snprintf(base, n, "%.*s", (int)(open - key), key);
    *index = v;
    return 1;
}


/* model.hidden_layers=D: D hidden layers, all as wide as the first hidden layer (or the inputs
 * when there is none); model.hidden_width=W: every hidden layer W wide. text is v as given, for
 * the message. */
static int set_derived_value(dpt_config *cfg, const parse_ctx *ctx, const char *key, int64_t v,
                             const char *text)
{
    yaml_mark_t nomark = {0, 0, 0};
    char why[256];
    int depth = strcmp(key, "model.hidden_layers") == 0;
    if (check_int_range(v, 1, depth ? DPT_MAX_LAYERS - 1 : 1000000, text, why, sizeof why) != 0)
        return fail_at(ctx, nomark, "%s: %s", key, why);
    int n = cfg->model.n_layers;
    int *w = cfg->model.widths;
    int in = w[0], out = w[n];
    if (depth) {
        int width = n > 1 ? w[1] : in;
        memset(w, 0, sizeof cfg->model.widths);
        w[0] = in;
        for (int l = 1; l <= (int)v; l++)
            w[l] = width;
        w[v + 1] = out;
        cfg->model.n_layers = (int)v + 1;
    } else {
        if (n < 2)
            return fail_at(ctx, nomark, "%s: model.layers has no hidden layer to widen", key);
        for (int l = 1; l < n; l++)
            w[l] = (int)v;
    }
    return DPT_OK;
}

/* A derived key from text: an integer, blanks around it ignored. */
static int set_derived(dpt_config *cfg, const parse_ctx *ctx, const char *key, const char *value)
{
    yaml_mark_t nomark = {0, 0, 0};
    char text[64], why[256];
    while (*value == ' ' || *value == '\t')
        value++;
    snprintf(text, sizeof text, "%s", value);
    for (size_t len = strlen(text); len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t');)
        text[--len] = '\0';
    int depth = strcmp(key, "model.hidden_layers") == 0;
    int64_t v;
    if (parse_ranged_int(text, 1, depth ? DPT_MAX_LAYERS - 1 : 1000000, &v, why, sizeof why) != 0)
        return fail_at(ctx, nomark, "%s: %s", key, why);
    return set_derived_value(cfg, ctx, key, v, text);
}

/* The table row of key, or of the list key indexes ("model.layers[1]": *index 1, else -1);
 * fails naming what is wrong with the key. */
static int find_target(const parse_ctx *ctx, const dpt_config *cfg, const char *key,
                       const config_key **k, long *index)
{
    char base[256];
    yaml_mark_t nomark = {0, 0, 0};
    int indexed = split_index(key, base, sizeof base, index);
    if (indexed < 0)
        return fail_at(ctx, nomark, "bad list index in '%s' (expected KEY[N])", key);
    *k = find_key(base);
    if (!indexed) {
        *index = -1;
        return DPT_OK;
    }
    if (!*k)
        return fail_unknown(ctx, nomark, base);
    if ((*k)->type != KEY_INT_LIST)
        return fail_at(ctx, nomark, "%s is not a list, so '%s' cannot be indexed", base, key);
    if (*index >= list_len(cfg, *k))
        return fail_at(ctx, nomark, "%s: index out of range (the list has %d entries)", key,
                       list_len(cfg, *k));
    return DPT_OK;
}

/* Applies value (YAML text) to key on cfg; errors name the assignment. */
static int apply_assignment(dpt_config *cfg, const parse_ctx *ctx, const char *key,
                            const char *value)
{
    long index = 0;
    yaml_mark_t nomark = {0, 0, 0};
    if (is_derived_key(key))
        return set_derived(cfg, ctx, key, value);
    const config_key *k;
    int rc = find_target(ctx, cfg, key, &k, &index);
    if (rc != DPT_OK)
        return rc;
    int indexed = index >= 0;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return fail_at(ctx, nomark, "cannot initialize the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)value, strlen(value));
    yaml_document_t doc;
    rc = load_document(ctx, &parser, &doc);
    if (rc == DPT_OK) {
        yaml_node_t *node = yaml_document_get_root_node(&doc);
        yaml_node_t empty;  /* "KEY=" with nothing after it: an empty plain scalar */
        if (!node) {
            memset(&empty, 0, sizeof empty);
            empty.type = YAML_SCALAR_NODE;
            empty.data.scalar.value = (yaml_char_t *)"";
            empty.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
            node = &empty;
        }
        if (indexed)
            rc = set_list_item(ctx, cfg, k, (int)index, node, key);
        else
            rc = apply_node(ctx, cfg, &doc, key, nomark, node);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* A typed number or scalar to key (a table key, an indexed list entry or a derived key). */
static int apply_typed(dpt_config *cfg, const parse_ctx *ctx, const char *key, const dpt_value *v)
{
    yaml_mark_t nomark = {0, 0, 0};
    char text[64], why[512];
    if (v->kind == DPT_VALUE_INT)
        snprintf(text, sizeof text, "%" PRId64, v->i);
    if (is_derived_key(key)) {
        if (v->kind == DPT_VALUE_INT)
            return set_derived_value(cfg, ctx, key, v->i, text);
        if (v->kind == DPT_VALUE_DOUBLE)
            format_double(v->d, text, sizeof text);
        else
            snprintf(text, sizeof text, "%.*s", (int)v->len, v->s);
        return set_derived(cfg, ctx, key, text);
    }
    const config_key *k;
    long index;
    int rc = find_target(ctx, cfg, key, &k, &index);
    if (rc != DPT_OK)
        return rc;
    if (!k)
        return fail_unknown(ctx, nomark, key);
    if (index < 0) {
        if (set_value(cfg, k, v, why, sizeof why) != 0)
            return fail_at(ctx, nomark, "%s: %s", key, why);
        return DPT_OK;
    }
    int64_t item;
    if (v->kind == DPT_VALUE_INT) {
        if (check_int_range(v->i, k->imin, k->imax, text, why, sizeof why) != 0)
            return fail_at(ctx, nomark, "%s: %s", key, why);
        item = v->i;
    } else {
        if (v->kind == DPT_VALUE_DOUBLE)
            format_double(v->d, text, sizeof text);
        else
            snprintf(text, sizeof text, "%.*s", (int)v->len, v->s);
        if (parse_ranged_int(text, k->imin, k->imax, &item, why, sizeof why) != 0)
            return fail_at(ctx, nomark, "%s: %s", key, why);
    }
    ((int *)field_ptr(cfg, k->offset))[index] = (int)item;
    return DPT_OK;
}

int dpt_config_set_value(dpt_config *cfg, const char *key, const dpt_value *v, dpt_error *err)
{
    parse_ctx ctx = {.source = NULL, .is_file = 0, .err = err};
    dpt_config *work = malloc(sizeof *work);
    if (!work)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory setting %s", key);
    memcpy(work, cfg, sizeof *work);
    int rc = v->kind == DPT_VALUE_YAML ? apply_assignment(work, &ctx, key, v->s)
                                       : apply_typed(work, &ctx, key, v);
    if (rc == DPT_OK)
        memcpy(cfg, work, sizeof *cfg);
    free(work);
    return rc;
}

int dpt_config_set(dpt_config *cfg, const char *assignment, dpt_error *err)
{
    parse_ctx ctx = {.source = assignment, .is_file = 0, .err = err};
    yaml_mark_t nomark = {0, 0, 0};
    const char *eq = strchr(assignment, '=');
    const char *kb = assignment, *ke = eq ? eq : assignment;
    while (kb < ke && (*kb == ' ' || *kb == '\t'))
        kb++;
    while (ke > kb && (ke[-1] == ' ' || ke[-1] == '\t'))
        ke--;
    if (!eq || ke == kb)
        return fail_at(&ctx, nomark, "expected KEY=VALUE (e.g. train.lr=0.01)");
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(ke - kb), kb);

    dpt_config work;
    memcpy(&work, cfg, sizeof work);
    int rc = apply_assignment(&work, &ctx, key, eq + 1);
    if (rc == DPT_OK)
        memcpy(cfg, &work, sizeof *cfg);
    return rc;
}


/* Value v of parameter p (a choice's index for a categorical, else low or high) as a search
 * trial sets it, and as text for messages. */
static dpt_value space_end(const dpt_space_param *p, int v, char *text, size_t n)
{
    double x = v == 0 ? p->low : p->high;
    if (p->type == DPT_SPACE_CATEGORICAL) {
        snprintf(text, n, "%s", p->choices[v]);
        return (dpt_value){.kind = DPT_VALUE_YAML, .s = p->choices[v]};
    }
    if (p->type == DPT_SPACE_INT) {
        snprintf(text, n, "%.0f", x);
        return (dpt_value){.kind = DPT_VALUE_INT, .i = (int64_t)x};
    }
    format_double(x, text, n);
    return (dpt_value){.kind = DPT_VALUE_DOUBLE, .d = x};
}

/* Every end of every range in search.space must be a valid value of its key in this config
 * (in range, an index that exists, a name the key knows). */
static int validate_space(const dpt_config *c, dpt_error *err)
{
    dpt_config *scratch = malloc(sizeof *scratch);
    if (!scratch)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory validating search.space");
    int rc = DPT_OK;
    for (int i = 0; rc == DPT_OK && i < c->search.n_params; i++) {
        const dpt_space_param *p = &c->search.params[i];
        int n_values = p->type == DPT_SPACE_CATEGORICAL ? p->n_choices : 2;
        for (int v = 0; rc == DPT_OK && v < n_values; v++) {
            char text[DPT_SEARCH_CHOICE_MAX + 32];
            dpt_value value = space_end(p, v, text, sizeof text);
            memcpy(scratch, c, sizeof *scratch);
            dpt_error inner;
            if (dpt_config_set_value(scratch, p->key, &value, &inner) != DPT_OK) {
                const char *what = p->type == DPT_SPACE_CATEGORICAL ? "choice" : v ? "high" : "low";
                rc = dpt_error_set(err, DPT_EUSAGE, "search.space.%s: %s %s is not a valid value: %s",
                                   p->key, what, text, inner.msg);
            }
        }
    }
    free(scratch);
    return rc;
}

int dpt_config_fit_warmup(dpt_config *cfg, const dpt_config *before, char *note, size_t n)
{
    int w = cfg->train.warmup_epochs, e = cfg->train.epochs;
    if (w == 0 || w < e)
        return 0;
    int w0 = before->train.warmup_epochs, e0 = before->train.epochs;
    if (w0 != 0 && w0 >= e0) /* the file itself is inconsistent: validation refuses it */
        return 0;
    cfg->train.warmup_epochs = e - 1;
    snprintf(note, n, "train.warmup_epochs %d is not less than train.epochs %d after --set: "
             "warmup shortened to %d epochs", w, e, e - 1);
    return 1;
}

int dpt_config_validate(const dpt_config *cfg, dpt_error *err)
{
    const int n = cfg->model.n_layers;
    if (n < 1 || n > DPT_MAX_LAYERS)
        return dpt_error_set(err, DPT_EUSAGE,
                             "model.layers: needs 2 to %d widths (inputs, hidden..., outputs), "
                             "got %d",
                             DPT_MAX_LAYERS + 1, n + 1);
    const dpt_config *c = cfg;
    if (c->data.format == DPT_FORMAT_IDX && (!c->data.train_images[0] || !c->data.train_labels[0]))
        return dpt_error_set(err, DPT_EUSAGE,
                             "data.format is idx, so data.train_images and data.train_labels "
                             "must be set (%s is empty)",
                             !c->data.train_images[0] ? "data.train_images" : "data.train_labels");
    if (c->data.format == DPT_FORMAT_CSV && !c->data.train_csv[0])
        return dpt_error_set(err, DPT_EUSAGE,
                             "data.format is csv, so data.train_csv must be set (it is empty)");
    if (!c->data.test_images[0] != !c->data.test_labels[0])
        return dpt_error_set(err, DPT_EUSAGE,
                             "data.test_images and data.test_labels must both be set or both be "
                             "empty (%s is empty)",
                             !c->data.test_images[0] ? "data.test_images" : "data.test_labels");
    int regression = c->data.task == DPT_TASK_REGRESSION;
    if (regression && c->data.format != DPT_FORMAT_CSV)
        return dpt_error_set(err, DPT_EUSAGE, "data.task: regression reads its targets from a "
                             "CSV file: set data.format: csv (it is %s)",
                             dpt_format_name(c->data.format));
    if (regression && c->model.loss == DPT_LOSS_SOFTMAX_CE)
        return dpt_error_set(err, DPT_EUSAGE, "data.task: regression needs model.loss: mse or "
                             "huber (softmax_cross_entropy is for classes)");
    if (!regression && c->model.loss == DPT_LOSS_HUBER)
        return dpt_error_set(err, DPT_EUSAGE, "model.loss: huber is for data.task: regression");
    if (c->model.huber_delta != 1.0 && c->model.loss != DPT_LOSS_HUBER)
        return dpt_error_set(err, DPT_EUSAGE, "model.huber_delta (%g) is for model.loss: huber",
                             c->model.huber_delta);
    if (!regression && (c->data.target_scaling != DPT_TARGET_SCALING_NONE ||
                        c->search.objective == DPT_SEARCH_VAL_RMSE))
        return dpt_error_set(err, DPT_EUSAGE, "%s is for data.task: regression",
                             c->data.target_scaling != DPT_TARGET_SCALING_NONE
                                 ? "data.target_scaling: standardize"
                                 : "search.objective: val_rmse");
    if (c->train.warmup_epochs > 0 && c->train.warmup_epochs >= c->train.epochs)
        return dpt_error_set(err, DPT_EUSAGE,
                             "train.warmup_epochs (%d) must be less than train.epochs (%d)",
                             c->train.warmup_epochs, c->train.epochs);
    return validate_space(c, err);
}

/* Shortest "%.*g" that reads back to exactly v, with ".0" added where it would look like an
 * integer or lack the dot YAML 1.1 readers (PyYAML) need: 0.05, 1.0e-08, 10.0. */
static void format_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* 10 reads back from "1e+01" already: prefer "10" where the number is of everyday size */
    if (strchr(buf, 'e') && fabs(v) >= 1.0 && fabs(v) < 1e15) {
        char plain[64];
        snprintf(plain, sizeof plain, "%.0f", v);
        if (strtod(plain, NULL) == v)
            snprintf(buf, n, "%s", plain);
    }
    if (!isfinite(v) || strchr(buf, '.'))
        return;
    char *e = strchr(buf, 'e');
    char tail[32] = "";
    if (e) {
        snprintf(tail, sizeof tail, "%s", e);
        *e = '\0';
    }
    size_t used = strlen(buf);
    snprintf(buf + used, n - used, ".0%s", tail);
}

/* The code point of the UTF-8 sequence at p (*len bytes) when YAML cannot hold it raw in a
 * double-quoted scalar, else 0: C1 controls (libyaml refuses them in a file), NEL, LS and PS
 * (line breaks, folded into a space) and U+FEFF, U+FFFE, U+FFFF (not printable). */
static unsigned yaml_unprintable(const unsigned char *p, int *len)
{
    *len = p[0] == 0xc2 ? 2 : 3;
    if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
        return p[1];
    if ((p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) ||
        (p[0] == 0xef && ((p[1] == 0xbb && p[2] == 0xbf) ||
                          (p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)))))
        return (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
    return 0;
}

/* A double-quoted YAML scalar: backslash escapes for quotes, backslashes, control bytes and the
 * characters yaml_unprintable names, so that the file reads back to the same bytes. */
static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned cp;
        int len;
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fprintf(f, "\\x%02x", *p);
            } else if (*p >= 0x80 && (cp = yaml_unprintable(p, &len)) != 0) {
                fprintf(f, "\\u%04x", cp);
                p += len - 1;
            } else {
                fputc(*p, f);
            }
        }
    }
    fputc('"', f);
}

/* A key's value as YAML text (strings raw, without quotes); *is_string as dpt_config_get. */
static void format_value(const dpt_config *cfg, const config_key *k, char *out, size_t n,
                         int *is_string)
{
    const void *p = field_cptr(cfg, k->offset);
    *is_string = 0;
    switch (k->type) {
    case KEY_STRING:
        snprintf(out, n, "%.*s", (int)k->size, (const char *)p); /* NUL-safe */
        *is_string = 1;
        break;
    case KEY_BOOL: snprintf(out, n, "%s", *(const int *)p ? "true" : "false"); break;
    case KEY_INT: snprintf(out, n, "%d", *(const int *)p); break;
    case KEY_INT64: snprintf(out, n, "%" PRId64, *(const int64_t *)p); break;
    case KEY_UINT64: snprintf(out, n, "%" PRIu64, *(const uint64_t *)p); break;
    case KEY_DOUBLE: format_double(*(const double *)p, out, n); break;
    case KEY_ENUM: {
        int v = *(const int *)p;
        int count = 0;
        while (k->names[count])
            count++;
        if (v >= 0 && v < count) {
            snprintf(out, n, "%s", k->names[v]);
            *is_string = 1;
        } else {
            snprintf(out, n, "%d", v); /* not a valid value: loading it back fails loudly */
        }
        break;
    }
    case KEY_INT_LIST: {
        const int *w = (const int *)p;
        int len = list_len(cfg, k);
        size_t used = (size_t)snprintf(out, n, "[");
        for (int j = 0; j < len && used < n; j++)
            used += (size_t)snprintf(out + used, n - used, "%s%d", j ? ", " : "", w[j]);
        if (used < n)
            snprintf(out + used, n - used, "]");
        break;
    }
    }
}

int dpt_config_get(const dpt_config *cfg, const char *key, char *out, size_t n, int *is_string)
{
    *is_string = 0;
    if (strcmp(key, "model.hidden_layers") == 0) {
        snprintf(out, n, "%d", cfg->model.n_layers - 1);
        return 0;
    }
    if (strcmp(key, "model.hidden_width") == 0) {
        snprintf(out, n, "%d", cfg->model.n_layers > 1 ? cfg->model.widths[1] : 0);
        return 0;
    }
    char base[256];
    long index = 0;
    int indexed = split_index(key, base, sizeof base, &index);
    const config_key *k = indexed >= 0 ? find_key(base) : NULL;
    if (!k)
        return -1;
    if (indexed) {
        if (k->type != KEY_INT_LIST || index >= list_len(cfg, k))
            return -1;
        snprintf(out, n, "%d", ((const int *)field_cptr(cfg, k->offset))[index]);
        return 0;
    }
    format_value(cfg, k, out, n, is_string);
    return 0;
}

/* search.space, as apply_space reads it. */
static void write_space(const dpt_config *cfg, FILE *f)
{
    if (cfg->search.n_params == 0) {
        fputs("  space: {}\n", f);
        return;
    }
    fputs("  space:\n", f);
    for (int i = 0; i < cfg->search.n_params && i < DPT_SEARCH_MAX_PARAMS; i++) {
        const dpt_space_param *p = &cfg->search.params[i];
        char key[DPT_SEARCH_KEY_MAX + 1];
        snprintf(key, sizeof key, "%.*s", DPT_SEARCH_KEY_MAX, p->key);
        fputs("    ", f);
        write_string(f, key);
        fprintf(f, ": {type: %s", dpt_space_type_name(p->type));
        if (p->type == DPT_SPACE_CATEGORICAL) {
            fputs(", choices: [", f);
            for (int j = 0; j < p->n_choices && j < DPT_SEARCH_MAX_CHOICES; j++) {
                char c[DPT_SEARCH_CHOICE_MAX + 1];
                snprintf(c, sizeof c, "%.*s", DPT_SEARCH_CHOICE_MAX, p->choices[j]);
                if (j)
                    fputs(", ", f);
                write_string(f, c);
            }
            fputs("]}\n", f);
            continue;
        }
        char lo[64], hi[64];
        if (p->type == DPT_SPACE_INT) {
            snprintf(lo, sizeof lo, "%.0f", p->low);
            snprintf(hi, sizeof hi, "%.0f", p->high);
        } else {
            format_double(p->low, lo, sizeof lo);
            format_double(p->high, hi, sizeof hi);
        }
        fprintf(f, ", low: %s, high: %s", lo, hi);
        if (p->type == DPT_SPACE_INT)
            fprintf(f, ", log: %s", p->log ? "true" : "false");
        fputs("}\n", f);
    }
}

int dpt_config_write(const dpt_config *cfg, FILE *f)
{
    fputs("# resolved configuration written by dptrain\n", f);
    const char *section = NULL, *sub = NULL;
    size_t section_len = 0, sub_len = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const config_key *k = &keys[i];
        size_t len = (size_t)(strchr(k->key, '.') - k->key);
        if (!section || len != section_len || strncmp(section, k->key, len) != 0) {
            if (section && strncmp(section, "search.", 7) == 0)
                write_space(cfg, f);
            fprintf(f, "%.*s:\n", (int)len, k->key);
            section = k->key;
            section_len = len;
            sub = NULL;
        }
        /* one level of nesting: "search.early_stopping.rule" */
        const char *name = k->key + len + 1;
        const char *dot = strchr(name, '.');
        const char *indent = "  ";
        if (dot) {
            size_t l = (size_t)(dot - name);
            if (!sub || l != sub_len || strncmp(sub, name, l) != 0)
                fprintf(f, "  %.*s:\n", (int)l, name);
            sub = name;
            sub_len = l;
            name = dot + 1;
            indent = "    ";
        } else {
            sub = NULL;
        }
        fprintf(f, "%s%s: ", indent, name);
        char text[DPT_PATH_MAX + 64];
        int is_string;
        format_value(cfg, k, text, sizeof text, &is_string);
        if (k->type == KEY_STRING)
            write_string(f, text);
        else
            fputs(text, f);
        if (k->type == KEY_ENUM) {
            fputs("  #", f);
            for (int j = 0; k->names[j]; j++)
                fprintf(f, "%s %s", j ? " |" : "", k->names[j]);
        }
        fputc('\n', f);
    }
    if (section && strncmp(section, "search.", 7) == 0)
        write_space(cfg, f);
    return ferror(f) ? DPT_ERUNTIME : DPT_OK;
}

void dpt_config_format_double(double v, char *buf, size_t n) { format_double(v, buf, n); }

int dpt_config_save(const dpt_config *cfg, const char *path, dpt_error *err)
{
    char tmp[DPT_PATH_MAX + 64];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dpt_error_set(err, DPT_ERUNTIME, "path too long: '%s'", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot write '%s': %s", tmp, strerror(errno));
    int bad = dpt_config_write(cfg, f) != 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dpt_error_set(err, DPT_ERUNTIME, "cannot write '%s': %s", path, strerror(e));
    }
    return DPT_OK;
}

static const char *enum_name(const char *const *names, size_t count, int v)
{
    return v >= 0 && (size_t)v < count ? names[v] : "unknown";
}

const char *dpt_activation_name(dpt_activation a)
{
    return enum_name(activation_names, N_NAMES(activation_names), (int)a);
}
const char *dpt_optimizer_name(dpt_optimizer o)
{
    return enum_name(optimizer_names, N_NAMES(optimizer_names), (int)o);
}
const char *dpt_schedule_name(dpt_schedule s)
{
    return enum_name(schedule_names, N_NAMES(schedule_names), (int)s);
}
const char *dpt_loss_name(dpt_loss l) { return enum_name(loss_names, N_NAMES(loss_names), (int)l); }
const char *dpt_device_name(dpt_device_kind d)
{
    return enum_name(device_names, N_NAMES(device_names), (int)d);
}
const char *dpt_format_name(dpt_data_format f)
{
    return enum_name(format_names, N_NAMES(format_names), (int)f);
}
const char *dpt_sharding_name(dpt_sharding s)
{
    return enum_name(sharding_names, N_NAMES(sharding_names), (int)s);
}
const char *dpt_scaling_name(dpt_scaling s)
{
    return enum_name(scaling_names, N_NAMES(scaling_names), (int)s);
}
const char *dpt_init_name(dpt_init i) { return enum_name(init_names, N_NAMES(init_names), (int)i); }
const char *dpt_precision_name(dpt_precision p)
{
    return enum_name(precision_names, N_NAMES(precision_names), (int)p);
}
const char *dpt_space_type_name(dpt_space_type t)
{
    return enum_name(space_type_names, N_NAMES(space_type_names), (int)t);
}
const char *dpt_search_algorithm_name(dpt_search_algorithm a)
{
    return enum_name(algorithm_names, N_NAMES(algorithm_names), (int)a);
}
const char *dpt_search_objective_name(dpt_search_objective o)
{
    return enum_name(objective_names, N_NAMES(objective_names), (int)o);
}
const char *dpt_function_name(dpt_function f)
{
    return enum_name(function_names, N_NAMES(function_names), (int)f);
}
const char *dpt_comm_algorithm_name(dpt_comm_algorithm a)
{
    return enum_name(comm_algorithm_names, N_NAMES(comm_algorithm_names), (int)a);
}
const char *dpt_compress_name(dpt_compress c)
{
    return enum_name(compress_names, N_NAMES(compress_names), (int)c);
}

const char *dpt_task_name(dpt_task t) { return enum_name(task_names, N_NAMES(task_names), (int)t); }
