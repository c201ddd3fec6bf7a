#!/usr/bin/env bash
# Run the sigma-server tests with pytest.
# Usage: run_server_tests.sh PYTHON SIGMA_SERVER TEST_DIR
# Exits 77 (meson: skipped) without pytest, the openai package or a model.
set -u
py=$1; server=$2; dir=$3
if [ -z "${SIGMA_TEST_MODEL:-}" ] || [ ! -f "$SIGMA_TEST_MODEL" ]; then
  echo "SIGMA_TEST_MODEL is not set to a model file: skipping"
  exit 77
fi
if ! "$py" -c 'import pytest, openai' 2>/dev/null; then
  echo "pytest or openai is not installed for $py (pip install pytest openai): skipping"
  exit 77
fi
export SIGMA_SERVER="$server"
export PYTHONDONTWRITEBYTECODE=1
"$py" -m pytest -q -p no:cacheprovider -rs "$dir"
rc=$?
[ $rc = 5 ] && { echo "pytest collected no tests"; exit 1; }
exit $rc
