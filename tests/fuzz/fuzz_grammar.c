/* Fuzz the GBNF compiler and matcher (lib/text/grammar.c). Input: grammar
 * text, optionally followed by a NUL and bytes to feed the matcher. The
 * compile must succeed or fail with SIGMA_E_INVALID_ARG/NOMEM and a
 * message; the matcher's check and advance must agree; every state must
 * serialize, decode and continue identically. Internal API (static
 * library). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/grammar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sg_alloc a;
    sg_alloc_init(&a, NULL);
    const uint8_t *nul = memchr(data, 0, size);
    size_t glen = nul ? (size_t)(nul - data) : size;
    const uint8_t *feed = nul ? nul + 1 : data;
    size_t flen = nul ? size - glen - 1 : size;
    sg_err err;
    sg_err_clear(&err);
    sg_grammar *g = NULL;
    int st = sg_grammar_compile(&a, (const char *)data, glen, NULL, &g, &err);
    if (st != SIGMA_OK) {
        if ((st != SIGMA_E_INVALID_ARG && st != SIGMA_E_NOMEM) || !err.msg[0] || g) abort();
        return 0;
    }
    sg_gmatch m;
    if (sg_gmatch_init(&m, g, &a) != SIGMA_OK) abort();
    /* feed in chunks of 1..4 bytes */
    size_t i = 0;
    while (i < flen) {
        size_t n = 1 + (feed[i] & 3);
        if (n > flen - i) n = flen - i;
        int ok = sg_gmatch_check(&m, feed + i, n);
        int adv = sg_gmatch_advance(&m, feed + i, n);
        if (ok != (adv == SIGMA_OK)) abort();
        if (!ok) break;
        /* round-trip the state */
        size_t ss = sg_gmatch_state_size(&m);
        uint8_t *buf = malloc(ss ? ss : 1);
        if (!buf) abort();
        sg_gmatch_save(&m, buf);
        sg_gset set;
        if (sg_gmatch_decode(g, &a, buf, ss, &set, &err) != SIGMA_OK) abort();
        int end = sg_gmatch_can_end(&m);
        sg_gmatch_take(&m, &set);
        if (sg_gmatch_can_end(&m) != end || sg_gmatch_state_size(&m) != ss) abort();
        free(buf);
        i += n;
    }
    /* a random state blob must be rejected or accepted without harm */
    sg_gset set;
    if (sg_gmatch_decode(g, &a, feed, flen, &set, &err) == SIGMA_OK) {
        sg_gmatch_take(&m, &set);
        sg_gmatch_check(&m, (const uint8_t *)"a", 1);
    }
    sg_gmatch_free(&m);
    sg_grammar_free(g);
    return 0;
}
