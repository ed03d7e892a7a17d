/*
 * worker.c: the process engine's worker, a program of its own inside the
 * fetchd binary. It runs one transfer at a time with fetch_run() on one
 * reused easy handle (so it keeps its own connection cache), taking
 * transfers from the parent and sending back progress and results over the
 * socket (messages in wire.h).
 *
 * How it is entered: the parent execs its own running image with the
 * hidden argument "--worker" and main() hands over to worker_main() before
 * anything else (worker.h). Not a separate fetchd-worker binary: exec'ing
 * /proc/self/exe gives the very image the daemon runs, even after a
 * package upgrade replaced or removed the file on disk, so parent and
 * worker always speak the same protocol; and the package, the unit's
 * sandbox and `make install` have no second program to carry. Not a
 * constructor either: only a program that asks for it becomes a worker.
 *
 * Two threads. The main thread runs transfers. A reader thread owns the
 * socket's reading side: it takes TRANSFER messages into a one-slot
 * mailbox, sets the running transfer's cancelled flag on CANCEL or when the
 * parent goes away (EOF), and sends PROGRESS every PROGRESS_MS while a
 * transfer runs. Sends from the two threads are whole messages under one
 * lock, so a RESULT is never followed by a stale PROGRESS.
 *
 * A malformed message or a protocol breach ends the worker (exit 2): the
 * parent sees the socket close, and retries the transfer in a new worker.
 * SIGINT and SIGHUP are ignored (a terminal's ^C is for fetchd, which
 * drains); SIGTERM, the socket closing or fetchd's death end it.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "log.h"
#include "util.h"
#include "wire.h"
#include "worker.h"

#define PROGRESS_MS 250 /* progress report interval */
#define READER_STACK_SIZE (256 * 1024)

struct worker {
	int fd;
	pthread_mutex_t lock; /* guards job, reported, eof and sends */
	pthread_cond_t cond;
	struct transfer *job; /* received and not yet answered */
	uint64_t reported;    /* progress last sent for job */
	int eof;	      /* the parent is gone: finish and exit */
	unsigned char *rbuf;  /* the reader thread's, WIRE_MSG_MAX */
};

int
worker_cmdline(int argc, char *const argv[], int *fd)
{
	char *end;
	long n;

	if (argc != 3 || strcmp(argv[1], WORKER_ARG) != 0)
		return 0;
	errno = 0;
	n = strtol(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || end == argv[2] || n < 0 ||
	    n > INT_MAX)
		*fd = -1;
	else
		*fd = (int)n;
	return 1;
}

static void __attribute__((noreturn)) worker_fatal(const char *why)
{
	log_warnx("worker %ld: %s", (long)getpid(), why);
	_exit(2);
}

/* A whole message, blocking; the caller holds the lock or is alone. */
static int
worker_send(struct worker *w, const struct wire *m)
{
	ssize_t n;

	do
		n = send(w->fd, m->buf, m->len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	return n == (ssize_t)m->len ? 0 : -1;
}

static void
worker_progress(struct worker *w)
{
	unsigned char buf[32];
	struct wire m;
	uint64_t p;

	pthread_mutex_lock(&w->lock);
	if (w->job != NULL && !w->eof &&
	    (p = __atomic_load_n(&w->job->progress, __ATOMIC_RELAXED)) !=
		w->reported) {
		wire_init(&m, buf, sizeof(buf));
		if (wire_put_progress(&m, w->job->id, p) == -1)
			worker_fatal("progress does not fit a message");
		if (worker_send(w, &m) == 0)
			w->reported = p;
	}
	pthread_mutex_unlock(&w->lock);
}

static void
worker_eof(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->eof = 1;
	if (w->job != NULL)
		__atomic_store_n(&w->job->cancelled, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* A TRANSFER into the mailbox, which must be empty. */
static void
worker_take(struct worker *w, struct wire *m, uint64_t id)
{
	struct transfer *t;

	if ((t = wire_get_transfer(m, id)) == NULL)
		worker_fatal(
		    errno == ENOMEM ? "out of memory" : "malformed transfer");
	pthread_mutex_lock(&w->lock);
	if (w->job != NULL)
		worker_fatal("a transfer while busy");
	w->job = t;
	w->reported = 0;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* One message from the parent. 1 when it brought a new transfer. */
static int
worker_message(struct worker *w, size_t len)
{
	enum wire_type type;
	struct wire m;
	uint64_t id;

	if (wire_open(&m, w->rbuf, len, &type, &id) == -1)
		worker_fatal("protocol version mismatch or unknown message");
	switch (type) {
	case WIRE_TRANSFER:
		worker_take(w, &m, id);
		return 1;
	case WIRE_CANCEL:
		if (wire_get_cancel(&m) == -1)
			worker_fatal("malformed cancel");
		pthread_mutex_lock(&w->lock);
		if (w->job != NULL && w->job->id == id)
			__atomic_store_n(
			    &w->job->cancelled, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&w->lock);
		return 0;
	default:
		worker_fatal("a message only a worker sends");
	}
}

/* Milliseconds poll() may wait: until the next report while busy. */
static int
worker_poll_timeout(struct worker *w, double next)
{
	double now;
	int busy;

	pthread_mutex_lock(&w->lock);
	busy = w->job != NULL;
	pthread_mutex_unlock(&w->lock);
	if (!busy)
		return -1;
	now = util_mono();
	return now >= next ? 0 : (int)((next - now) * 1000) + 1;
}

/*
 * The reader thread: the only one reading the socket. Between messages,
 * while a transfer runs, it reports progress every PROGRESS_MS.
 */
static void *
worker_reader(void *arg)
{
	struct worker *w = arg;
	struct pollfd pfd;
	double next = 0, now;
	ssize_t n;
	int timeout, r;

	for (;;) {
		timeout = worker_poll_timeout(w, next);
		pfd.fd = w->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		r = poll(&pfd, 1, timeout);
		if (r == -1 && errno != EINTR)
			break;
		if (timeout != -1 && (now = util_mono()) >= next) {
			worker_progress(w);
			next = now + PROGRESS_MS / 1000.0;
		}
		if (r <= 0)
			continue;
		n = recv(w->fd, w->rbuf, WIRE_MSG_MAX, MSG_TRUNC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if ((size_t)n > WIRE_MSG_MAX)
			worker_fatal("message too long");
		if (worker_message(w, (size_t)n) == 1)
			next = util_mono() + PROGRESS_MS / 1000.0;
	}
	worker_eof(w);
	return NULL;
}

static void
worker_result(struct worker *w, struct transfer *t)
{
	unsigned char buf[512 + WIRE_PATH_MAX];
	struct wire m;

	t->error[sizeof(t->error) - 1] = '\0';
	wire_init(&m, buf, sizeof(buf));
	if (wire_put_result(&m, t) == -1)
		worker_fatal("result does not fit a message");
	pthread_mutex_lock(&w->lock);
	if (!w->eof && worker_send(w, &m) == -1)
		w->eof = 1;
	w->job = NULL;
	pthread_mutex_unlock(&w->lock);
}

static void
worker_hello(struct worker *w)
{
	unsigned char buf[32];
	struct wire m;

	wire_init(&m, buf, sizeof(buf));
	if (wire_put_hello(&m, (uint64_t)getpid()) == -1)
		worker_fatal("hello does not fit a message");
	pthread_mutex_lock(&w->lock);
	if (worker_send(w, &m) == -1)
		w->eof = 1;
	pthread_mutex_unlock(&w->lock);
}

/* The process-wide set-up: the parent controls our life (its socket
 * closing, SIGTERM or its death); a terminal's ^C or hangup is for the
 * parent alone. */
static void
worker_setup_process(int fd)
{
	log_init("fetchd worker", LOG_LVL_WARN);
	prctl(PR_SET_NAME, "fetchd-worker");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	if (fetch_global_init() == -1)
		worker_fatal("libcurl initialisation failed");
}

static void
worker_start_reader(struct worker *w, pthread_t *reader)
{
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, READER_STACK_SIZE);
	if (pthread_create(reader, &attr, worker_reader, w) != 0)
		worker_fatal("cannot start the reader thread");
	pthread_attr_destroy(&attr);
}

/* Run what the mailbox brings until the parent is gone. */
static void
worker_loop(struct worker *w, CURL *easy)
{
	struct transfer *t;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (w->job == NULL && !w->eof)
			pthread_cond_wait(&w->cond, &w->lock);
		t = w->job;
		pthread_mutex_unlock(&w->lock);
		if (t == NULL)
			return;
		fetch_run(t, easy, NULL);
		worker_result(w, t);
		fetch_transfer_free(t);
	}
}

int
worker_main(int fd)
{
	struct worker w;
	struct stat st;
	pthread_t reader;
	CURL *easy;

	if (fd < 0 || fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
		    "fetchd: " WORKER_ARG " is started by fetchd "
		    "itself (workers.model = process)\n");
		return 2;
	}
	worker_setup_process(fd);
	memset(&w, 0, sizeof(w));
	w.fd = fd;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	if ((w.rbuf = malloc(WIRE_MSG_MAX)) == NULL)
		worker_fatal("out of memory");
	if ((easy = curl_easy_init()) == NULL)
		worker_fatal("curl_easy_init failed");
	worker_start_reader(&w, &reader);
	worker_hello(&w);
	worker_loop(&w, easy);

	/* EOF: the reader has ended or is about to (it saw EOF first). */
	shutdown(w.fd, SHUT_RDWR);
	pthread_join(reader, NULL);
	curl_easy_cleanup(easy);
	fetch_global_cleanup();
	close(w.fd);
	free(w.rbuf);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return 0;
}
