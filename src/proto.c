/*
 * proto.c: what fetchd and fetchctl share about the control protocol:
 * the commands, reply objects, request splitting, and the renderings of a
 * stats object that are not JSON (the Prometheus text, the one-line
 * summary, and for cluster mode `fetchctl stats --cluster` and its line in
 * `fetchctl stats`). They are pure functions of a json_t, so the tests
 * give them hand-made objects.
 *
 * The commands are one table (name, arguments, usage line) that the
 * daemon's dispatch and fetchctl's checks and usage both read, as the
 * Prometheus names come from one table mapping a stats path to a metric,
 * so the socket, `fetchctl --prometheus` and the metrics endpoint cannot
 * drift apart.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util.h"

#define STR(x) STR_(x)
#define STR_(x) #x

/* Indexed by id: the order is that of `fetchctl -h`. */
const struct proto_cmd proto_cmds[PROTO_CMD__COUNT] = {
	[PROTO_CMD_PING] = { PROTO_CMD_PING, "ping", 0, 0, "",
	    "check that fetchd answers" },
	[PROTO_CMD_STATS] = { PROTO_CMD_STATS, "stats", 0, 0, "",
	    "throughput, queues, latency, errors" },
	[PROTO_CMD_JOBS] = { PROTO_CMD_JOBS, "jobs", 0, 1, "[JOB]",
	    "the jobs queued, running and finished, or one in detail" },
	[PROTO_CMD_WATCH] = { PROTO_CMD_WATCH, "watch", 0, 1, "[ms]",
	    "live view, redrawn every ms (default "
	    STR(PROTO_WATCH_DEFAULT_MS) ")" },
	[PROTO_CMD_EVENTS] = { PROTO_CMD_EVENTS, "events", 0, 1, "[JOB]",
	    "every event as it happens, or one job's" },
	[PROTO_CMD_WAIT] = { PROTO_CMD_WAIT, "wait", 1, 1, "JOB",
	    "a job's progress every second until it ends" },
	[PROTO_CMD_PAUSE] = { PROTO_CMD_PAUSE, "pause", 0, 0, "",
	    "stop starting transfers" },
	[PROTO_CMD_RESUME] = { PROTO_CMD_RESUME, "resume", 0, 0, "",
	    "start transfers again" },
	[PROTO_CMD_CANCEL] = { PROTO_CMD_CANCEL, "cancel", 1, 1, "JOB",
	    "cancel a job" },
	[PROTO_CMD_RELOAD] = { PROTO_CMD_RELOAD, "reload", 0, 0, "",
	    "re-read the configuration (as SIGHUP)" },
};

const struct proto_cmd *
proto_cmd_find(const char *name)
{
	for (size_t i = 0; i < PROTO_CMD__COUNT; i++)
		if (strcmp(proto_cmds[i].name, name) == 0)
			return &proto_cmds[i];
	return NULL;
}

int
proto_watch_ms(const char *s, long *ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' ||
	    v < PROTO_WATCH_MIN_MS || v > PROTO_WATCH_MAX_MS)
		return -1;
	*ms = v;
	return 0;
}

json_t *
proto_reply(void)
{
	json_t *o;

	if ((o = json_object()) == NULL)
		return NULL;
	if (json_object_set_new(o, PROTO_KEY_PROTO,
	    json_integer(PROTO_VERSION)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

void
proto_printable(const char *s, size_t n, char *buf, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; i < n && i + 1 < len; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = '\0';
}

json_t *
proto_error(const char *msg)
{
	char clean[512];
	json_t *o, *s;

	if ((o = proto_reply()) == NULL)
		return NULL;
	if ((s = json_string(msg)) == NULL) {
		/* Not UTF-8: say it in ASCII rather than not at all. */
		proto_printable(msg, strlen(msg), clean, sizeof(clean));
		s = json_string(clean);
	}
	if (s == NULL || json_object_set_new(o, PROTO_KEY_ERROR, s) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
proto_split(char *line, char **argv, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			return n;
		if (n == max)
			return -1;
		argv[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
}

const json_t *
proto_get(const json_t *obj, const char *path)
{
	char key[64];
	const char *dot;
	size_t n;

	while (obj != NULL && json_is_object(obj)) {
		dot = strchr(path, '.');
		n = dot != NULL ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = '\0';
		obj = json_object_get(obj, key);
		if (dot == NULL)
			return obj;
		path = dot + 1;
	}
	return NULL;
}

double
proto_num(const json_t *obj, const char *path, double def)
{
	const json_t *v = proto_get(obj, path);

	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_boolean(v))
		return json_is_true(v) ? 1 : 0;
	return def;
}

void
proto_fmt_bytes(double b, char *buf, size_t len)
{
	static const char *const units[] = {
		"B", "KiB", "MiB", "GiB", "TiB", "PiB"
	};
	size_t u = 0;

	while (b >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", b);
	else
		snprintf(buf, len, "%.1f %s", b, units[u]);
}

void
proto_fmt_duration(double s, char *buf, size_t len)
{
	long t;

	if (!(s >= 0))          /* also NaN */
		s = 0;
	if (s > 1e12)           /* some 30,000 years: (long)s stays defined */
		s = 1e12;
	t = (long)s;
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

void
proto_status_line(const json_t *st, char *buf, size_t len)
{
	char rate[32], total[32];

	proto_fmt_bytes(proto_num(st, "rate.1s.bytes_per_s", 0), rate,
	    sizeof(rate));
	proto_fmt_bytes(proto_num(st, "bytes_total", 0), total, sizeof(total));
	snprintf(buf, len,
	    "%s/s %.1f URL/s (%s in %.0f URL%s); transfers %.0f active "
	    "%.0f queued %.0f failed; jobs %.0f active %.0f queued; "
	    "ttfb p50 %.0f p99 %.0f ms%s",
	    rate, proto_num(st, "rate.1s.urls_per_s", 0), total,
	    proto_num(st, "urls_total", 0),
	    util_plural(proto_num(st, "urls_total", 0)),
	    proto_num(st, "transfers.active", 0),
	    proto_num(st, "transfers.queued", 0),
	    proto_num(st, "transfers.failed", 0),
	    proto_num(st, "jobs.active", 0), proto_num(st, "jobs.queued", 0),
	    proto_num(st, "latency_ms.ttfb.p50", 0),
	    proto_num(st, "latency_ms.ttfb.p99", 0),
	    json_is_true(proto_get(st, "paused")) ? "; paused" : "");
}

/*
 * Prometheus.
 */
enum prom_kind { PROM_GAUGE, PROM_COUNTER };

static const struct prom_metric {
	const char *path;       /* in the stats object */
	const char *name;       /* after "fetchd_" */
	enum prom_kind kind;
	const char *help;
} prom_table[] = {
	{"uptime_s", "uptime_seconds", PROM_GAUGE,
	    "Seconds since the daemon started."},
	{"workers", "workers", PROM_GAUGE,
	    "Workers of the concurrency model in use."},
	{"process.workers_busy", "workers_busy", PROM_GAUGE,
	    "Workers running a transfer now."},
	{"paused", "paused", PROM_GAUGE,
	    "1 while new transfers are paused."},
	{"jobs.queued", "jobs_queued", PROM_GAUGE,
	    "Jobs waiting in spool/new."},
	{"jobs.active", "jobs_active", PROM_GAUGE,
	    "Jobs claimed and being worked on."},
	{"jobs.waiting", "jobs_waiting", PROM_GAUGE,
	    "Active jobs waiting for the spool (full or failing)."},
	{"jobs.done", "jobs_done_total", PROM_COUNTER,
	    "Jobs finished with every URL fetched."},
	{"jobs.failed", "jobs_failed_total", PROM_COUNTER,
	    "Jobs finished with a URL failed for good, or rejected."},
	{"transfers.queued", "transfers_queued", PROM_GAUGE,
	    "URLs ready to start or waiting for a retry."},
	{"transfers.active", "transfers_active", PROM_GAUGE,
	    "URLs handed to the workers."},
	{"transfers.done", "transfers_done_total", PROM_COUNTER,
	    "URLs fetched."},
	{"transfers.failed", "transfers_failed_total", PROM_COUNTER,
	    "URLs failed for good."},
	{"transfers.retried", "transfers_retried_total", PROM_COUNTER,
	    "Retries started."},
	{"bytes_total", "bytes_total", PROM_COUNTER,
	    "Body bytes received."},
	{"urls_total", "urls_total", PROM_COUNTER,
	    "URLs finished, whether done or failed."},
	{"process.cpu_user_s", "process_cpu_user_seconds_total", PROM_COUNTER,
	    "User CPU time of the daemon."},
	{"process.cpu_sys_s", "process_cpu_system_seconds_total", PROM_COUNTER,
	    "System CPU time of the daemon."},
	{"process.rss_bytes", "process_resident_memory_bytes", PROM_GAUGE,
	    "Resident memory of the daemon."},
	{"process.open_fds", "process_open_fds", PROM_GAUGE,
	    "Open file descriptors of the daemon."},
	{"process.children_restarted", "children_restarted_total",
	    PROM_COUNTER, "Worker processes replaced after they died."},
};

/* Cluster mode, paths in the stats object's "cluster". */
static const struct prom_metric prom_cluster_table[] = {
	{"down_seconds", "cluster_down_seconds", PROM_GAUGE,
	    "Seconds since Redis became unreachable, 0 while it is."},
	{"out", "cluster_urls_out", PROM_GAUGE,
	    "URLs this coordinator put in the stream, without a result yet."},
	{"added", "cluster_added_total", PROM_COUNTER,
	    "URLs this coordinator added to the stream."},
	{"readded", "cluster_readded_total", PROM_COUNTER,
	    "URLs added again after Redis lost their entry."},
	{"results", "cluster_results_total", PROM_COUNTER,
	    "Results this coordinator received."},
	{"stale", "cluster_stale_results_total", PROM_COUNTER,
	    "Results received for a URL no longer out (ignored)."},
	{"fetching", "cluster_fetching", PROM_GAUGE,
	    "Stream entries this node took and has not fetched yet."},
	{"results_waiting", "cluster_results_waiting", PROM_GAUGE,
	    "Results of this node waiting to be sent."},
	{"fetched", "cluster_fetched_total", PROM_COUNTER,
	    "Stream entries this node fetched."},
	{"fetch_failed", "cluster_fetch_failed_total", PROM_COUNTER,
	    "Stream entries this node failed."},
	{"accepted", "cluster_accepted_total", PROM_COUNTER,
	    "Results of this node accepted."},
	{"refused", "cluster_refused_total", PROM_COUNTER,
	    "Results of this node refused: another node had the entry."},
	{"claimed", "cluster_claimed_total", PROM_COUNTER,
	    "Idle entries this node took over from others."},
	{"lost", "cluster_lost_total", PROM_COUNTER,
	    "Entries of this node another one took over."},
	{"bad_entries", "cluster_bad_entries_total", PROM_COUNTER,
	    "Stream entries refused as malformed."},
	{"reconnects", "cluster_reconnects_total", PROM_COUNTER,
	    "Connections to Redis made again after one was lost."},
	{"stream.length", "cluster_stream_length", PROM_GAUGE,
	    "Entries in the URL stream."},
	{"stream.pending", "cluster_stream_pending", PROM_GAUGE,
	    "Entries delivered to a node and not acknowledged."},
	{"stream.lag", "cluster_stream_lag", PROM_GAUGE,
	    "Entries in the stream not delivered to any node yet."},
	{"stream.dead", "cluster_stream_dead_letters", PROM_GAUGE,
	    "Entries in the dead-letter stream."},
};

static const char *const prom_windows[] = { "1s", "10s", "60s" };
static const char *const prom_quantiles[][2] = {
	{ "p50", "0.5" }, { "p90", "0.9" }, { "p99", "0.99" },
};

static void
prom_head(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP fetchd_%s %s\n# TYPE fetchd_%s %s\n", name, help,
	    name, type);
}

/* fetchd_rate_WHAT_per_second for each window of st's "rate" object. */
static void
prom_rate(FILE *fp, const json_t *st, const char *what, const char *help)
{
	char name[64], key[64], text[128];
	size_t i;

	snprintf(name, sizeof(name), "rate_%s_per_second", what);
	snprintf(key, sizeof(key), "%s_per_s", what);
	snprintf(text, sizeof(text), "%s per second over a sliding window.",
	    help);
	prom_head(fp, name, "gauge", text);
	for (i = 0; i < sizeof(prom_windows) / sizeof(prom_windows[0]); i++)
		fprintf(fp, "fetchd_%s{window=\"%s\"} %.9g\n", name,
		    prom_windows[i], proto_num(proto_get(proto_get(st, "rate"),
		    prom_windows[i]), key, 0));
}

/* Integers exactly, everything else as a float Prometheus can parse. */
static void
prom_value(FILE *fp, const json_t *v)
{
	double d;

	if (json_is_integer(v))
		fprintf(fp, "%lld\n", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		fprintf(fp, "%d\n", json_is_true(v) ? 1 : 0);
	else {
		d = json_is_real(v) ? json_real_value(v) : NAN;
		if (isnan(d))
			fprintf(fp, "NaN\n");
		else
			fprintf(fp, "%.9g\n", d);
	}
}

/* A label value: backslash, double quote and newline escaped. */
static void
prom_label(FILE *fp, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(fp, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", fp);
		else
			fputc(*s, fp);
	}
}

/* A sample per row of table found in obj as a number or boolean; a
 * member that is missing or null (unknown) is left out. */
static void
prom_table_print(FILE *fp, const json_t *obj,
    const struct prom_metric *table, size_t n)
{
	const struct prom_metric *m;
	const json_t *v;
	size_t i;

	for (i = 0; i < n; i++) {
		m = &table[i];
		v = proto_get(obj, m->path);
		if (!json_is_number(v) && !json_is_boolean(v))
			continue;
		prom_head(fp, m->name, m->kind == PROM_COUNTER ? "counter" :
		    "gauge", m->help);
		fprintf(fp, "fetchd_%s ", m->name);
		prom_value(fp, v);
	}
}

/* fetchd_info{version,model} 1 */
static void
prom_info(FILE *fp, const json_t *st)
{
	const char *model, *version;

	model = json_string_value(proto_get(st, "model"));
	version = json_string_value(proto_get(st, "version"));
	prom_head(fp, "info", "gauge", "Version and concurrency model.");
	fputs("fetchd_info{version=\"", fp);
	prom_label(fp, version != NULL ? version : "");
	fputs("\",model=\"", fp);
	prom_label(fp, model != NULL ? model : "");
	fputs("\"} 1\n", fp);
}

static void
prom_latency(FILE *fp, const json_t *st, const char *which,
    const char *what)
{
	const json_t *o = proto_get(proto_get(st, "latency_ms"), which);
	char name[64], help[128];
	size_t i;

	if (!json_is_object(o))
		return;
	snprintf(name, sizeof(name), "latency_%s_seconds", which);
	snprintf(help, sizeof(help), "%s, per attempt, in seconds.", what);
	prom_head(fp, name, "summary", help);
	for (i = 0; i < sizeof(prom_quantiles) / sizeof(prom_quantiles[0]);
	    i++)
		fprintf(fp, "fetchd_%s{quantile=\"%s\"} %.9g\n", name,
		    prom_quantiles[i][1],
		    proto_num(o, prom_quantiles[i][0], 0) / 1000);
	fprintf(fp, "fetchd_%s_sum %.9g\n", name,
	    proto_num(o, "sum", 0) / 1000);
	fprintf(fp, "fetchd_%s_count %.0f\n", name, proto_num(o, "count", 0));
	snprintf(name, sizeof(name), "latency_%s_max_seconds", which);
	snprintf(help, sizeof(help), "Largest %s seen, in seconds.", what);
	prom_head(fp, name, "gauge", help);
	fprintf(fp, "fetchd_%s %.9g\n", name, proto_num(o, "max", 0) / 1000);
}

/*
 * fetchd_latency_WHICH_histogram_seconds: the cumulative buckets of
 * latency_ms.WHICH.buckets ([edge ms, samples below it] pairs), then
 * le="+Inf" (every sample), _sum and _count. A stats object without
 * buckets (an older daemon) has no histogram.
 */
static void
prom_histogram(FILE *fp, const json_t *st, const char *which,
    const char *what)
{
	const json_t *o = proto_get(proto_get(st, "latency_ms"), which);
	const json_t *b = proto_get(o, "buckets"), *e, *le, *n;
	char name[64], help[128];
	size_t i;

	if (!json_is_array(b))
		return;
	snprintf(name, sizeof(name), "latency_%s_histogram_seconds", which);
	snprintf(help, sizeof(help), "%s, per attempt, in seconds.", what);
	prom_head(fp, name, "histogram", help);
	json_array_foreach((json_t *)b, i, e) {
		le = json_array_get(e, 0);
		n = json_array_get(e, 1);
		if (json_is_number(le) && json_is_number(n))
			fprintf(fp, "fetchd_%s_bucket{le=\"%.9g\"} %.0f\n", name,
			    json_number_value(le) / 1000,
			    json_number_value(n));
	}
	fprintf(fp, "fetchd_%s_bucket{le=\"+Inf\"} %.0f\n", name,
	    proto_num(o, "count", 0));
	fprintf(fp, "fetchd_%s_sum %.9g\n", name,
	    proto_num(o, "sum", 0) / 1000);
	fprintf(fp, "fetchd_%s_count %.0f\n", name, proto_num(o, "count", 0));
}

/* In cluster mode: fetchd_cluster_info{node,role}, fetchd_cluster_up and
 * prom_cluster_table. */
static void
prom_cluster(FILE *fp, const json_t *st)
{
	const json_t *cl = proto_get(st, "cluster");
	const char *node, *role, *state;

	if (!json_is_object(cl))
		return;
	node = json_string_value(json_object_get(cl, "node"));
	role = json_string_value(json_object_get(cl, "role"));
	prom_head(fp, "cluster_info", "gauge",
	    "This node's name and role in the cluster.");
	fputs("fetchd_cluster_info{node=\"", fp);
	prom_label(fp, node != NULL ? node : "");
	fputs("\",role=\"", fp);
	prom_label(fp, role != NULL ? role : "");
	fputs("\"} 1\n", fp);
	state = json_string_value(json_object_get(cl, "state"));
	if (state != NULL && (strcmp(state, "up") == 0 ||
	    strcmp(state, "down") == 0)) {
		prom_head(fp, "cluster_up", "gauge",
		    "1 while Redis is reachable and set up, else 0.");
		fprintf(fp, "fetchd_cluster_up %d\n", strcmp(state, "up") == 0);
	}
	prom_table_print(fp, cl, prom_cluster_table,
	    sizeof(prom_cluster_table) / sizeof(prom_cluster_table[0]));
}

char *
proto_prometheus(const json_t *st)
{
	const json_t *v, *o;
	const char *key;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;

	prom_info(fp, st);
	prom_table_print(fp, st, prom_table,
	    sizeof(prom_table) / sizeof(prom_table[0]));

	if (json_is_object(o = proto_get(st, "transfers.errors"))) {
		prom_head(fp, "transfer_errors_total", "counter",
		    "Failed attempts by cause.");
		json_object_foreach((json_t *)o, key, v) {
			fputs("fetchd_transfer_errors_total{kind=\"", fp);
			prom_label(fp, key);
			fputs("\"} ", fp);
			prom_value(fp, v);
		}
	}

	if (json_is_object(proto_get(st, "rate"))) {
		prom_rate(fp, st, "bytes", "Bytes received");
		prom_rate(fp, st, "urls", "URLs finished");
	}

	prom_latency(fp, st, "ttfb", "Time to the first byte");
	prom_latency(fp, st, "total", "Time of a whole attempt");
	prom_histogram(fp, st, "ttfb", "Time to the first byte");
	prom_histogram(fp, st, "total", "Time of a whole attempt");
	prom_cluster(fp, st);

	if (ferror(fp)) {
		fclose(fp);
		free(text);
		return NULL;
	}
	if (fclose(fp) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/*
 * Cluster mode: `fetchctl stats --cluster` and the summary's line. The
 * "cluster" object is this node's own, but its "nodes" come from other
 * machines through Redis: every member is taken as possibly missing or of
 * another type ("?" is shown), and strings are shown printable.
 */
#define CL_NAME_MAX 40          /* widest NODE column */

/* Member path of o as a printable string in buf, or "?". */
static const char *
cl_str(const json_t *o, const char *path, char *buf, size_t len)
{
	const json_t *v = proto_get(o, path);

	if (!json_is_string(v))
		return "?";
	proto_printable(json_string_value(v), json_string_length(v), buf,
	    len);
	return buf;
}

/* Member path of o as a whole number in buf, or "?" (also for null,
 * unknown). */
static const char *
cl_num(const json_t *o, const char *path, char *buf, size_t len)
{
	const json_t *v = proto_get(o, path);

	if (!json_is_number(v))
		return "?";
	snprintf(buf, len, "%.0f", json_number_value(v));
	return buf;
}

/* "up", "DOWN for 1m02s", "DOWN" or "?" from cl's state. */
static void
cl_state(const json_t *cl, char *buf, size_t len)
{
	const char *state = json_string_value(json_object_get(cl, "state"));
	double down = proto_num(cl, "down_seconds", 0);
	char d[32];

	if (state != NULL && strcmp(state, "up") == 0)
		snprintf(buf, len, "up");
	else if (state != NULL && strcmp(state, "down") == 0 && down > 0) {
		proto_fmt_duration(down, d, sizeof(d));
		snprintf(buf, len, "DOWN for %s", d);
	} else
		snprintf(buf, len, "%s", state != NULL &&
		    strcmp(state, "down") == 0 ? "DOWN" : "?");
}

int
proto_cluster_line(const json_t *st, char *buf, size_t len)
{
	const json_t *cl = proto_get(st, "cluster");
	char state[48], node[72], role[16], pending[24], dead[24];

	if (!json_is_object(cl))
		return -1;
	cl_state(cl, state, sizeof(state));
	snprintf(buf, len, "%s, node %s, role %s; stream %s pending, %s dead "
	    "letters", state, cl_str(cl, "node", node, sizeof(node)),
	    cl_str(cl, "role", role, sizeof(role)),
	    cl_num(cl, "stream.pending", pending, sizeof(pending)),
	    cl_num(cl, "stream.dead", dead, sizeof(dead)));
	return 0;
}

/* Counter lines: the label, then "N word, ..." for each member. */
static const struct cl_field {
	const char *path, *word;
} cl_coordinator[] = {
	{ "out", "out" }, { "added", "added" }, { "readded", "re-added" },
	{ "results", "results" }, { "stale", "stale" }, { NULL, NULL },
}, cl_fetcher[] = {
	{ "fetching", "fetching" }, { "fetched", "fetched" },
	{ "fetch_failed", "failed" }, { "claimed", "claimed" },
	{ "lost", "lost" }, { "bad_entries", "bad entries" }, { NULL, NULL },
}, cl_results[] = {
	{ "results_waiting", "waiting" }, { "accepted", "accepted" },
	{ "refused", "refused" }, { NULL, NULL },
};

static void
cl_counters(FILE *fp, const char *label, const json_t *o,
    const struct cl_field *f)
{
	const char *sep = "";
	char n[24];

	fprintf(fp, "%-12s", label);
	for (; f->path != NULL; f++, sep = ", ")
		fprintf(fp, "%s%s %s", sep, cl_num(o, f->path, n, sizeof(n)),
		    f->word);
	fputc('\n', fp);
}

/* This node: its state, Redis, its counters. */
static void
cl_self(FILE *fp, const json_t *cl)
{
	char state[48], node[72], role[16], redis[128], err[256], n[24];
	const char *e;

	cl_state(cl, state, sizeof(state));
	fprintf(fp, "cluster     node %s, role %s: %s\n",
	    cl_str(cl, "node", node, sizeof(node)),
	    cl_str(cl, "role", role, sizeof(role)), state);
	e = cl_str(cl, "error", err, sizeof(err));
	fprintf(fp, "redis       %s, %s reconnects; last error: %s\n",
	    cl_str(cl, "redis", redis, sizeof(redis)),
	    cl_num(cl, "reconnects", n, sizeof(n)), *e == '\0' ? "none" : e);
	cl_counters(fp, "coordinator", cl, cl_coordinator);
	cl_counters(fp, "fetcher", cl, cl_fetcher);
	cl_counters(fp, "results", cl, cl_results);
}

static void
cl_stream(FILE *fp, const json_t *cl)
{
	char key[128], len[24], pending[24], lag[24], dead[24];

	fprintf(fp, "stream      %s: length %s, pending %s, lag %s, "
	    "dead letters %s\n", cl_str(cl, "stream.key", key, sizeof(key)),
	    cl_num(cl, "stream.length", len, sizeof(len)),
	    cl_num(cl, "stream.pending", pending, sizeof(pending)),
	    cl_num(cl, "stream.lag", lag, sizeof(lag)),
	    cl_num(cl, "stream.dead", dead, sizeof(dead)));
}

/* "N s ago" from a node's heartbeat time (unix seconds) and now. */
static const char *
cl_seen(const json_t *node, double now, char *buf, size_t len)
{
	const json_t *t = json_object_get(node, "time");
	double ago;

	if (!json_is_number(t))
		return "?";
	ago = floor(now - json_number_value(t));
	if (ago >= 0)
		snprintf(buf, len, "%.0f s ago", ago);
	else    /* its clock is ahead of ours */
		snprintf(buf, len, "%.0f s ahead", -ago);
	return buf;
}

/* A node's rate, "1.2 MiB/s", or "?". */
static const char *
cl_rate(const json_t *node, char *buf, size_t len)
{
	const json_t *v = json_object_get(node, "bytes_per_s");
	char b[24];

	if (!json_is_number(v) || json_number_value(v) < 0)
		return "?";
	proto_fmt_bytes(json_number_value(v), b, sizeof(b));
	snprintf(buf, len, "%s/s", b);
	return buf;
}

#define CL_ROW "%-*s %-10s %-7s %7s %5s %8s %8s %7s %7s %11s %s\n"

static void
cl_node_row(FILE *fp, const json_t *n, int width, double now)
{
	char name[CL_NAME_MAX + 1], role[16], model[16], rate[32], seen[32];
	char v[6][24];

	fprintf(fp, CL_ROW, width, cl_str(n, "node", name, sizeof(name)),
	    cl_str(n, "role", role, sizeof(role)),
	    cl_str(n, "model", model, sizeof(model)),
	    cl_num(n, "workers", v[0], sizeof(v[0])),
	    cl_num(n, "busy", v[1], sizeof(v[1])),
	    cl_num(n, "fetching", v[2], sizeof(v[2])),
	    cl_num(n, "fetched", v[3], sizeof(v[3])),
	    cl_num(n, "failed", v[4], sizeof(v[4])),
	    cl_num(n, "refused", v[5], sizeof(v[5])),
	    cl_rate(n, rate, sizeof(rate)), cl_seen(n, now, seen, sizeof(seen)));
}

static int
cl_node_cmp(const void *a, const void *b)
{
	const char *x = json_string_value(json_object_get(
	    *(const json_t *const *)a, "node"));
	const char *y = json_string_value(json_object_get(
	    *(const json_t *const *)b, "node"));

	return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* The objects of the array nodes into *rows (malloc'ed), by name; the
 * number of them, or -1 out of memory. */
static long
cl_node_rows(const json_t *nodes, const json_t ***rows, int *width)
{
	const json_t *n;
	char name[CL_NAME_MAX + 1];
	size_t i, k = 0;

	*width = 4;     /* "NODE" */
	*rows = malloc((json_array_size(nodes) + 1) * sizeof(**rows));
	if (*rows == NULL)
		return -1;
	json_array_foreach((json_t *)nodes, i, n) {
		if (!json_is_object(n))
			continue;
		(*rows)[k++] = n;
		if ((int)strlen(cl_str(n, "node", name, sizeof(name))) > *width)
			*width = (int)strlen(name);
	}
	qsort(*rows, k, sizeof(**rows), cl_node_cmp);
	return (long)k;
}

/* The table of nodes, sorted by name; what is not an object is counted. */
static int
cl_nodes(FILE *fp, const json_t *cl, double now)
{
	const json_t *nodes = json_object_get(cl, "nodes"), **rows;
	long n, i;
	int width;

	if (!json_is_array(nodes)) {
		fprintf(fp, "nodes       unknown\n");
		return 0;
	}
	if ((n = cl_node_rows(nodes, &rows, &width)) == -1)
		return -1;
	fprintf(fp, CL_ROW, width, "NODE", "ROLE", "MODEL", "WORKERS",
	    "BUSY", "FETCHING", "FETCHED", "FAILED", "REFUSED", "RATE",
	    "LAST SEEN");
	for (i = 0; i < n; i++)
		cl_node_row(fp, rows[i], width, now);
	if ((size_t)n < json_array_size(nodes))
		fprintf(fp, "(%zu node entr%s not an object, left out)\n",
		    json_array_size(nodes) - (size_t)n,
		    json_array_size(nodes) - (size_t)n == 1 ? "y" : "ies");
	free(rows);
	return 0;
}

int
proto_cluster_print(FILE *fp, const json_t *st, double now)
{
	const json_t *cl = proto_get(st, "cluster");

	if (!json_is_object(cl))
		return -1;
	cl_self(fp, cl);
	fputc('\n', fp);
	if (cl_nodes(fp, cl, now) == -1)
		return -1;
	fputc('\n', fp);
	cl_stream(fp, cl);
	return 0;
}
