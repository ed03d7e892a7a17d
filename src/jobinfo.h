/*
 * jobinfo.h: `fetchctl jobs JOB` for people: the daemon's detail of one
 * job, and for a job that ended what its result file says.
 */
#ifndef FETCHD_JOBINFO_H
#define FETCHD_JOBINFO_H

#include <stdio.h>

#include <jansson.h>

#define JOBINFO_ROWS 5          /* failed rows of a result file shown */

/*
 * Print the "job" object of a `jobs JOB` reply to fp: state, counts,
 * bytes, rate, ETA and the last errors of an active job; for an ended
 * one its result file, read here when it can be: the rows counted by
 * outcome, the bytes, and the last JOBINFO_ROWS failed rows. The daemon's
 * strings are shown printable.
 */
void jobinfo_print(FILE *fp, const json_t *reply);

#endif
