/*
 * check_names.c: unit tests for names.c, the output-name reservation of a
 * job: the candidate sequence, the set of live names (with growth), the
 * Bloom filter of a directory this run made, the resume rules and the
 * refusals (symlinks, non-regular .part files). Each test works in a fresh
 * scratch directory; nothing is fetched.
 */
#include <sys/stat.h>

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "names.h"
#include "testlib.h"

#define MANY 700        /* past the set's first table size (256) twice */

static char tmp[64], jdir[128];

static void
setup(void)
{
	testlib_tmpdir(tmp, sizeof(tmp), "check_names");
	snprintf(jdir, sizeof(jdir), "%s/J", tmp);
}

static void
teardown(void)
{
	testlib_rm_rf(tmp);
}

static struct transfer *
want(const char *name)
{
	struct transfer *t = fetch_transfer_new("http://h/x", "h", jdir, name);

	ck_assert_ptr_nonnull(t);
	return t;
}

static void
put(const char *rel, const char *data)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", jdir, rel);
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0640), 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

static void
drop(struct names *nm, struct transfer *t)
{
	names_release(nm, t);
	fetch_transfer_free(t);
}

/* Reserve name with resume as given, then release it: names_reserve() must
 * return rv and, when 0, give the name got. */
static void
expect(struct names *nm, const char *name, int resume, int rv,
    const char *got)
{
	struct transfer *t = want(name);

	ck_assert_int_eq(names_reserve(nm, t, resume), rv);
	if (rv == 0)
		ck_assert_str_eq(t->name, got);
	drop(nm, t);
}

/* Names held by live transfers are skipped, released ones come back, and
 * the set keeps working as it grows. */
START_TEST(test_set_growth)
{
	struct names *nm = names_new(jdir, MANY);
	struct transfer *a[MANY], *b[MANY];
	char name[64], alt[64];
	int i;

	ck_assert_ptr_nonnull(nm);
	for (i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "f%d.bin", i);
		a[i] = want(name);
		ck_assert_int_eq(names_reserve(nm, a[i], 0), 0);
		ck_assert_str_eq(a[i]->name, name);
	}
	for (i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "f%d.bin", i);
		snprintf(alt, sizeof(alt), "f%d.1.bin", i);
		b[i] = want(name);
		ck_assert_int_eq(names_reserve(nm, b[i], 0), 0);
		ck_assert_str_eq(b[i]->name, alt);
	}
	/* Half of the first ones end: their names are free again. */
	for (i = 0; i < MANY; i += 2)
		drop(nm, a[i]);
	for (i = 0; i < MANY; i++) {
		snprintf(name, sizeof(name), "f%d.bin", i);
		snprintf(alt, sizeof(alt), "f%d.2.bin", i);
		if (i % 2 == 0) {
			a[i] = want(name);
			ck_assert_int_eq(names_reserve(nm, a[i], 0), 0);
			ck_assert_str_eq(a[i]->name, name);
		} else {
			struct transfer *c = want(name);

			ck_assert_int_eq(names_reserve(nm, c, 0), 0);
			ck_assert_str_eq(c->name, alt);
			drop(nm, c);
		}
	}
	for (i = 0; i < MANY; i++) {
		drop(nm, a[i]);
		drop(nm, b[i]);
	}
	names_free(nm);
	names_free(NULL);
}
END_TEST

/* The filter never says "absent" for a name it took, nor for any of the
 * name's directories; for names it never saw it mostly does. */
START_TEST(test_bloom_prefixes)
{
	struct names *nm = names_new(jdir, 2000);
	struct transfer *t;
	char name[128], pre[128], *p;
	int i, absent = 0;

	ck_assert_ptr_nonnull(nm);
	/* Before the directory is opened it knows nothing. */
	ck_assert_int_eq(names_absent(nm, "a"), 0);
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "d%d/e%d/f%d.bin", i % 7, i % 13,
		    i);
		t = want(name);
		ck_assert_int_eq(names_reserve(nm, t, 0), 0);
		drop(nm, t);
	}
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "d%d/e%d/f%d.bin", i % 7, i % 13,
		    i);
		ck_assert_msg(!names_absent(nm, name), "%s: absent", name);
		snprintf(pre, sizeof(pre), "%s", name);
		while ((p = strrchr(pre, '/')) != NULL) {
			*p = '\0';
			ck_assert_msg(!names_absent(nm, pre), "%s: absent",
			    pre);
		}
	}
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "never/%d.bin", i);
		absent += names_absent(nm, name);
	}
	ck_assert_int_gt(absent, 950);
	names_free(nm);
}
END_TEST

/*
 * In a directory this run made, a name the filter never saw takes no lstat
 * (only the job writes there); in one that was already there, the disk
 * always decides.
 */
START_TEST(test_bloom_only_for_new_dir)
{
	struct names *nm = names_new(jdir, 10);
	struct transfer *t;

	t = want("first.bin");
	ck_assert_int_eq(names_reserve(nm, t, 0), 0);
	drop(nm, t);
	put("planted.bin", "x");
	ck_assert_int_eq(names_absent(nm, "planted.bin"), 1);
	t = want("planted.bin");
	ck_assert_int_eq(names_reserve(nm, t, 0), 0);
	ck_assert_str_eq(t->name, "planted.bin");
	drop(nm, t);
	names_free(nm);

	nm = names_new(jdir, 10);       /* J exists now */
	t = want("planted.bin");
	ck_assert_int_eq(names_absent(nm, "planted.bin"), 0);
	ck_assert_int_eq(names_reserve(nm, t, 0), 0);
	ck_assert_str_eq(t->name, "planted.1.bin");
	ck_assert_int_eq(names_absent(nm, "other.bin"), 0);
	drop(nm, t);
	names_free(nm);
}
END_TEST

/* The resume rules for a name an earlier run reserved. */
START_TEST(test_resume)
{
	struct names *nm;
	struct transfer *t;
	char p[512];

	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	nm = names_new(jdir, 10);
	put("done.bin", "12345");
	put("half.bin.part", "abc");
	snprintf(p, sizeof(p), "%s/dir", jdir);
	ck_assert_int_eq(mkdir(p, 0750), 0);

	/* name.part gone, name a regular file: finished. */
	t = want("done.bin");
	ck_assert_int_eq(names_reserve(nm, t, 1), 1);
	ck_assert_int_eq(t->outcome, FETCH_OK);
	ck_assert_uint_eq(t->size, 5);
	drop(nm, t);
	/* Its .part is the transfer's own. */
	expect(nm, "half.bin", 1, 0, "half.bin");
	/* Without resume both belong to someone else. */
	expect(nm, "done.bin", 0, 0, "done.1.bin");
	expect(nm, "half.bin", 0, 0, "half.1.bin");
	/* A directory where the file was: not finished, the next name. */
	expect(nm, "dir", 1, 0, "dir.1");
	names_free(nm);
}
END_TEST

/* A symlink or a FIFO at a .part, or a symlinked directory on the way: no
 * name, an error saying why, nothing made through it. */
START_TEST(test_refusals)
{
	struct names *nm;
	struct transfer *t;
	char p[512], q[512];

	ck_assert_int_eq(mkdir(jdir, 0750), 0);
	nm = names_new(jdir, 10);
	snprintf(p, sizeof(p), "%s/l.bin.part", jdir);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/f.bin.part", jdir);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/up", jdir);
	ck_assert_int_eq(symlink(tmp, p), 0);

	t = want("l.bin");
	ck_assert_int_eq(names_reserve(nm, t, 0), -1);
	ck_assert_int_eq(t->errkind, FERR_WRITE);
	ck_assert_ptr_nonnull(strstr(t->error, "refusing to follow a symlink"));
	drop(nm, t);
	t = want("f.bin");
	ck_assert_int_eq(names_reserve(nm, t, 1), -1);
	ck_assert_ptr_nonnull(strstr(t->error, "not a regular file"));
	drop(nm, t);
	t = want("up/x/y.bin");
	ck_assert_int_eq(names_reserve(nm, t, 0), -1);
	ck_assert_ptr_nonnull(strstr(t->error, "symlink"));
	drop(nm, t);
	snprintf(q, sizeof(q), "%s/x", tmp);
	ck_assert_int_ne(access(q, F_OK), 0);
	/* The job itself goes on: a good name is still given. */
	t = want("ok.bin");
	ck_assert_int_eq(names_reserve(nm, t, 0), 0);
	ck_assert_int_eq(t->dirfd, names_dirfd(nm));
	drop(nm, t);
	names_free(nm);
}
END_TEST

static Suite *
names_suite(void)
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("reserve");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_set_growth);
	tcase_add_test(tc, test_bloom_prefixes);
	tcase_add_test(tc, test_bloom_only_for_new_dir);
	tcase_add_test(tc, test_resume);
	tcase_add_test(tc, test_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(names_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
