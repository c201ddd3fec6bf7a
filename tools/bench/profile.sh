#!/usr/bin/env bash
# Where the time of a sigma-bench run goes: the profile evidence quoted in
# docs/performance.md.
#
#   tools/bench/profile.sh [--callgrind] BUILD_DIR -- SIGMA-BENCH-ARGS...
#
# Default: `perf record` with the software clock (cpu-clock, 999 Hz; this
# VM exposes no hardware counters, so perf stat cannot count cycles or
# cache misses) over the whole sigma-bench run, then the share of samples
# per function, top 15, as a Markdown table. The warm-up and depth fill are
# included in the samples, so keep them small against the timed part.
#
# --callgrind: `valgrind --tool=callgrind` instead (instruction counts:
# repeatable whatever else runs on the machine; ~50x slower, so use -t 1
# and a few tokens), printed as instructions per function, top 15.
# valgrind does not run AVX-512, so the library picks its AVX2 kernels there;
# the counts profile those (the perf mode profiles what really runs).
set -euo pipefail
mode=perf
if [ "${1:-}" = "--callgrind" ]; then mode=callgrind; shift; fi
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
    echo "usage: $0 [--callgrind] BUILD_DIR -- SIGMA-BENCH-ARGS..." >&2
    exit 2
fi
build=$1
shift 2
bench="$build/tools/bench/sigma-bench"
[ -x "$bench" ] || { echo "$0: no $bench (build first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ $mode = perf ]; then
    command -v perf >/dev/null || { echo "$0: perf not found (apt-get install linux-perf)" >&2; exit 2; }
    perf record -q -e cpu-clock -F 999 -o "$tmp/perf.data" -- "$bench" "$@" >"$tmp/out" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; exit 1; }
    cat "$tmp/out"
    echo
    echo "| share of samples | where | function |"
    echo "| ---: | --- | --- |"
    perf report -i "$tmp/perf.data" --stdio --sort dso,sym >"$tmp/rep" 2>/dev/null
    awk '/^ *[0-9.]+%/ { pct=$1; dso=$2; $1=""; $2=""; $3=""; sub(/^ +/, ""); printf "| %s | %s | `%s` |\n", pct, dso, $0; n++; if (n == 15) exit }' "$tmp/rep"
else
    command -v valgrind >/dev/null || { echo "$0: valgrind not found" >&2; exit 2; }
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" -- "$bench" "$@" >"$tmp/out" 2>"$tmp/err" ||
        { cat "$tmp/err" >&2; exit 1; }
    cat "$tmp/out"
    echo
    callgrind_annotate "$tmp/cg.out" >"$tmp/ann" 2>/dev/null
    total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$tmp/ann")
    echo "total instructions: $total"
    echo
    echo "| instructions | share | function |"
    echo "| ---: | ---: | --- |"
    awk -v tot="$total" 'f && /^ *[0-9,]+ / { n_=$1; gsub(",", "", n_); $1=""; $2=""; sub(/^ +/, ""); sub(/ *\[.*$/, ""); sub(/^.*\//, ""); printf "| %s | %.1f%% | `%s` |\n", n_, 100.0 * n_ / tot, $0; n++; if (n == 15) exit }
             /file:function/ { f=1 }' "$tmp/ann"
fi
