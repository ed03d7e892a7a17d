/*
 * stats.h: the daemon's counters, throughput windows and latency
 * histograms, and the one JSON generator that reports them (to the control
 * socket, to Prometheus through proto.c, to the service manager's status).
 *
 * Main loop only: the daemon calls the stats_transfer_*() and stats_job_*()
 * functions from its completion path and the jobs hooks. Everything is
 * fixed-size: rates come from a ring of one sample a second, latencies from
 * log-spaced histogram buckets, so memory does not grow with traffic.
 * Functions that need the time take it as a parameter (stats_now() on the
 * monotonic clock), so the tests can drive them with chosen timestamps.
 */
#ifndef FETCHD_STATS_H
#define FETCHD_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>
#include <jansson.h>

#include "fetch.h"
#include "jobs.h"

#define STATS_RING 61           /* samples, one a second: a 60 s window */
#define STATS_HIST_MIN_MS 0.01  /* lower edge of the first bucket */
#define STATS_HIST_PER_OCTAVE 8 /* buckets per doubling: +-4.5% */
#define STATS_HIST_BUCKETS 240  /* 0.01 ms .. about 3 hours */
#define STATS_RECENT 32         /* finished job names kept for `jobs` */
#define STATS_QUEUED_NAMES 100  /* queued job names listed by `jobs` */

/* A latency histogram (milliseconds). */
struct stats_hist {
	uint64_t count;
	double sum, max;
	uint64_t bucket[STATS_HIST_BUCKETS];
};

/*
 * The cumulative buckets reported (latency_ms.*.buckets in the stats
 * object, the Prometheus histograms): the bucket edges one doubling apart,
 * 2 * STATS_HIST_MIN_MS to 2^29 * STATS_HIST_MIN_MS (0.02 ms to about 89
 * minutes). Each is exact: the first bucket, which also holds everything
 * below STATS_HIST_MIN_MS, lies under the first edge, and the last one,
 * which holds everything above its own lower edge, over the last.
 */
#define STATS_HIST_EDGES (STATS_HIST_BUCKETS / STATS_HIST_PER_OCTAVE - 1)

void stats_hist_add(struct stats_hist *h, double ms);
/* Edge k (0 <= k < STATS_HIST_EDGES) in milliseconds. */
double stats_hist_edge(size_t k);
/* The samples of h below edge k (all of them for k past the last edge). */
uint64_t stats_hist_below(const struct stats_hist *h, size_t k);
/* The q-quantile (0 < q <= 1): the midpoint of its bucket, clamped to the
 * largest value seen. 0 when empty. */
double stats_hist_quantile(const struct stats_hist *h, double q);

/* What the daemon knows at the moment of a snapshot. */
struct stats_live {
	const char *model;
	long workers;
	long workers_busy;
	long children_restarted;
	int paused;
	long jobs_queued;               /* entries in spool/new */
	long jobs_active;
	long jobs_waiting;              /* active jobs waiting for the spool */
	const char *spool_error;        /* the latest spool error, or "" */
	long transfers_queued;          /* ready or waiting for a retry */
	long transfers_active;          /* handed to an engine */
	uint64_t inflight_bytes;        /* progress of unfinished attempts */
};

struct stats;
struct spool;

/*
 * base: when not NULL, a 1 s timer samples the rate windows, taking the
 * in-flight bytes from inflight(arg), then calls tick(arg) (may be NULL).
 * NULL on allocation failure.
 */
struct stats *stats_new(struct event_base *base,
    uint64_t (*inflight)(void *), void (*tick)(void *), void *arg);
void stats_free(struct stats *st);

/* Seconds on the monotonic clock. */
double stats_now(void);

/*
 * An attempt came back from an engine: its body bytes (t->progress, which
 * the caller then zeroes so the rate sampler does not count it twice) and,
 * when a response arrived, its latencies (t->ttfb, t->seconds).
 */
void stats_attempt(struct stats *st, const struct transfer *t);
/* A URL finished for good (done or failed; counts errors by kind). */
void stats_transfer_final(struct stats *st, const struct transfer *t);
/* A failed attempt will be retried (counts the error by kind). */
void stats_transfer_retry(struct stats *st, const struct transfer *t);
void stats_job_finished(struct stats *st, const char *name, int failed);

/* Take a rate sample at now (the timer does this every second). */
void stats_sample(struct stats *st, double now, uint64_t inflight_bytes);

/* Bytes and URLs per second over the last `window` samples. */
void stats_rate(const struct stats *st, int window, double *bytes_per_s,
    double *urls_per_s);

/* Jobs waiting in the spool's new/ (spool_count_new()), counted at most
 * every 100 ms, the last count in between. -1 on error. */
long stats_count_queued(struct stats *st, struct spool *sp, double now);

/* The stats object (new reference), or NULL on allocation failure. */
json_t *stats_json(struct stats *st, const struct stats_live *lv,
    double now);

/*
 * The `jobs` object: queued (count and some names of the spool's new/),
 * active (per job progress, from js), done and failed (counts and the
 * latest names). NULL on allocation failure.
 */
json_t *stats_jobs_json(struct stats *st, const struct jobs *js,
    struct spool *sp);

#endif
