/*
 * engine_process.c: the forked-children model, parent side. One worker
 * process per engine_workers(), started when the engine starts; each runs
 * a blocking fetch_run() loop (worker.c). The parent talks to each child
 * over a SOCK_SEQPACKET socketpair in wire.h's messages: it sends a
 * transfer, the child reports progress and then the result. Everything
 * here runs on the main loop; completions are handed back through
 * engine_complete() from a deferred event, never from inside submit() or
 * cancel().
 *
 * A child is fork() followed at once by exec of our own binary with
 * "--worker 3" (worker.h), through a descriptor of /proc/self/exe opened
 * when the engine starts (fexecve): it is the very image running, even
 * after a package upgrade replaced or removed the file, so parent and
 * children always speak the same protocol. The exec matters: the parent
 * may be multithreaded (the threads engine still draining during a live
 * switch) and a forked copy of such a process can inherit locks held by
 * other threads (libcurl, OpenSSL); a fresh image starts clean. Between
 * fork and exec the child only makes async-signal-safe calls: parent-death
 * signal, default signal dispositions, the socket onto fd 3, every other
 * descriptor above 2 closed. So a child holds fds 0-3 and what libcurl
 * opens, never the spool, the control socket or the inotify descriptor.
 * The program's main() sees the worker's command line and runs
 * worker_main().
 *
 * A child that dies (crash, kill -9) shows up as EOF on its socket and as
 * SIGCHLD (a libevent signal event). Only our own pids are ever waited for,
 * one by one. Its transfer comes back as FETCH_RETRY so the scheduler tries
 * it again, resuming from the .part file; the slot gets a new child, at most
 * RESTART_BURST restarts per second, the rest delayed by a timer. A child
 * that sends a malformed message is killed the same way.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "util.h"
#include "wire.h"
#include "worker.h"

#define PROC_FD 3                       /* the socket, in the child */
#define PROC_EXE_FD 4                   /* our binary, in the child (cloexec) */
#define PROC_EXE "/proc/self/exe"
#define PROC_STR_(n) #n
#define PROC_STR(n) PROC_STR_(n)        /* PROC_FD as the worker's argument */

#define START_WAIT_MS 10000             /* start(): every child says hello */
#define STOP_CANCEL_MS 5000             /* stop(): results after CANCEL */
#define STOP_EXIT_MS 2000               /* stop(): exit after EOF */
#define DEAD_KILL_MS 2000               /* closed but not exited: SIGKILL */
#define TICK_MS 100                     /* reaping and restart timer */
#define RESTART_BURST 10                /* restarts allowed ... */
#define RESTART_WINDOW 1.0              /* ... per this many seconds */

enum child_state {
	CHILD_NONE = 0,         /* no process: waiting to be started */
	CHILD_STARTING,         /* forked, no HELLO yet */
	CHILD_IDLE,
	CHILD_BUSY,
	CHILD_DEAD,             /* socket closed, not yet reaped */
};

struct procs;

struct child {
	struct procs *ps;
	long slot;
	enum child_state state;
	pid_t pid;              /* -1 when none */
	int fd;                 /* our end of the socketpair, -1 when closed */
	struct event *ev;
	struct transfer *t;     /* running here (also while DEAD) */
	int closing;            /* we closed it on purpose: no restart */
	double dead_since;
	int killed;             /* SIGKILL sent */
	char why[64];           /* why we killed it, "" when we did not */
	TAILQ_ENTRY(child) idle_entry;
};

TAILQ_HEAD(child_list, child);

struct procs {
	struct engine *engine;
	struct event_base *base;
	struct child *children;
	long nchildren;                 /* slots in children: 0 until they are
	                                   allocated, then engine_workers() */
	struct child_list idle;
	struct transfer_list queue;     /* submitted, no child free yet */
	struct transfer_list done;      /* to hand back from ev_done */
	long nbusy, restarts;
	int stopping;
	int dirty;                      /* procs_maintain() has work */
	int storm;                      /* restarts are being held back */
	double restart_times[RESTART_BURST];
	int restart_next;
	int maxfd;                      /* highest fd a child may inherit */
	int exefd;                      /* PROC_EXE, for fexecve() */

	struct event *ev_sigchld;
	struct event *ev_timer;
	struct event *ev_done;
	unsigned char *rbuf, *sbuf;     /* WIRE_MSG_MAX each */
	struct pollfd *pfds;            /* stop() and start() waits */
	struct child **pmap;
};

static void child_read(struct child *);
static void procs_maintain(struct procs *);
static void procs_stop(struct engine *);

static void
set_result(struct transfer *t, enum fetch_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_result(struct transfer *t, enum fetch_outcome o, const char *fmt, ...)
{
	va_list ap;

	t->outcome = o;
	t->errkind = FERR_OTHER;
	va_start(ap, fmt);
	vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
}

/* t goes back to the main loop from ev_done, never from the caller. */
static void
procs_finish(struct procs *ps, struct transfer *t)
{
	t->engine_data = NULL;
	TAILQ_INSERT_TAIL(&ps->done, t, entry);
	if (ps->ev_done != NULL)
		event_active(ps->ev_done, EV_READ, 0);
}

/* A queued transfer goes back unstarted, as a retry. */
static void
procs_unqueue(struct procs *ps, struct transfer *t)
{
	TAILQ_REMOVE(&ps->queue, t, entry);
	set_result(t, FETCH_RETRY, "cancelled");
	procs_finish(ps, t);
}

/*
 * The child side of fork(): async-signal-safe calls only, then exec. The
 * signal mask the parent blocked everything with is still in force, so no
 * handler of the parent's (libevent's, writing to the parent's socket) can
 * run here before the dispositions are back to default.
 */
static void __attribute__((noreturn))
child_exec(int sock, int exe, pid_t ppid, int maxfd)
{
	static char arg0[] = "fetchd: worker", arg1[] = WORKER_ARG,
	    arg2[] = PROC_STR(PROC_FD),
	    exepath[] = "/proc/self/fd/" PROC_STR(PROC_EXE_FD);
	char *argv[] = { arg0, arg1, arg2, NULL };
	struct sigaction sa;
	sigset_t none;
	int sig, i;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		_exit(127);
	/* The parent died before that took effect: no one would kill us. */
	if (getppid() != ppid)
		_exit(127);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	/* Either may sit on 3 or 4 now: move both above first. The socket
	 * ends up on 3 without close-on-exec, the binary on 4 with it. The
	 * descriptors are moved and closed by raw system calls: the parent
	 * may have threads (an engine switch), and no library wrapper or
	 * sanitizer interceptor, with its view of their descriptors, may run
	 * between fork and exec. */
	if ((sock = (int)syscall(SYS_fcntl, sock, F_DUPFD_CLOEXEC,
	    PROC_EXE_FD + 1)) == -1 ||
	    (exe = (int)syscall(SYS_fcntl, exe, F_DUPFD_CLOEXEC,
	    PROC_EXE_FD + 1)) == -1 ||
	    syscall(SYS_dup3, sock, PROC_FD, 0) == -1 ||
	    syscall(SYS_dup3, exe, PROC_EXE_FD, O_CLOEXEC) == -1)
		_exit(127);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, PROC_EXE_FD + 1, ~0U, 0) == -1)
#endif
		for (i = PROC_EXE_FD + 1; i <= maxfd; i++)
			(void)syscall(SYS_close, i);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	fexecve(PROC_EXE_FD, argv, environ);
	/* execveat() refused (a seccomp filter): the same file by path. */
	execve(exepath, argv, environ);
	_exit(127);
}

static void
child_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	struct procs *ps = c->ps;

	child_read(c);
	procs_maintain(ps);
}

/* Fork and exec a worker into slot c. 0, or -1 (logged). */
static int
child_spawn(struct procs *ps, struct child *c)
{
	sigset_t all, old;
	pid_t pid, self = getpid();
	int sv[2], err, fl;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("process engine: socketpair");
		return -1;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(sv[1], ps->exefd, self, ps->maxfd);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid == -1) {
		errno = err;
		log_warn("process engine: fork");
		close(sv[0]);
		return -1;
	}
	c->pid = pid;
	c->fd = sv[0];
	c->state = CHILD_STARTING;
	c->t = NULL;
	c->closing = 0;
	c->killed = 0;
	c->why[0] = '\0';
	if ((fl = fcntl(c->fd, F_GETFL)) == -1 ||
	    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    (c->ev = event_new(ps->base, c->fd, EV_READ | EV_PERSIST,
	    child_read_cb, c)) == NULL || event_add(c->ev, NULL) == -1) {
		log_warnx("process engine: cannot watch worker %ld", c->slot);
		kill(pid, SIGKILL);
		if (c->ev != NULL)
			event_free(c->ev);
		c->ev = NULL;
		close(c->fd);
		c->fd = -1;
		c->state = CHILD_DEAD;
		c->dead_since = util_mono();
		c->killed = 1;
		snprintf(c->why, sizeof(c->why), "no event for its socket");
		ps->dirty = 1;
		return -1;
	}
	log_debug("process engine: worker %ld is pid %ld", c->slot, (long)pid);
	return 0;
}

/* Close our end: the child sees EOF and exits. Its transfer, if any, stays
 * with it until it is reaped. */
static void
child_close(struct child *c)
{
	struct procs *ps = c->ps;

	if (c->state == CHILD_IDLE)
		TAILQ_REMOVE(&ps->idle, c, idle_entry);
	if (c->ev != NULL)
		event_free(c->ev);
	c->ev = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	if (c->state != CHILD_DEAD)
		c->dead_since = util_mono();
	c->state = CHILD_DEAD;
	ps->dirty = 1;
}

/* The child broke (EOF, a reset, a protocol error when why is set: then it
 * is killed). */
static void
child_lost(struct child *c, const char *why)
{
	if (c->state == CHILD_DEAD || c->state == CHILD_NONE)
		return;
	if (why != NULL && c->pid > 0) {
		log_warnx("process engine: worker %ld (pid %ld): %s; killing it",
		    c->slot, (long)c->pid, why);
		snprintf(c->why, sizeof(c->why), "%s", why);
		kill(c->pid, SIGKILL);
		c->killed = 1;
	}
	child_close(c);
}

/* The child's process is gone (status -1: unknown). Its transfer goes back
 * to be retried; the slot waits for procs_maintain() to fill it. */
static void
child_reaped(struct child *c, int status)
{
	struct procs *ps = c->ps;
	struct transfer *t = c->t;
	char how[64];

	if (status == -1)
		snprintf(how, sizeof(how), "was lost");
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "died (signal %d)", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited (status %d)",
		    WEXITSTATUS(status));
	if (!c->closing && !ps->stopping)
		log_warnx("process engine: worker %ld (pid %ld) %s%s", c->slot,
		    (long)c->pid, how, t != NULL ?
		    "; its transfer will be retried" : "");
	else
		log_debug("process engine: worker %ld (pid %ld) %s", c->slot,
		    (long)c->pid, how);
	if (t != NULL) {
		if (c->why[0] != '\0')
			set_result(t, FETCH_RETRY, "worker process killed: %s",
			    c->why);
		else
			set_result(t, FETCH_RETRY, "worker process %s", how);
		c->t = NULL;
		ps->nbusy--;
		procs_finish(ps, t);
	}
	/* procs_maintain() replaces it unless it was closed on purpose. */
	c->pid = -1;
	c->state = CHILD_NONE;
	ps->dirty = 1;
}

/*
 * waitpid(pid, WNOHANG) for this child only: other code in the process
 * may have children of its own. 1 when it is gone (and handled), 0 when
 * still running.
 */
static int
child_try_reap(struct child *c)
{
	int status = -1;
	pid_t r;

	if (c->pid <= 0) {
		if (c->state == CHILD_DEAD)
			c->state = CHILD_NONE;
		return 1;
	}
	do
		r = waitpid(c->pid, &status, WNOHANG);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return 0;
	if (r == -1)
		status = -1;    /* ECHILD: someone reaped it for us */
	if (c->state != CHILD_DEAD) {
		/* Exited before we saw EOF: take what it sent first. */
		child_read(c);
		child_close(c);
	}
	child_reaped(c, status);
	return 1;
}

static int
child_send(struct child *c, const struct wire *m)
{
	ssize_t n;

	do
		n = send(c->fd, m->buf, m->len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)m->len)
		return 0;
	if (n == -1 && (errno == EPIPE || errno == ECONNRESET ||
	    errno == ECONNREFUSED))
		child_lost(c, NULL);
	else
		child_lost(c, "cannot send to it");
	return -1;
}

/* Hand t to the idle child c. 0, or -1 with c lost and t still ours. */
static int
child_run(struct child *c, struct transfer *t)
{
	struct procs *ps = c->ps;
	struct wire m;

	/* procs_submit() checked the strings: anything else is a bug. */
	wire_init(&m, ps->sbuf, WIRE_MSG_MAX);
	if (wire_put_transfer(&m, t) == -1)
		fatalx("process engine: transfer %llu does not fit a message",
		    (unsigned long long)t->id);
	if (child_send(c, &m) == -1)
		return -1;
	TAILQ_REMOVE(&ps->idle, c, idle_entry);
	c->state = CHILD_BUSY;
	c->t = t;
	t->engine_data = c;
	ps->nbusy++;
	return 0;
}

static void
child_cancel(struct child *c)
{
	unsigned char buf[16];
	struct wire m;

	wire_init(&m, buf, sizeof(buf));
	if (wire_put_cancel(&m, c->t->id) == -1)
		fatalx("process engine: a cancel does not fit a message");
	(void)child_send(c, &m);
}

/* Queued transfers to idle children. */
static void
procs_kick(struct procs *ps)
{
	struct transfer *t;
	struct child *c;

	while ((t = TAILQ_FIRST(&ps->queue)) != NULL &&
	    (c = TAILQ_FIRST(&ps->idle)) != NULL) {
		TAILQ_REMOVE(&ps->queue, t, entry);
		if (child_run(c, t) == -1)
			TAILQ_INSERT_HEAD(&ps->queue, t, entry);
	}
}

/* Draining with nothing left to start, or stopping: idle children go. */
static void
procs_retire_idle(struct procs *ps)
{
	struct child *c;

	if (!ps->stopping &&
	    (!ps->engine->draining || !TAILQ_EMPTY(&ps->queue)))
		return;
	while ((c = TAILQ_FIRST(&ps->idle)) != NULL) {
		c->closing = 1;
		child_close(c);
	}
}

static void
child_idle(struct child *c)
{
	struct procs *ps = c->ps;

	c->state = CHILD_IDLE;
	TAILQ_INSERT_TAIL(&ps->idle, c, idle_entry);
	procs_kick(ps);
	procs_retire_idle(ps);
}

static void
child_result(struct child *c, struct wire *m)
{
	struct procs *ps = c->ps;
	struct transfer *t = c->t;
	const char *name;
	char *copy;

	if (wire_get_result(m, t, &name) == -1) {
		child_lost(c, "malformed result");
		return;
	}
	if (t->name == NULL || strcmp(t->name, name) != 0) {
		/* fetch_run() keeps the name; should that change, follow. */
		if ((copy = strdup(name)) == NULL)
			fatal("process engine: result name");
		free(t->name);
		t->name = copy;
	}
	__atomic_store_n(&t->progress, t->received, __ATOMIC_RELAXED);
	c->t = NULL;
	ps->nbusy--;
	procs_finish(ps, t);
	child_idle(c);
}

static void
child_message(struct child *c, unsigned char *buf, size_t len)
{
	enum wire_type type;
	struct wire m;
	uint64_t id, v;

	if (wire_open(&m, buf, len, &type, &id) == -1) {
		child_lost(c, "unknown message or protocol version");
		return;
	}
	switch (type) {
	case WIRE_HELLO:
		if (c->state != CHILD_STARTING || wire_get_hello(&m, &v) == -1) {
			child_lost(c, "unexpected hello");
			return;
		}
		child_idle(c);
		return;
	case WIRE_PROGRESS:
		if (wire_get_progress(&m, &v) == -1) {
			child_lost(c, "malformed progress");
			return;
		}
		if (c->state == CHILD_BUSY && c->t->id == id)
			__atomic_store_n(&c->t->progress, v, __ATOMIC_RELAXED);
		return;
	case WIRE_RESULT:
		if (c->state != CHILD_BUSY || c->t->id != id) {
			child_lost(c, "result for a transfer it does not run");
			return;
		}
		child_result(c, &m);
		return;
	default:
		child_lost(c, "a message only the parent sends");
		return;
	}
}

/* Every message waiting on c's socket; EOF or an error loses c. */
static void
child_read(struct child *c)
{
	struct procs *ps = c->ps;
	ssize_t n;

	while (c->fd != -1) {
		n = recv(c->fd, ps->rbuf, WIRE_MSG_MAX, MSG_DONTWAIT | MSG_TRUNC);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			child_lost(c, NULL);
			return;
		}
		if ((size_t)n > WIRE_MSG_MAX) {
			child_lost(c, "message too long");
			return;
		}
		child_message(c, ps->rbuf, (size_t)n);
	}
}

static int
procs_want_children(struct procs *ps)
{
	return !ps->stopping &&
	    (!ps->engine->draining || !TAILQ_EMPTY(&ps->queue));
}

/* A restart now, within RESTART_BURST per RESTART_WINDOW? */
static int
restart_allowed(struct procs *ps, double now)
{
	if (now - ps->restart_times[ps->restart_next] < RESTART_WINDOW)
		return 0;
	ps->restart_times[ps->restart_next] = now;
	ps->restart_next = (ps->restart_next + 1) % RESTART_BURST;
	return 1;
}

/*
 * Reap closed children (SIGKILL for those that will not go), start new ones
 * in empty slots, and keep the timer running while either is pending. Runs
 * after every event the engine handles; it only scans the children when a
 * child was closed or reaped since (dirty), so progress reports stay cheap
 * with thousands of children.
 */
static void
procs_maintain(struct procs *ps)
{
	struct timeval tv = { 0, TICK_MS * 1000 };
	struct child *c;
	double now;
	int pending = 0;
	long i;

	if (!ps->dirty || ps->stopping)
		return;
	ps->dirty = 0;
	now = util_mono();
	for (i = 0; i < ps->nchildren; i++) {
		c = &ps->children[i];
		if (c->state != CHILD_DEAD)
			continue;
		if (child_try_reap(c))
			continue;
		if (!c->killed && now - c->dead_since >= DEAD_KILL_MS / 1000.0) {
			kill(c->pid, SIGKILL);
			c->killed = 1;
		}
		pending = 1;
	}
	for (i = 0; i < ps->nchildren && procs_want_children(ps); i++) {
		c = &ps->children[i];
		if (c->state != CHILD_NONE || c->closing)
			continue;
		if (!restart_allowed(ps, now)) {
			if (!ps->storm)
				log_warnx("process engine: workers keep dying; "
				    "at most %d restarts per second",
				    RESTART_BURST);
			ps->storm = 1;
			pending = 1;
			break;
		}
		ps->storm = 0;
		if (child_spawn(ps, c) == -1)
			pending = 1;
		else
			ps->restarts++;
	}
	if (pending) {
		ps->dirty = 1;
		if (!evtimer_pending(ps->ev_timer, NULL))
			evtimer_add(ps->ev_timer, &tv);
	}
}

static void
procs_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct procs *ps = arg;

	ps->dirty = 1;
	procs_maintain(ps);
}

/* SIGCHLD: one of ours, maybe. Each known pid is asked on its own. */
static void
procs_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct procs *ps = arg;
	long i;

	for (i = 0; i < ps->nchildren; i++)
		if (ps->children[i].state != CHILD_NONE)
			(void)child_try_reap(&ps->children[i]);
	procs_maintain(ps);
}

/* Hand back what is done. The engine may be freed by the last
 * engine_complete(): nothing here touches it afterwards. */
static void
procs_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct procs *ps = arg;

	engine_complete_all(ps->engine, &ps->done);
}

/*
 * Block until no child matching want() is left or the deadline passes,
 * reading every message that arrives (start: HELLOs; stop: RESULTs).
 */
static void
procs_wait(struct procs *ps, int (*want)(const struct child *), long ms)
{
	double deadline = util_mono() + ms / 1000.0, left;
	struct child *c;
	long i;
	int n, dead, timeout;

	for (;;) {
		n = dead = 0;
		for (i = 0; i < ps->nchildren; i++) {
			c = &ps->children[i];
			if (!want(c))
				continue;
			if (c->state == CHILD_DEAD) {
				if (!child_try_reap(c))
					dead = 1;
				continue;
			}
			ps->pfds[n].fd = c->fd;
			ps->pfds[n].events = POLLIN;
			ps->pfds[n].revents = 0;
			ps->pmap[n++] = c;
		}
		if (n == 0 && !dead)
			return;
		if ((left = deadline - util_mono()) <= 0)
			return;
		timeout = (int)(left * 1000) + 1;
		if (dead && timeout > 10)
			timeout = 10;
		if (poll(ps->pfds, (nfds_t)n, timeout) == -1 && errno != EINTR)
			return;
		for (i = 0; i < n; i++)
			if (ps->pfds[i].revents != 0)
				child_read(ps->pmap[i]);
	}
}

static int
child_starting(const struct child *c)
{
	return c->state == CHILD_STARTING;
}

static int
child_has_transfer(const struct child *c)
{
	return c->t != NULL;
}

/* n empty child slots and the buffers every wait and message needs. */
static int
procs_alloc(struct procs *ps, long n)
{
	long i;

	if ((ps->children = calloc(n, sizeof(*ps->children))) == NULL ||
	    (ps->pfds = calloc(n, sizeof(*ps->pfds))) == NULL ||
	    (ps->pmap = calloc(n, sizeof(*ps->pmap))) == NULL ||
	    (ps->rbuf = malloc(WIRE_MSG_MAX)) == NULL ||
	    (ps->sbuf = malloc(WIRE_MSG_MAX)) == NULL) {
		log_warn("process engine");
		return -1;
	}
	ps->nchildren = n;
	for (i = 0; i < n; i++) {
		ps->children[i].ps = ps;
		ps->children[i].slot = i;
		ps->children[i].pid = -1;
		ps->children[i].fd = -1;
	}
	return 0;
}

/* Fewer workers when the open file limit cannot hold wanted (engine.h). */
static long
procs_fit(long wanted)
{
	return engine_fit_nofile("process", wanted, ENGINE_FDS_PROCESS);
}

static int
procs_start(struct engine *e, const struct config *cfg,
    struct event_base *base)
{
	struct procs *ps;
	struct rlimit rl;
	long i;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return -1;
	e->priv = ps;
	ps->engine = e;
	ps->base = base;
	TAILQ_INIT(&ps->idle);
	TAILQ_INIT(&ps->queue);
	TAILQ_INIT(&ps->done);
	ps->exefd = -1;
	for (i = 0; i < RESTART_BURST; i++)
		ps->restart_times[i] = -1e9;
	ps->maxfd = 65535;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		ps->maxfd = rl.rlim_cur > (1 << 20) ? (1 << 20) :
		    (int)rl.rlim_cur;
	if ((ps->exefd = open(PROC_EXE, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("process engine: %s", PROC_EXE);
		goto fail;
	}
	if (procs_alloc(ps, e->count) == -1)
		goto fail;
	ps->ev_sigchld = evsignal_new(base, SIGCHLD, procs_sigchld_cb, ps);
	ps->ev_timer = evtimer_new(base, procs_timer_cb, ps);
	ps->ev_done = event_new(base, -1, 0, procs_done_cb, ps);
	if (ps->ev_sigchld == NULL || ps->ev_timer == NULL ||
	    ps->ev_done == NULL || event_add(ps->ev_sigchld, NULL) == -1) {
		log_warnx("process engine: cannot set up events");
		goto fail;
	}
	for (i = 0; i < ps->nchildren; i++)
		if (child_spawn(ps, &ps->children[i]) == -1)
			goto fail;
	/* Exec and libcurl start-up are paid once, here, in parallel. */
	procs_wait(ps, child_starting, START_WAIT_MS);
	for (i = 0; i < ps->nchildren; i++) {
		if (ps->children[i].state != CHILD_IDLE) {
			log_warnx("process engine: worker %ld did not start", i);
			goto fail;
		}
	}
	log_info("process engine: %ld worker process%s", ps->nchildren,
	    ps->nchildren == 1 ? "" : "es");
	return 0;
fail:
	procs_stop(e);
	return -1;
}

static int
procs_submit(struct engine *e, struct transfer *t)
{
	struct procs *ps = e->priv;
	struct child *c;

	t->engine_data = NULL;
	if (!wire_transfer_fits(t)) {
		set_result(t, FETCH_FAIL, "URL or path too long");
		procs_finish(ps, t);
		return 0;
	}
	while ((c = TAILQ_FIRST(&ps->idle)) != NULL)
		if (child_run(c, t) == 0)
			break;
	if (c == NULL)
		TAILQ_INSERT_TAIL(&ps->queue, t, entry);
	procs_maintain(ps);
	return 0;
}

/*
 * A queued transfer comes back at once (through ev_done); a running one is
 * told to stop and comes back with its result.
 */
static void
procs_cancel(struct engine *e, struct transfer *t)
{
	struct procs *ps = e->priv;
	struct child *c = t->engine_data;
	struct transfer *q;

	if (c != NULL) {
		if (c->state == CHILD_BUSY && c->t == t)
			child_cancel(c);
		procs_maintain(ps);
		return;
	}
	TAILQ_FOREACH(q, &ps->queue, entry)
		if (q == t)
			break;
	if (q != NULL)
		procs_unqueue(ps, t);
	/* else on its way back already */
}

static void
procs_drain(struct engine *e)
{
	procs_retire_idle(e->priv);
	procs_maintain(e->priv);
}

/*
 * Stopping, first step: queued transfers come back cancelled; running ones
 * are cancelled and their results awaited (STOP_CANCEL_MS), then the
 * children that did not answer are killed; every socket is closed.
 */
static void
procs_cancel_all(struct procs *ps)
{
	struct transfer *t;
	struct child *c;
	long i;

	while ((t = TAILQ_FIRST(&ps->queue)) != NULL)
		procs_unqueue(ps, t);
	for (i = 0; i < ps->nchildren; i++) {
		c = &ps->children[i];
		if (c->state == CHILD_IDLE || c->state == CHILD_STARTING) {
			c->closing = 1;
			child_close(c);
		} else if (c->state == CHILD_BUSY)
			child_cancel(c);
	}
	if (ps->pfds != NULL)
		procs_wait(ps, child_has_transfer, STOP_CANCEL_MS);
	for (i = 0; i < ps->nchildren; i++) {
		c = &ps->children[i];
		if (c->state == CHILD_BUSY)
			child_lost(c, "no result after cancel");
		c->closing = 1;
		if (c->state != CHILD_NONE)
			child_close(c);
	}
}

/* A child that would not exit: SIGKILL and wait for it. */
static void
child_kill_wait(struct child *c)
{
	int status = -1;

	kill(c->pid, SIGKILL);
	while (waitpid(c->pid, &status, 0) == -1 && errno == EINTR)
		;
	child_reaped(c, status);
}

/* Stopping, second step: wait for every closed child to exit, killing
 * those still there after STOP_EXIT_MS. */
static void
procs_reap_all(struct procs *ps)
{
	double deadline = util_mono() + STOP_EXIT_MS / 1000.0;
	long i, left;

	for (;;) {
		left = 0;
		for (i = 0; i < ps->nchildren; i++)
			if (ps->children[i].state != CHILD_NONE &&
			    !child_try_reap(&ps->children[i]))
				left++;
		if (left == 0)
			return;
		if (util_mono() >= deadline)
			break;
		poll(NULL, 0, 5);
	}
	for (i = 0; i < ps->nchildren; i++)
		if (ps->children[i].state != CHILD_NONE)
			child_kill_wait(&ps->children[i]);
}

static void
procs_free(struct procs *ps)
{
	if (ps->ev_sigchld != NULL)
		event_free(ps->ev_sigchld);
	if (ps->ev_timer != NULL)
		event_free(ps->ev_timer);
	if (ps->ev_done != NULL)
		event_free(ps->ev_done);
	free(ps->children);
	free(ps->pfds);
	free(ps->pmap);
	free(ps->rbuf);
	free(ps->sbuf);
	if (ps->exefd != -1)
		close(ps->exefd);
	free(ps);
}

/*
 * Every transfer is handed back before this returns, after the engine's
 * state is gone (the daemon may free the engine on the last one). Also the
 * clean-up of a start that failed half way.
 */
static void
procs_stop(struct engine *e)
{
	struct procs *ps = e->priv;
	struct transfer_list done;

	if (ps == NULL)
		return;
	ps->stopping = 1;
	procs_cancel_all(ps);
	procs_reap_all(ps);
	TAILQ_INIT(&done);
	TAILQ_CONCAT(&done, &ps->done, entry);
	procs_free(ps);
	e->priv = NULL;
	engine_complete_all(e, &done);
}

static void
procs_stats(struct engine *e, struct engine_stats *st)
{
	struct procs *ps = e->priv;

	if (ps == NULL)
		return;
	st->busy = ps->nbusy;
	st->restarts = ps->restarts;
}

const struct engine_ops engine_process = {
	.name = "process",
	.fit = procs_fit,
	.start = procs_start,
	.submit = procs_submit,
	.cancel = procs_cancel,
	.drain = procs_drain,
	.stop = procs_stop,
	.stats = procs_stats,
};
