/* Tests of tools/convert/sigma-convert on the tiny checkpoints in
 * tests/convert/data (made by tools/testdata/make_convert_checkpoints.py).
 * The test reads the sources and the GGUF outputs with its own small
 * readers (independent of the converter's code) and checks metadata,
 * tokenizer, every tensor value, llama's Q/K permutation, sharding and
 * failures on broken inputs. Environment: SIGMA_CONVERT (the tool) and
 * CONVERT_DATA (the data folder). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- files */

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)sz + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    b[sz] = 0;
    *n = (size_t)sz;
    return b;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static cJSON *json_file(const char *path) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_msg(b != NULL, "cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength((const char *)b, n);
    free(b);
    ck_assert_msg(j != NULL, "bad JSON in %s", path);
    return j;
}

static const char *data_dir(void) {
    const char *d = getenv("CONVERT_DATA");
    ck_assert_msg(d != NULL, "CONVERT_DATA not set");
    return d;
}

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sigma-convert-test-XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Run sigma-convert with args; returns its exit status; stderr to errfile. */
static int run_convert(const char *args, const char *errfile) {
    const char *exe = getenv("SIGMA_CONVERT");
    ck_assert_msg(exe != NULL, "SIGMA_CONVERT not set");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>'%s'", exe, args, errfile);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "sigma-convert did not exit normally: %s", cmd);
    return WEXITSTATUS(st);
}

/* --------------------------------------------------------- half floats */

static float h2f(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return (h & 0x8000) ? -v : v;
}

static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ------------------------------------------------- safetensors (trusted) */

typedef struct src_tensor {
    char name[128];
    uint64_t rows, cols; /* 1-D: rows = 1 */
    int ndims;
    float *v;
} src_tensor;

typedef struct src_model {
    src_tensor t[64];
    int n;
} src_model;

static void load_st_file(src_model *m, const char *path) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_ptr_nonnull(b);
    uint64_t hl = 0;
    memcpy(&hl, b, 8);
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    ck_assert_ptr_nonnull(h);
    const cJSON *it;
    cJSON_ArrayForEach(it, h) {
        if (strcmp(it->string, "__metadata__") == 0) continue;
        ck_assert_int_lt(m->n, 64);
        src_tensor *t = &m->t[m->n++];
        snprintf(t->name, sizeof t->name, "%s", it->string);
        const cJSON *shape = cJSON_GetObjectItem(it, "shape");
        t->ndims = cJSON_GetArraySize(shape);
        t->rows = t->ndims == 2 ? (uint64_t)cJSON_GetArrayItem(shape, 0)->valuedouble : 1;
        t->cols = (uint64_t)cJSON_GetArrayItem(shape, t->ndims - 1)->valuedouble;
        const char *dt = cJSON_GetObjectItem(it, "dtype")->valuestring;
        size_t off = 8 + (size_t)hl +
                     (size_t)cJSON_GetArrayItem(cJSON_GetObjectItem(it, "data_offsets"), 0)->valuedouble;
        uint64_t cnt = t->rows * t->cols;
        t->v = malloc(cnt * sizeof(float));
        for (uint64_t i = 0; i < cnt; i++) {
            if (strcmp(dt, "F32") == 0) {
                memcpy(&t->v[i], b + off + 4 * i, 4);
            } else {
                uint16_t x;
                memcpy(&x, b + off + 2 * i, 2);
                t->v[i] = strcmp(dt, "F16") == 0 ? h2f(x) : bf2f(x);
            }
        }
    }
    cJSON_Delete(h);
    free(b);
}

static void load_src(src_model *m, const char *model) {
    char p[512];
    memset(m, 0, sizeof *m);
    snprintf(p, sizeof p, "%s/%s/model.safetensors", data_dir(), model);
    load_st_file(m, p);
}

static void free_src(src_model *m) {
    for (int i = 0; i < m->n; i++) free(m->t[i].v);
}

static const src_tensor *src_find(const src_model *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

/* --------------------------------------------------------- GGUF reader */

enum { G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64, G_F64 };

typedef struct g_kv {
    char key[128];
    uint32_t type;
    const uint8_t *val;
} g_kv;

typedef struct g_tensor {
    char name[96];
    uint32_t type, nd;
    uint64_t ne[4];
    const uint8_t *data;
} g_tensor;

typedef struct gfile {
    uint8_t *buf;
    size_t size;
    g_kv kv[64];
    uint64_t n_kv;
    g_tensor t[64];
    uint64_t n_t;
} gfile;

static size_t scalar_size(uint32_t t) {
    static const size_t s[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? s[t] : 0;
}

static const uint8_t *skip_value(const uint8_t *p, uint32_t type) {
    if (type == G_STR) {
        uint64_t n;
        memcpy(&n, p, 8);
        return p + 8 + n;
    }
    if (type == G_ARR) {
        uint32_t et;
        uint64_t n;
        memcpy(&et, p, 4);
        memcpy(&n, p + 4, 8);
        p += 12;
        for (uint64_t i = 0; i < n; i++) p = skip_value(p, et);
        return p;
    }
    return p + scalar_size(type);
}

static void read_name(const uint8_t **p, char *out, size_t cap) {
    uint64_t n;
    memcpy(&n, *p, 8);
    ck_assert_uint_lt(n, cap);
    memcpy(out, *p + 8, n);
    out[n] = 0;
    *p += 8 + n;
}

static void gguf_load(gfile *g, const char *path) {
    memset(g, 0, sizeof *g);
    g->buf = slurp(path, &g->size);
    ck_assert_msg(g->buf != NULL, "cannot read %s", path);
    ck_assert(memcmp(g->buf, "GGUF", 4) == 0);
    uint32_t ver;
    memcpy(&ver, g->buf + 4, 4);
    ck_assert_uint_eq(ver, 3);
    memcpy(&g->n_t, g->buf + 8, 8);
    memcpy(&g->n_kv, g->buf + 16, 8);
    ck_assert_uint_le(g->n_t, 64);
    ck_assert_uint_le(g->n_kv, 64);
    const uint8_t *p = g->buf + 24;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        read_name(&p, g->kv[i].key, sizeof g->kv[i].key);
        memcpy(&g->kv[i].type, p, 4);
        g->kv[i].val = p + 4;
        p = skip_value(p + 4, g->kv[i].type);
    }
    uint64_t offs[64];
    for (uint64_t i = 0; i < g->n_t; i++) {
        g_tensor *t = &g->t[i];
        read_name(&p, t->name, sizeof t->name);
        memcpy(&t->nd, p, 4);
        p += 4;
        ck_assert_uint_le(t->nd, 4);
        for (uint32_t d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->nd; d++, p += 8) memcpy(&t->ne[d], p, 8);
        memcpy(&t->type, p, 4);
        memcpy(&offs[i], p + 4, 8);
        p += 12;
    }
    size_t align = 32;
    size_t data = ((size_t)(p - g->buf) + align - 1) / align * align;
    for (uint64_t i = 0; i < g->n_t; i++) {
        ck_assert_uint_eq(offs[i] % align, 0);
        ck_assert_uint_lt(data + offs[i], g->size + 1);
        g->t[i].data = g->buf + data + offs[i];
    }
}

static const g_kv *g_find(const gfile *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

static uint32_t g_u32(const gfile *g, const char *key) {
    const g_kv *kv = g_find(g, key);
    ck_assert_msg(kv != NULL, "missing key %s", key);
    ck_assert_msg(kv->type == G_U32, "key %s has type %u, not u32", key, kv->type);
    uint32_t v;
    memcpy(&v, kv->val, 4);
    return v;
}

static float g_f32(const gfile *g, const char *key) {
    const g_kv *kv = g_find(g, key);
    ck_assert_msg(kv != NULL && kv->type == G_F32, "missing f32 key %s", key);
    float v;
    memcpy(&v, kv->val, 4);
    return v;
}

static int g_bool(const gfile *g, const char *key) {
    const g_kv *kv = g_find(g, key);
    ck_assert_msg(kv != NULL && kv->type == G_BOOL, "missing bool key %s", key);
    return kv->val[0];
}

/* String value (copy, caller frees). */
static char *g_str_at(const uint8_t *p) {
    uint64_t n;
    memcpy(&n, p, 8);
    char *s = malloc(n + 1);
    memcpy(s, p + 8, n);
    s[n] = 0;
    return s;
}

static char *g_str(const gfile *g, const char *key) {
    const g_kv *kv = g_find(g, key);
    ck_assert_msg(kv != NULL && kv->type == G_STR, "missing string key %s", key);
    return g_str_at(kv->val);
}

/* Array: element type, count and first element. */
static const uint8_t *g_arr(const gfile *g, const char *key, uint32_t et, uint64_t *n) {
    const g_kv *kv = g_find(g, key);
    ck_assert_msg(kv != NULL && kv->type == G_ARR, "missing array key %s", key);
    uint32_t t;
    memcpy(&t, kv->val, 4);
    ck_assert_uint_eq(t, et);
    memcpy(n, kv->val + 4, 8);
    return kv->val + 12;
}

static const g_tensor *g_tensor_find(const gfile *g, const char *name) {
    for (uint64_t i = 0; i < g->n_t; i++)
        if (strcmp(g->t[i].name, name) == 0) return &g->t[i];
    return NULL;
}

static void gguf_free(gfile *g) {
    free(g->buf);
}

/* Element i of a GGUF tensor as float (F32, F16, BF16, Q8_0). */
static float g_elem(const g_tensor *t, uint64_t i) {
    uint16_t h;
    float f;
    switch (t->type) {
    case 0:
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    case 1:
        memcpy(&h, t->data + 2 * i, 2);
        return h2f(h);
    case 30:
        memcpy(&h, t->data + 2 * i, 2);
        return bf2f(h);
    case 8: {
        const uint8_t *b = t->data + (i / 32) * 34;
        memcpy(&h, b, 2);
        return h2f(h) * (float)(int8_t)b[2 + i % 32];
    }
    default:
        ck_abort_msg("unexpected tensor type %u", t->type);
        return 0;
    }
}

/* ------------------------------------------------------------- models */

static const char *const models[] = {"llama", "sigma"};
static const char *const outtypes[] = {"f32", "f16", "bf16", "q8_0"};
static const uint32_t outtype_ggml[] = {0, 1, 30, 8};
static const uint32_t outtype_ftype[] = {0, 1, 32, 7};

static void convert_ok(const char *model, const char *outtype, const char *extra, char *out,
                       size_t cap) {
    char args[1024], err[300];
    snprintf(out, cap, "%s/%s-%s.gguf", tmpdir, model, outtype);
    snprintf(err, sizeof err, "%s/stderr.txt", tmpdir);
    snprintf(args, sizeof args, "--outtype %s %s '%s/%s' '%s'", outtype, extra, data_dir(), model,
             out);
    int rc = run_convert(args, err);
    if (rc != 0) {
        size_t n;
        uint8_t *e = slurp(err, &n);
        ck_abort_msg("sigma-convert %s failed (%d): %s", args, rc, e ? (char *)e : "");
    }
}

/* Destination row -> source row for llama's Q/K, written as the axis swap
 * (n_head, 2, hd/2) -> (n_head, hd/2, 2) of a row index. */
static uint64_t qk_src_row(uint64_t dst, uint64_t rows, uint64_t n_head) {
    uint64_t hd = rows / n_head;
    uint64_t map[4096];
    ck_assert_uint_le(rows, 4096);
    for (uint64_t h = 0; h < n_head; h++)
        for (uint64_t a = 0; a < 2; a++)
            for (uint64_t i = 0; i < hd / 2; i++)
                map[h * hd + i * 2 + a] = h * hd + a * (hd / 2) + i;
    return map[dst];
}

typedef struct pair {
    const char *src, *dst;
} pair;

static const pair layer_names[] = {
    {"input_layernorm", "attn_norm"},         {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},           {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},      {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},            {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},            {"self_attn.q_gate_proj", "attn_q_gate"},
    {"self_attn.q_up_proj", "attn_q_up"},     {"self_attn.q_down_proj", "attn_q_down"},
};

/* Compare one GGUF tensor with its source, within the out type's tolerance. */
static void check_tensor(const g_tensor *gt, const src_tensor *st, uint32_t want_type,
                         uint64_t permute_heads) {
    ck_assert_msg(gt != NULL, "tensor for %s missing in output", st->name);
    ck_assert_uint_eq(gt->nd, (uint32_t)st->ndims);
    ck_assert_uint_eq(gt->ne[0], st->cols);
    ck_assert_uint_eq(gt->ne[1], st->rows);
    uint32_t type = st->ndims == 1 ? 0 : want_type;
    if (type == 8 && st->cols % 32) type = 1; /* documented f16 fallback */
    ck_assert_msg(gt->type == type, "%s: type %u, want %u", gt->name, gt->type, type);
    for (uint64_t r = 0; r < st->rows; r++) {
        uint64_t sr = permute_heads ? qk_src_row(r, st->rows, permute_heads) : r;
        const float *x = st->v + sr * st->cols;
        for (uint64_t c = 0; c < st->cols; c++) {
            float got = g_elem(gt, r * st->cols + c), ref = x[c];
            float tol;
            switch (type) {
            case 0: tol = 0; break;
            case 1: tol = fabsf(ref) < 6.1e-5f ? 3.0e-8f : fabsf(ref) * 0x1p-11f; break;
            case 30: tol = fabsf(ref) * 0x1p-8f; break;
            default: { /* q8_0: half a step plus the f16 rounding of the scale */
                float amax = 0;
                uint64_t b0 = c / 32 * 32;
                for (uint64_t k = b0; k < b0 + 32; k++) amax = fmaxf(amax, fabsf(x[k]));
                tol = amax / 127.0f * 0.57f + 1e-12f;
            }
            }
            if (isinf(ref) || fabsf(ref) > 65504.0f) {
                if (type == 1) { /* f16 overflow saturates to inf with the sign */
                    ck_assert_msg(isinf(got) && signbit(got) == signbit(ref), "%s overflow",
                                  gt->name);
                    continue;
                }
            }
            ck_assert_msg(fabsf(got - ref) <= tol,
                          "%s[%llu,%llu]: got %.9g, source %.9g (type %u, tol %.3g)", gt->name,
                          (unsigned long long)r, (unsigned long long)c, got, ref, type, tol);
        }
    }
}

START_TEST(test_values) {
    const char *model = models[_i / 4];
    int ti = _i % 4;
    int llama = _i / 4 == 0;
    make_tmpdir();
    char out[512];
    convert_ok(model, outtypes[ti], "", out, sizeof out);
    src_model src;
    load_src(&src, model);
    gfile g;
    gguf_load(&g, out);
    char *arch = g_str(&g, "general.architecture");
    ck_assert_str_eq(arch, model);
    free(arch);
    ck_assert_uint_eq(g_u32(&g, "general.file_type"), outtype_ftype[ti]);
    uint32_t n_head = llama ? 4 : 0, n_kv = llama ? 2 : 0;
    size_t expected = 0;
    check_tensor(g_tensor_find(&g, "token_embd.weight"), src_find(&src, "model.embed_tokens.weight"),
                 outtype_ggml[ti], 0);
    check_tensor(g_tensor_find(&g, "output_norm.weight"), src_find(&src, "model.norm.weight"),
                 outtype_ggml[ti], 0);
    expected += 2;
    if (llama) {
        check_tensor(g_tensor_find(&g, "output.weight"), src_find(&src, "lm_head.weight"),
                     outtype_ggml[ti], 0);
        expected++;
    } else {
        ck_assert_ptr_null(g_tensor_find(&g, "output.weight")); /* tied */
    }
    for (int l = 0; l < 2; l++) {
        for (size_t k = 0; k < sizeof layer_names / sizeof layer_names[0]; k++) {
            char s[160], d[96];
            snprintf(s, sizeof s, "model.layers.%d.%s.weight", l, layer_names[k].src);
            snprintf(d, sizeof d, "blk.%d.%s.weight", l, layer_names[k].dst);
            const src_tensor *st = src_find(&src, s);
            if (!st) {
                ck_assert_msg(llama && k >= 9, "source lacks %s", s);
                ck_assert_ptr_null(g_tensor_find(&g, d));
                continue;
            }
            uint64_t perm = 0;
            if (llama && k == 1) perm = n_head;
            if (llama && k == 2) perm = n_kv;
            check_tensor(g_tensor_find(&g, d), st, outtype_ggml[ti], perm);
            expected++;
        }
    }
    ck_assert_uint_eq(g.n_t, expected);
    gguf_free(&g);
    free_src(&src);
    remove_tmpdir();
}
END_TEST

/* The permutation really changes the rows (guards against a no-op check). */
START_TEST(test_permutation_nontrivial) {
    ck_assert_uint_eq(qk_src_row(1, 64, 4), 8);  /* head 0: pair (0, 8) adjacent */
    ck_assert_uint_eq(qk_src_row(2, 64, 4), 1);
    ck_assert_uint_eq(qk_src_row(17, 64, 4), 24); /* head 1 */
    ck_assert_uint_eq(qk_src_row(15, 32, 2), 15);
}
END_TEST

START_TEST(test_metadata_llama) {
    make_tmpdir();
    char out[512];
    convert_ok("llama", "f16", "--name tiny-llama", out, sizeof out);
    gfile g;
    gguf_load(&g, out);
    char *s = g_str(&g, "general.name");
    ck_assert_str_eq(s, "tiny-llama");
    free(s);
    ck_assert_uint_eq(g_u32(&g, "llama.block_count"), 2);
    ck_assert_uint_eq(g_u32(&g, "llama.context_length"), 256);
    ck_assert_uint_eq(g_u32(&g, "llama.embedding_length"), 64);
    ck_assert_uint_eq(g_u32(&g, "llama.feed_forward_length"), 128);
    ck_assert_uint_eq(g_u32(&g, "llama.attention.head_count"), 4);
    ck_assert_uint_eq(g_u32(&g, "llama.attention.head_count_kv"), 2);
    ck_assert_uint_eq(g_u32(&g, "llama.rope.dimension_count"), 16);
    ck_assert_uint_eq(g_u32(&g, "llama.vocab_size"), 320);
    ck_assert_float_eq(g_f32(&g, "llama.rope.freq_base"), 10000.0f);
    ck_assert_float_eq(g_f32(&g, "llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    ck_assert_ptr_null(g_find(&g, "llama.attention.key_length")); /* no head_dim in config */
    ck_assert_uint_eq(g_u32(&g, "general.quantization_version"), 2);
    gguf_free(&g);
    remove_tmpdir();
}
END_TEST

START_TEST(test_metadata_sigma) {
    make_tmpdir();
    char out[512];
    convert_ok("sigma", "bf16", "", out, sizeof out);
    gfile g;
    gguf_load(&g, out);
    char *s = g_str(&g, "general.name");
    ck_assert_str_eq(s, "sigma"); /* default: the folder name */
    free(s);
    ck_assert_uint_eq(g_u32(&g, "sigma.block_count"), 2);
    ck_assert_uint_eq(g_u32(&g, "sigma.context_length"), 512);
    ck_assert_uint_eq(g_u32(&g, "sigma.embedding_length"), 64);
    ck_assert_uint_eq(g_u32(&g, "sigma.feed_forward_length"), 80);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.head_count"), 4);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.head_count_k"), 1);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.head_count_v"), 2);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.key_length"), 16);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.value_length"), 32);
    ck_assert_uint_eq(g_u32(&g, "sigma.attention.augq_length"), 32);
    ck_assert_uint_eq(g_u32(&g, "sigma.rope.dimension_count"), 16);
    ck_assert_float_eq(g_f32(&g, "sigma.rope.freq_base"), 50000.0f);
    ck_assert_float_eq(g_f32(&g, "sigma.attention.layer_norm_rms_epsilon"), 1e-6f);
    ck_assert_ptr_null(g_find(&g, "llama.block_count"));
    gguf_free(&g);
    remove_tmpdir();
}
END_TEST

/* Tokenizer keys against tokenizer.json / tokenizer_config.json. */
static void check_tokenizer(const char *model, const char *pre, uint32_t n_vocab, int bos, int eos,
                            int add_bos) {
    make_tmpdir();
    char out[512], p[512];
    convert_ok(model, "f32", "", out, sizeof out);
    gfile g;
    gguf_load(&g, out);
    snprintf(p, sizeof p, "%s/%s/tokenizer.json", data_dir(), model);
    cJSON *tj = json_file(p);
    snprintf(p, sizeof p, "%s/%s/tokenizer_config.json", data_dir(), model);
    cJSON *tc = json_file(p);

    char *s = g_str(&g, "tokenizer.ggml.model");
    ck_assert_str_eq(s, "gpt2");
    free(s);
    s = g_str(&g, "tokenizer.ggml.pre");
    ck_assert_str_eq(s, pre);
    free(s);
    uint64_t n, nt;
    const uint8_t *tok = g_arr(&g, "tokenizer.ggml.tokens", G_STR, &n);
    ck_assert_uint_eq(n, n_vocab);
    const uint8_t *types = g_arr(&g, "tokenizer.ggml.token_type", G_I32, &nt);
    ck_assert_uint_eq(nt, n_vocab);
    /* expected strings/types by id */
    char **want = calloc(n_vocab, sizeof *want);
    int32_t *want_t = calloc(n_vocab, sizeof *want_t);
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "vocab")) {
        want[(int)it->valuedouble] = it->string;
        want_t[(int)it->valuedouble] = 1;
    }
    int n_special = 0, n_user = 0, n_pad = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItem(tj, "added_tokens")) {
        int id = (int)cJSON_GetObjectItem(it, "id")->valuedouble;
        want[id] = cJSON_GetObjectItem(it, "content")->valuestring;
        want_t[id] = cJSON_IsTrue(cJSON_GetObjectItem(it, "special")) ? 3 : 4;
    }
    for (uint32_t i = 0; i < n_vocab; i++) {
        char *got = g_str_at(tok);
        tok = skip_value(tok, G_STR);
        int32_t ty;
        memcpy(&ty, types + 4 * i, 4);
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%u]", i);
        ck_assert_str_eq(got, want[i] ? want[i] : pad);
        ck_assert_int_eq(ty, want[i] ? want_t[i] : 5);
        n_special += ty == 3;
        n_user += ty == 4;
        n_pad += ty == 5;
        free(got);
    }
    ck_assert_int_gt(n_special, 0);
    ck_assert_int_gt(n_pad, 0);
    ck_assert_int_eq(n_user, strcmp(model, "llama") == 0 ? 1 : 0);
    /* merges: "a b", whatever the form in tokenizer.json */
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "merges");
    uint64_t nm;
    const uint8_t *m = g_arr(&g, "tokenizer.ggml.merges", G_STR, &nm);
    ck_assert_uint_eq(nm, (uint64_t)cJSON_GetArraySize(merges));
    int list_form = 0;
    cJSON_ArrayForEach(it, merges) {
        char wantm[256];
        if (cJSON_IsArray(it)) {
            list_form = 1;
            snprintf(wantm, sizeof wantm, "%s %s", cJSON_GetArrayItem(it, 0)->valuestring,
                     cJSON_GetArrayItem(it, 1)->valuestring);
        } else {
            snprintf(wantm, sizeof wantm, "%s", it->valuestring);
        }
        char *got = g_str_at(m);
        m = skip_value(m, G_STR);
        ck_assert_str_eq(got, wantm);
        free(got);
    }
    ck_assert_int_eq(list_form, strcmp(model, "llama") == 0);
    ck_assert_uint_eq(g_u32(&g, "tokenizer.ggml.bos_token_id"), (uint32_t)bos);
    ck_assert_uint_eq(g_u32(&g, "tokenizer.ggml.eos_token_id"), (uint32_t)eos);
    if (add_bos >= 0) ck_assert_int_eq(g_bool(&g, "tokenizer.ggml.add_bos_token"), add_bos);
    else ck_assert_ptr_null(g_find(&g, "tokenizer.ggml.add_bos_token"));
    s = g_str(&g, "tokenizer.chat_template");
    ck_assert_str_eq(s, cJSON_GetObjectItem(tc, "chat_template")->valuestring);
    free(s);
    free(want);
    free(want_t);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    gguf_free(&g);
    remove_tmpdir();
}

START_TEST(test_tokenizer_llama) {
    check_tokenizer("llama", "llama-bpe", 320, 0, 1, 1);
}
END_TEST

START_TEST(test_tokenizer_sigma) {
    /* bos from tokenizer_config.json's {"content": ...}, eos from its string */
    check_tokenizer("sigma", "smollm", 300, 1, 2, -1);
}
END_TEST

START_TEST(test_sharded_identical) {
    make_tmpdir();
    char a[512], b[512];
    convert_ok("llama", "q8_0", "--name same", a, sizeof a);
    convert_ok("llama-sharded", "q8_0", "--name same", b, sizeof b);
    size_t na, nb;
    uint8_t *x = slurp(a, &na), *y = slurp(b, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(x, y, na) == 0);
    free(x);
    free(y);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------- errors */

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *b = slurp(from, &n);
    ck_assert_msg(b != NULL, "cannot read %s", from);
    spit(to, b, n);
    free(b);
}

/* A writable copy of a test checkpoint in tmpdir/name. */
static void copy_model(const char *model, const char *name) {
    static const char *const files[] = {
        "config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors",
        "model.safetensors.index.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors"};
    char d[512], from[768], to[768];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    ck_assert_int_eq(mkdir(d, 0755), 0);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(from, sizeof from, "%s/%s/%s", data_dir(), model, files[i]);
        snprintf(to, sizeof to, "%s/%s", d, files[i]);
        if (access(from, R_OK) == 0) copy_file(from, to);
    }
}

/* Replace the first occurrence of `from` by `to` in a file. */
static void edit_file(const char *path, const char *from, const char *to) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_ptr_nonnull(b);
    size_t fl = strlen(from), tl = strlen(to), pre = 0;
    while (pre + fl <= n && memcmp(b + pre, from, fl) != 0) pre++; /* binary-safe search */
    ck_assert_msg(pre + fl <= n, "%s not in %s", from, path);
    const uint8_t *hit = b + pre;
    uint8_t *o = malloc(n - fl + tl + 1);
    memcpy(o, b, pre);
    memcpy(o + pre, to, tl);
    memcpy(o + pre + tl, hit + fl, n - pre - fl);
    spit(path, o, n - fl + tl);
    free(o);
    free(b);
}

/* Patch bytes of a (binary) file at an offset. */
static void patch_file(const char *path, size_t off, const void *bytes, size_t len) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_uint_le(off + len, n);
    memcpy(b + off, bytes, len);
    spit(path, b, n);
    free(b);
}

static void truncate_file(const char *path, size_t keep) {
    size_t n;
    uint8_t *b = slurp(path, &n);
    ck_assert_uint_lt(keep, n);
    spit(path, b, keep);
    free(b);
}

/* Run on tmpdir/name; expect exit 1, no output file and exactly one stderr
 * line: "sigma-convert: error: ..." containing `needle`. */
static void expect_error(const char *name, const char *needle) {
    char args[1024], err[512], out[512];
    snprintf(out, sizeof out, "%s/%s.gguf", tmpdir, name);
    snprintf(err, sizeof err, "%s/%s.err", tmpdir, name);
    snprintf(args, sizeof args, "'%s/%s' '%s'", tmpdir, name, out);
    int rc = run_convert(args, err);
    size_t n;
    char *e = (char *)slurp(err, &n);
    ck_assert_ptr_nonnull(e);
    ck_assert_msg(rc == 1, "%s: exit %d (want 1), stderr: %s", name, rc, e);
    ck_assert_msg(access(out, F_OK) != 0, "%s: output written despite the error", name);
    ck_assert_msg(strncmp(e, "sigma-convert: error: ", 22) == 0, "%s: stderr: %s", name, e);
    ck_assert_msg(n > 0 && e[n - 1] == '\n' && memchr(e, '\n', n) == e + n - 1,
                  "%s: want exactly one line, got: %s", name, e);
    ck_assert_msg(strstr(e, needle) != NULL, "%s: \"%s\" not in: %s", name, needle, e);
    free(e);
}

START_TEST(test_errors) {
    make_tmpdir();
    char p[768];
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};

    copy_model("llama", "hdrlen");
    snprintf(p, sizeof p, "%s/hdrlen/model.safetensors", tmpdir);
    patch_file(p, 0, huge, 8);
    expect_error("hdrlen", "header length");

    copy_model("llama", "hdrjson");
    snprintf(p, sizeof p, "%s/hdrjson/model.safetensors", tmpdir);
    patch_file(p, 8, "[{\"x", 4);
    expect_error("hdrjson", "header is not valid JSON");

    copy_model("llama", "trunc");
    snprintf(p, sizeof p, "%s/trunc/model.safetensors", tmpdir);
    truncate_file(p, 100000);
    expect_error("trunc", "outside the data section");

    copy_model("llama", "tiny");
    snprintf(p, sizeof p, "%s/tiny/model.safetensors", tmpdir);
    truncate_file(p, 5);
    expect_error("tiny", "too small");

    copy_model("llama", "dtype");
    snprintf(p, sizeof p, "%s/dtype/model.safetensors", tmpdir);
    edit_file(p, "\"dtype\":\"F32\"", "\"dtype\":\"I32\"");
    expect_error("dtype", "is not supported");

    copy_model("llama", "size");
    snprintf(p, sizeof p, "%s/size/model.safetensors", tmpdir);
    edit_file(p, "\"shape\":[64]", "\"shape\":[65]");
    expect_error("size", "bytes of data for 65 elements");

    copy_model("llama", "layers");
    snprintf(p, sizeof p, "%s/layers/config.json", tmpdir);
    edit_file(p, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_error("layers", "missing tensor model.layers.2.input_layernorm.weight");

    copy_model("llama", "shape");
    snprintf(p, sizeof p, "%s/shape/config.json", tmpdir);
    edit_file(p, "\"intermediate_size\": 128", "\"intermediate_size\": 96");
    expect_error("shape", "tensor model.layers.0.mlp.gate_proj.weight has shape [128, 64], "
                          "expected [96, 64]");

    copy_model("sigma", "sigmashape");
    snprintf(p, sizeof p, "%s/sigmashape/config.json", tmpdir);
    edit_file(p, "\"value_head_dim\": 32", "\"value_head_dim\": 16");
    expect_error("sigmashape", "tensor model.layers.0.self_attn.v_proj.weight has shape");

    copy_model("sigma", "noaug");
    snprintf(p, sizeof p, "%s/noaug/config.json", tmpdir);
    edit_file(p, "\"aug_q_dim\": 32", "\"aug_q_dim\": 0");
    expect_error("noaug", "unexpected tensor model.layers.0.self_attn.q_down_proj.weight");

    copy_model("llama", "arch");
    snprintf(p, sizeof p, "%s/arch/config.json", tmpdir);
    edit_file(p, "LlamaForCausalLM", "GPT2LMHeadModel");
    edit_file(p, "\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"");
    expect_error("arch", "unsupported architecture \"GPT2LMHeadModel\"");

    copy_model("llama-sharded", "shardpath");
    snprintf(p, sizeof p, "%s/shardpath/model.safetensors.index.json", tmpdir);
    edit_file(p, "\"model-00001-of-00002.safetensors\"", "\"../model-00001-of-00002.safetensors\"");
    expect_error("shardpath", "must be a plain file name");

    copy_model("llama-sharded", "shardmiss");
    snprintf(p, sizeof p, "%s/shardmiss/model-00002-of-00002.safetensors", tmpdir);
    ck_assert_int_eq(unlink(p), 0);
    expect_error("shardmiss", "cannot open");

    copy_model("llama", "notok");
    snprintf(p, sizeof p, "%s/notok/tokenizer.json", tmpdir);
    ck_assert_int_eq(unlink(p), 0);
    expect_error("notok", "no tokenizer.json");

    remove_tmpdir();
}
END_TEST

START_TEST(test_usage) {
    make_tmpdir();
    char err[512], args[1024];
    snprintf(err, sizeof err, "%s/err", tmpdir);
    ck_assert_int_eq(run_convert("--outtype q4_0 a b", err), 2);
    ck_assert_int_eq(run_convert("only-one-arg", err), 2);
    snprintf(args, sizeof args, "'%s/nonexistent' '%s/x.gguf'", tmpdir, tmpdir);
    ck_assert_int_eq(run_convert(args, err), 1);
    ck_assert_int_eq(run_convert("--help", err), 0);
    remove_tmpdir();
}
END_TEST

static Suite *convert_suite(void) {
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("convert");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_values, 0, 8);
    tcase_add_test(tc, test_permutation_nontrivial);
    tcase_add_test(tc, test_metadata_llama);
    tcase_add_test(tc, test_metadata_sigma);
    tcase_add_test(tc, test_tokenizer_llama);
    tcase_add_test(tc, test_tokenizer_sigma);
    tcase_add_test(tc, test_sharded_identical);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_usage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(convert_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
