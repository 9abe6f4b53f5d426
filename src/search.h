/* The hyperparameter search (`dptrain search`): rank 0 proposes configurations (random, grid, or
 * Bayesian optimization with a Gaussian process and Expected Improvement, src/gp.h), broadcasts
 * them, and every rank trains them data-parallel (or, with search.parallel: G, each of G groups
 * of ranks trains a different one at the same time); the objective comes back to rank 0, which
 * appends the trial to OUT/trials.jsonl, keeps OUT/best.yaml, and proposes the next. */
#ifndef DPT_SEARCH_H
#define DPT_SEARCH_H

#include "comm.h"
#include "config.h"
#include "error.h"

typedef struct {
    const char *config_path;  /* for the start-up lines */
    int resume;               /* continue the search recorded in OUT/trials.jsonl */
} dpt_search_opts;

/* The whole search. Collective. Returns DPT_OK, DPT_EUSAGE (a config or trials.jsonl problem) or
 * DPT_ERUNTIME (I/O); the same code on every rank. Diverged and failed trials are recorded and
 * the search goes on. */
int dpt_search_run(const dpt_config *cfg, dpt_comm *comm, const dpt_search_opts *opts,
                   dpt_error *err);

#endif
