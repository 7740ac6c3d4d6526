#!/usr/bin/env bash
# Starts a Docker engine if none answers, and builds the sandbox base image if it is missing.
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
if ! docker image inspect "$image" >/dev/null 2>&1; then
  infra/sandbox/build-base.sh "$image"
fi
