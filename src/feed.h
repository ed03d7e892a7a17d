/*
 * feed.h: the event lines of the control socket (`events`, `events JOB`,
 * `wait JOB`) and the detail object of `jobs JOB`: their member names, and
 * the builders that make them from what the daemon knows (a transfer, a
 * job_info). The one owner of that format: the daemon builds its lines
 * here, fetchctl reads them with the same names and prints them with
 * feed_line().
 *
 * Pure: no I/O, no clock (the caller passes the time), so the tests give
 * the builders hand-made input. Every builder returns a new reference, an
 * object that starts with "proto":PROTO_VERSION and "event" (the detail
 * object excepted, which goes under "job" in a reply), or NULL when out of
 * memory.
 */
#ifndef FETCHD_FEED_H
#define FETCHD_FEED_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "fetch.h"
#include "jobs.h"

/* Member names. */
#define FEED_EVENT "event"
#define FEED_SEQ "seq"                  /* the published kinds only */
#define FEED_TIME "time"                /* s since the epoch, real */
#define FEED_JOB "job"
#define FEED_RESUMED "resumed"
#define FEED_QUEUED_AS "queued_as"
#define FEED_INDEX "index"
#define FEED_URL "url"
#define FEED_OUTCOME "outcome"
#define FEED_STATUS "status"
#define FEED_BYTES "bytes"
#define FEED_SECONDS "seconds"
#define FEED_ATTEMPTS "attempts"
#define FEED_ERROR "error"
#define FEED_PATH "path"
#define FEED_NODE "node"
#define FEED_SERVED_BY "served_by"      /* url_done, a line with mirrors */
#define FEED_STATE "state"
#define FEED_URLS "urls"
#define FEED_DONE "done"
#define FEED_FAILED "failed"
#define FEED_RUNNING "running"
#define FEED_QUEUED "queued"
#define FEED_RATE "rate"                /* bytes/s over the last 10 s */
#define FEED_URL_RATE "url_rate"        /* URLs/s over the last 10 s */
#define FEED_ETA "eta"                  /* s, or null when unknown */
#define FEED_RESULT "result"            /* absolute path of J.result */
#define FEED_COUNT "count"
#define FEED_DROPPED "dropped"
#define FEED_NAME "name"                /* detail */
#define FEED_ERRORS "errors"            /* detail: the last URL errors */
#define FEED_ATTEMPT "attempt"          /* detail: errors[] */

/* The kinds ("event"). The first four are published, with "seq". */
#define FEED_JOB_QUEUED "job_queued"
#define FEED_JOB_CLAIMED "job_claimed"
#define FEED_URL_DONE "url_done"
#define FEED_JOB_DONE "job_done"
#define FEED_SNAPSHOT "job"             /* first answer to events/wait JOB */
#define FEED_PROGRESS "progress"        /* wait JOB, every second */
#define FEED_MISSED "missed"            /* a slow subscriber lost events */
#define FEED_SUBSCRIBED "subscribed"    /* first answer to `events` */

/* The states of a snapshot; an active job's detail and progress say the
 * job_info's own ("validating", "running", "finishing", "waiting"). */
#define FEED_STATE_QUEUED "queued"
#define FEED_STATE_ACTIVE "active"
#define FEED_STATE_DONE "done"
#define FEED_STATE_FAILED "failed"
#define FEED_STATE_UNKNOWN "unknown"

/* What a subscriber may ask for, by kind: control.c filters on these. */
enum feed_kind {
	FEED_K_QUEUED,
	FEED_K_CLAIMED,
	FEED_K_URL_DONE,
	FEED_K_JOB_DONE,
	FEED_K_PROGRESS,
	FEED_K__COUNT
};

/*
 * A URL as it may be shown: userinfo ("user:pass@") removed, and the value
 * of every query parameter whose name holds a word that marks a secret
 * (key, token, secret, pass, sig, auth, credential, session; any case)
 * replaced by "REDACTED". Cut to fit len (at least 1).
 */
void feed_url_redact(const char *url, char *buf, size_t len);

/* The four published events. */
json_t *feed_job_queued(uint64_t seq, double time, const char *job);
/* queued_as: the name in new/ when the claim renamed it, else NULL. */
json_t *feed_job_claimed(uint64_t seq, double time, const char *job,
    int resumed, const char *queued_as);
/* t: finished for good, as its result row says: url is its line's URL,
 * and a line with mirror= fields adds served_by, the URL in use (both
 * redacted). node: NULL outside cluster mode (no member). */
json_t *feed_url_done(uint64_t seq, double time, const char *job,
    const struct transfer *t, const char *node);
/* ji: the job's counts at its end (seconds since the claim); failed: it
 * went to failed/; result: the path of its J.result. */
json_t *feed_job_done(uint64_t seq, double time, const struct job_info *ji,
    int failed, const char *result);

/*
 * The snapshot of a job: state is one of FEED_STATE_*; for "active" the
 * progress members of ji follow, for "done" and "failed" result.
 */
json_t *feed_snapshot(const char *job, const char *state,
    const struct job_info *ji, const char *result);
json_t *feed_progress(const struct job_info *ji);
json_t *feed_missed(uint64_t count, int dropped);
json_t *feed_subscribed(uint64_t seq);

/*
 * The object of `jobs JOB` (no "proto", no "event"): name and state, and
 * for an active job (ji not NULL) its progress members and errors (url
 * redacted, time since the epoch); for an ended one result.
 */
json_t *feed_detail(const char *job, const char *state,
    const struct job_info *ji, const char *result);

/*
 * One line for people (no newline) of any event line above, without its
 * time: "queued  J", "claimed J.1 (queued as J)", "ok      J #3 200 1.2 KiB
 * 0.1s http://...", ... A line that is not a known event is shown as its
 * "event" and "job". Cut to fit len.
 */
void feed_line(const json_t *ev, char *buf, size_t len);

#endif
