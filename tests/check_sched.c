/*
 * check_sched.c: the scheduler through its public interface: FIFO order,
 * per-host caps and changing them, round-robin between jobs, retry timers
 * on a real event_base, removal of a job's transfers, the backoff formula,
 * that hosts are forgotten once idle, and that pop stays cheap at scale.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <check.h>
#include <event2/event.h>

#include "sched.h"
#include "testlib.h"

/* Distinct addresses standing for jobs. */
static char job_x, job_y, job_z;

/* Bytes the C library heap has handed out, or 0 when unknown. */
static size_t
heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	return mallinfo2().uordblks;
#else
	return 0;
#endif
}

static struct transfer *
tr_new(void *owner, const char *host, uint64_t id)
{
	struct transfer *t;

	t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	t->owner = owner;
	t->host = strdup(host);
	ck_assert_ptr_nonnull(t->host);
	t->id = id;
	t->retry_after = -1;
	return t;
}

static void
tr_free(struct transfer *t)
{
	if (t == NULL)
		return;
	free(t->host);
	free(t);
}

static void
push_ok(struct sched *s, struct transfer *t)
{
	ck_assert_int_eq(sched_push(s, t), 0);
}

/* n transfers of job_x to host, ids 0 to n-1, pushed in that order. */
static void
push_same(struct sched *s, struct transfer **t, int n, const char *host)
{
	int i;

	for (i = 0; i < n; i++) {
		t[i] = tr_new(&job_x, host, (uint64_t)i);
		push_ok(s, t[i]);
	}
}

static void
retry_ok(struct sched *s, struct transfer *t, double delay)
{
	ck_assert_int_eq(sched_retry(s, t, delay), 0);
}

struct waker {
	int calls;
	struct sched *s;
	struct transfer *popped[8];
	int npopped;
	int pop_in_wake;
};

static void
wake_cb(void *arg)
{
	struct waker *w = arg;
	struct transfer *t;

	w->calls++;
	if (w->pop_in_wake)
		while (w->npopped < 8 && (t = sched_pop(w->s)) != NULL)
			w->popped[w->npopped++] = t;
}

/* Run the loop until *flag reaches want or the deadline passes. */
static void
run_until(struct event_base *base, const int *flag, int want, double secs)
{
	double end = testlib_now() + secs;

	while (*flag < want && testlib_now() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
run_until_waiting(
    struct event_base *base, struct sched *s, size_t want, double secs)
{
	double end = testlib_now() + secs;

	while (sched_waiting(s) > want && testlib_now() < end)
		event_base_loop(base, EVLOOP_ONCE);
}

/* Release and free t[0..n) (all popped), then the scheduler. */
static void
finish_all(struct sched *s, struct transfer **t, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		sched_release(s, t[i]);
		tr_free(t[i]);
	}
	sched_free(s);
}

START_TEST(test_fifo_one_host)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t[10];
	int i;

	ck_assert_ptr_nonnull(s);
	push_same(s, t, 10, "a.example");
	ck_assert_uint_eq(sched_ready(s), 10);
	ck_assert_uint_eq(sched_running(s), 0);
	for (i = 0; i < 10; i++) {
		ck_assert_ptr_eq(sched_pop(s), t[i]);
		ck_assert_uint_eq(sched_ready(s), (size_t)(9 - i));
		ck_assert_uint_eq(sched_running(s), (size_t)(i + 1));
	}
	ck_assert_ptr_null(sched_pop(s));
	for (i = 0; i < 10; i++)
		sched_release(s, t[i]);
	ck_assert_uint_eq(sched_running(s), 0);
	sched_free(s);
	for (i = 0; i < 10; i++)
		tr_free(t[i]);
}
END_TEST

/* Inside a job, with no cap in the way, the oldest transfer goes first. */
START_TEST(test_fifo_across_hosts)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	const char *hosts[] = {"a", "b", "a", "c", "b", "a"};
	struct transfer *t[6];
	int i;

	for (i = 0; i < 6; i++) {
		t[i] = tr_new(&job_x, hosts[i], (uint64_t)i);
		push_ok(s, t[i]);
	}
	for (i = 0; i < 6; i++)
		ck_assert_ptr_eq(sched_pop(s), t[i]);
	ck_assert_ptr_null(sched_pop(s));
	finish_all(s, t, 6);
}
END_TEST

START_TEST(test_cap)
{
	struct sched *s = sched_new(NULL, 2, NULL, NULL);
	struct transfer *a[5], *b;
	int i;

	for (i = 0; i < 5; i++) {
		a[i] = tr_new(&job_x, "a.example", (uint64_t)i);
		push_ok(s, a[i]);
	}
	b = tr_new(&job_x, "b.example", 99);
	push_ok(s, b);
	ck_assert_ptr_eq(sched_pop(s), a[0]);
	ck_assert_ptr_eq(sched_pop(s), a[1]);
	ck_assert_ptr_eq(sched_pop(s), b);
	ck_assert_ptr_null(sched_pop(s));
	ck_assert_ptr_null(sched_pop(s));
	ck_assert_uint_eq(sched_ready(s), 3);
	ck_assert_uint_eq(sched_running(s), 3);

	/* Releasing another host frees nothing on a. */
	sched_release(s, b);
	ck_assert_ptr_null(sched_pop(s));

	sched_release(s, a[0]);
	ck_assert_uint_eq(sched_running(s), 1);
	ck_assert_ptr_eq(sched_pop(s), a[2]);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, a[1]);
	sched_release(s, a[2]);
	ck_assert_ptr_eq(sched_pop(s), a[3]);
	ck_assert_ptr_eq(sched_pop(s), a[4]);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, a[3]);
	sched_release(s, a[4]);
	ck_assert_uint_eq(sched_running(s), 0);
	ck_assert_uint_eq(sched_ready(s), 0);
	sched_free(s);
	for (i = 0; i < 5; i++)
		tr_free(a[i]);
	tr_free(b);
}
END_TEST

/* The cap is global: a host busy for one job is busy for every job. */
START_TEST(test_cap_across_jobs)
{
	struct sched *s = sched_new(NULL, 1, NULL, NULL);
	struct transfer *x1, *x2, *y1, *y2;

	x1 = tr_new(&job_x, "a", 1);
	x2 = tr_new(&job_x, "a", 2);
	y1 = tr_new(&job_y, "a", 3);
	y2 = tr_new(&job_y, "b", 4);
	push_ok(s, x1);
	push_ok(s, x2);
	push_ok(s, y1);
	push_ok(s, y2);
	ck_assert_ptr_eq(sched_pop(s), x1);
	/* y's oldest is on the busy host: its next host under the cap. */
	ck_assert_ptr_eq(sched_pop(s), y2);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, x1);
	/* both want a now; x was served before y, so it is x's turn */
	ck_assert_ptr_eq(sched_pop(s), x2);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, x2);
	ck_assert_ptr_eq(sched_pop(s), y1);
	sched_release(s, y1);
	sched_release(s, y2);
	ck_assert_uint_eq(sched_running(s), 0);
	sched_free(s);
	tr_free(x1);
	tr_free(x2);
	tr_free(y1);
	tr_free(y2);
}
END_TEST

START_TEST(test_round_robin)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *x[100], *y, *t1, *t2;
	int i;

	for (i = 0; i < 100; i++) {
		x[i] = tr_new(&job_x, "a", (uint64_t)i);
		push_ok(s, x[i]);
	}
	ck_assert_ptr_eq(sched_pop(s), x[0]);
	ck_assert_ptr_eq(sched_pop(s), x[1]);
	y = tr_new(&job_y, "a", 1000);
	push_ok(s, y);
	t1 = sched_pop(s);
	t2 = sched_pop(s);
	ck_assert(t1 == y || t2 == y);
	ck_assert(t1 == x[2] || t2 == x[2]);
	/* y is done: x has the scheduler to itself again, in order. */
	for (i = 3; i < 100; i++)
		ck_assert_ptr_eq(sched_pop(s), x[i]);
	ck_assert_ptr_null(sched_pop(s));
	for (i = 0; i < 100; i++) {
		sched_release(s, x[i]);
		tr_free(x[i]);
	}
	sched_release(s, y);
	tr_free(y);
	ck_assert_uint_eq(sched_running(s), 0);
	sched_free(s);
}
END_TEST

/*
 * Two jobs on one host capped at 1: as slots free up one by one, the jobs
 * take turns; neither starves while both wait on the cap.
 */
START_TEST(test_round_robin_capped)
{
	struct sched *s = sched_new(NULL, 1, NULL, NULL);
	struct transfer *t[20], *p, *prev;
	int i, nx = 0, ny = 0;

	for (i = 0; i < 20; i++) {
		t[i] = tr_new(
		    i < 10 ? (void *)&job_x : (void *)&job_y, "a", (uint64_t)i);
		push_ok(s, t[i]);
	}
	prev = sched_pop(s);
	ck_assert_ptr_eq(prev, t[0]);
	nx++;
	for (i = 1; i < 20; i++) {
		ck_assert_ptr_null(sched_pop(s));
		sched_release(s, prev);
		p = sched_pop(s);
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_ne(p->owner, prev->owner);
		if (p->owner == (void *)&job_x)
			ck_assert_uint_eq(p->id, (uint64_t)nx++);
		else
			ck_assert_uint_eq(p->id, (uint64_t)(10 + ny++));
		prev = p;
	}
	sched_release(s, prev);
	ck_assert_uint_eq(sched_running(s), 0);
	sched_free(s);
	for (i = 0; i < 20; i++)
		tr_free(t[i]);
}
END_TEST

/* Three busy jobs strictly alternate. */
START_TEST(test_round_robin_three)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	void *owners[3] = {&job_x, &job_y, &job_z};
	struct transfer *t[30], *p;
	int i, seen[3] = {0, 0, 0};

	for (i = 0; i < 30; i++) {
		t[i] = tr_new(owners[i / 10], "h", (uint64_t)i);
		push_ok(s, t[i]);
	}
	for (i = 0; i < 30; i++) {
		p = sched_pop(s);
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_eq(p->owner, owners[i % 3]);
		seen[p->id / 10]++;
		/* within the job: FIFO */
		ck_assert_uint_eq(p->id % 10, (uint64_t)(seen[p->id / 10] - 1));
	}
	finish_all(s, t, 30);
}
END_TEST

START_TEST(test_cap_zero_unlimited)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t[1000];
	int i;

	push_same(s, t, 1000, "one.example");
	for (i = 0; i < 1000; i++)
		ck_assert_ptr_eq(sched_pop(s), t[i]);
	ck_assert_uint_eq(sched_running(s), 1000);
	finish_all(s, t, 1000);
}
END_TEST

START_TEST(test_lower_cap)
{
	struct sched *s = sched_new(NULL, 4, NULL, NULL);
	struct transfer *t[10];
	int i;

	push_same(s, t, 10, "a");
	for (i = 0; i < 4; i++)
		ck_assert_ptr_eq(sched_pop(s), t[i]);
	ck_assert_ptr_null(sched_pop(s));
	sched_set_per_host(s, 2);
	/* 4 running over a cap of 2: nothing starts until they drain to 1. */
	sched_release(s, t[0]);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, t[1]);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, t[2]);
	ck_assert_ptr_eq(sched_pop(s), t[4]);
	ck_assert_ptr_null(sched_pop(s));
	/* Raising it takes effect at once. */
	sched_set_per_host(s, 4);
	ck_assert_ptr_eq(sched_pop(s), t[5]);
	ck_assert_ptr_eq(sched_pop(s), t[6]);
	ck_assert_ptr_null(sched_pop(s));
	sched_set_per_host(s, 0);
	for (i = 7; i < 10; i++)
		ck_assert_ptr_eq(sched_pop(s), t[i]);
	ck_assert_ptr_null(sched_pop(s));
	for (i = 3; i < 10; i++)
		sched_release(s, t[i]);
	ck_assert_uint_eq(sched_running(s), 0);
	sched_free(s);
	for (i = 0; i < 10; i++)
		tr_free(t[i]);
}
END_TEST

/* A new cap applies to hosts that already have transfers queued. */
START_TEST(test_set_cap_while_queued)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t[3];

	push_same(s, t, 3, "a");
	sched_set_per_host(s, 1);
	ck_assert_ptr_eq(sched_pop(s), t[0]);
	ck_assert_ptr_null(sched_pop(s));
	sched_set_per_host(s, -5); /* negative: no cap */
	ck_assert_ptr_eq(sched_pop(s), t[1]);
	ck_assert_ptr_eq(sched_pop(s), t[2]);
	finish_all(s, t, 3);
}
END_TEST

/*
 * A job touching many distinct hosts: push, pop and release them all. The
 * counters come back to 0, and the heap shrinks back to about where it was
 * (host entries are freed as they go idle, not at sched_free()); under
 * valgrind or ASan, where mallinfo2 sees nothing, at least nothing leaks.
 */
START_TEST(test_release_frees_hosts)
{
	struct sched *s = sched_new(NULL, 1, NULL, NULL);
	enum { N = 100000 };
	struct transfer **t;
	char host[64];
	size_t before, busy, after;
	int i, bad = 0;

	t = calloc(N, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	for (i = 0; i < N; i++) {
		snprintf(host, sizeof(host), "h%d.example", i);
		t[i] = calloc(1, sizeof(*t[i]));
		ck_assert(t[i] != NULL && (t[i]->host = strdup(host)) != NULL);
		t[i]->owner = &job_x;
	}
	before = heap_in_use();
	for (i = 0; i < N; i++)
		bad += sched_push(s, t[i]) != 0;
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(sched_ready(s), N);
	for (i = 0; i < N; i++)
		bad += sched_pop(s) != t[i];
	ck_assert_int_eq(bad, 0);
	ck_assert_ptr_null(sched_pop(s));
	ck_assert_uint_eq(sched_running(s), N);
	busy = heap_in_use();
	for (i = 0; i < N; i++)
		sched_release(s, t[i]);
	ck_assert_uint_eq(sched_running(s), 0);
	ck_assert_uint_eq(sched_ready(s), 0);
	after = heap_in_use();
	if (busy > before + (size_t)N * 16) /* mallinfo2 sees our heap */
		ck_assert_msg(after < before + 64 * 1024,
		    "%zu bytes still held for idle hosts (%zu while busy)",
		    after - before, busy - before);

	/* Interleaved as in a real run, then the same names again. */
	for (i = 0; i < N; i++) {
		bad += sched_push(s, t[i]) != 0;
		bad += sched_pop(s) != t[i];
		sched_release(s, t[i]);
	}
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(sched_running(s), 0);
	ck_assert_uint_eq(sched_ready(s), 0);
	sched_free(s);
	for (i = 0; i < N; i++)
		tr_free(t[i]);
	free(t);
}
END_TEST

/* Releasing a transfer that is not running is a bug: fatalx, exit 1. */
START_TEST(test_release_underflow)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t = tr_new(&job_x, "a", 1);

	push_ok(s, t);
	ck_assert_ptr_eq(sched_pop(s), t);
	sched_release(s, t);
	sched_release(s, t);
}
END_TEST

START_TEST(test_release_unknown)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t = tr_new(&job_x, "never.example", 1);

	sched_release(s, t);
}
END_TEST

START_TEST(test_bad_args)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t = tr_new(&job_x, "a", 1);

	free(t->host);
	t->host = NULL;
	ck_assert_int_eq(sched_push(s, t), -1);
	ck_assert_int_eq(sched_push(s, NULL), -1);
	t->host = strdup("a");
	/* no event_base: no timers */
	ck_assert_int_eq(sched_retry(s, t, 1), -1);
	ck_assert_uint_eq(sched_ready(s), 0);
	ck_assert_uint_eq(sched_waiting(s), 0);
	ck_assert_ptr_null(sched_pop(s));
	ck_assert_uint_eq(sched_remove_owner(s, &job_x, NULL, NULL), 0);
	sched_free(s);
	sched_free(NULL);
	tr_free(t);
}
END_TEST

START_TEST(test_retry_fires)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	struct transfer *t = tr_new(&job_x, "a", 1);
	double start, took;

	w.s = s;
	start = testlib_now();
	retry_ok(s, t, 0.05);
	ck_assert_uint_eq(sched_waiting(s), 1);
	ck_assert_uint_eq(sched_ready(s), 0);
	ck_assert_ptr_null(sched_pop(s));
	run_until(base, &w.calls, 1, 2);
	took = testlib_now() - start;
	ck_assert_int_eq(w.calls, 1);
	/* libevent's coarse clock may fire a few ms early, never much more */
	ck_assert(took >= 0.04);
	ck_assert_uint_eq(sched_waiting(s), 0);
	ck_assert_uint_eq(sched_ready(s), 1);
	ck_assert_ptr_eq(sched_pop(s), t);
	sched_release(s, t);
	/* Nothing left: the loop has no events and returns at once. */
	ck_assert_int_eq(event_base_loop(base, EVLOOP_NONBLOCK), 1);
	ck_assert_int_eq(w.calls, 1);
	sched_free(s);
	event_base_free(base);
	tr_free(t);
}
END_TEST

START_TEST(test_retry_order)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	double delays[4] = {0.08, 0.02, 0.05, 0.11};
	struct transfer *t[4];
	int i;

	w.s = s;
	for (i = 0; i < 4; i++) {
		t[i] = tr_new(&job_x, "a", (uint64_t)i);
		retry_ok(s, t[i], delays[i]);
	}
	ck_assert_uint_eq(sched_waiting(s), 4);
	/* One at a time: each fire makes exactly the next deadline ready. */
	run_until_waiting(base, s, 3, 2);
	ck_assert_uint_eq(sched_ready(s), 1);
	ck_assert_ptr_eq(sched_pop(s), t[1]);
	run_until_waiting(base, s, 2, 2);
	ck_assert_ptr_eq(sched_pop(s), t[2]);
	run_until_waiting(base, s, 0, 2);
	ck_assert_uint_eq(sched_ready(s), 2);
	ck_assert_ptr_eq(sched_pop(s), t[0]);
	ck_assert_ptr_eq(sched_pop(s), t[3]);
	ck_assert_int_ge(w.calls, 3);
	finish_all(s, t, 4);
	event_base_free(base);
}
END_TEST

/* A later, shorter retry moves the timer earlier. */
START_TEST(test_retry_earlier_rearms)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	struct transfer *slow = tr_new(&job_x, "a", 1);
	struct transfer *fast = tr_new(&job_y, "b", 2);
	double start = testlib_now();

	w.s = s;
	retry_ok(s, slow, 30);
	retry_ok(s, fast, 0.02);
	run_until(base, &w.calls, 1, 2);
	ck_assert_int_eq(w.calls, 1);
	ck_assert(testlib_now() - start < 2 * testlib_scale());
	ck_assert_ptr_eq(sched_pop(s), fast);
	ck_assert_uint_eq(sched_waiting(s), 1);
	sched_release(s, fast);
	/* The slow one is still queued; freeing does not free transfers. */
	sched_free(s);
	event_base_free(base);
	tr_free(slow);
	tr_free(fast);
}
END_TEST

/* Several due at once: one wake; wake may pop right away. */
START_TEST(test_retry_one_wake)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	struct transfer *t1 = tr_new(&job_x, "a", 1);
	struct transfer *t2 = tr_new(&job_x, "a", 2);
	struct transfer *t3 = tr_new(&job_x, "a", 3);

	w.s = s;
	w.pop_in_wake = 1;
	retry_ok(s, t1, 0);
	retry_ok(s, t2, -1); /* negative: as soon as possible */
	retry_ok(s, t3, 0);
	run_until(base, &w.calls, 1, 2);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(w.npopped, 3);
	ck_assert_ptr_eq(w.popped[0], t1);
	ck_assert_ptr_eq(w.popped[1], t2);
	ck_assert_ptr_eq(w.popped[2], t3);
	ck_assert_uint_eq(sched_running(s), 3);
	ck_assert_uint_eq(sched_waiting(s), 0);
	sched_release(s, t1);
	sched_release(s, t2);
	sched_release(s, t3);
	sched_free(s);
	event_base_free(base);
	tr_free(t1);
	tr_free(t2);
	tr_free(t3);
}
END_TEST

/* A retried transfer queues behind those that were ready before it. */
START_TEST(test_retry_queues_behind)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	struct transfer *r = tr_new(&job_x, "a", 1);
	struct transfer *p = tr_new(&job_x, "a", 2);

	w.s = s;
	retry_ok(s, r, 0);
	push_ok(s, p);
	run_until(base, &w.calls, 1, 2);
	ck_assert_ptr_eq(sched_pop(s), p);
	ck_assert_ptr_eq(sched_pop(s), r);
	sched_release(s, p);
	sched_release(s, r);
	sched_free(s);
	event_base_free(base);
	tr_free(r);
	tr_free(p);
}
END_TEST

struct removed {
	struct transfer *t[16];
	int n;
};

static void
remove_cb(struct transfer *t, void *arg)
{
	struct removed *r = arg;

	ck_assert_int_lt(r->n, 16);
	r->t[r->n++] = t;
}

static int
removed_has(const struct removed *r, const struct transfer *t)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (r->t[i] == t)
			return 1;
	return 0;
}

START_TEST(test_remove_owner)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 1, wake_cb, &w);
	struct transfer *xr[3], *xw[2], *yr, *yw, *yrun;
	struct removed rm = {{NULL}, 0};
	int i;

	w.s = s;
	for (i = 0; i < 3; i++) {
		xr[i] = tr_new(&job_x, i == 2 ? "b" : "a", (uint64_t)i);
		push_ok(s, xr[i]);
	}
	for (i = 0; i < 2; i++) {
		xw[i] = tr_new(&job_x, "c", (uint64_t)(10 + i));
		retry_ok(s, xw[i], 0.03);
	}
	yrun = tr_new(&job_y, "a", 20);
	push_ok(s, yrun);
	yr = tr_new(&job_y, "d", 21);
	push_ok(s, yr);
	yw = tr_new(&job_y, "e", 22);
	retry_ok(s, yw, 0.08);
	/* x gets a, then y would want a (busy) and takes d */
	ck_assert_ptr_eq(sched_pop(s), xr[0]);
	ck_assert_ptr_eq(sched_pop(s), yr);
	ck_assert_uint_eq(sched_ready(s), 3);
	ck_assert_uint_eq(sched_waiting(s), 3);

	ck_assert_uint_eq(sched_remove_owner(s, &job_x, remove_cb, &rm), 4);
	ck_assert_int_eq(rm.n, 4);
	ck_assert(removed_has(&rm, xr[1]) && removed_has(&rm, xr[2]));
	ck_assert(removed_has(&rm, xw[0]) && removed_has(&rm, xw[1]));
	ck_assert(!removed_has(&rm, xr[0]));
	ck_assert_uint_eq(sched_ready(s), 1);
	ck_assert_uint_eq(sched_waiting(s), 1);
	ck_assert_uint_eq(sched_remove_owner(s, &job_x, remove_cb, &rm), 0);

	/* Running ones stay counted until released. */
	ck_assert_uint_eq(sched_running(s), 2);
	ck_assert_ptr_null(sched_pop(s)); /* yrun waits for a */
	sched_release(s, xr[0]);
	ck_assert_ptr_eq(sched_pop(s), yrun);

	/* y's retry fires after x's would have: only y's becomes ready. */
	run_until(base, &w.calls, 1, 2);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_uint_eq(sched_waiting(s), 0);
	ck_assert_uint_eq(sched_ready(s), 1);
	ck_assert_ptr_eq(sched_pop(s), yw);
	ck_assert_ptr_null(sched_pop(s));
	sched_release(s, yr);
	sched_release(s, yrun);
	sched_release(s, yw);
	ck_assert_uint_eq(sched_running(s), 0);

	/* The job may come back after removal. */
	push_ok(s, xr[1]);
	ck_assert_ptr_eq(sched_pop(s), xr[1]);
	sched_release(s, xr[1]);

	sched_free(s);
	event_base_free(base);
	for (i = 0; i < 3; i++)
		tr_free(xr[i]);
	for (i = 0; i < 2; i++)
		tr_free(xw[i]);
	tr_free(yr);
	tr_free(yw);
	tr_free(yrun);
}
END_TEST

/* Removing the only waiting transfers cancels the timer outright. */
START_TEST(test_remove_cancels_timer)
{
	struct event_base *base = event_base_new();
	struct waker w = {0};
	struct sched *s = sched_new(base, 0, wake_cb, &w);
	struct transfer *t1 = tr_new(&job_x, "a", 1);
	struct transfer *t2 = tr_new(&job_x, "b", 2);
	struct removed rm = {{NULL}, 0};

	retry_ok(s, t1, 0.01);
	retry_ok(s, t2, 0);
	ck_assert_uint_eq(sched_remove_owner(s, &job_x, remove_cb, &rm), 2);
	ck_assert_uint_eq(sched_waiting(s), 0);
	/* No pending event at all: dispatch returns 1 without waiting. */
	ck_assert_int_eq(event_base_dispatch(base), 1);
	ck_assert_int_eq(w.calls, 0);
	ck_assert_uint_eq(sched_ready(s), 0);
	sched_free(s);
	event_base_free(base);
	tr_free(t1);
	tr_free(t2);
}
END_TEST

/* The callback may push back into the scheduler (e.g. to requeue). */
static struct sched *reenter_s;

static void
reenter_cb(struct transfer *t, void *arg)
{
	t->owner = arg;
	ck_assert_int_eq(sched_push(reenter_s, t), 0);
}

START_TEST(test_remove_reentrant)
{
	struct sched *s = sched_new(NULL, 0, NULL, NULL);
	struct transfer *t[4];
	int i;

	reenter_s = s;
	for (i = 0; i < 4; i++) {
		t[i] = tr_new(&job_x, i % 2 ? "a" : "b", (uint64_t)i);
		push_ok(s, t[i]);
	}
	ck_assert_uint_eq(sched_remove_owner(s, &job_x, reenter_cb, &job_y), 4);
	ck_assert_uint_eq(sched_ready(s), 4);
	for (i = 0; i < 4; i++)
		ck_assert_ptr_eq(sched_pop(s)->owner, &job_y);
	finish_all(s, t, 4);
}
END_TEST

START_TEST(test_backoff)
{
	double d, lo, hi, want, min_seen, max_seen;
	unsigned seed, seed2;
	int attempt, i;

	for (attempt = 2; attempt <= 12; attempt++) {
		want = 1.0;
		for (i = 2; i < attempt; i++)
			want *= 2;
		if (want > 60)
			want = 60;
		min_seen = 1e9;
		max_seen = -1;
		for (seed = 0; seed < 2000; seed++) {
			seed2 = seed;
			d = sched_backoff(attempt, 1.0, 60.0, -1, &seed2);
			ck_assert(d >= want / 2 && d <= want);
			if (d < min_seen)
				min_seen = d;
			if (d > max_seen)
				max_seen = d;
		}
		/* full jitter: spread over the whole half-range */
		ck_assert(min_seen < want * 0.55);
		ck_assert(max_seen > want * 0.95);
	}
	/* growth: 2 -> base, 3 -> 2 base, 4 -> 4 base (upper bounds) */
	seed = 7;
	lo = sched_backoff(3, 0.5, 100, -1, &seed);
	ck_assert(lo >= 0.5 && lo <= 1.0);
	seed = 7;
	hi = sched_backoff(4, 0.5, 100, -1, &seed);
	ck_assert(hi >= 1.0 && hi <= 2.0);
	ck_assert(hi > lo); /* same seed, twice the range */
	/* huge attempts neither overflow nor pass max */
	seed = 3;
	d = sched_backoff(100000, 2.0, 30.0, -1, &seed);
	ck_assert(d >= 15.0 && d <= 30.0);
	seed = 3;
	d = sched_backoff(0, 2.0, 30.0, -1, &seed); /* below 2: first */
	ck_assert(d >= 1.0 && d <= 2.0);
	/* same seed, same value; the seed advances */
	seed = 42;
	seed2 = 42;
	ck_assert(sched_backoff(5, 1, 60, -1, &seed) ==
	    sched_backoff(5, 1, 60, -1, &seed2));
	ck_assert_uint_eq(seed, seed2);
	/* Retry-After replaces the delay, no jitter, capped at max */
	seed = 1;
	ck_assert(sched_backoff(2, 1, 60, 5, &seed) == 5.0);
	ck_assert(sched_backoff(9, 1, 60, 5, &seed) == 5.0);
	ck_assert(sched_backoff(2, 1, 60, 0, &seed) == 0.0);
	ck_assert(sched_backoff(2, 1, 60, 3600, &seed) == 60.0);
	ck_assert(sched_backoff(2, 0, 60, 7, &seed) == 7.0);
	/* base 0 and nonsense never go negative */
	ck_assert(sched_backoff(2, 0, 60, -1, &seed) == 0.0);
	ck_assert(sched_backoff(9, 0, 60, -1, &seed) == 0.0);
	ck_assert(sched_backoff(3, -4, 60, -1, &seed) == 0.0);
	ck_assert(sched_backoff(3, 1, -1, -1, &seed) == 0.0);
	ck_assert(sched_backoff(3, 1, -1, 10, &seed) == 0.0);
	d = sched_backoff(3, 1, 60, -1, NULL);
	ck_assert(d >= 1.0 && d <= 2.0);
}
END_TEST

/*
 * 10,000 transfers on one host with a cap of 1000: fill the cap, then
 * release and pop one at a time. A pop that walked the queue would make
 * this take tens of millions of steps; 2 s is a sanity bound only.
 */
START_TEST(test_perf_one_host)
{
	struct sched *s = sched_new(NULL, 1000, NULL, NULL);
	enum { N = 10000, CAP = 1000 };
	struct transfer **t;
	double start, took;
	int i, bad = 0;

	t = calloc(N, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	push_same(s, t, N, "mirror.example");
	start = testlib_now();
	for (i = 0; i < CAP; i++)
		bad += sched_pop(s) != t[i];
	bad += sched_pop(s) != NULL;
	for (i = 0; i < N - CAP; i++) {
		sched_release(s, t[i]);
		bad += sched_pop(s) != t[CAP + i];
	}
	took = testlib_now() - start;
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(sched_ready(s), 0);
	ck_assert_uint_eq(sched_running(s), CAP);
	ck_assert_msg(took < 2.0 * testlib_scale(), "took %.3f s", took);
	for (i = N - CAP; i < N; i++)
		sched_release(s, t[i]);
	sched_free(s);
	for (i = 0; i < N; i++)
		tr_free(t[i]);
	free(t);
}
END_TEST

/*
 * Many jobs and hosts with most hosts capped: the oldest-first rule inside
 * a job and the skipping of capped hosts must not cost a walk of the queue.
 */
START_TEST(test_perf_many_hosts)
{
	struct sched *s = sched_new(NULL, 1, NULL, NULL);
	enum { NJOB = 10, NHOST = 1000, PER = 2 };
	static char jobs[NJOB];
	struct transfer **t, **run, *p;
	size_t n = (size_t)NJOB * NHOST * PER, nrun = 0, i;
	char host[32];
	double start, took;
	int j, h, k;

	t = calloc(n, sizeof(*t));
	run = calloc(n, sizeof(*run));
	ck_assert(t != NULL && run != NULL);
	i = 0;
	for (k = 0; k < PER; k++)
		for (j = 0; j < NJOB; j++)
			for (h = 0; h < NHOST; h++) {
				snprintf(host, sizeof(host), "h%d", h);
				t[i] = tr_new(&jobs[j], host, i);
				push_ok(s, t[i]);
				i++;
			}
	start = testlib_now();
	/* pure scheduler work in the timed part: no assertions */
	/* Every host runs one; the rest wait on the cap. */
	while ((p = sched_pop(s)) != NULL)
		run[nrun++] = p;
	ck_assert_uint_eq(nrun, NHOST);
	/* Drain: release the oldest running, start whatever is allowed. */
	for (i = 0; i < nrun; i++) {
		sched_release(s, run[i]);
		while ((p = sched_pop(s)) != NULL)
			run[nrun++] = p;
	}
	took = testlib_now() - start;
	ck_assert_uint_eq(nrun, n);
	ck_assert_uint_eq(sched_ready(s), 0);
	ck_assert_uint_eq(sched_running(s), 0);
	ck_assert_msg(took < 2.0 * testlib_scale(), "took %.3f s", took);
	sched_free(s);
	for (i = 0; i < n; i++)
		tr_free(t[i]);
	free(t);
	free(run);
}
END_TEST

static Suite *
sched_suite(void)
{
	Suite *su = suite_create("sched");
	TCase *tc;

	tc = tcase_create("order");
	tcase_add_test(tc, test_fifo_one_host);
	tcase_add_test(tc, test_fifo_across_hosts);
	tcase_add_test(tc, test_round_robin);
	tcase_add_test(tc, test_round_robin_three);
	tcase_add_test(tc, test_round_robin_capped);
	suite_add_tcase(su, tc);

	tc = tcase_create("caps");
	tcase_set_timeout(tc, 120); /* 100,000 hosts under valgrind */
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_cap_across_jobs);
	tcase_add_test(tc, test_cap_zero_unlimited);
	tcase_add_test(tc, test_lower_cap);
	tcase_add_test(tc, test_set_cap_while_queued);
	tcase_add_test(tc, test_release_frees_hosts);
	tcase_add_exit_test(tc, test_release_underflow, 1);
	tcase_add_exit_test(tc, test_release_unknown, 1);
	tcase_add_test(tc, test_bad_args);
	suite_add_tcase(su, tc);

	tc = tcase_create("retry");
	tcase_add_test(tc, test_retry_fires);
	tcase_add_test(tc, test_retry_order);
	tcase_add_test(tc, test_retry_earlier_rearms);
	tcase_add_test(tc, test_retry_one_wake);
	tcase_add_test(tc, test_retry_queues_behind);
	tcase_add_test(tc, test_remove_owner);
	tcase_add_test(tc, test_remove_cancels_timer);
	tcase_add_test(tc, test_remove_reentrant);
	suite_add_tcase(su, tc);

	tc = tcase_create("backoff");
	tcase_add_test(tc, test_backoff);
	suite_add_tcase(su, tc);

	tc = tcase_create("perf");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_perf_one_host);
	tcase_add_test(tc, test_perf_many_hosts);
	suite_add_tcase(su, tc);
	return su;
}

int
main(void)
{
	return testlib_run(sched_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
