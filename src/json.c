/* The JSON writer shared by metrics.jsonl, trials.jsonl and the ranks' search logs: one
 * escaping rule and one number format, so every JSON line dptrain writes reads the same way. */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "config.h"

static void put(dpt_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(dpt_json *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(j->buf + (j->len < j->cap ? j->len : j->cap),
                      j->len < j->cap ? j->cap - j->len : 0, fmt, ap);
    va_end(ap);
    if (w > 0)
        j->len += (size_t)w;
}

void dpt_json_init(dpt_json *j, char *buf, size_t cap, int spaced)
{
    j->buf = buf;
    j->cap = cap;
    j->len = 0;
    j->comma = spaced ? ", " : ",";
    j->colon = spaced ? ": " : ":";
    j->depth = 0;
    j->members[0] = 0;
    if (cap > 0)
        buf[0] = '\0';
}

static void put_escaped(dpt_json *j, const char *s)
{
    put(j, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(j, "\\%c", *p);
        else if (*p < 0x20)
            put(j, "\\u%04x", *p);
        else
            put(j, "%c", *p);
    }
    put(j, "\"");
}

/* The separator and the key before a member. */
static void member(dpt_json *j, const char *key)
{
    if (j->members[j->depth]++ > 0)
        put(j, "%s", j->comma);
    if (key) {
        put_escaped(j, key);
        put(j, "%s", j->colon);
    }
}

static void open_level(dpt_json *j, const char *key, char bracket)
{
    member(j, key);
    put(j, "%c", bracket);
    if (j->depth + 1 < DPT_JSON_MAX_DEPTH) {
        j->members[++j->depth] = 0;
        j->closer[j->depth] = bracket == '{' ? '}' : ']';
    }
}

void dpt_json_object(dpt_json *j, const char *key) { open_level(j, key, '{'); }
void dpt_json_array(dpt_json *j, const char *key) { open_level(j, key, '['); }

void dpt_json_end(dpt_json *j)
{
    if (j->depth == 0)
        return;
    put(j, "%c", j->closer[j->depth--]);
}

void dpt_json_string(dpt_json *j, const char *key, const char *s)
{
    member(j, key);
    put_escaped(j, s);
}

void dpt_json_double(dpt_json *j, const char *key, double v)
{
    char text[64];
    if (isfinite(v))
        dpt_config_format_double(v, text, sizeof text);
    dpt_json_raw(j, key, isfinite(v) ? text : "null");
}

void dpt_json_double_g(dpt_json *j, const char *key, double v, int digits)
{
    member(j, key);
    if (isfinite(v))
        put(j, "%.*g", digits, v);
    else
        put(j, "null");
}

void dpt_json_int(dpt_json *j, const char *key, int64_t v)
{
    member(j, key);
    put(j, "%" PRId64, v);
}

void dpt_json_bool(dpt_json *j, const char *key, int v) { dpt_json_raw(j, key, v ? "true" : "false"); }

void dpt_json_raw(dpt_json *j, const char *key, const char *text)
{
    member(j, key);
    put(j, "%s", text);
}

void dpt_json_tail(dpt_json *j, const char *text) { put(j, "%s", text); }
