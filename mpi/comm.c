/* MPI start-up, topology and the collectives the trainer uses. Every MPI call is checked; a
 * failure names the rank and host and aborts the job (MPI_Abort), because a rank that returns
 * early would leave the others blocked in the next collective. */
#include "comm.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The fatal-error hook (src/error.h) of every MPI process: after the message, end the whole job,
 * so that no rank is left blocked in the next collective. */
static void abort_job(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

static void build_topology(dpt_comm *c);

void dpt_comm_init(dpt_comm *c, int *argc, char ***argv)
{
    memset(c, 0, sizeof *c);
    /* SERIALIZED: the gradient buckets' progress thread makes MPI calls while the main thread
     * computes, never two threads at once (mpi/buckets.c holds a lock around them) */
    int provided = MPI_THREAD_SINGLE;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "dptrain: MPI_Init_thread failed\n");
        _exit(1);
    }
    c->thread_serialized = provided >= MPI_THREAD_SERIALIZED;
    DPT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &c->world));
    if (gethostname(c->host, sizeof c->host - 1) != 0)
        strcpy(c->host, "unknown");
    build_topology(c);
    c->world_rank = c->rank;
    c->device = c->local_rank;
    c->node_ranks = c->local_size;
    char tag[320];
    snprintf(tag, sizeof tag, "[rank %d %s]", c->rank, c->host);
    dpt_set_fatal_hook(abort_job, tag);
}

void dpt_comm_split(dpt_comm *c, int color, dpt_comm *sub)
{
    memset(sub, 0, sizeof *sub);
    memcpy(sub->host, c->host, sizeof sub->host);
    sub->thread_serialized = c->thread_serialized;
    DPT_MPI_CHECK(MPI_Comm_split(c->world, color, c->rank, &sub->world));
    build_topology(sub);
    sub->world_rank = c->world_rank;
    sub->device = c->device;
    sub->node_ranks = c->node_ranks;
}

void dpt_comm_free(dpt_comm *sub)
{
    if (sub->leaders != MPI_COMM_NULL)
        MPI_Comm_free(&sub->leaders);
    MPI_Comm_free(&sub->local);
    MPI_Comm_free(&sub->world);
}

/* Rank, size and the node communicators of c->world. */
static void build_topology(dpt_comm *c)
{
    DPT_MPI_CHECK(MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN));
    DPT_MPI_CHECK(MPI_Comm_rank(c->world, &c->rank));
    DPT_MPI_CHECK(MPI_Comm_size(c->world, &c->size));
    /* Test hook: DPT_TEST_RANKS_PER_NODE=K groups ranks as if K ran on each node (node =
     * rank / K) instead of by shared memory, so that a test on one machine gets non-trivial
     * node leaders and local communicators (the hierarchical allreduce). Not for real runs. */
    const char *per_node = getenv("DPT_TEST_RANKS_PER_NODE");
    int k = per_node ? atoi(per_node) : 0;
    if (k > 0)
        DPT_MPI_CHECK(MPI_Comm_split(c->world, c->rank / k, c->rank, &c->local));
    else
        DPT_MPI_CHECK(MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL,
                                          &c->local));
    DPT_MPI_CHECK(MPI_Comm_rank(c->local, &c->local_rank));
    DPT_MPI_CHECK(MPI_Comm_size(c->local, &c->local_size));
    DPT_MPI_CHECK(MPI_Comm_split(c->world, c->local_rank == 0 ? 0 : MPI_UNDEFINED, c->rank,
                                 &c->leaders));
    /* node index: the leaders' rank among leaders, sent to the rest of the node */
    int node = 0, n_nodes = 0;
    if (c->leaders != MPI_COMM_NULL) {
        DPT_MPI_CHECK(MPI_Comm_rank(c->leaders, &node));
        DPT_MPI_CHECK(MPI_Comm_size(c->leaders, &n_nodes));
    }
    int pair[2] = {node, n_nodes};
    DPT_MPI_CHECK(MPI_Bcast(pair, 2, MPI_INT, 0, c->local));
    c->node = pair[0];
    c->n_nodes = pair[1];
}

void dpt_comm_finalize(dpt_comm *c)
{
    dpt_comm_free(c);
    MPI_Finalize();
}

void dpt_comm_allreduce_sum(dpt_comm *c, float *buf, size_t n)
{
    if (c->size > 1)
        dpt_comm_allreduce_sum_on(c->world, buf, n);
}

void dpt_comm_allreduce_sum_on(MPI_Comm comm, float *buf, size_t n)
{
    /* MPI counts are int: reduce in chunks for buffers past 2^31 elements */
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, chunk, MPI_FLOAT, MPI_SUM, comm));
        buf += chunk;
        n -= (size_t)chunk;
    }
}

void dpt_comm_allreduce_sum_double(dpt_comm *c, double *buf, int n)
{
    if (c->size > 1)
        DPT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, c->world));
}

void dpt_comm_bcast(dpt_comm *c, void *buf, size_t bytes, int root)
{
    if (c->size == 1)
        return;
    char *p = buf;
    while (bytes > 0) {
        int chunk = bytes > (size_t)INT_MAX ? INT_MAX : (int)bytes;
        DPT_MPI_CHECK(MPI_Bcast(p, chunk, MPI_BYTE, root, c->world));
        p += chunk;
        bytes -= (size_t)chunk;
    }
}

int dpt_comm_agree(dpt_comm *c, int status)
{
    int all = status;
    if (c->size > 1)
        DPT_MPI_CHECK(MPI_Allreduce(&status, &all, 1, MPI_INT, MPI_MAX, c->world));
    return all;
}

int dpt_comm_agree_error(dpt_comm *c, int status, const dpt_error *mine, dpt_error *err)
{
    int rc = dpt_comm_agree(c, status);
    if (rc == DPT_OK)
        return DPT_OK;
    if (mine && mine->code != DPT_OK && err != mine)
        *err = *mine;
    else if (!mine || mine->code == DPT_OK)
        dpt_error_echo(err, rc);
    return rc;
}

int64_t dpt_comm_min_i64(dpt_comm *c, int64_t v)
{
    int64_t r = v;
    if (c->size > 1)
        DPT_MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_INT64_T, MPI_MIN, c->world));
    return r;
}

void dpt_comm_gather(dpt_comm *c, const void *send, size_t bytes, void *recv)
{
    DPT_CHECK(bytes <= (size_t)INT_MAX, "gather of more than 2 GB per rank");
    if (c->size == 1) {
        memcpy(recv, send, bytes);
        return;
    }
    DPT_MPI_CHECK(MPI_Gather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, 0, c->world));
}

void dpt_comm_hosts(dpt_comm *c, char *out, size_t n)
{
    enum { W = 64 };
    char mine[W] = {0};
    memcpy(mine, c->host, W - 1); /* host names longer than 63 characters are cut */
    char *all = c->rank == 0 ? calloc((size_t)c->size, W) : NULL;
    if (c->rank == 0)
        DPT_CHECK(all != NULL, "out of memory");
    DPT_MPI_CHECK(MPI_Gather(mine, W, MPI_CHAR, all, W, MPI_CHAR, 0, c->world));
    if (c->rank != 0)
        return;
    out[0] = '\0';
    size_t len = 0;
    for (int r = 0; r < c->size; r++) {
        int seen = 0, count = 0;
        for (int q = 0; q < r && !seen; q++)
            seen = strcmp(all + (size_t)q * W, all + (size_t)r * W) == 0;
        if (seen)
            continue;
        for (int q = r; q < c->size; q++)
            count += strcmp(all + (size_t)q * W, all + (size_t)r * W) == 0;
        if (len < n)
            len += (size_t)snprintf(out + len, n - len, "%s%s (%d)", len ? ", " : "",
                                    all + (size_t)r * W, count);
    }
    free(all);
}
