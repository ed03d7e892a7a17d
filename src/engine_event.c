/*
 * engine_event.c: the event-loop model. The daemon's own libevent loop
 * drives one curl multi handle through curl_multi_socket_action(): libcurl
 * tells us which sockets to watch (the socket callback) and when it next
 * needs a call (the timer callback); libevent tells libcurl when a socket
 * is ready or the timer expired. No thread, no polling loop: a transfer
 * costs a socket, its .part file and a few kilobytes.
 *
 * engine_workers() is the number of concurrent transfers. The daemon never
 * submits more than that; the multi handle is capped the same way
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS), keeps that many connections for reuse,
 * and multiplexes HTTP/2 where a server offers it. per_host is not set
 * here: see evloop_start().
 *
 * A transfer is in one of two places while the engine owns it: "running"
 * (its easy handle is in the multi, t->engine_data is the handle) or
 * "done" (finished and classified by fetch_finish(), waiting to go back).
 * Completions go back from event callbacks only, never from inside
 * submit() or cancel(): the daemon calls those while walking its own lists.
 * Nothing here calls libcurl from inside a libcurl callback.
 *
 * Easy handles are pooled and reused (fetch_begin() resets them); the
 * connection cache and the DNS cache belong to the multi handle.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "log.h"
#include "util.h"

/*
 * Receive buffer per transfer: EVLOOP_BUF_BUDGET spread over count
 * transfers, between 16 KiB (libcurl's own default) and 256 KiB (what
 * fetch.c asks for). Up to 64 transfers get 256 KiB each, 1000 get 16 KiB:
 * 16 MiB of buffers in all up to 1024 transfers (not 256 MB at 1000).
 */
#define EVLOOP_BUF_BUDGET (16L * 1024 * 1024)
#define EVLOOP_BUF_MIN (16L * 1024)
#define EVLOOP_BUF_MAX (256L * 1024)

struct evloop;

/* One socket libcurl asked us to watch; curl_multi_assign()ed to it. */
struct evsock {
	TAILQ_ENTRY(evsock) entry;
	struct evloop *el;
	curl_socket_t fd;
	struct event *ev;
};
TAILQ_HEAD(evsock_list, evsock);

struct evloop {
	struct engine *engine;
	struct event_base *base;
	CURLM *multi;
	struct event *timer;            /* libcurl's one timeout */
	struct event *handback;         /* hands "done" back, deferred */
	struct evsock_list socks;
	struct transfer_list running;
	struct transfer_list done;
	long nrunning;
	long bufsize;
	CURL **pool;                    /* idle easy handles */
	long npool, poolmax;
};

/* -- easy handle pool ------------------------------------------------- */

static CURL *
evloop_easy_get(struct evloop *el)
{
	CURL *easy;

	if (el->npool > 0)
		return el->pool[--el->npool];
	if ((easy = curl_easy_init()) == NULL)
		log_warnx("event engine: curl_easy_init failed");
	return easy;
}

/*
 * Keep a handle for another transfer only if fetch_begin() will be able to
 * set it up again. libcurl (7.88 at least) keeps the receive buffer of a
 * transfer that ended while others still used its HTTP/2 connection, or
 * before it had a connection, and then refuses CURLOPT_BUFFERSIZE until
 * the handle is cleaned up: try that option here and drop a handle that
 * refuses it. The reset also drops the pointers into the finished
 * transfer's state.
 */
static void
evloop_easy_put(struct evloop *el, CURL *easy)
{
	curl_easy_reset(easy);
	if (el->npool < el->poolmax &&
	    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, el->bufsize) == CURLE_OK)
		el->pool[el->npool++] = easy;
	else
		curl_easy_cleanup(easy);
}

/* -- completions ------------------------------------------------------ */

/* A transfer is finished and classified: queue it for the hand-back. */
static void
evloop_defer(struct evloop *el, struct transfer *t)
{
	t->engine_data = NULL;
	TAILQ_INSERT_TAIL(&el->done, t, entry);
	event_active(el->handback, 0, 0);
}

/* Take t's handle out of the multi, classify the outcome, queue t. */
static void
evloop_end(struct evloop *el, struct transfer *t, CURLcode res)
{
	CURL *easy = t->engine_data;
	CURLMcode mc;

	if ((mc = curl_multi_remove_handle(el->multi, easy)) != CURLM_OK)
		log_warnx("event engine: curl_multi_remove_handle: %s",
		    curl_multi_strerror(mc));
	TAILQ_REMOVE(&el->running, t, entry);
	el->nrunning--;
	fetch_finish(t, easy, res);
	evloop_easy_put(el, easy);
	evloop_defer(el, t);
}

/* Every transfer libcurl reports finished goes to "done". */
static void
evloop_collect(struct evloop *el)
{
	struct transfer *t;
	CURLMsg *msg;
	CURLcode res;
	CURL *easy;
	char *priv;
	int left;

	while ((msg = curl_multi_info_read(el->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg is gone once the handle is removed: copy it out. */
		easy = msg->easy_handle;
		res = msg->data.result;
		priv = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		t = (struct transfer *)(void *)priv;
		if (t == NULL || t->engine_data != easy)
			fatalx("event engine: a finished handle with no "
			    "transfer");
		evloop_end(el, t, res);
	}
}

/*
 * Hand every finished transfer back to the daemon. The daemon may free the
 * engine once its last transfer is in: engine_complete_all() takes the
 * list off el before the first one.
 */
static void
evloop_handback(struct evloop *el)
{
	engine_complete_all(el->engine, &el->done);
}

static void
evloop_handback_cb(evutil_socket_t fd, short what, void *arg)
{
	evloop_handback(arg);
}

/*
 * Drive libcurl for one socket (or the timeout), then hand back what
 * finished. When the multi handle gave up (a callback of ours failed, or
 * memory ran out) libcurl does not report the transfers it dropped: end
 * them here as retryable so none is left hanging.
 */
static void
evloop_action(struct evloop *el, curl_socket_t fd, int flags)
{
	struct transfer *t;
	CURLMcode mc;
	int running;

	mc = curl_multi_socket_action(el->multi, fd, flags, &running);
	evloop_collect(el);
	if (mc != CURLM_OK) {
		log_warnx("event engine: curl_multi_socket_action: %s",
		    curl_multi_strerror(mc));
		if (mc == CURLM_ABORTED_BY_CALLBACK ||
		    mc == CURLM_OUT_OF_MEMORY)
			while ((t = TAILQ_FIRST(&el->running)) != NULL)
				evloop_end(el, t, CURLE_OUT_OF_MEMORY);
	}
	evloop_handback(el);
}

/* -- libevent side ---------------------------------------------------- */

static void
evloop_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct evloop *el = arg;
	int flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	evloop_action(el, fd, flags);
}

static void
evloop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	evloop_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* -- libcurl side: only libevent calls in here, never libcurl ---------- */

static void
evsock_free(struct evsock *es)
{
	TAILQ_REMOVE(&es->el->socks, es, entry);
	event_free(es->ev);
	free(es);
}

static int
evloop_socket_fn(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct evloop *el = arg;
	struct evsock *es = sockp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (es != NULL)
			evsock_free(es);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (es == NULL) {
		if ((es = calloc(1, sizeof(*es))) == NULL) {
			log_warn("event engine: socket %d", (int)fd);
			return -1;
		}
		es->el = el;
		es->fd = fd;
		if ((es->ev = event_new(el->base, fd, kind, evloop_sock_cb,
		    el)) == NULL) {
			log_warnx("event engine: event_new for socket %d",
			    (int)fd);
			free(es);
			return -1;
		}
		TAILQ_INSERT_TAIL(&el->socks, es, entry);
		if (curl_multi_assign(el->multi, fd, es) != CURLM_OK) {
			evsock_free(es);
			return -1;
		}
	} else {
		/* A changed interest: re-arm the same event. */
		event_del(es->ev);
		if (event_assign(es->ev, el->base, fd, kind, evloop_sock_cb,
		    el) == -1)
			return -1;
	}
	if (event_add(es->ev, NULL) == -1) {
		log_warnx("event engine: cannot watch socket %d", (int)fd);
		return -1;
	}
	return 0;
}

/*
 * libcurl wants to be called in timeout_ms (-1: never). A zero timeout is a
 * zero timer too: it fires on the next loop turn, never from in here.
 */
static int
evloop_timer_fn(CURLM *multi, long timeout_ms, void *arg)
{
	struct evloop *el = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(el->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(el->timer, &tv) == -1 ? -1 : 0;
}

/* -- engine_ops ------------------------------------------------------- */

/* Fewer transfers when the open file limit cannot hold wanted
 * (engine.h); engine_new() keeps the answer as the engine's count. */
static long
evloop_fit(long wanted)
{
	return engine_fit_nofile("event", wanted, ENGINE_FDS_EVENT);
}

static void evloop_stop(struct engine *);

static int
evloop_start(struct engine *e, const struct config *cfg,
    struct event_base *base)
{
	struct evloop *el;
	long n;

	if ((el = calloc(1, sizeof(*el))) == NULL) {
		log_warn("event engine");
		return -1;
	}
	e->priv = el;
	el->engine = e;
	el->base = base;
	TAILQ_INIT(&el->socks);
	TAILQ_INIT(&el->running);
	TAILQ_INIT(&el->done);

	n = e->count;
	el->bufsize = EVLOOP_BUF_BUDGET / n;
	if (el->bufsize < EVLOOP_BUF_MIN)
		el->bufsize = EVLOOP_BUF_MIN;
	if (el->bufsize > EVLOOP_BUF_MAX)
		el->bufsize = EVLOOP_BUF_MAX;
	el->poolmax = n;
	if ((el->pool = calloc(n, sizeof(*el->pool))) == NULL) {
		log_warn("event engine");
		goto fail;
	}
	el->timer = evtimer_new(base, evloop_timer_cb, el);
	el->handback = event_new(base, -1, 0, evloop_handback_cb, el);
	if (el->timer == NULL || el->handback == NULL) {
		log_warnx("event engine: cannot create events");
		goto fail;
	}
	if ((el->multi = curl_multi_init()) == NULL) {
		log_warnx("event engine: curl_multi_init failed");
		goto fail;
	}
	if (curl_multi_setopt(el->multi, CURLMOPT_SOCKETFUNCTION,
	    evloop_socket_fn) != CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_SOCKETDATA, el) != CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_TIMERFUNCTION,
	    evloop_timer_fn) != CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_TIMERDATA, el) != CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n) !=
	    CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_MAXCONNECTS, n) != CURLM_OK ||
	    curl_multi_setopt(el->multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_MULTIPLEX) != CURLM_OK) {
		log_warnx("event engine: cannot configure the multi handle");
		goto fail;
	}
	/*
	 * No CURLMOPT_MAX_HOST_CONNECTIONS: per_host belongs to the scheduler,
	 * which never has more than per_host transfers to a host out, and a
	 * transfer holds at most one connection, so the cap already holds.
	 * A copy set here would be fixed at engine start and silently cap a
	 * per_host raised by a reload at the old value; with a proxy it would
	 * also cap every transfer through the proxy, which the other engines
	 * do not.
	 */
	log_info("event engine: %ld concurrent transfer%s, %ld KiB receive "
	    "buffers", n, util_plural((double)n), el->bufsize / 1024);
	return 0;
fail:
	evloop_stop(e);
	return -1;
}

/*
 * Start t now. A transfer fetch_begin() refuses (or the multi handle does)
 * is already classified; it goes back from the hand-back event, not from
 * in here. -1 only when no easy handle can be had (t is still the
 * daemon's).
 */
static int
evloop_submit(struct engine *e, struct transfer *t)
{
	struct evloop *el = e->priv;
	CURLMcode mc;
	CURL *easy;

	if ((easy = evloop_easy_get(el)) == NULL)
		return -1;
	t->engine_data = NULL;
	if (fetch_begin(t, easy, NULL) == -1) {
		evloop_easy_put(el, easy);
		evloop_defer(el, t);
		return 0;
	}
	/* Options only this engine needs; fetch_begin() reset the rest.
	 * PIPEWAIT makes transfers to an https host wait for the first
	 * connection's ALPN answer and then share it when it speaks
	 * HTTP/2; over plain http there is nothing to wait for. */
	curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, el->bufsize);
	if (strncasecmp(t->url, "https://", 8) == 0)
		curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
	if ((mc = curl_multi_add_handle(el->multi, easy)) != CURLM_OK) {
		log_warnx("event engine: curl_multi_add_handle: %s",
		    curl_multi_strerror(mc));
		fetch_finish(t, easy, mc == CURLM_OUT_OF_MEMORY ?
		    CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
		evloop_easy_put(el, easy);
		evloop_defer(el, t);
		return 0;
	}
	t->engine_data = easy;
	TAILQ_INSERT_TAIL(&el->running, t, entry);
	el->nrunning++;
	/*
	 * Not started from here: curl_multi_add_handle() set libcurl's
	 * timeout to zero, so the timer starts every transfer submitted in
	 * this loop turn with one curl_multi_socket_action() and their
	 * requests leave together (see transfer_done() in fetchd.c). Nor can
	 * submit then complete a transfer re-entrantly.
	 */
	return 0;
}

/*
 * A running transfer is taken out of the multi handle at once and comes
 * back (deferred) as a retryable "cancelled"; what .part holds is kept for
 * resume. One already finished comes back as it ended.
 */
static void
evloop_cancel(struct engine *e, struct transfer *t)
{
	struct evloop *el = e->priv;

	if (t->engine_data == NULL)
		return;
	__atomic_store_n(&t->cancelled, 1, __ATOMIC_RELAXED);
	evloop_end(el, t, CURLE_ABORTED_BY_CALLBACK);
}

/*
 * Cancel what runs, hand everything back, then free it all. Also the
 * clean-up of a start that failed half way.
 */
static void
evloop_stop(struct engine *e)
{
	struct evloop *el = e->priv;
	struct transfer *t;
	struct evsock *es;

	if (el == NULL)
		return;
	while ((t = TAILQ_FIRST(&el->running)) != NULL) {
		__atomic_store_n(&t->cancelled, 1, __ATOMIC_RELAXED);
		evloop_end(el, t, CURLE_ABORTED_BY_CALLBACK);
	}
	engine_complete_all(e, &el->done);

	/* No more calls into us: the sockets libcurl still keeps open (the
	 * connection cache) are closed by curl_multi_cleanup(). */
	while ((es = TAILQ_FIRST(&el->socks)) != NULL)
		evsock_free(es);
	if (el->multi != NULL) {
		curl_multi_setopt(el->multi, CURLMOPT_SOCKETFUNCTION, NULL);
		curl_multi_setopt(el->multi, CURLMOPT_TIMERFUNCTION, NULL);
		curl_multi_cleanup(el->multi);
	}
	while (el->npool > 0)
		curl_easy_cleanup(el->pool[--el->npool]);
	free(el->pool);
	if (el->timer != NULL)
		event_free(el->timer);
	if (el->handback != NULL)
		event_free(el->handback);
	free(el);
	e->priv = NULL;
}

static void
evloop_stats(struct engine *e, struct engine_stats *st)
{
	struct evloop *el = e->priv;

	st->busy = el->nrunning;
}

const struct engine_ops engine_event = {
	.name = "event",
	.fit = evloop_fit,
	.start = evloop_start,
	.submit = evloop_submit,
	.cancel = evloop_cancel,
	.drain = NULL,
	.stop = evloop_stop,
	.stats = evloop_stats,
};
