"""Python bindings for libsigma (ctypes over the C ABI, no compiler needed).

    import sigma
    with sigma.Model("model.gguf") as model, sigma.Session(model) as s:
        for piece in s.generate("Once upon a time", max_tokens=32):
            print(piece, end="", flush=True)

The shared library is found through $SIGMA_LIBRARY (a path), then
`pkg-config --variable=libdir sigma`, then the system loader.

Objects wrap C handles and must be used from one thread at a time (a Model
may be shared by any number of threads and sessions). Closing a Model closes
the sessions, samplers and decoders made from it first.
"""
import ctypes
import weakref
from ctypes import byref, c_char_p, c_float, c_int, c_size_t, c_uint32, c_void_p, POINTER
from dataclasses import dataclass

from . import _lib
from ._lib import lib

__all__ = ["json_schema_to_grammar", "SigmaError", "Model", "ModelInfo", "Session", "Sampler",
           "ThreadPool", "GenerationStats", "version", "version_string", "strerror",
           "sessions_eval"]

# Log levels (sigma_log_level)
LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3

_STOP_REASONS = {0: "none", 1: "eog", 2: "max_tokens", 3: "stop_string", 4: "user",
                 5: "cancelled", 6: "context_full"}


def version():
    """The loaded library's version as (major, minor, patch)."""
    v = lib.sigma_version()
    return (v // 10000, v // 100 % 100, v % 100)


def version_string():
    return lib.sigma_version_string().decode()


def strerror(status):
    return lib.sigma_strerror(int(status)).decode()


class SigmaError(Exception):
    """A libsigma call failed. `status` is the negative sigma_status code,
    `message` the detail the library gave (or the status text)."""

    def __init__(self, status, message=""):
        self.status = int(status)
        self.message = message or strerror(status)
        text = strerror(status)
        if message and message != text:
            text = "%s: %s" % (text, message)
        super().__init__(text)


def _check(status, detail=None):
    if status != _lib.OK:
        msg = ""
        if detail is not None:
            try:
                msg = detail()
            except Exception:  # the detail is best effort
                msg = ""
        raise SigmaError(status, msg)


# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """The shape of a model (sigma_model_info)."""
    arch: str
    name: str
    n_layers: int
    n_embd: int
    n_ff: int
    n_q_heads: int
    n_k_heads: int
    n_v_heads: int
    d_qk: int
    d_v: int
    d_aug: int
    n_rot: int
    n_vocab: int
    n_ctx_train: int
    rope_theta: float
    norm_eps: float
    tied_output: bool
    n_params: int
    file_size: int
    kv_bytes_per_token: int


@dataclass
class GenerationStats:
    """How the last generate()/chat() iteration ended."""
    n_prompt_tokens: int = 0
    n_generated: int = 0
    stop_reason: str = "none"


class _Child:
    """Something made from a model that must be closed before it."""
    _handle = None

    def _register(self, model):
        self._model = model
        model._children.add(self)

    def close(self):
        h, self._handle = self._handle, None
        if h:
            self._close_handle(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _h(self):
        if not self._handle:
            raise SigmaError(_lib.E_STATE, "%s is closed" % type(self).__name__)
        return self._handle


# ---------------------------------------------------------------------------
class Model:
    """An opened GGUF model (sigma_model).

    Model(path, use_mmap=True, log=None, log_level=LOG_WARN)
    `log` is a callable (level: int, message: str); it may be called from
    library worker threads.
    """

    def __init__(self, path, *, use_mmap=True, log=None, log_level=LOG_WARN, _data=None):
        self._handle = None
        self._children = weakref.WeakSet()
        self._log = log
        self._log_cb = None  # the CFUNCTYPE object must outlive the model
        self._data = _data   # keeps an in-memory image alive
        p = _lib.ModelParams()
        _check(lib.sigma_model_params_init(byref(p), ctypes.sizeof(p)))
        p.use_mmap = 1 if use_mmap else 0
        if log is not None:
            def _log_trampoline(_user, level, message, _fn=log):
                try:
                    _fn(int(level), message.decode("utf-8", "replace") if message else "")
                except Exception:  # never let an exception cross into C
                    pass
            self._log_cb = _lib.LOG_FN(_log_trampoline)
            p.log_fn = self._log_cb
            p.log_level = int(log_level)
        errbuf = ctypes.create_string_buffer(1024)
        p.error_buf = ctypes.cast(errbuf, c_void_p)
        p.error_buf_size = len(errbuf)
        out = c_void_p()
        if _data is not None:
            buf = self._data
            st = lib.sigma_model_open_memory(ctypes.cast(buf, c_void_p), len(buf), byref(p),
                                             byref(out))
        else:
            st = lib.sigma_model_open(str(path).encode(), byref(p), byref(out))
        _check(st, lambda: errbuf.value.decode("utf-8", "replace"))
        self._handle = out.value
        self._info = None

    @classmethod
    def from_bytes(cls, data, **params):
        """Open a model from a GGUF image in memory (copied once into a buffer
        owned by the Model)."""
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        return cls(None, _data=buf, **params)

    # lifetime
    def close(self):
        """Close the model and everything made from it."""
        for child in list(self._children):
            child.close()
        h, self._handle = self._handle, None
        if h:
            lib.sigma_model_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _h(self):
        if not self._handle:
            raise SigmaError(_lib.E_STATE, "model is closed")
        return self._handle

    def last_error(self):
        buf = ctypes.create_string_buffer(1024)
        lib.sigma_model_last_error(self._handle, buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def _check(self, st):
        _check(st, self.last_error)

    # information
    @property
    def info(self):
        if self._info is None:
            i = _lib.ModelInfo()
            i.struct_size = ctypes.sizeof(i)
            self._check(lib.sigma_model_get_info(self._h(), byref(i)))
            self._info = ModelInfo(
                arch=(i.arch_name or b"").decode(), name=(i.name or b"").decode("utf-8", "replace"),
                n_layers=i.n_layers, n_embd=i.n_embd, n_ff=i.n_ff, n_q_heads=i.n_q_heads,
                n_k_heads=i.n_k_heads, n_v_heads=i.n_v_heads, d_qk=i.d_qk, d_v=i.d_v,
                d_aug=i.d_aug, n_rot=i.n_rot, n_vocab=i.n_vocab, n_ctx_train=i.n_ctx_train,
                rope_theta=i.rope_theta, norm_eps=i.norm_eps, tied_output=bool(i.tied_output),
                n_params=i.n_params, file_size=i.file_size,
                kv_bytes_per_token=i.kv_bytes_per_token)
        return self._info

    @property
    def n_vocab(self):
        return self.info.n_vocab

    def metadata_keys(self):
        n = c_size_t()
        self._check(lib.sigma_model_meta_count(self._h(), byref(n)))
        keys = []
        for idx in range(n.value):
            k = c_char_p()
            self._check(lib.sigma_model_meta_key(self._h(), idx, byref(k)))
            keys.append(k.value.decode("utf-8", "replace"))
        return keys

    _MISSING = object()

    def metadata(self, key, default=_MISSING):
        """A metadata value as text (numbers in decimal, arrays as "[a, b]").
        Raises KeyError if absent, unless `default` is given."""
        size = 256
        n = c_size_t()
        while True:
            buf = ctypes.create_string_buffer(size)
            st = lib.sigma_model_meta_get(self._h(), key.encode(), buf, size, byref(n))
            if st == _lib.E_BUFFER_TOO_SMALL and n.value + 1 > size:
                size = n.value + 1
                continue
            if st == _lib.E_NOT_FOUND:
                if default is not Model._MISSING:
                    return default
                raise KeyError(key)
            self._check(st)
            return buf.raw[:n.value].decode("utf-8", "replace")

    # tokens
    def tokenize(self, text, add_special=True, parse_special=False):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = ((_lib.TOKENIZE_ADD_SPECIAL if add_special else 0)
                 | (_lib.TOKENIZE_PARSE_SPECIAL if parse_special else 0))
        cap = len(data) + 8
        n = c_size_t()
        while True:
            arr = (_lib.sigma_token * cap)()
            st = lib.sigma_tokenize(self._h(), data, len(data), arr, cap, byref(n), flags)
            if st == _lib.E_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            self._check(st)
            return list(arr[:n.value])

    def _bytes_call(self, fn, *args, size=64):
        n = c_size_t()
        while True:
            buf = ctypes.create_string_buffer(size)
            st = fn(*args[:-1], buf, size, byref(n), args[-1]) if args else None
            if st == _lib.E_BUFFER_TOO_SMALL and n.value > size:
                size = n.value + 1
                continue
            self._check(st)
            return buf.raw[:n.value]

    def token_to_piece(self, token, render_special=False):
        """The bytes of one token (may be part of a UTF-8 character)."""
        flags = _lib.DETOK_RENDER_SPECIAL if render_special else 0
        return self._bytes_call(lib.sigma_token_to_piece, self._h(), int(token), flags)

    def detokenize(self, tokens, render_special=False):
        toks = list(tokens)
        arr = (_lib.sigma_token * max(len(toks), 1))(*toks)
        flags = _lib.DETOK_RENDER_SPECIAL if render_special else 0
        raw = self._bytes_call(lib.sigma_detokenize, self._h(), arr, len(toks), flags,
                               size=max(64, 8 * len(toks)))
        return raw.decode("utf-8", "replace")

    def special_token(self, which):
        """Id of 'bos', 'eos', 'eot', 'unk' or 'pad', or None if the model has none."""
        idx = ["bos", "eos", "eot", "unk", "pad"].index(which)
        t = _lib.sigma_token()
        st = lib.sigma_model_special_token(self._h(), idx, byref(t))
        if st == _lib.E_NOT_FOUND:
            return None
        self._check(st)
        return t.value

    def is_eog(self, token):
        r = c_int()
        self._check(lib.sigma_token_is_eog(self._h(), int(token), byref(r)))
        return bool(r.value)

    def render_chat(self, messages, add_assistant=True):
        """Render [{'role':..., 'content':...}, ...] with the model's chat template."""
        arr, _keep = _chat_messages(messages)
        size = 1024
        n = c_size_t()
        while True:
            buf = ctypes.create_string_buffer(size)
            st = lib.sigma_chat_render(self._h(), arr, len(messages), 1 if add_assistant else 0,
                                       buf, size, byref(n))
            if st == _lib.E_BUFFER_TOO_SMALL and n.value + 1 > size:
                size = n.value + 1
                continue
            self._check(st)
            return buf.raw[:n.value].decode("utf-8", "replace")


def _chat_messages(messages):
    keep = []
    arr = (_lib.ChatMessage * max(len(messages), 1))()
    for i, m in enumerate(messages):
        role = str(m["role"]).encode()
        content = str(m["content"]).encode()
        keep += [role, content]
        arr[i].role = role
        arr[i].content = content
    return arr, keep


# ---------------------------------------------------------------------------
class ThreadPool:
    """Worker threads shareable by sessions (sigma_threadpool). Close it after
    every session using it."""

    def __init__(self, n_threads=0):
        out = c_void_p()
        _check(lib.sigma_threadpool_create(int(n_threads), None, byref(out)))
        self._handle = out.value

    def close(self):
        h, self._handle = self._handle, None
        if h:
            lib.sigma_threadpool_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def json_schema_to_grammar(schema, model=None):
    """GBNF text for a JSON Schema (a dict or a JSON string), as the library
    converts it (sigma_json_schema_to_grammar)."""
    import json as _json
    text = schema if isinstance(schema, (str, bytes)) else _json.dumps(schema)
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    h = model._h() if model is not None else None
    n = c_size_t()
    st = lib.sigma_json_schema_to_grammar(h, data, len(data), None, 0, byref(n))
    if st != _lib.E_BUFFER_TOO_SMALL:
        if model is not None:
            model._check(st)
        _check(st)
    buf = ctypes.create_string_buffer(n.value + 1)
    st = lib.sigma_json_schema_to_grammar(h, data, len(data), buf, len(buf), byref(n))
    if model is not None:
        model._check(st)
    _check(st)
    return buf.raw[:n.value].decode("utf-8")


class Sampler(_Child):
    """Token sampling state (sigma_sampler). Unset parameters keep the
    library defaults; temperature <= 0 means greedy. `grammar` (GBNF text)
    or `json_schema` (a dict or JSON text, converted with
    json_schema_to_grammar) constrains what can be sampled."""

    def __init__(self, model, *, temperature=None, top_k=None, top_p=None, min_p=None,
                 repeat_penalty=None, frequency_penalty=None, presence_penalty=None,
                 penalty_last_n=None, seed=None, grammar=None, json_schema=None,
                 grammar_root=None):
        if grammar is not None and json_schema is not None:
            raise ValueError("give grammar or json_schema, not both")
        if json_schema is not None:
            grammar = json_schema_to_grammar(json_schema, model)
        p = _lib.SamplerParams()
        _check(lib.sigma_sampler_params_init(byref(p), ctypes.sizeof(p)))
        for name, val in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                          ("min_p", min_p), ("repeat_penalty", repeat_penalty),
                          ("frequency_penalty", frequency_penalty),
                          ("presence_penalty", presence_penalty),
                          ("penalty_last_n", penalty_last_n), ("seed", seed)):
            if val is not None:
                setattr(p, name, val)
        # the library copies the text at open; these keep it alive until then
        g = grammar.encode("utf-8") if isinstance(grammar, str) else grammar
        r = grammar_root.encode("utf-8") if isinstance(grammar_root, str) else grammar_root
        p.grammar = g
        p.grammar_root = r
        out = c_void_p()
        model._check(lib.sigma_sampler_open(model._h(), byref(p), byref(out)))
        self._handle = out.value
        self._register(model)

    @staticmethod
    def _close_handle(h):
        lib.sigma_sampler_close(h)

    def _sample_ptr(self, ptr):
        t = _lib.sigma_token()
        _check(lib.sigma_sampler_sample(self._h(), ptr, byref(t)))
        return t.value

    def sample(self, logits):
        """Pick a token from n_vocab logits (numpy array, memoryview or sequence)."""
        n = self._model.n_vocab
        if len(logits) != n:
            raise ValueError("expected %d logits, got %d" % (n, len(logits)))
        arr = (c_float * n)(*list(logits))
        return self._sample_ptr(arr)

    def accept(self, token):
        _check(lib.sigma_sampler_accept(self._h(), int(token)))

    @property
    def grammar_done(self):
        """True when the grammar's language may end here (True without one)."""
        d = c_int()
        _check(lib.sigma_sampler_grammar_done(self._h(), byref(d)))
        return bool(d.value)

    def reset(self, seed):
        _check(lib.sigma_sampler_reset(self._h(), int(seed)))


class _Decoder(_Child):
    def __init__(self, model, render_special=False):
        out = c_void_p()
        flags = _lib.DETOK_RENDER_SPECIAL if render_special else 0
        model._check(lib.sigma_decoder_open(model._h(), flags, byref(out)))
        self._handle = out.value
        self._register(model)

    @staticmethod
    def _close_handle(h):
        lib.sigma_decoder_close(h)

    def _call(self, fn, *args):
        size = 64
        n = c_size_t()
        while True:
            buf = ctypes.create_string_buffer(size)
            st = fn(self._h(), *args, buf, size, byref(n))
            if st == _lib.E_BUFFER_TOO_SMALL and n.value > size:
                size = n.value + 1
                continue
            _check(st)
            return buf.raw[:n.value].decode("utf-8", "replace")

    def push(self, token):
        return self._call(lib.sigma_decoder_push, int(token))

    def flush(self):
        return self._call(lib.sigma_decoder_flush)


class _StopMatcher:
    """Holds back text that may be the start of a stop string."""

    def __init__(self, stops):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text):
        self.pending += text
        cut = None
        for s in self.stops:
            i = self.pending.find(s)
            if i >= 0 and (cut is None or i < cut):
                cut = i
        if cut is not None:
            out, self.pending = self.pending[:cut], ""
            return out, True
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), keep, -1):
                if self.pending.endswith(s[:k]):
                    keep = k
                    break
        out = self.pending[:len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep:]
        return out, False

    def flush(self):
        out, self.pending = self.pending, ""
        return out


# ---------------------------------------------------------------------------
class Session(_Child):
    """A decoding context on a model (sigma_session).

    Session(model, n_ctx=0, n_batch=0, n_threads=0, threadpool=None,
            kv="dense", kv_options=None, logits_all=False, cancel=None)
    `cancel` is a callable returning True to stop a long evaluation.
    """

    def __init__(self, model, *, n_ctx=0, n_batch=0, n_threads=0, threadpool=None, kv="dense",
                 kv_options=None, logits_all=False, cancel=None, save_compression=None):
        p = _lib.SessionParams()
        _check(lib.sigma_session_params_init(byref(p), ctypes.sizeof(p)))
        p.n_ctx = int(n_ctx)
        p.n_batch = int(n_batch)
        p.n_threads = int(n_threads)
        self._pool = threadpool  # must outlive the session
        if threadpool is not None:
            p.threadpool = threadpool._handle
        p.logits_all = 1 if logits_all else 0
        if save_compression is not None:
            p.save_compression = int(save_compression)  # zlib level 0..9 for save()
        self._kv = kv.encode() if kv else None
        self._kv_options = kv_options.encode() if kv_options else None
        p.kv_strategy = self._kv
        p.kv_options = self._kv_options
        self._cancel_cb = None
        if cancel is not None:
            def _cancel_trampoline(_user, _fn=cancel):
                try:
                    return 1 if _fn() else 0
                except Exception:
                    return 1
            self._cancel_cb = _lib.CANCEL_FN(_cancel_trampoline)
            p.cancel_fn = self._cancel_cb
        out = c_void_p()
        model._check(lib.sigma_session_open(model._h(), byref(p), byref(out)))
        self._handle = out.value
        self._register(model)
        self.last_stats = GenerationStats()

    @staticmethod
    def _close_handle(h):
        lib.sigma_session_close(h)

    @property
    def model(self):
        return self._model

    def last_error(self):
        if not self._handle:
            return ""
        return (lib.sigma_session_last_error(self._handle) or b"").decode("utf-8", "replace")

    def _check(self, st):
        _check(st, self.last_error)

    def eval(self, tokens):
        """Append tokens at the current position and compute logits."""
        toks = list(tokens)
        arr = (_lib.sigma_token * max(len(toks), 1))(*toks)
        self._check(lib.sigma_session_eval(self._h(), arr, len(toks)))

    def _logits_ptr(self, index=-1):
        ptr = POINTER(c_float)()
        self._check(lib.sigma_session_logits(self._h(), int(index), byref(ptr)))
        return ptr

    def logits(self, index=-1):
        """Logits of position `index` of the last eval, as a read-only numpy
        view of the session's memory (a memoryview without numpy). The view is
        only valid until the next eval/rewind/close: copy it to keep it."""
        ptr = self._logits_ptr(index)
        n = self._model.n_vocab
        try:
            import numpy as np
        except ImportError:
            arr = (c_float * n).from_address(ctypes.addressof(ptr.contents))
            return memoryview(arr).cast("B").cast("f").toreadonly()
        view = np.ctypeslib.as_array(ptr, shape=(n,))
        view.flags.writeable = False
        return view

    @property
    def position(self):
        p = c_uint32()
        self._check(lib.sigma_session_position(self._h(), byref(p)))
        return p.value

    @property
    def tokens(self):
        ptr = POINTER(_lib.sigma_token)()
        n = c_size_t()
        self._check(lib.sigma_session_tokens(self._h(), byref(ptr), byref(n)))
        return list(ptr[:n.value]) if n.value else []

    def rewind(self, position):
        self._check(lib.sigma_session_rewind(self._h(), int(position)))

    @property
    def kv_bytes(self):
        n = c_size_t()
        self._check(lib.sigma_session_kv_bytes(self._h(), byref(n)))
        return n.value

    def save(self, path):
        self._check(lib.sigma_session_save(self._h(), str(path).encode()))

    def load(self, path):
        self._check(lib.sigma_session_load(self._h(), str(path).encode()))

    def save_bytes(self):
        n = c_size_t()
        st = lib.sigma_session_save_memory(self._h(), None, 0, byref(n))
        if st != _lib.E_BUFFER_TOO_SMALL:
            self._check(st)
        buf = ctypes.create_string_buffer(max(n.value, 1))
        self._check(lib.sigma_session_save_memory(self._h(), buf, len(buf), byref(n)))
        return buf.raw[:n.value]

    def load_bytes(self, data):
        data = bytes(data)
        self._check(lib.sigma_session_load_memory(self._h(), data, len(data)))

    def fork(self):
        """A new Session in this one's state (same parameters, tokens, logits
        and KV cache) without evaluating anything (sigma_session_fork). The
        strategy must be able to save/load itself (every built-in can)."""
        out = c_void_p()
        self._check(lib.sigma_session_fork(self._h(), byref(out)))
        s = Session.__new__(Session)
        s._handle = out.value
        s._pool, s._kv, s._kv_options = self._pool, self._kv, self._kv_options
        s._cancel_cb = self._cancel_cb
        s._register(self._model)
        s.last_stats = GenerationStats()
        return s

    def set_sampler(self, sampler):
        """Attach a Sampler (or None to detach) whose full state (settings,
        RNG, penalty history) is saved and loaded with the session: after
        a load it continues exactly as the saved one would have."""
        self._check(lib.sigma_session_set_sampler(self._h(), sampler._h() if sampler else None))
        self._attached_sampler = sampler  # must stay open while attached

    # generation -------------------------------------------------------------
    def _make_sampler(self, sampler, kw):
        if sampler is not None:
            return sampler, False
        return Sampler(self._model, **kw), True

    def generate(self, prompt, *, max_tokens=256, temperature=None, top_k=None, top_p=None,
                 min_p=None, repeat_penalty=None, seed=None, stop=(), sampler=None,
                 add_special=None, parse_special=False, grammar=None, json_schema=None):
        """Append `prompt` and generate; returns an iterator of text pieces
        (whole UTF-8 characters). Sampling parameters left as None keep the
        library defaults; temperature=0 is greedy. `stop` strings end the
        generation and are not returned. `add_special` defaults to True when
        the session is empty. `grammar` (GBNF) or `json_schema` constrain the
        output (see Sampler). Afterwards `self.last_stats` tells why it
        stopped. The final sampled token is not evaluated into the session."""
        if add_special is None:
            add_special = self.position == 0
        tokens = self._model.tokenize(prompt, add_special=add_special,
                                      parse_special=parse_special)
        smp, own = self._make_sampler(sampler, dict(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            repeat_penalty=repeat_penalty, seed=seed, grammar=grammar,
            json_schema=json_schema))
        return self._run(tokens, max_tokens, smp, own, stop)

    def chat(self, messages, **kwargs):
        """Continue a conversation given the whole history as a list of
        {'role': 'system'|'user'|'assistant', 'content': str}; reuses the
        cached common prefix and returns an iterator over the reply's pieces.
        Accepts the keyword arguments of generate()."""
        text = self._model.render_chat(messages, add_assistant=True)
        tokens = self._model.tokenize(text, add_special=True, parse_special=True)
        bos = self._model.special_token("bos")
        if len(tokens) >= 2 and bos is not None and tokens[0] == bos and tokens[1] == bos:
            tokens = tokens[1:]  # the template already wrote BOS
        have = self.tokens
        common = 0
        while common < min(len(have), len(tokens)) and have[common] == tokens[common]:
            common += 1
        if common == len(tokens):
            common -= 1  # evaluate at least one token to get logits
        kw = {k: kwargs.pop(k) for k in ("temperature", "top_k", "top_p", "min_p",
                                          "repeat_penalty", "seed", "grammar", "json_schema")
              if k in kwargs}
        sampler = kwargs.pop("sampler", None)
        max_tokens = kwargs.pop("max_tokens", 256)
        stop = kwargs.pop("stop", ())
        if kwargs:
            raise TypeError("unexpected arguments: %s" % ", ".join(kwargs))
        smp, own = self._make_sampler(sampler, kw)
        return self._run(tokens[common:], max_tokens, smp, own, stop, rewind_to=common)

    def _run(self, tokens, max_tokens, smp, own_sampler, stop, rewind_to=None):
        stats = GenerationStats(n_prompt_tokens=len(tokens))
        self.last_stats = stats
        dec = None
        try:
            if rewind_to is not None and rewind_to < self.position:
                self.rewind(rewind_to)
            self.eval(tokens)
            for t in tokens:
                smp.accept(t)
            dec = _Decoder(self._model)
            matcher = _StopMatcher(list(stop))
            reason = "max_tokens"
            while max_tokens <= 0 or stats.n_generated < max_tokens:
                tok = smp._sample_ptr(self._logits_ptr())
                if self._model.is_eog(tok):
                    reason = "eog"
                    break
                stats.n_generated += 1
                out, hit = matcher.feed(dec.push(tok))
                if out:
                    yield out
                if hit:
                    reason = "stop_string"
                    break
                if max_tokens > 0 and stats.n_generated >= max_tokens:
                    break
                try:
                    self.eval([tok])
                except SigmaError as exc:
                    if exc.status != _lib.E_CONTEXT_FULL:
                        raise
                    reason = "context_full"
                    break
            stats.stop_reason = reason
            if reason != "stop_string":
                out, _hit = matcher.feed(dec.flush())
                out += matcher.flush()
                if out:
                    yield out
        except GeneratorExit:
            stats.stop_reason = "user"
            raise
        finally:
            if dec is not None:
                dec.close()
            if own_sampler:
                smp.close()


def sessions_eval(sessions, tokens, *, check=True):
    """Evaluate tokens[i] (a non-empty sequence of token ids) in sessions[i]
    for every i in one forward pass (sigma_sessions_eval): the sessions
    (distinct, of one model) share the matmuls; each keeps its own
    positions, KV cache, logits and cancel callback. Returns the list of
    per-session statuses (0: that session advanced). A session that fails
    (context full, cancelled, ...) is left as it was and does not stop the
    others. With check=True (default) a SigmaError for the first session
    that did not advance is raised after the call, with `.statuses` set."""
    sessions = list(sessions)
    tokens = [list(t) for t in tokens]
    n = len(sessions)
    if len(tokens) != n:
        raise ValueError("%d sessions but %d token lists" % (n, len(tokens)))
    hs = (c_void_p * max(n, 1))(*[s._h() for s in sessions])
    arrs = [(_lib.sigma_token * max(len(t), 1))(*t) for t in tokens]
    tp = (POINTER(_lib.sigma_token) * max(n, 1))(
        *[ctypes.cast(a, POINTER(_lib.sigma_token)) for a in arrs])
    nt = (c_size_t * max(n, 1))(*[len(t) for t in tokens])
    statuses = (c_int * max(n, 1))()
    st = lib.sigma_sessions_eval(hs, tp, nt, n, statuses)
    result = list(statuses[:n])
    if check and st != _lib.OK:
        first = next((i for i, v in enumerate(result) if v != _lib.OK), None)
        msg = sessions[first].last_error() if first is not None else ""
        err = SigmaError(st, msg)
        err.statuses = result
        raise err
    return result
