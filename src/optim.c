/* Optimizer steps and the learning-rate schedule; the per-element updates are in ops.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

int dpt_optim_init(dpt_optim *o, const dpt_config *cfg, dpt_backend *be, size_t n_params,
                   dpt_error *err)
{
    memset(o, 0, sizeof *o);
    o->kind = cfg->train.optimizer;
    o->n_state = o->kind == DPT_OPT_SGD ? 1 : 2;
    o->n_params = n_params;
    o->be = be;
    o->state = be->alloc(be, (size_t)o->n_state * n_params * sizeof(float));
    if (!o->state)
        return dpt_error_set(err, DPT_ERUNTIME, "out of %s memory for optimizer state", be->name);
    return DPT_OK;
}

void dpt_optim_free(dpt_optim *o)
{
    if (o->be)
        o->be->free(o->be, o->state);
    memset(o, 0, sizeof *o);
}

double dpt_optim_lr(const dpt_config *cfg, int64_t step, int64_t steps_per_epoch)
{
    double base = cfg->train.lr;
    int64_t warm = (int64_t)cfg->train.warmup_epochs * steps_per_epoch;
    int64_t total = (int64_t)cfg->train.epochs * steps_per_epoch;
    if (cfg->train.max_steps > 0 && cfg->train.max_steps < total)
        total = cfg->train.max_steps;
    if (step < warm) /* linear warmup from base/warm to base */
        return base * (double)(step + 1) / (double)warm;
    switch (cfg->train.schedule) {
    case DPT_SCHED_STEP: {
        int64_t epoch = step / (steps_per_epoch > 0 ? steps_per_epoch : 1);
        return base * pow(cfg->train.step_gamma, (double)(epoch / cfg->train.step_epochs));
    }
    case DPT_SCHED_COSINE: {
        /* Loshchilov & Hutter 2017 (SGDR) without restarts, per step, after warmup */
        double span = (double)(total - warm);
        double t = span > 0 ? (double)(step - warm) / span : 1.0;
        if (t > 1.0) t = 1.0;
        double lo = cfg->train.min_lr;
        return lo + (base - lo) * 0.5 * (1.0 + cos(M_PI * t));
    }
    default:
        return base;
    }
}

double dpt_optim_step(dpt_optim *o, const dpt_config *cfg, float *params, float *grads,
                      int64_t step, double lr)
{
    dpt_backend *be = o->be;
    size_t n = o->n_params;
    double norm = -1.0;
    if (cfg->train.clip_grad_norm > 0) {
        /* as torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above */
        norm = sqrt(be->sum_squares(be, grads, n));
        if (norm > cfg->train.clip_grad_norm)
            be->scale(be, grads, n, (float)(cfg->train.clip_grad_norm / (norm + 1e-6)));
    }
    if (o->kind == DPT_OPT_SGD) {
        be->sgd_step(be, params, grads, o->state, n, (float)lr, (float)cfg->train.momentum,
                     cfg->train.nesterov, (float)cfg->train.weight_decay);
    } else {
        double t = (double)(step + 1);
        float bc1 = (float)(1.0 - pow(cfg->train.beta1, t));
        float bc2 = (float)(1.0 - pow(cfg->train.beta2, t));
        be->adam_step(be, params, grads, o->state, o->state + n, n, (float)lr,
                      (float)cfg->train.beta1, (float)cfg->train.beta2, (float)cfg->train.eps,
                      (float)cfg->train.weight_decay, o->kind == DPT_OPT_ADAMW, bc1, bc2);
    }
    return norm;
}
