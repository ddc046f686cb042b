#!/usr/bin/env bash
# The Python API's tests (`make test-python`, part of `make test`): a new virtual environment,
# the built wheel installed in it as a user installs it (pyarrow from PyPI as its dependency),
# pytest, pandas and polars beside it, then pytest over tests/python. RINGSCRAPE_BIN is unset:
# the tests run the binary the wheel installed. Arguments go to pytest (-k NAME, -x); PYTHON
# names the interpreter of the environment (python3 unless given, e.g. PYTHON=python3.9).
set -euo pipefail
cd "$(dirname "$0")/../.."
wheel=$(ls -t target/wheels/ringscrape-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "tests/python/run.sh: no wheel in target/wheels: run make wheel" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${PYTHON:-python3}" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" pytest pandas polars
unset RINGSCRAPE_BIN
PATH="$scratch/venv/bin:$PATH" "$scratch/venv/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
