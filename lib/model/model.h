/* model: a model file made into an immutable, validated description: the
 * GGUF reader (gguf.c), the architecture loader (arch.c) and the model's
 * error slot, fingerprint and metadata (model.c). Both `llama` and `sigma`
 * files become this. Depends on core and base. */
#ifndef SG_MODEL_H
#define SG_MODEL_H

#include <pthread.h>

#include "../base/base.h"
#include "../core/tensor.h"
#include "gguf.h"

typedef enum sg_rope_layout {
    SG_ROPE_ADJACENT = 0, /* pairs (2i, 2i+1): llama files */
    SG_ROPE_HALVES = 1    /* pairs (i, i+n_rot/2): sigma files (HF layout) */
} sg_rope_layout;

typedef struct sg_hparams {
    sigma_arch arch;
    uint32_t n_layer, n_embd, n_ff;
    uint32_t n_q, n_k, n_v;      /* head counts */
    uint32_t d_qk, d_v, d_aug;   /* head dims; d_aug 0 = no AugQ */
    uint32_t n_rot;
    uint32_t n_vocab, n_ctx_train;
    float rope_theta, norm_eps;
    float rope_freq_scale;       /* 1, or 1/factor for linear RoPE scaling */
    sg_rope_layout rope_layout;
    int tied_output;
} sg_hparams;

typedef struct sg_layer {
    const sg_tensor *attn_norm;
    const sg_tensor *wq, *wk, *wv, *wo;
    const sg_tensor *wq_gate, *wq_up, *wq_down; /* AugQ, NULL when absent */
    const sg_tensor *ffn_norm;
    const sg_tensor *w_gate, *w_up, *w_down;
} sg_layer;

struct sg_tokenizer; /* lib/text */

struct sigma_model {
    sg_alloc alloc;
    sg_log log;
    sg_gguf *gguf;                /* owns the mapping / buffer */
    sg_hparams hp;
    const sg_tensor *tok_embd, *out_norm, *output; /* output == tok_embd if tied */
    sg_layer *layers;             /* hp.n_layer */
    float *rope_factors;          /* hp.n_rot/2 from rope_freqs.weight, or NULL */
    struct sg_tokenizer *tok;     /* NULL if the file has no tokenizer */
    char *name;                   /* general.name or "" */
    uint64_t n_params;
    /* last error of calls on the (shared) model, under a mutex */
    pthread_mutex_t err_lock;
    sg_err err;
    /* identity of the weights and shape, for session files (model_api.c) */
    uint64_t fingerprint[2];
};

/* Fill model->hp, tensors and layers from model->gguf, validating every
 * key and tensor shape. Returns a status and a message in err. */
int sg_model_load_arch(struct sigma_model *model, sg_err *err);

/* Record an error on a shared model (thread-safe) and return status. */
int sg_model_error(const struct sigma_model *model, int status, const char *fmt, ...)
    SG_PRINTF(3, 4);

/* Compute model->fingerprint (after the architecture is loaded). */
void sg_model_fingerprint(struct sigma_model *model);

#endif
