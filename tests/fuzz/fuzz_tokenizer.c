/* Fuzz tokenize / detokenize / incremental decoding with a real vocabulary.
 * First byte selects flags; the rest is the text. Checks invariants: ids in
 * range; valid UTF-8 text round-trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sigma_model *model; /* harness-only state, not the library's */
    if (!model) model = fuzz_open_model();
    if (!model || size < 1) return 0;
    uint32_t flags = data[0] & 3u;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t cap = len + 8, n = 0;
    sigma_token *tok = malloc(cap * sizeof *tok);
    if (!tok) return 0;
    int st = sigma_tokenize(model, text, len, tok, cap, &n, flags);
    if (st == SIGMA_E_BUFFER_TOO_SMALL) {
        free(tok);
        cap = n;
        tok = malloc((cap ? cap : 1) * sizeof *tok);
        if (!tok) return 0;
        st = sigma_tokenize(model, text, len, tok, cap, &n, flags);
    }
    if (st == SIGMA_OK) {
        sigma_model_info info;
        info.struct_size = sizeof info;
        sigma_model_get_info(model, &info);
        for (size_t i = 0; i < n; i++)
            if (tok[i] < 0 || (uint32_t)tok[i] >= info.n_vocab) abort();
        size_t outcap = len * 4 + 64, outlen = 0;
        char *out = malloc(outcap);
        if (out && sigma_detokenize(model, tok, n, out, outcap, &outlen,
                                    (flags & SIGMA_TOKENIZE_PARSE_SPECIAL) ? SIGMA_DETOK_RENDER_SPECIAL : 0) == SIGMA_OK) {
            if (flags == 0 && utf8_valid(data + 1, len) && (outlen != len || memcmp(out, text, len) != 0))
                abort(); /* valid UTF-8 without specials must round-trip */
        }
        sigma_decoder *dec = NULL;
        if (out && sigma_decoder_open(model, 0, &dec) == SIGMA_OK) {
            size_t piece;
            for (size_t i = 0; i < n; i++) {
                if (sigma_decoder_push(dec, tok[i], out, outcap, &piece) == SIGMA_OK &&
                    !utf8_valid((const uint8_t *)out, piece))
                    abort(); /* never half a character */
            }
            sigma_decoder_flush(dec, out, outcap, &piece);
            sigma_decoder_close(dec);
        }
        free(out);
    }
    free(tok);
    return 0;
}
