#!/usr/bin/env bash
# libsigma has no writable global or static data of its own: no symbol of
# our objects lives in .data or .bss (types D d B b, also common C and small
# data G g S s). Constant tables (.rodata, types R r) are fine. Symbols that
# sanitizer instrumentation adds are ignored.
set -euo pipefail
lib=$1
bad=$(nm --defined-only "$lib" 2>/dev/null | awk 'NF>=3 && $2 ~ /^[DdBbCGgSs]$/ {print $2, $3}' |
      grep -v -E ' (\.L|__asan|___asan|__odr_asan|__ubsan|__tsan|__sancov|__llvm|__profc|__profd)' || true)
if [ -n "$bad" ]; then
  echo "writable global/static data in $lib:"; echo "$bad"; exit 1
fi
echo "no writable data symbols in $(basename "$lib")"
