/* SIGINT and SIGTERM, what schedulers send before they kill a job: the first one sets a flag that
 * the training step shares with every rank through its gradient allreduce, so all ranks stop at
 * the end of the same step, write a checkpoint and exit with 128 + the signal; a second one ends
 * the process at once. */
#ifndef DPT_SIGNALS_H
#define DPT_SIGNALS_H

/* Installs the handlers (call once, after MPI_Init so they are not replaced). */
void dpt_signals_install(void);

/* The first signal received (SIGINT, SIGTERM) or 0. Async-signal-safe to read. */
int dpt_signals_pending(void);

/* "SIGTERM", "SIGINT", or "signal N". */
const char *dpt_signals_name(int sig);

#endif
