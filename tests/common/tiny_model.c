/* Tiny random models for tests, written as GGUF images in memory with
 * tools/common/gguf_writer.h. Deterministic for a given kind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "sigma/sigma.h"
#include "tiny_model.h"

static uint64_t rng_state; /* test helper state, single-threaded use */
static float rndf(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint16_t f16(float f) {
    uint16_t h;
    sigma_kernel_f32_to_f16(&h, &f, 1);
    return h;
}

/* Encode n random values (scale s) as `type` (F32, F16, Q4_0, Q8_0 or Q4_1). */
static uint8_t *make_data(uint32_t type, size_t n, float s, size_t *nbytes) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = rndf() * s;
    uint8_t *out;
    if (type == 0) {
        *nbytes = n * 4;
        out = malloc(*nbytes);
        memcpy(out, v, *nbytes);
    } else if (type == 1) {
        *nbytes = n * 2;
        out = malloc(*nbytes);
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f16(v[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    } else if (type == 8) { /* Q8_0 */
        *nbytes = n / 32 * 34;
        out = malloc(*nbytes);
        for (size_t b = 0; b < n / 32; b++) {
            float mx = 0;
            for (int j = 0; j < 32; j++) mx = fmaxf(mx, fabsf(v[b * 32 + j]));
            float d = mx / 127.0f;
            uint16_t h = f16(d);
            memcpy(out + b * 34, &h, 2);
            for (int j = 0; j < 32; j++)
                out[b * 34 + 2 + j] = (uint8_t)(int8_t)lrintf(d ? v[b * 32 + j] / d : 0);
        }
    } else if (type == 2) { /* Q4_0 */
        *nbytes = n / 32 * 18;
        out = malloc(*nbytes);
        for (size_t b = 0; b < n / 32; b++) {
            float mx = 0;
            for (int j = 0; j < 32; j++) mx = fmaxf(mx, fabsf(v[b * 32 + j]));
            float d = mx / 8.0f;
            uint16_t h = f16(d);
            memcpy(out + b * 18, &h, 2);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)lrintf(d ? v[b * 32 + j] / d : 0) + 8;
                int q1 = (int)lrintf(d ? v[b * 32 + j + 16] / d : 0) + 8;
                q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
                q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
                out[b * 18 + 2 + j] = (uint8_t)(q0 | q1 << 4);
            }
        }
    } else { /* Q4_1 */
        *nbytes = n / 32 * 20;
        out = malloc(*nbytes);
        for (size_t b = 0; b < n / 32; b++) {
            float mn = v[b * 32], mx = v[b * 32];
            for (int j = 0; j < 32; j++) {
                mn = fminf(mn, v[b * 32 + j]);
                mx = fmaxf(mx, v[b * 32 + j]);
            }
            float d = (mx - mn) / 15.0f;
            uint16_t hd = f16(d), hm = f16(mn);
            memcpy(out + b * 20, &hd, 2);
            memcpy(out + b * 20 + 2, &hm, 2);
            for (int j = 0; j < 16; j++) {
                int q0 = (int)lrintf(d ? (v[b * 32 + j] - mn) / d : 0);
                int q1 = (int)lrintf(d ? (v[b * 32 + j + 16] - mn) / d : 0);
                q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
                q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
                out[b * 20 + 4 + j] = (uint8_t)(q0 | q1 << 4);
            }
        }
    }
    free(v);
    return out;
}

static void add_tensor(gw_writer *w, const char *name, uint32_t type, uint64_t ne0, uint64_t ne1,
                       float s) {
    size_t nb;
    uint8_t *d = make_data(type, (size_t)(ne0 * ne1), s, &nb);
    uint64_t ne[2] = {ne0, ne1};
    if (gw_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, d, nb) != 0) abort();
    free(d);
}

#define VOCAB 50
#define EMB 64
#define FF 96
#define NLAYER 2

/* kind 0: llama (GQA 4/2, d 16, Q8_0/Q4_1/F32, tied output);
 * kind 2: kind 0 with Q4_0 in place of Q4_1 (matrices of 32..96 rows);
 * kind 1: sigma (8/2/4 heads, d_qk 16, d_v 8, AugQ 32, F16/F32, own output) */
int tm_build(int kind, uint8_t **mem, size_t *size) {
    rng_state = 0xABCDEF0123456789ull + (uint64_t)kind;
    gw_writer *w = gw_new();
    const char *a = kind == 1 ? "sigma" : "llama";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    gw_kv_str(w, "general.architecture", a);
    gw_kv_str(w, "general.name", "tiny");
    gw_kv_u32(w, KEY("context_length"), 256);
    gw_kv_u32(w, KEY("embedding_length"), EMB);
    gw_kv_u32(w, KEY("block_count"), NLAYER);
    gw_kv_u32(w, KEY("feed_forward_length"), FF);
    gw_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    gw_kv_f32(w, KEY("rope.freq_base"), 10000.0f);
    gw_kv_u32(w, KEY("vocab_size"), VOCAB);
    uint32_t nq, nk, nv, dqk, dv, daug;
    if (kind != 1) {
        nq = 4; nk = nv = 2; dqk = dv = 16; daug = 0;
        gw_kv_u32(w, KEY("attention.head_count"), nq);
        gw_kv_u32(w, KEY("attention.head_count_kv"), nk);
    } else {
        nq = 8; nk = 2; nv = 4; dqk = 16; dv = 8; daug = 32;
        gw_kv_u32(w, KEY("attention.head_count"), nq);
        gw_kv_u32(w, KEY("attention.head_count_k"), nk);
        gw_kv_u32(w, KEY("attention.head_count_v"), nv);
        gw_kv_u32(w, KEY("attention.key_length"), dqk);
        gw_kv_u32(w, KEY("attention.value_length"), dv);
        gw_kv_u32(w, KEY("attention.augq_length"), daug);
    }
    uint32_t tw = kind == 1 ? 1 : 8, tw2 = kind == 1 ? 0 : kind == 2 ? 2 : 3; /* weight types */
    add_tensor(w, "token_embd.weight", tw, EMB, VOCAB, 1.0f);
    add_tensor(w, "output_norm.weight", 0, EMB, 1, 1.0f);
    if (kind == 1) add_tensor(w, "output.weight", 1, EMB, VOCAB, 0.3f);
    for (int l = 0; l < NLAYER; l++) {
        char n[64];
#define T(s, type, a0, a1, sc) (snprintf(n, sizeof n, "blk.%d.%s.weight", l, s), add_tensor(w, n, type, a0, a1, sc))
        T("attn_norm", 0, EMB, 1, 1.0f);
        T("attn_q", tw, EMB, nq * dqk, 0.3f);
        T("attn_k", tw2, EMB, nk * dqk, 0.3f);
        T("attn_v", tw, EMB, nv * dv, 0.3f);
        T("attn_output", tw2, nq * dv, EMB, 0.2f);
        if (daug) {
            T("attn_q_gate", tw, nq * dqk, daug, 0.2f);
            T("attn_q_up", tw, nq * dqk, daug, 0.2f);
            T("attn_q_down", tw, daug, nq * dqk, 0.2f);
        }
        T("ffn_norm", 0, EMB, 1, 1.0f);
        T("ffn_gate", tw2, EMB, FF, 0.2f);
        T("ffn_up", tw, EMB, FF, 0.2f);
        T("ffn_down", tw2, FF, EMB, 0.2f);
#undef T
    }
#undef KEY
    int rc = gw_write_mem(w, mem, size);
    gw_free(w);
    return rc;
}

sigma_model *tm_open(int kind, uint8_t **mem) {
    size_t size;
    if (tm_build(kind, mem, &size) != 0) return NULL;
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    if (sigma_model_open_memory(*mem, size, &mp, &m) != SIGMA_OK) return NULL;
    return m;
}
