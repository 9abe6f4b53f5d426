/* The search space: unit-cube encoding for the Gaussian process (Snoek, Larochelle & Adams 2012,
 * as Spearmint does it: log scales for log parameters, rounding of integers after the proposal,
 * one-hot blocks for categoricals), random and grid points, and applying a trial's values to a
 * config through the config's typed setter, the one YAML files go through, so a trial's config
 * is validated like the user's. */
#include "space.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

int dpt_space_dim(const dpt_config *cfg)
{
    int dim = 0;
    for (int i = 0; i < cfg->search.n_params; i++)
        dim += cfg->search.params[i].type == DPT_SPACE_CATEGORICAL ? cfg->search.params[i].n_choices
                                                                  : 1;
    return dim;
}

/* The interval a numeric parameter is uniform on, in the scale it is searched in: integers
 * reach half a unit beyond each end so that both ends are as likely as the values between. */
static void scale_bounds(const dpt_space_param *p, double *a, double *b)
{
    double lo = p->low, hi = p->high;
    if (p->type == DPT_SPACE_INT) {
        lo -= 0.5;
        hi += 0.5;
    }
    int logscale = p->type == DPT_SPACE_LOG_UNIFORM || (p->type == DPT_SPACE_INT && p->log);
    *a = logscale ? log(lo) : lo;  /* log int: low >= 1, so low - 0.5 > 0 */
    *b = logscale ? log(hi) : hi;
}

static int is_log(const dpt_space_param *p)
{
    return p->type == DPT_SPACE_LOG_UNIFORM || (p->type == DPT_SPACE_INT && p->log);
}

static double clamp(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

/* 6 significant digits */
static double round6(double x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.6g", x);
    return strtod(buf, NULL);
}

static double decode_number(const dpt_space_param *p, double u)
{
    double a, b;
    scale_bounds(p, &a, &b);
    double s = a + clamp(u, 0.0, 1.0) * (b - a);
    double x = is_log(p) ? exp(s) : s;
    if (p->type == DPT_SPACE_INT)
        return clamp(round(x), p->low, p->high);
    return clamp(round6(x), p->low, p->high);
}

static double encode_number(const dpt_space_param *p, double x)
{
    double a, b;
    scale_bounds(p, &a, &b);
    double s = is_log(p) ? log(x) : x;
    return clamp((s - a) / (b - a), 0.0, 1.0);
}

void dpt_space_decode(const dpt_config *cfg, const double *u, dpt_space_value *v)
{
    int d = 0;
    for (int i = 0; i < cfg->search.n_params; i++) {
        const dpt_space_param *p = &cfg->search.params[i];
        v[i].num = 0.0;
        v[i].choice = 0;
        if (p->type == DPT_SPACE_CATEGORICAL) {
            for (int c = 1; c < p->n_choices; c++)
                if (u[d + c] > u[d + v[i].choice])
                    v[i].choice = c;
            d += p->n_choices;
        } else {
            v[i].num = decode_number(p, u[d++]);
        }
    }
}

void dpt_space_encode(const dpt_config *cfg, const dpt_space_value *v, double *u)
{
    int d = 0;
    for (int i = 0; i < cfg->search.n_params; i++) {
        const dpt_space_param *p = &cfg->search.params[i];
        if (p->type == DPT_SPACE_CATEGORICAL) {
            for (int c = 0; c < p->n_choices; c++)
                u[d + c] = c == v[i].choice ? 1.0 : 0.0;
            d += p->n_choices;
        } else {
            u[d++] = encode_number(p, v[i].num);
        }
    }
}

void dpt_space_random(const dpt_config *cfg, uint64_t seed, uint64_t counter, dpt_space_value *v)
{
    double u[DPT_SEARCH_MAX_PARAMS * DPT_SEARCH_MAX_CHOICES];
    int dim = dpt_space_dim(cfg);
    for (int d = 0; d < dim; d++) /* 53 random bits per coordinate */
        u[d] = (double)(dpt_rng_u64(seed, DPT_RNG_SEARCH, counter * 1024 + (uint64_t)d) >> 11) *
               (1.0 / 9007199254740992.0);
    dpt_space_decode(cfg, u, v);
}

/* Values parameter i takes on the grid. */
static int64_t grid_count(const dpt_config *cfg, const dpt_space_param *p)
{
    int64_t g = cfg->search.grid_points;
    if (p->type == DPT_SPACE_CATEGORICAL)
        return p->n_choices;
    if (p->type == DPT_SPACE_INT) {
        double span = p->high - p->low + 1.0;
        return span <= (double)g ? (int64_t)span : g;
    }
    return g;
}

int64_t dpt_space_grid_size(const dpt_config *cfg)
{
    int64_t size = 1;
    for (int i = 0; i < cfg->search.n_params; i++) {
        int64_t c = grid_count(cfg, &cfg->search.params[i]);
        if (size > INT64_MAX / c)
            return INT64_MAX;
        size *= c;
    }
    return size;
}

void dpt_space_grid_point(const dpt_config *cfg, int64_t index, dpt_space_value *v)
{
    for (int i = cfg->search.n_params - 1; i >= 0; i--) {
        const dpt_space_param *p = &cfg->search.params[i];
        int64_t count = grid_count(cfg, p);
        int64_t k = index % count;
        index /= count;
        v[i].num = 0.0;
        v[i].choice = 0;
        if (p->type == DPT_SPACE_CATEGORICAL) {
            v[i].choice = (int)k;
        } else if (p->type == DPT_SPACE_INT && (double)count == p->high - p->low + 1.0) {
            v[i].num = p->low + (double)k;  /* every integer of the range */
        } else if (count == 1) {
            v[i].num = decode_number(p, 0.5);
        } else {
            /* ends included: the grid spans the range in the parameter's own scale */
            double a = is_log(p) ? log(p->low) : p->low, b = is_log(p) ? log(p->high) : p->high;
            double s = a + (b - a) * (double)k / (double)(count - 1);
            double x = is_log(p) ? exp(s) : s;
            v[i].num = p->type == DPT_SPACE_INT ? clamp(round(x), p->low, p->high)
                                                : clamp(round6(x), p->low, p->high);
        }
    }
}

void dpt_space_format(const dpt_config *cfg, int i, const dpt_space_value *v, char *out, size_t n,
                      int *is_string)
{
    const dpt_space_param *p = &cfg->search.params[i];
    *is_string = p->type == DPT_SPACE_CATEGORICAL;
    if (p->type == DPT_SPACE_CATEGORICAL)
        snprintf(out, n, "%s", p->choices[v[i].choice]);
    else if (p->type == DPT_SPACE_INT)
        snprintf(out, n, "%.0f", v[i].num);
    else
        dpt_config_format_double(v[i].num, out, n);
}

int dpt_space_parse(const dpt_config *cfg, int i, const char *text, int is_string,
                    dpt_space_value *v)
{
    const dpt_space_param *p = &cfg->search.params[i];
    v[i].num = 0.0;
    v[i].choice = 0;
    if (p->type == DPT_SPACE_CATEGORICAL) {
        for (int c = 0; c < p->n_choices; c++) {
            if (strcmp(p->choices[c], text) == 0) {
                v[i].choice = c;
                return 0;
            }
        }
        return -1;
    }
    if (is_string)
        return -1;
    char *end;
    double x = strtod(text, &end);
    if (end == text || *end != '\0' || !(x >= p->low && x <= p->high))
        return -1;
    if (p->type == DPT_SPACE_INT && x != floor(x))
        return -1;
    v[i].num = x;
    return 0;
}

/* Parameter i's value of a trial as the config's typed setter takes it: a categorical choice is
 * YAML text (it may be a list), numbers stay numbers. */
static dpt_value trial_value(const dpt_space_param *p, const dpt_space_value *v)
{
    if (p->type == DPT_SPACE_CATEGORICAL)
        return (dpt_value){.kind = DPT_VALUE_YAML, .s = p->choices[v->choice]};
    if (p->type == DPT_SPACE_INT)
        return (dpt_value){.kind = DPT_VALUE_INT, .i = (int64_t)v->num};
    return (dpt_value){.kind = DPT_VALUE_DOUBLE, .d = v->num};
}

int dpt_space_apply(const dpt_config *base, const dpt_space_value *v, dpt_config *out,
                    dpt_error *err)
{
    memcpy(out, base, sizeof *out);
    const dpt_config *c = base;
    /* pass 0: model.hidden_layers (it copies the first hidden width), 1: the rest, 2: the width */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < c->search.n_params; i++) {
            const char *key = c->search.params[i].key;
            int when = strcmp(key, "model.hidden_layers") == 0  ? 0
                       : strcmp(key, "model.hidden_width") == 0 ? 2
                                                                : 1;
            if (when != pass)
                continue;
            dpt_value value = trial_value(&c->search.params[i], &v[i]);
            dpt_error inner;
            if (dpt_config_set_value(out, key, &value, &inner) != DPT_OK) {
                /* a trial's message names the value as an override would: --set KEY=VALUE */
                char text[DPT_SEARCH_CHOICE_MAX + 32];
                int is_string;
                dpt_space_format(c, i, v, text, sizeof text, &is_string);
                return dpt_error_set(err, inner.code, "--set %s=%s: %s", key, text, inner.msg);
            }
        }
    }
    return dpt_config_validate(out, err);
}

int dpt_space_from_config(const dpt_config *cfg, dpt_space_value *v, char *why, size_t n)
{
    for (int i = 0; i < cfg->search.n_params; i++) {
        const dpt_space_param *p = &cfg->search.params[i];
        char text[DPT_PATH_MAX];
        int is_string;
        if (dpt_config_get(cfg, p->key, text, sizeof text, &is_string) != 0 ||
            dpt_space_parse(cfg, i, text, p->type == DPT_SPACE_CATEGORICAL, v) != 0) {
            if (p->type == DPT_SPACE_CATEGORICAL)
                snprintf(why, n, "%s is %.64s in the config, not one of the choices", p->key,
                         text);
            else
                snprintf(why, n, "%s is %.64s in the config, outside [%g, %g]%s", p->key, text,
                         p->low, p->high, p->type == DPT_SPACE_INT ? " or not an integer" : "");
            return -1;
        }
    }
    return 0;
}
