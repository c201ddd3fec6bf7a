/* KV blobs written by earlier code still load and mean the same thing.
 *
 * tests/fixtures/kv/<case>.blob is the save() of a built-in strategy after a
 * few dozen appended rows of deterministic pseudo-random data;
 * <case>.out is the attention of fixed queries (little-endian f32) after
 * loading that blob into a fresh state. Both were written by the code before
 * the KV row store (lib/kv/store.c) with
 *
 *   test-kv-fixtures --generate tests/fixtures/kv
 *
 * and are committed. The test loads every blob with the current code, checks
 * that save() reproduces the blob byte for byte (or, for a legacy TOPV
 * header, the blob of the current form) and that the attention is bitwise
 * the stored one.
 *
 * <case>.session is a session file (docs/session-format.md) of the tiny
 * sigma DiffQKV test model (tests/common/tiny_model.c, kind 1) after 61
 * tokens, written by the same earlier code (--generate writes them too): it
 * loads into a session with the same strategy and saves again byte for
 * byte. (Regenerate these if the tiny model changes: its fingerprint is in
 * the file.) session_dense was written with the default dense type of then,
 * f32: it loads into a session opened with the default of now (f16), which
 * adopts the file's f32 rows and continues bitwise as an f32 session
 * (test_session_dense_f32). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv.h"
#include "tiny_model.h"

/* 2 layers, n_q/n_k/n_v = 4/1/2, d_qk 8, d_v 4, n_ctx 64, n_batch 16 */
static const sigma_kv_layout LAY = {sizeof(sigma_kv_layout), 2, 4, 1, 2, 8, 4, 64, 16};
#define N_POS 44u
#define NQ_OUT 4u /* queries per layer in the output: 1 single, then a block of 3 */
#define OUT_FLOATS (2u * NQ_OUT * 4u * 4u)

typedef struct fx_case {
    const char *name, *kv, *opts;
    /* legacy: the blob is `base`'s with only the first n_opts_keep option
     * words (an older header), so a re-save writes `base`'s bytes */
    const char *base;
    uint32_t n_opts_keep;
} fx_case;

static const fx_case CASES[] = {
    {"dense_f32", "dense", "type=f32", NULL, 0},
    {"dense_f16", "dense", "type=f16", NULL, 0},
    {"dense_bf16", "dense", "type=bf16", NULL, 0},
    {"quant_k8v8", "quant", "kbits=8,vbits=8,group=8,residual=8", NULL, 0},
    {"quant_k8v4", "quant", "kbits=8,vbits=4,group=8,residual=8", NULL, 0},
    {"quant_k4v2", "quant", "kbits=4,vbits=2,group=16,residual=4", NULL, 0},
    {"window", "window", "sinks=2,window=12", NULL, 0},
    {"window_nosink", "window", "sinks=0,window=9,unbounded=0", NULL, 0},
    {"h2o", "h2o", "budget=16,recent=4", NULL, 0},
    {"topv_head", "topv", "k=6,select=head", NULL, 0},
    {"topv_vhead", "topv", "k=6,select=vhead", NULL, 0},
    {"topv_tail", "topv", "k=8,sinks=1,recent=2,tail=1,select=head", NULL, 0},
    {"topv_topk_head", "topv", "k=6,prefill=topk,select=head", NULL, 0},
    {"topv_topk_vhead", "topv", "k=6,prefill=topk,select=vhead", NULL, 0},
    /* a header with the four options of before `prefill` (read as
     * prefill=topk, select=head) */
    {"topv_opts4", "topv", "k=6,prefill=topk,select=head", "topv_topk_head", 4},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* session files: the tiny sigma model, 61 tokens in chunks of 9; opened
 * with opts to load, written (--generate) with gen_opts */
typedef struct fx_session {
    const char *name, *kv, *opts, *gen_opts;
} fx_session;

static const fx_session SESSIONS[] = {
    {"session_dense", "dense", NULL, "type=f32"}, /* the default type was f32 */
    {"session_dense_bf16", "dense", "type=bf16", "type=bf16"},
    {"session_topv_head", "topv", "k=16,select=head", "k=16,select=head"},
    {"session_topv_vhead_tail", "topv", "k=16,select=vhead,tail=1,prefill=topk",
     "k=16,select=vhead,tail=1,prefill=topk"},
    {"session_window", "window", "sinks=2,window=24", "sinks=2,window=24"},
    {"session_h2o", "h2o", "budget=20,recent=5", "budget=20,recent=5"},
    {"session_quant", "quant", "group=8,residual=8,kbits=4,vbits=2",
     "group=8,residual=8,kbits=4,vbits=2"},
};
#define N_SESSIONS (sizeof SESSIONS / sizeof SESSIONS[0])
#define S_TOKENS 61u

static uint64_t rng_state;
static float rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 40) / (double)(1u << 24)) * 4.0f - 2.0f;
}
static void rnd_fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = rnd();
}

typedef struct blob {
    unsigned char *data;
    size_t len;
} blob;

static int blob_write(void *ctx, const void *data, size_t n) {
    blob *b = ctx;
    unsigned char *p = realloc(b->data, b->len + n + 1);
    if (!p) return SIGMA_E_NOMEM;
    memcpy(p + b->len, data, n);
    b->data = p;
    b->len += n;
    return SIGMA_OK;
}

static void *create(const sigma_kv_strategy *k, const fx_case *c) {
    void *st = NULL;
    char err[160] = "";
    int r = k->create(NULL, &LAY, c->opts, &st, err, sizeof err);
    ck_assert_msg(r == SIGMA_OK, "%s: %s", c->name, err);
    return st;
}

/* N_POS positions in uneven chunks, every chunk attended (scores, evictions) */
static void feed(const sigma_kv_strategy *k, void *st) {
    float kk[16 * 8], vv[16 * 8], q[16 * 4 * 8], o[16 * 4 * 4];
    rng_state = 0x243F6A8885A308D3ull;
    for (uint32_t p = 0, step = 1; p < N_POS; p += step, step = step % 13 + 3) {
        uint32_t n = N_POS - p < step ? N_POS - p : step;
        for (uint32_t l = 0; l < LAY.n_layers; l++) {
            rnd_fill(kk, (size_t)n * 8);
            rnd_fill(vv, (size_t)n * 8);
            rnd_fill(q, (size_t)n * 32);
            ck_assert_int_eq(k->append(st, l, p, n, kk, vv), SIGMA_OK);
            sigma_kv_attend_args a = {.struct_size = sizeof a, .layer = l, .pos0 = p, .n_queries = n, .q = q, .out = o, .scale = 0.35f};
            ck_assert_int_eq(k->attend(st, &a), SIGMA_OK);
        }
    }
}

/* per layer: one query at the last position, then a block of three ending there */
static void probe(const sigma_kv_strategy *k, void *st, float *out) {
    float q[3 * 4 * 8];
    rng_state = 0x13198A2E03707344ull;
    for (uint32_t l = 0; l < LAY.n_layers; l++) {
        rnd_fill(q, sizeof q / sizeof *q);
        sigma_kv_attend_args a = {.struct_size = sizeof a, .layer = l, .pos0 = N_POS - 1, .n_queries = 1, .q = q, .out = out, .scale = 0.3f};
        ck_assert_int_eq(k->attend(st, &a), SIGMA_OK);
        out += 16;
    }
    for (uint32_t l = 0; l < LAY.n_layers; l++) {
        rnd_fill(q, sizeof q / sizeof *q);
        sigma_kv_attend_args a = {.struct_size = sizeof a, .layer = l, .pos0 = N_POS - 3, .n_queries = 3, .q = q, .out = out, .scale = 0.3f};
        ck_assert_int_eq(k->attend(st, &a), SIGMA_OK);
        out += 48;
    }
}

static void path(char *buf, size_t n, const char *dir, const char *name, const char *ext) {
    snprintf(buf, n, "%s/%s.%s", dir, name, ext);
}

static blob read_file(const char *p) {
    blob b = {NULL, 0};
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    unsigned char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) blob_write(&b, tmp, n);
    fclose(f);
    return b;
}

static void write_file(const char *p, const void *data, size_t n) {
    FILE *f = fopen(p, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", p);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* the legacy form of a TOPV blob: option words from `keep` on removed */
static blob legacy(const blob *b, uint32_t keep) {
    uint32_t n_opts = sg_get_le32(b->data + 36);
    ck_assert_uint_ge(n_opts, keep);
    size_t cut = 4u * (n_opts - keep), at = 40 + 4u * keep;
    blob o = {malloc(b->len), b->len - cut};
    memcpy(o.data, b->data, at);
    memcpy(o.data + at, b->data + at + cut, b->len - at - cut);
    sg_put_le32(o.data + 36, keep);
    return o;
}

static void out_le(const float *f, unsigned char *p) {
    for (size_t i = 0; i < OUT_FLOATS; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        sg_put_le32(p + 4 * i, u);
    }
}

/* Write the fixtures of every case into gen_dir (with the code being built). */
static const char *gen_dir;
START_TEST(test_generate) {
    const char *dir = gen_dir;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const fx_case *c = &CASES[ci];
        sigma_kv_strategy k;
        ck_assert(sg_kv_find(c->kv, &k));
        void *st = create(&k, c);
        feed(&k, st);
        blob b = {NULL, 0};
        ck_assert_int_eq(k.save(st, blob_write, &b), SIGMA_OK);
        k.destroy(st);
        if (c->base) {
            blob o = legacy(&b, c->n_opts_keep);
            free(b.data);
            b = o;
        }
        /* the expected output: attention after loading into a fresh state */
        void *st2 = create(&k, c);
        ck_assert_int_eq(k.load(st2, b.data, b.len), SIGMA_OK);
        float out[OUT_FLOATS];
        unsigned char le[4 * OUT_FLOATS];
        probe(&k, st2, out);
        k.destroy(st2);
        out_le(out, le);
        char p[1024];
        path(p, sizeof p, dir, c->name, "blob");
        write_file(p, b.data, b.len);
        printf("%s: %zu bytes\n", p, b.len);
        path(p, sizeof p, dir, c->name, "out");
        write_file(p, le, sizeof le);
        free(b.data);
    }
}
END_TEST

static sigma_session *open_opts(const sigma_model *m, const char *kv, const char *opts) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = 128;
    p.n_batch = 16;
    p.n_threads = 1;
    p.kv_strategy = kv;
    p.kv_options = opts;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    return s;
}

static sigma_session *open_session(const sigma_model *m, const fx_session *c) {
    return open_opts(m, c->kv, c->opts);
}

static blob save_session(sigma_session *s) {
    size_t len = 0;
    ck_assert_int_eq(sigma_session_save_memory(s, NULL, 0, &len), SIGMA_E_BUFFER_TOO_SMALL);
    blob b = {malloc(len), len};
    ck_assert_int_eq(sigma_session_save_memory(s, b.data, len, &b.len), SIGMA_OK);
    return b;
}

static sigma_model *tiny_sigma(uint8_t **mem) {
    size_t size;
    ck_assert_int_eq(tm_build(1, mem, &size), 0);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(*mem, size, NULL, &m), SIGMA_OK);
    return m;
}

START_TEST(test_generate_sessions) {
    uint8_t *mem;
    sigma_model *m = tiny_sigma(&mem);
    for (size_t ci = 0; ci < N_SESSIONS; ci++) {
        sigma_session *s = open_opts(m, SESSIONS[ci].kv, SESSIONS[ci].gen_opts);
        sigma_token t[9];
        for (uint32_t i = 0; i < S_TOKENS; i += 9) {
            uint32_t n = S_TOKENS - i < 9 ? S_TOKENS - i : 9;
            for (uint32_t j = 0; j < n; j++) t[j] = (sigma_token)(((i + j) * 7919u + 5u) % TM_VOCAB);
            ck_assert_int_eq(sigma_session_eval(s, t, n), SIGMA_OK);
        }
        blob b = save_session(s);
        char p[1024];
        path(p, sizeof p, gen_dir, SESSIONS[ci].name, "session");
        write_file(p, b.data, b.len);
        printf("%s: %zu bytes\n", p, b.len);
        free(b.data);
        sigma_session_close(s);
    }
    sigma_model_close(m);
    free(mem);
}
END_TEST

static const char *fixture_dir(char *buf, size_t n) {
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    snprintf(buf, n, "%s/tests/fixtures/kv", root ? root : ".");
    return buf;
}

START_TEST(test_fixture) {
    const fx_case *c = &CASES[_i];
    char dir[900], p[1024];
    fixture_dir(dir, sizeof dir);
    path(p, sizeof p, dir, c->name, "blob");
    blob b = read_file(p);
    path(p, sizeof p, dir, c->name, "out");
    blob want = read_file(p);
    ck_assert_uint_eq(want.len, 4 * OUT_FLOATS);
    path(p, sizeof p, dir, c->base ? c->base : c->name, "blob");
    blob resave_want = read_file(p);
    sigma_kv_strategy k;
    ck_assert(sg_kv_find(c->kv, &k));
    void *st = create(&k, c);
    /* every truncation is refused and changes nothing */
    for (size_t len = 0; len < b.len; len += (len < 128 ? 1 : 29))
        ck_assert_msg(k.load(st, b.data, len) != SIGMA_OK, "%s: truncated to %zu accepted", c->name, len);
    ck_assert_uint_eq(k.bytes_used(st), 0);
    ck_assert_int_eq(k.load(st, b.data, b.len), SIGMA_OK);
    /* save reproduces the bytes */
    blob again = {NULL, 0};
    ck_assert_int_eq(k.save(st, blob_write, &again), SIGMA_OK);
    ck_assert_uint_eq(again.len, resave_want.len);
    ck_assert_msg(memcmp(again.data, resave_want.data, again.len) == 0, "%s: save bytes differ", c->name);
    /* the attention is bitwise the stored one */
    float out[OUT_FLOATS];
    unsigned char le[4 * OUT_FLOATS];
    probe(&k, st, out);
    out_le(out, le);
    ck_assert_msg(memcmp(le, want.data, sizeof le) == 0, "%s: attention differs", c->name);
    /* a second state loaded from the re-saved bytes answers the same */
    void *st2 = create(&k, c);
    ck_assert_int_eq(k.load(st2, again.data, again.len), SIGMA_OK);
    probe(&k, st2, out);
    out_le(out, le);
    ck_assert_msg(memcmp(le, want.data, sizeof le) == 0, "%s: attention after re-save differs", c->name);
    k.destroy(st2);
    k.destroy(st);
    free(again.data);
    free(resave_want.data);
    free(want.data);
    free(b.data);
}
END_TEST

START_TEST(test_session_fixture) {
    const fx_session *c = &SESSIONS[_i];
    char dir[900], p[1024];
    fixture_dir(dir, sizeof dir);
    path(p, sizeof p, dir, c->name, "session");
    blob b = read_file(p);
    uint8_t *mem;
    sigma_model *m = tiny_sigma(&mem);
    sigma_session *s = open_session(m, c);
    int st = sigma_session_load_memory(s, b.data, b.len);
    ck_assert_msg(st == SIGMA_OK, "%s: %s", c->name, sigma_session_last_error(s));
    uint32_t pos;
    sigma_session_position(s, &pos);
    ck_assert_uint_eq(pos, S_TOKENS);
    blob again = save_session(s);
    ck_assert_uint_eq(again.len, b.len);
    ck_assert_msg(memcmp(again.data, b.data, b.len) == 0, "%s: session saves other bytes", c->name);
    /* and it goes on */
    sigma_token t = 3;
    ck_assert_int_eq(sigma_session_eval(s, &t, 1), SIGMA_OK);
    free(again.data);
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
    free(b.data);
}
END_TEST

/* the fixture's tokens from 61 on: a chunk of 5, then one by one; every
 * call's logits (last position) into out, n_calls * TM_VOCAB floats */
static void continue_session(sigma_session *s, float *out) {
    sigma_token t[5];
    for (uint32_t i = 0; i < 5; i++) t[i] = (sigma_token)(((S_TOKENS + i) * 7919u + 5u) % TM_VOCAB);
    ck_assert_int_eq(sigma_session_eval(s, t, 5), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    memcpy(out, lg, TM_VOCAB * sizeof(float));
    for (uint32_t i = 1; i <= 8; i++) {
        sigma_token u = (sigma_token)(((S_TOKENS + 4 + i) * 7919u + 5u) % TM_VOCAB);
        ck_assert_int_eq(sigma_session_eval(s, &u, 1), SIGMA_OK);
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        memcpy(out + (size_t)i * TM_VOCAB, lg, TM_VOCAB * sizeof(float));
    }
}

/* session_dense holds f32 rows (the default type of its time). A session
 * opened with the default options (f16 now) loads it and continues bitwise
 * as a session opened with type=f32 that loaded it; a session opened with
 * an explicit type=f16 refuses it (SIGMA_E_MISMATCH) and goes on as if the
 * load had not been tried. */
START_TEST(test_session_dense_f32) {
    char dir[900], p[1024];
    fixture_dir(dir, sizeof dir);
    path(p, sizeof p, dir, "session_dense", "session");
    blob b = read_file(p);
    uint8_t *mem;
    sigma_model *m = tiny_sigma(&mem);
    sigma_session *def = open_opts(m, "dense", NULL), *f32 = open_opts(m, "dense", "type=f32");
    ck_assert_int_eq(sigma_session_load_memory(f32, b.data, b.len), SIGMA_OK);
    int st = sigma_session_load_memory(def, b.data, b.len);
    ck_assert_msg(st == SIGMA_OK, "default session: %s", sigma_session_last_error(def));
    size_t k1, k2;
    ck_assert_int_eq(sigma_session_kv_bytes(def, &k1), SIGMA_OK);
    ck_assert_int_eq(sigma_session_kv_bytes(f32, &k2), SIGMA_OK);
    ck_assert_uint_eq(k1, k2);
    static float a[9 * TM_VOCAB], c[9 * TM_VOCAB];
    continue_session(f32, a);
    continue_session(def, c);
    ck_assert_msg(memcmp(a, c, sizeof a) == 0, "the default session continues otherwise than f32");
    /* its fork and its save are f32 too */
    blob again = save_session(def);
    sigma_session *g = open_opts(m, "dense", NULL);
    ck_assert_int_eq(sigma_session_load_memory(g, again.data, again.len), SIGMA_OK);
    sigma_session *fk = NULL;
    ck_assert_int_eq(sigma_session_fork(g, &fk), SIGMA_OK);
    ck_assert_int_eq(sigma_session_kv_bytes(fk, &k2), SIGMA_OK);
    ck_assert_int_eq(sigma_session_kv_bytes(def, &k1), SIGMA_OK);
    ck_assert_uint_eq(k1, k2);
    sigma_session_close(fk);
    sigma_session_close(g);
    free(again.data);
    /* explicit f16: refused, the session unchanged and usable */
    sigma_session *x = open_opts(m, "dense", "type=f16"), *y = open_opts(m, "dense", "type=f16");
    sigma_token t[7] = {5, 9, 1, 4, 33, 2, 8};
    ck_assert_int_eq(sigma_session_eval(x, t, 4), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(y, t, 4), SIGMA_OK);
    ck_assert_int_eq(sigma_session_kv_bytes(x, &k1), SIGMA_OK);
    ck_assert_int_eq(sigma_session_load_memory(x, b.data, b.len), SIGMA_E_MISMATCH);
    ck_assert_ptr_nonnull(strstr(sigma_session_last_error(x), "other options"));
    uint32_t pos;
    sigma_session_position(x, &pos);
    ck_assert_uint_eq(pos, 4);
    ck_assert_int_eq(sigma_session_kv_bytes(x, &k2), SIGMA_OK);
    ck_assert_uint_eq(k1, k2);
    ck_assert_int_eq(sigma_session_eval(x, t + 4, 3), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(y, t + 4, 3), SIGMA_OK);
    const float *lx, *ly;
    ck_assert_int_eq(sigma_session_logits(x, -1, &lx), SIGMA_OK);
    ck_assert_int_eq(sigma_session_logits(y, -1, &ly), SIGMA_OK);
    ck_assert_mem_eq(lx, ly, TM_VOCAB * sizeof(float));
    sigma_session_close(x);
    sigma_session_close(y);
    sigma_session_close(def);
    sigma_session_close(f32);
    sigma_model_close(m);
    free(mem);
    free(b.data);
}
END_TEST

int main(int argc, char **argv) {
    Suite *s = suite_create("kv-fixtures");
    TCase *tc = tcase_create("fixtures");
    if (argc == 3 && strcmp(argv[1], "--generate") == 0) {
        gen_dir = argv[2];
        tcase_add_test(tc, test_generate);
        tcase_add_test(tc, test_generate_sessions);
    } else {
        tcase_add_loop_test(tc, test_fixture, 0, (int)N_CASES);
        tcase_add_loop_test(tc, test_session_fixture, 0, (int)N_SESSIONS);
        tcase_add_test(tc, test_session_dense_f32);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
