/*
 * control.c: the control socket. A Unix stream socket; each client sends
 * request lines and gets one JSON object per line back (proto.h). The
 * commands' effects belong to the daemon (control_hooks); this file owns
 * the sockets and keeps a misbehaving client from hurting the daemon:
 *
 *  - peer credentials: root, the daemon's uid, or a member of the socket
 *    file's group (the kernel's own check on the file mode comes first);
 *  - a request line is at most PROTO_LINE_MAX bytes: the input buffer
 *    stops there, and a longer line is answered with an error and closed;
 *  - a client without a complete request for CONTROL_IDLE_TIMEOUT seconds
 *    is closed (watchers and subscribers are exempt while connected), one
 *    that does not read its replies for CONTROL_WRITE_TIMEOUT seconds too,
 *    and a watcher whose queued output passes CONTROL_OUTPUT_MAX is
 *    dropped;
 *  - a subscriber's queued output is bounded by CONTROL_EVENTS_MAX: beyond
 *    it events are counted, not queued, and it is told how many it missed;
 *    one that stays beyond it (or writes nothing) for CONTROL_WRITE_TIMEOUT
 *    seconds is told it is dropped and closed. A subscriber never slows
 *    the daemon: events are built only when one is wanted (an index of the
 *    subscribed names answers that) and serialised once for all;
 *  - at most CONTROL_CLIENTS_MAX clients; more are told so and closed;
 *  - writes never raise SIGPIPE (the daemon ignores it) and every path
 *    that ends a client frees it, so a client hanging up costs nothing.
 *
 * Everything runs on the main loop between transfers' completions; a
 * request only reads counters, so serving it never stalls a transfer.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "control.h"
#include "feed.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define ACCEPT_BURST 64         /* connections taken per wakeup */
#define CONTROL_LINGER 2        /* s to wait for a client to close after
                                   our last reply */
#define WATCH_BUCKETS 256       /* hash chains of subscribed job names */

struct watch;

/* One `events JOB` or `wait JOB` of a client. */
struct sub {
	TAILQ_ENTRY(sub) by_watch;      /* the job's subscriptions */
	TAILQ_ENTRY(sub) by_client;     /* the client's */
	struct watch *w;
	struct client *c;
	int wait;                       /* `wait JOB`, else `events JOB` */
};
TAILQ_HEAD(sub_list, sub);

/* A job name subscribed to, in the control's hash of them. */
struct watch {
	struct watch *next;             /* its hash chain */
	struct sub_list subs;
	size_t nevents, nwait;          /* subs of each kind */
	char name[];
};

struct client {
	TAILQ_ENTRY(client) entry;
	struct control *ctl;
	struct bufferevent *bev;
	struct event *watch;            /* the interval timer of `watch` */
	int closing;                    /* close once the output is out */
	int eof;                        /* the client shut its side */
	int shut;                       /* we shut ours */
	uid_t uid;
	pid_t pid;

	/* Subscriptions. */
	int subscriber;                 /* counted in ctl->nsubscribers */
	int all;                        /* `events` */
	struct sub_list subs;
	size_t nsubs;
	uint64_t mark;                  /* the last publish it got */
	uint64_t missed;                /* events lost since the last `missed` */
	double over_since;              /* monotonic s its output passed
	                                   CONTROL_EVENTS_MAX; 0: it is not */
};
TAILQ_HEAD(client_list, client);

struct control {
	struct event_base *base;
	char *path;
	dev_t dev;                      /* the socket file we made */
	ino_t ino;
	gid_t gid;                      /* its group */
	int fd;
	struct event *ev_accept, *ev_resume;
	struct client_list clients;
	size_t nclients;
	struct control_hooks hooks;
	void *arg;

	/* Subscriptions: who wants what, without a walk over the clients. */
	struct watch *watches[WATCH_BUCKETS];
	size_t nwatches;                /* job names subscribed to */
	size_t nwaits;                  /* `wait JOB` subscriptions */
	size_t nall;                    /* clients subscribed to `events` */
	size_t nsubscribers;
	uint64_t seq;                   /* the last event numbered */
	uint64_t mark;                  /* publishes so far */
	uint64_t dropped, missed;       /* since start */
};

static void client_free(struct client *);
static void client_close_soon(struct client *);

/*
 * Replies.
 */
static int
dump_cb(const char *buf, size_t size, void *arg)
{
	return evbuffer_add(arg, buf, size);
}

/* Queue obj (stolen) with "proto" first, as one line. */
static void
client_send(struct client *c, json_t *obj)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	json_t *reply;

	if (obj == NULL)
		obj = proto_error("out of memory");
	if ((reply = proto_reply()) == NULL || obj == NULL ||
	    json_object_update(reply, obj) == -1 ||
	    json_dump_callback(reply, dump_cb, out,
	    JSON_COMPACT | JSON_REAL_PRECISION(15)) == -1 ||
	    evbuffer_add(out, "\n", 1) == -1) {
		log_warnx("control: cannot queue a reply; closing the client");
		client_close_soon(c);
	}
	json_decref(reply);
	json_decref(obj);
}

static void
client_error(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
client_error(struct client *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	client_send(c, proto_error(msg));
}

/*
 * Send the rest, then close. A lingering close: once the output is out,
 * write_cb shuts our side down and what the client still sends is read and
 * dropped until it closes (or CONTROL_LINGER seconds), so the client reads
 * our last reply and then an end of file rather than a reset. Never frees
 * c here, so callers may still look at it.
 */
static void
client_close_soon(struct client *c)
{
	struct timeval rtv = { CONTROL_LINGER, 0 };
	struct timeval wtv = { CONTROL_WRITE_TIMEOUT, 0 };

	if (c->closing)
		return;
	c->closing = 1;
	if (c->watch != NULL)
		event_del(c->watch);
	bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(c->bev, &rtv, &wtv);
	if (!c->eof)
		bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		bufferevent_trigger(c->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Subscriptions. The job names subscribed to are a hash of watches, each
 * with its subscriptions; `events` subscribers are counted. Asking whether
 * anyone wants an event is one count or one lookup, so the daemon can ask
 * for each of thousands of URLs a second.
 */
static unsigned
watch_hash(const char *name)
{
	unsigned h = 2166136261u;       /* FNV-1a */

	for (; *name != '\0'; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h % WATCH_BUCKETS;
}

static struct watch *
watch_find(const struct control *ctl, const char *name)
{
	struct watch *w;

	for (w = ctl->watches[watch_hash(name)]; w != NULL; w = w->next)
		if (strcmp(w->name, name) == 0)
			return w;
	return NULL;
}

/* The watch of name, made when missing; NULL when out of memory. */
static struct watch *
watch_get(struct control *ctl, const char *name)
{
	struct watch *w;
	size_t n = strlen(name);
	unsigned h;

	if ((w = watch_find(ctl, name)) != NULL)
		return w;
	if ((w = calloc(1, sizeof(*w) + n + 1)) == NULL)
		return NULL;
	memcpy(w->name, name, n + 1);
	TAILQ_INIT(&w->subs);
	h = watch_hash(name);
	w->next = ctl->watches[h];
	ctl->watches[h] = w;
	ctl->nwatches++;
	return w;
}

/* Forget w once nobody subscribes to it. */
static void
watch_release(struct control *ctl, struct watch *w)
{
	struct watch **pp;

	if (!TAILQ_EMPTY(&w->subs))
		return;
	for (pp = &ctl->watches[watch_hash(w->name)]; *pp != w;
	    pp = &(*pp)->next)
		;
	*pp = w->next;
	ctl->nwatches--;
	free(w);
}

static void
sub_attach(struct sub *s, struct watch *w)
{
	s->w = w;
	TAILQ_INSERT_TAIL(&w->subs, s, by_watch);
	if (s->wait)
		w->nwait++;
	else
		w->nevents++;
}

static void
sub_detach(struct sub *s)
{
	TAILQ_REMOVE(&s->w->subs, s, by_watch);
	if (s->wait)
		s->w->nwait--;
	else
		s->w->nevents--;
	s->w = NULL;
}

int
control_waiting(const struct control *ctl)
{
	return ctl != NULL && ctl->nwaits > 0;
}

/* Which kinds a job subscription gets: `wait` no url_done, no queued. */
static int
sub_wants(const struct sub *s, enum feed_kind kind)
{
	if (s->wait)
		return kind == FEED_K_CLAIMED || kind == FEED_K_PROGRESS ||
		    kind == FEED_K_JOB_DONE;
	return kind != FEED_K_PROGRESS;
}

/* Every subscription of c ends: on each path that frees a client. */
static void
client_unsubscribe(struct client *c)
{
	struct control *ctl = c->ctl;
	struct watch *w;
	struct sub *s;

	while ((s = TAILQ_FIRST(&c->subs)) != NULL) {
		TAILQ_REMOVE(&c->subs, s, by_client);
		if (s->wait)
			ctl->nwaits--;
		w = s->w;
		sub_detach(s);
		watch_release(ctl, w);
		free(s);
	}
	c->nsubs = 0;
	if (c->all)
		ctl->nall--;
	if (c->subscriber)
		ctl->nsubscribers--;
	c->all = c->subscriber = 0;
}

/*
 * c subscribes: from now on it is idle by design, only the write timeout
 * applies; and write_cb runs once its output is down to half the bound,
 * to tell it what it missed.
 */
static void
client_subscribed(struct client *c)
{
	struct timeval wtv = { CONTROL_WRITE_TIMEOUT, 0 };

	if (c->subscriber)
		return;
	c->subscriber = 1;
	c->ctl->nsubscribers++;
	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONTROL_EVENTS_MAX / 2, 0);
}

/* Subscribe c to job (`wait JOB` or `events JOB`). 0, or -1 (said). */
static int
sub_add(struct client *c, const char *job, int wait)
{
	const char *cmd = wait ? "wait" : "events";
	struct watch *w;
	struct sub *s;

	if (c->nsubs >= CONTROL_SUBS_MAX) {
		client_error(c, "%s: at most %d job subscriptions on one "
		    "connection", cmd, CONTROL_SUBS_MAX);
		return -1;
	}
	if (strlen(job) > CONTROL_JOB_MAX) {
		client_error(c, "%s: a job name is at most %d bytes", cmd,
		    CONTROL_JOB_MAX);
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (w = watch_get(c->ctl, job)) == NULL) {
		free(s);
		client_error(c, "out of memory");
		return -1;
	}
	s->c = c;
	s->wait = wait != 0;
	c->ctl->nwaits += s->wait;
	sub_attach(s, w);
	TAILQ_INSERT_TAIL(&c->subs, s, by_client);
	c->nsubs++;
	client_subscribed(c);
	return 0;
}

/*
 * A subscriber that does not read: its last line says so ("dropped":
 * true, with what it missed), then the lingering close. Writing is on
 * again: a write timeout stopped it.
 */
static void
sub_drop(struct client *c)
{
	struct control *ctl = c->ctl;

	log_info("control: pid %ld does not read its events (%llu missed); "
	    "dropping it", (long)c->pid, (unsigned long long)c->missed);
	ctl->dropped++;
	client_send(c, feed_missed(c->missed, 1));
	c->missed = 0;
	client_close_soon(c);
	bufferevent_enable(c->bev, EV_WRITE);
}

/*
 * One event line (n bytes with its newline) for c, within the bound of
 * its output: beyond CONTROL_EVENTS_MAX the event is counted as missed
 * (and after CONTROL_WRITE_TIMEOUT s there the subscriber is dropped);
 * once missed, events are missed until the output is down to half, when
 * write_cb (or the next event) queues a `missed` line.
 */
static void
sub_queue(struct client *c, const char *line, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = evbuffer_get_length(out);
	double now;

	if (len <= CONTROL_EVENTS_MAX)
		c->over_since = 0;
	if (len > CONTROL_EVENTS_MAX ||
	    (c->missed > 0 && len > CONTROL_EVENTS_MAX / 2)) {
		c->missed++;
		c->ctl->missed++;
		if (len <= CONTROL_EVENTS_MAX)
			return;
		now = util_mono();
		if (c->over_since == 0)
			c->over_since = now;
		else if (now - c->over_since >= CONTROL_WRITE_TIMEOUT)
			sub_drop(c);
		return;
	}
	if (c->missed > 0) {
		client_send(c, feed_missed(c->missed, 0));
		c->missed = 0;
	}
	if (evbuffer_add(out, line, n) == -1) {
		log_warnx("control: cannot queue an event; closing the client");
		client_close_soon(c);
	}
}

/* line for c, unless it has it from this publish already (a client may
 * hold `events` and `events J` and `wait J` together). */
static void
deliver(struct client *c, const char *line, size_t n)
{
	if (c->closing || c->mark == c->ctl->mark)
		return;
	c->mark = c->ctl->mark;
	sub_queue(c, line, n);
}

uint64_t
control_event_seq(struct control *ctl, const char *job, enum feed_kind kind)
{
	if (ctl == NULL)
		return 0;
	ctl->seq++;
	return control_wants(ctl, job, kind) ? ctl->seq : 0;
}

int
control_wants(const struct control *ctl, const char *job,
    enum feed_kind kind)
{
	const struct watch *w;

	if (ctl == NULL)
		return 0;
	if (kind != FEED_K_PROGRESS && ctl->nall > 0)
		return 1;
	if (ctl->nwatches == 0 || (w = watch_find(ctl, job)) == NULL)
		return 0;
	if (kind == FEED_K_QUEUED || kind == FEED_K_URL_DONE)
		return w->nevents > 0;
	if (kind == FEED_K_PROGRESS)
		return w->nwait > 0;
	return 1;
}

void
control_publish(struct control *ctl, const char *job, enum feed_kind kind,
    json_t *ev)
{
	struct client *c;
	struct watch *w;
	struct sub *s;
	char *line, *p;
	size_t n;

	if (ctl == NULL || ev == NULL) {
		json_decref(ev);
		return;
	}
	line = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(ev);
	if (line == NULL || (p = realloc(line, strlen(line) + 2)) == NULL) {
		free(line);
		log_warnx("control: out of memory; an event is not sent");
		return;
	}
	line = p;
	n = strlen(line);
	line[n++] = '\n';
	line[n] = '\0';
	ctl->mark++;
	if (kind != FEED_K_PROGRESS && ctl->nall > 0)
		TAILQ_FOREACH(c, &ctl->clients, entry)
			if (c->all)
				deliver(c, line, n);
	if ((w = watch_find(ctl, job)) != NULL)
		TAILQ_FOREACH(s, &w->subs, by_watch)
			if (sub_wants(s, kind))
				deliver(s->c, line, n);
	free(line);
}

void
control_rename(struct control *ctl, const char *from, const char *to)
{
	struct watch *w, *nw;
	struct sub *s;

	if (ctl == NULL || strcmp(from, to) == 0 ||
	    (w = watch_find(ctl, from)) == NULL)
		return;
	if ((nw = watch_get(ctl, to)) == NULL) {
		log_warnx("control: out of memory; the subscriptions to %s do "
		    "not follow it to %s", from, to);
		return;
	}
	while ((s = TAILQ_FIRST(&w->subs)) != NULL) {
		sub_detach(s);
		sub_attach(s, nw);
	}
	watch_release(ctl, w);
}

json_t *
control_json(const struct control *ctl)
{
	return json_pack("{s:I,s:I,s:I,s:I}",
	    "clients", (json_int_t)(ctl != NULL ? ctl->nclients : 0),
	    "subscribers", (json_int_t)(ctl != NULL ? ctl->nsubscribers : 0),
	    "subscribers_dropped", (json_int_t)(ctl != NULL ? ctl->dropped : 0),
	    "events_missed", (json_int_t)(ctl != NULL ? ctl->missed : 0));
}

/*
 * Commands.
 */
static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;

	if (c->closing)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) >
	    CONTROL_OUTPUT_MAX) {
		log_debug("control: pid %ld does not read its watch stream; "
		    "dropping it", (long)c->pid);
		client_free(c);
		return;
	}
	client_send(c, c->ctl->hooks.stats(c->ctl->arg));
}

static void
cmd_ping(struct client *c, int argc, char **argv)
{
	client_send(c, json_pack("{s:b,s:s,s:I}", PROTO_KEY_PONG, 1,
	    PROTO_KEY_VERSION, PACKAGE_VERSION, PROTO_KEY_PID,
	    (json_int_t)getpid()));
}

static void
cmd_stats(struct client *c, int argc, char **argv)
{
	client_send(c, c->ctl->hooks.stats(c->ctl->arg));
}

static void
cmd_jobs(struct client *c, int argc, char **argv)
{
	struct control *ctl = c->ctl;
	char word[64];
	json_t *o;

	if (argc == 1) {
		client_send(c, ctl->hooks.jobs(ctl->arg));
		return;
	}
	if ((o = ctl->hooks.job_detail(ctl->arg, argv[1])) != NULL &&
	    json_is_null(o)) {
		json_decref(o);
		proto_printable(argv[1], strlen(argv[1]), word, sizeof(word));
		client_error(c, "no such job: %s", word);
		return;
	}
	client_send(c, o != NULL ? json_pack("{s:o}", PROTO_KEY_JOB, o) :
	    NULL);
}

/* `events`: everything, after a line with the last seq so far; `events
 * JOB`: one job's, after its snapshot. */
static void
cmd_events(struct client *c, int argc, char **argv)
{
	struct control *ctl = c->ctl;

	if (argc == 1) {
		if (!c->all)
			ctl->nall++;
		c->all = 1;
		client_subscribed(c);
		client_send(c, feed_subscribed(ctl->seq));
		return;
	}
	if (sub_add(c, argv[1], 0) == 0)
		client_send(c, ctl->hooks.job_snapshot(ctl->arg, argv[1]));
}

/* `wait JOB`: its snapshot, then its claim, progress and end. */
static void
cmd_wait(struct client *c, int argc, char **argv)
{
	struct control *ctl = c->ctl;

	if (sub_add(c, argv[1], 1) == 0)
		client_send(c, ctl->hooks.job_snapshot(ctl->arg, argv[1]));
}

static void
cmd_watch(struct client *c, int argc, char **argv)
{
	struct timeval wtv = { CONTROL_WRITE_TIMEOUT, 0 }, tv;
	long ms = PROTO_WATCH_DEFAULT_MS;

	if (argc == 2 && proto_watch_ms(argv[1], &ms) == -1) {
		client_error(c, "watch: the interval is %d to %d ms",
		    PROTO_WATCH_MIN_MS, PROTO_WATCH_MAX_MS);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	c->watch = event_new(c->ctl->base, -1, EV_PERSIST, watch_cb, c);
	if (c->watch == NULL || event_add(c->watch, &tv) == -1) {
		client_error(c, "out of memory");
		return;
	}
	/* A watcher is idle by design: only the write timeout applies. */
	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	client_send(c, c->ctl->hooks.stats(c->ctl->arg));
}

static void
set_paused(struct client *c, int paused)
{
	struct control *ctl = c->ctl;

	ctl->hooks.pause(ctl->arg, paused);
	client_send(c, json_pack("{s:b}", PROTO_KEY_PAUSED,
	    ctl->hooks.paused(ctl->arg)));
}

static void
cmd_pause(struct client *c, int argc, char **argv)
{
	set_paused(c, 1);
}

static void
cmd_resume(struct client *c, int argc, char **argv)
{
	set_paused(c, 0);
}

static void
cmd_cancel(struct client *c, int argc, char **argv)
{
	struct control *ctl = c->ctl;
	char word[64];

	if (ctl->hooks.cancel(ctl->arg, argv[1]) == -1) {
		proto_printable(argv[1], strlen(argv[1]), word, sizeof(word));
		client_error(c, "no such job: %s", word);
	} else
		client_send(c, json_pack("{s:s}", PROTO_KEY_CANCELLED,
		    argv[1]));
}

static void
cmd_reload(struct client *c, int argc, char **argv)
{
	struct control *ctl = c->ctl;
	char err[1024];
	json_t *restart;

	err[0] = '\0';
	if ((restart = json_array()) == NULL)
		client_error(c, "out of memory");
	else if (ctl->hooks.reload(ctl->arg, restart, err, sizeof(err)) == -1)
		client_error(c, "reload: %s", err);
	else
		client_send(c, json_pack("{s:b,s:O}", PROTO_KEY_RELOADED, 1,
		    PROTO_KEY_RESTART_NEEDED, restart));
	json_decref(restart);
}

/*
 * What each command of proto_cmds does, by id. A handler runs only once
 * the name is known and the number of arguments is within the row's
 * bounds; argv[0] is the name.
 */
static void (*const cmd_handlers[PROTO_CMD__COUNT])(struct client *, int,
    char **) = {
	[PROTO_CMD_PING] = cmd_ping,
	[PROTO_CMD_STATS] = cmd_stats,
	[PROTO_CMD_JOBS] = cmd_jobs,
	[PROTO_CMD_WATCH] = cmd_watch,
	[PROTO_CMD_EVENTS] = cmd_events,
	[PROTO_CMD_WAIT] = cmd_wait,
	[PROTO_CMD_PAUSE] = cmd_pause,
	[PROTO_CMD_RESUME] = cmd_resume,
	[PROTO_CMD_CANCEL] = cmd_cancel,
	[PROTO_CMD_RELOAD] = cmd_reload,
};

static void
cmd_run(struct client *c, int argc, char **argv)
{
	const struct proto_cmd *cmd;
	char word[64];

	proto_printable(argv[0], strlen(argv[0]), word, sizeof(word));
	if ((cmd = proto_cmd_find(argv[0])) == NULL)
		client_error(c, "unknown command: %s", word);
	else if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args)
		client_error(c, "%s: wrong number of arguments", word);
	else if (cmd_handlers[cmd->id] == NULL)
		fatalx("control: no handler for %s", cmd->name);
	else
		cmd_handlers[cmd->id](c, argc, argv);
}

static void
client_request(struct client *c, char *line, size_t n)
{
	char *argv[PROTO_WORDS_MAX];
	int argc;

	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (n > PROTO_LINE_MAX) {
		client_error(c, "request longer than %d bytes", PROTO_LINE_MAX);
		client_close_soon(c);
		return;
	}
	if (strlen(line) != n) {
		client_error(c, "request holds a NUL byte");
		client_close_soon(c);
		return;
	}
	if ((argc = proto_split(line, argv, PROTO_WORDS_MAX)) == -1) {
		client_error(c, "too many arguments");
		return;
	}
	if (argc == 0)
		return;         /* a blank line asks nothing */
	cmd_run(c, argc, argv);
}

/*
 * Client events.
 */
static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (!c->closing && c->watch == NULL &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		client_request(c, line, n);
		free(line);
	}
	if (c->closing)
		return;
	if (c->watch != NULL) {
		/* A watcher's further input is ignored. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!c->closing && evbuffer_get_length(in) > PROTO_LINE_MAX) {
		client_error(c, "request longer than %d bytes", PROTO_LINE_MAX);
		client_close_soon(c);
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (!c->closing) {
		/* A subscriber's output drained to half the bound: what it
		 * missed is said now, not only with the next event. */
		if (c->missed > 0 && evbuffer_get_length(
		    bufferevent_get_output(bev)) <= CONTROL_EVENTS_MAX / 2) {
			client_send(c, feed_missed(c->missed, 0));
			c->missed = 0;
		}
		return;
	}
	if (c->eof) {
		client_free(c);
		return;
	}
	if (!c->shut) {
		c->shut = 1;
		if (shutdown(bufferevent_getfd(bev), SHUT_WR) == -1) {
			client_free(c);
			return;
		}
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	if (what & BEV_EVENT_ERROR) {
		/* The client gone, or a write failed. */
		client_free(c);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->closing) {
		/* Lingering over, unless our last replies are still going
		 * out: write_cb closes once they are. */
		c->eof = 1;
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			client_free(c);
		return;
	}
	if (c->closing) {
		/* The client lingered too long, or did not read. */
		client_free(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		c->eof = 1;
		/* The client may have said its last word without a newline
		 * and shut down its side: still answer it, then close. A
		 * watcher's stream ends here, but what is queued for it (the
		 * replies to its earlier requests, whole lines) still goes
		 * out before the close. */
		if (c->watch == NULL && (n = evbuffer_get_length(in)) > 0 &&
		    n <= PROTO_LINE_MAX && (line = malloc(n + 1)) != NULL) {
			evbuffer_remove(in, line, n);
			line[n] = '\0';
			client_request(c, line, n);
			free(line);
		}
		client_close_soon(c);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
		client_error(c, "idle for %d s; closing", CONTROL_IDLE_TIMEOUT);
		client_close_soon(c);
		return;
	}
	/* A write timed out: the client does not read. A subscriber is
	 * told it is dropped first. */
	if (c->subscriber) {
		sub_drop(c);
		return;
	}
	client_free(c);
}

static void
client_free(struct client *c)
{
	struct control *ctl = c->ctl;

	log_debug("control: client pid %ld gone", (long)c->pid);
	client_unsubscribe(c);
	TAILQ_REMOVE(&ctl->clients, c, entry);
	ctl->nclients--;
	if (c->watch != NULL)
		event_free(c->watch);
	bufferevent_free(c->bev);
	free(c);
}

/*
 * Credentials.
 */
static int
peer_in_group(int fd, const struct ucred *cr, gid_t gid)
{
	gid_t stackgroups[64], *groups = stackgroups;
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096];
	int n, i, found = 0;
#ifdef SO_PEERGROUPS
	socklen_t len = sizeof(stackgroups);
	int rv;
#endif

	if (cr->gid == gid)
		return 1;
#ifdef SO_PEERGROUPS
	/* The peer's own supplementary groups, as the kernel knows them. */
	rv = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	if (rv == -1 && errno == ERANGE) {
		if ((groups = malloc(len)) == NULL)
			return 0;
		rv = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len);
	}
	if (rv == 0)
		for (i = 0; i < (int)(len / sizeof(gid_t)); i++)
			if (groups[i] == gid)
				found = 1;
	if (groups != stackgroups)
		free(groups);
	if (rv == 0 || errno != ENOPROTOOPT)
		return found;
#endif
	/* Older kernels: the groups the user database gives the peer's
	 * user. */
	if (getpwuid_r(cr->uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 ||
	    pwp == NULL)
		return 0;
	n = sizeof(stackgroups) / sizeof(stackgroups[0]);
	if (getgrouplist(pw.pw_name, pw.pw_gid, stackgroups, &n) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (stackgroups[i] == gid)
			found = 1;
	return found;
}

/* Tell a connection we will not serve why, without blocking, and close. */
static void
refuse(int fd, const char *msg)
{
	json_t *o;
	char *s;

	if ((o = proto_error(msg)) != NULL &&
	    (s = json_dumps(o, JSON_COMPACT)) != NULL) {
		(void)send(fd, s, strlen(s), MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(s);
	}
	json_decref(o);
	close(fd);
}

static void
client_new(struct control *ctl, int fd)
{
	struct timeval rtv = { CONTROL_IDLE_TIMEOUT, 0 };
	struct timeval wtv = { CONTROL_WRITE_TIMEOUT, 0 };
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct client *c;
	json_t *o;
	char msg[256];
	int ok;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		close(fd);
		return;
	}
	errno = 0;
	ok = cr.uid == 0 || cr.uid == geteuid() ||
	    peer_in_group(fd, &cr, ctl->gid);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		refuse(fd, "out of memory");
		return;
	}
	c->ctl = ctl;
	TAILQ_INIT(&c->subs);
	c->uid = cr.uid;
	c->pid = cr.pid;
	if ((c->bev = bufferevent_socket_new(ctl->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(c);
		refuse(fd, "out of memory");
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->clients, c, entry);
	ctl->nclients++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* Room for one request line and its "\r\n": no more is read until
	 * it is handled. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, PROTO_LINE_MAX + 2);
	bufferevent_set_timeouts(c->bev, &rtv, &wtv);
	if (!ok) {
		log_warnx("control: refused uid %ld (pid %ld): not root, the "
		    "daemon's user or a member of group %ld", (long)cr.uid,
		    (long)cr.pid, (long)ctl->gid);
		snprintf(msg, sizeof(msg), "permission denied: uid %ld is not "
		    "root, the daemon's user or a member of the socket's "
		    "group (gid %ld)", (long)cr.uid, (long)ctl->gid);
		if ((o = proto_error(msg)) != NULL)
			json_object_set_new(o, PROTO_KEY_DENIED, json_true());
		client_send(c, o);
		client_close_soon(c);
		return;
	}
	log_debug("control: client uid %ld pid %ld", (long)cr.uid,
	    (long)cr.pid);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;

	if (event_add(ctl->ev_accept, NULL) == -1)
		log_warnx("control: cannot listen again");
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	struct timeval tv = { 1, 0 };
	int i, cfd;

	for (i = 0; i < ACCEPT_BURST; i++) {
		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of descriptors or memory: pause accepting
			 * for a second rather than spin on the socket. */
			log_warn("control: accept");
			event_del(ctl->ev_accept);
			evtimer_add(ctl->ev_resume, &tv);
			return;
		}
		if (ctl->nclients >= CONTROL_CLIENTS_MAX) {
			log_debug("control: %d clients; refusing another",
			    CONTROL_CLIENTS_MAX);
			refuse(cfd, "too many clients; try again later");
			continue;
		}
		client_new(ctl, cfd);
	}
}

/*
 * The listening socket.
 */
static int
bind_socket(int fd, const struct sockaddr_un *sun, unsigned mode)
{
	mode_t old;
	int rv;

	/* The file is created with the mode asked for, never more open:
	 * no window between bind() and a chmod(). */
	old = umask(~mode & 0777);
	rv = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	umask(old);
	return rv;
}

/* 1 when someone accepts connections at sun, 0 when no one does. */
static int
socket_live(const struct sockaddr_un *sun)
{
	int fd, rv, saved;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return 1;       /* cannot tell: do not remove it */
	rv = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (rv == 0 || saved == EAGAIN)
		return 1;       /* alive (EAGAIN: its backlog is full) */
	return saved != ECONNREFUSED && saved != ENOENT;
}

/*
 * Bind fd to sun. A socket file left by a dead daemon is removed and bound
 * again; one a live daemon answers on, or anything that is not a socket,
 * is left alone. 0, or -1 with a message in err.
 */
static int
bind_or_replace(int fd, const struct sockaddr_un *sun, unsigned mode,
    char *err, size_t errlen)
{
	const char *path = sun->sun_path;
	struct stat sb;

	if (bind_socket(fd, sun, mode) == 0)
		return 0;
	if (errno != EADDRINUSE)
		goto fail;
	if (lstat(path, &sb) == 0 && !S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; not "
		    "replacing it", path);
		return -1;
	}
	if (socket_live(sun)) {
		snprintf(err, errlen, "another fetchd is already listening on "
		    "%s", path);
		return -1;
	}
	log_info("removing the stale control socket %s", path);
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale socket %s: %s",
		    path, strerror(errno));
		return -1;
	}
	if (bind_socket(fd, sun, mode) == 0)
		return 0;
fail:
	snprintf(err, errlen, "cannot bind the control socket %s: %s", path,
	    strerror(errno));
	return -1;
}

/*
 * Remember the socket file just bound: its identity, so that only it is
 * removed at the end, and its group, whose members may connect. 0, or -1
 * with a message in err.
 */
static int
note_socket(struct control *ctl, const char *path, unsigned mode, char *err,
    size_t errlen)
{
	struct stat sb;

	if ((ctl->path = strdup(path)) == NULL) {
		unlink(path);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (lstat(path, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ctl->dev = sb.st_dev;
	ctl->ino = sb.st_ino;
	ctl->gid = sb.st_gid;
	if (chmod(path, mode) == -1)    /* bits umask cannot give */
		log_warn("chmod %s", path);
	return 0;
}

static int
start_listening(struct control *ctl, char *err, size_t errlen)
{
	if (listen(ctl->fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "listen %s: %s", ctl->path,
		    strerror(errno));
		return -1;
	}
	ctl->ev_accept = event_new(ctl->base, ctl->fd, EV_READ | EV_PERSIST,
	    accept_cb, ctl);
	ctl->ev_resume = evtimer_new(ctl->base, resume_cb, ctl);
	if (ctl->ev_accept == NULL || ctl->ev_resume == NULL ||
	    event_add(ctl->ev_accept, NULL) == -1) {
		snprintf(err, errlen, "cannot set up the control socket events");
		return -1;
	}
	return 0;
}

struct control *
control_new(struct event_base *base, const char *path, unsigned mode,
    const struct control_hooks *hooks, void *arg, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct control *ctl;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", path);
		return NULL;
	}
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->fd = -1;
	ctl->base = base;
	ctl->hooks = *hooks;
	ctl->arg = arg;
	TAILQ_INIT(&ctl->clients);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);

	if ((ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	if (bind_or_replace(ctl->fd, &sun, mode, err, errlen) == -1 ||
	    note_socket(ctl, path, mode, err, errlen) == -1 ||
	    start_listening(ctl, err, errlen) == -1)
		goto fail;
	log_info("control socket %s (mode %04o, group %ld)", path, mode,
	    (long)ctl->gid);
	return ctl;
fail:
	control_free(ctl);
	return NULL;
}

void
control_free(struct control *ctl)
{
	struct client *c;
	struct stat sb;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(c);
	if (ctl->ev_accept != NULL)
		event_free(ctl->ev_accept);
	if (ctl->ev_resume != NULL)
		event_free(ctl->ev_resume);
	if (ctl->fd != -1)
		close(ctl->fd);
	/* Remove the socket only if it is still the one we made. */
	if (ctl->path != NULL && lstat(ctl->path, &sb) == 0 &&
	    sb.st_dev == ctl->dev && sb.st_ino == ctl->ino)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
