/* Checkpoint writing and reading. The byte layout is spelled out field by field (no struct
 * dumps), little-endian, so other tools can read it: see docs/checkpoint.md. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* This build assumes a little-endian host (x86_64, aarch64, ppc64le), checked at compile time. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint code assumes little-endian");

typedef struct { unsigned char *p; size_t n; } buf_t;

static void put(buf_t *b, const void *src, size_t n)
{
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static size_t header_bytes(uint32_t n_layers)
{
    /* magic, version, header bytes, L, widths, epoch, step, optimizer, n_state, n_params, seed,
     * payload crc, reserved */
    return 8 + 4 + 4 + 4 + 4 * (n_layers + 1) + 4 + 8 + 8 + 4 + 8 + 8 + 4 + 4;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int dpt_checkpoint_save(const char *path, const dpt_ckpt_header *h, const float *params,
                        const float *state, dpt_error *err)
{
    size_t hb = header_bytes(h->n_layers);
    size_t pbytes = h->n_params * sizeof(float);
    size_t sbytes = (size_t)h->n_state * pbytes;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32_z(crc, (const Bytef *)params, pbytes);
    if (sbytes)
        crc = crc32_z(crc, (const Bytef *)state, sbytes);

    unsigned char head[512];
    buf_t b = {head, 0};
    uint32_t version = DPT_CKPT_VERSION, hb32 = (uint32_t)hb, crc32v = (uint32_t)crc, zero = 0;
    put(&b, DPT_CKPT_MAGIC, 8);
    put(&b, &version, 4);
    put(&b, &hb32, 4);
    put(&b, &h->n_layers, 4);
    put(&b, h->widths, 4 * (h->n_layers + 1));
    put(&b, &h->epoch, 4);
    put(&b, &h->step, 8);
    put(&b, h->optimizer, 8);
    put(&b, &h->n_state, 4);
    put(&b, &h->n_params, 8);
    put(&b, &h->seed, 8);
    put(&b, &crc32v, 4);
    put(&b, &zero, 4);

    char tmp[DPT_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return dpt_error_set(err, DPT_ERUNTIME, "cannot write checkpoint '%s': %s", tmp,
                             strerror(errno));
    int bad = write_all(fd, head, b.n) || write_all(fd, params, pbytes) ||
              (sbytes && write_all(fd, state, sbytes)) || fsync(fd) != 0;
    int saved_errno = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved_errno = errno;
    }
    if (bad || rename(tmp, path) != 0) {
        if (!bad) saved_errno = errno;
        unlink(tmp);
        return dpt_error_set(err, DPT_ERUNTIME,
                             "cannot write checkpoint '%s': %s (the previous checkpoint is kept)",
                             path, strerror(saved_errno));
    }
    /* make the rename itself durable */
    char dir[DPT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return DPT_OK;
}

static int get(const unsigned char **p, const unsigned char *end, void *dst, size_t n)
{
    if ((size_t)(end - *p) < n)
        return -1;
    memcpy(dst, *p, n);
    *p += n;
    return 0;
}

/* The header's fields, from the first bytes of the file: magic, version, header size (hb), the
 * shape and the CRC the file records. */
static int read_header(FILE *f, const char *path, dpt_ckpt_header *h, uint32_t *hb,
                       uint32_t *crc_file, dpt_error *err)
{
    unsigned char head[512];
    size_t got = fread(head, 1, sizeof head, f);
    const unsigned char *p = head, *end = head + got;
    char magic[8];
    uint32_t version = 0, reserved = 0;
    /* a file cut inside the magic or the version is truncated, not foreign or of another version */
    if (memcmp(head, DPT_CKPT_MAGIC, got < 8 ? got : 8) != 0)
        return dpt_error_set(err, DPT_EUSAGE, "checkpoint '%s': bad magic (not a dptrain checkpoint)",
                             path);
    if (get(&p, end, magic, 8) || get(&p, end, &version, 4))
        return dpt_error_set(err, DPT_EUSAGE, "checkpoint '%s': truncated or malformed header", path);
    if (version != DPT_CKPT_VERSION)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s': format version %u, this build reads version %u",
                             path, version, DPT_CKPT_VERSION);
    if (get(&p, end, hb, 4) || get(&p, end, &h->n_layers, 4) || h->n_layers < 1 ||
        h->n_layers > DPT_MAX_LAYERS || *hb != header_bytes(h->n_layers) ||
        get(&p, end, h->widths, 4 * (h->n_layers + 1)) || get(&p, end, &h->epoch, 4) ||
        get(&p, end, &h->step, 8) || get(&p, end, h->optimizer, 8) ||
        get(&p, end, &h->n_state, 4) || get(&p, end, &h->n_params, 8) ||
        get(&p, end, &h->seed, 8) || get(&p, end, crc_file, 4) || get(&p, end, &reserved, 4))
        return dpt_error_set(err, DPT_EUSAGE, "checkpoint '%s': truncated or malformed header", path);
    h->optimizer[7] = '\0';
    return DPT_OK;
}

/* The parameter count must be the one the widths give, and the file exactly the header and
 * the payload that count implies: a truncated payload is named as such before anything is read. */
static int check_size(FILE *f, const char *path, const dpt_ckpt_header *h, uint32_t hb,
                      dpt_error *err)
{
    /* Widths below 2^32 keep each layer's count below 2^64, but their sum and the byte sizes
     * can wrap: a header of 2^62 parameters would then "match" a file of its header alone. */
    uint64_t expect = 0;
    int wraps = 0;
    for (uint32_t l = 0; l < h->n_layers; l++)
        wraps |= __builtin_add_overflow(
            expect, (uint64_t)h->widths[l + 1] * h->widths[l] + h->widths[l + 1], &expect);
    if (h->n_state <= 2 && h->n_params > ((uint64_t)LONG_MAX - hb) / (4 * (1 + h->n_state)))
        wraps = 1;  /* hb + 4·P·(1+S) must fit the file size ftell reports */
    if (wraps || expect != h->n_params || h->n_state > 2)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s': header is inconsistent (%llu parameters for its "
                             "widths, %llu recorded%s)",
                             path, (unsigned long long)expect, (unsigned long long)h->n_params,
                             wraps ? ": more than a file can hold" : "");
    size_t pbytes = h->n_params * sizeof(float), sbytes = (size_t)h->n_state * pbytes;
    if (fseek(f, 0, SEEK_END) != 0)
        return dpt_error_set(err, DPT_ERUNTIME, "checkpoint '%s': %s", path, strerror(errno));
    long size = ftell(f);
    if (size < 0 || (size_t)size != hb + pbytes + sbytes)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s': truncated or padded: %ld bytes, expected %zu", path,
                             size, hb + pbytes + sbytes);
    return DPT_OK;
}

/* The parameters and the optimizer state (into a scratch buffer when state is NULL, so the CRC
 * still covers them), checked against the CRC the header records. */
static int read_payload(FILE *f, const char *path, const dpt_ckpt_header *h, uint32_t hb,
                        uint32_t crc_file, float *params, float *state, dpt_error *err)
{
    size_t pbytes = h->n_params * sizeof(float), sbytes = (size_t)h->n_state * pbytes;
    float *tmp_state = NULL;
    if (fseek(f, (long)hb, SEEK_SET) != 0 || fread(params, 1, pbytes, f) != pbytes)
        return dpt_error_set(err, DPT_EUSAGE, "checkpoint '%s': cannot read parameters", path);
    uLong crc = crc32_z(crc32(0L, Z_NULL, 0), (const Bytef *)params, pbytes);
    if (sbytes) {
        float *dst = state;
        if (!dst) {
            tmp_state = malloc(sbytes);
            dst = tmp_state;
        }
        if (!dst || fread(dst, 1, sbytes, f) != sbytes) {
            free(tmp_state);
            return dpt_error_set(err, DPT_EUSAGE, "checkpoint '%s': cannot read optimizer state",
                                 path);
        }
        crc = crc32_z(crc, (const Bytef *)dst, sbytes);
        free(tmp_state);
    }
    if ((uint32_t)crc != crc_file)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s': CRC mismatch (file %08x, computed %08x): corrupt",
                             path, crc_file, (uint32_t)crc);
    return DPT_OK;
}

int dpt_checkpoint_load(const char *path, dpt_ckpt_header *h, float *params, float *state,
                        dpt_error *err)
{
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dpt_error_set(err, DPT_EUSAGE, "cannot open checkpoint '%s': %s", path,
                             strerror(errno));
    uint32_t hb = 0, crc_file = 0;
    int rc = read_header(f, path, h, &hb, &crc_file, err);
    if (rc == DPT_OK)
        rc = check_size(f, path, h, hb, err);
    if (rc == DPT_OK && params)
        rc = read_payload(f, path, h, hb, crc_file, params, state, err);
    fclose(f);
    return rc;
}

int dpt_checkpoint_check(const dpt_ckpt_header *h, const dpt_config *cfg, const char *path,
                         dpt_error *err)
{
    int same = (int)h->n_layers == cfg->model.n_layers;
    for (int l = 0; same && l <= cfg->model.n_layers; l++)
        same = (int)h->widths[l] == cfg->model.widths[l];
    if (!same) {
        char got[256] = "", want[256] = "";
        for (uint32_t l = 0; l <= h->n_layers && strlen(got) < 200; l++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%u", l ? "," : "",
                     h->widths[l]);
        for (int l = 0; l <= cfg->model.n_layers && strlen(want) < 200; l++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", l ? "," : "",
                     cfg->model.widths[l]);
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s' has layer widths [%s] but model.layers is [%s]",
                             path, got, want);
    }
    if (strcmp(h->optimizer, dpt_optimizer_name(cfg->train.optimizer)) != 0)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s' was written by optimizer '%s' but train.optimizer "
                             "is '%s'",
                             path, h->optimizer, dpt_optimizer_name(cfg->train.optimizer));
    if (h->seed != cfg->run.seed)
        return dpt_error_set(err, DPT_EUSAGE,
                             "checkpoint '%s' was written with run.seed %llu but run.seed is %llu: "
                             "resuming would change the data order and dropout masks",
                             path, (unsigned long long)h->seed,
                             (unsigned long long)cfg->run.seed);
    return DPT_OK;
}
