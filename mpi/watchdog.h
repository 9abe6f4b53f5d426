/* The MPI path's watchdog: a thread that ends the job when a collective is not done within
 * run.comm_timeout_s, after every live rank has said what it waits for and the ranks that never
 * arrived have been named. MPI cannot be called from that thread (the trainer sits in a blocking
 * collective and MPI is initialized SERIALIZED), so the live ranks tell each other over UDP
 * datagrams, on addresses exchanged through MPI at start-up: a rank nobody heard from did not
 * arrive. The NCCL path has its own watchdog (mpi/nccl_comm.c). */
#ifndef DPT_WATCHDOG_H
#define DPT_WATCHDOG_H

#include <stdint.h>

#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Once a rank's wait passes the timeout it keeps listening this long for the other ranks'
 * reports before it names the missing ones and aborts: two ticks of the thread are enough on a
 * LAN; the rest is for ranks that entered the collective a little later. */
#define DPT_WATCHDOG_GRACE_S 3.0
/* A rank that has heard from a lower live rank leaves the message (and the abort) to the lowest
 * one and waits this much longer before aborting itself, in case that rank went silent too: an
 * abort from a rank whose wait expired a tick earlier ended the job before the lowest rank named
 * the missing one (integration_stall, case buckets, in CI). */
#define DPT_WATCHDOG_DEFER_S 2.0
/* The thread's tick: how often it looks at the wait and the socket. */
#define DPT_WATCHDOG_TICK_MS 200
/* MPI_Abort gets this long; then SIGALRM ends the process (its default action) in case the
 * abort itself hangs behind the stalled collective. */
#define DPT_WATCHDOG_ABORT_S 10
/* A rank whose missing peers' hosts do not answer (a cut link, a dead node) waits this long before
 * MPI_Abort: mpirun cannot deliver an abort to a daemon behind a cut link (TCP retransmits for
 * minutes, and its pending data also keeps Open MPI's keepalive from noticing the lost daemon).
 * Waiting lets the launcher's keepalive end the job (the job scripts set oob_tcp_keepalive_*:
 * docs/faults.md). A host that answers (a stopped or hung rank) is aborted at once. */
#define DPT_WATCHDOG_LAUNCHER_S 30
/* How long a probe of a missing rank's host (a TCP connection attempt) waits for an answer. */
#define DPT_WATCHDOG_PROBE_MS 1000

typedef struct dpt_watchdog dpt_watchdog;

/* Collective over c->world (it gathers every rank's datagram address). NULL when timeout_s <= 0
 * or c has one rank: nothing to watch. */
dpt_watchdog *dpt_watchdog_create(dpt_comm *c, double timeout_s);
/* Stops the thread; safe on NULL; not collective. */
void dpt_watchdog_free(dpt_watchdog *w);

/* The caller enters a collective: what it is (a string that outlives the wait), the step, and
 * where the index of the bucket it waits for can be read while it waits (NULL: no buckets; the
 * watchdog reads it racily, for the report only) out of n_buckets. Safe on NULL w. */
void dpt_watchdog_enter(dpt_watchdog *w, const char *what, int64_t step,
                        const volatile int *bucket, int n_buckets);
void dpt_watchdog_leave(dpt_watchdog *w);

#ifdef __cplusplus
}
#endif

#endif
