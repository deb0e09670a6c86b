/*
 * test_sop.c: the campaign calendar math. Expected instants are written out as
 * UTC ms (checked independently with zdump and Python's zoneinfo); civil
 * conversions are also checked against timegm and by walking days one by one.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sop.h"
#include "t.h"
#include "tz_t.h"
#include "tz.h"

static int32_t
day_of(const char *s)
{
	int32_t d = INT32_MIN;

	T_EQ_INT(sop_parse_date(s, &d), 0);
	return d;
}

static void
test_parse_date(void)
{
	static const char *bad[] = {
		"2026-02-29", "2100-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "2026-01-00",
		"2026-01-32", "2026-1-01", "2026-01-1", "26-01-01", "2026-01-01x", "2026-01-01 ",
		" 2026-01-01", "2026/01/01", "2026-01-0a", "+026-01-01", "20260101", "",
		"2026-01-01T00:00:00Z",
	};
	int32_t d;
	size_t i;

	T_EQ_INT(day_of("2026-11-23"), 20780);
	T_EQ_INT(day_of("1970-01-01"), 0);
	T_EQ_INT(day_of("1969-12-31"), -1);
	T_EQ_INT(day_of("2000-02-29"), 11016);
	T_EQ_INT(day_of("2024-02-29"), 19782);
	T_EQ_INT(day_of("0001-01-01"), -719162);
	T_EQ_INT(day_of("0000-01-01"), -719528);
	T_EQ_INT(day_of("0000-02-29"), -719469);	/* year 0 is a leap year */
	T_EQ_INT(day_of("9999-12-31"), 2932896);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sop_parse_date(bad[i], &d) != -1)
			fprintf(stderr, "accepted bad date \"%s\"\n", bad[i]);
		T_EQ_INT(sop_parse_date(bad[i], &d), -1);
	}
	T_EQ_INT(sop_parse_date(NULL, &d), -1);
}

static void
test_format_date(void)
{
	char buf[11];
	int32_t d, back, bad = 0;

	sop_format_date(20780, buf);
	T_EQ_STR(buf, "2026-11-23");
	sop_format_date(0, buf);
	T_EQ_STR(buf, "1970-01-01");
	sop_format_date(-1, buf);
	T_EQ_STR(buf, "1969-12-31");
	sop_format_date(-719162, buf);
	T_EQ_STR(buf, "0001-01-01");
	/* Years outside 0000..9999 do not fit the shape and are clamped. */
	sop_format_date(INT32_MIN, buf);
	T_EQ_STR(buf, "0000-01-01");
	sop_format_date(INT32_MAX, buf);
	T_EQ_STR(buf, "9999-12-31");
	/* Every representable day survives format then parse. */
	for (d = -719528; d <= 2932896; d++) {
		sop_format_date(d, buf);
		if (sop_parse_date(buf, &back) != 0 || back != d)
			bad++;
	}
	T_EQ_INT(bad, 0);
}

/* civil_from_days(d + 1) must be the calendar day after civil_from_days(d). */
static int
walk_days(int64_t from, int64_t to)
{
	int y, py;
	unsigned m, d, pm, pd;
	int64_t x;
	int bad = 0;

	sop_civil_from_days((int32_t)from, &py, &pm, &pd);
	for (x = from + 1; x <= to; x++) {
		int leap, mlen;

		sop_civil_from_days((int32_t)x, &y, &m, &d);
		leap = (py % 4 == 0 && py % 100 != 0) || py % 400 == 0;
		mlen = pm == 2 ? 28 + leap : (pm == 4 || pm == 6 || pm == 9 || pm == 11) ? 30 : 31;
		if (pd < (unsigned)mlen ? !(y == py && m == pm && d == pd + 1) :
		    pm < 12 ? !(y == py && m == pm + 1 && d == 1) :
		    !(y == py + 1 && m == 1 && d == 1))
			bad++;
		if (sop_days_from_civil(y, m, d) != x)
			bad++;
		py = y;
		pm = m;
		pd = d;
	}
	return bad;
}

static void
test_civil(void)
{
	int y, i, bad = 0;
	unsigned m, d;

	T_EQ_INT(sop_days_from_civil(1970, 1, 1), 0);
	T_EQ_INT(sop_days_from_civil(2000, 3, 1), 11017);
	T_EQ_INT(sop_days_from_civil(2026, 13, 1), sop_days_from_civil(2027, 1, 1));
	T_EQ_INT(sop_days_from_civil(2026, 3, 0), sop_days_from_civil(2026, 2, 28));
	T_EQ_INT(sop_days_from_civil(2024, 0, 1), sop_days_from_civil(2023, 12, 1));
	T_EQ_INT(sop_days_from_civil(INT_MAX, 1, 1), INT32_MAX);
	T_EQ_INT(sop_days_from_civil(INT_MIN, 1, 1), INT32_MIN);
	sop_civil_from_days(-1, &y, &m, &d);
	T_CHECK(y == 1969 && m == 12 && d == 31);
	sop_civil_from_days(11016, &y, &m, &d);
	T_CHECK(y == 2000 && m == 2 && d == 29);
	/* Days walked one by one: around 1 AD..10000 AD and at both int32 ends. */
	T_EQ_INT(walk_days(-800000, 3000000), 0);
	T_EQ_INT(walk_days(INT32_MIN, (int64_t)INT32_MIN + 800), 0);
	T_EQ_INT(walk_days((int64_t)INT32_MAX - 800, INT32_MAX), 0);
	/* Against the C library for random dates in years 1..9999. */
	for (i = 0; i < 20000; i++) {
		struct tm tm;

		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 1 + (int)(rng() % 9999) - 1900;
		tm.tm_mon = (int)(rng() % 12);
		tm.tm_mday = 1 + (int)(rng() % 28);
		if ((int64_t)sop_days_from_civil(tm.tm_year + 1900, (unsigned)tm.tm_mon + 1,
		    (unsigned)tm.tm_mday) * 86400 != (int64_t)timegm(&tm))
			bad++;
	}
	T_EQ_INT(bad, 0);
}

static void
test_parse_hhmm(void)
{
	static const char *bad[] = {
		"24:00", "9:00", "23:60", "09:5", "0900", "09:00:00", "", " 9:00", "-1:00",
		"09:0a", "09-00", "09:00 ", "99:99",
	};
	int min = -1;
	size_t i;

	T_EQ_INT(sop_parse_hhmm("00:00", &min), 0);
	T_EQ_INT(min, 0);
	T_EQ_INT(sop_parse_hhmm("23:59", &min), 0);
	T_EQ_INT(min, 1439);
	T_EQ_INT(sop_parse_hhmm("09:05", &min), 0);
	T_EQ_INT(min, 545);
	T_EQ_INT(sop_parse_hhmm("20:30", &min), 0);
	T_EQ_INT(min, 1230);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sop_parse_hhmm(bad[i], &min) != -1)
			fprintf(stderr, "accepted bad time \"%s\"\n", bad[i]);
		T_EQ_INT(sop_parse_hhmm(bad[i], &min), -1);
	}
	T_EQ_INT(sop_parse_hhmm(NULL, &min), -1);
}

static int64_t
dur(const char *s)
{
	int64_t ms = -1;

	if (sop_parse_duration(s, &ms) != 0)
		fprintf(stderr, "rejected duration \"%s\"\n", s);
	return ms;
}

static void
test_parse_duration(void)
{
	static const char *bad[] = {
		"", "5", "m", "h", "ms", "1h1h", "1m1h", "1s1m", "1ms1s", "1ms1ms", "-1h", "+1h",
		"0s", "0ms", "0d0h0m0s0ms", " 1h", "1h ", "1 h", "1H", "1hm", "1h30", "1.5h",
		"1mss", "1sms", "1x", "1d-1h", "9223372036854775808ms", "106751991168d",
		"106751991167d8h", "99999999999999999999s", "1e3s",
	};
	int64_t ms;
	size_t i;

	T_EQ_INT(dur("90s"), 90000);
	T_EQ_INT(dur("15m"), 900000);
	T_EQ_INT(dur("2h30m"), 9000000);
	T_EQ_INT(dur("7d"), 604800000);
	T_EQ_INT(dur("1d12h"), 129600000);
	T_EQ_INT(dur("500ms"), 500);
	T_EQ_INT(dur("24h"), 86400000);
	T_EQ_INT(dur("1s500ms"), 1500);
	T_EQ_INT(dur("1m30s"), 90000);
	T_EQ_INT(dur("1d2h3m4s5ms"), 93784005);
	T_EQ_INT(dur("0h30m"), 1800000);
	T_EQ_INT(dur("0001s"), 1000);
	T_EQ_INT(dur("9223372036854775807ms"), INT64_MAX);
	T_EQ_INT(dur("106751991167d"), 106751991167LL * 86400000);	/* the most whole days */
	T_EQ_INT(dur("106751991167d7h"), 106751991167LL * 86400000 + 7 * 3600000);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sop_parse_duration(bad[i], &ms) != -1)
			fprintf(stderr, "accepted bad duration \"%s\"\n", bad[i]);
		T_EQ_INT(sop_parse_duration(bad[i], &ms), -1);
	}
	T_EQ_INT(sop_parse_duration(NULL, &ms), -1);
}

static void
test_due_shanghai(void)
{
	struct tz *z = load("Asia/Shanghai");
	int32_t anchor = day_of("2026-11-23");

	if (z == NULL)
		return;
	/* The spec's example: day 1 10:00 and day 3 20:30 from 2026-11-23. */
	T_EQ_INT(sop_due_ms(z, anchor, 1, 600), 1795399200000LL);	/* 2026-11-23T02:00Z */
	T_EQ_INT(sop_due_ms(z, anchor, 3, 1230), 1795609800000LL);	/* 2026-11-25T12:30Z */
	T_EQ_INT(sop_due_ms(z, anchor, 1, 0), 1795363200000LL);	/* 2026-11-22T16:00Z */
	T_EQ_INT(sop_due_ms(z, anchor, 1, 1439), 1795449540000LL);	/* 2026-11-23T15:59Z */
	/* Day 0 and negative days are plain arithmetic: the day before the anchor. */
	T_EQ_INT(sop_due_ms(z, anchor, 0, 600), 1795399200000LL - 86400000);
	T_EQ_INT(sop_due_ms(z, anchor, 366, 600), 1795399200000LL + 365LL * 86400000);
	tz_free(z);
}

static void
test_due_new_york(void)
{
	struct tz *z = load("America/New_York");

	if (z == NULL)
		return;
	/* From 2026-03-06, day 3 is 2026-03-08: 02:00-02:59 do not exist. */
	T_EQ_INT(sop_due_ms(z, 20518, 3, 119), 1772953140000LL);	/* 01:59 EST = 06:59Z */
	T_EQ_INT(sop_due_ms(z, 20518, 3, 120), 1772953200000LL);	/* 02:00 -> 07:00Z */
	T_EQ_INT(sop_due_ms(z, 20518, 3, 150), 1772955000000LL);	/* 02:30 -> 07:30Z */
	T_EQ_INT(sop_due_ms(z, 20518, 3, 180), 1772953200000LL);	/* 03:00 EDT = 07:00Z */
	/* Across the change the wall-clock time holds: 10:00 is 15:00Z, then 14:00Z. */
	T_EQ_INT(sop_due_ms(z, 20513, 7, 600), 1772895600000LL);	/* 03-07 10:00 EST */
	T_EQ_INT(sop_due_ms(z, 20513, 8, 600), 1772978400000LL);	/* 03-08 10:00 EDT */
	/* 2026-11-01: 01:00-01:59 happen twice; the first (EDT) is taken. */
	T_EQ_INT(sop_due_ms(z, 20758, 1, 60), 1793509200000LL);	/* 01:00 EDT = 05:00Z */
	T_EQ_INT(sop_due_ms(z, 20758, 1, 90), 1793511000000LL);	/* 01:30 EDT = 05:30Z */
	T_EQ_INT(sop_due_ms(z, 20758, 1, 119), 1793512740000LL);	/* 01:59 EDT = 05:59Z */
	T_EQ_INT(sop_due_ms(z, 20758, 1, 120), 1793516400000LL);	/* 02:00 EST = 07:00Z */
	tz_free(z);
}

static void
test_day_boundaries(void)
{
	struct tz *ny = load("America/New_York"), *sh = load("Asia/Shanghai");
	struct tz *sp = load("America/Sao_Paulo"), *utc = load("UTC");

	if (ny == NULL || sh == NULL || sp == NULL || utc == NULL)
		goto out;
	/* 2026-03-08 starts at 00:00 EST = 05:00Z. */
	T_EQ_INT(sop_day_start_ms(ny, 20520), 1772946000000LL);
	T_EQ_INT(sop_local_day(ny, 1772946000000LL - 1), 20519);
	T_EQ_INT(sop_local_day(ny, 1772946000000LL), 20520);
	/* 2026-11-23 in Shanghai starts at 2026-11-22T16:00Z. */
	T_EQ_INT(sop_day_start_ms(sh, 20780), 1795363200000LL);
	T_EQ_INT(sop_local_day(sh, 1795363200000LL - 1), 20779);
	T_EQ_INT(sop_local_day(sh, 1795363200000LL), 20780);
	T_EQ_INT(sop_local_day(sh, 1795399200000LL), 20780);
	/* Sao Paulo skipped midnight on 2018-11-04: the day begins at 01:00 -02 = 03:00Z. */
	T_EQ_INT(sop_day_start_ms(sp, 17839), 1541300400000LL);
	T_EQ_INT(sop_local_day(sp, 1541300400000LL - 1), 17838);
	T_EQ_INT(sop_local_day(sp, 1541300400000LL), 17839);
	/* Negative instants and the int64 ends. */
	T_EQ_INT(sop_local_day(utc, -1), -1);
	T_EQ_INT(sop_local_day(utc, -86400000), -1);
	T_EQ_INT(sop_local_day(utc, -86400001), -2);
	T_EQ_INT(sop_local_day(sh, -28800000), 0);
	T_EQ_INT(sop_local_day(sh, INT64_MAX), INT32_MAX);
	T_EQ_INT(sop_local_day(sh, INT64_MIN), INT32_MIN);
	T_EQ_INT(sop_day_start_ms(utc, -719162), -62135596800000LL);	/* 0001-01-01 */
out:
	tz_free(ny);
	tz_free(sh);
	tz_free(sp);
	tz_free(utc);
}

static void
test_far_days(void)
{
	struct tz *ny = load("America/New_York"), *sh = load("Asia/Shanghai");

	if (ny == NULL || sh == NULL)
		goto out;
	/* 2400-07-01 10:00 in New York, from the footer rule: EDT, 14:00Z. */
	T_EQ_INT(sop_due_ms(ny, 157236, 1, 600), 13585240800000LL);
	/* 9999-12-31 23:59 in Shanghai. */
	T_EQ_INT(sop_due_ms(sh, 2932896, 1, 1439), 253402271940000LL);
	/* Days past the int32 range stay plain arithmetic, without overflow. */
	T_EQ_INT(sop_due_ms(sh, INT32_MAX, 2, 0), ((int64_t)INT32_MAX + 1) * 86400000 - 28800000);
	/* Before its first transition Shanghai keeps local mean time, +08:05:43. */
	T_EQ_INT(sop_due_ms(sh, INT32_MIN, 1, 0), (int64_t)INT32_MIN * 86400000 - 29143000);
	T_EQ_INT(sop_local_day(sh, sop_day_start_ms(sh, INT32_MIN)), INT32_MIN);
	T_EQ_INT(sop_local_day(ny, sop_day_start_ms(ny, INT32_MAX)), INT32_MAX);
out:
	tz_free(ny);
	tz_free(sh);
}

static int64_t
instant(const char *s)
{
	int64_t ms = INT64_MIN;

	if (sop_parse_instant(s, &ms) != 0)
		fprintf(stderr, "rejected instant \"%s\"\n", s);
	return ms;
}

static void
test_parse_instant(void)
{
	static const char *bad[] = {
		"2026-11-23T10:00:00", "2026-11-23T10:00", "2026-11-23", "2026-11-23T24:00:00Z",
		"2026-11-23T10:60:00Z", "2026-11-23T10:00:60Z", "2026-02-29T10:00:00Z",
		"2026-11-23T10:00:00.Z", "2026-11-23T10:00:00.1234567890Z", "2026-11-23T10:00:00+8:00",
		"2026-11-23T10:00:00+08:0", "2026-11-23T10:00:00+24:00", "2026-11-23T10:00:00+08:60",
		"2026-11-23T10:00:00Zjunk", "2026-11-23T10:00.5+08:00", "2026-11-23X10:00:00Z",
		"2026-11-23T1:00:00Z", "", "-", "9223372036854775808", "12a", "1 2", "+1000",
		"2026-11-23T10:00:00+08:00:60", "2026-11-23T10:00:00+0800 ",
	};
	int64_t ms;
	size_t i;

	T_EQ_INT(instant("2026-11-23T10:00:00+08:00"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23T02:00:00Z"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23T10:00:00.250+08:00"), 1795399200250LL);
	T_EQ_INT(instant("2026-11-23T10:00+08:00"), 1795399200000LL);
	T_EQ_INT(instant("1795000000000"), 1795000000000LL);
	T_EQ_INT(instant("0"), 0);
	T_EQ_INT(instant("-1000"), -1000);
	T_EQ_INT(instant("9223372036854775807"), INT64_MAX);
	T_EQ_INT(instant("2026-11-23t02:00:00z"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23 10:00:00+0800"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23T10:00:00+08"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-22T21:00:00-05:00"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23T02:00:00-00:00"), 1795399200000LL);
	T_EQ_INT(instant("2026-11-23T02:00:00.5Z"), 1795399200500LL);
	T_EQ_INT(instant("2026-11-23T02:00:00.123456789Z"), 1795399200123LL);
	T_EQ_INT(instant("2026-11-23T10:05:43+08:05:43"), 1795399200000LL);
	T_EQ_INT(instant("1969-12-31T23:59:59.999Z"), -1);
	T_EQ_INT(instant("0001-01-01T00:00:00Z"), -62135596800000LL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (sop_parse_instant(bad[i], &ms) != -1)
			fprintf(stderr, "accepted bad instant \"%s\"\n", bad[i]);
		T_EQ_INT(sop_parse_instant(bad[i], &ms), -1);
	}
	T_EQ_INT(sop_parse_instant(NULL, &ms), -1);
}

static void
test_format_instant(void)
{
	char buf[40];
	int64_t back;
	int i, bad = 0;

	sop_format_instant(1795399200000LL, 28800, buf);
	T_EQ_STR(buf, "2026-11-23T10:00:00+08:00");
	sop_format_instant(1795399200000LL, 0, buf);
	T_EQ_STR(buf, "2026-11-23T02:00:00+00:00");
	sop_format_instant(1795399200250LL, 28800, buf);
	T_EQ_STR(buf, "2026-11-23T10:00:00.250+08:00");
	sop_format_instant(1795399200005LL, -18000, buf);
	T_EQ_STR(buf, "2026-11-22T21:00:00.005-05:00");
	sop_format_instant(1795399200000LL, 28800 + 343, buf);
	T_EQ_STR(buf, "2026-11-23T10:05:43+08:05:43");
	sop_format_instant(1795399200000LL, 19800, buf);
	T_EQ_STR(buf, "2026-11-23T07:30:00+05:30");
	sop_format_instant(-1, 0, buf);
	T_EQ_STR(buf, "1969-12-31T23:59:59.999+00:00");
	sop_format_instant(-62135596800000LL, 0, buf);
	T_EQ_STR(buf, "0001-01-01T00:00:00+00:00");
	/* The int64 ends fit the buffer; the offset is clamped to +-99:59:59. */
	sop_format_instant(INT64_MIN, INT32_MIN, buf);
	T_CHECK(buf[0] == '-' && strlen(buf) < 40);
	sop_format_instant(INT64_MAX, INT32_MAX, buf);
	T_CHECK(strlen(buf) < 40 && strcmp(buf + strlen(buf) - 9, "+99:59:59") == 0);
	/* Round trips for random instants in years 1..9999 at offsets up to +-14 h. */
	for (i = 0; i < 20000; i++) {
		int64_t u = -62135596800000LL + (int64_t)(rng() % (315537897600000ULL - 86400000));
		int32_t off = (int32_t)(rng() % 100801) - 50400;

		if (i % 2 == 0)
			off -= off % 60;
		if (i % 3 == 0)
			u -= u % 1000;
		sop_format_instant(u, off, buf);
		if (sop_parse_instant(buf, &back) != 0 || back != u) {
			if (bad++ < 5)
				fprintf(stderr, "round trip %lld %d: %s\n", (long long)u, off, buf);
		}
	}
	T_EQ_INT(bad, 0);
}

/* ISO 8601 -> ms, for readable cases. */
static int64_t
at(const char *iso)
{
	int64_t ms = -1;

	T_EQ_INT(sop_parse_instant(iso, &ms), 0);
	return ms;
}

static void
test_quiet_end(void)
{
	struct tz *sh = tz_load("Asia/Shanghai", NULL), *ny = tz_load("America/New_York", NULL);
	int from = 22 * 60, to = 8 * 60;

	T_CHECK(sh && ny);
	/* A window within one day: inside until its end, outside at and after it. */
	T_CHECK(sop_quiet_end(sh, 12 * 60, 14 * 60, at("2026-03-02T12:00:00+08:00")) ==
	        at("2026-03-02T14:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, 12 * 60, 14 * 60, at("2026-03-02T13:59:59.999+08:00")) ==
	        at("2026-03-02T14:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, 12 * 60, 14 * 60, at("2026-03-02T14:00:00+08:00")) == 0);
	T_CHECK(sop_quiet_end(sh, 12 * 60, 14 * 60, at("2026-03-02T11:59:59+08:00")) == 0);
	/* Across midnight: the evening part ends the next morning, the morning part that day. */
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-02T22:00:00+08:00")) ==
	        at("2026-03-03T08:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-02T23:59:59+08:00")) ==
	        at("2026-03-03T08:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-03T00:00:00+08:00")) ==
	        at("2026-03-03T08:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-03T07:59:00+08:00")) ==
	        at("2026-03-03T08:00:00+08:00"));
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-03T08:00:00+08:00")) == 0);
	T_CHECK(sop_quiet_end(sh, from, to, at("2026-03-02T21:59:59+08:00")) == 0);
	/* Spring forward in New York (2026-03-08 02:00 EST -> 03:00 EDT): the night is an hour
	   shorter, and 08:00 is in EDT, not 13:00 UTC as a fixed offset would say. */
	T_CHECK(sop_quiet_end(ny, from, to, at("2026-03-07T23:30:00-05:00")) ==
	        at("2026-03-08T08:00:00-04:00"));
	T_CHECK(sop_quiet_end(ny, from, to, at("2026-03-08T03:30:00-04:00")) ==
	        at("2026-03-08T08:00:00-04:00"));
	/* A window ending inside the gap: its end moves forward by the gap, as a step's time
	   does (SPEC 3), 02:30 -> 03:30 EDT. */
	T_CHECK(sop_quiet_end(ny, 60, 150, at("2026-03-08T01:30:00-05:00")) ==
	        at("2026-03-08T03:30:00-04:00"));
	/* Fall back (2026-11-01 02:00 EDT -> 01:00 EST): a window to 01:30 ends at the 01:30 of
	   the hour one is in, the first or the repeated one. */
	T_CHECK(sop_quiet_end(ny, from, 90, at("2026-11-01T01:15:00-04:00")) ==
	        at("2026-11-01T01:30:00-04:00"));
	T_CHECK(sop_quiet_end(ny, from, 90, at("2026-11-01T01:15:00-05:00")) ==
	        at("2026-11-01T01:30:00-05:00"));
	T_CHECK(sop_quiet_end(ny, from, to, at("2026-10-31T23:00:00-04:00")) ==
	        at("2026-11-01T08:00:00-05:00"));
	tz_free(sh);
	tz_free(ny);
}

int
main(void)
{
	t_rng_state = 0x2545f4914f6cdd1dULL;  /* this file's own cases */
	T_RUN(test_parse_date);
	T_RUN(test_format_date);
	T_RUN(test_civil);
	T_RUN(test_parse_hhmm);
	T_RUN(test_parse_duration);
	T_RUN(test_due_shanghai);
	T_RUN(test_due_new_york);
	T_RUN(test_day_boundaries);
	T_RUN(test_far_days);
	T_RUN(test_parse_instant);
	T_RUN(test_format_instant);
	T_RUN(test_quiet_end);
	return t_report();
}
