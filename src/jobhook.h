/*
 * jobhook.h: what runs when a job ends. Main loop only.
 *
 * [daemon] on_job_done names a program run with the job's name, its state
 * (done or failed) and the absolute path of its result, as arguments and
 * in the environment; on_job_done_url a URL the same facts are POSTed to
 * as JSON, retried with a backoff. Both run as child processes of the
 * daemon (the POST is this binary again, in the mode below), under one
 * time limit, one cap on how many run at once and one logger of their
 * output. Neither ever changes a job's outcome or blocks the main loop.
 *
 * Durability: spool/hooks/J (spool.c) records what job J is still owed.
 * It is written before the job leaves active/ and removed when its hooks
 * are over, so a hook runs at least once; a daemon stopped or killed while
 * a hook runs runs it again at its next start.
 */
#ifndef FETCHD_JOBHOOK_H
#define FETCHD_JOBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "config.h"
#include "spool.h"

/* The POST mode's command line: "fetchd: hook-post --hook-post". */
#define JOBHOOK_POST_ARG "--hook-post"

/* How the POST mode exits. Anything else (a signal, the time limit, an
 * exec that failed) counts as JOBHOOK_POST_RETRY. */
enum jobhook_post_exit {
	JOBHOOK_POST_OK = 0,            /* a 2xx answer */
	JOBHOOK_POST_GIVEUP = 1,        /* a 4xx other than 429, a bad URL */
	JOBHOOK_POST_RETRY = 2,         /* no connection, timeout, 5xx, 429 */
};

/* A job's counts, as the hooks are given them. */
struct jobhook_counts {
	size_t urls, done, failed;
	uint64_t bytes;
};

struct jobhook;

/*
 * cfg is read at each use (the hooks' options are live on reload): it
 * must stay at the same address while the jobhook lives. NULL on failure
 * (logged).
 */
struct jobhook *jobhook_new(struct event_base *base, struct spool *sp,
    const struct config *cfg);

/*
 * Stop: running hooks get SIGTERM, SIGKILL 2 s later, and are waited for;
 * their records stay, so the next start runs them again. NULL is fine.
 */
void jobhook_free(struct jobhook *jh);

/*
 * At start, after spool_recover(): records whose job is in done/ or
 * failed/ are queued; one whose job is still in active/ waits for it to
 * end; one whose job is gone is dropped (logged). Returns how many were
 * queued, or -1.
 */
long jobhook_recover(struct jobhook *jh);

/*
 * A job is about to leave active/ (it may be called again for the same
 * job when that move fails): write its record. counts may be NULL (then
 * the hooks are given none). Nothing when no hook is configured.
 */
void jobhook_ending(struct jobhook *jh, const char *job, int failed,
    const struct jobhook_counts *counts);

/* The job is in done/ or failed/ now: its hooks are queued. */
void jobhook_ended(struct jobhook *jh, const char *job, int failed);

/* spool_claim() rejected an entry of new/ into failed/<job>: the record
 * and the hooks at once (the entry never passed through active/). */
void jobhook_rejected(struct jobhook *jh, const char *job);

/*
 * The POST mode (jobhook_post.c). main() passes its command line here
 * first: if (jobhook_post_cmdline(argc, argv)) return jobhook_post_main();
 */
int jobhook_post_cmdline(int argc, char *const argv[]);
int jobhook_post_main(void);

#endif
