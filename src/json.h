/* The one JSON writer of dptrain: builds a line of JSON in a caller's buffer, key by key, with
 * the escaping and number formats that metrics.jsonl, trials.jsonl and the ranks' search logs
 * share. Reading JSON back is the trial log's job (src/trial_log.c), the only reader. */
#ifndef DPT_JSON_H
#define DPT_JSON_H

#include <stddef.h>
#include <stdint.h>

#define DPT_JSON_MAX_DEPTH 8

/* A JSON text being written into buf. len counts every byte the text needs, so len >= cap
 * means it was cut short (the buffer then holds a terminated prefix). */
typedef struct {
    char *buf;
    size_t cap, len;
    const char *comma, *colon;          /* "," ":" compact; ", " ": " spaced */
    int depth;
    int members[DPT_JSON_MAX_DEPTH];    /* members written so far at each open level */
    char closer[DPT_JSON_MAX_DEPTH];    /* '}' or ']' for each open level */
} dpt_json;

/* Starts an empty text in buf (cap bytes). spaced: ", " and ": " between members (as
 * metrics.jsonl is written), else "," and ":" (trials.jsonl, the ranks' logs). */
void dpt_json_init(dpt_json *j, char *buf, size_t cap, int spaced);

/* Each writer below adds one member: key is its name inside an object, NULL inside an array
 * (or for the outermost value). */
void dpt_json_object(dpt_json *j, const char *key);  /* opens {, closed by dpt_json_end */
void dpt_json_array(dpt_json *j, const char *key);   /* opens [, closed by dpt_json_end */
void dpt_json_end(dpt_json *j);
void dpt_json_string(dpt_json *j, const char *key, const char *s);
/* The shortest text that reads back to v (dpt_config_format_double); null when not finite. */
void dpt_json_double(dpt_json *j, const char *key, double v);
/* v with `digits` significant digits ("%.*g"); null when not finite. */
void dpt_json_double_g(dpt_json *j, const char *key, double v, int digits);
void dpt_json_int(dpt_json *j, const char *key, int64_t v);
void dpt_json_bool(dpt_json *j, const char *key, int v);
/* text as it is: a number or literal the caller has already formatted. */
void dpt_json_raw(dpt_json *j, const char *key, const char *text);
/* Appends text after the value (a newline ending a JSON Lines record). */
void dpt_json_tail(dpt_json *j, const char *text);

#endif
