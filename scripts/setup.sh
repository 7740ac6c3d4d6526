#!/usr/bin/env bash
# Installs what daVinci-Agency needs on a Debian machine: system packages and the Python project.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(git redis-server postgresql docker.io debootstrap chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python side installs the pinned versions of requirements/dev.txt (see scripts/lock.sh),
# then the project itself without resolving again. It is skipped when the project imports and
# neither pyproject.toml nor the lock changed since the last install here.
stamp=build/setup.stamp
wanted="$(cat pyproject.toml requirements/dev.txt | sha256sum | cut -d' ' -f1) $(command -v python3)"
if ! python3 -c 'import bot, pytest, ruff' >/dev/null 2>&1 \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing the locked Python dependencies and the project" >&2
  pip=(python3 -m pip install -q --disable-pip-version-check)
  { "${pip[@]}" -r requirements/dev.txt && "${pip[@]}" --no-deps -e .; } 2>&1 \
    | { grep -v "Running pip as the 'root' user" || true; }
  mkdir -p build && echo "$wanted" > "$stamp"
fi
