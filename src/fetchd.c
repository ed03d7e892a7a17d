/*
 * fetchd.c: the daemon's main: options, wiring, the main loop, teardown.
 *
 * One thread owns all state (jobs, scheduler, spool, stats); it runs one
 * libevent loop for inotify on spool/new, signals (as events), timers and
 * the completions engines hand back. Engines only run transfers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/event.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "cluster.h"
#include "config.h"
#include "control.h"
#include "engine.h"
#include "feed.h"
#include "fetch.h"
#include "jobhook.h"
#include "jobs.h"
#include "log.h"
#include "proto.h"
#include "sched.h"
#include "spool.h"
#include "stats.h"
#include "util.h"
#include "web.h"
#include "worker.h"

#define PENDING_MAX 4096        /* names from inotify waiting for a claim */
#define PENDING_BUCKETS 1024    /* hash chains of the names waiting */
#define RESCAN_MIN_AGE 2        /* s: where the spool cannot tell writers,
                                   a scan leaves younger files alone */
#define DISPATCH_STEP 16        /* URLs read per step while the engine has room */
#define DISPATCH_BATCH 32       /* transfers started per loop turn, at most */

struct old_engine {
	TAILQ_ENTRY(old_engine) entry;
	struct engine *engine;
};
TAILQ_HEAD(old_engine_list, old_engine);

/* A name of new/ waiting for its claim: in the FIFO and in a hash chain,
 * so each name waits (and is announced as queued) once. */
struct pending_name {
	struct pending_name *next;      /* its hash chain */
	char name[];
};

struct daemon {
	const char *cfgpath;
	struct config cfg;
	struct event_base *base;
	struct spool spool;
	struct sched *sched;
	struct jobs *jobs;
	struct engine *engine;
	struct old_engine_list draining;  /* engines replaced by a reload */
	struct stats *stats;
	struct control *control;
	struct web *web;                /* metrics_listen, else NULL */
	struct cluster *cluster;        /* cluster mode, else NULL */
	struct jobhook *jobhook;        /* on_job_done, on_job_done_url */

	struct event *ev_inotify, *ev_rescan, *ev_dispatch, *ev_grace, *ev_reap;
	struct event *ev_sigterm, *ev_sigint, *ev_sighup, *ev_watchdog;

	struct pending_name **pending;  /* job names to claim, FIFO */
	size_t npending, pending_head;
	struct pending_name *pending_index[PENDING_BUCKETS];
	int rescan_wanted;              /* names were dropped or skipped */
	int stopping;
	int flushing;                   /* the cluster sends its results */
	int paused;
	long restarts_retired;          /* children replaced by freed engines */
};

static void dispatch_soon(struct daemon *);

/* Where the jobs' transfers go: the cluster's dispatcher when this node
 * coordinates a cluster, else the local engine. */
static struct engine *
jobs_engine(struct daemon *d)
{
	struct engine *e = d->cluster != NULL ?
	    cluster_dispatcher(d->cluster) : NULL;

	return e != NULL ? e : d->engine;
}

/* A node of role fetch leaves its spool's jobs to coordinating nodes. */
static int
claims_jobs(const struct daemon *d)
{
	return d->cluster == NULL || d->cfg.cluster_role != CONF_ROLE_FETCH;
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: fetchd [-c config] [-t] [-V] [-h]\n"
	    "  -c config  configuration file (default %s)\n"
	    "  -t         check the configuration and exit\n"
	    "  -V         print the version and exit\n"
	    "  -h         this help\n", SYSCONFDIR "/fetchd/fetchd.conf");
}

static void
notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

/* Raise the descriptor limit as far as the hard limit allows: the event
 * engine keeps one socket per transfer. */
static void
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit(RLIMIT_NOFILE)");
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want)
		log_warnx("open file limit %ld is low for %ld transfer%s",
		    (long)rl.rlim_cur, want, util_plural((double)want));
}

/*
 * Events for the control socket's subscribers (feed.h builds them). Each
 * is built only when control says someone wants it: url_done may come
 * thousands of times a second.
 */
static void
publish_queued(struct daemon *d, const char *name)
{
	uint64_t seq;

	if ((seq = control_event_seq(d->control, name, FEED_K_QUEUED)) != 0)
		control_publish(d->control, name, FEED_K_QUEUED,
		    feed_job_queued(seq, util_wall(), name));
}

/* job was claimed (resumed: found in active/ at start); queued_as: its
 * name in new/ when the claim renamed it, whose subscriptions follow. */
static void
publish_claimed(struct daemon *d, const char *job, int resumed,
    const char *queued_as)
{
	uint64_t seq;

	if (queued_as != NULL)
		control_rename(d->control, queued_as, job);
	if ((seq = control_event_seq(d->control, job, FEED_K_CLAIMED)) != 0)
		control_publish(d->control, job, FEED_K_CLAIMED,
		    feed_job_claimed(seq, util_wall(), job, resumed, queued_as));
}

/* A job ended (ji: its counts): its job_done event, and its row among the
 * status page's finished jobs. queued_as as for publish_claimed(), for an
 * entry of new/ rejected under another name. */
static void
publish_done(struct daemon *d, const struct job_info *ji, int failed,
    const char *queued_as)
{
	char result[PATH_MAX];
	uint64_t seq;
	json_t *ev;

	if (queued_as != NULL)
		control_rename(d->control, queued_as, ji->name);
	if ((seq = control_event_seq(d->control, ji->name,
	    FEED_K_JOB_DONE)) == 0 && d->web == NULL)
		return;
	if (spool_result_path(&d->spool, ji->name, failed, result,
	    sizeof(result)) == -1)
		result[0] = '\0';
	web_job_ended(d->web, ji, failed, result);
	if (seq == 0)
		return;
	ev = feed_job_done(seq, util_wall(), ji, failed, result);
	if (ev != NULL && queued_as != NULL)
		json_object_set_new(ev, FEED_QUEUED_AS, json_string(queued_as));
	control_publish(d->control, ji->name, FEED_K_JOB_DONE, ev);
}

static void
progress_cb(const struct job_info *ji, void *arg)
{
	struct daemon *d = arg;

	if (control_wants(d->control, ji->name, FEED_K_PROGRESS))
		control_publish(d->control, ji->name, FEED_K_PROGRESS,
		    feed_progress(ji));
}

/*
 * Claiming. inotify names go into a bounded FIFO; they are claimed while
 * there is room for another active job. When names had to be dropped (or
 * the FIFO was full) a rescan of new/ picks them up later.
 */
static unsigned
pending_hash(const char *s)
{
	unsigned h = 5381;

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h % PENDING_BUCKETS;
}

static int
pending_has(const struct daemon *d, const char *name)
{
	const struct pending_name *p;

	for (p = d->pending_index[pending_hash(name)]; p != NULL; p = p->next)
		if (strcmp(p->name, name) == 0)
			return 1;
	return 0;
}

/*
 * A name seen in new/ (inotify, a scan): to the FIFO unless it waits
 * there already, and announced as queued. An inotify event may be read
 * after a scan found the same entry and it was claimed: one no longer in
 * new/ is left out, so a job is announced queued once.
 */
static void
pending_add(const char *name, void *arg)
{
	struct daemon *d = arg;
	struct pending_name *p;
	size_t n = strlen(name);
	unsigned h;

	if (pending_has(d, name) || spool_in_new(&d->spool, name) == 0)
		return;
	if (d->npending == PENDING_MAX ||
	    (p = malloc(sizeof(*p) + n + 1)) == NULL) {
		d->rescan_wanted = 1;
		return;
	}
	memcpy(p->name, name, n + 1);
	h = pending_hash(name);
	p->next = d->pending_index[h];
	d->pending_index[h] = p;
	d->pending[(d->pending_head + d->npending) % PENDING_MAX] = p;
	d->npending++;
	if (name[0] != '.')     /* never a job: spool_claim leaves it */
		publish_queued(d, name);
}

/* The first name of the FIFO, out of it and of its hash chain. */
static struct pending_name *
pending_take(struct daemon *d)
{
	struct pending_name *p = d->pending[d->pending_head], **pp;

	d->pending[d->pending_head] = NULL;
	d->pending_head = (d->pending_head + 1) % PENDING_MAX;
	d->npending--;
	for (pp = &d->pending_index[pending_hash(p->name)]; *pp != p;
	    pp = &(*pp)->next)
		;
	*pp = p->next;
	return p;
}

/* new/name was rejected into failed/claimed. */
static void
rejected(struct daemon *d, const char *name, const char *claimed)
{
	struct job_info ji;

	log_warnx("%s in new/ rejected; see failed/", name);
	stats_job_finished(d->stats, name, 1);
	memset(&ji, 0, sizeof(ji));
	ji.name = claimed;
	publish_done(d, &ji, 1, strcmp(name, claimed) != 0 ? name : NULL);
	jobhook_rejected(d->jobhook, claimed);
}

static void
claim_names(struct daemon *d, int *failed)
{
	char claimed[SPOOL_NAME_MAX + 16];
	struct pending_name *p;
	const char *name;
	int renamed;

	while (!d->stopping && d->npending > 0 && !jobs_full(d->jobs)) {
		p = pending_take(d);
		name = p->name;
		switch (spool_claim(&d->spool, name, claimed, sizeof(claimed))) {
		case SPOOL_CLAIMED:
			renamed = strcmp(name, claimed) != 0;
			log_info("job %s claimed%s%s", name,
			    renamed ? " as " : "", renamed ? claimed : "");
			publish_claimed(d, claimed, 0, renamed ? name : NULL);
			if (jobs_start(d->jobs, claimed, 0) == -1)
				log_warnx("job %s stays in active/", claimed);
			break;
		case SPOOL_REJECTED:
			rejected(d, name, claimed);
			break;
		case SPOOL_GONE:
			break;
		case SPOOL_ERROR:
			/* Left in new/: the periodic rescan tries again. */
			*failed = 1;
			break;
		}
		free(p);
	}
}

/*
 * Claim what inotify reported while there is room; when names were lost
 * (queue full, overflow, a job slot freed) rescan new/ once. An entry that
 * cannot be claimed waits for the periodic rescan, so a persistent error
 * never spins.
 */
static void
claim_pending(struct daemon *d)
{
	int failed = 0;

	if (!claims_jobs(d))
		return;
	claim_names(d, &failed);
	if (d->rescan_wanted && !failed && !d->stopping &&
	    d->npending == 0 && !jobs_full(d->jobs)) {
		d->rescan_wanted = 0;
		if (spool_scan_new(&d->spool, RESCAN_MIN_AGE, pending_add,
		    d) > 0)
			claim_names(d, &failed);
	}
}

static void
inotify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	int overflow = 0;

	if (spool_watch_read(&d->spool, pending_add, d, &overflow) == -1 ||
	    overflow)
		d->rescan_wanted = 1;
	claim_pending(d);
}

static void
rescan_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { d->cfg.rescan_interval, 0 };

	d->rescan_wanted = 1;
	claim_pending(d);
	evtimer_add(d->ev_rescan, &tv);
}

/* Hand ready transfers to the engine while it has room, at most max. How
 * many. */
static size_t
submit_ready(struct daemon *d, size_t max)
{
	struct transfer *t;
	size_t n = 0;

	while (n < max && !d->paused && engine_has_room(jobs_engine(d)) &&
	    (t = sched_pop(d->sched)) != NULL) {
		t->progress = 0;
		if (engine_submit(jobs_engine(d), t) == -1) {
			sched_release(d->sched, t);
			if (sched_push(d->sched, t) == -1)
				fatalx("cannot put a transfer back");
			break;
		}
		n++;
	}
	return n;
}

/*
 * Dispatch: hand ready transfers to the engine, reading more URLs from the
 * jobs in small steps while it has room (so the first requests of a new job
 * leave before the rest of its window is read), then top the scheduler up
 * to its budget.
 *
 * At most DISPATCH_BATCH transfers start per call. When the engine has
 * room for more (a new job on an idle daemon with a large count), the rest
 * start from a zero timeout, after the loop has polled: the connections
 * made so far send their requests while the next batch connects, instead
 * of every request waiting for the last connect (1,000 connects take about
 * 0.1 s here).
 */
static void
dispatch_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct daemon *d = arg;
	size_t n;

	struct engine *e = jobs_engine(d);

	if (d->stopping)
		return;
	if (d->cluster != NULL && !d->paused)
		cluster_poke(d->cluster);
	n = submit_ready(d, DISPATCH_BATCH);
	while (n < DISPATCH_BATCH && !d->paused && engine_has_room(e) &&
	    jobs_refill(d->jobs, jobs_live(d->jobs) + DISPATCH_STEP,
	    engine_workers(e)) > 0)
		n += submit_ready(d, DISPATCH_BATCH - n);
	if (n >= DISPATCH_BATCH && !d->paused && engine_has_room(e))
		evtimer_add(d->ev_dispatch, &now);
	else
		jobs_refill(d->jobs, jobs_budget(engine_workers(e)),
		    engine_workers(e));
	claim_pending(d);
}

static void
dispatch_soon(struct daemon *d)
{
	if (!d->stopping)
		event_active(d->ev_dispatch, 0, 0);
}

static void
hook_work_ready(void *arg)
{
	dispatch_soon(arg);
}

static void
hook_transfer_final(const struct transfer *t, void *arg)
{
	struct daemon *d = arg;
	const char *job;
	uint64_t seq;

	stats_transfer_final(d->stats, t);
	web_transfer(d->web, t, 1);
	job = jobs_transfer_job(t);
	if ((seq = control_event_seq(d->control, job, FEED_K_URL_DONE)) != 0)
		control_publish(d->control, job, FEED_K_URL_DONE,
		    feed_url_done(seq, util_wall(), job, t, d->cluster == NULL ?
		    NULL : t->node != NULL ? t->node : ""));
}

static void
hook_transfer_retry(const struct transfer *t, void *arg)
{
	struct daemon *d = arg;

	stats_transfer_retry(d->stats, t);
	web_transfer(d->web, t, 0);
}

static void
hook_job_finished(const struct job_info *ji, int failed, void *arg)
{
	struct daemon *d = arg;

	stats_job_finished(d->stats, ji->name, failed);
	jobhook_ended(d->jobhook, ji->name, failed);
	publish_done(d, ji, failed, NULL);
	/* A slot for another job: there may be names we could not take. */
	d->rescan_wanted = 1;
	dispatch_soon(d);
}

/* Before the job leaves active/: its hooks' record, with its counts. */
static void
hook_job_ending(const struct job_info *ji, int failed, void *arg)
{
	struct daemon *d = arg;
	struct jobhook_counts c = { ji->urls, ji->done, ji->failed,
		ji->bytes };

	jobhook_ending(d->jobhook, ji->name, failed, &c);
}

/* Free an engine, keeping its count of replaced children for the stats
 * (a counter must not go down when an engine is switched away). */
static void
engine_retire(struct daemon *d, struct engine *e)
{
	struct engine_stats es;

	if (e == NULL)
		return;
	engine_get_stats(e, &es);
	d->restarts_retired += es.restarts;
	engine_free(e);
}

static void
stop_now(struct daemon *d)
{
	struct old_engine *oe;
	struct engine *e = d->engine;

	if (d->ev_grace != NULL)
		evtimer_del(d->ev_grace);
	if (d->flushing) {      /* another signal: no more waiting */
		event_base_loopbreak(d->base);
		return;
	}
	jobs_stop(d->jobs);
	if (d->cluster != NULL)
		cluster_cut(d->cluster);
	/* Detached first: the last transfer coming back while the engines
	 * stop must not schedule another stop (transfer_done). */
	d->engine = NULL;
	while ((oe = TAILQ_FIRST(&d->draining)) != NULL) {
		TAILQ_REMOVE(&d->draining, oe, entry);
		engine_retire(d, oe->engine);
		free(oe);
	}
	engine_retire(d, e);
	/*
	 * After the local engine: its fetch-side transfers are back. The
	 * dispatcher's come back now, not recorded (jobs_stop), and the
	 * results of the transfers that ended here reach Redis before the
	 * loop ends (cluster_flushed); else their entries would be fetched
	 * again by another node. The cluster is freed after the loop.
	 */
	if (d->cluster != NULL && cluster_flush(d->cluster) == 0) {
		d->flushing = 1;
		return;
	}
	event_base_loopbreak(d->base);
}

static long
inflight_total(struct daemon *d)
{
	struct old_engine *oe;
	long n = d->engine != NULL ? d->engine->inflight : 0;

	if (d->cluster != NULL && jobs_engine(d) != d->engine)
		n += jobs_engine(d)->inflight;
	TAILQ_FOREACH(oe, &d->draining, entry)
		n += oe->engine->inflight;
	return n;
}

/* Engines replaced by a reload are freed once their last transfer is in. */
static void
reap_drained(struct daemon *d)
{
	struct old_engine *oe, *next;

	for (oe = TAILQ_FIRST(&d->draining); oe != NULL; oe = next) {
		next = TAILQ_NEXT(oe, entry);
		if (oe->engine->inflight > 0)
			continue;
		log_info("%s engine drained", oe->engine->ops->name);
		TAILQ_REMOVE(&d->draining, oe, entry);
		engine_retire(d, oe->engine);
		free(oe);
	}
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	reap_drained(arg);
}

/* Completion of any engine, on the main loop. */
static void
transfer_done(struct transfer *t, void *arg)
{
	static const struct timeval now = { 0, 0 };
	struct daemon *d = arg;

	stats_attempt(d->stats, t);
	t->progress = 0;        /* counted: the rate sampler must not see it */
	if (cluster_owns(t))
		cluster_fetched(d->cluster, t);
	else {
		sched_release(d->sched, t);
		jobs_transfer_done(d->jobs, t);
	}
	/* Not here: we are inside the engine's own completion loop. */
	if (!TAILQ_EMPTY(&d->draining) && !d->stopping)
		event_active(d->ev_reap, 0, 0);
	if (d->stopping) {
		/* stop_now() from the loop, not inside the engine's own
		 * completion loop: the grace period ends at once. */
		if (inflight_total(d) == 0 && d->engine != NULL) {
			log_info("every transfer is in; stopping");
			evtimer_add(d->ev_grace, &now);
		}
		return;
	}
	/*
	 * Deferred to the end of this loop turn, once the engine has handed
	 * back every completion the poll returned: the freed slots are then
	 * filled together and their requests leave in one burst. One burst
	 * wakes a server waiting for work once; a request sent after each
	 * completion woke it once per request, and where the server shares
	 * the host (loopback), on a virtual machine above all, the sender
	 * pays for that wake-up, which can cost more than the request.
	 */
	dispatch_soon(d);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	if (inflight_total(d) > 0)
		log_info("grace period over: stopping %ld transfer%s (their "
		    ".part files are kept for resume)", inflight_total(d),
		    util_plural((double)inflight_total(d)));
	stop_now(d);
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { d->cfg.shutdown_grace, 0 };
	struct old_engine *oe;

	if (d->stopping) {
		log_info("second signal: stopping now");
		stop_now(d);
		return;
	}
	notify("STOPPING=1");
	d->stopping = 1;
	log_info("signal %d: stopping; %ld transfer%s in flight, grace %lds",
	    (int)sig, inflight_total(d),
	    util_plural((double)inflight_total(d)), d->cfg.shutdown_grace);
	if (d->ev_inotify != NULL)
		event_del(d->ev_inotify);
	evtimer_del(d->ev_rescan);
	if (d->cluster != NULL)
		cluster_stop(d->cluster);
	engine_drain(d->engine);
	TAILQ_FOREACH(oe, &d->draining, entry)
		engine_drain(oe->engine);
	if (inflight_total(d) == 0)
		tv.tv_sec = 0;  /* nothing to wait for: stop_now() at once */
	evtimer_add(d->ev_grace, &tv);
}

/*
 * Reload hooks: what a changed live option sets in motion (config.h,
 * struct config_hooks). d->cfg already holds the new values when they run.
 */

/*
 * A changed model or count starts a new engine for new work while the old
 * one drains. The only hook that can fail, and the first to run: when the
 * engine cannot start, nothing has changed yet.
 */
static int
apply_engine(const struct config *old, const struct config *cur, void *arg,
    char *err, size_t errlen)
{
	struct daemon *d = arg;
	struct old_engine *oe;
	struct engine *ne;

	if ((ne = engine_new(cur->model, cur, d->base, transfer_done, d)) ==
	    NULL) {
		snprintf(err, errlen, "cannot start the %s engine; keeping "
		    "the running configuration", engine_model_name(cur->model));
		return -1;
	}
	if ((oe = calloc(1, sizeof(*oe))) == NULL)
		fatal("reload");
	log_info("switching engine: %s x%ld -> %s x%ld", d->engine->ops->name,
	    engine_workers(d->engine), ne->ops->name, engine_workers(ne));
	engine_drain(d->engine);
	oe->engine = d->engine;
	TAILQ_INSERT_TAIL(&d->draining, oe, entry);
	d->engine = ne;
	if (d->cluster != NULL)
		cluster_set_fetcher(d->cluster, ne);
	return 0;
}

static int
apply_log(const struct config *old, const struct config *cur, void *arg,
    char *err, size_t errlen)
{
	log_setlevel(cur->log_level);
	return 0;
}

/* The scheduler is the one owner of per_host (engines do not cap hosts). */
static int
apply_sched(const struct config *old, const struct config *cur, void *arg,
    char *err, size_t errlen)
{
	struct daemon *d = arg;

	sched_set_per_host(d->sched, cur->per_host);
	return 0;
}

/* The next rescan comes one new interval from now, not one old one. */
static int
apply_rescan(const struct config *old, const struct config *cur, void *arg,
    char *err, size_t errlen)
{
	struct daemon *d = arg;
	struct timeval tv = { cur->rescan_interval, 0 };

	evtimer_add(d->ev_rescan, &tv);
	return 0;
}

static int
apply_jobs(const struct config *old, const struct config *cur, void *arg,
    char *err, size_t errlen)
{
	struct daemon *d = arg;

	jobs_set_config(d->jobs, &d->cfg);
	if (d->cluster != NULL)
		cluster_set_config(d->cluster, &d->cfg);
	return 0;
}

static const struct config_hooks reload_hooks = {
	.apply = {
		[CONF_APPLY_ENGINE] = apply_engine,
		[CONF_APPLY_LOG] = apply_log,
		[CONF_APPLY_SCHED] = apply_sched,
		[CONF_APPLY_RESCAN] = apply_rescan,
		[CONF_APPLY_JOBS] = apply_jobs,
	},
};

/* A restart-only option the new file changed: named in the reply. */
static void
note_restart(const struct config_option *opt, void *arg)
{
	json_t *names = arg;
	char name[128];

	snprintf(name, sizeof(name), "%s.%s", opt->section, opt->key);
	json_array_append_new(names, json_string(name));
}

/* Say what a reload that went through left for the next start. */
static void
log_restart_needed(json_t *names, json_t *restart)
{
	json_t *v;
	size_t i;

	json_array_foreach(names, i, v)
		log_warnx("reload: %s changed; it takes effect at the next "
		    "start (running value kept)", json_string_value(v));
	if (restart != NULL)
		json_array_extend(restart, names);
}

/*
 * SIGHUP and `reload`: read the file again. A bad file changes nothing.
 * Restart-only options keep their running values (their names are added
 * to restart when it is not NULL); live ones are taken and acted on
 * through reload_hooks. 0, or -1 with the reason in err.
 */
static int
reload(struct daemon *d, json_t *restart, char *err, size_t errlen)
{
	struct config nc, old;
	json_t *names;

	if (d->stopping) {
		snprintf(err, errlen, "fetchd is stopping");
		return -1;
	}
	notify("RELOADING=1");
	if (config_load(d->cfgpath, &nc, err, errlen) == -1) {
		log_warnx("reload: %s; keeping the running configuration", err);
		goto refused;
	}
	if ((names = json_array()) == NULL ||
	    config_keep_restart(&nc, &d->cfg, note_restart, names) == -1) {
		json_decref(names);
		config_free(&nc);
		snprintf(err, errlen, "out of memory");
		log_warnx("reload: %s", err);
		goto refused;
	}
	old = d->cfg;
	d->cfg = nc;
	if (config_apply(&old, &d->cfg, &reload_hooks, d, err, errlen) == -1) {
		config_free(&d->cfg);
		d->cfg = old;
		json_decref(names);
		log_warnx("reload: %s", err);
		goto refused;
	}
	config_free(&old);
	log_restart_needed(names, restart);
	json_decref(names);
	log_info("configuration reloaded from %s", d->cfgpath);
	notify("READY=1");
	reap_drained(d);
	dispatch_soon(d);
	return 0;
refused:
	notify("READY=1");
	return -1;
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	char err[1024];

	(void)reload(arg, NULL, err, sizeof(err));
}

static uint64_t inflight_bytes(void *arg);

/*
 * The control socket's commands and the stats the daemon feeds.
 */

/* The running engine's worker count, the workers busy in it and in the
 * engines still draining; returns their children restarted. */
static long
workers_now(struct daemon *d, long *workers, long *busy)
{
	struct engine_stats es;
	struct old_engine *oe;
	long restarts = 0;

	*workers = *busy = 0;
	if (d->engine != NULL) {
		engine_get_stats(d->engine, &es);
		*workers = es.workers;
		*busy = es.busy;
		restarts += es.restarts;
	}
	TAILQ_FOREACH(oe, &d->draining, entry) {
		engine_get_stats(oe->engine, &es);
		*busy += es.busy;
		restarts += es.restarts;
	}
	return restarts;
}

static json_t *
ctl_stats(void *arg)
{
	struct daemon *d = arg;
	struct stats_live lv;
	double now = stats_now();
	json_t *st;

	memset(&lv, 0, sizeof(lv));
	lv.model = engine_model_name(d->cfg.model);
	lv.children_restarted = d->restarts_retired;
	lv.paused = d->paused;
	if (d->engine != NULL)
		lv.model = d->engine->ops->name;
	lv.children_restarted += workers_now(d, &lv.workers, &lv.workers_busy);
	lv.jobs_queued = stats_count_queued(d->stats, &d->spool, now);
	lv.jobs_active = (long)jobs_count(d->jobs);
	lv.jobs_waiting = (long)jobs_waiting(d->jobs);
	lv.spool_error = jobs_last_error(d->jobs);
	lv.transfers_queued = (long)(sched_ready(d->sched) +
	    sched_waiting(d->sched));
	lv.transfers_active = inflight_total(d);
	lv.inflight_bytes = inflight_bytes(d);
	st = stats_json(d->stats, &lv, now);
	if (st != NULL)
		json_object_set_new(st, "control", control_json(d->control));
	if (st != NULL && d->cluster != NULL)
		json_object_set_new(st, "cluster", cluster_json(d->cluster));
	return st;
}

static json_t *
ctl_jobs(void *arg)
{
	struct daemon *d = arg;

	return stats_jobs_json(d->stats, d->jobs, &d->spool);
}

static void
ctl_pause(void *arg, int paused)
{
	struct daemon *d = arg;

	if (d->paused != paused)
		log_info("%s from the control socket", paused ?
		    "paused: no new transfers start" : "resumed");
	d->paused = paused;
	if (d->cluster != NULL)
		cluster_pause(d->cluster, paused);
	if (!paused)
		dispatch_soon(d);
}

static int
ctl_paused(void *arg)
{
	struct daemon *d = arg;

	return d->paused;
}

/* Through the engine that owns t: the current one or one still draining
 * after a switch. */
static void
cancel_transfer(struct transfer *t, void *arg)
{
	engine_cancel(t);
}

static int
ctl_cancel(void *arg, const char *job)
{
	struct daemon *d = arg;

	if (d->stopping || jobs_cancel(d->jobs, job, cancel_transfer, d) == -1)
		return -1;
	dispatch_soon(d);
	return 0;
}

static int
ctl_reload(void *arg, json_t *restart, char *err, size_t errlen)
{
	return reload(arg, restart, err, errlen);
}

/*
 * Where job is: claimed (*ji filled, 1), else the spool's directory that
 * holds it (0), its result's path in result when it ended. The state: a
 * FEED_STATE_* word.
 */
static int
job_where(struct daemon *d, const char *job, struct job_info *ji,
    const char **state, char *result, size_t len)
{
	enum spool_place at;

	result[0] = '\0';
	if (d->jobs != NULL && jobs_info(d->jobs, job, ji) == 0) {
		*state = FEED_STATE_ACTIVE;
		return 1;
	}
	at = spool_where(&d->spool, job);
	*state = at == SPOOL_IN_ACTIVE ? FEED_STATE_ACTIVE :
	    at == SPOOL_IN_NEW ? FEED_STATE_QUEUED :
	    at == SPOOL_IN_DONE ? FEED_STATE_DONE :
	    at == SPOOL_IN_FAILED ? FEED_STATE_FAILED : FEED_STATE_UNKNOWN;
	if ((at == SPOOL_IN_DONE || at == SPOOL_IN_FAILED) &&
	    spool_result_path(&d->spool, job, at == SPOOL_IN_FAILED, result,
	    len) == -1)
		result[0] = '\0';
	return 0;
}

static json_t *
ctl_job_snapshot(void *arg, const char *job)
{
	struct job_info ji;
	const char *state;
	char result[PATH_MAX];
	int active;

	active = job_where(arg, job, &ji, &state, result, sizeof(result));
	return feed_snapshot(job, state, active ? &ji : NULL,
	    result[0] != '\0' ? result : NULL);
}

/* An entry of active/ that is not among the jobs (memory ran out when it
 * was set up; it is started again later) is waiting. */
static json_t *
ctl_job_detail(void *arg, const char *job)
{
	struct job_info ji;
	const char *state;
	char result[PATH_MAX];

	if (job_where(arg, job, &ji, &state, result, sizeof(result)))
		return feed_detail(job, ji.state, &ji, NULL);
	if (strcmp(state, FEED_STATE_UNKNOWN) == 0)
		return json_null();
	if (strcmp(state, FEED_STATE_ACTIVE) == 0)
		state = "waiting";
	return feed_detail(job, state, NULL, result[0] != '\0' ? result :
	    NULL);
}

static uint64_t
inflight_bytes(void *arg)
{
	struct daemon *d = arg;

	return (d->jobs != NULL ? jobs_inflight_bytes(d->jobs) : 0) +
	    (d->cluster != NULL ? cluster_inflight_bytes(d->cluster) : 0);
}

/* This node's status as the other nodes of a cluster see it. */
static void
cluster_status(json_t *o, void *arg)
{
	struct daemon *d = arg;
	struct engine_stats es;
	double bps = 0, ups = 0;

	stats_rate(d->stats, 10, &bps, &ups);
	json_object_set_new(o, "bytes_per_s", json_real(bps));
	if (d->engine == NULL)
		return;
	engine_get_stats(d->engine, &es);
	json_object_set_new(o, "model", json_string(d->engine->ops->name));
	json_object_set_new(o, "workers", json_integer(es.workers));
	json_object_set_new(o, "busy", json_integer(es.busy));
}

/* The cluster's results are sent (stop_now): the loop may end. */
static void
cluster_flushed(void *arg)
{
	struct daemon *d = arg;

	event_base_loopbreak(d->base);
}

/* The cluster's dispatcher is back (Redis reachable again). */
static void
cluster_wake(void *arg)
{
	dispatch_soon(arg);
}

/*
 * Every second, after the rate sample: the jobs' own rate samples, the
 * progress lines of `wait` subscribers, the service manager's status.
 */
static void
status_tick(void *arg)
{
	struct daemon *d = arg;
	char line[480], status[512];
	json_t *st;

	if (d->jobs != NULL) {
		jobs_sample(d->jobs, stats_now());
		if (control_waiting(d->control))
			jobs_foreach(d->jobs, progress_cb, d);
	}
	if (getenv("NOTIFY_SOCKET") == NULL || d->stopping ||
	    d->jobs == NULL || (st = ctl_stats(d)) == NULL)
		return;
	proto_status_line(st, line, sizeof(line));
	json_decref(st);
	snprintf(status, sizeof(status), "STATUS=%s", line);
	notify(status);
}

#ifdef HAVE_SYSTEMD
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify("WATCHDOG=1");
}
#endif

static int
check_config(const char *path)
{
	struct config cfg;
	char err[1024];

	if (config_load(path, &cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	config_free(&cfg);
	printf("fetchd: the configuration file %s syntax is ok\n"
	    "fetchd: configuration file %s test is successful\n", path, path);
	return 0;
}

static void
recover_cb(const char *job, void *arg)
{
	struct daemon *d = arg;

	log_info("job %s: resuming", job);
	publish_claimed(d, job, 1, NULL);
	if (jobs_start(d->jobs, job, 1) == -1)
		log_warnx("job %s: cannot resume; left in active/", job);
}

static int
make_dir(const char *path)
{
	if (mkdir(path, 0750) == -1 && errno != EEXIST) {
		log_warn("%s", path);
		return -1;
	}
	return 0;
}

/*
 * The epoll changelist folds the interest changes made to a socket within
 * one loop turn into one epoll_ctl (libcurl watches a new connection for
 * writing, then for reading once its request is sent, often in the same
 * turn). Its one caveat, dup()ed descriptors, does not apply: no
 * descriptor the loop watches is a dup of another.
 */
static struct event_base *
base_new(void)
{
	struct event_config *ecfg;
	struct event_base *base;

	if ((ecfg = event_config_new()) == NULL)
		fatalx("event_config_new");
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (base == NULL)
		fatalx("event_base_new");
	return base;
}

/* Open the spool and hold its lock. 0 or -1 (logged). */
static int
spool_take(struct daemon *d)
{
	char err[1024];

	if (spool_open(&d->spool, d->cfg.spool_dir, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		return -1;
	}
	/* One daemon per spool: a second one would claim the same jobs. */
	if (flock(d->spool.rootfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			log_errorx("another fetchd is already using the spool "
			    "%s", d->cfg.spool_dir);
		else
			log_error("flock %s", d->cfg.spool_dir);
		return -1;
	}
	return 0;
}

/* Cluster mode when cluster.redis is set. 0 or -1 (logged). */
static int
cluster_start(struct daemon *d)
{
	static const struct cluster_hooks hooks = {
		.done = transfer_done,
		.wake = cluster_wake,
		.status = cluster_status,
		.flushed = cluster_flushed,
	};

	if (d->cfg.cluster_redis[0] == '\0')
		return 0;
	if ((d->cluster = cluster_new(d->base, &d->cfg, &hooks, d)) == NULL)
		return -1;
	cluster_set_fetcher(d->cluster, d->engine);
	if (!claims_jobs(d))
		log_info("role fetch: jobs dropped into this spool wait for "
		    "a node that coordinates");
	return 0;
}

/* The scheduler, the jobs and the engine. 0 or -1 (logged). */
static int
workers_start(struct daemon *d)
{
	static const struct jobs_hooks hooks = {
		.transfer_final = hook_transfer_final,
		.transfer_retry = hook_transfer_retry,
		.work_ready = hook_work_ready,
		.job_finished = hook_job_finished,
		.job_ending = hook_job_ending,
	};

	if ((d->pending = calloc(PENDING_MAX, sizeof(*d->pending))) == NULL)
		fatal("calloc");
	if ((d->jobhook = jobhook_new(d->base, &d->spool, &d->cfg)) == NULL)
		return -1;
	d->sched = sched_new(d->base, d->cfg.per_host, hook_work_ready, d);
	d->jobs = jobs_new(d->base, &d->spool, d->sched, &d->cfg, &hooks, d);
	if (d->sched == NULL || d->jobs == NULL)
		fatalx("out of memory");
	d->engine = engine_new(d->cfg.model, &d->cfg, d->base, transfer_done,
	    d);
	if (d->engine == NULL)
		return -1;
	return cluster_start(d);
}

static void
events_add(struct daemon *d)
{
	d->ev_dispatch = event_new(d->base, -1, 0, dispatch_cb, d);
	d->ev_reap = event_new(d->base, -1, 0, reap_cb, d);
	d->ev_rescan = evtimer_new(d->base, rescan_cb, d);
	d->ev_grace = evtimer_new(d->base, grace_cb, d);
	d->ev_sigterm = evsignal_new(d->base, SIGTERM, sigterm_cb, d);
	d->ev_sigint = evsignal_new(d->base, SIGINT, sigterm_cb, d);
	d->ev_sighup = evsignal_new(d->base, SIGHUP, sighup_cb, d);
	if (d->ev_dispatch == NULL || d->ev_reap == NULL ||
	    d->ev_rescan == NULL ||
	    d->ev_grace == NULL || d->ev_sigterm == NULL ||
	    d->ev_sigint == NULL || d->ev_sighup == NULL ||
	    event_add(d->ev_sigterm, NULL) == -1 ||
	    event_add(d->ev_sigint, NULL) == -1 ||
	    event_add(d->ev_sighup, NULL) == -1)
		fatalx("cannot set up events");
}

/*
 * Watch new/, then scan it: a job renamed in before the watch is set is
 * found by the scan, one renamed in after it is reported by inotify, so
 * none waits for a rescan. The scan takes every entry that no process has
 * open for writing (spool_scan_new); only where the spool cannot tell, an
 * entry younger than RESCAN_MIN_AGE waits for the first rescan, that long
 * after start.
 */
static void
new_watch_and_scan(struct daemon *d)
{
	struct timeval tv = { RESCAN_MIN_AGE, 0 };
	int fd;

	if ((fd = spool_watch(&d->spool)) == -1) {
		log_warnx("no inotify watch on new/; relying on rescans every "
		    "%lds", d->cfg.rescan_interval);
	} else {
		d->ev_inotify = event_new(d->base, fd, EV_READ | EV_PERSIST,
		    inotify_cb, d);
		if (d->ev_inotify == NULL ||
		    event_add(d->ev_inotify, NULL) == -1)
			fatalx("cannot watch the spool");
	}
	if (spool_scan_new(&d->spool, RESCAN_MIN_AGE, pending_add, d) == -1)
		log_warnx("cannot scan %s/new", d->cfg.spool_dir);
	evtimer_add(d->ev_rescan, &tv);
}

/* The control socket. 0 or -1 (logged). */
static int
control_start(struct daemon *d)
{
	static const struct control_hooks chooks = {
		.stats = ctl_stats,
		.jobs = ctl_jobs,
		.pause = ctl_pause,
		.paused = ctl_paused,
		.cancel = ctl_cancel,
		.reload = ctl_reload,
		.job_snapshot = ctl_job_snapshot,
		.job_detail = ctl_job_detail,
	};
	char err[1024];

	d->control = control_new(d->base, d->cfg.socket_path,
	    d->cfg.socket_mode, &chooks, d, err, sizeof(err));
	if (d->control == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	return 0;
}

/* The active jobs of /jobs.json in detail (rate, ETA, their last
 * errors), so the page needs one request a second for every job. */
static void
web_job_cb(const struct job_info *ji, void *arg)
{
	json_array_append_new(arg, feed_detail(ji->name, ji->state, ji, NULL));
}

static json_t *
web_jobs(void *arg)
{
	struct daemon *d = arg;
	json_t *o = ctl_jobs(d), *active = json_array();

	if (o == NULL || active == NULL) {
		json_decref(o);
		json_decref(active);
		return NULL;
	}
	if (d->jobs != NULL)
		jobs_foreach(d->jobs, web_job_cb, active);
	json_object_set_new(o, "active", active);
	return o;
}

static void
web_sample(void *arg, struct web_sample *s)
{
	struct daemon *d = arg;

	stats_rate(d->stats, 1, &s->bps, &s->ups);
	s->active = inflight_total(d);
	(void)workers_now(d, &s->workers, &s->busy);
}

/* The status page, /metrics and their JSON, when metrics_listen is set.
 * 0 or -1 (logged). */
static int
web_start(struct daemon *d)
{
	static const struct web_hooks whooks = {
		.stats = ctl_stats,
		.jobs = web_jobs,
		.job_detail = ctl_job_detail,
		.sample = web_sample,
	};
	char err[1024];

	if (d->cfg.metrics_listen[0] == '\0')
		return 0;
	if ((d->web = web_new(d->base, d->cfg.metrics_listen, &whooks, d, err,
	    sizeof(err))) == NULL) {
		log_errorx("%s", err);
		return -1;
	}
	return 0;
}

static void
watchdog_start(struct daemon *d)
{
#ifdef HAVE_SYSTEMD
	struct timeval tv;
	uint64_t wd_usec;

	if (sd_watchdog_enabled(0, &wd_usec) > 0) {
		d->ev_watchdog = event_new(d->base, -1, EV_PERSIST,
		    watchdog_cb, d);
		tv.tv_sec = wd_usec / 2 / 1000000;
		tv.tv_usec = wd_usec / 2 % 1000000;
		if (d->ev_watchdog != NULL)
			event_add(d->ev_watchdog, &tv);
	}
#else
	(void)d;
#endif
}

/*
 * Start-up order: recovery (jobs left in active/ by the last run), then
 * new/ watched and scanned, and only then the control socket bound and
 * READY sent, so that whoever waits for the socket or READY finds every
 * job that reached new/ before it already claimed.
 */
static int
daemon_run(struct daemon *d)
{
	raise_nofile(d->cfg.count + CONTROL_CLIENTS_MAX + 64);
	d->base = base_new();
	if (spool_take(d) == -1)
		return -1;
	if ((d->stats = stats_new(d->base, inflight_bytes, status_tick, d)) ==
	    NULL)
		fatalx("out of memory");
	if (make_dir(d->cfg.download_dir) == -1 || workers_start(d) == -1)
		return -1;
	events_add(d);
	if (spool_recover(&d->spool, recover_cb, d) == -1)
		log_warnx("recovery of %s/active failed", d->cfg.spool_dir);
	if (jobhook_recover(d->jobhook) == -1)
		log_warnx("recovery of %s/hooks failed", d->cfg.spool_dir);
	new_watch_and_scan(d);
	if (control_start(d) == -1 || web_start(d) == -1) {
		stop_now(d);
		return -1;
	}
	watchdog_start(d);
	log_info("ready: model %s, %ld worker%s, per_host %ld, spool %s",
	    d->engine->ops->name, engine_workers(d->engine),
	    util_plural((double)engine_workers(d->engine)), d->cfg.per_host,
	    d->cfg.spool_dir);
	notify("READY=1");
	claim_pending(d);
	dispatch_soon(d);

	if (event_base_dispatch(d->base) == -1)
		log_warnx("event loop failed");
	if (d->engine != NULL)
		stop_now(d);
	return 0;
}

static void
daemon_teardown(struct daemon *d)
{
	struct event *evs[] = { d->ev_inotify, d->ev_rescan, d->ev_dispatch,
		d->ev_reap,
		d->ev_grace, d->ev_sigterm, d->ev_sigint, d->ev_sighup,
		d->ev_watchdog };
	size_t i;

	/* After the loop: never from inside one of hiredis's callbacks. */
	cluster_free(d->cluster);
	d->cluster = NULL;
	web_free(d->web);
	d->web = NULL;
	control_free(d->control);
	d->control = NULL;
	sched_free(d->sched);
	jobs_free(d->jobs);
	jobhook_free(d->jobhook);
	for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i] != NULL)
			event_free(evs[i]);
	if (d->pending != NULL) {
		for (i = 0; i < PENDING_MAX; i++)
			free(d->pending[i]);
		free(d->pending);
	}
	if (d->spool.root != NULL)
		spool_close(&d->spool);
	stats_free(d->stats);
	if (d->base != NULL)
		event_base_free(d->base);
	config_free(&d->cfg);
}

int
main(int argc, char *argv[])
{
	struct daemon d;
	char err[1024];
	int ch, test = 0, rc, fd;

	/* The process engine's workers are this binary too (worker.h). */
	if (worker_cmdline(argc, argv, &fd))
		return worker_main(fd);
	if (jobhook_post_cmdline(argc, argv))
		return jobhook_post_main();
	memset(&d, 0, sizeof(d));
	TAILQ_INIT(&d.draining);
	d.cfgpath = SYSCONFDIR "/fetchd/fetchd.conf";
	while ((ch = getopt(argc, argv, "c:tVh")) != -1) {
		switch (ch) {
		case 'c':
			d.cfgpath = optarg;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("fetchd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (test)
		return check_config(d.cfgpath);

	log_init("fetchd", LOG_LVL_INFO);
	if (config_load(d.cfgpath, &d.cfg, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		return 1;
	}
	log_setlevel(d.cfg.log_level);
	signal(SIGPIPE, SIG_IGN);
	/* spool_scan_new() holds a file lease for an instant; a writer opening
	 * the file in that instant makes the kernel send us SIGIO. */
	signal(SIGIO, SIG_IGN);
	if (fetch_global_init() == -1)
		fatalx("libcurl initialisation failed");
	rc = daemon_run(&d) == 0 ? 0 : 1;
	daemon_teardown(&d);
	fetch_global_cleanup();
	if (rc == 0)
		log_info("stopped");
	return rc;
}
