#!/usr/bin/env bash
# Run an example program on a model, for `meson test` (suite examples).
# Usage: test-example.sh PROGRAM [ARGS...]   (the model path is inserted as
# the first argument; stdin is /dev/null unless EXAMPLE_STDIN is set).
# The model: the first tests/fixtures/*.gguf, else $SIGMA_TEST_MODEL;
# exits 77 (skipped) when there is none.
set -u
prog=$1; shift
model=""
if [ -n "${SIGMA_SOURCE_ROOT:-}" ]; then
  for f in "$SIGMA_SOURCE_ROOT"/tests/fixtures/*.gguf; do
    [ -f "$f" ] && { model=$f; break; }
  done
fi
[ -z "$model" ] && [ -n "${SIGMA_TEST_MODEL:-}" ] && [ -f "$SIGMA_TEST_MODEL" ] && model=$SIGMA_TEST_MODEL
if [ -z "$model" ]; then
  echo "no model (tests/fixtures/*.gguf or SIGMA_TEST_MODEL): skipping"
  exit 77
fi
echo "model: $model"
if [ -n "${EXAMPLE_STDIN:-}" ]; then
  printf '%b' "$EXAMPLE_STDIN" | "$prog" "$model" "$@"
else
  "$prog" "$model" "$@" < /dev/null
fi
