/*
 * fuzz.h: what the fuzz harnesses share. Each harness is one file defining
 * LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it needs a setup): libFuzzer
 * drives it under HERALD_FUZZ, replay.c drives it over its committed corpus in every
 * build. Harnesses write only inside fuzz_dir(), a private directory of their own.
 */
#ifndef HERALD_FUZZ_H
#define HERALD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The harness's scratch directory: a new one under $TMPDIR (else /tmp), made on the
 * first call and removed with its files at exit. Aborts when it cannot be made: a
 * harness that cannot write its input would otherwise test nothing.
 */
const char *fuzz_dir(void);

/*
 * Writes size bytes to fuzz_dir()/name, replacing it, and returns its path (a static
 * buffer, valid until the next call). Aborts on failure.
 */
const char *fuzz_write(const char *name, const void *data, size_t size);

/* A copy of data with a NUL after it (caller frees). Aborts when out of memory. */
char *fuzz_str(const void *data, size_t size);

/* Reports a broken invariant and aborts, so libFuzzer keeps the input and replay fails. */
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) \
			fuzz_fail(__FILE__, __LINE__, #cond); \
	} while (0)

#endif
