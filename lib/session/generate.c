/* Streaming generation: prompt evaluation, the sample/eval loop, UTF-8
 * safe decoding (lib/text/decoder.c) and stop strings (lib/text/stop.c). */
#include <stdio.h>
#include <string.h>

#include "../text/text.h"
#include "session.h"

/* ---- parameters --------------------------------------------------------- */

int sigma_generate_params_init(sigma_generate_params *params, size_t struct_size) {
    /* the defaults; fields not named are 0 (static: padding zeroed too) */
    static const sigma_generate_params d = {
        .max_tokens = 256,
        .tokenize_flags = SIGMA_TOKENIZE_ADD_SPECIAL,
    };
    return sg_params_init(params, struct_size, sizeof(uint32_t), &d, sizeof d);
}

/* ---- the loop ------------------------------------------------------------- */

typedef struct gen_state {
    const sg_gen_ops *ops;
    const sigma_generate_params *p;
    sg_stopper stop;
    const char **stops;   /* params + extra, allocated */
    char *piece;          /* decode buffer */
    size_t piece_cap;
    int user_stopped;
} gen_state;

/* Pass text through the stop strings to the callback. */
static int emit(gen_state *g, const char *text, size_t len) {
    if (g->user_stopped) return SIGMA_OK;
    const char *e;
    size_t el;
    int st = sg_stopper_push(&g->stop, text, len, &e, &el);
    if (st != SIGMA_OK) return st;
    if (el && g->p->on_piece && g->p->on_piece(g->p->on_piece_user, e, el) != 0)
        g->user_stopped = 1;
    return SIGMA_OK;
}

/* Decode with a growing buffer: fn is decode (token >= 0) or flush. */
static int decode_into(gen_state *g, sigma_token token, size_t *len) {
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t need = 0;
        int st = token >= 0
                     ? g->ops->decode(g->ops->ctx, token, g->piece, g->piece_cap, &need)
                     : g->ops->decode_flush(g->ops->ctx, g->piece, g->piece_cap, &need);
        if (st == SIGMA_OK) {
            *len = need;
            return SIGMA_OK;
        }
        if (st != SIGMA_E_BUFFER_TOO_SMALL || need <= g->piece_cap) return st;
        char *nb = sg_malloc(g->ops->alloc, need);
        if (!nb) return SIGMA_E_NOMEM;
        sg_free(g->ops->alloc, g->piece);
        g->piece = nb;
        g->piece_cap = need;
    }
    return SIGMA_E_INTERNAL;
}

static void write_stats(sigma_generate_stats *out, const sigma_generate_stats *full) {
    if (!out || out->struct_size < sizeof(uint32_t)) return;
    uint32_t sz = out->struct_size;
    size_t n = sz < sizeof *full ? sz : sizeof *full;
    memcpy(out, full, n);
    out->struct_size = sz;
}

int sg_generate_run(const sg_gen_ops *ops, const sigma_token *prompt, size_t n_prompt,
                    const sigma_generate_params *p, const char *const *extra_stops,
                    size_t n_extra, sigma_generate_stats *stats, sg_err *err) {
    memset(stats, 0, sizeof *stats);
    stats->struct_size = (uint32_t)sizeof *stats;
    stats->stop_reason = SIGMA_STOP_NONE;
    if (n_prompt > UINT32_MAX) return sg_error(err, SIGMA_E_CONTEXT_FULL, "prompt too long");
    if (p->n_stop_strings && !p->stop_strings)
        return sg_error(err, SIGMA_E_INVALID_ARG, "n_stop_strings without stop_strings");
    gen_state g;
    memset(&g, 0, sizeof g);
    g.ops = ops;
    g.p = p;
    size_t n_stops;
    if (!sg_add_size(p->n_stop_strings, n_extra, &n_stops))
        return sg_error(err, SIGMA_E_INVALID_ARG, "too many stop strings");
    if (n_stops) {
        g.stops = sg_calloc(ops->alloc, n_stops, sizeof *g.stops);
        if (!g.stops) return sg_error(err, SIGMA_E_NOMEM, "out of memory (stop strings)");
        for (size_t i = 0; i < p->n_stop_strings; i++) g.stops[i] = p->stop_strings[i];
        for (size_t i = 0; i < n_extra; i++) g.stops[p->n_stop_strings + i] = extra_stops[i];
    }
    sg_stopper_init(&g.stop, ops->alloc, g.stops, n_stops);
    g.piece_cap = 256;
    g.piece = sg_malloc(ops->alloc, g.piece_cap);
    int st = SIGMA_OK;
    if (!g.piece) {
        st = sg_error(err, SIGMA_E_NOMEM, "out of memory (decode buffer)");
        goto done;
    }

    /* the prompt */
    double t0 = sg_now_ms();
    if (n_prompt) {
        st = ops->eval(ops->ctx, prompt, n_prompt);
        if (st != SIGMA_OK) {
            if (st == SIGMA_E_CANCELLED) stats->stop_reason = SIGMA_STOP_CANCELLED;
            else if (st == SIGMA_E_CONTEXT_FULL) stats->stop_reason = SIGMA_STOP_CONTEXT_FULL;
            sg_error(err, st, "evaluating the prompt (%zu tokens): %s", n_prompt,
                     sigma_strerror(st));
            goto done;
        }
        stats->n_prompt_tokens = (uint32_t)n_prompt;
        if (p->sampler)
            for (size_t i = 0; i < n_prompt; i++) {
                st = sigma_sampler_accept(p->sampler, prompt[i]);
                if (st != SIGMA_OK) {
                    sg_error(err, st, "sampler rejected prompt token %d", (int)prompt[i]);
                    goto done;
                }
            }
    }
    double t1 = sg_now_ms();
    stats->prompt_ms = t1 - t0;

    /* generation */
    for (;;) {
        if (p->max_tokens > 0 && stats->n_generated >= (uint32_t)p->max_tokens) {
            stats->stop_reason = SIGMA_STOP_MAX_TOKENS;
            break;
        }
        if (ops->cancelled && ops->cancelled(ops->ctx)) {
            stats->stop_reason = SIGMA_STOP_CANCELLED;
            break;
        }
        const float *logits = NULL;
        st = ops->logits(ops->ctx, &logits);
        if (st != SIGMA_OK) {
            sg_error(err, st, "no logits to sample from (empty prompt on a fresh session?)");
            goto done;
        }
        sigma_token tok;
        st = p->sampler ? sigma_sampler_sample(p->sampler, logits, &tok)
                        : sg_argmax(logits, ops->n_vocab, &tok);
        if (st != SIGMA_OK) {
            sg_error(err, st, "sampling failed (every logit is NaN or -inf?)");
            goto done;
        }
        int eog = 0;
        st = ops->is_eog(ops->ctx, tok, &eog);
        if (st != SIGMA_OK) {
            sg_error(err, st, "end-of-generation check failed for token %d", (int)tok);
            goto done;
        }
        if (eog) {
            stats->stop_reason = SIGMA_STOP_EOG;
            break;
        }
        st = ops->eval(ops->ctx, &tok, 1);
        if (st == SIGMA_E_CONTEXT_FULL) {
            st = SIGMA_OK;
            stats->stop_reason = SIGMA_STOP_CONTEXT_FULL;
            break;
        }
        if (st == SIGMA_E_CANCELLED) {
            stats->stop_reason = SIGMA_STOP_CANCELLED;
            break;
        }
        if (st != SIGMA_OK) {
            sg_error(err, st, "evaluating generated token %d: %s", (int)tok, sigma_strerror(st));
            goto done;
        }
        stats->n_generated++;
        size_t len = 0;
        st = decode_into(&g, tok, &len);
        if (st == SIGMA_OK) st = emit(&g, g.piece, len);
        if (st != SIGMA_OK) {
            sg_error(err, st, "decoding token %d: %s", (int)tok, sigma_strerror(st));
            goto done;
        }
        if (g.user_stopped) {
            stats->stop_reason = SIGMA_STOP_USER;
            break;
        }
        if (g.stop.stopped) {
            stats->stop_reason = SIGMA_STOP_STRING;
            break;
        }
    }
    /* what the decoder and the stop strings still hold */
    if (!g.user_stopped && !g.stop.stopped) {
        size_t len = 0;
        int fst = decode_into(&g, SIGMA_TOKEN_NONE, &len);
        if (fst == SIGMA_OK) fst = emit(&g, g.piece, len);
        if (fst == SIGMA_OK && !g.stop.stopped && !g.user_stopped) {
            const char *e;
            size_t el;
            sg_stopper_finish(&g.stop, &e, &el);
            if (el && p->on_piece && p->on_piece(p->on_piece_user, e, el) != 0)
                g.user_stopped = 1;
        }
        if (fst != SIGMA_OK && st == SIGMA_OK)
            st = sg_error(err, fst, "flushing the decoder: %s", sigma_strerror(fst));
        if (g.stop.stopped && stats->stop_reason != SIGMA_STOP_CANCELLED)
            stats->stop_reason = SIGMA_STOP_STRING;
    }
    if (stats->stop_reason == SIGMA_STOP_CANCELLED && st == SIGMA_OK) {
        st = SIGMA_E_CANCELLED;
        sg_error(err, st, "generation cancelled after %u tokens", stats->n_generated);
    }
    stats->generate_ms = sg_now_ms() - t1;
done:
    sg_stopper_free(&g.stop);
    sg_free(ops->alloc, g.stops);
    sg_free(ops->alloc, g.piece);
    return st;
}

int sg_chat_run(const sg_gen_ops *ops, const sigma_token *tokens, size_t n_tokens,
                const sigma_generate_params *p, const char *const *extra_stops,
                size_t n_extra, sigma_generate_stats *stats, sg_err *err) {
    memset(stats, 0, sizeof *stats);
    stats->struct_size = (uint32_t)sizeof *stats;
    if (n_tokens == 0) return sg_error(err, SIGMA_E_INVALID_ARG, "chat: nothing to evaluate");
    const sigma_token *have = NULL;
    size_t n_have = 0;
    int st = ops->tokens(ops->ctx, &have, &n_have);
    if (st != SIGMA_OK) return sg_error(err, st, "chat: cannot read the session's tokens");
    size_t lcp = 0;
    while (lcp < n_have && lcp < n_tokens && have[lcp] == tokens[lcp]) lcp++;
    if (lcp == n_tokens) lcp--; /* evaluate at least one token for fresh logits */
    if (lcp < n_have) {
        if (lcp > UINT32_MAX) return sg_error(err, SIGMA_E_INTERNAL, "chat: position overflow");
        st = ops->rewind(ops->ctx, (uint32_t)lcp);
        if (st != SIGMA_OK) return sg_error(err, st, "chat: rewinding to %zu failed", lcp);
    }
    return sg_generate_run(ops, tokens + lcp, n_tokens - lcp, p, extra_stops, n_extra, stats,
                           err);
}

/* ---- the library's backend: a session, its model and a decoder ------------ */

typedef struct real_ctx {
    sigma_session *session;
    const sigma_model *model;
    sigma_decoder *dec;
} real_ctx;

static int r_eval(void *c, const sigma_token *t, size_t n) {
    return sigma_session_eval(((real_ctx *)c)->session, t, n);
}
static int r_logits(void *c, const float **l) {
    return sigma_session_logits(((real_ctx *)c)->session, -1, l);
}
static int r_tokens(void *c, const sigma_token **t, size_t *n) {
    return sigma_session_tokens(((real_ctx *)c)->session, t, n);
}
static int r_rewind(void *c, uint32_t pos) {
    return sigma_session_rewind(((real_ctx *)c)->session, pos);
}
static int r_is_eog(void *c, sigma_token t, int *e) {
    return sigma_token_is_eog(((real_ctx *)c)->model, t, e);
}
static int r_decode(void *c, sigma_token t, char *b, size_t sz, size_t *len) {
    return sigma_decoder_push(((real_ctx *)c)->dec, t, b, sz, len);
}
static int r_flush(void *c, char *b, size_t sz, size_t *len) {
    return sigma_decoder_flush(((real_ctx *)c)->dec, b, sz, len);
}
static int r_cancelled(void *c) { return sg_session_cancelled(((real_ctx *)c)->session); }

static int real_open(real_ctx *rc, sg_gen_ops *ops, sigma_session *session,
                     const sigma_model *model, sg_err *err) {
    memset(rc, 0, sizeof *rc);
    rc->session = session;
    rc->model = model;
    int st = sigma_decoder_open(model, 0, &rc->dec);
    if (st != SIGMA_OK) return sg_error(err, st, "cannot open a decoder: %s", sigma_strerror(st));
    ops->ctx = rc;
    ops->alloc = &model->alloc;
    ops->n_vocab = model->hp.n_vocab;
    ops->eval = r_eval;
    ops->logits = r_logits;
    ops->tokens = r_tokens;
    ops->rewind = r_rewind;
    ops->is_eog = r_is_eog;
    ops->decode = r_decode;
    ops->decode_flush = r_flush;
    ops->cancelled = r_cancelled;
    return SIGMA_OK;
}

static int resolve_gen_params(const sigma_generate_params *in, sigma_generate_params *p,
                              sg_err *err) {
    sigma_generate_params_init(p, sizeof *p);
    if (!in) return SIGMA_OK;
    if (in->struct_size < sizeof(uint32_t))
        return sg_error(err, SIGMA_E_INVALID_ARG, "generate params: bad struct_size");
    sg_params_merge(p, sizeof *p, in, in->struct_size);
    return SIGMA_OK;
}

/* Tokenize into an allocated array (*out freed by the caller). */
int sg_session_generate_model(sigma_session *session, const sigma_model *model,
                              const char *prompt, const sigma_generate_params *params,
                              sigma_generate_stats *stats, sg_err *err) {
    sigma_generate_stats full;
    memset(&full, 0, sizeof full);
    if (!session || !model || !prompt)
        return sg_error(err, SIGMA_E_INVALID_ARG, "generate: NULL argument");
    sigma_generate_params p;
    int st = resolve_gen_params(params, &p, err);
    if (st != SIGMA_OK) return st;
    uint32_t pos = 0;
    st = sigma_session_position(session, &pos);
    if (st != SIGMA_OK) return sg_error(err, st, "generate: cannot read the session position");
    uint32_t flags = p.tokenize_flags;
    if (pos > 0) flags &= ~SIGMA_TOKENIZE_ADD_SPECIAL; /* BOS only at the start */
    sigma_token *toks = NULL;
    size_t n = 0;
    double t0 = sg_now_ms();
    st = sg_tokenize_alloc(model, prompt, strlen(prompt), flags, &toks, &n, err);
    if (st != SIGMA_OK) return st;
    double t_tok = sg_now_ms() - t0;
    real_ctx rc;
    sg_gen_ops ops;
    st = real_open(&rc, &ops, session, model, err);
    if (st == SIGMA_OK) {
        st = sg_generate_run(&ops, toks, n, &p, NULL, 0, &full, err);
        full.prompt_ms += t_tok;
        write_stats(stats, &full);
    }
    sigma_decoder_close(rc.dec);
    sg_free(&model->alloc, toks);
    return st;
}

int sg_session_chat_model(sigma_session *session, const sigma_model *model,
                          const sigma_chat_message *messages, size_t n_messages,
                          const sigma_generate_params *params, sigma_generate_stats *stats,
                          sg_err *err) {
    sigma_generate_stats full;
    memset(&full, 0, sizeof full);
    if (!session || !model || (n_messages && !messages))
        return sg_error(err, SIGMA_E_INVALID_ARG, "chat: NULL argument");
    sigma_generate_params p;
    int st = resolve_gen_params(params, &p, err);
    if (st != SIGMA_OK) return st;
    double t0 = sg_now_ms();
    size_t len = 0;
    st = sigma_chat_render(model, messages, n_messages, 1, NULL, 0, &len);
    if (st != SIGMA_OK && st != SIGMA_E_BUFFER_TOO_SMALL)
        return sg_error(err, st, "chat: rendering failed (NULL role or content?)");
    size_t cap;
    if (!sg_add_size(len, 1, &cap)) return sg_error(err, SIGMA_E_NOMEM, "chat: too long");
    char *text = sg_malloc(&model->alloc, cap);
    if (!text) return sg_error(err, SIGMA_E_NOMEM, "chat: out of memory");
    st = sigma_chat_render(model, messages, n_messages, 1, text, cap, &len);
    if (st != SIGMA_OK) {
        sg_free(&model->alloc, text);
        return sg_error(err, st, "chat: rendering failed");
    }
    sigma_token *toks = NULL;
    size_t n = 0;
    st = sg_tokenize_alloc(model, text, len,
                        SIGMA_TOKENIZE_PARSE_SPECIAL | (p.tokenize_flags & SIGMA_TOKENIZE_ADD_SPECIAL),
                        &toks, &n, err);
    sg_free(&model->alloc, text);
    if (st != SIGMA_OK) return st;
    double t_prep = sg_now_ms() - t0;
    /* the plain fallback has no end-of-turn token: stop at the next turn */
    const char *const plain_stops[2] = {"\nUser:", "\nSystem:"};
    int plain = 1;
    const sg_gguf_kv *kv = model->gguf ? sg_gguf_find(model->gguf, "tokenizer.chat_template") : NULL;
    if (kv && kv->value.type == SG_GGUF_STRING && kv->value.v.s.len <= SIZE_MAX &&
        sg_chat_detect(kv->value.v.s.ptr, (size_t)kv->value.v.s.len) != SG_CHAT_PLAIN)
        plain = 0;
    real_ctx rc;
    sg_gen_ops ops;
    st = real_open(&rc, &ops, session, model, err);
    if (st == SIGMA_OK) {
        st = sg_chat_run(&ops, toks, n, &p, plain ? plain_stops : NULL, plain ? 2 : 0, &full,
                         err);
        full.prompt_ms += t_prep;
        write_stats(stats, &full);
    }
    sigma_decoder_close(rc.dec);
    sg_free(&model->alloc, toks);
    return st;
}

/* ---- public entry points --------------------------------------------------- */

/* Record err on the session, keeping the session's own detail of a failed
 * eval (copied before it is overwritten). */
static int report(sigma_session *s, int st, const sg_err *err) {
    if (st == SIGMA_OK) return st;
    char detail[SG_ERRMSG_MAX];
    const char *d = sigma_session_last_error(s);
    snprintf(detail, sizeof detail, "%s", d ? d : "");
    const char *msg = err->msg[0] ? err->msg : sigma_strerror(st);
    if (detail[0] && !strstr(msg, detail))
        return sg_session_error(s, st, "%s (%s)", msg, detail);
    return sg_session_error(s, st, "%s", msg);
}

int sigma_session_generate(sigma_session *session, const char *prompt,
                           const sigma_generate_params *params, sigma_generate_stats *stats) {
    if (!session) return SIGMA_E_INVALID_ARG;
    sg_err err;
    sg_err_clear(&err);
    int st = sg_session_generate_model(session, sg_session_model(session), prompt, params,
                                       stats, &err);
    return report(session, st, &err);
}

int sigma_session_chat(sigma_session *session, const sigma_chat_message *messages,
                       size_t n_messages, const sigma_generate_params *params,
                       sigma_generate_stats *stats) {
    if (!session) return SIGMA_E_INVALID_ARG;
    sg_err err;
    sg_err_clear(&err);
    int st = sg_session_chat_model(session, sg_session_model(session), messages, n_messages,
                                   params, stats, &err);
    return report(session, st, &err);
}
