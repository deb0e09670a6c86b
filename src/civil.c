/*
 * civil.c: the proleptic Gregorian calendar as plain integer arithmetic. Years are
 * counted from March 1 so that the leap day comes last: then every 400-year era is
 * the same 146097 days and a date splits into era, year of era and day of year
 * without tables beyond the month starts.
 */
#include "civil.h"

/* 719468 days from 0000-03-01 to 1970-01-01. */
#define EPOCH_SHIFT	719468
#define ERA_DAYS	146097

/* Cumulative days before each month of a year that starts on March 1. */
static const int march_month_start[12] = {
	0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337
};

int64_t
civil_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

int64_t
civil_floor_mod(int64_t a, int64_t b)
{
	int64_t r = a % b;

	if (r != 0 && ((r < 0) != (b < 0)))
		r += b;
	return r;
}

int
civil_is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
civil_month_days(int64_t y, int m)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && civil_is_leap(y) ? 29 : len[m - 1];
}

int64_t
civil_days_from_ymd(int64_t y, int m, int64_t d)
{
	int64_t ym = m > 2 ? y : y - 1;
	int mi = m > 2 ? m - 3 : m + 9;
	int64_t era = civil_floor_div(ym, 400);
	int64_t r = ym - era * 400;

	return era * ERA_DAYS + r * 365 + r / 4 - r / 100 + march_month_start[mi] + d - 1 -
	    EPOCH_SHIFT;
}

void
civil_ymd_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + EPOCH_SHIFT;
	int64_t era = civil_floor_div(z, ERA_DAYS);
	int64_t doe = z - era * ERA_DAYS;
	int64_t c, f, yr;
	int mi;

	/* Centuries, then 4-year blocks, then years; the last of each is one day longer. */
	c = doe / 36524;
	if (c == 4)
		c = 3;
	doe -= c * 36524;
	f = doe / 1461;
	doe -= f * 1461;
	yr = doe / 365;
	if (yr == 4)
		yr = 3;
	doe -= yr * 365;
	for (mi = 11; march_month_start[mi] > doe; mi--)
		;
	*d = (int)(doe - march_month_start[mi]) + 1;
	*m = mi < 10 ? mi + 3 : mi - 9;
	/* January and February close the March-based year, so they belong to the next. */
	*y = era * 400 + c * 100 + f * 4 + yr + (*m <= 2 ? 1 : 0);
}

int64_t
civil_year_from_days(int64_t days)
{
	int64_t y;
	int m, d;

	civil_ymd_from_days(days, &y, &m, &d);
	return y;
}
