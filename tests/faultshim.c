/*
 * faultshim.c: an LD_PRELOAD library for the fault-injection tests
 * (e2e_faults.py). It makes fsync(), fdatasync() and syncfs() fail with
 * EIO for descriptors whose path (as /proc/self/fd shows it) starts with
 * FETCHD_FAULT_FSYNC, while the file named by FETCHD_FAULT_FLAG exists
 * (always when that variable is unset), so a test can turn the fault on
 * and off while the daemon runs.
 *
 * With FETCHD_FAULT_MALLOC_AFTER=N it also fails one allocation (malloc,
 * calloc, realloc, posix_memalign, aligned_alloc) with ENOMEM: the N-th
 * one (1-based) counted from the first after FETCHD_FAULT_FLAG appeared,
 * as curl's torture tests fail one allocation at a time. Anything else
 * goes to the real call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
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

/* glibc's own allocator: no dlsym() (which allocates) on the way. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static long fail_at = -1;       /* 0: not asked; else N */
static long counted;            /* allocations since the flag appeared */
static int armed;

/* 1 when this allocation is the one to fail. */
static int
alloc_fails(void)
{
	const char *v, *flag;
	long n;

	if (fail_at == -1) {
		v = getenv("FETCHD_FAULT_MALLOC_AFTER");
		fail_at = v != NULL ? strtol(v, NULL, 10) : 0;
	}
	if (fail_at <= 0)
		return 0;
	if (!__atomic_load_n(&armed, __ATOMIC_RELAXED)) {
		flag = getenv("FETCHD_FAULT_FLAG");
		if (flag == NULL || access(flag, F_OK) == -1)
			return 0;
		__atomic_store_n(&armed, 1, __ATOMIC_RELAXED);
	}
	n = __atomic_add_fetch(&counted, 1, __ATOMIC_RELAXED);
	if (n != fail_at)
		return 0;
	errno = ENOMEM;
	return 1;
}

void *
malloc(size_t n)
{
	return alloc_fails() ? NULL : __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __libc_realloc(p, n);
}

int
posix_memalign(void **p, size_t align, size_t n)
{
	if (alloc_fails())
		return ENOMEM;
	*p = __libc_memalign(align, n);
	return *p != NULL ? 0 : ENOMEM;
}

void *
aligned_alloc(size_t align, size_t n)
{
	return alloc_fails() ? NULL : __libc_memalign(align, n);
}
