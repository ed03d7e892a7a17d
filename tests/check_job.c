/*
 * check_job.c: unit tests for job.c, the job file grammar.
 *
 * Each rule of job.h has a test that fails when the rule breaks: accepted
 * line shapes, every hostile line a producer could drop into the spool, the
 * out= confinement rules, the file name derived from a URL, and the
 * streaming reader (line numbers, over-long lines, CRLF, a missing final
 * newline, rewind, read errors, EINTR, and a large job).
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"
#include "testlib.h"

#define SHA_LOWER \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SHA_UPPER \
	"00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF"

static char tmpdir[64];
static int tmpseq;

static void
tmp_setup(void)
{
	testlib_tmpdir(tmpdir, sizeof(tmpdir), "check_job");
}

static void
tmp_teardown(void)
{
	rmdir(tmpdir);
}

/* A read-only fd on a file holding data; the name is unlinked at once. */
static int
tmp_file(const char *data, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/job%d", tmpdir, tmpseq++);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);
	return fd;
}

static int
parse(const char *line, struct job_entry *e, char *err)
{
	return job_parse_line(line, strlen(line), 7, e, err, JOB_ERR_MAX);
}

/* The line must be rejected with a message containing want. */
static void
reject(const char *line, size_t len, const char *want)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];
	int rv;

	rv = job_parse_line(line, len, 1, &e, err, sizeof(err));
	ck_assert_msg(rv == -1, "accepted: '%s'", line);
	ck_assert_ptr_null(e.url);
	ck_assert_ptr_null(e.host);
	ck_assert_ptr_null(e.out);
	ck_assert_ptr_null(e.mirrors);
	ck_assert_uint_eq(e.nmirrors, 0);
	ck_assert_msg(strstr(err, want) != NULL, "'%s': got '%s', want '%s'",
	    line, err, want);
	job_entry_free(&e);
}

static void
reject_s(const char *line, const char *want)
{
	reject(line, strlen(line), want);
}

static void
accept_s(const char *line)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_msg(parse(line, &e, err) == 1, "'%s': %s", line, err);
	job_entry_free(&e);
}

/* "https://h/aaa..." of exactly len bytes. */
static char *
long_url(size_t len)
{
	char *s;

	ck_assert_uint_gt(len, 10);
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, "https://h/", 10);
	memset(s + 10, 'a', len - 10);
	s[len] = '\0';
	return s;
}

/* Good lines. */

START_TEST(test_plain)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(parse("https://example.org/a.iso", &e, err), 1);
	ck_assert_str_eq(e.url, "https://example.org/a.iso");
	ck_assert_str_eq(e.host, "example.org");
	ck_assert_ptr_null(e.out);
	ck_assert_int_eq(e.has_sha256, 0);
	ck_assert_uint_eq(e.lineno, 7);
	job_entry_free(&e);

	ck_assert_int_eq(parse("http://example.org", &e, err), 1);
	ck_assert_str_eq(e.url, "http://example.org/");
	job_entry_free(&e);
}
END_TEST

START_TEST(test_fields)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];
	unsigned char want[32];
	int i;

	for (i = 0; i < 16; i++)
		want[i] = want[i + 16] = (unsigned char)(i * 0x11);

	ck_assert_int_eq(parse("  https://example.org/b.iso  out=images/b.iso"
	    "  sha256=" SHA_LOWER "   ", &e, err), 1);
	ck_assert_str_eq(e.out, "images/b.iso");
	ck_assert_int_eq(e.has_sha256, 1);
	ck_assert_mem_eq(e.sha256, want, 32);
	job_entry_free(&e);

	/* Upper-case hex, fields in the other order, tabs as separators. */
	ck_assert_int_eq(parse("\thttps://example.org/b\tsha256=" SHA_UPPER
	    "\t\tout=b \t", &e, err), 1);
	ck_assert_int_eq(e.has_sha256, 1);
	ck_assert_mem_eq(e.sha256, want, 32);
	ck_assert_str_eq(e.out, "b");
	ck_assert_str_eq(e.url, "https://example.org/b");
	job_entry_free(&e);

	/* A value may hold '=' and UTF-8. */
	ck_assert_int_eq(parse("https://h/x out=d\xc3\xa9j\xc3\xa0/a=b",
	    &e, err), 1);
	ck_assert_str_eq(e.out, "d\xc3\xa9j\xc3\xa0/a=b");
	job_entry_free(&e);
}
END_TEST

START_TEST(test_blank_comment)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(parse("", &e, err), 0);
	ck_assert_int_eq(parse("   \t ", &e, err), 0);
	ck_assert_int_eq(parse("# https://example.org/", &e, err), 0);
	ck_assert_int_eq(parse("  \t# out=../../etc", &e, err), 0);
	ck_assert_int_eq(parse("#", &e, err), 0);
	/* Freeing after 0 is harmless. */
	job_entry_free(&e);
}
END_TEST

START_TEST(test_url_shapes)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	/* A later '#' is a fragment, not a comment. */
	ck_assert_int_eq(parse("https://h/a#frag out=y", &e, err), 1);
	ck_assert_ptr_nonnull(strstr(e.url, "#frag"));
	ck_assert_str_eq(e.out, "y");
	job_entry_free(&e);

	ck_assert_int_eq(parse("http://[::1]:8080/x", &e, err), 1);
	ck_assert_str_eq(e.host, "[::1]");
	ck_assert_str_eq(e.url, "http://[::1]:8080/x");
	job_entry_free(&e);

	ck_assert_int_eq(parse("http://127.0.0.1:8080/x", &e, err), 1);
	ck_assert_str_eq(e.host, "127.0.0.1");
	ck_assert_str_eq(e.url, "http://127.0.0.1:8080/x");
	job_entry_free(&e);

	ck_assert_int_eq(parse("https://h/a%20b%2Fc?q=%41", &e, err), 1);
	ck_assert_str_eq(e.url, "https://h/a%20b%2Fc?q=%41");
	job_entry_free(&e);

	/* Host lower-cased; scheme and dot segments normalised by libcurl. */
	ck_assert_int_eq(parse("HTTPS://Example.ORG/a/../b", &e, err), 1);
	ck_assert_str_eq(e.host, "example.org");
	ck_assert_int_eq(strncmp(e.url, "https://", 8), 0);
	ck_assert_ptr_nonnull(strstr(e.url, "/b"));
	ck_assert_ptr_null(strstr(e.url, ".."));
	job_entry_free(&e);

	/* Userinfo is allowed; the host does not include it. */
	ck_assert_int_eq(parse("https://user:pw@h.example/x", &e, err), 1);
	ck_assert_str_eq(e.host, "h.example");
	job_entry_free(&e);

	/* Bytes >= 0x80 in a URL: libcurl accepts this one. */
	accept_s("https://h/\xc3\xa9t\xc3\xa9.iso");
}
END_TEST

/* Hostile lines. */

START_TEST(test_schemes)
{
	reject_s("ftp://h/x", "scheme 'ftp' not allowed (http and https only)");
	reject_s("FTP://h/x", "scheme 'ftp' not allowed");
	reject_s("file:///etc/passwd", "scheme 'file' not allowed");
	reject_s("gopher://h/", "scheme 'gopher' not allowed");
	reject_s("javascript:alert(1)", "scheme 'javascript' not allowed");
	reject_s("data:text/plain,x", "scheme 'data' not allowed");
	reject_s("example.org/x", "no scheme");
	reject_s("//example.org/x", "no scheme");
	reject_s("http://", "empty host");
	reject_s("http://:80/x", "empty host");
	reject_s("http://h:99999/", "bad URL");
	ck_assert_int_eq(job_scheme_allowed("http"), 1);
	ck_assert_int_eq(job_scheme_allowed("HTTPS"), 1);
	ck_assert_int_eq(job_scheme_allowed("ftp"), 0);
	ck_assert_int_eq(job_scheme_allowed("https+x"), 0);
	ck_assert_int_eq(job_scheme_allowed(""), 0);
	ck_assert_int_eq(job_scheme_allowed(NULL), 0);
}
END_TEST

START_TEST(test_bad_out)
{
	char path[JOB_PATH_MAX + 2];
	char line[JOB_PATH_MAX + 64];
	int i;

	reject_s("https://h/x out=../x", "'..'");
	reject_s("https://h/x out=/etc/x", "relative");
	reject_s("https://h/x out=a/../../x", "'..'");
	reject_s("https://h/x out=.", "'.'");
	reject_s("https://h/x out=..", "'..'");
	reject_s("https://h/x out=a/./b", "'.'");
	reject_s("https://h/x out=a//b", "empty component");
	reject_s("https://h/x out=a/", "empty component");
	reject_s("https://h/x out=", "empty");
	reject_s("https://h/x out=x.part", ".part");
	reject_s("https://h/x out=d.part/x", ".part");
	reject_s("https://h/x out=.part", ".part");
	reject_s("https://h/x out=a/x.validators", ".validators");
	reject_s("https://h/x out=a\\b", "backslash");
	reject_s("https://h/x out=a\x01" "b", "control byte 0x01 at column 18");

	/* Component: JOB_NAME_MAX passes, one more fails. */
	memset(path, 'a', JOB_NAME_MAX + 1);
	path[JOB_NAME_MAX] = '\0';
	snprintf(line, sizeof(line), "https://h/x out=%s", path);
	accept_s(line);
	path[JOB_NAME_MAX] = 'a';
	path[JOB_NAME_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "https://h/x out=%s", path);
	reject_s(line, "component longer than 255");

	/* Whole path: JOB_PATH_MAX passes, one more fails. */
	for (i = 0; i < JOB_PATH_MAX; i++)
		path[i] = (i % 100 == 99) ? '/' : 'b';
	path[JOB_PATH_MAX] = '\0';
	snprintf(line, sizeof(line), "https://h/x out=%s", path);
	accept_s(line);
	path[JOB_PATH_MAX] = 'b';
	path[JOB_PATH_MAX + 1] = '\0';
	snprintf(line, sizeof(line), "https://h/x out=%s", path);
	reject_s(line, "longer than 1024");
}
END_TEST

/* A cluster entry's fields, given apart, pass the job line's rules. */
START_TEST(test_entry_fields)
{
	static const char sha[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(job_entry_fields("http://h.example/a/b.iso",
	    "d/b.iso", sha, &e, err, sizeof(err)), 1);
	ck_assert_str_eq(e.host, "h.example");
	ck_assert_str_eq(e.out, "d/b.iso");
	ck_assert_int_eq(e.has_sha256, 1);
	ck_assert_uint_eq(e.sha256[1], 0x11);
	job_entry_free(&e);
	ck_assert_int_eq(job_entry_fields("https://h/x", NULL, NULL, &e, err,
	    sizeof(err)), 1);
	ck_assert_ptr_null(e.out);
	ck_assert_int_eq(e.has_sha256, 0);
	job_entry_free(&e);

	/* What a line refuses, the fields refuse, with the same words. */
	ck_assert_int_eq(job_entry_fields("file:///etc/passwd", NULL, NULL,
	    &e, err, sizeof(err)), -1);
	ck_assert_ptr_null(e.url);
	ck_assert_int_eq(job_entry_fields("http://h/x", "../x", NULL, &e, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, ".."));
	ck_assert_ptr_null(e.out);
	ck_assert_int_eq(job_entry_fields("http://h/x", "/etc/x", NULL, &e,
	    err, sizeof(err)), -1);
	ck_assert_int_eq(job_entry_fields("http://h/x", "a.part", NULL, &e,
	    err, sizeof(err)), -1);
	ck_assert_int_eq(job_entry_fields("http://h/x", NULL, "abc", &e, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "sha256"));
	ck_assert_int_eq(e.has_sha256, 0);
	ck_assert_int_eq(job_entry_fields("http://h/x\x01", NULL, NULL, &e,
	    err, sizeof(err)), -1);
	/* A URL field smuggling more fields is not a URL. */
	ck_assert_int_eq(job_entry_fields("http://h/x out=../../y", NULL, NULL,
	    &e, err, sizeof(err)), -1);
	ck_assert_int_eq(job_entry_fields("", NULL, NULL, &e, err,
	    sizeof(err)), -1);
	ck_assert_int_eq(job_entry_fields(NULL, NULL, NULL, &e, err,
	    sizeof(err)), -1);
}
END_TEST

START_TEST(test_out_valid)
{
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(job_out_valid("a", err, sizeof(err)), 1);
	ck_assert_int_eq(job_out_valid("a/b/c.iso", err, sizeof(err)), 1);
	ck_assert_int_eq(job_out_valid("..a/b..", err, sizeof(err)), 1);
	ck_assert_int_eq(job_out_valid("x.partial", err, sizeof(err)), 1);
	ck_assert_int_eq(job_out_valid("x.PART.iso", err, sizeof(err)), 1);
	ck_assert_int_eq(job_out_valid("\xe2\x82\xac.txt", err, sizeof(err)),
	    1);

	ck_assert_int_eq(job_out_valid("", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid(NULL, err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("/a", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("a/..", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("./a", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("a\x01" "b", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "control"));
	ck_assert_int_eq(job_out_valid("a\x7f", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "control"));
	ck_assert_int_eq(job_out_valid("a\tb", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("a\\..\\b", err, sizeof(err)), 0);
	ck_assert_int_eq(job_out_valid("a/b.part", err, sizeof(err)), 0);
	/* A NULL message buffer is allowed. */
	ck_assert_int_eq(job_out_valid("/a", NULL, 0), 0);
}
END_TEST

START_TEST(test_bad_sha)
{
	reject_s("https://h/x sha256=0011", "64 hex");
	reject_s("https://h/x sha256=" SHA_LOWER "0", "64 hex");
	reject_s("https://h/x sha256=" SHA_LOWER "00", "64 hex");
	reject_s("https://h/x sha256=", "64 hex");
	reject_s("https://h/x sha256="
	    "g0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
	    "64 hex");
	reject_s("https://h/x sha256="
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddee-f",
	    "64 hex");
}
END_TEST

START_TEST(test_bad_fields)
{
	reject_s("https://h/x out=a out=b", "duplicate field 'out'");
	reject_s("https://h/x sha256=" SHA_LOWER " sha256=" SHA_LOWER,
	    "duplicate field 'sha256'");
	reject_s("https://h/x foo=bar", "unknown field 'foo'");
	reject_s("https://h/x OUT=a", "unknown field 'OUT'");
	reject_s("https://h/x =a", "unknown field ''");
	reject_s("https://h/x extra", "'extra' is not key=value");
	reject_s("https://h/a b", "is not key=value");
	/* A line that starts with a field has no URL. */
	reject_s("out=x", "no scheme");
}
END_TEST

/* mirror=: repeatable, in order, each normalised with its lower-case
 * host; the other fields keep their place. */
START_TEST(test_mirrors)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(parse("https://a.example/x mirror=http://B.Example:81"
	    "/y out=x mirror=https://u:p@c.example/z?q=1", &e, err), 1);
	ck_assert_str_eq(e.url, "https://a.example/x");
	ck_assert_str_eq(e.out, "x");
	ck_assert_uint_eq(e.nmirrors, 2);
	ck_assert_str_eq(e.mirrors[0], "http://B.Example:81/y");
	ck_assert_str_eq(e.mirror_hosts[0], "b.example");
	ck_assert_str_eq(e.mirrors[1], "https://u:p@c.example/z?q=1");
	ck_assert_str_eq(e.mirror_hosts[1], "c.example");
	job_entry_free(&e);
	ck_assert_ptr_null(e.mirrors);
	ck_assert_uint_eq(e.nmirrors, 0);

	/* None: no array. The same URL twice is not an error. */
	ck_assert_int_eq(parse("https://a/x", &e, err), 1);
	ck_assert_ptr_null(e.mirrors);
	job_entry_free(&e);
	accept_s("https://a/x mirror=https://a/x mirror=https://a/x");
}
END_TEST

/* A bad mirror= fails the line as a bad URL would, numbered, and never
 * quotes it; the limit is JOB_MIRRORS_MAX. */
START_TEST(test_bad_mirrors)
{
	char line[JOB_LINE_MAX], err[JOB_ERR_MAX];
	struct job_entry e;
	size_t n;
	int i;

	reject_s("https://h/x mirror=ftp://h/x",
	    "mirror 1: scheme 'ftp' not allowed");
	reject_s("https://h/x mirror=https://h/y mirror=h/z",
	    "mirror 2: URL has no scheme");
	reject_s("https://h/x mirror=", "mirror 1: ");
	reject_s("https://h/x mirror=https://", "mirror 1: ");
	reject_s("https://h/x mirror=https://h:99999/p", "mirror 1: ");
	reject_s("https://h/x mirror=https://h/\x01", "control byte 0x01");
	reject_s("https://h/x MIRROR=https://h/y", "unknown field 'MIRROR'");
	ck_assert_int_eq(parse("https://h/x mirror=https://u:s3cret@h:99999/x",
	    &e, err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));

	n = (size_t)snprintf(line, sizeof(line), "https://h/x");
	for (i = 0; i < JOB_MIRRORS_MAX; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    " mirror=https://m%d/x", i);
	accept_s(line);
	snprintf(line + n, sizeof(line) - n, " mirror=https://last/x");
	reject_s(line, "more than 16 mirror= fields");
}
END_TEST

/* segments=N: 1..16, once. */
START_TEST(test_segments_field)
{
	struct job_entry e;
	char err[256];

	ck_assert_int_eq(job_parse_line("https://h/x", 11, 1, &e, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 0);
	job_entry_free(&e);
	ck_assert_int_eq(job_parse_line("https://h/x segments=1 out=a", 28, 1,
	    &e, err, sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 1);
	job_entry_free(&e);
	ck_assert_int_eq(job_parse_line("https://h/x segments=16", 23, 1, &e,
	    err, sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 16);
	job_entry_free(&e);
	reject_s("https://h/x segments=0", "segments must be a number from "
	    "1 to 16");
	reject_s("https://h/x segments=17", "from 1 to 16");
	reject_s("https://h/x segments=", "from 1 to 16");
	reject_s("https://h/x segments=4x", "from 1 to 16");
	reject_s("https://h/x segments=+4", "from 1 to 16");
	reject_s("https://h/x segments=0004", "from 1 to 16");
	reject_s("https://h/x segments=99999999999", "from 1 to 16");
	reject_s("https://h/x segments=2 segments=2",
	    "duplicate field 'segments'");
}
END_TEST

START_TEST(test_control_bytes)
{
	char *s;

	reject_s("https://h/a\x01" "b", "control byte 0x01 at column 12");
	reject_s("https://h/a\x1f", "control byte 0x1f at column 12");
	reject_s("https://h/a\x7f", "control byte 0x7f at column 12");
	reject_s("https://h/a\rb", "control byte 0x0d at column 12");
	reject_s("\x1b[2Jhttps://h/", "control byte 0x1b at column 1");
	reject_s("https://h/a sha256=\x0b", "control byte 0x0b at column 20");
	/* Also in a comment: the rule is anywhere in the line. */
	reject_s("# \x07", "control byte 0x07 at column 3");
	/* A NUL does not end the line early. */
	reject("https://h/a\0b", 13, "control byte 0x00 at column 12");
	reject("https://h/a out=x\0", 18, "control byte 0x00 at column 18");

	/* job_parse_line itself bounds the line. */
	s = long_url(JOB_LINE_MAX);
	accept_s(s);
	free(s);
	s = long_url(JOB_LINE_MAX + 1);
	reject_s(s, "line too long (max 8192 bytes)");
	free(s);
}
END_TEST

START_TEST(test_no_secret_in_errors)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(parse("https://user:s3cret@h/x bogus", &e, err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	ck_assert_int_eq(parse("ftp://user:s3cret@h/x", &e, err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	ck_assert_int_eq(parse("https://user:s3cret@h:99999/x", &e, err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	/* A header's value is never quoted, nor what follows a blank in a
	 * name (a value given without its colon). */
	ck_assert_int_eq(parse("https://h/a header=\"Bearer s3cret: x\"", &e,
	    err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	ck_assert_int_eq(parse("https://h/a header=\"Host: s3cret\"", &e, err),
	    -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	ck_assert_int_eq(parse("https://h/a header=\"X: s3cret\" header=x:1",
	    &e, err), -1);
	ck_assert_ptr_null(strstr(err, "s3cret"));
}
END_TEST

/* job_name_from_url */

static void
name_is(const char *url, const char *want)
{
	char buf[JOB_NAME_MAX + 1];
	char err[JOB_ERR_MAX];

	memset(buf, 'X', sizeof(buf));
	job_name_from_url(url, buf, sizeof(buf));
	ck_assert_msg(strcmp(buf, want) == 0, "%s: got '%s', want '%s'", url,
	    buf, want);
	/* Whatever is derived must be an acceptable out= name. */
	ck_assert_msg(job_out_valid(buf, err, sizeof(err)) == 1, "%s: %s",
	    buf, err);
}

START_TEST(test_name_basic)
{
	name_is("https://h/a/b.iso", "b.iso");
	name_is("https://h/b.iso?x=/etc/passwd", "b.iso");
	name_is("https://h/b.iso#frag/x", "b.iso");
	name_is("https://h/a%20b.iso", "a b.iso");
	name_is("https://h/%C3%A9t%C3%A9", "\xc3\xa9t\xc3\xa9");
	name_is("https://h/\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
	/* Empty path, and a bare slash. */
	name_is("https://h", "index.html");
	name_is("https://h/", "index.html");
	name_is("https://h/?q=1", "index.html");
	/* A trailing slash names the previous segment. */
	name_is("https://h/a/b/", "b");
	name_is("https://h/a/b//", "b");
}
END_TEST

START_TEST(test_name_hostile)
{
	/* An encoded slash stays in its segment and becomes '_'. */
	name_is("https://h/a%2Fb", "a_b");
	name_is("https://h/a%2f..%2f..%2fetc", "a_.._.._etc");
	name_is("https://h/a%5Cb", "a_b");
	name_is("https://h/%2E%2E", "index.html");
	name_is("https://h/..", "index.html");
	name_is("https://h/x/%2e", "index.html");
	name_is("https://h/.hidden", "hidden");
	name_is("https://h/...x", "x");
	name_is("https://h/%2E%2E%2Fetc%2Fpasswd", "_etc_passwd");
	name_is("https://h/a%3Ab%2Ac%3Fd%22e%3Cf%3Eg%7Ch", "a_b_c_d_e_f_g_h");
	name_is("https://h/a%00b%0Ac%7Fd%1B", "a_b_c_d_");
	name_is("https://h/a%zz%4", "a%zz%4");
	/* Never a name fetchd's own ".part" files could collide with. */
	name_is("https://h/x.part", "x.part_");
	name_is("https://h/x%2Epart", "x.part_");
	name_is("https://h/x.validators", "x.validators_");
	name_is("https://h/x.part?y", "x.part_");
	name_is("https://h/x.partial", "x.partial");
}
END_TEST

START_TEST(test_name_long)
{
	char url[1024], want[JOB_NAME_MAX + 1];
	char buf[JOB_NAME_MAX + 1];
	size_t n;

	/* Cut to JOB_NAME_MAX. */
	n = (size_t)snprintf(url, sizeof(url), "https://h/");
	memset(url + n, 'a', 300);
	url[n + 300] = '\0';
	memset(want, 'a', JOB_NAME_MAX);
	want[JOB_NAME_MAX] = '\0';
	name_is(url, want);

	/* A two-byte character straddling the cut is dropped whole. */
	n = (size_t)snprintf(url, sizeof(url), "https://h/");
	memset(url + n, 'a', JOB_NAME_MAX - 1);
	strcpy(url + n + JOB_NAME_MAX - 1, "%C3%A9zzz");
	memset(want, 'a', JOB_NAME_MAX - 1);
	want[JOB_NAME_MAX - 1] = '\0';
	name_is(url, want);

	/* A three-byte one that fits exactly is kept. */
	n = (size_t)snprintf(url, sizeof(url), "https://h/");
	memset(url + n, 'a', JOB_NAME_MAX - 3);
	strcpy(url + n + JOB_NAME_MAX - 3, "%E2%82%ACzzz");
	memset(want, 'a', JOB_NAME_MAX - 3);
	strcpy(want + JOB_NAME_MAX - 3, "\xe2\x82\xac");
	name_is(url, want);

	/* ".part" exactly at the cut still does not end the name. */
	n = (size_t)snprintf(url, sizeof(url), "https://h/");
	memset(url + n, 'a', JOB_NAME_MAX - 5);
	strcpy(url + n + JOB_NAME_MAX - 5, ".part");
	job_name_from_url(url, buf, sizeof(buf));
	ck_assert_uint_le(strlen(buf), JOB_NAME_MAX);
	ck_assert_int_ne(strcmp(buf + strlen(buf) - 5, ".part"), 0);
	ck_assert_int_eq(job_out_valid(buf, NULL, 0), 1);

	/* Cut mid-name, leaving ".part" at the end. */
	n = (size_t)snprintf(url, sizeof(url), "https://h/");
	memset(url + n, 'a', JOB_NAME_MAX - 5);
	strcpy(url + n + JOB_NAME_MAX - 5, ".partxyz");
	job_name_from_url(url, buf, sizeof(buf));
	ck_assert_uint_le(strlen(buf), JOB_NAME_MAX);
	ck_assert_int_eq(job_out_valid(buf, NULL, 0), 1);
}
END_TEST

/* The reader. */

static void
next_ok(struct job_reader *r, unsigned long lineno, const char *url)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];
	int rv;

	rv = job_reader_next(r, &e, err, sizeof(err));
	ck_assert_msg(rv == 1, "want line %lu, got %d '%s'", lineno, rv,
	    rv == -1 ? err : "");
	ck_assert_uint_eq(e.lineno, lineno);
	ck_assert_uint_eq(job_reader_lineno(r), lineno);
	if (url != NULL)
		ck_assert_str_eq(e.url, url);
	job_entry_free(&e);
}

static void
next_err(struct job_reader *r, const char *want)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];
	int rv;

	rv = job_reader_next(r, &e, err, sizeof(err));
	ck_assert_msg(rv == -1, "want error '%s', got %d", want, rv);
	ck_assert_msg(strstr(err, want) != NULL, "got '%s', want '%s'", err,
	    want);
	ck_assert_ptr_null(e.url);
	job_entry_free(&e);
}

static void
next_eof(struct job_reader *r)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(job_reader_next(r, &e, err, sizeof(err)), 0);
}

/* Quoting, header= and @default. */

/* The line's headers, joined as job_entry keeps them. */
static void
headers_are(const char *line, const char *want)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_msg(parse(line, &e, err) == 1, "'%s': %s", line, err);
	if (want == NULL)
		ck_assert_ptr_null(e.headers);
	else {
		ck_assert_ptr_nonnull(e.headers);
		ck_assert_str_eq(e.headers, want);
	}
	job_entry_free(&e);
}

START_TEST(test_quoting)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(parse("https://h/a out=\"my file.iso\"", &e, err), 1);
	ck_assert_str_eq(e.out, "my file.iso");
	job_entry_free(&e);
	ck_assert_int_eq(parse("https://h/a header=\"X: a\\\"b\\\\c\"\t", &e,
	    err), 1);
	ck_assert_str_eq(e.headers, "X: a\"b\\c");
	job_entry_free(&e);
	/* A quote anywhere but right after '=' is an ordinary byte. */
	ck_assert_int_eq(parse("https://h/a out=a\"b", &e, err), 1);
	ck_assert_str_eq(e.out, "a\"b");
	job_entry_free(&e);
	reject_s("https://h/a out=\"a b", "unterminated quoted value");
	reject_s("https://h/a out=\"a\\", "bad escape");
	reject_s("https://h/a out=\"a\\nb\"", "bad escape");
	reject_s("https://h/a out=\"a\"b", "text right after a closing");
	reject_s("https://h/a out=\"\"", "out= is empty");
}
END_TEST

START_TEST(test_headers)
{
	headers_are("https://h/a", NULL);
	headers_are("https://h/a header=X-A:1", "X-A: 1");
	headers_are("https://h/a header=\"Authorization: Bearer a b\" "
	    "header=\"X-B:\t 2 \t\"", "Authorization: Bearer a b\nX-B: 2");
	/* A tab inside a value is the value's. */
	headers_are("https://h/a header=\"X-T: a\tb\"", "X-T: a\tb");
	headers_are("https://h/a header=X-Empty:", "X-Empty:");
	headers_are("https://h/a header=\"X-Empty:   \"", "X-Empty:");
	headers_are("https://h/a header=\"User-Agent: other\"",
	    "User-Agent: other");
	headers_are("https://h/a header=\"X-U: \xc3\xa9t\xc3\xa9\"",
	    "X-U: \xc3\xa9t\xc3\xa9");
	headers_are("https://h/a header=!#$%&'*+-.^_`|~09az:x",
	    "!#$%&'*+-.^_`|~09az: x");
}
END_TEST

START_TEST(test_headers_refused)
{
	static const char *const refused[] = {"Host", "host", "Connection",
	    "Keep-Alive", "Proxy-Connection", "TE", "te", "Trailer",
	    "Transfer-Encoding", "Upgrade", "Range", "If-Range",
	    "Content-Length", "EXPECT", "Proxy-Authorization"};
	char line[256];
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(line, sizeof(line), "https://h/a header=\"%s: x\"",
		    refused[i]);
		reject_s(line, "is not allowed");
	}
	reject_s("https://h/a header=\"Range: bytes=0-\"",
	    "header 'Range' is not allowed (fetchd sets it to resume)");
	reject_s("https://h/a header=\"Host: evil\"",
	    "header 'Host' is not allowed (it comes from the URL)");
	reject_s("https://h/a header=novalue", "must be \"Name: value\"");
	reject_s("https://h/a header=:x", "must be \"Name: value\"");
	reject_s("https://h/a header=\"X A: b\"", "header name is not a token "
	    "(byte 0x20 at column 2 of the header)");
	reject_s("https://h/a header=\"X(A): b\"", "(byte 0x28 at column 2");
	reject_s("https://h/a header=\"X\tA: b\"", "(byte 0x09 at column 2");
	reject_s("https://h/a header=\"X-A: 1\" header=\"x-a: 2\"",
	    "duplicate header 'x-a'");
	/* CR, LF and NUL never get past the line check. */
	reject("https://h/a header=\"X: a\rb\"", 28, "control byte 0x0d");
	reject("https://h/a header=\"X: a\nb\"", 28, "control byte 0x0a");
	reject("https://h/a header=\"X: a\0b\"", 28, "control byte 0x00");
}
END_TEST

START_TEST(test_headers_bounds)
{
	char line[JOB_LINE_MAX + 1], *big;
	size_t i, n;

	n = (size_t)snprintf(line, sizeof(line), "https://h/a");
	for (i = 0; i < JOB_HEADERS_MAX; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    " header=X-%zu:v", i);
	accept_s(line);
	snprintf(line + n, sizeof(line) - n, " header=X-last:v");
	reject_s(line, "more than 32 headers");
	big = malloc(JOB_HEADERS_BYTES + 64);
	ck_assert_ptr_nonnull(big);
	n = (size_t)snprintf(big, 64, "https://h/a header=X:");
	memset(big + n, 'v', JOB_HEADERS_BYTES - 3);
	big[n + JOB_HEADERS_BYTES - 3] = '\0';
	accept_s(big);      /* "X: " + 4093 bytes: 4096 */
	strcat(big, "v");
	reject_s(big, "headers longer than 4096 bytes");
	free(big);
}
END_TEST

START_TEST(test_entry_headers)
{
	struct job_entry e;
	char err[JOB_ERR_MAX];

	ck_assert_int_eq(job_entry_fields("https://h/a", "a", NULL, &e, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(job_entry_headers(NULL, &e, err, sizeof(err)), 0);
	ck_assert_ptr_null(e.headers);
	ck_assert_int_eq(job_entry_headers("X-A: 1\nX-B:", &e, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(e.headers, "X-A: 1\nX-B:");
	job_entry_free(&e);
	ck_assert_int_eq(job_entry_fields("https://h/a", "a", NULL, &e, err,
	    sizeof(err)), 1);
	ck_assert_int_eq(job_entry_headers("X-A: 1\rX-B: 2", &e, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "header 'X-A' has control byte 0x0d");
	ck_assert_int_eq(job_entry_headers("Host: x", &e, err,
	    sizeof(err)), -1);
	ck_assert_int_eq(job_entry_headers("X-A: 1\n\nX-B: 2", &e, err,
	    sizeof(err)), -1);
	job_entry_free(&e);
}
END_TEST

/* Every entry of text, with its headers, in order; then the end. */
static void
reader_headers(const char *text, const char *const *want, size_t n)
{
	struct job_reader *r;
	struct job_entry e;
	char err[JOB_ERR_MAX];
	int fd;

	fd = tmp_file(text, strlen(text));
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			ck_assert_msg(job_reader_next(r, &e, err,
			    sizeof(err)) == 1, "%s", err);
			if (want[i] == NULL)
				ck_assert_ptr_null(e.headers);
			else
				ck_assert_str_eq(e.headers, want[i]);
			job_entry_free(&e);
		}
		next_eof(r);
		ck_assert_int_eq(job_reader_rewind(r), 0);
	}
	job_reader_free(r);
	close(fd);
}

START_TEST(test_defaults)
{
	static const char text[] =
	    "# defaults first\n"
	    "@default header=\"Authorization: Bearer t\" header=X-A:1\n"
	    "  @default\theader=\"X-B: two words\"\n"
	    "https://h/1\n"
	    "https://h/2 header=\"x-a: mine\"\n"
	    "https://h/3 header=\"authorization: other\" header=X-C:3\n";
	static const char *const want[] = {
	    "Authorization: Bearer t\nX-A: 1\nX-B: two words",
	    "Authorization: Bearer t\nX-B: two words\nx-a: mine",
	    "X-A: 1\nX-B: two words\nauthorization: other\nX-C: 3",
	};

	reader_headers(text, want, 3);
}
END_TEST

START_TEST(test_defaults_refused)
{
	static const char text[] =
	    "@default header=X-A:1\n"
	    "@default header=x-a:2\n"
	    "@default out=a\n"
	    "@default sha256=00\n"
	    "@default bogus=1\n"
	    "@defaults header=X:1\n"
	    "@default\n"
	    "@default header=\"Host: x\"\n"
	    "@default header=\"X-Q: a\n"
	    "https://h/1\n"
	    "@default header=X-Late:1\n"
	    "https://h/2\n";
	struct job_reader *r;
	int fd;

	fd = tmp_file(text, strlen(text));
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 2: duplicate header 'x-a'");
	next_err(r, "line 3: field 'out' cannot be given by @default");
	next_err(r, "line 4: field 'sha256' cannot be given by @default");
	next_err(r, "line 5: field 'bogus' cannot be given by @default");
	next_err(r, "line 6: unknown directive '@defaults'");
	next_err(r, "line 7: @default gives no field");
	next_err(r, "line 8: header 'Host' is not allowed");
	next_err(r, "line 9: unterminated quoted value");
	next_ok(r, 10, "https://h/1");
	next_err(r, "line 11: @default must come before the first URL line");
	next_ok(r, 12, "https://h/2");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

/* @refresh DIR: the reader keeps the directory (checked as out= is),
 * once per job, before the first URL line; a rewind forgets it. */
START_TEST(test_refresh_directive)
{
	static const char text[] =
	    "@refresh ../up\n"
	    "@refresh a b\n"
	    "@refresh\n"
	    "@refresh d/x.validators\n"
	    "  @refresh mirror/debian\n"
	    "@refresh other\n"
	    "https://h/1\n"
	    "@refresh late\n";
	struct job_reader *r;
	int fd;

	fd = tmp_file(text, strlen(text));
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	ck_assert_ptr_null(job_reader_refresh(r));
	next_err(r, "line 1: @refresh's directory has a '..' component");
	next_err(r, "line 2: @refresh takes one directory");
	next_err(r, "line 3: @refresh names no directory");
	next_err(r, "line 4: @refresh's directory has a component ending in "
	    "\".validators\"");
	next_err(r, "line 6: @refresh is given twice");
	next_ok(r, 7, "https://h/1");
	ck_assert_str_eq(job_reader_refresh(r), "mirror/debian");
	next_err(r, "line 8: @refresh must come before the first URL line");
	next_eof(r);
	ck_assert_int_eq(job_reader_rewind(r), 0);
	ck_assert_ptr_null(job_reader_refresh(r));
	job_reader_free(r);
	close(fd);
}
END_TEST

/* @default segments=: every line without its own takes it; once per job;
 * bad values fail the directive's line. */
START_TEST(test_defaults_segments)
{
	static const char text[] =
	    "@default segments=0\n"
	    "@default segments=4 header=X-A:1\n"
	    "@default segments=2\n"
	    "https://h/1\n"
	    "https://h/2 segments=1\n";
	static const char plain[] = "https://h/1\n";
	struct job_reader *r;
	struct job_entry e;
	char err[JOB_ERR_MAX];
	int fd;

	fd = tmp_file(text, strlen(text));
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 1: segments must be a number from 1 to 16");
	next_err(r, "line 3: duplicate field 'segments'");
	ck_assert_int_eq(job_reader_next(r, &e, err, sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 4);
	ck_assert_str_eq(e.headers, "X-A: 1");
	job_entry_free(&e);
	ck_assert_int_eq(job_reader_next(r, &e, err, sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 1);
	job_entry_free(&e);
	next_eof(r);
	job_reader_free(r);
	close(fd);
	/* No @default: 0, the config decides. */
	fd = tmp_file(plain, strlen(plain));
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	ck_assert_int_eq(job_reader_next(r, &e, err, sizeof(err)), 1);
	ck_assert_int_eq(e.segments, 0);
	job_entry_free(&e);
	job_reader_free(r);
	close(fd);
}
END_TEST

START_TEST(test_defaults_bounds)
{
	char text[JOB_LINE_MAX * 2];
	size_t n = 0, i;
	struct job_reader *r;
	int fd;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "@default");
	for (i = 0; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " header=X-D%zu:v", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\nhttps://h/1");
	for (i = 0; i < 12; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " header=X-L%zu:v", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "\nhttps://h/2 header=X-D0:mine");
	for (i = 0; i < 13; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
		    " header=X-L%zu:v", i);
	n += (size_t)snprintf(text + n, sizeof(text) - n,
	    "\nhttps://h/3 header=X-L:v\n");
	fd = tmp_file(text, n);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 2, "https://h/1");       /* 20 + 12 */
	next_err(r, "line 3: more than 32 headers");  /* 19 + 14 */
	next_ok(r, 4, "https://h/3");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

static const char reader_text[] =
	"# job\n"
	"https://a/1\n"
	"ftp://a/2\n"
	"\n"
	"https://a/3 out=../x\n"
	"https://a/4\r\n"
	"  \r\n"
	"https://a/5\0x\n"
	"https://a/6";

START_TEST(test_reader_errors)
{
	struct job_reader *r;
	int fd;

	fd = tmp_file(reader_text, sizeof(reader_text) - 1);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 2, "https://a/1");
	next_err(r, "line 3: scheme 'ftp' not allowed");
	ck_assert_uint_eq(job_reader_lineno(r), 3);
	next_err(r, "line 5: out= has a '..' component");
	next_ok(r, 6, "https://a/4");
	next_err(r, "line 8: control byte 0x00 at column 12");
	/* The last line has no newline and still counts. */
	next_ok(r, 9, "https://a/6");
	next_eof(r);
	next_eof(r);

	/* A second pass sees the same lines. */
	ck_assert_int_eq(job_reader_rewind(r), 0);
	ck_assert_uint_eq(job_reader_lineno(r), 0);
	next_ok(r, 2, "https://a/1");
	next_err(r, "line 3:");
	next_err(r, "line 5:");
	next_ok(r, 6, "https://a/4");
	next_err(r, "line 8:");
	next_ok(r, 9, "https://a/6");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

/* The reader numbers a bad mirror= with its line. */
START_TEST(test_reader_mirror_line)
{
	static const char text[] = "https://a/1 mirror=https://b/1\n"
	    "\n"
	    "https://a/2 mirror=https://b/2 mirror=gopher://b/2\n"
	    "https://a/3 mirror=https://b/3\n";
	struct job_reader *r;
	int fd;

	fd = tmp_file(text, sizeof(text) - 1);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 1, "https://a/1");
	next_err(r, "line 3: mirror 2: scheme 'gopher' not allowed");
	next_ok(r, 4, "https://a/3");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

START_TEST(test_reader_pipe)
{
	struct job_reader *r;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], reader_text, sizeof(reader_text) - 1),
	    (ssize_t)sizeof(reader_text) - 1);
	close(p[1]);
	ck_assert_ptr_nonnull(r = job_reader_new(p[0]));
	next_ok(r, 2, "https://a/1");
	next_err(r, "line 3:");
	next_err(r, "line 5:");
	next_ok(r, 6, "https://a/4");
	next_err(r, "line 8:");
	next_ok(r, 9, "https://a/6");
	next_eof(r);
	/* A pipe cannot be rewound. */
	ck_assert_int_eq(job_reader_rewind(r), -1);
	job_reader_free(r);
	close(p[0]);
}
END_TEST

START_TEST(test_reader_long_line)
{
	struct job_reader *r;
	char *buf;
	size_t n;
	int fd;

	/* 10,000 bytes, then a good line, then one more. */
	buf = malloc(20000);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, "https://h/", 10);
	memset(buf + 10, 'a', 9990);
	n = 10000;
	n += (size_t)sprintf(buf + n, "\nhttps://h/next\nhttps://h/last\n");
	fd = tmp_file(buf, n);
	free(buf);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 1: line too long (max 8192 bytes)");
	ck_assert_uint_eq(job_reader_lineno(r), 1);
	next_ok(r, 2, "https://h/next");
	next_ok(r, 3, "https://h/last");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

START_TEST(test_reader_huge_line)
{
	struct job_reader *r;
	const size_t big = 5 * 1024 * 1024;
	char *buf;
	size_t n;
	int fd;

	/* One 5 MiB line between good ones: one error, nothing lost after. */
	buf = malloc(big + 64);
	ck_assert_ptr_nonnull(buf);
	n = (size_t)sprintf(buf, "https://h/first\n");
	memset(buf + n, 'z', big);
	n += big;
	n += (size_t)sprintf(buf + n, "\nhttps://h/after");
	fd = tmp_file(buf, n);
	free(buf);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 1, "https://h/first");
	next_err(r, "line 2: line too long");
	next_ok(r, 3, "https://h/after");
	next_eof(r);
	job_reader_free(r);
	close(fd);

	/* An over-long last line without a newline is one error too. */
	buf = malloc(100000);
	ck_assert_ptr_nonnull(buf);
	memset(buf, 'y', 100000);
	fd = tmp_file(buf, 100000);
	free(buf);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 1: line too long");
	next_eof(r);
	job_reader_free(r);
	close(fd);
}
END_TEST

/*
 * Exactly JOB_LINE_MAX bytes pass, ended by "\n", "\r\n" or nothing; one
 * more fails.
 */
START_TEST(test_reader_boundary)
{
	struct job_reader *r;
	char *u, *v, *buf;
	size_t n;
	int fd;

	u = long_url(JOB_LINE_MAX);
	v = long_url(JOB_LINE_MAX + 1);
	buf = malloc(6 * (JOB_LINE_MAX + 3));
	ck_assert_ptr_nonnull(buf);
	n = (size_t)sprintf(buf, "%s\n%s\r\n%s\n%s\r\n%s", u, u, v, v, u);
	fd = tmp_file(buf, n);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 1, u);
	next_ok(r, 2, u);
	next_err(r, "line 3: line too long");
	next_err(r, "line 4: line too long");
	next_ok(r, 5, u);
	next_eof(r);
	job_reader_free(r);
	close(fd);

	n = (size_t)sprintf(buf, "%s", v);
	fd = tmp_file(buf, n);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 1: line too long");
	next_eof(r);
	job_reader_free(r);
	close(fd);

	n = (size_t)sprintf(buf, "%s\r", u);
	fd = tmp_file(buf, n);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_ok(r, 1, u);
	next_eof(r);
	job_reader_free(r);
	close(fd);

	free(buf);
	free(u);
	free(v);
}
END_TEST

START_TEST(test_reader_read_error)
{
	struct job_reader *r;
	int fd;

	/* read(2) on a directory fails with EISDIR. */
	fd = open("/", O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	next_err(r, "line 1: read error");
	/* Sticky: every later call fails, and a rewind does not clear it. */
	next_err(r, "read error");
	ck_assert_int_eq(job_reader_rewind(r), -1);
	next_err(r, "read error");
	job_reader_free(r);
	close(fd);
	job_reader_free(NULL);
}
END_TEST

static volatile sig_atomic_t nsignals;

static void
on_usr1(int sig)
{
	nsignals++;
}

/*
 * Signals arriving while the reader blocks in read(2) on an empty pipe
 * interrupt it (no SA_RESTART); the reader must retry, not fail. The child
 * writes the job only after its last signal, so the parent is either still
 * waiting or about to; either way the outcome asserted is the same.
 */
START_TEST(test_reader_eintr)
{
	struct sigaction sa;
	struct job_reader *r;
	pid_t pid;
	int p[2], i, status;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		for (i = 0; i < 20; i++) {
			kill(getppid(), SIGUSR1);
			usleep(2000);
		}
		if (write(p[1], "https://h/x\nhttps://h/y", 23) != 23)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	ck_assert_ptr_nonnull(r = job_reader_new(p[0]));
	next_ok(r, 1, "https://h/x");
	next_ok(r, 2, "https://h/y");
	next_eof(r);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_gt(nsignals, 0);
	job_reader_free(r);
	close(p[0]);
}
END_TEST

/* 200,000 URLs streamed through one fixed buffer. */
START_TEST(test_reader_large)
{
	struct job_reader *r;
	struct job_entry e;
	char path[128], err[JOB_ERR_MAX];
	unsigned long count, i;
	FILE *f;
	int fd, rv;
	const unsigned long nurls = 200000;

	snprintf(path, sizeof(path), "%s/large", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (i = 0; i < nurls; i++) {
		if (i % 1000 == 0)
			fprintf(f, "# block %lu\n", i / 1000);
		fprintf(f, "https://host%lu.example/some/path/file%lu.bin"
		    " out=d%lu/file%lu.bin\n", i % 97, i, i % 13, i);
	}
	ck_assert_int_eq(fclose(f), 0);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);

	ck_assert_ptr_nonnull(r = job_reader_new(fd));
	count = 0;
	while ((rv = job_reader_next(r, &e, err, sizeof(err))) != 0) {
		ck_assert_msg(rv == 1, "%s", err);
		count++;
		job_entry_free(&e);
	}
	ck_assert_uint_eq(count, nurls);
	ck_assert_uint_eq(job_reader_lineno(r), nurls + nurls / 1000);
	job_reader_free(r);
	close(fd);
}
END_TEST

static Suite *
job_suite(void)
{
	Suite *s;
	TCase *tc;

	s = suite_create("job");

	tc = tcase_create("parse");
	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_blank_comment);
	tcase_add_test(tc, test_url_shapes);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, test_schemes);
	tcase_add_test(tc, test_bad_out);
	tcase_add_test(tc, test_out_valid);
	tcase_add_test(tc, test_entry_fields);
	tcase_add_test(tc, test_bad_sha);
	tcase_add_test(tc, test_bad_fields);
	tcase_add_test(tc, test_control_bytes);
	tcase_add_test(tc, test_segments_field);
	tcase_add_test(tc, test_mirrors);
	tcase_add_test(tc, test_bad_mirrors);
	tcase_add_test(tc, test_no_secret_in_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("name");
	tcase_add_test(tc, test_name_basic);
	tcase_add_test(tc, test_name_hostile);
	tcase_add_test(tc, test_name_long);
	suite_add_tcase(s, tc);

	tc = tcase_create("reader");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_reader_errors);
	tcase_add_test(tc, test_reader_mirror_line);
	tcase_add_test(tc, test_reader_pipe);
	tcase_add_test(tc, test_reader_long_line);
	tcase_add_test(tc, test_reader_huge_line);
	tcase_add_test(tc, test_reader_boundary);
	tcase_add_test(tc, test_reader_read_error);
	tcase_add_test(tc, test_reader_eintr);
	suite_add_tcase(s, tc);

	tc = tcase_create("headers");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_quoting);
	tcase_add_test(tc, test_headers);
	tcase_add_test(tc, test_headers_refused);
	tcase_add_test(tc, test_headers_bounds);
	tcase_add_test(tc, test_entry_headers);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_defaults_refused);
	tcase_add_test(tc, test_defaults_segments);
	tcase_add_test(tc, test_refresh_directive);
	tcase_add_test(tc, test_defaults_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("large");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	/* Generous for valgrind; natively it takes well under a second. */
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_reader_large);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return testlib_run(job_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
