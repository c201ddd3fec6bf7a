/* Vector kernels: dot products, axpy, row conversion of weight types to f32,
 * half/bfloat conversions, and the public sigma_kernel_* functions.
 *
 * Every kernel has a portable C body written as a static inline function.
 * The portable table calls it directly; on x86-64 an AVX2 table wraps the
 * same bodies (or intrinsics) in functions compiled for avx2/fma/f16c, chosen
 * at run time by sg_kernels_init(). */
#if defined(__linux__)
#  define _DEFAULT_SOURCE 1 /* syscall() */
#endif
#include <math.h>
#include <string.h>

#include "core.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SG_FORCE_GENERIC)
#  define SG_HAVE_X86_DISPATCH 1
#  include <cpuid.h>
#  include <immintrin.h>
#  if SG_HAVE_AMX
#    include <sys/syscall.h>
#    include <unistd.h>
#  endif
#else
#  define SG_HAVE_X86_DISPATCH 0
#endif

/* ---- half / bfloat ------------------------------------------------------ */

static inline float h2f(uint16_t h) { return sg_f16_to_f32(h); }

static inline uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65536: inf */
    if (ax < 0x38800000u) {  /* below the smallest normal half: subnormal or zero */
        float a;
        memcpy(&a, &ax, 4);
        /* a * 2^24 rounded to nearest even gives the subnormal mantissa */
        float r = a * 0x1p24f;
        uint32_t m = (uint32_t)nearbyintf(r);
        return (uint16_t)(sign | m);
    }
    /* normal: round mantissa to 10 bits, nearest even */
    uint32_t mant_odd = (ax >> 13) & 1u;
    ax += 0xfffu + mant_odd;
    return (uint16_t)(sign | ((ax - 0x38000000u) >> 13));
}

static inline float bf2f(uint16_t h) { return sg_bf16_to_f32(h); }

static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- portable bodies ----------------------------------------------------- */

static inline float dot_body(const float *a, const float *b, size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

static inline void axpy_body(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

static inline void scale_body(float *y, float a, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] *= a;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* ggml block layouts (little-endian). */
static inline void deq_q4_0(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 18, y += 32) {
        float d = h2f(rd16(b));
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((int)(qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((int)(qs[j] >> 4) - 8) * d;
        }
    }
}

static inline void deq_q4_1(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 20, y += 32) {
        float d = h2f(rd16(b)), m = h2f(rd16(b + 2));
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(qs[j] & 0x0f) * d + m;
            y[j + 16] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

static inline void deq_q5_0(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 22, y += 32) {
        float d = h2f(rd16(b));
        uint32_t qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) |
                      ((uint32_t)b[5] << 24);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1u) << 4;
            int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            y[j] = (float)(((qs[j] & 0x0f) | h0) - 16) * d;
            y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static inline void deq_q5_1(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 24, y += 32) {
        float d = h2f(rd16(b)), m = h2f(rd16(b + 2));
        uint32_t qh = (uint32_t)b[4] | ((uint32_t)b[5] << 8) | ((uint32_t)b[6] << 16) |
                      ((uint32_t)b[7] << 24);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1u) << 4;
            int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
            y[j] = (float)((qs[j] & 0x0f) | h0) * d + m;
            y[j + 16] = (float)((qs[j] >> 4) | h1) * d + m;
        }
    }
}

static inline void deq_q8_0(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 34, y += 32) {
        float d = h2f(rd16(b));
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
    }
}

static inline void deq_f16(const uint8_t *b, float *y, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) y[i] = h2f(rd16(b + 2 * i));
}

static inline void deq_bf16(const uint8_t *b, float *y, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) y[i] = bf2f(rd16(b + 2 * i));
}

/* Types converted here; everything else (k-quants) goes to
 * sg_dequantize_row. Returns 1 if handled. */
static inline int to_f32_body(uint32_t type, const void *src, float *dst, uint64_t n, int *rc) {
    const uint8_t *b = src;
    *rc = 0;
    switch (type) {
    case SG_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 1;
    case SG_TYPE_F16: deq_f16(b, dst, n); return 1;
    case SG_TYPE_BF16: deq_bf16(b, dst, n); return 1;
    case SG_TYPE_Q4_0: if (n % 32) break; deq_q4_0(b, dst, n / 32); return 1;
    case SG_TYPE_Q4_1: if (n % 32) break; deq_q4_1(b, dst, n / 32); return 1;
    case SG_TYPE_Q5_0: if (n % 32) break; deq_q5_0(b, dst, n / 32); return 1;
    case SG_TYPE_Q5_1: if (n % 32) break; deq_q5_1(b, dst, n / 32); return 1;
    case SG_TYPE_Q8_0: if (n % 32) break; deq_q8_0(b, dst, n / 32); return 1;
    default: return 0;
    }
    *rc = -1;
    return 1;
}

/* ---- the portable table --------------------------------------------------- */

float sg_dot_f32_generic(const float *a, const float *b, size_t n) { return dot_body(a, b, n); }
static void axpy_generic(float *y, float a, const float *x, size_t n) { axpy_body(y, a, x, n); }
static void scale_generic(float *y, float a, size_t n) { scale_body(y, a, n); }

int sg_to_f32_generic(uint32_t type, const void *src, float *dst, uint64_t n) {
    int rc;
    if (to_f32_body(type, src, dst, n, &rc)) return rc;
    return sg_dequantize_row(type, src, dst, n);
}

int sg_kernel_type_supported(uint32_t type) {
    switch (type) {
    case SG_TYPE_F32: case SG_TYPE_F16: case SG_TYPE_BF16: case SG_TYPE_Q4_0: case SG_TYPE_Q4_1:
    case SG_TYPE_Q5_0: case SG_TYPE_Q5_1: case SG_TYPE_Q8_0: case SG_TYPE_Q4_K: case SG_TYPE_Q5_K:
    case SG_TYPE_Q6_K: case SG_TYPE_Q2_K: case SG_TYPE_Q3_K: case SG_TYPE_IQ4_NL: case SG_TYPE_IQ4_XS:
        return 1;
    default:
        return 0;
    }
}

/* ---- AVX2 table ------------------------------------------------------------ */

#if SG_HAVE_X86_DISPATCH
#  define SG_AVX2 __attribute__((target("avx2,fma,f16c")))

SG_AVX2 static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float t = _mm_cvtss_f32(h);
    for (; i < n; i++) t += a[i] * b[i];
    return t;
}

SG_AVX2 static void axpy_avx2(float *y, float a, const float *x, size_t n) {
    __m256 va = _mm256_set1_ps(a);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

SG_AVX2 static void scale_avx2(float *y, float a, size_t n) { scale_body(y, a, n); }

SG_AVX2 static void deq_q4_0_avx2(const uint8_t *b, float *y, uint64_t nb) {
    const __m128i lo = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (uint64_t i = 0; i < nb; i++, b += 18, y += 32) {
        __m256 d = _mm256_set1_ps(h2f(rd16(b)));
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
        __m128i ql = _mm_sub_epi8(_mm_and_si128(q, lo), eight);
        __m128i qh = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo), eight);
        _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ql)), d));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ql, 8))), d));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qh)), d));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(qh, 8))), d));
    }
}

/* Q4_1: q*d + m, computed as a separate multiply and add (no FMA) so it is
 * bitwise equal to the portable conversion. */
SG_AVX2 static void deq_q4_1_avx2(const uint8_t *b, float *y, uint64_t nb) {
    const __m128i lo = _mm_set1_epi8(0x0f);
    for (uint64_t i = 0; i < nb; i++, b += 20, y += 32) {
        __m256 d = _mm256_set1_ps(h2f(rd16(b)));
        __m256 m = _mm256_set1_ps(h2f(rd16(b + 2)));
        __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
        __m128i ql = _mm_and_si128(q, lo);
        __m128i qh = _mm_and_si128(_mm_srli_epi16(q, 4), lo);
        _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ql)), d), m));
        _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(ql, 8))), d), m));
        _mm256_storeu_ps(y + 16, _mm256_add_ps(_mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(qh)), d), m));
        _mm256_storeu_ps(y + 24, _mm256_add_ps(_mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(qh, 8))), d), m));
    }
}

SG_AVX2 static void deq_q8_0_avx2(const uint8_t *b, float *y, uint64_t nb) {
    for (uint64_t i = 0; i < nb; i++, b += 34, y += 32) {
        __m256 d = _mm256_set1_ps(h2f(rd16(b)));
        for (int j = 0; j < 32; j += 8) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(b + 2 + j));
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
        }
    }
}

SG_AVX2 static void deq_f16_avx2(const uint8_t *b, float *y, uint64_t n) {
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + 2 * i))));
    for (; i < n; i++) y[i] = h2f(rd16(b + 2 * i));
}

SG_AVX2 static int to_f32_avx2(uint32_t type, const void *src, float *dst, uint64_t n) {
    const uint8_t *b = src;
    switch (type) {
    case SG_TYPE_Q4_0: if (n % 32) return -1; deq_q4_0_avx2(b, dst, n / 32); return 0;
    case SG_TYPE_Q4_1: if (n % 32) return -1; deq_q4_1_avx2(b, dst, n / 32); return 0;
    case SG_TYPE_Q8_0: if (n % 32) return -1; deq_q8_0_avx2(b, dst, n / 32); return 0;
    case SG_TYPE_F16: deq_f16_avx2(b, dst, n); return 0;
    default: break;
    }
    int rc;
    if (to_f32_body(type, src, dst, n, &rc)) return rc;
    return sg_dequantize_row(type, src, dst, n);
}

/* Fused dequantize-and-dot, one 32-element block per step with the four
 * accumulators and the reduction of dot_avx2, on exactly the values the
 * deq_*_avx2 conversions produce: bitwise equal to the unfused path. */
SG_AVX2 static float hsum_avx2(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

SG_AVX2 static int dot_row_avx2(uint32_t type, const void *row, const float *x, size_t n,
                                float *out) {
    if (n % 32) return -1;
    const uint8_t *b = row;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    const __m128i lo = _mm_set1_epi8(0x0f);
    size_t nb = n / 32;
    switch (type) {
    case SG_TYPE_Q4_0: {
        const __m128i eight = _mm_set1_epi8(8);
        for (size_t i = 0; i < nb; i++, b += 18, x += 32) {
            __m256 d = _mm256_set1_ps(h2f(rd16(b)));
            __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
            __m128i ql = _mm_sub_epi8(_mm_and_si128(q, lo), eight);
            __m128i qh = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo), eight);
            __m256 w0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ql)), d);
            __m256 w1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ql, 8))), d);
            __m256 w2 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qh)), d);
            __m256 w3 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(qh, 8))), d);
            s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), s0);
            s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), s1);
            s2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), s2);
            s3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), s3);
        }
        break;
    }
    case SG_TYPE_Q4_1:
        for (size_t i = 0; i < nb; i++, b += 20, x += 32) {
            __m256 d = _mm256_set1_ps(h2f(rd16(b)));
            __m256 m = _mm256_set1_ps(h2f(rd16(b + 2)));
            __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
            __m128i ql = _mm_and_si128(q, lo);
            __m128i qh = _mm_and_si128(_mm_srli_epi16(q, 4), lo);
            __m256 w0 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(ql)), d), m);
            __m256 w1 = _mm256_add_ps(_mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(ql, 8))), d), m);
            __m256 w2 = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(qh)), d), m);
            __m256 w3 = _mm256_add_ps(_mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(qh, 8))), d), m);
            s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), s0);
            s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), s1);
            s2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + 16), s2);
            s3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + 24), s3);
        }
        break;
    case SG_TYPE_Q8_0:
        for (size_t i = 0; i < nb; i++, b += 34, x += 32) {
            __m256 d = _mm256_set1_ps(h2f(rd16(b)));
            __m256 w[4];
            for (int j = 0; j < 4; j++)
                w[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                         _mm_loadl_epi64((const __m128i *)(b + 2 + 8 * j)))), d);
            s0 = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(x), s0);
            s1 = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x + 8), s1);
            s2 = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(x + 16), s2);
            s3 = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x + 24), s3);
        }
        break;
    default:
        return -1;
    }
    *out = hsum_avx2(s0, s1, s2, s3);
    return 0;
}

static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1u;
}

/* dot/axpy need only AVX2+FMA: a cheap check, fine per call */
static int cpu_has_avx2_fma(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int cpu_has_avx2(void) { return cpu_has_avx2_fma() && cpu_has_f16c(); }
#endif

#if SG_HAVE_X86_DISPATCH
static int cpu_has_avx512(void) {
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
#endif

#if SG_HAVE_X86_DISPATCH && SG_HAVE_AMX
/* AMX-TILE and AMX-INT8 (CPUID 7.0 EDX bits 24, 25), the tile state enabled
 * by the OS (XCR0 bits 17, 18), and Linux's permission to use it, which a
 * process must request once (arch_prctl ARCH_REQ_XCOMP_PERM for
 * XFEATURE_XTILEDATA; granting it again is a no-op). Without the permission
 * the first tile instruction would kill the process, so no permission, no
 * AMX. The request changes no state of ours: it is the kernel's, per
 * process, and only ever widens what the process may do. */
static int cpu_has_amx(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return 0; /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 24) & 1u) || !((d >> 25) & 1u)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & (3u << 17)) != (3u << 17)) return 0;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}
#endif

/* level: 0 portable, 1 at most AVX2, 2 at most AVX-512, 3 best available */
static void kernels_fill(sg_kernels *k, int level) {
    k->name = "generic";
    k->dot_f32 = sg_dot_f32_generic;
    k->axpy_f32 = axpy_generic;
    k->scale_f32 = scale_generic;
    k->to_f32 = sg_to_f32_generic;
    k->dot_row = NULL;
    k->quantize_q8 = sg_q8_quantize_generic;
    k->quantize_q8k = sg_q8k_quantize_generic;
    k->gemm = sg_gemm_generic;
    k->act_q8 = 1;
    k->gemm_x8 = NULL;
    k->x8_types = 0;
    sg_attn_kernels_fill(k, 0);
#if SG_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (level >= 1 && cpu_has_avx2()) {
        sg_attn_kernels_fill(k, 1);
        k->name = "avx2";
        k->dot_f32 = dot_avx2;
        k->axpy_f32 = axpy_avx2;
        k->scale_f32 = scale_avx2;
        k->to_f32 = to_f32_avx2;
        k->dot_row = dot_row_avx2;
        k->quantize_q8 = sg_q8_quantize_avx2;
        k->gemm = sg_gemm_avx2;
        k->gemm_x8 = sg_gemm_x8_avx2;
        k->x8_types = 1u << SG_TYPE_Q4_0 | 1u << SG_TYPE_Q8_0;
        if (level >= 2 && cpu_has_avx512()) {
            k->name = "avx512";
            k->quantize_q8 = sg_q8_quantize_avx512;
            k->gemm = sg_gemm_avx512;
            k->gemm_x8 = sg_gemm_x8_avx512;
            /* Q4_1 packed too: the x16/AMX tiles beat the per-row VNNI
             * tile (docs/performance.md, session 19) */
            k->x8_types |= 1u << SG_TYPE_Q4_1;
            sg_attn_kernels_fill(k, 2);
#  if SG_HAVE_AMX
            if (level >= 3 && cpu_has_amx()) {
                k->name = "amx";
                k->gemm = sg_gemm_amx;
                k->gemm_x8 = sg_gemm_x8_amx;
            }
#  endif
        }
    }
#else
    (void)level;
#endif
}

void sg_kernels_init(sg_kernels *k, int allow_simd) { kernels_fill(k, allow_simd ? 3 : 0); }

static int spec_has(const char *spec, const char *word) {
    size_t wl = strlen(word);
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == wl && strncmp(p, word, wl) == 0) return 1;
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

void sg_kernels_init_spec(sg_kernels *k, int allow_simd, const char *spec) {
    int level = allow_simd ? 3 : 0;
    if (spec && spec_has(spec, "generic")) level = 0;
    if (spec && spec_has(spec, "avx512") && level > 2) level = 2;
    if (spec && spec_has(spec, "avx2") && level > 1) level = 1;
    kernels_fill(k, level);
    if (spec && spec_has(spec, "exact")) k->act_q8 = 0;
    if (spec && spec_has(spec, "q8")) k->act_q8 = 1;
    /* no repacked weights (model open skips the copy, sessions the kernel) */
    if (spec && spec_has(spec, "nopack")) {
        k->gemm_x8 = NULL;
        k->x8_types = 0;
    }
}

/* ---- public kernels ---------------------------------------------------------- */

float sigma_kernel_dot_f32(const float *a, const float *b, size_t n) {
#if SG_HAVE_X86_DISPATCH
    if (cpu_has_avx2_fma()) return dot_avx2(a, b, n);
#endif
    return dot_body(a, b, n);
}

void sigma_kernel_axpy_f32(float *y, float a, const float *x, size_t n) {
#if SG_HAVE_X86_DISPATCH
    if (cpu_has_avx2_fma()) {
        axpy_avx2(y, a, x, n);
        return;
    }
#endif
    axpy_body(y, a, x, n);
}

void sigma_kernel_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f2h(src[i]);
}

void sigma_kernel_f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = h2f(src[i]);
}

void sigma_kernel_f32_to_bf16(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = f2bf(src[i]);
}

void sigma_kernel_bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf2f(src[i]);
}
