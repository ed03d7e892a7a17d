/*
 * log.c: the daemon's only writer of diagnostics.
 *
 * Lines go to stderr with a syslog-style "<N>" priority prefix when stderr is
 * the journal (JOURNAL_STREAM is set), so journalctl shows levels, and with
 * a level word otherwise. Writes are one fprintf per line under stdio's own
 * lock, so worker threads may log too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static const char *log_ident = "fetchd";
static enum log_level log_cur = LOG_LVL_INFO;
static int log_journal;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static const int level_prio[] = { 3, 4, 6, 7 };

void
log_init(const char *ident, enum log_level level)
{
	if (ident != NULL)
		log_ident = ident;
	log_cur = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_setlevel(enum log_level level)
{
	log_cur = level;
}

int
log_enabled(enum log_level level)
{
	return level <= log_cur;
}

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

static void log_vemit(enum log_level, int, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
log_vemit(enum log_level level, int with_errno, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_journal) {
		if (with_errno)
			fprintf(stderr, "<%d>%s: %s\n", level_prio[level], msg,
			    strerror(saved));
		else
			fprintf(stderr, "<%d>%s\n", level_prio[level], msg);
	} else {
		if (with_errno)
			fprintf(stderr, "%s: %s: %s: %s\n", log_ident,
			    level_names[level], msg, strerror(saved));
		else
			fprintf(stderr, "%s: %s: %s\n", log_ident,
			    level_names[level], msg);
	}
	errno = saved;
}

#define LOG_BODY(level, with_errno)                    \
	do {                                           \
		va_list ap;                            \
		va_start(ap, fmt);                     \
		log_vemit(level, with_errno, fmt, ap); \
		va_end(ap);                            \
	} while (0)

void log_warn(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, 1); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_LVL_WARN, 0); }
void log_error(const char *fmt, ...) { LOG_BODY(LOG_LVL_ERROR, 1); }
void log_errorx(const char *fmt, ...) { LOG_BODY(LOG_LVL_ERROR, 0); }
void log_info(const char *fmt, ...) { LOG_BODY(LOG_LVL_INFO, 0); }
void log_debug(const char *fmt, ...) { LOG_BODY(LOG_LVL_DEBUG, 0); }

void
fatal(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, 1);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, 0);
	exit(1);
}
