/* dpt_error helpers: one place that formats the message a failing function hands back. */
#include "error.h"

#include <stdio.h>

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
