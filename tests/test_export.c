/* Tests of model.json (src/model_info.c) and the safetensors export (src/export.c): model.json
 * reads back every field it was written with; the exported file is parsed here independently
 * (little-endian header length, header JSON through libyaml, dtype, shape and data_offsets of
 * each tensor, offsets that cover the data without holes, the bytes against the checkpoint's
 * parameters, the metadata); a checkpoint that is not model.json's model is refused. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "checkpoint.h"
#include "config.h"
#include "data.h"
#include "export.h"
#include "model_info.h"

static char g_dir[64];

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dpt_test_export_XXXXXX");
    cr_assert(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(export, .init = setup, .fini = teardown);

/* A 5-7-3 model: 5*7 + 7 + 7*3 + 3 = 66 parameters */
enum { I = 5, H = 7, C = 3, N_PARAMS = I * H + H + H * C + C };
static char *feature_names[I] = {"a", "b, with comma", "c \"q\"", "d", "e"};
static char *class_names[C] = {"setosa", "versicolor", "virginica"};
static double mean[I] = {0.5, -1.25, 3.0, 1e-3, 7.0};
static double std_[I] = {1.0, 0.1, 2.5, 1e-6, 3.0};

static void write_run(dpt_config *cfg, float *params)
{
    dpt_error err = {0};
    dpt_config_defaults(cfg);
    cr_assert_eq(dpt_config_set(cfg, "model.layers=[5, 7, 3]", &err), DPT_OK, "%s", err.msg);
    cfg->model.activation = DPT_ACT_TANH;
    cfg->data.format = DPT_FORMAT_CSV;
    cfg->data.scaling = DPT_SCALING_STANDARDIZE;
    cfg->data.csv_header = 1;
    snprintf(cfg->data.label_column, sizeof cfg->data.label_column, "-1");
    snprintf(cfg->data.feature_columns, sizeof cfg->data.feature_columns, "0:5");
    dpt_data d = {0};
    d.feature_names = feature_names;
    d.class_names = class_names;
    d.label_name = "species";
    d.mean = mean;
    d.std = std_;
    char path[128];
    snprintf(path, sizeof path, "%s/model.json", g_dir);
    cr_assert_eq(dpt_model_info_save(path, cfg, &d, &err), DPT_OK, "%s", err.msg);
    for (int k = 0; k < N_PARAMS; k++)
        params[k] = (float)(k + 1) * 0.25f - 3.0f;
    dpt_ckpt_header h = {.n_layers = 2, .widths = {I, H, C}, .epoch = 1, .step = 10,
                         .optimizer = "sgd", .n_state = 0, .n_params = N_PARAMS, .seed = 1};
    snprintf(path, sizeof path, "%s/checkpoint.bin", g_dir);
    cr_assert_eq(dpt_checkpoint_save(path, &h, params, NULL, &err), DPT_OK, "%s", err.msg);
}

Test(export, model_json_round_trip)
{
    dpt_config cfg;
    float params[N_PARAMS];
    write_run(&cfg, params);
    char path[128];
    snprintf(path, sizeof path, "%s/model.json", g_dir);
    dpt_model_info mi;
    dpt_error err = {0};
    cr_assert_eq(dpt_model_info_load(path, &mi, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(mi.n_layers, 2);
    cr_assert(mi.widths[0] == I && mi.widths[1] == H && mi.widths[2] == C);
    cr_assert_eq(mi.activation, DPT_ACT_TANH);
    cr_assert_eq(mi.loss, DPT_LOSS_SOFTMAX_CE);
    cr_assert_eq(mi.format, DPT_FORMAT_CSV);
    cr_assert_eq(mi.scaling, DPT_SCALING_STANDARDIZE);
    cr_assert_eq(mi.csv_header, 1);
    cr_assert_str_eq(mi.label_column, "-1");
    cr_assert_str_eq(mi.feature_columns, "0:5");
    cr_assert_str_eq(mi.label_name, "species");
    for (int k = 0; k < I; k++) {
        cr_assert_str_eq(mi.feature_names[k], feature_names[k]);
        cr_assert(mi.mean[k] == mean[k] && mi.std[k] == std_[k], "statistic %d not exact", k);
    }
    for (int c = 0; c < C; c++)
        cr_assert_str_eq(mi.class_names[c], class_names[c]);
    dpt_model_info_free(&mi);
}

/* ---- an independent reader of the safetensors file ------------------------------------ */

static yaml_node_t *get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (strcmp((char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static long item(yaml_document_t *doc, yaml_node_t *seq, int k)
{
    cr_assert_eq(seq->type, YAML_SEQUENCE_NODE);
    cr_assert(k < seq->data.sequence.items.top - seq->data.sequence.items.start);
    return atol((char *)yaml_document_get_node(doc, seq->data.sequence.items.start[k])
                    ->data.scalar.value);
}

Test(export, safetensors_layout)
{
    char out[128];
    dpt_error err = {0};
    snprintf(out, sizeof out, "%s/model.safetensors", g_dir);
    dpt_config cfg;
    float params[N_PARAMS];
    write_run(&cfg, params);
    cr_assert_eq(dpt_export_safetensors(g_dir, out, &err), DPT_OK, "%s", err.msg);

    FILE *f = fopen(out, "rb");
    cr_assert(f);
    unsigned char buf[1 << 16];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)buf[k] << (8 * k);
    cr_assert_eq(n % 8, 0, "header length %llu: the data must start 8-byte aligned",
                 (unsigned long long)n);
    cr_assert_eq(len, 8 + n + N_PARAMS * sizeof(float), "file %zu bytes, header %llu", len,
                 (unsigned long long)n);

    yaml_parser_t parser;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&parser));
    yaml_parser_set_input_string(&parser, buf + 8, n);
    cr_assert(yaml_parser_load(&parser, &doc), "header is not JSON: %s", parser.problem);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cr_assert_eq(root->type, YAML_MAPPING_NODE);
    static const struct { const char *name; int o, i, off; } t[] = {
        {"layers.0.weight", H, I, 0}, {"layers.0.bias", H, 0, H * I},
        {"layers.1.weight", C, H, H * I + H}, {"layers.1.bias", C, 0, H * I + H + C * H}};
    int64_t covered = 0;
    for (int k = 0; k < 4; k++) {
        yaml_node_t *e = get(&doc, root, t[k].name);
        cr_assert(e, "no tensor %s", t[k].name);
        cr_assert_str_eq((char *)get(&doc, e, "dtype")->data.scalar.value, "F32");
        yaml_node_t *shape = get(&doc, e, "shape"), *offs = get(&doc, e, "data_offsets");
        int dims = (int)(shape->data.sequence.items.top - shape->data.sequence.items.start);
        cr_assert_eq(dims, t[k].i ? 2 : 1, "%s: %d dimensions", t[k].name, dims);
        cr_assert_eq(item(&doc, shape, 0), t[k].o);
        if (t[k].i)
            cr_assert_eq(item(&doc, shape, 1), t[k].i);
        long a = item(&doc, offs, 0), b = item(&doc, offs, 1);
        long count = (long)t[k].o * (t[k].i ? t[k].i : 1);
        cr_assert_eq(a, (long)(t[k].off * sizeof(float)), "%s begins at %ld", t[k].name, a);
        cr_assert_eq(b - a, count * (long)sizeof(float), "%s: %ld bytes", t[k].name, b - a);
        cr_assert(memcmp(buf + 8 + n + a, params + t[k].off, (size_t)(b - a)) == 0,
                  "%s: bytes differ from the checkpoint's parameters", t[k].name);
        covered += b - a;
    }
    cr_assert_eq(covered, N_PARAMS * (int64_t)sizeof(float), "the data has holes");
    yaml_node_t *meta = get(&doc, root, "__metadata__");
    cr_assert(meta);
    cr_assert_str_eq((char *)get(&doc, meta, "format")->data.scalar.value, "pt");
    const char *mj = (char *)get(&doc, meta, "dptrain.model_json")->data.scalar.value;
    cr_assert(strstr(mj, "\"class_names\": [\"setosa\", \"versicolor\", \"virginica\"]"), "%s",
              mj);
    cr_assert(strstr(mj, "\"activation\": \"tanh\""), "%s", mj);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

Test(export, refuses_a_checkpoint_of_another_model)
{
    dpt_config cfg;
    float params[N_PARAMS];
    write_run(&cfg, params);
    dpt_error err = {0};
    cr_assert_eq(dpt_config_set(&cfg, "model.layers=[5, 8, 3]", &err), DPT_OK);
    cfg.data.scaling = DPT_SCALING_UNIT;
    char path[128], out[128];
    snprintf(path, sizeof path, "%s/model.json", g_dir);
    dpt_data d = {0};
    cr_assert_eq(dpt_model_info_save(path, &cfg, &d, &err), DPT_OK, "%s", err.msg);
    snprintf(out, sizeof out, "%s/x.safetensors", g_dir);
    cr_assert_eq(dpt_export_safetensors(g_dir, out, &err), DPT_EUSAGE);
    cr_assert(strstr(err.msg, "checkpoint.bin: its layer widths are not model.json's"), "%s",
              err.msg);
    cr_assert_eq(access(out, F_OK), -1, "a refused export left a file");
}
