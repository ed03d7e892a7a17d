/*
 * cluster.c: cluster mode on Redis Streams (see cluster.h).
 *
 * Three connections to Redis, each its own hiredis context on the main
 * loop: "commands" (adds, results, leases, the heartbeat), "entries" (the
 * fetch side's blocking XREADGROUP) and "results" (the coordinator's
 * blocking read of its result stream). A blocking read occupies its
 * connection, hence three. hiredis 0.14 has no command timeouts: a
 * connection whose oldest unanswered command is older than cluster.timeout
 * (plus the block time of a blocking read) is dropped and made again.
 *
 * The guarantees rest on three Redis functions loaded at every connect
 * (FUNCTION LOAD REPLACE; they persist in the AOF), each atomic:
 *   fetchd_complete  the result of an entry goes to its coordinator's
 *                    result stream and the entry is acknowledged and
 *                    deleted, only while the entry is pending for the
 *                    sender: a node that lost its lease is refused (0).
 *   fetchd_renew     the sender's running entries get their idle time
 *                    reset, those no longer its own are returned.
 *   fetchd_claim     entries idle past claim_idle are taken over, or, when
 *                    delivered max_deliveries times, moved to the
 *                    dead-letter stream with a failed result for their
 *                    coordinator.
 *   fetchd_mine      after a restart, the sender's own pending entries
 *                    are taken again, a page at a time, each one more
 *                    delivery, and dead-lettered the same way: a URL that
 *                    kills its node is not fetched for ever by a node
 *                    restarted within claim_idle.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "cluster.h"
#include "job.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#define CL_BACKOFF_MIN 0.2      /* s: first reconnect delay */
#define CL_BACKOFF_MAX 10.0     /* s: longest */
#define CL_BLOCK_MS 2000        /* a blocking read waits this long */
#define CL_READ_MAX 256         /* entries asked for in one read */
#define CL_TICK_MS 500          /* heartbeat, timeouts, claims */
#define CL_ID_MAX 48            /* "ms-seq" stream ids */
#define CL_ARGS_MAX 32          /* arguments of one command we build */
#define CL_RESULTS_BATCH 32     /* results in a read worth reading on */
#define CL_RESULTS_WAIT_US 1000 /* else the next read waits this long */

static const char cluster_lua[] =
    "#!lua name=fetchd\n"
    "local function owned(s, g, c, id)\n"
    "  return #redis.call('XPENDING', s, g, id, id, 1, c) == 1\n"
    "end\n"
    "local function field(f, name)\n"
    "  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end\n"
    "  return ''\n"
    "end\n"
    /* KEYS stream, results; ARGV group, consumer, id, result fields */
    "local function complete(keys, args)\n"
    "  if not owned(keys[1], args[1], args[2], args[3]) then return 0 end\n"
    "  redis.call('XADD', keys[2], '*', unpack(args, 4))\n"
    "  redis.call('XACK', keys[1], args[1], args[3])\n"
    "  redis.call('XDEL', keys[1], args[3])\n"
    "  return 1\n"
    "end\n"
    /* KEYS stream; ARGV group, consumer, ids: returns the ids lost,
     * taken over or deleted (a cancelled job's) */
    "local function renew(keys, args)\n"
    "  local lost = {}\n"
    "  for i = 3, #args do\n"
    "    if owned(keys[1], args[1], args[2], args[i]) and"
    " #redis.call('XRANGE', keys[1], args[i], args[i]) == 1 then\n"
    "      redis.call('XCLAIM', keys[1], args[1], args[2], 0, args[i],"
    " 'JUSTID')\n"
    "    else lost[#lost + 1] = args[i] end\n"
    "  end\n"
    "  return lost\n"
    "end\n"
    /* An entry e of XPENDING delivered too often: to the dead letters,
     * with a failed result for its coordinator. */
    "local function bury(s, dead, g, prefix, e)\n"
    "  local id, n = e[1], e[4]\n"
    "  local r = redis.call('XRANGE', s, id, id)\n"
    "  if #r == 1 then\n"
    "    local f = r[1][2]\n"
    "    redis.call('XADD', dead, '*', 'entry', id, 'deliveries', n,"
    " 'consumer', e[2], unpack(f))\n"
    "    local c = field(f, 'c')\n"
    "    if c ~= '' then\n"
    "      redis.call('XADD', prefix .. c, '*', 'j', field(f, 'j'),"
    " 'i', field(f, 'i'), 'x', id, 'o', 'poison', 'node', e[2], 'e',"
    " 'dead-lettered: delivered ' .. n .. ' times without a result')\n"
    "    end\n"
    "  end\n"
    "  redis.call('XACK', s, g, id)\n"
    "  redis.call('XDEL', s, id)\n"
    "end\n"
    /* KEYS stream, dead; ARGV group, consumer, min idle ms, count, max
     * deliveries, result stream prefix: returns the entries taken over */
    "local function claim(keys, args)\n"
    "  local out = {}\n"
    "  local p = redis.call('XPENDING', keys[1], args[1], 'IDLE',"
    " tonumber(args[3]), '-', '+', tonumber(args[4]))\n"
    "  for _, e in ipairs(p) do\n"
    "    if e[4] >= tonumber(args[5]) then\n"
    "      bury(keys[1], keys[2], args[1], args[6], e)\n"
    "    else\n"
    "      for _, x in ipairs(redis.call('XCLAIM', keys[1], args[1],"
    " args[2], tonumber(args[3]), e[1])) do out[#out + 1] = x end\n"
    "    end\n"
    "  end\n"
    "  return out\n"
    "end\n"
    /* KEYS stream, dead; ARGV group, consumer, the last id looked at
     * ("0" at first), count, max deliveries, result stream prefix: the
     * sender's own pending entries after that id, each taken again (one
     * delivery more) or dead-lettered; returns {the last id looked at,
     * "" when none is left; the entries} */
    "local function mine(keys, args)\n"
    "  local out, last = {}, ''\n"
    "  local from = args[3] == '0' and '-' or '(' .. args[3]\n"
    "  local p = redis.call('XPENDING', keys[1], args[1], from, '+',"
    " tonumber(args[4]), args[2])\n"
    "  for _, e in ipairs(p) do\n"
    "    last = e[1]\n"
    "    if e[4] >= tonumber(args[5]) then\n"
    "      bury(keys[1], keys[2], args[1], args[6], e)\n"
    "    else\n"
    "      for _, x in ipairs(redis.call('XCLAIM', keys[1], args[1],"
    " args[2], 0, e[1])) do out[#out + 1] = x end\n"
    "    end\n"
    "  end\n"
    "  return {last, out}\n"
    "end\n"
    "redis.register_function('fetchd_complete', complete)\n"
    "redis.register_function('fetchd_renew', renew)\n"
    "redis.register_function('fetchd_claim', claim)\n"
    "redis.register_function('fetchd_mine', mine)\n";

enum { RC_CMD, RC_ENTRIES, RC_RESULTS, RC_COUNT };
static const char *const rc_names[RC_COUNT] = {
	"commands", "entries", "results"
};

struct rconn {
	struct cluster *c;
	int which;
	redisAsyncContext *ac;
	int connected;          /* the context is connected */
	int up;                 /* and set up: commands may go */
	int reading;            /* a blocking read is out */
	long outstanding;       /* commands sent, not answered */
	double last;            /* last answer, or the send that ended idle */
	double started;         /* when the connect began */
	long block_ms;          /* of the blocking read out, else 0 */
	double backoff;
	struct event *ev_retry;
};

/* Coordinator: a URL out in the stream, until its result arrives. */
struct out {
	struct out *hnext;      /* hash chain by (job, index) */
	TAILQ_ENTRY(out) entry;
	struct transfer *t;
	const char *job;        /* the last component of t->dir */
	uint64_t serial;
	char id[CL_ID_MAX];     /* "" until XADD answered */
	int cancelled;
};
TAILQ_HEAD(out_list, out);

/* What an answer to a command about an out must find still there. */
struct out_ref {
	struct cluster *c;
	char *job;
	size_t index;
	uint64_t serial;
};

/* Fetch side: an entry taken from the stream. */
enum fent_state { FE_NEW, FE_QUEUED, FE_RUNNING, FE_RESULT, FE_SENDING };

/* A job directory fetch-side transfers write into, opened once for all
 * of them (as jobs.c does for its own) and closed when none is left. */
struct jobdir {
	TAILQ_ENTRY(jobdir) entry;
	char *name;
	int fd;
	long refs;
};
TAILQ_HEAD(jobdir_list, jobdir);

struct fent {
	TAILQ_ENTRY(fent) entry;
	TAILQ_ENTRY(fent) qentry;       /* in queue while FE_QUEUED */
	enum fent_state state;
	struct transfer *t;     /* FE_QUEUED, FE_RUNNING */
	struct jobdir *dir;     /* t's directory while t lives */
	char id[CL_ID_MAX];
	char *coord, *job, *index;
	int lost;               /* a renewal found it taken over */
	/* The result, once back (FE_RESULT, FE_SENDING). */
	enum fetch_outcome outcome;
	enum fetch_errkind errkind;
	long status, retry_after;
	uint64_t size;
	double seconds;
	char error[FETCH_ERR_MAX];
};
TAILQ_HEAD(fent_list, fent);

struct cluster {
	struct event_base *base;
	struct cluster_hooks hooks;
	void *arg;

	/* From the config, kept for the whole run. */
	char *host;             /* NULL for a unix socket */
	int port;
	char *path;             /* unix socket */
	char *addr;             /* as configured, for messages */
	char *password;         /* NULL: no AUTH */
	char *stream, *group, *me;
	char *k_results;        /* S:results:ME */
	char *k_prefix;         /* S:results: */
	char *k_dead, *k_nodes;
	char *download_dir;
	int role;
	long claim_idle, lease_renew, max_deliveries, timeout;
	struct fetch_params params;

	struct rconn rc[RC_COUNT];
	int ready;              /* commands connection set up */
	int ever_ready;
	int stopping;
	int cut;                /* the grace period is over */
	int flushing;           /* results are sent before the exit */
	unsigned seed;
	double down_since;      /* monotonic; 0 while up */
	char last_error[160];
	struct event *ev_tick, *ev_cancelled, *ev_flush;
	double next_claim, next_renew;

	/* Coordinator. */
	struct engine *disp;
	struct out **hash;
	size_t hsize;
	struct out_list outs;
	struct out_list cancelled;
	uint64_t serial;
	int results_pending;    /* reading our own pending results first */
	int verify_wanted;      /* outs_verify() once the results are read */
	char results_from[CL_ID_MAX];   /* ... after this id */
	char results_acked[CL_ID_MAX];  /* the last result acknowledged */
	char results_trimmed[CL_ID_MAX]; /* the stream trimmed up to */

	/* Fetch side. */
	struct engine *fetcher;
	struct fent_list fents;
	struct fent_list queue;         /* taken, not yet started */
	struct jobdir_list dirs;
	long nqueued, nrunning, nresults;
	int paused;
	int entries_pending;    /* taking our own pending entries first */
	char entries_from[CL_ID_MAX];   /* ... after this id */
	uint64_t next_id;

	/* Counters. */
	uint64_t added, readded, results_in, stale, accepted, refused,
	    claimed, bad_entries, reconnects, fetched_ok, fetched_failed,
	    renew_lost;

	/* The last view of the cluster (heartbeat answers). */
	json_t *nodes;
	long long s_length, s_pending, s_lag, s_dead;
};

static void rc_connect(struct rconn *rc);
static void fetch_read(struct cluster *c);
static void results_read(struct cluster *c);
static void results_read_soon(struct cluster *c, size_t got);
static void results_trim(struct cluster *c);
static void results_send_all(struct cluster *c);
static void outs_verify(struct cluster *c);
static void setup(struct cluster *c);

/* --- connections -------------------------------------------------------- */

/* Remember what went wrong; logged when it differs from the last. */
static void set_error(struct cluster *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_error(struct cluster *c, const char *fmt, ...)
{
	char msg[sizeof(c->last_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, c->last_error) != 0)
		log_warnx("cluster: Redis at %s: %s", c->addr, msg);
	snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
}

static void
rc_schedule(struct rconn *rc)
{
	double d = rc->backoff;
	struct timeval tv;

	/* Full jitter between half and all of the delay. */
	d = d / 2 + d / 2 * ((double)rand_r(&rc->c->seed) / RAND_MAX);
	tv.tv_sec = (time_t)d;
	tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
	rc->backoff = rc->backoff * 2 > CL_BACKOFF_MAX ? CL_BACKOFF_MAX :
	    rc->backoff * 2;
	evtimer_add(rc->ev_retry, &tv);
}

static void
went_down(struct cluster *c)
{
	if (c->down_since == 0)
		c->down_since = util_mono();
}

static void
rc_lost(struct rconn *rc)
{
	struct cluster *c = rc->c;

	rc->ac = NULL;
	rc->connected = rc->up = rc->reading = 0;
	rc->outstanding = 0;
	rc->block_ms = 0;
	if (rc->which == RC_CMD)
		c->ready = 0;
	went_down(c);
	if (!c->stopping)
		rc_schedule(rc);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *rc = ac->data;

	if (status != REDIS_OK)
		set_error(rc->c, "%s connection lost: %s", rc_names[rc->which],
		    ac->errstr);
	rc_lost(rc);
}

/* Mark one command answered (every callback, reply or not, calls it). */
static struct rconn *
answered(const redisAsyncContext *ac)
{
	struct rconn *rc = ac->data;

	if (rc->outstanding > 0)
		rc->outstanding--;
	rc->last = util_mono();
	return rc;
}

/* Send a command on rc. 0, or -1 when it cannot go now. */
static int
rc_send(struct rconn *rc, redisCallbackFn *fn, void *priv, int argc,
    const char **argv, const size_t *lens, long block_ms)
{
	if (rc->ac == NULL || !rc->connected)
		return -1;
	if (redisAsyncCommandArgv(rc->ac, fn, priv, argc, argv, lens) !=
	    REDIS_OK)
		return -1;
	/* Only commands with a callback are counted: it calls answered(). */
	if (fn != NULL && rc->outstanding++ == 0)
		rc->last = util_mono();
	if (block_ms > 0)
		rc->block_ms = block_ms;
	return 0;
}

static int
reply_is_error(const redisReply *r, const char *prefix)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
	    (prefix == NULL || strncmp(r->str, prefix, strlen(prefix)) == 0);
}

/* An error reply that means our setup is gone (Redis restarted without
 * its data, or FLUSHALL): set up again. */
static void
check_setup_gone(struct cluster *c, const redisReply *r)
{
	if (reply_is_error(r, "NOGROUP") ||
	    (reply_is_error(r, NULL) && strstr(r->str, "unction") != NULL)) {
		set_error(c, "%s: %s", "setup lost", r->str);
		if (c->ready) {
			c->ready = 0;
			setup(c);
		}
	}
}

static void
on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);

	(void)priv;
	if (r != NULL && reply_is_error(r, NULL)) {
		set_error(rc->c, "%s connection: AUTH refused: %s",
		    rc_names[rc->which], ((redisReply *)r)->str);
		rc->ac = NULL;
		redisAsyncDisconnect(ac);
	}
}

static void
send_auth(struct rconn *rc)
{
	const char *argv[2] = { "AUTH", rc->c->password };

	if (rc->c->password != NULL)
		(void)rc_send(rc, on_auth, NULL, 2, argv, NULL, 0);
}

static void
on_setup_done(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	int reconnect;

	(void)priv;
	if (r == NULL || rc->ac == NULL)
		return;
	if (reply_is_error(r, NULL) && !reply_is_error(r, "BUSYGROUP")) {
		set_error(c, "%s: %s", "setup failed", ((redisReply *)r)->str);
		rc->ac = NULL;
		redisAsyncDisconnect(ac);
		return;
	}
	if ((intptr_t)priv != 1)
		return;         /* not the last step */
	reconnect = c->ever_ready;
	c->ready = c->ever_ready = 1;
	rc->backoff = CL_BACKOFF_MIN;
	if (c->down_since != 0 || c->last_error[0] != '\0')
		log_info("cluster: connected to Redis at %s as node %s",
		    c->addr, c->me);
	c->down_since = 0;
	c->last_error[0] = '\0';
	/* Once the results that came meanwhile are read (on_results). */
	if (reconnect && c->disp != NULL)
		c->verify_wanted = 1;
	results_send_all(c);
	if (c->hooks.wake != NULL && c->disp != NULL)
		c->hooks.wake(c->arg);
	fetch_read(c);
	results_read(c);
}

/* Load the functions and make the groups (again), on the commands
 * connection; on_setup_done() with priv 1 answers the last step. */
static void
setup(struct cluster *c)
{
	struct rconn *rc = &c->rc[RC_CMD];
	const char *load[4] = { "FUNCTION", "LOAD", "REPLACE", cluster_lua };
	const char *grp[6] = { "XGROUP", "CREATE", c->stream, c->group, "0",
		"MKSTREAM" };
	int coord = c->role != CONF_ROLE_FETCH;

	(void)rc_send(rc, on_setup_done, NULL, 4, load, NULL, 0);
	(void)rc_send(rc, on_setup_done, coord ? NULL : (void *)1, 6, grp,
	    NULL, 0);
	if (coord) {
		grp[2] = c->k_results;
		(void)rc_send(rc, on_setup_done, (void *)1, 6, grp, NULL, 0);
	}
}

static void
on_connect(const redisAsyncContext *cac, int status)
{
	struct rconn *rc = cac->data;
	redisAsyncContext *ac = (redisAsyncContext *)cac;

	if (status != REDIS_OK) {
		set_error(rc->c, "%s connection: %s", rc_names[rc->which],
		    ac->errstr);
		rc_lost(rc);    /* hiredis frees the context */
		return;
	}
	rc->connected = 1;
	redisEnableKeepAlive(&ac->c);
	send_auth(rc);
	if (rc->which == RC_CMD) {
		setup(rc->c);
		return;
	}
	rc->up = 1;
	rc->backoff = CL_BACKOFF_MIN;
	if (rc->which == RC_ENTRIES)
		fetch_read(rc->c);
	else
		results_read(rc->c);
}

static void
rc_connect(struct rconn *rc)
{
	struct cluster *c = rc->c;
	redisAsyncContext *ac;

	if (c->stopping)
		return;
	ac = c->path != NULL ? redisAsyncConnectUnix(c->path) :
	    redisAsyncConnect(c->host, c->port);
	if (ac == NULL || ac->err) {
		set_error(c, "%s connection: %s", rc_names[rc->which],
		    ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		rc_lost(rc);
		return;
	}
	ac->data = rc;
	if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
		redisAsyncFree(ac);
		rc_lost(rc);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	rc->ac = ac;
	rc->started = util_mono();
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *rc = arg;

	(void)fd;
	(void)what;
	if (rc->ac == NULL) {
		if (rc->which == RC_CMD && rc->c->ever_ready)
			rc->c->reconnects++;
		rc_connect(rc);
	} else if (rc->which == RC_ENTRIES)
		fetch_read(rc->c);      /* a read that failed, again */
	else if (rc->which == RC_RESULTS)
		results_read(rc->c);
}

/* Drop a connection whose oldest command has gone unanswered too long. */
static void
rc_check_timeout(struct rconn *rc, double now)
{
	struct cluster *c = rc->c;
	redisAsyncContext *ac = rc->ac;

	if (ac == NULL)
		return;
	if (!rc->connected) {
		if (now - rc->started < (double)c->timeout)
			return;
	} else if (rc->outstanding == 0 || now - rc->last <
	    (double)c->timeout + (double)rc->block_ms / 1000)
		return;
	set_error(c, "%s connection: %s", rc_names[rc->which],
	    "no answer in time; reconnecting");
	redisAsyncFree(ac);     /* callbacks get NULL; on_disconnect runs */
	if (rc->ac == ac)       /* not connected yet: no disconnect callback */
		rc_lost(rc);
}

/* --- coordinator: the dispatcher engine ---------------------------------- */

static size_t
out_hash(const struct cluster *c, const char *job, size_t index)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *job != '\0'; job++)
		h = (h ^ (unsigned char)*job) * 1099511628211ULL;
	h = (h ^ index) * 1099511628211ULL;
	return (size_t)(h & (c->hsize - 1));
}

static struct out *
out_find(const struct cluster *c, const char *job, size_t index)
{
	struct out *o;

	for (o = c->hash[out_hash(c, job, index)]; o != NULL; o = o->hnext)
		if (o->t->index == index && strcmp(o->job, job) == 0)
			return o;
	return NULL;
}

static void
out_remove(struct cluster *c, struct out *o)
{
	struct out **pp = &c->hash[out_hash(c, o->job, o->t->index)];

	while (*pp != o)
		pp = &(*pp)->hnext;
	*pp = o->hnext;
	TAILQ_REMOVE(o->cancelled ? &c->cancelled : &c->outs, o, entry);
}

/* Hand o's transfer back through the engine and free o. */
static void
out_complete(struct cluster *c, struct out *o)
{
	struct transfer *t = o->t;

	out_remove(c, o);
	free(o);
	engine_complete(c->disp, t);
}

static struct out_ref *
out_ref_new(struct cluster *c, const struct out *o)
{
	struct out_ref *ref = malloc(sizeof(*ref));

	if (ref == NULL || (ref->job = strdup(o->job)) == NULL) {
		free(ref);
		return NULL;
	}
	ref->c = c;
	ref->index = o->t->index;
	ref->serial = o->serial;
	return ref;
}

/* The out ref names, if still out; frees ref. */
static struct out *
out_ref_take(struct out_ref *ref)
{
	struct out *o = out_find(ref->c, ref->job, ref->index);

	if (o != NULL && (o->serial != ref->serial || o->cancelled))
		o = NULL;
	free(ref->job);
	free(ref);
	return o;
}

static void
on_added(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	redisReply *reply = r;
	struct out *o = out_ref_take(priv);

	(void)rc;
	if (o == NULL || reply == NULL)
		return;         /* lost: outs_verify adds it again */
	if (reply->type == REDIS_REPLY_STRING && reply->len < CL_ID_MAX) {
		memcpy(o->id, reply->str, reply->len + 1);
		return;
	}
	check_setup_gone(rc->c, reply);
	set_error(rc->c, "%s: %s", "XADD failed",
	    reply->type == REDIS_REPLY_ERROR ? reply->str : "bad reply");
}

/* XADD o's URL to the stream. 0, or -1 when it cannot go now. */
static int
out_add(struct cluster *c, struct out *o)
{
	struct transfer *t = o->t;
	char idx[24], att[16], hex[65];
	const char *argv[CL_ARGS_MAX];
	struct out_ref *ref;
	int n = 0;

	if ((ref = out_ref_new(c, o)) == NULL)
		return -1;
	snprintf(idx, sizeof(idx), "%zu", t->index);
	snprintf(att, sizeof(att), "%d", t->attempt);
	argv[n++] = "XADD";
	argv[n++] = c->stream;
	argv[n++] = "*";
	argv[n++] = "c";
	argv[n++] = c->me;
	argv[n++] = "j";
	argv[n++] = o->job;
	argv[n++] = "i";
	argv[n++] = idx;
	argv[n++] = "u";
	argv[n++] = t->url;
	argv[n++] = "n";
	argv[n++] = t->name;
	argv[n++] = "a";
	argv[n++] = att;
	if (t->has_sha256) {
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", t->sha256[i]);
		argv[n++] = "s";
		argv[n++] = hex;
	}
	if (t->headers != NULL) {
		argv[n++] = "h";
		argv[n++] = t->headers;
	}
	o->id[0] = '\0';
	if (rc_send(&c->rc[RC_CMD], on_added, ref, n, argv, NULL, 0) == -1) {
		free(ref->job);
		free(ref);
		return -1;
	}
	return 0;
}

static int
disp_start(struct engine *e, const struct config *cfg,
    struct event_base *base)
{
	(void)e;
	(void)cfg;
	(void)base;
	return 0;
}

static int
disp_submit(struct engine *e, struct transfer *t)
{
	struct cluster *c = e->priv;
	const char *slash = strrchr(t->dir, '/');
	struct out *o;
	size_t h;

	if (!c->ready || c->stopping || slash == NULL)
		return -1;
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return -1;
	o->t = t;
	o->job = slash + 1;
	o->serial = ++c->serial;
	if (out_find(c, o->job, t->index) != NULL) {
		free(o);
		return -1;
	}
	h = out_hash(c, o->job, t->index);
	o->hnext = c->hash[h];
	c->hash[h] = o;
	TAILQ_INSERT_TAIL(&c->outs, o, entry);
	if (out_add(c, o) == -1) {
		out_remove(c, o);
		free(o);
		return -1;
	}
	c->added++;
	return 0;
}

static void
cancelled_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	struct out *o;

	(void)fd;
	(void)what;
	while ((o = TAILQ_FIRST(&c->cancelled)) != NULL)
		out_complete(c, o);
}

/*
 * The entry is deleted from the stream: no node takes it any more, and
 * one fetching it stops within two lease renewals (XCLAIM drops a deleted
 * entry from the pending list, the next renewal finds it gone). A result
 * that still comes is refused or finds nothing out (stale). When the
 * delete cannot go now, the entry is fetched and its result is stale.
 */
static void
disp_cancel(struct engine *e, struct transfer *t)
{
	struct cluster *c = e->priv;
	const char *slash = strrchr(t->dir, '/');
	const char *del[3] = { "XDEL", c->stream, NULL };
	struct out *o;

	if (slash == NULL || (o = out_find(c, slash + 1, t->index)) == NULL ||
	    o->t != t || o->cancelled)
		return;
	if (o->id[0] != '\0' && c->ready) {
		del[2] = o->id;
		(void)rc_send(&c->rc[RC_CMD], NULL, NULL, 3, del, NULL, 0);
	}
	fetch_set_error(t, FETCH_RETRY, FERR_OTHER, "cancelled");
	TAILQ_REMOVE(&c->outs, o, entry);
	o->cancelled = 1;
	TAILQ_INSERT_TAIL(&c->cancelled, o, entry);
	event_active(c->ev_cancelled, 0, 0);
}

static void
disp_stop(struct engine *e)
{
	struct cluster *c = e->priv;
	struct out *o;

	while ((o = TAILQ_FIRST(&c->outs)) != NULL) {
		fetch_set_error(o->t, FETCH_RETRY, FERR_OTHER, "stopped");
		out_complete(c, o);
	}
	while ((o = TAILQ_FIRST(&c->cancelled)) != NULL)
		out_complete(c, o);
}

static void
disp_stats(struct engine *e, struct engine_stats *st)
{
	st->busy = e->inflight;
}

static const struct engine_ops cluster_ops = {
	.name = "cluster",
	.start = disp_start,
	.submit = disp_submit,
	.cancel = disp_cancel,
	.stop = disp_stop,
	.stats = disp_stats,
};

static void
on_verified(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rconn *rc = answered(ac);
	struct out *o = out_ref_take(priv);

	if (o == NULL || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    reply->elements != 0)
		return;
	/* Gone from the stream without its result here: Redis lost it. */
	if (out_add(rc->c, o) == 0)
		rc->c->readded++;
}

/*
 * After a reconnect: every URL out whose entry Redis no longer has (it
 * restarted without having written it, a failover lost it) or whose add
 * was never answered is added again. A URL may so be fetched twice, never
 * lost; the first result wins. Called once the result stream has been
 * read up to its end: fetchd_complete deletes an entry as it adds its
 * result, so an entry done while we were away is gone too, and only its
 * result, read first, tells it from one Redis lost.
 */
static void
outs_verify(struct cluster *c)
{
	const char *argv[4] = { "XRANGE", c->stream, NULL, NULL };
	struct out_ref *ref;
	struct out *o;

	TAILQ_FOREACH(o, &c->outs, entry) {
		if (o->id[0] == '\0') {
			if (out_add(c, o) == 0)
				c->readded++;
			continue;
		}
		if ((ref = out_ref_new(c, o)) == NULL)
			continue;
		argv[2] = argv[3] = o->id;
		if (rc_send(&c->rc[RC_CMD], on_verified, ref, 4, argv, NULL,
		    0) == -1) {
			free(ref->job);
			free(ref);
		}
	}
}

/* --- reading stream entries ---------------------------------------------- */

/* The value after name in a flat [name, value, ...] reply; NULL when
 * absent. */
static const redisReply *
reply_value(const redisReply *f, const char *name)
{
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i];

		if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
			return f->element[i + 1];
	}
	return NULL;
}

/* Field name of a flat reply as a string; NULL when absent or not one. */
static const char *
reply_field(const redisReply *f, const char *name)
{
	const redisReply *v = reply_value(f, name);

	return v != NULL && v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

/* An entry [id, [fields]] of a reply: 1 with *id and *fields, else 0. */
static int
reply_entry(const redisReply *e, const char **id, const redisReply **fields)
{
	if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[0]->type != REDIS_REPLY_STRING ||
	    e->element[0]->len >= CL_ID_MAX)
		return 0;
	*id = e->element[0]->str;
	*fields = e->element[1];
	/* A deleted entry still pending comes back with nil fields. */
	return (*fields)->type == REDIS_REPLY_ARRAY;
}

/* The entries of an XREADGROUP reply for one stream (or NULL). */
static const redisReply *
read_entries(const redisReply *r)
{
	const redisReply *s;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return NULL;
	s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
	    s->element[1]->type != REDIS_REPLY_ARRAY)
		return NULL;
	return s->element[1];
}

static int
parse_size(const char *s, size_t *v)
{
	char *end;
	unsigned long long n;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v = (size_t)n;
	return 0;
}

/* --- coordinator: results ------------------------------------------------ */

static enum fetch_outcome
outcome_parse(const char *s)
{
	if (s != NULL && strcmp(s, "ok") == 0)
		return FETCH_OK;
	if (s != NULL && strcmp(s, "retry") == 0)
		return FETCH_RETRY;
	return FETCH_FAIL;
}

static long
field_long(const redisReply *f, const char *name, long min, long max,
    long def)
{
	const char *s = reply_field(f, name);
	char *end;
	long v;

	if (s == NULL)
		return def;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return def;
	return v;
}

/* One result from our result stream. */
static void
result_in(struct cluster *c, const redisReply *f)
{
	const char *job = reply_field(f, "j"), *o = reply_field(f, "o");
	const char *err = reply_field(f, "e"), *node = reply_field(f, "node");
	const char *secs = reply_field(f, "s"), *bytes = reply_field(f, "b");
	struct transfer *t;
	struct out *out;
	size_t index;

	c->results_in++;
	if (job == NULL || parse_size(reply_field(f, "i"), &index) == -1 ||
	    (out = out_find(c, job, index)) == NULL || out->cancelled) {
		c->stale++;
		return;
	}
	t = out->t;
	t->outcome = outcome_parse(o);
	t->errkind = (enum fetch_errkind)field_long(f, "k", 0, FERR__COUNT - 1,
	    t->outcome == FETCH_OK ? FERR_NONE : FERR_OTHER);
	t->http_status = field_long(f, "h", 0, 999, 0);
	t->retry_after = field_long(f, "r", -1, 86400 * 365, -1);
	t->size = bytes != NULL ? strtoull(bytes, NULL, 10) : 0;
	t->seconds = secs != NULL ? strtod(secs, NULL) : 0;
	if (!(t->seconds >= 0 && t->seconds < 1e9))
		t->seconds = 0;
	t->ttfb = 0;
	t->received = 0;
	snprintf(t->error, sizeof(t->error), "%s",
	    t->outcome == FETCH_OK || err == NULL ? "" : err);
	free(t->node);
	t->node = config_node_name_valid(node, 0) ? strdup(node) : NULL;
	/* Node-local: the next attempt may run anywhere. */
	t->part_dev = t->part_ino = 0;
	out_complete(c, out);
}

static void
on_results(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	const redisReply *list = read_entries(r);
	const char *ack[3 + CL_READ_MAX] = { "XACK", c->k_results, c->group };
	const redisReply *f;
	const char *id;
	int n = 0, pending = c->results_pending;

	(void)priv;
	rc->reading = 0;
	rc->block_ms = 0;
	/* Cut: the jobs are stopped. Left unacknowledged, the results are
	 * read again after the restart. */
	if (r == NULL || rc->ac == NULL || c->cut)
		return;
	if (reply_is_error(r, NULL)) {
		check_setup_gone(c, r);
		rc_schedule(rc);        /* read again later */
		return;
	}
	if (list == NULL || list->elements == 0)
		c->results_pending = 0;
	for (size_t i = 0; list != NULL && i < list->elements; i++) {
		id = NULL;
		if (reply_entry(list->element[i], &id, &f))
			result_in(c, f);
		/* One deleted while pending (nil fields) is acknowledged
		 * too, or it stays pending here for good. */
		if (id == NULL)
			continue;
		ack[3 + n++] = id;
		if (c->results_pending)
			snprintf(c->results_from, sizeof(c->results_from), "%s",
			    id);
	}
	/* Acknowledged once recorded: a crash before this reads them
	 * again, and a result for a URL already recorded finds nothing.
	 * Deleted later, a batch at a time (results_trim). */
	if (n > 0) {
		(void)rc_send(rc, NULL, NULL, 3 + n, ack, NULL, 0);
		snprintf(c->results_acked, sizeof(c->results_acked), "%s",
		    ack[3 + n - 1]);
	}
	/* Less than a full page of new results: the stream is read up to
	 * its end. */
	if (c->verify_wanted && !pending &&
	    (list == NULL || list->elements < CL_READ_MAX)) {
		c->verify_wanted = 0;
		outs_verify(c);
	}
	results_read_soon(c, list != NULL ? list->elements : 0);
}

/*
 * The next read of results. After a short page, a moment later: the
 * results that come meanwhile are then read together, one wake-up for
 * many instead of one each (the window keeps the nodes busy meanwhile).
 */
static void
results_read_soon(struct cluster *c, size_t got)
{
	struct timeval tv = { 0, CL_RESULTS_WAIT_US };

	if (got >= CL_RESULTS_BATCH || c->results_pending)
		results_read(c);
	else
		evtimer_add(c->rc[RC_RESULTS].ev_retry, &tv);
}

/* Delete the results read and acknowledged so far: every entry up to
 * the last one acknowledged (results are read and acknowledged in order;
 * one still pending there was recorded already). */
static void
results_trim(struct cluster *c)
{
	char past[CL_ID_MAX + 24];
	const char *argv[] = { "XTRIM", c->k_results, "MINID", past };
	unsigned long long ms, seq;

	if (c->results_acked[0] == '\0' ||
	    strcmp(c->results_acked, c->results_trimmed) == 0 ||
	    sscanf(c->results_acked, "%llu-%llu", &ms, &seq) != 2)
		return;
	/* MINID keeps the id given: the one after the last acknowledged. */
	snprintf(past, sizeof(past), "%llu-%llu", ms, seq + 1);
	if (rc_send(&c->rc[RC_CMD], NULL, NULL, 4, argv, NULL, 0) == 0)
		memcpy(c->results_trimmed, c->results_acked,
		    sizeof(c->results_trimmed));
}

static void
results_read(struct cluster *c)
{
	struct rconn *rc = &c->rc[RC_RESULTS];
	char count[24], block[24];
	const char *argv[] = { "XREADGROUP", "GROUP", c->group, c->me,
		"COUNT", count, "BLOCK", block, "STREAMS", c->k_results,
		c->results_pending ? c->results_from : ">" };
	long ms = c->results_pending ? 0 : CL_BLOCK_MS;

	if (c->role == CONF_ROLE_FETCH || !rc->up || rc->reading ||
	    !c->ready || c->cut)
		return;
	snprintf(count, sizeof(count), "%d", CL_READ_MAX);
	snprintf(block, sizeof(block), "%ld", ms);
	if (rc_send(rc, on_results, NULL, 11, argv, NULL, ms) == 0)
		rc->reading = 1;
}

/* --- fetch side ---------------------------------------------------------- */

/* --- fetch side: job directories ----------------------------------------- */

/* The job's directory, opened (made) once for every transfer into it;
 * NULL when it cannot be opened now (the transfer then opens it by its
 * path, and says why when that fails too). */
static struct jobdir *
jobdir_get(struct cluster *c, const char *job, const char *path)
{
	struct jobdir *jd;
	int created;

	TAILQ_FOREACH(jd, &c->dirs, entry)
		if (strcmp(jd->name, job) == 0)
			break;
	if (jd == NULL) {
		if ((jd = calloc(1, sizeof(*jd))) == NULL ||
		    (jd->name = strdup(job)) == NULL ||
		    (jd->fd = fetch_open_dir(path, &created)) == -1) {
			if (jd != NULL)
				free(jd->name);
			free(jd);
			return NULL;
		}
		TAILQ_INSERT_HEAD(&c->dirs, jd, entry);
	}
	jd->refs++;
	return jd;
}

static void
jobdir_put(struct cluster *c, struct jobdir *jd)
{
	if (jd == NULL || --jd->refs > 0)
		return;
	TAILQ_REMOVE(&c->dirs, jd, entry);
	close(jd->fd);
	free(jd->name);
	free(jd);
}

/* t is done with: free it and let go of its directory. */
static void
fent_drop_transfer(struct cluster *c, struct fent *fe)
{
	fetch_transfer_free(fe->t);
	fe->t = NULL;
	jobdir_put(c, fe->dir);
	fe->dir = NULL;
}

static void
fent_free(struct cluster *c, struct fent *fe)
{
	TAILQ_REMOVE(&c->fents, fe, entry);
	if (fe->state == FE_QUEUED) {
		TAILQ_REMOVE(&c->queue, fe, qentry);
		c->nqueued--;
	}
	fent_drop_transfer(c, fe);
	free(fe->coord);
	free(fe->job);
	free(fe->index);
	free(fe);
}

static void
flush_over(struct cluster *c)
{
	if (!c->flushing)
		return;
	c->flushing = 0;
	evtimer_del(c->ev_flush);
	if (c->hooks.flushed != NULL)
		c->hooks.flushed(c->arg);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	(void)fd;
	(void)what;
	log_warnx("cluster: %ld result%s not answered by Redis in %lds; "
	    "their entries will be fetched again", c->nresults,
	    util_plural((double)c->nresults), c->timeout);
	flush_over(c);
}

static void
on_completed(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	redisReply *reply = r;
	struct fent *fe = priv;

	if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
		/* Not known to have arrived: sent again once set up. */
		fe->state = FE_RESULT;
		if (reply != NULL) {
			check_setup_gone(c, reply);
			set_error(c, "%s: %s", "sending a result",
			    reply->type == REDIS_REPLY_ERROR ? reply->str :
			    "bad reply");
		}
		return;
	}
	if (reply->integer == 1)
		c->accepted++;
	else {
		c->refused++;
		log_info("cluster: the result of entry %s (job %s #%s) was "
		    "refused: another node has it now", fe->id, fe->job,
		    fe->index);
	}
	c->nresults--;
	fent_free(c, fe);
	if (c->flushing && c->nresults == 0)
		flush_over(c);
}

static const char *
outcome_name(enum fetch_outcome o)
{
	return o == FETCH_OK ? "ok" : o == FETCH_RETRY ? "retry" : "fail";
}

/* Send fe's result through fetchd_complete. */
static void
result_send(struct cluster *c, struct fent *fe)
{
	char k[8], h[16], r[24], b[24], s[32];
	char results[512];
	const char *argv[CL_ARGS_MAX];
	int n = 0;

	if (config_node_name_valid(fe->coord, 0))
		snprintf(results, sizeof(results), "%s%s", c->k_prefix,
		    fe->coord);
	else
		snprintf(results, sizeof(results), "%s", c->k_dead);
	snprintf(k, sizeof(k), "%d", (int)fe->errkind);
	snprintf(h, sizeof(h), "%ld", fe->status);
	snprintf(r, sizeof(r), "%ld", fe->retry_after);
	snprintf(b, sizeof(b), "%" PRIu64, fe->size);
	snprintf(s, sizeof(s), "%.3f", fe->seconds);
	argv[n++] = "FCALL";
	argv[n++] = "fetchd_complete";
	argv[n++] = "2";
	argv[n++] = c->stream;
	argv[n++] = results;
	argv[n++] = c->group;
	argv[n++] = c->me;
	argv[n++] = fe->id;
	argv[n++] = "j";
	argv[n++] = fe->job != NULL ? fe->job : "";
	argv[n++] = "i";
	argv[n++] = fe->index != NULL ? fe->index : "";
	argv[n++] = "x";
	argv[n++] = fe->id;
	argv[n++] = "o";
	argv[n++] = outcome_name(fe->outcome);
	argv[n++] = "k";
	argv[n++] = k;
	argv[n++] = "h";
	argv[n++] = h;
	argv[n++] = "r";
	argv[n++] = r;
	argv[n++] = "b";
	argv[n++] = b;
	argv[n++] = "s";
	argv[n++] = s;
	argv[n++] = "e";
	argv[n++] = fe->error;
	argv[n++] = "node";
	argv[n++] = c->me;
	if (rc_send(&c->rc[RC_CMD], on_completed, fe, n, argv, NULL, 0) == 0)
		fe->state = FE_SENDING;
}

static void
results_send_all(struct cluster *c)
{
	struct fent *fe;

	TAILQ_FOREACH(fe, &c->fents, entry)
		if (fe->state == FE_RESULT && c->ready)
			result_send(c, fe);
}

/* fe has its result: send it (now, or once Redis is back). */
static void
fent_result(struct cluster *c, struct fent *fe)
{
	fe->state = FE_RESULT;
	c->nresults++;
	if (c->ready)
		result_send(c, fe);
}

/*
 * An entry's fields, checked exactly like a job line's (the URL's scheme
 * and form, the output name, the sha256: job_entry_fields) plus the job's
 * and the coordinator's names: a transfer into download_dir/J for fe, or
 * NULL with the reason in err.
 */
static struct transfer *
entry_transfer(struct cluster *c, struct fent *fe, const redisReply *f,
    char *err, size_t errlen)
{
	const char *job = reply_field(f, "j");
	char dir[PATH_MAX + SPOOL_NAME_MAX + 2];
	struct transfer *t = NULL;
	struct job_entry e;
	size_t index;

	if (!config_node_name_valid(reply_field(f, "c"), 0)) {
		snprintf(err, errlen, "bad coordinator name");
		return NULL;
	}
	if (job == NULL || !spool_name_valid(job) ||
	    parse_size(reply_field(f, "i"), &index) == -1) {
		snprintf(err, errlen, "bad job name or index");
		return NULL;
	}
	if (reply_field(f, "n") == NULL) {
		snprintf(err, errlen, "no output name");
		return NULL;
	}
	if (job_entry_fields(reply_field(f, "u"), reply_field(f, "n"),
	    reply_field(f, "s"), &e, err, errlen) == -1)
		return NULL;
	if (job_entry_headers(reply_field(f, "h"), &e, err, errlen) == -1) {
		job_entry_free(&e);
		return NULL;
	}
	snprintf(dir, sizeof(dir), "%s/%s", c->download_dir, job);
	if ((t = fetch_transfer_new(e.url, e.host, dir, e.out)) == NULL ||
	    (t->part_tag = strdup(c->me)) == NULL) {
		snprintf(err, errlen, "out of memory");
		job_entry_free(&e);
		fetch_transfer_free(t);
		return NULL;
	}
	t->has_sha256 = e.has_sha256;
	memcpy(t->sha256, e.sha256, sizeof(t->sha256));
	t->headers = e.headers;     /* moved */
	e.headers = NULL;
	job_entry_free(&e);
	t->attempt = (int)field_long(f, "a", 1, 1000, 1);
	t->params = c->params;
	t->id = CLUSTER_ID_BIT | ++c->next_id;
	if ((fe->dir = jobdir_get(c, job, dir)) != NULL)
		t->dirfd = fe->dir->fd;
	return t;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* An entry taken from the stream (read or claimed): queue it, or answer
 * a bad one with a failed result at once. maybe_ours: it may be one of
 * ours already (our own pending entries, a claim), else it is new. */
static void
entry_in(struct cluster *c, const char *id, const redisReply *f,
    int maybe_ours)
{
	char err[JOB_ERR_MAX + 64] = "";
	struct fent *fe;
	struct fent *dup;

	if (maybe_ours)
		TAILQ_FOREACH(dup, &c->fents, entry)
			if (strcmp(dup->id, id) == 0)
				return; /* running here already */
	if ((fe = calloc(1, sizeof(*fe))) == NULL)
		return;         /* stays pending: taken up again later */
	snprintf(fe->id, sizeof(fe->id), "%s", id);
	fe->coord = dup_or_null(reply_field(f, "c"));
	fe->job = dup_or_null(reply_field(f, "j"));
	fe->index = dup_or_null(reply_field(f, "i"));
	TAILQ_INSERT_TAIL(&c->fents, fe, entry);
	if ((fe->t = entry_transfer(c, fe, f, err, sizeof(err))) == NULL) {
		c->bad_entries++;
		log_warnx("cluster: entry %s refused: %s", id, err);
		fe->outcome = FETCH_FAIL;
		fe->errkind = FERR_OTHER;
		fe->retry_after = -1;
		snprintf(fe->error, sizeof(fe->error),
		    "refused by node %s: %s", c->me, err);
		fent_result(c, fe);
		return;
	}
	fe->t->owner = fe;
	fe->state = FE_QUEUED;
	TAILQ_INSERT_TAIL(&c->queue, fe, qentry);
	c->nqueued++;
}

/* Hand queued entries to the local engine while it has room. */
static void
fetch_submit(struct cluster *c)
{
	struct fent *fe;

	/* Entries taken while stopping stay ours, for the restart. */
	if (c->fetcher == NULL || c->stopping || c->paused)
		return;
	while ((fe = TAILQ_FIRST(&c->queue)) != NULL &&
	    engine_has_room(c->fetcher)) {
		fe->t->progress = 0;
		if (engine_submit(c->fetcher, fe->t) == -1)
			break;
		TAILQ_REMOVE(&c->queue, fe, qentry);
		fe->state = FE_RUNNING;
		c->nqueued--;
		c->nrunning++;
	}
}

/*
 * How many more entries to take. A node keeps as many taken as it has
 * workers, besides the running ones, so a slot that frees is filled at
 * once from here, and asks for more only when half of that is gone: one
 * read for many URLs instead of a read for each. Taken entries are leased
 * like running ones.
 */
static long
fetch_room(const struct cluster *c)
{
	long room, workers;

	if (c->fetcher == NULL || c->stopping || c->paused ||
	    c->role == CONF_ROLE_COORDINATE)
		return 0;
	workers = engine_workers(c->fetcher);
	room = 2 * workers - c->fetcher->inflight - c->nqueued;
	if (c->nqueued > 0 && room < (workers + 1) / 2)
		return 0;
	return room > CL_READ_MAX ? CL_READ_MAX : room;
}

static void
entries_in(struct cluster *c, const redisReply *list, int maybe_ours)
{
	const redisReply *f;
	const char *id;

	for (size_t i = 0; list != NULL && i < list->elements; i++)
		if (reply_entry(list->element[i], &id, &f))
			entry_in(c, id, f, maybe_ours);
	fetch_submit(c);
}

static void
on_entries(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;

	(void)priv;
	rc->reading = 0;
	rc->block_ms = 0;
	if (r == NULL || rc->ac == NULL)
		return;
	if (reply_is_error(r, NULL)) {
		check_setup_gone(c, r);
		rc_schedule(rc);
		return;
	}
	entries_in(c, read_entries(r), 0);
	fetch_read(c);
}

/* A page of our own pending entries: [the last id looked at, entries]. */
static void
on_mine(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	const redisReply *reply = r, *last;

	(void)priv;
	rc->reading = 0;
	if (reply == NULL || rc->ac == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    (last = reply->element[0])->type != REDIS_REPLY_STRING ||
	    last->len >= CL_ID_MAX ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY) {
		check_setup_gone(c, reply);
		set_error(c, "%s: %s", "taking our pending entries",
		    reply->type == REDIS_REPLY_ERROR ? reply->str :
		    "bad reply");
		rc_schedule(rc);
		return;
	}
	if (last->len == 0)
		c->entries_pending = 0;
	else
		memcpy(c->entries_from, last->str, last->len + 1);
	entries_in(c, reply->element[1], 1);
	fetch_read(c);
}

/*
 * Take our own pending entries (a restart's), a page after entries_from
 * at a time. Not XREADGROUP with an id: it has no delivery limit, so a
 * URL that crashes its node would be fetched for ever by a node that
 * restarts within claim_idle; and read again from "0" until empty, it
 * returned entries still running here again and again (a busy loop that
 * raised their delivery counts), and one whose result was sent meanwhile
 * came back as new and was fetched a second time.
 */
static void
fetch_mine(struct cluster *c, long room)
{
	char count[24], maxd[24];
	const char *argv[] = { "FCALL", "fetchd_mine", "2", c->stream,
		c->k_dead, c->group, c->me, c->entries_from, count, maxd,
		c->k_prefix };
	struct rconn *rc = &c->rc[RC_ENTRIES];

	snprintf(count, sizeof(count), "%ld", room);
	snprintf(maxd, sizeof(maxd), "%ld", c->max_deliveries);
	if (rc_send(rc, on_mine, NULL, 11, argv, NULL, 0) == 0)
		rc->reading = 1;
}

static void
fetch_read(struct cluster *c)
{
	struct rconn *rc = &c->rc[RC_ENTRIES];
	char count[24], block[24];
	const char *argv[] = { "XREADGROUP", "GROUP", c->group, c->me,
		"COUNT", count, "BLOCK", block, "STREAMS", c->stream, ">" };
	long room = fetch_room(c);

	if (room <= 0 || !rc->up || rc->reading || !c->ready)
		return;
	if (c->entries_pending) {
		fetch_mine(c, room);
		return;
	}
	snprintf(count, sizeof(count), "%ld", room);
	snprintf(block, sizeof(block), "%d", CL_BLOCK_MS);
	if (rc_send(rc, on_entries, NULL, 11, argv, NULL, CL_BLOCK_MS) == 0)
		rc->reading = 1;
}

static void
on_claimed(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	redisReply *reply = r;
	(void)priv;
	if (reply == NULL)
		return;
	if (reply->type != REDIS_REPLY_ARRAY) {
		check_setup_gone(rc->c, reply);
		return;
	}
	rc->c->claimed += reply->elements;
	entries_in(rc->c, reply, 1);
}

/* Take over entries idle past claim_idle (dead-lettering the worn out). */
static void
fetch_claim(struct cluster *c)
{
	char idle[24], count[24], maxd[24];
	const char *argv[] = { "FCALL", "fetchd_claim", "2", c->stream,
		c->k_dead, c->group, c->me, idle, count, maxd, c->k_prefix };
	long room = fetch_room(c);

	if (room <= 0 || !c->ready)
		return;
	snprintf(idle, sizeof(idle), "%ld", c->claim_idle * 1000);
	snprintf(count, sizeof(count), "%ld", room);
	snprintf(maxd, sizeof(maxd), "%ld", c->max_deliveries);
	(void)rc_send(&c->rc[RC_CMD], on_claimed, NULL, 11, argv, NULL, 0);
}

/* A renewal found fe taken over by another node, or deleted (its job
 * cancelled): one not started yet is dropped, one running is stopped
 * (its result, sent anyway, is refused). */
static void
entry_lost(struct cluster *c, struct fent *fe)
{
	c->renew_lost++;
	log_info("cluster: entry %s (job %s #%s) is no longer this node's; "
	    "%s", fe->id, fe->job, fe->index, fe->state == FE_QUEUED ?
	    "dropped" : "stopping it here");
	if (fe->state == FE_QUEUED) {
		fent_free(c, fe);
		return;
	}
	fe->lost = 1;
	if (fe->state == FE_RUNNING)
		engine_cancel(fe->t);
}

static void
on_renewed(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	redisReply *reply = r;
	struct fent *fe;

	(void)priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
		if (reply != NULL)
			check_setup_gone(c, reply);
		return;
	}
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *id = reply->element[i];

		if (id->type != REDIS_REPLY_STRING)
			continue;
		TAILQ_FOREACH(fe, &c->fents, entry) {
			if (fe->lost || strcmp(fe->id, id->str) != 0)
				continue;
			entry_lost(c, fe);
			break;
		}
	}
}

/* Renew the leases of the entries running here. */
static void
fetch_renew(struct cluster *c)
{
	const char **argv;
	struct fent *fe;
	int n = 0;

	if (!c->ready || c->nrunning + c->nqueued == 0)
		return;
	if ((argv = calloc((size_t)(c->nrunning + c->nqueued) + 6,
	    sizeof(*argv))) == NULL)
		return;
	argv[n++] = "FCALL";
	argv[n++] = "fetchd_renew";
	argv[n++] = "1";
	argv[n++] = c->stream;
	argv[n++] = c->group;
	argv[n++] = c->me;
	TAILQ_FOREACH(fe, &c->fents, entry)
		if ((fe->state == FE_RUNNING || fe->state == FE_QUEUED) &&
		    !fe->lost && n < c->nrunning + c->nqueued + 6)
			argv[n++] = fe->id;
	if (n > 6)
		(void)rc_send(&c->rc[RC_CMD], on_renewed, NULL, n, argv, NULL,
		    0);
	free(argv);
}

void
cluster_fetched(struct cluster *c, struct transfer *t)
{
	struct fent *fe = t->owner;

	c->nrunning--;
	if (c->cut) {
		/* Cut short by the stop: no result. The entry stays this
		 * node's and is taken again after the restart (fetchd_mine),
		 * its .part resumed. Frees t. */
		fent_free(c, fe);
		return;
	}
	fe->outcome = t->outcome;
	fe->errkind = t->errkind;
	fe->status = t->http_status;
	fe->retry_after = t->retry_after;
	fe->size = t->size;
	fe->seconds = t->seconds;
	memcpy(fe->error, t->error, sizeof(fe->error));
	if (t->outcome == FETCH_OK)
		c->fetched_ok++;
	else
		c->fetched_failed++;
	/* A retry may run anywhere (the .part of a transfer cut short by
	 * the stop is kept, above). */
	if (t->outcome != FETCH_OK)
		fetch_discard(t);
	fent_drop_transfer(c, fe);
	fent_result(c, fe);
}

/* --- the heartbeat: status out, the cluster's view in -------------------- */

static void
on_nodes(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	redisReply *reply = r;
	json_t *nodes, *v;

	(void)priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
	    (nodes = json_array()) == NULL)
		return;
	for (size_t i = 0; i + 1 < reply->elements; i += 2) {
		const redisReply *val = reply->element[i + 1];

		if (val->type != REDIS_REPLY_STRING ||
		    (v = json_loads(val->str, 0, NULL)) == NULL)
			continue;
		if (json_is_object(v))
			json_array_append(nodes, v);
		json_decref(v);
	}
	json_decref(c->nodes);
	c->nodes = nodes;
}

/* Field name of a flat reply as an integer; -1 when absent or not one. */
static long long
map_int(const redisReply *m, const char *name)
{
	const redisReply *v = reply_value(m, name);

	return v != NULL && v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
}

static void
on_groups(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	struct cluster *c = rc->c;
	redisReply *reply = r;

	(void)priv;
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < reply->elements; i++) {
		const redisReply *g = reply->element[i];
		const char *name;

		if (g->type != REDIS_REPLY_ARRAY ||
		    (name = reply_field(g, "name")) == NULL ||
		    strcmp(name, c->group) != 0)
			continue;
		c->s_pending = map_int(g, "pending");
		c->s_lag = map_int(g, "lag");   /* nil after an AOF load */
	}
}

static void
on_len(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *rc = answered(ac);
	redisReply *reply = r;
	long long *into = priv == NULL ? &rc->c->s_length : &rc->c->s_dead;

	if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
		*into = reply->integer;
}

static json_t *
node_status(const struct cluster *c)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
	    "node", c->me, "role", config_role_name(c->role),
	    "time", (json_int_t)time(NULL),
	    "fetched", (json_int_t)c->fetched_ok,
	    "failed", (json_int_t)c->fetched_failed,
	    "refused", (json_int_t)c->refused,
	    "fetching", (json_int_t)(c->nrunning + c->nqueued));

	if (o != NULL && c->hooks.status != NULL)
		c->hooks.status(o, c->arg);
	return o;
}

static void
heartbeat(struct cluster *c)
{
	struct rconn *rc = &c->rc[RC_CMD];
	const char *hset[4] = { "HSET", c->k_nodes, c->me, NULL };
	const char *hgetall[2] = { "HGETALL", c->k_nodes };
	const char *groups[4] = { "XINFO", "GROUPS", c->stream };
	const char *xlen[2] = { "XLEN", c->stream };
	json_t *st;
	char *s;

	if ((st = node_status(c)) == NULL)
		return;
	s = json_dumps(st, JSON_COMPACT);
	json_decref(st);
	if (s == NULL)
		return;
	hset[3] = s;
	(void)rc_send(rc, NULL, NULL, 4, hset, NULL, 0);
	free(s);
	(void)rc_send(rc, on_nodes, NULL, 2, hgetall, NULL, 0);
	(void)rc_send(rc, on_groups, NULL, 3, groups, NULL, 0);
	(void)rc_send(rc, on_len, NULL, 2, xlen, NULL, 0);
	xlen[1] = c->k_dead;
	(void)rc_send(rc, on_len, (void *)1, 2, xlen, NULL, 0);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	struct timeval tv = { 0, CL_TICK_MS * 1000 };
	double now = util_mono();

	(void)fd;
	(void)what;
	for (int i = 0; i < RC_COUNT; i++)
		rc_check_timeout(&c->rc[i], now);
	/* Also in the grace period: the entries finishing here stay ours. */
	if (c->ready && !c->cut && now >= c->next_renew) {
		fetch_renew(c);
		c->next_renew = now + (double)c->lease_renew;
	}
	if (c->ready && !c->cut)
		results_trim(c);
	if (c->ready && !c->stopping) {
		heartbeat(c);
		if (now >= c->next_claim) {
			fetch_claim(c);
			c->next_claim = now + (c->claim_idle > 2 ?
			    (double)c->claim_idle / 2 : 1);
		}
		fetch_read(c);
		results_read(c);
	}
	evtimer_add(c->ev_tick, &tv);
}

/* --- life ---------------------------------------------------------------- */

int
cluster_available(void)
{
	return 1;
}

static char *
key_join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 1;
	char *s = malloc(n);

	if (s != NULL)
		snprintf(s, n, "%s%s", a, b);
	return s;
}

/* The first line of path, the password; NULL (logged) when unreadable. */
static char *
read_password(const char *path)
{
	char buf[1024];
	FILE *fp;
	size_t n;

	if ((fp = fopen(path, "re")) == NULL) {
		log_warn("cluster: password file %s", path);
		return NULL;
	}
	if (fgets(buf, sizeof(buf), fp) == NULL)
		buf[0] = '\0';
	fclose(fp);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0) {
		log_warnx("cluster: password file %s is empty", path);
		return NULL;
	}
	return strdup(buf);
}

/* host:port, [v6]:port or a path. 0, or -1 (logged). */
static int
parse_addr(struct cluster *c, const char *addr)
{
	const char *colon;
	char *end;
	long port;

	if (addr[0] == '/')
		return (c->path = strdup(addr)) != NULL ? 0 : -1;
	colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr) {
		log_warnx("cluster.redis: \"%s\" is neither host:port nor an "
		    "absolute socket path", addr);
		return -1;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535) {
		log_warnx("cluster.redis: bad port in \"%s\"", addr);
		return -1;
	}
	c->port = (int)port;
	if (addr[0] == '[' && colon[-1] == ']')
		c->host = strndup(addr + 1, (size_t)(colon - addr - 2));
	else
		c->host = strndup(addr, (size_t)(colon - addr));
	return c->host != NULL ? 0 : -1;
}

/* The node's name: cluster.consumer, or the host name made fit. */
static char *
node_name(const char *configured)
{
	char host[256];

	if (configured != NULL && configured[0] != '\0')
		return strdup(configured);
	if (gethostname(host, sizeof(host) - 1) == -1)
		snprintf(host, sizeof(host), "node");
	host[64] = '\0';
	for (char *p = host; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			*p = '-';
	if (host[0] == '.' || host[0] == '\0')
		host[0] = 'n';
	return strdup(host);
}

static int
cluster_init(struct cluster *c, const struct config *cfg)
{
	size_t want = 16;

	if (parse_addr(c, cfg->cluster_redis) == -1 ||
	    (c->addr = strdup(cfg->cluster_redis)) == NULL ||
	    (c->stream = strdup(cfg->cluster_stream)) == NULL ||
	    (c->group = strdup(cfg->cluster_group)) == NULL ||
	    (c->me = node_name(cfg->cluster_consumer)) == NULL ||
	    (c->download_dir = strdup(cfg->download_dir)) == NULL ||
	    (c->k_prefix = key_join(c->stream, ":results:")) == NULL ||
	    (c->k_results = key_join(c->k_prefix, c->me)) == NULL ||
	    (c->k_dead = key_join(c->stream, ":dead")) == NULL ||
	    (c->k_nodes = key_join(c->stream, ":nodes")) == NULL)
		return -1;
	if (cfg->cluster_password_file[0] != '\0' &&
	    (c->password = read_password(cfg->cluster_password_file)) == NULL)
		return -1;
	c->role = cfg->cluster_role;
	c->claim_idle = cfg->cluster_claim_idle;
	c->lease_renew = cfg->cluster_lease_renew;
	c->max_deliveries = cfg->cluster_max_deliveries;
	c->timeout = cfg->cluster_timeout;
	fetch_params_from_config(&c->params, cfg);
	while (want < (size_t)cfg->cluster_window * 2)
		want *= 2;
	if ((c->hash = calloc(want, sizeof(*c->hash))) == NULL)
		return -1;
	c->hsize = want;
	c->s_length = c->s_pending = c->s_lag = c->s_dead = -1;
	return 0;
}

struct cluster *
cluster_new(struct event_base *base, const struct config *cfg,
    const struct cluster_hooks *hooks, void *arg)
{
	struct timeval now = { 0, 0 };
	struct cluster *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("cluster");
		return NULL;
	}
	c->base = base;
	c->hooks = *hooks;
	c->arg = arg;
	c->seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	c->results_pending = c->entries_pending = 1;
	snprintf(c->results_from, sizeof(c->results_from), "0");
	snprintf(c->entries_from, sizeof(c->entries_from), "0");
	TAILQ_INIT(&c->outs);
	TAILQ_INIT(&c->cancelled);
	TAILQ_INIT(&c->fents);
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->dirs);
	if (cluster_init(c, cfg) == -1)
		goto fail;
	if ((c->ev_tick = evtimer_new(base, tick_cb, c)) == NULL ||
	    (c->ev_flush = evtimer_new(base, flush_cb, c)) == NULL ||
	    (c->ev_cancelled = event_new(base, -1, 0, cancelled_cb, c)) ==
	    NULL)
		goto fail;
	for (int i = 0; i < RC_COUNT; i++) {
		c->rc[i].c = c;
		c->rc[i].which = i;
		c->rc[i].backoff = CL_BACKOFF_MIN;
		if ((c->rc[i].ev_retry = evtimer_new(base, retry_cb,
		    &c->rc[i])) == NULL)
			goto fail;
	}
	if (c->role != CONF_ROLE_FETCH) {
		c->disp = engine_new_ops(&cluster_ops, cfg->cluster_window, cfg,
		    base, hooks->done, arg);
		if (c->disp == NULL)
			goto fail;
		c->disp->priv = c;
	}
	c->down_since = util_mono();
	for (int i = 0; i < RC_COUNT; i++)
		if ((i != RC_ENTRIES || c->role != CONF_ROLE_COORDINATE) &&
		    (i != RC_RESULTS || c->role != CONF_ROLE_FETCH))
			rc_connect(&c->rc[i]);
	evtimer_add(c->ev_tick, &now);
	log_info("cluster: node %s (%s) on Redis at %s, stream %s, group %s",
	    c->me, config_role_name(c->role), c->addr, c->stream, c->group);
	return c;
fail:
	log_warnx("cluster: cannot start");
	cluster_free(c);
	return NULL;
}

void
cluster_free(struct cluster *c)
{
	struct fent *fe;

	if (c == NULL)
		return;
	c->stopping = 1;
	if (c->disp != NULL)
		engine_free(c->disp);
	for (int i = 0; i < RC_COUNT; i++) {
		if (c->rc[i].ac != NULL) {
			redisAsyncContext *ac = c->rc[i].ac;

			c->rc[i].ac = NULL;
			redisAsyncFree(ac);
		}
		if (c->rc[i].ev_retry != NULL)
			event_free(c->rc[i].ev_retry);
	}
	while ((fe = TAILQ_FIRST(&c->fents)) != NULL)
		fent_free(c, fe);
	if (c->ev_tick != NULL)
		event_free(c->ev_tick);
	if (c->ev_flush != NULL)
		event_free(c->ev_flush);
	if (c->ev_cancelled != NULL)
		event_free(c->ev_cancelled);
	json_decref(c->nodes);
	free(c->hash);
	free(c->host);
	free(c->path);
	free(c->addr);
	free(c->password);
	free(c->stream);
	free(c->group);
	free(c->me);
	free(c->k_results);
	free(c->k_prefix);
	free(c->k_dead);
	free(c->k_nodes);
	free(c->download_dir);
	free(c);
}

struct engine *
cluster_dispatcher(struct cluster *c)
{
	return c->disp;
}

void
cluster_set_fetcher(struct cluster *c, struct engine *e)
{
	c->fetcher = c->role == CONF_ROLE_COORDINATE ? NULL : e;
}

int
cluster_owns(const struct transfer *t)
{
	return (t->id & CLUSTER_ID_BIT) != 0;
}

void
cluster_poke(struct cluster *c)
{
	fetch_submit(c);
	fetch_read(c);
}

void
cluster_pause(struct cluster *c, int paused)
{
	c->paused = paused;
	if (!paused)
		cluster_poke(c);
}

void
cluster_set_config(struct cluster *c, const struct config *cfg)
{
	fetch_params_from_config(&c->params, cfg);
}

void
cluster_stop(struct cluster *c)
{
	c->stopping = 1;
}

void
cluster_cut(struct cluster *c)
{
	c->stopping = c->cut = 1;
}

int
cluster_flush(struct cluster *c)
{
	struct timeval tv = { c->timeout, 0 };

	c->stopping = c->cut = 1;
	c->fetcher = NULL;      /* retired */
	if (c->disp != NULL) {
		engine_free(c->disp);
		c->disp = NULL;
	}
	if (c->nresults == 0)
		return 1;
	log_info("cluster: sending %ld result%s before stopping", c->nresults,
	    util_plural((double)c->nresults));
	c->flushing = 1;
	results_send_all(c);
	evtimer_add(c->ev_flush, &tv);
	return 0;
}

long
cluster_fetching(const struct cluster *c)
{
	return c->nrunning;
}

uint64_t
cluster_inflight_bytes(const struct cluster *c)
{
	const struct fent *fe;
	uint64_t n = 0;

	TAILQ_FOREACH(fe, &c->fents, entry)
		if (fe->state == FE_RUNNING)
			n += __atomic_load_n(&fe->t->progress,
			    __ATOMIC_RELAXED);
	return n;
}

static json_t *
opt_int(long long v)
{
	return v < 0 ? json_null() : json_integer(v);
}

json_t *
cluster_json(const struct cluster *c)
{
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:I, s:I, s:I, s:I, "
	    "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "node", c->me, "role", config_role_name(c->role),
	    "redis", c->addr, "state", c->ready ? "up" : "down",
	    "down_seconds", c->down_since == 0 ? 0.0 :
	    util_mono() - c->down_since,
	    "error", c->last_error,
	    "out", (json_int_t)(c->disp != NULL ? c->disp->inflight : 0),
	    "added", (json_int_t)c->added,
	    "readded", (json_int_t)c->readded,
	    "results", (json_int_t)c->results_in,
	    "stale", (json_int_t)c->stale,
	    "fetching", (json_int_t)(c->nrunning + c->nqueued),
	    "results_waiting", (json_int_t)c->nresults,
	    "fetched", (json_int_t)c->fetched_ok,
	    "fetch_failed", (json_int_t)c->fetched_failed,
	    "accepted", (json_int_t)c->accepted,
	    "refused", (json_int_t)c->refused,
	    "claimed", (json_int_t)c->claimed,
	    "lost", (json_int_t)c->renew_lost,
	    "bad_entries", (json_int_t)c->bad_entries,
	    "reconnects", (json_int_t)c->reconnects);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "stream", json_pack("{s:s, s:o, s:o, s:o, s:o}",
	    "key", c->stream, "length", opt_int(c->s_length),
	    "pending", opt_int(c->s_pending), "lag", opt_int(c->s_lag),
	    "dead", opt_int(c->s_dead)));
	json_object_set_new(o, "nodes", c->nodes != NULL ?
	    json_incref(c->nodes) : json_array());
	return o;
}
