/*
 * fetchctl.c: the command-line client of fetchd.
 *
 * Every command but `submit` is one request line on the control socket
 * and the JSON replies to it (proto.h), printed for people, passed through
 * untouched with --json, or turned into Prometheus text. `submit` needs no
 * daemon: it stages each job in spool/tmp, validates the staged copy with
 * the daemon's own parser, and only when every job is good renames them
 * into spool/new, so the daemon never sees a partial or malformed job.
 *
 * Exit statuses (enum proto_exit): 0 success, 1 the daemon answered with
 * an error (or the command failed otherwise), 2 usage, 3 fetchd is not
 * running, 4 permission denied or another connection failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "job.h"
#include "proto.h"
#include "spool.h"
#include "util.h"

#define DEFAULT_CONFIG SYSCONFDIR "/fetchd/fetchd.conf"
#define REPLY_MAX (64 * 1024 * 1024)    /* bytes in one reply line */
#define REPLY_TIMEOUT_MS 30000
#define SUBMIT_ERRORS_MAX 10            /* errors shown per job file */

enum output { OUT_HUMAN, OUT_JSON, OUT_PROMETHEUS };

struct ctl {
	const char *socket;             /* -s */
	const char *config;             /* -c */
	int config_given;
	const char *name;               /* submit --name */
	enum output out;
	int fd;
	char *buf;                      /* reply bytes read so far */
	size_t len, cap;
	size_t consumed;                /* bytes of the last line returned */
};

static volatile sig_atomic_t interrupted;

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: fetchctl [-s socket | -c config] [--json | --prometheus] "
	    "command [argument ...]\n"
	    "commands:\n"
	    "  ping                 check that fetchd answers\n"
	    "  stats                throughput, queues, latency, errors\n"
	    "  jobs                 the jobs queued, running and finished\n"
	    "  watch [ms]           live view, redrawn every ms (default %d)\n"
	    "  pause | resume       stop / start again starting transfers\n"
	    "  cancel JOB           cancel a job\n"
	    "  reload               re-read the configuration (as SIGHUP)\n"
	    "  submit [--name N] FILE... | -\n"
	    "                       validate and queue jobs (no daemon needed)\n"
	    "options:\n"
	    "  -s socket     the control socket (default: $FETCHD_SOCKET, "
	    "else the config's)\n"
	    "  -c config     configuration file (default %s)\n"
	    "  --json        print the daemon's JSON reply unchanged\n"
	    "  --prometheus  stats in the Prometheus text format\n"
	    "exit status: 0 ok, 1 the daemon answered with an error, 2 usage,\n"
	    "  3 fetchd is not running, 4 permission denied or another "
	    "connection failure\n", PROTO_WATCH_DEFAULT_MS, DEFAULT_CONFIG);
}

static void
on_signal(int sig)
{
	interrupted = 1;
}

/*
 * Configuration: only read when the socket is not given otherwise, or for
 * the spool. A missing default file means the built-in defaults.
 */
static int
load_config(struct ctl *c, struct config *cfg)
{
	char err[1024];

	if (config_load(c->config, cfg, err, sizeof(err)) == 0)
		return PROTO_EXIT_OK;
	if (!c->config_given && access(c->config, F_OK) == -1 &&
	    errno == ENOENT) {
		if (config_defaults(cfg) == -1) {
			fprintf(stderr, "fetchctl: out of memory\n");
			return PROTO_EXIT_ERROR;
		}
		return PROTO_EXIT_OK;
	}
	fprintf(stderr, "fetchctl: %s\n", err);
	if (access(c->config, R_OK) == -1 && errno == EACCES)
		return PROTO_EXIT_DENIED;
	return PROTO_EXIT_ERROR;
}

/*
 * The connection.
 */
static int
connect_daemon(struct ctl *c, const char *path)
{
	struct sockaddr_un sun;
	struct group *gr;
	struct stat sb;
	int fd, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "fetchctl: socket path %s is too long\n", path);
		return PROTO_EXIT_USAGE;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "fetchctl: socket: %s\n", strerror(errno));
		return PROTO_EXIT_DENIED;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		c->fd = fd;
		return PROTO_EXIT_OK;
	}
	saved = errno;
	close(fd);
	switch (saved) {
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
		    strerror(saved));
		return PROTO_EXIT_DENIED;
	}
}

static int
send_request(struct ctl *c, const char *line)
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

/*
 * Next reply line (NUL-terminated, without the newline) into *line, valid
 * until the next call. 1, 0 at the end of the stream, -1 on error (said),
 * -2 when interrupted.
 */
static int
read_line(struct ctl *c, int timeout_ms, char **line)
{
	struct pollfd pfd;
	char *nl, *nb;
	ssize_t r;
	int rv;

	if (c->consumed > 0) {
		memmove(c->buf, c->buf + c->consumed, c->len - c->consumed);
		c->len -= c->consumed;
		c->consumed = 0;
	}
	for (;;) {
		if (c->len > 0 && (nl = memchr(c->buf, '\n', c->len)) != NULL) {
			*nl = '\0';
			c->consumed = (size_t)(nl - c->buf) + 1;
			*line = c->buf;
			return 1;
		}
		if (c->len + 65536 + 1 > c->cap) {
			if (c->cap >= REPLY_MAX) {
				fprintf(stderr, "fetchctl: reply longer than "
				    "%d bytes\n", REPLY_MAX);
				return -1;
			}
			if ((nb = realloc(c->buf, c->cap * 2 + 65536 + 1)) ==
			    NULL) {
				fprintf(stderr, "fetchctl: out of memory\n");
				return -1;
			}
			c->buf = nb;
			c->cap = c->cap * 2 + 65536 + 1;
		}
		pfd.fd = c->fd;
		pfd.events = POLLIN;
		rv = poll(&pfd, 1, timeout_ms);
		if (interrupted)
			return -2;
		if (rv == -1 && errno == EINTR)
			continue;
		if (rv == -1) {
			fprintf(stderr, "fetchctl: poll: %s\n", strerror(errno));
			return -1;
		}
		if (rv == 0) {
			fprintf(stderr, "fetchctl: no reply from fetchd within "
			    "%d s\n", timeout_ms / 1000);
			return -1;
		}
		r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && errno == ECONNRESET && c->len == 0)
			return 0;
		if (r == -1) {
			fprintf(stderr, "fetchctl: reading from fetchd: %s\n",
			    strerror(errno));
			return -1;
		}
		if (r == 0) {
			if (c->len == 0)
				return 0;
			/* A last line without its newline. */
			c->buf[c->len] = '\0';
			c->consumed = c->len;
			*line = c->buf;
			return 1;
		}
		c->len += (size_t)r;
	}
}

/*
 * Parse a reply. NULL (said) when it is not JSON. *status is set for an
 * error reply: 4 when the daemon refused us, else 1.
 */
static json_t *
parse_reply(const char *line, int *status)
{
	json_error_t jerr;
	const json_t *e;
	json_t *o;

	*status = PROTO_EXIT_OK;
	if ((o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(o)) {
		fprintf(stderr, "fetchctl: fetchd sent something that is not "
		    "a JSON object: %s\n", jerr.text);
		json_decref(o);
		*status = PROTO_EXIT_ERROR;
		return NULL;
	}
	if ((e = json_object_get(o, PROTO_KEY_ERROR)) != NULL) {
		fprintf(stderr, "fetchctl: fetchd: %s\n", json_is_string(e) ?
		    json_string_value(e) : "error");
		*status = json_is_true(json_object_get(o, PROTO_KEY_DENIED)) ?
		    PROTO_EXIT_DENIED : PROTO_EXIT_ERROR;
	}
	return o;
}

/*
 * Output for people.
 */
static void
fmt_duration(double s, char *buf, size_t len)
{
	long t = (long)s;

	if (t >= 86400)
		snprintf(buf, len, "%ldd%02ldh%02ldm", t / 86400,
		    t % 86400 / 3600, t % 3600 / 60);
	else if (t >= 3600)
		snprintf(buf, len, "%ldh%02ldm%02lds", t / 3600, t % 3600 / 60,
		    t % 60);
	else if (t >= 60)
		snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, len, "%.1fs", s);
}

static const char *
str_at(const json_t *o, const char *path)
{
	const char *s = json_string_value(proto_get(o, path));

	return s != NULL ? s : "?";
}

/* The summary `stats` prints and `watch` redraws: lines ending in eol. */
static void
print_summary(FILE *fp, const json_t *st, const char *eol, int full)
{
	static const char *const windows[] = { "1s", "10s", "60s" };
	const json_t *errs, *v;
	const char *key;
	char up[32], b[32], rss[32], path[64];
	size_t i;
	int any;

	fmt_duration(proto_num(st, "uptime_s", 0), up, sizeof(up));
	fprintf(fp, "fetchd %s (pid %.0f): %s model, %.0f workers "
	    "(%.0f busy), up %s%s%s", str_at(st, "version"),
	    proto_num(st, "pid", 0), str_at(st, "model"),
	    proto_num(st, "workers", 0),
	    proto_num(st, "process.workers_busy", 0), up,
	    json_is_true(proto_get(st, "paused")) ? ", PAUSED" : "", eol);
	fprintf(fp, "throughput ");
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "rate.%s.bytes_per_s", windows[i]);
		proto_fmt_bytes(proto_num(st, path, 0), b, sizeof(b));
		snprintf(path, sizeof(path), "rate.%s.urls_per_s", windows[i]);
		fprintf(fp, " %4s %s/s %.1f URL/s%s", windows[i], b,
		    proto_num(st, path, 0), i < 2 ? "," : "");
	}
	fprintf(fp, "%s", eol);
	fprintf(fp, "transfers   %.0f active, %.0f queued, %.0f done, "
	    "%.0f failed, %.0f retried%s",
	    proto_num(st, "transfers.active", 0),
	    proto_num(st, "transfers.queued", 0),
	    proto_num(st, "transfers.done", 0),
	    proto_num(st, "transfers.failed", 0),
	    proto_num(st, "transfers.retried", 0), eol);
	fprintf(fp, "jobs        %.0f active, %.0f queued, %.0f done, "
	    "%.0f failed%s",
	    proto_num(st, "jobs.active", 0), proto_num(st, "jobs.queued", 0),
	    proto_num(st, "jobs.done", 0), proto_num(st, "jobs.failed", 0),
	    eol);
	proto_fmt_bytes(proto_num(st, "bytes_total", 0), b, sizeof(b));
	fprintf(fp, "received    %s in %.0f URLs%s", b,
	    proto_num(st, "urls_total", 0), eol);
	fprintf(fp, "ttfb ms     p50 %.1f, p90 %.1f, p99 %.1f, max %.1f%s",
	    proto_num(st, "latency_ms.ttfb.p50", 0),
	    proto_num(st, "latency_ms.ttfb.p90", 0),
	    proto_num(st, "latency_ms.ttfb.p99", 0),
	    proto_num(st, "latency_ms.ttfb.max", 0), eol);
	fprintf(fp, "total ms    p50 %.1f, p90 %.1f, p99 %.1f, max %.1f%s",
	    proto_num(st, "latency_ms.total.p50", 0),
	    proto_num(st, "latency_ms.total.p90", 0),
	    proto_num(st, "latency_ms.total.p99", 0),
	    proto_num(st, "latency_ms.total.max", 0), eol);
	if (!full)
		return;
	fprintf(fp, "errors     ");
	any = 0;
	if (json_is_object(errs = proto_get(st, "transfers.errors")))
		json_object_foreach((json_t *)errs, key, v)
			if (json_integer_value(v) > 0) {
				fprintf(fp, " %s %lld", key,
				    (long long)json_integer_value(v));
				any = 1;
			}
	fprintf(fp, "%s%s", any ? "" : " none", eol);
	proto_fmt_bytes(proto_num(st, "process.rss_bytes", 0), rss,
	    sizeof(rss));
	fprintf(fp, "process     cpu %.2fs user, %.2fs sys; rss %s; %.0f open "
	    "fds; %.0f children restarted%s",
	    proto_num(st, "process.cpu_user_s", 0),
	    proto_num(st, "process.cpu_sys_s", 0), rss,
	    proto_num(st, "process.open_fds", 0),
	    proto_num(st, "process.children_restarted", 0), eol);
}

/* "label: N (first, second, ...)" from the count and the names at the
 * paths given; no parentheses for no names. */
static void
print_names(const json_t *o, const char *label, const char *count,
    const char *names, const char *open)
{
	const json_t *j;
	size_t i;

	printf("%s: %.0f", label, proto_num(o, count, 0));
	json_array_foreach((json_t *)proto_get(o, names), i, j)
		printf("%s%s", i == 0 ? open : ", ", json_string_value(j));
	printf("%s\n", json_array_size(proto_get(o, names)) > 0 ? ")" : "");
}

static void
print_jobs(const json_t *o)
{
	const json_t *arr, *j;
	char b[32];
	size_t i;

	arr = proto_get(o, "active");
	printf("%-40s %-10s %8s %8s %7s %7s %10s\n", "JOB", "STATE", "URLS",
	    "DONE", "FAILED", "RUNNING", "BYTES");
	json_array_foreach((json_t *)arr, i, j) {
		proto_fmt_bytes(proto_num(j, "bytes", 0), b, sizeof(b));
		printf("%-40s %-10s %8.0f %8.0f %7.0f %7.0f %10s\n",
		    str_at(j, "name"), str_at(j, "state"),
		    proto_num(j, "urls", 0), proto_num(j, "done", 0),
		    proto_num(j, "failed", 0), proto_num(j, "running", 0), b);
	}
	print_names(o, "queued", "queued.count", "queued.names", " (");
	print_names(o, "done", "done.count", "done.recent", " (latest: ");
	print_names(o, "failed", "failed.count", "failed.recent",
	    " (latest: ");
}

/* The reload reply, naming the changed options that wait for a restart. */
static void
print_reload(const json_t *o)
{
	const json_t *names = json_object_get(o, PROTO_KEY_RESTART_NEEDED);
	const json_t *v;
	size_t i;

	printf("configuration reloaded\n");
	if (json_array_size(names) == 0)
		return;
	printf("not applied until fetchd restarts (running values kept):");
	json_array_foreach(names, i, v)
		printf("%s %s", i == 0 ? "" : ",", json_string_value(v) ?
		    json_string_value(v) : "?");
	printf("\n");
}

/*
 * Commands on the socket.
 */
static int
print_reply(struct ctl *c, const char *cmd, const char *arg,
    const char *line, const json_t *o)
{
	char *text;

	if (c->out == OUT_JSON) {
		printf("%s\n", line);
		return PROTO_EXIT_OK;
	}
	if (c->out == OUT_PROMETHEUS) {
		if ((text = proto_prometheus(o)) == NULL) {
			fprintf(stderr, "fetchctl: out of memory\n");
			return PROTO_EXIT_ERROR;
		}
		fputs(text, stdout);
		free(text);
		return PROTO_EXIT_OK;
	}
	if (strcmp(cmd, PROTO_REQ_PING) == 0)
		printf("fetchd %s is running (pid %.0f)\n",
		    str_at(o, PROTO_KEY_VERSION), proto_num(o, PROTO_KEY_PID, 0));
	else if (strcmp(cmd, PROTO_REQ_STATS) == 0)
		print_summary(stdout, o, "\n", 1);
	else if (strcmp(cmd, PROTO_REQ_JOBS) == 0)
		print_jobs(o);
	else if (strcmp(cmd, PROTO_REQ_PAUSE) == 0)
		printf("paused: running transfers go on, no new ones start\n");
	else if (strcmp(cmd, PROTO_REQ_RESUME) == 0)
		printf("resumed\n");
	else if (strcmp(cmd, PROTO_REQ_CANCEL) == 0)
		printf("cancelled %s\n", arg);
	else if (strcmp(cmd, PROTO_REQ_RELOAD) == 0)
		print_reload(o);
	return PROTO_EXIT_OK;
}

static int
run_simple(struct ctl *c, const char *cmd, const char *arg)
{
	char req[PROTO_LINE_MAX + 2], *line;
	json_t *o;
	int rv, status;

	snprintf(req, sizeof(req), "%s%s%s\n", cmd, arg != NULL ? " " : "",
	    arg != NULL ? arg : "");
	if (send_request(c, req) == -1)
		return PROTO_EXIT_DENIED;
	if ((rv = read_line(c, REPLY_TIMEOUT_MS, &line)) != 1) {
		if (rv == 0)
			fprintf(stderr, "fetchctl: fetchd closed the connection "
			    "without a reply\n");
		return PROTO_EXIT_ERROR;
	}
	if ((o = parse_reply(line, &status)) == NULL)
		return PROTO_EXIT_ERROR;
	if (status == PROTO_EXIT_OK)
		status = print_reply(c, cmd, arg, line, o);
	json_decref(o);
	return status;
}

static int
run_watch(struct ctl *c, long ms)
{
	char req[64], *line, stamp[16], status[512];
	struct sigaction sa;
	struct tm tm;
	time_t now;
	json_t *o;
	int rv, rc = PROTO_EXIT_OK, tty = isatty(STDOUT_FILENO), first = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);   /* no SA_RESTART: poll returns */
	sigaction(SIGTERM, &sa, NULL);

	snprintf(req, sizeof(req), "%s %ld\n", PROTO_REQ_WATCH, ms);
	if (send_request(c, req) == -1)
		return PROTO_EXIT_DENIED;
	for (;;) {
		rv = read_line(c, (int)(ms * 3 + 10000), &line);
		if (rv == -2)
			break;
		if (rv != 1) {
			if (rv == 0)
				fprintf(stderr, "fetchctl: fetchd closed the "
				    "connection\n");
			rc = PROTO_EXIT_ERROR;
			break;
		}
		if ((o = parse_reply(line, &rv)) == NULL || rv != 0) {
			json_decref(o);
			rc = rv != 0 ? rv : PROTO_EXIT_ERROR;
			break;
		}
		if (c->out == OUT_JSON) {
			printf("%s\n", line);
		} else if (tty) {
			/* Home, each line cleared to its end, then the rest
			 * of the screen. */
			printf("%s\033[H", first ? "\033[2J" : "");
			now = time(NULL);
			localtime_r(&now, &tm);
			strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
			printf("%s  (every %ld ms; ^C to stop)\033[K\n", stamp,
			    ms);
			print_summary(stdout, o, "\033[K\n", 0);
			printf("\033[J");
		} else {
			now = time(NULL);
			localtime_r(&now, &tm);
			strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
			proto_status_line(o, status, sizeof(status));
			printf("%s %s\n", stamp, status);
		}
		first = 0;
		json_decref(o);
		if (fflush(stdout) == EOF) {
			rc = PROTO_EXIT_ERROR;  /* the reader went away */
			break;
		}
	}
	return rc;
}

/*
 * submit.
 */
struct staged {
	const char *file;               /* as given */
	char name[SPOOL_NAME_MAX + 1];
	int created;
};

/*
 * basename of file with anything outside [A-Za-z0-9._+@=,-] replaced and
 * leading dots dropped, then ".TIME.PID.N": unique per process, sortable,
 * and what spool_name_valid() accepts.
 */
static int
make_name(const char *file, unsigned n, char *buf, size_t len)
{
	char base[SPOOL_NAME_MAX + 1], suffix[64];
	const char *p;
	size_t i = 0, keep;

	p = strcmp(file, "-") == 0 ? "stdin" : file;
	if (strrchr(p, '/') != NULL)
		p = strrchr(p, '/') + 1;
	while (*p == '.')
		p++;
	for (; *p != '\0' && i < sizeof(base) - 1; p++)
		base[i++] = (strchr("._+@=,-", *p) != NULL ||
		    (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9')) ? *p : '_';
	base[i] = '\0';
	if (i == 0)
		snprintf(base, sizeof(base), "job");
	snprintf(suffix, sizeof(suffix), ".%lld.%ld.%u",
	    (long long)time(NULL), (long)getpid(), n);
	keep = SPOOL_NAME_MAX - strlen(suffix);
	if (strlen(base) > keep)
		base[keep] = '\0';
	if ((size_t)snprintf(buf, len, "%s%s", base, suffix) >= len)
		return -1;
	return spool_name_valid(buf) ? 0 : -1;
}

/* Copy file (or stdin) into tmp/<s->name>, synced. 0 or -1 (said). */
static int
stage(int tmpfd, struct staged *s, int *outfd)
{
	char buf[65536];
	ssize_t r;
	int in, fd;

	if (strcmp(s->file, "-") == 0)
		in = STDIN_FILENO;
	else if ((in = open(s->file, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "fetchctl: %s: %s\n", s->file, strerror(errno));
		return -1;
	}
	fd = openat(tmpfd, s->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0640);
	if (fd == -1) {
		fprintf(stderr, "fetchctl: spool tmp/%s: %s\n", s->name,
		    strerror(errno));
		goto fail;
	}
	s->created = 1;
	/* The daemon's group must be able to read it whatever our umask. */
	if (fchmod(fd, 0640) == -1)
		goto werr;
	for (;;) {
		r = read(in, buf, sizeof(buf));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			fprintf(stderr, "fetchctl: %s: %s\n", s->file,
			    strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		if (util_write_all(fd, buf, (size_t)r) == -1)
			goto werr;
	}
	if (fsync(fd) == -1)
		goto werr;
	if (in != STDIN_FILENO)
		close(in);
	*outfd = fd;
	return 0;
werr:
	fprintf(stderr, "fetchctl: spool tmp/%s: %s\n", s->name,
	    strerror(errno));
fail:
	if (fd != -1)
		close(fd);
	if (in != STDIN_FILENO)
		close(in);
	return -1;
}

/* Validate the staged copy with the daemon's parser. 0 or -1 (said). */
static int
validate(int fd, const struct staged *s, long max_urls)
{
	struct job_reader *r;
	struct job_entry e;
	char err[JOB_ERR_MAX + 64];
	long urls = 0, errors = 0;
	unsigned long last = (unsigned long)-1;
	int rv;

	if (lseek(fd, 0, SEEK_SET) == -1 || (r = job_reader_new(fd)) == NULL) {
		fprintf(stderr, "fetchctl: %s: %s\n", s->file, strerror(errno));
		return -1;
	}
	for (;;) {
		memset(&e, 0, sizeof(e));
		rv = job_reader_next(r, &e, err, sizeof(err));
		if (rv == 0)
			break;
		if (rv == 1) {
			job_entry_free(&e);
			urls++;
			continue;
		}
		if (++errors <= SUBMIT_ERRORS_MAX)
			fprintf(stderr, "%s: %s\n", s->file, err);
		if (job_reader_lineno(r) == last)
			break;          /* a read error is sticky */
		last = job_reader_lineno(r);
	}
	job_reader_free(r);
	if (errors > SUBMIT_ERRORS_MAX)
		fprintf(stderr, "%s: %ld more errors\n", s->file,
		    errors - SUBMIT_ERRORS_MAX);
	if (errors == 0 && urls == 0) {
		fprintf(stderr, "%s: no URLs\n", s->file);
		errors++;
	}
	if (errors == 0 && urls > max_urls) {
		fprintf(stderr, "%s: %ld URLs, more than max_job_urls (%ld)\n",
		    s->file, urls, max_urls);
		errors++;
	}
	return errors == 0 ? 0 : -1;
}

static int
open_dir(const char *spool, const char *sub)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", spool, sub);
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		fprintf(stderr, "fetchctl: %s: %s\n", path, strerror(errno));
	return fd;
}

/*
 * Stage every file, validate every staged copy, and only then rename them
 * all into new/: a bad job anywhere submits nothing.
 */
static int
run_submit(struct ctl *c, int nfiles, char **files)
{
	struct config cfg;
	struct staged *st = NULL;
	int tmpfd = -1, newfd = -1, rc = PROTO_EXIT_ERROR, bad = 0, i, fd;
	int stdin_seen = 0;

	memset(&cfg, 0, sizeof(cfg));
	if ((rc = load_config(c, &cfg)) != PROTO_EXIT_OK)
		return rc;
	rc = PROTO_EXIT_ERROR;
	if (c->name != NULL && nfiles != 1) {
		fprintf(stderr, "fetchctl: --name takes one file\n");
		rc = PROTO_EXIT_USAGE;
		goto out;
	}
	if (c->name != NULL && !spool_name_valid(c->name)) {
		fprintf(stderr, "fetchctl: %s is not a valid job name: use "
		    "[A-Za-z0-9._+@=,-], not starting with '.'\n", c->name);
		rc = PROTO_EXIT_USAGE;
		goto out;
	}
	for (i = 0; i < nfiles; i++)
		if (strcmp(files[i], "-") == 0 && stdin_seen++) {
			fprintf(stderr, "fetchctl: - given twice\n");
			rc = PROTO_EXIT_USAGE;
			goto out;
		}
	if ((st = calloc((size_t)nfiles, sizeof(*st))) == NULL) {
		fprintf(stderr, "fetchctl: out of memory\n");
		goto out;
	}
	if ((tmpfd = open_dir(cfg.spool_dir, "tmp")) == -1 ||
	    (newfd = open_dir(cfg.spool_dir, "new")) == -1) {
		if (errno == EACCES)
			rc = PROTO_EXIT_DENIED;
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		st[i].file = files[i];
		if (c->name != NULL)
			snprintf(st[i].name, sizeof(st[i].name), "%s", c->name);
		else if (make_name(files[i], (unsigned)i, st[i].name,
		    sizeof(st[i].name)) == -1) {
			fprintf(stderr, "fetchctl: %s: cannot make a job name\n",
			    files[i]);
			bad = 1;
			continue;
		}
		if (stage(tmpfd, &st[i], &fd) == -1) {
			bad = 1;
			continue;
		}
		if (validate(fd, &st[i], cfg.max_job_urls) == -1)
			bad = 1;
		close(fd);
	}
	if (bad) {
		fprintf(stderr, "fetchctl: nothing submitted\n");
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		if (util_rename_noreplace(tmpfd, st[i].name, newfd,
		    st[i].name) == -1) {
			fprintf(stderr, "fetchctl: %s: new/%s: %s\n",
			    st[i].file, st[i].name, errno == EEXIST ?
			    "a job of that name is queued already" :
			    strerror(errno));
			goto out;
		}
		st[i].created = 0;
	}
	if (fsync(newfd) == -1) {
		fprintf(stderr, "fetchctl: fsync %s/new: %s\n", cfg.spool_dir,
		    strerror(errno));
		goto out;
	}
	for (i = 0; i < nfiles; i++)
		printf("%s\n", st[i].name);
	rc = PROTO_EXIT_OK;
out:
	for (i = 0; st != NULL && i < nfiles; i++)
		if (st[i].created && unlinkat(tmpfd, st[i].name, 0) == -1)
			fprintf(stderr, "fetchctl: cannot remove tmp/%s: %s\n",
			    st[i].name, strerror(errno));
	if (tmpfd != -1)
		close(tmpfd);
	if (newfd != -1)
		close(newfd);
	free(st);
	config_free(&cfg);
	return rc;
}

/*
 * main.
 */
static int
check_args(const char *cmd, int argc, int min, int max)
{
	if (argc < min || argc > max) {
		fprintf(stderr, "fetchctl: %s: wrong number of arguments\n",
		    cmd);
		usage(stderr);
		return -1;
	}
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c;
	struct config cfg;
	const char *cmd, *arg = NULL, *path, *p;
	char *end;
	long ms = PROTO_WATCH_DEFAULT_MS;
	int ch, rc, nargs;

	memset(&c, 0, sizeof(c));
	memset(&cfg, 0, sizeof(cfg));
	c.fd = -1;
	c.config = DEFAULT_CONFIG;
	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "s:c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			c.socket = optarg;
			break;
		case 'c':
			c.config = optarg;
			c.config_given = 1;
			break;
		case 'j':
			c.out = OUT_JSON;
			break;
		case 'p':
			c.out = OUT_PROMETHEUS;
			break;
		case 'n':
			c.name = optarg;
			break;
		case 'h':
			usage(stdout);
			return PROTO_EXIT_OK;
		default:
			fprintf(stderr, "fetchctl: bad option or missing "
			    "argument: %s\n", argv[optind - 1]);
			usage(stderr);
			return PROTO_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return PROTO_EXIT_USAGE;
	}
	cmd = argv[optind++];
	nargs = argc - optind;

	if (strcmp(cmd, "submit") == 0) {
		if (nargs < 1) {
			fprintf(stderr, "fetchctl: submit: no job file\n");
			usage(stderr);
			return PROTO_EXIT_USAGE;
		}
		return run_submit(&c, nargs, argv + optind);
	}
	if (c.name != NULL) {
		fprintf(stderr, "fetchctl: --name is for submit\n");
		return PROTO_EXIT_USAGE;
	}
	if (c.out == OUT_PROMETHEUS && strcmp(cmd, PROTO_REQ_STATS) != 0) {
		fprintf(stderr, "fetchctl: --prometheus is for stats\n");
		return PROTO_EXIT_USAGE;
	}
	if (strcmp(cmd, PROTO_REQ_PING) == 0 ||
	    strcmp(cmd, PROTO_REQ_STATS) == 0 ||
	    strcmp(cmd, PROTO_REQ_JOBS) == 0 ||
	    strcmp(cmd, PROTO_REQ_PAUSE) == 0 ||
	    strcmp(cmd, PROTO_REQ_RESUME) == 0 ||
	    strcmp(cmd, PROTO_REQ_RELOAD) == 0) {
		if (check_args(cmd, nargs, 0, 0) == -1)
			return PROTO_EXIT_USAGE;
	} else if (strcmp(cmd, PROTO_REQ_CANCEL) == 0) {
		if (check_args(cmd, nargs, 1, 1) == -1)
			return PROTO_EXIT_USAGE;
		arg = argv[optind];
		for (p = arg; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				break;
		if (*arg == '\0' || *p != '\0' ||
		    strlen(arg) > PROTO_LINE_MAX - 16) {
			fprintf(stderr, "fetchctl: %s is not a job name\n", arg);
			return PROTO_EXIT_USAGE;
		}
	} else if (strcmp(cmd, PROTO_REQ_WATCH) == 0) {
		if (check_args(cmd, nargs, 0, 1) == -1)
			return PROTO_EXIT_USAGE;
		if (nargs == 1) {
			errno = 0;
			ms = strtol(argv[optind], &end, 10);
			if (errno != 0 || *end != '\0' ||
			    ms < PROTO_WATCH_MIN_MS || ms > PROTO_WATCH_MAX_MS) {
				fprintf(stderr, "fetchctl: watch: the interval "
				    "is %d to %d ms\n", PROTO_WATCH_MIN_MS,
				    PROTO_WATCH_MAX_MS);
				return PROTO_EXIT_USAGE;
			}
		}
	} else {
		fprintf(stderr, "fetchctl: unknown command %s\n", cmd);
		usage(stderr);
		return PROTO_EXIT_USAGE;
	}

	/* The socket: -s, else $FETCHD_SOCKET, else the config's. */
	if ((path = c.socket) == NULL &&
	    ((path = getenv("FETCHD_SOCKET")) == NULL || *path == '\0')) {
		if ((rc = load_config(&c, &cfg)) != PROTO_EXIT_OK)
			return rc;
		path = cfg.socket_path;
	}
	if ((rc = connect_daemon(&c, path)) != PROTO_EXIT_OK) {
		config_free(&cfg);
		return rc;
	}
	if (strcmp(cmd, PROTO_REQ_WATCH) == 0)
		rc = run_watch(&c, ms);
	else
		rc = run_simple(&c, cmd, arg);
	close(c.fd);
	free(c.buf);
	config_free(&cfg);
	if (fflush(stdout) == EOF && rc == PROTO_EXIT_OK)
		rc = PROTO_EXIT_ERROR;
	return rc;
}
