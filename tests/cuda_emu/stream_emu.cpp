/* Streams as a GPU runs them (DPT_EMU_ASYNC=SEED, SEED > 0): work queued on a stream runs only
 * when the host needs it (a synchronize, a blocking copy, a free, an event query), as late as
 * stream order and event waits allow, so an ordering bug (a missing event wait, a host read
 * before a synchronize, a buffer reused before its copy ran) reads stale or NaN data instead of
 * passing. Seeds other than 1 also run other streams' ready work early at points they choose
 * (maybe_divert), so two seeds see different orders CUDA allows. Unset or 0: every call runs
 * its work before returning (synchronous). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_emu_internal.h"

namespace dpt_emu {

namespace {

struct op {
    uint64_t id;
    std::function<void()> work; /* empty for a wait or a marker */
    const void *wait_stream;    /* a wait: runnable once wait_stream ran through wait_id */
    uint64_t wait_id;
    std::function<bool()> hung; /* an injected hang: not runnable while it returns true */
};

struct queue {
    std::deque<op> ops;
    uint64_t done = 0, last = 0; /* ids: the last run, the last queued */
    bool blocking = true;        /* synchronizes with the legacy default stream (0) */
};

std::recursive_mutex g_qlock;                /* guards the queues; held while work runs */
std::map<const void *, queue> g_queues;      /* by stream token; 0 is the legacy stream */
uint64_t g_next_id = 0;
uint64_t g_rng = 0;

uint64_t next_random()
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

bool ran_through(const void *s, uint64_t id)
{
    auto it = g_queues.find(s);
    return it == g_queues.end() || it->second.done >= id; /* a destroyed stream drained */
}

bool runnable(const op &o)
{
    return !(o.hung && o.hung()) && (o.wait_id == 0 || ran_through(o.wait_stream, o.wait_id));
}

void run_head(queue &q)
{
    op o = std::move(q.ops.front());
    q.ops.pop_front();
    if (o.work) { /* device memory is open while the device works, closed to host code */
        work_scope w;
        device_memory_open();
        o.work();
    }
    q.done = o.id;
}

/* Seed 1: never (every stream as late as it can: a reader queued without waiting for its writer
 * reads old data). Other seeds: now and then, at points the seed chooses, runs the ready head of
 * another stream first, as CUDA may (a writer that does not wait for an earlier reader
 * overwrites what the reader has yet to read). */
void maybe_divert(const void *target)
{
    if (async_seed() == 1 || next_random() % 4 != 0)
        return;
    std::vector<queue *> ready;
    for (auto &kv : g_queues)
        if (kv.first != target && !kv.second.ops.empty() && runnable(kv.second.ops.front()))
            ready.push_back(&kv.second);
    if (!ready.empty())
        run_head(*ready[next_random() % ready.size()]);
}

/* One unit of the work that stream s must do to run through id (following event waits to the
 * streams they name). False when there is none left, or when what is left can never run. */
bool step(const void *s, uint64_t id, bool *stuck)
{
    auto it = g_queues.find(s);
    if (it == g_queues.end() || it->second.done >= id || it->second.ops.empty())
        return false;
    queue &q = it->second;
    op &h = q.ops.front();
    if (h.hung && h.hung()) {
        *stuck = true;
        return false;
    }
    if (!runnable(h))
        return step(h.wait_stream, h.wait_id, stuck);
    maybe_divert(s); /* never q itself: its head stays h, and still runnable */
    run_head(q);
    return true;
}

} // namespace

unsigned long long async_seed()
{
    static long seed = -1;
    if (seed < 0) {
        const char *s = getenv("DPT_EMU_ASYNC");
        seed = s && *s ? strtol(s, NULL, 10) : 0;
        if (seed < 0)
            seed = 0;
        g_rng = (uint64_t)seed;
    }
    return (unsigned long long)seed;
}

void stream_created(cudaStream_t s, bool blocking)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    g_queues[(const void *)s].blocking = blocking;
}

/* The implicit waits of the legacy default stream: its work waits for every blocking stream's,
 * and a blocking stream's for the legacy stream's. Non-blocking streams wait for nothing. */
static void legacy_waits(const void *s, queue &q)
{
    auto push_wait = [&](const void *other, uint64_t through) {
        if (through && !ran_through(other, through))
            q.ops.push_back(op{++g_next_id, nullptr, other, through, nullptr});
    };
    if (s == nullptr) {
        for (auto &kv : g_queues)
            if (kv.first && kv.second.blocking)
                push_wait(kv.first, kv.second.last);
    } else if (q.blocking) {
        push_wait(nullptr, g_queues[nullptr].last);
    }
}

uint64_t enqueue(cudaStream_t stream, std::function<void()> work)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    if (capture_take(stream, work)) /* recorded into the stream's capture: nothing queued */
        return 0;
    const void *s = (const void *)stream;
    queue &q = g_queues[s];
    legacy_waits(s, q);
    q.ops.push_back(op{++g_next_id, std::move(work), nullptr, 0, nullptr});
    q.last = g_next_id;
    if (async_seed() == 0) { /* synchronous: run it now, unless it waits behind a hang */
        work_scope w;
        bool stuck = false;
        while (step(s, q.last, &stuck)) {
        }
    }
    return q.last;
}

void enqueue_wait(cudaStream_t stream, cudaStream_t on, uint64_t through)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    queue &q = g_queues[(const void *)stream];
    if (through && !ran_through((const void *)on, through)) {
        q.ops.push_back(op{++g_next_id, nullptr, (const void *)on, through, nullptr});
        q.last = g_next_id;
    }
}

void enqueue_hang(cudaStream_t stream, std::function<bool()> hung)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    queue &q = g_queues[(const void *)stream];
    q.ops.push_back(op{++g_next_id, nullptr, nullptr, 0, std::move(hung)});
    q.last = g_next_id;
}

bool run_through(cudaStream_t stream, uint64_t id)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    bool stuck = false;
    {
        work_scope w; /* consecutive work: one opening of device memory */
        while (step((const void *)stream, id, &stuck)) {
        }
    }
    if (stuck) { /* a real GPU would wait here forever: say so and end instead */
        report("streams", "the host waits for stream %p, which waits for work that never "
               "completes (an injected hang, DPT_EMU_NCCL_HANG_AFTER); a GPU would hang here",
               (void *)stream);
        _Exit(70);
    }
    return true;
}

bool step_toward(cudaStream_t stream, uint64_t id)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    bool stuck = false;
    (void)step((const void *)stream, id, &stuck);
    return ran_through((const void *)stream, id);
}

bool is_done(cudaStream_t stream, uint64_t id)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    return ran_through((const void *)stream, id);
}

bool synchronize_stream(cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    auto it = g_queues.find((const void *)stream);
    return it == g_queues.end() || run_through(stream, it->second.last);
}

bool synchronize_all()
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    work_scope w;
    bool ok = true;
    for (auto &kv : g_queues)
        ok = run_through((cudaStream_t)(void *)kv.first, kv.second.last) && ok;
    return ok;
}

void stream_destroyed(cudaStream_t stream)
{
    std::lock_guard<std::recursive_mutex> g(g_qlock);
    (void)synchronize_stream(stream); /* CUDA finishes the work queued before the destroy */
    g_queues.erase((const void *)stream);
}

} // namespace dpt_emu
