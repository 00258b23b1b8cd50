#!/usr/bin/env bash
# The test command: installs what the tests need, then runs lint, types, layering checks and the
# test suite on PostgreSQL, and the API tests once more on the embedded SQLite store.
#
# PostgreSQL: SDNC_TEST_DATABASE_URL (a server URL; a throwaway database is created on it) when
# set, otherwise the tests start a throwaway cluster from the installed server binaries, which
# are installed with apt when missing, as are the networking tools of the end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

have_postgres_binaries() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

# The end-to-end test drives real network namespaces, nftables and traffic: each command it
# runs, with the Debian package that has it.
missing_e2e_packages() {
    local pair
    for pair in ip:iproute2 bridge:iproute2 tc:iproute2 ss:iproute2 nft:nftables \
        iperf3:iperf3 ping:iputils-ping nsenter:util-linux; do
        command -v "${pair%%:*}" >/dev/null || echo "${pair#*:}"
    done | sort -u
}

packages=()
if [ -z "${SDNC_TEST_DATABASE_URL:-}" ] && ! have_postgres_binaries; then
    packages+=(postgresql)
fi
mapfile -t e2e_packages < <(missing_e2e_packages)
packages+=("${e2e_packages[@]}")
# tests/project/test_deploy.py validates docker-compose.yml with `docker-compose config`.
command -v docker-compose >/dev/null || packages+=(docker-compose)
if [ "${#packages[@]}" -gt 0 ]; then
    echo "--- installing ${packages[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}"
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
