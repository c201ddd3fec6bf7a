#!/usr/bin/env bash
# Build tests/subproject/consumer in a scratch directory with this source
# tree symlinked as subprojects/sigma, then run the programs.
# Usage: run.sh SOURCE_ROOT
set -euo pipefail
root=$(cd "$1" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sigma-subproject.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$root/tests/subproject/consumer/"* "$work/"
mkdir "$work/subprojects"
ln -s "$root" "$work/subprojects/sigma"
cd "$work"
# --force-fallback-for: use the subproject even if libsigma is installed
meson setup build --force-fallback-for=sigma > setup.log 2>&1 || { cat setup.log; exit 1; }
grep -q "Subproject sigma" setup.log || { cat setup.log; echo "sigma was not used as a subproject"; exit 1; }
ninja -C build -j "$(nproc)" > build.log 2>&1 || { tail -n 60 build.log; exit 1; }
./build/consumer
./build/consumer-cpp
# the program links the subproject's shared library by its SONAME
readelf -d build/consumer | grep -q 'NEEDED.*libsigma.so.0'
