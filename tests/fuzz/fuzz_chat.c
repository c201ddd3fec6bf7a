/* Fuzz chat rendering: the input is split on NUL bytes into role/content
 * pairs and rendered with the model's template. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sigma_model *model;
    if (!model) model = fuzz_open_model();
    if (!model) return 0;
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    sigma_chat_message msgs[16];
    size_t n = 0;
    char *p = copy, *end = copy + size;
    while (p < end && n < 16) {
        char *role = p;
        p += strlen(p) + 1;
        if (p >= end) break;
        char *content = p;
        p += strlen(p) + 1;
        msgs[n].role = role;
        msgs[n].content = content;
        n++;
    }
    size_t len = 0;
    char small[16];
    int st = sigma_chat_render(model, msgs, n, (int)(size & 1), small, sizeof small, &len);
    if (st == SIGMA_E_BUFFER_TOO_SMALL) {
        char *buf = malloc(len + 1);
        if (buf) {
            size_t len2 = 0;
            if (sigma_chat_render(model, msgs, n, (int)(size & 1), buf, len + 1, &len2) != SIGMA_OK ||
                len2 != len)
                abort(); /* the announced size must be exact */
            free(buf);
        }
    }
    free(copy);
    return 0;
}
