/* Plain driver for the libFuzzer targets: links with one fuzz_*.c and calls its
 * LLVMFuzzerTestOneInput once on every file under the directories (or files) given, so that the
 * seed corpus and every crash ever found (tests/fuzz/regressions/<target>/) run as an ordinary
 * ctest test in every build, with or without clang and the sanitizers.
 * Usage: replay_<target> DIR_OR_FILE...   (prints the count; a failing input aborts) */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            abort();
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        perror(path);
        free(buf);
        return -1;
    }
    /* a copy of exactly n bytes, as libFuzzer hands them, so ASan sees reads past the end */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact)
        abort();
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs path, or every regular file in it in name order; returns the count or -1. */
static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) ? -1 : 1;
    DIR *dir = opendir(path);
    if (!dir) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                abort();
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n])
            abort();
        snprintf(names[n++], len, "%s/%s", path, e->d_name);
    }
    closedir(dir);
    if (n)
        qsort(names, n, sizeof *names, compare_names);
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        if (count >= 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            count = run_file(names[i]) ? -1 : count + 1;
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long k = run_path(argv[i]);
        if (k < 0)
            return 1;
        printf("%s: %ld inputs\n", argv[i], k);
        total += k;
    }
    printf("replayed %ld inputs without a failure\n", total);
    return total > 0 ? 0 : 1;
}
