/* forward: one forward pass of a model over a batch of tokens: every
 * layer's DiffQKV attention and FFN, with the steps the model's architecture
 * row asks for (lib/forward/forward.c). Talks to the
 * KV cache only through the public sigma_kv_strategy table. */
#ifndef SG_FORWARD_H
#define SG_FORWARD_H

#include "../core/core.h"
#include "../model/model.h"

/* Buffers for sg_attention, each for n_batch rows. */
typedef struct sg_attn_bufs {
    float *q;      /* [n][n_q*d_qk] */
    float *q0;     /* [n][n_q*d_qk], AugQ only */
    float *aug_g;  /* [n][d_aug], AugQ only */
    float *aug_u;  /* [n][d_aug], AugQ only */
    float *k;      /* [n][n_k*d_qk] */
    float *v;      /* [n][n_v*d_v] */
    float *att;    /* [n][n_q*d_v] */
    const float *rope_cs; /* sg_rope_table for positions pos0..pos0+n-1 (this layer's base) */
} sg_attn_bufs;

/* The attention block of one layer for n tokens at positions pos0..:
 * out[n][n_embd] = o_proj(attend(rope(q(xn)), cache + rope(k(xn)), v(xn))).
 * Appends this layer's K/V rows to the strategy first. For layers without
 * fused QKV, biases or Q/K norms (sg_forward passes their buffers itself). */
int sg_attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                 const sigma_kv_strategy *kv, void *kv_state, const float *xn, size_t n,
                 uint32_t pos0, const sg_attn_bufs *b, float *out, sg_err *err);

/* One session's rows in a batch of several sessions' tokens: rows
 * row0..row0+n-1 of the batch are its tokens at positions pos0.., appended
 * to and attended through its own KV strategy. `status` (SIGMA_OK on entry)
 * receives the segment's own failure (its strategy failed, or its cancel
 * callback asked to stop), described in `err`; a failed segment's rows
 * still go through the shared matmuls (rows never mix) but no longer touch
 * its cache, and the other segments go on. */
typedef struct sg_fwd_seg {
    const sigma_kv_strategy *kv;
    void *kv_state;
    size_t row0, n;
    uint32_t pos0;
    size_t logits_from;        /* rows logits_from..n-1 get logits (n: none) */
    sigma_cancel_fn cancel;    /* may be NULL */
    void *cancel_user;
    int status;
    sg_err *err;
} sg_fwd_seg;

/* sg_attention for the segments of a batch (covering its n rows, in row
 * order); the projections and the output projection are shared. Returns
 * the shared failure; the segments' own failures are in their status. */
int sg_attention_segs(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                      sg_fwd_seg *segs, size_t n_segs, const float *xn, size_t n,
                      const sg_attn_bufs *b, float *out, sg_err *err);


/* Everything one forward pass needs besides the model: kernels, pool,
 * cache strategy and scratch buffers for up to n_batch tokens. */
typedef struct sg_fwd {
    const struct sigma_model *model;
    sg_alloc alloc;
    sg_kernels kern;
    sg_exec exec;
    const sigma_kv_strategy *kv;   /* set by the owner after init */
    void *kv_state;
    uint32_t n_batch;
    float *x, *xn, *delta;         /* [n_batch][n_embd] */
    float *ffn_g, *ffn_u;          /* [n_batch][n_ff] */
    float *norm_w;                 /* [n_embd] */
    float *rope_cs;                /* [n_batch][n_rot] */
    float *rope_cs_swa;            /* the same for windowed layers' base, or NULL */
    float *ffn_gu;                 /* [n_batch][2*n_ff], fused gate/up only */
    float *qkv;                    /* [n_batch][QD+KD+VD], fused QKV only */
    float *vec;                    /* [widest]: a bias or a Q/K norm weight as f32 */
    float *scratch;                /* exec.scratch */
    sg_attn_bufs ab;
    float *bufs[24];               /* every allocation above, for freeing */
    size_t n_bufs;
} sg_fwd;

/* Allocate buffers for a model validated at open.
 * pool may be NULL (single thread). */
int sg_fwd_init(sg_fwd *f, const struct sigma_model *m, sg_pool *pool, uint32_t n_batch,
                int allow_simd, sg_err *err);
void sg_fwd_free(sg_fwd *f);

/* Evaluate n (1..n_batch) tokens at positions pos0..pos0+n-1: appends their
 * K/V rows to the cache strategy and, if logits != NULL, writes the logits
 * of rows logits_from..n-1 to logits ([n - logits_from][n_vocab]).
 * The cancel callback (may be NULL) is polled between layers. On failure
 * the cache may hold partial rows at positions >= pos0: the caller
 * truncates. Tokens must already be validated. */
int sg_forward(sg_fwd *f, const sigma_token *tokens, size_t n, uint32_t pos0, size_t logits_from,
               float *logits, sigma_cancel_fn cancel, void *cancel_user, sg_err *err);

/* Evaluate n (1..n_batch) tokens of several sessions in one pass: the
 * segments cover rows 0..n-1 in order, each with its own strategy,
 * positions and cancel callback (polled per segment between layers). The
 * logits of every segment's rows logits_from..n-1 go to `logits` one after
 * another in segment order (rows of failed segments too, meaningless).
 * f->kv is not used. Returns a shared failure (then every segment's cache
 * may hold partial rows); a segment's own failure is in its status, the
 * caller truncates its cache. */
int sg_forward_segs(sg_fwd *f, const sigma_token *tokens, size_t n, sg_fwd_seg *segs,
                    size_t n_segs, float *logits, sg_err *err);

#endif
