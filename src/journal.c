/*
 * journal.c: the records of active/J.journal (see journal.h): formatting
 * them for the job runner, and reading an earlier run's back at a restart.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "result.h"

struct journal {
	struct spool_log *log;
};

struct journal_recovery {
	size_t base;
	struct rec {
		struct journal_rec r;
		size_t seq;     /* line order: a later claim wins */
	} *v;
	size_t n, cap;
	size_t seq;
	size_t pos;             /* journal_recovery_find()'s cursor */
	int merged;
};

struct journal *
journal_open(struct spool *sp, const char *job)
{
	struct journal *jr;

	if ((jr = calloc(1, sizeof(*jr))) == NULL)
		return NULL;
	if ((jr->log = spool_log_open(sp, job, ".journal")) == NULL) {
		free(jr);
		return NULL;
	}
	return jr;
}

void
journal_close(struct journal *jr)
{
	if (jr == NULL)
		return;
	spool_log_close(jr->log);
	free(jr);
}

int
journal_claim(struct journal *jr, size_t index, const char *name)
{
	char rec[JOB_PATH_MAX + 64];
	int n;

	n = snprintf(rec, sizeof(rec), "C\t%zu\t%s\n", index, name);
	if (n < 0 || (size_t)n >= sizeof(rec))
		return -1;
	return spool_log_append(jr->log, rec, (size_t)n);
}

int
journal_result(struct journal *jr, size_t index, const char *row,
    size_t len)
{
	char rec[RESULT_ROW_MAX + 32];
	int n;

	n = snprintf(rec, sizeof(rec), "R\t%zu\t%.*s", index, (int)len, row);
	if (n < 0 || (size_t)n >= sizeof(rec))
		return -1;
	return spool_log_append(jr->log, rec, (size_t)n);
}

/* 1 when s may be a field of a record: no tab, no other control byte. */
static int
rec_field_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int
journal_mirror(struct journal *jr, size_t index, size_t mirror,
    const struct fetch_meta *expect)
{
	char rec[96 + FETCH_ETAG_MAX + FETCH_DATE_MAX];
	const char *etag = expect->etag, *date = expect->last_modified;
	long long length = expect->length;
	int n;

	if (!rec_field_ok(etag) || !rec_field_ok(date)) {
		/* Unknown rather than a record that reads back otherwise. */
		etag = date = "";
		length = -1;
	}
	n = snprintf(rec, sizeof(rec), "M\t%zu\t%zu\t%lld\t%s\t%s\n", index,
	    mirror, length < 0 ? -1 : length, etag, date);
	if (n < 0 || (size_t)n >= sizeof(rec))
		return -1;
	return spool_log_append(jr->log, rec, (size_t)n);
}

/* A validator as recorded: "" when it could not be a field. */
static const char *
split_field(const char *v)
{
	return rec_field_ok(v) ? v : "";
}

int
journal_split(struct journal *jr, size_t index, const struct journal_split *sp)
{
	char rec[128 + 21 * FETCH_SEGMENTS_MAX + FETCH_ETAG_MAX +
	    FETCH_DATE_MAX];
	size_t n;
	unsigned i;

	if (sp->n == 0) {
		n = (size_t)snprintf(rec, sizeof(rec), "S\t%zu\t-\n", index);
		return spool_log_append(jr->log, rec, n);
	}
	if (sp->n > FETCH_SEGMENTS_MAX)
		return -1;
	n = (size_t)snprintf(rec, sizeof(rec), "S\t%zu\t%lld\t", index,
	    sp->meta.length);
	for (i = 0; i < sp->n; i++)
		n += (size_t)snprintf(rec + n, sizeof(rec) - n, "%s%llu",
		    i > 0 ? "," : "", (unsigned long long)sp->starts[i]);
	n += (size_t)snprintf(rec + n, sizeof(rec) - n, "\t%s\t%s\n",
	    split_field(sp->meta.etag), split_field(sp->meta.last_modified));
	if (n >= sizeof(rec))
		return -1;
	return spool_log_append(jr->log, rec, n);
}

int
journal_flush(struct journal *jr)
{
	return spool_log_flush(jr->log);
}

struct journal_recovery *
journal_recovery_new(size_t base)
{
	struct journal_recovery *rc;

	if ((rc = calloc(1, sizeof(*rc))) == NULL)
		return NULL;
	rc->base = base;
	return rc;
}

void
journal_recovery_free(struct journal_recovery *rc)
{
	size_t i;

	if (rc == NULL)
		return;
	for (i = 0; i < rc->n; i++) {
		free(rc->v[i].r.name);
		free(rc->v[i].r.row);
		free(rc->v[i].r.split);
	}
	free(rc->v);
	free(rc);
}

/*
 * "C\tindex\t", "R\tindex\t" or "M\tindex\t": the kind, the index and where the value
 * starts. 0, or -1 when the line is not a record.
 */
static int
rec_head(const char *line, size_t len, char *kind, size_t *index,
    const char **val)
{
	unsigned long long idx = 0;
	size_t i;

	if (len < 4 || memchr("CRMS", line[0], 4) == NULL ||
	    line[1] != '\t')
		return -1;
	for (i = 2; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
		if (idx > (unsigned long long)(SIZE_MAX - 9) / 10)
			return -1;
		idx = idx * 10 + (unsigned long long)(line[i] - '0');
	}
	if (i == 2 || i >= len || line[i] != '\t')
		return -1;
	*kind = line[0];
	*index = (size_t)idx;
	*val = line + i + 1;
	return 0;
}

/* A new record of index, zeroed, in line order; NULL out of memory. */
static struct rec *
rec_add(struct journal_recovery *rc, size_t index)
{
	struct rec *p, *r;

	if (rc->n == rc->cap) {
		rc->cap = rc->cap ? rc->cap * 2 : 64;
		if ((p = reallocarray(rc->v, rc->cap, sizeof(*p))) == NULL)
			return NULL;
		rc->v = p;
	}
	r = &rc->v[rc->n++];
	memset(r, 0, sizeof(*r));
	r->r.index = index;
	fetch_meta_unknown(&r->r.expect);
	r->seq = rc->seq++;
	rc->merged = 0;
	return r;
}

/* The next field of a record's value, up to a tab or its end, into
 * buf (size bytes). *v moves past its tab. 0, or -1 when it is too long. */
static int
rec_field(const char **v, const char *end, char *buf, size_t size)
{
	const char *tab = memchr(*v, '\t', (size_t)(end - *v));
	size_t n = (size_t)((tab != NULL ? tab : end) - *v);

	if (n >= size)
		return -1;
	memcpy(buf, *v, n);
	buf[n] = '\0';
	*v += n + (tab != NULL);
	return 0;
}

/* The value of an M record: "mirror\tlength\tetag\tlast_modified". A
 * malformed one is skipped. 0, or -1 out of memory. */
static int
rec_mirror(struct journal_recovery *rc, size_t index, const char *v,
    size_t len)
{
	const char *end = v + len, *p;
	char num[24], *e;
	struct fetch_meta m;
	unsigned long long mirror;
	long long length;
	struct rec *r;
	int tabs;

	fetch_meta_unknown(&m);
	for (tabs = 0, p = v; (p = memchr(p, '\t', (size_t)(end - p))) !=
	    NULL; p++)
		tabs++;
	if (tabs != 3 ||
	    rec_field(&v, end, num, sizeof(num)) == -1 || num[0] < '0' ||
	    num[0] > '9' || (mirror = strtoull(num, &e, 10), *e != '\0') ||
	    mirror > JOB_MIRRORS_MAX ||
	    rec_field(&v, end, num, sizeof(num)) == -1 || num[0] == '\0' ||
	    (length = strtoll(num, &e, 10), *e != '\0') || length < -1 ||
	    rec_field(&v, end, m.etag, sizeof(m.etag)) == -1 ||
	    rec_field(&v, end, m.last_modified, sizeof(m.last_modified)) ==
	    -1 || v != end)
		return 0;
	m.length = length;
	if ((r = rec_add(rc, index)) == NULL)
		return -1;
	r->r.has_mirror = 1;
	r->r.mirror = (size_t)mirror;
	r->r.expect = m;
	return 0;
}

/* A decimal of at most 19 digits at *p (moved past it): 0, or -1. */
static int
split_num(const char **p, const char *end, unsigned long long *v)
{
	const char *q = *p;

	*v = 0;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 19)
		*v = *v * 10 + (unsigned long long)(*q++ - '0');
	if (q == *p)
		return -1;
	*p = q;
	return 0;
}

/*
 * The value of an S record (v..end) into *sp: "-", or the length, the
 * starts (increasing, the first 0, all below the length), the ETag and
 * the date. 0, or -1 when malformed.
 */
static int
split_parse(const char *v, const char *end, struct journal_split *sp)
{
	unsigned long long x;

	memset(sp, 0, sizeof(*sp));
	fetch_meta_unknown(&sp->meta);
	if (end - v == 1 && *v == '-')
		return 0;
	if (split_num(&v, end, &x) == -1 || x > LLONG_MAX || v == end ||
	    *v++ != '\t')
		return -1;
	sp->meta.length = (long long)x;
	sp->meta.ranges = 1;
	do {
		if (sp->n == FETCH_SEGMENTS_MAX ||
		    split_num(&v, end, &x) == -1 ||
		    x >= (unsigned long long)sp->meta.length ||
		    (sp->n == 0 ? x != 0 : x <= sp->starts[sp->n - 1]))
			return -1;
		sp->starts[sp->n++] = x;
	} while (v < end && *v == ',' && v++);
	/* then "\tETAG\tDATE", each field up to its tab */
	if (v == end || *v++ != '\t' ||
	    memchr(v, '\t', (size_t)(end - v)) == NULL ||
	    rec_field(&v, end, sp->meta.etag, sizeof(sp->meta.etag)) == -1 ||
	    rec_field(&v, end, sp->meta.last_modified,
	    sizeof(sp->meta.last_modified)) == -1 || v != end)
		return -1;
	return 0;
}

/* An S record: taken when well-formed, else skipped. 0, or -1 OOM. */
static int
rec_split(struct journal_recovery *rc, size_t index, const char *v,
    const char *end)
{
	struct journal_split *sp;
	struct rec *r;

	if ((sp = malloc(sizeof(*sp))) == NULL)
		return -1;
	if (split_parse(v, end, sp) == -1) {
		free(sp);
		return 0;
	}
	if ((r = rec_add(rc, index)) == NULL) {
		free(sp);
		return -1;
	}
	r->r.split = sp;
	return 0;
}

/* One line without its '\n'. 0 (taken or skipped), -1 out of memory. */
static int
rec_line(const char *line, size_t len, void *arg)
{
	struct journal_recovery *rc = arg;
	struct rec *r;
	const char *val;
	size_t index, vlen;
	char kind, *copy;

	if (rec_head(line, len, &kind, &index, &val) == -1 || index < rc->base)
		return 0;
	vlen = (size_t)(line + len - val);
	if (vlen == 0 || memchr(val, '\0', vlen) != NULL)
		return 0;
	if (kind == 'M')
		return rec_mirror(rc, index, val, vlen);
	if (kind == 'S')
		return rec_split(rc, index, val, line + len);
	/* A row keeps its '\n', as it goes to J.result. */
	if ((copy = malloc(vlen + 2)) == NULL)
		return -1;
	memcpy(copy, val, vlen);
	copy[vlen] = '\n';
	copy[vlen + (kind == 'R')] = '\0';
	if ((r = rec_add(rc, index)) == NULL) {
		free(copy);
		return -1;
	}
	if (kind == 'R')
		r->r.row = copy;
	else
		r->r.name = copy;
	return 0;
}

int
journal_recovery_load(struct journal_recovery *rc, struct spool *sp,
    const char *job)
{
	return spool_log_read(sp, job, ".journal", rec_line, rc);
}

int
journal_recovery_parse(struct journal_recovery *rc, const char *buf,
    size_t len)
{
	const char *nl;

	while ((nl = memchr(buf, '\n', len)) != NULL) {
		if (rec_line(buf, (size_t)(nl - buf), rc) == -1)
			return -1;
		len -= (size_t)(nl - buf) + 1;
		buf = nl + 1;
	}
	return 0;
}

static int
rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	if (x->r.index != y->r.index)
		return (x->r.index > y->r.index) - (x->r.index < y->r.index);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Sort by index, then line order, and fold each index into one record. */
static void
rec_merge(struct journal_recovery *rc)
{
	struct rec *o, *x;
	size_t i;

	rc->merged = 1;
	rc->pos = 0;
	if (rc->n == 0)
		return;
	qsort(rc->v, rc->n, sizeof(*rc->v), rec_cmp);
	for (i = 1, o = rc->v; i < rc->n; i++) {
		x = &rc->v[i];
		if (x->r.index != o->r.index) {
			*++o = *x;
			continue;
		}
		if (x->r.name != NULL) {
			free(o->r.name);
			o->r.name = x->r.name;
			/* A new claim is a new file: nothing is known of it. */
			fetch_meta_unknown(&o->r.expect);
		}
		if (x->r.has_mirror) {
			o->r.has_mirror = 1;
			o->r.mirror = x->r.mirror;
			o->r.expect = x->r.expect;
		}
		if (x->r.row != NULL) {
			free(o->r.row);
			o->r.row = x->r.row;
		}
		if (x->r.split != NULL) {
			free(o->r.split);
			o->r.split = x->r.split;
		}
	}
	rc->n = (size_t)(o - rc->v) + 1;
}

const struct journal_rec *
journal_recovery_find(struct journal_recovery *rc, size_t index)
{
	if (!rc->merged)
		rec_merge(rc);
	while (rc->pos < rc->n && rc->v[rc->pos].r.index < index)
		rc->pos++;
	if (rc->pos < rc->n && rc->v[rc->pos].r.index == index)
		return &rc->v[rc->pos].r;
	return NULL;
}
