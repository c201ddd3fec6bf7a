#!/usr/bin/env python3
"""The tiny per-architecture fixtures against Hugging Face `transformers`.

For each tests/fixtures/NAME.gguf this loads the file with transformers' GGUF
support (weights dequantized to float32, Gemma norms turned back from 1 + w),
runs the fixture's 20 tokens and compares all-position logits with the
numpy reference's NAME.logits (the values tests/forward holds libsigma to),
and, with --sigma, with libsigma's own logits through bindings/python.

transformers' GGUF reader leaves a few hyperparameters at its config
defaults; they are set from the file here (OVERRIDES): Gemma's
query_pre_attn_scalar (not in GGUF; llama.cpp scales by 1/sqrt(head_dim) and
transformers' default 256 is right only for the real models' head_dim 256),
gemma2's soft-caps, qwen3's key_length, phi3's sliding_window and its token
ids (32000 is outside the tiny vocabulary).

Not run in CI (it needs torch). Environment: see gemma3_transformers.py.

    PYTHONPATH=bindings/python SIGMA_LIBRARY=build/dev/libsigma.so.0 \
        /work/venv-ref/bin/python tools/reference/transformers_tiny.py --sigma
"""
import argparse
import os
import struct
import sys

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")

OVERRIDES = {
    "llama_gqa_f32": {},
    "qwen2_f32": {},
    "qwen3_f32": dict(head_dim=32),
    "gemma3_f32": dict(query_pre_attn_scalar=16),
    "gemma2_f32": dict(query_pre_attn_scalar=16, attn_logit_softcapping=2.0,
                       final_logit_softcapping=5.0),
    "phi3_f32": dict(sliding_window=6, pad_token_id=None, eos_token_id=None, bos_token_id=0),
}


def read_logits(path):
    b = open(path, "rb").read()
    n, v = struct.unpack("<II", b[:8])
    toks = np.frombuffer(b[8:8 + 4 * n], "<i4").tolist()
    return toks, np.frombuffer(b[8 + 4 * n:], "<f4").reshape(n, v).astype(np.float64)


def sigma_logits(path, toks):
    import sigma
    with sigma.Model(path) as m, sigma.Session(m, n_ctx=len(toks), logits_all=True) as s:
        s.eval(toks)
        return np.array([s.logits(j) for j in range(len(toks))], dtype=np.float64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", default=list(OVERRIDES))
    ap.add_argument("--sigma", action="store_true", help="also compare libsigma's logits")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative to the largest |logit|")
    a = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    bad = 0
    for name in a.names:
        path = os.path.join(FIXTURES, name + ".gguf")
        m = AutoModelForCausalLM.from_pretrained(
            FIXTURES, gguf_file=name + ".gguf", dtype=torch.float32,
            attn_implementation="eager", **OVERRIDES.get(name, {})).eval()
        toks, ref = read_logits(os.path.join(FIXTURES, name + ".logits"))
        with torch.no_grad():
            hf = m(torch.tensor([toks])).logits[0].double().numpy()
        scale = np.abs(ref).max()
        rows = [("numpy reference", ref)]
        if a.sigma:
            rows.append(("libsigma", sigma_logits(path, toks)))
        for what, x in rows:
            d = np.abs(hf - x).max()
            same = int((hf.argmax(1) == x.argmax(1)).sum())
            ok = d / scale <= a.tol
            bad += not ok
            print(f"{name}: transformers vs {what}: max |diff| {d:.3g} "
                  f"(max |logit| {scale:.3g}, relative {d / scale:.3g}), "
                  f"argmax equal {same}/{len(toks)} {'ok' if ok else 'FAIL'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
