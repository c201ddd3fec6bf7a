"""Low-level ctypes declarations of the libsigma C ABI (include/sigma/sigma.h).

Only this module touches ctypes function objects; sigma/__init__.py builds the
Pythonic API on top. Every function used is declared with argtypes/restype.
"""
import ctypes
import ctypes.util
import os
import subprocess
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double, c_float,
                    c_int, c_int32, c_size_t, c_uint, c_uint32, c_uint64, c_void_p)

# --- status codes and flags (mirrors sigma.h) ---------------------------------
OK = 0
E_INVALID_ARG = -1
E_NOMEM = -2
E_IO = -3
E_FORMAT = -4
E_UNSUPPORTED = -5
E_CONTEXT_FULL = -6
E_CANCELLED = -7
E_BUFFER_TOO_SMALL = -8
E_NOT_FOUND = -9
E_MISMATCH = -10
E_STATE = -11
E_INTERNAL = -12

TOKENIZE_ADD_SPECIAL = 1
TOKENIZE_PARSE_SPECIAL = 2
DETOK_RENDER_SPECIAL = 1

SPECIAL_BOS, SPECIAL_EOS, SPECIAL_EOT, SPECIAL_UNK, SPECIAL_PAD = range(5)

sigma_token = c_int32

# --- callback types -------------------------------------------------------------
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)
CANCEL_FN = ctypes.CFUNCTYPE(c_int, c_void_p)
PIECE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(c_char), c_size_t)


# --- structs ------------------------------------------------------------------
class ModelParams(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("use_mmap", c_int),
                ("log_fn", LOG_FN),
                ("log_user", c_void_p),
                ("log_level", c_int),
                ("allocator", c_void_p),
                ("error_buf", c_void_p),
                ("error_buf_size", c_size_t)]


class ModelInfo(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("arch", c_int),
                ("arch_name", c_char_p),
                ("name", c_char_p),
                ("n_layers", c_uint32),
                ("n_embd", c_uint32),
                ("n_ff", c_uint32),
                ("n_q_heads", c_uint32),
                ("n_k_heads", c_uint32),
                ("n_v_heads", c_uint32),
                ("d_qk", c_uint32),
                ("d_v", c_uint32),
                ("d_aug", c_uint32),
                ("n_rot", c_uint32),
                ("n_vocab", c_uint32),
                ("n_ctx_train", c_uint32),
                ("rope_theta", c_float),
                ("norm_eps", c_float),
                ("tied_output", c_int),
                ("n_params", c_uint64),
                ("file_size", c_uint64),
                ("kv_bytes_per_token", c_uint64)]


class SessionParams(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("n_ctx", c_uint32),
                ("n_batch", c_uint32),
                ("n_threads", c_uint32),
                ("threadpool", c_void_p),
                ("logits_all", c_int),
                ("kv_strategy", c_char_p),
                ("kv_options", c_char_p),
                ("kv_custom", c_void_p),
                ("cancel_fn", CANCEL_FN),
                ("cancel_user", c_void_p),
                ("save_compression", c_int)]


class SamplerParams(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("temperature", c_float),
                ("top_k", c_int32),
                ("top_p", c_float),
                ("min_p", c_float),
                ("repeat_penalty", c_float),
                ("frequency_penalty", c_float),
                ("presence_penalty", c_float),
                ("penalty_last_n", c_int32),
                ("seed", c_uint64),
                ("grammar", c_char_p),
                ("grammar_root", c_char_p)]


class GenerateParams(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("sampler", c_void_p),
                ("max_tokens", c_int32),
                ("stop_strings", POINTER(c_char_p)),
                ("n_stop_strings", c_size_t),
                ("tokenize_flags", c_uint32),
                ("on_piece", PIECE_FN),
                ("on_piece_user", c_void_p)]


class GenerateStats(Structure):
    _fields_ = [("struct_size", c_uint32),
                ("n_prompt_tokens", c_uint32),
                ("n_generated", c_uint32),
                ("prompt_ms", c_double),
                ("generate_ms", c_double),
                ("stop_reason", c_int)]


class ChatMessage(Structure):
    _fields_ = [("role", c_char_p),
                ("content", c_char_p)]


# --- finding and loading the shared library -------------------------------------
def _candidates():
    env = os.environ.get("SIGMA_LIBRARY")
    if env:
        yield env
        return  # an explicit choice must not silently fall back
    try:
        out = subprocess.run(["pkg-config", "--variable=libdir", "sigma"],
                             capture_output=True, text=True, timeout=10)
        libdir = out.stdout.strip()
        if out.returncode == 0 and libdir:
            path = os.path.join(libdir, "libsigma.so.0")
            if os.path.exists(path):
                yield path
    except (OSError, subprocess.SubprocessError):
        pass
    yield "libsigma.so.0"


def _load():
    errors = []
    for cand in _candidates():
        try:
            return ctypes.CDLL(cand)
        except OSError as exc:
            errors.append("%s: %s" % (cand, exc))
    raise ImportError("libsigma shared library not found (set SIGMA_LIBRARY to the path of "
                      "libsigma.so.0, or install libsigma so that pkg-config finds it): "
                      + "; ".join(errors))


lib = _load()

_H = c_void_p            # every opaque handle
_PH = POINTER(c_void_p)  # handle out-parameter

_SIGNATURES = {
    "sigma_version": (c_uint, []),
    "sigma_version_string": (c_char_p, []),
    "sigma_strerror": (c_char_p, [c_int]),
    # models
    "sigma_model_params_init": (c_int, [POINTER(ModelParams), c_size_t]),
    "sigma_model_open": (c_int, [c_char_p, POINTER(ModelParams), _PH]),
    "sigma_model_open_memory": (c_int, [c_void_p, c_size_t, POINTER(ModelParams), _PH]),
    "sigma_model_close": (None, [_H]),
    "sigma_model_last_error": (c_int, [_H, c_char_p, c_size_t]),
    "sigma_model_get_info": (c_int, [_H, POINTER(ModelInfo)]),
    "sigma_model_meta_count": (c_int, [_H, POINTER(c_size_t)]),
    "sigma_model_meta_key": (c_int, [_H, c_size_t, POINTER(c_char_p)]),
    "sigma_model_meta_get": (c_int, [_H, c_char_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    # thread pools
    "sigma_threadpool_create": (c_int, [c_uint32, c_void_p, _PH]),
    "sigma_threadpool_destroy": (None, [_H]),
    # sessions
    "sigma_session_params_init": (c_int, [POINTER(SessionParams), c_size_t]),
    "sigma_session_open": (c_int, [_H, POINTER(SessionParams), _PH]),
    "sigma_session_close": (None, [_H]),
    "sigma_session_last_error": (c_char_p, [_H]),
    "sigma_session_eval": (c_int, [_H, POINTER(sigma_token), c_size_t]),
    "sigma_session_logits": (c_int, [_H, c_int32, POINTER(POINTER(c_float))]),
    "sigma_session_position": (c_int, [_H, POINTER(c_uint32)]),
    "sigma_session_tokens": (c_int, [_H, POINTER(POINTER(sigma_token)), POINTER(c_size_t)]),
    "sigma_session_rewind": (c_int, [_H, c_uint32]),
    "sigma_session_kv_bytes": (c_int, [_H, POINTER(c_size_t)]),
    "sigma_session_save": (c_int, [_H, c_char_p]),
    "sigma_session_load": (c_int, [_H, c_char_p]),
    "sigma_session_save_memory": (c_int, [_H, c_void_p, c_size_t, POINTER(c_size_t)]),
    "sigma_session_set_sampler": (c_int, [_H, _H]),
    "sigma_session_load_memory": (c_int, [_H, c_void_p, c_size_t]),
    "sigma_sessions_eval": (c_int, [POINTER(c_void_p), POINTER(POINTER(sigma_token)),
                                    POINTER(c_size_t), c_size_t, POINTER(c_int)]),
    "sigma_session_fork": (c_int, [_H, _PH]),
    # tokenizer
    "sigma_tokenize": (c_int, [_H, c_char_p, c_size_t, POINTER(sigma_token), c_size_t,
                               POINTER(c_size_t), c_uint32]),
    "sigma_token_to_piece": (c_int, [_H, sigma_token, c_char_p, c_size_t, POINTER(c_size_t),
                                     c_uint32]),
    "sigma_detokenize": (c_int, [_H, POINTER(sigma_token), c_size_t, c_char_p, c_size_t,
                                 POINTER(c_size_t), c_uint32]),
    "sigma_model_special_token": (c_int, [_H, c_int, POINTER(sigma_token)]),
    "sigma_token_is_eog": (c_int, [_H, sigma_token, POINTER(c_int)]),
    "sigma_decoder_open": (c_int, [_H, c_uint32, _PH]),
    "sigma_decoder_push": (c_int, [_H, sigma_token, c_char_p, c_size_t, POINTER(c_size_t)]),
    "sigma_decoder_flush": (c_int, [_H, c_char_p, c_size_t, POINTER(c_size_t)]),
    "sigma_decoder_close": (None, [_H]),
    # sampling
    "sigma_sampler_params_init": (c_int, [POINTER(SamplerParams), c_size_t]),
    "sigma_sampler_open": (c_int, [_H, POINTER(SamplerParams), _PH]),
    "sigma_sampler_close": (None, [_H]),
    "sigma_sampler_sample": (c_int, [_H, POINTER(c_float), POINTER(sigma_token)]),
    "sigma_sampler_accept": (c_int, [_H, sigma_token]),
    "sigma_sampler_reset": (c_int, [_H, c_uint64]),
    "sigma_sampler_grammar_done": (c_int, [_H, POINTER(c_int)]),
    "sigma_json_schema_to_grammar": (c_int, [_H, c_char_p, c_size_t, c_char_p, c_size_t,
                                             POINTER(c_size_t)]),
    # generation and chat
    "sigma_generate_params_init": (c_int, [POINTER(GenerateParams), c_size_t]),
    "sigma_session_generate": (c_int, [_H, c_char_p, POINTER(GenerateParams),
                                       POINTER(GenerateStats)]),
    "sigma_chat_render": (c_int, [_H, POINTER(ChatMessage), c_size_t, c_int, c_char_p, c_size_t,
                                  POINTER(c_size_t)]),
    "sigma_session_chat": (c_int, [_H, POINTER(ChatMessage), c_size_t, POINTER(GenerateParams),
                                   POINTER(GenerateStats)]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes

__all__ = ["lib", "byref"]
