/* DiffQKV attention: projections, AugQ, RoPE, and the per-head attention
 * math used by the built-in cache strategies. */
#include <math.h>
#include <string.h>

#include "attn.h"

#define SCORE_BLOCK 64

static inline const float *row_f32(const void *base, size_t idx, sg_kv_type type, uint32_t d,
                                   float *tmp) {
    switch (type) {
    case SG_KV_F16:
        sigma_kernel_f16_to_f32(tmp, (const uint16_t *)base + idx, d);
        return tmp;
    case SG_KV_BF16:
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
            const float *kr = row_f32(kbase, (p0 + j) * k_stride, type, d_qk, tk);
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
            const float *vr = row_f32(vbase, (p0 + j) * v_stride, type, d_v, tv);
            k->axpy_f32(out, w, vr, d_v);
        }
    }
    if (l > 0.0) k->scale_f32(out, (float)(1.0 / l), d_v);
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
