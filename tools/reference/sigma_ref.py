#!/usr/bin/env python3
"""An independent numpy reference for libsigma's forward pass.

Written from docs/sigma.md (sections 1, 2 and 6), not from the C
code: it reads a GGUF file (architectures `llama` and `sigma`) with the PyPI
`gguf` package and computes logits for every position of a token sequence in
float64. Weight types: F32, F16, BF16, Q8_0, Q4_0, Q4_1 (dequantized here).

    python3 tools/reference/sigma_ref.py MODEL.gguf --tokens 1,2,3 [--out x.npy]
    python3 tools/reference/sigma_ref.py MODEL.gguf --ppl TEXT [--ctx 512] [--chunks K]
            [--tokenizer hf|sigma]

--ppl computes perplexity by llama.cpp's method (see perplexity()). The text is
tokenized with PyPI `tokenizers` built from the GGUF vocabulary and merges
(byte-level BPE; --tokenizer hf, the default) or with libsigma's tokenizer
through bindings/python (--tokenizer sigma; needs SIGMA_LIBRARY and
PYTHONPATH=bindings/python).
"""
import argparse
import sys

import numpy as np
from gguf import GGUFReader

# ---------------------------------------------------------------- weights

F32, F16, Q4_0, Q4_1, Q8_0, BF16 = 0, 1, 2, 3, 8, 30


def _f16(b):
    return np.frombuffer(b.tobytes(), dtype="<f2").astype(np.float64)


def dequantize(t):
    """Tensor -> float64 array of shape (ne1, ne0) (rows = outputs)."""
    ne = [int(x) for x in t.shape]
    ne0 = ne[0]
    rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
    raw = np.frombuffer(np.asarray(t.data).tobytes(), dtype=np.uint8)
    typ = int(t.tensor_type)
    if typ == F32:
        v = raw.view("<f4").astype(np.float64)
    elif typ == F16:
        v = raw.view("<f2").astype(np.float64)
    elif typ == BF16:
        v = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif typ == Q8_0:
        b = raw.reshape(-1, 34)
        d = _f16(b[:, :2].copy())
        q = b[:, 2:].view(np.int8).astype(np.float64)
        v = (q * d[:, None]).reshape(-1)
    elif typ in (Q4_0, Q4_1):
        bs = 18 if typ == Q4_0 else 20
        b = raw.reshape(-1, bs)
        d = _f16(b[:, :2].copy())
        qs = b[:, bs - 16:]
        lo = (qs & 0x0F).astype(np.float64)
        hi = (qs >> 4).astype(np.float64)
        q = np.concatenate([lo, hi], axis=1)       # elements 0..15 low, 16..31 high
        if typ == Q4_0:
            v = ((q - 8.0) * d[:, None]).reshape(-1)
        else:
            m = _f16(b[:, 2:4].copy())
            v = (q * d[:, None] + m[:, None]).reshape(-1)
    else:
        # other types (K-quants, Q5_0, ...): the gguf package's own dequantizer
        try:
            from gguf.quants import dequantize as gq
        except ImportError:
            raise SystemExit(f"sigma_ref: tensor {t.name}: type {typ} not supported")
        v = np.asarray(gq(np.asarray(t.data), t.tensor_type), dtype=np.float64).reshape(-1)
    return v.reshape(rows, ne0)


class Model:
    def __init__(self, path):
        r = GGUFReader(path)
        self.reader = r
        self.path = path
        self.kv = {}
        for k, f in r.fields.items():
            try:
                self.kv[k] = f.contents()
            except Exception:
                pass
        self.t = {t.name: t for t in r.tensors}
        a = self.kv["general.architecture"]
        self.arch = a
        g = lambda key, d=None: self.kv.get(f"{a}.{key}", d)
        self.n_layer = g("block_count")
        self.n_embd = g("embedding_length")
        self.n_q = g("attention.head_count")
        if a == "sigma":
            self.n_k = g("attention.head_count_k")
            self.n_v = g("attention.head_count_v")
            self.d_qk = g("attention.key_length")
            self.d_v = g("attention.value_length")
            self.d_aug = g("attention.augq_length", 0) or 0
            self.halves = True
        elif a in ARCHS:
            self.n_k = self.n_v = g("attention.head_count_kv", self.n_q)
            self.d_qk = g("attention.key_length", self.n_embd // self.n_q)
            self.d_v = g("attention.value_length", self.n_embd // self.n_q)
            self.d_aug = 0
            # llama.cpp permutes Q/K rows of llama files to adjacent pairs;
            # every other architecture keeps HF's rotate-halves layout
            self.halves = a != "llama"
        else:
            raise SystemExit(f"sigma_ref: architecture {a} not supported")
        spec = ARCHS.get(a, {})
        self.spec = spec
        # Gemma: the embedding is multiplied by sqrt(hidden size)
        self.embd_scale = np.sqrt(self.n_embd) if spec.get("embd_scale") else 1.0
        # score scale: 1/sqrt(head dim) (Gemma: query_pre_attn_scalar^-1/2, which
        # equals it for the models with head_dim = query_pre_attn_scalar)
        self.attn_scale = float(g("attention.scale", 1.0 / np.sqrt(self.d_qk)))
        self.final_cap = float(g("final_logit_softcapping", 0.0) or 0.0) if spec.get("softcap") else 0.0
        self.attn_cap = float(g("attn_logit_softcapping", 0.0) or 0.0) if spec.get("softcap") else 0.0
        self.window = int(g("attention.sliding_window", 0) or 0) if "sliding" in spec else 0
        if a == "phi3" and self.window >= g("context_length"):
            self.window = 0
        self.n_rot = g("rope.dimension_count", self.d_qk)
        self.theta = float(g("rope.freq_base", 10000.0))
        # RoPE scaling: linear divides every frequency by the factor; the
        # rope_freqs tensor (Llama 3.1) divides frequency i by its element i
        self.freq_div = np.ones(self.n_rot // 2)
        if g("rope.scaling.type", "none") == "linear":
            self.freq_div *= float(g("rope.scaling.factor"))
        if "rope_freqs.weight" in self.t:
            self.freq_div = self.freq_div * dequantize(self.t["rope_freqs.weight"]).reshape(-1)
        self.eps = float(g("attention.layer_norm_rms_epsilon"))
        self._cache = {}

    def sliding(self, l):
        """Is layer l a sliding-window (local) layer?"""
        return bool(self.window) and self.spec["sliding"](l)

    def w(self, name):
        if name not in self._cache:
            self._cache[name] = dequantize(self.t[name])
        return self._cache[name]

    def token_bytes(self):
        """The vocabulary as stored (list of str) and the token types."""
        f = self.reader.fields["tokenizer.ggml.tokens"]
        toks = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        tf = self.reader.fields.get("tokenizer.ggml.token_type")
        types = [int(tf.parts[i][0]) for i in tf.data] if tf else [1] * len(toks)
        return toks, types

    def has(self, name):
        return name in self.t


# ---------------------------------------------------------------- forward

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w.reshape(-1)


def silu(x):
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x):
    """GELU, tanh approximation (HF "gelu_pytorch_tanh")."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


# What each architecture adds to the llama block, from the models' own
# definitions (HF transformers' modeling files and configs):
#   qwen2  - Q/K/V projections with bias; rotate-halves RoPE.
#   qwen3  - no biases; RMSNorm over each Q and K head (q_norm/k_norm, weight
#            of head_dim) before RoPE.
#   gemma2 - embedding * sqrt(hidden); GeGLU (gelu tanh); RMSNorm after the
#            attention and after the MLP (before the residual add); attention
#            and final logits soft-capped (cap * tanh(x / cap)); even layers
#            (0, 2, ...) attend over a sliding window. Gemma's RMSNorm scales
#            by (1 + w): llama.cpp's converter stores 1 + w, so here a norm
#            weight is used as stored.
#   gemma3 - gemma2 without soft-capping, plus Q/K head norms; layer l is
#            local (sliding window, RoPE base rope_local_base_freq = 10000)
#            unless (l + 1) % 6 == 0; global layers use rope.freq_base.
#   phi3   - fused qkv_proj ([q; k; v] rows) and gate_up_proj ([gate; up]);
#            sliding_window over every layer when smaller than the context.
ARCHS = {
    "llama": {},
    "qwen2": {"bias": True},
    "qwen3": {"qk_norm": True},
    "gemma2": {"embd_scale": True, "gelu": True, "post_norms": True, "softcap": True,
               "sliding": lambda l: l % 2 == 0},
    "gemma3": {"embd_scale": True, "gelu": True, "post_norms": True, "qk_norm": True,
               "sliding": lambda l: (l + 1) % 6 != 0, "local_theta": 10000.0},
    "phi3": {"sliding": lambda l: True},
}


def rope(x, pos, n_rot, theta, halves, freq_div=None):
    """x: [T, heads, d]; rotate the first n_rot dims of each head."""
    half = n_rot // 2
    freq = theta ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    if freq_div is not None:
        freq = freq / freq_div
    ang = pos[:, None] * freq[None, :]                 # [T, half]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x = x.copy()
    if halves:   # pairs (i, i + n_rot/2)
        a, b = x[..., :half].copy(), x[..., half:n_rot].copy()
        x[..., :half] = a * c - b * s
        x[..., half:n_rot] = a * s + b * c
    else:        # adjacent pairs (2i, 2i+1)
        a, b = x[..., 0:n_rot:2].copy(), x[..., 1:n_rot:2].copy()
        x[..., 0:n_rot:2] = a * c - b * s
        x[..., 1:n_rot:2] = a * s + b * c
    return x


def topv_mask(s, k, first, select, heads):
    """Selective V fetching (docs/sigma.md §3) on causal scores s[h][T][T]
    (-inf above the diagonal) of the query heads `heads` sharing one V head:
    rows (queries) >= `first` keep their k largest scores (ties: any), the
    others are set to -inf so the softmax is renormalised over the kept rows.
    select "head": each query head its own top-k; "vhead": every head of the
    group uses the union of the group's top-k sets. Rows with <= k positions
    are left whole."""
    T = s[0].shape[0]
    rows = np.arange(first, T)
    rows = rows[rows + 1 > k]
    if len(rows) == 0:
        return s
    keep = []
    for h in range(len(heads)):
        sub = s[h][rows]
        thr = -np.partition(-sub, k - 1, axis=1)[:, k - 1:k]
        keep.append(sub >= thr)
    if select == "vhead":
        u = np.logical_or.reduce(keep)
        keep = [u] * len(heads)
    out = []
    for h in range(len(heads)):
        t = s[h].copy()
        t[rows] = np.where(keep[h], t[rows], -np.inf)
        out.append(t)
    return out


def forward(m, tokens, topv=None):
    """topv: None or (k, first query position approximated, "head"|"vhead")"""
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    sp = m.spec
    x = m.w("token_embd.weight")[np.asarray(tokens)] * m.embd_scale
    causal = np.triu(np.full((T, T), -np.inf), k=1)
    for l in range(m.n_layer):
        p = f"blk.{l}."
        h = rmsnorm(x, m.w(p + "attn_norm.weight"), m.eps)
        if m.has(p + "attn_qkv.weight"):
            qkv = h @ m.w(p + "attn_qkv.weight").T
            QD, KD = m.n_q * m.d_qk, m.n_k * m.d_qk
            q, k, v = qkv[:, :QD], qkv[:, QD:QD + KD], qkv[:, QD + KD:]
        else:
            q = h @ m.w(p + "attn_q.weight").T
            k = h @ m.w(p + "attn_k.weight").T
            v = h @ m.w(p + "attn_v.weight").T
        if sp.get("bias"):
            q = q + m.w(p + "attn_q.bias").reshape(-1)
            k = k + m.w(p + "attn_k.bias").reshape(-1)
            v = v + m.w(p + "attn_v.bias").reshape(-1)
        if m.d_aug:
            q = (silu(q @ m.w(p + "attn_q_gate.weight").T) * (q @ m.w(p + "attn_q_up.weight").T)) \
                @ m.w(p + "attn_q_down.weight").T
        q = q.reshape(T, m.n_q, m.d_qk)
        k = k.reshape(T, m.n_k, m.d_qk)
        if sp.get("qk_norm"):
            q = rmsnorm(q, m.w(p + "attn_q_norm.weight"), m.eps)
            k = rmsnorm(k, m.w(p + "attn_k_norm.weight"), m.eps)
        local = m.sliding(l)
        theta, fdiv = m.theta, m.freq_div
        if local and "local_theta" in sp:
            theta, fdiv = sp["local_theta"], None
        q = rope(q, pos, m.n_rot, theta, m.halves, fdiv)
        k = rope(k, pos, m.n_rot, theta, m.halves, fdiv)
        v = v.reshape(T, m.n_v, m.d_v)
        mask = causal
        if local:   # query i sees keys j with i - j < window
            mask = causal + np.where(pos[:, None] - pos[None, :] >= m.window, -np.inf, 0.0)
        out = np.zeros((T, m.n_q, m.d_v))
        per_v = m.n_q // m.n_v
        for vh in range(m.n_v):
            heads = range(vh * per_v, (vh + 1) * per_v)
            ss = []
            for i in heads:
                s = q[:, i, :] @ k[:, i * m.n_k // m.n_q, :].T * m.attn_scale
                if m.attn_cap:
                    s = m.attn_cap * np.tanh(s / m.attn_cap)
                ss.append(s + mask)
            if topv:
                ss = topv_mask(ss, topv[0], topv[1], topv[2], heads)
            for i, s in zip(heads, ss):
                s = np.exp(s - s.max(axis=1, keepdims=True))
                a = s / s.sum(axis=1, keepdims=True)
                out[:, i, :] = a @ v[:, vh, :]
        o = out.reshape(T, -1) @ m.w(p + "attn_output.weight").T
        if sp.get("post_norms"):
            o = rmsnorm(o, m.w(p + "post_attention_norm.weight"), m.eps)
        x = x + o
        h = rmsnorm(x, m.w(p + "ffn_norm.weight"), m.eps)
        if m.has(p + "ffn_gate.weight"):
            g, u = h @ m.w(p + "ffn_gate.weight").T, h @ m.w(p + "ffn_up.weight").T
        else:   # fused [gate; up]
            gu = h @ m.w(p + "ffn_up.weight").T
            g, u = gu[:, :gu.shape[1] // 2], gu[:, gu.shape[1] // 2:]
        f = (gelu_tanh(g) if sp.get("gelu") else silu(g)) * u
        f = f @ m.w(p + "ffn_down.weight").T
        if sp.get("post_norms"):
            f = rmsnorm(f, m.w(p + "post_ffw_norm.weight"), m.eps)
        x = x + f
    x = rmsnorm(x, m.w("output_norm.weight"), m.eps)
    out_w = m.w("output.weight") if m.has("output.weight") else m.w("token_embd.weight")
    lg = x @ out_w.T
    if m.final_cap:
        lg = m.final_cap * np.tanh(lg / m.final_cap)
    return lg


# ---------------------------------------------------------------- tokenizer

def hf_tokenizer(m):
    """A `tokenizers` byte-level BPE built from the GGUF's vocabulary and
    merges (tokenizer.ggml.model "gpt2"); pre-tokenizer after
    tokenizer.ggml.pre: "smollm" splits digits one by one before the GPT-2
    byte-level regex, "gpt2"/"default"/absent is GPT-2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    if m.kv.get("tokenizer.ggml.model") != "gpt2":
        raise SystemExit("sigma_ref: --tokenizer hf supports tokenizer.ggml.model gpt2 only")
    toks, types = m.token_bytes()
    vocab = {}
    for i, t in enumerate(toks):
        vocab.setdefault(t, i)
    mf = m.reader.fields["tokenizer.ggml.merges"]
    merges = [tuple(bytes(mf.parts[i]).decode("utf-8").split(" ", 1)) for i in mf.data]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    pre = m.kv.get("tokenizer.ggml.pre", "gpt2")
    if pre == "smollm":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), bl])
    elif pre in ("gpt2", "default"):
        tk.pre_tokenizer = bl
    else:
        raise SystemExit(f"sigma_ref: pre-tokenizer {pre} not supported by --tokenizer hf")
    tk.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t, ty in zip(toks, types) if ty == 3])
    return tk


def tokenize(m, text, how):
    add_bos = bool(m.kv.get("tokenizer.ggml.add_bos_token", False))
    bos = m.kv.get("tokenizer.ggml.bos_token_id")
    if how == "sigma":
        import sigma   # bindings/python, SIGMA_LIBRARY=.../libsigma.so.0
        with sigma.Model(m.path) as sm:
            return list(sm.tokenize(text, add_special=True)), add_bos, bos
    ids = hf_tokenizer(m).encode(text, add_special_tokens=False).ids
    if add_bos and bos is not None:
        ids = [int(bos)] + ids
    return ids, add_bos, bos


# ---------------------------------------------------------------- perplexity

def perplexity(m, tokens, n_ctx, max_chunks, add_bos, bos, log=sys.stderr, topv=None):
    """llama.cpp's perplexity: consecutive chunks of n_ctx tokens, each from an
    empty context with its first token replaced by BOS when the model adds
    BOS; only the second half is scored: the logits at position j (j from
    n_ctx/2 to n_ctx-2) predict token j+1. Returns (ppl, its standard error)."""
    n_chunks = len(tokens) // n_ctx
    if max_chunks:
        n_chunks = min(n_chunks, max_chunks)
    if n_chunks == 0:
        raise SystemExit(f"sigma_ref: {len(tokens)} tokens, fewer than one chunk of {n_ctx}")
    nll, nll2, count = 0.0, 0.0, 0
    for c in range(n_chunks):
        chunk = list(tokens[c * n_ctx:(c + 1) * n_ctx])
        if add_bos and bos is not None:
            chunk[0] = int(bos)
        lg = forward(m, chunk, topv)
        first = n_ctx // 2
        z = lg[first:n_ctx - 1]
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        target = np.asarray(tokens[c * n_ctx + first + 1:(c + 1) * n_ctx])
        v = -logp[np.arange(len(target)), target]
        nll += v.sum()
        nll2 += (v * v).sum()
        count += len(v)
        print(f"[{c + 1}/{n_chunks}] PPL {np.exp(nll / count):.4f}", file=log, flush=True)
    mean = nll / count
    var = nll2 / count - mean * mean
    err = np.sqrt(var / (count - 1)) if count > 1 and var > 0 else 0.0
    ppl = float(np.exp(mean))
    return ppl, ppl * err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids")
    ap.add_argument("--out", help="save all-position logits (float64) as .npy")
    ap.add_argument("--ppl", metavar="TEXTFILE", help="perplexity over a text file")
    ap.add_argument("--ctx", type=int, default=512, help="tokens per chunk (default 512)")
    ap.add_argument("--chunks", type=int, default=0, help="at most K chunks (default all)")
    ap.add_argument("--tokenizer", choices=("hf", "sigma"), default="hf")
    ap.add_argument("--topv", type=int, default=0, metavar="K",
                    help="selective V fetching: queries read the V rows of their K largest scores")
    ap.add_argument("--topv-from", choices=("all", "half"), default="half",
                    help="which queries are approximated: all, or those of the scored second "
                         "half of a chunk (decoding after an exact prompt; default)")
    ap.add_argument("--topv-select", choices=("head", "vhead"), default="head",
                    help="per query head, or the union over the query heads sharing a V head")
    a = ap.parse_args()
    m = Model(a.model)
    if a.ppl:
        with open(a.ppl, encoding="utf-8") as f:
            text = f.read()
        toks, add_bos, bos = tokenize(m, text, a.tokenizer)
        print(f"{a.ppl}: {len(toks)} tokens ({a.tokenizer} tokenizer), add_bos {int(add_bos)}",
              file=sys.stderr)
        topv = None
        if a.topv:
            topv = (a.topv, 0 if a.topv_from == "all" else a.ctx // 2, a.topv_select)
        ppl, err = perplexity(m, toks, a.ctx, a.chunks, add_bos, bos, topv=topv)
        print(f"Final estimate: PPL = {ppl:.4f} +/- {err:.5f}")
        return 0
    if not a.tokens:
        ap.error("one of --tokens or --ppl is required")
    toks = [int(t) for t in a.tokens.split(",")]
    lg = forward(m, toks)
    if a.out:
        np.save(a.out, lg)
    last = lg[-1]
    top = np.argsort(-last)[:5]
    print("last position top-5:", ", ".join(f"{t}:{last[t]:.5f}" for t in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
