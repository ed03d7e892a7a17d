/*
 * fetchctl.c: the command-line client of fetchd.
 *
 * Most commands are one request line on the control socket (ctlconn.c)
 * and the JSON replies to it (proto.h), printed for people (`stats
 * --cluster`: the cluster's part alone; `jobs JOB`: jobinfo.c), passed
 * through untouched with --json, or turned into Prometheus text; the
 * renderings, the commands, their arguments and their usage lines are
 * proto.c's. `wait` and `events` follow jobs on a long connection
 * (follow.c). `submit` needs no daemon: spool_submit() stages each job in
 * spool/tmp, the daemon's own parser validates the staged copy here, and
 * only when every job is good does spool.c rename them into spool/new, so
 * the daemon never sees a partial or malformed job; `submit --wait` then
 * waits for them as `wait` does.
 *
 * Exit statuses (enum proto_exit): 0 success, 1 the daemon answered with
 * an error (or the command failed otherwise), 2 usage, 3 fetchd is not
 * running, 4 permission denied or another connection failure, 5 `stats
 * --cluster` of a daemon not in cluster mode, 6 a job waited for ended in
 * failed/, 7 --timeout passed first.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "ctlconn.h"
#include "follow.h"
#include "job.h"
#include "jobinfo.h"
#include "log.h"
#include "proto.h"
#include "spool.h"
#include "util.h"

#define DEFAULT_CONFIG SYSCONFDIR "/fetchd/fetchd.conf"
#define REPLY_TIMEOUT_MS 30000
#define SUBMIT_ERRORS_MAX 10            /* errors shown per job file */

enum output { OUT_HUMAN, OUT_JSON, OUT_PROMETHEUS };

struct ctl {
	const char *socket;             /* -s */
	const char *config;             /* -c */
	int config_given;
	const char *name;               /* submit --name */
	int cluster;                    /* stats --cluster */
	int wait;                       /* submit --wait */
	double timeout;                 /* --timeout, 0 when not given */
	const char *job;                /* events --job */
	int help;                       /* -h */
	enum output out;
	struct ctlconn conn;
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
		if (cmd->id == PROTO_CMD_WAIT || cmd->id == PROTO_CMD_EVENTS)
			continue;       /* fetchctl's forms below */
		snprintf(word, sizeof(word), "%s%s%s", cmd->name,
		    cmd->args[0] != '\0' ? " " : "", cmd->args);
		fprintf(fp, "  %-20s %s\n", word, cmd->help);
		if (cmd->id == PROTO_CMD_STATS)
			fprintf(fp, "  %-20s %s\n", "stats --cluster",
			    "cluster mode: this node, every node, the stream");
	}
	fprintf(fp,
	    "  wait [--timeout S] JOB...\n"
	    "                       wait until the jobs ended, showing their "
	    "progress\n"
	    "  events [--job JOB]   the daemon's events as they happen (--job: "
	    "until\n"
	    "                       that job ended)\n"
	    "  submit [--name N] [--wait [--timeout S]] FILE... | -\n"
	    "                       validate and queue jobs (no daemon needed; "
	    "--wait:\n"
	    "                       then wait for them)\n"
	    "options:\n"
	    "  -s socket     the control socket (default: $FETCHD_SOCKET, "
	    "else the config's)\n"
	    "  -c config     configuration file (default %s)\n"
	    "  --json        print the daemon's JSON reply unchanged\n"
	    "  --prometheus  stats in the Prometheus text format\n"
	    "  --timeout S   wait at most S seconds\n"
	    "exit status: 0 ok, 1 the daemon answered with an error, 2 usage,\n"
	    "  3 fetchd is not running, 4 permission denied or another "
	    "connection failure,\n"
	    "  5 stats --cluster and fetchd is not in cluster mode,\n"
	    "  6 a job waited for ended in failed/, 7 --timeout passed\n",
	    DEFAULT_CONFIG);
}

static void
on_signal(int sig)
{
	interrupted = sig;
}

/* SIGINT and SIGTERM end a wait for the daemon (no SA_RESTART: the
 * poll returns) and set interrupted to the signal's number. */
static void
catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
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
		if (arg != NULL)
			jobinfo_print(stdout, o);
		else
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

/* The next reply line within timeout_ms: CTLCONN_LINE, or another
 * enum ctlconn_read (a timeout said here). */
static int
read_reply(struct ctl *c, int timeout_ms, char **line)
{
	int rv = ctlconn_read_line(&c->conn, timeout_ms, line);

	if (rv == CTLCONN_TIMEOUT)
		fprintf(stderr, "fetchctl: no reply from fetchd within %d s\n",
		    timeout_ms / 1000);
	return rv;
}

static int
run_simple(struct ctl *c, const struct proto_cmd *cmd, const char *arg)
{
	char req[PROTO_LINE_MAX + 2], *line;
	json_t *o;
	int rv, status;

	snprintf(req, sizeof(req), "%s%s%s\n", cmd->name,
	    arg != NULL ? " " : "", arg != NULL ? arg : "");
	if (ctlconn_send(&c->conn, req) == -1)
		return PROTO_EXIT_DENIED;
	if ((rv = read_reply(c, REPLY_TIMEOUT_MS, &line)) != CTLCONN_LINE) {
		if (rv == CTLCONN_EOF)
			fprintf(stderr, "fetchctl: fetchd closed the connection "
			    "without a reply\n");
		return PROTO_EXIT_ERROR;
	}
	if ((o = ctlconn_parse(line, &status)) == NULL)
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
	json_t *o;
	int rv, rc = PROTO_EXIT_OK, tty = isatty(STDOUT_FILENO), first = 1;

	catch_signals();
	snprintf(req, sizeof(req), "%s %ld\n", proto_cmds[PROTO_CMD_WATCH].name,
	    ms);
	if (ctlconn_send(&c->conn, req) == -1)
		return PROTO_EXIT_DENIED;
	for (;;) {
		rv = read_reply(c, (int)(ms * 3 + 10000), &line);
		if (rv == CTLCONN_INTR)
			break;
		if (rv != CTLCONN_LINE) {
			if (rv == CTLCONN_EOF)
				fprintf(stderr, "fetchctl: fetchd closed the "
				    "connection\n");
			rc = PROTO_EXIT_ERROR;
			break;
		}
		if ((o = ctlconn_parse(line, &rv)) == NULL || rv != 0) {
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
 * The socket: -s, else $FETCHD_SOCKET, else the one of cfg, which must be
 * loaded when neither is given.
 */
static const char *
socket_path(const struct ctl *c, const struct config *cfg)
{
	const char *env = getenv("FETCHD_SOCKET");

	if (c->socket != NULL)
		return c->socket;
	return env != NULL && *env != '\0' ? env : cfg->socket_path;
}

/* The configuration into cfg when the socket is to come from it. */
static int
config_for_socket(struct ctl *c, struct config *cfg)
{
	const char *env = getenv("FETCHD_SOCKET");

	if (c->socket != NULL || (env != NULL && *env != '\0'))
		return PROTO_EXIT_OK;
	return load_config(c, cfg);
}

/* The follow_opts of the command line. */
static void
follow_opts(const struct ctl *c, const char *sock, struct follow_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->socket = sock;
	o->timeout = c->timeout;
	o->tty = isatty(STDOUT_FILENO);
	o->json = c->out == OUT_JSON;
	o->job = c->job;
	o->stop = &interrupted;
	catch_signals();
}

/* wait, and submit --wait: the n jobs named, on the socket at sock. */
static int
run_wait(const struct ctl *c, const char *sock, int n, char **jobs)
{
	struct follow_opts o;

	if (fflush(stdout) == EOF)
		return PROTO_EXIT_ERROR;
	follow_opts(c, sock, &o);
	return follow_wait(&o, jobs, n);
}

/* wait and events: the socket found (the config read if need be), and the
 * flow of follow.c. */
static int
run_follow(struct ctl *c, const char *word, int nargs, char **args)
{
	struct config cfg;
	struct follow_opts o;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	if ((rc = config_for_socket(c, &cfg)) != PROTO_EXIT_OK)
		return rc;
	if (strcmp(word, "wait") == 0)
		rc = run_wait(c, socket_path(c, &cfg), nargs, args);
	else {
		follow_opts(c, socket_path(c, &cfg), &o);
		rc = follow_events(&o);
	}
	config_free(&cfg);
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

/*
 * Hand the files to spool_submit(); print the names of the jobs queued.
 * With sock (submit --wait), then wait for them on that socket.
 */
static int
submit_jobs(const struct ctl *c, struct spool *sp, long max_urls,
    int nfiles, char **files, const char *sock)
{
	struct spool_submission *jobs;
	char (*names)[SPOOL_NAME_MAX + 1], **list;
	size_t done = 0, i;
	int rc = PROTO_EXIT_ERROR;

	jobs = calloc((size_t)nfiles, sizeof(*jobs));
	names = calloc((size_t)nfiles, sizeof(*names));
	list = calloc((size_t)nfiles, sizeof(*list));
	if (jobs == NULL || names == NULL || list == NULL)
		fprintf(stderr, "fetchctl: out of memory\n");
	else if (name_jobs(c, nfiles, files, jobs, names) == 0) {
		if (spool_submit(sp, jobs, (size_t)nfiles, validate, &max_urls,
		    &done) == 0)
			rc = PROTO_EXIT_OK;
		else if (done == 0)
			fprintf(stderr, "fetchctl: nothing submitted\n");
		/* all of them, or those a failing file system let through */
		for (i = 0; i < done; i++) {
			printf("%s\n", jobs[i].queued);
			list[i] = jobs[i].queued;
		}
		if (rc == PROTO_EXIT_OK && sock != NULL)
			rc = run_wait(c, sock, nfiles, list);
	}
	free(jobs);
	free(names);
	free(list);
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
	const char *path;
	char err[1024];
	int rc, saved;

	memset(&cfg, 0, sizeof(cfg));
	if ((rc = load_config(c, &cfg)) != PROTO_EXIT_OK)
		return rc;
	if ((rc = submit_usage(c, nfiles, files)) != PROTO_EXIT_OK)
		goto out;
	/* With --wait, a daemon that is not there is said before anything
	 * is submitted. */
	path = socket_path(c, &cfg);
	if (c->wait && (rc = ctlconn_connect(&c->conn, path, 0)) !=
	    PROTO_EXIT_OK)
		goto out;
	ctlconn_close(&c->conn);
	if (spool_open_producer(&sp, cfg.spool_dir, err, sizeof(err)) == -1) {
		saved = errno;
		fprintf(stderr, "fetchctl: %s\n", err);
		rc = saved == EACCES ? PROTO_EXIT_DENIED : PROTO_EXIT_ERROR;
		goto out;
	}
	rc = submit_jobs(c, &sp, cfg.max_job_urls, nfiles, files,
	    c->wait ? path : NULL);
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
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "job", required_argument, NULL, 'J' },
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
		case 'w':
			c->wait = 1;
			break;
		case 't':
			if (follow_timeout(optarg, &c->timeout) == -1) {
				fprintf(stderr, "fetchctl: --timeout %s: give a "
				    "number of seconds above 0\n", optarg);
				return PROTO_EXIT_USAGE;
			}
			break;
		case 'J':
			c->job = optarg;
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
	if (c->wait || c->timeout > 0 || c->job != NULL) {
		fprintf(stderr, "fetchctl: %s is for %s\n", c->wait ? "--wait" :
		    c->job != NULL ? "--job" : "--timeout", c->wait ?
		    "submit" : c->job != NULL ? "events" : "wait");
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
	if ((cmd->id == PROTO_CMD_CANCEL || cmd->id == PROTO_CMD_JOBS) &&
	    nargs == 1 && !job_word_ok(args[0])) {
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

/* A usage error, said: PROTO_EXIT_USAGE. */
static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fetchctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return PROTO_EXIT_USAGE;
}

/*
 * The options and arguments of submit, wait and events, which fetchctl
 * itself takes apart. PROTO_EXIT_OK, or PROTO_EXIT_USAGE (said).
 */
static int
check_follow(const struct ctl *c, const char *word, int nargs, char **args)
{
	int submit = strcmp(word, "submit") == 0;
	int events = strcmp(word, "events") == 0, i, rc;

	if (c->cluster)
		return usage_error("--cluster is for %s", "stats");
	if (c->out == OUT_PROMETHEUS)
		return usage_error("--prometheus is for %s", "stats");
	if (c->wait && !submit)
		return usage_error("--wait is for %s", "submit");
	if (c->job != NULL && !events)
		return usage_error("--job is for %s", "events");
	if (c->name != NULL && !submit)
		return usage_error("--name is for %s", "submit");
	if (c->timeout > 0 && (events || (submit && !c->wait)))
		return usage_error("--timeout is for %s", "wait and submit "
		    "--wait");
	if (c->out == OUT_JSON && !events && (!submit || c->wait))
		return usage_error("--json is not for %s", word);
	if (c->job != NULL && !job_word_ok(c->job))
		return usage_error("%s is not a job name", c->job);
	if (events && nargs > 0)
		return usage_error("%s: no arguments (--job JOB for one job)",
		    word);
	if (!events && nargs < 1) {
		rc = usage_error("%s", submit ? "submit: no job file" :
		    "wait: no job");
		usage(stderr);
		return rc;
	}
	for (i = 0; !submit && !events && i < nargs; i++)
		if (!job_word_ok(args[i]) || strlen(args[i]) > SPOOL_NAME_MAX +
		    FOLLOW_SUFFIX_MAX)
			return usage_error("%s is not a job name", args[i]);
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
	if ((rc = config_for_socket(c, &cfg)) != PROTO_EXIT_OK)
		return rc;
	path = socket_path(c, &cfg);
	if ((rc = ctlconn_connect(&c->conn, path, 0)) != PROTO_EXIT_OK) {
		config_free(&cfg);
		return rc;
	}
	if (cmd->id == PROTO_CMD_WATCH)
		rc = run_watch(c, ms);
	else
		rc = run_simple(c, cmd, arg);
	ctlconn_free(&c->conn);
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
	ctlconn_init(&c.conn, &interrupted);
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
	if (strcmp(word, "submit") == 0 || strcmp(word, "wait") == 0 ||
	    strcmp(word, "events") == 0) {
		if ((rc = check_follow(&c, word, nargs, argv + optind)) !=
		    PROTO_EXIT_OK)
			return rc;
		if (strcmp(word, "submit") == 0)
			rc = run_submit(&c, nargs, argv + optind);
		else
			rc = run_follow(&c, word, nargs, argv + optind);
		if (fflush(stdout) == EOF && rc == PROTO_EXIT_OK)
			rc = PROTO_EXIT_ERROR;
		if (interrupted && rc == 128 + interrupted) {
			/* Killed by the signal, as the shell expects. */
			signal(interrupted, SIG_DFL);
			raise(interrupted);
		}
		return rc;
	}
	if ((rc = check_command(&c, word, nargs, argv + optind, &cmd,
	    &ms)) != PROTO_EXIT_OK)
		return rc;
	return run_command(&c, cmd, nargs > 0 ? argv[optind] : NULL, ms);
}
