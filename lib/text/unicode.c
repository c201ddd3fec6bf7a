/* UTF-8 and Unicode classes for the pre-tokenizers. */
#include "unicode.h"

#include "unicode_tables.h"

/* Bounds of the second byte of a sequence by lead byte (Unicode Table 3-7). */
static int second_ok(uint8_t lead, uint8_t b) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    return b >= 0x80 && b <= 0xBF;
}

static size_t seq_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0; /* 80..C1, F5..FF never start a character */
}

uint32_t sg_utf8_next(const uint8_t *s, size_t n, size_t *len) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    size_t need = seq_len(c);
    if (need == 0) {
        *len = 1;
        return SG_CP_INVALID;
    }
    if (n < 2 || !second_ok(c, s[1])) {
        *len = 1;
        return SG_CP_INVALID;
    }
    uint32_t cp = c & (need == 2 ? 0x1Fu : need == 3 ? 0x0Fu : 0x07u);
    cp = (cp << 6) | (s[1] & 0x3Fu);
    size_t i = 2;
    for (; i < need; i++) {
        if (i >= n || (s[i] & 0xC0) != 0x80) {
            *len = i;
            return SG_CP_INVALID;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    *len = need;
    return cp;
}

int sg_utf8_is_partial(const uint8_t *s, size_t n) {
    size_t need = seq_len(s[0]);
    if (need <= 1 || n >= need) return 0;
    if (n >= 2 && !second_ok(s[0], s[1])) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return 1;
}

size_t sg_utf8_put(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

unsigned sg_uc_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return SG_CLS_L;
        if (cp >= '0' && cp <= '9') return SG_CLS_N;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return SG_CLS_WS;
        return 0;
    }
    if (cp == SG_CP_INVALID) return 0;
    size_t lo = 0, hi = SG_UC_N_RANGES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sg_uc_ranges[mid].hi < cp) lo = mid + 1;
        else if (sg_uc_ranges[mid].lo > cp) hi = mid;
        else return sg_uc_ranges[mid].cls;
    }
    return 0;
}
