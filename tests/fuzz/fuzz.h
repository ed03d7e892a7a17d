/*
 * fuzz.h: what the libFuzzer targets share. Each target is one parser of
 * untrusted input driven through its public functions; fuzz_memfd() hands a
 * parser that reads a file descriptor or a path the fuzzer's bytes.
 */
#ifndef FETCHD_FUZZ_H
#define FETCHD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An anonymous file holding data, offset 0; -1 on failure (the target
 * then skips the input). Its path is /proc/self/fd/N. */
int fuzz_memfd(const uint8_t *data, size_t size);

#endif
