/*
 * web.c: the HTTP listener of metrics_listen. Routes, all GET or HEAD:
 *
 *   /               the status page (status.html, embedded at build time)
 *   /metrics        the Prometheus text (proto_prometheus of the stats)
 *   /stats.json     the `stats` object, plus "hosts": the busiest hosts
 *   /jobs.json      the `jobs` object, plus "finished": the jobs that
 *                   ended lately, newest first, with their result's path
 *   /jobs/J.json    the detail of job J (`jobs J`)
 *   /history.json   the last WEB_HISTORY seconds of the figures the
 *                   page's charts draw, oldest first (read once, at load)
 *
 * Anything else is 404; any other method 405 with Allow. Nothing here
 * pauses, cancels or submits: the listener is read-only by construction.
 * Every response carries a strict Content-Security-Policy (the page's
 * inline style and script allowed by their sha256, computed here at
 * start-up from the embedded page, so the two never disagree), nosniff,
 * no-store and no-referrer.
 *
 * The page's JSON shows URLs only as the control socket does (feed.c
 * redacts them); hosts are names without userinfo. What the page needs
 * beyond the snapshots is kept here, fixed-size: WEB_FINISHED ended jobs
 * in a ring, WEB_HOSTS host counters, where a new host takes the place
 * of the least busy one, and a ring of WEB_HISTORY samples the daemon
 * gives every second (web_hooks.sample: a few counters, no snapshot).
 * Memory does not grow with the hours a page is left open, nor with the
 * number of requests: each is answered at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "log.h"
#include "proto.h"
#include "util.h"
#include "web.h"

#define WEB_HOST_MAX 256        /* bytes of a host name kept, with NUL */
#define WEB_CSP_BLOCKS 4        /* inline blocks of each kind allowed */
#define WEB_BODY_MAX 4096       /* a request body read (then refused) */

/* A job that ended, for the page's "finished" table. */
struct web_ended {
	char *name;
	char *result;
	int failed;
	double time;            /* s since the epoch */
	size_t urls, done, nfailed;
	uint64_t bytes;
	double seconds;
};

/* What one host's transfers came to. */
struct web_host {
	char name[WEB_HOST_MAX];
	uint64_t transfers;     /* URLs finished for good */
	uint64_t bytes;         /* of the finished files */
	uint64_t errors;        /* failed attempts, retried ones included */
};

struct web {
	struct evhttp *http;
	struct event *ev_sample;
	struct web_hooks hooks;
	void *arg;
	char csp[WEB_CSP_MAX];
	size_t page_len;

	struct web_ended ended[WEB_FINISHED];
	size_t ended_next, ended_n;
	struct web_host hosts[WEB_HOSTS];
	size_t nhosts;
	struct web_sample history[WEB_HISTORY];
	size_t hist_next, hist_n;
};

/*
 * The Content-Security-Policy.
 */

/* Append " 'sha256-...'" for each block between open and close. */
static int
csp_hashes(const char *page, const char *open, const char *close, char *buf,
    size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE], b64[64];
	const char *s, *e;
	unsigned mdlen;
	size_t used = strlen(buf), n;
	int w;

	for (n = 0; (s = strstr(page, open)) != NULL; n++) {
		s += strlen(open);
		if (n == WEB_CSP_BLOCKS || (e = strstr(s, close)) == NULL)
			return -1;
		if (EVP_Digest(s, (size_t)(e - s), md, &mdlen, EVP_sha256(),
		    NULL) != 1 || mdlen != 32)
			return -1;
		EVP_EncodeBlock(b64, md, 32);
		w = snprintf(buf + used, len - used, " 'sha256-%s'", b64);
		if (w < 0 || (size_t)w >= len - used)
			return -1;
		used += (size_t)w;
		page = e + strlen(close);
	}
	if (n == 0 && snprintf(buf + used, len - used, " 'none'") >=
	    (int)(len - used))
		return -1;
	return 0;
}

int
web_csp(const char *page, char *buf, size_t len)
{
	static const char rest[] = "; connect-src 'self'; img-src 'self' data:;"
	    " base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
	size_t used;

	if (len < sizeof(rest))
		return -1;
	snprintf(buf, len, "default-src 'none'; script-src");
	if (csp_hashes(page, "<script>", "</script>", buf, len) == -1)
		return -1;
	used = strlen(buf);
	if (snprintf(buf + used, len - used, "; style-src") >=
	    (int)(len - used) ||
	    csp_hashes(page, "<style>", "</style>", buf, len) == -1)
		return -1;
	used = strlen(buf);
	if (len - used < sizeof(rest))
		return -1;
	memcpy(buf + used, rest, sizeof(rest));
	return 0;
}

/*
 * The page's own tables: ended jobs and hosts.
 */
void
web_job_ended(struct web *w, const struct job_info *ji, int failed,
    const char *result)
{
	struct web_ended *e;
	char *name, *res;

	if (w == NULL)
		return;
	if ((name = strdup(ji->name)) == NULL ||
	    (res = strdup(result)) == NULL) {
		free(name);
		return;         /* out of memory: the table misses one */
	}
	e = &w->ended[w->ended_next];
	free(e->name);
	free(e->result);
	e->name = name;
	e->result = res;
	e->failed = failed;
	e->time = util_wall();
	e->urls = ji->urls;
	e->done = ji->done;
	e->nfailed = ji->failed;
	e->bytes = ji->bytes;
	e->seconds = ji->seconds;
	w->ended_next = (w->ended_next + 1) % WEB_FINISHED;
	if (w->ended_n < WEB_FINISHED)
		w->ended_n++;
}

static json_t *
ended_json(const struct web *w)
{
	const struct web_ended *e;
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < w->ended_n; i++) {
		e = &w->ended[(w->ended_next + WEB_FINISHED - 1 - i) %
		    WEB_FINISHED];
		if (json_array_append_new(a, json_pack(
		    "{s:s,s:s,s:f,s:I,s:I,s:I,s:I,s:f,s:s}",
		    "name", e->name, "state", e->failed ? "failed" : "done",
		    "time", e->time, "urls", (json_int_t)e->urls,
		    "done", (json_int_t)e->done,
		    "failed", (json_int_t)e->nfailed,
		    "bytes", (json_int_t)e->bytes, "seconds", e->seconds,
		    "result", e->result)) == -1) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* The host's counters; a new host takes an empty slot, else the place of
 * the least busy one (a host seen once does not stay forever). */
static struct web_host *
host_slot(struct web *w, const char *name)
{
	struct web_host *h, *least = NULL;
	size_t i;

	for (i = 0; i < w->nhosts; i++) {
		h = &w->hosts[i];
		if (strcmp(h->name, name) == 0)
			return h;
		if (least == NULL || h->transfers + h->errors <
		    least->transfers + least->errors)
			least = h;
	}
	h = w->nhosts < WEB_HOSTS ? &w->hosts[w->nhosts++] : least;
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	return h;
}

void
web_transfer(struct web *w, const struct transfer *t, int final)
{
	struct web_host *h;

	if (w == NULL || t->host == NULL)
		return;
	h = host_slot(w, t->host);
	if (t->outcome != FETCH_OK)
		h->errors++;
	if (!final)
		return;
	h->transfers++;
	if (t->outcome == FETCH_OK)
		h->bytes += t->size;
}

static int
host_cmp(const void *a, const void *b)
{
	const struct web_host *x = *(const struct web_host *const *)a;
	const struct web_host *y = *(const struct web_host *const *)b;

	if (x->transfers != y->transfers)
		return x->transfers < y->transfers ? 1 : -1;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* The WEB_HOSTS_SHOWN busiest hosts, by URLs finished then bytes. */
static json_t *
hosts_json(const struct web *w)
{
	const struct web_host *by[WEB_HOSTS];
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < w->nhosts; i++)
		by[i] = &w->hosts[i];
	qsort(by, w->nhosts, sizeof(by[0]), host_cmp);
	for (i = 0; a != NULL && i < w->nhosts && i < WEB_HOSTS_SHOWN; i++)
		if (json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I}",
		    "host", by[i]->name,
		    "transfers", (json_int_t)by[i]->transfers,
		    "bytes", (json_int_t)by[i]->bytes,
		    "errors", (json_int_t)by[i]->errors)) == -1) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/*
 * The charts' history.
 */
static void
sample_cb(evutil_socket_t fd, short what, void *arg)
{
	struct web *w = arg;

	w->hooks.sample(w->arg, &w->history[w->hist_next]);
	w->hist_next = (w->hist_next + 1) % WEB_HISTORY;
	if (w->hist_n < WEB_HISTORY)
		w->hist_n++;
}

/* {"bytes_per_s": [...], ...}, oldest first. */
static json_t *
history_json(const struct web *w)
{
	const struct web_sample *s;
	json_t *a[5], *o;
	size_t i, k;

	for (k = 0; k < 5; k++)
		a[k] = json_array();
	for (i = 0; i < w->hist_n; i++) {
		s = &w->history[(w->hist_next + WEB_HISTORY - w->hist_n + i) %
		    WEB_HISTORY];
		json_array_append_new(a[0], json_real(s->bps));
		json_array_append_new(a[1], json_real(s->ups));
		json_array_append_new(a[2], json_integer(s->active));
		json_array_append_new(a[3], json_integer(s->busy));
		json_array_append_new(a[4], json_integer(s->workers));
	}
	/* json_pack steals the "o" references, also when it fails. */
	o = json_pack("{s:o,s:o,s:o,s:o,s:o}", "bytes_per_s", a[0],
	    "urls_per_s", a[1], "transfers_active", a[2],
	    "workers_busy", a[3], "workers", a[4]);
	for (k = 0; k < 5; k++)
		if (json_array_size(a[k]) != w->hist_n) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/*
 * Replies.
 */
static void
reply(struct web *w, struct evhttp_request *req, int code, const char *type,
    const char *data, size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = NULL;
	char n[32];

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Content-Security-Policy", w->csp);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	snprintf(n, sizeof(n), "%zu", len);
	evhttp_add_header(h, "Content-Length", n);
	/* HEAD: the headers of a GET, no body. */
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD &&
	    (buf = evbuffer_new()) != NULL)
		evbuffer_add(buf, data, len);
	evhttp_send_reply(req, code, code == HTTP_OK ? "OK" :
	    code == HTTP_NOTFOUND ? "Not Found" : code == 405 ?
	    "Method Not Allowed" : "Internal Server Error", buf);
	if (buf != NULL)
		evbuffer_free(buf);
}

static void
reply_text(struct web *w, struct evhttp_request *req, int code,
    const char *text)
{
	reply(w, req, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* o (stolen): 200 with it as JSON; NULL: out of memory. */
static void
reply_json(struct web *w, struct evhttp_request *req, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (s == NULL) {
		reply_text(w, req, HTTP_INTERNAL, "out of memory\n");
		return;
	}
	reply(w, req, HTTP_OK, "application/json", s, strlen(s));
	free(s);
}

/* o (stolen) with member name set to v (stolen); NULL when either is. */
static json_t *
with(json_t *o, const char *name, json_t *v)
{
	if (o != NULL && (v == NULL || json_object_set_new(o, name, v) == -1)) {
		json_decref(o);
		return NULL;
	}
	if (o == NULL)
		json_decref(v);
	return o;
}

static void
get_metrics(struct web *w, struct evhttp_request *req)
{
	json_t *st = w->hooks.stats(w->arg);
	char *text = st != NULL ? proto_prometheus(st) : NULL;

	json_decref(st);
	if (text == NULL) {
		reply_text(w, req, HTTP_INTERNAL, "out of memory\n");
		return;
	}
	reply(w, req, HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
	    text, strlen(text));
	free(text);
}

/* /jobs/NAME.json: NAME percent-decoded, a plain file name. */
static void
get_job(struct web *w, struct evhttp_request *req, const char *path)
{
	size_t plen = strlen(path), n = 0;
	char *enc, *name = NULL;
	json_t *o = NULL;

	if (plen > strlen("/jobs/.json") && plen < 3 * 256 &&
	    (enc = strndup(path + 6, plen - 11)) != NULL) {
		name = evhttp_uridecode(enc, 0, &n);
		free(enc);
	}
	if (name != NULL && n == strlen(name) && n > 0 &&
	    strchr(name, '/') == NULL && name[0] != '.')
		o = w->hooks.job_detail(w->arg, name);
	free(name);
	if (o == NULL || json_is_null(o)) {
		json_decref(o);
		reply_text(w, req, HTTP_NOTFOUND, "no such job\n");
		return;
	}
	reply_json(w, req, o);
}

static int
suffix(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);

	return n >= m && strcmp(s + n - m, end) == 0;
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	struct web *w = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		reply_text(w, req, 405, "read-only: GET or HEAD\n");
	} else if (path == NULL) {
		reply_text(w, req, HTTP_NOTFOUND, "not found\n");
	} else if (strcmp(path, "/") == 0) {
		reply(w, req, HTTP_OK, "text/html; charset=utf-8", web_page,
		    w->page_len);
	} else if (strcmp(path, "/metrics") == 0) {
		get_metrics(w, req);
	} else if (strcmp(path, "/stats.json") == 0) {
		reply_json(w, req, with(w->hooks.stats(w->arg), "hosts",
		    hosts_json(w)));
	} else if (strcmp(path, "/jobs.json") == 0) {
		reply_json(w, req, with(w->hooks.jobs(w->arg), "finished",
		    ended_json(w)));
	} else if (strcmp(path, "/history.json") == 0) {
		reply_json(w, req, history_json(w));
	} else if (strncmp(path, "/jobs/", 6) == 0 && suffix(path, ".json")) {
		get_job(w, req, path);
	} else {
		reply_text(w, req, HTTP_NOTFOUND, "not found\n");
	}
}

/*
 * The listener.
 */

/* "host:port" or "[v6]:port" into host and port. 0 or -1. */
static int
split_listen(const char *listen, char *host, size_t hostlen, long *port)
{
	const char *colon;
	size_t n;

	if ((colon = strrchr(listen, ':')) == NULL ||
	    (n = (size_t)(colon - listen)) == 0 || n >= hostlen)
		return -1;
	if (listen[0] == '[' && n >= 2 && listen[n - 1] == ']') {
		memcpy(host, listen + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		memcpy(host, listen, n);
		host[n] = '\0';
	}
	*port = strtol(colon + 1, NULL, 10);
	return *port > 0 && *port <= 65535 ? 0 : -1;
}

struct web *
web_new(struct event_base *base, const char *listen,
    const struct web_hooks *hooks, void *arg, char *err, size_t errlen)
{
	struct timeval sec = { 1, 0 };
	struct web *w;
	char host[256];
	long port;

	if (split_listen(listen, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen, "metrics_listen %s is not host:port",
		    listen);
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (web_csp(web_page, w->csp, sizeof(w->csp)) == -1)
		fatalx("the status page's inline blocks do not fit a CSP");
	w->page_len = strlen(web_page);
	w->hooks = *hooks;
	w->arg = arg;
	/* Every method reaches request_cb, which answers 405 but to GET and
	 * HEAD: a refusal that says what is allowed. */
	evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(w->http, WEB_TIMEOUT);
	evhttp_set_max_headers_size(w->http, 8192);
	evhttp_set_max_body_size(w->http, WEB_BODY_MAX);
	evhttp_set_gencb(w->http, request_cb, w);
	if (evhttp_bind_socket_with_handle(w->http, host,
	    (ev_uint16_t)port) == NULL) {
		snprintf(err, errlen, "cannot serve metrics on %s: %s", listen,
		    strerror(errno));
		goto fail;
	}
	if ((w->ev_sample = event_new(base, -1, EV_PERSIST, sample_cb, w)) ==
	    NULL || event_add(w->ev_sample, &sec) == -1) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log_info("status page and metrics on http://%s/", listen);
	return w;
fail:
	web_free(w);
	return NULL;
}

void
web_free(struct web *w)
{
	size_t i;

	if (w == NULL)
		return;
	if (w->http != NULL)
		evhttp_free(w->http);
	if (w->ev_sample != NULL)
		event_free(w->ev_sample);
	for (i = 0; i < WEB_FINISHED; i++) {
		free(w->ended[i].name);
		free(w->ended[i].result);
	}
	free(w);
}
