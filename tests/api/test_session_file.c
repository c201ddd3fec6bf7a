#define _POSIX_C_SOURCE 200809L
/* Session files (lib/api/session_io.c): save -> load -> identical
 * continuation, to memory and to a path; every kind of damage (truncation,
 * bit flips, wrong version, other model, too small a context) is refused
 * with a clear status and leaves the session exactly as it was. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "sigma/sigma.h"
#include "tiny_model.h"

static const sigma_token PROMPT[12] = {1, 7, 3, 49, 0, 22, 5, 5, 13, 40, 2, 8};

static sigma_session *open_session(const sigma_model *m, uint32_t n_ctx, int level) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    p.save_compression = level;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    return s;
}

static unsigned char *save_mem(sigma_session *s, size_t *len) {
    size_t need = 0;
    ck_assert_int_eq(sigma_session_save_memory(s, NULL, 0, &need), SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_gt(need, 104);
    unsigned char *buf = malloc(need);
    ck_assert_int_eq(sigma_session_save_memory(s, buf, need, len), SIGMA_OK);
    ck_assert_uint_eq(*len, need);
    return buf;
}

/* Greedy continuation of n tokens; writes the chosen tokens. */
static void continue_greedy(sigma_session *s, int n, sigma_token *out) {
    for (int i = 0; i < n; i++) {
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        sigma_token best = 0;
        for (sigma_token t = 1; t < TM_VOCAB; t++)
            if (lg[t] > lg[best]) best = t;
        out[i] = best;
        ck_assert_int_eq(sigma_session_eval(s, &best, 1), SIGMA_OK);
    }
}

/* Snapshot of what must not change after a failed load. */
typedef struct snap {
    uint32_t pos;
    float logits[TM_VOCAB];
} snap;

static void take(sigma_session *s, snap *sn) {
    ck_assert_int_eq(sigma_session_position(s, &sn->pos), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    memcpy(sn->logits, lg, sizeof sn->logits);
}

static void same(sigma_session *s, const snap *sn) {
    snap now;
    take(s, &now);
    ck_assert_uint_eq(now.pos, sn->pos);
    ck_assert(memcmp(now.logits, sn->logits, sizeof now.logits) == 0);
}

static void roundtrip(int kind, int level) {
    uint8_t *mem;
    sigma_model *m = tm_open(kind, &mem);
    ck_assert_ptr_nonnull(m);
    sigma_session *a = open_session(m, 64, level);
    ck_assert_int_eq(sigma_session_eval(a, PROMPT, 12), SIGMA_OK);
    size_t len;
    unsigned char *img = save_mem(a, &len);

    sigma_session *b = open_session(m, 64, level);
    ck_assert_int_eq(sigma_session_load_memory(b, img, len), SIGMA_OK);
    uint32_t pa, pb;
    sigma_session_position(a, &pa);
    sigma_session_position(b, &pb);
    ck_assert_uint_eq(pa, pb);
    const sigma_token *ta, *tb;
    size_t na, nb;
    sigma_session_tokens(a, &ta, &na);
    sigma_session_tokens(b, &tb, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert(memcmp(ta, tb, na * sizeof *ta) == 0);
    /* identical continuation, bit for bit */
    sigma_token ca[10], cb[10];
    continue_greedy(a, 10, ca);
    continue_greedy(b, 10, cb);
    ck_assert(memcmp(ca, cb, sizeof ca) == 0);
    const float *la, *lb;
    sigma_session_logits(a, -1, &la);
    sigma_session_logits(b, -1, &lb);
    ck_assert(memcmp(la, lb, TM_VOCAB * sizeof(float)) == 0);
    free(img);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
    free(mem);
}

START_TEST(test_roundtrip_memory) {
    roundtrip(0, 1);
    roundtrip(1, 1);
    roundtrip(1, 0); /* stored uncompressed */
    roundtrip(1, 9);
}
END_TEST

START_TEST(test_roundtrip_file) {
    uint8_t *mem;
    sigma_model *m = tm_open(1, &mem);
    char dir[] = "/tmp/sigma-sessXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/s.bin", dir);
    sigma_session *a = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_eval(a, PROMPT, 5), SIGMA_OK);
    ck_assert_int_eq(sigma_session_save(a, path), SIGMA_OK);
    /* overwrite with a longer session: the rename replaces the old file */
    ck_assert_int_eq(sigma_session_eval(a, PROMPT + 5, 7), SIGMA_OK);
    ck_assert_int_eq(sigma_session_save(a, path), SIGMA_OK);
    /* no temporary file is left behind */
    DIR *d = opendir(dir);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') files++;
    closedir(d);
    ck_assert_int_eq(files, 1);
    sigma_session *b = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_load(b, path), SIGMA_OK);
    uint32_t pos;
    sigma_session_position(b, &pos);
    ck_assert_uint_eq(pos, 12);
    /* errors name the path */
    ck_assert_int_eq(sigma_session_load(b, "/nonexistent/x.bin"), SIGMA_E_IO);
    ck_assert_ptr_nonnull(strstr(sigma_session_last_error(b), "/nonexistent/x.bin"));
    ck_assert_int_eq(sigma_session_save(b, "/nonexistent/dir/x.bin"), SIGMA_E_IO);
    ck_assert_ptr_nonnull(strstr(sigma_session_last_error(b), "/nonexistent/dir/x.bin"));
    unlink(path);
    rmdir(dir);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
    free(mem);
}
END_TEST

static void fix_header_crc(unsigned char *img) {
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, img, 100);
    for (int i = 0; i < 4; i++) img[100 + i] = (unsigned char)(c >> (8 * i));
}

START_TEST(test_damage_is_refused) {
    uint8_t *mem;
    sigma_model *m = tm_open(1, &mem);
    sigma_session *a = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_eval(a, PROMPT, 12), SIGMA_OK);
    size_t len;
    unsigned char *img = save_mem(a, &len);

    sigma_session *b = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_eval(b, PROMPT, 3), SIGMA_OK);
    snap before;
    take(b, &before);

    /* truncated at every length */
    for (size_t n = 0; n < len; n++) {
        int st = sigma_session_load_memory(b, img, n);
        ck_assert_msg(st == SIGMA_E_FORMAT, "truncated to %zu: status %d", n, st);
        ck_assert_str_ne(sigma_session_last_error(b), "");
    }
    same(b, &before);
    /* a single flipped bit anywhere */
    unsigned char *bad = malloc(len);
    for (size_t i = 0; i < len; i += (i < 128 ? 1 : 7)) {
        memcpy(bad, img, len);
        bad[i] ^= (unsigned char)(1u << (i % 8));
        int st = sigma_session_load_memory(b, bad, len);
        ck_assert_msg(st != SIGMA_OK, "bit flip at %zu accepted", i);
    }
    same(b, &before);
    /* trailing garbage */
    unsigned char *longer = malloc(len + 3);
    memcpy(longer, img, len);
    ck_assert_int_eq(sigma_session_load_memory(b, longer, len + 3), SIGMA_E_FORMAT);
    free(longer);
    /* another format version (with a valid header checksum) */
    memcpy(bad, img, len);
    bad[8] = 2;
    fix_header_crc(bad);
    ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_UNSUPPORTED);
    /* payload checksum correct but the announced raw size is a lie */
    memcpy(bad, img, len);
    bad[80] ^= 1;
    fix_header_crc(bad);
    ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
    /* absurd token count */
    memcpy(bad, img, len);
    bad[68] = bad[69] = bad[70] = 0xff;
    fix_header_crc(bad);
    ck_assert_int_ne(sigma_session_load_memory(b, bad, len), SIGMA_OK);
    same(b, &before);
    free(bad);

    /* too small a context */
    sigma_session *c = open_session(m, 8, 1);
    ck_assert_int_eq(sigma_session_load_memory(c, img, len), SIGMA_E_CONTEXT_FULL);
    sigma_session_close(c);

    /* another model */
    uint8_t *mem0;
    sigma_model *m0 = tm_open(0, &mem0);
    sigma_session *o = open_session(m0, 64, 1);
    ck_assert_int_eq(sigma_session_load_memory(o, img, len), SIGMA_E_MISMATCH);
    ck_assert_ptr_nonnull(strstr(sigma_session_last_error(o), "different model"));
    sigma_session_close(o);
    sigma_model_close(m0);
    free(mem0);

    /* and the damaged-file attempts left b working */
    ck_assert_int_eq(sigma_session_load_memory(b, img, len), SIGMA_OK);
    free(img);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
    free(mem);
}
END_TEST

START_TEST(test_args) {
    uint8_t *mem;
    sigma_model *m = tm_open(1, &mem);
    sigma_session *a = open_session(m, 64, 1);
    size_t len;
    ck_assert_int_eq(sigma_session_save_memory(a, NULL, 10, &len), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_save_memory(a, NULL, 0, NULL), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_load_memory(a, NULL, 10), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_save(a, NULL), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_session_load(a, NULL), SIGMA_E_INVALID_ARG);
    /* an empty session saves and loads (no logits) */
    unsigned char *img = save_mem(a, &len);
    sigma_session *b = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_eval(b, PROMPT, 2), SIGMA_OK);
    ck_assert_int_eq(sigma_session_load_memory(b, img, len), SIGMA_OK);
    uint32_t pos;
    sigma_session_position(b, &pos);
    ck_assert_uint_eq(pos, 0);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(b, -1, &lg), SIGMA_E_STATE);
    free(img);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
    free(mem);
}
END_TEST

/* An unbounded `window` session that went far past n_ctx saves and loads
 * again (memory and path, stored and deflated), in a session opened with a
 * small n_ctx, and continues identically; loading it into a bounded
 * (unbounded=0) window session is refused. The window is wider than n_ctx,
 * so the KV blob holds more rows than n_ctx. */
static sigma_session *open_window(const sigma_model *m, uint32_t n_ctx, int level, const char *opts) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    p.n_ctx = n_ctx;
    p.n_batch = 8;
    p.n_threads = 2;
    p.save_compression = level;
    p.kv_strategy = "window";
    p.kv_options = opts;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    return s;
}

START_TEST(test_window_past_ctx) {
    const uint32_t n_ctx = 16;
    const char *opts[2] = {"sinks=2,window=40", "sinks=2,window=6"};
    uint8_t *mem;
    sigma_model *m = tm_open(_i / 2, &mem);
    for (int o = 0; o < 2; o++)
        for (int level = 0; level <= 1; level++) {
            sigma_session *a = open_window(m, n_ctx, level, opts[o]);
            ck_assert_int_eq(sigma_session_eval(a, PROMPT, 12), SIGMA_OK);
            sigma_token sink[128];
            continue_greedy(a, 100 + 13 * (_i % 2), sink); /* ~7x n_ctx */
            uint32_t pa;
            sigma_session_position(a, &pa);
            ck_assert_uint_gt(pa, 6 * n_ctx);
            size_t len;
            unsigned char *img = save_mem(a, &len);
            /* memory */
            sigma_session *b = open_window(m, n_ctx, level, opts[o]);
            int st = sigma_session_load_memory(b, img, len);
            ck_assert_msg(st == SIGMA_OK, "%s level %d: %s", opts[o], level,
                          sigma_session_last_error(b));
            uint32_t pb;
            sigma_session_position(b, &pb);
            ck_assert_uint_eq(pa, pb);
            /* path */
            char dir[] = "/tmp/sigma-sessXXXXXX";
            ck_assert_ptr_nonnull(mkdtemp(dir));
            char path[256];
            snprintf(path, sizeof path, "%s/w.bin", dir);
            ck_assert_int_eq(sigma_session_save(a, path), SIGMA_OK);
            sigma_session *c = open_window(m, n_ctx, level, opts[o]);
            st = sigma_session_load(c, path);
            ck_assert_msg(st == SIGMA_OK, "%s level %d (file): %s", opts[o], level,
                          sigma_session_last_error(c));
            unlink(path);
            rmdir(dir);
            /* identical continuation, bit for bit */
            sigma_token ca[10], cb[10], cc[10];
            continue_greedy(a, 10, ca);
            continue_greedy(b, 10, cb);
            continue_greedy(c, 10, cc);
            ck_assert(memcmp(ca, cb, sizeof ca) == 0);
            ck_assert(memcmp(ca, cc, sizeof ca) == 0);
            const float *la, *lb, *lc;
            sigma_session_logits(a, -1, &la);
            sigma_session_logits(b, -1, &lb);
            sigma_session_logits(c, -1, &lc);
            ck_assert(memcmp(la, lb, TM_VOCAB * sizeof(float)) == 0);
            ck_assert(memcmp(la, lc, TM_VOCAB * sizeof(float)) == 0);
            /* a bounded window session cannot hold it */
            char bopts[64];
            snprintf(bopts, sizeof bopts, "%s,unbounded=0", opts[o]);
            sigma_session *d = open_window(m, n_ctx, level, bopts);
            ck_assert_int_ne(sigma_session_load_memory(d, img, len), SIGMA_OK);
            sigma_session_close(d);
            free(img);
            sigma_session_close(a);
            sigma_session_close(b);
            sigma_session_close(c);
        }
    sigma_model_close(m);
    free(mem);
}
END_TEST

/* A path load bounds the file size before reading it; for an unbounded
 * strategy the bound must follow the token count in the header, not n_ctx:
 * here the window (4400 rows) is far wider than n_ctx (16) and the file is
 * larger than any session of n_ctx tokens could write. */
START_TEST(test_window_big_file) {
    const uint32_t n_ctx = 16;
    uint8_t *mem;
    sigma_model *m = tm_open(1, &mem);
    sigma_session *a = open_window(m, n_ctx, 0, "sinks=4,window=4400");
    sigma_token batch[16];
    for (uint32_t i = 0; i < 4480 / 16; i++) {
        for (int j = 0; j < 16; j++) batch[j] = (sigma_token)((i * 7 + (uint32_t)j * 3) % TM_VOCAB);
        ck_assert_int_eq(sigma_session_eval(a, batch, 8), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(a, batch + 8, 8), SIGMA_OK);
    }
    char dir[] = "/tmp/sigma-sessXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/big.bin", dir);
    ck_assert_int_eq(sigma_session_save(a, path), SIGMA_OK);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_gt(sb.st_size, 2200000); /* > 2 x (n_ctx tokens + 1 MiB slack) */
    sigma_session *b = open_window(m, n_ctx, 0, "sinks=4,window=4400");
    int st = sigma_session_load(b, path);
    ck_assert_msg(st == SIGMA_OK, "%s", sigma_session_last_error(b));
    unlink(path);
    rmdir(dir);
    sigma_token ca[4], cb[4];
    continue_greedy(a, 4, ca);
    continue_greedy(b, 4, cb);
    ck_assert(memcmp(ca, cb, sizeof ca) == 0);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_model_close(m);
    free(mem);
}
END_TEST

int main(void) {
    Suite *s = suite_create("session-file");
    TCase *tc = tcase_create("file");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_roundtrip_memory);
    tcase_add_test(tc, test_roundtrip_file);
    tcase_add_test(tc, test_damage_is_refused);
    tcase_add_test(tc, test_args);
    tcase_add_loop_test(tc, test_window_past_ctx, 0, 4);
    tcase_add_test(tc, test_window_big_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
