/*
 * jobhook_post.c: the POST mode, one attempt at on_job_done_url.
 *
 * jobhook.c runs it as a child process, this binary exec'd again through
 * /proc/self/exe as "fetchd: hook-post --hook-post", so the daemon's loop
 * never waits on the network and the POST has the program hook's time
 * limit, cap and logging. Everything comes in the environment (never on
 * the command line, which other users can read): FETCHD_HOOK_URL,
 * FETCHD_HOOK_BODY (the JSON), FETCHD_HOOK_TIMEOUT (s),
 * FETCHD_HOOK_USER_AGENT, FETCHD_HOOK_VERIFY_TLS (0 or 1),
 * FETCHD_HOOK_CA_FILE. What happened is one line on stderr, which the
 * daemon logs, with the URL cut to scheme, host, port and path (no
 * userinfo, no query); the exit status says what to do next (enum
 * jobhook_post_exit). Only http and https; redirects are not followed.
 */
#include <sys/prctl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "jobhook.h"

/* The URL for messages: scheme://host[:port]/path, nothing else. */
static void
post_url_for_log(const char *url, char *buf, size_t len)
{
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
	CURLU *u = curl_url();

	snprintf(buf, len, "(the URL)");
	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	(void)curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	(void)curl_url_get(u, CURLUPART_HOST, &host, 0);
	(void)curl_url_get(u, CURLUPART_PORT, &port, 0);
	(void)curl_url_get(u, CURLUPART_PATH, &path, 0);
	snprintf(buf, len, "%s://%s%s%s%s", scheme ? scheme : "?",
	    host ? host : "?", port ? ":" : "", port ? port : "",
	    path ? path : "/");
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
}

/* The answer's body is not wanted. */
static size_t
post_discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* What a finished attempt means (enum jobhook_post_exit). */
static int
post_verdict(CURLcode rc, long status)
{
	if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
		return JOBHOOK_POST_GIVEUP;
	if (rc != CURLE_OK)
		return JOBHOOK_POST_RETRY;      /* connection, timeout, TLS */
	if (status >= 200 && status < 300)
		return JOBHOOK_POST_OK;
	if (status >= 500 || status == 429)
		return JOBHOOK_POST_RETRY;
	return JOBHOOK_POST_GIVEUP;
}

static void
post_options(CURL *h, const char *url, const char *body,
    struct curl_slist *hdr, char *errbuf)
{
	const char *s;
	long timeout = (s = getenv("FETCHD_HOOK_TIMEOUT")) ? atol(s) : 60;
	int verify = (s = getenv("FETCHD_HOOK_VERIFY_TLS")) ? atoi(s) : 1;

	if (timeout < 1)
		timeout = 1;
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	/* below the daemon's limit, so a slow server is reported as such */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	    timeout > 1 ? timeout * 1000 - 500 : 900L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, post_discard);
	if ((s = getenv("FETCHD_HOOK_USER_AGENT")) != NULL && *s != '\0')
		curl_easy_setopt(h, CURLOPT_USERAGENT, s);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if ((s = getenv("FETCHD_HOOK_CA_FILE")) != NULL && *s != '\0')
		curl_easy_setopt(h, CURLOPT_CAINFO, s);
}

int
jobhook_post_cmdline(int argc, char *const argv[])
{
	return argc == 2 && strcmp(argv[1], JOBHOOK_POST_ARG) == 0;
}

int
jobhook_post_main(void)
{
	const char *url = getenv("FETCHD_HOOK_URL");
	const char *body = getenv("FETCHD_HOOK_BODY");
	struct curl_slist *hdr = NULL;
	char shown[512], errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;
	CURL *h;
	int v;

	prctl(PR_SET_NAME, "fetchd-hookpost");
	if (url == NULL || body == NULL) {
		fprintf(stderr, "not started by fetchd (no FETCHD_HOOK_URL)\n");
		return JOBHOOK_POST_GIVEUP;
	}
	post_url_for_log(url, shown, sizeof(shown));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (h = curl_easy_init()) == NULL || (hdr = curl_slist_append(NULL,
	    "Content-Type: application/json")) == NULL) {
		fprintf(stderr, "POST %s: libcurl cannot start\n", shown);
		return JOBHOOK_POST_RETRY;
	}
	post_options(h, url, body, hdr, errbuf);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	v = post_verdict(rc, status);
	if (rc != CURLE_OK)
		/* libcurl's detail, unless it might show a userinfo */
		fprintf(stderr, "POST %s: %s\n", shown,
		    errbuf[0] != '\0' && strchr(errbuf, '@') == NULL ?
		    errbuf : curl_easy_strerror(rc));
	else
		fprintf(stderr, "POST %s: HTTP %ld%s\n", shown, status,
		    status >= 300 && status < 400 ?
		    " (redirects are not followed)" : "");
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return v;
}
