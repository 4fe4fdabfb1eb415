#include "CCommandLine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int captured_argc;
static char **captured_argv;

/// glibc calls ELF constructors with main's arguments (argc, argv, envp).
__attribute__((constructor)) static void ccommandline_capture(int argc, char **argv, char **envp) {
    (void)envp;
    captured_argc = argc;
    captured_argv = argv;
}

/// Reads /proc/self/cmdline into a NULL-terminated vector, for a C library that does not pass
/// main's arguments to constructors; an empty vector when even that fails.
static char **ccommandline_read_proc(int *count) {
    static char *empty[] = {NULL};
    FILE *file = fopen("/proc/self/cmdline", "rb");
    if (file == NULL) {
        *count = 0;
        return empty;
    }
    size_t size = 0, capacity = 4096;
    char *bytes = malloc(capacity);
    size_t got;
    while (bytes != NULL && (got = fread(bytes + size, 1, capacity - size, file)) > 0) {
        size += got;
        if (size == capacity) {
            capacity *= 2;
            bytes = realloc(bytes, capacity);
        }
    }
    fclose(file);
    int argc = 0;
    for (size_t i = 0; bytes != NULL && i < size; i++) argc += bytes[i] == '\0';
    char **argv = bytes == NULL ? NULL : calloc((size_t)argc + 1, sizeof(char *));
    if (argv == NULL) {
        *count = 0;
        return empty;
    }
    char *next = bytes;
    for (int i = 0; i < argc; i++) {
        argv[i] = next;
        next += strlen(next) + 1;
    }
    *count = argc;
    return argv;
}

/// The Swift runtime's hook behind `CommandLine.arguments` and `CommandLine.unsafeArgv`
/// (stdlib/public/CommandLineSupport/CommandLine.cpp): argv, and argc through `outArgLen`.
__attribute__((swiftcall)) char **_swift_stdlib_getUnsafeArgvArgc(int *outArgLen) {
    if (captured_argv == NULL) {
        captured_argv = ccommandline_read_proc(&captured_argc);
    }
    *outArgLen = captured_argc;
    return captured_argv;
}
