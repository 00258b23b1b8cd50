#!/usr/bin/env bash
# The test command: installs what the tests need, then runs lint, types, layering checks and the
# test suite on PostgreSQL, and the API tests once more on the embedded SQLite store.
#
# PostgreSQL: SDNC_TEST_DATABASE_URL (a server URL; a throwaway database is created on it) when
# set, otherwise the tests start a throwaway cluster from the installed server binaries, which
# are installed with apt when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

have_postgres_binaries() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

if [ -z "${SDNC_TEST_DATABASE_URL:-}" ] && ! have_postgres_binaries; then
    echo "--- installing PostgreSQL server binaries"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi

echo "--- installing the controller and its test tools"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

echo "--- ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "--- mypy --strict"
.venv/bin/mypy controller
echo "--- layering"
.venv/bin/lint-imports

echo "--- tests on PostgreSQL"
.venv/bin/pytest "$@"
echo "--- API tests on SQLite"
SDNC_TEST_BACKEND=sqlite .venv/bin/pytest tests/api "$@"
