/* Optimizer steps and the learning-rate schedule; the per-element updates are in ops.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

dpt_optim_params dpt_optim_params_from_config(const dpt_config *cfg)
{
    const __typeof__(cfg->train) *t = &cfg->train;
    return (dpt_optim_params){
        .kind = t->optimizer, .lr = t->lr, .momentum = t->momentum, .nesterov = t->nesterov,
        .weight_decay = t->weight_decay, .beta1 = t->beta1, .beta2 = t->beta2, .eps = t->eps,
        .clip_grad_norm = t->clip_grad_norm,
        .schedule = t->schedule, .step_epochs = t->step_epochs, .step_gamma = t->step_gamma,
        .min_lr = t->min_lr, .warmup_epochs = t->warmup_epochs, .epochs = t->epochs,
        .max_steps = t->max_steps,
    };
}

int dpt_optim_init(dpt_optim *o, const dpt_optim_params *p, dpt_backend *be, size_t n_params,
                   dpt_error *err)
{
    memset(o, 0, sizeof *o);
    o->kind = p->kind;
    o->params = *p;
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

double dpt_optim_lr(const dpt_optim_params *p, int64_t step, int64_t steps_per_epoch)
{
    double base = p->lr;
    int64_t warm = (int64_t)p->warmup_epochs * steps_per_epoch;
    int64_t total = (int64_t)p->epochs * steps_per_epoch;
    if (p->max_steps > 0 && p->max_steps < total)
        total = p->max_steps;
    if (step < warm) /* linear warmup from base/warm to base */
        return base * (double)(step + 1) / (double)warm;
    switch (p->schedule) {
    case DPT_SCHED_STEP: {
        int64_t epoch = step / (steps_per_epoch > 0 ? steps_per_epoch : 1);
        return base * pow(p->step_gamma, (double)(epoch / p->step_epochs));
    }
    case DPT_SCHED_COSINE: {
        /* Loshchilov & Hutter 2017 (SGDR) without restarts, per step, after warmup */
        double span = (double)(total - warm);
        double t = span > 0 ? (double)(step - warm) / span : 1.0;
        if (t > 1.0) t = 1.0;
        double lo = p->min_lr;
        return lo + (base - lo) * 0.5 * (1.0 + cos(M_PI * t));
    }
    default:
        return base;
    }
}

double dpt_optim_step(dpt_optim *o, float *params, float *grads, int64_t step, double lr)
{
    const dpt_optim_params *p = &o->params;
    dpt_backend *be = o->be;
    size_t n = o->n_params;
    double norm = -1.0;
    if (p->clip_grad_norm > 0) /* decided where the gradients live: no host read on a GPU */
        norm = be->clip_grad_norm(be, grads, n, p->clip_grad_norm);
    float sc[3];
    dpt_optim_scalars(o, step, lr, sc);
    if (o->kind == DPT_OPT_SGD) {
        be->sgd_step(be, params, grads, o->state, n, sc[0], (float)p->momentum, p->nesterov,
                     (float)p->weight_decay);
    } else {
        be->adam_step(be, params, grads, o->state, o->state + n, n, sc[0], (float)p->beta1,
                      (float)p->beta2, (float)p->eps, (float)p->weight_decay,
                      o->kind == DPT_OPT_ADAMW, sc[1], sc[2]);
    }
    return norm;
}

void dpt_optim_scalars(const dpt_optim *o, int64_t step, double lr, float out[3])
{
    double t = (double)(step + 1);
    out[0] = (float)lr;
    out[1] = o->kind == DPT_OPT_SGD ? 1.0f : (float)(1.0 - pow(o->params.beta1, t));
    out[2] = o->kind == DPT_OPT_SGD ? 1.0f : (float)(1.0 - pow(o->params.beta2, t));
}
