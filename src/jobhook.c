/*
 * jobhook.c: the hooks run when a job ends: the queue, the runner of their
 * child processes, the time limit, the cap, the logging of their output,
 * and the records that make them survive a restart.
 *
 * A job owes up to two hooks: the program (on_job_done) and the POST
 * (on_job_done_url). Each is a task; a task runs as one child process at
 * a time, the program exec'd by its path (no shell), the POST as this
 * binary again in its POST mode (jobhook_post.c), so that one mechanism
 * keeps them all: a cap on the children running at once (the rest wait in
 * order), a time limit (SIGTERM to the child's own process group, SIGKILL
 * KILL_GRACE later) and their stdout and stderr logged line by line. A POST
 * whose child says "retry" (or was killed, or died) waits with a backoff
 * and runs again, up to on_job_done_retries more times.
 *
 * Children are reaped on SIGCHLD with waitpid() on our own pids only: the
 * process engine reaps its workers the same way on the same signal.
 *
 * The record spool/hooks/J (spool_hook_*) holds what J still owes: written
 * before the job leaves active/ (jobhook_ending), rewritten when one of two
 * tasks is over, removed when both are. A child between fork and exec runs
 * only async-signal-safe calls: the daemon may have threads.
 */
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jobhook.h"
#include "log.h"
#include "util.h"

#define KILL_GRACE 5            /* s from SIGTERM to SIGKILL */
#define STOP_WAIT_MS 2000       /* jobhook_free(): SIGTERM to SIGKILL */
#define SPAWN_RETRY 1           /* s before a failed fork is tried again */
#define RETRY_MIN 1.0           /* s before the first retry of a POST */
#define RETRY_MAX 300.0         /* longest wait between two POSTs */
#define LINE_MAX_LOG 1024       /* bytes of a hook's output line logged */
#define RECORD_MAX 1024         /* bytes of a record */
#define JOB_MAX (SPOOL_NAME_MAX + 16)

enum {
	HOOK_PROGRAM = 1,
	HOOK_URL = 2,
};

enum task_state {
	TASK_QUEUED = 0,
	TASK_RUNNING,
	TASK_WAITING,           /* a POST's backoff, or a fork to try again */
};

struct task;

/* One of a running child's output pipes: stdout (0) or stderr (1). */
struct stream {
	struct task *t;
	int fd;
	int err;                /* stderr */
	int skipping;           /* the rest of a cut line is dropped */
	struct event *ev;
	size_t len;
	char buf[LINE_MAX_LOG + 1];
};

/* An ended job whose hooks are not all over. */
struct entry {
	TAILQ_ENTRY(entry) link;        /* jh->entries */
	struct jobhook *jh;
	int queued;                     /* its tasks are (jobhook_ended) */
	char job[JOB_MAX];
	int failed;
	double time;                    /* when it ended, s since the epoch */
	int has_counts;
	struct jobhook_counts counts;
	unsigned owed;                  /* HOOK_PROGRAM | HOOK_URL */
	struct task *tasks[2];          /* [0] program, [1] URL, or NULL */
};

struct task {
	TAILQ_ENTRY(task) link;         /* jh->queue or jh->running */
	struct entry *e;
	unsigned kind;
	enum task_state state;
	int attempts;                   /* runs so far */
	pid_t pid;
	int reaped, status;
	int kill_stage;                 /* 0, 1 SIGTERM sent, 2 SIGKILL sent */
	double started;
	struct event *ev_timer;         /* time limit, or the wait to rerun */
	struct stream out[2];
};

TAILQ_HEAD(entry_list, entry);
TAILQ_HEAD(task_list, task);

struct jobhook {
	struct event_base *base;
	struct spool *sp;
	const struct config *cfg;
	struct entry_list entries;      /* every entry, queued or not yet */
	struct task_list queue;
	struct task_list running;
	long nrunning;
	struct event *ev_sigchld;
	unsigned seed;
};

static void pump(struct jobhook *);
static void task_end(struct task *);

static const char *
kind_name(unsigned kind)
{
	return kind == HOOK_PROGRAM ? "hook" : "webhook";
}

static void
arm(struct event *ev, double seconds)
{
	struct timeval tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev, &tv);
}

/* -- records --------------------------------------------------------- */

/* The record's text: "key value" lines, counts only when known. */
static int
record_format(const struct entry *e, char *buf, size_t len)
{
	int n;

	n = snprintf(buf, len, "state %s\ntime %.3f\nowed%s%s\n",
	    e->failed ? "failed" : "done", e->time,
	    (e->owed & HOOK_PROGRAM) ? " program" : "",
	    (e->owed & HOOK_URL) ? " url" : "");
	if (n > 0 && (size_t)n < len && e->has_counts)
		n += snprintf(buf + n, len - (size_t)n,
		    "urls %zu\ndone %zu\nfailed %zu\nbytes %" PRIu64 "\n",
		    e->counts.urls, e->counts.done, e->counts.failed,
		    e->counts.bytes);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

static void
record_write(struct entry *e)
{
	char buf[RECORD_MAX];
	int n;

	if ((n = record_format(e, buf, sizeof(buf))) == -1 ||
	    spool_hook_write(e->jh->sp, e->job, buf, (size_t)n) == -1)
		log_warnx("hook %s: no record written; a restart before its "
		    "hooks are over would not run them", e->job);
}

/* Fill e from a record's text. 0, or -1 when it says nothing owed. */
static int
record_parse(struct entry *e, char *text)
{
	char *line, *save = NULL, word[16];
	unsigned long long v;
	int counts = 0;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "time %lf", &e->time) == 1)
			continue;
		if (strncmp(line, "owed", 4) == 0) {
			e->owed = (strstr(line, " program") ? HOOK_PROGRAM : 0) |
			    (strstr(line, " url") ? HOOK_URL : 0);
			continue;
		}
		if (sscanf(line, "%15s %llu", word, &v) != 2)
			continue;
		if (strcmp(word, "urls") == 0)
			e->counts.urls = (size_t)v;
		else if (strcmp(word, "done") == 0)
			e->counts.done = (size_t)v;
		else if (strcmp(word, "failed") == 0)
			e->counts.failed = (size_t)v;
		else if (strcmp(word, "bytes") == 0)
			e->counts.bytes = v;
		else
			continue;
		counts++;
	}
	e->has_counts = counts == 4;
	return e->owed != 0 ? 0 : -1;
}

/* -- entries and tasks ----------------------------------------------- */

static struct entry *
entry_new(struct jobhook *jh, const char *job, int failed)
{
	struct entry *e;

	if (strlen(job) >= JOB_MAX || (e = calloc(1, sizeof(*e))) == NULL) {
		log_warnx("hook %s: out of memory", job);
		return NULL;
	}
	e->jh = jh;
	snprintf(e->job, sizeof(e->job), "%s", job);
	e->failed = failed;
	e->time = util_wall();
	TAILQ_INSERT_TAIL(&jh->entries, e, link);
	return e;
}

static void stream_close(struct stream *);

static void
task_free(struct task *t)
{
	if (t == NULL)
		return;
	stream_close(&t->out[0]);
	stream_close(&t->out[1]);
	if (t->ev_timer != NULL)
		event_free(t->ev_timer);
	free(t);
}

static void
entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	TAILQ_REMOVE(&e->jh->entries, e, link);
	task_free(e->tasks[0]);
	task_free(e->tasks[1]);
	free(e);
}

static void task_timer_cb(evutil_socket_t, short, void *);

/* Queue the entry's owed tasks (it now belongs to its tasks). */
static void
entry_queue(struct entry *e)
{
	struct jobhook *jh = e->jh;
	struct task *t;

	e->queued = 1;
	for (unsigned i = 0; i < 2; i++) {
		if (!(e->owed & (1U << i)))
			continue;
		if ((t = calloc(1, sizeof(*t))) == NULL ||
		    (t->ev_timer = evtimer_new(jh->base, task_timer_cb,
		    t)) == NULL) {
			free(t);
			log_warnx("%s %s: out of memory; not run",
			    kind_name(1U << i), e->job);
			e->owed &= ~(1U << i);
			continue;
		}
		t->e = e;
		t->kind = 1U << i;
		t->pid = -1;
		t->out[0].fd = t->out[1].fd = -1;
		e->tasks[i] = t;
		TAILQ_INSERT_TAIL(&jh->queue, t, link);
	}
	if (e->tasks[0] == NULL && e->tasks[1] == NULL)
		entry_free(e);
	pump(jh);
}

/* A task is over: the record follows what is still owed. */
static void
task_over(struct task *t)
{
	struct entry *e = t->e;
	unsigned i = t->kind == HOOK_PROGRAM ? 0 : 1;

	e->owed &= ~t->kind;
	e->tasks[i] = NULL;
	task_free(t);
	if (e->owed != 0) {
		record_write(e);
		return;
	}
	(void)spool_hook_remove(e->jh->sp, e->job);
	entry_free(e);
}

/* Backoff before the POST's next attempt: doubling, with jitter. */
static double
retry_delay(struct jobhook *jh, int attempts)
{
	double d = RETRY_MIN;

	for (int i = 1; i < attempts && d < RETRY_MAX; i++)
		d *= 2;
	if (d > RETRY_MAX)
		d = RETRY_MAX;
	return d * (0.5 + (double)rand_r(&jh->seed) / ((double)RAND_MAX + 1));
}

static void
task_wait(struct task *t, double seconds)
{
	t->state = TASK_WAITING;
	arm(t->ev_timer, seconds);
}

/* -- the child's side -------------------------------------------------- */

/* A growing, NULL-terminated vector of "NAME=value" or argument strings. */
struct strv {
	char **v;
	size_t n, cap;
	int failed;
};

static void strv_add(struct strv *sv, const char *fmt, ...)
    LOG_FMT(2, 3);

static void
strv_add(struct strv *sv, const char *fmt, ...)
{
	va_list ap;
	char **nv, *s;

	if (sv->failed)
		return;
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 32;
		if ((nv = reallocarray(sv->v, sv->cap, sizeof(*nv))) == NULL) {
			sv->failed = 1;
			return;
		}
		sv->v = nv;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1) {
		sv->failed = 1;
		s = NULL;
	}
	va_end(ap);
	if (s == NULL)
		return;
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

static void
strv_free(struct strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
}

/* The daemon's environment without what is its own: the service
 * manager's variables and any FETCHD_* (a hook trusts ours only). */
static void
env_inherit(struct strv *sv)
{
	static const char *const drop[] = { "FETCHD_", "NOTIFY_SOCKET=",
		"WATCHDOG_", "LISTEN_" };
	extern char **environ;

	for (char **p = environ; p != NULL && *p != NULL; p++) {
		size_t i;

		for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
			if (strncmp(*p, drop[i], strlen(drop[i])) == 0)
				break;
		if (i == sizeof(drop) / sizeof(drop[0]))
			strv_add(sv, "%s", *p);
	}
}

/* The JSON the POST sends: the same facts as the program's. */
static char *
post_body(const struct entry *e, const char *result)
{
	json_t *o;
	char *s;

	o = json_pack("{s:s, s:s, s:s, s:f}", "job", e->job,
	    "state", e->failed ? "failed" : "done", "result", result,
	    "time", e->time);
	if (o == NULL)
		return NULL;
	if (e->has_counts) {
		json_object_set_new(o, "urls", json_integer(
		    (json_int_t)e->counts.urls));
		json_object_set_new(o, "done", json_integer(
		    (json_int_t)e->counts.done));
		json_object_set_new(o, "failed", json_integer(
		    (json_int_t)e->counts.failed));
		json_object_set_new(o, "bytes", json_integer(
		    (json_int_t)e->counts.bytes));
	} else {
		json_object_set_new(o, "urls", json_null());
		json_object_set_new(o, "done", json_null());
		json_object_set_new(o, "failed", json_null());
		json_object_set_new(o, "bytes", json_null());
	}
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

/* argv and the environment of t's child. 0 or -1 (out of memory). */
static int
task_cmdline(struct task *t, struct strv *argv, struct strv *env)
{
	const struct config *cfg = t->e->jh->cfg;
	const struct entry *e = t->e;
	char result[PATH_MAX];
	char *body;

	if (spool_result_path(e->jh->sp, e->job, e->failed, result,
	    sizeof(result)) == -1)
		return -1;
	env_inherit(env);
	strv_add(env, "FETCHD_JOB=%s", e->job);
	strv_add(env, "FETCHD_STATE=%s", e->failed ? "failed" : "done");
	strv_add(env, "FETCHD_RESULT=%s", result);
	strv_add(env, "FETCHD_TIME=%.3f", e->time);
	if (e->has_counts) {
		strv_add(env, "FETCHD_URLS=%zu", e->counts.urls);
		strv_add(env, "FETCHD_DONE=%zu", e->counts.done);
		strv_add(env, "FETCHD_FAILED=%zu", e->counts.failed);
		strv_add(env, "FETCHD_BYTES=%" PRIu64, e->counts.bytes);
	}
	if (t->kind == HOOK_PROGRAM) {
		strv_add(argv, "%s", cfg->on_job_done);
		strv_add(argv, "%s", e->job);
		strv_add(argv, "%s", e->failed ? "failed" : "done");
		strv_add(argv, "%s", result);
		return argv->failed || env->failed ? -1 : 0;
	}
	if ((body = post_body(e, result)) == NULL)
		return -1;
	strv_add(argv, "fetchd: hook-post");
	strv_add(argv, JOBHOOK_POST_ARG);
	strv_add(env, "FETCHD_HOOK_URL=%s", cfg->on_job_done_url);
	strv_add(env, "FETCHD_HOOK_BODY=%s", body);
	strv_add(env, "FETCHD_HOOK_TIMEOUT=%ld", cfg->on_job_done_timeout);
	strv_add(env, "FETCHD_HOOK_USER_AGENT=%s", cfg->user_agent);
	strv_add(env, "FETCHD_HOOK_VERIFY_TLS=%d", cfg->verify_tls);
	strv_add(env, "FETCHD_HOOK_CA_FILE=%s", cfg->ca_file);
	free(body);
	return argv->failed || env->failed ? -1 : 0;
}

/*
 * After fork(): async-signal-safe calls only. The child leads a process
 * group of its own (the time limit kills the whole group), gets default
 * signal dispositions, /dev/null as stdin, the two pipes as stdout and
 * stderr, and no other descriptor of the daemon. A POST child also dies
 * with the daemon (it is ours); a program is the operator's, and is left
 * to the service manager.
 */
static void __attribute__((noreturn))
child_exec(const char *path, char **argv, char **envp, int fds[3],
    int post, pid_t ppid)
{
	static const char msg[] = ": cannot be executed\n";
	struct sigaction sa;
	sigset_t none;
	int sig;

	(void)setpgid(0, 0);
	if (post && (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    getppid() != ppid))
		_exit(JOBHOOK_POST_RETRY);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) == -1)
			_exit(126);
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3, ~0U, 0) == -1)
#endif
		for (int i = 3; i < 1024; i++)
			(void)close(i);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	execve(path, argv, envp);
	(void)!write(2, path, strlen(path));
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(127);
}

/* -- the parent's side ------------------------------------------------- */

/* Log one line of a hook's output: bounded, control bytes made visible. */
static void
stream_line(struct stream *s, char *line, size_t len, int cut)
{
	const struct task *t = s->t;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = line[i] == '\t' ? ' ' : '?';
	line[len] = '\0';
	if (s->err && t->kind == HOOK_PROGRAM)
		log_warnx("%s %s (stderr): %s%s", kind_name(t->kind),
		    t->e->job, line, cut ? " [cut]" : "");
	else
		log_info("%s %s: %s%s", kind_name(t->kind), t->e->job, line,
		    cut ? " [cut]" : "");
}

/* Take what the pipe holds; 1 at EOF (or an error), else 0. */
static int
stream_read(struct stream *s)
{
	char *nl;
	ssize_t n;
	size_t used;

	for (;;) {
		n = read(s->fd, s->buf + s->len, LINE_MAX_LOG - s->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			break;
		s->len += (size_t)n;
		while ((nl = memchr(s->buf, '\n', s->len)) != NULL) {
			used = (size_t)(nl - s->buf);
			if (!s->skipping)
				stream_line(s, s->buf, used, 0);
			s->skipping = 0;
			s->len -= used + 1;
			memmove(s->buf, nl + 1, s->len);
		}
		if (s->len == LINE_MAX_LOG) {
			if (!s->skipping)
				stream_line(s, s->buf, s->len, 1);
			s->skipping = 1;
			s->len = 0;
		}
	}
	if (s->len > 0 && !s->skipping)
		stream_line(s, s->buf, s->len, 0);
	s->len = 0;
	return 1;
}

static void
stream_close(struct stream *s)
{
	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = NULL;
	if (s->fd != -1)
		close(s->fd);
	s->fd = -1;
}

static void
stream_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	if (stream_read(s))
		stream_close(s);
}

/* The pipes of t's child: fds[1], fds[2] for the child, ours in t->out.
 * 0 or -1 (logged). */
static int
task_pipes(struct task *t, int fds[3])
{
	int p[2];

	for (int i = 0; i < 2; i++) {
		if (pipe2(p, O_CLOEXEC) == -1) {
			log_warn("hook %s: pipe", t->e->job);
			return -1;
		}
		fds[i + 1] = p[1];
		t->out[i].t = t;
		t->out[i].fd = p[0];
		t->out[i].err = i;
		if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1 ||
		    (t->out[i].ev = event_new(t->e->jh->base, p[0],
		    EV_READ | EV_PERSIST, stream_cb, &t->out[i])) == NULL ||
		    event_add(t->out[i].ev, NULL) == -1) {
			log_warnx("hook %s: cannot watch its output", t->e->job);
			return -1;
		}
	}
	return 0;
}

/* Fork and exec t's child. 0, or -1 (logged; nothing left running). */
static int
task_fork(struct task *t, struct strv *argv, struct strv *env)
{
	int fds[3] = { -1, -1, -1 }, err;
	sigset_t all, old;
	pid_t pid, self = getpid();
	const char *path = t->kind == HOOK_PROGRAM ? argv->v[0] :
	    "/proc/self/exe";

	if ((fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1 ||
	    task_pipes(t, fds) == -1) {
		pid = -1;
		goto out;
	}
	/* No handler of the daemon's may run in the child before exec. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(path, argv->v, env->v, fds, t->kind == HOOK_URL,
		    self);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		errno = err;
		log_warn("hook %s: fork", t->e->job);
	} else
		(void)setpgid(pid, pid);        /* before any kill(-pid) */
out:
	for (int i = 0; i < 3; i++)
		if (fds[i] != -1)
			close(fds[i]);
	if (pid == -1) {
		stream_close(&t->out[0]);
		stream_close(&t->out[1]);
		return -1;
	}
	t->pid = pid;
	return 0;
}

/* Start t, whose hook may have been unset by a reload meanwhile. */
static void
task_start(struct task *t)
{
	struct jobhook *jh = t->e->jh;
	const struct config *cfg = jh->cfg;
	struct strv argv = { 0 }, env = { 0 };
	const char *what = t->kind == HOOK_PROGRAM ? cfg->on_job_done :
	    cfg->on_job_done_url;

	TAILQ_REMOVE(&jh->queue, t, link);
	if (what == NULL || what[0] == '\0') {
		log_info("%s %s: dropped, daemon.%s is no longer set",
		    kind_name(t->kind), t->e->job, t->kind == HOOK_PROGRAM ?
		    "on_job_done" : "on_job_done_url");
		task_over(t);
		return;
	}
	if (task_cmdline(t, &argv, &env) == -1 ||
	    task_fork(t, &argv, &env) == -1) {
		log_warnx("%s %s: not started; tried again in %ds",
		    kind_name(t->kind), t->e->job, SPAWN_RETRY);
		task_wait(t, SPAWN_RETRY);
	} else {
		t->state = TASK_RUNNING;
		t->attempts++;
		t->reaped = 0;
		t->kill_stage = 0;
		t->started = util_mono();
		TAILQ_INSERT_TAIL(&jh->running, t, link);
		jh->nrunning++;
		arm(t->ev_timer, (double)cfg->on_job_done_timeout);
		log_debug("%s %s: started (pid %ld)", kind_name(t->kind),
		    t->e->job, (long)t->pid);
	}
	strv_free(&argv);
	strv_free(&env);
}

/* Start queued tasks while the cap allows, in order. */
static void
pump(struct jobhook *jh)
{
	while (jh->nrunning < jh->cfg->on_job_done_max &&
	    !TAILQ_EMPTY(&jh->queue))
		task_start(TAILQ_FIRST(&jh->queue));
}

/* A signal to t's process group (its leader, should there be none). */
static void
task_kill(struct task *t, int sig)
{
	if (kill(-t->pid, sig) == -1 && errno == ESRCH && !t->reaped)
		(void)kill(t->pid, sig);
}

/* The leader exited: done, unless the limit was hit and some of its
 * group may still be alive (they get their SIGKILL on time). */
static void
task_exited(struct task *t)
{
	if (t->kill_stage == 1 && kill(-t->pid, 0) == 0)
		return;
	task_end(t);
}

static void
task_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task *t = arg;
	struct jobhook *jh = t->e->jh;

	if (t->state == TASK_WAITING) {
		t->state = TASK_QUEUED;
		TAILQ_INSERT_TAIL(&jh->queue, t, link);
		pump(jh);
		return;
	}
	if (t->kill_stage == 0) {
		log_warnx("%s %s: still running after %.0fs; SIGTERM to its "
		    "process group", kind_name(t->kind), t->e->job,
		    util_mono() - t->started);
		t->kill_stage = 1;
		task_kill(t, SIGTERM);
		arm(t->ev_timer, KILL_GRACE);
		return;
	}
	if (t->kill_stage == 1) {
		t->kill_stage = 2;
		task_kill(t, SIGKILL);
	}
	if (t->reaped)
		task_end(t);
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct jobhook *jh = arg;
	struct task *t, *next;
	pid_t r;

	for (t = TAILQ_FIRST(&jh->running); t != NULL; t = next) {
		next = TAILQ_NEXT(t, link);
		if (t->reaped)
			continue;
		do
			r = waitpid(t->pid, &t->status, WNOHANG);
		while (r == -1 && errno == EINTR);
		if (r == 0)
			continue;
		if (r == -1)
			t->status = -1; /* ECHILD: cannot be, but is gone */
		t->reaped = 1;
		task_exited(t);
	}
}

/* How the child ended, in words. */
static void
status_text(const struct task *t, char *buf, size_t len)
{
	if (t->kill_stage > 0)
		snprintf(buf, len, "killed at its time limit (%lds)",
		    t->e->jh->cfg->on_job_done_timeout);
	else if (t->status == -1)
		snprintf(buf, len, "lost (not our child)");
	else if (WIFEXITED(t->status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(t->status));
	else if (WIFSIGNALED(t->status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(t->status));
	else
		snprintf(buf, len, "ended (status %d)", t->status);
}

/* A POST's child ended: delivered, given up, or another attempt. */
static void
post_ended(struct task *t, const char *how, double secs)
{
	struct jobhook *jh = t->e->jh;
	int normal = t->kill_stage == 0 && t->status != -1 &&
	    WIFEXITED(t->status);
	int code = normal ? WEXITSTATUS(t->status) : JOBHOOK_POST_RETRY;
	char why[128] = "";
	double delay;

	/* the child's own line said why; anything else is said here */
	if (code == JOBHOOK_POST_GIVEUP)
		snprintf(why, sizeof(why), " (refused)");
	else if (!normal || code != JOBHOOK_POST_RETRY)
		snprintf(why, sizeof(why), " (%s)", how);
	if (code == JOBHOOK_POST_OK) {
		log_info("webhook %s: delivered (attempt %d, %.1fs)",
		    t->e->job, t->attempts, secs);
		task_over(t);
		return;
	}
	if (code != JOBHOOK_POST_GIVEUP &&
	    t->attempts <= jh->cfg->on_job_done_retries) {
		delay = retry_delay(jh, t->attempts);
		log_warnx("webhook %s: attempt %d failed%s; next in %.1fs",
		    t->e->job, t->attempts, why, delay);
		task_wait(t, delay);
		return;
	}
	log_warnx("webhook %s: given up after %d attempt%s%s; the job stays "
	    "in %s/", t->e->job, t->attempts,
	    util_plural((double)t->attempts), why,
	    t->e->failed ? "failed" : "done");
	task_over(t);
}

/* t's child is over: its output is drained and its outcome logged. */
static void
task_end(struct task *t)
{
	struct jobhook *jh = t->e->jh;
	double secs = util_mono() - t->started;
	char how[80];

	for (int i = 0; i < 2; i++) {
		if (t->out[i].fd != -1)
			(void)stream_read(&t->out[i]);
		stream_close(&t->out[i]);
	}
	evtimer_del(t->ev_timer);
	TAILQ_REMOVE(&jh->running, t, link);
	jh->nrunning--;
	status_text(t, how, sizeof(how));
	if (t->kind == HOOK_URL)
		post_ended(t, how, secs);
	else {
		if (t->kill_stage == 0 && WIFEXITED(t->status) &&
		    WEXITSTATUS(t->status) == 0)
			log_info("hook %s: exited with status 0 (%.1fs)",
			    t->e->job, secs);
		else
			log_warnx("hook %s: %s after %.1fs; the job stays in "
			    "%s/", t->e->job, how, secs,
			    t->e->failed ? "failed" : "done");
		task_over(t);
	}
	pump(jh);
}

/* -- the daemon's calls ------------------------------------------------ */

struct jobhook *
jobhook_new(struct event_base *base, struct spool *sp,
    const struct config *cfg)
{
	struct jobhook *jh;

	if ((jh = calloc(1, sizeof(*jh))) == NULL) {
		log_warnx("hooks: out of memory");
		return NULL;
	}
	jh->base = base;
	jh->sp = sp;
	jh->cfg = cfg;
	jh->seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	TAILQ_INIT(&jh->entries);
	TAILQ_INIT(&jh->queue);
	TAILQ_INIT(&jh->running);
	jh->ev_sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, jh);
	if (jh->ev_sigchld == NULL || event_add(jh->ev_sigchld, NULL) == -1) {
		log_warnx("hooks: cannot watch SIGCHLD");
		jobhook_free(jh);
		return NULL;
	}
	return jh;
}

/* Wait up to ms for t's child; 1 when it was reaped. */
static int
reap_within(struct task *t, int ms)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	pid_t r;

	for (int waited = 0;; waited += 10) {
		r = waitpid(t->pid, &t->status, ms < 0 ? 0 : WNOHANG);
		if (r == -1 && errno == EINTR)
			continue;
		if (r != 0)
			return 1;
		if (waited >= ms)
			return 0;
		nanosleep(&ts, NULL);
	}
}

/* The daemon stops: running children are stopped; records stay. */
static void
stop_running(struct jobhook *jh)
{
	struct task *t;
	double end = util_mono() + STOP_WAIT_MS / 1000.0;

	TAILQ_FOREACH(t, &jh->running, link) {
		if (!t->reaped)
			task_kill(t, SIGTERM);
		log_info("%s %s: stopped with fetchd; it runs again at the "
		    "next start", kind_name(t->kind), t->e->job);
	}
	TAILQ_FOREACH(t, &jh->running, link) {
		double left = end - util_mono();

		if (t->reaped || reap_within(t, left > 0 ?
		    (int)(left * 1000) : 0))
			continue;
		task_kill(t, SIGKILL);
		(void)reap_within(t, -1);
	}
	/* a group member that ignored SIGTERM */
	TAILQ_FOREACH(t, &jh->running, link)
		(void)kill(-t->pid, SIGKILL);
}

void
jobhook_free(struct jobhook *jh)
{
	struct entry *e;

	if (jh == NULL)
		return;
	stop_running(jh);
	/* The lists of tasks are only links into the entries. */
	while ((e = TAILQ_FIRST(&jh->entries)) != NULL)
		entry_free(e);
	if (jh->ev_sigchld != NULL)
		event_free(jh->ev_sigchld);
	free(jh);
}

/* The hooks configured now. */
static unsigned
hooks_set(const struct config *cfg)
{
	return (cfg->on_job_done[0] != '\0' ? HOOK_PROGRAM : 0) |
	    (cfg->on_job_done_url[0] != '\0' ? HOOK_URL : 0);
}

/* The entry of a job: one that is ending (recorded, not yet queued) when
 * queued is 0, any when it is -1. */
static struct entry *
entry_find(struct jobhook *jh, const char *job, int queued)
{
	struct entry *e;

	TAILQ_FOREACH(e, &jh->entries, link)
		if ((queued == -1 || e->queued == queued) &&
		    strcmp(e->job, job) == 0)
			return e;
	return NULL;
}

void
jobhook_ending(struct jobhook *jh, const char *job, int failed,
    const struct jobhook_counts *counts)
{
	unsigned owed = hooks_set(jh->cfg);
	struct entry *e = entry_find(jh, job, 0);

	if (owed == 0) {
		/* unset by a reload since an earlier try at the move */
		if (e != NULL) {
			(void)spool_hook_remove(jh->sp, job);
			entry_free(e);
		}
		return;
	}
	if (e == NULL && (e = entry_new(jh, job, failed)) == NULL)
		return;
	e->failed = failed;
	e->time = util_wall();
	e->owed = owed;
	e->has_counts = counts != NULL;
	if (counts != NULL)
		e->counts = *counts;
	record_write(e);
}

void
jobhook_ended(struct jobhook *jh, const char *job, int failed)
{
	struct entry *e = entry_find(jh, job, 0);

	if (e == NULL)
		return;         /* no hook was set when it ended */
	e->failed = failed;
	entry_queue(e);
}

void
jobhook_rejected(struct jobhook *jh, const char *job)
{
	jobhook_ending(jh, job, 1, NULL);
	jobhook_ended(jh, job, 1);
}

struct recover_ctx {
	struct jobhook *jh;
	long queued;
};

/* One record found at start: run, wait for its job, or drop. */
static void
recover_one(const char *job, void *arg)
{
	struct recover_ctx *rc = arg;
	struct jobhook *jh = rc->jh;
	char text[RECORD_MAX];
	struct entry *e;
	enum spool_place where;

	/* a job resumed by spool_recover() that has ended already */
	if (entry_find(jh, job, -1) != NULL)
		return;
	if (spool_hook_read(jh->sp, job, text, sizeof(text)) == -1 ||
	    (where = spool_where(jh->sp, job)) == SPOOL_IN_ERROR)
		return;
	if (where == SPOOL_IN_ACTIVE || where == SPOOL_IN_NEW) {
		log_info("hook %s: waits for its job to end", job);
		return;
	}
	if (where == SPOOL_IN_NONE) {
		log_warnx("hook %s: the job is in none of new/, active/, "
		    "done/, failed/; its hooks are dropped", job);
		(void)spool_hook_remove(jh->sp, job);
		return;
	}
	if ((e = entry_new(jh, job, where == SPOOL_IN_FAILED)) == NULL)
		return;
	if (record_parse(e, text) == -1) {
		log_warnx("hook %s: its record owes nothing; removed", job);
		(void)spool_hook_remove(jh->sp, job);
		entry_free(e);
		return;
	}
	log_info("hook %s: owed by the last run; queued", job);
	rc->queued++;
	entry_queue(e);
}

long
jobhook_recover(struct jobhook *jh)
{
	struct recover_ctx rc = { jh, 0 };

	if (spool_hook_list(jh->sp, recover_one, &rc) == -1)
		return -1;
	return rc.queued;
}
