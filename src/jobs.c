/*
 * jobs.c: the claimed jobs, from validation to their move into done/ or
 * failed/. Main loop only.
 *
 * A job's life:
 *  1. validating: the whole file is parsed in chunks (so a million-line job
 *     never blocks the loop for long), nothing is fetched. Errors are kept
 *     (bounded) and the job fails with their line numbers.
 *  2. running: the file is read again, at most JOBS_WINDOW URLs ahead of the
 *     first one whose result is not written yet. Each URL gets its output
 *     name from the job's name reservation (names.h), a claim record in
 *     active/J.journal (journal.h), and goes to the scheduler. Results
 *     (rows as result.h formats them) are appended to active/J.result in
 *     job order by the window writer below; one that finishes ahead of its
 *     turn waits in the window and is also written to the journal so a
 *     crash does not lose it.
 *  3. finishing: with daemon.sync the job's files are flushed to disk with
 *     one syncfs() (not one fsync per file), then spool_finish() moves the
 *     result and the job.
 *
 * Restart: J.result's lines tell how many URLs are done in order; the
 * journal adds the claims and results beyond that. A URL whose final file
 * exists but whose result was not recorded is recognised by names_reserve()
 * (files are renamed to their final name only after verification), so
 * nothing that completed is fetched again.
 *
 * The public prefix stays jobs_: the module is the set of claimed jobs the
 * daemon works on (start, refill, cancel, list them), one runner per job.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "job.h"
#include "journal.h"
#include "log.h"
#include "names.h"
#include "result.h"
#include "util.h"

#define JOBS_VALIDATE_CHUNK 4096 /* lines validated per loop turn */
#define JOBS_MAX_ERRORS 100      /* error rows kept for a malformed job */

#define JOBS_WAIT_MIN 1.0        /* s before the first try after a spool error */
#define JOBS_WAIT_MAX 60.0       /* s between tries at most */
#define JOBS_RESOURCE_DELAY 1.0  /* s before a retry for want of descriptors */

struct seg_url;                 /* a segmented URL (below) */
TAILQ_HEAD(seg_list, seg_url);

enum job_state {
	JOB_VALIDATING = 0,
	JOB_RUNNING,
	JOB_FINISHING,
	JOB_WAITING,            /* the spool failed it; a timer tries again */
};

struct job {
	TAILQ_ENTRY(job) entry;
	struct jobs *js;
	char *name;
	char *dir;              /* download_dir/J, or download_dir/refresh */
	char *refresh;          /* @refresh's directory, or NULL */
	struct names *names;    /* output names, made with the first URL */
	int fd;
	struct job_reader *reader;
	enum job_state state;
	int resume;
	int failed_any;
	int cancelled;
	int eof;

	/* validation */
	size_t nurls;
	size_t nerrors;
	char *errors;           /* rows for a malformed job */
	size_t errlen;

	/* running */
	size_t next;            /* index of the next URL to read */
	size_t nread;           /* entries taken from the reader */
	size_t head;            /* first index not yet in J.result */
	char **ring;            /* JOBS_WINDOW finished lines by index */
	struct transfer_list live; /* transfers out, by owner_entry */
	size_t nlive;
	struct seg_list segs;   /* its segmented URLs being fetched */
	size_t ndone, nfailed;
	uint64_t bytes;

	struct spool_log *result;
	struct journal *journal;
	struct journal_recovery *rec;   /* an earlier run's records; NULL */

	struct event *ev;       /* runs the next validation chunk */
	int dirty;              /* records to write out (jobs->ev_settle) */

	/* Waiting for the spool (job_park). */
	int broken;             /* a record could not be written (or memory
	                           ran out): park the job once its
	                           transfers are back */
	int broken_errno;
	const char *broken_what;
	int moving;             /* files closed; only spool_finish() is left */
	int finish_failed;      /* ... and it goes to failed/ */
	int wait_tries;         /* parks so far: the backoff grows with them */
	double wait_until;      /* monotonic s of the next try */
	char wait_reason[160];
	struct event *ev_wait;

	/* What the progress events and `jobs JOB` show. */
	double claimed_at;      /* monotonic s of jobs_start() */
	struct job_sample {
		double t;
		uint64_t bytes, urls;
	} samples[JOBS_RATE_WINDOW + 1];        /* one a second, a ring */
	size_t sample_next, nsamples;
	struct job_error {
		size_t index;
		char *url;
		char error[FETCH_ERR_MAX];
		long status;
		int attempt;
		double time;
	} errs[JOBS_URL_ERRORS];                /* the last ones, a ring */
	size_t err_next, nerrs;

	/* Mirrors: a line of the job has mirror= fields, so J.result has
	 * the served_by column (set by validation, before the header). */
	int mirrors;
};

TAILQ_HEAD(job_list, job);

struct jobs {
	struct event_base *base;
	struct spool *spool;
	struct sched *sched;
	const struct config *cfg;
	struct jobs_hooks hooks;
	void *arg;
	struct job_list list;
	size_t njobs;
	size_t nlive;           /* transfers out, all jobs */
	uint64_t next_id;
	int stopping;
	unsigned seed;
	struct event *ev_settle;        /* writes out the dirty jobs */
	char last_error[JOBS_ERROR_MAX]; /* the latest spool error, or "" */

	/* Claimed jobs that could not even be set up (out of memory): their
	 * names, kept without allocating, for jobs_orphans_cb to try again. */
	char orphans[JOBS_ACTIVE_MAX][SPOOL_NAME_MAX + 16];
	size_t norphans;
	int orphan_tries;
	struct event *ev_orphans;
};

static void job_free(struct job *);
static void job_info_fill(const struct job *, struct job_info *, double);
static int job_header(struct job *);
static int job_mirrors_copy(struct transfer *, const struct job_entry *);
static void job_mirror_recover(struct transfer *,
    const struct journal_rec *);
static const char *job_line_url(const struct transfer *);
static void job_mirror_fresh(struct transfer *);
static void job_mirror_note(struct job *, const struct transfer *);
static int job_mirror_next(struct job *, struct transfer *);
static void seg_free_all(struct job *);
static int seg_final(struct job *, struct transfer *);
static void seg_drop(struct job *, struct transfer *);

/* t leaves the job's live transfers (finished, dropped or cancelled). */
static void
job_unlink(struct job *j, struct transfer *t)
{
	TAILQ_REMOVE(&j->live, t, owner_entry);
	names_release(j->names, t);
	j->nlive--;
	j->js->nlive--;
}
static void job_validate_cb(evutil_socket_t, short, void *);
static int job_settle(struct job *);
static void jobs_orphans_cb(evutil_socket_t, short, void *);
static int jobs_orphan(struct jobs *, const char *);

/*
 * The records of finished transfers are written out once per loop turn,
 * not once per transfer: a burst of completions costs one write to J.result
 * and one to J.journal per job. Nothing waits on them in between (neither
 * is synced before the job finishes, and a file already renamed to its
 * final name is recognised as done by the next start).
 */
static void
jobs_settle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jobs *js = arg;
	struct job *j, *next;

	(void)fd;
	(void)what;
	for (j = TAILQ_FIRST(&js->list); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->dirty) {
			j->dirty = 0;
			(void)job_settle(j);    /* may free j */
		}
	}
}

static void
job_settle_soon(struct job *j)
{
	j->dirty = 1;
	event_active(j->js->ev_settle, 0, 0);
}

struct jobs *
jobs_new(struct event_base *base, struct spool *sp, struct sched *s,
    const struct config *cfg, const struct jobs_hooks *hooks, void *arg)
{
	struct jobs *js;

	if ((js = calloc(1, sizeof(*js))) == NULL)
		return NULL;
	js->base = base;
	js->spool = sp;
	js->sched = s;
	js->cfg = cfg;
	js->hooks = *hooks;
	js->arg = arg;
	js->seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	TAILQ_INIT(&js->list);
	js->ev_settle = event_new(base, -1, 0, jobs_settle_cb, js);
	js->ev_orphans = evtimer_new(base, jobs_orphans_cb, js);
	if (js->ev_settle == NULL || js->ev_orphans == NULL) {
		if (js->ev_settle != NULL)
			event_free(js->ev_settle);
		free(js);
		return NULL;
	}
	return js;
}

void
jobs_free(struct jobs *js)
{
	struct job *j;

	if (js == NULL)
		return;
	while ((j = TAILQ_FIRST(&js->list)) != NULL) {
		TAILQ_REMOVE(&js->list, j, entry);
		job_free(j);
	}
	event_free(js->ev_settle);
	event_free(js->ev_orphans);
	free(js);
}

void
jobs_set_config(struct jobs *js, const struct config *cfg)
{
	js->cfg = cfg;
}

size_t
jobs_count(const struct jobs *js)
{
	return js->njobs;
}

int
jobs_full(const struct jobs *js)
{
	return js->njobs + js->norphans >= JOBS_ACTIVE_MAX;
}

/*
 * Close the job's files and forget what this run of it knew: the state a
 * job is in before its files are opened (resume or not, cancelled stay).
 * No transfer of it may be live.
 */
static void
job_close_files(struct job *j)
{
	size_t i;

	if (j->ev != NULL)
		event_del(j->ev);
	job_reader_free(j->reader);
	j->reader = NULL;
	if (j->fd != -1)
		close(j->fd);
	j->fd = -1;
	spool_log_close(j->result);
	j->result = NULL;
	journal_close(j->journal);
	j->journal = NULL;
	for (i = 0; j->ring != NULL && i < JOBS_WINDOW; i++) {
		free(j->ring[i]);
		j->ring[i] = NULL;
	}
	journal_recovery_free(j->rec);
	j->rec = NULL;
	seg_free_all(j);
	free(j->errors);
	j->errors = NULL;
	j->errlen = j->nerrors = 0;
	names_free(j->names);
	j->names = NULL;
	j->nurls = j->next = j->nread = j->head = 0;
	j->ndone = j->nfailed = 0;
	j->bytes = 0;
	j->failed_any = j->eof = j->broken = j->dirty = 0;
}

static void
job_free(struct job *j)
{
	struct transfer *t;

	if (j == NULL)
		return;
	/* Only at teardown: every transfer has come back by then, but the
	 * ones still queued in the scheduler are freed by their owner. */
	seg_free_all(j);
	while ((t = TAILQ_FIRST(&j->live)) != NULL) {
		job_unlink(j, t);
		fetch_transfer_free(t);
	}
	job_close_files(j);
	if (j->ev != NULL)
		event_free(j->ev);
	if (j->ev_wait != NULL)
		event_free(j->ev_wait);
	for (size_t i = 0; i < JOBS_URL_ERRORS; i++)
		free(j->errs[i].url);
	free(j->ring);
	free(j->dir);
	free(j->refresh);
	free(j->name);
	free(j);
}

/*
 * Validation. A malformed job is refused as a whole, so the parse of every
 * line comes before any fetch. Chunks keep the loop responsive.
 */
static void
job_add_error(struct job *j, const char *raw, const char *msg)
{
	char row[RESULT_ROW_MAX], *p;
	int n;

	j->nerrors++;
	if (j->nerrors > JOBS_MAX_ERRORS)
		return;
	n = result_format_failed(row, sizeof(row), raw, msg);
	if (n < 0)
		return;
	if ((p = realloc(j->errors, j->errlen + n + 1)) == NULL)
		return;
	memcpy(p + j->errlen, row, n + 1);
	j->errors = p;
	j->errlen += n;
}

/* Cluster mode: rows say which node fetched the URL. */
static int
jobs_cluster(const struct jobs *js)
{
	return js->cfg->cluster_redis != NULL && js->cfg->cluster_redis[0] != '\0';
}

static int
job_open_logs(struct job *j)
{
	struct spool *sp = j->js->spool;

	if (j->result == NULL &&
	    (j->result = spool_log_open(sp, j->name, ".result")) == NULL)
		return -1;
	/* The header waits for validation (job_header): its columns
	 * depend on the lines. */
	return 0;
}

/*
 * J.result's header, unless it has one: the columns of cluster mode and,
 * when a line has mirror= fields (and the job is not malformed: its rows
 * are errors), served_by. Written once the job is validated (or fails
 * before), so an earlier run's header is kept as is. 0 or -1.
 */
static int
job_header(struct job *j)
{
	const char *hdr = result_header(jobs_cluster(j->js),
	    j->mirrors && j->nerrors == 0);

	if (spool_log_lines(j->result) == 0 &&
	    (spool_log_append(j->result, hdr, strlen(hdr)) == -1 ||
	    spool_log_flush(j->result) == -1))
		return -1;
	return 0;
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The spool (or the download directory's syncfs) failed the job: close its
 * files and try again after a backoff (JOBS_WAIT_MIN doubling to
 * JOBS_WAIT_MAX, with jitter) while the daemon runs. A job whose files
 * were closed for its final move only retries the move; any other takes
 * its files up again from active/ exactly as the next start would (the
 * rows and journal on disk say what is done), so nothing is lost or
 * fetched twice. e: the errno of the failure; what: what failed.
 */
static void
job_park(struct job *j, int e, const char *what)
{
	struct jobs *js = j->js;
	struct timeval tv;
	double delay;

	if (!j->moving) {
		job_close_files(j);
		j->resume = 1;
	}
	snprintf(j->wait_reason, sizeof(j->wait_reason), "%s: %s", what,
	    strerror(e != 0 ? e : EIO));
	snprintf(js->last_error, sizeof(js->last_error), "job %s: %s",
	    j->name, j->wait_reason);
	j->wait_tries++;
	delay = sched_backoff(j->wait_tries + 1, JOBS_WAIT_MIN, JOBS_WAIT_MAX,
	    -1, &js->seed);
	j->wait_until = mono_now() + delay;
	j->state = JOB_WAITING;
	log_warnx("job %s: %s; it stays in active/ and is tried again in "
	    "%.1fs", j->name, j->wait_reason, delay);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(j->ev_wait, &tv);
}

/* The job leaves the list: finished, or its file is gone. */
static void
job_remove(struct job *j)
{
	TAILQ_REMOVE(&j->js->list, j, entry);
	j->js->njobs--;
	job_free(j);
}

/* The last step of a finished job: active/J to done/ or failed/. */
static void
job_move(struct job *j)
{
	struct jobs *js = j->js;

	j->moving = 1;
	if (js->hooks.job_ending != NULL) {
		struct job_info ji;

		job_info_fill(j, &ji, mono_now());
		js->hooks.job_ending(&ji, j->finish_failed, js->arg);
	}
	if (spool_finish(js->spool, j->name, j->finish_failed) == -1) {
		job_park(j, errno, j->finish_failed ? "cannot move it to "
		    "failed/" : "cannot move it to done/");
		return;
	}
	log_info("job %s %s: %zu ok, %zu failed%s", j->name,
	    j->finish_failed ? "failed" : "done", j->ndone, j->nfailed,
	    j->nerrors > 0 ? " (malformed)" : "");
	if (js->hooks.job_finished != NULL) {
		struct job_info ji;

		job_info_fill(j, &ji, mono_now());
		js->hooks.job_finished(&ji, j->finish_failed, js->arg);
	}
	job_remove(j);
}

/* Append the rows of a malformed job's errors. 0 or -1. */
static int
job_write_errors(struct job *j)
{
	char row[256], msg[64];
	int n;

	if (j->nerrors == 0 || spool_log_lines(j->result) > 1)
		return 0;
	if (spool_log_append(j->result, j->errors, j->errlen) == -1)
		return -1;
	if (j->nerrors > JOBS_MAX_ERRORS) {
		snprintf(msg, sizeof(msg), "%zu more malformed line%s",
		    j->nerrors - JOBS_MAX_ERRORS,
		    util_plural((double)j->nerrors - JOBS_MAX_ERRORS));
		n = result_format_failed(row, sizeof(row), "-", msg);
		if (n > 0 && spool_log_append(j->result, row, n) == -1)
			return -1;
	}
	return 0;
}

/*
 * One syncfs for every file of the job instead of an fsync each: the files
 * were written by whichever thread fetched them. done/ promises durable
 * files: without this the job does not go there. 0 or -1 (errno set).
 */
static int
job_sync_files(struct job *j)
{
	int fd, e;

	if (!j->js->cfg->sync || j->ndone == 0)
		return 0;
	fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 || syncfs(fd) == -1) {
		e = errno;
		log_warn("%s: syncfs", j->dir);
		if (fd != -1)
			close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

static void
job_finish(struct job *j)
{
	j->state = JOB_FINISHING;
	j->finish_failed = j->failed_any || j->nerrors > 0 || j->cancelled;
	if (job_header(j) == -1 || job_write_errors(j) == -1 ||
	    spool_log_sync(j->result) == -1) {
		job_park(j, errno, "cannot write its result");
		return;
	}
	if (job_sync_files(j) == -1) {
		job_park(j, errno, "cannot sync its files (syncfs)");
		return;
	}
	spool_log_close(j->result);
	j->result = NULL;
	journal_close(j->journal);
	j->journal = NULL;
	job_move(j);
}

/* 1 when the trees a and b (relative paths) are one or hold each other. */
static int
refresh_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), n = la < lb ? la : lb;

	return strncmp(a, b, n) == 0 &&
	    (la == lb || (la < lb ? b[n] : a[n]) == '/');
}

/*
 * A validated job with @refresh DIR works in download_dir/DIR instead of
 * its own directory. Two jobs never refresh one tree at once (their files
 * would be one): the one validated later waits, parked, until the first
 * has ended. 0, or -1 when the job failed or was parked.
 */
static int
job_take_refresh(struct job *j)
{
	const char *dir = job_reader_refresh(j->reader);
	struct job *o;
	char *path, why[128];

	if (dir == NULL)
		return 0;
	if (jobs_cluster(j->js)) {
		job_add_error(j, "-", "@refresh is not available in cluster "
		    "mode");
		job_finish(j);
		return -1;
	}
	TAILQ_FOREACH(o, &j->js->list, entry) {
		if (o == j || o->refresh == NULL ||
		    !refresh_overlap(dir, o->refresh))
			continue;
		snprintf(why, sizeof(why), "job %s refreshes the tree %s",
		    o->name, o->refresh);
		job_park(j, EBUSY, why);
		return -1;
	}
	if (asprintf(&path, "%s/%s", j->js->cfg->download_dir, dir) == -1) {
		job_park(j, ENOMEM, "out of memory");
		return -1;
	}
	free(j->refresh);
	if ((j->refresh = strdup(dir)) == NULL) {
		free(path);
		job_park(j, ENOMEM, "out of memory");
		return -1;
	}
	free(j->dir);
	j->dir = path;
	return 0;
}

static void
job_validate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;
	struct job_entry e;
	char err[JOB_ERR_MAX + 32];
	size_t n;
	int r;

	for (n = 0; n < JOBS_VALIDATE_CHUNK; n++) {
		memset(&e, 0, sizeof(e));
		r = job_reader_next(j->reader, &e, err, sizeof(err));
		if (r == 0)
			break;
		if (r == -1) {
			job_add_error(j, "-", err);
			if (j->nerrors > JOBS_MAX_ERRORS * 100)
				break;  /* give up on hopeless files early */
			continue;
		}
		if (e.nmirrors > 0)
			j->mirrors = 1;
		job_entry_free(&e);
		if (++j->nurls > (size_t)j->js->cfg->max_job_urls) {
			snprintf(err, sizeof(err), "line %lu: more than %ld "
			    "URL%s (daemon.max_job_urls)",
			    job_reader_lineno(j->reader),
			    j->js->cfg->max_job_urls,
			    util_plural((double)j->js->cfg->max_job_urls));
			job_add_error(j, "-", err);
			break;
		}
	}
	if (n == JOBS_VALIDATE_CHUNK) {
		event_active(j->ev, 0, 0);
		return;
	}
	if (j->nerrors > 0) {
		log_warnx("job %s is malformed (%zu bad line%s); nothing "
		    "fetched", j->name, j->nerrors,
		    util_plural((double)j->nerrors));
		job_finish(j);
		return;
	}
	if (job_take_refresh(j) == -1)
		return;
	if (job_reader_rewind(j->reader) == -1) {
		job_add_error(j, "-", "cannot re-read the job file");
		job_finish(j);
		return;
	}
	if (job_header(j) == -1) {
		job_park(j, errno, "cannot write its result");
		return;
	}
	j->state = JOB_RUNNING;
	log_info("job %s: %zu URL%s%s", j->name, j->nurls,
	    util_plural((double)j->nurls), j->resume ? " (resumed)" : "");
	if (j->js->hooks.work_ready != NULL)
		j->js->hooks.work_ready(j->js->arg);
}

/*
 * A resumed job counts the rows an earlier run wrote, so that one failed
 * row then still sends the job to failed/, and its files are synced with
 * the rest when it finishes.
 */
static int
job_count_row(const char *line, size_t len, void *arg)
{
	struct job *j = arg;

	if (len == 0 || line[0] == '#')
		return 0;
	if (result_row_ok(line, len))
		j->ndone++;
	else {
		j->nfailed++;
		j->failed_any = 1;
	}
	return 0;
}

/*
 * Open the job's file and its records in active/ (resuming from them when
 * j->resume). 0; -1 with errno set (what cannot be opened waits for a
 * retry); -2 when the job file itself is gone.
 */
static int
job_open(struct job *j)
{
	struct jobs *js = j->js;
	size_t lines;

	if ((j->fd = spool_open_job(js->spool, j->name)) == -1)
		return errno == ENOENT ? -2 : -1;
	if ((j->reader = job_reader_new(j->fd)) == NULL)
		return -1;
	if (job_open_logs(j) == -1)
		return -1;
	if ((j->journal = journal_open(js->spool, j->name)) == NULL)
		return -1;

	/* Line 1 of J.result is the header: the rest are URLs 0.. in order. */
	lines = spool_log_lines(j->result);
	j->head = j->next = lines > 0 ? lines - 1 : 0;
	if (j->resume && ((j->rec = journal_recovery_new(j->head)) == NULL ||
	    journal_recovery_load(j->rec, js->spool, j->name) == -1 ||
	    (j->head > 0 && spool_log_read(js->spool, j->name, ".result",
	    job_count_row, j) == -1)))
		return -1;
	return 0;
}

/* Open the job and start validating it, or park it when its files cannot
 * be opened now. Frees j when its file has gone. */
static void
job_take_up(struct job *j)
{
	errno = 0;
	switch (job_open(j)) {
	case 0:
		j->state = JOB_VALIDATING;
		event_active(j->ev, 0, 0);
		break;
	case -2:
		log_warnx("job %s: its file is gone from active/", j->name);
		job_remove(j);
		break;
	default:
		job_park(j, errno, "cannot open its files in active/");
		break;
	}
}

static void
job_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd;
	(void)what;
	log_info("job %s: trying again (%s)", j->name, j->wait_reason);
	if (j->moving)
		job_move(j);
	else
		job_take_up(j);
}

int
jobs_start(struct jobs *js, const char *name, int resume)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto fail;
	j->js = js;
	j->fd = -1;
	j->resume = resume;
	j->claimed_at = mono_now();
	TAILQ_INIT(&j->live);
	TAILQ_INIT(&j->segs);
	if ((j->name = strdup(name)) == NULL ||
	    asprintf(&j->dir, "%s/%s", js->cfg->download_dir, name) == -1) {
		j->dir = NULL;
		goto fail;
	}
	if ((j->ring = calloc(JOBS_WINDOW, sizeof(*j->ring))) == NULL)
		goto fail;
	j->ev = event_new(js->base, -1, 0, job_validate_cb, j);
	j->ev_wait = evtimer_new(js->base, job_wait_cb, j);
	if (j->ev == NULL || j->ev_wait == NULL)
		goto fail;
	TAILQ_INSERT_TAIL(&js->list, j, entry);
	js->njobs++;
	job_take_up(j);
	return 0;
fail:
	job_free(j);
	return jobs_orphan(js, name);
}

/*
 * A claimed job could not be set up for want of memory: keep its name (in
 * place, nothing allocated) and start it again after a backoff, so it does
 * not wait in active/ for the next start. -1 when even that is full.
 */
static int
jobs_orphan(struct jobs *js, const char *name)
{
	struct timeval tv;
	double delay;

	if (js->norphans == JOBS_ACTIVE_MAX ||
	    strlen(name) >= sizeof(js->orphans[0])) {
		log_warnx("job %s: out of memory; left in active/", name);
		return -1;
	}
	strcpy(js->orphans[js->norphans++], name);
	delay = sched_backoff(++js->orphan_tries + 1, JOBS_WAIT_MIN,
	    JOBS_WAIT_MAX, -1, &js->seed);
	log_warnx("job %s: out of memory; starting it again in %.1fs", name,
	    delay);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(js->ev_orphans, &tv);
	return 0;
}

static void
jobs_orphans_cb(evutil_socket_t fd, short what, void *arg)
{
	static char names[JOBS_ACTIVE_MAX][SPOOL_NAME_MAX + 16];
	struct jobs *js = arg;
	size_t i, n = js->norphans;

	(void)fd;
	(void)what;
	memcpy(names, js->orphans, n * sizeof(names[0]));
	js->norphans = 0;
	for (i = 0; i < n; i++)
		(void)jobs_start(js, names[i], 1);
	if (js->norphans == 0)
		js->orphan_tries = 0;
}

/*
 * The window writer: rows go to J.result in job order. A row that finishes
 * ahead of its turn waits in the ring (JOBS_WINDOW rows, by index) and is
 * written to the journal so a crash does not lose it; the row of the first
 * unwritten index goes out with every waiting row that follows it.
 */
static int
job_record(struct job *j, size_t index, const char *row, size_t len,
    int ok)
{
	if (ok)
		j->ndone++;
	else {
		j->nfailed++;
		j->failed_any = 1;
	}
	if (index != j->head) {
		if (journal_result(j->journal, index, row, len) == -1)
			return -1;
		if ((j->ring[index % JOBS_WINDOW] = strndup(row, len)) == NULL)
			return -1;
		return 0;
	}
	if (spool_log_append(j->result, row, len) == -1)
		return -1;
	j->head++;
	while (j->head < j->next && j->ring[j->head % JOBS_WINDOW] != NULL) {
		char *p = j->ring[j->head % JOBS_WINDOW];

		if (spool_log_append(j->result, p, strlen(p)) == -1)
			return -1;
		free(p);
		j->ring[j->head % JOBS_WINDOW] = NULL;
		j->head++;
	}
	return 0;
}

/*
 * The job cannot go on now (e: the errno; what: what failed). Take no more
 * URLs of it; once its transfers are back, job_settle() parks it
 * (job_park) and it is taken up again from its active/ files later.
 */
static void
job_break(struct job *j, int e, const char *what)
{
	if (!j->broken) {
		j->broken_errno = e;
		j->broken_what = what;
		log_warnx("job %s: %s; it waits for its transfers, then tries "
		    "again", j->name, what);
	}
	j->broken = 1;
	j->eof = 1;
}

/* The spool's disk failed under us (ENOSPC, EIO). */
static void
job_fs_error(struct job *j)
{
	job_break(j, errno, "cannot write its result or journal");
}

/* A row for index that needs no transfer (recovered, cancelled). */
static void
job_record_row(struct job *j, size_t index, const char *row, int n)
{
	if (n < 0 || job_record(j, index, row, (size_t)n,
	    result_row_ok(row, (size_t)n)) == -1)
		job_fs_error(j);
}

static void
job_final(struct job *j, struct transfer *t)
{
	struct jobs *js = j->js;
	struct result_row r;
	char row[RESULT_ROW_MAX];
	int n;

	if (t->seg != NULL && seg_final(j, t))
		return;
	if (t->outcome != FETCH_OK)
		fetch_discard(t);
	else if (!t->unchanged)
		j->bytes += t->size;
	if (js->hooks.transfer_final != NULL)
		js->hooks.transfer_final(t, js->arg);
	r.url = job_line_url(t);
	r.ok = t->outcome == FETCH_OK;
	r.unchanged = t->unchanged;
	r.status = t->http_status;
	r.bytes = r.ok ? t->size : 0;
	r.seconds = t->seconds_total;
	r.attempts = t->attempt;
	r.path = t->name;
	r.error = t->error;
	r.node = jobs_cluster(js) ? (t->node != NULL ? t->node : "") : NULL;
	r.served_by = j->mirrors ? t->url : NULL;
	n = result_format(row, sizeof(row), &r);
	if (n < 0 || job_record(j, t->index, row, (size_t)n, r.ok) == -1)
		job_fs_error(j);
}

/*
 * Mirrors. The transfer of a line with mirror= fields holds every URL of
 * the line (t->mirrors, fetch.h); t->url and t->host are the pair in use.
 * Each URL gets the attempts a URL without mirrors gets (1 + http.retries,
 * counted from t->mirror_attempts); when it fails for good, the next one
 * is taken up at once, with the .part and t->expect the last one left, so
 * fetch.c keeps the bytes only for a copy of the same resource (If-Range
 * with the validator, the complete length). The URL in use and t->expect
 * go to the journal (M records) so a restart goes on from them.
 */

/* String i of t->mirrors' layout for e: URLs 0..n-1, then hosts. */
static const char *
job_mirror_str(const struct job_entry *e, size_t i)
{
	size_t n = e->nmirrors + 1;

	if (i < n)
		return i == 0 ? e->url : e->mirrors[i - 1];
	return i == n ? e->host : e->mirror_hosts[i - n - 1];
}

/* t's mirrors from e, one allocation (fetch.h). 0, -1 out of memory. */
static int
job_mirrors_copy(struct transfer *t, const struct job_entry *e)
{
	size_t n = e->nmirrors + 1, i, size = 2 * n * sizeof(char *);
	char **v, *p;

	if (e->nmirrors == 0)
		return 0;
	for (i = 0; i < 2 * n; i++)
		size += strlen(job_mirror_str(e, i)) + 1;
	if ((v = malloc(size)) == NULL)
		return -1;
	p = (char *)(v + 2 * n);
	for (i = 0; i < 2 * n; i++) {
		v[i] = p;
		p = stpcpy(p, job_mirror_str(e, i)) + 1;
	}
	t->mirrors = v;
	t->nmirrors = n;
	t->mirror_length = -1;
	return 0;
}

/* URL k of t's line in use from now on. 0, -1 out of memory. */
static int
job_mirror_use(struct transfer *t, size_t k)
{
	char *url, *host = NULL;

	if ((url = strdup(t->mirrors[k])) == NULL ||
	    (host = strdup(t->mirrors[t->nmirrors + k])) == NULL) {
		free(url);
		return -1;
	}
	free(t->url);
	free(t->host);
	t->url = url;
	t->host = host;
	t->mirror = k;
	return 0;
}

/* The URL of t's job line (the result row's url), whichever is in use. */
static const char *
job_line_url(const struct transfer *t)
{
	return t->mirrors != NULL ? t->mirrors[0] : t->url;
}

/*
 * A URL taken up again after a restart (r: its journal record, or NULL):
 * the URL of its line an earlier run used last and what its .part is a
 * copy of, so the resume asks for the same resource (If-Range).
 */
static void
job_mirror_recover(struct transfer *t, const struct journal_rec *r)
{
	if (r == NULL || !r->has_mirror ||
	    r->mirror >= (t->nmirrors > 0 ? t->nmirrors : 1))
		return;
	if (r->mirror > 0 && job_mirror_use(t, r->mirror) == -1)
		return;         /* out of memory: from its own URL, afresh */
	t->expect = r->expect;
}

/*
 * The first attempt on a mirror found a resource of another length than
 * the one the .part was a copy of (a 206 whose complete length differs:
 * fetch.c emptied the .part). The mirror did nothing wrong: the attempt
 * is not counted against its retries, and the next one starts afresh.
 */
static void
job_mirror_fresh(struct transfer *t)
{
	if (t->mirror == 0 || t->mirror_length < 0 ||
	    t->attempt != t->mirror_attempts + 1 ||
	    t->outcome != FETCH_RETRY || t->http_status != 206 ||
	    t->meta.length < 0 || t->meta.length == t->mirror_length)
		return;
	t->mirror_attempts++;
	t->mirror_length = -1;
}

/*
 * Journal what a restart needs to go on with t: the URL in use and what
 * its .part is a copy of; nothing when neither says more than a new
 * transfer knows.
 */
static void
job_mirror_note(struct job *j, const struct transfer *t)
{
	const struct fetch_meta *m = &t->expect;

	if (t->mirror == 0 && m->length < 0 && m->etag[0] == '\0' &&
	    m->last_modified[0] == '\0')
		return;
	if (journal_mirror(j->journal, t->index, t->mirror, m) == -1)
		job_fs_error(j);
	else
		job_settle_soon(j);
}

/*
 * t failed for good on the URL in use (its retries used up, or an error
 * a retry would not cure). Take up the next URL of its line, when there
 * is one and the failure was the URL's: not when the file could not be
 * written here or the job is cancelled. 1 when t went back to the
 * scheduler; 0 when its failure stands.
 */
static int
job_mirror_next(struct job *j, struct transfer *t)
{
	struct jobs *js = j->js;
	size_t k = t->mirror + 1;

	if (k >= t->nmirrors || j->cancelled || t->errkind == FERR_WRITE ||
	    t->errkind == FERR_RESOURCE)
		return 0;
	if (js->hooks.transfer_retry != NULL)
		js->hooks.transfer_retry(t, js->arg);
	if (job_mirror_use(t, k) == -1) {
		log_warnx("job %s #%zu: out of memory for its next mirror",
		    j->name, t->index);
		return 0;
	}
	log_info("job %s #%zu: %s; trying mirror %zu of %zu (%s)", j->name,
	    t->index, t->error, k, t->nmirrors - 1, t->host);
	t->mirror_attempts = t->attempt++;
	t->mirror_length = t->expect.length;
	job_mirror_note(j, t);
	if (sched_push(js->sched, t) == -1) {
		snprintf(t->error, sizeof(t->error), "cannot schedule a retry");
		return 0;
	}
	return 1;
}

/*
 * Segmented downloads. A URL with http.segments or segments= above 1 is
 * first a probe (FETCH_PROBE, a HEAD through the scheduler like any
 * transfer). When the answer gives the length and says ranges are served,
 * the file is split (fetch_seg_split: at most the segments asked for, each
 * at least http.segment_min_size), the split is recorded in the journal,
 * and one FETCH_SEGMENT transfer per range goes to the scheduler, so
 * segments count against workers.count and per_host as any transfer does
 * and every engine runs them. The URL's own transfer stays live without
 * being queued: it holds the name and makes the URL's one result row.
 * When every segment is in, it goes once more as FETCH_VERIFY: the length
 * and sha256 checked and the rename done where transfers run, never here.
 * Otherwise (no length, no ranges, too short, the probe failed) the URL is
 * fetched as one stream by that same transfer.
 *
 * A segment that fails for good fails the URL; one that finds the
 * resource changed (a 200 to its range, another length) makes the URL
 * start again as one stream once the other segments are back. At a
 * restart the split comes from the journal and each segment resumes from
 * its slot in NAME.part.segs (fetch.c). In cluster mode nothing is
 * segmented: a URL is fetched by one node (see cluster.c).
 */
struct seg_url {
	TAILQ_ENTRY(seg_url) entry;
	struct transfer *url;   /* the URL's transfer; NULL once dropped */
	unsigned want;          /* segments asked for */
	unsigned out;           /* segment transfers live */
	int failed;             /* a segment failed for good */
	int whole;              /* one found the resource changed */
	int attempts;           /* the most attempts any segment needed */
	double started;         /* monotonic s the segments were queued */
	uint64_t counted;       /* bytes of finished segments in j->bytes */
	struct journal_split split;     /* n 0 until it is split */
	long status;            /* of the first segment that failed */
	enum fetch_errkind errkind;
	char error[FETCH_ERR_MAX];
};

static void
seg_free(struct job *j, struct seg_url *g)
{
	if (g == NULL)
		return;
	if (g->url != NULL)
		g->url->seg = NULL;
	TAILQ_REMOVE(&j->segs, g, entry);
	free(g);
}

/* Every group of the job (its transfers are all back or freed). */
static void
seg_free_all(struct job *j)
{
	while (!TAILQ_EMPTY(&j->segs))
		seg_free(j, TAILQ_FIRST(&j->segs));
}

/* A new URL transfer t of entry e: segmented when asked (a probe first).
 * Out of memory it is simply fetched as one stream. */
static void
seg_attach(struct job *j, struct transfer *t, const struct job_entry *e)
{
	long want = e->segments > 0 ? e->segments : j->js->cfg->segments;
	struct seg_url *g;

	if (want <= 1 || jobs_cluster(j->js) ||
	    (g = calloc(1, sizeof(*g))) == NULL)
		return;
	g->url = t;
	g->want = (unsigned)want;
	t->seg = g;
	t->mode = FETCH_PROBE;
	TAILQ_INSERT_TAIL(&j->segs, g, entry);
}

/* An earlier run split t's URL (r->split): no probe, the same ranges. */
static void
seg_recovered(struct job *j, struct transfer *t,
    const struct journal_rec *r)
{
	struct seg_url *g;

	if (r == NULL || r->split == NULL)
		return;
	if (t->seg == NULL) {
		if ((g = calloc(1, sizeof(*g))) == NULL)
			return;
		g->url = t;
		t->seg = g;
		TAILQ_INSERT_TAIL(&j->segs, g, entry);
	}
	g = t->seg;
	g->want = r->split->n;
	g->split = *r->split;
	if (g->split.n == 0) {
		seg_free(j, g);
		t->mode = FETCH_WHOLE;
	}
}

/* A segment or the URL's transfer is dropped unrecorded (stopping, a
 * parked job): the next start resumes from the journal and the .segs. */
static void
seg_drop(struct job *j, struct transfer *t)
{
	struct seg_url *g = t->seg;
	struct transfer *u;

	if (g == NULL)
		return;
	if (t->mode != FETCH_SEGMENT) {
		seg_free(j, g);
		return;
	}
	t->seg = NULL;
	if (--g->out > 0 || (u = g->url) == NULL)
		return;
	seg_free(j, g);
	job_unlink(j, u);
	fetch_transfer_free(u);
}

/* Queue t (a probe, a verify, a URL as one stream). On failure the job
 * breaks and t is dropped. */
static void
seg_push(struct job *j, struct transfer *t)
{
	if (sched_push(j->js->sched, t) == 0)
		return;
	job_break(j, ENOMEM, "out of memory");
	seg_drop(j, t);
	job_unlink(j, t);
	fetch_transfer_free(t);
}

/* A transfer for range i of u's split; NULL out of memory. */
static struct transfer *
seg_transfer_new(struct job *j, struct transfer *u, unsigned i)
{
	struct seg_url *g = u->seg;
	struct transfer *t;

	if ((t = fetch_transfer_new(u->url, u->host, u->dir, u->name)) == NULL)
		return NULL;
	if (fetch_transfer_set_headers(t, u->headers) == -1) {
		fetch_transfer_free(t);
		return NULL;
	}
	t->id = ++j->js->next_id;
	t->owner = j;
	t->index = u->index;
	t->dirfd = u->dirfd;
	t->params = u->params;
	t->mode = FETCH_SEGMENT;
	t->seg_slot = i;
	t->seg_start = g->split.starts[i];
	t->seg_end = i + 1 < g->split.n ? g->split.starts[i + 1] :
	    (uint64_t)g->split.meta.length;
	t->expect = g->split.meta;
	t->seg = g;
	TAILQ_INSERT_TAIL(&j->live, t, owner_entry);
	j->nlive++;
	j->js->nlive++;
	return t;
}

/*
 * Queue a transfer per range of u's split; u waits, live, to verify. 0,
 * or -1 when not one could be queued (u is still the caller's).
 */
static int
seg_launch(struct job *j, struct transfer *u)
{
	struct seg_url *g = u->seg;
	struct transfer *t;
	unsigned i;

	u->mode = FETCH_VERIFY;
	u->expect = g->split.meta;
	g->started = mono_now();
	for (i = 0; i < g->split.n; i++) {
		if ((t = seg_transfer_new(j, u, i)) == NULL ||
		    sched_push(j->js->sched, t) == -1) {
			if (t != NULL) {
				job_unlink(j, t);
				fetch_transfer_free(t);
			}
			job_break(j, ENOMEM, "out of memory");
			break;
		}
		g->out++;
	}
	if (g->out > 0)
		return 0;
	seg_free(j, g);
	return -1;
}

/* Queue a URL's transfer: its segments when it is split, else itself. */
static int
job_queue(struct job *j, struct transfer *t)
{
	const struct seg_url *g = t->seg;

	if (g != NULL && g->split.n > 0)
		return seg_launch(j, t);
	return sched_push(j->js->sched, t);
}

/* The probe is back: split the URL, or fetch it as one stream. */
static void
seg_probed(struct job *j, struct transfer *t)
{
	struct seg_url *g = t->seg;
	unsigned n = 0;

	if (t->outcome == FETCH_OK && t->meta.ranges && t->meta.length > 0)
		n = fetch_seg_split((uint64_t)t->meta.length, g->want,
		    (uint64_t)j->js->cfg->segment_min_size, g->split.starts);
	t->outcome = FETCH_OK;
	t->errkind = FERR_NONE;
	t->error[0] = '\0';
	if (n < 2) {
		seg_free(j, g);
		t->mode = FETCH_WHOLE;
		seg_push(j, t);
		return;
	}
	g->split.n = n;
	g->split.meta = t->meta;
	/* Written out now: the segments write their slots at once. */
	if (journal_split(j->journal, t->index, &g->split) == -1 ||
	    journal_flush(j->journal) == -1)
		job_fs_error(j);
	if (seg_launch(j, t) == -1) {
		job_unlink(j, t);
		fetch_transfer_free(t);
	}
}

/* Start u's URL again as one stream from byte 0 (the resource changed,
 * or the verify failed): the .part and .segs go, the journal says so. */
static void
seg_restart(struct job *j, struct transfer *u)
{
	struct journal_split none = { 0 };

	log_info("job %s #%zu: %s", j->name, u->index, u->error);
	fetch_discard(u);
	j->bytes -= ((struct seg_url *)u->seg)->counted;
	seg_free(j, u->seg);
	if (journal_split(j->journal, u->index, &none) == -1)
		job_fs_error(j);
	u->mode = FETCH_WHOLE;
	u->part_dev = u->part_ino = 0;
	fetch_meta_unknown(&u->expect);
	u->outcome = FETCH_OK;
	seg_push(j, u);
}

/* Every segment of g is back: verify, restart or fail the URL. */
static void
seg_check(struct job *j, struct seg_url *g)
{
	struct transfer *u = g->url;

	if (g->out > 0 || u == NULL)
		return;
	if (u->attempt < g->attempts)
		u->attempt = g->attempts;
	if (g->failed) {
		fetch_set_error(u, FETCH_FAIL, g->errkind, "%s", g->error);
		u->http_status = g->status;
		u->seconds_total = mono_now() - g->started;
		job_unlink(j, u);
		job_final(j, u);
		fetch_transfer_free(u);
	} else if (g->whole) {
		snprintf(u->error, sizeof(u->error), "%s", g->error);
		seg_restart(j, u);
	} else
		seg_push(j, u);
}

/*
 * job_final() of a segmented URL's transfer: a segment that ended for
 * good is the URL's business (1: no row of its own); the URL's own
 * transfer makes its row (0), with bytes of its finished segments no
 * longer counted twice.
 */
static int
seg_final(struct job *j, struct transfer *t)
{
	struct seg_url *g = t->seg;

	if (t->mode != FETCH_SEGMENT) {
		j->bytes -= g->counted;
		if (t->mode == FETCH_VERIFY && g->started > 0)
			t->seconds_total = mono_now() - g->started;
		seg_free(j, g);
		return 0;
	}
	t->seg = NULL;
	if (t->outcome != FETCH_OK && !g->failed) {
		g->failed = 1;
		g->status = t->http_status;
		g->errkind = t->errkind;
		snprintf(g->error, sizeof(g->error), "%s", t->error);
	}
	if (t->attempt > g->attempts)
		g->attempts = t->attempt;
	g->out--;
	seg_check(j, g);
	return 1;
}

/*
 * jobs_transfer_done() of a probe, segment or verify: 1 when handled
 * here (t is freed or queued again), 0 to go on as for any transfer
 * (retries; its end comes back through job_final()).
 */
static int
seg_done(struct job *j, struct transfer *t)
{
	struct seg_url *g = t->seg;

	if (t->mode == FETCH_PROBE && j->cancelled) {
		fetch_set_error(t, FETCH_FAIL, FERR_OTHER, "cancelled");
		return 0;
	}
	if (t->mode == FETCH_PROBE && !t->unchanged) {
		seg_probed(j, t);
		return 1;
	}
	if (t->mode == FETCH_PROBE)
		return 0;       /* a 304: the URL's row, as for any transfer */
	if (t->mode == FETCH_VERIFY) {
		if (t->outcome != FETCH_RETRY || j->cancelled ||
		    (t->errkind != FERR_CHECKSUM &&
		    t->errkind != FERR_SEGMENT) ||
		    t->attempt > j->js->cfg->retries)
			return 0;
		t->attempt++;
		seg_restart(j, t);
		return 1;
	}
	if (t->outcome == FETCH_OK) {
		if (t->attempt > g->attempts)
			g->attempts = t->attempt;
		g->counted += t->size;
		j->bytes += t->size;
	} else if (t->errkind == FERR_SEGMENT && !j->cancelled) {
		if (!g->whole)
			snprintf(g->error, sizeof(g->error), "%s", t->error);
		g->whole = 1;
	} else
		return 0;
	t->seg = NULL;
	job_unlink(j, t);
	fetch_transfer_free(t);
	g->out--;
	seg_check(j, g);
	return 1;
}

/*
 * The next entry from the reader that J.result does not hold yet (a
 * resumed job has its first `head` URLs there). 1, 0 at the end, -1 when
 * the file changed after validation (then the job fails rather than guess).
 */
static int
job_next_entry(struct job *j, struct job_entry *e)
{
	char err[JOB_ERR_MAX + 32];
	int rv;

	do {
		memset(e, 0, sizeof(*e));
		rv = job_reader_next(j->reader, e, err, sizeof(err));
		if (rv != 1)
			break;
		if (j->nread++ >= j->next)
			return 1;
		job_entry_free(e);
	} while (1);
	if (rv == -1)
		log_warnx("job %s changed while running: %s", j->name, err);
	return rv;
}

/*
 * A live transfer for entry e, URL index: the output name it asks for (or
 * the one an earlier run reserved, recname) still to be reserved. NULL when
 * out of memory.
 */
static struct transfer *
job_transfer_new(struct job *j, const struct job_entry *e, size_t index,
    const char *recname)
{
	struct jobs *js = j->js;
	struct transfer *t;
	char name[JOB_NAME_MAX + 1];

	if (j->names == NULL) {
		if ((j->names = names_new(j->dir, j->nurls)) == NULL)
			return NULL;
		if (j->refresh != NULL)
			names_set_refresh(j->names);
	}
	if (recname == NULL && e->out == NULL)
		job_name_from_url(e->url, name, sizeof(name));
	t = fetch_transfer_new(e->url, e->host, j->dir,
	    recname != NULL ? recname : e->out != NULL ? e->out : name);
	if (t == NULL || job_mirrors_copy(t, e) == -1 ||
	    fetch_transfer_set_headers(t, e->headers) == -1) {
		fetch_transfer_free(t);
		return NULL;
	}
	t->id = ++js->next_id;
	t->owner = j;
	t->index = index;
	t->has_sha256 = e->has_sha256;
	memcpy(t->sha256, e->sha256, sizeof(t->sha256));
	t->refresh = j->refresh != NULL;
	fetch_params_from_config(&t->params, js->cfg);
	TAILQ_INSERT_TAIL(&j->live, t, owner_entry);
	j->nlive++;
	js->nlive++;
	seg_attach(j, t, e);
	return t;
}

/*
 * Reserve t's output name, record the claim and queue t. recname: the name
 * an earlier run reserved for it, or NULL. 1 when the URL was taken (queued
 * or, when it needs no fetch, recorded), 0 when the job cannot go on now.
 */
static int
job_dispatch(struct job *j, struct transfer *t, const char *recname)
{
	int rv, e;

	rv = names_reserve(j->names, t, recname != NULL);
	e = errno;
	if (rv == -1 && t->errkind == FERR_RESOURCE) {
		/* Out of descriptors here: not the URL's fault. */
		job_break(j, EMFILE, "out of file descriptors");
		goto drop;
	}
	if (rv == -1 && t->outcome == FETCH_RETRY) {
		/* The download dir fails for now (full, an I/O error): the
		 * job waits, as when the spool fails, instead of failing
		 * the URL for good. */
		job_break(j, e, "cannot make its directories in the "
		    "download dir");
		goto drop;
	}
	if (rv != 0) {
		/* 1: finished by an earlier run; -1: cannot be written. */
		if (rv == 1) {
			t->outcome = FETCH_OK;
			t->http_status = 200;
		} else
			t->outcome = FETCH_FAIL;
		job_unlink(j, t);
		job_final(j, t);
		fetch_transfer_free(t);
		return 1;
	}
	if (recname == NULL || strcmp(recname, t->name) != 0) {
		if (journal_claim(j->journal, t->index, t->name) == -1) {
			job_fs_error(j);
			goto drop;
		}
	}
	if (job_queue(j, t) == -1) {
		job_break(j, ENOMEM, "out of memory");
		goto drop;
	}
	return 1;
drop:
	/* Not recorded anywhere: the next start fetches it. */
	seg_drop(j, t);
	job_unlink(j, t);
	fetch_transfer_free(t);
	j->eof = 1;
	return 0;
}

/*
 * Read the next URL of a running job and make it a transfer (or a result,
 * when an earlier run finished it or the job is cancelled). 1 when one was
 * taken, 0 at the end or when the job cannot go on now.
 */
static int
job_read_one(struct job *j)
{
	const struct journal_rec *r = NULL;
	struct job_entry e;
	struct transfer *t;
	char row[RESULT_ROW_MAX];
	size_t index;
	int rv;

	if ((rv = job_next_entry(j, &e)) != 1) {
		j->eof = 1;
		if (rv == -1) {
			j->failed_any = 1;
			job_add_error(j, "-",
			    "the job file changed while running");
		}
		return 0;
	}
	index = j->next++;
	if (j->rec != NULL)
		r = journal_recovery_find(j->rec, index);
	if (r != NULL && r->row != NULL)
		job_record_row(j, index, r->row, (int)strlen(r->row));
	else if (j->cancelled)
		job_record_row(j, index, row, result_format_failed(row,
		    sizeof(row), e.url, "cancelled"));
	else if ((t = job_transfer_new(j, &e, index,
	    r != NULL ? r->name : NULL)) != NULL) {
		job_mirror_recover(t, r);
		seg_recovered(j, t, r);
		job_entry_free(&e);
		return job_dispatch(j, t, r != NULL ? r->name : NULL);
	} else {
		/* The entry is read: taking the job up again reads it anew. */
		job_entry_free(&e);
		job_break(j, ENOMEM, "out of memory");
		return 0;
	}
	job_entry_free(&e);
	return 1;
}

/*
 * Write out what the job recorded, and finish it when every URL is in.
 * Returns 1 when the job was finished (and freed).
 */
/* A queued transfer of a job that cannot record it: the next take-up of
 * the job fetches it. */
static void
drop_queued(struct transfer *t, void *arg)
{
	seg_drop(arg, t);
	job_unlink(arg, t);
	fetch_transfer_free(t);
}

static int
job_settle(struct job *j)
{
	if (j->state == JOB_FINISHING || j->state == JOB_WAITING)
		return 0;
	if (!j->broken && (spool_log_flush(j->result) == -1 ||
	    journal_flush(j->journal) == -1))
		job_fs_error(j);
	if (j->broken) {
		sched_remove_owner(j->js->sched, j, drop_queued, j);
		if (j->nlive == 0)
			job_park(j, j->broken_errno, j->broken_what);
		return 0;
	}
	if (j->state == JOB_RUNNING && j->eof && j->nlive == 0 &&
	    j->head == j->next && !j->js->stopping) {
		job_finish(j);
		return 1;
	}
	return 0;
}

size_t
jobs_budget(long workers)
{
	return (size_t)(workers > 0 ? workers : 0) * 2 + 64;
}

size_t
jobs_live(const struct jobs *js)
{
	return js->nlive;
}

/*
 * Fill the scheduler from the running jobs until want transfers are out,
 * at most the budget (twice the workers, so the engine never waits for the
 * next URL). Jobs take turns: each serves a few URLs and goes to the back
 * of the list, so when one slot frees up at a time the slots still rotate
 * between jobs instead of going to whichever job was claimed first.
 */
size_t
jobs_refill(struct jobs *js, size_t want, long workers)
{
	struct job *j;
	size_t budget, took, turn, i, n, added = 0;
	int any;

	if (js->stopping)
		return 0;
	budget = jobs_budget(workers);
	if (want < budget)
		budget = want;
	do {
		any = 0;
		n = js->njobs;
		for (i = 0; i < n && js->nlive < budget; i++) {
			if ((j = TAILQ_FIRST(&js->list)) == NULL)
				break;
			TAILQ_REMOVE(&js->list, j, entry);
			TAILQ_INSERT_TAIL(&js->list, j, entry);
			if (j->state != JOB_RUNNING)
				continue;
			for (turn = 0, took = 0; turn < 16 &&
			    js->nlive < budget && !j->eof &&
			    j->next < j->head + JOBS_WINDOW; turn++)
				took += job_read_one(j);
			if (took > 0)
				any = 1;
			added += took;
			/* May finish (and free) the job. */
			if (j->eof || took > 0)
				(void)job_settle(j);
		}
	} while (any && js->nlive < budget);
	return added;
}

/* A failed attempt of t, for the job's last errors (`jobs JOB`). */
static void
job_note_error(struct job *j, const struct transfer *t)
{
	struct job_error *e = &j->errs[j->err_next];
	char *url;

	if ((url = strdup(t->url)) == NULL)
		return;         /* only the list of errors loses it */
	free(e->url);
	e->url = url;
	e->index = t->index;
	snprintf(e->error, sizeof(e->error), "%s", t->error);
	e->status = t->http_status;
	e->attempt = t->attempt;
	e->time = (double)time(NULL);
	j->err_next = (j->err_next + 1) % JOBS_URL_ERRORS;
	if (j->nerrs < JOBS_URL_ERRORS)
		j->nerrs++;
}

/* After a transfer's end: settle now when it was the job's last one (a
 * stop may be waiting for it), else at the end of the loop turn. */
static void
job_settle_after(struct job *j)
{
	if (j->eof && j->nlive == 0)
		(void)job_settle(j);
	else
		job_settle_soon(j);
}

/*
 * t came back with a transient failure: send it again later while that is
 * allowed. Out of descriptors or memory here is no fault of the URL's: it
 * is always tried again, not counted against http.retries; any other
 * failure is, per URL of the line (job_mirror_fresh). 1 when t went back
 * to the scheduler; 0 when its failure stands (its error may say why).
 */
static int
job_retry(struct job *j, struct transfer *t)
{
	struct jobs *js = j->js;
	double delay;

	if (t->outcome != FETCH_RETRY || j->cancelled)
		return 0;
	if (t->errkind == FERR_RESOURCE) {
		delay = sched_backoff(2, JOBS_RESOURCE_DELAY,
		    JOBS_RESOURCE_DELAY, -1, &js->seed);
		log_debug("job %s #%zu: %s; again in %.1fs", j->name,
		    t->index, t->error, delay);
		if (js->hooks.transfer_retry != NULL)
			js->hooks.transfer_retry(t, js->arg);
		if (sched_retry(js->sched, t, delay) == 0)
			return 1;
	}
	job_mirror_fresh(t);
	if (t->attempt - t->mirror_attempts > js->cfg->retries)
		return 0;
	t->attempt++;
	job_mirror_note(j, t);
	delay = sched_backoff(t->attempt - t->mirror_attempts,
	    (double)js->cfg->retry_delay, (double)js->cfg->retry_max_delay,
	    t->retry_after, &js->seed);
	log_debug("job %s #%zu: %s; attempt %d in %.1fs", j->name, t->index,
	    t->error, t->attempt, delay);
	if (js->hooks.transfer_retry != NULL)
		js->hooks.transfer_retry(t, js->arg);
	if (sched_retry(js->sched, t, delay) == 0)
		return 1;
	snprintf(t->error, sizeof(t->error), "cannot schedule a retry");
	return 0;
}

void
jobs_transfer_done(struct jobs *js, struct transfer *t)
{
	struct job *j = t->owner;

	t->seconds_total += t->seconds;
	if (t->outcome != FETCH_OK)
		job_note_error(j, t);
	if (js->stopping || j->broken) {
		/* Not recorded: the .part and the claim let the next start
		 * (or take-up, job_park) resume it. */
		goto drop;
	}
	if (t->seg != NULL && seg_done(j, t)) {
		job_settle_after(j);
		return;
	}
	if (job_retry(j, t))
		return;
	if (t->outcome != FETCH_OK && job_mirror_next(j, t))
		return;
	if (t->outcome == FETCH_RETRY) {
		/* Out of attempts: a transient failure is now final. */
		t->outcome = FETCH_FAIL;
		if (j->cancelled)
			snprintf(t->error, sizeof(t->error), "cancelled");
	}
	job_unlink(j, t);
	job_final(j, t);
	fetch_transfer_free(t);
	job_settle_after(j);
	return;
drop:
	if (!j->broken)
		job_mirror_note(j, t);  /* the next start goes on from it */
	seg_drop(j, t);
	job_unlink(j, t);
	fetch_transfer_free(t);
	if (j->broken)
		(void)job_settle(j);    /* parks it after the last one */
}

size_t
jobs_waiting(const struct jobs *js)
{
	const struct job *j;
	size_t n = 0;

	TAILQ_FOREACH(j, &js->list, entry)
		n += j->state == JOB_WAITING;
	return n + js->norphans;
}

const char *
jobs_last_error(const struct jobs *js)
{
	return js->last_error;
}

void
jobs_stop(struct jobs *js)
{
	struct job *j;

	js->stopping = 1;
	TAILQ_FOREACH(j, &js->list, entry) {
		if (j->state == JOB_WAITING || j->broken)
			continue;       /* nothing it could write */
		if (spool_log_flush(j->result) == -1 ||
		    journal_flush(j->journal) == -1)
			log_warnx("job %s: could not write its records", j->name);
	}
}

uint64_t
jobs_inflight_bytes(const struct jobs *js)
{
	const struct job *j;
	const struct transfer *t;
	uint64_t sum = 0;

	TAILQ_FOREACH(j, &js->list, entry)
		TAILQ_FOREACH(t, &j->live, owner_entry)
			sum += __atomic_load_n(&t->progress, __ATOMIC_RELAXED);
	return sum;
}

/*
 * The rates of a job: bytes (its finished files and the progress of its
 * live transfers) and URLs finished, between the newest sample and the
 * oldest one kept, at most JOBS_RATE_WINDOW s before it.
 */
static void
job_rates(const struct job *j, double *bps, double *ups)
{
	const struct job_sample *a, *b;
	double dt;

	*bps = *ups = 0;
	if (j->nsamples < 2)
		return;
	b = &j->samples[(j->sample_next + JOBS_RATE_WINDOW) %
	    (JOBS_RATE_WINDOW + 1)];
	a = &j->samples[(j->sample_next + JOBS_RATE_WINDOW + 1 -
	    j->nsamples) % (JOBS_RATE_WINDOW + 1)];
	if ((dt = b->t - a->t) <= 0)
		return;
	*bps = (double)(b->bytes - a->bytes) / dt;
	*ups = (double)(b->urls - a->urls) / dt;
}

/* Bytes of finished files plus the progress of the live transfers. */
static uint64_t
job_bytes(const struct job *j, size_t *running)
{
	const struct transfer *t;
	uint64_t sum = j->bytes;

	*running = 0;
	TAILQ_FOREACH(t, &j->live, owner_entry) {
		sum += __atomic_load_n(&t->progress, __ATOMIC_RELAXED);
		*running += t->engine != NULL;
	}
	return sum;
}

void
jobs_sample(struct jobs *js, double now)
{
	struct job_sample *p, *last;
	struct job *j;
	size_t running;

	TAILQ_FOREACH(j, &js->list, entry) {
		p = &j->samples[j->sample_next];
		p->t = now;
		p->bytes = job_bytes(j, &running);
		p->urls = j->ndone + j->nfailed;
		if (j->nsamples > 0) {
			last = &j->samples[(j->sample_next + JOBS_RATE_WINDOW) %
			    (JOBS_RATE_WINDOW + 1)];
			/* Never backwards (a job taken up again counts
			 * anew): a rate is not negative. */
			if (p->bytes < last->bytes || p->urls < last->urls)
				j->nsamples = 0;
		}
		j->sample_next = (j->sample_next + 1) % (JOBS_RATE_WINDOW + 1);
		if (j->nsamples < JOBS_RATE_WINDOW + 1)
			j->nsamples++;
	}
}

/*
 * The ETA is the URLs still to finish over the URL rate of the last
 * JOBS_RATE_WINDOW s: a job's URLs are of any size, but a rate of whole
 * URLs needs no lengths the server may not send, and it counts the time
 * between transfers too. Unknown (-1) until the job is validated and while
 * no URL finished in the window.
 */
static void
job_info_fill(const struct job *j, struct job_info *ji, double now)
{
	static const char *const states[] = {
		"validating", "running", "finishing", "waiting"
	};
	size_t end = j->ndone + j->nfailed, i, k;

	memset(ji, 0, sizeof(*ji));
	ji->name = j->name;
	ji->state = states[j->state];
	ji->urls = j->nurls;
	ji->done = j->ndone;
	ji->failed = j->nfailed;
	ji->running = j->nlive;
	ji->bytes = job_bytes(j, &ji->transferring);
	if (j->state != JOB_VALIDATING && j->nurls > end + ji->transferring)
		ji->queued = j->nurls - end - ji->transferring;
	if (j->state == JOB_WAITING) {
		ji->waiting = j->wait_reason;
		ji->retry_in = j->wait_until > now ? j->wait_until - now : 0;
	}
	job_rates(j, &ji->rate, &ji->url_rate);
	ji->eta = -1;
	if (j->state != JOB_VALIDATING && end >= j->nurls)
		ji->eta = 0;
	else if (j->state != JOB_VALIDATING && ji->url_rate > 0)
		ji->eta = (double)(j->nurls - end) / ji->url_rate;
	ji->seconds = now - j->claimed_at;
	for (i = 0; i < j->nerrs; i++) {
		k = (j->err_next + JOBS_URL_ERRORS - j->nerrs + i) %
		    JOBS_URL_ERRORS;
		ji->errors[i].index = j->errs[k].index;
		ji->errors[i].url = j->errs[k].url;
		ji->errors[i].error = j->errs[k].error;
		ji->errors[i].status = j->errs[k].status;
		ji->errors[i].attempt = j->errs[k].attempt;
		ji->errors[i].time = j->errs[k].time;
	}
	ji->nerrors = j->nerrs;
}

void
jobs_foreach(const struct jobs *js,
    void (*cb)(const struct job_info *, void *), void *arg)
{
	const struct job *j;
	struct job_info ji;
	double now = mono_now();

	TAILQ_FOREACH(j, &js->list, entry) {
		job_info_fill(j, &ji, now);
		cb(&ji, arg);
	}
}

int
jobs_info(const struct jobs *js, const char *name, struct job_info *ji)
{
	const struct job *j;

	TAILQ_FOREACH(j, &js->list, entry)
		if (strcmp(j->name, name) == 0) {
			job_info_fill(j, ji, mono_now());
			return 0;
		}
	return -1;
}

const char *
jobs_transfer_job(const struct transfer *t)
{
	const struct job *j = t->owner;

	return j->name;
}

struct cancel_ctx {
	struct jobs *js;
	struct job *j;
};

static void
cancel_queued(struct transfer *t, void *arg)
{
	struct cancel_ctx *cc = arg;

	t->outcome = FETCH_FAIL;
	t->errkind = FERR_OTHER;
	snprintf(t->error, sizeof(t->error), "cancelled");
	job_unlink(cc->j, t);
	job_final(cc->j, t);
	fetch_transfer_free(t);
}

int
jobs_cancel(struct jobs *js, const char *name,
    void (*cancel)(struct transfer *, void *), void *arg)
{
	struct cancel_ctx cc;
	struct transfer *t;
	struct job *j;

	TAILQ_FOREACH(j, &js->list, entry)
		if (strcmp(j->name, name) == 0)
			break;
	if (j == NULL || j->state == JOB_FINISHING || j->moving)
		return -1;
	log_info("job %s: cancelled", j->name);
	j->cancelled = 1;
	if (j->state == JOB_WAITING)
		return 0;       /* its URLs not read yet become "cancelled" */
	if (j->state == JOB_VALIDATING) {
		event_del(j->ev);
		job_add_error(j, "-", "cancelled before it started");
		job_finish(j);
		return 0;
	}
	cc.js = js;
	cc.j = j;
	sched_remove_owner(js->sched, j, cancel_queued, &cc);
	/* Running transfers come back through jobs_transfer_done() and are
	 * not retried. */
	TAILQ_FOREACH(t, &j->live, owner_entry)
		cancel(t, arg);
	/* The URLs not read yet become "cancelled" rows as the window
	 * moves on (job_read_one), so the result keeps a row per URL. */
	(void)job_settle(j);
	return 0;
}
