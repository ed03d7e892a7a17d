/*
 * jobinfo.c: `fetchctl jobs JOB` for people (see jobinfo.h).
 *
 * The daemon never reads a result file to answer a client: a job that
 * ended is a path in its reply, and fetchctl reads the file itself, with
 * the user's own permissions. The rows are result.h's: tab-separated
 * url, outcome, status, bytes, seconds, attempts, path, error (and node).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "feed.h"
#include "jobinfo.h"
#include "meter.h"
#include "proto.h"
#include "result.h"

#define OUTCOMES_MAX 8          /* distinct outcome words counted */
#define SHOWN_MAX 512           /* bytes of a string from outside shown */

enum field { F_URL, F_OUTCOME, F_STATUS, F_BYTES, F_SECONDS, F_ATTEMPTS,
	F_PATH, F_ERROR, F__COUNT };

/* What a result file says, as much of it as is shown. */
struct rows {
	long count;
	double bytes;
	struct { char word[16]; long n; } outcomes[OUTCOMES_MAX];
	size_t noutcomes;
	char *failed[JOBINFO_ROWS];     /* the last failed rows, a ring */
	long failed_at[JOBINFO_ROWS];   /* their 0-based index in the job */
	long nfailed;
};

/* s as printable ASCII, into buf. */
static const char *
shown(const char *s, char *buf, size_t len)
{
	proto_printable(s != NULL ? s : "?", s != NULL ? strlen(s) : 1, buf,
	    len);
	return buf;
}

static const char *
str_at(const json_t *o, const char *key, char *buf, size_t len)
{
	return shown(json_string_value(json_object_get(o, key)), buf, len);
}

/* row split at tabs in place into f; fields missing are "", a node
 * column (cluster mode) is dropped. */
static void
split_row(char *row, char *f[F__COUNT])
{
	char *p = row, *tab;
	int i;

	for (i = 0; i < F__COUNT; i++) {
		f[i] = p;
		if ((tab = strchr(p, '\t')) == NULL)
			p += strlen(p);
		else {
			*tab = '\0';
			p = tab + 1;
		}
	}
}

static void
count_outcome(struct rows *r, const char *word)
{
	size_t i;

	for (i = 0; i < r->noutcomes; i++)
		if (strcmp(r->outcomes[i].word, word) == 0)
			break;
	if (i == r->noutcomes) {
		if (r->noutcomes == OUTCOMES_MAX)
			return;
		snprintf(r->outcomes[i].word, sizeof(r->outcomes[i].word),
		    "%s", word);
		r->noutcomes++;
	}
	r->outcomes[i].n++;
}

/* One row of the file: counted, kept when it failed. 0, or -1 (ENOMEM). */
static int
add_row(struct rows *r, char *row, size_t len)
{
	char *f[F__COUNT], *copy = NULL;
	int ok = result_row_ok(row, len);

	if (!ok && (copy = strdup(row)) == NULL)
		return -1;
	split_row(row, f);
	count_outcome(r, f[F_OUTCOME]);
	r->bytes += strtod(f[F_BYTES], NULL);
	if (!ok) {
		free(r->failed[r->nfailed % JOBINFO_ROWS]);
		r->failed[r->nfailed % JOBINFO_ROWS] = copy;
		r->failed_at[r->nfailed % JOBINFO_ROWS] = r->count;
		r->nfailed++;
	}
	r->count++;
	return 0;
}

/* The rows of the result file at path. 0, or -1 with errno. */
static int
read_rows(const char *path, struct rows *r)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;
	int rv = 0, saved;

	if ((fp = fopen(path, "re")) == NULL)
		return -1;
	while ((n = getline(&line, &cap, fp)) != -1) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if ((rv = add_row(r, line, (size_t)n)) == -1)
			break;
	}
	saved = errno;
	if (ferror(fp))
		rv = -1;
	free(line);
	fclose(fp);
	errno = saved;
	return rv;
}

static void
print_failed_rows(FILE *fp, struct rows *r)
{
	char *f[F__COUNT], a[SHOWN_MAX], b[SHOWN_MAX];
	long i, first = r->nfailed > JOBINFO_ROWS ?
	    r->nfailed - JOBINFO_ROWS : 0;
	char *row;

	if (r->nfailed == 0)
		return;
	fprintf(fp, "failed      the last %ld of %ld row%s, newest last:\n",
	    r->nfailed - first, r->nfailed, r->nfailed == 1 ? "" : "s");
	for (i = first; i < r->nfailed; i++) {
		row = r->failed[i % JOBINFO_ROWS];
		split_row(row, f);
		fprintf(fp, "  #%ld %s: status %s, %s attempt%s: %s\n",
		    r->failed_at[i % JOBINFO_ROWS], shown(f[F_URL], a,
		    sizeof(a)), f[F_STATUS], f[F_ATTEMPTS],
		    strcmp(f[F_ATTEMPTS], "1") == 0 ? "" : "s",
		    shown(f[F_ERROR], b, sizeof(b)));
	}
}

/* An ended job: what its result file says, when it can be read. */
static void
print_result(FILE *fp, const json_t *job)
{
	struct rows r;
	char path[SHOWN_MAX], b[32];
	const char *p = json_string_value(json_object_get(job, FEED_RESULT));
	size_t i;

	if (p == NULL)
		return;
	fprintf(fp, "result      %s\n", shown(p, path, sizeof(path)));
	memset(&r, 0, sizeof(r));
	if (read_rows(p, &r) == -1)
		fprintf(fp, "            (cannot be read here: %s)\n",
		    strerror(errno));
	else {
		fprintf(fp, "urls        %ld:", r.count);
		for (i = 0; i < r.noutcomes; i++)
			fprintf(fp, "%s %ld %s", i == 0 ? "" : ",",
			    r.outcomes[i].n, shown(r.outcomes[i].word, path,
			    sizeof(path)));
		proto_fmt_bytes(r.bytes, b, sizeof(b));
		fprintf(fp, "\nreceived    %s\n", b);
		print_failed_rows(fp, &r);
	}
	for (i = 0; i < JOBINFO_ROWS; i++)
		free(r.failed[i]);
}

/* An active job's last errors, newest last. */
static void
print_errors(FILE *fp, const json_t *errors)
{
	char stamp[16], a[SHOWN_MAX], b[SHOWN_MAX];
	const json_t *e;
	struct tm tm;
	time_t t;
	size_t i;

	if (json_array_size(errors) == 0)
		return;
	fprintf(fp, "errors      the last %zu, newest last:\n",
	    json_array_size(errors));
	json_array_foreach((json_t *)errors, i, e) {
		t = (time_t)proto_num(e, FEED_TIME, 0);
		localtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
		fprintf(fp, "  %s #%.0f %s: status %.0f, attempt %.0f: %s\n",
		    stamp, proto_num(e, FEED_INDEX, 0), str_at(e, FEED_URL, a,
		    sizeof(a)), proto_num(e, FEED_STATUS, 0),
		    proto_num(e, FEED_ATTEMPT, 0), str_at(e, FEED_ERROR, b,
		    sizeof(b)));
	}
}

/* An active job's figures. */
static void
print_active(FILE *fp, const json_t *job)
{
	char bytes[32], rate[32], eta[32];

	fprintf(fp, "urls        %.0f: %.0f done, %.0f failed, %.0f running, "
	    "%.0f queued\n", proto_num(job, FEED_URLS, 0),
	    proto_num(job, FEED_DONE, 0), proto_num(job, FEED_FAILED, 0),
	    proto_num(job, FEED_RUNNING, 0), proto_num(job, FEED_QUEUED, 0));
	proto_fmt_bytes(proto_num(job, FEED_BYTES, 0), bytes, sizeof(bytes));
	meter_fmt_rate(proto_num(job, FEED_RATE, 0), rate, sizeof(rate));
	meter_fmt_eta(proto_num(job, FEED_ETA, -1), eta, sizeof(eta));
	fprintf(fp, "received    %s, %s, %.1f URL/s, ETA %s\n", bytes, rate,
	    proto_num(job, FEED_URL_RATE, 0), eta);
	print_errors(fp, json_object_get(job, FEED_ERRORS));
}

void
jobinfo_print(FILE *fp, const json_t *reply)
{
	const json_t *job = json_object_get(reply, PROTO_KEY_JOB);
	char a[SHOWN_MAX];

	fprintf(fp, "job         %s\n", str_at(job, FEED_NAME, a, sizeof(a)));
	fprintf(fp, "state       %s\n", str_at(job, FEED_STATE, a, sizeof(a)));
	if (json_is_number(json_object_get(job, FEED_URLS)))
		print_active(fp, job);
	print_result(fp, job);
}
