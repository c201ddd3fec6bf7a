/* Tokenizers: exact ids against HF tokenizers / sentencepiece fixtures
 * (tests/text/gen_fixtures.py), round trips, special tokens, buffer
 * protocol, invalid UTF-8, incremental decoding, malformed metadata, and
 * the Unicode tables.
 *
 *   test-tokenizer          the committed fixtures
 *   test-tokenizer model    SmolLM2's full vocabulary from $SIGMA_TEST_MODEL
 *                           (exit 77 = skipped when unset) + speed */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"
#include "text/text.h"
#include "text/unicode.h"

/* ---- helpers ----------------------------------------------------------- */

typedef struct logrec {
    int n_warn;
    char last[256];
} logrec;

static void log_fn(void *user, sigma_log_level level, const char *msg) {
    logrec *r = user;
    if (level == SIGMA_LOG_WARN) {
        r->n_warn++;
        snprintf(r->last, sizeof r->last, "%s", msg);
    }
}

static sigma_model *model_new(logrec *lr) {
    sigma_model *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    sg_alloc_init(&m->alloc, NULL);
    pthread_mutex_init(&m->err_lock, NULL);
    m->log.fn = lr ? log_fn : NULL;
    m->log.user = lr;
    m->log.level = SIGMA_LOG_DEBUG;
    return m;
}

static void model_free(sigma_model *m) {
    if (!m) return;
    sg_tokenizer_free(m);
    sg_gguf_close(m->gguf);
    pthread_mutex_destroy(&m->err_lock);
    free(m);
}

/* Open a tokenizer-only model from a GGUF file; status of the load. */
static int open_file(const char *path, sigma_model **out, sg_err *err) {
    sigma_model *m = model_new(NULL);
    int st = sg_gguf_open_file(&m->alloc, path, 1, &m->gguf, err);
    if (st == SIGMA_OK) st = sg_tokenizer_load(m, err);
    *out = m;
    return st;
}

static const char *fixture(const char *name) {
    static char path[4096]; /* test-only */
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/text/fixtures/%s", root ? root : ".", name);
    return path;
}

static sigma_model *open_fixture(const char *name) {
    sigma_model *m;
    sg_err err = {{0}};
    int st = open_file(fixture(name), &m, &err);
    ck_assert_msg(st == SIGMA_OK, "%s: %d %s", name, st, err.msg);
    ck_assert_ptr_nonnull(m->tok);
    return m;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static sigma_token *read_ids_path(const char *path, size_t *n) {
    size_t len;
    char *s = read_file(path, &len);
    size_t cap = 16, k = 0;
    sigma_token *ids = malloc(cap * sizeof *ids);
    char *p = s, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        ids[k++] = (sigma_token)v;
        p = end;
    }
    free(s);
    *n = k;
    return ids;
}

static sigma_token *tokenize(const sigma_model *m, const char *text, size_t len, uint32_t flags,
                             size_t *n) {
    size_t need = 0;
    int st = sigma_tokenize(m, text, len, NULL, 0, &need, flags);
    ck_assert(st == SIGMA_OK || st == SIGMA_E_BUFFER_TOO_SMALL);
    sigma_token *t = malloc((need ? need : 1) * sizeof *t);
    size_t got = 0;
    ck_assert_int_eq(sigma_tokenize(m, text, len, t, need, &got, flags), SIGMA_OK);
    ck_assert_uint_eq(got, need);
    *n = got;
    return t;
}

static char *detok(const sigma_model *m, const sigma_token *t, size_t n, uint32_t flags,
                   size_t *len) {
    size_t need = 0;
    int st = sigma_detokenize(m, t, n, NULL, 0, &need, flags);
    ck_assert(st == SIGMA_OK || st == SIGMA_E_BUFFER_TOO_SMALL);
    char *b = malloc(need + 1);
    ck_assert_int_eq(sigma_detokenize(m, t, n, b, need, len, flags), SIGMA_OK);
    ck_assert_uint_eq(*len, need);
    b[need] = 0;
    return b;
}

static void expect_ids_path(const sigma_model *m, const char *text_path, const char *ids_name,
                            const char *ids_path, uint32_t flags) {
    size_t len, n_exp, n;
    char *text = read_file(text_path, &len);
    sigma_token *exp = read_ids_path(ids_path, &n_exp);
    ck_assert_uint_gt(n_exp, 10);
    sigma_token *got = tokenize(m, text, len, flags, &n);
    size_t i = 0;
    while (i < n && i < n_exp && got[i] == exp[i]) i++;
    if (i < n || i < n_exp) {
        size_t lo = i > 3 ? i - 3 : 0;
        char msg[512];
        int o = snprintf(msg, sizeof msg, "%s: first difference at %zu (got %zu ids, expected %zu):",
                         ids_name, i, n, n_exp);
        for (size_t k = lo; k < i + 4 && o < 400; k++)
            o += snprintf(msg + o, sizeof msg - (size_t)o, " [%zu] %d/%d", k,
                          k < n ? got[k] : -1, k < n_exp ? exp[k] : -1);
        ck_abort_msg("%s", msg);
    }
    free(text);
    free(exp);
    free(got);
}

static void expect_ids(const sigma_model *m, const char *text_name, const char *ids_name,
                       uint32_t flags) {
    char text_path[4096];
    snprintf(text_path, sizeof text_path, "%s", fixture(text_name));
    expect_ids_path(m, text_path, ids_name, fixture(ids_name), flags);
}

static void expect_roundtrip(const sigma_model *m, const char *text, size_t len) {
    size_t n, outlen;
    sigma_token *t = tokenize(m, text, len, 0, &n);
    char *out = detok(m, t, n, 0, &outlen);
    ck_assert_uint_eq(outlen, len);
    ck_assert_msg(memcmp(out, text, len) == 0, "round trip differs");
    free(t);
    free(out);
}

static void roundtrip_file(const sigma_model *m, const char *name) {
    size_t len;
    char *text = read_file(fixture(name), &len);
    expect_roundtrip(m, text, len);
    free(text);
}

static int utf8_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l;
        if (sg_utf8_next((const uint8_t *)s + i, n - i, &l) == SG_CP_INVALID) return 0;
        i += l;
    }
    return 1;
}

/* ---- Unicode ------------------------------------------------------------- */

START_TEST(test_unicode_classes) {
    const uint32_t letters[] = {'a', 'Z', 0xE9, 0x3A9, 0x44F, 0x4E2D, 0xAC00, 0x17F, 0x1D400, 0x2F800};
    const uint32_t numbers[] = {'0', '9', 0xBD, 0x216B, 0x661, 0xFF11, 0x1D7CE};
    const uint32_t spaces[] = {' ', '\t', '\n', '\r', 0x0B, 0x0C, 0x85, 0xA0, 0x1680, 0x2003,
                               0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
    const uint32_t others[] = {'!', '\'', '_', 0x200B, 0x200D, 0x1F600, 0xFE0F, 0x0, 0x10FFFF,
                               0xE000, SG_CP_INVALID};
    for (size_t i = 0; i < sizeof letters / sizeof *letters; i++)
        ck_assert_msg(sg_uc_class(letters[i]) == SG_CLS_L, "U+%04X not L", letters[i]);
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
        ck_assert_msg(sg_uc_class(numbers[i]) == SG_CLS_N, "U+%04X not N", numbers[i]);
    for (size_t i = 0; i < sizeof spaces / sizeof *spaces; i++)
        ck_assert_msg(sg_uc_class(spaces[i]) == SG_CLS_WS, "U+%04X not WS", spaces[i]);
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        ck_assert_msg(sg_uc_class(others[i]) == 0, "U+%04X has a class", others[i]);
}
END_TEST

START_TEST(test_utf8_decode) {
    size_t l;
    ck_assert_uint_eq(sg_utf8_next((const uint8_t *)"\xC3\xA9", 2, &l), 0xE9);
    ck_assert_uint_eq(l, 2);
    ck_assert_uint_eq(sg_utf8_next((const uint8_t *)"\xF0\x9F\x98\x80", 4, &l), 0x1F600);
    ck_assert_uint_eq(l, 4);
    /* overlong, surrogate, too large, stray continuation: 1 byte */
    const char *bad1[] = {"\xC0\x80", "\xC1\xBF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\x80",
                          "\xFF", "\xE0\x80\x80", "\xF5\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad1 / sizeof *bad1; i++) {
        ck_assert_uint_eq(sg_utf8_next((const uint8_t *)bad1[i], strlen(bad1[i]), &l), SG_CP_INVALID);
        ck_assert_uint_eq(l, 1);
    }
    /* truncated: the maximal subpart */
    ck_assert_uint_eq(sg_utf8_next((const uint8_t *)"\xE2\x82" "A", 3, &l), SG_CP_INVALID);
    ck_assert_uint_eq(l, 2);
    ck_assert_uint_eq(sg_utf8_next((const uint8_t *)"\xF0\x9F\x98", 3, &l), SG_CP_INVALID);
    ck_assert_uint_eq(l, 3);
    ck_assert(sg_utf8_is_partial((const uint8_t *)"\xF0\x9F\x98", 3));
    ck_assert(sg_utf8_is_partial((const uint8_t *)"\xE2", 1));
    ck_assert(!sg_utf8_is_partial((const uint8_t *)"\xE2\x41", 2));
    ck_assert(!sg_utf8_is_partial((const uint8_t *)"\xED\xA0", 2));
    ck_assert(!sg_utf8_is_partial((const uint8_t *)"\xC3\xA9", 2));
    ck_assert(!sg_utf8_is_partial((const uint8_t *)"\x80", 1));
}
END_TEST

/* ---- exactness ----------------------------------------------------------- */

START_TEST(test_smolmini_exact) {
    sigma_model *m = open_fixture("smolmini.gguf");
    expect_ids(m, "sample.txt", "smolmini_sample.ids", 0);
    expect_ids(m, "specials.txt", "smolmini_specials.ids", SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    roundtrip_file(m, "specials.txt");
    model_free(m);
}
END_TEST

START_TEST(test_llama3mini_exact) {
    sigma_model *m = open_fixture("llama3mini.gguf");
    expect_ids(m, "sample.txt", "llama3mini_sample.ids", 0);
    expect_ids(m, "specials.txt", "llama3mini_specials.ids", SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    model_free(m);
}
END_TEST

/* qwen2 pre-tokenizer (digits one at a time), merges applied: ids from HF
 * tokenizers (gen_fixtures.py --only qwen2) */
START_TEST(test_qwen2mini_exact) {
    sigma_model *m = open_fixture("qwen2mini.gguf");
    expect_ids(m, "sample.txt", "qwen2mini_sample.ids", 0);
    expect_ids(m, "specials.txt", "qwen2mini_specials.ids", SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    roundtrip_file(m, "specials.txt");
    model_free(m);
}
END_TEST

/* Chat formats of the new architectures through the public API, on the
 * tiny files of tests/fixtures (no tokenizer.chat_template: the
 * architecture's default) */
static void expect_chat(const char *file, const char *want) {
    char path[4096], buf[512];
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : ".", file);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open(path, NULL, &m), SIGMA_OK);
    sigma_chat_message msgs[] = {{"system", "Be brief. "}, {"user", " Hi!"},
                                 {"assistant", "Hello."}, {"user", "Capital of France?"}};
    size_t len = 0;
    ck_assert_int_eq(sigma_chat_render(m, msgs, 4, 1, buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_msg(strcmp(buf, want) == 0, "%s: got\n%s\nwant\n%s", file, buf, want);
    ck_assert_uint_eq(len, strlen(want));
    sigma_model_close(m);
}

START_TEST(test_arch_chat_formats) {
    expect_chat("gemma3_f32.gguf",
                "<start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n"
                "<start_of_turn>model\nHello.<end_of_turn>\n"
                "<start_of_turn>user\nCapital of France?<end_of_turn>\n"
                "<start_of_turn>model\n");
    expect_chat("phi3_f32.gguf",
                "<|system|>\nBe brief. <|end|>\n<|user|>\n Hi!<|end|>\n"
                "<|assistant|>\nHello.<|end|>\n<|user|>\nCapital of France?<|end|>\n"
                "<|assistant|>\n");
    expect_chat("qwen2_f32.gguf",
                "<|im_start|>system\nBe brief. <|im_end|>\n<|im_start|>user\n Hi!<|im_end|>\n"
                "<|im_start|>assistant\nHello.<|im_end|>\n"
                "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n");
}
END_TEST

START_TEST(test_spmmini_exact) {
    sigma_model *m = open_fixture("spmmini.gguf");
    expect_ids(m, "sample.txt", "spmmini_sample.ids", 0);
    roundtrip_file(m, "sample.txt");
    /* BOS with ADD_SPECIAL (add_bos_token true), then the same ids */
    size_t n;
    sigma_token *t = tokenize(m, "Hello  world", 12, SIGMA_TOKENIZE_ADD_SPECIAL, &n);
    ck_assert_uint_ge(n, 3);
    ck_assert_int_eq(t[0], 1);
    size_t len;
    char *s = detok(m, t, n, 0, &len);
    ck_assert_str_eq(s, "Hello  world");
    free(s);
    s = detok(m, t, n, SIGMA_DETOK_RENDER_SPECIAL, &len);
    ck_assert_str_eq(s, "<s>Hello  world");
    free(s);
    free(t);
    model_free(m);
}
END_TEST

/* ---- specials, pieces, buffer protocol ----------------------------------- */

START_TEST(test_specials) {
    sigma_model *m = open_fixture("smolmini.gguf");
    sigma_token end = sg_tok_find(m, "<|im_end|>", 10), tok;
    ck_assert_int_ge(end, 0);
    ck_assert_int_eq(sg_tok_type(m, end), SG_TOKTYPE_CONTROL);
    size_t n;
    sigma_token *t = tokenize(m, "a<|im_end|>b", 12, SIGMA_TOKENIZE_PARSE_SPECIAL, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(t[1], end);
    free(t);
    t = tokenize(m, "a<|im_end|>b", 12, 0, &n); /* not parsed: plain text */
    ck_assert_uint_gt(n, 3);
    for (size_t i = 0; i < n; i++) ck_assert(!sg_tok_is_control(m, t[i]));
    free(t);
    /* gpt2 without add_bos: ADD_SPECIAL adds nothing */
    t = tokenize(m, "a", 1, SIGMA_TOKENIZE_ADD_SPECIAL, &n);
    ck_assert_uint_eq(n, 1);
    free(t);
    /* pieces: control only with RENDER_SPECIAL */
    char buf[64];
    size_t len = 99;
    ck_assert_int_eq(sigma_token_to_piece(m, end, buf, sizeof buf, &len, 0), SIGMA_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sigma_token_to_piece(m, end, buf, sizeof buf, &len, SIGMA_DETOK_RENDER_SPECIAL), SIGMA_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert(memcmp(buf, "<|im_end|>", 10) == 0);
    ck_assert_int_eq(sigma_token_to_piece(m, end, buf, 3, &len, SIGMA_DETOK_RENDER_SPECIAL),
                     SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 10);
    ck_assert_int_eq(sigma_token_to_piece(m, 1 << 20, buf, sizeof buf, &len, 0), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_token_to_piece(m, -1, buf, sizeof buf, &len, 0), SIGMA_E_INVALID_ARG);
    /* " the" is one byte-level token (Ġthe) */
    t = tokenize(m, " the", 4, 0, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(sigma_token_to_piece(m, t[0], buf, sizeof buf, &len, 0), SIGMA_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(buf, " the", 4) == 0);
    free(t);
    /* special ids and end of generation */
    ck_assert_int_eq(sigma_model_special_token(m, SIGMA_SPECIAL_EOS, &tok), SIGMA_OK);
    ck_assert_int_eq(tok, end);
    ck_assert_int_eq(sigma_model_special_token(m, SIGMA_SPECIAL_EOT, &tok), SIGMA_OK);
    ck_assert_int_eq(tok, end); /* inferred from <|im_end|> */
    ck_assert_int_eq(sigma_model_special_token(m, (sigma_special_token)99, &tok), SIGMA_E_INVALID_ARG);
    int eog = 0;
    ck_assert_int_eq(sigma_token_is_eog(m, end, &eog), SIGMA_OK);
    ck_assert_int_eq(eog, 1);
    ck_assert_int_eq(sigma_token_is_eog(m, sg_tok_find(m, "<|endoftext|>", 13), &eog), SIGMA_OK);
    ck_assert_int_eq(eog, 1);
    ck_assert_int_eq(sigma_token_is_eog(m, sg_tok_find(m, "<|im_start|>", 12), &eog), SIGMA_OK);
    ck_assert_int_eq(eog, 0);
    ck_assert_int_eq(sigma_token_is_eog(m, -5, &eog), SIGMA_E_INVALID_ARG);
    model_free(m);

    m = open_fixture("llama3mini.gguf");
    t = tokenize(m, "Hi", 2, SIGMA_TOKENIZE_ADD_SPECIAL, &n);
    ck_assert_int_eq(t[0], sg_tok_find(m, "<|begin_of_text|>", 17));
    ck_assert_int_eq(sg_tok_add_bos(m), 1);
    free(t);
    ck_assert_int_eq(sigma_model_special_token(m, SIGMA_SPECIAL_PAD, &tok), SIGMA_E_NOT_FOUND);
    ck_assert(sg_tok_is_eog(m, sg_tok_find(m, "<|eot_id|>", 10)));
    model_free(m);
}
END_TEST

START_TEST(test_buffer_protocol) {
    sigma_model *m = open_fixture("smolmini.gguf");
    const char *text = "The quick brown fox jumps over the lazy dog.";
    size_t n = 0, n2 = 0;
    ck_assert_int_eq(sigma_tokenize(m, text, strlen(text), NULL, 0, &n, 0), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_gt(n, 3);
    sigma_token small[3] = {-7, -7, -7}, *full = malloc(n * sizeof *full);
    ck_assert_int_eq(sigma_tokenize(m, text, strlen(text), small, 3, &n2, 0), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(sigma_tokenize(m, text, strlen(text), full, n, &n2, 0), SIGMA_OK);
    ck_assert(memcmp(small, full, sizeof small) == 0); /* the prefix was written */
    char msg[128];
    ck_assert_int_eq(sigma_model_last_error(m, msg, sizeof msg), SIGMA_OK);
    /* arguments */
    ck_assert_int_eq(sigma_tokenize(m, NULL, 5, full, n, &n2, 0), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_tokenize(m, text, 4, full, n, NULL, 0), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_tokenize(m, text, 4, NULL, 4, &n2, 0), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_tokenize(m, text, 4, full, n, &n2, 0x100), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_tokenize(NULL, text, 4, full, n, &n2, 0), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_tokenize(m, "", 0, NULL, 0, &n2, 0), SIGMA_OK);
    ck_assert_uint_eq(n2, 0);
    /* detokenize */
    char out[16];
    size_t len;
    ck_assert_int_eq(sigma_detokenize(m, full, n, out, sizeof out, &len, 0), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, strlen(text));
    sigma_token bad[2] = {full[0], 1 << 24};
    ck_assert_int_eq(sigma_detokenize(m, bad, 2, out, sizeof out, &len, 0), SIGMA_E_INVALID_ARG);
    free(full);
    model_free(m);
}
END_TEST

/* ---- invalid UTF-8 and decoding ------------------------------------------ */

START_TEST(test_invalid_utf8) {
    const char text[] = "ok \xFF\xFE caf\xC3 \xE2\x82 \xED\xA0\x80 x\xF0\x9F\x98";
    size_t len = sizeof text - 1;
    const char *names[] = {"smolmini.gguf", "llama3mini.gguf", "spmmini.gguf"};
    for (int k = 0; k < 3; k++) {
        sigma_model *m = open_fixture(names[k]);
        expect_roundtrip(m, text, len); /* lossless: byte tokens / byte fallback */
        model_free(m);
    }
}
END_TEST

static size_t push_all(sigma_decoder *d, const sigma_token *t, size_t n, char *acc) {
    size_t o = 0;
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        ck_assert_int_eq(sigma_decoder_push(d, t[i], buf, sizeof buf, &len), SIGMA_OK);
        ck_assert_msg(utf8_ok(buf, len), "half a character emitted");
        memcpy(acc + o, buf, len);
        o += len;
    }
    return o;
}

START_TEST(test_decoder) {
    sigma_model *m = open_fixture("smolmini.gguf");
    /* bytes of "é😀!" as single-byte tokens: held until complete */
    const uint8_t bytes[] = {0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, '!'};
    sigma_token t[7];
    for (int i = 0; i < 7; i++) {
        char c[4];
        uint8_t u[4];
        uint32_t cp = bytes[i] >= 0x21 && bytes[i] <= 0x7E ? bytes[i] : 0;
        size_t l = 0;
        if (cp) {
            c[0] = (char)cp;
            l = 1;
        } else {
            /* the GPT-2 byte alphabet: 0x80..0xA0 -> U+0121.., 0xA1.. -> itself */
            uint32_t u_cp = bytes[i] >= 0xA1 && bytes[i] != 0xAD ? bytes[i] : 256u + 33u + (bytes[i] - 0x7Fu);
            l = sg_utf8_put(u_cp, u);
            memcpy(c, u, l);
        }
        t[i] = sg_tok_find(m, c, l);
        ck_assert_int_ge(t[i], 0);
    }
    sigma_decoder *d;
    ck_assert_int_eq(sigma_decoder_open(m, 0, &d), SIGMA_OK);
    char buf[16], acc[64];
    size_t len;
    ck_assert_int_eq(sigma_decoder_push(d, t[0], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 0); /* first byte of é held */
    ck_assert_int_eq(sigma_decoder_push(d, t[1], buf, 1, &len), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 2); /* nothing consumed */
    ck_assert_int_eq(sigma_decoder_push(d, t[1], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 2);
    ck_assert(memcmp(buf, "\xC3\xA9", 2) == 0);
    size_t o = push_all(d, t + 2, 5, acc);
    ck_assert_uint_eq(o, 5);
    ck_assert(memcmp(acc, "\xF0\x9F\x98\x80!", 5) == 0);
    /* an incomplete character is flushed as U+FFFD */
    ck_assert_int_eq(sigma_decoder_push(d, t[2], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_int_eq(sigma_decoder_push(d, t[3], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sigma_decoder_flush(d, buf, 2, &len), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(sigma_decoder_flush(d, buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert(memcmp(buf, "\xEF\xBF\xBD", 3) == 0);
    ck_assert_int_eq(sigma_decoder_flush(d, buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 0);
    /* a broken sequence: lead byte then ASCII -> U+FFFD then the ASCII */
    ck_assert_int_eq(sigma_decoder_push(d, t[0], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_int_eq(sigma_decoder_push(d, t[6], buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(buf, "\xEF\xBF\xBD!", 4) == 0);
    /* control tokens: nothing by default */
    ck_assert_int_eq(sigma_decoder_push(d, sg_tok_find(m, "<|im_end|>", 10), buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(len, 0);
    sigma_decoder_close(d);

    /* the whole sample, token by token, equals detokenize */
    size_t tl, n;
    char *text = read_file(fixture("sample.txt"), &tl);
    sigma_token *ids = tokenize(m, text, tl, 0, &n);
    char *out = malloc(tl * 2 + 16);
    ck_assert_int_eq(sigma_decoder_open(m, 0, &d), SIGMA_OK);
    o = 0;
    for (size_t i = 0; i < n; i++) {
        char piece[256];
        ck_assert_int_eq(sigma_decoder_push(d, ids[i], piece, sizeof piece, &len), SIGMA_OK);
        ck_assert(utf8_ok(piece, len));
        memcpy(out + o, piece, len);
        o += len;
    }
    ck_assert_int_eq(sigma_decoder_flush(d, out + o, 16, &len), SIGMA_OK);
    o += len;
    ck_assert_uint_eq(o, tl);
    ck_assert(memcmp(out, text, tl) == 0);
    sigma_decoder_close(d);
    ck_assert_int_eq(sigma_decoder_open(m, 0x80, &d), SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(d);
    free(out);
    free(ids);
    free(text);
    model_free(m);
}
END_TEST

START_TEST(test_spm_pieces) {
    sigma_model *m = open_fixture("spmmini.gguf");
    sigma_token a = sg_tok_find(m, "<0x41>", 6);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(sg_tok_type(m, a), SG_TOKTYPE_BYTE);
    char buf[16];
    size_t len;
    ck_assert_int_eq(sigma_token_to_piece(m, a, buf, sizeof buf, &len, 0), SIGMA_OK);
    ck_assert_uint_eq(len, 1);
    ck_assert_int_eq(buf[0], 'A');
    sigma_token the = sg_tok_find(m, "\xE2\x96\x81the", 6);
    ck_assert_int_ge(the, 0);
    ck_assert_int_eq(sigma_token_to_piece(m, the, buf, sizeof buf, &len, 0), SIGMA_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(buf, " the", 4) == 0);
    /* a character outside the vocabulary falls back to bytes */
    size_t n;
    sigma_token *t = tokenize(m, "\xE2\x98\x83", 3, 0, &n); /* snowman */
    ck_assert_uint_ge(n, 3);
    ck_assert_int_eq(sg_tok_type(m, t[n - 1]), SG_TOKTYPE_BYTE);
    free(t);
    model_free(m);
}
END_TEST

/* ---- malformed metadata -------------------------------------------------- */

typedef struct mini_opts {
    int bad_type_count, bad_type_value, bos_out_of_range, merge_no_space, unknown_merge;
    const char *pre;
    int no_model_key, model_kind_bert, tokens_wrong_type;
} mini_opts;

static int load_mini(const mini_opts *o, sigma_model **out, logrec *lr, sg_err *err) {
    const char *tokens[] = {"a", "b", "ab", "<|x|>", "c"};
    int32_t types[] = {1, 1, 1, 3, 1};
    const char *merges[] = {"a b", "zz q"};
    gw_writer *w = gw_new();
    ck_assert_ptr_nonnull(w);
    if (!o->no_model_key) gw_kv_str(w, "tokenizer.ggml.model", o->model_kind_bert ? "bert" : "gpt2");
    if (o->pre) gw_kv_str(w, "tokenizer.ggml.pre", o->pre);
    if (o->tokens_wrong_type) gw_kv_arr(w, "tokenizer.ggml.tokens", GW_I32, types, 5);
    else gw_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, 5);
    if (o->bad_type_value) types[2] = 9;
    gw_kv_arr(w, "tokenizer.ggml.token_type", GW_I32, types, o->bad_type_count ? 4 : 5);
    if (o->merge_no_space) merges[0] = "ab";
    gw_kv_arr_str(w, "tokenizer.ggml.merges", merges, o->unknown_merge ? 2 : 1);
    gw_kv_u32(w, "tokenizer.ggml.bos_token_id", o->bos_out_of_range ? 5 : 3);
    uint8_t *img;
    size_t size;
    ck_assert_int_eq(gw_write_mem(w, &img, &size), 0);
    gw_free(w);
    sigma_model *m = model_new(lr);
    int st = sg_gguf_open_memory(&m->alloc, img, size, &m->gguf, err);
    ck_assert_int_eq(st, SIGMA_OK);
    st = sg_tokenizer_load(m, err);
    /* keep the image alive with the model: stash it in name */
    m->name = (char *)img;
    *out = m;
    return st;
}

static void free_mini(sigma_model *m) {
    char *img = m->name;
    model_free(m);
    free(img);
}

START_TEST(test_malformed) {
    sigma_model *m;
    sg_err err;
    logrec lr = {0, ""};
    mini_opts o;
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(load_mini(&o, &m, &lr, &err), SIGMA_OK);
    size_t n;
    sigma_token *t = tokenize(m, "ab<|x|>c", 8, SIGMA_TOKENIZE_PARSE_SPECIAL, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(t[0], 2);
    ck_assert_int_eq(t[1], 3);
    ck_assert_int_eq(t[2], 4);
    free(t);
    ck_assert_int_eq(lr.n_warn, 0);
    free_mini(m);

    struct {
        mini_opts o;
        int status;
    } cases[] = {
        {{.bad_type_count = 1}, SIGMA_E_FORMAT},
        {{.bad_type_value = 1}, SIGMA_E_FORMAT},
        {{.bos_out_of_range = 1}, SIGMA_E_FORMAT},
        {{.merge_no_space = 1}, SIGMA_E_FORMAT},
        {{.tokens_wrong_type = 1}, SIGMA_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sg_err_clear(&err);
        ck_assert_int_eq(load_mini(&cases[i].o, &m, NULL, &err), cases[i].status);
        ck_assert_msg(err.msg[0] != 0, "case %zu: no message", i);
        ck_assert_ptr_null(m->tok);
        free_mini(m);
    }

    /* a merge of unknown tokens is skipped with a warning */
    memset(&o, 0, sizeof o);
    o.unknown_merge = 1;
    lr.n_warn = 0;
    ck_assert_int_eq(load_mini(&o, &m, &lr, &err), SIGMA_OK);
    ck_assert_int_eq(lr.n_warn, 1);
    ck_assert_ptr_nonnull(strstr(lr.last, "skipped 1"));
    free_mini(m);

    /* an unknown pre-tokenizer falls back to gpt2 with a warning */
    memset(&o, 0, sizeof o);
    o.pre = "no-such-pre";
    lr.n_warn = 0;
    ck_assert_int_eq(load_mini(&o, &m, &lr, &err), SIGMA_OK);
    ck_assert_int_eq(lr.n_warn, 1);
    ck_assert_ptr_nonnull(strstr(lr.last, "no-such-pre"));
    free_mini(m);

    /* no tokenizer: loads, tokenize says UNSUPPORTED */
    memset(&o, 0, sizeof o);
    o.no_model_key = 1;
    ck_assert_int_eq(load_mini(&o, &m, NULL, &err), SIGMA_OK);
    ck_assert_ptr_null(m->tok);
    ck_assert_int_eq(sigma_tokenize(m, "a", 1, NULL, 0, &n, 0), SIGMA_E_UNSUPPORTED);
    sigma_decoder *d;
    ck_assert_int_eq(sigma_decoder_open(m, 0, &d), SIGMA_E_UNSUPPORTED);
    free_mini(m);
    memset(&o, 0, sizeof o);
    o.model_kind_bert = 1;
    ck_assert_int_eq(load_mini(&o, &m, &lr, &err), SIGMA_OK);
    ck_assert_ptr_null(m->tok);
    free_mini(m);
}
END_TEST

/* ---- random strings: ids in range, lossless round trip, decoder ---------- */

START_TEST(test_random_strings) {
    static const char *const atoms[] = {"a", "Z", "the", " ", "  ", "\t", "\n", "\r\n", "0", "123",
                                        "'s", "'LL", "!", "...", "\xC3\xA9", "\xCE\xA9", "\xD0\xAF",
                                        "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xE2\x80\x8D",
                                        "\xC2\xA0", "\xE3\x80\x80", "\xD9\xA1", "<|im_end|>",
                                        "<0x41>", "\xE2\x96\x81", "\xFF", "\xC3", "\xE2\x82",
                                        "\xED\xA0\x80", "\x80", "\x00"};
    const size_t n_atoms = sizeof atoms / sizeof *atoms, n_valid = n_atoms - 6;
    const char *names[] = {"smolmini.gguf", "llama3mini.gguf", "spmmini.gguf"};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int k = 0; k < 3; k++) {
        sigma_model *m = open_fixture(names[k]);
        uint32_t nv = sg_tok_n_vocab(m);
        for (int iter = 0; iter < 300; iter++) {
            char text[512];
            size_t len = 0;
            int valid = iter % 2;
            int n = (int)(x % 40);
            for (int j = 0; j < n; j++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                const char *a = atoms[x % (valid ? n_valid : n_atoms)];
                size_t al = strcmp(a, "\x00") == 0 ? 1 : strlen(a);
                memcpy(text + len, a, al);
                len += al;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t nt;
            uint32_t flags = (uint32_t)(x & 3);
            sigma_token *t = tokenize(m, text, len, flags, &nt);
            for (size_t i = 0; i < nt; i++) ck_assert_uint_lt((uint32_t)t[i], nv);
            free(t);
            /* byte-level and byte-fallback encodings are lossless, except that
             * SentencePiece reads a literal U+2581 in the text as a space */
            int has_mark = memmem(text, len, "\xE2\x96\x81", 3) != NULL;
            if (!(k == 2 && has_mark)) expect_roundtrip(m, text, len);
            t = tokenize(m, text, len, 0, &nt);
            sigma_decoder *d;
            ck_assert_int_eq(sigma_decoder_open(m, 0, &d), SIGMA_OK);
            char out[2048];
            size_t o = 0, l;
            for (size_t i = 0; i < nt; i++) {
                ck_assert_int_eq(sigma_decoder_push(d, t[i], out + o, sizeof out - o, &l), SIGMA_OK);
                ck_assert(utf8_ok(out + o, l));
                o += l;
            }
            ck_assert_int_eq(sigma_decoder_flush(d, out + o, sizeof out - o, &l), SIGMA_OK);
            ck_assert(utf8_ok(out + o, l));
            o += l;
            sigma_decoder_close(d);
            if (valid && k != 2) { /* SPM: the decoder keeps the prefix space */
                ck_assert_uint_eq(o, len);
                ck_assert(memcmp(out, text, len) == 0);
            }
            free(t);
        }
        model_free(m);
    }
}
END_TEST

/* ---- the real SmolLM2 vocabulary ----------------------------------------- */

/* Gemma 3's 262k SentencePiece vocabulary (byte fallback, no space
 * prefix, user-defined whitespace pieces): ids from sentencepiece
 * (gen_gemma3.py), on the real file (SIGMA_TEST_GEMMA3) */
START_TEST(test_gemma3_real) {
    const char *path = getenv("SIGMA_TEST_GEMMA3");
    ck_assert_ptr_nonnull(path);
    sigma_model *m;
    sg_err err = {{0}};
    ck_assert_msg(open_file(path, &m, &err) == SIGMA_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(m->tok);
    ck_assert_uint_eq(sg_tok_n_vocab(m), 262144);
    expect_ids(m, "sample.txt", "gemma3_sample.ids", 0);
    expect_ids(m, "specials.txt", "gemma3_specials.ids", SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    roundtrip_file(m, "specials.txt");
    model_free(m);
}
END_TEST

START_TEST(test_smollm2_real) {
    const char *path = getenv("SIGMA_TEST_MODEL");
    ck_assert_ptr_nonnull(path);
    sigma_model *m;
    sg_err err = {{0}};
    ck_assert_msg(open_file(path, &m, &err) == SIGMA_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(m->tok);
    ck_assert_uint_eq(sg_tok_n_vocab(m), 49152);
    expect_ids(m, "sample.txt", "smollm2_sample.ids", 0);
    expect_ids(m, "specials.txt", "smollm2_specials.ids", SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    /* bytes without a symbol in this vocabulary (0x04, 0x13, 0xF1) are
     * dropped, as HF tokenizers does (ids from gen_fixtures' HF tokenizer) */
    const char odd[] = "a\x04" "b \xF1\x90\x80\x80 x\x13\x13y";
    const sigma_token odd_ids[] = {81, 82, 216, 234, 218, 218, 1792, 105};
    size_t n_odd;
    sigma_token *got = tokenize(m, odd, sizeof odd - 1, 0, &n_odd);
    ck_assert_uint_eq(n_odd, 8);
    ck_assert(memcmp(got, odd_ids, sizeof odd_ids) == 0);
    free(got);

    const char *root = getenv("SIGMA_SOURCE_ROOT");
    const char *book = getenv("SIGMA_TEST_TEXT");
    char p[4096];
    if (!book) {
        snprintf(p, sizeof p, "%s/../shared/data/persuasion.txt", root ? root : ".");
        book = p;
    }
    FILE *f = fopen(book, "rb");
    if (f) {
        fclose(f);
        size_t len, n;
        char *text = read_file(book, &len);
        double t0 = sg_now_ms();
        sigma_token *ids = tokenize(m, text, len, 0, &n); /* counts, then fills: 2 passes */
        double ms = (sg_now_ms() - t0) / 2;
        printf("tokenized %s: %zu bytes -> %zu tokens in %.1f ms (%.0f tokens/s, %.1f MB/s)\n",
               book, len, n, ms, n / (ms / 1000.0), len / (ms * 1000.0));
        /* the requirement: 100 KB in well under a second (sanitizer builds too) */
        ck_assert_msg(ms * 100000.0 / (double)len < 1000.0, "tokenizing took %.0f ms", ms);
        size_t outlen;
        char *out = detok(m, ids, n, 0, &outlen);
        ck_assert_uint_eq(outlen, len);
        ck_assert(memcmp(out, text, len) == 0);
        free(out);
        free(ids);
        free(text);
    } else {
        printf("no %s: speed not measured\n", book);
    }
    model_free(m);
}
END_TEST

/* ---- the real Llama-3 vocabulary (tests/text/gen_llama3_real.py) -------- */

START_TEST(test_llama3_real) {
    const char *dir = getenv("SIGMA_TEST_LLAMA3_DIR");
    ck_assert_ptr_nonnull(dir);
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/llama3.gguf", dir);
    sigma_model *m;
    sg_err err = {{0}};
    ck_assert_msg(open_file(p, &m, &err) == SIGMA_OK, "%s", err.msg);
    ck_assert_uint_eq(sg_tok_n_vocab(m), 128256);
    snprintf(p, sizeof p, "%s", fixture("sample.txt"));
    snprintf(q, sizeof q, "%s/llama3_sample.ids", dir);
    expect_ids_path(m, p, "llama3_sample.ids", q, 0);
    snprintf(p, sizeof p, "%s", fixture("specials.txt"));
    snprintf(q, sizeof q, "%s/llama3_specials.ids", dir);
    expect_ids_path(m, p, "llama3_specials.ids", q, SIGMA_TOKENIZE_PARSE_SPECIAL);
    roundtrip_file(m, "sample.txt");
    const char *book = getenv("SIGMA_TEST_TEXT");
    snprintf(q, sizeof q, "%s/llama3_book.ids", dir);
    FILE *f = fopen(q, "rb");
    if (book && f) expect_ids_path(m, book, "llama3_book.ids", q, 0);
    if (f) fclose(f);
    sigma_token bos;
    ck_assert_int_eq(sigma_model_special_token(m, SIGMA_SPECIAL_BOS, &bos), SIGMA_OK);
    ck_assert_int_eq(bos, 128000);
    ck_assert(sg_tok_is_eog(m, sg_tok_find(m, "<|eot_id|>", 10)));
    model_free(m);
}
END_TEST

int main(int argc, char **argv) {
    /* decide about skipping before anything is allocated (LeakSanitizer) */
    if (argc > 1 && strcmp(argv[1], "model") == 0 && !getenv("SIGMA_TEST_MODEL")) {
        printf("SKIP: SIGMA_TEST_MODEL is not set\n");
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "llama3") == 0 && !getenv("SIGMA_TEST_LLAMA3_DIR")) {
        printf("SKIP: SIGMA_TEST_LLAMA3_DIR is not set (see tests/text/gen_llama3_real.py)\n");
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "gemma3") == 0 && !getenv("SIGMA_TEST_GEMMA3")) {
        printf("SKIP: SIGMA_TEST_GEMMA3 is not set (tools/fetch-gemma3.sh)\n");
        return 77;
    }
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 120);
    if (argc > 1 && strcmp(argv[1], "model") == 0) {
        tcase_add_test(tc, test_smollm2_real);
    } else if (argc > 1 && strcmp(argv[1], "llama3") == 0) {
        tcase_add_test(tc, test_llama3_real);
    } else if (argc > 1 && strcmp(argv[1], "gemma3") == 0) {
        tcase_add_test(tc, test_gemma3_real);
    } else {
        tcase_add_test(tc, test_unicode_classes);
        tcase_add_test(tc, test_utf8_decode);
        tcase_add_test(tc, test_smolmini_exact);
        tcase_add_test(tc, test_llama3mini_exact);
        tcase_add_test(tc, test_qwen2mini_exact);
        tcase_add_test(tc, test_arch_chat_formats);
        tcase_add_test(tc, test_spmmini_exact);
        tcase_add_test(tc, test_specials);
        tcase_add_test(tc, test_buffer_protocol);
        tcase_add_test(tc, test_invalid_utf8);
        tcase_add_test(tc, test_decoder);
        tcase_add_test(tc, test_spm_pieces);
        tcase_add_test(tc, test_malformed);
        tcase_add_test(tc, test_random_strings);
    }
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
