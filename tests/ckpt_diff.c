/* ckpt_diff: compares two checkpoint.bin files, for the integration tests (N ranks against one
 * rank, a resumed run against an uninterrupted one) and for people chasing a mismatch. It reads
 * both files with dpt_checkpoint_load, so a file it accepts is one dptrain itself would load.
 *
 *   ckpt_diff A B [--rtol X]   exit 0 when every parameter tensor agrees to relative X
 *   ckpt_diff A B --bitwise    exit 0 when header, parameters and optimizer state are identical
 *
 * Relative difference (--rtol, default 1e-5): for each tensor t (each layer's W and b),
 *   rel_i = |a_i - b_i| / max(max_j |a_j|, max_j |b_j|, 1e-6)   over j in t,
 * i.e. the error measured against the scale of the tensor it lives in. Element-wise
 * |a-b| / max(|a|,|b|) would flag weights that happen to sit near zero, where float summation
 * order alone moves them by ~1e-7 absolute; a scale shared by the whole vector would let a
 * small bias vector drift unnoticed next to large weights. Non-finite values always mismatch.
 * Optimizer state is reported with the same measure but only decides the verdict with --bitwise.
 *
 * Exit status: 0 equal within the tolerance, 1 different (or differently shaped), 2 usage
 * error or an unreadable / corrupt file. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

enum { SHOW_MISMATCHES = 5 };

typedef struct {
    dpt_ckpt_header h;
    float *params; /* (n_params) */
    float *state;  /* (n_state, n_params) */
} ckpt;

static int ckpt_read(const char *path, ckpt *c)
{
    dpt_error err = {0};
    memset(c, 0, sizeof *c);
    if (dpt_checkpoint_load(path, &c->h, NULL, NULL, &err) != DPT_OK) {
        fprintf(stderr, "ckpt_diff: %s\n", err.msg);
        return 2;
    }
    size_t n = (size_t)c->h.n_params;
    c->params = malloc((n ? n : 1) * sizeof(float));
    c->state = malloc((n * c->h.n_state > 0 ? n * c->h.n_state : 1) * sizeof(float));
    if (!c->params || !c->state) {
        fprintf(stderr, "ckpt_diff: out of memory reading '%s' (%zu parameters)\n", path, n);
        return 2;
    }
    if (dpt_checkpoint_load(path, &c->h, c->params, c->state, &err) != DPT_OK) {
        fprintf(stderr, "ckpt_diff: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static void ckpt_free(ckpt *c)
{
    free(c->params);
    free(c->state);
}

static void print_header(const char *tag, const char *path, const dpt_ckpt_header *h)
{
    printf("%s %s: layers [", tag, path);
    for (uint32_t l = 0; l <= h->n_layers; l++)
        printf("%s%u", l ? "," : "", h->widths[l]);
    printf("], epoch %u, step %llu, optimizer %s (%u state), %llu parameters, seed %llu\n",
           h->epoch, (unsigned long long)h->step, h->optimizer, h->n_state,
           (unsigned long long)h->n_params, (unsigned long long)h->seed);
}

/* Names flat parameter index i: "layer 1 W[3][17]" or "layer 2 b[5]". */
static void name_index(const dpt_ckpt_header *h, uint64_t i, char *out, size_t n)
{
    uint64_t off = 0;
    for (uint32_t l = 0; l < h->n_layers; l++) {
        uint64_t I = h->widths[l], O = h->widths[l + 1];
        if (i < off + O * I) {
            snprintf(out, n, "layer %u W[%llu][%llu]", l, (unsigned long long)((i - off) / I),
                     (unsigned long long)((i - off) % I));
            return;
        }
        off += O * I;
        if (i < off + O) {
            snprintf(out, n, "layer %u b[%llu]", l, (unsigned long long)(i - off));
            return;
        }
        off += O;
    }
    snprintf(out, n, "index %llu (past the layout)", (unsigned long long)i);
}

typedef struct {
    double max_abs, max_rel;
    uint64_t at_abs, at_rel;
    uint64_t mismatches;
} diff_stats;

/* Compares one copy of the parameter layout (params, or one optimizer state copy). A mismatch is
 * rel > rtol (rtol < 0: any difference in the bits). Prints the first few mismatches. */
static diff_stats compare(const dpt_ckpt_header *h, const char *what, const float *a,
                          const float *b, double rtol, int *shown)
{
    diff_stats s = {0};
    uint64_t off = 0;
    for (uint32_t l = 0; l < h->n_layers; l++) {
        uint64_t I = h->widths[l], O = h->widths[l + 1];
        uint64_t sizes[2] = {O * I, O};
        for (int part = 0; part < 2; part++) {
            uint64_t lo = off, hi = off + sizes[part];
            double scale = 1e-6;
            for (uint64_t i = lo; i < hi; i++) {
                if (fabs(a[i]) > scale) scale = fabs(a[i]);
                if (fabs(b[i]) > scale) scale = fabs(b[i]);
            }
            for (uint64_t i = lo; i < hi; i++) {
                double d = fabs((double)a[i] - (double)b[i]);
                double rel = d / scale;
                int finite = isfinite(a[i]) && isfinite(b[i]);
                if (!finite)
                    d = rel = INFINITY;
                if (d > s.max_abs) {
                    s.max_abs = d;
                    s.at_abs = i;
                }
                if (rel > s.max_rel) {
                    s.max_rel = rel;
                    s.at_rel = i;
                }
                int bad = rtol < 0 ? memcmp(&a[i], &b[i], sizeof(float)) != 0
                                   : !finite || rel > rtol;
                if (bad) {
                    s.mismatches++;
                    if (*shown < SHOW_MISMATCHES) {
                        char name[96];
                        name_index(h, i, name, sizeof name);
                        printf("  mismatch %s %s (flat %llu): %.9g vs %.9g (abs %.3g, rel %.3g)\n",
                               what, name, (unsigned long long)i, a[i], b[i], d, rel);
                        (*shown)++;
                    }
                }
            }
            off = hi;
        }
    }
    return s;
}

static void report(const dpt_ckpt_header *h, const char *what, const diff_stats *s, uint64_t n)
{
    char at_abs[96] = "-", at_rel[96] = "-";
    if (s->max_abs > 0) name_index(h, s->at_abs, at_abs, sizeof at_abs);
    if (s->max_rel > 0) name_index(h, s->at_rel, at_rel, sizeof at_rel);
    printf("%-9s max abs diff %.6g at %s; max rel diff %.6g at %s; %llu of %llu mismatching\n",
           what, s->max_abs, at_abs, s->max_rel, at_rel, (unsigned long long)s->mismatches,
           (unsigned long long)n);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: ckpt_diff A.bin B.bin [--rtol X | --bitwise]\n"
            "  --rtol X    pass when every parameter differs by at most X relative to the\n"
            "              largest magnitude in its tensor (default 1e-5)\n"
            "  --bitwise   pass when header, parameters and optimizer state are identical\n"
            "exit: 0 pass, 1 differ, 2 usage error or unreadable checkpoint\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0, bitwise = 0;
    double rtol = 1e-5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--bitwise") == 0) {
            bitwise = 1;
        } else if (strcmp(argv[i], "--rtol") == 0) {
            char *end;
            if (i + 1 >= argc) return usage();
            rtol = strtod(argv[++i], &end);
            if (*end || !(rtol >= 0)) {
                fprintf(stderr, "ckpt_diff: --rtol needs a non-negative number (got '%s')\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "ckpt_diff: unknown option '%s'\n", argv[i]);
            return usage();
        } else if (n_paths < 2) {
            paths[n_paths++] = argv[i];
        } else {
            return usage();
        }
    }
    if (n_paths != 2)
        return usage();

    ckpt a, b;
    int rc = ckpt_read(paths[0], &a);
    if (rc == 0 && (rc = ckpt_read(paths[1], &b)) != 0)
        ckpt_free(&a);
    if (rc != 0)
        return rc;
    print_header("A", paths[0], &a.h);
    print_header("B", paths[1], &b.h);

    int same_shape = a.h.n_layers == b.h.n_layers && a.h.n_params == b.h.n_params;
    for (uint32_t l = 0; same_shape && l <= a.h.n_layers; l++)
        same_shape = a.h.widths[l] == b.h.widths[l];
    if (!same_shape) {
        printf("FAIL: the layer widths differ; nothing to compare\n");
        ckpt_free(&a);
        ckpt_free(&b);
        return 1;
    }

    int fail = 0;
    if (bitwise) {
        const char *field = NULL;
        if (a.h.epoch != b.h.epoch) field = "epoch";
        else if (a.h.step != b.h.step) field = "step";
        else if (strcmp(a.h.optimizer, b.h.optimizer) != 0) field = "optimizer";
        else if (a.h.n_state != b.h.n_state) field = "optimizer state count";
        else if (a.h.seed != b.h.seed) field = "seed";
        if (field) {
            printf("header field '%s' differs\n", field);
            fail = 1;
        }
    }

    int shown = 0;
    double tol = bitwise ? -1.0 : rtol;
    diff_stats sp = compare(&a.h, "params", a.params, b.params, tol, &shown);
    report(&a.h, "params", &sp, a.h.n_params);
    fail |= sp.mismatches > 0;

    if (a.h.n_state == b.h.n_state) {
        for (uint32_t k = 0; k < a.h.n_state; k++) {
            char what[32];
            snprintf(what, sizeof what, "state[%u]", k);
            size_t off = (size_t)k * a.h.n_params;
            int shown_state = bitwise ? shown : SHOW_MISMATCHES; /* list only when it decides */
            diff_stats ss =
                compare(&a.h, what, a.state + off, b.state + off, tol, &shown_state);
            if (bitwise) shown = shown_state;
            report(&a.h, what, &ss, a.h.n_params);
            if (bitwise)
                fail |= ss.mismatches > 0;
        }
    } else {
        printf("optimizer state: %u copies vs %u, not compared\n", a.h.n_state, b.h.n_state);
    }

    if (bitwise)
        printf("%s: %s\n", fail ? "FAIL" : "PASS",
               fail ? "the checkpoints are not bitwise identical" : "bitwise identical");
    else
        printf("%s: max rel diff of the parameters %.3g %s rtol %g\n", fail ? "FAIL" : "PASS",
               sp.max_rel, fail ? ">" : "<=", rtol);
    ckpt_free(&a);
    ckpt_free(&b);
    return fail ? 1 : 0;
}
