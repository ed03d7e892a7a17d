/*
 * check_cidr.c: unit tests for cidr.c: the text of a range and of a list,
 * what is refused and why, and matching socket addresses and text of both
 * families, IPv4-mapped IPv6 included.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "testlib.h"

static int
match4(const struct cidr_list *l, const char *a)
{
	struct sockaddr_in in;

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, a, &in.sin_addr), 1);
	return cidr_list_match(l, (struct sockaddr *)&in);
}

static int
match6(const struct cidr_list *l, const char *a)
{
	struct sockaddr_in6 in6;

	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, a, &in6.sin6_addr), 1);
	return cidr_list_match(l, (struct sockaddr *)&in6);
}

static void
refused(const char *text, const char *want)
{
	struct cidr_list l;
	char err[CIDR_ERR_MAX] = "";

	ck_assert_msg(cidr_list_parse(text, &l, err, sizeof(err)) == -1,
	    "accepted \"%s\"", text);
	ck_assert_msg(strstr(err, want) != NULL, "\"%s\": got \"%s\"", text,
	    err);
}

START_TEST(test_parse_one)
{
	struct cidr c;
	char err[CIDR_ERR_MAX];

	ck_assert_int_eq(cidr_parse("10.0.0.0/8", &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.len, 8);
	ck_assert_int_eq(cidr_parse("169.254.169.254", &c, err, sizeof(err)),
	    0);
	ck_assert_uint_eq(c.len, 32);
	ck_assert_int_eq(cidr_parse("fc00::/7", &c, err, sizeof(err)), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.len, 7);
	ck_assert_int_eq(cidr_parse("::1", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.len, 128);
	ck_assert_int_eq(cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.len, 0);
	/* IPv4-mapped: folded into IPv4. */
	ck_assert_int_eq(cidr_parse("::ffff:10.0.0.0/104", &c, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.len, 8);
}
END_TEST

START_TEST(test_parse_refused)
{
	refused("10.0.0.1/8", "bits set past the prefix length");
	refused("10.0.0.0/33", "prefix length must be 0..32");
	refused("::/129", "prefix length must be 0..128");
	refused("10.0.0.0/", "prefix length");
	refused("10.0.0.0/+8", "prefix length");
	refused("10.0.0.0/08", "prefix length");
	refused("10.0.0.0/8x", "prefix length");
	refused("example.org", "not an IPv4 or IPv6 address");
	refused("10.0.0", "not an IPv4 or IPv6 address");
	refused("127.0.0.0/8, 1.2.3.4.5", "\"1.2.3.4.5\"");
	refused("fe80::1%eth0", "not an IPv4 or IPv6 address");
	refused("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee",
	    "too long");
}
END_TEST

START_TEST(test_list)
{
	struct cidr_list l;
	char err[CIDR_ERR_MAX], big[CIDR_LIST_MAX * 16 + 16];
	size_t i;

	ck_assert_int_eq(cidr_list_parse("", &l, err, sizeof(err)), 0);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_int_eq(match4(&l, "127.0.0.1"), 0);
	ck_assert_int_eq(cidr_list_parse(" 127.0.0.0/8,::1 ,\t10.0.0.0/8 ", &l,
	    err, sizeof(err)), 0);
	ck_assert_uint_eq(l.n, 3);
	big[0] = '\0';
	for (i = 0; i < CIDR_LIST_MAX; i++)
		strcat(big, "10.0.0.0/8 ");
	ck_assert_int_eq(cidr_list_parse(big, &l, err, sizeof(err)), 0);
	strcat(big, "::1");
	refused(big, "more than 64 ranges");
}
END_TEST

START_TEST(test_match)
{
	struct cidr_list l;
	char err[CIDR_ERR_MAX];

	ck_assert_int_eq(cidr_list_parse("127.0.0.1/32 10.0.0.0/8 "
	    "172.16.0.0/12 169.254.0.0/16 ::1/128 fc00::/7 fe80::/10", &l,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(match4(&l, "127.0.0.1"), 1);
	ck_assert_int_eq(match4(&l, "127.0.0.2"), 0);
	ck_assert_int_eq(match4(&l, "10.255.1.2"), 1);
	ck_assert_int_eq(match4(&l, "11.0.0.1"), 0);
	ck_assert_int_eq(match4(&l, "172.31.255.255"), 1);
	ck_assert_int_eq(match4(&l, "172.32.0.0"), 0);
	ck_assert_int_eq(match4(&l, "169.254.169.254"), 1);
	ck_assert_int_eq(match6(&l, "::1"), 1);
	ck_assert_int_eq(match6(&l, "::2"), 0);
	ck_assert_int_eq(match6(&l, "fd12:3456::1"), 1);
	ck_assert_int_eq(match6(&l, "fe80::1"), 1);
	ck_assert_int_eq(match6(&l, "2001:db8::1"), 0);
	/* An IPv4 address reached over IPv6 is still that address. */
	ck_assert_int_eq(match6(&l, "::ffff:127.0.0.1"), 1);
	ck_assert_int_eq(match6(&l, "::ffff:127.0.0.2"), 0);
	ck_assert_int_eq(cidr_list_match_text(&l, "10.1.1.1"), 1);
	ck_assert_int_eq(cidr_list_match_text(&l, "::ffff:10.1.1.1"), 1);
	ck_assert_int_eq(cidr_list_match_text(&l, "8.8.8.8"), 0);
	ck_assert_int_eq(cidr_list_match_text(&l, "not an address"), 0);
	ck_assert_int_eq(cidr_list_match_text(&l, "10.0.0.0/8"), 0);
	/* Everything. */
	ck_assert_int_eq(cidr_list_parse("0.0.0.0/0 ::/0", &l, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(match4(&l, "8.8.8.8"), 1);
	ck_assert_int_eq(match6(&l, "2001:db8::1"), 1);
	/* Odd prefix lengths cut inside a byte. */
	ck_assert_int_eq(cidr_list_parse("192.168.2.0/23", &l, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(match4(&l, "192.168.3.9"), 1);
	ck_assert_int_eq(match4(&l, "192.168.4.0"), 0);
}
END_TEST

static Suite *
cidr_suite(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("cidr");

	tcase_add_test(tc, test_parse_one);
	tcase_add_test(tc, test_parse_refused);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_match);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(cidr_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
