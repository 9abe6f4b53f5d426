/* The names of the communication settings (comm.* in a config, the flags of `dptrain bench
 * allreduce`) and of the device: plain enums without MPI, so that the config (src/config.h), the
 * reducer and the benchmark share one enum per concept. */
#ifndef DPT_COMM_TYPES_H
#define DPT_COMM_TYPES_H

#ifdef __cplusplus
extern "C" {
#endif

/* run.device, --device: the CPU, a GPU, or a GPU when one is visible */
typedef enum { DPT_DEVICE_AUTO, DPT_DEVICE_CPU, DPT_DEVICE_CUDA } dpt_device_kind;

/* comm.algorithm, --algorithm: how the MPI path sums the gradients across ranks */
typedef enum {
    DPT_COMM_FLAT,         /* one allreduce over all ranks */
    DPT_COMM_HIERARCHICAL, /* reduce within the node, allreduce among node leaders, broadcast */
    DPT_COMM_RING          /* as hierarchical, with dptrain's ring (mpi/ring.h) among the leaders;
                            * on one node, flat */
} dpt_comm_algorithm;

/* comm.compress: what the gradients travel as */
typedef enum { DPT_COMPRESS_NONE, DPT_COMPRESS_BF16 } dpt_compress;

/* "flat", "hierarchical", "ring": the config's spelling (defined with the config's other name
 * tables in src/config.c). */
const char *dpt_comm_algorithm_name(dpt_comm_algorithm a);

#ifdef __cplusplus
}
#endif

#endif
