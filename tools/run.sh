#!/usr/bin/env bash
# Build libsigma (release) if needed and run sigma-run with the given
# arguments. Without -m, sigma-run uses the default model in models/.
# Usage: tools/run.sh -p "It is a truth universally acknowledged" [-n 64] ...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tools/deps.sh
dir=build/release
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" --buildtype=release > /dev/null
fi
ninja -C "$dir" > build/run-build.log 2>&1 || { tail -n 40 build/run-build.log; exit 1; }
exec "$dir/examples/sigma-run" "$@"
