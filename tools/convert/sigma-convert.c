/* sigma-convert: Hugging Face checkpoint (safetensors + config.json +
 * tokenizer.json) -> GGUF, for Llama (arch "llama", written like llama.cpp's
 * converter writes it) and Sigma (arch "sigma", docs/model-format.md).
 *
 *   sigma-convert [--outtype f32|f16|bf16|q8_0] [--name NAME] [--no-vocab]
 *                 CHECKPOINT_DIR OUT.gguf
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cvutil.h"
#include "gguf_writer.h"
#include "numconv.h"
#include "safetensors.h"
#include "vocab.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sigma-convert writes GGUF (little-endian) from host memory: little-endian hosts only"
#endif

enum { ARCH_LLAMA, ARCH_SIGMA };

/* GGUF general.file_type values (llama.cpp's LLAMA_FTYPE numbering). */
enum { FTYPE_ALL_F32 = 0, FTYPE_MOSTLY_F16 = 1, FTYPE_MOSTLY_Q8_0 = 7, FTYPE_MOSTLY_BF16 = 32 };

typedef struct hparams {
    int arch;
    uint32_t hidden, n_layer, n_ff, vocab, ctx;
    uint32_t n_q, n_k, n_v;   /* llama: n_k = n_v = head_count_kv */
    uint32_t d_qk, d_v, d_aug;
    int has_ctx, has_head_dim;
    double eps, theta;
    int tied;
    /* llama rope scaling */
    int rope_linear, rope_llama3;
    double rope_factor, rope_low, rope_high, rope_orig_ctx;
} hparams;

/* One tensor to write. */
typedef struct plan {
    char src[160], dst[96];
    uint32_t n_dims;
    uint64_t rows, cols;  /* expected [rows, cols] (cols contiguous); 1-D: rows = 1 */
    uint32_t permute_heads; /* llama Q/K: number of heads, else 0 */
    const cv_st_tensor *t;
} plan;

typedef struct opts {
    uint32_t outtype;
    const char *name;
    int no_vocab;
    const char *dir, *out;
} opts;

static void usage(FILE *f) {
    fputs("usage: sigma-convert [--outtype f32|f16|bf16|q8_0] [--name NAME] [--no-vocab]\n"
          "                     CHECKPOINT_DIR OUT.gguf\n"
          "Converts a Hugging Face checkpoint (config.json, model.safetensors or sharded\n"
          "model-*.safetensors with model.safetensors.index.json, tokenizer.json) of a\n"
          "LlamaForCausalLM or SigmaForCausalLM model to GGUF. Default outtype: f16.\n",
          f);
}

static int parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->outtype = CV_T_F16;
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--outtype") == 0 && i + 1 < argc) {
            const char *t = argv[++i];
            if (strcmp(t, "f32") == 0) o->outtype = CV_T_F32;
            else if (strcmp(t, "f16") == 0) o->outtype = CV_T_F16;
            else if (strcmp(t, "bf16") == 0) o->outtype = CV_T_BF16;
            else if (strcmp(t, "q8_0") == 0) o->outtype = CV_T_Q8_0;
            else return cv_error("unknown --outtype \"%s\" (f32, f16, bf16 or q8_0)", t);
        } else if (strcmp(a, "--name") == 0 && i + 1 < argc) {
            o->name = argv[++i];
        } else if (strcmp(a, "--no-vocab") == 0) {
            o->no_vocab = 1;
        } else if (a[0] == '-' && a[1] != 0) {
            usage(stderr);
            return cv_error("unknown or incomplete option \"%s\"", a);
        } else if (npos == 0) {
            o->dir = a;
            npos++;
        } else if (npos == 1) {
            o->out = a;
            npos++;
        } else {
            usage(stderr);
            return cv_error("too many arguments");
        }
    }
    if (npos != 2) {
        usage(stderr);
        return cv_error("expected CHECKPOINT_DIR and OUT.gguf");
    }
    return 0;
}

static int has_string(const cJSON *arr, const char *s) {
    const cJSON *it;
    if (!cJSON_IsArray(arr)) return 0;
    cJSON_ArrayForEach(it, arr) {
        if (cJSON_IsString(it) && strcmp(it->valuestring, s) == 0) return 1;
    }
    return 0;
}

/* Required / optional u32 config fields. */
static int need_u32(const cJSON *c, const char *key, uint32_t *out) {
    int r = cv_json_u32(c, key, out, "config.json");
    if (r < 0) return -1;
    if (r == 0) return cv_error("config.json: missing \"%s\"", key);
    if (*out == 0) return cv_error("config.json: \"%s\" must be positive", key);
    return 0;
}

static int opt_u32(const cJSON *c, const char *key, uint32_t *out, uint32_t dflt) {
    int r = cv_json_u32(c, key, out, "config.json");
    if (r < 0) return -1;
    if (r == 0) *out = dflt;
    return 0;
}

static int read_hparams(const cJSON *c, hparams *h) {
    memset(h, 0, sizeof *h);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const char *mt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "model_type"));
    if (has_string(archs, "SigmaForCausalLM") || (mt && strcmp(mt, "sigma") == 0)) {
        h->arch = ARCH_SIGMA;
    } else if (has_string(archs, "LlamaForCausalLM") || (mt && strcmp(mt, "llama") == 0)) {
        h->arch = ARCH_LLAMA;
    } else {
        const char *a = cJSON_IsArray(archs)
                            ? cJSON_GetStringValue(cJSON_GetArrayItem(archs, 0)) : NULL;
        return cv_error("config.json: unsupported architecture \"%s\" (supported: "
                        "LlamaForCausalLM, SigmaForCausalLM)", a ? a : (mt ? mt : "(none)"));
    }
    if (need_u32(c, "hidden_size", &h->hidden) || need_u32(c, "num_hidden_layers", &h->n_layer) ||
        need_u32(c, "intermediate_size", &h->n_ff) || need_u32(c, "num_attention_heads", &h->n_q) ||
        need_u32(c, "vocab_size", &h->vocab))
        return -1;
    int r = cv_json_u32(c, "max_position_embeddings", &h->ctx, "config.json");
    if (r < 0) return -1;
    h->has_ctx = r;
    r = cv_json_u32(c, "head_dim", &h->d_qk, "config.json");
    if (r < 0) return -1;
    h->has_head_dim = r == 1 && h->d_qk != 0;
    if (!h->has_head_dim) {
        if (h->hidden % h->n_q)
            return cv_error("config.json: hidden_size %u is not a multiple of num_attention_heads "
                            "%u (give head_dim)", h->hidden, h->n_q);
        h->d_qk = h->hidden / h->n_q;
    }
    uint32_t n_kv;
    if (opt_u32(c, "num_key_value_heads", &n_kv, h->n_q)) return -1;
    if (n_kv == 0) return cv_error("config.json: \"num_key_value_heads\" must be positive");
    h->eps = 1e-6;
    h->theta = 10000.0;
    if (cv_json_f64(c, "rms_norm_eps", &h->eps, "config.json") < 0 ||
        cv_json_f64(c, "rope_theta", &h->theta, "config.json") < 0 ||
        cv_json_bool(c, "tie_word_embeddings", &h->tied, "config.json") < 0)
        return -1;
    if (!(h->eps > 0) || !(h->theta > 0))
        return cv_error("config.json: rms_norm_eps and rope_theta must be positive");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(c, "rope_scaling");
    if (h->arch == ARCH_SIGMA) {
        if (opt_u32(c, "num_key_heads", &h->n_k, n_kv) || opt_u32(c, "num_value_heads", &h->n_v, n_kv) ||
            opt_u32(c, "value_head_dim", &h->d_v, h->d_qk) || opt_u32(c, "aug_q_dim", &h->d_aug, 0))
            return -1;
        if (h->d_v == 0) h->d_v = h->d_qk;
        if (h->n_k == 0 || h->n_v == 0)
            return cv_error("config.json: num_key_heads and num_value_heads must be positive");
        if (rs && !cJSON_IsNull(rs))
            return cv_error("config.json: rope_scaling is not supported for Sigma models");
    } else {
        h->n_k = h->n_v = n_kv;
        h->d_v = h->d_qk;
        if (h->d_qk % 2)
            return cv_error("config.json: head dimension %u is odd (RoPE needs pairs)", h->d_qk);
        if (rs && !cJSON_IsNull(rs)) {
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs, "rope_type"));
            if (!t) t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rs, "type"));
            h->rope_factor = 8.0;
            h->rope_low = 1.0;
            h->rope_high = 4.0;
            h->rope_orig_ctx = 8192.0;
            if (cv_json_f64(rs, "factor", &h->rope_factor, "config.json rope_scaling") < 0 ||
                cv_json_f64(rs, "low_freq_factor", &h->rope_low, "config.json rope_scaling") < 0 ||
                cv_json_f64(rs, "high_freq_factor", &h->rope_high, "config.json rope_scaling") < 0 ||
                cv_json_f64(rs, "original_max_position_embeddings", &h->rope_orig_ctx,
                            "config.json rope_scaling") < 0)
                return -1;
            if (t && strcmp(t, "linear") == 0) {
                h->rope_linear = 1;
            } else if (t && strcmp(t, "llama3") == 0) {
                h->rope_llama3 = 1;
                if (h->rope_low == h->rope_high || !(h->rope_factor > 0))
                    return cv_error("config.json: invalid llama3 rope_scaling");
            } else if (!(t && strcmp(t, "default") == 0)) {
                return cv_error("config.json: rope_scaling type \"%s\" is not supported",
                                t ? t : "(none)");
            }
        }
    }
    if (h->n_q % h->n_k || h->n_q % h->n_v)
        return cv_error("config.json: num_attention_heads %u must be a multiple of the key (%u) "
                        "and value (%u) head counts", h->n_q, h->n_k, h->n_v);
    return 0;
}

static int add_plan(plan **ps, size_t *n, size_t *cap, const char *src, const char *dst,
                    uint32_t n_dims, uint64_t rows, uint64_t cols, uint32_t permute) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        plan *np = realloc(*ps, nc * sizeof *np);
        if (!np) return cv_error("out of memory");
        *ps = np;
        *cap = nc;
    }
    plan *p = &(*ps)[(*n)++];
    memset(p, 0, sizeof *p);
    snprintf(p->src, sizeof p->src, "%s", src);
    snprintf(p->dst, sizeof p->dst, "%s", dst);
    p->n_dims = n_dims;
    p->rows = rows;
    p->cols = cols;
    p->permute_heads = permute;
    return 0;
}

static int build_plan(const hparams *h, plan **ps, size_t *n) {
    size_t cap = 0;
    uint64_t H = h->hidden, q = (uint64_t)h->n_q * h->d_qk, k = (uint64_t)h->n_k * h->d_qk;
    uint64_t v = (uint64_t)h->n_v * h->d_v, o = (uint64_t)h->n_q * h->d_v;
    int llama = h->arch == ARCH_LLAMA;
    *n = 0;
    *ps = NULL;
#define ADD(s, d, nd, r, c, pm) \
    if (add_plan(ps, n, &cap, s, d, nd, r, c, pm)) return -1
    ADD("model.embed_tokens.weight", "token_embd.weight", 2, h->vocab, H, 0);
    for (uint32_t l = 0; l < h->n_layer; l++) {
        char s[160], d[96];
#define LAYER(sfx, dsfx, nd, r, c, pm)                            \
    snprintf(s, sizeof s, "model.layers.%u.%s.weight", l, sfx);   \
    snprintf(d, sizeof d, "blk.%u.%s.weight", l, dsfx);           \
    ADD(s, d, nd, r, c, pm)
        LAYER("input_layernorm", "attn_norm", 1, 1, H, 0);
        LAYER("self_attn.q_proj", "attn_q", 2, q, H, llama ? h->n_q : 0);
        LAYER("self_attn.k_proj", "attn_k", 2, k, H, llama ? h->n_k : 0);
        LAYER("self_attn.v_proj", "attn_v", 2, v, H, 0);
        if (h->d_aug) {
            LAYER("self_attn.q_gate_proj", "attn_q_gate", 2, h->d_aug, q, 0);
            LAYER("self_attn.q_up_proj", "attn_q_up", 2, h->d_aug, q, 0);
            LAYER("self_attn.q_down_proj", "attn_q_down", 2, q, h->d_aug, 0);
        }
        LAYER("self_attn.o_proj", "attn_output", 2, H, o, 0);
        LAYER("post_attention_layernorm", "ffn_norm", 1, 1, H, 0);
        LAYER("mlp.gate_proj", "ffn_gate", 2, h->n_ff, H, 0);
        LAYER("mlp.up_proj", "ffn_up", 2, h->n_ff, H, 0);
        LAYER("mlp.down_proj", "ffn_down", 2, H, h->n_ff, 0);
#undef LAYER
    }
    ADD("model.norm.weight", "output_norm.weight", 1, 1, H, 0);
    if (!h->tied) ADD("lm_head.weight", "output.weight", 2, h->vocab, H, 0);
#undef ADD
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Look up and validate every planned tensor; reject leftovers. */
static int resolve_plan(cv_st *st, plan *ps, size_t n, const hparams *h) {
    for (size_t i = 0; i < n; i++) {
        plan *p = &ps[i];
        const cv_st_tensor *t = cv_st_find(st, p->src);
        if (!t) return cv_error("missing tensor %s", p->src);
        if (t->dtype != CV_ST_F32 && t->dtype != CV_ST_F16 && t->dtype != CV_ST_BF16)
            return cv_error("tensor %s: dtype %s is not supported (F32, F16, BF16)", p->src,
                            cv_st_dtype_name(t->dtype));
        int ok = t->n_dims == p->n_dims &&
                 (p->n_dims == 1 ? t->shape[0] == p->cols
                                 : t->shape[0] == p->rows && t->shape[1] == p->cols);
        if (!ok) {
            char got[128] = "[", want[64];
            for (uint32_t d = 0; d < t->n_dims; d++) {
                size_t len = strlen(got);
                snprintf(got + len, sizeof got - len, "%s%llu", d ? ", " : "",
                         (unsigned long long)t->shape[d]);
            }
            strncat(got, "]", sizeof got - strlen(got) - 1);
            if (p->n_dims == 1)
                snprintf(want, sizeof want, "[%llu]", (unsigned long long)p->cols);
            else
                snprintf(want, sizeof want, "[%llu, %llu]", (unsigned long long)p->rows,
                         (unsigned long long)p->cols);
            return cv_error("tensor %s has shape %s, expected %s from config.json", p->src, got,
                            want);
        }
        p->t = t;
        ((cv_st_tensor *)t)->used = 1;
    }
    for (size_t i = 0; i < st->n; i++) {
        cv_st_tensor *t = &st->t[i];
        if (t->used) continue;
        if (ends_with(t->name, ".rotary_emb.inv_freq")) continue;
        if (h->tied && strcmp(t->name, "lm_head.weight") == 0) {
            cv_note("tie_word_embeddings is set: ignoring lm_head.weight");
            continue;
        }
        return cv_error("unexpected tensor %s (not part of a %s model with this config)", t->name,
                        h->arch == ARCH_SIGMA ? "sigma" : "llama");
    }
    return 0;
}

/* Source row for output row r of a llama Q/K weight: llama.cpp's converter
 * reshapes rows to (n_head, 2, head_dim/2), swaps the last two axes and
 * flattens, so that RoPE pairs (i, i + head_dim/2) become adjacent rows. */
static uint64_t permuted_row(uint64_t r, uint64_t rows, uint32_t n_head) {
    uint64_t hd = rows / n_head, half = hd / 2;
    uint64_t head = r / hd, w = r % hd;
    return head * hd + (w % 2) * half + w / 2;
}

static int convert_tensor(gw_writer *w, const plan *p, uint32_t outtype, uint64_t *total) {
    const cv_st_tensor *t = p->t;
    uint64_t rows = p->rows, cols = p->cols;
    uint32_t type = p->n_dims == 1 ? CV_T_F32 : outtype;
    if (type == CV_T_Q8_0 && cols % CV_QK8_0) {
        cv_note("%s: row length %llu is not a multiple of %d, writing f16 instead of q8_0",
                p->dst, (unsigned long long)cols, CV_QK8_0);
        type = CV_T_F16;
    }
    uint64_t row_bytes = cv_row_bytes(type, cols), nbytes;
    if (row_bytes == 0 || cv_mul_u64(row_bytes, rows, &nbytes) != 0 || nbytes > SIZE_MAX ||
        cols > SIZE_MAX / sizeof(float))
        return cv_error("tensor %s is too large", p->src);
    uint8_t *buf = malloc(nbytes ? (size_t)nbytes : 1);
    float *row = malloc((size_t)cols * sizeof *row + 1);
    if (!buf || !row) {
        free(buf);
        free(row);
        return cv_error("out of memory converting %s", p->src);
    }
    uint64_t nonfinite = 0;
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t sr = p->permute_heads ? permuted_row(r, rows, p->permute_heads) : r;
        cv_st_read_f32(t, sr * cols, cols, row);
        for (uint64_t i = 0; i < cols; i++) nonfinite += !isfinite(row[i]);
        cv_encode_row(type, row, cols, buf + r * row_bytes);
    }
    free(row);
    if (nonfinite)
        cv_note("warning: %s has %llu non-finite values", p->src, (unsigned long long)nonfinite);
    uint64_t ne[2] = {cols, rows};
    int rc = gw_tensor(w, p->dst, type, p->n_dims, ne, buf, (size_t)nbytes);
    free(buf);
    if (rc != 0) return cv_error("out of memory adding %s", p->dst);
    *total += nbytes;
    return 0;
}

/* Llama-3 style rope scaling: per-frequency factors, as llama.cpp stores
 * them in rope_freqs.weight. */
static int add_rope_freqs(gw_writer *w, const hparams *h) {
    uint32_t n = h->d_qk / 2;
    float *f = malloc(n * sizeof *f + 1);
    if (!f) return cv_error("out of memory");
    const double pi = 3.14159265358979323846;
    double low_wl = h->rope_orig_ctx / h->rope_low, high_wl = h->rope_orig_ctx / h->rope_high;
    for (uint32_t i = 0; i < n; i++) {
        double freq = 1.0 / pow(h->theta, (double)(2 * i) / (double)h->d_qk);
        double wl = 2 * pi / freq;
        double v;
        if (wl < high_wl) {
            v = 1.0;
        } else if (wl > low_wl) {
            v = h->rope_factor;
        } else {
            double smooth = (h->rope_orig_ctx / wl - h->rope_low) / (h->rope_high - h->rope_low);
            v = 1.0 / ((1 - smooth) / h->rope_factor + smooth);
        }
        f[i] = (float)v;
    }
    uint64_t ne[1] = {n};
    int rc = gw_tensor(w, "rope_freqs.weight", CV_T_F32, 1, ne, f, n * sizeof *f);
    free(f);
    return rc ? cv_error("out of memory") : 0;
}

static int write_hparams(gw_writer *w, const hparams *h, const char *name, uint32_t ftype) {
    const char *a = h->arch == ARCH_SIGMA ? "sigma" : "llama";
    char key[96];
    int rc = 0;
#define KU32(k, v) (snprintf(key, sizeof key, "%s." k, a), rc |= gw_kv_u32(w, key, v))
#define KF32(k, v) (snprintf(key, sizeof key, "%s." k, a), rc |= gw_kv_f32(w, key, (float)(v)))
    rc |= gw_kv_str(w, "general.architecture", a);
    rc |= gw_kv_str(w, "general.type", "model");
    rc |= gw_kv_str(w, "general.name", name);
    KU32("block_count", h->n_layer);
    if (h->has_ctx) KU32("context_length", h->ctx);
    KU32("embedding_length", h->hidden);
    KU32("feed_forward_length", h->n_ff);
    KU32("attention.head_count", h->n_q);
    if (h->arch == ARCH_LLAMA) {
        KU32("attention.head_count_kv", h->n_k);
    } else {
        KU32("attention.head_count_k", h->n_k);
        KU32("attention.head_count_v", h->n_v);
    }
    KF32("rope.freq_base", h->theta);
    KF32("attention.layer_norm_rms_epsilon", h->eps);
    if (h->arch == ARCH_SIGMA || h->has_head_dim) {
        KU32("attention.key_length", h->d_qk);
        KU32("attention.value_length", h->d_v);
    }
    if (h->arch == ARCH_SIGMA) KU32("attention.augq_length", h->d_aug);
    rc |= gw_kv_u32(w, "general.file_type", ftype);
    KU32("vocab_size", h->vocab);
    KU32("rope.dimension_count", h->d_qk);
    if (h->rope_linear) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        rc |= gw_kv_str(w, key, "linear");
        KF32("rope.scaling.factor", h->rope_factor);
    }
#undef KU32
#undef KF32
    return rc ? cv_error("out of memory") : 0;
}

static char *default_name(const char *dir) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') start--;
    char *s = malloc(len - start + 1);
    if (!s) return NULL;
    memcpy(s, dir + start, len - start);
    s[len - start] = 0;
    return s;
}

static int run(const opts *o) {
    int rc = -1;
    cJSON *config = NULL;
    cv_st st;
    memset(&st, 0, sizeof st);
    gw_writer *w = NULL;
    plan *ps = NULL;
    size_t n_plan = 0;
    char *name = NULL;
    hparams h;

    char *cp = cv_path_join(o->dir, "config.json");
    if (!cp) return cv_error("out of memory");
    int missing = 0;
    config = cv_load_json(cp, &missing);
    if (!config && missing) cv_error("%s: no config.json", o->dir);
    free(cp);
    if (!config) goto done;
    if (!cJSON_IsObject(config)) {
        cv_error("config.json is not a JSON object");
        goto done;
    }
    if (read_hparams(config, &h) != 0) goto done;
    if (build_plan(&h, &ps, &n_plan) != 0) goto done;
    if (cv_st_open_dir(&st, o->dir) != 0) goto done;
    if (resolve_plan(&st, ps, n_plan, &h) != 0) goto done;

    name = o->name ? strdup(o->name) : default_name(o->dir);
    w = gw_new();
    if (!name || !w) {
        cv_error("out of memory");
        goto done;
    }
    uint32_t ftype = o->outtype == CV_T_F32    ? FTYPE_ALL_F32
                     : o->outtype == CV_T_F16  ? FTYPE_MOSTLY_F16
                     : o->outtype == CV_T_BF16 ? FTYPE_MOSTLY_BF16
                                               : FTYPE_MOSTLY_Q8_0;
    if (write_hparams(w, &h, name, ftype) != 0) goto done;
    if (!o->no_vocab) {
        uint32_t nv = h.vocab;
        if (cv_vocab_write(w, o->dir, config, &nv) != 0) goto done;
    }
    if (gw_kv_u32(w, "general.quantization_version", 2) != 0) {
        cv_error("out of memory");
        goto done;
    }
    uint64_t total = 0;
    if (h.rope_llama3 && add_rope_freqs(w, &h) != 0) goto done;
    for (size_t i = 0; i < n_plan; i++)
        if (convert_tensor(w, &ps[i], o->outtype, &total) != 0) goto done;
    if (gw_write_file(w, o->out) != 0) {
        remove(o->out); /* no partial file */
        cv_error("cannot write %s", o->out);
        goto done;
    }
    cv_note("wrote %s: arch %s, %zu tensors, %.1f MiB of tensor data, outtype %s", o->out,
            h.arch == ARCH_SIGMA ? "sigma" : "llama", n_plan + (h.rope_llama3 ? 1 : 0),
            (double)total / (1024.0 * 1024.0), cv_type_name(o->outtype));
    rc = 0;
done:
    gw_free(w);
    free(name);
    free(ps);
    cv_st_close(&st);
    cJSON_Delete(config);
    return rc;
}

int main(int argc, char **argv) {
    opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;
    return run(&o) == 0 ? 0 : 1;
}
