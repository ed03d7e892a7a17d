/*
 * proto.c: what fetchd and fetchctl share about the control protocol:
 * the commands, reply objects, request splitting, and the two renderings
 * of a stats object that are not JSON (the Prometheus text and the
 * one-line summary).
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
	[PROTO_CMD_JOBS] = { PROTO_CMD_JOBS, "jobs", 0, 0, "",
	    "the jobs queued, running and finished" },
	[PROTO_CMD_WATCH] = { PROTO_CMD_WATCH, "watch", 0, 1, "[ms]",
	    "live view, redrawn every ms (default "
	    STR(PROTO_WATCH_DEFAULT_MS) ")" },
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

char *
proto_prometheus(const json_t *st)
{
	const struct prom_metric *m;
	const json_t *v, *o;
	const char *key, *model, *version;
	char *text = NULL;
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&text, &len)) == NULL)
		return NULL;

	model = json_string_value(proto_get(st, "model"));
	version = json_string_value(proto_get(st, "version"));
	prom_head(fp, "info", "gauge", "Version and concurrency model.");
	fputs("fetchd_info{version=\"", fp);
	prom_label(fp, version != NULL ? version : "");
	fputs("\",model=\"", fp);
	prom_label(fp, model != NULL ? model : "");
	fputs("\"} 1\n", fp);

	for (i = 0; i < sizeof(prom_table) / sizeof(prom_table[0]); i++) {
		m = &prom_table[i];
		if ((v = proto_get(st, m->path)) == NULL)
			continue;
		prom_head(fp, m->name, m->kind == PROM_COUNTER ? "counter" :
		    "gauge", m->help);
		fprintf(fp, "fetchd_%s ", m->name);
		prom_value(fp, v);
	}

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
