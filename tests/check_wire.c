/*
 * check_wire.c: the process engine's message codec (src/wire.c), through
 * its public functions only. Every message type survives a round trip
 * field by field; every truncation of every message, a byte too many, an
 * oversized or malformed string, an out-of-range value, an unknown type and
 * another version are refused without touching the caller's transfer.
 *
 * Some tests patch a byte at a known offset; the layout they rely on is
 * the header (version 1, type 1, id 8), then the body fields in wire.c's
 * order.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "testlib.h"
#include "wire.h"

#define HDR 10				/* version, type, id */
#define RESULT_ERRLEN (HDR + 2 + 6 * 8 + 1) /* the error string's length */
#define TRANSFER_HAS_SHA (HDR + 8)
#define TRANSFER_VERIFY_TLS (HDR + 8 + 1 + 32 + 7 * 8)

static unsigned char buf[WIRE_MSG_MAX];

/* A transfer with every field the wire carries set, none to a default. */
static struct transfer *
sample_transfer(void)
{
	struct transfer *t;
	int i;

	t = fetch_transfer_new("https://example.org/a%20b?c=d", "example.org",
	    "/var/lib/fetchd/J", "sub/a b.iso");
	ck_assert_ptr_nonnull(t);
	t->id = 0x0102030405060708ULL;
	t->attempt = 7;
	t->has_sha256 = 1;
	for (i = 0; i < 32; i++)
		t->sha256[i] = (unsigned char)(0xf0 - i);
	t->params.connect_timeout = 15;
	t->params.timeout = -1;
	t->params.low_speed_limit = 1024;
	t->params.low_speed_time = 30;
	t->params.max_redirects = 10;
	t->params.max_file_size = 1LL << 45;
	t->params.rate_limit = 123456789;
	t->params.verify_tls = 1;
	strcpy(t->params.user_agent, "fetchd/test");
	strcpy(t->params.proxy, "http://proxy:3128");
	strcpy(t->params.ca_file, "/etc/ssl/ca.pem");
	strcpy(t->params.no_proxy, "localhost,.internal");
	strcpy(t->params.deny, "127.0.0.0/8 ::1");
	ck_assert_int_eq(fetch_transfer_set_headers(t,
	    "Authorization: Bearer x\nX-Empty:"), 0);
	t->part_dev = 0x8877665544332211ULL;
	t->part_ino = 0x0011223344556677ULL;
	t->expect.length = 5000;
	strcpy(t->expect.etag, "\"v1\"");
	strcpy(t->expect.last_modified, "Sat, 05 Dec 2026 10:00:00 GMT");
	ck_assert_ptr_nonnull(t->part_tag = strdup("node-7"));
	return t;
}

/* The outcome of an attempt, every field set. */
static void
sample_result(struct transfer *t)
{
	t->outcome = FETCH_RETRY;
	t->errkind = FERR_HTTP_5XX;
	t->http_status = 503;
	t->size = 1ULL << 40;
	t->received = 987654321;
	t->ttfb = 0.125;
	t->seconds = 12.5;
	t->retry_after = 120;
	t->unchanged = 1;
	strcpy(t->error, "HTTP 503 Service Unavailable");
	t->part_dev = 0xfedcba9876543210ULL;
	t->part_ino = 0x0123456789abcdefULL;
	t->meta.length = 1LL << 41;
	t->meta.ranges = 1;
	strcpy(t->meta.etag, "W/\"abc \\ def\"");
	strcpy(t->meta.last_modified, "Sun, 06 Dec 2026 10:00:00 GMT");
}

/* A TRANSFER or RESULT of t into buf; its length. */
static size_t
put_with(int (*put)(struct wire *, const struct transfer *),
    const struct transfer *t)
{
	struct wire w;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(put(&w, t), 0);
	return w.len;
}

#define put_transfer(t) put_with(wire_put_transfer, (t))
#define put_result(t) put_with(wire_put_result, (t))

/* Decode the len bytes at buf as whatever they claim to be: 0 or -1. */
static int
decode(size_t len)
{
	struct transfer *t, *into;
	enum wire_type type;
	const char *name;
	struct wire w;
	uint64_t id, v;
	int r = -1;

	if (wire_open(&w, buf, len, &type, &id) == -1)
		return -1;
	switch (type) {
	case WIRE_HELLO:
		return wire_get_hello(&w, &v);
	case WIRE_CANCEL:
		return wire_get_cancel(&w);
	case WIRE_PROGRESS:
		return wire_get_progress(&w, &v);
	case WIRE_TRANSFER:
		if ((t = wire_get_transfer(&w, id)) == NULL) {
			ck_assert_int_eq(errno, EBADMSG);
			return -1;
		}
		fetch_transfer_free(t);
		return 0;
	case WIRE_RESULT:
		into = sample_transfer();
		r = wire_get_result(&w, into, &name);
		fetch_transfer_free(into);
		return r;
	}
	ck_abort_msg("wire_open() gave type %d", (int)type);
	return -1;
}

/* Every proper prefix is refused, so is a byte too many; the whole
 * message decodes. */
static void
assert_exact(size_t len, const char *what)
{
	size_t n;

	ck_assert_msg(decode(len) == 0, "%s: the whole message", what);
	for (n = 0; n < len; n++)
		ck_assert_msg(decode(n) == -1, "%s cut to %zu of %zu taken",
		    what, n, len);
	buf[len] = 0;
	ck_assert_msg(decode(len + 1) == -1, "%s with a byte more", what);
}

static void
put_be32(size_t off, uint32_t v)
{
	buf[off] = (unsigned char)(v >> 24);
	buf[off + 1] = (unsigned char)(v >> 16);
	buf[off + 2] = (unsigned char)(v >> 8);
	buf[off + 3] = (unsigned char)v;
}

/* --- round trips ---------------------------------------------------------- */

START_TEST(test_hello)
{
	enum wire_type type;
	struct wire w;
	uint64_t id = 99, pid;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_hello(&w, 4242), 0);
	ck_assert_int_eq(wire_open(&w, buf, w.len, &type, &id), 0);
	ck_assert_int_eq(type, WIRE_HELLO);
	ck_assert_uint_eq(id, 0);
	ck_assert_int_eq(wire_get_hello(&w, &pid), 0);
	ck_assert_uint_eq(pid, 4242);
}
END_TEST

START_TEST(test_cancel)
{
	enum wire_type type;
	struct wire w;
	uint64_t id;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_cancel(&w, UINT64_MAX), 0);
	ck_assert_int_eq(wire_open(&w, buf, w.len, &type, &id), 0);
	ck_assert_int_eq(type, WIRE_CANCEL);
	ck_assert_uint_eq(id, UINT64_MAX);
	ck_assert_int_eq(wire_get_cancel(&w), 0);
}
END_TEST

START_TEST(test_progress)
{
	enum wire_type type;
	struct wire w;
	uint64_t id, bytes;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_progress(&w, 17, 1ULL << 50), 0);
	ck_assert_int_eq(wire_open(&w, buf, w.len, &type, &id), 0);
	ck_assert_int_eq(type, WIRE_PROGRESS);
	ck_assert_uint_eq(id, 17);
	ck_assert_int_eq(wire_get_progress(&w, &bytes), 0);
	ck_assert_uint_eq(bytes, 1ULL << 50);
}
END_TEST

START_TEST(test_transfer)
{
	struct transfer *a = sample_transfer(), *b;
	enum wire_type type;
	struct wire w;
	uint64_t id;

	ck_assert(wire_transfer_fits(a));
	ck_assert_int_eq(wire_open(&w, buf, put_transfer(a), &type, &id), 0);
	ck_assert_int_eq(type, WIRE_TRANSFER);
	ck_assert_uint_eq(id, a->id);
	ck_assert_ptr_nonnull(b = wire_get_transfer(&w, id));
	ck_assert_uint_eq(b->id, a->id);
	ck_assert_int_eq(b->attempt, 7);
	ck_assert_int_eq(b->has_sha256, 1);
	ck_assert_mem_eq(b->sha256, a->sha256, 32);
	ck_assert_int_eq(b->params.connect_timeout, 15);
	ck_assert_int_eq(b->params.timeout, -1);
	ck_assert_int_eq(b->params.low_speed_limit, 1024);
	ck_assert_int_eq(b->params.low_speed_time, 30);
	ck_assert_int_eq(b->params.max_redirects, 10);
	ck_assert(b->params.max_file_size == 1LL << 45);
	ck_assert(b->params.rate_limit == 123456789);
	ck_assert_int_eq(b->params.verify_tls, 1);
	ck_assert_str_eq(b->params.user_agent, "fetchd/test");
	ck_assert_str_eq(b->params.proxy, "http://proxy:3128");
	ck_assert_str_eq(b->params.ca_file, "/etc/ssl/ca.pem");
	ck_assert_str_eq(b->params.no_proxy, "localhost,.internal");
	ck_assert_str_eq(b->params.proxy_ca_file, "");
	ck_assert_str_eq(b->params.netrc_file, "");
	ck_assert_str_eq(b->params.deny, "127.0.0.0/8 ::1");
	ck_assert_str_eq(b->headers, "Authorization: Bearer x\nX-Empty:");
	ck_assert_str_eq(b->url, a->url);
	ck_assert_str_eq(b->dir, a->dir);
	ck_assert_str_eq(b->name, a->name);
	/* The .part the transfer wrote, for the next attempt to check. */
	ck_assert_uint_eq(b->part_dev, 0x8877665544332211ULL);
	ck_assert_uint_eq(b->part_ino, 0x0011223344556677ULL);
	ck_assert(b->expect.length == 5000 && b->expect.ranges == 0);
	ck_assert_str_eq(b->expect.etag, "\"v1\"");
	ck_assert_str_eq(b->expect.last_modified,
	    "Sat, 05 Dec 2026 10:00:00 GMT");
	ck_assert_str_eq(b->part_tag, "node-7");
	/* Not on the wire: the worker opens dir by its path. */
	ck_assert_ptr_null(b->host);
	ck_assert_int_eq(b->dirfd, -1);
	fetch_transfer_free(a);
	fetch_transfer_free(b);
}
END_TEST

/* A segment of a segmented download: its mode and range travel. */
START_TEST(test_transfer_segment)
{
	struct transfer *a = sample_transfer(), *b;
	enum wire_type type;
	struct wire w;
	uint64_t id;
	size_t len;

	a->mode = FETCH_SEGMENT;
	a->seg_slot = 15;
	a->seg_start = 1ULL << 40;
	a->seg_end = (1ULL << 41) + 3;
	len = put_transfer(a);
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), 0);
	ck_assert_ptr_nonnull(b = wire_get_transfer(&w, id));
	ck_assert_int_eq(b->mode, FETCH_SEGMENT);
	ck_assert_uint_eq(b->seg_slot, 15);
	ck_assert_uint_eq(b->seg_start, 1ULL << 40);
	ck_assert_uint_eq(b->seg_end, (1ULL << 41) + 3);
	ck_assert_ptr_null(b->seg);
	ck_assert_int_eq(b->refresh, 0);
	fetch_transfer_free(b);
	/* A refreshed tree's transfer says so. */
	a->refresh = 1;
	len = put_transfer(a);
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), 0);
	ck_assert_ptr_nonnull(b = wire_get_transfer(&w, id));
	ck_assert_int_eq(b->refresh, 1);
	fetch_transfer_free(b);
	a->refresh = 0;
	assert_exact(len, "a segment");
	/* A range that ends before it starts, a slot past the last. */
	a->seg_end = 1;
	ck_assert_int_eq(decode(put_transfer(a)), -1);
	a->seg_end = a->seg_start;
	a->seg_slot = FETCH_SEGMENTS_MAX;
	ck_assert_int_eq(decode(put_transfer(a)), -1);
	a->seg_slot = 0;
	a->mode = FETCH_VERIFY;
	ck_assert_int_eq(decode(put_transfer(a)), 0);
	fetch_transfer_free(a);
}
END_TEST

START_TEST(test_result)
{
	struct transfer *a = sample_transfer(), *b = sample_transfer();
	enum wire_type type;
	const char *name;
	struct wire w;
	uint64_t id;

	sample_result(a);
	free(a->name);
	ck_assert_ptr_nonnull(a->name = strdup("sub/a b.1.iso"));
	ck_assert_int_eq(wire_open(&w, buf, put_result(a), &type, &id), 0);
	ck_assert_int_eq(type, WIRE_RESULT);
	ck_assert_uint_eq(id, a->id);
	ck_assert_int_eq(wire_get_result(&w, b, &name), 0);
	ck_assert_int_eq(b->outcome, FETCH_RETRY);
	ck_assert_int_eq(b->errkind, FERR_HTTP_5XX);
	ck_assert_int_eq(b->http_status, 503);
	ck_assert_uint_eq(b->size, 1ULL << 40);
	ck_assert_uint_eq(b->received, 987654321);
	ck_assert_double_eq(b->ttfb, 0.125);
	ck_assert_double_eq(b->seconds, 12.5);
	ck_assert_int_eq(b->retry_after, 120);
	ck_assert_int_eq(b->unchanged, 1);
	ck_assert_str_eq(b->error, "HTTP 503 Service Unavailable");
	ck_assert_uint_eq(b->part_dev, 0xfedcba9876543210ULL);
	ck_assert_uint_eq(b->part_ino, 0x0123456789abcdefULL);
	ck_assert(b->meta.length == 1LL << 41);
	ck_assert_int_eq(b->meta.ranges, 1);
	ck_assert_str_eq(b->meta.etag, "W/\"abc \\ def\"");
	ck_assert_str_eq(b->meta.last_modified,
	    "Sun, 06 Dec 2026 10:00:00 GMT");
	ck_assert_str_eq(name, "sub/a b.1.iso");
	ck_assert_str_eq(b->name, "sub/a b.iso"); /* the caller's call */
	fetch_transfer_free(a);
	fetch_transfer_free(b);
}
END_TEST

/* The largest TRANSFER (every string at its bound) fits a message. */
START_TEST(test_transfer_at_bounds)
{
	struct transfer *t = sample_transfer(), *b;
	enum wire_type type;
	struct wire w;
	uint64_t id;

	free(t->url);
	free(t->dir);
	free(t->name);
	ck_assert_ptr_nonnull(t->url = malloc(WIRE_URL_MAX + 1));
	ck_assert_ptr_nonnull(t->dir = malloc(WIRE_PATH_MAX + 1));
	ck_assert_ptr_nonnull(t->name = malloc(WIRE_PATH_MAX + 1));
	memset(t->url, 'u', WIRE_URL_MAX);
	t->url[WIRE_URL_MAX] = '\0';
	memset(t->dir, 'd', WIRE_PATH_MAX);
	t->dir[WIRE_PATH_MAX] = '\0';
	memset(t->name, 'n', WIRE_PATH_MAX);
	t->name[WIRE_PATH_MAX] = '\0';
	memset(t->params.user_agent, 'a', CONFIG_UA_MAX - 1);
	memset(t->params.proxy, 'p', CONFIG_PROXY_MAX - 1);
	memset(t->params.ca_file, 'c', CONFIG_PROXY_MAX - 1);
	memset(t->params.no_proxy, 'n', CONFIG_PROXY_MAX - 1);
	memset(t->params.proxy_ca_file, 'q', CONFIG_PROXY_MAX - 1);
	memset(t->params.netrc_file, 'r', CONFIG_PROXY_MAX - 1);
	memset(t->params.deny, 'd', CONFIG_PROXY_MAX - 1);
	free(t->headers);
	ck_assert_ptr_nonnull(t->headers = malloc(WIRE_HEADERS_MAX + 2));
	memset(t->headers, 'h', WIRE_HEADERS_MAX + 1);
	t->headers[WIRE_HEADERS_MAX + 1] = '\0';
	ck_assert(!wire_transfer_fits(t));
	t->headers[WIRE_HEADERS_MAX] = '\0';
	ck_assert(wire_transfer_fits(t));
	ck_assert_int_eq(wire_open(&w, buf, put_transfer(t), &type, &id), 0);
	ck_assert_ptr_nonnull(b = wire_get_transfer(&w, id));
	ck_assert_str_eq(b->url, t->url);
	ck_assert_str_eq(b->name, t->name);
	ck_assert_str_eq(b->params.ca_file, t->params.ca_file);
	ck_assert_str_eq(b->params.no_proxy, t->params.no_proxy);
	ck_assert_str_eq(b->params.proxy_ca_file, t->params.proxy_ca_file);
	ck_assert_str_eq(b->params.netrc_file, t->params.netrc_file);
	ck_assert_str_eq(b->params.deny, t->params.deny);
	ck_assert_str_eq(b->headers, t->headers);
	fetch_transfer_free(b);
	fetch_transfer_free(t);
}
END_TEST

/* --- refusals ------------------------------------------------------------- */

START_TEST(test_truncated)
{
	struct transfer *t = sample_transfer();
	struct wire w;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_hello(&w, 1), 0);
	assert_exact(w.len, "hello");
	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_cancel(&w, 2), 0);
	assert_exact(w.len, "cancel");
	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_progress(&w, 3, 4), 0);
	assert_exact(w.len, "progress");
	assert_exact(put_transfer(t), "transfer");
	sample_result(t);
	assert_exact(put_result(t), "result");
	fetch_transfer_free(t);
}
END_TEST

/* A message that does not fit the writer's buffer is refused, not cut. */
START_TEST(test_no_room)
{
	struct transfer *t = sample_transfer();
	unsigned char small[64];
	struct wire w;

	wire_init(&w, small, sizeof(small));
	ck_assert_int_eq(wire_put_transfer(&w, t), -1);
	wire_init(&w, small, 12);
	ck_assert_int_eq(wire_put_progress(&w, 1, 2), -1);
	fetch_transfer_free(t);
}
END_TEST

START_TEST(test_oversize_strings_written)
{
	struct transfer *t = sample_transfer();
	struct wire w;

	free(t->url);
	ck_assert_ptr_nonnull(t->url = malloc(WIRE_URL_MAX + 2));
	memset(t->url, 'u', WIRE_URL_MAX + 1);
	t->url[WIRE_URL_MAX + 1] = '\0';
	ck_assert(!wire_transfer_fits(t));
	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_transfer(&w, t), -1);
	t->url[WIRE_URL_MAX] = '\0';
	ck_assert(wire_transfer_fits(t));

	/* A fixed array with no NUL is over its bound, never read past. */
	memset(t->params.user_agent, 'a', sizeof(t->params.user_agent));
	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_transfer(&w, t), -1);
	t->params.user_agent[0] = '\0';
	memset(t->error, 'e', sizeof(t->error));
	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_result(&w, t), -1);
	fetch_transfer_free(t);
}
END_TEST

START_TEST(test_bad_strings_read)
{
	struct transfer *t = sample_transfer();
	size_t len;

	sample_result(t);
	memset(t->error, 'e', FETCH_ERR_MAX - 1);
	t->error[FETCH_ERR_MAX - 1] = '\0';
	len = put_result(t);
	ck_assert_int_eq(decode(len), 0);
	/* A length one over the bound, with the bytes there to back it. */
	put_be32(RESULT_ERRLEN, FETCH_ERR_MAX);
	ck_assert_int_eq(decode(len), -1);
	put_be32(RESULT_ERRLEN, UINT32_MAX);
	ck_assert_int_eq(decode(len), -1);
	put_be32(RESULT_ERRLEN, FETCH_ERR_MAX - 1);
	ck_assert_int_eq(decode(len), 0);
	/* A NUL inside, or none at the end. */
	buf[RESULT_ERRLEN + 4 + 3] = '\0';
	ck_assert_int_eq(decode(len), -1);
	buf[RESULT_ERRLEN + 4 + 3] = 'e';
	buf[RESULT_ERRLEN + 4 + FETCH_ERR_MAX - 1] = 'x';
	ck_assert_int_eq(decode(len), -1);
	fetch_transfer_free(t);
}
END_TEST

START_TEST(test_bad_header)
{
	struct wire w;
	enum wire_type type;
	uint64_t id;
	size_t len;

	wire_init(&w, buf, sizeof(buf));
	ck_assert_int_eq(wire_put_cancel(&w, 5), 0);
	len = w.len;
	buf[1] = 0;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), -1);
	buf[1] = WIRE_RESULT + 1;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), -1);
	buf[1] = 0xff;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), -1);
	buf[1] = WIRE_CANCEL;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), 0);
	buf[0] = WIRE_VERSION - 1;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), -1);
	buf[0] = WIRE_VERSION + 1;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), -1);
}
END_TEST

/* Values the fields cannot hold are refused, and a refused result leaves
 * the transfer as it was. */
START_TEST(test_out_of_range)
{
	struct transfer *t = sample_transfer(), *into = sample_transfer();
	enum wire_type type;
	const char *name;
	struct wire w;
	uint64_t id;
	size_t len;

	len = put_transfer(t);
	buf[TRANSFER_HAS_SHA] = 2;
	ck_assert_int_eq(decode(len), -1);
	buf[TRANSFER_HAS_SHA] = 1;
	buf[TRANSFER_VERIFY_TLS] = 2;
	ck_assert_int_eq(decode(len), -1);
	buf[TRANSFER_VERIFY_TLS] = 0;
	ck_assert_int_eq(decode(len), 0);

	sample_result(t);
	len = put_result(t);
	buf[HDR] = FETCH_FAIL + 1;
	ck_assert_int_eq(decode(len), -1);
	buf[HDR] = FETCH_OK;
	buf[HDR + 1] = FERR__COUNT;
	ck_assert_int_eq(wire_open(&w, buf, len, &type, &id), 0);
	ck_assert_int_eq(wire_get_result(&w, into, &name), -1);
	ck_assert_int_eq(into->outcome, FETCH_OK);
	ck_assert_int_eq(into->http_status, 0);
	ck_assert_str_eq(into->error, "");
	ck_assert_uint_eq(into->part_ino, 0x0011223344556677ULL);
	fetch_transfer_free(t);
	fetch_transfer_free(into);
}
END_TEST

/* A result must name the file the worker wrote. */
START_TEST(test_result_without_name)
{
	struct transfer *t = sample_transfer();

	sample_result(t);
	t->name[0] = '\0';
	ck_assert_int_eq(decode(put_result(t)), -1);
	fetch_transfer_free(t);
}
END_TEST

static Suite *
wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc;

	tc = tcase_create("round trips");
	tcase_add_test(tc, test_hello);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_progress);
	tcase_add_test(tc, test_transfer);
	tcase_add_test(tc, test_transfer_segment);
	tcase_add_test(tc, test_result);
	tcase_add_test(tc, test_transfer_at_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("refusals");
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_no_room);
	tcase_add_test(tc, test_oversize_strings_written);
	tcase_add_test(tc, test_bad_strings_read);
	tcase_add_test(tc, test_bad_header);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_result_without_name);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(wire_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
