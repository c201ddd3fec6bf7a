/* Public kernels for KV strategies: softmax and grouped asymmetric
 * quantization (2, 4 or 8 bits, an f16 scale and an f16 minimum per group).
 *
 * Code layout: element i of a row occupies `bits` bits starting at bit
 * i*bits (little-endian within a byte: element 0 in the low bits).
 * params[2g] = f16 scale, params[2g+1] = f16 minimum of group g (elements
 * g*group .. g*group+group-1; the last group may be shorter).
 * Value = minimum + scale * code. */
#include <math.h>
#include <string.h>

#include "kv.h"

#define QBUF 256

static int bits_ok(int bits) { return bits == 2 || bits == 4 || bits == 8; }

size_t sigma_kernel_quant_bytes(size_t n, int bits) {
    if (!bits_ok(bits) || n > SIZE_MAX / 8) return 0;
    return (n * (size_t)bits + 7) / 8;
}

static inline uint32_t get_code(const uint8_t *c, size_t i, int bits) {
    if (bits == 8) return c[i];
    size_t bit = i * (size_t)bits;
    return (uint32_t)(c[bit >> 3] >> (bit & 7)) & ((1u << bits) - 1);
}

/* Decode codes [i0, i0+n) as floats into out (n <= QBUF). */
static void decode(float *out, const uint8_t *c, size_t i0, size_t n, int bits) {
    if (bits == 8) {
        for (size_t i = 0; i < n; i++) out[i] = (float)c[i0 + i];
    } else {
        for (size_t i = 0; i < n; i++) out[i] = (float)get_code(c, i0 + i, bits);
    }
}

int sigma_kernel_quantize(uint8_t *codes, uint16_t *params, const float *x, size_t n,
                          size_t group, int bits) {
    if (!codes || !params || (!x && n) || !group || !bits_ok(bits)) return SIGMA_E_INVALID_ARG;
    const float qmax = (float)((1u << bits) - 1);
    if (bits != 8) memset(codes, 0, sigma_kernel_quant_bytes(n, bits));
    for (size_t g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
        size_t gn = n - g0 < group ? n - g0 : group;
        float mn = x[g0], mx = x[g0];
        for (size_t i = 1; i < gn; i++) {
            float v = x[g0 + i];
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        if (!(mn >= -65504.0f)) mn = -65504.0f; /* also NaN */
        if (!(mx <= 65504.0f)) mx = 65504.0f;
        if (mx < mn) mx = mn;
        float sc = (mx - mn) / qmax;
        uint16_t h[2];
        float f[2] = {sc, mn};
        sigma_kernel_f32_to_f16(h, f, 2);
        sigma_kernel_f16_to_f32(f, h, 2);
        params[2 * gi] = h[0];
        params[2 * gi + 1] = h[1];
        float inv = f[0] > 0.0f ? 1.0f / f[0] : 0.0f;
        for (size_t i = 0; i < gn; i++) {
            float q = (x[g0 + i] - f[1]) * inv;
            uint32_t c = 0;
            if (q > 0.0f) c = q >= qmax ? (uint32_t)qmax : (uint32_t)lrintf(q);
            size_t e = g0 + i;
            if (bits == 8) {
                codes[e] = (uint8_t)c;
            } else {
                size_t bit = e * (size_t)bits;
                codes[bit >> 3] |= (uint8_t)(c << (bit & 7));
            }
        }
    }
    return SIGMA_OK;
}

void sigma_kernel_dequantize(float *y, const uint8_t *codes, const uint16_t *params, size_t n,
                             size_t group, int bits) {
    if (!y || !codes || !params || !group || !bits_ok(bits)) return;
    for (size_t g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
        size_t gn = n - g0 < group ? n - g0 : group;
        float f[2];
        sigma_kernel_f16_to_f32(f, params + 2 * gi, 2);
        for (size_t i = 0; i < gn; i++) y[g0 + i] = f[1] + f[0] * (float)get_code(codes, g0 + i, bits);
    }
}

float sigma_kernel_dot_quant(const float *x, const uint8_t *codes, const uint16_t *params,
                             size_t n, size_t group, int bits) {
    if (!x || !codes || !params || !group || !bits_ok(bits)) return 0.0f;
    float buf[QBUF];
    float total = 0.0f;
    for (size_t g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
        size_t gn = n - g0 < group ? n - g0 : group;
        float f[2];
        sigma_kernel_f16_to_f32(f, params + 2 * gi, 2);
        float sc = 0.0f, sx = 0.0f;
        for (size_t c0 = 0; c0 < gn; c0 += QBUF) {
            size_t cn = gn - c0 < QBUF ? gn - c0 : QBUF;
            decode(buf, codes, g0 + c0, cn, bits);
            for (size_t i = 0; i < cn; i++) {
                sc += x[g0 + c0 + i] * buf[i];
                sx += x[g0 + c0 + i];
            }
        }
        total += f[0] * sc + f[1] * sx;
    }
    return total;
}

void sigma_kernel_axpy_quant(float *y, float a, const uint8_t *codes, const uint16_t *params,
                             size_t n, size_t group, int bits) {
    if (!y || !codes || !params || !group || !bits_ok(bits)) return;
    float buf[QBUF];
    for (size_t g0 = 0, gi = 0; g0 < n; g0 += group, gi++) {
        size_t gn = n - g0 < group ? n - g0 : group;
        float f[2];
        sigma_kernel_f16_to_f32(f, params + 2 * gi, 2);
        float as = a * f[0], am = a * f[1];
        for (size_t c0 = 0; c0 < gn; c0 += QBUF) {
            size_t cn = gn - c0 < QBUF ? gn - c0 : QBUF;
            float *yy = y + g0 + c0;
            if (bits == 8) {
                const uint8_t *c = codes + g0 + c0;
                for (size_t i = 0; i < cn; i++) yy[i] += as * (float)c[i] + am;
            } else {
                decode(buf, codes, g0 + c0, cn, bits);
                for (size_t i = 0; i < cn; i++) yy[i] += as * buf[i] + am;
            }
        }
    }
}

void sigma_kernel_softmax_f32(float *x, size_t n) {
    if (x && n) sg_softmax(x, n);
}
