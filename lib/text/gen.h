/* Internal interface of sampling, stop strings and chat rendering
 * (lib/text/sampler.c, stop.c, chat.c). */
#ifndef SG_TEXT_GEN_H
#define SG_TEXT_GEN_H

#include "../model/model.h"
#include "grammar.h"

/* ---- sampler ---------------------------------------------------------- */

/* Greedy pick: the index of the largest logit, lowest index on ties; NaN
 * counts as -inf. SIGMA_E_INVALID_ARG when every logit is NaN or -inf. */
int sg_argmax(const float *logits, uint32_t n, sigma_token *token);

/* Apply the sampler's penalties (repetition, frequency, presence over the
 * history window) to `logits` in place (n_vocab floats). */
void sg_sampler_apply_penalties(const sigma_sampler *s, float *logits);

/* Probabilities the sampler would draw from for `logits` (after penalties,
 * top-k, temperature, top-p and min-p): writes n_vocab doubles (0 for
 * tokens cut off). Does not touch the RNG or the history. For tests. */
int sg_sampler_probs(sigma_sampler *s, const float *logits, double *probs);

/* Tests: with `on`, a grammar sampler with top-k off checks every
 * candidate (the plain definition) instead of stopping early or drawing
 * first (sampler.c, grammar_walk / grammar_reject_draw). */
void sg_sampler_set_exhaustive(sigma_sampler *s, int on);
/* Grammar checks (one token's bytes against the matcher) made so far. */
uint64_t sg_sampler_grammar_checks(const sigma_sampler *s);

/* Upper bound on the penalty window (tokens). */
#define SG_PENALTY_MAX_N (1 << 24)

/* ---- sampler state in session files (docs/session-format.md) ---------- */

#define SG_SAMPLER_STATE_HEADER 88
/* Largest serialized state: the header and a full history window. */
#define SG_SAMPLER_STATE_MAX \
    ((uint64_t)SG_SAMPLER_STATE_HEADER + 4 * (uint64_t)SG_PENALTY_MAX_N + 16 + SG_GRAMMAR_STATE_MAX)

/* The model the sampler was opened for. */
const sigma_model *sg_sampler_model(const sigma_sampler *s);
/* Bytes sg_sampler_save_state() writes. */
size_t sg_sampler_state_size(const sigma_sampler *s);
/* Write the full state (params, RNG, penalty history) through w. */
int sg_sampler_save_state(const sigma_sampler *s, sigma_write_fn w, void *ctx);

/* A validated state waiting to be committed (two-phase restore, so that a
 * session load can check everything before changing anything). */
typedef struct sg_sampler_restore {
    sigma_sampler_params p;
    uint64_t rng[4];
    sigma_token *hist;   /* cap tokens on the sampler's allocator, len used */
    uint32_t cap, len;
    sg_gset gset;        /* the grammar's state (when the sampler has one) */
    int ready;
} sg_sampler_restore;

/* Validate `size` bytes of serialized state against the sampler and
 * allocate what the commit needs; the sampler is not changed. Status
 * SIGMA_E_FORMAT / SIGMA_E_MISMATCH / SIGMA_E_NOMEM with a message in err.
 * On success call exactly one of commit (cannot fail) or abort. */
int sg_sampler_restore_prepare(sigma_sampler *s, const void *data, size_t size,
                               sg_sampler_restore *r, sg_err *err);
void sg_sampler_restore_commit(sigma_sampler *s, sg_sampler_restore *r);
void sg_sampler_restore_abort(sigma_sampler *s, sg_sampler_restore *r);

/* ---- stop strings ------------------------------------------------------ */

/* Streams text through stop-string detection: text that could be the start
 * of a stop string is held back until decided; a stop string itself is
 * never emitted. */
typedef struct sg_stopper {
    const sg_alloc *alloc;
    const char *const *stops;   /* borrowed; empty strings are ignored */
    size_t n_stops;
    char *pending;              /* [0, emitted): returned by the last call;
                                   [emitted, len): held back */
    size_t len, cap, emitted;
    int stopped;                /* a stop string was found */
} sg_stopper;

void sg_stopper_init(sg_stopper *st, const sg_alloc *alloc, const char *const *stops,
                     size_t n_stops);
void sg_stopper_free(sg_stopper *st);
/* Append `text`; on return `*emit` / `*emit_len` is the text now safe to
 * emit (points into the stopper, valid until the next call) and
 * st->stopped tells whether a stop string was found (then the rest is
 * discarded and further pushes emit nothing). SIGMA_E_NOMEM possible. */
int sg_stopper_push(sg_stopper *st, const char *text, size_t len, const char **emit,
                    size_t *emit_len);
/* End of stream: everything held back is emitted (no stop string can
 * complete any more). */
void sg_stopper_finish(sg_stopper *st, const char **emit, size_t *emit_len);

/* ---- chat -------------------------------------------------------------- */

typedef enum sg_chat_style {
    SG_CHAT_PLAIN = 0,
    SG_CHAT_CHATML = 1,
    SG_CHAT_LLAMA3 = 2,
    SG_CHAT_GEMMA = 3,  /* "<start_of_turn>" */
    SG_CHAT_PHI3 = 4    /* "<|user|>" ... "<|end|>" */
} sg_chat_style;

/* Which style a template string (may be NULL: plain) selects. */
sg_chat_style sg_chat_detect(const char *tmpl, size_t tmpl_len);

/* Render with an explicit template string (NULL/0 = none: plain fallback).
 * Same buffer protocol as sigma_chat_render(). */
int sg_chat_render_template(const char *tmpl, size_t tmpl_len,
                            const sigma_chat_message *messages, size_t n_messages,
                            int add_assistant, char *buf, size_t size, size_t *len);

#endif
