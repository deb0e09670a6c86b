/*
 * fuzz_tzif: the TZif reader of src/tz.c on a whole file. The input is written as a
 * zone file in the harness's own TZDIR and loaded through tz_load, as Herald loads
 * any zone; tz_probe.h checks what loads.
 */
#include <stdlib.h>

#include "fuzz.h"
#include "tz.h"
#include "tz_probe.h"

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
	struct tz *z;
	char *err = NULL;

	fuzz_write("Fuzz_Zone", data, size);
	z = tz_load("Fuzz_Zone", &err);
	FUZZ_CHECK((z == NULL) == (err != NULL));
	if (z)
		tz_probe(z);
	tz_free(z);
	free(err);
	return 0;
}
