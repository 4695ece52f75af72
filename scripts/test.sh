#!/usr/bin/env bash
# Install the project (and its dev tools) into ./.venv, creating it if needed, then run
# ruff, mypy and the test suite. Extra arguments go to pytest, e.g. `scripts/test.sh -k store`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# A throwaway PostgreSQL for the store tests (unless the caller points at one already).
if [ -z "${METASTRATEGY_TEST_PG_URL:-}" ]; then
    pgdir=$(mktemp -d /tmp/metastrategy-pg.XXXXXX)
    trap 'bash scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
    METASTRATEGY_TEST_PG_URL=$(bash scripts/pg.sh start "$pgdir")
    export METASTRATEGY_TEST_PG_URL
fi
# PostgreSQL tests must run, not skip, when this script runs them.
export METASTRATEGY_REQUIRE_PG=1

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# Two workers (these machines have two cores), a test file per worker at a time (its module
# fixtures computed once); METASTRATEGY_TEST_WORKERS=0 runs in one process.
.venv/bin/python -m pytest -n "${METASTRATEGY_TEST_WORKERS:-2}" --dist loadfile "$@"
