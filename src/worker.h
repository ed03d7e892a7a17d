/*
 * worker.h: the process engine's worker program.
 *
 * engine_process.c starts a worker by exec'ing the running binary (through
 * /proc/self/exe) as "fetchd: worker --worker 3", its socket on fd 3. A
 * program that may run the process engine (fetchd, check_engine) passes
 * its command line here first thing in main(), before it does anything of
 * its own:
 *
 *	if (worker_cmdline(argc, argv, &fd))
 *		return worker_main(fd);
 *
 * A program that does not would run itself again in every child; the
 * engine then gets no hello and fails to start.
 */
#ifndef FETCHD_WORKER_H
#define FETCHD_WORKER_H

#define WORKER_ARG "--worker"

/* 1 when argv is a worker's command line, with *fd the descriptor it
 * names (-1 when that is not a number); 0 otherwise. */
int worker_cmdline(int argc, char *const argv[], int *fd);

/*
 * Run transfers from the process engine on the socket fd until it closes,
 * then return the exit status (2 when fd is not a socket: the program was
 * started by hand). Takes over the process: signal dispositions, libcurl's
 * global state, the thread name.
 */
int worker_main(int fd);

#endif
