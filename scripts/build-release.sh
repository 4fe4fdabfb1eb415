#!/usr/bin/env bash
# Builds the release binary as it is installed and benchmarked: the Swift runtime linked
# statically, and libstdc++ and libgcc too where the toolchain has their archives (pacman starts
# ipfs-xfer once per file, and every shared library costs part of every start). libcurl, zlib
# and zstd stay the system's. Extra arguments go to `swift build`.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=()
archive=$(c++ -print-file-name=libstdc++.a 2>/dev/null || true)
if [[ "$archive" == /* && -f "$archive" ]]; then
  # A directory holding only the archive, searched before the toolchain's: its -lstdc++ then
  # finds libstdc++.a (a later -Bstatic in Package.swift would come after the toolchain's own).
  mkdir -p .build/static-libstdc++
  ln -sf "$archive" .build/static-libstdc++/libstdc++.a
  flags=(-Xswiftc -L.build/static-libstdc++ -Xswiftc -Xclang-linker -Xswiftc -static-libgcc)
fi
swift build -c release --static-swift-stdlib "${flags[@]}" "$@"
