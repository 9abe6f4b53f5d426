/* Private to tests/cuda_emu: what the cuBLAS and NCCL emulations ask of the runtime emulation
 * (the allocation table, the stream table, the current device) and the one way every part
 * reports a misuse on stderr. */
#ifndef DPT_CUDA_EMU_INTERNAL_H
#define DPT_CUDA_EMU_INTERNAL_H

#include <stddef.h>

#include "cuda_runtime.h"

namespace dpt_emu {

enum mem_kind { MEM_NONE = 0, MEM_DEVICE = 1, MEM_PINNED = 2 };

/* One emulated allocation: [base, base + size). */
struct region {
    const char *base;
    size_t size;
    mem_kind kind;
    int device; /* physical (physical_device) */
};

/* The allocation holding p (any kind), or false. */
bool find_region(const void *p, region *out);
/* True when [p, p + bytes) lies inside one allocation whose kind is in kinds (a mask of
 * mem_kind); otherwise prints "who: what [p, p+bytes) ..." with the nearest allocation and
 * returns false. bytes == 0 is always inside. */
bool check_range(const char *who, const char *what, const void *p, size_t bytes, int kinds);

/* Streams: 0 (the default stream) or created and not yet destroyed. */
bool stream_valid(cudaStream_t s);

/* The calling thread's current device, and how many this process sees (DPT_EMU_DEVICES, then
 * CUDA_VISIBLE_DEVICES; 0 with an insufficient driver). */
int current_device();
int device_count();
/* The host's physical device behind this process's device `device`, -1 when not visible: what
 * two processes compare to tell whether they share a GPU. */
int physical_device(int device);
/* The driver's CUDA version (DPT_EMU_DRIVER_VERSION; default the runtime's). */
int driver_version();

/* Prints "[cuda_emu rank R] who: message" on stderr (rank when MPI is running). */
void report(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

} // namespace dpt_emu

#endif
