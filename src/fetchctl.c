/*
 * fetchctl.c: the command-line client of fetchd.
 *
 * Every command but `submit` is one request line on the control socket
 * and the JSON replies to it (proto.h), printed for people (`stats
 * --cluster`: the cluster's part alone), passed through untouched with
 * --json, or turned into Prometheus text; the renderings, the commands,
 * their arguments and their usage lines are proto.c's. `submit`
 * needs no daemon: spool_submit() stages each job in spool/tmp, the
 * daemon's own parser validates the staged copy here, and only when every
 * job is good does spool.c rename them into spool/new, so the daemon never
 * sees a partial or malformed job.
 *
 * Exit statuses (enum proto_exit): 0 success, 1 the daemon answered with
 * an error (or the command failed otherwise), 2 usage, 3 fetchd is not
 * running, 4 permission denied or another connection failure, 5 `stats
 * --cluster` of a daemon not in cluster mode.
 */
#include <errno.h>
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
#include "log.h"
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
	int cluster;                    /* stats --cluster */
	int help;                       /* -h */
	enum output out;
	int fd;
	char *buf;                      /* reply bytes read so far */
	size_t len, cap;
	size_t consumed;                /* bytes of the last line returned */
};

static volatile sig_atomic_t interrupted;

/* The commands' lines come from proto_cmds; submit is ours alone. */
static void
usage(FILE *fp)
{
	const struct proto_cmd *cmd;
	char word[64];
	size_t i;

	fprintf(fp, "usage: fetchctl [-s socket | -c config] "
	    "[--json | --prometheus] command [argument ...]\n"
	    "commands:\n");
	for (i = 0; i < PROTO_CMD__COUNT; i++) {
		cmd = &proto_cmds[i];
		snprintf(word, sizeof(word), "%s%s%s", cmd->name,
		    cmd->args[0] != '\0' ? " " : "", cmd->args);
		fprintf(fp, "  %-20s %s\n", word, cmd->help);
		if (cmd->id == PROTO_CMD_STATS)
			fprintf(fp, "  %-20s %s\n", "stats --cluster",
			    "cluster mode: this node, every node, the stream");
	}
	fprintf(fp,
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
	    "connection failure,\n"
	    "  5 stats --cluster and fetchd is not in cluster mode\n",
	    DEFAULT_CONFIG);
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

/* Room in c->buf for another read of 64 KiB. 0, or -1 (said). */
static int
reply_room(struct ctl *c)
{
	char *nb;

	if (c->len + 65536 + 1 <= c->cap)
		return 0;
	if (c->cap >= REPLY_MAX) {
		fprintf(stderr, "fetchctl: reply longer than %d bytes\n",
		    REPLY_MAX);
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

/* Wait for the daemon to send: 1 when it has, 0 to wait again (a signal
 * came), -1 on error or timeout (said), -2 when interrupted. */
static int
wait_reply(const struct ctl *c, int timeout_ms)
{
	struct pollfd pfd;
	int rv;

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	rv = poll(&pfd, 1, timeout_ms);
	if (interrupted)
		return -2;
	if (rv == -1 && errno == EINTR)
		return 0;
	if (rv == -1) {
		fprintf(stderr, "fetchctl: poll: %s\n", strerror(errno));
		return -1;
	}
	if (rv == 0) {
		fprintf(stderr, "fetchctl: no reply from fetchd within %d s\n",
		    timeout_ms / 1000);
		return -1;
	}
	return 1;
}

/*
 * Next reply line (NUL-terminated, without the newline) into *line, valid
 * until the next call. 1, 0 at the end of the stream, -1 on error (said),
 * -2 when interrupted.
 */
static int
read_line(struct ctl *c, int timeout_ms, char **line)
{
	char *nl;
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
		if (reply_room(c) == -1)
			return -1;
		if ((rv = wait_reply(c, timeout_ms)) == 0)
			continue;
		if (rv != 1)
			return rv;
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
static const char *
str_at(const json_t *o, const char *path)
{
	const char *s = json_string_value(proto_get(o, path));

	return s != NULL ? s : "?";
}

/* "which ms    p50 ..., max ..." from st's latency_ms.which. */
static void
print_latency(FILE *fp, const json_t *st, const char *which, const char *eol)
{
	static const char *const q[] = { "p50", "p90", "p99", "max" };
	char path[64], label[32];
	double v[4];
	size_t i;

	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "latency_ms.%s.%s", which, q[i]);
		v[i] = proto_num(st, path, 0);
	}
	snprintf(label, sizeof(label), "%s ms", which);
	fprintf(fp, "%-12sp50 %.1f, p90 %.1f, p99 %.1f, max %.1f%s", label,
	    v[0], v[1], v[2], v[3], eol);
}

/* What `stats` adds to the summary: errors by kind and the process. */
static void
print_summary_more(FILE *fp, const json_t *st, const char *eol)
{
	const json_t *errs, *v;
	const char *key;
	char rss[32];
	int any = 0;

	fprintf(fp, "errors     ");
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

/* The summary `stats` prints and `watch` redraws: lines ending in eol. */
static void
print_summary(FILE *fp, const json_t *st, const char *eol, int full)
{
	static const char *const windows[] = { "1s", "10s", "60s" };
	char up[32], b[32], path[64], line[256];
	size_t i;

	proto_fmt_duration(proto_num(st, "uptime_s", 0), up, sizeof(up));
	fprintf(fp, "fetchd %s (pid %.0f): %s model, %.0f worker%s "
	    "(%.0f busy), up %s%s%s", str_at(st, "version"),
	    proto_num(st, "pid", 0), str_at(st, "model"),
	    proto_num(st, "workers", 0),
	    util_plural(proto_num(st, "workers", 0)),
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
	if (proto_num(st, "jobs.waiting", 0) > 0)
		fprintf(fp, "spool       %.0f job%s waiting: %s%s",
		    proto_num(st, "jobs.waiting", 0),
		    proto_num(st, "jobs.waiting", 0) == 1 ? "" : "s",
		    str_at(st, "spool_error"), eol);
	proto_fmt_bytes(proto_num(st, "bytes_total", 0), b, sizeof(b));
	fprintf(fp, "received    %s in %.0f URL%s%s", b,
	    proto_num(st, "urls_total", 0),
	    util_plural(proto_num(st, "urls_total", 0)), eol);
	print_latency(fp, st, "ttfb", eol);
	print_latency(fp, st, "total", eol);
	if (proto_cluster_line(st, line, sizeof(line)) == 0)
		fprintf(fp, "cluster     %s%s", line, eol);
	if (full)
		print_summary_more(fp, st, eol);
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
		if (json_is_string(json_object_get(j, "waiting")))
			printf("  waiting: %s, retry in %.0f s\n",
			    str_at(j, "waiting"), proto_num(j, "retry_in_s", 0));
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
print_reply(struct ctl *c, const struct proto_cmd *cmd, const char *arg,
    const char *line, const json_t *o)
{
	char *text;

	if (c->cluster && !json_is_object(proto_get(o, "cluster"))) {
		fprintf(stderr, "fetchctl: fetchd is not in cluster mode "
		    "([cluster] redis is not set)\n");
		return PROTO_EXIT_NOT_CLUSTER;
	}
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
	switch (cmd->id) {
	case PROTO_CMD_PING:
		printf("fetchd %s is running (pid %.0f)\n",
		    str_at(o, PROTO_KEY_VERSION), proto_num(o, PROTO_KEY_PID, 0));
		break;
	case PROTO_CMD_STATS:
		if (!c->cluster)
			print_summary(stdout, o, "\n", 1);
		else if (proto_cluster_print(stdout, o,
		    (double)time(NULL)) == -1) {
			fprintf(stderr, "fetchctl: out of memory\n");
			return PROTO_EXIT_ERROR;
		}
		break;
	case PROTO_CMD_JOBS:
		print_jobs(o);
		break;
	case PROTO_CMD_PAUSE:
		printf("paused: running transfers go on, no new ones start\n");
		break;
	case PROTO_CMD_RESUME:
		printf("resumed\n");
		break;
	case PROTO_CMD_CANCEL:
		printf("cancelled %s\n", arg);
		break;
	case PROTO_CMD_RELOAD:
		print_reload(o);
		break;
	case PROTO_CMD_WATCH:           /* run_watch() prints its own */
	case PROTO_CMD_EVENTS:
	case PROTO_CMD_WAIT:
	case PROTO_CMD__COUNT:
		break;
	}
	return PROTO_EXIT_OK;
}

static int
run_simple(struct ctl *c, const struct proto_cmd *cmd, const char *arg)
{
	char req[PROTO_LINE_MAX + 2], *line;
	json_t *o;
	int rv, status;

	snprintf(req, sizeof(req), "%s%s%s\n", cmd->name,
	    arg != NULL ? " " : "", arg != NULL ? arg : "");
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

/* One reply of `watch`: the JSON line, a redrawn screen on a terminal,
 * else a time-stamped status line. */
static void
print_watch(const struct ctl *c, const char *line, const json_t *o, long ms,
    int tty, int first)
{
	char stamp[16], status[512];
	struct tm tm;
	time_t now;

	if (c->out == OUT_JSON) {
		printf("%s\n", line);
		return;
	}
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	if (tty) {
		/* Home, each line cleared to its end, then the rest of the
		 * screen. */
		printf("%s\033[H", first ? "\033[2J" : "");
		printf("%s  (every %ld ms; ^C to stop)\033[K\n", stamp, ms);
		print_summary(stdout, o, "\033[K\n", 0);
		printf("\033[J");
	} else {
		proto_status_line(o, status, sizeof(status));
		printf("%s %s\n", stamp, status);
	}
}

static int
run_watch(struct ctl *c, long ms)
{
	char req[64], *line;
	struct sigaction sa;
	json_t *o;
	int rv, rc = PROTO_EXIT_OK, tty = isatty(STDOUT_FILENO), first = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);   /* no SA_RESTART: poll returns */
	sigaction(SIGTERM, &sa, NULL);

	snprintf(req, sizeof(req), "%s %ld\n", proto_cmds[PROTO_CMD_WATCH].name,
	    ms);
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
		print_watch(c, line, o, ms, tty, first);
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

/*
 * spool_submit()'s check: the staged copy read with the daemon's own
 * parser, and its URLs counted against max_job_urls (*arg). 0 or -1
 * (said).
 */
static int
validate(int fd, const struct spool_submission *job, void *arg)
{
	const long *max_urls = arg;
	struct job_reader *r;
	struct job_entry e;
	char err[JOB_ERR_MAX + 64];
	long urls = 0, errors = 0;
	unsigned long last = (unsigned long)-1;
	int rv;

	if ((r = job_reader_new(fd)) == NULL) {
		fprintf(stderr, "fetchctl: %s: %s\n", job->path,
		    strerror(errno));
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
			fprintf(stderr, "%s: %s\n", job->path, err);
		if (job_reader_lineno(r) == last)
			break;          /* a read error is sticky */
		last = job_reader_lineno(r);
	}
	job_reader_free(r);
	if (errors > SUBMIT_ERRORS_MAX)
		fprintf(stderr, "%s: %ld more errors\n", job->path,
		    errors - SUBMIT_ERRORS_MAX);
	if (errors == 0 && urls == 0) {
		fprintf(stderr, "%s: no URLs\n", job->path);
		errors++;
	}
	if (errors == 0 && urls > *max_urls) {
		fprintf(stderr, "%s: %ld URLs, more than max_job_urls (%ld)\n",
		    job->path, urls, *max_urls);
		errors++;
	}
	return errors == 0 ? 0 : -1;
}

/* What submit refuses before touching the spool. PROTO_EXIT_OK, or
 * PROTO_EXIT_USAGE (said). */
static int
submit_usage(const struct ctl *c, int nfiles, char **files)
{
	int i, stdin_seen = 0;

	if (c->name != NULL && nfiles != 1) {
		fprintf(stderr, "fetchctl: --name takes one file\n");
		return PROTO_EXIT_USAGE;
	}
	if (c->name != NULL && !spool_name_valid(c->name)) {
		fprintf(stderr, "fetchctl: %s is not a valid job name: use "
		    "[A-Za-z0-9._+@=,-], not starting with '.'\n", c->name);
		return PROTO_EXIT_USAGE;
	}
	for (i = 0; i < nfiles; i++)
		if (strcmp(files[i], "-") == 0 && stdin_seen++) {
			fprintf(stderr, "fetchctl: - given twice\n");
			return PROTO_EXIT_USAGE;
		}
	return PROTO_EXIT_OK;
}

/*
 * A job per file: named by --name, or after the file ("stdin" for "-");
 * the name is kept in names[i]. 0, or -1 (said).
 */
static int
name_jobs(const struct ctl *c, int nfiles, char **files,
    struct spool_submission *jobs, char (*names)[SPOOL_NAME_MAX + 1])
{
	int i, in_stdin;

	for (i = 0; i < nfiles; i++) {
		in_stdin = strcmp(files[i], "-") == 0;
		if (c->name != NULL)
			snprintf(names[i], sizeof(names[i]), "%s", c->name);
		else if (spool_name_from_path(in_stdin ? "stdin" : files[i],
		    (unsigned)i, names[i], sizeof(names[i])) == -1) {
			fprintf(stderr, "fetchctl: %s: cannot make a job name\n",
			    files[i]);
			return -1;
		}
		jobs[i].name = names[i];
		jobs[i].path = files[i];
		jobs[i].fd = in_stdin ? STDIN_FILENO : -1;
	}
	return 0;
}

/* Hand the files to spool_submit(); print the names of the jobs queued. */
static int
submit_jobs(const struct ctl *c, struct spool *sp, long max_urls,
    int nfiles, char **files)
{
	struct spool_submission *jobs;
	char (*names)[SPOOL_NAME_MAX + 1];
	size_t done = 0, i;
	int rc = PROTO_EXIT_ERROR;

	jobs = calloc((size_t)nfiles, sizeof(*jobs));
	names = calloc((size_t)nfiles, sizeof(*names));
	if (jobs == NULL || names == NULL)
		fprintf(stderr, "fetchctl: out of memory\n");
	else if (name_jobs(c, nfiles, files, jobs, names) == 0) {
		if (spool_submit(sp, jobs, (size_t)nfiles, validate, &max_urls,
		    &done) == 0)
			rc = PROTO_EXIT_OK;
		else if (done == 0)
			fprintf(stderr, "fetchctl: nothing submitted\n");
		/* all of them, or those a failing file system let through */
		for (i = 0; i < done; i++)
			printf("%s\n", jobs[i].name);
	}
	free(jobs);
	free(names);
	return rc;
}

/*
 * A producer's submit: no daemon needed, only write access to the spool's
 * tmp/ and new/, which is opened but never created here.
 */
static int
run_submit(struct ctl *c, int nfiles, char **files)
{
	struct config cfg;
	struct spool sp;
	char err[1024];
	int rc, saved;

	memset(&cfg, 0, sizeof(cfg));
	if ((rc = load_config(c, &cfg)) != PROTO_EXIT_OK)
		return rc;
	if ((rc = submit_usage(c, nfiles, files)) != PROTO_EXIT_OK)
		goto out;
	if (spool_open_producer(&sp, cfg.spool_dir, err, sizeof(err)) == -1) {
		saved = errno;
		fprintf(stderr, "fetchctl: %s\n", err);
		rc = saved == EACCES ? PROTO_EXIT_DENIED : PROTO_EXIT_ERROR;
		goto out;
	}
	rc = submit_jobs(c, &sp, cfg.max_job_urls, nfiles, files);
	spool_close(&sp);
out:
	config_free(&cfg);
	return rc;
}

/*
 * main.
 */
static int
parse_options(struct ctl *c, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "cluster", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "s:c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			c->socket = optarg;
			break;
		case 'c':
			c->config = optarg;
			c->config_given = 1;
			break;
		case 'j':
			c->out = OUT_JSON;
			break;
		case 'p':
			c->out = OUT_PROMETHEUS;
			break;
		case 'n':
			c->name = optarg;
			break;
		case 'C':
			c->cluster = 1;
			break;
		case 'h':
			c->help = 1;
			return PROTO_EXIT_OK;
		default:
			fprintf(stderr, "fetchctl: bad option or missing "
			    "argument: %s\n", argv[optind - 1]);
			usage(stderr);
			return PROTO_EXIT_USAGE;
		}
	}
	return PROTO_EXIT_OK;
}

/* A job name fit to send: printable, no blanks, within a request line. */
static int
job_word_ok(const char *arg)
{
	const char *p;

	for (p = arg; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return 0;
	return *arg != '\0' && strlen(arg) <= PROTO_LINE_MAX - 16;
}

/*
 * The command word and its arguments, checked against proto_cmds before
 * anything is sent: *cmdp is set, and for watch *ms. PROTO_EXIT_OK, or
 * PROTO_EXIT_USAGE (said).
 */
static int
check_command(const struct ctl *c, const char *word, int nargs, char **args,
    const struct proto_cmd **cmdp, long *ms)
{
	const struct proto_cmd *cmd = proto_cmd_find(word);

	if (c->name != NULL) {
		fprintf(stderr, "fetchctl: --name is for submit\n");
		return PROTO_EXIT_USAGE;
	}
	if (c->out == OUT_PROMETHEUS &&
	    (cmd == NULL || cmd->id != PROTO_CMD_STATS)) {
		fprintf(stderr, "fetchctl: --prometheus is for stats\n");
		return PROTO_EXIT_USAGE;
	}
	if (c->cluster && (cmd == NULL || cmd->id != PROTO_CMD_STATS)) {
		fprintf(stderr, "fetchctl: --cluster is for stats\n");
		return PROTO_EXIT_USAGE;
	}
	if (c->cluster && c->out == OUT_PROMETHEUS) {
		fprintf(stderr, "fetchctl: --cluster and --prometheus: the "
		    "metrics have the cluster's already\n");
		return PROTO_EXIT_USAGE;
	}
	if (cmd == NULL) {
		fprintf(stderr, "fetchctl: unknown command %s\n", word);
		usage(stderr);
		return PROTO_EXIT_USAGE;
	}
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		fprintf(stderr, "fetchctl: %s: wrong number of arguments\n",
		    word);
		usage(stderr);
		return PROTO_EXIT_USAGE;
	}
	if (cmd->id == PROTO_CMD_CANCEL && !job_word_ok(args[0])) {
		fprintf(stderr, "fetchctl: %s is not a job name\n", args[0]);
		return PROTO_EXIT_USAGE;
	}
	if (cmd->id == PROTO_CMD_WATCH && nargs == 1 &&
	    proto_watch_ms(args[0], ms) == -1) {
		fprintf(stderr, "fetchctl: watch: the interval is %d to %d ms\n",
		    PROTO_WATCH_MIN_MS, PROTO_WATCH_MAX_MS);
		return PROTO_EXIT_USAGE;
	}
	*cmdp = cmd;
	return PROTO_EXIT_OK;
}

/* Connect (-s, else $FETCHD_SOCKET, else the config's socket) and run. */
static int
run_command(struct ctl *c, const struct proto_cmd *cmd, const char *arg,
    long ms)
{
	struct config cfg;
	const char *path;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	if ((path = c->socket) == NULL &&
	    ((path = getenv("FETCHD_SOCKET")) == NULL || *path == '\0')) {
		if ((rc = load_config(c, &cfg)) != PROTO_EXIT_OK)
			return rc;
		path = cfg.socket_path;
	}
	if ((rc = connect_daemon(c, path)) != PROTO_EXIT_OK) {
		config_free(&cfg);
		return rc;
	}
	if (cmd->id == PROTO_CMD_WATCH)
		rc = run_watch(c, ms);
	else
		rc = run_simple(c, cmd, arg);
	close(c->fd);
	free(c->buf);
	config_free(&cfg);
	if (fflush(stdout) == EOF && rc == PROTO_EXIT_OK)
		rc = PROTO_EXIT_ERROR;
	return rc;
}

int
main(int argc, char *argv[])
{
	const struct proto_cmd *cmd;
	struct ctl c;
	long ms = PROTO_WATCH_DEFAULT_MS;
	const char *word;
	int rc, nargs;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.config = DEFAULT_CONFIG;
	signal(SIGPIPE, SIG_IGN);
	/* What spool.c finds wrong during submit it says through log.c. */
	log_init("fetchctl", LOG_LVL_WARN);
	if ((rc = parse_options(&c, argc, argv)) != PROTO_EXIT_OK)
		return rc;
	if (c.help) {
		usage(stdout);
		return PROTO_EXIT_OK;
	}
	if (optind >= argc) {
		usage(stderr);
		return PROTO_EXIT_USAGE;
	}
	word = argv[optind++];
	nargs = argc - optind;
	if (strcmp(word, "submit") == 0) {
		if (nargs < 1) {
			fprintf(stderr, "fetchctl: submit: no job file\n");
			usage(stderr);
			return PROTO_EXIT_USAGE;
		}
		if (c.cluster) {
			fprintf(stderr, "fetchctl: --cluster is for stats\n");
			return PROTO_EXIT_USAGE;
		}
		return run_submit(&c, nargs, argv + optind);
	}
	if ((rc = check_command(&c, word, nargs, argv + optind, &cmd,
	    &ms)) != PROTO_EXIT_OK)
		return rc;
	return run_command(&c, cmd, nargs > 0 ? argv[optind] : NULL, ms);
}
