/*
 * sched.c: the ready queue, per-host caps, retry timers and fairness.
 *
 * Every queued transfer sits in a bucket: one per (job, host) pair, holding
 * the bucket's ready transfers in FIFO order and its waiting ones. A bucket
 * is "eligible" when it has a ready transfer and its host is under the cap;
 * each job keeps its eligible buckets in a min-heap on the age of their
 * oldest ready transfer, so the oldest runnable transfer of a job is the top
 * of the heap. Jobs with at least one eligible bucket are in another heap
 * ordered by when each was last served (or created), so sched_pop() serving
 * the least recently served job is round-robin even though jobs leave and
 * rejoin as their hosts fill and free up: a job keeps its place in the turn
 * while it waits on a cap. A host crossing its cap (on a pop or a release)
 * moves all of its buckets in or out of their jobs' heaps at once, so a pop
 * costs O(log jobs + log hosts-in-job) plus, when a cap is reached or freed,
 * O(buckets of that host): it never walks the queue, and a capped host costs
 * nothing until a slot frees up.
 *
 * Per-host running counts are global, in a host table keyed by name. Hosts,
 * buckets and jobs exist only while something is queued or running on them,
 * so a job touching a million hosts leaves nothing behind.
 *
 * Waiting transfers are in one min-heap on their deadline (monotonic clock)
 * served by a single libevent timer armed for the earliest one.
 *
 * Everything that can fail to allocate is allocated in sched_push() and
 * sched_retry(), which then return -1 with nothing changed; pop, release,
 * the timer and removal never allocate. The transfers themselves are never
 * touched beyond reading owner and host: the scheduler keeps its own nodes.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "sched.h"
#include "util.h"

#define HEAP_NONE SIZE_MAX
#define HEAP_MIN 16
#define HTAB_MIN 16
/* Longest retry delay honoured, in seconds, so a timeval never overflows. */
#define SCHED_DELAY_MAX 1e8
/* A timer firing this early (coarse monotonic clock) still counts as due. */
#define SCHED_SLACK 0.001

/* Chained hash table with the links inside the objects. */
struct hlink {
	struct hlink *next;
	uint64_t hash;
};

struct htab {
	struct hlink **slot;
	size_t nslot; /* a power of two */
	size_t n;
};

/* Binary min-heap of pointers; each object records its own index. */
struct heap {
	void **v;
	size_t n;
	size_t cap;
};

struct heap_ops {
	int (*less)(const void *, const void *);
	void (*setidx)(void *, size_t);
};

struct sched_bucket;

/* One queued transfer: ready in its bucket, or waiting in the timer heap. */
struct sched_item {
	struct transfer *t;
	struct sched_bucket *b;
	uint64_t seq;	 /* readiness order; tie-break for deadlines */
	double deadline; /* monotonic seconds, while waiting */
	size_t hidx;	 /* index in the timer heap while waiting */
	TAILQ_ENTRY(sched_item) link;
};
TAILQ_HEAD(sched_items, sched_item);

struct sched_host {
	struct hlink hl;
	char *name;
	long running;
	size_t nbuckets;
	LIST_HEAD(, sched_bucket) buckets;
};

struct sched_job {
	struct hlink hl;
	void *owner;
	size_t nbuckets;
	TAILQ_HEAD(, sched_bucket) buckets;
	struct heap heap; /* eligible buckets, capacity >= nbuckets */
	uint64_t turn;	  /* when last served or created */
	size_t ridx;	  /* in s->ring, HEAP_NONE when not eligible */
};

struct sched_bucket {
	struct hlink hl;
	struct sched_job *job;
	struct sched_host *host;
	struct sched_items ready;
	struct sched_items waiting;
	size_t nready;
	size_t nwaiting;
	size_t hidx; /* in job->heap, HEAP_NONE when not eligible */
	TAILQ_ENTRY(sched_bucket) jentry;
	LIST_ENTRY(sched_bucket) hentry;
};

struct sched {
	struct event_base *base;
	struct event *timer;
	void (*wake)(void *);
	void *arg;
	long per_host;
	uint64_t seq;
	uint64_t turn;
	uint64_t seed;
	struct htab hosts;
	struct htab jobs;
	struct htab buckets;
	struct heap ring;   /* eligible jobs, capacity >= jobs.n */
	struct heap timers; /* waiting items, capacity >= nwaiting */
	size_t nready;
	size_t nwaiting;
	size_t nrunning;
};

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t
hash_ptr(const struct sched *s, const void *p)
{
	return mix64((uint64_t)(uintptr_t)p ^ s->seed);
}

/* FNV-1a from a per-scheduler basis: host names come from job files. */
static uint64_t
hash_str(const struct sched *s, const char *str)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ s->seed;

	for (; *str != '\0'; str++) {
		h ^= (unsigned char)*str;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

static uint64_t
hash_pair(const struct sched *s, const void *a, const void *b)
{
	return mix64(hash_ptr(s, a) ^ (uint64_t)(uintptr_t)b);
}

static int
htab_init(struct htab *h)
{
	h->slot = calloc(HTAB_MIN, sizeof(*h->slot));
	if (h->slot == NULL)
		return -1;
	h->nslot = HTAB_MIN;
	h->n = 0;
	return 0;
}

/* Rehash into nslot slots; on allocation failure keep the old table. */
static void
htab_resize(struct htab *h, size_t nslot)
{
	struct hlink **slot, *l, *next;
	size_t i;

	slot = calloc(nslot, sizeof(*slot));
	if (slot == NULL)
		return;
	for (i = 0; i < h->nslot; i++) {
		for (l = h->slot[i]; l != NULL; l = next) {
			next = l->next;
			l->next = slot[l->hash & (nslot - 1)];
			slot[l->hash & (nslot - 1)] = l;
		}
	}
	free(h->slot);
	h->slot = slot;
	h->nslot = nslot;
}

static void
htab_insert(struct htab *h, struct hlink *l, uint64_t hash)
{
	struct hlink **head;

	if (h->n >= h->nslot && h->nslot <= SIZE_MAX / 2 / sizeof(*h->slot))
		htab_resize(h, h->nslot * 2);
	l->hash = hash;
	head = &h->slot[hash & (h->nslot - 1)];
	l->next = *head;
	*head = l;
	h->n++;
}

static void
htab_remove(struct htab *h, struct hlink *l)
{
	struct hlink **p;

	for (p = &h->slot[l->hash & (h->nslot - 1)]; *p != NULL;
	     p = &(*p)->next) {
		if (*p == l) {
			*p = l->next;
			h->n--;
			if (h->nslot > HTAB_MIN && h->n < h->nslot / 8)
				htab_resize(h, h->nslot / 2);
			return;
		}
	}
	fatalx("sched: hash entry not found");
}

static struct hlink *
htab_chain(const struct htab *h, uint64_t hash)
{
	return h->slot[hash & (h->nslot - 1)];
}

static int
heap_reserve(struct heap *h, size_t need)
{
	size_t cap;
	void **v;

	if (need <= h->cap)
		return 0;
	cap = h->cap < HEAP_MIN ? HEAP_MIN : h->cap;
	while (cap < need) {
		if (cap > SIZE_MAX / 2 / sizeof(*v)) {
			errno = ENOMEM;
			return -1;
		}
		cap *= 2;
	}
	v = realloc(h->v, cap * sizeof(*v));
	if (v == NULL)
		return -1;
	h->v = v;
	h->cap = cap;
	return 0;
}

/* Give memory back once far fewer than cap slots can be needed. */
static void
heap_shrink(struct heap *h, size_t keep)
{
	size_t cap;
	void **v;

	if (keep < HEAP_MIN)
		keep = HEAP_MIN;
	if (h->cap / 4 <= keep)
		return;
	cap = h->cap / 2;
	v = realloc(h->v, cap * sizeof(*v));
	if (v == NULL)
		return;
	h->v = v;
	h->cap = cap;
}

static void
heap_set(struct heap *h, size_t i, void *x, const struct heap_ops *ops)
{
	h->v[i] = x;
	ops->setidx(x, i);
}

static void
heap_up(struct heap *h, size_t i, const struct heap_ops *ops)
{
	void *x = h->v[i];
	size_t p;

	while (i > 0) {
		p = (i - 1) / 2;
		if (!ops->less(x, h->v[p]))
			break;
		heap_set(h, i, h->v[p], ops);
		i = p;
	}
	heap_set(h, i, x, ops);
}

static void
heap_down(struct heap *h, size_t i, const struct heap_ops *ops)
{
	void *x = h->v[i];
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && ops->less(h->v[c + 1], h->v[c]))
			c++;
		if (!ops->less(h->v[c], x))
			break;
		heap_set(h, i, h->v[c], ops);
		i = c;
	}
	heap_set(h, i, x, ops);
}

/* Capacity must have been reserved: this never allocates. */
static void
heap_insert(struct heap *h, void *x, const struct heap_ops *ops)
{
	if (h->n >= h->cap)
		fatalx("sched: heap insert without reserve");
	h->v[h->n++] = x;
	heap_up(h, h->n - 1, ops);
}

static void
heap_fix(struct heap *h, size_t i, const struct heap_ops *ops)
{
	if (i > 0 && ops->less(h->v[i], h->v[(i - 1) / 2]))
		heap_up(h, i, ops);
	else
		heap_down(h, i, ops);
}

static void
heap_remove(struct heap *h, size_t i, const struct heap_ops *ops)
{
	void *x = h->v[i];

	ops->setidx(x, HEAP_NONE);
	h->n--;
	if (i == h->n)
		return;
	h->v[i] = h->v[h->n];
	heap_fix(h, i, ops);
}

static int
bucket_less(const void *a, const void *b)
{
	const struct sched_bucket *x = a, *y = b;

	return TAILQ_FIRST(&x->ready)->seq < TAILQ_FIRST(&y->ready)->seq;
}

static void
bucket_setidx(void *a, size_t i)
{
	((struct sched_bucket *)a)->hidx = i;
}

static const struct heap_ops bucket_heap_ops = {bucket_less, bucket_setidx};

static int
item_less(const void *a, const void *b)
{
	const struct sched_item *x = a, *y = b;

	if (x->deadline != y->deadline)
		return x->deadline < y->deadline;
	return x->seq < y->seq;
}

static void
item_setidx(void *a, size_t i)
{
	((struct sched_item *)a)->hidx = i;
}

static const struct heap_ops item_heap_ops = {item_less, item_setidx};

static int
job_less(const void *a, const void *b)
{
	return ((const struct sched_job *)a)->turn <
	    ((const struct sched_job *)b)->turn;
}

static void
job_setidx(void *a, size_t i)
{
	((struct sched_job *)a)->ridx = i;
}

static const struct heap_ops job_heap_ops = {job_less, job_setidx};

static int
host_ok(const struct sched *s, const struct sched_host *h)
{
	return s->per_host <= 0 || h->running < s->per_host;
}

/* Keep the ring membership of j in step with its heap. */
static void
job_update(struct sched *s, struct sched_job *j)
{
	if (j->heap.n > 0 && j->ridx == HEAP_NONE)
		heap_insert(&s->ring, j, &job_heap_ops);
	else if (j->heap.n == 0 && j->ridx != HEAP_NONE)
		heap_remove(&s->ring, j->ridx, &job_heap_ops);
}

/* Put b in or out of its job's heap, or reposition it after its head moved. */
static void
bucket_update(struct sched *s, struct sched_bucket *b)
{
	struct heap *h = &b->job->heap;
	int want = b->nready > 0 && host_ok(s, b->host);

	if (want && b->hidx == HEAP_NONE)
		heap_insert(h, b, &bucket_heap_ops);
	else if (!want && b->hidx != HEAP_NONE)
		heap_remove(h, b->hidx, &bucket_heap_ops);
	else if (want)
		heap_fix(h, b->hidx, &bucket_heap_ops);
	job_update(s, b->job);
}

/* The host's eligibility changed: every bucket on it, in every job. */
static void
host_update(struct sched *s, struct sched_host *h)
{
	struct sched_bucket *b;

	LIST_FOREACH(b, &h->buckets, hentry)
	bucket_update(s, b);
}

static struct sched_host *
host_get(struct sched *s, const char *name, int create)
{
	uint64_t hash = hash_str(s, name);
	struct sched_host *h;
	struct hlink *l;

	for (l = htab_chain(&s->hosts, hash); l != NULL; l = l->next) {
		h = (struct sched_host *)l;
		if (l->hash == hash && strcmp(h->name, name) == 0)
			return h;
	}
	if (!create)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->name = strdup(name)) == NULL) {
		free(h);
		return NULL;
	}
	LIST_INIT(&h->buckets);
	htab_insert(&s->hosts, &h->hl, hash);
	return h;
}

static void
host_gc(struct sched *s, struct sched_host *h)
{
	if (h->running > 0 || h->nbuckets > 0)
		return;
	htab_remove(&s->hosts, &h->hl);
	free(h->name);
	free(h);
}

static struct sched_job *
job_get(struct sched *s, void *owner, int create)
{
	uint64_t hash = hash_ptr(s, owner);
	struct sched_job *j;
	struct hlink *l;

	for (l = htab_chain(&s->jobs, hash); l != NULL; l = l->next) {
		j = (struct sched_job *)l;
		if (l->hash == hash && j->owner == owner)
			return j;
	}
	if (!create)
		return NULL;
	if (heap_reserve(&s->ring, s->jobs.n + 1) == -1)
		return NULL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->owner = owner;
	j->turn = s->turn++;
	j->ridx = HEAP_NONE;
	TAILQ_INIT(&j->buckets);
	htab_insert(&s->jobs, &j->hl, hash);
	return j;
}

static void
job_gc(struct sched *s, struct sched_job *j)
{
	if (j->nbuckets > 0)
		return;
	if (j->ridx != HEAP_NONE)
		heap_remove(&s->ring, j->ridx, &job_heap_ops);
	htab_remove(&s->jobs, &j->hl);
	free(j->heap.v);
	free(j);
	heap_shrink(&s->ring, s->jobs.n);
}

static struct sched_bucket *
bucket_get(
    struct sched *s, struct sched_job *j, struct sched_host *h, int create)
{
	uint64_t hash = hash_pair(s, j, h);
	struct sched_bucket *b;
	struct hlink *l;

	for (l = htab_chain(&s->buckets, hash); l != NULL; l = l->next) {
		b = (struct sched_bucket *)l;
		if (l->hash == hash && b->job == j && b->host == h)
			return b;
	}
	if (!create)
		return NULL;
	/* Room in the job's heap now, so no later move into it can fail. */
	if (heap_reserve(&j->heap, j->nbuckets + 1) == -1)
		return NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->job = j;
	b->host = h;
	b->hidx = HEAP_NONE;
	TAILQ_INIT(&b->ready);
	TAILQ_INIT(&b->waiting);
	TAILQ_INSERT_TAIL(&j->buckets, b, jentry);
	LIST_INSERT_HEAD(&h->buckets, b, hentry);
	j->nbuckets++;
	h->nbuckets++;
	htab_insert(&s->buckets, &b->hl, hash);
	return b;
}

/* Free b once empty, then its job and host if nothing else holds them. */
static void
bucket_gc(struct sched *s, struct sched_bucket *b)
{
	struct sched_job *j = b->job;
	struct sched_host *h = b->host;

	if (b->nready > 0 || b->nwaiting > 0)
		return;
	if (b->hidx != HEAP_NONE)
		heap_remove(&j->heap, b->hidx, &bucket_heap_ops);
	TAILQ_REMOVE(&j->buckets, b, jentry);
	LIST_REMOVE(b, hentry);
	htab_remove(&s->buckets, &b->hl);
	j->nbuckets--;
	h->nbuckets--;
	free(b);
	heap_shrink(&j->heap, j->nbuckets);
	job_update(s, j);
	job_gc(s, j);
	host_gc(s, h);
}

/* Arm the timer for the earliest deadline, or disarm it when none. */
static void
timer_arm(struct sched *s)
{
	struct sched_item *it;
	struct timeval tv;
	double d;

	if (s->timers.n == 0) {
		evtimer_del(s->timer);
		return;
	}
	it = s->timers.v[0];
	d = it->deadline - util_mono();
	if (d < 0)
		d = 0;
	tv.tv_sec = (time_t)d;
	tv.tv_usec = (suseconds_t)ceil((d - (double)tv.tv_sec) * 1e6);
	if (tv.tv_usec >= 1000000) {
		tv.tv_sec++;
		tv.tv_usec -= 1000000;
	}
	if (evtimer_add(s->timer, &tv) == -1)
		fatalx("sched: cannot arm the retry timer");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct sched_bucket *b;
	struct sched_item *it;
	double now = util_mono();
	size_t moved = 0;

	while (s->timers.n > 0) {
		it = s->timers.v[0];
		if (it->deadline > now + SCHED_SLACK)
			break;
		heap_remove(&s->timers, 0, &item_heap_ops);
		b = it->b;
		TAILQ_REMOVE(&b->waiting, it, link);
		b->nwaiting--;
		s->nwaiting--;
		it->seq = s->seq++;
		TAILQ_INSERT_TAIL(&b->ready, it, link);
		b->nready++;
		s->nready++;
		bucket_update(s, b);
		moved++;
	}
	heap_shrink(&s->timers, s->nwaiting);
	timer_arm(s);
	if (moved > 0 && s->wake != NULL)
		s->wake(s->arg);
}

struct sched *
sched_new(
    struct event_base *base, long per_host, void (*wake)(void *), void *arg)
{
	struct sched *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->base = base;
	s->wake = wake;
	s->arg = arg;
	s->per_host = per_host < 0 ? 0 : per_host;
	if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(s->seed))
		s->seed = mix64(
		    (uint64_t)(uintptr_t)s ^ (uint64_t)(util_mono() * 1e9));
	if (htab_init(&s->hosts) == -1 || htab_init(&s->jobs) == -1 ||
	    htab_init(&s->buckets) == -1)
		goto fail;
	/* Without a base the scheduler works, only sched_retry() fails. */
	if (base != NULL && (s->timer = evtimer_new(base, timer_cb, s)) == NULL)
		goto fail;
	return s;
fail:
	sched_free(s);
	return NULL;
}

static void
items_free(struct sched_items *list)
{
	struct sched_item *it;

	while ((it = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, it, link);
		free(it);
	}
}

void
sched_free(struct sched *s)
{
	struct hlink *l, *next;
	struct sched_bucket *b;
	struct sched_host *h;
	struct sched_job *j;
	size_t i;

	if (s == NULL)
		return;
	if (s->timer != NULL)
		event_free(s->timer);
	for (i = 0; s->buckets.slot != NULL && i < s->buckets.nslot; i++) {
		for (l = s->buckets.slot[i]; l != NULL; l = next) {
			next = l->next;
			b = (struct sched_bucket *)l;
			items_free(&b->ready);
			items_free(&b->waiting);
			free(b);
		}
	}
	for (i = 0; s->jobs.slot != NULL && i < s->jobs.nslot; i++) {
		for (l = s->jobs.slot[i]; l != NULL; l = next) {
			next = l->next;
			j = (struct sched_job *)l;
			free(j->heap.v);
			free(j);
		}
	}
	for (i = 0; s->hosts.slot != NULL && i < s->hosts.nslot; i++) {
		for (l = s->hosts.slot[i]; l != NULL; l = next) {
			next = l->next;
			h = (struct sched_host *)l;
			free(h->name);
			free(h);
		}
	}
	free(s->buckets.slot);
	free(s->jobs.slot);
	free(s->hosts.slot);
	free(s->timers.v);
	free(s->ring.v);
	free(s);
}

void
sched_set_per_host(struct sched *s, long per_host)
{
	struct hlink *l;
	size_t i;

	if (per_host < 0)
		per_host = 0;
	if (per_host == s->per_host)
		return;
	s->per_host = per_host;
	for (i = 0; i < s->hosts.nslot; i++)
		for (l = s->hosts.slot[i]; l != NULL; l = l->next)
			host_update(s, (struct sched_host *)l);
}

/*
 * Common to push and retry: find or make the host, job and bucket, and the
 * item, undoing what was made if anything fails; then queue the item ready,
 * or waiting until now + delay.
 */
static int
sched_enqueue(struct sched *s, struct transfer *t, int wait, double delay)
{
	struct sched_host *h = NULL;
	struct sched_job *j = NULL;
	struct sched_bucket *b = NULL;
	struct sched_item *it;

	if (s == NULL || t == NULL || t->host == NULL ||
	    (wait && s->timer == NULL)) {
		errno = EINVAL;
		return -1;
	}
	if (wait && heap_reserve(&s->timers, s->nwaiting + 1) == -1)
		return -1;
	if ((h = host_get(s, t->host, 1)) == NULL)
		goto fail;
	if ((j = job_get(s, t->owner, 1)) == NULL)
		goto fail;
	if ((b = bucket_get(s, j, h, 1)) == NULL)
		goto fail;
	if ((it = calloc(1, sizeof(*it))) == NULL)
		goto fail;
	it->t = t;
	it->b = b;
	it->seq = s->seq++;
	it->hidx = HEAP_NONE;
	if (!wait) {
		TAILQ_INSERT_TAIL(&b->ready, it, link);
		b->nready++;
		s->nready++;
		bucket_update(s, b);
		return 0;
	}
	if (!(delay > 0)) /* also NaN */
		delay = 0;
	if (delay > SCHED_DELAY_MAX)
		delay = SCHED_DELAY_MAX;
	it->deadline = util_mono() + delay;
	TAILQ_INSERT_TAIL(&b->waiting, it, link);
	b->nwaiting++;
	s->nwaiting++;
	heap_insert(&s->timers, it, &item_heap_ops);
	if (it->hidx == 0)
		timer_arm(s);
	return 0;
fail:
	if (b != NULL)
		bucket_gc(s, b);
	else {
		if (j != NULL)
			job_gc(s, j);
		if (h != NULL)
			host_gc(s, h);
	}
	return -1;
}

int
sched_push(struct sched *s, struct transfer *t)
{
	return sched_enqueue(s, t, 0, 0);
}

int
sched_retry(struct sched *s, struct transfer *t, double delay)
{
	return sched_enqueue(s, t, 1, delay);
}

/*
 * The least recently served job with a host under its cap gives its oldest
 * ready transfer on such a host, and its turn moves to the back.
 */
struct transfer *
sched_pop(struct sched *s)
{
	struct sched_job *j;
	struct sched_bucket *b;
	struct sched_host *h;
	struct sched_item *it;
	struct transfer *t;

	if (s == NULL || s->ring.n == 0)
		return NULL;
	j = s->ring.v[0];
	j->turn = s->turn++;
	heap_fix(&s->ring, j->ridx, &job_heap_ops);
	b = j->heap.v[0];
	h = b->host;
	it = TAILQ_FIRST(&b->ready);
	TAILQ_REMOVE(&b->ready, it, link);
	b->nready--;
	s->nready--;
	h->running++;
	s->nrunning++;
	t = it->t;
	free(it);
	if (host_ok(s, h))
		bucket_update(s, b);
	else
		host_update(s, h);
	bucket_gc(s, b);
	return t;
}

void
sched_release(struct sched *s, struct transfer *t)
{
	struct sched_host *h;
	int was_ok;

	if (s == NULL || t == NULL)
		return;
	if (t->host == NULL || (h = host_get(s, t->host, 0)) == NULL ||
	    h->running <= 0)
		fatalx("sched_release: transfer %llu to %s is not running",
		    (unsigned long long)t->id, t->host ? t->host : "(null)");
	was_ok = host_ok(s, h);
	h->running--;
	s->nrunning--;
	if (!was_ok && host_ok(s, h))
		host_update(s, h);
	host_gc(s, h);
}

size_t
sched_remove_owner(struct sched *s, void *owner,
    void (*cb)(struct transfer *, void *), void *arg)
{
	struct sched_items out = TAILQ_HEAD_INITIALIZER(out);
	struct sched_bucket *b;
	struct sched_item *it;
	struct sched_job *j;
	size_t nb, n = 0, waited = 0;

	if (s == NULL || (j = job_get(s, owner, 0)) == NULL)
		return 0;
	/* Detach everything first so cb may call back into the scheduler. */
	for (nb = j->nbuckets; nb > 0; nb--) {
		b = TAILQ_FIRST(&j->buckets);
		if (b->hidx != HEAP_NONE)
			heap_remove(&j->heap, b->hidx, &bucket_heap_ops);
		TAILQ_FOREACH(it, &b->waiting, link)
		heap_remove(&s->timers, it->hidx, &item_heap_ops);
		s->nready -= b->nready;
		s->nwaiting -= b->nwaiting;
		n += b->nready + b->nwaiting;
		waited += b->nwaiting;
		b->nready = b->nwaiting = 0;
		TAILQ_CONCAT(&out, &b->ready, link);
		TAILQ_CONCAT(&out, &b->waiting, link);
		bucket_gc(s, b); /* the last one frees j */
	}
	if (waited > 0) {
		heap_shrink(&s->timers, s->nwaiting);
		timer_arm(s);
	}
	while ((it = TAILQ_FIRST(&out)) != NULL) {
		TAILQ_REMOVE(&out, it, link);
		if (cb != NULL)
			cb(it->t, arg);
		free(it);
	}
	return n;
}

size_t
sched_ready(const struct sched *s)
{
	return s == NULL ? 0 : s->nready;
}

size_t
sched_waiting(const struct sched *s)
{
	return s == NULL ? 0 : s->nwaiting;
}

size_t
sched_running(const struct sched *s)
{
	return s == NULL ? 0 : s->nrunning;
}

/*
 * base * 2^(attempt - 2), capped at max, then uniformly in [d/2, d]; a
 * Retry-After replaces it without jitter, also capped at max. Negative or
 * NaN inputs count as 0, so the result is never negative.
 */
double
sched_backoff(
    int attempt, double base, double max, long retry_after, unsigned *seed)
{
	static unsigned fallback = 1;
	double d;
	int n;

	if (!(max > 0))
		max = 0;
	if (retry_after >= 0) {
		d = (double)retry_after;
		return d > max ? max : d;
	}
	if (!(base > 0))
		return 0;
	d = base;
	for (n = attempt < 2 ? 2 : attempt; n > 2 && d < max; n--)
		d *= 2;
	if (d > max)
		d = max;
	if (seed == NULL)
		seed = &fallback;
	return d / 2 + d / 2 * ((double)rand_r(seed) / (double)RAND_MAX);
}
