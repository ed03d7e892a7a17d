/*
 * engine.c: choosing an engine by model and the bookkeeping every engine
 * shares (in-flight count, draining, the completion hand-back).
 *
 * The engines only run transfers; this file is the thin layer the main loop
 * talks to, so fetchd.c never calls through the ops table itself.
 */
#include <stdlib.h>

#include "engine.h"
#include "log.h"

const struct engine_ops *
engine_find(int model)
{
	switch (model) {
	case MODEL_THREADS:
		return &engine_threads;
	case MODEL_EVENT:
		return &engine_event;
	case MODEL_PROCESS:
		return &engine_process;
	default:
		return NULL;
	}
}

struct engine *
engine_new(int model, const struct config *cfg, struct event_base *base,
    void (*done)(struct transfer *, void *), void *arg)
{
	const struct engine_ops *ops;
	struct engine *e;

	if ((ops = engine_find(model)) == NULL) {
		log_warnx("model '%s' is not available", config_model_name(model));
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		log_warn("engine");
		return NULL;
	}
	e->ops = ops;
	e->count = cfg->count;
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
	if (e->ops->submit(e, t) == -1)
		return -1;
	e->inflight++;
	return 0;
}

void
engine_complete(struct engine *e, struct transfer *t)
{
	if (e->inflight <= 0)
		fatalx("%s engine completed a transfer it did not have",
		    e->ops->name);
	e->inflight--;
	e->done(t, e->done_arg);
}

int
engine_has_room(const struct engine *e)
{
	return !e->draining && e->inflight < e->count;
}

void
engine_cancel(struct engine *e, struct transfer *t)
{
	if (e->ops->cancel != NULL)
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
	st->busy = st->queued = st->restarts = 0;
	if (e->ops->stats != NULL)
		e->ops->stats(e, st);
}
