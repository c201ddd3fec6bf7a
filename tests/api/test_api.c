/* Public API basics: version, status strings, params init, argument
 * validation. Every NULL or bad size gives a status code, never a crash. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigma/sigma.h"

START_TEST(test_version) {
    ck_assert_uint_eq(sigma_version(), SIGMA_VERSION_NUMBER);
    ck_assert_str_eq(sigma_version_string(), SIGMA_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", SIGMA_VERSION_MAJOR, SIGMA_VERSION_MINOR,
             SIGMA_VERSION_PATCH);
    ck_assert_str_eq(buf, sigma_version_string());
}
END_TEST

START_TEST(test_strerror_all) {
    const char *seen[32] = {0};
    for (int st = SIGMA_OK; st >= SIGMA_E_INTERNAL; st--) {
        const char *s = sigma_strerror(st);
        ck_assert_ptr_nonnull(s);
        ck_assert_msg(strcmp(s, "unknown status") != 0, "code %d has no text", st);
        for (int j = 0; j < -st; j++) ck_assert_msg(strcmp(seen[j], s) != 0, "duplicate text");
        seen[-st] = s;
    }
    ck_assert_str_eq(sigma_strerror(1), "unknown status");
    ck_assert_str_eq(sigma_strerror(-1000), "unknown status");
    ck_assert_str_eq(sigma_strerror(SIGMA_E_FORMAT), "malformed file");
}
END_TEST

START_TEST(test_model_params_init) {
    sigma_model_params p;
    memset(&p, 0xAB, sizeof p);
    ck_assert_int_eq(sigma_model_params_init(&p, sizeof p), SIGMA_OK);
    ck_assert_uint_eq(p.struct_size, sizeof p);
    ck_assert_int_eq(p.use_mmap, 1);
    ck_assert_ptr_null(p.log_fn);
    ck_assert_ptr_null(p.allocator);
    ck_assert_ptr_null(p.error_buf);
    ck_assert_int_eq(p.log_level, SIGMA_LOG_WARN);
    ck_assert_int_eq(sigma_model_params_init(NULL, sizeof p), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_model_params_init(&p, 2), SIGMA_E_INVALID_ARG);
}
END_TEST

/* An older caller whose struct has only the first two fields: the library
 * must not write past them. */
START_TEST(test_model_params_init_old_caller) {
    struct {
        sigma_model_params p;
        unsigned char guard[64];
    } s;
    memset(&s, 0x5A, sizeof s);
    size_t old = offsetof(sigma_model_params, use_mmap) + sizeof(int);
    ck_assert_int_eq(sigma_model_params_init(&s.p, old), SIGMA_OK);
    ck_assert_uint_eq(s.p.struct_size, old);
    ck_assert_int_eq(s.p.use_mmap, 1);
    const unsigned char *bytes = (const unsigned char *)&s;
    for (size_t i = old; i < sizeof s; i++) ck_assert_uint_eq(bytes[i], 0x5A);
}
END_TEST

/* A newer caller with a longer struct: extra bytes are zeroed. */
START_TEST(test_model_params_init_new_caller) {
    struct {
        sigma_model_params p;
        uint64_t future[4];
    } s;
    memset(&s, 0x5A, sizeof s);
    ck_assert_int_eq(sigma_model_params_init(&s.p, sizeof s), SIGMA_OK);
    ck_assert_uint_eq(s.p.struct_size, sizeof s);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(s.future[i], 0);
}
END_TEST

static int log_calls;
static char log_last[512];
static void log_cb(void *user, sigma_log_level level, const char *msg) {
    (void)level;
    ck_assert_ptr_eq(user, &log_calls);
    log_calls++;
    snprintf(log_last, sizeof log_last, "%s", msg);
}

START_TEST(test_model_open_errors) {
    sigma_model *m = (sigma_model *)&m; /* garbage: must be reset to NULL */
    ck_assert_int_eq(sigma_model_open(NULL, NULL, &m), SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(sigma_model_open("x", NULL, NULL), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_model_open_memory(NULL, 10, NULL, &m), SIGMA_E_INVALID_ARG);

    char err[256] = "";
    sigma_model_params p;
    sigma_model_params_init(&p, sizeof p);
    p.error_buf = err;
    p.error_buf_size = sizeof err;
    p.log_fn = log_cb;
    p.log_user = &log_calls;
    log_calls = 0;
    ck_assert_int_eq(sigma_model_open("/nonexistent/dir/model.gguf", &p, &m), SIGMA_E_IO);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, "/nonexistent/dir/model.gguf") != NULL, "message: %s", err);
    ck_assert_int_eq(log_calls, 1);
    ck_assert_msg(strstr(log_last, "model.gguf") != NULL, "log: %s", log_last);

    /* a tiny error buffer is truncated, still NUL-terminated */
    char small[8];
    memset(small, 'x', sizeof small);
    p.error_buf = small;
    p.error_buf_size = sizeof small;
    ck_assert_int_eq(sigma_model_open("/nonexistent/dir/model.gguf", &p, &m), SIGMA_E_IO);
    ck_assert_uint_eq(strlen(small), 7);

    /* bad struct_size */
    p.struct_size = 1;
    ck_assert_int_eq(sigma_model_open("/nonexistent", &p, &m), SIGMA_E_INVALID_ARG);

    /* a buffer that is not GGUF */
    static const char junk[64] = "this is not a gguf file";
    sigma_model_params_init(&p, sizeof p);
    p.error_buf = err;
    p.error_buf_size = sizeof err;
    ck_assert_int_eq(sigma_model_open_memory(junk, sizeof junk, &p, &m), SIGMA_E_FORMAT);
    ck_assert_msg(strlen(err) > 0, "no message");
}
END_TEST

START_TEST(test_null_handles) {
    /* closes accept NULL */
    sigma_model_close(NULL);
    sigma_session_close(NULL);
    sigma_sampler_close(NULL);
    sigma_decoder_close(NULL);
    sigma_threadpool_destroy(NULL);

    char buf[16];
    size_t n = 0;
    sigma_model_info info;
    info.struct_size = sizeof info;
    ck_assert_int_eq(sigma_model_get_info(NULL, &info), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_model_meta_count(NULL, &n), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_model_meta_get(NULL, "k", buf, sizeof buf, &n), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(sigma_model_last_error(NULL, buf, sizeof buf), SIGMA_E_INVALID_ARG);
    const char *key;
    ck_assert_int_eq(sigma_model_meta_key(NULL, 0, &key), SIGMA_E_INVALID_ARG);

    sigma_session *s = NULL;
    ck_assert_int_ne(sigma_session_open(NULL, NULL, &s), SIGMA_OK);
    ck_assert_ptr_null(s);
    sigma_token t = 1;
    ck_assert_int_ne(sigma_session_eval(NULL, &t, 1), SIGMA_OK);
    const float *lg;
    ck_assert_int_ne(sigma_session_logits(NULL, -1, &lg), SIGMA_OK);
    uint32_t pos;
    ck_assert_int_ne(sigma_session_position(NULL, &pos), SIGMA_OK);
    ck_assert_int_ne(sigma_session_rewind(NULL, 0), SIGMA_OK);
    ck_assert_int_ne(sigma_tokenize(NULL, "a", 1, &t, 1, &n, 0), SIGMA_OK);
    ck_assert_int_ne(sigma_token_to_piece(NULL, 0, buf, sizeof buf, &n, 0), SIGMA_OK);
    ck_assert_int_ne(sigma_sampler_open(NULL, NULL, NULL), SIGMA_OK);
    ck_assert_int_ne(sigma_session_save(NULL, "x"), SIGMA_OK);
    ck_assert_int_ne(sigma_session_load(NULL, "x"), SIGMA_OK);
    ck_assert_int_ne(sigma_threadpool_create(1, NULL, NULL), SIGMA_OK);
    ck_assert_str_eq(sigma_session_last_error(NULL), "");
}
END_TEST

static Suite *api_suite(void) {
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_strerror_all);
    tcase_add_test(tc, test_model_params_init);
    tcase_add_test(tc, test_model_params_init_old_caller);
    tcase_add_test(tc, test_model_params_init_new_caller);
    tcase_add_test(tc, test_model_open_errors);
    tcase_add_test(tc, test_null_handles);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
