/* Device selection (device.h): the only place that reads run.device / --device and counts the
 * visible GPUs, so the trainer and the benchmark choose, and refuse, alike. CUDA_VISIBLE_DEVICES
 * is honoured by the CUDA runtime itself. */
#include "device.h"

#include <stdlib.h>
#include <string.h>

#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"

/* More ranks on the node than GPUs: NCCL would refuse two ranks on one GPU later, in a less
 * helpful way. */
static int too_few_gpus(const dpt_comm *comm, int ndev, dpt_device_caller who, dpt_error *err)
{
    if (who == DPT_DEVICE_FOR_BENCH)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "--device cuda: %d ranks on %s but %d GPU%s visible: one rank per "
                             "GPU (start at most %d ranks per host, or use --device cpu)",
                             comm->node_ranks, comm->host, ndev, ndev == 1 ? "" : "s", ndev);
    return dpt_error_set(err, DPT_ERUNTIME,
                         "%d ranks on %s but %d GPU%s visible: dptrain runs one rank per "
                         "GPU (NCCL refuses two ranks on one GPU: \"Duplicate GPU "
                         "detected\"); start at most %d ranks per host",
                         comm->node_ranks, comm->host, ndev, ndev == 1 ? "" : "s", ndev);
}

int dpt_device_choose(dpt_device_kind want, const dpt_comm *comm, dpt_device_caller who,
                      dpt_device *out, dpt_error *err)
{
    memset(out, 0, sizeof *out);
    out->kind = DPT_DEVICE_CPU;
    int ndev = want == DPT_DEVICE_CPU ? 0 : dpt_cuda_device_count();
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (want == DPT_DEVICE_CUDA && ndev == 0)
        return dpt_error_set(err, DPT_ERUNTIME,
                             "--device cuda: no GPU is visible on %s (CUDA_VISIBLE_DEVICES=%s); "
                             "use --device cpu%s",
                             comm->host, visible ? visible : "unset",
                             who == DPT_DEVICE_FOR_BENCH ? "" : " or auto");
    if (want == DPT_DEVICE_AUTO && ndev == 0)
        out->note = "auto: no GPU visible";
    if (want == DPT_DEVICE_CUDA || (want == DPT_DEVICE_AUTO && ndev > 0)) {
        if (comm->device >= ndev)
            return too_few_gpus(comm, ndev, who, err);
        out->kind = DPT_DEVICE_CUDA;
        out->gpu = comm->device;
    }
    return DPT_OK;
}

int dpt_device_start(const dpt_device *d, int threads, int tf32, dpt_backend *be,
                     dpt_error *err)
{
    if (d->kind == DPT_DEVICE_CUDA)
        return dpt_cuda_backend_init(be, d->gpu, tf32, err);
    return dpt_cpu_backend_init(be, threads);
}

void *dpt_device_stream(dpt_backend *be)
{
    return be->host_memory ? NULL : dpt_cuda_backend_stream(be);
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

int dpt_device_start(const dpt_device *d, int threads, int tf32, dpt_backend *be,
                     dpt_error *err)
{
    (void)d;
    (void)tf32;
    (void)err;
    return dpt_cpu_backend_init(be, threads);
}

void *dpt_device_stream(dpt_backend *be)
{
    (void)be;
    return NULL;
}

#endif
