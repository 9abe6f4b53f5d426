/* The blocks of the kernel emulation: a block's threads run as fibers (ucontext) on the host
 * thread that runs the launch, each to its next __syncthreads(), in an order DPT_EMU_SHUFFLE's
 * seed shuffles; DPT_SHARED arrays record every access, so a race (two threads touching one word
 * in one barrier interval, one writing), an index out of bounds or a barrier some threads miss
 * stop the process with a report, as compute-sanitizer's racecheck and synccheck would.
 * A fiber is made once (makecontext) and then switched with the compiler's
 * __builtin_setjmp/__builtin_longjmp: no system call (swapcontext sets the signal mask) and no
 * sanitizer interceptor (ASan's longjmp one clears the shadow of the stack left behind), since
 * a block reduction switches threads x barriers times. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <vector>

#include "cuda_emu_internal.h"
#include "cuda_emu_kernel.h"

#if defined(__SANITIZE_ADDRESS__)
#define DPT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DPT_EMU_ASAN 1
#endif
#endif
#ifdef DPT_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace dpt_emu {

/* One DPT_SHARED array of the running block, and the last accesses to each of its words. */
struct shared_slot {
    const char *name, *file;
    int line;
    size_t elems;
    std::vector<max_align_t> data;
    struct word {
        uint64_t write_epoch, read_epoch; /* barrier intervals, from 1; 0: none yet */
        unsigned writer, reader, reader2; /* linear thread ids; reader2: a second reader */
    };
    std::vector<word> shadow;
};

namespace {

const unsigned NO_THREAD = ~0u;
/* Kernels run whole on a fiber's stack (every launch does, barrier or not), sanitizers
 * included; pages are touched only as used. */
const size_t STACK_BYTES = (size_t)1 << 20, GUARD_BYTES = 4096;

typedef void *jump_buf[5]; /* what __builtin_setjmp saves */

struct fiber {
    jump_buf env;         /* where it resumes */
    char *stack;          /* GUARD_BYTES of PROT_NONE below STACK_BYTES of stack */
    void *fake = nullptr; /* ASan's fake stack while switched away */
    unsigned thread = 0;  /* the thread it runs */
    bool finished = false; /* its worker round is over: idle, resumed for the next one */
    bool started = false;
};

struct block_state {
    const grid_launch *g;
    unsigned threads;    /* in the block */
    unsigned next_start; /* threads started so far, in start order */
    scramble start_order;
    uint64_t epoch;          /* the barrier interval, from 1 */
    std::vector<fiber *> parked; /* at the barrier of this interval */
    const char *site_file;   /* that barrier, and the first thread to reach it */
    int site_line;
    unsigned site_thread;
    unsigned exited, first_exited;
    fiber *current;
    unsigned current_thread;
    std::vector<shared_slot> slots;
    block_state(const grid_launch *gl, unsigned n, unsigned long long seed)
        : g(gl), threads(n), next_start(0), start_order(n, seed * 0x9E3779B97F4A7C15ull),
          epoch(1), site_file(nullptr), site_line(0), site_thread(NO_THREAD), exited(0),
          first_exited(NO_THREAD), current(nullptr), current_thread(0)
    {
    }
};

/* Per host thread: the block it runs, the scheduler's context and the idle fibers. */
thread_local block_state *t_block = nullptr;
struct fiber_pool {
    std::vector<fiber *> idle;
    ~fiber_pool()
    {
        if (t_block) /* exiting from inside a kernel: this may be the stack we run on */
            return;
        for (fiber *f : idle) {
            munmap(f->stack, GUARD_BYTES + STACK_BYTES);
            delete f;
        }
    }
};
thread_local jump_buf t_sched;
thread_local void *t_sched_fake = nullptr;
thread_local const void *t_host_bottom = nullptr;
thread_local size_t t_host_size = 0;
thread_local fiber_pool t_pool;

void asan_start(void **fake, const void *bottom, size_t size)
{
#ifdef DPT_EMU_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}
void asan_finish(void *fake, const void **bottom, size_t *size)
{
#ifdef DPT_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, bottom, size);
#else
    (void)fake, (void)bottom, (void)size;
#endif
}

[[noreturn]] void die()
{
    fflush(stdout);
    abort();
}

uint3 thread_xyz(unsigned t)
{
    const dim3 b = t_block->g->block;
    return uint3{t % b.x, t / b.x % b.y, t / (b.x * b.y)};
}

/* "kernel K block (x,y,z)" for reports */
struct where {
    char text[320];
    where()
    {
        snprintf(text, sizeof text, "kernel %s block (%u,%u,%u)", t_block->g->kernel,
                 blockIdx.x, blockIdx.y, blockIdx.z);
    }
};
struct thread_name {
    char text[48];
    explicit thread_name(unsigned t)
    {
        uint3 u = thread_xyz(t);
        snprintf(text, sizeof text, "(%u,%u,%u)", u.x, u.y, u.z);
    }
};

/* __builtin_longjmp may not be called from the function that calls __builtin_setjmp. Called
 * through a volatile pointer and not instrumented, so ASan does not clear the shadow of the
 * stack left behind before every jump, as it does before a call that does not return. */
__attribute__((noinline, no_sanitize_address)) void jump_to(jump_buf *to)
{
    __builtin_longjmp(*to, 1);
}
void (*volatile jump)(jump_buf *) = jump_to;

void switch_to_scheduler(fiber *f)
{
    asan_start(&f->fake, t_host_bottom, t_host_size);
    if (__builtin_setjmp(f->env) == 0)
        jump(&t_sched);
    asan_finish(f->fake, nullptr, nullptr);
}

void fiber_main();

void switch_to_fiber(fiber *f)
{
    block_state *b = t_block;
    b->current = f;
    b->current_thread = f->thread;
    threadIdx = thread_xyz(f->thread);
    asan_start(&t_sched_fake, f->stack + GUARD_BYTES, STACK_BYTES);
    if (__builtin_setjmp(t_sched) == 0) {
        if (f->started) {
            jump(&f->env);
        } else { /* its first switch: onto its own stack, once */
            static thread_local ucontext_t entry;
            f->started = true;
            getcontext(&entry);
            entry.uc_stack.ss_sp = f->stack + GUARD_BYTES;
            entry.uc_stack.ss_size = STACK_BYTES;
            entry.uc_link = nullptr;
            makecontext(&entry, fiber_main, 0);
            setcontext(&entry);
        }
    }
    asan_finish(t_sched_fake, nullptr, nullptr);
    f = t_block->current;
    if (f->finished)
        t_pool.idle.push_back(f);
}

void thread_exited(block_state *b, unsigned t)
{
    if (b->exited++ == 0)
        b->first_exited = t;
}

/* A worker round: the fiber starts threads in start order until one of them waits at a
 * barrier (the fiber stays with it; the scheduler starts another) or every thread has started.
 * Without barriers one round so runs the whole block. */
void worker_round(fiber *f)
{
    block_state *b = t_block;
    while (b->next_start < b->threads) {
        unsigned t = (unsigned)b->start_order(b->next_start++);
        f->thread = t;
        b->current_thread = t;
        threadIdx = thread_xyz(t);
        b->g->thread(b->g->arg);
        thread_exited(b, t);
    }
}

/* A fiber's life: rounds, each ended by going idle in the pool until the next block. */
void fiber_main()
{
    asan_finish(nullptr, &t_host_bottom, &t_host_size);
    fiber *f = t_block->current;
    for (;;) {
        worker_round(f);
        f->finished = true;
        switch_to_scheduler(f);
    }
}

fiber *fiber_new()
{
    fiber *f;
    if (!t_pool.idle.empty()) {
        f = t_pool.idle.back();
        t_pool.idle.pop_back();
    } else {
        f = new fiber;
        void *m = mmap(nullptr, GUARD_BYTES + STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED || mprotect(m, GUARD_BYTES, PROT_NONE) != 0) {
            report("launch", "no memory for a fiber stack (%zu bytes)", STACK_BYTES);
            die();
        }
        f->stack = (char *)m;
    }
    f->finished = false;
    return f;
}

uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The threads waiting at a barrier resume in an order the seed and the interval choose
 * (Fisher-Yates); with seed 0 in the order they arrived. */
void shuffle(std::vector<fiber *> &v, unsigned long long seed, uint64_t epoch)
{
    if (seed == 0)
        return;
    uint64_t r = mix(seed ^ (epoch * 0xD1B54A32D192ED03ull));
    for (size_t i = v.size(); i > 1; i--) {
        r = mix(r + 0x9E3779B97F4A7C15ull);
        size_t j = (size_t)(r % i);
        fiber *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

void check_no_exit_while_waiting(block_state *b)
{
    if (b->exited == 0)
        return;
    where w;
    thread_name waits(b->site_thread), left(b->first_exited);
    report("synccheck", "%s: barrier divergence: thread %s waits at __syncthreads() (%s:%d) "
           "but thread %s exited without reaching it (%u of %u threads exited)",
           w.text, waits.text, b->site_file, b->site_line, left.text, b->exited, b->threads);
    die();
}

void run_block(block_state *b)
{
    while (b->next_start < b->threads)
        switch_to_fiber(fiber_new()); /* returns when its thread waits at a barrier, or done */
    while (!b->parked.empty()) {
        check_no_exit_while_waiting(b);
        std::vector<fiber *> resume;
        resume.swap(b->parked);
        b->site_file = nullptr;
        b->site_thread = NO_THREAD;
        shuffle(resume, b->g->seed, b->epoch);
        b->epoch++;
        for (fiber *f : resume)
            switch_to_fiber(f);
    }
}

[[noreturn]] void race(const shared_slot *s, size_t i, const char *kind, unsigned first,
                       const char *first_did, unsigned second, const char *second_did)
{
    where w;
    thread_name a(first), b(second);
    report("racecheck", "%s: %s hazard on shared %s[%zu] (declared at %s:%d): thread %s %s it "
           "and thread %s %s it in one barrier interval, with no __syncthreads() between",
           w.text, kind, s->name, i, s->file, s->line, a.text, first_did, b.text, second_did);
    die();
}

} // namespace

void run_grid(const grid_launch &g)
{
    const unsigned long long gx = g.grid.x, gy = g.grid.y;
    const unsigned long long blocks = gx * gy * g.grid.z;
    const unsigned threads = g.block.x * g.block.y * g.block.z;
    const scramble block_order(blocks, g.seed);
    gridDim = g.grid;
    blockDim = g.block;
    for (unsigned long long bi = 0; bi < blocks; bi++) {
        unsigned long long bl = block_order(bi);
        blockIdx = uint3{(unsigned)(bl % gx), (unsigned)(bl / gx % gy), (unsigned)(bl / (gx * gy))};
        block_state b(&g, threads, g.seed);
        t_block = &b;
        run_block(&b);
        t_block = nullptr;
    }
}

void syncthreads(const char *file, int line)
{
    block_state *b = t_block;
    if (!b) {
        report("synccheck", "__syncthreads() (%s:%d) outside a kernel", file, line);
        die();
    }
    if (b->parked.empty()) {
        b->site_file = file;
        b->site_line = line;
        b->site_thread = b->current_thread;
    } else if (line != b->site_line || (file != b->site_file && strcmp(file, b->site_file))) {
        where w;
        thread_name first(b->site_thread), here(b->current_thread);
        report("synccheck", "%s: barrier divergence: thread %s waits at __syncthreads() (%s:%d) "
               "and thread %s at another one (%s:%d)",
               w.text, first.text, b->site_file, b->site_line, here.text, file, line);
        die();
    }
    fiber *f = b->current;
    b->parked.push_back(f);
    switch_to_scheduler(f);
}

shared_slot *shared_attach(const char *name, const char *file, int line, size_t elem_bytes,
                           size_t elems)
{
    block_state *b = t_block;
    if (!b) {
        report("racecheck", "DPT_SHARED %s (%s:%d) outside a kernel", name, file, line);
        die();
    }
    for (shared_slot &s : b->slots)
        if (s.line == line && (s.name == name || strcmp(s.name, name) == 0) &&
            (s.file == file || strcmp(s.file, file) == 0))
            return &s;
    /* a fresh block's shared memory holds garbage on a GPU: here 0xff bytes (NaN floats) */
    b->slots.reserve(8); /* slots are handed out by address: no reallocation below 8 arrays */
    if (b->slots.size() == 8) {
        report("racecheck", "%s (%s:%d): more than 8 DPT_SHARED arrays in one kernel", name,
               file, line);
        die();
    }
    b->slots.emplace_back();
    shared_slot &s = b->slots.back();
    s.name = name;
    s.file = file;
    s.line = line;
    s.elems = elems;
    s.data.resize((elem_bytes * elems + sizeof(max_align_t) - 1) / sizeof(max_align_t));
    memset(s.data.data(), 0xff, s.data.size() * sizeof(max_align_t));
    s.shadow.assign(elems, shared_slot::word{0, 0, NO_THREAD, NO_THREAD, NO_THREAD});
    return &s;
}

void *shared_access(shared_slot *s, size_t i, size_t elem_bytes, bool write)
{
    block_state *b = t_block;
    const unsigned t = b->current_thread;
    if (i >= s->elems) {
        where w;
        thread_name me(t);
        report("racecheck", "%s: thread %s %s shared %s[%lld], out of bounds [0, %zu) "
               "(declared at %s:%d)", w.text, me.text, write ? "writes" : "reads", s->name,
               (long long)i, s->elems, s->file, s->line);
        die();
    }
    shared_slot::word &sw = s->shadow[i];
    const uint64_t e = b->epoch;
    if (write) {
        if (sw.write_epoch == e && sw.writer != t)
            race(s, i, "write-after-write", sw.writer, "wrote", t, "wrote");
        if (sw.read_epoch == e) {
            unsigned other = sw.reader != t ? sw.reader : sw.reader2;
            if (other != NO_THREAD)
                race(s, i, "write-after-read", other, "read", t, "wrote");
        }
        sw.write_epoch = e;
        sw.writer = t;
    } else {
        if (sw.write_epoch == e && sw.writer != t)
            race(s, i, "read-after-write", sw.writer, "wrote", t, "read");
        if (sw.read_epoch != e) {
            sw.read_epoch = e;
            sw.reader = t;
            sw.reader2 = NO_THREAD;
        } else if (sw.reader != t && sw.reader2 == NO_THREAD) {
            sw.reader2 = t;
        }
    }
    return (char *)s->data.data() + i * elem_bytes;
}

} // namespace dpt_emu
