/*
 * engine_threads.c: the pthread model. engine_workers() threads, each running
 * curl_easy_perform (through fetch_run) on transfers taken from one locked
 * queue. A CURLSH shares the DNS cache and TLS sessions between the
 * threads, guarded by one mutex per shared data kind; connections are
 * reused per thread (see threads_share_init).
 *
 * Completions go back to the main loop through a second locked queue and an
 * eventfd: the main loop is the only one that touches jobs, the scheduler
 * and the stats, so a worker never calls engine_complete() itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "util.h"

#define THREADS_STACK_SIZE (512 * 1024)

struct threads {
	struct engine *engine;
	pthread_t *tids;
	long nthreads;
	CURL **easies;                  /* one per worker, made by start */
	long neasies;
	long ntaken;                    /* easies taken by their workers */
	pthread_mutex_t lock;           /* guards everything below */
	pthread_cond_t cond;
	struct transfer_list queue;     /* submitted, not started */
	struct transfer_list running;
	struct transfer_list done;      /* finished, not yet handed back */
	long nbusy;
	int stopping;

	int wakefd;
	struct event *wakeev;

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct threads *th = arg;

	pthread_mutex_lock(&th->share_locks[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct threads *th = arg;

	pthread_mutex_unlock(&th->share_locks[data]);
}

static void
threads_wake(struct threads *th)
{
	uint64_t one = 1;

	/* An eventfd counter cannot fill up in practice; EAGAIN means a
	 * wakeup is pending already. */
	while (write(th->wakefd, &one, sizeof(one)) == -1 && errno == EINTR)
		;
}

static void *
threads_worker(void *arg)
{
	struct threads *th = arg;
	struct transfer *t;
	CURL *easy;

	pthread_mutex_lock(&th->lock);
	easy = th->easies[th->ntaken++];
	for (;;) {
		while (TAILQ_EMPTY(&th->queue) && !th->stopping)
			pthread_cond_wait(&th->cond, &th->lock);
		if (th->stopping && TAILQ_EMPTY(&th->queue))
			break;
		t = TAILQ_FIRST(&th->queue);
		TAILQ_REMOVE(&th->queue, t, entry);
		TAILQ_INSERT_TAIL(&th->running, t, entry);
		th->nbusy++;
		pthread_mutex_unlock(&th->lock);

		fetch_run(t, easy, th->share);

		pthread_mutex_lock(&th->lock);
		TAILQ_REMOVE(&th->running, t, entry);
		th->nbusy--;
		/* The main loop takes the whole list after reading the
		 * eventfd: a list that was not empty has a wake-up coming. */
		if (TAILQ_EMPTY(&th->done))
			threads_wake(th);
		TAILQ_INSERT_TAIL(&th->done, t, entry);
	}
	pthread_mutex_unlock(&th->lock);
	return NULL;
}

/* Main loop: hand every finished transfer back. */
static void
threads_collect(struct threads *th)
{
	struct transfer_list done;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&th->lock);
	TAILQ_CONCAT(&done, &th->done, entry);
	pthread_mutex_unlock(&th->lock);
	engine_complete_all(th->engine, &done);
}

static void
threads_wakeup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct threads *th = arg;
	uint64_t n;

	while (read(fd, &n, sizeof(n)) == -1 && errno == EINTR)
		;
	threads_collect(th);
}

/* Fewer workers when the open file limit cannot hold wanted (engine.h). */
static long
threads_fit(long wanted)
{
	return engine_fit_nofile("threads", wanted, ENGINE_FDS_THREADS);
}

static void threads_stop(struct engine *);

/*
 * DNS and TLS sessions only. A shared connection cache
 * (CURL_LOCK_DATA_CONNECT) is not safe between threads in libcurl 7.88:
 * two workers closing cached connections at once corrupted the heap under
 * load (1,000 threads). Each worker keeps one easy handle, so its own
 * connection cache still reuses connections.
 */
static int
threads_share_init(struct threads *th)
{
	if ((th->share = curl_share_init()) == NULL)
		return -1;
	curl_share_setopt(th->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(th->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(th->share, CURLSHOPT_USERDATA, th);
	curl_share_setopt(th->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(th->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return 0;
}

static int
threads_start(struct engine *e, const struct config *cfg,
    struct event_base *base)
{
	struct threads *th;
	pthread_attr_t attr;
	int i, err;

	if ((th = calloc(1, sizeof(*th))) == NULL)
		return -1;
	e->priv = th;
	th->engine = e;
	th->wakefd = -1;
	TAILQ_INIT(&th->queue);
	TAILQ_INIT(&th->running);
	TAILQ_INIT(&th->done);
	pthread_mutex_init(&th->lock, NULL);
	pthread_cond_init(&th->cond, NULL);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&th->share_locks[i], NULL);

	if (threads_share_init(th) == -1)
		goto fail;
	if ((th->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		log_warn("eventfd");
		goto fail;
	}
	th->wakeev = event_new(base, th->wakefd, EV_READ | EV_PERSIST,
	    threads_wakeup_cb, th);
	if (th->wakeev == NULL || event_add(th->wakeev, NULL) == -1)
		goto fail;

	/* Made here rather than in each thread: a failure (out of memory)
	 * fails the start, not the daemon from inside a worker. */
	if ((th->tids = calloc(e->count, sizeof(*th->tids))) == NULL ||
	    (th->easies = calloc(e->count, sizeof(*th->easies))) == NULL)
		goto fail;
	for (; th->neasies < e->count; th->neasies++)
		if ((th->easies[th->neasies] = curl_easy_init()) == NULL) {
			log_warnx("threads engine: curl_easy_init failed");
			goto fail;
		}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREADS_STACK_SIZE);
	for (th->nthreads = 0; th->nthreads < e->count; th->nthreads++) {
		err = pthread_create(&th->tids[th->nthreads], &attr,
		    threads_worker, th);
		if (err != 0) {
			errno = err;
			log_warn("pthread_create (worker %ld)", th->nthreads);
			pthread_attr_destroy(&attr);
			goto fail;
		}
	}
	pthread_attr_destroy(&attr);
	log_info("threads engine: %ld worker thread%s", th->nthreads,
	    util_plural((double)th->nthreads));
	return 0;
fail:
	threads_stop(e);
	return -1;
}

static int
threads_submit(struct engine *e, struct transfer *t)
{
	struct threads *th = e->priv;

	pthread_mutex_lock(&th->lock);
	TAILQ_INSERT_TAIL(&th->queue, t, entry);
	pthread_cond_signal(&th->cond);
	pthread_mutex_unlock(&th->lock);
	return 0;
}

/* Lock held: take queued t out and hand it back as cancelled (a retry). */
static void
threads_unqueue(struct threads *th, struct transfer *t)
{
	TAILQ_REMOVE(&th->queue, t, entry);
	t->outcome = FETCH_RETRY;
	t->errkind = FERR_OTHER;
	strcpy(t->error, "cancelled");
	TAILQ_INSERT_TAIL(&th->done, t, entry);
}

/*
 * A queued transfer comes back at once; a running one is flagged and comes
 * back when its progress callback sees the flag.
 */
static void
threads_cancel(struct engine *e, struct transfer *t)
{
	struct threads *th = e->priv;
	struct transfer *q;

	pthread_mutex_lock(&th->lock);
	TAILQ_FOREACH(q, &th->queue, entry)
		if (q == t)
			break;
	if (q != NULL) {
		threads_unqueue(th, t);
		threads_wake(th);
	} else
		__atomic_store_n(&t->cancelled, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&th->lock);
}

static void
threads_stop(struct engine *e)
{
	struct threads *th = e->priv;
	struct transfer *t;
	long i;

	if (th == NULL)
		return;
	pthread_mutex_lock(&th->lock);
	th->stopping = 1;
	while ((t = TAILQ_FIRST(&th->queue)) != NULL)
		threads_unqueue(th, t);
	TAILQ_FOREACH(t, &th->running, entry)
		__atomic_store_n(&t->cancelled, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&th->cond);
	pthread_mutex_unlock(&th->lock);

	for (i = 0; i < th->nthreads; i++)
		pthread_join(th->tids[i], NULL);
	threads_collect(th);
	for (i = 0; i < th->neasies; i++)
		curl_easy_cleanup(th->easies[i]);
	free(th->easies);

	if (th->wakeev != NULL)
		event_free(th->wakeev);
	if (th->wakefd != -1)
		close(th->wakefd);
	if (th->share != NULL)
		curl_share_cleanup(th->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&th->share_locks[i]);
	pthread_cond_destroy(&th->cond);
	pthread_mutex_destroy(&th->lock);
	free(th->tids);
	free(th);
	e->priv = NULL;
}

static void
threads_stats(struct engine *e, struct engine_stats *st)
{
	struct threads *th = e->priv;

	pthread_mutex_lock(&th->lock);
	st->busy = th->nbusy;
	pthread_mutex_unlock(&th->lock);
}

const struct engine_ops engine_threads = {
	.name = "threads",
	.fit = threads_fit,
	.start = threads_start,
	.submit = threads_submit,
	.cancel = threads_cancel,
	.drain = NULL,
	.stop = threads_stop,
	.stats = threads_stats,
};
