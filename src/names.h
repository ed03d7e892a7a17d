/*
 * names.h: the output names of one job, reserved a URL at a time in the
 * job's download directory. Main loop only; each job owns one.
 *
 * It is the one place that decides which file a URL writes. It keeps the
 * job's directory open (every transfer of the job works relative to it),
 * the names of the job's live transfers (their .part files are only created
 * by fetch_begin(), on whichever thread runs them, so a name is taken
 * before it exists on disk), a Bloom filter of the names reserved in a
 * directory this run created (a name it never saw cannot be there, and
 * costs no lstat), the candidate sequence for a name in use ("a.iso",
 * "a.1.iso", "a.2.iso", ...), and the resume rules for a name an earlier
 * run reserved. It creates directories (through fetch_open_parent(), never
 * following a symlink) but no files.
 */
#ifndef FETCHD_NAMES_H
#define FETCHD_NAMES_H

#include <stddef.h>

#include "fetch.h"

struct names;

/* The names of the job whose files go to dir (download_dir/J), which has
 * nurls URLs (sizes the Bloom filter). Nothing is opened yet. NULL when
 * out of memory. */
struct names *names_new(const char *dir, size_t nurls);
void names_free(struct names *nm);

/*
 * The job refreshes a tree (job.h's @refresh): each name is reserved as
 * asked, never a candidate, since an existing file is the one to replace
 * (fetch.c publishes over it); two lines of the job asking for one name
 * fail the later, and what an earlier run left is fetched again
 * (conditionally, so a finished file costs a 304).
 */
void names_set_refresh(struct names *nm);

/*
 * Reserve an output name for t, whose t->dir is the job's directory and
 * t->name the name wanted. Sets t->dirfd to the job's directory (opened,
 * made when missing, with the first reservation; -1 when it cannot be, and
 * then fetch works from the path and reports why).
 *
 * A candidate is free when neither it nor its .part exists and no live
 * transfer of the job holds it. resume: t->name was reserved by an earlier
 * run (recovery), so an existing name.part is the transfer's own, and when
 * name.part is gone but name exists as a regular file the transfer had
 * finished (files get their final name only after verification).
 *
 * 0: t->name is reserved (maybe "a.1.iso" for "a.iso") and held until
 * names_release(t). 1: finished by an earlier run; t->size is the file's
 * size, t->outcome FETCH_OK. -1: no name can be written (a symlink or a
 * non-regular .part in the way, an invalid name, no free candidate);
 * t->error and t->errkind (FERR_WRITE) say why.
 */
int names_reserve(struct names *nm, struct transfer *t, int resume)
    __attribute__((warn_unused_result));

/* t's transfer is over: its name is free again (unless it is on disk). A
 * t that holds no name is ignored. */
void names_release(struct names *nm, const struct transfer *t);

/*
 * 1 when name (relative to the job's directory) surely exists neither as
 * itself nor as its .part: the directory was made by this run and the
 * filter never saw the name. 0 means "maybe".
 */
int names_absent(const struct names *nm, const char *name);

/* The job's directory, or -1 when it is not open (yet). */
int names_dirfd(const struct names *nm);

#endif
