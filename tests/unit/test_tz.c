/*
 * test_tz.c: tz against the system zone files (fixed instants checked by hand
 * against zdump), against glibc's localtime_r in forked children with TZ set
 * (the oracle), and against TZif bytes written here, malformed ones included.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "tz_t.h"
#include "tz.h"

static char sys_dir[512];	/* where the system zone files are */
static char tmp_dir[256];	/* hand-made zone files go here */

/* UTC ms of a civil time, computed by the C library as an independent check. */
static int64_t
utc_ms(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * 1000;
}

/* The same civil time read as a local wall-clock time. */
#define local_ms utc_ms

static void
test_shanghai(void)
{
	struct tz *z = load("Asia/Shanghai");

	if (z == NULL)
		return;
	T_EQ_STR(tz_name(z), "Asia/Shanghai");
	T_EQ_INT(tz_offset_at(z, 1795399200000LL), 28800);	/* 2026-11-23T02:00Z */
	T_EQ_INT(tz_offset_at(z, utc_ms(2026, 7, 1, 0, 0, 0)), 28800);
	T_EQ_INT(tz_offset_at(z, utc_ms(2040, 1, 1, 0, 0, 0)), 28800);
	/* 1988: China still had summer time. */
	T_EQ_INT(tz_offset_at(z, utc_ms(1988, 7, 1, 0, 0, 0)), 32400);
	/* 2026-11-23 10:00 in Shanghai is 02:00Z. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 23, 10, 0, 0)), 1795399200000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 23, 0, 0, 0)), 1795363200000LL);
	tz_free(z);
}

static void
test_new_york_2026(void)
{
	struct tz *z = load("America/New_York");

	if (z == NULL)
		return;
	/* Spring forward at 2026-03-08T07:00:00Z = 1772953200000. */
	T_EQ_INT(tz_offset_at(z, 1772953200000LL - 1), -18000);
	T_EQ_INT(tz_offset_at(z, 1772953200000LL), -14400);
	/* Fall back at 2026-11-01T06:00:00Z = 1793512800000. */
	T_EQ_INT(tz_offset_at(z, 1793512800000LL - 1), -14400);
	T_EQ_INT(tz_offset_at(z, 1793512800000LL), -18000);

	/* The gap: 02:00..02:59 local on 2026-03-08 do not exist. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 1, 59, 0)), 1772953200000LL - 60000);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 2, 0, 0)), 1772953200000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 2, 30, 0)), 1772955000000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 3, 0, 0) - 1), 1772956800000LL - 1);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 3, 0, 0)), 1772953200000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 8, 3, 30, 0)), 1772955000000LL);

	/* The overlap: 01:00..01:59 local on 2026-11-01 happen twice; first wins. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 1, 0, 59, 0)), 1793509140000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 1, 1, 0, 0)), 1793509200000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 1, 1, 30, 0)), 1793511000000LL);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 1, 2, 0, 0) - 1), 1793512800000LL - 1);
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 11, 1, 2, 0, 0)), 1793516400000LL);
	tz_free(z);
}

static void
test_berlin(void)
{
	struct tz *z = load("Europe/Berlin");

	if (z == NULL)
		return;
	T_EQ_INT(tz_offset_at(z, 1774746000000LL - 1), 3600);	/* 2026-03-29T01:00Z */
	T_EQ_INT(tz_offset_at(z, 1774746000000LL), 7200);
	T_EQ_INT(tz_offset_at(z, 1792890000000LL - 1), 7200);	/* 2026-10-25T01:00Z */
	T_EQ_INT(tz_offset_at(z, 1792890000000LL), 3600);
	/* 02:30 does not exist on 2026-03-29: read at +01:00, 01:30Z. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 3, 29, 2, 30, 0)),
	    utc_ms(2026, 3, 29, 1, 30, 0));
	/* 02:30 happens twice on 2026-10-25: the first is at +02:00, 00:30Z. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 10, 25, 2, 30, 0)),
	    utc_ms(2026, 10, 25, 0, 30, 0));
	/* Double summer time in 1947 (+03:00), from the 64-bit data. */
	T_EQ_INT(tz_offset_at(z, utc_ms(1947, 6, 1, 12, 0, 0)), 10800);
	tz_free(z);
}

static void
test_lord_howe(void)
{
	struct tz *z = load("Australia/Lord_Howe");

	if (z == NULL)
		return;
	/* DST is only 30 minutes: +11:00 until 2026-04-04T15:00Z, then +10:30. */
	T_EQ_INT(tz_offset_at(z, utc_ms(2026, 4, 4, 15, 0, 0) - 1), 39600);
	T_EQ_INT(tz_offset_at(z, utc_ms(2026, 4, 4, 15, 0, 0)), 37800);
	T_EQ_INT(tz_offset_at(z, utc_ms(2026, 10, 3, 15, 30, 0) - 1), 37800);
	T_EQ_INT(tz_offset_at(z, utc_ms(2026, 10, 3, 15, 30, 0)), 39600);
	/* 01:45 on 2026-04-05 happens twice: first at +11:00. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 4, 5, 1, 45, 0)), utc_ms(2026, 4, 4, 14, 45, 0));
	/* 02:15 on 2026-10-04 is in the half-hour gap: read at +10:30. */
	T_EQ_INT(tz_local_to_utc(z, local_ms(2026, 10, 4, 2, 15, 0)), utc_ms(2026, 10, 3, 15, 45, 0));
	tz_free(z);
}

/* Past 2037 the tables end and the POSIX footer decides. */
static void
test_footer_2040(void)
{
	struct tz *ny = load("America/New_York"), *lh = load("Australia/Lord_Howe");

	if (ny == NULL || lh == NULL)
		goto out;
	T_EQ_INT(tz_offset_at(ny, utc_ms(2040, 3, 11, 7, 0, 0) - 1), -18000);
	T_EQ_INT(tz_offset_at(ny, utc_ms(2040, 3, 11, 7, 0, 0)), -14400);
	T_EQ_INT(tz_offset_at(ny, utc_ms(2040, 11, 4, 6, 0, 0) - 1), -14400);
	T_EQ_INT(tz_offset_at(ny, utc_ms(2040, 11, 4, 6, 0, 0)), -18000);
	T_EQ_INT(tz_local_to_utc(ny, local_ms(2040, 3, 11, 2, 30, 0)), utc_ms(2040, 3, 11, 7, 30, 0));
	T_EQ_INT(tz_local_to_utc(ny, local_ms(2040, 11, 4, 1, 30, 0)), utc_ms(2040, 11, 4, 5, 30, 0));
	T_EQ_INT(tz_offset_at(lh, utc_ms(2040, 3, 31, 15, 0, 0) - 1), 39600);
	T_EQ_INT(tz_offset_at(lh, utc_ms(2040, 3, 31, 15, 0, 0)), 37800);
	T_EQ_INT(tz_offset_at(lh, utc_ms(2040, 10, 6, 15, 30, 0)), 39600);
	/* Far out, the rule still holds: 2400-07-01 is summer in New York. */
	T_EQ_INT(tz_offset_at(ny, utc_ms(2400, 7, 1, 0, 0, 0)), -14400);
	T_EQ_INT(tz_offset_at(ny, utc_ms(2400, 12, 1, 0, 0, 0)), -18000);
	/* The int64 extremes must not overflow anything. */
	(void)tz_offset_at(ny, INT64_MAX);
	(void)tz_offset_at(ny, INT64_MIN);
	(void)tz_local_to_utc(ny, INT64_MAX);
	(void)tz_local_to_utc(ny, INT64_MIN);
out:
	tz_free(ny);
	tz_free(lh);
}

static void
test_utc(void)
{
	struct tz *z = load("UTC"), *e = load("Etc/UTC");

	if (z != NULL) {
		T_EQ_INT(tz_offset_at(z, 0), 0);
		T_EQ_INT(tz_offset_at(z, 1795399200000LL), 0);
		T_EQ_INT(tz_local_to_utc(z, 1795399200123LL), 1795399200123LL);
		T_EQ_INT(tz_local_to_utc(z, -1), -1);
	}
	if (e != NULL)
		T_EQ_INT(tz_offset_at(e, 1795399200000LL), 0);
	tz_free(z);
	tz_free(e);
	tz_free(NULL);
}

static void
check_rejected(const char *name)
{
	char *err = NULL;
	struct tz *z = tz_load(name, &err);

	if (z != NULL)
		fprintf(stderr, "accepted bad zone name \"%s\"\n", name);
	T_CHECK(z == NULL);
	T_CHECK(err != NULL && strncmp(err, "unknown time zone \"", 19) == 0);
	free(err);
	tz_free(z);
}

static void
test_bad_names(void)
{
	check_rejected("");
	check_rejected("/usr/share/zoneinfo/UTC");
	check_rejected("../zoneinfo/UTC");
	check_rejected("Asia/../UTC");
	check_rejected("..");
	check_rejected("Nowhere/Atlantis");
	check_rejected("America");		/* a directory */
	check_rejected("Asia/Shanghai ");
	check_rejected("Asia/Shanghai\n");
	check_rejected("zone.tab");		/* a file, but not TZif */
	T_CHECK(tz_load("Nowhere/Atlantis", NULL) == NULL);
}

/* ---- the C library as an oracle ---- */

/*
 * In a child (so our own TZ never changes), compares tz_offset_at with
 * localtime_r's tm_gmtoff at n random instants in [lo_s, hi_s]. TZ is
 * tzspec verbatim, e.g. ":/path/to/zone" or a POSIX string.
 */
static int
oracle_mismatches(const struct tz *z, const char *tzspec, int n, int64_t lo_s, int64_t hi_s)
{
	pid_t pid;
	int status, i, bad = 0;

	fflush(NULL);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		setenv("TZ", tzspec, 1);
		tzset();
		for (i = 0; i < n; i++) {
			time_t t = (time_t)(lo_s + (int64_t)(rng() % (uint64_t)(hi_s - lo_s + 1)));
			int64_t ms = (int64_t)t * 1000 + (int64_t)(rng() % 1000);
			struct tm tm;

			if (localtime_r(&t, &tm) == NULL || tm.tm_gmtoff != tz_offset_at(z, ms)) {
				if (bad++ < 5)
					fprintf(stderr, "%s at %lld: libc %ld, tz %d\n", tzspec,
					    (long long)t, (long)tm.tm_gmtoff, tz_offset_at(z, ms));
			}
		}
		_exit(bad > 255 ? 255 : bad);
	}
	if (waitpid(pid, &status, 0) == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/*
 * tz_local_to_utc must invert the offset: for a random instant u, local time
 * L = u + offset maps back to u, or to an earlier instant with the same L (u was
 * the second occurrence of an overlap).
 */
static int
roundtrip_failures(const struct tz *z, int n, int64_t lo_s, int64_t hi_s)
{
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		int64_t u = (lo_s + (int64_t)(rng() % (uint64_t)(hi_s - lo_s + 1))) * 1000;
		int64_t l = u + (int64_t)tz_offset_at(z, u) * 1000;
		int64_t r = tz_local_to_utc(z, l);

		if (r != u && !(r < u && r + (int64_t)tz_offset_at(z, r) * 1000 == l)) {
			if (bad++ < 5)
				fprintf(stderr, "%s: local %lld -> %lld, want %lld\n", tz_name(z),
				    (long long)l, (long long)r, (long long)u);
		}
	}
	return bad;
}

static void
test_oracle_system_zones(void)
{
	static const char *zones[] = {
		"Asia/Shanghai", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
		"America/Sao_Paulo", "Europe/Dublin", "Africa/Casablanca", "America/Nuuk",
		"America/Santiago", "Antarctica/Troll", "Pacific/Chatham", "Pacific/Apia",
		"Asia/Kolkata", "America/St_Johns", "Europe/London", "UTC",
	};
	char spec[700];
	size_t i;

	for (i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		struct tz *z = load(zones[i]);

		if (z == NULL)
			continue;
		snprintf(spec, sizeof(spec), ":%s/%s", sys_dir, zones[i]);
		/* 1901..2037 from the tables, 2037..2200 from the footer. */
		T_EQ_INT(oracle_mismatches(z, spec, 300, -2147483648LL, 2147483647LL), 0);
		T_EQ_INT(oracle_mismatches(z, spec, 200, 2147483648LL, 7258118400LL), 0);
		T_EQ_INT(roundtrip_failures(z, 2000, -2147483648LL, 7258118400LL), 0);
		tz_free(z);
	}
}

/*
 * Walks every hour of 2026 and 2041 in New York: each local time maps to an
 * instant whose local time is itself, except in the gap hour.
 */
static void
test_local_to_utc_hourly(void)
{
	struct tz *z = load("America/New_York");
	int64_t l, r, start;
	int gaps = 0, bad = 0, year;

	if (z == NULL)
		return;
	for (year = 2026; year <= 2041; year += 15) {
		start = local_ms(year, 1, 1, 0, 30, 0);
		for (l = start; l < start + 365LL * 86400000; l += 3600000) {
			r = tz_local_to_utc(z, l);
			if (r + (int64_t)tz_offset_at(z, r) * 1000 == l)
				continue;
			/* In the gap: read at the old offset, one hour ahead in new local time. */
			if (r + (int64_t)tz_offset_at(z, r) * 1000 == l + 3600000 &&
			    tz_offset_at(z, r) == -14400 && tz_offset_at(z, r - 3600000) == -18000)
				gaps++;
			else
				bad++;
		}
	}
	T_EQ_INT(gaps, 2);
	T_EQ_INT(bad, 0);
	tz_free(z);
}

/* ---- hand-made TZif files ---- */

struct tzb {
	unsigned char	b[4096];
	size_t		n;
};

/* What the builder writes: up to 4 transitions over up to 3 types. */
struct zdesc {
	int		 version;	/* 1..4 */
	int		 ntrans;
	int64_t		 trans[4];	/* UTC seconds */
	int		 idx[4];	/* type of each transition */
	int		 ntypes;
	int32_t		 utoff[3];	/* seconds east */
	int		 isdst[3];
	int		 slim_v1;	/* v2+: a one-type, no-transition 32-bit block */
	const char	*footer;	/* v2+: the POSIX TZ string, "" for none */
};

#define TZB_CHARS	"AAA\0BBB\0CCC\0"
#define TZB_NCHARS	12

static void
put8(struct tzb *b, unsigned v)
{
	if (b->n < sizeof(b->b))
		b->b[b->n++] = (unsigned char)v;
}

static void
put32(struct tzb *b, uint32_t v)
{
	put8(b, v >> 24);
	put8(b, (v >> 16) & 0xff);
	put8(b, (v >> 8) & 0xff);
	put8(b, v & 0xff);
}

static void
put_header(struct tzb *b, int version, uint32_t ntrans, uint32_t ntypes)
{
	int i;

	put32(b, 0x545a6966);	/* "TZif" */
	put8(b, version == 1 ? 0 : '0' + version);
	for (i = 0; i < 15; i++)
		put8(b, 0);
	put32(b, ntypes);	/* isutcnt */
	put32(b, ntypes);	/* isstdcnt */
	put32(b, 0);		/* leapcnt */
	put32(b, ntrans);
	put32(b, ntypes);
	put32(b, TZB_NCHARS);
}

static void
put_block(struct tzb *b, const struct zdesc *d, int tsize, int ntrans, int ntypes)
{
	int i;

	for (i = 0; i < ntrans; i++) {
		if (tsize == 8)
			put32(b, (uint32_t)((uint64_t)d->trans[i] >> 32));
		put32(b, (uint32_t)d->trans[i]);
	}
	for (i = 0; i < ntrans; i++)
		put8(b, (unsigned)d->idx[i]);
	for (i = 0; i < ntypes; i++) {
		put32(b, (uint32_t)d->utoff[i]);
		put8(b, (unsigned)d->isdst[i]);
		put8(b, 4 * (unsigned)i);
	}
	for (i = 0; i < TZB_NCHARS; i++)
		put8(b, (unsigned char)TZB_CHARS[i]);
	for (i = 0; i < 2 * ntypes; i++)	/* isstd, then isut: all wall/local */
		put8(b, 0);
}

static void
build(struct tzb *b, const struct zdesc *d)
{
	size_t i;

	b->n = 0;
	if (d->version == 1) {
		put_header(b, 1, (uint32_t)d->ntrans, (uint32_t)d->ntypes);
		put_block(b, d, 4, d->ntrans, d->ntypes);
		return;
	}
	if (d->slim_v1) {
		put_header(b, d->version, 0, 1);
		put_block(b, d, 4, 0, 1);
	} else {
		put_header(b, d->version, (uint32_t)d->ntrans, (uint32_t)d->ntypes);
		put_block(b, d, 4, d->ntrans, d->ntypes);
	}
	put_header(b, d->version, (uint32_t)d->ntrans, (uint32_t)d->ntypes);
	put_block(b, d, 8, d->ntrans, d->ntypes);
	put8(b, '\n');
	for (i = 0; d->footer[i] != '\0'; i++)
		put8(b, (unsigned char)d->footer[i]);
	put8(b, '\n');
}

static void
write_bytes(const char *name, const unsigned char *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, name);
	f = fopen(path, "wb");
	T_CHECK(f != NULL);
	if (f == NULL)
		return;
	T_CHECK(fwrite(p, 1, n, f) == n);
	T_CHECK(fclose(f) == 0);
}

/* Writes d as zone `name` and loads it (TZDIR points at tmp_dir). */
static struct tz *
write_and_load(const char *name, const struct zdesc *d)
{
	struct tzb b;

	build(&b, d);
	write_bytes(name, b.b, b.n);
	return load(name);
}

static void
check_oracle_file(const struct tz *z, const char *name, int64_t lo_s, int64_t hi_s)
{
	char spec[512];

	snprintf(spec, sizeof(spec), ":%s/%s", tmp_dir, name);
	T_EQ_INT(oracle_mismatches(z, spec, 400, lo_s, hi_s), 0);
	T_EQ_INT(roundtrip_failures(z, 1000, lo_s, hi_s), 0);
}

/* +01 standard, +02 summer from 1000000000 to 1010000000, then a CET-like rule. */
static const struct zdesc base_zone = {
	.version = 2, .ntrans = 2, .trans = { 1000000000, 1010000000 }, .idx = { 1, 0 },
	.ntypes = 2, .utoff = { 3600, 7200 }, .isdst = { 0, 1 },
	.footer = "<+01>-1<+02>,M3.5.0,M10.5.0/3",
};

static void
test_handmade_v1_v2(void)
{
	struct zdesc d = base_zone;
	struct tz *z;

	if ((z = write_and_load("v2", &d)) != NULL) {
		T_EQ_INT(tz_offset_at(z, 1000000000000LL - 1), 3600);	/* before: type 0 */
		T_EQ_INT(tz_offset_at(z, 1000000000000LL), 7200);
		T_EQ_INT(tz_offset_at(z, 1010000000000LL - 1), 7200);
		T_EQ_INT(tz_offset_at(z, 1010000000000LL), 3600);
		T_EQ_INT(tz_offset_at(z, utc_ms(2030, 7, 1, 0, 0, 0)), 7200);	/* footer */
		T_EQ_INT(tz_offset_at(z, utc_ms(2030, 1, 1, 0, 0, 0)), 3600);
		check_oracle_file(z, "v2", 900000000, 4000000000LL);
		tz_free(z);
	}
	/* Version 1 has no footer: the last type holds for ever. */
	d.version = 1;
	if ((z = write_and_load("v1", &d)) != NULL) {
		T_EQ_INT(tz_offset_at(z, 1000000000000LL), 7200);
		T_EQ_INT(tz_offset_at(z, utc_ms(2030, 7, 1, 0, 0, 0)), 3600);
		tz_free(z);
	}
	/* A slim version 3 file: the 32-bit block is a stub and must be ignored. */
	d.version = 3;
	d.slim_v1 = 1;
	if ((z = write_and_load("v3slim", &d)) != NULL) {
		T_EQ_INT(tz_offset_at(z, 1000000000000LL), 7200);
		T_EQ_INT(tz_offset_at(z, utc_ms(2030, 7, 1, 0, 0, 0)), 7200);
		check_oracle_file(z, "v3slim", 900000000, 4000000000LL);
		tz_free(z);
	}
}

/*
 * A footer-driven zone. Without transitions the footer governs every instant
 * (RFC 8536 section 3.2); glibc instead uses type 0 then, so zones meant for the
 * oracle get one early transition (1811) after which both read the footer.
 */
static struct tz *
footer_zone(const char *name, int32_t utoff, const char *footer, int one_transition)
{
	struct zdesc d = { .version = 4, .ntypes = 1, .utoff = { utoff }, .slim_v1 = 1 };

	if (one_transition) {
		d.ntrans = 1;
		d.trans[0] = -5000000000LL;
	}
	d.footer = footer;
	return write_and_load(name, &d);
}

static void
test_handmade_footers(void)
{
	static const struct {
		const char	*name;
		int32_t		 utoff;
		const char	*footer;
	} f[] = {
		{ "nuuk", -7200, "<-02>2<-01>,M3.5.0/-1,M10.5.0/0" },	/* negative hours */
		{ "santiago", -14400, "<-04>4<-03>,M9.1.6/24,M4.1.6/24" },	/* 24:00, south */
		{ "late", 3600, "AAA-1BBB,M3.5.0/26,M10.5.0/27" },		/* over 24 h */
		{ "troll", 0, "<+00>0<+02>-2,M3.5.0/1,M10.5.0/3" },		/* 2 h DST */
		{ "dublin", 3600, "IST-1GMT0,M10.5.0,M3.5.0/1" },		/* negative DST */
		{ "julian", 3600, "AAA-1BBB,J60/2,J300/2" },
		{ "zerobased", 3600, "AAA-1BBB,59/2,299/2" },
		{ "hms", -12600, "<-0330>3:30<-0230>2:30,M3.2.0/0:30:15,M11.1.0/1:02" },
		{ "fixed", 28800, "<+08>-8" },
		{ "weekfive", 3600, "AAA-1BBB,M2.5.3/12,M12.5.6/23" },	/* last Wed of Feb */
	};
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		struct tz *z = footer_zone(f[i].name, f[i].utoff, f[i].footer, 1);

		if (z == NULL)
			continue;
		/* glibc applies POSIX rules only from 1970 on, so the oracle starts there. */
		check_oracle_file(z, f[i].name, 0, 8000000000LL);
		/* And against glibc reading the POSIX string itself. */
		T_EQ_INT(oracle_mismatches(z, f[i].footer, 300, 0, 8000000000LL), 0);
		T_EQ_INT(roundtrip_failures(z, 1000, -4000000000LL, 0), 0);
		tz_free(z);
	}
}

/* Jn never counts Feb 29; zero-based n does. 2028 is a leap year. */
static void
test_handmade_day_forms(void)
{
	struct tz *j = footer_zone("j2", 3600, "AAA-1BBB,J60/2,J300/2", 0);
	struct tz *n = footer_zone("n2", 3600, "AAA-1BBB,59/2,299/2", 0);
	struct tz *a = footer_zone("allyear", -18000, "EST5EDT,0/0,J365/25", 0);
	struct tz *u = footer_zone("usdefault", -18000, "EST5EDT", 0);

	if (j != NULL) {
		/* 02:00 at +01:00 on 2028-03-01 is 01:00Z. */
		T_EQ_INT(tz_offset_at(j, utc_ms(2028, 3, 1, 1, 0, 0) - 1), 3600);
		T_EQ_INT(tz_offset_at(j, utc_ms(2028, 3, 1, 1, 0, 0)), 7200);
		T_EQ_INT(tz_offset_at(j, utc_ms(2027, 3, 1, 1, 0, 0)), 7200);
	}
	if (n != NULL) {
		T_EQ_INT(tz_offset_at(n, utc_ms(2028, 2, 29, 1, 0, 0) - 1), 3600);
		T_EQ_INT(tz_offset_at(n, utc_ms(2028, 2, 29, 1, 0, 0)), 7200);
		T_EQ_INT(tz_offset_at(n, utc_ms(2027, 3, 1, 1, 0, 0) - 1), 3600);
		T_EQ_INT(tz_offset_at(n, utc_ms(2027, 3, 1, 1, 0, 0)), 7200);
	}
	if (a != NULL) {
		/* DST all year round (RFC 8536 3.3.1). */
		T_EQ_INT(tz_offset_at(a, utc_ms(2030, 1, 1, 5, 0, 0)), -14400);
		T_EQ_INT(tz_offset_at(a, utc_ms(2030, 12, 31, 12, 0, 0)), -14400);
		T_EQ_INT(tz_offset_at(a, utc_ms(2031, 1, 1, 4, 59, 59)), -14400);
	}
	if (u != NULL) {
		/* A DST name with no rule takes the US rule. */
		T_EQ_INT(tz_offset_at(u, utc_ms(2030, 7, 1, 0, 0, 0)), -14400);
		T_EQ_INT(tz_offset_at(u, utc_ms(2030, 3, 10, 7, 0, 0)), -14400);
		T_EQ_INT(tz_offset_at(u, utc_ms(2030, 3, 10, 7, 0, 0) - 1), -18000);
	}
	tz_free(j);
	tz_free(n);
	tz_free(a);
	tz_free(u);
}

static void
check_bad_bytes(const char *what, const unsigned char *p, size_t n)
{
	char *err = NULL;
	struct tz *z;

	write_bytes("bad", p, n);
	z = tz_load("bad", &err);
	if (z != NULL)
		fprintf(stderr, "accepted malformed TZif: %s\n", what);
	T_CHECK(z == NULL);
	T_CHECK(err != NULL && strstr(err, "unknown time zone \"bad\"") == err);
	free(err);
	tz_free(z);
}

static void
test_handmade_truncated(void)
{
	struct tzb b;
	size_t n;

	build(&b, &base_zone);
	/* Every proper prefix, from the empty file to one missing its last '\n'. */
	for (n = 0; n < b.n; n++)
		check_bad_bytes("truncated", b.b, n);
	write_bytes("whole", b.b, b.n);
	tz_free(load("whole"));
}

/* Offsets into base_zone's bytes: the 64-bit header follows the 38-byte v1 block. */
#define V2_HDR		(44 + 38)
#define V2_TIMES	(V2_HDR + 44)
#define V2_IDX		(V2_TIMES + 16)
#define V2_TYPES	(V2_IDX + 2)

static void
test_handmade_corrupt(void)
{
	static const struct {
		const char	*what;
		size_t		 at;
		unsigned char	 val;
	} pokes[] = {
		{ "magic", 0, 'X' }, { "version 5", 4, '5' }, { "second magic", V2_HDR + 3, 'g' },
		{ "second header says v1", V2_HDR + 4, 0 },
		{ "typecnt 0", V2_HDR + 39, 0 }, { "charcnt 0", V2_HDR + 43, 0 },
		{ "huge timecnt", V2_HDR + 32, 0xff }, { "leapcnt", V2_HDR + 31, 1 },
		{ "isstdcnt mismatch", V2_HDR + 27, 1 },
		{ "type index out of range", V2_IDX, 2 },
		{ "transitions not ascending", V2_TIMES + 8 + 4, 0x00 },
		{ "utoff out of range", V2_TYPES + 1, 0x7f }, { "isdst 2", V2_TYPES + 4, 2 },
		{ "desigidx past chars", V2_TYPES + 5, 12 },
		{ "isstd flag 2", V2_TYPES + 12 + 12, 2 },
		{ "footer lead", V2_TYPES + 12 + 12 + 4, 'x' },
	};
	struct tzb b, c;
	size_t i;

	build(&b, &base_zone);
	for (i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		c = b;
		T_CHECK(pokes[i].at < c.n && c.b[pokes[i].at] != pokes[i].val);
		c.b[pokes[i].at] = pokes[i].val;
		check_bad_bytes(pokes[i].what, c.b, c.n);
	}
	check_bad_bytes("text", (const unsigned char *)"hello, world\n", 13);
}

static void
test_handmade_bad_footers(void)
{
	static const char *bad[] = {
		"garbage", "AB-1", "<+01", "<+0 1>-1", "<+01>", "<+01>-25", "<+01>-1<+02>,M3.5.0",
		"<+01>-1<+02>,M13.1.0,M10.5.0", "<+01>-1<+02>,M3.6.0,M10.5.0",
		"<+01>-1<+02>,M3.5.7,M10.5.0", "<+01>-1<+02>,M0.5.0,M10.5.0",
		"<+01>-1<+02>,M3.5.0/168,M10.5.0", "<+01>-1<+02>,J0,J365", "<+01>-1<+02>,366,1",
		"<+01>-1<+02>,M3.5.0,M10.5.0junk", "<+01>-1<+02>,M3.5.0,M10.5.0/", "<+01>-1 ",
		"<+01>-1:60", "<+01>-1<+02>,M3.5.0/2:60,M10.5.0", "<+01>-1<+02>-",
		"<+01>-1<+02>,,", "<+01>-1<+02>,M3..0,M10.5.0", "\x7f\x01",
	};
	struct zdesc d = base_zone;
	struct tzb b;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d.footer = bad[i];
		build(&b, &d);
		check_bad_bytes(bad[i], b.b, b.n);
	}
	/* An empty footer is allowed: the last type then holds for ever. */
	d.footer = "";
	{
		struct tz *z = write_and_load("nofooter", &d);

		if (z != NULL)
			T_EQ_INT(tz_offset_at(z, utc_ms(2030, 7, 1, 0, 0, 0)), 3600);
		tz_free(z);
	}
}

/* Whatever the bytes, loading and using a zone must not crash (run under ASan). */
static void
poke_zone(const unsigned char *p, size_t n)
{
	struct tz *z;
	char *err = NULL;
	int k;

	write_bytes("fuzz", p, n);
	z = tz_load("fuzz", &err);
	T_CHECK((z == NULL) != (err == NULL));
	for (k = 0; z != NULL && k < 8; k++) {
		int64_t t = (int64_t)(rng() % 20000000000ULL) * 1000 - 5000000000000LL;

		(void)tz_offset_at(z, t);
		(void)tz_local_to_utc(z, t);
	}
	if (z != NULL) {
		(void)tz_offset_at(z, INT64_MIN);
		(void)tz_local_to_utc(z, INT64_MAX);
	}
	tz_free(z);
	free(err);
}

static void
test_handmade_fuzz(void)
{
	static const char alphabet[] = "0123456789<>+-,.:/JMABCabc";
	struct tzb b, c;
	struct zdesc d = base_zone;
	char footer[32];
	int i, k, flips;

	/* Valid but hostile: transitions at the very ends of int64. */
	d.trans[0] = INT64_MIN + 1;
	d.trans[1] = INT64_MAX - 1;
	build(&c, &d);
	poke_zone(c.b, c.n);
	d = base_zone;
	build(&b, &base_zone);
	for (i = 0; i < 1500; i++) {
		c = b;
		flips = 1 + (int)(rng() % 4);
		for (k = 0; k < flips; k++)
			c.b[rng() % c.n] = (unsigned char)rng();
		if (rng() % 4 == 0)
			c.n = (size_t)(rng() % c.n);
		poke_zone(c.b, c.n);
	}
	for (i = 0; i < 1500; i++) {
		size_t len = 1 + (size_t)(rng() % (sizeof(footer) - 1));

		for (k = 0; k < (int)len; k++)
			footer[k] = alphabet[rng() % (sizeof(alphabet) - 1)];
		footer[len] = '\0';
		d.footer = footer;
		build(&c, &d);
		poke_zone(c.b, c.n);
	}
}

static void
remove_tmp_dir(void)
{
	static const char *names[] = {
		"v2", "v1", "v3slim", "nuuk", "santiago", "late", "troll", "dublin", "julian",
		"zerobased", "hms", "fixed", "weekfive", "j2", "n2", "allyear", "usdefault",
		"bad", "whole", "nofooter", "fuzz",
	};
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmp_dir, names[i]);
		unlink(path);
	}
	T_CHECK(rmdir(tmp_dir) == 0);
}

int
main(void)
{
	const char *tzdir = getenv("TZDIR"), *tmp = getenv("TMPDIR");
	char saved[512] = "";

	if (tzdir != NULL && tzdir[0] != '\0')
		snprintf(saved, sizeof(saved), "%s", tzdir);
	snprintf(sys_dir, sizeof(sys_dir), "%s", saved[0] ? saved : "/usr/share/zoneinfo");
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/herald-tz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(tmp_dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	T_RUN(test_shanghai);
	T_RUN(test_new_york_2026);
	T_RUN(test_berlin);
	T_RUN(test_lord_howe);
	T_RUN(test_footer_2040);
	T_RUN(test_utc);
	T_RUN(test_bad_names);
	T_RUN(test_oracle_system_zones);
	T_RUN(test_local_to_utc_hourly);

	setenv("TZDIR", tmp_dir, 1);
	T_RUN(test_handmade_v1_v2);
	T_RUN(test_handmade_footers);
	T_RUN(test_handmade_day_forms);
	T_RUN(test_handmade_truncated);
	T_RUN(test_handmade_corrupt);
	T_RUN(test_handmade_bad_footers);
	T_RUN(test_handmade_fuzz);
	if (saved[0])
		setenv("TZDIR", saved, 1);
	else
		unsetenv("TZDIR");
	remove_tmp_dir();
	return t_report();
}
