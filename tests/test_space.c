/* Tests of the search space (src/space.c) and the search sections of the config (src/config.c):
 * encode/decode round trips for every parameter type, the scales (log, integer rounding,
 * one-hot), random and grid points, text round trips for resuming, applying values to a config
 * (derived depth/width keys included), the error messages of search.space, and the trial log's
 * lines (src/trial_log.c, written with src/json.c) read back to the same record. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "json.h"
#include "space.h"
#include "trial_log.h"

/* A config with the given space (YAML mapping text) on the defaults. */
static void with_space(dpt_config *cfg, const char *space)
{
    char assignment[4096];
    dpt_error err;
    dpt_config_defaults(cfg);
    snprintf(assignment, sizeof assignment, "search.space=%s", space);
    cr_assert_eq(dpt_config_set(cfg, assignment, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(dpt_config_validate(cfg, &err), DPT_OK, "%s", err.msg);
}

static const char *every_type =
    "{train.lr: {type: log_uniform, low: 1.0e-3, high: 0.5},"
    " train.momentum: {type: uniform, low: 0.5, high: 0.99},"
    " \"model.layers[1]\": {type: int, low: 64, high: 1024, log: true},"
    " train.epochs: {type: int, low: 1, high: 5},"
    " model.activation: {type: categorical, choices: [relu, tanh, gelu]}}";

Test(space, dims_count_one_per_number_and_one_per_choice)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    cr_assert_eq(cfg.search.n_params, 5);
    cr_assert_eq(dpt_space_dim(&cfg), 4 + 3);
}

/* decode(encode(v)) == v for values of every type, at the ends and inside. */
Test(space, encode_decode_round_trip_every_type)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    const double lrs[] = {1.0e-3, 0.0123457, 0.5}, moms[] = {0.5, 0.777, 0.99};
    const double widths[] = {64, 65, 100, 1023, 1024}, epochs[] = {1, 3, 5};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 3; c++) {
                dpt_space_value v[DPT_SEARCH_MAX_PARAMS] = {0}, w[DPT_SEARCH_MAX_PARAMS];
                v[0].num = lrs[a];
                v[1].num = moms[a];
                v[2].num = widths[b];
                v[3].num = epochs[c];
                v[4].choice = c;
                double u[16];
                dpt_space_encode(&cfg, v, u);
                for (int d = 0; d < dpt_space_dim(&cfg); d++)
                    cr_assert(u[d] >= 0.0 && u[d] <= 1.0, "u[%d] = %g outside the cube", d, u[d]);
                dpt_space_decode(&cfg, u, w);
                for (int i = 0; i < 4; i++) /* 6 significant digits: the values above have fewer */
                    cr_assert_float_eq(w[i].num, v[i].num, 1e-12 * fabs(v[i].num),
                                       "param %d: %g -> %g", i, v[i].num, w[i].num);
                cr_assert_eq(w[4].choice, c);
            }
}

Test(space, scales_log_integer_and_one_hot)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    double u[7] = {0.5, 0.5, 0.5, 0.5, 0.1, 0.9, 0.3};
    dpt_space_value v[DPT_SEARCH_MAX_PARAMS];
    dpt_space_decode(&cfg, u, v);
    /* log_uniform: the middle of the cube is the geometric mean, sqrt(1e-3 * 0.5) */
    cr_assert_float_eq(v[0].num, sqrt(1e-3 * 0.5), 1e-6);
    cr_assert_float_eq(v[1].num, 0.745, 1e-12);
    /* int log over [63.5, 1024.5]: exp of the mean of the logs, rounded */
    cr_assert_eq(v[2].num, round(sqrt(63.5 * 1024.5)));
    cr_assert_eq(v[3].num, 3.0);
    cr_assert_eq(v[4].choice, 1, "the largest coordinate of the one-hot block wins");
    /* the ends of the cube reach the ends of every range, clamped */
    double lo[7] = {0}, hi[7] = {1, 1, 1, 1, 1, 1, 1};
    dpt_space_decode(&cfg, lo, v);
    cr_assert_eq(v[0].num, 1e-3);
    cr_assert_eq(v[2].num, 64.0);
    cr_assert_eq(v[3].num, 1.0);
    dpt_space_decode(&cfg, hi, v);
    cr_assert_eq(v[0].num, 0.5);
    cr_assert_eq(v[2].num, 1024.0);
    cr_assert_eq(v[3].num, 5.0);
    /* numbers are rounded to 6 significant digits */
    double odd[7] = {0.123456789, 0.123456789, 0, 0, 1, 0, 0};
    dpt_space_decode(&cfg, odd, v);
    char text[64];
    snprintf(text, sizeof text, "%.17g", v[1].num);
    cr_assert_eq(v[1].num, strtod("0.560494", NULL), "got %s", text);
}

/* Random points are uniform over each range: every integer of train.epochs and every choice
 * about equally often (6000 draws: each count within 4.5 standard deviations of 1200 / 2000). */
Test(space, random_points_cover_ranges_uniformly)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    int epochs[6] = {0}, choices[3] = {0};
    for (int i = 0; i < 6000; i++) {
        dpt_space_value v[DPT_SEARCH_MAX_PARAMS];
        dpt_space_random(&cfg, 11, (uint64_t)i, v);
        cr_assert(v[0].num >= 1e-3 && v[0].num <= 0.5);
        epochs[(int)v[3].num]++;
        choices[v[4].choice]++;
    }
    for (int e = 1; e <= 5; e++)
        cr_assert(abs(epochs[e] - 1200) < 4.5 * sqrt(6000 * 0.2 * 0.8), "epochs=%d drawn %d times",
                  e, epochs[e]);
    for (int c = 0; c < 3; c++)
        cr_assert(abs(choices[c] - 2000) < 4.5 * sqrt(6000 / 3.0 * 2 / 3), "choice %d drawn %d times",
                  c, choices[c]);
    /* a pure function of (seed, counter) */
    dpt_space_value a[DPT_SEARCH_MAX_PARAMS], b[DPT_SEARCH_MAX_PARAMS];
    dpt_space_random(&cfg, 11, 42, a);
    dpt_space_random(&cfg, 11, 42, b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
}

Test(space, grid_enumerates_every_combination)
{
    dpt_config cfg;
    with_space(&cfg, "{train.lr: {type: log_uniform, low: 0.001, high: 0.1},"
                     " train.epochs: {type: int, low: 2, high: 4},"
                     " model.activation: {type: categorical, choices: [relu, tanh]}}");
    cr_assert_eq(cfg.search.grid_points, 3);
    cr_assert_eq(dpt_space_grid_size(&cfg), 3 * 3 * 2);
    int seen[3][5][2] = {{{0}}};
    for (int64_t i = 0; i < 18; i++) {
        dpt_space_value v[DPT_SEARCH_MAX_PARAMS];
        dpt_space_grid_point(&cfg, i, v);
        int l = fabs(v[0].num - 0.001) < 1e-12 ? 0 : fabs(v[0].num - 0.01) < 1e-12 ? 1
                : fabs(v[0].num - 0.1) < 1e-12 ? 2 : -1;
        cr_assert(l >= 0, "lr %g is not on the log grid 0.001, 0.01, 0.1", v[0].num);
        seen[l][(int)v[1].num][v[2].choice]++;
    }
    for (int l = 0; l < 3; l++)
        for (int e = 2; e <= 4; e++)
            for (int c = 0; c < 2; c++)
                cr_assert_eq(seen[l][e][c], 1, "combination (%d, %d, %d) seen %d times", l, e, c,
                             seen[l][e][c]);
}

/* The text in trials.jsonl reads back to the same value (resume depends on it). */
Test(space, format_parse_round_trip)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    for (int i = 0; i < 200; i++) {
        dpt_space_value v[DPT_SEARCH_MAX_PARAMS], w[DPT_SEARCH_MAX_PARAMS];
        dpt_space_random(&cfg, 3, (uint64_t)i, v);
        for (int p = 0; p < cfg.search.n_params; p++) {
            char text[128];
            int is_string;
            dpt_space_format(&cfg, p, v, text, sizeof text, &is_string);
            cr_assert_eq(is_string, p == 4);
            cr_assert_eq(dpt_space_parse(&cfg, p, text, is_string, w), 0, "param %d: '%s'", p, text);
            cr_assert_eq(w[p].num, v[p].num);
            cr_assert_eq(w[p].choice, v[p].choice);
        }
    }
    dpt_space_value w[DPT_SEARCH_MAX_PARAMS];
    cr_assert_eq(dpt_space_parse(&cfg, 0, "0.9", 0, w), -1, "outside [low, high]");
    cr_assert_eq(dpt_space_parse(&cfg, 2, "100.5", 0, w), -1, "not an integer");
    cr_assert_eq(dpt_space_parse(&cfg, 4, "sigmoid", 1, w), -1, "not a choice");
    cr_assert_eq(dpt_space_parse(&cfg, 1, "0.6", 1, w), -1, "a string for a number");
}

Test(space, apply_sets_keys_and_derived_depth_and_width)
{
    dpt_config cfg, out;
    dpt_error err;
    with_space(&cfg, "{model.hidden_width: {type: int, low: 16, high: 512},"
                     " model.hidden_layers: {type: int, low: 1, high: 4},"
                     " model.activation: {type: categorical, choices: [relu, tanh]}}");
    dpt_space_value v[DPT_SEARCH_MAX_PARAMS] = {{.num = 100}, {.num = 3}, {.choice = 1}};
    cr_assert_eq(dpt_space_apply(&cfg, v, &out, &err), DPT_OK, "%s", err.msg);
    /* depth applies first whatever the order in the space, then the width of every layer */
    cr_assert_eq(out.model.n_layers, 4);
    int want[5] = {784, 100, 100, 100, 10};
    for (int l = 0; l <= 4; l++)
        cr_assert_eq(out.model.widths[l], want[l], "widths[%d] = %d", l, out.model.widths[l]);
    cr_assert_eq(out.model.activation, DPT_ACT_TANH);
    char text[64];
    int is_string;
    cr_assert_eq(dpt_config_get(&out, "model.hidden_layers", text, sizeof text, &is_string), 0);
    cr_assert_str_eq(text, "3");
    cr_assert_eq(dpt_config_get(&out, "model.layers[2]", text, sizeof text, &is_string), 0);
    cr_assert_str_eq(text, "100");
    cr_assert_eq(dpt_config_get(&out, "model.activation", text, sizeof text, &is_string), 0);
    cr_assert_str_eq(text, "tanh");
    cr_assert_eq(is_string, 1);
    cr_assert_eq(dpt_config_get(&out, "model.nope", text, sizeof text, &is_string), -1);
}

Test(space, apply_reports_an_invalid_combination)
{
    dpt_config cfg, out;
    dpt_error err;
    with_space(&cfg, "{train.warmup_epochs: {type: int, low: 0, high: 20}}");
    dpt_space_value v[DPT_SEARCH_MAX_PARAMS] = {{.num = 12}};
    cr_assert_eq(dpt_space_apply(&cfg, v, &out, &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "train.warmup_epochs (12) must be less than train.epochs (10)");
}

/* search.space written by dpt_config_write reads back to the same bytes. */
Test(space, config_with_space_round_trips)
{
    dpt_config cfg, back;
    dpt_error err;
    with_space(&cfg, every_type);
    char path[] = "/tmp/dpt_test_space_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_eq(dpt_config_write(&cfg, f), DPT_OK);
    fclose(f);
    dpt_config_defaults(&back);
    int rc = dpt_config_load_file(&back, path, &err);
    unlink(path);
    cr_assert_eq(rc, DPT_OK, "%s", err.msg);
    cr_assert_eq(memcmp(&cfg, &back, sizeof cfg), 0, "the written space does not read back");
}

static void expect_space_error(const char *space, const char *msg)
{
    dpt_config cfg;
    dpt_error err;
    char assignment[4096];
    dpt_config_defaults(&cfg);
    snprintf(assignment, sizeof assignment, "search.space=%s", space);
    int rc = dpt_config_set(&cfg, assignment, &err);
    if (rc == DPT_OK)
        rc = dpt_config_validate(&cfg, &err);
    cr_assert_eq(rc, DPT_EUSAGE, "accepted: %s", space);
    cr_assert(strstr(err.msg, msg) != NULL, "message '%s' lacks '%s'", err.msg, msg);
}

Test(space, errors_name_the_parameter)
{
    expect_space_error("{train.lrr: {type: uniform, low: 0, high: 1}}",
                       "'train.lrr' is not a config key (did you mean 'train.lr'?)");
    expect_space_error("{train.lr: {type: normal, low: 0, high: 1}}",
                       "search.space.train.lr: type must be uniform, log_uniform, int or categorical");
    expect_space_error("{train.lr: {type: uniform, low: 0.1}}", "search.space.train.lr: needs 'low' and 'high'");
    expect_space_error("{train.lr: {type: uniform, low: 0.1, high: 1, hihg: 2}}",
                       "unknown field 'hihg'");
    expect_space_error("{train.lr: {type: log_uniform, low: 0, high: 1}}", "a log scale needs low > 0");
    expect_space_error("{train.batch_size: {type: int, low: 16.5, high: 64}}",
                       "type int needs integer low and high");
    expect_space_error("{train.epochs: {type: log_uniform, low: 1, high: 9}}",
                       "train.epochs is an integer; use type int");
    expect_space_error("{model.activation: {type: uniform, low: 0, high: 1}}",
                       "model.activation does not take numbers; use type categorical");
    expect_space_error("{model.activation: {type: categorical, choices: [relu, relu]}}",
                       "choice 'relu' is listed twice");
    expect_space_error("{model.activation: {type: categorical, choices: [relu, swish]}}",
                       "search.space.model.activation: choice swish is not a valid value");
    expect_space_error("{train.momentum: {type: uniform, low: 0.5, high: 1.0}}",
                       "search.space.train.momentum: high 1.0 is not a valid value");
    expect_space_error("{\"model.layers[7]\": {type: int, low: 1, high: 9}}",
                       "search.space.model.layers[7]: low 1 is not a valid value");
    expect_space_error("{search.trials: {type: int, low: 1, high: 9}}", "'search.trials' cannot be searched");
    expect_space_error("{model.hidden_layers: {type: int, low: 1, high: 3}, \"model.layers[1]\": {type: int, low: 8, high: 9}}",
                       "model.layers[1] and model.hidden_layers both set the layers");
}

Test(space, search_keys_in_a_file_have_defaults_and_ranges)
{
    dpt_config cfg;
    dpt_config_defaults(&cfg);
    cr_assert_eq(cfg.search.algorithm, DPT_SEARCH_BAYES);
    cr_assert_eq(cfg.search.trials, 20);
    cr_assert_eq(cfg.search.initial_random, 5);
    cr_assert_eq(cfg.search.objective, DPT_SEARCH_VAL_ERROR);
    cr_assert_eq(cfg.search.parallel, 1);
    cr_assert_eq(cfg.search.stop_rule, DPT_STOP_MEDIAN);
    cr_assert_eq(cfg.search.stop_grace_epochs, 2);
    cr_assert_eq(cfg.objective.function, DPT_FUNCTION_NONE);
    dpt_error err;
    cr_assert_eq(dpt_config_set(&cfg, "search.early_stopping={rule: none, grace_epochs: 4}", &err),
                 DPT_OK, "%s", err.msg);
    cr_assert_eq(cfg.search.stop_rule, DPT_STOP_NONE);
    cr_assert_eq(cfg.search.stop_grace_epochs, 4);
    cr_assert_eq(dpt_config_set(&cfg, "search.algorithm=tpe", &err), DPT_EUSAGE);
    cr_assert(strstr(err.msg, "one of bayes, random, grid") != NULL, "%s", err.msg);
    cr_assert_eq(dpt_config_set(&cfg, "objective.function=rosenbrock", &err), DPT_EUSAGE);
    cr_assert(strstr(err.msg, "one of none, branin, hartmann6") != NULL, "%s", err.msg);
}

/* search.start_from_config: trial 0 takes the config's own values */
Test(space, values_from_the_config)
{
    dpt_config cfg;
    with_space(&cfg, "{train.lr: {type: log_uniform, low: 0.001, high: 0.5},"
                     " model.hidden_width: {type: int, low: 64, high: 1024},"
                     " model.activation: {type: categorical, choices: [tanh, relu]}}");
    dpt_space_value v[DPT_SEARCH_MAX_PARAMS];
    char why[256];
    cr_assert_eq(dpt_space_from_config(&cfg, v, why, sizeof why), 0, "%s", why);
    cr_assert_eq(v[0].num, 0.05);
    cr_assert_eq(v[1].num, 512.0);
    cr_assert_eq(v[2].choice, 1);
    dpt_error err;
    cr_assert_eq(dpt_config_set(&cfg, "train.lr=0.9", &err), DPT_OK);
    cr_assert_eq(dpt_space_from_config(&cfg, v, why, sizeof why), -1);
    cr_assert_str_eq(why, "train.lr is 0.9 in the config, outside [0.001, 0.5]");
    cr_assert_eq(dpt_config_set(&cfg, "model.activation=gelu", &err), DPT_OK);
    cr_assert_eq(dpt_config_set(&cfg, "train.lr=0.1", &err), DPT_OK);
    cr_assert_eq(dpt_space_from_config(&cfg, v, why, sizeof why), -1);
    cr_assert_str_eq(why, "model.activation is gelu in the config, not one of the choices");
}

Test(trial_log, a_record_reads_back_as_written)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    dpt_trial r, back;
    memset(&r, 0, sizeof r);
    r.trial = 12;
    r.status = DPT_TRIAL_STOPPED_EARLY;
    r.group = 1;
    r.epochs = 3;
    r.objective = 0.25;
    r.val_accuracy = NAN;
    r.time_s = 1.5;
    r.propose_s = 0.002;
    r.n_curve = 3;
    r.curve[0] = 0.5;
    r.curve[1] = NAN;
    r.curve[2] = 0.25;
    r.values[0].num = 0.0123457;
    r.values[1].num = 0.75;
    r.values[2].num = 256;
    r.values[3].num = 4;
    r.values[4].choice = 2;
    snprintf(r.message, sizeof r.message, "a \"quoted\"\\ message\twith\x01 controls");
    char line[16384], why[256];
    size_t len = dpt_trial_format(&cfg, &r, line, sizeof line);
    cr_assert(len < sizeof line && line[len - 1] == '\n');
    cr_assert(strstr(line, "\"val_accuracy\":null") != NULL, "%s", line);
    cr_assert(strstr(line, "\"curve\":[0.5,null,0.25]") != NULL, "%s", line);
    cr_assert(strstr(line, "\\\"quoted\\\"\\\\ message\\u0009with\\u0001") != NULL, "%s", line);
    cr_assert_eq(dpt_trial_parse(&cfg, line, len - 1, &back, why, sizeof why), 0, "%s", why);
    cr_assert_eq(back.trial, 12);
    cr_assert_eq(back.status, DPT_TRIAL_STOPPED_EARLY);
    cr_assert_eq(back.group, 1);
    cr_assert_eq(back.epochs, 3);
    cr_assert(back.objective == 0.25 && isnan(back.val_accuracy));
    cr_assert_eq(back.n_curve, 3);
    cr_assert(isnan(back.curve[1]) && back.curve[2] == 0.25);
    cr_assert_str_eq(back.message, r.message);
    cr_assert(memcmp(back.values, r.values, sizeof r.values) == 0);
    /* cut anywhere before its end, the line is refused (resume then drops it) */
    for (size_t cut = 0; cut < len - 1; cut += 7)
        cr_assert_neq(dpt_trial_parse(&cfg, line, cut, &back, why, sizeof why), 0, "cut %zu", cut);
}

/* asha with promote: trials.jsonl holds a stopped trial's line and, later, its promoted run's
 * (resumed_from its rung); --resume reads the later one in the earlier one's place. Any other
 * second outcome of an id is refused. */
Test(trial_log, a_promoted_record_replaces_the_stopped_one_on_resume)
{
    dpt_config cfg;
    with_space(&cfg, every_type);
    char dir[] = "/tmp/dpt-trial-log-XXXXXX";
    cr_assert(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/trials.jsonl", dir);
    dpt_trial r[4];
    memset(r, 0, sizeof r);
    for (int k = 0; k < 4; k++) {
        r[k].trial = k < 3 ? k : 1;
        r[k].status = DPT_TRIAL_STOPPED_EARLY;
        r[k].epochs = r[k].n_curve = 1;
        r[k].objective = r[k].curve[0] = 0.3 + 0.01 * k;
        r[k].val_accuracy = r[k].time_s = NAN;
        r[k].values[0].num = 0.01;
        r[k].values[1].num = 0.75;
        r[k].values[2].num = 256;
        r[k].values[3].num = 4;
    }
    r[3].status = DPT_TRIAL_OK;  /* trial 1, promoted at epoch 1, ran to epoch 3 */
    r[3].resumed_from = 1;
    r[3].epochs = r[3].n_curve = 3;
    r[3].curve[0] = r[1].curve[0];
    r[3].curve[1] = 0.2;
    r[3].curve[2] = r[3].objective = 0.1;
    int fd;
    dpt_error err;
    cr_assert_eq(dpt_trial_log_open(path, &fd, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(dpt_trial_log_append(fd, path, &cfg, r, 4, &err), DPT_OK, "%s", err.msg);
    dpt_trial *hist;
    int n;
    cr_assert_eq(dpt_trial_log_read(&cfg, path, 1, &hist, &n, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(n, 3, "three trials, not four records");
    cr_expect_eq(hist[0].trial, 0);
    cr_expect_eq(hist[1].trial, 1, "in the stopped record's place");
    cr_expect_eq(hist[1].status, DPT_TRIAL_OK);
    cr_expect_eq(hist[1].resumed_from, 1);
    cr_expect_eq(hist[1].n_curve, 3);
    cr_expect(hist[1].objective == 0.1 && hist[1].curve[1] == 0.2);
    cr_expect_eq(hist[2].trial, 2);
    free(hist);
    /* a second outcome that is no promotion (trial 0 again, from the start) is refused */
    r[0].status = DPT_TRIAL_OK;
    cr_assert_eq(dpt_trial_log_append(fd, path, &cfg, r, 1, &err), DPT_OK, "%s", err.msg);
    cr_expect_eq(dpt_trial_log_read(&cfg, path, 1, &hist, &n, &err), DPT_EUSAGE);
    cr_expect(strstr(err.msg, "trial 0 is recorded twice") != NULL, "%s", err.msg);
    free(hist);  /* what was read before the refused line */
    close(fd);
    unlink(path);
    rmdir(dir);
}

Test(json, members_escapes_and_styles)
{
    char buf[256];
    dpt_json j;
    dpt_json_init(&j, buf, sizeof buf, 1);
    dpt_json_object(&j, NULL);
    dpt_json_int(&j, "n", -3);
    dpt_json_double(&j, "x", 0.1);
    dpt_json_double_g(&j, "g", 1.0 / 3.0, 9);
    dpt_json_double(&j, "nan", NAN);
    dpt_json_bool(&j, "b", 1);
    dpt_json_string(&j, "s", "a\"b\\c\n");
    dpt_json_array(&j, "a");
    dpt_json_int(&j, NULL, 1);
    dpt_json_raw(&j, NULL, "2");
    dpt_json_end(&j);
    dpt_json_object(&j, "o");
    dpt_json_end(&j);
    dpt_json_end(&j);
    cr_assert_str_eq(buf, "{\"n\": -3, \"x\": 0.1, \"g\": 0.333333333, \"nan\": null, \"b\": true, "
                          "\"s\": \"a\\\"b\\\\c\\u000a\", \"a\": [1, 2], \"o\": {}}");
    /* too small a buffer: cut short, still terminated, and len says how much was needed */
    char small[8];
    dpt_json_init(&j, small, sizeof small, 0);
    dpt_json_object(&j, NULL);
    dpt_json_string(&j, "key", "value");
    dpt_json_end(&j);
    cr_assert_eq(j.len, strlen("{\"key\":\"value\"}"));
    cr_assert_eq(strlen(small), sizeof small - 1);
}
