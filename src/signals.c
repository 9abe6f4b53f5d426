/* The handlers only store the signal number (a sig_atomic_t, the one thing a handler may write,
 * C11 7.14.1.1); the training loop polls it once per step. */
#include "signals.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t g_pending = 0;

static void on_signal(int sig)
{
    if (g_pending) {
        /* the second signal: the default action, now (exit status 128 + sig) */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_pending = sig;
}

void dpt_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* blocking calls (MPI progress, file I/O) go on */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int dpt_signals_pending(void) { return (int)g_pending; }

const char *dpt_signals_name(int sig)
{
    static char buf[32];
    if (sig == SIGTERM)
        return "SIGTERM";
    if (sig == SIGINT)
        return "SIGINT";
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}
