/*
 * check_feed.c: the event lines and the job detail (feed.c) built from
 * hand-made transfers and job_infos, compared as JSON text, member order
 * included (it is what a subscriber reads); URL redaction; the lines for
 * people.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "feed.h"
#include "testlib.h"

/* o (stolen) dumped compactly, compared with want. */
static void
assert_json(json_t *o, const char *want)
{
	char *s;

	ck_assert_ptr_nonnull(o);
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, want);
	free(s);
	json_decref(o);
}

static void line(json_t *, const char *);

static void
redacted(const char *url, const char *want)
{
	char buf[512];

	feed_url_redact(url, buf, sizeof(buf));
	ck_assert_str_eq(buf, want);
}

START_TEST(test_redact)
{
	redacted("http://h/a?b=1", "http://h/a?b=1");
	redacted("https://u:p@h:8/a", "https://h:8/a");
	redacted("http://u@x:p@h/", "http://h/");
	/* an '@' after the authority is no userinfo */
	redacted("http://h/a@b?c=d@e", "http://h/a@b?c=d@e");
	redacted("http://h/a?token=abc&x=1&X-Amz-Signature=zz#f",
	    "http://h/a?token=REDACTED&x=1&X-Amz-Signature=REDACTED#f");
	redacted("http://h/?api_key=1&Password=2&sig&auth=",
	    "http://h/?api_key=REDACTED&Password=REDACTED&sig&auth=REDACTED");
	redacted("http://h/?session_id=9&keep=1&id=2",
	    "http://h/?session_id=REDACTED&keep=1&id=2");
}
END_TEST

START_TEST(test_redact_cut)
{
	char buf[12];

	feed_url_redact("http://u:p@host/abcdef", buf, sizeof(buf));
	ck_assert_str_eq(buf, "http://host");
	feed_url_redact("x", buf, 1);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_published)
{
	assert_json(feed_job_queued(1, 2.5, "j"),
	    "{\"proto\":1,\"event\":\"job_queued\",\"seq\":1,\"time\":2.5,"
	    "\"job\":\"j\"}");
	assert_json(feed_job_claimed(2, 3.0, "j.1", 0, "j"),
	    "{\"proto\":1,\"event\":\"job_claimed\",\"seq\":2,\"time\":3.0,"
	    "\"job\":\"j.1\",\"resumed\":false,\"queued_as\":\"j\"}");
	assert_json(feed_job_claimed(3, 3.0, "k", 1, NULL),
	    "{\"proto\":1,\"event\":\"job_claimed\",\"seq\":3,\"time\":3.0,"
	    "\"job\":\"k\",\"resumed\":true}");
}
END_TEST

START_TEST(test_url_done)
{
	struct transfer *t;

	t = fetch_transfer_new("http://u:p@h/a?key=s", "h", "/d", "a");
	ck_assert_ptr_nonnull(t);
	t->index = 7;
	t->outcome = FETCH_OK;
	t->http_status = 200;
	t->size = 1234;
	t->seconds_total = 0.5;
	t->attempt = 2;
	snprintf(t->error, sizeof(t->error), "earlier attempt");
	assert_json(feed_url_done(9, 1.0, "j", t, NULL),
	    "{\"proto\":1,\"event\":\"url_done\",\"seq\":9,\"time\":1.0,"
	    "\"job\":\"j\",\"index\":7,\"url\":\"http://h/a?key=REDACTED\","
	    "\"outcome\":\"ok\",\"status\":200,\"bytes\":1234,\"seconds\":0.5,"
	    "\"attempts\":2,\"error\":\"\",\"path\":\"a\"}");
	t->outcome = FETCH_FAIL;
	t->http_status = 404;
	snprintf(t->error, sizeof(t->error), "HTTP 404");
	assert_json(feed_url_done(10, 1.0, "j", t, "n1"),
	    "{\"proto\":1,\"event\":\"url_done\",\"seq\":10,\"time\":1.0,"
	    "\"job\":\"j\",\"index\":7,\"url\":\"http://h/a?key=REDACTED\","
	    "\"outcome\":\"failed\",\"status\":404,\"bytes\":0,"
	    "\"seconds\":0.5,\"attempts\":2,\"error\":\"HTTP 404\","
	    "\"path\":\"a\",\"node\":\"n1\"}");
	fetch_transfer_free(t);
}
END_TEST

/* A line with mirrors: url is the line's own, served_by the one in use
 * (t->url), both redacted; the line for people says "via" it. */
START_TEST(test_url_done_mirror)
{
	struct transfer *t;
	char **v;

	t = fetch_transfer_new("https://u:p@m2/a?token=x", "m2", "/d", "a");
	ck_assert_ptr_nonnull(t);
	/* As jobs.c lays them out: URLs, then hosts, in one block (the
	 * strings may live anywhere; only the block is freed with t). */
	ck_assert_ptr_nonnull(v = malloc(6 * sizeof(*v)));
	v[0] = "http://h/a";
	v[1] = "http://m1/a";
	v[2] = "https://u:p@m2/a?token=x";
	v[3] = "h";
	v[4] = "m1";
	v[5] = "m2";
	t->mirrors = v;
	t->nmirrors = 3;
	t->mirror = 2;
	t->index = 1;
	t->outcome = FETCH_OK;
	t->http_status = 200;
	t->size = 10;
	t->seconds_total = 0.25;
	t->attempt = 3;
	assert_json(feed_url_done(4, 1.0, "j", t, NULL),
	    "{\"proto\":1,\"event\":\"url_done\",\"seq\":4,\"time\":1.0,"
	    "\"job\":\"j\",\"index\":1,\"url\":\"http://h/a\","
	    "\"outcome\":\"ok\",\"status\":200,\"bytes\":10,\"seconds\":0.25,"
	    "\"attempts\":3,\"error\":\"\",\"path\":\"a\","
	    "\"served_by\":\"https://m2/a?token=REDACTED\"}");
	line(feed_url_done(4, 1.0, "j", t, NULL),
	    "ok       j #1 200 10 B 0.2s http://h/a via "
	    "https://m2/a?token=REDACTED");
	fetch_transfer_free(t);
}
END_TEST

static void
info(struct job_info *ji)
{
	memset(ji, 0, sizeof(*ji));
	ji->name = "j";
	ji->state = "running";
	ji->urls = 10;
	ji->done = 4;
	ji->failed = 1;
	ji->running = 5;
	ji->transferring = 2;
	ji->queued = 3;
	ji->bytes = 4096;
	ji->rate = 100.5;
	ji->url_rate = 0.5;
	ji->eta = 10;
	ji->seconds = 2.25;
}

START_TEST(test_done_and_progress)
{
	struct job_info ji;

	info(&ji);
	assert_json(feed_job_done(4, 5.0, &ji, 1, "/s/failed/j.result"),
	    "{\"proto\":1,\"event\":\"job_done\",\"seq\":4,\"time\":5.0,"
	    "\"job\":\"j\",\"state\":\"failed\",\"urls\":10,\"done\":4,"
	    "\"failed\":1,\"bytes\":4096,\"seconds\":2.25,"
	    "\"result\":\"/s/failed/j.result\"}");
	assert_json(feed_progress(&ji),
	    "{\"proto\":1,\"event\":\"progress\",\"job\":\"j\","
	    "\"state\":\"running\",\"urls\":10,\"done\":4,\"failed\":1,"
	    "\"running\":2,\"queued\":3,\"bytes\":4096,\"rate\":100.5,"
	    "\"url_rate\":0.5,\"eta\":10.0}");
	ji.eta = -1;
	assert_json(feed_snapshot("j", FEED_STATE_ACTIVE, &ji, NULL),
	    "{\"proto\":1,\"event\":\"job\",\"job\":\"j\",\"state\":\"active\","
	    "\"urls\":10,\"done\":4,\"failed\":1,\"running\":2,\"queued\":3,"
	    "\"bytes\":4096,\"rate\":100.5,\"url_rate\":0.5,\"eta\":null}");
	assert_json(feed_snapshot("j", FEED_STATE_DONE, NULL, "/r"),
	    "{\"proto\":1,\"event\":\"job\",\"job\":\"j\",\"state\":\"done\","
	    "\"result\":\"/r\"}");
	assert_json(feed_snapshot("x", FEED_STATE_UNKNOWN, NULL, NULL),
	    "{\"proto\":1,\"event\":\"job\",\"job\":\"x\","
	    "\"state\":\"unknown\"}");
	assert_json(feed_missed(12, 1),
	    "{\"proto\":1,\"event\":\"missed\",\"count\":12,\"dropped\":true}");
	assert_json(feed_subscribed(0),
	    "{\"proto\":1,\"event\":\"subscribed\",\"seq\":0}");
}
END_TEST

START_TEST(test_detail)
{
	struct job_info ji;

	info(&ji);
	ji.nerrors = 1;
	ji.errors[0].index = 3;
	ji.errors[0].url = "http://a:b@h/x";
	ji.errors[0].error = "HTTP 503";
	ji.errors[0].status = 503;
	ji.errors[0].attempt = 2;
	ji.errors[0].time = 100.5;
	assert_json(feed_detail("j", ji.state, &ji, NULL),
	    "{\"name\":\"j\",\"state\":\"running\",\"urls\":10,\"done\":4,"
	    "\"failed\":1,\"running\":2,\"queued\":3,\"bytes\":4096,"
	    "\"rate\":100.5,\"url_rate\":0.5,\"eta\":10.0,\"errors\":[{"
	    "\"index\":3,\"url\":\"http://h/x\",\"error\":\"HTTP 503\","
	    "\"status\":503,\"attempt\":2,\"time\":100.5}]}");
	assert_json(feed_detail("j", "done", NULL, "/s/done/j.result"),
	    "{\"name\":\"j\",\"state\":\"done\","
	    "\"result\":\"/s/done/j.result\"}");
}
END_TEST

static void
line(json_t *ev, const char *want)
{
	char buf[512];

	ck_assert_ptr_nonnull(ev);
	feed_line(ev, buf, sizeof(buf));
	ck_assert_str_eq(buf, want);
	json_decref(ev);
}

START_TEST(test_lines)
{
	struct job_info ji;
	struct transfer *t;

	info(&ji);
	line(feed_job_queued(1, 0, "j"), "queued   j");
	line(feed_job_claimed(1, 0, "j.1", 0, "j"),
	    "claimed  j.1 (queued as j)");
	line(feed_job_claimed(1, 0, "j", 1, NULL), "claimed  j (resumed)");
	line(feed_job_done(1, 0, &ji, 0, "/r"),
	    "done     j: 10 URLs, 4 ok, 1 failed, 4.0 KiB in 2.2s; /r");
	line(feed_progress(&ji), "progress j running: 4/10 done, 1 failed, "
	    "2 running, 3 queued, 100 B/s, 0.5 URL/s, ETA 10.0s");
	line(feed_snapshot("j", "failed", NULL, "/r"), "job      j failed; /r");
	line(feed_missed(3, 0), "missed   3 events");
	line(feed_missed(1, 1), "missed   1 event; dropped by fetchd (too "
	    "slow)");
	line(json_pack("{s:s,s:s}", "event", "new_kind", "job", "j"),
	    "new_kind j");
	t = fetch_transfer_new("http://h/a", "h", "/d", "a");
	ck_assert_ptr_nonnull(t);
	t->outcome = FETCH_FAIL;
	t->http_status = 404;
	t->attempt = 1;
	snprintf(t->error, sizeof(t->error), "HTTP 404");
	line(feed_url_done(1, 0, "j", t, NULL),
	    "failed   j #0 404 0 B 0.0s http://h/a: HTTP 404");
	fetch_transfer_free(t);
}
END_TEST

static Suite *
feed_suite(void)
{
	Suite *s = suite_create("feed");
	TCase *tc = tcase_create("lines");

	tcase_add_test(tc, test_redact);
	tcase_add_test(tc, test_redact_cut);
	tcase_add_test(tc, test_published);
	tcase_add_test(tc, test_url_done);
	tcase_add_test(tc, test_url_done_mirror);
	tcase_add_test(tc, test_done_and_progress);
	tcase_add_test(tc, test_detail);
	tcase_add_test(tc, test_lines);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(feed_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
