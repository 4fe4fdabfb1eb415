#define _GNU_SOURCE
#include "CForkReader.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/// Closes every descriptor from `first` up, with close_range where the kernel has it.
static void close_from(int first) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) {
        return;
    }
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = first; fd < max; fd++) {
        close(fd);
    }
}

/// Writes all of `buffer` to `fd`, retrying short writes.
static int write_all(int fd, const char *buffer, ssize_t length) {
    while (length > 0) {
        ssize_t written = write(fd, buffer, (size_t)length);
        if (written < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buffer += written;
        length -= written;
    }
    return 0;
}

/// The child's whole life: only async-signal-safe calls from here on.
static void run_child(const char *path, off_t offset, int out_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (out_fd != 3 && dup2(out_fd, 3) < 0) _exit(XFER_READER_OPEN_FAILED);
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
    }
    close_from(4);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) _exit(errno == ENOENT || errno == ENOTDIR ? XFER_READER_NOT_FOUND : XFER_READER_OPEN_FAILED);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) _exit(XFER_READER_NOT_A_FILE);
    if (offset > 0 && lseek(fd, offset, SEEK_SET) != offset) _exit(XFER_READER_SEEK_FAILED);

    static char buffer[256 * 1024];
    for (;;) {
        ssize_t count = read(fd, buffer, sizeof buffer);
        if (count == 0) _exit(XFER_READER_OK);
        if (count < 0) {
            if (errno == EINTR) continue;
            _exit(XFER_READER_READ_FAILED);
        }
        if (write_all(3, buffer, count) != 0) _exit(XFER_READER_READ_FAILED);
    }
}

pid_t xfer_fork_reader(const char *path, off_t offset, int *read_fd) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return -1;
    fcntl(fds[0], F_SETPIPE_SZ, 1024 * 1024);
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        run_child(path, offset, fds[1]);
        _exit(XFER_READER_READ_FAILED);
    }
    close(fds[1]);
    *read_fd = fds[0];
    return pid;
}

int xfer_spawn_detached(char *const argv[], const char *log_path) {
    pid_t first = fork();
    if (first < 0) return -1;
    if (first == 0) {
        // The first child: a new session, then the worker as its child, then exit at once.
        setsid();
        pid_t worker = fork();
        if (worker != 0) _exit(worker < 0 ? 1 : 0);
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0664);
        if (log_fd < 0) log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null_fd < 0 || log_fd < 0) _exit(127);
        dup2(null_fd, STDIN_FILENO);
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        close_from(3);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(first, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static volatile sig_atomic_t caught_signal = 0;

static void remember_signal(int signal_number) {
    caught_signal = signal_number;
}

void xfer_catch_interrupts(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = remember_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
}

int xfer_caught_signal(void) {
    return caught_signal;
}

pid_t xfer_spawn(char *const argv[], int stdout_fd) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t defaults;
    if (posix_spawn_file_actions_init(&actions) != 0) return -1;
    if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stdout_fd, STDOUT_FILENO);
    posix_spawnattr_init(&attributes);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    sigset_t unblocked;
    sigemptyset(&unblocked);
    posix_spawnattr_setsigmask(&attributes, &unblocked);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    int error = posix_spawnp(&pid, argv[0], &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (error != 0) {
        errno = error;
        return -1;
    }
    return pid;
}
