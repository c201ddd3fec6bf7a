/* Internal interface of the text part: tokenizer, sampling, chat. */
#ifndef SG_TEXT_H
#define SG_TEXT_H

#include "../model/model.h"

/* Build model->tok from the tokenizer.ggml.* metadata (a model without a
 * tokenizer gets model->tok == NULL and tokenize calls fail cleanly).
 * Validates ids and strings; SIGMA_E_FORMAT with a message on bad data. */
int sg_tokenizer_load(struct sigma_model *model, sg_err *err);
void sg_tokenizer_free(struct sigma_model *model);

#endif
