/*
 * fuzz_control.c: the control socket as a client drives it. A struct
 * control listens on a Unix socket in a temporary directory, made once per
 * process, on its own event_base, with stub hooks in place of the daemon's
 * (small stats and jobs objects; pause, cancel and reload counted). Each
 * input is one connection: the bytes are written as a client sends them
 * (any number of lines, partial, oversized, with NULs or CRs), the client's
 * side is shut down, and the loop runs until the daemon closes the
 * connection. So every input goes through control.c's accept, credentials,
 * input bounds, line splitting (read_cb, and event_cb for a last line
 * without '\n'), client_request(), the command table and the close.
 *
 * What comes back is checked: whole lines only, each a JSON object with
 * "proto": 1, and in kind and number the replies that proto.h's rules
 * give for those lines, worked out here on the side (an error for an
 * unknown command, a bad argument count, a NUL or an oversized request,
 * which also ends the connection; one reply per request otherwise; a blank
 * line asks nothing; `watch` answers with stats, then the input is
 * ignored and only stats come). Nothing queued is lost at the close. The
 * hooks must be called once per request that asks for them.
 * Once this side closes, the daemon must let go of the client at once,
 * without waiting for a timer: the base is back to its listening event.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "control.h"
#include "fuzz.h"
#include "log.h"
#include "proto.h"
#include "spool.h"

#define DEADLINE 5              /* s for a connection to be closed */

static struct event_base *base;
static struct control *ctl;
static char dir[256], path[512];
static int baseline;            /* events added while only listening */

static struct {
	unsigned pause, cancel, reload;
	int paused;
} calls;

/*
 * The daemon's hooks, as stubs.
 */
static json_t *
hook_stats(void *arg)
{
	return json_pack("{s:s,s:i,s:{s:i,s:i}}", "model", "threads",
	    "uptime_s", 1, "jobs", "active", 0, "queued", 0);
}

static json_t *
hook_jobs(void *arg)
{
	return json_pack("{s:[{s:s}]}", "jobs", "name", "J");
}

static void
hook_pause(void *arg, int paused)
{
	calls.pause++;
	calls.paused = paused;
}

static int
hook_paused(void *arg)
{
	return calls.paused;
}

/* Only a spool name can be a job; a word from the request is one word. */
static int
hook_cancel(void *arg, const char *job)
{
	calls.cancel++;
	if (job[0] == '\0' || strlen(job) > PROTO_LINE_MAX ||
	    strpbrk(job, " \t\n") != NULL)
		abort();
	return spool_name_valid(job) && job[0] != 'x' ? 0 : -1;
}

static int
hook_reload(void *arg, json_t *restart, char *err, size_t errlen)
{
	if (++calls.reload % 2 == 0) {
		snprintf(err, errlen, "fetchd.conf:3: model: not one of "
		    "threads, event, process");
		return -1;
	}
	return json_array_append_new(restart, json_string("workers.count"));
}

/* No job is known: every snapshot says so, and there is no detail. */
static json_t *
hook_job_snapshot(void *arg, const char *job)
{
	return json_pack("{s:s,s:s,s:s}", "event", "job", "job", job,
	    "state", "unknown");
}

static json_t *
hook_job_detail(void *arg, const char *job)
{
	return json_null();
}

static const struct control_hooks hooks = {
	.stats = hook_stats,
	.jobs = hook_jobs,
	.pause = hook_pause,
	.paused = hook_paused,
	.cancel = hook_cancel,
	.reload = hook_reload,
	.job_snapshot = hook_job_snapshot,
	.job_detail = hook_job_detail,
};

static void
cleanup(void)
{
	control_free(ctl);
	event_base_free(base);
	(void)rmdir(dir);
}

static void
setup(void)
{
	char err[512];
	const char *tmp = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";

	log_init("fuzz_control", LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);       /* as fetchd does */
	snprintf(dir, sizeof(dir), "%s/fuzz-control.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL || (base = event_base_new()) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/sock", dir);
	if ((ctl = control_new(base, path, 0600, &hooks, NULL, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_control: %s\n", err);
		abort();
	}
	baseline = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
	atexit(cleanup);
}

/*
 * The replies expected, one letter each: e an error, p pong, s stats,
 * j jobs, u paused, c cancel (cancelled, or an error: no such job),
 * r reload (reloaded, or an error).
 */
struct expect {
	char *kinds;
	size_t n;
	int watching;           /* replies from then on are stats, any number */
	int closed;             /* the daemon ends the connection */
	unsigned pause, cancel, reload;
};

static int
split(char *s, char **argv)
{
	int n = 0;

	for (s = strtok(s, " \t"); s != NULL; s = strtok(NULL, " \t"))
		if (n++ < PROTO_WORDS_MAX + 1)
			argv[n - 1] = s;
	return n;
}

static void
expect_cmd(struct expect *x, int argc, char **argv)
{
	const struct proto_cmd *cmd = proto_cmd_find(argv[0]);
	long ms;

	if (cmd == NULL || argc - 1 < cmd->min_args ||
	    argc - 1 > cmd->max_args) {
		x->kinds[x->n++] = 'e';
		return;
	}
	switch (cmd->id) {
	case PROTO_CMD_PING:
		x->kinds[x->n++] = 'p';
		break;
	case PROTO_CMD_STATS:
		x->kinds[x->n++] = 's';
		break;
	case PROTO_CMD_JOBS:
		/* one job: hook_job_detail knows none, so an error */
		x->kinds[x->n++] = argc == 1 ? 'j' : 'e';
		break;
	case PROTO_CMD_EVENTS:
	case PROTO_CMD_WAIT:
		/* "subscribed", or the job's snapshot; an error for a name
		 * refused or a subscription too many */
		x->kinds[x->n++] = 'v';
		break;
	case PROTO_CMD_WATCH:
		if (argc == 2 && proto_watch_ms(argv[1], &ms) == -1)
			x->kinds[x->n++] = 'e';
		else {
			x->kinds[x->n++] = 's';
			x->watching = 1;
		}
		break;
	case PROTO_CMD_PAUSE:
	case PROTO_CMD_RESUME:
		x->kinds[x->n++] = 'u';
		x->pause++;
		break;
	case PROTO_CMD_CANCEL:
		x->kinds[x->n++] = 'c';
		x->cancel++;
		break;
	case PROTO_CMD_RELOAD:
		x->kinds[x->n++] = 'r';
		x->reload++;
		break;
	default:
		abort();        /* a command this model does not know */
	}
}

/* One request line of n bytes, without its '\n'. */
static void
expect_line(struct expect *x, const char *p, size_t n)
{
	char line[PROTO_LINE_MAX + 1], *argv[PROTO_WORDS_MAX + 1];
	int argc;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n > PROTO_LINE_MAX || memchr(p, '\0', n) != NULL) {
		x->kinds[x->n++] = 'e';
		x->closed = 1;
		return;
	}
	memcpy(line, p, n);
	line[n] = '\0';
	if ((argc = split(line, argv)) == 0)
		return;
	if (argc > PROTO_WORDS_MAX)
		x->kinds[x->n++] = 'e';
	else
		expect_cmd(x, argc, argv);
}

/* Every line, then what is left when the client shuts its side. */
static int
expect_all(struct expect *x, const char *p, size_t size)
{
	const char *end = p + size, *nl;
	size_t lines = 0;

	memset(x, 0, sizeof(*x));
	for (nl = p; (nl = memchr(nl, '\n', (size_t)(end - nl))) != NULL; nl++)
		lines++;
	if ((x->kinds = malloc(lines + 2)) == NULL)
		return -1;
	while (!x->closed && !x->watching &&
	    (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		expect_line(x, p, (size_t)(nl - p));
		p = nl + 1;
	}
	if (x->closed || x->watching || p == end)
		return 0;
	if ((size_t)(end - p) > PROTO_LINE_MAX) {
		x->kinds[x->n++] = 'e';
		x->closed = 1;
	} else
		expect_line(x, p, (size_t)(end - p));
	return 0;
}

/* The kind of one reply line: the letter expect uses, or 0. */
static char
reply_kind(const char *line, size_t len)
{
	json_t *o;
	char k = 0;

	if ((o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return 0;
	if (json_is_object(o) && json_integer_value(json_object_get(o,
	    PROTO_KEY_PROTO)) == PROTO_VERSION) {
		if (json_is_string(json_object_get(o, PROTO_KEY_ERROR)))
			k = 'e';
		else if (json_is_string(json_object_get(o, "event")))
			k = 'v';
		else if (json_is_true(json_object_get(o, PROTO_KEY_PONG)))
			k = 'p';
		else if (json_object_get(o, "model") != NULL)
			k = 's';
		else if (json_is_array(json_object_get(o, "jobs")))
			k = 'j';
		else if (json_is_boolean(json_object_get(o,
		    PROTO_KEY_PAUSED)))
			k = 'u';
		else if (json_is_string(json_object_get(o,
		    PROTO_KEY_CANCELLED)))
			k = 'c';
		else if (json_is_true(json_object_get(o, PROTO_KEY_RELOADED)))
			k = 'r';
	}
	json_decref(o);
	return k;
}

static int
kind_fits(char want, char got)
{
	return want == got ||
	    ((want == 'c' || want == 'r' || want == 'v') && got == 'e');
}

static void
fail(const struct expect *x, size_t got, const char *why)
{
	fprintf(stderr, "fuzz_control: %s (reply %zu; %zu expected: %.*s%s)\n",
	    why, got, x->n, (int)(x->n < 64 ? x->n : 64), x->kinds,
	    x->watching ? " then stats" : "");
	abort();
}

/* The replies against what the requests ask for. */
static void
check_replies(const struct expect *x, const char *buf, size_t len)
{
	const char *p, *end, *nl;
	size_t i = 0;
	char k;

	if (buf == NULL)
		buf = "";
	p = buf;
	end = buf + len;
	for (; (nl = memchr(p, '\n', (size_t)(end - p))) != NULL; p = nl + 1) {
		if ((k = reply_kind(p, (size_t)(nl - p))) == 0)
			fail(x, i, "not a reply");
		if (i < x->n) {
			if (!kind_fits(x->kinds[i++], k))
				fail(x, i - 1, "not the reply asked for");
		} else if (!x->watching || k != 's')
			fail(x, i, "a reply nothing asked for");
	}
	if (p != end)
		fail(x, i, "a torn reply");
	if (i != x->n)
		fail(x, i, "replies missing");
	if (calls.pause != x->pause || calls.cancel != x->cancel ||
	    calls.reload != x->reload)
		fail(x, i, "hooks not called once per request");
}

/*
 * The client: one connection, written and read on the same loop.
 */
struct conn {
	int fd;
	const char *data;
	size_t size, sent;
	char *in;
	size_t len, cap;
	struct event *rd, *wr;
};

static void
conn_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	if (c->sent < c->size) {
		n = send(fd, c->data + c->sent, c->size - c->sent,
		    MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		/* The daemon may close before it has read everything. */
		c->sent = n == -1 ? c->size : c->sent + (size_t)n;
		if (c->sent < c->size)
			return;
	}
	(void)shutdown(fd, SHUT_WR);
	event_del(c->wr);
}

static void
conn_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;
	char *p;

	if (what & EV_TIMEOUT) {
		fprintf(stderr, "fuzz_control: the daemon kept the connection "
		    "open for %d s\n", DEADLINE);
		abort();
	}
	if (c->cap - c->len < 4096) {
		if ((p = realloc(c->in, c->cap * 2 + 4096)) == NULL)
			abort();
		c->in = p;
		c->cap = c->cap * 2 + 4096;
	}
	n = recv(fd, c->in + c->len, c->cap - c->len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		c->len += (size_t)n;
		return;
	}
	event_base_loopbreak(base);     /* closed (or reset) */
}

/* Run the loop until the client is gone from the daemon too. */
static void
drain(void)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED) ==
		    baseline && event_base_get_num_events(base,
		    EVENT_BASE_COUNT_ACTIVE) == 0)
			return;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	fprintf(stderr, "fuzz_control: a client outlives its connection\n");
	abort();
}

static void
converse(struct conn *c)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval deadline = { DEADLINE, 0 };

	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return;
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(c->fd);
		return;
	}
	c->rd = event_new(base, c->fd, EV_READ | EV_PERSIST, conn_read, c);
	c->wr = event_new(base, c->fd, EV_WRITE | EV_PERSIST, conn_write, c);
	if (c->rd != NULL && c->wr != NULL &&
	    event_add(c->rd, &deadline) == 0 && event_add(c->wr, NULL) == 0)
		event_base_dispatch(base);
	if (c->rd != NULL)
		event_free(c->rd);
	if (c->wr != NULL)
		event_free(c->wr);
	close(c->fd);
	drain();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c = { .data = (const char *)data, .size = size };
	struct expect x;

	if (base == NULL)
		setup();
	if (expect_all(&x, c.data, size) == -1)
		return 0;
	memset(&calls, 0, sizeof(calls));
	converse(&c);
	check_replies(&x, c.in, c.len);
	free(c.in);
	free(x.kinds);
	return 0;
}
