/*
 * sched.h: which transfer runs next. Owns the ready queue, per-host caps,
 * retry timers and fairness between jobs. Main loop only.
 *
 * Transfers are queued per job and, inside a job, per host. sched_pop()
 * takes jobs round-robin, and inside a job the oldest transfer whose host is
 * under its cap, so one large job cannot starve a small one and one slow
 * host cannot stall the others.
 */
#ifndef FETCHD_SCHED_H
#define FETCHD_SCHED_H

#include <stddef.h>
#include <event2/event.h>

#include "fetch.h"

struct sched;

/*
 * per_host: concurrent transfers per host, 0 = no cap. When a retry timer
 * fires, the transfer becomes ready and wake(arg) is called so the main loop
 * can dispatch. NULL on allocation failure.
 */
struct sched *sched_new(struct event_base *base, long per_host,
    void (*wake)(void *), void *arg);
void sched_free(struct sched *s); /* the transfers still queued are not freed */

void sched_set_per_host(struct sched *s, long per_host);

/* Queue t (t->owner and t->host set) as ready now. 0 or -1. */
int sched_push(struct sched *s, struct transfer *t)
    __attribute__((warn_unused_result));

/* Queue t to become ready after delay seconds. 0 or -1. */
int sched_retry(struct sched *s, struct transfer *t, double delay)
    __attribute__((warn_unused_result));

/*
 * Next transfer to run, or NULL when none is ready under the caps. The
 * transfer's host counts as busy until sched_release().
 */
struct transfer *sched_pop(struct sched *s);
void sched_release(struct sched *s, struct transfer *t);

/*
 * Take every queued (ready or waiting to retry) transfer of owner out of
 * the scheduler and call cb(t) for each (to cancel a job). Returns how many.
 */
size_t sched_remove_owner(struct sched *s, void *owner,
    void (*cb)(struct transfer *, void *), void *arg);

size_t sched_ready(const struct sched *s);    /* queued and ready */
size_t sched_waiting(const struct sched *s);  /* waiting on a retry timer */
size_t sched_running(const struct sched *s);  /* popped, not released */

/*
 * Delay before attempt number `attempt` (2 = first retry): base * 2^(n-2)
 * capped at max, with "full jitter" between half and all of it; a
 * Retry-After of retry_after seconds (>= 0) replaces it, capped at max.
 * seed feeds rand_r().
 */
double sched_backoff(int attempt, double base, double max, long retry_after,
    unsigned *seed);

#endif
