#include "CForkReader.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary files of pacman's per-file call, so that an interrupt leaves the best one as %o.
 * Everything the handler touches is set up before it can run and read with async-signal-safe
 * calls only (stat, truncate, rename, unlink, raise). */

#define SLOTS 16

struct slot {
    char path[PATH_MAX];
    /* 0: free, 1: being filled, 2: in use. */
    volatile sig_atomic_t state;
    /* Bytes from 0 known to be right, or -1 when the whole file is. */
    volatile long long valid;
};

static struct slot slots[SLOTS];
static char output_path[PATH_MAX];

static void leave_partial(int signal_number) {
    int best = -1;
    long long best_size = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].state != 2) continue;
        struct stat info;
        if (stat(slots[i].path, &info) != 0) continue;
        long long size = info.st_size;
        if (slots[i].valid >= 0 && slots[i].valid < size) size = slots[i].valid;
        if (size > best_size) {
            best = i;
            best_size = size;
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].state != 2 || i == best) continue;
        unlink(slots[i].path);
    }
    if (best >= 0) {
        if (truncate(slots[best].path, best_size) != 0 || rename(slots[best].path, output_path) != 0) {
            unlink(slots[best].path);
        }
    }
    /* SA_RESETHAND made the action the default again: end as the signal would have. */
    raise(signal_number);
}

int xfer_partials_begin(const char *output) {
    if (strlen(output) >= sizeof output_path) return -1;
    strcpy(output_path, output);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = leave_partial;
    action.sa_flags = SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    sigaddset(&action.sa_mask, SIGINT);
    sigaddset(&action.sa_mask, SIGTERM);
    sigaddset(&action.sa_mask, SIGHUP);
    if (sigaction(SIGINT, &action, NULL) != 0) return -1;
    if (sigaction(SIGTERM, &action, NULL) != 0) return -1;
    if (sigaction(SIGHUP, &action, NULL) != 0) return -1;
    return 0;
}

int xfer_partials_add(const char *path) {
    if (strlen(path) >= PATH_MAX) return -1;
    for (int i = 0; i < SLOTS; i++) {
        sig_atomic_t free_state = 0;
        if (!__atomic_compare_exchange_n(&slots[i].state, &free_state, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        strcpy(slots[i].path, path);
        slots[i].valid = -1;
        __atomic_store_n(&slots[i].state, 2, __ATOMIC_RELEASE);
        return i;
    }
    return -1;
}

void xfer_partials_set_valid(int slot, long long valid) {
    if (slot >= 0 && slot < SLOTS) __atomic_store_n(&slots[slot].valid, valid, __ATOMIC_RELEASE);
}

void xfer_partials_remove(int slot) {
    if (slot >= 0 && slot < SLOTS) __atomic_store_n(&slots[slot].state, 0, __ATOMIC_RELEASE);
}
