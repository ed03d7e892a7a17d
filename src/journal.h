/*
 * journal.h: active/J.journal, what a restart needs beyond the rows J.result
 * holds in job order. Records, one line each:
 *
 *	"C\t<index>\t<name>\n"  URL <index> reserved output name <name>
 *	"R\t<index>\t<row>"    URL <index> finished ahead of its turn
 *	                        (<row> as result.h formats it, with '\n')
 *	"M\t<index>\t<mirror>\t<length>\t<etag>\t<last_modified>\n"
 *	                        URL <index> goes on with URL <mirror> of its
 *	                        line (0 its own, 1 its first mirror= ...),
 *	                        and its .part is a copy of a resource of
 *	                        <length> bytes (-1 unknown) with that ETag
 *	                        and Last-Modified date (empty: none)
 *	"S\t<index>\t<length>\t<start>,<start>,...\t<etag>\t<date>\n"
 *	                        URL <index> is fetched as ranges starting at
 *	                        those bytes of a resource of <length> bytes
 *	                        with that ETag and Last-Modified date (each
 *	                        "" when unknown); "S\t<index>\t-\n": it is
 *	                        fetched as one stream again
 *
 * Writing goes through a spool_log (buffered, whole lines). Reading back is
 * pure and works on buffers: complete lines only, anything that is not a
 * well-formed record is skipped, and the records of one index merge (a
 * claim and later its result; the last claim of an index wins, and so
 * does the last M record, whose length and validators a later claim, of
 * a new file, makes unknown).
 */
#ifndef FETCHD_JOURNAL_H
#define FETCHD_JOURNAL_H

#include <stddef.h>

#include "fetch.h"
#include "spool.h"

struct journal;

/* Open (create) active/<job>.journal for appending. NULL on failure. */
struct journal *journal_open(struct spool *sp, const char *job);
void journal_close(struct journal *jr);

/* Record the name reserved for URL index. 0 or -1. */
int journal_claim(struct journal *jr, size_t index, const char *name)
    __attribute__((warn_unused_result));

/* Record URL index's result row (len bytes with its '\n'). 0 or -1. */
int journal_result(struct journal *jr, size_t index, const char *row,
    size_t len) __attribute__((warn_unused_result));

/*
 * Record that URL index goes on with URL mirror of its line and that its
 * .part is a copy of expect (t->expect). A validator that would not fit
 * the record (a tab or control byte, never in a valid one) makes the
 * whole of expect unknown in it. 0 or -1.
 */
int journal_mirror(struct journal *jr, size_t index, size_t mirror,
    const struct fetch_meta *expect) __attribute__((warn_unused_result));
/* How a segmented URL was split: n ranges (0: fetched as one stream
 * after all), starts[i] the first byte of range i, meta the resource's
 * length and validators (ranges set). */
struct journal_split {
	unsigned n;
	uint64_t starts[FETCH_SEGMENTS_MAX];
	struct fetch_meta meta;
};

/* Record URL index's split (sp->n 0: one stream from now on). A validator
 * holding a tab or a newline is recorded as unknown. 0 or -1. */
int journal_split(struct journal *jr, size_t index,
    const struct journal_split *sp) __attribute__((warn_unused_result));

/* Write out what was appended. 0 or -1. */
int journal_flush(struct journal *jr) __attribute__((warn_unused_result));

/* What an earlier run recorded about one URL. */
struct journal_rec {
	size_t index;
	char *name;             /* the name it reserved, or NULL */
	char *row;              /* its result row with '\n', or NULL */
	int has_mirror;         /* an M record was found: */
	size_t mirror;          /* the URL of its line in use */
	struct fetch_meta expect; /* what its .part is a copy of */
	struct journal_split *split;    /* its last split, or NULL */
};

struct journal_recovery;

/* Records of indexes below base are ignored (J.result has them). */
struct journal_recovery *journal_recovery_new(size_t base);
void journal_recovery_free(struct journal_recovery *rc);

/* Take the records of active/<job>.journal (none when it is missing). */
int journal_recovery_load(struct journal_recovery *rc, struct spool *sp,
    const char *job) __attribute__((warn_unused_result));

/* Take the complete lines of buf[0..len); a last line without '\n' is torn
 * and skipped. 0, or -1 when out of memory. */
int journal_recovery_parse(struct journal_recovery *rc, const char *buf,
    size_t len) __attribute__((warn_unused_result));

/*
 * The merged record of index, or NULL. Asked for in increasing index order
 * (each call moves a cursor: an index below an earlier one is not found).
 */
const struct journal_rec *journal_recovery_find(struct journal_recovery *rc,
    size_t index);

#endif
