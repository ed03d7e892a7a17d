/*
 * meter.c: the progress line of a job (see meter.h).
 *
 * The terminal line is built right to left: the figures first (they have
 * a fixed shape), then the name gets up to a third of the width and the
 * bar what is left. A line one column short of the width is what keeps
 * the redraw in place working: a line that fills the last column makes
 * some terminals wrap, and the cursor-up count of the next redraw would
 * then be wrong.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "feed.h"
#include "meter.h"
#include "proto.h"

#define BAR_MIN 5               /* narrower than this: no bar */
#define BAR_MAX 40
#define NAME_MIN 8              /* the name's share never goes below */
#define TAIL_COLS 22            /* "  1.2 MiB/s ETA 1m05s", "done in 3.2s" */

/* A string being appended to; never overflows, always NUL-terminated. */
struct text {
	char *buf;
	size_t len, pos;
};

static void
put(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len == 0 || t->pos >= t->len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->pos, t->len - t->pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		t->buf[t->pos] = '\0';
	else if ((size_t)n >= t->len - t->pos)
		t->pos = t->len - 1;
	else
		t->pos += (size_t)n;
}

static const char *
str_of(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : def;
}

/* The job's name: "job" in events and snapshots, "name" in a detail. */
static const char *
job_name(const json_t *o)
{
	return str_of(o, FEED_JOB, str_of(o, FEED_NAME, "?"));
}

static int
ended(const char *state)
{
	return strcmp(state, FEED_STATE_DONE) == 0 ||
	    strcmp(state, FEED_STATE_FAILED) == 0;
}

void
meter_fmt_eta(double s, char *buf, size_t len)
{
	long t;

	if (!(s >= 0) || isinf(s)) {    /* also NaN */
		snprintf(buf, len, "--");
		return;
	}
	if (s > 1e9)
		s = 1e9;
	t = (long)ceil(s);
	if (t >= 86400)
		snprintf(buf, len, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
	else if (t >= 3600)
		snprintf(buf, len, "%ldh%02ldm", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%lds", t);
}

void
meter_fmt_rate(double r, char *buf, size_t len)
{
	size_t n;

	proto_fmt_bytes(r >= 0 ? r : 0, buf, len);
	if ((n = strlen(buf)) + 3 <= len)
		memcpy(buf + n, "/s", 3);
}

size_t
meter_fmt_name(const char *name, size_t width, char *buf, size_t len)
{
	size_t n = strlen(name), head, tail;

	if (len == 0)
		return 0;
	if (width >= len)
		width = len - 1;
	if (n <= width) {
		memcpy(buf, name, n + 1);
		return n;
	}
	if (width < 5) {                /* no room for "..." to help */
		memcpy(buf, name, width);
		buf[width] = '\0';
		return width;
	}
	/* The end tells submitted jobs apart: it gets the larger part. */
	head = (width - 3) / 3 > 0 ? (width - 3) / 3 : 1;
	tail = width - 3 - head;
	memcpy(buf, name, head);
	memcpy(buf + head, "...", 3);
	memcpy(buf + head + 3, name + n - tail, tail);
	buf[width] = '\0';
	return width;
}

/* Fetching: a progress event's "running", a snapshot's "active". */
static int
running(const char *state)
{
	return strcmp(state, "running") == 0 || strcmp(state, FEED_STATE_ACTIVE) == 0;
}

/* "done/failed/total", done as wide as the total so that the bar keeps
 * its width as it fills; the total is "?" while a job is validated. */
static void
put_counts(struct text *t, const json_t *o, const char *state)
{
	double urls = proto_num(o, FEED_URLS, 0);
	int w = snprintf(NULL, 0, "%.0f", urls);

	put(t, "%*.0f/%.0f/", w, proto_num(o, FEED_DONE, 0),
	    proto_num(o, FEED_FAILED, 0));
	if (urls == 0 && strcmp(state, "validating") == 0)
		put(t, "?");
	else
		put(t, "%.0f", urls);
}

/* What follows the bytes: rate and ETA while running, else the state
 * (with the time taken for an ended job when the object has it). */
static void
put_tail(struct text *t, const json_t *o, const char *state)
{
	char a[32], b[32];

	if (running(state)) {
		meter_fmt_rate(proto_num(o, FEED_RATE, 0), a, sizeof(a));
		meter_fmt_eta(proto_num(o, FEED_ETA, -1), b, sizeof(b));
		put(t, "%11s ETA %s", a, b);
	} else if (ended(state) && json_is_number(json_object_get(o,
	    FEED_SECONDS))) {
		proto_fmt_duration(proto_num(o, FEED_SECONDS, 0), a, sizeof(a));
		put(t, "%s in %s", state, a);
	} else
		put(t, "%s", state);
}

/* The bar: bw cells, filled for the share of the URLs finished. */
static void
put_bar(struct text *t, const json_t *o, const char *state, size_t bw)
{
	double urls = proto_num(o, FEED_URLS, 0), fin, frac = 0;
	size_t i, fill;

	fin = proto_num(o, FEED_DONE, 0) + proto_num(o, FEED_FAILED, 0);
	if (urls > 0)
		frac = fin / urls;
	if (ended(state) || frac > 1)
		frac = 1;
	fill = (size_t)(frac * (double)bw);
	put(t, "[");
	for (i = 0; i < bw; i++)
		put(t, "%c", i < fill ? '=' : i == fill ? '>' : ' ');
	put(t, "]");
}

/* A job without figures (queued, unknown, or ended as a snapshot says):
 * its name and state, and the result file when there is one. */
static size_t
line_bare(const json_t *o, const char *state, size_t avail, char *buf,
    size_t len)
{
	struct text t = { buf, len, 0 };
	char name[METER_LINE_MAX];

	meter_fmt_name(job_name(o), avail, name, sizeof(name));
	put(&t, "%s  %s", name, state);
	if (json_is_string(json_object_get(o, FEED_RESULT)))
		put(&t, "  %s", str_of(o, FEED_RESULT, ""));
	if (t.pos > avail)
		buf[t.pos = avail] = '\0';
	return t.pos;
}

size_t
meter_line(const json_t *o, int width, size_t name_cols, char *buf,
    size_t len)
{
	const char *state = str_of(o, FEED_STATE, "?");
	char right[256], bytes[32], name[METER_LINE_MAX], tb[128];
	struct text r = { right, sizeof(right), 0 }, t = { buf, len, 0 };
	struct text tail = { tb, sizeof(tb), 0 };
	size_t avail, nw, bw = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	if (width < METER_WIDTH_MIN)
		width = METER_WIDTH_MIN;
	if (width > METER_WIDTH_MAX)
		width = METER_WIDTH_MAX;
	avail = (size_t)width - 1;
	if (!json_is_number(json_object_get(o, FEED_URLS)))
		return line_bare(o, state, avail, buf, len);
	proto_fmt_bytes(proto_num(o, FEED_BYTES, 0), bytes, sizeof(bytes));
	put(&r, " ");
	put_counts(&r, o, state);
	put(&r, " %10s ", bytes);
	put_tail(&tail, o, state);
	/* As wide in every state: the bar keeps its width to the end. */
	put(&r, "%-*s", TAIL_COLS, tail.buf);
	nw = strlen(job_name(o)) > name_cols ? strlen(job_name(o)) : name_cols;
	if (nw > avail / 3)
		nw = avail / 3 > NAME_MIN ? avail / 3 : NAME_MIN;
	meter_fmt_name(job_name(o), nw, name, sizeof(name));
	if (avail > nw + 3 + r.pos)
		bw = avail - nw - 3 - r.pos;
	if (bw > BAR_MAX)
		bw = BAR_MAX;
	put(&t, "%-*s ", (int)nw, name);
	if (bw >= BAR_MIN)
		put_bar(&t, o, state, bw);
	put(&t, "%s", right);
	if (t.pos > avail)
		buf[t.pos = avail] = '\0';
	return t.pos;
}

size_t
meter_plain(const json_t *o, char *buf, size_t len)
{
	const char *state = str_of(o, FEED_STATE, "?");
	struct text t = { buf, len, 0 };
	char a[32];

	if (len == 0)
		return 0;
	buf[0] = '\0';
	put(&t, "%s %s", job_name(o), state);
	if (json_is_number(json_object_get(o, FEED_URLS))) {
		proto_fmt_bytes(proto_num(o, FEED_BYTES, 0), a, sizeof(a));
		put(&t, ": %.0f done, %.0f failed of %.0f URLs, %s",
		    proto_num(o, FEED_DONE, 0), proto_num(o, FEED_FAILED, 0),
		    proto_num(o, FEED_URLS, 0), a);
		if (running(state)) {
			meter_fmt_rate(proto_num(o, FEED_RATE, 0), a, sizeof(a));
			put(&t, ", %s, ETA ", a);
			meter_fmt_eta(proto_num(o, FEED_ETA, -1), a, sizeof(a));
			put(&t, "%s", a);
		} else if (json_is_number(json_object_get(o, FEED_SECONDS))) {
			proto_fmt_duration(proto_num(o, FEED_SECONDS, 0), a,
			    sizeof(a));
			put(&t, " in %s", a);
		}
	}
	if (json_is_string(json_object_get(o, FEED_RESULT)))
		put(&t, "; result %s", str_of(o, FEED_RESULT, ""));
	return t.pos;
}
