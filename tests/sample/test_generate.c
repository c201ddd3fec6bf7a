/* Generation and chat end to end on a real model (SIGMA_TEST_MODEL, e.g.
 * SmolLM2-135M-Instruct). Skipped (exit 77) when the variable is unset.
 * Public API only. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigma/sigma.h"

static sigma_model *g_model;

typedef struct text {
    char buf[8192];
    size_t len;
    int pieces;
} text;

static int collect(void *user, const char *s, size_t n) {
    text *t = user;
    ck_assert_uint_lt(t->len + n, sizeof t->buf);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    t->pieces++;
    return 0;
}

static sigma_session *open_session(uint32_t threads, uint32_t n_ctx) {
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_threads = threads;
    sp.n_ctx = n_ctx;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(g_model, &sp, &s), SIGMA_OK);
    return s;
}

static int greedy(sigma_session *s, const char *prompt, int n, text *out,
                  sigma_generate_stats *stats, const char *const *stops, size_t n_stops) {
    sigma_generate_params gp;
    sigma_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = n;
    gp.on_piece = collect;
    gp.on_piece_user = out;
    gp.stop_strings = stops;
    gp.n_stop_strings = n_stops;
    memset(out, 0, sizeof *out);
    memset(stats, 0, sizeof *stats);
    stats->struct_size = sizeof *stats;
    return sigma_session_generate(s, prompt, &gp, stats);
}

START_TEST(test_greedy_deterministic) {
    text a, b;
    sigma_generate_stats sa, sb;
    sigma_session *s1 = open_session(1, 256);
    sigma_session *s2 = open_session(2, 256);
    ck_assert_int_eq(greedy(s1, "The capital of France is", 16, &a, &sa, NULL, 0), SIGMA_OK);
    ck_assert_int_eq(greedy(s2, "The capital of France is", 16, &b, &sb, NULL, 0), SIGMA_OK);
    ck_assert_str_eq(a.buf, b.buf);
    ck_assert_uint_gt(a.len, 0);
    ck_assert_uint_gt(sa.n_prompt_tokens, 0);
    ck_assert_uint_eq(sa.n_prompt_tokens, sb.n_prompt_tokens);
    ck_assert(sa.stop_reason == SIGMA_STOP_MAX_TOKENS || sa.stop_reason == SIGMA_STOP_EOG);
    if (sa.stop_reason == SIGMA_STOP_MAX_TOKENS) ck_assert_uint_eq(sa.n_generated, 16);
    /* the session holds prompt + generated tokens */
    uint32_t pos = 0;
    ck_assert_int_eq(sigma_session_position(s1, &pos), SIGMA_OK);
    ck_assert_uint_eq(pos, sa.n_prompt_tokens + sa.n_generated);
    /* continuing with an empty prompt equals generating more at once */
    text c, d;
    sigma_generate_stats sc;
    ck_assert_int_eq(greedy(s1, "", 8, &c, &sc, NULL, 0), SIGMA_OK);
    ck_assert_uint_eq(sc.n_prompt_tokens, 0);
    sigma_session *s3 = open_session(1, 256);
    ck_assert_int_eq(greedy(s3, "The capital of France is", 24, &d, &sc, NULL, 0), SIGMA_OK);
    char joined[16384];
    snprintf(joined, sizeof joined, "%s%s", a.buf, c.buf);
    ck_assert_str_eq(joined, d.buf);
    sigma_session_close(s1);
    sigma_session_close(s2);
    sigma_session_close(s3);
}
END_TEST

START_TEST(test_stop_string_real) {
    text a, b;
    sigma_generate_stats sa, sb;
    sigma_session *s = open_session(0, 256);
    ck_assert_int_eq(greedy(s, "The capital of France is", 24, &a, &sa, NULL, 0), SIGMA_OK);
    ck_assert_uint_gt(a.len, 4);
    /* stop at a piece of the greedy continuation: everything before it,
     * never the stop string */
    char stop[8];
    size_t at = a.len / 2;
    memcpy(stop, a.buf + at, 3);
    stop[3] = '\0';
    const char *stops[] = {stop};
    ck_assert_int_eq(sigma_session_rewind(s, 0), SIGMA_OK);
    ck_assert_int_eq(greedy(s, "The capital of France is", 24, &b, &sb, stops, 1), SIGMA_OK);
    ck_assert_int_eq(sb.stop_reason, SIGMA_STOP_STRING);
    const char *first = strstr(a.buf, stop);
    ck_assert_ptr_nonnull(first);
    ck_assert_uint_eq(b.len, (size_t)(first - a.buf));
    ck_assert(memcmp(a.buf, b.buf, b.len) == 0);
    ck_assert_ptr_null(strstr(b.buf, stop));
    sigma_session_close(s);
}
END_TEST

START_TEST(test_chat_render_real) {
    char meta[16];
    size_t ml;
    if (sigma_model_meta_get(g_model, "tokenizer.chat_template", meta, sizeof meta, &ml) ==
        SIGMA_E_NOT_FOUND)
        return;
    sigma_chat_message m[1] = {{"user", "Hi"}};
    char buf[512];
    size_t len = 0;
    ck_assert_int_eq(sigma_chat_render(g_model, m, 1, 1, buf, sizeof buf, &len), SIGMA_OK);
    ck_assert_uint_eq(strlen(buf), len);
    ck_assert_ptr_nonnull(strstr(buf, "Hi"));
    ck_assert_int_eq(sigma_chat_render(g_model, m, 1, 1, buf, 3, &len),
                     SIGMA_E_BUFFER_TOO_SMALL);
}
END_TEST

static size_t tokenize(const char *s, uint32_t flags, sigma_token *t, size_t cap) {
    size_t n = 0;
    ck_assert_int_eq(sigma_tokenize(g_model, s, strlen(s), t, cap, &n, flags), SIGMA_OK);
    return n;
}

START_TEST(test_chat_paris_and_reuse) {
    sigma_session *s = open_session(0, 1024);
    sigma_chat_message h[4] = {{"user", "What is the capital of France?"}, {"assistant", ""},
                               {"user", "And what is the capital of Germany?"}, {NULL, NULL}};
    sigma_generate_params gp;
    sigma_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 48;
    text r1;
    memset(&r1, 0, sizeof r1);
    gp.on_piece = collect;
    gp.on_piece_user = &r1;
    sigma_generate_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    ck_assert_int_eq(sigma_session_chat(s, h, 1, &gp, &st), SIGMA_OK);
    ck_assert_msg(strstr(r1.buf, "Paris") != NULL, "answer without Paris: '%s'", r1.buf);
    ck_assert_uint_gt(st.n_prompt_tokens, 10);
    uint32_t first_prompt = st.n_prompt_tokens;

    /* the second turn evaluates only what the session does not have yet */
    h[1].content = r1.buf;
    char rendered[16384];
    size_t rl;
    ck_assert_int_eq(sigma_chat_render(g_model, h, 3, 1, rendered, sizeof rendered, &rl),
                     SIGMA_OK);
    static sigma_token hist[8192];
    size_t nh = tokenize(rendered, SIGMA_TOKENIZE_ADD_SPECIAL | SIGMA_TOKENIZE_PARSE_SPECIAL,
                         hist, 8192);
    const sigma_token *have;
    size_t n_have;
    ck_assert_int_eq(sigma_session_tokens(s, &have, &n_have), SIGMA_OK);
    size_t lcp = 0;
    while (lcp < n_have && lcp < nh && have[lcp] == hist[lcp]) lcp++;
    ck_assert_uint_ge(lcp, first_prompt); /* at least the first prompt is reused */
    text r2;
    memset(&r2, 0, sizeof r2);
    gp.on_piece_user = &r2;
    ck_assert_int_eq(sigma_session_chat(s, h, 3, &gp, &st), SIGMA_OK);
    ck_assert_uint_eq(st.n_prompt_tokens, nh - lcp);
    ck_assert_uint_lt(st.n_prompt_tokens, nh / 2);
    ck_assert_msg(strstr(r2.buf, "Berlin") != NULL, "answer without Berlin: '%s'", r2.buf);
    sigma_session_close(s);
}
END_TEST

int main(void) {
    const char *path = getenv("SIGMA_TEST_MODEL");
    if (!path || !*path) {
        printf("SIGMA_TEST_MODEL not set: skipping\n");
        return 77;
    }
    if (sigma_model_open(path, NULL, &g_model) != SIGMA_OK) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    Suite *su = suite_create("generate");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_greedy_deterministic);
    tcase_add_test(tc, test_stop_string_real);
    tcase_add_test(tc, test_chat_render_real);
    tcase_add_test(tc, test_chat_paris_and_reuse);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    sigma_model_close(g_model);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
