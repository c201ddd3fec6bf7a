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

/* ---- architectures (docs/model-format.md, "Architectures") ---------------
 * What differs between the supported architectures, as data: one row per
 * `general.architecture`, read by the loader (which keys and tensors to
 * expect) and by the forward pass (which steps to run). Nothing else
 * branches on the architecture. Gemma's (1 + w) norm weights need no flag:
 * llama.cpp's converter stores 1 + w in the file. */
typedef enum sg_act {
    SG_ACT_SWIGLU = 0,     /* silu(gate) * up */
    SG_ACT_GEGLU_TANH = 1  /* gelu_tanh(gate) * up */
} sg_act;

typedef struct sg_arch_desc {
    sigma_arch arch;
    const char *name;          /* general.architecture and the key prefix */
    uint8_t diffqkv_keys;      /* head_count_k/_v and augq_length (sigma) instead of head_count_kv */
    uint8_t rope_halves;       /* RoPE pairs (i, i + n_rot/2) (HF layout); else (2i, 2i+1) */
    uint8_t qkv_bias;          /* attn_{q,k,v}.bias required */
    uint8_t qk_norm;           /* attn_{q,k}_norm: RMSNorm of every Q/K head (d_qk) before RoPE */
    uint8_t post_norms;        /* post_attention_norm, post_ffw_norm on the block outputs */
    uint8_t fused_qkv;         /* attn_qkv (E -> QD+KD+VD) instead of attn_q/k/v */
    uint8_t fused_gate_up;     /* ffn_up (E -> 2F, gate first) instead of ffn_gate + ffn_up */
    uint8_t act;               /* sg_act */
    uint8_t embd_scale;        /* x = embed * sqrt(n_embd) */
    uint8_t softcap_keys;      /* final_logit_softcapping, attn_logit_softcapping read */
    uint8_t swa_pattern;       /* sliding-window layers: 0 none; n: layer l is global iff
                                * (l + 1) % n == 0 (Gemma 2: 2, Gemma 3: 6), with
                                * attention.sliding_window required */
    uint8_t swa_optional;      /* the window key may be absent (then no window) */
    uint8_t tied_only;         /* output.weight must be absent (lm_head = token_embd) */
    float swa_rope_theta;      /* RoPE base of the windowed layers, 0 = the global one */
    const char *chat_hint;     /* chat template marker assumed when the file has no
                                * tokenizer.chat_template (lib/text/chat.c), or NULL */
} sg_arch_desc;

/* The row of `general.architecture` = name (len bytes), or NULL. */
const sg_arch_desc *sg_arch_find(const char *name, size_t len);
/* Every row, in the order of sigma_arch values; count in *n. */
const sg_arch_desc *sg_arch_table(size_t *n);

typedef struct sg_hparams {
    sigma_arch arch;
    const sg_arch_desc *desc;
    uint32_t n_layer, n_embd, n_ff;
    uint32_t n_q, n_k, n_v;      /* head counts */
    uint32_t d_qk, d_v, d_aug;   /* head dims; d_aug 0 = no AugQ */
    uint32_t n_rot;
    uint32_t n_vocab, n_ctx_train;
    float rope_theta, norm_eps;
    float rope_freq_scale;       /* 1, or 1/factor for linear RoPE scaling */
    sg_rope_layout rope_layout;
    int tied_output;
    sg_act act;                  /* the MLP's activation */
    float attn_scale;            /* score scale: 1/sqrt(d_qk) unless attention.scale */
    float embd_scale;            /* 1, or sqrt(n_embd) */
    float final_softcap;         /* 0 = none; else logits = c * tanh(logits / c) */
    float attn_softcap;          /* 0 = none (attention soft-capping) */
    uint32_t n_swa;              /* sliding window of windowed layers, 0 = none */
} sg_hparams;

typedef struct sg_layer {
    const sg_tensor *attn_norm;
    const sg_tensor *wq, *wk, *wv, *wo;  /* wq/wk/wv NULL when fused into wqkv */
    const sg_tensor *wqkv;               /* fused [q; k; v] rows, or NULL */
    const sg_tensor *bq, *bk, *bv;       /* biases, or NULL */
    const sg_tensor *q_norm, *k_norm;    /* per-head RMSNorm weights [d_qk], or NULL */
    const sg_tensor *wq_gate, *wq_up, *wq_down; /* AugQ, NULL when absent */
    const sg_tensor *post_attn_norm;     /* or NULL */
    const sg_tensor *ffn_norm;
    const sg_tensor *w_gate, *w_up, *w_down; /* w_gate NULL: w_up is fused [gate; up] */
    const sg_tensor *post_ffn_norm;      /* or NULL */
    uint32_t window;                     /* sliding window (positions), 0 = global */
    float rope_theta;                    /* this layer's RoPE base */
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
    /* Q4_0/Q8_0 matrices repacked for the kernels (sg_model_repack), or NULL */
    void *packed;
    uint64_t packed_bytes;
    double packed_ms;
};

/* Fill model->hp, tensors and layers from model->gguf, validating every
 * key and tensor shape. Returns a status and a message in err. */
int sg_model_load_arch(struct sigma_model *model, sg_err *err);

/* Record an error on a shared model (thread-safe) and return status. */
int sg_model_error(const struct sigma_model *model, int status, const char *fmt, ...)
    SG_PRINTF(3, 4);

/* Repack the matrices of the types the kernels read packed (k->x8_types:
 * Q4_0, and Q8_0 on AVX2; 2-D, rows % 8 == 0; the token embedding only
 * when it is also the output) into the kernels' x8 layout when the kernel
 * level chosen by SIGMA_KERNELS for this CPU reads it: one allocation of
 * their size, t->packed set; t->data stays (the portable kernels, "exact"
 * and lower levels read it). Returns a status and a message in err. */
int sg_model_repack(struct sigma_model *model, sg_err *err);

/* Compute model->fingerprint (after the architecture is loaded). */
void sg_model_fingerprint(struct sigma_model *model);

#endif
