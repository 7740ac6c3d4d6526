#!/usr/bin/env bash
# Sets up, then runs the main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec davinci demo "$@"
