/*
 * feed.c: the event lines and the job detail of the control socket (see
 * feed.h), built from a transfer or a job_info, and their one-line
 * rendering for people. Pure: the daemon and fetchctl share it, and the
 * tests call it on hand-made input.
 *
 * A URL is shown only through feed_url_redact(): job files may carry
 * credentials in the userinfo or in the query (signed URLs, API keys),
 * and event lines reach every member of the socket's group.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "feed.h"
#include "result.h"
#include "job.h"
#include "proto.h"
#include "util.h"

#define FEED_REDACTED "REDACTED"

/*
 * URLs.
 */

/* 1 when the query parameter name (n bytes) names a secret. */
static int
secret_param(const char *name, size_t n)
{
	static const char *const words[] = {
		"key", "token", "secret", "pass", "sig", "auth", "credential",
		"session", NULL
	};
	char low[64];
	size_t i;

	if (n >= sizeof(low))
		n = sizeof(low) - 1;
	for (i = 0; i < n; i++)
		low[i] = (char)tolower((unsigned char)name[i]);
	low[n] = '\0';
	for (i = 0; words[i] != NULL; i++)
		if (strstr(low, words[i]) != NULL)
			return 1;
	return 0;
}

/* Append n bytes of s to buf (len) at *pos, as far as they fit. */
static void
put(char *buf, size_t len, size_t *pos, const char *s, size_t n)
{
	if (*pos + 1 >= len)
		return;
	if (n > len - 1 - *pos)
		n = len - 1 - *pos;
	memcpy(buf + *pos, s, n);
	*pos += n;
	buf[*pos] = '\0';
}

/* The query (after '?', up to '#' or the end) with secrets redacted. */
static void
put_query(char *buf, size_t len, size_t *pos, const char *q)
{
	size_t n, name;
	const char *eq;

	while (*q != '\0' && *q != '#') {
		n = strcspn(q, "&#");
		eq = memchr(q, '=', n);
		name = eq != NULL ? (size_t)(eq - q) : n;
		if (eq != NULL && secret_param(q, name)) {
			put(buf, len, pos, q, name + 1);
			put(buf, len, pos, FEED_REDACTED, strlen(FEED_REDACTED));
		} else
			put(buf, len, pos, q, n);
		q += n;
		if (*q == '&') {
			put(buf, len, pos, "&", 1);
			q++;
		}
	}
	put(buf, len, pos, q, strlen(q));
}

void
feed_url_redact(const char *url, char *buf, size_t len)
{
	const char *p, *auth, *end, *at, *q;
	size_t pos = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	if ((p = strstr(url, "://")) == NULL)
		p = url;
	else
		p += 3;
	auth = p;
	end = auth + strcspn(auth, "/?#");
	/* userinfo: up to the last '@' of the authority */
	for (at = NULL, q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	put(buf, len, &pos, url, (size_t)(auth - url));
	if (at != NULL)
		auth = at + 1;
	q = auth + strcspn(auth, "?#");
	put(buf, len, &pos, auth, (size_t)(q - auth));
	if (*q == '?') {
		put(buf, len, &pos, "?", 1);
		put_query(buf, len, &pos, q + 1);
	} else
		put(buf, len, &pos, q, strlen(q));
}

/*
 * Building.
 */

/* {"proto":1,"event":kind}; with "seq" and "time" when seq > 0. */
static json_t *
head_new(const char *kind, uint64_t seq, double time)
{
	json_t *o;

	if ((o = proto_reply()) == NULL)
		return NULL;
	if (json_object_set_new(o, FEED_EVENT, json_string(kind)) == -1 ||
	    (seq > 0 && (json_object_set_new(o, FEED_SEQ,
	    json_integer((json_int_t)seq)) == -1 ||
	    json_object_set_new(o, FEED_TIME, json_real(time)) == -1))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Set key to v (stolen) in o; on failure free o. o, or NULL. */
static json_t *
set(json_t *o, const char *key, json_t *v)
{
	if (o == NULL || json_object_set_new(o, key, v) == -1) {
		json_decref(o);
		json_decref(v);
		return NULL;
	}
	return o;
}

/* A string member: made valid UTF-8 (printable ASCII) if it is not. */
static json_t *
str(const char *s)
{
	char clean[FETCH_ERR_MAX * 2];
	json_t *v;

	if ((v = json_string(s != NULL ? s : "")) != NULL)
		return v;
	proto_printable(s, strlen(s), clean, sizeof(clean));
	return json_string(clean);
}

json_t *
feed_job_queued(uint64_t seq, double time, const char *job)
{
	return set(head_new(FEED_JOB_QUEUED, seq, time), FEED_JOB, str(job));
}

json_t *
feed_job_claimed(uint64_t seq, double time, const char *job, int resumed,
    const char *queued_as)
{
	json_t *o = head_new(FEED_JOB_CLAIMED, seq, time);

	o = set(o, FEED_JOB, str(job));
	o = set(o, FEED_RESUMED, json_boolean(resumed));
	if (queued_as != NULL)
		o = set(o, FEED_QUEUED_AS, str(queued_as));
	return o;
}

json_t *
feed_url_done(uint64_t seq, double time, const char *job,
    const struct transfer *t, const char *node)
{
	char url[JOB_LINE_MAX + 1];
	int ok = t->outcome == FETCH_OK;
	json_t *o = head_new(FEED_URL_DONE, seq, time);

	/* The line's own URL, as the result row's; a line with mirror=
	 * fields has its URLs in t->mirrors, the one in use in t->url. */
	feed_url_redact(t->mirrors != NULL ? t->mirrors[0] : t->url, url,
	    sizeof(url));
	o = set(o, FEED_JOB, str(job));
	o = set(o, FEED_INDEX, json_integer((json_int_t)t->index));
	o = set(o, FEED_URL, str(url));
	o = set(o, FEED_OUTCOME, json_string(result_outcome(ok,
	    t->unchanged)));
	o = set(o, FEED_STATUS, json_integer((json_int_t)t->http_status));
	o = set(o, FEED_BYTES, json_integer((json_int_t)(ok ? t->size : 0)));
	o = set(o, FEED_SECONDS, json_real(t->seconds_total));
	o = set(o, FEED_ATTEMPTS, json_integer(t->attempt));
	o = set(o, FEED_ERROR, str(ok ? "" : t->error));
	o = set(o, FEED_PATH, str(t->name));
	if (node != NULL)
		o = set(o, FEED_NODE, str(node));
	if (t->mirrors != NULL) {
		feed_url_redact(t->url, url, sizeof(url));
		o = set(o, FEED_SERVED_BY, str(url));
	}
	return o;
}

/* The counts every end and progress line has. */
static json_t *
set_counts(json_t *o, const struct job_info *ji)
{
	o = set(o, FEED_URLS, json_integer((json_int_t)ji->urls));
	o = set(o, FEED_DONE, json_integer((json_int_t)ji->done));
	o = set(o, FEED_FAILED, json_integer((json_int_t)ji->failed));
	return o;
}

json_t *
feed_job_done(uint64_t seq, double time, const struct job_info *ji,
    int failed, const char *result)
{
	json_t *o = head_new(FEED_JOB_DONE, seq, time);

	o = set(o, FEED_JOB, str(ji->name));
	o = set(o, FEED_STATE, json_string(failed ? FEED_STATE_FAILED :
	    FEED_STATE_DONE));
	o = set_counts(o, ji);
	o = set(o, FEED_BYTES, json_integer((json_int_t)ji->bytes));
	o = set(o, FEED_SECONDS, json_real(ji->seconds));
	o = set(o, FEED_RESULT, str(result));
	return o;
}

/* The figures of an active job's progress, after its "state". */
static json_t *
set_figures(json_t *o, const struct job_info *ji)
{
	o = set_counts(o, ji);
	o = set(o, FEED_RUNNING, json_integer((json_int_t)ji->transferring));
	o = set(o, FEED_QUEUED, json_integer((json_int_t)ji->queued));
	o = set(o, FEED_BYTES, json_integer((json_int_t)ji->bytes));
	o = set(o, FEED_RATE, json_real(ji->rate));
	o = set(o, FEED_URL_RATE, json_real(ji->url_rate));
	o = set(o, FEED_ETA, ji->eta >= 0 ? json_real(ji->eta) : json_null());
	return o;
}

static json_t *
set_progress(json_t *o, const struct job_info *ji)
{
	return set_figures(set(o, FEED_STATE, str(ji->state)), ji);
}

/* An active job's snapshot says "active" where its progress says the
 * job's own state: the figures follow either way. */
json_t *
feed_snapshot(const char *job, const char *state, const struct job_info *ji,
    const char *result)
{
	json_t *o = head_new(FEED_SNAPSHOT, 0, 0);

	o = set(o, FEED_JOB, str(job));
	o = set(o, FEED_STATE, json_string(state));
	if (ji != NULL && strcmp(state, FEED_STATE_ACTIVE) == 0)
		o = set_figures(o, ji);
	if (result != NULL)
		o = set(o, FEED_RESULT, str(result));
	return o;
}

json_t *
feed_progress(const struct job_info *ji)
{
	return set_progress(set(head_new(FEED_PROGRESS, 0, 0), FEED_JOB,
	    str(ji->name)), ji);
}

json_t *
feed_missed(uint64_t count, int dropped)
{
	json_t *o = head_new(FEED_MISSED, 0, 0);

	o = set(o, FEED_COUNT, json_integer((json_int_t)count));
	return set(o, FEED_DROPPED, json_boolean(dropped));
}

json_t *
feed_subscribed(uint64_t seq)
{
	return set(head_new(FEED_SUBSCRIBED, 0, 0), FEED_SEQ,
	    json_integer((json_int_t)seq));
}

static json_t *
error_json(const struct jobs_url_error *e)
{
	char url[JOB_LINE_MAX + 1];
	json_t *o = json_object();

	feed_url_redact(e->url, url, sizeof(url));
	o = set(o, FEED_INDEX, json_integer((json_int_t)e->index));
	o = set(o, FEED_URL, str(url));
	o = set(o, FEED_ERROR, str(e->error));
	o = set(o, FEED_STATUS, json_integer((json_int_t)e->status));
	o = set(o, FEED_ATTEMPT, json_integer(e->attempt));
	return set(o, FEED_TIME, json_real(e->time));
}

json_t *
feed_detail(const char *job, const char *state, const struct job_info *ji,
    const char *result)
{
	json_t *o = json_object(), *errors;
	size_t i;

	o = set(o, FEED_NAME, str(job));
	if (ji == NULL) {
		o = set(o, FEED_STATE, json_string(state));
		if (result != NULL)
			o = set(o, FEED_RESULT, str(result));
		return o;
	}
	o = set_progress(o, ji);
	errors = json_array();
	for (i = 0; i < ji->nerrors && errors != NULL; i++)
		if (json_array_append_new(errors,
		    error_json(&ji->errors[i])) == -1) {
			json_decref(errors);
			errors = NULL;
		}
	return set(o, FEED_ERRORS, errors);
}

/*
 * Lines for people.
 */
static const char *
sget(const json_t *ev, const char *key)
{
	const char *s = json_string_value(json_object_get(ev, key));

	return s != NULL ? s : "?";
}

static double
nget(const json_t *ev, const char *key)
{
	return proto_num(ev, key, 0);
}

/* "3/10 done, 1 failed, 2 running, 4 queued, 1.2 MiB/s, 3.0 URL/s, ETA
 * 4s" of a progress line or an active snapshot. */
static void
line_figures(const json_t *ev, char *buf, size_t len)
{
	char rate[32], eta[32];
	const json_t *e = json_object_get(ev, FEED_ETA);

	proto_fmt_bytes(nget(ev, FEED_RATE), rate, sizeof(rate));
	if (json_is_number(e))
		proto_fmt_duration(json_number_value(e), eta, sizeof(eta));
	else
		snprintf(eta, sizeof(eta), "?");
	snprintf(buf, len, "%.0f/%.0f done, %.0f failed, %.0f running, "
	    "%.0f queued, %s/s, %.1f URL/s, ETA %s", nget(ev, FEED_DONE),
	    nget(ev, FEED_URLS), nget(ev, FEED_FAILED), nget(ev, FEED_RUNNING),
	    nget(ev, FEED_QUEUED), rate, nget(ev, FEED_URL_RATE), eta);
}

static void
line_url(const json_t *ev, char *buf, size_t len)
{
	char bytes[32], secs[32];
	const char *err = sget(ev, FEED_ERROR);
	const char *url = sget(ev, FEED_URL);
	const char *by = json_string_value(json_object_get(ev, FEED_SERVED_BY));
	int other = by != NULL && strcmp(by, url) != 0;

	proto_fmt_bytes(nget(ev, FEED_BYTES), bytes, sizeof(bytes));
	proto_fmt_duration(nget(ev, FEED_SECONDS), secs, sizeof(secs));
	snprintf(buf, len, "%-8s %s #%.0f %.0f %s %s %s%s%s%s%s",
	    sget(ev, FEED_OUTCOME), sget(ev, FEED_JOB), nget(ev, FEED_INDEX),
	    nget(ev, FEED_STATUS), bytes, secs, url, other ? " via " : "",
	    other ? by : "", *err != '\0' ? ": " : "", err);
}

static void
line_done(const json_t *ev, char *buf, size_t len)
{
	char bytes[32], secs[32];

	proto_fmt_bytes(nget(ev, FEED_BYTES), bytes, sizeof(bytes));
	proto_fmt_duration(nget(ev, FEED_SECONDS), secs, sizeof(secs));
	snprintf(buf, len, "%-8s %s: %.0f URL%s, %.0f ok, %.0f failed, %s in "
	    "%s; %s", sget(ev, FEED_STATE), sget(ev, FEED_JOB),
	    nget(ev, FEED_URLS), util_plural(nget(ev, FEED_URLS)),
	    nget(ev, FEED_DONE), nget(ev, FEED_FAILED), bytes, secs,
	    sget(ev, FEED_RESULT));
}

static void
line_snapshot(const json_t *ev, char *buf, size_t len)
{
	char fig[256];
	const char *state = sget(ev, FEED_STATE);

	if (strcmp(state, FEED_STATE_ACTIVE) == 0) {
		line_figures(ev, fig, sizeof(fig));
		snprintf(buf, len, "job      %s active: %s", sget(ev, FEED_JOB),
		    fig);
	} else if (json_is_string(json_object_get(ev, FEED_RESULT)))
		snprintf(buf, len, "job      %s %s; %s", sget(ev, FEED_JOB),
		    state, sget(ev, FEED_RESULT));
	else
		snprintf(buf, len, "job      %s %s", sget(ev, FEED_JOB), state);
}

static void
line_claimed(const json_t *ev, char *buf, size_t len)
{
	const json_t *as = json_object_get(ev, FEED_QUEUED_AS);

	snprintf(buf, len, "claimed  %s%s%s%s", sget(ev, FEED_JOB),
	    json_is_string(as) ? " (queued as " : "",
	    json_is_string(as) ? json_string_value(as) : "",
	    json_is_string(as) ? ")" :
	    json_is_true(json_object_get(ev, FEED_RESUMED)) ? " (resumed)" : "");
}

void
feed_line(const json_t *ev, char *buf, size_t len)
{
	const char *kind = sget(ev, FEED_EVENT);
	char fig[256];

	if (strcmp(kind, FEED_JOB_QUEUED) == 0)
		snprintf(buf, len, "queued   %s", sget(ev, FEED_JOB));
	else if (strcmp(kind, FEED_JOB_CLAIMED) == 0)
		line_claimed(ev, buf, len);
	else if (strcmp(kind, FEED_URL_DONE) == 0)
		line_url(ev, buf, len);
	else if (strcmp(kind, FEED_JOB_DONE) == 0)
		line_done(ev, buf, len);
	else if (strcmp(kind, FEED_SNAPSHOT) == 0)
		line_snapshot(ev, buf, len);
	else if (strcmp(kind, FEED_PROGRESS) == 0) {
		line_figures(ev, fig, sizeof(fig));
		snprintf(buf, len, "%-8s %s %s: %s", "progress", sget(ev,
		    FEED_JOB), sget(ev, FEED_STATE), fig);
	} else if (strcmp(kind, FEED_MISSED) == 0)
		snprintf(buf, len, "missed   %.0f event%s%s",
		    nget(ev, FEED_COUNT), util_plural(nget(ev, FEED_COUNT)),
		    json_is_true(json_object_get(ev, FEED_DROPPED)) ?
		    "; dropped by fetchd (too slow)" : "");
	else if (strcmp(kind, FEED_SUBSCRIBED) == 0)
		snprintf(buf, len, "subscribed after event %.0f",
		    nget(ev, FEED_SEQ));
	else
		snprintf(buf, len, "%-8s %s", kind, sget(ev, FEED_JOB));
}
