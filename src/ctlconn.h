/*
 * ctlconn.h: fetchctl's end of a connection to the control socket.
 *
 * Every command that talks to the daemon goes through here: connect (with
 * the messages that tell "not running" from "permission denied"), send a
 * request line, read reply lines with a deadline, parse a reply. `wait`
 * connects again after the daemon went away, so a connection can be
 * closed and opened anew on the same struct, and a quiet connect says
 * nothing.
 */
#ifndef FETCHD_CTLCONN_H
#define FETCHD_CTLCONN_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#define CTLCONN_REPLY_MAX (64 * 1024 * 1024)    /* bytes in one reply line */

/* What ctlconn_read_line() returns. */
enum ctlconn_read {
	CTLCONN_LINE = 1,               /* *line is set */
	CTLCONN_EOF = 0,                /* the daemon closed, or reset */
	CTLCONN_ERROR = -1,             /* said on stderr */
	CTLCONN_INTR = -2,              /* *stop was set (a signal) */
	CTLCONN_TIMEOUT = -3,           /* nothing within the time given */
};

struct ctlconn {
	int fd;                         /* -1 when not connected */
	char *buf;                      /* reply bytes read so far */
	size_t len, cap;
	size_t consumed;                /* bytes of the last line returned */
	const volatile sig_atomic_t *stop;      /* NULL, or a flag a signal
	                                           handler sets: reads end */
};

/* An unconnected conn; stop as above. */
void ctlconn_init(struct ctlconn *c, const volatile sig_atomic_t *stop);

/*
 * Connect to the socket at path. A proto_exit status: PROTO_EXIT_OK,
 * PROTO_EXIT_NOT_RUNNING (no socket, or no one listening),
 * PROTO_EXIT_DENIED, or PROTO_EXIT_USAGE (a path too long); said on
 * stderr unless quiet.
 */
int ctlconn_connect(struct ctlconn *c, const char *path, int quiet);

/* Close the connection and forget unread bytes; the buffer is kept. */
void ctlconn_close(struct ctlconn *c);

/* Close and free everything. */
void ctlconn_free(struct ctlconn *c);

/*
 * Send line (with its newline). 0, or -1 (said). A daemon that has
 * closed the connection is not an error here: its reply, or the end of
 * the stream, is read next.
 */
int ctlconn_send(struct ctlconn *c, const char *line);

/*
 * The next reply line, NUL-terminated without its newline, into *line,
 * valid until the next call; waiting at most timeout_ms (-1: no limit).
 * An enum ctlconn_read.
 */
int ctlconn_read_line(struct ctlconn *c, int timeout_ms, char **line);

/*
 * Parse a reply line, saying nothing: NULL when it is not a JSON object;
 * else *status is PROTO_EXIT_OK, or for an error reply PROTO_EXIT_DENIED
 * when the daemon refused us and PROTO_EXIT_ERROR otherwise.
 */
json_t *ctlconn_decode(const char *line, int *status);

/* Say on stderr what is wrong with line: o is ctlconn_decode()'s. */
void ctlconn_say(const char *line, const json_t *o);

/* ctlconn_decode(), and ctlconn_say() when the line is not a reply or an
 * error: NULL for the former (*status PROTO_EXIT_ERROR). */
json_t *ctlconn_parse(const char *line, int *status);

#endif
