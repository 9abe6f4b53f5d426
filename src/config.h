/* The run configuration: one plain struct (fixed-size, no pointers) so rank 0 can parse and
 * validate the YAML file and broadcast the result to every rank as bytes. Parsing, validation,
 * --set overrides and writing the resolved file are table-driven: one row per key (config.c). */
#ifndef DPT_CONFIG_H
#define DPT_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "ops.h" /* dpt_activation, dpt_loss, dpt_precision: the backends' enums */

#define DPT_MAX_LAYERS 16  /* at most 16 weight layers, so 17 widths */
#define DPT_PATH_MAX 1024

#include "comm_types.h" /* dpt_device_kind, dpt_comm_algorithm, dpt_compress */
typedef enum { DPT_FORMAT_IDX, DPT_FORMAT_CSV, DPT_FORMAT_SYNTHETIC } dpt_data_format;
typedef enum { DPT_SHARDING_REPLICATED, DPT_SHARDING_SHARDED } dpt_sharding;
typedef enum { DPT_SCALING_UNIT, DPT_SCALING_STANDARDIZE, DPT_SCALING_NONE } dpt_scaling;
typedef enum { DPT_RESIDENT_AUTO, DPT_RESIDENT_ON, DPT_RESIDENT_OFF } dpt_resident;
/* train.cuda_graph: the step captured once and replayed (src/train.c, graph_verdict) */
typedef enum { DPT_GRAPH_AUTO, DPT_GRAPH_ON, DPT_GRAPH_OFF } dpt_cuda_graph;
/* train.gemm_epilogue: bias and ReLU fused into cuBLASLt's GEMMs (cuda/lt.cu) */
typedef enum { DPT_GEMM_EPI_AUTO, DPT_GEMM_EPI_ON, DPT_GEMM_EPI_OFF } dpt_gemm_epilogue;
typedef enum { DPT_INIT_AUTO, DPT_INIT_HE, DPT_INIT_XAVIER } dpt_init;
typedef enum { DPT_OPT_SGD, DPT_OPT_ADAM, DPT_OPT_ADAMW } dpt_optimizer;
typedef enum { DPT_SCHED_CONSTANT, DPT_SCHED_STEP, DPT_SCHED_COSINE } dpt_schedule;
typedef enum { DPT_PROGRESS_AUTO, DPT_PROGRESS_ON, DPT_PROGRESS_OFF } dpt_progress;
typedef enum { DPT_SEARCH_BAYES, DPT_SEARCH_RANDOM, DPT_SEARCH_GRID } dpt_search_algorithm;
typedef enum { DPT_SEARCH_VAL_ERROR, DPT_SEARCH_VAL_LOSS, DPT_SEARCH_VAL_RMSE } dpt_search_objective;
typedef enum { DPT_TASK_CLASSIFICATION, DPT_TASK_REGRESSION } dpt_task;
typedef enum { DPT_TARGET_SCALING_NONE, DPT_TARGET_SCALING_STANDARDIZE } dpt_target_scaling;
typedef enum { DPT_MISSING_ERROR, DPT_MISSING_MEAN } dpt_missing;
typedef enum { DPT_STOP_NONE, DPT_STOP_MEDIAN, DPT_STOP_ASHA } dpt_stop_rule;
/* how the GP reads a trial asha stopped: its rung value, or that plus the median gap (policy.h) */
typedef enum { DPT_FIDELITY_RAW, DPT_FIDELITY_MEDIAN_GAP, DPT_FIDELITY_GP } dpt_stop_fidelity;
typedef enum { DPT_SCHEDULE_ASYNC, DPT_SCHEDULE_SYNC } dpt_search_schedule;
typedef enum { DPT_FEASIBILITY_MODEL, DPT_FEASIBILITY_WORST } dpt_search_feasibility;
typedef enum { DPT_ACQUISITION_EI, DPT_ACQUISITION_EI_PER_SECOND } dpt_search_acquisition;
typedef enum { DPT_FUNCTION_NONE, DPT_FUNCTION_BRANIN, DPT_FUNCTION_HARTMANN6 } dpt_function;
typedef enum {
    DPT_SPACE_UNIFORM,      /* double in [low, high] */
    DPT_SPACE_LOG_UNIFORM,  /* double in [low, high], uniform in log */
    DPT_SPACE_INT,          /* integer in [low, high], uniform in log when log is set */
    DPT_SPACE_CATEGORICAL   /* one of choices[], each a YAML value for the key */
} dpt_space_type;

#define DPT_SEARCH_MAX_PARAMS 16
#define DPT_SEARCH_MAX_CHOICES 16
#define DPT_SEARCH_KEY_MAX 64
#define DPT_SEARCH_CHOICE_MAX 64
#define DPT_OBJECTIVE_MAX_X 6

/* One searched parameter: the config key it sets and the values it may take. Besides config
 * keys, two search-only keys rebuild model.layers as [inputs, width x depth, outputs]:
 * model.hidden_layers (depth) and model.hidden_width. */
typedef struct {
    char key[DPT_SEARCH_KEY_MAX];
    dpt_space_type type;
    double low, high;
    int log;                                               /* int: uniform in log */
    int n_choices;
    char choices[DPT_SEARCH_MAX_CHOICES][DPT_SEARCH_CHOICE_MAX];  /* categorical: YAML text */
} dpt_space_param;

typedef struct {
    struct {
        char name[128];
        char out_dir[DPT_PATH_MAX];
        uint64_t seed;
        dpt_device_kind device;
        int threads;                 /* 0 = cores / ranks on this node */
        dpt_progress progress;       /* live progress line; auto: when stdout is a terminal and
                                      * dptrain runs without mpirun (whose output forwarding
                                      * makes every rank's stdout look like a terminal) */
        double comm_timeout_s;       /* the watchdog (NCCL, MPI): a gradient allreduce not done
                                      * after this long aborts the job naming the collective
                                      * and the ranks that did not arrive; 0 = wait forever */
        int64_t check_every;         /* steps between comparisons of the ranks' parameters
                                      * (a hash); 0 = never */
        char trace[DPT_PATH_MAX];    /* Chrome trace-event JSON of the run's steps; "" = none */
        int64_t trace_steps;         /* run.trace: the first this many steps of each epoch */
    } run;
    struct {
        dpt_data_format format;
        char train_images[DPT_PATH_MAX];   /* idx */
        char train_labels[DPT_PATH_MAX];
        char test_images[DPT_PATH_MAX];    /* "" = no test set */
        char test_labels[DPT_PATH_MAX];
        char train_csv[DPT_PATH_MAX];      /* csv: label column first, then features */
        char test_csv[DPT_PATH_MAX];
        int csv_header;                    /* csv: the first line is a header (false: detected
                                            * when none of its fields is a number) */
        char label_column[DPT_PATH_MAX];   /* csv: name or index ("" = the first column) */
        char feature_columns[DPT_PATH_MAX];/* csv: names, indices, ranges ("" = all others) */
        char class_names[DPT_PATH_MAX];    /* csv: label names in class-id order ("" = integer
                                            * labels, or the sorted names the file holds) */
        int64_t synthetic_train;           /* synthetic: samples in the training file */
        int64_t synthetic_test;
        int synthetic_teacher_width;       /* hidden width of the random teacher MLP */
        double validation_fraction;        /* [0, 0.9] */
        int shuffle;
        dpt_sharding sharding;
        dpt_scaling scaling;
        dpt_resident device_resident;      /* GPU: training rows in device memory (auto: when
                                            * they fit), else staged through pinned memory */
        dpt_task task;                     /* regression: label_column names the real-valued
                                            * target column(s), the model predicts them */
        dpt_target_scaling target_scaling; /* regression: standardize the targets for training */
        dpt_missing missing;               /* csv: a missing feature is an error, or the
                                            * training column's mean */
    } data;
    struct {
        int n_layers;                      /* weight layers: widths has n_layers + 1 entries */
        int widths[DPT_MAX_LAYERS + 1];
        dpt_activation activation;
        double dropout;                    /* [0, 1) on hidden activations */
        dpt_loss loss;
        double huber_delta;                /* > 0: model.loss huber's delta */
        dpt_init init;
    } model;
    struct {
        int epochs;
        int batch_size;                    /* global: split across all ranks */
        dpt_optimizer optimizer;
        double lr;
        double momentum;
        int nesterov;
        double weight_decay;
        double beta1, beta2, eps;          /* adam, adamw */
        dpt_schedule schedule;
        int step_epochs;                   /* step schedule: multiply by step_gamma every ... */
        double step_gamma;
        double min_lr;                     /* cosine: floor */
        int warmup_epochs;
        double clip_grad_norm;             /* 0 = off */
        dpt_precision precision;
        int64_t max_steps;                 /* 0 = no limit */
        int log_every;                     /* steps between progress lines (terminal) */
        dpt_cuda_graph cuda_graph;         /* CUDA backend: the step as a CUDA Graph */
        dpt_gemm_epilogue gemm_epilogue;   /* CUDA backend: cuBLASLt epilogues */
    } train;
    struct {
        double bucket_mb;                  /* gradient bucket size in MiB (layers are grouped,
                                            * last layer first, until a bucket reaches it) */
        int overlap;                       /* each bucket's allreduce starts during backward;
                                            * false: one allreduce after backward */
        dpt_comm_algorithm algorithm;      /* MPI path: flat allreduce; reduce within the
                                            * node, allreduce among leaders, broadcast; or
                                            * dptrain's ring of eager messages */
        dpt_compress compress;             /* gradients travel as bfloat16 */
    } comm;
    struct {
        dpt_search_algorithm algorithm;
        int trials;                        /* budget: trials in all */
        int budget_epochs;                 /* 0, or no new trial once the trials have trained
                                            * this many epochs in all */
        int budget_epochs_hard;            /* async: the budget is never passed: a trial
                                            * starts or goes past a rung only if the epochs
                                            * to its next rung (or the end) fit in it */
        double budget_seconds;             /* 0, or no new trial once the search's clock
                                            * (start_s, end_s) has reached this */
        int initial_random;                /* bayes: random trials before the GP proposes */
        dpt_search_objective objective;    /* minimized: 1 - val accuracy, or val loss */
        int parallel;                      /* G: groups of ranks training trials at once */
        dpt_search_schedule schedule;      /* async: a group gets its next trial as it
                                            * finishes; sync: rounds of G trials */
        dpt_search_feasibility feasibility; /* diverged/failed trials: a classifier of
                                            * P(feasible), or the worst value in the GP */
        dpt_search_acquisition acquisition; /* ei, or ei_per_second: EI over a second GP's
                                            * predicted log seconds of the trial */
        int max_retries;                   /* a trial the infrastructure failed runs again up
                                            * to this many times, then counts as failed */
        dpt_stop_rule stop_rule;           /* early_stopping.rule */
        int stop_grace_epochs;             /* early_stopping.grace_epochs: never stop before */
        int stop_min_trials;               /* early_stopping.min_trials: finished trials the
                                            * median needs */
        int stop_eta;                      /* early_stopping.eta: asha's rungs at grace * eta^k
                                            * epochs, the top 1/eta continue */
        dpt_stop_fidelity stop_fidelity;   /* early_stopping.fidelity: asha's stopped trials
                                            * in the GP */
        int stop_promote;                  /* early_stopping.promote: asha's stopped trials
                                            * wait at their rung and resume from their
                                            * checkpoint once in the top 1/eta there (async) */
        int stop_screen;                   /* early_stopping.screen: asha's one rung as a
                                            * screen: every new trial trains a complete
                                            * schedule of grace epochs; fills train the best
                                            * again from the start */
        int grid_points;                   /* grid: values per continuous parameter */
        int start_from_config;             /* trial 0 = the config's own values of the space's
                                            * keys (a baseline the search must beat) */
        int n_params;
        dpt_space_param params[DPT_SEARCH_MAX_PARAMS];
    } search;
    struct {
        dpt_function function;             /* none: train; else evaluate this test function */
        double x[DPT_OBJECTIVE_MAX_X];     /* its arguments x1..x6, natural coordinates */
        double duration;                   /* median seconds an evaluation waits (lognormal,
                                            * scaled by x1), to measure schedules; 0: none */
        int diverge_corner;                /* Branin diverges where x1 > 5 and x2 < 5 */
    } objective;
} dpt_config;

/* Fills cfg with the defaults of docs/interface.md. */
void dpt_config_defaults(dpt_config *cfg);

/* Parses a YAML file over the current contents of cfg (call dpt_config_defaults first).
 * Unknown keys, wrong types and out-of-range values fail with DPT_EUSAGE and a message
 * "FILE:LINE:COL: KEY: what is wrong". Missing file: DPT_EUSAGE naming the path. */
int dpt_config_load_file(dpt_config *cfg, const char *path, dpt_error *err);

/* Applies one "KEY=VALUE" override (VALUE is YAML: 0.01, [784,256,10], relu) with the same
 * validation; errors read "--set KEY=VALUE: what is wrong". Keys may index lists: model.layers[1]. */
int dpt_config_set(dpt_config *cfg, const char *assignment, dpt_error *err);

/* A typed value for dpt_config_set_value: the one way values reach the config's fields, shared
 * by YAML loading (a scalar's text), --set (on top of loading) and a search trial's values. */
typedef enum {
    DPT_VALUE_INT,     /* i: an integer */
    DPT_VALUE_DOUBLE,  /* d: a number */
    DPT_VALUE_STRING,  /* s (len bytes): a YAML scalar's text, read by the key's type ("relu",
                        * "true", "0.5"); plain: written without quotes, so that empty, ~ and
                        * null are the empty string */
    DPT_VALUE_YAML     /* s: YAML text of any shape, parsed first ("[784, 128, 10]"): a
                        * categorical choice of the search, which may be a list */
} dpt_value_kind;

typedef struct {
    dpt_value_kind kind;
    int64_t i;
    double d;
    const char *s;
    size_t len;
    int plain;
} dpt_value;

/* Sets key (a table key, an indexed list entry "model.layers[1]", or model.hidden_layers /
 * model.hidden_width) to v with the same checks as a YAML file; numbers are stored as they are,
 * never through text. Errors read "KEY: what is wrong"; cfg is unchanged on failure. */
int dpt_config_set_value(dpt_config *cfg, const char *key, const dpt_value *v, dpt_error *err);

/* Checks relations between keys once everything is applied (e.g. widths >= 2 layers, paths
 * present for the chosen format, warmup < epochs). DPT_EUSAGE naming the keys. */
int dpt_config_validate(const dpt_config *cfg, dpt_error *err);

/* A warmup that --set made at least as long as the run (`--set train.epochs=1` on a config with
 * train.warmup_epochs: 1) is shortened to epochs - 1 rather than refused: returns 1 and writes a
 * notice into note. before is the config as the file left it; a file that is itself
 * inconsistent is left for dpt_config_validate to refuse (returns 0). */
int dpt_config_fit_warmup(dpt_config *cfg, const dpt_config *before, char *note, size_t n);

/* Writes the resolved config as YAML that dpt_config_load_file reads back to an equal struct. */
int dpt_config_write(const dpt_config *cfg, FILE *f);

/* The current value of key (a table key, an indexed list entry "model.layers[1]", or a search-only
 * key of dpt_space_param) as YAML text in out; *is_string is 1 when the value is a name or text
 * (JSON needs quotes), 0 for numbers and lists. Returns 0, or -1 for an unknown key. */
int dpt_config_get(const dpt_config *cfg, const char *key, char *out, size_t n, int *is_string);

/* The shortest text that reads back to exactly v, in a form YAML and JSON both read as a
 * number: 0.05, 1.0e-08, 10.0. */
void dpt_config_format_double(double v, char *buf, size_t n);

/* Writes cfg to path atomically (a temporary file, fsync, rename). DPT_ERUNTIME naming the path. */
int dpt_config_save(const dpt_config *cfg, const char *path, dpt_error *err);

/* Names of enum values as they appear in YAML ("relu", "sgd", ...). */
const char *dpt_activation_name(dpt_activation a);
const char *dpt_optimizer_name(dpt_optimizer o);
const char *dpt_schedule_name(dpt_schedule s);
const char *dpt_loss_name(dpt_loss l);
const char *dpt_task_name(dpt_task t);
const char *dpt_device_name(dpt_device_kind d);
const char *dpt_format_name(dpt_data_format f);
const char *dpt_sharding_name(dpt_sharding s);
const char *dpt_scaling_name(dpt_scaling s);
const char *dpt_init_name(dpt_init i);
const char *dpt_precision_name(dpt_precision p);
const char *dpt_space_type_name(dpt_space_type t);
const char *dpt_comm_algorithm_name(dpt_comm_algorithm a);
const char *dpt_compress_name(dpt_compress c);
const char *dpt_search_algorithm_name(dpt_search_algorithm a);
const char *dpt_search_objective_name(dpt_search_objective o);
const char *dpt_function_name(dpt_function f);

#endif
