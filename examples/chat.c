/* chat.c — a streaming chat in the terminal.
 *
 *   chat MODEL [SYSTEM_PROMPT] [MAX_TOKENS]
 *
 * Each line read from stdin is a user turn; the reply is printed as it is
 * generated. The whole conversation is passed to sigma_session_chat() on
 * every turn: the session keeps its KV cache for the longest common token
 * prefix, so only the new turn is evaluated. */
#define _POSIX_C_SOURCE 200809L
#include <sigma/sigma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable string that collects the assistant's reply. */
typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static int on_piece(void *user, const char *text, size_t len) {
    text_buf *b = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (b->len + len + 1 > b->cap) {
        size_t cap = (b->len + len + 1) * 2;
        char *p = realloc(b->data, cap);
        if (!p) return 1; /* out of memory: stop generating */
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, text, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [SYSTEM_PROMPT] [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    char err[512] = "";
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *model;
    int st = sigma_model_open(argv[1], &mp, &model);
    if (st != SIGMA_OK) {
        fprintf(stderr, "%s: %s\n", sigma_strerror(st), err);
        return 1;
    }
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 4096; /* capped at what we need, not the trained length */
    sigma_session *session;
    if ((st = sigma_session_open(model, &sp, &session)) != SIGMA_OK) {
        fprintf(stderr, "session: %s\n", sigma_strerror(st));
        sigma_model_close(model);
        return 1;
    }
    /* A sampler with the library defaults (temperature 0.8, top-k 40, ...). */
    sigma_sampler *sampler;
    size_t n = 0, cap = 16;
    sigma_chat_message *msgs = malloc(cap * sizeof *msgs);
    if (!msgs || sigma_sampler_open(model, NULL, &sampler) != SIGMA_OK) {
        fprintf(stderr, "out of memory\n");
        free(msgs);
        sigma_session_close(session);
        sigma_model_close(model);
        return 1;
    }
    /* The conversation: strings owned by this program. */
    if (argc > 2 && argv[2][0]) msgs[n++] = (sigma_chat_message){"system", strdup(argv[2])};

    sigma_generate_params gp;
    sigma_generate_params_init(&gp, sizeof gp);
    gp.sampler = sampler;
    gp.max_tokens = argc > 3 ? atoi(argv[3]) : 512;
    gp.on_piece = on_piece;

    char line[4096];
    int rc = 0;
    while (printf("> "), fflush(stdout), fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        if (!line[0]) continue;
        if (n + 2 > cap) {
            cap *= 2;
            sigma_chat_message *p = realloc(msgs, cap * sizeof *msgs);
            if (!p) { rc = 1; break; }
            msgs = p;
        }
        msgs[n++] = (sigma_chat_message){"user", strdup(line)};
        text_buf reply = {0};
        gp.on_piece_user = &reply;
        st = sigma_session_chat(session, msgs, n, &gp, NULL);
        printf("\n");
        if (st != SIGMA_OK) {
            fprintf(stderr, "chat: %s: %s\n", sigma_strerror(st),
                    sigma_session_last_error(session));
            free(reply.data);
            rc = 1;
            break;
        }
        /* The reply becomes part of the history for the next turn. */
        msgs[n++] = (sigma_chat_message){"assistant", reply.data ? reply.data : strdup("")};
    }
    for (size_t i = 0; i < n; i++) free((char *)msgs[i].content);
    free(msgs);
    sigma_sampler_close(sampler);
    sigma_session_close(session);
    sigma_model_close(model);
    return rc;
}
