/*
 * config.h: the daemon's configuration, read from one INI file.
 *
 * Every option is one row of the table in config.c (section, key, type,
 * bounds, default, when a new value takes effect, one-line help). Parsing,
 * validation, the defaults, `fetchd -t`, reloads and the test that keeps
 * fetchd.conf(5) complete all read that table; nothing else knows option
 * names.
 */
#ifndef FETCHD_CONFIG_H
#define FETCHD_CONFIG_H

#include <stddef.h>

/* Longest values of the string options a transfer copies (bytes with the
 * NUL): the table's bounds, and the size of struct fetch_params' arrays. */
#define CONFIG_UA_MAX 256       /* http.user_agent */
#define CONFIG_PROXY_MAX 1024   /* http.proxy, http.ca_file, no_proxy,
                                   proxy_ca_file, netrc_file, deny */

/* Plain values only, so that a struct config can be copied field by field
 * and struct fetch_params (fetch.h) can be cut from it. Strings are owned by
 * the struct and released by config_free(). */
struct config {
	/* [daemon] */
	char *spool_dir;
	char *download_dir;
	char *socket_path;
	unsigned socket_mode;
	int log_level;          /* enum log_level */
	long shutdown_grace;    /* s: in-flight transfers may finish this long */
	long rescan_interval;   /* s: safety-net rescan of spool/new */
	int sync;               /* 1: fsync files and results before done/ */
	long max_job_urls;      /* URLs in one job, more fails the job */
	char *metrics_listen;   /* "" = off; host:port for Prometheus text */
	char *on_job_done;      /* "" = none; program run when a job ends */
	char *on_job_done_url;  /* "" = none; http(s) URL POSTed to */
	long on_job_done_timeout;       /* s one run of a hook may take */
	long on_job_done_max;           /* hooks running at once */
	long on_job_done_retries;       /* further POSTs after a failed one */

	/* [workers] */
	int model;              /* index into engine.h's list of engines */
	long count;
	long per_host;          /* 0 = no cap */

	/* [http] */
	long connect_timeout;
	long timeout;           /* 0 = none */
	long low_speed_limit;
	long low_speed_time;
	long retries;
	long retry_delay;
	long retry_max_delay;
	long max_redirects;
	char *user_agent;
	long long max_file_size; /* 0 = no limit */
	long long rate_limit;    /* bytes/s per transfer, 0 = none */
	char *proxy;             /* "" = none */
	int verify_tls;          /* 1: verify peer and host (default) */
	char *ca_file;           /* "" = libcurl's default bundle */
	/* Where transfers may go and how they get there. */
	char *no_proxy;          /* "" = every host through the proxy */
	char *proxy_ca_file;     /* "" = libcurl's default bundle */
	char *netrc_file;        /* "" = no credentials from a netrc */
	char *deny;              /* CIDR ranges never connected to (cidr.h) */
	long segments;           /* ranges of one file at once, 1..16 */
	long long segment_min_size; /* bytes per range at least */

	/* [cluster]: on when redis is set (cluster.h) */
	char *cluster_redis;    /* "" = off; host:port or /path/to/socket */
	char *cluster_password_file; /* "" = no AUTH */
	char *cluster_stream;   /* the URL stream's key; others derive from it */
	char *cluster_group;    /* consumer group of fetching nodes */
	char *cluster_consumer; /* this node's name; "" = the host name */
	int cluster_role;       /* enum config_role */
	long cluster_claim_idle;        /* s before another node takes over */
	long cluster_lease_renew;       /* s between lease renewals */
	long cluster_max_deliveries;    /* then the entry is dead-lettered */
	long cluster_window;            /* URLs this coordinator has out */
	long cluster_timeout;           /* s a Redis command may take */
};

/* What a node does in cluster mode: coordinate the jobs of its spool, fetch
 * other nodes' URLs, or both. */
enum config_role {
	CONF_ROLE_BOTH = 0,
	CONF_ROLE_COORDINATE,
	CONF_ROLE_FETCH,
	CONF_ROLE_COUNT
};
const char *config_role_name(int role);

/* 1 when s is a node name: 1 to 64 letters, digits, '.', '_' or '-', not
 * starting with '.' (it becomes part of Redis keys and of file names);
 * empty_ok: "" passes too. */
int config_node_name_valid(const char *s, int empty_ok);

enum config_type {
	CONF_STR = 0,
	CONF_INT,       /* long, decimal */
	CONF_SIZE,      /* long long, decimal with optional K/M/G/T suffix (1024) */
	CONF_BOOL,      /* yes/no, true/false, on/off, 1/0 */
	CONF_MODE,      /* octal permission bits, 0..07777 */
	CONF_LEVEL,     /* error|warn|info|debug */
	CONF_MODEL,     /* an engine's name (engine_model_find) */
	CONF_ROLE,      /* coordinate|fetch|both (enum config_role) */
};

/* When a new value takes effect. Zero is neither, so a row that does not
 * say is caught by the table's unit test. */
enum config_when {
	CONF_RESTART = 1,       /* read at start; a reload keeps the running
	                           value and says so */
	CONF_LIVE,              /* a reload takes the new value */
};

/*
 * What taking a live option's new value sets in motion besides storing
 * it, by group. The daemon supplies one hook per group (struct
 * config_hooks); the table knows only each option's group.
 */
enum config_apply {
	CONF_APPLY_NONE = 0,    /* read where it is used: storing is enough */
	CONF_APPLY_ENGINE,      /* model, count: another engine takes over */
	CONF_APPLY_LOG,         /* log_level */
	CONF_APPLY_SCHED,       /* per_host */
	CONF_APPLY_RESCAN,      /* rescan_interval: re-arm the timer */
	CONF_APPLY_JOBS,        /* what jobs read for the URLs they hand out */
	CONF_APPLY_COUNT
};

struct config_option {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;          /* into struct config */
	long long min, max;     /* numeric bounds, inclusive */
	const char *def;        /* default, as it would be written in the file */
	enum config_when when;  /* restart-only or live */
	enum config_apply apply; /* live: the hook that follows a change */
	const char *help;       /* one line, for etc/fetchd.conf and the man page */
};

/* The table, for `fetchd -t`, the documentation test and reloads. */
const struct config_option *config_options(size_t *n);

/* Fill *cfg with every default. Returns 0, or -1 on allocation failure. */
int config_defaults(struct config *cfg) __attribute__((warn_unused_result));

/*
 * Read PATH into *cfg (defaults first, then the file). On error returns -1
 * and writes "PATH:LINE: message" into err; *cfg is then freed and zeroed.
 */
int config_load(const char *path, struct config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void config_free(struct config *cfg);

/* Deep copy. Returns 0 or -1 (allocation). */
int config_copy(struct config *dst, const struct config *src)
    __attribute__((warn_unused_result));

/*
 * Compare two configs option by option. For each differing option call
 * cb(opt, arg). Returns the number of differing options.
 */
int config_diff(const struct config *a, const struct config *b,
    void (*cb)(const struct config_option *, void *), void *arg);

/*
 * A reload, step one: next (just loaded) is to replace running. Every
 * restart-only option of next gets its running value back; cb(opt, arg) is
 * called for each one whose value in the file differed (it needs a
 * restart). Returns how many differed, or -1 on allocation failure (next
 * is then still whole, to be freed by the caller).
 */
int config_keep_restart(struct config *next, const struct config *running,
    void (*cb)(const struct config_option *, void *), void *arg)
    __attribute__((warn_unused_result));

/*
 * What the daemon does when live options of a group changed. apply[g] is
 * called with the configuration before the reload and the one now in
 * force; 0, or -1 with a message in err. NULL: storing is enough.
 */
struct config_hooks {
	int (*apply[CONF_APPLY_COUNT])(const struct config *old,
	    const struct config *cur, void *arg, char *err, size_t errlen);
};

/*
 * A reload, step two, once cur is in force: call each group's hook once
 * when a live option of the group differs between old and cur, in the
 * order of enum config_apply. The first hook that fails stops the walk
 * and -1 is returned; a hook that can fail must therefore come before any
 * that acts (CONF_APPLY_ENGINE is first), so a failed reload has changed
 * nothing. 0 otherwise.
 */
int config_apply(const struct config *old, const struct config *cur,
    const struct config_hooks *hooks, void *arg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Render an option's current value in *cfg as text (for logs and -t). */
void config_format(const struct config *cfg, const struct config_option *opt,
    char *buf, size_t len);

#endif
