#!/usr/bin/env python3
"""Write the tiny Hugging Face checkpoints used by tests/convert (fixed seed).

    python3 tools/testdata/make_convert_checkpoints.py [OUT_DIR]

OUT_DIR defaults to tests/convert/data. Writes:
  llama/          LlamaForCausalLM: hidden 64, 2 layers, 4 heads / 2 KV heads,
                  untied lm_head, Llama-3 style byte-level BPE (list-form merges),
                  mixed F16 / BF16 / F32 weights, a rotary inv_freq buffer.
  llama-sharded/  the same weights split over two shards + index.json.
  sigma/          SigmaForCausalLM: n_q 4, n_k 1, n_v 2, d_qk 16, d_v 32,
                  AugQ 32, ffn 80 (not a multiple of 32: exercises the q8_0
                  fallback), tied embeddings, SmolLM-style tokenizer with
                  string-form merges, mostly F16 weights.
Needs numpy, safetensors and tokenizers (PyPI).
"""
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

TEXT = """The quick brown fox jumps over the lazy dog. Sigma models differ in their
query, key and value heads. Attention is all you need, and a small cache is
better than a large one. 1234567890 numbers 42 and 2025! Hello, world? It's
we'll they've I'm you'd -- café naïve emoji 🙂 tabs\tand\nnewlines.
""" * 20

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(pre, specials, user_tokens, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT], trainer=trainer)
    tok.add_tokens(user_tokens)  # non-special added tokens
    return tok


def to_bf16(a):
    """f32 -> bf16 bits (round to nearest even), returned as uint16."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def save_st(path, tensors):
    """tensors: name -> (dtype, array). BF16 needs a hand-written file since
    safetensors.numpy has no bfloat16."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        if dt == "F32":
            b = arr.astype("<f4").tobytes()
        elif dt == "F16":
            b = arr.astype("<f2").tobytes()
        elif dt == "BF16":
            b = to_bf16(arr).astype("<u2").tobytes()
        else:
            raise ValueError(dt)
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def weights(rng, shape, scale=0.08):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def make_llama(out, rng):
    d = os.path.join(out, "llama")
    os.makedirs(d, exist_ok=True)
    H, L, nh, nkv, ff, V = 64, 2, 4, 2, 128, 320
    hd = H // nh
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok = train_tokenizer(pre, ["<|begin_of_text|>", "<|end_of_text|>"], ["<tool>"], 300)
    tok.save(os.path.join(d, "tokenizer.json"))
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_bos_token": True,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
        "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
    })
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nh,
        "num_key_value_heads": nkv, "intermediate_size": ff, "vocab_size": V,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
        "torch_dtype": "bfloat16",
    })
    t = {}
    t["model.embed_tokens.weight"] = ("F16", weights(rng, (V, H)))
    t["lm_head.weight"] = ("BF16", weights(rng, (V, H)))
    t["model.norm.weight"] = ("F32", 1 + weights(rng, (H,), 0.1))
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = ("F32", 1 + weights(rng, (H,), 0.1))
        t[p + "post_attention_layernorm.weight"] = ("BF16", 1 + weights(rng, (H,), 0.1))
        t[p + "self_attn.q_proj.weight"] = ("BF16", weights(rng, (nh * hd, H)))
        t[p + "self_attn.k_proj.weight"] = ("F32", weights(rng, (nkv * hd, H)))
        t[p + "self_attn.v_proj.weight"] = ("BF16", weights(rng, (nkv * hd, H)))
        t[p + "self_attn.o_proj.weight"] = ("BF16", weights(rng, (H, nh * hd)))
        t[p + "self_attn.rotary_emb.inv_freq"] = (
            "F32", (1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)).astype(np.float32))
        t[p + "mlp.gate_proj.weight"] = ("BF16", weights(rng, (ff, H)))
        t[p + "mlp.up_proj.weight"] = ("F16", weights(rng, (ff, H)))
        t[p + "mlp.down_proj.weight"] = ("BF16", weights(rng, (H, ff)))
    # a few extreme values: f16 overflow / subnormal paths, exact zeros
    emb = t["model.embed_tokens.weight"][1]
    emb[5, :4] = [0.0, -0.0, 6.0e-8, 1.0e-5]
    t["lm_head.weight"][1][7, :3] = [70000.0, -70000.0, 1.0e-30]
    save_st(os.path.join(d, "model.safetensors"), t)

    s = os.path.join(out, "llama-sharded")
    os.makedirs(s, exist_ok=True)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(d, f), os.path.join(s, f))
    names = sorted(t)
    shard_of = {n: (1 if n.startswith("model.layers.1.") or n == "lm_head.weight" else 0)
                for n in names}
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for i, fn in enumerate(files):
        save_st(os.path.join(s, fn), {n: t[n] for n in names if shard_of[n] == i})
    write_json(os.path.join(s, "model.safetensors.index.json"), {
        "metadata": {"total_size": 0},
        "weight_map": {n: files[shard_of[n]] for n in names},
    })


def make_sigma(out, rng):
    d = os.path.join(out, "sigma")
    os.makedirs(d, exist_ok=True)
    H, L, nq, nk, nv, dqk, dv, aug, ff, V = 64, 2, 4, 1, 2, 16, 32, 32, 80, 300
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok = train_tokenizer(pre, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], [], 290)
    path = os.path.join(d, "tokenizer.json")
    tok.save(path)
    # rewrite the merges in the older "a b" string form
    with open(path) as f:
        tj = json.load(f)
    tj["model"]["merges"] = [m if isinstance(m, str) else " ".join(m)
                             for m in tj["model"]["merges"]]
    write_json(path, tj)
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "bos_token": {"content": "<|im_start|>", "special": True},
        "eos_token": "<|im_end|>",
        "chat_template": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
                         "{{ m['content'] }}<|im_end|>\n{% endfor %}",
    })
    write_json(os.path.join(d, "config.json"), {
        "architectures": ["SigmaForCausalLM"], "model_type": "sigma",
        "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": nq,
        "num_key_heads": nk, "num_value_heads": nv, "head_dim": dqk, "value_head_dim": dv,
        "aug_q_dim": aug, "intermediate_size": ff, "vocab_size": V,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 50000.0,
        "tie_word_embeddings": True, "eos_token_id": 2,
    })
    t = {}
    t["model.embed_tokens.weight"] = ("F16", weights(rng, (V, H)))
    t["model.norm.weight"] = ("F32", 1 + weights(rng, (H,), 0.1))
    for l in range(L):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = ("F32", 1 + weights(rng, (H,), 0.1))
        t[p + "post_attention_layernorm.weight"] = ("F16", 1 + weights(rng, (H,), 0.1))
        t[p + "self_attn.q_proj.weight"] = ("F16", weights(rng, (nq * dqk, H)))
        t[p + "self_attn.k_proj.weight"] = ("F16", weights(rng, (nk * dqk, H)))
        t[p + "self_attn.v_proj.weight"] = ("BF16", weights(rng, (nv * dv, H)))
        t[p + "self_attn.q_gate_proj.weight"] = ("F16", weights(rng, (aug, nq * dqk)))
        t[p + "self_attn.q_up_proj.weight"] = ("F16", weights(rng, (aug, nq * dqk)))
        t[p + "self_attn.q_down_proj.weight"] = ("F32", weights(rng, (nq * dqk, aug)))
        t[p + "self_attn.o_proj.weight"] = ("F16", weights(rng, (H, nq * dv)))
        t[p + "mlp.gate_proj.weight"] = ("F16", weights(rng, (ff, H)))
        t[p + "mlp.up_proj.weight"] = ("F16", weights(rng, (ff, H)))
        t[p + "mlp.down_proj.weight"] = ("F16", weights(rng, (H, ff)))
    save_st(os.path.join(d, "model.safetensors"), t)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "tests",
                                                               "convert", "data")
    rng = np.random.default_rng(20250213)
    make_llama(out, rng)
    make_sigma(out, rng)


if __name__ == "__main__":
    main()
