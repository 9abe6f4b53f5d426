/* The MPI path's watchdog (see watchdog.h): a thread per rank that watches how long the caller
 * has been inside a collective, and a UDP socket on which the ranks that wait past the timeout
 * tell each other the collective, step and bucket they wait in. Each rank publishes its
 * addresses (the IPv4 addresses of its interfaces and the socket's port) with one MPI_Allgather
 * at start-up; a datagram carries a job token so that another job's ranks are ignored. */
#define _GNU_SOURCE
#include "watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_ADDRS 4 /* IPv4 addresses published per rank */

typedef struct {
    uint32_t addr[MAX_ADDRS]; /* network order; 0: unused */
    uint16_t port;            /* network order */
    uint16_t pad;
    int32_t world_rank;
    uint64_t token;           /* rank 0's becomes the job's */
    char host[64];
} peer_info;

/* What a waiting rank tells the others. */
typedef struct {
    uint64_t token;
    int32_t rank;       /* in the watched communicator */
    int32_t bucket;     /* -1: none */
    int64_t step;
    double waited_s;
    int32_t expired;    /* 1: its own wait passed the timeout */
    char what[36];
} report;

struct dpt_watchdog {
    dpt_comm *c;
    double timeout_s;
    int sock;
    uint64_t token;
    peer_info *peers; /* (size) */
    pthread_t thread;
    pthread_mutex_t mu; /* guards the wait below and quit */
    int quit;
    int active;         /* the caller is inside a collective */
    const char *what;
    int64_t step;
    const volatile int *bucket;
    int n_buckets;
    double t_enter;
    unsigned long wait_no; /* counts the waits entered */
    /* the thread's own */
    report *heard;      /* (size) what each rank said; rank -1: nothing heard */
    int alarmed;        /* a rank said its wait expired */
};

static void local_addrs(uint32_t out[MAX_ADDRS])
{
    memset(out, 0, MAX_ADDRS * sizeof out[0]);
    struct ifaddrs *list = NULL;
    int n = 0;
    if (getifaddrs(&list) == 0) {
        for (struct ifaddrs *a = list; a && n < MAX_ADDRS; a = a->ifa_next)
            if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET)
                out[n++] = ((struct sockaddr_in *)a->ifa_addr)->sin_addr.s_addr;
        freeifaddrs(list);
    }
    if (n == 0)
        out[0] = htonl(INADDR_LOOPBACK);
}

static int open_socket(uint16_t *port)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        close(s);
        return -1;
    }
    *port = a.sin_port;
    return s;
}

static void send_report(dpt_watchdog *w, const report *r)
{
    for (int p = 0; p < w->c->size; p++) {
        if (p == w->c->rank)
            continue;
        for (int i = 0; i < MAX_ADDRS && w->peers[p].addr[i]; i++) {
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = w->peers[p].port};
            a.sin_addr.s_addr = w->peers[p].addr[i];
            (void)sendto(w->sock, r, sizeof *r, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a);
        }
    }
}

static void receive_reports(dpt_watchdog *w)
{
    report r;
    ssize_t got;
    while ((got = recv(w->sock, &r, sizeof r, MSG_DONTWAIT)) >= 0) {
        if (got != (ssize_t)sizeof r || r.token != w->token || r.rank < 0 ||
            r.rank >= w->c->size)
            continue; /* the wake-up byte of dpt_watchdog_free, another job's */
        r.what[sizeof r.what - 1] = '\0';
        w->heard[r.rank] = r;
        w->alarmed |= r.expired;
    }
}

/* The wait as the caller left it, read under the lock, and its number; 0 when not inside a
 * collective. */
static int snapshot(dpt_watchdog *w, report *me, unsigned long *wait_no)
{
    pthread_mutex_lock(&w->mu);
    int active = w->active;
    *wait_no = w->wait_no;
    if (active) {
        *me = (report){.token = w->token, .rank = w->c->rank, .step = w->step, .bucket = -1,
                       .waited_s = dpt_now() - w->t_enter};
        if (w->bucket)
            me->bucket = *w->bucket;
        snprintf(me->what, sizeof me->what, "%s", w->what);
        me->expired = me->waited_s > w->timeout_s;
    }
    pthread_mutex_unlock(&w->mu);
    return active;
}

static void describe(const dpt_watchdog *w, const report *r, char *out, size_t n)
{
    int k = snprintf(out, n, "%s of step %lld", r->what, (long long)r->step);
    if (r->bucket >= 0 && w->n_buckets > 1 && k > 0 && (size_t)k < n)
        snprintf(out + k, n - (size_t)k, " (bucket %d of %d)", r->bucket, w->n_buckets);
}

/* 1 when the host of rank p answers a TCP connection attempt (refused or accepted) on one of its
 * addresses within DPT_WATCHDOG_PROBE_MS: the host is up and reachable and the rank itself is
 * stuck (stopped, hung). 0 when none answers: a cut link or a dead node. A rank on this host is
 * reachable; loopback addresses are skipped (they would reach this host). */
static int peer_reachable(const dpt_watchdog *w, int p)
{
    if (strcmp(w->peers[p].host, w->c->host) == 0)
        return 1;
    struct pollfd pf[MAX_ADDRS];
    int n = 0, answered = 0, tried = 0;
    for (int i = 0; i < MAX_ADDRS && w->peers[p].addr[i] && !answered; i++) {
        if ((ntohl(w->peers[p].addr[i]) >> 24) == 127)
            continue;
        tried++;
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0)
            continue;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = w->peers[p].port};
        a.sin_addr.s_addr = w->peers[p].addr[i];
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 || errno == ECONNREFUSED)
            answered = 1;
        if (errno == EINPROGRESS && !answered)
            pf[n++] = (struct pollfd){.fd = s, .events = POLLOUT};
        else
            close(s);
    }
    double end = dpt_now() + DPT_WATCHDOG_PROBE_MS / 1000.0;
    while (!answered && n > 0 && dpt_now() < end &&
           poll(pf, (nfds_t)n, (int)((end - dpt_now()) * 1000.0) + 1) > 0)
        for (int k = 0; k < n; k++) {
            int err = 0;
            socklen_t len = sizeof err;
            if (pf[k].revents && getsockopt(pf[k].fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
                (err == 0 || err == ECONNREFUSED))
                answered = 1;
            pf[k].events = pf[k].revents ? 0 : POLLOUT; /* an unreachable error: stop polling */
        }
    for (int k = 0; k < n; k++)
        close(pf[k].fd);
    return answered || tried == 0;
}

/* Names the ranks nobody heard from (and ranks waiting at another step) into missing and
 * elsewhere; returns how many did not arrive; *cut: how many of those whose host does not answer. */
static int find_missing(dpt_watchdog *w, const report *me, char *missing, size_t m,
                        char *elsewhere, size_t e, int *cut)
{
    size_t nm = 0, ne = 0;
    int n_missing = 0;
    *cut = 0;
    for (int p = 0; p < w->c->size; p++) {
        const report *h = &w->heard[p];
        if (p == w->c->rank)
            continue;
        if (h->rank != p) {
            int up = peer_reachable(w, p);
            n_missing++;
            *cut += !up;
            if (nm < m)
                nm += (size_t)snprintf(missing + nm, m - nm, "%s%d (%s%s)", nm ? ", " : "",
                                       w->peers[p].world_rank, w->peers[p].host,
                                       up ? "" : ": its host does not answer");
        } else if (h->step != me->step && ne < e) {
            ne += (size_t)snprintf(elsewhere + ne, e - ne, "; rank %d waits in %s of step %lld",
                                   w->peers[p].world_rank, h->what, (long long)h->step);
        }
    }
    return n_missing;
}

/* What this rank waits for, said once per wait when its wait expires: said then rather than at
 * the end, since the rank that ends the job may abort this one before its own grace has passed
 * (integration_stall lost a live rank's line that way). */
static void say_waiting(const dpt_watchdog *w, const report *me)
{
    char mine[128];
    describe(w, me, mine, sizeof mine);
    fprintf(stderr, "[rank %d %s] watchdog: %s not done after %.1f s (run.comm_timeout_s %g)\n",
            w->c->world_rank, w->c->host, mine, me->waited_s, w->timeout_s);
    fflush(stderr);
}

/* The lowest rank this one heard from in this wait, itself included: the one that speaks. */
static int lowest_heard(const dpt_watchdog *w)
{
    for (int p = 0; p < w->c->rank; p++)
        if (w->heard[p].rank == p)
            return p;
    return w->c->rank;
}

/* The end: the lowest rank that heard from the others names the ranks that said nothing (and
 * ranks waiting at another step). */
static void give_up(dpt_watchdog *w, const report *me)
{
    dpt_comm *c = w->c;
    char missing[1024] = "", elsewhere[1024] = "";
    int lowest = lowest_heard(w);
    int cut = 0;
    int n_missing = find_missing(w, me, missing, sizeof missing, elsewhere, sizeof elsewhere,
                                 &cut);
    if (lowest == c->rank && n_missing)
        fprintf(stderr, "[rank %d %s] watchdog: rank%s %s did not arrive (no report from "
                "%s within %.0f s); %d other rank%s waiting%s. Ending the job%s.\n",
                c->world_rank, c->host, n_missing > 1 ? "s" : "", missing,
                n_missing > 1 ? "them" : "it", DPT_WATCHDOG_GRACE_S, c->size - 1 - n_missing,
                c->size - 1 - n_missing == 1 ? " is" : "s are", elsewhere,
                cut ? " (a cut link or a dead node: the launcher ends it when it loses that "
                      "host's daemon, else MPI_Abort follows)" : "");
    else if (lowest == c->rank)
        fprintf(stderr, "[rank %d %s] watchdog: every rank reported waiting%s; the "
                "collective itself is stuck (network?). Ending the job.\n",
                c->world_rank, c->host, elsewhere);
    fflush(stderr);
    if (cut)
        sleep(DPT_WATCHDOG_LAUNCHER_S);
    alarm(DPT_WATCHDOG_ABORT_S);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _exit(1);
}

static void *watchdog_main(void *arg)
{
    dpt_watchdog *w = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    double expired_at = 0.0;
    unsigned long watched = 0; /* the wait the state here belongs to (waits count from 1) */
    int said = 0;              /* this rank printed what it waits for in that wait */
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int quit = w->quit;
        pthread_mutex_unlock(&w->mu);
        if (quit)
            break;
        struct pollfd pfd = {.fd = w->sock, .events = POLLIN};
        if (poll(&pfd, 1, DPT_WATCHDOG_TICK_MS) > 0)
            receive_reports(w);
        report me;
        unsigned long wait_no;
        int active = snapshot(w, &me, &wait_no);
        /* not waiting, or in a wait entered since the last tick: what was heard is stale (the
         * others say it again each tick while they wait) */
        if (!active || wait_no != watched) {
            if (expired_at != 0.0 || w->alarmed)
                for (int p = 0; p < w->c->size; p++)
                    w->heard[p].rank = -1;
            expired_at = 0.0;
            w->alarmed = 0;
            said = 0;
            watched = wait_no;
            if (!active)
                continue;
        }
        /* a rank waiting (expired or not) answers a rank whose wait expired: it arrived */
        if (me.expired || w->alarmed)
            send_report(w, &me);
        if (me.expired && !said) {
            say_waiting(w, &me);
            said = 1;
        }
        if (!me.expired)
            continue;
        /* the lowest live rank speaks and aborts after the grace; the others give it
         * DPT_WATCHDOG_DEFER_S more, and end the job themselves only if it does not */
        double grace = DPT_WATCHDOG_GRACE_S +
                       (lowest_heard(w) != w->c->rank ? DPT_WATCHDOG_DEFER_S : 0.0);
        if (expired_at == 0.0)
            expired_at = dpt_now();
        else if (dpt_now() - expired_at >= grace)
            give_up(w, &me);
    }
    return NULL;
}

dpt_watchdog *dpt_watchdog_create(dpt_comm *c, double timeout_s)
{
    if (timeout_s <= 0.0 || c->size < 2)
        return NULL;
    dpt_watchdog *w = calloc(1, sizeof *w);
    DPT_CHECK(w != NULL, "out of memory");
    w->c = c;
    w->timeout_s = timeout_s;
    peer_info me = {.world_rank = c->world_rank};
    w->sock = open_socket(&me.port);
    DPT_CHECK(w->sock >= 0, "watchdog: cannot open a UDP socket (run.comm_timeout_s 0 turns "
                            "the MPI path's watchdog off)");
    local_addrs(me.addr);
    me.token = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)w;
    snprintf(me.host, sizeof me.host, "%.63s", c->host); /* names in reports */
    w->peers = calloc((size_t)c->size, sizeof *w->peers);
    w->heard = calloc((size_t)c->size, sizeof *w->heard);
    DPT_CHECK(w->peers && w->heard, "out of memory");
    for (int p = 0; p < c->size; p++)
        w->heard[p].rank = -1;
    DPT_MPI_CHECK(MPI_Allgather(&me, sizeof me, MPI_BYTE, w->peers, sizeof me, MPI_BYTE,
                                c->world));
    w->token = w->peers[0].token;
    DPT_CHECK(pthread_mutex_init(&w->mu, NULL) == 0, "cannot create the watchdog's lock");
    DPT_CHECK(pthread_create(&w->thread, NULL, watchdog_main, w) == 0,
              "cannot start the watchdog thread");
    return w;
}

void dpt_watchdog_free(dpt_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_mutex_unlock(&w->mu);
    /* a byte to its own socket ends the thread's poll now rather than at the next tick (a
     * search frees a reducer per trial) */
    struct sockaddr_in self = {.sin_family = AF_INET, .sin_port = w->peers[w->c->rank].port};
    self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void)sendto(w->sock, "", 1, MSG_DONTWAIT, (struct sockaddr *)&self, sizeof self);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    close(w->sock);
    free(w->peers);
    free(w->heard);
    free(w);
}

void dpt_watchdog_enter(dpt_watchdog *w, const char *what, int64_t step,
                        const volatile int *bucket, int n_buckets)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->what = what;
    w->step = step;
    w->bucket = bucket;
    w->n_buckets = n_buckets;
    w->t_enter = dpt_now();
    w->wait_no++;
    w->active = 1;
    pthread_mutex_unlock(&w->mu);
}

void dpt_watchdog_leave(dpt_watchdog *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->active = 0;
    pthread_mutex_unlock(&w->mu);
}
