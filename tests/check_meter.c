/*
 * check_meter.c: unit tests for meter.c, the progress line of `fetchctl
 * wait`. Pure: every case renders a hand-made object of the protocol.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "meter.h"
#include "testlib.h"

static json_t *
obj(const char *text)
{
	json_error_t err;
	json_t *o = json_loads(text, 0, &err);

	ck_assert_msg(o != NULL, "bad test JSON: %s", err.text);
	return o;
}

/* The terminal line of text at width; the test fails on a line that is
 * too long or not plain ASCII. */
static const char *
line(const char *text, int width)
{
	static char buf[METER_LINE_MAX];
	json_t *o = obj(text);
	size_t n, i;

	n = meter_line(o, width, 0, buf, sizeof(buf));
	json_decref(o);
	ck_assert_uint_eq(n, strlen(buf));
	ck_assert_msg(n <= (size_t)(width < METER_WIDTH_MIN ?
	    METER_WIDTH_MIN : width) - 1, "%zu columns at width %d: \"%s\"",
	    n, width, buf);
	for (i = 0; i < n; i++)
		ck_assert_msg(buf[i] >= 0x20 && buf[i] < 0x7f,
		    "byte %zu of \"%s\"", i, buf);
	return buf;
}

static const char *
plain(const char *text)
{
	static char buf[METER_LINE_MAX];
	json_t *o = obj(text);

	meter_plain(o, buf, sizeof(buf));
	json_decref(o);
	return buf;
}

#define RUNNING "{\"proto\":1,\"event\":\"progress\",\"job\":\"nightly\"," \
	"\"state\":\"running\",\"urls\":100,\"done\":40,\"failed\":2," \
	"\"running\":4,\"queued\":54,\"bytes\":47395635,\"rate\":1258291.2," \
	"\"url_rate\":3.5,\"eta\":65}"

START_TEST(test_eta)
{
	char b[32];

	meter_fmt_eta(0, b, sizeof(b));
	ck_assert_str_eq(b, "0s");
	meter_fmt_eta(44.2, b, sizeof(b));
	ck_assert_str_eq(b, "45s");             /* rounded up */
	meter_fmt_eta(65, b, sizeof(b));
	ck_assert_str_eq(b, "1m05s");
	meter_fmt_eta(2 * 3600 + 3 * 60 + 59, b, sizeof(b));
	ck_assert_str_eq(b, "2h03m");
	meter_fmt_eta(3 * 86400 + 4 * 3600 + 1, b, sizeof(b));
	ck_assert_str_eq(b, "3d04h");
	/* Unknown: the daemon's null reads as -1; NaN and infinity too. */
	meter_fmt_eta(-1, b, sizeof(b));
	ck_assert_str_eq(b, "--");
	meter_fmt_eta(0.0 / 0.0, b, sizeof(b));
	ck_assert_str_eq(b, "--");
	meter_fmt_eta(1.0 / 0.0, b, sizeof(b));
	ck_assert_str_eq(b, "--");
	meter_fmt_eta(1e300, b, sizeof(b));     /* bounded, not garbage */
	ck_assert_str_eq(b, "11574d01h");
}
END_TEST

START_TEST(test_rate_and_bytes)
{
	char b[32];

	meter_fmt_rate(0, b, sizeof(b));
	ck_assert_str_eq(b, "0 B/s");
	meter_fmt_rate(512, b, sizeof(b));
	ck_assert_str_eq(b, "512 B/s");
	meter_fmt_rate(1258291.2, b, sizeof(b));
	ck_assert_str_eq(b, "1.2 MiB/s");
	meter_fmt_rate(-5, b, sizeof(b));
	ck_assert_str_eq(b, "0 B/s");
	ck_assert_ptr_nonnull(strstr(line(RUNNING, 100), " 45.2 MiB "));
}
END_TEST

START_TEST(test_running_line)
{
	const char *l = line(RUNNING, 100);

	ck_assert_msg(strncmp(l, "nightly [", 9) == 0, "%s", l);
	ck_assert_ptr_nonnull(strstr(l, "]  40/2/100 "));
	ck_assert_ptr_nonnull(strstr(l, "1.2 MiB/s ETA 1m05s"));
	/* 42 of 100 finished: a bar 42% full, its head after the fill. */
	ck_assert_ptr_nonnull(strstr(l, "[================>"));
	ck_assert_ptr_null(strstr(l, "[=================>"));
	/* The bar takes up the rest, up to 40 cells. */
	ck_assert_int_eq(l[8], '[');
	ck_assert_int_eq(l[8 + 41], ']');
}
END_TEST

START_TEST(test_eta_unknown)
{
	const char *l = line("{\"job\":\"j\",\"state\":\"running\",\"urls\":3,"
	    "\"done\":0,\"failed\":0,\"bytes\":0,\"rate\":0,\"eta\":null}", 80);

	ck_assert_msg(strstr(l, "0 B/s ETA --") != NULL, "%s", l);
	ck_assert_ptr_nonnull(strstr(l, "[>"));
	ck_assert_ptr_nonnull(strstr(plain("{\"job\":\"j\",\"state\":"
	    "\"running\",\"urls\":3,\"done\":0,\"failed\":0,\"bytes\":0,"
	    "\"rate\":0,\"eta\":null}"), "ETA --"));
}
END_TEST

/* Every width from the narrowest on: never wrapped, the figures kept as
 * long as they fit, the bar dropped before them. */
START_TEST(test_widths)
{
	const char *l;
	int w;

	for (w = 0; w <= 300; w++)
		line(RUNNING, w);
	l = line(RUNNING, 50);
	ck_assert_msg(strstr(l, "[") == NULL, "no room for a bar: %s", l);
	ck_assert_ptr_nonnull(strstr(l, "40/2/100"));
	l = line(RUNNING, 60);
	ck_assert_msg(strstr(l, "[=") != NULL, "%s", l);
	ck_assert_uint_eq(strlen(l), 59);
	/* A wide terminal: the bar stops growing. */
	l = line(RUNNING, 300);
	ck_assert_uint_lt(strlen(l), 120);
	ck_assert_ptr_nonnull(strstr(l, "ETA 1m05s"));
}
END_TEST

START_TEST(test_long_name)
{
	char json[512], b[64];
	const char *l;
	const char *name =
	    "a-very-long-job-name-from-a-file.txt.1795723711.7263.0";

	snprintf(json, sizeof(json), "{\"job\":\"%s\",\"state\":\"running\","
	    "\"urls\":10,\"done\":5,\"failed\":0,\"bytes\":1024,\"rate\":1024,"
	    "\"eta\":5}", name);
	l = line(json, 80);
	/* A third of the line, its start and its distinctive end. */
	ck_assert_msg(strncmp(l, "a-very-...795723711.7263.0 [", 28) == 0,
	    "%s", l);
	ck_assert_ptr_nonnull(strstr(l, "5/0/10"));
	ck_assert_ptr_nonnull(strstr(l, "ETA 5s"));
	/* The whole name when the terminal is wide enough. */
	l = line(json, 200);
	ck_assert_msg(strncmp(l, name, strlen(name)) == 0, "%s", l);

	ck_assert_uint_eq(meter_fmt_name("short", 10, b, sizeof(b)), 5);
	ck_assert_str_eq(b, "short");
	ck_assert_uint_eq(meter_fmt_name("abcdefghijkl", 9, b, sizeof(b)), 9);
	ck_assert_str_eq(b, "ab...ijkl");
	ck_assert_uint_eq(meter_fmt_name("abcdefghijkl", 3, b, sizeof(b)), 3);
	ck_assert_str_eq(b, "abc");
	ck_assert_uint_eq(meter_fmt_name("abcdefghijkl", 40, b, 6), 5);
	ck_assert_str_eq(b, "a...l");
}
END_TEST

/* States without figures, and figures of states other than running. */
START_TEST(test_states)
{
	const char *l;

	l = line("{\"proto\":1,\"event\":\"job\",\"job\":\"q\","
	    "\"state\":\"queued\"}", 80);
	ck_assert_str_eq(l, "q  queued");
	l = line("{\"event\":\"job\",\"job\":\"d\",\"state\":\"done\","
	    "\"result\":\"/var/spool/fetchd/done/d.result\"}", 80);
	ck_assert_str_eq(l, "d  done  /var/spool/fetchd/done/d.result");
	l = line("{\"job\":\"v\",\"state\":\"validating\",\"urls\":0,"
	    "\"done\":0,\"failed\":0,\"bytes\":0}", 80);
	ck_assert_msg(strstr(l, " 0/0/? ") != NULL, "%s", l);
	ck_assert_msg(strstr(l, "validating") != NULL, "%s", l);
	l = line("{\"event\":\"job_done\",\"job\":\"f\",\"state\":\"failed\","
	    "\"urls\":4,\"done\":3,\"failed\":1,\"bytes\":2048,"
	    "\"seconds\":75.5,\"result\":\"/s/failed/f.result\"}", 80);
	ck_assert_msg(strstr(l, "[====") != NULL && strstr(l, ">") == NULL,
	    "an ended job's bar is full: %s", l);
	ck_assert_msg(strstr(l, "3/1/4 ") != NULL, "%s", l);
	ck_assert_msg(strstr(l, "failed in 1m15s") != NULL, "%s", l);
	/* No name at all still gives a line. */
	ck_assert_str_eq(line("{}", 80), "?  ?");
	/* A detail (jobs JOB) names the job "name". */
	ck_assert_str_eq(line("{\"name\":\"n\",\"state\":\"queued\"}", 80),
	    "n  queued");
}
END_TEST

START_TEST(test_plain)
{
	ck_assert_str_eq(plain(RUNNING), "nightly running: 40 done, 2 failed "
	    "of 100 URLs, 45.2 MiB, 1.2 MiB/s, ETA 1m05s");
	ck_assert_str_eq(plain("{\"job\":\"q\",\"state\":\"queued\"}"),
	    "q queued");
	ck_assert_str_eq(plain("{\"event\":\"job_done\",\"job\":\"d\","
	    "\"state\":\"done\",\"urls\":2,\"done\":2,\"failed\":0,"
	    "\"bytes\":100,\"seconds\":1.25,\"result\":\"/s/done/d.result\"}"),
	    "d done: 2 done, 0 failed of 2 URLs, 100 B in 1.2s; "
	    "result /s/done/d.result");
	ck_assert_str_eq(plain("{\"job\":\"d\",\"state\":\"done\","
	    "\"result\":\"/s/done/d.result\"}"),
	    "d done; result /s/done/d.result");
}
END_TEST

/* Lines of jobs with names of different lengths line up their bars in a
 * column as wide as the longest name; a third of the line at most. */
START_TEST(test_name_column)
{
	char a[METER_LINE_MAX], b[METER_LINE_MAX];
	json_t *o = obj(RUNNING);

	meter_line(o, 100, 12, a, sizeof(a));
	ck_assert_msg(strncmp(a, "nightly      [", 14) == 0, "%s", a);
	meter_line(o, 100, 0, b, sizeof(b));
	ck_assert_msg(strncmp(b, "nightly [", 9) == 0, "%s", b);
	ck_assert_ptr_nonnull(strstr(a, "ETA 1m05s"));
	meter_line(o, 100, 500, a, sizeof(a));
	ck_assert_int_eq(a[34], '[');      /* a column of 99 / 3 = 33 */
	ck_assert_uint_le(strlen(a), 99);
	json_decref(o);
}
END_TEST

/* A small buffer cuts the line, never overflows it. */
START_TEST(test_small_buffer)
{
	char b[16];
	json_t *o = obj(RUNNING);

	memset(b, 'x', sizeof(b));
	ck_assert_uint_le(meter_line(o, 100, 0, b, 10), 9);
	ck_assert_uint_eq(strlen(b), 9);
	ck_assert_int_eq(b[10], 'x');
	ck_assert_uint_le(meter_plain(o, b, 10), 9);
	ck_assert_uint_eq(strlen(b), 9);
	ck_assert_uint_eq(meter_line(o, 100, 0, b, 0), 0);
	json_decref(o);
}
END_TEST

static Suite *
meter_suite(void)
{
	Suite *s = suite_create("meter");
	TCase *tc = tcase_create("lines");

	tcase_add_test(tc, test_eta);
	tcase_add_test(tc, test_rate_and_bytes);
	tcase_add_test(tc, test_running_line);
	tcase_add_test(tc, test_eta_unknown);
	tcase_add_test(tc, test_widths);
	tcase_add_test(tc, test_long_name);
	tcase_add_test(tc, test_states);
	tcase_add_test(tc, test_name_column);
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_small_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(meter_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
