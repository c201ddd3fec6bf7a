/* Per-head attention math over cached rows (streaming softmax through the
 * kernel table): what the built-in KV strategies and host code call to
 * attend one query head, or the query heads sharing a K head. */
#include <math.h>
#include <string.h>

#include "core.h"

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
    sg_attn_group_capped(k, n_heads, q, q_stride, kbase, k_stride, vbase, v_stride, type, n_pos,
                         d_qk, d_v, scale, 0.0f, out, out_stride);
}

void sg_attn_group_capped(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                          const void *kbase, size_t k_stride, const void *const *vbase,
                          size_t v_stride, sg_kv_type type, size_t n_pos, uint32_t d_qk,
                          uint32_t d_v, float scale, float cap, float *out, size_t out_stride) {
    sg_attn_group_causal(k, 1, 0, 0, n_heads, q, q_stride, kbase, k_stride, vbase, v_stride, type,
                         n_pos, d_qk, d_v, scale, cap, out, out_stride);
}

/* Queries in the outer loop of a block: block p0 of K and V rows is read
 * from memory once and then from cache for the other queries of the tile.
 * Each query's steps (the blocks it sees, their lengths, the kernel calls)
 * are those it would run alone, in the same order, so the tile changes no
 * result. */
void sg_attn_group_causal(const sg_kernels *k, uint32_t n_q, size_t q_qstride, size_t out_qstride,
                          uint32_t n_heads, const float *q, size_t q_stride, const void *kbase,
                          size_t k_stride, const void *const *vbase, size_t v_stride,
                          sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                          float cap, float *out, size_t out_stride) {
    if (n_q == 0) return;
    /* queries per pass: at most SG_ATTN_QTILE, and at most SG_ATTN_QSTATE
     * (query, head) states, which bounds this function's stack */
    uint32_t nh_pass = n_heads < SG_ATTN_GROUP_MAX ? n_heads : SG_ATTN_GROUP_MAX;
    uint32_t qmax = nh_pass ? SG_ATTN_QSTATE / nh_pass : SG_ATTN_QTILE;
    if (qmax > SG_ATTN_QTILE) qmax = SG_ATTN_QTILE;
    if (qmax < 1) qmax = 1;
    while (n_q > qmax) {
        sg_attn_group_causal(k, qmax, q_qstride, out_qstride, n_heads, q, q_stride, kbase, k_stride,
                             vbase, v_stride, type, n_pos, d_qk, d_v, scale, cap, out, out_stride);
        n_q -= qmax;
        n_pos += qmax;
        q += qmax * q_qstride;
        out += qmax * out_qstride;
    }
    while (n_heads > SG_ATTN_GROUP_MAX) {
        sg_attn_group_causal(k, n_q, q_qstride, out_qstride, SG_ATTN_GROUP_MAX, q, q_stride, kbase,
                             k_stride, vbase, v_stride, type, n_pos, d_qk, d_v, scale, cap, out,
                             out_stride);
        n_heads -= SG_ATTN_GROUP_MAX;
        q += SG_ATTN_GROUP_MAX * q_stride;
        vbase += SG_ATTN_GROUP_MAX;
        out += SG_ATTN_GROUP_MAX * out_stride;
    }
    float s[SG_ATTN_GROUP_MAX * SG_ATTN_BLOCK];
    float m[SG_ATTN_QSTATE];  /* running maximum of (query i, head h) at [i * n_heads + h] */
    double l[SG_ATTN_QSTATE]; /* running sum */
    float *ao[SG_ATTN_GROUP_MAX];
    const float *aw[SG_ATTN_GROUP_MAX];
    const void *av[SG_ATTN_GROUP_MAX];
    size_t esize = type == SG_KV_F32 ? 4 : 2;
    for (uint32_t i = 0; i < n_q; i++)
        for (uint32_t h = 0; h < n_heads; h++) {
            m[i * n_heads + h] = -INFINITY;
            l[i * n_heads + h] = 0.0;
            memset(out + i * out_qstride + h * out_stride, 0, (size_t)d_v * sizeof(float));
        }
    size_t n_all = n_pos + n_q - 1; /* rows the last query attends */
    for (size_t p0 = 0; p0 < n_all; p0 += SG_ATTN_BLOCK) {
        for (uint32_t i = 0; i < n_q; i++) {
            size_t np = n_pos + i;
            if (p0 >= np) continue;
            size_t nb = np - p0 < SG_ATTN_BLOCK ? np - p0 : SG_ATTN_BLOCK;
            const float *qi = q + i * q_qstride;
            float *oi = out + i * out_qstride;
            k->attn_scores(qi, q_stride, n_heads, (const uint8_t *)kbase + p0 * k_stride * esize,
                           k_stride, (uint32_t)type, nb, d_qk, scale, s);
            if (cap > 0.0f) /* soft-capping (Gemma 2): s = cap * tanh(s / cap) */
                for (uint32_t h = 0; h < n_heads; h++)
                    sg_softcap(s + (size_t)h * SG_ATTN_BLOCK, nb, cap);
            /* per head: block max, rescale, weights; then the V sums of the
             * heads with weights, SG_ATTN_ACCUM_HEADS at a time */
            uint32_t na = 0;
            for (uint32_t h = 0; h < n_heads; h++) {
                float *sh = s + (size_t)h * SG_ATTN_BLOCK;
                float *oh = oi + h * out_stride;
                float bm = block_max(sh, nb);
                if (!(bm > -INFINITY)) continue; /* all -inf (or NaN): nothing to add */
                float *mh = &m[i * n_heads + h];
                double *lh = &l[i * n_heads + h];
                if (bm > *mh) {
                    if (*lh > 0.0) {
                        float f = expf(*mh - bm);
                        k->scale_f32(oh, f, d_v);
                        *lh *= (double)f;
                    }
                    *mh = bm;
                }
                *lh += (double)k->attn_exp(sh, nb, *mh);
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
    }
    for (uint32_t i = 0; i < n_q; i++)
        for (uint32_t h = 0; h < n_heads; h++)
            if (l[i * n_heads + h] > 0.0)
                k->scale_f32(out + i * out_qstride + h * out_stride, (float)(1.0 / l[i * n_heads + h]),
                             d_v);
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

