#define _POSIX_C_SOURCE 200809L
/* Old session files still load: tests/fixtures/session/ holds files of
 * format version 1 (no sampler attached) and 2 (a sampler attached), for
 * every built-in KV strategy, stored and deflated, written by the library
 * as it was before lib/session/session_file.c got its named header fields
 * (commit 7319b81 plus this generator). `expected.txt` there has one line
 * per file, recorded by the same library right after loading it back:
 *
 *   FILE STRATEGY OPTIONS N_CTX VERSION LEVEL STORED_TWIN N_TOKENS
 *   EXTRA_TOKEN SAMPLED N_VOCAB LOGITS...
 *
 * OPTIONS is "-" for none; STORED_TWIN is the stored (level 0) file with
 * the same content; SAMPLED is the token the restored sampler draws from
 * the restored logits (-1 for version 1); LOGITS (C99 %a floats) are the
 * logits after evaluating EXTRA_TOKEN on top of the loaded session.
 *
 * For each file the test loads it (from its path and from memory) into a
 * fresh session (and, for version 2, a sampler opened with other settings)
 * and checks: the load succeeds, position and tokens are restored, saving
 * the session again stored gives the stored twin byte for byte (header,
 * tokens, logits, KV blob and sampler state), the restored sampler draws
 * the recorded token, and the next token's logits equal the recorded ones
 * bitwise. It runs with SIGMA_KERNELS=generic,exact (tests/api/meson.build)
 * so that the floats do not depend on the machine's SIMD level.
 *
 * To regenerate (only if the format itself changes on purpose; old files
 * must keep loading, so normally never):
 *   SIGMA_KERNELS=generic,exact SIGMA_SOURCE_ROOT=. \
 *       build/tests/api/test-session-fixtures --generate tests/fixtures/session
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigma/sigma.h"

#define MODEL "tests/fixtures/sigma_rot8_f16.gguf"
#define N_CTX 32
#define N_PROMPT 16
#define N_TOKENS 20
#define EXTRA_TOKEN 5
#define MAX_VOCAB 4096

static const sigma_token TOKENS[N_TOKENS] = {1, 17, 3, 29, 8, 22, 5, 5, 13, 40, 2, 31, 9, 11, 27, 6,
                                             14, 38, 4, 19};

static const struct {
    const char *name, *strategy, *options;
} CASES[] = {
    {"dense", "dense", NULL},
    {"dense_f16", "dense", "type=f16"},
    {"quant", "quant", "kbits=4,vbits=4,group=8,residual=4"},
    {"window", "window", "sinks=2,window=8"},
    {"h2o", "h2o", "budget=8,recent=4"},
    {"topv", "topv", "k=4,sinks=1,recent=2"},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static const char *root(void) {
    const char *r = getenv("SIGMA_SOURCE_ROOT");
    return r ? r : ".";
}

static sigma_model *open_model(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root(), MODEL);
    sigma_model *m = NULL;
    ck_assert_msg(sigma_model_open(path, NULL, &m) == SIGMA_OK, "cannot open %s", path);
    return m;
}

static sigma_session *open_session(const sigma_model *m, const char *strategy, const char *options,
                                   uint32_t n_ctx, int level, uint32_t n_threads) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = n_ctx;
    p.n_threads = n_threads;
    p.kv_strategy = strategy;
    p.kv_options = options;
    p.save_compression = level;
    sigma_session *s = NULL;
    ck_assert_msg(sigma_session_open(m, &p, &s) == SIGMA_OK, "open %s:%s", strategy,
                  options ? options : "");
    return s;
}

/* The sampler that writes version 2 files (every setting off its default). */
static sigma_sampler *open_writer_sampler(const sigma_model *m) {
    sigma_sampler_params sp;
    sigma_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0.9f;
    sp.top_k = 30;
    sp.top_p = 0.93f;
    sp.min_p = 0.02f;
    sp.repeat_penalty = 1.1f;
    sp.frequency_penalty = 0.05f;
    sp.presence_penalty = 0.1f;
    sp.penalty_last_n = 8;
    sp.seed = 4242;
    sigma_sampler *smp = NULL;
    ck_assert_int_eq(sigma_sampler_open(m, &sp, &smp), SIGMA_OK);
    return smp;
}

/* A sampler with other settings: the load must replace them. */
static sigma_sampler *open_reader_sampler(const sigma_model *m) {
    sigma_sampler_params sp;
    sigma_sampler_params_init(&sp, sizeof sp);
    sp.seed = 1;
    sigma_sampler *smp = NULL;
    ck_assert_int_eq(sigma_sampler_open(m, &sp, &smp), SIGMA_OK);
    return smp;
}

static unsigned char *save_mem(sigma_session *s, size_t *len) {
    size_t need = 0;
    ck_assert_int_eq(sigma_session_save_memory(s, NULL, 0, &need), SIGMA_E_BUFFER_TOO_SMALL);
    unsigned char *buf = malloc(need);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(sigma_session_save_memory(s, buf, need, len), SIGMA_OK);
    return buf;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_int_ge(n, 0);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static uint32_t n_vocab_of(const sigma_model *m) {
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    ck_assert_int_eq(sigma_model_get_info(m, &info), SIGMA_OK);
    ck_assert_uint_le(info.n_vocab, MAX_VOCAB);
    return info.n_vocab;
}

/* ---- generate ------------------------------------------------------------------------ */

START_TEST(test_generate) {
    const char *dir = getenv("SIGMA_FIXTURE_OUT");
    ck_assert_ptr_nonnull(dir);
    sigma_model *m = open_model();
    uint32_t n_vocab = n_vocab_of(m);
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.txt", dir);
    FILE *ex = fopen(path, "w");
    ck_assert_msg(ex != NULL, "cannot create %s", path);
    for (size_t c = 0; c < N_CASES; c++)
        for (int version = 1; version <= 2; version++)
            for (int level = 0; level <= 1; level++) {
                char file[128], twin[128];
                snprintf(file, sizeof file, "%s-v%d-%s.sess", CASES[c].name, version,
                         level ? "deflate" : "stored");
                snprintf(twin, sizeof twin, "%s-v%d-stored.sess", CASES[c].name, version);
                /* write */
                sigma_session *a = open_session(m, CASES[c].strategy, CASES[c].options, N_CTX, level, 1);
                sigma_sampler *sa = version == 2 ? open_writer_sampler(m) : NULL;
                if (sa) ck_assert_int_eq(sigma_session_set_sampler(a, sa), SIGMA_OK);
                ck_assert_int_eq(sigma_session_eval(a, TOKENS, N_PROMPT), SIGMA_OK);
                for (int i = 0; sa && i < N_PROMPT; i++)
                    ck_assert_int_eq(sigma_sampler_accept(sa, TOKENS[i]), SIGMA_OK);
                for (int i = N_PROMPT; i < N_TOKENS; i++) {
                    if (sa) { /* advance the RNG and the history */
                        const float *lg;
                        sigma_token t;
                        ck_assert_int_eq(sigma_session_logits(a, -1, &lg), SIGMA_OK);
                        ck_assert_int_eq(sigma_sampler_sample(sa, lg, &t), SIGMA_OK);
                    }
                    ck_assert_int_eq(sigma_session_eval(a, &TOKENS[i], 1), SIGMA_OK);
                }
                size_t len;
                unsigned char *img = save_mem(a, &len);
                ck_assert_uint_eq(img[8], (unsigned)version);
                ck_assert_uint_eq(img[12], (unsigned)level);
                snprintf(path, sizeof path, "%s/%s", dir, file);
                write_file(path, img, len);
                free(img);
                sigma_session_close(a);
                sigma_sampler_close(sa);

                /* read back and record */
                sigma_session *b = open_session(m, CASES[c].strategy, CASES[c].options, N_CTX, 0, 1);
                sigma_sampler *sb = version == 2 ? open_reader_sampler(m) : NULL;
                if (sb) ck_assert_int_eq(sigma_session_set_sampler(b, sb), SIGMA_OK);
                ck_assert_int_eq(sigma_session_load(b, path), SIGMA_OK);
                sigma_token sampled = -1;
                if (sb) {
                    const float *lg;
                    ck_assert_int_eq(sigma_session_logits(b, -1, &lg), SIGMA_OK);
                    ck_assert_int_eq(sigma_sampler_sample(sb, lg, &sampled), SIGMA_OK);
                }
                const sigma_token extra = EXTRA_TOKEN;
                ck_assert_int_eq(sigma_session_eval(b, &extra, 1), SIGMA_OK);
                const float *lg;
                ck_assert_int_eq(sigma_session_logits(b, -1, &lg), SIGMA_OK);
                fprintf(ex, "%s %s %s %u %d %d %s %u %d %d %u", file, CASES[c].strategy,
                        CASES[c].options ? CASES[c].options : "-", N_CTX, version, level, twin,
                        N_TOKENS, EXTRA_TOKEN, sampled, n_vocab);
                for (uint32_t i = 0; i < n_vocab; i++) fprintf(ex, " %a", (double)lg[i]);
                fprintf(ex, "\n");
                sigma_session_close(b);
                sigma_sampler_close(sb);
            }
    ck_assert_int_eq(fclose(ex), 0);
    sigma_model_close(m);
}
END_TEST

/* ---- check ----------------------------------------------------------------------------- */

typedef struct fixture {
    char file[128], strategy[32], options[128], twin[128];
    unsigned n_ctx, n_tokens, n_vocab;
    int version, level, extra, sampled;
    float logits[MAX_VOCAB];
} fixture;

/* Reads the next line of expected.txt; 0 at the end. */
static int next_fixture(FILE *f, fixture *x) {
    int n = fscanf(f, "%127s %31s %127s %u %d %d %127s %u %d %d %u", x->file, x->strategy,
                   x->options, &x->n_ctx, &x->version, &x->level, x->twin, &x->n_tokens, &x->extra,
                   &x->sampled, &x->n_vocab);
    if (n == EOF) return 0;
    ck_assert_int_eq(n, 11);
    ck_assert_uint_le(x->n_vocab, MAX_VOCAB);
    ck_assert_uint_le(x->n_tokens, N_TOKENS);
    for (unsigned i = 0; i < x->n_vocab; i++) {
        char word[64];
        ck_assert_int_eq(fscanf(f, "%63s", word), 1);
        x->logits[i] = strtof(word, NULL);
    }
    return 1;
}

static void check_fixture(const sigma_model *m, const fixture *x, int from_path) {
    char dir[4096], path[4096 + 160];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/session", root());
    snprintf(path, sizeof path, "%s/%s", dir, x->file);
    const char *opts = strcmp(x->options, "-") == 0 ? NULL : x->options;
    const char *how = from_path ? "path" : "memory";
    sigma_session *s = open_session(m, x->strategy, opts, x->n_ctx, 0, 2);
    sigma_sampler *smp = x->version == 2 ? open_reader_sampler(m) : NULL;
    if (smp) ck_assert_int_eq(sigma_session_set_sampler(s, smp), SIGMA_OK);
    int st;
    if (from_path) {
        st = sigma_session_load(s, path);
    } else {
        size_t len;
        unsigned char *img = read_file(path, &len);
        st = sigma_session_load_memory(s, img, len);
        free(img);
    }
    ck_assert_msg(st == SIGMA_OK, "%s (%s): %s", x->file, how, sigma_session_last_error(s));

    /* tokens and position */
    uint32_t pos = 0;
    ck_assert_int_eq(sigma_session_position(s, &pos), SIGMA_OK);
    ck_assert_msg(pos == x->n_tokens, "%s (%s): position %u, want %u", x->file, how, pos, x->n_tokens);
    const sigma_token *toks;
    size_t n;
    ck_assert_int_eq(sigma_session_tokens(s, &toks, &n), SIGMA_OK);
    ck_assert_uint_eq(n, x->n_tokens);
    ck_assert_msg(memcmp(toks, TOKENS, n * sizeof *toks) == 0, "%s (%s): tokens differ", x->file, how);

    /* saved again, stored: the stored twin byte for byte (this covers the
     * header fields, the logits, the KV blob and the sampler state) */
    size_t len, twin_len;
    unsigned char *img = save_mem(s, &len);
    snprintf(path, sizeof path, "%s/%s", dir, x->twin);
    unsigned char *twin = read_file(path, &twin_len);
    ck_assert_msg(len == twin_len && memcmp(img, twin, len) == 0,
                  "%s (%s): saved again it is not %s (%zu vs %zu bytes)", x->file, how, x->twin, len,
                  twin_len);
    free(img);
    free(twin);

    /* the restored sampler continues the writer's draws */
    if (smp) {
        const float *lg;
        sigma_token t;
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        ck_assert_int_eq(sigma_sampler_sample(smp, lg, &t), SIGMA_OK);
        ck_assert_msg(t == x->sampled, "%s (%s): sampled %d, want %d", x->file, how, t, x->sampled);
    }

    /* the next token's logits, bitwise */
    const sigma_token extra = x->extra;
    ck_assert_int_eq(sigma_session_eval(s, &extra, 1), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    for (unsigned i = 0; i < x->n_vocab; i++)
        ck_assert_msg(memcmp(&lg[i], &x->logits[i], sizeof(float)) == 0,
                      "%s (%s): logit %u is %a, want %a", x->file, how, i, (double)lg[i],
                      (double)x->logits[i]);
    sigma_session_close(s);
    sigma_sampler_close(smp);
}

START_TEST(test_fixtures_load) {
    const char *k = getenv("SIGMA_KERNELS");
    ck_assert_msg(k && strcmp(k, "generic,exact") == 0,
                  "run with SIGMA_KERNELS=generic,exact (the fixtures were recorded so)");
    sigma_model *m = open_model();
    uint32_t n_vocab = n_vocab_of(m);
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/session/expected.txt", root());
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fixture *x = malloc(sizeof *x);
    ck_assert_ptr_nonnull(x);
    int count = 0, seen_v[3] = {0, 0, 0}, seen_level[2] = {0, 0};
    while (next_fixture(f, x)) {
        ck_assert_uint_eq(x->n_vocab, n_vocab);
        ck_assert(x->version >= 1 && x->version <= 2 && x->level >= 0 && x->level <= 1);
        check_fixture(m, x, 1);
        check_fixture(m, x, 0);
        count++;
        seen_v[x->version]++;
        seen_level[x->level]++;
    }
    fclose(f);
    free(x);
    /* every strategy, both versions, both encodings */
    ck_assert_int_eq(count, (int)(N_CASES * 4));
    ck_assert_int_eq(seen_v[1], seen_v[2]);
    ck_assert_int_eq(seen_level[0], seen_level[1]);
    sigma_model_close(m);
}
END_TEST

int main(int argc, char **argv) {
    int gen = argc == 3 && strcmp(argv[1], "--generate") == 0;
    if (gen && setenv("SIGMA_FIXTURE_OUT", argv[2], 1) != 0) return EXIT_FAILURE;
    Suite *s = suite_create("session-fixtures");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, gen ? test_generate : test_fixtures_load);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
