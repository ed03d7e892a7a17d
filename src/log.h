/*
 * log.h: leveled logging to stderr (which systemd's journal captures).
 *
 * log_warn() and fatal() append strerror(errno); the "x" variants do not.
 * fatal()/fatalx() never return: they are for broken invariants only, never
 * for the world failing (a bad job file, a reset connection, ENOSPC).
 */
#ifndef FETCHD_LOG_H
#define FETCHD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

#define LOG_FMT(a, b) __attribute__((format(printf, a, b)))

void log_init(const char *ident, enum log_level level);
void log_setlevel(enum log_level level);
int log_enabled(enum log_level level);
int log_level_parse(const char *s); /* -1 when unknown */
const char *log_level_name(enum log_level level);

void log_warn(const char *fmt, ...) LOG_FMT(1, 2);
void log_warnx(const char *fmt, ...) LOG_FMT(1, 2);
void log_error(const char *fmt, ...) LOG_FMT(1, 2);  /* + strerror */
void log_errorx(const char *fmt, ...) LOG_FMT(1, 2);
void log_info(const char *fmt, ...) LOG_FMT(1, 2);
void log_debug(const char *fmt, ...) LOG_FMT(1, 2);
void fatal(const char *fmt, ...) LOG_FMT(1, 2) __attribute__((noreturn));
void fatalx(const char *fmt, ...) LOG_FMT(1, 2) __attribute__((noreturn));

#endif
