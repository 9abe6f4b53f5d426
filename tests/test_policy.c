/* Tests of the stopping rules of src/policy.c: asynchronous successive halving's rungs and its
 * promotion rule against hand-computed cases (rung values given, continue or stop expected), and
 * the rule as the search asks it after each epoch, with trials arriving one by one. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "policy.h"
#include "trial_log.h"

/* The defaults with asha: grace epochs, eta, epochs. */
static void asha_config(dpt_config *cfg, int grace, int eta, int epochs)
{
    dpt_error err;
    char a[64];
    dpt_config_defaults(cfg);
    cr_assert_eq(dpt_config_set(cfg, "search.early_stopping.rule=asha", &err), DPT_OK, "%s",
                 err.msg);
    snprintf(a, sizeof a, "search.early_stopping.grace_epochs=%d", grace);
    cr_assert_eq(dpt_config_set(cfg, a, &err), DPT_OK, "%s", err.msg);
    snprintf(a, sizeof a, "search.early_stopping.eta=%d", eta);
    cr_assert_eq(dpt_config_set(cfg, a, &err), DPT_OK, "%s", err.msg);
    snprintf(a, sizeof a, "train.epochs=%d", epochs);
    cr_assert_eq(dpt_config_set(cfg, a, &err), DPT_OK, "%s", err.msg);
}

/* A finished trial (status given) whose curve is the n values given. */
static void trial(dpt_trial *t, int status, int n, const double *curve)
{
    memset(t, 0, sizeof *t);
    t->status = status;
    t->n_curve = t->epochs = n;
    t->objective = INFINITY;
    for (int e = 0; e < n; e++) {
        t->curve[e] = curve[e];
        if (curve[e] < t->objective)
            t->objective = curve[e];
    }
}

Test(asha, rungs_at_grace_times_eta_powers_below_the_last_epoch)
{
    dpt_config cfg;
    asha_config(&cfg, 1, 3, 20);  /* rungs 1, 3, 9; 27 is past the last epoch */
    int expect[21] = {0};
    for (int e = 0; e <= 20; e++)
        expect[e] = -1;
    expect[1] = 0, expect[3] = 1, expect[9] = 2;
    for (int e = 1; e <= 20; e++)
        cr_expect_eq(dpt_policy_rung(&cfg, e), expect[e], "epoch %d", e);

    asha_config(&cfg, 2, 2, 8);  /* rungs 2, 4; 8 is the last epoch: training ends there */
    cr_expect_eq(dpt_policy_rung(&cfg, 2), 0);
    cr_expect_eq(dpt_policy_rung(&cfg, 4), 1);
    cr_expect_eq(dpt_policy_rung(&cfg, 8), -1);
    cr_expect_eq(dpt_policy_rung(&cfg, 6), -1);

    asha_config(&cfg, 0, 3, 10);  /* grace 0 counts as 1 */
    cr_expect_eq(dpt_policy_rung(&cfg, 1), 0);
    cr_expect_eq(dpt_policy_rung(&cfg, 3), 1);

    cfg.search.stop_rule = DPT_STOP_MEDIAN;  /* no rungs under another rule */
    cr_expect_eq(dpt_policy_rung(&cfg, 3), -1);
}

Test(asha, promotion_against_hand_computed_cases)
{
    /* 5 others at the rung, eta 3: m = 6 with the newcomer, floor(6/3) = 2 may continue */
    const double rung[] = {0.30, 0.10, 0.50, 0.20, 0.40};
    cr_expect(dpt_policy_asha_continues(rung, 5, 0.05, 3), "best of 6: continues");
    cr_expect(dpt_policy_asha_continues(rung, 5, 0.15, 3), "second of 6: continues");
    cr_expect(!dpt_policy_asha_continues(rung, 5, 0.25, 3), "third of 6: stops");
    cr_expect(!dpt_policy_asha_continues(rung, 5, 0.60, 3), "last of 6: stops");
    /* eta 2: floor(6/2) = 3 continue */
    cr_expect(dpt_policy_asha_continues(rung, 5, 0.25, 2), "third of 6, eta 2: continues");
    cr_expect(!dpt_policy_asha_continues(rung, 5, 0.35, 2), "fourth of 6, eta 2: stops");
    /* the first to reach a rung continues whatever its value; below m = 2 eta only the best of
     * those so far: the second at the rung continues only if it beats the first */
    cr_expect(dpt_policy_asha_continues(NULL, 0, 9.0, 3), "first at the rung");
    cr_expect(!dpt_policy_asha_continues(rung, 1, 9.0, 3), "second at the rung, worse: stops");
    cr_expect(dpt_policy_asha_continues(rung, 1, 0.29, 3), "second at the rung, better");
    cr_expect(!dpt_policy_asha_continues(rung, 3, 0.15, 4), "second best of 4, eta 4: stops");
    cr_expect(dpt_policy_asha_continues(rung, 3, 0.09, 4), "best of 4, eta 4: continues");
    /* eta 4, m = 8: floor(8/4) = 2 continue */
    const double eight[] = {0.30, 0.10, 0.50, 0.20, 0.40, 0.60, 0.70};
    cr_expect(dpt_policy_asha_continues(eight, 7, 0.15, 4), "second of 8, eta 4: continues");
    cr_expect(!dpt_policy_asha_continues(eight, 7, 0.25, 4), "third of 8, eta 4: stops");
    /* the eta-th: only the best of eta continues */
    cr_expect(!dpt_policy_asha_continues(rung, 2, 0.20, 3), "third of 3, second best: stops");
    cr_expect(dpt_policy_asha_continues(rung, 2, 0.05, 3), "third of 3, best: continues");
    /* a tie is not better: equal to the best of 3 continues */
    const double tied[] = {0.2, 0.2};
    cr_expect(dpt_policy_asha_continues(tied, 2, 0.2, 3));
}

Test(asha, should_stop_at_rungs_only_against_the_trials_that_reached_them)
{
    dpt_config cfg;
    asha_config(&cfg, 1, 2, 8);  /* rungs 1, 2, 4 */
    dpt_trial hist[4], run;
    /* the history: best-so-far at epoch 1: 0.5, 0.4, 0.9; at epoch 2: 0.3, 0.35 (the third was
     * stopped at epoch 1; the fourth diverged and counts nowhere) */
    trial(&hist[0], DPT_TRIAL_OK, 8, (double[]){0.5, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1});
    trial(&hist[1], DPT_TRIAL_STOPPED_EARLY, 2, (double[]){0.4, 0.35});
    trial(&hist[2], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.9});
    trial(&hist[3], DPT_TRIAL_DIVERGED, 1, (double[]){0.01});
    hist[3].objective = NAN;

    /* epoch 1: 3 others + it = 4, floor(4/2) = 2 continue: 0.45 has one better (0.4) */
    trial(&run, DPT_TRIAL_OK, 1, (double[]){0.45});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run));
    trial(&run, DPT_TRIAL_OK, 1, (double[]){0.6});  /* 0.4, 0.5 better */
    cr_expect(dpt_policy_should_stop(&cfg, hist, 4, &run));
    /* epoch 2: best so far 0.32 against 0.3, 0.35: m = 3, floor(3/2) = 1, one better: stops */
    trial(&run, DPT_TRIAL_OK, 2, (double[]){0.6, 0.32});
    cr_expect(dpt_policy_should_stop(&cfg, hist, 4, &run));
    trial(&run, DPT_TRIAL_OK, 2, (double[]){0.6, 0.25});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run));
    /* epoch 3 is no rung: the worst value continues */
    trial(&run, DPT_TRIAL_OK, 3, (double[]){0.9, 0.9, 0.9});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run));
    /* epoch 4: only hist[0] reached it (0.2): m = 2 = eta, floor(2/2) = 1 continues: 0.25 has
     * one better and stops; 0.15 continues */
    trial(&run, DPT_TRIAL_OK, 4, (double[]){0.9, 0.9, 0.9, 0.25});
    cr_expect(dpt_policy_should_stop(&cfg, hist, 4, &run));
    trial(&run, DPT_TRIAL_OK, 4, (double[]){0.9, 0.9, 0.9, 0.15});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run));
    /* epoch 4 with the history's 0.2 and nothing better at the rung: m = 2, max(1, 1) = 1 */
    trial(&run, DPT_TRIAL_OK, 4, (double[]){0.9, 0.9, 0.9, 0.2});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run), "a tie is not better");
    /* with no history, the first trial to reach each rung continues */
    trial(&run, DPT_TRIAL_OK, 4, (double[]){0.9, 0.9, 0.9, 0.9});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 0, &run));

    /* the median rule is unchanged by asha's keys: stop only past grace, against the median */
    cfg.search.stop_rule = DPT_STOP_MEDIAN;
    cfg.search.stop_min_trials = 2;
    trial(&run, DPT_TRIAL_OK, 2, (double[]){0.9, 0.9});
    cr_expect(dpt_policy_should_stop(&cfg, hist, 4, &run), "worse than the median (0.325)");
    trial(&run, DPT_TRIAL_OK, 2, (double[]){0.9, 0.31});
    cr_expect(!dpt_policy_should_stop(&cfg, hist, 4, &run), "better than the median (0.325)");
}

/* asha under async: rank 0 adds the rung values of trials still running (not in the history) to
 * those of the finished ones. Rungs 1, 2, 4 (grace 1, eta 2, 8 epochs). */
Test(asha, decision_counts_running_trials_that_reached_the_rung)
{
    dpt_config cfg;
    asha_config(&cfg, 1, 2, 8);
    dpt_trial hist[2], run;
    trial(&hist[0], DPT_TRIAL_OK, 8, (double[]){0.5, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1});
    trial(&hist[1], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.9});
    /* epoch 1, value 0.45: the history alone has 0.5, 0.9: m = 3, floor(3/2) = 1 may be better,
     * none is: continues */
    trial(&run, DPT_TRIAL_OK, 1, (double[]){0.45});
    cr_expect(!dpt_policy_asha_stop_seen(&cfg, hist, 2, NULL, 0, &run));
    /* with two running trials at 0.4 and 0.42: m = 5, floor(5/2) = 2 may be better, 2 are (0.4,
     * 0.42): 2 < 2 fails, it stops */
    const double running[] = {0.4, 0.42};
    cr_expect(dpt_policy_asha_stop_seen(&cfg, hist, 2, running, 2, &run));
    /* with one of them: m = 4, floor(4/2) = 2, one better: continues */
    cr_expect(!dpt_policy_asha_stop_seen(&cfg, hist, 2, running, 1, &run));
    /* epoch 2, value 0.25 (its best through epoch 2): the history has only hist[0] there (0.3).
     * With a running trial at 0.2: m = 3, floor(3/2) = 1, one better (0.2): 1 < 1 fails, stops.
     * With a running 0.4 instead: none better, continues. */
    trial(&run, DPT_TRIAL_OK, 2, (double[]){0.6, 0.25});
    const double r2[] = {0.2};
    cr_expect(dpt_policy_asha_stop_seen(&cfg, hist, 2, r2, 1, &run), "0.2 beats 0.25");
    const double r3[] = {0.4};
    cr_expect(!dpt_policy_asha_stop_seen(&cfg, hist, 2, r3, 1, &run), "none beats 0.25");
    /* epoch 3 is no rung: never stops */
    trial(&run, DPT_TRIAL_OK, 3, (double[]){0.9, 0.9, 0.9});
    cr_expect(!dpt_policy_asha_stop_seen(&cfg, hist, 2, running, 2, &run));
    cr_expect_float_eq(dpt_policy_rung_value(&hist[0], 2), 0.3, 1e-15);
}

/* asha with promote: a trial stopped at a rung is promoted once, counted among everything that
 * reached the rung since, it ranks in the top max(1, floor(m / eta)). Grace 1, eta 3, 27 epochs:
 * rungs 1, 3, 9. Seed 13's case from docs/search.md: stopped at 0.2031 against 0.2030 and 0.1973
 * (m = 3, top 1, one better). */
Test(asha, stopped_trial_is_promoted_when_later_arrivals_put_it_in_the_top)
{
    dpt_config cfg;
    asha_config(&cfg, 1, 3, 27);
    dpt_trial hist[8];
    trial(&hist[0], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.2030});
    trial(&hist[1], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.1973});
    trial(&hist[2], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.2031});
    /* as it arrived: m = 3, top 1, 2 better: not promotable */
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 3, 2, NULL, 0));
    /* hist[1] (the best at the rung, stopped only in this made-up history) is: none better */
    cr_expect(dpt_policy_asha_promotable(&cfg, hist, 3, 1, NULL, 0));
    /* three worse arrive: m = 6, top 2, still 2 better */
    trial(&hist[3], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.25});
    trial(&hist[4], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.26});
    trial(&hist[5], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){0.27});
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 6, 2, NULL, 0));
    /* two more worse ones, one of them still running (a rung report): m = 8, top 2: no; a third
     * (m = 9, top 3, 2 better): promotable */
    trial(&hist[6], DPT_TRIAL_OK, 27, (double[]){0.30, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
                                                 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2,
                                                 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2});
    const double running[] = {0.31, 0.32};
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 7, 2, running, 1));
    cr_expect(dpt_policy_asha_promotable(&cfg, hist, 7, 2, running, 2));
    /* its value at the rung is its best through the rung: only the rung's epoch counts */
    cr_expect_float_eq(dpt_policy_rung_value(&hist[6], 1), 0.30, 1e-15);
    /* what is not a stopped trial at a rung is never promoted: a completed trial, one stopped
     * off a rung (epoch 2), one with no finite value */
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 7, 6, NULL, 0));
    trial(&hist[7], DPT_TRIAL_STOPPED_EARLY, 2, (double[]){0.01, 0.01});
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 8, 7, NULL, 0));
    trial(&hist[7], DPT_TRIAL_STOPPED_EARLY, 1, (double[]){NAN});
    hist[7].objective = NAN;
    cr_expect(!dpt_policy_asha_promotable(&cfg, hist, 8, 7, NULL, 0));
}

/* How the GP reads a trial stopped at a rung under asha: its value corrected to the last epoch by
 * the median gap (final objective - value after the rung's epoch) of the completed trials. */
Test(asha, fidelity_gap_is_the_median_over_completed_trials)
{
    dpt_config cfg;
    asha_config(&cfg, 1, 3, 9);
    dpt_error err;
    cr_assert_eq(dpt_config_set(&cfg, "search.early_stopping.fidelity=median_gap", &err), DPT_OK);
    dpt_trial h[6];
    /* completed (9 epochs): epoch-1 values 0.50, 0.40, 0.60, 0.45; epoch-3 values 0.30, 0.35,
     * 0.45, 0.25; finals (best of the curve) 0.20, 0.30, 0.40, 0.20 */
    const double c0[9] = {0.50, 0.40, 0.30, 0.28, 0.26, 0.24, 0.22, 0.21, 0.20};
    const double c1[9] = {0.40, 0.38, 0.35, 0.34, 0.33, 0.32, 0.31, 0.30, 0.30};
    const double c2[9] = {0.60, 0.50, 0.45, 0.44, 0.43, 0.42, 0.41, 0.40, 0.40};
    const double c3[9] = {0.45, 0.30, 0.25, 0.24, 0.23, 0.22, 0.21, 0.20, 0.20};
    const double s4[1] = {0.10}, s5[3] = {0.90, 0.80, 0.70};  /* stopped: not counted */
    trial(&h[0], DPT_TRIAL_OK, 9, c0);
    trial(&h[1], DPT_TRIAL_OK, 9, c1);
    trial(&h[2], DPT_TRIAL_STOPPED_EARLY, 1, s4);
    trial(&h[3], DPT_TRIAL_OK, 9, c2);
    trial(&h[4], DPT_TRIAL_STOPPED_EARLY, 3, s5);
    trial(&h[5], DPT_TRIAL_OK, 9, c3);
    int used;
    /* two completed trials: fewer than DPT_FIDELITY_GAP_MIN (3), the raw value (gap 0) */
    cr_expect_eq(dpt_policy_fidelity_gap(&cfg, h, 3, 1, &used), 0.0);
    cr_expect_eq(used, 0);
    /* three: gaps at epoch 1 -0.30, -0.10, -0.20: median -0.20 */
    cr_expect(fabs(dpt_policy_fidelity_gap(&cfg, h, 5, 1, &used) + 0.20) < 1e-12);
    cr_expect_eq(used, 3);
    /* four: -0.30, -0.10, -0.20, -0.25: median (-0.25 - 0.20) / 2 */
    cr_expect(fabs(dpt_policy_fidelity_gap(&cfg, h, 6, 1, &used) + 0.225) < 1e-12);
    cr_expect_eq(used, 4);
    /* at epoch 3: -0.10, -0.05, -0.05, -0.05: median -0.05 */
    cr_expect(fabs(dpt_policy_fidelity_gap(&cfg, h, 6, 3, &used) + 0.05) < 1e-12);
    cr_expect_eq(used, 4);
    /* fidelity: raw (the default) adds nothing */
    cr_assert_eq(dpt_config_set(&cfg, "search.early_stopping.fidelity=raw", &err), DPT_OK);
    cr_expect_eq(dpt_policy_fidelity_gap(&cfg, h, 6, 1, &used), 0.0);
    cr_expect_eq(used, 0);
    cr_assert_eq(dpt_config_set(&cfg, "search.early_stopping.fidelity=median_gap", &err), DPT_OK);
    /* the median rule's stopped trials enter the GP raw, as before */
    cr_assert_eq(dpt_config_set(&cfg, "search.early_stopping.rule=median", &err), DPT_OK);
    cr_expect_eq(dpt_policy_fidelity_gap(&cfg, h, 6, 1, &used), 0.0);
    cr_expect_eq(used, 0);
}
