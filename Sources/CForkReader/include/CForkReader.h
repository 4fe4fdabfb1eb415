#ifndef CFORKREADER_H
#define CFORKREADER_H

#include <sys/types.h>

/// Exit statuses of a reader child, so the parent can tell a missing file from an I/O error.
enum {
    XFER_READER_OK = 0,
    XFER_READER_NOT_FOUND = 3,
    XFER_READER_OPEN_FAILED = 4,
    XFER_READER_SEEK_FAILED = 5,
    XFER_READER_READ_FAILED = 6,
    XFER_READER_NOT_A_FILE = 7,
};

/// Forks a child that opens `path`, seeks to `offset` and copies the file into a pipe.
///
/// A read from a FUSE mount can block in the kernel in a way no signal ends. Doing the open and
/// every read in a child means the parent can always give up on it and exit on time: the child is
/// the one left waiting. The child does nothing but system calls (it is forked from a
/// multithreaded process), closes every other descriptor, and dies with its parent.
///
/// Returns the child's pid and stores the pipe's read end in `*read_fd`, or returns -1 with errno.
pid_t xfer_fork_reader(const char *path, off_t offset, int *read_fd);

/// Starts `argv` (argv[0] is the program's path) fully detached: in a new session, as the
/// child of a child that exits at once (so it is never a zombie of the caller), with stdin
/// from /dev/null, stdout and stderr appended to `log_path`, and no other descriptor open.
///
/// An alpm hook's output pipe is read by pacman until every writer has closed it, so a worker
/// that outlives the hook must not keep it. Returns 0, or -1 with errno when forking failed.
int xfer_spawn_detached(char *const argv[], const char *log_path);

/// Catches SIGINT, SIGTERM and SIGHUP from now on, only remembering the last one, so that a
/// long-running command can stop its work cleanly (`ipfs-xfer sync` on Ctrl-C).
void xfer_catch_interrupts(void);

/// The last signal caught since `xfer_catch_interrupts`, or 0.
int xfer_caught_signal(void);

/// Starts `argv` (searched in PATH) with stdout sent to `stdout_fd` when it is not -1, and
/// every caught signal back to its default and no signal blocked. Returns the pid, or -1 with errno.
pid_t xfer_spawn(char *const argv[], int stdout_fd);

/// For pacman's per-file call: on SIGINT, SIGTERM or SIGHUP, the largest registered partial file
/// (cut to the bytes known to be right) becomes `output`, the others are deleted, and the
/// process ends by the signal. Returns 0, or -1 when the handler could not be installed.
int xfer_partials_begin(const char *output);

/// Registers a temporary file; returns its slot, or -1 when all are taken.
int xfer_partials_add(const char *path);

/// Says that only the first `valid` bytes of a slot's file are right (-1: all of them).
void xfer_partials_set_valid(int slot, long long valid);

/// Forgets a slot (its file was renamed or deleted).
void xfer_partials_remove(int slot);

#endif
