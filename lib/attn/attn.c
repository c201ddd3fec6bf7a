/* DiffQKV attention: projections, AugQ, RoPE, and the per-head attention
 * math used by the built-in cache strategies. */
#include <math.h>
#include <string.h>

#include "attn.h"

void sg_attn_head(const sg_kernels *k, const float *q, const void *kbase, size_t k_stride,
                  const void *vbase, size_t v_stride, sg_kv_type type, size_t n_pos,
                  uint32_t d_qk, uint32_t d_v, float scale, float *out) {
    sg_attn_group(k, 1, q, 0, kbase, k_stride, &vbase, v_stride, type, n_pos, d_qk, d_v, scale,
                  out, 0);
}

/* The largest of x[0..n-1] ignoring NaNs (-inf if none), in 8 independent
 * lanes rather than one chain of compares. The maximum of a set does not
 * depend on the order it is taken in (up to the sign of a zero, which no
 * later step can tell: exp(x - 0) = exp(x + 0)). */
static float block_max(const float *x, size_t n) {
    float p[8];
    for (int i = 0; i < 8; i++) p[i] = -INFINITY;
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int i = 0; i < 8; i++) p[i] = x[j + i] > p[i] ? x[j + i] : p[i];
    for (; j < n; j++) p[0] = x[j] > p[0] ? x[j] : p[0];
    float bm = -INFINITY;
    for (int i = 0; i < 8; i++) bm = p[i] > bm ? p[i] : bm;
    return bm;
}

/* Blocks of SG_ATTN_BLOCK positions: the scores of all heads of the group
 * against the block's K rows (each row read once for the group), then per
 * head the online-softmax update (running max m, running sum l), then the
 * weighted sums of the block's V rows, several heads per kernel call (their
 * chains of additions interleave; each head's order is unchanged). The
 * operations for one head do not depend on the others, so grouping never
 * changes a result. */
void sg_attn_group(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                   const void *kbase, size_t k_stride, const void *const *vbase, size_t v_stride,
                   sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                   float *out, size_t out_stride) {
    while (n_heads > SG_ATTN_GROUP_MAX) {
        sg_attn_group(k, SG_ATTN_GROUP_MAX, q, q_stride, kbase, k_stride, vbase, v_stride, type,
                      n_pos, d_qk, d_v, scale, out, out_stride);
        n_heads -= SG_ATTN_GROUP_MAX;
        q += SG_ATTN_GROUP_MAX * q_stride;
        vbase += SG_ATTN_GROUP_MAX;
        out += SG_ATTN_GROUP_MAX * out_stride;
    }
    float s[SG_ATTN_GROUP_MAX * SG_ATTN_BLOCK];
    float m[SG_ATTN_GROUP_MAX];
    double l[SG_ATTN_GROUP_MAX];
    float *ao[SG_ATTN_GROUP_MAX];
    const float *aw[SG_ATTN_GROUP_MAX];
    const void *av[SG_ATTN_GROUP_MAX];
    size_t esize = type == SG_KV_F32 ? 4 : 2;
    for (uint32_t h = 0; h < n_heads; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0;
        memset(out + h * out_stride, 0, (size_t)d_v * sizeof(float));
    }
    for (size_t p0 = 0; p0 < n_pos; p0 += SG_ATTN_BLOCK) {
        size_t nb = n_pos - p0 < SG_ATTN_BLOCK ? n_pos - p0 : SG_ATTN_BLOCK;
        k->attn_scores(q, q_stride, n_heads, (const uint8_t *)kbase + p0 * k_stride * esize, k_stride,
                       (uint32_t)type, nb, d_qk, scale, s);
        /* per head: block max, rescale, weights; then the V sums of the
         * heads with weights, SG_ATTN_ACCUM_HEADS at a time */
        uint32_t na = 0;
        for (uint32_t h = 0; h < n_heads; h++) {
            float *sh = s + (size_t)h * SG_ATTN_BLOCK;
            float *oh = out + h * out_stride;
            float bm = block_max(sh, nb);
            if (!(bm > -INFINITY)) continue; /* all -inf (or NaN): nothing to add */
            if (bm > m[h]) {
                if (l[h] > 0.0) {
                    float f = expf(m[h] - bm);
                    k->scale_f32(oh, f, d_v);
                    l[h] *= (double)f;
                }
                m[h] = bm;
            }
            l[h] += (double)k->attn_exp(sh, nb, m[h]);
            ao[na] = oh;
            aw[na] = sh;
            av[na] = (const uint8_t *)vbase[h] + p0 * v_stride * esize;
            na++;
        }
        for (uint32_t a = 0; a < na; a += SG_ATTN_ACCUM_HEADS) {
            uint32_t n = na - a < SG_ATTN_ACCUM_HEADS ? na - a : SG_ATTN_ACCUM_HEADS;
            k->attn_accum_heads(n, ao + a, aw + a, nb, av + a, v_stride, (uint32_t)type, d_v);
        }
    }
    for (uint32_t h = 0; h < n_heads; h++)
        if (l[h] > 0.0) k->scale_f32(out + h * out_stride, (float)(1.0 / l[h]), d_v);
}

void sg_attn_scores(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                    const void *kbase, size_t k_stride, sg_kv_type type, size_t n_pos, uint32_t d_qk,
                    float scale, float *s, size_t s_stride) {
    float blk[SG_ATTN_GROUP_MAX * SG_ATTN_BLOCK];
    size_t esize = type == SG_KV_F32 ? 4 : 2;
    for (uint32_t h0 = 0; h0 < n_heads; h0 += SG_ATTN_GROUP_MAX) {
        uint32_t nh = n_heads - h0 < SG_ATTN_GROUP_MAX ? n_heads - h0 : SG_ATTN_GROUP_MAX;
        for (size_t p0 = 0; p0 < n_pos; p0 += SG_ATTN_BLOCK) {
            size_t nb = n_pos - p0 < SG_ATTN_BLOCK ? n_pos - p0 : SG_ATTN_BLOCK;
            k->attn_scores(q + h0 * q_stride, q_stride, nh, (const uint8_t *)kbase + p0 * k_stride * esize,
                           k_stride, (uint32_t)type, nb, d_qk, scale, blk);
            for (uint32_t h = 0; h < nh; h++)
                memcpy(s + (h0 + h) * s_stride + p0, blk + (size_t)h * SG_ATTN_BLOCK, nb * sizeof(float));
        }
    }
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
