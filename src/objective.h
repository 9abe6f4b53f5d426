/* Built-in test objectives for the hyperparameter search: Branin (2-D) and Hartmann6 (6-D), the
 * standard benchmarks of the Bayesian optimization literature (Jones 2001; Snoek et al. 2012).
 * Both take a point of the unit cube, so the search sees every objective the same way. */
#ifndef DPT_OBJECTIVE_H
#define DPT_OBJECTIVE_H

/* Known global minima (Surjanovic & Bingham, Virtual Library of Simulation Experiments). */
#define DPT_OBJECTIVE_BRANIN_MIN 0.39788735772973816
#define DPT_OBJECTIVE_HARTMANN6_MIN (-3.3223680114155147)

typedef enum { DPT_OBJECTIVE_BRANIN = 0, DPT_OBJECTIVE_HARTMANN6 = 1 } dpt_objective_kind;

/* Branin on [-5, 10] x [0, 15], reached from u (2) in [0,1]^2 by x1 = -5 + 15 u0, x2 = 15 u1.
 * Three global minima, at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475). */
double dpt_objective_branin(const double *u);

/* Hartmann6 on u (6) in [0,1]^6; one global minimum near
 * (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573). */
double dpt_objective_hartmann6(const double *u);

/* By kind: input dimension, value at u (dim) in the unit cube, known minimum. */
int dpt_objective_dim(dpt_objective_kind kind);
double dpt_objective_eval(dpt_objective_kind kind, const double *u);
double dpt_objective_min(dpt_objective_kind kind);

/* The same functions in their natural coordinates x (dim), as the search's objective.x1..x6 give
 * them: Branin's x1 in [-5, 10] and x2 in [0, 15], Hartmann6's in [0, 1]^6. */
double dpt_objective_eval_natural(dpt_objective_kind kind, const double *x);

/* The duration model's scale at x (natural coordinates): 0.5 + u1, u1 the first coordinate
 * mapped to [0, 1], so evaluations in one half of the space take longer, as wide or deep networks
 * do in a real search. */
double dpt_objective_duration_scale(dpt_objective_kind kind, const double *x);

/* "branin" or "hartmann6" -> kind; returns 0, or -1 for an unknown name. */
int dpt_objective_parse(const char *name, dpt_objective_kind *kind);
const char *dpt_objective_name(dpt_objective_kind kind);

#endif
