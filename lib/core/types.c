/* Tensor element types: block geometry, names, scalar half/bfloat
 * conversions and reference dequantization of the supported GGUF/ggml block
 * formats. The block layouts (all little-endian, packed):
 *
 *   Q4_0 (32): f16 d; u8 qs[16]            x = (nibble - 8) * d
 *   Q4_1 (32): f16 d, m; u8 qs[16]         x = nibble * d + m
 *   Q5_0 (32): f16 d; u8 qh[4]; u8 qs[16]  x = (nibble | hbit << 4) - 16) * d
 *   Q5_1 (32): f16 d, m; u8 qh[4]; qs[16]  x = (nibble | hbit << 4) * d + m
 *   Q8_0 (32): f16 d; i8 qs[32]            x = q * d
 *   In the 32-element formats byte j holds element j (low nibble) and
 *   element j + 16 (high nibble); bit j of qh is the 5th bit of element j.
 *
 *   Q4_K (256): f16 d, dmin; u8 scales[12]; u8 qs[128]
 *   Q5_K (256): f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
 *     8 sub-blocks of 32 with 6-bit scale and min packed in `scales`;
 *     x = d * sc * q - dmin * m. Each 32 bytes of qs hold two sub-blocks
 *     (low nibbles, then high nibbles); for Q5_K bit 2i / 2i+1 of qh[l]
 *     is the 5th bit of element l of sub-block 2i / 2i+1.
 *   Q6_K (256): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 *     16 sub-blocks of 16 with 8-bit signed scales; x = d * sc * (q - 32).
 *   Q2_K (256): u8 scales[16]; u8 qs[64]; f16 d, dmin
 *     16 sub-blocks of 16, scale (low nibble) and min (high nibble) in
 *     scales[k]; x = (d * sc) * q - dmin * m. Element 128h + 32j + l is
 *     bits 2j..2j+1 of qs[32h + l].
 *   Q3_K (256): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
 *     16 sub-blocks of 16 with 6-bit scales (sc - 32): the low 4 bits of
 *     scale k in scales[k % 8] (low nibble for k < 8, high otherwise), the
 *     top 2 in bits 2(k/4).. of scales[8 + k % 4]. Element e = 128h + 32j + l
 *     has 2 low bits as in Q2_K and q = low - (bit e/32 of hmask[l] ? 0 : 4);
 *     x = (d * (sc - 32)) * q.
 *   IQ4_NL (32): f16 d; u8 qs[16]      x = d * kv[nibble] (the Q4_0 nibble
 *     order), kv the fixed non-linear table below
 *   IQ4_XS (256): f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]
 *     8 sub-blocks of 32: 6-bit scale ls (low nibble k%2 of scales_l[k/2],
 *     bits 2k..2k+1 of scales_h on top); sub-block k's 16 bytes at 16k in
 *     the IQ4_NL nibble order; x = (d * (ls - 32)) * kv[nibble].
 *
 * The float operations and their order are those of the PyPI gguf
 * package's reference (gguf.quants), so results are bitwise equal to it
 * (tests/core/test_deq_gguf.c checks a fixture made with it).
 */
#include <string.h>

#include "tensor.h"

/* ------------------------------------------------------------------------ */
/* Half and bfloat                                                          */
/* ------------------------------------------------------------------------ */

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

uint16_t sg_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) {
        if (x == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);
        /* NaN: keep the top payload bits, force quiet */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    }
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                                  /* below 2^-14: subnormal */
        if (x <= 0x33000000u) return sign;                   /* <= 2^-25 rounds to 0 */
        uint32_t e = x >> 23;
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        uint32_t s = 126u - e;                               /* 14..24 */
        uint32_t r = m >> s;
        uint32_t rem = m & ((1u << s) - 1u);
        uint32_t half = 1u << (s - 1u);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t h = (x - 0x38000000u) >> 13;
    uint32_t rem = x & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}


uint16_t sg_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

/* ------------------------------------------------------------------------ */
/* Type table                                                               */
/* ------------------------------------------------------------------------ */

typedef struct type_desc {
    const char *name;
    uint32_t block_elems, block_bytes; /* 0: known to GGUF but not supported */
} type_desc;

static const type_desc k_types[] = {
    [0] = {"F32", 1, 4},      [1] = {"F16", 1, 2},      [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},   [6] = {"Q5_0", 32, 22},   [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},   [9] = {"Q8_1", 0, 0},     [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110},    [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210}, [15] = {"Q8_K", 0, 0},   [16] = {"IQ2_XXS", 0, 0},
    [17] = {"IQ2_XS", 0, 0},  [18] = {"IQ3_XXS", 0, 0}, [19] = {"IQ1_S", 0, 0},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 0, 0},   [22] = {"IQ2_S", 0, 0},
    [23] = {"IQ4_XS", 256, 136},  [24] = {"I8", 0, 0},      [25] = {"I16", 0, 0},
    [26] = {"I32", 0, 0},     [27] = {"I64", 0, 0},     [28] = {"F64", 0, 0},
    [29] = {"IQ1_M", 0, 0},   [30] = {"BF16", 1, 2},    [34] = {"TQ1_0", 0, 0},
    [35] = {"TQ2_0", 0, 0},   [39] = {"MXFP4", 0, 0},
};

int sg_type_info(uint32_t type, uint32_t *block_elems, uint32_t *block_bytes) {
    if (type >= sizeof k_types / sizeof k_types[0] || k_types[type].block_elems == 0) return 0;
    if (block_elems) *block_elems = k_types[type].block_elems;
    if (block_bytes) *block_bytes = k_types[type].block_bytes;
    return 1;
}

const char *sg_type_name(uint32_t type) {
    if (type >= sizeof k_types / sizeof k_types[0] || !k_types[type].name) return "?";
    return k_types[type].name;
}

size_t sg_type_row_bytes(uint32_t type, uint64_t n) {
    uint32_t be, bb;
    if (!sg_type_info(type, &be, &bb) || n % be != 0) return 0;
    uint64_t r;
    if (!__builtin_mul_overflow(n / be, (uint64_t)bb, &r) && r <= SIZE_MAX) return (size_t)r;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Dequantization                                                           */
/* ------------------------------------------------------------------------ */

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline float rdh(const uint8_t *p) { return sg_f16_to_f32(rd16(p)); }

/* The j-th 6-bit (scale, min) pair of a K-quant super-block. */
static inline void k_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63u;
        *mn = s[j + 4] & 63u;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0fu) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = rdh(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((int)(qs[j] & 0x0f) - 8) * d;
        y[j + 16] = (float)((int)(qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    float d = rdh(b), m = rdh(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0f) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y) {
    float d = rdh(b);
    uint32_t qh = rd32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (int)((qs[j] & 0x0fu) | (((qh >> j) & 1u) << 4));
        int hi = (int)((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
        y[j] = (float)(lo - 16) * d;
        y[j + 16] = (float)(hi - 16) * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y) {
    float d = rdh(b), m = rdh(b + 2);
    uint32_t qh = rd32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        uint32_t lo = (qs[j] & 0x0fu) | (((qh >> j) & 1u) << 4);
        uint32_t hi = (qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4);
        y[j] = (float)lo * d + m;
        y[j + 16] = (float)hi * d + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    float d = rdh(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
}

static void deq_q4_k(const uint8_t *b, float *y) {
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *sc = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t s1, m1, s2, m2;
        k_scale_min(sc, 2 * c, &s1, &m1);
        k_scale_min(sc, 2 * c + 1, &s2, &m2);
        float d1 = d * s1, n1 = dmin * m1, d2 = d * s2, n2 = dmin * m2;
        for (int l = 0; l < 32; l++) {
            y[l] = d1 * (float)(q[l] & 0x0f) - n1;
            y[l + 32] = d2 * (float)(q[l] >> 4) - n2;
        }
        q += 32;
        y += 64;
    }
}

static void deq_q5_k(const uint8_t *b, float *y) {
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *ql = b + 48;
    for (int c = 0; c < 4; c++) {
        uint8_t s1, m1, s2, m2;
        k_scale_min(sc, 2 * c, &s1, &m1);
        k_scale_min(sc, 2 * c + 1, &s2, &m2);
        float d1 = d * s1, n1 = dmin * m1, d2 = d * s2, n2 = dmin * m2;
        uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
        for (int l = 0; l < 32; l++) {
            y[l] = d1 * (float)((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - n1;
            y[l + 32] = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - n2;
        }
        ql += 32;
        y += 64;
    }
}

static void deq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0x0f) | ((qh[l] & 3u) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3u) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3u) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3u) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

static void deq_q2_k(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    float d = rdh(b + 80), dmin = rdh(b + 82);
    for (int e = 0; e < 256; e++) {
        int k = e / 16, h = e / 128, j = (e % 128) / 32, l = e % 32;
        float dl = d * (float)(sc[k] & 0x0f), ml = dmin * (float)(sc[k] >> 4);
        float t = dl * (float)((qs[32 * h + l] >> (2 * j)) & 3); /* no fused multiply-add */
        y[e] = t - ml;
    }
}

/* Scale k (0..15) of a Q3_K super-block, 0..63 (the stored value; the
 * weight is sc - 32). */
static inline int q3k_scale(const uint8_t *s, int k) {
    int lo = k < 8 ? s[k] & 0x0f : s[k - 8] >> 4;
    int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return lo | (hi << 4);
}

static void deq_q3_k(const uint8_t *b, float *y) {
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = rdh(b + 108);
    for (int e = 0; e < 256; e++) {
        int k = e / 16, h = e / 128, j = (e % 128) / 32, l = e % 32;
        float dl = d * (float)(q3k_scale(sc, k) - 32);
        int q = ((qs[32 * h + l] >> (2 * j)) & 3) - (((hm[l] >> (e / 32)) & 1) ? 0 : 4);
        y[e] = dl * (float)q;
    }
}

static const int8_t k_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                   1,    13,   25,  38,  53,  69,  89,  113};

static void deq_iq4_nl(const uint8_t *b, float *y) {
    float d = rdh(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)k_iq4nl[qs[j] & 0x0f];
        y[j + 16] = d * (float)k_iq4nl[qs[j] >> 4];
    }
}

static void deq_iq4_xs(const uint8_t *b, float *y) {
    float d = rdh(b);
    unsigned sh = rd16(b + 2);
    const uint8_t *sl = b + 4, *qs = b + 8;
    for (int k = 0; k < 8; k++, qs += 16, y += 32) {
        int ls = ((sl[k / 2] >> (4 * (k % 2))) & 0x0f) | (int)(((sh >> (2 * k)) & 3u) << 4);
        float dl = d * (float)(ls - 32);
        for (int j = 0; j < 16; j++) {
            y[j] = dl * (float)k_iq4nl[qs[j] & 0x0f];
            y[j + 16] = dl * (float)k_iq4nl[qs[j] >> 4];
        }
    }
}

int sg_dequantize_row(uint32_t type, const void *src, float *dst, uint64_t n) {
    uint32_t be, bb;
    if (!sg_type_info(type, &be, &bb) || n % be != 0) return -1;
    const uint8_t *p = src;
    uint64_t nb = n / be;
    void (*fn)(const uint8_t *, float *) = NULL;
    switch (type) {
    case SG_TYPE_F32:
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    case SG_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) dst[i] = sg_f16_to_f32(rd16(p + 2 * i));
        return 0;
    case SG_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) dst[i] = sg_bf16_to_f32(rd16(p + 2 * i));
        return 0;
    case SG_TYPE_Q4_0: fn = deq_q4_0; break;
    case SG_TYPE_Q4_1: fn = deq_q4_1; break;
    case SG_TYPE_Q5_0: fn = deq_q5_0; break;
    case SG_TYPE_Q5_1: fn = deq_q5_1; break;
    case SG_TYPE_Q8_0: fn = deq_q8_0; break;
    case SG_TYPE_Q4_K: fn = deq_q4_k; break;
    case SG_TYPE_Q5_K: fn = deq_q5_k; break;
    case SG_TYPE_Q6_K: fn = deq_q6_k; break;
    case SG_TYPE_Q2_K: fn = deq_q2_k; break;
    case SG_TYPE_Q3_K: fn = deq_q3_k; break;
    case SG_TYPE_IQ4_NL: fn = deq_iq4_nl; break;
    case SG_TYPE_IQ4_XS: fn = deq_iq4_xs; break;
    default: return -1;
    }
    for (uint64_t i = 0; i < nb; i++) fn(p + i * bb, dst + i * be);
    return 0;
}
