#!/usr/bin/env bash
# Install what the tests need and run every check: lint, types, the import contract, and
# all tests (unit, simulator, and e2e tests on a real local cluster that is started for
# the run and stopped afterwards). Safe to re-run: installs are skipped when present.
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[lab,test]'
.ci/install-cluster.sh .venv/bin/python

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== import contract"
.venv/bin/lint-imports --no-cache
echo "== pytest"
status=0
.venv/bin/pytest -p no:cacheprovider || status=$?
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests: that is a failure, not a pass" >&2
fi
exit "$status"
