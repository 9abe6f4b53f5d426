/* An NVTX injection library for tests/integration/nvtx.sh: loaded by NVTX v3 through
 * NVTX_INJECTION64_PATH (as Nsight Systems' own is), it writes every range push, pop, start and
 * end of the process to $DPT_NVTX_LOG.<pid>, so that a test sees what nsys would without a GPU
 * or nsys. The mechanism: nvtx3/nvtxDetail/nvtxInit.h (InitializeInjectionNvtx2). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <nvtx3/nvToolsExt.h>

static FILE *out;

static int rec_push(const char *name)
{
    fprintf(out, "push %s\n", name);
    return 0;
}

static int rec_pop(void)
{
    fprintf(out, "pop\n");
    return 0;
}

static nvtxRangeId_t rec_start(const char *name)
{
    static nvtxRangeId_t next = 1;
    fprintf(out, "start %llu %s\n", (unsigned long long)next, name);
    return next++;
}

static void rec_end(nvtxRangeId_t id) { fprintf(out, "end %llu\n", (unsigned long long)id); }

int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_table);
int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_table)
{
    const char *base = getenv("DPT_NVTX_LOG");
    char path[4096];
    snprintf(path, sizeof path, "%s.%ld", base ? base : "nvtx", (long)getpid());
    const NvtxExportTableCallbacks *cb = get_table(NVTX_ETID_CALLBACKS);
    NvtxFunctionTable table = NULL;
    unsigned int size = 0;
    if (!cb || !cb->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &table, &size) ||
        size <= NVTX_CBID_CORE_RangePushA || !(out = fopen(path, "w")))
        return 0; /* NVTX then makes every call a no-op */
    setvbuf(out, NULL, _IOLBF, 0);
    *table[NVTX_CBID_CORE_RangePushA] = (NvtxFunctionPointer)rec_push;
    *table[NVTX_CBID_CORE_RangePop] = (NvtxFunctionPointer)rec_pop;
    *table[NVTX_CBID_CORE_RangeStartA] = (NvtxFunctionPointer)rec_start;
    *table[NVTX_CBID_CORE_RangeEnd] = (NvtxFunctionPointer)rec_end;
    return 1;
}
