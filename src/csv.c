/* RFC 4180 record splitting and column selection for the CSV loader and predict's reader
 * (csv.h). Fields are unquoted in place, so a record costs no allocation beyond the pointer
 * array, which grows once to the widest record. */
#define _POSIX_C_SOURCE 200809L

#include "csv.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(dpt_csv_fields *f, char *s)
{
    if (f->n == f->cap) {
        int c = f->cap ? f->cap * 2 : 64;
        char **v = realloc(f->v, (size_t)c * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = c;
    }
    f->v[f->n++] = s;
    return 0;
}

int dpt_csv_split(char *rec, dpt_csv_fields *f, const char **why)
{
    f->n = 0;
    char *p = rec;
    for (;;) {
        char *q = p, *r, end;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '"') { /* quoted: "" is a quote, anything else up to the closing quote */
            char *out = p;
            r = q + 1;
            for (;;) {
                if (*r == '\0') {
                    *why = "unterminated quoted field";
                    return f->n + 1;
                }
                if (*r == '"') {
                    if (r[1] != '"')
                        break;
                    r++;
                }
                *out++ = *r++;
            }
            r++; /* the closing quote */
            while (*r == ' ' || *r == '\t')
                r++;
            if (*r != ',' && *r != '\0') {
                *why = "text after the closing quote";
                return f->n + 1;
            }
            end = *r;
            *out = '\0';
        } else {
            r = p;
            while (*r && *r != ',') {
                if (*r == '"') {
                    *why = "a quote inside an unquoted field";
                    return f->n + 1;
                }
                r++;
            }
            end = *r;
            *r = '\0';
        }
        if (push(f, p))
            return -1;
        if (end == '\0')
            return 0;
        p = r + 1;
    }
}

void dpt_csv_fields_free(dpt_csv_fields *f)
{
    free(f->v);
    memset(f, 0, sizeof *f);
}

int dpt_csv_quote_open(const char *s, int in_quote)
{
    int field_start = !in_quote;
    for (; *s; s++) {
        if (in_quote) {
            if (*s == '"') {
                if (s[1] == '"')
                    s++;
                else
                    in_quote = 0;
            }
        } else if (*s == '"' && field_start) {
            in_quote = 1;
        } else if (*s == ',') {
            field_start = 1;
            continue;
        }
        if (*s != ' ' && *s != '\t')
            field_start = 0;
    }
    return in_quote;
}

/* s without its surrounding spaces, into out (at most n - 1 characters). */
static void trim(const char *s, char *out, size_t n)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t k = strlen(s);
    while (k > 0 && (s[k - 1] == ' ' || s[k - 1] == '\t'))
        k--;
    if (k >= n)
        k = n - 1;
    memcpy(out, s, k);
    out[k] = '\0';
}

int dpt_csv_is_missing(const char *s)
{
    static const char *const marks[] = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "?"};
    char t[8];
    size_t k = strspn(s, " \t");
    if (strlen(s + k) >= sizeof t)
        return 0;
    trim(s, t, sizeof t);
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strcmp(t, marks[i]) == 0)
            return 1;
    return 0;
}

int dpt_csv_number(const char *s, double *v)
{
    char *end;
    *v = strtod(s, &end);
    if (end == s)
        return 0;
    while (*end == ' ' || *end == '\t')
        end++;
    return *end == '\0';
}

/* An index item: an optional sign and digits only. Returns 1 with *v, 0 when it is no integer. */
static int parse_index(const char *s, long *v)
{
    const char *d = s + (*s == '-' || *s == '+');
    if (!*d)
        return 0;
    for (const char *p = d; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    errno = 0;
    *v = strtol(s, NULL, 10);
    return errno == 0 && *v > INT_MIN / 2 && *v < INT_MAX / 2;
}

/* One column given by name or index (quoted: always a name); -1 after filling err when it
 * does not resolve. */
static int find_column(const char *item, int quoted, const char *key, int n_cols,
                       char *const *names, const char *path, dpt_error *err)
{
    long k;
    if (!quoted && parse_index(item, &k)) {
        long c = k < 0 ? n_cols + k : k;
        if (c < 0 || c >= n_cols) {
            dpt_error_set(err, DPT_EUSAGE, "%s: %s: column index %ld is out of range for %d "
                          "columns (0 to %d, or -1 to -%d from the end)", path, key, k, n_cols,
                          n_cols - 1, n_cols);
            return -1;
        }
        return (int)c;
    }
    if (!names) {
        dpt_error_set(err, DPT_EUSAGE, "%s: %s: '%s' is a column name but the file has no "
                      "header line (set data.csv_header: true, or give a column index)",
                      path, key, item);
        return -1;
    }
    for (int c = 0; c < n_cols; c++)
        if (strcmp(names[c], item) == 0)
            return c;
    dpt_error_set(err, DPT_EUSAGE, "%s: %s: no column named '%s' in the header", path, key,
                  item);
    return -1;
}

/* Adds column c to out, refusing the label and duplicates. */
static int add_feature(dpt_csv_columns *out, int c, int n_cols, const char *item,
                       const char *path, dpt_error *err)
{
    for (int k = 0; k < out->n_targets; k++)
        if (c == out->targets[k])
            return dpt_error_set(err, DPT_EUSAGE, "%s: data.feature_columns: '%s' is %s "
                                 "column (data.label_column)", path, item,
                                 out->n_targets == 1 ? "the label" : "a target");
    for (int k = 0; k < out->n_features; k++)
        if (out->features[k] == c)
            return dpt_error_set(err, DPT_EUSAGE, "%s: data.feature_columns: column %d ('%s') "
                                 "is listed twice", path, c, item);
    if (out->n_features >= n_cols)
        return dpt_error_set(err, DPT_EUSAGE, "%s: data.feature_columns: too many columns",
                             path);
    out->features[out->n_features++] = c;
    return DPT_OK;
}

/* One item of data.feature_columns: a name, an index, or a range a:b of indices. */
static int add_item(dpt_csv_columns *out, const char *item, int quoted, int n_cols,
                    char *const *names, const char *path, dpt_error *err)
{
    const char *key = "data.feature_columns";
    const char *colon = strchr(item, ':');
    long a = 0, b = n_cols;
    int named = quoted; /* a header name that holds a colon is a name, not a range */
    for (int c = 0; colon && names && c < n_cols; c++)
        named |= strcmp(names[c], item) == 0;
    if (!colon || named) {
        int c = find_column(item, quoted, key, n_cols, names, path, err);
        return c < 0 ? DPT_EUSAGE : add_feature(out, c, n_cols, item, path, err);
    }
    char lo[64], hi[64];
    snprintf(lo, sizeof lo, "%.*s", (int)(colon - item), item);
    trim(lo, lo, sizeof lo);
    trim(colon + 1, hi, sizeof hi);
    if ((lo[0] && !parse_index(lo, &a)) || (hi[0] && !parse_index(hi, &b)))
        return dpt_error_set(err, DPT_EUSAGE, "%s: %s: '%s' is not a range of column indices "
                             "(a:b, half-open, as 1:785)", path, key, item);
    if (a < 0)
        a += n_cols;
    if (b < 0)
        b += n_cols;
    a = a < 0 ? 0 : a > n_cols ? n_cols : a;
    b = b < 0 ? 0 : b > n_cols ? n_cols : b;
    if (a >= b)
        return dpt_error_set(err, DPT_EUSAGE, "%s: %s: the range '%s' selects no column of %d",
                             path, key, item, n_cols);
    for (long c = a; c < b; c++)
        if (add_feature(out, (int)c, n_cols, item, path, err))
            return DPT_EUSAGE;
    return DPT_OK;
}

int dpt_csv_list_item(const char **p, char *item, size_t cap, const char **why)
{
    const char *s = *p + strspn(*p, " \t");
    size_t k = 0;
    int quoted = *s == '"';
    if (!quoted) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char raw[256];
        snprintf(raw, sizeof raw, "%.*s", (int)(len < sizeof raw ? len : sizeof raw - 1), s);
        trim(raw, item, cap);
        *p = comma ? comma + 1 : NULL;
        return 0;
    }
    for (s++;; s++) {
        if (!*s) {
            *why = "a quoted name is not closed";
            return -1;
        }
        if (*s == '"' && s[1] != '"')
            break;
        s += *s == '"'; /* "" is one quote */
        if (k + 1 < cap)
            item[k++] = *s;
    }
    item[k] = '\0';
    s += 1 + strspn(s + 1, " \t");
    if (*s && *s != ',') {
        *why = "text after a quoted name (quote the whole name)";
        return -1;
    }
    *p = *s ? s + 1 : NULL;
    return 1;
}

static int list_append(char *out, size_t cap, const char *name, int quote)
{
    size_t len = strlen(out), n = strlen(name);
    quote |= strpbrk(name, ",\"") != NULL || (n && (strchr(" \t", name[0]) ||
                                                  strchr(" \t", name[n - 1])));
    size_t need = len + (len ? 2 : 0) + n + (quote ? 2 : 0);
    for (const char *q = name; quote && *q; q++)
        need += *q == '"'; /* doubled */
    if (need + 1 > cap)
        return -1;
    char *o = out + len;
    if (len) {
        *o++ = ',';
        *o++ = ' ';
    }
    if (quote)
        *o++ = '"';
    for (const char *q = name; *q; q++) {
        if (quote && *q == '"')
            *o++ = '"';
        *o++ = *q;
    }
    if (quote)
        *o++ = '"';
    *o = '\0';
    return 0;
}

int dpt_csv_list_append(char *out, size_t cap, const char *name)
{
    return list_append(out, cap, name, 0);
}

int dpt_csv_list_append_name(char *out, size_t cap, const char *name)
{
    long v;
    return list_append(out, cap, name, !name[0] || strchr(name, ':') || parse_index(name, &v));
}

/* The next item of a list, or DPT_EUSAGE naming key and spec when it is malformed; *quoted: it
 * was in quotes (a name). */
static int next_item(const char **p, char *item, size_t cap, int *quoted, const char *key,
                     const char *spec, const char *path, dpt_error *err)
{
    const char *why = "";
    *quoted = dpt_csv_list_item(p, item, cap, &why);
    if (*quoted < 0)
        return dpt_error_set(err, DPT_EUSAGE, "%s: %s: %s in '%s'", path, key, why, spec);
    return DPT_OK;
}

/* data.label_column: "" (column 0), or one or more names or indices separated by commas. */
static int resolve_targets(const char *spec, int n_cols, char *const *names, const char *path,
                           dpt_csv_columns *out, dpt_error *err)
{
    const char *key = "data.label_column";
    char item[256];
    trim(spec, item, sizeof item);
    if (!item[0]) {
        out->targets[out->n_targets++] = 0;
        return DPT_OK;
    }
    for (const char *p = spec; p;) {
        int quoted;
        if (next_item(&p, item, sizeof item, &quoted, key, spec, path, err))
            return DPT_EUSAGE;
        int c = item[0] ? find_column(item, quoted, key, n_cols, names, path, err) : -1;
        if (!item[0])
            return dpt_error_set(err, DPT_EUSAGE, "%s: %s: an empty item in '%s'", path, key,
                                 spec);
        if (c < 0)
            return DPT_EUSAGE;
        for (int j = 0; j < out->n_targets; j++)
            if (out->targets[j] == c)
                return dpt_error_set(err, DPT_EUSAGE, "%s: %s: column %d ('%s') is listed "
                                     "twice", path, key, c, item);
        if (out->n_targets >= n_cols)
            return dpt_error_set(err, DPT_EUSAGE, "%s: %s: too many columns", path, key);
        out->targets[out->n_targets++] = c;
    }
    return DPT_OK;
}

typedef struct {
    const char *name;
    int col;
} named_col;

static int by_name(const void *a, const void *b)
{
    const named_col *x = a, *y = b;
    int d = strcmp(x->name, y->name);
    return d ? d : (x->col > y->col) - (x->col < y->col);
}

/* A column the model reads must be the only one of its name in the header: model.json keeps
 * the names, and predict and eval find the columns by them (the first of a name), so a name
 * that two columns share would let them read another column than the training did. The names
 * sorted, so that a header of many columns costs n log n. Fills err when not. */
static int unique_names(const dpt_csv_columns *out, int n_cols, char *const *names,
                        const char *path, dpt_error *err)
{
    if (!names || n_cols < 2)
        return DPT_OK;
    named_col *v = malloc((size_t)n_cols * sizeof *v);
    signed char *role = calloc((size_t)n_cols, 1); /* 1 the label or a target, 2 a feature */
    if (!v || !role) {
        free(v);
        free(role);
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory reading %s", path);
    }
    for (int c = 0; c < n_cols; c++)
        v[c] = (named_col){names[c], c};
    for (int k = 0; k < out->n_targets; k++)
        role[out->targets[k]] = 1;
    for (int k = 0; k < out->n_features; k++)
        role[out->features[k]] = 2;
    qsort(v, (size_t)n_cols, sizeof *v, by_name);
    int rc = DPT_OK;
    for (int a = 0, b; a < n_cols && !rc; a = b) {
        int used = -1;
        for (b = a; b < n_cols && strcmp(v[b].name, v[a].name) == 0; b++)
            if (used < 0 && role[v[b].col])
                used = v[b].col;
        if (b - a > 1 && used >= 0) {
            int other = v[a].col == used ? v[a + 1].col : v[a].col;
            rc = dpt_error_set(err, DPT_EUSAGE, "%s: the header names columns %d and %d both "
                               "'%.60s', and column %d is %s: a column the model reads needs a "
                               "name of its own (predict and eval find columns by name); rename "
                               "one", path, other < used ? other : used,
                               other < used ? used : other, v[a].name, used,
                               role[used] == 1 ? "the label (data.label_column)"
                                               : "a feature (data.feature_columns)");
        }
    }
    free(v);
    free(role);
    return rc;
}

int dpt_csv_resolve(const char *label_spec, const char *feature_spec, int n_cols,
                    char *const *names, const char *path, dpt_csv_columns *out, dpt_error *err)
{
    memset(out, 0, sizeof *out);
    out->label = -1;
    out->features = malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof *out->features);
    if (!out->features)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory reading %s", path);
    char item[256];
    out->targets = malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof *out->targets);
    if (!out->targets) {
        dpt_csv_columns_free(out);
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory reading %s", path);
    }
    if (label_spec && resolve_targets(label_spec, n_cols, names, path, out, err))
        goto fail;
    out->label = out->n_targets > 0 ? out->targets[0] : -1;
    if (!feature_spec[0]) {
        for (int c = 0; c < n_cols; c++) {
            int target = 0;
            for (int k = 0; k < out->n_targets; k++)
                target |= c == out->targets[k];
            if (!target)
                out->features[out->n_features++] = c;
        }
        if (unique_names(out, n_cols, names, path, err))
            goto fail;
        return DPT_OK;
    }
    for (const char *p = feature_spec; p;) {
        int quoted;
        if (next_item(&p, item, sizeof item, &quoted, "data.feature_columns", feature_spec,
                      path, err))
            goto fail;
        if (!item[0]) {
            dpt_error_set(err, DPT_EUSAGE, "%s: data.feature_columns: an empty item in '%s'",
                          path, feature_spec);
            goto fail;
        }
        if (add_item(out, item, quoted, n_cols, names, path, err))
            goto fail;
    }
    if (unique_names(out, n_cols, names, path, err))
        goto fail;
    return DPT_OK;
fail:
    dpt_csv_columns_free(out);
    return DPT_EUSAGE;
}

void dpt_csv_columns_free(dpt_csv_columns *c)
{
    free(c->features);
    free(c->targets);
    memset(c, 0, sizeof *c);
    c->label = -1;
}
