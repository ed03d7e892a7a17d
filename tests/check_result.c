/*
 * check_result.c: unit tests for result.c, the rows of J.result. Pure: every
 * case formats into a buffer and reads it back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"
#include "testlib.h"

/* Split row (with its '\n') at tabs into f; the number of fields. */
static int
fields(char *row, char *f[], int max)
{
	int n = 0;
	char *p = row, *tab;

	ck_assert_int_gt(strlen(row), 0);
	ck_assert_int_eq(row[strlen(row) - 1], '\n');
	row[strlen(row) - 1] = '\0';
	while (n < max) {
		f[n++] = p;
		if ((tab = strchr(p, '\t')) == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	return n;
}

START_TEST(test_header)
{
	char h[] = RESULT_HEADER, *f[16];

	ck_assert_int_eq(h[0], '#');
	ck_assert_int_eq(fields(h + 1, f, 16), 8);
	ck_assert_str_eq(f[0], "url");
	ck_assert_str_eq(f[1], "outcome");
	ck_assert_str_eq(f[7], "error");
}
END_TEST

/* Every field comes back where the header says, numbers as given. */
START_TEST(test_round_trip)
{
	struct result_row r = {
		.url = "http://h/a.iso", .ok = 1, .status = 206,
		.bytes = 12345678901ULL, .seconds = 1.5, .attempts = 3,
		.path = "d/a.1.iso", .error = NULL,
	};
	char row[RESULT_ROW_MAX], *f[16];
	int n;

	n = result_format(row, sizeof(row), &r);
	ck_assert_int_eq(n, (int)strlen(row));
	ck_assert(result_row_ok(row, (size_t)n));
	ck_assert_int_eq(fields(row, f, 16), 8);
	ck_assert_str_eq(f[0], "http://h/a.iso");
	ck_assert_str_eq(f[1], "ok");
	ck_assert_str_eq(f[2], "206");
	ck_assert_str_eq(f[3], "12345678901");
	ck_assert_str_eq(f[4], "1.500");
	ck_assert_str_eq(f[5], "3");
	ck_assert_str_eq(f[6], "d/a.1.iso");
	ck_assert_str_eq(f[7], "-");
}
END_TEST

/* Cluster mode: a ninth column names the node, "-" when none did. */
START_TEST(test_node_column)
{
	struct result_row r = {
		.url = "http://h/a", .ok = 1, .status = 200, .bytes = 1,
		.attempts = 1, .path = "a", .node = "n-2",
	};
	char row[RESULT_ROW_MAX], *f[16];
	int n;

	n = result_format(row, sizeof(row), &r);
	ck_assert_int_eq(n, (int)strlen(row));
	ck_assert(result_row_ok(row, (size_t)n));
	ck_assert_int_eq(fields(row, f, 16), 9);
	ck_assert_str_eq(f[7], "-");
	ck_assert_str_eq(f[8], "n-2");
	r.node = "";
	ck_assert_int_gt(result_format(row, sizeof(row), &r), 0);
	ck_assert_int_eq(fields(row, f, 16), 9);
	ck_assert_str_eq(f[8], "-");
	ck_assert_ptr_nonnull(strstr(RESULT_HEADER_NODE, "\terror\tnode\n"));
}
END_TEST

/* served_by comes last, after node when there is one; the headers of
 * result_header() name the columns result_format() writes. */
START_TEST(test_served_by_column)
{
	struct result_row r = {
		.url = "http://h/a", .ok = 0, .status = 503, .attempts = 4,
		.path = "a", .error = "HTTP 503", .served_by = "http://m/a",
	};
	char row[RESULT_ROW_MAX], hdr[256], *f[16], *h[16];
	int n, node;

	for (node = 0; node <= 1; node++) {
		r.node = node ? "n1" : NULL;
		n = result_format(row, sizeof(row), &r);
		ck_assert_int_eq(n, (int)strlen(row));
		ck_assert(!result_row_ok(row, (size_t)n));
		snprintf(hdr, sizeof(hdr), "%s", result_header(node, 1));
		ck_assert_int_eq(hdr[0], '#');
		ck_assert_int_eq(fields(row, f, 16), 9 + node);
		ck_assert_int_eq(fields(hdr + 1, h, 16), 9 + node);
		ck_assert_str_eq(h[8 + node], "served_by");
		ck_assert_str_eq(f[8 + node], "http://m/a");
		ck_assert_str_eq(f[7], "HTTP 503");
		if (node) {
			ck_assert_str_eq(h[8], "node");
			ck_assert_str_eq(f[8], "n1");
		}
	}
	r.node = NULL;
	r.served_by = "";
	ck_assert_int_gt(result_format(row, sizeof(row), &r), 0);
	ck_assert_int_eq(fields(row, f, 16), 9);
	ck_assert_str_eq(f[8], "-");
	/* Without mirrors the header and the rows are as they were. */
	ck_assert_str_eq(result_header(0, 0), RESULT_HEADER);
	ck_assert_str_eq(result_header(1, 0), RESULT_HEADER_NODE);
	r.served_by = NULL;
	ck_assert_int_gt(result_format(row, sizeof(row), &r), 0);
	ck_assert_int_eq(fields(row, f, 16), 8);
}
END_TEST

/* Tabs, newlines, other control bytes and DEL become spaces: one row. */
START_TEST(test_control_bytes)
{
	struct result_row r = {
		.url = "http://h/a\tb", .ok = 0, .path = "x\ny",
		.error = "bad\r\n\tthing\x01\x7f!",
	};
	char row[RESULT_ROW_MAX], *f[16];
	int n;

	n = result_format(row, sizeof(row), &r);
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_eq(strchr(row, '\n'), row + n - 1);
	ck_assert(!result_row_ok(row, (size_t)n));
	ck_assert_int_eq(fields(row, f, 16), 8);
	ck_assert_str_eq(f[0], "http://h/a b");
	ck_assert_str_eq(f[1], "failed");
	ck_assert_str_eq(f[6], "x y");
	ck_assert_str_eq(f[7], "bad   thing  !");
}
END_TEST

/* The row of a job or line that fetched nothing; spool.c's rejects too. */
START_TEST(test_failed_row)
{
	char row[RESULT_ROW_MAX];

	ck_assert_int_gt(result_format_failed(row, sizeof(row), "-",
	    "not a regular file (FIFO)"), 0);
	ck_assert_str_eq(row,
	    "-\tfailed\t0\t0\t0.000\t0\t-\tnot a regular file (FIFO)\n");
	ck_assert_int_gt(result_format_failed(row, sizeof(row), "http://h/",
	    ""), 0);
	ck_assert_str_eq(row, "http://h/\tfailed\t0\t0\t0.000\t0\t-\t-\n");
}
END_TEST

static char *
filled(size_t n, int c)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A row that does not fit is refused whole, never cut; the longest URL
 * (twice: url and served_by) and path a job may hold, with an error text
 * and a node, fit RESULT_ROW_MAX. */
START_TEST(test_too_long)
{
	struct result_row r = { .status = 404, .attempts = 99 };
	char row[32], *big;

	ck_assert_int_eq(result_format_failed(row, sizeof(row), "-",
	    "an error text far longer than the buffer"), -1);
	ck_assert_int_eq(result_format_failed(row, 0, "-", "x"), -1);
	r.url = filled(JOB_LINE_MAX, 'u');
	r.served_by = filled(JOB_LINE_MAX, 's');
	r.node = "n1";
	r.path = filled(JOB_PATH_MAX, 'p');
	r.error = filled(255, 'e');
	ck_assert_ptr_nonnull(big = malloc(RESULT_ROW_MAX));
	ck_assert_int_gt(result_format(big, RESULT_ROW_MAX, &r),
	    2 * JOB_LINE_MAX + JOB_PATH_MAX + 255);
	ck_assert_int_eq(result_format(big, JOB_LINE_MAX + 8, &r), -1);
	free(big);
	free((char *)r.url);
	free((char *)r.served_by);
	free((char *)r.path);
	free((char *)r.error);
}
END_TEST

START_TEST(test_row_ok)
{
	ck_assert(result_row_ok("u\tok\t200\n", 9));
	ck_assert(result_row_ok("u\tok\t200", 8));
	ck_assert(!result_row_ok("u\tfailed\t0\n", 11));
	ck_assert(!result_row_ok("u\tokay\t0\n", 9));
	ck_assert(!result_row_ok("ok\t", 3));
	ck_assert(!result_row_ok("u\tok", 4));
	ck_assert(!result_row_ok("", 0));
	/* Only the first len bytes count. */
	ck_assert(!result_row_ok("u\tok\t200\n", 4));
	/* A refreshed file the server said is current is ok too. */
	ck_assert(result_row_ok("u\tunchanged\t304\n", 16));
	ck_assert(!result_row_ok("u\tunchanged", 11));
}
END_TEST

START_TEST(test_unchanged_row)
{
	struct result_row r = {
		.url = "http://h/a", .ok = 1, .unchanged = 1, .status = 304,
		.bytes = 7, .attempts = 1, .path = "a",
	};
	char row[256];

	ck_assert_int_gt(result_format(row, sizeof(row), &r), 0);
	ck_assert_str_eq(row, "http://h/a\tunchanged\t304\t7\t0.000\t1\ta\t-\n");
	ck_assert_str_eq(result_outcome(0, 1), "failed");
	ck_assert_str_eq(result_outcome(1, 0), "ok");
}
END_TEST

static Suite *
result_suite(void)
{
	Suite *s = suite_create("result");
	TCase *tc = tcase_create("rows");

	tcase_add_test(tc, test_header);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_node_column);
	tcase_add_test(tc, test_served_by_column);
	tcase_add_test(tc, test_control_bytes);
	tcase_add_test(tc, test_failed_row);
	tcase_add_test(tc, test_too_long);
	tcase_add_test(tc, test_row_ok);
	tcase_add_test(tc, test_unchanged_row);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(result_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
