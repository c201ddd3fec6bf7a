/* The table of built-in KV strategies. */
#include <string.h>

#include "kv.h"

static const sigma_kv_strategy *const builtins[] = {&sg_kv_dense};

const sigma_kv_strategy *sg_kv_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i]->name, name) == 0) return builtins[i];
    return NULL;
}
