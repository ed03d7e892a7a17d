/*
 * testlib.h: what the Check programs share: a monotonic clock and a pause,
 * scratch directories under /tmp, running a suite, and tests/httpd.py on
 * loopback (its port, its request log).
 */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <stddef.h>

#include <check.h>
#include <jansson.h>

/* Seconds on CLOCK_MONOTONIC. */
double	testlib_now(void);
/* FETCHD_E2E_TIMEOUT_SCALE (default 1): what every upper time bound is
 * multiplied by on slow hosts and sanitizer builds. */
double	testlib_scale(void);
/* Sleep ms milliseconds, through EINTR. */
void	testlib_pause_ms(long ms);

/* Make /tmp/<name>.XXXXXX into buf; the test fails if it cannot. */
void	testlib_tmpdir(char *buf, size_t len, const char *name);
/* Remove path and all below it; -1 if anything could not be removed. */
int	testlib_rm_rf(const char *path);

/* Run every test of s (the runner frees it); the number that failed. */
int	testlib_run(Suite *s);

/*
 * main() of a program whose tests talk HTTP: no proxy from the environment,
 * no SIGPIPE, fetch_global_init(), tests/httpd.py started in a child (its
 * port and log file in /tmp/<name>_srv.*; the program exits if it does not
 * come up), s run, the server stopped. The exit status.
 */
int	testlib_run_with_server(Suite *s, const char *name);
/* The port the server listens on, on 127.0.0.1. */
int	testlib_server_port(void);

/*
 * Lines of the server's request log (one JSON object each) for which
 * match() returns non-zero, so far; -1 if the log cannot be opened.
 */
int	testlib_server_log_count(int (*match)(json_t *o, const void *arg),
    const void *arg);

#endif /* TESTLIB_H */
