/*
 * spool.h: the spool directory, maildir style. The only module that moves
 * spool files.
 *
 *	spool/tmp/     producers write here
 *	spool/new/     producers rename complete jobs here; fetchd watches it
 *	spool/active/  claimed jobs: J, and J.result (results so far, in job
 *	               order) and J.journal (claims and out-of-order results)
 *	spool/done/    J and J.result: every URL succeeded
 *	spool/failed/  J and J.result: a URL failed for good, or the job was
 *	               rejected (malformed, not a regular file, bad name)
 *	spool/hooks/   J: the hooks still owed for an ended job J
 *
 * Every hand-off is write, fsync, rename, fsync the directory; nothing is
 * deleted before its successor exists; renames never replace (renameat2
 * RENAME_NOREPLACE), so a job is claimed and finished exactly once.
 */
#ifndef FETCHD_SPOOL_H
#define FETCHD_SPOOL_H

#include <stddef.h>

#define SPOOL_NAME_MAX 128 /* bytes in a job name (claimed names may add ".N") */

struct spool {
	char *root;
	int rootfd, tmpfd, newfd, activefd, donefd, failedfd;
	int hooksfd;            /* hooks/: records of hooks still owed */
	int inotify_fd;         /* watches new/, -1 until spool_watch() */
	int lease_logged;       /* said once that writers cannot be told */
};

/* Create the tree if missing (mode 0750 for the root and subdirectories,
 * new/ 0770 so a producer group can drop jobs) and open every directory.
 * 0 or -1 with a message in err. */
int spool_open(struct spool *sp, const char *root, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void spool_close(struct spool *sp);

/*
 * 1 when name is acceptable as a job name: 1..SPOOL_NAME_MAX bytes of
 * [A-Za-z0-9._+@=,-], not starting with '.', not ending in ".result",
 * ".journal" or ".tmp".
 */
int spool_name_valid(const char *name);

/* Start an inotify watch on new/ (IN_CLOSE_WRITE | IN_MOVED_TO, non-
 * blocking, close-on-exec). Returns the fd to poll, or -1. */
int spool_watch(struct spool *sp);

/*
 * Drain pending inotify events; call cb(name) for each file closed after
 * writing or moved into new/. Sets *overflow when the kernel queue overflowed
 * (the caller should rescan). Returns 0 or -1.
 */
int spool_watch_read(struct spool *sp, void (*cb)(const char *name, void *),
    void *arg, int *overflow);

/*
 * Call cb(name) for each entry of new/ except dot files, sorted by name so
 * jobs start in a predictable order. A regular file that a process has open
 * for writing is skipped (inotify reports it when the writer closes it);
 * one with no writer is passed at once, whatever its age. Telling needs a
 * file lease: the file's owner or CAP_LEASE, and a file system with
 * leases. Where it cannot be told, files whose mtime is younger than
 * min_age seconds are skipped instead. The caller must ignore SIGIO (see
 * spool.c, writer_check()). Returns the number of entries passed to cb, or
 * -1.
 */
int spool_scan_new(struct spool *sp, long min_age,
    void (*cb)(const char *name, void *), void *arg);

enum spool_claim_result {
	SPOOL_CLAIMED = 0,   /* moved to active/<claimed> */
	SPOOL_GONE,          /* no such entry any more (someone else took it) */
	SPOOL_REJECTED,      /* not a regular file or a bad name: moved to
	                        failed/ with a J.result saying why */
	SPOOL_ERROR = -1,    /* the file system failed; logged; left in new/ */
};

/*
 * Claim new/<name>. A regular file is renamed into active/ under the first
 * of name, name.1, name.2, ... that exists in none of active/, done/,
 * failed/; the name used is written to claimed (SPOOL_NAME_MAX + 16 bytes).
 * Anything else (symlink, FIFO, directory, socket, device, a name failing
 * spool_name_valid) is never opened or followed: it is renamed into failed/
 * (a bad name under a sanitised one) with a result file giving the reason.
 */
enum spool_claim_result spool_claim(struct spool *sp, const char *name,
    char *claimed, size_t claimedlen);

/* Where a job of that name is. */
enum spool_place {
	SPOOL_IN_NONE = 0,      /* nowhere (or not a valid job name) */
	SPOOL_IN_NEW,           /* queued */
	SPOOL_IN_ACTIVE,
	SPOOL_IN_DONE,
	SPOOL_IN_FAILED,
	SPOOL_IN_ERROR = -1,    /* the file system failed; logged */
};

/*
 * The directory that holds an entry called job: active/ first (the job
 * worked on now), then new/, done/, failed/ (an ended job: its J there).
 * Names are looked up, never opened; a claimed name's ".N" is fine.
 */
enum spool_place spool_where(struct spool *sp, const char *job);

/* Is there an entry called name in new/ (any type, any name, not
 * followed)? 1 or 0; -1 when the file system fails (logged). */
int spool_in_new(struct spool *sp, const char *name);

/* The absolute path of an ended job's result, done/ or failed/ (failed
 * set) J.result, into buf. 0, or -1 when it does not fit. */
int spool_result_path(const struct spool *sp, const char *job, int failed,
    char *buf, size_t len);

/* Open active/<job> for reading: O_NOFOLLOW, regular files only. fd or -1. */
int spool_open_job(struct spool *sp, const char *job);

/*
 * Append-only line files in active/: J.result and J.journal. Opening one
 * that exists cuts an incomplete last line left by a crash. Appends are
 * whole lines (the caller includes the '\n'); data is buffered and written
 * by spool_log_flush(), by spool_log_sync() or when the buffer fills.
 */
struct spool_log;

struct spool_log *spool_log_open(struct spool *sp, const char *job,
    const char *suffix);
int spool_log_append(struct spool_log *lg, const char *line, size_t len)
    __attribute__((warn_unused_result));
int spool_log_flush(struct spool_log *lg) __attribute__((warn_unused_result));
int spool_log_sync(struct spool_log *lg) __attribute__((warn_unused_result));
size_t spool_log_lines(const struct spool_log *lg); /* complete lines in it */
void spool_log_close(struct spool_log *lg);

/*
 * Read active/<job><suffix> line by line (without '\n'), complete lines
 * only. cb returns 0 to go on, -1 to stop. Returns 0 (also when the file
 * does not exist) or -1.
 */
int spool_log_read(struct spool *sp, const char *job, const char *suffix,
    int (*cb)(const char *line, size_t len, void *), void *arg);

/*
 * Finish a job: active/J.result -> done|failed/J.result, then active/J ->
 * done|failed/J, then remove active/J.journal; fsync each file and directory
 * on the way. Returns 0 or -1 (logged; the job stays recoverable). May be
 * called again after a failure: it completes what the failed call left,
 * also when only the fsyncs after the last rename failed.
 */
int spool_finish(struct spool *sp, const char *job, int failed)
    __attribute__((warn_unused_result));

/*
 * Recovery at start. For each job file in active/: if its result already
 * reached done/ or failed/ (a crash between the two renames), complete the
 * move; otherwise call cb(job) so the caller resumes it. Stray J.journal or
 * J.result files without a J are removed. Returns jobs resumed, or -1.
 */
int spool_recover(struct spool *sp, void (*cb)(const char *job, void *),
    void *arg);

/*
 * Producers: how a job gets into new/. fetchctl submit uses these; the
 * daemon uses spool_count_new() for its statistics.
 */

/*
 * Open an existing spool as a producer: the root, tmp/ and new/, and
 * active/, done/ and failed/ when it may read them (for spool_submit's
 * names). Nothing is created (a producer must not make the tree with its
 * own owner and modes) and only read and write access to tmp/ and new/ is
 * needed.
 * Enough for spool_submit() and spool_count_new(); everything else needs
 * spool_open(). 0, or -1 with a message in err and errno kept (EACCES:
 * permission denied).
 */
int spool_open_producer(struct spool *sp, const char *root, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * A job name for the file at path, the n-th of those submitted together:
 * the last component of path with leading dots removed and bytes outside
 * [A-Za-z0-9._+@=,-] replaced by '_' ("job" when nothing is left), cut to
 * fit, then ".TIME.PID.N" (seconds since the epoch, the process ID, n):
 * unique for one process, sorting by time, and spool_name_valid(). 0, or
 * -1 when it does not fit len.
 */
int spool_name_from_path(const char *path, unsigned n, char *buf,
    size_t len) __attribute__((warn_unused_result));

/* One job for spool_submit(). */
struct spool_submission {
	const char *name;       /* its name in new/: spool_name_valid() */
	const char *path;       /* the job file; also names it in messages */
	int fd;                 /* >= 0: read this instead of opening path
	                           (the standard input); not closed */
	char queued[SPOOL_NAME_MAX + 1]; /* out: its name in new/, name or
	                           name.N (spool_submit) */
};

/*
 * Hand n jobs to the daemon, all or none. Each is copied into tmp/<name>
 * (created O_EXCL | O_NOFOLLOW, mode 0640 whatever the umask), and
 * check(fd, job, arg), when not NULL, is given the staged copy, open for
 * reading at its start, to accept (0) or refuse (-1, saying why). Every job
 * is staged and checked even after one failed, so the caller hears of every
 * problem at once. Only when all were staged and accepted are they synced
 * and renamed into new/, each under the first of name, name.1, name.2, ...
 * that exists in none of new/, active/, done/ and failed/ (by spool_claim's
 * rule, so the daemon keeps that name; a directory the producer cannot
 * read counts as empty), written to its queued member; and new/ is
 * synced. Nothing of the call is left in tmp/.
 *
 * Returns 0 when every job is in new/ and new/ is synced. Otherwise -1
 * (logged) and *submitted (may be NULL) is the number of jobs, from the
 * first, that did reach new/: 0, unless the file system failed during the
 * renames or the sync that follows them (what reached new/ cannot be taken
 * back: the daemon may have claimed it already).
 */
int spool_submit(struct spool *sp, struct spool_submission *jobs,
    size_t n, int (*check)(int fd, const struct spool_submission *job,
    void *arg), void *arg, size_t *submitted)
    __attribute__((warn_unused_result));

/*
 * The entries of new/ not starting with '.': jobs waiting to be claimed,
 * including any a claim would reject. cb, when not NULL, gets each name in
 * directory order. new/ is read through a descriptor of its own, so
 * sp->newfd is not moved. Returns the count, or -1.
 */
long spool_count_new(struct spool *sp, void (*cb)(const char *name, void *),
    void *arg);

/*
 * Hooks (jobhook.c): hooks/J records what an ended job J is still owed.
 * The record's text belongs to jobhook.c; here it is only stored, written
 * before the job's last move out of active/ and removed when its hooks
 * are over, so that no crash loses one.
 */

/* Write hooks/<job> holding data, replacing an earlier record: temporary,
 * fsync, rename, fsync hooks/. 0 or -1 (logged). */
int spool_hook_write(struct spool *sp, const char *job, const char *data,
    size_t len) __attribute__((warn_unused_result));

/* Read hooks/<job> into buf, NUL-terminated (a longer record is cut).
 * The bytes read, or -1 (logged). */
long spool_hook_read(struct spool *sp, const char *job, char *buf,
    size_t len);

/* Remove hooks/<job> (gone already is fine). 0 or -1 (logged). */
int spool_hook_remove(struct spool *sp, const char *job);

/* Call cb(job) for each record in hooks/, sorted by name; temporaries a
 * crash left are removed. The number of records, or -1. */
long spool_hook_list(struct spool *sp, void (*cb)(const char *job, void *),
    void *arg);

#endif
