/*
 * testlib.c: the helpers the Check programs share (testlib.h). It owns one
 * thing of its own: the tests/httpd.py child a program may start, with the
 * scratch directory holding its port file and request log.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "testlib.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static pid_t srv_pid = -1, main_pid;
static int srv_port;
static char srv_dir[128], srv_log[160];
static int rm_failed;

double
testlib_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double
testlib_scale(void)
{
	const char *v = getenv("FETCHD_E2E_TIMEOUT_SCALE");
	double x = v != NULL ? atof(v) : 1;

	return x >= 1 ? x : 1;
}

void
testlib_pause_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

void
testlib_tmpdir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/%s.XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* Go on past an entry that will not go, so that the rest is removed. */
static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (remove(path) == -1)
		rm_failed = 1;
	return 0;
}

int
testlib_rm_rf(const char *path)
{
	rm_failed = 0;
	if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0 || rm_failed)
		return -1;
	return 0;
}

int
testlib_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

static void
net_setup(void)
{
	/* Not inherited from whoever runs the tests: only params.proxy. */
	unsetenv("http_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("https_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	signal(SIGPIPE, SIG_IGN);
}

/*
 * Check forks a child per test, and the process engine's workers are
 * children too: only the process that started the server may stop it.
 */
static void
server_stop(void)
{
	double deadline;
	int status;

	if (srv_pid <= 0 || getpid() != main_pid)
		return;
	kill(srv_pid, SIGTERM);
	deadline = testlib_now() + 5;
	while (waitpid(srv_pid, &status, WNOHANG) == 0) {
		if (testlib_now() > deadline) {
			kill(srv_pid, SIGKILL);
			waitpid(srv_pid, &status, 0);
			break;
		}
		testlib_pause_ms(20);
	}
	srv_pid = -1;
	testlib_rm_rf(srv_dir);
}

static void
server_start(const char *name)
{
	const char *py = getenv("PYTHON3"), *src = getenv("TESTS_SRCDIR");
	char script[1024], portfile[160], buf[32];
	double deadline;
	FILE *f;
	int status;

	if (py == NULL || *py == '\0')
		py = "python3";
	if (src == NULL || *src == '\0')
		src = SRCDIR "/tests";
	snprintf(script, sizeof(script), "%s/httpd.py", src);
	snprintf(srv_dir, sizeof(srv_dir), "/tmp/%s_srv.XXXXXX", name);
	if (mkdtemp(srv_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(portfile, sizeof(portfile), "%s/port", srv_dir);
	snprintf(srv_log, sizeof(srv_log), "%s/log", srv_dir);
	main_pid = getpid();
	if ((srv_pid = fork()) == -1) {
		perror("fork");
		exit(1);
	}
	if (srv_pid == 0) {
		execlp(py, py, script, "--port-file", portfile, "--log",
		    srv_log, (char *)NULL);
		perror(py);
		_exit(127);
	}
	atexit(server_stop);
	deadline = testlib_now() + 20;
	for (;;) {
		if ((f = fopen(portfile, "r")) != NULL) {
			if (fgets(buf, sizeof(buf), f) != NULL)
				srv_port = atoi(buf);
			fclose(f);
			if (srv_port > 0)
				break;
		}
		if (waitpid(srv_pid, &status, WNOHANG) == srv_pid) {
			fprintf(stderr, "%s exited before listening\n", script);
			srv_pid = -1;
			exit(1);
		}
		if (testlib_now() > deadline) {
			fprintf(stderr, "%s did not start\n", script);
			exit(1);
		}
		testlib_pause_ms(20);
	}
}

int
testlib_run_with_server(Suite *s, const char *name)
{
	int failed;

	net_setup();
	if (fetch_global_init() == -1) {
		fprintf(stderr, "fetch_global_init failed\n");
		return 1;
	}
	server_start(name);
	failed = testlib_run(s);
	server_stop();
	fetch_global_cleanup();
	return failed == 0 ? 0 : 1;
}

int
testlib_server_port(void)
{
	return srv_port;
}

int
testlib_server_log_count(int (*match)(json_t *o, const void *arg),
    const void *arg)
{
	char line[8192];
	FILE *f;
	int n = 0;

	if ((f = fopen(srv_log, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *o = json_loads(line, 0, NULL);

		if (o == NULL)
			continue;
		if (match(o, arg))
			n++;
		json_decref(o);
	}
	fclose(f);
	return n;
}
