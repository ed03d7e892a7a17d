/*
 * check_config.c: unit tests for config.c.
 *
 * Every config file a test reads is written into a fresh mkdtemp directory
 * that the fixture removes. Errors are compared in full, "PATH:LINE:"
 * prefix included, because that text is what an operator running
 * `fetchd -t` sees. The last tests hold etc/fetchd.conf to the option
 * table: it must parse to the defaults and document every option.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "log.h"
#include "testlib.h"

#ifndef SRCDIR
#error "SRCDIR must name the top source directory"
#endif

static char tmpdir[64];
static char cur_path[128]; /* the file written last */
static int file_seq;

static void
setup(void)
{
	testlib_tmpdir(tmpdir, sizeof(tmpdir), "check_config");
	file_seq = 0;
}

static void
teardown(void)
{
	testlib_rm_rf(tmpdir);
}

/* Write text to a new file in tmpdir; its name is left in cur_path. */
static const char *
write_conf(const char *text, size_t len)
{
	FILE *fp;

	snprintf(cur_path, sizeof(cur_path), "%s/t%d.conf", tmpdir, ++file_seq);
	fp = fopen(cur_path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(text, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
	return cur_path;
}

static int
load_text(const char *text, struct config *cfg, char *err, size_t errlen)
{
	const char *path = write_conf(text, strlen(text));

	err[0] = '\0';
	return config_load(path, cfg, err, errlen);
}

static void
assert_zeroed(const struct config *cfg)
{
	struct config zero;

	memset(&zero, 0, sizeof(zero));
	ck_assert_msg(memcmp(cfg, &zero, sizeof(zero)) == 0,
	    "config not zeroed after a failed load");
}

/* Loading text must fail with exactly "PATH:LINE: msg". */
static void
expect_error(const char *text, int line, const char *msg)
{
	struct config cfg;
	char err[1024], want[1024];

	ck_assert_int_eq(load_text(text, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:%d: %s", cur_path, line, msg);
	ck_assert_str_eq(err, want);
	assert_zeroed(&cfg);
}

/* Loading text must fail at line with a message starting with prefix. */
static void
expect_error_prefix(
    const char *text, int line, const char *prefix, const char *what)
{
	struct config cfg;
	char err[1024], want[1024];

	ck_assert_msg(load_text(text, &cfg, err, sizeof(err)) == -1,
	    "%s: accepted", what);
	snprintf(want, sizeof(want), "%s:%d: %s", cur_path, line, prefix);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	    "%s: got \"%s\", want prefix \"%s\"", what, err, want);
	assert_zeroed(&cfg);
}

static void
expect_ok(const char *text, struct config *cfg)
{
	char err[1024];

	ck_assert_msg(load_text(text, cfg, err, sizeof(err)) == 0,
	    "load failed: %s", err);
}

static const struct config_option *
find_opt(const char *section, const char *key)
{
	const struct config_option *opt;
	size_t n;

	opt = config_options(&n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(opt[i].section, section) == 0 &&
		    strcmp(opt[i].key, key) == 0)
			return &opt[i];
	ck_abort_msg("no option %s.%s", section, key);
	return NULL;
}

static void
assert_format(const struct config *cfg, const char *section, const char *key,
    const char *want)
{
	char buf[1100];

	config_format(cfg, find_opt(section, key), buf, sizeof(buf));
	ck_assert_str_eq(buf, want);
}

START_TEST(test_table)
{
	const struct config_option *opt;
	size_t n, nr = 0, nc = 0;

	opt = config_options(&n);
	ck_assert_uint_eq(n, 49);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(opt[i].help);
		ck_assert_ptr_nonnull(opt[i].def);
		ck_assert_msg(
		    opt[i].min <= opt[i].max, "%s bounds", opt[i].key);
		ck_assert_msg(
		    opt[i].offset < sizeof(struct config), "%s", opt[i].key);
		for (size_t j = 0; j < i; j++)
			ck_assert_msg(strcmp(opt[i].key, opt[j].key) != 0 ||
				strcmp(opt[i].section, opt[j].section) != 0,
			    "%s.%s twice in the table", opt[i].section,
			    opt[i].key);
	}
	/* Every row says when it takes effect; only live rows have a hook. */
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(opt[i].when == CONF_RESTART ||
			opt[i].when == CONF_LIVE,
		    "%s.%s: neither live nor restart", opt[i].section,
		    opt[i].key);
		ck_assert_msg(opt[i].apply < CONF_APPLY_COUNT, "%s.%s: apply",
		    opt[i].section, opt[i].key);
		ck_assert_msg(opt[i].when == CONF_LIVE ||
			opt[i].apply == CONF_APPLY_NONE,
		    "%s.%s: a restart-only option with a hook",
		    opt[i].section, opt[i].key);
	}
	/* Only these are fixed for the daemon's lifetime. */
	ck_assert_int_eq(find_opt("daemon", "spool_dir")->when, CONF_RESTART);
	ck_assert_int_eq(find_opt("daemon", "download_dir")->when, CONF_RESTART);
	ck_assert_int_eq(find_opt("daemon", "socket")->when, CONF_RESTART);
	ck_assert_int_eq(find_opt("daemon", "socket_mode")->when, CONF_RESTART);
	ck_assert_int_eq(
	    find_opt("daemon", "metrics_listen")->when, CONF_RESTART);
	/* And every [cluster] option: the connections, the node's name and
	 * role, the leases are set up once. */
	for (size_t i = 0; i < n; i++) {
		if (strcmp(opt[i].section, "cluster") == 0) {
			ck_assert_msg(opt[i].when == CONF_RESTART,
			    "cluster.%s is live", opt[i].key);
			nc++;
		} else if (opt[i].when == CONF_RESTART)
			nr++;
	}
	ck_assert_uint_eq(nr, 5);
	ck_assert_uint_eq(nc, 11);
	/* The live ones with side effects name their hook. */
	ck_assert_int_eq(find_opt("daemon", "log_level")->apply, CONF_APPLY_LOG);
	ck_assert_int_eq(find_opt("workers", "model")->apply, CONF_APPLY_ENGINE);
	ck_assert_int_eq(find_opt("workers", "count")->apply, CONF_APPLY_ENGINE);
	ck_assert_int_eq(
	    find_opt("workers", "per_host")->apply, CONF_APPLY_SCHED);
	ck_assert_int_eq(
	    find_opt("daemon", "rescan_interval")->apply, CONF_APPLY_RESCAN);
	ck_assert_int_eq(find_opt("http", "proxy")->apply, CONF_APPLY_JOBS);
	ck_assert_int_eq(find_opt("http", "proxy")->when, CONF_LIVE);
}
END_TEST

START_TEST(test_defaults)
{
	const struct config_option *opt;
	struct config cfg;
	char buf[1100];
	size_t n;

	ck_assert_int_eq(config_defaults(&cfg), 0);
	ck_assert_str_eq(cfg.spool_dir, "/var/spool/fetchd");
	ck_assert_str_eq(cfg.download_dir, "/var/lib/fetchd/downloads");
	ck_assert_str_eq(cfg.socket_path, "/run/fetchd/fetchd.sock");
	ck_assert_uint_eq(cfg.socket_mode, 0660);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_INFO);
	ck_assert_int_eq(cfg.shutdown_grace, 30);
	ck_assert_int_eq(cfg.rescan_interval, 30);
	ck_assert_int_eq(cfg.sync, 1);
	ck_assert_int_eq(cfg.max_job_urls, 10000000);
	ck_assert_str_eq(cfg.metrics_listen, "");
	ck_assert_str_eq(cfg.on_job_done, "");
	ck_assert_str_eq(cfg.on_job_done_url, "");
	ck_assert_int_eq(cfg.on_job_done_timeout, 60);
	ck_assert_int_eq(cfg.on_job_done_max, 4);
	ck_assert_int_eq(cfg.on_job_done_retries, 5);
	ck_assert_int_eq(cfg.model, engine_model_find("event"));
	ck_assert_int_eq(cfg.count, 16);
	ck_assert_int_eq(cfg.per_host, 8);
	ck_assert_int_eq(cfg.connect_timeout, 15);
	ck_assert_int_eq(cfg.timeout, 0);
	ck_assert_int_eq(cfg.low_speed_limit, 1024);
	ck_assert_int_eq(cfg.low_speed_time, 30);
	ck_assert_int_eq(cfg.retries, 3);
	ck_assert_int_eq(cfg.retry_delay, 1);
	ck_assert_int_eq(cfg.retry_max_delay, 60);
	ck_assert_int_eq(cfg.max_redirects, 10);
	ck_assert_str_eq(cfg.user_agent, "fetchd/" PACKAGE_VERSION);
	ck_assert(cfg.max_file_size == 0);
	ck_assert(cfg.rate_limit == 0);
	ck_assert_str_eq(cfg.proxy, "");
	ck_assert_int_eq(cfg.verify_tls, 1);
	ck_assert_str_eq(cfg.ca_file, "");
	ck_assert_str_eq(cfg.cluster_redis, "");
	ck_assert_str_eq(cfg.cluster_password_file, "");
	ck_assert_str_eq(cfg.cluster_stream, "{fetchd}:urls");
	ck_assert_str_eq(cfg.cluster_group, "fetchd");
	ck_assert_str_eq(cfg.cluster_consumer, "");
	ck_assert_int_eq(cfg.cluster_role, CONF_ROLE_BOTH);
	ck_assert_int_eq(cfg.cluster_claim_idle, 60);
	ck_assert_int_eq(cfg.cluster_lease_renew, 15);
	ck_assert_int_eq(cfg.cluster_max_deliveries, 5);
	ck_assert_int_eq(cfg.cluster_window, 1000);
	ck_assert_int_eq(cfg.cluster_timeout, 5);

	/* Each default formats back to the text in the table. */
	opt = config_options(&n);
	for (size_t i = 0; i < n; i++) {
		config_format(&cfg, &opt[i], buf, sizeof(buf));
		ck_assert_msg(strcmp(buf, opt[i].def) == 0,
		    "%s.%s formats as \"%s\", default is \"%s\"",
		    opt[i].section, opt[i].key, buf, opt[i].def);
	}
	config_free(&cfg);
	assert_zeroed(&cfg);
}
END_TEST

START_TEST(test_empty_file)
{
	struct config cfg, def;

	expect_ok("", &cfg);
	ck_assert_int_eq(config_defaults(&def), 0);
	ck_assert_int_eq(config_diff(&cfg, &def, NULL, NULL), 0);
	config_free(&cfg);
	expect_ok("# only a comment\n\n[http]\n; and another\n", &cfg);
	ck_assert_int_eq(config_diff(&cfg, &def, NULL, NULL), 0);
	config_free(&cfg);
	config_free(&def);
}
END_TEST

static const char all_keys[] = "[daemon]\n"
			       "spool_dir = /srv/fetchd/spool\n"
			       "download_dir = /srv/fetchd/out\n"
			       "socket = /srv/fetchd/ctl.sock\n"
			       "socket_mode = 0600\n"
			       "log_level = debug\n"
			       "shutdown_grace = 5\n"
			       "rescan_interval = 7\n"
			       "sync = no\n"
			       "max_job_urls = 500\n"
			       "metrics_listen = 127.0.0.1:9100\n"
			       "on_job_done = /usr/local/bin/job-ended\n"
			       "on_job_done_url = https://u:p@hooks.example/x?t=1\n"
			       "on_job_done_timeout = 10\n"
			       "on_job_done_max = 1\n"
			       "on_job_done_retries = 0\n"
			       "[workers]\n"
			       "model = process\n"
			       "count = 4\n"
			       "per_host = 0\n"
			       "[http]\n"
			       "connect_timeout = 3\n"
			       "timeout = 600\n"
			       "low_speed_limit = 10\n"
			       "low_speed_time = 9\n"
			       "retries = 0\n"
			       "retry_delay = 2\n"
			       "retry_max_delay = 20\n"
			       "max_redirects = 0\n"
			       "user_agent = test-agent/1 (x)\n"
			       "max_file_size = 5M\n"
			       "rate_limit = 100K\n"
			       "proxy = http://127.0.0.1:3128\n"
			       "verify_tls = no\n"
			       "ca_file = /etc/ssl/test.pem\n"
			       "no_proxy = localhost, .internal\n"
			       "proxy_ca_file = /etc/ssl/proxy.pem\n"
			       "netrc_file = /etc/fetchd/netrc\n"
			       "deny = 127.0.0.0/8, ::1 169.254.169.254\n"
			       "segments = 4\n"
			       "segment_min_size = 1M\n"
			       "[cluster]\n"
			       "redis = 10.0.0.5:6379\n"
			       "password_file = /etc/fetchd/redis.pass\n"
			       "stream = {crawl}:urls\n"
			       "group = crawlers\n"
			       "consumer = node-7\n"
			       "role = fetch\n"
			       "claim_idle = 120\n"
			       "lease_renew = 30\n"
			       "max_deliveries = 3\n"
			       "window = 500\n"
			       "timeout = 10\n";

static void
count_cb(const struct config_option *opt, void *arg)
{
	int *seen = arg;
	size_t n;

	seen[opt - config_options(&n)]++;
}

START_TEST(test_all_keys)
{
	struct config cfg, def, again;
	int seen[64] = {0};
	char text[8192], buf[1100];
	const struct config_option *opt;
	size_t n, used = 0;

	expect_ok(all_keys, &cfg);
	ck_assert_str_eq(cfg.spool_dir, "/srv/fetchd/spool");
	ck_assert_str_eq(cfg.download_dir, "/srv/fetchd/out");
	ck_assert_str_eq(cfg.socket_path, "/srv/fetchd/ctl.sock");
	ck_assert_uint_eq(cfg.socket_mode, 0600);
	ck_assert_int_eq(cfg.log_level, LOG_LVL_DEBUG);
	ck_assert_int_eq(cfg.shutdown_grace, 5);
	ck_assert_int_eq(cfg.rescan_interval, 7);
	ck_assert_int_eq(cfg.sync, 0);
	ck_assert_int_eq(cfg.max_job_urls, 500);
	ck_assert_str_eq(cfg.metrics_listen, "127.0.0.1:9100");
	ck_assert_str_eq(cfg.on_job_done, "/usr/local/bin/job-ended");
	ck_assert_str_eq(cfg.on_job_done_url, "https://u:p@hooks.example/x?t=1");
	ck_assert_int_eq(cfg.on_job_done_timeout, 10);
	ck_assert_int_eq(cfg.on_job_done_max, 1);
	ck_assert_int_eq(cfg.on_job_done_retries, 0);
	ck_assert_int_eq(cfg.model, engine_model_find("process"));
	ck_assert_int_eq(cfg.count, 4);
	ck_assert_int_eq(cfg.per_host, 0);
	ck_assert_int_eq(cfg.connect_timeout, 3);
	ck_assert_int_eq(cfg.timeout, 600);
	ck_assert_int_eq(cfg.low_speed_limit, 10);
	ck_assert_int_eq(cfg.low_speed_time, 9);
	ck_assert_int_eq(cfg.retries, 0);
	ck_assert_int_eq(cfg.retry_delay, 2);
	ck_assert_int_eq(cfg.retry_max_delay, 20);
	ck_assert_int_eq(cfg.max_redirects, 0);
	ck_assert_str_eq(cfg.user_agent, "test-agent/1 (x)");
	ck_assert(cfg.max_file_size == 5LL * 1024 * 1024);
	ck_assert(cfg.rate_limit == 100LL * 1024);
	ck_assert_str_eq(cfg.proxy, "http://127.0.0.1:3128");
	ck_assert_int_eq(cfg.verify_tls, 0);
	ck_assert_str_eq(cfg.ca_file, "/etc/ssl/test.pem");
	ck_assert_str_eq(cfg.no_proxy, "localhost, .internal");
	ck_assert_str_eq(cfg.proxy_ca_file, "/etc/ssl/proxy.pem");
	ck_assert_str_eq(cfg.netrc_file, "/etc/fetchd/netrc");
	ck_assert_str_eq(cfg.deny, "127.0.0.0/8, ::1 169.254.169.254");
	ck_assert_int_eq(cfg.segments, 4);
	ck_assert(cfg.segment_min_size == 1024 * 1024);
	ck_assert_str_eq(cfg.cluster_redis, "10.0.0.5:6379");
	ck_assert_str_eq(cfg.cluster_password_file, "/etc/fetchd/redis.pass");
	ck_assert_str_eq(cfg.cluster_stream, "{crawl}:urls");
	ck_assert_str_eq(cfg.cluster_group, "crawlers");
	ck_assert_str_eq(cfg.cluster_consumer, "node-7");
	ck_assert_int_eq(cfg.cluster_role, CONF_ROLE_FETCH);
	ck_assert_int_eq(cfg.cluster_claim_idle, 120);
	ck_assert_int_eq(cfg.cluster_lease_renew, 30);
	ck_assert_int_eq(cfg.cluster_max_deliveries, 3);
	ck_assert_int_eq(cfg.cluster_window, 500);
	ck_assert_int_eq(cfg.cluster_timeout, 10);

	/* Every option differs from its default, and is reported once. */
	opt = config_options(&n);
	ck_assert_uint_le(n, 64);
	ck_assert_int_eq(config_defaults(&def), 0);
	ck_assert_int_eq(config_diff(&def, &cfg, count_cb, seen), (int)n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(
		    seen[i] == 1, "%s reported %d times", opt[i].key, seen[i]);

	/* config_format's text reads back to the same config. */
	for (size_t i = 0; i < n; i++) {
		config_format(&cfg, &opt[i], buf, sizeof(buf));
		used += (size_t)snprintf(text + used, sizeof(text) - used,
		    "[%s]\n%s = \"%s\"\n", opt[i].section, opt[i].key, buf);
		ck_assert_uint_lt(used, sizeof(text));
	}
	expect_ok(text, &again);
	ck_assert_int_eq(config_diff(&cfg, &again, NULL, NULL), 0);

	config_free(&again);
	config_free(&def);
	config_free(&cfg);
}
END_TEST

/*
 * Write a file that sets one option to value on line 6. Lines 3 and 4 widen
 * the retry delays, and the lines after 6 the cluster's lease times, so the
 * cross checks cannot interfere with the bound being tested.
 */
static void
bound_text(
    const struct config_option *opt, const char *value, char *text, size_t len)
{
	int is_delay = strcmp(opt->key, "retry_delay") == 0;
	int is_max = strcmp(opt->key, "retry_max_delay") == 0;
	int is_claim = strcmp(opt->key, "claim_idle") == 0;
	int is_renew = strcmp(opt->key, "lease_renew") == 0;

	snprintf(text, len,
	    "# bounds\n[http]\n%s\n%s\n[%s]\n%s = %s\n[cluster]\n%s\n%s\n",
	    is_delay ? "# pad" : "retry_delay = 0",
	    is_max ? "# pad" : "retry_max_delay = 86400", opt->section,
	    opt->key, value, is_claim ? "# pad" : "claim_idle = 86400",
	    is_renew ? "# pad" : "lease_renew = 1");
}

static void
number_text(const struct config_option *opt, long long v, char *buf, size_t len)
{
	if (opt->type == CONF_MODE && v >= 0)
		snprintf(buf, len, "0%llo", v);
	else
		snprintf(buf, len, "%lld", v);
}

/* A string of exactly len bytes that the option's own checks accept. */
static char *
string_of(const struct config_option *opt, size_t len)
{
	char *s = malloc(len + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, 'a', len);
	s[len] = '\0';
	if (len > 0 &&
	    (strcmp(opt->key, "spool_dir") == 0 ||
		strcmp(opt->key, "download_dir") == 0 ||
		strcmp(opt->key, "socket") == 0 ||
		strcmp(opt->key, "on_job_done") == 0 ||
		strcmp(opt->key, "netrc_file") == 0))
		s[0] = '/';
	/* "::1" then separators only. */
	if (len >= 3 && strcmp(opt->key, "deny") == 0) {
		memset(s, ',', len);
		memcpy(s, "::1", 3);
	}
	if (len >= 8 && strcmp(opt->key, "on_job_done_url") == 0)
		memcpy(s, "http://", 7);
	if (len >= 3 && strcmp(opt->key, "metrics_listen") == 0)
		memcpy(s + len - 2, ":1", 2);
	return s;
}

START_TEST(test_bounds)
{
	const struct config_option *opt;
	struct config cfg;
	char value[64], what[256], prefix[64];
	char *text, *s;
	size_t n, tlen = 16384;

	text = malloc(tlen);
	ck_assert_ptr_nonnull(text);
	opt = config_options(&n);
	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &opt[i];

		snprintf(prefix, sizeof(prefix), "%s.%s", o->section, o->key);
		switch (o->type) {
		case CONF_INT:
		case CONF_SIZE:
		case CONF_MODE:
			number_text(o, o->min, value, sizeof(value));
			bound_text(o, value, text, tlen);
			expect_ok(text, &cfg);
			config_free(&cfg);

			number_text(o, o->max, value, sizeof(value));
			bound_text(o, value, text, tlen);
			expect_ok(text, &cfg);
			config_free(&cfg);

			number_text(o, o->min - 1, value, sizeof(value));
			bound_text(o, value, text, tlen);
			snprintf(what, sizeof(what), "%s = %s", prefix, value);
			expect_error_prefix(text, 6, prefix, what);

			number_text(o, o->max + 1, value, sizeof(value));
			bound_text(o, value, text, tlen);
			snprintf(what, sizeof(what), "%s = %s", prefix, value);
			expect_error_prefix(text, 6, prefix, what);
			break;
		case CONF_STR:
			s = string_of(o, (size_t)o->max);
			bound_text(o, s, text, tlen);
			expect_ok(text, &cfg);
			ck_assert_str_eq(
			    *(char **)((char *)&cfg + o->offset), s);
			config_free(&cfg);
			free(s);

			s = string_of(o, (size_t)o->max + 1);
			bound_text(o, s, text, tlen);
			snprintf(what, sizeof(what), "%s too long", prefix);
			expect_error_prefix(text, 6, prefix, what);
			free(s);

			bound_text(o, "", text, tlen);
			if (o->min == 0) {
				expect_ok(text, &cfg);
				config_free(&cfg);
			} else {
				snprintf(
				    what, sizeof(what), "%s empty", prefix);
				expect_error_prefix(text, 6, prefix, what);
			}
			break;
		default:
			break;
		}
	}
	free(text);
}
END_TEST

/* http.deny is a list cidr.c reads; netrc_file an absolute path. */
START_TEST(test_net_options)
{
	struct config cfg;

	expect_error("[http]\ndeny = 10.0.0.0/8 10.0.0.1/8\n", 2,
	    "http.deny: \"10.0.0.1/8\" has bits set past the prefix length");
	expect_error("[http]\ndeny = localhost\n", 2,
	    "http.deny: \"localhost\" is not an IPv4 or IPv6 address");
	expect_error("[http]\ndeny = ::/129\n", 2,
	    "http.deny: \"::/129\": prefix length must be 0..128");
	expect_error("[http]\nnetrc_file = netrc\n", 2,
	    "http.netrc_file: \"netrc\" is not an absolute path");
	expect_ok("[http]\ndeny = 127.0.0.0/8,::1/128, fc00::/7\n"
	    "no_proxy = *\nproxy = socks5h://127.0.0.1:1080\n", &cfg);
	ck_assert_str_eq(cfg.no_proxy, "*");
	config_free(&cfg);
	/* The defaults: nothing denied, no credentials. */
	expect_ok("", &cfg);
	ck_assert_str_eq(cfg.deny, "");
	ck_assert_str_eq(cfg.netrc_file, "");
	config_free(&cfg);
}
END_TEST

/* A few bounds spelled out, so the messages are pinned down too. */
START_TEST(test_bound_messages)
{
	expect_error("[http]\nretries = 101\n", 2,
	    "http.retries: 101 is out of range (allowed 0..100)");
	expect_error("[workers]\n\ncount = 0\n", 3,
	    "workers.count: 0 is out of range (allowed 1..10000)");
	expect_error("[http]\nmax_file_size = 1025T\n", 2,
	    "http.max_file_size: 1025T is out of range (allowed 0..1024T)");
	expect_error("[daemon]\nsocket_mode = 010000\n", 2,
	    "daemon.socket_mode: 010000 is out of range "
	    "(allowed 0000..7777)");
	expect_error("[http]\nuser_agent = \"\"\n", 2,
	    "http.user_agent must not be empty");
}
END_TEST

START_TEST(test_errors)
{
	expect_error("[daemon]\n[nope]\nx = 1\n", 2, "unknown section [nope]");
	/* An unknown section is an error even with nothing in it. */
	expect_error("[http]\n[HTTP]\n", 2, "unknown section [HTTP]");
	expect_error(
	    "[http]\nretries = 2\nbogus = 1\n", 3, "unknown key http.bogus");
	expect_error(
	    "[daemon]\nretries = 2\n", 2, "unknown key daemon.retries");
	expect_error("[http]\nretries = 2\ntimeout = 1\n\nretries = 3\n", 5,
	    "http.retries given twice (first on line 2)");
	expect_error("[http]\nretries = 2\n[daemon]\n[http]\nretries = 3\n", 5,
	    "http.retries given twice (first on line 2)");
	expect_error("[http]\n# c\nretries = 12abc\n", 3,
	    "http.retries: \"12abc\" is not a whole number (allowed 0..100)");
	expect_error("[http]\nretries =\n", 2,
	    "http.retries: \"\" is not a whole number (allowed 0..100)");
	expect_error("[http]\nretries = 0x10\n", 2,
	    "http.retries: \"0x10\" is not a whole number (allowed 0..100)");
	expect_error("[http]\nretries = 1.5\n", 2,
	    "http.retries: \"1.5\" is not a whole number (allowed 0..100)");
	expect_error("[http]\nretries = 99999999999999999999\n", 2,
	    "http.retries: 99999999999999999999 is out of range "
	    "(allowed 0..100)");
	expect_error("[http]\nretries = -1\n", 2,
	    "http.retries: -1 is out of range (allowed 0..100)");
	expect_error("[http]\nverify_tls = maybe\n", 2,
	    "http.verify_tls: \"maybe\" is not a boolean "
	    "(allowed yes/no, true/false, on/off, 1/0)");
	expect_error("[workers]\nmodel = fork\n", 2,
	    "workers.model: \"fork\" is not a worker model "
	    "(allowed threads, event, process)");
	expect_error("[daemon]\nlog_level = loud\n", 2,
	    "daemon.log_level: \"loud\" is not a log level "
	    "(allowed error, warn, info, debug)");
	expect_error("[daemon]\nsocket_mode = 0800\n", 2,
	    "daemon.socket_mode: \"0800\" is not an octal mode "
	    "(allowed 0000..7777)");
	expect_error("[daemon]\nmetrics_listen = localhost\n", 2,
	    "daemon.metrics_listen: \"localhost\" is not host:port "
	    "(port 1..65535)");
	expect_error("[daemon]\nmetrics_listen = 127.0.0.1:99999\n", 2,
	    "daemon.metrics_listen: \"127.0.0.1:99999\" is not host:port "
	    "(port 1..65535)");
	expect_error("[http]\nthis line has no equals sign\n", 2,
	    "syntax error: expected \"[section]\" or \"key = value\"");
	expect_error("[http\nretries = 1\n", 1,
	    "syntax error: expected \"[section]\" or \"key = value\"");
	expect_error(
	    "[http]\n= 4\n", 2, "syntax error: missing key before '='");
	expect_error("retries = 1\n[http]\n", 1,
	    "key \"retries\" outside of any [section]");
	expect_error("[http]\nuser_agent = \"abc\n", 2,
	    "http.user_agent: unbalanced double quote");
	/* ';' after a blank starts a comment, also inside quotes. */
	expect_error("[http]\nuser_agent = \"a ; b\"\n", 2,
	    "http.user_agent: unbalanced double quote");
}
END_TEST

START_TEST(test_first_error_wins)
{
	/* Two bad lines: the earlier one is reported, whoever found it. */
	expect_error("[http]\nretries = x\nno equals here\n", 2,
	    "http.retries: \"x\" is not a whole number (allowed 0..100)");
	expect_error("[http]\nno equals here\nretries = x\n", 2,
	    "syntax error: expected \"[section]\" or \"key = value\"");
	expect_error(
	    "[bad]\n[http]\nno equals here\n", 1, "unknown section [bad]");
}
END_TEST

START_TEST(test_line_numbers)
{
	struct config cfg;
	char text[256];

	/* A BOM, CRLF endings, comments and blank lines all count right. */
	expect_error("\xef\xbb\xbf[http]\r\n\r\n; x\r\n# y\r\nretries = z\r\n",
	    5, "http.retries: \"z\" is not a whole number (allowed 0..100)");

	/* Indented lines are keys of their own, not continuations. */
	expect_ok("[http]\ntimeout = 3\n    retries = 5\n\tmax_redirects = 2\n",
	    &cfg);
	ck_assert_int_eq(cfg.timeout, 3);
	ck_assert_int_eq(cfg.retries, 5);
	ck_assert_int_eq(cfg.max_redirects, 2);
	config_free(&cfg);
	expect_error("[http]\ntimeout = 3\n    oops\n", 3,
	    "syntax error: expected \"[section]\" or \"key = value\"");

	/* Inline comments after a blank, CRLF. */
	expect_ok(
	    "[http]\r\nretries = 7 ; seven\r\nuser_agent = a;b\r\n", &cfg);
	ck_assert_int_eq(cfg.retries, 7);
	ck_assert_str_eq(cfg.user_agent, "a;b");
	config_free(&cfg);

	/* A line too long for the parser is reported, not split. */
	{
		size_t len = 20000;
		char *big = malloc(len + 64);

		ck_assert_ptr_nonnull(big);
		strcpy(big, "[http]\nuser_agent = ");
		memset(big + strlen(big), 'x', len);
		strcpy(big + 20 + len, "\nretries = 1\n");
		expect_error_prefix(big, 2, "line too long", "long line");
		free(big);
	}

	/* A NUL byte inside a line. */
	memcpy(text, "[http]\nretries = 1\0\n", 20);
	{
		struct config c2;
		char err[512], want[512];
		const char *path = write_conf(text, 20);

		ck_assert_int_eq(config_load(path, &c2, err, sizeof(err)), -1);
		snprintf(
		    want, sizeof(want), "%s:2: line contains a NUL byte", path);
		ck_assert_str_eq(err, want);
	}
}
END_TEST

START_TEST(test_file_errors)
{
	struct config cfg;
	char path[128], err[1024], want[1024];

	snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
	ck_assert_int_eq(config_load(path, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	assert_zeroed(&cfg);

	ck_assert_int_eq(config_load(tmpdir, &cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", tmpdir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	assert_zeroed(&cfg);

	if (geteuid() != 0) {
		write_conf("[http]\n", 7);
		ck_assert_int_eq(chmod(cur_path, 0), 0);
		ck_assert_int_eq(
		    config_load(cur_path, &cfg, err, sizeof(err)), -1);
		snprintf(
		    want, sizeof(want), "%s: %s", cur_path, strerror(EACCES));
		ck_assert_str_eq(err, want);
	}
}
END_TEST

START_TEST(test_sizes)
{
	static const struct {
		const char *text;
		long long want;
	} ok[] = {
	    {"0", 0},
	    {"1500", 1500},
	    {"1K", 1024},
	    {"2k", 2048},
	    {"3M", 3LL << 20},
	    {"4g", 4LL << 30},
	    {"1T", 1LL << 40},
	    {"1024T", 1LL << 50},
	    {"\"8M\"", 8LL << 20},
	};
	static const char *const bad[] = {
	    "1KB",
	    "K",
	    "1.5M",
	    "1 K",
	    "M1",
	    "1P",
	    "",
	};
	struct config cfg;
	char text[128];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text),
		    "[http]\nmax_file_size = %s\n"
		    "rate_limit = %s\n",
		    ok[i].text, ok[i].text);
		expect_ok(text, &cfg);
		ck_assert_msg(
		    cfg.max_file_size == ok[i].want, "%s", ok[i].text);
		ck_assert_msg(cfg.rate_limit == ok[i].want, "%s", ok[i].text);
		config_free(&cfg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(
		    text, sizeof(text), "[http]\nrate_limit = %s\n", bad[i]);
		expect_error_prefix(text, 2, "http.rate_limit: \"", bad[i]);
	}
	expect_error("[http]\nrate_limit = 99999999999T\n", 2,
	    "http.rate_limit: 99999999999T is out of range "
	    "(allowed 0..1024T)");
	expect_error("[http]\nrate_limit = -1K\n", 2,
	    "http.rate_limit: -1K is out of range (allowed 0..1024T)");

	/* Sizes are shown with the largest suffix that is exact. */
	expect_ok("[http]\nmax_file_size = 5120K\nrate_limit = 1025\n", &cfg);
	assert_format(&cfg, "http", "max_file_size", "5M");
	assert_format(&cfg, "http", "rate_limit", "1025");
	config_free(&cfg);
}
END_TEST

START_TEST(test_quotes_and_strings)
{
	struct config cfg;

	expect_ok(
	    "[http]\nuser_agent = \"  padded agent  \"\n"
	    "proxy = \"\"\nretries = \"5\"\n[workers]\nmodel = \"event\"\n",
	    &cfg);
	ck_assert_str_eq(cfg.user_agent, "  padded agent  ");
	ck_assert_str_eq(cfg.proxy, "");
	ck_assert_int_eq(cfg.retries, 5);
	ck_assert_int_eq(cfg.model, engine_model_find("event"));
	config_free(&cfg);

	/* Only one pair is removed; inner quotes stay. */
	expect_ok("[http]\nuser_agent = \"\"x\"\"\n", &cfg);
	ck_assert_str_eq(cfg.user_agent, "\"x\"");
	config_free(&cfg);

	/* Unquoted values are trimmed. */
	expect_ok("[http]\nuser_agent =    spaced    \n", &cfg);
	ck_assert_str_eq(cfg.user_agent, "spaced");
	config_free(&cfg);

	/* Empty only where empty means "off". */
	expect_ok(
	    "[daemon]\nmetrics_listen =\n[http]\nproxy =\nca_file =\n", &cfg);
	config_free(&cfg);
	expect_error(
	    "[daemon]\nspool_dir =\n", 2, "daemon.spool_dir must not be empty");
	expect_error(
	    "[http]\nuser_agent =\n", 2, "http.user_agent must not be empty");

	expect_ok("[daemon]\nmetrics_listen = [::1]:9100\n", &cfg);
	ck_assert_str_eq(cfg.metrics_listen, "[::1]:9100");
	config_free(&cfg);
}
END_TEST

START_TEST(test_relative_paths)
{
	expect_error("[daemon]\nspool_dir = run/spool\n", 2,
	    "daemon.spool_dir: \"run/spool\" is not an absolute path");
	expect_error("[daemon]\n\ndownload_dir = ./run/downloads\n", 3,
	    "daemon.download_dir: \"./run/downloads\" is not an absolute path");
	expect_error("[daemon]\nsocket = fetchd.sock\n", 2,
	    "daemon.socket: \"fetchd.sock\" is not an absolute path");
}
END_TEST

/* The hooks: an absolute program, an http(s) URL never echoed. */
START_TEST(test_hooks)
{
	struct config cfg;

	expect_error("[daemon]\non_job_done = bin/hook\n", 2,
	    "daemon.on_job_done: \"bin/hook\" is not an absolute path");
	expect_error("[daemon]\non_job_done_url = ftp://u:pw@h/x\n", 2,
	    "daemon.on_job_done_url: not an http:// or https:// URL "
	    "(without blanks or control bytes)");
	expect_error("[daemon]\non_job_done_url = http:///path\n", 2,
	    "daemon.on_job_done_url: not an http:// or https:// URL "
	    "(without blanks or control bytes)");
	expect_error("[daemon]\non_job_done_url = \"http://h/a b\"\n", 2,
	    "daemon.on_job_done_url: not an http:// or https:// URL "
	    "(without blanks or control bytes)");
	expect_error("[daemon]\non_job_done_timeout = 0\n", 2,
	    "daemon.on_job_done_timeout: 0 is out of range (allowed 1..86400)");
	expect_error("[daemon]\non_job_done_max = 1001\n", 2,
	    "daemon.on_job_done_max: 1001 is out of range (allowed 1..1000)");
	expect_error("[daemon]\non_job_done_retries = 101\n", 2,
	    "daemon.on_job_done_retries: 101 is out of range (allowed 0..100)");
	expect_ok("[daemon]\non_job_done = /bin/true\n"
	    "on_job_done_url = HTTPS://[::1]:8443/hook\n", &cfg);
	ck_assert_str_eq(cfg.on_job_done_url, "HTTPS://[::1]:8443/hook");
	config_free(&cfg);
	/* live: a reload takes them, storing is enough */
	ck_assert_int_eq(find_opt("daemon", "on_job_done")->when, CONF_LIVE);
	ck_assert_int_eq(find_opt("daemon", "on_job_done_url")->apply,
	    CONF_APPLY_NONE);
	ck_assert_int_eq(find_opt("daemon", "on_job_done_max")->when,
	    CONF_LIVE);
}
END_TEST

/* The segmented downloads' options: defaults, bounds, sizes; live. */
START_TEST(test_segments)
{
	struct config cfg;

	expect_ok("", &cfg);
	ck_assert_int_eq(cfg.segments, 1);
	ck_assert(cfg.segment_min_size == 20LL * 1024 * 1024);
	config_free(&cfg);
	expect_ok("[http]\nsegments = 16\nsegment_min_size = 1\n", &cfg);
	ck_assert_int_eq(cfg.segments, 16);
	ck_assert(cfg.segment_min_size == 1);
	config_free(&cfg);
	expect_ok("[http]\nsegment_min_size = 4M\n", &cfg);
	ck_assert(cfg.segment_min_size == 4LL * 1024 * 1024);
	config_free(&cfg);
	expect_error("[http]\nsegments = 0\n", 2,
	    "http.segments: 0 is out of range (allowed 1..16)");
	expect_error("[http]\n\nsegments = 17\n", 3,
	    "http.segments: 17 is out of range (allowed 1..16)");
	expect_error_prefix("[http]\nsegment_min_size = 0\n", 2,
	    "http.segment_min_size: 0 is out of range", "min 0");
	ck_assert_int_eq(find_opt("http", "segments")->when, CONF_LIVE);
	ck_assert_int_eq(find_opt("http", "segment_min_size")->when,
	    CONF_LIVE);
}
END_TEST

START_TEST(test_retry_delays)
{
	struct config cfg;

	expect_error("[http]\nretry_delay = 10\n# x\nretry_max_delay = 5\n", 4,
	    "http.retry_max_delay (5) is less than http.retry_delay (10)");
	expect_error("[http]\nretry_max_delay = 5\nretry_delay = 10\n", 3,
	    "http.retry_max_delay (5) is less than http.retry_delay (10)");
	/* Against the default of the other one. */
	expect_error("[http]\nretry_delay = 61\n", 2,
	    "http.retry_max_delay (60) is less than http.retry_delay (61)");
	expect_ok("[http]\nretry_delay = 7\nretry_max_delay = 7\n", &cfg);
	config_free(&cfg);
}
END_TEST

START_TEST(test_enums)
{
	static const char *const yes[] = {"yes", "true", "on", "1", "YES"};
	static const char *const no[] = {"no", "false", "off", "0", "Off"};
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	struct config cfg;
	char text[128];

	for (size_t i = 0; i < 5; i++) {
		snprintf(text, sizeof(text),
		    "[http]\nverify_tls = %s\n"
		    "[daemon]\nsync = %s\n",
		    yes[i], no[i]);
		expect_ok(text, &cfg);
		ck_assert_int_eq(cfg.verify_tls, 1);
		ck_assert_int_eq(cfg.sync, 0);
		assert_format(&cfg, "http", "verify_tls", "yes");
		assert_format(&cfg, "daemon", "sync", "no");
		config_free(&cfg);
	}
	ck_assert_int_eq(engine_models(), 3);
	for (int m = 0; m < engine_models(); m++) {
		ck_assert_int_eq(engine_model_find(engine_model_name(m)), m);
		snprintf(text, sizeof(text), "[workers]\nmodel = %s\n",
		    engine_model_name(m));
		expect_ok(text, &cfg);
		ck_assert_int_eq(cfg.model, m);
		assert_format(&cfg, "workers", "model", engine_model_name(m));
		config_free(&cfg);
	}
	ck_assert_str_eq(engine_model_name(0), "threads");
	ck_assert_str_eq(engine_model_name(1), "event");
	ck_assert_str_eq(engine_model_name(2), "process");
	ck_assert_str_eq(engine_model_name(3), "?");
	ck_assert_int_eq(engine_model_find("Event"), 1);
	ck_assert_int_eq(engine_model_find("fork"), -1);
	ck_assert_int_eq(engine_model_find(""), -1);
	for (int l = 0; l < 4; l++) {
		snprintf(text, sizeof(text), "[daemon]\nlog_level = %s\n",
		    levels[l]);
		expect_ok(text, &cfg);
		ck_assert_int_eq(cfg.log_level, l);
		assert_format(&cfg, "daemon", "log_level", levels[l]);
		config_free(&cfg);
	}
	expect_ok("[daemon]\nsocket_mode = 600\n", &cfg);
	ck_assert_uint_eq(cfg.socket_mode, 0600);
	assert_format(&cfg, "daemon", "socket_mode", "0600");
	config_free(&cfg);
	expect_ok("[daemon]\nsocket_mode = 07777\n", &cfg);
	assert_format(&cfg, "daemon", "socket_mode", "7777");
	config_free(&cfg);
}
END_TEST

/* cluster.role: one of three words, in any case; rendered in lower case. */
START_TEST(test_cluster_roles)
{
	static const struct {
		const char *text;
		int role;
		const char *name;
	} ok[] = {
	    {"coordinate", CONF_ROLE_COORDINATE, "coordinate"},
	    {"fetch", CONF_ROLE_FETCH, "fetch"},
	    {"both", CONF_ROLE_BOTH, "both"},
	    {"Coordinate", CONF_ROLE_COORDINATE, "coordinate"},
	    {"FETCH", CONF_ROLE_FETCH, "fetch"},
	    {"bOtH", CONF_ROLE_BOTH, "both"},
	    {"\"fetch\"", CONF_ROLE_FETCH, "fetch"},
	};
	struct config cfg;
	char text[128];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "[cluster]\nrole = %s\n",
		    ok[i].text);
		expect_ok(text, &cfg);
		ck_assert_msg(cfg.cluster_role == ok[i].role, "%s",
		    ok[i].text);
		assert_format(&cfg, "cluster", "role", ok[i].name);
		config_free(&cfg);
	}
	ck_assert_int_eq(CONF_ROLE_COUNT, 3);
	ck_assert_str_eq(config_role_name(CONF_ROLE_BOTH), "both");
	ck_assert_str_eq(config_role_name(CONF_ROLE_COORDINATE), "coordinate");
	ck_assert_str_eq(config_role_name(CONF_ROLE_FETCH), "fetch");
	ck_assert_str_eq(config_role_name(CONF_ROLE_COUNT), "?");
	ck_assert_str_eq(config_role_name(-1), "?");

	expect_error("[cluster]\n# role\nrole = fetcher\n", 3,
	    "cluster.role: \"fetcher\" is not a role "
	    "(allowed both, coordinate, fetch)");
	expect_error("[cluster]\nrole =\n", 2,
	    "cluster.role: \"\" is not a role "
	    "(allowed both, coordinate, fetch)");
	expect_error("[cluster]\nrole = coordinate fetch\n", 2,
	    "cluster.role: \"coordinate fetch\" is not a role "
	    "(allowed both, coordinate, fetch)");
	expect_error("[daemon]\nrole = fetch\n", 2,
	    "unknown key daemon.role");
}
END_TEST

/* lease_renew < claim_idle, reported at the later of the two lines. */
START_TEST(test_cluster_leases)
{
	struct config cfg;

	expect_error("[cluster]\nclaim_idle = 30\n# x\nlease_renew = 30\n", 4,
	    "cluster.lease_renew (30) is not less than "
	    "cluster.claim_idle (30)");
	expect_error("[cluster]\nlease_renew = 40\nclaim_idle = 30\n", 3,
	    "cluster.lease_renew (40) is not less than "
	    "cluster.claim_idle (30)");
	/* Against the default of the other one. */
	expect_error("[cluster]\nlease_renew = 60\n", 2,
	    "cluster.lease_renew (60) is not less than "
	    "cluster.claim_idle (60)");
	expect_error("[cluster]\n\nclaim_idle = 15\n", 3,
	    "cluster.lease_renew (15) is not less than "
	    "cluster.claim_idle (15)");
	/* Two cross checks failing: the earlier line wins. */
	expect_error("[cluster]\nlease_renew = 70\n[http]\nretry_delay = 61\n",
	    2, "cluster.lease_renew (70) is not less than "
	    "cluster.claim_idle (60)");
	expect_error("[http]\nretry_delay = 61\n[cluster]\nlease_renew = 70\n",
	    2, "http.retry_max_delay (60) is less than http.retry_delay (61)");

	/* The bounds; claim_idle = 1 could never be above lease_renew. */
	expect_error("[cluster]\nclaim_idle = 1\n", 2,
	    "cluster.claim_idle: 1 is out of range (allowed 2..86400)");
	expect_error("[cluster]\nlease_renew = 0\n", 2,
	    "cluster.lease_renew: 0 is out of range (allowed 1..43200)");
	expect_error("[cluster]\nmax_deliveries = 0\n", 2,
	    "cluster.max_deliveries: 0 is out of range (allowed 1..1000)");
	expect_error("[cluster]\nwindow = 100001\n", 2,
	    "cluster.window: 100001 is out of range (allowed 1..100000)");
	expect_error("[cluster]\ntimeout = 0\n", 2,
	    "cluster.timeout: 0 is out of range (allowed 1..3600)");
	expect_error("[cluster]\nstream =\n", 2,
	    "cluster.stream must not be empty");
	expect_error("[cluster]\ngroup = \"\"\n", 2,
	    "cluster.group must not be empty");

	expect_ok("[cluster]\nclaim_idle = 2\nlease_renew = 1\n", &cfg);
	ck_assert_int_eq(cfg.cluster_claim_idle, 2);
	ck_assert_int_eq(cfg.cluster_lease_renew, 1);
	config_free(&cfg);
	expect_ok("[cluster]\nlease_renew = 59\n", &cfg);
	ck_assert_int_eq(cfg.cluster_claim_idle, 60);
	ck_assert_int_eq(cfg.cluster_lease_renew, 59);
	config_free(&cfg);
	expect_ok("[cluster]\nclaim_idle = 86400\nlease_renew = 43200\n", &cfg);
	config_free(&cfg);
}
END_TEST

/* cluster.consumer: empty, or a name fit for Redis keys and file names. */
START_TEST(test_cluster_consumer)
{
	static const char *const bad[] = {
	    "a b", "../x", ".x", "x/y", "node:1", "n\303\266de", "a*",
	};
	static const char *const good[] = {
	    "node-1", "Fetch_02.dc1", "x", "0", "x.", "-x",
	};
	struct config cfg;
	char text[256], msg[256], name[80];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[cluster]\n# c\nconsumer = %s\n",
		    bad[i]);
		snprintf(msg, sizeof(msg),
		    "cluster.consumer: \"%s\" is not a node name "
		    "(letters, digits, '.', '_', '-')", bad[i]);
		expect_error(text, 3, msg);
		ck_assert_msg(!config_node_name_valid(bad[i], 0), "%s", bad[i]);
		ck_assert_msg(!config_node_name_valid(bad[i], 1), "%s", bad[i]);
	}
	/* Quotes keep blanks, which a name cannot have. */
	expect_error("[cluster]\nconsumer = \" node\"\n", 2,
	    "cluster.consumer: \" node\" is not a node name "
	    "(letters, digits, '.', '_', '-')");
	/* Reported at its own line, whatever follows. */
	expect_error("[cluster]\nconsumer = a b\nwindow = 10\n", 2,
	    "cluster.consumer: \"a b\" is not a node name "
	    "(letters, digits, '.', '_', '-')");

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "[cluster]\nconsumer = %s\n",
		    good[i]);
		expect_ok(text, &cfg);
		ck_assert_str_eq(cfg.cluster_consumer, good[i]);
		assert_format(&cfg, "cluster", "consumer", good[i]);
		config_free(&cfg);
		ck_assert_msg(config_node_name_valid(good[i], 0), "%s", good[i]);
	}

	/* 64 bytes at most. */
	memset(name, 'n', 64);
	name[64] = '\0';
	snprintf(text, sizeof(text), "[cluster]\nconsumer = %s\n", name);
	expect_ok(text, &cfg);
	ck_assert_str_eq(cfg.cluster_consumer, name);
	config_free(&cfg);
	ck_assert(config_node_name_valid(name, 0));
	name[64] = 'n';
	name[65] = '\0';
	snprintf(text, sizeof(text), "[cluster]\nconsumer = %s\n", name);
	expect_error(text, 2,
	    "cluster.consumer is too long (65 bytes, at most 64)");
	ck_assert(!config_node_name_valid(name, 0));

	/* Empty: the host name, chosen at start. */
	expect_ok("[cluster]\nconsumer =\n", &cfg);
	ck_assert_str_eq(cfg.cluster_consumer, "");
	config_free(&cfg);
	ck_assert(config_node_name_valid("", 1));
	ck_assert(!config_node_name_valid("", 0));
	ck_assert(config_node_name_valid(NULL, 1));
	ck_assert(!config_node_name_valid(NULL, 0));
}
END_TEST

struct diff_rec {
	int n;
	const char *keys[8];
};

static void
record_cb(const struct config_option *opt, void *arg)
{
	struct diff_rec *r = arg;

	if (r->n < 8)
		r->keys[r->n] = opt->key;
	r->n++;
}

START_TEST(test_diff)
{
	struct config a, b;
	struct diff_rec rec = {0};

	ck_assert_int_eq(config_defaults(&a), 0);
	expect_ok("[daemon]\nlog_level = debug\n[workers]\ncount = 16\n"
		  "per_host = 2\n[http]\nproxy = http://127.0.0.1:1\n"
		  "retries = 3\n",
	    &b);
	ck_assert_int_eq(config_diff(&a, &b, record_cb, &rec), 3);
	ck_assert_int_eq(rec.n, 3);
	ck_assert_str_eq(rec.keys[0], "log_level");
	ck_assert_str_eq(rec.keys[1], "per_host");
	ck_assert_str_eq(rec.keys[2], "proxy");
	ck_assert_int_eq(config_diff(&b, &a, NULL, NULL), 3);
	ck_assert_int_eq(config_diff(&a, &a, record_cb, &rec), 0);
	ck_assert_int_eq(rec.n, 3);
	config_free(&a);
	config_free(&b);
}
END_TEST

START_TEST(test_copy)
{
	struct config a, b;

	expect_ok(all_keys, &a);
	ck_assert_int_eq(config_copy(&b, &a), 0);
	ck_assert_int_eq(config_diff(&a, &b, NULL, NULL), 0);
	ck_assert_ptr_ne(a.spool_dir, b.spool_dir);
	ck_assert_ptr_ne(a.user_agent, b.user_agent);
	ck_assert_ptr_ne(a.proxy, b.proxy);
	ck_assert_ptr_ne(a.cluster_consumer, b.cluster_consumer);
	ck_assert_str_eq(b.cluster_stream, "{crawl}:urls");

	/* Changing or freeing the original leaves the copy alone. */
	a.user_agent[0] = 'X';
	a.count = 99;
	ck_assert_int_eq(config_diff(&a, &b, NULL, NULL), 2);
	config_free(&a);
	ck_assert_str_eq(b.user_agent, "test-agent/1 (x)");
	ck_assert_str_eq(b.spool_dir, "/srv/fetchd/spool");
	ck_assert_int_eq(b.count, 4);
	config_free(&b);
	assert_zeroed(&b);

	/* Free is NULL-safe and may be repeated. */
	config_free(NULL);
	config_free(&b);
}
END_TEST

/*
 * A reload: the running config has every key set (all_keys); the new file
 * changes five restart-only options (cluster.role among them) and live ones
 * of four groups.
 */
static const char reload_keys[] = "[daemon]\n"
				  "spool_dir = /srv/other/spool\n"
				  "socket_mode = 0666\n"
				  "log_level = warn\n"
				  "metrics_listen = 127.0.0.1:9100\n"
				  "[workers]\n"
				  "model = process\n"
				  "count = 4\n"
				  "per_host = 6\n"
				  "[http]\n"
				  "proxy = http://127.0.0.1:3129\n"
				  "[cluster]\n"
				  "redis = 10.0.0.5:6379\n"
				  "password_file = /etc/fetchd/redis.pass\n"
				  "stream = {crawl}:urls\n"
				  "group = crawlers\n"
				  "consumer = node-7\n"
				  "role = coordinate\n"
				  "claim_idle = 120\n"
				  "lease_renew = 30\n"
				  "max_deliveries = 3\n"
				  "window = 500\n"
				  "timeout = 10\n";

START_TEST(test_keep_restart)
{
	struct config running, next;
	struct diff_rec rec = {0};

	expect_ok(all_keys, &running);
	expect_ok(reload_keys, &next);
	ck_assert_int_eq(config_keep_restart(&next, &running, record_cb, &rec),
	    5);
	ck_assert_int_eq(rec.n, 5);
	ck_assert_str_eq(rec.keys[0], "spool_dir");
	ck_assert_str_eq(rec.keys[1], "download_dir");
	ck_assert_str_eq(rec.keys[2], "socket");
	ck_assert_str_eq(rec.keys[3], "socket_mode");
	ck_assert_str_eq(rec.keys[4], "role");
	/* Restart-only: the running values, in strings of next's own. */
	ck_assert_str_eq(next.spool_dir, "/srv/fetchd/spool");
	ck_assert_ptr_ne(next.spool_dir, running.spool_dir);
	ck_assert_str_eq(next.download_dir, "/srv/fetchd/out");
	ck_assert_str_eq(next.socket_path, "/srv/fetchd/ctl.sock");
	ck_assert_uint_eq(next.socket_mode, 0600);
	ck_assert_str_eq(next.metrics_listen, "127.0.0.1:9100");
	ck_assert_int_eq(next.cluster_role, CONF_ROLE_FETCH);
	ck_assert_str_eq(next.cluster_consumer, "node-7");
	ck_assert_ptr_ne(next.cluster_consumer, running.cluster_consumer);
	/* Live: the new values. */
	ck_assert_int_eq(next.log_level, LOG_LVL_WARN);
	ck_assert_int_eq(next.per_host, 6);
	ck_assert_str_eq(next.proxy, "http://127.0.0.1:3129");
	ck_assert_int_eq(next.retries, 3);
	/* Nothing restart-only is left to tell apart. */
	ck_assert_int_eq(config_keep_restart(&next, &running, NULL, NULL), 0);
	config_free(&running);
	ck_assert_str_eq(next.spool_dir, "/srv/fetchd/spool");
	config_free(&next);
}
END_TEST

struct apply_rec {
	int calls[CONF_APPLY_COUNT];
	int order[CONF_APPLY_COUNT], n;
	int fail;       /* the group whose hook fails, 0 = none */
};

static int
apply_rec(int g, void *arg, char *err, size_t errlen)
{
	struct apply_rec *r = arg;

	r->calls[g]++;
	r->order[r->n++] = g;
	if (r->fail == g) {
		snprintf(err, errlen, "group %d refused", g);
		return -1;
	}
	return 0;
}

#define APPLY_HOOK(name, group)                                               \
	static int name(const struct config *old, const struct config *cur,  \
	    void *arg, char *err, size_t errlen)                              \
	{                                                                     \
		ck_assert_ptr_ne(old, cur);                                   \
		return apply_rec(group, arg, err, errlen);                    \
	}
APPLY_HOOK(hook_engine, CONF_APPLY_ENGINE)
APPLY_HOOK(hook_log, CONF_APPLY_LOG)
APPLY_HOOK(hook_sched, CONF_APPLY_SCHED)
APPLY_HOOK(hook_rescan, CONF_APPLY_RESCAN)
APPLY_HOOK(hook_jobs, CONF_APPLY_JOBS)

static const struct config_hooks rec_hooks = {
	.apply = {
		[CONF_APPLY_ENGINE] = hook_engine,
		[CONF_APPLY_LOG] = hook_log,
		[CONF_APPLY_SCHED] = hook_sched,
		[CONF_APPLY_RESCAN] = hook_rescan,
		[CONF_APPLY_JOBS] = hook_jobs,
	},
};

START_TEST(test_apply)
{
	struct config old, cur;
	struct apply_rec rec;
	char err[128] = "";

	expect_ok(all_keys, &old);
	expect_ok(reload_keys, &cur);
	ck_assert_int_ge(config_keep_restart(&cur, &old, NULL, NULL), 0);

	/* Each changed group once, in enum order; unchanged ones not. */
	memset(&rec, 0, sizeof(rec));
	ck_assert_int_eq(
	    config_apply(&old, &cur, &rec_hooks, &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.n, 4);
	ck_assert_int_eq(rec.order[0], CONF_APPLY_LOG);
	ck_assert_int_eq(rec.order[1], CONF_APPLY_SCHED);
	ck_assert_int_eq(rec.order[2], CONF_APPLY_RESCAN);
	ck_assert_int_eq(rec.order[3], CONF_APPLY_JOBS);
	ck_assert_int_eq(rec.calls[CONF_APPLY_ENGINE], 0);

	/* A changed count: the engine hook first; when it fails, no other
	 * hook runs. */
	cur.count = 5;
	memset(&rec, 0, sizeof(rec));
	rec.fail = CONF_APPLY_ENGINE;
	ck_assert_int_eq(
	    config_apply(&old, &cur, &rec_hooks, &rec, err, sizeof(err)), -1);
	ck_assert_int_eq(rec.n, 1);
	ck_assert_int_eq(rec.order[0], CONF_APPLY_ENGINE);
	ck_assert_str_eq(err, "group 1 refused");

	/* Nothing changed: no hook; a NULL hook is skipped. */
	memset(&rec, 0, sizeof(rec));
	ck_assert_int_eq(
	    config_apply(&old, &old, &rec_hooks, &rec, err, sizeof(err)), 0);
	ck_assert_int_eq(rec.n, 0);
	{
		struct config_hooks none;

		memset(&none, 0, sizeof(none));
		ck_assert_int_eq(config_apply(&old, &cur, &none, &rec, err,
				     sizeof(err)),
		    0);
	}
	config_free(&old);
	config_free(&cur);
}
END_TEST

static char *
read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long len;

	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	ck_assert_int_ge(len, 0);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	return buf;
}

START_TEST(test_sample_parses_to_defaults)
{
	struct config cfg, def;
	char err[1024];

	ck_assert_msg(
	    config_load(SRCDIR "/etc/fetchd.conf", &cfg, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_eq(config_defaults(&def), 0);
	ck_assert_int_eq(config_diff(&cfg, &def, NULL, NULL), 0);
	config_free(&cfg);
	config_free(&def);
}
END_TEST

/*
 * etc/fetchd.conf documents each option as "# <help>" followed by
 * "#key = <default>" inside its own section, and nothing else that looks
 * like an option. A restart-only option has RESTART_NOTE between the two,
 * and no other option has it.
 */
#define RESTART_NOTE "# Needs a restart: a reload keeps the running value."

START_TEST(test_sample_documents_every_option)
{
	const struct config_option *opt;
	const char *prev = "", *prev2 = "", *help;
	char *text, *line, *next, section[64] = "";
	int found[64] = {0};
	int lineno = 0;
	size_t n;

	opt = config_options(&n);
	ck_assert_uint_le(n, 64);
	text = read_file(SRCDIR "/etc/fetchd.conf");
	ck_assert_msg(strstr(text, "fetchd -t") != NULL,
	    "the header should say that fetchd -t checks the file");
	for (line = text; *line != '\0'; line = next) {
		size_t klen, i;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		else
			next = line + strlen(line);
		lineno++;
		if (lineno <= 3)
			ck_assert_msg(strncmp(line, "# ", 2) == 0,
			    "line %d: header comment expected", lineno);
		if (line[0] == '[') {
			ck_assert_uint_lt(strlen(line), sizeof(section));
			snprintf(section, sizeof(section), "%.*s",
			    (int)strlen(line) - 2, line + 1);
		}
		if (line[0] != '#' || line[1] == ' ' || line[1] == '\0') {
			if (line[0] != '\0') {
				prev2 = prev;
				prev = line;
			}
			continue;
		}
		klen = strcspn(line + 1, " =");
		ck_assert_msg(strncmp(line + 1 + klen, " =", 2) == 0,
		    "line %d: expected \"#key = value\": %s", lineno, line);
		for (i = 0; i < n; i++)
			if (strcmp(opt[i].section, section) == 0 &&
			    strlen(opt[i].key) == klen &&
			    strncmp(opt[i].key, line + 1, klen) == 0)
				break;
		ck_assert_msg(i < n, "line %d: no option %s.%.*s", lineno,
		    section, (int)klen, line + 1);
		found[i]++;
		help = prev;
		if (opt[i].when == CONF_RESTART) {
			ck_assert_msg(strcmp(prev, RESTART_NOTE) == 0,
			    "line %d: %s.%s should follow \"%s\"", lineno,
			    section, opt[i].key, RESTART_NOTE);
			help = prev2;
		}
		ck_assert_msg(strncmp(help, "# ", 2) == 0 &&
			strcmp(help + 2, opt[i].help) == 0,
		    "line %d: %s.%s should follow \"# %s\"", lineno, section,
		    opt[i].key, opt[i].help);
		prev2 = prev = line;
	}
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(found[i] == 1,
		    "%s.%s documented %d times in etc/fetchd.conf",
		    opt[i].section, opt[i].key, found[i]);
	free(text);
}
END_TEST

/* The commented-out values, uncommented, are the defaults. */
struct sample_diff {
	const char *user_agent;
	const struct config_option *bad;
};

static void
sample_diff_cb(const struct config_option *opt, void *arg)
{
	struct sample_diff *sd = arg;

	/* The sample cannot follow the package version on its own. */
	if (strcmp(opt->key, "user_agent") == 0 &&
	    strncmp(sd->user_agent, "fetchd/", 7) == 0)
		return;
	if (sd->bad == NULL)
		sd->bad = opt;
}

START_TEST(test_sample_values_are_defaults)
{
	struct config cfg, def;
	struct sample_diff sd;
	char *text;

	text = read_file(SRCDIR "/etc/fetchd.conf");
	for (char *p = text; *p != '\0'; p++) {
		/* "#key" at the start of a line becomes " key" */
		if (p[0] == '#' && (p == text || p[-1] == '\n') &&
		    p[1] >= 'a' && p[1] <= 'z')
			p[0] = ' ';
	}
	expect_ok(text, &cfg);
	ck_assert_int_eq(config_defaults(&def), 0);
	sd.user_agent = cfg.user_agent;
	sd.bad = NULL;
	config_diff(&cfg, &def, sample_diff_cb, &sd);
	ck_assert_msg(sd.bad == NULL,
	    "etc/fetchd.conf shows a value for "
	    "%s.%s that is not its default",
	    sd.bad ? sd.bad->section : "", sd.bad ? sd.bad->key : "");
	config_free(&cfg);
	config_free(&def);
	free(text);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_all_keys);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_bound_messages);
	tcase_add_test(tc, test_net_options);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_first_error_wins);
	tcase_add_test(tc, test_line_numbers);
	tcase_add_test(tc, test_file_errors);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_quotes_and_strings);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_hooks);
	tcase_add_test(tc, test_segments);
	tcase_add_test(tc, test_retry_delays);
	tcase_add_test(tc, test_enums);
	tcase_add_test(tc, test_cluster_roles);
	tcase_add_test(tc, test_cluster_leases);
	tcase_add_test(tc, test_cluster_consumer);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_copy);
	tcase_add_test(tc, test_keep_restart);
	tcase_add_test(tc, test_apply);
	tcase_add_test(tc, test_sample_parses_to_defaults);
	tcase_add_test(tc, test_sample_documents_every_option);
	tcase_add_test(tc, test_sample_values_are_defaults);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(config_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
