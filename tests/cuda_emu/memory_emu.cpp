/* Device memory the host cannot touch: each emulated GPU's allocations are carved from one
 * reserved arena (PROT_NONE), opened read-write only while the emulation executes queued work
 * (kernels, copies, memsets, collectives, GEMMs) or fills a fresh allocation, so a host
 * dereference of a device pointer faults, and the SIGSEGV handler installed here names the
 * allocation it hit. The protection is process-wide: while one thread runs device work, another
 * thread's host access to device memory passes (docs/gpu.md, "Memory"). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>

#include "cuda_emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define DPT_EMU_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define DPT_EMU_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define DPT_EMU_POISON(p, n) ((void)(p), (void)(n))
#define DPT_EMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace dpt_emu {

namespace {

const size_t ALIGN = 256; /* cudaMalloc's alignment */
const size_t GAP = 256;   /* after every allocation: AddressSanitizer's redzone */
const int MAX_DEVICES = 64;

struct arena {
    char *base = nullptr;
    size_t reserved = 0;
    std::map<size_t, size_t> free_list; /* offset -> length, coalesced */
};

std::mutex g_mlock; /* guards the arenas and the window */
arena g_arenas[MAX_DEVICES];
/* what the signal handler reads, without a lock */
std::atomic<char *> g_base[MAX_DEVICES];
std::atomic<size_t> g_reserved[MAX_DEVICES];
int g_depth = 0;     /* open work scopes */
bool g_open = false; /* the arenas are read-write */
struct sigaction g_previous;

size_t block_bytes(size_t size) { return (size + ALIGN - 1) / ALIGN * ALIGN + GAP; }

void protect_all(int prot)
{
    for (int d = 0; d < MAX_DEVICES; d++)
        if (g_arenas[d].base && mprotect(g_arenas[d].base, g_arenas[d].reserved, prot) != 0) {
            report("device memory", "mprotect of GPU %d's arena failed", d);
            _exit(70);
        }
}

/* The report for a fault inside an arena; false when the address is not in one. */
bool report_device_fault(const void *addr, void *uc)
{
    const char *a = (const char *)addr;
    int phys = -1;
    for (int d = 0; d < MAX_DEVICES && phys < 0; d++) {
        const char *b = g_base[d].load();
        if (b && a >= b && a < b + g_reserved[d].load())
            phys = d;
    }
    if (phys < 0)
        return false;
    const char *how = "access to";
#if defined(__x86_64__) && defined(REG_ERR)
    how = (((ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2) ? "write to" : "read of";
#else
    (void)uc;
#endif
    int gpu = phys; /* this process's number for it, when it sees it */
    for (int i = 0; i < device_count(); i++)
        if (physical_device(i) == phys)
            gpu = i;
    region r;
    char what[200];
    if (try_find_region(addr, &r) && r.kind == MEM_DEVICE)
        snprintf(what, sizeof what, "byte %zu of a %zu-byte %s on GPU %d",
                 (size_t)(a - r.base), r.size, r.label ? r.label : "cudaMalloc", gpu);
    else
        snprintf(what, sizeof what, "GPU %d, not inside a live allocation: freed, or past the end "
                 "of one", gpu);
    report("device memory", "host %s device memory at %p (%s) outside any emulated kernel or "
           "copy: copy it to the host with cudaMemcpy first", how, addr, what);
    return true;
}

void on_segv(int sig, siginfo_t *si, void *uc)
{
    if (report_device_fault(si->si_addr, uc))
        _exit(70);
    /* not ours: the previous handler, or the default action when the access repeats */
    if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
        g_previous.sa_sigaction(sig, si, uc);
    } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
        g_previous.sa_handler(sig);
    } else {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, nullptr);
    }
}

void install_handler()
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous);
}

/* The arena of physical device phys, reserved on first use: twice the capacity (alignment and
 * gaps), at least twice the default 16 GiB (tests change the capacity between calls), address
 * space only. */
arena *arena_of(int phys, size_t capacity)
{
    arena &ar = g_arenas[phys];
    if (ar.base)
        return &ar;
    const size_t least = (size_t)16 << 30;
    size_t reserve = 2 * (capacity > least ? capacity : least) + ((size_t)64 << 20);
    void *p = mmap(nullptr, reserve, g_open ? PROT_READ | PROT_WRITE : PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return nullptr;
    /* mprotect's cost grows with the pages it re-maps: 2 MiB pages make opening and closing a
     * device with hundreds of MiB resident cost microseconds, not milliseconds (docs/gpu.md) */
    (void)madvise(p, reserve, MADV_HUGEPAGE);
    static bool installed = false;
    if (!installed) {
        install_handler();
        installed = true;
    }
    ar.base = (char *)p;
    ar.reserved = reserve;
    ar.free_list[0] = reserve;
    g_reserved[phys].store(reserve);
    g_base[phys].store(ar.base);
    return &ar;
}

} // namespace

void work_begin()
{
    std::lock_guard<std::mutex> g(g_mlock);
    g_depth++;
}

void device_memory_open()
{
    std::lock_guard<std::mutex> g(g_mlock);
    if (!g_open) {
        protect_all(PROT_READ | PROT_WRITE);
        g_open = true;
    }
}

void work_end()
{
    std::lock_guard<std::mutex> g(g_mlock);
    if (--g_depth == 0 && g_open) {
        protect_all(PROT_NONE);
        g_open = false;
    }
}

void *arena_alloc(int phys, size_t size, size_t capacity)
{
    if (phys < 0 || phys >= MAX_DEVICES)
        return nullptr;
    std::lock_guard<std::mutex> g(g_mlock);
    arena *ar = arena_of(phys, capacity);
    if (!ar)
        return nullptr;
    const size_t need = block_bytes(size);
    for (auto it = ar->free_list.begin(); it != ar->free_list.end(); ++it) {
        if (it->second < need)
            continue;
        size_t off = it->first, len = it->second;
        ar->free_list.erase(it);
        if (len > need)
            ar->free_list[off + need] = len - need;
        char *p = ar->base + off;
        DPT_EMU_UNPOISON(p, size);
        DPT_EMU_POISON(p + size, need - size);
        return p;
    }
    return nullptr;
}

void arena_free(int phys, void *ptr, size_t size)
{
    std::lock_guard<std::mutex> g(g_mlock);
    arena &ar = g_arenas[phys];
    size_t off = (size_t)((char *)ptr - ar.base), len = block_bytes(size);
    DPT_EMU_POISON((char *)ptr, len); /* a use after free is an error too */
    /* give whole 2 MiB pages back (a smaller release would split a huge page) */
    const size_t page = (size_t)2 << 20;
    size_t lo = (off + page - 1) / page * page, hi = (off + len) / page * page;
    if (hi > lo)
        (void)madvise(ar.base + lo, hi - lo, MADV_DONTNEED);
    auto next = ar.free_list.lower_bound(off);
    if (next != ar.free_list.end() && next->first == off + len) { /* merge with the next */
        len += next->second;
        next = ar.free_list.erase(next);
    }
    if (next != ar.free_list.begin()) { /* merge with the previous */
        auto prev = std::prev(next);
        if (prev->first + prev->second == off) {
            prev->second += len;
            return;
        }
    }
    ar.free_list[off] = len;
}

} // namespace dpt_emu
