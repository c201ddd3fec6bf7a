#!/usr/bin/env python3
"""Decode speed of the shipped Sigma model and its GQA twin at several
context depths, through libsigma (Python bindings), same run, medians.

    SIGMA_LIBRARY=build/release/libsigma.so.0 PYTHONPATH=bindings/python \
        python3 tools/train/compare_speed.py models/sigma-austen.gguf models/gqa-austen-twin.gguf

For each depth D: evaluate D random tokens (prefill), then time 64
single-token evals; repeat REPS times and report the median tokens/s and
the KV-cache bytes per token. Positions beyond the trained context only
matter for quality, not for speed.
"""
import random
import statistics
import sys
import time

import sigma

DEPTHS = [256, 1024, 4096]
GEN = 64
REPS = 3


def measure(path, depth, threads):
    with sigma.Model(path) as m:
        n_vocab = m.info.n_vocab
        rates = []
        kvb = 0
        for r in range(REPS):
            rng = random.Random(r)
            with sigma.Session(m, n_ctx=depth + GEN + 1, n_threads=threads) as s:
                s.eval([rng.randrange(n_vocab) for _ in range(depth)])
                t0 = time.perf_counter()
                for _ in range(GEN):
                    s.eval([rng.randrange(n_vocab)])
                dt = time.perf_counter() - t0
                rates.append(GEN / dt)
                kvb = s.kv_bytes / s.position
        return statistics.median(rates), kvb


def main():
    paths = sys.argv[1:]
    threads = 2
    print(f"| model | depth | decode t/s (median of {REPS}) | KV bytes/token |")
    print("|---|---|---|---|")
    for d in DEPTHS:
        for p in paths:
            tps, kvb = measure(p, d, threads)
            print(f"| {p.split('/')[-1]} | {d} | {tps:.1f} | {kvb:.0f} |", flush=True)


if __name__ == "__main__":
    main()
