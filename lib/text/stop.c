/* Stop strings: text held back while it could still be the start of a stop
 * string, released once it cannot (used by generation, lib/session). */
#include <string.h>

#include "gen.h"

void sg_stopper_init(sg_stopper *st, const sg_alloc *alloc, const char *const *stops,
                     size_t n_stops) {
    memset(st, 0, sizeof *st);
    st->alloc = alloc;
    st->stops = stops;
    st->n_stops = stops ? n_stops : 0;
}

void sg_stopper_free(sg_stopper *st) {
    sg_free(st->alloc, st->pending);
    st->pending = NULL;
    st->len = st->cap = 0;
}

static const char *mem_find(const char *h, size_t hl, const char *n, size_t nl) {
    if (nl == 0 || hl < nl) return NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nl) == 0) return h + i;
    return NULL;
}

/* Drop the prefix returned by the previous call. */
static void stopper_compact(sg_stopper *st) {
    if (st->emitted) {
        memmove(st->pending, st->pending + st->emitted, st->len - st->emitted);
        st->len -= st->emitted;
        st->emitted = 0;
    }
}

int sg_stopper_push(sg_stopper *st, const char *text, size_t len, const char **emit,
                    size_t *emit_len) {
    *emit = NULL;
    *emit_len = 0;
    if (st->stopped) return SIGMA_OK;
    if (st->n_stops == 0) { /* nothing to hold back */
        *emit = text;
        *emit_len = len;
        return SIGMA_OK;
    }
    stopper_compact(st);
    size_t need;
    if (!sg_add_size(st->len, len, &need)) return SIGMA_E_NOMEM;
    int r = sg_reserve(st->alloc, (void **)&st->pending, &st->cap, st->len, need);
    if (r != SIGMA_OK) return r;
    if (len) memcpy(st->pending + st->len, text, len);
    st->len = need;

    /* earliest complete stop string */
    size_t cut = st->len;
    for (size_t i = 0; i < st->n_stops; i++) {
        const char *s = st->stops[i];
        if (!s || !*s) continue;
        const char *f = mem_find(st->pending, st->len, s, strlen(s));
        if (f && (size_t)(f - st->pending) < cut) cut = (size_t)(f - st->pending);
    }
    if (cut < st->len) {
        st->stopped = 1;
        st->len = cut;
        st->emitted = cut;
        *emit = st->pending;
        *emit_len = cut;
        return SIGMA_OK;
    }
    /* hold back the longest suffix that is a proper prefix of a stop string */
    size_t hold = 0;
    for (size_t i = 0; i < st->n_stops; i++) {
        const char *s = st->stops[i];
        if (!s || !*s) continue;
        size_t sl = strlen(s);
        size_t maxk = sl - 1 < st->len ? sl - 1 : st->len;
        for (size_t k = maxk; k > hold; k--) {
            if (memcmp(st->pending + st->len - k, s, k) == 0) {
                hold = k;
                break;
            }
        }
    }
    size_t out = st->len - hold;
    /* never split a UTF-8 character (only possible with a stop string that
     * starts with a continuation byte) */
    while (out > 0 && out < st->len && ((unsigned char)st->pending[out] & 0xC0) == 0x80) out--;
    st->emitted = out;
    *emit = st->pending;
    *emit_len = out;
    return SIGMA_OK;
}

void sg_stopper_finish(sg_stopper *st, const char **emit, size_t *emit_len) {
    *emit = NULL;
    *emit_len = 0;
    if (st->stopped || st->n_stops == 0) return;
    stopper_compact(st);
    *emit = st->pending;
    *emit_len = st->len;
    st->emitted = st->len;
}

