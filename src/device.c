/* Device selection (device.h): the only place that reads run.device / --device and counts the
 * visible GPUs, so the trainer and the benchmark choose, and refuse, alike. CUDA_VISIBLE_DEVICES
 * is honoured by the CUDA runtime itself; the choice works whether it leaves each rank one GPU
 * or all of them (pick_gpu). */
#include "device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CPU backend; its bf16 GEMM scratch is the one allocation that can fail. */
static int start_cpu(int threads, dpt_precision precision, dpt_backend *be, dpt_error *err)
{
    if (dpt_cpu_backend_init_precision(be, threads, precision) != 0)
        return dpt_error_set(err, DPT_ERUNTIME, "out of host memory for the CPU backend");
    return DPT_OK;
}

#ifdef DPT_HAVE_CUDA
#include <stdio.h>

#include "cuda_backend.h"

/* More ranks on the node than GPUs: NCCL would refuse two ranks on one GPU later, in a less
 * helpful way. */
static int too_few_gpus(const dpt_comm *comm, int ndev, dpt_device_caller who, dpt_error *err)
{
    return dpt_error_set(err, DPT_ERUNTIME,
                         "%s%d ranks on %s but %d GPUs visible to rank %d: one rank per GPU. "
                         "Give each rank its own GPU (SLURM --gpus-per-task=1, or a "
                         "CUDA_VISIBLE_DEVICES per rank), or start at most %d ranks per host%s",
                         who == DPT_DEVICE_FOR_BENCH ? "--device cuda: " : "", comm->node_ranks,
                         comm->host, ndev, comm->world_rank, ndev,
                         who == DPT_DEVICE_FOR_BENCH ? ", or use --device cpu" : "");
}

/* The rule (docs/gpu.md, "Running"): a rank that sees exactly one GPU takes it (the launcher
 * gave each rank its own: SLURM --gpus-per-task=1, a CUDA_VISIBLE_DEVICES per rank, or a
 * one-GPU node); a rank that sees several takes the one at its index among the job's ranks on
 * its node. */
static int pick_gpu(int ndev, const dpt_comm *comm, dpt_device_caller who, int *gpu,
                    dpt_error *err)
{
    *gpu = ndev == 1 ? 0 : comm->device;
    return *gpu < ndev ? DPT_OK : too_few_gpus(comm, ndev, who, err);
}

/* Collective over the node: two ranks whose choices are one physical GPU (each rank numbers the
 * GPUs it sees from 0, so only the PCI address tells) are refused here, by name, instead of by
 * NCCL's "Duplicate GPU detected" or, with MPI gradients, not at all. */
static int refuse_shared_gpu(const dpt_device *d, int rc, const dpt_comm *comm, dpt_error *err)
{
    struct {
        int rank;
        char pci[28];
    } mine = {comm->world_rank, ""}, *all = calloc((size_t)comm->local_size, sizeof mine);
    DPT_CHECK(all != NULL, "out of memory");
    if (rc == DPT_OK && d->kind == DPT_DEVICE_CUDA &&
        dpt_cuda_device_pci(d->gpu, mine.pci, sizeof mine.pci) != 0)
        mine.pci[0] = '\0';
    DPT_MPI_CHECK(MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine,
                                MPI_BYTE, comm->local));
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    for (int r = 0; r < comm->local_size && rc == DPT_OK; r++)
        if (mine.pci[0] && all[r].rank != mine.rank && strcmp(all[r].pci, mine.pci) == 0)
            rc = dpt_error_set(err, DPT_ERUNTIME,
                               "ranks %d and %d on %s would both use the GPU at PCI %s (rank %d "
                               "sees %d GPU%s, CUDA_VISIBLE_DEVICES=%s): one rank per GPU. Give "
                               "each rank its own GPU (SLURM --gpus-per-task=1, or a "
                               "CUDA_VISIBLE_DEVICES per rank) or let every rank see all of the "
                               "node's GPUs",
                               r < comm->local_rank ? all[r].rank : mine.rank,
                               r < comm->local_rank ? mine.rank : all[r].rank, comm->host,
                               mine.pci, mine.rank, dpt_cuda_device_count(),
                               dpt_cuda_device_count() == 1 ? "" : "s",
                               visible ? visible : "unset");
    free(all);
    return rc;
}

/* CUDA's answer to "how many GPUs", or its reason for having none (an old driver) in *why. */
static int count_gpus(dpt_device_kind want, char *why, size_t n)
{
    int ndev = 0;
    why[0] = '\0';
    if (want != DPT_DEVICE_CPU && dpt_cuda_probe(&ndev, why, n) != 0)
        ndev = 0;
    return ndev;
}

int dpt_device_choose(dpt_device_kind want, const dpt_comm *comm, dpt_device_caller who,
                      dpt_device *out, dpt_error *err)
{
    static char note[400]; /* the start-up table prints it after this returns */
    memset(out, 0, sizeof *out);
    out->kind = DPT_DEVICE_CPU;
    if (want == DPT_DEVICE_CPU)
        return DPT_OK;
    char why[320];
    int ndev = count_gpus(want, why, sizeof why), rc = DPT_OK;
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (want == DPT_DEVICE_CUDA && why[0])
        rc = dpt_error_set(err, DPT_ERUNTIME, "--device cuda on %s: %s; or use --device cpu%s",
                           comm->host, why, who == DPT_DEVICE_FOR_BENCH ? "" : " or auto");
    else if (want == DPT_DEVICE_CUDA && ndev == 0)
        rc = dpt_error_set(err, DPT_ERUNTIME,
                           "--device cuda: no GPU is visible on %s (CUDA_VISIBLE_DEVICES=%s); "
                           "use --device cpu%s",
                           comm->host, visible ? visible : "unset",
                           who == DPT_DEVICE_FOR_BENCH ? "" : " or auto");
    else if (ndev == 0) {
        snprintf(note, sizeof note, "auto: %s", why[0] ? why : "no GPU visible");
        out->note = note;
    } else if ((rc = pick_gpu(ndev, comm, who, &out->gpu, err)) == DPT_OK)
        out->kind = DPT_DEVICE_CUDA;
    return refuse_shared_gpu(out, rc, comm, err);
}

int dpt_device_start(const dpt_device *d, int threads, dpt_precision precision,
                     dpt_backend *be, dpt_error *err)
{
    if (d->kind == DPT_DEVICE_CUDA)
        return dpt_cuda_backend_init(be, d->gpu, precision, err);
    return start_cpu(threads, precision, be, err);
}

void *dpt_device_stream(dpt_backend *be)
{
    return be->host_memory ? NULL : dpt_cuda_backend_stream(be);
}

int dpt_device_epilogues(dpt_backend *be, int mode, char *why, size_t n, dpt_error *err)
{
    if (be->host_memory) {
        snprintf(why, n, "none (the CPU backend)");
        return DPT_OK;
    }
    if (dpt_cuda_epilogues(be, mode, why, n) != 0)
        return dpt_error_set(err, DPT_EUSAGE, "train.gemm_epilogue: on, but %s; use auto or off",
                             why);
    return DPT_OK;
}

void dpt_device_graph_begin(dpt_backend *be) { dpt_cuda_graph_begin(be); }
void dpt_device_graph_end(dpt_backend *be) { dpt_cuda_graph_end(be); }
void dpt_device_graph_launch(dpt_backend *be) { dpt_cuda_graph_launch(be); }
void dpt_device_graph_scalars(dpt_backend *be, const float sc[3], int64_t step)
{
    dpt_cuda_step_scalars(be, sc[0], sc[1], sc[2], step);
}

int dpt_device_counts_read(const dpt_backend *be, dpt_device_counts *out)
{
    memset(out, 0, sizeof *out);
    if (be->host_memory)
        return -1;
    dpt_cuda_counts_read(out);
    return 0;
}

void dpt_device_timing_arm(dpt_backend *be, int steps)
{
    if (!be->host_memory)
        dpt_cuda_timing_arm(steps);
}

void dpt_device_timing_slot(dpt_backend *be, int slot)
{
    if (!be->host_memory)
        dpt_cuda_timing_slot(slot);
}

void dpt_device_mark(dpt_backend *be, dpt_mark_kind kind)
{
    if (!be->host_memory)
        dpt_cuda_mark(kind, dpt_cuda_backend_stream(be));
}

int dpt_device_timing_read(dpt_backend *be, dpt_device_times *out)
{
    memset(out, 0, sizeof *out);
    if (be->host_memory)
        return -1;
    dpt_cuda_timing_read(out);
    return 0;
}

#else /* a build without the CUDA backend */

int dpt_device_choose(dpt_device_kind want, const dpt_comm *comm, dpt_device_caller who,
                      dpt_device *out, dpt_error *err)
{
    (void)comm;
    (void)who;
    memset(out, 0, sizeof *out);
    out->kind = DPT_DEVICE_CPU;
    if (want == DPT_DEVICE_CUDA)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "--device cuda: this build of dptrain has no CUDA backend "
                             "(rebuild with the CUDA toolkit, or use --device cpu)");
    return DPT_OK;
}

int dpt_device_start(const dpt_device *d, int threads, dpt_precision precision,
                     dpt_backend *be, dpt_error *err)
{
    (void)d;
    return start_cpu(threads, precision, be, err);
}

void *dpt_device_stream(dpt_backend *be)
{
    (void)be;
    return NULL;
}

int dpt_device_epilogues(dpt_backend *be, int mode, char *why, size_t n, dpt_error *err)
{
    (void)be;
    (void)mode;
    (void)err;
    snprintf(why, n, "none (the CPU backend)");
    return DPT_OK;
}

/* without CUDA the trainer never enables graphs: reaching these is a defect */
void dpt_device_graph_begin(dpt_backend *be) { (void)be; DPT_CHECK(0, "no CUDA backend"); }
void dpt_device_graph_end(dpt_backend *be) { (void)be; DPT_CHECK(0, "no CUDA backend"); }
void dpt_device_graph_launch(dpt_backend *be) { (void)be; DPT_CHECK(0, "no CUDA backend"); }
void dpt_device_graph_scalars(dpt_backend *be, const float sc[3], int64_t step)
{
    (void)be;
    (void)sc;
    (void)step;
    DPT_CHECK(0, "no CUDA backend");
}

int dpt_device_counts_read(const dpt_backend *be, dpt_device_counts *out)
{
    (void)be;
    memset(out, 0, sizeof *out);
    return -1;
}

/* the CPU backend has no events: nothing to time */
void dpt_device_timing_arm(dpt_backend *be, int steps)
{
    (void)be;
    (void)steps;
}

void dpt_device_timing_slot(dpt_backend *be, int slot)
{
    (void)be;
    (void)slot;
}

void dpt_device_mark(dpt_backend *be, dpt_mark_kind kind)
{
    (void)be;
    (void)kind;
}

int dpt_device_timing_read(dpt_backend *be, dpt_device_times *out)
{
    (void)be;
    memset(out, 0, sizeof *out);
    return -1;
}

#endif
