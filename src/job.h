/*
 * job.h: job file parsing. Pure: no file system, no network, no globals, so
 * every rule is testable on buffers.
 *
 * A job file is text, one URL per line:
 *
 *	# comment
 *	https://example.org/a.iso
 *	https://example.org/b.iso  out=images/b.iso  sha256=<64 hex>
 *	https://example.org/c.iso  header="Authorization: Bearer x"
 *
 * A field's value may be double-quoted to hold blanks (key="a b"); inside
 * the quotes \" and \\ are the only escapes. A line whose first non-blank
 * byte is '@' is a directive, allowed only before the first URL line:
 * "@default FIELD=VALUE ..." gives those fields to every URL line (a
 * line's own field of the same kind wins; headers merge by name);
 * "@refresh DIR" makes the job refresh the tree DIR under the download
 * directory instead of writing a directory of its own (jobs.c, fetch.c).
 *
 * Lines are read in bounded pieces (JOB_LINE_MAX) from a file descriptor, so
 * a job of millions of URLs is streamed, never slurped.
 */
#ifndef FETCHD_JOB_H
#define FETCHD_JOB_H

#include <stddef.h>
#include <stdint.h>

#define JOB_LINE_MAX 8192   /* bytes in one line, newline excluded */
#define JOB_NAME_MAX 255    /* bytes in one path component of out= */
#define JOB_PATH_MAX 1024   /* bytes in a whole out= path */
#define JOB_ERR_MAX 256
#define JOB_HEADERS_MAX 32        /* header= of one URL, defaults included */
#define JOB_HEADERS_BYTES 4096    /* their lines joined, as in job_entry */
#define JOB_MIRRORS_MAX 16  /* mirror= fields on one line */
/* Beside each file of a refreshed tree (@refresh), fetch.c keeps its
 * validators in NAME JOB_SIDECAR; no out= or derived name ends so. */
#define JOB_SIDECAR ".validators"

struct job_entry {
	unsigned long lineno;       /* 1-based line in the job file */
	char *url;                  /* normalised by libcurl's URL API */
	char *host;                 /* lower-case host name, for per-host caps */
	char *out;                  /* relative path, or NULL: derive from URL */
	int has_sha256;
	unsigned char sha256[32];

	/* Request headers (header=, the job's @default ones merged in):
	 * "Name: value" lines joined by '\n' (no trailing one), the value
	 * trimmed and possibly empty; NULL when there are none. */
	char *headers;
	/* Mirrors: mirror=URL fields, other URLs of the same file, in the
	 * order given; each checked as the line's URL is, with its host. */
	char **mirrors;             /* nmirrors URLs, normalised */
	char **mirror_hosts;        /* their lower-case hosts */
	size_t nmirrors;            /* at most JOB_MIRRORS_MAX */
	/* Segmented download: segments=N (1..JOB_SEGMENTS_MAX); 0 when the
	 * line does not say (the config's http.segments then). */
	int segments;
};

#define JOB_SEGMENTS_MAX 16     /* segments= at most (fetch.h's bound) */

void job_entry_free(struct job_entry *e); /* frees the members, not e */

/*
 * Parse one line (no newline; len bytes, need not be NUL-terminated).
 * Returns 1 and fills *e for a URL line, 0 for a blank or comment line,
 * -1 for a malformed line with a message in err (no "line N:" prefix).
 * Rules: only http and https; no control bytes anywhere; fields after the
 * URL are key=value (the value possibly quoted), known keys out=,
 * sha256= and segments=, each at most once, header= (job_header_add())
 * and mirror=, up to JOB_MIRRORS_MAX times; out= must pass
 * job_out_valid(); sha256= is 64 hex digits; segments= a decimal
 * 1..JOB_SEGMENTS_MAX; a mirror= URL passes the checks of the line's own
 * URL (its message says "mirror N: ...", N counting from 1). A directive
 * line is
 * not a URL line: only the reader knows them (job_reader_next).
 */
int job_parse_line(const char *line, size_t len, unsigned long lineno,
    struct job_entry *e, char *err, size_t errlen);

/*
 * The fields of one entry given apart (a cluster node's stream entry): a
 * URL, its out= value (NULL: none) and its sha256= value (NULL: none),
 * checked by exactly the rules job_parse_line() applies to a line's
 * fields; the URL may hold no blank. 1 with *e filled, -1 with err.
 */
int job_entry_fields(const char *url, const char *out, const char *sha256,
    struct job_entry *e, char *err, size_t errlen);

/*
 * The headers of a cluster stream entry (job_entry.headers' form, NULL or
 * "" for none) into e->headers, each checked as a header= field is. 0, or
 * -1 with err set (e keeps what it had; free it as usual).
 */
int job_entry_headers(const char *headers, struct job_entry *e, char *err,
    size_t errlen);

/*
 * One header= value "Name: value": Name an RFC 9110 token and not one
 * fetchd refuses (Host; the hop-by-hop Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade;
 * Proxy-Authorization, which a server must not see; Range,
 * If-Range, Content-Length, Expect, which fetchd owns), value without
 * control bytes but tab, blanks around it dropped; not a name e already
 * has; within JOB_HEADERS_MAX and JOB_HEADERS_BYTES. Appended to
 * e->headers: 0, or -1 with err set.
 */
int job_header_add(struct job_entry *e, const char *v, size_t vlen,
    char *err, size_t errlen);

/* 1 when scheme is "http" or "https" (case-insensitive), else 0. */
int job_scheme_allowed(const char *scheme);

/*
 * 1 when out is an acceptable relative path under a job's download
 * directory: not empty, not absolute, no "." or ".." component, no empty
 * component ("a//b"), no control bytes or backslashes, each component at
 * most JOB_NAME_MAX bytes and not ending in ".part" or JOB_SIDECAR, the
 * whole at most JOB_PATH_MAX. Otherwise 0 and a reason in err.
 */
int job_out_valid(const char *out, char *err, size_t errlen);

/*
 * Derive a file name from a URL's last path segment: percent-decoded, with
 * '/', '\\', control bytes and other bytes unsafe in a file name replaced by
 * '_', leading dots removed, cut to JOB_NAME_MAX; "index.html" when nothing
 * is left. A name ending in ".part" or JOB_SIDECAR gets "_" appended.
 * Always succeeds for a URL accepted by job_parse_line(); writes into buf
 * (len >= JOB_NAME_MAX+1).
 */
void job_name_from_url(const char *url, char *buf, size_t len);

/*
 * Streaming reader over a job file descriptor (not owned).
 */
struct job_reader;

struct job_reader *job_reader_new(int fd);
void job_reader_free(struct job_reader *r);

/*
 * Next URL entry, with the job's @default fields applied. Directive lines
 * are read, never returned. Returns 1 with *e filled (caller frees with
 * job_entry_free), 0 at end of file, -1 on a malformed line or a read error
 * with "line N: message" in err. After -1 the reader may be called again to
 * continue with the next line (to collect several errors); a read error
 * makes every later call return -1.
 * A line longer than JOB_LINE_MAX is an error for that line; the rest of it
 * is skipped. A NUL byte is a control byte. A last line without a newline
 * counts. "\r\n" endings are accepted.
 */
int job_reader_next(struct job_reader *r, struct job_entry *e, char *err,
    size_t errlen);

/* The directory of the job's @refresh directive (a path out= would
 * accept), or NULL: known once the first URL line was returned. */
const char *job_reader_refresh(const struct job_reader *r);

/* Line number of the last line returned or rejected. */
unsigned long job_reader_lineno(const struct job_reader *r);

/* Rewind to the start of the file (lseek) for a second pass. 0 or -1. */
int job_reader_rewind(struct job_reader *r);

#endif
