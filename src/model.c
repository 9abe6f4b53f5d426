/* The MLP's layout, initialization, forward and backward, written once against the backend
 * table: the same code drives the CPU and the CUDA backend. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "util.h"

dpt_model_spec dpt_model_spec_from_config(const dpt_config *cfg)
{
    dpt_model_spec s = {
        .n_layers = cfg->model.n_layers, .activation = cfg->model.activation,
        .dropout = cfg->model.dropout, .loss = cfg->model.loss, .init = cfg->model.init,
        .seed = cfg->run.seed, .huber_delta = cfg->model.huber_delta,
    };
    memcpy(s.widths, cfg->model.widths, sizeof s.widths);
    return s;
}

int dpt_model_init(dpt_model *m, const dpt_model_spec *spec, dpt_backend *be, int max_rows,
                   dpt_error *err)
{
    memset(m, 0, sizeof *m);
    m->n_layers = spec->n_layers;
    memcpy(m->widths, spec->widths, sizeof m->widths);
    m->act = spec->activation;
    m->loss = spec->loss;
    m->huber_delta = spec->huber_delta > 0 ? (float)spec->huber_delta : 1.0f;
    m->dropout = (float)spec->dropout;
    m->be = be;
    m->max_rows = max_rows;

    size_t off = 0;
    int max_width = 0;
    for (int l = 0; l < m->n_layers; l++) {
        int in = m->widths[l], out = m->widths[l + 1];
        m->w_off[l] = off;
        off += (size_t)out * in;
        m->b_off[l] = off;
        off += (size_t)out;
        if (out > max_width) max_width = out;
        if (in > max_width) max_width = in;
    }
    m->n_params = off;

    m->params = be->alloc(be, m->n_params * sizeof(float));
    m->grads = be->alloc(be, (m->n_params + DPT_GRAD_STATS) * sizeof(float));
    int ok = m->params && m->grads;
    for (int l = 0; l < m->n_layers && ok; l++) {
        size_t bytes = (size_t)max_rows * m->widths[l + 1] * sizeof(float);
        m->z[l] = be->alloc(be, bytes);
        m->a[l] = be->alloc(be, bytes);
        ok = m->z[l] && m->a[l];
        if (ok && (be->epilogues & DPT_EPI_RELU_BIAS) && l < m->n_layers - 1) {
            m->mask[l] = be->alloc(be, dpt_epi_mask_bytes(max_rows, m->widths[l + 1]));
            ok = m->mask[l] != NULL;
        }
    }
    for (int k = 0; k < 2 && ok; k++) {
        m->d[k] = be->alloc(be, (size_t)max_rows * max_width * sizeof(float));
        ok = m->d[k] != NULL;
    }
    if (!ok) {
        dpt_model_free(m);
        return dpt_error_set(err, DPT_ERUNTIME,
                             "out of %s memory for a model of %zu parameters and %d rows",
                             be->name, off, max_rows);
    }
    dpt_model_init_params(m, spec);
    return DPT_OK;
}

void dpt_model_free(dpt_model *m)
{
    dpt_backend *be = m->be;
    if (!be)
        return;
    be->free(be, m->params);
    be->free(be, m->grads);
    for (int l = 0; l < m->n_layers; l++) {
        be->free(be, m->z[l]);
        be->free(be, m->a[l]);
        be->free(be, m->mask[l]);
    }
    be->free(be, m->d[0]);
    be->free(be, m->d[1]);
    memset(m, 0, sizeof *m);
}

void dpt_model_init_params(dpt_model *m, const dpt_model_spec *spec)
{
    /* He et al. 2015 (std sqrt(2/fan_in)) suits relu-like units; Glorot & Bengio 2010
     * (std sqrt(2/(fan_in+fan_out))) suits saturating ones. */
    int he = spec->init == DPT_INIT_HE ||
             (spec->init == DPT_INIT_AUTO &&
              (m->act == DPT_ACT_RELU || m->act == DPT_ACT_GELU));
    float *host = calloc(m->n_params, sizeof(float));
    if (!host)
        abort(); /* a few MB on the host: nothing sensible to do without them */
    for (int l = 0; l < m->n_layers; l++) {
        int in = m->widths[l], out = m->widths[l + 1];
        double std = he ? sqrt(2.0 / in) : sqrt(2.0 / (in + out));
        size_t n = (size_t)out * in;
        for (size_t i = 0; i < n; i++)
            host[m->w_off[l] + i] =
                (float)(std * dpt_rng_normal(spec->seed, DPT_RNG_INIT, ((uint64_t)l << 40) | i));
    }
    m->be->upload(m->be, m->params, host, m->n_params * sizeof(float));
    free(host);
}

/* Whether hidden layer l's ReLU is fused into its forward GEMM (and its derivative into the
 * backward GEMM that feeds it): the backend fuses ReLU and the layer drops nothing (dropout
 * multiplies after the activation, which no epilogue does). Forward and backward decide alike. */
static int relu_fused(const dpt_model *m, int l, const dpt_dropout *drop)
{
    return m->mask[l] && m->act == DPT_ACT_RELU && !(drop && drop->p > 0.0f);
}

const float *dpt_model_forward(dpt_model *m, const float *x, int rows, const dpt_dropout *drop)
{
    dpt_backend *be = m->be;
    const float *in = x;
    for (int l = 0; l < m->n_layers; l++) {
        int I = m->widths[l], O = m->widths[l + 1];
        int last = l == m->n_layers - 1;
        const float *w = m->params + m->w_off[l];
        float *b = m->params + m->b_off[l];
        /* z(B,O) = in(B,I) W(O,I)^T, then + b and the activation (none on the logits); fused,
         * the GEMM writes the activation (and the ReLU mask backward reads) and z stays unused */
        if (last && (be->epilogues & DPT_EPI_BIAS))
            be->gemm_epilogue(be, DPT_EPI_BIAS, 0, 1, rows, O, I, in, I, w, I, m->a[l], O, b, NULL);
        else if (!last && relu_fused(m, l, drop))
            /* its a is read by the next layer's forward and weight-gradient GEMMs only: the
             * backward takes the ReLU from the mask (DRELU) */
            be->gemm_epilogue(be, DPT_EPI_RELU_BIAS | DPT_EPI_OPERAND_ONLY, 0, 1, rows, O, I, in,
                              I, w, I, m->a[l], O, b, m->mask[l]);
        else {
            be->gemm(be, 0, 1, rows, O, I, 1.0f, in, I, w, I, 0.0f, m->z[l], O);
            be->bias_act_forward(be, m->z[l], m->a[l], b, rows, O,
                                 last ? DPT_ACT_IDENTITY : m->act, last ? NULL : drop, l);
        }
        in = m->a[l];
        if (m->layer_end[0])
            m->layer_end[0][l] = dpt_now();
    }
    return m->a[m->n_layers - 1];
}

void dpt_model_grad_block(const dpt_model *m, int l, int j, int *r0, int *r1)
{
    int O = m->widths[l + 1], blocks = m->grad_blocks[l] > 1 ? m->grad_blocks[l] : 1;
    *r0 = (int)((long long)O * j / blocks);
    *r1 = (int)((long long)O * (j + 1) / blocks);
}

void dpt_model_backward(dpt_model *m, const float *x, float *dlogits, int rows,
                        const dpt_dropout *drop, dpt_layer_hook hook, void *hook_ctx)
{
    dpt_backend *be = m->be;
    float *dz = dlogits; /* (B, O) gradient at layer l's pre-activation */
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int I = m->widths[l], O = m->widths[l + 1];
        const float *in = l > 0 ? m->a[l - 1] : x; /* (B, I) */
        /* db(O) = column sums of dz; dW(O,I) = dz(B,O)^T in(B,I) */
        /* a fused hidden ReLU layer's db came with the input-gradient GEMM of the layer above
         * (DRELU sums the masked product's columns): complete before any of this layer's
         * pieces leaves, and the same however the weight gradient is cut into blocks */
        if (l == m->n_layers - 1 || !relu_fused(m, l, drop))
            be->bias_grad(be, dz, rows, O, m->grads + m->b_off[l]);
        /* dW by blocks of output rows where the backend's GEMM gives a row the same bits
         * whatever the block; else (the CPU backend's BLAS) one GEMM and then every block's
         * hook: the bucket plan must not change a bit of the gradient */
        int blocks = m->grad_blocks[l] > 1 ? m->grad_blocks[l] : 1;
        int whole = blocks == 1 || !be->gemm_row_exact;
        if (whole)
            be->gemm(be, 1, 0, O, I, rows, 1.0f, dz, O, in, I, 0.0f, m->grads + m->w_off[l], I);
        for (int j = blocks - 1; j >= 0; j--) {
            int r0, r1;
            dpt_model_grad_block(m, l, j, &r0, &r1);
            if (!whole)
                be->gemm(be, 1, 0, r1 - r0, I, rows, 1.0f, dz + r0, O, in, I, 0.0f,
                         m->grads + m->w_off[l] + (size_t)r0 * I, I);
            if (hook)
                hook(l, j, hook_ctx);
        }
        if (l > 0) {
            /* d_in(B,I) = dz(B,O) W(O,I), then through layer l-1's dropout and activation */
            float *dnext = m->d[dz == m->d[0] ? 1 : 0];
            const float *w = m->params + m->w_off[l];
            if (relu_fused(m, l - 1, drop))
                be->gemm_epilogue(be, DPT_EPI_DRELU, 0, 0, rows, I, O, dz, O, w, I, dnext, I,
                                  m->grads + m->b_off[l - 1], m->mask[l - 1]);
            else {
                be->gemm(be, 0, 0, rows, I, O, 1.0f, dz, O, w, I, 0.0f, dnext, I);
                be->act_backward(be, dnext, m->z[l - 1], m->a[l - 1], rows, I, m->act, drop,
                                 l - 1);
            }
            dz = dnext;
        }
        if (m->layer_end[1])
            m->layer_end[1][l] = dpt_now();
    }
}
