/* Private to mpi/reducer*.c: what one implementation of the reducer (MPI in reducer_mpi.c, NCCL
 * in reducer_nccl.c) gives reducer.c, which plans, times and describes for both. A function
 * table, so that the caller's step reads the same whichever path sums the gradients. */
#ifndef DPT_REDUCER_IMPL_H
#define DPT_REDUCER_IMPL_H

#include "reducer.h"

typedef struct {
    const char *name; /* "MPI", "NCCL" */
    /* A new plan: bucket k is floats [off[k], off[k] + len[k]), bucket 0 ends with n_stats
     * statistics; overlap: the buckets start during backward. NULL: nothing to prepare. */
    void (*plan)(void *impl, const size_t *off, const size_t *len, int n_buckets,
                 size_t n_stats, int overlap);
    /* The floats a bucket closes at on this path, given comm.bucket_mb's (cap) and the whole
     * buffer's (n). NULL: cap. */
    double (*bucket_cap)(double cap, double n);
    /* Bucket k (floats [off, off + len) of buf) is final: its sum starts. */
    void (*start)(void *impl, float *buf, int k, size_t off, size_t len);
    void (*progress)(void *impl); /* NULL: nothing to poll */
    void (*wait)(void *impl, float *buf); /* until every started bucket is summed into buf */
    /* Orders the device work queued next after every started bucket's sum, without a host
     * wait (dpt_reducer_queue); drain waits for them on the host. NULL: wait does both. */
    void (*queue)(void *impl, float *buf);
    void (*drain)(void *impl);
    /* The step was replayed from a CUDA Graph (its allreduces with it): drain then polls an event
     * recorded now, behind the replay. NULL: nothing to do. */
    void (*replayed)(void *impl);
    void (*barrier)(void *impl);
    /* Overlapped buckets: seconds from the first start to the last end, as the
     * implementation saw them; NULL: as seen from the caller (until wait returns). */
    double (*busy_s)(void *impl);
    int (*polled_by_thread)(const void *impl); /* NULL: never */
    /* Where the index of the first bucket not yet summed can be read during wait (for the
     * watchdog's report); NULL: not known. */
    const volatile int *(*pending_bucket)(void *impl);
    /* When bucket k's sum was complete this step (dpt_now seconds), for run.trace; NULL or 0:
     * not known apart from the others (then: when wait returned). */
    double (*bucket_end_s)(void *impl, int k);
    void (*free)(void *impl);
} dpt_reducer_ops;

/* The MPI path (host buffers, or device buffers through a host copy). */
void *dpt_reducer_mpi_create(dpt_comm *c, const dpt_reducer_settings *s,
                             const dpt_reducer_ops **ops);
/* The NCCL path (device buffers), collective over c->world. Built only with NCCL. */
void *dpt_reducer_nccl_create(dpt_comm *c, const dpt_reducer_settings *s,
                              const dpt_reducer_ops **ops);

#endif
