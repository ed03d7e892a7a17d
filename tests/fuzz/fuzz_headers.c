/*
 * fuzz_headers.c: the response header lines a server sends, the input a
 * remote peer controls. Every line (split at '\n', handed over not
 * NUL-terminated and with its line end, as libcurl's header callback does)
 * through fetch_parse_header(), and every line's text through
 * fetch_parse_content_range(); then the whole input as one line. Checked
 * beyond "no crash": what the parsers hand back is always in range, and a
 * value they accepted reads back the same from its canonical form.
 *
 * Content-Length and Retry-After lines come through here too, but fetch.c
 * leaves their values to libcurl (fetch.h, struct fetch_response).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "fuzz.h"

/* What a response and the meta made of it may hold, whatever came. */
static void
check_response(const struct fetch_response *r)
{
	struct fetch_meta m;
	const char *v;

	if (r->status != 0 && (r->status < 100 || r->status > 999))
		abort();
	if (r->cr_start < -1 || r->cr_total < -1 || r->length < -1)
		abort();
	if (r->ranges != 0 && r->ranges != 1)
		abort();
	/* kept whole and NUL-terminated, or not at all */
	if (memchr(r->etag, '\0', sizeof(r->etag)) == NULL ||
	    memchr(r->last_modified, '\0', sizeof(r->last_modified)) == NULL)
		abort();
	fetch_response_meta(r, &m);
	if (m.length < -1 || (m.ranges != 0 && m.ranges != 1) ||
	    strcmp(m.etag, r->etag) != 0 ||
	    strcmp(m.last_modified, r->last_modified) != 0)
		abort();
	/* If-Range: the ETag when it is strong, else the date; never a
	 * control byte in either */
	v = fetch_if_range(&m);
	if (v != NULL && v != (m.etag[0] == '"' ? m.etag : m.last_modified))
		abort();
	for (; v != NULL && *v != '\0'; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			abort();
}

/* v's Content-Range, then its canonical forms read back alike. */
static void
content_range(const char *v)
{
	long long start, total, a, b;
	char canon[64];

	fetch_parse_content_range(v, &start, &total);
	if (start < -1 || total < -1)
		abort();
	if (start >= 0) {
		snprintf(canon, sizeof(canon), "bytes %lld-%lld/*", start,
		    start);
		fetch_parse_content_range(canon, &a, &b);
		if (a != start || b != -1)
			abort();
	}
	if (total >= 0) {
		snprintf(canon, sizeof(canon), "bytes */%lld", total);
		fetch_parse_content_range(canon, &a, &b);
		if (a != -1 || b != total)
			abort();
	}
}

/* One line of len bytes at p (no NUL after it in the fuzzer's buffer). */
static void
one_line(struct fetch_response *r, const char *p, size_t len)
{
	char *copy;
	int st;

	st = fetch_parse_header(r, p, len);
	if (st != 0 && st != 1)
		abort();
	if (st == 1 && (len < 5 || memcmp(p, "HTTP/", 5) != 0))
		abort();        /* a status line that does not say so */
	check_response(r);
	if ((copy = malloc(len + 1)) == NULL)
		return;
	memcpy(copy, p, len);
	copy[len] = '\0';
	content_range(copy);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fetch_response r;
	const char *p = (const char *)data, *end = p + size, *nl;
	size_t len;

	fetch_response_reset(&r);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl == NULL ? (size_t)(end - p) : (size_t)(nl - p) + 1;
		one_line(&r, p, len);
		p += len;
	}
	one_line(&r, (const char *)data, size);
	return 0;
}
