/* Built-in KV-cache strategies and their registry. Strategies implement the
 * public sigma_kv_strategy interface (include/sigma/sigma.h). */
#ifndef SG_KV_H
#define SG_KV_H

#include "../core/core.h"

/* What the session gives a built-in strategy: a session copies the built-in
 * table and sets its `user` to an sg_kv_env that outlives the strategy
 * state. With user == NULL a built-in runs single-threaded on the portable
 * kernels. */
typedef struct sg_kv_env {
    const sg_exec *exec;        /* kernels and thread pool */
    const sg_alloc *alloc;      /* NULL = C library */
} sg_kv_env;

/* The built-in strategy called `name` ("dense"), or NULL. */
const sigma_kv_strategy *sg_kv_find(const char *name);

extern const sigma_kv_strategy sg_kv_dense;

#endif
