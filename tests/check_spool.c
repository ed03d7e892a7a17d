/*
 * check_spool.c: unit tests for spool.c, the crash-safe spool tree.
 *
 * Each test gets a fresh spool under a mkdtemp() directory. Crashes are
 * simulated by leaving on disk what a killed daemon would have left (a
 * partial last line, the first of two renames done by hand); entries that
 * must never be opened are FIFOs, so opening one would hang the test.
 */
#include <linux/capability.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "testlib.h"

#define HEADER \
	"#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror\n"

static char tmpdir[256];
static char root[300];
static struct spool sp;

struct names {
	size_t n;
	char v[64][SPOOL_NAME_MAX + 16];
};

static void
names_cb(const char *name, void *arg)
{
	struct names *nm = arg;

	ck_assert_uint_lt(nm->n, 64);
	snprintf(nm->v[nm->n++], sizeof(nm->v[0]), "%s", name);
}

static int
names_has(const struct names *nm, const char *name)
{
	for (size_t i = 0; i < nm->n; i++)
		if (strcmp(nm->v[i], name) == 0)
			return 1;
	return 0;
}

static const char *
path(const char *rel)
{
	static char buf[4][1024];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", root, rel);
	return buf[i];
}

static void
put(const char *p, const char *content)
{
	FILE *f = fopen(p, "w");

	ck_assert_msg(f != NULL, "fopen %s: %s", p, strerror(errno));
	ck_assert_int_eq(fputs(content, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* Whole file as a string, or NULL when it does not exist. */
static char *
get(const char *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f, *m;
	int c;

	if ((f = fopen(p, "r")) == NULL) {
		ck_assert_int_eq(errno, ENOENT);
		return NULL;
	}
	m = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(m);
	while ((c = getc(f)) != EOF)
		putc(c, m);
	fclose(f);
	fclose(m);
	return buf;
}

static void
assert_content(const char *p, const char *want)
{
	char *got = get(p);

	ck_assert_msg(got != NULL, "%s missing", p);
	ck_assert_str_eq(got, want);
	free(got);
}

static int
exists(const char *p)
{
	struct stat st;

	if (lstat(p, &st) == 0)
		return 1;
	ck_assert_int_eq(errno, ENOENT);
	return 0;
}

static mode_t
ltype(const char *p)
{
	struct stat st;

	ck_assert_msg(lstat(p, &st) == 0, "lstat %s: %s", p, strerror(errno));
	return st.st_mode & S_IFMT;
}

static mode_t
perms(const char *p)
{
	struct stat st;

	ck_assert_msg(lstat(p, &st) == 0, "lstat %s: %s", p, strerror(errno));
	return st.st_mode & 07777;
}

static void
setup(void)
{
	char err[256];

	testlib_tmpdir(tmpdir, sizeof(tmpdir), "check_spool");
	snprintf(root, sizeof(root), "%s/spool", tmpdir);
	ck_assert_msg(spool_open(&sp, root, err, sizeof(err)) == 0, "%s", err);
}

static void
teardown(void)
{
	spool_close(&sp);
	testlib_rm_rf(tmpdir);
}

static void
reject_reason(const char *failed_name, const char *reason)
{
	char want[512], rel[300];

	snprintf(want, sizeof(want), "%s-\tfailed\t0\t0\t0.000\t0\t-\t%s\n",
	    HEADER, reason);
	snprintf(rel, sizeof(rel), "failed/%s.result", failed_name);
	assert_content(path(rel), want);
}

START_TEST(test_open_tree)
{
	static const char *const sub[] = { "tmp", "new", "active", "done",
	    "failed" };
	static const mode_t want[] = { 0770, 0770, 0750, 0750, 0750 };
	char err[256], r2[300], p[400];
	struct spool sp2;
	mode_t old;

	/* fixture opened with the test's umask; redo under a strict one */
	old = umask(077);
	snprintf(r2, sizeof(r2), "%s/a/b/spool2/", tmpdir);
	ck_assert_msg(spool_open(&sp2, r2, err, sizeof(err)) == 0, "%s", err);
	umask(old);
	ck_assert_int_eq(sp2.inotify_fd, -1);
	snprintf(p, sizeof(p), "%s/a/b/spool2", tmpdir);
	ck_assert_str_eq(sp2.root, p);
	ck_assert_uint_eq(perms(p), 0750);
	for (size_t i = 0; i < 5; i++) {
		snprintf(p, sizeof(p), "%s/a/b/spool2/%s", tmpdir, sub[i]);
		ck_assert_uint_eq(ltype(p), S_IFDIR);
		ck_assert_msg(perms(p) == want[i], "%s mode %o", sub[i],
		    (unsigned)perms(p));
	}
	ck_assert_int_ge(sp2.rootfd, 0);
	ck_assert_int_ge(sp2.newfd, 0);
	ck_assert_int_eq(fcntl(sp2.newfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	spool_close(&sp2);
	ck_assert_int_eq(sp2.newfd, -1);
	ck_assert_ptr_null(sp2.root);
	spool_close(&sp2);      /* twice is harmless */

	/* existing directories keep their modes */
	snprintf(p, sizeof(p), "%s/a/b/spool2/new", tmpdir);
	ck_assert_int_eq(chmod(p, 0700), 0);
	ck_assert_msg(spool_open(&sp2, r2, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(perms(p), 0700);
	spool_close(&sp2);

	/* a subdirectory replaced by a symlink is refused */
	snprintf(p, sizeof(p), "%s/a/b/spool2/done", tmpdir);
	ck_assert_int_eq(rmdir(p), 0);
	ck_assert_int_eq(symlink(tmpdir, p), 0);
	ck_assert_int_eq(spool_open(&sp2, r2, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "done"));
	ck_assert_int_eq(sp2.rootfd, -1);
	ck_assert_ptr_null(sp2.root);
}
END_TEST

START_TEST(test_name_valid)
{
	char longname[SPOOL_NAME_MAX + 2];

	ck_assert(spool_name_valid("job"));
	ck_assert(spool_name_valid("a.b_c+d@e=f,g-h.1"));
	ck_assert(spool_name_valid("urls.txt"));
	ck_assert(!spool_name_valid(""));
	ck_assert(!spool_name_valid(".hidden"));
	ck_assert(!spool_name_valid("a b"));
	ck_assert(!spool_name_valid("a\nb"));
	ck_assert(!spool_name_valid("a/b"));
	ck_assert(!spool_name_valid("a\xc3\xa9"));
	ck_assert(!spool_name_valid("x.result"));
	ck_assert(!spool_name_valid("x.journal"));
	ck_assert(!spool_name_valid("x.tmp"));
	ck_assert(spool_name_valid("x.results"));
	memset(longname, 'a', SPOOL_NAME_MAX);
	longname[SPOOL_NAME_MAX] = '\0';
	ck_assert(spool_name_valid(longname));
	longname[SPOOL_NAME_MAX] = 'a';
	longname[SPOOL_NAME_MAX + 1] = '\0';
	ck_assert(!spool_name_valid(longname));
}
END_TEST

START_TEST(test_claim_regular)
{
	char claimed[SPOOL_NAME_MAX + 16];

	put(path("new/job1"), "https://example.org/a\n");
	ck_assert_int_eq(spool_claim(&sp, "job1", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "job1");
	ck_assert(!exists(path("new/job1")));
	assert_content(path("active/job1"), "https://example.org/a\n");

	/* the same entry a second time: someone already took it */
	ck_assert_int_eq(spool_claim(&sp, "job1", claimed, sizeof(claimed)),
	    SPOOL_GONE);
	ck_assert_int_eq(spool_claim(&sp, "nosuch", claimed, sizeof(claimed)),
	    SPOOL_GONE);
	assert_content(path("active/job1"), "https://example.org/a\n");
}
END_TEST

START_TEST(test_claim_suffix)
{
	char claimed[SPOOL_NAME_MAX + 16];

	/* taken in done/: the claim gets ".1"; nothing is replaced */
	put(path("done/job"), "old\n");
	put(path("new/job"), "new\n");
	ck_assert_int_eq(spool_claim(&sp, "job", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "job.1");
	assert_content(path("active/job.1"), "new\n");
	assert_content(path("done/job"), "old\n");
	ck_assert(!exists(path("active/job")));

	/* taken in active/ and failed/ as well: ".2" */
	put(path("new/job"), "third\n");
	put(path("failed/job.2.result"), "r\n");
	ck_assert_int_eq(spool_claim(&sp, "job", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "job.3");
	assert_content(path("active/job.1"), "new\n");
	assert_content(path("active/job.3"), "third\n");

	/* a result left in done/ holds the name too */
	put(path("done/other.result"), "r\n");
	put(path("new/other"), "x\n");
	ck_assert_int_eq(spool_claim(&sp, "other", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "other.1");

	/* a stale journal in active/ must not be inherited */
	put(path("active/j.journal"), "stale\n");
	put(path("new/j"), "x\n");
	ck_assert_int_eq(spool_claim(&sp, "j", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "j.1");
	assert_content(path("active/j.journal"), "stale\n");
}
END_TEST

START_TEST(test_claim_symlink)
{
	char claimed[SPOOL_NAME_MAX + 16], target[300], fifo[300], buf[300];
	ssize_t n;

	/* to a FIFO: opening the link would block the test forever */
	snprintf(fifo, sizeof(fifo), "%s/outside.fifo", tmpdir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(symlink(fifo, path("new/lnk")), 0);
	ck_assert_int_eq(spool_claim(&sp, "lnk", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert_str_eq(claimed, "lnk");
	ck_assert(!exists(path("new/lnk")));
	ck_assert(!exists(path("active/lnk")));
	ck_assert_uint_eq(ltype(path("failed/lnk")), S_IFLNK);
	n = readlink(path("failed/lnk"), buf, sizeof(buf) - 1);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, fifo);
	ck_assert_uint_eq(ltype(fifo), S_IFIFO);
	reject_reason("lnk", "not a regular file (symlink)");

	/* to a regular file: the target is left as it was */
	snprintf(target, sizeof(target), "%s/outside.txt", tmpdir);
	put(target, "secret\n");
	ck_assert_int_eq(symlink(target, path("new/lnk2")), 0);
	ck_assert_int_eq(spool_claim(&sp, "lnk2", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert_uint_eq(ltype(path("failed/lnk2")), S_IFLNK);
	assert_content(target, "secret\n");
	reject_reason("lnk2", "not a regular file (symlink)");

	/* dangling */
	ck_assert_int_eq(symlink("/nonexistent/x", path("new/lnk3")), 0);
	ck_assert_int_eq(spool_claim(&sp, "lnk3", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert_uint_eq(ltype(path("failed/lnk3")), S_IFLNK);
}
END_TEST

START_TEST(test_claim_fifo)
{
	char claimed[SPOOL_NAME_MAX + 16];

	ck_assert_int_eq(mkfifo(path("new/pipe"), 0600), 0);
	ck_assert_int_eq(spool_claim(&sp, "pipe", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert(!exists(path("new/pipe")));
	ck_assert_uint_eq(ltype(path("failed/pipe")), S_IFIFO);
	reject_reason("pipe", "not a regular file (fifo)");
	/* no temporary left behind */
	ck_assert(!exists(path("failed/.pipe.result.tmp")));
}
END_TEST

START_TEST(test_claim_dir)
{
	char claimed[SPOOL_NAME_MAX + 16];

	ck_assert_int_eq(mkdir(path("new/d"), 0755), 0);
	put(path("new/d/inner"), "x\n");
	ck_assert_int_eq(spool_claim(&sp, "d", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert(!exists(path("new/d")));
	ck_assert_uint_eq(ltype(path("failed/d")), S_IFDIR);
	assert_content(path("failed/d/inner"), "x\n");
	reject_reason("d", "not a regular file (directory)");

	/* a second rejection of the same name takes the next suffix */
	ck_assert_int_eq(mkdir(path("new/d"), 0755), 0);
	ck_assert_int_eq(spool_claim(&sp, "d", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	ck_assert_str_eq(claimed, "d.1");
	ck_assert_uint_eq(ltype(path("failed/d.1")), S_IFDIR);
	assert_content(path("failed/d/inner"), "x\n");
	reject_reason("d.1", "not a regular file (directory)");
}
END_TEST

START_TEST(test_claim_badname)
{
	char claimed[SPOOL_NAME_MAX + 16], longname[200], rel[300];

	put(path("new/bad name"), "a\n");
	ck_assert_int_eq(spool_claim(&sp, "bad name", claimed,
	    sizeof(claimed)), SPOOL_REJECTED);
	ck_assert_str_eq(claimed, "bad_name");
	ck_assert(!exists(path("new/bad name")));
	assert_content(path("failed/bad_name"), "a\n");
	reject_reason("bad_name", "job name not allowed");

	put(path("new/bad\nname"), "b\n");
	ck_assert_int_eq(spool_claim(&sp, "bad\nname", claimed,
	    sizeof(claimed)), SPOOL_REJECTED);
	ck_assert_str_eq(claimed, "bad_name.1");
	assert_content(path("failed/bad_name.1"), "b\n");
	assert_content(path("failed/bad_name"), "a\n");
	reject_reason("bad_name.1", "job name not allowed");

	/* a reserved suffix cannot pass for a result in failed/ */
	put(path("new/x.result"), "c\n");
	ck_assert_int_eq(spool_claim(&sp, "x.result", claimed,
	    sizeof(claimed)), SPOOL_REJECTED);
	ck_assert_str_eq(claimed, "x_result");
	assert_content(path("failed/x_result"), "c\n");
	ck_assert(!exists(path("failed/x.result")));

	/* too long: cut to SPOOL_NAME_MAX in failed/ */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	snprintf(rel, sizeof(rel), "new/%s", longname);
	put(path(rel), "d\n");
	ck_assert_int_eq(spool_claim(&sp, longname, claimed,
	    sizeof(claimed)), SPOOL_REJECTED);
	ck_assert_uint_eq(strlen(claimed), SPOOL_NAME_MAX);
	ck_assert(strspn(claimed, "a") == SPOOL_NAME_MAX);
	snprintf(rel, sizeof(rel), "failed/%s", claimed);
	assert_content(path(rel), "d\n");
	reject_reason(claimed, "job name not allowed");
}
END_TEST

START_TEST(test_claim_dotfile)
{
	char claimed[SPOOL_NAME_MAX + 16];

	put(path("new/.partial"), "a\n");
	ck_assert_int_eq(spool_claim(&sp, ".partial", claimed,
	    sizeof(claimed)), SPOOL_GONE);
	assert_content(path("new/.partial"), "a\n");
	ck_assert(!exists(path("failed/.partial")));
	ck_assert(!exists(path("failed/partial")));
}
END_TEST

static void
set_mtime(const char *p, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Raise or drop CAP_LEASE in the effective set. 0 or -1. */
static int
cap_lease(int on)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct c[2];

	if (syscall(SYS_capget, &h, c) == -1)
		return -1;
	if (on)
		c[0].effective |= 1U << CAP_LEASE;
	else
		c[0].effective &= ~(1U << CAP_LEASE);
	return syscall(SYS_capset, &h, c) == -1 ? -1 : 0;
}

START_TEST(test_scan)
{
	struct names nm = { 0 };
	time_t now = time(NULL);
	int fd;

	put(path("new/b"), "x\n");
	put(path("new/a"), "x\n");
	put(path("new/c"), "x\n");
	put(path("new/.hidden"), "x\n");
	ck_assert_int_eq(mkfifo(path("new/d"), 0600), 0);
	ck_assert_int_eq(spool_scan_new(&sp, 0, names_cb, &nm), 4);
	ck_assert_uint_eq(nm.n, 4);
	ck_assert_str_eq(nm.v[0], "a");
	ck_assert_str_eq(nm.v[1], "b");
	ck_assert_str_eq(nm.v[2], "c");
	ck_assert_str_eq(nm.v[3], "d");

	/* a file no process writes is passed at once, however recent */
	set_mtime(path("new/a"), now - 100);
	set_mtime(path("new/b"), now - 5);
	set_mtime(path("new/d"), now);
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(spool_scan_new(&sp, 30, names_cb, &nm), 4);

	/* one open for writing waits, however old, until it is closed */
	fd = open(path("new/a"), O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "y\n", 2), 2);
	set_mtime(path("new/a"), now - 100);
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(spool_scan_new(&sp, 0, names_cb, &nm), 3);
	ck_assert(!names_has(&nm, "a"));
	ck_assert_int_eq(close(fd), 0);
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(spool_scan_new(&sp, 30, names_cb, &nm), 4);

	/*
	 * Where a lease cannot be had (another user's file, no CAP_LEASE),
	 * min_age decides: recent regular files wait, a FIFO is not held
	 * back. Only root can give files away to try it.
	 */
	if (geteuid() == 0 && cap_lease(0) == 0) {
		ck_assert_int_eq(chown(path("new/a"), 65534, 65534), 0);
		ck_assert_int_eq(chown(path("new/b"), 65534, 65534), 0);
		ck_assert_int_eq(chown(path("new/c"), 65534, 65534), 0);
		memset(&nm, 0, sizeof(nm));
		ck_assert_int_eq(spool_scan_new(&sp, 30, names_cb, &nm), 2);
		ck_assert_uint_eq(nm.n, 2);
		ck_assert_str_eq(nm.v[0], "a");
		ck_assert_str_eq(nm.v[1], "d");
		/* scanning again starts from the beginning */
		memset(&nm, 0, sizeof(nm));
		ck_assert_int_eq(spool_scan_new(&sp, 30, names_cb, &nm), 2);
		ck_assert_int_eq(cap_lease(1), 0);
	}

	/* an empty new/ */
	unlink(path("new/a"));
	unlink(path("new/b"));
	unlink(path("new/c"));
	unlink(path("new/d"));
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(spool_scan_new(&sp, 0, names_cb, &nm), 0);
}
END_TEST

/* Read inotify events until name is reported or 5 s pass. */
static int
wait_event(const char *name, struct names *nm)
{
	struct timespec start, now;
	struct pollfd pfd;
	int overflow;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (names_has(nm, name))
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 5)
			return 0;
		pfd.fd = sp.inotify_fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 200) == 1) {
			ck_assert_int_eq(spool_watch_read(&sp, names_cb, nm,
			    &overflow), 0);
			ck_assert_int_eq(overflow, 0);
		}
	}
}

START_TEST(test_watch)
{
	struct names nm = { 0 };
	int fd, overflow = 1;

	fd = spool_watch(&sp);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sp.inotify_fd, fd);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);

	/* nothing pending: returns at once */
	ck_assert_int_eq(spool_watch_read(&sp, names_cb, &nm, &overflow), 0);
	ck_assert_int_eq(overflow, 0);
	ck_assert_uint_eq(nm.n, 0);

	/* a dot file first: it must not be reported */
	put(path("new/.copying"), "x\n");
	/* copied straight in: reported when the writer closes it */
	put(path("new/copied"), "x\n");
	ck_assert(wait_event("copied", &nm));
	ck_assert(!names_has(&nm, ".copying"));

	/* written in tmp/ and renamed in */
	put(path("tmp/moved"), "x\n");
	ck_assert_int_eq(rename(path("tmp/moved"), path("new/moved")), 0);
	ck_assert(wait_event("moved", &nm));

	/* nothing in other directories */
	put(path("active/elsewhere"), "x\n");
	put(path("new/marker"), "x\n");
	ck_assert(wait_event("marker", &nm));
	ck_assert(!names_has(&nm, "elsewhere"));

	/* a second watch replaces the first */
	fd = spool_watch(&sp);
	ck_assert_int_ge(fd, 0);
	memset(&nm, 0, sizeof(nm));
	put(path("new/again"), "x\n");
	ck_assert(wait_event("again", &nm));
}
END_TEST

START_TEST(test_log_append)
{
	struct spool_log *lg;
	struct stat st;

	put(path("active/j"), "x\n");
	lg = spool_log_open(&sp, "j", ".result");
	ck_assert_ptr_nonnull(lg);
	ck_assert_uint_eq(spool_log_lines(lg), 0);
	ck_assert_uint_eq(perms(path("active/j.result")) & 0137, 0);
	ck_assert_int_eq(spool_log_append(lg, "one\n", 4), 0);
	ck_assert_int_eq(spool_log_append(lg, "two\nthree\n", 10), 0);
	ck_assert_uint_eq(spool_log_lines(lg), 3);
	/* buffered until flushed */
	ck_assert_int_eq(stat(path("active/j.result"), &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	ck_assert_int_eq(spool_log_flush(lg), 0);
	assert_content(path("active/j.result"), "one\ntwo\nthree\n");
	ck_assert_int_eq(spool_log_append(lg, "four\n", 5), 0);
	ck_assert_int_eq(spool_log_sync(lg), 0);
	assert_content(path("active/j.result"), "one\ntwo\nthree\nfour\n");
	spool_log_close(lg);

	/* reopening counts what is there and appends after it */
	lg = spool_log_open(&sp, "j", ".result");
	ck_assert_ptr_nonnull(lg);
	ck_assert_uint_eq(spool_log_lines(lg), 4);
	ck_assert_int_eq(spool_log_append(lg, "five\n", 5), 0);
	spool_log_close(lg);    /* close flushes */
	assert_content(path("active/j.result"),
	    "one\ntwo\nthree\nfour\nfive\n");

	/* names that are not job names are refused */
	ck_assert_ptr_null(spool_log_open(&sp, "../x", ".result"));
	ck_assert_ptr_null(spool_log_open(&sp, "j", "/x"));
	spool_log_close(NULL);
}
END_TEST

START_TEST(test_log_big)
{
	struct spool_log *lg;
	char *line, *got;
	size_t len = 100 * 1024, i;

	/* lines bigger than the buffer, and enough of them to fill it */
	line = malloc(len);
	ck_assert_ptr_nonnull(line);
	memset(line, 'x', len - 1);
	line[len - 1] = '\n';
	lg = spool_log_open(&sp, "big", ".journal");
	ck_assert_ptr_nonnull(lg);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(spool_log_append(lg, "short line\n", 11), 0);
	ck_assert_int_eq(spool_log_append(lg, line, len), 0);
	for (i = 0; i < 10000; i++)
		ck_assert_int_eq(spool_log_append(lg, "short line\n", 11), 0);
	ck_assert_uint_eq(spool_log_lines(lg), 11001);
	ck_assert_int_eq(spool_log_sync(lg), 0);
	spool_log_close(lg);
	got = get(path("active/big.journal"));
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(strlen(got), 11000 * 11 + len);
	ck_assert(memcmp(got + 11000, line, len) == 0);
	ck_assert(strncmp(got + 11000 + len, "short line\n", 11) == 0);
	free(got);
	free(line);
}
END_TEST

START_TEST(test_log_crash)
{
	struct spool_log *lg;

	/* a crash in the middle of an append left "par" */
	put(path("active/j.journal"), "a\nb\npar");
	lg = spool_log_open(&sp, "j", ".journal");
	ck_assert_ptr_nonnull(lg);
	ck_assert_uint_eq(spool_log_lines(lg), 2);
	assert_content(path("active/j.journal"), "a\nb\n");
	ck_assert_int_eq(spool_log_append(lg, "c\n", 2), 0);
	ck_assert_int_eq(spool_log_sync(lg), 0);
	spool_log_close(lg);
	assert_content(path("active/j.journal"), "a\nb\nc\n");

	/* nothing complete at all */
	put(path("active/k.journal"), "partial");
	lg = spool_log_open(&sp, "k", ".journal");
	ck_assert_ptr_nonnull(lg);
	ck_assert_uint_eq(spool_log_lines(lg), 0);
	spool_log_close(lg);
	assert_content(path("active/k.journal"), "");

	/* a log that is not a regular file is refused without opening it */
	ck_assert_int_eq(mkfifo(path("active/f.journal"), 0600), 0);
	ck_assert_ptr_null(spool_log_open(&sp, "f", ".journal"));
	ck_assert_int_eq(symlink(path("active/j.journal"),
	    path("active/s.journal")), 0);
	ck_assert_ptr_null(spool_log_open(&sp, "s", ".journal"));
	assert_content(path("active/j.journal"), "a\nb\nc\n");
}
END_TEST

struct lines {
	size_t n, stop_after;
	char v[8][64];
	size_t len[8];
};

static int
lines_cb(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;

	ck_assert_uint_lt(l->n, 8);
	ck_assert_uint_eq(strlen(line), len);
	snprintf(l->v[l->n], sizeof(l->v[0]), "%.*s", (int)len, line);
	l->len[l->n++] = len;
	return l->stop_after != 0 && l->n >= l->stop_after ? -1 : 0;
}

START_TEST(test_log_read)
{
	struct lines l;
	FILE *f;
	size_t i;

	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(spool_log_read(&sp, "j", ".result", lines_cb, &l), 0);
	ck_assert_uint_eq(l.n, 0);

	put(path("active/j.result"), "l1\n\nl3\npartial");
	ck_assert_int_eq(spool_log_read(&sp, "j", ".result", lines_cb, &l), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[0], "l1");
	ck_assert_str_eq(l.v[1], "");
	ck_assert_str_eq(l.v[2], "l3");

	/* the callback stops the reading */
	memset(&l, 0, sizeof(l));
	l.stop_after = 1;
	ck_assert_int_eq(spool_log_read(&sp, "j", ".result", lines_cb, &l), 0);
	ck_assert_uint_eq(l.n, 1);

	/* a 16 KiB line is read whole, a 1 MiB one is skipped */
	f = fopen(path("active/j.journal"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("first\n", f);
	for (i = 0; i < 16 * 1024; i++)
		putc('a', f);
	putc('\n', f);
	for (i = 0; i < 1024 * 1024; i++)
		putc('b', f);
	fputs("\nlast\n", f);
	ck_assert_int_eq(fclose(f), 0);
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(spool_log_read(&sp, "j", ".journal", lines_cb, &l),
	    0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.v[0], "first");
	ck_assert_uint_eq(l.len[1], 16 * 1024);
	ck_assert_str_eq(l.v[2], "last");

	/* not a regular file: an error, never a hang */
	ck_assert_int_eq(mkfifo(path("active/p.result"), 0600), 0);
	ck_assert_int_eq(spool_log_read(&sp, "p", ".result", lines_cb, &l),
	    -1);
}
END_TEST

START_TEST(test_open_job)
{
	char buf[16];
	int fd;

	put(path("active/j"), "hello\n");
	fd = spool_open_job(&sp, "j");
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 6);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	ck_assert_int_eq(spool_open_job(&sp, "nosuch"), -1);
	ck_assert_int_eq(mkfifo(path("active/p"), 0600), 0);
	ck_assert_int_eq(spool_open_job(&sp, "p"), -1);
	ck_assert_int_eq(symlink(path("active/j"), path("active/s")), 0);
	ck_assert_int_eq(spool_open_job(&sp, "s"), -1);
	ck_assert_int_eq(spool_open_job(&sp, "../x"), -1);
}
END_TEST

START_TEST(test_finish)
{
	char claimed[SPOOL_NAME_MAX + 16];

	/* into done/: result, job, journal gone */
	put(path("active/j"), "job\n");
	put(path("active/j.result"), HEADER "u\tok\n");
	put(path("active/j.journal"), "journal\n");
	ck_assert_int_eq(spool_finish(&sp, "j", 0), 0);
	assert_content(path("done/j"), "job\n");
	assert_content(path("done/j.result"), HEADER "u\tok\n");
	ck_assert(!exists(path("active/j")));
	ck_assert(!exists(path("active/j.result")));
	ck_assert(!exists(path("active/j.journal")));
	ck_assert(!exists(path("failed/j")));

	/* into failed/, no result written yet: a header-only one */
	put(path("active/k"), "job\n");
	ck_assert_int_eq(spool_finish(&sp, "k", 1), 0);
	assert_content(path("failed/k"), "job\n");
	assert_content(path("failed/k.result"), HEADER);
	ck_assert(!exists(path("active/k")));
	ck_assert(!exists(path("active/k.result")));
	ck_assert(!exists(path("active/.k.result.tmp")));

	/* no such job */
	ck_assert_int_eq(spool_finish(&sp, "nosuch", 0), -1);
	ck_assert(!exists(path("done/nosuch.result")));

	/* the finished name stays taken */
	put(path("new/j"), "again\n");
	ck_assert_int_eq(spool_claim(&sp, "j", claimed, sizeof(claimed)),
	    SPOOL_CLAIMED);
	ck_assert_str_eq(claimed, "j.1");
}
END_TEST

START_TEST(test_finish_noreplace)
{
	/* done/j exists (planted): the job is not moved over it */
	put(path("done/j"), "planted\n");
	put(path("active/j"), "job\n");
	put(path("active/j.result"), HEADER);
	ck_assert_int_eq(spool_finish(&sp, "j", 0), -1);
	assert_content(path("done/j"), "planted\n");
	assert_content(path("active/j"), "job\n");

	/* a result already in dst/ is a crash after the first rename */
	put(path("active/m"), "job\n");
	put(path("failed/m.result"), "moved\n");
	ck_assert_int_eq(spool_finish(&sp, "m", 1), 0);
	assert_content(path("failed/m"), "job\n");
	assert_content(path("failed/m.result"), "moved\n");
}
END_TEST

START_TEST(test_recover_completes)
{
	struct names nm = { 0 };

	/* crash between the renames: result moved by hand, job not */
	put(path("active/j"), "job\n");
	put(path("active/j.journal"), "journal\n");
	put(path("active/j.result"), HEADER "u\tok\n");
	ck_assert_int_eq(rename(path("active/j.result"),
	    path("done/j.result")), 0);
	put(path("active/f"), "job2\n");
	put(path("failed/f.result"), HEADER);

	ck_assert_int_eq(spool_recover(&sp, names_cb, &nm), 0);
	ck_assert_uint_eq(nm.n, 0);
	assert_content(path("done/j"), "job\n");
	assert_content(path("done/j.result"), HEADER "u\tok\n");
	ck_assert(!exists(path("active/j")));
	ck_assert(!exists(path("active/j.journal")));
	assert_content(path("failed/f"), "job2\n");
	ck_assert(!exists(path("active/f")));
}
END_TEST

START_TEST(test_recover_resumes)
{
	struct names nm = { 0 };

	put(path("active/j1"), "job\n");
	put(path("active/j1.journal"), "claims\n");
	put(path("active/j1.result"), HEADER);
	put(path("active/j2.1"), "job\n");
	put(path("active/gone.journal"), "stray\n");
	put(path("active/gone2.result"), "stray\n");
	put(path("active/.x.result.tmp"), "half");
	put(path("failed/.y.result.tmp"), "half");
	ck_assert_int_eq(mkfifo(path("active/odd"), 0600), 0);

	ck_assert_int_eq(spool_recover(&sp, names_cb, &nm), 2);
	ck_assert_uint_eq(nm.n, 2);
	ck_assert_str_eq(nm.v[0], "j1");
	ck_assert_str_eq(nm.v[1], "j2.1");
	assert_content(path("active/j1"), "job\n");
	assert_content(path("active/j1.journal"), "claims\n");
	assert_content(path("active/j1.result"), HEADER);
	ck_assert(!exists(path("active/gone.journal")));
	ck_assert(!exists(path("active/gone2.result")));
	ck_assert(!exists(path("active/.x.result.tmp")));
	ck_assert(!exists(path("failed/.y.result.tmp")));
	ck_assert_uint_eq(ltype(path("active/odd")), S_IFIFO);

	/* recovery again finds the same and removes nothing more */
	memset(&nm, 0, sizeof(nm));
	ck_assert_int_eq(spool_recover(&sp, names_cb, &nm), 2);
	assert_content(path("active/j1.journal"), "claims\n");
	assert_content(path("active/j1.result"), HEADER);
}
END_TEST

START_TEST(test_stale_tmp)
{
	char claimed[SPOOL_NAME_MAX + 16];

	/* a temporary left by a crash does not block the next rejection */
	put(path("failed/.pipe.result.tmp"), "half");
	ck_assert_int_eq(mkfifo(path("new/pipe"), 0600), 0);
	ck_assert_int_eq(spool_claim(&sp, "pipe", claimed, sizeof(claimed)),
	    SPOOL_REJECTED);
	reject_reason("pipe", "not a regular file (fifo)");
	ck_assert(!exists(path("failed/.pipe.result.tmp")));
}
END_TEST

/*
 * Producers: spool_open_producer(), spool_name_from_path(), spool_submit()
 * and spool_count_new().
 */

/* Entries of root/rel, dot files included. */
static size_t
count_entries(const char *rel)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	ck_assert_ptr_nonnull(d = opendir(path(rel)));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

START_TEST(test_where)
{
	char buf[600], want[600];

	put(path("new/q"), "x\n");
	put(path("active/a"), "x\n");
	put(path("done/d"), "x\n");
	put(path("done/d.result"), "x\n");
	put(path("failed/f.2"), "x\n");
	put(path("new/a"), "a second a, queued\n");
	put(path("done/only.result"), "x\n");
	ck_assert_int_eq(spool_where(&sp, "q"), SPOOL_IN_NEW);
	ck_assert_int_eq(spool_where(&sp, "a"), SPOOL_IN_ACTIVE);
	ck_assert_int_eq(spool_where(&sp, "d"), SPOOL_IN_DONE);
	ck_assert_int_eq(spool_where(&sp, "f.2"), SPOOL_IN_FAILED);
	ck_assert_int_eq(spool_where(&sp, "f"), SPOOL_IN_NONE);
	ck_assert_int_eq(spool_where(&sp, "only"), SPOOL_IN_NONE);
	ck_assert_int_eq(spool_where(&sp, "d.result"), SPOOL_IN_NONE);
	ck_assert_int_eq(spool_where(&sp, "../done/d"), SPOOL_IN_NONE);
	ck_assert_int_eq(spool_where(&sp, ""), SPOOL_IN_NONE);

	ck_assert_int_eq(spool_result_path(&sp, "d", 0, buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/done/d.result", root);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(spool_result_path(&sp, "f.2", 1, buf, sizeof(buf)),
	    0);
	snprintf(want, sizeof(want), "%s/failed/f.2.result", root);
	ck_assert_str_eq(buf, want);
	ck_assert_int_eq(spool_result_path(&sp, "d", 0, buf, 8), -1);
}
END_TEST

START_TEST(test_open_producer)
{
	char err[256], r2[300];
	struct spool pr;

	/* active/ and the rest are the daemon's: not needed, not made */
	ck_assert_int_eq(testlib_rm_rf(path("active")), 0);
	ck_assert_msg(spool_open_producer(&pr, root, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_int_ge(pr.tmpfd, 0);
	ck_assert_int_ge(pr.newfd, 0);
	ck_assert_int_eq(pr.activefd, -1);
	ck_assert_int_ge(pr.donefd, 0);         /* readable: for names */
	ck_assert(!exists(path("active")));
	spool_close(&pr);

	/* a spool that does not exist is not created */
	snprintf(r2, sizeof(r2), "%s/nospool", tmpdir);
	errno = 0;
	ck_assert_int_eq(spool_open_producer(&pr, r2, err, sizeof(err)), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "nospool"));
	ck_assert_ptr_null(pr.root);
	ck_assert(!exists(r2));

	/* nor a missing new/; and tmp/ as a symlink is refused */
	ck_assert_int_eq(rename(path("new"), path("new.away")), 0);
	ck_assert_int_eq(spool_open_producer(&pr, root, err, sizeof(err)), -1);
	ck_assert(!exists(path("new")));
	ck_assert_int_eq(rename(path("new.away"), path("new")), 0);
	ck_assert_int_eq(rmdir(path("tmp")), 0);
	ck_assert_int_eq(symlink(tmpdir, path("tmp")), 0);
	ck_assert_int_eq(spool_open_producer(&pr, root, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "tmp"));
	ck_assert_int_eq(pr.rootfd, -1);
}
END_TEST

/* Matches "<base>.<digits>.<pid>.<n>" exactly. */
static void
assert_job_name(const char *name, const char *base, unsigned n)
{
	char tail[64];
	const char *p;

	ck_assert_msg(strncmp(name, base, strlen(base)) == 0 &&
	    name[strlen(base)] == '.', "%s: not %s.*", name, base);
	p = name + strlen(base) + 1;
	ck_assert_msg(p[0] >= '1' && p[0] <= '9', "%s: no time", name);
	while (*p >= '0' && *p <= '9')
		p++;
	snprintf(tail, sizeof(tail), ".%ld.%u", (long)getpid(), n);
	ck_assert_str_eq(p, tail);
	ck_assert(spool_name_valid(name));
}

START_TEST(test_name_from_path)
{
	static const struct {
		const char *path;
		unsigned n;
		const char *base;
	} cases[] = {
		{ "/x/y/many urls.txt", 0, "many_urls.txt" },
		{ ".odd name 2", 2, "odd_name_2" },
		{ "a+b@c=d,e-f_g", 1, "a+b@c=d,e-f_g" },
		{ "caf\xc3\xa9\t", 0, "caf___" },       /* a '_' a byte */
		{ "...", 0, "job" },                    /* nothing left */
		{ "dir/", 3, "job" },
		/* a reserved suffix is harmless once the suffix follows */
		{ "x.result", 0, "x.result" },
	};
	char name[SPOOL_NAME_MAX + 1], small[8], longpath[400];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(spool_name_from_path(cases[i].path,
		    cases[i].n, name, sizeof(name)), 0);
		assert_job_name(name, cases[i].base, cases[i].n);
	}
	/* a long base is cut so that the whole name is valid */
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(spool_name_from_path(longpath, 7, name,
	    sizeof(name)), 0);
	ck_assert_uint_eq(strlen(name), SPOOL_NAME_MAX);
	ck_assert(spool_name_valid(name));
	ck_assert_int_eq(spool_name_from_path("job", 0, small, sizeof(small)),
	    -1);
}
END_TEST

/* The check of spool_submit(): records what it saw, refuses job refuse. */
struct seen {
	size_t calls;
	const char *refuse;
	char text[3][256];
};

static int
check_cb(int fd, const struct spool_submission *job, void *arg)
{
	struct seen *sn = arg;
	char rel[300];
	ssize_t n;

	ck_assert_uint_lt(sn->calls, 3);
	n = read(fd, sn->text[sn->calls], sizeof(sn->text[0]) - 1);
	ck_assert_int_ge(n, 0);
	sn->text[sn->calls++][n] = '\0';
	/* it is checked where it is staged, before anything is queued */
	snprintf(rel, sizeof(rel), "tmp/%s", job->name);
	ck_assert(exists(path(rel)));
	ck_assert_uint_eq(count_entries("new"), 0);
	return sn->refuse != NULL && strcmp(job->name, sn->refuse) == 0 ?
	    -1 : 0;
}

static void
src_file(const char *name, const char *content)
{
	char p[400];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	put(p, content);
}

START_TEST(test_submit)
{
	struct spool_submission job = { "j1", NULL, -1, "" };
	char src[400], *big, *got;
	struct seen sn = { 0 };
	size_t done = 99;
	int pfd[2];
	mode_t old;

	src_file("urls.txt", "http://a/1\nhttp://a/2\n");
	snprintf(src, sizeof(src), "%s/urls.txt", tmpdir);
	job.path = src;
	/* under a strict umask the daemon's group can still read it */
	old = umask(077);
	ck_assert_int_eq(spool_submit(&sp, &job, 1, check_cb, &sn, &done), 0);
	umask(old);
	ck_assert_uint_eq(done, 1);
	ck_assert_uint_eq(sn.calls, 1);
	ck_assert_str_eq(sn.text[0], "http://a/1\nhttp://a/2\n");
	assert_content(path("new/j1"), "http://a/1\nhttp://a/2\n");
	ck_assert_uint_eq(perms(path("new/j1")), 0640);
	ck_assert_uint_eq(count_entries("tmp"), 0);

	/* from a descriptor (the standard input), larger than one read */
	big = malloc(300001);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < 300000; i++)
		big[i] = i % 50 == 49 ? '\n' : 'a' + i % 26;
	big[300000] = '\0';
	src_file("big", big);
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(write(pfd[1], "http://b/1\n", 11), 11);
	close(pfd[1]);
	job.name = "j2";
	job.path = "-";
	job.fd = pfd[0];
	ck_assert_int_eq(spool_submit(&sp, &job, 1, NULL, NULL, NULL), 0);
	assert_content(path("new/j2"), "http://b/1\n");
	ck_assert_int_ne(fcntl(pfd[0], F_GETFD), -1);     /* not closed */
	close(pfd[0]);
	snprintf(src, sizeof(src), "%s/big", tmpdir);
	job.name = "j3";
	job.path = src;
	job.fd = -1;
	ck_assert_int_eq(spool_submit(&sp, &job, 1, NULL, NULL, NULL), 0);
	got = get(path("new/j3"));
	ck_assert_ptr_nonnull(got);
	ck_assert(strcmp(got, big) == 0);
	free(got);
	free(big);
	ck_assert_uint_eq(count_entries("tmp"), 0);
	ck_assert_uint_eq(count_entries("new"), 3);
}
END_TEST

START_TEST(test_submit_taken)
{
	struct spool_submission jobs[2] = {
		{ "a", NULL, -1, "" }, { "b", NULL, -1, "" },
	};
	char src[400];
	size_t done = 99;

	src_file("src", "http://x/\n");
	snprintf(src, sizeof(src), "%s/src", tmpdir);
	jobs[0].path = jobs[1].path = src;

	/* b is queued already: ours is b.1, theirs is untouched */
	put(path("new/b"), "theirs\n");
	ck_assert_int_eq(spool_submit(&sp, jobs, 2, NULL, NULL, &done), 0);
	ck_assert_uint_eq(done, 2);
	ck_assert_str_eq(jobs[0].queued, "a");
	ck_assert_str_eq(jobs[1].queued, "b.1");
	assert_content(path("new/a"), "http://x/\n");
	assert_content(path("new/b.1"), "http://x/\n");
	assert_content(path("new/b"), "theirs\n");
	ck_assert_uint_eq(count_entries("tmp"), 0);
	ck_assert_int_eq(unlink(path("new/a")), 0);
	ck_assert_int_eq(unlink(path("new/b")), 0);
	ck_assert_int_eq(unlink(path("new/b.1")), 0);

	/* a name free in new/ but taken elsewhere, as spool_claim counts:
	 * the job file or result in done/ and failed/, a journal in active/ */
	put(path("done/a"), "x\n");
	put(path("failed/a.1.result"), "x\n");
	put(path("active/a.2.journal"), "x\n");
	jobs[1].name = "b";
	ck_assert_int_eq(spool_submit(&sp, jobs, 1, NULL, NULL, &done), 0);
	ck_assert_str_eq(jobs[0].queued, "a.3");
	ck_assert(exists(path("new/a.3")));
	ck_assert_int_eq(unlink(path("new/a.3")), 0);
	ck_assert_int_eq(unlink(path("done/a")), 0);
	ck_assert_int_eq(unlink(path("failed/a.1.result")), 0);
	ck_assert_int_eq(unlink(path("active/a.2.journal")), 0);

	/* another producer is staging b: its file is left alone */
	put(path("tmp/b"), "half of theirs");
	ck_assert_int_eq(spool_submit(&sp, jobs, 2, NULL, NULL, &done), -1);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(count_entries("new"), 0);
	assert_content(path("tmp/b"), "half of theirs");
	ck_assert_uint_eq(count_entries("tmp"), 1);
	ck_assert_int_eq(unlink(path("tmp/b")), 0);

	/* the same name twice in one call */
	jobs[1].name = "a";
	ck_assert_int_eq(spool_submit(&sp, jobs, 2, NULL, NULL, &done), -1);
	ck_assert_uint_eq(count_entries("new") + count_entries("tmp"), 0);

	/* a name the daemon would refuse */
	jobs[1].name = "b.result";
	ck_assert_int_eq(spool_submit(&sp, jobs, 2, NULL, NULL, &done), -1);
	ck_assert_uint_eq(count_entries("new") + count_entries("tmp"), 0);
}
END_TEST

START_TEST(test_submit_all_or_nothing)
{
	struct spool_submission jobs[3] = {
		{ "one", NULL, -1, "" }, { "two", NULL, -1, "" },
		{ "three", NULL, -1, "" },
	};
	char p[3][400];
	struct seen sn = { 0 };
	size_t done = 99;

	for (int i = 0; i < 3; i++) {
		snprintf(p[i], sizeof(p[i]), "%s/src%d", tmpdir, i);
		jobs[i].path = p[i];
	}
	src_file("src0", "http://x/0\n");
	src_file("src1", "http://x/1\n");
	src_file("src2", "http://x/2\n");

	/* the second is refused: every one is still checked, none queued */
	sn.refuse = "two";
	ck_assert_int_eq(spool_submit(&sp, jobs, 3, check_cb, &sn, &done), -1);
	ck_assert_uint_eq(done, 0);
	ck_assert_uint_eq(sn.calls, 3);
	ck_assert_str_eq(sn.text[2], "http://x/2\n");
	ck_assert_uint_eq(count_entries("new") + count_entries("tmp"), 0);

	/* a source that cannot be read, before and after the writing began */
	jobs[1].path = tmpdir;          /* a directory: read() fails */
	memset(&sn, 0, sizeof(sn));
	ck_assert_int_eq(spool_submit(&sp, jobs, 3, check_cb, &sn, &done), -1);
	ck_assert_uint_eq(sn.calls, 2);
	ck_assert_uint_eq(count_entries("new") + count_entries("tmp"), 0);
	snprintf(p[1], sizeof(p[1]), "%s/nosuch", tmpdir);
	jobs[1].path = p[1];
	ck_assert_int_eq(spool_submit(&sp, jobs, 3, NULL, NULL, &done), -1);
	ck_assert_uint_eq(count_entries("new") + count_entries("tmp"), 0);

	/* all good: all queued, in new/ only */
	snprintf(p[1], sizeof(p[1]), "%s/src1", tmpdir);
	ck_assert_int_eq(spool_submit(&sp, jobs, 3, NULL, NULL, &done), 0);
	ck_assert_uint_eq(done, 3);
	assert_content(path("new/one"), "http://x/0\n");
	assert_content(path("new/two"), "http://x/1\n");
	assert_content(path("new/three"), "http://x/2\n");
	ck_assert_uint_eq(count_entries("tmp"), 0);
}
END_TEST

START_TEST(test_count_new)
{
	struct names nm = { 0 };
	off_t pos;

	ck_assert_int_eq(spool_count_new(&sp, NULL, NULL), 0);
	put(path("new/a"), "x");
	put(path("new/b"), "x");
	put(path("new/.partial"), "x");
	ck_assert_int_eq(mkdir(path("new/d"), 0700), 0);
	/* what a claim would reject waits in new/ too */
	pos = lseek(sp.newfd, 0, SEEK_CUR);
	ck_assert_int_eq(spool_count_new(&sp, names_cb, &nm), 3);
	ck_assert_uint_eq(nm.n, 3);
	ck_assert(names_has(&nm, "a") && names_has(&nm, "b") &&
	    names_has(&nm, "d"));
	/* the spool's own descriptor is not moved */
	ck_assert_int_eq(lseek(sp.newfd, 0, SEEK_CUR), pos);
	ck_assert_int_eq(spool_count_new(&sp, NULL, NULL), 3);
}
END_TEST

static Suite *
spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("spool");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_tree);
	tcase_add_test(tc, test_name_valid);
	tcase_add_test(tc, test_claim_regular);
	tcase_add_test(tc, test_claim_suffix);
	tcase_add_test(tc, test_claim_symlink);
	tcase_add_test(tc, test_claim_fifo);
	tcase_add_test(tc, test_claim_dir);
	tcase_add_test(tc, test_claim_badname);
	tcase_add_test(tc, test_claim_dotfile);
	tcase_add_test(tc, test_scan);
	tcase_add_test(tc, test_watch);
	tcase_add_test(tc, test_log_append);
	tcase_add_test(tc, test_log_big);
	tcase_add_test(tc, test_log_crash);
	tcase_add_test(tc, test_log_read);
	tcase_add_test(tc, test_open_job);
	tcase_add_test(tc, test_finish);
	tcase_add_test(tc, test_finish_noreplace);
	tcase_add_test(tc, test_recover_completes);
	tcase_add_test(tc, test_recover_resumes);
	tcase_add_test(tc, test_stale_tmp);
	tcase_add_test(tc, test_where);
	tcase_add_test(tc, test_open_producer);
	tcase_add_test(tc, test_name_from_path);
	tcase_add_test(tc, test_submit);
	tcase_add_test(tc, test_submit_taken);
	tcase_add_test(tc, test_submit_all_or_nothing);
	tcase_add_test(tc, test_count_new);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	log_init("check_spool", LOG_LVL_WARN);
	return testlib_run(spool_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
