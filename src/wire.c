/*
 * wire.c: the codec for the process engine's messages (see wire.h).
 *
 * Both ends are the same binary today (the parent execs its own image), so
 * host order and struct copies would work; the fixed layout is what lets a
 * reader check every field and what lets check_wire test the format
 * without a worker. struct fetch_params is written one field at a time: a
 * field added there must be added to put_params() and get_params() too.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "wire.h"

#define WIRE_ERR_MAX (FETCH_ERR_MAX - 1)

/* --- writing -------------------------------------------------------------- */

void
wire_init(struct wire *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->off = 0;
	w->bad = 0;
}

static void
put_bytes(struct wire *w, const void *p, size_t n)
{
	if (w->bad || w->cap - w->len < n) {
		w->bad = 1;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void
put_uint(struct wire *w, uint64_t v, size_t width)
{
	unsigned char b[8];
	size_t i;

	for (i = 0; i < width; i++)
		b[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
	put_bytes(w, b, width);
}

static void
put_u8(struct wire *w, unsigned v)
{
	put_uint(w, v, 1);
}

static void
put_u64(struct wire *w, uint64_t v)
{
	put_uint(w, v, 8);
}

static void
put_i64(struct wire *w, int64_t v)
{
	put_uint(w, (uint64_t)v, 8);
}

static void
put_dbl(struct wire *w, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof(bits));
	put_u64(w, bits);
}

/* s (NULL as "") when it has at most max bytes; looks at no more than
 * max + 1 of them, so s may be a full fixed array. */
static void
put_str(struct wire *w, const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		s = "";
	if ((n = strnlen(s, max + 1)) > max) {
		w->bad = 1;
		return;
	}
	put_uint(w, n, 4);
	put_bytes(w, s, n);
	put_u8(w, 0);
}

static void
put_meta(struct wire *w, const struct fetch_meta *m)
{
	put_i64(w, m->length);
	put_u8(w, m->ranges != 0);
	put_str(w, m->etag, sizeof(m->etag) - 1);
	put_str(w, m->last_modified, sizeof(m->last_modified) - 1);
}

static void
put_hdr(struct wire *w, enum wire_type type, uint64_t id)
{
	put_u8(w, WIRE_VERSION);
	put_u8(w, type);
	put_u64(w, id);
}

static int
put_end(const struct wire *w)
{
	return w->bad ? -1 : 0;
}

int
wire_put_hello(struct wire *w, uint64_t pid)
{
	put_hdr(w, WIRE_HELLO, 0);
	put_u64(w, pid);
	return put_end(w);
}

int
wire_put_cancel(struct wire *w, uint64_t id)
{
	put_hdr(w, WIRE_CANCEL, id);
	return put_end(w);
}

int
wire_put_progress(struct wire *w, uint64_t id, uint64_t bytes)
{
	put_hdr(w, WIRE_PROGRESS, id);
	put_u64(w, bytes);
	return put_end(w);
}

static void
put_params(struct wire *w, const struct fetch_params *p)
{
	put_i64(w, p->connect_timeout);
	put_i64(w, p->timeout);
	put_i64(w, p->low_speed_limit);
	put_i64(w, p->low_speed_time);
	put_i64(w, p->max_redirects);
	put_i64(w, p->max_file_size);
	put_i64(w, p->rate_limit);
	put_u8(w, p->verify_tls ? 1 : 0);
	put_str(w, p->user_agent, sizeof(p->user_agent) - 1);
	put_str(w, p->proxy, sizeof(p->proxy) - 1);
	put_str(w, p->ca_file, sizeof(p->ca_file) - 1);
	put_str(w, p->no_proxy, sizeof(p->no_proxy) - 1);
	put_str(w, p->proxy_ca_file, sizeof(p->proxy_ca_file) - 1);
	put_str(w, p->netrc_file, sizeof(p->netrc_file) - 1);
	put_str(w, p->deny, sizeof(p->deny) - 1);
}

/* A segmented download's part of a transfer: its mode and range. */
static void
put_segment(struct wire *w, const struct transfer *t)
{
	put_u8(w, (uint8_t)t->mode);
	put_u64(w, t->seg_slot);
	put_u64(w, t->seg_start);
	put_u64(w, t->seg_end);
	put_u8(w, t->refresh ? 1 : 0);
}

int
wire_put_transfer(struct wire *w, const struct transfer *t)
{
	put_hdr(w, WIRE_TRANSFER, t->id);
	put_i64(w, t->attempt);
	put_u8(w, t->has_sha256 ? 1 : 0);
	put_bytes(w, t->sha256, sizeof(t->sha256));
	put_params(w, &t->params);
	put_str(w, t->url, WIRE_URL_MAX);
	put_str(w, t->dir, WIRE_PATH_MAX);
	put_str(w, t->name, WIRE_PATH_MAX);
	put_str(w, t->part_tag != NULL ? t->part_tag : "", WIRE_TAG_MAX);
	put_u64(w, t->part_dev);
	put_u64(w, t->part_ino);
	put_meta(w, &t->expect);
	put_str(w, t->headers != NULL ? t->headers : "", WIRE_HEADERS_MAX);
	put_segment(w, t);
	return put_end(w);
}

int
wire_put_result(struct wire *w, const struct transfer *t)
{
	put_hdr(w, WIRE_RESULT, t->id);
	put_u8(w, t->outcome);
	put_u8(w, t->errkind);
	put_i64(w, t->http_status);
	put_u64(w, t->size);
	put_u64(w, t->received);
	put_dbl(w, t->ttfb);
	put_dbl(w, t->seconds);
	put_i64(w, t->retry_after);
	put_u8(w, t->unchanged ? 1 : 0);
	put_str(w, t->error, WIRE_ERR_MAX);
	put_str(w, t->name, WIRE_PATH_MAX);
	put_u64(w, t->part_dev);
	put_u64(w, t->part_ino);
	put_meta(w, &t->meta);
	put_meta(w, &t->expect);
	return put_end(w);
}

int
wire_transfer_fits(const struct transfer *t)
{
	return (t->url == NULL || strlen(t->url) <= WIRE_URL_MAX) &&
	    (t->dir == NULL || strlen(t->dir) <= WIRE_PATH_MAX) &&
	    (t->name == NULL || strlen(t->name) <= WIRE_PATH_MAX) &&
	    (t->part_tag == NULL || strlen(t->part_tag) <= WIRE_TAG_MAX) &&
	    (t->headers == NULL || strlen(t->headers) <= WIRE_HEADERS_MAX);
}

/* --- reading -------------------------------------------------------------- */

/* Every get_* marks w bad and yields zeros once the bytes run out. */
static const unsigned char *
get_bytes(struct wire *w, size_t n)
{
	const unsigned char *p;

	if (w->bad || w->len - w->off < n) {
		w->bad = 1;
		return NULL;
	}
	p = w->buf + w->off;
	w->off += n;
	return p;
}

static uint64_t
get_uint(struct wire *w, size_t width)
{
	const unsigned char *b = get_bytes(w, width);
	uint64_t v = 0;
	size_t i;

	for (i = 0; b != NULL && i < width; i++)
		v = v << 8 | b[i];
	return v;
}

static uint64_t
get_u64(struct wire *w)
{
	return get_uint(w, 8);
}

/* An integer that must lie in [lo, hi]. */
static long long
get_range(struct wire *w, size_t width, long long lo, long long hi)
{
	uint64_t u = get_uint(w, width);
	long long v = width == 8 ? (long long)(int64_t)u : (long long)u;

	if (v < lo || v > hi)
		w->bad = 1;
	return w->bad ? 0 : v;
}

static double
get_dbl(struct wire *w)
{
	uint64_t bits = get_u64(w);
	double v;

	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* A string in place (NUL-terminated in the buffer), or NULL when it is
 * over max, runs past the end, lacks its NUL or holds one inside. */
static const char *
get_str(struct wire *w, size_t max)
{
	uint64_t n = get_uint(w, 4);
	const char *s;

	if (w->bad || n > max) {
		w->bad = 1;
		return NULL;
	}
	if ((s = (const char *)get_bytes(w, (size_t)n + 1)) == NULL)
		return NULL;
	if (s[n] != '\0' || memchr(s, '\0', (size_t)n) != NULL) {
		w->bad = 1;
		return NULL;
	}
	return s;
}

/* A string into a fixed array of cap bytes. */
static void
get_str_into(struct wire *w, char *dst, size_t cap)
{
	const char *s = get_str(w, cap - 1);

	if (s != NULL)
		memcpy(dst, s, strlen(s) + 1);
}

/* A fetch_meta: the length (-1 or more), ranges, the two validators. */
static void
get_meta(struct wire *w, struct fetch_meta *m)
{
	fetch_meta_unknown(m);
	m->length = get_range(w, 8, -1, LLONG_MAX);
	m->ranges = (int)get_range(w, 1, 0, 1);
	get_str_into(w, m->etag, sizeof(m->etag));
	get_str_into(w, m->last_modified, sizeof(m->last_modified));
}

/* 0 when the message held exactly what was read, nothing more. */
static int
get_end(const struct wire *w)
{
	return w->bad || w->off != w->len ? -1 : 0;
}

int
wire_open(
    struct wire *w, void *buf, size_t len, enum wire_type *type, uint64_t *id)
{
	unsigned version, t;

	w->buf = buf;
	w->cap = w->len = len;
	w->off = 0;
	w->bad = 0;
	version = (unsigned)get_uint(w, 1);
	t = (unsigned)get_uint(w, 1);
	*id = get_u64(w);
	if (w->bad || version != WIRE_VERSION || t < WIRE_HELLO ||
	    t > WIRE_RESULT)
		return -1;
	*type = (enum wire_type)t;
	return 0;
}

int
wire_get_hello(struct wire *w, uint64_t *pid)
{
	*pid = get_u64(w);
	return get_end(w);
}

int
wire_get_cancel(struct wire *w)
{
	return get_end(w);
}

int
wire_get_progress(struct wire *w, uint64_t *bytes)
{
	*bytes = get_u64(w);
	return get_end(w);
}

static void
get_params(struct wire *w, struct fetch_params *p)
{
	p->connect_timeout = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	p->timeout = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	p->low_speed_limit = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	p->low_speed_time = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	p->max_redirects = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	p->max_file_size = get_range(w, 8, LLONG_MIN, LLONG_MAX);
	p->rate_limit = get_range(w, 8, LLONG_MIN, LLONG_MAX);
	p->verify_tls = (int)get_range(w, 1, 0, 1);
	get_str_into(w, p->user_agent, sizeof(p->user_agent));
	get_str_into(w, p->proxy, sizeof(p->proxy));
	get_str_into(w, p->ca_file, sizeof(p->ca_file));
	get_str_into(w, p->no_proxy, sizeof(p->no_proxy));
	get_str_into(w, p->proxy_ca_file, sizeof(p->proxy_ca_file));
	get_str_into(w, p->netrc_file, sizeof(p->netrc_file));
	get_str_into(w, p->deny, sizeof(p->deny));
}

struct transfer *
wire_get_transfer(struct wire *w, uint64_t id)
{
	struct fetch_params params;
	const unsigned char *sha;
	const char *url, *dir, *name, *tag, *headers;
	struct transfer *t;
	struct fetch_meta expect;
	uint64_t part_dev, part_ino, seg_start, seg_end;
	enum fetch_mode mode;
	unsigned slot;
	int attempt, has_sha, refresh;

	memset(&params, 0, sizeof(params));
	attempt = (int)get_range(w, 8, 0, INT_MAX);
	has_sha = (int)get_range(w, 1, 0, 1);
	sha = get_bytes(w, sizeof(t->sha256));
	get_params(w, &params);
	url = get_str(w, WIRE_URL_MAX);
	dir = get_str(w, WIRE_PATH_MAX);
	name = get_str(w, WIRE_PATH_MAX);
	tag = get_str(w, WIRE_TAG_MAX);
	part_dev = get_u64(w);
	part_ino = get_u64(w);
	get_meta(w, &expect);
	headers = get_str(w, WIRE_HEADERS_MAX);
	mode = (enum fetch_mode)get_range(w, 1, FETCH_WHOLE, FETCH_VERIFY);
	slot = (unsigned)get_range(w, 8, 0, FETCH_SEGMENTS_MAX - 1);
	seg_start = get_u64(w);
	seg_end = get_u64(w);
	refresh = (int)get_range(w, 1, 0, 1);
	if (get_end(w) == -1 || seg_end < seg_start) {
		errno = EBADMSG;
		return NULL;
	}
	if ((t = fetch_transfer_new(url, NULL, dir, name)) == NULL ||
	    (tag[0] != '\0' && (t->part_tag = strdup(tag)) == NULL) ||
	    fetch_transfer_set_headers(t, headers[0] != '\0' ? headers :
	    NULL) == -1) {
		fetch_transfer_free(t);
		errno = ENOMEM;
		return NULL;
	}
	t->id = id;
	t->attempt = attempt;
	t->has_sha256 = has_sha;
	memcpy(t->sha256, sha, sizeof(t->sha256));
	t->params = params;
	t->part_dev = part_dev;
	t->part_ino = part_ino;
	t->expect = expect;
	t->mode = mode;
	t->seg_slot = slot;
	t->seg_start = seg_start;
	t->seg_end = seg_end;
	t->refresh = refresh;
	return t;
}

int
wire_get_result(struct wire *w, struct transfer *t, const char **name)
{
	struct transfer r;
	const char *err;

	r.outcome = (enum fetch_outcome)get_range(w, 1, FETCH_OK, FETCH_FAIL);
	r.errkind =
	    (enum fetch_errkind)get_range(w, 1, FERR_NONE, FERR__COUNT - 1);
	r.http_status = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	r.size = get_u64(w);
	r.received = get_u64(w);
	r.ttfb = get_dbl(w);
	r.seconds = get_dbl(w);
	r.retry_after = (long)get_range(w, 8, LONG_MIN, LONG_MAX);
	r.unchanged = (int)get_range(w, 1, 0, 1);
	err = get_str(w, WIRE_ERR_MAX);
	*name = get_str(w, WIRE_PATH_MAX);
	r.part_dev = get_u64(w);
	r.part_ino = get_u64(w);
	get_meta(w, &r.meta);
	get_meta(w, &r.expect);
	if (get_end(w) == -1 || (*name)[0] == '\0')
		return -1;
	t->outcome = r.outcome;
	t->errkind = r.errkind;
	t->http_status = r.http_status;
	t->size = r.size;
	t->received = r.received;
	t->ttfb = r.ttfb;
	t->seconds = r.seconds;
	t->retry_after = r.retry_after;
	t->unchanged = r.unchanged;
	t->part_dev = r.part_dev;
	t->part_ino = r.part_ino;
	t->meta = r.meta;
	t->expect = r.expect;
	memcpy(t->error, err, strlen(err) + 1);
	return 0;
}
