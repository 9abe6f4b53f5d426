/* bench train's GPU-event timing of compute against communication: cudaEvents recorded on the
 * compute stream and on the communication stream, read (cudaEventElapsedTime) only after the timed
 * steps, so that a step gains no host synchronization. Process-wide, as the launch counters are:
 * mpi/nccl_comm.c marks the communication stream without knowing the trainer. */
#include <stdio.h>
#include <string.h>

#include <vector>

#include "kernels.h"

namespace {

enum { N_COMPUTE = 4, MAX_COMM = 32 }; /* compute marks; allreduces timed per step */

struct step_events {
    cudaEvent_t mark[N_COMPUTE];     /* DPT_MARK_STEP .. DPT_MARK_OPTIM_END */
    cudaEvent_t comm[MAX_COMM][2];   /* each allreduce's begin and end */
    unsigned seen;                   /* bit k: mark[k] recorded */
    int n_comm[2];                   /* allreduce begins and ends recorded */
    int untimed;                     /* allreduces past MAX_COMM */
};

std::vector<step_events> g_steps; /* the timed steps, then one for a captured graph */
int g_slot = -1;                  /* the timed step being marked; -1: none */
bool g_graph = false;             /* the last slot holds a capture's marks */

void destroy_all()
{
    for (step_events &s : g_steps) {
        for (cudaEvent_t e : s.mark)
            DPT_CUDA_CHECK(cudaEventDestroy(e));
        for (auto &c : s.comm)
            for (cudaEvent_t e : c)
                DPT_CUDA_CHECK(cudaEventDestroy(e));
    }
    g_steps.clear();
    g_slot = -1;
    g_graph = false;
}

/* Outside a capture a plain record; in one, an external record node (cudaEventRecordExternal),
 * which the graph records, with its time, at every replay: a plain record there would only be
 * the capture's internal dependency, with no time to read. */
void record(cudaEvent_t e, cudaStream_t stream)
{
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    DPT_CUDA_CHECK(cudaStreamIsCapturing(stream, &st));
    if (st == cudaStreamCaptureStatusActive)
        DPT_CUDA_CHECK(cudaEventRecordWithFlags(e, stream, cudaEventRecordExternal));
    else
        DPT_CUDA_CHECK(cudaEventRecord(e, stream));
}

float elapsed(cudaEvent_t a, cudaEvent_t b)
{
    float ms = 0.0f;
    DPT_CUDA_CHECK(cudaEventSynchronize(b));
    DPT_CUDA_CHECK(cudaEventSynchronize(a));
    DPT_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

/* One step's times into the sums of out: compute, the allreduces, and the part of each allreduce
 * inside [step, backward end] (the allreduces of one stream run one after another, so their sum
 * is the time the stream was busy). */
void add_step(const step_events &s, dpt_device_times *out)
{
    double fb = elapsed(s.mark[DPT_MARK_STEP], s.mark[DPT_MARK_BACKWARD_END]);
    double opt = elapsed(s.mark[DPT_MARK_OPTIM], s.mark[DPT_MARK_OPTIM_END]);
    out->fwd_bwd_ms += fb;
    out->optim_ms += opt;
    out->compute_ms += fb + opt;
    int n = s.n_comm[0] < s.n_comm[1] ? s.n_comm[0] : s.n_comm[1];
    for (int k = 0; k < n; k++) {
        double a = elapsed(s.mark[DPT_MARK_STEP], s.comm[k][0]);
        double b = elapsed(s.mark[DPT_MARK_STEP], s.comm[k][1]);
        double lo = a > 0.0 ? a : 0.0, hi = b < fb ? b : fb;
        out->comm_ms += b - a;
        out->overlapped_ms += hi > lo ? hi - lo : 0.0;
    }
    out->comm = out->comm || n > 0;
    out->comm_untimed = s.untimed > out->comm_untimed ? s.untimed : out->comm_untimed;
    out->steps++;
}

} // namespace

void dpt_cuda_timing_arm(int steps)
{
    destroy_all();
    if (steps <= 0)
        return;
    g_steps.resize((size_t)steps + 1);
    for (step_events &s : g_steps) {
        memset(&s, 0, sizeof s);
        for (cudaEvent_t &e : s.mark)
            DPT_CUDA_CHECK(cudaEventCreate(&e));
        for (auto &c : s.comm)
            for (cudaEvent_t &e : c)
                DPT_CUDA_CHECK(cudaEventCreate(&e));
    }
}

void dpt_cuda_timing_slot(int slot)
{
    g_slot = slot >= 0 && (size_t)slot + 1 < g_steps.size() ? slot : -1;
}

void dpt_cuda_mark(dpt_mark_kind kind, void *stream)
{
    if (g_steps.empty())
        return;
    cudaStream_t s = (cudaStream_t)stream;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    DPT_CUDA_CHECK(cudaStreamIsCapturing(s, &st));
    bool capturing = st == cudaStreamCaptureStatusActive;
    if (!capturing && g_slot < 0)
        return;
    step_events &e = capturing ? g_steps.back() : g_steps[(size_t)g_slot];
    if (capturing && kind == DPT_MARK_STEP) { /* a new capture replaces the one before */
        e.seen = 0;
        e.n_comm[0] = e.n_comm[1] = e.untimed = 0;
        g_graph = true;
    }
    if (kind < DPT_MARK_COMM) {
        record(e.mark[kind], s);
        e.seen |= 1u << kind;
        return;
    }
    int end = kind == DPT_MARK_COMM_END, k = e.n_comm[end];
    if (k < MAX_COMM) {
        record(e.comm[k][end], s);
        e.n_comm[end]++;
    } else if (end) { /* untimed, and said so (comm.bucket_mb far below the NCCL floor) */
        e.untimed++;
    }
}

void dpt_cuda_timing_read(dpt_device_times *out)
{
    memset(out, 0, sizeof *out);
    const unsigned all = (1u << N_COMPUTE) - 1;
    if (g_graph && !g_steps.empty() && g_steps.back().seen == all) {
        add_step(g_steps.back(), out); /* the events of the last replay */
        out->graph = 1;
    } else {
        for (size_t i = 0; i + 1 < g_steps.size(); i++)
            if (g_steps[i].seen == all)
                add_step(g_steps[i], out);
    }
    if (out->steps > 0) {
        double n = out->steps;
        out->compute_ms /= n;
        out->fwd_bwd_ms /= n;
        out->optim_ms /= n;
        out->comm_ms /= n;
        out->overlapped_ms /= n;
    }
    out->exposed_ms = out->comm_ms - out->overlapped_ms;
}
