/*
 * check_journal.c: unit tests for journal.c. Recovery is driven on buffers
 * (torn and garbage lines, merging, the base); one case writes through a
 * real spool and reads the file back, as a restart does.
 */
#include <sys/stat.h>

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "result.h"
#include "testlib.h"

static struct journal_recovery *
parsed(size_t base, const char *text)
{
	struct journal_recovery *rc = journal_recovery_new(base);

	ck_assert_ptr_nonnull(rc);
	ck_assert_int_eq(journal_recovery_parse(rc, text, strlen(text)), 0);
	return rc;
}

/* A claim and, later, the result of the same index make one record. */
START_TEST(test_merge_claim_and_result)
{
	struct journal_recovery *rc;
	const struct journal_rec *r;

	rc = parsed(0,
	    "C\t3\ta.iso\n"
	    "C\t1\tb.iso\n"
	    "R\t3\thttp://h/a.iso\tok\t200\t5\t0.100\t1\ta.iso\t-\n");
	ck_assert_ptr_null(journal_recovery_find(rc, 0));
	r = journal_recovery_find(rc, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->name, "b.iso");
	ck_assert_ptr_null(r->row);
	ck_assert_ptr_null(journal_recovery_find(rc, 2));
	r = journal_recovery_find(rc, 3);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->index, 3);
	ck_assert_str_eq(r->name, "a.iso");
	ck_assert_str_eq(r->row,
	    "http://h/a.iso\tok\t200\t5\t0.100\t1\ta.iso\t-\n");
	ck_assert(result_row_ok(r->row, strlen(r->row)));
	ck_assert_ptr_null(journal_recovery_find(rc, 4));
	journal_recovery_free(rc);
}
END_TEST

/* The last claim of an index wins (a name reserved again after a restart
 * found the first one taken), however many records there are. */
START_TEST(test_last_claim_wins)
{
	struct journal_recovery *rc = journal_recovery_new(0);
	const struct journal_rec *r;
	char line[64];
	int i;

	ck_assert_ptr_nonnull(rc);
	for (i = 0; i < 500; i++) {
		snprintf(line, sizeof(line), "C\t%d\tn%d\nC\t7\tseven.%d\n",
		    i % 50, i, i);
		ck_assert_int_eq(journal_recovery_parse(rc, line,
		    strlen(line)), 0);
	}
	r = journal_recovery_find(rc, 7);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->name, "seven.499");
	r = journal_recovery_find(rc, 49);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->name, "n499");
	journal_recovery_free(rc);
}
END_TEST

/* Torn and garbage lines are skipped; the good ones around them count. */
START_TEST(test_garbage_and_torn)
{
	static const char text[] =
	    "X\t1\tnot a record\n"
	    "C1\tname\n"
	    "C\t\tno index\n"
	    "C\t-4\tnegative\n"
	    "C\t12x\tjunk after the index\n"
	    "C\t5\n"
	    "C\t6\t\n"
	    "C\t99999999999999999999999\ttoo big\n"
	    "\n"
	    "R\n"
	    "C\t2\tgood.bin\n"
	    "R\t2\tu\tfailed\t404\t0\t0.000\t1\tgood.bin\tHTTP 404\n"
	    "C\t4\ttorn-na";
	struct journal_recovery *rc = parsed(0, text);
	const struct journal_rec *r;
	size_t i;

	for (i = 0; i < 10; i++) {
		r = journal_recovery_find(rc, i);
		if (i != 2) {
			ck_assert_msg(r == NULL, "index %zu recovered", i);
			continue;
		}
		ck_assert_ptr_nonnull(r);
		ck_assert_str_eq(r->name, "good.bin");
		ck_assert(!result_row_ok(r->row, strlen(r->row)));
	}
	journal_recovery_free(rc);
}
END_TEST

/* Records below the base are in J.result already: ignored. */
START_TEST(test_base)
{
	struct journal_recovery *rc;

	rc = parsed(10, "C\t9\tnine\nC\t10\tten\nR\t3\tu\tok\t200\n");
	ck_assert_ptr_null(journal_recovery_find(rc, 3));
	ck_assert_ptr_null(journal_recovery_find(rc, 9));
	ck_assert_ptr_nonnull(journal_recovery_find(rc, 10));
	journal_recovery_free(rc);
	journal_recovery_free(NULL);
}
END_TEST

/* Written through the spool, read back from the file as a restart does:
 * a line cut by a crash is not taken. */
START_TEST(test_spool_round_trip)
{
	char tmp[64], root[128], err[256], path[256], row[RESULT_ROW_MAX];
	struct spool sp;
	struct journal *jr;
	struct journal_recovery *rc;
	const struct journal_rec *r;
	int fd, n;

	testlib_tmpdir(tmp, sizeof(tmp), "check_journal");
	snprintf(root, sizeof(root), "%s/spool", tmp);
	ck_assert_msg(spool_open(&sp, root, err, sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/active/j", root);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT, 0640), 0);
	close(fd);

	ck_assert_ptr_nonnull(jr = journal_open(&sp, "j"));
	ck_assert_int_eq(journal_claim(jr, 0, "a.bin"), 0);
	ck_assert_int_eq(journal_claim(jr, 1, "d/b.bin"), 0);
	n = result_format_failed(row, sizeof(row), "http://h/b", "HTTP 404");
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(journal_result(jr, 1, row, (size_t)n), 0);
	ck_assert_int_eq(journal_flush(jr), 0);
	journal_close(jr);
	/* A crash in the middle of the next record. */
	snprintf(path, sizeof(path), "%s/active/j.journal", root);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_APPEND), 0);
	ck_assert_int_eq(write(fd, "C\t2\tc.b", 7), 7);
	close(fd);

	ck_assert_ptr_nonnull(rc = journal_recovery_new(0));
	ck_assert_int_eq(journal_recovery_load(rc, &sp, "j"), 0);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 0));
	ck_assert_str_eq(r->name, "a.bin");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 1));
	ck_assert_str_eq(r->name, "d/b.bin");
	ck_assert_str_eq(r->row, row);
	ck_assert_ptr_null(journal_recovery_find(rc, 2));
	journal_recovery_free(rc);

	/* No journal at all: nothing recovered, no error. */
	ck_assert_ptr_nonnull(rc = journal_recovery_new(0));
	ck_assert_int_eq(journal_recovery_load(rc, &sp, "none"), 0);
	ck_assert_ptr_null(journal_recovery_find(rc, 0));
	journal_recovery_free(rc);
	spool_close(&sp);
	testlib_rm_rf(tmp);
}
END_TEST

/* An M record written through the spool reads back as it was: the URL
 * in use and what the .part is a copy of; a validator with a control byte
 * is not written as such, the record then says nothing is known. */
START_TEST(test_mirror_round_trip)
{
	char tmp[64], root[128], err[256], path[256];
	struct fetch_meta m;
	struct spool sp;
	struct journal *jr;
	struct journal_recovery *rc;
	const struct journal_rec *r;
	int fd;

	testlib_tmpdir(tmp, sizeof(tmp), "check_journal");
	snprintf(root, sizeof(root), "%s/spool", tmp);
	ck_assert_msg(spool_open(&sp, root, err, sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/active/j", root);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT, 0640), 0);
	close(fd);

	ck_assert_ptr_nonnull(jr = journal_open(&sp, "j"));
	ck_assert_int_eq(journal_claim(jr, 0, "a.bin"), 0);
	fetch_meta_unknown(&m);
	ck_assert_int_eq(journal_mirror(jr, 0, 1, &m), 0);
	m.length = 123456789012LL;
	snprintf(m.etag, sizeof(m.etag), "\"v 1\"");
	snprintf(m.last_modified, sizeof(m.last_modified),
	    "Sun, 06 Dec 2026 10:00:00 GMT");
	ck_assert_int_eq(journal_mirror(jr, 0, 2, &m), 0);
	ck_assert_int_eq(journal_claim(jr, 1, "b.bin"), 0);
	snprintf(m.etag, sizeof(m.etag), "\"a\tb\"");
	ck_assert_int_eq(journal_mirror(jr, 1, 3, &m), 0);
	fetch_meta_unknown(&m);
	ck_assert_int_eq(journal_mirror(jr, 2, 0, &m), 0);
	ck_assert_int_eq(journal_flush(jr), 0);
	journal_close(jr);

	ck_assert_ptr_nonnull(rc = journal_recovery_new(0));
	ck_assert_int_eq(journal_recovery_load(rc, &sp, "j"), 0);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 0));
	ck_assert_str_eq(r->name, "a.bin");
	ck_assert(r->has_mirror);
	ck_assert_uint_eq(r->mirror, 2);
	ck_assert(r->expect.length == 123456789012LL);
	ck_assert_str_eq(r->expect.etag, "\"v 1\"");
	ck_assert_str_eq(r->expect.last_modified,
	    "Sun, 06 Dec 2026 10:00:00 GMT");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 1));
	ck_assert(r->has_mirror);
	ck_assert_uint_eq(r->mirror, 3);
	ck_assert(r->expect.length == -1);
	ck_assert_str_eq(r->expect.etag, "");
	ck_assert_str_eq(r->expect.last_modified, "");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 2));
	ck_assert(r->has_mirror);
	ck_assert_uint_eq(r->mirror, 0);
	ck_assert_ptr_null(r->name);
	journal_recovery_free(rc);
	spool_close(&sp);
	testlib_rm_rf(tmp);
}
END_TEST

/* The last M record of an index wins; a claim after it (a new file)
 * keeps the URL in use but makes the copy unknown; malformed M records
 * are skipped; a claim alone has no M. */
START_TEST(test_mirror_merge)
{
	struct journal_recovery *rc;
	const struct journal_rec *r;

	rc = parsed(0,
	    "C\t0\ta\n"
	    "M\t0\t1\t10\t\"x\"\t\n"
	    "M\t0\t2\t20\t\"y\"\tdate\n"
	    "M\t1\t1\t10\t\"x\"\t\n"
	    "C\t1\tb.1\n"
	    "C\t2\tc\n"
	    "M\t2\tx\t10\t\t\n"
	    "M\t2\t1\t-2\t\t\n"
	    "M\t2\t1\t10\t\t\tmore\n"
	    "M\t2\t1\t\t\t\n"
	    "M\t2\t99\t10\t\t\n"
	    "M\t2\t1\t10\t\n"
	    "M\t3\t0\t5\t\t\n");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 0));
	ck_assert_str_eq(r->name, "a");
	ck_assert_uint_eq(r->mirror, 2);
	ck_assert(r->expect.length == 20);
	ck_assert_str_eq(r->expect.etag, "\"y\"");
	ck_assert_str_eq(r->expect.last_modified, "date");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 1));
	ck_assert(r->has_mirror);
	ck_assert_uint_eq(r->mirror, 1);
	ck_assert(r->expect.length == -1);
	ck_assert_str_eq(r->expect.etag, "");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 2));
	ck_assert(!r->has_mirror);
	ck_assert(r->expect.length == -1);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 3));
	ck_assert(r->has_mirror);
	ck_assert_uint_eq(r->mirror, 0);
	ck_assert(r->expect.length == 5);
	journal_recovery_free(rc);
}
END_TEST

/* A split: every range's start, the length and the validators back; a
 * later record of the index wins ("-": one stream again); malformed ones
 * are skipped. */
START_TEST(test_split_records)
{
	struct journal_recovery *rc;
	const struct journal_rec *r;

	rc = parsed(0,
	    "C\t0\ta.iso\n"
	    "S\t0\t1000\t0,250,500,750\t\"e1\"\tSun, 06 Dec 2026 10:00:00 "
	    "GMT\n"
	    "S\t1\t10\t0,5\t\t\n"
	    "S\t1\t-\n"
	    "S\t2\t10\t0,5\t\t\n"
	    "S\t2\t10\t0,5,5\t\t\n"         /* not increasing */
	    "S\t2\t10\t1,5\t\t\n"           /* not from 0 */
	    "S\t2\t10\t0,10\t\t\n"          /* a start at the end */
	    "S\t2\t10\t0,5\t\n"              /* a field short */
	    "S\t2\tx\t0\t\t\n"
	    "S\t2\t10\t0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\t\t\n");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 0));
	ck_assert_str_eq(r->name, "a.iso");
	ck_assert_ptr_nonnull(r->split);
	ck_assert_uint_eq(r->split->n, 4);
	ck_assert(r->split->meta.length == 1000 && r->split->meta.ranges);
	ck_assert_uint_eq(r->split->starts[0], 0);
	ck_assert_uint_eq(r->split->starts[3], 750);
	ck_assert_str_eq(r->split->meta.etag, "\"e1\"");
	ck_assert_str_eq(r->split->meta.last_modified,
	    "Sun, 06 Dec 2026 10:00:00 GMT");
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 1));
	ck_assert_ptr_nonnull(r->split);
	ck_assert_uint_eq(r->split->n, 0);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 2));
	ck_assert_uint_eq(r->split->n, 2);
	ck_assert_uint_eq(r->split->starts[1], 5);
	ck_assert_str_eq(r->split->meta.etag, "");
	journal_recovery_free(rc);
}
END_TEST

/* journal_split() writes what the parser takes back; a validator with a
 * tab is left out. */
START_TEST(test_split_round_trip)
{
	char tmp[64], root[128], err[256], path[256];
	struct journal_split sp = { 0 }, none = { 0 };
	struct journal_recovery *rc;
	const struct journal_rec *r;
	struct journal *jr;
	struct spool s;
	int fd;

	testlib_tmpdir(tmp, sizeof(tmp), "check_journal");
	snprintf(root, sizeof(root), "%s/spool", tmp);
	ck_assert_msg(spool_open(&s, root, err, sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/active/j", root);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT, 0640), 0);
	close(fd);
	fetch_meta_unknown(&sp.meta);
	sp.meta.length = 209715200;
	sp.n = fetch_seg_split(209715200, 4, 1, sp.starts);
	strcpy(sp.meta.etag, "\"x\ty\"");
	strcpy(sp.meta.last_modified, "Sun, 06 Dec 2026 10:00:00 GMT");
	ck_assert_ptr_nonnull(jr = journal_open(&s, "j"));
	ck_assert_int_eq(journal_split(jr, 7, &sp), 0);
	ck_assert_int_eq(journal_split(jr, 8, &sp), 0);
	ck_assert_int_eq(journal_split(jr, 8, &none), 0);
	ck_assert_int_eq(journal_flush(jr), 0);
	journal_close(jr);
	ck_assert_ptr_nonnull(rc = journal_recovery_new(0));
	ck_assert_int_eq(journal_recovery_load(rc, &s, "j"), 0);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 7));
	ck_assert_uint_eq(r->split->n, 4);
	ck_assert_mem_eq(r->split->starts, sp.starts, sizeof(sp.starts));
	ck_assert(r->split->meta.length == 209715200);
	ck_assert_str_eq(r->split->meta.etag, "");
	ck_assert_str_eq(r->split->meta.last_modified,
	    sp.meta.last_modified);
	ck_assert_ptr_null(r->name);
	ck_assert_ptr_nonnull(r = journal_recovery_find(rc, 8));
	ck_assert_uint_eq(r->split->n, 0);
	journal_recovery_free(rc);
	spool_close(&s);
	testlib_rm_rf(tmp);
}
END_TEST

static Suite *
journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("records");

	tcase_add_test(tc, test_merge_claim_and_result);
	tcase_add_test(tc, test_last_claim_wins);
	tcase_add_test(tc, test_garbage_and_torn);
	tcase_add_test(tc, test_base);
	tcase_add_test(tc, test_spool_round_trip);
	tcase_add_test(tc, test_mirror_round_trip);
	tcase_add_test(tc, test_mirror_merge);
	tcase_add_test(tc, test_split_records);
	tcase_add_test(tc, test_split_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(journal_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
