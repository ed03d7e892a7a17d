/*
 * fuzz_wire.c: the process engine's message codec (wire.c), both ways.
 * What a worker sends is input to the parent and what the parent sends is
 * input to a worker, and either may be cut short or garbled on the way.
 *
 * Reading: the bytes go through wire_open() and the body decoder of the
 * type they carry, as the parent reads a child's HELLO, PROGRESS or RESULT
 * and a worker reads a TRANSFER or CANCEL; then once more with the header
 * patched to each type in turn, so that every body decoder sees every
 * input. Each message gets a buffer of exactly its length, so a read past
 * its end is ASan's to see. A message that decodes is canonical: encoded
 * again it gives the same bytes (a HELLO's id aside: it carries none, and
 * the reader ignores it), which then decode to the same fields. A RESULT
 * that is refused leaves the caller's transfer as it was (wire.h: all or
 * none), and a refused TRANSFER says EBADMSG.
 *
 * Writing: the bytes are also read as the fields of a transfer and of its
 * outcome (strings as a pattern repeated to a chosen length, so that the
 * bounds are within reach). A transfer within wire_transfer_fits() must
 * fit in WIRE_MSG_MAX, and whatever is written must read back the same.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "fuzz.h"
#include "wire.h"

#define HDR_LEN 10                      /* version, type, id */

static unsigned char out[WIRE_MSG_MAX]; /* what is encoded again */

static const char *
str_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static int
same_double(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

/* The fields a TRANSFER carries; NULL strings travel as "". */
static int
transfer_same(const struct transfer *a, const struct transfer *b)
{
	const struct fetch_params *p = &a->params, *q = &b->params;

	return a->id == b->id && a->attempt == b->attempt &&
	    !a->has_sha256 == !b->has_sha256 &&
	    memcmp(a->sha256, b->sha256, sizeof(a->sha256)) == 0 &&
	    p->connect_timeout == q->connect_timeout &&
	    p->timeout == q->timeout &&
	    p->low_speed_limit == q->low_speed_limit &&
	    p->low_speed_time == q->low_speed_time &&
	    p->max_redirects == q->max_redirects &&
	    p->max_file_size == q->max_file_size &&
	    p->rate_limit == q->rate_limit &&
	    !p->verify_tls == !q->verify_tls &&
	    strcmp(p->user_agent, q->user_agent) == 0 &&
	    strcmp(p->proxy, q->proxy) == 0 &&
	    strcmp(p->ca_file, q->ca_file) == 0 &&
	    strcmp(str_or_empty(a->url), str_or_empty(b->url)) == 0 &&
	    strcmp(str_or_empty(a->dir), str_or_empty(b->dir)) == 0 &&
	    strcmp(str_or_empty(a->name), str_or_empty(b->name)) == 0;
}

/* The outcome fields a RESULT carries (the name is compared apart). */
static int
result_same(const struct transfer *a, const struct transfer *b)
{
	return a->outcome == b->outcome && a->errkind == b->errkind &&
	    a->http_status == b->http_status && a->size == b->size &&
	    a->received == b->received && same_double(a->ttfb, b->ttfb) &&
	    same_double(a->seconds, b->seconds) &&
	    a->retry_after == b->retry_after &&
	    strcmp(a->error, b->error) == 0;
}

/* A message encoded again must be the bytes it was read from. */
static void
same_bytes(const struct wire *w, int put_rv, const unsigned char *msg,
    size_t len, size_t from)
{
	if (put_rv == -1 || w->len != len ||
	    memcmp(w->buf + from, msg + from, len - from) != 0)
		abort();
}

/* A transfer with placeholder outcome fields, to see what a read leaves. */
static struct transfer *
placeholder(void)
{
	struct transfer *t;

	if ((t = fetch_transfer_new("u", NULL, "d", "n")) == NULL)
		return NULL;
	t->outcome = FETCH_RETRY;
	t->errkind = FERR_OTHER;
	t->http_status = 999;
	t->size = 0x5a5a5a5a;
	t->received = 0xa5a5a5a5;
	t->ttfb = -1.5;
	t->seconds = -2.5;
	t->retry_after = 12345;
	memset(t->error, 'E', sizeof(t->error) - 1);
	t->error[sizeof(t->error) - 1] = '\0';
	return t;
}

/* The transfer a worker takes, read back, written again and read again. */
static void
read_transfer(struct wire *m, uint64_t id, const unsigned char *msg,
    size_t len)
{
	struct transfer *t, *again;
	struct wire w;
	enum wire_type type;
	uint64_t id2;

	errno = 0;
	if ((t = wire_get_transfer(m, id)) == NULL) {
		if (errno != EBADMSG && errno != ENOMEM)
			abort();
		return;
	}
	wire_init(&w, out, sizeof(out));
	same_bytes(&w, wire_put_transfer(&w, t), msg, len, 0);
	if (wire_open(&w, out, w.len, &type, &id2) == -1 ||
	    type != WIRE_TRANSFER || id2 != id)
		abort();
	if ((again = wire_get_transfer(&w, id2)) != NULL) {
		if (!transfer_same(t, again))
			abort();
	} else if (errno != ENOMEM)
		abort();
	fetch_transfer_free(again);
	fetch_transfer_free(t);
}

/* The outcome the parent takes: all of it or none of it. */
static void
read_result(struct wire *m, uint64_t id, const unsigned char *msg,
    size_t len)
{
	struct transfer *t, before;
	const char *name = NULL;
	struct wire w;
	enum wire_type type;
	uint64_t id2;

	if ((t = placeholder()) == NULL)
		return;
	t->id = id;
	memcpy(&before, t, sizeof(before));
	if (wire_get_result(m, t, &name) == -1) {
		if (memcmp(&before, t, sizeof(before)) != 0)
			abort();        /* a refused result changed t */
		fetch_transfer_free(t);
		return;
	}
	/* The name is in place in the message, and never empty. */
	if (name == NULL || (uintptr_t)name < (uintptr_t)msg ||
	    (uintptr_t)name >= (uintptr_t)msg + len || name[0] == '\0' ||
	    memchr(name, '\0', (size_t)((const char *)msg + len - name)) ==
	    NULL)
		abort();
	free(t->name);
	if ((t->name = strdup(name)) == NULL) {
		fetch_transfer_free(t);
		return;
	}
	wire_init(&w, out, sizeof(out));
	same_bytes(&w, wire_put_result(&w, t), msg, len, 0);
	memcpy(&before, t, sizeof(before));
	if (wire_open(&w, out, w.len, &type, &id2) == -1 ||
	    type != WIRE_RESULT || id2 != id ||
	    wire_get_result(&w, t, &name) == -1 || !result_same(&before, t) ||
	    strcmp(name, t->name) != 0)
		abort();
	fetch_transfer_free(t);
}

/* One message, read by whichever end reads its type. */
static void
read_message(const unsigned char *msg, size_t len)
{
	unsigned char *copy;
	struct wire m, w;
	enum wire_type type;
	uint64_t id, v;

	/* Its own buffer, exactly as long as what was received. */
	if ((copy = malloc(len > 0 ? len : 1)) == NULL)
		return;
	memcpy(copy, msg, len);
	if (wire_open(&m, copy, len, &type, &id) == -1) {
		free(copy);
		return;
	}
	wire_init(&w, out, sizeof(out));
	switch (type) {
	case WIRE_HELLO:
		if (wire_get_hello(&m, &v) == 0)
			same_bytes(&w, wire_put_hello(&w, v), copy, len,
			    HDR_LEN);
		break;
	case WIRE_TRANSFER:
		read_transfer(&m, id, copy, len);
		break;
	case WIRE_CANCEL:
		if (wire_get_cancel(&m) == 0)
			same_bytes(&w, wire_put_cancel(&w, id), copy, len, 0);
		break;
	case WIRE_PROGRESS:
		if (wire_get_progress(&m, &v) == 0)
			same_bytes(&w, wire_put_progress(&w, id, v), copy, len,
			    0);
		break;
	case WIRE_RESULT:
		read_result(&m, id, copy, len);
		break;
	default:
		abort();        /* wire_open() let an unknown type through */
	}
	free(copy);
}

/*
 * Fields of a transfer to write, taken from the input. Past its end every
 * field is zero.
 */
struct src {
	const uint8_t *p;
	size_t n;
};

static uint64_t
take(struct src *s, size_t width)
{
	uint64_t v = 0;

	while (width-- > 0) {
		v = v << 8;
		if (s->n > 0) {
			v |= *s->p++;
			s->n--;
		}
	}
	return v;
}

static double
take_double(struct src *s)
{
	uint64_t bits = take(s, 8);
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

/* A string of a chosen length up to max: a pattern of 1 to 8 bytes (NUL
 * excepted) repeated. Into buf (max + 1 bytes). */
static void
take_str(struct src *s, char *buf, size_t max)
{
	char pat[8];
	size_t len, plen, i;

	len = (size_t)take(s, 2) % (max + 1);
	plen = (size_t)take(s, 1) % sizeof(pat) + 1;
	for (i = 0; i < plen; i++)
		if ((pat[i] = (char)take(s, 1)) == '\0')
			pat[i] = '.';
	for (i = 0; i < len; i++)
		buf[i] = pat[i % plen];
	buf[len] = '\0';
}

static void
take_params(struct src *s, struct fetch_params *p)
{
	p->connect_timeout = (long)take(s, 8);
	p->timeout = (long)take(s, 8);
	p->low_speed_limit = (long)take(s, 8);
	p->low_speed_time = (long)take(s, 8);
	p->max_redirects = (long)take(s, 8);
	p->max_file_size = (long long)take(s, 8);
	p->rate_limit = (long long)take(s, 8);
	p->verify_tls = (int)take(s, 1);
	take_str(s, p->user_agent, sizeof(p->user_agent) - 1);
	take_str(s, p->proxy, sizeof(p->proxy) - 1);
	take_str(s, p->ca_file, sizeof(p->ca_file) - 1);
}

static void
take_outcome(struct src *s, struct transfer *t)
{
	t->outcome = (enum fetch_outcome)(take(s, 1) % (FETCH_FAIL + 1));
	t->errkind = (enum fetch_errkind)(take(s, 1) % FERR__COUNT);
	t->http_status = (long)take(s, 8);
	t->size = take(s, 8);
	t->received = take(s, 8);
	t->ttfb = take_double(s);
	t->seconds = take_double(s);
	t->retry_after = (long)take(s, 8);
	take_str(s, t->error, sizeof(t->error) - 1);
}

/* Strings a little over the wire's bounds, to see them refused. */
static char url[WIRE_URL_MAX + 3], dir[WIRE_PATH_MAX + 3],
    name[WIRE_PATH_MAX + 3];

/* What was just written into out (w) reads back as t. */
static void
read_back(struct wire *w, const struct transfer *t, enum wire_type want)
{
	struct transfer *r;
	const char *rname;
	enum wire_type type;
	uint64_t id;

	if (wire_open(w, out, w->len, &type, &id) == -1 || type != want ||
	    id != t->id)
		abort();
	if (want == WIRE_TRANSFER) {
		if ((r = wire_get_transfer(w, id)) == NULL) {
			if (errno != ENOMEM)
				abort();
			return;
		}
		if (!transfer_same(t, r))
			abort();
		fetch_transfer_free(r);
		return;
	}
	if ((r = placeholder()) == NULL)
		return;
	/* The parent refuses a result without a name. */
	if (wire_get_result(w, r, &rname) == -1) {
		if (t->name != NULL && t->name[0] != '\0')
			abort();
	} else if (!result_same(t, r) || strcmp(rname, t->name) != 0)
		abort();
	fetch_transfer_free(r);
}

/* A transfer made of the input's bytes, written and read back. */
static void
write_transfer(const uint8_t *data, size_t size)
{
	struct src s = { data, size };
	struct transfer *t;
	struct wire w;
	int rv;

	take_str(&s, url, sizeof(url) - 1);
	take_str(&s, dir, sizeof(dir) - 1);
	take_str(&s, name, sizeof(name) - 1);
	if ((t = fetch_transfer_new(url, NULL, dir, name)) == NULL)
		return;
	t->id = take(&s, 8);
	t->attempt = (int)(take(&s, 4) & INT_MAX);
	t->has_sha256 = (int)take(&s, 1);
	for (size_t i = 0; i < sizeof(t->sha256); i++)
		t->sha256[i] = (unsigned char)take(&s, 1);
	take_params(&s, &t->params);
	wire_init(&w, out, sizeof(out));
	rv = wire_put_transfer(&w, t);
	if ((rv == 0) != (wire_transfer_fits(t) != 0))
		abort();        /* fits, yet not written; or written past
		                   the bounds */
	if (rv == 0)
		read_back(&w, t, WIRE_TRANSFER);
	take_outcome(&s, t);
	wire_init(&w, out, sizeof(out));
	rv = wire_put_result(&w, t);
	if ((rv == 0) != (strlen(name) <= WIRE_PATH_MAX))
		abort();
	if (rv == 0)
		read_back(&w, t, WIRE_RESULT);
	fetch_transfer_free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *msg;
	int type;

	read_message(data, size);
	if (size >= 2 && (msg = malloc(size)) != NULL) {
		memcpy(msg, data, size);
		msg[0] = WIRE_VERSION;
		for (type = WIRE_HELLO; type <= WIRE_RESULT; type++) {
			msg[1] = (unsigned char)type;
			read_message(msg, size);
		}
		free(msg);
	}
	write_transfer(data, size);
	return 0;
}
