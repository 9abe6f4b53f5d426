/* The MLP: widths[0] -> ... -> widths[L], hidden layers with one activation (and dropout),
 * the last layer linear (logits). All parameters live in ONE flat buffer and all gradients in
 * ONE flat buffer of the same layout: per layer its weight W (O, I) row-major, as PyTorch's
 * nn.Linear.weight, then its bias b (O). Activations are kept per layer for backward. */
#ifndef DPT_MODEL_H
#define DPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

typedef struct {
    int n_layers;                        /* L */
    int widths[DPT_MAX_LAYERS + 1];
    dpt_activation act;
    dpt_loss loss;
    float huber_delta;                   /* model.huber_delta (loss huber) */
    float dropout;
    size_t w_off[DPT_MAX_LAYERS];        /* offsets (floats) into params / grads */
    size_t b_off[DPT_MAX_LAYERS];
    size_t n_params;

    dpt_backend *be;
    float *params;                       /* (n_params) backend memory */
    float *grads;                        /* (n_params + DPT_GRAD_STATS) backend memory */
    int max_rows;                        /* rows the activation buffers hold */
    float *z[DPT_MAX_LAYERS];            /* (max_rows, widths[l+1]) pre-activation */
    float *a[DPT_MAX_LAYERS];            /* (max_rows, widths[l+1]) activation (after dropout) */
    float *d[2];                         /* (max_rows, max width) backward ping-pong */
    void *mask[DPT_MAX_LAYERS];          /* hidden layer l's ReLU mask when the backend fuses
                                          * ReLU into the GEMM (DPT_EPI_RELU_BIAS), else NULL */
    int grad_blocks[DPT_MAX_LAYERS];     /* backward computes layer l's weight gradient in this
                                          * many blocks of output rows (0 or 1: whole), so that
                                          * a large layer's gradient can leave in pieces */
    double *layer_end[2];                /* run.trace: when set, forward [0] and backward [1]
                                          * write there when each layer's work was issued
                                          * (dpt_now(); on a GPU the host's view) */
} dpt_model;

/* The gradient buffer carries DPT_GRAD_STATS floats after the gradients (loss sum, correct
 * count, rows, ranks that received a stop signal), so one allreduce averages the gradients,
 * sums the step's statistics and tells every rank whether to stop after this step. */
#define DPT_GRAD_STATS 4

/* What the model reads: the model.* keys and the seed of the initialization. */
typedef struct {
    int n_layers;                        /* L weight layers: widths has L + 1 entries */
    int widths[DPT_MAX_LAYERS + 1];
    dpt_activation activation;
    double dropout;                      /* [0, 1) on hidden activations */
    dpt_loss loss;
    double huber_delta;                  /* > 0: huber's delta (0 in a spec: 1) */
    dpt_init init;
    uint64_t seed;                       /* run.seed */
} dpt_model_spec;

/* The spec of cfg's model.* keys and run.seed. */
dpt_model_spec dpt_model_spec_from_config(const dpt_config *cfg);

/* Sets the layout from spec and allocates parameters, gradients and activations for up to
 * max_rows rows. Parameters are initialized (dpt_model_init_params). */
int dpt_model_init(dpt_model *m, const dpt_model_spec *spec, dpt_backend *be, int max_rows,
                   dpt_error *err);
void dpt_model_free(dpt_model *m);

/* He (relu, gelu) or Xavier (tanh, sigmoid) normal initialization, or as spec->init says, from
 * the counter-based RNG keyed by (seed, layer, index): every rank draws identical weights.
 * Biases 0. */
void dpt_model_init_params(dpt_model *m, const dpt_model_spec *spec);

/* Forward over x (rows, widths[0]) in backend memory; returns the logits (rows, widths[L]),
 * valid until the next forward. drop: NULL for evaluation. */
const float *dpt_model_forward(dpt_model *m, const float *x, int rows, const dpt_dropout *drop);

/* Called during backward (reverse layer order) each time a piece of layer l's gradients is
 * complete, so the caller can start communicating it; NULL = no hook. With grad_blocks[l] = B
 * the pieces are blocks B-1 down to 0: block j is the weight gradient's output rows
 * [j O / B, (j + 1) O / B) (O = widths[l + 1]), and block B-1 also holds the bias gradient. */
typedef void (*dpt_layer_hook)(int layer, int block, void *ctx);

/* Output rows [*r0, *r1) of block j of layer l's weight gradient (see dpt_layer_hook). */
void dpt_model_grad_block(const dpt_model *m, int l, int j, int *r0, int *r1);

/* Backward from dlogits (rows, widths[L]) (overwritten) after a forward of the same x.
 * Writes (not accumulates) every layer's gradient into m->grads. */
void dpt_model_backward(dpt_model *m, const float *x, float *dlogits, int rows,
                        const dpt_dropout *drop, dpt_layer_hook hook, void *hook_ctx);

#endif
