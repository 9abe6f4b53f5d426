/* Tests of src/data.c: IDX (plain and gzipped), CSV and synthetic loading, every malformed-file
 * message, the validation split, sharding against replicated loading, and standardization.
 * Every input file is written by the test itself into a fresh temporary directory. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "csv.h"
#include "data.h"
#include "rng.h"

/* ---------------------------------------------------------------------------------------------
 * Temporary directory and file writers
 */

static char g_dir[256];

static void dir_setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dpt_test_data_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir), "mkdtemp: %s", strerror(errno));
}

static void dir_teardown(void)
{
    DIR *d = opendir(g_dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(g_dir);
}

TestSuite(data, .init = dir_setup, .fini = dir_teardown);

/* Writes the path of `name` inside the test directory into out (a config path field). */
static void tmp_path(char *out, const char *name)
{
    snprintf(out, DPT_PATH_MAX, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const void *buf, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f, "gzopen %s", path);
        if (n)
            cr_assert_eq(gzwrite(f, buf, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "fopen %s", path);
        cr_assert_eq(fwrite(buf, 1, n, f), n);
        cr_assert_eq(fclose(f), 0);
    }
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* IDX images: header (magic, header_count, rows, cols) then n_pixels bytes of pixels. */
static void write_idx_images(const char *path, uint32_t magic, uint32_t header_count, uint32_t rows,
                             uint32_t cols, const unsigned char *pixels, size_t n_pixels, int gz)
{
    unsigned char *b = malloc(16 + n_pixels);
    cr_assert_not_null(b);
    put_be32(b, magic);
    put_be32(b + 4, header_count);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    if (n_pixels)
        memcpy(b + 16, pixels, n_pixels);
    write_bytes(path, b, 16 + n_pixels, gz);
    free(b);
}

static void write_idx_labels(const char *path, uint32_t header_count, const unsigned char *labels,
                             size_t n, int gz)
{
    unsigned char *b = malloc(8 + n);
    cr_assert_not_null(b);
    put_be32(b, 0x00000801);
    put_be32(b + 4, header_count);
    if (n)
        memcpy(b + 8, labels, n);
    write_bytes(path, b, 8 + n, gz);
    free(b);
}

/* n images of `features` pseudo-random bytes and labels i % classes. */
static unsigned char *random_pixels(int64_t n, int features, uint64_t seed)
{
    unsigned char *p = malloc((size_t)(n * features) + 1);
    cr_assert_not_null(p);
    for (int64_t k = 0; k < n * features; k++)
        p[k] = (unsigned char)dpt_rng_u64(seed, 99, (uint64_t)k);
    return p;
}

/* A complete IDX pair (images + labels) named prefix-images / prefix-labels. */
static void write_idx_pair(char *images_field, char *labels_field, const char *prefix, int64_t n,
                           int rows, int cols, int classes, uint64_t seed, int gz)
{
    char name[128];
    snprintf(name, sizeof name, "%s-images%s", prefix, gz ? ".gz" : "");
    tmp_path(images_field, name);
    snprintf(name, sizeof name, "%s-labels%s", prefix, gz ? ".gz" : "");
    tmp_path(labels_field, name);
    unsigned char *px = random_pixels(n, rows * cols, seed);
    unsigned char *lb = malloc((size_t)n + 1);
    cr_assert_not_null(lb);
    for (int64_t i = 0; i < n; i++)
        lb[i] = (unsigned char)(i % classes);
    write_idx_images(images_field, 0x803, (uint32_t)n, (uint32_t)rows, (uint32_t)cols, px,
                     (size_t)(n * rows * cols), gz);
    write_idx_labels(labels_field, (uint32_t)n, lb, (size_t)n, gz);
    free(px);
    free(lb);
}

/* A config with model I -> 16 -> C, unit scaling, replicated, no validation rows. */
static void base_cfg(dpt_config *cfg, int I, int C)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->run.seed = 1;
    cfg->model.n_layers = 2;
    cfg->model.widths[0] = I;
    cfg->model.widths[1] = 16;
    cfg->model.widths[2] = C;
    cfg->data.format = DPT_FORMAT_IDX;
    cfg->data.scaling = DPT_SCALING_UNIT;
    cfg->data.sharding = DPT_SHARDING_REPLICATED;
    cfg->data.synthetic_teacher_width = 16;
}

#define assert_msg_has(err, sub)                                                                   \
    cr_assert(strstr((err).msg, (sub)) != NULL, "message \"%s\" lacks \"%s\"", (err).msg, (sub))

static void assert_zeroed(const dpt_data *d)
{
    dpt_data zero;
    memset(&zero, 0, sizeof zero);
    cr_assert(memcmp(d, &zero, sizeof zero) == 0, "dpt_data not zeroed after a failed load");
}

/* Loads and expects failure with `code`; checks out is left zeroed. */
static void expect_fail(const dpt_config *cfg, int code, dpt_error *err)
{
    dpt_data d;
    memset(&d, 0xab, sizeof d); /* the loader must zero it even on failure */
    memset(err, 0, sizeof *err);
    const dpt_data_spec spec = dpt_data_spec_from_config(cfg);
    int rc = dpt_data_load(&spec, 0, 1, NULL, NULL, &d, err);
    cr_assert_eq(rc, code, "rc %d (expected %d): %s", rc, code, err->msg);
    cr_assert_eq(err->code, code);
    assert_zeroed(&d);
}

static void load_ok(const dpt_config *cfg, int rank, int n_ranks, dpt_sum_fn sum, void *ctx,
                    dpt_data *d)
{
    dpt_error err = {0};
    const dpt_data_spec spec = dpt_data_spec_from_config(cfg);
    int rc = dpt_data_load(&spec, rank, n_ranks, sum, ctx, d, &err);
    cr_assert_eq(rc, DPT_OK, "load failed: %s", err.msg);
}

static int datasets_equal(const dpt_dataset *a, const dpt_dataset *b)
{
    return a->n == b->n && a->features == b->features && a->classes == b->classes &&
           (a->n == 0 || (memcmp(a->x, b->x, (size_t)a->n * a->features * sizeof(float)) == 0 &&
                          memcmp(a->y, b->y, (size_t)a->n * sizeof(int32_t)) == 0));
}

/* ---------------------------------------------------------------------------------------------
 * IDX
 */

#define FMNIST "/usr/share/datasets/fashion-mnist/"

Test(data, fashion_mnist_real)
{
    if (access(FMNIST "train-images-idx3-ubyte.gz", R_OK) ||
        access(FMNIST "t10k-labels-idx1-ubyte.gz", R_OK))
        cr_skip_test("Fashion-MNIST not found under " FMNIST);
    dpt_config cfg;
    base_cfg(&cfg, 784, 10);
    strcpy(cfg.data.train_images, FMNIST "train-images-idx3-ubyte.gz");
    strcpy(cfg.data.train_labels, FMNIST "train-labels-idx1-ubyte.gz");
    strcpy(cfg.data.test_images, FMNIST "t10k-images-idx3-ubyte.gz");
    strcpy(cfg.data.test_labels, FMNIST "t10k-labels-idx1-ubyte.gz");
    cfg.data.validation_fraction = 0.1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dpt_data d;
    load_ok(&cfg, 0, 1, NULL, NULL, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_log_info("Fashion-MNIST train+test loaded in %.3f s",
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    cr_assert_eq(d.train.n, 54000);
    cr_assert_eq(d.val.n, 6000);
    cr_assert_eq(d.test.n, 10000);
    cr_assert_eq(d.train.n_total, 54000);
    cr_assert_eq(d.test.n_total, 10000);
    cr_assert_eq(d.sharded, 0);
    const dpt_dataset *s[3] = {&d.train, &d.val, &d.test};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(s[k]->features, 784);
        cr_assert_eq(s[k]->classes, 10);
        int seen[10] = {0};
        for (int64_t i = 0; i < s[k]->n; i++) {
            cr_assert(s[k]->y[i] >= 0 && s[k]->y[i] < 10, "label %d", s[k]->y[i]);
            seen[s[k]->y[i]] = 1;
        }
        for (int c = 0; c < 10; c++)
            cr_assert(seen[c], "class %d missing from split %d", c, k);
        float lo = 1, hi = 0;
        for (int64_t k2 = 0; k2 < s[k]->n * 784; k2++) {
            lo = fminf(lo, s[k]->x[k2]);
            hi = fmaxf(hi, s[k]->x[k2]);
        }
        cr_assert(lo == 0.0f && hi == 1.0f, "pixels in [%g, %g], expected exactly [0, 1]", lo, hi);
    }
    dpt_data_free(&d);
    assert_zeroed(&d);
}

Test(data, idx_plain_and_gzip_identical)
{
    const int n = 37, rows = 4, cols = 5, F = rows * cols;
    dpt_config plain, gz;
    base_cfg(&plain, F, 7);
    write_idx_pair(plain.data.train_images, plain.data.train_labels, "p", n, rows, cols, 7, 3, 0);
    write_idx_pair(plain.data.test_images, plain.data.test_labels, "pt", 11, rows, cols, 7, 4, 0);
    base_cfg(&gz, F, 7);
    write_idx_pair(gz.data.train_images, gz.data.train_labels, "g", n, rows, cols, 7, 3, 1);
    write_idx_pair(gz.data.test_images, gz.data.test_labels, "gt", 11, rows, cols, 7, 4, 1);
    dpt_data a, b;
    load_ok(&plain, 0, 1, NULL, NULL, &a);
    load_ok(&gz, 0, 1, NULL, NULL, &b);
    cr_assert(datasets_equal(&a.train, &b.train));
    cr_assert(datasets_equal(&a.test, &b.test));
    /* and both hold exactly what was written: byte / 255.0f, labels i % 7 */
    unsigned char *px = random_pixels(n, F, 3);
    cr_assert_eq(a.train.n, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(a.train.y[i], i % 7);
        for (int j = 0; j < F; j++)
            cr_assert(a.train.x[i * F + j] == (float)px[i * F + j] / 255.0f, "row %d col %d", i, j);
    }
    free(px);
    /* scaling none keeps the raw bytes */
    gz.data.scaling = DPT_SCALING_NONE;
    dpt_data c;
    load_ok(&gz, 0, 1, NULL, NULL, &c);
    for (int k = 0; k < n * F; k++)
        cr_assert(c.train.x[k] == roundf(a.train.x[k] * 255.0f));
    dpt_data_free(&a);
    dpt_data_free(&b);
    dpt_data_free(&c);
}

Test(data, idx_bad_magic)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "m", 5, 4, 5, 10, 1, 1);
    write_idx_images(cfg.data.train_images, 0x00000801, 5, 4, 5, NULL, 0, 1);
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_images);
    assert_msg_has(err, "bad magic 0x00000801, expected 0x00000803");
}

Test(data, idx_truncated_image_file)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "t", 10, 4, 5, 10, 1, 0);
    unsigned char *px = random_pixels(3, 20, 1);
    write_idx_images(cfg.data.train_images, 0x803, 10, 4, 5, px, 3 * 20, 0); /* says 10, holds 3 */
    free(px);
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_images);
    assert_msg_has(err, "truncated: expected 200 bytes of image data, got 60");

    /* a header cut short */
    write_bytes(cfg.data.train_images, "\0\0\x08\x03\0\0\0", 7, 0);
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, "truncated: expected 16 bytes of header, got 7");
}

/* Reads a whole file into memory. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

Test(data, idx_truncated_and_corrupt_gzip)
{
    dpt_config cfg;
    base_cfg(&cfg, 784, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "z", 200, 28, 28, 10, 5, 1);
    size_t n;
    unsigned char *gz = slurp(cfg.data.train_images, &n);
    dpt_error err;

    /* the gzip stream cut in half */
    write_bytes(cfg.data.train_images, gz, n / 2, 0);
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_images);
    assert_msg_has(err, "corrupt or truncated gzip stream (zlib: unexpected end of file)");
    assert_msg_has(err, "bytes of image data");

    /* bytes flipped in the middle of the compressed data: zlib reports the damage (a bad
     * block, a bad distance or, at the latest, the trailer's CRC) */
    for (size_t k = n / 2; k < n / 2 + 16; k++)
        gz[k] ^= 0x5a;
    write_bytes(cfg.data.train_images, gz, n, 0);
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_images);
    assert_msg_has(err, "corrupt or truncated gzip stream (zlib: ");
    free(gz);
}

Test(data, idx_count_mismatch)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "c", 10, 4, 5, 10, 1, 0);
    unsigned char lb[9] = {0};
    write_idx_labels(cfg.data.train_labels, 9, lb, 9, 0);
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    char want[3 * DPT_PATH_MAX];
    snprintf(want, sizeof want, "%s has 10 images but %s has 9 labels", cfg.data.train_images,
             cfg.data.train_labels);
    assert_msg_has(err, want);
}

Test(data, idx_label_out_of_range)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "l", 8, 4, 5, 10, 1, 1);
    unsigned char lb[8] = {0, 1, 2, 3, 4, 10, 6, 7};
    write_idx_labels(cfg.data.train_labels, 8, lb, 8, 1);
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_labels);
    assert_msg_has(err, "label 10 at row 5 is out of range for model.layers[-1] = 10 classes");
}

Test(data, idx_features_mismatch)
{
    dpt_config cfg;
    base_cfg(&cfg, 100, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "f", 8, 4, 5, 10, 1, 0);
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    assert_msg_has(err, cfg.data.train_images);
    assert_msg_has(err, "data has 20 features per row but model.layers[0] is 100");
}

Test(data, missing_file)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "ok", 8, 4, 5, 10, 1, 0);
    tmp_path(cfg.data.test_images, "no-such-file.gz");
    tmp_path(cfg.data.test_labels, "no-such-labels.gz");
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err); /* the training set loaded first is freed again */
    assert_msg_has(err, cfg.data.test_images);
    assert_msg_has(err, strerror(ENOENT));
}

/* ---------------------------------------------------------------------------------------------
 * CSV
 */

static void write_text(char *field, const char *name, const char *text)
{
    tmp_path(field, name);
    write_bytes(field, text, strlen(text), 0);
}

Test(data, csv_good_with_and_without_header)
{
    static const float want_x[3][3] = {{0.5f, -1.25f, 2.0f}, {1e-3f, 0.0f, 7.0f},
                                       {-3.0f, 4.5f, 1e6f}};
    static const int want_y[3] = {3, 0, 4};
    const char *body = "3,0.5,-1.25,2\n"
                       "0, 1e-3 ,0,7\r\n"
                       "\n"                /* blank lines are skipped */
                       "4.0,-3,4.5,1e6";   /* no final newline; integral "4.0" is a label */
    for (int header = 0; header <= 1; header++) {
        dpt_config cfg;
        base_cfg(&cfg, 3, 5);
        cfg.data.format = DPT_FORMAT_CSV;
        cfg.data.csv_header = header;
        char text[256];
        snprintf(text, sizeof text, "%s%s", header ? "label,a,b,c\n" : "", body);
        write_text(cfg.data.train_csv, "train.csv", text);
        write_text(cfg.data.test_csv, "test.csv", header ? "y,a,b,c\n1,1,2,3\n" : "1,1,2,3\n");
        dpt_data d;
        load_ok(&cfg, 0, 1, NULL, NULL, &d);
        cr_assert_eq(d.train.n, 3);
        cr_assert_eq(d.train.features, 3);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(d.train.y[i], want_y[i]);
            for (int j = 0; j < 3; j++)
                cr_assert(d.train.x[i * 3 + j] == want_x[i][j], "header %d row %d col %d: %g",
                          header, i, j, d.train.x[i * 3 + j]);
        }
        cr_assert_eq(d.test.n, 1);
        cr_assert_eq(d.test.y[0], 1);
        cr_assert(d.test.x[0] == 1.0f && d.test.x[1] == 2.0f && d.test.x[2] == 3.0f);
        dpt_data_free(&d);
    }
}

Test(data, csv_ragged_row)
{
    dpt_config cfg;
    base_cfg(&cfg, 3, 5);
    cfg.data.format = DPT_FORMAT_CSV;
    write_text(cfg.data.train_csv, "ragged.csv", "1,1,2,3\n2,1,2,3\n3,1,2\n");
    dpt_error err;
    expect_fail(&cfg, DPT_EUSAGE, &err);
    char want[DPT_PATH_MAX + 64];
    snprintf(want, sizeof want, "%s:3: row has 3 fields but the first row has 4",
             cfg.data.train_csv);
    assert_msg_has(err, want);
}

Test(data, csv_bad_fields)
{
    dpt_config cfg;
    base_cfg(&cfg, 3, 5);
    cfg.data.format = DPT_FORMAT_CSV;
    cfg.data.csv_header = 1;
    dpt_error err;
    char want[DPT_PATH_MAX + 96];
    static const struct { const char *text, *msg; } cases[] = {
        {"y,a,b,c\n1,1,2,3\n2,1,2,3\n0,1,abc,3\n", ":4: column 3 (b) (\"abc\") is not a number"},
        {"y,a,b,c\n1,1,2,3\n2,1,,3\n",
         ":3: column 3 (b): missing value (\"\") in data row 2"},
        {"y,a,b,c\n1,1,2,NA\n", ":2: column 4 (c): missing value (\"NA\") in data row 1"},
        {"y,a,b,c\n1,1,2,nan\n", ":2: column 4 (c): missing value (\"nan\") in data row 1"},
        {"y,a,b,c\n1,1,2,inf\n", ":2: column 4 (c) (\"inf\") is not a finite number"},
        {"y,a,b,c\n1,1,1e39,3\n",
         ":2: column 3 (b) (\"1e39\") is not a finite number in single precision"},
        {"y,a,b,c\n1,1,2,3\nx,1,2,3\n", ":3: column 1 (y): label \"x\" is not a number (the "
                                         "first label was; set data.class_names to use names)"},
        {"y,a,b,c\n2.5,1,2,3\n", ":2: column 1 (y): label \"2.5\" is not an integer"},
        {"y,a,b,c\n-1,1,2,3\n", ":2: column 1 (y): label -1 is negative"},
        {"y,a,b,c\n1,1,2,3\n5,1,2,3\n",
         ":3: label 5 at row 1 is out of range for model.layers[-1] = 5 classes"},
        {"y,a,b\n1,1,2\n", ":2: data has 2 features per row but model.layers[0] is 3"},
        {"y,a,b,c\n1,\"1\"x,2,3\n", ":2: column 2: text after the closing quote"},
        {"y,a,b,c\n1,1\"2,2,3\n", ":2: column 2: a quote inside an unquoted field"},
        {"y,a,b,c\n1,1,2,\"3\n", ":2: unterminated quoted field (the file ends inside quotes)"},
        {"y,a,b,c\n", ": no data rows"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_text(cfg.data.train_csv, "bad.csv", cases[k].text);
        expect_fail(&cfg, DPT_EUSAGE, &err);
        snprintf(want, sizeof want, "%s%s", cfg.data.train_csv, cases[k].msg);
        assert_msg_has(err, want);
    }
}

/* Loading fails (DPT_EUSAGE) with a message holding path followed by tail. */
static void expect_msg_at(const dpt_config *cfg, const char *path, const char *tail)
{
    dpt_error err;
    expect_fail(cfg, DPT_EUSAGE, &err);
    char want[DPT_PATH_MAX + 256];
    snprintf(want, sizeof want, "%s%s", path, tail);
    assert_msg_has(err, want);
}

/* The cases of CSV as people write it: a header of names, quoted fields, CRLF, gzip, string
 * labels, the label by name or by a negative index, feature columns by name and range. */
static void csv_load(dpt_config *cfg, const char *text, int gz, dpt_data *d)
{
    tmp_path(cfg->data.train_csv, gz ? "t.csv.gz" : "t.csv");
    write_bytes(cfg->data.train_csv, text, strlen(text), gz);
    load_ok(cfg, 0, 1, NULL, NULL, d);
}

static void csv_expect(const dpt_data *d, int n, const float *x, const int *y)
{
    const int I = d->train.features;
    cr_assert_eq(d->train.n, n);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(d->train.y[i], y[i], "row %d: label %d, expected %d", i, d->train.y[i], y[i]);
        for (int j = 0; j < I; j++)
            cr_assert(d->train.x[i * I + j] == x[i * I + j], "row %d col %d: %g, expected %g", i,
                      j, d->train.x[i * I + j], x[i * I + j]);
    }
}

Test(data, csv_header_names_string_labels_last_column)
{
    /* the scikit-learn layout: header detected (no number in it), label last, class names;
     * quoted fields with commas, doubled quotes and a newline in a skipped text column; CRLF */
    const char *text = "id,\"note, free text\",sepal,petal,species\r\n"
                       "1,\"a \"\"quoted\"\" note\",5.1,1.4,setosa\r\n"
                       "2,\"two\nlines\",7.0,4.7,versicolor\r\n"
                       "3,,6.3,6.0,\"virginica\"\r\n"
                       "4,x,4.9,1.5,setosa\r\n";
    static const float x[] = {5.1f, 1.4f, 7.0f, 4.7f, 6.3f, 6.0f, 4.9f, 1.5f};
    for (int gz = 0; gz <= 1; gz++) {
        dpt_config cfg;
        base_cfg(&cfg, 2, 3);
        cfg.data.format = DPT_FORMAT_CSV;
        snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "species");
        snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "sepal, petal");
        dpt_data d;
        csv_load(&cfg, text, gz, &d);
        static const int sorted[] = {0, 1, 2, 0}; /* setosa < versicolor < virginica */
        csv_expect(&d, 4, x, sorted);
        cr_assert_str_eq(d.class_names[2], "virginica");
        cr_assert_str_eq(d.feature_names[0], "sepal");
        cr_assert_str_eq(d.feature_names[1], "petal");
        cr_assert_str_eq(d.label_name, "species");
        dpt_data_free(&d);
        /* the label by negative index, features by range, the class order stated */
        snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "-1");
        snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "2:-1");
        snprintf(cfg.data.class_names, sizeof cfg.data.class_names,
                 "virginica, versicolor, setosa");
        csv_load(&cfg, text, gz, &d);
        static const int stated[] = {2, 1, 0, 2};
        csv_expect(&d, 4, x, stated);
        dpt_data_free(&d);
    }
}

Test(data, csv_test_file_by_the_training_names)
{
    dpt_config cfg;
    base_cfg(&cfg, 1, 2);
    cfg.data.format = DPT_FORMAT_CSV;
    snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "y");
    write_text(cfg.data.test_csv, "test.csv", "y,v\nrain,1\nsun,2\n");
    dpt_data d;
    csv_load(&cfg, "v,y\n0.5,sun\n1.5,rain\n", 0, &d); /* columns in another order */
    cr_assert_eq(d.test.n, 2);
    cr_assert_eq(d.test.y[0], 0); /* rain */
    cr_assert_eq(d.test.y[1], 1); /* sun */
    cr_assert(d.test.x[1] == 2.0f);
    dpt_data_free(&d);
    write_text(cfg.data.test_csv, "test.csv", "y,v\nrain,1\nsnow,2\n");
    tmp_path(cfg.data.train_csv, "t.csv");
    expect_msg_at(&cfg, cfg.data.test_csv,
                  ":3: column 1 (y): label \"snow\" is not one of the 2 classes");
}

Test(data, csv_column_errors)
{
    dpt_config cfg;
    base_cfg(&cfg, 2, 2);
    cfg.data.format = DPT_FORMAT_CSV;
    static const struct { const char *label, *features, *classes, *text, *msg; } cases[] = {
        {"kind", "", "", "a,b,c\n1,2,0\n", ": data.label_column: no column named 'kind' in "
                                            "the header"},
        {"c", "a,zz", "", "a,b,c\n1,2,0\n", ": data.feature_columns: no column named 'zz'"},
        {"c", "a,a", "", "a,b,c\n1,2,0\n", ": data.feature_columns: column 0 ('a') is listed "
                                            "twice"},
        {"c", "a,c", "", "a,b,c\n1,2,0\n", ": data.feature_columns: 'c' is the label column"},
        {"5", "", "", "a,b,c\n1,2,0\n", ": data.label_column: column index 5 is out of range "
                                         "for 3 columns"},
        {"y", "", "", "1,2,0\n", ": data.label_column: 'y' is a column name but the file has "
                                 "no header line"},
        {"-1", "0:x", "", "1,2,0\n", ": data.feature_columns: '0:x' is not a range"},
        {"-1", "", "", "a,b,c\n1,2,u\n1,2,v\n3,4,w\n",
         ":4: column 3 (c): label \"w\" is class 3 but model.layers[-1] is 2 classes"},
        {"-1", "", "", "a,b,c\n1,2,u\n1,2,u\n", ": the label column holds 1 class names but "
                                                  "model.layers[-1] is 2"},
        {"-1", "", "u,v,w", "a,b,c\n1,2,u\n", "data.class_names has 3 names but "
                                              "model.layers[-1] is 2"},
        {"-1", "", "u,v", "a,b,c\n1,2,u\n3,4,\n", ":3: column 3 (c): missing label (\"\")"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "%s", cases[k].label);
        snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "%s",
                 cases[k].features);
        snprintf(cfg.data.class_names, sizeof cfg.data.class_names, "%s", cases[k].classes);
        write_text(cfg.data.train_csv, "bad.csv", cases[k].text);
        expect_msg_at(&cfg, cases[k].msg[0] == 'd' ? "" : cfg.data.train_csv, cases[k].msg);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Synthetic
 */

static void synth_cfg(dpt_config *cfg, int64_t n_train, int64_t n_test)
{
    base_cfg(cfg, 8, 4);
    cfg->run.seed = 42;
    cfg->data.format = DPT_FORMAT_SYNTHETIC;
    cfg->data.synthetic_train = n_train;
    cfg->data.synthetic_test = n_test;
    cfg->data.synthetic_teacher_width = 16;
}

Test(data, synthetic_deterministic)
{
    dpt_config cfg;
    synth_cfg(&cfg, 500, 100);
    dpt_data a, b, c;
    load_ok(&cfg, 0, 1, NULL, NULL, &a);
    load_ok(&cfg, 0, 1, NULL, NULL, &b);
    cr_assert(datasets_equal(&a.train, &b.train) && datasets_equal(&a.test, &b.test));
    cr_assert_eq(a.train.n, 500);
    cr_assert_eq(a.test.n, 100);
    /* row i, feature j is draw i*I + j of the SYNTH_X stream: a pure function of (seed, i) */
    for (int i = 0; i < 500; i += 97)
        for (int j = 0; j < 8; j++)
            cr_assert(a.train.x[i * 8 + j] ==
                      dpt_rng_normal(42, DPT_RNG_SYNTH_X, (uint64_t)i * 8 + (uint64_t)j));
    int count[4] = {0}, classes = 0;
    for (int i = 0; i < 500; i++) {
        cr_assert(a.train.y[i] >= 0 && a.train.y[i] < 4);
        count[a.train.y[i]]++;
    }
    for (int k = 0; k < 4; k++)
        classes += count[k] > 0;
    cr_assert(classes > 1, "labels cover only %d class", classes);
    /* test rows are different draws from training rows */
    cr_assert(memcmp(a.train.x, a.test.x, 8 * sizeof(float)) != 0);
    /* another seed gives other data */
    cfg.run.seed = 43;
    load_ok(&cfg, 0, 1, NULL, NULL, &c);
    cr_assert(!datasets_equal(&a.train, &c.train));
    dpt_data_free(&a);
    dpt_data_free(&b);
    dpt_data_free(&c);
}

/* ---------------------------------------------------------------------------------------------
 * Sharding: R ranks' rows concatenated equal the replicated rows
 */

static void concat_append(dpt_dataset *all, const dpt_dataset *part)
{
    const int I = part->features;
    all->features = I;
    all->classes = part->classes;
    all->x = realloc(all->x, (size_t)(all->n + part->n) * I * sizeof(float) + 1);
    all->y = realloc(all->y, (size_t)(all->n + part->n) * sizeof(int32_t) + 1);
    cr_assert(all->x && all->y);
    if (part->n) {
        memcpy(all->x + all->n * I, part->x, (size_t)part->n * I * sizeof(float));
        memcpy(all->y + all->n, part->y, (size_t)part->n * sizeof(int32_t));
    }
    all->n += part->n;
}

static void check_sharded_equals_replicated(dpt_config *cfg, int R)
{
    dpt_data rep, part;
    cfg->data.sharding = DPT_SHARDING_REPLICATED;
    load_ok(cfg, 0, 1, NULL, NULL, &rep);
    cr_assert_eq(rep.sharded, 0);
    cfg->data.sharding = DPT_SHARDING_SHARDED;
    dpt_dataset train = {0}, test = {0};
    for (int r = 0; r < R; r++) {
        load_ok(cfg, r, R, NULL, NULL, &part);
        cr_assert_eq(part.sharded, 1);
        cr_assert_eq(part.train.n_total, rep.train.n, "rank %d", r);
        cr_assert_eq(part.test.n_total, rep.test.n, "rank %d", r);
        /* rank r holds rows [r*N/R, (r+1)*N/R) */
        cr_assert_eq(part.train.n, (r + 1) * rep.train.n / R - r * rep.train.n / R);
        concat_append(&train, &part.train);
        concat_append(&test, &part.test);
        dpt_data_free(&part);
    }
    cr_assert(datasets_equal(&train, &rep.train), "sharded training rows differ");
    cr_assert(datasets_equal(&test, &rep.test), "sharded test rows differ");
    free(train.x);
    free(train.y);
    free(test.x);
    free(test.y);
    dpt_data_free(&rep);
}

Test(data, sharded_idx_equals_replicated)
{
    dpt_config cfg;
    base_cfg(&cfg, 20, 10);
    write_idx_pair(cfg.data.train_images, cfg.data.train_labels, "s", 10, 4, 5, 10, 8, 1);
    write_idx_pair(cfg.data.test_images, cfg.data.test_labels, "st", 7, 4, 5, 10, 9, 0);
    check_sharded_equals_replicated(&cfg, 3);
}

Test(data, sharded_synthetic_equals_replicated)
{
    dpt_config cfg;
    synth_cfg(&cfg, 100, 20);
    check_sharded_equals_replicated(&cfg, 3);
}

Test(data, sharded_csv_equals_replicated)
{
    dpt_config cfg;
    base_cfg(&cfg, 2, 3);
    cfg.data.format = DPT_FORMAT_CSV;
    write_text(cfg.data.train_csv, "s.csv", "0,1,2\n1,3,4\n2,5,6\n0,7,8\n1,9,10\n");
    check_sharded_equals_replicated(&cfg, 3);
}

/* ---------------------------------------------------------------------------------------------
 * Validation split
 */

/* Rows of an IDX file whose first two pixels encode the row index (scaling none). */
static void write_indexed_idx(dpt_config *cfg, int64_t n)
{
    tmp_path(cfg->data.train_images, "ix-images");
    tmp_path(cfg->data.train_labels, "ix-labels");
    unsigned char *px = calloc((size_t)n * 4, 1), *lb = malloc((size_t)n);
    cr_assert(px && lb);
    for (int64_t i = 0; i < n; i++) {
        px[i * 4] = (unsigned char)(i % 256);
        px[i * 4 + 1] = (unsigned char)(i / 256);
        lb[i] = (unsigned char)(i % 10);
    }
    write_idx_images(cfg->data.train_images, 0x803, (uint32_t)n, 2, 2, px, (size_t)n * 4, 1);
    write_idx_labels(cfg->data.train_labels, (uint32_t)n, lb, (size_t)n, 1);
    free(px);
    free(lb);
}

/* Marks the row indices of ds in seen[], checking file order and the labels. */
static void mark_rows(const dpt_dataset *ds, int *seen, int64_t lo, int64_t hi)
{
    int64_t prev = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t idx = (int64_t)ds->x[i * 4] + 256 * (int64_t)ds->x[i * 4 + 1];
        cr_assert(idx > prev, "rows out of file order: %lld after %lld", (long long)idx,
                  (long long)prev);
        cr_assert(idx >= lo && idx < hi, "row %lld outside [%lld, %lld)", (long long)idx,
                  (long long)lo, (long long)hi);
        cr_assert_eq(ds->y[i], idx % 10);
        seen[idx]++;
        prev = idx;
    }
}

Test(data, validation_split)
{
    const int64_t N = 1000;
    dpt_config cfg;
    base_cfg(&cfg, 4, 10);
    cfg.data.scaling = DPT_SCALING_NONE;
    cfg.data.validation_fraction = 0.25;
    write_indexed_idx(&cfg, N);
    int seen[1000] = {0};
    dpt_data a, b, c;
    load_ok(&cfg, 0, 1, NULL, NULL, &a);
    cr_assert_eq(a.val.n, 250);
    cr_assert_eq(a.train.n, 750);
    cr_assert_eq(a.val.n_total, 250);
    cr_assert_eq(a.train.n_total, 750);
    mark_rows(&a.train, seen, 0, N);
    mark_rows(&a.val, seen, 0, N);
    for (int64_t i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "row %lld appears %d times in train + val", (long long)i, seen[i]);
    load_ok(&cfg, 0, 1, NULL, NULL, &b); /* same seed: same split */
    cr_assert(datasets_equal(&a.val, &b.val) && datasets_equal(&a.train, &b.train));
    cfg.run.seed = 2; /* another seed: another split */
    load_ok(&cfg, 0, 1, NULL, NULL, &c);
    cr_assert(!datasets_equal(&a.val, &c.val));
    dpt_data_free(&a);
    dpt_data_free(&b);
    dpt_data_free(&c);

    /* sharded: each rank splits its own shard; totals are the sums over ranks */
    cfg.data.sharding = DPT_SHARDING_SHARDED;
    memset(seen, 0, sizeof seen);
    for (int r = 0; r < 3; r++) {
        int64_t lo = r * N / 3, hi = (r + 1) * N / 3;
        load_ok(&cfg, r, 3, NULL, NULL, &a);
        cr_assert_eq(a.val.n, (hi - lo) / 4); /* floor(333 * 0.25) = 83, floor(334 * .25) = 83 */
        cr_assert_eq(a.train.n, (hi - lo) - (hi - lo) / 4);
        cr_assert_eq(a.val.n_total, 3 * 83);
        cr_assert_eq(a.train.n_total, N - 3 * 83);
        mark_rows(&a.train, seen, lo, hi);
        mark_rows(&a.val, seen, lo, hi);
        dpt_data_free(&a);
    }
    for (int64_t i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "sharded: row %lld appears %d times", (long long)i, seen[i]);
}

/* ---------------------------------------------------------------------------------------------
 * Standardization
 */

/* IDX rows of 6 features: feature j uniform in [0, 40j + 10), feature 5 constant (7). */
static void write_skewed_idx(char *images, char *labels, const char *prefix, int64_t n,
                             uint64_t seed)
{
    char name[64];
    snprintf(name, sizeof name, "%s-images.gz", prefix);
    tmp_path(images, name);
    snprintf(name, sizeof name, "%s-labels.gz", prefix);
    tmp_path(labels, name);
    unsigned char *px = malloc((size_t)n * 6), *lb = malloc((size_t)n);
    cr_assert(px && lb);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < 5; j++)
            px[i * 6 + j] = (unsigned char)(dpt_rng_u64(seed, 7, (uint64_t)(i * 6 + j)) %
                                            (uint64_t)(40 * j + 10));
        px[i * 6 + 5] = 7;
        lb[i] = (unsigned char)(i % 3);
    }
    write_idx_images(images, 0x803, (uint32_t)n, 2, 3, px, (size_t)n * 6, 1);
    write_idx_labels(labels, (uint32_t)n, lb, (size_t)n, 1);
    free(px);
    free(lb);
}

/* Tolerance: the statistics are exact to ~1e-15 in double; what remains is one float rounding
 * of each standardized value (|x| <= ~2, so <= 2.4e-7), which averages far below 1e-4. A wrong
 * mean or std (e.g. stats taken over val or test, or bytes not divided by 255) is off by > 1e-2. */
#define STD_TOL 1e-4

Test(data, standardize_train_stats)
{
    dpt_config cfg;
    base_cfg(&cfg, 6, 3);
    write_skewed_idx(cfg.data.train_images, cfg.data.train_labels, "tr", 2000, 1);
    write_skewed_idx(cfg.data.test_images, cfg.data.test_labels, "te", 300, 2);
    cfg.data.validation_fraction = 0.2;
    cfg.data.scaling = DPT_SCALING_STANDARDIZE;
    dpt_data d, u;
    load_ok(&cfg, 0, 1, NULL, NULL, &d);
    cfg.data.scaling = DPT_SCALING_UNIT;
    load_ok(&cfg, 0, 1, NULL, NULL, &u);
    cr_assert_eq(d.train.n, 1600);
    for (int j = 0; j < 6; j++) {
        double s = 0, s2 = 0, us = 0, us2 = 0;
        for (int64_t i = 0; i < d.train.n; i++) {
            s += d.train.x[i * 6 + j];
            s2 += (double)d.train.x[i * 6 + j] * d.train.x[i * 6 + j];
            us += u.train.x[i * 6 + j];
            us2 += (double)u.train.x[i * 6 + j] * u.train.x[i * 6 + j];
        }
        double mean = s / d.train.n, sd = sqrt(fmax(s2 / d.train.n - mean * mean, 0.0));
        cr_assert(fabs(mean) < STD_TOL, "feature %d: mean %g", j, mean);
        if (j < 5) {
            cr_assert(fabs(sd - 1.0) < STD_TOL, "feature %d: std %g", j, sd);
        } else { /* constant: std floored at 1e-6, x - mean == 0 */
            cr_assert(sd == 0.0, "constant feature: std %g", sd);
        }
        /* val and test use the training statistics of the unit-scaled values */
        double um = us / u.train.n, usd = sqrt(fmax(us2 / u.train.n - um * um, 0.0));
        if (usd < 1e-6)
            usd = 1e-6;
        const dpt_dataset *o[2][2] = {{&d.val, &u.val}, {&d.test, &u.test}};
        for (int k = 0; k < 2; k++)
            for (int64_t i = 0; i < o[k][0]->n; i++) {
                double want = (o[k][1]->x[i * 6 + j] - um) / usd;
                cr_assert(fabs(o[k][0]->x[i * 6 + j] - want) < STD_TOL,
                          "split %d row %lld feature %d: %g, want %g", k, (long long)i, j,
                          o[k][0]->x[i * 6 + j], want);
            }
    }
    dpt_data_free(&d);
    dpt_data_free(&u);
}

/* A stand-in for MPI_Allreduce over ranks loaded one after another: phase 0 records each rank's
 * buffer and adds it to the total; phase 1 hands every rank the total. */
typedef struct {
    int phase, calls, n;
    double total[64];
} fake_allreduce;

static void fake_sum(double *buf, int n, void *ctx)
{
    fake_allreduce *f = ctx;
    cr_assert(n <= 64);
    if (f->n == 0)
        f->n = n;
    cr_assert_eq(n, f->n);
    f->calls++;
    for (int k = 0; k < n; k++) {
        if (f->phase == 0)
            f->total[k] += buf[k];
        else
            buf[k] = f->total[k];
    }
}

Test(data, standardize_sharded_uses_global_stats)
{
    dpt_config cfg;
    base_cfg(&cfg, 6, 3);
    write_skewed_idx(cfg.data.train_images, cfg.data.train_labels, "tr", 1001, 3);
    cfg.data.scaling = DPT_SCALING_STANDARDIZE;
    fake_allreduce f = {0};
    dpt_data rep, part;
    load_ok(&cfg, 0, 1, fake_sum, &f, &rep);
    cr_assert_eq(f.calls, 0, "replicated data must not be summed across ranks");
    cfg.data.sharding = DPT_SHARDING_SHARDED;
    for (f.phase = 0; f.phase < 2; f.phase++) {
        dpt_dataset all = {0};
        for (int r = 0; r < 3; r++) {
            load_ok(&cfg, r, 3, fake_sum, &f, &part);
            concat_append(&all, &part.train);
            dpt_data_free(&part);
        }
        cr_assert_eq(f.n, 2 * 6 + 1);
        cr_assert_eq(f.total[0], 1001.0, "count summed over ranks: %g", f.total[0]);
        if (f.phase == 1) {
            /* Same statistics summed in another order: at most a float rounding apart. */
            cr_assert_eq(all.n, rep.train.n);
            for (int64_t k = 0; k < all.n * 6; k++)
                cr_assert(fabsf(all.x[k] - rep.train.x[k]) < 1e-5f, "element %lld: %g vs %g",
                          (long long)k, all.x[k], rep.train.x[k]);
        }
        free(all.x);
        free(all.y);
    }
    cr_assert_eq(f.calls, 6);
    dpt_data_free(&rep);
}

Test(data, free_zeroed_struct)
{
    dpt_data d;
    memset(&d, 0, sizeof d);
    dpt_data_free(&d);
    dpt_data_free(&d);
    assert_zeroed(&d);
}

/* ---------------------------------------------------------------------------------------------
 * Regression targets, data.missing: mean
 */

static void regression_cfg(dpt_config *cfg, int I, int T, const char *targets)
{
    base_cfg(cfg, I, T);
    cfg->data.format = DPT_FORMAT_CSV;
    cfg->data.task = DPT_TASK_REGRESSION;
    snprintf(cfg->data.label_column, sizeof cfg->data.label_column, "%s", targets);
}

Test(data, regression_targets_index_a_table)
{
    /* two targets named in the middle and at the end; a validation split moves rows, their
     * labels keep pointing at their own targets in the shared table */
    const char *text = "id,a,price,b,demand\n"
                       "0,1.0,10.5,-1,0.25\n"
                       "1,2.0,20.5,-2,0.5\n"
                       "2,3.0,30.5,-3,0.75\n"
                       "3,4.0,40.5,-4,1.0\n";
    dpt_config cfg;
    regression_cfg(&cfg, 2, 2, "price, demand");
    snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "a, b");
    cfg.data.validation_fraction = 0.5;
    dpt_data d;
    csv_load(&cfg, text, 0, &d);
    cr_assert_eq(d.targets, 2);
    cr_assert_eq(d.train.n + d.val.n, 4);
    cr_assert_eq(d.val.t, d.train.t, "the validation split shares the training table");
    cr_assert_str_eq(d.target_names[0], "price");
    cr_assert_str_eq(d.target_names[1], "demand");
    const dpt_dataset *splits[2] = {&d.train, &d.val};
    for (int s = 0; s < 2; s++)
        for (int64_t i = 0; i < splits[s]->n; i++) {
            const dpt_dataset *ds = splits[s];
            float a = ds->x[i * 2]; /* the row is a = k + 1: its targets follow from it */
            const float *t = ds->t + (size_t)ds->y[i] * 2;
            cr_assert(t[0] == 10.0f * a + 0.5f && t[1] == 0.25f * a, "split %d row %lld: a %g, "
                      "targets %g %g", s, (long long)i, a, t[0], t[1]);
            cr_assert(ds->x[i * 2 + 1] == -a);
        }
    dpt_data_free(&d);

    /* standardized: (t - mean) / std with the training split's statistics, saved */
    cfg.data.validation_fraction = 0.0;
    cfg.data.target_scaling = DPT_TARGET_SCALING_STANDARDIZE;
    csv_load(&cfg, text, 0, &d);
    cr_assert(fabs(d.t_mean[0] - 25.5) < 1e-12 && fabs(d.t_mean[1] - 0.625) < 1e-12);
    double sd0 = sqrt(125.0); /* population std of 10.5 .. 40.5 */
    cr_assert(fabs(d.t_std[0] - sd0) < 1e-9, "std %g", d.t_std[0]);
    for (int i = 0; i < 4; i++)
        cr_assert(fabsf(d.train.t[i * 2] - (float)((10.0 * i + 10.5 - 25.5) / sd0)) < 1e-6f);
    dpt_data_free(&d);
}

Test(data, csv_header_names_the_model_reads_are_unique)
{
    /* predict and eval find the model's columns by the names model.json keeps (the first of a
     * name): a used column whose name another column shares is refused at training */
    dpt_config cfg;
    base_cfg(&cfg, 3, 4);
    cfg.data.format = DPT_FORMAT_CSV;
    cfg.data.csv_header = 1;
    write_text(cfg.data.train_csv, "dup.csv", "1,0.5,1,2\n3,-1.5,2,0\n1,7,8,9\n");
    expect_msg_at(&cfg, cfg.data.train_csv, ": the header names columns 0 and 2 both '1', and "
                  "column 0 is the label (data.label_column)");
    snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "-1");
    write_text(cfg.data.train_csv, "dup2.csv", "a,b,a,y\n1,2,3,0\n");
    expect_msg_at(&cfg, cfg.data.train_csv, ": the header names columns 0 and 2 both 'a', and "
                  "column 0 is a feature (data.feature_columns)");
    /* a shared name on columns the model does not read is no ambiguity */
    base_cfg(&cfg, 2, 4);
    cfg.data.format = DPT_FORMAT_CSV;
    cfg.data.csv_header = 1;
    snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "a, b");
    dpt_data d;
    csv_load(&cfg, "y,a,b,x,x\n1,2,3,4,5\n2,0,1,4,5\n", 0, &d);
    cr_assert_eq(d.train.n, 2);
    dpt_data_free(&d);
}

Test(data, csv_nul_byte_is_refused_not_read_as_a_line_end)
{
    /* a NUL ends a C string: read as text, the row would be cut or, at a line's start, skipped
     * as blank; it is refused with the line */
    dpt_config cfg;
    base_cfg(&cfg, 2, 4);
    cfg.data.format = DPT_FORMAT_CSV;
    static const char text[] = "1,2,3\n\0,5,6\n2,3,4\n";
    tmp_path(cfg.data.train_csv, "nul.csv");
    write_bytes(cfg.data.train_csv, text, sizeof text - 1, 0);
    expect_msg_at(&cfg, cfg.data.train_csv, ":2: a NUL byte (byte 1 of the line): not CSV text");
    static const char mid[] = "1,2,3\n2,3,4\n3,4\0,5\n";
    write_bytes(cfg.data.train_csv, mid, sizeof mid - 1, 1);
    expect_msg_at(&cfg, cfg.data.train_csv, ":3: a NUL byte (byte 4 of the line)");
}

Test(data, regression_bad_targets)
{
    dpt_config cfg;
    regression_cfg(&cfg, 2, 1, "y");
    cfg.data.csv_header = 1;
    static const struct { const char *text, *msg; } cases[] = {
        {"a,b,y\n1,2,3\n1,2,\n", ":3: column 3 (y): missing value (\"\") in data row 2"},
        {"a,b,y\n1,2,3\n1,2,cat\n", ":3: column 3 (y) (\"cat\") is not a number"},
        {"a,b,z\n1,2,3\n", ": data.label_column: no column named 'y' in the header"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_text(cfg.data.train_csv, "bad.csv", cases[k].text);
        expect_msg_at(&cfg, cfg.data.train_csv, cases[k].msg);
    }
    /* the target columns against the model and the features (file a,y,z) */
    static const struct { const char *targets, *features; int T, task; const char *msg; } cols[] = {
        {"y, z", "", 1, DPT_TASK_REGRESSION,
         ": data.label_column names 2 target columns but model.layers[-1] is 1"},
        {"y, z", "", 1, DPT_TASK_CLASSIFICATION,
         ": data.label_column names 2 columns but a classification has one label column"},
        {"y, y", "", 2, DPT_TASK_REGRESSION, ": data.label_column: column 1 ('y') is listed twice"},
        {"y, z", "a, z", 2, DPT_TASK_REGRESSION,
         ": data.feature_columns: 'z' is a target column (data.label_column)"},
    };
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
        regression_cfg(&cfg, 1, cols[k].T, cols[k].targets);
        cfg.data.task = (dpt_task)cols[k].task;
        snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "%s",
                 cols[k].features);
        write_text(cfg.data.train_csv, "two.csv", "a,y,z\n1,2,3\n");
        expect_msg_at(&cfg, cfg.data.train_csv, cols[k].msg);
    }
}

Test(data, missing_mean_imputes_training_means)
{
    dpt_config cfg;
    base_cfg(&cfg, 2, 3);
    cfg.data.format = DPT_FORMAT_CSV;
    cfg.data.missing = DPT_MISSING_MEAN;
    write_text(cfg.data.test_csv, "mtest.csv", "y,a,b\n1,NA,\n2,5,6\n");
    dpt_data d;
    csv_load(&cfg, "y,a,b\n0,1,\n1,,4\n2,3,NaN\n0,?,8\n", 0, &d);
    cr_assert(d.fill[0] == 2.0 && d.fill[1] == 6.0, "means %g %g", d.fill[0], d.fill[1]);
    static const float x[] = {1, 6, 2, 4, 3, 6, 2, 8};
    static const int y[] = {0, 1, 2, 0};
    csv_expect(&d, 4, x, y);
    cr_assert(d.test.x[0] == 2.0f && d.test.x[1] == 6.0f && d.test.x[2] == 5.0f,
              "the test file is filled with the training's means");
    dpt_data_free(&d);
    /* the means come before standardization, which then sees no missing value */
    cfg.data.scaling = DPT_SCALING_STANDARDIZE;
    csv_load(&cfg, "y,a,b\n0,1,\n1,,4\n2,3,NaN\n0,?,8\n", 0, &d);
    for (int k = 0; k < 8; k++)
        cr_assert(isfinite(d.train.x[k]));
    dpt_data_free(&d);
    /* error stays the default; a column with no value at all has no mean */
    cfg.data.scaling = DPT_SCALING_UNIT;
    write_text(cfg.data.train_csv, "empty_col.csv", "y,a,b\n0,1,\n1,2,NA\n");
    expect_msg_at(&cfg, "", "data.missing: mean, but feature 2 (b) has no value in the training "
                  "file to take a mean of");
    cfg.data.missing = DPT_MISSING_ERROR;
    expect_msg_at(&cfg, cfg.data.train_csv, ":2: column 3 (b): missing value (\"\") in data row 1");
}

Test(data, names_with_commas_are_quoted_in_lists)
{
    /* a header name and class names holding commas: quoted in the key's comma-separated list as
     * in a CSV field (dpt_csv_list_item), "" for a quote; a quoted item is always a name */
    const char *text = "\"size, cm\",\"1:2\",kind\n"
                       "1.5,2,\"small, round\"\n"
                       "2.5,3,\"say \"\"hi\"\"\"\n";
    dpt_config cfg;
    base_cfg(&cfg, 2, 2);
    cfg.data.format = DPT_FORMAT_CSV;
    snprintf(cfg.data.label_column, sizeof cfg.data.label_column, "kind");
    snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns,
             " \"size, cm\" , \"1:2\"");
    snprintf(cfg.data.class_names, sizeof cfg.data.class_names,
             "\"say \"\"hi\"\"\", \"small, round\"");
    dpt_data d;
    csv_load(&cfg, text, 0, &d);
    static const float x[] = {1.5f, 2.0f, 2.5f, 3.0f};
    static const int y[] = {1, 0};
    csv_expect(&d, 2, x, y);
    cr_assert_str_eq(d.feature_names[0], "size, cm");
    cr_assert_str_eq(d.class_names[0], "say \"hi\"");
    dpt_data_free(&d);
    char joined[64] = "";
    cr_assert_eq(dpt_csv_list_append(joined, sizeof joined, "size, cm"), 0);
    cr_assert_eq(dpt_csv_list_append(joined, sizeof joined, "say \"hi\""), 0);
    cr_assert_eq(dpt_csv_list_append(joined, sizeof joined, "plain"), 0);
    cr_assert_str_eq(joined, "\"size, cm\", \"say \"\"hi\"\"\", plain");
    cr_assert_eq(dpt_csv_list_append(joined, 37, "more"), -1);
    cr_assert_str_eq(joined, "\"size, cm\", \"say \"\"hi\"\"\", plain", "unchanged when full");
    /* a header's names that would read as an index or a range are quoted to stay names */
    joined[0] = '\0';
    static const char *const names[] = {"3", "-1", "+7", "1:4", "", "2e2", "x1"};
    for (int k = 0; k < 7; k++)
        cr_assert_eq(dpt_csv_list_append_name(joined, sizeof joined, names[k]), 0);
    cr_assert_str_eq(joined, "\"3\", \"-1\", \"+7\", \"1:4\", \"\", 2e2, x1");
    joined[0] = '\0'; /* the config's lists: an index stays an index */
    cr_assert_eq(dpt_csv_list_append(joined, sizeof joined, "5"), 0);
    cr_assert_str_eq(joined, "5");

    snprintf(cfg.data.class_names, sizeof cfg.data.class_names, "\"open, a");
    expect_msg_at(&cfg, "", "data.class_names: a quoted name is not closed in '\"open, a'");
    snprintf(cfg.data.class_names, sizeof cfg.data.class_names, "a, b");
    snprintf(cfg.data.feature_columns, sizeof cfg.data.feature_columns, "\"size, cm\"x, 1");
    expect_msg_at(&cfg, cfg.data.train_csv, ": data.feature_columns: text after a quoted name "
                  "(quote the whole name) in '\"size, cm\"x, 1'");
}
