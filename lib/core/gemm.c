/* Matrix products for the forward pass: y[j][i] = w_row(i) . a_row(j).
 *
 * Quantized weights (Q4_0, Q4_1, Q8_0, IQ4_NL) are multiplied with activations
 * quantized to 8 bits once per matmul (sg_q8_quantize: per block of 32
 * values a float scale d = max|x|/127, int8 q = round(x/d), and s = d*sum q).
 * Each block's product is an exact integer dot; only the float accumulation
 * of the blocks differs between the kernels. Float weights (F32, F16, BF16)
 * are converted in registers.
 *
 * Every kernel computes each output element with the same sequence of
 * operations whatever the tile it falls in, so the split of the rows among
 * threads never changes results. The SIMD variants block RW weight rows x
 * RA activation rows in registers (each weight block is expanded once per
 * RA activation rows, each activation block loaded once per RW rows). */
#include <math.h>
#include <string.h>

#include "core.h"

/* clang's UBSan check for pointer-arithmetic overflow, on this file's
 * inlined tiles, took the fuzz build (ASan + UBSan + libFuzzer) over 13
 * minutes of compiling this one file (without it: under a minute). The
 * offsets here come from tensor shapes the loader has validated; gcc's
 * UBSan build (the CI's asan stage) keeps the check on this file. */
#if defined(__clang__)
#  pragma clang attribute push(__attribute__((no_sanitize("pointer-overflow"))), apply_to = function)
#  define SG_GEMM_NO_PTR_CHECK 1
#endif

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SG_FORCE_GENERIC)
#  define SG_GEMM_X86 1
#  include <immintrin.h>
#else
#  define SG_GEMM_X86 0
#endif

/* ---- activation rows ----------------------------------------------------- */

/* One row of n values (nb = n/32 blocks) is stored in groups of 4 blocks,
 * QG bytes each (blocks past nb are zero):
 *   int8  lo[64]    values 0..15 of each of the 4 blocks
 *   int8  hi[64]    values 16..31 of each block
 *   float d[16]     lanes 4k..4k+3: scale of block k
 *   float s[16]     lane 4k: d * sum(q) of block k, other lanes 0
 *   int32 c8[16]    lane 4k: -8 * sum(q), other lanes 0 (Q4_0 offset)
 *   int32 c128[16]  lane 4k: -128 * sum(q) (Q8_0 weights read as w + 128)
 * so that the integer dot of 4 blocks is two dpbusd with 4 lanes a block. */
#define QG 384
static inline size_t q8_groups(size_t n) { return (n / 32 + 3) / 4; }

size_t sg_q8_row_bytes(size_t n) {
    if (n == 0 || n % 32) return 0;
    return q8_groups(n) * QG;
}

size_t sg_gemm_work_bytes(size_t n) {
    /* 4 weight rows of groups of up to 256 bytes (gemm_tiles_512), or the
     * AMX tiles' expanded blocks (up to 640 bytes each), aligned */
    size_t rows4 = 4 * ((n / 32 + 3) / 4) * 256, amx = (n / 32) * 640;
    return 64 + (rows4 > amx ? rows4 : amx);
}

int sg_type_q8_act(uint32_t type) {
    return type == SG_TYPE_Q4_0 || type == SG_TYPE_Q4_1 || type == SG_TYPE_Q8_0 ||
           type == SG_TYPE_IQ4_NL;
}

#if SG_GEMM_X86
/* bytes of one block of a type that takes sg_q8 activation rows */
static inline size_t q8_bs(uint32_t type) {
    return type == SG_TYPE_Q4_0 || type == SG_TYPE_IQ4_NL ? 18 : type == SG_TYPE_Q4_1 ? 20 : 34;
}
#endif

/* The IQ4_NL / IQ4_XS non-linear values of the 16 nibbles. */
static const int8_t k_iq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                 1,    13,   25,  38,  53,  69,  89,  113};
/* the same + 128 (unsigned bytes for vpdpbusd, corrected by -128 * sum x) */
#if SG_GEMM_X86
static const uint8_t k_iq4u[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
#endif

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Store block b's scale and sums (its values are already in place). */
static inline void q8_put_meta(uint8_t *row, size_t b, float d, int isum) {
    uint8_t *g = row + (b / 4) * QG;
    int k = (int)(b % 4);
    float s = d * (float)isum;
    int32_t c8 = -8 * isum, c128 = -128 * isum;
    for (int l = 0; l < 4; l++) memcpy(g + 128 + 4 * (4 * k + l), &d, 4);
    memcpy(g + 192 + 16 * k, &s, 4);
    memcpy(g + 256 + 16 * k, &c8, 4);
    memcpy(g + 320 + 16 * k, &c128, 4);
}

static inline int8_t *q8_lo(uint8_t *row, size_t b) { return (int8_t *)(row + (b / 4) * QG + (b % 4) * 16); }
static inline int8_t *q8_hi(uint8_t *row, size_t b) { return (int8_t *)(row + (b / 4) * QG + 64 + (b % 4) * 16); }

void sg_q8_quantize_generic(const float *x, size_t n, uint8_t *dst) {
    size_t nb = n / 32;
    memset(dst, 0, q8_groups(n) * QG);
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float a = fabsf(xb[j]);
            amax = a > amax ? a : amax;
        }
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        int8_t *lo = q8_lo(dst, b), *hi = q8_hi(dst, b);
        for (int j = 0; j < 32; j++) {
            int v = (int)nearbyintf(xb[j] * id);
            if (j < 16) lo[j] = (int8_t)v;
            else hi[j - 16] = (int8_t)v;
            sum += v;
        }
        q8_put_meta(dst, b, amax / 127.0f, sum);
    }
}

/* ---- K-quant activation rows ---------------------------------------------- */

/* K-quant weights (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and IQ4_XS take activation
 * rows quantized per super-block of 256 values (QKB bytes each):
 *   float d         max|x|/127 (bytes 4..31 zero)
 *   int16 bs[16]    at 32: sum of q over each 16 values
 *   int8  q[256]    at 64: round(x / d)
 * Each weight sub-block's product with q is an exact integer; the scales
 * and minimums of the super-block are applied in integers too (the sums
 * bs give the Q2_K/Q4_K/Q5_K minimums, Q6_K's -32 and Q3_K's -4; IQ4_XS
 * values are its table's signed bytes), so a super-block's result
 * is two integers and kernels differ only in float summation order. */
#define QKB 320

size_t sg_q8k_row_bytes(size_t n) {
    if (n == 0 || n % 256) return 0;
    return n / 256 * QKB;
}

int sg_type_q8k_act(uint32_t type) {
    return type == SG_TYPE_Q4_K || type == SG_TYPE_Q5_K || type == SG_TYPE_Q6_K ||
           type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K || type == SG_TYPE_IQ4_XS;
}

#if SG_GEMM_X86
/* Bytes of a super-block of a type that takes K activation rows. */
static inline size_t k_bytes(uint32_t type) {
    switch (type) {
    case SG_TYPE_Q4_K: return 144;
    case SG_TYPE_Q5_K: return 176;
    case SG_TYPE_Q2_K: return 84;
    case SG_TYPE_Q3_K: return 110;
    case SG_TYPE_IQ4_XS: return 136;
    default: return 210;
    }
}
#endif

/* The 16 stored 6-bit scales (0..63; the weight is s - 32) of a Q3_K
 * super-block, from its 12 scale bytes: low nibbles of bytes 0..7 are
 * scales 0..7, high nibbles 8..15; the top 2 bits of scale k are bits
 * 2(k/4).. of byte 8 + k%4. */
static inline void q3k_scales16(const uint8_t *s, uint8_t out[16]) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    uint32_t v[4] = {(a & 0x0f0f0f0fu) | ((c & 0x03030303u) << 4),
                     (b & 0x0f0f0f0fu) | (((c >> 2) & 0x03030303u) << 4),
                     ((a >> 4) & 0x0f0f0f0fu) | (((c >> 4) & 0x03030303u) << 4),
                     ((b >> 4) & 0x0f0f0f0fu) | (((c >> 6) & 0x03030303u) << 4)};
    memcpy(out, v, 16);
}

/* The 8 stored 6-bit scales (0..63; the weight is s - 32) of an IQ4_XS
 * super-block (scales_h at b + 2, scales_l at b + 4). */
static inline void iq4xs_scales8(const uint8_t *b, uint8_t out[8]) {
    unsigned sh = (unsigned)(b[2] | (b[3] << 8));
    for (int k = 0; k < 8; k++)
        out[k] = (uint8_t)(((b[4 + k / 2] >> (4 * (k % 2))) & 0x0f) | (((sh >> (2 * k)) & 3u) << 4));
}

/* The same 8 scales as the bytes of one integer (scale k in byte k, on a
 * little-endian x86), spread in general registers: the byte loop above went
 * through memory, and its 8 one-byte stores read back as one 8-byte load
 * cannot be forwarded (a stall per super-block in the IQ4_XS tiles). */
static inline uint64_t iq4xs_scales64(const uint8_t *b) {
    uint64_t lo = (uint64_t)b[4] | (uint64_t)b[5] << 8 | (uint64_t)b[6] << 16 | (uint64_t)b[7] << 24;
    lo = (lo | lo << 16) & 0x0000ffff0000ffffull; /* 2 bytes to each 32-bit half */
    lo = (lo | lo << 8) & 0x00ff00ff00ff00ffull;  /* a byte to each 16-bit quarter */
    lo = (lo | lo << 4) & 0x0f0f0f0f0f0f0f0full;  /* low nibble, then high, a byte each */
    uint64_t hi = (uint64_t)b[2] | (uint64_t)b[3] << 8;
    hi = (hi | hi << 24) & 0x000000ff000000ffull; /* a byte to each 32-bit half */
    hi = (hi | hi << 12) & 0x000f000f000f000full; /* 4 bits to each 16-bit quarter */
    hi = (hi | hi << 6) & 0x0303030303030303ull;  /* 2 bits to each byte */
    return lo | hi << 4;
}

void sg_q8k_quantize_generic(const float *x, size_t n, uint8_t *dst) {
    for (size_t sb = 0; sb < n / 256; sb++, x += 256, dst += QKB) {
        float amax = 0.0f;
        for (int j = 0; j < 256; j++) {
            float a = fabsf(x[j]);
            amax = a > amax ? a : amax;
        }
        float id = amax > 0.0f ? 127.0f / amax : 0.0f, d = amax / 127.0f;
        memset(dst, 0, 64);
        memcpy(dst, &d, 4);
        int8_t *q = (int8_t *)(dst + 64);
        int16_t bs[16];
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int l = 0; l < 16; l++) {
                int v = (int)nearbyintf(x[16 * k + l] * id);
                q[16 * k + l] = (int8_t)v;
                s += v;
            }
            bs[k] = (int16_t)s;
        }
        memcpy(dst + 32, bs, sizeof bs);
    }
}

/* The 6-bit scale and minimum of sub-block j of a Q4_K/Q5_K super-block. */
static inline void k_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Portable reference: one weight row . one activation row of nsb
 * super-blocks. */
static float dot_k_generic(uint32_t type, const uint8_t *w, const uint8_t *a, size_t nsb) {
    float acc = 0.0f;
    for (size_t sb = 0; sb < nsb; sb++, a += QKB) {
        float dx;
        memcpy(&dx, a, 4);
        int16_t bs[16];
        memcpy(bs, a + 32, sizeof bs);
        const int8_t *x = (const int8_t *)(a + 64);
        if (type == SG_TYPE_Q6_K) {
            const uint8_t *ql = w, *qh = w + 128;
            const int8_t *sc = (const int8_t *)(w + 192);
            int32_t isum = 0;
            for (int k = 0; k < 16; k++) {
                int s = 0;
                for (int l = 0; l < 16; l++) {
                    int v = 16 * k + l, h = v / 128, r = v % 128, part = r / 32, li = r % 32;
                    int lo = part & 1 ? ql[64 * h + 32 + li] : ql[64 * h + li];
                    int q = (part < 2 ? lo & 15 : lo >> 4) | (((qh[32 * h + li] >> (2 * part)) & 3) << 4);
                    s += q * x[v];
                }
                isum += sc[k] * (s - 32 * bs[k]);
            }
            acc += (sg_f16_to_f32(rd16(w + 208)) * dx) * (float)isum;
            w += 210;
            continue;
        }
        if (type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K) {
            /* element 128h + 32j + l: bits 2j.. of qs[32h + l]; Q3_K's
             * third bit (bit 4h + j of hmask[l]) makes q 0..7, the -4
             * comes from the activation sums */
            const int three = type == SG_TYPE_Q3_K;
            const uint8_t *qs = w + (three ? 32 : 16);
            uint8_t s3[16];
            if (three) q3k_scales16(w + 96, s3);
            int32_t isum = 0, imin = 0;
            for (int k = 0; k < 16; k++) {
                int s = 0;
                for (int l = 0; l < 16; l++) {
                    int v = 16 * k + l, h = v / 128, j = (v % 128) / 32, li = v % 32;
                    int q = (qs[32 * h + li] >> (2 * j)) & 3;
                    if (three) q |= ((w[li] >> (v / 32)) & 1) << 2;
                    s += q * x[v];
                }
                if (three) {
                    isum += (s3[k] - 32) * (s - 4 * bs[k]);
                } else {
                    isum += (w[k] & 15) * s;
                    imin += (w[k] >> 4) * bs[k];
                }
            }
            if (three) {
                acc += (sg_f16_to_f32(rd16(w + 108)) * dx) * (float)isum;
                w += 110;
            } else {
                acc += (sg_f16_to_f32(rd16(w + 80)) * dx) * (float)isum;
                acc -= (sg_f16_to_f32(rd16(w + 82)) * dx) * (float)imin;
                w += 84;
            }
            continue;
        }
        if (type == SG_TYPE_IQ4_XS) {
            uint8_t ls[8];
            iq4xs_scales8(w, ls);
            const uint8_t *qs = w + 8;
            int32_t isum = 0;
            for (int k = 0; k < 8; k++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += k_iq4[qs[16 * k + l] & 15] * x[32 * k + l] + k_iq4[qs[16 * k + l] >> 4] * x[32 * k + 16 + l];
                isum += (ls[k] - 32) * s;
            }
            acc += (sg_f16_to_f32(rd16(w)) * dx) * (float)isum;
            w += 136;
            continue;
        }
        const int q5 = type == SG_TYPE_Q5_K;
        const uint8_t *qs = w + (q5 ? 48 : 16), *qh = w + 16;
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            int sc, mn;
            k_scale_min(w + 4, j, &sc, &mn);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int b = qs[32 * (j / 2) + l];
                int q = j & 1 ? b >> 4 : b & 15;
                if (q5) q |= ((qh[l] >> j) & 1) << 4;
                s += q * x[32 * j + l];
            }
            isum += sc * s;
            imin += mn * (bs[2 * j] + bs[2 * j + 1]);
        }
        acc += (sg_f16_to_f32(rd16(w)) * dx) * (float)isum;
        acc -= (sg_f16_to_f32(rd16(w + 2)) * dx) * (float)imin;
        w += q5 ? 176 : 144;
    }
    return acc;
}

/* ---- portable kernels ------------------------------------------------------ */

static float dot_q8_generic(uint32_t type, const uint8_t *w, const uint8_t *a, size_t nb) {
    float acc = 0.0f;
    for (size_t b = 0; b < nb; b++) {
        const uint8_t *g = a + (b / 4) * QG;
        const int8_t *lo = (const int8_t *)(g + (b % 4) * 16), *hi = (const int8_t *)(g + 64 + (b % 4) * 16);
        float da, sa;
        memcpy(&da, g + 128 + 16 * (b % 4), 4);
        memcpy(&sa, g + 192 + 16 * (b % 4), 4);
        int s = 0;
        switch (type) {
        case SG_TYPE_Q4_0: {
            const uint8_t *q = w + 2;
            for (int j = 0; j < 16; j++) s += ((q[j] & 15) - 8) * lo[j] + ((q[j] >> 4) - 8) * hi[j];
            acc += (float)s * (sg_f16_to_f32(rd16(w)) * da);
            w += 18;
            break;
        }
        case SG_TYPE_Q4_1: {
            const uint8_t *q = w + 4;
            for (int j = 0; j < 16; j++) s += (q[j] & 15) * lo[j] + (q[j] >> 4) * hi[j];
            acc += (float)s * (sg_f16_to_f32(rd16(w)) * da) + sg_f16_to_f32(rd16(w + 2)) * sa;
            w += 20;
            break;
        }
        case SG_TYPE_IQ4_NL: {
            const uint8_t *q = w + 2;
            for (int j = 0; j < 16; j++) s += k_iq4[q[j] & 15] * lo[j] + k_iq4[q[j] >> 4] * hi[j];
            acc += (float)s * (sg_f16_to_f32(rd16(w)) * da);
            w += 18;
            break;
        }
        default: { /* Q8_0 */
            const int8_t *q = (const int8_t *)(w + 2);
            for (int j = 0; j < 16; j++) s += q[j] * lo[j] + q[j + 16] * hi[j];
            acc += (float)s * (sg_f16_to_f32(rd16(w)) * da);
            w += 34;
            break;
        }
        }
    }
    return acc;
}

static inline float wval(uint32_t type, const uint8_t *w, size_t i) {
    switch (type) {
    case SG_TYPE_F16: return sg_f16_to_f32(rd16(w + 2 * i));
    case SG_TYPE_BF16: return sg_bf16_to_f32(rd16(w + 2 * i));
    default: {
        float f;
        memcpy(&f, w + 4 * i, 4);
        return f;
    }
    }
}

static float dot_f_generic(uint32_t type, const uint8_t *w, const float *x, size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += wval(type, w, i + j) * x[i + j];
    float t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) t += wval(type, w, i) * x[i];
    return t;
}

/* ---- Weights repacked in groups of 8 rows ("x8") -------------------------
 * Rows 8G..8G+7 of a matrix become one group of 8 * row_bytes bytes (the
 * same size), block by block; per block b (32 values of every row):
 *   Q4_0, 144 bytes at b * 144:
 *     uint16 d[8]       the f16 scale of row r at 2r
 *     uint8  q[4][32]   chunk c, bytes 4r..4r+3: row r's quant bytes 4c..4c+3
 *                       (low nibbles values 4c..4c+3, high ones 16+4c..)
 *   Q4_1, 160 bytes at b * 160: Q4_0's 144 bytes, then
 *     uint16 m[8]       the f16 minimum of row r at 144 + 2r
 *   Q8_0, 272 bytes at b * 272:
 *     uint16 d[8]       as above
 *     int8   q[8][32]   chunk c, bytes 4r..4r+3: row r's values 4c..4c+3
 * so one 256-bit load holds 4 bytes of each of the 8 rows and an 8-lane
 * accumulator holds one row per lane (no horizontal sums). */
int sg_type_x8(uint32_t type) {
    return type == SG_TYPE_Q4_0 || type == SG_TYPE_Q4_1 || type == SG_TYPE_Q8_0;
}

/* the shapes the x8 tiles take: a packed type, whole blocks, whole groups of
 * 8 rows, and w_stride the unpacked row's bytes (the packed group's stride
 * is 8 of them) */
static inline int x8_shape_ok(const sg_gemm *g) {
    return sg_type_x8(g->type) && g->n != 0 && g->n % 32 == 0 && g->nr % 8 == 0 &&
           g->w_stride == sg_kernel_row_bytes(g->type, g->n);
}

int sg_pack_x8(uint32_t type, const uint8_t *src, size_t rows, size_t row_bytes, uint8_t *dst) {
    const size_t bs = type == SG_TYPE_Q4_0 ? 18 : type == SG_TYPE_Q4_1 ? 20 : type == SG_TYPE_Q8_0 ? 34 : 0;
    if (bs == 0 || rows % 8 || row_bytes == 0 || row_bytes % bs) return -1;
    const size_t qo = type == SG_TYPE_Q4_1 ? 4 : 2, nb = row_bytes / bs, nc = (bs - qo) / 4;
    for (size_t G = 0; G < rows / 8; G++) {
        const uint8_t *s = src + G * 8 * row_bytes;
        uint8_t *d = dst + G * 8 * row_bytes;
        for (size_t b = 0; b < nb; b++, d += 8 * bs)
            for (size_t r = 0; r < 8; r++) {
                const uint8_t *blk = s + r * row_bytes + b * bs;
                memcpy(d + 2 * r, blk, 2);
                if (type == SG_TYPE_Q4_1) memcpy(d + 144 + 2 * r, blk + 2, 2);
                for (size_t c = 0; c < nc; c++) memcpy(d + 16 + 32 * c + 4 * r, blk + qo + 4 * c, 4);
            }
    }
    return 0;
}

int sg_gemm_generic(const sg_gemm *g) {
    if (g->n == 0) return -1;
    if (sg_type_q8k_act(g->type)) {
        if (g->n % 256) return -1;
        for (size_t j = 0; j < g->na; j++)
            for (size_t i = 0; i < g->nr; i++)
                g->y[j * g->ldy + i] = dot_k_generic(g->type, g->w + i * g->w_stride,
                                                     (const uint8_t *)g->a + j * g->a_stride, g->n / 256);
        return 0;
    }
    if (sg_type_q8_act(g->type)) {
        if (g->n % 32) return -1;
        size_t nb = g->n / 32;
        for (size_t j = 0; j < g->na; j++)
            for (size_t i = 0; i < g->nr; i++)
                g->y[j * g->ldy + i] = dot_q8_generic(g->type, g->w + i * g->w_stride,
                                                      (const uint8_t *)g->a + j * g->a_stride, nb);
        return 0;
    }
    if (g->type != SG_TYPE_F32 && g->type != SG_TYPE_F16 && g->type != SG_TYPE_BF16) return -1;
    for (size_t j = 0; j < g->na; j++) {
        const float *x = (const float *)(const void *)((const uint8_t *)g->a + j * g->a_stride);
        for (size_t i = 0; i < g->nr; i++)
            g->y[j * g->ldy + i] = dot_f_generic(g->type, g->w + i * g->w_stride, x, g->n);
    }
    return 0;
}

#if SG_GEMM_X86
/* ---- AVX2 (+FMA, F16C) -------------------------------------------------------- */
#  define SG_T_AVX2 __attribute__((target("avx2,fma,f16c")))
#  define SG_INLINE static inline __attribute__((always_inline))
/* the register tiles' loops must be unrolled (arrays of vectors in registers) */
#  ifdef __clang__ /* clang's full unroll: the tiles' trip counts are constants once inlined */
#    define SG_UNROLL4 _Pragma("unroll")
#    define SG_UNROLL8 _Pragma("unroll")
#  else
#    define SG_UNROLL4 _Pragma("GCC unroll 4")
#    define SG_UNROLL8 _Pragma("GCC unroll 8")
#  endif
/* activation rows per pass of the AVX-512 Q4_0 x8/x16 tiles (4 or 8) */
#  ifndef SG_X8_RA
#    define SG_X8_RA 8
#  endif

SG_T_AVX2 void sg_q8_quantize_avx2(const float *x, size_t n, uint8_t *dst) {
    size_t nb = n / 32;
    memset(dst, 0, q8_groups(n) * QG);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
        __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, vid));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, vid));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, vid));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, vid));
        __m256i sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        /* pack to int8 in element order */
        __m256i p01 = _mm256_packs_epi32(i0, i1);
        __m256i p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm_storeu_si128((__m128i *)(void *)q8_lo(dst, b), _mm256_castsi256_si128(p));
        _mm_storeu_si128((__m128i *)(void *)q8_hi(dst, b), _mm256_extracti128_si256(p, 1));
        q8_put_meta(dst, b, amax / 127.0f, _mm_cvtsi128_si32(s4));
    }
}

/* Decode (one activation row): weight rows per tile in every tile family
 * (AVX2 and AVX-512; q8, K-quant and float tiles). One, so each thread reads
 * one weight stream: AMD EPYC Zen 4 (32 KiB L1d), 2 threads, 1.1B models,
 * 2026-12-05/06, alternating runs, 4 -> 1 rows: AVX2 Q8_0 18.6 -> 26.3 t/s,
 * Q4_K_M 20.7 -> 36.4 (AVX-512 25.1 -> 37.0), Q6_K 16.8 -> 28.2 (17.3 ->
 * 28.8), AVX-512 Q8_0 +13%, F16 +28% (AVX2 +23%). The arithmetic per (weight
 * row, activation row) is the same at any rows per tile, so this changes
 * speed only. Batches keep their multi-row tiles (each family's own); at
 * most 2 (the AVX2 tiles' largest row count). */
#  ifndef SG_DECODE_RW
#    define SG_DECODE_RW 1
#  endif
/* cache level the quantized tiles' weight streams are prefetched into (the
 * float tiles: SG_PFF_HINT) */
#  ifndef SG_PFW_HINT
#    define SG_PFW_HINT _MM_HINT_T0
#  endif
/* prefetch distance of the AVX2 streams (bytes ahead on each weight row) */
#  ifndef SG_PF_DIST
#    define SG_PF_DIST(RW, ws, bs) ((bs) > 32 ? (size_t)32768 : (size_t)4096)
#  endif
/* the K-quant and IQ4_XS tiles' distance (AVX2 and AVX-512) */
#  ifndef SG_PFK_DIST
#    define SG_PFK_DIST 16384
#  endif
/* The 4 f16 scales at blk + k*bs + off (k < nbk; zero for the others) as
 * floats. */
SG_INLINE SG_T_AVX2 __m128 scales4_avx2(const uint8_t *blk, size_t bs, size_t off, const int nbk) {
    /* packed in a general register, then one move: no store-forwarding
     * stall and no chain of word inserts */
    uint64_t hv = 0;
    for (int k = 0; k < 4; k++)
        if (k < nbk) hv |= (uint64_t)rd16(blk + (size_t)k * bs + off) << (16 * k);
    return _mm_cvtph_ps(_mm_cvtsi64_si128((long long)hv));
}

/* Blocks b0 and b1 (b1 may be absent: zero) of a weight row unpacked into
 * the activation layout: *lo = values 0..15 of b0 | of b1, *hi = 16..31;
 * 4-bit types as unsigned nibbles, Q8_0 as signed bytes. */
SG_INLINE SG_T_AVX2 void pair_w_avx2(uint32_t type, const uint8_t *b0, const uint8_t *b1,
                                     __m256i *lo, __m256i *hi) {
    if (type == SG_TYPE_Q8_0) {
        __m128i l1 = b1 ? _mm_loadu_si128((const __m128i *)(const void *)(b1 + 2)) : _mm_setzero_si128();
        __m128i h1 = b1 ? _mm_loadu_si128((const __m128i *)(const void *)(b1 + 18)) : _mm_setzero_si128();
        *lo = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(b0 + 2))), l1, 1);
        *hi = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(b0 + 18))), h1, 1);
        return;
    }
    const size_t off = type == SG_TYPE_Q4_1 ? 4 : 2;
    __m128i q1 = b1 ? _mm_loadu_si128((const __m128i *)(const void *)(b1 + off)) : _mm_setzero_si128();
    __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(b0 + off))), q1, 1);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    *lo = _mm256_and_si256(v, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (type == SG_TYPE_IQ4_NL) { /* nibbles to their signed values */
        const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)k_iq4));
        *lo = _mm256_shuffle_epi8(tbl, *lo);
        *hi = _mm256_shuffle_epi8(tbl, *hi);
    }
}

/* One tile of RW weight rows x RA activation rows. Per step a pair of
 * blocks: a 256-bit load at the activation group's lo/hi gives values
 * 0..15 / 16..31 of two blocks (one per 128-bit lane), the two weight blocks
 * are unpacked side by side, and vpmaddubsw + vpmaddwd leave 4 exact int32
 * partial sums per block (Q4_0's -8 added from the activation's c8 lanes,
 * Q8_0 through the sign trick); then one convert and one fma per pair with
 * [dw0 x4, dw1 x4] * [dx0 x4, dx1 x4] (Q4_1: and one fma for the minimums).
 * The 4 weight scales of a group come from one vcvtph2ps. */
SG_INLINE SG_T_AVX2 void tile_q8_avx2(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                      const uint8_t *a, size_t as, const int RA, size_t nb,
                                      float *y, size_t ldy) {
    __m256 acc[4][4];
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) acc[i][j] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i pidx0 = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m256i pidx1 = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
    const size_t bs = q8_bs(type);
    const size_t ng = (nb + 3) / 4, nfull = nb / 4;
    for (size_t gi = 0; gi < ng; gi++) {
        const int nbk = gi < nfull ? 4 : (int)(nb - gi * 4);
        __m256 dws[4][2], mws[4][2];
        SG_UNROLL4 for (int i = 0; i < RW; i++) {
            const uint8_t *blk = w + (size_t)i * ws + gi * 4 * bs;
            __m128 d4, m4 = _mm_setzero_ps();
            if (nbk == 4) {
#  ifndef SG_GEMM_NO_PREFETCH
                /* decode streams 4 short rows at once: ask for each 4 KiB
                 * ahead (past its end: the rows that follow), which keeps
                 * enough lines in flight (tried on a loaded 2-vCPU EPYC:
                 * 0.5-2 KiB and 6-8 KiB or "the same place in the next
                 * tile" were slower); Q8_0's 34-byte blocks: 32 KiB
                 * (SG_PF_DIST, measured later on a quiet machine) */
                const uint8_t *pf = blk + SG_PF_DIST(RW, ws, bs);
                _mm_prefetch((const char *)pf, SG_PFW_HINT);
                _mm_prefetch((const char *)(pf + 64), SG_PFW_HINT);
                if (type == SG_TYPE_Q8_0) _mm_prefetch((const char *)(pf + 128), SG_PFW_HINT);
#  endif
                d4 = scales4_avx2(blk, bs, 0, 4);
                if (type == SG_TYPE_Q4_1) m4 = scales4_avx2(blk, bs, 2, 4);
            } else {
                d4 = scales4_avx2(blk, bs, 0, nbk);
                if (type == SG_TYPE_Q4_1) m4 = scales4_avx2(blk, bs, 2, nbk);
            }
            __m256 d8 = _mm256_castps128_ps256(d4), m8 = _mm256_castps128_ps256(m4);
            dws[i][0] = _mm256_permutevar8x32_ps(d8, pidx0);
            dws[i][1] = _mm256_permutevar8x32_ps(d8, pidx1);
            if (type == SG_TYPE_Q4_1) {
                mws[i][0] = _mm256_permutevar8x32_ps(m8, pidx0);
                mws[i][1] = _mm256_permutevar8x32_ps(m8, pidx1);
            } else {
                mws[i][0] = mws[i][1] = _mm256_setzero_ps();
            }
        }
        for (int p = 0; p < 2; p++) {
            if (2 * p >= nbk) break;
            __m256i lo[4], hi[4];
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                const uint8_t *b0 = w + (size_t)i * ws + (gi * 4 + 2 * (size_t)p) * bs;
                pair_w_avx2(type, b0, 2 * p + 1 < nbk ? b0 + bs : NULL, &lo[i], &hi[i]);
            }
            SG_UNROLL4 for (int j = 0; j < RA; j++) {
                const uint8_t *g = a + (size_t)j * as + gi * QG;
                __m256i xl = _mm256_loadu_si256((const __m256i *)(const void *)(g + 32 * p));
                __m256i xh = _mm256_loadu_si256((const __m256i *)(const void *)(g + 64 + 32 * p));
                __m256 dx = _mm256_loadu_ps((const float *)(const void *)(g + 128 + 32 * p));
                SG_UNROLL4 for (int i = 0; i < RW; i++) {
                    __m256i dot;
                    if (type == SG_TYPE_Q8_0 || type == SG_TYPE_IQ4_NL) {
                        __m256i pl = _mm256_maddubs_epi16(_mm256_abs_epi8(lo[i]), _mm256_sign_epi8(xl, lo[i]));
                        __m256i ph = _mm256_maddubs_epi16(_mm256_abs_epi8(hi[i]), _mm256_sign_epi8(xh, hi[i]));
                        dot = _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
                    } else {
                        __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(lo[i], xl),
                                                       _mm256_maddubs_epi16(hi[i], xh));
                        dot = _mm256_madd_epi16(s16, ones);
                        if (type == SG_TYPE_Q4_0)
                            dot = _mm256_add_epi32(
                                dot, _mm256_loadu_si256((const __m256i *)(const void *)(g + 256 + 32 * p)));
                    }
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(dws[i][p], dx), acc[i][j]);
                    if (type == SG_TYPE_Q4_1)
                        acc[i][j] = _mm256_fmadd_ps(
                            mws[i][p], _mm256_loadu_ps((const float *)(const void *)(g + 192 + 32 * p)),
                            acc[i][j]);
                }
            }
        }
    }
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            __m256 s = acc[i][j];
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            y[(size_t)j * ldy + i] = _mm_cvtss_f32(h);
        }
}

/* prefetch distance of the float (F32/F16/BF16) tiles' weight rows, bytes
 * ahead; 0 = none. F16 decode of a 1.1B model (2026-12-05, AMD EPYC 2 vCPU):
 * AVX-512 11.0 -> 19.0 t/s, AVX2 16.4 -> 19.6 t/s at 1024 (512: 19.0/17.6,
 * 2048: 17.2/18.6, 4096: 16.5/15.7); re-tried later on a quieter machine
 * after the K-quant tiles gained from 16 KiB: 16 KiB 2-4% above 1 KiB on both
 * levels in 6 of 6 alternating pairs.
 * Into L2 (T1), not L1: on AMD EPYC Zen 4 (32 KiB L1d, 2026-12-06) the
 * streamed weights prefetched into L1 evicted the activation row (22 KiB at
 * the FFN down matrix's 5632 columns), whose reloads then competed with the
 * stream: one-thread F16 rows of 5632 read 8.6-11.4 GB/s with T0 against
 * 18-20 with T1 (a standalone loop); whole 1.1B F16 decode, 2 threads, two
 * alternating rounds: AVX-512 13.6/11.2 -> 15.0/14.1 t/s, AVX2 11.3/11.8 ->
 * 15.0/14.6 (llama.cpp native 15.2/14.0 in the same rounds). The quantized
 * tiles stay with T0 (SG_PFW_HINT): with T1 they were mixed, +26% to -16%. */
#  ifndef SG_PFF_HINT
#    define SG_PFF_HINT _MM_HINT_T1
#  endif
#  ifndef SG_PFF_DIST
#    define SG_PFF_DIST 16384
#  endif
SG_INLINE SG_T_AVX2 __m256 ldw_avx2(uint32_t type, const uint8_t *w, size_t k) {
    if (type == SG_TYPE_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * k)));
    if (type == SG_TYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(w + 2 * k))), 16));
    return _mm256_loadu_ps((const float *)(const void *)(w + 4 * k));
}

/* Float tiles: every (weight row, activation row) sum has two 8-lane
 * accumulators, one for even and one for odd 8-column blocks (16 lanes in
 * all, the order of tile_f_512's single 16-lane vector), so a one-row
 * decode tile has two independent FMA chains and reads one stream. */
/* The main loop of the 2x3 batch tile (every full 16 columns) on its own,
 * out of line: inlined into tile_f_avx2 among the other tile shapes, GCC
 * 12 kept two activation row pointers on the stack and stored a vector
 * every iteration. Per accumulator the same FMAs in the same order as the
 * generic loop below; acc[i][j][h] as there. */
/* a loaded vector kept in a register: without it GCC folds each load
 * into both of its FMAs as a memory operand (two loads instead of one;
 * the loop then waits on the load ports) */
SG_INLINE SG_T_AVX2 __m256 f23_reg(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}
#  define F23_LOOP(NAME, TYPE)                                                                 \
    static __attribute__((noinline)) SG_T_AVX2 void NAME(const uint8_t *w0, const uint8_t *w1, \
                                                        const float *x0, const float *x1,      \
                                                        const float *x2, size_t n16,           \
                                                        __m256 acc[3][6][2]) {                 \
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00; \
        __m256 b00 = a00, b01 = a00, b02 = a00, b10 = a00, b11 = a00, b12 = a00;              \
        for (size_t k = 0; k < n16; k += 16) {                                                 \
            __m256 u = ldw_avx2(TYPE, w0, k), v = ldw_avx2(TYPE, w1, k), x;                    \
            x = f23_reg(_mm256_loadu_ps(x0 + k));                                              \
            a00 = _mm256_fmadd_ps(u, x, a00);                                                  \
            a10 = _mm256_fmadd_ps(v, x, a10);                                                  \
            x = f23_reg(_mm256_loadu_ps(x1 + k));                                              \
            a01 = _mm256_fmadd_ps(u, x, a01);                                                  \
            a11 = _mm256_fmadd_ps(v, x, a11);                                                  \
            x = f23_reg(_mm256_loadu_ps(x2 + k));                                              \
            a02 = _mm256_fmadd_ps(u, x, a02);                                                  \
            a12 = _mm256_fmadd_ps(v, x, a12);                                                  \
            u = ldw_avx2(TYPE, w0, k + 8);                                                     \
            v = ldw_avx2(TYPE, w1, k + 8);                                                     \
            x = f23_reg(_mm256_loadu_ps(x0 + k + 8));                                          \
            b00 = _mm256_fmadd_ps(u, x, b00);                                                  \
            b10 = _mm256_fmadd_ps(v, x, b10);                                                  \
            x = f23_reg(_mm256_loadu_ps(x1 + k + 8));                                          \
            b01 = _mm256_fmadd_ps(u, x, b01);                                                  \
            b11 = _mm256_fmadd_ps(v, x, b11);                                                  \
            x = f23_reg(_mm256_loadu_ps(x2 + k + 8));                                          \
            b02 = _mm256_fmadd_ps(u, x, b02);                                                  \
            b12 = _mm256_fmadd_ps(v, x, b12);                                                  \
        }                                                                                      \
        acc[0][0][0] = a00, acc[0][1][0] = a01, acc[0][2][0] = a02;                            \
        acc[1][0][0] = a10, acc[1][1][0] = a11, acc[1][2][0] = a12;                            \
        acc[0][0][1] = b00, acc[0][1][1] = b01, acc[0][2][1] = b02;                            \
        acc[1][0][1] = b10, acc[1][1][1] = b11, acc[1][2][1] = b12;                            \
    }

F23_LOOP(f23_loop_f32, SG_TYPE_F32)
F23_LOOP(f23_loop_f16, SG_TYPE_F16)
F23_LOOP(f23_loop_bf16, SG_TYPE_BF16)

SG_INLINE SG_T_AVX2 void tile_f_avx2(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                     const uint8_t *a, size_t as, const int RA, size_t n, float *y,
                                     size_t ldy) {
    __m256 acc[3][6][2]; /* [2][3][2] is used; see f_tiles_avx2 */
    for (int i = 0; i < RW; i++)
        for (int j = 0; j < RA; j++) acc[i][j][0] = acc[i][j][1] = _mm256_setzero_ps();
    size_t k = 0;
    const size_t es = type == SG_TYPE_F32 ? 4 : 2;
    if (RW == 2 && RA == 3 && n >= 16) {
        const float *x0 = (const float *)(const void *)a;
        const float *x1 = (const float *)(const void *)(a + as), *x2 = (const float *)(const void *)(a + 2 * as);
        k = n / 16 * 16;
        if (type == SG_TYPE_F16)
            f23_loop_f16(w, w + ws, x0, x1, x2, k, acc);
        else if (type == SG_TYPE_BF16)
            f23_loop_bf16(w, w + ws, x0, x1, x2, k, acc);
        else
            f23_loop_f32(w, w + ws, x0, x1, x2, k, acc);
    }
    for (; k + 16 <= n; k += 16) {
#  if SG_PFF_DIST > 0
        if (RA == 1 && (k & 31) == 0) /* decode only: costs ~5% in prefill */
            for (int i = 0; i < RW; i++) {
                const char *pf = (const char *)(w + (size_t)i * ws + es * k) + SG_PFF_DIST;
                _mm_prefetch(pf, SG_PFF_HINT);
                if (es == 4) _mm_prefetch(pf + 64, SG_PFF_HINT);
            }
#  endif
        SG_UNROLL4 for (int h = 0; h < 2; h++) {
            __m256 wv[3];
            for (int i = 0; i < RW; i++) wv[i] = ldw_avx2(type, w + (size_t)i * ws, k + 8 * h);
            for (int j = 0; j < RA; j++) {
                __m256 x = _mm256_loadu_ps((const float *)(const void *)(a + (size_t)j * as) + k + 8 * h);
                for (int i = 0; i < RW; i++) acc[i][j][h] = _mm256_fmadd_ps(wv[i], x, acc[i][j][h]);
            }
        }
    }
    const int h8 = k + 8 <= n; /* one more even block */
    if (h8) {
        __m256 wv[3];
        for (int i = 0; i < RW; i++) wv[i] = ldw_avx2(type, w + (size_t)i * ws, k);
        for (int j = 0; j < RA; j++) {
            __m256 x = _mm256_loadu_ps((const float *)(const void *)(a + (size_t)j * as) + k);
            for (int i = 0; i < RW; i++) acc[i][j][0] = _mm256_fmadd_ps(wv[i], x, acc[i][j][0]);
        }
        k += 8;
    }
    for (int i = 0; i < RW; i++)
        for (int j = 0; j < RA; j++) {
            __m256 s = _mm256_add_ps(acc[i][j][0], acc[i][j][1]);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            float t = _mm_cvtss_f32(h);
            const float *x = (const float *)(const void *)(a + (size_t)j * as);
            for (size_t r = k; r < n; r++) t += wval(type, w + (size_t)i * ws, r) * x[r];
            y[(size_t)j * ldy + i] = t;
        }
}

#  define TILE_CASES(FN, ...)                                                   \
    switch (rw * 8 + ra) {                                                      \
    case 8 * 1 + 1: FN(__VA_ARGS__, 1, 1); break;                               \
    case 8 * 1 + 2: FN(__VA_ARGS__, 1, 2); break;                               \
    case 8 * 1 + 3: FN(__VA_ARGS__, 1, 3); break;                               \
    case 8 * 1 + 4: FN(__VA_ARGS__, 1, 4); break;                               \
    case 8 * 2 + 1: FN(__VA_ARGS__, 2, 1); break;                               \
    case 8 * 2 + 2: FN(__VA_ARGS__, 2, 2); break;                               \
    case 8 * 2 + 3: FN(__VA_ARGS__, 2, 3); break;                               \
    case 8 * 2 + 4: FN(__VA_ARGS__, 2, 4); break;                               \
    case 8 * 3 + 1: FN(__VA_ARGS__, 3, 1); break;                               \
    case 8 * 3 + 2: FN(__VA_ARGS__, 3, 2); break;                               \
    case 8 * 3 + 3: FN(__VA_ARGS__, 3, 3); break;                               \
    case 8 * 3 + 4: FN(__VA_ARGS__, 3, 4); break;                               \
    case 8 * 4 + 1: FN(__VA_ARGS__, 4, 1); break;                               \
    case 8 * 4 + 2: FN(__VA_ARGS__, 4, 2); break;                               \
    case 8 * 4 + 3: FN(__VA_ARGS__, 4, 3); break;                               \
    default: FN(__VA_ARGS__, 4, 4); break;                                      \
    }

#  define CALL_Q8_AVX2(T, RW_, RA_)                                                      \
    tile_q8_avx2(T, g->w + i * g->w_stride, g->w_stride, RW_,                            \
                 (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, nb,          \
                 g->y + j * g->ldy + i, g->ldy)
#  define CALL_F_AVX2(T, RW_, RA_)                                                       \
    tile_f_avx2(T, g->w + i * g->w_stride, g->w_stride, RW_,                             \
                (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, g->n,         \
                g->y + j * g->ldy + i, g->ldy)

/* Activation rows per pass over the weight rows in the batch tiles: a
 * block of them (at most SG_JBYTES) stays in L2 while every weight block of
 * the call (in L1) runs over it, instead of all the activation rows
 * streaming from L3 once per weight block. */
#  ifndef SG_JBYTES
#    define SG_JBYTES (384u * 1024u)
#  endif
static inline size_t act_jblock(size_t row_bytes, size_t ra) {
    size_t jb = SG_JBYTES / (row_bytes + 1);
    jb = jb / ra * ra;
    return jb < ra ? ra : jb;
}

/* decode (one activation row): one weight row at a time, so each thread
 * reads one stream (AMD EPYC Zen 4, AVX2 kernels, 2026-12-06, alternating
 * runs: 1.1B Q8_0 tg64 18.6 -> 26.3 t/s, SmolLM2 Q4_1 tg128 150 -> 188 t/s;
 * 2 rows 17.8, 4 rows 18.6 t/s on Q8_0); batches: tiles of 2 weight rows x up to 4 activation rows
 * (8 accumulators, the unpacked pair of blocks of 2 rows in registers) */
SG_INLINE SG_T_AVX2 void q8_tiles_avx2(const sg_gemm *g, uint32_t T, size_t nb) {
    const int RWM = g->na == 1 ? SG_DECODE_RW : 2;
    const size_t jb = g->na == 1 ? 1 : act_jblock(g->a_stride, 4);
    for (size_t j0 = 0; j0 < g->na; j0 += jb)
    for (size_t i = 0; i < g->nr; i += (size_t)RWM) {
        int rw = g->nr - i < (size_t)RWM ? (int)(g->nr - i) : RWM;
        const size_t j1 = g->na - j0 < jb ? g->na : j0 + jb;
        for (size_t j = j0; j < j1; j += 4) {
            int ra = j1 - j < 4 ? (int)(j1 - j) : 4;
            switch (rw * 8 + ra) {
            case 8 * 1 + 1: CALL_Q8_AVX2(T, 1, 1); break;
            case 8 * 2 + 1: CALL_Q8_AVX2(T, 2, 1); break;
            case 8 * 3 + 1: CALL_Q8_AVX2(T, 3, 1); break;
            case 8 * 4 + 1: CALL_Q8_AVX2(T, 4, 1); break;
            case 8 * 1 + 2: CALL_Q8_AVX2(T, 1, 2); break;
            case 8 * 1 + 3: CALL_Q8_AVX2(T, 1, 3); break;
            case 8 * 1 + 4: CALL_Q8_AVX2(T, 1, 4); break;
            case 8 * 2 + 2: CALL_Q8_AVX2(T, 2, 2); break;
            case 8 * 2 + 3: CALL_Q8_AVX2(T, 2, 3); break;
            default: CALL_Q8_AVX2(T, 2, 4); break;
            }
        }
    }
}

/* tiles of 2 weight rows x 3 activation rows (12 accumulators; 3x2 and
 * 1x4 spill or starve, 2x2 is 23% slower in prefill); decode takes one
 * weight row at a time, so each thread reads one stream: F16 decode of a
 * 1.1B model +18% over 2 rows, +23% over 4 (AMD EPYC, 2026-12-05,
 * alternating rounds), at a cost of ~4% in F16 prefill against the 8-lane
 * 4x2 tiles this replaced. */
SG_INLINE SG_T_AVX2 void f_tiles_avx2(const sg_gemm *g, uint32_t T) {
    const size_t jb = g->na == 1 ? 1 : act_jblock(g->n * 4, 2);
    const size_t rs = g->na == 1 ? (size_t)SG_DECODE_RW : 2;
    for (size_t j0 = 0; j0 < g->na; j0 += jb)
    for (size_t i = 0; i < g->nr; i += rs) {
        int rw = g->nr - i < rs ? (int)(g->nr - i) : (int)rs;
        const size_t j1 = g->na - j0 < jb ? g->na : j0 + jb;
        for (size_t j = j0; j < j1; j += 3) {
            int ra = j1 - j < 3 ? (int)(j1 - j) : 3;
            /* only rw <= 2, ra <= 3 occur; the other cases stay because
             * without them GCC 12 compiled the 2x3 tile ~14% slower in F16
             * prefill (3 alternating rounds, reproduced) */
            switch (rw * 8 + ra) {
            case 8 * 1 + 1: CALL_F_AVX2(T, 1, 1); break;
            case 8 * 1 + 2: CALL_F_AVX2(T, 1, 2); break;
            case 8 * 1 + 3: CALL_F_AVX2(T, 1, 3); break;
            case 8 * 1 + 4: CALL_F_AVX2(T, 1, 4); break;
            case 8 * 1 + 5: CALL_F_AVX2(T, 1, 5); break;
            case 8 * 1 + 6: CALL_F_AVX2(T, 1, 6); break;
            case 8 * 2 + 1: CALL_F_AVX2(T, 2, 1); break;
            case 8 * 2 + 2: CALL_F_AVX2(T, 2, 2); break;
            case 8 * 2 + 3: CALL_F_AVX2(T, 2, 3); break;
            case 8 * 3 + 1: CALL_F_AVX2(T, 3, 1); break;
            case 8 * 3 + 2: CALL_F_AVX2(T, 3, 2); break;
            default: CALL_F_AVX2(T, 3, 3); break;
            }
        }
    }
}


/* ---- K-quants (AVX2; the AVX-512 table runs the same code with its 32
 * vector registers) ---- */

/* Scales of a Q4_K/Q5_K super-block: sc and min bytes j = 0..7 (the
 * k_scale_min layout, 4 at a time in 32-bit words). */
SG_INLINE void k_scales8(const uint8_t *s, uint64_t *sc, uint64_t *mn) {
    uint32_t a, b, c;
    memcpy(&a, s, 4);
    memcpy(&b, s + 4, 4);
    memcpy(&c, s + 8, 4);
    uint32_t sl = a & 0x3f3f3f3fu, ml = b & 0x3f3f3f3fu;
    uint32_t sh = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t mh = ((c >> 4) & 0x0f0f0f0fu) | ((b >> 2) & 0x30303030u);
    *sc = (uint64_t)sl | ((uint64_t)sh << 32);
    *mn = (uint64_t)ml | ((uint64_t)mh << 32);
}

/* Per-row setup of the K-quant types new in issue 17: the f16 scale(s)
 * and the sub-block scales as signed bytes (Q2_K: 16 scales, with the 16
 * minimums in *mn; Q3_K: 16 scales - 32; IQ4_XS: 8 scales - 32 in the low
 * half). */
SG_INLINE SG_T_AVX2 __m128i k_new_scales(uint32_t type, const uint8_t *wb, float *d, float *dmin,
                                        __m128i *mn) {
    uint16_t h[2];
    if (type == SG_TYPE_Q2_K) {
        memcpy(h, wb + 80, 4);
        *d = _cvtsh_ss(h[0]);
        *dmin = _cvtsh_ss(h[1]);
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)wb);
        const __m128i m4 = _mm_set1_epi8(0x0f);
        *mn = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
        return _mm_and_si128(v, m4);
    }
    *dmin = 0.0f;
    *mn = _mm_setzero_si128();
    if (type == SG_TYPE_Q3_K) {
        memcpy(h, wb + 108, 2);
        *d = _cvtsh_ss(h[0]);
        /* q3k_scales16 in registers (its 4 stores read back as one 16-byte
         * load cannot be forwarded) */
        uint32_t a, b, c;
        memcpy(&a, wb + 96, 4);
        memcpy(&b, wb + 100, 4);
        memcpy(&c, wb + 104, 4);
        __m128i lo = _mm_and_si128(_mm_setr_epi32((int)a, (int)b, (int)(a >> 4), (int)(b >> 4)),
                                   _mm_set1_epi8(0x0f));
        __m128i hi = _mm_and_si128(_mm_setr_epi32((int)c, (int)(c >> 2), (int)(c >> 4), (int)(c >> 6)),
                                   _mm_set1_epi8(0x03));
        return _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi32(hi, 4)), _mm_set1_epi8(32));
    }
    memcpy(h, wb, 2); /* IQ4_XS */
    *d = _cvtsh_ss(h[0]);
    return _mm_sub_epi8(_mm_cvtsi64_si128((long long)iq4xs_scales64(wb)), _mm_set1_epi8(32));
}

/* word w of each 128-bit lane of v in all 8 words of the lane: vpshufb mask */
#  define KW(w0, w1) _mm256_setr_m128i(_mm_set1_epi16((short)((2 * (w0) + 1) << 8 | 2 * (w0))), \
                                       _mm_set1_epi16((short)((2 * (w1) + 1) << 8 | 2 * (w1))))


/* Exact K-quant finishing (the AMX level's AVX-512 tiles for the types its
 * tiles take, see sg_gemm_amx): the portable kernel's float steps
 * (dot_k_generic) on exact int32 totals, so the result is the portable
 * kernel's bits and a batch through the AMX tiles reproduces decode. The
 * other levels keep a float accumulator per lane (fewer instructions per
 * super-block: 5-9% faster decode of Q4_K/Q6_K/IQ4_XS on the Intel Xeon
 * with AMX, where the integer work is the bound). Each (weight row, activation row) pair of a tile
 * leaves per super-block an 8-lane int32 vector whose lanes sum to the
 * super-block's integer total (and one for the minimums). Up to 8 such
 * vectors ("slots": the pairs of one super-block, then of the next) are
 * summed at once (vphaddd tree; integer, so exact in any order),
 * converted, multiplied by d_w * d_x (dmin_w * d_x, each product rounded
 * once as in the scalar code) and added to each pair's float sum in
 * super-block order: acc += (d * dx) * isum; acc -= (dmin * dx) * imin. */
typedef struct {
    __m256i t[8], m[8];
    float pd[8], pm[8];
    int n, np;
    __m128 one[2];
} kfin;

/* lanes: the totals of v[0..7] */
SG_INLINE SG_T_AVX2 __m256i hsum8_epi32(const __m256i *v) {
    __m256i a = _mm256_hadd_epi32(v[0], v[1]), b = _mm256_hadd_epi32(v[2], v[3]);
    __m256i c = _mm256_hadd_epi32(v[4], v[5]), d = _mm256_hadd_epi32(v[6], v[7]);
    __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
    return _mm256_add_epi32(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

/* add the held slots (NP pairs per super-block) to acc: lane p = pair p */
SG_INLINE SG_T_AVX2 __m256 kfin_flush(kfin *k, __m256 acc, const int NP, const int MINS) {
    for (int s = k->n; s < 8; s++) {
        k->t[s] = _mm256_setzero_si256();
        k->pd[s] = 0.0f;
        if (MINS) {
            k->m[s] = _mm256_setzero_si256();
            k->pm[s] = 0.0f;
        }
    }
    __m256 p = _mm256_mul_ps(_mm256_loadu_ps(k->pd), _mm256_cvtepi32_ps(hsum8_epi32(k->t)));
    __m256 q = MINS ? _mm256_mul_ps(_mm256_loadu_ps(k->pm), _mm256_cvtepi32_ps(hsum8_epi32(k->m)))
                    : _mm256_setzero_ps();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int s = 0; s < k->n; s += NP) {
        __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(s));
        acc = _mm256_add_ps(acc, _mm256_permutevar8x32_ps(p, idx));
        if (MINS) acc = _mm256_sub_ps(acc, _mm256_permutevar8x32_ps(q, idx));
    }
    k->n = 0;
    return acc;
}

/* the same steps at once for one pair (tiles of 1 or 2 pairs: decode),
 * lane 0 of acc: the chain of float adds then overlaps the next
 * super-block's integer work instead of waiting for a flush */
SG_INLINE SG_T_AVX2 __m128 kfin_one(__m128 acc, __m256i t, __m256i m, float dw, float dmw, float dx,
                                    const int MINS) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    __m128i sm = MINS ? _mm_add_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1)) : s;
    s = _mm_hadd_epi32(s, sm);
    s = _mm_hadd_epi32(s, s); /* lanes: total, minimums total, ... */
    __m128 f = _mm_cvtepi32_ps(s);
    acc = _mm_add_ss(acc, _mm_mul_ss(_mm_set_ss(dw * dx), f));
    if (MINS) acc = _mm_sub_ss(acc, _mm_mul_ss(_mm_set_ss(dmw * dx), _mm_shuffle_ps(f, f, 1)));
    return acc;
}

/* slot of pair (i, j) of this super-block: integer total t (and minimums
 * m), scales dw * dx (dmw * dx) */
SG_INLINE SG_T_AVX2 void kfin_put(kfin *k, int p, __m256i t, __m256i m, float dw, float dmw, float dx,
                                  const int MINS) {
    if (k->np <= 2) {
        k->one[p & 1] = kfin_one(k->one[p & 1], t, m, dw, dmw, dx, MINS);
        return;
    }
    k->t[k->n + p] = t;
    k->pd[k->n + p] = dw * dx;
    if (MINS) {
        k->m[k->n + p] = m;
        k->pm[k->n + p] = dmw * dx;
    }
}

/* end of a super-block: flush when the next one would not fit */
SG_INLINE SG_T_AVX2 __m256 kfin_next(kfin *k, __m256 acc, const int NP, const int MINS) {
    if (NP <= 2) return acc;
    k->n += NP;
    return k->n + NP > 8 ? kfin_flush(k, acc, NP, MINS) : acc;
}

SG_INLINE SG_T_AVX2 void kfin_store(kfin *k, __m256 acc, const int NP, const int MINS, const int RW,
                                    const int RA, float *y, size_t ldy) {
    float o[8];
    if (NP <= 2) {
        o[0] = _mm_cvtss_f32(k->one[0]);
        o[1] = _mm_cvtss_f32(k->one[1]);
    } else {
        if (k->n) acc = kfin_flush(k, acc, NP, MINS);
        _mm256_storeu_ps(o, acc);
    }
    for (int i = 0; i < RW; i++)
        for (int j = 0; j < RA; j++) y[(size_t)j * ldy + i] = o[i * RA + j];
}

/* One tile of RW weight rows x RA activation rows over nsb super-blocks.
 * Per super-block and pair: an int32 accumulator of 8 lanes, each
 * sub-block as vpmaddubsw (unsigned weights 0..63 x int8) then vpmaddwd by
 * its scale (exact); Q6_K's -32 and the Q4_K/Q5_K minimums from the
 * activation's 16-value sums (vpmaddwd); then converted and scaled by
 * d_w * d_x (and dmin_w * d_x) into a float accumulator. */
SG_INLINE SG_T_AVX2 void tile_k_avx2(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                     const uint8_t *a, size_t as, const int RA, size_t nsb,
                                     float *y, size_t ldy) {
    __m256 acc[4][4];
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) acc[i][j] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30), m10 = _mm256_set1_epi8(0x10);
    const size_t bs = k_bytes(type);
    for (size_t sb = 0; sb < nsb; sb++) {
        __m256i iacc[4][4], scw[4];
        __m256i mins[4];
        float dw[4], dmw[4];
        SG_UNROLL4 for (int i = 0; i < RW; i++) {
            const uint8_t *wb = w + (size_t)i * ws + sb * bs;
#  ifndef SG_GEMM_NO_PREFETCH
            const uint8_t *pf = wb + SG_PFK_DIST;
            _mm_prefetch((const char *)pf, SG_PFW_HINT);
            _mm_prefetch((const char *)(pf + 64), SG_PFW_HINT);
            if (bs > 128) _mm_prefetch((const char *)(pf + 128), SG_PFW_HINT);
            if (bs > 160) _mm_prefetch((const char *)(pf + 192), SG_PFW_HINT);
#  endif
            if (type == SG_TYPE_Q6_K) {
                uint16_t h;
                memcpy(&h, wb + 208, 2);
                dw[i] = _cvtsh_ss(h);
                dmw[i] = 0.0f;
                /* int16 scales 0..7 | 8..15 */
                scw[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wb + 192)));
                mins[i] = scw[i];
            } else if (type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K) {
                __m128i mn;
                __m128i sc = k_new_scales(type, wb, &dw[i], &dmw[i], &mn);
                /* Q2_K: unsigned scales and minimums; Q3_K: signed, its -4 through mins */
                scw[i] = type == SG_TYPE_Q2_K ? _mm256_cvtepu8_epi16(sc) : _mm256_cvtepi8_epi16(sc);
                mins[i] = type == SG_TYPE_Q2_K ? _mm256_cvtepu8_epi16(mn) : scw[i];
            } else if (type == SG_TYPE_IQ4_XS) {
                __m128i mn;
                __m128i sc = k_new_scales(type, wb, &dw[i], &dmw[i], &mn);
                scw[i] = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(sc));
                mins[i] = _mm256_setzero_si256();
            } else {
                uint16_t h[2];
                memcpy(h, wb, 4);
                dw[i] = _cvtsh_ss(h[0]);
                dmw[i] = _cvtsh_ss(h[1]);
                uint64_t sc, mn;
                k_scales8(wb + 4, &sc, &mn);
                /* scales as int16 in both lanes; minimums twice each */
                scw[i] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
                __m128i m8 = _mm_cvtsi64_si128((long long)mn);
                mins[i] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
            }
            SG_UNROLL4 for (int j = 0; j < RA; j++) iacc[i][j] = _mm256_setzero_si256();
        }
        if (type == SG_TYPE_Q6_K || type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K) {
            /* element 128h + 32k + l: sub-block 8h + 2k + l/16 */
            SG_UNROLL4 for (int h = 0; h < 2; h++) {
                __m256i scl[4];
                SG_UNROLL4 for (int i = 0; i < RW; i++) {
                    __m128i half = h ? _mm256_extracti128_si256(scw[i], 1) : _mm256_castsi256_si128(scw[i]);
                    scl[i] = _mm256_broadcastsi128_si256(half);
                }
                SG_UNROLL4 for (int k = 0; k < 4; k++) {
                    __m256i q[4];
                    SG_UNROLL4 for (int i = 0; i < RW; i++) {
                        const uint8_t *wb = w + (size_t)i * ws + sb * bs;
                        if (type != SG_TYPE_Q6_K) {
                            /* bits 2k.. of qs[32h + l]; Q3_K: bit 4h + k of hmask[l] as bit 2 */
                            const __m256i m3 = _mm256_set1_epi8(3), m04 = _mm256_set1_epi8(4);
                            __m256i qv = _mm256_loadu_si256(
                                (const __m256i *)(const void *)(wb + (type == SG_TYPE_Q3_K ? 32 : 16) + 32 * h));
                            q[i] = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * k), m3);
                            if (type == SG_TYPE_Q3_K) {
                                __m256i hm = _mm256_loadu_si256((const __m256i *)(const void *)wb);
                                const int sh = 4 * h + k - 2;
                                __m256i hb = sh >= 0 ? _mm256_srli_epi16(hm, sh) : _mm256_slli_epi16(hm, -sh);
                                q[i] = _mm256_or_si256(q[i], _mm256_and_si256(hb, m04));
                            }
                            continue;
                        }
                        __m256i ql = _mm256_loadu_si256((const __m256i *)(const void *)(wb + 64 * h + 32 * (k & 1)));
                        __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(wb + 128 + 32 * h));
                        __m256i lo = k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                        __m256i hb = k == 0   ? _mm256_slli_epi16(qh, 4)
                                     : k == 1 ? _mm256_slli_epi16(qh, 2)
                                     : k == 2 ? qh
                                              : _mm256_srli_epi16(qh, 2);
                        q[i] = _mm256_or_si256(lo, _mm256_and_si256(hb, m30));
                    }
                    SG_UNROLL4 for (int j = 0; j < RA; j++) {
                        const uint8_t *ab = a + (size_t)j * as + sb * QKB + 64;
                        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 128 * h + 32 * k));
                        SG_UNROLL4 for (int i = 0; i < RW; i++) {
                            __m256i sv = _mm256_shuffle_epi8(scl[i], KW(2 * k, 2 * k + 1));
                            iacc[i][j] = _mm256_add_epi32(
                                iacc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(q[i], x), sv));
                        }
                    }
                }
            }
        } else {
            __m256i qh[4];
            if (type == SG_TYPE_Q5_K)
                SG_UNROLL4 for (int i = 0; i < RW; i++) qh[i] = _mm256_loadu_si256(
                    (const __m256i *)(const void *)(w + (size_t)i * ws + sb * bs + 16));
            SG_UNROLL4 for (int c = 0; c < 4; c++) {
                __m256i lo[4], hi[4];
                SG_UNROLL4 for (int i = 0; i < RW; i++) {
                    if (type == SG_TYPE_IQ4_XS) {
                        /* 16 bytes a sub-block: low nibbles values 0..15, high 16..31 */
                        const __m256i tbl = _mm256_broadcastsi128_si256(
                            _mm_loadu_si128((const __m128i *)(const void *)k_iq4));
                        __m256i v = _mm256_loadu_si256(
                            (const __m256i *)(const void *)(w + (size_t)i * ws + sb * bs + 8 + 32 * c));
                        __m256i tl = _mm256_shuffle_epi8(tbl, _mm256_and_si256(v, m4));
                        __m256i th = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                        lo[i] = _mm256_permute2x128_si256(tl, th, 0x20);
                        hi[i] = _mm256_permute2x128_si256(tl, th, 0x31);
                        continue;
                    }
                    const uint8_t *qs = w + (size_t)i * ws + sb * bs + (type == SG_TYPE_Q5_K ? 48 : 16) + 32 * c;
                    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)qs);
                    lo[i] = _mm256_and_si256(v, m4);
                    hi[i] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                    if (type == SG_TYPE_Q5_K) {
                        /* bit 2c / 2c+1 of qh to bit 4 */
                        __m256i b0 = 2 * c <= 4 ? _mm256_slli_epi16(qh[i], 4 - 2 * c) : _mm256_srli_epi16(qh[i], 2 * c - 4);
                        __m256i b1 = 2 * c + 1 <= 4 ? _mm256_slli_epi16(qh[i], 3 - 2 * c)
                                                    : _mm256_srli_epi16(qh[i], 2 * c - 3);
                        lo[i] = _mm256_or_si256(lo[i], _mm256_and_si256(b0, m10));
                        hi[i] = _mm256_or_si256(hi[i], _mm256_and_si256(b1, m10));
                    }
                }
                SG_UNROLL4 for (int j = 0; j < RA; j++) {
                    const uint8_t *ab = a + (size_t)j * as + sb * QKB + 64 + 64 * c;
                    __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)ab);
                    __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 32));
                    SG_UNROLL4 for (int i = 0; i < RW; i++) {
                        /* IQ4_XS: signed weights, |w| x (x with w's sign) */
                        __m256i u0 = type == SG_TYPE_IQ4_XS ? _mm256_abs_epi8(lo[i]) : lo[i];
                        __m256i u1 = type == SG_TYPE_IQ4_XS ? _mm256_abs_epi8(hi[i]) : hi[i];
                        __m256i y0 = type == SG_TYPE_IQ4_XS ? _mm256_sign_epi8(x0, lo[i]) : x0;
                        __m256i y1 = type == SG_TYPE_IQ4_XS ? _mm256_sign_epi8(x1, hi[i]) : x1;
                        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(u0, y0),
                                                       _mm256_shuffle_epi8(scw[i], KW(2 * c, 2 * c)));
                        __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(u1, y1),
                                                       _mm256_shuffle_epi8(scw[i], KW(2 * c + 1, 2 * c + 1)));
                        iacc[i][j] = _mm256_add_epi32(iacc[i][j], _mm256_add_epi32(p0, p1));
                    }
                }
            }
        }
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            const uint8_t *ab = a + (size_t)j * as + sb * QKB;
            float dx;
            memcpy(&dx, ab, 4);
            __m256i bsum = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 32));
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                /* Q6_K: sum_k sc_k * 32 * bs_k; Q4_K/Q5_K: sum_j m_j * (bs_2j + bs_2j+1) */
                __m256i corr = _mm256_madd_epi16(bsum, mins[i]);
                if (type == SG_TYPE_Q6_K || type == SG_TYPE_Q3_K) {
                    /* Q6_K: q - 32, Q3_K: q - 4 */
                    __m256i t = _mm256_sub_epi32(iacc[i][j], _mm256_slli_epi32(corr, type == SG_TYPE_Q6_K ? 5 : 2));
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
                } else if (type == SG_TYPE_IQ4_XS) {
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[i][j]), _mm256_set1_ps(dw[i] * dx),
                                                acc[i][j]);
                } else {
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[i][j]), _mm256_set1_ps(dw[i] * dx),
                                                acc[i][j]);
                    acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(dmw[i] * dx),
                                                 acc[i][j]);
                }
            }
        }
    }
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            __m256 s = acc[i][j];
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            y[(size_t)j * ldy + i] = _mm_cvtss_f32(h);
        }
}

#  define CALL_K_AVX2(T, RW_, RA_)                                                       \
    tile_k_avx2(T, g->w + i * g->w_stride, g->w_stride, RW_,                             \
                (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, nsb,          \
                g->y + j * g->ldy + i, g->ldy)

/* decode: SG_DECODE_RW weight rows at a time (AMD EPYC Zen 4, 2026-12-06,
 * 1.1B tg64, 3 reps each, same run; 4 / 2 / 1 rows: AVX2 Q4_K_M 20.7 / 24.3 /
 * 36.4 t/s, Q6_K 16.8 / 19.0 / 28.2, IQ4_XS 21.8 / 22.8 / 26.2; AVX-512
 * Q4_K_M 25.1 / 27.1 / 37.0, Q6_K 17.3 / 17.2 / 28.8, IQ4_XS 24.7 / 28.2 /
 * 34.2); batches: 2 rows x up to RAB
 * activation rows (2 with the 16 vector registers of AVX2, 4 with the 32
 * of AVX-512) */
SG_INLINE SG_T_AVX2 void k_tiles_avx2(const sg_gemm *g, uint32_t T, size_t nsb, const int RAB) {
    const int RWM = g->na == 1 ? SG_DECODE_RW : 2;
    const size_t jb = g->na == 1 ? 1 : act_jblock(g->a_stride, (size_t)RAB);
    for (size_t j0 = 0; j0 < g->na; j0 += jb)
    for (size_t i = 0; i < g->nr; i += (size_t)RWM) {
        int rw = g->nr - i < (size_t)RWM ? (int)(g->nr - i) : RWM;
        const size_t j1 = g->na - j0 < jb ? g->na : j0 + jb;
        for (size_t j = j0; j < j1; j += (size_t)RAB) {
            int ra = j1 - j < (size_t)RAB ? (int)(j1 - j) : RAB;
            switch (rw * 8 + ra) {
            case 8 * 1 + 1: CALL_K_AVX2(T, 1, 1); break;
            case 8 * 2 + 1: CALL_K_AVX2(T, 2, 1); break;
            case 8 * 3 + 1: CALL_K_AVX2(T, 3, 1); break;
            case 8 * 4 + 1: CALL_K_AVX2(T, 4, 1); break;
            case 8 * 1 + 2: CALL_K_AVX2(T, 1, 2); break;
            case 8 * 2 + 2: CALL_K_AVX2(T, 2, 2); break;
            case 8 * 1 + 3: if (RAB > 2) CALL_K_AVX2(T, 1, 3); break;
            case 8 * 2 + 3: if (RAB > 2) CALL_K_AVX2(T, 2, 3); break;
            case 8 * 1 + 4: if (RAB > 2) CALL_K_AVX2(T, 1, 4); break;
            default: if (RAB > 2) CALL_K_AVX2(T, 2, 4); break;
            }
        }
    }
}

SG_INLINE SG_T_AVX2 int k_gemm_avx2(const sg_gemm *g, const int RAB) {
    if (g->n % 256) return -1;
    size_t nsb = g->n / 256;
    switch (g->type) {
    case SG_TYPE_Q4_K: k_tiles_avx2(g, SG_TYPE_Q4_K, nsb, RAB); break;
    case SG_TYPE_Q5_K: k_tiles_avx2(g, SG_TYPE_Q5_K, nsb, RAB); break;
    case SG_TYPE_Q2_K: k_tiles_avx2(g, SG_TYPE_Q2_K, nsb, RAB); break;
    case SG_TYPE_Q3_K: k_tiles_avx2(g, SG_TYPE_Q3_K, nsb, RAB); break;
    case SG_TYPE_IQ4_XS: k_tiles_avx2(g, SG_TYPE_IQ4_XS, nsb, RAB); break;
    default: k_tiles_avx2(g, SG_TYPE_Q6_K, nsb, RAB); break;
    }
    return 0;
}

/* ---- Q4_0 x8 (sg_pack_x8) ---- */

/* 4 bytes at p (any alignment) in the low lane of an xmm register:
 * _mm_loadu_si32 where the compiler has it (GCC >= 11, clang >= 8), else
 * the same bits through memcpy (a general register and a vmovd: correct,
 * slower in the tiles) */
#  if defined(SG_NO_LOADU_SI32) || (defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 11)
SG_INLINE __m128i sg_loadu_si32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}
#  else
#    define sg_loadu_si32(p) _mm_loadu_si32(p)
#  endif

/* 4 bytes at p (any alignment) in every 32-bit lane: a move of bits, no
 * float arithmetic, whatever the pattern */
SG_INLINE SG_T_AVX2 __m256i bcast32_avx2(const uint8_t *p) {
    return _mm256_broadcastd_epi32(sg_loadu_si32((const void *)p));
}
/* the float at p (any alignment) in every lane: the bits broadcast as an
 * integer (_mm_load_ss would dereference a float pointer; GCC folds this
 * form into one vpbroadcastd from memory, clang into vbroadcastss) */
SG_INLINE SG_T_AVX2 __m256 bcastf_avx2(const uint8_t *p) {
    return _mm256_castsi256_ps(bcast32_avx2(p));
}

/* prefetch distance of the x8/x16 tiles: 2 KiB (was 1 KiB) gave +3% for
 * 8-session decode and no loss for 1 row (alternating rounds, AMD EPYC) */
#  ifndef SG_X8_PF
#    define SG_X8_PF 2048
#  endif
/* the Q8_0 x8 tile's distance */
#  ifndef SG_X8Q8_PF
#    define SG_X8Q8_PF 4096
#  endif
/* Groups of 8 weight rows x RA activation rows. Per block: the 8 rows'
 * nibbles unpacked from 4 loads, each 4-byte piece of the activation block
 * broadcast to all lanes; vpmaddubsw + int16 adds (|sum| <= 8*2*15*128)
 * and one vpmaddwd leave row r's exact block dot in lane r, then the -8
 * offset (c8), and acc += float(s) * (dw * dx) as a multiply and an add:
 * per row the operations of dot_q8_generic in the same order, so the
 * results are bitwise those of the portable kernel on the unpacked rows. */
SG_INLINE SG_T_AVX2 void tile_x8_avx2(const uint8_t *w, const uint8_t *a, size_t as, const int RA,
                                      size_t nb, float *y, size_t ldy) {
    __m256 acc[4];
    SG_UNROLL4 for (int j = 0; j < RA; j++) acc[j] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nb; b++, w += 144) {
#  ifndef SG_GEMM_NO_PREFETCH
        _mm_prefetch((const char *)(w + SG_X8_PF), SG_PFW_HINT);
        _mm_prefetch((const char *)(w + SG_X8_PF + 48), SG_PFW_HINT);
        _mm_prefetch((const char *)(w + SG_X8_PF + 96), SG_PFW_HINT);
#  endif
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)w));
        __m256i wl[4], wh[4];
        SG_UNROLL4 for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c));
            wl[c] = _mm256_and_si256(v, m4);
            wh[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        const size_t go = (b / 4) * QG + (b % 4) * 16;
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            const uint8_t *g = a + (size_t)j * as + go;
            /* 4-byte pieces broadcast straight from memory (one load-port
             * vpbroadcastd; GCC's route through a general register and
             * vmovd + vpbroadcastd left Q4_0 prefill 27% slower) */
            __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wl[0], bcast32_avx2(g)),
                                         _mm256_maddubs_epi16(wh[0], bcast32_avx2(g + 64)));
            SG_UNROLL4 for (int c = 1; c < 4; c++)
                p = _mm256_add_epi16(p, _mm256_add_epi16(_mm256_maddubs_epi16(wl[c], bcast32_avx2(g + 4 * c)),
                                                         _mm256_maddubs_epi16(wh[c], bcast32_avx2(g + 64 + 4 * c))));
            __m256i s = _mm256_add_epi32(_mm256_madd_epi16(p, ones), bcast32_avx2(g + 256));
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, bcastf_avx2(g + 128))));
        }
    }
    SG_UNROLL4 for (int j = 0; j < RA; j++) _mm256_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

/* g->w: group nr/8 groups of the packed matrix (g->w_stride = the unpacked
 * row's bytes); nr % 8 == 0. Each weight group runs every activation row
 * (4 at a time) while it is in L1. */
SG_INLINE SG_T_AVX2 int x8_tiles_avx2(const sg_gemm *g) {
    if (g->type != SG_TYPE_Q4_0 || !x8_shape_ok(g)) return -1;
    size_t nb = g->n / 32;
    for (size_t i = 0; i < g->nr; i += 8) {
        const uint8_t *w = g->w + i * g->w_stride;
        for (size_t j = 0; j < g->na; j += 4) {
            const uint8_t *a = (const uint8_t *)g->a + j * g->a_stride;
            float *y = g->y + j * g->ldy + i;
            switch (g->na - j < 4 ? g->na - j : 4) {
            case 1: tile_x8_avx2(w, a, g->a_stride, 1, nb, y, g->ldy); break;
            case 2: tile_x8_avx2(w, a, g->a_stride, 2, nb, y, g->ldy); break;
            case 3: tile_x8_avx2(w, a, g->a_stride, 3, nb, y, g->ldy); break;
            default: tile_x8_avx2(w, a, g->a_stride, 4, nb, y, g->ldy); break;
            }
        }
    }
    return 0;
}

/* ---- Q8_0 x8 ---- */

/* Groups of 8 weight rows x RA activation rows. Per block and chunk c:
 * the 8 rows' values 4c..4c+3 in one load, the activation's 4 values
 * broadcast; vpmaddubsw of |w| and the activation with w's sign (a pair of
 * products fits int16: 2 * 128 * 127) and one vpmaddwd per chunk give row
 * r's 4-value sums in lane r, added up in int32: the block's exact integer
 * dot. Then acc += float(s) * (dw * dx) as a multiply and an add: per row
 * the operations of dot_q8_generic, bitwise its results. No horizontal
 * sums, no scale gathers: the float steps serve 8 rows at once. */
SG_INLINE SG_T_AVX2 void tile_x8q8_avx2(const uint8_t *w, const uint8_t *a, size_t as, const int RA,
                                        size_t nb, float *y, size_t ldy) {
    __m256 acc[4];
    SG_UNROLL4 for (int j = 0; j < RA; j++) acc[j] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (size_t b = 0; b < nb; b++, w += 272) {
#  ifndef SG_GEMM_NO_PREFETCH
        SG_UNROLL4 for (int l = 0; l < 5; l++)
            _mm_prefetch((const char *)(w + SG_X8Q8_PF + 64 * l), SG_PFW_HINT);
#  endif
        const size_t go = (b / 4) * QG + (b % 4) * 16;
        __m256i s[4];
        SG_UNROLL4 for (int j = 0; j < RA; j++) s[j] = _mm256_setzero_si256();
        SG_UNROLL8 for (int c = 0; c < 8; c++) {
            const __m256i wc = _mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c));
            const __m256i aw = _mm256_abs_epi8(wc);
            const size_t xo = go + (c < 4 ? 4 * (size_t)c : 64 + 4 * (size_t)(c - 4));
            SG_UNROLL4 for (int j = 0; j < RA; j++) {
                const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast32_avx2(a + (size_t)j * as + xo), wc));
                s[j] = _mm256_add_epi32(s[j], _mm256_madd_epi16(p, ones));
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)w));
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(_mm256_cvtepi32_ps(s[j]),
                                                         _mm256_mul_ps(dw, bcastf_avx2(a + (size_t)j * as + go + 128))));
        }
    }
    SG_UNROLL4 for (int j = 0; j < RA; j++) _mm256_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

/* Q8_0 x8: a block of activation rows (act_jblock) stays in L2 while the
 * weight groups pass over it; each group runs its rows 4 at a time. */
SG_INLINE SG_T_AVX2 int x8q8_tiles_avx2(const sg_gemm *g) {
    if (g->type != SG_TYPE_Q8_0 || !x8_shape_ok(g)) return -1;
    size_t nb = g->n / 32;
    const size_t jb = g->na == 1 ? 1 : act_jblock(g->a_stride, 4);
    for (size_t j0 = 0; j0 < g->na; j0 += jb) {
        const size_t j1 = g->na - j0 < jb ? g->na : j0 + jb;
        for (size_t i = 0; i < g->nr; i += 8) {
            const uint8_t *w = g->w + i * g->w_stride;
            for (size_t j = j0; j < j1; j += 4) {
                const uint8_t *a = (const uint8_t *)g->a + j * g->a_stride;
                float *y = g->y + j * g->ldy + i;
                switch (j1 - j < 4 ? j1 - j : 4) {
                case 1: tile_x8q8_avx2(w, a, g->a_stride, 1, nb, y, g->ldy); break;
                case 2: tile_x8q8_avx2(w, a, g->a_stride, 2, nb, y, g->ldy); break;
                case 3: tile_x8q8_avx2(w, a, g->a_stride, 3, nb, y, g->ldy); break;
                default: tile_x8q8_avx2(w, a, g->a_stride, 4, nb, y, g->ldy); break;
                }
            }
        }
    }
    return 0;
}

SG_T_AVX2 int sg_gemm_x8_avx2(const sg_gemm *g) {
    if (g->type == SG_TYPE_Q8_0) return x8q8_tiles_avx2(g);
    return x8_tiles_avx2(g);
}

SG_T_AVX2 int sg_gemm_avx2(const sg_gemm *g) {
    if (g->n == 0) return -1;
    if (sg_type_q8k_act(g->type)) return k_gemm_avx2(g, 2);
    if (sg_type_q8_act(g->type)) {
        if (g->n % 32) return -1;
        size_t nb = g->n / 32;
        /* the type as a constant inside each instance */
        switch (g->type) {
        case SG_TYPE_Q4_0: q8_tiles_avx2(g, SG_TYPE_Q4_0, nb); break;
        case SG_TYPE_Q4_1: q8_tiles_avx2(g, SG_TYPE_Q4_1, nb); break;
        case SG_TYPE_IQ4_NL: q8_tiles_avx2(g, SG_TYPE_IQ4_NL, nb); break;
        default: q8_tiles_avx2(g, SG_TYPE_Q8_0, nb); break;
        }
        return 0;
    }
    switch (g->type) {
    case SG_TYPE_F32: f_tiles_avx2(g, SG_TYPE_F32); return 0;
    case SG_TYPE_F16: f_tiles_avx2(g, SG_TYPE_F16); return 0;
    case SG_TYPE_BF16: f_tiles_avx2(g, SG_TYPE_BF16); return 0;
    default: return -1;
    }
}

/* ---- AVX-512 (F, BW, VL, VNNI) -------------------------------------------------- */
#  define SG_T_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/* 4 bytes / the float at p (any alignment) in every lane, loaded as a
 * broadcast (no general register, no port-5 shuffle) */
SG_INLINE SG_T_512 __m512i bcast32_512(const uint8_t *p) {
    return _mm512_broadcastd_epi32(sg_loadu_si32((const void *)p));
}
SG_INLINE SG_T_512 __m512 bcastf_512(const uint8_t *p) {
    return _mm512_castsi512_ps(bcast32_512(p));
}

SG_T_512 void sg_q8_quantize_avx512(const float *x, size_t n, uint8_t *dst) {
    size_t nb = n / 32;
    memset(dst, 0, q8_groups(n) * QG);
    for (size_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid));
        __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
        _mm_storeu_si128((__m128i *)(void *)q8_lo(dst, b), _mm512_cvtepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(void *)q8_hi(dst, b), _mm512_cvtepi32_epi8(i1));
        q8_put_meta(dst, b, amax / 127.0f, _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1)));
    }
}

/* A weight row's group of 4 blocks (nbk <= 4 present): the values as
 * unsigned bytes in the activation layout (lo = values 0..15 of each block,
 * hi = 16..31), block scales in lanes 4k..4k+3, Q4_1 minimums likewise.
 * For a whole group the 4 f16 scales are picked out of one (two for Q8_0)
 * 64-byte loads with a word permute inside the group's bytes; a partial
 * group (the row's tail) gathers them one by one. */
SG_INLINE SG_T_512 void prep_w512(uint32_t type, const uint8_t *blk, size_t bs, const int nbk,
                                  __m512i *lo, __m512i *hi, __m512 *dw, __m512 *mw) {
    const __m512i idx4 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m128i q[4], qh[4];
    /* the 4 f16 scales packed in a register (no store-forwarding stall) */
    uint64_t hv = 0, mv = 0;
    const size_t off = type == SG_TYPE_Q4_1 ? 4 : 2;
    for (int k = 0; k < 4; k++) {
        if (k < nbk) {
            const uint8_t *bk = blk + (size_t)k * bs;
            q[k] = _mm_loadu_si128((const __m128i *)(const void *)(bk + off));
            qh[k] = type == SG_TYPE_Q8_0 ? _mm_loadu_si128((const __m128i *)(const void *)(bk + 18))
                                         : _mm_setzero_si128();
            if (nbk < 4) {
                hv |= (uint64_t)rd16(bk) << (16 * k);
                if (type == SG_TYPE_Q4_1) mv |= (uint64_t)rd16(bk + 2) << (16 * k);
            }
        } else {
            /* missing blocks: zero weights (the activation is zero there too) */
            q[k] = type == SG_TYPE_Q4_0 ? _mm_set1_epi8((char)0x88) : _mm_setzero_si128();
            qh[k] = _mm_setzero_si128();
        }
    }
    __m512i z = _mm512_inserti32x4(_mm512_castsi128_si512(q[0]), q[1], 1);
    z = _mm512_inserti32x4(_mm512_inserti32x4(z, q[2], 2), q[3], 3);
    if (type == SG_TYPE_Q8_0) {
        __m512i zh = _mm512_inserti32x4(_mm512_castsi128_si512(qh[0]), qh[1], 1);
        zh = _mm512_inserti32x4(_mm512_inserti32x4(zh, qh[2], 2), qh[3], 3);
        const __m512i c80 = _mm512_set1_epi8((char)0x80);
        *lo = _mm512_xor_si512(z, c80);
        *hi = _mm512_xor_si512(zh, c80);
    } else {
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        *lo = _mm512_and_si512(z, m4);
        *hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
        if (type == SG_TYPE_IQ4_NL) { /* nibbles to their values + 128 */
            const __m512i tbl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k_iq4u));
            *lo = _mm512_shuffle_epi8(tbl, *lo);
            *hi = _mm512_shuffle_epi8(tbl, *hi);
        }
    }
    if (nbk == 4) {
        /* scale k is word (bs/2)*k of the group: 16 words (4 per block) to f32 */
        const int w1 = (int)(bs / 2), w2 = 2 * w1, w3 = 3 * w1;
        const int p1 = w1 * 0x10001, p2 = w2 * 0x10001, p3 = w3 * 0x10001;
        const __m512i idx = _mm512_setr_epi32(0, 0, p1, p1, p2, p2, p3, p3, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i v0 = _mm512_loadu_si512((const void *)blk);
        __m512i hs;
        if (type == SG_TYPE_Q8_0) /* words 0, 17, 34, 51: two loads */
            hs = _mm512_permutex2var_epi16(v0, idx, _mm512_loadu_si512((const void *)(blk + 64)));
        else
            hs = _mm512_permutexvar_epi16(idx, v0);
        *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(hs));
        if (type == SG_TYPE_Q4_1)
            *mw = _mm512_cvtph_ps(_mm512_castsi512_si256(
                _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16(1)), v0)));
        else
            *mw = _mm512_setzero_ps();
        return;
    }
    __m128i hd = _mm_cvtsi64_si128((long long)hv);
    *dw = _mm512_permutexvar_ps(idx4, _mm512_castps128_ps512(_mm_cvtph_ps(hd)));
    *mw = type == SG_TYPE_Q4_1
              ? _mm512_permutexvar_ps(idx4, _mm512_castps128_ps512(_mm_cvtph_ps(
                                                _mm_cvtsi64_si128((long long)mv))))
                               : _mm512_setzero_ps();
}

/* prefetch distance (bytes ahead on each weight row) and lines per group
 * of the AVX-512 q8 decode tile. Measured (2026-12-05, AMD EPYC 2 vCPU,
 * docs/performance.md): Q8_0 decode 1.1B 38 -> 45 t/s at 1024 bytes (4096:
 * 40), SmolLM2 Q4_1 225 -> 315-340 t/s at 4096 (1024: 230-255); the old
 * distance was 8 groups, one line each. Later the same day, idle, alternating
 * with the K-quant tiles at 16 KiB: Q8_0 32 KiB ahead 3-6% above 1 KiB on
 * both levels (AVX2: SG_PF_DIST). */
#  ifndef SG_PF512_DIST
#    define SG_PF512_DIST(bs) ((bs) > 32 ? (size_t)32768 : (size_t)4096)
#  endif
#  ifndef SG_PF512_LINES
#    define SG_PF512_LINES 3
#  endif
/* One tile of RW weight rows x RA activation rows, 4 blocks (128 values)
 * per step: two dpbusd per pair give 4 lanes per block whose integer sums
 * are exact (Q4_0 nibbles and Q8_0 bytes + 128 corrected by the
 * activation's c8/c128 lanes); then one convert and one fma per pair. */
SG_INLINE SG_T_512 void tile_q8_512(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                    const uint8_t *a, size_t as, const int RA, size_t nb,
                                    float *y, size_t ldy) {
    __m512 acc[4][4];
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) acc[i][j] = _mm512_setzero_ps();
    const __m512i zero = _mm512_setzero_si512();
    const size_t bs = q8_bs(type);
    const size_t ng = (nb + 3) / 4, nfull = nb / 4;
    for (size_t gi = 0; gi < ng; gi++) {
        __m512i lo[4], hi[4];
        __m512 dw[4], mw[4];
        if (gi < nfull) {
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                const uint8_t *blk = w + (size_t)i * ws + gi * 4 * bs;
                /* the streams of decode: ask for every line of the group
                 * SG_PF512_DIST bytes ahead */
#  ifndef SG_GEMM_NO_PREFETCH
                const uint8_t *pf = blk + SG_PF512_DIST(bs);
                _mm_prefetch((const char *)pf, SG_PFW_HINT);
                if (SG_PF512_LINES > 1) _mm_prefetch((const char *)(pf + 64), SG_PFW_HINT);
                if (SG_PF512_LINES > 1 && bs > 32) _mm_prefetch((const char *)(pf + 128), SG_PFW_HINT);
#  endif
                prep_w512(type, blk, bs, 4, &lo[i], &hi[i], &dw[i], &mw[i]);
            }
        } else {
            SG_UNROLL4 for (int i = 0; i < RW; i++)
                prep_w512(type, w + (size_t)i * ws + gi * 4 * bs, bs, (int)(nb - gi * 4), &lo[i],
                          &hi[i], &dw[i], &mw[i]);
        }
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            const uint8_t *g = a + (size_t)j * as + gi * QG;
            __m512i xl = _mm512_loadu_si512((const void *)g);
            __m512i xh = _mm512_loadu_si512((const void *)(g + 64));
            __m512 dx = _mm512_loadu_ps((const void *)(g + 128));
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                __m512i init = type == SG_TYPE_Q4_0   ? _mm512_loadu_si512((const void *)(g + 256))
                               : type == SG_TYPE_Q8_0 || type == SG_TYPE_IQ4_NL
                                   ? _mm512_loadu_si512((const void *)(g + 320))
                                                      : zero;
                __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(init, lo[i], xl), hi[i], xh);
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw[i], dx), acc[i][j]);
                if (type == SG_TYPE_Q4_1)
                    acc[i][j] = _mm512_fmadd_ps(mw[i], _mm512_loadu_ps((const void *)(g + 192)), acc[i][j]);
            }
        }
    }
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) y[(size_t)j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

/* Prefill: the prep above is the same for every activation row, so for
 * batches each block of up to 4 weight rows is expanded once into the
 * caller's work memory (per group and row: lo, hi, dw [, mw for Q4_1], 64
 * bytes each, 64-byte aligned) and the tiles read it back; the arithmetic
 * per output element is exactly that of tile_q8_512. */
static inline size_t xw_entry(uint32_t type) { return type == SG_TYPE_Q4_1 ? 256 : 192; }

SG_INLINE SG_T_512 void expand_w512(uint32_t type, const uint8_t *w, size_t ws, int rw, size_t nb,
                                    uint8_t *xw) {
    const size_t bs = q8_bs(type);
    const size_t ng = (nb + 3) / 4, nfull = nb / 4, es = xw_entry(type);
    for (size_t gi = 0; gi < ng; gi++)
        for (int i = 0; i < rw; i++) {
            const uint8_t *blk = w + (size_t)i * ws + gi * 4 * bs;
            __m512i lo, hi;
            __m512 dw, mw;
            if (gi < nfull) prep_w512(type, blk, bs, 4, &lo, &hi, &dw, &mw);
            else prep_w512(type, blk, bs, (int)(nb - gi * 4), &lo, &hi, &dw, &mw);
            uint8_t *e = xw + (gi * (size_t)rw + (size_t)i) * es;
            _mm512_store_si512((void *)e, lo);
            _mm512_store_si512((void *)(e + 64), hi);
            _mm512_store_ps((void *)(e + 128), dw);
            if (type == SG_TYPE_Q4_1) _mm512_store_ps((void *)(e + 192), mw);
        }
}

SG_INLINE SG_T_512 void tile_q8x_512(uint32_t type, const uint8_t *xw, const int RW, const uint8_t *a,
                                     size_t as, const int RA, size_t ng, float *y, size_t ldy) {
    __m512 acc[4][4];
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) acc[i][j] = _mm512_setzero_ps();
    const __m512i zero = _mm512_setzero_si512();
    const size_t es = xw_entry(type);
    for (size_t gi = 0; gi < ng; gi++) {
        const uint8_t *e = xw + gi * (size_t)RW * es;
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            const uint8_t *g = a + (size_t)j * as + gi * QG;
            __m512i xl = _mm512_loadu_si512((const void *)g);
            __m512i xh = _mm512_loadu_si512((const void *)(g + 64));
            __m512 dx = _mm512_loadu_ps((const void *)(g + 128));
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                const uint8_t *ei = e + (size_t)i * es;
                __m512i init = type == SG_TYPE_Q4_0   ? _mm512_loadu_si512((const void *)(g + 256))
                               : type == SG_TYPE_Q8_0 || type == SG_TYPE_IQ4_NL
                                   ? _mm512_loadu_si512((const void *)(g + 320))
                                                      : zero;
                __m512i dot = _mm512_dpbusd_epi32(
                    _mm512_dpbusd_epi32(init, _mm512_load_si512((const void *)ei), xl),
                    _mm512_load_si512((const void *)(ei + 64)), xh);
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot),
                                            _mm512_mul_ps(_mm512_load_ps((const void *)(ei + 128)), dx),
                                            acc[i][j]);
                if (type == SG_TYPE_Q4_1)
                    acc[i][j] = _mm512_fmadd_ps(_mm512_load_ps((const void *)(ei + 192)),
                                                _mm512_loadu_ps((const void *)(g + 192)), acc[i][j]);
            }
        }
    }
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) y[(size_t)j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

SG_INLINE SG_T_512 __m512 ldw_512(uint32_t type, const uint8_t *w, size_t k, __mmask16 m) {
    if (type == SG_TYPE_F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const void *)(w + 2 * k)));
    if (type == SG_TYPE_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const void *)(w + 2 * k))), 16));
    return _mm512_maskz_loadu_ps(m, (const void *)(w + 4 * k));
}

/* activation rows of the widest float tile (4 weight rows x SG_F512_RA: 24
 * accumulators of the 32 registers; a tile's shape never changes a result:
 * each output is one 16-lane accumulator over the same columns in the same
 * order, reduced the same way) */
#  ifndef SG_F512_RA
#    define SG_F512_RA 6
#  endif
#  if SG_F512_RA < 4 || SG_F512_RA > 6
#    error "SG_F512_RA must be 4, 5 or 6"
#  endif
/* The float tile's accumulators are named variables (c<row><act>), not an
 * array: GCC keeps an unrolled array in registers, but clang 14 ran the
 * array version from the stack (F16 prefill at a third of GCC's speed).
 * RW and RA are constants at every call, so the tests below fold away. */
#  define F512_W(i) if (RW > i) w##i = ldw_512(type, w + (size_t)i * ws, k, m)
#  define F512_X(j)                                                                    \
    if (RA > j) {                                                                      \
        const __m512 x = _mm512_maskz_loadu_ps(m, (const float *)(const void *)(a + (size_t)j * as) + k); \
        if (RW > 0) c0##j = _mm512_fmadd_ps(w0, x, c0##j);                              \
        if (RW > 1) c1##j = _mm512_fmadd_ps(w1, x, c1##j);                              \
        if (RW > 2) c2##j = _mm512_fmadd_ps(w2, x, c2##j);                              \
        if (RW > 3) c3##j = _mm512_fmadd_ps(w3, x, c3##j);                              \
    }
/* one 16-column step (m masks the row's tail) */
#  define F512_STEP()                                                                  \
    do {                                                                               \
        F512_W(0); F512_W(1); F512_W(2); F512_W(3);                                    \
        F512_X(0) F512_X(1) F512_X(2) F512_X(3) F512_X(4) F512_X(5)                    \
    } while (0)
#  define F512_ZERO(i) __m512 c##i##0 = z, c##i##1 = z, c##i##2 = z, c##i##3 = z, c##i##4 = z, c##i##5 = z
#  define F512_OUT1(i, j) if (RW > i && RA > j) y[(size_t)j * ldy + i] = _mm512_reduce_add_ps(c##i##j)
#  define F512_OUT(i)                                                                  \
    do {                                                                               \
        F512_OUT1(i, 0); F512_OUT1(i, 1); F512_OUT1(i, 2);                             \
        F512_OUT1(i, 3); F512_OUT1(i, 4); F512_OUT1(i, 5);                             \
    } while (0)

SG_INLINE SG_T_512 void tile_f_512(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                   const uint8_t *a, size_t as, const int RA, size_t n, float *y,
                                   size_t ldy) {
    const __m512 z = _mm512_setzero_ps();
    F512_ZERO(0); F512_ZERO(1); F512_ZERO(2); F512_ZERO(3);
    __m512 w0 = z, w1 = z, w2 = z, w3 = z;
    const size_t es = type == SG_TYPE_F32 ? 4 : 2;
    size_t k = 0;
    for (; k + 16 <= n; k += 16) { /* whole vectors: no mask to compute */
#  if SG_PFF_DIST > 0
        if ((k & 31) == 0)
            for (int i = 0; i < RW; i++) {
                const char *pf = (const char *)(w + (size_t)i * ws + es * k) + SG_PFF_DIST;
                _mm_prefetch(pf, SG_PFF_HINT);
                if (es == 4) _mm_prefetch(pf + 64, SG_PFF_HINT);
            }
#  endif
        const __mmask16 m = (__mmask16)0xffff;
        F512_STEP();
    }
    if (k < n) {
        const __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        F512_STEP();
    }
    F512_OUT(0); F512_OUT(1); F512_OUT(2); F512_OUT(3);
}

#  define CALL_Q8_512(T, RW_, RA_)                                                       \
    tile_q8_512(T, g->w + i * g->w_stride, g->w_stride, RW_,                             \
                (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, nb,           \
                g->y + j * g->ldy + i, g->ldy)
#  define CALL_F_512(T, RW_, RA_)                                                        \
    tile_f_512(T, g->w + i * g->w_stride, g->w_stride, RW_,                              \
               (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, g->n,          \
               g->y + j * g->ldy + i, g->ldy)

#  define CALL_Q8X_512(T, RW_, RA_)                                                      \
    tile_q8x_512(T, xw, RW_, (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, ng,  \
                 g->y + j * g->ldy + i, g->ldy)

/* Activation rows per pass over a block of expanded weight rows: their
 * quantized rows (1.5 bytes a value) stay in L2 while the weights change. */
#  define Q8X_JB 48

/* tiles of 4 weight rows x 3 activation rows (registers: 12 accumulators
 * and 3-4 vectors per weight row) */
SG_INLINE SG_T_512 void q8_tiles_512(const sg_gemm *g, uint32_t T, size_t nb) {
    const size_t ng = (nb + 3) / 4;
    uint8_t *xw = (uint8_t *)(((uintptr_t)g->work + 63) & ~(uintptr_t)63);
    if (g->na >= 4 && g->work && g->work_bytes >= 64 + 4 * ng * xw_entry(T)) {
        for (size_t j0 = 0; j0 < g->na; j0 += Q8X_JB) {
            size_t j1 = g->na - j0 < Q8X_JB ? g->na : j0 + Q8X_JB;
            for (size_t i = 0; i < g->nr; i += 4) {
                int rw = g->nr - i < 4 ? (int)(g->nr - i) : 4;
                expand_w512(T, g->w + i * g->w_stride, g->w_stride, rw, nb, xw);
                for (size_t j = j0; j < j1; j += 3) {
                    int ra = j1 - j < 3 ? (int)(j1 - j) : 3;
                    TILE_CASES(CALL_Q8X_512, T)
                }
            }
        }
        return;
    }
    /* decode: one weight row at a time, so each thread reads one stream
     * (Q8_0 decode +13% over 4 rows, AMD EPYC, 8 alternating rounds) */
    const size_t rs = g->na == 1 ? (size_t)SG_DECODE_RW : 4;
    for (size_t i = 0; i < g->nr; i += rs) {
        int rw = g->nr - i < rs ? (int)(g->nr - i) : (int)rs;
        for (size_t j = 0; j < g->na; j += 3) {
            int ra = g->na - j < 3 ? (int)(g->na - j) : 3;
            TILE_CASES(CALL_Q8_512, T)
        }
    }
}

SG_INLINE SG_T_512 void f_tiles_512(const sg_gemm *g, uint32_t T) {
    const size_t jb = g->na == 1 ? 1 : act_jblock(g->n * 4, 2 * SG_F512_RA);
    /* decode: one weight row at a time, so each thread reads one stream;
     * the order of the sums is the same as in 4-row tiles. F16 decode of a
     * 1.1B model +28% over 4 rows (AMD EPYC, 2026-12-05, median of 8
     * alternating rounds): 4 rows interleave 4 streams 16 KiB apart, and
     * this machine reads one stream per core faster. */
    const size_t rs = g->na == 1 ? (size_t)SG_DECODE_RW : 4;
    for (size_t j0 = 0; j0 < g->na; j0 += jb)
    for (size_t i = 0; i < g->nr; i += rs) {
        int rw = g->nr - i < rs ? (int)(g->nr - i) : (int)rs;
        const size_t j1 = g->na - j0 < jb ? g->na : j0 + jb;
        size_t j = j0;
#  if SG_F512_RA > 4
        if (rw == 4) /* the wide tile while SG_F512_RA rows are left */
            for (; j + SG_F512_RA <= j1; j += SG_F512_RA) CALL_F_512(T, 4, SG_F512_RA);
#  endif
        for (; j < j1; j += 4) {
            int ra = j1 - j < 4 ? (int)(j1 - j) : 4;
            TILE_CASES(CALL_F_512, T)
        }
    }
}


/* K-quants with 512-bit vectors: two sub-blocks of 32 (Q4_K/Q5_K) or four
 * of 16 (Q6_K) per vector, vpmaddubsw then vpdpwssd (VNNI) by the
 * sub-block scales (picked per 128-bit lane with vpermw); the int32 lanes
 * are folded to 8 and finished as in tile_k_avx2 (or, EXACT, by kfin). */
SG_INLINE SG_T_512 __m512i ld2x256(const uint8_t *p0, const uint8_t *p1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)p0)),
                              _mm256_loadu_si256((const __m256i *)(const void *)p1), 1);
}

/* vpermw index: word w0 in 128-bit lanes 0-1... per lane L word lw[L] */
#  define KW4(l0, l1, l2, l3)                                                          \
    _mm512_setr_epi64(0x0001000100010001LL * (l0), 0x0001000100010001LL * (l0),          \
                      0x0001000100010001LL * (l1), 0x0001000100010001LL * (l1),          \
                      0x0001000100010001LL * (l2), 0x0001000100010001LL * (l2),          \
                      0x0001000100010001LL * (l3), 0x0001000100010001LL * (l3))
/* per-256-bit-half 16-bit shift counts */
#  define KS2(c0, c1) _mm512_inserti64x4(_mm512_set1_epi16(c0), _mm256_set1_epi16(c1), 1)

SG_INLINE SG_T_512 void tile_k_512(uint32_t type, const uint8_t *w, size_t ws, const int RW,
                                   const uint8_t *a, size_t as, const int RA, size_t nsb, float *y,
                                   size_t ldy, const int EXACT) {
    __m256 acc[4][4];
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) acc[i][j] = _mm256_setzero_ps();
    const int NP = RW * RA, MINS = type == SG_TYPE_Q4_K || type == SG_TYPE_Q5_K || type == SG_TYPE_Q2_K;
    __m256 xacc = _mm256_setzero_ps();
    kfin kf;
    kf.n = 0;
    kf.np = NP;
    kf.one[0] = kf.one[1] = _mm_setzero_ps();
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30), m10 = _mm512_set1_epi8(0x10);
    const size_t bs = k_bytes(type);
    for (size_t sb = 0; sb < nsb; sb++) {
        __m512i iacc[4][4], scw[4];
        __m256i mins[4];
        float dw[4], dmw[4];
        SG_UNROLL4 for (int i = 0; i < RW; i++) {
            const uint8_t *wb = w + (size_t)i * ws + sb * bs;
#  ifndef SG_GEMM_NO_PREFETCH
            const uint8_t *pf = wb + SG_PFK_DIST;
            _mm_prefetch((const char *)pf, SG_PFW_HINT);
            _mm_prefetch((const char *)(pf + 64), SG_PFW_HINT);
            if (bs > 128) _mm_prefetch((const char *)(pf + 128), SG_PFW_HINT);
            if (bs > 160) _mm_prefetch((const char *)(pf + 192), SG_PFW_HINT);
#  endif
            if (type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K) {
                __m128i mn;
                __m128i sc = k_new_scales(type, wb, &dw[i], &dmw[i], &mn);
                __m256i s16 = type == SG_TYPE_Q2_K ? _mm256_cvtepu8_epi16(sc) : _mm256_cvtepi8_epi16(sc);
                scw[i] = _mm512_castsi256_si512(s16);
                mins[i] = type == SG_TYPE_Q2_K ? _mm256_cvtepu8_epi16(mn) : s16;
            } else if (type == SG_TYPE_IQ4_XS) {
                __m128i mn;
                __m128i sc = k_new_scales(type, wb, &dw[i], &dmw[i], &mn);
                scw[i] = _mm512_castsi128_si512(_mm_cvtepi8_epi16(sc));
                mins[i] = _mm256_setzero_si256();
            } else if (type == SG_TYPE_Q6_K) {
                uint16_t h;
                memcpy(&h, wb + 208, 2);
                dw[i] = _cvtsh_ss(h);
                dmw[i] = 0.0f;
                mins[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(wb + 192)));
                scw[i] = _mm512_castsi256_si512(mins[i]);
            } else {
                uint16_t h[2];
                memcpy(h, wb, 4);
                dw[i] = _cvtsh_ss(h[0]);
                dmw[i] = _cvtsh_ss(h[1]);
                uint64_t sc, mn;
                k_scales8(wb + 4, &sc, &mn);
                scw[i] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)sc)));
                __m128i m8 = _mm_cvtsi64_si128((long long)mn);
                mins[i] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
            }
            SG_UNROLL4 for (int j = 0; j < RA; j++) iacc[i][j] = _mm512_setzero_si512();
        }
        if (type == SG_TYPE_Q6_K || type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K) {
            SG_UNROLL4 for (int h = 0; h < 2; h++) {
                __m512i lo[4], hi[4];
                SG_UNROLL4 for (int i = 0; i < RW; i++) {
                    const uint8_t *wb = w + (size_t)i * ws + sb * bs;
                    if (type != SG_TYPE_Q6_K) {
                        /* values 128h + 0..63 (lo) and 64..127 (hi): bits 0-1 | 2-3 and
                         * 4-5 | 6-7 of qs[32h + l]; Q3_K: bits 4h..4h+3 of hmask[l] as bit 2 */
                        const __m512i m3 = _mm512_set1_epi8(3), m04 = _mm512_set1_epi8(4);
                        __m512i qv = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                            (const __m256i *)(const void *)(wb + (type == SG_TYPE_Q3_K ? 32 : 16) + 32 * h)));
                        lo[i] = _mm512_and_si512(_mm512_srlv_epi16(qv, KS2(0, 2)), m3);
                        hi[i] = _mm512_and_si512(_mm512_srlv_epi16(qv, KS2(4, 6)), m3);
                        if (type == SG_TYPE_Q3_K) {
                            __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)wb));
                            __m512i bl = h == 0 ? _mm512_sllv_epi16(hm, KS2(2, 1)) : _mm512_srlv_epi16(hm, KS2(2, 3));
                            __m512i bh = h == 0 ? _mm512_srlv_epi16(hm, KS2(0, 1)) : _mm512_srlv_epi16(hm, KS2(4, 5));
                            lo[i] = _mm512_or_si512(lo[i], _mm512_and_si512(bl, m04));
                            hi[i] = _mm512_or_si512(hi[i], _mm512_and_si512(bh, m04));
                        }
                        continue;
                    }
                    __m512i ql = _mm512_loadu_si512((const void *)(wb + 64 * h));
                    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(const void *)(wb + 128 + 32 * h)));
                    /* values 128h + 0..63: bits 0-1 | 2-3 of qh; 64..127: bits 4-5 | 6-7 */
                    lo[i] = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                            _mm512_and_si512(_mm512_sllv_epi16(qh, KS2(4, 2)), m30));
                    hi[i] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                            _mm512_and_si512(_mm512_srlv_epi16(qh, KS2(0, 2)), m30));
                }
                SG_UNROLL4 for (int j = 0; j < RA; j++) {
                    const uint8_t *ab = a + (size_t)j * as + sb * QKB + 64 + 128 * h;
                    __m512i x0 = _mm512_loadu_si512((const void *)ab);
                    __m512i x1 = _mm512_loadu_si512((const void *)(ab + 64));
                    SG_UNROLL4 for (int i = 0; i < RW; i++) {
                        __m512i s0 = _mm512_permutexvar_epi16(KW4(8 * h, 8 * h + 1, 8 * h + 2, 8 * h + 3), scw[i]);
                        __m512i s1 = _mm512_permutexvar_epi16(KW4(8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7), scw[i]);
                        iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(lo[i], x0), s0);
                        iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(hi[i], x1), s1);
                    }
                }
            }
        } else {
            __m512i qh[4];
            if (type == SG_TYPE_Q5_K)
                SG_UNROLL4 for (int i = 0; i < RW; i++) qh[i] = _mm512_broadcast_i64x4(
                    _mm256_loadu_si256((const __m256i *)(const void *)(w + (size_t)i * ws + sb * bs + 16)));
            SG_UNROLL4 for (int z = 0; z < 2; z++) {
                /* chunks 2z, 2z+1: lo = sub-blocks 4z | 4z+2, hi = 4z+1 | 4z+3 */
                __m512i lo[4], hi[4];
                SG_UNROLL4 for (int i = 0; i < RW; i++) {
                    if (type == SG_TYPE_IQ4_XS) {
                        /* sub-blocks 4z..4z+3, 16 bytes each (low nibbles values
                         * 0..15, high 16..31): lo = 4z | 4z+1, hi = 4z+2 | 4z+3 */
                        const __m512i tbl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k_iq4));
                        __m512i v = _mm512_loadu_si512((const void *)(w + (size_t)i * ws + sb * bs + 8 + 64 * z));
                        __m512i tl = _mm512_shuffle_epi8(tbl, _mm512_and_si512(v, m4));
                        __m512i th = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
                        lo[i] = _mm512_permutex2var_epi64(tl, _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11), th);
                        hi[i] = _mm512_permutex2var_epi64(tl, _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15), th);
                        continue;
                    }
                    const uint8_t *qs = w + (size_t)i * ws + sb * bs + (type == SG_TYPE_Q5_K ? 48 : 16) + 64 * z;
                    __m512i v = _mm512_loadu_si512((const void *)qs);
                    lo[i] = _mm512_and_si512(v, m4);
                    hi[i] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                    if (type == SG_TYPE_Q5_K) {
                        __m512i b0 = z == 0 ? _mm512_sllv_epi16(qh[i], KS2(4, 2)) : _mm512_srlv_epi16(qh[i], KS2(0, 2));
                        __m512i b1 = z == 0 ? _mm512_sllv_epi16(qh[i], KS2(3, 1)) : _mm512_srlv_epi16(qh[i], KS2(1, 3));
                        lo[i] = _mm512_or_si512(lo[i], _mm512_and_si512(b0, m10));
                        hi[i] = _mm512_or_si512(hi[i], _mm512_and_si512(b1, m10));
                    }
                }
                if (type == SG_TYPE_IQ4_XS) {
                    /* signed weights: |w| x (x negated where w < 0) */
                    __m512i aw0[4], aw1[4];
                    __mmask64 n0[4], n1[4];
                    SG_UNROLL4 for (int i = 0; i < RW; i++) {
                        aw0[i] = _mm512_abs_epi8(lo[i]);
                        aw1[i] = _mm512_abs_epi8(hi[i]);
                        n0[i] = _mm512_movepi8_mask(lo[i]);
                        n1[i] = _mm512_movepi8_mask(hi[i]);
                    }
                    const __m512i zero = _mm512_setzero_si512();
                    SG_UNROLL4 for (int j = 0; j < RA; j++) {
                        const uint8_t *ab = a + (size_t)j * as + sb * QKB + 64 + 128 * z;
                        __m512i x0 = _mm512_loadu_si512((const void *)ab), x1 = _mm512_loadu_si512((const void *)(ab + 64));
                        SG_UNROLL4 for (int i = 0; i < RW; i++) {
                            __m512i s0 = _mm512_permutexvar_epi16(KW4(4 * z, 4 * z, 4 * z + 1, 4 * z + 1), scw[i]);
                            __m512i s1 = _mm512_permutexvar_epi16(KW4(4 * z + 2, 4 * z + 2, 4 * z + 3, 4 * z + 3), scw[i]);
                            __m512i y0 = _mm512_mask_sub_epi8(x0, n0[i], zero, x0);
                            __m512i y1 = _mm512_mask_sub_epi8(x1, n1[i], zero, x1);
                            iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(aw0[i], y0), s0);
                            iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(aw1[i], y1), s1);
                        }
                    }
                    continue;
                }
                SG_UNROLL4 for (int j = 0; j < RA; j++) {
                    const uint8_t *ab = a + (size_t)j * as + sb * QKB + 64 + 128 * z;
                    __m512i x0 = ld2x256(ab, ab + 64), x1 = ld2x256(ab + 32, ab + 96);
                    SG_UNROLL4 for (int i = 0; i < RW; i++) {
                        __m512i s0 = _mm512_permutexvar_epi16(KW4(4 * z, 4 * z, 4 * z + 2, 4 * z + 2), scw[i]);
                        __m512i s1 = _mm512_permutexvar_epi16(KW4(4 * z + 1, 4 * z + 1, 4 * z + 3, 4 * z + 3), scw[i]);
                        iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(lo[i], x0), s0);
                        iacc[i][j] = _mm512_dpwssd_epi32(iacc[i][j], _mm512_maddubs_epi16(hi[i], x1), s1);
                    }
                }
            }
        }
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            const uint8_t *ab = a + (size_t)j * as + sb * QKB;
            float dx;
            memcpy(&dx, ab, 4);
            __m256i bsum = _mm256_loadu_si256((const __m256i *)(const void *)(ab + 32));
            SG_UNROLL4 for (int i = 0; i < RW; i++) {
                __m256i ia = _mm256_add_epi32(_mm512_castsi512_si256(iacc[i][j]),
                                              _mm512_extracti64x4_epi64(iacc[i][j], 1));
                __m256i corr = _mm256_madd_epi16(bsum, mins[i]);
                if (EXACT) {
                    if (type == SG_TYPE_Q6_K || type == SG_TYPE_Q3_K)
                        ia = _mm256_sub_epi32(ia, _mm256_slli_epi32(corr, type == SG_TYPE_Q6_K ? 5 : 2));
                    kfin_put(&kf, i * RA + j, ia, corr, dw[i], dmw[i], dx, MINS);
                } else if (type == SG_TYPE_Q6_K || type == SG_TYPE_Q3_K) {
                    __m256i t = _mm256_sub_epi32(ia, _mm256_slli_epi32(corr, type == SG_TYPE_Q6_K ? 5 : 2));
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
                } else if (type == SG_TYPE_IQ4_XS) {
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
                } else {
                    acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
                    acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_set1_ps(dmw[i] * dx),
                                                 acc[i][j]);
                }
            }
        }
        if (EXACT) xacc = kfin_next(&kf, xacc, NP, MINS);
    }
    if (EXACT) {
        kfin_store(&kf, xacc, NP, MINS, RW, RA, y, ldy);
        return;
    }
    SG_UNROLL4 for (int i = 0; i < RW; i++)
        SG_UNROLL4 for (int j = 0; j < RA; j++) {
            __m256 s = acc[i][j];
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            y[(size_t)j * ldy + i] = _mm_cvtss_f32(h);
        }
}

#  define CALL_K_512(T, RW_, RA_)                                                        \
    tile_k_512(T, g->w + i * g->w_stride, g->w_stride, RW_,                              \
               (const uint8_t *)g->a + j * g->a_stride, g->a_stride, RA_, nsb,           \
               g->y + j * g->ldy + i, g->ldy, EX)

SG_INLINE SG_T_512 void k_tiles_512(const sg_gemm *g, uint32_t T, size_t nsb, const int EX) {
    const int RWM = g->na == 1 ? SG_DECODE_RW : 2;
    for (size_t i = 0; i < g->nr; i += (size_t)RWM) {
        int rw = g->nr - i < (size_t)RWM ? (int)(g->nr - i) : RWM;
        for (size_t j = 0; j < g->na; j += 4) {
            int ra = g->na - j < 4 ? (int)(g->na - j) : 4;
            switch (rw * 8 + ra) {
            case 8 * 1 + 1: CALL_K_512(T, 1, 1); break;
            case 8 * 2 + 1: CALL_K_512(T, 2, 1); break;
            case 8 * 3 + 1: CALL_K_512(T, 3, 1); break;
            case 8 * 4 + 1: CALL_K_512(T, 4, 1); break;
            case 8 * 1 + 2: CALL_K_512(T, 1, 2); break;
            case 8 * 2 + 2: CALL_K_512(T, 2, 2); break;
            case 8 * 1 + 3: CALL_K_512(T, 1, 3); break;
            case 8 * 2 + 3: CALL_K_512(T, 2, 3); break;
            case 8 * 1 + 4: CALL_K_512(T, 1, 4); break;
            default: CALL_K_512(T, 2, 4); break;
            }
        }
    }
}

SG_INLINE SG_T_512 int k_gemm_512(const sg_gemm *g) {
    if (g->n % 256) return -1;
    size_t nsb = g->n / 256;
    switch (g->type) {
    case SG_TYPE_Q4_K: k_tiles_512(g, SG_TYPE_Q4_K, nsb, 0); break;
    case SG_TYPE_Q5_K: k_tiles_512(g, SG_TYPE_Q5_K, nsb, 0); break;
    case SG_TYPE_Q2_K: k_tiles_512(g, SG_TYPE_Q2_K, nsb, 0); break;
    case SG_TYPE_Q3_K: k_tiles_512(g, SG_TYPE_Q3_K, nsb, 0); break;
    case SG_TYPE_IQ4_XS: k_tiles_512(g, SG_TYPE_IQ4_XS, nsb, 0); break;
    default: k_tiles_512(g, SG_TYPE_Q6_K, nsb, 0); break;
    }
    return 0;
}

/* The x8 tile with VNNI: Q4_0's 8 vpmaddubsw, int16 adds and vpmaddwd of a
 * block become 8 vpdpbusd into the offset c8 (the same exact int32 sums),
 * the float steps unchanged: bitwise the AVX2 tile's (and the portable)
 * results. Q8_0 (x8 layout of 272-byte blocks): its bytes + 128 (xor 0x80)
 * as the unsigned operand, 8 vpdpbusd into the activation's c128 = -128 *
 * sum(x): again the exact block dot. wv[c] pairs with activation bytes
 * 4c..4c+3 of lo (c < 4) or hi (c >= 4) for both types. */
SG_INLINE SG_T_512 void x8_prep_512(uint32_t type, const uint8_t *w, __m256i *wv) {
    if (type == SG_TYPE_Q8_0) {
        const __m256i c80 = _mm256_set1_epi8((char)0x80);
        SG_UNROLL8 for (int c = 0; c < 8; c++)
            wv[c] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c)), c80);
        return;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    SG_UNROLL4 for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(w + 16 + 32 * c));
        wv[c] = _mm256_and_si256(v, m4);
        wv[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
}

/* x8_prep_512 for two groups at once, lanes 8-15 from w1, in 512-bit
 * operations */
SG_INLINE SG_T_512 __m512i x16_load_512(const uint8_t *w0, const uint8_t *w1) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)w0)),
                              _mm256_loadu_si256((const __m256i *)(const void *)w1), 1);
}

SG_INLINE SG_T_512 void x16_prep_512(uint32_t type, const uint8_t *w0, const uint8_t *w1, __m512i *wv) {
    if (type == SG_TYPE_Q8_0) {
        const __m512i c80 = _mm512_set1_epi8((char)0x80);
        SG_UNROLL8 for (int c = 0; c < 8; c++)
            wv[c] = _mm512_xor_si512(x16_load_512(w0 + 16 + 32 * c, w1 + 16 + 32 * c), c80);
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    SG_UNROLL4 for (int c = 0; c < 4; c++) {
        __m512i v = x16_load_512(w0 + 16 + 32 * c, w1 + 16 + 32 * c);
        wv[c] = _mm512_and_si512(v, m4);
        wv[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
}

/* bytes of one block of 8 rows in the x8 layout, and the weight lines
 * prefetched per block */
#  define X8_BB(type) ((type) == SG_TYPE_Q8_0 ? (size_t)272 : (type) == SG_TYPE_Q4_1 ? (size_t)160 : (size_t)144)

SG_INLINE SG_T_512 void x8_prefetch_512(uint32_t type, const uint8_t *w) {
#  ifndef SG_GEMM_NO_PREFETCH
    if (type == SG_TYPE_Q8_0) {
        SG_UNROLL8 for (int l = 0; l < 5; l++)
            _mm_prefetch((const char *)(w + SG_X8Q8_PF + 64 * l), SG_PFW_HINT);
    } else {
        _mm_prefetch((const char *)(w + SG_X8_PF), SG_PFW_HINT);
        _mm_prefetch((const char *)(w + SG_X8_PF + 48), SG_PFW_HINT);
        _mm_prefetch((const char *)(w + SG_X8_PF + 96), SG_PFW_HINT);
        if (type == SG_TYPE_Q4_1) _mm_prefetch((const char *)(w + SG_X8_PF + 144), SG_PFW_HINT);
    }
#  else
    (void)type, (void)w;
#  endif
}

SG_INLINE SG_T_512 void tile_x8_512(uint32_t type, const uint8_t *w, const uint8_t *a, size_t as,
                                    const int RA, size_t nb, float *y, size_t ldy) {
    __m256 acc[SG_X8_RA];
    SG_UNROLL8 for (int j = 0; j < RA; j++) acc[j] = _mm256_setzero_ps();
    const size_t bb = X8_BB(type), io = type == SG_TYPE_Q8_0 ? 320 : 256;
    for (size_t b = 0; b < nb; b++, w += bb) {
        x8_prefetch_512(type, w);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)w));
        const __m256 mw = type == SG_TYPE_Q4_1
                              ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + 144)))
                              : _mm256_setzero_ps();
        __m256i wv[8];
        x8_prep_512(type, w, wv);
        const size_t go = (b / 4) * QG + (b % 4) * 16;
        SG_UNROLL8 for (int j = 0; j < RA; j++) {
            const uint8_t *g = a + (size_t)j * as + go;
            __m256i s0 = type != SG_TYPE_Q4_1 ? bcast32_avx2(g + io) : _mm256_setzero_si256();
            __m256i s1 = _mm256_setzero_si256();
            SG_UNROLL4 for (int c = 0; c < 4; c++) {
                s0 = _mm256_dpbusd_epi32(s0, wv[c], bcast32_avx2(g + 4 * c));
                s1 = _mm256_dpbusd_epi32(s1, wv[4 + c], bcast32_avx2(g + 64 + 4 * c));
            }
            __m256i s = _mm256_add_epi32(s0, s1);
            __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, bcastf_avx2(g + 128)));
            if (type == SG_TYPE_Q4_1) /* + m * sa, as dot_q8_generic */
                t = _mm256_add_ps(t, _mm256_mul_ps(mw, bcastf_avx2(g + 192)));
            acc[j] = _mm256_add_ps(acc[j], t);
        }
    }
    SG_UNROLL8 for (int j = 0; j < RA; j++) _mm256_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

/* Two x8 groups side by side in 512-bit vectors (lanes 0-7 the rows of w0,
 * 8-15 those of w1): per lane the same operations as tile_x8_512, so the
 * same bits, with half the instructions per weight row; the activation
 * loads and broadcasts serve 16 rows. */
SG_INLINE SG_T_512 void tile_x16_512(uint32_t type, const uint8_t *w0, const uint8_t *w1, const uint8_t *a,
                                     size_t as, const int RA, size_t nb, float *y, size_t ldy) {
    __m512 acc[SG_X8_RA];
    SG_UNROLL8 for (int j = 0; j < RA; j++) acc[j] = _mm512_setzero_ps();
    const size_t bb = X8_BB(type), io = type == SG_TYPE_Q8_0 ? 320 : 256;
    for (size_t b = 0; b < nb; b++, w0 += bb, w1 += bb) {
        x8_prefetch_512(type, w0);
        x8_prefetch_512(type, w1);
        const __m256i sc = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)w0)),
            _mm_loadu_si128((const __m128i *)(const void *)w1), 1);
        const __m512 dw = _mm512_cvtph_ps(sc);
        __m512 mw = _mm512_setzero_ps();
        if (type == SG_TYPE_Q4_1)
            mw = _mm512_cvtph_ps(_mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(w0 + 144))),
                _mm_loadu_si128((const __m128i *)(const void *)(w1 + 144)), 1));
        __m512i wv[8];
        x16_prep_512(type, w0, w1, wv);
        const size_t go = (b / 4) * QG + (b % 4) * 16;
        SG_UNROLL8 for (int j = 0; j < RA; j++) {
            const uint8_t *g = a + (size_t)j * as + go;
            /* broadcasts from memory (GCC's set1 of a loaded int went
             * through a general register and port 5, which vpdpbusd needs) */
            __m512i s0 = type != SG_TYPE_Q4_1 ? bcast32_512(g + io) : _mm512_setzero_si512();
            __m512i s1 = _mm512_setzero_si512();
            SG_UNROLL4 for (int c = 0; c < 4; c++) {
                s0 = _mm512_dpbusd_epi32(s0, wv[c], bcast32_512(g + 4 * c));
                s1 = _mm512_dpbusd_epi32(s1, wv[4 + c], bcast32_512(g + 64 + 4 * c));
            }
            __m512i s = _mm512_add_epi32(s0, s1);
            __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, bcastf_512(g + 128)));
            if (type == SG_TYPE_Q4_1)
                t = _mm512_add_ps(t, _mm512_mul_ps(mw, bcastf_512(g + 192)));
            acc[j] = _mm512_add_ps(acc[j], t);
        }
    }
    SG_UNROLL8 for (int j = 0; j < RA; j++) _mm512_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

#  if SG_X8_RA == 8
#    define X8_RA_CASES(FN, ...)                                                \
        case 5: FN(__VA_ARGS__, 5, nb, y, g->ldy); break;                       \
        case 6: FN(__VA_ARGS__, 6, nb, y, g->ldy); break;                       \
        case 7: FN(__VA_ARGS__, 7, nb, y, g->ldy); break;
#  else
#    define X8_RA_CASES(FN, ...)
#  endif
#  define X8_RA_SWITCH(FN, ...)                                                 \
    switch (ra) {                                                               \
    case 1: FN(__VA_ARGS__, 1, nb, y, g->ldy); break;                           \
    case 2: FN(__VA_ARGS__, 2, nb, y, g->ldy); break;                           \
    case 3: FN(__VA_ARGS__, 3, nb, y, g->ldy); break;                           \
    case 4: FN(__VA_ARGS__, 4, nb, y, g->ldy); break;                           \
    X8_RA_CASES(FN, __VA_ARGS__)                                                \
    default: FN(__VA_ARGS__, SG_X8_RA, nb, y, g->ldy); break;                   \
    }

SG_INLINE SG_T_512 void x8_tiles_512(const sg_gemm *g, uint32_t T, int two_decode) {
    size_t nb = g->n / 32;
    for (size_t i = 0; i < g->nr;) {
        const uint8_t *w = g->w + i * g->w_stride;
        /* two groups at once for batches; decode, bound by memory, reads
         * one stream of weights (two were slower on AMD Zen 4 and Zen 5)
         * unless two_decode (the AMX level: 12-20% faster on the Intel
         * Xeon with AMX; the same bits either way) */
        const int two = (g->na > 1 || two_decode) && i + 16 <= g->nr;
        const uint8_t *w1 = w + 8 * g->w_stride;
        /* up to SG_X8_RA activation rows per pass: a batch of 8 decode
         * rows (8 sessions) takes the weights in one pass, so their stream
         * from memory spreads over all 8 rows' arithmetic instead of
         * arriving in bursts for the first of two 4-row passes */
        for (size_t j = 0; j < g->na; j += SG_X8_RA) {
            const uint8_t *a = (const uint8_t *)g->a + j * g->a_stride;
            float *y = g->y + j * g->ldy + i;
            const int ra = g->na - j < SG_X8_RA ? (int)(g->na - j) : SG_X8_RA;
            if (two) {
                X8_RA_SWITCH(tile_x16_512, T, w, w1, a, g->a_stride)
            } else {
                X8_RA_SWITCH(tile_x8_512, T, w, a, g->a_stride)
            }
        }
        i += two ? 16 : 8;
    }
}

static SG_T_512 int x8_gemm_512(const sg_gemm *g, int two_decode) {
    if (!x8_shape_ok(g)) return -1;
    if (g->type == SG_TYPE_Q8_0)
        x8_tiles_512(g, SG_TYPE_Q8_0, two_decode);
    else if (g->type == SG_TYPE_Q4_1)
        x8_tiles_512(g, SG_TYPE_Q4_1, two_decode);
    else
        x8_tiles_512(g, SG_TYPE_Q4_0, two_decode);
    return 0;
}

SG_T_512 int sg_gemm_x8_avx512(const sg_gemm *g) { return x8_gemm_512(g, 0); }

/* ---- AMX: the x8 tiles' integer sums in tile registers ---------------------- */
#  if SG_HAVE_AMX
#    define SG_T_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c,amx-tile,amx-int8")))

/* Our own asm (AT&T order: tdpbsud B, A, C) with a memory clobber: the
 * loads read buffers the compiler just wrote, the store one it reads next. */
#    define AMX_LD(t, p, s) __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"((long)(s)) : "memory")
#    define AMX_ST(t, p, s) __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p), "r"((long)(s)) : "memory")
#    define AMX_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
#    define AMX_DP(c, a, b) __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

/* ldtilecfg's 64 bytes: palette 1; tmm0 C (16 activation rows x 16 weight
 * rows of int32; tmm5 the second), tmm1/tmm2 A (16 rows x 16 bytes: a
 * block's lo and hi activation halves), tmm3/tmm4 B (4 rows x 64 bytes: the
 * weights' lo and hi halves in dword-interleaved order) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* 16 weight rows (the x8 groups at w0 and w1) x 16 activation rows.
 * x16_prep_512's wv[c] is row c of a B tile as it is (for each of the 16
 * weight rows the 4 bytes that meet activation bytes 4c..4c+3), so a block
 * is two tdpbsud of K = 16 (activations signed, weights unsigned: exactly
 * vpdpbusd's int32 sums), and the float steps per lane are tile_x16_512's
 * in its order: the same bits as the AVX-512 tile (and the portable
 * kernel).
 *
 * The weights of a run of blocks are first expanded into B-tile rows plus
 * their 16 scales (AMX_BB(type) bytes a block; in the caller's work memory, else
 * AMX_KC blocks at a time on the stack), then every 16 activation rows read
 * them: the expansion is shared by all of the batch, and the tile loads do
 * not wait for just-written stores. A run after the first continues the
 * accumulators from y (stored and reloaded exactly: the same bits). Two C
 * tiles take turns (tmm0 even blocks, tmm5 odd) so a block's products run
 * while the previous block's sums are scaled into the accumulators. */
#    define SG_UNROLL16 _Pragma("GCC unroll 16")
#    define AMX_BB(T) ((T) == SG_TYPE_Q4_1 ? 640 : 576) /* 2 B tiles of 4 x 64 bytes, 16 float scales (Q4_1: and minimums) */
#    define AMX_BBMAX 640
#    define AMX_KC 8   /* blocks per run without work memory */

SG_INLINE SG_T_AMX void amx16_expand(uint32_t type, const uint8_t *w0, const uint8_t *w1, size_t nb, uint8_t *dst) {
    const size_t bb = X8_BB(type);
    for (size_t b = 0; b < nb; b++, w0 += bb, w1 += bb, dst += AMX_BB(type)) {
        x8_prefetch_512(type, w0);
        x8_prefetch_512(type, w1);
        const __m256i sc = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)w0)),
            _mm_loadu_si128((const __m128i *)(const void *)w1), 1);
        __m512i wv[8];
        x16_prep_512(type, w0, w1, wv);
        SG_UNROLL8 for (int c = 0; c < 8; c++) _mm512_store_si512((void *)(dst + 64 * c), wv[c]);
        _mm512_store_ps((void *)(dst + 512), _mm512_cvtph_ps(sc));
        if (type == SG_TYPE_Q4_1)
            _mm512_store_ps((void *)(dst + 576),
                            _mm512_cvtph_ps(_mm256_inserti128_si256(
                                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(w0 + 144))),
                                _mm_loadu_si128((const __m128i *)(const void *)(w1 + 144)), 1)));
    }
}

SG_INLINE SG_T_AMX void amx16_post(uint32_t type, const int32_t *cb, const uint8_t *g, size_t as, size_t io,
                                   const uint8_t *bx, __m512 *acc) {
    const __m512 dw = _mm512_load_ps((const void *)(bx + 512));
    const __m512 mw = type == SG_TYPE_Q4_1 ? _mm512_load_ps((const void *)(bx + 576)) : _mm512_setzero_ps();
    SG_UNROLL16 for (int j = 0; j < 16; j++) {
        const uint8_t *gj = g + (size_t)j * as;
        __m512i s = _mm512_load_si512((const void *)(cb + 16 * j));
        if (type != SG_TYPE_Q4_1) s = _mm512_add_epi32(bcast32_512(gj + io), s);
        __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, bcastf_512(gj + 128)));
        if (type == SG_TYPE_Q4_1) /* the x16 tile's + m * sa */
            t = _mm512_add_ps(t, _mm512_mul_ps(mw, bcastf_512(gj + 192)));
        acc[j] = _mm512_add_ps(acc[j], t);
    }
}

/* blocks [b0, b0 + n) of 16 activation rows at a, expanded weights at bx
 * (block b0 first); first: start from zero, else from y */
SG_INLINE SG_T_AMX void tile_amx16(uint32_t type, const uint8_t *bx, const uint8_t *a, size_t as, size_t b0,
                                   size_t n, int first, float *y, size_t ldy) {
    __m512 acc[16];
    SG_UNROLL16 for (int j = 0; j < 16; j++) acc[j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + (size_t)j * ldy);
    _Alignas(64) int32_t cb0[16 * 16], cb1[16 * 16];
    const size_t io = type == SG_TYPE_Q8_0 ? 320 : 256, BB = AMX_BB(type);
#    define AMX_G(b) (a + ((b0 + (b)) / 4) * QG + ((b0 + (b)) % 4) * 16)
    for (size_t b = 0; b < n; b += 2) {
#    if !defined(SG_GEMM_NO_PREFETCH) && !defined(SG_AMX_NO_PF)
        /* the 16 rows' lines of the next group of 4 blocks (lo and hi):
         * the tile loads would otherwise wait for L2 line by line */
        const size_t bk = b0 + b;
        if (bk % 4 < 2 && (bk / 4 + 1) * 4 < b0 + n) {
            const uint8_t *pg = a + (bk / 4 + 1) * QG;
            SG_UNROLL16 for (int j = 0; j < 16; j++) {
                _mm_prefetch((const char *)(pg + (size_t)j * as), _MM_HINT_T0);
                _mm_prefetch((const char *)(pg + (size_t)j * as + 64), _MM_HINT_T0);
            }
        }
#    endif
        AMX_LD(1, AMX_G(b), as);
        AMX_LD(2, AMX_G(b) + 64, as);
        AMX_LD(3, bx + b * BB, 64);
        AMX_LD(4, bx + b * BB + 256, 64);
        AMX_ZERO(0);
        AMX_DP(0, 1, 3);
        AMX_DP(0, 2, 4);
        AMX_ST(0, cb0, 64);
        if (b > 0) amx16_post(type, cb1, AMX_G(b - 1), as, io, bx + (b - 1) * BB, acc);
        if (b + 1 < n) {
            AMX_LD(1, AMX_G(b + 1), as);
            AMX_LD(2, AMX_G(b + 1) + 64, as);
            AMX_LD(3, bx + (b + 1) * BB, 64);
            AMX_LD(4, bx + (b + 1) * BB + 256, 64);
            AMX_ZERO(5);
            AMX_DP(5, 1, 3);
            AMX_DP(5, 2, 4);
            AMX_ST(5, cb1, 64);
        }
        amx16_post(type, cb0, AMX_G(b), as, io, bx + b * BB, acc);
    }
    if (n % 2 == 0 && n > 0) amx16_post(type, cb1, AMX_G(n - 1), as, io, bx + (n - 1) * BB, acc);
#    undef AMX_G
    SG_UNROLL16 for (int j = 0; j < 16; j++) _mm512_storeu_ps(y + (size_t)j * ldy, acc[j]);
}

SG_INLINE SG_T_AMX void amx_tiles(const sg_gemm *g, uint32_t T, size_t nr16, size_t na16) {
    const size_t nb = g->n / 32;
    _Alignas(64) uint8_t stack[AMX_KC * AMX_BBMAX];
    uint8_t *buf = stack;
    size_t kc = AMX_KC;
    if (g->work && g->work_bytes >= 64 + nb * AMX_BB(T)) {
        buf = (uint8_t *)(((uintptr_t)g->work + 63) & ~(uintptr_t)63);
        kc = nb;
    }
    for (size_t i = 0; i < nr16; i += 16) {
        const uint8_t *w = g->w + i * g->w_stride;
        for (size_t b0 = 0; b0 < nb; b0 += kc) {
            const size_t n = nb - b0 < kc ? nb - b0 : kc;
            amx16_expand(T, w + b0 * X8_BB(T), w + 8 * g->w_stride + b0 * X8_BB(T), n, buf);
            for (size_t j = 0; j < na16; j += 16)
                tile_amx16(T, buf, (const uint8_t *)g->a + j * g->a_stride, g->a_stride, b0, n, b0 == 0,
                           g->y + j * g->ldy + i, g->ldy);
        }
    }
}

/* ---- AMX: Q4_K, Q5_K, Q6_K and IQ4_XS ----
 * A super-block's integer totals for 16 activation rows x 16 weight rows
 * come out of tile registers whole, so the float steps can be the portable
 * kernel's (dot_k_generic): acc += (d * dx) * isum (Q4_K/Q5_K also
 * acc -= (dmin * dx) * imin), with isum = sum over sub-blocks of scale x
 * the sub-block's dot product. The sub-block scales are folded into the
 * weights as digits small enough that weight x digit is a byte, so each
 * digit's product is one plain dot product over all 256 values (4 chunks
 * of K = 64) and isum a sum of shifted tile results:
 * - Q4_K/Q5_K (q 0..31 unsigned, scales 0..63): sc = 8 hi + lo, B tiles
 *   q lo and q hi (at most 217) and a third with the minimum mn_j for each
 *   value of sub-block j: isum = C0 + 8 C1, imin = C2 (tdpbsud:
 *   activations signed, weights unsigned);
 * - Q6_K (q - 32 in -32..31, scales int8 per 16 values): sc = d0 + 4 d1 +
 *   16 d2 + 64 d3, d0..d2 in 0..3, d3 = sc >> 6 in -2..1: isum = C0 + 4 C1 +
 *   16 C2 + 64 C3 (tdpbssd, both signed);
 * - IQ4_XS (values -127..113, scales ls - 32 in -32..31): the six bits b_t
 *   of (ls - 32) mod 64 as digits, the top one weighing -32: isum = C0 +
 *   2 C1 + 4 C2 + 8 C3 + 16 C4 - 32 C5.
 * No per-sub-block work is left for the vector units. The AMX level's
 * decode and small batches of these types run the AVX-512 tile with exact
 * finishing (EXACT = 1): the same bits.
 *
 * The weights of 16 rows are expanded per super-block into B-tile planes
 * (4096 bytes per digit: row d holds, for each weight row n, the 4 values
 * 4d..4d+3 times the digit, gathered across the 16 rows) and the 16 rows'
 * d (and dmin) as floats, once per run of super-blocks and shared by every
 * 16 activation rows (the caller's work memory is not used). */
#    define AMX_DPS(c, a, b) __asm__ volatile("tdpbssd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)
#    define AMXK_BB(T) (amxk_planes(T) * 4096 + 128)
#    define AMXK_BBMAX (6 * 4096 + 128)
#    define AMXK_KC 2 /* super-blocks per run without work memory */

static inline int amxk_planes(uint32_t type) {
    return type == SG_TYPE_IQ4_XS ? 6 : type == SG_TYPE_Q6_K ? 4 : 3;
}

/* bytes of v times the per-dword 16-bit digit in dg (both halves), each
 * byte on its own (signed or not: the low 8 bits of the product) */
SG_INLINE SG_T_AMX __m512i amxk_mulb(__m512i v, __m512i dg) {
    const __m512i lo8 = _mm512_set1_epi16(0x00ff);
    __m512i e = _mm512_mullo_epi16(_mm512_and_si512(v, lo8), dg);
    __m512i o = _mm512_mullo_epi16(_mm512_andnot_si512(lo8, v), dg);
    return _mm512_or_si512(_mm512_and_si512(e, lo8), _mm512_andnot_si512(lo8, o));
}

SG_INLINE SG_T_AMX void amxk_expand(uint32_t type, const uint8_t *w, size_t ws, size_t sb0, size_t nsb,
                                    uint8_t *dst) {
    const size_t bs = k_bytes(type), bb = (size_t)AMXK_BB(type);
    const int np = amxk_planes(type);
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)ws));
    const __m512i m4 = _mm512_set1_epi8(0x0f), m1 = _mm512_set1_epi8(1), m3 = _mm512_set1_epi8(3);
    const __m512i tbl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)k_iq4));
    for (size_t sb = sb0; sb < sb0 + nsb; sb++, dst += bb) {
        /* digit t of sub-scale k for weight row n, as a 16-bit value in
         * both halves of a dword (the minimums of Q4_K/Q5_K in all 4
         * bytes); sub-scales: 8 of 32 values, Q6_K 16 of 16 */
        _Alignas(64) uint32_t dg[6][16][16];
        float *dw = (float *)(void *)(dst + (size_t)np * 4096), *dmw = dw + 16;
        for (int n = 0; n < 16; n++) {
            const uint8_t *wb = w + (size_t)n * ws + sb * bs;
            if (type == SG_TYPE_Q6_K) {
                dw[n] = sg_f16_to_f32(rd16(wb + 208));
                dmw[n] = 0.0f;
                for (int k = 0; k < 16; k++) {
                    int sc = (int8_t)wb[192 + k];
                    for (int t = 0; t < 3; t++) dg[t][k][n] = (uint32_t)((sc >> (2 * t)) & 3) * 0x00010001u;
                    dg[3][k][n] = (uint32_t)(uint16_t)(int16_t)(sc >> 6) * 0x00010001u;
                }
            } else if (type == SG_TYPE_IQ4_XS) {
                uint8_t ls[8];
                iq4xs_scales8(wb, ls);
                dw[n] = sg_f16_to_f32(rd16(wb));
                dmw[n] = 0.0f;
                for (int k = 0; k < 8; k++) {
                    unsigned u = (unsigned)(ls[k] ^ 32); /* (ls - 32) mod 64 */
                    for (int t = 0; t < 6; t++) dg[t][k][n] = ((u >> t) & 1u) * 0x00010001u;
                }
            } else {
                dw[n] = sg_f16_to_f32(rd16(wb));
                dmw[n] = sg_f16_to_f32(rd16(wb + 2));
                for (int j = 0; j < 8; j++) {
                    int sc, m;
                    k_scale_min(wb + 4, j, &sc, &m);
                    dg[0][j][n] = (uint32_t)(sc & 7) * 0x00010001u;
                    dg[1][j][n] = (uint32_t)(sc >> 3) * 0x00010001u;
                    dg[2][j][n] = (uint32_t)m * 0x01010101u;
                }
            }
        }
        const uint8_t *w0 = w + sb * bs;
        for (int d = 0; d < 64; d++) {
            __m512i q; /* values 4d..4d+3 of the 16 rows, as bytes */
            int k;     /* their sub-scale */
            if (type == SG_TYPE_Q6_K) {
                /* value v = 4d + t: h = v / 128, part = (v % 128) / 32, li = v % 32 */
                const int h = d / 32, part = (d % 32) / 8, li = 4 * (d % 8);
                __m512i l = _mm512_i32gather_epi32(rows, (const void *)(w0 + 64 * h + 32 * (part & 1) + li), 1);
                __m512i hb = _mm512_i32gather_epi32(rows, (const void *)(w0 + 128 + 32 * h + li), 1);
                l = _mm512_and_si512(part >= 2 ? _mm512_srli_epi32(l, 4) : l, m4);
                hb = _mm512_and_si512(_mm512_srli_epi32(hb, 2 * part), m3);
                q = _mm512_sub_epi8(_mm512_or_si512(l, _mm512_slli_epi32(hb, 4)), _mm512_set1_epi8(32));
                k = d / 4;
            } else if (type == SG_TYPE_IQ4_XS) {
                /* sub-block k = d / 8: values 0..15 low nibbles of qs[16k + l], 16..31 high */
                const int e = 4 * (d % 8);
                k = d / 8;
                __m512i v = _mm512_i32gather_epi32(rows, (const void *)(w0 + 8 + 16 * k + e % 16), 1);
                q = _mm512_shuffle_epi8(tbl, _mm512_and_si512(e >= 16 ? _mm512_srli_epi32(v, 4) : v, m4));
            } else {
                const int j = d / 8, l = 4 * (d % 8), q5 = type == SG_TYPE_Q5_K;
                __m512i v = _mm512_i32gather_epi32(rows, (const void *)(w0 + (q5 ? 48 : 16) + 32 * (j / 2) + l), 1);
                q = _mm512_and_si512(j & 1 ? _mm512_srli_epi32(v, 4) : v, m4);
                if (q5) {
                    __m512i h = _mm512_i32gather_epi32(rows, (const void *)(w0 + 16 + l), 1);
                    q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(h, j), m1), 4));
                }
                k = j;
            }
            for (int t = 0; t < np; t++) {
                __m512i dv = _mm512_load_si512((const void *)dg[t][k]);
                __m512i o = t == 2 && np == 3 ? dv : amxk_mulb(q, dv);
                _mm512_store_si512((void *)(dst + 4096 * (size_t)t + 64 * d), o);
            }
        }
    }
}

/* one chunk c (K = 64) of a super-block: A = activation bytes 64c.., the
 * planes' B tiles; literal tile numbers, so one block per plane count */
#    define AMXK_CHUNKS(T, b, ab, as)                                                                   \
        do {                                                                                           \
            for (int c = 0; c < 4; c++) {                                                              \
                if (T == SG_TYPE_IQ4_XS) {                                                             \
                    AMX_LD(6, ab + 64 + 64 * c, as);                                                   \
                    AMX_LD(7, b + 1024 * c, 64);           AMX_DPS(0, 6, 7);                           \
                    AMX_LD(7, b + 4096 + 1024 * c, 64);    AMX_DPS(1, 6, 7);                           \
                    AMX_LD(7, b + 2 * 4096 + 1024 * c, 64); AMX_DPS(2, 6, 7);                          \
                    AMX_LD(7, b + 3 * 4096 + 1024 * c, 64); AMX_DPS(3, 6, 7);                          \
                    AMX_LD(7, b + 4 * 4096 + 1024 * c, 64); AMX_DPS(4, 6, 7);                          \
                    AMX_LD(7, b + 5 * 4096 + 1024 * c, 64); AMX_DPS(5, 6, 7);                          \
                } else if (T == SG_TYPE_Q6_K) {                                                        \
                    AMX_LD(4, ab + 64 + 64 * c, as);                                                   \
                    AMX_LD(5, b + 1024 * c, 64);           AMX_DPS(0, 4, 5);                           \
                    AMX_LD(6, b + 4096 + 1024 * c, 64);    AMX_DPS(1, 4, 6);                           \
                    AMX_LD(7, b + 2 * 4096 + 1024 * c, 64); AMX_DPS(2, 4, 7);                          \
                    AMX_LD(5, b + 3 * 4096 + 1024 * c, 64); AMX_DPS(3, 4, 5);                          \
                } else {                                                                               \
                    AMX_LD(3, ab + 64 + 64 * c, as);                                                   \
                    AMX_LD(4, b + 1024 * c, 64);           AMX_DP(0, 3, 4);                            \
                    AMX_LD(5, b + 4096 + 1024 * c, 64);    AMX_DP(1, 3, 5);                            \
                    AMX_LD(6, b + 2 * 4096 + 1024 * c, 64); AMX_DP(2, 3, 6);                           \
                }                                                                                      \
            }                                                                                          \
        } while (0)

/* super-blocks [sb0, sb0 + nsb) of 16 activation rows at a, expanded
 * weights at bx; first: start from zero, else from y */
SG_INLINE SG_T_AMX void tile_amxk16(uint32_t T, const uint8_t *bx, const uint8_t *a, size_t as, size_t sb0,
                                    size_t nsb, int first, float *y, size_t ldy) {
    __m512 acc[16];
    SG_UNROLL16 for (int m = 0; m < 16; m++) acc[m] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + (size_t)m * ldy);
    const int np = amxk_planes(T);
    _Alignas(64) int32_t cb[6][256];
    for (size_t s = 0; s < nsb; s++) {
        const uint8_t *b = bx + s * (size_t)AMXK_BB(T), *ab = a + (sb0 + s) * QKB;
        AMX_ZERO(0);
        AMX_ZERO(1);
        AMX_ZERO(2);
        if (np > 3) AMX_ZERO(3);
        if (np > 4) {
            AMX_ZERO(4);
            AMX_ZERO(5);
        }
        AMXK_CHUNKS(T, b, ab, as);
        AMX_ST(0, cb[0], 64);
        AMX_ST(1, cb[1], 64);
        AMX_ST(2, cb[2], 64);
        if (np > 3) AMX_ST(3, cb[3], 64);
        if (np > 4) {
            AMX_ST(4, cb[4], 64);
            AMX_ST(5, cb[5], 64);
        }
        const __m512 dw = _mm512_load_ps((const void *)(b + (size_t)np * 4096)),
                     dmw = _mm512_load_ps((const void *)(b + (size_t)np * 4096 + 64));
        SG_UNROLL16 for (int m = 0; m < 16; m++) {
            float dx;
            memcpy(&dx, ab + (size_t)m * as, 4);
            const __m512 vx = _mm512_set1_ps(dx);
#    define AMXK_C(t) _mm512_load_si512((const void *)(cb[t] + 16 * m))
            __m512i is;
            if (T == SG_TYPE_IQ4_XS)
                is = _mm512_sub_epi32(
                    _mm512_add_epi32(
                        _mm512_add_epi32(_mm512_add_epi32(AMXK_C(0), _mm512_slli_epi32(AMXK_C(1), 1)),
                                         _mm512_add_epi32(_mm512_slli_epi32(AMXK_C(2), 2), _mm512_slli_epi32(AMXK_C(3), 3))),
                        _mm512_slli_epi32(AMXK_C(4), 4)),
                    _mm512_slli_epi32(AMXK_C(5), 5));
            else if (T == SG_TYPE_Q6_K)
                is = _mm512_add_epi32(_mm512_add_epi32(AMXK_C(0), _mm512_slli_epi32(AMXK_C(1), 2)),
                                      _mm512_add_epi32(_mm512_slli_epi32(AMXK_C(2), 4), _mm512_slli_epi32(AMXK_C(3), 6)));
            else
                is = _mm512_add_epi32(AMXK_C(0), _mm512_slli_epi32(AMXK_C(1), 3));
            acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(_mm512_mul_ps(dw, vx), _mm512_cvtepi32_ps(is)));
            if (T == SG_TYPE_Q4_K || T == SG_TYPE_Q5_K)
                acc[m] = _mm512_sub_ps(acc[m], _mm512_mul_ps(_mm512_mul_ps(dmw, vx), _mm512_cvtepi32_ps(AMXK_C(2))));
#    undef AMXK_C
        }
    }
    SG_UNROLL16 for (int m = 0; m < 16; m++) _mm512_storeu_ps(y + (size_t)m * ldy, acc[m]);
}

/* AMXK_KC super-blocks at a time, expanded on the stack: 25-50 KB that
 * stay in L1/L2 while every 16 activation rows read them (a whole row's
 * planes, 12-24 KB a super-block, would not; the accumulators go through
 * y between runs, exactly) */
SG_INLINE SG_T_AMX void amxk_tiles(const sg_gemm *g, uint32_t T, size_t nr16, size_t na16) {
    const size_t nsb = g->n / 256, kc = AMXK_KC;
    _Alignas(64) uint8_t buf[AMXK_KC * AMXK_BBMAX];
    for (size_t i = 0; i < nr16; i += 16) {
        const uint8_t *w = g->w + i * g->w_stride;
        for (size_t s0 = 0; s0 < nsb; s0 += kc) {
            const size_t n = nsb - s0 < kc ? nsb - s0 : kc;
            amxk_expand(T, w, g->w_stride, s0, n, buf);
            for (size_t j = 0; j < na16; j += 16)
                tile_amxk16(T, buf, (const uint8_t *)g->a + j * g->a_stride, g->a_stride, s0, n, s0 == 0,
                            g->y + j * g->ldy + i, g->ldy);
        }
    }
}

static inline int amxk_type(uint32_t t) {
    return t == SG_TYPE_Q4_K || t == SG_TYPE_Q5_K || t == SG_TYPE_Q6_K || t == SG_TYPE_IQ4_XS;
}

SG_INLINE SG_T_AMX void amxk_rest(const sg_gemm *g, uint32_t T, size_t nsb) {
    switch (T) {
    case SG_TYPE_Q4_K: k_tiles_512(g, SG_TYPE_Q4_K, nsb, 1); break;
    case SG_TYPE_Q5_K: k_tiles_512(g, SG_TYPE_Q5_K, nsb, 1); break;
    case SG_TYPE_Q6_K: k_tiles_512(g, SG_TYPE_Q6_K, nsb, 1); break;
    default: k_tiles_512(g, SG_TYPE_IQ4_XS, nsb, 1); break;
    }
}

/* The AMX level's gemm: Q4_K/Q5_K/Q6_K/IQ4_XS batches of 16 rows and more
 * through the tiles above, the rest of those types through the AVX-512
 * tile with exact finishing; every other type as sg_gemm_avx512. */
SG_T_AMX int sg_gemm_amx(const sg_gemm *g) {
    if (!amxk_type(g->type)) return sg_gemm_avx512(g);
    if (g->n == 0 || g->n % 256) return -1;
    const uint32_t T = g->type;
    const size_t nsb = g->n / 256, na16 = g->na / 16 * 16;
    /* the gathers index 16 rows with int32 offsets */
    const size_t nr16 = g->w_stride <= (size_t)INT32_MAX / 16 ? g->nr / 16 * 16 : 0;
    if (nr16 && na16) {
        _Alignas(64) amx_cfg cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.palette = 1;
        for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
        __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
        switch (T) {
        case SG_TYPE_Q4_K: amxk_tiles(g, SG_TYPE_Q4_K, nr16, na16); break;
        case SG_TYPE_Q5_K: amxk_tiles(g, SG_TYPE_Q5_K, nr16, na16); break;
        case SG_TYPE_Q6_K: amxk_tiles(g, SG_TYPE_Q6_K, nr16, na16); break;
        default: amxk_tiles(g, SG_TYPE_IQ4_XS, nr16, na16); break;
        }
        __asm__ volatile("tilerelease" ::);
        sg_gemm r = *g;
        if (nr16 < g->nr) { /* the rows past the last 16, every activation row */
            r.w = g->w + nr16 * g->w_stride;
            r.nr = g->nr - nr16;
            r.y = g->y + nr16;
            amxk_rest(&r, T, nsb);
        }
        if (na16 == g->na) return 0;
        r = *g; /* the activation rows past the last 16, the first nr16 rows */
        r.nr = nr16;
        r.a = (const uint8_t *)g->a + na16 * g->a_stride;
        r.na = g->na - na16;
        r.y = g->y + na16 * g->ldy;
        amxk_rest(&r, T, nsb);
        return 0;
    }
    amxk_rest(g, T, nsb);
    return 0;
}

/* Batches of 16 activation rows and more: weight rows in pairs of x8 groups
 * through the tiles, 16 activation rows at a time; the rest (a lone group
 * of 8 rows, activation rows past the last 16, decode) through the AVX-512
 * tiles (two weight streams for decode too), whose results are the same
 * bits. The tile configuration is loaded
 * here and released before return (the calling thread's tile state). */
SG_T_AMX int sg_gemm_x8_amx(const sg_gemm *g) {
    if (!x8_shape_ok(g)) return -1;
    const size_t nr16 = g->nr / 16 * 16, na16 = g->na / 16 * 16;
    if (nr16 == 0 || na16 == 0) return x8_gemm_512(g, 1);
    _Alignas(64) amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.colsb[0] = 64, cfg.rows[0] = 16;
    cfg.colsb[1] = 16, cfg.rows[1] = 16;
    cfg.colsb[2] = 16, cfg.rows[2] = 16;
    cfg.colsb[3] = 64, cfg.rows[3] = 4;
    cfg.colsb[4] = 64, cfg.rows[4] = 4;
    cfg.colsb[5] = 64, cfg.rows[5] = 16;
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
    if (g->type == SG_TYPE_Q8_0)
        amx_tiles(g, SG_TYPE_Q8_0, nr16, na16);
    else if (g->type == SG_TYPE_Q4_1)
        amx_tiles(g, SG_TYPE_Q4_1, nr16, na16);
    else
        amx_tiles(g, SG_TYPE_Q4_0, nr16, na16);
    __asm__ volatile("tilerelease" ::);
    if (nr16 < g->nr) { /* a lone group of 8 rows, every activation row */
        sg_gemm r = *g;
        r.w = g->w + nr16 * g->w_stride;
        r.nr = g->nr - nr16;
        r.y = g->y + nr16;
        if (x8_gemm_512(&r, 1) != 0) return -1;
    }
    if (na16 < g->na) { /* the activation rows past the last 16 */
        sg_gemm r = *g;
        r.nr = nr16;
        r.a = (const uint8_t *)g->a + na16 * g->a_stride;
        r.na = g->na - na16;
        r.y = g->y + na16 * g->ldy;
        if (x8_gemm_512(&r, 1) != 0) return -1;
    }
    return 0;
}
#  endif

SG_T_512 int sg_gemm_avx512(const sg_gemm *g) {
    if (g->n == 0) return -1;
    if (sg_type_q8k_act(g->type)) return k_gemm_512(g);
    if (sg_type_q8_act(g->type)) {
        if (g->n % 32) return -1;
        size_t nb = g->n / 32;
        switch (g->type) {
        case SG_TYPE_Q4_0: q8_tiles_512(g, SG_TYPE_Q4_0, nb); break;
        case SG_TYPE_Q4_1: q8_tiles_512(g, SG_TYPE_Q4_1, nb); break;
        case SG_TYPE_IQ4_NL: q8_tiles_512(g, SG_TYPE_IQ4_NL, nb); break;
        default: q8_tiles_512(g, SG_TYPE_Q8_0, nb); break;
        }
        return 0;
    }
    switch (g->type) {
    case SG_TYPE_F32: f_tiles_512(g, SG_TYPE_F32); return 0;
    case SG_TYPE_F16: f_tiles_512(g, SG_TYPE_F16); return 0;
    case SG_TYPE_BF16: f_tiles_512(g, SG_TYPE_BF16); return 0;
    default: return -1;
    }
}
#endif

#ifdef SG_GEMM_NO_PTR_CHECK
#  pragma clang attribute pop
#endif
