/*
 * fuzz.c: see fuzz.h.
 */
#include <sys/mman.h>

#include <unistd.h>

#include "fuzz.h"
#include "util.h"

int
fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd;

	if ((fd = memfd_create("fuzz", MFD_CLOEXEC)) == -1)
		return -1;
	if (util_write_all(fd, data, size) == -1 ||
	    lseek(fd, 0, SEEK_SET) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}
