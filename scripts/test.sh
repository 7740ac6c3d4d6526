#!/usr/bin/env bash
# Sets up everything the tests need, checks style and types, then runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k webhooks
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff" >&2
python3 -m ruff check .
echo "== mypy" >&2
python3 -m mypy
echo "== docker" >&2
scripts/docker-up.sh
echo "== pytest" >&2
python3 -m pytest "$@"
