/* The safetensors writer (export.h). Layout: an 8-byte little-endian header length, the header
 * (JSON, padded with spaces to a multiple of 8 so the data that follows is aligned), then the
 * tensors' bytes. The flat parameter buffer already holds every layer's W (O, I) then b (O), so
 * the tensors' data is that buffer as it is, offsets into it in layer order. */
#define _POSIX_C_SOURCE 200809L

#include "export.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "json.h"
#include "model_info.h"
#include "util.h"

/* The whole of a small text file, NUL-terminated (NULL on failure). */
static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            char *q = realloc(buf, cap = (cap ? cap * 2 : 65536));
            if (!q) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = q;
        }
        size_t k = fread(buf + *len, 1, cap - *len - 1, f);
        *len += k;
        if (k == 0)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
        buf[--*len] = '\0';
    return buf;
}

/* The header JSON into j: metadata, then each layer's weight and bias with their offsets. */
static void write_header(dpt_json *j, const dpt_model_info *mi, const char *model_json)
{
    char text[64];
    dpt_json_object(j, NULL);
    dpt_json_object(j, "__metadata__"); /* safetensors metadata: string to string */
    dpt_json_string(j, "format", "pt");
    dpt_json_string(j, "producer", "dptrain " DPT_VERSION);
    dpt_json_string(j, "dptrain.model_json", model_json);
    dpt_json_end(j);
    uint64_t off = 0;
    for (int l = 0; l < mi->n_layers; l++) {
        const int I = mi->widths[l], O = mi->widths[l + 1];
        for (int bias = 0; bias < 2; bias++) {
            uint64_t bytes = (uint64_t)O * (bias ? 1 : (uint64_t)I) * sizeof(float);
            snprintf(text, sizeof text, "layers.%d.%s", l, bias ? "bias" : "weight");
            dpt_json_object(j, text);
            dpt_json_string(j, "dtype", "F32");
            dpt_json_array(j, "shape");
            dpt_json_int(j, NULL, O);
            if (!bias)
                dpt_json_int(j, NULL, I);
            dpt_json_end(j);
            dpt_json_array(j, "data_offsets");
            dpt_json_int(j, NULL, (int64_t)off);
            dpt_json_int(j, NULL, (int64_t)(off + bytes));
            dpt_json_end(j);
            dpt_json_end(j);
            off += bytes;
        }
    }
    dpt_json_end(j);
}

/* The file: length, header padded with spaces, data (float32 little-endian: the host's layout
 * on every machine dptrain builds for). */
static int write_file(const char *path, char *header, size_t hlen, size_t cap,
                      const float *params, uint64_t n_params, dpt_error *err)
{
    uint64_t padded = (hlen + 7) / 8 * 8;
    if (padded > cap)
        return dpt_error_set(err, DPT_ERUNTIME, "safetensors header too long");
    memset(header + hlen, ' ', (size_t)(padded - hlen));
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
        le[k] = (unsigned char)(padded >> (8 * k));
    const void *parts[3] = {le, header, params};
    const size_t sizes[3] = {8, (size_t)padded, (size_t)n_params * sizeof *params};
    return dpt_write_atomic(path, parts, sizes, 3, err);
}

int dpt_export_safetensors(const char *run_dir, const char *output, dpt_error *err)
{
    char path[4096 + 32];
    dpt_model_info mi;
    snprintf(path, sizeof path, "%s/model.json", run_dir);
    int rc = dpt_model_info_load(path, &mi, err);
    if (rc)
        return rc;
    size_t jlen = 0;
    char *model_json = read_text(path, &jlen);
    snprintf(path, sizeof path, "%s/checkpoint.bin", run_dir);
    dpt_ckpt_header h;
    float *params = NULL;
    char *header = NULL;
    if (!model_json)
        rc = dpt_error_set(err, DPT_ERUNTIME, "cannot read %s/model.json", run_dir);
    if (!rc)
        rc = dpt_checkpoint_load(path, &h, NULL, NULL, err);
    int same = !rc && (int)h.n_layers == mi.n_layers;
    for (int l = 0; same && l <= mi.n_layers; l++)
        same = (int)h.widths[l] == mi.widths[l];
    if (!rc && !same)
        rc = dpt_error_set(err, DPT_EUSAGE, "%s: its layer widths are not model.json's", path);
    if (!rc && !(params = malloc((size_t)h.n_params * sizeof *params)))
        rc = dpt_error_set(err, DPT_ERUNTIME, "out of memory exporting %s", run_dir);
    if (!rc)
        rc = dpt_checkpoint_load(path, &h, params, NULL, err);
    size_t cap = 6 * jlen + 4096 + (size_t)mi.n_layers * 256;
    if (!rc && !(header = malloc(cap)))
        rc = dpt_error_set(err, DPT_ERUNTIME, "out of memory exporting %s", run_dir);
    if (!rc) {
        dpt_json j;
        dpt_json_init(&j, header, cap, 0);
        write_header(&j, &mi, model_json);
        rc = j.len < cap ? write_file(output, header, j.len, cap, params, h.n_params, err)
                         : dpt_error_set(err, DPT_ERUNTIME, "safetensors header too long");
    }
    free(header);
    free(params);
    free(model_json);
    dpt_model_info_free(&mi);
    return rc;
}
