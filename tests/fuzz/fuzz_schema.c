/* Fuzz the JSON Schema converter (lib/text/json_schema.c): any input is
 * converted or rejected with a message; a converted grammar must compile
 * (only the grammar's own size limits and left recursion through $ref may
 * stop it) and its matcher must run. Internal API (static library). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sg_alloc a;
    sg_alloc_init(&a, NULL);
    sg_err err;
    sg_err_clear(&err);
    char *text = NULL;
    size_t n = 0;
    int st = sg_json_schema_to_gbnf(&a, (const char *)data, size, &text, &n, &err);
    if (st != SIGMA_OK) {
        if (text || !err.msg[0]) abort();
        if (st != SIGMA_E_INVALID_ARG && st != SIGMA_E_UNSUPPORTED && st != SIGMA_E_NOMEM) abort();
        return 0;
    }
    if (strlen(text) != n) abort();
    sg_grammar *g = NULL;
    sg_err_clear(&err);
    st = sg_grammar_compile(&a, text, n, NULL, &g, &err);
    if (st == SIGMA_OK) {
        sg_gmatch m;
        if (sg_gmatch_init(&m, g, &a) != SIGMA_OK) abort();
        static const char *const docs[] = {"{}", "[]", "null", "\"x\"", "1", "{\"a\":1}", "true"};
        for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
            sg_gmatch_reset(&m);
            sg_gmatch_check(&m, (const uint8_t *)docs[i], strlen(docs[i]));
        }
        sg_gmatch_free(&m);
        sg_grammar_free(g);
    } else if (!strstr(err.msg, "left recursion") && !strstr(err.msg, "too many rules") &&
               !strstr(err.msg, "too large")) {
        abort(); /* the converter wrote a grammar that does not parse */
    }
    sg_free(&a, text);
    return 0;
}
