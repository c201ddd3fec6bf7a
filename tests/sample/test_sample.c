/* Sampling distributions, penalties, seeding, chat rendering and the
 * stop-string holdback. The sampler tests run on a hand-made model struct
 * (only the vocabulary size and the allocator matter to a sampler). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/generate.h"

static struct sigma_model *fake_new(uint32_t n_vocab) {
    struct sigma_model *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    sg_alloc_init(&m->alloc, NULL);
    m->hp.n_vocab = n_vocab;
    pthread_mutex_init(&m->err_lock, NULL);
    return m;
}

static void fake_free(struct sigma_model *m) {
    pthread_mutex_destroy(&m->err_lock);
    free(m);
}

static sigma_sampler *open_sampler(struct sigma_model *m, float temp, int32_t top_k, float top_p,
                                   float min_p, uint64_t seed) {
    sigma_sampler_params p;
    ck_assert_int_eq(sigma_sampler_params_init(&p, sizeof p), SIGMA_OK);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    sigma_sampler *s = NULL;
    ck_assert_int_eq(sigma_sampler_open(m, &p, &s), SIGMA_OK);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(test_params_init) {
    sigma_sampler_params p;
    memset(&p, 0xAB, sizeof p);
    ck_assert_int_eq(sigma_sampler_params_init(&p, sizeof p), SIGMA_OK);
    ck_assert_uint_eq(p.struct_size, sizeof p);
    ck_assert(fabsf(p.temperature - 0.8f) < 1e-6f);
    ck_assert_int_eq(p.top_k, 40);
    ck_assert(fabsf(p.top_p - 0.95f) < 1e-6f);
    ck_assert(fabsf(p.min_p - 0.05f) < 1e-6f);
    ck_assert(p.repeat_penalty == 1.0f);
    ck_assert(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f);
    ck_assert_int_eq(p.penalty_last_n, 64);
    ck_assert_uint_eq(p.seed, 0xC0FFEE);
    ck_assert_int_eq(sigma_sampler_params_init(NULL, sizeof p), SIGMA_E_INVALID_ARG);

    sigma_generate_params g;
    memset(&g, 0xAB, sizeof g);
    ck_assert_int_eq(sigma_generate_params_init(&g, sizeof g), SIGMA_OK);
    ck_assert_int_eq(g.max_tokens, 256);
    ck_assert_ptr_null(g.sampler);
    ck_assert_ptr_null(g.stop_strings);
    ck_assert_ptr_null(g.on_piece);
    ck_assert_uint_eq(g.tokenize_flags, SIGMA_TOKENIZE_ADD_SPECIAL);

    /* an older, shorter struct: nothing past it is written */
    struct {
        sigma_sampler_params p;
        unsigned char guard[16];
    } old;
    memset(&old, 0x5A, sizeof old);
    size_t osz = offsetof(sigma_sampler_params, top_k);
    ck_assert_int_eq(sigma_sampler_params_init(&old.p, osz), SIGMA_OK);
    ck_assert_uint_eq(old.p.struct_size, osz);
    const unsigned char *b = (const unsigned char *)&old.p;
    for (size_t i = osz; i < sizeof old; i++) ck_assert_uint_eq(b[i], 0x5A);
}
END_TEST

START_TEST(test_bad_params) {
    struct sigma_model *m = fake_new(8);
    sigma_sampler_params p;
    sigma_sampler *s = (sigma_sampler *)1;
    sigma_sampler_params_init(&p, sizeof p);
    p.temperature = NAN;
    ck_assert_int_eq(sigma_sampler_open(m, &p, &s), SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(s);
    sigma_sampler_params_init(&p, sizeof p);
    p.repeat_penalty = 0.0f;
    ck_assert_int_eq(sigma_sampler_open(m, &p, &s), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sampler_open(NULL, &p, &s), SIGMA_E_INVALID_ARG);
    /* NULL params = defaults */
    ck_assert_int_eq(sigma_sampler_open(m, NULL, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_accept(s, 8), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sampler_accept(s, -1), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_sampler_accept(s, 7), SIGMA_OK);
    sigma_token t;
    ck_assert_int_eq(sigma_sampler_sample(s, NULL, &t), SIGMA_E_INVALID_ARG);
    float all_ninf[8];
    for (int i = 0; i < 8; i++) all_ninf[i] = -INFINITY;
    ck_assert_int_eq(sigma_sampler_sample(s, all_ninf, &t), SIGMA_E_INVALID_ARG);
    sigma_sampler_close(s);
    sigma_sampler_close(NULL);
    fake_free(m);
}
END_TEST

START_TEST(test_greedy) {
    struct sigma_model *m = fake_new(6);
    sigma_sampler *s = open_sampler(m, 0.0f, 40, 0.95f, 0.05f, 1);
    const float l[6] = {0.5f, 2.0f, -1.0f, 3.0f, 3.0f, 1.0f};
    for (int i = 0; i < 50; i++) {
        sigma_token t = -1;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        ck_assert_int_eq(t, 3); /* tie 3/4: lowest id */
    }
    const float l2[6] = {NAN, -INFINITY, -5.0f, -7.0f, NAN, -6.0f};
    sigma_token t = -1;
    ck_assert_int_eq(sigma_sampler_sample(s, l2, &t), SIGMA_OK);
    ck_assert_int_eq(t, 2);
    sigma_sampler_close(s);
    /* negative temperature is greedy too */
    s = open_sampler(m, -1.0f, 0, 1.0f, 0.0f, 1);
    ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
    ck_assert_int_eq(t, 3);
    sigma_sampler_close(s);
    fake_free(m);
}
END_TEST

START_TEST(test_top_k) {
    enum { N = 50 };
    struct sigma_model *m = fake_new(N);
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)((i * 37) % N) * 0.05f; /* a permutation */
    /* top 5 = the five largest values: (i*37)%50 in {45..49} */
    int in_top[N] = {0};
    for (int i = 0; i < N; i++) in_top[i] = ((i * 37) % N) >= 45;
    sigma_sampler *s = open_sampler(m, 2.0f, 5, 1.0f, 0.0f, 42);
    int seen[N] = {0};
    for (int d = 0; d < 20000; d++) {
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        ck_assert_msg(t >= 0 && t < N && in_top[t], "token %d outside the top 5", t);
        seen[t]++;
    }
    for (int i = 0; i < N; i++)
        if (in_top[i]) ck_assert_msg(seen[i] > 0, "top-5 token %d never drawn", i);
    sigma_sampler_close(s);
    /* top_k = 1 is greedy */
    s = open_sampler(m, 5.0f, 1, 1.0f, 0.0f, 7);
    for (int d = 0; d < 200; d++) {
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        ck_assert_int_eq((t * 37) % N, 49);
    }
    sigma_sampler_close(s);
    fake_free(m);
}
END_TEST

/* probabilities 1/2, 1/4, 1/8, 1/16, 1/32, 1/32 */
static void halving_logits(float *l) {
    const double p[6] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.03125};
    for (int i = 0; i < 6; i++) l[i] = (float)log(p[i]);
}

START_TEST(test_top_p_exact) {
    struct sigma_model *m = fake_new(6);
    float l[6];
    halving_logits(l);
    double pr[6];
    struct {
        float top_p;
        int keep;
    } cases[] = {{0.4f, 1}, {0.6f, 2}, {0.74f, 2}, {0.76f, 3}, {0.9f, 4},
                 {0.95f, 5}, {0.99f, 6}, {1.0f, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sigma_sampler *s = open_sampler(m, 1.0f, 0, cases[c].top_p, 0.0f, 1);
        ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
        double mass = 0;
        for (int i = 0; i < cases[c].keep; i++) mass += ldexp(1.0, -(i + 1));
        if (cases[c].keep == 6) mass = 1.0;
        for (int i = 0; i < 6; i++) {
            double want = 0.0;
            if (i < cases[c].keep) want = (i == 5 ? 0.03125 : ldexp(1.0, -(i + 1))) / mass;
            ck_assert_msg(fabs(pr[i] - want) < 1e-6, "top_p %.2f: p[%d]=%g want %g",
                          (double)cases[c].top_p, i, pr[i], want);
        }
        /* draws never leave the nucleus */
        for (int d = 0; d < 2000; d++) {
            sigma_token t;
            ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
            ck_assert_int_lt(t, cases[c].keep);
        }
        sigma_sampler_close(s);
    }
    fake_free(m);
}
END_TEST

START_TEST(test_min_p_exact) {
    struct sigma_model *m = fake_new(6);
    float l[6];
    halving_logits(l);
    double pr[6];
    /* p_max = 1/2: min_p 0.2 -> threshold 0.1 keeps 1/2, 1/4, 1/8 */
    struct {
        float min_p;
        int keep;
    } cases[] = {{0.2f, 3}, {0.26f, 2}, {0.24f, 3}, {0.9f, 1}, {0.1f, 4}, {0.01f, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sigma_sampler *s = open_sampler(m, 1.0f, 0, 1.0f, cases[c].min_p, 3);
        ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
        double mass = 0;
        for (int i = 0; i < cases[c].keep; i++) mass += (i == 5 ? 0.03125 : ldexp(1.0, -(i + 1)));
        for (int i = 0; i < 6; i++) {
            double want = i < cases[c].keep ? (i == 5 ? 0.03125 : ldexp(1.0, -(i + 1))) / mass : 0;
            ck_assert_msg(fabs(pr[i] - want) < 1e-6, "min_p %.2f: p[%d]=%g want %g",
                          (double)cases[c].min_p, i, pr[i], want);
        }
        sigma_sampler_close(s);
    }
    /* min-p is relative to the temperature-scaled distribution: at T=0.5,
     * p ~ (1/2)^2, (1/4)^2 ...: ratios 1, 1/4, 1/16; min_p 0.2 keeps 2 */
    sigma_sampler *s = open_sampler(m, 0.5f, 0, 1.0f, 0.2f, 3);
    ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
    ck_assert(fabs(pr[0] - 0.8) < 1e-6 && fabs(pr[1] - 0.2) < 1e-6 && pr[2] == 0.0);
    sigma_sampler_close(s);
    /* top-p and min-p combined: top_p 0.9 keeps 4, min_p 0.2 keeps 3 */
    s = open_sampler(m, 1.0f, 0, 0.9f, 0.2f, 3);
    ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
    ck_assert(fabs(pr[0] - 4.0 / 7) < 1e-6 && fabs(pr[2] - 1.0 / 7) < 1e-6 && pr[3] == 0.0);
    sigma_sampler_close(s);
    /* top-k then top-p: top-k 2 renormalises to 2/3, 1/3 before top-p 0.6
     * (which over the full distribution would keep 2): keeps 1 */
    s = open_sampler(m, 1.0f, 2, 0.6f, 0.0f, 3);
    ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
    ck_assert(pr[0] == 1.0 && pr[1] == 0.0);
    sigma_sampler_close(s);
    /* top-k 3 -> 4/7, 2/7, 1/7; top-p 0.8 keeps two (alone it keeps 3) */
    s = open_sampler(m, 1.0f, 3, 0.8f, 0.0f, 3);
    ck_assert_int_eq(sg_sampler_probs(s, l, pr), SIGMA_OK);
    ck_assert(fabs(pr[0] - 2.0 / 3) < 1e-6 && fabs(pr[1] - 1.0 / 3) < 1e-6 && pr[2] == 0.0);
    sigma_sampler_close(s);
    fake_free(m);
}
END_TEST

/* Empirical frequencies against softmax(l / T): chi-square over 20000
 * draws, 7 degrees of freedom; 24.32 is the 0.999 quantile. */
static void chi_square_case(float temp, uint64_t seed) {
    enum { N = 8, DRAWS = 20000 };
    struct sigma_model *m = fake_new(N);
    const float l[N] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.25f, 1.5f};
    double z = 0, p[N];
    for (int i = 0; i < N; i++) z += (p[i] = exp((double)l[i] / temp));
    for (int i = 0; i < N; i++) p[i] /= z;
    sigma_sampler *s = open_sampler(m, temp, 0, 1.0f, 0.0f, seed);
    int cnt[N] = {0};
    for (int d = 0; d < DRAWS; d++) {
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        ck_assert(t >= 0 && t < N);
        cnt[t]++;
    }
    double chi = 0;
    for (int i = 0; i < N; i++) {
        double e = p[i] * DRAWS;
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    ck_assert_msg(chi < 24.32, "T=%.2f seed %llu: chi-square %.2f", (double)temp,
                  (unsigned long long)seed, chi);
    sigma_sampler_close(s);
    fake_free(m);
}

START_TEST(test_softmax_frequencies) {
    chi_square_case(1.0f, 1);
    chi_square_case(1.0f, 12345);
    chi_square_case(0.7f, 99);
    chi_square_case(1.6f, 2024);
}
END_TEST

/* The same test must be able to fail: a distribution that is wrong by a
 * few percent is rejected. */
START_TEST(test_chi_square_detects_bias) {
    enum { N = 8, DRAWS = 20000 };
    struct sigma_model *m = fake_new(N);
    const float l[N] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.25f, 1.5f};
    double z = 0, p[N];
    /* expected distribution at T=1.15 while sampling at T=1 */
    for (int i = 0; i < N; i++) z += (p[i] = exp((double)l[i] / 1.15));
    for (int i = 0; i < N; i++) p[i] /= z;
    sigma_sampler *s = open_sampler(m, 1.0f, 0, 1.0f, 0.0f, 5);
    int cnt[N] = {0};
    for (int d = 0; d < DRAWS; d++) {
        sigma_token t;
        ck_assert_int_eq(sigma_sampler_sample(s, l, &t), SIGMA_OK);
        cnt[t]++;
    }
    double chi = 0;
    for (int i = 0; i < N; i++) {
        double e = p[i] * DRAWS;
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    ck_assert_msg(chi > 24.32, "chi-square %.2f did not detect the wrong temperature", chi);
    sigma_sampler_close(s);
    fake_free(m);
}
END_TEST

START_TEST(test_penalties) {
    struct sigma_model *m = fake_new(6);
    sigma_sampler_params p;
    sigma_sampler_params_init(&p, sizeof p);
    p.temperature = 0.0f;
    p.repeat_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.penalty_last_n = 3;
    sigma_sampler *s = NULL;
    ck_assert_int_eq(sigma_sampler_open(m, &p, &s), SIGMA_OK);
    /* history (window 3): 0 4 1 1 -> last three: 4 1 1 */
    ck_assert_int_eq(sigma_sampler_accept(s, 0), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_accept(s, 4), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_accept(s, 1), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_accept(s, 1), SIGMA_OK);
    float l[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sg_sampler_apply_penalties(s, l);
    ck_assert(l[0] == 3.0f);                       /* left the window */
    ck_assert(fabsf(l[1] - (2.0f - 1.0f - 0.25f)) < 1e-6f); /* 4/2 - 2*0.5 - 0.25 */
    ck_assert(l[2] == 1.0f && l[3] == -2.0f && l[5] == 0.0f);
    ck_assert(fabsf(l[4] - (-2.0f - 0.5f - 0.25f)) < 1e-6f); /* -1*2 - 0.5 - 0.25 */
    /* applying twice on fresh logits gives the same (counts restored) */
    float l2[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sg_sampler_apply_penalties(s, l2);
    ck_assert(memcmp(l, l2, sizeof l) == 0);
    /* greedy with penalties: token 1 (4.0) drops to 0.75, token 0 wins */
    const float l3[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sigma_token t;
    ck_assert_int_eq(sigma_sampler_sample(s, l3, &t), SIGMA_OK);
    ck_assert_int_eq(t, 0);
    /* the sampled token is recorded: window now 1 1 0 */
    float l4[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sg_sampler_apply_penalties(s, l4);
    ck_assert(fabsf(l4[0] - (1.5f - 0.5f - 0.25f)) < 1e-6f);
    ck_assert(l4[4] == -1.0f);
    /* reset clears the history */
    ck_assert_int_eq(sigma_sampler_reset(s, 9), SIGMA_OK);
    float l5[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sg_sampler_apply_penalties(s, l5);
    ck_assert(l5[0] == 3.0f && l5[1] == 4.0f);
    sigma_sampler_close(s);

    /* repeat penalty alone, no history: no change; window 0 disables */
    p.penalty_last_n = 0;
    ck_assert_int_eq(sigma_sampler_open(m, &p, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_accept(s, 1), SIGMA_OK);
    float l6[6] = {3.0f, 4.0f, 1.0f, -2.0f, -1.0f, 0.0f};
    sg_sampler_apply_penalties(s, l6);
    ck_assert(l6[1] == 4.0f);
    sigma_sampler_close(s);
    fake_free(m);
}
END_TEST

static void draw_seq(sigma_sampler *s, const float *l, sigma_token *out, int n) {
    for (int i = 0; i < n; i++) ck_assert_int_eq(sigma_sampler_sample(s, l, &out[i]), SIGMA_OK);
}

START_TEST(test_seeds) {
    enum { N = 32, D = 200 };
    struct sigma_model *m = fake_new(N);
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (float)(i % 7) * 0.3f;
    sigma_token a[D], b[D], c[D], d[D];
    sigma_sampler *s1 = open_sampler(m, 1.0f, 0, 1.0f, 0.0f, 1234);
    sigma_sampler *s2 = open_sampler(m, 1.0f, 0, 1.0f, 0.0f, 1234);
    sigma_sampler *s3 = open_sampler(m, 1.0f, 0, 1.0f, 0.0f, 1235);
    draw_seq(s1, l, a, D);
    draw_seq(s2, l, b, D);
    draw_seq(s3, l, c, D);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    /* reset reseeds: s3 reset to 1234 repeats a */
    ck_assert_int_eq(sigma_sampler_reset(s3, 1234), SIGMA_OK);
    draw_seq(s3, l, d, D);
    ck_assert(memcmp(a, d, sizeof a) == 0);
    /* two samplers interleaved do not disturb each other (no shared RNG) */
    ck_assert_int_eq(sigma_sampler_reset(s1, 77), SIGMA_OK);
    ck_assert_int_eq(sigma_sampler_reset(s2, 77), SIGMA_OK);
    for (int i = 0; i < D; i++) {
        ck_assert_int_eq(sigma_sampler_sample(s1, l, &a[i]), SIGMA_OK);
        sigma_token junk;
        ck_assert_int_eq(sigma_sampler_sample(s3, l, &junk), SIGMA_OK);
    }
    draw_seq(s2, l, b, D);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    sigma_sampler_close(s1);
    sigma_sampler_close(s2);
    sigma_sampler_close(s3);
    fake_free(m);
}
END_TEST

/* ---- chat ---------------------------------------------------------------- */

static const char *SMOL_TMPL =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

static const char *CHATML_TMPL =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

static const char *LLAMA3_TMPL =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "
    "bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

static char *render(const char *tmpl, const sigma_chat_message *m, size_t n, int add) {
    size_t len = 0;
    char small[4];
    int st = sg_chat_render_template(tmpl, tmpl ? strlen(tmpl) : 0, m, n, add, small,
                                     sizeof small, &len);
    if (len < sizeof small) {
        ck_assert_int_eq(st, SIGMA_OK);
    } else {
        ck_assert_int_eq(st, SIGMA_E_BUFFER_TOO_SMALL);
    }
    char *buf = malloc(len + 1);
    size_t len2 = 0;
    ck_assert_int_eq(sg_chat_render_template(tmpl, tmpl ? strlen(tmpl) : 0, m, n, add, buf,
                                             len + 1, &len2),
                     SIGMA_OK);
    ck_assert_uint_eq(len, len2);
    ck_assert_uint_eq(strlen(buf), len);
    /* exactly len bytes fit too (no NUL then) */
    char *exact = malloc(len + 1);
    exact[len] = 'Z';
    ck_assert_int_eq(sg_chat_render_template(tmpl, tmpl ? strlen(tmpl) : 0, m, n, add, exact,
                                             len, &len2),
                     SIGMA_OK);
    ck_assert(memcmp(exact, buf, len) == 0 && exact[len] == 'Z');
    free(exact);
    return buf;
}

START_TEST(test_chat_detect) {
    ck_assert_int_eq(sg_chat_detect(SMOL_TMPL, strlen(SMOL_TMPL)), SG_CHAT_CHATML);
    ck_assert_int_eq(sg_chat_detect(CHATML_TMPL, strlen(CHATML_TMPL)), SG_CHAT_CHATML);
    ck_assert_int_eq(sg_chat_detect(LLAMA3_TMPL, strlen(LLAMA3_TMPL)), SG_CHAT_LLAMA3);
    ck_assert_int_eq(sg_chat_detect(NULL, 0), SG_CHAT_PLAIN);
    ck_assert_int_eq(sg_chat_detect("{{ messages }}", 14), SG_CHAT_PLAIN);
    /* the length bounds the search */
    ck_assert_int_eq(sg_chat_detect("ab<|im_start|>", 5), SG_CHAT_PLAIN);
}
END_TEST

START_TEST(test_chat_chatml) {
    sigma_chat_message m[3] = {{"user", "What is the capital of France?"},
                               {"assistant", "Paris."},
                               {"user", "And of Spain?"}};
    char *s = render(SMOL_TMPL, m, 1, 1);
    ck_assert_str_eq(s, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                        "trained by Hugging Face<|im_end|>\n"
                        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                        "<|im_start|>assistant\n");
    free(s);
    s = render(SMOL_TMPL, m, 3, 0);
    ck_assert_str_eq(s, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                        "trained by Hugging Face<|im_end|>\n"
                        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                        "<|im_start|>assistant\nParis.<|im_end|>\n"
                        "<|im_start|>user\nAnd of Spain?<|im_end|>\n");
    free(s);
    /* an explicit system message replaces the default */
    sigma_chat_message ms[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    s = render(SMOL_TMPL, ms, 2, 1);
    ck_assert_str_eq(s, "<|im_start|>system\nBe brief.<|im_end|>\n"
                        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    /* plain ChatML has no default system message */
    s = render(CHATML_TMPL, m, 1, 1);
    ck_assert_str_eq(s, "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                        "<|im_start|>assistant\n");
    free(s);
    s = render(CHATML_TMPL, m, 0, 1);
    ck_assert_str_eq(s, "<|im_start|>assistant\n");
    free(s);
    s = render(CHATML_TMPL, m, 0, 0);
    ck_assert_str_eq(s, "");
    free(s);
}
END_TEST

START_TEST(test_chat_llama3) {
    sigma_chat_message m[3] = {{"system", "Be brief."}, {"user", "  Hi there \n"},
                               {"assistant", "Hello!"}};
    char *s = render(LLAMA3_TMPL, m, 3, 1);
    ck_assert_str_eq(s, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    free(s);
    s = render(LLAMA3_TMPL, m + 1, 1, 0);
    ck_assert_str_eq(s, "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>");
    free(s);
}
END_TEST

START_TEST(test_chat_plain) {
    sigma_chat_message m[3] = {{"system", "Be brief."}, {"user", "Hi"}, {"Narrator", "x"}};
    char *s = render(NULL, m, 3, 1);
    ck_assert_str_eq(s, "System: Be brief.\nUser: Hi\nNarrator: x\nAssistant:");
    free(s);
    s = render("{{ unknown }}", m + 1, 1, 0);
    ck_assert_str_eq(s, "User: Hi\n");
    free(s);
    /* bad arguments */
    size_t len;
    char buf[64];
    sigma_chat_message bad[1] = {{NULL, "x"}};
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, bad, 1, 1, buf, sizeof buf, &len),
                     SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, NULL, 1, 1, buf, sizeof buf, &len),
                     SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, m, 1, 1, buf, sizeof buf, NULL),
                     SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, m, 1, 1, NULL, 10, &len),
                     SIGMA_E_INVALID_ARG);
    /* size query with NULL/0 */
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, m, 1, 1, NULL, 0, &len),
                     SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, strlen("System: Be brief.\nAssistant:"));
    /* a too-small buffer is left untouched */
    memset(buf, 'q', sizeof buf);
    ck_assert_int_eq(sg_chat_render_template(NULL, 0, m, 1, 1, buf, 10, &len),
                     SIGMA_E_BUFFER_TOO_SMALL);
    ck_assert_int_eq(buf[0], 'q');
}
END_TEST

/* ---- stop strings ---------------------------------------------------------- */

typedef struct collector {
    char text[1024];
    size_t len;
} collector;

static void put(collector *c, const char *s, size_t n) {
    ck_assert_uint_le(c->len + n, sizeof c->text - 1);
    if (n) memcpy(c->text + c->len, s, n);
    c->len += n;
    c->text[c->len] = '\0';
}

/* Feed pieces; record what is emitted after each push in `steps`
 * ("|"-separated); finish at the end unless stopped. */
static int run_stopper(const char *const *stops, size_t n_stops, const char *const *pieces,
                       size_t n_pieces, collector *all, collector *steps) {
    sg_alloc a;
    sg_alloc_init(&a, NULL);
    sg_stopper st;
    sg_stopper_init(&st, &a, stops, n_stops);
    memset(all, 0, sizeof *all);
    memset(steps, 0, sizeof *steps);
    for (size_t i = 0; i < n_pieces; i++) {
        const char *e;
        size_t el;
        ck_assert_int_eq(sg_stopper_push(&st, pieces[i], strlen(pieces[i]), &e, &el), SIGMA_OK);
        put(all, e, el);
        put(steps, e, el);
        put(steps, "|", 1);
    }
    int stopped = st.stopped;
    const char *e;
    size_t el;
    sg_stopper_finish(&st, &e, &el);
    put(all, e, el);
    put(steps, e, el);
    sg_stopper_free(&st);
    return stopped;
}

START_TEST(test_stop_strings) {
    collector all, steps;
    const char *stops1[] = {"World"};
    const char *p1[] = {"Hel", "lo W", "or", "ld", " more"};
    ck_assert_int_eq(run_stopper(stops1, 1, p1, 5, &all, &steps), 1);
    ck_assert_str_eq(all.text, "Hello ");
    ck_assert_str_eq(steps.text, "Hel|lo ||||");

    /* a false start is released as soon as it is decided */
    const char *p2[] = {"Wor", "m", "s"};
    ck_assert_int_eq(run_stopper(stops1, 1, p2, 3, &all, &steps), 0);
    ck_assert_str_eq(all.text, "Worms");
    ck_assert_str_eq(steps.text, "|Worm|s|");

    /* at the end, held text is emitted */
    const char *p3[] = {"Hello Wo"};
    ck_assert_int_eq(run_stopper(stops1, 1, p3, 1, &all, &steps), 0);
    ck_assert_str_eq(steps.text, "Hello |Wo");

    /* several stop strings: the earliest occurrence wins */
    const char *stops2[] = {"\nUser:", "bc", "zzz"};
    const char *p4[] = {"a\nUs", "er: bc"};
    ck_assert_int_eq(run_stopper(stops2, 3, p4, 2, &all, &steps), 1);
    ck_assert_str_eq(all.text, "a");
    const char *p5[] = {"xxabcd"};
    ck_assert_int_eq(run_stopper(stops2, 3, p5, 1, &all, &steps), 1);
    ck_assert_str_eq(all.text, "xxa");

    /* stop string inside one piece, at its very start */
    const char *p6[] = {"ok", "World!"};
    ck_assert_int_eq(run_stopper(stops1, 1, p6, 2, &all, &steps), 1);
    ck_assert_str_eq(all.text, "ok");

    /* overlapping prefixes: "aab" with text "aaab" */
    const char *stops3[] = {"aab"};
    const char *p7[] = {"a", "a", "a", "b"};
    ck_assert_int_eq(run_stopper(stops3, 1, p7, 4, &all, &steps), 1);
    ck_assert_str_eq(all.text, "a");
    ck_assert_str_eq(steps.text, "||a||");

    /* no stop strings / empty ones: pass-through */
    const char *p8[] = {"ab", "cd"};
    ck_assert_int_eq(run_stopper(NULL, 0, p8, 2, &all, &steps), 0);
    ck_assert_str_eq(steps.text, "ab|cd|");
    const char *stops4[] = {"", NULL};
    ck_assert_int_eq(run_stopper(stops4, 2, p8, 2, &all, &steps), 0);
    ck_assert_str_eq(all.text, "abcd");

    /* UTF-8: a stop string starting mid-character never splits one */
    const char *stops5[] = {"\xa9!"}; /* continuation byte of e-acute */
    const char *p9[] = {"caf\xc3\xa9", "?"};
    ck_assert_int_eq(run_stopper(stops5, 1, p9, 2, &all, &steps), 0);
    ck_assert_str_eq(steps.text, "caf|\xc3\xa9?|");

    /* long texts: the buffer grows */
    const char *stops6[] = {"END"};
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *p10[] = {big, "E", "N", "D"};
    ck_assert_int_eq(run_stopper(stops6, 1, p10, 4, &all, &steps), 1);
    ck_assert_str_eq(all.text, big);
}
END_TEST


/* ---- generation loop on a scripted fake session ------------------------------- */

/* Byte-level fake: token = ASCII byte, token 0 = end of generation. The
 * "model" answers `reply` after the last '>' in the context, then EOG. */
enum { MOCK_VOCAB = 128, MOCK_CAP = 256 };
typedef struct mock {
    sg_alloc alloc;
    sigma_token toks[MOCK_CAP];
    size_t n, n_ctx;
    const char *reply;
    float logits[MOCK_VOCAB];
    int have_logits;
    int evals, cancel_at; /* eval call number that gets cancelled (0 = never) */
    size_t evaluated;     /* tokens evaluated in total */
    collector out;
    int stop_after_pieces, pieces;
    size_t cancel_when_n; /* the cancel poll fires once the session has this many tokens */
} mock;

static int m_cancelled(void *c) {
    mock *m = c;
    return m->cancel_when_n && m->n >= m->cancel_when_n;
}

static int m_eval(void *c, const sigma_token *t, size_t n) {
    mock *m = c;
    m->evals++;
    if (m->cancel_at && m->evals >= m->cancel_at) return SIGMA_E_CANCELLED;
    if (m->n + n > m->n_ctx) return SIGMA_E_CONTEXT_FULL;
    for (size_t i = 0; i < n; i++) {
        ck_assert(t[i] >= 0 && t[i] < MOCK_VOCAB);
        m->toks[m->n++] = t[i];
    }
    m->evaluated += n;
    size_t k = 0;
    while (k < m->n && m->toks[m->n - 1 - k] != '>') k++;
    sigma_token next = k < strlen(m->reply) ? (sigma_token)(unsigned char)m->reply[k] : 0;
    for (int i = 0; i < MOCK_VOCAB; i++) m->logits[i] = (float)(i % 5) * 0.1f;
    m->logits[next] = 5.0f;
    m->have_logits = 1;
    return SIGMA_OK;
}
static int m_logits(void *c, const float **l) {
    mock *m = c;
    if (!m->have_logits) return SIGMA_E_STATE;
    *l = m->logits;
    return SIGMA_OK;
}
static int m_tokens(void *c, const sigma_token **t, size_t *n) {
    mock *m = c;
    *t = m->toks;
    *n = m->n;
    return SIGMA_OK;
}
static int m_rewind(void *c, uint32_t pos) {
    mock *m = c;
    ck_assert_uint_le(pos, m->n);
    m->n = pos;
    m->have_logits = 0;
    return SIGMA_OK;
}
static int m_is_eog(void *c, sigma_token t, int *e) {
    (void)c;
    *e = t == 0;
    return SIGMA_OK;
}
static int m_decode(void *c, sigma_token t, char *b, size_t sz, size_t *len) {
    (void)c;
    *len = 1;
    if (sz < 1) return SIGMA_E_BUFFER_TOO_SMALL;
    b[0] = (char)t;
    return SIGMA_OK;
}
static int m_flush(void *c, char *b, size_t sz, size_t *len) {
    (void)c;
    (void)b;
    (void)sz;
    *len = 0;
    return SIGMA_OK;
}
static int m_piece(void *user, const char *text, size_t len) {
    mock *m = user;
    put(&m->out, text, len);
    m->pieces++;
    return m->stop_after_pieces && m->pieces >= m->stop_after_pieces;
}

static void mock_init(mock *m, sg_gen_ops *ops, const char *reply, size_t n_ctx) {
    memset(m, 0, sizeof *m);
    sg_alloc_init(&m->alloc, NULL);
    m->reply = reply;
    m->n_ctx = n_ctx;
    memset(ops, 0, sizeof *ops);
    ops->ctx = m;
    ops->alloc = &m->alloc;
    ops->n_vocab = MOCK_VOCAB;
    ops->eval = m_eval;
    ops->logits = m_logits;
    ops->tokens = m_tokens;
    ops->rewind = m_rewind;
    ops->is_eog = m_is_eog;
    ops->decode = m_decode;
    ops->decode_flush = m_flush;
    ops->cancelled = m_cancelled;
}

static size_t to_toks(const char *s, sigma_token *t) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) t[i] = (unsigned char)s[i];
    return n;
}

static int gen(mock *m, sg_gen_ops *ops, const char *prompt, sigma_generate_params *p,
               sigma_generate_stats *stats) {
    sigma_token t[MOCK_CAP];
    size_t n = to_toks(prompt, t);
    p->on_piece = m_piece;
    p->on_piece_user = m;
    sg_err err;
    sg_err_clear(&err);
    memset(&m->out, 0, sizeof m->out);
    m->pieces = 0;
    return sg_generate_run(ops, t, n, p, NULL, 0, stats, &err);
}

static const char *session_text(mock *m) {
    static char buf[MOCK_CAP + 1];
    for (size_t i = 0; i < m->n; i++) buf[i] = (char)m->toks[i];
    buf[m->n] = '\0';
    return buf;
}

START_TEST(test_generate_loop) {
    mock m;
    sg_gen_ops ops;
    sigma_generate_params p;
    sigma_generate_stats stats;

    /* to the end-of-generation token */
    mock_init(&m, &ops, "Hello World!", 64);
    sigma_generate_params_init(&p, sizeof p);
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hello World!");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_EOG);
    ck_assert_uint_eq(stats.n_prompt_tokens, 2);
    ck_assert_uint_eq(stats.n_generated, 12);
    ck_assert_str_eq(session_text(&m), "Q>Hello World!");
    ck_assert(stats.prompt_ms >= 0 && stats.generate_ms >= 0);

    /* max tokens: every emitted token is in the session */
    mock_init(&m, &ops, "Hello World!", 64);
    p.max_tokens = 5;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hello");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_MAX_TOKENS);
    ck_assert_uint_eq(stats.n_generated, 5);
    ck_assert_str_eq(session_text(&m), "Q>Hello");
    /* continue with an empty prompt from the current logits */
    p.max_tokens = 3;
    ck_assert_int_eq(gen(&m, &ops, "", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, " Wo");
    ck_assert_uint_eq(stats.n_prompt_tokens, 0);
    /* an empty prompt on a fresh session has nothing to sample from */
    mock_init(&m, &ops, "Hello", 64);
    ck_assert_int_eq(gen(&m, &ops, "", &p, &stats), SIGMA_E_STATE);

    /* stop strings: never emitted, held text released when decided */
    const char *stops[] = {"World", "Hex"};
    mock_init(&m, &ops, "Hello World!", 64);
    sigma_generate_params_init(&p, sizeof p);
    p.stop_strings = stops;
    p.n_stop_strings = 2;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hello ");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_STRING);
    const char *stops2[] = {"d!?"};
    mock_init(&m, &ops, "Hello World!", 64);
    p.stop_strings = stops2;
    p.n_stop_strings = 1;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hello World!"); /* "d!" held, then flushed at EOG */
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_EOG);
    p.n_stop_strings = 3;
    p.stop_strings = NULL;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_E_INVALID_ARG);

    /* the callback stops it */
    mock_init(&m, &ops, "Hello World!", 64);
    sigma_generate_params_init(&p, sizeof p);
    m.stop_after_pieces = 3;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hel");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_USER);
    ck_assert_uint_eq(stats.n_generated, 3);

    /* the context fills up */
    mock_init(&m, &ops, "Hello World!", 6);
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hell");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_CONTEXT_FULL);
    mock_init(&m, &ops, "Hello World!", 6);
    ck_assert_int_eq(gen(&m, &ops, "a long prompt>", &p, &stats), SIGMA_E_CONTEXT_FULL);
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_CONTEXT_FULL);
    ck_assert_uint_eq(m.n, 0);

    /* cancellation: tokens so far stay */
    mock_init(&m, &ops, "Hello World!", 64);
    m.cancel_at = 4; /* prompt, H, e, then cancelled */
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_E_CANCELLED);
    ck_assert_str_eq(m.out.text, "He");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_CANCELLED);
    ck_assert_uint_eq(stats.n_generated, 2);
    ck_assert_str_eq(session_text(&m), "Q>He");
    mock_init(&m, &ops, "Hello World!", 64);
    m.cancel_at = 1;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_E_CANCELLED);
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_CANCELLED);
    ck_assert_uint_eq(m.n, 0);

    /* the per-token cancel poll */
    mock_init(&m, &ops, "Hello World!", 64);
    m.cancel_when_n = 5;
    ck_assert_int_eq(gen(&m, &ops, "Q>", &p, &stats), SIGMA_E_CANCELLED);
    ck_assert_str_eq(m.out.text, "Hel");
    ck_assert_int_eq(stats.stop_reason, SIGMA_STOP_CANCELLED);

    /* a sampler: prompt tokens enter its penalty history. A huge repeat
     * penalty on "l" (from the prompt) makes greedy sampling avoid it. */
    struct sigma_model *fm = fake_new(MOCK_VOCAB);
    sigma_sampler_params sp;
    sigma_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 0.0f;
    sp.repeat_penalty = 100.0f;
    sp.penalty_last_n = 2;
    sigma_sampler *smp = NULL;
    ck_assert_int_eq(sigma_sampler_open(fm, &sp, &smp), SIGMA_OK);
    mock_init(&m, &ops, "lo", 64);
    sigma_generate_params_init(&p, sizeof p);
    p.max_tokens = 1;
    ck_assert_int_eq(gen(&m, &ops, "l>", &p, &stats), SIGMA_OK); /* no sampler: greedy */
    ck_assert_str_eq(m.out.text, "l");
    mock_init(&m, &ops, "lo", 64);
    p.sampler = smp;
    ck_assert_int_eq(gen(&m, &ops, "l>", &p, &stats), SIGMA_OK); /* 'l' penalised */
    ck_assert_uint_eq(m.out.len, 1);
    ck_assert_int_eq(m.out.text[0], 4); /* the next best of the fake's logits */
    sigma_sampler_close(smp);
    sp.penalty_last_n = 1; /* window: '>' only */
    ck_assert_int_eq(sigma_sampler_open(fm, &sp, &smp), SIGMA_OK);
    p.sampler = smp;
    mock_init(&m, &ops, "lo", 64);
    ck_assert_int_eq(gen(&m, &ops, "l>", &p, &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "l");
    sigma_sampler_close(smp);
    fake_free(fm);
}
END_TEST

static int chat(mock *m, sg_gen_ops *ops, const char *history, sigma_generate_stats *stats) {
    sigma_token t[MOCK_CAP];
    size_t n = to_toks(history, t);
    sigma_generate_params p;
    sigma_generate_params_init(&p, sizeof p);
    p.on_piece = m_piece;
    p.on_piece_user = m;
    sg_err err;
    memset(&m->out, 0, sizeof m->out);
    return sg_chat_run(ops, t, n, &p, NULL, 0, stats, &err);
}

START_TEST(test_chat_reuse) {
    mock m;
    sg_gen_ops ops;
    sigma_generate_stats stats;
    mock_init(&m, &ops, "Hi!", 128);
    ck_assert_int_eq(chat(&m, &ops, "U:a>", &stats), SIGMA_OK);
    ck_assert_str_eq(m.out.text, "Hi!");
    ck_assert_uint_eq(stats.n_prompt_tokens, 4);
    /* second turn: the history repeats the first turn and its reply */
    ck_assert_int_eq(chat(&m, &ops, "U:a>Hi!|U:b>", &stats), SIGMA_OK);
    ck_assert_uint_eq(stats.n_prompt_tokens, 5); /* only "|U:b>" */
    ck_assert_str_eq(session_text(&m), "U:a>Hi!|U:b>Hi!");
    /* an edited history: rewind to the common prefix */
    size_t before = m.evaluated;
    ck_assert_int_eq(chat(&m, &ops, "U:a>Hi!|U:c>", &stats), SIGMA_OK);
    ck_assert_uint_eq(stats.n_prompt_tokens, 2); /* "c>" */
    ck_assert_uint_eq(m.evaluated - before, 2 + 3);
    ck_assert_str_eq(session_text(&m), "U:a>Hi!|U:c>Hi!");
    /* the same history as the session: one token re-evaluated for logits */
    ck_assert_int_eq(chat(&m, &ops, "U:a>Hi!|U:c>Hi!", &stats), SIGMA_OK);
    ck_assert_uint_eq(stats.n_prompt_tokens, 1);
    /* a shorter history */
    ck_assert_int_eq(chat(&m, &ops, "U:a>", &stats), SIGMA_OK);
    ck_assert_uint_eq(stats.n_prompt_tokens, 1);
    ck_assert_str_eq(session_text(&m), "U:a>Hi!");
    sg_err err;
    ck_assert_int_eq(sg_chat_run(&ops, NULL, 0, NULL, NULL, 0, &stats, &err),
                     SIGMA_E_INVALID_ARG);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("sampler");
    tcase_add_test(tc, test_params_init);
    tcase_add_test(tc, test_bad_params);
    tcase_add_test(tc, test_greedy);
    tcase_add_test(tc, test_top_k);
    tcase_add_test(tc, test_top_p_exact);
    tcase_add_test(tc, test_min_p_exact);
    tcase_add_test(tc, test_softmax_frequencies);
    tcase_add_test(tc, test_chi_square_detects_bias);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_seeds);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("chat");
    tcase_add_test(tc2, test_chat_detect);
    tcase_add_test(tc2, test_chat_chatml);
    tcase_add_test(tc2, test_chat_llama3);
    tcase_add_test(tc2, test_chat_plain);
    suite_add_tcase(s, tc2);
    TCase *tc3 = tcase_create("stop");
    tcase_add_test(tc3, test_stop_strings);
    tcase_add_test(tc3, test_generate_loop);
    tcase_add_test(tc3, test_chat_reuse);
    suite_add_tcase(s, tc3);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
