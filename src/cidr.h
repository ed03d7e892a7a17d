/*
 * cidr.h: address ranges in CIDR notation, for [http] deny (the addresses
 * the daemon never connects to). Pure: no network, no globals.
 *
 * A list is text: ranges separated by commas and/or blanks, each an IPv4
 * or IPv6 address with an optional "/LEN" (none: that one address). The
 * address must be the start of its range (no bits set past LEN), so
 * "10.0.0.1/8" is refused as a likely typo. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are IPv4: a range and an address given that way match
 * as the IPv4 ones they stand for.
 */
#ifndef FETCHD_CIDR_H
#define FETCHD_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

#define CIDR_LIST_MAX 64        /* ranges in one list */
#define CIDR_ERR_MAX 128

struct cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* 4 bytes used for AF_INET */
	unsigned len;           /* prefix length: 0..32 or 0..128 */
};

struct cidr_list {
	size_t n;
	struct cidr r[CIDR_LIST_MAX];
};

/* One range "ADDR[/LEN]" (NUL-terminated, no blanks) into *c: 0, or -1
 * with the reason in err. */
int cidr_parse(const char *s, struct cidr *c, char *err, size_t errlen);

/* A whole list into *l (emptied first; "" is an empty list): 0, or -1
 * with the first bad range named in err. */
int cidr_list_parse(const char *s, struct cidr_list *l, char *err,
    size_t errlen);

/* 1 when the socket address sa (AF_INET or AF_INET6; anything else never
 * matches) lies in a range of l, else 0. */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

/* The same for a numeric address in text ("127.0.0.1", "::1"); 0 for
 * text that is no address. */
int cidr_list_match_text(const struct cidr_list *l, const char *addr);

#endif
