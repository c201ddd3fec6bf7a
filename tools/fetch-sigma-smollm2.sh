#!/usr/bin/env bash
# Build the distilled Sigma model (docs/sigma-smollm2.md, issue 24) from the
# PyPI SmolLM2-135M-Instruct Q4_1 file (tools/fetch-model.sh) plus the patch
# committed in models/, into .cache/, check its sha256 and print its path.
# Needs python3 with numpy and the `gguf` package (tools/deps.sh installs
# them); no torch. Never commit the built file (98 MB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
patch="$root/models/sigma-smollm2-k1.patch.gguf"
out="$root/.cache/sigma-smollm2/sigma-smollm2-k1.gguf"
want=$(sed -n 's/^sha256 of the built model: \([0-9a-f]\{64\}\)$/\1/p' "$root/models/sigma-smollm2-k1.sha256")
base=$(bash "$root/tools/fetch-model.sh")
if [ ! -s "$out" ] || [ "$(sha256sum "$out" | cut -d' ' -f1)" != "$want" ]; then
  mkdir -p "$(dirname "$out")"
  python3 "$root/tools/train/build_sigma_model.py" "$patch" "$out.tmp" --base "$base" >&2
  mv "$out.tmp" "$out"
fi
got=$(sha256sum "$out" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "$out: sha256 $got, expected $want (models/sigma-smollm2-k1.sha256)" >&2
  exit 1
fi
echo "$out"
