/*
 * check_engine.c: the engine contract (engine.h), one suite run unchanged
 * against every model this build has, plus what only the process engine
 * must do (its children die, are reaped and replaced; other children of
 * the process are left alone).
 *
 * The engines are driven the way fetchd drives them: each transfer's name
 * reserved on the main loop by the job's names object (names.h), its .part
 * created by fetch_begin() wherever the engine runs it, engine_submit()
 * while there is room,
 * completions through the done() callback on an event_base this file runs.
 * The HTTP side is tests/httpd.py on loopback. The process engine execs
 * this very program as its workers; main() hands such a child to
 * worker_main() before anything else.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "engine.h"
#include "fetch.h"
#include "names.h"
#include "testlib.h"
#include "worker.h"

#define COUNT 2

/* Every engine this build has; the loop index is the model. */
#define NMODELS engine_models()

static char tmp[64], jdir[128];
static struct names *nm;        /* the names of J, as its job holds them */
static struct config cfg;
static struct event_base *base;
static struct engine *eng;
static int model;
static uint64_t seq;
static TAILQ_HEAD(, transfer) done_list;
static int ndone;

/* Is o a request for key (a string)? */
static int
is_key(json_t *o, const void *key)
{
	json_t *k = json_object_get(o, "key");

	return json_is_string(k) && strcmp(json_string_value(k), key) == 0;
}

/* Requests for key in the server's log so far. */
static int
requests_for(const char *key)
{
	int n = testlib_server_log_count(is_key, key);

	return n < 0 ? 0 : n;
}

/* --- driving an engine ---------------------------------------------------- */

static void
done_cb(struct transfer *t, void *arg)
{
	ck_assert_ptr_eq(arg, &done_list);
	TAILQ_INSERT_TAIL(&done_list, t, owner_entry);
	ndone++;
}

/* Run the loop until pred() holds; fail the test after timeout seconds. */
static void
run_until(int (*pred)(void *), void *arg, double timeout, const char *what)
{
	double deadline = testlib_now() + timeout;
	struct timeval tv = { 0, 20000 };

	while (!pred(arg)) {
		if (testlib_now() > deadline)
			ck_abort_msg("timed out waiting for %s (%s engine)",
			    what, engine_model_name(model));
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static int
ndone_at_least(void *arg)
{
	return ndone >= *(int *)arg;
}

static int
has_progress(void *arg)
{
	struct transfer *t = arg;

	return __atomic_load_n(&t->progress, __ATOMIC_RELAXED) > 0;
}

static void
wait_done(int n, double timeout)
{
	run_until(ndone_at_least, &n, timeout, "completions");
}

static struct transfer *
new_transfer(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A transfer for httpd.py's /f/<name>?<query>, its name reserved. */
static struct transfer *
new_transfer(const char *name, const char *fmt, ...)
{
	char q[2048], url[4096];
	struct transfer *t;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/f/%s?%s",
	    testlib_server_port(), name, q);
	t = fetch_transfer_new(url, "127.0.0.1", jdir, name);
	ck_assert_ptr_nonnull(t);
	t->id = ++seq;
	fetch_params_from_config(&t->params, &cfg);
	ck_assert_int_eq(names_reserve(nm, t, 0), 0);
	return t;
}

static void
submit_to(struct engine *e, struct transfer *t)
{
	t->progress = 0;
	ck_assert_msg(engine_submit(e, t) == 0, "%s engine refused a "
	    "transfer", engine_model_name(model));
	ck_assert_ptr_eq(t->engine, e);
}

static void
submit(struct transfer *t)
{
	submit_to(eng, t);
}

static struct transfer *
take_done(void)
{
	struct transfer *t = TAILQ_FIRST(&done_list);

	ck_assert_ptr_nonnull(t);
	TAILQ_REMOVE(&done_list, t, owner_entry);
	return t;
}

static struct transfer *
find_done(uint64_t id)
{
	struct transfer *t;

	TAILQ_FOREACH(t, &done_list, owner_entry)
		if (t->id == id)
			return t;
	ck_abort_msg("transfer %llu did not come back", (unsigned long long)id);
	return NULL;
}

/* A transfer is over: its name is free again, then it goes. */
static void
drop(struct transfer *t)
{
	if (t != NULL && nm != NULL)
		names_release(nm, t);
	fetch_transfer_free(t);
}

static void
free_done(void)
{
	struct transfer *t;

	while ((t = TAILQ_FIRST(&done_list)) != NULL) {
		TAILQ_REMOVE(&done_list, t, owner_entry);
		drop(t);
	}
}

/* httpd.py's body: byte i is (i * 7 + seed) % 251. */
static void
assert_body(const char *name, size_t size, int seed)
{
	char path[512];
	unsigned char *buf;
	struct stat st;
	size_t i;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", jdir, name);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq((size_t)st.st_size, size);
	ck_assert_ptr_nonnull(buf = malloc(size + 1));
	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	ck_assert_int_eq(read(fd, buf, size + 1), (ssize_t)size);
	close(fd);
	for (i = 0; i < size; i++)
		if (buf[i] != (unsigned char)((i * 7 + (size_t)seed) % 251))
			ck_abort_msg("%s: byte %zu differs", path, i);
	free(buf);
}

static long long
part_size(const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s.part", jdir, name);
	return lstat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void
setup(int i)
{
	model = i;
	testlib_tmpdir(tmp, sizeof(tmp), "check_engine");
	snprintf(jdir, sizeof(jdir), "%s/J", tmp);
	ck_assert_ptr_nonnull(nm = names_new(jdir, 0));
	ck_assert_int_eq(config_defaults(&cfg), 0);
	cfg.model = model;
	cfg.count = COUNT;
	cfg.connect_timeout = 5;
	TAILQ_INIT(&done_list);
	ndone = 0;
	ck_assert_ptr_nonnull(base = event_base_new());
	eng = engine_new(model, &cfg, base, done_cb, &done_list);
	ck_assert_msg(eng != NULL, "the %s engine did not start",
	    engine_model_name(model));
}

static void
teardown(void)
{
	engine_free(eng);
	eng = NULL;
	free_done();
	names_free(nm);
	nm = NULL;
	event_base_free(base);
	base = NULL;
	config_free(&cfg);
	testlib_rm_rf(tmp);
}

/* Check runs setup before each test; the model is the loop index. */
#define ENGINE_TEST(name)                                              \
	static void name##_body(void);                                 \
	START_TEST(name)                                               \
	{                                                              \
		setup(_i);                                             \
		name##_body();                                         \
		teardown();                                            \
	}                                                              \
	END_TEST                                                       \
	static void name##_body(void)

/* --- the contract, every engine ------------------------------------------ */

/* Transfers submitted while there is room all come back, ok, byte-exact. */
ENGINE_TEST(test_runs_transfers)
{
	struct engine_stats st;
	struct transfer *t;
	char name[32];
	int i, submitted = 0, n = 9;

	while (ndone < n) {
		while (submitted < n && engine_has_room(eng)) {
			snprintf(name, sizeof(name), "r%d.bin", submitted);
			submit(new_transfer(name, "size=%d&seed=%d",
			    20000 + submitted, submitted));
			submitted++;
		}
		engine_get_stats(eng, &st);
		ck_assert_int_eq(st.workers, COUNT);
		ck_assert_int_le(st.busy, COUNT);
		i = ndone + 1;
		wait_done(i, 20);
	}
	ck_assert_int_eq(eng->inflight, 0);
	for (i = 0; i < n; i++) {
		t = take_done();
		ck_assert_msg(t->outcome == FETCH_OK, "%s: %s", t->name,
		    t->error);
		ck_assert_int_eq(t->http_status, 200);
		ck_assert_uint_eq(t->size, t->received);
		ck_assert_str_eq(t->error, "");
		/* the response's facts come back from every engine */
		ck_assert(t->meta.length == (long long)t->size);
		ck_assert_int_eq(t->meta.ranges, 1);
		assert_body(t->name, t->size, (int)(t->size - 20000));
		ck_assert_ptr_null(t->engine);
		drop(t);
	}
	engine_get_stats(eng, &st);
	ck_assert_int_eq(st.busy, 0);
}
END_TEST

/*
 * The .part a transfer made is known to the main loop when the attempt
 * comes back (from a worker process too), and the next attempt, wherever
 * it runs, resumes only that file: another one put in its place, even a
 * regular file of ours with one link, is not written but replaced by a
 * fresh .part.
 */
ENGINE_TEST(test_retry_resumes_only_its_own_part)
{
	struct transfer *t = new_transfer("h.bin",
	    "size=60000&seed=4&truncate=20000&key=own-%ld-%d", (long)getpid(),
	    model);
	char part[512], other[512], junk[20000];
	struct stat st;
	int fd;

	submit(t);
	wait_done(1, 20);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	snprintf(part, sizeof(part), "%s/h.bin.part", jdir);
	ck_assert_int_eq(lstat(part, &st), 0);
	ck_assert_int_eq(st.st_size, 20000);
	ck_assert_uint_eq(t->part_dev, (uint64_t)st.st_dev);
	ck_assert_uint_eq(t->part_ino, (uint64_t)st.st_ino);

	snprintf(other, sizeof(other), "%s/other", jdir);
	memset(junk, 0xee, sizeof(junk));
	ck_assert_int_ne(fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0640),
	    -1);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rename(other, part), 0);

	t->attempt++;
	submit(t);
	wait_done(2, 20);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_msg(t->outcome == FETCH_OK, "%s", t->error);
	ck_assert_int_eq(t->http_status, 200);
	assert_body("h.bin", 60000, 4);
	drop(t);
}
END_TEST

/* The main loop sees the bytes of a transfer while it runs. */
ENGINE_TEST(test_progress_while_running)
{
	struct transfer *t = new_transfer("p.bin", "size=%d&drip=%d&seed=3",
	    150000, 100000);

	submit(t);
	run_until(has_progress, t, 10, "progress");
	ck_assert_int_eq(ndone, 0);
	ck_assert_uint_lt(__atomic_load_n(&t->progress, __ATOMIC_RELAXED),
	    150000);
	wait_done(1, 20);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_msg(t->outcome == FETCH_OK, "%s", t->error);
	assert_body("p.bin", 150000, 3);
	drop(t);
}
END_TEST

/* A running transfer cancelled comes back soon as a retry, .part kept. */
ENGINE_TEST(test_cancel_running)
{
	struct transfer *t = new_transfer("c.bin", "size=%d&drip=%d",
	    2000000, 100000);
	double t0;

	submit(t);
	run_until(has_progress, t, 10, "progress");
	t0 = testlib_now();
	engine_cancel(t);
	wait_done(1, 5);
	ck_assert_double_lt(testlib_now() - t0, 3);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_str_eq(t->error, "cancelled");
	ck_assert_int_gt(part_size("c.bin"), 0);
	ck_assert_int_lt(part_size("c.bin"), 2000000);
	ck_assert_int_eq(eng->inflight, 0);
	/* Back from its engine: a cancel now has no one to ask. */
	ck_assert_ptr_null(t->engine);
	engine_cancel(t);
	drop(t);
}
END_TEST

/*
 * A live switch: the old engine drains while a new one takes work. A
 * cancel reaches the engine that owns the transfer, whichever that is,
 * and leaves the other engine's transfers alone.
 */
ENGINE_TEST(test_cancel_in_draining_engine)
{
	struct transfer *a = new_transfer("sa.bin", "size=%d&drip=%d",
	    2000000, 100000);
	struct transfer *b = new_transfer("sb.bin", "size=%d&drip=%d&seed=5",
	    150000, 300000);
	struct engine *old = eng, *neu;

	submit_to(old, a);
	run_until(has_progress, a, 10, "progress");
	engine_drain(old);
	ck_assert_ptr_nonnull(neu = engine_new(model, &cfg, base, done_cb,
	    &done_list));
	submit_to(neu, b);
	engine_cancel(a);
	wait_done(1, 5);
	ck_assert_ptr_eq(take_done(), a);
	ck_assert_int_eq(a->outcome, FETCH_RETRY);
	ck_assert_str_eq(a->error, "cancelled");
	ck_assert_int_eq(old->inflight, 0);
	ck_assert_int_eq(neu->inflight, 1);
	wait_done(2, 20);
	ck_assert_ptr_eq(take_done(), b);
	ck_assert_msg(b->outcome == FETCH_OK, "%s", b->error);
	assert_body("sb.bin", 150000, 5);
	engine_free(neu);
	drop(a);
	drop(b);
}
END_TEST

/* engine_free() with transfers running: each comes back (a retry) before
 * it returns. */
ENGINE_TEST(test_free_returns_everything)
{
	struct transfer *a = new_transfer("fa.bin", "size=%d&drip=%d",
	    2000000, 100000);
	struct transfer *b = new_transfer("fb.bin", "size=%d&drip=%d",
	    2000000, 100000);

	submit(a);
	submit(b);
	run_until(has_progress, a, 10, "progress");
	run_until(has_progress, b, 10, "progress");
	engine_free(eng);
	eng = NULL;
	ck_assert_int_eq(ndone, 2);
	ck_assert_int_eq(find_done(a->id)->outcome, FETCH_RETRY);
	ck_assert_int_eq(find_done(b->id)->outcome, FETCH_RETRY);
	ck_assert_int_gt(part_size("fa.bin"), 0);
	ck_assert_int_gt(part_size("fb.bin"), 0);
	/* teardown frees a NULL engine */
}
END_TEST

/* Draining: no new work, what runs finishes normally. */
ENGINE_TEST(test_drain_finishes_inflight)
{
	struct transfer *a = new_transfer("da.bin", "size=%d&drip=%d&seed=4",
	    100000, 200000);
	struct transfer *b = new_transfer("db.bin", "size=10");

	submit(a);
	engine_drain(eng);
	ck_assert(!engine_has_room(eng));
	ck_assert_int_eq(engine_submit(eng, b), -1);
	drop(b);
	wait_done(1, 20);
	ck_assert_ptr_eq(take_done(), a);
	ck_assert_msg(a->outcome == FETCH_OK, "%s", a->error);
	assert_body("da.bin", 100000, 4);
	drop(a);
}
END_TEST

/* --- the process engine ---------------------------------------------------- */

/* Live children of this process named comm (zombies counted apart). */
static int
children(const char *comm, pid_t *pids, int max, int *zombies)
{
	char path[300], buf[512], *p;
	struct dirent *de;
	DIR *d;
	FILE *f;
	int n = 0, ppid;
	char state;

	*zombies = 0;
	ck_assert_ptr_nonnull(d = opendir("/proc"));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
		    sscanf(p + 2, "%c %d", &state, &ppid) != 2 ||
		    ppid != getpid())
			continue;
		if (state == 'Z') {
			(*zombies)++;
			continue;
		}
		*p = '\0';
		if ((p = strchr(buf, '(')) == NULL || strcmp(p + 1, comm) != 0)
			continue;
		if (n < max)
			pids[n] = atoi(de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static int
pool_whole(void *arg)
{
	struct engine_stats st;
	pid_t pids[8];
	int z;

	engine_get_stats(eng, &st);
	return children("fetchd-worker", pids, 8, &z) == COUNT && z == 0 &&
	    st.restarts == *(long *)arg;
}

/* Which worker holds name.part open. */
static pid_t
writer_of(const char *name)
{
	char want[512], link[512], path[64];
	pid_t pids[8];
	int i, n, z, fd;
	ssize_t k;

	snprintf(want, sizeof(want), "%s/%s.part", jdir, name);
	n = children("fetchd-worker", pids, 8, &z);
	for (i = 0; i < n && i < 8; i++)
		for (fd = 4; fd < 64; fd++) {
			snprintf(path, sizeof(path), "/proc/%d/fd/%d",
			    (int)pids[i], fd);
			if ((k = readlink(path, link, sizeof(link) - 1)) <= 0)
				continue;
			link[k] = '\0';
			if (strcmp(link, want) == 0)
				return pids[i];
		}
	return -1;
}

/* A worker killed mid-transfer: the transfer comes back as a retry naming
 * the signal, the worker is reaped and replaced, the restart counted, and
 * the new worker runs the retry (resumed from the .part) to the end. */
START_TEST(test_process_child_killed)
{
	struct engine_stats st;
	struct transfer *t;
	long want = 0;
	long long kept;
	pid_t victim;
	double deadline;

	setup(engine_model_find("process"));
	run_until(pool_whole, &want, 10, "the workers");
	t = new_transfer("k.bin", "size=%d&drip=%d&seed=6&key=kill-%ld",
	    300000, 100000, (long)getpid());
	submit(t);
	run_until(has_progress, t, 10, "progress");
	deadline = testlib_now() + 5;
	while ((victim = writer_of("k.bin")) == -1 && testlib_now() < deadline)
		testlib_pause_ms(10);
	ck_assert_int_gt(victim, 0);
	ck_assert_int_eq(kill(victim, SIGKILL), 0);
	wait_done(1, 10);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_str_eq(t->error, "worker process died (signal 9)");
	want = 1;
	run_until(pool_whole, &want, 10, "a replacement worker, no zombie");
	engine_get_stats(eng, &st);
	ck_assert_int_eq(st.restarts, 1);
	ck_assert_int_eq(st.busy, 0);

	kept = part_size("k.bin");
	ck_assert_int_gt(kept, 0);
	/* A retry keeps its name and its .part, as the daemon's does. */
	t->attempt++;
	submit(t);
	wait_done(2, 20);
	ck_assert_ptr_eq(take_done(), t);
	ck_assert_msg(t->outcome == FETCH_OK, "%s", t->error);
	ck_assert_int_eq(t->http_status, 206);
	ck_assert_uint_eq(t->received, 300000 - (uint64_t)kept);
	assert_body("k.bin", 300000, 6);
	drop(t);
	teardown();
}
END_TEST

/* A child of the process that is not the engine's: SIGCHLD reaches the
 * engine, which must leave that child for its owner to wait for. */
START_TEST(test_process_leaves_other_children)
{
	struct timeval tv = { 0, 200000 };
	pid_t pid;
	int status;

	setup(engine_model_find("process"));
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		_exit(7);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 7);
	teardown();
}
END_TEST

/* A queued transfer (more submitted than workers) cancelled: back at once
 * as a retry, never requested. */
START_TEST(test_process_cancel_queued)
{
	struct transfer *a, *b, *c;
	char key[64];

	setup(engine_model_find("process"));
	a = new_transfer("qa.bin", "size=%d&drip=%d", 2000000, 100000);
	b = new_transfer("qb.bin", "size=%d&drip=%d", 2000000, 100000);
	snprintf(key, sizeof(key), "queued-%ld", (long)getpid());
	c = new_transfer("qc.bin", "size=10&key=%s", key);
	submit(a);
	submit(b);
	submit(c);
	engine_cancel(c);
	ck_assert_int_eq(ndone, 0);     /* never from inside cancel() */
	wait_done(1, 5);
	ck_assert_ptr_eq(take_done(), c);
	ck_assert_int_eq(c->outcome, FETCH_RETRY);
	ck_assert_str_eq(c->error, "cancelled");
	ck_assert_int_eq(requests_for(key), 0);
	drop(c);
	teardown();
	ck_assert_int_eq(ndone, 3);
}
END_TEST

/*
 * Every engine fits its count to the open file limit when it starts (and
 * so at a switch, which starts one through engine_new): 16 workers do not
 * fit 40 descriptors, and one always runs.
 */
START_TEST(test_fits_open_file_limit)
{
	struct rlimit rl, low;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 40;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ck_assert_int_eq(config_defaults(&cfg), 0);
	cfg.count = 16;
	cfg.connect_timeout = 5;
	TAILQ_INIT(&done_list);
	ck_assert_ptr_nonnull(base = event_base_new());
	eng = engine_new(_i, &cfg, base, done_cb, &done_list);
	ck_assert_ptr_nonnull(eng);
	ck_assert_int_lt(engine_workers(eng), 16);
	ck_assert_int_ge(engine_workers(eng), 1);
	engine_free(eng);
	eng = NULL;
	event_base_free(base);
	base = NULL;
	config_free(&cfg);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(engine_fit_nofile("x", 16, 6), 16);
}
END_TEST

static Suite *
engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc;

	tc = tcase_create("contract");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_runs_transfers, 0, NMODELS);
	tcase_add_loop_test(tc, test_progress_while_running, 0, NMODELS);
	tcase_add_loop_test(tc, test_cancel_running, 0, NMODELS);
	tcase_add_loop_test(tc, test_cancel_in_draining_engine, 0, NMODELS);
	tcase_add_loop_test(tc, test_free_returns_everything, 0, NMODELS);
	tcase_add_loop_test(tc, test_drain_finishes_inflight, 0, NMODELS);
	tcase_add_loop_test(tc, test_retry_resumes_only_its_own_part, 0,
	    NMODELS);
	tcase_add_loop_test(tc, test_fits_open_file_limit, 0, NMODELS);
	suite_add_tcase(s, tc);

	tc = tcase_create("process");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_process_child_killed);
	tcase_add_test(tc, test_process_leaves_other_children);
	tcase_add_test(tc, test_process_cancel_queued);
	suite_add_tcase(s, tc);
	return s;
}

int
main(int argc, char *argv[])
{
	int fd;

	/* The process engine execs this program as its workers. */
	if (worker_cmdline(argc, argv, &fd))
		return worker_main(fd);
	return testlib_run_with_server(engine_suite(), "check_engine");
}
