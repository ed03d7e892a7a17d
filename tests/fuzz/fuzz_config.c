/*
 * fuzz_config.c: the configuration file, through config_load() as `fetchd
 * -t` and a reload read it. An accepted file must format back and copy
 * without trouble.
 */
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct config_option *opts;
	struct config cfg, copy;
	char path[64], err[1024], buf[4096];
	size_t i, n;
	int fd;

	if ((fd = fuzz_memfd(data, size)) == -1)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (config_load(path, &cfg, err, sizeof(err)) == 0) {
		opts = config_options(&n);
		for (i = 0; i < n; i++)
			config_format(&cfg, &opts[i], buf, sizeof(buf));
		if (config_copy(&copy, &cfg) == 0) {
			(void)config_diff(&cfg, &copy, NULL, NULL);
			config_free(&copy);
		}
		config_free(&cfg);
	}
	close(fd);
	return 0;
}
