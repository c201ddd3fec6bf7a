#!/bin/sh
# Perplexity of Gemma 3 270M Q4_K_M (tools/fetch-gemma3.sh) with
# sigma-perplexity -c 512 (or a later -c) over tests/fixtures/persuasion-100k.txt, compared
# with the numpy reference's value (tools/reference/sigma_ref.py --ppl,
# float64 from the dequantized weights, same tokens).
#   check_ppl_gemma3.sh SIGMA_PERPLEXITY TEXT EXPECTED_PPL REL_TOL [EXTRA ARGS...]
# Skips (77) unless SIGMA_TEST_GEMMA3 is that file.
set -u
exe=$1 text=$2 want=$3 tol=$4
shift 4
model=${SIGMA_TEST_GEMMA3:-}
if [ -z "$model" ] || [ ! -f "$model" ]; then
    echo "SIGMA_TEST_GEMMA3 not set (tools/fetch-gemma3.sh): skipped"
    exit 77
fi
out=$("$exe" -m "$model" -f "$text" -c 512 "$@") || { echo "sigma-perplexity failed"; exit 1; }
echo "$out"
got=$(printf '%s\n' "$out" | tail -n 1 | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- [0-9.]*$/\1/p')
if [ -z "$got" ]; then
    echo "last line is not 'Final estimate: PPL = X +/- Y'"
    exit 1
fi
awk -v g="$got" -v w="$want" -v t="$tol" 'BEGIN {
    d = (g - w) / w; if (d < 0) d = -d
    printf "PPL %s, reference %s: relative difference %.5f (bound %s)\n", g, w, d, t
    exit !(d <= t)
}'
