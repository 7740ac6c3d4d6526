#!/usr/bin/env bash
# Re-resolves the lock files from pyproject.toml: run it after changing a dependency there.
#   requirements/runtime.txt  what the App needs (the container image installs this)
#   requirements/dev.txt      the same pins plus the development tools (CI and scripts/setup.sh)
# Versions already pinned stay unless pyproject.toml no longer allows them; pass --upgrade to
# move everything to the newest allowed releases. Needs uv (`python3 -m pip install uv`).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=(uv)
command -v uv >/dev/null 2>&1 || uv=(python3 -m uv)
common=(--python-version 3.11 --universal --generate-hashes --native-tls --quiet "$@")
# The whole set first, then the runtime part held to the same versions: the image runs exactly
# what the tests ran.
"${uv[@]}" pip compile pyproject.toml --extra dev "${common[@]}" -o requirements/dev.txt
"${uv[@]}" pip compile pyproject.toml -c requirements/dev.txt "${common[@]}" \
  -o requirements/runtime.txt
echo "lock: requirements/runtime.txt and requirements/dev.txt are up to date" >&2
