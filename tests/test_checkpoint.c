/* Tests of src/checkpoint.c: the save/load round trip (bit-exact payload, every header field, the
 * byte layout of docs/checkpoint.md), each refusal of a damaged or foreign file with its exact
 * message, the config checks, and atomicity: a failed save keeps the previous file as it was. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "rng.h"

/* ---- a scratch directory per test (Criterion runs each test in its own process) ---------- */

static char g_dir[64];

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove_tree(p);
        }
        closedir(d);
        chmod(path, 0700);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void setup(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/dpt_test_ckpt_XXXXXX");
    cr_assert(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void teardown(void) { remove_tree(g_dir); }

TestSuite(checkpoint, .init = setup, .fini = teardown);

static void path_in(char out[DPT_PATH_MAX], const char *name)
{
    snprintf(out, DPT_PATH_MAX, "%s/%s", g_dir, name);
}

/* ---- a checkpoint to write: 5-7-6-3 (111 parameters), adamw (2 state copies) --------------- */

typedef struct {
    dpt_ckpt_header h;
    float params[111];     /* (n_params) */
    float state[2 * 111];  /* (n_state, n_params) */
} sample;

static void sample_init(sample *s, const char *optimizer, uint32_t n_state)
{
    memset(s, 0, sizeof *s);
    static const uint32_t w[] = {5, 7, 6, 3};
    s->h.n_layers = 3;
    memcpy(s->h.widths, w, sizeof w);
    s->h.epoch = 4;
    s->h.step = 123456789012ULL;          /* above 2^32: the u64 is written whole */
    snprintf(s->h.optimizer, sizeof s->h.optimizer, "%s", optimizer);
    s->h.n_state = n_state;
    s->h.n_params = 111;
    s->h.seed = 0xdeadbeefcafebabeULL;
    for (int i = 0; i < 111; i++)
        s->params[i] = dpt_rng_normal(3, DPT_RNG_SEARCH, (uint64_t)i);
    for (int i = 0; i < 2 * 111; i++)
        s->state[i] = dpt_rng_normal(4, DPT_RNG_SEARCH, (uint64_t)i) * 1e-3f;
    /* values a text or a lossy format would not keep: -0, a subnormal, the largest float */
    s->params[0] = -0.0f;
    s->params[1] = 1e-40f;
    s->params[2] = 3.4028235e38f;
}

/* Header bytes: the table of docs/checkpoint.md ends with the reserved u32 at 68 + 4L, so
 * H = 72 + 4L (84 for L = 3). (The formula in its "header size" row, 76 + 4 (L + 1) = 80 + 4L,
 * disagrees with its own table and with src/checkpoint.c by 8 bytes.) */
#define HEADER_BYTES(L) ((size_t)72 + 4 * (size_t)(L))

static size_t file_bytes(uint32_t n_layers, uint64_t n_params, uint32_t n_state)
{
    return HEADER_BYTES(n_layers) + 4 * n_params * (1 + n_state);
}

static void save_ok(const char *path, const sample *s)
{
    dpt_error err = {0};
    cr_assert_eq(dpt_checkpoint_save(path, &s->h, s->params, s->state, &err), DPT_OK, "%s",
                 err.msg);
}

/* Whole file into a malloc'ed buffer; *n its size. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    cr_assert(b);
    cr_assert_eq(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(b, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static uint32_t rd32(const unsigned char *b, size_t off)
{
    uint32_t v;
    memcpy(&v, b + off, 4);
    return v;
}

static uint64_t rd64(const unsigned char *b, size_t off)
{
    uint64_t v;
    memcpy(&v, b + off, 8);
    return v;
}

/* Names of the entries of g_dir, sorted, joined by spaces. */
static void list_dir(char *out, size_t n)
{
    struct dirent **names;
    int k = scandir(g_dir, &names, NULL, alphasort);
    cr_assert(k >= 0);
    out[0] = '\0';
    for (int i = 0; i < k; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? " " : "",
                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

/* ---- round trip ------------------------------------------------------------------------- */

static void expect_same_header(const dpt_ckpt_header *a, const dpt_ckpt_header *b)
{
    cr_expect_eq(a->n_layers, b->n_layers);
    for (uint32_t l = 0; l <= b->n_layers; l++)
        cr_expect_eq(a->widths[l], b->widths[l], "widths[%u]", l);
    cr_expect_eq(a->epoch, b->epoch);
    cr_expect_eq(a->step, b->step, "step %llu", (unsigned long long)a->step);
    cr_expect_str_eq(a->optimizer, b->optimizer);
    cr_expect_eq(a->n_state, b->n_state);
    cr_expect_eq(a->n_params, b->n_params);
    cr_expect_eq(a->seed, b->seed, "seed %llx", (unsigned long long)a->seed);
}

Test(checkpoint, round_trip_is_bit_exact)
{
    char path[DPT_PATH_MAX];
    path_in(path, "checkpoint.bin");
    sample s;
    sample_init(&s, "adamw", 2);
    save_ok(path, &s);

    dpt_ckpt_header h;
    float params[111], state[2 * 111];
    memset(params, 0xff, sizeof params);
    memset(state, 0xff, sizeof state);
    dpt_error err = {0};
    cr_assert_eq(dpt_checkpoint_load(path, &h, params, state, &err), DPT_OK, "%s", err.msg);
    expect_same_header(&h, &s.h);
    /* bit-exact: memcmp, so -0 and the subnormal count too */
    cr_expect_eq(memcmp(params, s.params, sizeof params), 0, "parameters changed");
    cr_expect_eq(memcmp(state, s.state, sizeof state), 0, "optimizer state changed");

    /* header only (params NULL), and the state's CRC checked without a state buffer */
    dpt_ckpt_header h2;
    cr_expect_eq(dpt_checkpoint_load(path, &h2, NULL, NULL, &err), DPT_OK, "%s", err.msg);
    expect_same_header(&h2, &s.h);
    cr_expect_eq(dpt_checkpoint_load(path, &h2, params, NULL, &err), DPT_OK, "%s", err.msg);

    /* the config check accepts the matching model and optimizer */
    dpt_config cfg;
    dpt_config_defaults(&cfg);
    cfg.model.n_layers = 3;
    cfg.model.widths[0] = 5, cfg.model.widths[1] = 7, cfg.model.widths[2] = 6;
    cfg.model.widths[3] = 3;
    cfg.train.optimizer = DPT_OPT_ADAMW;
    cfg.run.seed = s.h.seed;
    cr_expect_eq(dpt_checkpoint_check(&h, &cfg, path, &err), DPT_OK, "%s", err.msg);

    /* nothing else left in the directory */
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "checkpoint.bin");
}

Test(checkpoint, round_trip_sgd_one_state_copy)
{
    char path[DPT_PATH_MAX];
    path_in(path, "sgd.bin");
    sample s;
    sample_init(&s, "sgd", 1);
    save_ok(path, &s);
    size_t n;
    unsigned char *b = slurp(path, &n);
    cr_expect_eq(n, file_bytes(3, 111, 1));
    free(b);
    dpt_ckpt_header h;
    float params[111], state[111];
    dpt_error err = {0};
    cr_assert_eq(dpt_checkpoint_load(path, &h, params, state, &err), DPT_OK, "%s", err.msg);
    expect_same_header(&h, &s.h);
    cr_expect_eq(memcmp(params, s.params, sizeof params), 0);
    cr_expect_eq(memcmp(state, s.state, sizeof state), 0);
}

/* The bytes sit where docs/checkpoint.md says (little-endian, offsets in bytes, L = 3). */
Test(checkpoint, layout_matches_docs)
{
    char path[DPT_PATH_MAX];
    path_in(path, "checkpoint.bin");
    sample s;
    sample_init(&s, "adamw", 2);
    save_ok(path, &s);
    size_t n;
    unsigned char *b = slurp(path, &n);
    const size_t L = 3, H = HEADER_BYTES(3);
    cr_assert_eq(n, file_bytes(3, 111, 2), "file is %zu bytes", n);
    cr_expect_eq(memcmp(b, "DPTRCKPT", 8), 0);
    cr_expect_eq(rd32(b, 8), 1u);
    cr_expect_eq(rd32(b, 12), H);
    cr_expect_eq(rd32(b, 16), L);
    for (size_t l = 0; l <= L; l++)
        cr_expect_eq(rd32(b, 20 + 4 * l), s.h.widths[l]);
    cr_expect_eq(rd32(b, 24 + 4 * L), s.h.epoch);
    cr_expect_eq(rd64(b, 28 + 4 * L), s.h.step);
    cr_expect_eq(memcmp(b + 36 + 4 * L, "adamw\0\0\0", 8), 0);
    cr_expect_eq(rd32(b, 44 + 4 * L), 2u);
    cr_expect_eq(rd64(b, 48 + 4 * L), 111u);
    cr_expect_eq(rd64(b, 56 + 4 * L), s.h.seed);
    uint32_t crc = (uint32_t)crc32(0L, b + H, (uInt)(n - H));
    cr_expect_eq(rd32(b, 64 + 4 * L), crc, "CRC of the payload");
    cr_expect_eq(rd32(b, 68 + 4 * L), 0u, "reserved");
    cr_expect_eq(memcmp(b + H, s.params, sizeof s.params), 0);
    cr_expect_eq(memcmp(b + H + sizeof s.params, s.state, sizeof s.state), 0);
    free(b);
}

/* ---- refusals --------------------------------------------------------------------------- */

/* Loads path expecting DPT_EUSAGE and exactly the message want. */
static void expect_refused(const char *path, const char *want)
{
    dpt_ckpt_header h;
    float params[111], state[2 * 111];
    dpt_error err = {0};
    int rc = dpt_checkpoint_load(path, &h, params, state, &err);
    cr_expect_eq(rc, DPT_EUSAGE, "load of %s: rc %d (%s), expected a usage error", path, rc,
                 err.msg);
    cr_expect_eq(err.code, DPT_EUSAGE);
    cr_expect_str_eq(err.msg, want);
}

/* Saves the sample, lets edit change the bytes (and their count), writes them back. */
static void damaged(const char *path, void (*edit)(unsigned char *b, size_t *n, void *ctx),
                    void *ctx)
{
    sample s;
    sample_init(&s, "adamw", 2);
    save_ok(path, &s);
    size_t n;
    unsigned char *b = slurp(path, &n);
    unsigned char *big = realloc(b, n + 16);
    cr_assert(big);
    edit(big, &n, ctx);
    spit(path, big, n);
    free(big);
}

Test(checkpoint, refuses_missing_file)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "nothing-here.bin");
    snprintf(want, sizeof want, "cannot open checkpoint '%s': No such file or directory", path);
    expect_refused(path, want);
}

static void edit_magic(unsigned char *b, size_t *n, void *ctx)
{
    (void)n, (void)ctx;
    b[0] = 'X';
}

Test(checkpoint, refuses_bad_magic)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    damaged(path, edit_magic, NULL);
    snprintf(want, sizeof want, "checkpoint '%s': bad magic (not a dptrain checkpoint)", path);
    expect_refused(path, want);

    /* a file that is something else altogether (shorter than a header) */
    spit(path, (const unsigned char *)"hello", 5);
    expect_refused(path, want);
}

static void edit_version(unsigned char *b, size_t *n, void *ctx)
{
    (void)n, (void)ctx;
    uint32_t v = 2;
    memcpy(b + 8, &v, 4);
}

Test(checkpoint, refuses_other_version)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    damaged(path, edit_version, NULL);
    snprintf(want, sizeof want, "checkpoint '%s': format version 2, this build reads version 1",
             path);
    expect_refused(path, want);
}

static void edit_cut(unsigned char *b, size_t *n, void *ctx)
{
    (void)b;
    *n = *(size_t *)ctx;
}

static void edit_pad(unsigned char *b, size_t *n, void *ctx)
{
    (void)ctx;
    b[(*n)++] = 0;
}

Test(checkpoint, refuses_truncated_or_padded_payload)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    const size_t full = file_bytes(3, 111, 2), H = HEADER_BYTES(3);
    /* cut in the state, at the end of the parameters, in the parameters, right after the header */
    const size_t cuts[] = {full - 1, H + 4 * 111, H + 100, H};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        size_t cut = cuts[k];
        damaged(path, edit_cut, &cut);
        snprintf(want, sizeof want, "checkpoint '%s': truncated or padded: %zu bytes, expected %zu",
                 path, cut, full);
        expect_refused(path, want);
    }
    damaged(path, edit_pad, NULL);
    snprintf(want, sizeof want, "checkpoint '%s': truncated or padded: %zu bytes, expected %zu",
             path, full + 1, full);
    expect_refused(path, want);
}

/* Every cut inside the header, from an empty file to one byte short of it. (Before the fix in
 * checkpoint.c, a cut inside the magic read "bad magic" and one inside the version field
 * "format version 0".) */
Test(checkpoint, refuses_truncated_header)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    const size_t H = HEADER_BYTES(3);
    snprintf(want, sizeof want, "checkpoint '%s': truncated or malformed header", path);
    for (size_t cut = 0; cut < H; cut++) {
        damaged(path, edit_cut, &cut);
        expect_refused(path, want);
    }
}

static void edit_n_params(unsigned char *b, size_t *n, void *ctx)
{
    (void)n, (void)ctx;
    uint64_t p = 112;
    memcpy(b + 48 + 4 * 3, &p, 8);
}

Test(checkpoint, refuses_inconsistent_header)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    damaged(path, edit_n_params, NULL);
    snprintf(want, sizeof want,
             "checkpoint '%s': header is inconsistent (111 parameters for its widths, 112 "
             "recorded)", path);
    expect_refused(path, want);
}

typedef struct {
    size_t offset;
} flip_ctx;

static void edit_flip(unsigned char *b, size_t *n, void *ctx)
{
    (void)n;
    b[((flip_ctx *)ctx)->offset] ^= 0x01;
}

Test(checkpoint, refuses_crc_mismatch)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    const size_t full = file_bytes(3, 111, 2), H = HEADER_BYTES(3);
    /* one bit of one byte: in the parameters' first byte, mid-parameters, the state's last */
    const size_t offsets[] = {H, H + 4 * 50 + 2, full - 1};
    for (size_t k = 0; k < 3; k++) {
        flip_ctx c = {offsets[k]};
        damaged(path, edit_flip, &c);
        size_t n;
        unsigned char *b = slurp(path, &n);
        uint32_t stored = rd32(b, 64 + 4 * 3);
        uint32_t computed = (uint32_t)crc32(0L, b + H, (uInt)(n - H));
        free(b);
        cr_assert_neq(stored, computed);
        snprintf(want, sizeof want,
                 "checkpoint '%s': CRC mismatch (file %08x, computed %08x): corrupt", path,
                 stored, computed);
        expect_refused(path, want);
    }
}

static void config_for(dpt_config *cfg, const int *w, int n_widths, dpt_optimizer opt)
{
    dpt_config_defaults(cfg);
    cfg->model.n_layers = n_widths - 1;
    for (int l = 0; l < n_widths; l++)
        cfg->model.widths[l] = w[l];
    cfg->train.optimizer = opt;
    cfg->run.seed = 0xdeadbeefcafebabeULL; /* the seed sample_init writes */
}

Test(checkpoint, check_refuses_other_widths)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    sample s;
    sample_init(&s, "adamw", 2);
    dpt_config cfg;
    dpt_error err = {0};

    static const int other[] = {5, 8, 6, 3};
    config_for(&cfg, other, 4, DPT_OPT_ADAMW);
    snprintf(want, sizeof want,
             "checkpoint '%s' has layer widths [5,7,6,3] but model.layers is [5,8,6,3]", path);
    cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_EUSAGE);
    cr_expect_str_eq(err.msg, want);

    static const int fewer[] = {5, 7, 3};
    config_for(&cfg, fewer, 3, DPT_OPT_ADAMW);
    snprintf(want, sizeof want,
             "checkpoint '%s' has layer widths [5,7,6,3] but model.layers is [5,7,3]", path);
    cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_EUSAGE);
    cr_expect_str_eq(err.msg, want);

    static const int more[] = {5, 7, 6, 3, 3};
    config_for(&cfg, more, 5, DPT_OPT_ADAMW);
    snprintf(want, sizeof want,
             "checkpoint '%s' has layer widths [5,7,6,3] but model.layers is [5,7,6,3,3]", path);
    cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_EUSAGE);
    cr_expect_str_eq(err.msg, want);
}

Test(checkpoint, check_refuses_other_seed)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    sample s;
    sample_init(&s, "adamw", 2);
    static const int same[] = {5, 7, 6, 3};
    dpt_config cfg;
    dpt_error err = {0};
    config_for(&cfg, same, 4, DPT_OPT_ADAMW);
    cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_OK, "%s", err.msg);
    cfg.run.seed = 7;
    snprintf(want, sizeof want,
             "checkpoint '%s' was written with run.seed %llu but run.seed is 7: resuming would "
             "change the data order and dropout masks",
             path, 0xdeadbeefcafebabeULL);
    cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_EUSAGE);
    cr_expect_str_eq(err.msg, want);
}

Test(checkpoint, check_refuses_other_optimizer)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "checkpoint.bin");
    sample s;
    sample_init(&s, "adamw", 2);
    static const int same[] = {5, 7, 6, 3};
    dpt_config cfg;
    dpt_error err = {0};
    const dpt_optimizer others[] = {DPT_OPT_SGD, DPT_OPT_ADAM};
    const char *names[] = {"sgd", "adam"};
    for (int k = 0; k < 2; k++) {
        config_for(&cfg, same, 4, others[k]);
        snprintf(want, sizeof want,
                 "checkpoint '%s' was written by optimizer 'adamw' but train.optimizer is '%s'",
                 path, names[k]);
        cr_expect_eq(dpt_checkpoint_check(&s.h, &cfg, path, &err), DPT_EUSAGE);
        cr_expect_str_eq(err.msg, want);
    }
}

/* ---- atomicity -------------------------------------------------------------------------- */

/* A second checkpoint, different in every payload byte and several header fields. */
static void sample_next(sample *s)
{
    sample_init(s, "adamw", 2);
    s->h.epoch = 5;
    s->h.step += 1000;
    for (int i = 0; i < 111; i++) s->params[i] += 1.0f;
    for (int i = 0; i < 222; i++) s->state[i] += 1.0f;
}

Test(checkpoint, save_replaces_previous_and_leaves_no_temp)
{
    char path[DPT_PATH_MAX];
    path_in(path, "checkpoint.bin");
    sample a, b;
    sample_init(&a, "adamw", 2);
    sample_next(&b);
    save_ok(path, &a);
    save_ok(path, &b);
    dpt_ckpt_header h;
    float params[111], state[222];
    dpt_error err = {0};
    cr_assert_eq(dpt_checkpoint_load(path, &h, params, state, &err), DPT_OK, "%s", err.msg);
    cr_expect_eq(h.epoch, 5u);
    cr_expect_eq(memcmp(params, b.params, sizeof params), 0);
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "checkpoint.bin");
}

/* Saves b over a checkpoint a at path and expects the save to fail with DPT_ERUNTIME, the
 * message want, and the file at path byte-identical to before. */
static void expect_failed_save_keeps_old(const char *path, const sample *b, const char *want)
{
    size_t n0, n1;
    unsigned char *before = slurp(path, &n0);
    dpt_error err = {0};
    int rc = dpt_checkpoint_save(path, &b->h, b->params, b->state, &err);
    cr_expect_eq(rc, DPT_ERUNTIME, "save should have failed (rc %d)", rc);
    cr_expect_str_eq(err.msg, want);
    unsigned char *after = slurp(path, &n1);
    cr_expect_eq(n1, n0, "previous checkpoint changed size: %zu -> %zu", n0, n1);
    cr_expect_eq(memcmp(before, after, n0 < n1 ? n0 : n1), 0, "previous checkpoint changed");
    free(before);
    free(after);
}

/* The temp file cannot be created (path.tmp is a directory: open() fails with EISDIR, also as
 * root, who writes into read-only directories regardless). */
Test(checkpoint, failed_temp_file_keeps_previous)
{
    char path[DPT_PATH_MAX], tmp[DPT_PATH_MAX + 8], want[2048];
    path_in(path, "checkpoint.bin");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sample a, b;
    sample_init(&a, "adamw", 2);
    sample_next(&b);
    save_ok(path, &a);
    cr_assert_eq(mkdir(tmp, 0700), 0, "mkdir %s: %s", tmp, strerror(errno));
    snprintf(want, sizeof want, "cannot write checkpoint '%s': %s", tmp, strerror(EISDIR));
    expect_failed_save_keeps_old(path, &b, want);
    /* no stray file: the directory holds the old checkpoint and the (still empty) obstacle */
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "checkpoint.bin checkpoint.bin.tmp");
    DIR *d = opendir(tmp);
    cr_assert(d);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    cr_expect_eq(entries, 0, "something was written into %s", tmp);
    /* and the old checkpoint still loads */
    dpt_ckpt_header h;
    float params[111], state[222];
    dpt_error err = {0};
    cr_expect_eq(dpt_checkpoint_load(path, &h, params, state, &err), DPT_OK, "%s", err.msg);
    cr_expect_eq(memcmp(params, a.params, sizeof params), 0);
}

/* The rename fails after the temp file was written (path is a non-empty directory, so the old
 * "checkpoint" there stays): the temp file is removed and the error says the previous is kept. */
Test(checkpoint, failed_rename_removes_temp)
{
    char path[DPT_PATH_MAX], inside[DPT_PATH_MAX + 16], want[2048];
    path_in(path, "checkpoint.bin");
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(inside, sizeof inside, "%s/keep", path);
    spit(inside, (const unsigned char *)"x", 1);
    sample b;
    sample_next(&b);
    dpt_error err = {0};
    int rc = dpt_checkpoint_save(path, &b.h, b.params, b.state, &err);
    cr_expect_eq(rc, DPT_ERUNTIME);
    snprintf(want, sizeof want,
             "cannot write checkpoint '%s': %s (the previous checkpoint is kept)", path,
             strerror(EISDIR));
    cr_expect_str_eq(err.msg, want);
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "checkpoint.bin", "temp file left behind: %s", names);
}

/* A directory that became read-only: only meaningful for a user whom permissions bind. */
Test(checkpoint, read_only_directory_keeps_previous)
{
    if (geteuid() == 0) {
        remove_tree(g_dir); /* a skipped test does not run .fini */
        cr_skip_test("running as root: permissions do not stop root (the path.tmp-is-a-"
                     "directory test covers the same failure)");
    }
    char path[DPT_PATH_MAX], tmp[DPT_PATH_MAX + 8], want[2048];
    path_in(path, "checkpoint.bin");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    sample a, b;
    sample_init(&a, "adamw", 2);
    sample_next(&b);
    save_ok(path, &a);
    cr_assert_eq(chmod(g_dir, 0500), 0);
    snprintf(want, sizeof want, "cannot write checkpoint '%s': %s", tmp, strerror(EACCES));
    expect_failed_save_keeps_old(path, &b, want);
    chmod(g_dir, 0700);
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "checkpoint.bin");
}

/* A save into a directory that does not exist fails and creates nothing. */
Test(checkpoint, save_into_missing_directory_fails)
{
    char path[DPT_PATH_MAX], want[2048];
    path_in(path, "no/such/dir/checkpoint.bin");
    sample b;
    sample_next(&b);
    dpt_error err = {0};
    cr_expect_eq(dpt_checkpoint_save(path, &b.h, b.params, b.state, &err), DPT_ERUNTIME);
    snprintf(want, sizeof want, "cannot write checkpoint '%s.tmp': %s", path, strerror(ENOENT));
    cr_expect_str_eq(err.msg, want);
    char names[256];
    list_dir(names, sizeof names);
    cr_expect_str_eq(names, "");
}
