/*
 * check_control.c: the daemon's side of the control socket (control.c)
 * through its public functions: a struct control on its own event_base
 * with stub hooks, and a client in a child process that sends its requests,
 * shuts its side and reads everything until the daemon closes. What the
 * protocol promises a client that stops sending: every request it sent is
 * answered, in whole lines, before the close; more than a socket buffer of
 * replies included. Subscriptions: the index that tells who wants which
 * event, a rename carrying them along, each event once per subscriber, and
 * the bound on a subscriber's output with its `missed` line. (The real
 * daemon is driven by e2e_control.py and e2e_events.py.)
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "control.h"
#include "feed.h"
#include "proto.h"
#include "testlib.h"

#define PINGS 10000     /* replies well past a socket buffer */

static json_t *
hook_stats(void *arg)
{
	return json_pack("{s:s}", "model", "threads");
}

static json_t *
hook_jobs(void *arg)
{
	return json_pack("{s:[]}", "jobs");
}

static void
hook_pause(void *arg, int paused)
{
}

static int
hook_paused(void *arg)
{
	return 0;
}

static int
hook_cancel(void *arg, const char *job)
{
	return -1;
}

static int
hook_reload(void *arg, json_t *restart, char *err, size_t errlen)
{
	return 0;
}

static json_t *
hook_snapshot(void *arg, const char *job)
{
	return feed_snapshot(job, FEED_STATE_UNKNOWN, NULL, NULL);
}

static json_t *
hook_detail(void *arg, const char *job)
{
	return json_null();
}

static const struct control_hooks hooks = {
	.job_snapshot = hook_snapshot,
	.job_detail = hook_detail,
	.stats = hook_stats,
	.jobs = hook_jobs,
	.pause = hook_pause,
	.paused = hook_paused,
	.cancel = hook_cancel,
	.reload = hook_reload,
};

/* The client: send req, shut down, copy every reply to out. */
static void
client(const char *path, const char *req, size_t len, int out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[65536];
	ssize_t n;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fcntl(out, F_SETFL, 0) == -1)       /* blocking writes */
		_exit(1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		_exit(2);
	while (len > 0 && (n = write(fd, req, len)) > 0) {
		req += n;
		len -= (size_t)n;
	}
	if (len > 0 || shutdown(fd, SHUT_WR) == -1)
		_exit(3);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			_exit(4);
	_exit(n == 0 ? 0 : 5);
}

struct replies {
	struct event_base *base;
	char *buf;
	size_t len, cap;
};

static void
pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct replies *r = arg;
	ssize_t n;

	ck_assert_msg(!(what & EV_TIMEOUT), "no end of the replies");
	if (r->cap - r->len < 65536) {
		r->cap = r->cap * 2 + 65536;
		ck_assert_ptr_nonnull(r->buf = realloc(r->buf, r->cap));
	}
	n = read(fd, r->buf + r->len, r->cap - r->len);
	if (n > 0)
		r->len += (size_t)n;
	else if (n == 0 || errno != EAGAIN)
		event_base_loopbreak(r->base);
}

/*
 * What a client sending req (len bytes) and then shutting its side gets,
 * NUL-terminated, in *len. The control socket runs here, the client in a
 * child, its replies coming back through a pipe.
 */
static char *
converse(const char *req, size_t *len)
{
	struct timeval limit = { (time_t)(30 * testlib_scale()), 0 };
	struct replies r = { NULL, NULL, 0, 0 };
	struct control *ctl;
	struct event *ev;
	char dir[256], path[300], err[256];
	int p[2], status;
	pid_t pid;

	testlib_tmpdir(dir, sizeof(dir), "check_control");
	snprintf(path, sizeof(path), "%s/sock", dir);
	ck_assert_ptr_nonnull(r.base = event_base_new());
	ctl = control_new(r.base, path, 0600, &hooks, NULL, err, sizeof(err));
	ck_assert_msg(ctl != NULL, "%s", err);
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		client(path, req, *len, p[1]);
	close(p[1]);
	ev = event_new(r.base, p[0], EV_READ | EV_PERSIST, pipe_cb, &r);
	ck_assert_int_eq(event_add(ev, &limit), 0);
	event_base_dispatch(r.base);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the client failed (status %d)", status);
	event_free(ev);
	close(p[0]);
	control_free(ctl);
	event_base_free(r.base);
	testlib_rm_rf(dir);
	ck_assert_ptr_nonnull(r.buf = realloc(r.buf, r.len + 1));
	r.buf[r.len] = '\0';
	*len = r.len;
	return r.buf;
}

/* PINGS pings then tail: the replies, checked for the PINGS pongs. */
static char *
pings_then(const char *tail, size_t taillen, size_t *nlines, char **rest)
{
	size_t len = PINGS * 5 + taillen, i;
	char *req, *out, *p, *nl;
	json_t *o;

	ck_assert_ptr_nonnull(req = malloc(len));
	for (i = 0; i < PINGS; i++)
		memcpy(req + i * 5, "ping\n", 5);
	memcpy(req + PINGS * 5, tail, taillen);
	out = converse(req, &len);
	free(req);
	*rest = out + len;
	ck_assert_msg(len > 0 && out[len - 1] == '\n', "a torn last reply");
	for (p = out, i = 0; (nl = strchr(p, '\n')) != NULL; p = nl + 1, i++) {
		o = json_loadb(p, (size_t)(nl - p), 0, NULL);
		ck_assert_msg(o != NULL, "reply %zu is not JSON", i);
		if (i < PINGS)
			ck_assert_msg(json_is_true(json_object_get(o,
			    PROTO_KEY_PONG)), "reply %zu is not a pong", i);
		json_decref(o);
		if (i + 1 == PINGS)
			*rest = nl + 1;
	}
	*nlines = i;
	return out;
}

/*
 * A client sends PINGS pings, then a tail, then shuts its side: every ping
 * is answered, then come the replies to the tail, whole lines up to the
 * close. In turn: a request the daemon refuses and closes on (what follows
 * it is not read); `watch` (its stream ends at the EOF); a last request
 * without a newline.
 */
static const struct eof_case {
	const char *tail;
	size_t len;
	size_t after;           /* replies after the pongs */
	int at_least;           /* or more (a watcher's stats) */
	const char *said;       /* in those replies */
} eof_cases[] = {
	{ "pi\0ng\nping\nping\n", 16, 1, 0, "NUL byte" },
	{ "watch 100\n", 10, 1, 1, "\"model\"" },
	{ "ping", 4, 1, 0, "\"pong\"" },
};

START_TEST(test_eof_keeps_the_replies)
{
	const struct eof_case *c = &eof_cases[_i];
	size_t n;
	char *out, *rest;

	out = pings_then(c->tail, c->len, &n, &rest);
	if (c->at_least)
		ck_assert_uint_ge(n, PINGS + c->after);
	else
		ck_assert_uint_eq(n, PINGS + c->after);
	ck_assert_msg(strstr(rest, c->said) != NULL, "%s not in %s", c->said,
	    rest);
	free(out);
}
END_TEST

/*
 * Subscriptions, in one process: the control socket on an event_base this
 * test turns, its clients plain non-blocking sockets.
 */
static struct event_base *sbase;
static struct control *sctl;
static char sdir[256], spath[300];

static void
sub_setup(void)
{
	char err[256];

	testlib_tmpdir(sdir, sizeof(sdir), "check_control");
	snprintf(spath, sizeof(spath), "%s/sock", sdir);
	ck_assert_ptr_nonnull(sbase = event_base_new());
	sctl = control_new(sbase, spath, 0600, &hooks, NULL, err, sizeof(err));
	ck_assert_msg(sctl != NULL, "%s", err);
}

static void
sub_teardown(void)
{
	control_free(sctl);
	event_base_free(sbase);
	testlib_rm_rf(sdir);
}

/* A client that sent req; rcvbuf: its receive buffer, 0 the default. */
static int
sub_client(const char *req, int rcvbuf)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	ck_assert_uint_lt(strlen(spath), sizeof(sun.sun_path));
	memcpy(sun.sun_path, spath, strlen(spath) + 1);
	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	if (rcvbuf > 0)
		ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf)), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	ck_assert_int_eq((ssize_t)strlen(req), write(fd, req, strlen(req)));
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	return fd;
}

static long
sub_stat(const char *key)
{
	json_t *o = control_json(sctl);
	long v;

	ck_assert_ptr_nonnull(o);
	v = (long)json_integer_value(json_object_get(o, key));
	json_decref(o);
	return v;
}

/* Turn the loop until key of the control stats is want. */
static void
sub_until(const char *key, long want)
{
	double end = testlib_now() + 10 * testlib_scale();

	while (sub_stat(key) != want) {
		ck_assert_msg(testlib_now() < end, "%s stays %ld, not %ld", key,
		    sub_stat(key), want);
		event_base_loop(sbase, EVLOOP_NONBLOCK);
		testlib_pause_ms(1);
	}
}

/* What fd received while the loop turned for ms, NUL-terminated. */
static char *
sub_read(int fd, long ms)
{
	double end = testlib_now() + (double)ms / 1000;
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	while (testlib_now() < end) {
		event_base_loop(sbase, EVLOOP_NONBLOCK);
		while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
			len += (size_t)n;
			if (cap - len < 4096)
				ck_assert_ptr_nonnull(buf = realloc(buf,
				    cap *= 2));
		}
		testlib_pause_ms(1);
	}
	buf[len] = '\0';
	return buf;
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

/* Publish a url_done-like line of kind for job, if wanted. */
static void
publish(const char *job, enum feed_kind kind, const char *tag)
{
	uint64_t seq = control_event_seq(sctl, job, kind);

	if (seq != 0)
		control_publish(sctl, job, kind, json_pack("{s:i,s:s,s:I,s:s,"
		    "s:s}", "proto", 1, "event", "test", "seq", (json_int_t)seq,
		    "job", job, "tag", tag));
}

START_TEST(test_index)
{
	int a, b, c;
	char *out;

	/* nobody: nothing is wanted, but every event is numbered */
	ck_assert_uint_eq(control_event_seq(sctl, "j", FEED_K_URL_DONE), 0);
	ck_assert_uint_eq(control_event_seq(sctl, "j", FEED_K_QUEUED), 0);
	ck_assert(!control_wants(sctl, "j", FEED_K_PROGRESS));
	ck_assert(!control_waiting(sctl));

	a = sub_client("events j\nwait j\n", 0);
	b = sub_client("wait k\n", 0);
	sub_until("subscribers", 2);
	out = sub_read(a, 50);
	ck_assert_uint_eq(count(out, "\"event\":\"job\""), 2);
	free(out);
	ck_assert(control_wants(sctl, "j", FEED_K_URL_DONE));
	ck_assert(control_wants(sctl, "j", FEED_K_PROGRESS));
	ck_assert(!control_wants(sctl, "x", FEED_K_URL_DONE));
	ck_assert(!control_wants(sctl, "k", FEED_K_URL_DONE));
	ck_assert(!control_wants(sctl, "k", FEED_K_QUEUED));
	ck_assert(control_wants(sctl, "k", FEED_K_CLAIMED));
	ck_assert(control_wants(sctl, "k", FEED_K_PROGRESS));
	ck_assert(control_wants(sctl, "k", FEED_K_JOB_DONE));
	ck_assert(control_waiting(sctl));

	/* a rename carries the subscriptions */
	control_rename(sctl, "k", "k.1");
	ck_assert(!control_wants(sctl, "k", FEED_K_CLAIMED));
	ck_assert(control_wants(sctl, "k.1", FEED_K_CLAIMED));
	publish("k.1", FEED_K_CLAIMED, "moved");
	out = sub_read(b, 50);
	ck_assert_ptr_nonnull(strstr(out, "\"moved\""));
	free(out);

	/* its connection gone, nobody wants k.1 */
	close(b);
	sub_until("subscribers", 1);
	ck_assert(!control_wants(sctl, "k.1", FEED_K_CLAIMED));

	/* `events` wants every published kind of every job, never progress */
	c = sub_client("events\n", 0);
	sub_until("subscribers", 2);
	out = sub_read(c, 50);
	/* the two events numbered before, and the rename's */
	ck_assert_ptr_nonnull(strstr(out, "\"event\":\"subscribed\","
	    "\"seq\":3"));
	free(out);
	ck_assert(control_wants(sctl, "x", FEED_K_URL_DONE));
	ck_assert(!control_wants(sctl, "x", FEED_K_PROGRESS));

	/* a client holding three subscriptions to j gets one copy */
	ck_assert_int_eq(write(c, "events j\n", 9), 9);
	free(sub_read(c, 20));  /* its snapshot */
	publish("j", FEED_K_URL_DONE, "once");
	publish("j", FEED_K_PROGRESS, "progress");
	out = sub_read(a, 50);
	ck_assert_uint_eq(count(out, "\"once\""), 1);
	ck_assert_uint_eq(count(out, "\"progress\""), 1);
	free(out);
	out = sub_read(c, 50);
	ck_assert_uint_eq(count(out, "\"once\""), 1);
	ck_assert_uint_eq(count(out, "\"progress\""), 0);
	free(out);
	close(a);
	close(c);
	sub_until("subscribers", 0);
	ck_assert(!control_waiting(sctl));
	ck_assert(!control_wants(sctl, "j", FEED_K_URL_DONE));
	ck_assert(!control_wants(sctl, "x", FEED_K_URL_DONE));
}
END_TEST

START_TEST(test_limit)
{
	char req[CONTROL_SUBS_MAX * 16 + 64], *p = req, *out;
	int fd, i;

	for (i = 0; i < CONTROL_SUBS_MAX + 1; i++)
		p += sprintf(p, "wait j%d\n", i);
	fd = sub_client(req, 0);
	out = sub_read(fd, 300);
	ck_assert_uint_eq(count(out, "\"event\":\"job\""), CONTROL_SUBS_MAX);
	ck_assert_uint_eq(count(out, "\"error\":\"wait: at most 256 job "
	    "subscriptions"), 1);
	free(out);
	close(fd);
}
END_TEST

/*
 * A subscriber that does not read: past CONTROL_EVENTS_MAX its events are
 * counted, not queued; once it read its output, a `missed` line with that
 * count comes, before the next event.
 */
START_TEST(test_bound)
{
	char pad[1001], *out, want[64];
	long missed;
	int fd, i;

	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	fd = sub_client("events\n", 4096);
	sub_until("subscribers", 1);
	for (i = 0; i < 2 * CONTROL_EVENTS_MAX / 1000; i++) {
		publish("j", FEED_K_URL_DONE, pad);
		event_base_loop(sbase, EVLOOP_NONBLOCK);
	}
	ck_assert_int_gt(missed = sub_stat("events_missed"), 0);
	ck_assert_int_eq(sub_stat("subscribers_dropped"), 0);
	out = sub_read(fd, 300);
	snprintf(want, sizeof(want), "\"event\":\"missed\",\"count\":%ld,"
	    "\"dropped\":false}\n", missed);
	/* the last line: said as the output drained, no event needed */
	ck_assert_ptr_nonnull(strstr(out, want));
	ck_assert_str_eq(strstr(out, want), want);
	free(out);
	publish("j", FEED_K_URL_DONE, "after");
	out = sub_read(fd, 50);
	ck_assert_ptr_null(strstr(out, "\"missed\""));
	ck_assert_ptr_nonnull(strstr(out, "\"after\""));
	free(out);
	close(fd);
}
END_TEST

static Suite *
control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("eof");

	tcase_add_loop_test(tc, test_eof_keeps_the_replies, 0,
	    sizeof(eof_cases) / sizeof(eof_cases[0]));
	suite_add_tcase(s, tc);
	tc = tcase_create("subscriptions");
	tcase_add_checked_fixture(tc, sub_setup, sub_teardown);
	tcase_add_test(tc, test_index);
	tcase_add_test(tc, test_limit);
	tcase_add_test(tc, test_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);       /* as fetchd does */
	return testlib_run(control_suite()) == 0 ? EXIT_SUCCESS :
	    EXIT_FAILURE;
}
