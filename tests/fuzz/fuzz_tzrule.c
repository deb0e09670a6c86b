/*
 * fuzz_tzrule: the POSIX TZ rules of src/tz.c ("CET-1CEST,M3.5.0,M10.5.0/3"). The
 * input, up to its first newline, becomes the footer of an otherwise fixed version 2
 * TZif file with no transitions, so the rule alone decides every offset; tz_probe.h
 * checks what loads.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tz.h"
#include "tz_probe.h"

/* A TZif header announcing one local time type of 4 name bytes and nothing else. */
static size_t
put_header(unsigned char *p, char version)
{
	memset(p, 0, 44);
	memcpy(p, "TZif", 4);
	p[4] = (unsigned char)version;
	p[39] = 1;                    /* typecnt */
	p[43] = 4;                    /* charcnt */
	/* The type: UTC offset 0, not DST, name "UTC". */
	memset(p + 44, 0, 6);
	memcpy(p + 50, "UTC", 4);
	return 54;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZDIR", fuzz_dir(), 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n = nl ? (size_t)(nl - data) : size, len;
	unsigned char *file;
	struct tz *z;
	char *err = NULL;

	if (!(file = malloc(2 * 54 + n + 2)))
		return 0;
	len = put_header(file, '2');
	len += put_header(file + len, '2');
	file[len++] = '\n';
	memcpy(file + len, data, n);
	len += n;
	file[len++] = '\n';
	fuzz_write("Fuzz_Rule", file, len);
	free(file);
	z = tz_load("Fuzz_Rule", &err);
	FUZZ_CHECK((z == NULL) == (err != NULL));
	if (z)
		tz_probe(z);
	tz_free(z);
	free(err);
	return 0;
}
