#!/usr/bin/env python3
"""Plot decode speed against context length from sigma-bench CSV output.

    sigma-bench -m sigma.gguf,gqa.gguf -n 32 -p 0 -d 0,1024,4096,16384 \
        --kv 'dense;topv:k=100' -o csv > decode.csv
    python3 tools/plot/plot_decode.py decode.csv -o docs/decode-vs-context.png

One line per (model, kv strategy): tg t/s (median) against depth. A second
panel shows the attention time per token, estimated as
1/tps(depth) - 1/tps(0) (the decode time the cache adds), when depth 0 was
measured. With --attn, the second panel instead shows the attention time
measured on its own by sigma-attnbench (its Markdown tables; ms/token
median against depth, one line per shape and strategy), which is the
better measure when attention is a small part of a token (e.g. 1-layer
models, whose output matrix dominates). Needs matplotlib.

    sigma-attnbench --shape sigma -d 1024,4096,16384 --kv dense > a1.md  # etc.
    python3 tools/plot/plot_decode.py decode.csv --attn a1.md a2.md -o out.png
"""
import argparse
import csv
import sys
from collections import defaultdict


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="sigma-bench -o csv output files")
    ap.add_argument("-o", "--out", default="decode-vs-context.png")
    ap.add_argument("--title", default="Decode speed against context length")
    ap.add_argument("--attn", nargs="+", default=[], help="sigma-attnbench Markdown outputs")
    args = ap.parse_args()

    attn = defaultdict(dict)  # (shape, kv) -> depth -> ms/token
    names = {"32/4/16/64": "Sigma-1.5B shape", "32/16/16/64": "GQA twin", "32/4/4/64": "TinyLlama shape"}
    for path in args.attn:
        with open(path) as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) < 5 or not cells[3].isdigit():
                    continue
                shape = names.get(cells[0], cells[0]) + (f" x{cells[1]} layers" if cells[1] != "1" else "")
                attn[(shape, cells[2])][int(cells[3])] = float(cells[4])

    series = defaultdict(dict)  # (model, kv) -> depth -> median tps
    for path in args.csv:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("test", "").startswith("tg"):
                    continue
                key = (row["model"].replace(".gguf", ""), row["kv"])
                series[key][int(row["depth"])] = float(row["tps_median"])
    if not series:
        sys.exit("plot_decode: no tg rows in the input")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for (model, kv), pts in sorted(series.items()):
        depths = sorted(pts)
        label = f"{model} / {kv}"
        ax1.plot(depths, [pts[d] for d in depths], marker="o", label=label)
        if 0 in pts and not attn:
            ds = [d for d in depths if d > 0]
            ax2.plot(ds, [1000.0 * (1.0 / pts[d] - 1.0 / pts[0]) for d in ds], marker="o", label=label)
    ax1.set_xscale("symlog", linthresh=1024)
    ax1.set_xlabel("context (tokens already in the cache)")
    ax1.set_ylabel("decode tokens/s (median)")
    ax1.set_title(args.title)
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    for (shape, kv), pts in sorted(attn.items()):
        ds = sorted(pts)
        ax2.plot(ds, [pts[d] for d in ds], marker="o", label=f"{shape} / {kv}")
    ax2.set_xscale("log")
    ax2.set_xlabel("context (tokens)")
    if attn:
        ax2.set_yscale("log")
        ax2.set_ylabel("attention ms per token (sigma-attnbench, median)")
        ax2.set_title("Attention alone, per token and layer")
    else:
        ax2.set_ylabel("ms per token added by attention")
        ax2.set_title("Attention time per token (t(d) - t(0))")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
