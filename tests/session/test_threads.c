/* Concurrency promises of sigma.h (suite `threads`, also run under
 * ThreadSanitizer):
 *  - two models opened with different log callbacks and user pointers, used
 *    from two threads at once (opens that succeed and fail, sessions, eval):
 *    every callback invocation carries its own model's user pointer and
 *    only that model's messages;
 *  - closing sessions (own pools and a shared pool) while other sessions on
 *    the same model are evaluating on other threads is safe, and the
 *    survivors' logits equal a serial run bit for bit. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigma/sigma.h"
#include "tiny_model.h"

/* ---- (a) log callbacks never cross ------------------------------------------------ */

/* What one model's log callback may and may not see. Each marker is a
 * piece of a message only that model's calls produce. */
typedef struct log_ctx {
    const char *own[3];
    const char *other[3];
    atomic_int calls, own_hits, wrong_user, foreign;
} log_ctx;

static log_ctx ctx_a = {.own = {"n_ctx 32,", "GGUF version 1000001", "opened llama model"},
                        .other = {"n_ctx 48,", "GGUF version 1000002", "opened sigma model"}};
static log_ctx ctx_b = {.own = {"n_ctx 48,", "GGUF version 1000002", "opened sigma model"},
                        .other = {"n_ctx 32,", "GGUF version 1000001", "opened llama model"}};

static void check_message(log_ctx *expect, void *user, const char *message) {
    atomic_fetch_add(&expect->calls, 1);
    if (user != expect) atomic_fetch_add(&expect->wrong_user, 1);
    for (int i = 0; i < 3; i++) {
        if (strstr(message, expect->own[i])) atomic_fetch_add(&expect->own_hits, 1);
        if (strstr(message, expect->other[i])) atomic_fetch_add(&expect->foreign, 1);
    }
}

static void log_a(void *user, sigma_log_level level, const char *message) {
    (void)level;
    check_message(&ctx_a, user, message);
}

static void log_b(void *user, sigma_log_level level, const char *message) {
    (void)level;
    check_message(&ctx_b, user, message);
}

typedef struct side {
    int kind;                  /* tiny model kind */
    sigma_log_fn fn;
    log_ctx *ctx;
    uint32_t n_ctx;            /* appears in the session-open log line */
    uint32_t bad_version;      /* appears in the failed-open log line */
    uint8_t *mem;
    size_t size;
    sigma_model *model;
} side;

static side sides[2];
static pthread_barrier_t barrier;

static void model_params(const side *sd, sigma_model_params *mp) {
    sigma_model_params_init(mp, sizeof *mp);
    mp->log_fn = sd->fn;
    mp->log_user = sd->ctx;
    mp->log_level = SIGMA_LOG_DEBUG;
}

/* A failed open that logs: a GGUF header with an unknown version. */
static int failed_open(const side *sd) {
    uint8_t junk[64];
    memset(junk, 0, sizeof junk);
    memcpy(junk, "GGUF", 4);
    for (int i = 0; i < 4; i++) junk[4 + i] = (uint8_t)(sd->bad_version >> (8 * i));
    sigma_model_params mp;
    model_params(sd, &mp);
    sigma_model *m = NULL;
    return sigma_model_open_memory(junk, sizeof junk, &mp, &m) == SIGMA_E_FORMAT && m == NULL;
}

static int use_model(const side *sd) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = sd->n_ctx;
    p.n_threads = 1;
    sigma_session *s = NULL;
    if (sigma_session_open(sd->model, &p, &s) != SIGMA_OK) return 0;
    const sigma_token t[4] = {1, 2, 3, 4};
    int ok = sigma_session_eval(s, t, 4) == SIGMA_OK;
    sigma_token bad = TM_VOCAB;
    ok = ok && sigma_session_eval(s, &bad, 1) == SIGMA_E_INVALID_ARG;
    /* a failed session open (reported on the model) */
    p.n_ctx = 1u << 30;
    sigma_session *s2 = NULL;
    ok = ok && sigma_session_open(sd->model, &p, &s2) == SIGMA_E_INVALID_ARG;
    sigma_session_close(s);
    return ok;
}

static void *log_thread(void *arg) {
    intptr_t me = (intptr_t)arg;
    side *mine = &sides[me];
    long ok = 1;
    /* both threads open their model at the same time */
    pthread_barrier_wait(&barrier);
    sigma_model_params mp;
    model_params(mine, &mp);
    ok &= failed_open(mine);
    ok &= sigma_model_open_memory(mine->mem, mine->size, &mp, &mine->model) == SIGMA_OK;
    pthread_barrier_wait(&barrier);
    if (!ok) return (void *)0;
    /* then each thread uses both models, in opposite orders */
    for (int it = 0; it < 12 && ok; it++) {
        side *sd = &sides[(me + it) % 2];
        ok &= use_model(sd);
        ok &= failed_open(sd);
    }
    return (void *)ok;
}

START_TEST(test_log_callbacks_do_not_cross) {
    sides[0] = (side){0, log_a, &ctx_a, 32, 1000001, NULL, 0, NULL};
    sides[1] = (side){1, log_b, &ctx_b, 48, 1000002, NULL, 0, NULL};
    for (int i = 0; i < 2; i++) ck_assert_int_eq(tm_build(sides[i].kind, &sides[i].mem, &sides[i].size), 0);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, 2), 0);
    pthread_t th[2];
    for (intptr_t i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, log_thread, (void *)i), 0);
    for (int i = 0; i < 2; i++) {
        void *ok = NULL;
        pthread_join(th[i], &ok);
        ck_assert_msg(ok != NULL, "thread %d: a call failed", i);
    }
    pthread_barrier_destroy(&barrier);
    log_ctx *c[2] = {&ctx_a, &ctx_b};
    for (int i = 0; i < 2; i++) {
        /* 1 open + 13 failed opens + 12 session opens, at least */
        ck_assert_int_ge(atomic_load(&c[i]->own_hits), 26);
        ck_assert_int_ge(atomic_load(&c[i]->calls), atomic_load(&c[i]->own_hits));
        ck_assert_int_eq(atomic_load(&c[i]->wrong_user), 0);
        ck_assert_int_eq(atomic_load(&c[i]->foreign), 0);
        sigma_model_close(sides[i].model);
        free(sides[i].mem);
    }
}
END_TEST

/* ---- (b) closing sessions while others evaluate ------------------------------------ */

static const sigma_token PROMPT[20] = {1, 7, 3, 49, 0, 22, 5, 5, 13, 40, 2, 8, 31, 17, 9, 44, 6, 11, 28, 19};

#define N_SURVIVORS 3

typedef struct survivor {
    const sigma_model *m;
    sigma_threadpool *pool;
    int offset;
    float logits[TM_VOCAB];
    int status;
} survivor;

static atomic_int survivors_left;
static atomic_int victims_closed;

/* Evaluate a sequence several times (rewinding), keep the last logits. */
static void run_survivor(survivor *a, int reps) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = 64;
    p.n_batch = 5;
    p.n_threads = 1;
    p.threadpool = a->pool;
    sigma_session *s = NULL;
    a->status = sigma_session_open(a->m, &p, &s);
    if (a->status) return;
    sigma_token t[16];
    for (int i = 0; i < 16; i++) t[i] = PROMPT[(i + a->offset) % 20];
    for (int rep = 0; rep < reps && !a->status; rep++) {
        sigma_session_rewind(s, 0);
        for (int i = 0; i < 16 && !a->status; i += 4) a->status = sigma_session_eval(s, t + i, 4);
    }
    const float *lg = NULL;
    if (!a->status) a->status = sigma_session_logits(s, -1, &lg);
    if (!a->status) memcpy(a->logits, lg, sizeof a->logits);
    sigma_session_close(s);
}

static void *survivor_main(void *arg) {
    survivor *a = arg;
    /* start once the closers are running */
    while (atomic_load(&victims_closed) < 2) sched_yield();
    run_survivor(a, 6);
    atomic_fetch_sub(&survivors_left, 1);
    return NULL;
}

typedef struct closer {
    const sigma_model *m;
    sigma_threadpool *pool;  /* NULL: own pool */
    int failures;
} closer;

/* Open, evaluate and close sessions until every survivor is done. Some
 * sessions are closed half-way through their work (after an eval, with
 * logits and cache live); some share the survivors' pool. */
static void *closer_main(void *arg) {
    closer *c = arg;
    int round = 0;
    do {
        sigma_session_params p;
        sigma_session_params_init(&p, sizeof p);
        p.n_ctx = 32;
        p.n_batch = 3;
        p.n_threads = (round % 3) + 1;
        p.threadpool = round % 2 ? c->pool : NULL;
        sigma_session *s = NULL;
        if (sigma_session_open(c->m, &p, &s) != SIGMA_OK) {
            c->failures++;
            break;
        }
        if (sigma_session_eval(s, PROMPT + round % 8, 1 + round % 7) != SIGMA_OK) c->failures++;
        sigma_session_close(s);
        atomic_fetch_add(&victims_closed, 1);
        round++;
    } while (atomic_load(&survivors_left) > 0);
    return NULL;
}

START_TEST(test_close_while_others_evaluate) {
    uint8_t *mem;
    sigma_model *m = tm_open(_i, &mem);
    ck_assert_ptr_nonnull(m);
    sigma_threadpool *shared = NULL;
    ck_assert_int_eq(sigma_threadpool_create(2, NULL, &shared), SIGMA_OK);
    static survivor serial[N_SURVIVORS], par[N_SURVIVORS];
    for (int i = 0; i < N_SURVIVORS; i++) {
        serial[i] = (survivor){m, NULL, 3 * i, {0}, 0};
        run_survivor(&serial[i], 6);
        ck_assert_int_eq(serial[i].status, SIGMA_OK);
    }
    ck_assert(memcmp(serial[0].logits, serial[1].logits, sizeof serial[0].logits) != 0);

    atomic_store(&survivors_left, N_SURVIVORS);
    atomic_store(&victims_closed, 0);
    closer cl[2] = {{m, shared, 0}, {m, shared, 0}};
    pthread_t tc[2], ts[N_SURVIVORS];
    for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&tc[i], NULL, closer_main, &cl[i]), 0);
    for (int i = 0; i < N_SURVIVORS; i++) {
        par[i] = (survivor){m, i == 1 ? shared : NULL, 3 * i, {0}, 0};
        ck_assert_int_eq(pthread_create(&ts[i], NULL, survivor_main, &par[i]), 0);
    }
    for (int i = 0; i < N_SURVIVORS; i++) pthread_join(ts[i], NULL);
    for (int i = 0; i < 2; i++) pthread_join(tc[i], NULL);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(cl[i].failures, 0);
    ck_assert_int_ge(atomic_load(&victims_closed), 2);
    for (int i = 0; i < N_SURVIVORS; i++) {
        ck_assert_int_eq(par[i].status, SIGMA_OK);
        ck_assert_mem_eq(par[i].logits, serial[i].logits, sizeof par[i].logits);
    }
    sigma_threadpool_destroy(shared);
    sigma_model_close(m);
    free(mem);
}
END_TEST

int main(void) {
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_log_callbacks_do_not_cross);
    tcase_add_loop_test(tc, test_close_while_others_evaluate, 0, 2);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
