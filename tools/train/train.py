#!/usr/bin/python3
"""Train a small Sigma (DiffQKV + AugQ) model, or its GQA twin, on Jane Austen.

Architecture: docs/sigma.md (pre-norm RMSNorm, DiffQKV attention
with independent n_q / n_k / n_v and d_qk / d_v, optional AugQ SwiGLU after
q_proj, RoPE rotating halves over the head dimension, SwiGLU MLP, no biases,
tied embeddings). Module names follow the Hugging Face Llama convention so the
checkpoint converts with tools/convert/sigma-convert.

Runs with Debian's torch (/usr/bin/python3, torch 1.13; no SDPA, so attention
is written out). Needs `tokenizers` for /usr/bin/python3 (pip install
--break-system-packages tokenizers) -- only for tokenizing text.

Modes:
  train:     train.py --arch sigma --out tools/train/out/sigma-austen [--steps N --minutes M ...]
  eval-ppl:  train.py --eval-ppl FILE --ckpt DIR [--ctx 256]
  sample:    train.py --sample "It is a truth" --ckpt DIR
  params:    train.py --arch gqa --count-params
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"

# ---------------------------------------------------------------- shapes

PRESETS = {
    # Sigma: n_k < n_v, AugQ on.
    "sigma": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=8,
                  num_key_heads=2, num_value_heads=4, head_dim=24, value_head_dim=24,
                  aug_q_dim=192, intermediate_size=512),
    # GQA twin: n_k = n_v, no AugQ; MLP widened to match the parameter count.
    "gqa": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=8,
                num_key_heads=4, num_value_heads=4, head_dim=24, value_head_dim=24,
                aug_q_dim=0, intermediate_size=0),  # intermediate filled by match_params
}


def make_config(arch, vocab_size, bos_id, eos_id, ctx, theta, eps):
    c = dict(PRESETS[arch])
    c.update(
        architectures=["SigmaForCausalLM"],
        model_type="sigma",
        vocab_size=vocab_size,
        rms_norm_eps=eps,
        rope_theta=theta,
        max_position_embeddings=ctx,
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        hidden_act="silu",
        torch_dtype="float32",
    )
    return c


def count_params_cfg(c):
    h, L = c["hidden_size"], c["num_hidden_layers"]
    nq, nk, nv = c["num_attention_heads"], c["num_key_heads"], c["num_value_heads"]
    dqk, dv, da, ff = c["head_dim"], c["value_head_dim"], c["aug_q_dim"], c["intermediate_size"]
    attn = h * nq * dqk + h * nk * dqk + h * nv * dv + nq * dv * h
    if da:
        attn += 3 * nq * dqk * da
    mlp = 3 * h * ff
    per = attn + mlp + 2 * h
    emb = c["vocab_size"] * h * (1 if c["tie_word_embeddings"] else 2)
    return emb + L * per + h


def match_params(c, target):
    """Choose intermediate_size (multiple of 8) so the total is closest to target."""
    best = None
    for ff in range(8, 8 * 1024, 8):
        c2 = dict(c, intermediate_size=ff)
        d = abs(count_params_cfg(c2) - target)
        if best is None or d < best[0]:
            best = (d, ff)
    c["intermediate_size"] = best[1]
    return c


# ---------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(dim, n_pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    t = torch.arange(n_pos, dtype=torch.float64)
    f = torch.outer(t, inv)                      # [n_pos, dim/2]
    emb = torch.cat([f, f], dim=-1)              # rotate halves: pair (i, i+dim/2)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat([-x[..., d:], x[..., :d]], dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.nq, self.nk, self.nv = c["num_attention_heads"], c["num_key_heads"], c["num_value_heads"]
        self.dqk, self.dv = c["head_dim"], c["value_head_dim"]
        assert self.nq % self.nk == 0 and self.nq % self.nv == 0
        self.q_proj = nn.Linear(h, self.nq * self.dqk, bias=False)
        self.k_proj = nn.Linear(h, self.nk * self.dqk, bias=False)
        self.v_proj = nn.Linear(h, self.nv * self.dv, bias=False)
        self.o_proj = nn.Linear(self.nq * self.dv, h, bias=False)
        self.aug = c["aug_q_dim"] > 0
        if self.aug:
            da = c["aug_q_dim"]
            self.q_gate_proj = nn.Linear(self.nq * self.dqk, da, bias=False)
            self.q_up_proj = nn.Linear(self.nq * self.dqk, da, bias=False)
            self.q_down_proj = nn.Linear(da, self.nq * self.dqk, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_proj(x)
        if self.aug:
            q = self.q_down_proj(F.silu(self.q_gate_proj(q)) * self.q_up_proj(q))
        q = q.view(B, T, self.nq, self.dqk).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nk, self.dqk).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nv, self.dv).transpose(1, 2)
        cos, sin = cos[:T], sin[:T]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # query head i reads K head i*nk/nq and V head i*nv/nq
        k = k.repeat_interleave(self.nq // self.nk, dim=1)
        v = v.repeat_interleave(self.nq // self.nv, dim=1)
        s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.dqk))
        s = s.masked_fill(mask[:T, :T], float("-inf"))
        a = torch.softmax(s, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, T, self.nq * self.dv)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, ff = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(h, ff, bias=False)
        self.up_proj = nn.Linear(h, ff, bias=False)
        self.down_proj = nn.Linear(ff, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class SigmaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Inner(c)
        self.tied = c["tie_word_embeddings"]
        if not self.tied:
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        cos, sin = rope_tables(c["head_dim"], c["max_position_embeddings"], c["rope_theta"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        n = c["max_position_embeddings"]
        self.register_buffer("causal", torch.triu(torch.ones(n, n, dtype=torch.bool), 1), persistent=False)

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        L = self.config["num_hidden_layers"]
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
                continue
            std = 0.02
            if name.endswith("o_proj.weight") or name.endswith("mlp.down_proj.weight"):
                std = 0.02 / math.sqrt(2 * L)
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * std)

    def forward(self, ids):
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, self.rope_cos, self.rope_sin, self.causal)
        x = self.model.norm(x)
        w = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        return x @ w.t()


# ---------------------------------------------------------------- safetensors (own tiny writer/reader)

def save_safetensors(path, tensors, meta=None):
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu().numpy()
        b = t.tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    if meta:
        header["__metadata__"] = meta
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).copy()).view(info["shape"])
    return out


def save_checkpoint(model, outdir, tokdir, extra):
    tmp = outdir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("rope_") and k != "causal"}
    save_safetensors(os.path.join(tmp, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(model.config, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokdir, fn), os.path.join(tmp, fn))
    with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
        json.dump(extra, f, indent=2)
    old = outdir + ".old"
    if os.path.exists(outdir):
        if os.path.exists(old):
            shutil.rmtree(old)
        os.rename(outdir, old)
    os.rename(tmp, outdir)
    if os.path.exists(old):
        shutil.rmtree(old)


def load_checkpoint(ckdir):
    with open(os.path.join(ckdir, "config.json")) as f:
        c = json.load(f)
    m = SigmaForCausalLM(c)
    sd = load_safetensors(os.path.join(ckdir, "model.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("rope_") and k != "causal"]
    if missing or unexpected:
        sys.exit(f"checkpoint mismatch: missing {missing} unexpected {unexpected}")
    m.eval()
    return m


# ---------------------------------------------------------------- tokenizer

def load_tokenizer(tokdir):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))


def encode_file(tok, path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return tok.encode(text, add_special_tokens=False).ids


# ---------------------------------------------------------------- eval

@torch.no_grad()
def eval_ppl(model, tok, path, n_ctx, add_bos=True):
    """Same method as llama.cpp's perplexity tool: tokenize the whole file (with
    BOS in front when add_bos), cut into consecutive chunks of n_ctx tokens, run
    each chunk from scratch with its first token replaced by BOS, score the
    second half of each chunk (logits at positions n_ctx/2 .. n_ctx-2 predicting
    the next token), PPL = exp(mean NLL)."""
    bos = tok.token_to_id(BOS)
    ids = encode_file(tok, path)
    if add_bos:
        ids = [bos] + ids
    n_chunk = len(ids) // n_ctx
    first = n_ctx // 2
    nll, nll2, count = 0.0, 0.0, 0
    for i in range(n_chunk):
        chunk = list(ids[i * n_ctx:(i + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        x = torch.tensor([chunk])
        logp = torch.log_softmax(model(x)[0].double(), dim=-1)
        tgt = torch.tensor(chunk[first + 1:])
        v = -logp[first:n_ctx - 1].gather(1, tgt[:, None])[:, 0]
        nll += v.sum().item()
        nll2 += (v * v).sum().item()
        count += v.numel()
        if (i + 1) % 20 == 0 or i + 1 == n_chunk:
            print(f"[{i + 1}/{n_chunk}] running PPL = {math.exp(nll / count):.4f}", file=sys.stderr)
    mean = nll / count
    var = nll2 / count - mean * mean
    ppl = math.exp(mean)
    err = ppl * math.sqrt(var / (count - 1)) if var > 0 else 0.0
    return ppl, err, n_chunk, count, len(ids)


@torch.no_grad()
def sample(model, tok, prompt, n, temperature, top_k, seed):
    g = torch.Generator().manual_seed(seed)
    ids = [tok.token_to_id(BOS)] + tok.encode(prompt, add_special_tokens=False).ids
    ctx = model.config["max_position_embeddings"]
    eos = tok.token_to_id(EOS)
    for _ in range(n):
        logits = model(torch.tensor([ids[-ctx:]]))[0, -1]
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g))
        if nxt == eos:
            break
        ids.append(nxt)
    return tok.decode(ids[1:])


@torch.no_grad()
def val_loss(model, data, starts, seq, bs):
    tot, n = 0.0, 0
    for i in range(0, len(starts), bs):
        s = starts[i:i + bs]
        x = torch.from_numpy(np.stack([data[j:j + seq] for j in s]).astype(np.int64))
        y = torch.from_numpy(np.stack([data[j + 1:j + seq + 1] for j in s]).astype(np.int64))
        lg = model(x)
        tot += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), y.reshape(-1), reduction="sum").item()
        n += y.numel()
    return tot / n


# ---------------------------------------------------------------- train

def train(a):
    torch.manual_seed(a.seed)
    tok = load_tokenizer(a.tokenizer)
    V = tok.get_vocab_size()
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    c = make_config(a.arch, V, bos, eos, a.ctx, a.theta, a.eps)
    if a.arch == "gqa":
        target = count_params_cfg(make_config("sigma", V, bos, eos, a.ctx, a.theta, a.eps))
        match_params(c, target)
    model = SigmaForCausalLM(c)
    model.init_weights(a.seed)
    if a.init:
        # continue from a checkpoint of the same shape (a second stage with
        # its own learning-rate schedule)
        prev = load_checkpoint(a.init)
        missing = model.load_state_dict(prev.state_dict(), strict=False)
        assert not missing.unexpected_keys, missing
        print(f"continuing from {a.init}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == count_params_cfg(c), (n_params, count_params_cfg(c))
    print("config", json.dumps(c), flush=True)
    print(f"params {n_params}", flush=True)

    # data: one token stream; the last val_frac of it is held out for validation
    ids = np.array(encode_file(tok, a.data), dtype=np.int32)
    n_val = int(len(ids) * a.val_frac)
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    print(f"tokens: train {len(train_ids)} val {len(val_ids)}", flush=True)
    rng = np.random.default_rng(a.seed)
    vr = np.random.default_rng(1234)
    val_starts = vr.integers(0, len(val_ids) - a.ctx - 1, size=a.val_seqs)

    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    t0 = time.time()
    budget = a.minutes * 60.0
    last_save = t0
    tokens_seen = 0
    ema = None
    log = []
    step = 0

    def lr_at(step, elapsed):
        # progress follows whichever runs out first: steps or wall-clock budget,
        # so the schedule has decayed when the time limit stops the run
        prog = max(step / a.steps, elapsed / budget)
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        prog = min(1.0, prog)
        return a.min_lr + 0.5 * (a.lr - a.min_lr) * (1 + math.cos(math.pi * prog))

    def do_save(final):
        model.eval()
        vl = val_loss(model, val_ids, val_starts, a.ctx, a.batch)
        model.train()
        st = dict(step=step, tokens_seen=tokens_seen, train_loss_ema=ema, val_loss=vl,
                  elapsed_s=time.time() - t0, final=final, params=n_params,
                  batch=a.batch, seq=a.ctx, lr=a.lr, planned_steps=a.steps,
                  cmd=" ".join(sys.argv))
        log.append(dict(st))
        st["log"] = list(log)
        save_checkpoint(model, a.out, a.tokenizer, st)
        print(f"SAVE step {step} tokens {tokens_seen} train_ema {ema:.4f} val {vl:.4f} "
              f"elapsed {time.time() - t0:.0f}s -> {a.out}", flush=True)

    model.train()
    while step < a.steps:
        elapsed = time.time() - t0
        if elapsed >= budget:
            print("time budget reached", flush=True)
            break
        lr = lr_at(step, elapsed)
        for gparam in opt.param_groups:
            gparam["lr"] = lr
        starts = rng.integers(0, len(train_ids) - a.ctx - 1, size=a.batch)
        x = torch.from_numpy(np.stack([train_ids[j:j + a.ctx] for j in starts]).astype(np.int64))
        y = torch.from_numpy(np.stack([train_ids[j + 1:j + a.ctx + 1] for j in starts]).astype(np.int64))
        lg = model(x)
        loss = F.cross_entropy(lg.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        tokens_seen += x.numel()
        li = loss.item()
        ema = li if ema is None else 0.98 * ema + 0.02 * li
        if step % a.log_every == 0:
            el = time.time() - t0
            print(f"step {step} loss {li:.4f} ema {ema:.4f} lr {lr:.2e} "
                  f"{tokens_seen / el:.0f} tok/s elapsed {el:.0f}s", flush=True)
        if time.time() - last_save >= a.save_every:
            do_save(False)
            last_save = time.time()
    do_save(True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["sigma", "gqa"], default="sigma")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "sigma-austen"))
    ap.add_argument("--tokenizer", default=os.path.join(HERE, "out", "tokenizer"))
    ap.add_argument("--data", default="/work/shared/data/austen-train.txt")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=40.0, help="wall-clock budget")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--val-frac", type=float, default=0.05)
    ap.add_argument("--val-seqs", type=int, default=64)
    ap.add_argument("--save-every", type=float, default=300.0, help="seconds")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count-params", action="store_true")
    ap.add_argument("--eval-ppl", metavar="FILE")
    ap.add_argument("--no-bos", action="store_true")
    ap.add_argument("--sample", metavar="PROMPT")
    ap.add_argument("--n-predict", type=int, default=80)
    ap.add_argument("--temp", type=float, default=0.0)
    ap.add_argument("--top-k", type=int, default=40)
    ap.add_argument("--ckpt")
    ap.add_argument("--init", help="start from this checkpoint's weights (second stage)")
    ap.add_argument("--bench", type=int, default=0, help="time N training steps and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    if a.count_params:
        tok = load_tokenizer(a.tokenizer)
        V = tok.get_vocab_size()
        s = make_config("sigma", V, 0, 1, a.ctx, a.theta, a.eps)
        g = match_params(make_config("gqa", V, 0, 1, a.ctx, a.theta, a.eps), count_params_cfg(s))
        for n_, c in (("sigma", s), ("gqa", g)):
            print(n_, count_params_cfg(c), "ffn", c["intermediate_size"])
        return
    if a.eval_ppl:
        model = load_checkpoint(a.ckpt)
        tok = load_tokenizer(a.ckpt)
        ppl, err, nch, cnt, ntok = eval_ppl(model, tok, a.eval_ppl, a.ctx, not a.no_bos)
        print(f"{ntok} tokens, {nch} chunks of {a.ctx}, {cnt} scored")
        print(f"Final estimate: PPL = {ppl:.4f} +/- {err:.5f}")
        return
    if a.sample is not None:
        model = load_checkpoint(a.ckpt)
        tok = load_tokenizer(a.ckpt)
        print(sample(model, tok, a.sample, a.n_predict, a.temp, a.top_k, a.seed))
        return
    if a.bench:
        a.steps, a.minutes, a.save_every, a.log_every = a.bench, 1e9, 1e18, 1
        a.out = a.out + ".bench"
    train(a)


if __name__ == "__main__":
    main()
