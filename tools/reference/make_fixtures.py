#!/usr/bin/env python3
"""Write tiny random models (tests/fixtures/*.gguf) and their expected
all-position logits (*.logits) computed by sigma_ref.py in float64.

    python3 tools/reference/make_fixtures.py [OUT_DIR]
    python3 tools/reference/make_fixtures.py --smollm2 SmolLM2-135M-Instruct.Q4_1.gguf [OUT_DIR]
    python3 tools/reference/make_fixtures.py --gemma3 gemma-3-270m-q4_k_m.gguf [OUT_DIR]

.logits format (little-endian): u32 n_tokens, u32 n_vocab,
i32 tokens[n_tokens], f32 logits[n_tokens][n_vocab].
Deterministic (fixed seeds); the gguf package writes numpy (out, in) arrays
with ne = (in, out), as docs/sigma.md §6 requires.
"""
import os
import struct
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sigma_ref  # noqa: E402

TOKENS = [1, 17, 5, 88, 42, 3, 60, 61, 9, 0, 33, 71, 2, 96, 14, 50, 27, 8, 77, 45]
VOCAB = 97

# A minimal byte-level BPE vocabulary of VOCAB tokens, so that the fixtures
# open with their tokenizer too: 0 = "<s>" (BOS, control), 1..94 = the
# printable ASCII characters '!'..'~' (their own byte-level symbols),
# 95 = "\u0120" (the byte-level symbol of a space), 96 = "\u0120t" (one merge).
TOK_TEXT = ["<s>"] + [chr(c) for c in range(33, 127)] + ["\u0120", "\u0120t"]
TOK_TYPE = [3] + [1] * (VOCAB - 1)
TOK_MERGES = ["\u0120 t"]
assert len(TOK_TEXT) == VOCAB and len(set(TOK_TEXT)) == VOCAB


def q8_0_bytes(w):
    """Quantize rows of w (multiple of 32 columns) to Q8_0 block bytes."""
    b = w.reshape(-1, 32).astype(np.float32)
    d = np.abs(b).max(axis=1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0)
    q = np.clip(np.round(b * inv[:, None]), -127, 127).astype(np.int8)
    out = np.zeros((b.shape[0], 34), dtype=np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(w.shape[0], -1)


def permute_llama(w, n_head):
    """HF rotate-halves rows -> llama.cpp adjacent-pair rows, per head."""
    out_dim, in_dim = w.shape
    d = out_dim // n_head
    return w.reshape(n_head, 2, d // 2, in_dim).swapaxes(1, 2).reshape(out_dim, in_dim)


def make_weights(seed, shape):
    rng = np.random.default_rng(seed)
    E, F, L = shape["embd"], shape["ff"], shape["layers"]
    nq, nk, nv, dqk, dv, da = (shape[k] for k in ("nq", "nk", "nv", "dqk", "dv", "aug"))
    W = {"token_embd.weight": rng.normal(0, 0.25, (VOCAB, E)),
         "output_norm.weight": 1.0 + 0.1 * rng.normal(size=E)}
    if not shape.get("tied"):
        W["output.weight"] = rng.normal(0, 0.3, (VOCAB, E))
    for l in range(L):
        p = f"blk.{l}."
        W[p + "attn_norm.weight"] = 1.0 + 0.1 * rng.normal(size=E)
        W[p + "attn_q.weight"] = rng.normal(0, 0.3, (nq * dqk, E))
        W[p + "attn_k.weight"] = rng.normal(0, 0.3, (nk * dqk, E))
        W[p + "attn_v.weight"] = rng.normal(0, 0.3, (nv * dv, E))
        if da:
            W[p + "attn_q_gate.weight"] = rng.normal(0, 0.1, (da, nq * dqk))
            W[p + "attn_q_up.weight"] = rng.normal(0, 0.1, (da, nq * dqk))
            W[p + "attn_q_down.weight"] = rng.normal(0, 0.1, (nq * dqk, da))
        W[p + "attn_output.weight"] = rng.normal(0, 0.2, (E, nq * dv))
        W[p + "ffn_norm.weight"] = 1.0 + 0.1 * rng.normal(size=E)
        W[p + "ffn_gate.weight"] = rng.normal(0, 0.2, (F, E))
        W[p + "ffn_up.weight"] = rng.normal(0, 0.2, (F, E))
        W[p + "ffn_down.weight"] = rng.normal(0, 0.2, (E, F))
    return W


# ---- other architectures, in the layout llama.cpp's converter writes ------
# (convert_hf_to_gguf.py): tensor names blk.N.{attn_q,attn_k,attn_v,
# attn_qkv,attn_output,attn_q_norm,attn_k_norm,post_attention_norm,ffn_norm,
# ffn_gate,ffn_up,ffn_down,post_ffw_norm}; Q/K rows in HF's rotate-halves
# order (only `llama` is permuted); Gemma norm weights stored as 1 + w;
# Phi-3's qkv_proj and gate_up_proj kept fused.
ARCH_SHAPES = {
    "qwen2": dict(embd=64, ff=96, layers=2, nq=4, nk=2, dqk=16, tied=True),
    "qwen3": dict(embd=64, ff=96, layers=2, nq=4, nk=2, dqk=32, eps=1e-6, theta=1e6),
    "gemma3": dict(embd=32, ff=64, layers=6, nq=4, nk=1, dqk=16, eps=1e-6, theta=1e6,
                   window=5, tied=True),
    "gemma2": dict(embd=32, ff=64, layers=2, nq=4, nk=2, dqk=16, eps=1e-6, window=5,
                   attn_cap=2.0, final_cap=5.0, tied=True),
    "phi3": dict(embd=64, ff=96, layers=2, nq=4, nk=2, dqk=16, window=6),
}


def make_arch_weights(arch, seed, sh):
    rng = np.random.default_rng(seed)
    E, F, L, nq, nk, d = (sh[k] for k in ("embd", "ff", "layers", "nq", "nk", "dqk"))
    gemma = arch.startswith("gemma")
    # HF Gemma norms hold w with the scale 1 + w; the file holds 1 + w
    norm = (lambda n: 1.0 + 0.1 * rng.normal(size=n)) if not gemma else \
           (lambda n: 1.0 + 0.1 * rng.normal(size=n))
    W = {"token_embd.weight": rng.normal(0, 0.5, (VOCAB, E)),
         "output_norm.weight": norm(E)}
    if not sh.get("tied"):
        W["output.weight"] = rng.normal(0, 0.3, (VOCAB, E))
    for l in range(L):
        p = f"blk.{l}."
        W[p + "attn_norm.weight"] = norm(E)
        q = rng.normal(0, 0.3, (nq * d, E))
        k = rng.normal(0, 0.3, (nk * d, E))
        v = rng.normal(0, 0.3, (nk * d, E))
        if arch == "phi3":
            W[p + "attn_qkv.weight"] = np.concatenate([q, k, v])
        else:
            W[p + "attn_q.weight"], W[p + "attn_k.weight"], W[p + "attn_v.weight"] = q, k, v
        if arch == "qwen2":
            W[p + "attn_q.bias"] = rng.normal(0, 0.3, nq * d)
            W[p + "attn_k.bias"] = rng.normal(0, 0.3, nk * d)
            W[p + "attn_v.bias"] = rng.normal(0, 0.3, nk * d)
        if arch in ("qwen3", "gemma3"):
            W[p + "attn_q_norm.weight"] = norm(d)
            W[p + "attn_k_norm.weight"] = norm(d)
        W[p + "attn_output.weight"] = rng.normal(0, 0.2, (E, nq * d))
        if gemma:
            W[p + "post_attention_norm.weight"] = norm(E)
        W[p + "ffn_norm.weight"] = norm(E)
        g, u = rng.normal(0, 0.2, (F, E)), rng.normal(0, 0.2, (F, E))
        if arch == "phi3":
            W[p + "ffn_up.weight"] = np.concatenate([g, u])
        else:
            W[p + "ffn_gate.weight"], W[p + "ffn_up.weight"] = g, u
        W[p + "ffn_down.weight"] = rng.normal(0, 0.2, (E, F))
        if gemma:
            W[p + "post_ffw_norm.weight"] = norm(E)
    return W


def write_arch(path, arch, sh, W, keys=None, drop=()):
    """keys: extra/overriding metadata {suffix: value} (None value = omit);
    drop: tensor names to leave out (malformed variants)."""
    w = GGUFWriter(path, arch)
    w.add_string("general.name", os.path.basename(path))
    kv = {"context_length": 64, "embedding_length": sh["embd"], "block_count": sh["layers"],
          "feed_forward_length": sh["ff"], "attention.head_count": sh["nq"],
          "attention.head_count_kv": sh["nk"],
          "attention.layer_norm_rms_epsilon": float(sh.get("eps", 1e-5)),
          "rope.freq_base": float(sh.get("theta", 10000.0)),
          "rope.dimension_count": sh["dqk"]}
    if sh["dqk"] * sh["nq"] != sh["embd"] or arch.startswith("gemma"):
        kv["attention.key_length"] = sh["dqk"]
        kv["attention.value_length"] = sh["dqk"]
    if "window" in sh:
        kv["attention.sliding_window"] = sh["window"]
    if "attn_cap" in sh:
        kv["attn_logit_softcapping"] = float(sh["attn_cap"])
        kv["final_logit_softcapping"] = float(sh["final_cap"])
    kv.update(keys or {})
    for k, v in kv.items():
        if v is None:
            continue
        if isinstance(v, float):
            w.add_float32(f"{arch}.{k}", v)
        else:
            w.add_uint32(f"{arch}.{k}", v)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2" if arch.startswith("qwen") else "gpt2")
    w.add_token_list(TOK_TEXT)
    w.add_token_types(TOK_TYPE)
    w.add_token_merges(TOK_MERGES)
    w.add_bos_token_id(0)
    w.add_add_bos_token(False)
    for name, x in W.items():
        if name not in drop:
            w.add_tensor(name, np.asarray(x, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write(path, arch, shape, W, wtype):
    w = GGUFWriter(path, arch)
    w.add_string("general.name", os.path.basename(path))
    a = arch
    w.add_uint32(f"{a}.context_length", 64)
    w.add_uint32(f"{a}.embedding_length", shape["embd"])
    w.add_uint32(f"{a}.block_count", shape["layers"])
    w.add_uint32(f"{a}.feed_forward_length", shape["ff"])
    w.add_uint32(f"{a}.attention.head_count", shape["nq"])
    if arch == "sigma":
        w.add_uint32(f"{a}.attention.head_count_k", shape["nk"])
        w.add_uint32(f"{a}.attention.head_count_v", shape["nv"])
        w.add_uint32(f"{a}.attention.key_length", shape["dqk"])
        w.add_uint32(f"{a}.attention.value_length", shape["dv"])
        w.add_uint32(f"{a}.attention.augq_length", shape["aug"])
    else:
        w.add_uint32(f"{a}.attention.head_count_kv", shape["nk"])
        w.add_uint32(f"{a}.vocab_size", VOCAB)
    w.add_uint32(f"{a}.rope.dimension_count", shape.get("rot", shape["dqk"]))
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", shape.get("eps", 1e-5))
    w.add_float32(f"{a}.rope.freq_base", shape.get("theta", 10000.0))
    if "linear" in shape:
        w.add_string(f"{a}.rope.scaling.type", "linear")
        w.add_float32(f"{a}.rope.scaling.factor", shape["linear"])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(TOK_TEXT)
    w.add_token_types(TOK_TYPE)          # written as an INT32 array (checked below)
    w.add_token_merges(TOK_MERGES)
    w.add_bos_token_id(0)
    w.add_add_bos_token(False)
    for name, x in W.items():
        if x.ndim == 1 or wtype == "f32":
            w.add_tensor(name, x.astype(np.float32))
        elif wtype == "f16":
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, q8_0_bytes(x), raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    verify(path, W)


def verify(path, W):
    """Read the file back: ne[0] is the input dimension (docs/sigma.md §6),
    token_type is an INT32 array, and the stored weights are the ones given."""
    r = GGUFReader(path)
    for t in r.tensors:
        x = W[t.name]
        want = [x.shape[-1]] if x.ndim == 1 else [x.shape[1], x.shape[0]]
        if [int(n) for n in t.shape] != want:
            raise SystemExit(f"{path}: {t.name} has ne {list(t.shape)}, want {want}")
        if int(t.tensor_type) == 0:
            if not np.array_equal(sigma_ref.dequantize(t), x.astype(np.float32).reshape(-1, want[0])):
                raise SystemExit(f"{path}: {t.name} does not read back")
    f = r.fields["tokenizer.ggml.token_type"]
    if f.types != [GGUFValueType.ARRAY, GGUFValueType.INT32]:
        raise SystemExit(f"{path}: token_type is {f.types}, want an INT32 array")


def expect(path):
    lg = sigma_ref.forward(sigma_ref.Model(path), TOKENS)
    with open(path.replace(".gguf", ".logits"), "wb") as f:
        f.write(struct.pack("<II", len(TOKENS), VOCAB))
        f.write(struct.pack(f"<{len(TOKENS)}i", *TOKENS))
        f.write(lg.astype("<f4").tobytes())
    return lg


# The real-model check (tests/forward, when SIGMA_TEST_MODEL is set): the
# first 16 tokens of persuasion.txt as SmolLM2-135M-Instruct tokenizes them.
SMOL_TOKENS = [25165, 101, 4574, 1116, 198, 1717, 198, 198, 44611, 33015, 198, 198,
               24, 33, 40, 33]
SMOL_TOP = 64


# Gemma 3 270M Q4_K_M (tools/fetch-gemma3.sh): BOS + "The capital of France
# is" as its tokenizer gives them (exact against sentencepiece, tests/text),
# then GEMMA_GREEDY tokens chosen greedily by the reference itself.
GEMMA_PROMPT = [2, 818, 5279, 529, 7001, 563]
GEMMA_GREEDY = 10


def gemma3_reference(model, path):
    m = sigma_ref.Model(model)
    toks = list(GEMMA_PROMPT)
    for _ in range(GEMMA_GREEDY):
        toks.append(int(np.argmax(sigma_ref.forward(m, toks)[-1])))
    print("greedy continuation:", toks[len(GEMMA_PROMPT):])
    smollm2_reference(model, path, toks, m)


def smollm2_reference(model, path, tokens=SMOL_TOKENS, m=None):
    """Reference logits of SmolLM2 (Q4_1/Q8_0 weights dequantized here, float64)
    for SMOL_TOKENS (or another real model and tokens), stored compactly as
    text: per position the log-sum-exp of all logits and the SMOL_TOP largest
    logits with their ids."""
    m = m or sigma_ref.Model(model)
    lg = sigma_ref.forward(m, tokens)
    with open(path, "w") as f:
        f.write(f"# sigma_ref.py logits of {os.path.basename(model)} (general.name "
                f"{m.kv.get('general.name')!r}), float64 from dequantized weights\n")
        f.write("# line 2: n_tokens n_vocab top_k; line 3: tokens; then per position:\n")
        f.write("# logsumexp(logits), then top_k pairs id:logit (largest first)\n")
        f.write(f"{len(tokens)} {lg.shape[1]} {SMOL_TOP}\n")
        f.write(" ".join(map(str, tokens)) + "\n")
        for row in lg:
            mx = row.max()
            lse = mx + np.log(np.exp(row - mx).sum())
            top = np.argsort(-row, kind="stable")[:SMOL_TOP]
            f.write(f"{lse:.9g} " + " ".join(f"{t}:{row[t]:.9g}" for t in top) + "\n")
    print("wrote", path)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--gemma3":
        out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
        gemma3_reference(sys.argv[2], os.path.join(out, "gemma3-270m-q4_k_m.ref"))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--smollm2":
        out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
        smollm2_reference(sys.argv[2], os.path.join(out, "smollm2-q4_1.ref"))
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    gqa = dict(embd=64, ff=96, layers=2, nq=4, nk=2, nv=2, dqk=16, dv=16, aug=0)
    sig = dict(embd=64, ff=96, layers=2, nq=8, nk=2, nv=4, dqk=8, dv=8, aug=64, tied=True)
    dif = dict(embd=64, ff=96, layers=2, nq=4, nk=1, nv=2, dqk=16, dv=8, aug=0)
    twin = dict(embd=64, ff=96, layers=2, nq=4, nk=2, nv=2, dqk=16, dv=16, aug=0)
    # partial RoPE (8 of 16 dims), theta 50000, eps 1e-6, n_k = 1 < n_v = 4 = n_q,
    # AugQ 32; F16 to keep the fixtures small
    part = dict(embd=32, ff=64, layers=2, nq=4, nk=1, nv=4, dqk=16, dv=16, aug=32, tied=True,
                rot=8, theta=50000.0, eps=1e-6)
    made = {}
    write(f"{out}/llama_gqa_f32.gguf", "llama", gqa, make_weights(1, gqa), "f32")
    W = make_weights(2, sig)
    for t in ("f32", "f16", "q8_0"):
        write(f"{out}/sigma_augq_{t}.gguf", "sigma", sig, W, t)
    write(f"{out}/sigma_dqk16_dv8_f32.gguf", "sigma", dif, make_weights(3, dif), "f32")
    write(f"{out}/sigma_rot8_f16.gguf", "sigma", part, make_weights(5, part), "f16")
    # a sigma file with n_k = n_v and no AugQ, and the equivalent llama file
    W = make_weights(4, twin)
    write(f"{out}/pair_sigma_f32.gguf", "sigma", twin, W, "f32")
    P = dict(W)
    for l in range(twin["layers"]):
        P[f"blk.{l}.attn_q.weight"] = permute_llama(W[f"blk.{l}.attn_q.weight"], twin["nq"])
        P[f"blk.{l}.attn_k.weight"] = permute_llama(W[f"blk.{l}.attn_k.weight"], twin["nk"])
    write(f"{out}/pair_llama_f32.gguf", "llama", twin, P, "f32")
    # RoPE scaling, with a small theta so that it changes the logits of 20
    # tokens: per-frequency factors (Llama 3.1's rope_freqs tensor) and
    # linear scaling (every frequency divided by the factor)
    rs = dict(gqa, theta=100.0)
    W = make_weights(6, rs)
    W["rope_freqs.weight"] = np.array([1.0, 0.5, 2.0, 3.0, 1.0, 4.0, 8.0, 1.5])
    write(f"{out}/llama_ropefreqs_f32.gguf", "llama", rs, W, "f32")
    write(f"{out}/llama_linear_f32.gguf", "llama", dict(rs, linear=4.0), make_weights(6, rs), "f32")
    with tempfile.TemporaryDirectory() as tmp:   # the same weights unscaled, for the printout
        write(f"{tmp}/plain.gguf", "llama", rs, make_weights(6, rs), "f32")
        plain = sigma_ref.forward(sigma_ref.Model(f"{tmp}/plain.gguf"), TOKENS)
    for i, (arch, sh) in enumerate(ARCH_SHAPES.items()):
        W = make_arch_weights(arch, 100 + i, sh)
        write_arch(f"{out}/{arch}_f32.gguf", arch, sh, W)
        verify(f"{out}/{arch}_f32.gguf", W)
    for name in sorted(os.listdir(out)):
        if name.endswith(".gguf"):
            made[name] = expect(os.path.join(out, name))
    for k in ("ropefreqs", "linear"):
        d = np.abs(made[f"llama_{k}_f32.gguf"] - plain).max()
        print(f"reference: llama_{k} vs the same weights without scaling max |diff| = {d:.3g}")
    d = np.abs(made["pair_sigma_f32.gguf"] - made["pair_llama_f32.gguf"]).max()
    print(f"reference: sigma vs permuted llama max |diff| = {d:.3g}")
    for k in ("f16", "q8_0"):
        d = np.abs(made[f"sigma_augq_{k}.gguf"] - made["sigma_augq_f32.gguf"]).max()
        print(f"reference: sigma_augq {k} vs f32 max |diff| = {d:.3g}")
    print("wrote", ", ".join(sorted(made)))


if __name__ == "__main__":
    main()
