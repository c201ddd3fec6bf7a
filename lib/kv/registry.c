/* The built-in KV strategies, looked up by name. */
#include <string.h>

#include "kv.h"

int sg_kv_find(const char *name, sigma_kv_strategy *out) {
    if (!name || !out) return 0;
    if (strcmp(name, "dense") == 0) {
        sg_kv_dense_init(out);
        return 1;
    }
    return 0;
}
