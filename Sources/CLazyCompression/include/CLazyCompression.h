#ifndef CLAZYCOMPRESSION_H
#define CLAZYCOMPRESSION_H

/// liblzma's and libbzip2's decoding functions, defined here so that the libraries are loaded
/// on first use (dlopen) instead of by the dynamic loader at every start.
///
/// pacman starts ipfs-xfer once per file, and each shared library costs part of every start
/// (loading, relocating, a place in every symbol lookup); xz and bzip2 are only needed for the
/// rare sync database compressed with them. The functions keep the libraries' own names and
/// prototypes (`<lzma.h>`, `<bzlib.h>`), so the callers need no change. When a library cannot be
/// loaded, its functions return an error (LZMA_MEM_ERROR or LZMA_PROG_ERROR, BZ_CONFIG_ERROR),
/// so decoding fails at its start ("xz init failed", "bzip2 init failed").
#include <bzlib.h>
#include <lzma.h>

#endif
