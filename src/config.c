/*
 * config.c: the option table and the only reader of fetchd.conf.
 *
 * Every option is one row of opt_table below. Defaults are the row's text
 * run through the same setter as a value from the file, so a default can
 * never be something the file could not say. The file is read with inih
 * through our own line reader: it counts lines (the packaged inih calls the
 * handler without a line number), rejects lines inih would silently split,
 * and strips leading blanks so an indented line is never taken as a
 * continuation of the previous value. Only the first error is reported, as
 * "PATH:LINE: message", and a config that fails to load is left zeroed.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "cidr.h"
#include "config.h"
#include "engine.h"
#include "log.h"

/*
 * Longest line we ask inih to accept. The packaged inih exports its line
 * limit as a variable; a build without it keeps its compile-time limit
 * (200 bytes) and longer lines are reported as too long.
 */
#define CONFIG_LINE_MAX 8192
extern int ini_max_line __attribute__((weak));

#define SIZE_LIMIT (1LL << 50) /* 1024T: bound of SIZE options */

#define OFF(f) offsetof(struct config, f)

/*
 * For CONF_STR rows, min and max bound the length in bytes (without the
 * NUL): min 1 forbids an empty value. For the log level they are the
 * range of the enum; workers.model is checked against engine.c's list.
 *
 * RESTART options are read once at start (the directories, the sockets);
 * a reload keeps their running values. LIVE(group) options take a reload's
 * new value, and the group names the daemon's hook that acts on it
 * (struct config_hooks); NONE is for values read where they are used.
 */
#define RESTART CONF_RESTART, CONF_APPLY_NONE
#define LIVE(group) CONF_LIVE, CONF_APPLY_##group

static const struct config_option opt_table[] = {
    /* [daemon] */
    {"daemon", "spool_dir", CONF_STR, OFF(spool_dir), 1, PATH_MAX - 1,
	"/var/spool/fetchd", RESTART,
	"Spool directory holding tmp/ new/ active/ done/ failed/ (absolute)."},
    {"daemon", "download_dir", CONF_STR, OFF(download_dir), 1, PATH_MAX - 1,
	"/var/lib/fetchd/downloads", RESTART,
	"Files are written to download_dir/JOB/NAME (absolute)."},
    /* 107: sun_path holds 108 bytes with the NUL. */
    {"daemon", "socket", CONF_STR, OFF(socket_path), 1, 107,
	"/run/fetchd/fetchd.sock", RESTART,
	"Control socket that fetchctl talks to (absolute)."},
    {"daemon", "socket_mode", CONF_MODE, OFF(socket_mode), 0, 07777, "0660",
	RESTART, "Permission bits of the control socket, in octal."},
    {"daemon", "log_level", CONF_LEVEL, OFF(log_level), LOG_LVL_ERROR,
	LOG_LVL_DEBUG, "info", LIVE(LOG),
	"Least severe messages logged: error, warn, info or debug."},
    {"daemon", "shutdown_grace", CONF_INT, OFF(shutdown_grace), 0, 3600, "30",
	LIVE(NONE), "Seconds in-flight transfers may still run after SIGTERM."},
    {"daemon", "rescan_interval", CONF_INT, OFF(rescan_interval), 1, 86400,
	"30", LIVE(RESCAN), "Seconds between safety-net rescans of spool/new."},
    {"daemon", "sync", CONF_BOOL, OFF(sync), 0, 1, "yes", LIVE(JOBS),
	"fsync files and results before a job reaches done/ (yes or no)."},
    {"daemon", "max_job_urls", CONF_INT, OFF(max_job_urls), 1, 1000000000,
	"10000000", LIVE(JOBS),
	"A job with more URLs than this fails as a whole."},
    {"daemon", "metrics_listen", CONF_STR, OFF(metrics_listen), 0, 255, "",
	RESTART,
	"host:port of the HTTP listener (status page, metrics); empty = off."},
    {"daemon", "on_job_done", CONF_STR, OFF(on_job_done), 0, PATH_MAX - 1,
	"", LIVE(NONE),
	"Program run with job, state, result path when a job ends; empty = none."},
    {"daemon", "on_job_done_url", CONF_STR, OFF(on_job_done_url), 0, 2047,
	"", LIVE(NONE),
	"http(s) URL a JSON summary of each ended job is POSTed to; empty = none."},
    {"daemon", "on_job_done_timeout", CONF_INT, OFF(on_job_done_timeout), 1,
	86400, "60", LIVE(NONE),
	"Seconds one hook run may take; then SIGTERM, SIGKILL 5 s later."},
    {"daemon", "on_job_done_max", CONF_INT, OFF(on_job_done_max), 1, 1000,
	"4", LIVE(NONE), "Hooks running at once; the others wait in order."},
    {"daemon", "on_job_done_retries", CONF_INT, OFF(on_job_done_retries), 0,
	100, "5", LIVE(NONE),
	"POSTs retried after a connection error, timeout, 5xx or 429."},

    /* [workers] */
    {"workers", "model", CONF_MODEL, OFF(model), 0, 0, "event", LIVE(ENGINE),
	"Concurrency model: event, threads or process."},
    {"workers", "count", CONF_INT, OFF(count), 1, 10000, "16", LIVE(ENGINE),
	"Worker threads or processes; for event, concurrent transfers."},
    {"workers", "per_host", CONF_INT, OFF(per_host), 0, 10000, "8",
	LIVE(SCHED), "Concurrent transfers to one host; 0 = no cap."},

    /* [http] */
    {"http", "connect_timeout", CONF_INT, OFF(connect_timeout), 1, 3600, "15",
	LIVE(JOBS), "Seconds to wait for a connection to be made."},
    {"http", "timeout", CONF_INT, OFF(timeout), 0, 604800, "0", LIVE(JOBS),
	"Seconds one attempt at a URL may take; 0 = no limit."},
    {"http", "low_speed_limit", CONF_INT, OFF(low_speed_limit), 0, 1000000000,
	"1024", LIVE(JOBS),
	"Bytes/s below which a transfer counts as stalled; 0 = off."},
    {"http", "low_speed_time", CONF_INT, OFF(low_speed_time), 1, 3600, "30",
	LIVE(JOBS), "Seconds a transfer may stay below low_speed_limit."},
    {"http", "retries", CONF_INT, OFF(retries), 0, 100, "3", LIVE(JOBS),
	"Retries of a URL after its first attempt failed."},
    {"http", "retry_delay", CONF_INT, OFF(retry_delay), 0, 3600, "1",
	LIVE(JOBS), "Seconds before the first retry; later retries back off."},
    {"http", "retry_max_delay", CONF_INT, OFF(retry_max_delay), 0, 86400, "60",
	LIVE(JOBS),
	"Longest delay between two retries, seconds (>= retry_delay)."},
    {"http", "max_redirects", CONF_INT, OFF(max_redirects), 0, 100, "10",
	LIVE(JOBS), "Redirects followed for one URL."},
    {"http", "user_agent", CONF_STR, OFF(user_agent), 1, CONFIG_UA_MAX - 1,
	"fetchd/" PACKAGE_VERSION, LIVE(JOBS),
	"User-Agent header sent with every request."},
    {"http", "max_file_size", CONF_SIZE, OFF(max_file_size), 0, SIZE_LIMIT, "0",
	LIVE(JOBS),
	"Largest file accepted, in bytes (K, M, G, T suffix); 0 = no limit."},
    {"http", "rate_limit", CONF_SIZE, OFF(rate_limit), 0, SIZE_LIMIT, "0",
	LIVE(JOBS),
	"Bytes/s for each transfer (K, M, G, T suffix); 0 = unlimited."},
    {"http", "proxy", CONF_STR, OFF(proxy), 0, CONFIG_PROXY_MAX - 1, "",
	LIVE(JOBS),
	"Proxy for every transfer, as libcurl takes it; empty = none."},
    {"http", "verify_tls", CONF_BOOL, OFF(verify_tls), 0, 1, "yes",
	LIVE(JOBS),
	"Verify the server's certificate and host name (yes or no)."},
    {"http", "ca_file", CONF_STR, OFF(ca_file), 0, CONFIG_PROXY_MAX - 1, "",
	LIVE(JOBS),
	"CA bundle for certificate checks; empty = libcurl's default."},
    {"http", "no_proxy", CONF_STR, OFF(no_proxy), 0, CONFIG_PROXY_MAX - 1,
	"", LIVE(JOBS),
	"Hosts reached without the proxy, comma-separated; * = all."},
    {"http", "proxy_ca_file", CONF_STR, OFF(proxy_ca_file), 0,
	CONFIG_PROXY_MAX - 1, "", LIVE(JOBS),
	"CA bundle for an https:// proxy's certificate; empty = default."},
    {"http", "netrc_file", CONF_STR, OFF(netrc_file), 0,
	CONFIG_PROXY_MAX - 1, "", LIVE(JOBS),
	"netrc file with credentials per host (absolute); empty = none."},
    {"http", "deny", CONF_STR, OFF(deny), 0, CONFIG_PROXY_MAX - 1, "",
	LIVE(JOBS),
	"Address ranges (CIDR) never connected to; empty = none."},
    {"http", "segments", CONF_INT, OFF(segments), 1, 16, "1", LIVE(JOBS),
	"Ranges of one file fetched at once (a line's segments= wins)."},
    {"http", "segment_min_size", CONF_SIZE, OFF(segment_min_size), 1,
	SIZE_LIMIT, "20M", LIVE(JOBS),
	"Least bytes per range: a shorter file gets fewer segments."},

    /* [cluster] */
    {"cluster", "redis", CONF_STR, OFF(cluster_redis), 0, 107, "", RESTART,
	"Redis as host:port or a unix socket path; empty = no cluster mode."},
    {"cluster", "password_file", CONF_STR, OFF(cluster_password_file), 0,
	PATH_MAX - 1, "", RESTART,
	"File whose first line is Redis's AUTH password; empty = no AUTH."},
    {"cluster", "stream", CONF_STR, OFF(cluster_stream), 1, 200,
	"{fetchd}:urls", RESTART,
	"Key of the URL stream; results, dead letters and nodes derive from it."},
    {"cluster", "group", CONF_STR, OFF(cluster_group), 1, 200, "fetchd",
	RESTART, "Consumer group the fetching nodes read the stream with."},
    {"cluster", "consumer", CONF_STR, OFF(cluster_consumer), 0, 64, "",
	RESTART, "This node's name, unique in the cluster; empty = host name."},
    {"cluster", "role", CONF_ROLE, OFF(cluster_role), 0, CONF_ROLE_COUNT - 1,
	"both", RESTART,
	"coordinate (this spool's jobs), fetch (others' URLs) or both."},
    /* 2: lease_renew (at least 1) must be less. */
    {"cluster", "claim_idle", CONF_INT, OFF(cluster_claim_idle), 2, 86400,
	"60", RESTART,
	"Seconds without a lease renewal before other nodes take a URL over."},
    {"cluster", "lease_renew", CONF_INT, OFF(cluster_lease_renew), 1, 43200,
	"15", RESTART,
	"Seconds between lease renewals of running URLs (< claim_idle)."},
    {"cluster", "max_deliveries", CONF_INT, OFF(cluster_max_deliveries), 1,
	1000, "5", RESTART,
	"Deliveries without a result before a URL is dead-lettered."},
    {"cluster", "window", CONF_INT, OFF(cluster_window), 1, 100000, "1000",
	RESTART, "URLs one coordinator keeps in the stream at once."},
    {"cluster", "timeout", CONF_INT, OFF(cluster_timeout), 1, 3600, "5",
	RESTART,
	"Seconds a Redis command may go unanswered before reconnecting."},
};

#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

/* State of one config_load(). */
struct load_ctx {
	struct config *cfg;
	FILE *fp;
	char *line; /* getline buffer */
	size_t linecap;
	int lineno;	/* lines handed to inih so far */
	int read_errno; /* a read failed */
	int failed;	/* err holds the first error */
	int err_line;	/* its line, 0 = none in particular */
	char err[512];
	int seen[OPT_COUNT]; /* line each option was set on, 0 = not */
};

const struct config_option *
config_options(size_t *n)
{
	if (n != NULL)
		*n = OPT_COUNT;
	return opt_table;
}

static void *
opt_ptr(const struct config *cfg, const struct config_option *opt)
{
	return (char *)cfg + opt->offset;
}

static const char *const role_names[CONF_ROLE_COUNT] = {
	[CONF_ROLE_BOTH] = "both",
	[CONF_ROLE_COORDINATE] = "coordinate",
	[CONF_ROLE_FETCH] = "fetch",
};

const char *
config_role_name(int role)
{
	return role >= 0 && role < CONF_ROLE_COUNT ? role_names[role] : "?";
}

static int
role_find(const char *s)
{
	for (int i = 0; i < CONF_ROLE_COUNT; i++)
		if (strcasecmp(s, role_names[i]) == 0)
			return i;
	return -1;
}

static int
opt_is(const struct config_option *opt, size_t offset)
{
	return opt->offset == offset;
}

/* Bounds of a numeric option as the file would write them. */
static void
format_number(
    const struct config_option *opt, long long v, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";
	int i;

	switch (opt->type) {
	case CONF_MODE:
		snprintf(buf, len, "%04llo", (unsigned long long)v);
		break;
	case CONF_SIZE:
		/* The largest suffix that says the value exactly. */
		for (i = 4; i > 0; i--) {
			long long unit = 1LL << (10 * i);

			if (v != 0 && v % unit == 0) {
				snprintf(buf, len, "%lld%c", v / unit,
				    suffix[i - 1]);
				return;
			}
		}
		snprintf(buf, len, "%lld", v);
		break;
	default:
		snprintf(buf, len, "%lld", v);
		break;
	}
}

static void
format_range(const struct config_option *opt, char *buf, size_t len)
{
	char lo[32], hi[32];

	format_number(opt, opt->min, lo, sizeof(lo));
	format_number(opt, opt->max, hi, sizeof(hi));
	snprintf(buf, len, "%s..%s", lo, hi);
}

/*
 * Parse a whole decimal number (CONF_INT) or a size with an optional
 * K/M/G/T suffix (CONF_SIZE). Returns 0, -1 when s is not a number, or 1
 * when it is one but too large to hold.
 */
static int
parse_number(const struct config_option *opt, const char *s, long long *out)
{
	char *end;
	long long v;
	int shift = 0;

	if (!isdigit((unsigned char)*s) &&
	    !((*s == '-' || *s == '+') && isdigit((unsigned char)s[1])))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (opt->type == CONF_SIZE) {
		switch (toupper((unsigned char)*end)) {
		case 'K':
			shift = 10;
			break;
		case 'M':
			shift = 20;
			break;
		case 'G':
			shift = 30;
			break;
		case 'T':
			shift = 40;
			break;
		}
		if (shift != 0)
			end++;
	}
	if (*end != '\0')
		return -1;
	if (errno == ERANGE)
		return 1;
	if (shift != 0) {
		if (v > (LLONG_MAX >> shift) || v < -(LLONG_MAX >> shift))
			return 1;
		v *= 1LL << shift;
	}
	*out = v;
	return 0;
}

static int
parse_bool(const char *s)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Octal permission bits: digits 0-7 only. Returns 0, -1, or 1 (too big). */
static int
parse_mode(const char *s, long long *out)
{
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '7')
			return -1;
		if (v > 077777777)
			return 1;
		v = v * 8 + (*s - '0');
	}
	*out = v;
	return 0;
}

/* "host:port" with a port 1..65535; the host may be a [v6] literal. */
static int
valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || errno != 0 || port < 1 || port > 65535 ||
	    colon[1] < '0' || colon[1] > '9')
		return 0;
	return 1;
}

/*
 * The hook's URL: http or https with a host, printable bytes only. libcurl
 * checks the rest when the POST is made (a bad URL is then given up).
 */
static int
valid_hook_url(const char *s)
{
	size_t n;

	if (strncasecmp(s, "http://", 7) == 0)
		n = 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		n = 8;
	else
		return 0;
	if (s[n] == '\0' || s[n] == '/')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 0;
	return 1;
}

/* http.deny: a list of ranges cidr.c can read. */
static int
check_deny(const struct config_option *opt, const char *s, char *msg,
    size_t msglen)
{
	struct cidr_list *l;
	char err[CIDR_ERR_MAX];
	int rv;

	if ((l = malloc(sizeof(*l))) == NULL) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	rv = cidr_list_parse(s, l, err, sizeof(err));
	free(l);
	if (rv == -1)
		snprintf(msg, msglen, "%s.%s: %s", opt->section, opt->key, err);
	return rv;
}

/*
 * Checks on a string beyond its length that belong to one option: the
 * daemon's directories and socket must not depend on its working directory.
 */
static int
check_string(
    const struct config_option *opt, const char *s, char *msg, size_t msglen)
{
	if ((opt_is(opt, OFF(spool_dir)) || opt_is(opt, OFF(download_dir)) ||
		opt_is(opt, OFF(socket_path))) &&
	    s[0] != '/') {
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not an absolute path", opt->section,
		    opt->key, s);
		return -1;
	}
	if ((opt_is(opt, OFF(on_job_done)) || opt_is(opt, OFF(netrc_file))) &&
	    s[0] != '\0' && s[0] != '/') {
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not an absolute path", opt->section,
		    opt->key, s);
		return -1;
	}
	/* Not echoed: the URL may hold a password. */
	if (opt_is(opt, OFF(on_job_done_url)) && s[0] != '\0' &&
	    !valid_hook_url(s)) {
		snprintf(msg, msglen, "%s.%s: not an http:// or https:// URL "
		    "(without blanks or control bytes)", opt->section,
		    opt->key);
		return -1;
	}
	if (opt_is(opt, OFF(deny)) && check_deny(opt, s, msg, msglen) == -1)
		return -1;
	if (opt_is(opt, OFF(metrics_listen)) && s[0] != '\0' &&
	    !valid_listen(s)) {
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not host:port (port 1..65535)",
		    opt->section, opt->key, s);
		return -1;
	}
	return 0;
}

static void
list_names(const char *(*name)(int), int n, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s",
		    i == 0 ? "" : ", ", name(i));

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static const char *
level_name(int i)
{
	return log_level_name((enum log_level)i);
}

/* The text failed opt's checks: msg says why. */
static int
set_invalid(void)
{
	errno = EINVAL;
	return -1;
}

/* CONF_STR: length bounds and the option's own checks, then a copy. */
static int
set_string(void *p, const struct config_option *opt, const char *s,
    char *msg, size_t msglen)
{
	size_t slen = strlen(s);
	char *dup;

	if (slen == 0 && opt->min > 0) {
		snprintf(msg, msglen, "%s.%s must not be empty", opt->section,
		    opt->key);
		return set_invalid();
	}
	if ((long long)slen > opt->max) {
		snprintf(msg, msglen, "%s.%s is too long (%zu bytes, at most %lld)",
		    opt->section, opt->key, slen, opt->max);
		return set_invalid();
	}
	if (check_string(opt, s, msg, msglen) == -1)
		return set_invalid();
	if ((dup = strdup(s)) == NULL) {
		snprintf(msg, msglen, "out of memory");
		errno = ENOMEM;
		return -1;
	}
	free(*(char **)p);
	*(char **)p = dup;
	return 0;
}

/* CONF_INT, CONF_SIZE and CONF_MODE: parse, then check the bounds. */
static int
set_number(void *p, const struct config_option *opt, const char *s,
    char *msg, size_t msglen)
{
	char range[80];
	long long v = 0;
	int r;

	format_range(opt, range, sizeof(range));
	if (opt->type == CONF_MODE)
		r = parse_mode(s, &v);
	else
		r = parse_number(opt, s, &v);
	if (r == -1) {
		snprintf(msg, msglen, "%s.%s: \"%.64s\" is not %s (allowed %s)",
		    opt->section, opt->key, s,
		    opt->type == CONF_MODE ? "an octal mode"
			: opt->type == CONF_SIZE
			? "a size (a number, optionally with K, M, G or T)"
			: "a whole number",
		    range);
		return set_invalid();
	}
	if (r == 1 || v < opt->min || v > opt->max) {
		snprintf(msg, msglen, "%s.%s: %.64s is out of range (allowed %s)",
		    opt->section, opt->key, s, range);
		return set_invalid();
	}
	if (opt->type == CONF_INT)
		*(long *)p = (long)v;
	else if (opt->type == CONF_SIZE)
		*(long long *)p = v;
	else
		*(unsigned *)p = (unsigned)v;
	return 0;
}

/* CONF_BOOL, CONF_LEVEL and CONF_MODEL: one of a few words. */
static int
set_word(void *p, const struct config_option *opt, const char *s, char *msg,
    size_t msglen)
{
	char names[80];
	int r;

	switch (opt->type) {
	case CONF_BOOL:
		if ((r = parse_bool(s)) != -1)
			break;
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not a boolean "
		    "(allowed yes/no, true/false, on/off, 1/0)",
		    opt->section, opt->key, s);
		return set_invalid();
	case CONF_LEVEL:
		if ((r = log_level_parse(s)) >= opt->min && r <= opt->max)
			break;
		list_names(level_name, (int)opt->max + 1, names, sizeof(names));
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not a log level (allowed %s)",
		    opt->section, opt->key, s, names);
		return set_invalid();
	case CONF_ROLE:
		if ((r = role_find(s)) != -1)
			break;
		list_names(config_role_name, CONF_ROLE_COUNT, names,
		    sizeof(names));
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not a role (allowed %s)",
		    opt->section, opt->key, s, names);
		return set_invalid();
	default:
		if ((r = engine_model_find(s)) != -1)
			break;
		list_names(engine_model_name, engine_models(), names,
		    sizeof(names));
		snprintf(msg, msglen,
		    "%s.%s: \"%.64s\" is not a worker model (allowed %s)",
		    opt->section, opt->key, s, names);
		return set_invalid();
	}
	*(int *)p = r;
	return 0;
}

/*
 * Set one option from its text (already unquoted). On failure returns -1
 * with msg naming the option and what it allows; errno is ENOMEM when the
 * failure was an allocation, EINVAL otherwise.
 */
static int
opt_set(struct config *cfg, const struct config_option *opt, const char *s,
    char *msg, size_t msglen)
{
	void *p = opt_ptr(cfg, opt);

	switch (opt->type) {
	case CONF_STR:
		return set_string(p, opt, s, msg, msglen);
	case CONF_INT:
	case CONF_SIZE:
	case CONF_MODE:
		return set_number(p, opt, s, msg, msglen);
	case CONF_BOOL:
	case CONF_LEVEL:
	case CONF_MODEL:
	case CONF_ROLE:
		return set_word(p, opt, s, msg, msglen);
	}
	snprintf(
	    msg, msglen, "%s.%s: unknown option type", opt->section, opt->key);
	return set_invalid();
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (opt_table[i].type == CONF_STR)
			free(*(char **)opt_ptr(cfg, &opt_table[i]));
	memset(cfg, 0, sizeof(*cfg));
}

int
config_defaults(struct config *cfg)
{
	char msg[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < OPT_COUNT; i++) {
		if (opt_set(cfg, &opt_table[i], opt_table[i].def, msg,
			sizeof(msg)) == -1) {
			if (errno != ENOMEM)
				fatalx("config: built-in default: %s", msg);
			config_free(cfg);
			return -1;
		}
	}
	return 0;
}

int
config_copy(struct config *dst, const struct config *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (size_t i = 0; i < OPT_COUNT; i++) {
		char **d;

		if (opt_table[i].type != CONF_STR)
			continue;
		d = opt_ptr(dst, &opt_table[i]);
		if (*d == NULL)
			continue;
		if ((*d = strdup(*d)) == NULL) {
			/* Forget the strings still shared with src. */
			for (size_t j = i + 1; j < OPT_COUNT; j++)
				if (opt_table[j].type == CONF_STR)
					*(char **)opt_ptr(dst, &opt_table[j]) =
					    NULL;
			config_free(dst);
			return -1;
		}
	}
	return 0;
}

static int
opt_equal(const struct config *a, const struct config *b,
    const struct config_option *opt)
{
	const void *pa = opt_ptr(a, opt), *pb = opt_ptr(b, opt);
	const char *sa, *sb;

	switch (opt->type) {
	case CONF_STR:
		sa = *(char *const *)pa;
		sb = *(char *const *)pb;
		return strcmp(sa != NULL ? sa : "", sb != NULL ? sb : "") == 0;
	case CONF_INT:
		return *(const long *)pa == *(const long *)pb;
	case CONF_SIZE:
		return *(const long long *)pa == *(const long long *)pb;
	case CONF_MODE:
		return *(const unsigned *)pa == *(const unsigned *)pb;
	case CONF_BOOL:
	case CONF_LEVEL:
	case CONF_MODEL:
	case CONF_ROLE:
		return *(const int *)pa == *(const int *)pb;
	}
	return 0;
}

int
config_diff(const struct config *a, const struct config *b,
    void (*cb)(const struct config_option *, void *), void *arg)
{
	int n = 0;

	for (size_t i = 0; i < OPT_COUNT; i++) {
		if (opt_equal(a, b, &opt_table[i]))
			continue;
		n++;
		if (cb != NULL)
			cb(&opt_table[i], arg);
	}
	return n;
}

/* Bytes an option's value takes in struct config. */
static size_t
opt_size(const struct config_option *opt)
{
	switch (opt->type) {
	case CONF_STR:
		return sizeof(char *);
	case CONF_INT:
		return sizeof(long);
	case CONF_SIZE:
		return sizeof(long long);
	case CONF_MODE:
		return sizeof(unsigned);
	case CONF_BOOL:
	case CONF_LEVEL:
	case CONF_MODEL:
	case CONF_ROLE:
		return sizeof(int);
	}
	fatalx("config: %s.%s: unknown option type", opt->section, opt->key);
}

/* dst's value of opt becomes src's (a string is copied). 0 or -1. */
static int
opt_copy(struct config *dst, const struct config *src,
    const struct config_option *opt)
{
	char **d, *s;

	if (opt->type != CONF_STR) {
		memcpy(opt_ptr(dst, opt), opt_ptr(src, opt), opt_size(opt));
		return 0;
	}
	d = opt_ptr(dst, opt);
	s = *(char **)opt_ptr(src, opt);
	if (s != NULL && (s = strdup(s)) == NULL)
		return -1;
	free(*d);
	*d = s;
	return 0;
}

int
config_keep_restart(struct config *next, const struct config *running,
    void (*cb)(const struct config_option *, void *), void *arg)
{
	int n = 0;

	for (size_t i = 0; i < OPT_COUNT; i++) {
		const struct config_option *opt = &opt_table[i];

		if (opt->when != CONF_RESTART || opt_equal(next, running, opt))
			continue;
		if (opt_copy(next, running, opt) == -1)
			return -1;
		n++;
		if (cb != NULL)
			cb(opt, arg);
	}
	return n;
}

int
config_apply(const struct config *old, const struct config *cur,
    const struct config_hooks *hooks, void *arg, char *err, size_t errlen)
{
	int changed[CONF_APPLY_COUNT] = {0};
	size_t i;

	for (i = 0; i < OPT_COUNT; i++)
		if (opt_table[i].when == CONF_LIVE &&
		    !opt_equal(old, cur, &opt_table[i]))
			changed[opt_table[i].apply] = 1;
	for (i = 0; i < CONF_APPLY_COUNT; i++)
		if (changed[i] && hooks->apply[i] != NULL &&
		    hooks->apply[i](old, cur, arg, err, errlen) == -1)
			return -1;
	return 0;
}

void
config_format(const struct config *cfg, const struct config_option *opt,
    char *buf, size_t len)
{
	const void *p = opt_ptr(cfg, opt);
	const char *s;

	if (len == 0)
		return;
	switch (opt->type) {
	case CONF_STR:
		s = *(char *const *)p;
		snprintf(buf, len, "%s", s != NULL ? s : "");
		break;
	case CONF_INT:
		snprintf(buf, len, "%ld", *(const long *)p);
		break;
	case CONF_SIZE:
		format_number(opt, *(const long long *)p, buf, len);
		break;
	case CONF_MODE:
		format_number(opt, *(const unsigned *)p, buf, len);
		break;
	case CONF_BOOL:
		snprintf(buf, len, "%s", *(const int *)p ? "yes" : "no");
		break;
	case CONF_LEVEL:
		snprintf(buf, len, "%s",
		    log_level_name((enum log_level) * (const int *)p));
		break;
	case CONF_MODEL:
		snprintf(buf, len, "%s", engine_model_name(*(const int *)p));
		break;
	case CONF_ROLE:
		snprintf(buf, len, "%s", config_role_name(*(const int *)p));
		break;
	default:
		buf[0] = '\0';
		break;
	}
}

static int
section_known(const char *name, size_t len)
{
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (strlen(opt_table[i].section) == len &&
		    strncmp(opt_table[i].section, name, len) == 0)
			return 1;
	return 0;
}

static void load_error(struct load_ctx *ctx, int line, const char *fmt, ...)
    LOG_FMT(3, 4);

/* Keep the first error only: later ones are often its consequences. */
static void
load_error(struct load_ctx *ctx, int line, const char *fmt, ...)
{
	va_list ap;

	if (ctx->failed && ctx->err_line <= line)
		return;
	ctx->failed = 1;
	ctx->err_line = line;
	va_start(ap, fmt);
	vsnprintf(ctx->err, sizeof(ctx->err), fmt, ap);
	va_end(ap);
}

/*
 * inih's reader: one physical line per call, so ctx->lineno is the line
 * the handler is looking at. Leading blanks are dropped (no continuation
 * lines); a line that would not fit inih's buffer is reported and replaced
 * by an empty one rather than split. A "[section]" naming no known section
 * is reported here, at its own line, even if no key follows it.
 */
static char *
load_reader(char *str, int num, void *stream)
{
	struct load_ctx *ctx = stream;
	ssize_t n;
	size_t len;
	char *p, *end;

	if (num < 2)
		return NULL;
	errno = 0;
	if ((n = getline(&ctx->line, &ctx->linecap, ctx->fp)) == -1) {
		if (ferror(ctx->fp))
			ctx->read_errno = errno != 0 ? errno : EIO;
		return NULL;
	}
	ctx->lineno++;
	p = ctx->line;
	while (*p == ' ' || *p == '\t')
		p++;
	len = (size_t)n - (size_t)(p - ctx->line);
	if (memchr(p, '\0', len) != NULL) {
		load_error(ctx, ctx->lineno, "line contains a NUL byte");
		goto blank;
	}
	if (len + 1 > (size_t)num) {
		load_error(ctx, ctx->lineno, "line too long (at most %d bytes)",
		    num - 2);
		goto blank;
	}
	if (*p == '[' && (end = strchr(p + 1, ']')) != NULL &&
	    !section_known(p + 1, (size_t)(end - p - 1)))
		load_error(ctx, ctx->lineno, "unknown section [%.*s]",
		    (int)(end - p - 1 > 64 ? 64 : end - p - 1), p + 1);
	memcpy(str, p, len + 1);
	return str;
blank:
	str[0] = '\n';
	str[1] = '\0';
	return str;
}

static int
load_handler(
    void *user, const char *section, const char *key, const char *value)
{
	struct load_ctx *ctx = user;
	const struct config_option *opt = NULL;
	int line = ctx->lineno;
	size_t i, vlen;
	char *inner;
	char msg[384];

	if (*section == '\0') {
		load_error(
		    ctx, line, "key \"%.64s\" outside of any [section]", key);
		return 0;
	}
	if (!section_known(section, strlen(section))) {
		load_error(ctx, line, "unknown section [%.64s]", section);
		return 0;
	}
	if (*key == '\0') {
		load_error(ctx, line, "syntax error: missing key before '='");
		return 0;
	}
	for (i = 0; i < OPT_COUNT; i++) {
		if (strcmp(opt_table[i].section, section) == 0 &&
		    strcmp(opt_table[i].key, key) == 0) {
			opt = &opt_table[i];
			break;
		}
	}
	if (opt == NULL) {
		load_error(ctx, line, "unknown key %s.%.64s", section, key);
		return 0;
	}
	if (ctx->seen[i] != 0) {
		load_error(ctx, line, "%s.%s given twice (first on line %d)",
		    opt->section, opt->key, ctx->seen[i]);
		return 0;
	}
	ctx->seen[i] = line;

	/* One pair of surrounding double quotes keeps outer blanks. */
	vlen = strlen(value);
	if (value[0] == '"') {
		if (vlen < 2 || value[vlen - 1] != '"') {
			load_error(ctx, line, "%s.%s: unbalanced double quote",
			    opt->section, opt->key);
			return 0;
		}
		inner = strndup(value + 1, vlen - 2);
	} else
		inner = strdup(value);
	if (inner == NULL) {
		load_error(ctx, line, "out of memory");
		return 0;
	}
	if (opt_set(ctx->cfg, opt, inner, msg, sizeof(msg)) == -1) {
		load_error(ctx, line, "%s", msg);
		free(inner);
		return 0;
	}
	free(inner);
	return 1;
}

static int
opt_index(size_t offset)
{
	for (size_t i = 0; i < OPT_COUNT; i++)
		if (opt_table[i].offset == offset)
			return (int)i;
	fatalx("config: no option at offset %zu", offset);
}

/* Rules between options, checked once the whole file is in. */
static void
load_crosscheck(struct load_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;
	int a = opt_index(OFF(retry_delay));
	int b = opt_index(OFF(retry_max_delay));
	int line;

	if (cfg->retry_max_delay < cfg->retry_delay) {
		line =
		    ctx->seen[a] > ctx->seen[b] ? ctx->seen[a] : ctx->seen[b];
		load_error(ctx, line,
		    "http.retry_max_delay (%ld) is less than "
		    "http.retry_delay (%ld)",
		    cfg->retry_max_delay, cfg->retry_delay);
	}
	a = opt_index(OFF(cluster_lease_renew));
	b = opt_index(OFF(cluster_claim_idle));
	if (cfg->cluster_lease_renew >= cfg->cluster_claim_idle) {
		line =
		    ctx->seen[a] > ctx->seen[b] ? ctx->seen[a] : ctx->seen[b];
		load_error(ctx, line,
		    "cluster.lease_renew (%ld) is not less than "
		    "cluster.claim_idle (%ld)",
		    cfg->cluster_lease_renew, cfg->cluster_claim_idle);
	}
	a = opt_index(OFF(cluster_consumer));
	if (!config_node_name_valid(cfg->cluster_consumer, 1))
		load_error(ctx, ctx->seen[a],
		    "cluster.consumer: \"%.64s\" is not a node name "
		    "(letters, digits, '.', '_', '-')", cfg->cluster_consumer);
}

int
config_node_name_valid(const char *s, int empty_ok)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return empty_ok;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	return i <= 64 && s[0] != '.';
}

int
config_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct load_ctx ctx;
	int saved_max = 0, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	if (config_defaults(cfg) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		return -1;
	}
	if ((ctx.fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}

	if (&ini_max_line != NULL) {
		saved_max = ini_max_line;
		if (ini_max_line < CONFIG_LINE_MAX)
			ini_max_line = CONFIG_LINE_MAX;
	}
	rc = ini_parse_stream(load_reader, &ctx, load_handler, &ctx);
	if (&ini_max_line != NULL)
		ini_max_line = saved_max;

	if (ctx.read_errno != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(ctx.read_errno));
		goto fail;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}
	/* inih knows of lines it could not parse; we know the rest. */
	if (rc > 0)
		load_error(&ctx, rc,
		    "syntax error: expected \"[section]\" "
		    "or \"key = value\"");
	if (!ctx.failed)
		load_crosscheck(&ctx);
	if (ctx.failed) {
		if (ctx.err_line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, ctx.err_line,
			    ctx.err);
		else
			snprintf(err, errlen, "%s: %s", path, ctx.err);
		goto fail;
	}
	free(ctx.line);
	fclose(ctx.fp);
	return 0;
fail:
	free(ctx.line);
	if (ctx.fp != NULL)
		fclose(ctx.fp);
	config_free(cfg);
	return -1;
}
