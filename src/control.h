/*
 * control.h: the daemon's side of the control socket (and of the optional
 * Prometheus endpoint). Main loop only.
 *
 * The daemon supplies what the commands do through control_hooks; this
 * module owns the sockets, the clients, the protocol (proto.h) and the
 * hardening: peer credentials, bounded requests, idle timeouts, a cap on
 * clients, bounded output for `watch`, no SIGPIPE.
 */
#ifndef FETCHD_CONTROL_H
#define FETCHD_CONTROL_H

#include <stddef.h>
#include <event2/event.h>
#include <jansson.h>

#define CONTROL_CLIENTS_MAX 64
#define CONTROL_IDLE_TIMEOUT 10         /* s without a complete request */
#define CONTROL_WRITE_TIMEOUT 10        /* s a client may leave output unread */
#define CONTROL_OUTPUT_MAX (256 * 1024) /* watch output queued per client */

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
 * Serve GET /metrics (Prometheus text) on listen ("host:port",
 * "[v6]:port"). 0, or -1 with a message in err.
 */
int control_metrics(struct control *c, const char *listen, char *err,
    size_t errlen);

/* Close every client and the sockets; remove the socket file if it is
 * still ours. NULL is fine. */
void control_free(struct control *c);

#endif
