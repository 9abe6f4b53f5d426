/* Optimizers over the flat parameter buffer: SGD (momentum, Nesterov), Adam, AdamW, with L2 or
 * decoupled weight decay, the learning-rate schedule (constant, step, cosine, linear warmup) and
 * clipping by the global gradient norm. State lives in one flat buffer of 0, 1 or 2 copies of
 * the parameter layout. */
#ifndef DPT_OPTIM_H
#define DPT_OPTIM_H

#include <stdint.h>

#include "backend.h"
#include "config.h"

/* What the optimizer reads: the update's hyper-parameters, clipping and the schedule. */
typedef struct {
    dpt_optimizer kind;
    double lr;                  /* base learning rate */
    double momentum;            /* sgd */
    int nesterov;               /* sgd */
    double weight_decay;        /* L2 for sgd and adam, decoupled for adamw */
    double beta1, beta2, eps;   /* adam, adamw */
    double clip_grad_norm;      /* 0 = off */
    dpt_schedule schedule;
    int step_epochs;            /* step schedule: multiply by step_gamma every step_epochs */
    double step_gamma;
    double min_lr;              /* cosine: floor */
    int warmup_epochs;
    int epochs;                 /* cosine: the schedule spans epochs ... */
    int64_t max_steps;          /* ... or max_steps when smaller (0 = no limit) */
} dpt_optim_params;

/* The optimizer's parameters from cfg->train. */
dpt_optim_params dpt_optim_params_from_config(const dpt_config *cfg);

typedef struct {
    dpt_optimizer kind;
    dpt_optim_params params;
    int n_state;            /* state copies of the parameter layout: sgd 1, adam/adamw 2 */
    size_t n_params;
    float *state;           /* (n_state, n_params) backend memory: momentum | adam m, v */
    dpt_backend *be;
} dpt_optim;

int dpt_optim_init(dpt_optim *o, const dpt_optim_params *p, dpt_backend *be, size_t n_params,
                   dpt_error *err);
void dpt_optim_free(dpt_optim *o);

/* Learning rate for optimizer step `step` (0-based) with steps_per_epoch steps in an epoch. */
double dpt_optim_lr(const dpt_optim_params *p, int64_t step, int64_t steps_per_epoch);

/* One step with the parameters given to dpt_optim_init: clips grads to clip_grad_norm when set,
 * then updates params in place. step is 0-based (Adam's bias correction uses step + 1). Returns
 * the gradient norm before clipping when clipping is on and the backend has it on the host (CPU;
 * NaN on the CUDA backend, which keeps it on the device), else -1 (not computed: it costs a
 * pass over the buffer). */
double dpt_optim_step(dpt_optim *o, float *params, float *grads, int64_t step, double lr);

/* The values of step `step` that change from step to step: {lr, bc1, bc2} as dpt_optim_step
 * passes them to the update (Adam's bias corrections 1 - beta^(step + 1); 1 for SGD). */
void dpt_optim_scalars(const dpt_optim *o, int64_t step, double lr, float out[3]);

#endif
