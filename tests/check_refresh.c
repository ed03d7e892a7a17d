/*
 * check_refresh.c: the validators kept beside a refreshed file: parsing a
 * sidecar, and saving and loading one in a real directory (no symlink
 * followed, the old one gone when a response has no validators, the
 * file's mtime from Last-Modified).
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "refresh.h"
#include "testlib.h"

static char dir[PATH_MAX];
static int dfd = -1;

static void
setup(void)
{
	testlib_tmpdir(dir, sizeof(dir), "refresh");
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
}

static void
teardown(void)
{
	close(dfd);
	testlib_rm_rf(dir);
}

static void
put(const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
}

static void
meta(struct fetch_meta *m, const char *etag, const char *date)
{
	memset(m, 0, sizeof(*m));
	m->length = -1;
	snprintf(m->etag, sizeof(m->etag), "%s", etag);
	snprintf(m->last_modified, sizeof(m->last_modified), "%s", date);
}

START_TEST(test_parse)
{
	static const char text[] = "etag W/\"x y\"\nbogus 1\n"
	    "last-modified Sun, 06 Dec 2026 08:00:00 GMT";
	struct fetch_meta m;

	ck_assert_int_eq(refresh_parse(text, strlen(text), &m), 1);
	ck_assert_str_eq(m.etag, "W/\"x y\"");
	ck_assert_str_eq(m.last_modified, "Sun, 06 Dec 2026 08:00:00 GMT");
	ck_assert_int_eq(m.length, -1);
	ck_assert_int_eq(refresh_parse("etag \n", 6, &m), 0);
	/* A control byte in a value: not a validator to send. */
	ck_assert_int_eq(refresh_parse("etag \"a\rb\"\n", 11, &m), 0);
	ck_assert_int_eq(refresh_parse("", 0, &m), 0);
}
END_TEST

START_TEST(test_save_and_load)
{
	struct fetch_meta m, got;
	struct stat st;

	put("a.bin", "data");
	meta(&m, "\"v1\"", "Tue, 14 Nov 2023 22:13:20 GMT");
	ck_assert_int_eq(refresh_save(dfd, "a.bin", &m), 0);
	ck_assert_int_eq(refresh_load(dfd, "a.bin", &got), 1);
	ck_assert_str_eq(got.etag, "\"v1\"");
	ck_assert_str_eq(got.last_modified, m.last_modified);
	ck_assert_int_eq(fstatat(dfd, "a.bin", &st, 0), 0);
	ck_assert_int_eq((long)st.st_mtime, 1700000000L);
	ck_assert_int_eq(fstatat(dfd, "a.bin" JOB_SIDECAR FETCH_PART, &st, 0),
	    -1);

	/* A response without validators: the old ones describe another
	 * file, so they go. */
	meta(&m, "", "");
	ck_assert_int_eq(refresh_save(dfd, "a.bin", &m), 0);
	ck_assert_int_eq(fstatat(dfd, "a.bin" JOB_SIDECAR, &st, 0), -1);
	ck_assert_int_eq(refresh_load(dfd, "a.bin", &got), 0);
}
END_TEST

START_TEST(test_load_refuses)
{
	struct fetch_meta m;

	/* No file: nothing to compare with, whatever the sidecar says. */
	put("gone.bin" JOB_SIDECAR, "etag \"x\"\n");
	ck_assert_int_eq(refresh_load(dfd, "gone.bin", &m), 0);
	/* A sidecar that is a symlink is not followed. */
	put("b.bin", "data");
	put("elsewhere", "etag \"x\"\n");
	ck_assert_int_eq(symlinkat("elsewhere", dfd, "b.bin" JOB_SIDECAR), 0);
	ck_assert_int_eq(refresh_load(dfd, "b.bin", &m), 0);
	/* Nor is the file itself anything but a regular file. */
	ck_assert_int_eq(mkdirat(dfd, "c.bin", 0755), 0);
	put("c.bin" JOB_SIDECAR, "etag \"x\"\n");
	ck_assert_int_eq(refresh_load(dfd, "c.bin", &m), 0);
}
END_TEST

static Suite *
refresh_suite(void)
{
	Suite *s = suite_create("refresh");
	TCase *tc = tcase_create("sidecar");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_save_and_load);
	tcase_add_test(tc, test_load_refuses);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(refresh_suite());
}
