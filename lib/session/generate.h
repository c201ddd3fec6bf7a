/* Generation and chat over an abstract evaluator (lib/session/generate.c):
 * the loop is written against sg_gen_ops so tests can drive it with a fake
 * model; sigma_session_generate/chat plug a real session in. */
#ifndef SG_SESSION_GENERATE_H
#define SG_SESSION_GENERATE_H

#include "../text/gen.h"

/* ---- generation ---------------------------------------------------------- */

/* What the generation loop needs from a session, a model and a decoder.
 * The library fills it from the public session/tokenizer calls; the tests
 * plug in a scripted fake. Every function returns a status. */
typedef struct sg_gen_ops {
    void *ctx;
    const sg_alloc *alloc;
    uint32_t n_vocab;
    int (*eval)(void *ctx, const sigma_token *tokens, size_t n);
    int (*logits)(void *ctx, const float **logits);      /* of the last position */
    int (*tokens)(void *ctx, const sigma_token **tokens, size_t *n);
    int (*rewind)(void *ctx, uint32_t position);
    int (*is_eog)(void *ctx, sigma_token token, int *is_eog);
    /* incremental decoding: the protocol of sigma_decoder_push/flush */
    int (*decode)(void *ctx, sigma_token token, char *buf, size_t size, size_t *len);
    int (*decode_flush)(void *ctx, char *buf, size_t size, size_t *len);
    /* optional: non-zero when the host asked to cancel (polled per token) */
    int (*cancelled)(void *ctx);
} sg_gen_ops;

/* Evaluate `prompt` (n_prompt may be 0: continue from the current logits)
 * and generate per `p` (a complete params struct). `extra_stops` are added
 * to p->stop_strings. `stats` (a complete struct) is always filled. A
 * message for failures goes to err. */
int sg_generate_run(const sg_gen_ops *ops, const sigma_token *prompt, size_t n_prompt,
                    const sigma_generate_params *p, const char *const *extra_stops,
                    size_t n_extra, sigma_generate_stats *stats, sg_err *err);

/* Chat continuation: keep the longest common prefix of the session's
 * tokens and `tokens` (the whole rendered history), rewind to it, then
 * sg_generate_run() on the rest (at least one token is evaluated). */
int sg_chat_run(const sg_gen_ops *ops, const sigma_token *tokens, size_t n_tokens,
                const sigma_generate_params *p, const char *const *extra_stops,
                size_t n_extra, sigma_generate_stats *stats, sg_err *err);

/* The public generate/chat entry points given the session's model; the
 * message of a failure goes to err. */
int sg_session_generate_model(sigma_session *session, const sigma_model *model,
                              const char *prompt, const sigma_generate_params *params,
                              sigma_generate_stats *stats, sg_err *err);
int sg_session_chat_model(sigma_session *session, const sigma_model *model,
                          const sigma_chat_message *messages, size_t n_messages,
                          const sigma_generate_params *params, sigma_generate_stats *stats,
                          sg_err *err);

#endif
