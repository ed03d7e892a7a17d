/*
 * follow.h: the commands of fetchctl that follow jobs as they go, on one
 * long connection: `wait` (and `submit --wait`) until jobs end, and
 * `events`, the daemon's events as they happen.
 */
#ifndef FETCHD_FOLLOW_H
#define FETCHD_FOLLOW_H

#include <signal.h>

#define FOLLOW_PLAIN_EVERY 10.0         /* seconds between plain progress
                                           lines of a job */
#define FOLLOW_RETRY_MIN 0.1            /* reconnect backoff, seconds */
#define FOLLOW_RETRY_MAX 1.0
#define FOLLOW_SUFFIX_MAX 16            /* bytes a claim may add to a job
                                           name (".N"; spool_claim) */

struct follow_opts {
	const char *socket;             /* the control socket's path */
	double timeout;                 /* seconds, 0 for none */
	int tty;                        /* stdout is a terminal: redraw */
	int json;                       /* events: lines as received */
	const char *job;                /* events: only this job, to its end */
	const volatile sig_atomic_t *stop;      /* set by SIGINT, SIGTERM */
};

/* --timeout S: a decimal number of seconds above 0 into *seconds. 0, or
 * -1 when s is not one. */
int follow_timeout(const char *s, double *seconds);

/*
 * Wait until each of the n jobs named has ended, showing their progress
 * on stdout (a line per job redrawn in place on a terminal, else plain
 * lines on changes), then print "JOB STATE RESULT" per job. One `wait`
 * request per job on one connection; when the daemon goes away the
 * connection is made again (backoff FOLLOW_RETRY_MIN doubling to
 * FOLLOW_RETRY_MAX) and the requests sent again, until o->timeout. A
 * proto_exit status: OK, FAILED (a job ended in failed/), TIMEOUT, ERROR
 * (a job the daemon does not know, or an error reply), NOT_RUNNING or
 * DENIED (the first connection); or, when *o->stop was set, 128 plus it.
 */
int follow_wait(const struct follow_opts *o, char *const *jobs, int n);

/*
 * Print the daemon's events (all, or o->job's) as they come, until
 * *o->stop is set (status 0) or, with o->job, until that job ended
 * (OK for done/, FAILED for failed/, ERROR for a job the daemon does not
 * know). The daemon closing the connection is PROTO_EXIT_NOT_RUNNING.
 */
int follow_events(const struct follow_opts *o);

#endif
