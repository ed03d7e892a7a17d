/*
 * check_stats.c: the stats module through its public interface: latency
 * histograms and their precision, the sliding rate windows driven with
 * chosen timestamps, exact counters, the JSON object's shape and the
 * `jobs` object; and the renderings proto.c derives from a stats object
 * (Prometheus text with its summaries, histograms and cluster metrics, the
 * status line, `fetchctl stats --cluster` from hand-made objects, hostile
 * node entries included) plus its small helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "proto.h"
#include "spool.h"
#include "stats.h"
#include "testlib.h"

/* Half a bucket, as a ratio: the most a reported quantile may be off. */
static double
half_bucket(void)
{
	return exp2(0.5 / STATS_HIST_PER_OCTAVE) - 1;
}

static void
assert_near(double got, double want, double rel, const char *what)
{
	ck_assert_msg(fabs(got - want) <= rel * want + 1e-9,
	    "%s: %g, expected %g within %.1f%%", what, got, want, rel * 100);
}

static struct transfer *
tr(uint64_t progress, long status, double ttfb, double seconds)
{
	struct transfer *t = calloc(1, sizeof(*t));

	ck_assert_ptr_nonnull(t);
	t->progress = progress;
	t->received = progress;
	t->http_status = status;
	t->ttfb = ttfb;
	t->seconds = seconds;
	t->outcome = FETCH_OK;
	t->attempt = 1;
	return t;
}

static const struct stats_live live0 = {
	.model = "threads", .workers = 4,
};

static json_t *
snapshot(struct stats *st, double now)
{
	json_t *o = stats_json(st, &live0, now);

	ck_assert_ptr_nonnull(o);
	return o;
}

/*
 * Histograms.
 */
START_TEST(hist_empty)
{
	struct stats_hist h;

	memset(&h, 0, sizeof(h));
	ck_assert(stats_hist_quantile(&h, 0.5) == 0);
	ck_assert(stats_hist_quantile(&h, 0.99) == 0);
}
END_TEST

START_TEST(hist_uniform_precision)
{
	struct stats_hist h;
	double q[] = { 0.5, 0.9, 0.99, 1.0 };
	size_t i;
	int v;

	memset(&h, 0, sizeof(h));
	for (v = 1; v <= 1000; v++)
		stats_hist_add(&h, v);
	ck_assert_uint_eq(h.count, 1000);
	ck_assert(h.max == 1000);
	assert_near(h.sum, 500500, 1e-12, "sum");
	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		assert_near(stats_hist_quantile(&h, q[i]), q[i] * 1000,
		    half_bucket(), "quantile");
}
END_TEST

/* Every magnitude from 20 us to an hour is reported within half a bucket,
 * and never above the largest value seen. */
START_TEST(hist_every_magnitude)
{
	struct stats_hist h;
	double v, got;

	for (v = 0.02; v < 3.6e6; v *= 1.37) {
		memset(&h, 0, sizeof(h));
		stats_hist_add(&h, v);
		got = stats_hist_quantile(&h, 0.5);
		assert_near(got, v, half_bucket(), "single value");
		ck_assert(got <= v);
		ck_assert(h.max == v);
	}
}
END_TEST

START_TEST(hist_skewed)
{
	struct stats_hist h;
	int i;

	/* 98 fast, 2 slow: p50 and p90 are fast, p99 is slow. */
	memset(&h, 0, sizeof(h));
	for (i = 0; i < 98; i++)
		stats_hist_add(&h, 10);
	stats_hist_add(&h, 2000);
	stats_hist_add(&h, 2500);
	assert_near(stats_hist_quantile(&h, 0.5), 10, half_bucket(), "p50");
	assert_near(stats_hist_quantile(&h, 0.9), 10, half_bucket(), "p90");
	assert_near(stats_hist_quantile(&h, 0.99), 2000, half_bucket(), "p99");
	ck_assert(stats_hist_quantile(&h, 1.0) == 2500);
}
END_TEST

START_TEST(hist_out_of_range)
{
	struct stats_hist h;

	memset(&h, 0, sizeof(h));
	stats_hist_add(&h, 0);
	stats_hist_add(&h, -5);
	stats_hist_add(&h, NAN);
	stats_hist_add(&h, 1e-9);
	ck_assert_uint_eq(h.count, 4);
	ck_assert(h.max == 1e-9);
	ck_assert(stats_hist_quantile(&h, 0.99) <= 1e-9);
	stats_hist_add(&h, 1e15);       /* beyond the last bucket */
	ck_assert(h.max == 1e15);
	ck_assert(stats_hist_quantile(&h, 1.0) <= 1e15);
	ck_assert(stats_hist_quantile(&h, 1.0) > 1e6);
}
END_TEST

/* The reported edges, one doubling apart, and the samples below each:
 * exact, the first bucket (which holds what is below STATS_HIST_MIN_MS)
 * under the first edge, the overflow bucket over the last. */
START_TEST(hist_edges_below)
{
	static const double v[] = { 0.001, 0.015, 0.03, 1, 1000, 1e9 };
	struct stats_hist h;
	size_t i, k;

	memset(&h, 0, sizeof(h));
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		stats_hist_add(&h, v[i]);
	ck_assert_int_eq(STATS_HIST_EDGES, 29);
	ck_assert(stats_hist_edge(0) == 2 * STATS_HIST_MIN_MS);
	for (k = 1; k < STATS_HIST_EDGES; k++)
		ck_assert(stats_hist_edge(k) == 2 * stats_hist_edge(k - 1));
	ck_assert(stats_hist_edge(STATS_HIST_EDGES - 1) < 1e9);
	ck_assert_uint_eq(stats_hist_below(&h, 0), 2);         /* 0.02 ms */
	ck_assert_uint_eq(stats_hist_below(&h, 1), 3);         /* 0.04 ms */
	ck_assert_uint_eq(stats_hist_below(&h, 5), 3);         /* 0.64 ms */
	ck_assert_uint_eq(stats_hist_below(&h, 6), 4);         /* 1.28 ms */
	ck_assert_uint_eq(stats_hist_below(&h, 16), 5);        /* 1.3 s */
	ck_assert_uint_eq(stats_hist_below(&h, STATS_HIST_EDGES - 1), 5);
	ck_assert_uint_eq(stats_hist_below(&h, STATS_HIST_EDGES), 6);
	for (k = 1; k < STATS_HIST_EDGES; k++)
		ck_assert_uint_ge(stats_hist_below(&h, k),
		    stats_hist_below(&h, k - 1));
}
END_TEST

/* Memory does not grow with traffic: a million samples, same struct. */
START_TEST(hist_fixed_memory)
{
	struct stats_hist h;
	int i;

	memset(&h, 0, sizeof(h));
	for (i = 0; i < 1000000; i++)
		stats_hist_add(&h, (double)(i % 5000) + 0.5);
	ck_assert_uint_eq(h.count, 1000000);
	assert_near(stats_hist_quantile(&h, 0.5), 2500, half_bucket() + 0.001,
	    "p50 of a million");
}
END_TEST

/*
 * Rates.
 */
static void
rates(struct stats *st, int w, double *b, double *u)
{
	stats_rate(st, w, b, u);
}

START_TEST(rate_windows_slide)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct transfer *t;
	double t0 = stats_now() + 100, b, u;
	int s;

	ck_assert_ptr_nonnull(st);
	/* A quiet minute first, so every window is full. */
	for (s = 0; s <= STATS_RING; s++)
		stats_sample(st, t0 - STATS_RING + s, 0);

	/* 20 s of 1000 bytes and 2 URLs a second. */
	for (s = 1; s <= 20; s++) {
		t = tr(1000, 200, 0.01, 0.02);
		stats_attempt(st, t);
		stats_transfer_final(st, t);
		stats_transfer_final(st, t);
		free(t);
		stats_sample(st, t0 + s, 0);
	}
	rates(st, 1, &b, &u);
	assert_near(b, 1000, 1e-9, "1s bytes");
	assert_near(u, 2, 1e-9, "1s urls");
	rates(st, 10, &b, &u);
	assert_near(b, 1000, 1e-9, "10s bytes");
	rates(st, 60, &b, &u);
	/* 20 busy seconds out of the last 60. */
	assert_near(b, 20000.0 / 60, 1e-9, "60s bytes");
	assert_near(u, 40.0 / 60, 1e-9, "60s urls");

	/* Quiet: the 1 s window is 0 after one sample, 10 s after ten, and
	 * the 60 s window still remembers. */
	stats_sample(st, t0 + 21, 0);
	rates(st, 1, &b, &u);
	ck_assert(b == 0 && u == 0);
	rates(st, 10, &b, &u);
	assert_near(b, 900, 1e-9, "10s bytes, 1 s after");
	for (s = 22; s <= 30; s++)
		stats_sample(st, t0 + s, 0);
	rates(st, 10, &b, &u);
	ck_assert(b == 0 && u == 0);
	rates(st, 60, &b, &u);
	ck_assert(b > 0);
	for (s = 31; s <= 80; s++)
		stats_sample(st, t0 + s, 0);
	rates(st, 60, &b, &u);
	ck_assert(b == 0 && u == 0);
	stats_free(st);
}
END_TEST

/* In-flight progress counts as it arrives, and is not counted again when
 * the attempt finishes (the daemon zeroes progress after stats_attempt). */
START_TEST(rate_inflight)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct transfer *t;
	double b, u, t0 = stats_now();
	json_t *o;
	struct stats_live lv = live0;

	ck_assert_ptr_nonnull(st);
	stats_sample(st, t0 + 1, 0);
	stats_sample(st, t0 + 2, 5000);         /* 5000 bytes in flight */
	rates(st, 1, &b, &u);
	assert_near(b, 5000, 1e-9, "in flight");
	t = tr(8000, 200, 0.01, 2);             /* finished: 8000 in all */
	stats_attempt(st, t);
	free(t);
	stats_sample(st, t0 + 3, 0);
	rates(st, 1, &b, &u);
	assert_near(b, 3000, 1e-9, "the rest of it");
	rates(st, 2, &b, &u);
	assert_near(b, 4000, 1e-9, "over both seconds");
	/* Progress that goes away without completing (an attempt dropped
	 * at shutdown) never makes a rate negative. */
	stats_sample(st, t0 + 4, 500);
	stats_sample(st, t0 + 5, 0);
	rates(st, 1, &b, &u);
	ck_assert(b == 0);
	stats_sample(st, t0 + 6, 0);
	rates(st, 1, &b, &u);
	ck_assert(b == 0);
	/* bytes_total includes what is in flight now. */
	lv.inflight_bytes = 123;
	o = stats_json(st, &lv, t0 + 7);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_integer_value(proto_get(o, "bytes_total")),
	    8123);
	json_decref(o);
	stats_free(st);
}
END_TEST

START_TEST(rate_short_history)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	double b, u, t0;

	ck_assert_ptr_nonnull(st);
	rates(st, 1, &b, &u);           /* one sample: no rate yet */
	ck_assert(b == 0 && u == 0);
	stats_free(st);
	st = stats_new(NULL, NULL, NULL, NULL);
	t0 = stats_now();
	stats_sample(st, t0 + 1, 0);
	stats_sample(st, t0 + 2, 1000);
	/* Two seconds of history: the 60 s window uses what there is. */
	rates(st, 60, &b, &u);
	ck_assert(b > 0);
	stats_free(st);
}
END_TEST

/*
 * Counters and the JSON object.
 */
START_TEST(counters_exact)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	static const uint64_t sizes[] = { 0, 1, 1000, 65536, 1048577 };
	struct transfer *t;
	uint64_t sum = 0;
	json_t *o, *errs;
	size_t i;

	ck_assert_ptr_nonnull(st);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		t = tr(sizes[i], 200, 0.005, 0.01);
		stats_attempt(st, t);
		stats_transfer_final(st, t);
		sum += sizes[i];
		free(t);
	}
	/* A 503 retried, then a 404 for good, then a checksum failure. */
	t = tr(0, 503, 0.002, 0.002);
	t->outcome = FETCH_RETRY;
	t->errkind = FERR_HTTP_5XX;
	stats_attempt(st, t);
	stats_transfer_retry(st, t);
	t->outcome = FETCH_FAIL;
	t->errkind = FERR_HTTP_4XX;
	stats_attempt(st, t);
	stats_transfer_final(st, t);
	t->errkind = FERR_CHECKSUM;
	stats_transfer_final(st, t);
	free(t);
	stats_job_finished(st, "a", 0);
	stats_job_finished(st, "b", 1);
	stats_job_finished(st, "c", 0);

	o = snapshot(st, stats_now());
	ck_assert_int_eq(json_integer_value(proto_get(o, "bytes_total")),
	    (json_int_t)sum);
	ck_assert_int_eq(json_integer_value(proto_get(o, "urls_total")), 7);
	ck_assert_int_eq(json_integer_value(proto_get(o, "transfers.done")), 5);
	ck_assert_int_eq(json_integer_value(proto_get(o, "transfers.failed")),
	    2);
	ck_assert_int_eq(json_integer_value(proto_get(o,
	    "transfers.retried")), 1);
	errs = (json_t *)proto_get(o, "transfers.errors");
	ck_assert_int_eq(json_integer_value(json_object_get(errs,
	    "http_5xx")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(errs,
	    "http_4xx")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(errs,
	    "checksum")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(errs, "dns")), 0);
	ck_assert_int_eq(json_integer_value(proto_get(o, "jobs.done")), 2);
	ck_assert_int_eq(json_integer_value(proto_get(o, "jobs.failed")), 1);
	/* Seven attempts got a response. */
	ck_assert_int_eq(json_integer_value(proto_get(o,
	    "latency_ms.ttfb.count")), 7);
	json_decref(o);
	stats_free(st);
}
END_TEST

/* Attempts without a response, and cancelled ones, leave latency alone
 * but their bytes count. */
START_TEST(latency_only_real_responses)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct transfer *t;
	json_t *o;

	ck_assert_ptr_nonnull(st);
	t = tr(0, 0, 0, 3);                     /* connection refused */
	stats_attempt(st, t);
	free(t);
	t = tr(10, 200, 0.5, 0.7);              /* cancelled while running */
	t->cancelled = 1;
	stats_attempt(st, t);
	free(t);
	t = tr(0, 200, 9, 9);                   /* taken back from a queue */
	t->errkind = FERR_OTHER;
	strcpy(t->error, "cancelled");
	stats_attempt(st, t);
	free(t);
	t = tr(5, 200, 0.100, 0.250);
	stats_attempt(st, t);
	free(t);
	o = snapshot(st, stats_now());
	ck_assert_int_eq(json_integer_value(proto_get(o,
	    "latency_ms.ttfb.count")), 1);
	assert_near(proto_num(o, "latency_ms.ttfb.max", -1), 100, 1e-9,
	    "ttfb max");
	assert_near(proto_num(o, "latency_ms.total.max", -1), 250, 1e-9,
	    "total max");
	assert_near(proto_num(o, "latency_ms.ttfb.p50", -1), 100,
	    half_bucket(), "ttfb p50");
	ck_assert_int_eq(json_integer_value(proto_get(o, "bytes_total")), 15);
	json_decref(o);
	stats_free(st);
}
END_TEST

static void
assert_type(const json_t *o, const char *path, int type)
{
	const json_t *v = proto_get(o, path);

	ck_assert_msg(v != NULL, "%s missing", path);
	if (type == JSON_REAL)
		ck_assert_msg(json_is_number(v), "%s is not a number", path);
	else if (type == JSON_TRUE)
		ck_assert_msg(json_is_boolean(v), "%s is not a boolean", path);
	else
		ck_assert_msg((int)json_typeof(v) == type, "%s has type %d", path,
		    json_typeof(v));
}

/* path.buckets: STATS_HIST_EDGES [edge ms, samples below] pairs, the
 * edges stats_hist_edge()'s, the counts cumulative and at most count. */
static void
assert_buckets(const json_t *o, const char *path)
{
	const json_t *h = proto_get(o, path), *b, *e;
	json_int_t prev = 0, n;
	size_t k;

	b = proto_get(h, "buckets");
	ck_assert_msg(json_is_array(b), "%s.buckets is not an array", path);
	ck_assert_uint_eq(json_array_size(b), STATS_HIST_EDGES);
	json_array_foreach((json_t *)b, k, e) {
		ck_assert_uint_eq(json_array_size(e), 2);
		ck_assert(json_is_real(json_array_get(e, 0)));
		ck_assert(json_real_value(json_array_get(e, 0)) ==
		    stats_hist_edge(k));
		ck_assert(json_is_integer(json_array_get(e, 1)));
		n = json_integer_value(json_array_get(e, 1));
		ck_assert_int_ge(n, prev);
		prev = n;
	}
	ck_assert_int_le(prev, json_integer_value(proto_get(h, "count")));
}

/* Every field fetchctl(1) documents, with its type. */
START_TEST(json_shape)
{
	static const char *const ints[] = {
		"workers", "jobs.queued", "jobs.active", "jobs.done",
		"jobs.failed", "transfers.queued", "transfers.active",
		"transfers.done", "transfers.failed", "transfers.retried",
		"bytes_total", "urls_total", "process.rss_bytes",
		"process.open_fds", "process.workers_busy",
		"process.children_restarted", "pid",
	};
	static const char *const nums[] = {
		"uptime_s", "process.cpu_user_s", "process.cpu_sys_s",
		"rate.1s.bytes_per_s", "rate.1s.urls_per_s",
		"rate.10s.bytes_per_s", "rate.10s.urls_per_s",
		"rate.60s.bytes_per_s", "rate.60s.urls_per_s",
		"latency_ms.ttfb.p50", "latency_ms.ttfb.p90",
		"latency_ms.ttfb.p99", "latency_ms.ttfb.max",
		"latency_ms.total.p50", "latency_ms.total.p90",
		"latency_ms.total.p99", "latency_ms.total.max",
	};
	static const char *const kinds[] = {
		"dns", "connect", "timeout", "http_4xx", "http_5xx", "reset",
		"protocol_refused", "write", "checksum", "other", "resource",
		"denied",
		"segment",
	};
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct stats_live lv = live0;
	char path[64];
	json_t *o;
	size_t i;

	lv.paused = 1;
	lv.jobs_queued = 3;
	lv.transfers_active = 2;
	lv.workers_busy = 2;
	o = stats_json(st, &lv, stats_now() + 5);
	ck_assert_ptr_nonnull(o);
	assert_type(o, "model", JSON_STRING);
	ck_assert_str_eq(json_string_value(proto_get(o, "model")), "threads");
	assert_type(o, "version", JSON_STRING);
	assert_type(o, "paused", JSON_TRUE);
	ck_assert(json_is_true(proto_get(o, "paused")));
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		assert_type(o, ints[i], JSON_INTEGER);
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		assert_type(o, nums[i], JSON_REAL);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "transfers.errors.%s", kinds[i]);
		assert_type(o, path, JSON_INTEGER);
	}
	ck_assert_uint_eq(json_object_size(proto_get(o, "transfers.errors")),
	    sizeof(kinds) / sizeof(kinds[0]));
	assert_buckets(o, "latency_ms.ttfb");
	assert_buckets(o, "latency_ms.total");
	ck_assert_int_eq(json_integer_value(proto_get(o, "jobs.queued")), 3);
	ck_assert_int_eq(json_integer_value(proto_get(o,
	    "process.workers_busy")), 2);
	ck_assert(proto_num(o, "uptime_s", 0) >= 5);
	ck_assert(proto_num(o, "process.rss_bytes", 0) > 0);
	ck_assert(proto_num(o, "process.open_fds", 0) >= 3);
	ck_assert_int_eq(json_integer_value(proto_get(o, "pid")), getpid());
	json_decref(o);
	stats_free(st);
}
END_TEST

/* open_fds follows the process's descriptors. */
START_TEST(json_open_fds)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	json_t *o;
	double before, after;
	int fds[10], i;

	o = snapshot(st, stats_now());
	before = proto_num(o, "process.open_fds", -1);
	json_decref(o);
	for (i = 0; i < 10; i++)
		ck_assert_int_ne(fds[i] = open("/dev/null", O_RDONLY), -1);
	o = snapshot(st, stats_now());
	after = proto_num(o, "process.open_fds", -1);
	json_decref(o);
	for (i = 0; i < 10; i++)
		close(fds[i]);
	ck_assert(after == before + 10);
	stats_free(st);
}
END_TEST

/*
 * spool/new and `jobs`.
 */
static char tmpdir[64];

static void
mk(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/new/%s", tmpdir, name);
	ck_assert_int_ne(fd = open(path, O_CREAT | O_WRONLY, 0600), -1);
	close(fd);
}

static void
open_spool(struct spool *sp)
{
	char err[256];

	testlib_tmpdir(tmpdir, sizeof(tmpdir), "check_stats");
	ck_assert_msg(spool_open(sp, tmpdir, err, sizeof(err)) == 0, "%s",
	    err);
}

static void
rm_spool(struct spool *sp)
{
	spool_close(sp);
	ck_assert_int_eq(testlib_rm_rf(tmpdir), 0);
}

START_TEST(queued_count)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct spool sp;
	off_t pos;

	open_spool(&sp);
	ck_assert_int_eq(stats_count_queued(st, &sp, 10.0), 0);
	mk("a");
	mk("b");
	mk(".hidden");
	/* Within 100 ms the last count stands; after, it is fresh. */
	ck_assert_int_eq(stats_count_queued(st, &sp, 10.05), 0);
	ck_assert_int_eq(stats_count_queued(st, &sp, 10.2), 2);
	/* The spool's descriptor is not moved or closed. */
	pos = lseek(sp.newfd, 0, SEEK_CUR);
	ck_assert_int_eq(stats_count_queued(st, &sp, 11), 2);
	ck_assert_int_eq(lseek(sp.newfd, 0, SEEK_CUR), pos);
	rm_spool(&sp);
	stats_free(st);
}
END_TEST

START_TEST(jobs_object)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct spool sp;
	char name[32];
	int i;
	const json_t *done, *failed, *names;
	json_t *o;

	open_spool(&sp);
	for (i = 0; i < STATS_QUEUED_NAMES + 5; i++) {
		snprintf(name, sizeof(name), "q%03d", i);
		mk(name);
	}
	for (i = 0; i < STATS_RECENT + 10; i++) {
		snprintf(name, sizeof(name), "j%03d", i);
		stats_job_finished(st, name, i % 3 == 0);
	}
	o = stats_jobs_json(st, NULL, &sp);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(json_integer_value(proto_get(o, "queued.count")),
	    STATS_QUEUED_NAMES + 5);
	names = proto_get(o, "queued.names");
	ck_assert_uint_eq(json_array_size(names), STATS_QUEUED_NAMES);
	ck_assert(json_is_array(proto_get(o, "active")));
	ck_assert_int_eq(json_integer_value(proto_get(o, "done.count")) +
	    json_integer_value(proto_get(o, "failed.count")),
	    STATS_RECENT + 10);
	done = proto_get(o, "done.recent");
	failed = proto_get(o, "failed.recent");
	/* Only the latest STATS_RECENT names, newest first. */
	ck_assert_uint_eq(json_array_size(done) + json_array_size(failed),
	    STATS_RECENT);
	snprintf(name, sizeof(name), "j%03d", STATS_RECENT + 9);
	ck_assert_str_eq(json_string_value(json_array_get(
	    (STATS_RECENT + 9) % 3 == 0 ? failed : done, 0)), name);
	json_decref(o);
	rm_spool(&sp);
	stats_free(st);
}
END_TEST

/*
 * The timer.
 */
static int ticks;
static uint64_t inflight_now;

static uint64_t
inflight_cb(void *arg)
{
	return inflight_now;
}

static void
tick_cb(void *arg)
{
	struct event_base *base = arg;

	if (++ticks == 2)
		event_base_loopbreak(base);
}

START_TEST(timer_samples)
{
	struct event_base *base = event_base_new();
	struct stats *st;
	double b, u;

	ck_assert_ptr_nonnull(base);
	st = stats_new(base, inflight_cb, tick_cb, base);
	ck_assert_ptr_nonnull(st);
	inflight_now = 4000;
	ticks = 0;
	event_base_dispatch(base);      /* two ticks, about 2 s */
	ck_assert_int_eq(ticks, 2);
	stats_rate(st, 10, &b, &u);
	ck_assert(b > 0);
	stats_free(st);
	event_base_free(base);
}
END_TEST

/*
 * proto.c on a stats object.
 */
static json_t *
loaded_stats(void)
{
	struct stats *st = stats_new(NULL, NULL, NULL, NULL);
	struct transfer *t;
	double t0 = stats_now();
	json_t *o;
	int i;

	stats_sample(st, t0 + 1, 0);
	for (i = 0; i < 10; i++) {
		t = tr(1000, 200, 0.010 * (i + 1), 0.020 * (i + 1));
		stats_attempt(st, t);
		stats_transfer_final(st, t);
		free(t);
	}
	t = tr(0, 404, 0.001, 0.001);
	t->outcome = FETCH_FAIL;
	t->errkind = FERR_HTTP_4XX;
	stats_transfer_final(st, t);
	free(t);
	stats_sample(st, t0 + 2, 0);
	o = stats_json(st, &live0, t0 + 3);
	stats_free(st);
	ck_assert_ptr_nonnull(o);
	return o;
}

/* A sample line: name{labels} value; returns the value. */
static double
prom_sample(const char *text, const char *head)
{
	char pat[256];
	const char *p;
	char *end;
	double v;

	snprintf(pat, sizeof(pat), "\n%s ", head);
	p = strstr(text, pat);
	ck_assert_msg(p != NULL, "no line \"%s VALUE\"", head);
	p += strlen(pat);
	errno = 0;
	v = strtod(p, &end);
	ck_assert_msg(errno == 0 && *end == '\n', "%s: bad value", head);
	return v;
}

#define FAMILIES_MAX 128

/* The sample's family: its name less a histogram's or summary's suffix
 * when that names a family of types[]. */
static int
family_of(const char *sample, char (*names)[128], int n)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	size_t len = strcspn(sample, "{ "), sl, i;
	int k;

	for (k = 0; k < n; k++)
		if (strlen(names[k]) == len &&
		    strncmp(names[k], sample, len) == 0)
			return k;
	for (i = 0; i < 3; i++) {
		sl = strlen(suffixes[i]);
		for (k = 0; k < n && len > sl; k++)
			if (strncmp(sample + len - sl, suffixes[i], sl) == 0 &&
			    strlen(names[k]) == len - sl &&
			    strncmp(names[k], sample, len - sl) == 0)
				return k;
	}
	return -1;
}

/*
 * Every line is a comment or "fetchd_name[{...}] value"; every counter's
 * name ends in _total; no family is declared twice nor is named like a
 * histogram's or summary's series of another; every sample follows its
 * family's TYPE. Returns the number of samples.
 */
static int
assert_exposition(const char *text)
{
	char names[FAMILIES_MAX][128], type[32], *copy, *line, *save;
	int n = 0, samples = 0, k;

	ck_assert_ptr_nonnull(copy = strdup(text));
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "# TYPE %127s %31s", names[n], type) == 2) {
			ck_assert_msg(family_of(names[n], names, n) == -1,
			    "%s collides with another family", names[n]);
			if (strcmp(type, "counter") == 0)
				ck_assert_msg(strlen(names[n]) > 6 &&
				    strcmp(names[n] + strlen(names[n]) - 6,
				    "_total") == 0, "counter %s", names[n]);
			ck_assert_int_lt(++n, FAMILIES_MAX);
			continue;
		}
		if (line[0] == '#') {
			ck_assert(strncmp(line, "# HELP fetchd_", 14) == 0);
			continue;
		}
		ck_assert_msg(strncmp(line, "fetchd_", 7) == 0, "%s", line);
		ck_assert_msg(strchr(line, ' ') != NULL, "%s", line);
		k = family_of(line, names, n);
		ck_assert_msg(k == n - 1, "%s is not under its TYPE", line);
		samples++;
	}
	free(copy);
	return samples;
}

START_TEST(prometheus_text)
{
	json_t *o = loaded_stats();
	char *text = proto_prometheus(o);

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE fetchd_bytes_total counter\n"));
	ck_assert(prom_sample(text, "fetchd_bytes_total") == 10000);
	ck_assert(prom_sample(text, "fetchd_urls_total") == 11);
	ck_assert(prom_sample(text, "fetchd_transfers_done_total") == 10);
	ck_assert(prom_sample(text,
	    "fetchd_transfer_errors_total{kind=\"http_4xx\"}") == 1);
	ck_assert(prom_sample(text,
	    "fetchd_transfer_errors_total{kind=\"dns\"}") == 0);
	ck_assert(prom_sample(text,
	    "fetchd_rate_bytes_per_second{window=\"1s\"}") == 10000);
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE fetchd_latency_ttfb_seconds summary\n"));
	assert_near(prom_sample(text,
	    "fetchd_latency_ttfb_seconds{quantile=\"0.5\"}"), 0.05,
	    half_bucket(), "ttfb median in seconds");
	ck_assert(prom_sample(text, "fetchd_latency_ttfb_seconds_count") ==
	    10);
	assert_near(prom_sample(text, "fetchd_latency_total_max_seconds"),
	    0.2, 1e-9, "total max");
	ck_assert_ptr_nonnull(strstr(text, "fetchd_info{version=\""));
	ck_assert_int_gt(assert_exposition(text), 40);
	free(text);
	json_decref(o);
}
END_TEST

START_TEST(prometheus_label_escaping)
{
	json_t *o = json_pack("{s:s,s:s}", "model", "a\"b\\c\nd",
	    "version", "1");
	char *text = proto_prometheus(o);

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text,
	    "fetchd_info{version=\"1\",model=\"a\\\"b\\\\c\\nd\"} 1\n"));
	free(text);
	json_decref(o);
}
END_TEST

START_TEST(status_line)
{
	json_t *o = loaded_stats();
	char buf[512];

	proto_status_line(o, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "9.8 KiB/s") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "11 URLs") != NULL, "%s", buf);
	ck_assert_msg(strstr(buf, "paused") == NULL, "%s", buf);
	json_object_set_new(o, "paused", json_true());
	proto_status_line(o, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "paused") != NULL, "%s", buf);
	json_decref(o);
}
END_TEST

/*
 * Latency histograms in the Prometheus text: the summaries stay, and a
 * histogram of each latency sits beside them under its own name.
 */
static const char *const ttfb_bucket =
    "fetchd_latency_ttfb_histogram_seconds_bucket{le=\"";

/* The bucket lines of prefix pre in text, in order: le rising, counts
 * cumulative, "+Inf" last; the number of finite buckets, *inf the +Inf
 * count. */
static int
prom_buckets(const char *text, const char *pre, double *inf)
{
	const char *p;
	char *end;
	double le, n, prev_le = 0, prev_n = 0;
	int buckets = 0, seen_inf = 0;

	for (p = strstr(text, pre); p != NULL; p = strstr(p, pre)) {
		p += strlen(pre);
		ck_assert_msg(!seen_inf, "a bucket after +Inf");
		if (strncmp(p, "+Inf\"} ", 7) == 0) {
			n = strtod(p + 7, &end);
			seen_inf = 1;
		} else {
			le = strtod(p, &end);
			ck_assert_msg(strncmp(end, "\"} ", 3) == 0, "%.40s", p);
			ck_assert_msg(le > prev_le, "le %g after %g", le,
			    prev_le);
			prev_le = le;
			n = strtod(end + 3, &end);
			buckets++;
		}
		ck_assert(*end == '\n');
		ck_assert_msg(n >= prev_n, "bucket %g after %g", n, prev_n);
		prev_n = n;
	}
	ck_assert_msg(seen_inf, "no le=\"+Inf\" bucket for %s", pre);
	*inf = prev_n;
	return buckets;
}

START_TEST(prometheus_histogram)
{
	json_t *o = loaded_stats();
	char *text = proto_prometheus(o);
	double inf;

	ck_assert_ptr_nonnull(text);
	assert_exposition(text);
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE fetchd_latency_ttfb_seconds summary\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE fetchd_latency_ttfb_histogram_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE fetchd_latency_total_histogram_seconds histogram\n"));
	ck_assert_int_eq(prom_buckets(text, ttfb_bucket, &inf),
	    STATS_HIST_EDGES);
	ck_assert(inf == 10);
	ck_assert(prom_sample(text,
	    "fetchd_latency_ttfb_histogram_seconds_count") == 10);
	/* 10, 20, ... 100 ms */
	assert_near(prom_sample(text,
	    "fetchd_latency_ttfb_histogram_seconds_sum"), 0.55, 1e-9, "sum");
	ck_assert(prom_sample(text, "fetchd_latency_ttfb_histogram_seconds_"
	    "bucket{le=\"2e-05\"}") == 0);
	ck_assert(prom_sample(text, "fetchd_latency_ttfb_histogram_seconds_"
	    "bucket{le=\"0.01024\"}") == 1);
	ck_assert(prom_sample(text, "fetchd_latency_ttfb_histogram_seconds_"
	    "bucket{le=\"0.08192\"}") == 8);
	ck_assert(prom_sample(text, "fetchd_latency_ttfb_histogram_seconds_"
	    "bucket{le=\"0.16384\"}") == 10);
	ck_assert_int_eq(prom_buckets(text,
	    "fetchd_latency_total_histogram_seconds_bucket{le=\"", &inf),
	    STATS_HIST_EDGES);
	ck_assert(inf == prom_sample(text,
	    "fetchd_latency_total_histogram_seconds_count"));
	free(text);

	/* An older daemon's object, without buckets: no histogram. */
	json_object_del((json_t *)proto_get(o, "latency_ms.ttfb"), "buckets");
	ck_assert_ptr_nonnull(text = proto_prometheus(o));
	ck_assert_ptr_null(strstr(text, "ttfb_histogram"));
	ck_assert_ptr_nonnull(strstr(text, "total_histogram"));
	free(text);
	json_decref(o);
}
END_TEST

/*
 * Cluster mode, from hand-made stats objects.
 */
static const char cluster_json[] =
    "{\"model\":\"threads\",\"version\":\"1\",\"cluster\":{"
    "\"node\":\"n1\",\"role\":\"both\",\"redis\":\"127.0.0.1:6379\","
    "\"state\":\"up\",\"down_seconds\":0,\"error\":\"\",\"out\":3,"
    "\"added\":120,\"readded\":2,\"results\":118,\"stale\":1,"
    "\"fetching\":2,\"results_waiting\":0,\"fetched\":100,"
    "\"fetch_failed\":3,\"accepted\":100,\"refused\":1,\"claimed\":2,"
    "\"lost\":5,\"bad_entries\":6,\"reconnects\":4,"
    "\"stream\":{\"key\":\"fetchd\",\"length\":12,\"pending\":3,"
    "\"lag\":null,\"dead\":0},"
    "\"nodes\":["
    "{\"node\":\"n2\",\"role\":\"fetch\",\"time\":990,\"fetched\":50,"
    "\"failed\":1,\"refused\":0,\"fetching\":4,\"bytes_per_s\":1536,"
    "\"model\":\"event\",\"workers\":16,\"busy\":4},"
    "{\"node\":\"n1\",\"role\":\"both\",\"time\":999,\"fetched\":100,"
    "\"failed\":3,\"refused\":1,\"fetching\":2,\"bytes_per_s\":0.5,"
    "\"model\":\"threads\",\"workers\":8,\"busy\":2}]}}";

static json_t *
cluster_stats(const char *s)
{
	json_error_t err;
	json_t *o = json_loads(s, 0, &err);

	ck_assert_msg(o != NULL, "%s", err.text);
	return o;
}

/* proto_cluster_print()'s text of o at now (malloc'ed), and its result. */
static char *
cluster_text_of(const json_t *o, double now, int *rv)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(fp);
	*rv = proto_cluster_print(fp, o, now);
	ck_assert_int_eq(fclose(fp), 0);
	return text;
}

START_TEST(prometheus_cluster)
{
	json_t *o = cluster_stats(cluster_json);
	json_t *cl = json_object_get(o, "cluster");
	char *text = proto_prometheus(o);

	ck_assert_ptr_nonnull(text);
	assert_exposition(text);
	ck_assert_ptr_nonnull(strstr(text,
	    "\nfetchd_cluster_info{node=\"n1\",role=\"both\"} 1\n"));
	ck_assert(prom_sample(text, "fetchd_cluster_up") == 1);
	ck_assert(prom_sample(text, "fetchd_cluster_refused_total") == 1);
	ck_assert(prom_sample(text, "fetchd_cluster_claimed_total") == 2);
	ck_assert(prom_sample(text, "fetchd_cluster_stale_results_total") ==
	    1);
	ck_assert(prom_sample(text, "fetchd_cluster_lost_total") == 5);
	ck_assert(prom_sample(text, "fetchd_cluster_bad_entries_total") == 6);
	ck_assert(prom_sample(text, "fetchd_cluster_added_total") == 120);
	ck_assert(prom_sample(text, "fetchd_cluster_urls_out") == 3);
	ck_assert(prom_sample(text, "fetchd_cluster_stream_length") == 12);
	ck_assert(prom_sample(text, "fetchd_cluster_stream_pending") == 3);
	ck_assert(prom_sample(text, "fetchd_cluster_stream_dead_letters") ==
	    0);
	ck_assert(prom_sample(text, "fetchd_cluster_down_seconds") == 0);
	/* lag is null (unknown): left out, HELP and TYPE too */
	ck_assert_ptr_null(strstr(text, "fetchd_cluster_stream_lag"));
	/* the other nodes are theirs to export */
	ck_assert_ptr_null(strstr(text, "n2"));
	free(text);

	json_object_set_new(cl, "state", json_string("down"));
	json_object_set_new(cl, "refused", json_string("many"));
	ck_assert_ptr_nonnull(text = proto_prometheus(o));
	ck_assert(prom_sample(text, "fetchd_cluster_up") == 0);
	ck_assert_ptr_null(strstr(text, "fetchd_cluster_refused_total"));
	free(text);
	json_object_set_new(cl, "state", json_integer(1));
	ck_assert_ptr_nonnull(text = proto_prometheus(o));
	ck_assert_ptr_null(strstr(text, "fetchd_cluster_up"));
	free(text);
	json_object_del(o, "cluster");
	ck_assert_ptr_nonnull(text = proto_prometheus(o));
	ck_assert_ptr_null(strstr(text, "fetchd_cluster"));
	free(text);
	json_decref(o);
}
END_TEST

/* The whole text, so that a change of it is a change of this test and of
 * fetchctl(1). */
START_TEST(cluster_text)
{
	static const char want[] =
	    "cluster     node n1, role both: up\n"
	    "redis       127.0.0.1:6379, 4 reconnects; last error: none\n"
	    "coordinator 3 out, 120 added, 2 re-added, 118 results, 1 stale\n"
	    "fetcher     2 fetching, 100 fetched, 3 failed, 2 claimed, "
	    "5 lost, 6 bad entries\n"
	    "results     0 waiting, 100 accepted, 1 refused\n"
	    "\n"
	    "NODE ROLE       MODEL   WORKERS  BUSY FETCHING  FETCHED  FAILED "
	    "REFUSED        RATE LAST SEEN\n"
	    "n1   both       threads       8     2        2      100       3 "
	    "      1       0 B/s 1 s ago\n"
	    "n2   fetch      event        16     4        4       50       1 "
	    "      0   1.5 KiB/s 10 s ago\n"
	    "\n"
	    "stream      fetchd: length 12, pending 3, lag ?, dead letters 0\n";
	json_t *o = cluster_stats(cluster_json);
	char *text;
	int rv;

	text = cluster_text_of(o, 1000.7, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_str_eq(text, want);
	free(text);
	json_decref(o);
}
END_TEST

START_TEST(cluster_text_down)
{
	json_t *o = cluster_stats(cluster_json);
	json_t *cl = json_object_get(o, "cluster");
	char *text;
	int rv;

	json_object_set_new(cl, "state", json_string("down"));
	json_object_set_new(cl, "down_seconds", json_real(65.25));
	json_object_set_new(cl, "error", json_string("Connection refused"));
	json_object_set_new(cl, "nodes", json_array());
	text = cluster_text_of(o, 1000, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_msg(strstr(text, "cluster     node n1, role both: "
	    "DOWN for 1m05s\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "last error: Connection refused\n") !=
	    NULL, "%s", text);
	/* no node known yet: the header alone */
	ck_assert_msg(strstr(text, "LAST SEEN\n\nstream ") != NULL, "%s",
	    text);
	free(text);

	/* not in cluster mode */
	json_object_del(o, "cluster");
	text = cluster_text_of(o, 1000, &rv);
	ck_assert_int_eq(rv, -1);
	free(text);
	json_decref(o);
}
END_TEST

/*
 * Node entries come from other machines: members missing, of the wrong
 * type, huge, or strings with terminal escapes; entries that are not
 * objects. Each shows as "?" or made printable, nothing breaks.
 */
START_TEST(cluster_text_hostile)
{
	static const char hostile[] = "{\"cluster\":{\"node\":5,"
	    "\"state\":\"sideways\",\"error\":\"\\u001b]0;owned\\u0007\","
	    "\"out\":\"3\",\"stream\":\"S\",\"nodes\":["
	    "42,\"n9\",null,"
	    "{\"node\":\"\\u001b[2Jevil\\nname\",\"role\":7,"
	    "\"time\":\"yesterday\",\"fetched\":\"many\",\"failed\":null,"
	    "\"refused\":{},\"fetching\":[],\"bytes_per_s\":-5,"
	    "\"model\":{\"a\":1},\"workers\":1e300,\"busy\":true},"
	    "{},"
	    "{\"node\":\"zeta\",\"time\":2000},"
	    "{\"node\":\"a-node-name-far-longer-than-the-column-of-names-"
	    "is-wide\",\"time\":-1e300}]}}";
	json_t *o = cluster_stats(hostile);
	char *text, *p;
	int rv;

	text = cluster_text_of(o, 1000, &rv);
	ck_assert_int_eq(rv, 0);
	for (p = text; *p != '\0'; p++)
		ck_assert_msg(*p == '\n' || (*p >= 0x20 && *p < 0x7f),
		    "byte %#x in %s", (unsigned char)*p, text);
	ck_assert_msg(strstr(text, "cluster     node ?, role ?: ?\n") != NULL,
	    "%s", text);
	ck_assert_msg(strstr(text, "last error: ?]0;owned?\n") != NULL, "%s",
	    text);
	ck_assert_msg(strstr(text, "coordinator ? out, ? added,") != NULL,
	    "%s", text);
	ck_assert_msg(strstr(text, "\n?[2Jevil?name       ") != NULL, "%s",
	    text);
	ck_assert_msg(strstr(text, " ? ?\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "1000 s ahead\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "\na-node-name-far-longer-than-the-column"
	    "-o ") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "(3 node entries not an object, left "
	    "out)\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "stream      ?: length ?, pending ?, "
	    "lag ?, dead letters ?\n") != NULL, "%s", text);
	/* sorted by name, a name that is not a string first */
	ck_assert(strstr(text, "?[2Jevil") < strstr(text, "\nzeta"));
	ck_assert(strstr(text, "\na-node") < strstr(text, "\nzeta"));
	free(text);

	json_object_set_new(json_object_get(o, "cluster"), "nodes",
	    json_string("n1,n2"));
	text = cluster_text_of(o, 1000, &rv);
	ck_assert_int_eq(rv, 0);
	ck_assert_msg(strstr(text, "\nnodes       unknown\n") != NULL, "%s",
	    text);
	free(text);
	json_object_set_new(o, "cluster", json_string("up"));
	text = cluster_text_of(o, 1000, &rv);
	ck_assert_int_eq(rv, -1);
	free(text);
	json_decref(o);
}
END_TEST

START_TEST(cluster_line)
{
	json_t *o = cluster_stats(cluster_json);
	char buf[256] = "untouched";

	ck_assert_int_eq(proto_cluster_line(o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "up, node n1, role both; stream 3 pending, "
	    "0 dead letters");
	json_object_set_new(json_object_get(o, "cluster"), "stream",
	    json_null());
	json_object_set_new(json_object_get(o, "cluster"), "state",
	    json_string("down"));
	ck_assert_int_eq(proto_cluster_line(o, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "DOWN, node n1, role both; stream ? pending, "
	    "? dead letters");
	json_object_del(o, "cluster");
	snprintf(buf, sizeof(buf), "untouched");
	ck_assert_int_eq(proto_cluster_line(o, buf, sizeof(buf)), -1);
	ck_assert_str_eq(buf, "untouched");
	json_decref(o);
}
END_TEST

START_TEST(proto_helpers)
{
	char line[] = "  cancel \t job-1  extra ", word[8];
	char *argv[4];
	char many[] = "a b c d e";
	json_t *e;

	ck_assert_int_eq(proto_split(line, argv, 4), 3);
	ck_assert_str_eq(argv[0], "cancel");
	ck_assert_str_eq(argv[1], "job-1");
	ck_assert_str_eq(argv[2], "extra");
	ck_assert_int_eq(proto_split(many, argv, 4), -1);
	ck_assert_int_eq(proto_split((char[]){ " \t " }, argv, 4), 0);

	proto_printable("a\001b\xff" "cdefghij", 11, word, sizeof(word));
	ck_assert_str_eq(word, "a?b?cde");

	e = proto_error("bad \xff byte");
	ck_assert_ptr_nonnull(e);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "proto")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(e, "error")),
	    "bad ? byte");
	json_decref(e);

	proto_fmt_bytes(0, word, sizeof(word));
	ck_assert_str_eq(word, "0 B");
	proto_fmt_bytes(1536, word, sizeof(word));
	ck_assert_str_eq(word, "1.5 KiB");
}
END_TEST

START_TEST(proto_commands)
{
	const struct proto_cmd *cmd;
	long ms = 0;

	/* every row sits at its id, under a name found again by lookup */
	for (size_t i = 0; i < PROTO_CMD__COUNT; i++) {
		ck_assert_int_eq(proto_cmds[i].id, (int)i);
		ck_assert_ptr_nonnull(proto_cmds[i].name);
		ck_assert_ptr_eq(proto_cmd_find(proto_cmds[i].name),
		    &proto_cmds[i]);
		ck_assert_int_le(proto_cmds[i].min_args,
		    proto_cmds[i].max_args);
		ck_assert_ptr_nonnull(proto_cmds[i].args);
		ck_assert_ptr_nonnull(proto_cmds[i].help);
	}
	ck_assert_ptr_null(proto_cmd_find("frobnicate"));
	ck_assert_ptr_null(proto_cmd_find("PING"));
	ck_assert_ptr_null(proto_cmd_find(""));
	cmd = proto_cmd_find("cancel");
	ck_assert_ptr_nonnull(cmd);
	ck_assert_int_eq(cmd->id, PROTO_CMD_CANCEL);
	ck_assert_int_eq(cmd->min_args, 1);
	ck_assert_int_eq(cmd->max_args, 1);

	ck_assert_int_eq(proto_watch_ms("250", &ms), 0);
	ck_assert_int_eq(ms, 250);
	ck_assert_int_eq(proto_watch_ms("100", &ms), 0);
	ck_assert_int_eq(proto_watch_ms("60000", &ms), 0);
	ck_assert_int_eq(ms, 60000);
	ck_assert_int_eq(proto_watch_ms("99", &ms), -1);
	ck_assert_int_eq(proto_watch_ms("60001", &ms), -1);
	ck_assert_int_eq(proto_watch_ms("", &ms), -1);
	ck_assert_int_eq(proto_watch_ms("5x", &ms), -1);
	ck_assert_int_eq(proto_watch_ms("99999999999999999999", &ms), -1);
	ck_assert_int_eq(ms, 60000);    /* untouched on failure */
}
END_TEST

static Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc;

	tc = tcase_create("histogram");
	tcase_add_test(tc, hist_empty);
	tcase_add_test(tc, hist_uniform_precision);
	tcase_add_test(tc, hist_every_magnitude);
	tcase_add_test(tc, hist_skewed);
	tcase_add_test(tc, hist_out_of_range);
	tcase_add_test(tc, hist_fixed_memory);
	tcase_add_test(tc, hist_edges_below);
	suite_add_tcase(s, tc);

	tc = tcase_create("rates");
	tcase_add_test(tc, rate_windows_slide);
	tcase_add_test(tc, rate_inflight);
	tcase_add_test(tc, rate_short_history);
	tcase_add_test(tc, timer_samples);
	suite_add_tcase(s, tc);

	tc = tcase_create("json");
	tcase_add_test(tc, counters_exact);
	tcase_add_test(tc, latency_only_real_responses);
	tcase_add_test(tc, json_shape);
	tcase_add_test(tc, json_open_fds);
	tcase_add_test(tc, queued_count);
	tcase_add_test(tc, jobs_object);
	suite_add_tcase(s, tc);

	tc = tcase_create("proto");
	tcase_add_test(tc, prometheus_text);
	tcase_add_test(tc, prometheus_label_escaping);
	tcase_add_test(tc, status_line);
	tcase_add_test(tc, prometheus_histogram);
	tcase_add_test(tc, prometheus_cluster);
	tcase_add_test(tc, proto_helpers);
	tcase_add_test(tc, proto_commands);
	suite_add_tcase(s, tc);

	tc = tcase_create("cluster");
	tcase_add_test(tc, cluster_text);
	tcase_add_test(tc, cluster_text_down);
	tcase_add_test(tc, cluster_text_hostile);
	tcase_add_test(tc, cluster_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(stats_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
