#!/usr/bin/env bash
# Compare a built libsigma.so.0 with the committed ABI baseline
# (abi/libsigma.so.0.abi, made by `abidw`). Additions are fine; an
# incompatible change (removed/changed function, changed struct layout of
# an existing field, ...) fails. Usage: tools/ci/abi-check.sh BUILD_DIR
# To refresh the baseline at a release: tools/ci/abi-check.sh --update BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
update=0
if [ "${1:-}" = "--update" ]; then update=1; shift; fi
build=$1
lib="$build/libsigma.so.0"
base="$root/abi/libsigma.so.0.abi"
hdr="$root/include/sigma"
if [ $update = 1 ]; then
  abidw --headers-dir "$hdr" --no-corpus-path "$lib" > "$base"
  echo "wrote $base"; exit 0
fi
set +e
abidiff --headers-dir2 "$hdr" "$base" "$lib" > "$build/abidiff.txt" 2>&1
rc=$?
set -e
cat "$build/abidiff.txt"
# abidiff exit status bits: 1 error, 2 usage, 4 ABI change, 8 incompatible change
if [ $((rc & 3)) -ne 0 ]; then echo "abidiff failed to run (status $rc)"; exit 1; fi
if [ $((rc & 8)) -ne 0 ]; then echo "INCOMPATIBLE ABI change against abi/libsigma.so.0.abi"; exit 1; fi
if [ $((rc & 4)) -ne 0 ]; then echo "compatible ABI additions (fine within SONAME 0)"; fi
echo "ABI check passed"
