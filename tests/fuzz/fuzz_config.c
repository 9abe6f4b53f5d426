/* libFuzzer target: the config loader. The input is a YAML config file (dpt_config_load_file,
 * then dpt_config_validate), separately one --set "KEY=VALUE" string (dpt_config_set), and the
 * typed setter (dpt_config_set_value) with the first line as the key and the rest as the value.
 * Properties checked beyond "no crash": a refused input leaves the config untouched, and a
 * config that loads is written (dpt_config_write) to text that reads back to the same struct
 * and writes again to the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"

static dpt_config defaults;       /* dpt_config_defaults parses every key: done once */
static const char *input_path;    /* the fuzzed file */
static const char *written_path;  /* the written config, read back */

static void init_once(void)
{
    static int ready;
    if (ready)
        return;
    ready = 1;
    dpt_config_defaults(&defaults);
    input_path = fuzz_temp_path("config.yaml");
    written_path = fuzz_temp_path("written.yaml");
}

/* cfg as dpt_config_write writes it, in a malloc'ed NUL-terminated buffer. */
static char *write_text(const dpt_config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f || dpt_config_write(cfg, f) != DPT_OK || fclose(f) != 0) {
        fprintf(stderr, "fuzz_config: dpt_config_write failed\n");
        abort();
    }
    return text;
}

/* Written, read back, written again: the same struct and the same bytes. */
static void check_round_trip(const dpt_config *cfg)
{
    size_t n1, n2;
    char *t1 = write_text(cfg, &n1);
    fuzz_write_file(written_path, t1, n1);
    dpt_config back;
    memcpy(&back, &defaults, sizeof back);
    dpt_error err;
    if (dpt_config_load_file(&back, written_path, &err) != DPT_OK) {
        fprintf(stderr, "fuzz_config: the written config does not load back: %s\n---\n%s---\n",
                err.msg, t1);
        abort();
    }
    char *t2 = write_text(&back, &n2);
    if (n1 != n2 || memcmp(t1, t2, n1) != 0) {
        fprintf(stderr, "fuzz_config: written twice, the texts differ\n--- first\n%s--- second\n%s",
                t1, t2);
        abort();
    }
    if (memcmp(cfg, &back, sizeof back) != 0) {
        fprintf(stderr, "fuzz_config: the config read back differs from the one written\n%s",
                t1);
        abort();
    }
    free(t1);
    free(t2);
}

/* After the call: success gives a config that validates or not but round-trips; failure must
 * leave cfg as it was and say why. */
static void after(int rc, const dpt_config *cfg, const dpt_error *err, const char *what)
{
    fuzz_check_error(rc, err, what);
    if (rc != DPT_OK) {
        if (memcmp(cfg, &defaults, sizeof *cfg) != 0) {
            fprintf(stderr, "fuzz_config: a failed %s changed the config\n", what);
            abort();
        }
        return;
    }
    dpt_error verr;
    fuzz_check_error(dpt_config_validate(cfg, &verr), &verr, "dpt_config_validate");
    check_round_trip(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) /* configs are small; longer inputs only slow the search */
        return 0;
    init_once();
    dpt_config cfg;
    dpt_error err;

    fuzz_write_file(input_path, data, size);
    memcpy(&cfg, &defaults, sizeof cfg);
    after(dpt_config_load_file(&cfg, input_path, &err), &cfg, &err, "dpt_config_load_file");

    char *assignment = malloc(size + 1);
    if (!assignment)
        abort();
    memcpy(assignment, data, size);
    assignment[size] = '\0';
    memcpy(&cfg, &defaults, sizeof cfg);
    after(dpt_config_set(&cfg, assignment, &err), &cfg, &err, "dpt_config_set");

    /* the typed setter, as a search trial calls it: the input's first line is the key, the rest
     * the value, as YAML text and as a number read from it */
    char *nl = strchr(assignment, '\n');
    if (nl) {
        *nl = '\0';
        dpt_value yaml = {.kind = DPT_VALUE_YAML, .s = nl + 1};
        memcpy(&cfg, &defaults, sizeof cfg);
        after(dpt_config_set_value(&cfg, assignment, &yaml, &err), &cfg, &err,
              "dpt_config_set_value");
        dpt_value num = {.kind = DPT_VALUE_DOUBLE, .d = strtod(nl + 1, NULL)};
        memcpy(&cfg, &defaults, sizeof cfg);
        after(dpt_config_set_value(&cfg, assignment, &num, &err), &cfg, &err,
              "dpt_config_set_value");
        num = (dpt_value){.kind = DPT_VALUE_INT, .i = strtoll(nl + 1, NULL, 10)};
        memcpy(&cfg, &defaults, sizeof cfg);
        after(dpt_config_set_value(&cfg, assignment, &num, &err), &cfg, &err,
              "dpt_config_set_value");
    }
    free(assignment);
    return 0;
}
