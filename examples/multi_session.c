/* multi_session.c — one model, several sessions, a few host threads.
 *
 *   multi_session MODEL [N_SESSIONS]
 *
 * A model is immutable after open, so every thread may use it. Each host
 * thread owns its own session (a session belongs to one thread at a time).
 * All sessions share ONE sigma_threadpool: they take turns using its
 * workers instead of each starting its own threads, which keeps a busy
 * server from oversubscribing the CPU. Decoding is greedy, so sessions given
 * the same prompt must produce the same text; the program checks that. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sigma/sigma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SESSIONS 16

static const char *const prompts[] = {
    "Once upon a time", "The weather today is", "My favourite book is", "In the morning",
};
#define N_PROMPTS (sizeof prompts / sizeof prompts[0])

typedef struct {
    const sigma_model *model;     /* shared, read-only */
    sigma_threadpool *pool;       /* shared */
    const char *prompt;
    char text[2048];              /* this job's output */
    size_t len;
    int status;
} job;

static int collect(void *user, const char *text, size_t len) {
    job *j = user;
    if (j->len + len >= sizeof j->text) return 1; /* buffer full: stop */
    memcpy(j->text + j->len, text, len);
    j->len += len;
    j->text[j->len] = '\0';
    return 0;
}

static void *serve(void *arg) {
    job *j = arg;
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 256;
    sp.threadpool = j->pool; /* borrowed: the pool outlives the session */
    sigma_session *s;
    j->status = sigma_session_open(j->model, &sp, &s);
    if (j->status != SIGMA_OK) return NULL;
    sigma_generate_params gp;
    sigma_generate_params_init(&gp, sizeof gp); /* sampler NULL: greedy */
    gp.max_tokens = 24;
    gp.on_piece = collect;
    gp.on_piece_user = j;
    j->status = sigma_session_generate(s, j->prompt, &gp, NULL);
    sigma_session_close(s);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [N_SESSIONS]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 6;
    if (n < 1 || n > MAX_SESSIONS) n = 6;
    sigma_model *model;
    int st = sigma_model_open(argv[1], NULL, &model);
    if (st != SIGMA_OK) {
        fprintf(stderr, "open: %s\n", sigma_strerror(st));
        return 1;
    }
    sigma_threadpool *pool;
    if ((st = sigma_threadpool_create(2, NULL, &pool)) != SIGMA_OK) {
        fprintf(stderr, "threadpool: %s\n", sigma_strerror(st));
        sigma_model_close(model);
        return 1;
    }
    static job jobs[MAX_SESSIONS];
    pthread_t th[MAX_SESSIONS];
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){.model = model, .pool = pool, .prompt = prompts[i % N_PROMPTS]};
        pthread_create(&th[i], NULL, serve, &jobs[i]);
    }
    int rc = 0;
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        if (jobs[i].status != SIGMA_OK) {
            fprintf(stderr, "session %d: %s\n", i, sigma_strerror(jobs[i].status));
            rc = 1;
            continue;
        }
        printf("[%d] %s%s\n", i, jobs[i].prompt, jobs[i].text);
        /* same prompt, greedy decoding: same text, whatever the interleaving */
        if (i >= (int)N_PROMPTS && strcmp(jobs[i].text, jobs[i - N_PROMPTS].text) != 0) {
            fprintf(stderr, "session %d differs from session %d\n", i, i - (int)N_PROMPTS);
            rc = 1;
        }
    }
    /* Close order: sessions (done in the threads), then pool, then model. */
    sigma_threadpool_destroy(pool);
    sigma_model_close(model);
    return rc;
}
