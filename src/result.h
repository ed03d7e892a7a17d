/*
 * result.h: the rows of J.result, one per URL in job order, and the header
 * line above them. Tab-separated: url, outcome ("ok", "unchanged": a
 * refreshed file the server said is current, or "failed"), HTTP
 * status, bytes, seconds, attempts, path, error ("-" for an empty path or
 * error); in cluster mode a ninth column, node, on the rows of URLs sent
 * to the cluster (the node that fetched it, "-" when none did). A job
 * with mirror= fields has one more column last, served_by: the URL of
 * the last attempt, the one that served the file (or whose error the row
 * gives), on the rows of URLs that were tried. The one place that knows
 * the format: the job runner writes its
 * rows with it, spool.c the row of a job it rejects, and recovery asks it
 * what an earlier run's row says.
 */
#ifndef FETCHD_RESULT_H
#define FETCHD_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "job.h"

#define RESULT_HEADER \
	"#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror\n"
#define RESULT_HEADER_NODE \
	"#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror" \
	"\tnode\n"
#define RESULT_HEADER_SERVED \
	"#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror" \
	"\tserved_by\n"
#define RESULT_HEADER_NODE_SERVED \
	"#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror" \
	"\tnode\tserved_by\n"

/* Longest row: two URLs (url, served_by) and a path at their limits, an
 * error text, numbers. */
#define RESULT_ROW_MAX (2 * JOB_LINE_MAX + JOB_PATH_MAX + 512)

struct result_row {
	const char *url;
	int ok;
	int unchanged;          /* ok by a 304: the file was kept */
	long status;            /* HTTP status, 0 when there was none */
	uint64_t bytes;
	double seconds;
	int attempts;
	const char *path;       /* NULL or "" is written as "-" */
	const char *error;      /* NULL or "" is written as "-" */
	const char *node;       /* NULL: no node column; "" is written "-" */
	const char *served_by;  /* NULL: no served_by column (after node);
	                           "" is written "-" */
};

/* The header line (with '\n') of a job's J.result: node, cluster mode;
 * served_by, a job with mirror= fields (result_format's columns). */
const char *result_header(int node, int served_by);

/*
 * Format r as one row with its '\n' into buf. Tabs, newlines and other
 * control bytes in the text fields would break the row, so they are
 * written as spaces. The length written, or -1 when it does not fit.
 */
int result_format(char *buf, size_t len, const struct result_row *r);

/* A failed row with only a URL (or "-") and an error, nothing fetched. */
int result_format_failed(char *buf, size_t len, const char *url,
    const char *error);

/* The outcome column's word: "ok", "unchanged" or "failed" (also the
 * outcome of the url_done event). */
const char *result_outcome(int ok, int unchanged);

/* 1 when row (as result_format() wrote it, '\n' optional) says ok or
 * unchanged. */
int result_row_ok(const char *row, size_t len);

#endif
