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

/* Fill *out with the built-in strategy called `name` ("dense"); returns 1,
 * or 0 if there is none. (Filled in code rather than kept as const tables:
 * a table of pointers would be writable relocated data in a PIC build.) */
int sg_kv_find(const char *name, sigma_kv_strategy *out);

void sg_kv_dense_init(sigma_kv_strategy *out);

#endif
