/*
 * cluster_none.c: cluster.h for a build without hiredis. Cluster mode is
 * refused at start with what to install; nothing else changes.
 */
#include "cluster.h"
#include "log.h"

int
cluster_available(void)
{
	return 0;
}

struct cluster *
cluster_new(struct event_base *base, const struct config *cfg,
    const struct cluster_hooks *hooks, void *arg)
{
	(void)base;
	(void)cfg;
	(void)hooks;
	(void)arg;
	log_warnx("cluster.redis is set, but this fetchd was built without "
	    "hiredis: install libhiredis-dev and build again");
	return NULL;
}

void
cluster_free(struct cluster *c)
{
	(void)c;
}

struct engine *
cluster_dispatcher(struct cluster *c)
{
	(void)c;
	return NULL;
}

void
cluster_set_fetcher(struct cluster *c, struct engine *e)
{
	(void)c;
	(void)e;
}

int
cluster_owns(const struct transfer *t)
{
	(void)t;
	return 0;
}

void
cluster_fetched(struct cluster *c, struct transfer *t)
{
	(void)c;
	fetch_transfer_free(t);
}

void
cluster_poke(struct cluster *c)
{
	(void)c;
}

void
cluster_pause(struct cluster *c, int paused)
{
	(void)c;
	(void)paused;
}

void
cluster_set_config(struct cluster *c, const struct config *cfg)
{
	(void)c;
	(void)cfg;
}

void
cluster_stop(struct cluster *c)
{
	(void)c;
}

void
cluster_cut(struct cluster *c)
{
	(void)c;
}

int
cluster_flush(struct cluster *c)
{
	(void)c;
	return 1;
}

long
cluster_fetching(const struct cluster *c)
{
	(void)c;
	return 0;
}

uint64_t
cluster_inflight_bytes(const struct cluster *c)
{
	(void)c;
	return 0;
}

json_t *
cluster_json(const struct cluster *c)
{
	(void)c;
	return json_null();
}
