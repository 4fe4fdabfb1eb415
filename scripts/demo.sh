#!/usr/bin/env bash
# Builds ipfs-xfer and runs it as pacman's XferCommand in a throwaway sandbox: a pacman root,
# an nginx mirror and the stand-in kubo gateway, all on 127.0.0.1. Prints which source served
# each file. Needs root (pacman installs into the sandbox, nginx runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --if-needed
swift build 2>&1 | grep -E "error|warning:|Build complete" || true
python3 scripts/demo.py
