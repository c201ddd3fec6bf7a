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
    sg_free(&a, s->batch_logits);
    sg_free(&a, s->kv_opts);
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
        int windowed = model->hp.attn_softcap != 0.0f;
        for (uint32_t l = 0; l < model->hp.n_layer && !windowed; l++)
            windowed = model->layers[l].window != 0;
        if (windowed && s->kv.version < 2)
            return open_fail(s, model, sg_error(&s->err, SIGMA_E_UNSUPPORTED,
                                                "custom KV strategy '%s' is version %d, which "
                                                "predates sliding windows and soft-capping; this "
                                                "model needs them (version 2)",
                                                s->kv.name, s->kv.version));
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
    /* the caller's strings are borrowed for the call: keep what
     * sigma_session_fork reopens with (the name is the registry's) */
    if (p.kv_options) {
        size_t len = strlen(p.kv_options) + 1;
        if (!(s->kv_opts = sg_malloc(&s->alloc, len)))
            return open_fail(s, model, sg_error(&s->err, SIGMA_E_NOMEM, "out of memory"));
        memcpy(s->kv_opts, p.kv_options, len);
    }
    s->p.kv_options = s->kv_opts;
    s->p.kv_strategy = p.kv_custom ? NULL : s->kv.name;
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

/* A successful eval of n tokens at pos: keep them, and make the logits just
 * written (rows rows in logits_tmp) the session's (the buffers swap). */
static void commit_eval(sigma_session *s, size_t pos, const sigma_token *tokens, size_t n,
                        size_t rows) {
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
    commit_eval(s, pos, tokens, n, rows);
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

/* ---- many sessions in one pass ------------------------------------------------------- */

typedef struct batch_item {
    sigma_session *s;
    const sigma_token *tok;
    size_t n, done, pos;
    size_t rows;                   /* rows of logits kept */
    int status;
    int entered;                   /* its cache may hold rows of this call */
} batch_item;

/* A failure of the whole call: the same status and message on every session. */
static int batch_fail(sigma_session *const *ss, size_t n_ss, int *statuses, int st, const char *fmt,
                      ...) SG_PRINTF(5, 6);
static int batch_fail(sigma_session *const *ss, size_t n_ss, int *statuses, int st, const char *fmt,
                      ...) {
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < n_ss; i++) {
        if (statuses) statuses[i] = st;
        if (ss && ss[i]) sg_error(&ss[i]->err, st, "sessions_eval: %s", msg);
    }
    return st;
}

static int batch_validate(sigma_session *const *ss, const sigma_token *const *tokens,
                          const size_t *n_tokens, size_t n_ss, int *statuses) {
    if (!ss || !tokens || !n_tokens || n_ss == 0)
        return batch_fail(ss, ss ? n_ss : 0, statuses, SIGMA_E_INVALID_ARG,
                          "NULL array or no sessions");
    for (size_t i = 0; i < n_ss; i++)
        if (!ss[i])
            return batch_fail(ss, n_ss, statuses, SIGMA_E_INVALID_ARG, "session %zu is NULL", i);
    const sigma_model *m = ss[0]->model;
    for (size_t i = 0; i < n_ss; i++) {
        if (ss[i]->model != m)
            return batch_fail(ss, n_ss, statuses, SIGMA_E_MISMATCH,
                              "session %zu is on another model than session 0", i);
        for (size_t j = 0; j < i; j++)
            if (ss[j] == ss[i])
                return batch_fail(ss, n_ss, statuses, SIGMA_E_INVALID_ARG,
                                  "session %zu is session %zu again", i, j);
        if (!tokens[i] || n_tokens[i] == 0)
            return batch_fail(ss, n_ss, statuses, SIGMA_E_INVALID_ARG, "no tokens for session %zu",
                              i);
        for (size_t t = 0; t < n_tokens[i]; t++)
            if (tokens[i][t] < 0 || (uint32_t)tokens[i][t] >= m->hp.n_vocab)
                return batch_fail(ss, n_ss, statuses, SIGMA_E_INVALID_ARG,
                                  "session %zu: token %d at index %zu is out of range [0, %u)", i,
                                  tokens[i][t], t, m->hp.n_vocab);
    }
    return SIGMA_OK;
}

/* Per-session checks and buffers; a failure concerns that session only. */
static int batch_prepare(batch_item *it) {
    sigma_session *s = it->s;
    size_t pos = s->n_tokens, n = it->n;
    it->pos = pos;
    if (n > UINT32_MAX - pos)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL, "sessions_eval: position overflow");
    if (!s->kv.unbounded && pos + n > s->n_ctx)
        return sg_error(&s->err, SIGMA_E_CONTEXT_FULL,
                        "sessions_eval: %zu tokens at position %zu do not fit in n_ctx %u", n, pos,
                        s->n_ctx);
    int st;
    if ((st = sg_reserve_n(&s->alloc, (void **)&s->tokens, &s->cap_tokens, s->n_tokens, pos + n,
                           sizeof *s->tokens)) != SIGMA_OK)
        return sg_error(&s->err, st, "sessions_eval: out of memory for %zu tokens", pos + n);
    it->rows = s->p.logits_all ? n : 1;
    if ((st = reserve_floats(s, &s->logits_tmp, &s->cap_logits_tmp, it->rows)) != SIGMA_OK)
        return sg_error(&s->err, st, "sessions_eval: out of memory for %zu rows of logits", it->rows);
    return SIGMA_OK;
}

/* The passes: chunks of at most drv->n_batch rows, each session's piece at
 * most its own n_batch; returns a shared failure (items keep their own). */
static int batch_run(sigma_session *drv, batch_item *items, size_t n_items, sg_fwd_seg *segs,
                     size_t *seg_item, sigma_token *tok) {
    const size_t V = drv->model->hp.n_vocab, cap = drv->n_batch;
    for (;;) {
        size_t used = 0, ns = 0, nl = 0;
        for (size_t i = 0; i < n_items && used < cap; i++) {
            batch_item *it = &items[i];
            if (it->status != SIGMA_OK || it->done == it->n) continue;
            size_t take = it->n - it->done;
            if (take > it->s->n_batch) take = it->s->n_batch;
            if (take > cap - used) take = cap - used;
            int last = it->done + take == it->n;
            sg_fwd_seg *g = &segs[ns];
            memset(g, 0, sizeof *g);
            g->kv = &it->s->kv;
            g->kv_state = it->s->kv_state;
            g->row0 = used;
            g->n = take;
            g->pos0 = (uint32_t)(it->pos + it->done);
            g->logits_from = it->s->p.logits_all ? 0 : last ? take - 1 : take;
            g->cancel = it->s->p.cancel_fn;
            g->cancel_user = it->s->p.cancel_user;
            g->status = SIGMA_OK;
            g->err = &it->s->err;
            seg_item[ns++] = i;
            memcpy(tok + used, it->tok + it->done, take * sizeof *tok);
            nl += take - g->logits_from;
            used += take;
            it->entered = 1;
        }
        if (ns == 0) return SIGMA_OK;
        int st;
        if (nl && (st = reserve_floats(drv, &drv->batch_logits, &drv->cap_batch_logits, nl)) != SIGMA_OK)
            return sg_error(&drv->err, st, "sessions_eval: out of memory for %zu rows of logits", nl);
        st = sg_forward_segs(&drv->fwd, tok, used, segs, ns, nl ? drv->batch_logits : NULL,
                             &drv->err);
        if (st != SIGMA_OK) return st;
        size_t lr = 0;
        for (size_t k = 0; k < ns; k++) {
            const sg_fwd_seg *g = &segs[k];
            batch_item *it = &items[seg_item[k]];
            size_t r = g->n - g->logits_from;
            if (g->status != SIGMA_OK) {
                it->status = g->status;
            } else {
                if (r) {
                    size_t at = it->s->p.logits_all ? it->done : 0;
                    memcpy(it->s->logits_tmp + at * V, drv->batch_logits + lr * V,
                           r * V * sizeof(float));
                }
                it->done += g->n;
            }
            lr += r;
        }
    }
}

int sigma_sessions_eval(sigma_session *const *sessions, const sigma_token *const *tokens,
                        const size_t *n_tokens, size_t n_sessions, int *statuses) {
    int st = batch_validate(sessions, tokens, n_tokens, n_sessions, statuses);
    if (st != SIGMA_OK) return st;
    /* the session with the largest n_batch drives: its buffers and pool
     * run the shared part */
    sigma_session *drv = sessions[0];
    for (size_t i = 1; i < n_sessions; i++)
        if (sessions[i]->n_batch > drv->n_batch) drv = sessions[i];
    sg_alloc *a = &drv->alloc;
    size_t bytes = 0;
    int ok = sg_mul_size(n_sessions, sizeof(batch_item) + sizeof(sg_fwd_seg) + sizeof(size_t),
                         &bytes) &&
             sg_add_size(bytes, (size_t)drv->n_batch * sizeof(sigma_token), &bytes);
    void *mem = ok ? sg_malloc(a, bytes) : NULL;
    if (!mem)
        return batch_fail(sessions, n_sessions, statuses, SIGMA_E_NOMEM,
                          "out of memory for %zu sessions", n_sessions);
    /* one block: segments, items, item indices, tokens (alignment descending) */
    sg_fwd_seg *segs = mem;
    batch_item *items = (batch_item *)(segs + n_sessions);
    size_t *seg_item = (size_t *)(items + n_sessions);
    sigma_token *tok = (sigma_token *)(seg_item + n_sessions);
    size_t live = 0;
    for (size_t i = 0; i < n_sessions; i++) {
        batch_item *it = &items[i];
        memset(it, 0, sizeof *it);
        it->s = sessions[i];
        it->tok = tokens[i];
        it->n = n_tokens[i];
        it->status = batch_prepare(it);
        live += it->status == SIGMA_OK;
    }
    if (live) {
        st = batch_run(drv, items, n_sessions, segs, seg_item, tok);
        if (st != SIGMA_OK) {
            /* the shared part failed: no session advances */
            const char *msg = drv->err.msg;
            for (size_t i = 0; i < n_sessions; i++) {
                if (items[i].status != SIGMA_OK) continue;
                items[i].status = st;
                if (items[i].s != drv) sg_error(&items[i].s->err, st, "%s", msg);
            }
        }
    }
    st = SIGMA_OK;
    for (size_t i = 0; i < n_sessions; i++) {
        batch_item *it = &items[i];
        sigma_session *s = it->s;
        if (statuses) statuses[i] = it->status;
        if (it->status != SIGMA_OK) {
            if (st == SIGMA_OK) st = it->status;
            if (it->entered) s->kv.truncate(s->kv_state, (uint32_t)it->pos);
            continue;
        }
        commit_eval(s, it->pos, it->tok, it->n, it->rows);
    }
    sg_free(a, mem);
    return st;
}

/* ---- fork ---------------------------------------------------------------------------- */

int sigma_session_fork(const sigma_session *src, sigma_session **out) {
    if (out) *out = NULL;
    if (!src || !out) return SIGMA_E_INVALID_ARG;
    sigma_session *s = (sigma_session *)src; /* for its error slot only */
    if (!src->kv.save || !src->kv.load)
        return sg_error(&s->err, SIGMA_E_UNSUPPORTED,
                        "fork: KV strategy '%s' has no save/load to copy its state", src->kv.name);
    sigma_session *d = NULL;
    int st = sigma_session_open(src->model, &src->p, &d);
    if (st != SIGMA_OK) /* the details are on the model (sigma_model_last_error) */
        return sg_error(&s->err, st, "fork: cannot open the new session: %s", sigma_strerror(st));
    sg_buf kvb;
    memset(&kvb, 0, sizeof kvb);
    kvb.alloc = &d->alloc;
    st = src->kv.save(src->kv_state, sg_buf_write_cb, &kvb);
    if (st == SIGMA_OK && kvb.failed) st = SIGMA_E_NOMEM;
    if (st != SIGMA_OK) {
        sg_error(&s->err, st, "fork: KV strategy '%s' save failed", src->kv.name);
        goto fail;
    }
    if ((st = d->kv.load(d->kv_state, kvb.data, kvb.len)) != SIGMA_OK) {
        sg_error(&s->err, st, "fork: KV strategy '%s' load failed", src->kv.name);
        goto fail;
    }
    if (src->n_tokens) {
        if ((st = sg_reserve_n(&d->alloc, (void **)&d->tokens, &d->cap_tokens, 0, src->n_tokens,
                               sizeof *d->tokens)) != SIGMA_OK) {
            sg_error(&s->err, st, "fork: out of memory for %zu tokens", src->n_tokens);
            goto fail;
        }
        memcpy(d->tokens, src->tokens, src->n_tokens * sizeof *d->tokens);
    }
    d->n_tokens = src->n_tokens;
    if (src->logits_valid) {
        if ((st = reserve_floats(d, &d->logits, &d->cap_logits, src->n_logit_rows)) != SIGMA_OK) {
            sg_error(&s->err, st, "fork: out of memory for logits");
            goto fail;
        }
        memcpy(d->logits, src->logits,
               src->n_logit_rows * (size_t)src->model->hp.n_vocab * sizeof(float));
        d->n_logit_rows = src->n_logit_rows;
        d->n_last_eval = src->n_last_eval;
        d->logits_valid = 1;
    }
    sg_buf_free(&kvb);
    *out = d;
    return SIGMA_OK;
fail:
    sg_buf_free(&kvb);
    sigma_session_close(d);
    return st;
}
