#!/usr/bin/env bash
# The shared library exports only sigma_* functions (plus its version node
# SIGMA_0) and has SONAME libsigma.so.0.
set -euo pipefail
lib=$1
bad=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' |
      grep -v -E '^(sigma_[a-z0-9_]+|SIGMA_0)$' || true)
if [ -n "$bad" ]; then
  echo "unexpected exported symbols:"; echo "$bad"; exit 1
fi
n=$(nm -D --defined-only "$lib" | grep -c ' T sigma_')
[ "$n" -ge 40 ] || { echo "only $n sigma_ functions exported"; exit 1; }
# every export is bound to the version node
unversioned=$(nm -D --defined-only "$lib" | grep ' T sigma_' | grep -v '@@SIGMA_0' || true)
[ -z "$unversioned" ] || { echo "unversioned exports:"; echo "$unversioned"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libsigma.so.0" ] || { echo "SONAME is '$soname'"; exit 1; }
echo "$n sigma_* functions exported, SONAME $soname"
