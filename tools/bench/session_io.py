#!/usr/bin/env python3
"""Size and speed of session files: evaluate N tokens of a text on a model,
then save/load to memory and to a file, compressed (zlib level 1) and
stored, and report sizes and median times of REPS runs.

    SIGMA_LIBRARY=build/release/libsigma.so.0 PYTHONPATH=bindings/python \
        python3 tools/bench/session_io.py MODEL TEXTFILE [N_TOKENS=2048]
"""
import os
import statistics
import sys
import tempfile
import time

import sigma

REPS = 5


def timed(fn):
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def main():
    model, text = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    with sigma.Model(model) as m:
        toks = m.tokenize(open(text, encoding="utf-8", errors="replace").read())[:n]
        print(f"model {os.path.basename(model)}, {len(toks)} tokens")
        print("| compression | file bytes | save to memory (ms) | load from memory (ms) | save to file, fsync (ms) | load from file (ms) |")
        print("|---|---|---|---|---|---|")
        for level in (1, 0):
            with sigma.Session(m, n_ctx=len(toks) + 8, save_compression=level) as s:
                s.eval(toks)
                blob = s.save_bytes()
                t_save = timed(s.save_bytes)
                with sigma.Session(m, n_ctx=len(toks) + 8) as s2:
                    t_load = timed(lambda: s2.load_bytes(blob))
                with tempfile.TemporaryDirectory() as d:
                    p = os.path.join(d, "s.bin")
                    t_fsave = timed(lambda: s.save(p))
                    with sigma.Session(m, n_ctx=len(toks) + 8) as s3:
                        t_fload = timed(lambda: s3.load(p))
                print(f"| {'zlib 1' if level else 'stored'} | {len(blob)} | {t_save:.1f} | {t_load:.1f} | {t_fsave:.1f} | {t_fload:.1f} |", flush=True)


if __name__ == "__main__":
    main()
