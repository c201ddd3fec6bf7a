/* f16/bf16 conversion and Q8_0 quantization for sigma-convert. */
#include "numconv.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float cv_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) /* inf / nan */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t cv_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) { /* inf or nan (keep nan quiet and non-zero) */
        return (uint16_t)(sign | 0x7c00u | (man ? (0x200u | (man >> 13)) : 0u));
    }
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {
        /* subnormal or zero in f16 */
        if (e < -10) return sign; /* too small: rounds to zero */
        uint32_t m = man | 0x800000u;       /* implicit 1 */
        uint32_t shift = (uint32_t)(14 - e); /* 14..24 */
        uint32_t half = 1u << (shift - 1);
        uint32_t rest = m & ((1u << shift) - 1u);
        uint32_t r = m >> shift;
        if (rest > half || (rest == half && (r & 1u))) r++;
        return (uint16_t)(sign | r); /* r may carry into the exponent: still right */
    }
    uint32_t r = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (r & 1u))) r++; /* carry may give inf: right */
    return (uint16_t)(sign | r);
}

float cv_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t cv_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* nan: keep it a (quiet) nan */
        return (uint16_t)((u >> 16) | 0x40u);
    uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)((u + rounding) >> 16);
}

uint64_t cv_row_bytes(uint32_t type, uint64_t n) {
    switch (type) {
    case CV_T_F32: return n > UINT64_MAX / 4 ? 0 : n * 4;
    case CV_T_F16:
    case CV_T_BF16: return n > UINT64_MAX / 2 ? 0 : n * 2;
    case CV_T_Q8_0: return (n % CV_QK8_0) ? 0 : n / CV_QK8_0 * CV_Q8_0_BLOCK_BYTES;
    default: return 0;
    }
}

const char *cv_type_name(uint32_t type) {
    switch (type) {
    case CV_T_F32: return "f32";
    case CV_T_F16: return "f16";
    case CV_T_BF16: return "bf16";
    case CV_T_Q8_0: return "q8_0";
    default: return "?";
    }
}

static void q8_0_block(const float *x, uint8_t *out) {
    float amax = 0.0f;
    for (int i = 0; i < CV_QK8_0; i++) {
        float a = fabsf(x[i]);
        if (a > amax) amax = a; /* NaN compares false: ignored */
    }
    float d = amax / 127.0f;
    float id = (d > 0.0f && isfinite(d)) ? 1.0f / d : 0.0f;
    uint16_t dh = cv_f32_to_f16(d);
    memcpy(out, &dh, 2); /* little-endian hosts only (checked in main) */
    for (int i = 0; i < CV_QK8_0; i++) {
        float q = roundf(x[i] * id);
        if (!(q == q)) q = 0.0f; /* NaN input */
        if (q > 127.0f) q = 127.0f;
        if (q < -127.0f) q = -127.0f;
        out[2 + i] = (uint8_t)(int8_t)q;
    }
}

size_t cv_encode_row(uint32_t type, const float *src, uint64_t n, void *dst) {
    uint8_t *o = dst;
    switch (type) {
    case CV_T_F32:
        memcpy(dst, src, (size_t)n * 4);
        return (size_t)n * 4;
    case CV_T_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = cv_f32_to_f16(src[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return (size_t)n * 2;
    case CV_T_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h = cv_f32_to_bf16(src[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        return (size_t)n * 2;
    case CV_T_Q8_0:
        if (n % CV_QK8_0) return 0;
        for (uint64_t b = 0; b < n / CV_QK8_0; b++)
            q8_0_block(src + b * CV_QK8_0, o + b * CV_Q8_0_BLOCK_BYTES);
        return (size_t)(n / CV_QK8_0 * CV_Q8_0_BLOCK_BYTES);
    default:
        return 0;
    }
}
