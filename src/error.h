/* Error reporting shared by every module.
 * A user's mistake (config, data file, flags) comes back as a dpt_error with code DPT_EUSAGE and a
 * message naming the file, line, column or key; main prints it and exits 2. A failure of the
 * system or the run (I/O, allocation, divergence) is DPT_ERUNTIME and exits 1. */
#ifndef DPT_ERROR_H
#define DPT_ERROR_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#define DPT_NORETURN [[noreturn]]
#else
#define DPT_NORETURN _Noreturn
#endif

enum { DPT_OK = 0, DPT_ERUNTIME = 1, DPT_EUSAGE = 2 };
/* 128 + N: stopped by signal N (SIGINT, SIGTERM) after saving its state, as shells report it */
#define DPT_ESIGNAL(sig) (128 + (sig))

typedef struct {
    int code;        /* DPT_OK, DPT_ERUNTIME or DPT_EUSAGE */
    char msg[1024];  /* one line, no trailing newline */
} dpt_error;

/* Sets the code only: this rank failed because another rank did, and that rank speaks. */
int dpt_error_echo(dpt_error *err, int code);

/* Fills err (when not NULL) with code and a printf-style message; returns code. */
int dpt_error_set(dpt_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fatal errors: failures of the system (allocation, MPI, CUDA, NCCL) that no caller can
 * recover from. dpt_fatal prints "TAG file:line: what -> detail" to stderr and ends the process
 * through the installed hook. Without one it exits with 1; the application installs one that
 * ends the whole job (mpi/comm.c: MPI_Abort), so that no other rank is left waiting in a
 * collective. Backends (cpu, cuda) call only this: they know nothing of MPI. */
typedef void (*dpt_fatal_hook)(void);
void dpt_set_fatal_hook(dpt_fatal_hook hook, const char *tag);
DPT_NORETURN void dpt_fatal(const char *file, int line, const char *what, const char *detail);
/* The tag of this process in messages ("[rank 1 node7]"); "[dptrain]" until a hook sets one. */
const char *dpt_error_tag(void);

/* For system failures other than an API's status code (allocation, unrecoverable I/O). */
#define DPT_CHECK(cond, detail)                                                             \
    do {                                                                                    \
        if (!(cond))                                                                        \
            dpt_fatal(__FILE__, __LINE__, #cond, (detail));                                 \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
