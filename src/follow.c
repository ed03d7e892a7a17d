/*
 * follow.c: `fetchctl wait` and `fetchctl events` (see follow.h).
 *
 * `wait` keeps what it last heard of each job (the snapshot, the latest
 * progress event, job_done) and draws from that, so a redraw, a plain
 * line and the final lines all say the same. The daemon going away is
 * not an error while waiting: a restart of fetchd finishes or resumes
 * the jobs, and a `wait` sent again is answered with a snapshot that says
 * which, so nothing is lost by connecting again. Only --timeout bounds
 * it.
 *
 * On a terminal the jobs' lines are drawn below the cursor, each ended
 * by a newline, so the cursor always rests at the start of a fresh line
 * under them: a redraw goes up as many lines, and an interrupt or a
 * message on stderr never lands in the middle of a line.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctlconn.h"
#include "feed.h"
#include "follow.h"
#include "meter.h"
#include "proto.h"
#include "spool.h"
#include "util.h"

#define NAME_MAX_CLAIMED (SPOOL_NAME_MAX + FOLLOW_SUFFIX_MAX)
#define DRAW_EVERY_MS 100       /* a terminal is redrawn at most this often */

enum job_end { JOB_WAITING, JOB_ENDED, JOB_UNKNOWN };

struct wjob {
	char name[NAME_MAX_CLAIMED + 1];        /* as the daemon calls it now */
	json_t *last;                   /* the latest object about it */
	enum job_end end;
	char said[16];                  /* the state of the last plain line */
	double said_at;                 /* when a progress line was printed */
	double said_figures;            /* done + failed + bytes then */
};

struct waiter {
	const struct follow_opts *o;
	struct ctlconn conn;
	struct wjob *jobs;
	int n;
	double deadline;                /* util_mono(); 0: none */
	int drawn;                      /* lines on the terminal now */
	int dirty;                      /* heard something not drawn yet */
	double drawn_at;                /* util_mono() of the last draw */
};

/* What handling a line asks the loop to do. */
enum next {
	NEXT_READ,
	NEXT_RECONNECT,                 /* the daemon went away */
	NEXT_AFRESH,                    /* events were missed: a new
	                                   connection, new snapshots */
	NEXT_STOP,
};

static const char *
str_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static struct wjob *
find_job(struct waiter *w, const char *name)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (strcmp(w->jobs[i].name, name) == 0)
			return &w->jobs[i];
	return NULL;
}

static int
all_ended(const struct waiter *w)
{
	int i;

	for (i = 0; i < w->n; i++)
		if (w->jobs[i].end == JOB_WAITING)
			return 0;
	return 1;
}

/*
 * The terminal.
 */
static void
term_size(int *cols, int *rows)
{
	struct winsize ws;

	*cols = 80;
	*rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		*cols = ws.ws_col;
		*rows = ws.ws_row > 1 ? ws.ws_row : 24;
	}
}

/* Each job's meter line, over the lines drawn before. As many as the
 * terminal has rows for, less one (the cursor's). */
static void
draw(struct waiter *w)
{
	char line[METER_LINE_MAX];
	size_t name_cols = 0;
	json_t *stub;
	int cols, rows, i, lines;

	term_size(&cols, &rows);
	lines = w->n < rows - 1 ? w->n : rows - 1;
	for (i = 0; i < lines; i++)
		if (strlen(w->jobs[i].name) > name_cols)
			name_cols = strlen(w->jobs[i].name);
	if (w->drawn > 0)
		printf("\033[%dA", w->drawn);
	for (i = 0; i < lines; i++) {
		stub = w->jobs[i].last != NULL ? NULL : json_pack("{s:s,s:s}",
		    FEED_JOB, w->jobs[i].name, FEED_STATE, "asking fetchd");
		meter_line(w->jobs[i].last != NULL ? w->jobs[i].last : stub,
		    cols, name_cols, line, sizeof(line));
		json_decref(stub);
		printf("\r\033[K%s\n", line);
	}
	if (w->drawn > lines)           /* fewer rows than before */
		printf("\033[J");
	w->drawn = lines;
	w->dirty = 0;
	w->drawn_at = util_mono();
	fflush(stdout);
}

/* The lines drawn wiped, the cursor where they started: stderr next. */
static void
undraw(struct waiter *w)
{
	if (!w->o->tty || w->drawn == 0)
		return;
	printf("\033[%dA\r\033[J", w->drawn);
	fflush(stdout);
	w->drawn = 0;
}

/*
 * Plain lines: one per change of state, and a progress line at most every
 * FOLLOW_PLAIN_EVERY seconds while the figures move.
 */
static void
plain(struct wjob *j, const char *state)
{
	char line[METER_LINE_MAX], stamp[16];
	double figures, now = util_mono();
	struct tm tm;
	time_t t;

	figures = proto_num(j->last, FEED_DONE, 0) +
	    proto_num(j->last, FEED_FAILED, 0) + proto_num(j->last, FEED_BYTES, 0);
	if (strcmp(state, j->said) == 0 &&
	    (now - j->said_at < FOLLOW_PLAIN_EVERY || figures == j->said_figures))
		return;
	snprintf(j->said, sizeof(j->said), "%s", state);
	j->said_at = now;
	j->said_figures = figures;
	t = time(NULL);
	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	meter_plain(j->last, line, sizeof(line));
	printf("%s %s\n", stamp, line);
	fflush(stdout);
}

/* j's latest object is o (a reference taken); shown as the output is. */
static void
update(struct waiter *w, struct wjob *j, json_t *o)
{
	json_incref(o);
	json_decref(j->last);
	j->last = o;
	if (!w->o->tty)
		plain(j, str_of(o, FEED_STATE));
}

/*
 * The lines from the daemon.
 */

/* A `job` snapshot: where the job is now. */
static void
on_snapshot(struct waiter *w, struct wjob *j, json_t *o)
{
	const char *state = str_of(o, FEED_STATE);

	if (strcmp(state, FEED_STATE_UNKNOWN) == 0) {
		undraw(w);
		fprintf(stderr, "fetchctl: no such job: %s\n", j->name);
		j->end = JOB_UNKNOWN;
		return;
	}
	if (strcmp(state, FEED_STATE_DONE) == 0 ||
	    strcmp(state, FEED_STATE_FAILED) == 0)
		j->end = JOB_ENDED;
	/* A snapshot of an active job has fewer figures than the progress
	 * events: keep those while the state is the same. */
	if (j->last != NULL && strcmp(str_of(j->last, FEED_STATE), state) == 0 &&
	    !json_is_number(json_object_get(o, FEED_RATE)) &&
	    json_is_number(json_object_get(j->last, FEED_RATE)))
		return;
	update(w, j, o);
}

/* job_claimed: the job may have a new name (J.1); shown as "claimed". */
static void
on_claimed(struct waiter *w, json_t *o)
{
	const char *as = str_of(o, FEED_QUEUED_AS), *name = str_of(o, FEED_JOB);
	struct wjob *j;
	json_t *c;

	if ((j = find_job(w, *as != '\0' ? as : name)) == NULL ||
	    strlen(name) > NAME_MAX_CLAIMED)
		return;
	snprintf(j->name, sizeof(j->name), "%s", name);
	c = json_pack("{s:s,s:s}", FEED_JOB, name, FEED_STATE,
	    json_is_true(json_object_get(o, FEED_RESUMED)) ? FEED_RESUMED :
	    "claimed");
	if (c != NULL)
		update(w, j, c);
	json_decref(c);
}

/* Ask for every job still waiting: on a new connection, after a loss. */
static int
subscribe(struct waiter *w)
{
	char req[PROTO_LINE_MAX + 2];
	int i;

	for (i = 0; i < w->n; i++) {
		if (w->jobs[i].end != JOB_WAITING)
			continue;
		snprintf(req, sizeof(req), "wait %s\n", w->jobs[i].name);
		if (ctlconn_send(&w->conn, req) == -1)
			return -1;
	}
	return 0;
}

/* One line from the daemon; *rc set when it ends the wait. */
static enum next
on_line(struct waiter *w, const char *line, int *rc)
{
	const char *ev;
	struct wjob *j;
	json_t *o;
	int status;

	if ((o = ctlconn_decode(line, &status)) == NULL)
		return NEXT_RECONNECT;  /* a torn line: the daemon died */
	if (status != PROTO_EXIT_OK) {
		undraw(w);
		ctlconn_say(line, o);
		json_decref(o);
		*rc = status;
		return NEXT_STOP;
	}
	ev = str_of(o, FEED_EVENT);
	j = find_job(w, str_of(o, FEED_JOB));
	if (strcmp(ev, FEED_JOB_CLAIMED) == 0)
		on_claimed(w, o);
	else if (strcmp(ev, FEED_MISSED) == 0) {
		json_decref(o);
		return NEXT_AFRESH;     /* a job_done may be among them */
	} else if (j == NULL || j->end != JOB_WAITING)
		;                       /* not ours, or heard of already */
	else if (strcmp(ev, FEED_SNAPSHOT) == 0)
		on_snapshot(w, j, o);
	else if (strcmp(ev, FEED_PROGRESS) == 0)
		update(w, j, o);
	else if (strcmp(ev, FEED_JOB_DONE) == 0) {
		j->end = JOB_ENDED;
		update(w, j, o);
	}
	json_decref(o);
	return NEXT_READ;
}

/*
 * The connection.
 */
int
follow_timeout(const char *s, double *seconds)
{
	char *end;
	double v;

	if (s[0] == '\0' || strspn(s, "0123456789.") != strlen(s))
		return -1;
	v = strtod(s, &end);
	if (*end != '\0' || !isfinite(v) || v <= 0)
		return -1;
	*seconds = v;
	return 0;
}


/* Milliseconds left before the deadline (-1: none); 0 when it passed. */
static int
left_ms(const struct waiter *w)
{
	double left;

	if (w->deadline == 0)
		return -1;
	left = w->deadline - util_mono();
	if (left > 3600)
		return 3600 * 1000;     /* the loop comes back for the rest */
	return left <= 0 ? 0 : (int)ceil(left * 1000);
}

/*
 * Connect again, after the daemon went away (said when say is set):
 * connect() alone, every FOLLOW_RETRY_MIN doubling to FOLLOW_RETRY_MAX
 * seconds, then the `wait` requests again. PROTO_EXIT_OK,
 * PROTO_EXIT_TIMEOUT, PROTO_EXIT_ERROR, or -1 on a stop.
 */
static int
reconnect(struct waiter *w, int say)
{
	double delay = FOLLOW_RETRY_MIN;
	int ms;

	if (say) {
		undraw(w);
		fprintf(stderr, "fetchctl: lost the connection to fetchd; "
		    "connecting again\n");
	}
	ctlconn_close(&w->conn);
	for (;;) {
		if (*w->o->stop)
			return -1;
		if (ctlconn_connect(&w->conn, w->o->socket, 1) == PROTO_EXIT_OK)
			return subscribe(w) == 0 ? PROTO_EXIT_OK :
			    PROTO_EXIT_ERROR;
		if ((ms = left_ms(w)) == 0)
			return PROTO_EXIT_TIMEOUT;
		if (ms == -1 || ms > (int)(delay * 1000))
			ms = (int)(delay * 1000);
		poll(NULL, 0, ms);      /* a signal ends it early */
		delay = delay * 2 < FOLLOW_RETRY_MAX ? delay * 2 :
		    FOLLOW_RETRY_MAX;
	}
}

/* Lines until every job ended: -1, or the status that ends the wait. */
static int
run(struct waiter *w)
{
	enum next next;
	char *line;
	int rc, ms;

	while (!all_ended(w)) {
		if ((ms = left_ms(w)) == 0)
			return PROTO_EXIT_TIMEOUT;
		/* A burst of lines is drawn once, when it paused or after
		 * DRAW_EVERY_MS: many jobs do not flood the terminal. */
		if (w->o->tty && w->dirty &&
		    (util_mono() - w->drawn_at) * 1000 >= DRAW_EVERY_MS)
			draw(w);
		if (w->o->tty && w->dirty && (ms == -1 || ms > DRAW_EVERY_MS))
			ms = DRAW_EVERY_MS;
		rc = -1;
		switch (ctlconn_read_line(&w->conn, ms, &line)) {
		case CTLCONN_LINE:
			next = on_line(w, line, &rc);
			break;
		case CTLCONN_EOF:
			next = NEXT_RECONNECT;
			break;
		case CTLCONN_TIMEOUT:
			continue;       /* the deadline, seen above */
		case CTLCONN_INTR:
			return -1;
		default:
			return PROTO_EXIT_ERROR;
		}
		w->dirty = 1;
		if (next == NEXT_STOP)
			return rc;
		if (next != NEXT_READ && (rc = reconnect(w,
		    next == NEXT_RECONNECT)) != PROTO_EXIT_OK)
			return rc;
	}
	return PROTO_EXIT_OK;
}

/* The end: "JOB STATE RESULT" per job, and the status they make. */
static int
finish(struct waiter *w)
{
	const char *state;
	int i, rc = PROTO_EXIT_OK;

	if (w->o->tty)
		draw(w);
	for (i = 0; i < w->n; i++) {
		if (w->jobs[i].end == JOB_UNKNOWN) {
			rc = PROTO_EXIT_ERROR;
			continue;
		}
		state = str_of(w->jobs[i].last, FEED_STATE);
		if (strcmp(state, FEED_STATE_FAILED) == 0 && rc == PROTO_EXIT_OK)
			rc = PROTO_EXIT_FAILED;
		printf("%s %s %s\n", w->jobs[i].name, state,
		    *str_of(w->jobs[i].last, FEED_RESULT) != '\0' ?
		    str_of(w->jobs[i].last, FEED_RESULT) : "-");
	}
	return rc;
}

/* What is still waiting, on stderr, at a timeout. */
static void
say_timeout(struct waiter *w)
{
	int i, first = 1;

	undraw(w);
	fprintf(stderr, "fetchctl: timed out after %g s waiting for",
	    w->o->timeout);
	for (i = 0; i < w->n; i++)
		if (w->jobs[i].end == JOB_WAITING) {
			fprintf(stderr, "%s %s", first ? "" : ",",
			    w->jobs[i].name);
			first = 0;
		}
	fprintf(stderr, "\n");
	if (w->o->tty)
		draw(w);
}

int
follow_wait(const struct follow_opts *o, char *const *names, int n)
{
	struct waiter w;
	int i, rc;

	memset(&w, 0, sizeof(w));
	w.o = o;
	ctlconn_init(&w.conn, o->stop);
	if (o->timeout > 0)
		w.deadline = util_mono() + o->timeout;
	if ((w.jobs = calloc((size_t)n, sizeof(*w.jobs))) == NULL) {
		fprintf(stderr, "fetchctl: out of memory\n");
		return PROTO_EXIT_ERROR;
	}
	w.dirty = 1;                    /* the names, before any answer */
	for (i = 0; i < n; i++)         /* a name given twice is one job */
		if (find_job(&w, names[i]) == NULL)
			snprintf(w.jobs[w.n++].name, sizeof(w.jobs[0].name),
			    "%s", names[i]);
	if ((rc = ctlconn_connect(&w.conn, o->socket, 0)) == PROTO_EXIT_OK)
		rc = subscribe(&w) == 0 ? run(&w) : PROTO_EXIT_ERROR;
	if (rc == PROTO_EXIT_OK)
		rc = finish(&w);
	else if (rc == PROTO_EXIT_TIMEOUT)
		say_timeout(&w);
	else if (rc == -1) {
		rc = 128 + *o->stop;
		if (o->tty && w.drawn > 0)
			printf("\n");   /* off the line ^C was echoed on */
	}
	for (i = 0; i < w.n; i++)
		json_decref(w.jobs[i].last);
	free(w.jobs);
	ctlconn_free(&w.conn);
	return rc;
}

/*
 * events.
 */
#define EVENTS_TEXT_MAX 8192

/* An event for people: the time it happened (or now, for the lines that
 * are not published events) and feed_line()'s text. */
static void
events_render(const json_t *ev, char *buf, size_t len)
{
	char stamp[16], text[EVENTS_TEXT_MAX];
	time_t t = (time_t)proto_num(ev, FEED_TIME, (double)time(NULL));
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	feed_line(ev, text, sizeof(text));
	snprintf(buf, len, "%s %s", stamp, text);
}

/*
 * What ev says of the end of the job followed (named job, len bytes,
 * renamed here when it is claimed under another name): -1 nothing yet,
 * else the exit status. A job the daemon does not know yet is followed
 * on: it may be about to be submitted.
 */
static int
events_end(char *job, size_t len, const json_t *ev)
{
	const char *kind = str_of(ev, FEED_EVENT), *state = str_of(ev, FEED_STATE);

	if (strcmp(kind, FEED_JOB_CLAIMED) == 0 &&
	    strcmp(str_of(ev, FEED_QUEUED_AS), job) == 0) {
		snprintf(job, len, "%s", str_of(ev, FEED_JOB));
		return -1;
	}
	if (strcmp(str_of(ev, FEED_JOB), job) != 0 ||
	    (strcmp(kind, FEED_JOB_DONE) != 0 && strcmp(kind, FEED_SNAPSHOT) != 0))
		return -1;
	if (strcmp(state, FEED_STATE_DONE) == 0)
		return PROTO_EXIT_OK;
	if (strcmp(state, FEED_STATE_FAILED) == 0)
		return PROTO_EXIT_FAILED;
	return -1;
}

/* One event line printed; -1, or the status that ends `events`. */
static int
events_line(const struct follow_opts *o, char *job, size_t len,
    const char *line)
{
	char text[EVENTS_TEXT_MAX + 16];
	json_t *ev;
	int status, rc = -1;

	if ((ev = ctlconn_parse(line, &status)) == NULL ||
	    status != PROTO_EXIT_OK) {
		json_decref(ev);
		return status;
	}
	if (o->json)
		printf("%s\n", line);
	else {
		events_render(ev, text, sizeof(text));
		printf("%s\n", text);
	}
	if (o->job != NULL)
		rc = events_end(job, len, ev);
	json_decref(ev);
	if (fflush(stdout) == EOF)
		return PROTO_EXIT_ERROR;        /* the reader went away */
	return rc;
}

int
follow_events(const struct follow_opts *o)
{
	char req[PROTO_LINE_MAX + 2], job[NAME_MAX_CLAIMED + 1], *line;
	struct ctlconn conn;
	int rc;

	ctlconn_init(&conn, o->stop);
	snprintf(job, sizeof(job), "%s", o->job != NULL ? o->job : "");
	snprintf(req, sizeof(req), "events%s%s\n", o->job != NULL ? " " : "",
	    job);
	if ((rc = ctlconn_connect(&conn, o->socket, 0)) != PROTO_EXIT_OK)
		return rc;
	rc = ctlconn_send(&conn, req) == 0 ? -1 : PROTO_EXIT_ERROR;
	while (rc == -1) {
		switch (ctlconn_read_line(&conn, -1, &line)) {
		case CTLCONN_LINE:
			rc = events_line(o, job, sizeof(job), line);
			break;
		case CTLCONN_EOF:
			fprintf(stderr, "fetchctl: fetchd closed the "
			    "connection\n");
			rc = PROTO_EXIT_NOT_RUNNING;
			break;
		case CTLCONN_INTR:
			rc = o->job != NULL ? 128 + *o->stop : PROTO_EXIT_OK;
			break;
		default:
			rc = PROTO_EXIT_ERROR;
		}
	}
	ctlconn_free(&conn);
	return rc;
}
