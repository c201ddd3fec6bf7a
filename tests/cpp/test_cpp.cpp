// Tests of the C++ wrappers in include/sigma/sigma.hpp: RAII and move
// semantics, exceptions carrying status + message, buffer-size retries,
// generation callbacks (including exceptions thrown from them).
// Model tests use the first usable tests/fixtures/*.gguf, else
// $SIGMA_TEST_MODEL; without any, only the error-path tests run and the
// program exits 77 (skipped) if they pass.
#include <sigma/sigma.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

// last: check.h defines a macro named `fail` that breaks <istream>
#include <check.h>

static_assert(!std::is_copy_constructible_v<sigma::Model>, "Model is move-only");
static_assert(!std::is_copy_assignable_v<sigma::Session>, "Session is move-only");
static_assert(std::is_nothrow_move_constructible_v<sigma::Model>, "noexcept move");
static_assert(std::is_nothrow_move_constructible_v<sigma::Session>, "noexcept move");
static_assert(std::is_nothrow_move_assignable_v<sigma::Sampler>, "noexcept move");

// Compare as std::string (temporaries must outlive the comparison).
#define STR_EQ(a, b)                                                                   \
    do {                                                                               \
        const std::string str_a_ = (a), str_b_ = (b);                                  \
        ck_assert_msg(str_a_ == str_b_, "\"%s\" != \"%s\"", str_a_.c_str(), str_b_.c_str()); \
    } while (0)

static std::string g_model;  // path of the model used by the model tests

static bool usable(const std::string &path) {
    try {
        sigma::Model m(path);
        sigma::SessionOptions so;
        so.n_ctx = 64;
        so.n_threads = 1;
        sigma::Session s(m, so);
        (void)m.tokenize("a");
        return true;
    } catch (const sigma::Error &) {
        return false;
    }
}

static std::string find_model() {
    namespace fs = std::filesystem;
    const char *root = std::getenv("SIGMA_SOURCE_ROOT");
    std::vector<std::string> cands;
    if (root) {
        std::error_code ec;
        for (const auto &e : fs::directory_iterator(fs::path(root) / "tests" / "fixtures", ec))
            if (e.path().extension() == ".gguf") cands.push_back(e.path().string());
        std::sort(cands.begin(), cands.end());
        cands.push_back((fs::path(root) / "models" / "sigma-austen.gguf").string()); // shipped
    }
    if (const char *real = std::getenv("SIGMA_TEST_MODEL")) cands.push_back(real);
    for (const std::string &c : cands)
        if (usable(c)) return c;
    return "";
}

static sigma::SessionOptions small_ctx(uint32_t n_ctx = 64) {
    sigma::SessionOptions so;
    so.n_ctx = n_ctx;
    so.n_threads = 1;
    return so;
}

// --- error paths (no model needed) ------------------------------------------
START_TEST(test_version) {
    STR_EQ(sigma::version(), SIGMA_VERSION_STRING);
}
END_TEST

START_TEST(test_missing_file_throws) {
    std::vector<std::string> logged;
    sigma::ModelOptions mo;
    mo.log = [&](sigma_log_level, std::string_view msg) { logged.emplace_back(msg); };
    mo.log_level = SIGMA_LOG_DEBUG;
    try {
        sigma::Model m("/nonexistent/dir/model.gguf", mo);
        ck_abort_msg("opening a missing file did not throw");
    } catch (const sigma::Error &e) {
        ck_assert_int_eq(e.status(), SIGMA_E_IO);
        ck_assert_ptr_nonnull(std::strstr(e.what(), sigma_strerror(SIGMA_E_IO)));
    }
    ck_assert_msg(!logged.empty(), "the log callback saw nothing");
}
END_TEST

START_TEST(test_garbage_memory_throws) {
    std::vector<unsigned char> junk(200, 0xEE);
    junk[0] = 'G'; junk[1] = 'G'; junk[2] = 'U'; junk[3] = 'F';
    try {
        sigma::Model m = sigma::Model::from_memory(junk.data(), junk.size());
        ck_abort_msg("garbage opened");
    } catch (const sigma::Error &e) {
        ck_assert_int_eq(e.status(), SIGMA_E_FORMAT);
    }
}
END_TEST

// --- with a model -----------------------------------------------------------
START_TEST(test_model_move_and_info) {
    sigma::Model a(g_model);
    sigma_model *raw = a.get();
    sigma::Model b(std::move(a));
    ck_assert(!a);
    ck_assert_ptr_eq(b.get(), raw);
    sigma_model_info info = b.info();
    ck_assert_uint_gt(info.n_vocab, 0);
    ck_assert_uint_eq(info.kv_bytes_per_token,
                      (uint64_t)info.n_layers *
                          (info.n_k_heads * info.d_qk + info.n_v_heads * info.d_v) * 4);
    auto arch = b.metadata("general.architecture");
    ck_assert(arch.has_value());
    STR_EQ(*arch, info.arch_name);
    ck_assert(!b.metadata("no.such.key").has_value());
    auto keys = b.metadata_keys();
    ck_assert(std::find(keys.begin(), keys.end(), "general.architecture") != keys.end());
    sigma::Model c = std::move(b);  // move-assign over nothing, then destroy all
    ck_assert_ptr_eq(c.get(), raw);
}
END_TEST

START_TEST(test_tokenize_roundtrip) {
    sigma::Model m(g_model);
    std::string text = "It is a truth universally acknowledged, that a single man";
    auto toks = m.tokenize(text, false);
    ck_assert(!toks.empty());
    STR_EQ(m.detokenize(toks), text);
    std::string big;
    for (int i = 0; i < 400; i++) big += "x" + std::to_string(i) + " ";
    auto bt = m.tokenize(big, false);
    STR_EQ(m.detokenize(bt), big);
    std::string joined;
    for (sigma_token t : m.tokenize("hello there", false)) joined += m.token_to_piece(t);
    STR_EQ(m.detokenize(m.tokenize("hello there", false)), "hello there");
    ck_assert(joined.find("there") != std::string::npos);
}
END_TEST

START_TEST(test_session_eval_errors) {
    sigma::Model m(g_model);
    sigma::Session s(m, small_ctx(8));
    s.eval(std::vector<sigma_token>{1, 2});
    ck_assert_uint_eq(s.position(), 2);
    sigma::Logits l = s.logits();
    ck_assert_uint_eq(l.size, m.n_vocab());
    for (float x : l) ck_assert(std::isfinite(x));
    try {
        s.eval(std::vector<sigma_token>{(sigma_token)m.n_vocab()});
        ck_abort_msg("out-of-range token accepted");
    } catch (const sigma::Error &e) {
        ck_assert_int_eq(e.status(), SIGMA_E_INVALID_ARG);
    }
    try {
        s.eval(std::vector<sigma_token>(7, 1));
        ck_abort_msg("context overflow accepted");
    } catch (const sigma::Error &e) {
        ck_assert_int_eq(e.status(), SIGMA_E_CONTEXT_FULL);
    }
    ck_assert_uint_eq(s.position(), 2);
    // the session still works and is movable
    sigma::Session t = std::move(s);
    ck_assert_ptr_null(s.get());
    t.rewind(1);
    ck_assert_uint_eq(t.tokens().size(), 1);
    ck_assert_int_eq(t.tokens()[0], 1);
}
END_TEST

START_TEST(test_rewind_and_greedy_sampler) {
    sigma::Model m(g_model);
    sigma::Session s(m, small_ctx());
    auto toks = m.tokenize("one two three four", false);
    s.eval(toks);
    std::vector<float> ref = s.logits().copy();
    s.rewind(1);
    s.eval(toks.data() + 1, toks.size() - 1);
    sigma::Logits again = s.logits();
    for (size_t i = 0; i < ref.size(); i++) ck_assert_float_eq_tol(again[i], ref[i], 1e-4f);
    sigma::Sampler greedy(m, sigma::Sampler::greedy());
    sigma_token t = greedy.sample(ref);
    ck_assert_int_eq(t, (sigma_token)(std::max_element(ref.begin(), ref.end()) - ref.begin()));
    try {
        greedy.sample(std::vector<float>(3, 0.0f));
        ck_abort_msg("wrong logits size accepted");
    } catch (const sigma::Error &e) {
        ck_assert_int_eq(e.status(), SIGMA_E_INVALID_ARG);
    }
}
END_TEST

START_TEST(test_generate_callbacks) {
    sigma::Model m(g_model);
    std::string a, b;
    {
        sigma::Session s(m, small_ctx(128));
        sigma::GenerateOptions go;
        go.max_tokens = 10;
        sigma_generate_stats st = s.generate("Once upon a time", go, [&](std::string_view p) {
            a += p;
            return true;
        });
        ck_assert_uint_le(st.n_generated, 10);
        ck_assert(st.stop_reason == SIGMA_STOP_MAX_TOKENS || st.stop_reason == SIGMA_STOP_EOG);
    }
    {
        sigma::Session s(m, small_ctx(128));
        sigma::Decoder dec(m);
        auto toks = m.tokenize("Once upon a time");
        s.eval(toks);
        sigma::Sampler g(m, sigma::Sampler::greedy());
        for (int i = 0; i < 10; i++) {
            sigma_token t = g.sample(s.logits().data);
            if (m.is_eog(t)) break;
            b += dec.push(t);
            s.eval(&t, 1);
        }
        b += dec.flush();
    }
    STR_EQ(a, b);  // generate() is greedy by default
    // returning false stops with stop_reason USER
    sigma::Session s(m, small_ctx(128));
    int calls = 0;
    sigma_generate_stats st = s.generate("Once upon a time", {}, [&](std::string_view) {
        return ++calls < 2;
    });
    if (st.n_generated >= 2) {
        ck_assert_int_eq(calls, 2);
        ck_assert_int_eq(st.stop_reason, SIGMA_STOP_USER);
    }
    // an exception in the callback stops generation and reaches the caller
    bool caught = false;
    try {
        s.generate(" again", {}, [](std::string_view) -> bool { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error &e) {
        caught = std::string(e.what()) == "boom";
    }
    ck_assert(caught || st.n_generated == 0);
}
END_TEST

START_TEST(test_chat_and_threadpool) {
    sigma::Model m(g_model);
    sigma::ThreadPool pool(2);
    sigma::SessionOptions so = small_ctx(512);
    so.threadpool = &pool;
    sigma::Session s(m, so);
    std::vector<sigma::ChatMessage> msgs{{"user", "Hello!"}};
    std::string rendered = m.render_chat(msgs);
    ck_assert(rendered.find("Hello!") != std::string::npos);
    std::string reply;
    sigma::GenerateOptions go;
    go.max_tokens = 6;
    s.chat(msgs, go, [&](std::string_view p) { reply += p; return true; });
    ck_assert_uint_gt(s.position(), 0);
}
END_TEST

START_TEST(test_json_schema_to_grammar) {
    std::string g = sigma::json_schema_to_grammar(R"({"type":"array","items":{"type":"integer"}})");
    ck_assert(g.find("root ::=") != std::string::npos);
    bool caught = false;
    try {
        sigma::json_schema_to_grammar(R"({"type":"string","pattern":"a"})");
    } catch (const sigma::Error &e) {
        caught = e.status() == SIGMA_E_UNSUPPORTED;
    }
    ck_assert(caught);
}
END_TEST

int main() {
    g_model = find_model();
    Suite *suite = suite_create("cpp");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_missing_file_throws);
    tcase_add_test(tc, test_garbage_memory_throws);
    tcase_add_test(tc, test_json_schema_to_grammar);
    suite_add_tcase(suite, tc);
    if (!g_model.empty()) {
        TCase *tm = tcase_create("model");
        tcase_set_timeout(tm, 300);
        tcase_add_test(tm, test_model_move_and_info);
        tcase_add_test(tm, test_tokenize_roundtrip);
        tcase_add_test(tm, test_session_eval_errors);
        tcase_add_test(tm, test_rewind_and_greedy_sampler);
        tcase_add_test(tm, test_generate_callbacks);
        tcase_add_test(tm, test_chat_and_threadpool);
        suite_add_tcase(suite, tm);
    }
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed) return 1;
    if (g_model.empty()) {
        std::printf("no usable model: model tests skipped\n");
        return 77;
    }
    return 0;
}
