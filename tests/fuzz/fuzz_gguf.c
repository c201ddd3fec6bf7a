/* Fuzz the GGUF reader and model validation: any byte string must give a
 * status, never a crash, hang, leak or out-of-bounds read. */
#include <stddef.h>
#include <stdint.h>
#include "sigma/sigma.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sigma_model_params p;
    sigma_model_params_init(&p, sizeof p);
    char err[256];
    p.error_buf = err;
    p.error_buf_size = sizeof err;
    sigma_model *m = NULL;
    if (sigma_model_open_memory(data, size, &p, &m) == SIGMA_OK) {
        sigma_model_info info;
        info.struct_size = sizeof info;
        sigma_model_get_info(m, &info);
        size_t n = 0;
        sigma_model_meta_count(m, &n);
        char buf[64];
        for (size_t i = 0; i < n && i < 64; i++) {
            const char *key;
            if (sigma_model_meta_key(m, i, &key) == SIGMA_OK)
                sigma_model_meta_get(m, key, buf, sizeof buf, NULL);
        }
        sigma_token t[16];
        size_t nt;
        sigma_tokenize(m, "Hello world", 11, t, 16, &nt, SIGMA_TOKENIZE_ADD_SPECIAL);
        sigma_model_close(m);
    }
    return 0;
}
