/*
 * engine.c: choosing an engine by name and the bookkeeping every engine
 * shares (the worker count, in-flight count, draining, the completion
 * hand-back).
 *
 * The engines only run transfers; this file is the thin layer the main loop
 * talks to, so fetchd.c never calls through the ops table itself. The list
 * below is the one place that knows which engines exist, as curl's vtls.c
 * knows its TLS backends: each name is spelled once, in its ops table, and
 * config.c validates workers.model by asking engine_model_find().
 */
#include <sys/resource.h>

#include <limits.h>
#include <stdlib.h>
#include <strings.h>

#include "engine.h"
#include "log.h"

/* In the order fetchd.conf(5) lists them. */
static const struct engine_ops *const engines[] = {
	&engine_threads,
	&engine_event,
	&engine_process,
};
#define NENGINES ((int)(sizeof(engines) / sizeof(engines[0])))

int
engine_models(void)
{
	return NENGINES;
}

int
engine_model_find(const char *name)
{
	int i;

	for (i = 0; i < NENGINES; i++)
		if (strcasecmp(name, engines[i]->name) == 0)
			return i;
	return -1;
}

const char *
engine_model_name(int model)
{
	if (model < 0 || model >= NENGINES)
		return "?";
	return engines[model]->name;
}

long
engine_fit_nofile(const char *name, long wanted, long per_transfer)
{
	struct rlimit rl;
	long lim, reserve, cap;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return wanted;
	lim = rl.rlim_cur > (rlim_t)LONG_MAX / 2 ? LONG_MAX / 2 :
	    (long)rl.rlim_cur;
	reserve = ENGINE_FDS_DAEMON < lim / 2 ? ENGINE_FDS_DAEMON : lim / 2;
	cap = (lim - reserve) / per_transfer;
	if (cap < 1)
		cap = 1;
	if (cap >= wanted)
		return wanted;
	log_warnx("%s engine: the open file limit (%ld) caps workers.count "
	    "at %ld instead of %ld", name, lim, cap, wanted);
	return cap;
}

struct engine *
engine_new(int model, const struct config *cfg, struct event_base *base,
    void (*done)(struct transfer *, void *), void *arg)
{
	const struct engine_ops *ops;

	if (model < 0 || model >= NENGINES) {
		log_warnx("no engine number %d", model);
		return NULL;
	}
	ops = engines[model];
	return engine_new_ops(ops, ops->fit != NULL ? ops->fit(cfg->count) :
	    cfg->count, cfg, base, done, arg);
}

struct engine *
engine_new_ops(const struct engine_ops *ops, long count,
    const struct config *cfg, struct event_base *base,
    void (*done)(struct transfer *, void *), void *arg)
{
	struct engine *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_warn("engine");
		return NULL;
	}
	e->ops = ops;
	e->count = count;
	e->done = done;
	e->done_arg = arg;
	if (ops->start(e, cfg, base) == -1) {
		log_warnx("could not start the %s engine", ops->name);
		free(e);
		return NULL;
	}
	return e;
}

int
engine_submit(struct engine *e, struct transfer *t)
{
	if (e->draining)
		return -1;
	/* The cancelled flag is the engine's from here: a retry of a
	 * cancelled attempt starts afresh. */
	__atomic_store_n(&t->cancelled, 0, __ATOMIC_RELAXED);
	t->engine = e;
	if (e->ops->submit(e, t) == -1) {
		t->engine = NULL;
		return -1;
	}
	e->inflight++;
	return 0;
}

void
engine_complete(struct engine *e, struct transfer *t)
{
	if (e->inflight <= 0 || t->engine != e)
		fatalx("%s engine completed a transfer it did not have",
		    e->ops->name);
	e->inflight--;
	t->engine = NULL;
	e->done(t, e->done_arg);
}

void
engine_complete_all(struct engine *e, struct transfer_list *list)
{
	struct transfer_list todo;
	struct transfer *t;

	TAILQ_INIT(&todo);
	TAILQ_CONCAT(&todo, list, entry);
	while ((t = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, t, entry);
		engine_complete(e, t);
	}
}

int
engine_has_room(const struct engine *e)
{
	return !e->draining && e->inflight < e->count;
}

long
engine_workers(const struct engine *e)
{
	return e->count;
}

void
engine_cancel(struct transfer *t)
{
	struct engine *e = t->engine;

	if (e != NULL && e->ops->cancel != NULL)
		e->ops->cancel(e, t);
}

void
engine_drain(struct engine *e)
{
	if (e->draining)
		return;
	e->draining = 1;
	if (e->ops->drain != NULL)
		e->ops->drain(e);
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	e->draining = 1;
	e->ops->stop(e);
	if (e->inflight != 0)
		fatalx("%s engine stopped with %ld transfers unreturned",
		    e->ops->name, e->inflight);
	free(e);
}

void
engine_get_stats(struct engine *e, struct engine_stats *st)
{
	st->workers = e->count;
	st->busy = st->restarts = 0;
	if (e->ops->stats != NULL)
		e->ops->stats(e, st);
}
