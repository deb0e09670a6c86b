/*
 * sop.c: owns the calendar math of a campaign: parsing and formatting dates,
 * times of day, durations and instants, and turning (anchor day, day N, HH:mm,
 * zone) into a UTC instant. Pure functions; zone rules come from tz.c.
 *
 * Civil conversions run in int64 inside so that every int32 day and every int64
 * millisecond instant has a calendar date without overflow.
 */
#include <limits.h>
#include <string.h>

#include "clock.h"
#include "civil.h"
#include "sop.h"


int32_t
sop_days_from_civil(int y, unsigned m, unsigned d)
{
	int64_t months = (int64_t)m - 1;
	int64_t days;

	days = civil_days_from_ymd((int64_t)y + civil_floor_div(months, 12),
	    (int)civil_floor_mod(months, 12) + 1, (int64_t)d);
	if (days > INT32_MAX)
		return INT32_MAX;
	if (days < INT32_MIN)
		return INT32_MIN;
	return (int32_t)days;
}

void
sop_civil_from_days(int32_t day, int *y, unsigned *m, unsigned *d)
{
	int64_t yy;
	int mm, dd;

	civil_ymd_from_days(day, &yy, &mm, &dd);
	*y = (int)yy;
	*m = (unsigned)mm;
	*d = (unsigned)dd;
}

/* Exactly n ASCII digits at s. */
static int
digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Writes v (>= 0) zero-padded to at least width digits; returns the end. */
static char *
put_num(char *p, int64_t v, int width)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n < width)
		tmp[n++] = '0';
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

int
sop_parse_date(const char *s, int32_t *out_day)
{
	int y, m, d;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    digits(s, 4, &y) == -1 || digits(s + 5, 2, &m) == -1 || digits(s + 8, 2, &d) == -1)
		return -1;
	if (m < 1 || m > 12 || d < 1 || d > civil_month_days(y, m))
		return -1;
	*out_day = (int32_t)civil_days_from_ymd(y, m, d);
	return 0;
}

void
sop_format_date(int32_t day, char out[11])
{
	int64_t y;
	int m, d;
	char *p;

	/* -719528 is 0000-01-01 and 2932896 is 9999-12-31: the shape holds 4-digit years. */
	if (day < -719528)
		day = -719528;
	if (day > 2932896)
		day = 2932896;
	civil_ymd_from_days(day, &y, &m, &d);
	p = put_num(out, y, 4);
	*p++ = '-';
	p = put_num(p, m, 2);
	*p++ = '-';
	p = put_num(p, d, 2);
	*p = '\0';
}

int
sop_parse_hhmm(const char *s, int *out_minutes)
{
	int h, m;

	if (s == NULL || strlen(s) != 5 || s[2] != ':' || digits(s, 2, &h) == -1 ||
	    digits(s + 3, 2, &m) == -1 || h > 23 || m > 59)
		return -1;
	*out_minutes = h * 60 + m;
	return 0;
}

/* The unit at *sp: its rank in the required order (d h m s ms) and size in ms. */
static int
duration_unit(const char **sp, int *rank, int64_t *unit_ms)
{
	static const struct {
		const char	*name;	/* longest first where one prefixes another */
		int64_t		 ms;
		int		 rank;
	} units[] = {
		{ "ms", 1, 4 }, { "d", 86400000, 0 }, { "h", 3600000, 1 },
		{ "m", 60000, 2 }, { "s", 1000, 3 },
	};
	size_t i, n;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		n = strlen(units[i].name);
		if (strncmp(*sp, units[i].name, n) == 0) {
			*sp += n;
			*rank = units[i].rank;
			*unit_ms = units[i].ms;
			return 0;
		}
	}
	return -1;
}

int
sop_parse_duration(const char *s, int64_t *out_ms)
{
	int64_t total = 0, v, unit_ms, part;
	int rank, last_rank = -1;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s != '\0') {
		if (*s < '0' || *s > '9')
			return -1;
		for (v = 0; *s >= '0' && *s <= '9'; s++) {
			if (v > (INT64_MAX - (*s - '0')) / 10)
				return -1;
			v = v * 10 + (*s - '0');
		}
		if (duration_unit(&s, &rank, &unit_ms) == -1 || rank <= last_rank)
			return -1;
		last_rank = rank;
		if (__builtin_mul_overflow(v, unit_ms, &part) ||
		    __builtin_add_overflow(total, part, &total))
			return -1;
	}
	if (total <= 0)
		return -1;
	*out_ms = total;
	return 0;
}

int64_t
sop_due_ms(const struct tz *z, int32_t anchor_day, int day, int minute_of_day)
{
	int64_t local_day = (int64_t)anchor_day + day - 1;

	return tz_local_to_utc(z, local_day * DAY_MS + (int64_t)minute_of_day * 60000);
}

int64_t
sop_quiet_end(const struct tz *z, int from, int to, int64_t utc_ms)
{
	int64_t offset_ms = (int64_t)tz_offset_at(z, utc_ms) * 1000;
	int64_t local = utc_ms + offset_ms;
	int64_t day = civil_floor_div(local, DAY_MS);
	int64_t minute = civil_floor_mod(local, DAY_MS) / 60000;
	int64_t end_local, end;

	if (from < to ? minute < from || minute >= to : minute < from && minute >= to)
		return 0;
	/* Across midnight, the evening part ends on the next day. */
	if (from > to && minute >= from)
		day++;
	end_local = day * DAY_MS + (int64_t)to * 60000;
	end = tz_local_to_utc(z, end_local);
	/* A wall time seen twice (fall-back) converts to its first occurrence; inside the
	   repeated hour the window ends at the second, in the offset in force now. */
	if (end <= utc_ms)
		end = end_local - offset_ms;
	return end;
}

int64_t
sop_day_start_ms(const struct tz *z, int32_t day)
{
	return tz_local_to_utc(z, (int64_t)day * DAY_MS);
}

int32_t
sop_local_day(const struct tz *z, int64_t utc_ms)
{
	int64_t day = civil_floor_div(utc_ms, DAY_MS);
	int64_t rem = civil_floor_mod(utc_ms, DAY_MS) + (int64_t)tz_offset_at(z, utc_ms) * 1000;

	day += civil_floor_div(rem, DAY_MS);
	if (day > INT32_MAX)
		return INT32_MAX;
	if (day < INT32_MIN)
		return INT32_MIN;
	return (int32_t)day;
}

/* "[-]digits" and nothing else, within int64. */
static int
parse_epoch_ms(const char *s, int64_t *out_ms)
{
	int neg = *s == '-';
	int64_t v = 0;

	if (neg)
		s++;
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - (*s - '0')) / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out_ms = neg ? -v : v;
	return 0;
}

/* "Z", "+HH", "+HH:MM", "+HHMM" or "+HH:MM:SS" (or '-') ending the string. */
static int
parse_offset(const char *s, int32_t *out_s)
{
	int sign, h, m = 0, sec = 0;

	if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
		*out_s = 0;
		return 0;
	}
	if (*s != '+' && *s != '-')
		return -1;
	sign = *s++ == '-' ? -1 : 1;
	if (digits(s, 2, &h) == -1)
		return -1;
	s += 2;
	if (*s == ':' && digits(s + 1, 2, &m) == 0) {
		s += 3;
		if (*s == ':' && digits(s + 1, 2, &sec) == 0)
			s += 3;
	} else if (digits(s, 2, &m) == 0)
		s += 2;
	if (*s != '\0' || h > 23 || m > 59 || sec > 59)
		return -1;
	*out_s = sign * (h * 3600 + m * 60 + sec);
	return 0;
}

/* ":SS" and ".fff…" after HH:MM, if present; *sp is left at the offset. */
static int
parse_seconds(const char **sp, int *sec, int *ms)
{
	const char *s = *sp;
	int n = 0;

	*sec = 0;
	*ms = 0;
	if (*s != ':')
		return 0;
	if (digits(s + 1, 2, sec) == -1 || *sec > 59)
		return -1;
	s += 3;
	if (*s == '.') {
		/* Keep milliseconds; further digits are truncated, not rounded. */
		for (s++; *s >= '0' && *s <= '9'; s++, n++)
			if (n < 3)
				*ms = *ms * 10 + (*s - '0');
		if (n == 0 || n > 9)
			return -1;
		for (; n < 3; n++)
			*ms *= 10;
	}
	*sp = s;
	return 0;
}

static int
parse_iso(const char *s, int64_t *out_ms)
{
	char date[11];
	int32_t day, off;
	int h, m, sec, ms;

	if (strlen(s) < 17)
		return -1;
	memcpy(date, s, 10);
	date[10] = '\0';
	if (sop_parse_date(date, &day) == -1)
		return -1;
	s += 10;
	if (*s != 'T' && *s != 't' && *s != ' ')
		return -1;
	s++;
	if (digits(s, 2, &h) == -1 || s[2] != ':' || digits(s + 3, 2, &m) == -1 ||
	    h > 23 || m > 59)
		return -1;
	s += 5;
	if (parse_seconds(&s, &sec, &ms) == -1 || parse_offset(s, &off) == -1)
		return -1;
	*out_ms = (int64_t)day * DAY_MS + (int64_t)h * 3600000 + (int64_t)m * 60000 +
	    (int64_t)sec * 1000 + ms - (int64_t)off * 1000;
	return 0;
}

int
sop_parse_instant(const char *s, int64_t *out_ms)
{
	size_t i;

	if (s == NULL || *s == '\0')
		return -1;
	i = s[0] == '-' ? 1 : 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (s[i] == '\0')
		return parse_epoch_ms(s, out_ms);
	return parse_iso(s, out_ms);
}

void
sop_format_instant(int64_t utc_ms, int32_t offset_s, char out[40])
{
	int64_t day, rem, y, a;
	int m, d;
	char *p = out;

	/* Clamped so the text always fits; a real offset is within +-26 h anyway. */
	if (offset_s > 359999)
		offset_s = 359999;
	if (offset_s < -359999)
		offset_s = -359999;
	day = civil_floor_div(utc_ms, DAY_MS);
	rem = civil_floor_mod(utc_ms, DAY_MS) + (int64_t)offset_s * 1000;
	day += civil_floor_div(rem, DAY_MS);
	rem = civil_floor_mod(rem, DAY_MS);
	civil_ymd_from_days(day, &y, &m, &d);
	if (y < 0)
		*p++ = '-';
	p = put_num(p, y < 0 ? -y : y, 4);
	*p++ = '-';
	p = put_num(p, m, 2);
	*p++ = '-';
	p = put_num(p, d, 2);
	*p++ = 'T';
	p = put_num(p, rem / 3600000, 2);
	*p++ = ':';
	p = put_num(p, rem / 60000 % 60, 2);
	*p++ = ':';
	p = put_num(p, rem / 1000 % 60, 2);
	if (rem % 1000 != 0) {
		*p++ = '.';
		p = put_num(p, rem % 1000, 3);
	}
	*p++ = offset_s < 0 ? '-' : '+';
	a = offset_s < 0 ? -(int64_t)offset_s : offset_s;
	p = put_num(p, a / 3600, 2);
	*p++ = ':';
	p = put_num(p, a / 60 % 60, 2);
	if (a % 60 != 0) {
		*p++ = ':';
		p = put_num(p, a % 60, 2);
	}
	*p = '\0';
}
