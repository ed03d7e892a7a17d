/*
 * jobs.h: the claimed jobs the daemon is working on. Main loop only.
 *
 * A job is validated first (the whole file, streamed, so a malformed job
 * fails before anything is fetched), then read again a window at a time:
 * each URL becomes a transfer for the scheduler, results are written to
 * active/J.result in job order, and results that finish out of order wait
 * in the window and in active/J.journal. The journal also records the file
 * name reserved for each URL, so a restart resumes exactly where the last
 * run stopped.
 *
 * A segmented URL (http.segments, segments=) is a probe, then a transfer
 * per byte range, then a verify step, all through the scheduler and the
 * engines; it still has one result row (see jobs.c).
 *
 * Below it: names.h (each job's output names), journal.h (J.journal's
 * records), result.h (J.result's rows), job.h (reading the job file),
 * sched.h, spool.h and fetch.h. None of them calls back up into jobs.c.
 */
#ifndef FETCHD_JOBS_H
#define FETCHD_JOBS_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "config.h"
#include "fetch.h"
#include "sched.h"
#include "spool.h"

#define JOBS_WINDOW 1024        /* URLs of one job between its first
                                   unfinished one and the last one read */
#define JOBS_ACTIVE_MAX 64      /* jobs claimed at once; the rest wait in new/ */
#define JOBS_ERROR_MAX 256      /* bytes of jobs_last_error() */
#define JOBS_URL_ERRORS 5       /* a job's last URL errors kept */
#define JOBS_RATE_WINDOW 10     /* s: a job's rates are over this window */

struct jobs;
struct job_info;

/* Notifications to the daemon (stats, dispatching more work). */
struct jobs_hooks {
	void (*transfer_final)(const struct transfer *, void *);
	void (*transfer_retry)(const struct transfer *, void *);
	/* The job is in done/ or failed/ (failed set): its counts at
	 * the end, seconds since its claim in this run. */
	void (*job_finished)(const struct job_info *, int failed, void *);
	void (*work_ready)(void *);     /* the scheduler has new transfers */
	/* The job is about to leave active/ (called again if that fails):
	 * the same facts as job_finished's. */
	void (*job_ending)(const struct job_info *, int failed, void *);
};

/* A failed attempt of one of a job's URLs (retried ones too). */
struct jobs_url_error {
	size_t index;           /* the URL's place in the job, 0-based */
	const char *url;        /* as in the job file: redact before showing */
	const char *error;
	long status;            /* HTTP status, 0 when none */
	int attempt;            /* 1 for the first */
	double time;            /* s since the epoch */
};

/* One job as it is now. The pointers hold until the main loop goes on. */
struct job_info {
	const char *name;
	const char *state;      /* "validating", "running", "finishing",
	                           "waiting" */
	size_t urls;            /* URLs in the job (after validation) */
	size_t done, failed;    /* URLs finished so far */
	size_t running;         /* transfers out: running or queued */
	size_t transferring;    /* of them, held by an engine now */
	size_t queued;          /* URLs neither finished nor held by an
	                           engine (0 until validated) */
	uint64_t bytes;         /* bytes of finished files + in flight */
	const char *waiting;    /* "waiting": what failed; else NULL */
	double retry_in;        /* "waiting": s until the next try */
	double rate, url_rate;  /* bytes/s, URLs/s over JOBS_RATE_WINDOW s */
	double eta;             /* s until the end, -1 when unknown */
	double seconds;         /* s since the claim in this run */
	struct jobs_url_error errors[JOBS_URL_ERRORS]; /* oldest first */
	size_t nerrors;
};

struct jobs *jobs_new(struct event_base *base, struct spool *sp,
    struct sched *s, const struct config *cfg, const struct jobs_hooks *hooks,
    void *arg);
void jobs_free(struct jobs *js);

/* The config to use from now on (after a reload). */
void jobs_set_config(struct jobs *js, const struct config *cfg);

/*
 * Start a job claimed into active/ (resume: found there at start). A job
 * whose files in active/ cannot be opened or written (a full or failing
 * spool) waits, listed as "waiting", and is tried again with a backoff
 * (1 s doubling to 60 s) while the daemon runs; the same when its final
 * sync or move fails. 0, or -1 when out of memory (it stays in active/).
 */
int jobs_start(struct jobs *js, const char *name, int resume);

/*
 * Read more URLs of the running jobs into the scheduler until `want`
 * transfers are live (queued, waiting for a retry or running), capped at
 * jobs_budget(workers). workers: the running engine's count (the engine
 * owns it; a reload may change it). Returns how many URLs it took from the
 * jobs (a URL recorded at once, such as one of a cancelled job, counts
 * too); 0 when there is nothing more to take now.
 */
size_t jobs_refill(struct jobs *js, size_t want, long workers);

/* The most live transfers jobs_refill() keeps for an engine of workers:
 * twice the workers, so the engine never waits for the next URL, plus a
 * margin. */
size_t jobs_budget(long workers);

/* Transfers live now. */
size_t jobs_live(const struct jobs *js);

/*
 * A transfer came back from an engine. Retries, records the result or
 * (stopping) drops it to be resumed by the next run. Frees t.
 */
void jobs_transfer_done(struct jobs *js, struct transfer *t);

/* Stop reading jobs; transfers that come back from now on are not retried
 * (they stay resumable). */
void jobs_stop(struct jobs *js);

size_t jobs_count(const struct jobs *js);
/* Jobs waiting for the spool, and the latest spool error ("" if none). */
size_t jobs_waiting(const struct jobs *js);
const char *jobs_last_error(const struct jobs *js);
int jobs_full(const struct jobs *js);   /* JOBS_ACTIVE_MAX reached */

/* Sum of t->progress over every live transfer (for rate sampling). */
uint64_t jobs_inflight_bytes(const struct jobs *js);

/* Take a sample of every job's bytes and finished URLs for its rates (the
 * daemon's 1-s tick). now: seconds on the monotonic clock. */
void jobs_sample(struct jobs *js, double now);

/* The job called name, into *ji. 0, or -1 when no such job is claimed. */
int jobs_info(const struct jobs *js, const char *name, struct job_info *ji);

/* The name of the job that owns t (one of this module's transfers). */
const char *jobs_transfer_job(const struct transfer *t);

/* Call cb for each job. */
void jobs_foreach(const struct jobs *js,
    void (*cb)(const struct job_info *, void *), void *arg);

/* Cancel a job by name: queued transfers are dropped, running ones are
 * cancelled through cancel(t, arg); the job ends in failed/ with
 * "cancelled" rows. 0, or -1 when there is no such job. */
int jobs_cancel(struct jobs *js, const char *name,
    void (*cancel)(struct transfer *, void *), void *arg);

#endif
