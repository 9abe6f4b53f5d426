/* dptrain predict and eval (predict.h): model.json and checkpoint.bin of a run, the input read
 * by the training's own loader (columns by name, class names, the saved scaling statistics), the
 * model's forward on the backend --device chooses (src/device.c, as training chooses it) in the
 * evaluation's chunks and through its ops, so eval's accuracy is the one training reported for
 * the same file on the same backend. */
#define _POSIX_C_SOURCE 200809L

#include "predict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "checkpoint.h"
#include "csv.h"
#include "data.h"
#include "device.h"
#include "json.h"
#include "metrics.h"
#include "model.h"
#include "model_info.h"

enum { CHUNK_ROWS = 256 }; /* rows per forward pass, as the trainer evaluates */

typedef struct {
    dpt_model_info mi;
    dpt_backend be;
    dpt_model m;
    int be_ready, m_ready;
    float *xb;                /* (CHUNK_ROWS, I) on a device backend: the batch */
    int32_t *yb;              /* (CHUNK_ROWS) on a device backend: its labels */
    dpt_data_spec spec;       /* the input as the training read its data */
    dpt_csv_stream *stream;   /* CSV: read a batch at a time (flat memory) */
    dpt_data d;               /* IDX: loaded whole, handed out from pos */
    int64_t pos;
    char *features, *classes; /* the spec's joined names */
    float *x;                 /* (CHUNK_ROWS, I) host: this batch */
    int32_t *y;               /* (CHUNK_ROWS) */
    float *t;                 /* (CHUNK_ROWS, T) regression: the file's targets (eval) */
    float *tz;                /* (T) one row's targets in the trained units */
    float *logits;            /* (CHUNK_ROWS, C) host; regression: in the targets' units */
    char *targets;            /* the label's or a regression's target names, joined */
    int regression;
} session;

static void session_free(session *s)
{
    if (s->m_ready)
        dpt_model_free(&s->m);
    if (s->xb)
        s->be.free(&s->be, s->xb);
    if (s->yb)
        s->be.free(&s->be, s->yb);
    if (s->be_ready)
        s->be.destroy(&s->be);
    dpt_csv_stream_close(s->stream);
    dpt_data_free(&s->d);
    dpt_model_info_free(&s->mi);
    free(s->x);
    free(s->y);
    free(s->t);
    free(s->tz);
    free(s->targets);
    free(s->features);
    free(s->classes);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

/* names joined with ", " as a list of data.label_column or data.feature_columns reads them
 * (a name with a comma or a quote quoted; NULL when names is NULL or out of memory). */
static char *join(char *const *names, int n)
{
    if (!names)
        return NULL;
    size_t len = 1;
    for (int k = 0; k < n; k++)
        len += 2 * strlen(names[k]) + 4; /* every character a doubled quote, two quotes, ", " */
    char *s = malloc(len);
    if (s)
        s[0] = '\0';
    for (int k = 0; s && k < n; k++)
        dpt_csv_list_append_name(s, len, names[k]);
    return s;
}

/* The weights of checkpoint.bin into the model, after checking they are the model.json's. */
static int load_weights(session *s, const char *run_dir, dpt_error *err)
{
    char path[DPT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/checkpoint.bin", run_dir);
    dpt_ckpt_header h;
    int rc = dpt_checkpoint_load(path, &h, NULL, NULL, err);
    if (rc)
        return rc;
    const dpt_model_info *mi = &s->mi;
    int same = (int)h.n_layers == mi->n_layers;
    for (int l = 0; same && l <= mi->n_layers; l++)
        same = (int)h.widths[l] == mi->widths[l];
    if (!same || h.n_params != s->m.n_params)
        return dpt_error_set(err, DPT_EUSAGE, "%s: its layer widths are not model.json's", path);
    float *params = malloc((size_t)h.n_params * sizeof *params);
    if (!params)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory reading %s", path);
    rc = dpt_checkpoint_load(path, &h, params, NULL, err);
    if (!rc)
        s->be.upload(&s->be, s->m.params, params, (size_t)h.n_params * sizeof *params);
    free(params);
    return rc;
}

/* The input as the training read its data (labels: eval, and IDX's labels file). */
static int load_input(session *s, const dpt_predict_opts *o, int labelled, dpt_error *err)
{
    const dpt_model_info *mi = &s->mi;
    const int I = mi->widths[0], C = mi->widths[mi->n_layers];
    s->features = join(mi->feature_names, I);
    s->classes = join(mi->class_names, C);
    s->targets = mi->target_names ? join(mi->target_names, C)
                 : mi->label_name   ? join(&mi->label_name, 1)
                                    : NULL;
    s->regression = mi->task == DPT_TASK_REGRESSION;
    if (s->regression && o->labels)
        return dpt_error_set(err, DPT_EUSAGE, "%s: the model is a regression on CSV targets; "
                             "its input is a CSV file, not IDX", o->input);
    s->spec = (dpt_data_spec){
        .format = o->labels ? DPT_FORMAT_IDX : DPT_FORMAT_CSV,
        .train_images = o->labels ? o->input : "", .train_labels = o->labels ? o->labels : "",
        .test_images = "", .test_labels = "",
        .train_csv = o->labels ? "" : o->input, .test_csv = "",
        .csv_header = mi->csv_header,
        .label_column = mi->label_name || mi->target_names ? s->targets : mi->label_column,
        .feature_columns = s->features ? s->features : mi->feature_columns,
        .class_names = s->classes ? s->classes : "",
        .validation_fraction = 0.0, .sharding = DPT_SHARDING_REPLICATED,
        .scaling = mi->scaling, .features = I, .classes = C,
        .no_labels = !labelled && !o->labels, .mean = mi->mean, .std = mi->std,
        .regression = s->regression, .missing = mi->missing, .fill = mi->fill,
    };
    s->x = malloc((size_t)CHUNK_ROWS * I * sizeof *s->x);
    s->y = malloc((size_t)CHUNK_ROWS * sizeof *s->y);
    s->t = malloc((size_t)CHUNK_ROWS * C * sizeof *s->t);
    s->tz = malloc((size_t)C * sizeof *s->tz);
    if (!s->x || !s->y || !s->t || !s->tz)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory");
    if (!o->labels)
        return dpt_csv_stream_open(&s->spec, o->input, &s->stream, err);
    return dpt_data_load(&s->spec, 0, 1, NULL, NULL, &s->d, err);
}

static int open_session(const dpt_predict_opts *o, int labelled, session *s, dpt_error *err)
{
    memset(s, 0, sizeof *s);
    /* first and on every rank: choosing a GPU is collective over the node */
    dpt_device d;
    int rc = dpt_device_choose(o->device, o->comm, DPT_DEVICE_FOR_TRAINING, &d, err);
    char path[DPT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/model.json", o->run_dir);
    if (!rc)
        rc = dpt_model_info_load(path, &s->mi, err);
    if (!rc)
        rc = load_input(s, o, labelled, err);
    /* the training's GEMM precision, so that eval on its backend computes what training did */
    if (!rc && (rc = dpt_device_start(&d, 0, s->mi.precision, &s->be, err)) == DPT_OK)
        s->be_ready = 1;
    if (rc)
        return rc;
    dpt_model_spec ms = {.n_layers = s->mi.n_layers, .activation = s->mi.activation,
                         .loss = s->mi.loss, .dropout = 0.0, .huber_delta = s->mi.huber_delta};
    memcpy(ms.widths, s->mi.widths, sizeof ms.widths);
    if ((rc = dpt_model_init(&s->m, &ms, &s->be, CHUNK_ROWS, err)) != DPT_OK)
        return rc;
    s->m_ready = 1;
    const int I = s->mi.widths[0], C = s->mi.widths[s->mi.n_layers];
    s->logits = malloc((size_t)CHUNK_ROWS * C * sizeof *s->logits);
    if (!s->logits)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory");
    if (!s->be.host_memory) { /* the backend's allocator reports its own failures */
        s->xb = s->be.alloc(&s->be, (size_t)CHUNK_ROWS * I * sizeof *s->xb);
        s->yb = s->be.alloc(&s->be, (size_t)CHUNK_ROWS * sizeof *s->yb);
    }
    return load_weights(s, o->run_dir, err);
}

/* The next batch of at most max (<= CHUNK_ROWS) input rows into s->x and s->y (s->t for a
 * regression's targets); *rows 0 at the end. */
static int next_batch(session *s, int max, int *rows, dpt_error *err)
{
    if (s->stream)
        return dpt_csv_stream_read(s->stream, s->x,
                                   s->spec.no_labels || s->regression ? NULL : s->y,
                                   s->spec.no_labels || !s->regression ? NULL : s->t, max, rows,
                                   err);
    const int I = s->mi.widths[0];
    int64_t left = s->d.train.n - s->pos;
    *rows = (int)(left < max ? left : max);
    memcpy(s->x, s->d.train.x + (size_t)s->pos * I, (size_t)*rows * I * sizeof *s->x);
    memcpy(s->y, s->d.train.y + s->pos, (size_t)*rows * sizeof *s->y);
    s->pos += *rows;
    return DPT_OK;
}

/* Logits of the batch in s->x into s->logits; with loss, adds the loss and the hits as the
 * trainer's evaluation counts them. */
static void forward(session *s, int rows, double *loss, double *hits)
{
    dpt_backend *be = &s->be;
    const int I = s->mi.widths[0], C = s->mi.widths[s->mi.n_layers];
    const float *x = s->x; /* (rows, I) */
    if (s->xb) {
        be->upload(be, s->xb, x, (size_t)rows * I * sizeof *s->xb);
        x = s->xb;
    }
    const float *lg = dpt_model_forward(&s->m, x, rows, NULL);
    if (loss && !s->regression) {
        const int32_t *y = s->y;
        if (s->yb) {
            be->upload(be, s->yb, y, (size_t)rows * sizeof *s->yb);
            y = s->yb;
        }
        be->loss(be, lg, y, rows, C, s->m.loss, 0.0f, NULL, loss, hits);
    }
    be->download(be, s->logits, lg, (size_t)rows * C * sizeof *s->logits);
    be->sync(be);
    const dpt_model_info *mi = &s->mi;
    for (int i = 0; s->regression && i < rows; i++) {
        float *z = s->logits + (size_t)i * C;
        if (loss) { /* the training's loss, against the targets in its (scaled) units */
            float *t = s->tz;
            for (int k = 0; k < C; k++)
                t[k] = mi->t_mean ? (float)((s->t[(size_t)i * C + k] - mi->t_mean[k]) /
                                            mi->t_std[k])
                                  : s->t[(size_t)i * C + k];
            *loss += dpt_op_regress_row(z, t, C, mi->loss, s->m.huber_delta, 0.0f, NULL);
        }
        for (int k = 0; mi->t_mean && k < C; k++) /* back to the targets' own units */
            z[k] = (float)(z[k] * mi->t_std[k] + mi->t_mean[k]);
    }
}

/* The first largest output, as the loss's hit counts it. */
static int argmax(const float *z, int C)
{
    int a = 0;
    for (int j = 1; j < C; j++)
        if (z[j] > z[a])
            a = j;
    return a;
}

static void class_label(const dpt_model_info *mi, int c, char *out, size_t n)
{
    if (mi->class_names)
        snprintf(out, n, "%s", mi->class_names[c]);
    else
        snprintf(out, n, "%d", c);
}

/* A CSV field: quoted when it holds a comma, quote or newline (RFC 4180). */
static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Regression: a header of the target names (the training file's, or target_1... without a
 * header); classification: prediction, then p_<class> (output_<class> for mse). */
static void write_header(const session *s, FILE *f)
{
    const int C = s->mi.widths[s->mi.n_layers];
    const int probs = s->mi.loss == DPT_LOSS_SOFTMAX_CE;
    char name[256], col[300];
    if (!s->regression)
        fputs("prediction", f);
    for (int c = 0; c < C; c++) {
        if (s->regression) {
            snprintf(col, sizeof col, "target_%d", c + 1);
            if (s->mi.target_names)
                snprintf(col, sizeof col, "%s", s->mi.target_names[c]);
        } else {
            class_label(&s->mi, c, name, sizeof name);
            snprintf(col, sizeof col, "%s%s", probs ? "p_" : "output_", name);
        }
        if (c || !s->regression)
            fputc(',', f);
        put_field(f, col);
    }
    fputc('\n', f);
}

/* The batch's rows: the predicted targets in their own units, nine digits (a float); or the
 * class (its name when the training had names) and each class's probability (the raw outputs
 * for mse). */
static void write_rows(const session *s, FILE *f, int rows)
{
    const int C = s->mi.widths[s->mi.n_layers];
    const int probs = s->mi.loss == DPT_LOSS_SOFTMAX_CE;
    char name[256];
    for (int i = 0; i < rows; i++) {
        const float *z = s->logits + (size_t)i * C;
        if (s->regression) {
            for (int k = 0; k < C; k++)
                fprintf(f, "%.9g%c", (double)z[k], k + 1 < C ? ',' : '\n');
            continue;
        }
        int a = argmax(z, C);
        class_label(&s->mi, a, name, sizeof name);
        put_field(f, name);
        double sum = 0.0;
        for (int c = 0; probs && c < C; c++)
            sum += exp((double)z[c] - z[a]);
        for (int c = 0; c < C; c++)
            fprintf(f, ",%.6g", probs ? exp((double)z[c] - z[a]) / sum : (double)z[c]);
        fputc('\n', f);
    }
}

/* What a batch of input rows is for: predict writes it, eval adds it up (b: its index among
 * the file's batches). */
typedef int (*batch_fn)(session *s, int64_t b, int rows, void *ctx, dpt_error *err);

/* Input rows [lo, hi) (hi INT64_MAX: to the end; lo a multiple of CHUNK_ROWS) a batch at a time
 * through fn; the rows before lo are read (a CSV has no index) but not computed. */
static int for_batches(session *s, int64_t lo, int64_t hi, batch_fn fn, void *ctx,
                       dpt_error *err)
{
    int64_t pos = 0;
    int rc = DPT_OK;
    for (int rows = 1; !rc && rows > 0 && pos < hi;) {
        int64_t want = pos < lo ? lo - pos : hi - pos;
        rc = next_batch(s, want < CHUNK_ROWS ? (int)want : CHUNK_ROWS, &rows, err);
        if (!rc && rows > 0 && pos >= lo)
            rc = fn(s, pos / CHUNK_ROWS, rows, ctx, err);
        pos += rows;
    }
    return rc;
}

static int predict_batch(session *s, int64_t b, int rows, void *ctx, dpt_error *err)
{
    (void)b;
    (void)err;
    forward(s, rows, NULL, NULL);
    write_rows(s, ctx, rows);
    return DPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The job's ranks: each takes a contiguous share of whole batches.
 */

/* Every rank's status: a failure anywhere fails every rank (DPT_EUSAGE when any rank's was);
 * a rank that failed keeps its message, the others get none (the failing rank speaks). */
static int agree(const dpt_predict_opts *o, int rc, dpt_error *err)
{
    return o->comm->size > 1 ? dpt_comm_agree_error(o->comm, rc, err, err) : rc;
}

/* The rows of the input (every rank reads the whole file to know where its share starts). */
static int count_rows(session *s, const dpt_predict_opts *o, int64_t *n, dpt_error *err)
{
    *n = s->d.train.n;
    if (!s->stream)
        return DPT_OK;
    dpt_csv_stream *c;
    int rc = dpt_csv_stream_open(&s->spec, o->input, &c, err), got = 1;
    for (*n = 0; !rc && got > 0; *n += got)
        rc = dpt_csv_stream_read(c, s->x, NULL, NULL, CHUNK_ROWS, &got, err);
    dpt_csv_stream_close(c);
    return rc;
}

/* This rank's rows [lo, hi) and the file's batches (0 with one rank: the file is not counted).
 * Whole batches of CHUNK_ROWS: every row is computed in the batch it has in one process, so
 * the output is the same bytes (a GEMM's row may round differently in a batch of another
 * height). Collective; the status agreed. */
static int share(session *s, const dpt_predict_opts *o, int64_t *lo, int64_t *hi,
                 int64_t *batches, dpt_error *err)
{
    const int R = o->comm->size, r = o->comm->rank;
    int64_t n = 0;
    *lo = 0;
    *hi = INT64_MAX;
    *batches = 0;
    if (R <= 1)
        return DPT_OK;
    int rc = agree(o, count_rows(s, o, &n, err), err);
    *batches = (n + CHUNK_ROWS - 1) / CHUNK_ROWS;
    *lo = *batches * r / R * CHUNK_ROWS;
    *hi = *batches * (r + 1) / R * CHUNK_ROWS;
    return rc;
}

/* Rank r's part: beside --output, else in the working directory (keyed by rank 0's pid), so
 * that a job's ranks on several hosts meet on the shared file system they were started in. */
static void part_path(const dpt_predict_opts *o, int r, long id, char *out, size_t n)
{
    if (o->output)
        snprintf(out, n, "%s.part%d", o->output, r);
    else
        snprintf(out, n, "dptrain-predict-%ld.part%d", id, r);
}

/* Rank 0: the other ranks' parts appended to f in rank order, each removed. */
static int append_parts(const dpt_predict_opts *o, long id, FILE *f, dpt_error *err)
{
    char path[DPT_PATH_MAX + 64], buf[1 << 16];
    int rc = DPT_OK;
    for (int r = 1; r < o->comm->size; r++) {
        part_path(o, r, id, path, sizeof path);
        FILE *p = rc ? NULL : fopen(path, "rb");
        if (!rc && !p)
            rc = dpt_error_set(err, DPT_ERUNTIME, "cannot read rank %d's predictions '%s': %m "
                               "(the ranks' part files must be on a file system they share)",
                               r, path);
        for (size_t k; p && (k = fread(buf, 1, sizeof buf, p)) > 0;)
            fwrite(buf, 1, k, f);
        if (p)
            fclose(p);
        unlink(path);
    }
    return rc;
}

/* Closes an output (reporting a failed write); stdout is flushed, not closed. */
static int close_output(FILE *f, const char *path, int rc, dpt_error *err)
{
    if (!f)
        return rc;
    int bad = ferror(f) != 0;
    bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
    if (bad && !rc)
        rc = dpt_error_set(err, DPT_ERUNTIME, "cannot write '%s'", path ? path : "stdout");
    return rc;
}

/* Each rank predicts its share into a part file, rank 0 writes the header and its share to the
 * output and then appends the others' parts in rank order. */
int dpt_predict_run(const dpt_predict_opts *o, dpt_error *err)
{
    session s;
    const int R = o->comm->size, r = o->comm->rank;
    double id = r == 0 ? (double)getpid() : 0.0; /* names stdout's part files */
    if (R > 1)
        dpt_comm_allreduce_sum_double(o->comm, &id, 1);
    int64_t lo, hi, batches;
    int rc = agree(o, open_session(o, 0, &s, err), err);
    if (!rc)
        rc = share(&s, o, &lo, &hi, &batches, err);
    char path[DPT_PATH_MAX + 64];
    part_path(o, r, (long)id, path, sizeof path);
    const char *out = r > 0 ? path : o->output;
    FILE *f = NULL;
    if (!rc) {
        f = out ? fopen(out, "w") : stdout;
        if (!f)
            rc = dpt_error_set(err, DPT_EUSAGE, "cannot write '%s': %m", out);
    }
    if (!rc && r == 0)
        write_header(&s, f);
    if (!rc)
        rc = for_batches(&s, lo, hi, predict_batch, f, err);
    if (r > 0)
        rc = close_output(f, out, rc, err);
    rc = agree(o, rc, err);
    if (!rc && r == 0 && R > 1)
        rc = append_parts(o, (long)id, f, err);
    else if (rc && r > 0)
        unlink(path);
    if (r == 0)
        rc = close_output(f, out, rc, err);
    session_free(&s);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * eval
 */

typedef struct {
    int64_t n;
    double loss, hits;
    int64_t *confusion; /* (C, C): [true][predicted] */
} eval_sums;

/* Class c's precision, recall, F1 and support from the confusion matrix. */
static void class_scores(const eval_sums *e, int C, int c, double *p, double *r, double *f1,
                         int64_t *support)
{
    int64_t tp = e->confusion[(size_t)c * C + c], pred = 0, sup = 0;
    for (int k = 0; k < C; k++) {
        pred += e->confusion[(size_t)k * C + c];
        sup += e->confusion[(size_t)c * C + k];
    }
    *p = pred ? (double)tp / pred : 0.0;
    *r = sup ? (double)tp / sup : 0.0;
    *f1 = *p + *r > 0 ? 2 * *p * *r / (*p + *r) : 0.0;
    *support = sup;
}

static void print_table(const session *s, const dpt_predict_opts *o, const eval_sums *e)
{
    const int C = s->mi.widths[s->mi.n_layers];
    char name[64];
    printf("# eval %s on %s: %lld rows\n", o->run_dir, o->input, (long long)e->n);
    printf("accuracy  %.4f  (%.0f of %lld)\n", e->hits / (double)e->n, e->hits,
           (long long)e->n);
    printf("loss      %.4f\n\n", e->loss / (double)e->n);
    printf("%-20s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (int c = 0; c < C; c++) {
        double p, r, f1;
        int64_t sup;
        class_scores(e, C, c, &p, &r, &f1, &sup);
        class_label(&s->mi, c, name, sizeof name);
        printf("%-20.20s %9.4f %9.4f %9.4f %9lld\n", name, p, r, f1, (long long)sup);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted class, in the order above)\n");
    for (int c = 0; c < C; c++) {
        for (int k = 0; k < C; k++)
            printf("%s%7lld", k ? " " : "", (long long)e->confusion[(size_t)c * C + k]);
        printf("\n");
    }
}

static int print_json(const session *s, const eval_sums *e)
{
    const int C = s->mi.widths[s->mi.n_layers];
    size_t cap = 4096 + (size_t)C * 256 + (size_t)C * C * 24;
    char *buf = malloc(cap), name[256];
    if (!buf)
        return -1;
    dpt_json j;
    dpt_json_init(&j, buf, cap, 1);
    dpt_json_object(&j, NULL);
    dpt_json_int(&j, "rows", e->n);
    /* 9 digits, as metrics.jsonl writes test_accuracy and test_loss */
    dpt_json_double_g(&j, "accuracy", e->hits / (double)e->n, 9);
    dpt_json_double_g(&j, "loss", e->loss / (double)e->n, 9);
    dpt_json_array(&j, "classes");
    for (int c = 0; c < C; c++) {
        double p, r, f1;
        int64_t sup;
        class_scores(e, C, c, &p, &r, &f1, &sup);
        class_label(&s->mi, c, name, sizeof name);
        dpt_json_object(&j, NULL);
        dpt_json_string(&j, "name", name);
        dpt_json_double_g(&j, "precision", p, 6);
        dpt_json_double_g(&j, "recall", r, 6);
        dpt_json_double_g(&j, "f1", f1, 6);
        dpt_json_int(&j, "support", sup);
        dpt_json_end(&j);
    }
    dpt_json_end(&j);
    dpt_json_array(&j, "confusion");
    for (int c = 0; c < C; c++) {
        dpt_json_array(&j, NULL);
        for (int k = 0; k < C; k++)
            dpt_json_int(&j, NULL, e->confusion[(size_t)c * C + k]);
        dpt_json_end(&j);
    }
    dpt_json_end(&j);
    dpt_json_end(&j);
    int rc = j.len < cap ? 0 : -1;
    if (!rc)
        printf("%s\n", buf);
    free(buf);
    return rc;
}

/* Regression: RMSE, MAE, R^2 (metrics.h) and the mean loss from sums (DPT_REGRESS_SUMS(T),
 * then the loss), as a table or JSON. */
static void report_targets(const session *s, const dpt_predict_opts *o, const double *sums)
{
    const int T = s->mi.widths[s->mi.n_layers];
    const double n = sums[0], loss = sums[DPT_REGRESS_SUMS(T)];
    double rmse, mae, r2;
    dpt_regress_metrics(sums, T, &rmse, &mae, &r2);
    if (o->json) { /* 9 digits, as metrics.jsonl writes them */
        char buf[512];
        dpt_json j;
        dpt_json_init(&j, buf, sizeof buf, 1);
        dpt_json_object(&j, NULL);
        dpt_json_int(&j, "rows", (int64_t)n);
        dpt_json_double_g(&j, "rmse", rmse, 9);
        dpt_json_double_g(&j, "mae", mae, 9);
        dpt_json_double_g(&j, "r2", r2, 9);
        dpt_json_double_g(&j, "loss", loss / n, 9);
        dpt_json_end(&j);
        printf("%s\n", buf);
    } else {
        printf("# eval %s on %s: %lld rows, %d target%s\n", o->run_dir, o->input, (long long)n,
               T, T == 1 ? "" : "s");
        printf("rmse      %.6g\nmae       %.6g\nr2        %.6f\nloss      %.6g\n", rmse, mae,
               r2, loss / n);
    }
}

/* eval's sums, the same for any number of ranks. Counts (rows, hits, the confusion matrix) are
 * integers, exact in any order (as doubles, up to 2^53). The real sums (the loss, a regression's
 * errors and targets) are formed per batch, and the batches' partial sums are added in the
 * file's batch order: with one rank as they come; with several after an allreduce of every
 * batch's partials, (batches, k), where each batch's row is written by the one rank that
 * computed it and is zero on the others (x + 0 is exact whatever the reduction's order). So
 * every rank count adds the same numbers in the same order. */
typedef struct {
    int k, C;
    int64_t batches;  /* with several ranks: the file's batches (parts' rows) */
    double *part;     /* (k) the batch being added */
    double *parts;    /* (batches, k), with several ranks */
    double *total;    /* (k) classification: the loss; regression: DPT_REGRESS_SUMS(T), loss */
    double *counts;   /* classification: rows, hits, confusion (C, C) [true][predicted] */
} eval_acc;

static int acc_init(eval_acc *a, int regression, int C, int64_t batches, dpt_error *err)
{
    memset(a, 0, sizeof *a);
    a->k = regression ? (int)DPT_REGRESS_SUMS(C) + 1 : 1;
    a->C = C;
    a->batches = batches;
    a->part = calloc((size_t)a->k, sizeof *a->part);
    a->total = calloc((size_t)a->k, sizeof *a->total);
    a->counts = calloc(2 + (size_t)C * C, sizeof *a->counts);
    a->parts = batches > 0 ? calloc((size_t)(batches * a->k), sizeof *a->parts) : NULL;
    if (!a->part || !a->total || !a->counts || (batches > 0 && !a->parts))
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory for eval's sums");
    return DPT_OK;
}

static void acc_free(eval_acc *a)
{
    free(a->part);
    free(a->parts);
    free(a->total);
    free(a->counts);
}

/* Batch b's partial sums (a->part) kept for the reduction, or added; part zeroed. */
static void acc_batch(eval_acc *a, int64_t b)
{
    for (int j = 0; j < a->k; j++) {
        if (a->parts)
            a->parts[b * a->k + j] = a->part[j];
        else
            a->total[j] += a->part[j];
        a->part[j] = 0.0;
    }
}

/* With several ranks: every batch's partials and the counts summed over the ranks, the partials
 * added in batch order. */
static void acc_reduce(eval_acc *a, dpt_comm *comm)
{
    if (comm->size <= 1)
        return;
    const int64_t n = a->batches * a->k, piece = 1 << 20;
    for (int64_t at = 0; at < n; at += piece)
        dpt_comm_allreduce_sum_double(comm, a->parts + at, (int)(n - at < piece ? n - at : piece));
    dpt_comm_allreduce_sum_double(comm, a->counts, 2 + a->C * a->C);
    for (int64_t b = 0; b < a->batches; b++)
        for (int j = 0; j < a->k; j++)
            a->total[j] += a->parts[b * a->k + j];
}

static int eval_class_batch(session *s, int64_t b, int rows, void *ctx, dpt_error *err)
{
    (void)err;
    eval_acc *a = ctx;
    const int C = a->C;
    forward(s, rows, &a->part[0], &a->counts[1]);
    for (int i = 0; i < rows; i++)
        a->counts[2 + (size_t)s->y[i] * C + argmax(s->logits + (size_t)i * C, C)] += 1.0;
    a->counts[0] += rows;
    acc_batch(a, b);
    return DPT_OK;
}

static int eval_target_batch(session *s, int64_t b, int rows, void *ctx, dpt_error *err)
{
    (void)err;
    eval_acc *a = ctx;
    forward(s, rows, &a->part[a->k - 1], NULL);
    dpt_regress_sums_add(a->part, a->C, s->logits, s->t, NULL, rows, NULL, NULL);
    acc_batch(a, b);
    return DPT_OK;
}

/* Rank 0 prints what the ranks' sums give. */
static int report(const session *s, const dpt_predict_opts *o, const eval_acc *a,
                  dpt_error *err)
{
    if (s->regression) {
        report_targets(s, o, a->total);
        return DPT_OK;
    }
    const int C = a->C;
    eval_sums e = {.n = (int64_t)a->counts[0], .loss = a->total[0], .hits = a->counts[1]};
    if (!(e.confusion = malloc((size_t)C * C * sizeof *e.confusion)))
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory");
    for (int k = 0; k < C * C; k++)
        e.confusion[k] = (int64_t)a->counts[2 + k];
    int rc = DPT_OK;
    if (o->json && print_json(s, &e))
        rc = dpt_error_set(err, DPT_ERUNTIME, "out of memory");
    else if (!o->json)
        print_table(s, o, &e);
    free(e.confusion);
    return rc;
}

int dpt_eval_run(const dpt_predict_opts *o, dpt_error *err)
{
    session s;
    eval_acc a = {0};
    int64_t lo, hi, batches;
    int rc = agree(o, open_session(o, 1, &s, err), err);
    if (!rc)
        rc = share(&s, o, &lo, &hi, &batches, err);
    if (!rc)
        rc = agree(o, acc_init(&a, s.regression, s.mi.widths[s.mi.n_layers], batches, err), err);
    if (!rc)
        rc = agree(o, for_batches(&s, lo, hi, s.regression ? eval_target_batch : eval_class_batch,
                                  &a, err), err);
    if (!rc)
        acc_reduce(&a, o->comm);
    if (!rc && (s.regression ? a.total[0] : a.counts[0]) == 0)
        rc = dpt_error_set(err, DPT_EUSAGE, "%s: no data rows", o->input);
    if (!rc && o->comm->rank == 0)
        rc = report(&s, o, &a, err);
    fflush(stdout);
    rc = agree(o, rc, err);
    acc_free(&a);
    session_free(&s);
    return rc;
}
