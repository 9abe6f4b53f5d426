/* Stream capture and CUDA Graphs, emulated with CUDA's rules so that a trainer step captured and
 * replayed in CI behaves as on a GPU: work queued on a capturing stream does not run but is
 * recorded; a stream joins a capture by waiting on an event recorded in it and must be joined
 * back before the capture ends; synchronizing a capturing stream, querying an event recorded in a
 * capture, and (by capture mode) the potentially unsafe calls (allocation, frees, blocking copies,
 * device synchronization) are refused and invalidate the capture; a launched graph runs the
 * captured work in capture order on the launch stream (an order its dependencies allow); an
 * external event record (cudaEventRecordExternal) is a node that records its event, with its
 * time, at each launch. */
#include <stdint.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cuda_emu_internal.h"

namespace dpt_emu {

namespace {

/* How far each stream of a capture has waited into each stream's captured work: knows[s] is the
 * capture position (1-based index into work) through which s is ordered after s's work. */
typedef std::map<const void *, uint64_t> horizon;

/* One node of a capture: its work, and the event an external record node records (else null). */
struct node {
    std::function<void()> work;
    const void *event;
};

struct capture_seq {
    const void *origin;
    cudaStreamCaptureMode mode;
    std::thread::id thread;
    bool invalidated = false;
    const char *why = nullptr;             /* the call that invalidated it */
    std::vector<node> work;
    std::map<const void *, uint64_t> last; /* per stream: position of its last captured work */
    std::map<const void *, horizon> knows; /* per stream: what it waited for */
};

struct captured_event {
    std::shared_ptr<capture_seq> seq;
    const void *stream;
    horizon snapshot; /* the recording stream's horizon, its own position included */
};

std::mutex g_glock; /* taken after stream_emu's queue lock, never before it */
std::map<const void *, std::shared_ptr<capture_seq>> g_capturing; /* by stream */
std::map<const void *, captured_event> g_events;                  /* by event token */

void merge(horizon &into, const horizon &from)
{
    for (auto &kv : from)
        if (kv.second > into[kv.first])
            into[kv.first] = kv.second;
}

std::shared_ptr<capture_seq> seq_of(const void *s)
{
    auto it = g_capturing.find(s);
    return it == g_capturing.end() ? nullptr : it->second;
}

void invalidate(const std::shared_ptr<capture_seq> &c, const char *why)
{
    if (!c->invalidated) {
        c->invalidated = true;
        c->why = why;
    }
}

} // namespace

/* Appends a node to the capture stream s is in (false when none), ordered after s's work. */
static bool take_node(cudaStream_t stream, std::function<void()> &work, const void *event)
{
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    if (!c)
        return false;
    c->work.push_back(node{std::move(work), event});
    c->last[(const void *)stream] = c->work.size();
    c->knows[(const void *)stream][(const void *)stream] = c->work.size();
    if (event)
        g_events.erase(event); /* last recorded by a node, not as a capture's internal event */
    return true;
}

bool capture_take(cudaStream_t stream, std::function<void()> &work)
{
    return take_node(stream, work, nullptr);
}

bool capture_take_record(cudaStream_t stream, cudaEvent_t event, std::function<void()> work)
{
    return take_node(stream, work, (const void *)event);
}

bool capture_refuse_sync(cudaStream_t stream, const char *who)
{
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    if (!c)
        return false;
    report(who, "stream %p is capturing: a synchronization cannot be captured "
           "(cudaErrorStreamCaptureUnsupported; the capture is invalidated)", (void *)stream);
    invalidate(c, who);
    return true;
}

bool capture_refuse_unsafe(const char *who)
{
    std::lock_guard<std::mutex> g(g_glock);
    const std::thread::id me = std::this_thread::get_id();
    bool refused = false;
    for (auto &kv : g_capturing) {
        const auto &c = kv.second;
        bool prohibits = c->mode == cudaStreamCaptureModeGlobal ||
                         (c->mode == cudaStreamCaptureModeThreadLocal && c->thread == me);
        if (prohibits && !c->invalidated) {
            report(who, "potentially unsafe during the capture on stream %p (mode %d): "
                   "cudaErrorStreamCaptureUnsupported, the capture is invalidated",
                   (void *)c->origin, (int)c->mode);
            invalidate(c, who);
        }
        refused = refused || prohibits;
    }
    return refused;
}

bool capture_refuse_pageable(cudaStream_t stream, bool pageable, const char *who)
{
    if (!pageable)
        return false;
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    if (!c)
        return false;
    report(who, "a copy to or from pageable host memory on capturing stream %p cannot be "
           "captured (cudaErrorStreamCaptureUnsupported; the capture is invalidated)",
           (void *)stream);
    invalidate(c, who);
    return true;
}

bool capture_record_event(cudaEvent_t event, cudaStream_t stream)
{
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    if (!c) {
        g_events.erase((const void *)event); /* recorded outside any capture again */
        return false;
    }
    g_events[(const void *)event] = captured_event{c, (const void *)stream,
                                                   c->knows[(const void *)stream]};
    return true;
}

bool capture_wait_event(cudaStream_t stream, cudaEvent_t event, cudaError_t *err)
{
    std::lock_guard<std::mutex> g(g_glock);
    const void *s = (const void *)stream;
    auto mine = seq_of(s);
    auto ev = g_events.find((const void *)event);
    *err = cudaSuccess;
    if (ev == g_events.end()) {
        if (!mine)
            return false; /* an ordinary wait */
        report("cudaStreamWaitEvent", "capturing stream %p waits on an event recorded outside "
               "the capture (cudaErrorStreamCaptureIsolation)", (void *)stream);
        invalidate(mine, "cudaStreamWaitEvent");
        *err = cudaErrorStreamCaptureIsolation;
        return true;
    }
    auto c = ev->second.seq;
    if (mine && mine != c) {
        report("cudaStreamWaitEvent", "stream %p waits on an event of another capture "
               "(cudaErrorStreamCaptureMerge)", (void *)stream);
        invalidate(mine, "cudaStreamWaitEvent");
        *err = cudaErrorStreamCaptureMerge;
        return true;
    }
    if (!mine && g_capturing.count(c->origin) == 0) {
        *err = cudaErrorStreamCaptureInvalidated; /* that capture has ended */
        return true;
    }
    if (!mine) /* a fork: the waiting stream joins the capture */
        g_capturing[s] = c;
    merge(c->knows[s], ev->second.snapshot);
    return true;
}

void capture_event_destroyed(cudaEvent_t event)
{
    std::lock_guard<std::mutex> g(g_glock);
    g_events.erase((const void *)event); /* a new event may get the same token */
}

bool capture_event_captured(cudaEvent_t event, const char *who)
{
    std::lock_guard<std::mutex> g(g_glock);
    auto ev = g_events.find((const void *)event);
    if (ev == g_events.end())
        return false;
    report(who, "event %p was last recorded in a stream capture: it has no completion to wait "
           "for or query (cudaErrorCapturedEvent)", (void *)event);
    invalidate(ev->second.seq, who);
    return true;
}

} // namespace dpt_emu

using namespace dpt_emu;

struct CUgraph_st {
    std::vector<node> work;
};
struct CUgraphExec_st {
    std::vector<node> work;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode)
{
    if (!stream_valid(stream))
        return cudaErrorInvalidResourceHandle;
    if (stream == 0 || (unsigned)mode > (unsigned)cudaStreamCaptureModeRelaxed) {
        report("cudaStreamBeginCapture", "%s", stream == 0 ? "the legacy default stream cannot "
               "capture" : "mode is not a cudaStreamCaptureMode");
        return stream == 0 ? cudaErrorStreamCaptureUnsupported : cudaErrorInvalidValue;
    }
    std::lock_guard<std::mutex> g(g_glock);
    if (g_capturing.count((const void *)stream)) {
        report("cudaStreamBeginCapture", "stream %p is already capturing", (void *)stream);
        return cudaErrorIllegalState;
    }
    auto c = std::make_shared<capture_seq>();
    c->origin = (const void *)stream;
    c->mode = mode;
    c->thread = std::this_thread::get_id();
    g_capturing[(const void *)stream] = c;
    return cudaSuccess;
}

/* Ends the capture on every stream of it; the graph only when it is valid and every stream that
 * joined was joined back into the origin. */
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    if (!graph)
        return cudaErrorInvalidValue;
    *graph = nullptr;
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    if (!c || c->origin != (const void *)stream) {
        report("cudaStreamEndCapture", "stream %p did not begin a capture", (void *)stream);
        return c ? cudaErrorStreamCaptureUnmatched : cudaErrorIllegalState;
    }
    if (c->mode != cudaStreamCaptureModeRelaxed && c->thread != std::this_thread::get_id())
        return cudaErrorStreamCaptureWrongThread;
    const void *unjoined = nullptr;
    horizon &origin = c->knows[c->origin];
    for (auto &kv : c->last)
        if (kv.first != c->origin && origin[kv.first] < kv.second)
            unjoined = kv.first;
    for (auto it = g_capturing.begin(); it != g_capturing.end();)
        it = it->second == c ? g_capturing.erase(it) : std::next(it);
    if (c->invalidated)
        return cudaErrorStreamCaptureInvalidated;
    if (unjoined) {
        report("cudaStreamEndCapture", "stream %p joined the capture and was not joined back "
               "into stream %p (cudaErrorStreamCaptureUnjoined)", unjoined, (void *)stream);
        return cudaErrorStreamCaptureUnjoined;
    }
    *graph = new CUgraph_st{std::move(c->work)};
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus *status)
{
    if (!status)
        return cudaErrorInvalidValue;
    if (!stream_valid(stream))
        return cudaErrorInvalidResourceHandle;
    std::lock_guard<std::mutex> g(g_glock);
    auto c = seq_of((const void *)stream);
    *status = !c ? cudaStreamCaptureStatusNone
                 : c->invalidated ? cudaStreamCaptureStatusInvalidated
                                  : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    if (!exec || !graph || flags != 0)
        return cudaErrorInvalidValue;
    *exec = new CUgraphExec_st{graph->work};
    return cudaSuccess;
}

/* The captured work in capture order on the launch stream, as queued work (run when the stream
 * runs, DPT_EMU_ASYNC), each time it is launched. */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    if (!exec)
        return cudaErrorInvalidValue;
    if (!stream_valid(stream))
        return cudaErrorInvalidResourceHandle;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    (void)cudaStreamIsCapturing(stream, &st);
    if (st != cudaStreamCaptureStatusNone) {
        report("cudaGraphLaunch", "launching into capturing stream %p is not emulated",
               (void *)stream);
        return cudaErrorStreamCaptureUnsupported;
    }
    for (const auto &w : exec->work) {
        uint64_t id = enqueue(stream, w.work);
        if (w.event) /* pending from now, complete when the stream runs the node */
            event_launched(w.event, stream, id);
    }
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    if (!exec)
        return cudaErrorInvalidValue;
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    if (!graph)
        return cudaErrorInvalidValue;
    delete graph;
    return cudaSuccess;
}
