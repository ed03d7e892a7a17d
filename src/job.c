/*
 * job.c: job file parsing.
 *
 * Owns the job line grammar (a URL, then optional key=value fields), the
 * confinement rules for out= paths, the file name fetchd derives from a URL
 * when out= is absent, and a streaming line reader over a job file.
 *
 * URLs go through libcurl's URL API with default flags, so fetchd accepts
 * exactly what libcurl will later fetch: no scheme guessing, no default
 * scheme, no unsupported schemes. Only http and https pass. A URL may carry
 * userinfo (user:pass@host); it is kept in the entry because the transfer
 * needs it, which is why no message built here ever quotes a URL: whoever
 * logs an entry must redact it first.
 *
 * Nothing here touches the file system beyond read(2) and lseek(2) on a
 * descriptor the caller owns, and nothing keeps global state.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "job.h"

#define JOB_READ_BUF (64 * 1024)   /* reader buffer; > JOB_LINE_MAX + 2 */
#define JOB_SCHEME_SHOW 40          /* scheme bytes quoted in a message */
#define JOB_KEY_SHOW 32             /* field name bytes quoted in a message */
#define JOB_SEEN_HEADER 4           /* job_parse_field: a header= was given */

struct job_reader {
	int fd;
	char *buf;              /* JOB_READ_BUF bytes */
	size_t start;           /* first unconsumed byte */
	size_t end;             /* one past the last byte read */
	unsigned long lineno;   /* lines started so far */
	int eof;
	int skipping;           /* inside an over-long line, drop to '\n' */
	int failed;             /* a read error happened: sticky */
	int read_errno;

	/* The job's @default fields (job_directive), and whether a URL line
	 * was seen: no directive may follow one. */
	struct job_entry defaults;
	int defaults_seen;      /* job_parse_field's bits for the defaults */
	int body;
	char *refresh;          /* @refresh's directory, or NULL */
};

static void	job_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	job_is_blank(unsigned char);
static int	job_is_control(unsigned char);
static int	job_hexval(unsigned char);
static int	job_ascii_lower(int);
static size_t	job_scheme_prefix(const char *);
static int	job_parse_url(const char *, struct job_entry *, char *,
		    size_t);
static int	job_parse_sha256(const char *, size_t, unsigned char *);
static size_t	job_utf8_cut(const unsigned char *, size_t, size_t);
static void	job_sanitize_name(char *);
static int	job_reader_line(struct job_reader *, const char *, size_t,
		    struct job_entry *, char *, size_t);
static int	job_reader_fill(struct job_reader *);
static int	job_line_too_long(const char *, size_t);
static int	job_split_field(const unsigned char *, size_t, size_t *, char *,
		    size_t *, char *, size_t);
static int	job_is_directive(const char *, size_t);
static int	job_directive(struct job_reader *, const char *, size_t,
		    char *, size_t);
static int	job_apply_defaults(struct job_reader *, struct job_entry *,
		    char *, size_t);

/* printf into err when the caller gave room for a message. */
static void
job_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
job_is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* C0 controls and DEL; the caller decides whether a tab is a separator. */
static int
job_is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
job_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Locale-free: a UTF-8 host or scheme byte must never be "lowered". */
static int
job_ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* The mirror= URLs of e, freed and forgotten. */
static void
job_mirrors_free(struct job_entry *e)
{
	size_t i;

	for (i = 0; i < e->nmirrors; i++) {
		free(e->mirrors[i]);
		free(e->mirror_hosts[i]);
	}
	free(e->mirrors);
	free(e->mirror_hosts);
	e->mirrors = e->mirror_hosts = NULL;
	e->nmirrors = 0;
}

void
job_entry_free(struct job_entry *e)
{
	if (e == NULL)
		return;
	free(e->url);
	free(e->host);
	free(e->out);
	free(e->headers);
	e->url = NULL;
	e->host = NULL;
	e->out = NULL;
	e->headers = NULL;
	job_mirrors_free(e);
}

int
job_scheme_allowed(const char *scheme)
{
	if (scheme == NULL)
		return 0;
	return strcasecmp(scheme, "http") == 0 ||
	    strcasecmp(scheme, "https") == 0;
}

/*
 * Length of an RFC 3986 scheme followed by ':' at the start of s, or 0. Only
 * used to name the scheme libcurl refused; libcurl decides what a URL is.
 */
static size_t
job_scheme_prefix(const char *s)
{
	size_t n;
	int c;

	for (n = 0; s[n] != '\0'; n++) {
		c = job_ascii_lower(s[n]);
		if (n > 0 && c == ':')
			return n;
		if (c >= 'a' && c <= 'z')
			continue;
		if (n > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' ||
		    c == '.'))
			continue;
		return 0;
	}
	return 0;
}

/* Why curl_url_set() refused s with rc, in the words of a job result. */
static void
job_url_set_error(const char *s, CURLUcode rc, char *err, size_t errlen)
{
	char lower[JOB_SCHEME_SHOW + 1];
	size_t i, n;

	switch (rc) {
	case CURLUE_UNSUPPORTED_SCHEME:
		if ((n = job_scheme_prefix(s)) == 0) {
			job_err(err, errlen,
			    "unsupported scheme (http and https only)");
			return;
		}
		/* Lower-cased, as libcurl reports an accepted one. */
		if (n > JOB_SCHEME_SHOW)
			n = JOB_SCHEME_SHOW;
		for (i = 0; i < n; i++)
			lower[i] = (char)job_ascii_lower(s[i]);
		lower[n] = '\0';
		job_err(err, errlen,
		    "scheme '%s' not allowed (http and https only)", lower);
		return;
	case CURLUE_BAD_SCHEME:
		job_err(err, errlen,
		    "URL has no scheme (http:// or https:// required)");
		return;
	case CURLUE_NO_HOST:
		job_err(err, errlen, "URL has an empty host");
		return;
	case CURLUE_OUT_OF_MEMORY:
		job_err(err, errlen, "out of memory");
		return;
	default:
		job_err(err, errlen, "bad URL: %s", curl_url_strerror(rc));
		return;
	}
}

/*
 * Copy libcurl's normalised url and host into e, out of curl's allocator
 * so job_entry_free() can use free(). The URL keeps any userinfo: logs must
 * never print e->url as is. 0, or -1 with err set.
 */
static int
job_url_copy(struct job_entry *e, const char *url, const char *host,
    char *err, size_t errlen)
{
	char *p;

	e->url = strdup(url);
	e->host = strdup(host);
	if (e->url == NULL || e->host == NULL) {
		job_err(err, errlen, "out of memory");
		return -1;
	}
	/* Host names compare case-insensitively; per-host caps need one key. */
	for (p = e->host; *p != '\0'; p++)
		*p = (char)job_ascii_lower(*p);
	return 0;
}

/*
 * Hand the URL to libcurl and keep its normalised form and the lower-cased
 * host. Messages never quote the URL itself (it may hold a password); the
 * scheme is safe to quote because job_scheme_prefix() admits only scheme
 * characters.
 */
static int
job_parse_url(const char *s, struct job_entry *e, char *err, size_t errlen)
{
	CURLU *u;
	CURLUcode rc;
	char *scheme = NULL, *host = NULL, *url = NULL;
	int rv = -1;

	if ((u = curl_url()) == NULL) {
		job_err(err, errlen, "out of memory");
		return -1;
	}
	if ((rc = curl_url_set(u, CURLUPART_URL, s, 0)) != CURLUE_OK) {
		job_url_set_error(s, rc, err, errlen);
		goto done;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		job_err(err, errlen, "URL has no scheme");
		goto done;
	}
	if (!job_scheme_allowed(scheme)) {
		job_err(err, errlen,
		    "scheme '%.*s' not allowed (http and https only)",
		    JOB_SCHEME_SHOW, scheme);
		goto done;
	}
	rc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (rc == CURLUE_OUT_OF_MEMORY) {
		job_err(err, errlen, "out of memory");
		goto done;
	}
	if (rc != CURLUE_OK || host == NULL || host[0] == '\0') {
		job_err(err, errlen, "URL has an empty host");
		goto done;
	}
	if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
		job_err(err, errlen, "bad URL: cannot be normalised");
		goto done;
	}
	rv = job_url_copy(e, url, host, err, errlen);
done:
	if (rv == -1) {
		free(e->url);
		free(e->host);
		e->url = NULL;
		e->host = NULL;
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(url);
	curl_url_cleanup(u);
	return rv;
}

static int
job_parse_sha256(const char *v, size_t len, unsigned char *out)
{
	size_t i;
	int hi, lo;

	if (len != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		hi = job_hexval((unsigned char)v[2 * i]);
		lo = job_hexval((unsigned char)v[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* Too long, or a control byte other than a tab: refused. 0 or -1. */
static int
job_line_check(const unsigned char *s, size_t len, char *err, size_t errlen)
{
	size_t i;

	if (len > JOB_LINE_MAX) {
		job_err(err, errlen, "line too long (max %d bytes)",
		    JOB_LINE_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] != '\t' && job_is_control(s[i])) {
			job_err(err, errlen,
			    "control byte 0x%02x at column %zu", s[i], i + 1);
			return -1;
		}
	}
	return 0;
}

/* The next field of s from *pos: its start in *tok, its length returned
 * (0 at the end of the line); *pos moves past it. */
static size_t
job_next_field(const unsigned char *s, size_t len, size_t *pos, size_t *tok)
{
	while (*pos < len && job_is_blank(s[*pos]))
		(*pos)++;
	*tok = *pos;
	while (*pos < len && !job_is_blank(s[*pos]))
		(*pos)++;
	return *pos - *tok;
}

/*
 * A mirror= value (len bytes) checked by the very rules of the line's URL
 * (job_parse_url) and added to e's mirrors. 0, or -1 with err set.
 */
static int
job_parse_mirror(const char *v, size_t len, struct job_entry *e, char *err,
    size_t errlen)
{
	struct job_entry m;
	char msg[JOB_ERR_MAX], *s, **p;
	size_t n = e->nmirrors;

	if (n == JOB_MIRRORS_MAX) {
		job_err(err, errlen, "more than %d mirror= fields",
		    JOB_MIRRORS_MAX);
		return -1;
	}
	memset(&m, 0, sizeof(m));
	if ((s = strndup(v, len)) == NULL) {
		job_err(err, errlen, "out of memory");
		return -1;
	}
	if (job_parse_url(s, &m, msg, sizeof(msg)) == -1) {
		free(s);
		job_err(err, errlen, "mirror %zu: %s", n + 1, msg);
		return -1;
	}
	free(s);
	if ((p = realloc(e->mirrors, (n + 1) * sizeof(*p))) != NULL)
		e->mirrors = p;
	if (p == NULL || (p = realloc(e->mirror_hosts,
	    (n + 1) * sizeof(*p))) == NULL) {
		job_entry_free(&m);
		job_err(err, errlen, "out of memory");
		return -1;
	}
	e->mirror_hosts = p;
	e->mirrors[n] = m.url;
	e->mirror_hosts[n] = m.host;
	e->nmirrors = n + 1;
	return 0;
}

/*
 * segments=N: how many ranges of the file are fetched at once, a plain
 * decimal 1..JOB_SEGMENTS_MAX. seen: JOB_SEEN_SEGMENTS once given. 0, or
 * -1 with err.
 */
#define JOB_SEEN_SEGMENTS 8
static int
job_parse_segments(const char *v, size_t len, struct job_entry *e, int *seen,
    char *err, size_t errlen)
{
	int n = 0;
	size_t i;

	if (*seen & JOB_SEEN_SEGMENTS) {
		job_err(err, errlen, "duplicate field 'segments'");
		return -1;
	}
	for (i = 0; i < len && i < 3 && v[i] >= '0' && v[i] <= '9'; i++)
		n = n * 10 + (v[i] - '0');
	if (len == 0 || i != len || n < 1 || n > JOB_SEGMENTS_MAX) {
		job_err(err, errlen, "segments must be a number from 1 to %d",
		    JOB_SEGMENTS_MAX);
		return -1;
	}
	*seen |= JOB_SEEN_SEGMENTS;
	e->segments = n;
	return 0;
}

/*
 * One key=value field f (flen bytes) into e. seen: bit 0 once out= was
 * given, bit 1 once sha256= was. 0, or -1 with err set.
 */
static int
job_parse_field(const char *f, size_t flen, struct job_entry *e, int *seen,
    char *err, size_t errlen)
{
	const char *val = memchr(f, '=', flen);
	size_t klen;

	if (val == NULL) {
		job_err(err, errlen, "field '%.*s' is not key=value",
		    (int)(flen > JOB_KEY_SHOW ? JOB_KEY_SHOW : flen), f);
		return -1;
	}
	klen = (size_t)(val - f);
	val++;
	if (klen == 3 && memcmp(f, "out", 3) == 0) {
		if (*seen & 1) {
			job_err(err, errlen, "duplicate field 'out'");
			return -1;
		}
		*seen |= 1;
		if ((e->out = strndup(val, flen - klen - 1)) == NULL) {
			job_err(err, errlen, "out of memory");
			return -1;
		}
		return job_out_valid(e->out, err, errlen) ? 0 : -1;
	}
	if (klen == 6 && memcmp(f, "sha256", 6) == 0) {
		if (*seen & 2) {
			job_err(err, errlen, "duplicate field 'sha256'");
			return -1;
		}
		*seen |= 2;
		if (job_parse_sha256(val, flen - klen - 1, e->sha256) == -1) {
			job_err(err, errlen, "sha256 must be 64 hex digits");
			return -1;
		}
		e->has_sha256 = 1;
		return 0;
	}
	if (klen == 6 && memcmp(f, "header", 6) == 0) {
		*seen |= JOB_SEEN_HEADER;
		return job_header_add(e, val, flen - klen - 1, err, errlen);
	}
	if (klen == 6 && memcmp(f, "mirror", 6) == 0)
		return job_parse_mirror(val, flen - klen - 1, e, err, errlen);
	if (klen == 8 && memcmp(f, "segments", 8) == 0)
		return job_parse_segments(val, flen - klen - 1, e, seen, err,
		    errlen);
	job_err(err, errlen, "unknown field '%.*s'",
	    (int)(klen > JOB_KEY_SHOW ? JOB_KEY_SHOW : klen), f);
	return -1;
}

/*
 * The line is checked for control bytes before it is split, so the column
 * in the message is the byte column in the file and a NUL cannot end a
 * field early. Fields are split on runs of spaces and tabs; a '#' starts a
 * comment only as the first non-blank byte, later it is part of a URL.
 */
int
job_parse_line(const char *line, size_t len, unsigned long lineno,
    struct job_entry *e, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t pos = 0, tok, toklen;
	char *urlstr = NULL, field[JOB_LINE_MAX + 1];
	int seen = 0, rv;

	memset(e, 0, sizeof(*e));
	e->lineno = lineno;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (job_line_check(s, len, err, errlen) == -1)
		return -1;
	/* The URL: the first field. */
	if ((toklen = job_next_field(s, len, &pos, &tok)) == 0 ||
	    s[tok] == '#')
		return 0;
	if ((urlstr = strndup(line + tok, toklen)) == NULL) {
		job_err(err, errlen, "out of memory");
		goto fail;
	}
	if (job_parse_url(urlstr, e, err, errlen) == -1)
		goto fail;
	free(urlstr);
	urlstr = NULL;
	/* key=value fields, a quoted value unquoted into field. */
	while ((rv = job_split_field(s, len, &pos, field, &toklen, err,
	    errlen)) == 1)
		if (job_parse_field(field, toklen, e, &seen, err,
		    errlen) == -1)
			goto fail;
	if (rv == -1)
		goto fail;
	return 1;

fail:
	free(urlstr);
	job_entry_free(e);
	e->has_sha256 = 0;
	memset(e->sha256, 0, sizeof(e->sha256));
	return -1;
}

int
job_entry_fields(const char *url, const char *out, const char *sha256,
    struct job_entry *e, char *err, size_t errlen)
{
	size_t ulen = url != NULL ? strlen(url) : 0;

	memset(e, 0, sizeof(*e));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ulen == 0 || ulen > JOB_LINE_MAX ||
	    strcspn(url, " \t") != ulen) {
		job_err(err, errlen, "the URL is empty, too long or has blanks");
		return -1;
	}
	if (job_line_check((const unsigned char *)url, ulen, err, errlen) ==
	    -1 || job_parse_url(url, e, err, errlen) == -1)
		goto fail;
	if (out != NULL && ((e->out = strdup(out)) == NULL ||
	    !job_out_valid(e->out, err, errlen))) {
		if (e->out == NULL)
			job_err(err, errlen, "out of memory");
		goto fail;
	}
	if (sha256 != NULL) {
		if (job_parse_sha256(sha256, strlen(sha256), e->sha256) == -1) {
			job_err(err, errlen, "sha256 must be 64 hex digits");
			goto fail;
		}
		e->has_sha256 = 1;
	}
	return 1;
fail:
	job_entry_free(e);
	e->has_sha256 = 0;
	memset(e->sha256, 0, sizeof(e->sha256));
	return -1;
}

/* The suffix of a component fetchd keeps for its own files: ".part" or
 * JOB_SIDECAR, or NULL. */
static const char *
job_reserved_suffix(const char *comp, size_t clen)
{
	static const char *const suffixes[] = { ".part", JOB_SIDECAR };
	size_t i, n;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		n = strlen(suffixes[i]);
		if (clen >= n && memcmp(comp + clen - n, suffixes[i], n) == 0)
			return suffixes[i];
	}
	return NULL;
}

/*
 * out= names a file under the job's own download directory. This is the
 * lexical half of the confinement: it refuses anything that could climb
 * out (absolute, ".."), alias ("." and "a//b"), collide with fetchd's own
 * ".part" and JOB_SIDECAR files, or confuse a terminal or a result file.
 * Symlinks planted in the directory are the writer's to refuse; a string
 * cannot show them. what names the path in a message ("out=").
 */
static int
job_path_valid(const char *out, const char *what, char *err, size_t errlen)
{
	const unsigned char *s = (const unsigned char *)out;
	const char *sfx;
	size_t i, comp, clen;

	if (out == NULL || out[0] == '\0') {
		job_err(err, errlen, "%s is empty", what);
		return 0;
	}
	if (out[0] == '/') {
		job_err(err, errlen, "%s must be a relative path", what);
		return 0;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (job_is_control(s[i])) {
			job_err(err, errlen, "%s has control byte 0x%02x",
			    what, s[i]);
			return 0;
		}
		if (s[i] == '\\') {
			job_err(err, errlen, "%s has a backslash", what);
			return 0;
		}
	}
	if (i > JOB_PATH_MAX) {
		job_err(err, errlen, "%s is longer than %d bytes", what,
		    JOB_PATH_MAX);
		return 0;
	}

	comp = 0;
	for (i = 0;; i++) {
		if (s[i] != '/' && s[i] != '\0')
			continue;
		clen = i - comp;
		if (clen == 0) {
			job_err(err, errlen, "%s has an empty component", what);
			return 0;
		}
		if ((clen == 1 && s[comp] == '.') ||
		    (clen == 2 && s[comp] == '.' && s[comp + 1] == '.')) {
			job_err(err, errlen, "%s has a '%.*s' component",
			    what, (int)clen, out + comp);
			return 0;
		}
		if (clen > JOB_NAME_MAX) {
			job_err(err, errlen,
			    "%s has a component longer than %d bytes", what,
			    JOB_NAME_MAX);
			return 0;
		}
		if ((sfx = job_reserved_suffix(out + comp, clen)) != NULL) {
			job_err(err, errlen,
			    "%s has a component ending in \"%s\"", what, sfx);
			return 0;
		}
		if (s[i] == '\0')
			break;
		comp = i + 1;
	}
	return 1;
}

int
job_out_valid(const char *out, char *err, size_t errlen)
{
	return job_path_valid(out, "out=", err, errlen);
}

/*
 * Where to cut s (len bytes) to at most max bytes without splitting a UTF-8
 * sequence. Bytes that are not valid UTF-8 are cut where they fall.
 */
static size_t
job_utf8_cut(const unsigned char *s, size_t len, size_t max)
{
	size_t n, k;

	if (len <= max)
		return len;
	n = max;
	for (k = 0; k < 3 && n > 0 && (s[n] & 0xc0) == 0x80; k++)
		n--;
	if (n < max && s[n] >= 0xc0)
		return n;
	return max;
}

/* Replace in place what a file name must not hold; leading dots go. */
static void
job_sanitize_name(char *name)
{
	unsigned char *p;
	size_t skip;

	for (p = (unsigned char *)name; *p != '\0'; p++) {
		if (job_is_control(*p) || strchr("/\\:*?\"<>|", *p) != NULL)
			*p = '_';
	}
	skip = strspn(name, ".");
	memmove(name, name + skip, strlen(name + skip) + 1);
}

/*
 * The last non-empty segment of path, percent-decoded; a decoded NUL
 * becomes '_' so it cannot end the string early. NULL when there is no
 * such segment or no memory.
 */
static char *
job_last_segment(const char *path)
{
	const char *seg, *segend, *p;
	char *name;
	size_t o;
	int hi, lo;

	segend = path + strlen(path);
	while (segend > path && segend[-1] == '/')
		segend--;
	seg = segend;
	while (seg > path && seg[-1] != '/')
		seg--;
	if (seg == segend ||
	    (name = malloc((size_t)(segend - seg) + 1)) == NULL)
		return NULL;
	for (p = seg, o = 0; p < segend; p++) {
		if (*p == '%' && segend - p >= 3 &&
		    (hi = job_hexval((unsigned char)p[1])) >= 0 &&
		    (lo = job_hexval((unsigned char)p[2])) >= 0) {
			name[o++] = (hi << 4 | lo) == 0 ? '_' :
			    (char)(hi << 4 | lo);
			p += 2;
		} else
			name[o++] = *p;
	}
	name[o] = '\0';
	return name;
}

/*
 * The path is taken still percent-encoded and split on '/' first, so an
 * encoded "%2F" stays inside its segment and becomes '_' after decoding.
 * A trailing slash does not make the name empty: "https://h/a/b/" names
 * "b". Decoding is done here rather than by libcurl so that "%00" is just
 * another control byte to replace instead of an error.
 */
void
job_name_from_url(const char *url, char *buf, size_t len)
{
	CURLU *u = NULL;
	char *path = NULL, *name = NULL;
	size_t n;

	if (buf == NULL || len == 0)
		return;
	buf[0] = '\0';

	if ((u = curl_url()) == NULL)
		goto fallback;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto fallback;
	if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto fallback;

	if ((name = job_last_segment(path)) == NULL)
		goto fallback;
	job_sanitize_name(name);

	n = job_utf8_cut((unsigned char *)name, strlen(name), JOB_NAME_MAX);
	name[n] = '\0';
	if (n == 0)
		goto fallback;
	/* Never collide with the ".part" file fetchd writes a download to,
	 * nor with the validators kept beside a refreshed file. */
	if (job_reserved_suffix(name, n) != NULL) {
		if (n == JOB_NAME_MAX)
			name[n - 1] = '_';
		else {
			char *grown = realloc(name, n + 2);

			if (grown == NULL) {
				name[n - 1] = '_';
			} else {
				name = grown;
				name[n] = '_';
				name[n + 1] = '\0';
			}
		}
	}
	n = job_utf8_cut((unsigned char *)name, strlen(name), len - 1);
	memcpy(buf, name, n);
	buf[n] = '\0';
	free(name);
	curl_free(path);
	curl_url_cleanup(u);
	return;

fallback:
	snprintf(buf, len, "%s", "index.html");
	free(name);
	curl_free(path);
	curl_url_cleanup(u);
}

struct job_reader *
job_reader_new(int fd)
{
	struct job_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->buf = malloc(JOB_READ_BUF)) == NULL) {
		free(r);
		return NULL;
	}
	r->fd = fd;
	return r;
}

void
job_reader_free(struct job_reader *r)
{
	if (r == NULL)
		return;
	job_entry_free(&r->defaults);
	free(r->refresh);
	free(r->buf);
	free(r);
}

unsigned long
job_reader_lineno(const struct job_reader *r)
{
	return r->lineno;
}

/*
 * A read error is sticky: the reader cannot know what the lost bytes held,
 * so a second pass after one would be a guess too.
 */
int
job_reader_rewind(struct job_reader *r)
{
	if (r->failed) {
		errno = r->read_errno;
		return -1;
	}
	if (lseek(r->fd, 0, SEEK_SET) == (off_t)-1)
		return -1;
	r->start = r->end = 0;
	r->lineno = 0;
	r->eof = 0;
	r->skipping = 0;
	job_entry_free(&r->defaults);
	r->defaults_seen = 0;
	r->body = 0;
	free(r->refresh);
	r->refresh = NULL;
	return 0;
}

const char *
job_reader_refresh(const struct job_reader *r)
{
	return r->refresh;
}

/* Over JOB_LINE_MAX once a "\r" of a "\r\n" ending is left out. */
static int
job_line_too_long(const char *line, size_t len)
{
	if (len > JOB_LINE_MAX + 1)
		return 1;
	return len == JOB_LINE_MAX + 1 && line[len - 1] != '\r';
}

/* Parse one complete line (newline removed) and add the "line N:" prefix. */
static int
job_reader_line(struct job_reader *r, const char *line, size_t len,
    struct job_entry *e, char *err, size_t errlen)
{
	char msg[JOB_ERR_MAX];
	int rv;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (job_is_directive(line, len))
		rv = job_directive(r, line, len, msg, sizeof(msg));
	else {
		rv = job_parse_line(line, len, r->lineno, e, msg, sizeof(msg));
		if (rv != 0)
			r->body = 1;
		if (rv == 1 && job_apply_defaults(r, e, msg, sizeof(msg)) ==
		    -1) {
			job_entry_free(e);
			rv = -1;
		}
	}
	if (rv == -1)
		job_err(err, errlen, "line %lu: %s", r->lineno, msg);
	return rv;
}

/*
 * Move the unconsumed tail to the front and read more after it. Returns 1
 * when bytes arrived, 0 at end of file, -1 on a read error.
 */
static int
job_reader_fill(struct job_reader *r)
{
	ssize_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	for (;;) {
		n = read(r->fd, r->buf + r->end, JOB_READ_BUF - r->end);
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == -1) {
		r->failed = 1;
		r->read_errno = errno;
		return -1;
	}
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	r->end += (size_t)n;
	return 1;
}

/* A complete line (to its newline or the end of the file): counted,
 * refused when too long, else parsed. As job_reader_line(). */
static int
job_reader_take(struct job_reader *r, const char *line, size_t llen,
    struct job_entry *e, char *err, size_t errlen)
{
	r->lineno++;
	if (job_line_too_long(line, llen)) {
		job_err(err, errlen, "line %lu: line too long (max %d bytes)",
		    r->lineno, JOB_LINE_MAX);
		return -1;
	}
	return job_reader_line(r, line, llen, e, err, errlen);
}

/*
 * Memory stays at one JOB_READ_BUF whatever the file holds: a line is
 * reported too long as soon as more than JOB_LINE_MAX bytes (plus a
 * possible '\r') of it are buffered, and the rest of it is dropped as it
 * arrives.
 */
int
job_reader_next(struct job_reader *r, struct job_entry *e, char *err,
    size_t errlen)
{
	char *nl;
	size_t avail;
	int rv;

	memset(e, 0, sizeof(*e));
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	for (;;) {
		if (r->failed) {
			job_err(err, errlen, "line %lu: read error: %s",
			    r->lineno + 1, strerror(r->read_errno));
			return -1;
		}
		avail = r->end - r->start;
		nl = memchr(r->buf + r->start, '\n', avail);
		if (nl != NULL) {
			size_t llen = (size_t)(nl - (r->buf + r->start));
			const char *line = r->buf + r->start;

			r->start += llen + 1;
			if (r->skipping) {
				r->skipping = 0;
				continue;
			}
			rv = job_reader_take(r, line, llen, e, err, errlen);
			if (rv != 0)
				return rv;
			continue;
		}

		/* No newline buffered. */
		if (r->skipping) {
			r->start = r->end;
		} else if (avail > JOB_LINE_MAX + 1) {
			r->lineno++;
			r->skipping = 1;
			r->start = r->end;
			job_err(err, errlen,
			    "line %lu: line too long (max %d bytes)",
			    r->lineno, JOB_LINE_MAX);
			return -1;
		}
		if (r->eof) {
			if (r->start == r->end)
				return 0;
			/* A last line without a newline still counts. */
			avail = r->end - r->start;
			r->start = r->end;
			rv = job_reader_take(r, r->buf + r->end - avail, avail,
			    e, err, errlen);
			if (rv != 0)
				return rv;
			continue;
		}
		if (job_reader_fill(r) == -1)
			continue;   /* reported at the top of the loop */
	}
}

/* --- quoting, headers and directives ------------------------------------- */

/*
 * The next key=value field of s from *pos into out (its length in *olen,
 * NUL-terminated; out holds JOB_LINE_MAX + 1 bytes): a value that starts
 * with '"' right after the first '=' runs to the closing '"', which must
 * end the field, and holds blanks; \" and \\ are its only escapes. A '"'
 * anywhere else is an ordinary byte. 1, 0 at the end of the line, or -1
 * with err set.
 */
static int
job_split_field(const unsigned char *s, size_t len, size_t *pos, char *out,
    size_t *olen, char *err, size_t errlen)
{
	size_t n = 0;
	int eq = 0;

	while (*pos < len && job_is_blank(s[*pos]))
		(*pos)++;
	if (*pos == len)
		return 0;
	while (*pos < len && !job_is_blank(s[*pos])) {
		out[n++] = (char)s[(*pos)++];
		if (out[n - 1] != '=' || eq++ > 0 || *pos == len ||
		    s[*pos] != '"')
			continue;
		for ((*pos)++;; (*pos)++) {
			if (*pos == len) {
				job_err(err, errlen, "unterminated quoted "
				    "value (a '\"' is missing)");
				return -1;
			}
			if (s[*pos] == '"')
				break;
			if (s[*pos] == '\\') {
				if (++(*pos) == len ||
				    (s[*pos] != '"' && s[*pos] != '\\')) {
					job_err(err, errlen, "bad escape in a "
					    "quoted value (only \\\" and \\\\)");
					return -1;
				}
			}
			out[n++] = (char)s[*pos];
		}
		if (++(*pos) < len && !job_is_blank(s[*pos])) {
			job_err(err, errlen, "text right after a closing '\"'");
			return -1;
		}
	}
	out[n] = '\0';
	*olen = n;
	return 1;
}

/* RFC 9110 tchar. */
static int
job_is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Headers fetchd does not let a job line send, and why. */
static const struct {
	const char *name;
	const char *why;
} job_header_refused[] = {
	{"Host", "it comes from the URL"},
	{"Connection", "a hop-by-hop header"},
	{"Keep-Alive", "a hop-by-hop header"},
	{"Proxy-Connection", "a hop-by-hop header"},
	{"TE", "a hop-by-hop header"},
	{"Trailer", "a hop-by-hop header"},
	{"Transfer-Encoding", "a hop-by-hop header"},
	{"Upgrade", "a hop-by-hop header"},
	{"Proxy-Authorization", "proxy credentials go in http.proxy's URL"},
	{"Range", "fetchd sets it to resume"},
	{"If-Range", "fetchd owns ranged requests"},
	{"Content-Length", "fetchd sends no request body"},
	{"Expect", "fetchd sends no request body"},
};

/* The name of a header line at p (to its ':'): 1 when it is name. */
static int
job_header_named(const char *p, const char *name, size_t nlen)
{
	return strncasecmp(p, name, nlen) == 0 && p[nlen] == ':';
}

/* The line of headers (joined form) named name, or NULL; *count gets the
 * number of lines when count is not NULL. */
static const char *
job_header_find(const char *headers, const char *name, size_t nlen,
    size_t *count)
{
	const char *p, *found = NULL;
	size_t n = 0;

	for (p = headers; p != NULL && *p != '\0'; n++) {
		if (found == NULL && job_header_named(p, name, nlen))
			found = p;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	if (count != NULL)
		*count = n;
	return found;
}

/* The name part of v (vlen bytes): a token fetchd lets a line send. Its
 * length, or 0 with err set. */
static size_t
job_header_name(const char *v, size_t vlen, char *err, size_t errlen)
{
	const char *colon = memchr(v, ':', vlen);
	size_t i, n;

	if (colon == NULL || colon == v) {
		job_err(err, errlen, "header= must be \"Name: value\"");
		return 0;
	}
	n = (size_t)(colon - v);
	for (i = 0; i < n; i++) {
		/* Not quoted: what precedes a blank may be a secret. */
		if (!job_is_tchar((unsigned char)v[i])) {
			job_err(err, errlen, "header name is not a token "
			    "(byte 0x%02x at column %zu of the header)",
			    (unsigned char)v[i], i + 1);
			return 0;
		}
	}
	for (i = 0; i < sizeof(job_header_refused) /
	    sizeof(job_header_refused[0]); i++) {
		if (strlen(job_header_refused[i].name) == n &&
		    strncasecmp(v, job_header_refused[i].name, n) == 0) {
			job_err(err, errlen, "header '%s' is not allowed (%s)",
			    job_header_refused[i].name,
			    job_header_refused[i].why);
			return 0;
		}
	}
	return n;
}

/* Append len bytes of text to *headers as its last line(s). 0 or -1. */
static int
job_lines_append(char **headers, const char *text, size_t len)
{
	size_t old = *headers != NULL ? strlen(*headers) : 0;
	char *p;

	if ((p = realloc(*headers, old + len + 2)) == NULL)
		return -1;
	if (old > 0)
		p[old++] = '\n';
	memcpy(p + old, text, len);
	p[old + len] = '\0';
	*headers = p;
	return 0;
}

/* "name: value", or "name:" for an empty value, as a line of *headers. */
static int
job_headers_append(char **headers, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	char *line;
	int rv;

	if ((line = malloc(nlen + vlen + 3)) == NULL)
		return -1;
	memcpy(line, name, nlen);
	memcpy(line + nlen, ": ", 2);
	memcpy(line + nlen + 2, value, vlen);
	rv = job_lines_append(headers, line, vlen > 0 ? nlen + 2 + vlen :
	    nlen + 1);
	free(line);
	return rv;
}

/* The bounds of a URL's headers, checked on the joined form. */
static int
job_headers_bounded(const char *headers, size_t count, char *err,
    size_t errlen)
{
	if (count > JOB_HEADERS_MAX) {
		job_err(err, errlen, "more than %d headers", JOB_HEADERS_MAX);
		return -1;
	}
	if (headers != NULL && strlen(headers) > JOB_HEADERS_BYTES) {
		job_err(err, errlen, "headers longer than %d bytes in all",
		    JOB_HEADERS_BYTES);
		return -1;
	}
	return 0;
}

/*
 * A value may hold tabs (RFC 9110 allows them inside one) and bytes over
 * 0x7f, never CR, LF, NUL or another control byte: the line check refuses
 * those already, this check is for values from a cluster's stream.
 */
int
job_header_add(struct job_entry *e, const char *v, size_t vlen, char *err,
    size_t errlen)
{
	size_t nlen, i, count;
	const char *val;

	if ((nlen = job_header_name(v, vlen, err, errlen)) == 0)
		return -1;
	val = v + nlen + 1;
	vlen -= nlen + 1;
	while (vlen > 0 && job_is_blank((unsigned char)val[0])) {
		val++;
		vlen--;
	}
	while (vlen > 0 && job_is_blank((unsigned char)val[vlen - 1]))
		vlen--;
	for (i = 0; i < vlen; i++) {
		if (val[i] != '\t' && job_is_control((unsigned char)val[i])) {
			job_err(err, errlen, "header '%.*s' has control byte "
			    "0x%02x", (int)(nlen > JOB_KEY_SHOW ? JOB_KEY_SHOW :
			    nlen), v, (unsigned char)val[i]);
			return -1;
		}
	}
	if (job_header_find(e->headers, v, nlen, &count) != NULL) {
		job_err(err, errlen, "duplicate header '%.*s'",
		    (int)(nlen > JOB_KEY_SHOW ? JOB_KEY_SHOW : nlen), v);
		return -1;
	}
	if (job_headers_append(&e->headers, v, nlen, val, vlen) == -1) {
		job_err(err, errlen, "out of memory");
		return -1;
	}
	return job_headers_bounded(e->headers, count + 1, err, errlen);
}

int
job_entry_headers(const char *headers, struct job_entry *e, char *err,
    size_t errlen)
{
	const char *p, *nl;
	size_t len;

	for (p = headers; p != NULL && *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (job_header_add(e, p, len, err, errlen) == -1)
			return -1;
		if (nl == NULL)
			break;
	}
	return 0;
}

/* header= defaults: each one whose name the line does not give, first. */
static int
job_merge_headers(struct job_entry *e, const struct job_entry *def,
    char *err, size_t errlen)
{
	const char *p;
	char *merged = NULL;
	size_t len, count = 0, own;

	for (p = def->headers; p != NULL && *p != '\0'; p += len + 1) {
		len = strcspn(p, "\n");
		if (job_header_find(e->headers, p, strcspn(p, ":"), NULL) ==
		    NULL) {
			if (job_lines_append(&merged, p, len) == -1)
				goto nomem;
			count++;
		}
		if (p[len] == '\0')
			break;
	}
	if (merged == NULL)
		return 0;
	(void)job_header_find(e->headers, "", 0, &own);
	if (e->headers != NULL &&
	    job_lines_append(&merged, e->headers, strlen(e->headers)) == -1)
		goto nomem;
	free(e->headers);
	e->headers = merged;
	return job_headers_bounded(merged, count + own, err, errlen);
nomem:
	free(merged);
	job_err(err, errlen, "out of memory");
	return -1;
}

/* segments= defaults: a line without its own takes the job's. */
static int
job_merge_segments(struct job_entry *e, const struct job_entry *def,
    char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (e->segments == 0)
		e->segments = def->segments;
	return 0;
}

/*
 * The fields @default may give, and how a default joins a line's own:
 * merge is called for every URL line once the job has defaults.
 */
static const struct {
	const char *key;
	int (*merge)(struct job_entry *, const struct job_entry *, char *,
	    size_t);
} job_defaultable[] = {
	{"header", job_merge_headers},
	{"segments", job_merge_segments},
};

#define JOB_NDEFAULTABLE \
	(sizeof(job_defaultable) / sizeof(job_defaultable[0]))

static int
job_is_directive(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && job_is_blank((unsigned char)line[i]))
		i++;
	return i < len && line[i] == '@';
}

/* A field of an @default line (key=value in f): a defaultable key, then
 * parsed into the reader's defaults as a line's field is. */
static int
job_default_field(struct job_reader *r, const char *f, size_t flen,
    char *err, size_t errlen)
{
	size_t klen = strcspn(f, "="), i;

	for (i = 0; i < JOB_NDEFAULTABLE; i++)
		if (strlen(job_defaultable[i].key) == klen &&
		    memcmp(f, job_defaultable[i].key, klen) == 0)
			return job_parse_field(f, flen, &r->defaults,
			    &r->defaults_seen, err, errlen);
	job_err(err, errlen, "field '%.*s' cannot be given by @default",
	    (int)(klen > JOB_KEY_SHOW ? JOB_KEY_SHOW : klen), f);
	return -1;
}

/*
 * "@default FIELD=VALUE ...": the fields add to the defaults of earlier
 * @default lines under the rules of one line (a field given once stays
 * given once; headers by name). pos is past the directive's name.
 */
static int
job_directive_default(struct job_reader *r, const unsigned char *s,
    size_t len, size_t pos, char *err, size_t errlen)
{
	char field[JOB_LINE_MAX + 1];
	size_t toklen, n = 0;
	int rv;

	while ((rv = job_split_field(s, len, &pos, field, &toklen, err,
	    errlen)) == 1) {
		if (job_default_field(r, field, toklen, err, errlen) == -1)
			return -1;
		n++;
	}
	if (rv == 0 && n == 0) {
		job_err(err, errlen, "@default gives no field");
		return -1;
	}
	return rv;
}

/*
 * "@refresh DIR": the job refreshes the tree DIR under the download
 * directory (a relative path, checked as out= is), once per job.
 */
static int
job_directive_refresh(struct job_reader *r, const unsigned char *s,
    size_t len, size_t pos, char *err, size_t errlen)
{
	size_t tok, toklen, more;
	char *dir;

	if (r->refresh != NULL) {
		job_err(err, errlen, "@refresh is given twice");
		return -1;
	}
	if ((toklen = job_next_field(s, len, &pos, &tok)) == 0) {
		job_err(err, errlen, "@refresh names no directory");
		return -1;
	}
	if (job_next_field(s, len, &pos, &more) != 0) {
		job_err(err, errlen, "@refresh takes one directory");
		return -1;
	}
	if ((dir = strndup((const char *)s + tok, toklen)) == NULL) {
		job_err(err, errlen, "out of memory");
		return -1;
	}
	if (!job_path_valid(dir, "@refresh's directory", err, errlen)) {
		free(dir);
		return -1;
	}
	r->refresh = dir;
	return 0;
}

/* The directives, by name; each must come before the first URL line. */
static const struct {
	const char *name;
	int (*run)(struct job_reader *, const unsigned char *, size_t, size_t,
	    char *, size_t);
} job_directives[] = {
	{"@default", job_directive_default},
	{"@refresh", job_directive_refresh},
};

/* A directive line. 0 (a directive is never an entry), or -1 with err. */
static int
job_directive(struct job_reader *r, const char *line, size_t len, char *err,
    size_t errlen)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t pos = 0, tok, toklen, i;

	if (job_line_check(s, len, err, errlen) == -1)
		return -1;
	toklen = job_next_field(s, len, &pos, &tok);
	for (i = 0; i < sizeof(job_directives) / sizeof(job_directives[0]);
	    i++) {
		if (strlen(job_directives[i].name) != toklen ||
		    memcmp(line + tok, job_directives[i].name, toklen) != 0)
			continue;
		if (r->body) {
			job_err(err, errlen, "%s must come before the first "
			    "URL line", job_directives[i].name);
			return -1;
		}
		return job_directives[i].run(r, s, len, pos, err, errlen);
	}
	job_err(err, errlen, "unknown directive '%.*s'",
	    (int)(toklen > JOB_KEY_SHOW ? JOB_KEY_SHOW : toklen), line + tok);
	return -1;
}

/* The job's defaults into a URL line's entry e. 0, or -1 with err set. */
static int
job_apply_defaults(struct job_reader *r, struct job_entry *e, char *err,
    size_t errlen)
{
	size_t i;

	if (r->defaults_seen == 0)
		return 0;
	for (i = 0; i < JOB_NDEFAULTABLE; i++)
		if (job_defaultable[i].merge(e, &r->defaults, err, errlen) ==
		    -1)
			return -1;
	return 0;
}
