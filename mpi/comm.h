/* Communication: MPI start-up and topology (host, local rank), the gradient allreduce on one
 * flat float buffer, broadcasts, agreement on an error code, and the check macro that turns any
 * MPI (or other system) failure into a message naming rank and host followed by MPI_Abort, so
 * no rank is left hanging. Knows nothing of the model. */
#ifndef DPT_COMM_H
#define DPT_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rank, size;             /* in the world (of this communicator: a group after a split) */
    int world_rank;             /* in MPI_COMM_WORLD, for messages and logs */
    int device;                 /* this rank's GPU: its local rank among ALL the job's ranks on
                                 * the node (a split keeps it, so groups never share a GPU) */
    int node_ranks;             /* the job's ranks on this node (GPUs it needs) */
    int local_rank, local_size; /* within this node (MPI_COMM_TYPE_SHARED) */
    int node, n_nodes;          /* node index (by the lowest world rank on it), node count */
    char host[256];
    MPI_Comm world;             /* dup of MPI_COMM_WORLD, errors returned (checked) */
    MPI_Comm local;             /* ranks on this node */
    MPI_Comm leaders;           /* local rank 0 of every node; MPI_COMM_NULL elsewhere */
    int thread_serialized;      /* MPI may be called from another thread, one at a time */
} dpt_comm;

/* MPI_Init and the three communicators. Works without mpirun (a single rank). */
void dpt_comm_init(dpt_comm *c, int *argc, char ***argv);
void dpt_comm_finalize(dpt_comm *c);

/* Collective over c: splits it into groups by color (MPI_Comm_split, ordered by rank); sub gets
 * the group as its world, with rank, size and node communicators within the group. Messages keep
 * the world rank. Free with dpt_comm_free. */
void dpt_comm_split(dpt_comm *c, int color, dpt_comm *sub);
void dpt_comm_free(dpt_comm *sub);

/* Sums n floats in place across all ranks. */
void dpt_comm_allreduce_sum(dpt_comm *c, float *buf, size_t n);
/* The same sum across the ranks of any communicator (c->world, c->local, c->leaders): the one
 * MPI_Allreduce path that the trainer and `dptrain bench allreduce` share. */
void dpt_comm_allreduce_sum_on(MPI_Comm comm, float *buf, size_t n);
void dpt_comm_allreduce_sum_double(dpt_comm *c, double *buf, int n);
void dpt_comm_bcast(dpt_comm *c, void *buf, size_t bytes, int root);
/* Every rank passes its status; every rank gets the largest (0 only if all are 0). */
int dpt_comm_agree(dpt_comm *c, int status);
/* The error agreement of a collective step: every rank passes its status and, in mine, its own
 * message (when it failed); every rank returns the largest status. A rank that failed keeps its
 * message in err; a rank that did not gets only the code (dpt_error_echo: the failing rank
 * speaks). */
int dpt_comm_agree_error(dpt_comm *c, int status, const dpt_error *mine, dpt_error *err);
int64_t dpt_comm_min_i64(dpt_comm *c, int64_t v);
/* Rank 0 receives every rank's bytes (bytes each) in rank order into recv (NULL elsewhere). */
void dpt_comm_gather(dpt_comm *c, const void *send, size_t bytes, void *recv);

/* Collective. On rank 0, out gets "host (ranks), host (ranks)" in order of first rank. */
void dpt_comm_hosts(dpt_comm *c, char *out, size_t n);


/* For system failures: MPI calls. */
#define DPT_MPI_CHECK(stmt)                                                                 \
    do {                                                                                    \
        int dpt_rc_ = (stmt);                                                               \
        if (dpt_rc_ != MPI_SUCCESS) {                                                       \
            char dpt_msg_[MPI_MAX_ERROR_STRING];                                            \
            int dpt_len_ = 0;                                                               \
            MPI_Error_string(dpt_rc_, dpt_msg_, &dpt_len_);                                 \
            dpt_fatal(__FILE__, __LINE__, #stmt, dpt_msg_);                                 \
        }                                                                                   \
    } while (0)



#ifdef __cplusplus
}
#endif

#endif
