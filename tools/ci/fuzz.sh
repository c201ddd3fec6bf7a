#!/usr/bin/env bash
# Build the libFuzzer harnesses (clang, ASan+UBSan) and run each for
# SECONDS seconds (default 60) on a scratch copy of its seed corpus, as many
# harnesses at once as there are cores.
# Appends PASS/FAIL lines to RESULTS (default /dev/stdout).
# Usage: tools/ci/fuzz.sh [SECONDS] [RESULTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${1:-60}
results=${2:-/dev/stdout}
dir=build/fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$dir" --buildtype=debugoptimized -Dfuzzing=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false -Dexamples=false \
    -Dtools=false > /dev/null
fi
ninja -C "$dir" > "$dir/fuzz-build.log" 2>&1 || { tail -n 40 "$dir/fuzz-build.log"; echo "FAIL fuzz build" >> "$results"; exit 0; }
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1
run_one() { # harness name
  local h=$1 work="$dir/corpus-$1" log="$dir/fuzz-$1.log" execs
  rm -rf "$work"; mkdir -p "$work" "$dir/artifacts-$h"
  cp -r tests/fuzz/corpus/$h/. "$work/" 2>/dev/null || true
  if "$dir/tests/fuzz/fuzz-$h" -max_total_time="$secs" -max_len=65536 -timeout=10 \
       -rss_limit_mb=4096 -artifact_prefix="$dir/artifacts-$h/" "$work" > "$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    [ -n "$execs" ] || execs=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | awk '{print $1}' | tr -d '#')
    echo "PASS fuzz-$h (${secs}s, ${execs:-?} executions)" >> "$results"
  else
    tail -n 40 "$log"
    echo "FAIL fuzz-$h (see $log)" >> "$results"
  fi
}
# one harness per core at a time (each libFuzzer run is one process): the
# same seconds per harness in about half the wall time on 2 cores
par=$(nproc); [ "$par" -ge 1 ] || par=1
running=0
for h in gguf tokenizer session chat tensors grammar schema; do
  if [ "$running" -ge "$par" ]; then wait -n || true; running=$((running - 1)); fi
  run_one "$h" &
  running=$((running + 1))
done
wait
