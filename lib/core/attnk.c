/* Attention kernels over a block of cached rows (see sg_kernels in core.h):
 * scores of several query heads against up to SG_ATTN_BLOCK K rows,
 * exponentiate-and-sum, and the weighted accumulation of V rows. Rows are
 * f32, f16 or bf16, converted in registers. Every score is computed by the
 * same operation sequence whatever the number of heads, the block length
 * and the row's place in the block, so grouping query heads never changes a
 * result. The SwiGLU activation's vector form lives here too: it shares the
 * exponential of attn_exp. */
#include <math.h>
#include <string.h>

#include "core.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SG_FORCE_GENERIC)
#  define SG_AK_X86 1
#  include <immintrin.h>
#else
#  define SG_AK_X86 0
#endif

/* ---- portable ---------------------------------------------------------------- */

static inline float row_elem(const void *base, size_t idx, uint32_t rt) {
    switch (rt) {
    case SG_ROW_F16: return sg_f16_to_f32(((const uint16_t *)base)[idx]);
    case SG_ROW_BF16: return sg_bf16_to_f32(((const uint16_t *)base)[idx]);
    default: return ((const float *)base)[idx];
    }
}

void sg_attn_scores_generic(const float *q, size_t q_stride, uint32_t nh, const void *k,
                            size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                            float *s) {
    for (uint32_t h = 0; h < nh; h++) {
        const float *qh = q + (size_t)h * q_stride;
        for (size_t j = 0; j < nb; j++) {
            float acc = 0.0f;
            for (uint32_t i = 0; i < d; i++) acc += qh[i] * row_elem(k, j * k_stride + i, rt);
            s[(size_t)h * SG_ATTN_BLOCK + j] = acc * scale;
        }
    }
}

float sg_attn_exp_generic(float *x, size_t n, float m) {
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    return sum;
}

void sg_attn_clean_blocks_generic(float *dst, const float *src, size_t n, float *bmax) {
    for (size_t b0 = 0; b0 < n; b0 += SG_ATTN_CLEAN_BLOCK) {
        size_t e = n - b0 < SG_ATTN_CLEAN_BLOCK ? n : b0 + SG_ATTN_CLEAN_BLOCK;
        float m = -INFINITY;
        for (size_t j = b0; j < e; j++) {
            float v = src[j] == src[j] ? src[j] : -INFINITY;
            dst[j] = v;
            m = v > m ? v : m;
        }
        bmax[b0 / SG_ATTN_CLEAN_BLOCK] = m;
    }
}

void sg_attn_accum_generic(float *out, const float *w, size_t nb, const void *v, size_t v_stride,
                           uint32_t rt, uint32_t d) {
    for (size_t j = 0; j < nb; j++) {
        float a = w[j];
        for (uint32_t i = 0; i < d; i++) out[i] += a * row_elem(v, j * v_stride + i, rt);
    }
}

void sg_attn_accum_heads_generic(uint32_t nh, float *const *out, const float *const *w, size_t nb,
                                 const void *const *v, size_t v_stride, uint32_t rt, uint32_t d) {
    for (uint32_t h = 0; h < nh; h++) sg_attn_accum_generic(out[h], w[h], nb, v[h], v_stride, rt, d);
}

#if SG_AK_X86
#  define SG_AI static inline __attribute__((always_inline))

/* The SIMD kernels prefetch the rows one block ahead of the ones they read:
 * a block's compute would otherwise not overlap the next block's loads. The
 * addresses may lie past the cache's end (x86 prefetches never fault). */
#  define SG_ATTN_PF_ROWS SG_ATTN_BLOCK

/* ---- AVX2 (+FMA, F16C): 8 rows at a time --------------------------------------- */
#  define SG_T2 __attribute__((target("avx2,fma,f16c")))

SG_T2 SG_AI __m256 ld8(const void *base, size_t idx, uint32_t rt) {
    switch (rt) {
    case SG_ROW_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx)));
    case SG_ROW_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + idx))), 16));
    default: return _mm256_loadu_ps((const float *)base + idx);
    }
}

/* 8 vectors -> one vector of their 8 horizontal sums (a[r]'s sum in lane r),
 * the same addition tree for every lane. */
SG_T2 SG_AI __m256 hsum8x8(const __m256 a[8]) {
    __m256 b[4], c[2];
    for (int i = 0; i < 4; i++)
        b[i] = _mm256_add_ps(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++) {
        __m256d x = _mm256_castps_pd(b[2 * i]), y = _mm256_castps_pd(b[2 * i + 1]);
        c[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                             _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(c[0], c[1], 0x20),
                         _mm256_permute2f128_ps(c[0], c[1], 0x31));
}

/* Query heads in pairs, 4 rows at a time: each K row chunk is loaded (and
 * converted) once for both heads; hsum8x8 sums the 4 rows x 2 heads (lanes
 * 0-3 the first head's, 4-7 the second's). An odd last head goes 8 rows at
 * a time alone. Per score the same FMAs over the chunks in order and the
 * same addition tree either way. The first pass over the rows (h == 0)
 * prefetches the rows a block ahead. */
SG_T2 SG_AI void scores_avx2_t(const float *q, size_t q_stride, uint32_t nh, const void *k,
                               size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                               float *s) {
    const __m256 vs = _mm256_set1_ps(scale);
    const size_t es = rt == SG_ROW_F32 ? 4 : 2;
    uint32_t h = 0;
    for (; h + 1 < nh; h += 2) {
        const float *qa = q + (size_t)h * q_stride, *qb = qa + q_stride;
        for (size_t j0 = 0; j0 < nb; j0 += 4) {
            size_t nr = nb - j0 < 4 ? nb - j0 : 4;
            if (h == 0)
                for (size_t r = 0; r < 4; r++)
                    for (size_t o = 0; o < d * es; o += 64)
                        _mm_prefetch((const char *)k + (SG_ATTN_PF_ROWS + j0 + r) * k_stride * es + o,
                                     _MM_HINT_T1);
            __m256 acc[8];
            for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
            for (uint32_t c = 0; c < d; c += 8) {
                __m256 va = _mm256_loadu_ps(qa + c), vb = _mm256_loadu_ps(qb + c);
                for (size_t r = 0; r < 4; r++)
                    if (r < nr) {
                        __m256 kv = ld8(k, (j0 + r) * k_stride + c, rt);
                        acc[r] = _mm256_fmadd_ps(va, kv, acc[r]);
                        acc[4 + r] = _mm256_fmadd_ps(vb, kv, acc[4 + r]);
                    }
            }
            __m256 v = _mm256_mul_ps(hsum8x8(acc), vs);
            if (nr == 4) {
                _mm_storeu_ps(s + (size_t)h * SG_ATTN_BLOCK + j0, _mm256_castps256_ps128(v));
                _mm_storeu_ps(s + (size_t)(h + 1) * SG_ATTN_BLOCK + j0, _mm256_extractf128_ps(v, 1));
            } else {
                float t[8];
                _mm256_storeu_ps(t, v);
                memcpy(s + (size_t)h * SG_ATTN_BLOCK + j0, t, nr * sizeof(float));
                memcpy(s + (size_t)(h + 1) * SG_ATTN_BLOCK + j0, t + 4, nr * sizeof(float));
            }
        }
    }
    for (; h < nh; h++) {
        const float *qh = q + (size_t)h * q_stride;
        for (size_t j0 = 0; j0 < nb; j0 += 8) {
            size_t nr = nb - j0 < 8 ? nb - j0 : 8;
            if (h == 0)
                for (size_t r = 0; r < 8; r++)
                    for (size_t o = 0; o < d * es; o += 64)
                        _mm_prefetch((const char *)k + (SG_ATTN_PF_ROWS + j0 + r) * k_stride * es + o,
                                     _MM_HINT_T1);
            __m256 acc[8];
            for (int r = 0; r < 8; r++) acc[r] = _mm256_setzero_ps();
            for (uint32_t c = 0; c < d; c += 8) {
                __m256 qv = _mm256_loadu_ps(qh + c);
                for (size_t r = 0; r < 8; r++)
                    if (r < nr) acc[r] = _mm256_fmadd_ps(qv, ld8(k, (j0 + r) * k_stride + c, rt), acc[r]);
            }
            __m256 v = _mm256_mul_ps(hsum8x8(acc), vs);
            if (nr == 8) {
                _mm256_storeu_ps(s + (size_t)h * SG_ATTN_BLOCK + j0, v);
            } else {
                float t[8];
                _mm256_storeu_ps(t, v);
                memcpy(s + (size_t)h * SG_ATTN_BLOCK + j0, t, nr * sizeof(float));
            }
        }
    }
}

SG_T2 static void attn_scores_avx2(const float *q, size_t q_stride, uint32_t nh, const void *k,
                                   size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                                   float *s) {
    if (d % 8) {
        sg_attn_scores_generic(q, q_stride, nh, k, k_stride, rt, nb, d, scale, s);
        return;
    }
    switch (rt) {
    case SG_ROW_F16: scores_avx2_t(q, q_stride, nh, k, k_stride, SG_ROW_F16, nb, d, scale, s); break;
    case SG_ROW_BF16: scores_avx2_t(q, q_stride, nh, k, k_stride, SG_ROW_BF16, nb, d, scale, s); break;
    default: scores_avx2_t(q, q_stride, nh, k, k_stride, SG_ROW_F32, nb, d, scale, s); break;
    }
}

/* exp(x) for x in [-87.3, 88.7]: x = n ln2 + r, |r| <= ln2/2, a degree-7
 * polynomial for e^r (relative error ~1e-7), 2^n through the exponent. */
SG_T2 SG_AI __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    x = _mm256_min_ps(x, _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* a[i] = a[i] / (1 + exp(-a[i])) * b[i]: the portable sg_swiglu with exp8
 * (relative error ~1e-7 against libm's expf); the tail through a padded
 * vector, so an element's result does not depend on its place. NaN stays
 * NaN (the gate itself is in the quotient). */
SG_T2 static void swiglu_avx2(float *a, const float *b, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(a + i);
        __m256 e = exp8(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(b + i)));
    }
    if (i < n) {
        float t[8] = {0}, u[8] = {0};
        memcpy(t, a + i, (n - i) * sizeof(float));
        memcpy(u, b + i, (n - i) * sizeof(float));
        __m256 g = _mm256_loadu_ps(t);
        __m256 e = exp8(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(t, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(u)));
        memcpy(a + i, t, (n - i) * sizeof(float));
    }
}

SG_T2 static float attn_exp_avx2(float *x, size_t n, float m) {
    __m256 vm = _mm256_set1_ps(m), sum = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (n - i) * sizeof(float));
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(t), vm));
        _mm256_storeu_ps(t, e);
        memcpy(x + i, t, (n - i) * sizeof(float));
        for (size_t r = n - i; r < 8; r++) t[r] = 0.0f;
        sum = _mm256_add_ps(sum, _mm256_loadu_ps(t));
    }
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

SG_T2 static void attn_clean_blocks_avx2(float *dst, const float *src, size_t n, float *bmax) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    size_t b0 = 0;
    for (; b0 + 16 <= n; b0 += 16) {
        __m256 a = _mm256_loadu_ps(src + b0), b = _mm256_loadu_ps(src + b0 + 8);
        a = _mm256_blendv_ps(a, ninf, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        b = _mm256_blendv_ps(b, ninf, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
        _mm256_storeu_ps(dst + b0, a);
        _mm256_storeu_ps(dst + b0 + 8, b);
        __m256 m = _mm256_max_ps(a, b);
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        bmax[b0 / 16] = _mm_cvtss_f32(h);
    }
    if (b0 < n) sg_attn_clean_blocks_generic(dst + b0, src + b0, n - b0, bmax + b0 / 16);
}

SG_T2 SG_AI void accum_avx2_t(float *out, const float *w, size_t nb, const void *v, size_t v_stride,
                              uint32_t rt, uint32_t d) {
    for (uint32_t c0 = 0; c0 < d; c0 += 64) {
        uint32_t na = (d - c0) / 8 < 8 ? (d - c0) / 8 : 8;
        __m256 acc[8];
        for (uint32_t i = 0; i < 8; i++)
            acc[i] = i < na ? _mm256_loadu_ps(out + c0 + 8 * i) : _mm256_setzero_ps();
        const size_t es = rt == SG_ROW_F32 ? 4 : 2;
        for (size_t j = 0; j < nb; j++) {
            for (size_t o = 0; o < 8 * na * es; o += 64)
                _mm_prefetch((const char *)v + ((SG_ATTN_PF_ROWS + j) * v_stride + c0) * es + o, _MM_HINT_T1);
            __m256 a = _mm256_set1_ps(w[j]);
            for (uint32_t i = 0; i < 8; i++)
                if (i < na) acc[i] = _mm256_fmadd_ps(a, ld8(v, j * v_stride + c0 + 8 * i, rt), acc[i]);
        }
        for (uint32_t i = 0; i < 8; i++)
            if (i < na) _mm256_storeu_ps(out + c0 + 8 * i, acc[i]);
    }
}

/* Two heads reading the same V rows (query heads sharing a V head), 32
 * columns per pass: each row chunk loaded and converted once for both. Per
 * element the same sequence as accum_avx2_t. d % 8 == 0. */
SG_T2 SG_AI void accum_pair_avx2_t(float *o0, float *o1, const float *w0, const float *w1, size_t nb,
                                   const void *v, size_t v_stride, uint32_t rt, uint32_t d) {
    const size_t es = rt == SG_ROW_F32 ? 4 : 2;
    for (uint32_t c0 = 0; c0 < d; c0 += 32) {
        uint32_t na = (d - c0) / 8 < 4 ? (d - c0) / 8 : 4;
        __m256 a0[4], a1[4];
        for (uint32_t i = 0; i < 4; i++) {
            a0[i] = i < na ? _mm256_loadu_ps(o0 + c0 + 8 * i) : _mm256_setzero_ps();
            a1[i] = i < na ? _mm256_loadu_ps(o1 + c0 + 8 * i) : _mm256_setzero_ps();
        }
        for (size_t j = 0; j < nb; j++) {
            for (size_t o = 0; o < 8 * na * es; o += 64)
                _mm_prefetch((const char *)v + ((SG_ATTN_PF_ROWS + j) * v_stride + c0) * es + o, _MM_HINT_T1);
            __m256 b0 = _mm256_set1_ps(w0[j]), b1 = _mm256_set1_ps(w1[j]);
            for (uint32_t i = 0; i < 4; i++)
                if (i < na) {
                    __m256 x = ld8(v, j * v_stride + c0 + 8 * i, rt);
                    a0[i] = _mm256_fmadd_ps(b0, x, a0[i]);
                    a1[i] = _mm256_fmadd_ps(b1, x, a1[i]);
                }
        }
        for (uint32_t i = 0; i < 4; i++)
            if (i < na) {
                _mm256_storeu_ps(o0 + c0 + 8 * i, a0[i]);
                _mm256_storeu_ps(o1 + c0 + 8 * i, a1[i]);
            }
    }
}

/* AVX2 has 8 accumulators per 64 columns already: one head at a time,
 * except two heads reading the same rows */
SG_T2 static void attn_accum_avx2(float *out, const float *w, size_t nb, const void *v,
                                  size_t v_stride, uint32_t rt, uint32_t d);
SG_T2 static void attn_accum_heads_avx2(uint32_t nh, float *const *out, const float *const *w,
                                        size_t nb, const void *const *v, size_t v_stride, uint32_t rt,
                                        uint32_t d) {
    uint32_t h = 0;
    if (d % 8 == 0)
        for (; h + 1 < nh && v[h] == v[h + 1]; h += 2) switch (rt) {
            case SG_ROW_F16:
                accum_pair_avx2_t(out[h], out[h + 1], w[h], w[h + 1], nb, v[h], v_stride, SG_ROW_F16, d);
                break;
            case SG_ROW_BF16:
                accum_pair_avx2_t(out[h], out[h + 1], w[h], w[h + 1], nb, v[h], v_stride, SG_ROW_BF16, d);
                break;
            default:
                accum_pair_avx2_t(out[h], out[h + 1], w[h], w[h + 1], nb, v[h], v_stride, SG_ROW_F32, d);
                break;
            }
    for (; h < nh; h++) attn_accum_avx2(out[h], w[h], nb, v[h], v_stride, rt, d);
}

SG_T2 static void attn_accum_avx2(float *out, const float *w, size_t nb, const void *v,
                                  size_t v_stride, uint32_t rt, uint32_t d) {
    if (d % 8) {
        sg_attn_accum_generic(out, w, nb, v, v_stride, rt, d);
        return;
    }
    switch (rt) {
    case SG_ROW_F16: accum_avx2_t(out, w, nb, v, v_stride, SG_ROW_F16, d); break;
    case SG_ROW_BF16: accum_avx2_t(out, w, nb, v, v_stride, SG_ROW_BF16, d); break;
    default: accum_avx2_t(out, w, nb, v, v_stride, SG_ROW_F32, d); break;
    }
}

/* ---- AVX-512 (F, BW, VL): 16 rows at a time, masked tails -------------------- */
#  define SG_T5 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

SG_T5 SG_AI __m512 ld16(const void *base, size_t idx, uint32_t rt, __mmask16 m) {
    switch (rt) {
    case SG_ROW_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)base + idx));
    case SG_ROW_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)base + idx)), 16));
    default: return _mm512_maskz_loadu_ps(m, (const float *)base + idx);
    }
}

/* 16 vectors -> one vector of their 16 horizontal sums (lane r = sum of
 * a[r]), the same addition tree for every lane. */
SG_T5 SG_AI __m512 hsum16x16(const __m512 a[16]) {
    __m512 b[8], c[4], e[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int i = 0; i < 2; i++)
        e[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e[0], e[1], 0x88), _mm512_shuffle_f32x4(e[0], e[1], 0xDD));
}

SG_T5 SG_AI __mmask16 tail_mask(uint32_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

SG_T5 SG_AI void scores_512_t(const float *q, size_t q_stride, uint32_t nh, const void *k,
                              size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                              float *s) {
    const __m512 vs = _mm512_set1_ps(scale);
    for (size_t j0 = 0; j0 < nb; j0 += 16) {
        size_t nr = nb - j0 < 16 ? nb - j0 : 16;
        __mmask16 out_m = tail_mask((uint32_t)nr);
        for (uint32_t h = 0; h < nh; h++) {
            const float *qh = q + (size_t)h * q_stride;
            __m512 acc[16];
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            for (uint32_t c = 0; c < d; c += 16) {
                __mmask16 m = tail_mask(d - c);
                __m512 qv = _mm512_maskz_loadu_ps(m, qh + c);
                for (size_t r = 0; r < 16; r++)
                    if (r < nr)
                        acc[r] = _mm512_fmadd_ps(qv, ld16(k, (j0 + r) * k_stride + c, rt, m), acc[r]);
            }
            _mm512_mask_storeu_ps(s + (size_t)h * SG_ATTN_BLOCK + j0, out_m,
                                  _mm512_mul_ps(hsum16x16(acc), vs));
        }
    }
}

/* 16 full rows, D a multiple of 16: no masks, no per-row tests (with
 * contiguous rows, D = K_STRIDE = 64, every address a constant offset).
 * The operations per score are those of scores_512_t: acc = 0, fma over
 * the 16-column chunks in order, hsum16x16, * scale. */
SG_T5 SG_AI __m512 ld16u(const void *base, size_t idx, uint32_t rt) {
    switch (rt) {
    case SG_ROW_F16: return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + idx)));
    case SG_ROW_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + idx))), 16));
    default: return _mm512_loadu_ps((const float *)base + idx);
    }
}

/* Full 16-row groups. Query heads go in pairs: each K row chunk is loaded
 * (and converted) once for both heads, and the 8 rows x 2 heads of
 * accumulators are summed by one hsum16x16 (lanes 0-7 the first head's
 * rows, 8-15 the second's). Per score the operations are those of
 * scores_512_t: FMAs over the chunks in order, the same addition tree. An
 * odd last head goes 16 rows at a time alone. */
SG_T5 SG_AI void scores_512_full(const float *q, size_t q_stride, uint32_t nh, const void *k,
                                 size_t k_stride, uint32_t rt, size_t n16, uint32_t d, float scale,
                                 float *s) {
    const __m512 vs = _mm512_set1_ps(scale);
    const size_t es = rt == SG_ROW_F32 ? 4 : 2;
    uint32_t h = 0;
    for (; h + 1 < nh; h += 2) {
        const float *qa = q + (size_t)h * q_stride, *qb = qa + q_stride;
        for (size_t j0 = 0; j0 < 16 * n16; j0 += 8) {
            const uint8_t *kb = (const uint8_t *)k + j0 * k_stride * es;
            if (h == 0) /* the first pair prefetches the rows a block ahead */
                for (size_t r = 0; r < 8; r++)
                    for (size_t o = 0; o < d * es; o += 64)
                        _mm_prefetch((const char *)kb + (SG_ATTN_PF_ROWS + r) * k_stride * es + o,
                                     _MM_HINT_T1);
            __m512 acc[16];
#  pragma GCC unroll 16
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            for (uint32_t c = 0; c < d; c += 16) {
                __m512 va = _mm512_loadu_ps(qa + c), vb = _mm512_loadu_ps(qb + c);
#  pragma GCC unroll 8
                for (size_t r = 0; r < 8; r++) {
                    __m512 kv = ld16u(kb, r * k_stride + c, rt);
                    acc[r] = _mm512_fmadd_ps(va, kv, acc[r]);
                    acc[8 + r] = _mm512_fmadd_ps(vb, kv, acc[8 + r]);
                }
            }
            __m512 v = _mm512_mul_ps(hsum16x16(acc), vs);
            _mm256_storeu_ps(s + (size_t)h * SG_ATTN_BLOCK + j0, _mm512_castps512_ps256(v));
            _mm256_storeu_ps(s + (size_t)(h + 1) * SG_ATTN_BLOCK + j0,
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
        }
    }
    for (; h < nh; h++) {
        const float *qh = q + (size_t)h * q_stride;
        for (size_t j0 = 0; j0 < 16 * n16; j0 += 16) {
            const uint8_t *kb = (const uint8_t *)k + j0 * k_stride * es;
            if (h == 0)
                for (size_t r = 0; r < 16; r++)
                    for (size_t o = 0; o < d * es; o += 64)
                        _mm_prefetch((const char *)kb + (SG_ATTN_PF_ROWS + r) * k_stride * es + o,
                                     _MM_HINT_T1);
            __m512 acc[16];
#  pragma GCC unroll 16
            for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
            for (uint32_t c = 0; c < d; c += 16) {
                __m512 qv = _mm512_loadu_ps(qh + c);
#  pragma GCC unroll 16
                for (size_t r = 0; r < 16; r++)
                    acc[r] = _mm512_fmadd_ps(qv, ld16u(kb, r * k_stride + c, rt), acc[r]);
            }
            _mm512_storeu_ps(s + (size_t)h * SG_ATTN_BLOCK + j0, _mm512_mul_ps(hsum16x16(acc), vs));
        }
    }
}

SG_T5 SG_AI void scores_512_rt(const float *q, size_t q_stride, uint32_t nh, const void *k,
                               size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                               float *s) {
    size_t n16 = d % 16 ? 0 : nb / 16;
    if (n16) {
        if (d == 64 && k_stride == 64)
            scores_512_full(q, q_stride, nh, k, 64, rt, n16, 64, scale, s);
        else
            scores_512_full(q, q_stride, nh, k, k_stride, rt, n16, d, scale, s);
    }
    if (16 * n16 < nb) {
        /* the rest through the general loop (scores land at s + j0 of
         * each head's row) */
        size_t j0 = 16 * n16, es = rt == SG_ROW_F32 ? 4 : 2;
        scores_512_t(q, q_stride, nh, (const uint8_t *)k + j0 * k_stride * es, k_stride, rt, nb - j0, d,
                     scale, s + j0);
    }
}

SG_T5 static void attn_scores_512(const float *q, size_t q_stride, uint32_t nh, const void *k,
                                  size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                                  float *s) {
    switch (rt) {
    case SG_ROW_F16: scores_512_rt(q, q_stride, nh, k, k_stride, SG_ROW_F16, nb, d, scale, s); break;
    case SG_ROW_BF16: scores_512_rt(q, q_stride, nh, k, k_stride, SG_ROW_BF16, nb, d, scale, s); break;
    default: scores_512_rt(q, q_stride, nh, k, k_stride, SG_ROW_F32, nb, d, scale, s); break;
    }
}

/* as exp8, with the exponent applied by vscalefps (underflows to 0 cleanly) */
SG_T5 SG_AI __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-103.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* swiglu_avx2 with exp16 (masked tail) */
SG_T5 static void swiglu_512(float *a, const float *b, size_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask((uint32_t)(n - i < 16 ? n - i : 16));
        __m512 g = _mm512_maskz_loadu_ps(k, a + i);
        __m512 e = exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32(INT32_MIN))));
        _mm512_mask_storeu_ps(a + i, k, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(k, b + i)));
    }
}

SG_T5 static float attn_exp_512(float *x, size_t n, float m) {
    __m512 vm = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask((uint32_t)(n - i < 16 ? n - i : 16));
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(sum);
}

SG_T5 static void attn_clean_blocks_512(float *dst, const float *src, size_t n, float *bmax) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (size_t b0 = 0; b0 < n; b0 += 16) {
        __mmask16 k = tail_mask((uint32_t)(n - b0 < 16 ? n - b0 : 16));
        __m512 a = _mm512_maskz_loadu_ps(k, src + b0);
        a = _mm512_mask_mov_ps(a, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), ninf);
        _mm512_mask_storeu_ps(dst + b0, k, a);
        bmax[b0 / 16] = _mm512_reduce_max_ps(_mm512_mask_mov_ps(ninf, k, a));
    }
}

SG_T5 SG_AI void accum_512_t(float *out, const float *w, size_t nb, const void *v, size_t v_stride,
                             uint32_t rt, uint32_t d) {
    for (uint32_t c0 = 0; c0 < d; c0 += 128) {
        uint32_t left = d - c0;
        uint32_t na = (left + 15) / 16 < 8 ? (left + 15) / 16 : 8;
        __m512 acc[8];
        __mmask16 mk[8];
        for (uint32_t i = 0; i < 8; i++) {
            mk[i] = i < na ? tail_mask(left - 16 * i) : 0;
            acc[i] = _mm512_maskz_loadu_ps(mk[i], out + c0 + 16 * i);
        }
        for (size_t j = 0; j < nb; j++) {
            __m512 a = _mm512_set1_ps(w[j]);
            for (uint32_t i = 0; i < 8; i++)
                if (i < na) acc[i] = _mm512_fmadd_ps(a, ld16(v, j * v_stride + c0 + 16 * i, rt, mk[i]), acc[i]);
        }
        for (uint32_t i = 0; i < 8; i++)
            if (i < na) _mm512_mask_storeu_ps(out + c0 + 16 * i, mk[i], acc[i]);
    }
}

/* Up to 4 heads, 64 columns (4 vectors) per head and pass: 16 independent
 * chains of FMAs where one head alone has 4 (d = 64), which the FMA latency
 * would otherwise bound. Per element the same sequence as accum_512_t:
 * acc = out; acc = fma(w[j], V_j, acc) for j in order; out = acc.
 * NH is a constant (the accumulators stay in registers). */
SG_T5 SG_AI void accum_heads_512_t(float *const *out, const float *const *w, size_t nb,
                                   const void *const *v, size_t v_stride, uint32_t rt, uint32_t d,
                                   const uint32_t NH) {
    const size_t es = rt == SG_ROW_F32 ? 4 : 2;
    for (uint32_t c0 = 0; c0 < d; c0 += 64) {
        uint32_t left = d - c0;
        __mmask16 mk[4];
        for (uint32_t i = 0; i < 4; i++) mk[i] = left > 16 * i ? tail_mask(left - 16 * i) : 0;
        __m512 acc[16];
        const uint8_t *vb[4];
#  pragma GCC unroll 4
        for (uint32_t h = 0; h < NH; h++) {
            vb[h] = (const uint8_t *)v[h] + (size_t)c0 * es;
#  pragma GCC unroll 4
            for (uint32_t i = 0; i < 4; i++)
                acc[4 * h + i] = _mm512_maskz_loadu_ps(mk[i], out[h] + c0 + 16 * i);
        }
        for (size_t j = 0; j < nb; j++) {
#  pragma GCC unroll 4
            for (uint32_t h = 0; h < NH; h++) {
                __m512 a = _mm512_set1_ps(w[h][j]);
                const void *row = vb[h] + j * v_stride * es;
                for (size_t o = 0; o < 64 * es; o += 64)
                    _mm_prefetch((const char *)row + SG_ATTN_PF_ROWS * v_stride * es + o, _MM_HINT_T1);
#  pragma GCC unroll 4
                for (uint32_t i = 0; i < 4; i++)
                    acc[4 * h + i] = _mm512_fmadd_ps(a, ld16(row, 16 * i, rt, mk[i]), acc[4 * h + i]);
            }
        }
#  pragma GCC unroll 4
        for (uint32_t h = 0; h < NH; h++)
#  pragma GCC unroll 4
            for (uint32_t i = 0; i < 4; i++)
                if (mk[i]) _mm512_mask_storeu_ps(out[h] + c0 + 16 * i, mk[i], acc[4 * h + i]);
    }
}

/* As accum_heads_512_t for NP pairs of heads where both heads of a pair
 * read the same V rows (v[2i] == v[2i+1]: query heads sharing a V head):
 * each row chunk is loaded and converted once for the two. Per element the
 * same sequence as accum_512_t. */
SG_T5 SG_AI void accum_pairs_512_t(float *const *out, const float *const *w, size_t nb,
                                   const void *const *v, size_t v_stride, uint32_t rt, uint32_t d,
                                   const uint32_t NP) {
    const size_t es = rt == SG_ROW_F32 ? 4 : 2;
    for (uint32_t c0 = 0; c0 < d; c0 += 64) {
        uint32_t left = d - c0;
        __mmask16 mk[4];
        for (uint32_t i = 0; i < 4; i++) mk[i] = left > 16 * i ? tail_mask(left - 16 * i) : 0;
        __m512 acc[16];
        const uint8_t *vb[2];
#  pragma GCC unroll 4
        for (uint32_t h = 0; h < 2 * NP; h++) {
            if (h % 2 == 0) vb[h / 2] = (const uint8_t *)v[h] + (size_t)c0 * es;
#  pragma GCC unroll 4
            for (uint32_t i = 0; i < 4; i++)
                acc[4 * h + i] = _mm512_maskz_loadu_ps(mk[i], out[h] + c0 + 16 * i);
        }
        for (size_t j = 0; j < nb; j++) {
#  pragma GCC unroll 2
            for (uint32_t p = 0; p < NP; p++) {
                __m512 a0 = _mm512_set1_ps(w[2 * p][j]), a1 = _mm512_set1_ps(w[2 * p + 1][j]);
                const void *row = vb[p] + j * v_stride * es;
                for (size_t o = 0; o < 64 * es; o += 64)
                    _mm_prefetch((const char *)row + SG_ATTN_PF_ROWS * v_stride * es + o, _MM_HINT_T1);
#  pragma GCC unroll 4
                for (uint32_t i = 0; i < 4; i++) {
                    __m512 x = ld16(row, 16 * i, rt, mk[i]);
                    acc[8 * p + i] = _mm512_fmadd_ps(a0, x, acc[8 * p + i]);
                    acc[8 * p + 4 + i] = _mm512_fmadd_ps(a1, x, acc[8 * p + 4 + i]);
                }
            }
        }
#  pragma GCC unroll 4
        for (uint32_t h = 0; h < 2 * NP; h++)
#  pragma GCC unroll 4
            for (uint32_t i = 0; i < 4; i++)
                if (mk[i]) _mm512_mask_storeu_ps(out[h] + c0 + 16 * i, mk[i], acc[4 * h + i]);
    }
}

SG_T5 SG_AI void accum_heads_512_n(uint32_t nh, float *const *out, const float *const *w, size_t nb,
                                   const void *const *v, size_t v_stride, uint32_t rt, uint32_t d) {
    if (nh == 4 && v[0] == v[1] && v[2] == v[3]) {
        accum_pairs_512_t(out, w, nb, v, v_stride, rt, d, 2);
        return;
    }
    if (nh == 2 && v[0] == v[1]) {
        accum_pairs_512_t(out, w, nb, v, v_stride, rt, d, 1);
        return;
    }
    switch (nh) {
    case 4: accum_heads_512_t(out, w, nb, v, v_stride, rt, d, 4); break;
    case 3: accum_heads_512_t(out, w, nb, v, v_stride, rt, d, 3); break;
    case 2: accum_heads_512_t(out, w, nb, v, v_stride, rt, d, 2); break;
    default: accum_heads_512_t(out, w, nb, v, v_stride, rt, d, 1); break;
    }
}

SG_T5 static void attn_accum_heads_512(uint32_t nh, float *const *out, const float *const *w,
                                       size_t nb, const void *const *v, size_t v_stride, uint32_t rt,
                                       uint32_t d) {
    switch (rt) {
    case SG_ROW_F16: accum_heads_512_n(nh, out, w, nb, v, v_stride, SG_ROW_F16, d); break;
    case SG_ROW_BF16: accum_heads_512_n(nh, out, w, nb, v, v_stride, SG_ROW_BF16, d); break;
    default: accum_heads_512_n(nh, out, w, nb, v, v_stride, SG_ROW_F32, d); break;
    }
}

SG_T5 static void attn_accum_512(float *out, const float *w, size_t nb, const void *v,
                                 size_t v_stride, uint32_t rt, uint32_t d) {
    switch (rt) {
    case SG_ROW_F16: accum_512_t(out, w, nb, v, v_stride, SG_ROW_F16, d); break;
    case SG_ROW_BF16: accum_512_t(out, w, nb, v, v_stride, SG_ROW_BF16, d); break;
    default: accum_512_t(out, w, nb, v, v_stride, SG_ROW_F32, d); break;
    }
}
#endif

void sg_attn_kernels_fill(sg_kernels *k, int level) {
    k->attn_scores = sg_attn_scores_generic;
    k->attn_exp = sg_attn_exp_generic;
    k->attn_accum = sg_attn_accum_generic;
    k->attn_accum_heads = sg_attn_accum_heads_generic;
    k->attn_clean_blocks = sg_attn_clean_blocks_generic;
    k->swiglu = sg_swiglu;
#if SG_AK_X86
    if (level >= 1) {
        k->attn_scores = attn_scores_avx2;
        k->attn_exp = attn_exp_avx2;
        k->attn_accum = attn_accum_avx2;
        k->attn_accum_heads = attn_accum_heads_avx2;
        k->attn_clean_blocks = attn_clean_blocks_avx2;
        k->swiglu = swiglu_avx2;
    }
    if (level >= 2) {
        k->attn_scores = attn_scores_512;
        k->attn_exp = attn_exp_512;
        k->attn_accum = attn_accum_512;
        k->attn_accum_heads = attn_accum_heads_512;
        k->attn_clean_blocks = attn_clean_blocks_512;
        k->swiglu = swiglu_512;
    }
#else
    (void)level;
#endif
}
