#ifndef CCOMMANDLINE_H
#define CCOMMANDLINE_H

/// The process's arguments for Swift's `CommandLine`, taken from glibc instead of /proc.
///
/// The Swift runtime's own Linux implementation (a static initialiser in the static standard
/// library) finds argv by reading and parsing /proc/self/maps at every start: about 0.2 ms of
/// each of pacman's per-file calls, a process with ~200 mappings once libcurl is loaded. glibc
/// hands argc and argv to every ELF constructor, so this target keeps them from one and defines
/// the runtime's `_swift_stdlib_getUnsafeArgvArgc` itself; the linker then never pulls the
/// runtime's version out of the static library. Nothing is declared here: linking the target
/// is all it takes, and only the executable links it.

#endif
