#!/usr/bin/env bash
# Sets up, then runs the main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/docker-up.sh || echo "demo: no Docker engine could be started; the local sandbox will be used" >&2
exec davinci demo "$@"
