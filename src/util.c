/*
 * util.c: see util.h.
 */
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int
util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
util_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
    const char *newname)
{
#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 28))
	if (renameat2(olddirfd, oldname, newdirfd, newname,
	    RENAME_NOREPLACE) == 0)
		return 0;
#else
	if (syscall(SYS_renameat2, olddirfd, oldname, newdirfd, newname,
	    RENAME_NOREPLACE) == 0)
		return 0;
#endif
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A file system without RENAME_NOREPLACE: link fails on EEXIST too,
	 * and the old name goes only once the new one exists. */
	if (linkat(olddirfd, oldname, newdirfd, newname, 0) == -1)
		return -1;
	(void)unlinkat(olddirfd, oldname, 0);
	return 0;
}

double
util_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
util_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *
util_plural(double n)
{
	return n == 1 ? "" : "s";
}
