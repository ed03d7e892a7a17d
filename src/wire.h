/*
 * wire.h: the messages between the process engine (engine_process.c) and
 * its workers (worker.c), one message per SOCK_SEQPACKET packet, in the
 * manner of OpenBSD's imsg: a header (version, type, transfer id) and a
 * body written and read field by field, never as struct bytes.
 *
 * Integers travel big-endian at a fixed width, doubles as their IEEE-754
 * bits, strings as a 32-bit length, the bytes and a NUL (so a reader can
 * use them in place). A reader trusts nothing: a message that is cut
 * short, runs on past its last field, holds a string over its bound or
 * with a NUL inside, a value out of range, an unknown type or another
 * version is refused whole, and nothing it held is used.
 *
 * Writing: wire_init() on a buffer, then one wire_put_*(); send buf, len.
 * Reading: wire_open() on the bytes received gives the type and id, then
 * the wire_get_*() for that type.
 */
#ifndef FETCHD_WIRE_H
#define FETCHD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "fetch.h"
#include "job.h"

#define WIRE_VERSION 6
#define WIRE_MSG_MAX (32 * 1024) /* holds a TRANSFER at every bound */
#define WIRE_URL_MAX 8192
#define WIRE_PATH_MAX 4096 /* a transfer's dir and its name */
#define WIRE_TAG_MAX 64    /* a transfer's part_tag (a node name) */
#define WIRE_HEADERS_MAX JOB_HEADERS_BYTES /* a transfer's headers */

enum wire_type {
	WIRE_HELLO = 1, /* worker: ready; its pid */
	WIRE_TRANSFER,	/* parent: run this transfer */
	WIRE_CANCEL,	/* parent: stop the transfer with this id */
	WIRE_PROGRESS,	/* worker: body bytes received so far */
	WIRE_RESULT,	/* worker: how the transfer ended */
};

/* One message in a caller's buffer, being written or read. */
struct wire {
	unsigned char *buf;
	size_t len; /* bytes written, or bytes received */
	size_t cap;
	size_t off; /* read position */
	int bad;    /* a write did not fit or a read failed */
};

void wire_init(struct wire *w, void *buf, size_t cap);

/* Each writes one whole message: 0, or -1 when it does not fit the buffer
 * or a string is over its bound (then w->len means nothing). */
int wire_put_hello(struct wire *w, uint64_t pid)
    __attribute__((warn_unused_result));
int wire_put_transfer(struct wire *w, const struct transfer *t)
    __attribute__((warn_unused_result));
int wire_put_cancel(struct wire *w, uint64_t id)
    __attribute__((warn_unused_result));
int wire_put_progress(struct wire *w, uint64_t id, uint64_t bytes)
    __attribute__((warn_unused_result));
int wire_put_result(struct wire *w, const struct transfer *t)
    __attribute__((warn_unused_result));

/* Are t's URL and paths within the bounds of a TRANSFER? */
int wire_transfer_fits(const struct transfer *t);

/* The header of the len bytes at buf: 0 with the type and the transfer id
 * (0 for HELLO), or -1 (short, another version, an unknown type). */
int wire_open(struct wire *w, void *buf, size_t len, enum wire_type *type,
    uint64_t *id) __attribute__((warn_unused_result));

/* The bodies, after wire_open(): 0, or -1 when malformed. */
int wire_get_hello(struct wire *w, uint64_t *pid)
    __attribute__((warn_unused_result));
int wire_get_cancel(struct wire *w) __attribute__((warn_unused_result));
int wire_get_progress(struct wire *w, uint64_t *bytes)
    __attribute__((warn_unused_result));

/* A new transfer (fetch_transfer_free() it) with the given id, or NULL
 * with errno EBADMSG (malformed) or ENOMEM. */
struct transfer *wire_get_transfer(struct wire *w, uint64_t id);

/* The outcome fields into t (outcome, errkind, http_status, size, received,
 * ttfb, seconds, retry_after, error, and the .part's part_dev and part_ino
 * for the next attempt), all or none; *name is the name the worker wrote,
 * inside the buffer. 0, or -1 with t untouched. */
int wire_get_result(struct wire *w, struct transfer *t, const char **name)
    __attribute__((warn_unused_result));

#endif
