/* The search space of a hyperparameter search (search.space in the config): maps a trial's
 * parameter values to and from the unit cube the Gaussian process works in (log parameters in
 * log space, integers rounded after the proposal, categoricals one-hot), draws random and grid
 * points, and applies a trial's values to a copy of the config. */
#ifndef DPT_SPACE_H
#define DPT_SPACE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* One parameter's value in a trial. */
typedef struct {
    double num;   /* uniform, log_uniform, int (then integral) */
    int choice;   /* categorical: index into choices[] */
} dpt_space_value;

/* Unit-cube dimensions of the space: one per numeric parameter, one per choice of a
 * categorical (one-hot). */
int dpt_space_dim(const dpt_config *cfg);

/* u (dim) in [0,1]^dim -> values (n_params): numbers rounded to 6 significant digits (so configs
 * and logs read 0.0123457, not 17 digits) and clamped to [low, high], integers rounded,
 * categoricals by the largest coordinate of their one-hot block. */
void dpt_space_decode(const dpt_config *cfg, const double *u, dpt_space_value *v);

/* values -> u (dim): the point of the cube that decodes to them (categoricals one-hot). */
void dpt_space_encode(const dpt_config *cfg, const dpt_space_value *v, double *u);

/* A uniform random point of the cube, decoded: a pure function of (seed, counter). */
void dpt_space_random(const dpt_config *cfg, uint64_t seed, uint64_t counter, dpt_space_value *v);

/* Grid: search.grid_points values per continuous parameter (ends included), every integer of a
 * range with at most that many (else that many spread over it), every choice of a categorical.
 * Size (saturating at INT64_MAX) and the point with a given index (the last parameter varies
 * fastest). */
int64_t dpt_space_grid_size(const dpt_config *cfg);
void dpt_space_grid_point(const dpt_config *cfg, int64_t index, dpt_space_value *v);

/* Parameter i's value as YAML/JSON text ("0.0123457", "256", "relu"); *is_string is 1 for a
 * categorical choice (JSON needs quotes). */
void dpt_space_format(const dpt_config *cfg, int i, const dpt_space_value *v, char *out, size_t n,
                      int *is_string);

/* Reads parameter i's value back from that text (resuming from trials.jsonl): a number within
 * [low, high] (an integer for int), or one of the choices. Returns 0, or -1. */
int dpt_space_parse(const dpt_config *cfg, int i, const char *text, int is_string,
                    dpt_space_value *v);

/* The values cfg itself has for the space's keys (the first hidden width for
 * model.hidden_width). Returns 0, or -1 with the reason in why when one is outside the space. */
int dpt_space_from_config(const dpt_config *cfg, dpt_space_value *v, char *why, size_t n);

/* out = base with every parameter set (through dpt_config_set_value, so with the same validation
 * as a YAML file; model.hidden_layers before model.hidden_width), then dpt_config_validate.
 * DPT_EUSAGE with the reason ("--set KEY=VALUE: ..." when one value is refused) when the
 * combination is not a valid config. out may not alias base. */
int dpt_space_apply(const dpt_config *base, const dpt_space_value *v, dpt_config *out,
                    dpt_error *err);

#endif
