/*
 * engine.h: the three concurrency models behind one table of functions.
 *
 * An engine only executes transfers. It takes one with submit() (main loop
 * only), runs it with fetch.c, and hands it back through done() on the main
 * loop. It never touches the spool, the scheduler or the stats. A transfer
 * belongs to the engine from submit() until done() is called for it.
 */
#ifndef FETCHD_ENGINE_H
#define FETCHD_ENGINE_H

#include <event2/event.h>

#include "config.h"
#include "fetch.h"

struct engine;

struct engine_stats {
	long workers;           /* engine_workers(): threads, slots, children */
	long busy;              /* running a transfer now */
	long restarts;          /* children replaced after dying (process) */
};

struct engine_ops {
	/* The model's name as workers.model spells it; written nowhere else. */
	const char *name;
	/* Optional: how many workers this engine can run when wanted are
	 * asked for. Each engine fits them to the open file limit through
	 * engine_fit_nofile() with its own ENGINE_FDS_* below. */
	long (*fit)(long wanted);
	int (*start)(struct engine *, const struct config *, struct event_base *);
	int (*submit)(struct engine *, struct transfer *);
	void (*cancel)(struct engine *, struct transfer *);
	void (*drain)(struct engine *);
	void (*stop)(struct engine *);
	void (*stats)(struct engine *, struct engine_stats *);
};

struct engine {
	const struct engine_ops *ops;
	void *priv;
	/* The workers it runs: workers.count as ops->fit() left it. Set once,
	 * by engine_new() before start(); engines and callers read it through
	 * engine_workers(), never cfg->count. */
	long count;
	long inflight;                  /* submitted and not yet done */
	int draining;
	/* Completion, always called on the main loop. */
	void (*done)(struct transfer *, void *);
	void *done_arg;
};

/*
 * Descriptors, for fitting workers.count to RLIMIT_NOFILE. The daemon's
 * own (spool, event loop, inotify, control connections, the files of up
 * to JOBS_ACTIVE_MAX jobs) are ENGINE_FDS_DAEMON, but at most half of a
 * small limit; one transfer holds, under each engine:
 *  threads: its socket, name.part and its directory, and the worker's
 *           libcurl wakeup pair and resolver pair;
 *  event:   its socket, name.part, its directory, a resolver's pair
 *           while a name is looked up;
 *  process: in the daemon, the child's end of its socketpair (and both
 *           ends while it is made); the child has its own table.
 * What still runs out (a burst of control connections, many jobs) is a
 * transient error: such a transfer is retried, never failed for it
 * (FERR_RESOURCE).
 */
#define ENGINE_FDS_DAEMON 256
#define ENGINE_FDS_THREADS 6
#define ENGINE_FDS_EVENT 4
#define ENGINE_FDS_PROCESS 2

/*
 * How many of wanted transfers fit the open file limit (as far as the
 * daemon raised it) at per_transfer descriptors each, at least 1; logs a
 * warning naming the engine when that is fewer than wanted.
 */
long engine_fit_nofile(const char *name, long wanted, long per_transfer);

extern const struct engine_ops engine_threads;
extern const struct engine_ops engine_event;
extern const struct engine_ops engine_process;

/*
 * The engines this build has, chosen by name. A config keeps its model as
 * an index into this list: engine_model_find() turns a name (any case) into
 * one, -1 when there is no such engine; engine_model_name() gives the name
 * back ("?" out of range).
 */
int engine_models(void);
int engine_model_find(const char *name);
const char *engine_model_name(int model);

/* Allocate and start the engine for model (an index, as above). NULL
 * (logged) on failure. */
struct engine *engine_new(int model, const struct config *cfg,
    struct event_base *base, void (*done)(struct transfer *, void *),
    void *arg);

/* The same for an engine outside the list (cluster.c's dispatcher):
 * ops, with count workers as given. */
struct engine *engine_new_ops(const struct engine_ops *ops, long count,
    const struct config *cfg, struct event_base *base,
    void (*done)(struct transfer *, void *), void *arg);

/* Hand t over: t->engine is e until done(). 0, or -1 when the engine cannot
 * take it (t is still ours). */
int engine_submit(struct engine *e, struct transfer *t)
    __attribute__((warn_unused_result));

/* Called by engines on the main loop when t is finished. */
void engine_complete(struct engine *e, struct transfer *t);
/* engine_complete() for every transfer on list. The list is emptied
 * first, so it may live in engine state the last completion frees. */
void engine_complete_all(struct engine *e, struct transfer_list *list);

/* Room for another transfer: inflight < count and not draining. */
int engine_has_room(const struct engine *e);

/* The workers e runs (see count above): what a caller sizes its own
 * budgets by, as the fd-limit may have lowered workers.count. */
long engine_workers(const struct engine *e);

/* Stop t early through the engine that owns it (t->engine); it comes back
 * through done(), a retry unless it finished first. Nothing when no engine
 * owns t (it is queued in the scheduler, or already back). */
void engine_cancel(struct transfer *t);
void engine_drain(struct engine *e);
/* Stop now: in-flight transfers are cancelled and come back through done()
 * with outcome FETCH_RETRY before stop returns. Frees e. */
void engine_free(struct engine *e);
void engine_get_stats(struct engine *e, struct engine_stats *st);

#endif
