/*
 * spool.c: the spool directory and every move of a file inside it.
 *
 * The tree follows qmail's maildir and postfix's queue: producers write in
 * tmp/ and rename into new/; fetchd claims a job by renaming new/J into
 * active/, keeps J.result and J.journal beside it while it runs, and files
 * J.result and then J into done/ or failed/. Every hand-off is create
 * (O_EXCL), write, fsync, close, rename with RENAME_NOREPLACE, fsync the
 * directory; nothing is removed before its successor exists, and no rename
 * ever replaces a file, so a kill -9 at any instant loses no job and
 * finishes none twice.
 *
 * The producers' side of the hand-off is here too (spool_submit(), used by
 * fetchctl submit), so that the crash-safe steps are written once.
 *
 * All directory work goes through the descriptors opened by spool_open():
 * a directory swapped for a symlink afterwards cannot redirect a write.
 * Entries in new/ belong to producers and are never followed here: their
 * type is read with fstatat(AT_SYMLINK_NOFOLLOW), and checked again once
 * the rename has put them out of the producers' reach. The one open of an
 * entry still in new/ is the scan's writer check (writer_check()): read
 * only, O_NOFOLLOW and O_NONBLOCK, of what fstatat() found to be a
 * regular file, never read from.
 */
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "result.h"
#include "spool.h"
#include "util.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define SPOOL_LOG_BUFSZ (64 * 1024)   /* spool_log write buffer */
#define SPOOL_READ_BUFSZ (64 * 1024)  /* longest line spool_log_read takes */
#define SPOOL_CLAIMED_MAX (SPOOL_NAME_MAX + 16)
#define SPOOL_SUFFIX_TRIES 100000     /* name, name.1, ... name.99999 */
#define SPOOL_FILE_MODE 0640

struct spool_log {
	int fd;
	int err;        /* sticky: a write or fsync failed, refuse more */
	size_t len;     /* bytes waiting in buf */
	size_t lines;   /* complete lines in the file plus those in buf */
	char *name;     /* "job.suffix", for messages */
	char buf[SPOOL_LOG_BUFSZ];
};

static int
spool_fsync_dir(struct spool *sp, int dirfd, const char *what)
{
	if (fsync(dirfd) == -1) {
		log_warn("fsync %s/%s", sp->root, what);
		return -1;
	}
	return 0;
}

static int
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int
name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' ||
	    c == '@' || c == '=' || c == ',' || c == '-';
}

/* spool_name_valid() with a length limit: claimed names may carry ".N". */
static int
name_valid_len(const char *name, size_t max)
{
	size_t n;

	if (name == NULL || name[0] == '\0' || name[0] == '.')
		return 0;
	for (n = 0; name[n] != '\0'; n++)
		if (n >= max || !name_char_ok((unsigned char)name[n]))
			return 0;
	if (has_suffix(name, ".result") || has_suffix(name, ".journal") ||
	    has_suffix(name, ".tmp"))
		return 0;
	return 1;
}

int
spool_name_valid(const char *name)
{
	return name_valid_len(name, SPOOL_NAME_MAX);
}

/* A job name as found in active/, done/ or failed/ (possibly with ".N"). */
static int
claimed_name_valid(const char *name)
{
	return name_valid_len(name, SPOOL_CLAIMED_MAX - 1);
}

/* 1 when dirfd/name exists (any type), 0 when not, -1 on error. A
 * directory a producer could not open (dirfd -1) holds nothing it can
 * know of. */
static int
entry_exists(struct spool *sp, int dirfd, const char *dir, const char *name)
{
	struct stat st;

	if (dirfd < 0)
		return 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	log_warn("stat %s/%s/%s", sp->root, dir, name);
	return -1;
}

/* Same, for name + suffix. */
static int
entry_exists2(struct spool *sp, int dirfd, const char *dir, const char *name,
    const char *suffix)
{
	char path[NAME_MAX + 1];

	if ((size_t)snprintf(path, sizeof(path), "%s%s", name, suffix) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		log_warn("%s/%s/%s%s", sp->root, dir, name, suffix);
		return -1;
	}
	return entry_exists(sp, dirfd, dir, path);
}

/*
 * 1 when a job named name may be created: no name, name.result or
 * name.journal in active/, no name or name.result in done/ or failed/. A
 * stale journal must never be inherited by a new job of the same name.
 * 0 when taken, -1 on error.
 */
static int
name_free(struct spool *sp, const char *name)
{
	static const char *const sfx[] = { "", ".result", ".journal" };
	int r;

	for (size_t i = 0; i < 3; i++) {
		if ((r = entry_exists2(sp, sp->activefd, "active", name,
		    sfx[i])) != 0)
			return r == 1 ? 0 : -1;
		if (i == 2)
			break;
		if ((r = entry_exists2(sp, sp->donefd, "done", name,
		    sfx[i])) != 0)
			return r == 1 ? 0 : -1;
		if ((r = entry_exists2(sp, sp->failedfd, "failed", name,
		    sfx[i])) != 0)
			return r == 1 ? 0 : -1;
	}
	return 1;
}

/*
 * Write cand (len bytes) for try n: base for n == 0, else base.n. Returns
 * 0, or -1 when it does not fit.
 */
static int
name_candidate(char *cand, size_t len, const char *base, unsigned n)
{
	int r;

	if (n == 0)
		r = snprintf(cand, len, "%s", base);
	else
		r = snprintf(cand, len, "%s.%u", base, n);
	return r < 0 || (size_t)r >= len ? -1 : 0;
}

/*
 * Create dirfd/name, O_EXCL and O_NOFOLLOW, mode SPOOL_FILE_MODE less the
 * umask; read-write, so a caller can read back what it wrote. With stale
 * set, a file of that name is a temporary of ours left by a crash and is
 * removed first; without, it belongs to someone else and the create fails
 * with EEXIST. fd, or -1 (logged, errno kept).
 */
static int
create_excl(struct spool *sp, int dirfd, const char *dir, const char *name,
    int stale)
{
	int fd = -1, tries;

	for (tries = 0; tries < 2; tries++) {
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, SPOOL_FILE_MODE);
		if (fd != -1 || errno != EEXIST || !stale)
			break;
		if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
			break;
	}
	if (fd == -1)
		log_warn("create %s/%s/%s", sp->root, dir, name);
	return fd;
}

/* fsync and close fd, dir/name's: the data is on disk before any rename.
 * fd is closed either way. 0, or -1 (logged, errno kept). */
static int
sync_close(struct spool *sp, int fd, const char *dir, const char *name)
{
	int saved;

	if (fsync(fd) == -1) {
		saved = errno;
		log_warn("fsync %s/%s/%s", sp->root, dir, name);
		close(fd);
		errno = saved;
		return -1;
	}
	if (close(fd) == -1) {
		log_warn("close %s/%s/%s", sp->root, dir, name);
		return -1;
	}
	return 0;
}

/*
 * Create dirfd/final holding data, crash-safely: write a temporary dot
 * file, fsync, close, rename without replacing. A temporary left by an
 * earlier crash is ours (nothing else writes these names) and is removed
 * first. The directory is not fsynced: the caller does that. On failure
 * errno is kept (EEXIST: final already exists) and nothing is left.
 */
static int
write_file_at(struct spool *sp, int dirfd, const char *dir, const char *final,
    const char *data, size_t len)
{
	char tmp[NAME_MAX + 1];
	int fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", final) >=
	    sizeof(tmp)) {
		errno = ENAMETOOLONG;
		log_warn("%s/%s/%s", sp->root, dir, final);
		return -1;
	}
	if ((fd = create_excl(sp, dirfd, dir, tmp, 1)) == -1)
		return -1;
	if (util_write_all(fd, data, len) == -1) {
		saved = errno;
		log_warn("write %s/%s/%s", sp->root, dir, tmp);
		close(fd);
		errno = saved;
		goto fail;
	}
	if (sync_close(sp, fd, dir, tmp) == -1)
		goto fail;
	if (util_rename_noreplace(dirfd, tmp, dirfd, final) == -1) {
		if (errno != EEXIST)
			log_warn("rename %s/%s/%s", sp->root, dir, tmp);
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	unlinkat(dirfd, tmp, 0);
	errno = saved;
	return -1;
}

static void
spool_reset(struct spool *sp)
{
	sp->root = NULL;
	sp->rootfd = sp->tmpfd = sp->newfd = -1;
	sp->activefd = sp->donefd = sp->failedfd = -1;
	sp->hooksfd = -1;
	sp->inotify_fd = -1;
	sp->lease_logged = 0;
}

/* mkdir -p for the components above the root; umask applies to these. */
static int
mkdir_parents(const char *root, char *err, size_t errlen)
{
	char *p, *s;

	if ((s = strdup(root)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = s + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(s, 0750) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", s,
			    strerror(errno));
			free(s);
			return -1;
		}
		*p = '/';
	}
	free(s);
	return 0;
}

/*
 * Open dirfd/name, a directory on dev (rename(2) cannot cross file
 * systems), without following a symlink. fd, or -1 with a message in err
 * and errno kept.
 */
static int
open_dir_at(int dirfd, const char *root, const char *name, dev_t dev,
    char *err, size_t errlen)
{
	struct stat st;
	int fd, saved;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1) {
		saved = errno;
		snprintf(err, errlen, "open %s/%s: %s", root, name,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		errno = saved;
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		snprintf(err, errlen, "stat %s/%s: %s", root, name,
		    strerror(errno));
		close(fd);
		errno = saved;
		return -1;
	}
	if (st.st_dev != dev) {
		snprintf(err, errlen, "%s/%s: on another file system than %s",
		    root, name, root);
		close(fd);
		errno = EXDEV;
		return -1;
	}
	return fd;
}

/*
 * Open (creating when missing) dirfd/name. A directory created here gets
 * exactly mode, whatever the umask, since new/ must be group-writable for
 * producers; an existing one keeps the mode its owner gave it.
 */
static int
open_subdir(int dirfd, const char *root, const char *name, mode_t mode,
    dev_t dev, char *err, size_t errlen)
{
	int created = 0, fd;

	if (mkdirat(dirfd, name, mode) == 0)
		created = 1;
	else if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s/%s: %s", root, name,
		    strerror(errno));
		return -1;
	}
	if ((fd = open_dir_at(dirfd, root, name, dev, err, errlen)) == -1)
		return -1;
	if (created && fchmod(fd, mode) == -1) {
		snprintf(err, errlen, "chmod %s/%s: %s", root, name,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* sp->root from root: "spool/" and "spool" are the same directory. */
static int
set_root(struct spool *sp, const char *root, char *err, size_t errlen)
{
	size_t len;

	spool_reset(sp);
	if (root == NULL || root[0] == '\0') {
		snprintf(err, errlen, "empty spool directory name");
		errno = EINVAL;
		return -1;
	}
	if ((sp->root = strdup(root)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (len = strlen(sp->root); len > 1 && sp->root[len - 1] == '/'; len--)
		sp->root[len - 1] = '\0';
	return 0;
}

/* Open sp->root, which may be reached through a symlink; st gets its
 * status. 0, or -1 with a message in err and errno kept. */
static int
open_root(struct spool *sp, struct stat *st, char *err, size_t errlen)
{
	int saved;

	sp->rootfd = open(sp->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->rootfd == -1 || fstat(sp->rootfd, st) == -1) {
		saved = errno;
		snprintf(err, errlen, "%s %s: %s", sp->rootfd == -1 ? "open" :
		    "stat", sp->root, strerror(errno));
		errno = saved;
		return -1;
	}
	return 0;
}

/*
 * The root path is the administrator's choice and may be reached through a
 * symlink; the directories inside it are opened with O_NOFOLLOW.
 */
int
spool_open(struct spool *sp, const char *root, char *err, size_t errlen)
{
	struct stat st;
	int created = 0;

	if (set_root(sp, root, err, errlen) == -1)
		return -1;
	root = sp->root;
	if (mkdir_parents(root, err, errlen) == -1)
		goto fail;
	if (mkdir(root, 0750) == 0)
		created = 1;
	else if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", root, strerror(errno));
		goto fail;
	}
	if (open_root(sp, &st, err, errlen) == -1)
		goto fail;
	if (created && fchmod(sp->rootfd, 0750) == -1) {
		snprintf(err, errlen, "chmod %s: %s", root, strerror(errno));
		goto fail;
	}
	if ((sp->tmpfd = open_subdir(sp->rootfd, root, "tmp", 0770,
	    st.st_dev, err, errlen)) == -1 ||
	    (sp->newfd = open_subdir(sp->rootfd, root, "new", 0770,
	    st.st_dev, err, errlen)) == -1 ||
	    (sp->activefd = open_subdir(sp->rootfd, root, "active", 0750,
	    st.st_dev, err, errlen)) == -1 ||
	    (sp->donefd = open_subdir(sp->rootfd, root, "done", 0750,
	    st.st_dev, err, errlen)) == -1 ||
	    (sp->failedfd = open_subdir(sp->rootfd, root, "failed", 0750,
	    st.st_dev, err, errlen)) == -1 ||
	    (sp->hooksfd = open_subdir(sp->rootfd, root, "hooks", 0750,
	    st.st_dev, err, errlen)) == -1)
		goto fail;
	/* make the new directories themselves durable */
	if (fsync(sp->rootfd) == -1) {
		snprintf(err, errlen, "fsync %s: %s", root, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	spool_close(sp);
	return -1;
}

void
spool_close(struct spool *sp)
{
	int *fds[] = { &sp->rootfd, &sp->tmpfd, &sp->newfd, &sp->activefd,
	    &sp->donefd, &sp->failedfd, &sp->hooksfd, &sp->inotify_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	free(sp->root);
	sp->root = NULL;
}

/*
 * inotify has no *at variant, so the watch is set by path; the directory
 * it resolved to is then checked against the one spool_open() opened.
 */
int
spool_watch(struct spool *sp)
{
	struct stat a, b;
	char *path = NULL;
	int fd;

	if (sp->inotify_fd >= 0) {
		close(sp->inotify_fd);
		sp->inotify_fd = -1;
	}
	if (asprintf(&path, "%s/new", sp->root) == -1) {
		log_warnx("out of memory");
		return -1;
	}
	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		log_warn("inotify_init1");
		goto fail;
	}
	if (inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MOVED_TO |
	    IN_ONLYDIR | IN_DONT_FOLLOW) == -1) {
		log_warn("inotify_add_watch %s", path);
		goto fail;
	}
	if (fstat(sp->newfd, &a) == -1 ||
	    fstatat(sp->rootfd, "new", &b, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("stat %s", path);
		goto fail;
	}
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		log_warnx("%s was replaced after the spool was opened", path);
		goto fail;
	}
	free(path);
	sp->inotify_fd = fd;
	return fd;
fail:
	if (fd != -1)
		close(fd);
	free(path);
	return -1;
}

/*
 * *overflow is cleared first and set when the kernel dropped events. Dot
 * names (editors' and copiers' temporaries) are not reported.
 */
int
spool_watch_read(struct spool *sp, void (*cb)(const char *, void *),
    void *arg, int *overflow)
{
	char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	if (overflow != NULL)
		*overflow = 0;
	if (sp->inotify_fd < 0) {
		log_warnx("spool %s: not watched", sp->root);
		return -1;
	}
	for (;;) {
		n = read(sp->inotify_fd, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			log_warn("read inotify for %s/new", sp->root);
			return -1;
		}
		if (n == 0)
			return 0;
		for (p = buf; p < buf + n;
		    p += sizeof(struct inotify_event) + ev->len) {
			ev = (const struct inotify_event *)(void *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				if (overflow != NULL)
					*overflow = 1;
				continue;
			}
			if (ev->mask & IN_IGNORED) {
				log_warnx("%s/new: watch removed", sp->root);
				if (overflow != NULL)
					*overflow = 1;
				continue;
			}
			if (ev->len == 0 || ev->name[0] == '\0' ||
			    ev->name[0] == '.')
				continue;
			if (cb != NULL)
				cb(ev->name, arg);
		}
	}
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Sorted names of dirfd's entries; dot entries too when with_dots (never
 * "." and ".."). Returns 0 with *out and *count set, or -1.
 */
static int
list_dir(struct spool *sp, int dirfd, const char *dir, int with_dots,
    char ***out, size_t *count)
{
	char **names = NULL, **nn;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) == -1) {
		log_warn("dup %s/%s", sp->root, dir);
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		log_warn("fdopendir %s/%s", sp->root, dir);
		close(fd);
		return -1;
	}
	/* the duplicate shares its offset with dirfd: start over */
	rewinddir(d);
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0) {
				log_warn("readdir %s/%s", sp->root, dir);
				goto fail;
			}
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_name[0] == '.' && !with_dots)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nn = reallocarray(names, cap,
			    sizeof(*names))) == NULL) {
				log_warnx("out of memory");
				goto fail;
			}
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			log_warnx("out of memory");
			goto fail;
		}
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	*out = names;
	*count = n;
	return 0;
fail:
	closedir(d);
	free_names(names, n);
	return -1;
}

enum writer_state {
	WRITER_NONE = 0,        /* no process has the file open for writing */
	WRITER_ACTIVE,          /* one does: it is still being written */
	WRITER_UNKNOWN,         /* cannot tell */
};

/*
 * Whether some process has new/<name> open for writing. The kernel refuses
 * a read lease (F_SETLEASE F_RDLCK) with EAGAIN exactly when the file is
 * open for writing anywhere; one that is granted is given up at once. A
 * lease needs the file's owner or CAP_LEASE and a file system that has
 * leases; without them (EACCES, EPERM, EINVAL, ...) the answer is
 * WRITER_UNKNOWN, logged once. A writer that opens the file in the instant
 * the lease is held waits that instant, and the kernel sends the daemon
 * SIGIO, which it ignores. st is what fstatat() saw: the descriptor must
 * be that same regular file.
 */
static enum writer_state
writer_check(struct spool *sp, const char *name, const struct stat *st)
{
	enum writer_state w = WRITER_UNKNOWN;
	struct stat fst;
	int fd;

	fd = openat(sp->newfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1)
		return WRITER_UNKNOWN;
	if (fstat(fd, &fst) == -1 || !S_ISREG(fst.st_mode) ||
	    fst.st_dev != st->st_dev || fst.st_ino != st->st_ino)
		goto out;
	if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
		(void)fcntl(fd, F_SETLEASE, F_UNLCK);
		w = WRITER_NONE;
	} else if (errno == EAGAIN)
		w = WRITER_ACTIVE;
	else if (!sp->lease_logged) {
		sp->lease_logged = 1;
		log_info("%s/new: cannot tell whether a file is still being "
		    "written (file lease: %s); a scan leaves recent files for "
		    "later", sp->root, strerror(errno));
	}
out:
	close(fd);
	return w;
}

/*
 * A regular file changed less than min_age seconds ago may still be being
 * copied in. A modification time well in the future was set by hand (a
 * writer's own writes stamp the present), so it does not hold a job back.
 */
static int
too_young(const struct stat *st, long min_age, time_t now)
{
	long long age;

	if (min_age <= 0 || !S_ISREG(st->st_mode))
		return 0;
	age = (long long)now - (long long)st->st_mtim.tv_sec;
	return age >= -2 && age < min_age;
}

/*
 * Whether a scan leaves a regular file in new/ alone for now: while a
 * process has it open for writing (its IN_CLOSE_WRITE, or a later scan,
 * reports it), and, where that cannot be told, while it is younger than
 * min_age.
 */
static int
held_back(struct spool *sp, const char *name, const struct stat *st,
    long min_age, time_t now)
{
	switch (writer_check(sp, name, st)) {
	case WRITER_NONE:
		return 0;
	case WRITER_ACTIVE:
		return 1;
	default:
		return too_young(st, min_age, now);
	}
}

int
spool_scan_new(struct spool *sp, long min_age,
    void (*cb)(const char *, void *), void *arg)
{
	struct stat st;
	char **names;
	size_t n, i;
	time_t now;
	int count = 0;

	if (list_dir(sp, sp->newfd, "new", 0, &names, &n) == -1)
		return -1;
	now = time(NULL);
	for (i = 0; i < n; i++) {
		if (fstatat(sp->newfd, names[i], &st,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT)
				log_warn("stat %s/new/%s", sp->root,
				    names[i]);
			continue;
		}
		if (S_ISREG(st.st_mode) &&
		    held_back(sp, names[i], &st, min_age, now))
			continue;
		if (cb != NULL)
			cb(names[i], arg);
		count++;
	}
	free_names(names, n);
	return count;
}

static const char *
type_reason(mode_t mode)
{
	if (S_ISLNK(mode))
		return "not a regular file (symlink)";
	if (S_ISFIFO(mode))
		return "not a regular file (fifo)";
	if (S_ISDIR(mode))
		return "not a regular file (directory)";
	if (S_ISSOCK(mode))
		return "not a regular file (socket)";
	if (S_ISCHR(mode))
		return "not a regular file (character device)";
	if (S_ISBLK(mode))
		return "not a regular file (block device)";
	return "not a regular file";
}

/*
 * A name safe to use in failed/: bytes outside the job name set become
 * '_', leading dots go, at most SPOOL_NAME_MAX bytes, and a reserved
 * suffix loses its dot so the entry cannot pass for a result or journal.
 */
static void
sanitise_name(const char *name, char *out, size_t outlen)
{
	size_t i = 0;
	char *dot;

	while (*name == '.')
		name++;
	for (; *name != '\0' && i < SPOOL_NAME_MAX && i + 1 < outlen; name++)
		out[i++] = name_char_ok((unsigned char)*name) ? *name : '_';
	out[i] = '\0';
	if (i == 0)
		snprintf(out, outlen, "_");
	if ((has_suffix(out, ".result") || has_suffix(out, ".journal") ||
	    has_suffix(out, ".tmp")) && (dot = strrchr(out, '.')) != NULL)
		*dot = '_';
}

/*
 * Move srcdir/name (never opened) into failed/ under the first free of
 * base, base.1, ..., after writing failed/<that>.result with the reason.
 * The name used goes to claimed. Returns SPOOL_REJECTED, SPOOL_GONE or
 * SPOOL_ERROR.
 */
static enum spool_claim_result
reject(struct spool *sp, int srcfd, const char *srcdir, const char *name,
    const char *base, const char *reason, char *claimed, size_t claimedlen)
{
	char cand[SPOOL_CLAIMED_MAX], resname[SPOOL_CLAIMED_MAX + 8];
	char row[sizeof(RESULT_HEADER) + 256];
	const size_t hlen = sizeof(RESULT_HEADER) - 1;
	unsigned i;
	int r;

	/* The header, then the job's one row: what was wrong with it. */
	memcpy(row, RESULT_HEADER, hlen);
	if (result_format_failed(row + hlen, sizeof(row) - hlen, "-",
	    reason) == -1)
		fatalx("reject: reason '%s' too long", reason);
	for (i = 0;; i++) {
		if (i == SPOOL_SUFFIX_TRIES ||
		    name_candidate(cand, sizeof(cand), base, i) == -1) {
			log_warnx("%s/%s/%s: no free name in failed/",
			    sp->root, srcdir, base);
			goto fail;
		}
		if ((r = name_free(sp, cand)) == -1)
			goto fail;
		if (r == 0)
			continue;
		snprintf(resname, sizeof(resname), "%s.result", cand);
		if (write_file_at(sp, sp->failedfd, "failed", resname, row,
		    strlen(row)) == -1) {
			if (errno == EEXIST)
				continue;
			goto fail;
		}
		/* the reason is durable before the entry moves */
		if (spool_fsync_dir(sp, sp->failedfd, "failed") == -1) {
			(void)unlinkat(sp->failedfd, resname, 0);
			goto fail;
		}
		if (util_rename_noreplace(srcfd, name, sp->failedfd, cand) == 0)
			break;
		r = errno;
		/* that result has no job: take it back */
		if (unlinkat(sp->failedfd, resname, 0) == -1)
			log_warn("unlink %s/failed/%s", sp->root, resname);
		if (r == EEXIST)
			continue;
		if (r == ENOENT)
			return SPOOL_GONE;
		errno = r;
		log_warn("rename %s/%s/%s to failed/%s", sp->root, srcdir,
		    base, cand);
		return SPOOL_ERROR;
	}
	/* the job is in failed/ now: a failed fsync only weakens durability */
	(void)spool_fsync_dir(sp, sp->failedfd, "failed");
	(void)spool_fsync_dir(sp, srcfd, srcdir);
	log_warnx("%s/%s/%s: %s; moved to failed/%s", sp->root, srcdir, base,
	    reason, cand);
	if (claimed != NULL && claimedlen > 0)
		snprintf(claimed, claimedlen, "%s", cand);
	return SPOOL_REJECTED;
fail:
	return SPOOL_ERROR;
}

/*
 * Names starting with '.' are ignored and left alone (SPOOL_GONE), as
 * maildir readers do: they are a producer's work in progress, and scans
 * never pass them; inotify may still report one.
 */
enum spool_claim_result
spool_claim(struct spool *sp, const char *name, char *claimed,
    size_t claimedlen)
{
	char cand[SPOOL_CLAIMED_MAX], safe[SPOOL_NAME_MAX + 1];
	struct stat st;
	unsigned i;
	int r;

	if (claimed == NULL || claimedlen == 0)
		return SPOOL_ERROR;
	claimed[0] = '\0';
	if (name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strchr(name, '/') != NULL || strlen(name) > NAME_MAX)
		return SPOOL_GONE;
	if (fstatat(sp->newfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			return SPOOL_GONE;
		log_warn("stat %s/new entry", sp->root);
		return SPOOL_ERROR;
	}
	if (!S_ISREG(st.st_mode) || !spool_name_valid(name)) {
		sanitise_name(name, safe, sizeof(safe));
		return reject(sp, sp->newfd, "new", name, safe,
		    S_ISREG(st.st_mode) ? "job name not allowed" :
		    type_reason(st.st_mode), claimed, claimedlen);
	}
	for (i = 0; i < SPOOL_SUFFIX_TRIES; i++) {
		if (name_candidate(cand, sizeof(cand), name, i) == -1 ||
		    strlen(cand) >= claimedlen) {
			log_warnx("%s/new/%s: claimed name too long", sp->root,
			    name);
			return SPOOL_ERROR;
		}
		if ((r = name_free(sp, cand)) == -1)
			return SPOOL_ERROR;
		if (r == 0)
			continue;
		if (util_rename_noreplace(sp->newfd, name, sp->activefd, cand) == 0)
			break;
		if (errno == EEXIST)
			continue;
		if (errno == ENOENT)
			return SPOOL_GONE;
		log_warn("rename %s/new/%s to active/%s", sp->root, name, cand);
		return SPOOL_ERROR;
	}
	if (i == SPOOL_SUFFIX_TRIES) {
		log_warnx("%s/new/%s: no free name in active/", sp->root, name);
		return SPOOL_ERROR;
	}
	/*
	 * The claim is done; a failed fsync is logged, and at worst the job
	 * reappears in new/ after a crash and is claimed again.
	 */
	(void)spool_fsync_dir(sp, sp->activefd, "active");
	(void)spool_fsync_dir(sp, sp->newfd, "new");
	/*
	 * A producer could have swapped the entry between fstatat() and the
	 * rename; in active/ it is out of producers' reach, so look again.
	 */
	if (fstatat(sp->activefd, cand, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("stat %s/active/%s", sp->root, cand);
		snprintf(claimed, claimedlen, "%s", cand);
		return SPOOL_ERROR;
	}
	if (!S_ISREG(st.st_mode))
		return reject(sp, sp->activefd, "active", cand, cand,
		    type_reason(st.st_mode), claimed, claimedlen);
	snprintf(claimed, claimedlen, "%s", cand);
	return SPOOL_CLAIMED;
}

/* active/ first: the job being worked on, whatever else has its name. */
enum spool_place
spool_where(struct spool *sp, const char *job)
{
	static const char *const dirs[] = { "active", "new", "done", "failed" };
	static const enum spool_place places[] = {
		SPOOL_IN_ACTIVE, SPOOL_IN_NEW, SPOOL_IN_DONE, SPOOL_IN_FAILED
	};
	const int fds[] = { sp->activefd, sp->newfd, sp->donefd, sp->failedfd };
	size_t i;
	int r;

	if (!claimed_name_valid(job))
		return SPOOL_IN_NONE;
	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if ((r = entry_exists(sp, fds[i], dirs[i], job)) == -1)
			return SPOOL_IN_ERROR;
		if (r == 1)
			return places[i];
	}
	return SPOOL_IN_NONE;
}

int
spool_in_new(struct spool *sp, const char *name)
{
	return entry_exists(sp, sp->newfd, "new", name);
}

int
spool_result_path(const struct spool *sp, const char *job, int failed,
    char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s/%s.result", sp->root,
	    failed ? "failed" : "done", job);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/*
 * Open active/name read-only: O_NOFOLLOW, regular files only. Failures are
 * logged, except a missing file when enoent_ok; errno is kept.
 */
static int
open_active(struct spool *sp, const char *name, int enoent_ok)
{
	struct stat st;
	int fd, saved;

	/* O_NONBLOCK: a FIFO must not hang the open */
	fd = openat(sp->activefd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd == -1) {
		if (errno == ELOOP)
			log_warnx("%s/active/%s: is a symbolic link", sp->root,
			    name);
		else if (errno != ENOENT || !enoent_ok)
			log_warn("open %s/active/%s", sp->root, name);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("stat %s/active/%s", sp->root, name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s/active/%s: not a regular file", sp->root, name);
		errno = EINVAL;
		goto fail;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == -1) {
		log_warn("fcntl %s/active/%s", sp->root, name);
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
spool_open_job(struct spool *sp, const char *job)
{
	if (!claimed_name_valid(job)) {
		log_warnx("%s/active: bad job name", sp->root);
		return -1;
	}
	return open_active(sp, job, 0);
}

static int
log_name(char *buf, size_t len, const char *job, const char *suffix)
{
	if (!claimed_name_valid(job) || suffix == NULL || suffix[0] != '.' ||
	    strchr(suffix, '/') != NULL)
		return -1;
	if ((size_t)snprintf(buf, len, "%s%s", job, suffix) >= len)
		return -1;
	return 0;
}

/*
 * Read the whole file once: count its complete lines and cut an incomplete
 * last line (a crash in the middle of an append) so appends start on a
 * line boundary.
 */
static int
log_scan(struct spool *sp, struct spool_log *lg)
{
	char buf[16384];
	off_t off = 0, end = 0;
	ssize_t n;
	size_t lines = 0;

	for (;;) {
		n = pread(lg->fd, buf, sizeof(buf), off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("read %s/active/%s", sp->root, lg->name);
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n') {
				lines++;
				end = off + i + 1;
			}
		off += n;
	}
	lg->lines = lines;
	if (end < off) {
		log_warnx("%s/active/%s: cutting an incomplete last line "
		    "(%lld bytes)", sp->root, lg->name, (long long)(off - end));
		if (ftruncate(lg->fd, end) == -1 || fsync(lg->fd) == -1) {
			log_warn("truncate %s/active/%s", sp->root, lg->name);
			return -1;
		}
	}
	return 0;
}

/*
 * Opened read-write (appending) rather than write-only: the opening scan
 * has to read the file.
 */
struct spool_log *
spool_log_open(struct spool *sp, const char *job, const char *suffix)
{
	char name[NAME_MAX + 1];
	struct spool_log *lg;
	struct stat st;

	if (log_name(name, sizeof(name), job, suffix) == -1) {
		log_warnx("%s/active: bad log name", sp->root);
		return NULL;
	}
	if ((lg = malloc(sizeof(*lg))) == NULL) {
		log_warnx("out of memory");
		return NULL;
	}
	lg->err = 0;
	lg->len = 0;
	lg->lines = 0;
	if ((lg->name = strdup(name)) == NULL) {
		log_warnx("out of memory");
		free(lg);
		return NULL;
	}
	lg->fd = openat(sp->activefd, name, O_RDWR | O_APPEND | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, SPOOL_FILE_MODE);
	if (lg->fd == -1) {
		log_warn("open %s/active/%s", sp->root, name);
		goto fail;
	}
	if (fstat(lg->fd, &st) == -1) {
		log_warn("stat %s/active/%s", sp->root, name);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_warnx("%s/active/%s: not a regular file", sp->root, name);
		goto fail;
	}
	if (log_scan(sp, lg) == -1)
		goto fail;
	return lg;
fail:
	if (lg->fd != -1)
		close(lg->fd);
	free(lg->name);
	free(lg);
	return NULL;
}

static void
log_failed(struct spool_log *lg, const char *what)
{
	if (!lg->err)
		log_warn("%s %s", what, lg->name);
	lg->err = 1;
	lg->len = 0;
}

int
spool_log_flush(struct spool_log *lg)
{
	if (lg->err)
		return -1;
	if (lg->len == 0)
		return 0;
	if (util_write_all(lg->fd, lg->buf, lg->len) == -1) {
		log_failed(lg, "write");
		return -1;
	}
	lg->len = 0;
	return 0;
}

int
spool_log_append(struct spool_log *lg, const char *line, size_t len)
{
	if (lg->err)
		return -1;
	if (len > sizeof(lg->buf) - lg->len && spool_log_flush(lg) == -1)
		return -1;
	if (len > sizeof(lg->buf)) {
		if (util_write_all(lg->fd, line, len) == -1) {
			log_failed(lg, "write");
			return -1;
		}
	} else {
		memcpy(lg->buf + lg->len, line, len);
		lg->len += len;
	}
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n')
			lg->lines++;
	return 0;
}

int
spool_log_sync(struct spool_log *lg)
{
	if (spool_log_flush(lg) == -1)
		return -1;
	if (fsync(lg->fd) == -1) {
		/* after a failed fsync the kernel may have dropped the data */
		log_failed(lg, "fsync");
		return -1;
	}
	return 0;
}

size_t
spool_log_lines(const struct spool_log *lg)
{
	return lg->lines;
}

/* Flushes but does not fsync: call spool_log_sync() first when it matters. */
void
spool_log_close(struct spool_log *lg)
{
	if (lg == NULL)
		return;
	if (spool_log_flush(lg) == -1) {
		/* already logged */
	}
	if (close(lg->fd) == -1 && !lg->err)
		log_warn("close %s", lg->name);
	free(lg->name);
	free(lg);
}

/*
 * Each line is handed to cb NUL-terminated in place of its '\n'. Lines
 * longer than the buffer are skipped with a warning; a last line without
 * '\n' is an append cut short and is not reported.
 */
int
spool_log_read(struct spool *sp, const char *job, const char *suffix,
    int (*cb)(const char *, size_t, void *), void *arg)
{
	char name[NAME_MAX + 1], *buf = NULL, *nl;
	size_t have = 0, start;
	int fd, skipping = 0, ret = -1;
	unsigned long lineno = 0;
	ssize_t n;

	if (log_name(name, sizeof(name), job, suffix) == -1) {
		log_warnx("%s/active: bad log name", sp->root);
		return -1;
	}
	if ((fd = open_active(sp, name, 1)) == -1)
		return errno == ENOENT ? 0 : -1;
	if ((buf = malloc(SPOOL_READ_BUFSZ)) == NULL) {
		log_warnx("out of memory");
		goto out;
	}
	for (;;) {
		n = read(fd, buf + have, SPOOL_READ_BUFSZ - have);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_warn("read %s/active/%s", sp->root, name);
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		start = 0;
		while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
			size_t len = (size_t)(nl - (buf + start));

			lineno++;
			*nl = '\0';
			if (!skipping && cb(buf + start, len, arg) == -1) {
				ret = 0;
				goto out;
			}
			skipping = 0;
			start += len + 1;
		}
		if (start == 0 && have == SPOOL_READ_BUFSZ) {
			/* no '\n' in a full buffer: drop the line */
			if (!skipping)
				log_warnx("%s/active/%s: line %lu longer than "
				    "%d bytes, skipped", sp->root, name,
				    lineno + 1, SPOOL_READ_BUFSZ - 1);
			skipping = 1;
			have = 0;
			continue;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

/*
 * Make active/J.result durable, or create a header-only one when the job
 * never wrote it, so that every finished job has a result.
 */
static int
finish_result(struct spool *sp, const char *res)
{
	int fd;

	fd = open_active(sp, res, 1);
	if (fd == -1 && errno == ENOENT) {
		if (write_file_at(sp, sp->activefd, "active", res,
		    RESULT_HEADER, sizeof(RESULT_HEADER) - 1) ==
		    -1 && errno != EEXIST)
			return -1;
		fd = open_active(sp, res, 0);
	}
	if (fd == -1)
		return -1;
	if (fsync(fd) == -1) {
		log_warn("fsync %s/active/%s", sp->root, res);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * After active/J reached dst/J: make both directories durable, then drop
 * the journal. Also a retry of a finish whose fsync failed after that
 * rename (spool_finish).
 */
static int
finish_moved(struct spool *sp, const char *job, int dstfd, const char *dst)
{
	char jnl[NAME_MAX + 1];

	if (spool_fsync_dir(sp, dstfd, dst) == -1 ||
	    spool_fsync_dir(sp, sp->activefd, "active") == -1)
		return -1;
	snprintf(jnl, sizeof(jnl), "%s.journal", job);
	if (unlinkat(sp->activefd, jnl, 0) == -1 && errno != ENOENT) {
		/* a stray journal is removed by spool_recover() */
		log_warn("unlink %s/active/%s", sp->root, jnl);
	}
	return 0;
}

/*
 * The moves of spool_finish() after the result reached dst: active/J to
 * dst/J, then drop the journal. Shared with recovery.
 */
static int
finish_job(struct spool *sp, const char *job, int dstfd, const char *dst)
{
	if (util_rename_noreplace(sp->activefd, job, dstfd, job) == -1) {
		log_warn("rename %s/active/%s to %s/", sp->root, job, dst);
		return -1;
	}
	return finish_moved(sp, job, dstfd, dst);
}

int
spool_finish(struct spool *sp, const char *job, int failed)
{
	const char *dst = failed ? "failed" : "done";
	int dstfd = failed ? sp->failedfd : sp->donefd;
	char res[NAME_MAX + 1];
	int r;

	if (!claimed_name_valid(job)) {
		log_warnx("%s/active: bad job name to finish", sp->root);
		return -1;
	}
	if ((r = entry_exists(sp, sp->activefd, "active", job)) != 1) {
		/* moved by an earlier call that failed after the rename */
		if (r == 0 && entry_exists(sp, dstfd, dst, job) == 1)
			return finish_moved(sp, job, dstfd, dst);
		if (r == 0)
			log_warnx("%s/active/%s: no such job to finish",
			    sp->root, job);
		return -1;
	}
	snprintf(res, sizeof(res), "%s.result", job);
	/* dst/J.result present: a crash came after the first rename */
	if ((r = entry_exists(sp, dstfd, dst, res)) == -1)
		return -1;
	if (r == 0) {
		if (finish_result(sp, res) == -1)
			return -1;
		if (util_rename_noreplace(sp->activefd, res, dstfd, res) == -1) {
			log_warn("rename %s/active/%s to %s/", sp->root, res,
			    dst);
			return -1;
		}
		if (spool_fsync_dir(sp, dstfd, dst) == -1)
			return -1;
	}
	return finish_job(sp, job, dstfd, dst);
}

/* Our own temporaries: ".<name>.result.tmp" (see write_file_at()). */
static void
remove_stale_tmp(struct spool *sp, int dirfd, const char *dir)
{
	char **names;
	size_t n, i;

	if (list_dir(sp, dirfd, dir, 1, &names, &n) == -1)
		return;
	for (i = 0; i < n; i++) {
		if (names[i][0] != '.' || !has_suffix(names[i], ".result.tmp"))
			continue;
		if (unlinkat(dirfd, names[i], 0) == -1 && errno != ENOENT)
			log_warn("unlink %s/%s/%s", sp->root, dir, names[i]);
		else
			log_info("removed stale %s/%s/%s", sp->root, dir,
			    names[i]);
	}
	free_names(names, n);
}

/* For "X.result" or "X.journal" in active/, 1 when X is gone. */
static int
stray_companion(struct spool *sp, const char *name)
{
	static const char *const sfx[] = { ".result", ".journal" };
	char job[NAME_MAX + 1];
	size_t n = strlen(name), m;

	for (size_t i = 0; i < 2; i++) {
		if (!has_suffix(name, sfx[i]))
			continue;
		m = n - strlen(sfx[i]);
		if (m == 0 || m >= sizeof(job))
			return 0;
		memcpy(job, name, m);
		job[m] = '\0';
		if (!claimed_name_valid(job))
			return 0;
		return entry_exists(sp, sp->activefd, "active", job) == 0;
	}
	return 0;
}

int
spool_recover(struct spool *sp, void (*cb)(const char *, void *), void *arg)
{
	char res[NAME_MAX + 1];
	char **names;
	struct stat st;
	size_t n, i;
	int resumed = 0, r;

	remove_stale_tmp(sp, sp->activefd, "active");
	remove_stale_tmp(sp, sp->failedfd, "failed");
	if (list_dir(sp, sp->activefd, "active", 0, &names, &n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (!claimed_name_valid(names[i]))
			continue;
		if (fstatat(sp->activefd, names[i], &st,
		    AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT)
				log_warn("stat %s/active/%s", sp->root,
				    names[i]);
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			log_warnx("%s/active/%s: not a regular file, left "
			    "alone", sp->root, names[i]);
			continue;
		}
		snprintf(res, sizeof(res), "%s.result", names[i]);
		if ((r = entry_exists(sp, sp->donefd, "done", res)) == 1) {
			log_info("%s: completing the move to done/", names[i]);
			(void)finish_job(sp, names[i], sp->donefd, "done");
			continue;
		}
		if (r == 0 &&
		    (r = entry_exists(sp, sp->failedfd, "failed", res)) == 1) {
			log_info("%s: completing the move to failed/",
			    names[i]);
			(void)finish_job(sp, names[i], sp->failedfd, "failed");
			continue;
		}
		if (r == -1)
			continue;
		if (cb != NULL)
			cb(names[i], arg);
		resumed++;
	}
	/* companions whose job has gone */
	for (i = 0; i < n; i++) {
		if (!stray_companion(sp, names[i]))
			continue;
		if (unlinkat(sp->activefd, names[i], 0) == -1) {
			if (errno != ENOENT)
				log_warn("unlink %s/active/%s", sp->root,
				    names[i]);
			continue;
		}
		log_info("removed stray %s/active/%s", sp->root, names[i]);
	}
	free_names(names, n);
	(void)spool_fsync_dir(sp, sp->activefd, "active");
	return resumed;
}

/*
 * Producers: fetchctl submit, and the count of what waits in new/.
 */

int
spool_open_producer(struct spool *sp, const char *root, char *err,
    size_t errlen)
{
	struct stat st;
	int saved;

	if (set_root(sp, root, err, errlen) == -1)
		return -1;
	if (open_root(sp, &st, err, errlen) == -1 ||
	    (sp->tmpfd = open_dir_at(sp->rootfd, sp->root, "tmp", st.st_dev,
	    err, errlen)) == -1 ||
	    (sp->newfd = open_dir_at(sp->rootfd, sp->root, "new", st.st_dev,
	    err, errlen)) == -1) {
		saved = errno;
		spool_close(sp);
		errno = saved;
		return -1;
	}
	/* To pick names free in every directory (spool_submit), where the
	 * producer may read them; -1 where not. */
	sp->activefd = open_dir_at(sp->rootfd, sp->root, "active", st.st_dev,
	    err, errlen);
	sp->donefd = open_dir_at(sp->rootfd, sp->root, "done", st.st_dev,
	    err, errlen);
	sp->failedfd = open_dir_at(sp->rootfd, sp->root, "failed", st.st_dev,
	    err, errlen);
	err[0] = '\0';
	return 0;
}

/*
 * The characters are those of spool_name_valid(); the suffix ends in a
 * digit, so no reserved suffix can result.
 */
int
spool_name_from_path(const char *path, unsigned n, char *buf, size_t len)
{
	char base[SPOOL_NAME_MAX + 1], suffix[64];
	const char *p;
	size_t i = 0, keep;

	p = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	while (*p == '.')
		p++;
	for (; *p != '\0' && i < sizeof(base) - 1; p++)
		base[i++] = name_char_ok((unsigned char)*p) ? *p : '_';
	base[i] = '\0';
	if (i == 0)
		snprintf(base, sizeof(base), "job");
	snprintf(suffix, sizeof(suffix), ".%lld.%ld.%u",
	    (long long)time(NULL), (long)getpid(), n);
	keep = SPOOL_NAME_MAX - strlen(suffix);
	if (strlen(base) > keep)
		base[keep] = '\0';
	if ((size_t)snprintf(buf, len, "%s%s", base, suffix) >= len)
		return -1;
	return spool_name_valid(buf) ? 0 : -1;
}

/* The job's text from in (job->path's) into fd, tmp/<job->name>. 0 or -1
 * (logged). */
static int
submit_copy(struct spool *sp, const struct spool_submission *job, int in,
    int fd)
{
	char buf[65536];
	ssize_t r;

	for (;;) {
		r = read(in, buf, sizeof(buf));
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			log_warn("read %s", job->path);
			return -1;
		}
		if (r == 0)
			return 0;
		if (util_write_all(fd, buf, (size_t)r) == -1) {
			log_warn("write %s/tmp/%s", sp->root, job->name);
			return -1;
		}
	}
}

/*
 * Fill fd, the new tmp/<job->name>, from in and let check see the result.
 * 0 or -1 (said by us or by check).
 */
static int
submit_fill(struct spool *sp, const struct spool_submission *job, int in,
    int fd, int (*check)(int, const struct spool_submission *, void *),
    void *arg)
{
	/* The daemon's group must be able to read it whatever our umask. */
	if (fchmod(fd, SPOOL_FILE_MODE) == -1) {
		log_warn("chmod %s/tmp/%s", sp->root, job->name);
		return -1;
	}
	if (submit_copy(sp, job, in, fd) == -1)
		return -1;
	if (check == NULL)
		return 0;
	if (lseek(fd, 0, SEEK_SET) == -1) {
		log_warn("seek %s/tmp/%s", sp->root, job->name);
		return -1;
	}
	return check(fd, job, arg);
}

/* Stage one job: tmp/<name>, filled, checked and synced. 0, or -1 with
 * nothing left in tmp/. */
static int
submit_stage(struct spool *sp, const struct spool_submission *job,
    int (*check)(int, const struct spool_submission *, void *), void *arg)
{
	int in = job->fd, fd, rv = -1;

	if (!spool_name_valid(job->name)) {
		log_warnx("%s: %s is not a valid job name", job->path,
		    job->name);
		return -1;
	}
	if (in < 0 && (in = open(job->path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("open %s", job->path);
		return -1;
	}
	if ((fd = create_excl(sp, sp->tmpfd, "tmp", job->name, 0)) == -1)
		goto out;
	if (submit_fill(sp, job, in, fd, check, arg) == -1) {
		close(fd);
		(void)unlinkat(sp->tmpfd, job->name, 0);
		goto out;
	}
	if (sync_close(sp, fd, "tmp", job->name) == -1) {
		(void)unlinkat(sp->tmpfd, job->name, 0);
		goto out;
	}
	rv = 0;
out:
	if (in != job->fd)
		close(in);
	return rv;
}

/*
 * Rename tmp/<job->name> into new/ under the first of name, name.1, ...
 * that is free in every spool directory (as spool_claim() counts them, so
 * the daemon never renames it at claim; directories this producer cannot
 * read count as empty) and not taken in new/. The name used goes to
 * job->queued. 0, or -1 (logged).
 */
static int
submit_place(struct spool *sp, struct spool_submission *job)
{
	char cand[SPOOL_CLAIMED_MAX];
	unsigned i;
	int r;

	for (i = 0; i < SPOOL_SUFFIX_TRIES; i++) {
		if (name_candidate(cand, sizeof(cand), job->name, i) == -1 ||
		    !spool_name_valid(cand))
			break;
		if ((r = name_free(sp, cand)) == -1)
			return -1;
		if (r == 0)
			continue;
		if (util_rename_noreplace(sp->tmpfd, job->name, sp->newfd,
		    cand) == 0) {
			/* spool_name_valid(): it fits */
			memcpy(job->queued, cand, strlen(cand) + 1);
			return 0;
		}
		if (errno != EEXIST) {
			log_warn("rename %s/tmp/%s to new/%s", sp->root,
			    job->name, cand);
			return -1;
		}
	}
	log_warnx("%s: no free job name after %s in %s", job->path, job->name,
	    sp->root);
	return -1;
}

/*
 * Rename the staged jobs into new/, each under a free name; then sync
 * new/. Returns the number moved, from the first; *err is set when
 * anything failed.
 */
static size_t
submit_move(struct spool *sp, struct spool_submission *jobs, size_t n,
    int *err)
{
	size_t i;

	*err = 0;
	for (i = 0; i < n; i++)
		if (submit_place(sp, &jobs[i]) == -1) {
			*err = 1;
			return i;
		}
	if (spool_fsync_dir(sp, sp->newfd, "new") == -1)
		*err = 1;
	return n;
}

/*
 * The jobs are staged one after the other and moved only when all are
 * staged: a reader of new/ never sees a partial or unchecked job.
 */
int
spool_submit(struct spool *sp, struct spool_submission *jobs,
    size_t n, int (*check)(int, const struct spool_submission *, void *),
    void *arg, size_t *submitted)
{
	unsigned char *staged;
	size_t i, moved = 0;
	int bad = 0;

	if (submitted != NULL)
		*submitted = 0;
	if ((staged = calloc(n > 0 ? n : 1, 1)) == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (submit_stage(sp, &jobs[i], check, arg) == 0)
			staged[i] = 1;
		else
			bad = 1;
	}
	if (!bad)
		moved = submit_move(sp, jobs, n, &bad);
	for (i = moved; i < n; i++)
		if (staged[i] && unlinkat(sp->tmpfd, jobs[i].name, 0) == -1 &&
		    errno != ENOENT)
			log_warn("unlink %s/tmp/%s", sp->root, jobs[i].name);
	free(staged);
	if (submitted != NULL)
		*submitted = moved;
	return bad ? -1 : 0;
}

/* A fresh descriptor: readdir moves the offset, and sp->newfd is shared. */
long
spool_count_new(struct spool *sp, void (*cb)(const char *, void *),
    void *arg)
{
	struct dirent *de;
	DIR *d;
	long n = 0;
	int fd;

	if ((fd = openat(sp->newfd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		log_warn("open %s/new", sp->root);
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		log_warn("fdopendir %s/new", sp->root);
		close(fd);
		return -1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (cb != NULL)
			cb(de->d_name, arg);
		n++;
	}
	if (errno != 0) {
		log_warn("readdir %s/new", sp->root);
		n = -1;
	}
	closedir(d);
	return n;
}

/*
 * Hooks: hooks/J, the record of what an ended job is still owed (its text
 * is jobhook.c's). Unlike every other hand-off a record is replaced in
 * place: it is written again when a job's finish is retried, and when one
 * of its two hooks is over while the other is not.
 */

int
spool_hook_write(struct spool *sp, const char *job, const char *data,
    size_t len)
{
	char tmp[NAME_MAX + 1];
	int fd, saved;

	if (!claimed_name_valid(job)) {
		log_warnx("%s/hooks: bad job name for a record", sp->root);
		return -1;
	}
	snprintf(tmp, sizeof(tmp), ".%s.tmp", job);
	if ((fd = create_excl(sp, sp->hooksfd, "hooks", tmp, 1)) == -1)
		return -1;
	if (util_write_all(fd, data, len) == -1) {
		saved = errno;
		log_warn("write %s/hooks/%s", sp->root, tmp);
		close(fd);
		errno = saved;
		goto fail;
	}
	if (sync_close(sp, fd, "hooks", tmp) == -1)
		goto fail;
	if (renameat(sp->hooksfd, tmp, sp->hooksfd, job) == -1) {
		log_warn("rename %s/hooks/%s", sp->root, tmp);
		goto fail;
	}
	return spool_fsync_dir(sp, sp->hooksfd, "hooks");
fail:
	saved = errno;
	unlinkat(sp->hooksfd, tmp, 0);
	errno = saved;
	return -1;
}

long
spool_hook_read(struct spool *sp, const char *job, char *buf, size_t len)
{
	ssize_t n;
	size_t have = 0;
	int fd;

	if (len == 0 || !claimed_name_valid(job))
		return -1;
	fd = openat(sp->hooksfd, job, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd == -1) {
		log_warn("open %s/hooks/%s", sp->root, job);
		return -1;
	}
	while (have + 1 < len) {
		n = read(fd, buf + have, len - 1 - have);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_warn("read %s/hooks/%s", sp->root, job);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
	close(fd);
	return (long)have;
}

int
spool_hook_remove(struct spool *sp, const char *job)
{
	if (!claimed_name_valid(job))
		return -1;
	if (unlinkat(sp->hooksfd, job, 0) == -1 && errno != ENOENT) {
		log_warn("unlink %s/hooks/%s", sp->root, job);
		return -1;
	}
	/* a record that comes back after a crash runs its hooks again */
	(void)spool_fsync_dir(sp, sp->hooksfd, "hooks");
	return 0;
}

long
spool_hook_list(struct spool *sp, void (*cb)(const char *, void *),
    void *arg)
{
	char **names;
	size_t n, i;
	long count = 0;

	if (list_dir(sp, sp->hooksfd, "hooks", 1, &names, &n) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (names[i][0] == '.') {
			if (has_suffix(names[i], ".tmp") &&
			    unlinkat(sp->hooksfd, names[i], 0) == 0)
				log_info("removed stale %s/hooks/%s",
				    sp->root, names[i]);
			continue;
		}
		if (!claimed_name_valid(names[i])) {
			log_warnx("%s/hooks/%s: not a job name, left alone",
			    sp->root, names[i]);
			continue;
		}
		cb(names[i], arg);
		count++;
	}
	free_names(names, n);
	return count;
}
