/*
 * check_control.c: the daemon's side of the control socket (control.c)
 * through its public functions: a struct control on its own event_base
 * with stub hooks, and a client in a child process that sends its requests,
 * shuts its side and reads everything until the daemon closes. What the
 * protocol promises a client that stops sending: every request it sent is
 * answered, in whole lines, before the close; more than a socket buffer of
 * replies included. (The real daemon is driven by e2e_control.py.)
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

static const struct control_hooks hooks = {
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

static Suite *
control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("eof");

	tcase_add_loop_test(tc, test_eof_keeps_the_replies, 0,
	    sizeof(eof_cases) / sizeof(eof_cases[0]));
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
