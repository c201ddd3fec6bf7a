#!/bin/sh
# Perplexity on the real model: sigma-perplexity -c 512 over the committed
# first 100,000 bytes of Persuasion (tests/fixtures/persuasion-100k.txt,
# public domain), compared with a recorded value (the numpy reference's,
# tools/reference/sigma_ref.py --ppl, where it was computed).
#   check_ppl.sh SIGMA_PERPLEXITY TEXT EXPECTED_PPL REL_TOL [EXTRA ARGS...]
# Skips (77) unless SIGMA_TEST_MODEL is SmolLM2-135M-Instruct Q4_1, the model
# the values were recorded on.
set -u
exe=$1 text=$2 want=$3 tol=$4
shift 4
model=${SIGMA_TEST_MODEL:-}
if [ -z "$model" ]; then
    echo "SIGMA_TEST_MODEL not set: skipped"
    exit 77
fi
case $(basename "$model") in
    SmolLM2-135M-Instruct.Q4_1.gguf) ;;
    *) echo "SIGMA_TEST_MODEL is not SmolLM2-135M-Instruct.Q4_1.gguf: skipped"; exit 77 ;;
esac
out=$("$exe" -m "$model" -f "$text" -c 512 "$@") || { echo "sigma-perplexity failed"; exit 1; }
echo "$out"
got=$(printf '%s\n' "$out" | tail -n 1 | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- [0-9.]*$/\1/p')
if [ -z "$got" ]; then
    echo "last line is not 'Final estimate: PPL = X +/- Y'"
    exit 1
fi
awk -v g="$got" -v w="$want" -v t="$tol" 'BEGIN {
    d = (g - w) / w; if (d < 0) d = -d
    printf "PPL %s, recorded %s: relative difference %.5f (bound %s)\n", g, w, d, t
    exit !(d <= t)
}'
