/* session: a model's evaluation state (tokens, logits, KV strategy, forward
 * scratch), session files, and generation/chat on top of them. */
#ifndef SG_SESSION_H
#define SG_SESSION_H

#include "../forward/forward.h"
#include "../kv/kv.h"
#include "generate.h"

struct sigma_session {
    const sigma_model *model;
    sg_alloc alloc;
    sigma_session_params p;        /* merged parameters */
    uint32_t n_ctx, n_batch;
    sg_pool *pool;
    int own_pool;
    sigma_kv_strategy kv;          /* a copy; built-ins get user = &env */
    void *kv_state;
    char *kv_opts;                 /* a copy of the options string (p.kv_options points here) */
    sg_kv_env env;
    sg_fwd fwd;
    int fwd_ready;
    sigma_token *tokens;
    size_t n_tokens, cap_tokens;
    float *logits, *logits_tmp;    /* [rows][n_vocab]; tmp is filled by eval */
    size_t cap_logits, cap_logits_tmp; /* rows */
    size_t n_logit_rows;           /* rows in `logits` */
    size_t n_last_eval;            /* tokens of the eval the logits belong to */
    int logits_valid;
    float *batch_logits;           /* sigma_sessions_eval scratch when this session drives */
    size_t cap_batch_logits;       /* rows */
    sigma_sampler *sampler;        /* borrowed; saved/restored with the session */
    sg_err err;
};

/* Session internals for the other files of lib/session. */
const struct sigma_model *sg_session_model(const sigma_session *s);
/* Record an error message on the session and return status. */
int sg_session_error(sigma_session *s, int status, const char *fmt, ...) SG_PRINTF(3, 4);
/* The session's cancellation callback (NULL if none). */
int sg_session_cancelled(const sigma_session *s);

#endif
