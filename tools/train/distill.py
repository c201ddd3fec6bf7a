#!/usr/bin/env python3
"""Distil SmolLM2-135M-Instruct into a DiffQKV (`sigma`) model with fewer K
heads (issue 24; docs/sigma-smollm2.md is the model card).

Student = teacher with the K projection heads of every layer mean-pooled to
--n-k heads (default 1; V keeps SmolLM2's 3 heads). Only the pooled
projections are trained; every other weight is frozen and shared with the
teacher, so the patch that ships is just the new K (or V) tensors. No AugQ.

--train-q (with --pool k) also trains a correction dQ of every layer's Q
projection (zero at the start; the student's Q is the teacher's Q + dQ), so
each query head can adapt to the one shared K head; the patch then carries
the corrected Q projections too (make_patch.py, Q4_1 by default). --init-patch starts
the pooled projections from an earlier patch (e.g. a K-only run) instead of
the mean of the heads.

Loss (per batch of --batch windows of --seq tokens of the training text):
    KL(teacher || student) of the next-token distributions, mean per token
  + --attn-weight * sum over layers of the relative MSE of the attention
    block output (student's own residual stream vs the teacher's).
--loss local trains against per-layer targets only (student attention fed
the teacher's layer inputs): cheaper per step, no end-to-end term.
--loss cached is the same objective with the teacher run once: its per-layer
inputs, targets, roped Q and the untouched projection (V for --pool k, roped
K for --pool v) are kept in memory (f16) for --cache-windows windows, and a
step only recomputes the trained projection and the attention of every layer
(~30x less work per window than --loss local; ~1 MB per window and layer).

Sensitivity experiment (issue 24, "Done when"): --pool v --n-v 1 keeps the 3
K heads and pools V instead (n_k=3 / n_v=1), training the V projections with
the same budget.

Resumable: a checkpoint (trainable tensors, optimizer, step, RNG) is written
atomically to OUT/ckpt.pt every --save-every steps and at exit; rerunning the
same command resumes from it (data position = step: the window order is a
seeded permutation per epoch). Progress goes to OUT/log.csv.

    /work/busy nice -n 10 /work/s6-gemmaref/.venv/bin/python \
        tools/train/distill.py --out /work/distill-run --threads 2 --max-minutes 600

Tokenization uses libsigma itself (bindings/python) with the base file's
tokenizer; set SIGMA_LIBRARY to a built libsigma.so.0.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smol  # noqa: E402

# the shared data folder next to the repository (../shared/data)
DEFAULT_TRAIN = os.path.join(HERE, "..", "..", "..", "shared", "data", "austen-train.txt")


def libsigma():
    sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
    if "SIGMA_LIBRARY" not in os.environ:
        guess = os.path.join(HERE, "..", "..", "build", "dev", "libsigma.so.0")
        if os.path.exists(guess):
            os.environ["SIGMA_LIBRARY"] = os.path.abspath(guess)
    import sigma
    return sigma


def tokens_for(base, text_path, cache):
    if os.path.exists(cache):
        return np.load(cache)
    sigma = libsigma()
    with sigma.Model(base) as m, open(text_path, encoding="utf-8") as f:
        text = f.read()
        # tokenize paragraph blocks (the tokenizer's pre-split never merges
        # across "\n\n" boundaries in a way that matters for training windows)
        parts = text.split("\n\n")
        ids = []
        for i, p in enumerate(parts):
            ids.extend(m.tokenize(p + ("\n\n" if i + 1 < len(parts) else ""), add_special=False))
    a = np.asarray(ids, dtype=np.int32)
    tmp = cache + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, a)
    os.replace(tmp, cache)
    return a


class Windows:
    """Window starts (stride seq) in a seeded permutation per epoch; the last
    --val-windows windows are held out for the validation KL."""

    def __init__(self, n_tokens, seq, seed, n_val):
        n = (n_tokens - 1) // seq
        self.seq, self.seed = seq, seed
        self.val = np.arange(n - n_val, n) * seq
        self.train = np.arange(n - n_val) * seq

    def batch(self, step, bsz):
        n = len(self.train)
        idx = []
        for j in range(step * bsz, (step + 1) * bsz):
            epoch, pos = divmod(j, n)
            perm = np.random.RandomState(self.seed + epoch).permutation(n)
            idx.append(self.train[perm[pos]])
        return idx, (step + 1) * bsz / n


def make_student(c, W, a):
    """The trained tensors: the pooled K (or V) projection of every layer,
    then with --train-q every layer's dQ."""
    dh = c["d_head"]
    params = []
    init = None
    if a.init_patch:
        r = smol.gguf.GGUFReader(a.init_patch)
        init = {t.name: t for t in r.tensors}
    for i, L in enumerate(W["layers"]):
        if init is not None:
            t = init[f"blk.{i}.attn_{a.pool}.weight"]
            w = torch.from_numpy(t.data.reshape(int(t.shape[1]), int(t.shape[0])).astype(np.float32))
        elif a.pool == "k":
            w = smol.pool_heads(L["k"], c["n_kv"], a.n_k)
        else:
            w = smol.pool_heads(L["v"], c["n_kv"], a.n_v)
        params.append(torch.nn.Parameter(w.clone()))
    assert params[0].shape[0] % dh == 0
    if a.train_q:
        params += [torch.nn.Parameter(torch.zeros_like(L["q"])) for L in W["layers"]]
    return params


def split(W, params):
    """(pooled projections, dQ list or None)"""
    n = len(W["layers"])
    return params[:n], (params[n:] if len(params) > n else None)


def overrides(a, params, W):
    p, dq = split(W, params)
    qw = None if dq is None else [L["q"] + d for L, d in zip(W["layers"], dq)]
    return ((p, None) if a.pool == "k" else (None, p)) + (qw,)


def batch_tensor(toks, starts, seq, bos):
    x = np.stack([toks[s:s + seq] for s in starts]).astype(np.int64)
    x[:, 0] = bos  # every window starts like a document
    return torch.from_numpy(x)


def loss_e2e(c, W, params, a, ids):
    rec_t, rec_s = [], []
    with torch.no_grad():
        t_logits = smol.forward(c, W, ids, record=rec_t)
        t_logp = torch.log_softmax(t_logits, dim=-1)
        del t_logits
    kw, vw, qw = overrides(a, params, W)
    s_logits = smol.forward(c, W, ids, kw, vw, record=rec_s, q_ws=qw)
    s_logp = torch.log_softmax(s_logits, dim=-1)
    kl = (t_logp.exp() * (t_logp - s_logp)).sum(-1).mean()
    att = torch.zeros(())
    if a.attn_weight > 0:
        for (_, at), (_, as_) in zip(rec_t, rec_s):
            att = att + (as_ - at).pow(2).mean() / at.pow(2).mean().clamp_min(1e-8)
    return kl + a.attn_weight * att, kl.detach(), att.detach()


def loss_local(c, W, params, a, ids):
    rec_t = []
    with torch.no_grad():
        smol.forward(c, W, ids, record=rec_t)
    cos, sin = smol.rope_tables(ids.shape[1], c["d_head"], c["theta"])
    att = torch.zeros(())
    _, _, qw = overrides(a, params, W)
    for i, (h, at) in enumerate(rec_t):
        kw = params[i] if a.pool == "k" else None
        vw = params[i] if a.pool == "v" else None
        as_ = smol.attention(c, W["layers"][i], h, cos, sin, kw, vw, None if qw is None else qw[i])
        att = att + (as_ - at).pow(2).mean() / at.pow(2).mean().clamp_min(1e-8)
    return att, torch.zeros(()), att.detach()


def cache_starts(win, a):
    """The --cache-windows training windows --loss cached uses (seeded)."""
    perm = np.random.RandomState(a.seed + 7919).permutation(len(win.train))
    return win.train[np.sort(perm[:a.cache_windows])]


@torch.no_grad()
def build_cache(c, W, a, toks, starts):
    """Per layer: normed input h, teacher attention output t, roped Q and the
    fixed side (V for --pool k, roped K for --pool v), f16, window-major.
    Preallocated, so the peak is the cache itself (~27 MB per window)."""
    dh, nq, nkv, D = c["d_head"], c["n_q"], c["n_kv"], c["d_model"]
    cos, sin = smol.rope_tables(a.seq, dh, c["theta"])
    N, T = len(starts), a.seq
    cache = [{"h": torch.empty(N, T, D, dtype=torch.float16),
              "t": torch.empty(N, T, D, dtype=torch.float16),
              "q": torch.empty(N, nq, T, dh, dtype=torch.float16),
              "f": torch.empty(N, nkv, T, dh, dtype=torch.float16)} for _ in W["layers"]]
    for i in range(0, N, 4):
        ids = batch_tensor(toks, starts[i:i + 4], a.seq, c["bos"])
        B = ids.shape[0]
        rec = []
        smol.forward(c, W, ids, record=rec)
        for li, (h, at) in enumerate(rec):
            L = W["layers"][li]
            q = smol.apply_rope((h @ L["q"].T).view(B, T, nq, dh).transpose(1, 2), cos, sin)
            if a.pool == "k":
                f = (h @ L["v"].T).view(B, T, nkv, dh).transpose(1, 2)
            else:
                f = smol.apply_rope((h @ L["k"].T).view(B, T, nkv, dh).transpose(1, 2), cos, sin)
            for key, x in (("h", h), ("t", at), ("q", q), ("f", f)):
                if not torch.isfinite(x).all() or x.abs().max() > 60000:
                    raise SystemExit(f"layer {li}: {key} does not fit f16")
                cache[li][key][i:i + B] = x.to(torch.float16)
    return cache


def loss_cached(c, W, params, a, cache, idx):
    dh, nq = c["d_head"], c["n_q"]
    cos, sin = smol.rope_tables(a.seq, dh, c["theta"])
    att = torch.zeros(())
    _, dq = split(W, params)
    for li, (L, C) in enumerate(zip(W["layers"], cache)):
        h, t = C["h"][idx].float(), C["t"][idx].float()
        q, f = C["q"][idx].float(), C["f"][idx].float()
        B, T, _ = h.shape
        if dq is not None:  # RoPE is linear: rope(h (Q + dQ)^T) = cached q + rope(h dQ^T)
            q = q + smol.apply_rope((h @ dq[li].T).view(B, T, nq, dh).transpose(1, 2), cos, sin)
        w = params[li]
        x = (h @ w.T).view(B, T, w.shape[0] // dh, dh).transpose(1, 2)
        k, v = (smol.apply_rope(x, cos, sin), f) if a.pool == "k" else (f, x)
        k = k.repeat_interleave(nq // k.shape[1], dim=1)
        v = v.repeat_interleave(nq // v.shape[1], dim=1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(B, T, nq * dh) @ L["o"].T
        att = att + (o - t).pow(2).mean() / t.pow(2).mean().clamp_min(1e-8)
    return att, torch.zeros(()), att.detach()


@torch.no_grad()
def val_kl(c, W, params, a, toks, win):
    kw, vw, qw = overrides(a, params, W)
    tot = 0.0
    for s in win.val:
        ids = batch_tensor(toks, [s], a.seq, c["bos"])
        t = torch.log_softmax(smol.forward(c, W, ids), -1)
        s_ = torch.log_softmax(smol.forward(c, W, ids, kw, vw, q_ws=qw), -1)
        tot += (t.exp() * (t - s_)).sum(-1).mean().item()
    return tot / len(win.val)


def save_ckpt(path, params, opt, step, a, c, extra):
    state = {
        "step": step, "args": vars(a), "config": c,
        "params": [p.detach().clone() for p in params],
        "optim": opt.state_dict(), "torch_rng": torch.get_rng_state(),
        "extra": extra,
    }
    tmp = path + ".tmp"
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="run directory (checkpoint, log.csv, token cache)")
    ap.add_argument("--base", default=smol.DEFAULT_BASE)
    ap.add_argument("--train-text", default=DEFAULT_TRAIN)
    ap.add_argument("--pool", choices=["k", "v"], default="k",
                    help="k: n_k=--n-k, n_v=3 (default); v: n_k=3, n_v=--n-v (sensitivity run)")
    ap.add_argument("--n-k", type=int, default=1)
    ap.add_argument("--n-v", type=int, default=1)
    ap.add_argument("--loss", choices=["e2e", "local", "cached"], default="e2e")
    ap.add_argument("--cache-windows", type=int, default=256, help="--loss cached: training windows kept")
    ap.add_argument("--attn-weight", type=float, default=0.1)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3000, help="total steps (cosine schedule length)")
    ap.add_argument("--save-every", type=int, default=25)
    ap.add_argument("--val-every", type=int, default=100)
    ap.add_argument("--val-windows", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this wall time; 0: no limit")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--train-q", action="store_true", help="--pool k: also train a correction of every Q projection")
    ap.add_argument("--lr-q", type=float, default=2e-4, help="--train-q: peak learning rate of the Q corrections")
    ap.add_argument("--init-patch", default="", help="start the pooled projections from this patch file")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    c, W = smol.load_base(a.base)
    if a.pool == "k":
        assert c["n_q"] % a.n_k == 0 and c["n_kv"] % a.n_k == 0
    else:
        assert c["n_q"] % a.n_v == 0 and c["n_kv"] % a.n_v == 0
    toks = tokens_for(a.base, a.train_text, os.path.join(a.out, "train_tokens.npy"))
    win = Windows(len(toks), a.seq, a.seed, a.val_windows)
    if a.train_q and a.pool != "k":
        raise SystemExit("--train-q needs --pool k")
    params = make_student(c, W, a)
    pk, dq = split(W, params)
    groups = [{"params": pk, "peak": a.lr}] + ([{"params": dq, "peak": a.lr_q}] if dq else [])
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), weight_decay=0.0)
    ckpt = os.path.join(a.out, "ckpt.pt")
    step = 0
    if os.path.exists(ckpt):
        s = torch.load(ckpt, weights_only=False)
        for key in ("pool", "n_k", "n_v", "seq", "batch", "seed", "loss", "cache_windows", "train_q", "init_patch"):
            if s["args"].get(key, getattr(a, key) if key not in ("train_q", "init_patch") else type(getattr(a, key))()) != getattr(a, key):
                raise SystemExit(f"{ckpt} was made with --{key.replace('_', '-')} {s['args'][key]}, not {getattr(a, key)}")
        with torch.no_grad():
            for p, q in zip(params, s["params"]):
                p.copy_(q)
        opt.load_state_dict(s["optim"])
        torch.set_rng_state(s["torch_rng"])
        step = s["step"]
        print(f"resumed from {ckpt} at step {step}", flush=True)
    print(f"{len(toks)} training tokens, {len(win.train)} windows of {a.seq}; "
          f"pool={a.pool} n_k={a.n_k if a.pool == 'k' else c['n_kv']} "
          f"n_v={a.n_v if a.pool == 'v' else c['n_kv']}; loaded in {time.time() - t0:.1f}s", flush=True)

    logp = os.path.join(a.out, "log.csv")
    new_log = not os.path.exists(logp)
    logf = open(logp, "a", newline="")
    lw = csv.writer(logf)
    if new_log:
        lw.writerow(["step", "epoch", "wall_s", "step_s", "lr", "loss", "kl", "attn_rel_mse", "val_kl", "val_local"])
    if step == 0:
        v = val_kl(c, W, params, a, toks, win)
        lw.writerow([0, 0, 0, 0, 0, "", "", "", f"{v:.5f}"])
        logf.flush()
        print(f"step 0 val_kl {v:.4f}", flush=True)

    lossfn = loss_e2e if a.loss == "e2e" else loss_local
    if a.loss == "cached":
        tc = time.time()
        cstarts = cache_starts(win, a)
        cache = build_cache(c, W, a, toks, np.concatenate([cstarts, win.val]))
        nc = len(cstarts)
        vidx = torch.arange(nc, nc + len(win.val))
        print(f"teacher cache: {nc} windows (+{len(win.val)} val) in {time.time() - tc:.0f}s, "
              f"{sum(x.numel() * 2 for C in cache for x in C.values()) / 2**30:.2f} GiB", flush=True)

        def lossfn(c, W, params, a, ids, step=0):  # noqa: F811 (ids unused: windows come from the cache)
            j = np.arange(step * a.batch, (step + 1) * a.batch)
            perm = np.concatenate([np.random.RandomState(a.seed + 31 * e).permutation(nc)
                                   for e in range(j[0] // nc, j[-1] // nc + 1)])
            idx = torch.from_numpy(perm[j - (j[0] // nc) * nc])
            return loss_cached(c, W, params, a, cache, idx)
    start = time.time()
    last_saved = step
    while step < a.steps:
        if a.max_minutes and time.time() - start > a.max_minutes * 60:
            break
        ts = time.time()
        sched = min(1.0, (step + 1) / a.warmup) * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        lr = a.lr * sched
        for g in opt.param_groups:
            g["lr"] = g["peak"] * sched
        starts, epoch = win.batch(step, a.batch)
        ids = batch_tensor(toks, starts, a.seq, c["bos"])
        loss, kl, att = lossfn(c, W, params, a, ids, step) if a.loss == "cached" else lossfn(c, W, params, a, ids)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        dt = time.time() - ts
        v = vl = ""
        if step % a.val_every == 0:
            v = f"{val_kl(c, W, params, a, toks, win):.5f}"
            if a.loss == "cached":
                with torch.no_grad():
                    vl = f"{loss_cached(c, W, params, a, cache, vidx)[0].item():.5f}"
        lw.writerow([step, f"{epoch:.4f}", f"{time.time() - start:.1f}", f"{dt:.2f}", f"{lr:.3e}",
                     f"{loss.item():.5f}", f"{kl.item():.5f}", f"{att.item():.5f}", v, vl])
        logf.flush()
        print(f"step {step} loss {loss.item():.4f} kl {kl.item():.4f} attn {att.item():.4f} "
              f"{dt:.1f}s/step{' val_kl ' + v if v else ''}{' val_local ' + vl if vl else ''}", flush=True)
        if step % a.save_every == 0:
            save_ckpt(ckpt, params, opt, step, a, c, {})
            last_saved = step
    if step != last_saved:
        save_ckpt(ckpt, params, opt, step, a, c, {})
    print(f"stopped at step {step}; checkpoint {ckpt}", flush=True)


if __name__ == "__main__":
    main()
