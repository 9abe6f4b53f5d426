/* Tests of src/config.c: defaults, YAML loading and its error messages (file:line:col and key),
 * --set overrides, cross-key validation, and the write -> load round trip.
 * Config files are written to temporary files (mkstemp) so the expected text sits in the test. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#ifndef DPT_TEST_DATA_DIR
#define DPT_TEST_DATA_DIR "tests/data"
#endif

/* Writes text to a fresh temporary file; path receives its name. */
static void write_tmp(char path[64], const char *text)
{
    strcpy(path, "/tmp/dpt_test_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    FILE *f = fdopen(fd, "w");
    cr_assert(f != NULL);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* Loads text (as a file) over the defaults; the message, if any, in err; path keeps the name
 * the messages use (the file itself is already removed). */
static int load_text(dpt_config *cfg, const char *text, dpt_error *err, char path[64])
{
    dpt_config_defaults(cfg);
    write_tmp(path, text);
    memset(err, 0, sizeof *err);
    int rc = dpt_config_load_file(cfg, path, err);
    unlink(path);
    return rc;
}

/* Asserts that loading text fails with DPT_EUSAGE and exactly "PATH:" followed by tail. */
static void expect_load_error(const char *text, const char *tail)
{
    dpt_config cfg;
    dpt_error err;
    char path[64], want[1024];
    int rc = load_text(&cfg, text, &err, path);
    snprintf(want, sizeof want, "%s:%s", path, tail);
    cr_assert_eq(rc, DPT_EUSAGE, "expected a usage error for:\n%s", text);
    cr_assert_eq(err.code, DPT_EUSAGE);
    cr_assert_str_eq(err.msg, want);
}

/* Asserts that dpt_config_set(assignment) fails with exactly msg and leaves cfg unchanged. */
static void expect_set_error(const char *assignment, const char *msg)
{
    dpt_config cfg, before;
    dpt_error err;
    dpt_config_defaults(&cfg);
    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(dpt_config_set(&cfg, assignment, &err), DPT_EUSAGE, "'%s' was accepted",
                 assignment);
    cr_assert_str_eq(err.msg, msg);
    cr_assert(memcmp(&cfg, &before, sizeof cfg) == 0, "a failed --set changed the config");
}

static void set_ok(dpt_config *cfg, const char *assignment)
{
    dpt_error err = {0};
    int rc = dpt_config_set(cfg, assignment, &err);
    cr_assert_eq(rc, DPT_OK, "--set %s failed: %s", assignment, err.msg);
}

Test(config, defaults_match_design)
{
    dpt_config c;
    dpt_config_defaults(&c);
    cr_assert_str_eq(c.run.name, "fashion_mnist");
    cr_assert_str_eq(c.run.out_dir, "runs/fashion_mnist");
    cr_assert_eq(c.run.seed, 1);
    cr_assert_eq(c.run.device, DPT_DEVICE_AUTO);
    cr_assert_eq(c.run.threads, 0);

    cr_assert_eq(c.data.format, DPT_FORMAT_IDX);
    cr_assert_str_eq(c.data.train_images,
                     "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    cr_assert_str_eq(c.data.train_labels,
                     "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz");
    cr_assert_str_eq(c.data.test_images,
                     "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    cr_assert_str_eq(c.data.test_labels,
                     "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz");
    cr_assert_str_eq(c.data.train_csv, "");
    cr_assert_str_eq(c.data.test_csv, "");
    cr_assert_eq(c.data.csv_header, 0);
    cr_assert_eq(c.data.synthetic_train, 60000);
    cr_assert_eq(c.data.synthetic_test, 10000);
    cr_assert_eq(c.data.synthetic_teacher_width, 64);
    cr_assert_eq(c.data.validation_fraction, 0.1);
    cr_assert_eq(c.data.shuffle, 1);
    cr_assert_eq(c.data.sharding, DPT_SHARDING_REPLICATED);
    cr_assert_eq(c.data.scaling, DPT_SCALING_UNIT);

    cr_assert_eq(c.model.n_layers, 3);
    cr_assert_eq(c.model.widths[0], 784);
    cr_assert_eq(c.model.widths[1], 512);
    cr_assert_eq(c.model.widths[2], 512);
    cr_assert_eq(c.model.widths[3], 10);
    cr_assert_eq(c.model.widths[4], 0);
    cr_assert_eq(c.model.activation, DPT_ACT_RELU);
    cr_assert_eq(c.model.dropout, 0.0);
    cr_assert_eq(c.model.loss, DPT_LOSS_SOFTMAX_CE);
    cr_assert_eq(c.model.huber_delta, 1.0);
    cr_assert_eq(c.model.init, DPT_INIT_AUTO);

    cr_assert_eq(c.train.epochs, 10);
    cr_assert_eq(c.train.batch_size, 128);
    cr_assert_eq(c.train.optimizer, DPT_OPT_SGD);
    cr_assert_eq(c.train.lr, 0.05);
    cr_assert_eq(c.train.momentum, 0.9);
    cr_assert_eq(c.train.nesterov, 0);
    cr_assert_eq(c.train.weight_decay, 0.0);
    cr_assert_eq(c.train.beta1, 0.9);
    cr_assert_eq(c.train.beta2, 0.999);
    cr_assert_eq(c.train.eps, 1e-8);
    cr_assert_eq(c.train.schedule, DPT_SCHED_CONSTANT);
    cr_assert_eq(c.train.step_epochs, 10);
    cr_assert_eq(c.train.step_gamma, 0.1);
    cr_assert_eq(c.train.min_lr, 0.0);
    cr_assert_eq(c.train.warmup_epochs, 0);
    cr_assert_eq(c.train.clip_grad_norm, 0.0);
    cr_assert_eq(c.train.precision, DPT_PREC_FP32);
    cr_assert_eq(c.train.max_steps, 0);
    cr_assert_eq(c.train.log_every, 10);

    cr_assert_eq(c.comm.bucket_mb, 25.0);
    cr_assert_eq(c.comm.overlap, 1);
    cr_assert_eq(c.comm.algorithm, DPT_COMM_FLAT);
    cr_assert_eq(c.comm.compress, DPT_COMPRESS_NONE);

    dpt_error err;
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "defaults invalid: %s", err.msg);
}

Test(config, main_config_file_loads_and_validates)
{
    /* DPT_TEST_DATA_DIR is <repo>/tests/data: the repository is two levels up. */
    char repo[1024], path[1100];
    snprintf(repo, sizeof repo, "%s", DPT_TEST_DATA_DIR);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(repo, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(repo, ".");
    }
    snprintf(path, sizeof path, "%s/configs/fashion_mnist.yaml", repo);
    dpt_config c;
    dpt_error err = {0};
    dpt_config_defaults(&c);
    cr_assert_eq(dpt_config_load_file(&c, path, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);
    cr_assert_str_eq(c.run.name, "fashion_mnist");
    cr_assert_eq(c.data.format, DPT_FORMAT_IDX);
    cr_assert_eq(c.model.n_layers, 3);
    cr_assert_eq(c.model.widths[1], 512);
    cr_assert_eq(c.train.epochs, 15);
    cr_assert_eq(c.train.nesterov, 1);
    cr_assert_eq(c.train.schedule, DPT_SCHED_COSINE);
    cr_assert_eq(c.train.warmup_epochs, 1);
}

Test(config, full_file_sets_every_section)
{
    const char *text =
        "# a full config\n"
        "run: {name: \"exp 1\", out_dir: /tmp/out, seed: 18446744073709551615, device: cpu,"
        " threads: 4}\n"
        "data:\n"
        "  format: csv\n"
        "  train_csv: 'train.csv'\n"
        "  test_csv: test.csv\n"
        "  csv_header: yes\n"
        "  test_images: ~\n"
        "  test_labels: \"\"\n"
        "  synthetic_train: 5000000000\n"
        "  synthetic_test: 0\n"
        "  synthetic_teacher_width: 32\n"
        "  validation_fraction: 0\n"
        "  shuffle: false\n"
        "  sharding: sharded\n"
        "  scaling: standardize\n"
        "model:\n"
        "  layers:\n"
        "    - 20\n"
        "    - 7\n"
        "    - 3\n"
        "  activation: identity\n"
        "  dropout: 0.25\n"
        "  loss: mse\n"
        "  init: xavier\n"
        "train:\n"
        "  epochs: 3\n"
        "  batch_size: 16777216\n"
        "  optimizer: adamw\n"
        "  lr: 1e-3\n"
        "  momentum: 0\n"
        "  nesterov: true\n"
        "  weight_decay: 1\n"
        "  beta1: 0.8\n"
        "  beta2: 0.99\n"
        "  eps: 1.0e-6\n"
        "  schedule: step\n"
        "  step_epochs: 2\n"
        "  step_gamma: 1\n"
        "  min_lr: 1.5e-5\n"
        "  warmup_epochs: 2\n"
        "  clip_grad_norm: 5\n"
        "  precision: tf32\n"
        "  max_steps: 100\n"
        "  log_every: 1\n";
    dpt_config c;
    dpt_error err = {0};
    char path[64];
    cr_assert_eq(load_text(&c, text, &err, path), DPT_OK, "%s", err.msg);
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);
    cr_assert_str_eq(c.run.name, "exp 1");
    cr_assert_str_eq(c.run.out_dir, "/tmp/out");
    cr_assert_eq(c.run.seed, UINT64_MAX);
    cr_assert_eq(c.run.device, DPT_DEVICE_CPU);
    cr_assert_eq(c.run.threads, 4);
    cr_assert_eq(c.data.format, DPT_FORMAT_CSV);
    cr_assert_str_eq(c.data.train_csv, "train.csv");
    cr_assert_str_eq(c.data.test_csv, "test.csv");
    cr_assert_eq(c.data.csv_header, 1);
    cr_assert_str_eq(c.data.test_images, "");
    cr_assert_str_eq(c.data.test_labels, "");
    cr_assert_eq(c.data.synthetic_train, 5000000000LL);
    cr_assert_eq(c.data.synthetic_test, 0);
    cr_assert_eq(c.data.synthetic_teacher_width, 32);
    cr_assert_eq(c.data.validation_fraction, 0.0);
    cr_assert_eq(c.data.shuffle, 0);
    cr_assert_eq(c.data.sharding, DPT_SHARDING_SHARDED);
    cr_assert_eq(c.data.scaling, DPT_SCALING_STANDARDIZE);
    cr_assert_eq(c.model.n_layers, 2);
    cr_assert_eq(c.model.widths[0], 20);
    cr_assert_eq(c.model.widths[1], 7);
    cr_assert_eq(c.model.widths[2], 3);
    cr_assert_eq(c.model.widths[3], 0, "entries past the list must be cleared");
    cr_assert_eq(c.model.activation, DPT_ACT_IDENTITY);
    cr_assert_eq(c.model.dropout, 0.25);
    cr_assert_eq(c.model.loss, DPT_LOSS_MSE);
    cr_assert_eq(c.model.init, DPT_INIT_XAVIER);
    cr_assert_eq(c.train.epochs, 3);
    cr_assert_eq(c.train.batch_size, 1 << 24);
    cr_assert_eq(c.train.optimizer, DPT_OPT_ADAMW);
    cr_assert_eq(c.train.lr, 1e-3);
    cr_assert_eq(c.train.momentum, 0.0);
    cr_assert_eq(c.train.nesterov, 1);
    cr_assert_eq(c.train.weight_decay, 1.0);
    cr_assert_eq(c.train.beta1, 0.8);
    cr_assert_eq(c.train.beta2, 0.99);
    cr_assert_eq(c.train.eps, 1e-6);
    cr_assert_eq(c.train.schedule, DPT_SCHED_STEP);
    cr_assert_eq(c.train.step_epochs, 2);
    cr_assert_eq(c.train.step_gamma, 1.0);
    cr_assert_eq(c.train.min_lr, 1.5e-5);
    cr_assert_eq(c.train.warmup_epochs, 2);
    cr_assert_eq(c.train.clip_grad_norm, 5.0);
    cr_assert_eq(c.train.precision, DPT_PREC_TF32);
    cr_assert_eq(c.train.max_steps, 100);
    cr_assert_eq(c.train.log_every, 1);
}

Test(config, empty_file_is_refused_naming_it)
{
    const char *tail = " the config file is empty (no keys); write at least one key, e.g. "
                       "'train: {epochs: 10}'";
    expect_load_error("", tail);
    expect_load_error("# only a comment\n\n# another\n", tail);
    expect_load_error("{}\n", tail);
    /* cfg is untouched by the refusal */
    dpt_config c, d;
    dpt_error err = {0};
    char path[64];
    dpt_config_defaults(&d);
    cr_assert_eq(load_text(&c, "", &err, path), DPT_EUSAGE);
    cr_assert(memcmp(&c, &d, sizeof c) == 0);
}

Test(config, csv_columns_as_text_or_list)
{
    const char *text = "data:\n  label_column: -1\n  feature_columns: [sepal, 2, \"1:3\"]\n"
                       "  class_names: [setosa, versicolor]\n";
    char path[64];
    dpt_error err = {0};
    dpt_config c;
    cr_assert_eq(load_text(&c, text, &err, path), DPT_OK, "%s", err.msg);
    cr_assert_str_eq(c.data.label_column, "-1");
    cr_assert_str_eq(c.data.feature_columns, "sepal, 2, 1:3");
    cr_assert_str_eq(c.data.class_names, "setosa, versicolor");
    set_ok(&c, "data.feature_columns=a, b");
    cr_assert_str_eq(c.data.feature_columns, "a, b");
    set_ok(&c, "data.class_names=[x, y, z]");
    cr_assert_str_eq(c.data.class_names, "x, y, z");
    expect_load_error("data:\n  class_names: [[a]]\n",
                      "2:17: data.class_names: expected names or indices, got a list");
    /* names with a comma or a quote are stored quoted, as the CSV reader splits them back */
    cr_assert_eq(load_text(&c, "data:\n  class_names: [\"small, round\", 'say \"hi\"', x]\n",
                           &err, path), DPT_OK, "%s", err.msg);
    cr_assert_str_eq(c.data.class_names, "\"small, round\", \"say \"\"hi\"\"\", x");
}

Test(config, warmup_made_too_long_by_set_is_shortened)
{
    dpt_config file, c;
    char note[256];
    dpt_config_defaults(&file);
    file.train.epochs = 10;
    file.train.warmup_epochs = 2;
    memcpy(&c, &file, sizeof c);
    set_ok(&c, "train.epochs=1");
    cr_assert_eq(dpt_config_fit_warmup(&c, &file, note, sizeof note), 1);
    cr_assert_eq(c.train.warmup_epochs, 0);
    cr_assert_str_eq(note, "train.warmup_epochs 2 is not less than train.epochs 1 after --set: "
                           "warmup shortened to 0 epochs");
    dpt_error err = {0};
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);
    memcpy(&c, &file, sizeof c);
    set_ok(&c, "train.epochs=2");
    cr_assert_eq(dpt_config_fit_warmup(&c, &file, note, sizeof note), 1);
    cr_assert_eq(c.train.warmup_epochs, 1);
    /* untouched when consistent, and when the file itself is inconsistent (still refused) */
    memcpy(&c, &file, sizeof c);
    cr_assert_eq(dpt_config_fit_warmup(&c, &file, note, sizeof note), 0);
    cr_assert_eq(c.train.warmup_epochs, 2);
    file.train.warmup_epochs = 10;
    memcpy(&c, &file, sizeof c);
    cr_assert_eq(dpt_config_fit_warmup(&c, &file, note, sizeof note), 0);
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
}

Test(config, unknown_key_names_file_line_column_and_key)
{
    expect_load_error("train:\n  lr: 0.1\n  lrr: 0.2\n",
                      "3:3: unknown key 'train.lrr' (did you mean 'train.lr'?)");
    expect_load_error("run:\n  seed: 2\ntrain:\n  epochs: 1\n  zzzzzz: 1\n",
                      "5:3: unknown key 'train.zzzzzz'");
    /* A key outside its section: the hint finds it by its last part. */
    expect_load_error("lr: 0.1\n", "1:1: unknown key 'lr' (did you mean 'train.lr'?)");
    /* in the search sections, nested ones included */
    expect_load_error("run: {seed: 3}\nsearch:\n  trails: 20\n",
                      "3:3: unknown key 'search.trails' (did you mean 'search.trials'?)");
    expect_load_error("search:\n  early_stopping: {rule: median, grace: 2}\n",
                      "2:34: unknown key 'search.early_stopping.grace'");
    expect_load_error("objective: {function: branin, x7: 1}\n",
                      "1:31: unknown key 'objective.x7' (did you mean 'objective.x1'?)");
}

Test(config, wrong_types)
{
    expect_load_error("run:\n  seed: abc\n", "2:9: run.seed: expected an integer, got 'abc'");
    expect_load_error("train:\n  epochs: 1.5\n",
                      "2:11: train.epochs: expected an integer, got '1.5'");
    expect_load_error("train:\n  nesterov: maybe\n",
                      "2:13: train.nesterov: expected true or false, got 'maybe'");
    expect_load_error("train:\n  lr: fast\n", "2:7: train.lr: expected a number, got 'fast'");
    expect_load_error("train:\n  lr: .nan\n", "2:7: train.lr: expected a number, got '.nan'");
    /* A mapping where a scalar is expected, and the reverse. */
    expect_load_error("train:\n  lr: {a: 1}\n", "2:7: train.lr: expected a number, got a mapping");
    expect_load_error("run:\n  name: [a, b]\n", "2:9: run.name: expected a string, got a list");
    expect_load_error("train: 5\n", "1:8: train: expected a mapping of keys, got a scalar");
    expect_load_error("- a\n- b\n",
                      "1:1: expected a mapping of sections (run, data, model, train), got a list");
}

Test(config, out_of_range_values)
{
    expect_load_error("train:\n  lr: -0.1\n", "2:7: train.lr: must be > 0 (got -0.1)");
    expect_load_error("train:\n  lr: 0\n", "2:7: train.lr: must be > 0 (got 0)");
    expect_load_error("train:\n  lr: 11\n", "2:7: train.lr: must be <= 10 (got 11)");
    expect_load_error("model:\n  dropout: 1.0\n", "2:12: model.dropout: must be < 1 (got 1.0)");
    expect_load_error("train:\n  epochs: 0\n", "2:11: train.epochs: must be >= 1 (got 0)");
    expect_load_error("run:\n  threads: 1025\n", "2:12: run.threads: must be <= 1024 (got 1025)");
    expect_load_error("run:\n  seed: -1\n", "2:9: run.seed: must be >= 0 (got -1)");
    expect_load_error("data:\n  validation_fraction: 0.95\n",
                      "2:24: data.validation_fraction: must be <= 0.9 (got 0.95)");
    expect_load_error("train:\n  max_steps: 99999999999999999999\n",
                      "2:14: train.max_steps: must be <= 9223372036854775807 "
                      "(got 99999999999999999999)");
    expect_load_error("comm:\n  bucket_mb: 0\n", "2:14: comm.bucket_mb: must be > 0 (got 0)");
    expect_load_error("model:\n  huber_delta: 0\n", "2:16: model.huber_delta: must be > 0 (got 0)");
    expect_load_error("model:\n  huber_delta: -1\n",
                      "2:16: model.huber_delta: must be > 0 (got -1)");
}

Test(config, bad_enum_lists_the_choices)
{
    expect_load_error("model:\n  activation: rellu\n",
                      "2:15: model.activation: expected one of relu, tanh, sigmoid, gelu, "
                      "identity; got 'rellu'");
    expect_load_error("train:\n  optimizer: {x: 1}\n",
                      "2:14: train.optimizer: expected one of sgd, adam, adamw; got a mapping");
}

Test(config, layers_must_be_a_list_of_ints)
{
    expect_load_error("model:\n  layers: [784, x, 10]\n",
                      "2:17: model.layers[1]: expected an integer, got 'x'");
    expect_load_error("model:\n  layers:\n    - 784\n    - 2.5\n",
                      "4:7: model.layers[1]: expected an integer, got '2.5'");
    expect_load_error("model:\n  layers: [784, [1], 10]\n",
                      "2:17: model.layers[1]: expected an integer, got a list");
    expect_load_error("model:\n  layers: [784, 0, 10]\n",
                      "2:17: model.layers[1]: must be >= 1 (got 0)");
    expect_load_error("model:\n  layers: 784\n",
                      "2:11: model.layers: expected a list of integers, got '784'");
    expect_load_error("model:\n  layers: [784]\n",
                      "2:11: model.layers: expected 2 to 17 entries, got 1");
    expect_load_error("model:\n  layers: [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]\n",
                      "2:11: model.layers: expected 2 to 17 entries, got 18");
}

Test(config, yaml_syntax_error_reports_line)
{
    dpt_config c;
    dpt_error err;
    char path[64], want[128];
    int rc = load_text(&c, "train:\n  lr: 0.1\n  epochs: [1, 2\n", &err, path);
    cr_assert_eq(rc, DPT_EUSAGE);
    snprintf(want, sizeof want, "%s:4:1: ", path);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "got: %s", err.msg);
    cr_assert(strstr(err.msg, "did not find expected ',' or ']'") != NULL, "got: %s", err.msg);
    cr_assert(strstr(err.msg, "(while parsing a flow sequence that starts at line 3, column 11)") != NULL,
              "got: %s", err.msg);

    rc = load_text(&c, "run:\n  name: a\n seed: 2\n", &err, path);
    cr_assert_eq(rc, DPT_EUSAGE);
    snprintf(want, sizeof want, "%s:3:", path);
    cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "got: %s", err.msg);
}

Test(config, duplicate_keys_are_errors)
{
    expect_load_error("train:\n  lr: 0.1\n  lr: 0.2\n",
                      "3:3: duplicate key 'train.lr' (first given at line 2)");
    expect_load_error("train: {lr: 0.1}\nrun: {seed: 1}\ntrain: {epochs: 2}\n",
                      "3:1: duplicate key 'train' (first given at line 1)");
}

Test(config, one_document_only)
{
    expect_load_error("train: {lr: 0.1}\n---\ntrain: {lr: 0.2}\n",
                      "3:1: only one YAML document is allowed");
}

Test(config, missing_file)
{
    dpt_config c, d;
    dpt_error err;
    dpt_config_defaults(&c);
    memcpy(&d, &c, sizeof c);
    int rc = dpt_config_load_file(&c, "/nonexistent/dir/x.yaml", &err);
    cr_assert_eq(rc, DPT_EUSAGE);
    cr_assert_str_eq(err.msg,
                     "cannot open config '/nonexistent/dir/x.yaml': No such file or directory");
    cr_assert(memcmp(&c, &d, sizeof c) == 0);
}

Test(config, failed_load_leaves_config_unchanged)
{
    dpt_config c, before;
    dpt_error err;
    char path[64];
    dpt_config_defaults(&c);
    set_ok(&c, "train.epochs=7");
    memcpy(&before, &c, sizeof c);
    write_tmp(path, "train:\n  epochs: 3\n  lr: -1\n");
    cr_assert_eq(dpt_config_load_file(&c, path, &err), DPT_EUSAGE);
    unlink(path);
    cr_assert(memcmp(&c, &before, sizeof c) == 0, "epochs was applied before the error");
}

Test(config, yaml_scalar_forms)
{
    dpt_config c;
    dpt_error err = {0};
    char path[64];
    const char *text = "train: {lr: 1.0e-3, momentum: 0, nesterov: yes}\n"
                       "data: {shuffle: no, csv_header: True}\n";
    cr_assert_eq(load_text(&c, text, &err, path), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.train.lr, 1e-3);
    cr_assert_eq(c.train.momentum, 0.0);
    cr_assert_eq(c.train.nesterov, 1);
    cr_assert_eq(c.data.shuffle, 0);
    cr_assert_eq(c.data.csv_header, 1);
    /* Sections given but empty are fine. */
    cr_assert_eq(load_text(&c, "run:\ntrain:\n", &err, path), DPT_OK, "%s", err.msg);
}

Test(config, set_scalar_values)
{
    dpt_config c;
    dpt_config_defaults(&c);
    set_ok(&c, "train.lr=0.01");
    cr_assert_eq(c.train.lr, 0.01);
    set_ok(&c, " train.optimizer = adam");
    cr_assert_eq(c.train.optimizer, DPT_OPT_ADAM);
    set_ok(&c, "run.name=a=b");  /* split at the first '=' */
    cr_assert_str_eq(c.run.name, "a=b");
    set_ok(&c, "data.test_images=");
    cr_assert_str_eq(c.data.test_images, "");
    set_ok(&c, "data.shuffle=false");
    cr_assert_eq(c.data.shuffle, 0);
    set_ok(&c, "run.seed=42");
    cr_assert_eq(c.run.seed, 42);
    set_ok(&c, "train.max_steps=1000000000000");
    cr_assert_eq(c.train.max_steps, 1000000000000LL);
}

Test(config, set_whole_list_and_indexed_element)
{
    dpt_config c;
    dpt_config_defaults(&c);
    set_ok(&c, "model.layers=[784,256,10]");
    cr_assert_eq(c.model.n_layers, 2);
    cr_assert_eq(c.model.widths[0], 784);
    cr_assert_eq(c.model.widths[1], 256);
    cr_assert_eq(c.model.widths[2], 10);
    cr_assert_eq(c.model.widths[3], 0);
    set_ok(&c, "model.layers[1]=128");
    cr_assert_eq(c.model.n_layers, 2);
    cr_assert_eq(c.model.widths[1], 128);
    set_ok(&c, "model.layers[2]=5");
    cr_assert_eq(c.model.widths[2], 5);
}

Test(config, set_whole_section)
{
    dpt_config c;
    dpt_config_defaults(&c);
    set_ok(&c, "train={lr: 0.1, epochs: 3}");
    cr_assert_eq(c.train.lr, 0.1);
    cr_assert_eq(c.train.epochs, 3);
    expect_set_error("train={lr: -1}", "--set train={lr: -1}: train.lr: must be > 0 (got -1)");
    expect_set_error("train=3", "--set train=3: train: expected a mapping of keys, got a scalar");
}

Test(config, bad_set_assignments)
{
    expect_set_error("train.lr", "--set train.lr: expected KEY=VALUE (e.g. train.lr=0.01)");
    expect_set_error("=3", "--set =3: expected KEY=VALUE (e.g. train.lr=0.01)");
    expect_set_error("train.lrr=1", "--set train.lrr=1: unknown key 'train.lrr' (did you mean "
                                    "'train.lr'?)");
    expect_set_error("search.trails=3", "--set search.trails=3: unknown key 'search.trails' (did "
                                        "you mean 'search.trials'?)");
    expect_set_error("model.hidden_layers=0",
                     "--set model.hidden_layers=0: model.hidden_layers: must be >= 1 (got 0)");
    expect_set_error("train.epochs=abc",
                     "--set train.epochs=abc: train.epochs: expected an integer, got 'abc'");
    expect_set_error("train.lr=-1", "--set train.lr=-1: train.lr: must be > 0 (got -1)");
    expect_set_error("train.lr=[1]", "--set train.lr=[1]: train.lr: expected a number, got a list");
    expect_set_error("model.layers=[784,x]",
                     "--set model.layers=[784,x]: model.layers[1]: expected an integer, got 'x'");
    expect_set_error("model.layers[4]=3", "--set model.layers[4]=3: model.layers[4]: index out "
                                          "of range (the list has 4 entries)");
    expect_set_error("model.layers[1]=0",
                     "--set model.layers[1]=0: model.layers[1]: must be >= 1 (got 0)");
    expect_set_error("model.layers[x]=3", "--set model.layers[x]=3: bad list index in "
                                          "'model.layers[x]' (expected KEY[N])");
    expect_set_error("train.lr[0]=3",
                     "--set train.lr[0]=3: train.lr is not a list, so 'train.lr[0]' cannot be "
                     "indexed");
    dpt_config c;
    dpt_error err;
    dpt_config_defaults(&c);
    cr_assert_eq(dpt_config_set(&c, "model.layers=[1,2", &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "--set model.layers=[1,2: invalid YAML value: did not find expected "
                              "',' or ']' (while parsing a flow sequence)");
}

Test(config, validate_cross_key_checks)
{
    dpt_config c;
    dpt_error err;

    dpt_config_defaults(&c);
    set_ok(&c, "data.train_labels=");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "data.format is idx, so data.train_images and data.train_labels "
                              "must be set (data.train_labels is empty)");

    dpt_config_defaults(&c);
    set_ok(&c, "data.format=csv");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "data.format is csv, so data.train_csv must be set (it is empty)");
    set_ok(&c, "data.train_csv=train.csv");
    set_ok(&c, "data.train_images=");  /* not needed for csv */
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);

    dpt_config_defaults(&c);
    set_ok(&c, "data.test_images=");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "data.test_images and data.test_labels must both be set or both be "
                              "empty (data.test_images is empty)");
    set_ok(&c, "data.test_labels=");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);

    dpt_config_defaults(&c);
    set_ok(&c, "train.epochs=5");
    set_ok(&c, "train.warmup_epochs=5");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
    cr_assert_str_eq(err.msg, "train.warmup_epochs (5) must be less than train.epochs (5)");
    set_ok(&c, "train.warmup_epochs=4");
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);

    dpt_config_defaults(&c);
    c.model.n_layers = 0;  /* cannot come from YAML, but a struct can be built by hand */
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_EUSAGE);
    cr_assert(strncmp(err.msg, "model.layers: needs 2 to 17 widths", 34) == 0, "got: %s", err.msg);
}

Test(config, validate_regression_keys)
{
    dpt_config c;
    dpt_error err;
    static const struct { const char *set[3], *msg; } cases[] = {
        {{"data.task=regression", "model.loss=mse", ""},
         "data.task: regression reads its targets from a CSV file: set data.format: csv (it is "
         "idx)"},
        {{"data.format=csv", "data.task=regression", ""},
         "data.task: regression needs model.loss: mse or huber (softmax_cross_entropy is for "
         "classes)"},
        {{"data.format=csv", "model.loss=huber", ""},
         "model.loss: huber is for data.task: regression"},
        {{"data.format=csv", "data.target_scaling=standardize", ""},
         "data.target_scaling: standardize is for data.task: regression"},
        {{"data.format=csv", "search.objective=val_rmse", ""},
         "search.objective: val_rmse is for data.task: regression"},
        {{"data.format=csv", "data.task=regression", "model.loss=huber"}, NULL},
        {{"data.format=csv", "model.huber_delta=0.5", ""},
         "model.huber_delta (0.5) is for model.loss: huber"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        dpt_config_defaults(&c);
        set_ok(&c, "data.train_csv=t.csv");
        for (int i = 0; i < 3 && cases[k].set[i][0]; i++)
            set_ok(&c, cases[k].set[i]);
        int rc = dpt_config_validate(&c, &err);
        if (!cases[k].msg) {
            cr_assert_eq(rc, DPT_OK, "%s", err.msg);
            continue;
        }
        cr_assert_eq(rc, DPT_EUSAGE, "case %zu", k);
        cr_assert_str_eq(err.msg, cases[k].msg);
    }
    dpt_config_defaults(&c);
    cr_assert_eq(c.data.missing, DPT_MISSING_ERROR);
    cr_assert_eq(c.data.task, DPT_TASK_CLASSIFICATION);
    char path[64];
    cr_assert_eq(load_text(&c, "data:\n  label_column: [price, demand]\n", &err, path), DPT_OK,
                 "%s", err.msg); /* a YAML list of target columns is stored joined */
    cr_assert_str_eq(c.data.label_column, "price, demand");
    /* huber's delta: set, validated with the loss it is for */
    dpt_config_defaults(&c);
    set_ok(&c, "data.train_csv=t.csv");
    set_ok(&c, "data.format=csv");
    set_ok(&c, "data.task=regression");
    set_ok(&c, "model.loss=huber");
    set_ok(&c, "model.huber_delta=0.25");
    cr_assert_eq(c.model.huber_delta, 0.25);
    cr_assert_eq(dpt_config_validate(&c, &err), DPT_OK, "%s", err.msg);
}

/* Writes cfg to a temporary file, loads it over fresh defaults, and compares bytes. */
static void check_round_trip(const dpt_config *cfg)
{
    char path[64], first[128] = "";
    write_tmp(path, "");
    FILE *f = fopen(path, "w");
    cr_assert(f != NULL);
    cr_assert_eq(dpt_config_write(cfg, f), DPT_OK);
    cr_assert_eq(fclose(f), 0);
    f = fopen(path, "r");
    cr_assert(fgets(first, sizeof first, f) != NULL);
    fclose(f);
    cr_assert_str_eq(first, "# resolved configuration written by dptrain\n");

    dpt_config back;
    dpt_error err = {0};
    dpt_config_defaults(&back);
    int rc = dpt_config_load_file(&back, path, &err);
    unlink(path);
    cr_assert_eq(rc, DPT_OK, "reading the written config back failed: %s", err.msg);
    cr_assert_str_eq(back.run.name, cfg->run.name);
    cr_assert_eq(back.train.lr, cfg->train.lr);
    cr_assert_eq(back.train.eps, cfg->train.eps);
    cr_assert(memcmp(&back, cfg, sizeof back) == 0, "write -> load changed the config");
}

Test(config, write_then_load_round_trips)
{
    dpt_config c;
    dpt_config_defaults(&c);  /* zeroes the struct, padding included, before the defaults */
    check_round_trip(&c);

    /* Every field away from its default; strings that need escaping; doubles that %g with
     * 6 digits would round. */
    set_ok(&c, "run.name='it''s \"quoted\" \\ back\\slash, tab\t, caf\xc3\xa9'");
    set_ok(&c, "run.out_dir=\"line1\\nline2\\x01\"");
    set_ok(&c, "run.seed=18446744073709551615");
    set_ok(&c, "run.device=cuda");
    set_ok(&c, "run.threads=3");
    set_ok(&c, "data.format=synthetic");
    set_ok(&c, "data.train_images='#not a comment: really'");
    set_ok(&c, "data.train_labels='  spaces  '");
    set_ok(&c, "data.test_images=''");
    set_ok(&c, "data.test_labels=''");
    set_ok(&c, "data.train_csv='true'");
    set_ok(&c, "data.test_csv='123'");
    set_ok(&c, "data.csv_header=true");
    set_ok(&c, "data.synthetic_train=9223372036854775807");
    set_ok(&c, "data.synthetic_test=1");
    set_ok(&c, "data.synthetic_teacher_width=7");
    set_ok(&c, "data.validation_fraction=0.30000000000000004");
    set_ok(&c, "data.shuffle=false");
    set_ok(&c, "data.sharding=sharded");
    set_ok(&c, "data.scaling=none");
    set_ok(&c, "model.layers=[3,1000000,1,2,3,4,5,6,7,8,9,10,11,12,13,14,2]");
    set_ok(&c, "model.activation=gelu");
    set_ok(&c, "model.dropout=0.1234567890123456789");
    set_ok(&c, "model.loss=mse");
    set_ok(&c, "model.huber_delta=0.3333333333333333");
    set_ok(&c, "model.init=he");
    set_ok(&c, "train.epochs=100000");
    set_ok(&c, "train.batch_size=1");
    set_ok(&c, "train.optimizer=adamw");
    set_ok(&c, "train.lr=0.1");
    set_ok(&c, "train.momentum=0.99999999999999989");
    set_ok(&c, "train.nesterov=true");
    set_ok(&c, "train.weight_decay=1e-300");
    set_ok(&c, "train.beta1=0.5");
    set_ok(&c, "train.beta2=0.999999");
    set_ok(&c, "train.eps=4.9e-324");
    set_ok(&c, "train.schedule=cosine");
    set_ok(&c, "train.step_epochs=3");
    set_ok(&c, "train.step_gamma=0.3333333333333333");
    set_ok(&c, "train.min_lr=1e300");
    set_ok(&c, "train.warmup_epochs=2");
    set_ok(&c, "train.clip_grad_norm=2.5");
    set_ok(&c, "train.precision=tf32");
    set_ok(&c, "train.max_steps=12345678901");
    set_ok(&c, "train.log_every=1000");
    set_ok(&c, "comm.bucket_mb=0.0009765625000000002");
    set_ok(&c, "comm.overlap=false");
    set_ok(&c, "comm.algorithm=hierarchical");
    set_ok(&c, "comm.compress=bf16");
    cr_assert_str_eq(c.run.name, "it's \"quoted\" \\ back\\slash, tab\t, caf\xc3\xa9");
    cr_assert_str_eq(c.run.out_dir, "line1\nline2\x01");
    check_round_trip(&c);
}

Test(config, enum_names)
{
    cr_assert_str_eq(dpt_activation_name(DPT_ACT_RELU), "relu");
    cr_assert_str_eq(dpt_activation_name(DPT_ACT_IDENTITY), "identity");
    cr_assert_str_eq(dpt_optimizer_name(DPT_OPT_ADAMW), "adamw");
    cr_assert_str_eq(dpt_schedule_name(DPT_SCHED_COSINE), "cosine");
    cr_assert_str_eq(dpt_loss_name(DPT_LOSS_SOFTMAX_CE), "softmax_cross_entropy");
    cr_assert_str_eq(dpt_device_name(DPT_DEVICE_CUDA), "cuda");
    cr_assert_str_eq(dpt_format_name(DPT_FORMAT_SYNTHETIC), "synthetic");
    cr_assert_str_eq(dpt_sharding_name(DPT_SHARDING_SHARDED), "sharded");
    cr_assert_str_eq(dpt_scaling_name(DPT_SCALING_STANDARDIZE), "standardize");
    cr_assert_str_eq(dpt_init_name(DPT_INIT_XAVIER), "xavier");
    cr_assert_str_eq(dpt_precision_name(DPT_PREC_TF32), "tf32");
    cr_assert_str_eq(dpt_comm_algorithm_name(DPT_COMM_HIERARCHICAL), "hierarchical");
    cr_assert_str_eq(dpt_comm_algorithm_name(DPT_COMM_RING), "ring");
    cr_assert_str_eq(dpt_compress_name(DPT_COMPRESS_BF16), "bf16");
    cr_assert_str_eq(dpt_optimizer_name((dpt_optimizer)99), "unknown");
}

/* ---- dpt_config_set_value: the typed setter YAML loading and the search share ---------------- */

/* Asserts that setting key to v fails with exactly msg and leaves the config unchanged. */
static void expect_value_error(const char *key, dpt_value v, const char *msg)
{
    dpt_config cfg, before;
    dpt_error err;
    dpt_config_defaults(&cfg);
    memcpy(&before, &cfg, sizeof cfg);
    cr_assert_eq(dpt_config_set_value(&cfg, key, &v, &err), DPT_EUSAGE, "%s was accepted", key);
    cr_assert_str_eq(err.msg, msg);
    cr_assert(memcmp(&cfg, &before, sizeof cfg) == 0, "a failed set changed the config");
}

Test(config, set_value_stores_numbers_as_they_are)
{
    dpt_config c;
    dpt_error err;
    dpt_config_defaults(&c);
    /* a double that text with few digits would not give back exactly */
    double lr = 0.1 + 0.2;
    dpt_value v = {.kind = DPT_VALUE_DOUBLE, .d = lr};
    cr_assert_eq(dpt_config_set_value(&c, "train.lr", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert(c.train.lr == lr);
    v = (dpt_value){.kind = DPT_VALUE_INT, .i = 7};
    cr_assert_eq(dpt_config_set_value(&c, "train.epochs", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.train.epochs, 7);
    /* an integer for a number key, and for a 64-bit key */
    cr_assert_eq(dpt_config_set_value(&c, "train.clip_grad_norm", &v, &err), DPT_OK);
    cr_assert(c.train.clip_grad_norm == 7.0);
    v.i = 123456789012;
    cr_assert_eq(dpt_config_set_value(&c, "train.max_steps", &v, &err), DPT_OK);
    cr_assert_eq(c.train.max_steps, 123456789012);
    cr_assert_eq(dpt_config_set_value(&c, "run.seed", &v, &err), DPT_OK);
    cr_assert_eq(c.run.seed, 123456789012u);
}

Test(config, set_value_reads_text_and_yaml)
{
    dpt_config c;
    dpt_error err;
    dpt_config_defaults(&c);
    dpt_value v = {.kind = DPT_VALUE_STRING, .s = "tanh", .len = 4, .plain = 1};
    cr_assert_eq(dpt_config_set_value(&c, "model.activation", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.model.activation, DPT_ACT_TANH);
    v = (dpt_value){.kind = DPT_VALUE_STRING, .s = "null", .len = 4, .plain = 1};
    cr_assert_eq(dpt_config_set_value(&c, "data.test_csv", &v, &err), DPT_OK);
    cr_assert_str_eq(c.data.test_csv, "");
    v.plain = 0;  /* quoted: the text itself */
    cr_assert_eq(dpt_config_set_value(&c, "data.test_csv", &v, &err), DPT_OK);
    cr_assert_str_eq(c.data.test_csv, "null");
    v = (dpt_value){.kind = DPT_VALUE_YAML, .s = "[32, 16, 8, 4]"};
    cr_assert_eq(dpt_config_set_value(&c, "model.layers", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.model.n_layers, 3);
    cr_assert_eq(c.model.widths[2], 8);
}

Test(config, set_value_derived_and_indexed_keys)
{
    dpt_config c;
    dpt_error err;
    dpt_config_defaults(&c);  /* [784, 512, 512, 10] */
    dpt_value v = {.kind = DPT_VALUE_INT, .i = 3};
    cr_assert_eq(dpt_config_set_value(&c, "model.hidden_layers", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.model.n_layers, 4);
    v.i = 64;
    cr_assert_eq(dpt_config_set_value(&c, "model.hidden_width", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.model.widths[3], 64);
    v.i = 99;
    cr_assert_eq(dpt_config_set_value(&c, "model.layers[1]", &v, &err), DPT_OK, "%s", err.msg);
    cr_assert_eq(c.model.widths[1], 99);
    cr_assert_eq(c.model.widths[2], 64);
}

Test(config, set_value_errors_name_the_key)
{
    expect_value_error("train.epochs", (dpt_value){.kind = DPT_VALUE_INT, .i = 0},
                       "train.epochs: must be >= 1 (got 0)");
    expect_value_error("train.lr", (dpt_value){.kind = DPT_VALUE_DOUBLE, .d = 20.0},
                       "train.lr: must be <= 10 (got 20.0)");
    expect_value_error("run.seed", (dpt_value){.kind = DPT_VALUE_INT, .i = -1},
                       "run.seed: must be >= 0 (got -1)");
    expect_value_error("model.activation", (dpt_value){.kind = DPT_VALUE_INT, .i = 1},
                       "model.activation: expected one of relu, tanh, sigmoid, gelu, identity; "
                       "got '1'");
    expect_value_error("model.hidden_width", (dpt_value){.kind = DPT_VALUE_INT, .i = 0},
                       "model.hidden_width: must be >= 1 (got 0)");
    expect_value_error("model.layers[7]", (dpt_value){.kind = DPT_VALUE_INT, .i = 3},
                       "model.layers[7]: index out of range (the list has 4 entries)");
    expect_value_error("train.lrr", (dpt_value){.kind = DPT_VALUE_DOUBLE, .d = 0.1},
                       "unknown key 'train.lrr' (did you mean 'train.lr'?)");
    expect_value_error("model.layers", (dpt_value){.kind = DPT_VALUE_YAML, .s = "[1, x]"},
                       "model.layers[1]: expected an integer, got 'x'");
}
