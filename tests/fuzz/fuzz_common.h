/* Helpers shared by the libFuzzer targets in tests/fuzz: the loaders under test take paths, so
 * each input goes to a per-process temporary file; inputs may be gzip-wrapped in memory so that
 * the gzip paths see arbitrary contents, not only what survives a CRC. Header-only on purpose:
 * every target is one .c file that replay.c (the plain driver) also builds. */
#ifndef DPT_FUZZ_COMMON_H
#define DPT_FUZZ_COMMON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "error.h"

#define FUZZ_MAX_TEMPS 4

static char fuzz_temps[FUZZ_MAX_TEMPS][256];
static int fuzz_n_temps;

static inline void fuzz_remove_temps(void)
{
    for (int i = 0; i < fuzz_n_temps; i++)
        unlink(fuzz_temps[i]);
}

/* A path of this process for the file called tag, removed at exit: in $TMPDIR, else in
 * /dev/shm (memory: a file on disk costs tens of times the run of the loader), else /tmp. */
static inline const char *fuzz_temp_path(const char *tag)
{
    if (fuzz_n_temps == FUZZ_MAX_TEMPS) {
        fprintf(stderr, "fuzz: too many temporary files\n");
        abort();
    }
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0])
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char *p = fuzz_temps[fuzz_n_temps++];
    snprintf(p, sizeof fuzz_temps[0], "%s/dpt_fuzz_%ld_%s", dir,
             (long)getpid(), tag);
    if (fuzz_n_temps == 1)
        atexit(fuzz_remove_temps);
    return p;
}

/* Replaces the contents of path with data; a failure here is the harness's, so it aborts. */
static inline void fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

/* data as a gzip stream (zlib's deflate, windowBits 31) in a malloc'ed buffer. */
static inline unsigned char *fuzz_gzip(const void *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    unsigned char *out = malloc(cap);
    if (!out)
        abort();
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* Writes data to path, gzip-wrapped when gzip is set. */
static inline void fuzz_write_maybe_gzip(const char *path, const void *data, size_t size,
                                         int gzip)
{
    if (!gzip) {
        fuzz_write_file(path, data, size);
        return;
    }
    size_t n;
    unsigned char *z = fuzz_gzip(data, size, &n);
    fuzz_write_file(path, z, n);
    free(z);
}

/* Every refusal must be a status with a message, never a silent or unknown code. */
static inline void fuzz_check_error(int rc, const dpt_error *err, const char *what)
{
    if (rc == DPT_OK)
        return;
    if ((rc != DPT_EUSAGE && rc != DPT_ERUNTIME) || err->code != rc || err->msg[0] == '\0') {
        fprintf(stderr, "fuzz: %s returned %d with code %d and message '%s'\n", what, rc,
                err->code, err->msg);
        abort();
    }
}

/* Aborts (a finding) unless a loaded split is consistent: counts, widths, labels below
 * classes, and, when check_finite, every feature finite. target names the fuzzer in messages. */
static inline void fuzz_check_split(const char *target, const dpt_dataset *d, const char *name,
                                    int features, int classes, int check_finite)
{
    if (d->n < 0 || d->n > d->n_total || d->features != features || d->classes != classes ||
        (d->n > 0 && (!d->x || !d->y))) {
        fprintf(stderr, "%s: %s: inconsistent split (n %lld of %lld)\n", target, name,
                (long long)d->n, (long long)d->n_total);
        abort();
    }
    for (int64_t i = 0; i < d->n; i++) {
        if (d->y[i] < 0 || d->y[i] >= classes) {
            fprintf(stderr, "%s: %s: label %d at row %lld\n", target, name, d->y[i], (long long)i);
            abort();
        }
        for (int j = 0; j < features && check_finite; j++)
            if (!isfinite(d->x[i * features + j])) {
                fprintf(stderr, "%s: %s: feature not finite at row %lld\n", target, name,
                        (long long)i);
                abort();
            }
    }
}

#endif
