/*
 * faultshim.c: an LD_PRELOAD library for the fault-injection tests
 * (e2e_faults.py). It makes fsync(), fdatasync() and syncfs() fail with
 * EIO for descriptors whose path (as /proc/self/fd shows it) starts with
 * FETCHD_FAULT_FSYNC, while the file named by FETCHD_FAULT_FLAG exists
 * (always when that variable is unset), so a test can turn the fault on
 * and off while the daemon runs. Anything else goes to the real call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
faulty(int fd)
{
	const char *prefix = getenv("FETCHD_FAULT_FSYNC");
	const char *flag = getenv("FETCHD_FAULT_FLAG");
	char link[64], path[4096];
	ssize_t n;

	if (prefix == NULL || prefix[0] == '\0')
		return 0;
	if (flag != NULL && flag[0] != '\0' && access(flag, F_OK) == -1)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, path, sizeof(path) - 1)) == -1)
		return 0;
	path[n] = '\0';
	return strncmp(path, prefix, strlen(prefix)) == 0;
}

#define WRAP(fn)                                                        \
	int fn(int fd)                                                  \
	{                                                               \
		static int (*real)(int);                                \
		int saved = errno;                                      \
		if (faulty(fd)) {                                       \
			errno = EIO;                                    \
			return -1;                                      \
		}                                                       \
		errno = saved;                                          \
		if (real == NULL)                                       \
			real = (int (*)(int))dlsym(RTLD_NEXT, #fn);     \
		return real(fd);                                        \
	}

WRAP(fsync)
WRAP(fdatasync)
WRAP(syncfs)
