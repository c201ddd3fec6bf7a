/* Fuzz session-file loading: a hostile file must give a status and leave
 * the session unchanged (checked by evaluating afterwards). */
#include <stdint.h>
#include <stdlib.h>
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sigma_model *model;
    if (!model) model = fuzz_open_model();
    if (!model) return 0;
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sigma_session *s = NULL;
    if (sigma_session_open(model, &sp, &s) != SIGMA_OK) return 0;
    sigma_token t[2] = {1, 2};
    sigma_session_eval(s, t, 2);
    uint32_t before = 0, after = 0;
    sigma_session_position(s, &before);
    int st = sigma_session_load_memory(s, data, size);
    sigma_session_position(s, &after);
    if (st != SIGMA_OK && before != after) abort(); /* failed load must not change it */
    sigma_session_eval(s, t, 1);
    sigma_session_close(s);
    return 0;
}
