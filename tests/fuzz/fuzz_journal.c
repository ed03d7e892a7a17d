/*
 * fuzz_journal.c: what a restart reads back of a job an earlier run left in
 * active/. A kill -9 tears the last line of J.journal and J.result, and a
 * disk or a person may leave anything else there: the files are input.
 *
 * Each input is recovered twice in a spool made once per process: as the
 * whole of J.journal with no J.result, and with its first half as J.result
 * and as J.journal twice over (records merge across the copies), for some
 * inputs with a run of bytes between the copies that makes the line across
 * the seam longer than the reader takes (skipped, and the second copy read
 * at another offset of its buffer). The recovery is the job runner's
 * (jobs.c, jobs_start): spool_log_open() J.result and J.journal (which
 * cuts a torn last line), the base from J.result's lines,
 * journal_recovery_load(), J.result's rows through spool_log_read(), and
 * journal_recovery_find() in increasing index order.
 *
 * The records found are checked against a model of journal.h's format built
 * here from the bytes: complete lines only, "C\t<index>\t<name>" and
 * "R\t<index>\t<row>" with a non-empty value without NUL, indexes below the
 * base ignored, the last claim and the last row of an index winning. The
 * files must be cut exactly after their last '\n' and count those lines; a
 * claim appended after the cut must be found by the next recovery.
 * journal_recovery_parse() on the raw bytes is held to the same model.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "journal.h"
#include "log.h"
#include "result.h"
#include "spool.h"
#include "util.h"

#define JOB "J"
/* The longest line spool_log_read() hands over: spool.c reads through a
 * 64 KiB buffer and skips a line that does not fit it with its '\n'. */
#define READ_LINE_MAX (64 * 1024 - 1)
/* Indexes past this are not modelled: the parser's exact overflow bound
 * is its own business, and no job has that many URLs. */
#define MODEL_INDEX_MAX 1000000000000000000ULL
#define SPAN 16         /* consecutive indexes asked for from the base */
#define LONG_LINE (READ_LINE_MAX + 1)

static struct spool sp;
static char root[256];

/* One record of the model, then one merged index. */
struct mrec {
	size_t index, seq;
	char kind;
	const char *val;
	size_t len;
};

struct model {
	struct mrec *v;         /* merged: name in val/len, row in rval */
	const char **rval;
	size_t *rlen;
	size_t n;
};

static void
cleanup(void)
{
	char path[512];
	static const char *const dirs[] = {
		"tmp", "new", "active", "done", "failed"
	};

	if (sp.activefd >= 0) {
		(void)unlinkat(sp.activefd, JOB ".result", 0);
		(void)unlinkat(sp.activefd, JOB ".journal", 0);
	}
	spool_close(&sp);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/spool/%s", root, dirs[i]);
		(void)rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/spool", root);
	(void)rmdir(path);
	(void)rmdir(root);
}

/* The spool, once: in memory when /dev/shm is there (no disk syncs). */
static void
setup(void)
{
	char path[512], err[512];
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";

	log_init("fuzz_journal", LOG_LVL_ERROR);
	snprintf(root, sizeof(root), "%s/fuzz-journal.XXXXXX", dir);
	if (mkdtemp(root) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/spool", root);
	if (spool_open(&sp, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "fuzz_journal: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

/* "<digits>\t": the index, and where the value starts. 0, or -1. */
static int
model_index(const char *p, size_t len, size_t *index, size_t *val)
{
	unsigned long long v = 0;
	size_t i;

	for (i = 2; i < len && p[i] >= '0' && p[i] <= '9'; i++)
		if ((v = v * 10 + (unsigned long long)(p[i] - '0')) >
		    MODEL_INDEX_MAX)
			return -1;
	if (i == 2 || i == len || p[i] != '\t')
		return -1;
	*index = (size_t)v;
	*val = i + 1;
	return 0;
}

static int
mrec_cmp(const void *a, const void *b)
{
	const struct mrec *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Fold the sorted records of each index into one. */
static void
model_merge(struct model *m)
{
	size_t i, o = 0;

	for (i = 0; i < m->n; i++) {
		struct mrec r = m->v[i];

		if (i == 0 || r.index != m->v[o - 1].index) {
			m->v[o] = r;
			m->v[o].val = NULL;
			m->rval[o++] = NULL;
		}
		if (r.kind == 'C') {
			m->v[o - 1].val = r.val;
			m->v[o - 1].len = r.len;
		} else {
			m->rval[o - 1] = r.val;
			m->rlen[o - 1] = r.len;
		}
	}
	m->n = o;
}

/* The records of buf's complete lines of at most line_max bytes. */
static int
model_build(struct model *m, const char *buf, size_t len, size_t base,
    size_t line_max)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n = 0, index, val, seq = 0;

	memset(m, 0, sizeof(*m));
	for (p = buf; (nl = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p = nl + 1)
		n++;
	m->v = calloc(n + 1, sizeof(*m->v));
	m->rval = calloc(n + 1, sizeof(*m->rval));
	m->rlen = calloc(n + 1, sizeof(*m->rlen));
	if (m->v == NULL || m->rval == NULL || m->rlen == NULL)
		return -1;
	for (p = buf; (nl = memchr(p, '\n', (size_t)(end - p))) != NULL;
	    p = nl + 1) {
		size_t l = (size_t)(nl - p);

		seq++;
		if (l > line_max || l < 2 || (p[0] != 'C' && p[0] != 'R') ||
		    p[1] != '\t' || model_index(p, l, &index, &val) == -1 ||
		    index < base || val == l || memchr(p + val, '\0',
		    l - val) != NULL)
			continue;
		m->v[m->n++] = (struct mrec){ index, seq, p[0], p + val,
		    l - val };
	}
	qsort(m->v, m->n, sizeof(*m->v), mrec_cmp);
	model_merge(m);
	return 0;
}

static void
model_free(struct model *m)
{
	free(m->v);
	free(m->rval);
	free(m->rlen);
}

/* The model's index i, or -1. */
static long
model_find(const struct model *m, size_t index)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->v[mid].index == index)
			return (long)mid;
		if (m->v[mid].index < index)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* A name without, a row with its '\n', both equal to the line's value. */
static void
same_value(const char *got, const char *val, size_t len, int row)
{
	if (val == NULL) {
		if (got != NULL)
			abort();
		return;
	}
	if (got == NULL || strlen(got) != len + (row != 0) ||
	    memcmp(got, val, len) != 0 || (row && got[len] != '\n'))
		abort();
}

/*
 * The model knows C and R records. A well-formed M record (a mirror in
 * use) or S record (a split) also makes an index known, with no name and
 * no row of its own: r may be such a record where the model has none.
 */
static int
only_mirror_or_split(const struct journal_rec *r)
{
	return r->name == NULL && r->row == NULL &&
	    (r->has_mirror || r->split != NULL);
}

static void
check_one(struct journal_recovery *rc, const struct model *m, size_t base,
    size_t index)
{
	const struct journal_rec *r = journal_recovery_find(rc, index);
	long i = model_find(m, index);

	if (i == -1) {
		if (r != NULL && !only_mirror_or_split(r))
			abort();
		return;
	}
	if (r == NULL || r->index != index || r->index < base)
		abort();
	same_value(r->name, m->v[i].val, m->v[i].len, 0);
	same_value(r->row, m->rval[i], m->rlen[i], 1);
	if (journal_recovery_find(rc, index) != r)
		abort();        /* asking again moved the cursor past it */
}

/*
 * Ask rc for base..base+SPAN-1 (as the runner does, URL after URL) and for
 * every index of the model, all in increasing order, and compare.
 */
static void
check_against(struct journal_recovery *rc, const struct model *m,
    size_t base)
{
	const struct journal_rec *r;
	size_t i = 0, next = base, idx = base;

	if (base > 0 && journal_recovery_find(rc, base - 1) != NULL)
		abort();        /* below the base */
	while (next < base + SPAN || i < m->n) {
		size_t mi = i < m->n ? m->v[i].index : SIZE_MAX;

		idx = next < base + SPAN && next < mi ? next : mi;
		check_one(rc, m, base, idx);
		if (idx == next)
			next++;
		if (idx == mi)
			i++;
	}
	/* Past the last index asked for; huge ones are not modelled. */
	if (idx < MODEL_INDEX_MAX &&
	    (r = journal_recovery_find(rc, idx + 1)) != NULL &&
	    !only_mirror_or_split(r))
		abort();
}

static int
put_file(const char *name, const void *buf, size_t len)
{
	int fd, rv;

	fd = openat(sp.activefd, name, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	rv = util_write_all(fd, buf, len);
	close(fd);
	return rv;
}

/* len as cut by spool_log_open(): after the last '\n'; the lines. */
static size_t
cut_len(const char *buf, size_t len, size_t *lines)
{
	size_t i, end = 0;

	*lines = 0;
	for (i = 0; i < len; i++)
		if (buf[i] == '\n') {
			(*lines)++;
			end = i + 1;
		}
	return end;
}

static void
check_cut(const char *name, const struct spool_log *lg, const char *buf,
    size_t len)
{
	struct stat st;
	size_t lines, end = cut_len(buf, len, &lines);

	if (fstatat(sp.activefd, name, &st, 0) == -1 ||
	    (size_t)st.st_size != end || spool_log_lines(lg) != lines)
		abort();
}

static int
count_row(const char *line, size_t len, void *arg)
{
	size_t *ok = arg;

	if (line[len] != '\0')
		abort();        /* handed over NUL-terminated */
	if (len > 0 && line[0] != '#' && result_row_ok(line, len))
		(*ok)++;
	return 0;
}

/* A claim appended after the cut is a record of the next recovery. */
static void
append_and_reload(struct journal *jr, struct model *m, size_t base)
{
	struct journal_recovery *rc;
	const struct journal_rec *r;
	long i;

	if (journal_claim(jr, base, "fuzz-new") == -1 ||
	    journal_flush(jr) == -1)
		abort();
	if ((rc = journal_recovery_new(base)) == NULL)
		return;
	if (journal_recovery_load(rc, &sp, JOB) == -1)
		abort();
	if ((r = journal_recovery_find(rc, base)) == NULL ||
	    r->name == NULL || strcmp(r->name, "fuzz-new") != 0)
		abort();
	i = model_find(m, base);
	same_value(r->row, i == -1 ? NULL : m->rval[i],
	    i == -1 ? 0 : m->rlen[i], 1);
	journal_recovery_free(rc);
}

/* The runner's recovery of J.result (res, when not NULL) and J.journal. */
static void
recover(const char *res, size_t rlen, const char *jbuf, size_t jlen)
{
	struct spool_log *lg = NULL;
	struct journal *jr = NULL;
	struct journal_recovery *rc = NULL;
	struct model m = { 0 };
	size_t lines, base, ok = 0;

	if ((res != NULL && put_file(JOB ".result", res, rlen) == -1) ||
	    put_file(JOB ".journal", jbuf, jlen) == -1)
		goto out;
	if ((lg = spool_log_open(&sp, JOB, ".result")) == NULL ||
	    (jr = journal_open(&sp, JOB)) == NULL)
		abort();
	check_cut(JOB ".result", lg, res != NULL ? res : "", rlen);
	lines = spool_log_lines(lg);
	base = lines > 0 ? lines - 1 : 0;
	if ((rc = journal_recovery_new(base)) == NULL)
		goto out;
	if (journal_recovery_load(rc, &sp, JOB) == -1 ||
	    spool_log_read(&sp, JOB, ".result", count_row, &ok) == -1)
		abort();
	if (ok > lines)
		abort();
	if (model_build(&m, jbuf, cut_len(jbuf, jlen, &lines), base,
	    READ_LINE_MAX) == -1)
		goto out;
	check_against(rc, &m, base);
	append_and_reload(jr, &m, base);
out:
	model_free(&m);
	journal_recovery_free(rc);
	journal_close(jr);
	spool_log_close(lg);
	(void)unlinkat(sp.activefd, JOB ".result", 0);
	(void)unlinkat(sp.activefd, JOB ".journal", 0);
}

/* journal_recovery_parse() on the bytes as they are: no length limit. */
static void
parse_raw(const char *buf, size_t len, size_t base)
{
	struct journal_recovery *rc;
	struct model m = { 0 };

	if ((rc = journal_recovery_new(base)) == NULL)
		return;
	if (journal_recovery_parse(rc, buf, len) == 0 &&
	    model_build(&m, buf, len, base, SIZE_MAX) == 0)
		check_against(rc, &m, base);
	model_free(&m);
	journal_recovery_free(rc);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	size_t gap = size % 8 == 0 ? LONG_LINE : 0;
	char *twice;

	if (sp.root == NULL)
		setup();
	recover(NULL, 0, text, size);
	/* The input twice; for an eighth of the inputs (the writes cost),
	 * with a line too long to read between the copies. */
	if ((twice = malloc(2 * size + gap + 1)) != NULL) {
		memcpy(twice, text, size);
		memset(twice + size, 'y', gap);
		memcpy(twice + size + gap, text, size);
		recover(text, size / 2, twice, 2 * size + gap);
		free(twice);
	}
	parse_raw(text, size, 0);
	parse_raw(text, size, 3);
	return 0;
}
