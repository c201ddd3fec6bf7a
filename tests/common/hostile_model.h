/* Small models of every weight type whose tensor data can be poisoned with
 * hostile bit patterns (tests/common/hostile_model.c), for the tests and the
 * fuzz harness of docs/model-format.md "Non-finite and hostile tensor data".
 *
 * Dimensions are multiples of 256 so that every block type (K-quants
 * included) fits every matrix. The images carry a small SentencePiece-style
 * vocabulary, so samplers can be created on them. */
#ifndef TESTS_HOSTILE_MODEL_H
#define TESTS_HOSTILE_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "sigma/sigma.h"

#define HM_VOCAB 64

/* The bit patterns of the policy, applied to a block's scales (quantized
 * types) or to an element (float types). */
typedef enum hm_pattern {
    HM_POS_INF = 0,
    HM_NEG_INF,
    HM_NAN,
    HM_MAX_FINITE,
    HM_DENORMAL,
    HM_N_PATTERNS
} hm_pattern;

/* Tensor roles: where in the model the poisoned tensor sits. */
typedef enum hm_role {
    HM_EMBD = 0, HM_ATTN_NORM, HM_Q, HM_K, HM_V, HM_O, HM_AUG_GATE, HM_AUG_UP, HM_AUG_DOWN,
    HM_FFN_NORM, HM_GATE, HM_UP, HM_DOWN, HM_OUT_NORM, HM_OUTPUT,
    HM_N_ROLES
} hm_role;

const char *hm_pattern_name(hm_pattern p);
const char *hm_role_name(hm_role r);
/* GGUF tensor name of a role in layer 0 (NULL if the kind has no such role:
 * AugQ and a separate output only exist in the sigma kind). */
const char *hm_role_tensor(int kind, hm_role r);

/* Weight types the builder can write (GGUF numbering), for loops. */
extern const uint32_t hm_types[];
extern const size_t hm_n_types;
/* Byte offsets of the f16 scale fields in one block of `type` (at most 2:
 * d and, where the type has one, the minimum); returns the count, 0 for the
 * float types (whose element 0 is patterned instead). */
size_t hm_scale_fields(uint32_t type, size_t off[2]);

/* kind 0: llama (4/2/2 heads, d 64); kind 1: sigma (8/2/4, d_qk 32, d_v 32,
 * AugQ 256, own output). Matrices of `type`, norms F32, 1 or 2 layers.
 * Deterministic; *mem is malloc'd. Returns 0 or -1. */
int hm_build(int kind, uint32_t type, int n_layers, uint8_t **mem, size_t *size);

/* The same, also giving the offset where the tensor data section starts
 * (it runs to the end of the image). */
int hm_build_data(int kind, uint32_t type, int n_layers, uint8_t **mem, size_t *size,
                  size_t *data_off);

/* Write pattern p into the first block (or element) of the tensor whose data
 * starts at data (type `type`). */
void hm_poison(uint8_t *data, uint32_t type, hm_pattern p);

#endif
