#define _POSIX_C_SOURCE 200809L
/* Every matmul kernel (every weight type the kernels support, every SIMD
 * level this CPU has and the portable one, 8-bit and f32 activations, one
 * and several threads, decode and batched) fed hostile numbers: block scales
 * (or float elements) of +inf, -inf, NaN, the largest finite value and a
 * denormal, and activations holding the same. The outcome documented in
 * docs/model-format.md ("Non-finite and hostile tensor data"):
 *  - no sanitizer report (this test runs in the ASan+UBSan build of CI);
 *  - a poisoned weight row or activation row changes only its own outputs:
 *    every other output is bitwise what it is without the poison;
 *  - a NaN or infinite scale/activation makes its outputs non-finite (NaN
 *    exactly, for activations on the 8-bit path, which quantizes such a row
 *    as zeros with a NaN result), so the forward pass's check sees it;
 *  - denormals give finite outputs; the largest finite value may overflow
 *    (to an infinity, or NaN where a minimum term overflows too) but never
 *    does anything undefined. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "hostile_model.h"

enum { IN = 512, OUT = 19, NA = 5, BAD_W = 1, BAD_A = 2, BAD_EL = 37 };

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndf(void) { return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0); }

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* an f16 of magnitude in [2^-8, 2^-1): exponent field 7..14 */
static uint16_t small_f16(void) {
    return (uint16_t)((rnd() & 0x8000u) | ((7u + rnd() % 8u) << 10) | (rnd() & 0x3ffu));
}
static uint16_t small_bf16(void) {
    return (uint16_t)((rnd() & 0x8000u) | ((119u + rnd() % 7u) << 7) | (rnd() & 0x7fu));
}

/* Elements per block of a kernel type (1 for the float types). */
static size_t block_elems(uint32_t type) {
    if (type == 0 || type == 1 || type == 30) return 1;
    return sg_kernel_row_bytes(type, 32) ? 32 : 256;
}

/* A weight matrix of OUT random rows whose scales are small and finite. */
static uint8_t *make_weights(uint32_t type, size_t rb) {
    uint8_t *w = malloc(rb * OUT);
    ck_assert_ptr_nonnull(w);
    size_t be = block_elems(type), nb = IN / be, bb = rb / nb;
    for (size_t r = 0; r < OUT; r++)
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = w + r * rb + b * bb;
            if (type == 0) {
                float v = rndf() * 0.5f;
                memcpy(blk, &v, 4);
            } else if (type == 1) {
                put16(blk, small_f16());
            } else if (type == 30) {
                put16(blk, small_bf16());
            } else {
                for (size_t i = 0; i < bb; i++) blk[i] = (uint8_t)rnd();
                size_t off[2];
                size_t ns = hm_scale_fields(type, off);
                ck_assert_msg(ns > 0, "type %u: no scale layout in hostile_model.c", type);
                for (size_t i = 0; i < ns; i++) put16(blk + off[i], small_f16());
            }
        }
    return w;
}

static float pattern_f32(hm_pattern p) {
    switch (p) {
    case HM_POS_INF: return INFINITY;
    case HM_NEG_INF: return -INFINITY;
    case HM_NAN: return NAN;
    case HM_MAX_FINITE: return FLT_MAX;
    default: return FLT_TRUE_MIN;
    }
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

typedef struct run {
    const sg_kernels *k;
    sg_pool *pool;
    int q8;
} run;

/* y[NA][OUT] = x . w^T, and each row again alone (the decode path), which
 * must give the same bits as the batched product (NaNs: both NaN). */
static void matmul(const run *rn, const sg_tensor *w, const float *x, float *y) {
    static float scratch[3 * IN];
    static uint8_t qbuf[NA * 4096];
    size_t qb = rn->q8 ? sizeof qbuf : 0;
    ck_assert_uint_le((size_t)NA * sg_q8_row_bytes(IN), sizeof qbuf);
    ck_assert_uint_le((size_t)NA * sg_q8k_row_bytes(IN), sizeof qbuf);
    uint32_t nt = rn->pool ? 3 : 1;
    sg_exec e = {rn->k, rn->pool, nt, scratch, IN, rn->q8 ? qbuf : NULL, qb};
    ck_assert_int_eq(sg_matmul(&e, w, x, NA, y), SIGMA_OK);
    for (size_t j = 0; j < NA; j++) {
        float one[OUT];
        ck_assert_int_eq(sg_matmul(&e, w, x + j * IN, 1, one), SIGMA_OK);
        for (size_t i = 0; i < OUT; i++)
            ck_assert_msg(same_bits(one[i], y[j * OUT + i]) || (isnan(one[i]) && isnan(y[j * OUT + i])),
                          "%s type %u: decode row %zu col %zu %g != batched %g", rn->k->name, w->type, j,
                          i, (double)one[i], (double)y[j * OUT + i]);
    }
}

/* Outputs outside the poisoned row (activation) or column (weight row) equal
 * the clean ones bitwise; inside, non-finite for inf/NaN, finite for a
 * denormal. */
static void check_outcome(const run *rn, uint32_t type, int on_weight, hm_pattern p,
                          const float *clean, const float *y) {
    for (size_t j = 0; j < NA; j++)
        for (size_t i = 0; i < OUT; i++) {
            float c = clean[j * OUT + i], v = y[j * OUT + i];
            int hit = on_weight ? i == BAD_W : j == BAD_A;
            const char *what = on_weight ? "weight scale" : "activation";
            if (!hit) {
                ck_assert_msg(same_bits(c, v), "%s%s type %u, %s %s: output [%zu][%zu] changed (%g -> %g)",
                              rn->k->name, rn->q8 ? ",q8" : "", type, what, hm_pattern_name(p), j, i,
                              (double)c, (double)v);
                continue;
            }
            if (p == HM_POS_INF || p == HM_NEG_INF || p == HM_NAN) {
                ck_assert_msg(!isfinite(v), "%s%s type %u, %s %s: output [%zu][%zu] is finite (%g)",
                              rn->k->name, rn->q8 ? ",q8" : "", type, what, hm_pattern_name(p), j, i,
                              (double)v);
                /* 8-bit activations: a non-finite row is quantized as zeros
                 * and its outputs are set to NaN (never garbage integers) */
                if (!on_weight && rn->q8 && (sg_type_q8_act(type) || sg_type_q8k_act(type)))
                    ck_assert_msg(isnan(v), "%s,q8 type %u, activation %s: [%zu][%zu] = %g, not NaN",
                                  rn->k->name, type, hm_pattern_name(p), j, i, (double)v);
            } else if (p == HM_DENORMAL) {
                ck_assert_msg(isfinite(v), "%s%s type %u, %s denormal: output [%zu][%zu] = %g",
                              rn->k->name, rn->q8 ? ",q8" : "", type, what, j, i, (double)v);
            }
            /* the largest finite value: the product may overflow to an
             * infinity, and a block with a minimum term may then give
             * inf - inf = NaN; only the isolation above is promised */
        }
}

START_TEST(test_hostile_kernels) {
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *pool3;
    ck_assert_int_eq(sg_pool_create(&al, 3, &pool3), SIGMA_OK);
    /* the levels: generic, avx2, avx512, the best (as this CPU has them) */
    sg_kernels ks[5];
    int nk = 0;
    sg_kernels_init_spec(&ks[nk++], 0, NULL);
    sg_kernels k;
    sg_kernels_init_spec(&k, 1, "avx2");
    if (strcmp(k.name, ks[nk - 1].name) != 0) ks[nk++] = k;
    sg_kernels_init_spec(&k, 1, "avx512"); /* without the AMX tiles */
    if (strcmp(k.name, ks[nk - 1].name) != 0) ks[nk++] = k;
    sg_kernels_init_spec(&k, 1, NULL);
    if (strcmp(k.name, ks[nk - 1].name) != 0) ks[nk++] = k;
    int n_types = 0;
    for (size_t t = 0; t < hm_n_types; t++) {
        uint32_t type = hm_types[t];
        size_t rb = sg_kernel_row_bytes(type, IN);
        if (!rb) continue; /* a type the kernels do not run (the loader refuses it) */
        n_types++;
        uint8_t *w = make_weights(type, rb);
        uint8_t *wp = malloc(rb * OUT);
        ck_assert_ptr_nonnull(wp);
        float x[NA * IN], xp[NA * IN];
        for (size_t i = 0; i < NA * IN; i++) x[i] = rndf();
        sg_tensor ten = {.name = "w", .type = type, .n_dims = 2, .ne = {IN, OUT, 1, 1}, .data = w,
                         .nbytes = rb * OUT};
        sg_tensor tenp = ten;
        tenp.data = wp;
        for (int ki = 0; ki < nk; ki++)
            for (int q8 = 0; q8 < 2; q8++)
                for (int threads = 0; threads < 2; threads++) {
                    run rn = {&ks[ki], threads ? pool3 : NULL, q8};
                    float clean[NA * OUT], y[NA * OUT];
                    matmul(&rn, &ten, x, clean);
                    for (size_t i = 0; i < NA * OUT; i++)
                        ck_assert_msg(isfinite(clean[i]), "%s type %u: clean output not finite",
                                      ks[ki].name, type);
                    for (int p = 0; p < HM_N_PATTERNS; p++) {
                        /* the first block of weight row BAD_W */
                        memcpy(wp, w, rb * OUT);
                        hm_poison(wp + BAD_W * rb, type, (hm_pattern)p);
                        matmul(&rn, &tenp, x, y);
                        check_outcome(&rn, type, 1, (hm_pattern)p, clean, y);
                        /* one element of activation row BAD_A */
                        memcpy(xp, x, sizeof x);
                        xp[BAD_A * IN + BAD_EL] = pattern_f32((hm_pattern)p);
                        matmul(&rn, &ten, xp, y);
                        check_outcome(&rn, type, 0, (hm_pattern)p, clean, y);
                    }
                }
        free(w);
        free(wp);
    }
    ck_assert_int_ge(n_types, 10);
    sg_pool_destroy(pool3);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kernels-hostile");
    TCase *tc = tcase_create("all");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_hostile_kernels);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
