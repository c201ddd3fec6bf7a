#!/usr/bin/env python3
"""Hugging Face `transformers` reference for a Gemma 3 GGUF file.

Loads the GGUF file with transformers' own GGUF support
(`AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)`: the weights
are dequantized by the `gguf` package and run in float32 by transformers'
Gemma3ForCausalLM; its tensor processor turns the converter's stored norm
weights 1 + w back into w), then

  --ppl TEXT   perplexity exactly as `sigma-perplexity` computes it
               (tools/perplexity/perplexity.c): the whole file tokenized with
               BOS, cut into chunks of --ctx tokens (at most --chunks), each
               evaluated from an empty context with its first token replaced
               by BOS, the logits at positions ctx/2 .. ctx-2 scoring the next
               token; PPL = exp(mean NLL) +/- PPL * sd(NLL)/sqrt(n-1).
  --prompt P   greedy continuation of BOS + P (--greedy N tokens).

Tokens: `--tokenizer sigma` (default) uses libsigma's tokenizer through
bindings/python (set PYTHONPATH=bindings/python and SIGMA_LIBRARY to a built
libsigma.so.0); `--tokenizer hf` uses transformers' tokenizer converted from
the GGUF. `--check-tokenizer` tokenizes the text with both and reports
whether the ids are identical.

Not run in CI (it needs torch). Environment used for docs/model-format.md
(Python 3.11, CPU, a venv outside the system Python):

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install torch==2.15.0 transformers==5.25.0 \
        gguf==0.19.0 accelerate==1.16.0 numpy==2.4.6 sentencepiece==0.2.3 \
        protobuf==7.36.2
    PYTHONPATH=bindings/python SIGMA_LIBRARY=build/dev/libsigma.so.0 \
        /work/venv-ref/bin/python tools/reference/gemma3_transformers.py \
        gemma-3-270m-q4_k_m.gguf --ppl tests/fixtures/persuasion-100k.txt \
        --ctx 512 --chunks 2 --prompt "The capital of France is" --greedy 10

(The PyPI torch wheel for Linux x86_64 is a CUDA build that needs its
nvidia-* dependencies installed to import, about 5 GB; it runs on the CPU.)
"""
import argparse
import math
import os
import sys
import time


def load(path):
    import torch
    from transformers import AutoModelForCausalLM

    d, f = os.path.split(os.path.abspath(path))
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return model


def describe(model):
    c = model.config
    keys = ["model_type", "num_hidden_layers", "hidden_size", "intermediate_size",
            "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
            "rms_norm_eps", "sliding_window", "query_pre_attn_scalar",
            "final_logit_softcapping", "attn_logit_softcapping", "hidden_activation",
            "rope_theta", "rope_local_base_freq", "rope_parameters", "rope_scaling",
            "layer_types", "tie_word_embeddings"]
    for k in keys:
        if hasattr(c, k):
            print(f"config {k} = {getattr(c, k)}", file=sys.stderr)
    print(f"torch dtype of weights: {next(model.parameters()).dtype}", file=sys.stderr)


class Tok:
    def __init__(self, path, how):
        self.how = how
        self.path = path
        if how == "sigma":
            import sigma
            self.m = sigma.Model(path)
            self.add_bos = self.m.metadata("tokenizer.ggml.add_bos_token", "false") == "true"
            self.bos = self.m.special_token("bos")
        else:
            from transformers import AutoTokenizer
            d, f = os.path.split(os.path.abspath(path))
            self.t = AutoTokenizer.from_pretrained(d, gguf_file=f)
            self.add_bos = True
            self.bos = self.t.bos_token_id

    def encode(self, text):
        if self.how == "sigma":
            return list(self.m.tokenize(text, add_special=True))
        return list(self.t(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids):
        if self.how == "sigma":
            return self.m.detokenize(ids)
        return self.t.decode(ids)


def perplexity(model, toks, bos, add_bos, n_ctx, max_chunks):
    import torch

    n_chunks = len(toks) // n_ctx
    if max_chunks:
        n_chunks = min(n_chunks, max_chunks)
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    t0 = time.time()
    for c in range(n_chunks):
        chunk = list(toks[c * n_ctx:(c + 1) * n_ctx])
        if add_bos:
            chunk[0] = bos
        with torch.no_grad():
            logits = model(torch.tensor([chunk])).logits[0]
        lp = torch.log_softmax(logits.double(), dim=-1)
        for j in range(first, n_ctx - 1):
            v = -float(lp[j, toks[c * n_ctx + j + 1]])
            nll += v
            nll2 += v * v
            count += 1
        print(f"[{c + 1}/{n_chunks}] PPL {math.exp(nll / count):.4f} ({time.time() - t0:.0f} s)",
              file=sys.stderr)
    mean = nll / count
    var = nll2 / count - mean * mean
    ppl = math.exp(mean)
    se = math.sqrt(var / (count - 1)) if var > 0 and count > 1 else 0.0
    return ppl, se * ppl, n_chunks, count


def compare_sigma(path, chunk, ref):
    """libsigma's logits of the same chunk (all positions) against `ref`."""
    import numpy as np
    import sigma

    with sigma.Model(path) as m, sigma.Session(m, n_ctx=len(chunk), logits_all=True) as s:
        s.eval(chunk)
        got = np.array([s.logits(j) for j in range(len(chunk))], dtype=np.float64)
    d = np.abs(got - ref)
    scale = np.abs(ref).max(axis=1)
    j, v = np.unravel_index(int(d.argmax()), d.shape)
    same = int((got.argmax(axis=1) == ref.argmax(axis=1)).sum())

    def lsm(x):
        mx = x.max(axis=1, keepdims=True)
        return x - mx - np.log(np.exp(x - mx).sum(axis=1, keepdims=True))

    nxt = np.array(chunk[1:])
    half = len(chunk) // 2
    nll_s = -lsm(got)[np.arange(len(chunk) - 1), nxt][half:].mean()
    nll_r = -lsm(ref)[np.arange(len(chunk) - 1), nxt][half:].mean()
    print(f"libsigma vs transformers, chunk 1 ({len(chunk)} positions): max |diff| {d.max():.4g} "
          f"(position {j}, token {v}), max |diff| / max |logit| per position "
          f"{(d.max(axis=1) / scale).max():.4g}, mean |diff| {d.mean():.4g}, "
          f"argmax equal at {same}/{len(chunk)} positions; "
          f"mean NLL of the scored half {nll_s:.6f} vs {nll_r:.6f}")


def greedy(model, ids, n):
    import torch

    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids])).logits[0, -1]
            t = int(torch.argmax(logits))
            out.append(t)
            ids.append(t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--ppl", metavar="TEXT")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--tokenizer", choices=["sigma", "hf"], default="sigma")
    ap.add_argument("--check-tokenizer", action="store_true",
                    help="compare libsigma's and transformers' token ids on the text")
    ap.add_argument("--prompt")
    ap.add_argument("--greedy", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dump", metavar="NPY",
                    help="save the float32 logits of the first chunk")
    ap.add_argument("--compare-sigma", action="store_true",
                    help="also evaluate the first chunk with libsigma (Python binding) and "
                         "report the largest logit difference")
    a = ap.parse_args()

    import torch
    import transformers
    from importlib.metadata import version
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"gguf {version('gguf')}", file=sys.stderr)

    model = load(a.model)
    describe(model)
    tok = Tok(a.model, a.tokenizer)

    if a.ppl:
        with open(a.ppl, "rb") as f:
            text = f.read().decode("utf-8")
        toks = tok.encode(text)
        print(f"{a.ppl}: {len(toks)} tokens ({a.tokenizer} tokenizer), add_bos {int(tok.add_bos)}",
              file=sys.stderr)
        if a.check_tokenizer:
            other = Tok(a.model, "hf" if a.tokenizer == "sigma" else "sigma").encode(text)
            same = other == toks
            print(f"tokenizer check: sigma and hf ids {'identical' if same else 'DIFFER'} "
                  f"({len(toks)} vs {len(other)} tokens)")
            if not same:
                k = next((i for i, (x, y) in enumerate(zip(toks, other)) if x != y),
                         min(len(toks), len(other)))
                print(f"  first difference at {k}: {toks[k:k + 8]} vs {other[k:k + 8]}")
        if a.dump or a.compare_sigma:
            import numpy as np
            chunk = list(toks[:a.ctx])
            if tok.add_bos:
                chunk[0] = tok.bos
            with torch.no_grad():
                ref = model(torch.tensor([chunk])).logits[0].double().numpy()
            if a.dump:
                np.save(a.dump, ref.astype(np.float32))
            if a.compare_sigma:
                compare_sigma(a.model, chunk, ref)
        ppl, se, n_chunks, count = perplexity(model, toks, tok.bos, tok.add_bos, a.ctx, a.chunks)
        print(f"{n_chunks} chunks of {a.ctx}, {count} scored tokens")
        print(f"Final estimate: PPL = {ppl:.4f} +/- {se:.5f}")

    if a.prompt is not None:
        ids = tok.encode(a.prompt)
        if not ids or ids[0] != tok.bos:
            ids = [tok.bos] + ids
        out = greedy(model, ids, a.greedy)
        print(f"prompt ids {ids}")
        print(f"greedy ids {out}")
        print(f"greedy: {a.prompt!r} -> {tok.decode(out)!r}")


if __name__ == "__main__":
    main()
