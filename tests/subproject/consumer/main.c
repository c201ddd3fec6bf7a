/* Built against libsigma as a subproject: the header, the shared library and
 * the version must agree. With a model path argument, also opens it. */
#include <sigma/sigma.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (sigma_version() != SIGMA_VERSION_NUMBER ||
        strcmp(sigma_version_string(), SIGMA_VERSION_STRING) != 0) {
        fprintf(stderr, "version mismatch: %s\n", sigma_version_string());
        return 1;
    }
    sigma_session_params sp;
    int rc = sigma_session_params_init(&sp, sizeof sp);
    if (rc != SIGMA_OK) {
        fprintf(stderr, "sigma_session_params_init: %s\n", sigma_strerror(rc));
        return 1;
    }
    if (argc > 1) {
        sigma_model *model;
        char err[256] = "";
        sigma_model_params mp;
        sigma_model_params_init(&mp, sizeof mp);
        mp.error_buf = err;
        mp.error_buf_size = sizeof err;
        int st = sigma_model_open(argv[1], &mp, &model);
        if (st != SIGMA_OK) {
            fprintf(stderr, "open %s: %s: %s\n", argv[1], sigma_strerror(st), err);
            return 1;
        }
        sigma_model_close(model);
    }
    printf("libsigma %s as a subproject: ok\n", sigma_version_string());
    return 0;
}
