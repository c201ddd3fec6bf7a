/* Built outside the tree against the installed library via pkg-config. */
#include <sigma/sigma.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    if (sigma_version() != SIGMA_VERSION_NUMBER) {
        fprintf(stderr, "version mismatch: %u vs %u\n", sigma_version(), SIGMA_VERSION_NUMBER);
        return 1;
    }
    sigma_model_params p;
    if (sigma_model_params_init(&p, sizeof p) != SIGMA_OK) return 1;
    char err[256] = "";
    p.error_buf = err;
    p.error_buf_size = sizeof err;
    sigma_model *m = NULL;
    int st = sigma_model_open("/nonexistent/model.gguf", &p, &m);
    if (st != SIGMA_E_IO || m != NULL || err[0] == '\0') {
        fprintf(stderr, "unexpected open result %d (%s) '%s'\n", st, sigma_strerror(st), err);
        return 1;
    }
    printf("libsigma %s: %s\n", sigma_version_string(), err);
    return 0;
}
