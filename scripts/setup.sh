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

if ! python3 -c 'import bot, pytest, ruff' >/dev/null 2>&1 \
   || [ pyproject.toml -nt "$(python3 -c 'import bot,os;print(os.path.dirname(bot.__file__))' 2>/dev/null || echo /nonexistent)" ]; then
  echo "setup: installing the Python project and its development tools" >&2
  python3 -m pip install -q --disable-pip-version-check -e '.[dev]' 2>&1 | grep -v "Running pip as the 'root' user" || true
fi
