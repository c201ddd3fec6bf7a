/* text: everything between bytes and tokens: tokenizer, detokenizer,
 * sampler, stop strings and chat templates. Depends on model, core, base;
 * never on sessions (generation over a session is lib/session). */
#ifndef SG_TEXT_H
#define SG_TEXT_H

#include "../model/model.h"

/* Build model->tok from the tokenizer.ggml.* metadata (a model without a
 * tokenizer gets model->tok == NULL and tokenize calls fail cleanly).
 * Validates ids and strings; SIGMA_E_FORMAT with a message on bad data. */
int sg_tokenizer_load(struct sigma_model *model, sg_err *err);
void sg_tokenizer_free(struct sigma_model *model);

/* ---- accessors for sampling / generation / chat (lib/text/tokenizer.c) --
 * All take the model; a model without a tokenizer behaves as an empty
 * vocabulary (n_vocab 0, every token out of range). */

/* tokenizer.ggml.token_type values */
enum {
    SG_TOKTYPE_UNDEFINED = 0, SG_TOKTYPE_NORMAL = 1, SG_TOKTYPE_UNKNOWN = 2,
    SG_TOKTYPE_CONTROL = 3, SG_TOKTYPE_USER_DEFINED = 4, SG_TOKTYPE_UNUSED = 5,
    SG_TOKTYPE_BYTE = 6
};

/* Number of tokens in the vocabulary (0 without a tokenizer). */
uint32_t sg_tok_n_vocab(const struct sigma_model *model);
/* SG_TOKTYPE_* of a token; SG_TOKTYPE_UNDEFINED when out of range. */
int sg_tok_type(const struct sigma_model *model, sigma_token token);
/* 1 for control and unknown tokens (rendered as text only with
 * SIGMA_DETOK_RENDER_SPECIAL), 0 otherwise / out of range. */
int sg_tok_is_control(const struct sigma_model *model, sigma_token token);
/* 1 if the token ends generation (EOS, EOT, EOM and the known end-of-turn
 * control tokens such as <|im_end|>, <|eot_id|>, <|endoftext|>). */
int sg_tok_is_eog(const struct sigma_model *model, sigma_token token);
/* The raw vocabulary string of a token (byte-level / U+2581 form; for
 * control tokens their text, e.g. "<|im_end|>"). {NULL,0} out of range.
 * Points into the model file image: valid while the model is open. */
sg_str sg_tok_text(const struct sigma_model *model, sigma_token token);
/* The id of a special token, SIGMA_TOKEN_NONE when the model has none. */
sigma_token sg_tok_special(const struct sigma_model *model, sigma_special_token which);
/* 1 if SIGMA_TOKENIZE_ADD_SPECIAL prepends BOS for this model. */
int sg_tok_add_bos(const struct sigma_model *model);
/* Exact lookup of a vocabulary string (e.g. "<|im_end|>"), NONE if absent. */
sigma_token sg_tok_find(const struct sigma_model *model, const char *text, size_t len);
/* Tokenize into a new array (*out allocated with model->alloc; sg_free it;
 * NULL when *n == 0). Same semantics and flags as sigma_tokenize. */
int sg_tokenize_alloc(const struct sigma_model *model, const char *text, size_t len,
                      uint32_t flags, sigma_token **out, size_t *n, sg_err *err);

#endif
