/* Architecture loading: turn a validated GGUF file of one of the
 * architectures of the table below into hyperparameters, tensor pointers
 * and layers, checking every key's type and range and every tensor's exact
 * shape and type. The table row says which keys and tensors to expect. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

#define DIM_LIMIT (1u << 24)       /* any single size or head product */
#define CTX_LIMIT (1u << 28)       /* trained context length */

/* One row per architecture, in the order of the sigma_arch values. Tensor
 * and key names are those llama.cpp's converter writes. */
static const sg_arch_desc ARCHS[] = {
    {.arch = SIGMA_ARCH_LLAMA, .name = "llama", .act = SG_ACT_SWIGLU},
    {.arch = SIGMA_ARCH_SIGMA, .name = "sigma", .diffqkv_keys = 1, .rope_halves = 1,
     .act = SG_ACT_SWIGLU},
    {.arch = SIGMA_ARCH_QWEN2, .name = "qwen2", .rope_halves = 1, .qkv_bias = 1,
     .act = SG_ACT_SWIGLU, .chat_hint = "<|im_start|>"},
    {.arch = SIGMA_ARCH_QWEN3, .name = "qwen3", .rope_halves = 1, .qk_norm = 1,
     .act = SG_ACT_SWIGLU, .chat_hint = "<|im_start|>"},
    {.arch = SIGMA_ARCH_GEMMA3, .name = "gemma3", .rope_halves = 1, .qk_norm = 1,
     .post_norms = 1, .act = SG_ACT_GEGLU_TANH, .embd_scale = 1, .swa_pattern = 6,
     .tied_only = 1, .swa_rope_theta = 10000.0f, .chat_hint = "<start_of_turn>"},
    {.arch = SIGMA_ARCH_GEMMA2, .name = "gemma2", .rope_halves = 1, .post_norms = 1,
     .act = SG_ACT_GEGLU_TANH, .embd_scale = 1, .softcap_keys = 1, .swa_pattern = 2,
     .tied_only = 1, .chat_hint = "<start_of_turn>"},
    {.arch = SIGMA_ARCH_PHI3, .name = "phi3", .rope_halves = 1, .fused_qkv = 1,
     .fused_gate_up = 1, .act = SG_ACT_SWIGLU, .swa_pattern = 1, .swa_optional = 1,
     .chat_hint = "<|user|><|end|>"},
};

const sg_arch_desc *sg_arch_table(size_t *n) {
    *n = sizeof ARCHS / sizeof ARCHS[0];
    return ARCHS;
}

const sg_arch_desc *sg_arch_find(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strlen(ARCHS[i].name) == len && memcmp(ARCHS[i].name, name, len) == 0) return &ARCHS[i];
    return NULL;
}

typedef struct loader {
    sigma_model *m;
    const sg_gguf *g;
    const char *arch;              /* key prefix: the architecture's name */
    const sg_arch_desc *d;
    sg_err *err;
} loader;

/* arch-prefixed u32: required (missing -> FORMAT) or with a default */
static int key_u32(loader *L, const char *suffix, bool required, uint32_t def, uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int st = sg_gguf_get_u32(L->g, key, out, L->err);
    if (st == SIGMA_E_NOT_FOUND) {
        if (required)
            return sg_error(L->err, SIGMA_E_FORMAT, "missing required key '%s'", key);
        *out = def;
        return SIGMA_OK;
    }
    return st;
}

static int key_f32(loader *L, const char *suffix, bool required, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    int st = sg_gguf_get_f32(L->g, key, out, L->err);
    if (st == SIGMA_E_NOT_FOUND) {
        if (required)
            return sg_error(L->err, SIGMA_E_FORMAT, "missing required key '%s'", key);
        *out = def;
        return SIGMA_OK;
    }
    return st;
}

static int check_dim(loader *L, const char *what, uint64_t v) {
    if (v == 0 || v >= DIM_LIMIT)
        return sg_error(L->err, SIGMA_E_FORMAT, "%s.%s = %llu is out of range (1 to %u)",
                        L->arch, what, (unsigned long long)v, DIM_LIMIT - 1);
    return SIGMA_OK;
}

static int read_hparams(loader *L, sg_hparams *hp) {
    int st;
    const sg_arch_desc *D = L->d;
    bool sigma = D->diffqkv_keys;
#define TRY(x) do { if ((st = (x)) != SIGMA_OK) return st; } while (0)
    TRY(key_u32(L, "context_length", true, 0, &hp->n_ctx_train));
    TRY(key_u32(L, "embedding_length", true, 0, &hp->n_embd));
    TRY(key_u32(L, "block_count", true, 0, &hp->n_layer));
    TRY(key_u32(L, "feed_forward_length", true, 0, &hp->n_ff));
    TRY(key_u32(L, "attention.head_count", true, 0, &hp->n_q));
    TRY(key_f32(L, "attention.layer_norm_rms_epsilon", true, 0, &hp->norm_eps));
    TRY(key_f32(L, "rope.freq_base", false, 10000.0f, &hp->rope_theta));

    uint32_t experts = 0;
    TRY(key_u32(L, "expert_count", false, 0, &experts));
    if (experts > 0)
        return sg_error(L->err, SIGMA_E_UNSUPPORTED,
                        "mixture-of-experts models (%s.expert_count = %u) are not supported",
                        L->arch, experts);

    if (hp->n_ctx_train == 0 || hp->n_ctx_train > CTX_LIMIT)
        return sg_error(L->err, SIGMA_E_FORMAT, "%s.context_length = %u is out of range (1 to %u)",
                        L->arch, hp->n_ctx_train, CTX_LIMIT);
    TRY(check_dim(L, "embedding_length", hp->n_embd));
    TRY(check_dim(L, "block_count", hp->n_layer));
    TRY(check_dim(L, "feed_forward_length", hp->n_ff));
    TRY(check_dim(L, "attention.head_count", hp->n_q));

    if (sigma) {
        TRY(key_u32(L, "attention.head_count_k", false, hp->n_q, &hp->n_k));
        TRY(check_dim(L, "attention.head_count_k", hp->n_k));
        TRY(key_u32(L, "attention.head_count_v", false, hp->n_k, &hp->n_v));
        TRY(check_dim(L, "attention.head_count_v", hp->n_v));
        TRY(key_u32(L, "attention.augq_length", false, 0, &hp->d_aug));
        if (hp->d_aug) TRY(check_dim(L, "attention.augq_length", hp->d_aug));
    } else {
        TRY(key_u32(L, "attention.head_count_kv", false, hp->n_q, &hp->n_k));
        TRY(check_dim(L, "attention.head_count_kv", hp->n_k));
        hp->n_v = hp->n_k;
        hp->d_aug = 0;
    }
    if (hp->n_q % hp->n_k != 0)
        return sg_error(L->err, SIGMA_E_FORMAT,
                        "%s: head count %u is not a multiple of the K head count %u", L->arch,
                        hp->n_q, hp->n_k);
    if (hp->n_q % hp->n_v != 0)
        return sg_error(L->err, SIGMA_E_FORMAT,
                        "%s: head count %u is not a multiple of the V head count %u", L->arch,
                        hp->n_q, hp->n_v);

    uint32_t d_default = hp->n_embd / hp->n_q;
    TRY(key_u32(L, "attention.key_length", false, d_default, &hp->d_qk));
    TRY(check_dim(L, "attention.key_length", hp->d_qk));
    TRY(key_u32(L, "attention.value_length", false, sigma ? hp->d_qk : d_default, &hp->d_v));
    TRY(check_dim(L, "attention.value_length", hp->d_v));
    TRY(key_u32(L, "rope.dimension_count", false, hp->d_qk, &hp->n_rot));
    if (hp->n_rot == 0 || hp->n_rot > hp->d_qk || hp->n_rot % 2 != 0)
        return sg_error(L->err, SIGMA_E_FORMAT,
                        "%s.rope.dimension_count = %u: must be even and between 2 and the key "
                        "length %u",
                        L->arch, hp->n_rot, hp->d_qk);

    uint64_t prods[3] = {(uint64_t)hp->n_q * hp->d_qk, (uint64_t)hp->n_k * hp->d_qk,
                         (uint64_t)hp->n_q * hp->d_v};
    for (int i = 0; i < 3; i++)
        if (prods[i] >= DIM_LIMIT)
            return sg_error(L->err, SIGMA_E_FORMAT,
                            "%s: attention projection size %llu is out of range", L->arch,
                            (unsigned long long)prods[i]);

    if (!isfinite(hp->norm_eps) || hp->norm_eps <= 0.0f || hp->norm_eps >= 1.0f)
        return sg_error(L->err, SIGMA_E_FORMAT,
                        "%s.attention.layer_norm_rms_epsilon = %g is out of range (0, 1)",
                        L->arch, (double)hp->norm_eps);
    if (!isfinite(hp->rope_theta) || hp->rope_theta <= 0.0f)
        return sg_error(L->err, SIGMA_E_FORMAT, "%s.rope.freq_base = %g must be positive",
                        L->arch, (double)hp->rope_theta);
    hp->rope_layout = D->rope_halves ? SG_ROPE_HALVES : SG_ROPE_ADJACENT;
    hp->act = (sg_act)D->act;
    hp->embd_scale = D->embd_scale ? (float)sqrt((double)hp->n_embd) : 1.0f;
    hp->attn_scale = (float)(1.0 / sqrt((double)hp->d_qk));
    TRY(key_f32(L, "attention.scale", false, hp->attn_scale, &hp->attn_scale));
    if (!isfinite(hp->attn_scale) || hp->attn_scale <= 0.0f)
        return sg_error(L->err, SIGMA_E_FORMAT, "%s.attention.scale = %g must be positive",
                        L->arch, (double)hp->attn_scale);
    if (D->softcap_keys) {
        TRY(key_f32(L, "final_logit_softcapping", false, 0.0f, &hp->final_softcap));
        TRY(key_f32(L, "attn_logit_softcapping", false, 0.0f, &hp->attn_softcap));
        if (!isfinite(hp->final_softcap) || hp->final_softcap < 0.0f)
            return sg_error(L->err, SIGMA_E_FORMAT,
                            "%s.final_logit_softcapping = %g must be positive or 0", L->arch,
                            (double)hp->final_softcap);
        if (!isfinite(hp->attn_softcap) || hp->attn_softcap < 0.0f)
            return sg_error(L->err, SIGMA_E_FORMAT,
                            "%s.attn_logit_softcapping = %g must be positive or 0", L->arch,
                            (double)hp->attn_softcap);
    }
    if (D->swa_pattern) {
        TRY(key_u32(L, "attention.sliding_window", !D->swa_optional, 0, &hp->n_swa));
        if (!D->swa_optional && hp->n_swa == 0)
            return sg_error(L->err, SIGMA_E_FORMAT, "%s.attention.sliding_window = 0", L->arch);
        if (D->swa_optional && hp->n_swa >= hp->n_ctx_train) hp->n_swa = 0; /* never reached */
        if (hp->n_swa > hp->n_ctx_train)
            return sg_error(L->err, SIGMA_E_FORMAT,
                            "%s.attention.sliding_window = %u is larger than the context "
                            "length %u",
                            L->arch, hp->n_swa, hp->n_ctx_train);
    }
#undef TRY
    return SIGMA_OK;
}

static int read_vocab(loader *L, sg_hparams *hp) {
    char key[128];
    snprintf(key, sizeof key, "%s.vocab_size", L->arch);
    uint32_t v = 0;
    int st = sg_gguf_get_u32(L->g, key, &v, L->err);
    if (st == SIGMA_E_NOT_FOUND) {
        uint64_t n;
        st = sg_gguf_get_arr(L->g, "tokenizer.ggml.tokens", SG_GGUF_STRING, &n, NULL, L->err);
        if (st == SIGMA_OK) {
            if (n >= DIM_LIMIT)
                return sg_error(L->err, SIGMA_E_FORMAT,
                                "tokenizer.ggml.tokens: %llu tokens is out of range",
                                (unsigned long long)n);
            v = (uint32_t)n;
        } else if (st == SIGMA_E_NOT_FOUND) {
            const sg_tensor *t = sg_gguf_tensor(L->g, "token_embd.weight");
            if (!t) return sg_error(L->err, SIGMA_E_FORMAT, "missing tensor 'token_embd.weight'");
            if (t->ne[1] >= DIM_LIMIT)
                return sg_error(L->err, SIGMA_E_FORMAT,
                                "tensor 'token_embd.weight': vocabulary size %llu is out of range",
                                (unsigned long long)t->ne[1]);
            v = (uint32_t)t->ne[1];
        } else {
            return st;
        }
    } else if (st != SIGMA_OK) {
        return st;
    }
    if (v == 0 || v >= DIM_LIMIT)
        return sg_error(L->err, SIGMA_E_FORMAT, "vocabulary size %u is out of range", v);
    hp->n_vocab = v;
    return SIGMA_OK;
}

enum { T_MATRIX = 0, T_NORM = 1 };

static int tensor_ok(loader *L, const char *name, const sg_tensor *t, int kind, uint64_t ne0,
                     uint64_t ne1) {
    uint64_t want[4] = {ne0, ne1 ? ne1 : 1, 1, 1};
    if (memcmp(t->ne, want, sizeof want) != 0) {
        char got[128], exp[64];
        int n = snprintf(got, sizeof got, "(%llu", (unsigned long long)t->ne[0]);
        for (uint32_t d = 1; d < t->n_dims && n > 0 && (size_t)n < sizeof got; d++)
            n += snprintf(got + n, sizeof got - (size_t)n, ", %llu", (unsigned long long)t->ne[d]);
        if (n > 0 && (size_t)n < sizeof got) snprintf(got + n, sizeof got - (size_t)n, ")");
        if (ne1)
            snprintf(exp, sizeof exp, "(%llu, %llu)", (unsigned long long)ne0,
                     (unsigned long long)ne1);
        else
            snprintf(exp, sizeof exp, "(%llu)", (unsigned long long)ne0);
        return sg_error(L->err, SIGMA_E_FORMAT, "tensor '%s': shape %s, expected %s", name, got,
                        exp);
    }
    if (kind == T_NORM && t->type != SG_TYPE_F32 && t->type != SG_TYPE_F16 &&
        t->type != SG_TYPE_BF16)
        return sg_error(L->err, SIGMA_E_FORMAT, "tensor '%s': type %s, expected F32, F16 or BF16",
                        name, sg_type_name(t->type));
    return SIGMA_OK;
}

/* Find tensor `name` with the exact shape; missing -> FORMAT unless optional. */
static int want_tensor(loader *L, const sg_tensor **out, bool optional, int kind, uint64_t ne0,
                       uint64_t ne1, const char *name) {
    const sg_tensor *t = sg_gguf_tensor(L->g, name);
    *out = t;
    if (!t) {
        if (optional) return SIGMA_OK;
        return sg_error(L->err, SIGMA_E_FORMAT, "missing tensor '%s'", name);
    }
    return tensor_ok(L, name, t, kind, ne0, ne1);
}

static uint64_t n_elems(const sg_tensor *t) {
    return t ? t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] : 0; /* checked at open */
}

static int load_tensors(loader *L) {
    sigma_model *m = L->m;
    const sg_hparams *hp = &m->hp;
    uint64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    uint64_t QD = (uint64_t)hp->n_q * hp->d_qk, KD = (uint64_t)hp->n_k * hp->d_qk;
    uint64_t VD = (uint64_t)hp->n_v * hp->d_v, OD = (uint64_t)hp->n_q * hp->d_v;
    int st;
    char nm[96];
#define TRY(x) do { if ((st = (x)) != SIGMA_OK) return st; } while (0)
    TRY(want_tensor(L, &m->tok_embd, false, T_MATRIX, E, V, "token_embd.weight"));
    TRY(want_tensor(L, &m->out_norm, false, T_NORM, E, 0, "output_norm.weight"));
    TRY(want_tensor(L, &m->output, true, T_MATRIX, E, V, "output.weight"));
    if (m->output && L->d->tied_only)
        return sg_error(L->err, SIGMA_E_FORMAT,
                        "tensor 'output.weight' is present but %s ties the output to "
                        "token_embd.weight",
                        L->arch);
    m->hp.tied_output = m->output == NULL;
    if (!m->output) m->output = m->tok_embd;

    /* per-frequency RoPE factors (Llama 3.1): n_rot/2 positive values */
    const sg_tensor *rf = NULL;
    TRY(want_tensor(L, &rf, true, T_NORM, hp->n_rot / 2, 0, "rope_freqs.weight"));
    sg_free(&m->alloc, m->rope_factors);
    m->rope_factors = NULL;
    if (rf) {
        m->rope_factors = sg_calloc(&m->alloc, hp->n_rot / 2, sizeof *m->rope_factors);
        if (!m->rope_factors) return sg_error(L->err, SIGMA_E_NOMEM, "out of memory for rope_freqs");
        if (sg_dequantize_row(rf->type, rf->data, m->rope_factors, hp->n_rot / 2) != 0)
            return sg_error(L->err, SIGMA_E_FORMAT, "tensor 'rope_freqs.weight' cannot be read");
        for (uint32_t i = 0; i < hp->n_rot / 2; i++)
            if (!isfinite(m->rope_factors[i]) || m->rope_factors[i] <= 0.0f)
                return sg_error(L->err, SIGMA_E_FORMAT,
                                "tensor 'rope_freqs.weight': element %u = %g must be positive and "
                                "finite",
                                i, (double)m->rope_factors[i]);
    }

    uint64_t np = n_elems(m->tok_embd) + n_elems(m->out_norm) +
                  (hp->tied_output ? 0 : n_elems(m->output));
    const sg_arch_desc *D = L->d;
    for (uint32_t i = 0; i < hp->n_layer; i++) {
        sg_layer *l = &m->layers[i];
#define T(field, kind, a, b, suffix)                                          \
        do {                                                                  \
            snprintf(nm, sizeof nm, "blk.%u." suffix, i);                     \
            TRY(want_tensor(L, &l->field, false, kind, a, b, nm));            \
            np += n_elems(l->field);                                          \
        } while (0)
        T(attn_norm, T_NORM, E, 0, "attn_norm.weight");
        if (D->fused_qkv) {
            T(wqkv, T_MATRIX, E, QD + KD + VD, "attn_qkv.weight");
        } else {
            T(wq, T_MATRIX, E, QD, "attn_q.weight");
            T(wk, T_MATRIX, E, KD, "attn_k.weight");
            T(wv, T_MATRIX, E, VD, "attn_v.weight");
        }
        if (D->qkv_bias) {
            T(bq, T_NORM, QD, 0, "attn_q.bias");
            T(bk, T_NORM, KD, 0, "attn_k.bias");
            T(bv, T_NORM, VD, 0, "attn_v.bias");
        }
        if (D->qk_norm) {
            T(q_norm, T_NORM, hp->d_qk, 0, "attn_q_norm.weight");
            T(k_norm, T_NORM, hp->d_qk, 0, "attn_k_norm.weight");
        }
        T(wo, T_MATRIX, OD, E, "attn_output.weight");
        if (D->post_norms) T(post_attn_norm, T_NORM, E, 0, "post_attention_norm.weight");
        T(ffn_norm, T_NORM, E, 0, "ffn_norm.weight");
        if (D->fused_gate_up) {
            T(w_up, T_MATRIX, E, 2 * F, "ffn_up.weight");
        } else {
            T(w_gate, T_MATRIX, E, F, "ffn_gate.weight");
            T(w_up, T_MATRIX, E, F, "ffn_up.weight");
        }
        T(w_down, T_MATRIX, F, E, "ffn_down.weight");
        if (D->post_norms) T(post_ffn_norm, T_NORM, E, 0, "post_ffw_norm.weight");
        if (hp->d_aug) {
            T(wq_gate, T_MATRIX, QD, hp->d_aug, "attn_q_gate.weight");
            T(wq_up, T_MATRIX, QD, hp->d_aug, "attn_q_up.weight");
            T(wq_down, T_MATRIX, hp->d_aug, QD, "attn_q_down.weight");
        } else {
            static const char *const aug[] = {"attn_q_gate", "attn_q_up", "attn_q_down"};
            for (int k = 0; k < 3; k++) {
                snprintf(nm, sizeof nm, "blk.%u.%s.weight", i, aug[k]);
                if (sg_gguf_tensor(L->g, nm))
                    return sg_error(L->err, SIGMA_E_FORMAT,
                                    "tensor '%s' is present but %s.attention.augq_length is 0 "
                                    "or absent",
                                    nm, L->arch);
            }
        }
        /* sliding-window layers: pattern n, layer i global iff n > 1 and
         * (i + 1) % n == 0; windowed layers may have their own RoPE base */
        bool windowed = hp->n_swa && D->swa_pattern &&
                        !(D->swa_pattern > 1 && (i + 1) % D->swa_pattern == 0);
        l->window = windowed ? hp->n_swa : 0;
        l->rope_theta = windowed && D->swa_rope_theta > 0.0f ? D->swa_rope_theta : hp->rope_theta;
#undef T
    }
#undef TRY
    m->n_params = np;
    return SIGMA_OK;
}

int sg_model_load_arch(struct sigma_model *model, sg_err *err) {
    const sg_gguf *g = model->gguf;
    loader L = {model, g, NULL, NULL, err};
    sg_str a;
    int st = sg_gguf_get_str(g, "general.architecture", &a, err);
    if (st == SIGMA_E_NOT_FOUND)
        return sg_error(err, SIGMA_E_FORMAT, "missing required key 'general.architecture'");
    if (st) return st;
    sg_hparams *hp = &model->hp;
    memset(hp, 0, sizeof *hp);
    L.d = sg_arch_find(a.ptr, (size_t)a.len);
    if (!L.d)
        return sg_error(err, SIGMA_E_UNSUPPORTED,
                        "general.architecture '%.*s' is not supported (supported: llama, sigma, "
                        "qwen2, qwen3, gemma3, gemma2, phi3)",
                        (int)(a.len > 64 ? 64 : a.len), a.ptr);
    hp->arch = L.d->arch;
    hp->desc = L.d;
    L.arch = L.d->name;

    sg_str name = {"", 0};
    st = sg_gguf_get_str(g, "general.name", &name, err);
    if (st && st != SIGMA_E_NOT_FOUND) return st;

    if ((st = read_hparams(&L, hp)) != SIGMA_OK) return st;
    if ((st = read_vocab(&L, hp)) != SIGMA_OK) return st;

    /* every layer needs at least 6 tensors (fused QKV and gate/up): refuse
     * to allocate for more layers than the file could describe */
    if ((uint64_t)hp->n_layer > g->n_tensors / 6)
        return sg_error(err, SIGMA_E_FORMAT, "%s.block_count = %u but the file has only %llu tensors",
                        L.arch, hp->n_layer, (unsigned long long)g->n_tensors);

    /* RoPE scaling: "linear" divides every frequency by rope.scaling.factor;
     * Llama-3.1-style per-frequency factors come as the tensor rope_freqs
     * (read in load_tensors); other kinds (YaRN, ...) are not implemented. */
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", L.arch);
    sg_str scaling;
    hp->rope_freq_scale = 1.0f;
    if (sg_gguf_get_str(g, key, &scaling, NULL) == SIGMA_OK) {
        if (scaling.len == 6 && memcmp(scaling.ptr, "linear", 6) == 0) {
            float factor = 1.0f;
            if ((st = key_f32(&L, "rope.scaling.factor", true, 1.0f, &factor)) != SIGMA_OK) return st;
            if (!isfinite(factor) || factor <= 0.0f || factor > 65536.0f)
                return sg_error(err, SIGMA_E_FORMAT,
                                "%s.rope.scaling.factor = %g is out of range (0, 65536]", L.arch,
                                (double)factor);
            hp->rope_freq_scale = 1.0f / factor;
        } else if (!(scaling.len == 4 && memcmp(scaling.ptr, "none", 4) == 0)) {
            sg_logf(&model->log, SIGMA_LOG_WARN,
                    "%s = '%.*s' is not implemented and ignored: results at long context will "
                    "differ from the model's",
                    key, (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);
        }
    }

    sg_free(&model->alloc, model->layers);
    model->layers = sg_calloc(&model->alloc, hp->n_layer, sizeof *model->layers);
    if (!model->layers) return sg_error(err, SIGMA_E_NOMEM, "out of memory for the layers");
    sg_free(&model->alloc, model->name);
    model->name = sg_strndup(&model->alloc, name.ptr, (size_t)name.len);
    if (!model->name) return sg_error(err, SIGMA_E_NOMEM, "out of memory for the model name");
    return load_tensors(&L);
}
