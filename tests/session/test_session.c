/* Sessions on tiny models built in the test (a `llama` GQA model with
 * quantized weights and a `sigma` DiffQKV model with AugQ), and on the real
 * model when SIGMA_TEST_MODEL is set. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "tiny_model.h"

#define VOCAB TM_VOCAB
#include "sigma/sigma.h"

static sigma_model *tiny_model(int kind, uint8_t **mem) {
    size_t size;
    ck_assert_int_eq(tm_build(kind, mem, &size), 0);
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    char err[256] = "";
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *m = NULL;
    int st = sigma_model_open_memory(*mem, size, &mp, &m);
    ck_assert_msg(st == SIGMA_OK, "tiny model %d: %s", kind, err);
    return m;
}

/* dense with these options (NULL: the default, f16) */
static sigma_session *open_session_kv(const sigma_model *m, uint32_t n_ctx, uint32_t n_batch,
                                      uint32_t n_threads, int logits_all, const char *kv_options) {
    sigma_session_params p;
    ck_assert_int_eq(sigma_session_params_init(&p, sizeof p), SIGMA_OK);
    p.kv_options = kv_options;
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    p.n_threads = n_threads;
    p.logits_all = logits_all;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    return s;
}

static sigma_session *open_session(const sigma_model *m, uint32_t n_ctx, uint32_t n_batch,
                                   uint32_t n_threads, int logits_all) {
    return open_session_kv(m, n_ctx, n_batch, n_threads, logits_all, NULL);
}

static const sigma_token PROMPT[20] = {1, 7, 3, 49, 0, 22, 5, 5, 13, 40, 2, 8, 31, 17, 9, 44, 6, 11, 28, 19};

static void assert_close(const float *a, const float *b, size_t n, double tol, const char *what) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(a[i] - b[i]) <= tol * (1 + fabs(b[i])), "%s: [%zu] %.8g vs %.8g", what, i,
                      (double)a[i], (double)b[i]);
}

/* logits of every position, one token per eval (dense with kv_options) */
static void one_by_one_kv(const sigma_model *m, size_t n, float *out, uint32_t threads,
                          const char *kv_options) {
    sigma_session *s = open_session_kv(m, 64, 512, threads, 0, kv_options);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(sigma_session_eval(s, PROMPT + i, 1), SIGMA_OK);
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        memcpy(out + i * VOCAB, lg, VOCAB * sizeof(float));
    }
    sigma_session_close(s);
}

static void one_by_one(const sigma_model *m, size_t n, float *out, uint32_t threads) {
    one_by_one_kv(m, n, out, threads, NULL);
}

START_TEST(test_batched_equals_sequential) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    float seq[20 * VOCAB];
    one_by_one(m, 20, seq, 1);
    /* logits are not constant: the test can tell positions apart */
    ck_assert(memcmp(seq, seq + VOCAB, VOCAB * sizeof(float)) != 0);
    const uint32_t batches[] = {512, 7, 3, 1};
    for (size_t b = 0; b < 4; b++) {
        sigma_session *s = open_session(m, 64, batches[b], 2, 1);
        ck_assert_int_eq(sigma_session_eval(s, PROMPT, 20), SIGMA_OK);
        for (int i = 0; i < 20; i++) {
            const float *lg;
            ck_assert_int_eq(sigma_session_logits(s, i, &lg), SIGMA_OK);
            assert_close(lg, seq + i * VOCAB, VOCAB, 1e-5, "batched vs sequential");
        }
        const float *last, *l19;
        ck_assert_int_eq(sigma_session_logits(s, -1, &last), SIGMA_OK);
        ck_assert_int_eq(sigma_session_logits(s, 19, &l19), SIGMA_OK);
        ck_assert_ptr_eq(last, l19);
        ck_assert_int_eq(sigma_session_logits(s, 20, &last), SIGMA_E_INVALID_ARG);
        sigma_session_close(s);
    }
    /* mixed eval sizes in one session: 5 + 1 + 9 + 5 */
    sigma_session *s = open_session(m, 64, 4, 1, 0);
    const size_t parts[] = {5, 1, 9, 5};
    size_t off = 0;
    for (int p = 0; p < 4; p++) {
        ck_assert_int_eq(sigma_session_eval(s, PROMPT + off, parts[p]), SIGMA_OK);
        off += parts[p];
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        assert_close(lg, seq + (off - 1) * VOCAB, VOCAB, 1e-5, "mixed sizes");
        ck_assert_int_eq(sigma_session_logits(s, 0, &lg), off - parts[p] == off - 1 ? SIGMA_OK : SIGMA_E_INVALID_ARG);
    }
    uint32_t pos;
    ck_assert_int_eq(sigma_session_position(s, &pos), SIGMA_OK);
    ck_assert_uint_eq(pos, 20);
    const sigma_token *toks;
    size_t nt;
    ck_assert_int_eq(sigma_session_tokens(s, &toks, &nt), SIGMA_OK);
    ck_assert_uint_eq(nt, 20);
    ck_assert_mem_eq(toks, PROMPT, sizeof PROMPT);
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
    size_t kvb;
    ck_assert_int_eq(sigma_session_kv_bytes(s, &kvb), SIGMA_OK);
    /* kv_bytes_per_token counts an f32 dense cache; the default is f16 */
    ck_assert_uint_eq(2 * kvb, 20 * info.kv_bytes_per_token);
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
}
END_TEST

START_TEST(test_rewind) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    float seq[20 * VOCAB];
    one_by_one(m, 20, seq, 1);
    sigma_session *s = open_session(m, 64, 8, 2, 0);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 12), SIGMA_OK);
    ck_assert_int_eq(sigma_session_rewind(s, 13), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_rewind(s, 6), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_E_STATE);
    uint32_t pos;
    sigma_session_position(s, &pos);
    ck_assert_uint_eq(pos, 6);
    /* continue with different tokens, then rewind again and take the original path */
    sigma_token other[4] = {3, 3, 3, 3};
    ck_assert_int_eq(sigma_session_eval(s, other, 4), SIGMA_OK);
    ck_assert_int_eq(sigma_session_rewind(s, 6), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT + 6, 14), SIGMA_OK);
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    assert_close(lg, seq + 19 * VOCAB, VOCAB, 1e-5, "rewind then continue");
    ck_assert_int_eq(sigma_session_rewind(s, 0), SIGMA_OK);
    size_t kvb;
    sigma_session_kv_bytes(s, &kvb);
    ck_assert_uint_eq(kvb, 0);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 3), SIGMA_OK);
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    assert_close(lg, seq + 2 * VOCAB, VOCAB, 1e-5, "rewind to 0");
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
}
END_TEST

START_TEST(test_threads_bitwise) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    float out[3][20 * VOCAB];
    const uint32_t threads[3] = {1, 4, 3};
    for (int t = 0; t < 3; t++) {
        sigma_session *s = open_session(m, 64, 6, threads[t], 1);
        ck_assert_int_eq(sigma_session_eval(s, PROMPT, 20), SIGMA_OK);
        for (int i = 0; i < 20; i++) {
            const float *lg;
            ck_assert_int_eq(sigma_session_logits(s, i, &lg), SIGMA_OK);
            memcpy(out[t] + i * VOCAB, lg, VOCAB * sizeof(float));
        }
        sigma_session_close(s);
    }
    ck_assert_mem_eq(out[0], out[1], sizeof out[0]);
    ck_assert_mem_eq(out[0], out[2], sizeof out[0]);
    sigma_model_close(m);
    free(mem);
}
END_TEST

typedef struct par_arg {
    const sigma_model *m;
    sigma_threadpool *pool;   /* NULL: own pool of 1 thread */
    int offset;
    float logits[VOCAB];
    int status;
} par_arg;

static void *par_main(void *arg) {
    par_arg *a = arg;
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = 64;
    p.n_batch = 5;
    p.n_threads = 1;
    p.threadpool = a->pool;
    sigma_session *s = NULL;
    a->status = sigma_session_open(a->m, &p, &s);
    if (a->status) return NULL;
    sigma_token t[12];
    for (int i = 0; i < 12; i++) t[i] = PROMPT[(i + a->offset) % 20];
    for (int rep = 0; rep < 3 && !a->status; rep++) {
        sigma_session_rewind(s, 0);
        a->status = sigma_session_eval(s, t, 12);
    }
    const float *lg = NULL;
    if (!a->status) a->status = sigma_session_logits(s, -1, &lg);
    if (!a->status) memcpy(a->logits, lg, sizeof a->logits);
    sigma_session_close(s);
    return NULL;
}

START_TEST(test_parallel_sessions) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    static par_arg serial[8], par[8];
    sigma_threadpool *shared = NULL;
    ck_assert_int_eq(sigma_threadpool_create(3, NULL, &shared), SIGMA_OK);
    for (int i = 0; i < 8; i++) {
        serial[i].m = m;
        serial[i].offset = i;
        par_main(&serial[i]);
        ck_assert_int_eq(serial[i].status, SIGMA_OK);
    }
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        par[i].m = m;
        par[i].offset = i;
        par[i].pool = i % 2 ? shared : NULL; /* half share one pool */
        ck_assert_int_eq(pthread_create(&th[i], NULL, par_main, &par[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(par[i].status, SIGMA_OK);
        ck_assert_mem_eq(par[i].logits, serial[i].logits, sizeof par[i].logits);
    }
    ck_assert(memcmp(serial[0].logits, serial[1].logits, sizeof serial[0].logits) != 0);
    sigma_threadpool_destroy(shared);
    sigma_model_close(m);
    free(mem);
}
END_TEST

START_TEST(test_context_full) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    sigma_session *s = open_session(m, 16, 4, 2, 0);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 10), SIGMA_OK);
    const float *lg;
    float before[VOCAB];
    sigma_session_logits(s, -1, &lg);
    memcpy(before, lg, sizeof before);
    size_t kv0;
    sigma_session_kv_bytes(s, &kv0);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT + 10, 7), SIGMA_E_CONTEXT_FULL);
    ck_assert_str_ne(sigma_session_last_error(s), "");
    uint32_t pos;
    sigma_session_position(s, &pos);
    ck_assert_uint_eq(pos, 10);
    size_t kv1;
    sigma_session_kv_bytes(s, &kv1);
    ck_assert_uint_eq(kv0, kv1);
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    ck_assert_mem_eq(lg, before, sizeof before);
    /* exactly full is fine; one more is not */
    ck_assert_int_eq(sigma_session_eval(s, PROMPT + 10, 6), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 1), SIGMA_E_CONTEXT_FULL);
    /* bad tokens leave it unchanged too */
    ck_assert_int_eq(sigma_session_rewind(s, 10), SIGMA_OK);
    sigma_token bad[2] = {1, VOCAB};
    ck_assert_int_eq(sigma_session_eval(s, bad, 2), SIGMA_E_INVALID_ARG);
    bad[1] = -1;
    ck_assert_int_eq(sigma_session_eval(s, bad, 2), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_eval(s, bad, 0), SIGMA_E_INVALID_ARG);
    sigma_session_position(s, &pos);
    ck_assert_uint_eq(pos, 10);
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
}
END_TEST

typedef struct cancel_ctx { int calls, cancel_at; } cancel_ctx;
static int cancel_cb(void *user) {
    cancel_ctx *c = user;
    return ++c->calls >= c->cancel_at;
}

START_TEST(test_cancel) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    float seq[20 * VOCAB];
    one_by_one(m, 20, seq, 1);
    cancel_ctx cc = {0, 1 << 30};
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = 64;
    p.n_batch = 4;
    p.n_threads = 2;
    p.cancel_fn = cancel_cb;
    p.cancel_user = &cc;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 8), SIGMA_OK);
    ck_assert_int_gt(cc.calls, 2); /* polled between layers and batches */
    const float *lg;
    for (int at = 1; at < 12; at += 2) {
        cc.calls = 0;
        cc.cancel_at = at; /* stop in the middle of the second batch, etc. */
        ck_assert_int_eq(sigma_session_eval(s, PROMPT + 8, 9), SIGMA_E_CANCELLED);
        uint32_t pos;
        sigma_session_position(s, &pos);
        ck_assert_uint_eq(pos, 8);
        size_t kvb;
        sigma_session_kv_bytes(s, &kvb);
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        assert_close(lg, seq + 7 * VOCAB, VOCAB, 1e-5, "logits after cancel");
    }
    cc.calls = 0;
    cc.cancel_at = 1 << 30;
    ck_assert_int_eq(sigma_session_eval(s, PROMPT + 8, 12), SIGMA_OK);
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    assert_close(lg, seq + 19 * VOCAB, VOCAB, 1e-5, "continue after cancel");
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
}
END_TEST

START_TEST(test_bad_params) {
    uint8_t *mem;
    sigma_model *m = tiny_model(0, &mem);
    sigma_session_params p;
    sigma_session *s = (sigma_session *)&p;
    ck_assert_int_eq(sigma_session_params_init(NULL, sizeof p), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_params_init(&p, 2), SIGMA_E_INVALID_ARG);
    struct { sigma_session_params p; char extra[16]; } big;
    ck_assert_int_eq(sigma_session_params_init(&big.p, sizeof big), SIGMA_OK);
    ck_assert_uint_eq(big.p.n_batch, 512);
    ck_assert_int_eq(sigma_session_open(m, &big.p, &s), SIGMA_OK); /* newer, longer struct */
    sigma_session_close(s);
    struct { uint32_t struct_size; uint32_t n_ctx; } old = {8, 32}; /* oldest, shortest struct */
    ck_assert_int_eq(sigma_session_open(m, (const sigma_session_params *)&old, &s), SIGMA_OK);
    sigma_token t[40] = {0};
    ck_assert_int_eq(sigma_session_eval(s, t, 33), SIGMA_E_CONTEXT_FULL);
    sigma_session_close(s);

    struct { uint32_t field; uint32_t value; } bad[] = {
        {0, (1u << 20) + 1}, {0, UINT32_MAX}, {1, (1u << 16) + 1}, {1, UINT32_MAX}, {2, 1025}, {2, UINT32_MAX}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sigma_session_params_init(&p, sizeof p);
        if (bad[i].field == 0) p.n_ctx = bad[i].value;
        if (bad[i].field == 1) p.n_batch = bad[i].value;
        if (bad[i].field == 2) p.n_threads = bad[i].value;
        s = (sigma_session *)&p;
        ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_E_INVALID_ARG);
        ck_assert_ptr_null(s);
    }
    sigma_session_params_init(&p, sizeof p);
    p.kv_strategy = "no-such-strategy";
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_E_NOT_FOUND);
    p.kv_strategy = "dense";
    p.kv_options = "type=int3";
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_E_INVALID_ARG);
    char msg[256];
    sigma_model_last_error(m, msg, sizeof msg);
    ck_assert(strstr(msg, "type=int3") != NULL);
    p.kv_options = "type=f16";
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, t, 3), SIGMA_OK);
    ck_assert_int_eq(sigma_session_save_memory(s, NULL, 0, &(size_t){0}), SIGMA_E_BUFFER_TOO_SMALL);
    sigma_session_close(s);
    ck_assert_int_eq(sigma_session_open(NULL, NULL, &s), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_open(m, NULL, NULL), SIGMA_E_INVALID_ARG);
    /* NULL params: defaults (n_ctx from the model, capped) */
    ck_assert_int_eq(sigma_session_open(m, NULL, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, t, 40), SIGMA_OK);
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
}
END_TEST

/* A custom strategy wrapping dense-like storage in the test: the session
 * must drive it only through the interface. */
typedef struct my_kv { sigma_kv_layout lay; float *k, *v; uint32_t n; int appends; } my_kv;
static int my_create(void *user, const sigma_kv_layout *l, const char *o, void **st, char *e, size_t es) {
    (void)user; (void)o; (void)e; (void)es;
    my_kv *s = calloc(1, sizeof *s);
    s->lay = *l;
    s->k = calloc((size_t)l->n_layers * l->n_ctx * l->n_k_heads * l->d_qk, sizeof(float));
    s->v = calloc((size_t)l->n_layers * l->n_ctx * l->n_v_heads * l->d_v, sizeof(float));
    *st = s;
    return SIGMA_OK;
}
static void my_destroy(void *st) { my_kv *s = st; free(s->k); free(s->v); free(s); }
static int my_append(void *st, uint32_t layer, uint32_t pos0, uint32_t n, const float *k, const float *v) {
    my_kv *s = st;
    size_t kr = (size_t)s->lay.n_k_heads * s->lay.d_qk, vr = (size_t)s->lay.n_v_heads * s->lay.d_v;
    if (pos0 + n > s->lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    memcpy(s->k + ((size_t)layer * s->lay.n_ctx + pos0) * kr, k, n * kr * sizeof(float));
    memcpy(s->v + ((size_t)layer * s->lay.n_ctx + pos0) * vr, v, n * vr * sizeof(float));
    if (layer == 0) s->n = pos0 + n;
    s->appends++;
    return SIGMA_OK;
}
static int my_attend(void *st, const sigma_kv_attend_args *a) {
    my_kv *s = st;
    const sigma_kv_layout *L = &s->lay;
    size_t kr = (size_t)L->n_k_heads * L->d_qk, vr = (size_t)L->n_v_heads * L->d_v;
    for (uint32_t j = 0; j < a->n_queries; j++)
        for (uint32_t h = 0; h < L->n_q_heads; h++) {
            const float *q = a->q + ((size_t)j * L->n_q_heads + h) * L->d_qk;
            float *o = a->out + ((size_t)j * L->n_q_heads + h) * L->d_v;
            uint32_t kh = h * L->n_k_heads / L->n_q_heads, vh = h * L->n_v_heads / L->n_q_heads;
            uint32_t np = a->pos0 + j + 1;
            double *sc = malloc(np * sizeof *sc), mx = -1e300, sum = 0;
            for (uint32_t p = 0; p < np; p++) {
                const float *kk = s->k + ((size_t)a->layer * L->n_ctx + p) * kr + kh * L->d_qk;
                sc[p] = sigma_kernel_dot_f32(q, kk, L->d_qk) * a->scale;
                if (sc[p] > mx) mx = sc[p];
            }
            for (uint32_t p = 0; p < np; p++) sum += (sc[p] = exp(sc[p] - mx));
            memset(o, 0, L->d_v * sizeof(float));
            for (uint32_t p = 0; p < np; p++)
                sigma_kernel_axpy_f32(o, (float)(sc[p] / sum),
                                      s->v + ((size_t)a->layer * L->n_ctx + p) * vr + vh * L->d_v, L->d_v);
            free(sc);
        }
    return SIGMA_OK;
}
static int my_truncate(void *st, uint32_t n) { my_kv *s = st; if (s->n > n) s->n = n; return SIGMA_OK; }
static size_t my_bytes(void *st) { my_kv *s = st; return s->n * 1000u; }

START_TEST(test_custom_strategy) {
    uint8_t *mem;
    sigma_model *m = tiny_model(_i, &mem);
    float seq[20 * VOCAB];
    one_by_one_kv(m, 20, seq, 1, "type=f32"); /* `mine` keeps f32 rows */
    sigma_kv_strategy mine = {SIGMA_KV_STRATEGY_VERSION, "mine", 0, NULL, my_create, my_destroy,
                              my_append, my_attend, my_truncate, my_bytes, NULL, NULL};
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = 32;
    p.n_batch = 6;
    p.n_threads = 2;
    p.kv_custom = &mine;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 20), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    assert_close(lg, seq + 19 * VOCAB, VOCAB, 1e-4, "custom strategy");
    size_t kvb;
    sigma_session_kv_bytes(s, &kvb);
    ck_assert_uint_eq(kvb, 20000);
    sigma_session_close(s);
    mine.attend = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_E_INVALID_ARG);
    sigma_model_close(m);
    free(mem);
}
END_TEST

/* The real model (SIGMA_TEST_MODEL): batched equals sequential, and the
 * argmax continuation of a fixed prompt is stable across thread counts. */
START_TEST(test_real_model) {
    const char *path = getenv("SIGMA_TEST_MODEL");
    if (!path || !*path) {
        fprintf(stderr, "SKIP: SIGMA_TEST_MODEL not set\n");
        return;
    }
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open(path, NULL, &m), SIGMA_OK);
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sigma_model_get_info(m, &info);
    const sigma_token toks[8] = {1, 504, 3458, 282, 4649, 314, 253, 1345};
    sigma_session *a = open_session(m, 64, 512, 2, 1), *b = open_session(m, 64, 512, 1, 0);
    ck_assert_int_eq(sigma_session_eval(a, toks, 8), SIGMA_OK);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(sigma_session_eval(b, toks + i, 1), SIGMA_OK);
        const float *la, *lb;
        ck_assert_int_eq(sigma_session_logits(a, i, &la), SIGMA_OK);
        ck_assert_int_eq(sigma_session_logits(b, -1, &lb), SIGMA_OK);
        for (uint32_t v = 0; v < info.n_vocab; v++)
            ck_assert_msg(fabs(la[v] - lb[v]) <= 1e-4 * (1 + fabs(lb[v])), "pos %d tok %u: %g vs %g",
                          i, v, (double)la[v], (double)lb[v]);
    }
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_batched_equals_sequential, 0, 2);
    tcase_add_loop_test(tc, test_rewind, 0, 2);
    tcase_add_loop_test(tc, test_threads_bitwise, 0, 2);
    tcase_add_loop_test(tc, test_parallel_sessions, 0, 2);
    tcase_add_loop_test(tc, test_context_full, 0, 2);
    tcase_add_loop_test(tc, test_cancel, 0, 2);
    tcase_add_loop_test(tc, test_custom_strategy, 0, 2);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_real_model);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
