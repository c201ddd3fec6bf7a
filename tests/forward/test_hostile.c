/* Hostile tensor data (docs/model-format.md, "Non-finite and hostile tensor
 * data"): for every weight type the loader takes, both architectures, every
 * tensor role and every pattern (+inf, -inf, NaN, largest finite, denormal
 * in a block's scales or an element), the model opens, and
 *   - eval either succeeds with finite logits or fails with SIGMA_E_NUMERIC
 *     naming where the non-finite values first appeared, leaving the
 *     session at its old position and usable;
 *   - a NaN or infinite pattern never yields SIGMA_OK with non-finite logits;
 *   - sampling returns a token inside the vocabulary;
 * and nothing triggers a sanitizer (this runs in the ASan+UBSan build too). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostile_model.h"
#include "model/model.h"
#include "sigma/sigma.h"

/* Offset of a tensor's data inside the image (the model reads the caller's
 * image in place). */
static size_t tensor_offset(const uint8_t *mem, size_t size, const char *name, uint32_t *type) {
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(mem, size, &mp, &m), SIGMA_OK);
    const sg_tensor *t = sg_gguf_tensor(m->gguf, name);
    ck_assert_ptr_nonnull(t);
    const uint8_t *d = t->data;
    size_t off = (size_t)(d - mem);
    *type = t->type;
    sigma_model_close(m);
    return off;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

typedef struct tally {
    int ok, numeric, unsupported;
} tally;

/* One poisoned model: open, eval, sample, recover. */
static void run_case(int kind, uint32_t wtype, hm_role role, hm_pattern pat, const uint8_t *base,
                     size_t size, tally *t) {
    const char *tname = hm_role_tensor(kind, role);
    if (!tname) return;
    uint32_t ttype;
    size_t off = tensor_offset(base, size, tname, &ttype);
    uint8_t *img = malloc(size);
    ck_assert_ptr_nonnull(img);
    memcpy(img, base, size);
    hm_poison(img + off, ttype, pat);

    char what[160];
    snprintf(what, sizeof what, "%s type %u, %s = %s", kind ? "sigma" : "llama", wtype,
             hm_role_name(role), hm_pattern_name(pat));
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    int st = sigma_model_open_memory(img, size, &mp, &m);
    ck_assert_msg(st == SIGMA_OK, "%s: open failed (%d)", what, st);
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 64;
    sp.n_threads = 2;
    sp.logits_all = 1;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &sp, &s), SIGMA_OK);

    const sigma_token toks[4] = {1, 0, 5, 9}; /* token 0: the poisoned embedding row */
    st = sigma_session_eval(s, toks, 4);
    uint32_t pos = 99;
    ck_assert_int_eq(sigma_session_position(s, &pos), SIGMA_OK);
    const float *lg = NULL;
    if (st == SIGMA_OK) {
        t->ok++;
        ck_assert_uint_eq(pos, 4);
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(sigma_session_logits(s, i, &lg), SIGMA_OK);
            ck_assert_msg(all_finite(lg, HM_VOCAB), "%s: SIGMA_OK with non-finite logits (row %d)",
                          what, i);
        }
        /* sampling stays inside the vocabulary */
        sigma_sampler_params pp;
        sigma_sampler_params_init(&pp, sizeof pp);
        pp.temperature = 1.0f;
        sigma_sampler *smp = NULL;
        ck_assert_int_eq(sigma_sampler_open(m, &pp, &smp), SIGMA_OK);
        sigma_token tok = -1;
        ck_assert_int_eq(sigma_sampler_sample(smp, lg, &tok), SIGMA_OK);
        ck_assert(tok >= 0 && tok < HM_VOCAB);
        sigma_sampler_close(smp);
    } else {
        ck_assert_msg(st == SIGMA_E_NUMERIC, "%s: eval returned %d (%s): %s", what, st,
                      sigma_strerror(st), sigma_session_last_error(s));
        t->numeric++;
        const char *msg = sigma_session_last_error(s);
        ck_assert_msg(strstr(msg, "layer") || strstr(msg, "embedding") || strstr(msg, "output"),
                      "%s: message does not say where: %s", what, msg);
        ck_assert_msg(strstr(msg, "not finite") != NULL, "%s: message: %s", what, msg);
        /* the session is where it was and usable */
        ck_assert_uint_eq(pos, 0);
        ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_E_STATE);
        const sigma_token other[2] = {1, 7};
        st = sigma_session_eval(s, other, 2);
        ck_assert_msg(st == SIGMA_OK || st == SIGMA_E_NUMERIC, "%s: second eval %d", what, st);
        ck_assert_int_eq(sigma_session_rewind(s, 0), SIGMA_OK);
    }
    if (pat == HM_NAN || pat == HM_POS_INF || pat == HM_NEG_INF) {
        /* generation on top never leaves the vocabulary nor loops */
        sigma_generate_params gp;
        sigma_generate_params_init(&gp, sizeof gp);
        gp.max_tokens = 3;
        sigma_session_rewind(s, 0);
        st = sigma_session_generate(s, "ab cd", &gp, NULL);
        ck_assert_msg(st == SIGMA_OK || st == SIGMA_E_NUMERIC, "%s: generate %d (%s)", what, st,
                      sigma_session_last_error(s));
    }
    sigma_session_close(s);
    sigma_model_close(m);
    free(img);
}

/* Every type the builder writes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) is read. */
static int type_supported(const uint8_t *mem, size_t size) {
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    int st = sigma_model_open_memory(mem, size, &mp, &m);
    if (st == SIGMA_OK) sigma_model_close(m);
    ck_assert_msg(st == SIGMA_OK, "baseline open: %d", st);
    return 1;
}

START_TEST(test_every_type_role_pattern) {
    int kind = _i / (int)hm_n_types;
    uint32_t type = hm_types[_i % (int)hm_n_types];
    uint8_t *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(hm_build(kind, type, 2, &base, &size), 0);
    if (!type_supported(base, size)) {
        free(base);
        return;
    }
    /* the untouched model is finite */
    tally t = {0, 0, 0};
    for (int r = 0; r < HM_N_ROLES; r++)
        for (int p = 0; p < HM_N_PATTERNS; p++)
            run_case(kind, type, (hm_role)r, (hm_pattern)p, base, size, &t);
    ck_assert_int_gt(t.ok + t.numeric, 0);
    free(base);
}
END_TEST

/* The untouched models evaluate to finite logits (so the patterns above are
 * what makes a difference). */
START_TEST(test_baseline_finite) {
    int kind = _i / (int)hm_n_types;
    uint32_t type = hm_types[_i % (int)hm_n_types];
    uint8_t *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(hm_build(kind, type, 2, &base, &size), 0);
    if (!type_supported(base, size)) {
        free(base);
        return;
    }
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(base, size, &mp, &m), SIGMA_OK);
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, NULL, &s), SIGMA_OK);
    const sigma_token toks[4] = {1, 0, 5, 9};
    ck_assert_int_eq(sigma_session_eval(s, toks, 4), SIGMA_OK);
    const float *lg;
    ck_assert_int_eq(sigma_session_logits(s, -1, &lg), SIGMA_OK);
    ck_assert(all_finite(lg, HM_VOCAB));
    sigma_session_close(s);
    sigma_model_close(m);
    free(base);
}
END_TEST

/* A NaN in the scale of the embedding row: the message names the embedding
 * and the token; the session stays at position 0. */
START_TEST(test_message_names_place) {
    uint8_t *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(hm_build(0, 8 /* Q8_0 */, 2, &base, &size), 0);
    uint32_t ty;
    size_t off = tensor_offset(base, size, "blk.1.ffn_down.weight", &ty);
    hm_poison(base + off, ty, HM_NAN);
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(base, size, &mp, &m), SIGMA_OK);
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, NULL, &s), SIGMA_OK);
    const sigma_token toks[3] = {1, 4, 5};
    ck_assert_int_eq(sigma_session_eval(s, toks, 3), SIGMA_E_NUMERIC);
    const char *msg = sigma_session_last_error(s);
    ck_assert_msg(strstr(msg, "layer 1") != NULL, "%s", msg);
    ck_assert_msg(strstr(msg, "ffn") != NULL, "%s", msg);
    uint32_t pos = 9;
    sigma_session_position(s, &pos);
    ck_assert_uint_eq(pos, 0);
    sigma_session_close(s);
    sigma_model_close(m);
    free(base);
}
END_TEST

/* In one batched call, a session whose token hits a NaN embedding row fails
 * alone with SIGMA_E_NUMERIC; the other session advances with the same
 * logits it gets alone. */
START_TEST(test_batch_numeric_isolated) {
    uint8_t *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(hm_build(1, 8 /* Q8_0 */, 2, &base, &size), 0);
    uint32_t ty;
    size_t off = tensor_offset(base, size, "token_embd.weight", &ty);
    hm_poison(base + off, ty, HM_NAN); /* token 0's first block */
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(base, size, &mp, &m), SIGMA_OK);
    sigma_session *a = NULL, *b = NULL, *ref = NULL;
    ck_assert_int_eq(sigma_session_open(m, NULL, &a), SIGMA_OK);
    ck_assert_int_eq(sigma_session_open(m, NULL, &b), SIGMA_OK);
    ck_assert_int_eq(sigma_session_open(m, NULL, &ref), SIGMA_OK);
    const sigma_token ta[3] = {1, 0, 4}, tb[3] = {1, 5, 6};
    ck_assert_int_eq(sigma_session_eval(ref, tb, 3), SIGMA_OK);
    sigma_session *ss[2] = {a, b};
    const sigma_token *tt[2] = {ta, tb};
    size_t nn[2] = {3, 3};
    int sts[2] = {99, 99};
    ck_assert_int_eq(sigma_sessions_eval(ss, tt, nn, 2, sts), SIGMA_E_NUMERIC);
    ck_assert_int_eq(sts[0], SIGMA_E_NUMERIC);
    ck_assert_int_eq(sts[1], SIGMA_OK);
    ck_assert_msg(strstr(sigma_session_last_error(a), "embedding") != NULL, "%s",
                  sigma_session_last_error(a));
    uint32_t pa = 9, pb = 9;
    sigma_session_position(a, &pa);
    sigma_session_position(b, &pb);
    ck_assert_uint_eq(pa, 0);
    ck_assert_uint_eq(pb, 3);
    const float *lb, *lr;
    ck_assert_int_eq(sigma_session_logits(b, -1, &lb), SIGMA_OK);
    ck_assert_int_eq(sigma_session_logits(ref, -1, &lr), SIGMA_OK);
    ck_assert(memcmp(lb, lr, HM_VOCAB * sizeof *lb) == 0);
    sigma_session_close(a);
    sigma_session_close(b);
    sigma_session_close(ref);
    sigma_model_close(m);
    free(base);
}
END_TEST

/* The sampler on hostile logits: never a token outside the vocabulary, a
 * clean status when no token is possible, with and without penalties. */
START_TEST(test_sampler_hostile_logits) {
    uint8_t *base = NULL;
    size_t size = 0;
    ck_assert_int_eq(hm_build(0, 0, 1, &base, &size), 0);
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open_memory(base, size, &mp, &m), SIGMA_OK);
    float lg[HM_VOCAB];
    const float big = 3.4028234e38f;
    for (int setting = 0; setting < 4; setting++) {
        sigma_sampler_params pp;
        sigma_sampler_params_init(&pp, sizeof pp);
        pp.temperature = setting == 0 ? 0.0f : setting == 1 ? 1.0f : 1e-20f;
        if (setting == 3) {
            pp.repeat_penalty = 0.5f; /* divides positive logits by 0.5: FLT_MAX -> inf */
            pp.frequency_penalty = 1e38f;
            pp.top_k = 0;
            pp.top_p = 1.0f;
            pp.min_p = 0.0f;
        }
        sigma_sampler *smp = NULL;
        ck_assert_int_eq(sigma_sampler_open(m, &pp, &smp), SIGMA_OK);
        for (int c = 0; c < 7; c++) {
            for (int i = 0; i < HM_VOCAB; i++) {
                switch (c) {
                case 0: lg[i] = NAN; break;
                case 1: lg[i] = -INFINITY; break;
                case 2: lg[i] = i % 3 == 0 ? NAN : i % 3 == 1 ? INFINITY : -INFINITY; break;
                case 3: lg[i] = i == 17 ? INFINITY : 1.0f; break;
                case 4: lg[i] = i % 2 ? big : -big; break;
                case 5: lg[i] = i == 5 ? NAN : 1e-45f * (float)i; break;
                default: lg[i] = i % 2 ? INFINITY : NAN; break;
                }
            }
            for (int rep = 0; rep < 4; rep++) {
                sigma_token t = -1;
                int st = sigma_sampler_sample(smp, lg, &t);
                if (c <= 1) {
                    ck_assert_msg(st == SIGMA_E_INVALID_ARG, "setting %d case %d: %d", setting, c, st);
                } else {
                    ck_assert_msg(st == SIGMA_OK, "setting %d case %d: %d", setting, c, st);
                    ck_assert_msg(t >= 0 && t < HM_VOCAB, "setting %d case %d: token %d", setting,
                                  c, t);
                    if (c == 3 && setting != 3) ck_assert_int_eq(t, 17);
                }
                if (st == SIGMA_OK) sigma_sampler_accept(smp, t);
            }
        }
        sigma_sampler_close(smp);
    }
    sigma_model_close(m);
    free(base);
}
END_TEST

int main(void) {
    Suite *su = suite_create("hostile");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_baseline_finite, 0, 2 * (int)hm_n_types);
    tcase_add_loop_test(tc, test_every_type_role_pattern, 0, 2 * (int)hm_n_types);
    tcase_add_test(tc, test_message_names_place);
    tcase_add_test(tc, test_sampler_hostile_logits);
    tcase_add_test(tc, test_batch_numeric_isolated);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
