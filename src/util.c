/* Helpers shared by the trainer's modules. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double dpt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dpt_mkdir_p(const char *path, dpt_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return dpt_error_set(err, DPT_EUSAGE, "output directory path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return dpt_error_set(err, DPT_ERUNTIME, "cannot create directory '%s': %s", buf,
                                 strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot create directory '%s': %s", buf,
                             strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return dpt_error_set(err, DPT_ERUNTIME, "'%s' exists and is not a directory", buf);
    return DPT_OK;
}

int dpt_probe_writable(const char *dir, dpt_error *err)
{
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.dptrain-probe-%ld", dir, (long)getpid());
    FILE *f = fopen(probe, "wb");
    int ok = f && fwrite("probe\n", 1, 6, f) == 6;
    if (f && fclose(f) != 0)
        ok = 0;
    int saved = errno;
    unlink(probe);
    if (!ok)
        return dpt_error_set(err, DPT_ERUNTIME, "output directory '%s' is not writable: %s", dir,
                             strerror(saved));
    return DPT_OK;
}

void dpt_format_duration(double s, char *out, size_t n)
{
    if (s < 0 || s != s)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60)
        snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(out, n, "%lds", t);
}

int dpt_write_atomic(const char *path, const void *const *parts, const size_t *sizes, int n,
                     dpt_error *err)
{
    size_t len = strlen(path) + 5;
    char *tmp = malloc(len);
    if (!tmp)
        return dpt_error_set(err, DPT_ERUNTIME, "out of memory writing '%s'", path);
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    for (int k = 0; f && k < n; k++)
        bad |= sizes[k] && fwrite(parts[k], 1, sizes[k], f) != sizes[k];
    if (f) {
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
    }
    int rc = DPT_OK;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        rc = dpt_error_set(err, DPT_ERUNTIME, "cannot write '%s': %s", path, strerror(e));
    }
    free(tmp);
    return rc;
}
