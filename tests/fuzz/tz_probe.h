/*
 * tz_probe.h: the checks fuzz_tzif and fuzz_tzrule run on a zone that loaded: offsets
 * stay within RFC 8536's range, and a wall-clock time converts to an instant showing
 * that time, or a later one when it falls in a gap (tz.h), never an earlier one.
 */
#ifndef HERALD_TZ_PROBE_H
#define HERALD_TZ_PROBE_H

#include <stdint.h>

#include "fuzz.h"
#include "tz.h"

static void
tz_probe(const struct tz *z)
{
	/* 1970, 2026, 1900, 2100, 9999, 0001 and the int64 ends. */
	static const int64_t at[] = {
		0, 1795000000000LL, 1782864000000LL, -2208988800000LL, 4102444800000LL,
		253402300799000LL, -62135596800000LL, (int64_t)1 << 50, -((int64_t)1 << 50),
		INT64_MAX, INT64_MIN,
	};
	int64_t u, shown;
	int32_t off;
	size_t i, h;

	for (i = 0; i < sizeof at / sizeof at[0]; i++) {
		off = tz_offset_at(z, at[i]);
		FUZZ_CHECK(off >= -89999 && off <= 93599);
		(void)tz_local_to_utc(z, at[i]);
		if (i >= 7)
			continue;
		/* Every half hour of a day, in March or in November: around DST changes. */
		for (h = 0; h < 48; h++) {
			int64_t local = at[i] + (int64_t)(i & 1 ? 65 : 300) * 86400000LL +
			    (int64_t)h * 1800000LL;

			u = tz_local_to_utc(z, local);
			shown = u + (int64_t)tz_offset_at(z, u) * 1000;
			FUZZ_CHECK(shown >= local);
		}
	}
}

#endif
