/* Many sessions in one forward pass (sigma_sessions_eval) and session fork
 * (sigma_session_fork): logits bitwise equal to evaluating each session
 * alone, failure semantics, forks that continue exactly like the original,
 * and batches on several threads (also run under ThreadSanitizer). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiny_model.h"
#include "sigma/sigma.h"

/* ---- models ---------------------------------------------------------------------- */

typedef struct tmodel {
    sigma_model *m;
    uint8_t *mem;
    uint32_t n_vocab;
} tmodel;

/* 0, 1: the tiny llama and sigma models; 2, 3: fixture files (a Sigma model
 * with AugQ and Q8_0 weights, a Llama model with RoPE frequency factors) */
static tmodel open_model(int which) {
    tmodel t = {NULL, NULL, 0};
    if (which < 2) {
        t.m = tm_open(which, &t.mem);
    } else {
        const char *root = getenv("SIGMA_SOURCE_ROOT");
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : ".",
                 which == 2 ? "sigma_augq_q8_0.gguf" : "llama_ropefreqs_f32.gguf");
        ck_assert_int_eq(sigma_model_open(path, NULL, &t.m), SIGMA_OK);
    }
    ck_assert_ptr_nonnull(t.m);
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ck_assert_int_eq(sigma_model_get_info(t.m, &info), SIGMA_OK);
    t.n_vocab = info.n_vocab;
    return t;
}

static void close_model(tmodel *t) {
    sigma_model_close(t->m);
    free(t->mem);
}

/* ---- a host strategy (f32 rows, naive attention); save/load optional ------------- */

typedef struct my_kv {
    sigma_kv_layout lay;
    float *k, *v;
} my_kv;
static int my_create(void *user, const sigma_kv_layout *l, const char *o, void **st, char *e,
                     size_t es) {
    (void)user; (void)o; (void)e; (void)es;
    my_kv *s = calloc(1, sizeof *s);
    s->lay = *l;
    s->k = calloc((size_t)l->n_layers * l->n_ctx * l->n_k_heads * l->d_qk, sizeof(float));
    s->v = calloc((size_t)l->n_layers * l->n_ctx * l->n_v_heads * l->d_v, sizeof(float));
    *st = s;
    return SIGMA_OK;
}
static void my_destroy(void *st) {
    my_kv *s = st;
    free(s->k);
    free(s->v);
    free(s);
}
static int my_append(void *st, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                     const float *v) {
    my_kv *s = st;
    size_t kr = (size_t)s->lay.n_k_heads * s->lay.d_qk, vr = (size_t)s->lay.n_v_heads * s->lay.d_v;
    if (pos0 + n > s->lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    memcpy(s->k + ((size_t)layer * s->lay.n_ctx + pos0) * kr, k, n * kr * sizeof(float));
    memcpy(s->v + ((size_t)layer * s->lay.n_ctx + pos0) * vr, v, n * vr * sizeof(float));
    return SIGMA_OK;
}
static int my_attend(void *st, const sigma_kv_attend_args *a) {
    my_kv *s = st;
    const sigma_kv_layout *L = &s->lay;
    size_t kr = (size_t)L->n_k_heads * L->d_qk, vr = (size_t)L->n_v_heads * L->d_v;
    float sc[256];
    for (uint32_t j = 0; j < a->n_queries; j++)
        for (uint32_t h = 0; h < L->n_q_heads; h++) {
            const float *q = a->q + ((size_t)j * L->n_q_heads + h) * L->d_qk;
            float *o = a->out + ((size_t)j * L->n_q_heads + h) * L->d_v;
            uint32_t kh = h * L->n_k_heads / L->n_q_heads, vh = h * L->n_v_heads / L->n_q_heads;
            uint32_t np = a->pos0 + j + 1;
            if (np > 256) return SIGMA_E_INTERNAL;
            for (uint32_t p = 0; p < np; p++)
                sc[p] = sigma_kernel_dot_f32(q, s->k + ((size_t)a->layer * L->n_ctx + p) * kr +
                                                    kh * L->d_qk,
                                             L->d_qk) *
                        a->scale;
            sigma_kernel_softmax_f32(sc, np);
            memset(o, 0, L->d_v * sizeof(float));
            for (uint32_t p = 0; p < np; p++)
                sigma_kernel_axpy_f32(o, sc[p],
                                      s->v + ((size_t)a->layer * L->n_ctx + p) * vr + vh * L->d_v,
                                      L->d_v);
        }
    return SIGMA_OK;
}
static int my_truncate(void *st, uint32_t n) {
    (void)st; (void)n;
    return SIGMA_OK;
}
static size_t my_bytes(void *st) {
    (void)st;
    return 0;
}
static const sigma_kv_strategy MY_KV = {SIGMA_KV_STRATEGY_VERSION, "mine", 0, NULL, my_create,
                                        my_destroy, my_append, my_attend, my_truncate, my_bytes,
                                        NULL, NULL};

/* ---- session configurations -------------------------------------------------------- */

typedef struct cfg {
    const char *kv;            /* NULL: the host strategy above */
    const char *opts;
    uint32_t n_batch;
    int logits_all;
    uint32_t n_ctx;
} cfg;

static sigma_session *open_cfg(const sigma_model *m, const cfg *c, sigma_threadpool *pool) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = c->n_ctx ? c->n_ctx : 64;
    p.n_batch = c->n_batch;
    p.n_threads = 2;
    p.threadpool = pool;
    p.logits_all = c->logits_all;
    if (c->kv) {
        p.kv_strategy = c->kv;
        p.kv_options = c->opts;
    } else {
        p.kv_custom = &MY_KV;
    }
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    return s;
}

/* token t of session i's stream */
static sigma_token tok_at(size_t i, size_t t, uint32_t n_vocab) {
    static const sigma_token P[20] = {1, 7, 3, 49, 0, 22, 5, 5, 13, 40, 2, 8, 31, 17, 9, 44, 6, 11, 28, 19};
    return (sigma_token)(((uint32_t)P[t % 20] * 7u + (uint32_t)t / 20u + 3u * (uint32_t)i) % n_vocab);
}

#define NS 5
#define MAXT 64

/* the logits of the last eval of a and b are bitwise equal (every row with
 * logits_all) */
static void same_logits(sigma_session *a, sigma_session *b, size_t rows, uint32_t n_vocab,
                        const char *what) {
    for (size_t r = 0; r < rows; r++) {
        const float *la, *lb;
        int32_t idx = rows == 1 ? -1 : (int32_t)r;
        ck_assert_int_eq(sigma_session_logits(a, idx, &la), SIGMA_OK);
        ck_assert_int_eq(sigma_session_logits(b, idx, &lb), SIGMA_OK);
        ck_assert_msg(memcmp(la, lb, n_vocab * sizeof(float)) == 0, "%s: row %zu differs", what, r);
    }
    uint32_t pa, pb;
    sigma_session_position(a, &pa);
    sigma_session_position(b, &pb);
    ck_assert_uint_eq(pa, pb);
}

/* Sessions of the configurations `cs` at different positions get steps of
 * mixed prompt/decode rows, batched and one by one; every step's logits are
 * bitwise equal. */
static void run_script(const tmodel *t, const cfg *cs) {
    static const size_t pre[NS] = {2, 9, 0, 4, 1};
    static const size_t steps[][NS] = {
        {5, 1, 3, 7, 1}, {1, 1, 1, 1, 1}, {1, 6, 1, 2, 9}, {1, 1, 1, 1, 1}, {12, 1, 1, 3, 1}};
    sigma_session *ref[NS], *bat[NS];
    size_t at[NS];
    sigma_token buf[NS][MAXT];
    for (size_t i = 0; i < NS; i++) {
        ref[i] = open_cfg(t->m, &cs[i], NULL);
        bat[i] = open_cfg(t->m, &cs[i], NULL);
        for (size_t k = 0; k < MAXT; k++) buf[i][k] = tok_at(i, k, t->n_vocab);
        at[i] = pre[i];
        if (pre[i]) {
            ck_assert_int_eq(sigma_session_eval(ref[i], buf[i], pre[i]), SIGMA_OK);
            ck_assert_int_eq(sigma_session_eval(bat[i], buf[i], pre[i]), SIGMA_OK);
        }
    }
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        const sigma_token *tp[NS];
        int statuses[NS];
        for (size_t i = 0; i < NS; i++) {
            tp[i] = buf[i] + at[i];
            ck_assert_int_eq(sigma_session_eval(ref[i], tp[i], steps[s][i]), SIGMA_OK);
        }
        ck_assert_int_eq(sigma_sessions_eval(bat, tp, steps[s], NS, statuses), SIGMA_OK);
        for (size_t i = 0; i < NS; i++) {
            ck_assert_int_eq(statuses[i], SIGMA_OK);
            char what[64];
            snprintf(what, sizeof what, "step %zu session %zu", s, i);
            same_logits(ref[i], bat[i], cs[i].logits_all ? steps[s][i] : 1, t->n_vocab, what);
            at[i] += steps[s][i];
        }
    }
    for (size_t i = 0; i < NS; i++) {
        const sigma_token *ta, *tb;
        size_t na, nb;
        sigma_session_tokens(ref[i], &ta, &na);
        sigma_session_tokens(bat[i], &tb, &nb);
        ck_assert_uint_eq(na, nb);
        ck_assert(memcmp(ta, tb, na * sizeof *ta) == 0);
        sigma_session_close(ref[i]);
        sigma_session_close(bat[i]);
    }
}

/* _i: model (0..3) x kernels (the test default "exact", or the library's
 * default SIMD / 8-bit activation kernels) */
START_TEST(test_batch_bitwise) {
    if (_i >= 4) unsetenv("SIGMA_KERNELS");
    tmodel t = open_model(_i % 4);
    /* mixed strategies; one session with logits_all */
    const cfg mixed[NS] = {{"dense", NULL, 512, 0, 0},
                           {"quant", "kbits=4,vbits=8,group=8,residual=4", 64, 1, 0},
                           {"window", "sinks=2,window=6", 512, 0, 0},
                           {"h2o", "budget=8", 512, 0, 0},
                           {NULL, NULL, 16, 0, 0}};
    run_script(&t, mixed);
    /* small n_batch everywhere: passes split sessions' rows (the largest
     * n_batch, 5, bounds a pass) */
    const cfg small[NS] = {{"dense", NULL, 5, 1, 0},
                           {"topv", "k=4", 2, 0, 0},
                           {"dense", NULL, 1, 0, 0},
                           {"quant", NULL, 3, 0, 0},
                           {NULL, NULL, 4, 1, 0}};
    run_script(&t, small);
    close_model(&t);
}
END_TEST

/* ---- failures ----------------------------------------------------------------------- */

typedef struct cancel_ctl {
    int polls, cancel_at; /* cancel when polls reaches cancel_at (0: never) */
} cancel_ctl;
static int cancel_cb(void *user) {
    cancel_ctl *c = user;
    c->polls++;
    return c->cancel_at && c->polls >= c->cancel_at;
}

START_TEST(test_batch_failures) {
    tmodel t = open_model(_i);
    tmodel other = open_model(1 - _i);
    const size_t N = 4;
    /* a: plain; b: n_ctx 8; c: with a cancel callback; d: host strategy */
    cancel_ctl cc = {0, 0};
    sigma_session *ss[4], *rs[4];
    for (int r = 0; r < 2; r++) {
        sigma_session **v = r ? rs : ss;
        cfg ca = {"dense", NULL, 16, 0, 0}, cb = {"dense", NULL, 16, 0, 8},
            cd = {NULL, NULL, 16, 0, 0};
        v[0] = open_cfg(t.m, &ca, NULL);
        v[1] = open_cfg(t.m, &cb, NULL);
        sigma_session_params p;
        sigma_session_params_init(&p, sizeof p);
        p.n_ctx = 64;
        p.n_threads = 1;
        if (!r) {
            p.cancel_fn = cancel_cb;
            p.cancel_user = &cc;
        }
        ck_assert_int_eq(sigma_session_open(t.m, &p, &v[2]), SIGMA_OK);
        v[3] = open_cfg(t.m, &cd, NULL);
    }
    sigma_token toks[4][32];
    for (size_t i = 0; i < N; i++)
        for (size_t k = 0; k < 32; k++) toks[i][k] = tok_at(i, k, t.n_vocab);
    size_t at[4] = {0, 0, 0, 0};
    const sigma_token *tp[4];
    size_t nt[4];
    int stv[4];
    /* every session evaluates 6 tokens; b is then 2 short of full */
    for (size_t i = 0; i < N; i++) {
        tp[i] = toks[i];
        nt[i] = 6;
        ck_assert_int_eq(sigma_session_eval(rs[i], tp[i], 6), SIGMA_OK);
        at[i] = 6;
    }
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nt, N, stv), SIGMA_OK);
    for (size_t i = 0; i < N; i++) same_logits(ss[i], rs[i], 1, t.n_vocab, "start");

    /* check: every session i with adv[i] advanced by nt[i] and matches its
     * reference; the others are as before */
#define ADVANCE(adv)                                                                      \
    for (size_t i = 0; i < N; i++) {                                                      \
        if (!(adv)[i]) continue;                                                          \
        ck_assert_int_eq(sigma_session_eval(rs[i], tp[i], nt[i]), SIGMA_OK);              \
        at[i] += nt[i];                                                                   \
    }                                                                                     \
    for (size_t i = 0; i < N; i++) same_logits(ss[i], rs[i], 1, t.n_vocab, "after failure")

    /* 1. b does not fit: CONTEXT_FULL for b alone, the others advance */
    for (size_t i = 0; i < N; i++) {
        tp[i] = toks[i] + at[i];
        nt[i] = 3;
    }
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nt, N, stv), SIGMA_E_CONTEXT_FULL);
    ck_assert_int_eq(stv[0], SIGMA_OK);
    ck_assert_int_eq(stv[1], SIGMA_E_CONTEXT_FULL);
    ck_assert_int_eq(stv[2], SIGMA_OK);
    ck_assert_int_eq(stv[3], SIGMA_OK);
    ck_assert(strstr(sigma_session_last_error(ss[1]), "n_ctx") != NULL);
    {
        int adv[4] = {1, 0, 1, 1};
        ADVANCE(adv);
    }

    /* 2. c is cancelled in the middle of the pass (second poll: after the
     * first layer appended its rows); the others advance, c is as before */
    for (size_t i = 0; i < N; i++) {
        tp[i] = toks[i] + at[i];
        nt[i] = i == 1 ? 1 : 2;
    }
    cc.polls = 0;
    cc.cancel_at = 2;
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nt, N, stv), SIGMA_E_CANCELLED);
    ck_assert_int_eq(stv[2], SIGMA_E_CANCELLED);
    ck_assert_int_eq(stv[0] | stv[1] | stv[3], SIGMA_OK);
    cc.cancel_at = 0;
    {
        int adv[4] = {1, 1, 0, 1};
        ADVANCE(adv);
    }
    /* c continues with the tokens it did not take */
    {
        int adv[4] = {0, 0, 1, 0};
        for (size_t i = 0; i < N; i++) tp[i] = toks[i] + at[i];
        ck_assert_int_eq(sigma_sessions_eval(ss + 2, tp + 2, nt + 2, 1, stv), SIGMA_OK);
        ADVANCE(adv);
    }

    /* 3. call-level errors: nothing is evaluated, every status is the error */
    for (size_t i = 0; i < N; i++) {
        tp[i] = toks[i] + at[i];
        nt[i] = 1;
    }
    uint32_t pos_before[4];
    for (size_t i = 0; i < N; i++) sigma_session_position(ss[i], &pos_before[i]);
    sigma_session *o = open_cfg(other.m, &(cfg){"dense", NULL, 16, 0, 0}, NULL);
    sigma_session *mix[4] = {ss[0], ss[1], o, ss[3]};
    ck_assert_int_eq(sigma_sessions_eval(mix, tp, nt, N, stv), SIGMA_E_MISMATCH);
    for (size_t i = 0; i < N; i++) ck_assert_int_eq(stv[i], SIGMA_E_MISMATCH);
    ck_assert(strstr(sigma_session_last_error(ss[0]), "another model") != NULL);
    sigma_session *twice[4] = {ss[0], ss[1], ss[0], ss[3]};
    ck_assert_int_eq(sigma_sessions_eval(twice, tp, nt, N, stv), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(stv[1], SIGMA_E_INVALID_ARG);
    sigma_session *withnull[4] = {ss[0], NULL, ss[2], ss[3]};
    ck_assert_int_eq(sigma_sessions_eval(withnull, tp, nt, N, stv), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sessions_eval(NULL, tp, nt, N, stv), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sessions_eval(ss, NULL, nt, N, NULL), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, NULL, N, NULL), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nt, 0, NULL), SIGMA_E_INVALID_ARG);
    const sigma_token *tnull[4] = {tp[0], tp[1], NULL, tp[3]};
    ck_assert_int_eq(sigma_sessions_eval(ss, tnull, nt, N, stv), SIGMA_E_INVALID_ARG);
    size_t nzero[4] = {1, 0, 1, 1};
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nzero, N, stv), SIGMA_E_INVALID_ARG);
    const sigma_token bad = (sigma_token)t.n_vocab, neg = -1;
    const sigma_token *tbad[4] = {tp[0], tp[1], tp[2], &bad};
    ck_assert_int_eq(sigma_sessions_eval(ss, tbad, nt, N, stv), SIGMA_E_INVALID_ARG);
    tbad[3] = &neg;
    ck_assert_int_eq(sigma_sessions_eval(ss, tbad, nt, N, stv), SIGMA_E_INVALID_ARG);
    for (size_t i = 0; i < N; i++) {
        uint32_t p;
        sigma_session_position(ss[i], &p);
        ck_assert_uint_eq(p, pos_before[i]);
    }
    /* every session still usable: b after a rewind */
    ck_assert_int_eq(sigma_session_rewind(ss[1], 5), SIGMA_OK);
    ck_assert_int_eq(sigma_session_rewind(rs[1], 5), SIGMA_OK);
    at[1] = 5;
    for (size_t i = 0; i < N; i++) {
        tp[i] = toks[i] + at[i];
        nt[i] = 2;
    }
    ck_assert_int_eq(sigma_sessions_eval(ss, tp, nt, N, stv), SIGMA_OK);
    {
        int adv[4] = {1, 1, 1, 1};
        ADVANCE(adv);
    }
#undef ADVANCE
    sigma_session_close(o);
    for (size_t i = 0; i < N; i++) {
        sigma_session_close(ss[i]);
        sigma_session_close(rs[i]);
    }
    close_model(&other);
    close_model(&t);
}
END_TEST

/* ---- fork --------------------------------------------------------------------------- */

START_TEST(test_fork) {
    tmodel t = open_model(_i);
    const cfg cs[] = {{"dense", NULL, 512, 0, 0},
                      {"quant", "kbits=2,vbits=4,group=8,residual=4", 4, 1, 0},
                      {"window", "sinks=2,window=6", 3, 0, 0},
                      {"h2o", "budget=8", 512, 0, 0},
                      {"topv", "k=4", 512, 0, 0}};
    sigma_token toks[40];
    for (size_t k = 0; k < 40; k++) toks[k] = tok_at(1, k, t.n_vocab);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        sigma_session *a = open_cfg(t.m, &cs[c], NULL), *f = NULL, *g = NULL;
        /* fork of an empty session */
        ck_assert_int_eq(sigma_session_fork(a, &g), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(a, toks, 13), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(g, toks, 13), SIGMA_OK);
        same_logits(a, g, cs[c].logits_all ? 13 : 1, t.n_vocab, "fork of empty");
        ck_assert_int_eq(sigma_session_fork(a, &f), SIGMA_OK);
        /* same tokens and logits at once */
        same_logits(a, f, cs[c].logits_all ? 13 : 1, t.n_vocab, "fork");
        const sigma_token *ta, *tf;
        size_t na, nf;
        sigma_session_tokens(a, &ta, &na);
        sigma_session_tokens(f, &tf, &nf);
        ck_assert_uint_eq(na, nf);
        ck_assert(memcmp(ta, tf, na * sizeof *ta) == 0);
        /* and it continues exactly as the original */
        size_t pos = 13;
        const size_t adds[] = {1, 5, 1, 1, 9, 1};
        for (size_t k = 0; k < sizeof adds / sizeof adds[0]; k++) {
            ck_assert_int_eq(sigma_session_eval(a, toks + pos, adds[k]), SIGMA_OK);
            ck_assert_int_eq(sigma_session_eval(f, toks + pos, adds[k]), SIGMA_OK);
            same_logits(a, f, cs[c].logits_all ? adds[k] : 1, t.n_vocab, cs[c].kv);
            pos += adds[k];
        }
        /* the fork is independent: other tokens in it do not touch the
         * original or a fork of it */
        sigma_session *h = NULL;
        ck_assert_int_eq(sigma_session_fork(f, &h), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(f, toks + 3, 2), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(a, toks + pos, 2), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(h, toks + pos, 2), SIGMA_OK);
        same_logits(a, h, cs[c].logits_all ? 2 : 1, t.n_vocab, "fork of fork");
        sigma_session_close(h);
        sigma_session_close(f);
        sigma_session_close(g);
        sigma_session_close(a);
    }
    /* the fork reopens with the strategy's options, which were the
     * caller's (borrowed) string at the original's open */
    {
        char opts[32] = "sinks=1,window=3";
        sigma_session *w = open_cfg(t.m, &(cfg){"window", opts, 512, 0, 0}, NULL), *wf = NULL;
        strcpy(opts, "garbage");
        ck_assert_int_eq(sigma_session_eval(w, toks, 7), SIGMA_OK);
        ck_assert_int_eq(sigma_session_fork(w, &wf), SIGMA_OK);
        sigma_session *r = open_cfg(t.m, &(cfg){"window", "sinks=1,window=3", 512, 0, 0}, NULL);
        ck_assert_int_eq(sigma_session_eval(r, toks, 7), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(r, toks + 7, 2), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(wf, toks + 7, 2), SIGMA_OK);
        same_logits(r, wf, 1, t.n_vocab, "fork keeps the options");
        sigma_session_close(r);
        sigma_session_close(wf);
        sigma_session_close(w);
    }
    /* a host strategy without save/load cannot be forked */
    cfg host = {NULL, NULL, 16, 0, 0};
    sigma_session *a = open_cfg(t.m, &host, NULL), *f = (sigma_session *)&t;
    ck_assert_int_eq(sigma_session_eval(a, toks, 3), SIGMA_OK);
    ck_assert_int_eq(sigma_session_fork(a, &f), SIGMA_E_UNSUPPORTED);
    ck_assert_ptr_null(f);
    ck_assert(strstr(sigma_session_last_error(a), "mine") != NULL);
    ck_assert_int_eq(sigma_session_fork(NULL, &f), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_fork(a, NULL), SIGMA_E_INVALID_ARG);
    sigma_session_close(a);
    close_model(&t);
}
END_TEST

/* ---- the real model (SIGMA_TEST_MODEL) ------------------------------------------------ */

START_TEST(test_real_model_batch) {
    const char *path = getenv("SIGMA_TEST_MODEL");
    if (!path || !*path) {
        fprintf(stderr, "SKIP: SIGMA_TEST_MODEL not set\n");
        return;
    }
    unsetenv("SIGMA_KERNELS"); /* the kernels a host gets */
    tmodel t = {NULL, NULL, 0};
    ck_assert_int_eq(sigma_model_open(path, NULL, &t.m), SIGMA_OK);
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sigma_model_get_info(t.m, &info);
    t.n_vocab = info.n_vocab;
    const cfg cs[NS] = {{"dense", NULL, 512, 0, 0},
                        {"quant", NULL, 512, 0, 0},
                        {"dense", NULL, 4, 1, 0},
                        {"window", "sinks=4,window=8", 512, 0, 0},
                        {"dense", NULL, 512, 0, 0}};
    run_script(&t, cs);
    /* fork continues exactly */
    sigma_session *a = open_cfg(t.m, &cs[0], NULL), *f = NULL;
    sigma_token toks[24];
    for (size_t k = 0; k < 24; k++) toks[k] = tok_at(0, k, t.n_vocab);
    ck_assert_int_eq(sigma_session_eval(a, toks, 16), SIGMA_OK);
    ck_assert_int_eq(sigma_session_fork(a, &f), SIGMA_OK);
    for (size_t k = 16; k < 24; k++) {
        ck_assert_int_eq(sigma_session_eval(a, toks + k, 1), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(f, toks + k, 1), SIGMA_OK);
        same_logits(a, f, 1, t.n_vocab, "real fork");
    }
    sigma_session_close(f);
    sigma_session_close(a);
    sigma_model_close(t.m);
}
END_TEST

/* ---- threads ------------------------------------------------------------------------- */

#define TH 3
#define TS 3
#define TSTEPS 6

typedef struct th_job {
    const sigma_model *m;
    sigma_threadpool *pool;    /* shared by every session of every thread, or NULL */
    uint32_t n_vocab;
    float (*want)[TS][TM_VOCAB];
    int ok;
} th_job;

static const size_t TH_STEP[TSTEPS][TS] = {{4, 1, 2}, {1, 1, 1}, {1, 3, 1},
                                           {1, 1, 1}, {2, 1, 1}, {1, 1, 1}};

/* TS sessions (dense, quant, window) through TSTEPS batched calls; the last
 * logits of every step into got (or compared with want) */
static int th_script(const sigma_model *m, sigma_threadpool *pool, uint32_t n_vocab,
                     float (*want)[TS][TM_VOCAB], int batched) {
    const cfg cs[TS] = {{"dense", NULL, 8, 0, 0}, {"quant", NULL, 2, 0, 0},
                        {"window", "sinks=2,window=4", 8, 0, 0}};
    sigma_session *ss[TS];
    sigma_token toks[TS][32];
    size_t at[TS] = {0};
    int ok = 1;
    for (size_t i = 0; i < TS; i++) {
        sigma_session_params p;
        sigma_session_params_init(&p, sizeof p);
        p.n_ctx = 64;
        p.n_batch = cs[i].n_batch;
        p.n_threads = 2;
        p.threadpool = pool;
        p.kv_strategy = cs[i].kv;
        p.kv_options = cs[i].opts;
        if (sigma_session_open(m, &p, &ss[i]) != SIGMA_OK) return 0;
        for (size_t k = 0; k < 32; k++) toks[i][k] = tok_at(i, k, n_vocab);
    }
    for (size_t s = 0; s < TSTEPS && ok; s++) {
        const sigma_token *tp[TS];
        for (size_t i = 0; i < TS; i++) tp[i] = toks[i] + at[i];
        if (batched) {
            ok = sigma_sessions_eval(ss, tp, TH_STEP[s], TS, NULL) == SIGMA_OK;
        } else {
            for (size_t i = 0; i < TS && ok; i++)
                ok = sigma_session_eval(ss[i], tp[i], TH_STEP[s][i]) == SIGMA_OK;
        }
        for (size_t i = 0; i < TS && ok; i++) {
            const float *lg;
            ok = sigma_session_logits(ss[i], -1, &lg) == SIGMA_OK;
            if (!ok) break;
            if (batched)
                ok = memcmp(lg, want[s][i], TM_VOCAB * sizeof(float)) == 0;
            else
                memcpy(want[s][i], lg, TM_VOCAB * sizeof(float));
            at[i] += TH_STEP[s][i];
        }
    }
    for (size_t i = 0; i < TS; i++) sigma_session_close(ss[i]);
    return ok;
}

static void *th_main(void *arg) {
    th_job *j = arg;
    j->ok = 1;
    for (int r = 0; r < 2 && j->ok; r++) j->ok = th_script(j->m, j->pool, j->n_vocab, j->want, 1);
    return NULL;
}

START_TEST(test_batch_threads) {
    tmodel t = open_model(_i % 2);
    ck_assert_uint_eq(t.n_vocab, TM_VOCAB);
    static float want[TSTEPS][TS][TM_VOCAB];
    ck_assert(th_script(t.m, NULL, t.n_vocab, want, 0));
    sigma_threadpool *pool = NULL;
    if (_i >= 2) ck_assert_int_eq(sigma_threadpool_create(2, NULL, &pool), SIGMA_OK);
    pthread_t th[TH];
    th_job jobs[TH];
    for (int k = 0; k < TH; k++) {
        jobs[k] = (th_job){t.m, pool, t.n_vocab, want, 0};
        ck_assert_int_eq(pthread_create(&th[k], NULL, th_main, &jobs[k]), 0);
    }
    for (int k = 0; k < TH; k++) pthread_join(th[k], NULL);
    for (int k = 0; k < TH; k++) ck_assert_msg(jobs[k].ok, "thread %d: batched logits differ", k);
    sigma_threadpool_destroy(pool);
    close_model(&t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("batch");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_batch_bitwise, 0, 8);
    tcase_add_loop_test(tc, test_batch_failures, 0, 2);
    tcase_add_loop_test(tc, test_fork, 0, 2);
    tcase_add_test(tc, test_real_model_batch);
    tcase_add_loop_test(tc, test_batch_threads, 0, 4);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
