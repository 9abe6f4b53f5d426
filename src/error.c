/* dpt_error helpers: one place that formats the message a failing function hands back. */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dpt_fatal_hook g_hook;
static char g_tag[320] = "[dptrain]";

void dpt_set_fatal_hook(dpt_fatal_hook hook, const char *tag)
{
    g_hook = hook;
    if (tag)
        snprintf(g_tag, sizeof g_tag, "%s", tag);
}

const char *dpt_error_tag(void) { return g_tag; }

void dpt_fatal(const char *file, int line, const char *what, const char *detail)
{
    fprintf(stderr, "%s %s:%d: %s -> %s\n", g_tag, file, line, what, detail ? detail : "");
    fflush(stderr);
    if (g_hook)
        g_hook();
    _exit(1);
}

int dpt_error_echo(dpt_error *err, int code)
{
    if (err) {
        err->code = code;
        err->msg[0] = '\0';
    }
    return code;
}

int dpt_error_set(dpt_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}
