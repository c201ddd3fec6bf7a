/* Public session API: a KV cache (through a strategy), the forward pass,
 * token history and logits. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "session.h"

#define SESSION_PARAMS_MIN_SIZE (offsetof(sigma_session_params, n_ctx) + sizeof(uint32_t))
#define DEFAULT_N_CTX_CAP 4096u
#define MAX_N_CTX (1u << 20)
#define MAX_N_BATCH (1u << 16)
#define MAX_THREADS 1024u



int sigma_session_params_init(sigma_session_params *params, size_t struct_size) {
    /* the defaults; fields not named are 0 (static: padding zeroed too) */
    static const sigma_session_params d = {
        .n_batch = 512,
    };
    return sg_params_init(params, struct_size, SESSION_PARAMS_MIN_SIZE, &d, sizeof d);
}

/* ---- internals for other parts ---------------------------------------------------- */

const sigma_model *sg_session_model(const sigma_session *s) { return s ? s->model : NULL; }

int sg_session_error(sigma_session *s, int status, const char *fmt, ...) {
    if (!s) return status;
    va_list ap;
    va_start(ap, fmt);
    sg_verror(&s->err, status, fmt, ap);
    va_end(ap);
    return status;
}

int sg_session_cancelled(const sigma_session *s) {
    return s && s->p.cancel_fn && s->p.cancel_fn(s->p.cancel_user);
}

/* ---- open / close -------------------------------------------------------------------- */

static int check_strategy(const sigma_kv_strategy *k) {
    return k->version >= 1 && k->name && k->create && k->destroy && k->append && k->attend &&
           k->truncate && k->bytes_used;
}

void sigma_session_close(sigma_session *s) {
    if (!s) return;
    sg_alloc a = s->alloc;
    if (s->kv_state) s->kv.destroy(s->kv_state);
    if (s->fwd_ready) sg_fwd_free(&s->fwd);
    if (s->own_pool) sg_pool_destroy(s->pool);
    sg_free(&a, s->tokens);
    sg_free(&a, s->logits);
    sg_free(&a, s->logits_tmp);
    sg_free(&a, s);
}

static int open_fail(sigma_session *s, const sigma_model *m, int st) {
    sg_model_error(m, st, "session open: %s", s->err.msg[0] ? s->err.msg : sigma_strerror(st));
    sigma_session_close(s);
    return st;
}

int sigma_session_open(const sigma_model *model, const sigma_session_params *params,
                       sigma_session **out) {
    if (out) *out = NULL;
    if (!model || !out) return SIGMA_E_INVALID_ARG;
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    if (params) {
        if (params->struct_size < SESSION_PARAMS_MIN_SIZE)
            return sg_model_error(model, SIGMA_E_INVALID_ARG, "session params: bad struct_size");
        sg_params_merge(&p, sizeof p, params, params->struct_size);
    }
    const sg_hparams *hp = &model->hp;
    if (p.n_ctx > MAX_N_CTX)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "n_ctx %u is too large (max %u)", p.n_ctx,
                              MAX_N_CTX);
    if (p.n_batch > MAX_N_BATCH)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "n_batch %u is too large (max %u)",
                              p.n_batch, MAX_N_BATCH);
    if (p.n_threads > MAX_THREADS)
        return sg_model_error(model, SIGMA_E_INVALID_ARG, "n_threads %u is too large (max %u)",
                              p.n_threads, MAX_THREADS);
    uint32_t n_ctx = p.n_ctx;
    if (n_ctx == 0) {
        n_ctx = hp->n_ctx_train ? hp->n_ctx_train : DEFAULT_N_CTX_CAP;
        if (n_ctx > DEFAULT_N_CTX_CAP) n_ctx = DEFAULT_N_CTX_CAP;
    }
    uint32_t n_batch = p.n_batch ? p.n_batch : 512;
    if (n_batch > n_ctx) n_batch = n_ctx;

    sigma_session *s = sg_calloc(&model->alloc, 1, sizeof *s);
    if (!s) return sg_model_error(model, SIGMA_E_NOMEM, "out of memory allocating a session");
    s->model = model;
    s->alloc = model->alloc;
    s->p = p;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;

    /* threads */
    int st;
    if (p.threadpool) {
        s->pool = sg_threadpool_pool(p.threadpool);
        if (!s->pool) return open_fail(s, model, sg_error(&s->err, SIGMA_E_INVALID_ARG, "bad threadpool"));
    } else {
        uint32_t nt = p.n_threads ? p.n_threads : sg_cpu_count();
        if ((st = sg_pool_create(&s->alloc, nt, &s->pool)) != SIGMA_OK)
            return open_fail(s, model, sg_error(&s->err, st, "cannot start %u threads", nt));
        s->own_pool = 1;
    }

    /* forward-pass buffers */
    if ((st = sg_fwd_init(&s->fwd, model, s->pool, n_batch, 1, &s->err)) != SIGMA_OK)
        return open_fail(s, model, st);
    s->fwd_ready = 1;

    /* KV strategy */
    if (p.kv_custom) {
        s->kv = *p.kv_custom;
        if (!check_strategy(&s->kv))
            return open_fail(s, model, sg_error(&s->err, SIGMA_E_INVALID_ARG,
                                                "custom KV strategy is incomplete"));
    } else {
        const char *name = p.kv_strategy ? p.kv_strategy : "dense";
        if (!sg_kv_find(name, &s->kv))
            return open_fail(s, model, sg_error(&s->err, SIGMA_E_NOT_FOUND,
                                                "unknown KV strategy '%.64s'", name));
        s->env.exec = &s->fwd.exec;
        s->env.alloc = &s->alloc;
        s->kv.user = &s->env;
    }
    sigma_kv_layout lay;
    memset(&lay, 0, sizeof lay);
    lay.struct_size = (uint32_t)sizeof lay;
    lay.n_layers = hp->n_layer;
    lay.n_q_heads = hp->n_q;
    lay.n_k_heads = hp->n_k;
    lay.n_v_heads = hp->n_v;
    lay.d_qk = hp->d_qk;
    lay.d_v = hp->d_v;
    lay.n_ctx = n_ctx;
    lay.n_batch = n_batch;
    char kerr[256] = "";
    st = s->kv.create(s->kv.user, &lay, p.kv_options, &s->kv_state, kerr, sizeof kerr);
    if (st != SIGMA_OK || !s->kv_state) {
        s->kv_state = NULL;
        if (st == SIGMA_OK) st = SIGMA_E_INTERNAL;
        return open_fail(s, model, sg_error(&s->err, st, "KV strategy '%.64s': %s", s->kv.name,
                                            kerr[0] ? kerr : sigma_strerror(st)));
    }
    s->fwd.kv = &s->kv;
    s->fwd.kv_state = s->kv_state;
    sg_logf(&model->log, SIGMA_LOG_INFO, "session: n_ctx %u, n_batch %u, %u threads, kv %s, kernels %s",
            n_ctx, n_batch, sg_pool_threads(s->pool), s->kv.name, s->fwd.kern.name);
    *out = s;
    return SIGMA_OK;
}

const char *sigma_session_last_error(const sigma_session *s) { return s ? s->err.msg : ""; }

/* ---- eval ----------------------------------------------------------------------------- */

static int reserve_floats(sigma_session *s, float **buf, size_t *cap, size_t rows) {
    if (rows <= *cap) return SIGMA_OK;
    size_t n;
    if (!sg_mul_size(rows, (size_t)s->model->hp.n_vocab, &n) || !sg_mul_size(n, sizeof(float), &n))
        return SIGMA_E_NOMEM;
    float *p = sg_malloc(&s->alloc, n);
    if (!p) return SIGMA_E_NOMEM;
    sg_free(&s->alloc, *buf);
    *buf = p;
    *cap = rows;
    return SIGMA_OK;
}

int sigma_session_eval(sigma_session *s, const sigma_token *tokens, size_t n) {
    if (!s) return SIGMA_E_INVALID_ARG;
    if (!tokens || n == 0) return sg_error(&s->err, SIGMA_E_INVALID_ARG, "eval: no tokens");
    const sg_hparams *hp = &s->model->hp;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
            return sg_error(&s->err, SIGMA_E_INVALID_ARG, "eval: token %d at index %zu is out of range [0, %u)",
                            tokens[i], i, hp->n_vocab);
    size_t pos = s->n_tokens;
    if (n > UINT32_MAX - pos)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL, "eval: position overflow");
    if (!s->kv.unbounded && pos + n > s->n_ctx)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL,
                        "eval: %zu tokens at position %zu do not fit in n_ctx %u", n, pos, s->n_ctx);
    int st;
    if ((st = sg_reserve_n(&s->alloc, (void **)&s->tokens, &s->cap_tokens, s->n_tokens, pos + n,
                           sizeof *s->tokens)) != SIGMA_OK)
        return sg_error(&s->err, st, "eval: out of memory for %zu tokens", pos + n);
    size_t rows = s->p.logits_all ? n : 1;
    if ((st = reserve_floats(s, &s->logits_tmp, &s->cap_logits_tmp, rows)) != SIGMA_OK)
        return sg_error(&s->err, st, "eval: out of memory for %zu rows of logits", rows);

    const size_t V = hp->n_vocab;
    for (size_t off = 0; off < n; off += s->n_batch) {
        size_t cn = n - off < s->n_batch ? n - off : s->n_batch;
        int last = off + cn == n;
        float *dst = NULL;
        size_t from = cn;
        if (s->p.logits_all) {
            dst = s->logits_tmp + off * V;
            from = 0;
        } else if (last) {
            dst = s->logits_tmp;
            from = cn - 1;
        }
        if (off > 0 && sg_session_cancelled(s))
            st = sg_error(&s->err, SIGMA_E_CANCELLED, "cancelled");
        else
            st = sg_forward(&s->fwd, tokens + off, cn, (uint32_t)(pos + off), from, dst,
                            s->p.cancel_fn, s->p.cancel_user, &s->err);
        if (st != SIGMA_OK) {
            s->kv.truncate(s->kv_state, (uint32_t)pos);
            return st;
        }
    }
    memcpy(s->tokens + pos, tokens, n * sizeof *tokens);
    s->n_tokens = pos + n;
    float *tp = s->logits;
    size_t tc = s->cap_logits;
    s->logits = s->logits_tmp;
    s->cap_logits = s->cap_logits_tmp;
    s->logits_tmp = tp;
    s->cap_logits_tmp = tc;
    s->n_logit_rows = rows;
    s->n_last_eval = n;
    s->logits_valid = 1;
    return SIGMA_OK;
}

int sigma_session_logits(const sigma_session *s, int32_t index, const float **logits) {
    if (!s || !logits) return SIGMA_E_INVALID_ARG;
    if (!s->logits_valid) return SIGMA_E_STATE;
    size_t row;
    if (index == -1)
        row = s->n_logit_rows - 1;
    else if (index < 0 || (size_t)index >= s->n_last_eval)
        return SIGMA_E_INVALID_ARG;
    else if (s->n_logit_rows == s->n_last_eval)
        row = (size_t)index;              /* logits_all */
    else if ((size_t)index == s->n_last_eval - 1)
        row = s->n_logit_rows - 1;        /* only the last one is kept */
    else
        return SIGMA_E_INVALID_ARG;
    *logits = s->logits + row * (size_t)s->model->hp.n_vocab;
    return SIGMA_OK;
}

int sigma_session_position(const sigma_session *s, uint32_t *position) {
    if (!s || !position) return SIGMA_E_INVALID_ARG;
    *position = (uint32_t)s->n_tokens;
    return SIGMA_OK;
}

int sigma_session_tokens(const sigma_session *s, const sigma_token **tokens, size_t *n) {
    if (!s || !tokens || !n) return SIGMA_E_INVALID_ARG;
    *tokens = s->tokens;
    *n = s->n_tokens;
    return SIGMA_OK;
}

int sigma_session_rewind(sigma_session *s, uint32_t position) {
    if (!s) return SIGMA_E_INVALID_ARG;
    if (position > s->n_tokens)
        return sg_error(&s->err, SIGMA_E_INVALID_ARG, "rewind: position %u is past the end (%zu)",
                        position, s->n_tokens);
    int st = s->kv.truncate(s->kv_state, position);
    if (st != SIGMA_OK) return sg_error(&s->err, st, "rewind: KV strategy '%s' failed", s->kv.name);
    s->n_tokens = position;
    s->logits_valid = 0;
    return SIGMA_OK;
}

int sigma_session_kv_bytes(const sigma_session *s, size_t *bytes) {
    if (!s || !bytes) return SIGMA_E_INVALID_ARG;
    *bytes = s->kv.bytes_used(s->kv_state);
    return SIGMA_OK;
}
