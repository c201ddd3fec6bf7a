/* Tokenizer conversion: Hugging Face tokenizer.json (byte-level BPE) plus
 * tokenizer_config.json / config.json -> GGUF tokenizer.* metadata. */
#ifndef CV_VOCAB_H
#define CV_VOCAB_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "gguf_writer.h"

/* Write the tokenizer keys for the checkpoint in dir. config is the parsed
 * config.json. *n_vocab: in, the config's vocab_size (0 if absent); out, the
 * number of tokens written. 0 or -1 (reported). */
int cv_vocab_write(gw_writer *w, const char *dir, const cJSON *config, uint32_t *n_vocab);

/* The tokenizer.ggml.pre name for a tokenizer.json pre_tokenizer object, or
 * NULL when it is not one we recognise. */
const char *cv_vocab_detect_pre(const cJSON *pre_tokenizer);

#endif
