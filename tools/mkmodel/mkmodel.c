/* sigma-mkmodel: write a random-weight GGUF model of a given shape and type
 * (architectures `llama` and `sigma`), for speed measurements that anyone
 * can reproduce without downloading a model (docs/performance.md).
 *
 *   sigma-mkmodel --preset NAME [options] -o OUT.gguf
 *   sigma-mkmodel --arch llama|sigma --layers N --hidden N --ffn N
 *                 --heads Q[,K[,V]] [--head-dim N] [--aug N] [--vocab N] ... -o OUT.gguf
 *
 * Presets: tinyllama-1.1b (22 layers, hidden 2048, 32/4 heads, FFN 5632,
 * vocab 32000), stories15m (dim 288, 6 layers, 6 heads, FFN 768, vocab
 * 32000, F32), sigma-1.5b (docs/sigma.md §4: 26 layers, hidden 2048,
 * 32/4/16 heads, d 64, FFN 6144, AugQ 3072, vocab 128256, theta 50000) and
 * sigma-1.5b-gqa (its GQA twin: 16/16 K/V heads, no AugQ). Options after the
 * preset override it (--layers 8 keeps runs short).
 *
 * --type f32|f16|bf16|q8_0|q4_0 applies to every 2-D weight (norms stay
 * f32); quantization is done here, the ggml way. The tokenizer is a stub
 * that libsigma and llama.cpp both load: a gpt2 (byte-level BPE) vocabulary
 * whose first 256 tokens are the bytes, the rest "<tN>", one merge. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"

enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q8_0 = 8, T_BF16 = 30 };

typedef struct shape {
    const char *arch;
    uint32_t layers, hidden, ffn, nq, nk, nv, dqk, dv, aug, vocab, ctx;
    float theta, eps;
    int type;
} shape;

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static inline float rndu(void) { /* uniform [-1, 1) */
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((double)(rs >> 40) / 8388608.0 - 1.0);
}

static uint16_t f2h(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        float a;
        memcpy(&a, &ax, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(a * 0x1p24f));
    }
    ax += 0xfffu + ((ax >> 13) & 1u);
    return (uint16_t)(sign | ((ax - 0x38000000u) >> 13));
}

static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Encode n values (a multiple of 32 for the quantized types). */
static size_t encode(int type, const float *v, size_t n, uint8_t *out) {
    switch (type) {
    case T_F32: memcpy(out, v, n * 4); return n * 4;
    case T_F16: for (size_t i = 0; i < n; i++) put16(out + 2 * i, f2h(v[i])); return n * 2;
    case T_BF16: for (size_t i = 0; i < n; i++) put16(out + 2 * i, f2bf(v[i])); return n * 2;
    case T_Q8_0:
        for (size_t b = 0; b < n / 32; b++) {
            const float *x = v + b * 32;
            uint8_t *o = out + b * 34;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            put16(o, f2h(d));
            for (int j = 0; j < 32; j++) o[2 + j] = (uint8_t)(int8_t)lrintf(x[j] * id);
        }
        return n / 32 * 34;
    default: /* Q4_0: d = (value of largest magnitude) / -8 */
        for (size_t b = 0; b < n / 32; b++) {
            const float *x = v + b * 32;
            uint8_t *o = out + b * 18;
            float amax = 0, mx = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(x[j]) > amax) {
                    amax = fabsf(x[j]);
                    mx = x[j];
                }
            float d = mx / -8.0f, id = d ? 1.0f / d : 0.0f;
            put16(o, f2h(d));
            for (int j = 0; j < 16; j++) {
                int q0 = (int)(x[j] * id + 8.5f), q1 = (int)(x[j + 16] * id + 8.5f);
                q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
                q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
                o[2 + j] = (uint8_t)(q0 | (q1 << 4));
            }
        }
        return n / 32 * 18;
    }
}

static size_t type_bytes(int type, size_t n) {
    switch (type) {
    case T_F32: return n * 4;
    case T_F16: case T_BF16: return n * 2;
    case T_Q8_0: return n / 32 * 34;
    default: return n / 32 * 18;
    }
}

/* A tensor of ne0 x ne1 random values, uniform with standard deviation
 * `sd` around `mean`, encoded as `type` row by row. */
static int add_tensor(gw_writer *w, const char *name, int type, uint64_t ne0, uint64_t ne1, float mean,
                      float sd) {
    if (type != T_F32 && type != T_F16 && type != T_BF16 && ne0 % 32) type = T_F16;
    size_t rb = type_bytes(type, ne0);
    uint8_t *data = malloc(rb * ne1);
    float *row = malloc(ne0 * sizeof *row);
    if (!data || !row) {
        free(data);
        free(row);
        return -1;
    }
    const float a = sd * 1.7320508f;
    for (uint64_t r = 0; r < ne1; r++) {
        for (uint64_t i = 0; i < ne0; i++) row[i] = mean + a * rndu();
        encode(type, row, ne0, data + r * rb);
    }
    uint64_t ne[2] = {ne0, ne1};
    int rc = gw_tensor(w, name, (uint32_t)type, ne1 > 1 ? 2 : 1, ne, data, rb * ne1);
    free(data);
    free(row);
    return rc;
}

static int preset(const char *name, shape *s) {
    memset(s, 0, sizeof *s);
    s->arch = "llama";
    s->eps = 1e-5f;
    s->theta = 10000.0f;
    s->type = T_F16;
    s->ctx = 32768;
    if (!strcmp(name, "tinyllama-1.1b")) {
        s->layers = 22; s->hidden = 2048; s->ffn = 5632; s->nq = 32; s->nk = s->nv = 4;
        s->dqk = s->dv = 64; s->vocab = 32000;
    } else if (!strcmp(name, "stories15m")) {
        s->layers = 6; s->hidden = 288; s->ffn = 768; s->nq = s->nk = s->nv = 6;
        s->dqk = s->dv = 48; s->vocab = 32000; s->type = T_F32;
    } else if (!strcmp(name, "sigma-1.5b") || !strcmp(name, "sigma-1.5b-gqa")) {
        s->arch = "sigma";
        s->layers = 26; s->hidden = 2048; s->ffn = 6144; s->nq = 32; s->nk = 4; s->nv = 16;
        s->dqk = s->dv = 64; s->aug = 3072; s->vocab = 128256; s->theta = 50000.0f;
        if (strstr(name, "gqa")) {
            s->nk = s->nv = 16;
            s->aug = 0;
        }
    } else {
        return -1;
    }
    return 0;
}

static int parse_type(const char *t) {
    if (!strcmp(t, "f32")) return T_F32;
    if (!strcmp(t, "f16")) return T_F16;
    if (!strcmp(t, "bf16")) return T_BF16;
    if (!strcmp(t, "q8_0")) return T_Q8_0;
    if (!strcmp(t, "q4_0")) return T_Q4_0;
    return -1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: sigma-mkmodel [--preset tinyllama-1.1b|stories15m|sigma-1.5b|sigma-1.5b-gqa]\n"
            "         [--arch llama|sigma] [--layers N] [--hidden N] [--ffn N] [--heads Q[,K[,V]]]\n"
            "         [--head-dim N] [--aug N] [--vocab N] [--ctx N] [--theta F]\n"
            "         [--type f32|f16|bf16|q8_0|q4_0] [--seed N] -o OUT.gguf\n");
}

/* GPT-2's byte -> printable code point mapping, as UTF-8. */
static void byte_token(int b, char *out) {
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
        cp = b;
    } else {
        int k = 0; /* index among the remapped bytes */
        for (int c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

int main(int argc, char **argv) {
    shape s;
    preset("tinyllama-1.1b", &s);
    const char *out = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--preset")) {
            if (preset(v, &s)) {
                fprintf(stderr, "sigma-mkmodel: unknown preset %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--arch")) s.arch = !strcmp(v, "sigma") ? "sigma" : "llama";
        else if (!strcmp(a, "--layers")) s.layers = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--hidden")) s.hidden = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--ffn")) s.ffn = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--head-dim")) s.dqk = s.dv = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--aug")) s.aug = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--vocab")) s.vocab = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--ctx")) s.ctx = (uint32_t)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--theta")) s.theta = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) rs = strtoull(v, NULL, 10) * 0x9E3779B97F4A7C15ull + 1;
        else if (!strcmp(a, "--heads")) {
            unsigned q = 0, k = 0, vv = 0;
            int n = sscanf(v, "%u,%u,%u", &q, &k, &vv);
            if (n < 1) { usage(); return 2; }
            s.nq = q;
            s.nk = n >= 2 ? k : q;
            s.nv = n >= 3 ? vv : s.nk;
        } else if (!strcmp(a, "--type")) {
            if ((s.type = parse_type(v)) < 0) {
                fprintf(stderr, "sigma-mkmodel: unknown type %s\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "sigma-mkmodel: unknown option %s\n", a);
            usage();
            return 2;
        }
    }
    int sigma = !strcmp(s.arch, "sigma");
    if (!out || !s.layers || !s.hidden || !s.ffn || !s.nq || !s.nk || !s.nv || !s.dqk || !s.vocab ||
        s.nq % s.nk || s.nq % s.nv || s.vocab < 260 || (!sigma && (s.nk != s.nv || s.aug))) {
        fprintf(stderr, "sigma-mkmodel: missing -o or inconsistent shape (llama needs K = V heads, no AugQ)\n");
        usage();
        return 2;
    }
    gw_writer *w = gw_new();
    if (!w) return 1;
    char k[128];
#define KEY(x) (snprintf(k, sizeof k, "%s.%s", s.arch, x), k)
    gw_kv_str(w, "general.architecture", s.arch);
    gw_kv_str(w, "general.name", "random-weights");
    gw_kv_u32(w, "general.file_type", s.type == T_F32 ? 0 : s.type == T_F16 ? 1 : s.type == T_Q4_0 ? 2
                                      : s.type == T_Q8_0 ? 7 : 32);
    gw_kv_u32(w, KEY("context_length"), s.ctx);
    gw_kv_u32(w, KEY("embedding_length"), s.hidden);
    gw_kv_u32(w, KEY("block_count"), s.layers);
    gw_kv_u32(w, KEY("feed_forward_length"), s.ffn);
    gw_kv_u32(w, KEY("attention.head_count"), s.nq);
    if (sigma) {
        gw_kv_u32(w, KEY("attention.head_count_k"), s.nk);
        gw_kv_u32(w, KEY("attention.head_count_v"), s.nv);
        gw_kv_u32(w, KEY("attention.key_length"), s.dqk);
        gw_kv_u32(w, KEY("attention.value_length"), s.dv);
        gw_kv_u32(w, KEY("attention.augq_length"), s.aug);
    } else {
        gw_kv_u32(w, KEY("attention.head_count_kv"), s.nk);
        if (s.dqk * s.nq != s.hidden) gw_kv_u32(w, KEY("attention.key_length"), s.dqk);
        if (s.dv * s.nq != s.hidden) gw_kv_u32(w, KEY("attention.value_length"), s.dv);
    }
    gw_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), s.eps);
    gw_kv_f32(w, KEY("rope.freq_base"), s.theta);
    gw_kv_u32(w, KEY("rope.dimension_count"), s.dqk);
    gw_kv_u32(w, KEY("vocab_size"), s.vocab);
#undef KEY
    /* tokenizer stub */
    char **toks = calloc(s.vocab, sizeof *toks);
    int32_t *types = calloc(s.vocab, sizeof *types);
    if (!toks || !types) return 1;
    for (uint32_t i = 0; i < s.vocab; i++) {
        toks[i] = malloc(16);
        if (i < 256) byte_token((int)i, toks[i]);
        else snprintf(toks[i], 16, "<t%u>", i);
        types[i] = i < 256 ? 1 : 1;
    }
    const char *merges[1] = {"Ġ t"};
    gw_kv_str(w, "tokenizer.ggml.model", "gpt2");
    gw_kv_str(w, "tokenizer.ggml.pre", "default"); /* llama.cpp does not know "gpt2" */
    gw_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, s.vocab);
    gw_kv_arr(w, "tokenizer.ggml.token_type", GW_I32, types, s.vocab);
    gw_kv_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    gw_kv_u32(w, "tokenizer.ggml.bos_token_id", 256);
    gw_kv_u32(w, "tokenizer.ggml.eos_token_id", 257);
    gw_kv_bool(w, "tokenizer.ggml.add_bos_token", 0);
    for (uint32_t i = 0; i < s.vocab; i++) free(toks[i]);
    free(toks);
    free(types);

    const int t = s.type;
    const uint32_t QD = s.nq * s.dqk, KD = s.nk * s.dqk, VD = s.nv * s.dv, AD = s.nq * s.dv;
    int rc = 0;
    rc |= add_tensor(w, "token_embd.weight", t, s.hidden, s.vocab, 0.0f, 0.02f);
    rc |= add_tensor(w, "output_norm.weight", T_F32, s.hidden, 1, 1.0f, 0.05f);
    rc |= add_tensor(w, "output.weight", t, s.hidden, s.vocab, 0.0f, 1.0f / sqrtf((float)s.hidden));
    for (uint32_t l = 0; l < s.layers && !rc; l++) {
        char n[96];
#define T(name, type, a0, a1, mean, sd) \
    (snprintf(n, sizeof n, "blk.%u.%s.weight", l, name), add_tensor(w, n, type, a0, a1, mean, sd))
        rc |= T("attn_norm", T_F32, s.hidden, 1, 1.0f, 0.05f);
        rc |= T("attn_q", t, s.hidden, QD, 0.0f, 1.0f / sqrtf((float)s.hidden));
        rc |= T("attn_k", t, s.hidden, KD, 0.0f, 1.0f / sqrtf((float)s.hidden));
        rc |= T("attn_v", t, s.hidden, VD, 0.0f, 1.0f / sqrtf((float)s.hidden));
        if (s.aug) {
            rc |= T("attn_q_gate", t, QD, s.aug, 0.0f, 1.0f / sqrtf((float)QD));
            rc |= T("attn_q_up", t, QD, s.aug, 0.0f, 1.0f / sqrtf((float)QD));
            rc |= T("attn_q_down", t, s.aug, QD, 0.0f, 1.0f / sqrtf((float)s.aug));
        }
        rc |= T("attn_output", t, AD, s.hidden, 0.0f, 0.5f / sqrtf((float)AD));
        rc |= T("ffn_norm", T_F32, s.hidden, 1, 1.0f, 0.05f);
        rc |= T("ffn_gate", t, s.hidden, s.ffn, 0.0f, 1.0f / sqrtf((float)s.hidden));
        rc |= T("ffn_up", t, s.hidden, s.ffn, 0.0f, 1.0f / sqrtf((float)s.hidden));
        rc |= T("ffn_down", t, s.ffn, s.hidden, 0.0f, 0.5f / sqrtf((float)s.ffn));
#undef T
    }
    if (rc || gw_write_file(w, out) != 0) {
        fprintf(stderr, "sigma-mkmodel: failed to write %s\n", out);
        gw_free(w);
        return 1;
    }
    gw_free(w);
    return 0;
}
