/*
 * web.h: the daemon's HTTP listener (metrics_listen): the Prometheus text,
 * a read-only status page and the JSON it reads. Main loop only.
 *
 * The daemon supplies the figures through web_hooks (the same snapshots
 * the control socket answers with); this module owns the listener, the
 * routes, the headers every response carries, and what only the page
 * needs, each bounded: the jobs that ended lately, the busiest hosts, and
 * the last minutes of a few figures (so a page opened now draws its charts
 * from the start). Nothing here changes the daemon's state: every route
 * is GET or HEAD, any other method is answered 405.
 */
#ifndef FETCHD_WEB_H
#define FETCHD_WEB_H

#include <stddef.h>
#include <event2/event.h>
#include <jansson.h>

#include "fetch.h"
#include "jobs.h"

#define WEB_TIMEOUT 10          /* s a client may take for a request */
#define WEB_FINISHED 32         /* ended jobs listed by /jobs.json */
#define WEB_HOSTS 64            /* hosts counted (the least busy makes room) */
#define WEB_HOSTS_SHOWN 10      /* busiest hosts in /stats.json */
#define WEB_CSP_MAX 512         /* bytes of the Content-Security-Policy */
#define WEB_HISTORY 300         /* samples of /history.json, one a second */

/* The figures the page's charts draw, at one second. */
struct web_sample {
	double bps, ups;        /* bytes/s, URLs/s over the last second */
	long active;            /* transfers handed to an engine */
	long busy;              /* workers busy, draining engines' too */
	long workers;           /* the running engine's count */
};

struct web_hooks {
	/* New references, NULL on allocation failure: the `stats` and
	 * `jobs` objects of the control socket (without "proto"). */
	json_t *(*stats)(void *arg);
	json_t *(*jobs)(void *arg);
	/* The detail object of `jobs JOB`, a JSON null when there is no
	 * such job, NULL when out of memory. */
	json_t *(*job_detail)(void *arg, const char *job);
	/* The charts' figures now: cheap, called every second. */
	void (*sample)(void *arg, struct web_sample *s);
};

struct web;

/*
 * Serve on listen ("host:port", "[v6]:port"). NULL with a message in err.
 */
struct web *web_new(struct event_base *base, const char *listen,
    const struct web_hooks *hooks, void *arg, char *err, size_t errlen);

/* Close the listener and every connection. NULL is fine. */
void web_free(struct web *w);

/*
 * A transfer came back: final (it finished for good) or a failed attempt
 * that will be retried. Counted for its host. w may be NULL (no page).
 */
void web_transfer(struct web *w, const struct transfer *t, int final);

/* A job ended (ji: its counts), in failed/ or done/; result: the path of
 * its J.result ("" when unknown). w may be NULL. */
void web_job_ended(struct web *w, const struct job_info *ji, int failed,
    const char *result);

/*
 * The Content-Security-Policy for page: its inline <style> and <script>
 * blocks allowed by their sha256 hashes, nothing else inline. 0, or -1
 * when a block is not closed, there are more than a few, or buf is short.
 */
int web_csp(const char *page, char *buf, size_t len);

/* The status page (status.html, embedded at build time). */
extern const char web_page[];

#endif
