/* Branin and Hartmann6 on the unit cube (definitions as in Surjanovic & Bingham's Virtual Library
 * of Simulation Experiments), the objectives `objective.function` selects instead of training, so
 * that the search can be tested and benchmarked in milliseconds against known optima. */
#include "objective.h"

#include <math.h>
#include <string.h>

double dpt_objective_branin(const double *u)
{
    const double pi = 3.14159265358979323846;
    const double b = 5.1 / (4.0 * pi * pi), c = 5.0 / pi, t = 1.0 / (8.0 * pi);
    double x1 = -5.0 + 15.0 * u[0], x2 = 15.0 * u[1];
    double q = x2 - b * x1 * x1 + c * x1 - 6.0;
    return q * q + 10.0 * (1.0 - t) * cos(x1) + 10.0;
}

double dpt_objective_hartmann6(const double *u)
{
    static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
    static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                   {0.05, 10, 17, 0.1, 8, 14},
                                   {3, 3.5, 1.7, 10, 17, 8},
                                   {17, 8, 0.05, 10, 0.1, 14}};
    static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                   {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                   {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                   {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
    double f = 0.0;
    for (int i = 0; i < 4; i++) {
        double s = 0.0;
        for (int j = 0; j < 6; j++) {
            double d = u[j] - P[i][j];
            s += A[i][j] * d * d;
        }
        f -= alpha[i] * exp(-s);
    }
    return f;
}

int dpt_objective_dim(dpt_objective_kind kind)
{
    return kind == DPT_OBJECTIVE_BRANIN ? 2 : 6;
}

double dpt_objective_eval(dpt_objective_kind kind, const double *u)
{
    return kind == DPT_OBJECTIVE_BRANIN ? dpt_objective_branin(u) : dpt_objective_hartmann6(u);
}

double dpt_objective_eval_natural(dpt_objective_kind kind, const double *x)
{
    if (kind == DPT_OBJECTIVE_BRANIN) {
        double u[2] = {(x[0] + 5.0) / 15.0, x[1] / 15.0};
        return dpt_objective_branin(u);
    }
    return dpt_objective_hartmann6(x);
}

double dpt_objective_min(dpt_objective_kind kind)
{
    return kind == DPT_OBJECTIVE_BRANIN ? DPT_OBJECTIVE_BRANIN_MIN : DPT_OBJECTIVE_HARTMANN6_MIN;
}

int dpt_objective_parse(const char *name, dpt_objective_kind *kind)
{
    if (strcmp(name, "branin") == 0) {
        *kind = DPT_OBJECTIVE_BRANIN;
        return 0;
    }
    if (strcmp(name, "hartmann6") == 0) {
        *kind = DPT_OBJECTIVE_HARTMANN6;
        return 0;
    }
    return -1;
}

const char *dpt_objective_name(dpt_objective_kind kind)
{
    return kind == DPT_OBJECTIVE_BRANIN ? "branin" : "hartmann6";
}

double dpt_objective_duration_scale(dpt_objective_kind kind, const double *x)
{
    double u = kind == DPT_OBJECTIVE_BRANIN ? (x[0] + 5.0) / 15.0 : x[0];
    return 0.5 + fmin(fmax(u, 0.0), 1.0);
}
