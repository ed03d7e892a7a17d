/*
 * fuzz_job.c: job files, the first input a producer controls. Every line
 * through job_parse_line() (and what an accepted entry feeds on:
 * job_out_valid(), job_name_from_url()), and cut at tabs into the three
 * fields of a cluster stream entry through job_entry_fields() (a fourth,
 * with '|' for newlines, through job_entry_headers()); then the whole
 * input through the streaming reader twice, as the daemon validates and
 * then runs a job, @default directives and quoted values included. Every
 * accepted entry's headers are held to what job.h promises.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "job.h"

/* Accepted headers: bounded, "Name: value" lines with a token name, no
 * control byte but tab. Anything else aborts. */
static void
headers_sane(const char *h)
{
	size_t lines = 1;
	const char *p;

	if (h == NULL)
		return;
	if (h[0] == '\0' || strlen(h) > JOB_HEADERS_BYTES)
		abort();
	for (p = h; *p != '\0'; p++) {
		if (*p == '\n')
			lines++;
		else if (*p != '\t' && ((unsigned char)*p < 0x20 || *p == 0x7f))
			abort();
	}
	if (lines > JOB_HEADERS_MAX)
		abort();
	for (p = h; p != NULL; p = strchr(p, '\n') ? strchr(p, '\n') + 1 :
	    NULL) {
		size_t n = strcspn(p, ":\n");

		if (n == 0 || p[n] != ':' || strcspn(p, " \t\"(),/;<=>?@[]{}") <
		    n)
			abort();
	}
}

/* "URL<tab>OUT<tab>SHA256<tab>HEADERS" as a cluster node gets them, apart;
 * an empty OUT or SHA256 stands for none. */
static void
parse_entry(const char *line, size_t len)
{
	char *copy, *f[4] = { NULL, NULL, NULL, NULL }, *p, err[JOB_ERR_MAX];
	struct job_entry e;
	int n = 0;

	if ((copy = strndup(line, len)) == NULL)
		return;
	for (p = copy; n < 4 && p != NULL; n++) {
		f[n] = p;
		if ((p = strchr(p, '\t')) != NULL)
			*p++ = '\0';
	}
	if (job_entry_fields(f[0], f[1] != NULL && f[1][0] != '\0' ? f[1] :
	    NULL, f[2] != NULL && f[2][0] != '\0' ? f[2] : NULL, &e, err,
	    sizeof(err)) == 1) {
		if ((e.out != NULL && !job_out_valid(e.out, err,
		    sizeof(err))) || strpbrk(e.url, " \t") != NULL)
			abort();        /* accepted, yet not valid */
		for (p = f[3]; p != NULL && *p != '\0'; p++)
			if (*p == '|')
				*p = '\n';
		if (job_entry_headers(f[3], &e, err, sizeof(err)) == 0)
			headers_sane(e.headers);
		job_entry_free(&e);
	}
	free(copy);
}

static void
parse_lines(const uint8_t *data, size_t size)
{
	struct job_entry e;
	char err[JOB_ERR_MAX], name[JOB_NAME_MAX + 1];
	const char *p = (const char *)data, *end = p + size, *nl;
	unsigned long lineno = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		memset(&e, 0, sizeof(e));
		if (job_parse_line(p, (size_t)(nl - p), ++lineno, &e, err,
		    sizeof(err)) == 1) {
			job_name_from_url(e.url, name, sizeof(name));
			if (e.out != NULL && !job_out_valid(e.out, err,
			    sizeof(err)))
				abort();        /* accepted, yet not valid */
			headers_sane(e.headers);
			job_entry_free(&e);
		}
		parse_entry(p, (size_t)(nl - p));
		p = nl + 1;
	}
}

static void
read_all(struct job_reader *r)
{
	struct job_entry e;
	char err[JOB_ERR_MAX + 32];
	int rv;

	do {
		memset(&e, 0, sizeof(e));
		if ((rv = job_reader_next(r, &e, err, sizeof(err))) == 1) {
			headers_sane(e.headers);
			job_entry_free(&e);
		}
	} while (rv != 0 && job_reader_lineno(r) < 1000000);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job_reader *r;
	int fd;

	parse_lines(data, size);
	if ((fd = fuzz_memfd(data, size)) == -1)
		return 0;
	if ((r = job_reader_new(fd)) != NULL) {
		read_all(r);
		if (job_reader_rewind(r) == 0)
			read_all(r);
		job_reader_free(r);
	}
	close(fd);
	return 0;
}
