#!/usr/bin/env bash
# Run the Python binding tests with pytest against the freshly built library.
# Usage: run_pytest.sh PYTHON LIBSIGMA SOURCE_ROOT [TEST_PATH [GRAMMAR_SAMPLES]]
# Exits 77 (meson: skipped) when pytest is not installed.
set -u
py=$1; lib=$2; root=$3; what=${4:-tests/python}
export SIGMA_GRAMMAR_SAMPLES=${5:-36}
if ! "$py" -c 'import pytest' 2>/dev/null; then
  echo "pytest is not installed for $py (pip install pytest): skipping"
  exit 77
fi
export SIGMA_LIBRARY="$lib"
export SIGMA_SOURCE_ROOT="$root"
export PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
"$py" -m pytest -q -p no:cacheprovider -rs "$root/$what"
rc=$?
# 5 = no tests collected: that is a broken test setup, not a pass or skip
[ $rc = 5 ] && { echo "pytest collected no tests"; exit 1; }
exit $rc
