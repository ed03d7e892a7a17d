/*
 * check_fetch.c: the one-transfer module against a real HTTP server.
 *
 * Most cases reserve a name the way the daemon does (a names.h object for
 * the job directory) and drive fetch_run() against tests/httpd.py
 * on loopback (its query parameters produce the faults: truncated bodies,
 * resets, Range ignored, redirects, hangs, slow bodies, status sequences),
 * and read its request log to see what was asked for. A few responses no
 * well-behaved server sends (a 206 for the wrong range, a 3xx without
 * Location) come from a one-shot canned server on a thread here.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "fetch.h"
#include "names.h"
#include "testlib.h"

static int key_seq;

/* Per test: a scratch directory; the job directory J is made by the
 * first reservation, "out" is somewhere a symlink must never lead to. */
static char tmp[64];
static char jdir[128];
static char outside[128];
static struct names *nm;        /* the names of J, as a job holds them */

/* A key no other request (of this or an earlier run) uses. */
static const char *
new_key(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "%s-%ld-%d", tag, (long)getpid(), ++key_seq);
	return buf;
}

static char *
url_for(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "http://127.0.0.1:PORT" + the formatted path; freed by the caller. */
static char *
url_for(const char *fmt, ...)
{
	char path[4096], *u;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	ck_assert_int_ne(asprintf(&u, "http://127.0.0.1:%d%s",
	    testlib_server_port(), path), -1);
	return u;
}

static void
pct_encode(char *dst, size_t len, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *src != '\0' && o + 4 < len; src++) {
		unsigned char c = (unsigned char)*src;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~')
			dst[o++] = (char)c;
		else {
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
}

struct log_want {
	const char *key, *range;
	long status;
};

static int
log_match(json_t *o, const void *arg)
{
	const struct log_want *w = arg;
	json_t *k, *r, *st;

	k = json_object_get(o, "key");
	r = json_object_get(o, "range");
	st = json_object_get(o, "status");
	return json_is_string(k) &&
	    strcmp(json_string_value(k), w->key) == 0 &&
	    (w->range == NULL ? (r == NULL || json_is_null(r)) :
	    (json_is_string(r) &&
	    strcmp(json_string_value(r), w->range) == 0)) &&
	    (w->status == -1 || (json_is_integer(st) &&
	    json_integer_value(st) == w->status));
}

/*
 * How many log lines match key, range and status, once there are at least
 * want of them or after a deadline (the server logs a request when its
 * response ends).
 */
static int
log_count(const char *key, const char *range, long status, int want)
{
	struct log_want w = { key, range, status };
	double deadline = testlib_now() + 10;
	int n;

	do {
		if ((n = testlib_server_log_count(log_match, &w)) == -1 ||
		    n >= want)
			return n;
		testlib_pause_ms(20);
	} while (testlib_now() < deadline);
	return n;
}

/* Is there a log line for key whose Range header is range (NULL: none) and
 * whose status is status (-1: any)? */
static int
log_has(const char *key, const char *range, long status)
{
	return log_count(key, range, status, 1) > 0;
}

/* --- expected bodies and files ------------------------------------------ */

static unsigned char *
gen_body(size_t size, int seed)
{
	unsigned char *b = malloc(size ? size : 1);

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < size; i++)
		b[i] = (unsigned char)((i * 7 + (size_t)seed) % 251);
	return b;
}

static void
sha256(const void *buf, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	ck_assert_int_eq(EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL), 1);
	ck_assert_uint_eq(n, 32);
}

static void
hex(const unsigned char *md, char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Path of a name under the job directory. */
static const char *
jpath(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", jdir, name);
	return buf;
}

/* Size of path, -1 when absent (never following a symlink). */
static long long
lsize(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return -1;
	return (long long)st.st_size;
}

static long long
jsize(const char *name)
{
	char p[512];

	return lsize(jpath(p, sizeof(p), name));
}

static long long
jpart_size(const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s.part", jdir, name);
	return lsize(p);
}

static void
write_path(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void
write_part(const char *name, const void *buf, size_t len)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s.part", jdir, name);
	write_path(p, buf, len);
}

/* Reserve t's name in J as the daemon does: 0, 1 or -1 as names_reserve. */
static int
reserve(struct transfer *t, int resume)
{
	return names_reserve(nm, t, resume);
}

/* The end of a transfer: its name is no longer held, then it is freed. */
static void
drop(struct transfer *t)
{
	if (t != NULL && nm != NULL)
		names_release(nm, t);
	fetch_transfer_free(t);
}

/* Does the file hold exactly the body httpd.py sends for (size, seed)? */
static void
assert_file_body(const char *name, size_t size, int seed)
{
	char p[512];
	unsigned char *want = gen_body(size, seed), *got;
	int fd;
	ssize_t n;

	ck_assert_int_eq(jsize(name), (long long)size);
	fd = open(jpath(p, sizeof(p), name), O_RDONLY);
	ck_assert_int_ge(fd, 0);
	got = malloc(size + 1);
	ck_assert_ptr_nonnull(got);
	n = read(fd, got, size + 1);
	close(fd);
	ck_assert_int_eq(n, (ssize_t)size);
	ck_assert_msg(memcmp(got, want, size) == 0, "%s: wrong bytes", name);
	free(got);
	free(want);
}

static void
assert_no_tabs(const struct transfer *t)
{
	ck_assert_ptr_null(strchr(t->error, '\t'));
	ck_assert_ptr_null(strchr(t->error, '\n'));
	ck_assert_ptr_null(strchr(t->error, '\r'));
}

/* --- fixtures ----------------------------------------------------------- */

static void
setup(void)
{
	testlib_tmpdir(tmp, sizeof(tmp), "check_fetch");
	snprintf(jdir, sizeof(jdir), "%s/J", tmp);
	snprintf(outside, sizeof(outside), "%s/out", tmp);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
	nm = names_new(jdir, 0);
	ck_assert_ptr_nonnull(nm);
}

static void
teardown(void)
{
	names_free(nm);
	nm = NULL;
	testlib_rm_rf(tmp);
}

static struct transfer *
new_transfer(const char *url, const char *name)
{
	struct transfer *t = fetch_transfer_new(url, "127.0.0.1", jdir, name);

	ck_assert_ptr_nonnull(t);
	t->params.connect_timeout = 5;
	t->params.timeout = 30;
	t->params.max_redirects = 5;
	t->params.verify_tls = 1;
	snprintf(t->params.user_agent, sizeof(t->params.user_agent),
	    "fetchd-test/1");
	return t;
}

/* A transfer for httpd.py's /f/<name>?<query>, its name reserved in J. */
static struct transfer *
prepared(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct transfer *
prepared(const char *name, const char *fmt, ...)
{
	char q[2048];
	char *u;
	va_list ap;
	struct transfer *t;

	va_start(ap, fmt);
	vsnprintf(q, sizeof(q), fmt, ap);
	va_end(ap);
	u = url_for("/f/%s?%s", name, q);
	t = new_transfer(u, name);
	free(u);
	ck_assert_int_eq(reserve(t, 0), 0);
	return t;
}

static void
run(struct transfer *t)
{
	CURL *easy = curl_easy_init();

	ck_assert_ptr_nonnull(easy);
	fetch_run(t, easy, NULL);
	curl_easy_cleanup(easy);
	ck_assert_ptr_null(t->state);
}

static void
set_sha(struct transfer *t, size_t size, int seed)
{
	unsigned char *b = gen_body(size, seed);

	sha256(b, size, t->sha256);
	t->has_sha256 = 1;
	free(b);
}

/* --- plain transfers ---------------------------------------------------- */

START_TEST(test_ok_1mib)
{
	char key[64], p[512];
	const size_t size = 1024 * 1024;
	struct transfer *t;
	struct stat st;

	t = prepared("a.bin", "size=%zu&seed=3&key=%s", size,
	    new_key(key, sizeof(key), "ok"));
	set_sha(t, size, 3);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->errkind, FERR_NONE);
	ck_assert_str_eq(t->error, "");
	ck_assert_int_eq(t->http_status, 200);
	ck_assert_uint_eq(t->size, size);
	ck_assert_uint_eq(t->received, size);
	ck_assert_uint_eq(__atomic_load_n(&t->progress, __ATOMIC_RELAXED),
	    size);
	ck_assert_int_eq(t->retry_after, -1);
	ck_assert(t->ttfb > 0);
	ck_assert(t->seconds >= t->ttfb);
	assert_file_body("a.bin", size, 3);
	ck_assert_int_eq(jpart_size("a.bin"), -1);
	ck_assert_int_eq(lstat(jpath(p, sizeof(p), "a.bin"), &st), 0);
	ck_assert_int_eq(st.st_mode & 0137, 0);
	/* No Range on a first try. */
	ck_assert(log_has(key, NULL, 200));
	drop(t);
}
END_TEST

START_TEST(test_sha_mismatch)
{
	char key[64], want[65];
	unsigned char *b, md[32];
	struct transfer *t;

	t = prepared("a.bin", "size=5000&seed=1&key=%s",
	    new_key(key, sizeof(key), "sha"));
	set_sha(t, 5000, 2);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_CHECKSUM);
	b = gen_body(5000, 1);
	sha256(b, 5000, md);
	free(b);
	hex(md, want);
	ck_assert_msg(strstr(t->error, "sha256 mismatch") != NULL &&
	    strstr(t->error, want) != NULL, "error: %s", t->error);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

START_TEST(test_404)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "status=404&key=%s",
	    new_key(key, sizeof(key), "404"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_HTTP_4XX);
	ck_assert_int_eq(t->http_status, 404);
	ck_assert_str_eq(t->error, "HTTP 404");
	ck_assert_int_eq(t->retry_after, -1);
	/* The error page is not the file. */
	ck_assert_uint_eq(t->received, 0);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

/*
 * How each libcurl failure is classified, without the network: begin a
 * transfer, then finish it as if libcurl had failed with that code. A name
 * that does not resolve is transient (the resolver or the network may be
 * back at the next attempt), like a refused connection or a timeout.
 */
START_TEST(test_curl_failures_classified)
{
	static const struct {
		CURLcode res;
		enum fetch_outcome outcome;
		enum fetch_errkind kind;
	} cases[] = {
		{ CURLE_COULDNT_RESOLVE_HOST, FETCH_RETRY, FERR_DNS },
		{ CURLE_COULDNT_RESOLVE_PROXY, FETCH_RETRY, FERR_DNS },
		{ CURLE_COULDNT_CONNECT, FETCH_RETRY, FERR_CONNECT },
		{ CURLE_OPERATION_TIMEDOUT, FETCH_RETRY, FERR_TIMEOUT },
		{ CURLE_RECV_ERROR, FETCH_RETRY, FERR_RESET },
		{ CURLE_GOT_NOTHING, FETCH_RETRY, FERR_RESET },
		{ CURLE_UNSUPPORTED_PROTOCOL, FETCH_FAIL, FERR_PROTOCOL_REFUSED },
		{ CURLE_TOO_MANY_REDIRECTS, FETCH_FAIL, FERR_OTHER },
		{ CURLE_PEER_FAILED_VERIFICATION, FETCH_FAIL, FERR_OTHER },
	};
	struct transfer *t;
	CURL *easy = curl_easy_init();
	size_t i;

	ck_assert_ptr_nonnull(easy);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = new_transfer("http://127.0.0.1:9/x.bin", "x.bin");
		ck_assert_int_eq(reserve(t, 0), 0);
		ck_assert_int_eq(fetch_begin(t, easy, NULL), 0);
		fetch_finish(t, easy, cases[i].res);
		ck_assert_msg(t->outcome == cases[i].outcome &&
		    t->errkind == cases[i].kind, "curl code %d: outcome %d "
		    "kind %s (%s)", (int)cases[i].res, (int)t->outcome,
		    fetch_errkind_name(t->errkind), t->error);
		ck_assert_str_ne(t->error, "");
		fetch_discard(t);
		drop(t);
	}
	curl_easy_cleanup(easy);
}
END_TEST

START_TEST(test_503_retry_after)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "status=503&retry_after=7&key=%s",
	    new_key(key, sizeof(key), "503"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_HTTP_5XX);
	ck_assert_int_eq(t->http_status, 503);
	ck_assert_int_eq(t->retry_after, 7);
	ck_assert_str_eq(t->error, "HTTP 503");
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	drop(t);
}
END_TEST

START_TEST(test_429)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "status=429&retry_after=3&key=%s",
	    new_key(key, sizeof(key), "429"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_HTTP_4XX);
	ck_assert_int_eq(t->http_status, 429);
	ck_assert_int_eq(t->retry_after, 3);
	drop(t);
}
END_TEST

/* A retry of the same transfer starts clean: nothing left from the first
 * attempt's failure. */
START_TEST(test_status_sequence)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "status=503,200&size=2000&key=%s",
	    new_key(key, sizeof(key), "seq"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_HTTP_5XX);
	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->errkind, FERR_NONE);
	ck_assert_str_eq(t->error, "");
	ck_assert_int_eq(t->http_status, 200);
	assert_file_body("a.bin", 2000, 0);
	drop(t);
}
END_TEST

/* --- resume ------------------------------------------------------------- */

START_TEST(test_truncate_resume)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "size=100000&seed=5&truncate=30000&key=%s",
	    new_key(key, sizeof(key), "trunc"));
	set_sha(t, 100000, 5);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_RESET);
	ck_assert_int_eq(jpart_size("a.bin"), 30000);
	ck_assert_uint_eq(t->received, 30000);
	ck_assert_int_eq(jsize("a.bin"), -1);
	assert_no_tabs(t);

	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, 206);
	ck_assert_uint_eq(t->received, 70000);
	ck_assert_uint_eq(t->size, 100000);
	ck_assert(log_has(key, "bytes=30000-", 206));
	assert_file_body("a.bin", 100000, 5);
	ck_assert_int_eq(jpart_size("a.bin"), -1);
	drop(t);
}
END_TEST

struct if_range_want {
	struct log_want w;      /* first: log_match() reads it */
	const char *value;      /* the If-Range header wanted */
};

static int
if_range_match(json_t *o, const void *arg)
{
	const struct if_range_want *iw = arg;
	json_t *v = json_object_get(o, "if_range");

	return log_match(o, &iw->w) && json_is_string(v) &&
	    strcmp(json_string_value(v), iw->value) == 0;
}

/* Was a request for key with range and status logged with If-Range value
 * (waiting until a deadline, as log_count() does)? */
static int
log_if_range(const char *key, const char *range, long status,
    const char *value)
{
	struct if_range_want iw = { { key, range, status }, value };
	double deadline = testlib_now() + 10;

	do {
		if (testlib_server_log_count(if_range_match, &iw) > 0)
			return 1;
		testlib_pause_ms(20);
	} while (testlib_now() < deadline);
	return 0;
}

/*
 * A transfer of 100000 bytes cut at cut with ETags etags ("A", then
 * another or the same), resumed: If-Range "A" goes out, and the answer is
 * code (200: the whole again, 206: the rest); the file is right.
 */
static void
resume_if_range(const char *name, const char *etags, int seed, int cut,
    long code)
{
	char key[64], range[32];
	struct transfer *t;

	t = prepared(name, "size=100000&seed=%d&truncate=%d&etag=%s&key=%s",
	    seed, cut, etags, new_key(key, sizeof(key), "ifr"));
	set_sha(t, 100000, seed);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_str_eq(t->expect.etag, "\"A\"");
	ck_assert(t->expect.length == 100000);
	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, code);
	ck_assert_uint_eq(t->received, code == 200 ? 100000 : 100000 - cut);
	snprintf(range, sizeof(range), "bytes=%d-", cut);
	ck_assert(log_if_range(key, range, code, "\"A\""));
	assert_file_body(name, 100000, seed);
	drop(t);
}

/*
 * A resume asks for the rest of the very resource the .part holds: the
 * first attempt's ETag goes out as If-Range; a server whose resource
 * changed (another ETag) answers the whole of it with a 200, which
 * replaces what the .part held; one whose resource did not, the range.
 */
START_TEST(test_if_range_resume)
{
	resume_if_range("c.bin", "A,B", 5, 30000, 200);
	resume_if_range("s.bin", "A", 6, 40000, 206);
}
END_TEST

/* Without validators, a 206 of a resource of another length than the one
 * the .part was taken from starts the file again. */
START_TEST(test_resume_length_changed)
{
	char key[64];
	struct transfer *t;

	t = prepared("l.bin", "size=100000&seed=7&truncate=30000&key=%s",
	    new_key(key, sizeof(key), "len"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(jpart_size("l.bin"), 30000);
	ck_assert_str_eq(t->expect.etag, "");
	t->expect.length = 99999;       /* as if it had been that long */
	t->attempt++;
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_msg(strstr(t->error, "the resource changed") != NULL,
	    "error: %s", t->error);
	ck_assert_int_eq(jpart_size("l.bin"), 0);
	ck_assert(t->expect.length == -1);
	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, 200);
	assert_file_body("l.bin", 100000, 7);
	drop(t);
}
END_TEST

/* A part tag (cluster mode) names the file NAME.TAG.part: a partial one
 * left by the same node is resumed with Range, and nothing else is used. */
START_TEST(test_part_tag_resume)
{
	char key[64], p[512];
	unsigned char *b = gen_body(50000, 2);
	struct transfer *t;

	t = prepared("t.bin", "size=50000&seed=2&key=%s",
	    new_key(key, sizeof(key), "tag"));
	ck_assert_ptr_nonnull(t->part_tag = strdup("node-1"));
	/* An untagged .part (another node's, or embedded mode's) is not
	 * ours: it stays as it is. */
	write_part("t.bin", b, 100);
	snprintf(p, sizeof(p), "%s/t.bin.node-1.part", jdir);
	write_path(p, b, 20000);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, 206);
	ck_assert_uint_eq(t->received, 30000);
	ck_assert(log_has(key, "bytes=20000-", 206));
	assert_file_body("t.bin", 50000, 2);
	ck_assert_int_eq(lsize(p), -1);
	ck_assert_int_eq(jpart_size("t.bin"), 100);
	free(b);
	drop(t);
}
END_TEST

/* With a part tag, a name another node published already (a shared
 * download dir, the same URL fetched twice) stands for this transfer when
 * it has the size written; any other file there is never replaced. */
START_TEST(test_part_tag_published_by_peer)
{
	char key[64], p[512];
	unsigned char *b = gen_body(4000, 1);
	struct transfer *t;

	t = prepared("s.bin", "size=4000&seed=1&key=%s",
	    new_key(key, sizeof(key), "peer"));
	ck_assert_ptr_nonnull(t->part_tag = strdup("n2"));
	write_path(jpath(p, sizeof(p), "s.bin"), b, 4000);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_uint_eq(t->size, 4000);
	snprintf(p, sizeof(p), "%s/s.bin.n2.part", jdir);
	ck_assert_int_eq(lsize(p), -1);
	drop(t);

	t = prepared("u.bin", "size=4000&seed=1&key=%s",
	    new_key(key, sizeof(key), "peer2"));
	ck_assert_ptr_nonnull(t->part_tag = strdup("n2"));
	write_path(jpath(p, sizeof(p), "u.bin"), b, 10);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_ptr_nonnull(strstr(t->error, "already exists"));
	ck_assert_int_eq(jsize("u.bin"), 10);
	free(b);
	drop(t);
}
END_TEST

START_TEST(test_reset_resume)
{
	char key[64], range[64];
	long long have;
	struct transfer *t;

	t = prepared("a.bin", "size=100000&seed=9&reset=40000&key=%s",
	    new_key(key, sizeof(key), "reset"));
	set_sha(t, 100000, 9);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_msg(t->errkind == FERR_RESET, "kind %s: %s",
	    fetch_errkind_name(t->errkind), t->error);
	have = jpart_size("a.bin");
	ck_assert_int_ge(have, 0);
	ck_assert_int_le(have, 40000);
	ck_assert_uint_eq(t->received, (uint64_t)have);

	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	if (have > 0) {
		snprintf(range, sizeof(range), "bytes=%lld-", have);
		ck_assert(log_has(key, range, 206));
	}
	assert_file_body("a.bin", 100000, 9);
	drop(t);
}
END_TEST

/*
 * The server ignores Range: start over, never append the whole body. junk
 * bytes of an earlier attempt are in the .part; the body is size bytes.
 */
static void
range_ignored(size_t size, int seed, size_t junk)
{
	char key[64], range[64], *buf;
	struct transfer *t;

	t = prepared("a.bin", "size=%zu&seed=%d&range=0&key=%s", size, seed,
	    new_key(key, sizeof(key), "norange"));
	buf = malloc(junk);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 0xee, junk);
	write_part("a.bin", buf, junk);
	free(buf);
	set_sha(t, size, seed);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, 200);
	snprintf(range, sizeof(range), "bytes=%zu-", junk);
	ck_assert(log_has(key, range, 200));
	ck_assert_uint_eq(t->size, size);
	assert_file_body("a.bin", size, seed);
	drop(t);
}

START_TEST(test_range_ignored)
{
	range_ignored(20000, 4, 5000);
}
END_TEST

/* Same, when the full body is empty: no write callback ever runs. */
START_TEST(test_range_ignored_empty)
{
	range_ignored(0, 0, 100);
}
END_TEST

/* A .part holding the whole file (a crash before the rename): the server
 * answers 416 and the file is finished without fetching it again. */
START_TEST(test_416_complete)
{
	char key[64];
	unsigned char *b = gen_body(3000, 2);
	struct transfer *t;

	t = prepared("a.bin", "size=3000&seed=2&key=%s",
	    new_key(key, sizeof(key), "416ok"));
	write_part("a.bin", b, 3000);
	set_sha(t, 3000, 2);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert(log_has(key, "bytes=3000-", 416));
	ck_assert_uint_eq(t->size, 3000);
	ck_assert_uint_eq(t->received, 0);
	assert_file_body("a.bin", 3000, 2);
	free(b);
	drop(t);
}
END_TEST

/* A .part longer than the resource is stale: emptied, then refetched. */
START_TEST(test_416_stale)
{
	char key[64];
	unsigned char *b = gen_body(4000, 2);
	struct transfer *t;

	t = prepared("a.bin", "size=3000&seed=2&key=%s",
	    new_key(key, sizeof(key), "416"));
	write_part("a.bin", b, 4000);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_HTTP_4XX);
	ck_assert_int_eq(t->http_status, 416);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 3000, 2);
	free(b);
	drop(t);
}
END_TEST

/* Resume through a redirect: the 302's headers do not confuse the 206. */
START_TEST(test_redirect_resume)
{
	char key[64], key2[64], target[512], enc[1024];
	unsigned char *b = gen_body(1000, 6);
	struct transfer *t;

	new_key(key2, sizeof(key2), "target");
	snprintf(target, sizeof(target), "/f/t.bin?size=8000&seed=6&key=%s",
	    key2);
	pct_encode(enc, sizeof(enc), target);
	t = prepared("a.bin", "redirect=%s&key=%s", enc,
	    new_key(key, sizeof(key), "redir"));
	write_part("a.bin", b, 1000);
	set_sha(t, 8000, 6);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_int_eq(t->http_status, 206);
	ck_assert(log_has(key2, "bytes=1000-", 206));
	assert_file_body("a.bin", 8000, 6);
	free(b);
	drop(t);
}
END_TEST

/* --- refusals and limits ------------------------------------------------ */

START_TEST(test_redirect_file)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "redirect=file%%3A%%2F%%2F%%2Fetc%%2Fpasswd&key=%s",
	    new_key(key, sizeof(key), "file"));
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_PROTOCOL_REFUSED);
	ck_assert_msg(strstr(t->error, "redirect to a refused protocol") !=
	    NULL, "error: %s", t->error);
	ck_assert_uint_eq(t->received, 0);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	ck_assert_int_eq(jsize("a.bin"), -1);
	assert_no_tabs(t);
	drop(t);
}
END_TEST

/*
 * A worker keeps one easy handle for every transfer it runs: after a
 * redirect to a refused protocol, libcurl 7.88 still holds that transfer's
 * receive buffer and refuses CURLOPT_BUFFERSIZE until the handle is gone.
 * The next transfer on the same handle must still work.
 */
START_TEST(test_handle_reused_after_refused_redirect)
{
	char key[64];
	struct transfer *t;
	CURL *easy = curl_easy_init();

	ck_assert_ptr_nonnull(easy);
	t = prepared("a.bin", "redirect=file%%3A%%2F%%2F%%2Fetc%%2Fpasswd&key=%s",
	    new_key(key, sizeof(key), "file"));
	fetch_run(t, easy, NULL);
	ck_assert_int_eq(t->errkind, FERR_PROTOCOL_REFUSED);
	drop(t);

	t = prepared("b.bin", "size=900&seed=5&key=%s",
	    new_key(key, sizeof(key), "after"));
	fetch_run(t, easy, NULL);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("b.bin", 900, 5);
	drop(t);
	curl_easy_cleanup(easy);
}
END_TEST

START_TEST(test_ftp_refused)
{
	struct transfer *t;

	t = new_transfer("ftp://127.0.0.1/x", "a.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_PROTOCOL_REFUSED);
	drop(t);
}
END_TEST

/* A chain of 3 redirects: fails with max_redirects 2, works with 3. */
static char *
redirect_chain(const char *end)
{
	char cur[4096], enc[3000], nxt[4096];

	snprintf(cur, sizeof(cur), "%s", end);
	for (int i = 0; i < 3; i++) {
		pct_encode(enc, sizeof(enc), cur);
		snprintf(nxt, sizeof(nxt), "/f/hop%d.bin?redirect=%s", i, enc);
		snprintf(cur, sizeof(cur), "%s", nxt);
	}
	return url_for("%s", cur);
}

START_TEST(test_max_redirects)
{
	char *u = redirect_chain("/f/end.bin?size=100");
	struct transfer *t;

	t = new_transfer(u, "a.bin");
	t->params.max_redirects = 2;
	ck_assert_int_eq(reserve(t, 0), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_int_eq(jsize("a.bin"), -1);

	t->params.max_redirects = 3;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 100, 0);
	free(u);
	drop(t);
}
END_TEST

START_TEST(test_max_file_size)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "size=5000&key=%s",
	    new_key(key, sizeof(key), "max"));
	t->params.max_file_size = 1000;
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_msg(strstr(t->error, "max_file_size") != NULL, "error: %s",
	    t->error);
	ck_assert_int_le(jpart_size("a.bin"), 1000);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

/* The limit is on the file, not on one response: a resumed 206 that fits
 * on its own but not on top of the .part is stopped too. */
START_TEST(test_max_file_size_resumed)
{
	char key[64];
	unsigned char *b = gen_body(600, 0);
	struct transfer *t;

	t = prepared("a.bin", "size=1200&key=%s",
	    new_key(key, sizeof(key), "maxr"));
	write_part("a.bin", b, 600);
	t->params.max_file_size = 1000;
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_msg(strstr(t->error, "max_file_size (1000 bytes)") != NULL,
	    "error: %s", t->error);
	ck_assert_int_le(jpart_size("a.bin"), 1000);
	ck_assert_int_eq(jsize("a.bin"), -1);
	free(b);
	drop(t);
}
END_TEST

START_TEST(test_max_file_size_exact)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "size=1000&key=%s",
	    new_key(key, sizeof(key), "maxe"));
	t->params.max_file_size = 1000;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 1000, 0);
	drop(t);
}
END_TEST

/* A port nothing listens on. */
static int
closed_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

START_TEST(test_connect_refused)
{
	char u[256];
	struct transfer *t;

	snprintf(u, sizeof(u), "http://user:s3cret@127.0.0.1:%d/f/a.bin",
	    closed_port());
	t = new_transfer(u, "a.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_CONNECT);
	ck_assert_str_ne(t->error, "");
	ck_assert_ptr_null(strstr(t->error, "s3cret"));
	drop(t);
}
END_TEST

START_TEST(test_timeout)
{
	char key[64];
	struct transfer *t;
	double t0;

	t = prepared("a.bin", "hang=1&key=%s",
	    new_key(key, sizeof(key), "hang"));
	t->params.timeout = 1;
	t0 = testlib_now();
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_TIMEOUT);
	ck_assert(testlib_now() - t0 >= 0.9);
	ck_assert(testlib_now() - t0 < 10);
	drop(t);
}
END_TEST

START_TEST(test_low_speed)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "size=100000&drip=200&key=%s",
	    new_key(key, sizeof(key), "slow"));
	t->params.low_speed_limit = 10000;
	t->params.low_speed_time = 1;
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_TIMEOUT);
	ck_assert(t->seconds < 10);
	drop(t);
}
END_TEST

START_TEST(test_rate_limit)
{
	char key[64];
	struct transfer *t;

	/* libcurl reads whatever is already buffered before it throttles, so
	 * the server sends at 1 MB/s (0.6 s unthrottled) and the limit must
	 * stretch that well past a second. */
	t = prepared("a.bin", "size=600000&drip=1000000&key=%s",
	    new_key(key, sizeof(key), "rate"));
	t->params.rate_limit = 100000;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_msg(t->seconds >= 1.5, "took %.2fs", t->seconds);
	assert_file_body("a.bin", 600000, 0);
	drop(t);
}
END_TEST

/* The proxy comes from the config only: *_proxy in the environment is
 * ignored, params.proxy is used. */
START_TEST(test_proxy)
{
	char key[64], bad[128];
	struct transfer *t;

	snprintf(bad, sizeof(bad), "http://127.0.0.1:%d", closed_port());
	setenv("http_proxy", bad, 1);
	setenv("ALL_PROXY", bad, 1);
	t = prepared("a.bin", "size=100&key=%s",
	    new_key(key, sizeof(key), "proxy"));
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	unsetenv("http_proxy");
	unsetenv("ALL_PROXY");
	drop(t);

	t = prepared("b.bin", "size=100&key=%s",
	    new_key(key, sizeof(key), "proxy"));
	snprintf(t->params.proxy, sizeof(t->params.proxy), "%s", bad);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_CONNECT);
	drop(t);
}
END_TEST

/* --- cancel and write errors -------------------------------------------- */

static void *
cancel_thread(void *arg)
{
	struct transfer *t = arg;
	double deadline = testlib_now() + 20;

	while (__atomic_load_n(&t->progress, __ATOMIC_RELAXED) == 0 &&
	    testlib_now() < deadline)
		testlib_pause_ms(10);
	__atomic_store_n(&t->cancelled, 1, __ATOMIC_RELAXED);
	return NULL;
}

START_TEST(test_cancel)
{
	char key[64];
	pthread_t th;
	struct transfer *t;
	double t0;

	t = prepared("a.bin", "size=1000000&drip=20000&key=%s",
	    new_key(key, sizeof(key), "cancel"));
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_thread, t), 0);
	t0 = testlib_now();
	run(t);
	pthread_join(th, NULL);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_str_eq(t->error, "cancelled");
	ck_assert(testlib_now() - t0 < 15);
	ck_assert_uint_gt(t->received, 0);
	ck_assert_int_eq(jpart_size("a.bin"), (long long)t->received);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

START_TEST(test_cancel_before)
{
	char key[64];
	struct transfer *t;

	t = prepared("a.bin", "size=1000&hang=1&key=%s",
	    new_key(key, sizeof(key), "cancel0"));
	t->cancelled = 1;
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_str_eq(t->error, "cancelled");
	ck_assert(t->seconds < 10);
	drop(t);
}
END_TEST

/* RLIMIT_FSIZE makes write(2) fail with EFBIG part way. */
START_TEST(test_write_error)
{
	char key[64], eb[128];
	struct rlimit old, lim;
	void (*oldsig)(int);
	struct transfer *t;

	t = prepared("a.bin", "size=100000&key=%s",
	    new_key(key, sizeof(key), "efbig"));
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	run(t);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	snprintf(eb, sizeof(eb), "write: %s", strerror(EFBIG));
	ck_assert_str_eq(t->error, eb);
	ck_assert_int_le(jpart_size("a.bin"), 4096);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

/* --- responses only a broken server sends ------------------------------- */

struct canned {
	int lfd;
	int port;
	pthread_t th;
	const char *resp;
	char req[8192];
};

static void *
canned_main(void *arg)
{
	struct canned *c = arg;
	struct pollfd pfd = { c->lfd, POLLIN, 0 };
	size_t n = 0;
	ssize_t r;
	int fd;

	if (poll(&pfd, 1, 20000) != 1 || (fd = accept(c->lfd, NULL,
	    NULL)) == -1)
		return NULL;
	while (n < sizeof(c->req) - 1 && strstr(c->req, "\r\n\r\n") == NULL) {
		pfd.fd = fd;
		if (poll(&pfd, 1, 20000) != 1 ||
		    (r = read(fd, c->req + n, sizeof(c->req) - 1 - n)) <= 0)
			break;
		n += (size_t)r;
		c->req[n] = '\0';
	}
	if (write(fd, c->resp, strlen(c->resp)) == -1)
		perror("canned write");
	shutdown(fd, SHUT_WR);
	/* Until the client closes, so it reads everything. */
	while ((r = read(fd, c->req + n, sizeof(c->req) - 1 - n)) > 0)
		n = n + (size_t)r < sizeof(c->req) - 1 ? n + (size_t)r : n;
	close(fd);
	return NULL;
}

static void
canned_start(struct canned *c, const char *resp)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	memset(c, 0, sizeof(*c));
	c->resp = resp;
	c->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(c->lfd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(c->lfd, 4), 0);
	ck_assert_int_eq(getsockname(c->lfd, (struct sockaddr *)&sa, &len),
	    0);
	c->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&c->th, NULL, canned_main, c), 0);
}

static struct transfer *
canned_run(struct canned *c, const char *part, size_t partlen)
{
	char u[128];
	struct transfer *t;

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/f/a.bin", c->port);
	t = new_transfer(u, "a.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	if (part != NULL)
		write_part("a.bin", part, partlen);
	run(t);
	pthread_join(c->th, NULL);
	close(c->lfd);
	return t;
}

START_TEST(test_wrong_range)
{
	struct canned c;
	struct transfer *t;

	canned_start(&c, "HTTP/1.1 206 Partial Content\r\n"
	    "Content-Range: bytes 0-9/10\r\nContent-Length: 10\r\n"
	    "Connection: close\r\n\r\n0123456789");
	t = canned_run(&c, "abcdefghij", 10);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_str_eq(t->error, "server sent the wrong range");
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	/* What was asked: resume, the configured agent, no compression. */
	ck_assert_ptr_nonnull(strstr(c.req, "Range: bytes=10-\r\n"));
	ck_assert_ptr_nonnull(strstr(c.req, "User-Agent: fetchd-test/1\r\n"));
	ck_assert_ptr_null(strcasestr(c.req, "Accept-Encoding"));
	drop(t);
}
END_TEST

START_TEST(test_size_mismatch)
{
	struct canned c;
	struct transfer *t;

	canned_start(&c, "HTTP/1.1 206 Partial Content\r\n"
	    "Content-Range: bytes 5-9/20\r\nContent-Length: 5\r\n"
	    "Connection: close\r\n\r\n56789");
	t = canned_run(&c, "01234", 5);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	ck_assert_int_eq(jsize("a.bin"), -1);
	drop(t);
}
END_TEST

START_TEST(test_redirect_without_location)
{
	struct canned c;
	struct transfer *t;

	canned_start(&c, "HTTP/1.1 302 Found\r\nContent-Length: 4\r\n"
	    "Connection: close\r\n\r\nnope");
	t = canned_run(&c, NULL, 0);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_OTHER);
	ck_assert_int_eq(t->http_status, 302);
	ck_assert_int_eq(jpart_size("a.bin"), 0);
	drop(t);
}
END_TEST

START_TEST(test_accept_no_compression)
{
	struct canned c;
	struct transfer *t;

	/* A server that compresses anyway: the bytes are stored as sent. */
	canned_start(&c, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
	    "Content-Length: 5\r\nConnection: close\r\n\r\nhello");
	t = canned_run(&c, NULL, 0);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	ck_assert_ptr_null(strcasestr(c.req, "Accept-Encoding"));
	ck_assert_ptr_null(strstr(c.req, "Range:"));
	ck_assert_int_eq(jsize("a.bin"), 5);
	drop(t);
}
END_TEST

/* --- the engines' ways of driving a transfer ---------------------------- */

/* The event engine: begin, curl_multi on this thread, finish. */
START_TEST(test_multi)
{
	char key[64];
	CURLM *multi = curl_multi_init();
	CURL *easy = curl_easy_init();
	CURLMsg *msg;
	struct transfer *t, *got = NULL;
	int running = 1, left;
	CURLcode res = CURLE_OK;
	double deadline = testlib_now() + 30;

	t = prepared("a.bin", "size=200000&seed=8&key=%s",
	    new_key(key, sizeof(key), "multi"));
	set_sha(t, 200000, 8);
	ck_assert_int_eq(fetch_begin(t, easy, NULL), 0);
	ck_assert_ptr_nonnull(t->state);
	ck_assert_int_eq(curl_multi_add_handle(multi, easy), CURLM_OK);
	while (running && testlib_now() < deadline) {
		ck_assert_int_eq(curl_multi_perform(multi, &running), CURLM_OK);
		if (running)
			curl_multi_poll(multi, NULL, 0, 200, NULL);
	}
	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&got);
		res = msg->data.result;
	}
	ck_assert_ptr_eq(got, t);
	fetch_finish(t, easy, res);
	ck_assert_ptr_null(t->state);
	curl_multi_remove_handle(multi, easy);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 200000, 8);
	curl_easy_cleanup(easy);
	curl_multi_cleanup(multi);
	drop(t);
}
END_TEST

#define NTHREADS 8

static void *
run_thread(void *arg)
{
	struct transfer *t = arg;
	CURL *easy = curl_easy_init();

	if (easy != NULL) {
		fetch_run(t, easy, NULL);
		curl_easy_cleanup(easy);
	}
	return NULL;
}

/* The threads engine: many transfers at once, each on its own thread. */
START_TEST(test_threads)
{
	char key[64], name[32];
	pthread_t th[NTHREADS];
	struct transfer *t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++) {
		snprintf(name, sizeof(name), "f%d.bin", i);
		t[i] = prepared(name, "size=%d&seed=%d&truncate=7000&key=%s",
		    50000 + i, i, new_key(key, sizeof(key), "thr"));
		set_sha(t[i], 50000 + (size_t)i, i);
	}
	/* First round: every one truncated; second: every one resumed. */
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NTHREADS; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL,
			    run_thread, t[i]), 0);
		for (int i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < NTHREADS; i++)
			ck_assert_int_eq(t[i]->outcome,
			    (round == 0 ? FETCH_RETRY : FETCH_OK));
	}
	for (int i = 0; i < NTHREADS; i++) {
		snprintf(name, sizeof(name), "f%d.bin", i);
		assert_file_body(name, 50000 + (size_t)i, i);
		drop(t[i]);
	}
}
END_TEST

START_TEST(test_share)
{
	char key[64];
	CURLSH *sh = curl_share_init();
	CURL *easy = curl_easy_init();
	struct transfer *t;

	curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	t = prepared("a.bin", "size=3000&key=%s",
	    new_key(key, sizeof(key), "share"));
	fetch_run(t, easy, sh);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	curl_easy_cleanup(easy);
	curl_share_cleanup(sh);
	drop(t);
}
END_TEST

/* begin without finish: free releases what begin acquired. */
START_TEST(test_free_leftover_state)
{
	char key[64];
	CURL *easy = curl_easy_init();
	struct transfer *t;

	t = prepared("a.bin", "size=3000&key=%s",
	    new_key(key, sizeof(key), "left"));
	t->has_sha256 = 1;
	ck_assert_int_eq(fetch_begin(t, easy, NULL), 0);
	ck_assert_ptr_nonnull(t->state);
	curl_easy_cleanup(easy);
	drop(t);
}
END_TEST

/* --- names reserved, .part created by fetch_begin, symlinks ------------- */

static struct transfer *
bare(const char *name)
{
	return new_transfer("http://127.0.0.1:1/f/x", name);
}

/*
 * Names taken on disk or by a live transfer of the job get the next
 * candidate; fetch_begin() then creates each .part exclusively, a regular
 * file without group write or other access.
 */
START_TEST(test_prepare_collisions)
{
	const char *names[][2] = {
		{ "a.bin", "a.bin" }, { "a.bin", "a.1.bin" },
		{ "a.bin", "a.2.bin" }, { "noext", "noext" },
		{ "noext", "noext.1" }, { "a.tar.gz", "a.tar.gz" },
		{ "a.tar.gz", "a.tar.1.gz" }, { "d/a.bin", "d/a.bin" },
		{ "d/a.bin", "d/a.1.bin" }, { "b.bin", "b.1.bin" },
	};
	enum { N = sizeof(names) / sizeof(names[0]) };
	struct transfer *t[N];
	CURL *easy = curl_easy_init();
	char p[512];
	struct stat st;

	ck_assert_ptr_nonnull(easy);
	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	write_path(jpath(p, sizeof(p), "b.bin"), "x", 1);
	for (size_t i = 0; i < N; i++) {
		t[i] = bare(names[i][0]);
		ck_assert_int_eq(reserve(t[i], 0), 0);
		ck_assert_str_eq(t[i]->name, names[i][1]);
		ck_assert_int_eq(jpart_size(t[i]->name), -1);
	}
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(fetch_begin(t[i], easy, NULL), 0);
		snprintf(p, sizeof(p), "%s/%s.part", jdir, t[i]->name);
		ck_assert_int_eq(lstat(p, &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_int_eq(st.st_mode & 0137, 0);
		ck_assert_int_eq(st.st_size, 0);
		drop(t[i]);
	}
	curl_easy_cleanup(easy);
	/* The existing file was not touched. */
	ck_assert_int_eq(jsize("b.bin"), 1);
}
END_TEST

/*
 * fetch_open_dir(): made once, opened without following a symlink, close
 * on exec. A job's transfers work relative to the directory its names
 * object keeps open: subdirectories are made below it, names on disk are
 * skipped, and the fd stays open for the owner.
 */
START_TEST(test_open_dir_and_dirfd)
{
	char p[512];
	struct transfer *t;
	int created = -1, fd;

	fd = fetch_open_dir(jdir, &created);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(created, 1);
	close(fd);
	fd = fetch_open_dir(jdir, &created);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(created, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
	close(fd);
	write_path(jpath(p, sizeof(p), "x.bin"), "x", 1);

	t = bare("x.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	ck_assert_str_eq(t->name, "x.1.bin");
	ck_assert_int_ge(t->dirfd, 0);
	ck_assert_int_eq(t->dirfd, names_dirfd(nm));
	drop(t);
	t = bare("s/y.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	ck_assert_str_eq(t->name, "s/y.bin");
	ck_assert_int_eq(access(jpath(p, sizeof(p), "s"), F_OK), 0);
	ck_assert_int_eq(fcntl(names_dirfd(nm), F_GETFD), FD_CLOEXEC);
	drop(t);
	ck_assert_int_eq(jsize("x.bin"), 1);
}
END_TEST

/*
 * The job directory is removed while its fd is held (rm -rf of a running
 * job's downloads): the next transfers make it again by its path and
 * succeed, a top-level name (the .part opened in the fd) as well as one in
 * a subdirectory (made below the fd).
 */
START_TEST(test_removed_job_dir)
{
	const char *names[] = { "gone.bin", "sub/gone.bin" };
	char key[64], *u;
	struct transfer *t;

	/* The first reservation opens J, and the names object keeps it. */
	t = bare("first.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	drop(t);
	ck_assert_int_ge(names_dirfd(nm), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert_int_eq(testlib_rm_rf(jdir), 0);
		ck_assert_int_ne(access(jdir, F_OK), 0);
		u = url_for("/f/x?size=300&seed=%zu&key=%s", i,
		    new_key(key, sizeof(key), "gone"));
		t = new_transfer(u, names[i]);
		free(u);
		ck_assert_int_eq(reserve(t, 0), 0);
		run(t);
		ck_assert_msg(t->outcome == FETCH_OK, "%s: %s", names[i],
		    t->error);
		assert_file_body(names[i], 300, (int)i);
		drop(t);
	}
}
END_TEST

START_TEST(test_prepare_subdirs)
{
	char key[64], p[512];
	struct stat st;
	struct transfer *t;

	t = prepared("x/y/z.bin", "size=500&key=%s",
	    new_key(key, sizeof(key), "sub"));
	ck_assert_str_eq(t->name, "x/y/z.bin");
	ck_assert_int_eq(lstat(jpath(p, sizeof(p), "x/y"), &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 027, 0);
	ck_assert_int_eq(jpart_size("x/y/z.bin"), -1);   /* fetch_begin's */
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("x/y/z.bin", 500, 0);
	drop(t);
}
END_TEST

static void
assert_victim(const char *path)
{
	char buf[64] = { 0 };
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf) - 1), 6);
	close(fd);
	ck_assert_str_eq(buf, "secret");
}

START_TEST(test_prepare_symlink_part)
{
	char victim[256], p[512];
	struct transfer *t;

	snprintf(victim, sizeof(victim), "%s/victim", outside);
	write_path(victim, "secret", 6);
	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	ck_assert_int_eq(symlink(victim, jpath(p, sizeof(p), "a.bin.part")),
	    0);
	for (int resume = 0; resume < 2; resume++) {
		t = bare("a.bin");
		ck_assert_int_eq(reserve(t, resume), -1);
		ck_assert_int_eq(t->errkind, FERR_WRITE);
		ck_assert_int_eq(t->outcome, FETCH_FAIL);
		ck_assert_msg(strstr(t->error,
		    "refusing to follow a symlink at") != NULL, "error: %s",
		    t->error);
		drop(t);
	}
	assert_victim(victim);
}
END_TEST

/* A symlink planted after the name was reserved: fetch_begin refuses it
 * too, also a dangling one (which must not be created through). */
START_TEST(test_begin_symlink_part)
{
	char key[64], victim[256], ghost[256], p[512];
	struct transfer *t;

	snprintf(victim, sizeof(victim), "%s/victim", outside);
	snprintf(ghost, sizeof(ghost), "%s/ghost", outside);
	write_path(victim, "secret", 6);
	t = prepared("a.bin", "size=500&key=%s",
	    new_key(key, sizeof(key), "swap"));
	jpath(p, sizeof(p), "a.bin.part");
	ck_assert_int_eq(symlink(victim, p), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "symlink"));
	assert_victim(victim);

	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink(ghost, p), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_int_eq(lsize(ghost), -1);
	drop(t);
}
END_TEST

START_TEST(test_fifo_part)
{
	char key[64], p[512];
	struct transfer *t;

	t = prepared("a.bin", "size=500&key=%s",
	    new_key(key, sizeof(key), "fifo"));
	jpath(p, sizeof(p), "a.bin.part");
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	/* Neither blocks on the FIFO nor writes into it. */
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "not a regular file"));
	drop(t);

	t = bare("a.bin");
	ck_assert_int_eq(reserve(t, 1), -1);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "not a regular file"));
	drop(t);
}
END_TEST

START_TEST(test_prepare_symlink_dir)
{
	char p[512];
	struct transfer *t;
	DIR *d;
	struct dirent *de;
	int n = 0;

	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	ck_assert_int_eq(symlink(outside, jpath(p, sizeof(p), "x")), 0);
	ck_assert_int_eq(mkdir(jpath(p, sizeof(p), "real"), 0750), 0);
	ck_assert_int_eq(symlink(outside, jpath(p, sizeof(p), "real/x")), 0);

	const char *names[] = { "x/f.bin", "x/deeper/f.bin", "real/x/f.bin" };
	for (size_t i = 0; i < 3; i++) {
		t = bare(names[i]);
		ck_assert_int_eq(reserve(t, 0), -1);
		ck_assert_int_eq(t->errkind, FERR_WRITE);
		ck_assert_int_eq(t->outcome, FETCH_FAIL);
		ck_assert_msg(strstr(t->error,
		    "refusing to follow a symlink at") != NULL, "error: %s",
		    t->error);
		drop(t);
	}
	d = opendir(outside);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	ck_assert_int_eq(n, 0);
}
END_TEST

/* The job directory itself must not be a symlink. */
START_TEST(test_prepare_symlink_jobdir)
{
	char p[512];
	struct transfer *t;

	ck_assert_int_eq(symlink(outside, jdir), 0);
	t = bare("a.bin");
	ck_assert_int_eq(reserve(t, 0), -1);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "symlink"));
	drop(t);
	snprintf(p, sizeof(p), "%s/a.bin.part", outside);
	ck_assert_int_eq(lsize(p), -1);
}
END_TEST

/* A directory swapped for a symlink between prepare and begin. */
START_TEST(test_begin_symlink_dir)
{
	char key[64], p[512], q[512];
	struct transfer *t;

	t = prepared("x/f.bin", "size=500&key=%s",
	    new_key(key, sizeof(key), "swapdir"));
	jpath(p, sizeof(p), "x");
	jpath(q, sizeof(q), "x.old");
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert_int_eq(symlink(outside, p), 0);
	run(t);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "symlink"));
	snprintf(p, sizeof(p), "%s/f.bin.part", outside);
	ck_assert_int_eq(lsize(p), -1);
	snprintf(p, sizeof(p), "%s/f.bin", outside);
	ck_assert_int_eq(lsize(p), -1);
	drop(t);
}
END_TEST

START_TEST(test_prepare_resume)
{
	char p[512];
	struct transfer *t;

	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	/* Finished in an earlier run: nothing to fetch. */
	write_path(jpath(p, sizeof(p), "done.bin"), "12345", 5);
	t = bare("done.bin");
	ck_assert_int_eq(reserve(t, 1), 1);
	ck_assert_int_eq(t->outcome, FETCH_OK);
	ck_assert_uint_eq(t->size, 5);
	ck_assert_str_eq(t->name, "done.bin");
	ck_assert_int_eq(jpart_size("done.bin"), -1);
	drop(t);

	/* Partly fetched: the .part is ours and is kept as is. */
	write_part("half.bin", "abc", 3);
	t = bare("half.bin");
	ck_assert_int_eq(reserve(t, 1), 0);
	ck_assert_str_eq(t->name, "half.bin");
	ck_assert_int_eq(jpart_size("half.bin"), 3);
	drop(t);

	/* Without resume, the same .part belongs to someone else. */
	t = bare("half.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	ck_assert_str_eq(t->name, "half.1.bin");
	ck_assert_int_eq(jpart_size("half.bin"), 3);
	drop(t);

	/* Nothing there yet: reserved as named (fetch_begin makes it). */
	t = bare("new.bin");
	ck_assert_int_eq(reserve(t, 1), 0);
	ck_assert_str_eq(t->name, "new.bin");
	ck_assert_int_eq(jpart_size("new.bin"), -1);
	drop(t);
}
END_TEST

/* A transfer failed for good: its .part goes, its result stays. */
START_TEST(test_discard)
{
	char victim[256], p[512], q[512];
	struct transfer *t;

	snprintf(victim, sizeof(victim), "%s/victim", outside);
	write_path(victim, "secret", 6);

	t = bare("d/a.bin");
	ck_assert_int_eq(reserve(t, 0), 0);
	write_part("d/a.bin", "abc", 3);
	t->outcome = FETCH_FAIL;
	t->errkind = FERR_HTTP_4XX;
	snprintf(t->error, sizeof(t->error), "HTTP 404");
	fetch_discard(t);
	ck_assert_int_eq(jpart_size("d/a.bin"), -1);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_HTTP_4XX);
	ck_assert_str_eq(t->error, "HTTP 404");
	fetch_discard(t);       /* already gone: fine */
	ck_assert_str_eq(t->error, "HTTP 404");

	/* A planted symlink at the .part: neither it nor its target go. */
	ck_assert_int_eq(symlink(victim, jpath(p, sizeof(p), "d/a.bin.part")),
	    0);
	fetch_discard(t);
	ck_assert_int_ge(lsize(p), 0);
	assert_victim(victim);
	drop(t);

	/* A directory swapped for a symlink: nothing removed through it. */
	snprintf(p, sizeof(p), "%s/a.bin.part", outside);
	write_path(p, "secret", 6);
	jpath(p, sizeof(p), "d");
	jpath(q, sizeof(q), "d.old");
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert_int_eq(symlink(outside, p), 0);
	t = bare("d/a.bin");
	fetch_discard(t);
	snprintf(p, sizeof(p), "%s/a.bin.part", outside);
	assert_victim(p);
	ck_assert_str_eq(t->error, "");
	drop(t);

	/* Nothing is created on the way. */
	t = bare("new/b.bin");
	fetch_discard(t);
	ck_assert_int_eq(jsize("new"), -1);
	drop(t);
}
END_TEST

/* --- a .part replaced by someone else (issue 12, holes 2 and 3) ---------- */

/* The bytes and the identity of a file outside the download directory. */
struct victim {
	char path[256];
	struct stat st;
};

static void
victim_make(struct victim *v, const char *name)
{
	snprintf(v->path, sizeof(v->path), "%s/%s", outside, name);
	write_path(v->path, "secret", 6);
	ck_assert_int_eq(lstat(v->path, &v->st), 0);
}

/* Byte for byte and inode for inode as made, one link, and name (in J) is
 * not it. */
static void
victim_intact(const struct victim *v, const char *name)
{
	struct stat st;
	char p[512];

	assert_victim(v->path);
	ck_assert_int_eq(lstat(v->path, &st), 0);
	ck_assert_uint_eq(st.st_ino, v->st.st_ino);
	ck_assert_int_eq(st.st_mtim.tv_sec, v->st.st_mtim.tv_sec);
	ck_assert_int_eq(st.st_mtim.tv_nsec, v->st.st_mtim.tv_nsec);
	ck_assert_uint_eq(st.st_nlink, 1);
	if (lstat(jpath(p, sizeof(p), name), &st) == 0)
		ck_assert(st.st_ino != v->st.st_ino || st.st_dev != v->st.st_dev);
}

/* Replace J/name by a hard link to the victim. */
static void
plant_link(const struct victim *v, const char *name)
{
	char p[512];

	jpath(p, sizeof(p), name);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(link(v->path, p), 0);
}

/*
 * Between two attempts, a.bin.part is replaced by a hard link to a file
 * outside the download directory. The retry must neither append to it
 * (Range honoured) nor truncate and rewrite it (Range ignored): it starts a
 * fresh .part and the victim keeps its bytes.
 */
START_TEST(test_hardlink_part_between_attempts)
{
	char key[64];
	struct transfer *t;
	struct victim v;

	for (int range = 0; range < 2; range++) {
		victim_make(&v, range ? "victim1" : "victim0");
		t = prepared(range ? "b.bin" : "a.bin",
		    "size=100000&seed=5&truncate=30000&range=%d&key=%s", range,
		    new_key(key, sizeof(key), "hardlink"));
		run(t);
		ck_assert_int_eq(t->outcome, FETCH_RETRY);
		ck_assert_int_eq(jpart_size(t->name), 30000);
		plant_link(&v, range ? "b.bin.part" : "a.bin.part");

		t->attempt++;
		run(t);
		ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
		victim_intact(&v, t->name);
		assert_file_body(t->name, 100000, 5);
		ck_assert_int_eq(jpart_size(t->name), -1);
		/* Started over: both requests without Range. */
		ck_assert_int_eq(log_count(key, NULL, 200, 2), 2);
		drop(t);
	}
}
END_TEST

/*
 * No inode recorded (a transfer of the job after a restart, resuming a
 * name an earlier run reserved): a .part with more than one link is not
 * ours either.
 */
START_TEST(test_hardlink_part_after_restart)
{
	char key[64], p[512], *u;
	struct transfer *t;
	struct victim v;

	victim_make(&v, "victim");
	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	ck_assert_int_eq(link(v.path, jpath(p, sizeof(p), "a.bin.part")), 0);
	u = url_for("/f/a.bin?size=20000&seed=6&key=%s",
	    new_key(key, sizeof(key), "restart"));
	t = new_transfer(u, "a.bin");
	free(u);
	ck_assert_int_eq(reserve(t, 1), 0);
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	victim_intact(&v, "a.bin");
	assert_file_body("a.bin", 20000, 6);
	ck_assert(log_has(key, NULL, 200));
	drop(t);
}
END_TEST

/*
 * The window between publish()'s look at the .part and its rename: when
 * set, the name being renamed is swapped for a symlink to this path just
 * before the rename happens. This definition takes the C library's place
 * in this test program (util_rename_noreplace() calls renameat2).
 */
static const char *swap_at_rename;

int
renameat2(int olddirfd, const char *oldpath, int newdirfd,
    const char *newpath, unsigned int flags)
{
	if (swap_at_rename != NULL) {
		ck_assert_int_eq(unlinkat(olddirfd, oldpath, 0), 0);
		ck_assert_int_eq(symlinkat(swap_at_rename, olddirfd, oldpath),
		    0);
		swap_at_rename = NULL;
	}
	return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd,
	    newpath, flags);
}

/*
 * The .part swapped for a symlink after the look before the rename, so
 * the rename publishes the symlink: the look after the rename catches it,
 * the symlink is taken away again and the attempt is a retry.
 */
START_TEST(test_symlink_swapped_in_at_rename)
{
	char key[64];
	struct transfer *t;
	struct victim v;

	victim_make(&v, "victim");
	t = prepared("a.bin", "size=30000&seed=8&key=%s",
	    new_key(key, sizeof(key), "swaprename"));
	swap_at_rename = v.path;
	run(t);
	ck_assert_ptr_null(swap_at_rename);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_msg(strstr(t->error, "a.bin.part' was replaced during the "
	    "transfer") != NULL, "error: %s", t->error);
	ck_assert_int_eq(jsize("a.bin"), -1);
	ck_assert_int_eq(jpart_size("a.bin"), -1);
	victim_intact(&v, "a.bin");

	t->attempt++;
	run(t);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 30000, 8);
	victim_intact(&v, "a.bin");
	drop(t);
}
END_TEST

/*
 * Between fetch_begin() and fetch_finish(), a.bin.part is swapped for a
 * symlink to a file outside. Nothing may be published from the symlink:
 * the attempt ends in a retry that says so, and the next one completes.
 */
START_TEST(test_symlink_swapped_in_during_transfer)
{
	char key[64], p[512], moved[512];
	CURL *easy = curl_easy_init();
	struct transfer *t;
	struct victim v;
	CURLcode res;

	victim_make(&v, "victim");
	t = prepared("a.bin", "size=50000&seed=7&key=%s",
	    new_key(key, sizeof(key), "swapsym"));
	set_sha(t, 50000, 7);
	ck_assert_int_eq(fetch_begin(t, easy, NULL), 0);
	jpath(p, sizeof(p), "a.bin.part");
	jpath(moved, sizeof(moved), "moved");
	ck_assert_int_eq(rename(p, moved), 0);
	ck_assert_int_eq(symlink(v.path, p), 0);
	res = curl_easy_perform(easy);
	fetch_finish(t, easy, res);
	ck_assert_int_eq(t->outcome, FETCH_RETRY);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_msg(strstr(t->error, "a.bin.part' was replaced during the "
	    "transfer") != NULL, "error: %s", t->error);
	victim_intact(&v, "a.bin");
	ck_assert_int_eq(jsize("a.bin"), -1);

	t->attempt++;
	fetch_run(t, easy, NULL);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	assert_file_body("a.bin", 50000, 7);
	victim_intact(&v, "a.bin");
	curl_easy_cleanup(easy);
	drop(t);
}
END_TEST

/* Error text goes into a tab-separated file: no tabs or newlines. */
START_TEST(test_error_one_line)
{
	char p[512];
	struct transfer *t;

	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	ck_assert_int_eq(symlink(outside, jpath(p, sizeof(p),
	    "t\tb\nc.bin.part")), 0);
	t = bare("t\tb\nc.bin");
	ck_assert_int_eq(reserve(t, 0), -1);
	ck_assert_ptr_nonnull(strstr(t->error, "t b c.bin.part"));
	assert_no_tabs(t);
	drop(t);
}
END_TEST

/* --- small pieces ------------------------------------------------------- */

/*
 * http.deny: a new connection is refused before connect (no request), for
 * good, as kind denied; one kept alive in the handle from an attempt made
 * before the range was denied (a reload) is refused before its request.
 * The job line's headers go out on the request.
 */
START_TEST(test_deny)
{
	char key[64], key2[64];
	struct transfer *t;
	CURL *easy = curl_easy_init();

	ck_assert_ptr_nonnull(easy);
	t = prepared("d.bin", "key=%s", new_key(key, sizeof(key), "deny"));
	snprintf(t->params.deny, sizeof(t->params.deny), "10.0.0.0/8 "
	    "127.0.0.1");
	fetch_run(t, easy, NULL);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(t->errkind, FERR_DENIED);
	ck_assert_str_eq(t->error,
	    "destination not allowed: 127.0.0.1 is in http.deny");
	ck_assert_int_eq(log_count(key, NULL, -1, 0), 0);
	drop(t);

	/* Allowed: the connection stays open in the handle. */
	t = prepared("k.bin", "key=%s", new_key(key2, sizeof(key2), "keep"));
	ck_assert_int_eq(fetch_transfer_set_headers(t, "X-A: 1\nX-E:"), 0);
	fetch_run(t, easy, NULL);
	ck_assert_msg(t->outcome == FETCH_OK, "error: %s", t->error);
	drop(t);
	/* Reused, then denied before the request. */
	t = prepared("r.bin", "key=%s", new_key(key, sizeof(key), "reuse"));
	snprintf(t->params.deny, sizeof(t->params.deny), "127.0.0.0/8");
	fetch_run(t, easy, NULL);
	ck_assert_int_eq(t->errkind, FERR_DENIED);
	ck_assert_int_eq(t->outcome, FETCH_FAIL);
	ck_assert_int_eq(log_count(key, NULL, -1, 0), 0);
	drop(t);
	curl_easy_cleanup(easy);
}
END_TEST

START_TEST(test_errkind_names)
{
	const char *want[] = { "none", "dns", "connect", "timeout", "http_4xx",
		"http_5xx", "reset", "protocol_refused", "write", "checksum",
		"other", "resource", "denied", "segment" };

	ck_assert_int_eq(sizeof(want) / sizeof(want[0]), FERR__COUNT);
	for (int k = 0; k < FERR__COUNT; k++)
		ck_assert_str_eq(fetch_errkind_name((enum fetch_errkind)k),
		    want[k]);
	ck_assert_ptr_nonnull(fetch_errkind_name(FERR__COUNT));
}
END_TEST

START_TEST(test_params_from_config)
{
	struct config c;
	struct fetch_params p;
	char *ua;

	memset(&c, 0, sizeof(c));
	ua = malloc(5000);
	ck_assert_ptr_nonnull(ua);
	memset(ua, 'u', 4999);
	ua[4999] = '\0';
	c.connect_timeout = 11;
	c.timeout = 22;
	c.low_speed_limit = 33;
	c.low_speed_time = 44;
	c.max_redirects = 55;
	c.max_file_size = 1LL << 40;
	c.rate_limit = 77;
	c.verify_tls = 1;
	c.user_agent = ua;
	c.proxy = NULL;
	c.ca_file = "/etc/ca.pem";
	memset(&p, 0x5a, sizeof(p));
	fetch_params_from_config(&p, &c);
	ck_assert_int_eq(p.connect_timeout, 11);
	ck_assert_int_eq(p.timeout, 22);
	ck_assert_int_eq(p.low_speed_limit, 33);
	ck_assert_int_eq(p.low_speed_time, 44);
	ck_assert_int_eq(p.max_redirects, 55);
	ck_assert(p.max_file_size == 1LL << 40);
	ck_assert(p.rate_limit == 77);
	ck_assert_int_eq(p.verify_tls, 1);
	ck_assert_uint_eq(strlen(p.user_agent), CONFIG_UA_MAX - 1);
	ck_assert_str_eq(p.proxy, "");
	ck_assert_str_eq(p.ca_file, "/etc/ca.pem");
	free(ua);
}
END_TEST

START_TEST(test_transfer_new_free)
{
	struct transfer *t = fetch_transfer_new("http://h/x", "h", "/d", "n");

	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t->url, "http://h/x");
	ck_assert_str_eq(t->host, "h");
	ck_assert_str_eq(t->dir, "/d");
	ck_assert_str_eq(t->name, "n");
	ck_assert_int_eq(t->attempt, 1);
	ck_assert_int_eq(t->retry_after, -1);
	ck_assert_ptr_null(t->state);
	ck_assert_int_eq(t->outcome, FETCH_OK);
	fetch_finish(t, NULL, CURLE_OK); /* no state: nothing to do */
	drop(t);
	drop(NULL);
}
END_TEST

/* --- response headers read by fetch.c itself ------------------------------ */

START_TEST(test_parse_content_range)
{
	static const struct {
		const char *v;
		long long start, total;
	} cases[] = {
		{ "bytes 0-99/100", 0, 100 },
		{ "bytes 30000-99999/100000", 30000, 100000 },
		{ "BYTES 5-9/*", 5, -1 },
		{ "bytes */100", -1, 100 },
		{ "bytes */*", -1, -1 },
		{ "bytes 9-5/100", -1, -1 },            /* last < first */
		{ "bytes -1-5/100", -1, -1 },
		{ "bytes 5-/100", -1, -1 },
		{ "bytes 5-9", 5, -1 },                 /* no length */
		{ "bytes 5-9/-3", 5, -1 },
		{ "bytes 0-99/100 \t", 0, 100 },
		{ "bytes 0-99/100x", 0, -1 },
		{ "bytes 0-1/99999999999999999999", 0, -1 }, /* overflow */
		{ "bytes 99999999999999999999-1/5", -1, -1 },
		{ "items 0-1/2", -1, -1 },
		{ "", -1, -1 },
	};
	long long a, b;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a = b = 12345;
		fetch_parse_content_range(cases[i].v, &a, &b);
		ck_assert_msg(a == cases[i].start && b == cases[i].total,
		    "'%s': %lld, %lld", cases[i].v, a, b);
	}
}
END_TEST

/* Lines as libcurl hands them: CRLF or not, not NUL-terminated, long. */
START_TEST(test_parse_header)
{
	struct fetch_response r;
	char big[2000];

	fetch_response_reset(&r);

	ck_assert_int_eq(fetch_parse_header(&r, "HTTP/1.1 206 Partial\r\n",
	    22), 1);
	ck_assert_int_eq(r.status, 206);
	ck_assert_int_eq(fetch_parse_header(&r,
	    "content-range:  bytes 10-19/20\r\nXYZ", 32), 0);
	ck_assert(r.cr_start == 10 && r.cr_total == 20);
	/* Only len bytes count: "20" cut to "2". */
	ck_assert_int_eq(fetch_parse_header(&r,
	    "Content-Range: bytes 1-1/20", 26), 0);
	ck_assert(r.cr_start == 1 && r.cr_total == 2);
	ck_assert_int_eq(fetch_parse_header(&r, "Content-Length: 5\r\n", 19),
	    0);
	ck_assert(r.status == 206 && r.cr_start == 1 && r.cr_total == 2);
	/* A new response (a redirect's target) starts clean. */
	ck_assert_int_eq(fetch_parse_header(&r, "HTTP/2 2000\r\n", 13), 1);
	ck_assert(r.status == 0 && r.cr_start == -1 && r.cr_total == -1);
	ck_assert_int_eq(fetch_parse_header(&r, "HTTP/1.0 404", 12), 1);
	ck_assert_int_eq(r.status, 404);
	/* A line longer than the callback's buffer is cut, not overrun. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "Content-Range: bytes 0-0/1", 26);
	ck_assert_int_eq(fetch_parse_header(&r, big, sizeof(big)), 0);
	ck_assert(r.cr_start == 0 && r.cr_total == -1);
}
END_TEST

/* The resource's facts: length of a 200 or a 206, ranges, validators. */
/* The split: at most the segments asked for, each at least min_size
 * bytes, none empty, the starts increasing from 0 and even. */
START_TEST(test_seg_split)
{
	uint64_t st[FETCH_SEGMENTS_MAX];
	unsigned n, i;

	ck_assert_uint_eq(fetch_seg_split(200ULL << 20, 4, 20 << 20, st), 4);
	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(st[i], (uint64_t)i * (50ULL << 20));
	/* Shorter than segments x min_size: fewer, at least one. */
	ck_assert_uint_eq(fetch_seg_split(50ULL << 20, 4, 20 << 20, st), 2);
	ck_assert_uint_eq(st[1], 25ULL << 20);
	ck_assert_uint_eq(fetch_seg_split(19ULL << 20, 4, 20 << 20, st), 1);
	ck_assert_uint_eq(st[0], 0);
	ck_assert_uint_eq(fetch_seg_split(0, 4, 1, st), 1);
	/* Never an empty range, whatever min_size says (0 counts as 1). */
	ck_assert_uint_eq(fetch_seg_split(3, 16, 0, st), 3);
	ck_assert(st[0] == 0 && st[1] == 1 && st[2] == 2);
	/* Uneven lengths: the ranges differ by a byte at most. */
	n = fetch_seg_split(1000003, 7, 1, st);
	ck_assert_uint_eq(n, 7);
	for (i = 1; i < n; i++) {
		uint64_t len = st[i] - st[i - 1];

		ck_assert(len == 1000003 / 7 || len == 1000003 / 7 + 1);
	}
	/* The bounds of the count, and a length near the top of 64 bits. */
	ck_assert_uint_eq(fetch_seg_split(1 << 30, 99, 1, st),
	    FETCH_SEGMENTS_MAX);
	ck_assert_uint_eq(fetch_seg_split(1 << 30, 0, 1, st), 1);
	n = fetch_seg_split(UINT64_MAX - 1, 16, 1, st);
	ck_assert_uint_eq(n, 16);
	ck_assert_uint_eq(st[15], (uint64_t)(((unsigned __int128)
	    (UINT64_MAX - 1) * 15) / 16));
}
END_TEST

/* A slot counts only for the .part it names and the range it was
 * written for, and only within that range. */
START_TEST(test_seg_resume)
{
	char dir[64], path[128];
	uint64_t v[3];
	int fd;

	testlib_tmpdir(dir, sizeof(dir), "check_fetch");
	snprintf(path, sizeof(path), "%s/a.part.segs", dir);
	ck_assert_int_ge(fd = open(path, O_RDWR | O_CREAT, 0640), 0);
	/* Nothing written: from the start. */
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 77, 100, 200), 100);
	v[0] = 77;
	v[1] = 100;
	v[2] = 150;
	ck_assert_int_eq(pwrite(fd, v, sizeof(v), 24), 24);
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 77, 100, 200), 150);
	/* Another .part (inode), another range, another slot. */
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 78, 100, 200), 100);
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 77, 90, 200), 90);
	ck_assert_uint_eq(fetch_seg_resume(fd, 0, 77, 0, 100), 0);
	ck_assert_uint_eq(fetch_seg_resume(fd, 2, 77, 200, 300), 200);
	/* Past the range's end: not believed. */
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 77, 100, 140), 100);
	/* Complete. */
	ck_assert_uint_eq(fetch_seg_resume(fd, 1, 77, 100, 150), 150);
	close(fd);
	testlib_rm_rf(dir);
}
END_TEST

START_TEST(test_response_meta)
{
	struct fetch_response r;
	struct fetch_meta m;
	char big[600];

#define HDR(s) fetch_parse_header(&r, s, strlen(s))
	fetch_response_reset(&r);
	HDR("HTTP/1.1 200 OK\r\n");
	HDR("Content-Length: 1234 \r\n");
	HDR("accept-ranges: none, Bytes\r\n");
	HDR("ETag: W/\"x y\"  \r\n");
	HDR("Last-Modified: Sun, 06 Dec 2026 10:00:00 GMT\r\n");
	fetch_response_meta(&r, &m);
	ck_assert(m.length == 1234);
	ck_assert_int_eq(m.ranges, 1);
	ck_assert_str_eq(m.etag, "W/\"x y\"");
	ck_assert_str_eq(m.last_modified, "Sun, 06 Dec 2026 10:00:00 GMT");
	/* A redirect's target starts clean; a 206 gives the whole length
	 * from Content-Range, not its Content-Length. */
	HDR("HTTP/1.1 206 Partial Content\r\n");
	HDR("Content-Length: 10\r\n");
	HDR("Content-Range: bytes 10-19/5000\r\n");
	fetch_response_meta(&r, &m);
	ck_assert(m.length == 5000);
	ck_assert_int_eq(m.ranges, 1);
	ck_assert_str_eq(m.etag, "");
	/* Other statuses, bad lengths, a refused range unit. */
	HDR("HTTP/1.1 404 Not Found\r\n");
	HDR("Content-Length: 9\r\n");
	HDR("Accept-Ranges: none\r\n");
	fetch_response_meta(&r, &m);
	ck_assert(m.length == -1 && m.ranges == 0);
	HDR("HTTP/1.1 200 OK\r\n");
	HDR("Content-Length: 12x\r\n");
	fetch_response_meta(&r, &m);
	ck_assert(m.length == -1);
	HDR("Content-Length: -5\r\n");
	fetch_response_meta(&r, &m);
	ck_assert(m.length == -1);
	/* A validator with a control byte is not kept (nor sent back). */
	HDR("HTTP/1.1 200 OK\r\n");
	HDR("ETag: \"a\x01b\"\r\n");
	HDR("Last-Modified: W/\x12\r\n");
	fetch_response_meta(&r, &m);
	ck_assert_str_eq(m.etag, "");
	ck_assert_str_eq(m.last_modified, "");
	ck_assert_ptr_null(fetch_if_range(&m));
	/* An ETag too long to keep is not kept cut. */
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "ETag: \"", 7);
	HDR(big);
	fetch_response_meta(&r, &m);
	ck_assert_str_eq(m.etag, "");
#undef HDR
}
END_TEST

static Suite *
fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc;

	tc = tcase_create("http");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ok_1mib);
	tcase_add_test(tc, test_sha_mismatch);
	tcase_add_test(tc, test_404);
	tcase_add_test(tc, test_curl_failures_classified);
	tcase_add_test(tc, test_503_retry_after);
	tcase_add_test(tc, test_deny);
	tcase_add_test(tc, test_429);
	tcase_add_test(tc, test_status_sequence);
	tcase_add_test(tc, test_truncate_resume);
	tcase_add_test(tc, test_if_range_resume);
	tcase_add_test(tc, test_resume_length_changed);
	tcase_add_test(tc, test_part_tag_resume);
	tcase_add_test(tc, test_part_tag_published_by_peer);
	tcase_add_test(tc, test_reset_resume);
	tcase_add_test(tc, test_range_ignored);
	tcase_add_test(tc, test_range_ignored_empty);
	tcase_add_test(tc, test_416_complete);
	tcase_add_test(tc, test_416_stale);
	tcase_add_test(tc, test_redirect_resume);
	tcase_add_test(tc, test_redirect_file);
	tcase_add_test(tc, test_handle_reused_after_refused_redirect);
	tcase_add_test(tc, test_ftp_refused);
	tcase_add_test(tc, test_max_redirects);
	tcase_add_test(tc, test_max_file_size);
	tcase_add_test(tc, test_max_file_size_resumed);
	tcase_add_test(tc, test_max_file_size_exact);
	tcase_add_test(tc, test_connect_refused);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_low_speed);
	tcase_add_test(tc, test_rate_limit);
	tcase_add_test(tc, test_proxy);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cancel_before);
	tcase_add_test(tc, test_write_error);
	tcase_add_test(tc, test_wrong_range);
	tcase_add_test(tc, test_size_mismatch);
	tcase_add_test(tc, test_redirect_without_location);
	tcase_add_test(tc, test_accept_no_compression);
	tcase_add_test(tc, test_multi);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_share);
	tcase_add_test(tc, test_free_leftover_state);
	suite_add_tcase(s, tc);

	tc = tcase_create("prepare");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_prepare_collisions);
	tcase_add_test(tc, test_open_dir_and_dirfd);
	tcase_add_test(tc, test_removed_job_dir);
	tcase_add_test(tc, test_prepare_subdirs);
	tcase_add_test(tc, test_prepare_symlink_part);
	tcase_add_test(tc, test_begin_symlink_part);
	tcase_add_test(tc, test_fifo_part);
	tcase_add_test(tc, test_prepare_symlink_dir);
	tcase_add_test(tc, test_prepare_symlink_jobdir);
	tcase_add_test(tc, test_begin_symlink_dir);
	tcase_add_test(tc, test_prepare_resume);
	tcase_add_test(tc, test_discard);
	tcase_add_test(tc, test_error_one_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("replaced");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_hardlink_part_between_attempts);
	tcase_add_test(tc, test_hardlink_part_after_restart);
	tcase_add_test(tc, test_symlink_swapped_in_during_transfer);
	tcase_add_test(tc, test_symlink_swapped_in_at_rename);
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_add_test(tc, test_errkind_names);
	tcase_add_test(tc, test_params_from_config);
	tcase_add_test(tc, test_transfer_new_free);
	tcase_add_test(tc, test_parse_content_range);
	tcase_add_test(tc, test_parse_header);
	tcase_add_test(tc, test_response_meta);
	tcase_add_test(tc, test_seg_split);
	tcase_add_test(tc, test_seg_resume);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run_with_server(fetch_suite(), "check_fetch");
}
