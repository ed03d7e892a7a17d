/*
 * util.h: the few system-call wrappers every module needs, written once:
 * a write that finishes, a rename that never replaces, the monotonic clock.
 * Nothing here keeps state; everything is safe on any thread and in the
 * process engine's workers.
 */
#ifndef FETCHD_UTIL_H
#define FETCHD_UTIL_H

#include <stddef.h>

/* All of buf to fd, retrying short writes and EINTR. 0, or -1 with errno
 * (EIO when write(2) returned 0). */
int util_write_all(int fd, const void *buf, size_t len)
    __attribute__((warn_unused_result));

/* renameat2(RENAME_NOREPLACE): 0, or -1 with errno (EEXIST when newname
 * is taken). Through the system call where the C library lacks it; by
 * link and unlink on a file system without RENAME_NOREPLACE. */
int util_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
    const char *newname) __attribute__((warn_unused_result));

/* Seconds on CLOCK_MONOTONIC. */
double util_mono(void);

/* Seconds since the epoch (CLOCK_REALTIME), for times shown to people. */
double util_wall(void);

/* "s" unless n is 1, for messages: "%ld URL%s", n, util_plural(n). */
const char *util_plural(double n);

#endif
