/*
 * stats.c: counters, sliding throughput windows, latency histograms and
 * the JSON snapshot of them all. Main loop only.
 *
 * Throughput: once a second the timer records the cumulative bytes (every
 * finished attempt plus the progress of the running ones) and URLs in a
 * ring of STATS_RING samples; the rate over the last W seconds is the
 * difference between the newest sample and the one W samples older,
 * divided by the time between them. A burst therefore fades out of the 1 s
 * window after a second and out of the 60 s window after a minute, instead
 * of being averaged over the whole uptime.
 *
 * Latency: per attempt that got a response, the time to the first byte and
 * the whole attempt's time go into histograms with STATS_HIST_PER_OCTAVE
 * log-spaced buckets per doubling, so a percentile is known within half a
 * bucket (about 4.5%) in fixed memory.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "stats.h"
#include "util.h"

struct stats_point {
	double t;
	uint64_t bytes, urls;
};

struct stats {
	double started;

	/* Counters since start. */
	uint64_t bytes_done;            /* body bytes of finished attempts */
	uint64_t urls;                  /* URLs finished, done or failed */
	uint64_t tr_done, tr_failed, tr_retried;
	uint64_t errors[FERR__COUNT];
	uint64_t jobs_done, jobs_failed;

	/* Names of the latest finished jobs, oldest first once full. */
	char *recent[STATS_RECENT];
	int recent_failed[STATS_RECENT];
	size_t recent_next, recent_n;

	struct stats_point ring[STATS_RING];
	size_t ring_next, ring_n;

	struct stats_hist ttfb, total;

	/* The last count of spool/new. */
	double queued_at;
	long queued;

	struct event *timer;
	uint64_t (*inflight)(void *);
	void (*tick)(void *);
	void *arg;
};

double
stats_now(void)
{
	return util_mono();
}

/* Rounded to a thousandth, so the JSON stays short and readable. */
static double
round3(double x)
{
	return round(x * 1000) / 1000;
}

/*
 * Histograms.
 */
static size_t
hist_index(double ms)
{
	double i;

	if (!(ms > STATS_HIST_MIN_MS))
		return 0;
	i = floor(log2(ms / STATS_HIST_MIN_MS) * STATS_HIST_PER_OCTAVE);
	if (i >= STATS_HIST_BUCKETS - 1)
		return STATS_HIST_BUCKETS - 1;
	return (size_t)i;
}

void
stats_hist_add(struct stats_hist *h, double ms)
{
	if (!(ms >= 0))         /* also NaN */
		ms = 0;
	h->bucket[hist_index(ms)]++;
	h->count++;
	h->sum += ms;
	if (ms > h->max)
		h->max = ms;
}

double
stats_hist_edge(size_t k)
{
	return STATS_HIST_MIN_MS * exp2((double)(k + 1));
}

uint64_t
stats_hist_below(const struct stats_hist *h, size_t k)
{
	uint64_t n = 0;
	size_t i, end;

	if (k >= STATS_HIST_EDGES)
		return h->count;
	end = (k + 1) * STATS_HIST_PER_OCTAVE;
	for (i = 0; i < end; i++)
		n += h->bucket[i];
	return n;
}

double
stats_hist_quantile(const struct stats_hist *h, double q)
{
	uint64_t rank, seen = 0;
	double v;
	size_t i;

	if (h->count == 0)
		return 0;
	/* The smallest value with at least q of the samples at or below. */
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < STATS_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			break;
	}
	if (i == STATS_HIST_BUCKETS)
		i--;
	v = STATS_HIST_MIN_MS *
	    exp2(((double)i + 0.5) / STATS_HIST_PER_OCTAVE);
	return v > h->max ? h->max : v;
}

/*
 * Rates.
 */
void
stats_sample(struct stats *st, double now, uint64_t inflight_bytes)
{
	struct stats_point *p, *last;
	uint64_t bytes = st->bytes_done + inflight_bytes;

	if (st->ring_n > 0) {
		last = &st->ring[(st->ring_next + STATS_RING - 1) % STATS_RING];
		/* Never backwards: a rate is not negative. */
		if (bytes < last->bytes)
			bytes = last->bytes;
	}
	p = &st->ring[st->ring_next];
	p->t = now;
	p->bytes = bytes;
	p->urls = st->urls;
	st->ring_next = (st->ring_next + 1) % STATS_RING;
	if (st->ring_n < STATS_RING)
		st->ring_n++;
}

void
stats_rate(const struct stats *st, int window, double *bps, double *ups)
{
	const struct stats_point *a, *b;
	size_t back;
	double dt;

	*bps = *ups = 0;
	if (st->ring_n < 2 || window < 1)
		return;
	back = (size_t)window;
	if (back > st->ring_n - 1)
		back = st->ring_n - 1;
	b = &st->ring[(st->ring_next + STATS_RING - 1) % STATS_RING];
	a = &st->ring[(st->ring_next + STATS_RING - 1 - back) % STATS_RING];
	if ((dt = b->t - a->t) <= 0)
		return;
	*bps = (double)(b->bytes - a->bytes) / dt;
	*ups = (double)(b->urls - a->urls) / dt;
}

static void
stats_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stats *st = arg;

	stats_sample(st, stats_now(), st->inflight != NULL ?
	    st->inflight(st->arg) : 0);
	if (st->tick != NULL)
		st->tick(st->arg);
}

struct stats *
stats_new(struct event_base *base, uint64_t (*inflight)(void *),
    void (*tick)(void *), void *arg)
{
	struct stats *st;
	struct timeval tv = { 1, 0 };

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->started = stats_now();
	st->queued = -1;
	st->inflight = inflight;
	st->tick = tick;
	st->arg = arg;
	stats_sample(st, st->started, 0);
	if (base != NULL) {
		st->timer = event_new(base, -1, EV_PERSIST, stats_timer_cb, st);
		if (st->timer == NULL || event_add(st->timer, &tv) == -1) {
			stats_free(st);
			return NULL;
		}
	}
	return st;
}

void
stats_free(struct stats *st)
{
	size_t i;

	if (st == NULL)
		return;
	if (st->timer != NULL)
		event_free(st->timer);
	for (i = 0; i < STATS_RECENT; i++)
		free(st->recent[i]);
	free(st);
}

/*
 * Counting.
 */
void
stats_attempt(struct stats *st, const struct transfer *t)
{
	st->bytes_done += __atomic_load_n(&t->progress, __ATOMIC_RELAXED);
	/* Latency only for an attempt that ran and got a response: one taken
	 * back from an engine's queue still holds the last attempt's times. */
	if (t->http_status <= 0 || t->ttfb <= 0 ||
	    __atomic_load_n(&t->cancelled, __ATOMIC_RELAXED) ||
	    (t->errkind == FERR_OTHER && strcmp(t->error, "cancelled") == 0))
		return;
	stats_hist_add(&st->ttfb, t->ttfb * 1000);
	stats_hist_add(&st->total, t->seconds * 1000);
}

static void
count_error(struct stats *st, enum fetch_errkind k)
{
	if (k == FERR_NONE)
		k = FERR_OTHER;
	if ((unsigned)k >= FERR__COUNT)
		k = FERR_OTHER;
	st->errors[k]++;
}

void
stats_transfer_final(struct stats *st, const struct transfer *t)
{
	st->urls++;
	if (t->outcome == FETCH_OK)
		st->tr_done++;
	else {
		st->tr_failed++;
		count_error(st, t->errkind);
	}
}

void
stats_transfer_retry(struct stats *st, const struct transfer *t)
{
	st->tr_retried++;
	count_error(st, t->errkind);
}

void
stats_job_finished(struct stats *st, const char *name, int failed)
{
	char *copy;

	if (failed)
		st->jobs_failed++;
	else
		st->jobs_done++;
	if ((copy = strdup(name)) == NULL)
		return;         /* only the list of names loses it */
	free(st->recent[st->recent_next]);
	st->recent[st->recent_next] = copy;
	st->recent_failed[st->recent_next] = failed;
	st->recent_next = (st->recent_next + 1) % STATS_RECENT;
	if (st->recent_n < STATS_RECENT)
		st->recent_n++;
}

long
stats_count_queued(struct stats *st, struct spool *sp, double now)
{
	if (st->queued >= 0 && now - st->queued_at < 0.1 &&
	    now >= st->queued_at)
		return st->queued;
	st->queued = spool_count_new(sp, NULL, NULL);
	st->queued_at = now;
	return st->queued;
}

/*
 * The process itself.
 */
static long
count_fds(void)
{
	struct dirent *de;
	DIR *dir;
	long n = 0;

	if ((dir = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;   /* the directory's own descriptor */
}

static long long
rss_bytes(void)
{
	unsigned long long size, resident;
	FILE *fp;
	int n;

	if ((fp = fopen("/proc/self/statm", "re")) == NULL)
		return -1;
	n = fscanf(fp, "%llu %llu", &size, &resident);
	fclose(fp);
	if (n != 2)
		return -1;
	return (long long)resident * sysconf(_SC_PAGESIZE);
}

static double
tv_seconds(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* [[edge ms, samples below it], ...] for every edge, cumulative. */
static json_t *
hist_buckets_json(const struct stats_hist *h)
{
	json_t *a;
	size_t k;

	if ((a = json_array()) == NULL)
		return NULL;
	for (k = 0; k < STATS_HIST_EDGES; k++)
		if (json_array_append_new(a, json_pack("[f,I]",
		    stats_hist_edge(k),
		    (json_int_t)stats_hist_below(h, k))) == -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *
hist_json(const struct stats_hist *h)
{
	return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:o}",
	    "count", (json_int_t)h->count,
	    "sum", round3(h->sum),
	    "p50", round3(stats_hist_quantile(h, 0.50)),
	    "p90", round3(stats_hist_quantile(h, 0.90)),
	    "p99", round3(stats_hist_quantile(h, 0.99)),
	    "max", round3(h->max),
	    "buckets", hist_buckets_json(h));
}

static json_t *
rate_json(const struct stats *st, int window)
{
	double b, u;

	stats_rate(st, window, &b, &u);
	return json_pack("{s:f,s:f}", "bytes_per_s", round3(b),
	    "urls_per_s", round3(u));
}

static json_t *
errors_json(const struct stats *st)
{
	json_t *o;
	int k;

	if ((o = json_object()) == NULL)
		return NULL;
	for (k = FERR_NONE + 1; k < FERR__COUNT; k++)
		if (json_object_set_new(o, fetch_errkind_name(k),
		    json_integer((json_int_t)st->errors[k])) == -1) {
			json_decref(o);
			return NULL;
		}
	return o;
}

json_t *
stats_json(struct stats *st, const struct stats_live *lv, double now)
{
	struct rusage ru;

	memset(&ru, 0, sizeof(ru));
	(void)getrusage(RUSAGE_SELF, &ru);
	/* json_pack steals the "o" references, also when it fails. */
	return json_pack("{s:s,s:s,s:I,s:s,s:I,s:f,s:b,"
	    "s:{s:I,s:I,s:I,s:I,s:I},s:s,"
	    "s:{s:I,s:I,s:I,s:I,s:I,s:o},"
	    "s:I,s:I,"
	    "s:{s:o,s:o,s:o},"
	    "s:{s:o,s:o},"
	    "s:{s:f,s:f,s:I,s:I,s:I,s:I}}",
	    "version", PACKAGE_VERSION,
	    "model", lv->model != NULL ? lv->model : "",
	    "pid", (json_int_t)getpid(),
	    "state", lv->paused ? "paused" : "running",
	    "workers", (json_int_t)lv->workers,
	    "uptime_s", round3(now - st->started),
	    "paused", lv->paused,
	    "jobs",
		"queued", (json_int_t)lv->jobs_queued,
		"active", (json_int_t)lv->jobs_active,
		"done", (json_int_t)st->jobs_done,
		"failed", (json_int_t)st->jobs_failed,
		"waiting", (json_int_t)lv->jobs_waiting,
	    "spool_error", lv->spool_error != NULL ? lv->spool_error : "",
	    "transfers",
		"queued", (json_int_t)lv->transfers_queued,
		"active", (json_int_t)lv->transfers_active,
		"done", (json_int_t)st->tr_done,
		"failed", (json_int_t)st->tr_failed,
		"retried", (json_int_t)st->tr_retried,
		"errors", errors_json(st),
	    "bytes_total", (json_int_t)(st->bytes_done + lv->inflight_bytes),
	    "urls_total", (json_int_t)st->urls,
	    "rate",
		"1s", rate_json(st, 1),
		"10s", rate_json(st, 10),
		"60s", rate_json(st, 60),
	    "latency_ms",
		"ttfb", hist_json(&st->ttfb),
		"total", hist_json(&st->total),
	    "process",
		"cpu_user_s", round3(tv_seconds(&ru.ru_utime)),
		"cpu_sys_s", round3(tv_seconds(&ru.ru_stime)),
		"rss_bytes", (json_int_t)rss_bytes(),
		"open_fds", (json_int_t)count_fds(),
		"workers_busy", (json_int_t)lv->workers_busy,
		"children_restarted", (json_int_t)lv->children_restarted);
}

/*
 * `jobs`.
 */
static void
job_cb(const struct job_info *ji, void *arg)
{
	json_t *active = arg, *o;

	o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}",
	    "name", ji->name, "state", ji->state,
	    "urls", (json_int_t)ji->urls, "done", (json_int_t)ji->done,
	    "failed", (json_int_t)ji->failed,
	    "running", (json_int_t)ji->running,
	    "bytes", (json_int_t)ji->bytes);
	if (o != NULL && ji->waiting != NULL &&
	    (json_object_set_new(o, "waiting", json_string(ji->waiting)) ==
	    -1 || json_object_set_new(o, "retry_in_s",
	    json_real(round3(ji->retry_in))) == -1)) {
		json_decref(o);
		o = NULL;
	}
	json_array_append_new(active, o);
}

/* The first STATS_QUEUED_NAMES names of new/ into the array arg. */
static void
queued_cb(const char *name, void *arg)
{
	json_t *names = arg;

	if (json_array_size(names) < STATS_QUEUED_NAMES)
		json_array_append_new(names, json_string(name));
}

json_t *
stats_jobs_json(struct stats *st, const struct jobs *js, struct spool *sp)
{
	json_t *names, *active, *done, *failed;
	long nqueued;
	size_t i, slot;

	names = json_array();
	active = json_array();
	done = json_array();
	failed = json_array();
	if (names == NULL || active == NULL || done == NULL || failed == NULL)
		goto fail;
	nqueued = spool_count_new(sp, queued_cb, names);
	if (js != NULL)
		jobs_foreach(js, job_cb, active);
	/* Newest first. */
	for (i = 0; i < st->recent_n; i++) {
		slot = (st->recent_next + STATS_RECENT - 1 - i) % STATS_RECENT;
		json_array_append_new(st->recent_failed[slot] ? failed : done,
		    json_string(st->recent[slot]));
	}
	return json_pack("{s:{s:I,s:o},s:o,s:{s:I,s:o},s:{s:I,s:o}}",
	    "queued", "count", (json_int_t)nqueued, "names", names,
	    "active", active,
	    "done", "count", (json_int_t)st->jobs_done, "recent", done,
	    "failed", "count", (json_int_t)st->jobs_failed, "recent", failed);
fail:
	json_decref(names);
	json_decref(active);
	json_decref(done);
	json_decref(failed);
	return NULL;
}
