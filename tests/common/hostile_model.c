/* Small models of every weight type with poisonable tensor data; see
 * hostile_model.h. Quantized blocks are random bytes with small finite
 * scales, so the untouched model computes finite values; a test then
 * writes one hostile pattern into one tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "hostile_model.h"

typedef struct hm_type_desc {
    uint32_t type, block_elems, block_bytes;
    uint8_t n_scales, scale_off[2];
} hm_type_desc;

/* GGUF block layouts: elements and bytes per block, and where the f16
 * scales (d, then the minimum where there is one) sit inside a block. */
static const hm_type_desc types[] = {
    {0, 1, 4, 0, {0, 0}},        /* F32 */
    {1, 1, 2, 0, {0, 0}},        /* F16 */
    {30, 1, 2, 0, {0, 0}},       /* BF16 */
    {2, 32, 18, 1, {0, 0}},      /* Q4_0: d, qs[16] */
    {3, 32, 20, 2, {0, 2}},      /* Q4_1: d, m, qs[16] */
    {6, 32, 22, 1, {0, 0}},      /* Q5_0: d, qh[4], qs[16] */
    {7, 32, 24, 2, {0, 2}},      /* Q5_1: d, m, qh[4], qs[16] */
    {8, 32, 34, 1, {0, 0}},      /* Q8_0: d, qs[32] */
    {10, 256, 84, 2, {80, 82}},  /* Q2_K: scales[16], qs[64], d, dmin */
    {11, 256, 110, 1, {108, 0}}, /* Q3_K: hmask[32], qs[64], scales[12], d */
    {12, 256, 144, 2, {0, 2}},   /* Q4_K: d, dmin, scales[12], qs[128] */
    {13, 256, 176, 2, {0, 2}},   /* Q5_K: d, dmin, scales[12], qh[32], qs[128] */
    {14, 256, 210, 1, {208, 0}}, /* Q6_K: ql[128], qh[64], scales[16], d */
    {20, 32, 18, 1, {0, 0}},     /* IQ4_NL: d, qs[16] */
    {23, 256, 136, 1, {0, 0}},   /* IQ4_XS: d, scales_h, scales_l[4], qs[128] */
};

const uint32_t hm_types[] = {0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23};
const size_t hm_n_types = sizeof hm_types / sizeof hm_types[0];

static const hm_type_desc *desc_of(uint32_t type) {
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (types[i].type == type) return &types[i];
    return NULL;
}

size_t hm_scale_fields(uint32_t type, size_t off[2]) {
    const hm_type_desc *d = desc_of(type);
    if (!d) return 0;
    for (int i = 0; i < d->n_scales; i++) off[i] = d->scale_off[i];
    return d->n_scales;
}

const char *hm_pattern_name(hm_pattern p) {
    static const char *const n[] = {"+inf", "-inf", "nan", "max-finite", "denormal"};
    return p < HM_N_PATTERNS ? n[p] : "?";
}

static const char *const role_names[HM_N_ROLES] = {
    "token_embd", "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_gate",
    "attn_q_up", "attn_q_down", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "output_norm",
    "output"};

const char *hm_role_name(hm_role r) { return r < HM_N_ROLES ? role_names[r] : "?"; }

const char *hm_role_tensor(int kind, hm_role r) {
    static const char *const t[HM_N_ROLES] = {
        "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight",
        "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
        "blk.0.attn_q_gate.weight", "blk.0.attn_q_up.weight", "blk.0.attn_q_down.weight",
        "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight", "output_norm.weight", "output.weight"};
    if (r >= HM_N_ROLES) return NULL;
    if (!kind && (r == HM_AUG_GATE || r == HM_AUG_UP || r == HM_AUG_DOWN || r == HM_OUTPUT))
        return NULL;
    return t[r];
}

/* ---- deterministic data ------------------------------------------------ */

static uint64_t next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static float rnd(uint64_t *s) { return (float)((double)(next(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static uint16_t f16_bits(float f) {
    uint16_t h;
    sigma_kernel_f32_to_f16(&h, &f, 1);
    return h;
}

static uint16_t bf16_bits(float f) {
    uint16_t h;
    sigma_kernel_f32_to_bf16(&h, &f, 1);
    return h;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* n elements of `type` with values of size ~s (float types) or random
 * quants with small scales. */
static uint8_t *make_data(uint64_t *rng, uint32_t type, size_t n, float s, size_t *nbytes) {
    const hm_type_desc *d = desc_of(type);
    size_t nb = n / d->block_elems;
    *nbytes = nb * d->block_bytes;
    uint8_t *out = malloc(*nbytes);
    if (!out) return NULL;
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = out + b * d->block_bytes;
        if (type == 0) {
            float v = rnd(rng) * s;
            memcpy(blk, &v, 4);
        } else if (type == 1) {
            put16(blk, f16_bits(rnd(rng) * s));
        } else if (type == 30) {
            put16(blk, bf16_bits(rnd(rng) * s));
        } else {
            for (uint32_t i = 0; i < d->block_bytes; i++) blk[i] = (uint8_t)next(rng);
            /* d small; a minimum of about the same size */
            put16(blk + d->scale_off[0], f16_bits(s * 0.02f));
            if (d->n_scales > 1) put16(blk + d->scale_off[1], f16_bits(s * 0.01f));
        }
    }
    return out;
}

/* dl: length of the data section so far (tensors 32-byte aligned). */
static int add(gw_writer *w, uint64_t *rng, size_t *dl, const char *name, uint32_t type,
               uint64_t ne0, uint64_t ne1, float s) {
    size_t nb;
    uint8_t *d = make_data(rng, type, (size_t)(ne0 * ne1), s, &nb);
    if (!d) return -1;
    *dl = (*dl + 31) / 32 * 32 + nb;
    uint64_t ne[2] = {ne0, ne1};
    int rc = gw_tensor(w, name, type, ne1 > 1 ? 2 : 1, ne, d, nb);
    free(d);
    return rc;
}

#define EMB 256u
#define FF 256u

int hm_build(int kind, uint32_t type, int n_layers, uint8_t **mem, size_t *size) {
    size_t off;
    return hm_build_data(kind, type, n_layers, mem, size, &off);
}

int hm_build_data(int kind, uint32_t type, int n_layers, uint8_t **mem, size_t *size,
                  size_t *data_off) {
    size_t dl = 0;
    if (!desc_of(type) || n_layers < 1) return -1;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)type << 8) ^ (uint64_t)kind;
    gw_writer *w = gw_new();
    if (!w) return -1;
    const char *a = kind ? "sigma" : "llama";
    char k[96];
    int rc = 0;
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    rc |= gw_kv_str(w, "general.architecture", a);
    rc |= gw_kv_str(w, "general.name", "hostile");
    rc |= gw_kv_u32(w, KEY("context_length"), 256);
    rc |= gw_kv_u32(w, KEY("embedding_length"), EMB);
    rc |= gw_kv_u32(w, KEY("block_count"), (uint32_t)n_layers);
    rc |= gw_kv_u32(w, KEY("feed_forward_length"), FF);
    rc |= gw_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    rc |= gw_kv_f32(w, KEY("rope.freq_base"), 10000.0f);
    uint32_t nq, nk, nv, dqk, dv, daug;
    if (kind == 0) {
        nq = 4; nk = nv = 2; dqk = dv = 64; daug = 0;
        rc |= gw_kv_u32(w, KEY("attention.head_count"), nq);
        rc |= gw_kv_u32(w, KEY("attention.head_count_kv"), nk);
    } else {
        nq = 8; nk = 2; nv = 4; dqk = 32; dv = 32; daug = 256;
        rc |= gw_kv_u32(w, KEY("attention.head_count"), nq);
        rc |= gw_kv_u32(w, KEY("attention.head_count_k"), nk);
        rc |= gw_kv_u32(w, KEY("attention.head_count_v"), nv);
        rc |= gw_kv_u32(w, KEY("attention.key_length"), dqk);
        rc |= gw_kv_u32(w, KEY("attention.value_length"), dv);
        rc |= gw_kv_u32(w, KEY("attention.augq_length"), daug);
    }
#undef KEY
    /* a SentencePiece-style vocabulary: <unk> <s> </s>, then 61 pieces */
    char piece[HM_VOCAB][8];
    const char *toks[HM_VOCAB];
    for (int i = 0; i < HM_VOCAB; i++) {
        if (i == 0) snprintf(piece[i], sizeof piece[i], "<unk>");
        else if (i == 1) snprintf(piece[i], sizeof piece[i], "<s>");
        else if (i == 2) snprintf(piece[i], sizeof piece[i], "</s>");
        else snprintf(piece[i], sizeof piece[i], "%c%c", 'a' + (i - 3) % 26, 'a' + (i - 3) / 26);
        toks[i] = piece[i];
    }
    rc |= gw_kv_str(w, "tokenizer.ggml.model", "llama");
    rc |= gw_kv_arr_str(w, "tokenizer.ggml.tokens", toks, HM_VOCAB);
    rc |= gw_kv_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc |= gw_kv_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc |= gw_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0);

    rc |= add(w, &rng, &dl, "token_embd.weight", type, EMB, HM_VOCAB, 1.0f);
    rc |= add(w, &rng, &dl, "output_norm.weight", 0, EMB, 1, 1.0f);
    if (kind) rc |= add(w, &rng, &dl, "output.weight", type, EMB, HM_VOCAB, 0.3f);
    for (int l = 0; l < n_layers && rc == 0; l++) {
        char n[64];
#define T(s, ty, a0, a1, sc) \
        (snprintf(n, sizeof n, "blk.%d.%s.weight", l, s), add(w, &rng, &dl, n, ty, a0, a1, sc))
        rc |= T("attn_norm", 0, EMB, 1, 1.0f);
        rc |= T("attn_q", type, EMB, nq * dqk, 0.3f);
        rc |= T("attn_k", type, EMB, nk * dqk, 0.3f);
        rc |= T("attn_v", type, EMB, nv * dv, 0.3f);
        rc |= T("attn_output", type, nq * dv, EMB, 0.2f);
        if (daug) {
            rc |= T("attn_q_gate", type, nq * dqk, daug, 0.2f);
            rc |= T("attn_q_up", type, nq * dqk, daug, 0.2f);
            rc |= T("attn_q_down", type, daug, nq * dqk, 0.2f);
        }
        rc |= T("ffn_norm", 0, EMB, 1, 1.0f);
        rc |= T("ffn_gate", type, EMB, FF, 0.2f);
        rc |= T("ffn_up", type, EMB, FF, 0.2f);
        rc |= T("ffn_down", type, FF, EMB, 0.2f);
#undef T
    }
    if (rc == 0) rc = gw_write_mem(w, mem, size);
    gw_free(w);
    if (rc == 0) *data_off = *size - dl;
    return rc ? -1 : 0;
}

void hm_poison(uint8_t *data, uint32_t type, hm_pattern p) {
    const hm_type_desc *d = desc_of(type);
    if (!d) return;
    /* the same pattern in each width */
    static const uint32_t f32v[HM_N_PATTERNS] = {0x7f800000u, 0xff800000u, 0x7fc00000u,
                                                 0x7f7fffffu, 0x00000001u};
    static const uint16_t f16v[HM_N_PATTERNS] = {0x7c00u, 0xfc00u, 0x7e00u, 0x7bffu, 0x0001u};
    static const uint16_t bf16v[HM_N_PATTERNS] = {0x7f80u, 0xff80u, 0x7fc0u, 0x7f7fu, 0x0001u};
    if (p >= HM_N_PATTERNS) return;
    if (type == 0) {
        memcpy(data, &f32v[p], 4);
    } else if (type == 30) {
        put16(data, bf16v[p]);
    } else if (type == 1) {
        put16(data, f16v[p]);
    } else {
        for (int i = 0; i < d->n_scales; i++) put16(data + d->scale_off[i], f16v[p]);
    }
}
