#!/usr/bin/env bash
# Install what building and testing libsigma needs (Debian 12). Safe to run
# repeatedly; does nothing when everything is present.
set -euo pipefail
pkgs=(meson ninja-build gcc g++ clang pkg-config check zlib1g-dev libcjson-dev libmicrohttpd-dev
      unicode-data valgrind abigail-tools python3 python3-numpy libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
fi
# Python packages for the binding tests, the cross-checks against the
# PyPI gguf reader, the sigma-server tests (openai client) and the grammar
# tests (jsonschema); tests skip cleanly without them.
if ! python3 -c "import pytest, numpy, gguf, openai, jsonschema" 2>/dev/null; then
  echo "installing Python test packages (pytest numpy gguf openai jsonschema)" >&2
  python3 -m pip install -q pytest numpy gguf safetensors tokenizers openai jsonschema >&2 ||
    echo "warning: could not install Python test packages" >&2
fi
