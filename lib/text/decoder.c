/* Incremental token -> text decoding that only ever returns complete UTF-8
 * characters: the bytes of an unfinished character are held until the
 * following tokens complete it. Ill-formed bytes become U+FFFD (one per
 * maximal subpart, as Python's errors="replace"). No leading-space removal:
 * the decoder continues text that came before it. */
#include <string.h>

#include "tokenizer.h"
#include "unicode.h"

struct sigma_decoder {
    const struct sigma_model *model;
    uint32_t flags;
    uint8_t held[4]; /* a proper prefix of a character: at most 3 bytes */
    size_t n_held;
};

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

int sigma_decoder_open(const sigma_model *model, uint32_t flags, sigma_decoder **out) {
    if (out) *out = NULL;
    if (!model || !out) return SIGMA_E_INVALID_ARG;
    if (flags & ~SIGMA_DETOK_RENDER_SPECIAL)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "decoder: unknown flags 0x%x", flags);
    if (!model->tok) return sg_model_error(model, SIGMA_E_UNSUPPORTED, "the model has no tokenizer");
    sigma_decoder *d = sg_calloc(&model->alloc, 1, sizeof *d);
    if (!d) return sg_model_error(model, SIGMA_E_NOMEM, "decoder: out of memory");
    d->model = model;
    d->flags = flags;
    *out = d;
    return SIGMA_OK;
}

void sigma_decoder_close(sigma_decoder *dec) {
    if (dec) sg_free(&dec->model->alloc, dec);
}

/* Convert held + piece into complete characters. With `write` == 0 only the
 * length is computed (and nothing changes). Returns the output length and
 * the number of bytes to hold afterwards (copied to *tail). */
static size_t convert(const uint8_t *held, size_t n_held, const uint8_t *p, size_t n,
                      char *out, int finish, uint8_t tail[4], size_t *n_tail) {
    uint8_t tmp[8];
    size_t o = 0, i = 0;
    /* complete the held character first using the head of the piece */
    size_t total = n_held + n;
    *n_tail = 0;
    while (i < total) {
        /* view of the stream at position i: held bytes, then piece bytes */
        const uint8_t *s;
        size_t avail;
        if (i < n_held) {
            size_t k = 0;
            for (size_t j = i; j < total && k < 4; j++, k++) tmp[k] = j < n_held ? held[j] : p[j - n_held];
            s = tmp;
            avail = k;
        } else {
            s = p + (i - n_held);
            avail = total - i;
        }
        if (s[0] < 0x80) {
            if (out) out[o] = (char)s[0];
            o++;
            i++;
            continue;
        }
        if (!finish && sg_utf8_is_partial(s, avail)) {
            memcpy(tail, s, avail);
            *n_tail = avail;
            break;
        }
        size_t l;
        uint32_t cp = sg_utf8_next(s, avail, &l);
        if (cp == SG_CP_INVALID) {
            if (out) memcpy(out + o, replacement, 3);
            o += 3;
        } else {
            if (out) memcpy(out + o, s, l);
            o += l;
        }
        i += l;
    }
    return o;
}

int sigma_decoder_push(sigma_decoder *dec, sigma_token token, char *buf, size_t size,
                       size_t *len) {
    if (!dec || !len || (!buf && size)) return SIGMA_E_INVALID_ARG;
    const sigma_model *model = dec->model;
    const struct sg_tokenizer *t = model->tok;
    *len = 0;
    if (token < 0 || (uint32_t)token >= t->n_vocab)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "token %d out of range", (int)token);
    size_t n;
    const char *p = sg_tok_piece(t, (uint32_t)token, &n);
    int ty = t->type[token];
    if ((ty == SG_TOKTYPE_CONTROL || ty == SG_TOKTYPE_UNKNOWN) &&
        !(dec->flags & SIGMA_DETOK_RENDER_SPECIAL))
        n = 0;
    uint8_t tail[4];
    size_t n_tail;
    size_t need = convert(dec->held, dec->n_held, (const uint8_t *)p, n, NULL, 0, tail, &n_tail);
    *len = need;
    if (need > size)
        return sg_model_error(model, SIGMA_E_BUFFER_TOO_SMALL, "decoder needs %zu bytes", need);
    convert(dec->held, dec->n_held, (const uint8_t *)p, n, buf, 0, tail, &n_tail);
    memcpy(dec->held, tail, n_tail);
    dec->n_held = n_tail;
    return SIGMA_OK;
}

int sigma_decoder_flush(sigma_decoder *dec, char *buf, size_t size, size_t *len) {
    if (!dec || !len || (!buf && size)) return SIGMA_E_INVALID_ARG;
    uint8_t tail[4];
    size_t n_tail;
    size_t need = convert(dec->held, dec->n_held, NULL, 0, NULL, 1, tail, &n_tail);
    *len = need;
    if (need > size)
        return sg_model_error(dec->model, SIGMA_E_BUFFER_TOO_SMALL, "decoder needs %zu bytes", need);
    convert(dec->held, dec->n_held, NULL, 0, buf, 1, tail, &n_tail);
    dec->n_held = 0;
    return SIGMA_OK;
}
