/* dptrain's command line: parses flags, lets rank 0 read and validate the config and broadcast
 * it, and dispatches to training or a benchmark. Exit status: 0 success, 1 runtime failure,
 * 2 usage or config error; only rank 0 prints progress, every error names its rank. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

#include "bench.h"
#include "bench_allreduce.h"
#include "comm.h"
#include "config.h"
#include "export.h"
#include "predict.h"
#include "run.h"
#include "search.h"
#include "signals.h"
#include "selftest.h"
#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif
#ifdef DPT_HAVE_NCCL
#include "nccl_comm.h"
#endif

static const char usage_text[] =
    "usage:\n"
    "  dptrain train  CONFIG.yaml [--set KEY=VALUE]... [--device auto|cpu|cuda] [--out DIR] [--resume]\n"
    "  dptrain search CONFIG.yaml [--set KEY=VALUE]... [--device auto|cpu|cuda] [--out DIR] [--resume]\n"
    "  dptrain bench train CONFIG.yaml [--steps N] [--warmup N] [--set KEY=VALUE]...\n"
    "                      [--scaling weak|strong] [--csv FILE] [--label TEXT]\n"
    "  dptrain bench allreduce [-b MINBYTES] [-e MAXBYTES] [-f FACTOR] [-n ITERS] [-w WARMUP]\n"
    "                          [--device cpu|cuda] [--algorithm flat|ring] [--baseline]\n"
    "  dptrain predict RUN_DIR --input FILE [--labels IDX_LABELS] [--output FILE]\n"
    "                          [--device auto|cpu|cuda]\n"
    "  dptrain eval    RUN_DIR --input FILE [--labels IDX_LABELS] [--json]\n"
    "                          [--device auto|cpu|cuda]\n"
    "  dptrain export  RUN_DIR --format safetensors --output FILE\n"
    "  dptrain version\n"
    "  dptrain selftest      (on a GPU machine: every op and a short run, CUDA against CPU)\n"
    "  dptrain --help\n"
    "\n"
    "Run under mpirun for data parallelism (mpirun -np 4 dptrain train CONFIG.yaml), or alone\n"
    "as a single rank. --set takes YAML values: --set train.lr=0.01 --set model.layers=[784,256,10].\n"
    "bench allreduce: sizes take K, M, G (powers of 1024); defaults -b 8 -e 64M -f 2 -n 20 -w 5;\n"
    "--baseline also times plain MPI_Allreduce. Exit status: 0 success, 1 runtime failure (or a\n"
    "wrong allreduce result), 2 usage or config error.\n";

typedef struct {
    const char *cmd;        /* "train", "search", "bench" */
    int allreduce;          /* bench allreduce: its flags are in `ar`, there is no config */
    dpt_bench_allreduce_opts ar;
    const char *config;
    const char *sets[256];
    int n_sets;
    const char *out;
    const char *device;
    int resume;
    int steps, warmup;
    dpt_bench_scaling scaling;  /* bench train --scaling */
    const char *csv, *label;
} cli;

/* The command word (and bench's sub-command) at argv[*i]; bench allreduce parses its own flags.
 * Returns 0, or 2 with msg filled. */
static int parse_command(int argc, char **argv, int *i, cli *c, char *msg, size_t n)
{
    c->cmd = argv[(*i)++];
    if (strcmp(c->cmd, "bench") == 0) {
        if (*i < argc && strcmp(argv[*i], "allreduce") == 0) {
            dpt_error err = {0};
            c->allreduce = 1;
            if (dpt_bench_allreduce_parse(argc, argv, *i + 1, &c->ar, &err) != DPT_OK) {
                snprintf(msg, n, "%s", err.msg);
                return 2;
            }
            return 0;
        }
        if (*i >= argc || strcmp(argv[*i], "train") != 0) {
            snprintf(msg, n, "bench: expected 'bench train CONFIG.yaml' or 'bench allreduce'");
            return 2;
        }
        (*i)++;
    } else if (strcmp(c->cmd, "train") != 0 && strcmp(c->cmd, "search") != 0) {
        snprintf(msg, n, "unknown command '%s'", c->cmd);
        return 2;
    }
    return 0;
}

/* bench train's --scaling, --csv and --label. Returns 0, or 2 with msg filled. */
static int parse_bench_option(cli *c, const char *a, const char *val, char *msg, size_t n)
{
    if (strcmp(c->cmd, "bench") != 0) {
        snprintf(msg, n, "%s is an option of 'bench train'", a);
        return 2;
    }
    if (strcmp(a, "--csv") == 0) {
        c->csv = val;
    } else if (strcmp(a, "--label") == 0) {
        if (strchr(val, ',') || strchr(val, '\n')) {
            snprintf(msg, n, "--label must not contain commas or newlines (it is a CSV "
                             "field): '%s'", val);
            return 2;
        }
        c->label = val;
    } else if (strcmp(val, "weak") == 0) {
        c->scaling = DPT_BENCH_SCALING_WEAK;
    } else if (strcmp(val, "strong") == 0) {
        c->scaling = DPT_BENCH_SCALING_STRONG;
    } else {
        snprintf(msg, n, "--scaling must be weak or strong (got '%s')", val);
        return 2;
    }
    return 0;
}

/* An option that takes a value (a is the option, val its value). Returns 0, or 2 with msg
 * filled. */
static int parse_valued_option(cli *c, const char *a, const char *val, char *msg, size_t n)
{
    if (strcmp(a, "--set") == 0) {
        if (c->n_sets == 256) {
            snprintf(msg, n, "too many --set options (at most 256)");
            return 2;
        }
        c->sets[c->n_sets++] = val;
    } else if (strcmp(a, "--scaling") == 0 || strcmp(a, "--csv") == 0 ||
               strcmp(a, "--label") == 0) {
        return parse_bench_option(c, a, val, msg, n);
    } else if (strcmp(a, "--out") == 0) {
        c->out = val;
    } else if (strcmp(a, "--device") == 0) {
        if (strcmp(val, "auto") && strcmp(val, "cpu") && strcmp(val, "cuda")) {
            snprintf(msg, n, "--device must be auto, cpu or cuda (got '%s')", val);
            return 2;
        }
        c->device = val;
    } else { /* --steps, --warmup */
        char *end;
        long v = strtol(val, &end, 10);
        if (*end || v < (strcmp(a, "--steps") == 0 ? 1 : 0) || v > 100000000) {
            snprintf(msg, n, "%s must be a %s integer (got '%s')", a,
                     strcmp(a, "--steps") == 0 ? "positive" : "non-negative", val);
            return 2;
        }
        if (strcmp(a, "--steps") == 0) c->steps = (int)v;
        else c->warmup = (int)v;
    }
    return 0;
}

static int takes_value(const char *a)
{
    return strcmp(a, "--set") == 0 || strcmp(a, "--out") == 0 || strcmp(a, "--device") == 0 ||
           strcmp(a, "--steps") == 0 || strcmp(a, "--warmup") == 0 ||
           strcmp(a, "--scaling") == 0 || strcmp(a, "--csv") == 0 || strcmp(a, "--label") == 0;
}

/* Returns 0, or 2 with msg filled. */
static int parse_cli(int argc, char **argv, cli *c, char *msg, size_t n)
{
    memset(c, 0, sizeof *c);
    c->steps = 100;
    c->warmup = 10;
    int i = 1;
    if (parse_command(argc, argv, &i, c, msg, n) != 0)
        return 2;
    if (c->allreduce)
        return 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (takes_value(a)) {
            if (!val) {
                snprintf(msg, n, "%s needs a value", a);
                return 2;
            }
            i++;
            if (parse_valued_option(c, a, val, msg, n) != 0)
                return 2;
        } else if (strcmp(a, "--resume") == 0) {
            c->resume = 1;
        } else if (a[0] == '-') {
            snprintf(msg, n, "unknown option '%s'", a);
            return 2;
        } else if (!c->config) {
            c->config = a;
        } else {
            snprintf(msg, n, "unexpected argument '%s' (one config file only)", a);
            return 2;
        }
    }
    if (!c->config) {
        snprintf(msg, n, "%s: missing CONFIG.yaml", c->cmd);
        return 2;
    }
    return 0;
}

/* Rank 0 reads, overrides and validates; everyone receives the result. */
static int load_config(dpt_comm *comm, const cli *c, dpt_config *cfg, dpt_error *err)
{
    int rc = DPT_OK;
    if (comm->rank == 0) {
        dpt_config_defaults(cfg);
        rc = dpt_config_load_file(cfg, c->config, err);
        dpt_config *file_cfg = malloc(sizeof *file_cfg);
        if (file_cfg)
            memcpy(file_cfg, cfg, sizeof *cfg);
        for (int i = 0; rc == DPT_OK && i < c->n_sets; i++)
            rc = dpt_config_set(cfg, c->sets[i], err);
        char note[256];
        if (rc == DPT_OK && file_cfg && dpt_config_fit_warmup(cfg, file_cfg, note, sizeof note))
            fprintf(stderr, "dptrain: notice: %s\n", note);
        free(file_cfg);
        if (rc == DPT_OK && c->out)
            snprintf(cfg->run.out_dir, sizeof cfg->run.out_dir, "%s", c->out);
        if (rc == DPT_OK && c->device)
            cfg->run.device = strcmp(c->device, "cpu") == 0    ? DPT_DEVICE_CPU
                              : strcmp(c->device, "cuda") == 0 ? DPT_DEVICE_CUDA
                                                               : DPT_DEVICE_AUTO;
        if (rc == DPT_OK)
            rc = dpt_config_validate(cfg, err);
    }
    dpt_comm_bcast(comm, &rc, sizeof rc, 0);
    if (rc == DPT_OK)
        dpt_comm_bcast(comm, cfg, sizeof *cfg, 0);
    return rc;
}

static void print_version(dpt_comm *comm)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    char *nl = strchr(mpi, '\n');
    if (nl) *nl = '\0';
    char *comma = strchr(mpi, ',');
    if (comma) *comma = '\0';
    if (comm->rank != 0)
        return;
    printf("dptrain %s\n", DPT_VERSION);
#ifdef DPT_HAVE_CUDA
    char cuda[2048];
    dpt_cuda_describe(cuda, sizeof cuda);
    printf("  backends  cpu, cuda%s\n",
#ifdef DPT_CUDA_EMU
           " (host emulation of CUDA, cuBLAS and NCCL: for tests, not for speed)"
#else
           ""
#endif
    );
    for (char *line = strtok(cuda, "\n"); line; line = strtok(NULL, "\n"))
        printf("  CUDA      %s\n", line);
#ifdef DPT_HAVE_NCCL
    char nccl[64];
    dpt_nccl_describe(nccl, sizeof nccl);
    printf("  NCCL      %s\n", nccl);
#else
    printf("  NCCL      not built (GPU ranks would reduce through MPI)\n");
#endif
#else
    printf("  backends  cpu\n");
    printf("  CUDA      not built (no CUDA toolkit found at build time)\n");
#endif
    printf("  MPI       %s\n", mpi);
    printf("  BLAS      %s (%s)\n", DPT_BLAS_NAME, openblas_get_config());
    printf("  libyaml   %s\n", yaml_get_version_string());
    printf("  zlib      %s\n", zlibVersion());
}

/* predict, eval and export: RUN_DIR and their flags. Returns 0, or 2 with msg filled. */
static int parse_model_command(int argc, char **argv, dpt_predict_opts *o, const char **format,
                               char *msg, size_t n)
{
    memset(o, 0, sizeof *o);
    *format = NULL;
    const char *device = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = strcmp(a, "--input") == 0    ? &o->input
                           : strcmp(a, "--labels") == 0 ? &o->labels
                           : strcmp(a, "--output") == 0 ? &o->output
                           : strcmp(a, "--format") == 0 ? format
                           : strcmp(a, "--device") == 0 ? &device
                                                        : NULL;
        if (dst && !val) {
            snprintf(msg, n, "%s needs a value", a);
            return 2;
        }
        if (dst) {
            *dst = val;
            i++;
        } else if (strcmp(a, "--json") == 0 && strcmp(argv[1], "eval") == 0) {
            o->json = 1;
        } else if (a[0] == '-' || o->run_dir) {
            snprintf(msg, n, "%s: unexpected argument '%s'", argv[1], a);
            return 2;
        } else {
            o->run_dir = a;
        }
    }
    if (device && strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda")) {
        snprintf(msg, n, "--device must be auto, cpu or cuda (got '%s')", device);
        return 2;
    }
    o->device = !device || strcmp(device, "auto") == 0 ? DPT_DEVICE_AUTO
                : strcmp(device, "cpu") == 0           ? DPT_DEVICE_CPU
                                                       : DPT_DEVICE_CUDA;
    if (strcmp(argv[1], "export") == 0) {
        if (!o->run_dir || !o->output || !*format || strcmp(*format, "safetensors") != 0 ||
            o->input || o->labels || device) {
            snprintf(msg, n, "export: needs RUN_DIR --format safetensors --output FILE");
            return 2;
        }
        return 0;
    }
    if (!o->run_dir || !o->input) {
        snprintf(msg, n, "%s: needs RUN_DIR and --input FILE", argv[1]);
        return 2;
    }
    if ((o->output && strcmp(argv[1], "predict") != 0) || *format) {
        snprintf(msg, n, "%s is an option of %s", *format ? "--format" : "--output",
                 *format ? "export" : "predict");
        return 2;
    }
    return 0;
}

static void print_error(dpt_comm *comm, const dpt_error *err);

/* dptrain predict / eval / export. predict and eval: every rank computes its share of the rows,
 * rank 0 writes the output. export: rank 0 works (one process is the use); others wait for its
 * status. */
static int run_model_command(int argc, char **argv, dpt_comm *comm)
{
    dpt_predict_opts o;
    const char *format;
    char msg[1024];
    int rc = parse_model_command(argc, argv, &o, &format, msg, sizeof msg);
    if (rc) {
        if (comm->rank == 0)
            fprintf(stderr, "dptrain: %s\n%s", msg, usage_text);
        return rc;
    }
    dpt_error err = {0};
    o.comm = comm;
    if (strcmp(argv[1], "export") != 0) {
        /* the same status on every rank */
        rc = strcmp(argv[1], "predict") == 0 ? dpt_predict_run(&o, &err) : dpt_eval_run(&o, &err);
        if (rc)
            print_error(comm, &err);
        return rc;
    }
    if (comm->rank == 0) {
        rc = dpt_export_safetensors(o.run_dir, o.output, &err);
        if (rc)
            fprintf(stderr, "dptrain %s: error: %s\n", dpt_error_tag(), err.msg);
    }
    dpt_comm_bcast(comm, &rc, sizeof rc, 0);
    return rc;
}

/* Every rank has failed with the same code. A message every rank shares (a bad config, a
 * diverged loss) is printed once, by rank 0; a rank whose own message differs (its data shard
 * is corrupt) prints it too; a rank that failed only because another did has none. */
static void print_error(dpt_comm *comm, const dpt_error *err)
{
    char first[sizeof err->msg];
    memcpy(first, err->msg, sizeof first);
    dpt_comm_bcast(comm, first, sizeof first, 0);
    if (err->msg[0] && (comm->rank == 0 || strcmp(err->msg, first) != 0))
        fprintf(stderr, "dptrain %s: %s%s\n", dpt_error_tag(),
                err->code > DPT_ESIGNAL(0) ? "" : "error: ", err->msg);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    dpt_comm comm;
    dpt_comm_init(&comm, &argc, &argv);
    dpt_signals_install();
    int root = comm.rank == 0;

    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        print_version(&comm);
        dpt_comm_finalize(&comm);
        return 0;
    }

    if (strcmp(argv[1], "selftest") == 0) {
        /* one process's check of its own GPU; rank 0 speaks for a job of several */
        int rc = dpt_selftest_main(stdout, &comm);
        rc = dpt_comm_agree(&comm, rc == 77 ? 0 : rc);
        dpt_comm_finalize(&comm);
        return rc;
    }

    if (strcmp(argv[1], "predict") == 0 || strcmp(argv[1], "eval") == 0 ||
        strcmp(argv[1], "export") == 0) {
        int rc = run_model_command(argc, argv, &comm);
        dpt_comm_finalize(&comm);
        return rc;
    }

    cli c;
    char msg[1024];
    if (parse_cli(argc, argv, &c, msg, sizeof msg) != 0) {
        if (root)
            fprintf(stderr, "dptrain: %s\n%s", msg, usage_text);
        dpt_comm_finalize(&comm);
        return 2;
    }

    dpt_config cfg;
    dpt_error err = {0};
    int rc = c.allreduce ? dpt_bench_allreduce(&comm, &c.ar, &err)
                         : load_config(&comm, &c, &cfg, &err);
    if (rc == DPT_OK && !c.allreduce) {
        if (strcmp(c.cmd, "train") == 0) {
            dpt_train_opts opts = {.config_path = c.config, .resume = c.resume};
            dpt_train_result res;
            rc = dpt_train_run(&cfg, &comm, &opts, &res, &err);
        } else if (strcmp(c.cmd, "search") == 0) {
            dpt_search_opts opts = {.config_path = c.config, .resume = c.resume};
            rc = dpt_search_run(&cfg, &comm, &opts, &err);
        } else {
            dpt_bench_train_opts bo = {.config_path = c.config, .steps = c.steps,
                                       .warmup = c.warmup, .scaling = c.scaling, .csv = c.csv,
                                       .label = c.label};
            rc = dpt_bench_train(&cfg, &comm, &bo, &err);
        }
    }
    /* every rank has the same rc; rank 0 speaks for errors every rank shares, the others only
     * for their own */
    if (rc != DPT_OK)
        print_error(&comm, &err);
    dpt_comm_finalize(&comm);
    return rc;
}
