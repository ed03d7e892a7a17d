/*
 * proto.h: the control protocol shared by fetchd (control.c) and fetchctl.
 *
 * A client sends one request line (a command and its arguments separated
 * by blanks, at most PROTO_LINE_MAX bytes before the newline); the daemon
 * answers with JSON objects, one per line, each carrying "proto":
 * PROTO_VERSION. An error is {"proto":1,"error":"..."}; a refusal on
 * credentials adds "denied":true. `watch` answers with a stats object every
 * interval until the client goes; `events` and `wait` with event lines
 * (feed.h) until the client goes.
 *
 * The Prometheus text and the one-line summary are derived here from the
 * stats object, so the daemon has a single stats generator (stats_json) and
 * fetchctl, the metrics endpoint and the service status line agree.
 */
#ifndef FETCHD_PROTO_H
#define FETCHD_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#define PROTO_VERSION 1
#define PROTO_LINE_MAX 4096     /* bytes in a request, newline excluded */
#define PROTO_WORDS_MAX 4       /* words in a request, the command's too;
                                   more is "too many arguments" */

/*
 * Requests: the commands are the rows of proto_cmds, the one list of them.
 * fetchd (control.c) keeps a handler for each id, fetchctl a way to print
 * each reply; neither has a list of names of its own.
 */
enum proto_cmd_id {
	PROTO_CMD_PING,
	PROTO_CMD_STATS,
	PROTO_CMD_JOBS,
	PROTO_CMD_WATCH,
	PROTO_CMD_EVENTS,
	PROTO_CMD_WAIT,
	PROTO_CMD_PAUSE,
	PROTO_CMD_RESUME,
	PROTO_CMD_CANCEL,
	PROTO_CMD_RELOAD,
	PROTO_CMD__COUNT
};

struct proto_cmd {
	enum proto_cmd_id id;           /* its index in proto_cmds */
	const char *name;               /* the request's first word */
	int min_args, max_args;         /* words that may follow it */
	const char *args;               /* them, for usage: "[ms]", "JOB" */
	const char *help;               /* a line of usage */
};

extern const struct proto_cmd proto_cmds[PROTO_CMD__COUNT];

/* The command named name (exactly), or NULL. */
const struct proto_cmd *proto_cmd_find(const char *name);

#define PROTO_WATCH_DEFAULT_MS 1000
#define PROTO_WATCH_MIN_MS 100
#define PROTO_WATCH_MAX_MS 60000

/* The interval of `watch`: s as a decimal number of milliseconds from
 * PROTO_WATCH_MIN_MS to PROTO_WATCH_MAX_MS into *ms. 0, or -1. */
int proto_watch_ms(const char *s, long *ms);

/* Reply keys beyond the stats object's own. */
#define PROTO_KEY_PROTO "proto"
#define PROTO_KEY_ERROR "error"
#define PROTO_KEY_DENIED "denied"
#define PROTO_KEY_PONG "pong"
#define PROTO_KEY_VERSION "version"
#define PROTO_KEY_PID "pid"
#define PROTO_KEY_PAUSED "paused"
#define PROTO_KEY_CANCELLED "cancelled"
#define PROTO_KEY_RELOADED "reloaded"
#define PROTO_KEY_RESTART_NEEDED "restart_needed" /* reload: changed options
                                                     not applied until a
                                                     restart */
#define PROTO_KEY_JOB "job"             /* jobs JOB: the detail object
                                           (feed.h names its members) */

/* Exit statuses of fetchctl. */
enum proto_exit {
	PROTO_EXIT_OK = 0,
	PROTO_EXIT_ERROR = 1,           /* the daemon answered with an error,
	                                   or the command failed otherwise */
	PROTO_EXIT_USAGE = 2,
	PROTO_EXIT_NOT_RUNNING = 3,     /* no socket, or no one listening */
	PROTO_EXIT_DENIED = 4,          /* permission denied, or another
	                                   connection failure */
	PROTO_EXIT_NOT_CLUSTER = 5,     /* stats --cluster: the daemon is not
	                                   in cluster mode */
	PROTO_EXIT_FAILED = 6,          /* wait, submit --wait, events --job:
	                                   a job ended in failed/ */
	PROTO_EXIT_TIMEOUT = 7,         /* wait, submit --wait: --timeout
	                                   passed before every job ended */
};

/* {"proto":1}; NULL on allocation failure. */
json_t *proto_reply(void);

/* {"proto":1,"error":msg}. msg is made valid UTF-8 and printable first. */
json_t *proto_error(const char *msg);

/*
 * Copy s into buf as printable ASCII: other bytes become '?', at most
 * len - 1 bytes. For echoing a client's words back in an error.
 */
void proto_printable(const char *s, size_t n, char *buf, size_t len);

/*
 * Split a request line in place into at most max words separated by
 * blanks. Returns the number of words, or -1 when there are more.
 */
int proto_split(char *line, char **argv, int max);

/*
 * The Prometheus text exposition format (version 0.0.4) of a stats object:
 * HELP and TYPE lines, names prefixed "fetchd_", counters ending in
 * "_total", latencies in seconds both as summaries (fetchd_latency_WHICH_
 * seconds, quantiles of this daemon) and as histograms (fetchd_latency_
 * WHICH_histogram_seconds, buckets that add up across daemons), and in
 * cluster mode the "cluster" object's figures (fetchd_cluster_*; members
 * that are null, unknown, are left out). Returns a malloc'ed string, or
 * NULL on allocation failure.
 */
char *proto_prometheus(const json_t *stats);

/* One line summing up a stats object (throughput, transfers, jobs,
 * latency), for `fetchctl watch` and the service manager's status. */
void proto_status_line(const json_t *stats, char *buf, size_t len);

/*
 * `fetchctl stats --cluster`: this node's cluster state and counters, a
 * table of every node of the stats object's "cluster.nodes" (sorted by
 * name, "last seen" from their "time" and now, in seconds since the
 * epoch), and the stream. The nodes' members come from other machines:
 * each may be missing or of another type ("?" is shown), and strings are
 * shown printable. -1 when stats has no "cluster" object, or out of
 * memory.
 */
int proto_cluster_print(FILE *fp, const json_t *stats, double now);

/* The cluster line of `fetchctl stats`: state, node, role, the stream's
 * pending entries and dead letters. -1 (buf untouched) when stats has no
 * "cluster" object. */
int proto_cluster_line(const json_t *stats, char *buf, size_t len);

/* "12.3 MiB" style, into buf. */
void proto_fmt_bytes(double bytes, char *buf, size_t len);

/* "12.3s", "4m05s", "2h03m04s", "1d02h03m" style, into buf. */
void proto_fmt_duration(double seconds, char *buf, size_t len);

/* Value of a path "a.b.c" in obj, or NULL. */
const json_t *proto_get(const json_t *obj, const char *path);

/* Number at path (integer, real or boolean) or def. */
double proto_num(const json_t *obj, const char *path, double def);

#endif
