#!/usr/bin/env bash
# Starts a Docker engine if none answers, and builds the sandbox base images that are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${DAVINCI_SANDBOX_IMAGE:-davinci-sandbox-base:latest}"
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then echo "docker-up: no Docker engine answers; start dockerd" >&2; exit 1; fi
  echo "docker-up: starting dockerd" >&2
  mkdir -p /var/log/davinci
  (dockerd --iptables=false --ip6tables=false >/var/log/davinci/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "docker-up: dockerd did not start:" >&2; tail -20 /var/log/davinci/dockerd.log >&2; exit 1; }
fi
# The default image (bookworm, Python 3.11) and one per other Python rollouts choose from
# (DAVINCI_PYTHONS, default "3.9 3.13"; empty for none), built side by side.
repository="${image%:*}"
pids=()
if ! docker image inspect "$image" >/dev/null 2>&1; then
  infra/sandbox/build-base.sh "$image" & pids+=($!)
fi
declare -A suites=([3.9]=bullseye [3.11]=bookworm [3.13]=trixie)
for version in ${DAVINCI_PYTHONS-3.9 3.13}; do
  suite="${suites[$version]:-}"
  [ -n "$suite" ] || { echo "docker-up: no recipe for Python $version" >&2; exit 1; }
  if ! docker image inspect "$repository:py$version" >/dev/null 2>&1; then
    DEBIAN_SUITE="$suite" infra/sandbox/build-base.sh "$repository:py$version" & pids+=($!)
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
