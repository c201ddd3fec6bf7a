/* Shared setup for the libFuzzer harnesses: a model opened once per
 * process from $SIGMA_FUZZ_MODEL (default: a committed tiny fixture). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include "sigma/sigma.h"

#ifndef FUZZ_DEFAULT_MODEL
#define FUZZ_DEFAULT_MODEL ""
#endif

static sigma_model *fuzz_open_model(void) {
    const char *path = getenv("SIGMA_FUZZ_MODEL");
    if (!path || !*path) path = FUZZ_DEFAULT_MODEL;
    sigma_model *m = NULL;
    char err[512] = "";
    sigma_model_params p;
    sigma_model_params_init(&p, sizeof p);
    p.error_buf = err;
    p.error_buf_size = sizeof err;
    if (sigma_model_open(path, &p, &m) != SIGMA_OK) {
        fprintf(stderr, "fuzz: cannot open model '%s': %s\n", path, err);
        return NULL;
    }
    return m;
}
#endif
