/* Small helpers used across modules: a monotonic clock, creating directories, formatting. */
#ifndef DPT_UTIL_H
#define DPT_UTIL_H

#include <stddef.h>

#include "error.h"

double dpt_now(void);  /* seconds, monotonic */

/* mkdir -p; DPT_ERUNTIME naming the directory on failure. */
int dpt_mkdir_p(const char *path, dpt_error *err);

/* Checks that dir is writable by creating and removing a probe file. */
int dpt_probe_writable(const char *dir, dpt_error *err);

/* Writes the n parts (bytes sizes[k] at parts[k]) to path atomically: a temp file path.tmp,
 * fsync, rename; a failure leaves any previous file at path as it was (DPT_ERUNTIME). */
int dpt_write_atomic(const char *path, const void *const *parts, const size_t *sizes, int n,
                     dpt_error *err);

/* "1h02m", "3m05s", "12s" */
void dpt_format_duration(double seconds, char *out, size_t n);

#endif
