#!/usr/bin/env bash
# Builds the sandbox base image without any registry: a Debian root file system made with
# debootstrap (python3, pytest, git, a C compiler for old source releases), a non-root user
# `agent` (uid 1000), imported into Docker and labelled with its Python version
# (davinci.python=X.Y), by which rollouts choose a base per repository state.
# The root file system tarball is cached, so a rebuild needs no network.
#
#   infra/sandbox/build-base.sh [IMAGE]      (default davinci-sandbox-base:latest)
# Environment: DAVINCI_SANDBOX_CACHE (default /var/cache/davinci), DEBIAN_MIRROR, DEBIAN_SUITE
# (bookworm: Python 3.11; bullseye: 3.9; trixie: 3.13).
set -euo pipefail
image="${1:-davinci-sandbox-base:latest}"
cache="${DAVINCI_SANDBOX_CACHE:-/var/cache/davinci}"
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-pytest,python3-pip,python3-venv,python3-dev,gcc,libc6-dev,git,ca-certificates,procps,coreutils"
tarball="$cache/sandbox-rootfs-$suite-$(printf '%s' "$packages" | sha256sum | cut -c1-8).tar"

if [ "$(id -u)" -ne 0 ]; then echo "build-base: needs root (debootstrap and chroot)" >&2; exit 1; fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "build-base: install the debootstrap package" >&2; exit 1; }
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  echo "build-base: debootstrap $suite from $mirror (a few minutes, once)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$cache/debootstrap-$suite.log" 2>&1 \
    || { echo "build-base: debootstrap failed, see $cache/debootstrap-$suite.log" >&2; tail -20 "$cache/debootstrap-$suite.log" >&2; exit 1; }
  chroot "$rootfs" useradd --create-home --uid 1000 --shell /bin/bash agent
  mkdir -p "$rootfs/work" && chown 1000:1000 "$rootfs/work"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' >"$tarball.python"
  tar -C "$rootfs" --numeric-owner -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi
echo "build-base: importing $tarball as $image" >&2
docker import \
  --change 'USER agent' --change 'WORKDIR /work' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1' \
  --change "LABEL davinci.base=1 davinci.python=$(cat "$tarball.python")" \
  "$tarball" "$image" >/dev/null
echo "build-base: $image ready" >&2
