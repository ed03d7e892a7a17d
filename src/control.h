/*
 * control.h: the daemon's side of the control socket. Main loop only.
 * (The HTTP listener of metrics_listen is web.h's.)
 *
 * The daemon supplies what the commands do through control_hooks; this
 * module owns the sockets, the clients, the protocol (proto.h) and the
 * hardening: peer credentials, bounded requests, idle timeouts, a cap on
 * clients, bounded output for `watch` and for subscribers, no SIGPIPE.
 *
 * Subscriptions (`events`, `events JOB`, `wait JOB`): the daemon asks
 * control_event_seq() or control_wants() before it builds an event, and
 * hands what it built to control_publish(), which serialises it once and
 * queues the bytes for each subscriber that wants it.
 */
#ifndef FETCHD_CONTROL_H
#define FETCHD_CONTROL_H

#include <stddef.h>
#include <event2/event.h>
#include <jansson.h>

#include "feed.h"

#define CONTROL_CLIENTS_MAX 1024     /* waiters and subscribers are clients */
#define CONTROL_IDLE_TIMEOUT 10         /* s without a complete request */
#define CONTROL_WRITE_TIMEOUT 10        /* s a client may leave output unread */
#define CONTROL_OUTPUT_MAX (256 * 1024) /* watch output queued per client */
#define CONTROL_EVENTS_MAX (1024 * 1024) /* a subscriber's output queued;
                                           beyond it events are missed */
#define CONTROL_SUBS_MAX 256            /* events JOB + wait JOB per client */
#define CONTROL_JOB_MAX 255             /* bytes of a subscribed job name */

struct control_hooks {
	/* New references without "proto"; NULL on allocation failure. */
	json_t *(*stats)(void *arg);
	json_t *(*jobs)(void *arg);
	void (*pause)(void *arg, int paused);
	int (*paused)(void *arg);
	/* 0, or -1 when there is no such job (or it is finishing). */
	int (*cancel)(void *arg, const char *job);
	/* 0, or -1 with a message in err. The names ("section.key") of
	 * changed options that need a restart go into the array restart. */
	int (*reload)(void *arg, json_t *restart, char *err, size_t errlen);
	/* `events JOB`, `wait JOB`: the job's snapshot (feed_snapshot). */
	json_t *(*job_snapshot)(void *arg, const char *job);
	/* `jobs JOB`: the detail object (feed_detail), a JSON null when
	 * there is no such job, NULL when out of memory. */
	json_t *(*job_detail)(void *arg, const char *job);
};

struct control;

/*
 * Listen on path with mode. A socket file left by a dead daemon is
 * replaced; one a live daemon answers on is not (another fetchd runs).
 * NULL with a message in err.
 */
struct control *control_new(struct event_base *base, const char *path,
    unsigned mode, const struct control_hooks *hooks, void *arg, char *err,
    size_t errlen);

/*
 * Number an event of a published kind (job_queued, job_claimed, url_done,
 * job_done): every one takes the next seq, wanted or not. Returns that
 * seq when a subscriber wants this kind of event of job, or 0 when none
 * does: then the caller builds nothing. c may be NULL (no socket yet).
 */
uint64_t control_event_seq(struct control *c, const char *job,
    enum feed_kind kind);

/* 1 when a subscriber wants kind of job (progress: a `wait`), else 0. */
int control_wants(const struct control *c, const char *job,
    enum feed_kind kind);

/* 1 when a client holds a `wait` (progress lines are wanted), else 0. */
int control_waiting(const struct control *c);

/*
 * Queue ev (stolen; NULL is fine: out of memory, nothing sent) for every
 * subscriber that wants kind of job, each once, serialised once. A
 * subscriber whose output is beyond CONTROL_EVENTS_MAX misses it (counted;
 * a `missed` line precedes its next event once its output drained below
 * half); one that stays beyond it for CONTROL_WRITE_TIMEOUT is sent a
 * last `missed` line with "dropped":true and closed.
 */
void control_publish(struct control *c, const char *job, enum feed_kind kind,
    json_t *ev);

/* The claim renamed job from to to: its subscriptions follow. */
void control_rename(struct control *c, const char *from, const char *to);

/* The "control" object of the stats: clients and subscribers connected
 * now, subscribers dropped and events missed since start. */
json_t *control_json(const struct control *c);

/* Close every client and the sockets; remove the socket file if it is
 * still ours. NULL is fine. */
void control_free(struct control *c);

#endif
