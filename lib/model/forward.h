/* The forward pass of a llama/sigma model over a batch of tokens
 * (lib/model/forward.c), and the session internals other parts may use. */
#ifndef SG_FORWARD_H
#define SG_FORWARD_H

#include "../attn/attn.h"
#include "../core/core.h"
#include "model.h"

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
    float *scratch;                /* exec.scratch */
    sg_attn_bufs ab;
    float *bufs[20];               /* every allocation above, for freeing */
    size_t n_bufs;
} sg_fwd;

/* Check the model's tensors against its hparams and allocate buffers.
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

/* Session internals for other parts of the library (generation, chat). */
const struct sigma_model *sg_session_model(const sigma_session *s);
/* Record an error message on the session and return status. */
int sg_session_error(sigma_session *s, int status, const char *fmt, ...) SG_PRINTF(3, 4);
/* The session's cancellation callback (NULL if none). */
int sg_session_cancelled(const sigma_session *s);

#endif
