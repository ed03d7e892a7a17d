/*
 * cluster.h: cluster mode, many fetchd nodes sharing URLs through a Redis
 * stream with a consumer group. Main loop only; the only module that
 * includes hiredis (a build without it has cluster_none.c instead).
 *
 * Two sides, either or both per node (cluster.role):
 *
 *  coordinate  the jobs claimed from this node's spool run as in embedded
 *              mode, but their transfers go to an engine of this module's
 *              (cluster_dispatcher) instead of the local one: submit()
 *              adds the URL to the stream, and the transfer comes back
 *              through done() when a node's result arrives on this node's
 *              result stream. Retries, the journal and J.result stay with
 *              jobs.c; at most cluster.window URLs are out at once.
 *
 *  fetch       entries are read from the stream with the consumer group
 *              (own pending entries first, after a restart), checked like
 *              job lines, fetched by the local engine into
 *              download_dir/J/NAME through NAME.<node>.part, and the result
 *              is sent back by a Redis function that refuses it unless the
 *              entry is still this node's. Running entries' leases are
 *              renewed; entries idle past cluster.claim_idle are taken
 *              over from other nodes, and those delivered
 *              cluster.max_deliveries times go to the dead-letter stream
 *              and fail their row.
 *
 * Redis keys, all derived from cluster.stream (S): S (the URLs), S:results:
 * NODE (each coordinator's results), S:dead (dead letters), S:nodes (a hash
 * of each node's last status). While Redis is unreachable the node keeps
 * running: transfers finish, their results wait, no entry is taken, and it
 * reconnects with backoff and jitter.
 */
#ifndef FETCHD_CLUSTER_H
#define FETCHD_CLUSTER_H

#include <stdint.h>
#include <event2/event.h>
#include <jansson.h>

#include "config.h"
#include "engine.h"
#include "fetch.h"

struct cluster;

/* Transfer ids with this bit are the fetch side's (cluster_owns). */
#define CLUSTER_ID_BIT (UINT64_C(1) << 63)

struct cluster_hooks {
	/* A transfer the dispatcher had is back (the daemon's completion,
	 * as for any engine). */
	void (*done)(struct transfer *, void *);
	/* The dispatcher can take transfers again (Redis is back). */
	void (*wake)(void *);
	/* Fill this node's status for the other nodes (model, workers,
	 * rates): members are added to obj. */
	void (*status)(json_t *obj, void *);
	/* cluster_flush() is over: Redis answered every result, or
	 * cluster.timeout passed. */
	void (*flushed)(void *);
};

/* 1 when this build has cluster mode. */
int cluster_available(void);

/*
 * Start cluster mode for cfg (cluster.redis set): connections are made in
 * the background, so a Redis that is not there yet is no error. NULL
 * (logged) when the password file cannot be read or out of memory.
 */
struct cluster *cluster_new(struct event_base *base, const struct config *cfg,
    const struct cluster_hooks *hooks, void *arg);
/* Free everything; the dispatcher's transfers come back first (as
 * FETCH_RETRY), and fetch-side transfers must be back already. */
void cluster_free(struct cluster *c);

/* The engine the coordinator's transfers go to; NULL for role fetch. */
struct engine *cluster_dispatcher(struct cluster *c);

/* The local engine fetch-side transfers run on (NULL: none, role
 * coordinate); set again after a reload switched engines. */
void cluster_set_fetcher(struct cluster *c, struct engine *e);

/* 1 when t is a fetch-side transfer (its id has CLUSTER_ID_BIT). */
int cluster_owns(const struct transfer *t);

/* A fetch-side transfer is back from the local engine: send its result
 * (now or once Redis is back). Frees t. */
void cluster_fetched(struct cluster *c, struct transfer *t);

/* The local engine may have room: take more entries. */
void cluster_poke(struct cluster *c);

/* Paused (fetchctl pause): take no entries; queued ones wait. */
void cluster_pause(struct cluster *c, int paused);

/* The [http] options fetch-side transfers take from now on (reload). */
void cluster_set_config(struct cluster *c, const struct config *cfg);

/* Stop taking entries (shutting down); the entries running here keep
 * their leases while they finish in the grace period. */
void cluster_stop(struct cluster *c);

/* The grace period is over: the transfers that come back from now on
 * were cut short. No result is sent for them (their entries stay this
 * node's and their .part files are kept, for the restart) and no result
 * is read any more. */
void cluster_cut(struct cluster *c);

/*
 * After cluster_cut(), once the local engine is gone: the dispatcher's
 * transfers come back (as FETCH_RETRY) and the results of the transfers
 * that ended are sent. 1 when none is waiting; else 0, and hooks.flushed
 * is called once Redis has answered them all, or after cluster.timeout.
 */
int cluster_flush(struct cluster *c);

/* Fetch-side transfers not yet back from the local engine, and their
 * bytes so far (for the rate sampler). */
long cluster_fetching(const struct cluster *c);
uint64_t cluster_inflight_bytes(const struct cluster *c);

/* This node's cluster state and the last view of the cluster (nodes, the
 * stream's length, lag, pending and dead letters), for stats. New
 * reference. */
json_t *cluster_json(const struct cluster *c);

#endif
