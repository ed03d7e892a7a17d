/*
 * check_web.c: unit tests for web.c's pure part: the Content-Security-
 * Policy made from a page's inline blocks (their sha256, nothing inline
 * without one), and the embedded status page itself. The routes, headers
 * and tables are tested over real HTTP by e2e_web.py.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "web.h"

#define H_A "'sha256-ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs='"
#define H_X "'sha256-03jAmr2rYzY2g8yeHqeQY8HHCKsHFGpYa4WklgyYdMk='"
#define H_EMPTY "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
#define REST "; connect-src 'self'; img-src 'self' data:; base-uri 'none';" \
	" form-action 'none'; frame-ancestors 'none'"

START_TEST(test_csp_hashes)
{
	char csp[WEB_CSP_MAX];

	ck_assert_int_eq(web_csp("<html><style>a</style><p>x</p>"
	    "<script>x = 1;</script></html>", csp, sizeof(csp)), 0);
	ck_assert_str_eq(csp, "default-src 'none'; script-src " H_X
	    "; style-src " H_A REST);
	/* Two blocks of a kind, an empty one: each its own hash. */
	ck_assert_int_eq(web_csp("<script>a</script><script></script>", csp,
	    sizeof(csp)), 0);
	ck_assert_str_eq(csp, "default-src 'none'; script-src " H_A " "
	    H_EMPTY "; style-src 'none'" REST);
	/* No inline block: nothing inline allowed. */
	ck_assert_int_eq(web_csp("<p>plain</p>", csp, sizeof(csp)), 0);
	ck_assert_str_eq(csp, "default-src 'none'; script-src 'none'; "
	    "style-src 'none'" REST);
	ck_assert_ptr_null(strstr(csp, "unsafe"));
}
END_TEST

START_TEST(test_csp_refused)
{
	char csp[WEB_CSP_MAX], small[64];

	ck_assert_int_eq(web_csp("<script>x = 1;", csp, sizeof(csp)), -1);
	ck_assert_int_eq(web_csp("<style>a</style><style>", csp,
	    sizeof(csp)), -1);
	ck_assert_int_eq(web_csp("<style>a</style><style>a</style>"
	    "<style>a</style><style>a</style><style>a</style>", csp,
	    sizeof(csp)), -1);
	ck_assert_int_eq(web_csp("<script>a</script>", small, sizeof(small)),
	    -1);
	ck_assert_int_eq(web_csp("", small, 8), -1);
}
END_TEST

/* The page built in: ASCII, one style and one script block, which the
 * policy allows, and no other way to run or load anything. */
START_TEST(test_page)
{
	char csp[WEB_CSP_MAX];
	const char *p;
	size_t n = 0;

	for (p = web_page; *p != '\0'; p++)
		ck_assert_int_lt((unsigned char)*p, 0x80);
	ck_assert_int_eq(web_csp(web_page, csp, sizeof(csp)), 0);
	for (p = csp; (p = strstr(p, "'sha256-")) != NULL; p++)
		n++;
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(web_page, "<title>fetchd status</title>"));
	ck_assert_ptr_null(strstr(web_page, "<script src"));
	ck_assert_ptr_null(strstr(web_page, " style=\""));
	ck_assert_ptr_null(strstr(web_page, "<link"));
	ck_assert_ptr_null(strstr(web_page, "https://"));
}
END_TEST

static Suite *
web_suite(void)
{
	Suite *s = suite_create("web");
	TCase *tc = tcase_create("web");

	tcase_add_test(tc, test_csp_hashes);
	tcase_add_test(tc, test_csp_refused);
	tcase_add_test(tc, test_page);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return testlib_run(web_suite()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
