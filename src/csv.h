/* CSV as spreadsheets and pandas write it: RFC 4180 records split into fields (quotes, doubled
 * quotes, commas and newlines inside quotes), missing-value markers, and the choice of the label
 * and feature columns by name, index or range. The loader (data.c) and predict's reader use it. */
#ifndef DPT_CSV_H
#define DPT_CSV_H

#include <stddef.h>

#include "error.h"

/* The fields of one record: v[k] points into the record, unquoted and NUL-terminated. */
typedef struct {
    char **v;
    int n, cap;
} dpt_csv_fields;

/* Splits rec in place into fields. Returns 0, or the 1-based column of a malformed field with
 * *why saying what is wrong (a quote inside an unquoted field, text after a closing quote, an
 * unterminated quote); -1 when out of memory. */
int dpt_csv_split(char *rec, dpt_csv_fields *f, const char **why);

void dpt_csv_fields_free(dpt_csv_fields *f);

/* 1 when s ends inside a quoted field (a record that continues on the next line); in_quote:
 * s continues a quoted field of the line before. */
int dpt_csv_quote_open(const char *s, int in_quote);

/* 1 when a field is a missing value as pandas and spreadsheets write it: empty, NA, N/A, NaN,
 * nan, null, NULL, ? (surrounding spaces ignored). */
int dpt_csv_is_missing(const char *s);

/* 1 when s is a number (strtod, surrounding spaces allowed); *v receives it. */
int dpt_csv_number(const char *s, double *v);

/* One item of a comma-separated list of names (data.label_column, data.feature_columns,
 * data.class_names) into item (cap), surrounding spaces dropped. An item in double quotes may
 * hold commas and "" for a quote, and is always a name (never an index or a range). *p moves
 * past the item and its comma (NULL after the last). Returns 1 for a quoted item, 0 for a plain
 * one, -1 when a quote is not closed or text follows the closing quote (*why says which). */
int dpt_csv_list_item(const char **p, char *item, size_t cap, const char **why);

/* Appends name to out (cap bytes, NUL-terminated), after ", " unless out is empty; quoted as
 * dpt_csv_list_item reads it when it holds a comma or a quote or starts or ends with a space.
 * Returns 0, or -1 when out is too small (out is then unchanged). */
int dpt_csv_list_append(char *out, size_t cap, const char *name);

/* As dpt_csv_list_append, for a header's name that must read back as that name: also quoted
 * when it would read as a column index or a range ("3", "-1", "1:4") or is empty (predict joins
 * model.json's names so; a header of years or numbered columns is common). */
int dpt_csv_list_append_name(char *out, size_t cap, const char *name);

/* The chosen columns of a file with n_cols columns (0-based indices). */
typedef struct {
    int label;      /* -1: none (predict's input without labels); else targets[0] */
    int *targets;   /* (n_targets) the label column, or a regression's target columns */
    int n_targets;
    int *features;  /* (n_features) in the order given */
    int n_features;
} dpt_csv_columns;

/* Resolves data.label_column and data.feature_columns against a file's columns. label_spec: ""
 * (the first column), a name, or an index counted from 0 (negative from the end), or a
 * comma-separated list of them (a regression's target columns); NULL: no label column. feature_spec: "" (every column but the label) or a comma-separated list of names,
 * indices and ranges a:b (half-open, as Python's slices, either end may be left out). names: the
 * header's n_cols names, or NULL without a header. Errors (DPT_EUSAGE) name path, the key and the
 * item that does not resolve. */
int dpt_csv_resolve(const char *label_spec, const char *feature_spec, int n_cols,
                    char *const *names, const char *path, dpt_csv_columns *out, dpt_error *err);

void dpt_csv_columns_free(dpt_csv_columns *c);

#endif
