/*
 * fetch.h: one transfer, start to finish. Used unchanged by all three
 * engines: the options set on the easy handle, the write callback and its
 * limits, the ".part" file, resume with Range, sha256 verification, the
 * final rename and the classification of the outcome.
 *
 * Split in two so every concurrency model can use it:
 *	fetch_begin()    any thread: make directories, create or open the
 *	                 .part, set up the easy handle
 *	fetch_finish()   same thread as begin: classify, verify, rename
 * fetch_run() is begin + curl_easy_perform + finish, for blocking workers.
 * Which name a transfer writes is not decided here: the job's name
 * reservation (names.h) picks it; fetch.c only opens or creates, given a
 * directory and a name, and never follows a symlink on the way.
 */
#ifndef FETCHD_FETCH_H
#define FETCHD_FETCH_H

#include <stdint.h>
#include <sys/queue.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "config.h"

struct engine;

#define FETCH_ERR_MAX 256
#define FETCH_PART ".part"      /* name.part until the file is complete */
#define FETCH_SEGS ".segs"      /* name.part.segs: segments' progress */
#define FETCH_SEGMENTS_MAX 16   /* ranges of one file fetched at once */

/* The [http] options a transfer needs, snapshotted when it is created so a
 * reload never changes a transfer in flight. The process engine sends it to
 * its workers field by field (wire.c): a field added here goes there too. */
struct fetch_params {
	long connect_timeout;
	long timeout;
	long low_speed_limit;
	long low_speed_time;
	long max_redirects;
	long long max_file_size;
	long long rate_limit;
	int verify_tls;
	char user_agent[CONFIG_UA_MAX];
	char proxy[CONFIG_PROXY_MAX];
	char ca_file[CONFIG_PROXY_MAX];
	/* Where a transfer may go and how: [http] no_proxy, proxy_ca_file,
	 * netrc_file and deny (the CIDR list's text, read by fetch_begin). */
	char no_proxy[CONFIG_PROXY_MAX];
	char proxy_ca_file[CONFIG_PROXY_MAX];
	char netrc_file[CONFIG_PROXY_MAX];
	char deny[CONFIG_PROXY_MAX];
};

void fetch_params_from_config(struct fetch_params *p, const struct config *c);

enum fetch_outcome {
	FETCH_OK = 0,
	FETCH_RETRY,    /* transient: the scheduler may try again */
	FETCH_FAIL,     /* permanent for this URL */
};

enum fetch_errkind {
	FERR_NONE = 0,
	FERR_DNS,
	FERR_CONNECT,
	FERR_TIMEOUT,
	FERR_HTTP_4XX,
	FERR_HTTP_5XX,
	FERR_RESET,
	FERR_PROTOCOL_REFUSED,
	FERR_WRITE,
	FERR_CHECKSUM,
	FERR_OTHER,
	FERR_RESOURCE,  /* out of descriptors here (EMFILE, ENFILE): always
	                   retried, not counted against http.retries */
	FERR_DENIED,    /* the address to connect to is in http.deny:
	                   permanent */
	FERR_SEGMENT,   /* a segment's range was not served as asked for the
	                   resource it was split from (a 200, another
	                   length): the URL starts again as one stream */
	FERR__COUNT
};

const char *fetch_errkind_name(enum fetch_errkind k);

#define FETCH_ETAG_MAX 256      /* bytes of an ETag kept, NUL included */
#define FETCH_DATE_MAX 64       /* of a Last-Modified date */

/*
 * What the last response of an attempt said about the resource itself,
 * for the callers that decide how to fetch it again (by ranges, from
 * another URL, only if it changed). Filled by fetch_finish() whatever the
 * outcome; the process engine carries it back (wire.c).
 */
struct fetch_meta {
	long long length;               /* the whole resource's bytes (of a
	                                   200's Content-Length or a 206's
	                                   Content-Range); -1 unknown */
	int ranges;                     /* the server serves byte ranges
	                                   ("Accept-Ranges: bytes", or a 206) */
	char etag[FETCH_ETAG_MAX];      /* as sent, quotes and W/ kept; "" none */
	char last_modified[FETCH_DATE_MAX]; /* as sent; "" none */
};

/*
 * What one transfer does. A URL is fetched whole, or (segmented, jobs.c)
 * probed, then fetched as several ranges into one .part, then verified.
 */
enum fetch_mode {
	FETCH_WHOLE = 0,        /* the resource into name.part, renamed */
	FETCH_PROBE,            /* HEAD: t->meta only, no file */
	FETCH_SEGMENT,          /* bytes [seg_start, seg_end) into name.part
	                           at their offsets; progress in name.part.segs;
	                           never truncates, never renames */
	FETCH_VERIFY,           /* no request: name.part's length (expect) and
	                           sha256 checked, renamed to name, the .segs
	                           removed; done inside fetch_begin(), which
	                           then returns -1 with the outcome set */
};

struct transfer {
	/* Set by the main loop before the transfer is submitted. */
	uint64_t id;            /* ids with CLUSTER_ID_BIT are cluster.c's */
	void *owner;            /* the job; engines never look at it */
	size_t index;           /* entry index in the job, 0-based */
	char *url;
	char *host;             /* for per-host caps */
	char *dir;              /* absolute: download_dir/J */
	int dirfd;              /* dir opened by the owner (fetch_open_dir),
	                           kept open while t lives; -1: fetch opens
	                           dir by its path */
	char *name;             /* relative path under dir, reserved by the
	                           owner (names.h); ".part" is appended */
	char *part_tag;         /* NULL: the file is written as name.part;
	                           else name.TAG.part (cluster mode: each node
	                           its own, so nodes sharing a download dir
	                           never write one file, cluster.h) */
	int has_sha256;
	unsigned char sha256[32];
	int attempt;            /* 1 on the first try */
	double seconds_total;   /* main loop: sum of every attempt's seconds */
	struct fetch_params params;

	/* The .part this transfer writes, recorded by fetch_begin() when it
	 * creates or takes it on, so the next attempt reopens only that very
	 * file (0 and 0: none yet, as after a restart). The process engine
	 * carries them to its workers and back (wire.c). */
	uint64_t part_dev;
	uint64_t part_ino;

	char *node;             /* cluster mode: the node that fetched it, as
	                           its result said; NULL otherwise */

	/* The request headers of the job line (header=, job.h): "Name: value"
	 * lines joined by '\n', or NULL. Sent to this transfer only. */
	char *headers;
	/* Mirrors (jobs.c): the URLs of the job line, its own first, then
	 * its mirror= ones, and their hosts; t->url and t->host are copies
	 * of the pair in use. One allocation (mirrors[0..n) the URLs,
	 * mirrors[n..2n) the hosts, the strings after them), freed with t.
	 * NULL and 0 for a line without mirrors: t->url is its URL. */
	char **mirrors;
	size_t nmirrors;
	size_t mirror;          /* the pair in use */
	int mirror_attempts;    /* attempts before it, on the earlier ones */
	long long mirror_length; /* expect.length when it was taken up */
	/* Segmented downloads (set by the owner; the process engine carries
	 * them, wire.c). */
	enum fetch_mode mode;
	unsigned seg_slot;      /* the segment's number: its slot in .segs */
	uint64_t seg_start;     /* first byte of the segment's range */
	uint64_t seg_end;       /* one past its last byte */
	void *seg;              /* the owner's record of the URL; engines and
	                           fetch.c never look at it */
	/* A refreshed tree (job.h's @refresh; set by the owner, carried by
	 * the wire): the request is conditional on the validators kept
	 * beside the file (refresh.h), a 304 leaves the file as it is, and a
	 * new one replaces it once complete and verified. */
	int refresh;

	/* Filled by fetch_finish(). */
	enum fetch_outcome outcome;
	enum fetch_errkind errkind;
	long http_status;
	uint64_t size;          /* bytes in the file when done */
	uint64_t received;      /* body bytes received in this attempt */
	double ttfb;            /* s, this attempt; 0 when none */
	double seconds;         /* s, this attempt */
	long retry_after;       /* s from Retry-After, -1 when absent */
	int unchanged;          /* FETCH_OK by a 304: the file was kept */
	char error[FETCH_ERR_MAX];
	struct fetch_meta meta;

	/* What the bytes in the .part are a copy of: the meta of the last
	 * attempt that wrote to it (fetch_finish() sets it whenever a 2xx
	 * body was taken). A resumed attempt asks for the rest only if the
	 * resource is still that one: If-Range with the strong ETag, else
	 * the Last-Modified date (a changed resource then comes whole, with
	 * a 200), and a 206 for a resource of another length starts the file
	 * again. Length -1 and no validators: nothing is known. The process
	 * engine carries it both ways (wire.c). */
	struct fetch_meta expect;

	/* Shared with the thread running the transfer. */
	volatile uint64_t progress;     /* body bytes so far (atomic ops) */
	volatile int cancelled;         /* set by the owning engine's cancel
	                                   and stop (atomic ops); cleared by
	                                   engine_submit() */

	/* Private to fetch.c between begin and finish. */
	struct fetch_state *state;

	/* The main loop's list of a job's live transfers. */
	TAILQ_ENTRY(transfer) owner_entry;

	/* The engine that owns it, from engine_submit() until it comes back
	 * through done(); NULL otherwise. Main loop only: engine_cancel()
	 * follows it, so a transfer is always cancelled by its own engine. */
	struct engine *engine;

	/* Private to the engine while it owns the transfer. */
	TAILQ_ENTRY(transfer) entry;
	void *engine_data;
};

TAILQ_HEAD(transfer_list, transfer);

/* Once, before any thread starts: curl_global_init. 0 or -1. */
int fetch_global_init(void);
void fetch_global_cleanup(void);

/*
 * Open the directory that holds t->name's last component: t->dirfd (t->dir
 * by its path when -1), then every directory component of t->name below
 * it, each with O_NOFOLLOW, making the missing ones when create is set. A
 * job directory removed while the job ran is made again. On success *dfd
 * is that directory (t->dirfd itself for a name without a slash: release
 * it with fetch_close_parent()) and *base the offset of the last component
 * in t->name. -1 with the error set: FERR_WRITE, permanent for a refused
 * name (a symlink or not a directory on the way, "..", empty), FETCH_RETRY
 * when the file system fails for now (full, out of descriptors).
 */
int fetch_open_parent(struct transfer *t, int create, int *dfd,
    size_t *base);
void fetch_close_parent(const struct transfer *t, int dfd);

/* Fill in t's outcome, error kind and error text (cleaned, userinfo
 * removed: it goes to the result and the log). */
void fetch_set_error(struct transfer *t, enum fetch_outcome outcome,
    enum fetch_errkind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Set up easy (reset first) for t: URL, the params, http/https only also on
 * redirects, the write callback into name.part (the directories on the way
 * made and opened as fetch_open_parent() does; the .part created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, or an existing one opened O_NOFOLLOW and
 * resumed only when it is the transfer's own: a regular file with one link,
 * owned by our euid, and the inode in t->part_dev/part_ino when those are
 * set; any other file there is unlinked, never written, and a fresh .part
 * made), resume from its size with Range, the progress callback that
 * honours t->cancelled. share may be NULL. 0, or -1 with the failure filled
 * in as for fetch_finish() (then do not call fetch_finish).
 *
 * By t->mode: a FETCH_PROBE makes no file and asks with HEAD; a
 * FETCH_SEGMENT opens the shared .part without truncating it, resumes
 * from its slot in name.part.segs and asks for the rest of its range (a
 * segment found complete returns -1 with t->outcome FETCH_OK); a
 * FETCH_VERIFY sends nothing: it checks the .part's length against
 * t->expect and its sha256, renames it and removes the .segs, all here,
 * and returns -1 with the outcome set (FETCH_OK when published).
 */
int fetch_begin(struct transfer *t, CURL *easy, CURLSH *share);

/*
 * After the transfer ended with res: classify (ok / retry / fail, errkind,
 * http_status, retry_after), check a 206's Content-Range against the
 * resume offset (a mismatch truncates and retries from 0), verify size and
 * sha256, fsync nothing (the job syncs its files at the end), rename
 * name.part to name on success, never replacing an existing name (with a
 * part_tag, a name another node published already with the same size is
 * taken as this transfer's: the .part is removed and the outcome is ok,
 * since it is the same URL fetched twice). Only the
 * inode written is ever published: a .part replaced during the transfer
 * (by a symlink, another file) fails the attempt as FETCH_RETRY, FERR_WRITE,
 * "'dir/name.part' was replaced during the transfer", and the intruder is
 * unlinked so the next attempt starts afresh. Releases everything begin
 * acquired.
 */
void fetch_finish(struct transfer *t, CURL *easy, CURLcode res);

/*
 * What fetch.c reads from a response's header lines itself. libcurl parses
 * the rest: Content-Length (CURLOPT_MAXFILESIZE, a short body is
 * CURLE_PARTIAL_FILE), Retry-After (CURLINFO_RETRY_AFTER), Location.
 */
struct fetch_response {
	long status;            /* of the status line; 0 unknown */
	long long cr_start;     /* Content-Range first byte; -1 unknown */
	long long cr_total;     /* Content-Range complete length; -1 unknown */
	long long length;       /* Content-Length; -1 unknown */
	int ranges;             /* "Accept-Ranges: bytes" */
	char etag[FETCH_ETAG_MAX];
	char last_modified[FETCH_DATE_MAX];
};

/* r as no header has set it yet. */
void fetch_response_reset(struct fetch_response *r);

/*
 * One header line as libcurl's header callback hands it: len bytes, not
 * NUL-terminated, CRLF or not, any bytes at all (only the first 511 are
 * looked at). A status line ("HTTP/...") starts a new response (redirects
 * and a proxy's CONNECT make several): r is reset, its status read
 * (100..999, else 0), and 1 returned. A Content-Range line sets cr_start
 * and cr_total; Content-Length, Accept-Ranges, ETag and Last-Modified
 * their members (an ETag or date too long to keep is left out whole).
 * Anything else leaves r as it was. 0 unless a status line.
 */
int fetch_parse_header(struct fetch_response *r, const char *line,
    size_t len);

/*
 * A Content-Range value (NUL-terminated): "bytes FIRST-LAST/TOTAL", where
 * the range or TOTAL may be "*". *start is FIRST, *total TOTAL, each -1
 * when it is "*", missing or malformed (FIRST also when LAST < FIRST,
 * TOTAL when anything but blanks follows it).
 */
void fetch_parse_content_range(const char *v, long long *start,
    long long *total);

/* What a final response r says about the resource, into *m. */
void fetch_response_meta(const struct fetch_response *r,
    struct fetch_meta *m);

/* m says nothing: length -1, no validators. */
void fetch_meta_unknown(struct fetch_meta *m);

/* The If-Range value a resume of a copy of m sends (a strong ETag, else
 * the Last-Modified date), or NULL when m has neither. */
const char *fetch_if_range(const struct fetch_meta *m);

/*
 * Split a resource of length bytes into at most want (1..FETCH_SEGMENTS_MAX)
 * ranges of at least min_size bytes each (fewer when it is shorter; at
 * least one, and none empty). starts[i] is the first byte of range i, which
 * ends where range i+1 starts (the last at length). Returns the count.
 */
unsigned fetch_seg_split(uint64_t length, unsigned want, uint64_t min_size,
    uint64_t starts[FETCH_SEGMENTS_MAX]);

/*
 * How far segment slot (of a split whose range starts at start) got, as
 * recorded in the .segs file of the .part whose inode is ino: the offset
 * of its next byte, or start when nothing valid is recorded. fd: the .segs
 * file. Exposed for the tests; fetch_begin() uses it.
 */
uint64_t fetch_seg_resume(int fd, unsigned slot, uint64_t ino,
    uint64_t start, uint64_t end);

/* fetch_begin + curl_easy_perform + fetch_finish. */
void fetch_run(struct transfer *t, CURL *easy, CURLSH *share);

/*
 * Main loop, after a transfer failed for good: remove its name.part (never
 * through a symlink). Missing is fine.
 */
void fetch_discard(struct transfer *t);

/*
 * Make dir unless it is there and open it without following a symlink, for
 * transfer->dirfd: the transfers of a job then open their files relative to
 * it instead of walking the path for every URL. *created is 1 when this
 * call made the directory. -1 with errno on failure.
 */
int fetch_open_dir(const char *dir, int *created);

/* Allocate a transfer with every string duplicated (dirfd -1); NULL on
 * failure. */
struct transfer *fetch_transfer_new(const char *url, const char *host,
    const char *dir, const char *name);
/* A copy of headers (NULL: none) into t->headers, replacing any. 0, or -1
 * when out of memory (t->headers then unchanged). */
int fetch_transfer_set_headers(struct transfer *t, const char *headers)
    __attribute__((warn_unused_result));
void fetch_transfer_free(struct transfer *t);

#endif
