/*
 * cidr.c: parsing and matching address ranges (cidr.h).
 *
 * Owns the text form of [http] deny and the one question asked of it on
 * every connection: does this address lie in a range? Both address
 * families are held as bytes in network order and compared a prefix at a
 * time; IPv4-mapped IPv6 is folded into IPv4 on both sides, so a rule for
 * 127.0.0.0/8 also stops a connection made through ::ffff:127.0.0.1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

#define CIDR_TEXT_MAX 64        /* longest "ADDR/LEN" accepted */
#define CIDR_SEPS " \t,"

static const unsigned char v4mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* An IPv6 address (and prefix) inside ::ffff:0:0/96 becomes IPv4. */
static void
cidr_fold(struct cidr *c)
{
	if (c->family != AF_INET6 || c->len < 96 ||
	    memcmp(c->addr, v4mapped, sizeof(v4mapped)) != 0)
		return;
	memmove(c->addr, c->addr + 12, 4);
	memset(c->addr + 4, 0, 12);
	c->family = AF_INET;
	c->len -= 96;
}

/* 1 when the first len bits of a and b agree. */
static int
cidr_prefix_equal(const unsigned char *a, const unsigned char *b,
    unsigned len)
{
	unsigned bytes = len / 8, bits = len % 8;
	unsigned char mask;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - bits));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* The prefix length after '/': decimal, no sign, at most max. */
static int
cidr_parse_len(const char *s, unsigned max, unsigned *len)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > max)
		return -1;
	*len = (unsigned)v;
	return 0;
}

int
cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen)
{
	char text[CIDR_TEXT_MAX + 1], *slash;
	unsigned char zero[16] = {0};
	unsigned max;

	memset(c, 0, sizeof(*c));
	if (strlen(s) > CIDR_TEXT_MAX) {
		snprintf(err, errlen, "\"%.32s...\" is too long", s);
		return -1;
	}
	strcpy(text, s);
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, text, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address",
		    text);
		return -1;
	}
	c->len = max;
	if (slash != NULL && cidr_parse_len(slash + 1, max, &c->len) == -1) {
		snprintf(err, errlen, "\"%s\": prefix length must be 0..%u",
		    s, max);
		return -1;
	}
	/* Bits past the prefix must be zero: compare with the masked form. */
	memcpy(zero, c->addr, max / 8);
	memset(zero + c->len / 8, 0, max / 8 - c->len / 8);
	if (c->len % 8 != 0)
		zero[c->len / 8] = (unsigned char)(c->addr[c->len / 8] &
		    (0xff << (8 - c->len % 8)));
	if (memcmp(zero, c->addr, max / 8) != 0) {
		snprintf(err, errlen, "\"%s\" has bits set past the prefix "
		    "length", s);
		return -1;
	}
	cidr_fold(c);
	return 0;
}

int
cidr_list_parse(const char *s, struct cidr_list *l, char *err, size_t errlen)
{
	char one[CIDR_TEXT_MAX + 2];
	size_t n;

	l->n = 0;
	for (;;) {
		s += strspn(s, CIDR_SEPS);
		if (*s == '\0')
			return 0;
		n = strcspn(s, CIDR_SEPS);
		if (l->n == CIDR_LIST_MAX) {
			snprintf(err, errlen, "more than %d ranges",
			    CIDR_LIST_MAX);
			return -1;
		}
		if (n > CIDR_TEXT_MAX)
			n = CIDR_TEXT_MAX + 1;   /* cidr_parse says too long */
		memcpy(one, s, n);
		one[n] = '\0';
		if (cidr_parse(one, &l->r[l->n], err, errlen) == -1)
			return -1;
		l->n++;
		s += strcspn(s, CIDR_SEPS);
	}
}

/* The address as a host-only struct cidr (folded); -1 for another family. */
static int
cidr_from_sockaddr(const struct sockaddr *sa, struct cidr *c)
{
	memset(c, 0, sizeof(*c));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		c->family = AF_INET;
		c->len = 32;
		memcpy(c->addr, &in->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		c->family = AF_INET6;
		c->len = 128;
		memcpy(c->addr, &in6->sin6_addr, 16);
	} else
		return -1;
	cidr_fold(c);
	return 0;
}

static int
cidr_list_match_one(const struct cidr_list *l, const struct cidr *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->r[i].family == a->family &&
		    cidr_prefix_equal(l->r[i].addr, a->addr, l->r[i].len))
			return 1;
	return 0;
}

int
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	struct cidr a;

	if (l->n == 0 || cidr_from_sockaddr(sa, &a) == -1)
		return 0;
	return cidr_list_match_one(l, &a);
}

int
cidr_list_match_text(const struct cidr_list *l, const char *addr)
{
	struct cidr a;
	char err[CIDR_ERR_MAX];

	if (l->n == 0 || strchr(addr, '/') != NULL ||
	    cidr_parse(addr, &a, err, sizeof(err)) == -1)
		return 0;
	return cidr_list_match_one(l, &a);
}
