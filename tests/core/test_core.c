#define _POSIX_C_SOURCE 200809L
/* Kernels, operations and the thread pool against naive double-precision
 * computations. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "model/model.h"
#include "sigma/sigma.h"
#include "tiny_model.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(void) { return (float)((double)rnd() / 4294967296.0 * 2.0 - 1.0); } /* [-1,1) */

/* independent half decode */
static double half_ref(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}
static uint16_t to_half(float f) {
    uint16_t h;
    sigma_kernel_f32_to_f16(&h, &f, 1);
    return h;
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* The SIMD table under test: the best level, or the one SIGMA_KERNELS caps
 * it at (the core-avx2 test entry runs this file with SIGMA_KERNELS=avx2). */
static void simd_table(sg_kernels *k) { sg_kernels_init_spec(k, 1, getenv("SIGMA_KERNELS")); }

/* ---- conversions ----------------------------------------------------------------- */

START_TEST(test_f16_roundtrip) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f;
        uint16_t hh = (uint16_t)h;
        sigma_kernel_f16_to_f32(&f, &hh, 1);
        double r = half_ref(hh);
        if (isnan(r)) {
            ck_assert(isnan(f));
            continue;
        }
        ck_assert_msg((double)f == r, "half %04x: %g vs %g", h, (double)f, r);
        uint16_t back;
        sigma_kernel_f32_to_f16(&back, &f, 1);
        ck_assert_msg(back == hh, "half %04x -> %04x", h, back);
    }
    /* rounding: nearest, ties to even, overflow to inf */
    ck_assert_uint_eq(to_half(1.0f + 0x1p-11f), 0x3c00);      /* tie -> even (down) */
    ck_assert_uint_eq(to_half(1.0f + 3 * 0x1p-11f), 0x3c02);  /* tie -> even (up) */
    ck_assert_uint_eq(to_half(65520.0f), 0x7c00);
    ck_assert_uint_eq(to_half(65519.0f), 0x7bff);
    ck_assert_uint_eq(to_half(-0x1p-25f), 0x8000);            /* tie -> 0 */
    ck_assert_uint_eq(to_half(0x1p-24f * 1.5f), 0x0002);     /* tie -> even */
    for (int i = 0; i < 100000; i++) {
        float f = rndf() * 70000.0f * (float)(rnd() % 2 ? 1.0 : 1e-6);
        uint16_t h = to_half(f);
        double r = half_ref(h);
        if (isinf(r)) {
            ck_assert(fabs((double)f) >= 65520.0);
            continue;
        }
        /* no representable half is closer */
        double next = half_ref((uint16_t)(h + 1)), prev = h & 0x7fff ? half_ref((uint16_t)(h - 1)) : r;
        ck_assert(fabs(r - f) <= fabs(next - f) || isnan(next) || isinf(next));
        ck_assert(fabs(r - f) <= fabs(prev - f));
    }
}
END_TEST

START_TEST(test_bf16) {
    for (int i = 0; i < 10000; i++) {
        float f = rndf() * 1000.0f, g;
        uint16_t b;
        sigma_kernel_f32_to_bf16(&b, &f, 1);
        sigma_kernel_bf16_to_f32(&g, &b, 1);
        ck_assert(fabsf(g - f) <= fabsf(f) * 0x1p-8f);
    }
    float one = 1.0f, r;
    uint16_t b;
    sigma_kernel_f32_to_bf16(&b, &one, 1);
    ck_assert_uint_eq(b, 0x3f80);
    sigma_kernel_bf16_to_f32(&r, &b, 1);
    ck_assert(r == 1.0f);
}
END_TEST

START_TEST(test_dot_axpy) {
    sg_kernels ks[2];
    sg_kernels_init(&ks[0], 0);
    simd_table(&ks[1]);
    for (size_t n = 0; n < 300; n += 7) {
        float a[300], b[300], y[300], y2[300];
        double ref = 0, mag = 0;
        for (size_t i = 0; i < n; i++) {
            a[i] = rndf();
            b[i] = rndf();
            ref += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        for (int k = 0; k < 2; k++) ck_assert(fabs(ks[k].dot_f32(a, b, n) - ref) <= 1e-6 * mag + 1e-30);
        ck_assert(fabs(sigma_kernel_dot_f32(a, b, n) - ref) <= 1e-6 * mag + 1e-30);
        for (int k = 0; k < 2; k++) {
            memcpy(y, b, sizeof y);
            ks[k].axpy_f32(y, 0.5f, a, n);
            for (size_t i = 0; i < n; i++) ck_assert(fabs(y[i] - (b[i] + 0.5 * a[i])) <= 1e-6);
        }
        memcpy(y2, b, sizeof y2);
        sigma_kernel_axpy_f32(y2, -2.0f, a, n);
        for (size_t i = 0; i < n; i++) ck_assert(fabs(y2[i] - (b[i] - 2.0 * a[i])) <= 1e-6);
    }
}
END_TEST

/* ---- weight types ------------------------------------------------------------------- */

typedef struct qtype { uint32_t type; uint32_t be, bb; } qtype;
static const qtype qtypes[] = {
    {SG_TYPE_F32, 1, 4},    {SG_TYPE_F16, 1, 2},    {SG_TYPE_BF16, 1, 2},   {SG_TYPE_Q4_0, 32, 18},
    {SG_TYPE_Q4_1, 32, 20}, {SG_TYPE_Q5_0, 32, 22}, {SG_TYPE_Q5_1, 32, 24}, {SG_TYPE_Q8_0, 32, 34},
    {SG_TYPE_Q4_K, 256, 144}, {SG_TYPE_Q5_K, 256, 176}, {SG_TYPE_Q6_K, 256, 210},
    {SG_TYPE_Q2_K, 256, 84}, {SG_TYPE_Q3_K, 256, 110}, {SG_TYPE_IQ4_NL, 32, 18},
    {SG_TYPE_IQ4_XS, 256, 136},
};
#define N_QTYPES (sizeof qtypes / sizeof qtypes[0])

/* Random row data of a type with sane scales. */
static void random_row(uint32_t type, uint8_t *p, size_t n) {
    size_t rb = sg_kernel_row_bytes(type, n);
    for (size_t i = 0; i < rb; i++) p[i] = (uint8_t)rnd();
    switch (type) {
    case SG_TYPE_F32:
        for (size_t i = 0; i < n; i++) {
            float f = rndf();
            memcpy(p + 4 * i, &f, 4);
        }
        break;
    case SG_TYPE_F16:
        for (size_t i = 0; i < n; i++) put16(p + 2 * i, to_half(rndf()));
        break;
    case SG_TYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            float f = rndf();
            uint16_t b;
            sigma_kernel_f32_to_bf16(&b, &f, 1);
            put16(p + 2 * i, b);
        }
        break;
    case SG_TYPE_Q4_0: case SG_TYPE_Q5_0: case SG_TYPE_Q8_0: case SG_TYPE_IQ4_NL:
        for (size_t b = 0; b < n / 32; b++) put16(p + b * (rb / (n / 32)), to_half(rndf() * 0.1f));
        break;
    case SG_TYPE_Q4_1: case SG_TYPE_Q5_1:
        for (size_t b = 0; b < n / 32; b++) {
            uint8_t *blk = p + b * (rb / (n / 32));
            put16(blk, to_half(rndf() * 0.1f));
            put16(blk + 2, to_half(rndf()));
        }
        break;
    case SG_TYPE_Q4_K: case SG_TYPE_Q5_K:
        for (size_t b = 0; b < n / 256; b++) {
            uint8_t *blk = p + b * (rb / (n / 256));
            put16(blk, to_half(rndf() * 0.01f));
            put16(blk + 2, to_half(rndf() * 0.01f));
        }
        break;
    case SG_TYPE_Q6_K:
        for (size_t b = 0; b < n / 256; b++) put16(p + b * 210 + 208, to_half(rndf() * 0.01f));
        break;
    case SG_TYPE_Q2_K:
        for (size_t b = 0; b < n / 256; b++) {
            put16(p + b * 84 + 80, to_half(rndf() * 0.01f));
            put16(p + b * 84 + 82, to_half(rndf() * 0.01f));
        }
        break;
    case SG_TYPE_Q3_K:
        for (size_t b = 0; b < n / 256; b++) put16(p + b * 110 + 108, to_half(rndf() * 0.01f));
        break;
    case SG_TYPE_IQ4_XS:
        for (size_t b = 0; b < n / 256; b++) put16(p + b * 136, to_half(rndf() * 0.001f));
        break;
    }
}

/* Independent dequantization (double) for the simple types; K-quants use
 * the library's sg_dequantize_row. Returns 0 if unavailable. */
static int ref_dequant(uint32_t type, const uint8_t *p, double *y, size_t n) {
    switch (type) {
    case SG_TYPE_F32:
        for (size_t i = 0; i < n; i++) { float f; memcpy(&f, p + 4 * i, 4); y[i] = f; }
        return 1;
    case SG_TYPE_F16:
        for (size_t i = 0; i < n; i++) y[i] = half_ref((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 1;
    case SG_TYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            float f; memcpy(&f, &u, 4); y[i] = f;
        }
        return 1;
    case SG_TYPE_Q4_0: case SG_TYPE_Q4_1: case SG_TYPE_Q5_0: case SG_TYPE_Q5_1: case SG_TYPE_Q8_0: {
        size_t bb = sg_kernel_row_bytes(type, 32);
        for (size_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = p + b * bb;
            double d = half_ref((uint16_t)(blk[0] | blk[1] << 8)), m = 0;
            int has_m = type == SG_TYPE_Q4_1 || type == SG_TYPE_Q5_1;
            if (has_m) m = half_ref((uint16_t)(blk[2] | blk[3] << 8));
            for (int j = 0; j < 32; j++) {
                int q;
                if (type == SG_TYPE_Q8_0) {
                    q = (int8_t)blk[2 + j];
                } else {
                    const uint8_t *qs = blk + bb - 16;
                    q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
                    if (type == SG_TYPE_Q5_0 || type == SG_TYPE_Q5_1) {
                        const uint8_t *qh = blk + (has_m ? 4 : 2);
                        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
                        q |= (int)((h >> j) & 1) << 4;
                        if (!has_m) q -= 16;
                    } else if (!has_m) {
                        q -= 8;
                    }
                }
                y[b * 32 + j] = q * d + m;
            }
        }
        return 1;
    }
    default: {
        float *f = malloc(n * sizeof *f);
        int ok = sg_dequantize_row(type, p, f, n) == 0;
        for (size_t i = 0; ok && i < n; i++) y[i] = f[i];
        free(f);
        return ok;
    }
    }
}

START_TEST(test_dequant_types) {
    sg_kernels ks[2];
    sg_kernels_init(&ks[0], 0);
    simd_table(&ks[1]);
    const size_t n = 512;
    for (size_t t = 0; t < N_QTYPES; t++) {
        uint32_t type = qtypes[t].type;
        ck_assert_uint_eq(sg_kernel_row_bytes(type, n), n / qtypes[t].be * qtypes[t].bb);
        uint8_t *row = malloc(sg_kernel_row_bytes(type, n));
        double ref[512];
        float a[512], b[512], lib[512];
        for (int rep = 0; rep < 20; rep++) {
            random_row(type, row, n);
            if (!ref_dequant(type, row, ref, n)) {
                fprintf(stderr, "note: no reference dequantization for type %u yet\n", type);
                break;
            }
            ck_assert_int_eq(ks[0].to_f32(type, row, a, n), 0);
            ck_assert_int_eq(ks[1].to_f32(type, row, b, n), 0);
            int have_lib = sg_dequantize_row(type, row, lib, n) == 0;
            for (size_t i = 0; i < n; i++) {
                ck_assert_msg(fabs(a[i] - ref[i]) <= 1e-6 * fabs(ref[i]) + 1e-9,
                              "type %u elem %zu: %g vs %g", type, i, (double)a[i], ref[i]);
                ck_assert_msg(a[i] == b[i], "type %u: simd and generic differ", type);
                if (have_lib)
                    ck_assert_msg(fabs(lib[i] - a[i]) <= 1e-6 * fabs(a[i]) + 1e-9,
                                  "type %u: differs from sg_dequantize_row", type);
            }
        }
        free(row);
    }
    ck_assert_uint_eq(sg_kernel_row_bytes(SG_TYPE_Q4_0, 33), 0);
    ck_assert_uint_eq(sg_kernel_row_bytes(SG_TYPE_Q2_K, 128), 0);
    ck_assert_uint_eq(sg_kernel_row_bytes(SG_TYPE_IQ4_XS, 32), 0);
    ck_assert_uint_eq(sg_kernel_row_bytes(SG_TYPE_IQ4_NL, 48), 0);
    ck_assert_uint_eq(sg_kernel_row_bytes(SG_TYPE_Q8_K, 256), 0);
}
END_TEST

/* sg_dequantize_row and every table's to_f32 are bitwise equal to the PyPI
 * gguf package's gguf.quants.dequantize on random blocks of every quantized
 * type (tests/fixtures/deq_gguf.bin, tools/reference/make_deq_fixture.py). */
static int gemm_tables(sg_kernels *ks);

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

START_TEST(test_dequant_gguf_fixture) {
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/deq_gguf.bin", root ? root : ".");
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    ck_assert(len >= 12 && memcmp(buf, "SGDQ", 4) == 0 && le32(buf + 4) == 1);
    uint32_t count = le32(buf + 8);
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    const uint8_t *p = buf + 12;
    int seen_new = 0;
    for (uint32_t e = 0; e < count; e++) {
        uint32_t type = le32(p), nb = le32(p + 4), bb = le32(p + 8), be = le32(p + 12);
        p += 16;
        uint32_t be2 = 0, bb2 = 0;
        ck_assert_msg(sg_type_info(type, &be2, &bb2), "type %u unsupported", type);
        ck_assert(be2 == be && bb2 == bb);
        size_t n = (size_t)nb * be;
        const uint8_t *blocks = p;
        p += (size_t)nb * bb;
        float *got = malloc(n * sizeof(float));
        ck_assert_int_eq(sg_dequantize_row(type, blocks, got, n), 0);
        for (size_t i = 0; i < n; i++) {
            uint32_t want = le32(p + 4 * i), have;
            memcpy(&have, &got[i], 4);
            ck_assert_msg(have == want, "%s element %zu: %a, gguf %a", sg_type_name(type), i,
                          (double)got[i], (double)((const float *)(const void *)p)[i]);
        }
        for (int k = 0; k < nk; k++) {
            float *t = malloc(n * sizeof(float));
            ck_assert_int_eq(ks[k].to_f32(type, blocks, t, n), 0);
            ck_assert_msg(memcmp(t, got, n * sizeof(float)) == 0, "%s to_f32 %s differs", ks[k].name,
                          sg_type_name(type));
            free(t);
        }
        if (type == SG_TYPE_Q2_K || type == SG_TYPE_Q3_K || type == SG_TYPE_IQ4_NL ||
            type == SG_TYPE_IQ4_XS)
            seen_new++;
        p += n * 4;
        free(got);
    }
    ck_assert_int_eq(seen_new, 4);
    ck_assert(p == buf + len);
    free(buf);
}
END_TEST

/* matmul of every type vs dequantize + naive double dot, 1 and 3 threads */
START_TEST(test_matmul_types) {
    const size_t in = 512, out = 37, n = 5;
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *pool3;
    ck_assert_int_eq(sg_pool_create(&al, 3, &pool3), SIGMA_OK);
    for (int simd = 0; simd < 2; simd++) {
        sg_kernels k;
        if (simd) simd_table(&k);
        else sg_kernels_init(&k, 0);
        for (size_t t = 0; t < N_QTYPES; t++) {
            uint32_t type = qtypes[t].type;
            size_t rb = sg_kernel_row_bytes(type, in);
            uint8_t *w = malloc(rb * out);
            for (size_t r = 0; r < out; r++) random_row(type, w + r * rb, in);
            double *wd = malloc(sizeof(double) * in * out);
            int have = 1;
            for (size_t r = 0; r < out && have; r++) have = ref_dequant(type, w + r * rb, wd + r * in, in);
            float x[5 * 512], y1[5 * 37], y3[5 * 37];
            for (size_t i = 0; i < n * in; i++) x[i] = rndf();
            sg_tensor ten = {.name = "w", .type = type, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w,
                             .nbytes = rb * out};
            float *scratch = malloc(sizeof(float) * in * 3);
            sg_exec e1 = {&k, NULL, 1, scratch, in, NULL, 0};
            sg_exec e3 = {&k, pool3, 3, scratch, in, NULL, 0};
            int st = sg_matmul(&e1, &ten, x, n, y1);
            if (!have) { /* K-quants before the dequantizer exists */
                free(w); free(wd); free(scratch);
                continue;
            }
            ck_assert_int_eq(st, SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&e3, &ten, x, n, y3), SIGMA_OK);
            ck_assert_mem_eq(y1, y3, sizeof y1);
            for (size_t tt = 0; tt < n; tt++)
                for (size_t r = 0; r < out; r++) {
                    double ref = 0, mag = 0;
                    for (size_t i = 0; i < in; i++) {
                        ref += wd[r * in + i] * x[tt * in + i];
                        mag += fabs(wd[r * in + i] * x[tt * in + i]);
                    }
                    ck_assert_msg(fabs(y1[tt * out + r] - ref) <= 1e-5 * mag + 1e-12,
                                  "type %u: %g vs %g", type, (double)y1[tt * out + r], ref);
                }
            /* a single row (the fused decode path) equals the batched path bitwise */
            float one[37];
            ck_assert_int_eq(sg_matmul(&e3, &ten, x + 2 * in, 1, one), SIGMA_OK);
            for (size_t r = 0; r < out; r++)
                ck_assert_msg(one[r] == y1[2 * out + r], "type %u simd %d: n=1 differs", type, simd);
            /* multi-matmul equals separate matmuls */
            const sg_tensor *ws[2] = {&ten, &ten};
            float ya[5 * 37], yb[5 * 37];
            float *ys[2] = {ya, yb};
            ck_assert_int_eq(sg_matmul_multi(&e3, 2, ws, x, n, ys), SIGMA_OK);
            ck_assert_mem_eq(ya, y1, sizeof ya);
            ck_assert_mem_eq(yb, y1, sizeof yb);
            /* scratch too small is refused, not overrun */
            sg_exec small = {&k, NULL, 1, scratch, in - 1, NULL, 0};
            ck_assert_int_ne(sg_matmul(&small, &ten, x, n, y1), SIGMA_OK);
            free(w); free(wd); free(scratch);
        }
    }
    sg_pool_destroy(pool3);
}
END_TEST


/* ---- blocked matrix products (gemm.c) ------------------------------------------------ */

/* The kernel tables to compare: generic, avx2, avx512 (as available). */
static int gemm_tables(sg_kernels *ks) {
    int n = 0;
    sg_kernels_init_spec(&ks[n++], 0, NULL);
    sg_kernels k;
    sg_kernels_init_spec(&k, 1, "avx2");
    if (strcmp(k.name, "generic") != 0) ks[n++] = k;
    sg_kernels_init_spec(&k, 1, "avx512"); /* AVX-512 without the AMX tiles */
    if (strcmp(k.name, ks[n - 1].name) != 0) ks[n++] = k;
    sg_kernels_init_spec(&k, 1, NULL);
    if (strcmp(k.name, ks[n - 1].name) != 0) ks[n++] = k;
    return n;
}

/* Decoded q8 activation row as doubles (layout: gemm.c, groups of 4 blocks
 * of 384 bytes: lo[64], hi[64], d[16], s[16], c8[16], c128[16]). */
static void q8_decode(const uint8_t *row, size_t n, double *out) {
    size_t nb = n / 32, ng = (nb + 3) / 4;
    for (size_t b = 0; b < ng * 4; b++) {
        const uint8_t *g = row + (b / 4) * 384;
        int k = (int)(b % 4);
        const int8_t *lo = (const int8_t *)(g + 16 * k), *hi = (const int8_t *)(g + 64 + 16 * k);
        float d[4], s;
        int32_t c8, c128;
        memcpy(d, g + 128 + 16 * k, 16);
        memcpy(&s, g + 192 + 16 * k, 4);
        memcpy(&c8, g + 256 + 16 * k, 4);
        memcpy(&c128, g + 320 + 16 * k, 4);
        long sum = 0;
        for (int j = 0; j < 32; j++) sum += j < 16 ? lo[j] : hi[j - 16];
        ck_assert(d[1] == d[0] && d[2] == d[0] && d[3] == d[0]);
        for (int l = 1; l < 4; l++) {
            float z;
            int32_t zi;
            memcpy(&z, g + 192 + 16 * k + 4 * l, 4);
            ck_assert(z == 0.0f);
            memcpy(&zi, g + 256 + 16 * k + 4 * l, 4);
            ck_assert_int_eq(zi, 0);
            memcpy(&zi, g + 320 + 16 * k + 4 * l, 4);
            ck_assert_int_eq(zi, 0);
        }
        if (b >= nb) {
            ck_assert(sum == 0 && d[0] == 0.0f && s == 0.0f && c8 == 0 && c128 == 0);
            continue;
        }
        ck_assert_int_eq(c8, -8 * sum);
        ck_assert_int_eq(c128, -128 * sum);
        ck_assert(fabs((double)s - (double)d[0] * (double)sum) <= 1e-6 * fabs((double)s) + 1e-30);
        for (int j = 0; j < 32; j++) out[b * 32 + j] = (double)(j < 16 ? lo[j] : hi[j - 16]) * d[0];
    }
}

START_TEST(test_q8_quantize) {
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    for (size_t n = 32; n <= 32 * 9; n += 32) {
        float x[32 * 9];
        for (size_t i = 0; i < n; i++) x[i] = rndf() * (i % 64 < 32 ? 3.0f : 0.01f);
        if (n == 64) memset(x, 0, 32 * sizeof(float)); /* an all-zero block */
        size_t rb = sg_q8_row_bytes(n);
        ck_assert_uint_ge(rb, 3 * n);
        uint8_t *r0 = malloc(rb), *r1 = malloc(rb);
        memset(r0, 0x55, rb);
        ks[0].quantize_q8(x, n, r0);
        double dec[32 * 9];
        q8_decode(r0, n, dec);
        for (size_t i = 0; i < n; i++) {
            /* error at most half a step of the block's scale */
            float amax = 0;
            for (size_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            ck_assert(fabs(dec[i] - x[i]) <= 0.5001 * amax / 127.0 + 1e-30);
        }
        for (int k = 1; k < nk; k++) {
            memset(r1, 0xaa, rb);
            ks[k].quantize_q8(x, n, r1);
            ck_assert_msg(memcmp(r0, r1, rb) == 0, "%s quantization differs from generic", ks[k].name);
        }
        free(r0);
        free(r1);
    }
    ck_assert_uint_eq(sg_q8_row_bytes(33), 0);
}
END_TEST

/* Decoded K-quant activation row (gemm.c: per 256 values 320 bytes: float
 * d, zero to 32, int16 sums of 16 at 32, int8 q[256] at 64). */
static void q8k_decode(const uint8_t *row, size_t n, double *out) {
    for (size_t sb = 0; sb < n / 256; sb++) {
        const uint8_t *b = row + sb * 320;
        float d;
        memcpy(&d, b, 4);
        for (int i = 4; i < 32; i++) ck_assert_int_eq(b[i], 0);
        const int8_t *q = (const int8_t *)(b + 64);
        for (int k = 0; k < 16; k++) {
            int16_t bs;
            memcpy(&bs, b + 32 + 2 * k, 2);
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += q[16 * k + l];
            ck_assert_int_eq(bs, sum);
        }
        for (int l = 0; l < 256; l++) out[sb * 256 + l] = (double)q[l] * d;
    }
}

START_TEST(test_q8k_quantize) {
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    for (size_t n = 256; n <= 768; n += 256) {
        float x[768];
        for (size_t i = 0; i < n; i++) x[i] = rndf() * (i % 512 < 256 ? 3.0f : 0.01f);
        if (n == 512) memset(x + 256, 0, 256 * sizeof(float)); /* an all-zero super-block */
        size_t rb = sg_q8k_row_bytes(n);
        ck_assert_uint_eq(rb, n / 256 * 320);
        uint8_t *r0 = malloc(rb), *r1 = malloc(rb);
        memset(r0, 0x55, rb);
        ks[0].quantize_q8k(x, n, r0);
        double dec[768];
        q8k_decode(r0, n, dec);
        for (size_t i = 0; i < n; i++) {
            float amax = 0;
            for (size_t j = i / 256 * 256; j < i / 256 * 256 + 256; j++) amax = fmaxf(amax, fabsf(x[j]));
            ck_assert(fabs(dec[i] - x[i]) <= 0.5001 * amax / 127.0 + 1e-30);
        }
        for (int k = 1; k < nk; k++) {
            memset(r1, 0xaa, rb);
            ks[k].quantize_q8k(x, n, r1);
            ck_assert_msg(memcmp(r0, r1, rb) == 0, "%s K quantization differs from generic", ks[k].name);
        }
        free(r0);
        free(r1);
    }
    ck_assert_uint_eq(sg_q8k_row_bytes(128), 0);
    ck_assert(sg_type_q8k_act(SG_TYPE_Q4_K) && sg_type_q8k_act(SG_TYPE_Q5_K) && sg_type_q8k_act(SG_TYPE_Q6_K));
    ck_assert(sg_type_q8k_act(SG_TYPE_Q2_K) && sg_type_q8k_act(SG_TYPE_Q3_K) && sg_type_q8k_act(SG_TYPE_IQ4_XS));
    ck_assert(!sg_type_q8k_act(SG_TYPE_Q4_0) && !sg_type_q8k_act(SG_TYPE_IQ4_NL));
    ck_assert(sg_type_q8_act(SG_TYPE_IQ4_NL) && !sg_type_q8_act(SG_TYPE_IQ4_XS));
}
END_TEST

/* every table's gemm vs a double reference on the same quantized inputs,
 * for all tile shapes (rows and activation counts 1..9), odd block counts */
START_TEST(test_gemm_kernels) {
    static const uint32_t types[] = {SG_TYPE_Q4_0, SG_TYPE_Q4_1, SG_TYPE_Q8_0, SG_TYPE_F32,
                                     SG_TYPE_F16,  SG_TYPE_BF16, SG_TYPE_Q4_K, SG_TYPE_Q5_K,
                                     SG_TYPE_Q6_K, SG_TYPE_Q2_K, SG_TYPE_Q3_K, SG_TYPE_IQ4_NL,
                                     SG_TYPE_IQ4_XS};
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    /* 1, 3, 8, 13 blocks: partial and whole groups of 4 blocks; K-quants:
     * 1, 2, 3, 5 super-blocks */
    const size_t ins[] = {32, 96, 256, 200, 416, 512, 768, 1280};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        int q8 = sg_type_q8_act(type), qk = sg_type_q8k_act(type);
        for (size_t ii = 0; ii < sizeof ins / sizeof ins[0]; ii++) {
            size_t in = ins[ii];
            if (q8 && (in % 32 || in > 416)) continue;
            if (qk && in % 256) continue;
            if (!q8 && !qk && in > 416) continue;
            size_t rb = sg_kernel_row_bytes(type, in);
            const size_t nr = 9, na = 9;
            uint8_t *w = malloc(rb * nr);
            double *wd = malloc(sizeof(double) * in * nr);
            for (size_t r = 0; r < nr; r++) {
                random_row(type, w + r * rb, in);
                ck_assert(ref_dequant(type, w + r * rb, wd + r * in, in));
            }
            float *x = malloc(sizeof(float) * in * na);
            for (size_t i = 0; i < in * na; i++) x[i] = rndf();
            size_t ab = q8 ? sg_q8_row_bytes(in) : qk ? sg_q8k_row_bytes(in) : in * sizeof(float);
            uint8_t *a = malloc(ab * na);
            double *ad = malloc(sizeof(double) * in * na);
            for (size_t j = 0; j < na; j++) {
                if (qk) {
                    ks[0].quantize_q8k(x + j * in, in, a + j * ab);
                    q8k_decode(a + j * ab, in, ad + j * in);
                } else if (q8) {
                    ks[0].quantize_q8(x + j * in, in, a + j * ab);
                    q8_decode(a + j * ab, in, ad + j * in);
                } else {
                    memcpy(a + j * ab, x + j * in, ab);
                    for (size_t i = 0; i < in; i++) ad[j * in + i] = x[j * in + i];
                }
            }
            float *y = malloc(sizeof(float) * nr * na), *yg = malloc(sizeof(float) * nr * na),
                  *y0 = malloc(sizeof(float) * nr * na);
            /* work memory (the batched path expands weights into it), off
             * a 64-byte boundary on purpose */
            size_t wkb = sg_gemm_work_bytes(in) + 1;
            uint8_t *wk = malloc(wkb);
            for (int k = 0; k < nk; k++) {
                for (size_t rw = 1; rw <= nr; rw++)
                    for (size_t ra = 1; ra <= na; ra += (ra < 5 ? 1 : 4)) {
                        for (size_t i = 0; i < nr * na; i++) y[i] = NAN;
                        /* with and without work memory in turn */
                        int use_wk = (rw + ra) % 2 == 0;
                        sg_gemm g = {type, w, rb, rw, a, ab, ra, in, y, nr, use_wk ? wk + 1 : NULL,
                                     use_wk ? wkb - 1 : 0};
                        ck_assert_int_eq(ks[k].gemm(&g), 0);
                        for (size_t j = 0; j < na; j++)
                            for (size_t r = 0; r < nr; r++) {
                                float v = y[j * nr + r];
                                if (j >= ra || r >= rw) {
                                    ck_assert_msg(isnan(v), "%s wrote outside the tile", ks[k].name);
                                    continue;
                                }
                                double ref = 0, mag = 0;
                                for (size_t i = 0; i < in; i++) {
                                    ref += wd[r * in + i] * ad[j * in + i];
                                    mag += fabs(wd[r * in + i] * ad[j * in + i]);
                                }
                                ck_assert_msg(fabs(v - ref) <= 2e-6 * mag + 1e-20,
                                              "%s type %u in %zu tile %zux%zu (%zu,%zu): %g vs %g",
                                              ks[k].name, type, in, rw, ra, r, j, (double)v, ref);
                                if (rw == nr && ra == 9) yg[j * nr + r] = v;
                            }
                    }
                /* the AMX level's Q4_K/Q5_K (tiles or the exact AVX-512
                 * finishing) give the portable (first) table's bits */
                if (k == 0) memcpy(y0, yg, sizeof(float) * nr * na);
                else if ((type == SG_TYPE_Q4_K || type == SG_TYPE_Q5_K || type == SG_TYPE_Q6_K ||
                          type == SG_TYPE_IQ4_XS) &&
                         strcmp(ks[k].name, "amx") == 0)
                    for (size_t i = 0; i < nr * na; i++)
                        ck_assert_msg(memcmp(&yg[i], &y0[i], sizeof(float)) == 0,
                                      "%s type %u in %zu element %zu: %a, portable %a", ks[k].name, type, in,
                                      i, (double)yg[i], (double)y0[i]);
                /* one element is computed the same way in any tile shape */
                for (size_t r = 0; r < nr; r++)
                    for (size_t j = 0; j < na; j++) {
                        float one;
                        sg_gemm g = {type, w + r * rb, rb, 1, a + j * ab, ab, 1, in, &one, 1, NULL, 0};
                        ck_assert_int_eq(ks[k].gemm(&g), 0);
                        ck_assert_msg(one == yg[j * nr + r], "%s type %u: 1x1 tile differs", ks[k].name,
                                      type);
                    }
            }
            free(w); free(wd); free(x); free(a); free(ad); free(y); free(yg); free(y0); free(wk);
        }
    }
}
END_TEST

/* batches longer than one pass of the expanded-weight path (48 rows):
 * bitwise the same as without work memory */
START_TEST(test_gemm_long_batch) {
    static const uint32_t types[] = {SG_TYPE_Q4_0, SG_TYPE_Q4_1, SG_TYPE_Q8_0, SG_TYPE_IQ4_NL};
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    const size_t in = 416, nr = 7, na = 101;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        size_t rb = sg_kernel_row_bytes(type, in), ab = sg_q8_row_bytes(in);
        uint8_t *w = malloc(rb * nr), *a = malloc(ab * na);
        for (size_t r = 0; r < nr; r++) random_row(type, w + r * rb, in);
        float *x = malloc(sizeof(float) * in), *y0 = malloc(sizeof(float) * nr * na),
              *y1 = malloc(sizeof(float) * nr * na);
        for (size_t j = 0; j < na; j++) {
            for (size_t i = 0; i < in; i++) x[i] = rndf();
            ks[0].quantize_q8(x, in, a + j * ab);
        }
        size_t wkb = sg_gemm_work_bytes(in);
        uint8_t *wk = malloc(wkb);
        for (int k = 0; k < nk; k++) {
            sg_gemm g0 = {type, w, rb, nr, a, ab, na, in, y0, nr, NULL, 0};
            sg_gemm g1 = {type, w, rb, nr, a, ab, na, in, y1, nr, wk, wkb};
            ck_assert_int_eq(ks[k].gemm(&g0), 0);
            ck_assert_int_eq(ks[k].gemm(&g1), 0);
            ck_assert_msg(memcmp(y0, y1, sizeof(float) * nr * na) == 0, "%s type %u: work path differs",
                          ks[k].name, type);
        }
        free(w); free(a); free(x); free(y0); free(y1); free(wk);
    }
}
END_TEST

/* batches longer than one L2 block of activation rows (the batch tiles
 * run the weight rows over ~384 KiB of activation rows at a time: 11 rows
 * of 8192 floats, ~40 quantized ones): every element written, bitwise the
 * same as computing it alone */
START_TEST(test_gemm_act_blocks) {
    static const uint32_t types[] = {SG_TYPE_F32, SG_TYPE_F16, SG_TYPE_BF16, SG_TYPE_Q8_0,
                                     SG_TYPE_Q4_1, SG_TYPE_Q4_K, SG_TYPE_Q6_K};
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    const size_t in = 8192, nr = 6, na = 101;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        int q8 = sg_type_q8_act(type), qk = sg_type_q8k_act(type);
        size_t rb = sg_kernel_row_bytes(type, in);
        size_t ab = q8 ? sg_q8_row_bytes(in) : qk ? sg_q8k_row_bytes(in) : in * sizeof(float);
        uint8_t *w = malloc(rb * nr), *x = malloc(ab * na);
        float *xf = malloc(sizeof(float) * in), *y = malloc(sizeof(float) * nr * na);
        for (size_t r = 0; r < nr; r++) random_row(type, w + r * rb, in);
        for (size_t j = 0; j < na; j++) {
            for (size_t i = 0; i < in; i++) xf[i] = rndf();
            if (qk) ks[0].quantize_q8k(xf, in, x + j * ab);
            else if (q8) ks[0].quantize_q8(xf, in, x + j * ab);
            else memcpy(x + j * ab, xf, ab);
        }
        for (int k = 0; k < nk; k++) {
            for (size_t i = 0; i < nr * na; i++) y[i] = NAN;
            sg_gemm g = {type, w, rb, nr, x, ab, na, in, y, nr, NULL, 0};
            ck_assert_int_eq(ks[k].gemm(&g), 0);
            for (size_t j = 0; j < na; j++)
                for (size_t r = 0; r < nr; r++) {
                    float one = NAN;
                    sg_gemm g1 = {type, w + r * rb, rb, 1, x + j * ab, ab, 1, in, &one, 1, NULL, 0};
                    ck_assert_int_eq(ks[k].gemm(&g1), 0);
                    ck_assert_msg(one == y[j * nr + r], "%s type %u row %zu act %zu: %g vs %g alone",
                                  ks[k].name, type, r, j, (double)y[j * nr + r], (double)one);
                }
        }
        free(w); free(x); free(xf); free(y);
    }
}
END_TEST

/* matmul through quantized activations: 1 vs 3 threads bitwise, close to
 * the f32-activation result */
START_TEST(test_matmul_q8) {
    static const uint32_t types[] = {SG_TYPE_Q4_0, SG_TYPE_Q4_1, SG_TYPE_Q8_0, SG_TYPE_F16,
                                     SG_TYPE_Q4_K, SG_TYPE_Q5_K, SG_TYPE_Q6_K, SG_TYPE_Q2_K,
                                     SG_TYPE_Q3_K, SG_TYPE_IQ4_NL, SG_TYPE_IQ4_XS};
    const size_t in = 512, out = 77, n = 6;
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *pool3;
    ck_assert_int_eq(sg_pool_create(&al, 3, &pool3), SIGMA_OK);
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    for (int k = 0; k < nk; k++)
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            uint32_t type = types[ti];
            size_t rb = sg_kernel_row_bytes(type, in);
            uint8_t *w = malloc(rb * out);
            for (size_t r = 0; r < out; r++) random_row(type, w + r * rb, in);
            float x[6 * 512], y1[6 * 77], y3[6 * 77], ye[6 * 77], y1b[77];
            for (size_t i = 0; i < n * in; i++) x[i] = rndf();
            sg_tensor ten = {.name = "w", .type = type, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w,
                             .nbytes = rb * out};
            float *scratch = malloc(sizeof(float) * in * 3);
            size_t qb = sg_q8_row_bytes(in) * n;
            uint8_t *qbuf = malloc(qb);
            sg_exec e1 = {&ks[k], NULL, 1, scratch, in, qbuf, qb};
            sg_exec e3 = {&ks[k], pool3, 3, scratch, in, qbuf, qb};
            sg_exec ex = {&ks[k], NULL, 1, scratch, in, NULL, 0};
            ck_assert_int_eq(sg_matmul(&e1, &ten, x, n, y1), SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&e3, &ten, x, n, y3), SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&ex, &ten, x, n, ye), SIGMA_OK);
            ck_assert_mem_eq(y1, y3, sizeof y1);
            double err = 0, mag = 0;
            for (size_t i = 0; i < n * out; i++) {
                err = fmax(err, fabs((double)y1[i] - ye[i]));
                mag = fmax(mag, fabs((double)ye[i]));
            }
            /* 8-bit activations: relative error well under 2% of the largest output */
            int act8 = sg_type_q8_act(type) || sg_type_q8k_act(type);
            ck_assert_msg(err <= (act8 ? 0.02 : 1e-5) * mag, "%s type %u: err %g of %g",
                          ks[k].name, type, err, mag);
            /* the 8-bit path was taken (it differs from f32 activations) */
            if (act8) ck_assert_msg(err > 0, "%s type %u: 8-bit path not taken", ks[k].name, type);
            /* decode (one row) equals the same row of the batch, bitwise */
            ck_assert_int_eq(sg_matmul(&e3, &ten, x + 3 * in, 1, y1b), SIGMA_OK);
            ck_assert_msg(memcmp(y1b, y1 + 3 * out, sizeof y1b) == 0, "%s type %u: n=1 differs",
                          ks[k].name, type);
            free(w); free(scratch); free(qbuf);
        }
    sg_pool_destroy(pool3);
}
END_TEST

/* The AMX level's Q4_K, Q5_K, Q6_K and IQ4_XS: batches of 16 rows and more in tile
 * registers (weights expanded per 16 rows; work memory given or not),
 * the rest through the AVX-512 tile with exact finishing; every element
 * bitwise equal to the portable kernel, for 1..3 and 5 super-blocks, 16..40
 * weight rows (tails of 5 and 8), 1..35 activation rows; the extreme
 * values (q = 15 / 31 / 63, IQ4_XS -127, scales and minimums at both ends,
 * activations -127/127 in runs) exactly. Runs where the CPU has the AMX
 * level. */
START_TEST(test_gemm_amx_k) {
    sg_kernels ks[4];
    int nk = gemm_tables(ks), tested = 0;
    static const size_t ins[] = {256, 512, 768, 1280};
    static const size_t nrs[] = {16, 21, 40};
    static const size_t ras[] = {1, 2, 15, 16, 17, 32, 35};
    static const uint32_t types[] = {SG_TYPE_Q4_K, SG_TYPE_Q5_K, SG_TYPE_Q6_K, SG_TYPE_IQ4_XS};
    for (int k = 0; k < nk; k++) {
        if (strcmp(ks[k].name, "amx") != 0) continue;
        for (size_t ti = 0; ti < 4; ti++)
            for (size_t ii = 0; ii < sizeof ins / sizeof ins[0]; ii++)
                for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
                    const uint32_t type = types[ti];
                    const size_t in = ins[ii], nr = nrs[ri], na = 35, bs = sg_kernel_row_bytes(type, 256);
                    size_t rb = sg_kernel_row_bytes(type, in), ab = sg_q8k_row_bytes(in);
                    uint8_t *w = malloc(rb * nr), *a = malloc(ab * na);
                    for (size_t r = 0; r < nr; r++) random_row(type, w + r * rb, in);
                    float *x = malloc(sizeof(float) * in);
                    for (size_t j = 0; j < na; j++) {
                        for (size_t i = 0; i < in; i++) x[i] = rndf() * (float)(j + 1);
                        ks[0].quantize_q8k(x, in, a + j * ab);
                    }
                    if (ii == 1) { /* extremes: every bit of scales, minimums and values set */
                        for (size_t r = 0; r < nr; r++)
                            for (size_t b = 0; b < in / 256; b++) {
                                uint8_t *sbk = w + r * rb + b * bs;
                                if (type == SG_TYPE_Q6_K) { /* q = 63, scales -128 / 127 */
                                    memset(sbk, 0xff, 192);
                                    for (int t = 0; t < 16; t++) sbk[192 + t] = (t + r) % 2 ? 0x80 : 0x7f;
                                } else if (type == SG_TYPE_IQ4_XS) { /* values -127, scales -32 / 31 */
                                    memset(sbk + 2, r % 2 ? 0xff : 0x00, 6);
                                    memset(sbk + 8, 0x00, 128);
                                } else {
                                    memset(sbk + 4, 0xff, bs - 4);
                                }
                            }
                        for (size_t j = 0; j < na; j++)
                            for (size_t b = 0; b < in / 256; b++) {
                                uint8_t *q = a + j * ab + b * 320;
                                int8_t v = (j + b) % 2 ? -127 : 127;
                                memset(q + 64, (uint8_t)v, 256);
                                for (int t = 0; t < 16; t++) {
                                    int16_t sum = (int16_t)(16 * v);
                                    memcpy(q + 32 + 2 * t, &sum, 2);
                                }
                            }
                    }
                    float *yg = malloc(sizeof(float) * nr * na), *y = malloc(sizeof(float) * nr * na);
                    sg_gemm gg = {type, w, rb, nr, a, ab, na, in, yg, nr, NULL, 0};
                    ck_assert_int_eq(sg_gemm_generic(&gg), 0);
                    size_t wkb = sg_gemm_work_bytes(in);
                    uint8_t *work = malloc(wkb + 1);
                    for (int wk = 0; wk < 2; wk++)
                        for (size_t rx = 0; rx < sizeof ras / sizeof ras[0]; rx++) {
                            const size_t ra = ras[rx];
                            memset(y, 0xff, sizeof(float) * nr * na);
                            sg_gemm g = {type, w, rb, nr, a, ab, ra, in, y, nr, wk ? work + 1 : NULL, wk ? wkb : 0};
                            ck_assert_int_eq(ks[k].gemm(&g), 0);
                            for (size_t j = 0; j < ra; j++)
                                for (size_t r = 0; r < nr; r++)
                                    ck_assert_msg(memcmp(y + j * nr + r, yg + j * nr + r, 4) == 0,
                                                  "amx type %u: in %zu rows %zu na %zu (%zu,%zu) work %d: %a, "
                                                  "portable %a",
                                                  type, in, nr, ra, r, j, wk, (double)y[j * nr + r],
                                                  (double)yg[j * nr + r]);
                            for (size_t j = ra; j < na; j++)
                                for (size_t r = 0; r < nr; r++) {
                                    uint32_t u;
                                    memcpy(&u, y + j * nr + r, 4);
                                    ck_assert_msg(u == 0xffffffffu, "amx type %u wrote past its rows", type);
                                }
                            tested++;
                        }
                    free(w); free(a); free(x); free(yg); free(y); free(work);
                }
    }
    if (!tested) fprintf(stderr, "test_gemm_amx_k: no AMX level on this CPU, not run\n");
}
END_TEST

/* Q4_0, Q4_1 and Q8_0 weights repacked in groups of 8 rows (sg_pack_x8) through
 * each table's gemm_x8 (for the types in its x8_types): every element
 * bitwise equal to the portable kernel on the unpacked rows, for block
 * counts with and without a partial group of 4, 8..40 rows, 1..40
 * activation rows (the AVX-512 tiles take 8 per pass, the AMX tiles 16:
 * several passes and tails), whole and split calls; the extreme int16 sums (Q4_0 nibbles 15
 * against -128 activations; Q8_0 -128 and 127 against -127/127) exactly; Q4_1's
 * minimums (the m * sa term) with scales and minimums of both signs;
 * shapes and types it does not take refused. */
START_TEST(test_gemm_x8) {
    sg_kernels ks[4];
    int nk = gemm_tables(ks), tested = 0, tested_q8 = 0;
    static const size_t ins[] = {32, 64, 96, 128, 160, 416, 1024};
    static const size_t nrs[] = {8, 16, 24, 40};
    int tested_q41 = 0;
    static const uint32_t types[] = {SG_TYPE_Q4_0, SG_TYPE_Q8_0, SG_TYPE_Q4_1};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t ii = 0; ii < sizeof ins / sizeof ins[0]; ii++)
            for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
                const uint32_t type = types[ti];
                const size_t bs = type == SG_TYPE_Q4_0 ? 18 : type == SG_TYPE_Q4_1 ? 20 : 34;
                size_t in = ins[ii], nr = nrs[ri], na = 40;
                size_t rb = sg_kernel_row_bytes(type, in), ab = sg_q8_row_bytes(in);
                uint8_t *w = malloc(rb * nr), *wp = malloc(rb * nr), *a = malloc(ab * na);
                for (size_t r = 0; r < nr; r++) random_row(type, w + r * rb, in);
                float *x = malloc(sizeof(float) * in);
                for (size_t j = 0; j < na; j++) {
                    for (size_t i = 0; i < in; i++) x[i] = rndf() * (float)(j + 1);
                    ks[0].quantize_q8(x, in, a + j * ab);
                }
                if (ii == 2 && type == SG_TYPE_Q4_0) { /* worst case for the int16 sums: q = 15, x = -128 */
                    for (size_t r = 0; r < 8; r++)
                        for (size_t b = 0; b < in / 32; b++) memset(w + r * rb + b * bs + 2, 0xff, 16);
                    for (size_t b = 0; b < in / 32; b++) {
                        memset(a + (b / 4) * 384 + (b % 4) * 16, 0x80, 16);
                        memset(a + (b / 4) * 384 + 64 + (b % 4) * 16, 0x80, 16);
                        int32_t c8 = -8 * -128 * 32;
                        memcpy(a + (b / 4) * 384 + 256 + (b % 4) * 16, &c8, 4);
                    }
                }
                if (ii == 2 && type == SG_TYPE_Q4_1) { /* q = 15 against -128, large minimums */
                    for (size_t r = 0; r < 8; r++)
                        for (size_t b = 0; b < in / 32; b++) {
                            memset(w + r * rb + b * bs + 4, 0xff, 16);
                            uint16_t mh = r % 2 ? 0xd800 : 0x5800; /* -/+ 128 as f16 */
                            memcpy(w + r * rb + b * bs + 2, &mh, 2);
                        }
                    for (size_t b = 0; b < in / 32; b++) {
                        memset(a + (b / 4) * 384 + (b % 4) * 16, 0x80, 16);
                        memset(a + (b / 4) * 384 + 64 + (b % 4) * 16, 0x80, 16);
                        float dx, sa;
                        memcpy(&dx, a + (b / 4) * 384 + 128 + (b % 4) * 16, 4);
                        sa = dx * (float)(-128 * 32);
                        memcpy(a + (b / 4) * 384 + 192 + (b % 4) * 16, &sa, 4);
                    }
                }
                if (ii == 2 && type == SG_TYPE_Q8_0) {
                    /* rows 0-3 all -128, rows 4-7 all 127; activations +-127
                     * (the quantizer's range) in runs of the same sign */
                    for (size_t r = 0; r < 8; r++)
                        for (size_t b = 0; b < in / 32; b++)
                            memset(w + r * rb + b * bs + 2, r < 4 ? 0x80 : 0x7f, 32);
                    for (size_t b = 0; b < in / 32; b++) {
                        memset(a + (b / 4) * 384 + (b % 4) * 16, b % 2 ? 0x81 : 0x7f, 16);
                        memset(a + (b / 4) * 384 + 64 + (b % 4) * 16, b % 2 ? 0x81 : 0x7f, 16);
                        /* the block's sums as the quantizer stores them */
                        int32_t sum = 32 * (b % 2 ? -127 : 127), c8 = -8 * sum, c128 = -128 * sum;
                        memcpy(a + (b / 4) * 384 + 256 + (b % 4) * 16, &c8, 4);
                        memcpy(a + (b / 4) * 384 + 320 + (b % 4) * 16, &c128, 4);
                    }
                }
                ck_assert_int_eq(sg_pack_x8(type, w, nr, rb, wp), 0);
                float *yg = malloc(sizeof(float) * nr * na), *y = malloc(sizeof(float) * nr * na);
                sg_gemm gg = {type, w, rb, nr, a, ab, na, in, yg, nr, NULL, 0};
                ck_assert_int_eq(sg_gemm_generic(&gg), 0);
                for (int k = 0; k < nk; k++) {
                    if (!ks[k].gemm_x8) continue;
                    sg_gemm bad = {type, wp, rb, nr - 1, a, ab, 1, in, y, nr, NULL, 0};
                    if (!(ks[k].x8_types >> type & 1u)) { /* not read packed: refused */
                        bad.nr = nr;
                        ck_assert_int_ne(ks[k].gemm_x8(&bad), 0);
                        continue;
                    }
                    tested++;
                    if (type == SG_TYPE_Q8_0) tested_q8++;
                    if (type == SG_TYPE_Q4_1) tested_q41++;
                    /* without and with work memory (the AMX tiles expand all
                     * blocks into it, else a few at a time) */
                    size_t wb = sg_gemm_work_bytes(in);
                    void *work = malloc(wb);
                    for (int wk = 0; wk < 2; wk++)
                        for (size_t ra = 1; ra <= na; ra++) {
                            memset(y, 0xff, sizeof(float) * nr * na);
                            sg_gemm g = {type, wp, rb, nr, a, ab, ra, in, y, nr, wk ? work : NULL, wk ? wb : 0};
                            ck_assert_int_eq(ks[k].gemm_x8(&g), 0);
                            for (size_t j = 0; j < ra; j++)
                                ck_assert_msg(memcmp(y + j * nr, yg + j * nr, sizeof(float) * nr) == 0,
                                              "%s x8 type %u: in %zu rows %zu na %zu row %zu work %d differs",
                                              ks[k].name, type, in, nr, ra, j, wk);
                            for (size_t j = ra; j < na; j++)
                                for (size_t r = 0; r < nr; r++) {
                                    uint32_t u;
                                    memcpy(&u, y + j * nr + r, 4);
                                    ck_assert_msg(u == 0xffffffffu, "%s x8 type %u: na %zu wrote row %zu",
                                                  ks[k].name, type, ra, j);
                                }
                        }
                    free(work);
                    /* one group of 8 rows at a time, activation row by row */
                    for (size_t i = 0; i < nr; i += 8)
                        for (size_t j = 0; j < na; j++) {
                            float y8[8];
                            sg_gemm g = {type, wp + i * rb, rb, 8, a + j * ab, ab, 1, in, y8, 8, NULL, 0};
                            ck_assert_int_eq(ks[k].gemm_x8(&g), 0);
                            ck_assert_mem_eq(y8, yg + j * nr + i, sizeof y8);
                        }
                    /* refused: rows not whole groups, other types, a wrong stride */
                    ck_assert_int_ne(ks[k].gemm_x8(&bad), 0);
                    bad.nr = nr;
                    bad.type = SG_TYPE_IQ4_NL;
                    ck_assert_int_ne(ks[k].gemm_x8(&bad), 0);
                    bad.type = type;
                    bad.w_stride = rb + bs;
                    ck_assert_int_ne(ks[k].gemm_x8(&bad), 0);
                }
                free(w); free(wp); free(a); free(x); free(yg); free(y);
            }
    sg_kernels k;
    sg_kernels_init_spec(&k, 1, "avx2");
    if (strcmp(k.name, "generic") != 0) {
        ck_assert_int_gt(tested, 0);
        ck_assert_int_gt(tested_q8, 0); /* the AVX2 and AVX-512 tables read Q8_0 packed */
    }
    sg_kernels_init_spec(&k, 1, "avx512");
    if (strcmp(k.name, "avx512") == 0) ck_assert_int_gt(tested_q41, 0); /* and AVX-512 Q4_1 */
    ck_assert_int_ne(sg_pack_x8(SG_TYPE_Q4_0, NULL, 7, 18, NULL), 0);
    ck_assert_int_ne(sg_pack_x8(SG_TYPE_Q4_0, NULL, 8, 20, NULL), 0);
    ck_assert_int_ne(sg_pack_x8(SG_TYPE_Q8_0, NULL, 8, 18, NULL), 0);
    ck_assert_int_ne(sg_pack_x8(SG_TYPE_Q4_1, NULL, 8, 18, NULL), 0);
    ck_assert_int_ne(sg_pack_x8(SG_TYPE_IQ4_NL, NULL, 8, 18, NULL), 0);
}
END_TEST

/* sg_matmul with a packed Q4_0, Q4_1 or Q8_0 tensor: 1 vs 3 threads bitwise, bitwise the
 * portable table's result on the unpacked rows, decode = the same row of a
 * batch; tables without gemm_x8 and "exact" ignore the packed copy. */
START_TEST(test_matmul_x8) {
    const size_t in = 416, out = 40, n = 21; /* 16 rows and a tail for the AMX tiles */
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *pool3;
    ck_assert_int_eq(sg_pool_create(&al, 3, &pool3), SIGMA_OK);
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    static const uint32_t types[] = {SG_TYPE_Q4_0, SG_TYPE_Q8_0, SG_TYPE_Q4_1};
    for (size_t ti = 0; ti < 3; ti++) {
        const uint32_t type = types[ti];
        size_t rb = sg_kernel_row_bytes(type, in);
        uint8_t *w = malloc(rb * out), *wp = malloc(rb * out);
        for (size_t r = 0; r < out; r++) random_row(type, w + r * rb, in);
        ck_assert_int_eq(sg_pack_x8(type, w, out, rb, wp), 0);
        static float x[21 * 416], yref[21 * 40], y1[21 * 40], y3[21 * 40], yu[21 * 40], y1b[40];
        for (size_t i = 0; i < n * in; i++) x[i] = rndf();
        sg_tensor tu = {.name = "w", .type = type, .n_dims = 2, .ne = {in, out, 1, 1}, .data = w,
                        .nbytes = rb * out};
        sg_tensor tp = tu;
        tp.packed = wp;
        /* work memory as the forward pass gives it (room for the AMX tiles'
         * expanded weights) */
        const size_t spt = (sg_gemm_work_bytes(in) + 3) / 4;
        float *scratch = malloc(sizeof(float) * spt * 3);
        size_t qb = sg_q8_row_bytes(in) * n;
        uint8_t *qbuf = malloc(qb);
        sg_exec eg = {&ks[0], NULL, 1, scratch, spt, qbuf, qb};
        ck_assert_int_eq(sg_matmul(&eg, &tu, x, n, yref), SIGMA_OK);
        for (int k = 0; k < nk; k++) {
            sg_exec e1 = {&ks[k], NULL, 1, scratch, spt, qbuf, qb};
            sg_exec e3 = {&ks[k], pool3, 3, scratch, spt, qbuf, qb};
            ck_assert_int_eq(sg_matmul(&e1, &tp, x, n, y1), SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&e3, &tp, x, n, y3), SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&e1, &tu, x, n, yu), SIGMA_OK);
            ck_assert_mem_eq(y1, y3, sizeof y1);
            if (ks[k].gemm_x8 && (ks[k].x8_types >> type & 1u))
                ck_assert_msg(memcmp(y1, yref, sizeof y1) == 0, "%s type %u: packed differs from generic", ks[k].name, type);
            else ck_assert_mem_eq(y1, yu, sizeof y1);
            for (size_t t = 0; t < n; t++) {
                ck_assert_int_eq(sg_matmul(&e3, &tp, x + t * in, 1, y1b), SIGMA_OK);
                ck_assert_msg(memcmp(y1b, y1 + t * out, sizeof y1b) == 0, "%s: n=1 row %zu differs", ks[k].name, t);
            }
            /* f32 activations ("exact") read the unpacked rows */
            sg_kernels kx = ks[k];
            kx.act_q8 = 0;
            sg_exec ex = {&kx, NULL, 1, scratch, spt, qbuf, qb};
            ck_assert_int_eq(sg_matmul(&ex, &tp, x, n, y1), SIGMA_OK);
            ck_assert_int_eq(sg_matmul(&ex, &tu, x, n, yu), SIGMA_OK);
            ck_assert_mem_eq(y1, yu, sizeof y1);
        }
        free(w); free(wp); free(scratch); free(qbuf);
    }
    sg_pool_destroy(pool3);
}
END_TEST



/* Whole forward passes on the tiny models with the kernels a session picks
 * (SIGMA_KERNELS=q8 / generic,q8 / exact): logits of 1 and 3 threads are
 * bitwise equal; 8-bit activations stay close to f32 activations. The
 * cache is dense f32: rounding K and V to f16 (the default) turns the
 * kernels' last-bit differences into f16 steps, past the 1e-5 bound. */
static void eval_logits(sigma_model *m, const char *spec, uint32_t threads, float *out) {
    setenv("SIGMA_KERNELS", spec, 1);
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.kv_strategy = "dense";
    sp.kv_options = "type=f32";
    sp.n_threads = threads;
    sp.logits_all = 1;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &sp, &s), SIGMA_OK);
    sigma_token toks[12];
    for (int i = 0; i < 12; i++) toks[i] = (sigma_token)((i * 7 + 3) % TM_VOCAB);
    ck_assert_int_eq(sigma_session_eval(s, toks, 9), SIGMA_OK); /* prefill */
    for (int i = 0; i < 9; i++) {
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(s, i, &lg), SIGMA_OK);
        memcpy(out + (size_t)i * TM_VOCAB, lg, TM_VOCAB * sizeof(float));
    }
    for (int i = 9; i < 12; i++) { /* decode */
        const float *lg;
        ck_assert_int_eq(sigma_session_eval(s, toks + i, 1), SIGMA_OK);
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        memcpy(out + (size_t)i * TM_VOCAB, lg, TM_VOCAB * sizeof(float));
    }
    sigma_session_close(s);
    unsetenv("SIGMA_KERNELS");
}

START_TEST(test_forward_kernels) {
    for (int kind = 0; kind < 3; kind++) {
        uint8_t *mem = NULL;
        /* kind 2 (Q4_0): opened at a level that repacks when the CPU has one */
        if (kind == 2) setenv("SIGMA_KERNELS", "avx2", 1);
        sigma_model *m = tm_open(kind, &mem);
        unsetenv("SIGMA_KERNELS");
        ck_assert_ptr_nonnull(m);
        if (kind == 2) {
            sg_kernels k;
            sg_kernels_init_spec(&k, 1, "avx2");
            ck_assert_int_eq(m->packed != NULL, k.gemm_x8 != NULL);
            ck_assert_ptr_nonnull(m->layers[0].w_gate);
            ck_assert_int_eq(m->layers[0].w_gate->packed != NULL, k.gemm_x8 != NULL);
            ck_assert_ptr_null(m->tok_embd->packed); /* 50 rows: not whole groups */
            if (k.gemm_x8) { /* the same file opened without repacking: the same logits
                              * as the portable gemm would give for those matrices */
                uint8_t *mem2 = NULL;
                setenv("SIGMA_KERNELS", "avx2,nopack", 1);
                sigma_model *m2 = tm_open(kind, &mem2);
                unsetenv("SIGMA_KERNELS");
                ck_assert_ptr_nonnull(m2);
                ck_assert_ptr_null(m2->packed);
                static float p1[12 * TM_VOCAB], p2[12 * TM_VOCAB];
                eval_logits(m, "generic,q8", 1, p1);
                eval_logits(m2, "generic,q8", 3, p2);
                ck_assert_mem_eq(p1, p2, sizeof p1);
                eval_logits(m, "avx2,q8", 1, p1);
                eval_logits(m2, "avx2,q8", 1, p2);
                ck_assert_msg(memcmp(p1, p2, sizeof p1) != 0, "packed weights not used");
                sigma_model_close(m2);
                free(mem2);
            }
        }
        static float ex[12 * TM_VOCAB], a1[12 * TM_VOCAB], a3[12 * TM_VOCAB];
        eval_logits(m, "exact", 1, ex);
        const char *specs[] = {"q8", "generic,q8", "avx2,q8", "exact", "generic,exact"};
        for (size_t si = 0; si < sizeof specs / sizeof specs[0]; si++) {
            eval_logits(m, specs[si], 1, a1);
            eval_logits(m, specs[si], 3, a3);
            ck_assert_msg(memcmp(a1, a3, sizeof a1) == 0, "kind %d %s: 1 vs 3 threads differ", kind,
                          specs[si]);
            double err = 0, mag = 0;
            for (size_t i = 0; i < 12 * TM_VOCAB; i++) {
                err = fmax(err, fabs((double)a1[i] - ex[i]));
                mag = fmax(mag, fabs((double)ex[i]));
            }
            double tol = strstr(specs[si], "q8") ? 0.05 : 1e-5;
            ck_assert_msg(err <= tol * mag, "kind %d %s: max diff %g (logits up to %g)", kind,
                          specs[si], err, mag);
        }
        sigma_model_close(m);
        free(mem);
    }
}
END_TEST

/* ---- ops ------------------------------------------------------------------------------- */

START_TEST(test_rmsnorm) {
    float x[3 * 40], w[40], out[3 * 40], tmp[40];
    for (int i = 0; i < 120; i++) x[i] = rndf() * 3;
    for (int i = 0; i < 40; i++) w[i] = rndf();
    sg_kernels k;
    simd_table(&k);
    sg_exec e = {&k, NULL, 1, NULL, 0, NULL, 0};
    sg_tensor wt = {.name = "n", .type = SG_TYPE_F32, .n_dims = 1, .ne = {40, 1, 1, 1}, .data = w};
    ck_assert_int_eq(sg_rmsnorm(&e, x, &wt, 1e-5f, 3, 40, out, tmp), SIGMA_OK);
    for (int t = 0; t < 3; t++) {
        double ss = 0;
        for (int i = 0; i < 40; i++) ss += (double)x[t * 40 + i] * x[t * 40 + i];
        double sc = 1.0 / sqrt(ss / 40 + 1e-5);
        for (int i = 0; i < 40; i++)
            ck_assert(fabs(out[t * 40 + i] - x[t * 40 + i] * sc * w[i]) <= 1e-5 * fabs(x[t * 40 + i] * sc * w[i]) + 1e-7);
    }
    ck_assert_int_ne(sg_rmsnorm(&e, x, &wt, 1e-5f, 3, 41, out, tmp), SIGMA_OK);
}
END_TEST

START_TEST(test_rope) {
    const uint32_t hd = 16, heads = 3, n = 4;
    for (int layout = 0; layout < 2; layout++)
        for (uint32_t n_rot = 8; n_rot <= hd; n_rot += 8) {
            float x[4 * 3 * 16], orig[4 * 3 * 16], cs[4 * 16];
            for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) orig[i] = x[i] = rndf();
            uint32_t pos0 = 1000 + (uint32_t)layout;
            sg_rope_table(cs, pos0, n, n_rot, 10000.0f);
            sg_rope_apply(x, n, heads, hd, n_rot, (sg_rope_pairs)layout, cs);
            for (uint32_t t = 0; t < n; t++)
                for (uint32_t h = 0; h < heads; h++) {
                    const float *o = orig + (t * heads + h) * hd;
                    const float *r = x + (t * heads + h) * hd;
                    int done[16] = {0};
                    for (uint32_t i = 0; i < n_rot / 2; i++) {
                        double ang = (double)(pos0 + t) * pow(10000.0, -2.0 * i / n_rot);
                        uint32_t a = layout ? i : 2 * i, b = layout ? i + n_rot / 2 : 2 * i + 1;
                        double ea = o[a] * cos(ang) - o[b] * sin(ang);
                        double eb = o[a] * sin(ang) + o[b] * cos(ang);
                        ck_assert_msg(fabs(r[a] - ea) < 2e-6 && fabs(r[b] - eb) < 2e-6,
                                      "layout %d rot %u pair %u", layout, n_rot, i);
                        done[a] = done[b] = 1;
                    }
                    for (uint32_t i = 0; i < hd; i++)
                        if (!done[i]) ck_assert(r[i] == o[i]); /* unrotated dims untouched */
                }
        }
}
END_TEST

START_TEST(test_softmax_swiglu) {
    float x[50];
    double ref[50], mx = -1e30, sum = 0;
    for (int i = 0; i < 50; i++) {
        x[i] = rndf() * 30;
        if (x[i] > mx) mx = x[i];
    }
    for (int i = 0; i < 50; i++) sum += exp(x[i] - mx);
    for (int i = 0; i < 50; i++) ref[i] = exp(x[i] - mx) / sum;
    sg_softmax(x, 50);
    for (int i = 0; i < 50; i++) ck_assert(fabs(x[i] - ref[i]) <= 1e-6 * ref[i] + 1e-12);
    float a[20], b[20], a0[20];
    for (int i = 0; i < 20; i++) { a0[i] = a[i] = rndf() * 8; b[i] = rndf(); }
    sg_swiglu(a, b, 20);
    for (int i = 0; i < 20; i++) {
        double e = a0[i] / (1 + exp(-(double)a0[i])) * b[i];
        ck_assert(fabs(a[i] - e) <= 1e-6 * fabs(e) + 1e-7);
    }
    /* every table's swiglu (vector exp on the SIMD levels): within 1e-6 of
     * the double result over +-100, whatever n and an element's place (21
     * elements = vectors and a tail, then each alone); NaN and infinite
     * gates give non-finite results */
    sg_kernels ks[4];
    int nk = gemm_tables(ks);
    for (int k = 0; k < nk; k++) {
        float g[21], u[21], y[21], y1;
        for (int i = 0; i < 21; i++) { g[i] = rndf() * 100; u[i] = rndf() + 1.5f; }
        g[3] = -100.0f, g[4] = 100.0f, g[5] = 0.0f, g[6] = -87.0f, g[7] = -89.0f;
        memcpy(y, g, sizeof y);
        ks[k].swiglu(y, u, 21);
        for (int i = 0; i < 21; i++) {
            double e = g[i] / (1 + exp(-(double)g[i])) * u[i];
            ck_assert_msg(fabs(y[i] - e) <= 1e-6 * fabs(e) + 1e-30, "%s swiglu(%g): %g, want %g", ks[k].name,
                          (double)g[i], (double)y[i], e);
            y1 = g[i];
            ks[k].swiglu(&y1, u + i, 1);
            ck_assert_msg(memcmp(&y1, y + i, 4) == 0, "%s swiglu: element %d alone differs", ks[k].name, i);
        }
        float h[3] = {NAN, INFINITY, -INFINITY}, hu[3] = {1, 1, 1};
        ks[k].swiglu(h, hu, 3);
        ck_assert_msg(isnan(h[0]) && !isfinite(h[1]) && !isfinite(h[2]), "%s swiglu: non-finite gates",
                      ks[k].name);
    }
}
END_TEST

START_TEST(test_embed) {
    sg_kernels k;
    simd_table(&k);
    const size_t d = 64, rows = 7;
    size_t rb = sg_kernel_row_bytes(SG_TYPE_Q8_0, d);
    uint8_t *w = malloc(rb * rows);
    for (size_t r = 0; r < rows; r++) random_row(SG_TYPE_Q8_0, w + r * rb, d);
    sg_tensor t = {.name = "e", .type = SG_TYPE_Q8_0, .n_dims = 2, .ne = {d, rows, 1, 1}, .data = w};
    float out[64];
    double ref[64];
    ck_assert_int_eq(sg_embed_row(&k, &t, 5, out), SIGMA_OK);
    ref_dequant(SG_TYPE_Q8_0, w + 5 * rb, ref, d);
    for (size_t i = 0; i < d; i++) ck_assert(fabs(out[i] - ref[i]) < 1e-6);
    ck_assert_int_ne(sg_embed_row(&k, &t, 7, out), SIGMA_OK);
    free(w);
}
END_TEST

/* ---- pool -------------------------------------------------------------------------------- */

typedef struct count_job { atomic_int *hits; atomic_int bad_tid; uint32_t nt; } count_job;
static void count_task(void *ctx, uint32_t tid, size_t b, size_t e) {
    count_job *j = ctx;
    if (tid >= j->nt) atomic_store(&j->bad_tid, 1);
    for (size_t i = b; i < e; i++) atomic_fetch_add(&j->hits[i], 1);
}

START_TEST(test_pool_each_task_once) {
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    for (uint32_t nt = 1; nt <= 5; nt += 2) {
        sg_pool *p;
        ck_assert_int_eq(sg_pool_create(&al, nt, &p), SIGMA_OK);
        ck_assert_uint_eq(sg_pool_threads(p), nt);
        for (size_t n = 1; n < 2000; n = n * 3 + 1) {
            atomic_int *hits = calloc(n, sizeof *hits);
            count_job j = {hits, 0, nt};
            for (int rep = 0; rep < 3; rep++) sg_pool_run(p, n, rep, count_task, &j);
            for (size_t i = 0; i < n; i++) ck_assert_int_eq(atomic_load(&hits[i]), 3);
            ck_assert_int_eq(atomic_load(&j.bad_tid), 0);
            free(hits);
        }
        sg_pool_destroy(p);
    }
    sigma_threadpool *tp = NULL;
    ck_assert_int_eq(sigma_threadpool_create(2, NULL, &tp), SIGMA_OK);
    ck_assert_ptr_nonnull(sg_threadpool_pool(tp));
    sigma_threadpool_destroy(tp);
    ck_assert_int_eq(sigma_threadpool_create(5000, NULL, &tp), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_threadpool_create(1, NULL, NULL), SIGMA_E_INVALID_ARG);
}
END_TEST

/* several threads sharing one pool take turns */
typedef struct share_arg { sg_pool *pool; int ok; } share_arg;
static void *share_main(void *arg) {
    share_arg *a = arg;
    a->ok = 1;
    for (int rep = 0; rep < 50; rep++) {
        atomic_int hits[100];
        for (int i = 0; i < 100; i++) atomic_init(&hits[i], 0);
        count_job j = {hits, 0, 3};
        sg_pool_run(a->pool, 100, 3, count_task, &j);
        for (int i = 0; i < 100; i++)
            if (atomic_load(&hits[i]) != 1) a->ok = 0;
    }
    return NULL;
}

START_TEST(test_pool_shared) {
    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *p;
    ck_assert_int_eq(sg_pool_create(&al, 3, &p), SIGMA_OK);
    pthread_t th[4];
    share_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].pool = p;
        pthread_create(&th[i], NULL, share_main, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert(args[i].ok);
    }
    sg_pool_destroy(p);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_f16_roundtrip);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_dot_axpy);
    tcase_add_test(tc, test_dequant_types);
    tcase_add_test(tc, test_dequant_gguf_fixture);
    tcase_add_test(tc, test_matmul_types);
    tcase_add_test(tc, test_q8_quantize);
    tcase_add_test(tc, test_q8k_quantize);
    tcase_add_test(tc, test_gemm_kernels);
    tcase_add_test(tc, test_gemm_long_batch);
    tcase_add_test(tc, test_gemm_act_blocks);
    tcase_add_test(tc, test_matmul_q8);
    tcase_add_test(tc, test_gemm_x8);
    tcase_add_test(tc, test_gemm_amx_k);
    tcase_add_test(tc, test_matmul_x8);
    tcase_add_test(tc, test_forward_kernels);
    tcase_add_test(tc, test_rmsnorm);
    tcase_add_test(tc, test_rope);
    tcase_add_test(tc, test_softmax_swiglu);
    tcase_add_test(tc, test_embed);
    tcase_add_test(tc, test_pool_each_task_once);
    tcase_add_test(tc, test_pool_shared);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
