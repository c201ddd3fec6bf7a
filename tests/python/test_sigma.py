"""Tests of the Python bindings (bindings/python) against a built libsigma.

Run by `meson test` (suite python) with SIGMA_LIBRARY pointing at the built
library. Model tests use the tiny fixture models in tests/fixtures/ and the
real model at $SIGMA_TEST_MODEL; they are skipped when neither can be opened.
"""
import ctypes
import glob
import math
import os
import sys
import threading

import pytest

import sigma
from sigma import _lib

ROOT = os.environ.get("SIGMA_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def _openable(path):
    try:
        with sigma.Model(path) as m:
            with sigma.Session(m, n_ctx=64, n_threads=1):
                pass
            m.tokenize("a")
        return True
    except sigma.SigmaError:
        return False


def _candidate_models():
    paths = sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "*.gguf")))
    paths.append(os.path.join(ROOT, "models", "sigma-austen.gguf"))  # shipped, small
    paths = [p for p in paths if os.path.exists(p)]
    real = os.environ.get("SIGMA_TEST_MODEL")
    if real and os.path.exists(real):
        paths.append(real)
    return paths


_MODELS = None


def models():
    global _MODELS
    if _MODELS is None:
        _MODELS = [p for p in _candidate_models() if _openable(p)]
    return _MODELS


@pytest.fixture(scope="module")
def model_path():
    ms = models()
    if not ms:
        pytest.skip("no usable model (tests/fixtures/*.gguf or $SIGMA_TEST_MODEL)")
    return ms[0]  # fixtures first: fastest


@pytest.fixture(scope="module")
def real_model_path():
    real = os.environ.get("SIGMA_TEST_MODEL")
    if not real or not os.path.exists(real):
        pytest.skip("SIGMA_TEST_MODEL not set")
    if not _openable(real):
        pytest.skip("SIGMA_TEST_MODEL cannot be run by this build yet")
    return real


@pytest.fixture
def model(model_path):
    with sigma.Model(model_path) as m:
        yield m


# --- no model needed ----------------------------------------------------------
def test_version():
    assert sigma.version() == (0, 1, 0)
    assert sigma.version_string() == "0.1.0"


def test_strerror():
    assert sigma.strerror(0) != "unknown status"
    assert sigma.strerror(_lib.E_FORMAT) == "malformed file"
    assert sigma.strerror(-1000) == "unknown status"


def test_open_missing_file_raises_io_error(tmp_path):
    with pytest.raises(sigma.SigmaError) as ei:
        sigma.Model(str(tmp_path / "missing.gguf"))
    assert ei.value.status == _lib.E_IO
    assert ei.value.message
    assert "missing.gguf" in ei.value.message or ei.value.message == sigma.strerror(_lib.E_IO)


def test_open_garbage_raises_format_error(tmp_path):
    p = tmp_path / "garbage.gguf"
    p.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(sigma.SigmaError) as ei:
        sigma.Model(str(p))
    assert ei.value.status == _lib.E_FORMAT
    with pytest.raises(sigma.SigmaError) as ei:
        sigma.Model.from_bytes(b"GGUF" + b"\xff" * 60)
    assert ei.value.status == _lib.E_FORMAT


def test_log_callback_sees_open_failure(tmp_path):
    seen = []
    with pytest.raises(sigma.SigmaError):
        sigma.Model(str(tmp_path / "nope.gguf"), log=lambda lvl, msg: seen.append((lvl, msg)),
                    log_level=sigma.LOG_DEBUG)
    assert seen, "the log callback was not called"
    assert all(isinstance(m, str) for _, m in seen)


def test_stop_matcher_holds_back_prefixes():
    m = sigma._StopMatcher(["END"])
    assert m.feed("abc E") == ("abc ", False)
    assert m.feed("N") == ("", False)
    assert m.feed("x") == ("ENx", False)
    assert m.feed("yyEND tail") == ("yy", True)
    m = sigma._StopMatcher(["\n\n", "User:"])
    assert m.feed("a\n") == ("a", False)
    assert m.feed("b") == ("\nb", False)
    assert m.flush() == ""


# --- model information and text ------------------------------------------------------
def test_info_and_metadata(model):
    info = model.info
    assert info.arch in ("llama", "sigma", "qwen2", "qwen3", "gemma3", "gemma2", "phi3")
    assert info.n_vocab > 0 and info.n_layers > 0
    assert info.kv_bytes_per_token == info.n_layers * (
        info.n_k_heads * info.d_qk + info.n_v_heads * info.d_v) * 4
    assert model.metadata("general.architecture") == info.arch
    assert "general.architecture" in model.metadata_keys()
    with pytest.raises(KeyError):
        model.metadata("no.such.key")
    assert model.metadata("no.such.key", None) is None


def test_tokenize_roundtrip(model):
    text = "Hello world, it is a truth universally acknowledged."
    toks = model.tokenize(text, add_special=False)
    assert toks and all(0 <= t < model.n_vocab for t in toks)
    assert model.detokenize(toks) == text
    assert model.tokenize("", add_special=False) == []
    long = " ".join(["word%d" % i for i in range(500)])
    toks = model.tokenize(long, add_special=False)
    assert model.detokenize(toks) == long
    pieces = b"".join(model.token_to_piece(t) for t in model.tokenize("abc def", add_special=False))
    assert pieces.decode().strip() == "abc def"


# --- sessions -------------------------------------------------------------------
def test_eval_logits_is_a_view(model):
    with sigma.Session(model, n_ctx=64, n_threads=1) as s:
        toks = model.tokenize("The cat sat on the", add_special=False)
        s.eval(toks)
        assert s.position == len(toks)
        assert s.tokens == toks
        a = s.logits()
        assert len(a) == model.n_vocab
        assert all(math.isfinite(x) for x in a[:100])
        np = pytest.importorskip("numpy")
        assert isinstance(a, np.ndarray) and a.dtype == np.float32
        ptr = s._logits_ptr()
        assert a.ctypes.data == ctypes.addressof(ptr.contents)  # no copy
        assert not a.flags.writeable


def test_logits_memoryview_without_numpy(model, monkeypatch):
    with sigma.Session(model, n_ctx=32, n_threads=1) as s:
        s.eval(model.tokenize("Hello", add_special=False))
        ref = list(s.logits()[:10])
        monkeypatch.setitem(sys.modules, "numpy", None)
        mv = s.logits()
        assert isinstance(mv, memoryview)
        assert mv.readonly and len(mv) == model.n_vocab
        assert list(mv[:10]) == ref


def test_rewind_reproduces_logits(model):
    np = pytest.importorskip("numpy")
    with sigma.Session(model, n_ctx=64, n_threads=1) as s:
        toks = model.tokenize("one two three four five", add_special=False)
        s.eval(toks[:2])
        s.eval(toks[2:])
        full = np.array(s.logits())
        s.rewind(2)
        assert s.position == 2
        s.eval(toks[2:])
        assert np.allclose(np.array(s.logits()), full, atol=1e-4)
        with pytest.raises(sigma.SigmaError) as ei:
            s.rewind(s.position + 1)
        assert ei.value.status in (_lib.E_INVALID_ARG, _lib.E_STATE)


def test_logits_all(model):
    np = pytest.importorskip("numpy")
    toks = model.tokenize("a b c d", add_special=False)
    with sigma.Session(model, n_ctx=64, n_threads=1, logits_all=True) as s:
        s.eval(toks)
        rows = [np.array(s.logits(i)) for i in range(len(toks))]
        assert np.array_equal(rows[-1], np.array(s.logits(-1)))
    with sigma.Session(model, n_ctx=64, n_threads=1) as s2:
        s2.eval(toks[:1])
        assert np.allclose(np.array(s2.logits()), rows[0], atol=1e-3)


def test_eval_errors_leave_session_unchanged(model):
    with sigma.Session(model, n_ctx=8, n_threads=1) as s:
        s.eval([1, 2])
        with pytest.raises(sigma.SigmaError) as ei:
            s.eval([model.n_vocab])
        assert ei.value.status == _lib.E_INVALID_ARG
        assert s.position == 2
        with pytest.raises(sigma.SigmaError) as ei:
            s.eval([1] * 7)
        assert ei.value.status == _lib.E_CONTEXT_FULL
        assert s.position == 2
        assert ei.value.message


def test_sessions_eval_matches_one_by_one(model):
    np = pytest.importorskip("numpy")
    toks = model.tokenize("one two three four five six seven", add_special=False)
    v = model.n_vocab
    alt = [(t * 7 + 3) % v for t in toks]
    with sigma.Session(model, n_ctx=64, n_threads=1) as a, \
            sigma.Session(model, n_ctx=64, n_threads=1, kv="quant") as b, \
            sigma.Session(model, n_ctx=64, n_threads=1) as ra, \
            sigma.Session(model, n_ctx=64, n_threads=1, kv="quant") as rb:
        b.eval(alt[:2])
        rb.eval(alt[:2])
        assert sigma.sessions_eval([a, b], [toks[:4], alt[2:3]]) == [0, 0]
        ra.eval(toks[:4])
        rb.eval(alt[2:3])
        assert np.array_equal(np.array(a.logits()), np.array(ra.logits()))
        assert np.array_equal(np.array(b.logits()), np.array(rb.logits()))
        assert (a.position, b.position) == (4, 3)
        # the same session twice: nothing happens
        with pytest.raises(sigma.SigmaError) as ei:
            sigma.sessions_eval([a, a], [toks[:1], toks[:1]])
        assert ei.value.status == _lib.E_INVALID_ARG
        assert ei.value.statuses == [_lib.E_INVALID_ARG] * 2
        assert a.position == 4


def test_sessions_eval_one_full_session(model):
    with sigma.Session(model, n_ctx=4, n_threads=1) as small, \
            sigma.Session(model, n_ctx=64, n_threads=1) as big:
        small.eval([1, 2, 3])
        st = sigma.sessions_eval([small, big], [[1, 2], [1, 2]], check=False)
        assert st == [_lib.E_CONTEXT_FULL, 0]
        assert (small.position, big.position) == (3, 2)
        with pytest.raises(sigma.SigmaError) as ei:
            sigma.sessions_eval([big, small], [[3], [4, 5]])
        assert ei.value.status == _lib.E_CONTEXT_FULL
        assert "n_ctx" in ei.value.message
        assert big.position == 3


def test_fork_continues_like_the_original(model):
    np = pytest.importorskip("numpy")
    toks = model.tokenize("a b c d e f g h", add_special=False)
    with sigma.Session(model, n_ctx=64, n_threads=1, kv="window",
                       kv_options="sinks=1,window=4") as s:
        s.eval(toks[:5])
        with s.fork() as f:
            assert f.tokens == s.tokens
            assert np.array_equal(np.array(f.logits()), np.array(s.logits()))
            for t in toks[5:]:
                s.eval([t])
                f.eval([t])
                assert np.array_equal(np.array(f.logits()), np.array(s.logits()))


def test_closed_objects_raise(model_path):
    m = sigma.Model(model_path)
    s = sigma.Session(m, n_ctx=16, n_threads=1)
    m.close()  # closes the session first
    with pytest.raises(sigma.SigmaError) as ei:
        s.eval([1])
    assert ei.value.status == _lib.E_STATE
    with pytest.raises(sigma.SigmaError):
        m.tokenize("x")
    m.close()  # idempotent


def test_save_load_bytes(model):
    np = pytest.importorskip("numpy")
    toks = model.tokenize("save and restore me", add_special=False)
    with sigma.Session(model, n_ctx=64, n_threads=1) as s:
        s.eval(toks)
        try:
            blob = s.save_bytes()
        except sigma.SigmaError as exc:
            if exc.status == _lib.E_UNSUPPORTED:
                pytest.skip("session save not implemented in this build")
            raise
        ref = np.array(s.logits())
        s.eval([toks[0]])
    with sigma.Session(model, n_ctx=64, n_threads=1) as s2:
        s2.load_bytes(blob)
        assert s2.tokens == toks
        s2.eval([toks[0]])
        with sigma.Session(model, n_ctx=64, n_threads=1) as s3:
            s3.eval(toks + [toks[0]])
            assert np.allclose(np.array(s2.logits()), np.array(s3.logits()), atol=1e-4)
    assert ref.shape == (model.n_vocab,)


def test_sampler_state_travels_with_the_session(model):
    toks = model.tokenize("the sampler continues", add_special=False)

    def draw(s, smp, n):
        out = []
        for _ in range(n):
            t = smp.sample(s.logits())
            s.eval([t])
            out.append(t)
        return out

    with sigma.Session(model, n_ctx=64, n_threads=1) as s, \
            sigma.Sampler(model, temperature=1.0, repeat_penalty=1.3, seed=3) as smp:
        s.eval(toks)
        for t in toks:
            smp.accept(t)
        draw(s, smp, 3)
        s.set_sampler(smp)
        blob = s.save_bytes()
        ref = draw(s, smp, 8)
    with sigma.Session(model, n_ctx=64, n_threads=1) as s2, \
            sigma.Sampler(model, seed=99) as smp2:
        s2.set_sampler(smp2)
        s2.load_bytes(blob)
        assert draw(s2, smp2, 8) == ref
        s2.set_sampler(None)


def test_shared_threadpool_from_threads(model):
    np = pytest.importorskip("numpy")
    toks = model.tokenize("threads share a pool", add_special=False)
    with sigma.Session(model, n_ctx=64, n_threads=1) as s:
        s.eval(toks)
        ref = np.array(s.logits())
    results = {}
    with sigma.ThreadPool(2) as pool:
        def work(i):
            with sigma.Session(model, n_ctx=64, threadpool=pool) as s:
                s.eval(toks)
                results[i] = np.array(s.logits())
        ths = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    assert len(results) == 3
    for r in results.values():
        assert np.allclose(r, ref, atol=1e-3)


# --- generation ------------------------------------------------------------------
def _greedy(model, prompt, n):
    with sigma.Session(model, n_ctx=128, n_threads=1) as s:
        text = "".join(s.generate(prompt, max_tokens=n, temperature=0))
        return text, s.last_stats


def test_generate_greedy_is_deterministic(model):
    a, st = _greedy(model, "Once upon a time", 12)
    b, _ = _greedy(model, "Once upon a time", 12)
    assert a == b
    assert st.n_generated <= 12
    assert st.stop_reason in ("max_tokens", "eog")
    if st.stop_reason == "max_tokens":
        assert st.n_generated == 12


def test_generate_matches_c_generate(model):
    """Python's token loop and sigma_session_generate (greedy) agree."""
    prompt = "It is a truth universally acknowledged"
    py, _ = _greedy(model, prompt, 10)
    pieces = []

    def on_piece(_u, text, n):
        pieces.append(ctypes.string_at(text, n))
        return 0
    cb = _lib.PIECE_FN(on_piece)
    with sigma.Session(model, n_ctx=128, n_threads=1) as s:
        gp = _lib.GenerateParams()
        assert _lib.lib.sigma_generate_params_init(ctypes.byref(gp), ctypes.sizeof(gp)) == 0
        gp.max_tokens = 10
        gp.on_piece = cb
        st = _lib.lib.sigma_session_generate(s._handle, prompt.encode(), ctypes.byref(gp), None)
        assert st == 0, s.last_error()
    assert b"".join(pieces).decode("utf-8", "replace") == py


def test_generate_stop_string(model):
    text, _ = _greedy(model, "Once upon a time", 16)
    if len(text) < 8:
        pytest.skip("model generated too little text")
    stop = text[4:7]
    with sigma.Session(model, n_ctx=128, n_threads=1) as s:
        out = "".join(s.generate("Once upon a time", max_tokens=16, temperature=0, stop=[stop]))
        assert out == text[:text.find(stop)]
        assert s.last_stats.stop_reason == "stop_string"


def test_generate_sampling_seeded(model):
    def run(seed):
        with sigma.Session(model, n_ctx=128, n_threads=1) as s:
            return "".join(s.generate("The", max_tokens=8, temperature=1.0, top_k=50, seed=seed))
    assert run(7) == run(7)


def test_generate_early_close_keeps_session_usable(model):
    with sigma.Session(model, n_ctx=128, n_threads=1) as s:
        it = s.generate("Once upon a time", max_tokens=50, temperature=0)
        next(it)
        it.close()
        assert s.last_stats.stop_reason == "user"
        pos = s.position
        assert pos > 0
        s.eval([1])
        assert s.position == pos + 1


def test_chat_reuses_prefix(model):
    msgs = [{"role": "system", "content": "You are brief."},
            {"role": "user", "content": "Say hello."}]
    rendered = model.render_chat(msgs)
    assert "Say hello." in rendered
    with sigma.Session(model, n_ctx=512, n_threads=1) as s:
        reply = "".join(s.chat(msgs, max_tokens=8, temperature=0))
        assert isinstance(reply, str)
        first = s.position
        msgs += [{"role": "assistant", "content": reply},
                 {"role": "user", "content": "Again."}]
        prompt_len = len(model.tokenize(model.render_chat(msgs), add_special=True,
                                         parse_special=True))
        "".join(s.chat(msgs, max_tokens=4, temperature=0))
        # only the new part of the conversation was evaluated
        assert s.last_stats.n_prompt_tokens < prompt_len
        assert s.position > first


# --- the real model --------------------------------------------------------------------
def test_real_model_generates_english(real_model_path):
    with sigma.Model(real_model_path) as m, sigma.Session(m, n_ctx=256) as s:
        assert m.info.n_vocab == 49152 and m.info.n_layers == 30
        text = "".join(s.generate("The capital of France is", max_tokens=8, temperature=0))
        assert "Paris" in text


def test_real_model_chat(real_model_path):
    with sigma.Model(real_model_path) as m, sigma.Session(m, n_ctx=512) as s:
        reply = "".join(s.chat([{"role": "user", "content": "What is 2+2? Answer briefly."}],
                               max_tokens=16, temperature=0))
        assert "4" in reply
        assert s.last_stats.stop_reason in ("eog", "max_tokens")
