#!/usr/bin/env python3
"""Cross-check sigma-convert against the PyPI `gguf` reader and numpy.

    check_gguf.py SIGMA_CONVERT DATA_DIR

Converts the checkpoints in DATA_DIR (tests/convert/data) for every outtype,
opens each output with gguf.GGUFReader and compares every tensor with the
source safetensors, applying llama.cpp's Q/K permutation with numpy for the
llama model. Exits 77 (skip) when numpy / gguf are not importable.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from gguf import GGUFReader
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)


def read_safetensors(path):
    out = {}
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    hdr = json.loads(raw[8:8 + n])
    base = 8 + n
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = raw[base + b:base + end]
        if e["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(e["dtype"])
        out[name] = a.reshape(e["shape"]).astype(np.float32)
    return out


def load_dir(d):
    t = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            t.update(read_safetensors(os.path.join(d, f)))
    return t


def permute(w, n_head):  # llama.cpp's convert_hf_to_gguf permutation
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def dequant(t):
    ty = t.tensor_type.name
    if ty == "F32":
        return np.array(t.data, dtype=np.float32).reshape(-1)
    if ty == "F16":
        return np.array(t.data).view(np.float16).astype(np.float32).reshape(-1)
    if ty == "BF16":
        u = np.array(t.data).view(np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).reshape(-1)
    if ty == "Q8_0":
        raw = np.array(t.data, dtype=np.uint8).reshape(-1, 34)
        d = raw[:, :2].copy().view(np.float16).astype(np.float32)
        q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
        return (q * d).reshape(-1)
    raise ValueError(ty)


def expected_map(cfg, src):
    arch = "sigma" if cfg.get("model_type") == "sigma" else "llama"
    m = {"token_embd.weight": src["model.embed_tokens.weight"],
         "output_norm.weight": src["model.norm.weight"]}
    if not cfg.get("tie_word_embeddings", False):
        m["output.weight"] = src["lm_head.weight"]
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "self_attn.q_gate_proj": "attn_q_gate", "self_attn.q_up_proj": "attn_q_up",
             "self_attn.q_down_proj": "attn_q_down"}
    for l in range(cfg["num_hidden_layers"]):
        for s, d in names.items():
            k = f"model.layers.{l}.{s}.weight"
            if k not in src:
                continue
            w = src[k]
            if arch == "llama" and s == "self_attn.q_proj":
                w = permute(w, cfg["num_attention_heads"])
            if arch == "llama" and s == "self_attn.k_proj":
                w = permute(w, cfg["num_key_value_heads"])
            m[f"blk.{l}.{d}.weight"] = w
    return arch, m


def check(conv, data, model, outtype, tmp):
    d = os.path.join(data, model)
    out = os.path.join(tmp, f"{model}-{outtype}.gguf")
    subprocess.run([conv, "--outtype", outtype, d, out], check=True,
                   stderr=subprocess.DEVNULL)
    cfg = json.load(open(os.path.join(d, "config.json")))
    arch, exp = expected_map(cfg, load_dir(d))
    r = GGUFReader(out)
    assert r.fields["general.architecture"].contents() == arch
    got = {t.name: t for t in r.tensors}
    assert set(got) == set(exp), (set(got) ^ set(exp))
    for name, ref in exp.items():
        t = got[name]
        assert list(t.shape[::-1]) == list(ref.shape) or list(t.shape) == [ref.size], name
        v = dequant(t)
        ref = ref.reshape(-1)
        ty = t.tensor_type.name
        if ref.ndim == 1 and len(exp[name].shape) == 1:
            assert ty == "F32", name
        if ty == "F32":
            ok = np.array_equal(v, ref)
        elif ty == "F16":
            with np.errstate(over="ignore"):
                ok = np.array_equal(v, ref.astype(np.float16).astype(np.float32))
        elif ty == "BF16":
            tol = np.abs(ref) * 2.0 ** -8
            ok = np.all(np.abs(v - ref) <= tol)
        else:
            blocks = ref.reshape(-1, 32)
            dd = np.abs(blocks).max(axis=1, keepdims=True) / 127.0
            ok = np.all(np.abs(v.reshape(-1, 32) - blocks) <= dd * 0.57 + 1e-12)
        if not ok:
            raise AssertionError(f"{model} {outtype} {name} ({ty}) differs from the source")
    return len(exp)


def main():
    conv, data = sys.argv[1], sys.argv[2]
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("llama", "llama-sharded", "sigma"):
            for outtype in ("f32", "f16", "bf16", "q8_0"):
                n += check(conv, data, model, outtype, tmp)
    print(f"checked {n} tensors with the gguf reader")


if __name__ == "__main__":
    main()
