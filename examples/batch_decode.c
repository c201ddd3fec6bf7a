/* batch_decode.c — decode several prompts at once.
 *
 *   batch_decode MODEL [N_TOKENS]
 *
 * A shared prefix is evaluated once in one session; every prompt gets a
 * fork of it (sigma_session_fork copies the KV cache instead of evaluating
 * the prefix again). Then all the sessions advance together: each
 * sigma_sessions_eval call runs ONE forward pass for all of them, so the
 * weights are read once per step instead of once per session. The first
 * call evaluates the prompts (different lengths), the following ones one
 * greedy token per session; a session that reaches an end-of-generation
 * token leaves the batch. Finally each prompt is decoded again alone, and
 * the program checks that the texts are the same (batched logits are
 * bitwise equal to one session at a time). */
#include <sigma/sigma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PROMPTS 4
#define MAX_TOKENS 256

static const char *const prefix = "Here are four short stories.";
static const char *const prompts[N_PROMPTS] = {
    " Once upon a time", " The weather today is", " My favourite book is", " In the morning",
};

typedef struct job {
    sigma_session *s;
    sigma_token prompt[64];
    size_t n_prompt;
    sigma_token out[MAX_TOKENS];
    size_t n_out;
    int done;
} job;

static sigma_token argmax(const float *l, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return (sigma_token)best;
}

/* Pick the next token of every unfinished job from its logits; 1 if any
 * job goes on. */
static int pick(const sigma_model *m, job *jobs, size_t n, uint32_t n_vocab, size_t max_out) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        job *j = &jobs[i];
        if (j->done) continue;
        const float *lg;
        if (sigma_session_logits(j->s, -1, &lg) != SIGMA_OK) return -1;
        sigma_token t = argmax(lg, n_vocab);
        int eog = 0;
        sigma_token_is_eog(m, t, &eog);
        if (eog || j->n_out == max_out) {
            j->done = 1;
            continue;
        }
        j->out[j->n_out++] = t;
        any = 1;
    }
    return any;
}

static void print_text(const sigma_model *m, const char *prompt, const sigma_token *t, size_t n) {
    printf("%s", prompt);
    for (size_t i = 0; i < n; i++) {
        char piece[128];
        size_t len = 0;
        if (sigma_token_to_piece(m, t[i], piece, sizeof piece, &len, 0) == SIGMA_OK)
            fwrite(piece, 1, len, stdout);
    }
    printf("\n---\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [N_TOKENS]\n", argv[0]);
        return 2;
    }
    size_t max_out = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 32;
    if (max_out > MAX_TOKENS) max_out = MAX_TOKENS;
    sigma_model *m = NULL;
    if (sigma_model_open(argv[1], NULL, &m) != SIGMA_OK) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sigma_model_get_info(m, &info);

    /* the shared prefix, once */
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 512;
    sigma_session *base = NULL;
    sigma_token pre[64];
    size_t n_pre = 0;
    int rc = 1;
    job jobs[N_PROMPTS];
    memset(jobs, 0, sizeof jobs);
    if (sigma_session_open(m, &sp, &base) != SIGMA_OK ||
        sigma_tokenize(m, prefix, strlen(prefix), pre, 64, &n_pre, SIGMA_TOKENIZE_ADD_SPECIAL) ||
        sigma_session_eval(base, pre, n_pre) != SIGMA_OK) {
        fprintf(stderr, "prefix failed\n");
        goto out;
    }
    /* one fork per prompt */
    for (size_t i = 0; i < N_PROMPTS; i++) {
        if (sigma_session_fork(base, &jobs[i].s) != SIGMA_OK ||
            sigma_tokenize(m, prompts[i], strlen(prompts[i]), jobs[i].prompt, 64,
                           &jobs[i].n_prompt, 0) != SIGMA_OK) {
            fprintf(stderr, "fork/tokenize failed: %s\n", sigma_session_last_error(base));
            goto out;
        }
    }

    /* all prompts in one pass, then one token per session per pass */
    sigma_session *ss[N_PROMPTS];
    const sigma_token *tp[N_PROMPTS];
    size_t nt[N_PROMPTS];
    for (size_t i = 0; i < N_PROMPTS; i++) {
        ss[i] = jobs[i].s;
        tp[i] = jobs[i].prompt;
        nt[i] = jobs[i].n_prompt;
    }
    if (sigma_sessions_eval(ss, tp, nt, N_PROMPTS, NULL) != SIGMA_OK) {
        fprintf(stderr, "batched prompt eval failed: %s\n", sigma_session_last_error(ss[0]));
        goto out;
    }
    for (;;) {
        int any = pick(m, jobs, N_PROMPTS, info.n_vocab, max_out);
        if (any < 0) goto out;
        if (!any) break;
        size_t n = 0; /* the unfinished sessions, each with its new token */
        for (size_t i = 0; i < N_PROMPTS; i++) {
            if (jobs[i].done) continue;
            ss[n] = jobs[i].s;
            tp[n] = &jobs[i].out[jobs[i].n_out - 1];
            nt[n] = 1;
            n++;
        }
        int st[N_PROMPTS];
        if (sigma_sessions_eval(ss, tp, nt, n, st) != SIGMA_OK) {
            for (size_t i = 0; i < n; i++)
                if (st[i] != SIGMA_OK)
                    fprintf(stderr, "session failed: %s\n", sigma_session_last_error(ss[i]));
            goto out;
        }
    }
    for (size_t i = 0; i < N_PROMPTS; i++) print_text(m, prompts[i], jobs[i].out, jobs[i].n_out);

    /* check: the same prompts decoded one at a time from scratch */
    rc = 0;
    for (size_t i = 0; i < N_PROMPTS && rc == 0; i++) {
        sigma_session *s = NULL;
        job one;
        memset(&one, 0, sizeof one);
        if (sigma_session_open(m, &sp, &s) != SIGMA_OK || sigma_session_eval(s, pre, n_pre) ||
            sigma_session_eval(s, jobs[i].prompt, jobs[i].n_prompt)) {
            rc = 1;
        }
        one.s = s;
        while (rc == 0 && pick(m, &one, 1, info.n_vocab, max_out) == 1)
            if (sigma_session_eval(s, &one.out[one.n_out - 1], 1) != SIGMA_OK) rc = 1;
        if (rc == 0 && (one.n_out != jobs[i].n_out ||
                        memcmp(one.out, jobs[i].out, one.n_out * sizeof *one.out) != 0)) {
            fprintf(stderr, "prompt %zu: batched and single decoding differ\n", i);
            rc = 1;
        }
        sigma_session_close(s);
    }
    if (rc == 0) printf("batched decoding matches decoding one prompt at a time\n");
out:
    for (size_t i = 0; i < N_PROMPTS; i++) sigma_session_close(jobs[i].s);
    sigma_session_close(base);
    sigma_model_close(m);
    return rc;
}
