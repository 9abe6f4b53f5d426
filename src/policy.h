/* The search's policy: which configuration a trial tries (random, grid, or Bayesian optimization
 * through the GP of src/gp.h) and when a running trial stops (the median rule or asynchronous
 * successive halving). Pure functions of the config, the seed, the trial id and the history, so
 * a resumed search decides what the uninterrupted one would have. */
#ifndef DPT_POLICY_H
#define DPT_POLICY_H

#include "config.h"
#include "error.h"
#include "space.h"
#include "trial_log.h"

/* Trials the search runs: search.trials, or the grid's size when that is smaller. */
int dpt_policy_budget(const dpt_config *cfg);

/* What the policy needs of the config, checked before the search starts: the config's own values
 * inside the space (search.start_from_config), a space the GP can model (bayes). DPT_EUSAGE. */
int dpt_policy_check(const dpt_config *cfg, dpt_error *err);

/* Rank 0: the values of trial `id`, given the history and the n_pending trials still running
 * (the earlier ones of a sync round, or the other groups' under async; the GP averages EI over
 * sampled outcomes of them). */
void dpt_policy_propose(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                        const dpt_space_value (*pending)[DPT_SEARCH_MAX_PARAMS], int n_pending,
                        int id, dpt_space_value *out);

/* After an epoch of trial `run` (its curve so far): 1 when the stopping rule (median or asha)
 * stops it. */
int dpt_policy_should_stop(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                           const dpt_trial *run);

/* asha: the rung index k when epoch e (1-based) is a rung, e = max(1, grace) * eta^k below
 * train.epochs; -1 otherwise, or when the rule is not asha. */
int dpt_policy_rung(const dpt_config *cfg, int e);

/* asha's promotion at a rung: 1 when a trial of value `mine` (lower is better) continues, given
 * the values of the n other trials known to have reached the rung: when it is in the top
 * max(1, floor((n + 1) / eta)) of them all (ties are not better). */
int dpt_policy_asha_continues(const double *rung, int n, double mine, int eta);

/* A trial's value at rung epoch e: its best objective through epoch e (as the median rule). */
double dpt_policy_rung_value(const dpt_trial *t, int e);

/* asha at the rung epoch run->n_curve, with the n_running values of trials that reached the rung
 * and are not in the history yet (still running, as rank 0 learns under the async schedule):
 * 1 when run stops. 0 off a rung. */
int dpt_policy_asha_stop_seen(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                              const double *running, int n_running, const dpt_trial *run);

/* asha with early_stopping.promote: 1 when hist[k], stopped at a rung (status stopped_early, its
 * curve ending at the rung's epoch e), is now in the top max(1, floor(m / eta)) of the m trials
 * known to have reached e: the others of the history with a curve that long, and n_running values
 * of trials running past e (rank 0's rung reports). The rule a trial arriving at the rung is
 * judged by, asked again as more trials arrive (Li et al.'s ASHA promotes this way). */
int dpt_policy_asha_promotable(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int k,
                               const double *running, int n_running);

/* asha: how the GP reads a trial stopped at a rung. Its value at epoch e is corrected to the last
 * epoch by the median, over the trials that completed every epoch (status ok), of (final
 * objective - objective after epoch e); returns that median and sets *n_used to the number of
 * completed trials. With fewer than DPT_FIDELITY_GAP_MIN of them, a rule other than asha (the
 * median rule's stopped trials enter the GP raw, as before) or search.early_stopping.fidelity:
 * raw (the default: the correction did not help on the Fashion-MNIST benchmark, docs/search.md),
 * returns 0 and *n_used = 0. */
#define DPT_FIDELITY_GAP_MIN 3
double dpt_policy_fidelity_gap(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int e,
                               int *n_used);

#endif
