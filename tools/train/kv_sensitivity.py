#!/usr/bin/python3
"""K-versus-V sensitivity at this scale, without retraining.

Takes a trained checkpoint (by default the GQA twin, n_k = n_v = 4) and
merges key heads or value heads by mean-pooling the rows of k_proj / v_proj
that belong to adjacent heads (groups of n_old / n_new heads), then measures
perplexity on a text with train.py's llama.cpp-style method. Pooling K heads
and pooling V heads by the same factor removes the same number of parameters
when head_dim == value_head_dim, so each row pair is at equal parameter count.
RoPE is linear, so pooling k_proj rows equals pooling the rotated keys.

    /usr/bin/python3 tools/train/kv_sensitivity.py tools/train/out/gqa-austen \
        /work/shared/data/persuasion.txt [--chunks N]
"""
import argparse
import copy
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402


def pool_heads(model, which, n_new):
    c = copy.deepcopy(model.config)
    key = "num_key_heads" if which == "k" else "num_value_heads"
    d = c["head_dim"] if which == "k" else c["value_head_dim"]
    n_old = c[key]
    assert n_old % n_new == 0 and c["num_attention_heads"] % n_new == 0
    g = n_old // n_new
    c[key] = n_new
    m2 = T.SigmaForCausalLM(c)
    sd = model.state_dict()
    new = {}
    for k, v in sd.items():
        if k.startswith("rope_") or k == "causal":
            continue
        if k.endswith(f"self_attn.{which}_proj.weight"):
            h = v.shape[1]
            v = v.view(n_new, g, d, h).mean(dim=1).reshape(n_new * d, h)
        new[k] = v
    m2.load_state_dict(new, strict=False)
    m2.eval()
    return m2


@torch.no_grad()
def ppl_chunks(model, ids, n_ctx, bos, max_chunks):
    first = n_ctx // 2
    n_chunk = len(ids) // n_ctx
    if max_chunks:
        n_chunk = min(n_chunk, max_chunks)
    nll, cnt = 0.0, 0
    for i in range(n_chunk):
        chunk = list(ids[i * n_ctx:(i + 1) * n_ctx])
        chunk[0] = bos
        logp = torch.log_softmax(model(torch.tensor([chunk]))[0].double(), dim=-1)
        tgt = torch.tensor(chunk[first + 1:])
        nll += -logp[first:n_ctx - 1].gather(1, tgt[:, None]).sum().item()
        cnt += tgt.numel()
    return math.exp(nll / cnt), n_chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=0, help="at most N chunks (0: all)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = T.load_checkpoint(a.ckpt)
    tok = T.load_tokenizer(a.ckpt)
    bos = tok.token_to_id(T.BOS)
    ids = [bos] + T.encode_file(tok, a.text)
    c = model.config
    nk, nv = c["num_key_heads"], c["num_value_heads"]
    n_params = sum(p.numel() for p in model.parameters())
    base, nch = ppl_chunks(model, ids, a.ctx, bos, a.chunks)
    print(f"{nch} chunks of {a.ctx} tokens; base model n_k={nk} n_v={nv}, {n_params} params")
    print("| n_k | n_v | params | PPL | vs base |")
    print("|---|---|---|---|---|")
    print(f"| {nk} | {nv} | {n_params} | {base:.2f} | - |", flush=True)
    n = nk // 2
    while n >= 1:
        for which in ("k", "v"):
            if (nk if which == "k" else nv) % n:
                continue
            m2 = pool_heads(model, which, n)
            p = sum(x.numel() for x in m2.parameters())
            ppl, _ = ppl_chunks(m2, ids, a.ctx, bos, a.chunks)
            k2, v2 = (n, nv) if which == "k" else (nk, n)
            print(f"| {k2} | {v2} | {p} | {ppl:.2f} | {100 * (ppl / base - 1):+.1f}% |", flush=True)
        n //= 2


if __name__ == "__main__":
    main()
