#!/usr/bin/env bash
# Run an example program on a model, for `meson test` (suite examples).
# Usage: test-example.sh PROGRAM [ARGS...]   (the model path is inserted as
# the first argument; stdin is /dev/null unless EXAMPLE_STDIN is set).
# The model (it needs a tokenizer): $SIGMA_TEST_MODEL, else the shipped
# models/sigma-austen.gguf; exits 77 (skipped) when there is none.
set -u
prog=$1; shift
model=""
[ -n "${SIGMA_TEST_MODEL:-}" ] && [ -f "$SIGMA_TEST_MODEL" ] && model=$SIGMA_TEST_MODEL
if [ -z "$model" ] && [ -n "${SIGMA_SOURCE_ROOT:-}" ] && [ -f "$SIGMA_SOURCE_ROOT/models/sigma-austen.gguf" ]; then
  model="$SIGMA_SOURCE_ROOT/models/sigma-austen.gguf"
fi
if [ -z "$model" ]; then
  echo "no model (SIGMA_TEST_MODEL or models/sigma-austen.gguf): skipping"
  exit 77
fi
echo "model: $model"
if [ -n "${EXAMPLE_STDIN:-}" ]; then
  printf '%b' "$EXAMPLE_STDIN" | "$prog" "$model" "$@"
else
  "$prog" "$model" "$@" < /dev/null
fi
