#!/usr/bin/env bash
# Run every test of libsigma on this machine: installs build dependencies
# (Debian), fetches the SmolLM2 test model (PyPI), then builds and tests
#   1. a release build (gcc, -Werror)
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build
#   3. a ThreadSanitizer build (concurrency tests)
#   4. a clang build, and a build with only the portable C kernels
#   5. an install + pkg-config consumer program outside the build tree
#   6. an ABI comparison with the committed baseline (abi/, abidiff)
#   7. each libFuzzer harness for FUZZ_SECONDS (default 60) seconds
# and ends with one line: "N passed, N failed, N skipped".
# Usage: tools/test.sh [--quick]   (--quick: release build only)
# Suite 'slow' (whole-text perplexity, ~10 CPU-minutes) runs only by hand:
#   meson test -C build/release --suite slow
# The 'perplexity' suite runs in the release build only (too slow under
# the sanitizers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

bash tools/deps.sh
jobs=$(nproc)
out="$root/build/test-results"
rm -rf "$out"
mkdir -p "$out"
extra="$out/extra.txt"
: > "$extra"

if model=$(bash tools/fetch-model.sh 2>"$out/fetch.log"); then
  export SIGMA_TEST_MODEL="$model"
  echo "test model: $SIGMA_TEST_MODEL"
else
  echo "warning: could not fetch the SmolLM2 test model; model tests will be skipped" >&2
  cat "$out/fetch.log" >&2 || true
fi

if [ -n "${SIGMA_TEST_MODEL:-}" ] && sig=$(bash tools/fetch-sigma-smollm2.sh 2>>"$out/fetch.log"); then
  export SIGMA_TEST_SIGMA_SMOL="$sig"
  echo "Sigma SmolLM2 (distilled, built from models/): $SIGMA_TEST_SIGMA_SMOL"
else
  echo "warning: could not build the distilled Sigma model; its tests will be skipped" >&2
fi

if gemma=$(bash tools/fetch-gemma3.sh 2>>"$out/fetch.log"); then
  export SIGMA_TEST_GEMMA3="$gemma"
  echo "Gemma 3 model: $SIGMA_TEST_GEMMA3"
else
  echo "warning: could not fetch Gemma 3 270M; its perplexity test will be skipped" >&2
fi

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export TSAN_OPTIONS=halt_on_second_race=0:exitcode=66

run_build() { # name, meson args..., -- meson test args...
  local name=$1; shift
  local setup=() testargs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do setup+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  testargs=("$@")
  local dir="build/$name"
  echo "=== $name: configure ${setup[*]}"
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" --werror "${setup[@]}" > "$out/$name-setup.log" 2>&1 ||
      { cat "$out/$name-setup.log"; echo "FAIL configure $name" >> "$extra"; return 0; }
  else
    meson configure "$dir" "${setup[@]}" > /dev/null
  fi
  echo "=== $name: build"
  if ! ninja -C "$dir" -j "$jobs" > "$out/$name-build.log" 2>&1; then
    tail -n 60 "$out/$name-build.log"; echo "FAIL build $name" >> "$extra"; return 0
  fi
  echo "PASS build $name" >> "$extra"
  echo "=== $name: test"
  meson test -C "$dir" --num-processes "$jobs" --print-errorlogs "${testargs[@]}" \
    > "$out/$name-test.log" 2>&1 || true
  tail -n 25 "$out/$name-test.log"
  cp "$dir/meson-logs/testlog.json" "$out/$name.json" 2>/dev/null || true
}

run_build release --buildtype=release -Ddebug=true -- --no-suite slow
if [ $quick = 0 ]; then
  run_build asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -- --no-suite perplexity
  run_build tsan --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false -- --suite threads
  # clang: everything compiled with -Werror (the server and the binding's
  # library too); the packaging, Python-binding and HTTP-server tests check
  # build integration and protocol rather than code generation, run in the
  # gcc builds, and would add ~3 minutes here: not rerun
  CC=clang CXX=clang++ run_build clang --buildtype=release -- --no-suite perplexity \
    --no-suite packaging --no-suite python --no-suite server
  # the portable C kernels only (SIMD dispatch compiled out): the fallback
  # that every SIMD path is tested against, through every suite that runs
  # the kernels (text, bindings, server and packaging do not depend on them)
  run_build generic --buildtype=release -Dgeneric_kernels=true -- --no-suite perplexity \
    --no-suite packaging --no-suite python --no-suite server --no-suite text
  echo "=== install + pkg-config consumer"
  if bash tools/ci/consumer-check.sh build/release "$out/consumer" > "$out/consumer.log" 2>&1; then
    echo "PASS pkg-config consumer" >> "$extra"
  else
    cat "$out/consumer.log"; echo "FAIL pkg-config consumer" >> "$extra"
  fi
  echo "=== ABI check against abi/libsigma.so.0.abi"
  if bash tools/ci/abi-check.sh build/release > "$out/abi.log" 2>&1; then
    echo "PASS abi-check" >> "$extra"
  else
    cat "$out/abi.log"; echo "FAIL abi-check" >> "$extra"
  fi
  echo "=== fuzzing (${FUZZ_SECONDS:-60}s per harness)"
  bash tools/ci/fuzz.sh "${FUZZ_SECONDS:-60}" "$extra"
  grep fuzz "$extra" || true
fi

python3 tools/ci/summarize.py "$out"/*.json "$extra"
