/*
 * refresh.h: the validators kept beside each file of a refreshed tree
 * (job.h's @refresh), and what a conditional request sends from them.
 *
 * Beside NAME, NAME JOB_SIDECAR holds the ETag and Last-Modified of the
 * response NAME was last published from, one "key value" line each:
 *
 *	etag "5e1f-9a"
 *	last-modified Sun, 06 Dec 2026 08:00:00 GMT
 *
 * The next fetch of NAME sends If-None-Match and If-Modified-Since with
 * them (the values exactly as the server sent them); a 304 leaves NAME as
 * it is. The sidecar is written after NAME is replaced (through a .part
 * and a rename), so a crash between the two leaves the old validators
 * beside the new file: the next fetch then gets the file again, never
 * keeps a stale one. Called by fetch.c on whichever thread runs the
 * transfer; every path is relative to the directory holding NAME and
 * nothing follows a symlink.
 */
#ifndef FETCHD_REFRESH_H
#define FETCHD_REFRESH_H

#include "fetch.h"

#define REFRESH_FILE_MAX 1024   /* bytes read of a sidecar at most */

/*
 * The validators of base (a name in dirfd) into *m, when base is a
 * regular file and its sidecar gives at least one. 1 when *m holds them,
 * 0 when there is nothing to compare with (no file, no sidecar, a sidecar
 * that is not a regular file, too long or has neither line), -1 with
 * errno on an I/O error. A value with a control byte is ignored.
 */
int refresh_load(int dirfd, const char *base, struct fetch_meta *m);

/*
 * Record m's validators beside base, replacing the earlier ones (base
 * SIDECAR.part, then a rename); with neither an ETag nor a Last-Modified
 * the old sidecar is removed, since it describes another file. When m has
 * a Last-Modified date, base's modification time is set to it (as wget
 * -N does). 0, or -1 with errno: the file stays published and its next
 * refresh fetches it whole.
 */
int refresh_save(int dirfd, const char *base, const struct fetch_meta *m);

/*
 * Parse a sidecar's text (len bytes) into *m (length -1, ranges 0). 1 when
 * it gives a validator, 0 when it gives none. Pure.
 */
int refresh_parse(const char *text, size_t len, struct fetch_meta *m);

#endif
