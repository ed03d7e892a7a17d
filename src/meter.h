/*
 * meter.h: the progress line of a job, as `fetchctl wait` shows it.
 *
 * Input is one of the daemon's objects about a job (proto 1): a `job`
 * snapshot, a `progress` event or a `job_done` event, or a `jobs JOB`
 * detail; what is missing is left out of the line. Pure functions of the
 * object and a width, so the tests give them hand-made objects.
 */
#ifndef FETCHD_METER_H
#define FETCHD_METER_H

#include <stddef.h>

#include <jansson.h>

#define METER_LINE_MAX 1024     /* enough for any width's line */
#define METER_WIDTH_MIN 20      /* narrower terminals get this width */
#define METER_WIDTH_MAX 512

/*
 * The line redrawn in place on a terminal of width columns, like curl's
 * and wget's meters: the job's name (shortened in the middle when it
 * would take more than a third of the line), a bar of the URLs finished,
 * URLs done/failed/total, the bytes, then the current rate and ETA while
 * running, else the state. name_cols is the width of the name's column
 * (the longest name of the jobs shown, so that their bars line up; 0:
 * this name's). Never longer than width - 1 characters, so the terminal
 * does not wrap it; ASCII only. Into buf (len bytes, at least
 * METER_LINE_MAX is enough); the length written.
 */
size_t meter_line(const json_t *o, int width, size_t name_cols, char *buf,
    size_t len);

/*
 * The plain line printed when the output is not a terminal:
 * "JOB STATE: 12 done, 1 failed of 100 URLs, 4.2 MiB, 1.0 MiB/s, ETA
 * 1m05s", the figures the object has. Into buf; the length written.
 */
size_t meter_plain(const json_t *o, char *buf, size_t len);

/* An ETA in whole seconds rounded up: "0s", "45s", "1m05s", "2h03m",
 * "3d04h"; "--" when seconds is negative, NaN or infinite (unknown). */
void meter_fmt_eta(double seconds, char *buf, size_t len);

/* A rate: "1.2 MiB/s", "512 B/s". */
void meter_fmt_rate(double bytes_per_s, char *buf, size_t len);

/*
 * name cut to at most width characters: kept whole when it fits, else
 * its start and its end joined by "..." (a submitted job's name ends in
 * what tells it apart: ".TIME.PID.N"). Into buf; the length written.
 */
size_t meter_fmt_name(const char *name, size_t width, char *buf,
    size_t len);

#endif
