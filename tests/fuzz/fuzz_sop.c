/*
 * fuzz_sop: the ISO 8601 and duration parsers of src/sop.c on one string each:
 * sop_parse_instant, sop_parse_duration, sop_parse_date and sop_parse_hhmm.
 * Invariants: what parses is in the documented range, and what Herald prints reads
 * back to the same value.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sop.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size), out[40];
	int64_t ms, back;
	int32_t day, day2;
	int minutes;

	if (sop_parse_instant(s, &ms) == 0) {
		/* Printed at any offset, an instant reads back to itself. */
		sop_format_instant(ms, 0, out);
		if (sop_parse_instant(out, &back) == 0)
			FUZZ_CHECK(back == ms);
		sop_format_instant(ms, 8 * 3600, out);
		if (sop_parse_instant(out, &back) == 0)
			FUZZ_CHECK(back == ms);
	}
	if (sop_parse_duration(s, &ms) == 0)
		FUZZ_CHECK(ms > 0);
	if (sop_parse_date(s, &day) == 0) {
		sop_format_date(day, out);
		FUZZ_CHECK(strcmp(out, s) == 0);
		FUZZ_CHECK(sop_parse_date(out, &day2) == 0 && day2 == day);
	}
	if (sop_parse_hhmm(s, &minutes) == 0)
		FUZZ_CHECK(minutes >= 0 && minutes < 24 * 60);
	free(s);
	return 0;
}
