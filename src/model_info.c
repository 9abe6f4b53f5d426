/* model.json (model_info.h): written with the project's JSON writer, atomically (temp file,
 * fsync, rename) as config.yaml and checkpoint.bin are; read back through libyaml's document
 * API, with names of enums resolved by the config's own setter so they cannot drift. */
#define _POSIX_C_SOURCE 200809L

#include "model_info.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "json.h"
#include "util.h"

static void names_array(dpt_json *j, const char *key, char *const *names, int n)
{
    dpt_json_array(j, key);
    for (int k = 0; k < n; k++)
        dpt_json_string(j, NULL, names[k]);
    dpt_json_end(j);
}

/* exact doubles: predict scales as training did */
static void nums_array(dpt_json *j, const char *key, const double *v, int n)
{
    dpt_json_array(j, key);
    for (int k = 0; k < n; k++)
        dpt_json_double(j, NULL, v[k]);
    dpt_json_end(j);
}

/* The JSON text of model.json into j (whose buffer may prove too small: j->len says). */
static void write_info(dpt_json *j, const dpt_config *cfg, const dpt_data *d)
{
    const int L = cfg->model.n_layers, I = cfg->model.widths[0], C = cfg->model.widths[L];
    dpt_json_object(j, NULL);
    dpt_json_string(j, "format", "dptrain-model");
    dpt_json_int(j, "version", DPT_MODEL_INFO_VERSION);
    dpt_json_string(j, "task", dpt_task_name(cfg->data.task));
    dpt_json_string(j, "weights", "checkpoint.bin");
    dpt_json_array(j, "layers");
    for (int l = 0; l <= L; l++)
        dpt_json_int(j, NULL, cfg->model.widths[l]);
    dpt_json_end(j);
    dpt_json_string(j, "activation", dpt_activation_name(cfg->model.activation));
    dpt_json_string(j, "loss", dpt_loss_name(cfg->model.loss));
    dpt_json_string(j, "precision", dpt_precision_name(cfg->train.precision));
    dpt_json_double(j, "huber_delta", cfg->model.huber_delta);
    dpt_json_string(j, "data_format", dpt_format_name(cfg->data.format));
    dpt_json_string(j, "scaling", dpt_scaling_name(cfg->data.scaling));
    dpt_json_bool(j, "csv_header", cfg->data.csv_header);
    dpt_json_string(j, "label_column", cfg->data.label_column);
    dpt_json_string(j, "feature_columns", cfg->data.feature_columns);
    if (d->label_name)
        dpt_json_string(j, "label_name", d->label_name);
    if (d->feature_names)
        names_array(j, "feature_names", d->feature_names, I);
    if (d->class_names)
        names_array(j, "class_names", d->class_names, C);
    if (d->target_names)
        names_array(j, "target_names", d->target_names, C);
    if (d->mean) {
        nums_array(j, "mean", d->mean, I);
        nums_array(j, "std", d->std, I);
    }
    if (d->t_mean) {
        nums_array(j, "target_mean", d->t_mean, C);
        nums_array(j, "target_std", d->t_std, C);
    }
    if (d->fill) {
        dpt_json_string(j, "missing", "mean");
        nums_array(j, "fill", d->fill, I);
    }
    dpt_json_end(j);
    dpt_json_tail(j, "\n");
}

int dpt_model_info_save(const char *path, const dpt_config *cfg, const dpt_data *d,
                        dpt_error *err)
{
    size_t cap = 1 << 16;
    char *buf = NULL;
    dpt_json j;
    for (;;) {
        char *q = realloc(buf, cap);
        if (!q) {
            free(buf);
            return dpt_error_set(err, DPT_ERUNTIME, "out of memory writing %s", path);
        }
        buf = q;
        dpt_json_init(&j, buf, cap, 1);
        write_info(&j, cfg, d);
        if (j.len < cap)
            break;
        cap = j.len + 1;
    }
    const void *parts[1] = {buf};
    const size_t sizes[1] = {j.len};
    int rc = dpt_write_atomic(path, parts, sizes, 1, err);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reading
 */

typedef struct {
    yaml_document_t *doc;
    const char *path;
    dpt_error *err;
} reader;

static yaml_node_t *member(reader *r, yaml_node_t *obj, const char *key)
{
    for (yaml_node_pair_t *p = obj->data.mapping.pairs.start; p < obj->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(r->doc, p->value);
    }
    return NULL;
}

static const char *scalar(reader *r, yaml_node_t *obj, const char *key)
{
    yaml_node_t *n = member(r, obj, key);
    if (!n || n->type != YAML_SCALAR_NODE) {
        dpt_error_set(r->err, DPT_EUSAGE, "%s: '%s' is missing or not a single value", r->path,
                      key);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* A list member of exactly n items (absent: *out stays NULL, which is allowed). */
static int list(reader *r, yaml_node_t *obj, const char *key, int n, char ***names,
                double **nums)
{
    yaml_node_t *s = member(r, obj, key);
    if (!s)
        return DPT_OK;
    int len = s->type == YAML_SEQUENCE_NODE
                  ? (int)(s->data.sequence.items.top - s->data.sequence.items.start) : -1;
    if (len != n)
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: '%s' must be a list of %d items", r->path,
                             key, n);
    if (names)
        *names = calloc((size_t)(n > 0 ? n : 1), sizeof **names);
    if (nums)
        *nums = calloc((size_t)(n > 0 ? n : 1), sizeof **nums);
    if ((names && !*names) || (nums && !*nums))
        return dpt_error_set(r->err, DPT_ERUNTIME, "out of memory reading %s", r->path);
    for (int k = 0; k < n; k++) {
        yaml_node_t *it = yaml_document_get_node(r->doc, s->data.sequence.items.start[k]);
        if (!it || it->type != YAML_SCALAR_NODE)
            return dpt_error_set(r->err, DPT_EUSAGE, "%s: '%s'[%d] is not a value", r->path,
                                 key, k);
        const char *v = (const char *)it->data.scalar.value;
        char *end;
        if (names && !((*names)[k] = strdup(v)))
            return dpt_error_set(r->err, DPT_ERUNTIME, "out of memory reading %s", r->path);
        if (nums && (((*nums)[k] = strtod(v, &end)), end == v || *end))
            return dpt_error_set(r->err, DPT_EUSAGE, "%s: '%s'[%d] is not a number", r->path,
                                 key, k);
    }
    return DPT_OK;
}

/* Sets key=value in a scratch config: enums and widths parsed and checked as a config's are. */
static int via_config(reader *r, dpt_config *scratch, const char *key, const char *value)
{
    char text[DPT_PATH_MAX + 64];
    dpt_error e = {0};
    snprintf(text, sizeof text, "%s=%s", key, value);
    if (dpt_config_set(scratch, text, &e))
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: %s", r->path, e.msg);
    return DPT_OK;
}

static int read_info(reader *r, yaml_node_t *root, dpt_model_info *mi)
{
    if (root->type != YAML_MAPPING_NODE)
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: not a JSON object", r->path);
    const char *fmt = scalar(r, root, "format");
    if (!fmt)
        return DPT_EUSAGE;
    if (strcmp(fmt, "dptrain-model") != 0)
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: format is '%s', not dptrain-model",
                             r->path, fmt);
    const char *ver = scalar(r, root, "version");
    if (!ver || atoi(ver) != DPT_MODEL_INFO_VERSION)
        return ver ? dpt_error_set(r->err, DPT_EUSAGE, "%s: version %s, this dptrain reads %d",
                                   r->path, ver, DPT_MODEL_INFO_VERSION) : DPT_EUSAGE;
    dpt_config *c = malloc(sizeof *c);
    if (!c)
        return dpt_error_set(r->err, DPT_ERUNTIME, "out of memory reading %s", r->path);
    dpt_config_defaults(c);
    static const char *const keys[][2] = {
        {"model.activation", "activation"}, {"model.loss", "loss"},
        {"data.format", "data_format"},     {"data.scaling", "scaling"},
        {"data.csv_header", "csv_header"},  {"data.task", "task"}};
    int rc = DPT_OK;
    char layers[1024] = "[";
    yaml_node_t *ls = member(r, root, "layers");
    for (int k = 0; ls && ls->type == YAML_SEQUENCE_NODE &&
                    k < ls->data.sequence.items.top - ls->data.sequence.items.start; k++) {
        yaml_node_t *it = yaml_document_get_node(r->doc, ls->data.sequence.items.start[k]);
        if (it && it->type == YAML_SCALAR_NODE && strlen(layers) + 24 < sizeof layers)
            snprintf(layers + strlen(layers), sizeof layers - strlen(layers), "%s%s",
                     k ? "," : "", (const char *)it->data.scalar.value);
    }
    strcat(layers, "]");
    rc = via_config(r, c, "model.layers", layers);
    for (size_t k = 0; !rc && k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = scalar(r, root, keys[k][1]);
        rc = v ? via_config(r, c, keys[k][0], v[0] ? v : "\"\"") : DPT_EUSAGE;
    }
    /* keys newer files add: absent, the default (what the older training used) */
    static const char *const optional[][2] = {{"train.precision", "precision"},
                                              {"model.huber_delta", "huber_delta"}};
    for (size_t k = 0; !rc && k < sizeof optional / sizeof optional[0]; k++) {
        yaml_node_t *n = member(r, root, optional[k][1]);
        if (n && n->type != YAML_SCALAR_NODE)
            rc = dpt_error_set(r->err, DPT_EUSAGE, "%s: '%s' is not a single value", r->path,
                               optional[k][1]);
        else if (n)
            rc = via_config(r, c, optional[k][0], (const char *)n->data.scalar.value);
    }
    if (!rc) {
        mi->n_layers = c->model.n_layers;
        memcpy(mi->widths, c->model.widths, sizeof mi->widths);
        mi->activation = c->model.activation;
        mi->loss = c->model.loss;
        mi->format = c->data.format;
        mi->scaling = c->data.scaling;
        mi->csv_header = c->data.csv_header;
        mi->task = c->data.task;
        mi->precision = c->train.precision;
        mi->huber_delta = c->model.huber_delta;
    }
    free(c);
    if (rc)
        return rc;
    const char *lc = scalar(r, root, "label_column"), *fc = scalar(r, root, "feature_columns");
    if (!lc || !fc)
        return DPT_EUSAGE;
    snprintf(mi->label_column, sizeof mi->label_column, "%s", lc);
    snprintf(mi->feature_columns, sizeof mi->feature_columns, "%s", fc);
    const int I = mi->widths[0], C = mi->widths[mi->n_layers];
    yaml_node_t *ln = member(r, root, "label_name");
    if (ln && ln->type == YAML_SCALAR_NODE &&
        !(mi->label_name = strdup((const char *)ln->data.scalar.value)))
        return dpt_error_set(r->err, DPT_ERUNTIME, "out of memory reading %s", r->path);
    if ((rc = list(r, root, "feature_names", I, &mi->feature_names, NULL)) ||
        (rc = list(r, root, "class_names", C, &mi->class_names, NULL)) ||
        (rc = list(r, root, "mean", I, NULL, &mi->mean)) ||
        (rc = list(r, root, "std", I, NULL, &mi->std)) ||
        (rc = list(r, root, "target_names", C, &mi->target_names, NULL)) ||
        (rc = list(r, root, "target_mean", C, NULL, &mi->t_mean)) ||
        (rc = list(r, root, "target_std", C, NULL, &mi->t_std)) ||
        (rc = list(r, root, "fill", I, NULL, &mi->fill)))
        return rc;
    mi->missing = mi->fill ? DPT_MISSING_MEAN : DPT_MISSING_ERROR;
    if (!mi->t_mean != !mi->t_std)
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: 'target_mean' and 'target_std' go "
                             "together", r->path);
    if (mi->scaling == DPT_SCALING_STANDARDIZE && (!mi->mean || !mi->std))
        return dpt_error_set(r->err, DPT_EUSAGE, "%s: scaling is standardize but 'mean' or 'std' "
                             "is missing", r->path);
    return DPT_OK;
}

int dpt_model_info_load(const char *path, dpt_model_info *mi, dpt_error *err)
{
    memset(mi, 0, sizeof *mi);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dpt_error_set(err, DPT_EUSAGE, "cannot open '%s': %s (a run directory of dptrain "
                             "train holds model.json beside checkpoint.bin)", path,
                             strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = DPT_OK;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return dpt_error_set(err, DPT_ERUNTIME, "cannot initialize the YAML parser");
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = dpt_error_set(err, DPT_EUSAGE, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                           parser.problem_mark.column + 1,
                           parser.problem ? parser.problem : "not valid JSON");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        reader r = {.doc = &doc, .path = path, .err = err};
        rc = root ? read_info(&r, root, mi)
                  : dpt_error_set(err, DPT_EUSAGE, "%s: the file is empty", path);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc)
        dpt_model_info_free(mi);
    return rc;
}

static void free_list(char **v, int n)
{
    for (int k = 0; v && k < n; k++)
        free(v[k]);
    free(v);
}

void dpt_model_info_free(dpt_model_info *mi)
{
    free_list(mi->feature_names, mi->widths[0]);
    free_list(mi->class_names, mi->widths[mi->n_layers]);
    free_list(mi->target_names, mi->widths[mi->n_layers]);
    free(mi->label_name);
    free(mi->mean);
    free(mi->std);
    free(mi->t_mean);
    free(mi->t_std);
    free(mi->fill);
    memset(mi, 0, sizeof *mi);
}
