/*
 * fetchctl.c: the command-line client of the control socket.
 */
#include <stdio.h>

int
main(int argc, char *argv[])
{
	fprintf(stderr, "usage: fetchctl COMMAND\n");
	return 2;
}
