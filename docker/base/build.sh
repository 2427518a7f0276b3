#!/usr/bin/env bash
# Build the suite's Debian base image without a registry: debootstrap a minimal Debian
# with Python into a folder, `docker import` it, and print the image's name.
#
# The image is named after a hash of this script, so it is built once per version of the
# script: a second run finds the image (or the tarball kept under the cache directory, for
# an engine that lost its images) and only prints its name.
#
#   docker/base/build.sh            -> flask-suite/debian-base:<hash>
#   DEBIAN_MIRROR=http://... docker/base/build.sh
set -euo pipefail

suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python3-venv brings ensurepip: the images make their virtualenv with it.
packages=python3,python3-venv,ca-certificates
hash=$(sha256sum "$0" | cut -c1-12)
image="flask-suite/debian-base:$hash"
cache_dir="${SUITE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flask-suite}"
tarball="$cache_dir/debian-base-$hash.tar.gz"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  if ! command -v debootstrap >/dev/null; then
    echo "installing debootstrap (Debian package)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
  fi
  mkdir -p "$cache_dir"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $suite from $mirror (a few minutes, once)" >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main
SOURCES
  # Images are rebuilt, never upgraded in place: no package lists, caches or docs.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/*
  tar --numeric-owner -C "$root" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$image" >/dev/null
echo "$image"
