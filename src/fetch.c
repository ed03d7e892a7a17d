/*
 * fetch.c: everything about one transfer, shared by the three engines.
 *
 * It owns the on-disk side (the per-job directory, the directories inside
 * a name, reserving name.part, writing and resuming it, the sha256 check and
 * the final rename), the options set on the easy handle, the callbacks, and
 * the classification of how a transfer ended (ok, retry, fail and why).
 *
 * The same code runs on a worker thread, on the main loop under curl_multi
 * and in forked children, so nothing here touches global state after
 * fetch_global_init(): no strerror(), no static buffers, and everything
 * fetch_begin() acquires lives in the transfer's fetch_state until
 * fetch_finish() releases it.
 *
 * Paths are only ever opened relative to a directory descriptor, each step
 * with O_NOFOLLOW, so a symlink planted in the download tree (at a
 * directory, at name.part or at name) is refused and never followed.
 *
 * Names can still be swapped under us between two system calls, so the
 * .part is also held to its identity: an existing one is resumed only when
 * it is the very file this transfer made (the device and inode recorded in
 * the transfer) or, with nothing recorded, a regular file with one link
 * that we own; anything else is unlinked (never written) and a fresh one
 * made. And the final rename publishes only the inode that was written.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "cidr.h"
#include "fetch.h"
#include "refresh.h"
#include "util.h"

#define FETCH_DIR_MODE 0750
#define FETCH_FILE_MODE 0640
#define FETCH_HASH_CHUNK (64 * 1024)
#define FETCH_BUFFERSIZE (256L * 1024)

/* Why the write callback stopped a transfer itself. */
enum fetch_cause {
	CAUSE_NONE = 0,
	CAUSE_WRITE,            /* write(2) failed: cause_errno */
	CAUSE_MAXSIZE,          /* the file would exceed max_file_size */
	CAUSE_RANGE,            /* a 206 for another range than asked */
	CAUSE_CHANGED,          /* a 206 of a resource of another length
	                           than the .part's (t->expect) */
	CAUSE_WHOLE,            /* a segment's range answered by a 200 */
	CAUSE_PART,             /* the .part could not be made (t->error) */
};

struct fetch_state {
	struct transfer *t;
	CURL *easy;
	int dirfd;              /* the directory holding name */
	int own_dirfd;          /* dirfd is ours to close (not t->dirfd) */
	int fd;                 /* name.part */
	char *base;             /* last component of t->name */
	char *part;             /* base + ".part" */
	EVP_MD_CTX *md;         /* only when t->has_sha256 */
	uint64_t offset;        /* bytes in name.part now */
	uint64_t resume_from;   /* offset asked for with Range */
	char range[32];         /* "N-" for CURLOPT_RANGE */
	struct curl_slist *headers;     /* CURLOPT_HTTPHEADER: If-Range, the
	                                   conditions, then t->headers; NULL
	                                   when none */
	int conditional;        /* If-None-Match or If-Modified-Since sent */
	int part_later;         /* ... and no .part yet: it is made when a
	                           2xx body starts, so a 304 costs none */

	/* The response being received; reset on every status line, because
	 * redirects (and a proxy's CONNECT) produce several. */
	struct fetch_response resp;
	int started;            /* the body of a 2xx was accepted */

	enum fetch_cause cause;
	int cause_errno;
	int sock_errno;         /* socket() failed with it (open_socket_cb) */

	/* Where the transfer may go (setup_net). */
	struct cidr_list *deny;         /* NULL when http.deny is empty */
	int denied;                     /* an address of this hop was denied */
	int tried_allowed;              /* one of this hop was not */
	char denied_addr[INET6_ADDRSTRLEN];
	char errbuf[CURL_ERROR_SIZE];

	/* Segments (FETCH_SEGMENT, FETCH_VERIFY): name.part.segs. */
	int segfd;              /* open while a segment runs; else -1 */
	uint64_t seg_ino;       /* the .part's inode, in every slot written */
	char *segs;             /* s->part + ".segs" */
};

static int open_part(struct transfer *, struct fetch_state *);
static int seg_begin(struct transfer *, struct fetch_state *);
static int seg_response_start(struct fetch_state *);
static int seg_slot_write(struct fetch_state *);
static int seg_range(struct fetch_state *);
static int seg_status(struct transfer *, struct fetch_state *);
static int seg_cause(struct transfer *, struct fetch_state *);
static void seg_discard(int, const char *);

static const char *const errkind_names[FERR__COUNT] = {
	[FERR_NONE] = "none",
	[FERR_DNS] = "dns",
	[FERR_CONNECT] = "connect",
	[FERR_TIMEOUT] = "timeout",
	[FERR_HTTP_4XX] = "http_4xx",
	[FERR_HTTP_5XX] = "http_5xx",
	[FERR_RESET] = "reset",
	[FERR_PROTOCOL_REFUSED] = "protocol_refused",
	[FERR_WRITE] = "write",
	[FERR_CHECKSUM] = "checksum",
	[FERR_OTHER] = "other",
	[FERR_RESOURCE] = "resource",
	[FERR_DENIED] = "denied",
	[FERR_SEGMENT] = "segment",
};

const char *
fetch_errkind_name(enum fetch_errkind k)
{
	if ((unsigned)k >= FERR__COUNT)
		return "unknown";
	return errkind_names[k];
}

int
fetch_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	return 0;
}

void
fetch_global_cleanup(void)
{
	curl_global_cleanup();
}

/* Copy src into a fixed buffer, always terminated; NULL reads as "". */
static void
copy_str(char *dst, size_t len, const char *src)
{
	size_t n;

	if (src == NULL)
		src = "";
	n = strlen(src);
	if (n >= len)
		n = len - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void
fetch_params_from_config(struct fetch_params *p, const struct config *c)
{
	memset(p, 0, sizeof(*p));
	p->connect_timeout = c->connect_timeout;
	p->timeout = c->timeout;
	p->low_speed_limit = c->low_speed_limit;
	p->low_speed_time = c->low_speed_time;
	p->max_redirects = c->max_redirects;
	p->max_file_size = c->max_file_size;
	p->rate_limit = c->rate_limit;
	p->verify_tls = c->verify_tls;
	copy_str(p->user_agent, sizeof(p->user_agent), c->user_agent);
	copy_str(p->proxy, sizeof(p->proxy), c->proxy);
	copy_str(p->ca_file, sizeof(p->ca_file), c->ca_file);
	copy_str(p->no_proxy, sizeof(p->no_proxy), c->no_proxy);
	copy_str(p->proxy_ca_file, sizeof(p->proxy_ca_file), c->proxy_ca_file);
	copy_str(p->netrc_file, sizeof(p->netrc_file), c->netrc_file);
	copy_str(p->deny, sizeof(p->deny), c->deny);
}

/* The thread-safe strerror (GNU strerror_r: _GNU_SOURCE is always set). */
static const char *
errstr(int e, char *buf, size_t len)
{
	return strerror_r(e, buf, len);
}

/*
 * Remove "user:password@" from anything that looks like a URL: the error
 * text ends up in result files and logs, which must never hold credentials.
 */
static void
scrub_userinfo(char *s)
{
	char *p = s, *q, *end;

	while ((p = strstr(p, "://")) != NULL) {
		p += 3;
		end = p + strcspn(p, "/?# \t\r\n\"'");
		for (q = end; q > p; q--)
			if (q[-1] == '@')
				break;
		if (q > p)
			memmove(p, q, strlen(q) + 1);
	}
}

/* The error goes into a tab-separated result line: one line, no tabs. */
static void
clean_error(char *s)
{
	size_t n;

	scrub_userinfo(s);
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

void
fetch_set_error(struct transfer *t, enum fetch_outcome outcome,
    enum fetch_errkind kind, const char *fmt, ...)
{
	va_list ap;

	t->outcome = outcome;
	t->errkind = kind;
	va_start(ap, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	clean_error(t->error);
}

/*
 * The file system failing for now (full, out of descriptors, an I/O error)
 * rather than refusing this name for good: worth a retry later.
 */
static int
errno_transient(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case EIO:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case EAGAIN:
	case EINTR:
		return 1;
	default:
		return 0;
	}
}

/*
 * Make directory comp under at unless it is there, then open it without
 * following a symlink. Opening first: the directory nearly always exists
 * already, and a failed mkdir costs a system call per URL.
 */
static int
open_or_make_dir(int at, const char *comp, int create)
{
	const int oflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd;

	if ((fd = openat(at, comp, oflags)) != -1 || errno != ENOENT || !create)
		return fd;
	if (mkdirat(at, comp, FETCH_DIR_MODE) == -1 && errno != EEXIST)
		return -1;
	return openat(at, comp, oflags);
}

/*
 * After openat(O_NOFOLLOW) of path failed with e: say "symlink" when that is
 * what sits there, else the error.
 */
static void
open_error(struct transfer *t, int at, const char *comp, const char *shown,
    int e, enum fetch_outcome outcome)
{
	struct stat st;
	char eb[128];

	if ((e == ELOOP || e == ENOTDIR || e == EMLINK || e == ENXIO) &&
	    fstatat(at, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "refusing to follow a symlink at '%s'", shown);
		return;
	}
	if (e == ENOTDIR) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s' is not a directory", shown);
		return;
	}
	fetch_set_error(t, errno_transient(e) ? FETCH_RETRY : outcome,
	    e == EMFILE || e == ENFILE ? FERR_RESOURCE : FERR_WRITE,
	    "open '%s': %s", shown, errstr(e, eb, sizeof(eb)));
}

int
fetch_open_dir(const char *dir, int *created)
{
	const int oflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd;

	*created = 0;
	if ((fd = openat(AT_FDCWD, dir, oflags)) != -1 || errno != ENOENT)
		return fd;
	if (mkdirat(AT_FDCWD, dir, FETCH_DIR_MODE) == 0)
		*created = 1;
	else if (errno != EEXIST)
		return -1;
	return openat(AT_FDCWD, dir, oflags);
}

void
fetch_close_parent(const struct transfer *t, int fd)
{
	if (fd != -1 && fd != t->dirfd)
		close(fd);
}

/*
 * The owner's directory was removed (with everything in it) while the job
 * ran: what is opened relative to it fails with ENOENT. Only asked after a
 * failure, so it costs nothing on the way of every URL.
 */
static int
owner_dir_gone(const struct transfer *t)
{
	struct stat st;

	return t->dirfd != -1 && fstat(t->dirfd, &st) == 0 &&
	    st.st_nlink == 0;
}

static int open_dirs_from(struct transfer *, int, int, int *, size_t *);

int
fetch_open_parent(struct transfer *t, int create, int *dfd, size_t *base)
{
	enum fetch_outcome outcome = t->outcome;
	enum fetch_errkind errkind = t->errkind;

	if (open_dirs_from(t, t->dirfd, create, dfd, base) == 0)
		return 0;
	/* A removed job directory is made again, as if there were no fd. */
	if (!owner_dir_gone(t) ||
	    open_dirs_from(t, -1, create, dfd, base) == -1)
		return -1;
	t->outcome = outcome;
	t->errkind = errkind;
	t->error[0] = '\0';
	return 0;
}

/* fetch_open_parent() from start (t->dirfd), or from t->dir when -1. */
static int
open_dirs_from(struct transfer *t, int start, int create, int *dfd,
    size_t *base)
{
	char *copy = NULL, *comp, *slash, shown[PATH_MAX];
	int fd = -1, nfd;

	if (t->dir == NULL || t->name == NULL || t->name[0] == '\0' ||
	    t->name[0] == '/' || t->name[strlen(t->name) - 1] == '/') {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "invalid output name");
		goto fail;
	}
	if (start != -1)
		fd = start;
	else if ((fd = open_or_make_dir(AT_FDCWD, t->dir, create)) == -1) {
		open_error(t, AT_FDCWD, t->dir, t->dir, errno, FETCH_FAIL);
		goto fail;
	}
	if ((copy = strdup(t->name)) == NULL) {
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		goto fail;
	}
	comp = copy;
	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		snprintf(shown, sizeof(shown), "%s/%s", t->dir, copy);
		if (comp[0] == '\0' || strcmp(comp, ".") == 0) {
			*slash = '/';
			comp = slash + 1;
			continue;
		}
		if (strcmp(comp, "..") == 0) {
			fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
			    "invalid output name '%s'", t->name);
			goto fail;
		}
		if ((nfd = open_or_make_dir(fd, comp, create)) == -1) {
			open_error(t, fd, comp, shown, errno, FETCH_FAIL);
			goto fail;
		}
		fetch_close_parent(t, fd);
		fd = nfd;
		*slash = '/';
		comp = slash + 1;
	}
	if (comp[0] == '\0' || strcmp(comp, ".") == 0 ||
	    strcmp(comp, "..") == 0) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "invalid output name '%s'", t->name);
		goto fail;
	}
	*base = (size_t)(comp - copy);
	*dfd = fd;
	free(copy);
	return 0;
fail:
	fetch_close_parent(t, fd);
	free(copy);
	return -1;
}

/* Join "base", ".TAG" when t has a part tag, and ".part". NULL on
 * allocation failure. */
static char *
part_name(const struct transfer *t, const char *base)
{
	const char *tag = t->part_tag != NULL ? t->part_tag : "";
	size_t n = strlen(base) + strlen(tag) + 2 + sizeof(FETCH_PART);
	char *p;

	if ((p = malloc(n)) == NULL)
		return NULL;
	snprintf(p, n, "%s%s%s%s", base, tag[0] != '\0' ? "." : "", tag,
	    FETCH_PART);
	return p;
}

static void
state_free(struct fetch_state *s)
{
	if (s == NULL)
		return;
	if (s->fd != -1)
		close(s->fd);
	if (s->dirfd != -1 && s->own_dirfd)
		close(s->dirfd);
	if (s->segfd != -1)
		close(s->segfd);
	free(s->segs);
	EVP_MD_CTX_free(s->md);
	curl_slist_free_all(s->headers);
	free(s->base);
	free(s->part);
	free(s->deny);
	free(s);
}

/* Start the hash over (the file restarts from byte 0). */
static int
hash_reset(struct fetch_state *s)
{
	if (s->md == NULL)
		return 0;
	return EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

/*
 * Empty name.part. If that fails, remove it instead so the next attempt
 * cannot resume from bytes known to be wrong.
 */
static void
part_truncate(struct fetch_state *s)
{
	if (s->fd != -1 && ftruncate(s->fd, 0) == 0) {
		s->offset = 0;
		return;
	}
	unlinkat(s->dirfd, s->part, 0);
	s->offset = 0;
}

/* Hash what name.part already holds, before resuming after it. */
static int
hash_existing(struct transfer *t, struct fetch_state *s)
{
	unsigned char *buf;
	uint64_t pos = 0;
	ssize_t n;
	char eb[128];

	if ((buf = malloc(FETCH_HASH_CHUNK)) == NULL) {
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		return -1;
	}
	while (pos < s->offset) {
		n = pread(s->fd, buf, FETCH_HASH_CHUNK, (off_t)pos);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "read: %s",
			    errstr(errno, eb, sizeof(eb)));
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(s->md, buf, (size_t)n) != 1) {
			free(buf);
			fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
			    "sha256 failed");
			return -1;
		}
		pos += (uint64_t)n;
	}
	free(buf);
	/* The file shrank under us: resume from what was hashed. */
	s->offset = pos;
	return 0;
}

/* The first bytes of a 2xx body are about to be written: is it the part we
 * asked for? 0 to go on, -1 with s->cause set to stop. */
static int
response_start(struct fetch_state *s)
{
	if (s->t->mode == FETCH_SEGMENT)
		return seg_response_start(s);
	if (s->part_later) {
		/* The resource changed (a 2xx to a conditional request). */
		s->part_later = 0;
		if (open_part(s->t, s) == -1) {
			s->cause = CAUSE_PART;
			return -1;
		}
	}
	s->started = 1;
	if (s->resp.status == 206) {
		if (s->resp.cr_start < 0 ||
		    (uint64_t)s->resp.cr_start != s->offset) {
			s->cause = CAUSE_RANGE;
			return -1;
		}
		if (s->t->expect.length >= 0 && s->resp.cr_total >= 0 &&
		    s->resp.cr_total != s->t->expect.length) {
			s->cause = CAUSE_CHANGED;
			return -1;
		}
		return 0;
	}
	if (s->offset > 0) {
		/* The server ignored Range and sends it all again. */
		if (ftruncate(s->fd, 0) == -1) {
			s->cause = CAUSE_WRITE;
			s->cause_errno = errno;
			return -1;
		}
		s->offset = 0;
		if (hash_reset(s) == -1) {
			s->cause = CAUSE_WRITE;
			s->cause_errno = ENOMEM;
			return -1;
		}
	}
	return 0;
}

/* Case-insensitive "Name:" prefix; returns the value, or NULL. */
static const char *
header_value(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

void
fetch_parse_content_range(const char *v, long long *start, long long *total)
{
	char *end;
	long long a, b;

	*start = -1;
	*total = -1;
	if (strncasecmp(v, "bytes", 5) != 0)
		return;
	v += 5;
	while (*v == ' ')
		v++;
	if (*v == '*') {
		v++;
	} else {
		errno = 0;
		a = strtoll(v, &end, 10);
		if (errno != 0 || end == v || *end != '-' || a < 0)
			return;
		v = end + 1;
		b = strtoll(v, &end, 10);
		if (errno != 0 || end == v || b < a)
			return;
		v = end;
		*start = a;
	}
	if (*v != '/')
		return;
	v++;
	errno = 0;
	a = strtoll(v, &end, 10);
	if (errno != 0 || end == v || a < 0)
		return;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end == '\0')
		*total = a;
}

void
fetch_response_reset(struct fetch_response *r)
{
	memset(r, 0, sizeof(*r));
	r->cr_start = -1;
	r->cr_total = -1;
	r->length = -1;
}

/* A Content-Length value: digits and trailing blanks, else -1. */
static long long
parse_length(const char *v)
{
	char *end;
	long long n;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	while (*end == ' ' || *end == '\t')
		end++;
	return errno != 0 || *end != '\0' ? -1 : n;
}

/* Copy a header's value without its trailing blanks into buf; "" when it
 * does not fit (a cut validator would never match again) or holds a
 * control byte (no validator does, and it would go out in If-Range). */
static void
keep_value(char *buf, size_t len, const char *v)
{
	size_t n = strlen(v), i;

	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			n = 0;
	if (n >= len)
		n = 0;
	memcpy(buf, v, n);
	buf[n] = '\0';
}

/* "Accept-Ranges: bytes" (a list: "bytes" among its tokens). */
static int
ranges_bytes(const char *v)
{
	size_t n;

	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		n = strcspn(v, " \t,");
		if (n == 5 && strncasecmp(v, "bytes", 5) == 0)
			return 1;
		v += n;
	}
	return 0;
}

int
fetch_parse_header(struct fetch_response *r, const char *data, size_t len)
{
	char line[512], *end;
	const char *v;
	size_t k;
	long st;

	k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, data, k);
	line[k] = '\0';
	line[strcspn(line, "\r\n")] = '\0';

	if (strncmp(line, "HTTP/", 5) == 0) {
		fetch_response_reset(r);
		if ((v = strchr(line, ' ')) != NULL) {
			st = strtol(v + 1, &end, 10);
			if (end != v + 1 && st >= 100 && st <= 999)
				r->status = st;
		}
		return 1;
	}
	if ((v = header_value(line, "Content-Range")) != NULL)
		fetch_parse_content_range(v, &r->cr_start, &r->cr_total);
	else if ((v = header_value(line, "Content-Length")) != NULL)
		r->length = parse_length(v);
	else if ((v = header_value(line, "Accept-Ranges")) != NULL)
		r->ranges = ranges_bytes(v);
	else if ((v = header_value(line, "ETag")) != NULL)
		keep_value(r->etag, sizeof(r->etag), v);
	else if ((v = header_value(line, "Last-Modified")) != NULL)
		keep_value(r->last_modified, sizeof(r->last_modified), v);
	return 0;
}

void
fetch_meta_unknown(struct fetch_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->length = -1;
}

const char *
fetch_if_range(const struct fetch_meta *m)
{
	/* A weak ETag may not be used in If-Range (RFC 9110, 13.1.5). */
	if (m->etag[0] == '"')
		return m->etag;
	if (m->last_modified[0] != '\0')
		return m->last_modified;
	return NULL;
}

void
fetch_response_meta(const struct fetch_response *r, struct fetch_meta *m)
{
	fetch_meta_unknown(m);
	if (r->status == 206)
		m->length = r->cr_total;
	else if (r->status == 200)
		m->length = r->length;
	m->ranges = r->ranges || r->status == 206;
	memcpy(m->etag, r->etag, sizeof(m->etag));
	memcpy(m->last_modified, r->last_modified, sizeof(m->last_modified));
}

static size_t
header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct fetch_state *s = arg;
	size_t n = size * nitems;

	if (fetch_parse_header(&s->resp, data, n) == 1)
		s->started = 0;
	return n;
}

static size_t
write_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct fetch_state *s = arg;
	struct transfer *t = s->t;
	size_t n = size * nitems;

	if (s->resp.status == 0)
		curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE,
		    &s->resp.status);
	if (s->resp.status < 200 || s->resp.status > 299)
		return n; /* an error page or a redirect: not the file */
	if (!s->started && response_start(s) == -1)
		return 0;
	if (t->params.max_file_size > 0 &&
	    s->offset + n > (uint64_t)t->params.max_file_size) {
		s->cause = CAUSE_MAXSIZE;
		return 0;
	}
	if (util_write_all(s->fd, data, n) == -1) {
		s->cause = CAUSE_WRITE;
		s->cause_errno = errno;
		return 0;
	}
	if (s->md != NULL && EVP_DigestUpdate(s->md, data, n) != 1) {
		s->cause = CAUSE_WRITE;
		s->cause_errno = ENOMEM;
		return 0;
	}
	s->offset += n;
	if (s->segfd != -1 && seg_slot_write(s) == -1) {
		s->cause = CAUSE_WRITE;
		s->cause_errno = errno;
		return 0;
	}
	t->received += n;
	__atomic_add_fetch(&t->progress, (uint64_t)n, __ATOMIC_RELAXED);
	return n;
}

static int
xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct fetch_state *s = arg;

	return __atomic_load_n(&s->t->cancelled, __ATOMIC_RELAXED) ? 1 : 0;
}

/* Is st the very file a (regular, same device and inode)? */
static int
same_file(const struct stat *a, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_dev == a->st_dev &&
	    st->st_ino == a->st_ino;
}

/*
 * Is the existing .part (st, of the descriptor opened on it) this
 * transfer's own? Within a run the inode recorded when it was made must
 * match. Across a restart nothing is recorded, and these decide alone: a
 * regular file with one link, owned by our euid. A hard link planted there
 * to a file elsewhere has two links (or another owner), and a file whose
 * only name is in our directory and that we own is nobody else's.
 */
static int
part_is_ours(const struct transfer *t, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || st->st_nlink != 1 ||
	    st->st_uid != geteuid())
		return 0;
	return t->part_ino == 0 || ((uint64_t)st->st_dev == t->part_dev &&
	    (uint64_t)st->st_ino == t->part_ino);
}

/*
 * Create name.part, O_EXCL: a fresh, empty regular file that nothing
 * about needs checking. Its inode is recorded when the attempt ends
 * (part_record), for the next attempt. 0, or -1 with errno (nothing
 * reported).
 */
static int
part_create(struct transfer *t, struct fetch_state *s, int acc)
{
	const int flags = O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_CREAT | O_EXCL;

	if ((s->fd = openat(s->dirfd, s->part, acc | flags,
	    FETCH_FILE_MODE)) == -1)
		return -1;
	/* Its device and inode are recorded when the attempt ends (only a
	 * retry needs them): no fstat on the way of every URL. */
	t->part_dev = 0;
	t->part_ino = 0;
	s->offset = 0;
	return 0;
}

/*
 * The .part there (open on s->fd, st its fstat) is not ours: drop it and
 * start a fresh one. Never through the suspicious inode: unlinking the
 * name leaves the data of whatever file it also names alone.
 */
static int
part_replace(struct transfer *t, struct fetch_state *s, int acc,
    const char *shown)
{
	close(s->fd);
	s->fd = -1;
	if ((unlinkat(s->dirfd, s->part, 0) == -1 && errno != ENOENT) ||
	    part_create(t, s, acc) == -1) {
		open_error(t, s->dirfd, s->part, shown, errno, FETCH_RETRY);
		return -1;
	}
	return 0;
}

/*
 * http.deny, on the address a connection is about to be made to: after
 * name resolution, for every address tried and after every redirect (a
 * proxy's address, when there is one). 1 when refused, with the address
 * kept for the error. A hop (the connection for one request, ended by
 * prereq_cb) that also tried an allowed address and could not connect
 * failed to connect, not for the policy: a name may resolve to both.
 */
static int
deny_address(struct fetch_state *s, const struct sockaddr *sa)
{
	const void *in;

	if (s->deny == NULL)
		return 0;
	if (!cidr_list_match(s->deny, sa)) {
		s->tried_allowed = 1;
		return 0;
	}
	s->denied = 1;
	in = sa->sa_family == AF_INET ?
	    (const void *)&((const struct sockaddr_in *)sa)->sin_addr :
	    (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (inet_ntop(sa->sa_family, in, s->denied_addr,
	    sizeof(s->denied_addr)) == NULL)
		s->denied_addr[0] = '\0';
	return 1;
}

/*
 * Before each request, on the connection it goes out on, new or reused:
 * a connection kept from before a reload that changed http.deny is
 * refused too. New ones were checked by open_socket_cb already.
 */
static int
prereq_cb(void *arg, char *primary_ip, char *local_ip, int primary_port,
    int local_port)
{
	struct fetch_state *s = arg;

	(void)local_ip;
	(void)primary_port;
	(void)local_port;
	if (s->deny == NULL || primary_ip == NULL ||
	    !cidr_list_match_text(s->deny, primary_ip)) {
		s->denied = 0;      /* connected: the next hop starts afresh */
		s->tried_allowed = 0;
		return CURL_PREREQFUNC_OK;
	}
	s->denied = 1;
	snprintf(s->denied_addr, sizeof(s->denied_addr), "%s", primary_ip);
	return CURL_PREREQFUNC_ABORT;
}

/*
 * libcurl's socket(), keeping its errno: libcurl reports a socket() that
 * failed for want of descriptors as a failed connect, which would count
 * against the URL's retries (finish_curl).
 */
static curl_socket_t
open_socket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct fetch_state *s = arg;
	int fd;

	(void)purpose;
	if (deny_address(s, &a->addr))
		return CURL_SOCKET_BAD;
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	s->sock_errno = fd == -1 ? errno : 0;
	return fd == -1 ? CURL_SOCKET_BAD : fd;
}

/*
 * Open name.part for writing, never through a symlink, never a FIFO.
 * Creating comes first: a new transfer's .part does not exist yet. An
 * existing one (a retry, a resume) is opened non-blocking, so a FIFO
 * planted there cannot hang us, and resumed only when it is the
 * transfer's own (part_is_ours), else replaced by a fresh one.
 * O_NONBLOCK means nothing for a regular file, so it is left on.
 */
static int
open_part(struct transfer *t, struct fetch_state *s)
{
	struct stat st;
	char eb[128], shown[PATH_MAX];
	int acc = t->has_sha256 ? O_RDWR : O_WRONLY;
	const int base = O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
	int e;

	if (part_create(t, s, acc) == 0)
		return 0;
	snprintf(shown, sizeof(shown), "%s/%s%s", t->dir, t->name, FETCH_PART);
	if (errno == EEXIST)
		s->fd = openat(s->dirfd, s->part, acc | base);
	if (s->fd == -1) {
		e = errno;
		if (fstatat(s->dirfd, s->part, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
			fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
			    "'%s' is not a regular file", shown);
			return -1;
		}
		open_error(t, s->dirfd, s->part, shown, e, FETCH_RETRY);
		return -1;
	}
	if (fstat(s->fd, &st) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "stat '%s': %s",
		    shown, errstr(errno, eb, sizeof(eb)));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s' is not a regular file", shown);
		return -1;
	}
	if (!part_is_ours(t, &st))
		return part_replace(t, s, acc, shown);
	t->part_dev = (uint64_t)st.st_dev;
	t->part_ino = (uint64_t)st.st_ino;
	s->offset = (uint64_t)st.st_size;
	return 0;
}


/* One header line into s->headers. 0, or -1 out of memory. */
static int
header_add(struct fetch_state *s, const char *name, const char *value)
{
	struct curl_slist *l;
	char line[32 + FETCH_ETAG_MAX + FETCH_DATE_MAX];

	snprintf(line, sizeof(line), "%s: %s", name, value);
	if ((l = curl_slist_append(s->headers, line)) == NULL)
		return -1;
	s->headers = l;
	return 0;
}

/* A resume asks for the rest of the very resource the .part holds a copy
 * of, when a validator tells it (t->expect). 0, or -1 out of memory. */
static int
if_range_header(struct fetch_state *s)
{
	const char *v = fetch_if_range(&s->t->expect);

	return v != NULL ? header_add(s, "If-Range", v) : 0;
}

/*
 * open_part() failed. When that was because the job directory was removed
 * under us (the .part goes right in it), make the directory again by its
 * path and try once more. 0 or -1 as open_part().
 */
static int
open_part_again(struct transfer *t, struct fetch_state *s)
{
	if (s->dirfd != t->dirfd || !owner_dir_gone(t))
		return -1;
	if ((s->dirfd = open_or_make_dir(AT_FDCWD, t->dir, 1)) == -1) {
		open_error(t, AT_FDCWD, t->dir, t->dir, errno, FETCH_RETRY);
		return -1;
	}
	s->own_dirfd = 1;
	t->outcome = FETCH_OK;
	t->errkind = FERR_NONE;
	t->error[0] = '\0';
	return open_part(t, s);
}

#define SETOPT(opt, val)                                               \
	do {                                                           \
		if ((rc = curl_easy_setopt(easy, opt, val)) != CURLE_OK) \
			goto optfail;                                  \
	} while (0)

/*
 * What of the resource this attempt asks for: its headers alone (a
 * probe), a segment's range, or the rest of what the .part holds.
 * CURLOPT_RANGE rather than CURLOPT_RESUME_FROM_LARGE: libcurl fails a
 * resume answered by a 200 itself, where we want to start over. 0 or -1.
 */
static int
setup_range(struct transfer *t, struct fetch_state *s, CURL *easy)
{
	CURLcode rc = CURLE_OUT_OF_MEMORY;

	if (t->mode == FETCH_PROBE)
		SETOPT(CURLOPT_NOBODY, 1L);
	if (t->mode == FETCH_SEGMENT) {
		if (seg_range(s) == -1)
			goto optfail;
	} else if (s->offset > 0) {
		snprintf(s->range, sizeof(s->range), "%llu-",
		    (unsigned long long)s->offset);
		SETOPT(CURLOPT_RANGE, s->range);
		if (if_range_header(s) == -1) {
			rc = CURLE_OUT_OF_MEMORY;
			goto optfail;
		}
	}
	return 0;
optfail:
	fetch_set_error(t, rc == CURLE_OUT_OF_MEMORY ? FETCH_RETRY : FETCH_FAIL,
	    FERR_OTHER, "curl setup: %s", curl_easy_strerror(rc));
	return -1;
}

static int
setup_easy(struct transfer *t, struct fetch_state *s, CURL *easy,
    CURLSH *share)
{
	const struct fetch_params *p = &t->params;
	CURLcode rc;

	curl_easy_reset(easy);
	SETOPT(CURLOPT_ERRORBUFFER, s->errbuf);
	SETOPT(CURLOPT_URL, t->url);
	SETOPT(CURLOPT_PRIVATE, (void *)t);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
	SETOPT(CURLOPT_MAXREDIRS, p->max_redirects);
	SETOPT(CURLOPT_CONNECTTIMEOUT, p->connect_timeout);
	SETOPT(CURLOPT_TIMEOUT, p->timeout);
	if (p->low_speed_limit > 0) {
		SETOPT(CURLOPT_LOW_SPEED_LIMIT, p->low_speed_limit);
		SETOPT(CURLOPT_LOW_SPEED_TIME, p->low_speed_time);
	}
	SETOPT(CURLOPT_USERAGENT, p->user_agent);
	/* Always set: "" also turns off the *_proxy environment variables, so
	 * only the config decides. */
	SETOPT(CURLOPT_PROXY, p->proxy);
	if (p->max_file_size > 0)
		SETOPT(CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)p->max_file_size);
	if (p->rate_limit > 0)
		SETOPT(CURLOPT_MAX_RECV_SPEED_LARGE,
		    (curl_off_t)p->rate_limit);
	SETOPT(CURLOPT_SSL_VERIFYPEER, p->verify_tls ? 1L : 0L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, p->verify_tls ? 2L : 0L);
	if (p->ca_file[0] != '\0')
		SETOPT(CURLOPT_CAINFO, p->ca_file);
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	/*
	 * A size, not a behaviour: libcurl 7.88 refuses a new one while it
	 * still holds the buffer of the handle's last transfer (one that
	 * ended on a refused redirect, for one), and then that buffer serves.
	 */
	(void)curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, FETCH_BUFFERSIZE);
	if (share != NULL)
		SETOPT(CURLOPT_SHARE, share);
	/* No CURLOPT_ACCEPT_ENCODING: the bytes on disk are the resource. */
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, (void *)s);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, (void *)s);
	SETOPT(CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	SETOPT(CURLOPT_XFERINFODATA, (void *)s);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	return setup_range(t, s, easy);
optfail:
	fetch_set_error(t, rc == CURLE_OUT_OF_MEMORY ? FETCH_RETRY : FETCH_FAIL,
	    FERR_OTHER, "curl setup: %s", curl_easy_strerror(rc));
	return -1;
}

/* t->headers, one "Name: value" a line, as libcurl's list; an empty value
 * is written "Name;", libcurl's form for sending it empty. 0 or -1. */
static int
header_list(struct transfer *t, struct fetch_state *s)
{
	const char *p = t->headers, *nl;
	struct curl_slist *n;
	char *line;
	size_t len;

	for (; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : NULL) {
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (len == 0)
			continue;
		if ((line = strndup(p, len)) == NULL)
			return -1;
		if (line[len - 1] == ':')
			line[len - 1] = ';';
		n = curl_slist_append(s->headers, line);
		free(line);
		if (n == NULL)
			return -1;
		s->headers = n;
	}
	return 0;
}

/*
 * A refreshed file asks for the resource only if it changed: the
 * validators kept beside the file (refresh.h) as If-None-Match and
 * If-Modified-Since. Nothing when the file or its validators are not
 * there. 0, or -1 with the error set.
 */
static int
conditions(struct transfer *t, struct fetch_state *s)
{
	struct fetch_meta m;
	char eb[128];
	int rv;

	if ((rv = refresh_load(s->dirfd, s->base, &m)) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE,
		    "reading the validators of '%s/%s': %s", t->dir, t->name,
		    errstr(errno, eb, sizeof(eb)));
		return -1;
	}
	if (rv == 0)
		return 0;
	if ((m.etag[0] != '\0' &&
	    header_add(s, "If-None-Match", m.etag) == -1) ||
	    (m.last_modified[0] != '\0' &&
	    header_add(s, "If-Modified-Since", m.last_modified) == -1)) {
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		return -1;
	}
	s->conditional = 1;
	return 0;
}

/*
 * A whole transfer of a refreshed file: its conditions, and when they are
 * sent and no .part is there, no .part until a 2xx body starts
 * (response_start): an unchanged file then costs no file made and
 * removed. 0, or -1 with the error set.
 */
static int
refresh_begin(struct transfer *t, struct fetch_state *s)
{
	struct stat st;

	if (conditions(t, s) == -1)
		return -1;
	s->part_later = s->conditional &&
	    fstatat(s->dirfd, s->part, &st, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno == ENOENT;
	return 0;
}

/*
 * The options of where a transfer goes and what it says: no_proxy, the
 * proxy's CA, credentials from a netrc, the job line's headers and the
 * deny list. Headers go to the server only, never to a proxy
 * (CURLHEADER_SEPARATE), and libcurl keeps Authorization and Cookie, like
 * its own credentials, to the first host (UNRESTRICTED_AUTH off).
 */
static int
setup_net(struct transfer *t, struct fetch_state *s, CURL *easy)
{
	const struct fetch_params *p = &t->params;
	char err[CIDR_ERR_MAX];
	CURLcode rc;

	/* Always set, as the proxy: the environment never decides. */
	SETOPT(CURLOPT_NOPROXY, p->no_proxy);
	if (p->proxy_ca_file[0] != '\0')
		SETOPT(CURLOPT_PROXY_CAINFO, p->proxy_ca_file);
	if (p->netrc_file[0] != '\0') {
		SETOPT(CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		SETOPT(CURLOPT_NETRC_FILE, p->netrc_file);
	}
	SETOPT(CURLOPT_UNRESTRICTED_AUTH, 0L);
	SETOPT(CURLOPT_HEADEROPT, CURLHEADER_SEPARATE);
	if (header_list(t, s) == -1) {
		rc = CURLE_OUT_OF_MEMORY;
		goto optfail;
	}
	/* The one list of this attempt's headers (If-Range is in it). */
	if (s->headers != NULL)
		SETOPT(CURLOPT_HTTPHEADER, s->headers);
	if (p->deny[0] == '\0')
		return 0;
	if ((s->deny = malloc(sizeof(*s->deny))) == NULL) {
		rc = CURLE_OUT_OF_MEMORY;
		goto optfail;
	}
	if (cidr_list_parse(p->deny, s->deny, err, sizeof(err)) == -1) {
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER, "http.deny: %s", err);
		return -1;
	}
	SETOPT(CURLOPT_PREREQFUNCTION, prereq_cb);
	SETOPT(CURLOPT_PREREQDATA, (void *)s);
	return 0;
optfail:
	fetch_set_error(t, rc == CURLE_OUT_OF_MEMORY ? FETCH_RETRY : FETCH_FAIL,
	    FERR_OTHER, "curl setup: %s", curl_easy_strerror(rc));
	return -1;
}

#undef SETOPT

int
fetch_begin(struct transfer *t, CURL *easy, CURLSH *share)
{
	struct fetch_state *s;
	size_t boff;

	t->outcome = FETCH_OK;
	t->errkind = FERR_NONE;
	t->error[0] = '\0';
	t->http_status = 0;
	t->received = 0;
	t->ttfb = 0;
	t->seconds = 0;
	t->retry_after = -1;
	t->unchanged = 0;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		return -1;
	}
	s->t = t;
	s->easy = easy;
	s->fd = -1;
	s->dirfd = -1;
	s->segfd = -1;
	fetch_response_reset(&s->resp);
	fetch_response_meta(&s->resp, &t->meta);  /* unknown until answered */
	if (fetch_open_parent(t, 1, &s->dirfd, &boff) == -1)
		goto fail;
	s->own_dirfd = s->dirfd != t->dirfd;
	if ((s->base = strdup(t->name + boff)) == NULL ||
	    (s->part = part_name(t, s->base)) == NULL) {
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		goto fail;
	}
	if (t->mode != FETCH_WHOLE) {
		if (seg_begin(t, s) == -1)
			goto fail;
		goto setup;
	}
	if (t->refresh && refresh_begin(t, s) == -1)
		goto fail;
	if (!s->part_later && open_part(t, s) == -1 &&
	    open_part_again(t, s) == -1)
		goto fail;
	/* A refreshed file is replaced only by a copy known whole: a .part
	 * of an earlier run, whose resource no validator ties it to, is not
	 * resumed. */
	if (t->refresh && s->offset > 0 && fetch_if_range(&t->expect) == NULL)
		part_truncate(s);
	if (t->has_sha256) {
		if ((s->md = EVP_MD_CTX_new()) == NULL || hash_reset(s) == -1) {
			fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
			    "sha256 setup failed");
			goto fail;
		}
		if (s->offset > 0 && hash_existing(t, s) == -1)
			goto fail;
	}
	s->resume_from = s->offset;
setup:
	if (t->refresh && t->mode == FETCH_PROBE && conditions(t, s) == -1)
		goto fail;
	if (setup_easy(t, s, easy, share) == -1 ||
	    setup_net(t, s, easy) == -1)
		goto fail;
	/* A callback and its argument: these cannot fail. */
	(void)curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
	    open_socket_cb);
	(void)curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, (void *)s);
	t->state = s;
	return 0;
fail:
	/* The handle may point at s: leave nothing dangling. */
	curl_easy_reset(easy);
	state_free(s);
	t->state = NULL;
	return -1;
}

static void
hexdigest(const unsigned char *md, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

/*
 * name (in s->dirfd) is not the file written (*st) after all: what is
 * there was put by someone else. Unlink it (that never touches the data of
 * a file it may also name, nor follows a symlink) so the next attempt
 * starts afresh, and fail this one as transient.
 */
static void
replaced(struct transfer *t, struct fetch_state *s, const char *name)
{
	(void)unlinkat(s->dirfd, name, 0);
	fetch_set_error(t, FETCH_RETRY, FERR_WRITE,
	    "'%s/%s%s' was replaced during the transfer", t->dir, t->name,
	    FETCH_PART);
}

/*
 * name exists where a tagged .part (cluster mode) was to be published: the
 * same URL fetched by another node into a shared download dir. When that
 * file is a regular file of the size written, it stands for this transfer:
 * the .part is removed and 1 returned. Else 0 with errno EEXIST.
 */
static int
published_by_peer(struct transfer *t, struct fetch_state *s,
    const struct stat *st)
{
	struct stat there;

	if (t->part_tag == NULL ||
	    fstatat(s->dirfd, s->base, &there, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(there.st_mode) || there.st_size != st->st_size) {
		errno = EEXIST;
		return 0;
	}
	(void)unlinkat(s->dirfd, s->part, 0);
	return 1;
}

/*
 * Rename name.part to name, never replacing an existing name (but the
 * file of a refreshed tree), and only ever publishing the inode that was
 * written (*st, from fstat of its
 * descriptor): the .part is looked at (not followed) just before the
 * rename and must be that file; name is looked at just after and must be
 * it too, which closes the window between the look and the rename. When
 * either is not, what was there is unlinked and the attempt fails.
 *
 * Not linkat() of /proc/self/fd/N to name, which would publish the
 * written inode by construction: it needs /proc (restricted by the unit's
 * ProtectProc=/ProcSubset=, absent in some containers), and a crash
 * between the link and the unlink of the .part leaves a file with two
 * links, which the next run rightly refuses to resume. rename(2) leaves
 * exactly one of the two names at any instant.
 */
static int
publish(struct transfer *t, struct fetch_state *s, const struct stat *st)
{
	struct stat now;
	char eb[128];
	int rv;

	rv = fstatat(s->dirfd, s->part, &now, AT_SYMLINK_NOFOLLOW);
	if (rv == -1 && errno != ENOENT) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "stat: %s",
		    errstr(errno, eb, sizeof(eb)));
		return -1;
	}
	if (rv == -1 || !same_file(st, &now)) {
		replaced(t, s, s->part);
		return -1;
	}
	/* A refreshed file is replaced in one step; any other never is. */
	rv = t->refresh ? renameat(s->dirfd, s->part, s->dirfd, s->base) :
	    util_rename_noreplace(s->dirfd, s->part, s->dirfd, s->base);
	if (rv == -1) {
		if (errno == EEXIST && published_by_peer(t, s, st))
			return 0;
		if (errno == EEXIST)
			fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
			    "'%s/%s' already exists", t->dir, t->name);
		else
			fetch_set_error(t, FETCH_RETRY, FERR_WRITE,
			    "rename: %s", errstr(errno, eb, sizeof(eb)));
		return -1;
	}
	if (fstatat(s->dirfd, s->base, &now, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !same_file(st, &now)) {
		replaced(t, s, s->base);
		return -1;
	}
	return 0;
}

/* A refreshed file was published from a response with m's validators:
 * keep them beside it (refresh.h). When that fails, the file is still
 * the new one; its next refresh fetches it whole, nothing worse. */
static void
published(struct transfer *t, struct fetch_state *s,
    const struct fetch_meta *m)
{
	if (t->refresh)
		(void)refresh_save(s->dirfd, s->base, m);
}

/*
 * A 304 to a conditional request: the file is the server's current one.
 * It stays untouched; the .part this attempt opened (empty, or a resume's
 * bytes of what the server now says is the file) goes.
 */
static void
finish_unchanged(struct transfer *t, struct fetch_state *s)
{
	struct stat st, now;

	if (s->fd != -1 && fstat(s->fd, &st) == 0 &&
	    fstatat(s->dirfd, s->part, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    same_file(&st, &now))
		(void)unlinkat(s->dirfd, s->part, 0);
	t->size = fstatat(s->dirfd, s->base, &st, AT_SYMLINK_NOFOLLOW) == 0 ?
	    (uint64_t)st.st_size : 0;
	t->unchanged = 1;
	t->outcome = FETCH_OK;
	t->errkind = FERR_NONE;
	t->error[0] = '\0';
}

/* A 2xx arrived complete: verify, then rename into place. */
static void
finish_ok(struct transfer *t, struct fetch_state *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[65], eb[128];
	struct stat st;
	int fd;

	if (fstat(s->fd, &st) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "stat: %s",
		    errstr(errno, eb, sizeof(eb)));
		return;
	}
	if (s->resp.cr_total >= 0 &&
	    (uint64_t)st.st_size != (uint64_t)s->resp.cr_total) {
		part_truncate(s);
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
		    "size mismatch (have %lld bytes, server says %lld)",
		    (long long)st.st_size, s->resp.cr_total);
		return;
	}
	if (s->md != NULL) {
		if (EVP_DigestFinal_ex(s->md, md, &mdlen) != 1 || mdlen != 32) {
			fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
			    "sha256 failed");
			return;
		}
		if (memcmp(md, t->sha256, 32) != 0) {
			hexdigest(md, hex);
			part_truncate(s);
			fetch_set_error(t, FETCH_RETRY, FERR_CHECKSUM,
			    "sha256 mismatch (got %s)", hex);
			return;
		}
	}
	t->size = (uint64_t)st.st_size;
	fd = s->fd;
	s->fd = -1;
	if (close(fd) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "close: %s",
		    errstr(errno, eb, sizeof(eb)));
		return;
	}
	if (publish(t, s, &st) == -1)
		return;
	fetch_response_meta(&s->resp, &t->meta);
	published(t, s, &t->meta);
	t->outcome = FETCH_OK;
	t->errkind = FERR_NONE;
	t->error[0] = '\0';
}

/* CURLE_OK: what the final response says. */
static void
finish_status(struct transfer *t, struct fetch_state *s)
{
	long st = t->http_status;

	if (s->resp.status == 0)
		s->resp.status = st;
	if (st == 304 && s->conditional) {
		finish_unchanged(t, s);
		return;
	}
	if (t->mode != FETCH_WHOLE && seg_status(t, s))
		return;
	if (st >= 200 && st <= 299) {
		if (!s->started && response_start(s) == -1)
			return; /* the cause is reported by the caller */
		finish_ok(t, s);
		return;
	}
	if (st == 416 && s->resume_from > 0) {
		/* Asked for bytes past the end: if what we hold is the whole
		 * resource (a crash between the last write and the rename),
		 * it is done; else the .part is stale. */
		if (s->resp.cr_total >= 0 &&
		    (uint64_t)s->resp.cr_total == s->offset) {
			finish_ok(t, s);
			return;
		}
		part_truncate(s);
		fetch_set_error(t, FETCH_RETRY, FERR_HTTP_4XX, "HTTP %ld", st);
		return;
	}
	if (st == 408 || st == 429)
		fetch_set_error(t, FETCH_RETRY, FERR_HTTP_4XX, "HTTP %ld", st);
	else if (st >= 400 && st <= 499)
		fetch_set_error(t, FETCH_FAIL, FERR_HTTP_4XX, "HTTP %ld", st);
	else if (st >= 500 && st <= 599)
		fetch_set_error(t, FETCH_RETRY, FERR_HTTP_5XX, "HTTP %ld", st);
	else if (st >= 300 && st <= 399)
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER,
		    "HTTP %ld redirect without a usable Location", st);
	else
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER,
		    "unexpected HTTP status %ld", st);
}

/* Ended by our own write callback. */
static void
finish_cause(struct transfer *t, struct fetch_state *s)
{
	char eb[128];

	if (t->mode == FETCH_SEGMENT && seg_cause(t, s))
		return;
	switch (s->cause) {
	case CAUSE_WRITE:
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "write: %s",
		    errstr(s->cause_errno, eb, sizeof(eb)));
		break;
	case CAUSE_MAXSIZE:
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER,
		    "file exceeds max_file_size (%lld bytes)",
		    t->params.max_file_size);
		break;
	case CAUSE_RANGE:
		part_truncate(s);
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
		    "server sent the wrong range");
		break;
	case CAUSE_CHANGED:
		part_truncate(s);
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
		    "the resource changed (%lld bytes, was %lld); starting "
		    "again", s->resp.cr_total, t->expect.length);
		break;
	case CAUSE_PART:        /* open_part() said why */
	case CAUSE_NONE:
	case CAUSE_WHOLE:
		break;
	}
}

static int
is_http_url(const char *u)
{
	return strncasecmp(u, "http://", 7) == 0 ||
	    strncasecmp(u, "https://", 8) == 0;
}

/* libcurl failed with res: transient or not, and which kind. */
static void
finish_curl(struct transfer *t, struct fetch_state *s, CURLcode res)
{
	enum fetch_outcome o = FETCH_RETRY;
	enum fetch_errkind k = FERR_OTHER;
	const char *msg = s->errbuf[0] != '\0' ? s->errbuf :
	    curl_easy_strerror(res);

	if (s->denied && ((res == CURLE_COULDNT_CONNECT && !s->tried_allowed) ||
	    res == CURLE_ABORTED_BY_CALLBACK)) {
		fetch_set_error(t, FETCH_FAIL, FERR_DENIED,
		    "destination not allowed: %s is in http.deny",
		    s->denied_addr[0] != '\0' ? s->denied_addr : "the address");
		return;
	}
	switch (res) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		k = FERR_DNS;
		break;
	case CURLE_COULDNT_CONNECT:
		/* libcurl says the same when socket() itself failed */
		k = s->sock_errno == EMFILE || s->sock_errno == ENFILE ?
		    FERR_RESOURCE : FERR_CONNECT;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		k = FERR_TIMEOUT;
		break;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		k = FERR_RESET;
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
		fetch_set_error(t, FETCH_FAIL, FERR_PROTOCOL_REFUSED, "%s: %s",
		    is_http_url(t->url) ? "redirect to a refused protocol" :
		    "refused protocol", msg);
		return;
	case CURLE_FILESIZE_EXCEEDED:
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER,
		    "file exceeds max_file_size (%lld bytes)",
		    t->params.max_file_size);
		return;
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_URL_MALFORMAT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		o = FETCH_FAIL;
		break;
	case CURLE_WRITE_ERROR:
		k = FERR_WRITE;
		break;
	default:
		break;
	}
	fetch_set_error(t, o, k, "%s", msg);
}

/*
 * Record the device and inode of the .part this attempt created, for the
 * retry to prove it is still ours (part_is_ours). Only a .part created by
 * this attempt lacks them; one it opened had them recorded then.
 */
static void
part_record(struct transfer *t, struct fetch_state *s)
{
	struct stat st;

	if (s->fd == -1 || t->part_ino != 0 || fstat(s->fd, &st) == -1)
		return;
	t->part_dev = (uint64_t)st.st_dev;
	t->part_ino = (uint64_t)st.st_ino;
}

void
fetch_finish(struct transfer *t, CURL *easy, CURLcode res)
{
	struct fetch_state *s = t->state;
	curl_off_t us = 0, ra = -1;
	long code = 0;

	if (s == NULL)
		return;
	/* So nothing libcurl does later can write into freed memory. */
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, (char *)NULL);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);

	if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK)
		t->http_status = code;
	if (curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &us) ==
	    CURLE_OK)
		t->ttfb = (double)us / 1e6;
	us = 0;
	if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
		t->seconds = (double)us / 1e6;
	if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK &&
	    ra > 0)
		t->retry_after = (long)ra;
	else
		t->retry_after = -1;

	if (s->cause != CAUSE_NONE)
		finish_cause(t, s);
	else if (res == CURLE_ABORTED_BY_CALLBACK &&
	    __atomic_load_n(&t->cancelled, __ATOMIC_RELAXED))
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "cancelled");
	else if (res == CURLE_OK) {
		finish_status(t, s);
		if (s->cause != CAUSE_NONE)
			finish_cause(t, s);
	} else
		finish_curl(t, s, res);
	fetch_response_meta(&s->resp, &t->meta);
	if (s->cause == CAUSE_CHANGED)
		fetch_meta_unknown(&t->expect);
	else if (s->started)
		t->expect = t->meta;

	if (t->outcome == FETCH_RETRY)
		part_record(t, s);
	state_free(s);
	t->state = NULL;
}

void
fetch_run(struct transfer *t, CURL *easy, CURLSH *share)
{
	CURLcode res;

	if (fetch_begin(t, easy, share) == -1)
		return;
	res = curl_easy_perform(easy);
	fetch_finish(t, easy, res);
}

/* --- segments: ranges of one file fetched at once into one .part ------ */

unsigned
fetch_seg_split(uint64_t length, unsigned want, uint64_t min_size,
    uint64_t starts[FETCH_SEGMENTS_MAX])
{
	unsigned n = want, i;

	if (n < 1)
		n = 1;
	if (n > FETCH_SEGMENTS_MAX)
		n = FETCH_SEGMENTS_MAX;
	if (min_size < 1)
		min_size = 1;
	/* Also n <= length, so that no range is empty. */
	if (length / min_size < n)
		n = (unsigned)(length / min_size);
	if (n < 1)
		n = 1;
	for (i = 0; i < n; i++)
		starts[i] = (uint64_t)((unsigned __int128)length * i / n);
	return n;
}

/*
 * name.part.segs holds one slot per segment at SEG_SLOT * slot: the .part's
 * inode, the segment's first byte and the offset of its next byte, three
 * native-endian uint64 (the file never leaves the machine). A segment
 * writes its slot after every write of data (write_cb), so after a kill -9
 * the slot never claims a byte that did not reach the .part: the kernel
 * keeps both writes in order for every process that reads them later.
 * (A power loss is not covered, as for the .part of a whole transfer: the
 * length and a sha256 are checked before the rename.)
 *
 * Why a sidecar rather than the holes of the sparse .part (SEEK_DATA,
 * SEEK_HOLE): holes are found per file system block, so a segment that
 * wrote a few bytes into a block would look as if it had written the
 * whole block; some file systems report no holes at all; and a slot names
 * the inode and the range it was written for, so a .part made again, or a
 * split of other ranges (a changed config), resumes nothing it should not.
 */
#define SEG_SLOT 24

uint64_t
fetch_seg_resume(int fd, unsigned slot, uint64_t ino, uint64_t start,
    uint64_t end)
{
	uint64_t v[3];

	if (pread(fd, v, sizeof(v), (off_t)slot * SEG_SLOT) != sizeof(v))
		return start;
	if (v[0] != ino || v[1] != start || v[2] < start || v[2] > end)
		return start;
	return v[2];
}

static int
seg_slot_write(struct fetch_state *s)
{
	uint64_t v[3] = { s->seg_ino, s->t->seg_start, s->offset };
	ssize_t n;

	do
		n = pwrite(s->segfd, v, sizeof(v),
		    (off_t)s->t->seg_slot * SEG_SLOT);
	while (n == -1 && errno == EINTR);
	if (n != sizeof(v)) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* s->part + ".segs", in s->segs. 0, or -1 out of memory (reported). */
static int
seg_name(struct transfer *t, struct fetch_state *s)
{
	if (s->segs == NULL && asprintf(&s->segs, "%s%s", s->part,
	    FETCH_SEGS) == -1) {
		s->segs = NULL;
		fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "out of memory");
		return -1;
	}
	return 0;
}

/* Remove part's .segs in dfd (a regular file only). Missing is fine. */
static void
seg_discard(int dfd, const char *part)
{
	struct stat st;
	char *segs;

	if (asprintf(&segs, "%s%s", part, FETCH_SEGS) == -1)
		return;
	if (fstatat(dfd, segs, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		unlinkat(dfd, segs, 0);
	free(segs);
}

/*
 * Open name (in s->dirfd) with flags (O_NOFOLLOW among them) as a regular
 * file: the descriptor, or -1 with the error set. A FIFO or device there
 * is never read or written (O_NONBLOCK: opening one cannot hang).
 */
static int
seg_open_file(struct transfer *t, struct fetch_state *s, const char *name,
    int flags, struct stat *st)
{
	char shown[PATH_MAX], eb[128];
	int fd;

	snprintf(shown, sizeof(shown), "%s/%s", t->dir, name);
	if ((fd = openat(s->dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, FETCH_FILE_MODE)) == -1) {
		open_error(t, s->dirfd, name, shown, errno, FETCH_RETRY);
		return -1;
	}
	if (fstat(fd, st) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "stat '%s': %s",
		    shown, errstr(errno, eb, sizeof(eb)));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s' is not a regular file", shown);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The shared .part is not ours (another owner, a second link, another
 * inode than this transfer wrote): unlink the name, never touching the
 * file, and fail the attempt; the URL's other segments find it gone too.
 */
static void
seg_not_ours(struct transfer *t, struct fetch_state *s)
{
	close(s->fd);
	s->fd = -1;
	replaced(t, s, s->part);
}

/*
 * A segment's files: the .part, made by whichever segment comes first and
 * never truncated (no O_EXCL, no O_TRUNC, no O_APPEND), and the .segs. The
 * segment resumes from its slot and writes on from there: its own open
 * file, positioned once, so write_cb's sequential writes land at the
 * segment's offsets as pwrite()s would. 0, or -1 with the outcome set
 * (FETCH_OK when the segment is complete already).
 */
static int
seg_open(struct transfer *t, struct fetch_state *s)
{
	struct stat st, sst;

	if (seg_name(t, s) == -1 ||
	    (s->fd = seg_open_file(t, s, s->part, O_RDWR | O_CREAT, &st)) ==
	    -1)
		return -1;
	if (!part_is_ours(t, &st)) {
		seg_not_ours(t, s);
		return -1;
	}
	t->part_dev = (uint64_t)st.st_dev;
	t->part_ino = (uint64_t)st.st_ino;
	s->seg_ino = (uint64_t)st.st_ino;
	if ((s->segfd = seg_open_file(t, s, s->segs, O_RDWR | O_CREAT,
	    &sst)) == -1)
		return -1;
	s->offset = fetch_seg_resume(s->segfd, t->seg_slot, s->seg_ino,
	    t->seg_start, t->seg_end);
	/* Bytes the slot claims past the end of the file are not there. */
	if (s->offset > (uint64_t)st.st_size)
		s->offset = t->seg_start;
	if (s->offset == t->seg_end) {
		t->size = t->seg_end - t->seg_start;
		return -1;      /* t->outcome is FETCH_OK: nothing to fetch */
	}
	if (lseek(s->fd, (off_t)s->offset, SEEK_SET) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "lseek failed");
		return -1;
	}
	return 0;
}

/* CURLOPT_RANGE "FIRST-LAST" of what the segment still lacks, with
 * If-Range: only bytes of the resource the split was made for. */
static int
seg_range(struct fetch_state *s)
{
	snprintf(s->range, sizeof(s->range), "%llu-%llu",
	    (unsigned long long)s->offset,
	    (unsigned long long)s->t->seg_end - 1);
	if (curl_easy_setopt(s->easy, CURLOPT_RANGE, s->range) != CURLE_OK)
		return -1;
	return if_range_header(s);
}

/*
 * The body of a segment's answer is about to be written: only a 206 of
 * exactly the bytes asked for (its first byte, its length) of a resource
 * of the length split. A 200 is the whole resource (If-Range saw it
 * change, or ranges are not served after all): nothing of it is written.
 */
static int
seg_response_start(struct fetch_state *s)
{
	const struct transfer *t = s->t;

	s->started = 1;
	if (s->resp.status != 206) {
		s->cause = CAUSE_WHOLE;
		return -1;
	}
	if (s->resp.cr_start < 0 || (uint64_t)s->resp.cr_start != s->offset ||
	    s->resp.length < 0 ||
	    (uint64_t)s->resp.length != t->seg_end - s->offset) {
		s->cause = CAUSE_RANGE;
		return -1;
	}
	if (t->expect.length >= 0 && s->resp.cr_total != t->expect.length) {
		s->cause = CAUSE_CHANGED;
		return -1;
	}
	return 0;
}

/*
 * The whole file is in the .part: check its length against the resource
 * the split was made for (t->expect) and its sha256, then publish it as a
 * whole transfer is (publish()) and remove the .segs. Runs inside
 * fetch_begin(), on whichever thread runs transfers.
 */
static void
seg_verify(struct transfer *t, struct fetch_state *s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct stat st;
	char hex[65];
	int fd;

	if (seg_name(t, s) == -1 ||
	    (s->fd = seg_open_file(t, s, s->part, O_RDONLY, &st)) == -1)
		return;
	if (!part_is_ours(t, &st)) {
		seg_not_ours(t, s);
		return;
	}
	if (t->expect.length >= 0 && st.st_size != t->expect.length) {
		fetch_set_error(t, FETCH_RETRY, FERR_SEGMENT,
		    "size mismatch (have %lld bytes, server says %lld)",
		    (long long)st.st_size, t->expect.length);
		return;
	}
	if (t->has_sha256) {
		s->offset = (uint64_t)st.st_size;
		if ((s->md = EVP_MD_CTX_new()) == NULL || hash_reset(s) == -1 ||
		    hash_existing(t, s) == -1 ||
		    EVP_DigestFinal_ex(s->md, md, &mdlen) != 1 || mdlen != 32) {
			if (t->outcome == FETCH_OK)
				fetch_set_error(t, FETCH_RETRY, FERR_OTHER,
				    "sha256 failed");
			return;
		}
		if (memcmp(md, t->sha256, 32) != 0) {
			hexdigest(md, hex);
			fetch_set_error(t, FETCH_RETRY, FERR_CHECKSUM,
			    "sha256 mismatch (got %s)", hex);
			return;
		}
	}
	fd = s->fd;
	s->fd = -1;
	close(fd);
	/* The .segs goes first: a crash between the two then leaves a
	 * complete .part that a restart fetches again, rather than a .segs
	 * nothing would ever remove next to the published file. */
	(void)unlinkat(s->dirfd, s->segs, 0);
	if (publish(t, s, &st) == -1)
		return;
	published(t, s, &t->expect);
	t->size = (uint64_t)st.st_size;
	t->http_status = 200;
}

/* fetch_begin() of a transfer that is not FETCH_WHOLE, before the easy
 * handle is set up as for any transfer (setup_easy() asks a probe with
 * HEAD and a segment for its range). 0 to perform; -1 when it ended here
 * (a failure, a segment already complete, a verify). */
static int
seg_begin(struct transfer *t, struct fetch_state *s)
{
	switch (t->mode) {
	case FETCH_PROBE:
		return 0;
	case FETCH_SEGMENT:
		if (seg_open(t, s) == -1)
			return -1;
		s->resume_from = s->offset;
		return 0;
	case FETCH_VERIFY:
		seg_verify(t, s);
		return -1;
	case FETCH_WHOLE:
		break;
	}
	return -1;
}

/*
 * finish_status() of a probe or a segment: 1 when it classified the
 * answer, 0 to leave it to the rules of a whole transfer (4xx, 5xx, ...).
 * A segment's .part is never truncated: other segments share it.
 */
static int
seg_status(struct transfer *t, struct fetch_state *s)
{
	long st = t->http_status;
	char eb[128];
	int fd;

	if (st == 416 && t->mode == FETCH_SEGMENT) {
		fetch_set_error(t, FETCH_RETRY, FERR_SEGMENT,
		    "HTTP 416 for a range of the resource");
		return 1;
	}
	if (st < 200 || st > 299)
		return 0;
	if (t->mode != FETCH_SEGMENT)
		return 1;       /* a probe: t->meta is what it is for */
	if (!s->started && seg_response_start(s) == -1)
		return 1;       /* the cause is reported by the caller */
	if (s->offset != t->seg_end) {
		fetch_set_error(t, FETCH_RETRY, FERR_RESET,
		    "the range ended early (at byte %llu of %llu-%llu)",
		    (unsigned long long)s->offset,
		    (unsigned long long)t->seg_start,
		    (unsigned long long)t->seg_end - 1);
		return 1;
	}
	fd = s->fd;
	s->fd = -1;
	if (close(fd) == -1) {
		fetch_set_error(t, FETCH_RETRY, FERR_WRITE, "close: %s",
		    errstr(errno, eb, sizeof(eb)));
		return 1;
	}
	t->size = t->seg_end - t->seg_start;
	return 1;
}

/* finish_cause() of a segment: 1 when handled here. */
static int
seg_cause(struct transfer *t, struct fetch_state *s)
{
	switch (s->cause) {
	case CAUSE_WHOLE:
		fetch_set_error(t, FETCH_RETRY, FERR_SEGMENT,
		    "HTTP %ld to a range request: the resource changed or "
		    "ranges are not served; fetching it as one stream",
		    s->resp.status);
		return 1;
	case CAUSE_CHANGED:
		fetch_set_error(t, FETCH_RETRY, FERR_SEGMENT,
		    "the resource changed (%lld bytes, was %lld); fetching it "
		    "again as one stream", s->resp.cr_total, t->expect.length);
		return 1;
	case CAUSE_RANGE:
		/* A server that said it serves ranges and does not serve
		 * them right: one stream is what it can do. */
		fetch_set_error(t, FETCH_RETRY, FERR_SEGMENT,
		    "server sent another range than asked; fetching it as "
		    "one stream");
		return 1;
	default:
		return 0;
	}
}

/*
 * Remove name.part of a transfer that failed for good. Nothing is created
 * on the way, a symlink on the way ends it, and only a regular file is
 * removed (unlinkat never follows the last component anyway). The outcome
 * and error of the transfer are left as they were: they are its result.
 */
void
fetch_discard(struct transfer *t)
{
	char error[FETCH_ERR_MAX], *part;
	enum fetch_outcome outcome = t->outcome;
	enum fetch_errkind errkind = t->errkind;
	struct stat st;
	size_t boff;
	int dfd;

	memcpy(error, t->error, sizeof(error));
	if (fetch_open_parent(t, 0, &dfd, &boff) == 0) {
		if ((part = part_name(t, t->name + boff)) != NULL) {
			if (fstatat(dfd, part, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode))
				unlinkat(dfd, part, 0);
			seg_discard(dfd, part);
			free(part);
		}
		fetch_close_parent(t, dfd);
	}
	memcpy(t->error, error, sizeof(error));
	t->outcome = outcome;
	t->errkind = errkind;
}

struct transfer *
fetch_transfer_new(const char *url, const char *host, const char *dir,
    const char *name)
{
	struct transfer *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->attempt = 1;
	t->retry_after = -1;
	t->dirfd = -1;
	fetch_meta_unknown(&t->meta);
	fetch_meta_unknown(&t->expect);
	if ((url != NULL && (t->url = strdup(url)) == NULL) ||
	    (host != NULL && (t->host = strdup(host)) == NULL) ||
	    (dir != NULL && (t->dir = strdup(dir)) == NULL) ||
	    (name != NULL && (t->name = strdup(name)) == NULL)) {
		fetch_transfer_free(t);
		return NULL;
	}
	return t;
}

void
fetch_transfer_free(struct transfer *t)
{
	if (t == NULL)
		return;
	state_free(t->state);
	free(t->url);
	free(t->host);
	free(t->dir);
	free(t->name);
	free(t->part_tag);
	free(t->node);
	free(t->headers);
	free(t->mirrors);
	free(t);
}

int
fetch_transfer_set_headers(struct transfer *t, const char *headers)
{
	char *copy = NULL;

	if (headers != NULL && (copy = strdup(headers)) == NULL)
		return -1;
	free(t->headers);
	t->headers = copy;
	return 0;
}
