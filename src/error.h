/* Error reporting shared by every module.
 * A user's mistake (config, data file, flags) comes back as a dpt_error with code DPT_EUSAGE and a
 * message naming the file, line, column or key; main prints it and exits 2. A failure of the
 * system or the run (I/O, allocation, divergence) is DPT_ERUNTIME and exits 1. */
#ifndef DPT_ERROR_H
#define DPT_ERROR_H

#include <stdarg.h>

enum { DPT_OK = 0, DPT_ERUNTIME = 1, DPT_EUSAGE = 2 };
/* 128 + N: stopped by signal N (SIGINT, SIGTERM) after saving its state, as shells report it */
#define DPT_ESIGNAL(sig) (128 + (sig))

typedef struct {
    int code;        /* DPT_OK, DPT_ERUNTIME or DPT_EUSAGE */
    char msg[1024];  /* one line, no trailing newline */
} dpt_error;

/* Sets the code only: this rank failed because another rank did, and that rank speaks. */
int dpt_error_echo(dpt_error *err, int code);

/* Fills err (when not NULL) with code and a printf-style message; returns code. */
int dpt_error_set(dpt_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
