/* DiffQKV attention (projections, AugQ, RoPE, dense cache, causal softmax)
 * against a naive double-precision implementation, for Sigma-like shapes
 * n_q 8, n_k 2, n_v 4, d_qk 16, d_v 8. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward/forward.h"
#include "kv/kv.h"

static uint64_t rng_state = 0x1234567887654321ull;
static float rndf(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

#define E 32
#define NQ 8
#define NK 2
#define NV 4
#define DQK 16
#define DV 8
#define DAUG 24
#define NTOK 10

typedef struct wset {
    float wq[NQ * DQK * E], wk[NK * DQK * E], wv[NV * DV * E], wo[E * NQ * DV];
    float wg[DAUG * NQ * DQK], wu[DAUG * NQ * DQK], wd[NQ * DQK * DAUG];
    sg_tensor tq, tk, tv, to, tg, tu, td;
    sg_layer L;
} wset;

static void fill(float *p, size_t n, float s) {
    for (size_t i = 0; i < n; i++) p[i] = rndf() * s;
}

static sg_tensor mk(const char *name, float *data, uint64_t in, uint64_t out) {
    sg_tensor t = {.name = name, .type = SG_TYPE_F32, .n_dims = 2, .ne = {in, out, 1, 1},
                   .data = data, .nbytes = in * out * 4};
    return t;
}

static void make_weights(wset *w) {
    fill(w->wq, sizeof w->wq / 4, 0.3f);
    fill(w->wk, sizeof w->wk / 4, 0.3f);
    fill(w->wv, sizeof w->wv / 4, 0.3f);
    fill(w->wo, sizeof w->wo / 4, 0.3f);
    fill(w->wg, sizeof w->wg / 4, 0.3f);
    fill(w->wu, sizeof w->wu / 4, 0.3f);
    fill(w->wd, sizeof w->wd / 4, 0.3f);
    w->tq = mk("q", w->wq, E, NQ * DQK);
    w->tk = mk("k", w->wk, E, NK * DQK);
    w->tv = mk("v", w->wv, E, NV * DV);
    w->to = mk("o", w->wo, NQ * DV, E);
    w->tg = mk("g", w->wg, NQ * DQK, DAUG);
    w->tu = mk("u", w->wu, NQ * DQK, DAUG);
    w->td = mk("d", w->wd, DAUG, NQ * DQK);
    memset(&w->L, 0, sizeof w->L);
    w->L.wq = &w->tq;
    w->L.wk = &w->tk;
    w->L.wv = &w->tv;
    w->L.wo = &w->to;
    w->L.wq_gate = &w->tg;
    w->L.wq_up = &w->tu;
    w->L.wq_down = &w->td;
}

static void mv(const float *w, const double *x, size_t in, size_t out, double *y) {
    for (size_t o = 0; o < out; o++) {
        double s = 0;
        for (size_t i = 0; i < in; i++) s += (double)w[o * in + i] * x[i];
        y[o] = s;
    }
}

static void rope_ref(double *v, uint32_t pos, uint32_t n_rot, int halves, double theta) {
    for (uint32_t i = 0; i < n_rot / 2; i++) {
        double a = pos * pow(theta, -2.0 * i / n_rot);
        uint32_t i0 = halves ? i : 2 * i, i1 = halves ? i + n_rot / 2 : 2 * i + 1;
        double x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * cos(a) - x1 * sin(a);
        v[i1] = x0 * sin(a) + x1 * cos(a);
    }
}

/* naive attention output for all NTOK tokens (positions 0..) */
static void naive(const wset *w, const float *xn, int aug, uint32_t n_rot, int halves, double theta,
                  double *out) {
    static double K[NTOK][NK * DQK], V[NTOK][NV * DV], Q[NTOK][NQ * DQK];
    for (int t = 0; t < NTOK; t++) {
        double x[E], q0[NQ * DQK];
        for (int i = 0; i < E; i++) x[i] = xn[t * E + i];
        mv(w->wq, x, E, NQ * DQK, q0);
        if (aug) {
            double g[DAUG], u[DAUG];
            mv(w->wg, q0, NQ * DQK, DAUG, g);
            mv(w->wu, q0, NQ * DQK, DAUG, u);
            for (int i = 0; i < DAUG; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            mv(w->wd, g, DAUG, NQ * DQK, Q[t]);
        } else {
            memcpy(Q[t], q0, sizeof q0);
        }
        mv(w->wk, x, E, NK * DQK, K[t]);
        mv(w->wv, x, E, NV * DV, V[t]);
        for (int h = 0; h < NQ; h++) rope_ref(Q[t] + h * DQK, (uint32_t)t, n_rot, halves, theta);
        for (int h = 0; h < NK; h++) rope_ref(K[t] + h * DQK, (uint32_t)t, n_rot, halves, theta);
    }
    for (int t = 0; t < NTOK; t++) {
        double cat[NQ * DV];
        for (int h = 0; h < NQ; h++) {
            int kh = h * NK / NQ, vh = h * NV / NQ;
            double s[NTOK], mx = -1e300, sum = 0;
            for (int j = 0; j <= t; j++) {
                double d = 0;
                for (int i = 0; i < DQK; i++) d += Q[t][h * DQK + i] * K[j][kh * DQK + i];
                s[j] = d / sqrt((double)DQK);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
            for (int i = 0; i < DV; i++) {
                double o = 0;
                for (int j = 0; j <= t; j++) o += s[j] / sum * V[j][vh * DV + i];
                cat[h * DV + i] = o;
            }
        }
        mv(w->wo, cat, NQ * DV, E, out + t * E);
    }
}

static void run_case(int aug, uint32_t n_rot, int halves, uint32_t nthreads, const char *opts,
                     double tol) {
    static wset w;
    make_weights(&w);
    float xn[NTOK * E];
    fill(xn, NTOK * E, 1.0f);
    double ref[NTOK * E];
    naive(&w, xn, aug, n_rot, halves, 10000.0, ref);

    sg_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.n_layer = 1;
    hp.n_embd = E;
    hp.n_q = NQ; hp.n_k = NK; hp.n_v = NV;
    hp.d_qk = DQK; hp.d_v = DV; hp.d_aug = aug ? DAUG : 0;
    hp.n_rot = n_rot;
    hp.rope_theta = 10000.0f;
    hp.rope_layout = halves ? SG_ROPE_HALVES : SG_ROPE_ADJACENT;

    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_pool *pool = NULL;
    ck_assert_int_eq(sg_pool_create(&al, nthreads, &pool), SIGMA_OK);
    sg_kernels k;
    sg_kernels_init(&k, 1);
    float *scratch = calloc((size_t)nthreads * 128, sizeof(float));
    sg_exec e = {&k, pool, nthreads, scratch, 128, NULL, 0};
    sg_kv_env env = {&e, &al};
    sigma_kv_strategy kv;
    ck_assert_int_eq(sg_kv_find("dense", &kv), 1);
    kv.user = &env;
    sigma_kv_layout lay = {sizeof lay, 1, NQ, NK, NV, DQK, DV, 64, 8};
    void *st = NULL;
    char err[128];
    ck_assert_int_eq(kv.create(kv.user, &lay, opts, &st, err, sizeof err), SIGMA_OK);

    static float q[8 * NQ * DQK], q0[8 * NQ * DQK], ag[8 * DAUG], au[8 * DAUG], kk[8 * NK * DQK],
        vv[8 * NV * DV], att[8 * NQ * DV], cs[8 * DQK], out[NTOK * E];
    sg_attn_bufs b = {q, q0, ag, au, kk, vv, att, cs};
    const int batches[] = {4, 1, 5};
    uint32_t pos = 0;
    sg_err er;
    for (int bi = 0; bi < 3; bi++) {
        size_t n = (size_t)batches[bi];
        sg_rope_table(cs, pos, n, n_rot, hp.rope_theta);
        ck_assert_int_eq(sg_attention(&e, &hp, &w.L, 0, &kv, st, xn + pos * E, n, pos, &b,
                                      out + pos * E, &er), SIGMA_OK);
        pos += (uint32_t)n;
    }
    for (int i = 0; i < NTOK * E; i++)
        ck_assert_msg(fabs(out[i] - ref[i]) <= tol * (1 + fabs(ref[i])),
                      "aug %d rot %u halves %d threads %u opts %s: elem %d: %g vs %g", aug, n_rot,
                      halves, nthreads, opts ? opts : "-", i, (double)out[i], ref[i]);
    ck_assert_uint_eq(kv.bytes_used(st),
                      NTOK * (NK * DQK + NV * DV) * (!opts || strstr(opts, "16") ? 2 : 4));
    kv.destroy(st);
    sg_pool_destroy(pool);
    free(scratch);
}

START_TEST(test_attention_vs_naive) {
    for (int aug = 0; aug < 2; aug++)
        for (int halves = 0; halves < 2; halves++)
            for (uint32_t rot = 8; rot <= DQK; rot += 8)
                run_case(aug, rot, halves, 1, "type=f32", 2e-5);
    run_case(1, DQK, 1, 3, "type=f32", 2e-5);
    run_case(1, DQK, 1, 1, NULL, 2e-2); /* the default: f16 */
    run_case(1, DQK, 0, 2, "type=f16", 2e-2);
    run_case(0, DQK, 1, 2, "type=bf16", 5e-2);
}
END_TEST

/* one head over many rows: exercises the streaming softmax across blocks */
START_TEST(test_attn_head_long) {
    const size_t n_pos = 300;
    const uint32_t dqk = 24, dv = 10;
    float *K = malloc(n_pos * dqk * sizeof(float)), *V = malloc(n_pos * dv * sizeof(float));
    float q[24], out[10];
    fill(K, n_pos * dqk, 1.0f);
    fill(V, n_pos * dv, 1.0f);
    fill(q, dqk, 3.0f);
    /* a late, dominant score forces rescaling */
    for (uint32_t i = 0; i < dqk; i++) K[250 * dqk + i] = q[i];
    sg_kernels ks[2];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init(&ks[1], 1);
    for (int kk = 0; kk < 2; kk++)
        for (size_t np = 1; np <= n_pos; np += 37) {
            sg_attn_head(&ks[kk], q, K, dqk, V, dv, SG_KV_F32, np, dqk, dv, 0.2f, out);
            double s[300], mx = -1e300, sum = 0;
            for (size_t j = 0; j < np; j++) {
                double d = 0;
                for (uint32_t i = 0; i < dqk; i++) d += (double)q[i] * K[j * dqk + i];
                s[j] = d * 0.2;
                if (s[j] > mx) mx = s[j];
            }
            for (size_t j = 0; j < np; j++) sum += (s[j] = exp(s[j] - mx));
            for (uint32_t i = 0; i < dv; i++) {
                double o = 0;
                for (size_t j = 0; j < np; j++) o += s[j] / sum * V[j * dv + i];
                ck_assert_msg(fabs(out[i] - o) < 1e-5, "np %zu: %g vs %g", np, (double)out[i], o);
            }
        }
    free(K);
    free(V);
}
END_TEST

/* a group of query heads sharing a K head (two V heads among them, f32 and
 * f16 storage) equals sg_attn_head per head bitwise */
START_TEST(test_attn_group) {
    const size_t n_pos = 200;
    const uint32_t dqk = 16, dv = 8, nh = 8, nv = 2; /* 8 q heads, V heads shared by 4 */
    const size_t kst = dqk, vst = (size_t)nv * dv;
    float *K = malloc(n_pos * kst * sizeof(float)), *V = malloc(n_pos * vst * sizeof(float));
    uint16_t *K16 = malloc(n_pos * kst * 2), *V16 = malloc(n_pos * vst * 2);
    float q[8 * 16], out[8 * 8], ref[8];
    fill(K, n_pos * kst, 1.0f);
    fill(V, n_pos * vst, 1.0f);
    fill(q, nh * dqk, 2.0f);
    sigma_kernel_f32_to_f16(K16, K, n_pos * kst);
    sigma_kernel_f32_to_f16(V16, V, n_pos * vst);
    sg_kernels ks[2];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init(&ks[1], 1);
    for (int kk = 0; kk < 2; kk++)
        for (int f16 = 0; f16 < 2; f16++)
            for (size_t np = 1; np <= n_pos; np += 29) {
                const void *kb = f16 ? (const void *)K16 : (const void *)K;
                const void *vb[8];
                for (uint32_t h = 0; h < nh; h++)
                    vb[h] = f16 ? (const void *)(V16 + (h / (nh / nv)) * dv)
                                : (const void *)(V + (h / (nh / nv)) * dv);
                sg_kv_type ty = f16 ? SG_KV_F16 : SG_KV_F32;
                sg_attn_group(&ks[kk], nh, q, dqk, kb, kst, vb, vst, ty, np, dqk, dv, 0.25f, out, dv);
                for (uint32_t h = 0; h < nh; h++) {
                    sg_attn_head(&ks[kk], q + h * dqk, kb, kst, vb[h], vst, ty, np, dqk, dv, 0.25f, ref);
                    ck_assert_msg(memcmp(ref, out + h * dv, sizeof ref) == 0, "head %u np %zu differs", h, np);
                }
            }
    free(K); free(V); free(K16); free(V16);
}
END_TEST

/* A tile of consecutive prompt queries (sg_attn_group_causal): query i
 * attends n_pos + i rows and must equal sg_attn_group_capped for that query
 * alone, bitwise: tiles of 1..40 queries (past SG_ATTN_QTILE, whose
 * remainder starts further on), starts on and off the 64-row block edges,
 * f32 and f16 rows, with and without soft-capping, every kernel level. */
START_TEST(test_attn_causal_tile) {
    /* _i = 0: 4 heads (16 queries a pass); 1: 40 heads, 6 queries a pass
     * (SG_ATTN_QSTATE) */
    const size_t max_pos = 230;
    const uint32_t dqk = 16, dv = 8, nh = _i ? 40 : 4, nv = 2, nqmax = 40;
    const size_t kst = dqk, vst = (size_t)nv * dv, qst = (size_t)nh * dqk + 3, ost = (size_t)nh * dv + 5;
    float *K = malloc(max_pos * kst * sizeof(float)), *V = malloc(max_pos * vst * sizeof(float));
    uint16_t *K16 = malloc(max_pos * kst * 2), *V16 = malloc(max_pos * vst * 2);
    float *q = malloc(nqmax * qst * sizeof(float)), *out = malloc(nqmax * ost * sizeof(float));
    float *ref = malloc((size_t)nh * dv * sizeof(float));
    fill(K, max_pos * kst, 1.0f);
    fill(V, max_pos * vst, 1.0f);
    fill(q, nqmax * qst, 2.0f);
    sigma_kernel_f32_to_f16(K16, K, max_pos * kst);
    sigma_kernel_f32_to_f16(V16, V, max_pos * vst);
    static const size_t starts[] = {1, 2, 63, 64, 65, 100, 127, 190};
    static const uint32_t nqs[] = {1, 2, 5, 6, 7, 15, 16, 17, 31, 32, 40};
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    const void *vb[40];
    for (int kk = 0; kk < 3; kk++)
        for (int f16 = 0; f16 < 2; f16++)
            for (int capped = 0; capped < 2; capped++)
                for (size_t si = 0; si < sizeof starts / sizeof *starts; si++)
                    for (size_t ni = 0; ni < sizeof nqs / sizeof *nqs; ni++) {
                        size_t np = starts[si];
                        uint32_t nq = nqs[ni];
                        if (np + nq - 1 > max_pos) continue;
                        const void *kb = f16 ? (const void *)K16 : (const void *)K;
                        for (uint32_t h = 0; h < nh; h++)
                            vb[h] = f16 ? (const void *)(V16 + (h / (nh / nv)) * dv)
                                        : (const void *)(V + (h / (nh / nv)) * dv);
                        sg_kv_type ty = f16 ? SG_KV_F16 : SG_KV_F32;
                        float cap = capped ? 3.0f : 0.0f;
                        memset(out, 0xff, nqmax * ost * sizeof(float));
                        sg_attn_group_causal(&ks[kk], nq, qst, ost, nh, q, dqk, kb, kst, vb, vst, ty, np, dqk,
                                             dv, 0.25f, cap, out, dv);
                        for (uint32_t i = 0; i < nq; i++) {
                            sg_attn_group_capped(&ks[kk], nh, q + i * qst, dqk, kb, kst, vb, vst, ty, np + i,
                                                 dqk, dv, 0.25f, cap, ref, dv);
                            ck_assert_msg(memcmp(ref, out + i * ost, (size_t)nh * dv * sizeof(float)) == 0,
                                          "level %d f16 %d cap %d heads %u: query %u of %u from %zu rows differs",
                                          kk, f16, capped, nh, i, nq, np);
                        }
                    }
    free(K); free(V); free(K16); free(V16); free(q); free(out); free(ref);
}
END_TEST

/* The block kernels of every table this CPU has (generic, avx2, best):
 * scores, exp and V accumulation against double references for f32/f16/bf16
 * rows, head dimensions with and without SIMD tails, every block length;
 * and each score bitwise independent of the number of heads beside it. */
static double elem(const void *base, size_t i, uint32_t rt) {
    if (rt == SG_ROW_F16) return sg_f16_to_f32(((const uint16_t *)base)[i]);
    if (rt == SG_ROW_BF16) return sg_bf16_to_f32(((const uint16_t *)base)[i]);
    return ((const float *)base)[i];
}

START_TEST(test_attn_kernels) {
    static const uint32_t dims[] = {8, 24, 40, 64, 72, 128, 136};
    static const size_t nbs[] = {1, 7, 8, 15, 16, 17, 33, 64};
    const uint32_t nh = 5, dmax = 136;
    const size_t kst = dmax + 3; /* row stride larger than d */
    float *K = malloc(SG_ATTN_BLOCK * kst * sizeof(float));
    uint16_t *K16 = malloc(SG_ATTN_BLOCK * kst * 2), *Kb = malloc(SG_ATTN_BLOCK * kst * 2);
    float q[5 * 136], s[5 * SG_ATTN_BLOCK], s1[SG_ATTN_BLOCK], w[SG_ATTN_BLOCK];
    float out[136], out0[136];
    fill(K, SG_ATTN_BLOCK * kst, 1.0f);
    fill(q, nh * dmax, 1.0f);
    sigma_kernel_f32_to_f16(K16, K, SG_ATTN_BLOCK * kst);
    sigma_kernel_f32_to_bf16(Kb, K, SG_ATTN_BLOCK * kst);
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    for (int kk = 0; kk < 3; kk++)
        for (uint32_t rt = 0; rt < 3; rt++) {
            const void *kb = rt == SG_ROW_F16 ? (const void *)K16 : rt == SG_ROW_BF16 ? (const void *)Kb : (const void *)K;
            for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
                for (size_t ni = 0; ni < sizeof nbs / sizeof *nbs; ni++) {
                    uint32_t d = dims[di];
                    size_t nb = nbs[ni];
                    ks[kk].attn_scores(q, dmax, nh, kb, kst, rt, nb, d, 0.5f, s);
                    for (uint32_t h = 0; h < nh; h++) {
                        ks[kk].attn_scores(q + h * dmax, 0, 1, kb, kst, rt, nb, d, 0.5f, s1);
                        ck_assert_msg(memcmp(s1, s + h * SG_ATTN_BLOCK, nb * sizeof(float)) == 0,
                                      "%s: score of head %u depends on the group", ks[kk].name, h);
                        for (size_t j = 0; j < nb; j++) {
                            double ref = 0, mag = 0;
                            for (uint32_t i = 0; i < d; i++) {
                                ref += (double)q[h * dmax + i] * elem(kb, j * kst + i, rt);
                                mag += fabs((double)q[h * dmax + i] * elem(kb, j * kst + i, rt));
                            }
                            ck_assert_msg(fabs(s[h * SG_ATTN_BLOCK + j] - 0.5 * ref) <= 1e-6 * mag + 1e-7,
                                          "%s rt %u d %u nb %zu: score %g vs %g", ks[kk].name, rt, d,
                                          nb, (double)s[h * SG_ATTN_BLOCK + j], 0.5 * ref);
                        }
                    }
                    /* weights and accumulation (V rows = the K rows) */
                    for (size_t j = 0; j < nb; j++) w[j] = rndf();
                    for (uint32_t i = 0; i < d; i++) out[i] = out0[i] = rndf();
                    ks[kk].attn_accum(out, w, nb, kb, kst, rt, d);
                    for (uint32_t i = 0; i < d; i++) {
                        double ref = out0[i], mag = fabs(out0[i]);
                        for (size_t j = 0; j < nb; j++) {
                            ref += (double)w[j] * elem(kb, j * kst + i, rt);
                            mag += fabs((double)w[j] * elem(kb, j * kst + i, rt));
                        }
                        ck_assert_msg(fabs(out[i] - ref) <= 1e-6 * mag + 1e-7, "%s rt %u d %u nb %zu: accum %g vs %g",
                                      ks[kk].name, rt, d, nb, (double)out[i], ref);
                    }
                }
        }
    /* exp: relative error against exp() over the whole useful range, every
     * length (SIMD tails), the sum, and exact zero far below the max */
    for (int kk = 0; kk < 3; kk++)
        for (size_t n = 1; n <= 70; n += 3) {
            float x[70], x0[70];
            for (size_t i = 0; i < n; i++) x[i] = x0[i] = -90.0f * (float)i / 70.0f + 0.25f * rndf();
            float m = 0.3f;
            float sum = ks[kk].attn_exp(x, n, m);
            double rs = 0;
            for (size_t i = 0; i < n; i++) {
                double e = exp((double)(x0[i] - m)); /* the kernel's argument is the float difference */
                rs += e;
                ck_assert_msg(fabs(x[i] - e) <= 4e-7 * e + 1e-37, "%s: exp(%g) = %g vs %g", ks[kk].name,
                              (double)(x0[i] - m), (double)x[i], e);
            }
            ck_assert_msg(fabs(sum - rs) <= 1e-6 * rs, "%s: exp sum %g vs %g", ks[kk].name, (double)sum, rs);
        }
    free(K);
    free(K16);
    free(Kb);
}
END_TEST

/* sg_attn_scores over many blocks: every score near the double reference
 * and bitwise equal whatever the number of heads requested together */
START_TEST(test_attn_scores_all) {
    const size_t n_pos = 150;
    const uint32_t d = 24, nh = 3;
    float *K = malloc(n_pos * d * sizeof(float)), q[3 * 24];
    float *s = malloc(nh * n_pos * sizeof(float)), *s1 = malloc(n_pos * sizeof(float));
    fill(K, n_pos * d, 1.0f);
    fill(q, nh * d, 1.0f);
    sg_kernels ks[2];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init(&ks[1], 1);
    for (int kk = 0; kk < 2; kk++) {
        sg_attn_scores(&ks[kk], nh, q, d, K, d, SG_KV_F32, n_pos, d, 0.3f, s, n_pos);
        for (uint32_t h = 0; h < nh; h++) {
            sg_attn_scores(&ks[kk], 1, q + h * d, d, K, d, SG_KV_F32, n_pos, d, 0.3f, s1, n_pos);
            ck_assert(memcmp(s1, s + h * n_pos, n_pos * sizeof(float)) == 0);
            for (size_t p = 0; p < n_pos; p++) {
                double ref = 0;
                for (uint32_t i = 0; i < d; i++) ref += (double)q[h * d + i] * K[p * d + i];
                ck_assert_msg(fabs(s[h * n_pos + p] - 0.3 * ref) < 1e-5, "score %g vs %g",
                              (double)s[h * n_pos + p], 0.3 * ref);
            }
        }
    }
    free(K);
    free(s);
    free(s1);
}
END_TEST

/* accum_heads: each head bitwise equal to attn_accum for it alone, every
 * number of heads (shared and distinct V rows), row type, width (tails) and
 * block length; nothing written past d */
START_TEST(test_attn_accum_heads) {
    static const uint32_t dims[] = {8, 16, 24, 40, 64, 72, 128, 136};
    static const size_t nbs[] = {1, 7, 16, 17, 64};
    const uint32_t dmax = 136;
    const size_t vst = dmax + 5;
    float *V = malloc(2 * SG_ATTN_BLOCK * vst * sizeof(float));
    uint16_t *V16 = malloc(2 * SG_ATTN_BLOCK * vst * 2), *Vb = malloc(2 * SG_ATTN_BLOCK * vst * 2);
    fill(V, 2 * SG_ATTN_BLOCK * vst, 1.0f);
    sigma_kernel_f32_to_f16(V16, V, 2 * SG_ATTN_BLOCK * vst);
    sigma_kernel_f32_to_bf16(Vb, V, 2 * SG_ATTN_BLOCK * vst);
    float w[SG_ATTN_ACCUM_HEADS][SG_ATTN_BLOCK];
    float out[SG_ATTN_ACCUM_HEADS][144], ref[SG_ATTN_ACCUM_HEADS][144];
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    for (int kk = 0; kk < 3; kk++)
        for (uint32_t rt = 0; rt < 3; rt++) {
            const uint8_t *vb = rt == SG_ROW_F16 ? (const uint8_t *)V16
                                : rt == SG_ROW_BF16 ? (const uint8_t *)Vb
                                                    : (const uint8_t *)V;
            size_t es = rt == SG_ROW_F32 ? 4 : 2;
            for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
                for (size_t ni = 0; ni < sizeof nbs / sizeof *nbs; ni++)
                    for (uint32_t nhs = 2; nhs <= 2 * SG_ATTN_ACCUM_HEADS + 1; nhs++) {
                        /* pairs: heads 2i and 2i+1 share rows (query heads
                         * sharing a V head take the kernels' pair path) */
                        uint32_t nh = nhs / 2, pairs = nhs % 2;
                        uint32_t d = dims[di];
                        size_t nb = nbs[ni];
                        float *o[SG_ATTN_ACCUM_HEADS];
                        const float *wp[SG_ATTN_ACCUM_HEADS];
                        const void *vp[SG_ATTN_ACCUM_HEADS];
                        for (uint32_t h = 0; h < nh; h++) {
                            for (size_t j = 0; j < nb; j++) w[h][j] = rndf();
                            for (uint32_t i = 0; i < 144; i++) out[h][i] = ref[h][i] = rndf();
                            o[h] = out[h];
                            wp[h] = w[h];
                            /* heads 0 and 1 share rows, the others start elsewhere */
                            vp[h] = vb + (pairs ? (size_t)(h / 2) * 7 * vst * es
                                          : h < 2 ? 0 : (size_t)h * 7 * vst * es);
                        }
                        ks[kk].attn_accum_heads(nh, o, wp, nb, vp, vst, rt, d);
                        for (uint32_t h = 0; h < nh; h++) {
                            ks[kk].attn_accum(ref[h], w[h], nb, vp[h], vst, rt, d);
                            ck_assert_msg(memcmp(out[h], ref[h], sizeof ref[h]) == 0,
                                          "%s rt %u d %u nb %zu nh %u pairs %u: head %u differs",
                                          ks[kk].name, rt, d, nb, nh, pairs, h);
                        }
                    }
        }
    free(V);
    free(V16);
    free(Vb);
}
END_TEST

/* every score bitwise the same whatever its place: rows scored in blocks
 * (full 16-row groups take an unmasked path) against the same row scored
 * alone, contiguous rows of d = 64 (the dense layout) and strided rows */
START_TEST(test_attn_scores_place) {
    static const size_t nbs[] = {16, 17, 31, 32, 48, 63, 64};
    static const uint32_t dims[] = {16, 64, 128};
    const uint32_t nh = 3;
    float *K = malloc(SG_ATTN_BLOCK * 136 * sizeof(float));
    uint16_t *K16 = malloc(SG_ATTN_BLOCK * 136 * 2), *Kb = malloc(SG_ATTN_BLOCK * 136 * 2);
    float q[3 * 128], s[3 * SG_ATTN_BLOCK], s1[SG_ATTN_BLOCK];
    fill(K, SG_ATTN_BLOCK * 136, 1.0f);
    fill(q, 3 * 128, 1.0f);
    sigma_kernel_f32_to_f16(K16, K, SG_ATTN_BLOCK * 136);
    sigma_kernel_f32_to_bf16(Kb, K, SG_ATTN_BLOCK * 136);
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    for (int kk = 0; kk < 3; kk++)
        for (uint32_t rt = 0; rt < 3; rt++)
            for (size_t di = 0; di < 3; di++)
                for (int strided = 0; strided < 2; strided++) {
                    uint32_t d = dims[di];
                    size_t kst = strided ? 136 : d, es = rt == SG_ROW_F32 ? 4 : 2;
                    const uint8_t *kb = rt == SG_ROW_F16 ? (const uint8_t *)K16
                                        : rt == SG_ROW_BF16 ? (const uint8_t *)Kb
                                                            : (const uint8_t *)K;
                    for (size_t ni = 0; ni < sizeof nbs / sizeof *nbs; ni++) {
                        size_t nb = nbs[ni];
                        ks[kk].attn_scores(q, 128, nh, kb, kst, rt, nb, d, 0.3f, s);
                        for (size_t j = 0; j < nb; j++)
                            for (uint32_t h = 0; h < nh; h++) {
                                ks[kk].attn_scores(q + h * 128, 0, 1, kb + j * kst * es, kst, rt, 1, d,
                                                   0.3f, s1);
                                ck_assert_msg(memcmp(&s1[0], &s[h * SG_ATTN_BLOCK + j], sizeof(float)) == 0,
                                              "%s rt %u d %u stride %zu nb %zu row %zu head %u: %g vs %g",
                                              ks[kk].name, rt, d, kst, nb, j, h,
                                              (double)s[h * SG_ATTN_BLOCK + j], (double)s1[0]);
                            }
                    }
                }
    free(K);
    free(K16);
    free(Kb);
}
END_TEST

/* NaNs to -inf and the maxima of 16-position blocks, on every level:
 * values with NaNs (both signs, quiet and signalling patterns), infinities,
 * both zeros, every length 0..70, in place and into another buffer */
START_TEST(test_attn_clean_blocks) {
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u};
    float src[72], dst[72], in[72], bm[8];
    for (int kk = 0; kk < 3; kk++)
        for (size_t n = 0; n <= 70; n++)
            for (int pattern = 0; pattern < 4; pattern++)
                for (int inplace = 0; inplace < 2; inplace++) {
                    for (size_t j = 0; j < 72; j++) {
                        float v = rndf() * 10.0f;
                        uint32_t r = (uint32_t)(j * 7 + (size_t)pattern * 13) % 11;
                        if (pattern > 0 && r == 0) memcpy(&v, &nans[j % 4], 4);
                        if (pattern > 1 && r == 3) v = j % 2 ? INFINITY : -INFINITY;
                        if (pattern == 3 && r != 0) v = j % 2 ? 0.0f : -0.0f;
                        if (pattern == 2 && j >= 16 && j < 32) memcpy(&v, &nans[1], 4); /* a block of NaNs */
                        src[j] = v;
                    }
                    memcpy(in, src, sizeof in);
                    for (size_t j = 0; j < 72; j++) dst[j] = 12345.0f;
                    for (int b = 0; b < 8; b++) bm[b] = 54321.0f;
                    float *out = inplace ? in : dst;
                    ks[kk].attn_clean_blocks(out, in, n, bm);
                    for (size_t j = 0; j < 72; j++) {
                        if (j >= n) {
                            ck_assert_msg(inplace ? memcmp(&out[j], &src[j], 4) == 0 : out[j] == 12345.0f,
                                          "%s n %zu: wrote past the end at %zu", ks[kk].name, n, j);
                            continue;
                        }
                        float want = src[j] == src[j] ? src[j] : -INFINITY;
                        ck_assert_msg(memcmp(&out[j], &want, 4) == 0 || (want == 0.0f && out[j] == 0.0f),
                                      "%s n %zu pattern %d: element %zu %g, want %g", ks[kk].name, n,
                                      pattern, j, (double)out[j], (double)want);
                    }
                    size_t nb = (n + SG_ATTN_CLEAN_BLOCK - 1) / SG_ATTN_CLEAN_BLOCK;
                    for (size_t b = 0; b < 8; b++) {
                        if (b >= nb) {
                            ck_assert_msg(bm[b] == 54321.0f, "%s n %zu: block max %zu written", ks[kk].name, n, b);
                            continue;
                        }
                        float m = -INFINITY;
                        for (size_t j = b * 16; j < n && j < b * 16 + 16; j++)
                            if (src[j] == src[j] && src[j] > m) m = src[j];
                        ck_assert_msg(bm[b] == m, "%s n %zu pattern %d: block %zu max %g, want %g",
                                      ks[kk].name, n, pattern, b, (double)bm[b], (double)m);
                    }
                }
}
END_TEST

/* accumulate must not write past d (tails) */
START_TEST(test_attn_accum_bounds) {
    float V[64 * 24], w[64], out[40];
    fill(V, 64 * 24, 1.0f);
    fill(w, 64, 1.0f);
    sg_kernels ks[4];
    sg_kernels_init(&ks[0], 0);
    sg_kernels_init_spec(&ks[1], 1, "avx2");
    sg_kernels_init(&ks[2], 1);
    for (int kk = 0; kk < 3; kk++)
        for (uint32_t d = 1; d <= 24; d++) {
            for (int i = 0; i < 40; i++) out[i] = 7.0f;
            ks[kk].attn_accum(out, w, 64, V, 24, SG_ROW_F32, d);
            for (int i = (int)d; i < 40; i++)
                ck_assert_msg(out[i] == 7.0f, "%s: d %u wrote out[%d]", ks[kk].name, d, i);
        }
}
END_TEST

int main(void) {
    Suite *s = suite_create("attn");
    TCase *tc = tcase_create("attn");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_attention_vs_naive);
    tcase_add_test(tc, test_attn_head_long);
    tcase_add_test(tc, test_attn_group);
    tcase_add_loop_test(tc, test_attn_causal_tile, 0, 2);
    tcase_add_test(tc, test_attn_kernels);
    tcase_add_test(tc, test_attn_accum_bounds);
    tcase_add_test(tc, test_attn_accum_heads);
    tcase_add_test(tc, test_attn_scores_place);
    tcase_add_test(tc, test_attn_clean_blocks);
    tcase_add_test(tc, test_attn_scores_all);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
