#!/usr/bin/env bash
# libsigma has no writable global or static data of its own: no object of
# our code lives in .data, .bss, thread-local storage or COMMON. Constant
# tables are fine: .rodata, and .data.rel.ro (pointer tables that the
# dynamic linker relocates and then makes read-only: the shared library is
# linked with -z relro -z now, which the second argument's check verifies).
# Symbols that sanitizer/coverage instrumentation adds are ignored.
set -euo pipefail
lib=$1
shared=${2:-}
bad=$(objdump -t "$lib" | awk '$0 ~ / O / || $0 ~ /\*COM\*/' |
      grep -E '[[:space:]](\.data|\.bss|\.tdata|\.tbss|\*COM\*)([.[:space:]]|$)' |
      grep -v -E '\.data\.rel\.ro' |
      grep -v -E '(__asan|___asan|__odr_asan|__ubsan|__tsan|__sancov|__llvm|__profc|__profd|\.L)' || true)
if [ -n "$bad" ]; then
  echo "writable global/static data in $lib:"; echo "$bad"; exit 1
fi
if [ -n "$shared" ]; then
  readelf -lW "$shared" | grep -q GNU_RELRO || { echo "$shared: no GNU_RELRO segment"; exit 1; }
  readelf -dW "$shared" | grep -q -E 'BIND_NOW|FLAGS.*NOW' || { echo "$shared: not linked with -z now"; exit 1; }
fi
echo "no writable data objects in $(basename "$lib")"
