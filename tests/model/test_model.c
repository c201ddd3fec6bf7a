/* Model files: the GGUF reader (metadata round trips, malformed files),
 * tensor types (dequantization checked against values computed here from
 * the format definitions, half/bfloat conversions), and architecture
 * loading of tiny `llama` and `sigma` files through the public API.
 *
 * `test-model real` checks the real SmolLM2 file named by SIGMA_TEST_MODEL
 * and exits 77 (skip) when it is unset. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "model/model.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static sg_alloc test_alloc(void) {
    sg_alloc a;
    sg_alloc_init(&a, NULL);
    return a;
}

static void image(gw_writer *w, uint8_t **img, size_t *n) {
    ck_assert_int_eq(gw_write_mem(w, img, n), 0);
    gw_free(w);
}

/* Open an image with the GGUF reader; returns the status, message in err. */
static int gopen(const uint8_t *img, size_t n, sg_gguf **g, sg_err *err) {
    sg_alloc a = test_alloc();
    sg_err_clear(err);
    return sg_gguf_open_memory(&a, img, n, g, err);
}

/* Expect the reader to reject the image with `status` and a message that
 * contains `needle`. */
#define expect_gguf_fail(img, n, status, needle) expect_gguf_fail_at(__LINE__, img, n, status, needle)
static void expect_gguf_fail_at(int line, const uint8_t *img, size_t n, int status, const char *needle) {
    sg_gguf *g = (sg_gguf *)1;
    sg_err err;
    int st = gopen(img, n, &g, &err);
    ck_assert_msg(st == status, "line %d: status %d, expected %d (message: %s)", line, st, status, err.msg);
    ck_assert_ptr_null(g);
    ck_assert_msg(err.msg[0] != '\0', "empty message");
    if (needle)
        ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

/* Open through the public API; message in eb. */
static int mopen(const uint8_t *img, size_t n, sigma_model **m, char *eb, size_t ebn) {
    sigma_model_params p;
    ck_assert_int_eq(sigma_model_params_init(&p, sizeof p), SIGMA_OK);
    eb[0] = '\0';
    p.error_buf = eb;
    p.error_buf_size = ebn;
    return sigma_model_open_memory(img, n, &p, m);
}

static void expect_model_fail(const uint8_t *img, size_t n, int status, const char *needle) {
    sigma_model *m = NULL;
    char eb[512];
    int st = mopen(img, n, &m, eb, sizeof eb);
    ck_assert_msg(st == status, "status %d, expected %d (message: %s)", st, status, eb);
    ck_assert_ptr_null(m);
    ck_assert_msg(eb[0] != '\0', "empty error_buf");
    if (needle) ck_assert_msg(strstr(eb, needle) != NULL, "message '%s' lacks '%s'", eb, needle);
}

/* Locate the info of tensor `name` in an image: returns the offset of its
 * n_dims field. */
static size_t find_tensor_info(const uint8_t *img, size_t n, const char *name) {
    size_t nl = strlen(name);
    uint8_t pat[128];
    ck_assert_uint_lt(nl + 8, sizeof pat);
    for (int i = 0; i < 8; i++) pat[i] = (uint8_t)((uint64_t)nl >> (8 * i));
    memcpy(pat + 8, name, nl);
    for (size_t i = 0; i + nl + 8 <= n; i++)
        if (memcmp(img + i, pat, nl + 8) == 0) {
            /* a key would be followed by a type; a tensor name by n_dims 1..4
             * and then dims: accept the last match (tensor infos follow kvs) */
            size_t at = i + 8 + nl;
            size_t j;
            for (j = i + 1; j + nl + 8 <= n; j++)
                if (memcmp(img + j, pat, nl + 8) == 0) break;
            if (j + nl + 8 > n) return at;
            i = j - 1;
        }
    ck_abort_msg("tensor info '%s' not found", name);
    return 0;
}

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Offset field of a tensor info (after n_dims, dims and type). */
static size_t tensor_offset_field(const uint8_t *img, size_t n, const char *name) {
    size_t at = find_tensor_info(img, n, name);
    uint32_t nd = get32(img + at);
    return at + 4 + 8 * (size_t)nd + 4;
}

/* ------------------------------------------------------------------------ */
/* Tiny models                                                              */
/* ------------------------------------------------------------------------ */

typedef struct spec {
    int sigma;
    uint32_t n_layer, n_embd, n_ff, n_q, n_k, n_v, d_qk, d_v, d_aug, n_vocab, n_ctx;
    int tied;
    int with_tokens;              /* write tokenizer.ggml.tokens (n_vocab strings) */
    int write_head_dims;          /* write key_length/value_length explicitly */
    /* malformations */
    const char *omit_key;         /* suffix after "<arch>." or a full key */
    const char *str_key;          /* write this key as a string instead */
    const char *omit_tensor;
    const char *bad_shape_tensor; /* ne[1] (or ne[0] for 1-D) + 1 */
    const char *extra_tensor;     /* an extra F32 tensor of shape (32, 32) */
    uint32_t norm_type;           /* type of blk.0.attn_norm (default F32) */
    const char *arch_name;        /* override general.architecture */
    float eps;                    /* 0: 1e-5 */
    uint32_t n_rot;               /* 0: not written */
} spec;

static spec llama_spec(void) {
    spec s = {0};
    s.n_layer = 2; s.n_embd = 32; s.n_ff = 48; s.n_q = 4; s.n_k = 2; s.n_v = 2;
    s.d_qk = 8; s.d_v = 8; s.n_vocab = 40; s.n_ctx = 256; s.tied = 1; s.with_tokens = 1;
    return s;
}

static spec sigma_spec(void) {
    spec s = {0};
    s.sigma = 1; s.n_layer = 2; s.n_embd = 32; s.n_ff = 48; s.n_q = 4; s.n_k = 1; s.n_v = 2;
    s.d_qk = 16; s.d_v = 8; s.d_aug = 12; s.n_vocab = 40; s.n_ctx = 512; s.tied = 0;
    s.write_head_dims = 1;
    return s;
}

static void put_key_u32(gw_writer *w, const spec *s, const char *suffix, uint32_t v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", s->sigma ? "sigma" : "llama", suffix);
    if (s->omit_key && (strcmp(s->omit_key, suffix) == 0 || strcmp(s->omit_key, key) == 0))
        return;
    if (s->str_key && (strcmp(s->str_key, suffix) == 0 || strcmp(s->str_key, key) == 0)) {
        ck_assert_int_eq(gw_kv_str(w, key, "oops"), 0);
        return;
    }
    ck_assert_int_eq(gw_kv_u32(w, key, v), 0);
}

static void put_key_f32(gw_writer *w, const spec *s, const char *suffix, float v) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", s->sigma ? "sigma" : "llama", suffix);
    if (s->omit_key && strcmp(s->omit_key, suffix) == 0) return;
    if (s->str_key && strcmp(s->str_key, suffix) == 0) {
        ck_assert_int_eq(gw_kv_str(w, key, "oops"), 0);
        return;
    }
    ck_assert_int_eq(gw_kv_f32(w, key, v), 0);
}

static void put_tensor(gw_writer *w, const spec *s, const char *name, uint32_t type, uint64_t ne0,
                       uint64_t ne1) {
    if (s->omit_tensor && strcmp(s->omit_tensor, name) == 0) return;
    if (s->bad_shape_tensor && strcmp(s->bad_shape_tensor, name) == 0) {
        if (ne1) ne1++;
        else ne0++;
    }
    uint64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    uint32_t nd = ne1 ? 2 : 1;
    size_t nbytes = sg_type_row_bytes(type, ne0) * (size_t)ne[1];
    ck_assert_uint_gt(nbytes, 0);
    float *data = calloc(1, nbytes);
    ck_assert_ptr_nonnull(data);
    if (type == SG_TYPE_F32)
        for (size_t i = 0; i < nbytes / 4; i++) data[i] = (float)(i % 7) * 0.125f;
    ck_assert_int_eq(gw_tensor(w, name, type, nd, ne, data, nbytes), 0);
    free(data);
}

static void build_model(const spec *s, uint8_t **img, size_t *n) {
    gw_writer *w = gw_new();
    ck_assert_ptr_nonnull(w);
    const char *arch = s->arch_name ? s->arch_name : (s->sigma ? "sigma" : "llama");
    if (!(s->omit_key && strcmp(s->omit_key, "general.architecture") == 0))
        ck_assert_int_eq(gw_kv_str(w, "general.architecture", arch), 0);
    ck_assert_int_eq(gw_kv_str(w, "general.name", s->sigma ? "tiny sigma" : "tiny llama"), 0);
    put_key_u32(w, s, "context_length", s->n_ctx);
    put_key_u32(w, s, "embedding_length", s->n_embd);
    put_key_u32(w, s, "block_count", s->n_layer);
    put_key_u32(w, s, "feed_forward_length", s->n_ff);
    put_key_u32(w, s, "attention.head_count", s->n_q);
    if (s->sigma) {
        put_key_u32(w, s, "attention.head_count_k", s->n_k);
        put_key_u32(w, s, "attention.head_count_v", s->n_v);
        if (s->d_aug) put_key_u32(w, s, "attention.augq_length", s->d_aug);
    } else {
        put_key_u32(w, s, "attention.head_count_kv", s->n_k);
    }
    if (s->write_head_dims) {
        put_key_u32(w, s, "attention.key_length", s->d_qk);
        put_key_u32(w, s, "attention.value_length", s->d_v);
    }
    if (s->n_rot) put_key_u32(w, s, "rope.dimension_count", s->n_rot);
    put_key_f32(w, s, "attention.layer_norm_rms_epsilon", s->eps != 0 ? s->eps : 1e-5f);
    put_key_f32(w, s, "rope.freq_base", 10000.0f);
    if (s->with_tokens) {
        char **toks = calloc(s->n_vocab, sizeof *toks);
        ck_assert_ptr_nonnull(toks);
        for (uint32_t i = 0; i < s->n_vocab; i++) {
            toks[i] = malloc(16);
            snprintf(toks[i], 16, "t%u", i);
        }
        ck_assert_int_eq(gw_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
                                       s->n_vocab), 0);
        for (uint32_t i = 0; i < s->n_vocab; i++) free(toks[i]);
        free(toks);
    }
    uint64_t E = s->n_embd, F = s->n_ff, V = s->n_vocab;
    uint64_t QD = (uint64_t)s->n_q * s->d_qk, KD = (uint64_t)s->n_k * s->d_qk;
    uint64_t VD = (uint64_t)s->n_v * s->d_v, OD = (uint64_t)s->n_q * s->d_v;
    put_tensor(w, s, "token_embd.weight", SG_TYPE_Q8_0, E, V);
    put_tensor(w, s, "output_norm.weight", SG_TYPE_F32, E, 0);
    if (!s->tied) put_tensor(w, s, "output.weight", SG_TYPE_F16, E, V);
    char nm[64];
    for (uint32_t i = 0; i < s->n_layer; i++) {
#define T(suffix, type, a, b)                                        \
        do {                                                         \
            snprintf(nm, sizeof nm, "blk.%u." suffix ".weight", i);   \
            put_tensor(w, s, nm, type, a, b);                        \
        } while (0)
        T("attn_norm", i == 0 && s->norm_type ? s->norm_type : SG_TYPE_F32, E, 0);
        T("attn_q", SG_TYPE_F32, E, QD);
        T("attn_k", SG_TYPE_F32, E, KD);
        T("attn_v", SG_TYPE_BF16, E, VD);
        T("attn_output", SG_TYPE_F32, OD, E);
        if (s->d_aug) {
            T("attn_q_gate", SG_TYPE_F32, QD, s->d_aug);
            T("attn_q_up", SG_TYPE_F32, QD, s->d_aug);
            T("attn_q_down", SG_TYPE_F32, s->d_aug, QD);
        }
        T("ffn_norm", SG_TYPE_F32, E, 0);
        T("ffn_gate", SG_TYPE_F32, E, F);
        T("ffn_up", SG_TYPE_F32, E, F);
        T("ffn_down", SG_TYPE_F32, F, E);
#undef T
    }
    if (s->extra_tensor) put_tensor(w, s, s->extra_tensor, SG_TYPE_F32, 32, 32);
    image(w, img, n);
}

/* ------------------------------------------------------------------------ */
/* (a) metadata round trips                                                 */
/* ------------------------------------------------------------------------ */

static void build_all_types(uint32_t version, uint32_t alignment, uint8_t **img, size_t *n) {
    gw_writer *w = gw_new();
    ck_assert_ptr_nonnull(w);
    gw_set_version(w, version);
    if (alignment) gw_set_alignment(w, alignment);
    uint8_t u8 = 250; int8_t i8 = -100; uint16_t u16 = 65000; int16_t i16 = -30000;
    uint32_t u32 = 4000000000u; int32_t i32 = -2000000000; float f32 = 3.25f;
    uint8_t b = 1; uint64_t u64 = 18000000000000000000ull; int64_t i64 = -9000000000000000000ll;
    double f64 = -1.0 / 3.0;
    ck_assert_int_eq(gw_kv_scalar(w, "t.u8", GW_U8, &u8), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.i8", GW_I8, &i8), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.u16", GW_U16, &u16), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.i16", GW_I16, &i16), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.u32", GW_U32, &u32), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.i32", GW_I32, &i32), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.f32", GW_F32, &f32), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.bool", GW_BOOL, &b), 0);
    ck_assert_int_eq(gw_kv_str(w, "t.str", "hello, \xc3\xa9t\xc3\xa9"), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.u64", GW_U64, &u64), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.i64", GW_I64, &i64), 0);
    ck_assert_int_eq(gw_kv_scalar(w, "t.f64", GW_F64, &f64), 0);
    ck_assert_int_eq(gw_kv_u32(w, "t.small", 7), 0);
    ck_assert_int_eq(gw_kv_i32(w, "t.neg", -7), 0);
    ck_assert_int_eq(gw_kv_u64(w, "t.big", 1ull << 40), 0);
    ck_assert_int_eq(gw_kv_f32(w, "t.eps", 1e-6f), 0);
    ck_assert_int_eq(gw_kv_bool(w, "t.false", 0), 0);
    ck_assert_int_eq(gw_kv_str(w, "t.empty", ""), 0);
    /* arrays of every scalar type */
    int32_t ai[5] = {-2, -1, 0, 1, 2};
    ck_assert_int_eq(gw_kv_arr(w, "a.i32", GW_I32, ai, 5), 0);
    float af[3] = {0.5f, -1.5f, 2.0f};
    ck_assert_int_eq(gw_kv_arr(w, "a.f32", GW_F32, af, 3), 0);
    uint8_t ab[3] = {1, 0, 1};
    ck_assert_int_eq(gw_kv_arr(w, "a.bool", GW_BOOL, ab, 3), 0);
    uint64_t au[2] = {1, UINT64_MAX};
    ck_assert_int_eq(gw_kv_arr(w, "a.u64", GW_U64, au, 2), 0);
    double ad[2] = {1e300, -2.5};
    ck_assert_int_eq(gw_kv_arr(w, "a.f64", GW_F64, ad, 2), 0);
    ck_assert_int_eq(gw_kv_arr(w, "a.empty", GW_U8, NULL, 0), 0);
    const char *strs[] = {"a", "", "longer string", "\xe2\x82\xac"};
    ck_assert_int_eq(gw_kv_arr_str(w, "a.str", strs, 4), 0);
    /* nested: [[1, 2], [3]] of u16, and [["x"], []] of strings */
    uint8_t raw[256];
    size_t k = 0;
    put32(raw + k, GW_ARRAY); k += 4; put64(raw + k, 2); k += 8;
    put32(raw + k, GW_U16); k += 4; put64(raw + k, 2); k += 8;
    raw[k++] = 1; raw[k++] = 0; raw[k++] = 2; raw[k++] = 0;
    put32(raw + k, GW_U16); k += 4; put64(raw + k, 1); k += 8;
    raw[k++] = 3; raw[k++] = 0;
    ck_assert_int_eq(gw_kv_raw(w, "a.nested", GW_ARRAY, raw, k), 0);
    k = 0;
    put32(raw + k, GW_ARRAY); k += 4; put64(raw + k, 2); k += 8;
    put32(raw + k, GW_STRING); k += 4; put64(raw + k, 1); k += 8;
    put64(raw + k, 1); k += 8; raw[k++] = 'x';
    put32(raw + k, GW_STRING); k += 4; put64(raw + k, 0); k += 8;
    ck_assert_int_eq(gw_kv_raw(w, "a.nested_str", GW_ARRAY, raw, k), 0);
    /* two tensors */
    float d1[32], d2[64];
    for (int i = 0; i < 32; i++) d1[i] = (float)i;
    for (int i = 0; i < 64; i++) d2[i] = (float)-i;
    uint64_t ne1[1] = {32}, ne2[2] = {16, 4};
    ck_assert_int_eq(gw_tensor(w, "first", GW_U8 /* F32 = 0 */, 1, ne1, d1, sizeof d1), 0);
    ck_assert_int_eq(gw_tensor(w, "second.weight", SG_TYPE_F32, 2, ne2, d2, sizeof d2), 0);
    image(w, img, n);
}

static void check_all_types(const sg_gguf *g) {
    const sg_gguf_kv *kv;
    ck_assert_ptr_nonnull(kv = sg_gguf_find(g, "t.u8"));
    ck_assert_uint_eq(kv->value.type, SG_GGUF_U8);
    ck_assert_uint_eq(kv->value.v.u, 250);
    ck_assert_int_eq(sg_gguf_find(g, "t.i8")->value.v.i, -100);
    ck_assert_uint_eq(sg_gguf_find(g, "t.u16")->value.v.u, 65000);
    ck_assert_int_eq(sg_gguf_find(g, "t.i16")->value.v.i, -30000);
    ck_assert_uint_eq(sg_gguf_find(g, "t.u32")->value.v.u, 4000000000u);
    ck_assert_int_eq(sg_gguf_find(g, "t.i32")->value.v.i, -2000000000);
    ck_assert(sg_gguf_find(g, "t.f32")->value.v.f == 3.25);
    ck_assert_uint_eq(sg_gguf_find(g, "t.bool")->value.v.u, 1);
    ck_assert_uint_eq(sg_gguf_find(g, "t.u64")->value.v.u, 18000000000000000000ull);
    ck_assert(sg_gguf_find(g, "t.i64")->value.v.i == -9000000000000000000ll);
    ck_assert(sg_gguf_find(g, "t.f64")->value.v.f == -1.0 / 3.0);
    ck_assert_ptr_null(sg_gguf_find(g, "t.missing"));
    ck_assert_ptr_null(sg_gguf_find(g, "t.u8x"));
    ck_assert_ptr_null(sg_gguf_find(g, "t."));

    sg_err err;
    uint32_t u;
    float f;
    bool b;
    sg_str s;
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u32", &u, &err), SIGMA_OK);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.u8", &u, &err), SIGMA_OK);
    ck_assert_uint_eq(u, 250);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.small", &u, &err), SIGMA_OK);
    ck_assert_uint_eq(u, 7);
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.big", &u, &err), SIGMA_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "t.big"));
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.neg", &u, &err), SIGMA_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "t.neg"));
    ck_assert_int_eq(sg_gguf_get_u32(g, "t.str", &u, &err), SIGMA_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "t.str"));
    ck_assert_int_eq(sg_gguf_get_u32(g, "nope", &u, &err), SIGMA_E_NOT_FOUND);
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.f32", &f, &err), SIGMA_OK);
    ck_assert(f == 3.25f);
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.eps", &f, &err), SIGMA_OK);
    ck_assert(f == 1e-6f);
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.f64", &f, &err), SIGMA_OK);
    ck_assert(f == (float)(-1.0 / 3.0));
    ck_assert_int_eq(sg_gguf_get_f32(g, "t.u32", &f, &err), SIGMA_E_FORMAT);
    ck_assert_int_eq(sg_gguf_get_bool(g, "t.bool", &b, &err), SIGMA_OK);
    ck_assert(b);
    ck_assert_int_eq(sg_gguf_get_bool(g, "t.false", &b, &err), SIGMA_OK);
    ck_assert(!b);
    ck_assert_int_eq(sg_gguf_get_bool(g, "t.u8", &b, &err), SIGMA_E_FORMAT);
    ck_assert_int_eq(sg_gguf_get_str(g, "t.str", &s, &err), SIGMA_OK);
    ck_assert_uint_eq(s.len, strlen("hello, \xc3\xa9t\xc3\xa9"));
    ck_assert(memcmp(s.ptr, "hello, \xc3\xa9t\xc3\xa9", (size_t)s.len) == 0);
    ck_assert_int_eq(sg_gguf_get_str(g, "t.empty", &s, &err), SIGMA_OK);
    ck_assert_uint_eq(s.len, 0);
    ck_assert_int_eq(sg_gguf_get_str(g, "t.u8", &s, &err), SIGMA_E_FORMAT);

    uint64_t cnt;
    const uint8_t *d;
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.i32", SG_GGUF_I32, &cnt, &d, &err), SIGMA_OK);
    ck_assert_uint_eq(cnt, 5);
    for (int i = 0; i < 5; i++) {
        int32_t x;
        memcpy(&x, d + 4 * i, 4);
        ck_assert_int_eq(x, i - 2);
    }
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.i32", SG_GGUF_U32, &cnt, &d, &err), SIGMA_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "a.i32"));
    ck_assert_int_eq(sg_gguf_get_arr(g, "t.u8", SG_GGUF_U8, &cnt, &d, &err), SIGMA_E_FORMAT);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.f32", SG_GGUF_F32, &cnt, &d, &err), SIGMA_OK);
    float fx[3];
    memcpy(fx, d, sizeof fx);
    ck_assert(cnt == 3 && fx[0] == 0.5f && fx[1] == -1.5f && fx[2] == 2.0f);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.bool", SG_GGUF_BOOL, &cnt, &d, &err), SIGMA_OK);
    ck_assert(cnt == 3 && d[0] == 1 && d[1] == 0 && d[2] == 1);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.u64", SG_GGUF_U64, &cnt, &d, &err), SIGMA_OK);
    uint64_t ux[2];
    memcpy(ux, d, sizeof ux);
    ck_assert(cnt == 2 && ux[0] == 1 && ux[1] == UINT64_MAX);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.f64", SG_GGUF_F64, &cnt, &d, &err), SIGMA_OK);
    double dx[2];
    memcpy(dx, d, sizeof dx);
    ck_assert(cnt == 2 && dx[0] == 1e300 && dx[1] == -2.5);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.empty", SG_GGUF_U8, &cnt, &d, &err), SIGMA_OK);
    ck_assert_uint_eq(cnt, 0);
    ck_assert_int_eq(sg_gguf_get_arr(g, "a.str", SG_GGUF_STRING, &cnt, &d, &err), SIGMA_OK);
    ck_assert_uint_eq(cnt, 4);
    const char *want[] = {"a", "", "longer string", "\xe2\x82\xac"};
    const uint8_t *pos = d;
    for (int i = 0; i < 4; i++) {
        sg_str x = sg_gguf_next_str(&pos);
        ck_assert_uint_eq(x.len, strlen(want[i]));
        ck_assert(memcmp(x.ptr, want[i], (size_t)x.len) == 0);
    }
    ck_assert(pos == d + sg_gguf_find(g, "a.str")->value.v.arr.nbytes);

    kv = sg_gguf_find(g, "a.nested");
    ck_assert_ptr_nonnull(kv);
    ck_assert_uint_eq(kv->value.type, SG_GGUF_ARRAY);
    ck_assert_uint_eq(kv->value.v.arr.elem_type, SG_GGUF_ARRAY);
    ck_assert_uint_eq(kv->value.v.arr.count, 2);
    ck_assert_uint_eq(kv->value.v.arr.nbytes, 2 * 12 + 4 + 2);
    d = kv->value.v.arr.data;
    ck_assert_uint_eq(get32(d), SG_GGUF_U16);
    ck_assert_uint_eq(d[4], 2);
    ck_assert_uint_eq(d[12], 1);
    ck_assert_uint_eq(d[14], 2);
    ck_assert_uint_eq(d[16 + 12], 3);
    kv = sg_gguf_find(g, "a.nested_str");
    ck_assert_ptr_nonnull(kv);
    ck_assert_uint_eq(kv->value.v.arr.count, 2);
    ck_assert_uint_eq(kv->value.v.arr.nbytes, 12 + 9 + 12);

    ck_assert_uint_eq(g->n_tensors, 2);
    const sg_tensor *t = sg_gguf_tensor(g, "second.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->type, SG_TYPE_F32);
    ck_assert_uint_eq(t->n_dims, 2);
    ck_assert(t->ne[0] == 16 && t->ne[1] == 4 && t->ne[2] == 1 && t->ne[3] == 1);
    ck_assert_uint_eq(t->nbytes, 256);
    ck_assert_uint_eq(((uintptr_t)t->data - (uintptr_t)g->base) % g->alignment, 0);
    float v;
    memcpy(&v, (const uint8_t *)t->data + 4 * 63, 4);
    ck_assert(v == -63.0f);
    t = sg_gguf_tensor(g, "first");
    ck_assert_ptr_nonnull(t);
    memcpy(&v, (const uint8_t *)t->data + 4 * 31, 4);
    ck_assert(v == 31.0f);
    ck_assert_ptr_null(sg_gguf_tensor(g, "second"));
    ck_assert_ptr_null(sg_gguf_tensor(g, "zzz"));
}

START_TEST(test_roundtrip_all_types) {
    uint32_t versions[] = {3, 2, 3};
    uint32_t aligns[] = {0, 0, 64};
    for (int c = 0; c < 3; c++) {
        uint8_t *img;
        size_t n;
        build_all_types(versions[c], aligns[c], &img, &n);
        sg_gguf *g = NULL;
        sg_err err;
        ck_assert_msg(gopen(img, n, &g, &err) == SIGMA_OK, "%s", err.msg);
        ck_assert_uint_eq(g->version, versions[c]);
        ck_assert_uint_eq(g->alignment, aligns[c] ? aligns[c] : 32);
        ck_assert_uint_eq(g->data_offset % g->alignment, 0);
        check_all_types(g);
        /* kv keeps file order for meta_key */
        ck_assert_str_eq(g->kv[0].key, "t.u8");
        ck_assert_str_eq(g->kv[11].key, "t.f64");
        sg_gguf_close(g);
        free(img);
    }
}
END_TEST

START_TEST(test_open_file_modes) {
    uint8_t *img;
    size_t n;
    build_all_types(3, 0, &img, &n);
    char path[] = "/tmp/sigma-test-model-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, img, n), (ssize_t)n);
    close(fd);
    sg_alloc a = test_alloc();
    for (int mm = 0; mm < 2; mm++) {
        sg_gguf *g = NULL;
        sg_err err;
        ck_assert_msg(sg_gguf_open_file(&a, path, mm, &g, &err) == SIGMA_OK, "%s", err.msg);
        ck_assert_int_eq(g->mapped, mm ? 1 : 2);
        check_all_types(g);
        sg_gguf_close(g);
    }
    unlink(path);
    sg_gguf *g = (sg_gguf *)1;
    sg_err err;
    ck_assert_int_eq(sg_gguf_open_file(&a, path, 1, &g, &err), SIGMA_E_IO);
    ck_assert_ptr_null(g);
    ck_assert_ptr_nonnull(strstr(err.msg, path));
    ck_assert_int_eq(sg_gguf_open_file(&a, "/tmp", 1, &g, &err), SIGMA_E_IO);
    free(img);
}
END_TEST

/* sg_gguf_release_pages (model open lets go of the file pages of repacked
 * matrices): on a mapped file the range's whole pages are no longer
 * resident (Linux: /proc/self/pagemap's present bit) and the bytes read
 * back equal the file's; on a file read into memory, and for ranges
 * outside the image, nothing changes. */
static int page_present(const void *p) {
    FILE *f = fopen("/proc/self/pagemap", "rb");
    if (!f) return -1;
    long ps = sysconf(_SC_PAGESIZE);
    uint64_t e = 0;
    int ok = fseek(f, (long)((uintptr_t)p / (uintptr_t)ps * 8), SEEK_SET) == 0 && fread(&e, 8, 1, f) == 1;
    fclose(f);
    return ok ? (int)(e >> 63 & 1) : -1;
}

START_TEST(test_release_pages) {
    const size_t nf = 64 * 1024; /* 256 KiB of f32 */
    float *v = malloc(nf * sizeof(float));
    for (size_t i = 0; i < nf; i++) v[i] = (float)i * 0.5f - 7.0f;
    gw_writer *w = gw_new();
    uint64_t ne[1] = {nf};
    ck_assert_int_eq(gw_tensor(w, "big", SG_TYPE_F32, 1, ne, v, nf * sizeof(float)), 0);
    char path[] = "/tmp/sigma-test-release-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(gw_write_file(w, path), 0);
    gw_free(w);
    sg_alloc a = test_alloc();
    long ps = sysconf(_SC_PAGESIZE);
    for (int mm = 0; mm < 2; mm++) {
        sg_gguf *g = NULL;
        sg_err err;
        ck_assert_msg(sg_gguf_open_file(&a, path, mm, &g, &err) == SIGMA_OK, "%s", err.msg);
        const sg_tensor *t = sg_gguf_tensor(g, "big");
        ck_assert_ptr_nonnull(t);
        const uint8_t *d = t->data;
        ck_assert_mem_eq(d, v, nf * sizeof(float)); /* every page resident now */
        const uint8_t *mid = d + (nf * sizeof(float) / 2 / (size_t)ps) * (size_t)ps;
        if (mm) ck_assert_int_ne(page_present(mid), 0);
        sg_gguf_release_pages(g, d, t->nbytes);
        sg_gguf_release_pages(g, d - 4096, 16);         /* outside: ignored */
        sg_gguf_release_pages(g, d, g->size + 1);        /* too long: ignored */
        sg_gguf_release_pages(NULL, d, t->nbytes);
        int pres = page_present(mid);
        if (pres >= 0) ck_assert_int_eq(pres, mm ? 0 : 1); /* mapped: dropped; read: kept */
        ck_assert_mem_eq(d, v, nf * sizeof(float)); /* faulted in again from the file */
        sg_gguf_close(g);
    }
    unlink(path);
    free(v);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (b) types                                                                */
/* ------------------------------------------------------------------------ */

/* Reference half -> double from the IEEE definition. */
static double half_value(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024.0 + m, e - 25);
    return sign ? -v : v;
}

START_TEST(test_f16_exhaustive) {
    for (uint32_t h = 0; h < 65536; h++) {
        double ref = half_value((uint16_t)h);
        float f = sg_f16_to_f32((uint16_t)h);
        if (isnan(ref)) {
            ck_assert(isnan(f));
            ck_assert_int_eq(signbit(f) != 0, (h >> 15) != 0);
            uint16_t back = sg_f32_to_f16(f);
            ck_assert_msg((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0, "nan %04x -> %04x", h,
                          back);
            ck_assert_uint_eq(back & 0x8000, h & 0x8000);
            continue;
        }
        ck_assert_msg((double)f == ref && !signbit(f) == !signbit(ref), "h=%04x", h);
        ck_assert_msg(sg_f32_to_f16(f) == h, "round trip %04x -> %04x", h, sg_f32_to_f16(f));
        /* midpoints to the next half up (same sign) round to even */
        uint32_t hn = h + 1;
        if ((h & 0x7fff) >= 0x7bff) continue; /* next is inf / nan */
        double next = half_value((uint16_t)hn);
        double mid = (ref + next) / 2; /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? (uint16_t)hn : (uint16_t)h;
        ck_assert_msg(sg_f32_to_f16((float)mid) == even, "mid %04x/%04x -> %04x", h, hn,
                      sg_f32_to_f16((float)mid));
        float above = nextafterf((float)mid, (float)next), below = nextafterf((float)mid, (float)ref);
        ck_assert_msg(sg_f32_to_f16(above) == hn, "above mid of %04x", h);
        ck_assert_msg(sg_f32_to_f16(below) == h, "below mid of %04x", h);
    }
}
END_TEST

START_TEST(test_f16_edges) {
    ck_assert_uint_eq(sg_f32_to_f16(0.0f), 0x0000);
    ck_assert_uint_eq(sg_f32_to_f16(-0.0f), 0x8000);
    ck_assert_uint_eq(sg_f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(sg_f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(sg_f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(sg_f32_to_f16(65519.99f), 0x7bff);
    ck_assert_uint_eq(sg_f32_to_f16(65520.0f), 0x7c00);
    ck_assert_uint_eq(sg_f32_to_f16(1e10f), 0x7c00);
    ck_assert_uint_eq(sg_f32_to_f16(-1e10f), 0xfc00);
    ck_assert_uint_eq(sg_f32_to_f16(INFINITY), 0x7c00);
    ck_assert_uint_eq(sg_f32_to_f16(-INFINITY), 0xfc00);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.0f, -24)), 0x0001);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);            /* tie -> even 0 */
    ck_assert_uint_eq(sg_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)), 0x0001);
    ck_assert_uint_eq(sg_f32_to_f16(-ldexpf(1.0f, -26)), 0x8000);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.5f, -24)), 0x0002);            /* tie -> even */
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(2.5f, -24)), 0x0002);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.0f, -14)), 0x0400);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1023.0f, -24)), 0x03ff);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400);         /* carries to normal */
    ck_assert_uint_eq(sg_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);     /* tie -> even */
    ck_assert_uint_eq(sg_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02); /* tie -> even */
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.0f, -100)), 0);
    ck_assert_uint_eq(sg_f32_to_f16(ldexpf(1.0f, -149)), 0);
    uint16_t qn = sg_f32_to_f16(NAN);
    ck_assert((qn & 0x7c00) == 0x7c00 && (qn & 0x3ff) != 0);
    uint32_t snan_bits = 0xff800001u; /* negative signalling NaN, low payload */
    float snan;
    memcpy(&snan, &snan_bits, 4);
    uint16_t h = sg_f32_to_f16(snan);
    ck_assert_msg((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0 && (h & 0x8000), "%04x", h);
    ck_assert(sg_f16_to_f32(0x7c00) == INFINITY);
    ck_assert(sg_f16_to_f32(0xfc00) == -INFINITY);
    ck_assert(isnan(sg_f16_to_f32(0x7e00)));
    ck_assert(sg_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    ck_assert(sg_f16_to_f32(0x3555) == 0.333251953125f);
}
END_TEST

START_TEST(test_bf16) {
    ck_assert_uint_eq(sg_f32_to_bf16(1.0f), 0x3f80);
    ck_assert(sg_bf16_to_f32(0x3f80) == 1.0f);
    ck_assert(sg_bf16_to_f32(0xc0a0) == -5.0f);
    uint32_t cases[][2] = {
        {0x3f808000u, 0x3f80}, /* tie, even below */
        {0x3f818000u, 0x3f82}, /* tie, odd below -> up */
        {0x3f808001u, 0x3f81},
        {0x3f807fffu, 0x3f80},
        {0x7f7fffffu, 0x7f80}, /* rounds to inf */
        {0xff7fffffu, 0xff80},
        {0x7f800000u, 0x7f80},
        {0x00000001u, 0x0000}, /* tiny subnormal */
        {0x80008000u, 0x8000}, /* tie to even (0) */
        {0x00018000u, 0x0002},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float f;
        memcpy(&f, &cases[i][0], 4);
        ck_assert_msg(sg_f32_to_bf16(f) == cases[i][1], "%08x -> %04x, expected %04x",
                      cases[i][0], sg_f32_to_bf16(f), cases[i][1]);
    }
    uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu, 0x7f80ffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        float f;
        memcpy(&f, &nans[i], 4);
        uint16_t b = sg_f32_to_bf16(f);
        ck_assert_msg(isnan(sg_bf16_to_f32(b)), "nan %08x -> %04x", nans[i], b);
        ck_assert_uint_eq(b >> 15, nans[i] >> 31);
    }
    /* every bf16 round-trips */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sg_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        ck_assert_uint_eq(sg_f32_to_bf16(f), h);
    }
}
END_TEST

static uint16_t h16(float f) { /* exact halves only (checked) */
    uint16_t h = sg_f32_to_f16(f);
    ck_assert(sg_f16_to_f32(h) == f);
    return h;
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void check_deq(uint32_t type, const uint8_t *blocks, const double *want, int n) {
    float *got = malloc(sizeof(float) * (size_t)n);
    ck_assert_int_eq(sg_dequantize_row(type, blocks, got, (uint64_t)n), 0);
    for (int i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= 1e-6 * (1.0 + fabs(want[i])),
                      "%s element %d: %.9g, expected %.9g", sg_type_name(type), i, (double)got[i],
                      want[i]);
    free(got);
}

/* Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: two blocks each with random quants. */
START_TEST(test_dequant_32) {
    const float ds[2] = {0.5f, -0.03125f}, ms[2] = {-1.25f, 3.0f};
    for (int rep = 0; rep < 20; rep++) {
        uint8_t buf[2 * 34];
        double want[64];
        /* Q4_0 */
        memset(buf, 0, sizeof buf);
        for (int b = 0; b < 2; b++) {
            uint8_t *blk = buf + 18 * b;
            put16(blk, h16(ds[b]));
            for (int e = 0; e < 32; e++) {
                int q = (int)(rnd() % 16);
                if (e < 16) blk[2 + e] |= (uint8_t)q;
                else blk[2 + e - 16] |= (uint8_t)(q << 4);
                want[32 * b + e] = (q - 8) * (double)ds[b];
            }
        }
        check_deq(SG_TYPE_Q4_0, buf, want, 64);
        /* Q4_1 */
        memset(buf, 0, sizeof buf);
        for (int b = 0; b < 2; b++) {
            uint8_t *blk = buf + 20 * b;
            put16(blk, h16(ds[b]));
            put16(blk + 2, h16(ms[b]));
            for (int e = 0; e < 32; e++) {
                int q = (int)(rnd() % 16);
                if (e < 16) blk[4 + e] |= (uint8_t)q;
                else blk[4 + e - 16] |= (uint8_t)(q << 4);
                want[32 * b + e] = q * (double)ds[b] + ms[b];
            }
        }
        check_deq(SG_TYPE_Q4_1, buf, want, 64);
        /* Q5_0 and Q5_1 */
        for (int v1 = 0; v1 < 2; v1++) {
            int bsz = v1 ? 24 : 22, qh_at = v1 ? 4 : 2, qs_at = qh_at + 4;
            memset(buf, 0, sizeof buf);
            for (int b = 0; b < 2; b++) {
                uint8_t *blk = buf + bsz * b;
                put16(blk, h16(ds[b]));
                if (v1) put16(blk + 2, h16(ms[b]));
                uint32_t qh = 0;
                for (int e = 0; e < 32; e++) {
                    int q = (int)(rnd() % 32);
                    if (e < 16) blk[qs_at + e] |= (uint8_t)(q & 15);
                    else blk[qs_at + e - 16] |= (uint8_t)((q & 15) << 4);
                    if (q & 16) qh |= 1u << e;
                    want[32 * b + e] = v1 ? q * (double)ds[b] + ms[b] : (q - 16) * (double)ds[b];
                }
                put32(blk + qh_at, qh);
            }
            check_deq(v1 ? SG_TYPE_Q5_1 : SG_TYPE_Q5_0, buf, want, 64);
        }
        /* Q8_0 */
        for (int b = 0; b < 2; b++) {
            uint8_t *blk = buf + 34 * b;
            put16(blk, h16(ds[b]));
            for (int e = 0; e < 32; e++) {
                int q = (int)(rnd() % 256) - 128;
                blk[2 + e] = (uint8_t)(int8_t)q;
                want[32 * b + e] = q * (double)ds[b];
            }
        }
        check_deq(SG_TYPE_Q8_0, buf, want, 64);
    }
}
END_TEST

/* Pack 8 six-bit (scale, min) pairs the K-quant way. */
static void pack_k_scales(uint8_t s[12], const int sc[8], const int mn[8]) {
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

START_TEST(test_dequant_k) {
    for (int rep = 0; rep < 20; rep++) {
        double want[256];
        float d = rep % 2 ? 0.0078125f : -0.25f, dmin = rep % 3 ? 0.015625f : 0.5f;
        int sc[8], mn[8];
        for (int i = 0; i < 8; i++) {
            sc[i] = (int)(rnd() % 64);
            mn[i] = (int)(rnd() % 64);
        }
        if (rep == 0)
            for (int i = 0; i < 8; i++) sc[i] = mn[i] = 63; /* all bits set */
        /* Q4_K and Q5_K */
        for (int five = 0; five < 2; five++) {
            uint8_t blk[176];
            memset(blk, 0, sizeof blk);
            put16(blk, h16(d));
            put16(blk + 2, h16(dmin));
            pack_k_scales(blk + 4, sc, mn);
            uint8_t *qh = blk + 16, *qs = five ? blk + 48 : blk + 16;
            for (int e = 0; e < 256; e++) {
                int sb = e / 32, l = e % 32;
                int q = (int)(rnd() % (five ? 32 : 16));
                qs[32 * (sb / 2) + l] |= (uint8_t)((q & 15) << (sb % 2 ? 4 : 0));
                if (five && (q & 16)) qh[l] |= (uint8_t)(1u << sb);
                want[e] = (double)d * sc[sb] * q - (double)dmin * mn[sb];
            }
            check_deq(five ? SG_TYPE_Q5_K : SG_TYPE_Q4_K, blk, want, 256);
        }
        /* Q6_K */
        uint8_t blk[210];
        memset(blk, 0, sizeof blk);
        int8_t s6[16];
        for (int i = 0; i < 16; i++) s6[i] = (int8_t)((int)(rnd() % 256) - 128);
        memcpy(blk + 192, s6, 16);
        put16(blk + 208, h16(d));
        for (int e = 0; e < 256; e++) {
            int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
            int q = (int)(rnd() % 64);
            int lo_at = 64 * half + (quarter % 2) * 32 + l;
            blk[lo_at] |= (uint8_t)((q & 15) << (quarter >= 2 ? 4 : 0));
            blk[128 + 32 * half + l] |= (uint8_t)((q >> 4) << (2 * quarter));
            want[e] = (double)d * s6[e / 16] * (q - 32);
        }
        check_deq(SG_TYPE_Q6_K, blk, want, 256);
    }
}
END_TEST

START_TEST(test_dequant_float_types) {
    float src[8] = {1.0f, -2.5f, 0.0f, 65504.0f, 1e-3f, -3.0e38f, 7.0f, 0.1f};
    float out[8];
    ck_assert_int_eq(sg_dequantize_row(SG_TYPE_F32, src, out, 8), 0);
    ck_assert(memcmp(src, out, sizeof src) == 0);
    uint16_t h[4] = {0x3c00, 0xc100, 0x0001, 0x7bff};
    ck_assert_int_eq(sg_dequantize_row(SG_TYPE_F16, h, out, 4), 0);
    ck_assert(out[0] == 1.0f && out[1] == -2.5f && out[2] == ldexpf(1, -24) && out[3] == 65504.0f);
    uint16_t b[3] = {0x3f80, 0xc020, 0x4120};
    ck_assert_int_eq(sg_dequantize_row(SG_TYPE_BF16, b, out, 3), 0);
    ck_assert(out[0] == 1.0f && out[1] == -2.5f && out[2] == 10.0f);
}
END_TEST

START_TEST(test_type_info) {
    struct { uint32_t t, be, bb; } k[] = {
        {SG_TYPE_F32, 1, 4},     {SG_TYPE_F16, 1, 2},     {SG_TYPE_BF16, 1, 2},
        {SG_TYPE_Q4_0, 32, 18},  {SG_TYPE_Q4_1, 32, 20},  {SG_TYPE_Q5_0, 32, 22},
        {SG_TYPE_Q5_1, 32, 24},  {SG_TYPE_Q8_0, 32, 34},  {SG_TYPE_Q4_K, 256, 144},
        {SG_TYPE_Q5_K, 256, 176}, {SG_TYPE_Q6_K, 256, 210}, {SG_TYPE_Q2_K, 256, 84},
        {SG_TYPE_Q3_K, 256, 110}, {SG_TYPE_IQ4_NL, 32, 18}, {SG_TYPE_IQ4_XS, 256, 136},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        uint32_t be = 0, bb = 0;
        ck_assert_int_eq(sg_type_info(k[i].t, &be, &bb), 1);
        ck_assert_uint_eq(be, k[i].be);
        ck_assert_uint_eq(bb, k[i].bb);
        ck_assert_uint_eq(sg_type_row_bytes(k[i].t, 4096), 4096 / k[i].be * k[i].bb);
    }
    /* still refused: Q8_1, Q8_K, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ3_S, IQ2_S,
     * IQ1_M, TQ1_0, TQ2_0, MXFP4, the integer and F64 types, unknown numbers */
    uint32_t unsupported[] = {SG_TYPE_Q8_1, SG_TYPE_Q8_K, 4, 5, 16, 17, 18, 19, 21, 22, 24, 25, 26,
                              27, 28, 29, 31, 34, 35, 39, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        ck_assert_int_eq(sg_type_info(unsupported[i], NULL, NULL), 0);
        ck_assert_uint_eq(sg_type_row_bytes(unsupported[i], 256), 0);
        float out[256];
        uint8_t zero[512] = {0};
        ck_assert_int_eq(sg_dequantize_row(unsupported[i], zero, out, 256), -1);
    }
    ck_assert_str_eq(sg_type_name(SG_TYPE_Q4_K), "Q4_K");
    ck_assert_str_eq(sg_type_name(SG_TYPE_Q2_K), "Q2_K");
    ck_assert_str_eq(sg_type_name(SG_TYPE_IQ4_NL), "IQ4_NL");
    ck_assert_str_eq(sg_type_name(SG_TYPE_IQ4_XS), "IQ4_XS");
    /* block constraints of the new types */
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_Q2_K, 128), 0);
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_Q3_K, 384), 0);
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_IQ4_XS, 224), 0);
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_IQ4_NL, 48), 0);
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_IQ4_NL, 96), 54);
    ck_assert_str_eq(sg_type_name(SG_TYPE_BF16), "BF16");
    ck_assert_str_eq(sg_type_name(4), "?");
    ck_assert_str_eq(sg_type_name(UINT32_MAX), "?");
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_Q4_0, 33), 0);
    ck_assert_uint_eq(sg_type_row_bytes(SG_TYPE_F32, UINT64_MAX), 0);
    ck_assert_int_eq(sg_dequantize_row(SG_TYPE_Q8_0, NULL, NULL, 33), -1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (c) malformed files                                                      */
/* ------------------------------------------------------------------------ */

/* A small valid file: a few kvs of several types, three tensors. */
static void small_file(uint8_t **img, size_t *n) {
    gw_writer *w = gw_new();
    gw_kv_str(w, "general.architecture", "llama");
    gw_kv_u32(w, "k.u32", 5);
    const char *s[] = {"ab", "c"};
    gw_kv_arr_str(w, "k.strs", s, 2);
    float f[3] = {1, 2, 3};
    gw_kv_arr(w, "k.f32s", GW_F32, f, 3);
    uint8_t q8[34 * 2] = {0};
    uint64_t ne[2] = {32, 2};
    gw_tensor(w, "t.q8", SG_TYPE_Q8_0, 2, ne, q8, sizeof q8);
    float d[10] = {0};
    uint64_t ne1[1] = {10};
    gw_tensor(w, "t.f32", SG_TYPE_F32, 1, ne1, d, sizeof d);
    gw_tensor(w, "t.last", SG_TYPE_F32, 1, ne1, d, sizeof d);
    image(w, img, n);
}

START_TEST(test_truncated_everywhere) {
    uint8_t *img;
    size_t n;
    small_file(&img, &n);
    sg_gguf *g;
    sg_err err;
    ck_assert_int_eq(gopen(img, n, &g, &err), SIGMA_OK);
    sg_gguf_close(g);
    for (size_t len = 0; len < n; len++) {
        /* a fresh exact-size copy so ASan sees any read past the end */
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, img, len);
        g = (sg_gguf *)1;
        int st = gopen(cut, len, &g, &err);
        ck_assert_msg(st == SIGMA_E_FORMAT, "truncated at %zu of %zu: status %d", len, n, st);
        ck_assert_ptr_null(g);
        ck_assert_msg(err.msg[0], "truncated at %zu: empty message", len);
        free(cut);
    }
    free(img);
}
END_TEST

START_TEST(test_truncated_model_public) {
    spec s = sigma_spec();
    uint8_t *img;
    size_t n;
    build_model(&s, &img, &n);
    sigma_model *m = NULL;
    char eb[512];
    ck_assert_msg(mopen(img, n, &m, eb, sizeof eb) == SIGMA_OK, "%s", eb);
    sigma_model_close(m);
    /* every header byte, then a stride through the data */
    size_t step = 1;
    for (size_t len = 0; len < n; len += step) {
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, img, len);
        m = NULL;
        int st = mopen(cut, len, &m, eb, sizeof eb);
        ck_assert_msg(st == SIGMA_E_FORMAT, "cut at %zu: status %d (%s)", len, st, eb);
        ck_assert_ptr_null(m);
        ck_assert(eb[0] != '\0');
        free(cut);
        if (len > 3000) step = 97;
    }
    free(img);
}
END_TEST

START_TEST(test_bad_header) {
    uint8_t *img;
    size_t n;
    small_file(&img, &n);
    uint8_t *c = malloc(n);
    memcpy(c, img, n);
    c[0] = 'X';
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "magic");
    memcpy(c, img, n);
    put32(c + 4, 1);
    expect_gguf_fail(c, n, SIGMA_E_UNSUPPORTED, "version 1");
    put32(c + 4, 4);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "version 4");
    put32(c + 4, 0x03000000u);
    expect_gguf_fail(c, n, SIGMA_E_UNSUPPORTED, "big-endian");
    memcpy(c, img, n);
    put64(c + 8, 1ull << 63);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "tensor count");
    memcpy(c, img, n);
    put64(c + 16, 1ull << 63);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "metadata count");
    memcpy(c, img, n);
    put64(c + 16, UINT64_MAX);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "metadata count");
    /* more kvs than there are: the tensor infos get read as kvs and fail */
    memcpy(c, img, n);
    put64(c + 16, 5);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, NULL);
    /* first key's length past the end */
    memcpy(c, img, n);
    put64(c + 24, n);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "key of length");
    put64(c + 24, UINT64_MAX);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "metadata entry 0");
    put64(c + 24, 0);
    expect_gguf_fail(c, n, SIGMA_E_FORMAT, "empty key");
    free(c);
    free(img);
    expect_gguf_fail((const uint8_t *)"GGU", 3, SIGMA_E_FORMAT, "magic");
    expect_gguf_fail((const uint8_t *)"GGUF\3\0\0", 7, SIGMA_E_FORMAT, "truncated");
}
END_TEST

/* One bad kv (raw value bytes) among good ones. */
static void expect_bad_kv(uint32_t type, const uint8_t *raw, size_t k, int status, const char *needle) {
    gw_writer *w = gw_new();
    gw_kv_u32(w, "good.before", 1);
    gw_kv_raw(w, "bad.key", type, raw, k);
    gw_kv_u32(w, "good.after", 2);
    uint8_t *img;
    size_t n;
    image(w, &img, &n);
    expect_gguf_fail(img, n, status, needle ? needle : "bad.key");
    free(img);
}

START_TEST(test_bad_values) {
    uint8_t raw[256];
    /* string length past the end / 2^63 */
    put64(raw, 1000);
    memcpy(raw + 8, "abc", 3);
    expect_bad_kv(GW_STRING, raw, 11, SIGMA_E_FORMAT, "bad.key");
    put64(raw, 1ull << 63);
    expect_bad_kv(GW_STRING, raw, 11, SIGMA_E_FORMAT, "string of length 9223372036854775808");
    /* array of u32 with too many elements; count * 4 overflowing */
    put32(raw, GW_U32);
    put64(raw + 4, 100);
    expect_bad_kv(GW_ARRAY, raw, 12 + 8, SIGMA_E_FORMAT, "bad.key");
    put64(raw + 4, 1ull << 62);
    expect_bad_kv(GW_ARRAY, raw, 12 + 8, SIGMA_E_FORMAT, "bad.key");
    put32(raw, GW_F64);
    put64(raw + 4, UINT64_MAX / 4);
    expect_bad_kv(GW_ARRAY, raw, 12 + 8, SIGMA_E_FORMAT, "bad.key");
    /* array of strings: huge count, then one bad string inside */
    put32(raw, GW_STRING);
    put64(raw + 4, 1ull << 61);
    expect_bad_kv(GW_ARRAY, raw, 12 + 8, SIGMA_E_FORMAT, "bad.key");
    put64(raw + 4, 2);
    put64(raw + 12, 1);
    raw[20] = 'x';
    put64(raw + 21, 1ull << 40);
    expect_bad_kv(GW_ARRAY, raw, 29, SIGMA_E_FORMAT, "string 1");
    /* unknown value type, unknown element type */
    expect_bad_kv(13, raw, 8, SIGMA_E_FORMAT, "unknown value type 13");
    put32(raw, 77);
    put64(raw + 4, 1);
    expect_bad_kv(GW_ARRAY, raw, 12 + 8, SIGMA_E_FORMAT, "unknown array element type 77");
    /* nesting deeper than the limit */
    size_t k = 0;
    for (int d = 0; d < 12; d++) {
        put32(raw + k, GW_ARRAY);
        put64(raw + k + 4, 1);
        k += 12;
    }
    put32(raw + k, GW_U8);
    put64(raw + k + 4, 0);
    k += 12;
    expect_bad_kv(GW_ARRAY, raw, k, SIGMA_E_FORMAT, "nested");
    /* a nested array whose inner count is too large */
    put32(raw, GW_ARRAY);
    put64(raw + 4, 1);
    put32(raw + 12, GW_U16);
    put64(raw + 16, 1ull << 62);
    expect_bad_kv(GW_ARRAY, raw, 24, SIGMA_E_FORMAT, "bad.key");
    /* huge outer count of arrays */
    put64(raw + 4, 1ull << 60);
    expect_bad_kv(GW_ARRAY, raw, 24, SIGMA_E_FORMAT, "bad.key");
    /* scalar value cut by the end of the file: the kv is last */
    gw_writer *w = gw_new();
    gw_kv_raw(w, "cut.u64", GW_U64, raw, 3);
    uint8_t *img;
    size_t n;
    image(w, &img, &n);
    /* the writer pads to the alignment: trim the padding */
    size_t end = 24 + 8 + strlen("cut.u64") + 4 + 3;
    expect_gguf_fail(img, end, SIGMA_E_FORMAT, "cut.u64");
    free(img);
}
END_TEST

START_TEST(test_bad_keys) {
    /* duplicate keys */
    gw_writer *w = gw_new();
    gw_kv_u32(w, "dup.key", 1);
    gw_kv_u32(w, "other", 1);
    gw_kv_str(w, "dup.key", "x");
    uint8_t *img;
    size_t n;
    image(w, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "duplicate metadata key 'dup.key'");
    free(img);
    /* key with a NUL byte */
    w = gw_new();
    gw_kv_u32(w, "nul@key", 1);
    image(w, &img, &n);
    uint8_t *at = memchr(img, '@', n);
    ck_assert_ptr_nonnull(at);
    *at = 0;
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "NUL");
    free(img);
    /* general.alignment: wrong type, zero, not a power of two */
    struct { int kind; uint32_t v; const char *needle; } cases[] = {
        {0, 0, "expected u32"}, {1, 0, "power of two"}, {1, 48, "48"}};
    for (int i = 0; i < 3; i++) {
        w = gw_new();
        if (cases[i].kind == 0) gw_kv_u64(w, "general.alignment", 32);
        else gw_kv_u32(w, "general.alignment", cases[i].v);
        image(w, &img, &n);
        expect_gguf_fail(img, n, SIGMA_E_FORMAT, "general.alignment");
        expect_gguf_fail(img, n, SIGMA_E_FORMAT, cases[i].needle);
        free(img);
    }
}
END_TEST

static void one_tensor(uint32_t type, uint32_t n_dims, const uint64_t *ne, size_t nbytes,
                       uint8_t **img, size_t *n) {
    gw_writer *w = gw_new();
    gw_kv_u32(w, "x", 1);
    uint8_t *data = calloc(1, nbytes ? nbytes : 1);
    float ok[8] = {0};
    uint64_t ne_ok[1] = {8};
    gw_tensor(w, "ok.tensor", SG_TYPE_F32, 1, ne_ok, ok, sizeof ok);
    int rc = gw_tensor(w, "blk.3.attn_k.weight", type, n_dims, ne, data, nbytes);
    free(data);
    if (rc != 0) { /* the writer refused the tensor */
        gw_free(w);
        *img = NULL;
        *n = 0;
        return;
    }
    image(w, img, n);
}

START_TEST(test_bad_tensors) {
    uint8_t *img;
    size_t n;
    const char *tn = "blk.3.attn_k.weight";
    /* product of dims overflows */
    uint64_t big[3] = {1ull << 32, 1ull << 32, 2};
    one_tensor(SG_TYPE_F32, 3, big, 16, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "'blk.3.attn_k.weight': the number of elements");
    free(img);
    uint64_t big2[2] = {1ull << 61, 4};
    one_tensor(SG_TYPE_F32, 2, big2, 16, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, tn);
    free(img);
    /* bytes overflow though elements do not: F32 of 2^62 elements */
    uint64_t big3[1] = {1ull << 62};
    one_tensor(SG_TYPE_F32, 1, big3, 16, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, tn);
    free(img);
    /* dims: zero, too many, none */
    uint64_t z[2] = {32, 0};
    one_tensor(SG_TYPE_F32, 2, z, 16, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "dimension 1 is 0");
    free(img);
    uint64_t five[5] = {2, 2, 2, 2, 2};
    one_tensor(SG_TYPE_F32, 5, five, 128, &img, &n);
    ck_assert_ptr_null(img); /* the writer refuses; patch instead */
    uint64_t four[4] = {2, 2, 2, 2};
    one_tensor(SG_TYPE_F32, 4, four, 64, &img, &n);
    sg_gguf *g;
    sg_err err;
    ck_assert_int_eq(gopen(img, n, &g, &err), SIGMA_OK);
    sg_gguf_close(g);
    put32(img + find_tensor_info(img, n, tn), 5);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "5 dimensions");
    put32(img + find_tensor_info(img, n, tn), 0);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "0 dimensions");
    free(img);
    /* unknown type, unsupported type, row not a multiple of the block */
    uint64_t ne[2] = {256, 2};
    one_tensor(200, 2, ne, 1024, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "'blk.3.attn_k.weight': unknown type 200");
    free(img);
    one_tensor(16 /* IQ2_XXS */, 2, ne, 1024, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_UNSUPPORTED, "'blk.3.attn_k.weight': type IQ2_XXS");
    free(img);
    one_tensor(SG_TYPE_Q8_K, 2, ne, 1024, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_UNSUPPORTED, "Q8_K");
    free(img);
    one_tensor(21 /* IQ3_S */, 2, ne, 1024, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_UNSUPPORTED, "IQ3_S");
    free(img);
    /* Q2_K, Q3_K, IQ4_NL, IQ4_XS are read; their rows must be whole blocks */
    static const struct { uint32_t type; uint64_t ok_ne0, bad_ne0; size_t row_bytes; const char *msg; } blk[] = {
        {SG_TYPE_Q2_K, 256, 128, 84, "row length 128 is not a multiple of the Q2_K block size 256"},
        {SG_TYPE_Q3_K, 512, 288, 220, "row length 288 is not a multiple of the Q3_K block size 256"},
        {SG_TYPE_IQ4_XS, 256, 32, 136, "row length 32 is not a multiple of the IQ4_XS block size 256"},
        {SG_TYPE_IQ4_NL, 96, 48, 54, "row length 48 is not a multiple of the IQ4_NL block size 32"},
    };
    for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
        uint64_t good[2] = {blk[i].ok_ne0, 2};
        one_tensor(blk[i].type, 2, good, 2 * blk[i].row_bytes, &img, &n);
        ck_assert_ptr_nonnull(img);
        sg_gguf *g1;
        sg_err e1;
        ck_assert_int_eq(gopen(img, n, &g1, &e1), SIGMA_OK);
        const sg_tensor *t1 = sg_gguf_tensor(g1, "blk.3.attn_k.weight");
        ck_assert_ptr_nonnull(t1);
        ck_assert_uint_eq(t1->type, blk[i].type);
        ck_assert_uint_eq(t1->nbytes, 2 * blk[i].row_bytes);
        sg_gguf_close(g1);
        free(img);
        uint64_t bad[2] = {blk[i].bad_ne0, 2};
        one_tensor(blk[i].type, 2, bad, 1024, &img, &n);
        ck_assert_ptr_nonnull(img);
        expect_gguf_fail(img, n, SIGMA_E_FORMAT, blk[i].msg);
        free(img);
    }
    uint64_t odd[2] = {33, 2};
    one_tensor(SG_TYPE_Q8_0, 2, odd, 68, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "not a multiple");
    free(img);
    /* data shorter than the declared shape: past the end */
    uint64_t ne2[2] = {64, 64};
    one_tensor(SG_TYPE_F32, 2, ne2, 64, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "'blk.3.attn_k.weight': data at offset");
    free(img);
    /* offsets: out of range, huge, misaligned, overlapping */
    uint64_t ne3[1] = {16};
    one_tensor(SG_TYPE_F32, 1, ne3, 64, &img, &n);
    ck_assert_int_eq(gopen(img, n, &g, &err), SIGMA_OK);
    sg_gguf_close(g);
    size_t off = tensor_offset_field(img, n, tn);
    put64(img + off, 4096);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "'blk.3.attn_k.weight': data at offset 4096");
    put64(img + off, UINT64_MAX - 31);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, tn);
    put64(img + off, 36);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "'blk.3.attn_k.weight': offset 36 not aligned to 32");
    put64(img + off, 0); /* overlaps ok.tensor at 0 */
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "overlaps");
    free(img);
    /* duplicate tensor names */
    gw_writer *w = gw_new();
    float d[8] = {0};
    gw_tensor(w, "same", SG_TYPE_F32, 1, ne3, d, 32);
    gw_tensor(w, "other", SG_TYPE_F32, 1, ne3, d, 32);
    gw_tensor(w, "same", SG_TYPE_F32, 1, ne3, d, 32);
    for (int i = 0; i < 3; i++) (void)0;
    image(w, &img, &n);
    /* the tensors hold 8 floats but ne says 16: fix the shapes first */
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, NULL);
    free(img);
    w = gw_new();
    uint64_t ne8[1] = {8};
    gw_tensor(w, "same", SG_TYPE_F32, 1, ne8, d, 32);
    gw_tensor(w, "other", SG_TYPE_F32, 1, ne8, d, 32);
    gw_tensor(w, "same", SG_TYPE_F32, 1, ne8, d, 32);
    image(w, &img, &n);
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "duplicate tensor name 'same'");
    free(img);
    /* data section start past the end: header only, tensor count 1 */
    w = gw_new();
    gw_tensor(w, "t", SG_TYPE_F32, 1, ne8, d, 32);
    image(w, &img, &n);
    size_t hdr = n - 32; /* the data section is the last 32 bytes */
    expect_gguf_fail(img, hdr - 1, SIGMA_E_FORMAT, NULL);
    free(img);
}
END_TEST

/* Hostile sizes: many entries must not be quadratic. */
START_TEST(test_many_entries) {
    gw_writer *w = gw_new();
    char key[32];
    const uint32_t N = 200000;
    for (uint32_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%u", (unsigned)(((uint64_t)i * 2654435761u) % N));
        ck_assert_int_eq(gw_kv_u32(w, key, i), 0);
    }
    uint8_t *img;
    size_t n;
    image(w, &img, &n);
    sg_gguf *g;
    sg_err err;
    double t0 = sg_now_ms();
    ck_assert_msg(gopen(img, n, &g, &err) == SIGMA_OK, "%s", err.msg);
    double dt = sg_now_ms() - t0;
    ck_assert_msg(dt < 5000, "open took %.0f ms", dt);
    ck_assert_uint_eq(g->n_kv, N);
    ck_assert_ptr_nonnull(sg_gguf_find(g, "k12345"));
    ck_assert_uint_eq(sg_gguf_find(g, "k0")->value.v.u, 0);
    ck_assert_ptr_null(sg_gguf_find(g, "k200000"));
    sg_gguf_close(g);
    /* make one key a duplicate: "k1" -> "k2" somewhere */
    uint8_t pat[10] = {2, 0, 0, 0, 0, 0, 0, 0, 'k', '1'};
    uint8_t *p = NULL;
    for (size_t i = 24; i + 10 <= n; i++)
        if (memcmp(img + i, pat, 10) == 0) {
            p = img + i;
            break;
        }
    ck_assert_ptr_nonnull(p);
    p[9] = '2';
    expect_gguf_fail(img, n, SIGMA_E_FORMAT, "duplicate metadata key 'k2'");
    free(img);
}
END_TEST

/* Model-level errors through the public API. */
START_TEST(test_model_errors) {
    uint8_t *img;
    size_t n;
    struct {
        int sigma;
        const char *omit_key, *str_key, *omit_tensor, *bad_shape, *extra, *arch;
        uint32_t norm_type, n_k, n_v, n_rot, d_aug_override;
        float eps;
        int status;
        const char *needle;
    } c[] = {
        {0, "block_count", NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "missing required key 'llama.block_count'"},
        {0, "attention.layer_norm_rms_epsilon", NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "llama.attention.layer_norm_rms_epsilon"},
        {0, "general.architecture", NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "general.architecture"},
        {0, NULL, "block_count", NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "'llama.block_count': type string"},
        {0, NULL, "attention.layer_norm_rms_epsilon", NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "llama.attention.layer_norm_rms_epsilon"},
        {1, NULL, "attention.head_count_v", NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "sigma.attention.head_count_v"},
        {0, NULL, NULL, "blk.1.ffn_down.weight", NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "missing tensor 'blk.1.ffn_down.weight'"},
        {0, NULL, NULL, "token_embd.weight", NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "token_embd.weight"},
        {0, NULL, NULL, "output_norm.weight", NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "output_norm.weight"},
        {0, NULL, NULL, NULL, "blk.1.attn_k.weight", NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "tensor 'blk.1.attn_k.weight': shape (32, 17), expected (32, 16)"},
        {0, NULL, NULL, NULL, "blk.0.attn_norm.weight", NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "tensor 'blk.0.attn_norm.weight': shape (33), expected (32)"},
        {1, NULL, NULL, NULL, "blk.1.attn_v.weight", NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "tensor 'blk.1.attn_v.weight': shape (32, 17), expected (32, 16)"},
        {1, NULL, NULL, NULL, "blk.0.attn_q_down.weight", NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "blk.0.attn_q_down.weight"},
        {1, NULL, NULL, NULL, "output.weight", NULL, NULL, 0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "tensor 'output.weight': shape (32, 41), expected (32, 40)"},
        {1, NULL, NULL, "blk.1.attn_q_up.weight", NULL, NULL, NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "missing tensor 'blk.1.attn_q_up.weight'"},
        {0, NULL, NULL, NULL, NULL, "blk.1.attn_q_gate.weight", NULL, 0, 0, 0, 0, 0, 0,
         SIGMA_E_FORMAT, "blk.1.attn_q_gate.weight"},
        {0, NULL, NULL, NULL, NULL, NULL, "gpt2", 0, 0, 0, 0, 0, 0, SIGMA_E_UNSUPPORTED, "gpt2"},
        {0, NULL, NULL, NULL, NULL, NULL, NULL, SG_TYPE_Q8_0, 0, 0, 0, 0, 0, SIGMA_E_FORMAT,
         "'blk.0.attn_norm.weight': type Q8_0"},
        {0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 3, 3, 0, 0, 0, SIGMA_E_FORMAT,
         "not a multiple"},
        {1, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 3, 0, 0, 0, SIGMA_E_FORMAT,
         "V head count 3"},
        {1, NULL, NULL, NULL, NULL, NULL, NULL, 0, 3, 2, 0, 0, 0, SIGMA_E_FORMAT,
         "K head count 3"},
        {0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 7, 0, 0, SIGMA_E_FORMAT,
         "llama.rope.dimension_count"},
        {0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 10, 0, 0, SIGMA_E_FORMAT,
         "llama.rope.dimension_count"},
        {0, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, -1.0f, SIGMA_E_FORMAT,
         "layer_norm_rms_epsilon"},
        {1, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NAN, SIGMA_E_FORMAT,
         "sigma.attention.layer_norm_rms_epsilon"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        spec s = c[i].sigma ? sigma_spec() : llama_spec();
        s.omit_key = c[i].omit_key;
        s.str_key = c[i].str_key;
        s.omit_tensor = c[i].omit_tensor;
        s.bad_shape_tensor = c[i].bad_shape;
        s.extra_tensor = c[i].extra;
        s.arch_name = c[i].arch;
        s.norm_type = c[i].norm_type;
        if (c[i].n_k) s.n_k = c[i].n_k;
        if (c[i].n_v) s.n_v = c[i].n_v;
        if (!s.sigma) s.n_v = s.n_k;
        s.n_rot = c[i].n_rot;
        if (c[i].eps != 0) s.eps = c[i].eps;
        if (c[i].n_k && !s.sigma) {
            /* keep the shapes consistent with the head count: only the
             * divisibility is wrong */
        }
        build_model(&s, &img, &n);
        sigma_model *m = NULL;
        char eb[512];
        int st = mopen(img, n, &m, eb, sizeof eb);
        ck_assert_msg(st == c[i].status, "case %zu: status %d, expected %d (%s)", i, st,
                      c[i].status, eb);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(eb, c[i].needle) != NULL, "case %zu: '%s' lacks '%s'", i, eb,
                      c[i].needle);
        free(img);
    }
}
END_TEST

START_TEST(test_model_absurd_sizes) {
    /* a huge block count on a small file must not allocate layers for it */
    spec s = llama_spec();
    uint8_t *img;
    size_t n;
    build_model(&s, &img, &n);
    uint8_t pat[] = "llama.block_count";
    uint8_t *p = NULL;
    for (size_t i = 0; i + sizeof pat <= n; i++)
        if (memcmp(img + i, pat, sizeof pat - 1) == 0) p = img + i + sizeof pat - 1;
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(get32(p), GW_U32);
    put32(p + 4, 1000000);
    expect_model_fail(img, n, SIGMA_E_FORMAT, "block_count");
    put32(p + 4, 0);
    expect_model_fail(img, n, SIGMA_E_FORMAT, "llama.block_count");
    put32(p + 4, UINT32_MAX);
    expect_model_fail(img, n, SIGMA_E_FORMAT, "llama.block_count");
    free(img);
    /* a zero context length */
    s = llama_spec();
    s.n_ctx = 0;
    build_model(&s, &img, &n);
    expect_model_fail(img, n, SIGMA_E_FORMAT, "llama.context_length");
    free(img);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (d) tiny valid models                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_tiny_llama) {
    spec s = llama_spec();
    uint8_t *img;
    size_t n;
    build_model(&s, &img, &n);
    sigma_model *m = NULL;
    char eb[512];
    ck_assert_msg(mopen(img, n, &m, eb, sizeof eb) == SIGMA_OK, "%s", eb);
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
    ck_assert_int_eq(info.arch, SIGMA_ARCH_LLAMA);
    ck_assert_str_eq(info.arch_name, "llama");
    ck_assert_str_eq(info.name, "tiny llama");
    ck_assert_uint_eq(info.n_layers, 2);
    ck_assert_uint_eq(info.n_embd, 32);
    ck_assert_uint_eq(info.n_ff, 48);
    ck_assert_uint_eq(info.n_q_heads, 4);
    ck_assert_uint_eq(info.n_k_heads, 2);
    ck_assert_uint_eq(info.n_v_heads, 2);
    ck_assert_uint_eq(info.d_qk, 8);
    ck_assert_uint_eq(info.d_v, 8);
    ck_assert_uint_eq(info.d_aug, 0);
    ck_assert_uint_eq(info.n_rot, 8);
    ck_assert_uint_eq(info.n_vocab, 40);
    ck_assert_uint_eq(info.n_ctx_train, 256);
    ck_assert(info.rope_theta == 10000.0f);
    ck_assert(info.norm_eps == 1e-5f);
    ck_assert_int_eq(info.tied_output, 1);
    uint64_t per_layer = 32 + 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 32 + 3 * 32 * 48;
    ck_assert_uint_eq(info.n_params, 32 * 40 + 32 + 2 * per_layer);
    ck_assert_uint_eq(info.file_size, n);
    ck_assert(m->output == m->tok_embd);
    ck_assert_int_eq(m->hp.rope_layout, SG_ROPE_ADJACENT);
    ck_assert_ptr_null(m->layers[1].wq_gate);
    ck_assert_str_eq(m->layers[1].w_down->name, "blk.1.ffn_down.weight");

    char buf[64];
    size_t len = 0;
    ck_assert_int_eq(sigma_model_meta_get(m, "llama.block_count", buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_str_eq(buf, "2");
    ck_assert_int_eq(sigma_model_meta_get(m, "general.name", buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_str_eq(buf, "tiny llama");
    ck_assert_int_eq(sigma_model_meta_get(m, "tokenizer.ggml.tokens", buf, sizeof buf, &len),
                     SIGMA_OK);
    ck_assert_str_eq(buf, "[40 items]");
    ck_assert_int_eq(sigma_model_meta_get(m, "no.such.key", buf, sizeof buf, &len),
                     SIGMA_E_NOT_FOUND);
    size_t cnt = 0;
    ck_assert_int_eq(sigma_model_meta_count(m, &cnt), SIGMA_OK);
    ck_assert_uint_eq(cnt, 11); /* the keys build_model writes for llama_spec */
    const char *key = NULL;
    ck_assert_int_eq(sigma_model_meta_key(m, 0, &key), SIGMA_OK);
    ck_assert_str_eq(key, "general.architecture");
    ck_assert_int_eq(sigma_model_meta_key(m, cnt, &key), SIGMA_E_NOT_FOUND);
    sigma_model_close(m);
    free(img);

    /* untied output, explicit rope dims; vocab from the embedding alone */
    s = llama_spec();
    s.tied = 0;
    s.n_rot = 4;
    s.with_tokens = 0;
    s.n_k = s.n_v = 4;
    build_model(&s, &img, &n);
    ck_assert_msg(mopen(img, n, &m, eb, sizeof eb) == SIGMA_OK, "%s", eb);
    ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
    ck_assert_int_eq(info.tied_output, 0);
    ck_assert_uint_eq(info.n_rot, 4);
    ck_assert_uint_eq(info.n_vocab, 40);
    ck_assert_uint_eq(info.n_k_heads, 4);
    ck_assert(m->output != m->tok_embd);
    sigma_model_close(m);
    free(img);
}
END_TEST

START_TEST(test_tiny_sigma) {
    spec s = sigma_spec();
    uint8_t *img;
    size_t n;
    build_model(&s, &img, &n);
    /* also through a file, both with mmap and read */
    char path[] = "/tmp/sigma-test-tiny-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, img, n), (ssize_t)n);
    close(fd);
    for (int mode = 0; mode < 3; mode++) {
        sigma_model *m = NULL;
        char eb[512];
        if (mode == 0) {
            ck_assert_msg(mopen(img, n, &m, eb, sizeof eb) == SIGMA_OK, "%s", eb);
        } else {
            sigma_model_params p;
            sigma_model_params_init(&p, sizeof p);
            p.use_mmap = mode == 1;
            p.error_buf = eb;
            p.error_buf_size = sizeof eb;
            ck_assert_msg(sigma_model_open(path, &p, &m) == SIGMA_OK, "%s", eb);
        }
        sigma_model_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
        ck_assert_int_eq(info.arch, SIGMA_ARCH_SIGMA);
        ck_assert_str_eq(info.arch_name, "sigma");
        ck_assert_str_eq(info.name, "tiny sigma");
        ck_assert_uint_eq(info.n_layers, 2);
        ck_assert_uint_eq(info.n_q_heads, 4);
        ck_assert_uint_eq(info.n_k_heads, 1);
        ck_assert_uint_eq(info.n_v_heads, 2);
        ck_assert_uint_eq(info.d_qk, 16);
        ck_assert_uint_eq(info.d_v, 8);
        ck_assert_uint_eq(info.d_aug, 12);
        ck_assert_uint_eq(info.n_rot, 16);
        ck_assert_uint_eq(info.n_vocab, 40);
        ck_assert_uint_eq(info.n_ctx_train, 512);
        ck_assert_int_eq(info.tied_output, 0);
        ck_assert_uint_eq(info.kv_bytes_per_token, 2 * (1 * 16 + 2 * 8) * 4);
        uint64_t per_layer = 32 + 32 * 64 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 64 * 12 + 32 +
                             3 * 32 * 48;
        ck_assert_uint_eq(info.n_params, 2 * 32 * 40 + 32 + 2 * per_layer);
        ck_assert_int_eq(m->hp.rope_layout, SG_ROPE_HALVES);
        ck_assert_ptr_nonnull(m->layers[1].wq_down);
        ck_assert_uint_eq(m->layers[1].wq_down->ne[0], 12);
        ck_assert_uint_eq(m->layers[1].wq_down->ne[1], 64);
        ck_assert_uint_eq(m->layers[0].wv->type, SG_TYPE_BF16);
        char buf[64];
        ck_assert_int_eq(sigma_model_meta_get(m, "sigma.attention.augq_length", buf, sizeof buf,
                                              NULL), SIGMA_OK);
        ck_assert_str_eq(buf, "12");
        ck_assert_int_eq(sigma_model_meta_get(m, "sigma.attention.layer_norm_rms_epsilon", buf,
                                              sizeof buf, NULL), SIGMA_OK);
        ck_assert_msg((float)strtod(buf, NULL) == 1e-5f, "%s", buf); /* f32 printed with 9 digits round-trips */
        /* the tensor data is what was written */
        float x[32];
        ck_assert_int_eq(sg_dequantize_row(m->out_norm->type, m->out_norm->data, x, 32), 0);
        ck_assert(x[8] == (float)(8 % 7) * 0.125f);
        sigma_model_close(m);
    }
    unlink(path);
    free(img);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* (e) the real model                                                       */
/* ------------------------------------------------------------------------ */

static int real_model(void) {
    const char *path = getenv("SIGMA_TEST_MODEL");
    if (!path || !*path) {
        printf("SIGMA_TEST_MODEL not set: skipping\n");
        return 77;
    }
    int fails = 0;
#define EXPECT(c)                                                       \
    do {                                                                \
        if (!(c)) {                                                     \
            fprintf(stderr, "FAILED: %s (line %d)\n", #c, __LINE__);    \
            fails++;                                                    \
        }                                                               \
    } while (0)
    /* the reader and architecture alone (no tokenizer) */
    struct sigma_model *mm = calloc(1, sizeof *mm);
    sg_alloc_init(&mm->alloc, NULL);
    sg_err err;
    sg_err_clear(&err);
    double t0 = sg_now_ms();
    int st = sg_gguf_open_file(&mm->alloc, path, 1, &mm->gguf, &err);
    if (st == SIGMA_OK) st = sg_model_load_arch(mm, &err);
    double t_core = sg_now_ms() - t0;
    EXPECT(st == SIGMA_OK);
    if (st) fprintf(stderr, "%s\n", err.msg);
    printf("GGUF open + architecture: %.2f ms\n", t_core);
    EXPECT(t_core < 100.0);
    if (st == SIGMA_OK) {
        EXPECT(mm->tok_embd->type == SG_TYPE_Q8_0);
        EXPECT(mm->layers[0].wq->type == SG_TYPE_Q4_1);
        EXPECT(mm->out_norm->type == SG_TYPE_F32);
        /* every weight dequantizes to finite values of sane size */
        float *row = malloc(sizeof(float) * 1536);
        for (uint32_t l = 0; l < mm->hp.n_layer; l++) {
            const sg_tensor *ts[] = {mm->layers[l].wq, mm->layers[l].wk, mm->layers[l].w_down,
                                     mm->layers[l].attn_norm};
            for (int k = 0; k < 4; k++) {
                const sg_tensor *t = ts[k];
                size_t rb = sg_type_row_bytes(t->type, t->ne[0]);
                for (uint64_t r = 0; r < t->ne[1]; r += 17) {
                    EXPECT(sg_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, row,
                                             t->ne[0]) == 0);
                    for (uint64_t i = 0; i < t->ne[0]; i++)
                        if (!isfinite(row[i]) || fabsf(row[i]) > 100.0f) {
                            EXPECT(!"weight out of range");
                            break;
                        }
                }
            }
        }
        free(row);
    }
    sg_free(&mm->alloc, mm->layers);
    sg_free(&mm->alloc, mm->name);
    sg_gguf_close(mm->gguf);
    free(mm);

    /* the public API */
    sigma_model_params p;
    sigma_model_params_init(&p, sizeof p);
    char eb[512] = "";
    p.error_buf = eb;
    p.error_buf_size = sizeof eb;
    sigma_model *m = NULL;
    t0 = sg_now_ms();
    st = sigma_model_open(path, &p, &m);
    printf("sigma_model_open (mmap, with tokenizer): %.2f ms\n", sg_now_ms() - t0);
    EXPECT(st == SIGMA_OK);
    if (st) {
        fprintf(stderr, "%s\n", eb);
        return 1;
    }
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    EXPECT(sigma_model_get_info(m, &info) == SIGMA_OK);
    EXPECT(info.arch == SIGMA_ARCH_LLAMA);
    EXPECT(info.n_layers == 30);
    EXPECT(info.n_embd == 576);
    EXPECT(info.n_ff == 1536);
    EXPECT(info.n_q_heads == 9);
    EXPECT(info.n_k_heads == 3);
    EXPECT(info.n_v_heads == 3);
    EXPECT(info.d_qk == 64);
    EXPECT(info.n_vocab == 49152);
    EXPECT(info.tied_output == 1);
    EXPECT(info.n_params > 130000000 && info.n_params < 140000000);
    char buf[64];
    EXPECT(sigma_model_meta_get(m, "tokenizer.ggml.pre", buf, sizeof buf, NULL) == SIGMA_OK);
    EXPECT(strcmp(buf, "smollm") == 0);
    sigma_model_close(m);
    /* without mmap */
    p.use_mmap = 0;
    st = sigma_model_open(path, &p, &m);
    EXPECT(st == SIGMA_OK);
    if (st == SIGMA_OK) sigma_model_close(m);
    printf("%s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
#undef EXPECT
}

/* ------------------------------------------------------------------------ */


/* ------------------------------------------------------------------------ */
/* other architectures: qwen2, qwen3, gemma3, gemma2, phi3                   */
/* ------------------------------------------------------------------------ */

typedef struct aspec {
    const char *arch;
    uint32_t n_q, window, n_ctx;
    const char *omit_key, *omit_tensor, *bad_shape_tensor, *extra_tensor;
} aspec;

static int has(const char *arch, const char *what) { return strstr(what, arch) != NULL; }

/* A 2-layer file (hidden 32, ff 48, n_q 4 (or as given), n_kv 2, head dim 8,
 * vocab 40) with the tensors llama.cpp's converter writes for a->arch. */
static void build_arch(const aspec *a, uint8_t **img, size_t *n) {
    gw_writer *w = gw_new();
    ck_assert_ptr_nonnull(w);
    spec s = {0};
    s.omit_key = a->omit_key;
    s.omit_tensor = a->omit_tensor;
    s.bad_shape_tensor = a->bad_shape_tensor;
    s.arch_name = a->arch;
    ck_assert_int_eq(gw_kv_str(w, "general.architecture", a->arch), 0);
    const uint32_t E = 32, F = 48, NK = 2, D = 8, V = 40, L = 2, NQ = a->n_q;
    char key[128];
#define KU(suffix, v)                                                           \
    do {                                                                        \
        snprintf(key, sizeof key, "%s.%s", a->arch, suffix);                    \
        if (!a->omit_key || strcmp(a->omit_key, suffix) != 0)                   \
            ck_assert_int_eq(gw_kv_u32(w, key, v), 0);                          \
    } while (0)
    KU("context_length", a->n_ctx ? a->n_ctx : 256);
    KU("embedding_length", E);
    KU("block_count", L);
    KU("feed_forward_length", F);
    KU("attention.head_count", NQ);
    KU("attention.head_count_kv", NK);
    KU("attention.key_length", D);
    KU("attention.value_length", D);
    if (a->window) KU("attention.sliding_window", a->window);
#undef KU
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", a->arch);
    ck_assert_int_eq(gw_kv_f32(w, key, 1e-6f), 0);
    uint64_t QD = (uint64_t)(NQ ? NQ : 4) * D, KD = (uint64_t)NK * D; /* zero heads: keys only */
    put_tensor(w, &s, "token_embd.weight", SG_TYPE_F32, E, V);
    put_tensor(w, &s, "output_norm.weight", SG_TYPE_F32, E, 0);
    if (has(a->arch, "qwen3 phi3")) put_tensor(w, &s, "output.weight", SG_TYPE_F16, E, V);
    char nm[64];
    for (uint32_t i = 0; i < L; i++) {
#define T(suffix, a_, b_)                                                        \
        do {                                                                     \
            snprintf(nm, sizeof nm, "blk.%u." suffix, i);                        \
            put_tensor(w, &s, nm, SG_TYPE_F32, a_, b_);                          \
        } while (0)
        T("attn_norm.weight", E, 0);
        if (has(a->arch, "phi3")) {
            T("attn_qkv.weight", E, QD + 2 * KD);
        } else {
            T("attn_q.weight", E, QD);
            T("attn_k.weight", E, KD);
            T("attn_v.weight", E, KD);
        }
        if (has(a->arch, "qwen2")) {
            T("attn_q.bias", QD, 0);
            T("attn_k.bias", KD, 0);
            T("attn_v.bias", KD, 0);
        }
        if (has(a->arch, "qwen3 gemma3")) {
            T("attn_q_norm.weight", D, 0);
            T("attn_k_norm.weight", D, 0);
        }
        T("attn_output.weight", QD, E);
        if (has(a->arch, "gemma2 gemma3")) T("post_attention_norm.weight", E, 0);
        T("ffn_norm.weight", E, 0);
        if (has(a->arch, "phi3")) {
            T("ffn_up.weight", E, 2 * F);
        } else {
            T("ffn_gate.weight", E, F);
            T("ffn_up.weight", E, F);
        }
        T("ffn_down.weight", F, E);
        if (has(a->arch, "gemma2 gemma3")) T("post_ffw_norm.weight", E, 0);
#undef T
    }
    if (a->extra_tensor) put_tensor(w, &s, a->extra_tensor, SG_TYPE_F32, E, V);
    image(w, img, n);
}

START_TEST(test_arch_models) {
    static const struct {
        const char *arch;
        sigma_arch id;
        uint32_t window;
    } ok[] = {{"qwen2", SIGMA_ARCH_QWEN2, 0},  {"qwen3", SIGMA_ARCH_QWEN3, 0},
              {"gemma3", SIGMA_ARCH_GEMMA3, 16}, {"gemma2", SIGMA_ARCH_GEMMA2, 16},
              {"phi3", SIGMA_ARCH_PHI3, 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        aspec a = {ok[i].arch, 4, ok[i].window, 0, NULL, NULL, NULL, NULL};
        uint8_t *img;
        size_t n;
        build_arch(&a, &img, &n);
        sigma_model *m = NULL;
        char eb[512];
        ck_assert_msg(mopen(img, n, &m, eb, sizeof eb) == SIGMA_OK, "%s: %s", ok[i].arch, eb);
        sigma_model_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
        ck_assert_int_eq(info.arch, ok[i].id);
        ck_assert_str_eq(info.arch_name, ok[i].arch);
        ck_assert_uint_eq(info.d_qk, 8);
        ck_assert_int_eq(info.tied_output, strcmp(ok[i].arch, "qwen3") && strcmp(ok[i].arch, "phi3"));
        /* a session evaluates a few tokens (every step of the row runs) */
        sigma_session_params sp;
        sigma_session_params_init(&sp, sizeof sp);
        sp.n_ctx = 32;
        sp.n_threads = 1;
        sigma_session *ss = NULL;
        ck_assert_int_eq(sigma_session_open(m, &sp, &ss), SIGMA_OK);
        sigma_token t[20];
        for (int k = 0; k < 20; k++) t[k] = (sigma_token)(k * 7 % 40);
        ck_assert_int_eq(sigma_session_eval(ss, t, 20), SIGMA_OK);
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(ss, -1, &lg), SIGMA_OK);
        for (int k = 0; k < 40; k++) ck_assert(isfinite(lg[k]));
        sigma_session_close(ss);
        sigma_model_close(m);
        free(img);
    }
}
END_TEST

/* Malformed variants of each new architecture: SIGMA_E_FORMAT naming what
 * is wrong. */
START_TEST(test_arch_malformed) {
    static const struct {
        aspec a;
        const char *needle;
    } c[] = {
        /* missing norms / biases / fused tensors */
        {{"qwen2", 4, 0, 0, NULL, "blk.1.attn_v.bias", NULL, NULL}, "missing tensor 'blk.1.attn_v.bias'"},
        {{"qwen3", 4, 0, 0, NULL, "blk.0.attn_q_norm.weight", NULL, NULL},
         "missing tensor 'blk.0.attn_q_norm.weight'"},
        {{"gemma3", 4, 16, 0, NULL, "blk.1.post_ffw_norm.weight", NULL, NULL},
         "missing tensor 'blk.1.post_ffw_norm.weight'"},
        {{"gemma2", 4, 16, 0, NULL, "blk.0.post_attention_norm.weight", NULL, NULL},
         "missing tensor 'blk.0.post_attention_norm.weight'"},
        {{"phi3", 4, 0, 0, NULL, "blk.1.attn_qkv.weight", NULL, NULL},
         "missing tensor 'blk.1.attn_qkv.weight'"},
        /* wrong shapes */
        {{"qwen2", 4, 0, 0, NULL, NULL, "blk.0.attn_k.bias", NULL},
         "tensor 'blk.0.attn_k.bias': shape (17), expected (16)"},
        {{"qwen3", 4, 0, 0, NULL, NULL, "blk.1.attn_k_norm.weight", NULL},
         "tensor 'blk.1.attn_k_norm.weight': shape (9), expected (8)"},
        {{"gemma3", 4, 16, 0, NULL, NULL, "blk.0.attn_q_norm.weight", NULL},
         "tensor 'blk.0.attn_q_norm.weight': shape (9), expected (8)"},
        {{"phi3", 4, 0, 0, NULL, NULL, "blk.0.attn_qkv.weight", NULL},
         "tensor 'blk.0.attn_qkv.weight': shape (32, 65), expected (32, 64)"},
        {{"phi3", 4, 0, 0, NULL, NULL, "blk.1.ffn_up.weight", NULL},
         "tensor 'blk.1.ffn_up.weight': shape (32, 97), expected (32, 96)"},
        /* windows: larger than the context, missing where required */
        {{"gemma3", 4, 300, 256, NULL, NULL, NULL, NULL},
         "gemma3.attention.sliding_window = 300 is larger than the context length 256"},
        {{"gemma2", 4, 0, 0, NULL, NULL, NULL, NULL},
         "missing required key 'gemma2.attention.sliding_window'"},
        /* zero heads */
        {{"qwen3", 0, 0, 0, NULL, NULL, NULL, NULL}, "qwen3.attention.head_count = 0 is out of range"},
        {{"gemma3", 0, 16, 0, NULL, NULL, NULL, NULL}, "gemma3.attention.head_count = 0"},
        {{"phi3", 0, 0, 0, NULL, NULL, NULL, NULL}, "phi3.attention.head_count = 0"},
        /* missing keys */
        {{"qwen2", 4, 0, 0, "embedding_length", NULL, NULL, NULL},
         "missing required key 'qwen2.embedding_length'"},
        /* Gemma ties its output: an output.weight is refused */
        {{"gemma3", 4, 16, 0, NULL, NULL, NULL, "output.weight"},
         "tensor 'output.weight' is present but gemma3 ties the output"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint8_t *img;
        size_t n;
        build_arch(&c[i].a, &img, &n);
        expect_model_fail(img, n, SIGMA_E_FORMAT, c[i].needle);
        free(img);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("gguf");
    tcase_add_test(tc, test_roundtrip_all_types);
    tcase_add_test(tc, test_open_file_modes);
    tcase_add_test(tc, test_release_pages);
    tcase_add_test(tc, test_many_entries);
    suite_add_tcase(s, tc);
    TCase *ty = tcase_create("types");
    tcase_add_test(ty, test_type_info);
    tcase_add_test(ty, test_f16_exhaustive);
    tcase_add_test(ty, test_f16_edges);
    tcase_add_test(ty, test_bf16);
    tcase_add_test(ty, test_dequant_32);
    tcase_add_test(ty, test_dequant_k);
    tcase_add_test(ty, test_dequant_float_types);
    suite_add_tcase(s, ty);
    TCase *bad = tcase_create("malformed");
    tcase_add_test(bad, test_truncated_everywhere);
    tcase_add_test(bad, test_truncated_model_public);
    tcase_add_test(bad, test_bad_header);
    tcase_add_test(bad, test_bad_values);
    tcase_add_test(bad, test_bad_keys);
    tcase_add_test(bad, test_bad_tensors);
    tcase_add_test(bad, test_model_errors);
    tcase_add_test(bad, test_model_absurd_sizes);
    suite_add_tcase(s, bad);
    TCase *tm = tcase_create("models");
    tcase_add_test(tm, test_tiny_llama);
    tcase_add_test(tm, test_tiny_sigma);
    tcase_add_test(tm, test_arch_models);
    tcase_add_test(bad, test_arch_malformed);
    suite_add_tcase(s, tm);
    return s;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "real") == 0) return real_model();
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
