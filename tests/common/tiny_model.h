/* Tiny random models for tests (tests/common/tiny_model.c). */
#ifndef TESTS_TINY_MODEL_H
#define TESTS_TINY_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "sigma/sigma.h"

/* kind 0: llama (GQA 4/2, d 16, Q8_0/Q4_1/F32, tied output, vocab 50);
 * kind 2: kind 0 with Q4_0 matrices in place of Q4_1 (repacked at open);
 * kind 1: sigma (8/2/4 heads, d_qk 16, d_v 8, AugQ 32, F16/F32, own output).
 * Writes a GGUF image to *mem (malloc'd; keep it alive while the model is
 * open). Returns 0 or -1. */
int tm_build(int kind, uint8_t **mem, size_t *size);
/* Build and open with default params; NULL on failure. */
sigma_model *tm_open(int kind, uint8_t **mem);

#define TM_VOCAB 50
#endif
