/*
 * ctlconn.c: fetchctl's connection to the control socket (see ctlconn.h).
 *
 * Replies are read into one growing buffer and cut at newlines; a line
 * may be long (a `jobs` reply with many names), so the buffer grows up to
 * CTLCONN_REPLY_MAX. A reset from the daemon counts as the end of the
 * stream, as a close does: for `wait` both mean "the daemon went away,
 * connect again", and for a single request both mean "no reply".
 */
#include <errno.h>
#include <math.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlconn.h"
#include "feed.h"
#include "proto.h"
#include "util.h"

void
ctlconn_init(struct ctlconn *c, const volatile sig_atomic_t *stop)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->stop = stop;
}

/* The message for a connect() that failed with err; the exit status. */
static int
connect_failed(const char *path, int err)
{
	struct group *gr;
	struct stat sb;

	switch (err) {
	case ENOENT:
	case ENOTDIR:
		fprintf(stderr, "fetchd is not running: no socket at %s\n",
		    path);
		return PROTO_EXIT_NOT_RUNNING;
	case ECONNREFUSED:
		fprintf(stderr, "fetchd is not running: no one listens on "
		    "%s\n", path);
		return PROTO_EXIT_NOT_RUNNING;
	case EACCES:
	case EPERM:
		if (stat(path, &sb) == 0 && (gr = getgrgid(sb.st_gid)) != NULL)
			fprintf(stderr, "fetchctl: permission denied on %s: "
			    "only root, its owner and the members of group "
			    "\"%s\" may use it\n", path, gr->gr_name);
		else
			fprintf(stderr, "fetchctl: permission denied on %s\n",
			    path);
		return PROTO_EXIT_DENIED;
	default:
		fprintf(stderr, "fetchctl: cannot connect to %s: %s\n", path,
		    strerror(err));
		return PROTO_EXIT_DENIED;
	}
}

int
ctlconn_connect(struct ctlconn *c, const char *path, int quiet)
{
	struct sockaddr_un sun;
	int fd, saved;

	ctlconn_close(c);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		if (!quiet)
			fprintf(stderr, "fetchctl: socket path %s is too "
			    "long\n", path);
		return PROTO_EXIT_USAGE;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		if (!quiet)
			fprintf(stderr, "fetchctl: socket: %s\n",
			    strerror(errno));
		return PROTO_EXIT_DENIED;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		c->fd = fd;
		return PROTO_EXIT_OK;
	}
	saved = errno;
	close(fd);
	if (quiet)
		return saved == ENOENT || saved == ENOTDIR ||
		    saved == ECONNREFUSED ? PROTO_EXIT_NOT_RUNNING :
		    PROTO_EXIT_DENIED;
	return connect_failed(path, saved);
}

void
ctlconn_close(struct ctlconn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->consumed = 0;
}

void
ctlconn_free(struct ctlconn *c)
{
	ctlconn_close(c);
	free(c->buf);
	c->buf = NULL;
	c->cap = 0;
}

int
ctlconn_send(struct ctlconn *c, const char *line)
{
	size_t off = 0, n = strlen(line);
	ssize_t w;

	while (off < n) {
		w = send(c->fd, line + off, n - off, MSG_NOSIGNAL);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			/* The daemon may have refused us with a reply
			 * already on its way: read it rather than guess. */
			if (errno == EPIPE || errno == ECONNRESET)
				return 0;
			fprintf(stderr, "fetchctl: sending to fetchd: %s\n",
			    strerror(errno));
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

/* Room in c->buf for another read of 64 KiB. 0, or -1 (said). */
static int
reply_room(struct ctlconn *c)
{
	char *nb;

	if (c->len + 65536 + 1 <= c->cap)
		return 0;
	if (c->cap >= CTLCONN_REPLY_MAX) {
		fprintf(stderr, "fetchctl: reply longer than %d bytes\n",
		    CTLCONN_REPLY_MAX);
		return -1;
	}
	if ((nb = realloc(c->buf, c->cap * 2 + 65536 + 1)) == NULL) {
		fprintf(stderr, "fetchctl: out of memory\n");
		return -1;
	}
	c->buf = nb;
	c->cap = c->cap * 2 + 65536 + 1;
	return 0;
}

/*
 * Wait for the daemon to send: CTLCONN_LINE when it has, else
 * CTLCONN_ERROR (said), CTLCONN_TIMEOUT or CTLCONN_INTR. The stop flag is
 * looked at before each poll and the poll lasts at most a second: a
 * signal that came just before it is seen within that second.
 */
static int
wait_readable(const struct ctlconn *c, int timeout_ms)
{
	double end = util_mono() + timeout_ms / 1000.0;
	struct pollfd pfd;
	int rv, slice;

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	for (;;) {
		if (c->stop != NULL && *c->stop)
			return CTLCONN_INTR;
		slice = 1000;
		if (timeout_ms >= 0 && (end - util_mono()) * 1000 < slice)
			slice = (int)ceil((end - util_mono()) * 1000);
		if (slice <= 0)
			return CTLCONN_TIMEOUT;
		rv = poll(&pfd, 1, slice);
		if (rv == -1 && errno != EINTR) {
			fprintf(stderr, "fetchctl: poll: %s\n",
			    strerror(errno));
			return CTLCONN_ERROR;
		}
		if (rv > 0)
			return CTLCONN_LINE;
	}
}

/* A complete line in the buffer into *line: 1, else 0. */
static int
take_line(struct ctlconn *c, char **line)
{
	char *nl;

	if (c->len == 0 || (nl = memchr(c->buf, '\n', c->len)) == NULL)
		return 0;
	*nl = '\0';
	c->consumed = (size_t)(nl - c->buf) + 1;
	*line = c->buf;
	return 1;
}

int
ctlconn_read_line(struct ctlconn *c, int timeout_ms, char **line)
{
	ssize_t r;
	int rv;

	if (c->consumed > 0) {
		memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
		c->len -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		if (take_line(c, line))
			return CTLCONN_LINE;
		if (reply_room(c) == -1)
			return CTLCONN_ERROR;
		if ((rv = wait_readable(c, timeout_ms)) != CTLCONN_LINE)
			return rv;
		r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == ECONNRESET)
			return CTLCONN_EOF;
		if (r == -1) {
			fprintf(stderr, "fetchctl: reading from fetchd: %s\n",
			    strerror(errno));
			return CTLCONN_ERROR;
		}
		if (r == 0) {
			if (c->len == 0)
				return CTLCONN_EOF;
			/* A last line without its newline. */
			c->buf[c->len] = '\0';
			c->consumed = c->len;
			*line = c->buf;
			return CTLCONN_LINE;
		}
		c->len += (size_t)r;
	}
}

json_t *
ctlconn_decode(const char *line, int *status)
{
	const json_t *e;
	json_t *o;

	*status = PROTO_EXIT_ERROR;
	if ((o = json_loads(line, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	/* An event line may have an "error" member (url_done's): only a
	 * line that is not an event can be an error reply. */
	if ((e = json_object_get(o, PROTO_KEY_ERROR)) == NULL ||
	    json_object_get(o, FEED_EVENT) != NULL)
		*status = PROTO_EXIT_OK;
	else if (json_is_true(json_object_get(o, PROTO_KEY_DENIED)))
		*status = PROTO_EXIT_DENIED;
	return o;
}

void
ctlconn_say(const char *line, const json_t *o)
{
	const json_t *e = json_object_get(o, PROTO_KEY_ERROR);
	char shown[128];

	if (json_object_get(o, FEED_EVENT) != NULL)
		return;
	if (o == NULL) {
		proto_printable(line, strlen(line), shown, sizeof(shown));
		fprintf(stderr, "fetchctl: fetchd sent something that is not "
		    "a JSON object: %s\n", shown);
	} else if (e != NULL)
		fprintf(stderr, "fetchctl: fetchd: %s\n", json_is_string(e) ?
		    json_string_value(e) : "error");
}

json_t *
ctlconn_parse(const char *line, int *status)
{
	json_t *o = ctlconn_decode(line, status);

	if (o == NULL || *status != PROTO_EXIT_OK)
		ctlconn_say(line, o);
	return o;
}
