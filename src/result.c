/*
 * result.c: formatting and reading the rows of J.result (see result.h).
 * Pure: no I/O, so the format is tested on buffers.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "result.h"

/*
 * Append s, control bytes made spaces, and then sep, to buf at *pos.
 * -1 when it does not fit (buf is left NUL-terminated either way).
 */
static int
put_field(char *buf, size_t len, size_t *pos, const char *s, char sep)
{
	size_t p = *pos;

	if (s == NULL || *s == '\0')
		s = "-";
	for (; *s != '\0'; s++) {
		if (p + 2 >= len)
			goto full;
		buf[p++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
	}
	if (p + 2 >= len)
		goto full;
	buf[p++] = sep;
	buf[p] = '\0';
	*pos = p;
	return 0;
full:
	buf[p] = '\0';
	return -1;
}

int
result_format(char *buf, size_t len, const struct result_row *r)
{
	size_t pos = 0;
	int n;

	if (len == 0 || put_field(buf, len, &pos, r->url, '\t') == -1)
		return -1;
	n = snprintf(buf + pos, len - pos,
	    "%s\t%ld\t%" PRIu64 "\t%.3f\t%d\t",
	    result_outcome(r->ok, r->unchanged),
	    r->status, r->bytes, r->seconds, r->attempts);
	if (n < 0 || (size_t)n >= len - pos)
		return -1;
	pos += (size_t)n;
	if (put_field(buf, len, &pos, r->path, '\t') == -1 ||
	    put_field(buf, len, &pos, r->error,
	    r->node != NULL || r->served_by != NULL ? '\t' : '\n') == -1 ||
	    (r->node != NULL && put_field(buf, len, &pos, r->node,
	    r->served_by != NULL ? '\t' : '\n') == -1) ||
	    (r->served_by != NULL &&
	    put_field(buf, len, &pos, r->served_by, '\n') == -1))
		return -1;
	return (int)pos;
}

const char *
result_header(int node, int served_by)
{
	if (served_by)
		return node ? RESULT_HEADER_NODE_SERVED : RESULT_HEADER_SERVED;
	return node ? RESULT_HEADER_NODE : RESULT_HEADER;
}

int
result_format_failed(char *buf, size_t len, const char *url,
    const char *error)
{
	struct result_row r;

	memset(&r, 0, sizeof(r));
	r.url = url;
	r.error = error;
	return result_format(buf, len, &r);
}

const char *
result_outcome(int ok, int unchanged)
{
	return !ok ? "failed" : unchanged ? "unchanged" : "ok";
}

int
result_row_ok(const char *row, size_t len)
{
	const char *tab = memchr(row, '\t', len);
	size_t left = tab != NULL ? (size_t)(row + len - tab) : 0;

	return (left >= 4 && memcmp(tab, "\tok\t", 4) == 0) ||
	    (left >= 11 && memcmp(tab, "\tunchanged\t", 11) == 0);
}
