/*
 * civil: calendar arithmetic on days since 1970-01-01, proleptic Gregorian, pure
 * functions. Years are astronomical (year 0 exists, -1 is 2 BC); months are 1..12.
 *
 * Everything is int64 so that any int64 millisecond instant, turned into a day,
 * still has a date. The ranges below are where no intermediate can overflow.
 */
#ifndef HERALD_CIVIL_H
#define HERALD_CIVIL_H

#include <stdint.h>

/*
 * a / b rounded toward minus infinity, and the matching remainder, which has
 * the sign of b (so civil_floor_mod(-1, 7) is 6). b must not be 0, and
 * a == INT64_MIN with b == -1 is not allowed.
 */
int64_t	 civil_floor_div(int64_t a, int64_t b);
int64_t	 civil_floor_mod(int64_t a, int64_t b);

/* 1 if y is a leap year (every 4th, except centuries not divisible by 400), else 0. */
int	 civil_is_leap(int64_t y);

/* Days in month m (1..12) of year y: 28..31. */
int	 civil_month_days(int64_t y, int m);

/*
 * Days from 1970-01-01 to y-m-d, m in 1..12. d is not checked against the month,
 * it just counts on from the 1st: d = 0 is the last day of the month before and
 * d = 32 lies in the month after. Safe for |y| <= 10^15 and |d| <= 2^62.
 */
int64_t	 civil_days_from_ymd(int64_t y, int m, int64_t d);

/*
 * The date of day `days` since 1970-01-01: *y, *m (1..12), *d (1..31). Safe for
 * days from INT64_MIN to INT64_MAX - 719468. On real dates inside both ranges this
 * and civil_days_from_ymd are exact inverses.
 */
void	 civil_ymd_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Just the year of civil_ymd_from_days, over the same range. */
int64_t	 civil_year_from_days(int64_t days);

#endif
