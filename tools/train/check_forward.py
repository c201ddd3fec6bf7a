#!/usr/bin/env python3
"""Check smol.py's PyTorch forward pass against libsigma on the same file.

    check_forward.py                       # teacher: base SmolLM2 (llama) file
    check_forward.py --sigma OUT.gguf [--ckpt RUN/ckpt.pt]
        # student: the built sigma file against the PyTorch student (pooled-K
        # initialisation, or the checkpoint's K rounded to f16 as in the patch
        # and, for a --train-q run, its Q + dQ rounded to the built file's Q type)

Prints the max |logit difference| over all positions of a short prompt and
whether the argmax agrees; exits 1 above --tol.
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smol  # noqa: E402
import distill  # noqa: E402
from smol import gguf  # noqa: E402
import gguf.quants as gquants  # noqa: E402

TEXT = ("It was a truth universally acknowledged, that a single man in possession "
        "of a good fortune, must be in want of a wife.")


def qround(w, name):
    if name == "f16":
        return w.half().float()
    t = gguf.GGMLQuantizationType[name.upper()]
    return torch.from_numpy(gquants.dequantize(gquants.quantize(w.numpy().astype(np.float32), t), t).copy())


def student_weights(c, W, ckpt, pool, n, q_type="q4_1"):
    """(K overrides, V overrides, Q overrides) as the patch stores them"""
    qs = None
    if ckpt:
        s = torch.load(ckpt, weights_only=False)
        pool, ws = s["args"]["pool"], [p.detach() for p in s["params"]]
        if s["args"].get("train_q"):
            nl = len(W["layers"])
            qs = [qround(L["q"] + d, q_type) for L, d in zip(W["layers"], ws[nl:])]
            ws = ws[:nl]
        ws = [p.half().float() for p in ws]
    else:
        src = "k" if pool == "k" else "v"
        ws = [smol.pool_heads(L[src], c["n_kv"], n).half().float() for L in W["layers"]]
    return ((ws, None) if pool == "k" else (None, ws)) + (qs,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=smol.DEFAULT_BASE)
    ap.add_argument("--sigma", help="built sigma GGUF to check instead of the base file")
    ap.add_argument("--ckpt", help="checkpoint the sigma file was built from (default: pooled init)")
    ap.add_argument("--pool", choices=["k", "v"], default="k")
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--tol", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sigma = distill.libsigma()
    path = a.sigma or a.base
    c, W = smol.load_base(a.base)
    with sigma.Model(path) as m:
        ids = [c["bos"]] + m.tokenize(TEXT, add_special=False)
        with sigma.Session(m, n_ctx=256, n_threads=a.threads, logits_all=True) as s:
            s.eval(ids)
            ref = np.stack([np.array(s.logits(i), dtype=np.float32) for i in range(len(ids))])
    kw, vw, qw = (None, None, None)
    if a.sigma:
        # the type make_patch.py gave the corrected Q (--train-q runs): the built file's own
        qt = next(t.tensor_type for t in gguf.GGUFReader(a.sigma).tensors if t.name == "blk.0.attn_q.weight")
        kw, vw, qw = student_weights(c, W, a.ckpt, a.pool, a.n, qt.name.lower())
    with torch.no_grad():
        got = smol.forward(c, W, torch.tensor([ids]), kw, vw, q_ws=qw)[0].numpy()
    diff = np.abs(got - ref).max()
    agree = (got.argmax(-1) == ref.argmax(-1)).mean()
    print(f"{path}: {len(ids)} tokens, max |dlogit| {diff:.4f} "
          f"(logit range {ref.min():.1f}..{ref.max():.1f}), argmax agreement {agree:.3f}")
    sys.exit(0 if diff <= a.tol else 1)


if __name__ == "__main__":
    main()
