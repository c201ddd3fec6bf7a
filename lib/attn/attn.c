/* DiffQKV attention: projections, AugQ, RoPE, and the per-head attention
 * math used by the built-in cache strategies. */
#include <math.h>
#include <string.h>

#include "attn.h"

#define SCORE_BLOCK 64

/* Row conversion through the kernel table (exact for f16/bf16, so every
 * table gives the same values). */
static inline const float *row_f32(const sg_kernels *k, const void *base, size_t idx,
                                   sg_kv_type type, uint32_t d, float *tmp) {
    switch (type) {
    case SG_KV_F16:
        if (k->to_f32(SG_TYPE_F16, (const uint16_t *)base + idx, tmp, d) != 0)
            sigma_kernel_f16_to_f32(tmp, (const uint16_t *)base + idx, d);
        return tmp;
    case SG_KV_BF16:
        if (k->to_f32(SG_TYPE_BF16, (const uint16_t *)base + idx, tmp, d) != 0)
            sigma_kernel_bf16_to_f32(tmp, (const uint16_t *)base + idx, d);
        return tmp;
    default:
        return (const float *)base + idx;
    }
}

void sg_attn_head(const sg_kernels *k, const float *q, const void *kbase, size_t k_stride,
                  const void *vbase, size_t v_stride, sg_kv_type type, size_t n_pos,
                  uint32_t d_qk, uint32_t d_v, float scale, float *out, float *tmp) {
    float s[SCORE_BLOCK];
    float m = -INFINITY;
    double l = 0.0;
    memset(out, 0, (size_t)d_v * sizeof(float));
    float *tk = tmp, *tv = tmp + d_qk;
    for (size_t p0 = 0; p0 < n_pos; p0 += SCORE_BLOCK) {
        size_t nb = n_pos - p0 < SCORE_BLOCK ? n_pos - p0 : SCORE_BLOCK;
        float bm = -INFINITY;
        for (size_t j = 0; j < nb; j++) {
            const float *kr = row_f32(k, kbase, (p0 + j) * k_stride, type, d_qk, tk);
            s[j] = k->dot_f32(q, kr, d_qk) * scale;
            if (s[j] > bm) bm = s[j];
        }
        if (bm > m) {
            if (l > 0.0) {
                float f = expf(m - bm);
                k->scale_f32(out, f, d_v);
                l *= (double)f;
            }
            m = bm;
        }
        for (size_t j = 0; j < nb; j++) {
            float w = expf(s[j] - m);
            l += (double)w;
            const float *vr = row_f32(k, vbase, (p0 + j) * v_stride, type, d_v, tv);
            k->axpy_f32(out, w, vr, d_v);
        }
    }
    if (l > 0.0) k->scale_f32(out, (float)(1.0 / l), d_v);
}

/* Several query heads over the same K rows: each K row is converted and read
 * once per block for all of them; per head the operations are exactly those
 * of sg_attn_head (bitwise equal results). */
void sg_attn_group(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                   const void *kbase, size_t k_stride, const void *const *vbase, size_t v_stride,
                   sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                   float *out, size_t out_stride, float *tmp) {
    if (n_heads > SG_ATTN_GROUP_MAX) {
        for (uint32_t h = 0; h < n_heads; h++)
            sg_attn_head(k, q + h * q_stride, kbase, k_stride, vbase[h], v_stride, type, n_pos, d_qk,
                         d_v, scale, out + h * out_stride, tmp);
        return;
    }
    float s[SG_ATTN_GROUP_MAX][SCORE_BLOCK];
    float m[SG_ATTN_GROUP_MAX];
    double l[SG_ATTN_GROUP_MAX];
    float *tk = tmp, *tv = tmp + d_qk;
    for (uint32_t h = 0; h < n_heads; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0;
        memset(out + h * out_stride, 0, (size_t)d_v * sizeof(float));
    }
    for (size_t p0 = 0; p0 < n_pos; p0 += SCORE_BLOCK) {
        size_t nb = n_pos - p0 < SCORE_BLOCK ? n_pos - p0 : SCORE_BLOCK;
        for (size_t j = 0; j < nb; j++) {
            const float *kr = row_f32(k, kbase, (p0 + j) * k_stride, type, d_qk, tk);
            for (uint32_t h = 0; h < n_heads; h++) s[h][j] = k->dot_f32(q + h * q_stride, kr, d_qk) * scale;
        }
        for (uint32_t h = 0; h < n_heads; h++) {
            float bm = -INFINITY;
            for (size_t j = 0; j < nb; j++)
                if (s[h][j] > bm) bm = s[h][j];
            if (bm > m[h]) {
                if (l[h] > 0.0) {
                    float f = expf(m[h] - bm);
                    k->scale_f32(out + h * out_stride, f, d_v);
                    l[h] *= (double)f;
                }
                m[h] = bm;
            }
            for (size_t j = 0; j < nb; j++) {
                float w = expf(s[h][j] - m[h]);
                l[h] += (double)w;
                s[h][j] = w;
            }
        }
        for (size_t j = 0; j < nb; j++) {
            const void *last = NULL;
            const float *vr = NULL;
            for (uint32_t h = 0; h < n_heads; h++) {
                if (vbase[h] != last) { /* heads sharing a V head reuse the row */
                    vr = row_f32(k, vbase[h], (p0 + j) * v_stride, type, d_v, tv);
                    last = vbase[h];
                }
                k->axpy_f32(out + h * out_stride, s[h][j], vr, d_v);
            }
        }
    }
    for (uint32_t h = 0; h < n_heads; h++)
        if (l[h] > 0.0) k->scale_f32(out + h * out_stride, (float)(1.0 / l[h]), d_v);
}

int sg_attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                 const sigma_kv_strategy *kv, void *kv_state, const float *xn, size_t n,
                 uint32_t pos0, const sg_attn_bufs *b, float *out, sg_err *err) {
    int st;
    /* projections: q (or q0 for AugQ), k and v share the input */
    float *qdst = hp->d_aug ? b->q0 : b->q;
    const sg_tensor *w3[3] = {L->wq, L->wk, L->wv};
    float *y3[3] = {qdst, b->k, b->v};
    if ((st = sg_matmul_multi(e, 3, w3, xn, n, y3)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: q/k/v projection failed", layer);
    if (hp->d_aug) {
        /* AugQ: q = q_down(silu(q_gate(q0)) * q_up(q0)) */
        const sg_tensor *w2[2] = {L->wq_gate, L->wq_up};
        float *y2[2] = {b->aug_g, b->aug_u};
        if ((st = sg_matmul_multi(e, 2, w2, b->q0, n, y2)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ gate/up failed", layer);
        sg_swiglu(b->aug_g, b->aug_u, n * hp->d_aug);
        if ((st = sg_matmul(e, L->wq_down, b->aug_g, n, b->q)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ down failed", layer);
    }
    sg_rope_pairs pairs =
        hp->rope_layout == SG_ROPE_HALVES ? SG_ROPE_PAIRS_HALVES : SG_ROPE_PAIRS_ADJACENT;
    sg_rope_apply(b->q, n, hp->n_q, hp->d_qk, hp->n_rot, pairs, b->rope_cs);
    sg_rope_apply(b->k, n, hp->n_k, hp->d_qk, hp->n_rot, pairs, b->rope_cs);

    if ((st = kv->append(kv_state, layer, pos0, (uint32_t)n, b->k, b->v)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: KV strategy '%s' append failed", layer, kv->name);
    sigma_kv_attend_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = (uint32_t)sizeof a;
    a.layer = layer;
    a.pos0 = pos0;
    a.n_queries = (uint32_t)n;
    a.q = b->q;
    a.out = b->att;
    a.scale = (float)(1.0 / sqrt((double)hp->d_qk));
    if ((st = kv->attend(kv_state, &a)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: KV strategy '%s' attend failed", layer, kv->name);
    if ((st = sg_matmul(e, L->wo, b->att, n, out)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: output projection failed", layer);
    return SIGMA_OK;
}
