#!/usr/bin/env python3
"""Write the tensors a distill.py checkpoint changed as a small patch file.

The patch is itself a GGUF file (architecture `sigma-patch`): one F16 tensor
per layer, `blk.N.attn_k.weight` (or `attn_v` for a --pool v run), in the
`sigma` layout (Hugging Face row order, RoPE on halves), plus keys naming the
base file's sha256 and the head counts. build_sigma_model.py applies it.
30 layers x 64 x 576 x 2 bytes = 2.2 MB for n_k = 1. A --train-q run also
writes every layer's corrected Q projection (`blk.N.attn_q.weight`, the
base Q + dQ, same layout) quantized to --q-type, by default Q4_1 (SmolLM2's
own type, whose kernels are the fast ones): 30 x 576 x 576 x 0.625 bytes =
6.2 MB more (8.4 MB in all; Q5_1 9.7 MB, Q8_0 10.6 MB, F16 20 MB).

    make_patch.py RUN/ckpt.pt OUT.patch.gguf [--label trial]
    make_patch.py --init OUT.patch.gguf      # untrained pooled-K patch
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smol  # noqa: E402
from smol import gguf  # noqa: E402
import gguf.quants as gquants  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt", nargs="?")
    ap.add_argument("out")
    ap.add_argument("--init", action="store_true", help="pooled initialisation, no checkpoint")
    ap.add_argument("--pool", choices=["k", "v"], default="k", help="with --init")
    ap.add_argument("--n", type=int, default=1, help="with --init: heads after pooling")
    ap.add_argument("--base", default=smol.DEFAULT_BASE)
    ap.add_argument("--label", default="", help="free text stored in the patch (e.g. 'trial')")
    ap.add_argument("--q-type", choices=["q4_1", "q5_1", "q8_0", "f16"], default="q4_1",
                    help="type of the corrected Q projections of a --train-q run")
    a = ap.parse_args()
    if bool(a.ckpt) == a.init:
        raise SystemExit("give either a checkpoint or --init")
    c, W = smol.load_base(a.base)
    qs = None
    if a.init:
        pool, steps = a.pool, 0
        src = "k" if pool == "k" else "v"
        ws = [smol.pool_heads(L[src], c["n_kv"], a.n) for L in W["layers"]]
    else:
        s = torch.load(a.ckpt, weights_only=False)
        pool, steps, ws = s["args"]["pool"], s["step"], s["params"]
        if s["args"].get("train_q"):
            nl = len(W["layers"])
            qs = [L["q"] + d for L, d in zip(W["layers"], ws[nl:])]
            ws = ws[:nl]
    n = ws[0].shape[0] // c["d_head"]
    n_k, n_v = (n, c["n_kv"]) if pool == "k" else (c["n_kv"], n)
    w = gguf.GGUFWriter(a.out + ".tmp", arch="sigma-patch")
    w.add_string("patch.base_sha256", smol.sha256_file(a.base))
    w.add_string("patch.pool", pool)
    w.add_uint32("patch.head_count_k", n_k)
    w.add_uint32("patch.head_count_v", n_v)
    w.add_uint32("patch.steps", steps)
    w.add_string("patch.label", a.label)
    for i, t in enumerate(ws):
        name = f"blk.{i}.attn_{pool}.weight"
        w.add_tensor(name, np.ascontiguousarray(t.detach().float().numpy().astype(np.float16)))
        if qs is not None:
            q = np.ascontiguousarray(qs[i].detach().float().numpy().astype(np.float32))
            if a.q_type == "f16":
                w.add_tensor(f"blk.{i}.attn_q.weight", q.astype(np.float16))
            else:
                qt = gguf.GGMLQuantizationType[a.q_type.upper()]
                w.add_tensor(f"blk.{i}.attn_q.weight", gquants.quantize(q, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(a.out + ".tmp", a.out)
    print(f"{a.out}: n_k={n_k} n_v={n_v} steps={steps} {os.path.getsize(a.out)} bytes "
          f"sha256 {smol.sha256_file(a.out)}")


if __name__ == "__main__":
    main()
