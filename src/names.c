/*
 * names.c: the output-name reservation of one job (see names.h).
 *
 * Three things answer "is this name free": the disk (lstat of the name and
 * of its .part, relative to the directory that holds it), the set of names
 * the job's live transfers hold, and, for a directory this run created, a
 * Bloom filter that lets a name it never saw skip the disk.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "names.h"

#define NAMES_MAX_SUFFIX 10000  /* a.iso, a.1.iso, ... a.9999.iso */
#define NAMES_BUCKETS_MIN 256

/*
 * Sized from the job's URL count: 10 bits per name and 7 probes give under
 * 1% false "maybe"s; at most SEEN_BITS_MAX bits, past which it only says
 * "maybe" more often.
 */
#define SEEN_BITS_MIN 1024
#define SEEN_BITS_MAX ((size_t)1 << 24)
#define SEEN_PROBES 7

/* One live transfer's name in the set; t->name is the key. */
struct name_node {
	struct name_node *next;
	const struct transfer *t;
};

struct names {
	char *dir;              /* download_dir/J */
	int dirfd;              /* dir, opened with the first reservation */
	size_t nurls;
	uint64_t *seen;         /* Bloom filter; NULL: dir was not made here */
	size_t seen_bits;       /* a power of 2 */
	struct name_node **buckets;
	size_t count, nbuckets;
	int refresh;            /* a refreshed tree: names are taken as asked */
};

/* What a candidate name is on disk and in the set. */
enum slot {
	SLOT_FREE = 0,          /* ours to take */
	SLOT_USED,              /* try the next candidate */
	SLOT_OURS,              /* resume: its .part is the transfer's own */
	SLOT_DONE,              /* resume: the earlier run finished it */
	SLOT_ERROR,             /* t's error is set */
};

struct names *
names_new(const char *dir, size_t nurls)
{
	struct names *nm;

	if ((nm = calloc(1, sizeof(*nm))) == NULL)
		return NULL;
	nm->dirfd = -1;
	nm->nurls = nurls;
	if ((nm->dir = strdup(dir)) == NULL) {
		free(nm);
		return NULL;
	}
	return nm;
}

void
names_free(struct names *nm)
{
	struct name_node *n, *next;
	size_t i;

	if (nm == NULL)
		return;
	for (i = 0; i < nm->nbuckets; i++)
		for (n = nm->buckets[i]; n != NULL; n = next) {
			next = n->next;
			free(n);
		}
	free(nm->buckets);
	if (nm->dirfd != -1)
		close(nm->dirfd);
	free(nm->seen);
	free(nm->dir);
	free(nm);
}

int
names_dirfd(const struct names *nm)
{
	return nm->dirfd;
}

/* --- the names of live transfers ---------------------------------------- */

static size_t
set_hash(const char *s)
{
	size_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static int
set_has(const struct names *nm, const char *name)
{
	const struct name_node *n;

	if (nm->nbuckets == 0)
		return 0;
	for (n = nm->buckets[set_hash(name) % nm->nbuckets]; n != NULL;
	    n = n->next)
		if (strcmp(n->t->name, name) == 0)
			return 1;
	return 0;
}

/* Room for one more name: the table doubles when it is full. 0 or -1. */
static int
set_grow(struct names *nm)
{
	struct name_node **nb, *n, *next;
	size_t i, nbuckets, h;

	if (nm->count < nm->nbuckets)
		return 0;
	nbuckets = nm->nbuckets ? nm->nbuckets * 2 : NAMES_BUCKETS_MIN;
	if ((nb = calloc(nbuckets, sizeof(*nb))) == NULL)
		return -1;
	for (i = 0; i < nm->nbuckets; i++)
		for (n = nm->buckets[i]; n != NULL; n = next) {
			next = n->next;
			h = set_hash(n->t->name) % nbuckets;
			n->next = nb[h];
			nb[h] = n;
		}
	free(nm->buckets);
	nm->buckets = nb;
	nm->nbuckets = nbuckets;
	return 0;
}

/* Link n (for t) in; set_grow() made room. */
static void
set_add(struct names *nm, struct name_node *n, const struct transfer *t)
{
	size_t h = set_hash(t->name) % nm->nbuckets;

	n->t = t;
	n->next = nm->buckets[h];
	nm->buckets[h] = n;
	nm->count++;
}

void
names_release(struct names *nm, const struct transfer *t)
{
	struct name_node **pp, *n;

	if (nm == NULL || nm->nbuckets == 0 || t->name == NULL)
		return;
	for (pp = &nm->buckets[set_hash(t->name) % nm->nbuckets];
	    (n = *pp) != NULL; pp = &n->next)
		if (n->t == t) {
			*pp = n->next;
			free(n);
			nm->count--;
			return;
		}
}

/* --- the Bloom filter of names reserved in a directory made here -------- */

static void
seen_init(struct names *nm)
{
	size_t bits = SEEN_BITS_MIN;

	while (bits < SEEN_BITS_MAX && bits < nm->nurls * 10)
		bits <<= 1;
	if ((nm->seen = calloc(bits / 64, sizeof(*nm->seen))) != NULL)
		nm->seen_bits = bits;
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

/* Set (set) or test the probe bits of s[0..len); 1 when all were set. */
static int
seen_bits(const struct names *nm, const char *s, size_t len, int set)
{
	uint64_t h1, h2, b, bit;
	int k, all = 1;

	seen_hash(s, len, &h1, &h2);
	for (k = 0; k < SEEN_PROBES; k++) {
		b = (h1 + (uint64_t)k * h2) & (nm->seen_bits - 1);
		bit = (uint64_t)1 << (b % 64);
		if (!(nm->seen[b / 64] & bit))
			all = 0;
		if (set)
			nm->seen[b / 64] |= bit;
	}
	return all;
}

/*
 * A name goes in with each of its directories ("a/b/c" adds "a" and
 * "a/b"), so a later "out=a" still finds the directory in the way.
 */
static void
seen_add(struct names *nm, const char *name)
{
	const char *p;

	if (nm->seen == NULL)
		return;
	for (p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/'))
		(void)seen_bits(nm, name, (size_t)(p - name), 1);
	(void)seen_bits(nm, name, strlen(name), 1);
}

void
names_set_refresh(struct names *nm)
{
	nm->refresh = 1;
}

int
names_absent(const struct names *nm, const char *name)
{
	return nm->seen != NULL && !seen_bits(nm, name, strlen(name), 0);
}

/* --- reservation --------------------------------------------------------- */

/* Scratch for the candidates of one name. */
struct cand {
	char *full;             /* t->name's directories, then the candidate */
	char *base;             /* full + boff: relative to the parent dfd */
	char *part;             /* base + FETCH_PART */
	size_t len;             /* bytes at base */
};

/*
 * Candidate i for base: 0 is base itself, then "stem.i.ext" (the extension
 * is what follows the last dot, unless that dot starts the name) or
 * "base.i". Written into buf, which holds strlen(base) + 32.
 */
static void
candidate(char *buf, size_t len, const char *base, int i)
{
	const char *dot = strrchr(base, '.');

	if (i == 0)
		snprintf(buf, len, "%s", base);
	else if (dot == NULL || dot == base)
		snprintf(buf, len, "%s.%d", base, i);
	else
		snprintf(buf, len, "%.*s.%d%s", (int)(dot - base), base, i,
		    dot);
}

/*
 * lstat relative to dfd. 1 when something is there, 0 when not, -1 (error
 * set) on any other failure.
 */
static int
probe(struct transfer *t, int dfd, const char *name, struct stat *st)
{
	if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	fetch_set_error(t, FETCH_FAIL, FERR_WRITE, "stat '%s/%s': %s", t->dir,
	    name, strerror(errno));
	return -1;
}

/*
 * What candidate c is. first_resume: the first candidate of a name an
 * earlier run reserved, where the resume rules apply.
 */
static enum slot
slot_of(struct names *nm, struct transfer *t, int dfd, const struct cand *c,
    int first_resume)
{
	struct stat st_name, st_part;
	int hn, hp;

	if (names_absent(nm, c->full))
		hn = hp = 0;    /* neither is there: no lstat */
	else if ((hn = probe(t, dfd, c->base, &st_name)) == -1 ||
	    (hp = probe(t, dfd, c->part, &st_part)) == -1)
		return SLOT_ERROR;
	if (hp && S_ISLNK(st_part.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "refusing to follow a symlink at '%s/%s%s'", t->dir,
		    c->full, FETCH_PART);
		return SLOT_ERROR;
	}
	if (hp && !S_ISREG(st_part.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s/%s%s' is not a regular file", t->dir, c->full,
		    FETCH_PART);
		return SLOT_ERROR;
	}
	if (first_resume && hp)
		return SLOT_OURS;
	if (first_resume && hn && S_ISREG(st_name.st_mode)) {
		t->size = (uint64_t)st_name.st_size;
		return SLOT_DONE;
	}
	if (hn || hp || set_has(nm, c->full))
		return SLOT_USED;
	return SLOT_FREE;
}

/*
 * A refreshed tree (names_set_refresh): the name asked for is the one
 * written, whatever is there, as long as it is a regular file (to be
 * replaced) or nothing, and no other line of the job writes it.
 */
static enum slot
slot_refresh(struct names *nm, struct transfer *t, int dfd,
    const struct cand *c)
{
	struct stat st;
	int rv;

	if (set_has(nm, c->full)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "another line of the job writes '%s/%s'", t->dir,
		    c->full);
		return SLOT_ERROR;
	}
	if ((rv = probe(t, dfd, c->base, &st)) == -1)
		return SLOT_ERROR;
	if (rv == 1 && !S_ISREG(st.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s/%s' is not a regular file", t->dir, c->full);
		return SLOT_ERROR;
	}
	if ((rv = probe(t, dfd, c->part, &st)) == -1)
		return SLOT_ERROR;
	if (rv == 1 && !S_ISREG(st.st_mode)) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "'%s/%s%s' is not a regular file", t->dir, c->full,
		    FETCH_PART);
		return SLOT_ERROR;
	}
	return SLOT_OURS;
}

/* Walk the candidates of t->name (its last component at boff) below dfd.
 * 0, 1 or -1 as names_reserve(). */
static int
pick(struct names *nm, struct transfer *t, int dfd, size_t boff, int resume)
{
	struct cand c;
	enum slot s = SLOT_USED;
	int i, rv = -1;

	c.part = NULL;
	c.len = strlen(t->name + boff) + 32;
	if ((c.full = malloc(boff + c.len)) == NULL ||
	    (c.part = malloc(c.len + sizeof(FETCH_PART))) == NULL) {
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE, "out of memory");
		goto done;
	}
	memcpy(c.full, t->name, boff);
	c.base = c.full + boff;
	for (i = 0; i < NAMES_MAX_SUFFIX && s == SLOT_USED; i++) {
		candidate(c.base, c.len, t->name + boff, i);
		snprintf(c.part, c.len + sizeof(FETCH_PART), "%s%s", c.base,
		    FETCH_PART);
		if (nm->refresh) {
			s = slot_refresh(nm, t, dfd, &c);
			break;
		}
		s = slot_of(nm, t, dfd, &c, resume && i == 0);
	}
	switch (s) {
	case SLOT_USED:
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE,
		    "no free name for '%s'", t->name);
		break;
	case SLOT_FREE:
		free(t->name);
		t->name = c.full;
		c.full = NULL;
		/* FALLTHROUGH */
	case SLOT_OURS:
		rv = 0;
		break;
	case SLOT_DONE:
		t->outcome = FETCH_OK;
		t->errkind = FERR_NONE;
		rv = 1;
		break;
	case SLOT_ERROR:
		break;
	}
done:
	free(c.full);
	free(c.part);
	return rv;
}

/* Open (make) the job's directory once, for every transfer of the job. */
static void
open_job_dir(struct names *nm)
{
	int created;

	if (nm->dirfd != -1)
		return;
	nm->dirfd = fetch_open_dir(nm->dir, &created);
	if (nm->dirfd != -1 && created && nm->seen == NULL)
		seen_init(nm);
}

int
names_reserve(struct names *nm, struct transfer *t, int resume)
{
	struct name_node *n;
	size_t boff;
	int dfd, rv;

	open_job_dir(nm);
	t->dirfd = nm->dirfd;
	t->error[0] = '\0';
	t->errkind = FERR_NONE;
	if ((n = malloc(sizeof(*n))) == NULL || set_grow(nm) == -1) {
		free(n);
		fetch_set_error(t, FETCH_FAIL, FERR_WRITE, "out of memory");
		return -1;
	}
	rv = -1;
	if (fetch_open_parent(t, 1, &dfd, &boff) == 0) {
		rv = pick(nm, t, dfd, boff, resume);
		fetch_close_parent(t, dfd);
	}
	/* Even when it failed: it may have made t->name's directories. */
	seen_add(nm, t->name);
	if (rv == 0)
		set_add(nm, n, t);
	else
		free(n);
	return rv;
}
