#define _POSIX_C_SOURCE 200809L
/* Session files (lib/session/session_file.c): save -> load -> identical
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

/* The default is stored (level 0): flag bit 0 clear, stored size =
 * uncompressed size; an explicit level 1 sets the flag. */
START_TEST(test_default_stored) {
    sigma_session_params p;
    sigma_session_params_init(&p, sizeof p);
    ck_assert_int_eq(p.save_compression, 0);
    uint8_t *mem;
    sigma_model *m = tm_open(0, &mem);
    ck_assert_ptr_nonnull(m);
    sigma_session *s = NULL;
    p.n_ctx = 64;
    ck_assert_int_eq(sigma_session_open(m, &p, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, PROMPT, 12), SIGMA_OK);
    size_t len;
    unsigned char *img = save_mem(s, &len);
    ck_assert_int_eq(img[12] & 1, 0);
    ck_assert(memcmp(img + 80, img + 88, 8) == 0);
    free(img);
    sigma_session *z = open_session(m, 64, 1);
    ck_assert_int_eq(sigma_session_eval(z, PROMPT, 12), SIGMA_OK);
    img = save_mem(z, &len);
    ck_assert_int_eq(img[12] & 1, 1);
    free(img);
    sigma_session_close(z);
    sigma_session_close(s);
    sigma_model_close(m);
    free(mem);
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
    bad[8] = 3;
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


/* ---- sampler state (sigma_session_set_sampler) ------------------------------------ */

static sigma_sampler *open_sampler(const sigma_model *m, uint64_t seed, int32_t last_n) {
    sigma_sampler_params sp;
    sigma_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 1.3f;
    sp.top_k = 30;
    sp.top_p = 0.98f;
    sp.min_p = 0.01f;
    sp.repeat_penalty = 1.4f;
    sp.frequency_penalty = 0.3f;
    sp.presence_penalty = 0.2f;
    sp.penalty_last_n = last_n;
    sp.seed = seed;
    sigma_sampler *smp = NULL;
    ck_assert_int_eq(sigma_sampler_open(m, &sp, &smp), SIGMA_OK);
    return smp;
}

/* Sample n tokens, evaluating each into the session. */
static void sample_run(sigma_session *s, sigma_sampler *smp, int n, sigma_token *out) {
    for (int i = 0; i < n; i++) {
        const float *lg;
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
        ck_assert_int_eq(sigma_sampler_sample(smp, lg, &out[i]), SIGMA_OK);
        ck_assert_int_eq(sigma_session_eval(s, &out[i], 1), SIGMA_OK);
    }
}

/* A session with 12 prompt tokens and 5 sampled ones, its sampler
 * attached (an 8-token penalty window has wrapped, a 64-token one not). */
static void prepare_sampled(const sigma_model *m, int level, int32_t window, sigma_session **s,
                            sigma_sampler **smp) {
    *s = open_session(m, 64, level);
    *smp = open_sampler(m, 1234, window);
    ck_assert_int_eq(sigma_session_eval(*s, PROMPT, 12), SIGMA_OK);
    for (int i = 0; i < 12; i++) ck_assert_int_eq(sigma_sampler_accept(*smp, PROMPT[i]), SIGMA_OK);
    sigma_token t[5];
    sample_run(*s, *smp, 5, t);
    ck_assert_int_eq(sigma_session_set_sampler(*s, *smp), SIGMA_OK);
}

#define N_CONT 24

START_TEST(test_sampler_roundtrip) {
    uint8_t *mem;
    sigma_model *m = tm_open(_i == 2 ? 0 : 1, &mem);
    int level = _i == 1 ? 0 : 1;
    sigma_session *a;
    sigma_sampler *sa;
    int32_t window = _i == 2 ? 64 : 8;
    prepare_sampled(m, level, window, &a, &sa);
    size_t len;
    unsigned char *img = save_mem(a, &len);
    ck_assert_uint_eq(img[8], 2); /* format version 2: a sampler section */
    /* the uninterrupted run */
    sigma_token ref[N_CONT];
    sample_run(a, sa, N_CONT, ref);

    /* a fresh session and a sampler with other settings (seed, window) */
    sigma_session *b = open_session(m, 64, level);
    sigma_sampler *sb = open_sampler(m, 99, 3);
    ck_assert_int_eq(sigma_sampler_accept(sb, 4), SIGMA_OK);
    ck_assert_int_eq(sigma_session_set_sampler(b, sb), SIGMA_OK);
    ck_assert_int_eq(sigma_session_load_memory(b, img, len), SIGMA_OK);
    sigma_token got[N_CONT];
    sample_run(b, sb, N_CONT, got);
    ck_assert_mem_eq(got, ref, sizeof ref);

    /* the state mattered: a sampler with the original settings but not its
     * state (fresh RNG, empty history) goes another way */
    sigma_session *c = open_session(m, 64, level);
    ck_assert_int_eq(sigma_session_load_memory(c, img, len), SIGMA_OK); /* no sampler: ignored */
    sigma_sampler *sc = open_sampler(m, 1234, window);
    sigma_token other[N_CONT];
    sample_run(c, sc, N_CONT, other);
    ck_assert(memcmp(other, ref, sizeof ref) != 0);

    /* a file without sampler state (version 1) leaves an attached sampler
     * as it is; detaching writes version 1 again */
    ck_assert_int_eq(sigma_session_set_sampler(a, NULL), SIGMA_OK);
    size_t len1;
    unsigned char *img1 = save_mem(a, &len1);
    ck_assert_uint_eq(img1[8], 1);
    ck_assert_int_eq(sigma_session_load_memory(c, img, len), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_reset(sc, 5), SIGMA_OK);
    ck_assert_int_eq(sigma_session_set_sampler(c, sc), SIGMA_OK);
    ck_assert_int_eq(sigma_session_load_memory(c, img1, len1), SIGMA_OK);
    sigma_sampler *sd = open_sampler(m, 5, 8); /* what sc is after its reset */
    sigma_token x[4], y[4];
    sample_run(c, sc, 4, x);
    ck_assert_int_eq(sigma_session_load_memory(c, img1, len1), SIGMA_OK);
    sample_run(c, sd, 4, y);
    ck_assert_mem_eq(x, y, sizeof x);

    /* a sampler of another model cannot be attached */
    uint8_t *mem2;
    sigma_model *m2 = tm_open(_i == 2 ? 1 : 0, &mem2);
    sigma_sampler *s2 = open_sampler(m2, 1, 8);
    ck_assert_int_eq(sigma_session_set_sampler(b, s2), SIGMA_E_MISMATCH);
    ck_assert_ptr_nonnull(strstr(sigma_session_last_error(b), "another model"));
    ck_assert_int_eq(sigma_session_set_sampler(NULL, s2), SIGMA_E_INVALID_ARG);
    sigma_sampler_close(s2);
    sigma_model_close(m2);
    free(mem2);

    free(img);
    free(img1);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_session_close(c);
    sigma_sampler_close(sa);
    sigma_sampler_close(sb);
    sigma_sampler_close(sc);
    sigma_sampler_close(sd);
    sigma_model_close(m);
    free(mem);
}
END_TEST

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* After editing a stored (level 0) image: fix both checksums. */
static void fix_crcs(unsigned char *img, size_t len) {
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, img + 104, (uInt)(len - 104));
    put32(img + 96, (uint32_t)c);
    fix_header_crc(img);
}

/* The saved image of s (stored), to compare before/after failed loads. */
static unsigned char *state_of(sigma_session *s, size_t *len) { return save_mem(s, len); }

static void unchanged(sigma_session *s, const unsigned char *ref, size_t ref_len) {
    size_t n;
    unsigned char *now = state_of(s, &n);
    ck_assert_uint_eq(n, ref_len);
    ck_assert_msg(memcmp(now, ref, n) == 0, "a failed load changed the session or its sampler");
    free(now);
}

START_TEST(test_sampler_damage) {
    uint8_t *mem;
    sigma_model *m = tm_open(1, &mem);
    sigma_session *a;
    sigma_sampler *sa;
    prepare_sampled(m, 0, 8, &a, &sa); /* stored: fields can be edited in place */
    size_t len;
    unsigned char *img = save_mem(a, &len);
    const size_t smp_len = 88 + 8 * 4;      /* full window of 8 */
    const size_t so = len - smp_len;        /* sampler state in the file */
    ck_assert_uint_eq(get32(img + so - 4), smp_len);
    ck_assert(memcmp(img + so, "SMP1", 4) == 0);
    sigma_session *a1;
    sigma_sampler *sa1;
    prepare_sampled(m, 1, 8, &a1, &sa1);
    size_t zlen;
    unsigned char *zimg = save_mem(a1, &zlen); /* compressed */

    /* the target: another session and sampler in their own state */
    sigma_session *b = open_session(m, 64, 0);
    sigma_sampler *sb = open_sampler(m, 7, 5);
    ck_assert_int_eq(sigma_session_eval(b, PROMPT + 3, 4), SIGMA_OK);
    sigma_token t[3];
    sample_run(b, sb, 3, t);
    ck_assert_int_eq(sigma_session_set_sampler(b, sb), SIGMA_OK);
    size_t ref_len;
    unsigned char *ref = state_of(b, &ref_len);

    /* truncated anywhere, compressed or not */
    for (size_t n = 0; n < len; n++)
        ck_assert_int_eq(sigma_session_load_memory(b, img, n), SIGMA_E_FORMAT);
    for (size_t n = 0; n < zlen; n++)
        ck_assert_int_eq(sigma_session_load_memory(b, zimg, n), SIGMA_E_FORMAT);
    unchanged(b, ref, ref_len);
    /* every bit of the sampler section (and its length) flipped: the
     * payload CRC catches it */
    unsigned char *bad = malloc(len);
    for (size_t i = so - 4; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, img, len);
            bad[i] ^= (unsigned char)(1u << bit);
            ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
        }
    }
    for (size_t i = 104; i < zlen; i += 3) {
        unsigned char *zb = malloc(zlen);
        memcpy(zb, zimg, zlen);
        zb[i] ^= (unsigned char)(1u << (i % 8));
        ck_assert_int_ne(sigma_session_load_memory(b, zb, zlen), SIGMA_OK);
        free(zb);
    }
    unchanged(b, ref, ref_len);

    /* valid checksums, bad sampler fields */
    struct {
        const char *what;
        size_t off;       /* from the start of the sampler state; SIZE_MAX: special */
        uint32_t value;
        int status;
    } cases[] = {
        {"magic", 0, 0x32504d53u /* "SMP2" */, SIGMA_E_FORMAT},
        {"vocabulary", 4, TM_VOCAB + 1, SIGMA_E_MISMATCH},
        {"NaN temperature", 8, 0x7fc00000u, SIGMA_E_FORMAT},
        {"NaN top_p", 16, 0x7fc00000u, SIGMA_E_FORMAT},
        {"zero repeat penalty", 24, 0, SIGMA_E_FORMAT},
        {"infinite frequency penalty", 28, 0x7f800000u, SIGMA_E_FORMAT},
        {"huge window", 36, 0x7fffffffu, SIGMA_E_FORMAT},
        {"window vs capacity", 36, 9, SIGMA_E_FORMAT},
        {"capacity", 80, 9, SIGMA_E_FORMAT},
        {"history longer than the window", 84, 9, SIGMA_E_FORMAT},
        {"history shorter than its bytes", 84, 7, SIGMA_E_FORMAT},
        {"history token out of range", 88 + 4 * 3, TM_VOCAB, SIGMA_E_FORMAT},
        {"negative history token", 88, 0xffffffffu, SIGMA_E_FORMAT},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(bad, img, len);
        put32(bad + so + cases[k].off, cases[k].value);
        fix_crcs(bad, len);
        int st = sigma_session_load_memory(b, bad, len);
        ck_assert_msg(st == cases[k].status, "%s: status %d", cases[k].what, st);
        ck_assert_ptr_nonnull(strstr(sigma_session_last_error(b), "sampler"));
        /* with no sampler attached, the (bad) sampler state is ignored */
        sigma_session *c = open_session(m, 64, 0);
        ck_assert_int_eq(sigma_session_load_memory(c, bad, len), SIGMA_OK);
        sigma_session_close(c);
    }
    /* all-zero RNG state */
    memcpy(bad, img, len);
    memset(bad + so + 48, 0, 32);
    fix_crcs(bad, len);
    ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
    /* the section length disagrees with the payload */
    const uint32_t lens[] = {(uint32_t)smp_len - 1, (uint32_t)smp_len + 1, 0, 0xffffffffu};
    for (size_t k = 0; k < 4; k++) {
        memcpy(bad, img, len);
        put32(bad + so - 4, lens[k]);
        fix_crcs(bad, len);
        ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
    }
    /* the KV length swallows part of the sampler section */
    {
        size_t kv_at = 104 + 12 * 4 + 5 * 4 + TM_VOCAB * 4; /* 17 tokens, then logits */
        memcpy(bad, img, len);
        put32(bad + kv_at, get32(bad + kv_at) + 4);
        fix_crcs(bad, len);
        ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
    }
    /* a version 1 header cannot carry a sampler section */
    memcpy(bad, img, len);
    bad[8] = 1;
    fix_crcs(bad, len);
    ck_assert_int_eq(sigma_session_load_memory(b, bad, len), SIGMA_E_FORMAT);
    unchanged(b, ref, ref_len);

    /* and after all that, b and its sampler take the good file */
    ck_assert_int_eq(sigma_session_load_memory(b, img, len), SIGMA_OK);
    size_t now_len;
    unsigned char *now = state_of(b, &now_len);
    ck_assert_uint_eq(now_len, len);
    ck_assert_mem_eq(now, img, len);
    free(now);
    free(bad);
    free(ref);
    free(img);
    free(zimg);
    sigma_session_close(a);
    sigma_session_close(a1);
    sigma_session_close(b);
    sigma_sampler_close(sa);
    sigma_sampler_close(sa1);
    sigma_sampler_close(sb);
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
    tcase_add_test(tc, test_default_stored);
    tcase_add_test(tc, test_damage_is_refused);
    tcase_add_test(tc, test_args);
    tcase_add_loop_test(tc, test_sampler_roundtrip, 0, 3);
    tcase_add_test(tc, test_sampler_damage);
    tcase_add_loop_test(tc, test_window_past_ctx, 0, 4);
    tcase_add_test(tc, test_window_big_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
