#!/usr/bin/env python3
"""Decode speed of the shipped Sigma model and its GQA twin at several
context depths, through libsigma (Python bindings), same run, medians.

    SIGMA_LIBRARY=build/release/libsigma.so.0 PYTHONPATH=bindings/python \
        python3 tools/train/compare_speed.py models/sigma-austen.gguf models/gqa-austen-twin.gguf

For each depth D: evaluate D random tokens (prefill), then time 64
single-token evals; repeat REPS times (env SPEED_REPS, default 3; models interleaved rep by
rep) and report the median tokens/s and the KV-cache bytes per token.
Threads: env SPEED_THREADS (default 2). Positions beyond the trained context only
matter for quality, not for speed.
"""
import os
import random
import statistics
import sys
import time

import sigma

DEPTHS = [256, 1024, 4096]
GEN = 64
REPS = int(os.environ.get("SPEED_REPS", "3"))
THREADS = int(os.environ.get("SPEED_THREADS", "2"))


def measure_once(path, depth, threads, r):
    with sigma.Model(path) as m:
        n_vocab = m.info.n_vocab
        rng = random.Random(r)
        with sigma.Session(m, n_ctx=depth + GEN + 1, n_threads=threads) as s:
            s.eval([rng.randrange(n_vocab) for _ in range(depth)])
            t0 = time.perf_counter()
            for _ in range(GEN):
                s.eval([rng.randrange(n_vocab)])
            dt = time.perf_counter() - t0
            return GEN / dt, s.kv_bytes / s.position


def main():
    paths = sys.argv[1:]
    threads = THREADS
    print(f"| model | depth | decode t/s (median of {REPS}) | KV bytes/token |")
    print("|---|---|---|---|")
    for d in DEPTHS:
        # interleave the models rep by rep so load changes hit both alike
        rates = {p: [] for p in paths}
        kvb = {}
        for r in range(REPS):
            for p in paths:
                tps, kvb[p] = measure_once(p, d, threads, r)
                rates[p].append(tps)
        for p in paths:
            print(f"| {p.split('/')[-1]} | {d} | {statistics.median(rates[p]):.1f} | {kvb[p]:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
