/*
 * libsigma C++17 wrappers: header-only RAII classes over the C API in
 * sigma.h. Nothing here is part of the ABI: it compiles into the caller.
 *
 *   sigma::Model model("model.gguf");
 *   sigma::Session session(model);
 *   session.generate("Once upon a time", {}, [](std::string_view piece) {
 *       std::cout << piece << std::flush;
 *       return true;                       // false stops generation
 *   });
 *
 * Failures throw sigma::Error (status() is the sigma_status, what() the
 * message the library gave). Classes are move-only; a moved-from object is
 * empty and may only be destroyed or assigned to. Thread rules are those of
 * the C API: a Model may be used from any number of threads, a Session,
 * Sampler or Decoder by one thread at a time.
 */
#ifndef SIGMA_SIGMA_HPP
#define SIGMA_SIGMA_HPP

#include <sigma/sigma.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sigma {

/** A failed libsigma call. */
class Error : public std::runtime_error {
public:
    Error(int status, const std::string &message)
        : std::runtime_error(compose(status, message)), status_(status) {}
    /** The negative sigma_status code. */
    int status() const noexcept { return status_; }

private:
    static std::string compose(int status, const std::string &message) {
        std::string s = sigma_strerror(status);
        if (!message.empty() && message != s) s += ": " + message;
        return s;
    }
    int status_;
};

namespace detail {
inline void check(int status, const std::string &message = std::string()) {
    if (status != SIGMA_OK) throw Error(status, message);
}
// Call a C function following the *_BUFFER_TOO_SMALL protocol; `fn(buf,
// size, &len)` returns a status. Returns the bytes written.
template <class F, class ErrF>
std::string sized_call(F fn, ErrF err, size_t first = 128) {
    std::string buf(first, '\0');
    for (;;) {
        size_t len = 0;
        int st = fn(&buf[0], buf.size(), &len);
        if (st == SIGMA_E_BUFFER_TOO_SMALL && len + 1 > buf.size()) {
            buf.assign(len + 1, '\0');
            continue;
        }
        if (st != SIGMA_OK) throw Error(st, err());
        buf.resize(len);
        return buf;
    }
}
} // namespace detail

/** The loaded library's version string. */
inline std::string version() { return sigma_version_string(); }

struct ChatMessage {
    std::string role;    // "system", "user" or "assistant"
    std::string content;
};

/** Options for opening a model (see sigma_model_params). */
struct ModelOptions {
    bool use_mmap = true;
    /** Log callback; may be called from library worker threads. */
    std::function<void(sigma_log_level, std::string_view)> log;
    sigma_log_level log_level = SIGMA_LOG_WARN;
    const sigma_allocator *allocator = nullptr;
};

/** An opened model (sigma_model). Immutable; const methods are thread-safe. */
class Model {
public:
    explicit Model(const std::string &path, ModelOptions options = {}) {
        open(path.c_str(), nullptr, 0, std::move(options));
    }
    /** From a GGUF image in memory; `data` is borrowed and must outlive the model. */
    static Model from_memory(const void *data, size_t size, ModelOptions options = {}) {
        Model m;
        m.open(nullptr, data, size, std::move(options));
        return m;
    }
    Model(Model &&o) noexcept : m_(std::exchange(o.m_, nullptr)), log_(std::move(o.log_)) {}
    Model &operator=(Model &&o) noexcept {
        if (this != &o) {
            reset();
            m_ = std::exchange(o.m_, nullptr);
            log_ = std::move(o.log_);
        }
        return *this;
    }
    Model(const Model &) = delete;
    Model &operator=(const Model &) = delete;
    ~Model() { reset(); }

    sigma_model *get() const noexcept { return m_; }
    explicit operator bool() const noexcept { return m_ != nullptr; }

    /** Message of the last failed call on this model ("" if none). */
    std::string last_error() const {
        char buf[1024];
        buf[0] = '\0';
        sigma_model_last_error(m_, buf, sizeof buf);
        return buf;
    }

    sigma_model_info info() const {
        sigma_model_info i{};
        i.struct_size = sizeof i;
        check(sigma_model_get_info(m_, &i));
        return i;
    }
    uint32_t n_vocab() const { return info().n_vocab; }

    std::vector<std::string> metadata_keys() const {
        size_t n = 0;
        check(sigma_model_meta_count(m_, &n));
        std::vector<std::string> keys;
        keys.reserve(n);
        for (size_t i = 0; i < n; i++) {
            const char *k = nullptr;
            check(sigma_model_meta_key(m_, i, &k));
            keys.emplace_back(k);
        }
        return keys;
    }
    /** A metadata value as text; std::nullopt if there is no such key. */
    std::optional<std::string> metadata(std::string_view key) const {
        std::string k(key);
        int st = SIGMA_OK;
        std::string out = detail::sized_call(
            [&](char *b, size_t s, size_t *l) {
                st = sigma_model_meta_get(m_, k.c_str(), b, s, l);
                return st == SIGMA_E_NOT_FOUND ? SIGMA_OK : st;
            },
            [&] { return last_error(); });
        if (st == SIGMA_E_NOT_FOUND) return std::nullopt;
        return out;
    }

    std::vector<sigma_token> tokenize(std::string_view text, bool add_special = true,
                                      bool parse_special = false) const {
        uint32_t flags = (add_special ? SIGMA_TOKENIZE_ADD_SPECIAL : 0u) |
                         (parse_special ? SIGMA_TOKENIZE_PARSE_SPECIAL : 0u);
        std::vector<sigma_token> toks(text.size() + 8);
        for (;;) {
            size_t n = 0;
            int st = sigma_tokenize(m_, text.data(), text.size(), toks.data(), toks.size(), &n,
                                    flags);
            if (st == SIGMA_E_BUFFER_TOO_SMALL && n > toks.size()) {
                toks.resize(n);
                continue;
            }
            check(st);
            toks.resize(n);
            return toks;
        }
    }
    std::string detokenize(const std::vector<sigma_token> &tokens,
                           bool render_special = false) const {
        uint32_t flags = render_special ? SIGMA_DETOK_RENDER_SPECIAL : 0u;
        return detail::sized_call(
            [&](char *b, size_t s, size_t *l) {
                return sigma_detokenize(m_, tokens.data(), tokens.size(), b, s, l, flags);
            },
            [&] { return last_error(); }, 8 * tokens.size() + 16);
    }
    /** The bytes of one token (may be part of a UTF-8 character). */
    std::string token_to_piece(sigma_token token, bool render_special = false) const {
        uint32_t flags = render_special ? SIGMA_DETOK_RENDER_SPECIAL : 0u;
        return detail::sized_call(
            [&](char *b, size_t s, size_t *l) {
                return sigma_token_to_piece(m_, token, b, s, l, flags);
            },
            [&] { return last_error(); }, 32);
    }
    std::optional<sigma_token> special_token(sigma_special_token which) const {
        sigma_token t = SIGMA_TOKEN_NONE;
        int st = sigma_model_special_token(m_, which, &t);
        if (st == SIGMA_E_NOT_FOUND) return std::nullopt;
        check(st);
        return t;
    }
    bool is_eog(sigma_token token) const {
        int r = 0;
        check(sigma_token_is_eog(m_, token, &r));
        return r != 0;
    }
    std::string render_chat(const std::vector<ChatMessage> &messages,
                            bool add_assistant = true) const {
        std::vector<sigma_chat_message> cm = c_messages(messages);
        return detail::sized_call(
            [&](char *b, size_t s, size_t *l) {
                return sigma_chat_render(m_, cm.data(), cm.size(), add_assistant ? 1 : 0, b, s,
                                         l);
            },
            [&] { return last_error(); }, 1024);
    }

    /** The C view of `messages` (pointers into them). */
    static std::vector<sigma_chat_message> c_messages(const std::vector<ChatMessage> &messages) {
        std::vector<sigma_chat_message> cm;
        cm.reserve(messages.size());
        for (const ChatMessage &m : messages) cm.push_back({m.role.c_str(), m.content.c_str()});
        return cm;
    }

private:
    using LogFn = std::function<void(sigma_log_level, std::string_view)>;
    Model() = default;

    void open(const char *path, const void *data, size_t size, ModelOptions options) {
        sigma_model_params p;
        detail::check(sigma_model_params_init(&p, sizeof p));
        p.use_mmap = options.use_mmap ? 1 : 0;
        p.allocator = options.allocator;
        if (options.log) {
            log_ = std::make_unique<LogFn>(std::move(options.log));
            p.log_fn = &Model::log_trampoline;
            p.log_user = log_.get(); // heap address: stable across moves
            p.log_level = options.log_level;
        }
        char err[1024];
        err[0] = '\0';
        p.error_buf = err;
        p.error_buf_size = sizeof err;
        int st = path ? sigma_model_open(path, &p, &m_) : sigma_model_open_memory(data, size, &p, &m_);
        if (st != SIGMA_OK) {
            m_ = nullptr;
            throw Error(st, err);
        }
    }
    static void log_trampoline(void *user, sigma_log_level level, const char *msg) {
        try {
            (*static_cast<LogFn *>(user))(level, msg ? std::string_view(msg) : std::string_view());
        } catch (...) {
            // exceptions must not cross into C; a failing logger is ignored
        }
    }
    void check(int st) const {
        if (st != SIGMA_OK) throw Error(st, last_error());
    }
    void reset() noexcept {
        if (m_) sigma_model_close(m_);
        m_ = nullptr;
    }

    sigma_model *m_ = nullptr;
    std::unique_ptr<LogFn> log_;
};

/** Worker threads that sessions may share (sigma_threadpool). */
class ThreadPool {
public:
    explicit ThreadPool(uint32_t n_threads = 0, const sigma_allocator *allocator = nullptr) {
        detail::check(sigma_threadpool_create(n_threads, allocator, &p_));
    }
    ThreadPool(ThreadPool &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    ThreadPool &operator=(ThreadPool &&o) noexcept {
        if (this != &o) {
            sigma_threadpool_destroy(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;
    ~ThreadPool() { sigma_threadpool_destroy(p_); }
    sigma_threadpool *get() const noexcept { return p_; }

private:
    sigma_threadpool *p_ = nullptr;
};

/** GBNF text for a JSON Schema (see sigma_json_schema_to_grammar()); the
 *  error message comes from `model` when given. Use the result as
 *  sigma_sampler_params::grammar (it must outlive the Sampler's
 *  construction only: the text is copied). */
inline std::string json_schema_to_grammar(std::string_view schema, const Model *model = nullptr) {
    return detail::sized_call(
        [&](char *buf, size_t size, size_t *len) {
            return sigma_json_schema_to_grammar(model ? model->get() : nullptr, schema.data(),
                                                schema.size(), buf, size, len);
        },
        [&] { return model ? model->last_error() : std::string(); }, 4096);
}

/** Token sampling state (sigma_sampler). */
class Sampler {
public:
    /** The library defaults, to modify and pass to the constructor. */
    static sigma_sampler_params defaults() {
        sigma_sampler_params p;
        detail::check(sigma_sampler_params_init(&p, sizeof p));
        return p;
    }
    /** Greedy (argmax) parameters. */
    static sigma_sampler_params greedy() {
        sigma_sampler_params p = defaults();
        p.temperature = 0.0f;
        return p;
    }
    explicit Sampler(const Model &model, const sigma_sampler_params &params = defaults())
        : n_vocab_(model.n_vocab()) {
        int st = sigma_sampler_open(model.get(), &params, &s_);
        if (st != SIGMA_OK) throw Error(st, model.last_error());
    }
    Sampler(Sampler &&o) noexcept : s_(std::exchange(o.s_, nullptr)), n_vocab_(o.n_vocab_) {}
    Sampler &operator=(Sampler &&o) noexcept {
        if (this != &o) {
            sigma_sampler_close(s_);
            s_ = std::exchange(o.s_, nullptr);
            n_vocab_ = o.n_vocab_;
        }
        return *this;
    }
    Sampler(const Sampler &) = delete;
    Sampler &operator=(const Sampler &) = delete;
    ~Sampler() { sigma_sampler_close(s_); }
    sigma_sampler *get() const noexcept { return s_; }

    /** Pick a token from n_vocab logits. */
    sigma_token sample(const float *logits) {
        sigma_token t = SIGMA_TOKEN_NONE;
        detail::check(sigma_sampler_sample(s_, logits, &t));
        return t;
    }
    sigma_token sample(const std::vector<float> &logits) {
        if (logits.size() != n_vocab_)
            throw Error(SIGMA_E_INVALID_ARG, "logits size is not n_vocab");
        return sample(logits.data());
    }
    void accept(sigma_token token) { detail::check(sigma_sampler_accept(s_, token)); }
    void reset(uint64_t seed) { detail::check(sigma_sampler_reset(s_, seed)); }
    /** True where the sampler's grammar may end (true without a grammar). */
    bool grammar_done() const {
        int d = 1;
        detail::check(sigma_sampler_grammar_done(s_, &d));
        return d != 0;
    }

private:
    sigma_sampler *s_ = nullptr;
    uint32_t n_vocab_ = 0;
};

/** Incremental token -> text decoding (sigma_decoder). */
class Decoder {
public:
    explicit Decoder(const Model &model, bool render_special = false) {
        int st = sigma_decoder_open(model.get(), render_special ? SIGMA_DETOK_RENDER_SPECIAL : 0u,
                                    &d_);
        if (st != SIGMA_OK) throw Error(st, model.last_error());
    }
    Decoder(Decoder &&o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
    Decoder &operator=(Decoder &&o) noexcept {
        if (this != &o) {
            sigma_decoder_close(d_);
            d_ = std::exchange(o.d_, nullptr);
        }
        return *this;
    }
    Decoder(const Decoder &) = delete;
    Decoder &operator=(const Decoder &) = delete;
    ~Decoder() { sigma_decoder_close(d_); }

    /** Text completed by `token` (whole UTF-8 characters only). */
    std::string push(sigma_token token) {
        return detail::sized_call(
            [&](char *b, size_t s, size_t *l) { return sigma_decoder_push(d_, token, b, s, l); },
            [] { return std::string(); }, 64);
    }
    /** What is held back (invalid UTF-8 becomes U+FFFD); resets. */
    std::string flush() {
        return detail::sized_call(
            [&](char *b, size_t s, size_t *l) { return sigma_decoder_flush(d_, b, s, l); },
            [] { return std::string(); }, 64);
    }

private:
    sigma_decoder *d_ = nullptr;
};

/** Options for opening a session (see sigma_session_params). */
struct SessionOptions {
    uint32_t n_ctx = 0;      // 0: the model's trained length
    uint32_t n_batch = 0;    // 0: 512
    uint32_t n_threads = 0;  // 0: online CPUs (ignored with a pool)
    ThreadPool *threadpool = nullptr;  // borrowed; must outlive the session
    bool logits_all = false;
    std::string kv = "dense";
    std::string kv_options;
    const sigma_kv_strategy *kv_custom = nullptr;  // borrowed; overrides kv
    /** Polled during long evaluations; return true to cancel. */
    std::function<bool()> cancel;
};

/** Options for generate() and chat(). */
struct GenerateOptions {
    int32_t max_tokens = 256;        // <= 0: until end of generation or context
    std::vector<std::string> stop;   // stop strings (not emitted)
    Sampler *sampler = nullptr;      // borrowed; nullptr = greedy
    std::optional<uint32_t> tokenize_flags;  // default: the library's
};

/** A read-only view of one position's logits; valid until the next
 *  eval/rewind/close of its session. */
struct Logits {
    const float *data;
    size_t size;
    const float *begin() const noexcept { return data; }
    const float *end() const noexcept { return data + size; }
    float operator[](size_t i) const noexcept { return data[i]; }
    std::vector<float> copy() const { return std::vector<float>(begin(), end()); }
};

/** Called with each piece of generated text; return false to stop. */
using PieceFn = std::function<bool(std::string_view)>;

/** A decoding context on a model (sigma_session). The model must outlive it. */
class Session {
public:
    explicit Session(const Model &model, SessionOptions options = {})
        : n_vocab_(model.n_vocab()) {
        sigma_session_params p;
        detail::check(sigma_session_params_init(&p, sizeof p));
        p.n_ctx = options.n_ctx;
        p.n_batch = options.n_batch;
        p.n_threads = options.n_threads;
        p.threadpool = options.threadpool ? options.threadpool->get() : nullptr;
        p.logits_all = options.logits_all ? 1 : 0;
        p.kv_strategy = options.kv.empty() ? nullptr : options.kv.c_str();
        p.kv_options = options.kv_options.empty() ? nullptr : options.kv_options.c_str();
        p.kv_custom = options.kv_custom;
        if (options.cancel) {
            cancel_ = std::make_unique<std::function<bool()>>(std::move(options.cancel));
            p.cancel_fn = &Session::cancel_trampoline;
            p.cancel_user = cancel_.get();
        }
        int st = sigma_session_open(model.get(), &p, &s_);
        if (st != SIGMA_OK) {
            s_ = nullptr;
            throw Error(st, model.last_error());
        }
    }
    Session(Session &&o) noexcept
        : s_(std::exchange(o.s_, nullptr)), n_vocab_(o.n_vocab_), cancel_(std::move(o.cancel_)) {}
    Session &operator=(Session &&o) noexcept {
        if (this != &o) {
            sigma_session_close(s_);
            s_ = std::exchange(o.s_, nullptr);
            n_vocab_ = o.n_vocab_;
            cancel_ = std::move(o.cancel_);
        }
        return *this;
    }
    Session(const Session &) = delete;
    Session &operator=(const Session &) = delete;
    ~Session() { sigma_session_close(s_); }
    sigma_session *get() const noexcept { return s_; }

    std::string last_error() const {
        const char *e = sigma_session_last_error(s_);
        return e ? e : "";
    }

    void eval(const sigma_token *tokens, size_t n) { check(sigma_session_eval(s_, tokens, n)); }
    void eval(const std::vector<sigma_token> &tokens) { eval(tokens.data(), tokens.size()); }

    Logits logits(int32_t index = -1) const {
        const float *l = nullptr;
        check(sigma_session_logits(s_, index, &l));
        return Logits{l, n_vocab_};
    }
    uint32_t position() const {
        uint32_t p = 0;
        check(sigma_session_position(s_, &p));
        return p;
    }
    std::vector<sigma_token> tokens() const {
        const sigma_token *t = nullptr;
        size_t n = 0;
        check(sigma_session_tokens(s_, &t, &n));
        return n ? std::vector<sigma_token>(t, t + n) : std::vector<sigma_token>();
    }
    void rewind(uint32_t position) { check(sigma_session_rewind(s_, position)); }
    size_t kv_bytes() const {
        size_t b = 0;
        check(sigma_session_kv_bytes(s_, &b));
        return b;
    }
    void save(const std::string &path) { check(sigma_session_save(s_, path.c_str())); }
    void load(const std::string &path) { check(sigma_session_load(s_, path.c_str())); }
    std::vector<unsigned char> save_memory() {
        size_t len = 0;
        int st = sigma_session_save_memory(s_, nullptr, 0, &len);
        if (st != SIGMA_E_BUFFER_TOO_SMALL) check(st);
        std::vector<unsigned char> buf(len);
        check(sigma_session_save_memory(s_, buf.data(), buf.size(), &len));
        buf.resize(len);
        return buf;
    }
    void load_memory(const std::vector<unsigned char> &data) {
        check(sigma_session_load_memory(s_, data.data(), data.size()));
    }
    /** Attach a sampler (borrowed; nullptr detaches) whose state is saved
     *  and loaded with the session; see sigma_session_set_sampler(). */
    void set_sampler(Sampler *sampler) {
        check(sigma_session_set_sampler(s_, sampler ? sampler->get() : nullptr));
    }
    /** A new session in this one's state: same options, tokens, logits and
     *  KV cache, without evaluating anything (sigma_session_fork). The fork
     *  calls the same cancel callback as this session (the library copies
     *  the callback, not the std::function), so when one was set this
     *  session must outlive the fork. */
    Session fork() const {
        sigma_session *f = nullptr;
        check(sigma_session_fork(s_, &f));
        return Session(f, n_vocab_);
    }

    /** Append `prompt` and generate, streaming pieces to `on_piece`. An
     *  exception thrown by on_piece stops generation and is rethrown. */
    sigma_generate_stats generate(std::string_view prompt, const GenerateOptions &options,
                                  PieceFn on_piece) {
        std::string p(prompt);
        return run(options, on_piece, [&](const sigma_generate_params *gp,
                                          sigma_generate_stats *stats) {
            return sigma_session_generate(s_, p.c_str(), gp, stats);
        });
    }
    /** Continue a conversation (the whole history in `messages`). */
    sigma_generate_stats chat(const std::vector<ChatMessage> &messages,
                              const GenerateOptions &options, PieceFn on_piece) {
        std::vector<sigma_chat_message> cm = Model::c_messages(messages);
        return run(options, on_piece, [&](const sigma_generate_params *gp,
                                          sigma_generate_stats *stats) {
            return sigma_session_chat(s_, cm.data(), cm.size(), gp, stats);
        });
    }

private:
    struct PieceCtx {
        PieceFn *fn;
        std::exception_ptr error;
    };
    static int piece_trampoline(void *user, const char *text, size_t len) {
        PieceCtx *ctx = static_cast<PieceCtx *>(user);
        try {
            return (*ctx->fn)(std::string_view(text, len)) ? 0 : 1;
        } catch (...) {
            ctx->error = std::current_exception();
            return 1;
        }
    }
    static int cancel_trampoline(void *user) {
        try {
            return (*static_cast<std::function<bool()> *>(user))() ? 1 : 0;
        } catch (...) {
            return 1;
        }
    }
    template <class Call>
    sigma_generate_stats run(const GenerateOptions &options, PieceFn &on_piece, Call call) {
        std::vector<const char *> stops;
        for (const std::string &s : options.stop) stops.push_back(s.c_str());
        sigma_generate_params gp;
        detail::check(sigma_generate_params_init(&gp, sizeof gp));
        gp.sampler = options.sampler ? options.sampler->get() : nullptr;
        gp.max_tokens = options.max_tokens;
        gp.stop_strings = stops.empty() ? nullptr : stops.data();
        gp.n_stop_strings = stops.size();
        if (options.tokenize_flags) gp.tokenize_flags = *options.tokenize_flags;
        PieceCtx ctx{&on_piece, nullptr};
        if (on_piece) {
            gp.on_piece = &Session::piece_trampoline;
            gp.on_piece_user = &ctx;
        }
        sigma_generate_stats stats{};
        stats.struct_size = sizeof stats;
        int st = call(&gp, &stats);
        if (ctx.error) std::rethrow_exception(ctx.error);
        check(st);
        return stats;
    }
    void check(int st) const {
        if (st != SIGMA_OK) throw Error(st, last_error());
    }

    sigma_session *s_ = nullptr;
    size_t n_vocab_ = 0;
    std::unique_ptr<std::function<bool()>> cancel_;

    Session(sigma_session *s, size_t n_vocab) : s_(s), n_vocab_(n_vocab) {}
};

/** Evaluate tokens[i] in *sessions[i] for every i in one forward pass
 *  (sigma_sessions_eval): shared matmuls, each session with its own
 *  positions, KV cache, logits and cancel callback. Returns the
 *  per-session statuses (SIGMA_OK: that session advanced; a failed one is
 *  left as it was). With check (default) an Error for the first session
 *  that did not advance is thrown after the call instead. */
inline std::vector<int> sessions_eval(const std::vector<Session *> &sessions,
                                      const std::vector<std::vector<sigma_token>> &tokens,
                                      bool check = true) {
    if (sessions.size() != tokens.size())
        throw Error(SIGMA_E_INVALID_ARG, "sessions_eval: one token list per session");
    std::vector<sigma_session *> ss;
    std::vector<const sigma_token *> tp;
    std::vector<size_t> nt;
    for (size_t i = 0; i < sessions.size(); i++) {
        ss.push_back(sessions[i] ? sessions[i]->get() : nullptr);
        tp.push_back(tokens[i].data());
        nt.push_back(tokens[i].size());
    }
    std::vector<int> statuses(sessions.size(), SIGMA_OK);
    int st = sigma_sessions_eval(ss.data(), tp.data(), nt.data(), ss.size(), statuses.data());
    if (check && st != SIGMA_OK) {
        std::string msg;
        for (size_t i = 0; i < ss.size(); i++)
            if (statuses[i] != SIGMA_OK && ss[i]) {
                msg = sessions[i]->last_error();
                break;
            }
        throw Error(st, msg);
    }
    return statuses;
}

} // namespace sigma

#endif /* SIGMA_SIGMA_HPP */
