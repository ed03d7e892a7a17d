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
 *     name reserved (fetch_prepare), a claim record in active/J.journal, and
 *     goes to the scheduler. Results are appended to active/J.result in job
 *     order; one that finishes ahead of its turn waits in the window and is
 *     also written to the journal so a crash does not lose it.
 *  3. finishing: with daemon.sync the job's files are flushed to disk with
 *     one syncfs() (not one fsync per file), then spool_finish() moves the
 *     result and the job.
 *
 * Restart: J.result's lines tell how many URLs are done in order; the
 * journal adds the claims and results beyond that. A URL whose final file
 * exists but whose result was not recorded is recognised by fetch_prepare()
 * (files are renamed to their final name only after verification), so
 * nothing that completed is fetched again.
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
#include "log.h"

#define JOBS_VALIDATE_CHUNK 4096 /* lines validated per loop turn */
#define JOBS_MAX_ERRORS 100      /* error rows kept for a malformed job */
#define JOBS_LINE_MAX (JOB_LINE_MAX + JOB_PATH_MAX + FETCH_ERR_MAX + 128)

static const char result_header[] =
    "#url\toutcome\thttp_status\tbytes\tseconds\tattempts\tpath\terror\n";

enum job_state {
	JOB_VALIDATING = 0,
	JOB_RUNNING,
	JOB_FINISHING,
};

/* What the journal of an earlier run says about one URL. */
struct recovered {
	size_t index;
	char *name;             /* reserved output name, or NULL */
	char *line;             /* its result line (with '\n'), or NULL */
};

struct job {
	TAILQ_ENTRY(job) entry;
	struct jobs *js;
	char *name;
	char *dir;              /* download_dir/J */
	int dirfd;              /* dir, opened with the first URL; -1 */
	uint64_t *seen;         /* names reserved, when this run made dir */
	size_t seen_bits;       /* a power of 2 */
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
	struct name_node **names;  /* hash set: output names of live ones */
	size_t nnames, nbuckets;
	size_t ndone, nfailed;
	uint64_t bytes;

	struct spool_log *result, *journal;
	struct recovered *rec;
	size_t nrec, recpos;

	struct event *ev;       /* runs the next validation chunk */
	int dirty;              /* records to write out (jobs->ev_settle) */
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
};

static void job_free(struct job *);

/*
 * The output names of a job's live transfers. Their .part files are only
 * created by fetch_begin() on the thread that runs them, so a name can be
 * reserved before it exists on disk: this set is what keeps two URLs of a
 * job from getting the same name meanwhile. Bounded by the window.
 */
struct name_node {
	struct name_node *next;
	const struct transfer *t;       /* t->name is the key */
};

static size_t
name_hash(const char *s)
{
	size_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static int
name_taken(const char *name, void *arg)
{
	struct job *j = arg;
	struct name_node *n;

	if (j->nbuckets == 0)
		return 0;
	for (n = j->names[name_hash(name) % j->nbuckets]; n != NULL;
	    n = n->next)
		if (strcmp(n->t->name, name) == 0)
			return 1;
	return 0;
}

/*
 * The names a job reserved in a directory this run created, as a Bloom
 * filter. Only the job writes into its directory, so a name the filter has
 * never seen (nor its .part) cannot be there and reserving it needs no
 * lstat; one it may have seen is checked on disk as before. A name is added
 * with each of its directories ("a/b/c" adds "a" and "a/b"), so a later
 * "out=a" still finds the directory in the way. Sized from the job's URL
 * count (10 bits per name, 7 probes: under 1% false "maybe"s), at most
 * SEEN_BITS_MAX bits; past that it only says "maybe" more often.
 */
#define SEEN_BITS_MIN 1024
#define SEEN_BITS_MAX ((size_t)1 << 24)
#define SEEN_PROBES 7

static void
seen_init(struct job *j)
{
	size_t bits = SEEN_BITS_MIN;

	while (bits < SEEN_BITS_MAX && bits < j->nurls * 10)
		bits <<= 1;
	if ((j->seen = calloc(bits / 64, sizeof(*j->seen))) != NULL)
		j->seen_bits = bits;
}

/* Two hashes of s[0..len) for double hashing. */
static void
seen_hash(const char *s, size_t len, uint64_t *h1, uint64_t *h2)
{
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
	*h1 = h;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	*h2 = h | 1;
}

static int
seen_maybe(const struct job *j, const char *s, size_t len)
{
	uint64_t h1, h2, b;
	int k;

	seen_hash(s, len, &h1, &h2);
	for (k = 0; k < SEEN_PROBES; k++) {
		b = (h1 + (uint64_t)k * h2) & (j->seen_bits - 1);
		if (!(j->seen[b / 64] & ((uint64_t)1 << (b % 64))))
			return 0;
	}
	return 1;
}

static void
seen_add_prefix(struct job *j, const char *s, size_t len)
{
	uint64_t h1, h2, b;
	int k;

	seen_hash(s, len, &h1, &h2);
	for (k = 0; k < SEEN_PROBES; k++) {
		b = (h1 + (uint64_t)k * h2) & (j->seen_bits - 1);
		j->seen[b / 64] |= (uint64_t)1 << (b % 64);
	}
}

static void
seen_add(struct job *j, const char *name)
{
	const char *p;

	if (j->seen == NULL)
		return;
	for (p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/'))
		seen_add_prefix(j, name, (size_t)(p - name));
	seen_add_prefix(j, name, strlen(name));
}

/* fetch_reserve()'s absent(): 1 when name surely is not on disk. */
static int
name_absent(const char *name, void *arg)
{
	struct job *j = arg;

	return j->seen != NULL && !seen_maybe(j, name, strlen(name));
}

static int
names_add(struct job *j, const struct transfer *t)
{
	struct name_node *n, **nb, *next;
	size_t i, nbuckets;

	if (j->nnames >= j->nbuckets) {
		nbuckets = j->nbuckets ? j->nbuckets * 2 : 256;
		if ((nb = calloc(nbuckets, sizeof(*nb))) == NULL)
			return -1;
		for (i = 0; i < j->nbuckets; i++)
			for (n = j->names[i]; n != NULL; n = next) {
				next = n->next;
				n->next = nb[name_hash(n->t->name) % nbuckets];
				nb[name_hash(n->t->name) % nbuckets] = n;
			}
		free(j->names);
		j->names = nb;
		j->nbuckets = nbuckets;
	}
	if ((n = malloc(sizeof(*n))) == NULL)
		return -1;
	n->t = t;
	n->next = j->names[name_hash(t->name) % j->nbuckets];
	j->names[name_hash(t->name) % j->nbuckets] = n;
	j->nnames++;
	return 0;
}

static void
names_del(struct job *j, const struct transfer *t)
{
	struct name_node **pp, *n;

	if (j->nbuckets == 0)
		return;
	for (pp = &j->names[name_hash(t->name) % j->nbuckets]; (n = *pp) != NULL;
	    pp = &n->next)
		if (n->t == t) {
			*pp = n->next;
			free(n);
			j->nnames--;
			return;
		}
}

/* t leaves the job's live transfers (finished, dropped or cancelled). */
static void
job_unlink(struct job *j, struct transfer *t)
{
	TAILQ_REMOVE(&j->live, t, owner_entry);
	names_del(j, t);
	j->nlive--;
	j->js->nlive--;
}
static void job_validate_cb(evutil_socket_t, short, void *);
static int job_settle(struct job *);

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
	if ((js->ev_settle = event_new(base, -1, 0, jobs_settle_cb, js)) ==
	    NULL) {
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
	return js->njobs >= JOBS_ACTIVE_MAX;
}

static void
job_free(struct job *j)
{
	struct transfer *t;
	size_t i;

	if (j == NULL)
		return;
	/* Only at teardown: every transfer has come back by then, but the
	 * ones still queued in the scheduler are freed by their owner. */
	while ((t = TAILQ_FIRST(&j->live)) != NULL) {
		job_unlink(j, t);
		fetch_transfer_free(t);
	}
	free(j->names);
	if (j->ev != NULL)
		event_free(j->ev);
	job_reader_free(j->reader);
	if (j->fd != -1)
		close(j->fd);
	spool_log_close(j->result);
	spool_log_close(j->journal);
	if (j->ring != NULL) {
		for (i = 0; i < JOBS_WINDOW; i++)
			free(j->ring[i]);
		free(j->ring);
	}
	for (i = 0; i < j->nrec; i++) {
		free(j->rec[i].name);
		free(j->rec[i].line);
	}
	free(j->rec);
	free(j->errors);
	if (j->dirfd != -1)
		close(j->dirfd);
	free(j->seen);
	free(j->dir);
	free(j->name);
	free(j);
}

/* Copy s into a result field: tabs, newlines and other control bytes
 * would break the row, so they become spaces. */
static void
field_clean(char *dst, size_t len, const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ?
		    ' ' : s[i];
	dst[i] = '\0';
}

static int
format_row(char *buf, size_t len, const char *url, int ok, long status,
    uint64_t bytes, double seconds, int attempts, const char *path,
    const char *error)
{
	char u[JOB_LINE_MAX + 1], p[JOB_PATH_MAX + 16], e[FETCH_ERR_MAX + 64];
	int n;

	field_clean(u, sizeof(u), url);
	field_clean(p, sizeof(p), path != NULL && *path != '\0' ? path : "-");
	field_clean(e, sizeof(e), error != NULL && *error != '\0' ? error : "-");
	n = snprintf(buf, len, "%s\t%s\t%ld\t%" PRIu64 "\t%.3f\t%d\t%s\t%s\n",
	    u, ok ? "ok" : "failed", status, bytes, seconds, attempts, p, e);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

/*
 * Validation. A malformed job is refused as a whole, so the parse of every
 * line comes before any fetch. Chunks keep the loop responsive.
 */
static void
job_add_error(struct job *j, const char *raw, const char *msg)
{
	char row[JOBS_LINE_MAX], *p;
	int n;

	j->nerrors++;
	if (j->nerrors > JOBS_MAX_ERRORS)
		return;
	n = format_row(row, sizeof(row), raw, 0, 0, 0, 0, 0, NULL, msg);
	if (n < 0)
		return;
	if ((p = realloc(j->errors, j->errlen + n + 1)) == NULL)
		return;
	memcpy(p + j->errlen, row, n + 1);
	j->errors = p;
	j->errlen += n;
}

static int
job_open_logs(struct job *j)
{
	struct spool *sp = j->js->spool;

	if (j->result == NULL &&
	    (j->result = spool_log_open(sp, j->name, ".result")) == NULL)
		return -1;
	if (spool_log_lines(j->result) == 0 &&
	    (spool_log_append(j->result, result_header,
	    sizeof(result_header) - 1) == -1 ||
	    spool_log_flush(j->result) == -1))
		return -1;
	return 0;
}

static void
job_finish(struct job *j)
{
	struct jobs *js = j->js;
	char row[256];
	int failed = j->failed_any || j->nerrors > 0 || j->cancelled;
	int fd, n;

	j->state = JOB_FINISHING;
	if (j->nerrors > 0 && spool_log_lines(j->result) <= 1) {
		if (spool_log_append(j->result, j->errors, j->errlen) == -1)
			goto fail;
		if (j->nerrors > JOBS_MAX_ERRORS) {
			char msg[64];

			snprintf(msg, sizeof(msg), "%zu more malformed lines",
			    j->nerrors - JOBS_MAX_ERRORS);
			n = format_row(row, sizeof(row), "-", 0, 0, 0, 0, 0,
			    NULL, msg);
			if (n > 0 && spool_log_append(j->result, row, n) == -1)
				goto fail;
		}
	}
	/* One syncfs for every file of the job instead of an fsync each: the
	 * files were written by whichever thread fetched them. */
	if (js->cfg->sync && j->ndone > 0) {
		fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1 || syncfs(fd) == -1) {
			/* done/ promises durable files: not without this. */
			log_warn("%s: syncfs", j->dir);
			if (fd != -1)
				close(fd);
			goto fail;
		}
		close(fd);
	}
	if (spool_log_sync(j->result) == -1)
		goto fail;
	spool_log_close(j->result);
	j->result = NULL;
	spool_log_close(j->journal);
	j->journal = NULL;
	if (spool_finish(js->spool, j->name, failed) == -1)
		goto fail;
	log_info("job %s %s: %zu ok, %zu failed%s", j->name,
	    failed ? "failed" : "done", j->ndone, j->nfailed,
	    j->nerrors > 0 ? " (malformed)" : "");
	if (js->hooks.job_finished != NULL)
		js->hooks.job_finished(j->name, failed, js->arg);
	goto out;
fail:
	log_warnx("job %s: could not be finished; it stays in active/ and "
	    "is taken up again at the next start", j->name);
out:
	TAILQ_REMOVE(&js->list, j, entry);
	js->njobs--;
	job_free(j);
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
		job_entry_free(&e);
		if (++j->nurls > (size_t)j->js->cfg->max_job_urls) {
			snprintf(err, sizeof(err),
			    "line %lu: more than %ld URLs (daemon.max_job_urls)",
			    job_reader_lineno(j->reader),
			    j->js->cfg->max_job_urls);
			job_add_error(j, "-", err);
			break;
		}
	}
	if (n == JOBS_VALIDATE_CHUNK) {
		event_active(j->ev, 0, 0);
		return;
	}
	if (j->nerrors > 0) {
		log_warnx("job %s is malformed (%zu bad lines); nothing fetched",
		    j->name, j->nerrors);
		job_finish(j);
		return;
	}
	if (job_reader_rewind(j->reader) == -1) {
		job_add_error(j, "-", "cannot re-read the job file");
		job_finish(j);
		return;
	}
	j->state = JOB_RUNNING;
	log_info("job %s: %zu URLs%s", j->name, j->nurls,
	    j->resume ? " (resumed)" : "");
	if (j->js->hooks.work_ready != NULL)
		j->js->hooks.work_ready(j->js->arg);
}

/*
 * Journal records of an earlier run: "C\tindex\tname" reserves a name,
 * "R\tindex\tresult row" is a finished URL. Only indexes at or past the
 * in-order result count matter.
 */
struct rec_load {
	struct job *j;
	size_t base;
	size_t cap;
};

static int
rec_cmp(const void *a, const void *b)
{
	const struct recovered *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

static int
rec_line(const char *line, size_t len, void *arg)
{
	struct rec_load *rl = arg;
	struct job *j = rl->j;
	struct recovered *r, *p;
	unsigned long long idx;
	const char *tab, *val;
	char *end, *copy;

	if (len < 4 || (line[0] != 'C' && line[0] != 'R') || line[1] != '\t')
		return 0;
	errno = 0;
	idx = strtoull(line + 2, &end, 10);
	if (errno != 0 || *end != '\t' || end > line + len)
		return 0;
	if (idx < rl->base)
		return 0;
	tab = end;
	val = tab + 1;
	if (line[0] == 'R') {
		if ((copy = malloc(line + len - val + 2)) == NULL)
			return -1;
		memcpy(copy, val, line + len - val);
		copy[line + len - val] = '\n';
		copy[line + len - val + 1] = '\0';
	} else if ((copy = strndup(val, line + len - val)) == NULL)
		return -1;
	if (j->nrec == rl->cap) {
		rl->cap = rl->cap ? rl->cap * 2 : 64;
		if ((p = reallocarray(j->rec, rl->cap, sizeof(*p))) == NULL) {
			free(copy);
			return -1;
		}
		j->rec = p;
	}
	r = &j->rec[j->nrec++];
	memset(r, 0, sizeof(*r));
	r->index = idx;
	if (line[0] == 'R')
		r->line = copy;
	else
		r->name = copy;
	return 0;
}

/* Merge records of the same index (a claim and later its result). */
static void
rec_merge(struct job *j)
{
	size_t i, o;

	if (j->nrec == 0)
		return;
	qsort(j->rec, j->nrec, sizeof(*j->rec), rec_cmp);
	for (i = 1, o = 0; i < j->nrec; i++) {
		if (j->rec[i].index == j->rec[o].index) {
			if (j->rec[i].name != NULL) {
				free(j->rec[o].name);
				j->rec[o].name = j->rec[i].name;
			}
			if (j->rec[i].line != NULL) {
				free(j->rec[o].line);
				j->rec[o].line = j->rec[i].line;
			}
		} else
			j->rec[++o] = j->rec[i];
	}
	j->nrec = o + 1;
}

int
jobs_start(struct jobs *js, const char *name, int resume)
{
	struct rec_load rl;
	struct job *j;
	size_t lines;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -1;
	j->js = js;
	j->fd = -1;
	j->dirfd = -1;
	j->resume = resume;
	TAILQ_INIT(&j->live);
	if ((j->name = strdup(name)) == NULL ||
	    asprintf(&j->dir, "%s/%s", js->cfg->download_dir, name) == -1) {
		j->dir = NULL;
		goto fail;
	}
	if ((j->ring = calloc(JOBS_WINDOW, sizeof(*j->ring))) == NULL)
		goto fail;
	if ((j->fd = spool_open_job(js->spool, name)) == -1)
		goto fail;
	if ((j->reader = job_reader_new(j->fd)) == NULL)
		goto fail;
	if (job_open_logs(j) == -1)
		goto fail;
	if ((j->journal = spool_log_open(js->spool, name, ".journal")) == NULL)
		goto fail;

	/* Line 1 of J.result is the header: the rest are URLs 0.. in order. */
	lines = spool_log_lines(j->result);
	j->head = j->next = lines > 0 ? lines - 1 : 0;
	if (resume) {
		rl.j = j;
		rl.base = j->head;
		rl.cap = 0;
		if (spool_log_read(js->spool, name, ".journal", rec_line,
		    &rl) == -1)
			goto fail;
		rec_merge(j);
	}
	j->ev = event_new(js->base, -1, 0, job_validate_cb, j);
	if (j->ev == NULL)
		goto fail;
	TAILQ_INSERT_TAIL(&js->list, j, entry);
	js->njobs++;
	event_active(j->ev, 0, 0);
	return 0;
fail:
	log_warnx("job %s: cannot start; left in active/", name);
	job_free(j);
	return -1;
}

/* The finished row for index, ready to be written in turn. */
static int
job_record(struct job *j, size_t index, const char *row, size_t len,
    int ok)
{
	char rec[JOBS_LINE_MAX + 32];
	int n;

	if (ok)
		j->ndone++;
	else {
		j->nfailed++;
		j->failed_any = 1;
	}
	if (index != j->head) {
		/* Ahead of its turn: keep it in the window, and in the
		 * journal so a crash does not lose it. */
		n = snprintf(rec, sizeof(rec), "R\t%zu\t%.*s", index,
		    (int)len, row);
		if (n < 0 || (size_t)n >= sizeof(rec) ||
		    spool_log_append(j->journal, rec, n) == -1)
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

static void
job_fs_error(struct job *j)
{
	/* The spool's disk failed under us (ENOSPC, EIO). Stop working on
	 * the job; its active/ files let the next start resume it. */
	log_warnx("job %s: cannot write its result or journal; pausing it "
	    "until the next start", j->name);
	j->eof = 1;
	j->state = JOB_FINISHING;
}

static void
transfer_row(const struct transfer *t, char *row, size_t len, int *n)
{
	*n = format_row(row, len, t->url, t->outcome == FETCH_OK,
	    t->http_status, t->outcome == FETCH_OK ? t->size : 0,
	    t->seconds_total, t->attempt, t->name, t->error);
}

static void
job_final(struct job *j, struct transfer *t)
{
	struct jobs *js = j->js;
	char row[JOBS_LINE_MAX];
	int n;

	if (t->outcome != FETCH_OK)
		fetch_discard(t);
	else
		j->bytes += t->size;
	if (js->hooks.transfer_final != NULL)
		js->hooks.transfer_final(t, js->arg);
	transfer_row(t, row, sizeof(row), &n);
	if (n < 0 || job_record(j, t->index, row, n,
	    t->outcome == FETCH_OK) == -1)
		job_fs_error(j);
}

/* Next entry from the reader; 1, 0 at the end, -1 when the file changed
 * after validation (then the job fails rather than guess). */
static int
job_next_entry(struct job *j, struct job_entry *e)
{
	char err[JOB_ERR_MAX + 32];
	int rv;

	memset(e, 0, sizeof(*e));
	rv = job_reader_next(j->reader, e, err, sizeof(err));
	if (rv == 1) {
		j->nread++;
		return 1;
	}
	if (rv == -1)
		log_warnx("job %s changed while running: %s", j->name, err);
	return rv;
}

static int
row_is_ok(const char *row)
{
	const char *tab = strchr(row, '\t');

	return tab != NULL && strncmp(tab, "\tok\t", 4) == 0;
}

static struct recovered *
job_recovered(struct job *j, size_t index)
{
	while (j->recpos < j->nrec && j->rec[j->recpos].index < index)
		j->recpos++;
	if (j->recpos < j->nrec && j->rec[j->recpos].index == index)
		return &j->rec[j->recpos];
	return NULL;
}

/*
 * Read the next URL of a running job and make it a transfer (or a result,
 * when an earlier run finished it). 1 when one was taken, 0 at the end.
 */
static int
job_read_one(struct job *j)
{
	struct jobs *js = j->js;
	struct job_entry e;
	struct recovered *r;
	struct transfer *t = NULL;
	char name[JOB_NAME_MAX + 1], rec[JOBS_LINE_MAX];
	size_t index;
	int created, n, rv;

	/* A resumed job: the first `head` URLs are in J.result already. */
	while (j->nread < j->next) {
		if ((rv = job_next_entry(j, &e)) != 1)
			goto end;
		job_entry_free(&e);
	}
	if ((rv = job_next_entry(j, &e)) != 1)
		goto end;
	index = j->next++;

	r = job_recovered(j, index);
	if (r != NULL && r->line != NULL) {
		rv = job_record(j, index, r->line, strlen(r->line),
		    row_is_ok(r->line));
		job_entry_free(&e);
		if (rv == -1)
			job_fs_error(j);
		return 1;
	}

	if (j->cancelled) {
		n = format_row(rec, sizeof(rec), e.url, 0, 0, 0, 0, 0, NULL,
		    "cancelled");
		job_entry_free(&e);
		if (n < 0 || job_record(j, index, rec, n, 0) == -1)
			job_fs_error(j);
		return 1;
	}
	if (e.out == NULL)
		job_name_from_url(e.url, name, sizeof(name));
	t = fetch_transfer_new(e.url, e.host, j->dir,
	    r != NULL && r->name != NULL ? r->name :
	    e.out != NULL ? e.out : name);
	if (t == NULL) {
		job_entry_free(&e);
		j->next--;
		j->nread--;
		log_warnx("job %s: out of memory", j->name);
		return 0;
	}
	t->id = ++js->next_id;
	t->owner = j;
	t->index = index;
	t->has_sha256 = e.has_sha256;
	memcpy(t->sha256, e.sha256, sizeof(t->sha256));
	fetch_params_from_config(&t->params, js->cfg);
	job_entry_free(&e);

	TAILQ_INSERT_TAIL(&j->live, t, owner_entry);
	j->nlive++;
	js->nlive++;

	/* One open directory for the job's files, so no URL walks the path
	 * again. It stays open until the job is freed, after the last of its
	 * transfers. When it cannot be opened, every transfer opens the path
	 * itself and reports why that fails. */
	if (j->dirfd == -1) {
		j->dirfd = fetch_open_dir(j->dir, &created);
		if (j->dirfd != -1 && created)
			seen_init(j);
	}
	t->dirfd = j->dirfd;
	rv = fetch_reserve(t, r != NULL && r->name != NULL, name_taken,
	    name_absent, j);
	/* Even when it failed: it may have made t->name's directories. */
	seen_add(j, t->name);
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
	if (names_add(j, t) == -1) {
		job_unlink(j, t);
		fetch_transfer_free(t);
		j->next--;
		j->nread--;
		log_warnx("job %s: out of memory", j->name);
		return 0;
	}
	if (r == NULL || r->name == NULL || strcmp(r->name, t->name) != 0) {
		n = snprintf(rec, sizeof(rec), "C\t%zu\t%s\n", index, t->name);
		if (n < 0 || (size_t)n >= sizeof(rec) ||
		    spool_log_append(j->journal, rec, n) == -1) {
			job_fs_error(j);
			goto drop;
		}
	}
	if (sched_push(js->sched, t) == -1)
		goto drop;
	return 1;
drop:
	/* Not recorded anywhere: the next start fetches it. */
	job_unlink(j, t);
	fetch_transfer_free(t);
	j->eof = 1;
	return 0;
end:
	j->eof = 1;
	if (rv == -1) {
		j->failed_any = 1;
		job_add_error(j, "-", "the job file changed while running");
	}
	return 0;
}

/*
 * Write out what the job recorded, and finish it when every URL is in.
 * Returns 1 when the job was finished (and freed).
 */
static int
job_settle(struct job *j)
{
	if (j->state == JOB_FINISHING)
		return 0;
	if (spool_log_flush(j->result) == -1 ||
	    spool_log_flush(j->journal) == -1) {
		job_fs_error(j);
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
jobs_budget(const struct jobs *js)
{
	return (size_t)js->cfg->count * 2 + 64;
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
jobs_refill(struct jobs *js, size_t want)
{
	struct job *j;
	size_t budget, took, turn, i, n, added = 0;
	int any;

	if (js->stopping)
		return 0;
	budget = jobs_budget(js);
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

void
jobs_transfer_done(struct jobs *js, struct transfer *t)
{
	struct job *j = t->owner;
	double delay;

	t->seconds_total += t->seconds;
	if (js->stopping) {
		/* Not recorded: the .part and the claim let the next start
		 * resume it. */
		goto drop;
	}
	if (t->outcome == FETCH_RETRY && !j->cancelled &&
	    t->attempt <= js->cfg->retries) {
		t->attempt++;
		delay = sched_backoff(t->attempt, (double)js->cfg->retry_delay,
		    (double)js->cfg->retry_max_delay, t->retry_after,
		    &js->seed);
		log_debug("job %s #%zu: %s; attempt %d in %.1fs", j->name,
		    t->index, t->error, t->attempt, delay);
		if (js->hooks.transfer_retry != NULL)
			js->hooks.transfer_retry(t, js->arg);
		t->cancelled = 0;
		if (sched_retry(js->sched, t, delay) == 0)
			return;
		snprintf(t->error, sizeof(t->error), "cannot schedule a retry");
	}
	if (t->outcome == FETCH_RETRY) {
		/* Out of attempts: a transient failure is now final. */
		t->outcome = FETCH_FAIL;
		if (j->cancelled)
			snprintf(t->error, sizeof(t->error), "cancelled");
	}
	job_unlink(j, t);
	job_final(j, t);
	fetch_transfer_free(t);
	/* The last one finishes the job now: a stop may be waiting for it. */
	if (j->eof && j->nlive == 0)
		(void)job_settle(j);
	else
		job_settle_soon(j);
	return;
drop:
	job_unlink(j, t);
	fetch_transfer_free(t);
}

void
jobs_stop(struct jobs *js)
{
	struct job *j;

	js->stopping = 1;
	TAILQ_FOREACH(j, &js->list, entry) {
		if (spool_log_flush(j->result) == -1 ||
		    spool_log_flush(j->journal) == -1)
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

void
jobs_foreach(const struct jobs *js,
    void (*cb)(const struct job_info *, void *), void *arg)
{
	static const char *const states[] = {
		"validating", "running", "finishing"
	};
	const struct job *j;
	const struct transfer *t;
	struct job_info ji;

	TAILQ_FOREACH(j, &js->list, entry) {
		memset(&ji, 0, sizeof(ji));
		ji.name = j->name;
		ji.state = states[j->state];
		ji.urls = j->nurls;
		ji.done = j->ndone;
		ji.failed = j->nfailed;
		ji.running = j->nlive;
		ji.bytes = j->bytes;
		TAILQ_FOREACH(t, &j->live, owner_entry)
			ji.bytes += __atomic_load_n(&t->progress,
			    __ATOMIC_RELAXED);
		cb(&ji, arg);
	}
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
	if (j == NULL || j->state == JOB_FINISHING)
		return -1;
	log_info("job %s: cancelled", j->name);
	j->cancelled = 1;
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
