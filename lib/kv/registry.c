/* The built-in KV strategies, looked up by name. */
#include <string.h>

#include "kv.h"

int sg_kv_find(const char *name, sigma_kv_strategy *out) {
    if (!name || !out) return 0;
    if (strcmp(name, "dense") == 0)
        sg_kv_dense_init(out);
    else if (strcmp(name, "quant") == 0)
        sg_kv_quant_init(out);
    else if (strcmp(name, "window") == 0)
        sg_kv_window_init(out);
    else if (strcmp(name, "h2o") == 0)
        sg_kv_h2o_init(out);
    else if (strcmp(name, "topv") == 0)
        sg_kv_topv_init(out);
    else
        return 0;
    return 1;
}
