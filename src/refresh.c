/*
 * refresh.c: the validators beside a refreshed file (see refresh.h).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "job.h"
#include "refresh.h"
#include "util.h"

#define REFRESH_KEY_ETAG "etag "
#define REFRESH_KEY_DATE "last-modified "

/* The sidecar's name (base JOB_SIDECAR, tmp: with ".part" after) in buf,
 * or -1 when it does not fit. */
static int
sidecar_name(char *buf, size_t len, const char *base, int tmp)
{
	int n = snprintf(buf, len, "%s%s%s", base, JOB_SIDECAR,
	    tmp ? FETCH_PART : "");

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* One value: printable bytes only, fitting dst. 1 when taken. */
static int
take_value(char *dst, size_t dlen, const char *v, size_t vlen)
{
	size_t i;

	if (vlen == 0 || vlen >= dlen)
		return 0;
	for (i = 0; i < vlen; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return 0;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
	return 1;
}

int
refresh_parse(const char *text, size_t len, struct fetch_meta *m)
{
	const char *p = text, *end = text + len, *nl;
	size_t n, k;

	memset(m, 0, sizeof(*m));
	m->length = -1;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		k = strlen(REFRESH_KEY_ETAG);
		if (n > k && memcmp(p, REFRESH_KEY_ETAG, k) == 0)
			(void)take_value(m->etag, sizeof(m->etag), p + k,
			    n - k);
		k = strlen(REFRESH_KEY_DATE);
		if (n > k && memcmp(p, REFRESH_KEY_DATE, k) == 0)
			(void)take_value(m->last_modified,
			    sizeof(m->last_modified), p + k, n - k);
	}
	return m->etag[0] != '\0' || m->last_modified[0] != '\0';
}

int
refresh_load(int dirfd, const char *base, struct fetch_meta *m)
{
	char name[NAME_MAX + 64], buf[REFRESH_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, e;

	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISREG(st.st_mode) ||
	    sidecar_name(name, sizeof(name), base, 0) == -1)
		return 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > REFRESH_FILE_MAX) {
		e = errno;
		close(fd);
		errno = e;
		return 0;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	return refresh_parse(buf, (size_t)n, m);
}

/* base's modification time from m's Last-Modified, when it parses. */
static void
set_mtime(int dirfd, const char *base, const struct fetch_meta *m)
{
	struct timespec ts[2];
	time_t t;

	if (m->last_modified[0] == '\0' ||
	    (t = curl_getdate(m->last_modified, NULL)) == -1)
		return;
	ts[0].tv_sec = 0;
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = t;
	ts[1].tv_nsec = 0;
	(void)utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW);
}

int
refresh_save(int dirfd, const char *base, const struct fetch_meta *m)
{
	char name[NAME_MAX + 64], tmp[NAME_MAX + 64], text[REFRESH_FILE_MAX];
	int fd, n = 0, e;

	if (sidecar_name(name, sizeof(name), base, 0) == -1 ||
	    sidecar_name(tmp, sizeof(tmp), base, 1) == -1)
		return -1;
	set_mtime(dirfd, base, m);
	if (m->etag[0] == '\0' && m->last_modified[0] == '\0')
		return unlinkat(dirfd, name, 0) == -1 && errno != ENOENT ?
		    -1 : 0;
	if (m->etag[0] != '\0')
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%s\n",
		    REFRESH_KEY_ETAG, m->etag);
	if (m->last_modified[0] != '\0')
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%s\n",
		    REFRESH_KEY_DATE, m->last_modified);
	/* A .part of ours left by a crash is replaced; never a symlink's
	 * target (O_NOFOLLOW fails, and the name is unlinked first). */
	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	if (util_write_all(fd, text, (size_t)n) == -1) {
		e = errno;
		close(fd);
		(void)unlinkat(dirfd, tmp, 0);
		errno = e;
		return -1;
	}
	if (close(fd) == -1 || renameat(dirfd, tmp, dirfd, name) == -1) {
		e = errno;
		(void)unlinkat(dirfd, tmp, 0);
		errno = e;
		return -1;
	}
	return 0;
}
