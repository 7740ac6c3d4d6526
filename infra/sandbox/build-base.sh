#!/usr/bin/env bash
# Builds the sandbox base image without any registry: a Debian root file system made with
# debootstrap (python3, pytest, git), a non-root user `agent` (uid 1000), imported into Docker.
# The root file system tarball is cached, so a rebuild needs no network.
#
#   infra/sandbox/build-base.sh [IMAGE]      (default davinci-sandbox-base:latest)
# Environment: DAVINCI_SANDBOX_CACHE (default /var/cache/davinci), DEBIAN_MIRROR, DEBIAN_SUITE.
set -euo pipefail
image="${1:-davinci-sandbox-base:latest}"
cache="${DAVINCI_SANDBOX_CACHE:-/var/cache/davinci}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
tarball="$cache/sandbox-rootfs-$suite.tar"
packages="python3,python3-pytest,python3-pip,python3-venv,git,ca-certificates,procps,coreutils"

if [ "$(id -u)" -ne 0 ]; then echo "build-base: needs root (debootstrap and chroot)" >&2; exit 1; fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "build-base: install the debootstrap package" >&2; exit 1; }
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-base: debootstrap $suite from $mirror (a few minutes, once)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { echo "build-base: debootstrap failed, see $cache/debootstrap.log" >&2; tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  chroot "$rootfs" useradd --create-home --uid 1000 --shell /bin/bash agent
  mkdir -p "$rootfs/work" && chown 1000:1000 "$rootfs/work"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
echo "build-base: importing $tarball as $image" >&2
docker import \
  --change 'USER agent' --change 'WORKDIR /work' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1' \
  --change 'LABEL davinci.base=1' \
  "$tarball" "$image" >/dev/null
echo "build-base: $image ready" >&2
