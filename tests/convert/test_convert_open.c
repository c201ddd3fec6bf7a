/* sigma-convert outputs opened with libsigma's public API: model info from
 * the converted tiny checkpoints, and the Q/K permutation checked end to
 * end: the tiny Llama converted as arch "llama" (Q/K permuted, adjacent-pair
 * RoPE) and the same weights converted as arch "sigma" (unpermuted,
 * half-split RoPE) must give the same logits. Environment: SIGMA_CONVERT,
 * CONVERT_DATA. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sigma/sigma.h>

static char tmpdir[256];

static void make_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sigma-convert-open-XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void sh(const char *cmd) {
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "failed: %s", cmd);
}

static void convert(const char *dir, const char *outtype, const char *out) {
    const char *exe = getenv("SIGMA_CONVERT");
    ck_assert_ptr_nonnull(exe);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --outtype %s '%s' '%s' 2>/dev/null", exe, outtype, dir, out);
    sh(cmd);
}

static sigma_model *open_model(const char *path) {
    char err[256] = "";
    sigma_model_params mp;
    ck_assert_int_eq(sigma_model_params_init(&mp, sizeof mp), SIGMA_OK);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *m = NULL;
    int rc = sigma_model_open(path, &mp, &m);
    ck_assert_msg(rc == SIGMA_OK, "sigma_model_open(%s): %s", path, err);
    return m;
}

static const char *const outtypes[] = {"f32", "f16", "bf16", "q8_0"};

START_TEST(test_info_llama) {
    make_tmpdir();
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/llama", getenv("CONVERT_DATA"));
    snprintf(out, sizeof out, "%s/l.gguf", tmpdir);
    convert(dir, outtypes[_i], out);
    sigma_model *m = open_model(out);
    sigma_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    ck_assert_int_eq(sigma_model_get_info(m, &in), SIGMA_OK);
    ck_assert_str_eq(in.arch_name, "llama");
    ck_assert_uint_eq(in.n_layers, 2);
    ck_assert_uint_eq(in.n_embd, 64);
    ck_assert_uint_eq(in.n_ff, 128);
    ck_assert_uint_eq(in.n_q_heads, 4);
    ck_assert_uint_eq(in.n_k_heads, 2);
    ck_assert_uint_eq(in.n_v_heads, 2);
    ck_assert_uint_eq(in.d_qk, 16);
    ck_assert_uint_eq(in.d_v, 16);
    ck_assert_uint_eq(in.d_aug, 0);
    ck_assert_uint_eq(in.n_vocab, 320);
    ck_assert_uint_eq(in.n_ctx_train, 256);
    ck_assert_int_eq(in.tied_output, 0);
    ck_assert_float_eq_tol(in.norm_eps, 1e-5f, 1e-9f);
    sigma_model_close(m);
    remove_tmpdir();
}
END_TEST

START_TEST(test_info_sigma) {
    make_tmpdir();
    char dir[512], out[512];
    snprintf(dir, sizeof dir, "%s/sigma", getenv("CONVERT_DATA"));
    snprintf(out, sizeof out, "%s/s.gguf", tmpdir);
    convert(dir, outtypes[_i], out);
    sigma_model *m = open_model(out);
    sigma_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    ck_assert_int_eq(sigma_model_get_info(m, &in), SIGMA_OK);
    ck_assert_str_eq(in.arch_name, "sigma");
    ck_assert_uint_eq(in.n_layers, 2);
    ck_assert_uint_eq(in.n_embd, 64);
    ck_assert_uint_eq(in.n_ff, 80);
    ck_assert_uint_eq(in.n_q_heads, 4);
    ck_assert_uint_eq(in.n_k_heads, 1);
    ck_assert_uint_eq(in.n_v_heads, 2);
    ck_assert_uint_eq(in.d_qk, 16);
    ck_assert_uint_eq(in.d_v, 32);
    ck_assert_uint_eq(in.d_aug, 32);
    ck_assert_uint_eq(in.n_vocab, 300);
    ck_assert_uint_eq(in.n_ctx_train, 512);
    ck_assert_int_eq(in.tied_output, 1);
    ck_assert_float_eq_tol(in.rope_theta, 50000.0f, 1e-3f);
    sigma_model_close(m);
    remove_tmpdir();
}
END_TEST

/* Logits of every position for a fixed token sequence. */
static float *run_logits(const char *path, const sigma_token *toks, size_t n, uint32_t *n_vocab) {
    sigma_model *m = open_model(path);
    sigma_model_info in;
    memset(&in, 0, sizeof in);
    in.struct_size = sizeof in;
    ck_assert_int_eq(sigma_model_get_info(m, &in), SIGMA_OK);
    *n_vocab = in.n_vocab;
    sigma_session_params sp;
    ck_assert_int_eq(sigma_session_params_init(&sp, sizeof sp), SIGMA_OK);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sp.logits_all = 1;
    sigma_session *s = NULL;
    ck_assert_int_eq(sigma_session_open(m, &sp, &s), SIGMA_OK);
    ck_assert_int_eq(sigma_session_eval(s, toks, n), SIGMA_OK);
    float *all = malloc(n * in.n_vocab * sizeof *all);
    for (size_t i = 0; i < n; i++) {
        const float *lg = NULL;
        ck_assert_int_eq(sigma_session_logits(s, (int32_t)i, &lg), SIGMA_OK);
        memcpy(all + i * in.n_vocab, lg, in.n_vocab * sizeof *lg);
    }
    sigma_session_close(s);
    sigma_model_close(m);
    return all;
}

/* Edit a copy of the llama checkpoint's config to arch "sigma". */
static void make_sigma_copy(const char *dst) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cp -r '%s/llama' '%s' && sed -i -e 's/LlamaForCausalLM/SigmaForCausalLM/' "
             "-e 's/\"model_type\": \"llama\"/\"model_type\": \"sigma\"/' '%s/config.json'",
             getenv("CONVERT_DATA"), dst, dst);
    sh(cmd);
}

START_TEST(test_rope_layouts_agree) {
    make_tmpdir();
    char ldir[512], sdir[512], lout[512], sout[512];
    snprintf(ldir, sizeof ldir, "%s/llama", getenv("CONVERT_DATA"));
    snprintf(sdir, sizeof sdir, "%s/as-sigma", tmpdir);
    snprintf(lout, sizeof lout, "%s/llama.gguf", tmpdir);
    snprintf(sout, sizeof sout, "%s/as-sigma.gguf", tmpdir);
    make_sigma_copy(sdir);
    convert(ldir, "f32", lout);
    convert(sdir, "f32", sout);
    const sigma_token toks[] = {5, 17, 42, 99, 3, 250, 7, 7, 128, 64, 31, 2};
    size_t n = sizeof toks / sizeof toks[0];
    uint32_t nv1, nv2;
    float *a = run_logits(lout, toks, n, &nv1);
    float *b = run_logits(sout, toks, n, &nv2);
    ck_assert_uint_eq(nv1, nv2);
    double maxd = 0, maxa = 0, pos_change = 0;
    for (size_t i = 0; i < n * nv1; i++) {
        if (i % nv1 == 7) continue; /* lm_head row 7 holds +-70000 (f16 overflow test values) */
        maxd = fmax(maxd, fabs((double)a[i] - b[i]));
        maxa = fmax(maxa, fabs((double)a[i]));
    }
    /* the same token at positions 6 and 7: RoPE makes the logits differ */
    for (uint32_t v = 0; v < nv1; v++)
        pos_change = fmax(pos_change, fabs((double)a[6 * nv1 + v] - a[7 * nv1 + v]));
    ck_assert_msg(maxa > 1e-3, "logits are all ~0");
    ck_assert_msg(pos_change > 1e-4, "positions do not matter: %g", pos_change);
    ck_assert_msg(maxd <= 1e-4 * (1 + maxa), "llama vs sigma layout: max diff %g (max |logit| %g)",
                  maxd, maxa);
    free(a);
    free(b);
    remove_tmpdir();
}
END_TEST

int main(void) {
    Suite *s = suite_create("convert-open");
    TCase *tc = tcase_create("open");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_info_llama, 0, 4);
    tcase_add_loop_test(tc, test_info_sigma, 0, 4);
    tcase_add_test(tc, test_rope_layouts_agree);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
