/* DiffQKV attention (docs SIGMA.md section 2): Q, K and V with their own head
 * counts, optional AugQ, RoPE, and attention through a KV-cache strategy. */
#ifndef SG_ATTN_H
#define SG_ATTN_H

#include "../core/core.h"
#include "../model/model.h"

/* Storage types of cached rows. */
typedef enum sg_kv_type {
    SG_KV_F32 = 0,
    SG_KV_F16 = 1,
    SG_KV_BF16 = 2
} sg_kv_type;

/* One query head attending over n_pos cached rows (positions 0..n_pos-1):
 * K row p of this head at k + p*k_stride elements, V row p at v + p*v_stride,
 * both of storage type `type`. out[d_v] = softmax(q.K^T * scale) . V,
 * computed with a streaming (blocked online) softmax through the kernel
 * table's attention kernels (rows converted in registers). n_pos >= 1. */
void sg_attn_head(const sg_kernels *k, const float *q, const void *kbase, size_t k_stride,
                  const void *vbase, size_t v_stride, sg_kv_type type, size_t n_pos,
                  uint32_t d_qk, uint32_t d_v, float scale, float *out);

/* n_heads query heads that share one K head: query h at q + h*q_stride, its
 * V rows at vbase[h], output at out + h*out_stride. Reads each block of K
 * rows once for up to SG_ATTN_GROUP_MAX heads; results are bitwise equal to
 * calling sg_attn_head per head. */
#define SG_ATTN_GROUP_MAX 64
void sg_attn_group(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                   const void *kbase, size_t k_stride, const void *const *vbase, size_t v_stride,
                   sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                   float *out, size_t out_stride);

/* Scores of n_heads query heads (q + h*q_stride) against n_pos K rows:
 * s[h*s_stride + p] = scale * (q_h . K_p), the same values sg_attn_group
 * computes (strategies that select or weight rows by score use these). */
void sg_attn_scores(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                    const void *kbase, size_t k_stride, sg_kv_type type, size_t n_pos, uint32_t d_qk,
                    float scale, float *s, size_t s_stride);

/* Buffers for sg_attention, each for n_batch rows. */
typedef struct sg_attn_bufs {
    float *q;      /* [n][n_q*d_qk] */
    float *q0;     /* [n][n_q*d_qk], AugQ only */
    float *aug_g;  /* [n][d_aug], AugQ only */
    float *aug_u;  /* [n][d_aug], AugQ only */
    float *k;      /* [n][n_k*d_qk] */
    float *v;      /* [n][n_v*d_v] */
    float *att;    /* [n][n_q*d_v] */
    const float *rope_cs; /* sg_rope_table for positions pos0..pos0+n-1 */
} sg_attn_bufs;

/* The attention block of one layer for n tokens at positions pos0..:
 * out[n][n_embd] = o_proj(attend(rope(q(xn)), cache + rope(k(xn)), v(xn))).
 * Appends this layer's K/V rows to the strategy first. */
int sg_attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                 const sigma_kv_strategy *kv, void *kv_state, const float *xn, size_t n,
                 uint32_t pos0, const sg_attn_bufs *b, float *out, sg_err *err);

#endif
