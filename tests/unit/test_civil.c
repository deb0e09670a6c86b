/*
 * test_civil.c: calendar arithmetic. The day walk counts dates one at a time with
 * civil_month_days alone, so it checks the era formulas against nothing but the
 * leap rule, which is checked on its own against known years.
 */
#include <stdint.h>

#include "civil.h"
#include "t.h"

#define WALK_DAYS	4000000	/* about 10950 years each way from 1970 */

static void
test_floor_div_mod(void)
{
	static const struct {
		int64_t	a, b, q, r;
	} cases[] = {
		{ 7, 2, 3, 1 }, { -7, 2, -4, 1 }, { 7, -2, -4, -1 }, { -7, -2, 3, -1 },
		{ -8, 4, -2, 0 }, { 0, 5, 0, 0 }, { -1, 7, -1, 6 }, { -1, 86400000, -1, 86399999 },
		{ -86400000, 86400000, -1, 0 }, { -86400001, 86400000, -2, 86399999 },
		{ INT64_MIN, 1000, INT64_MIN / 1000 - 1, 192 },
		{ INT64_MAX, 1000, INT64_MAX / 1000, 807 },
		{ INT64_MIN, 1, INT64_MIN, 0 },
	};
	size_t i;
	int k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		T_EQ_INT(civil_floor_div(cases[i].a, cases[i].b), cases[i].q);
		T_EQ_INT(civil_floor_mod(cases[i].a, cases[i].b), cases[i].r);
	}
	/* q * b + r == a with r in [0, b) for any a and positive b. */
	for (k = 0; k < 100000; k++) {
		int64_t a = (int64_t)(rng() >> 2) - ((int64_t)1 << 61);
		int64_t b = (int64_t)(rng() % 1000000) + 1;
		int64_t q = civil_floor_div(a, b), r = civil_floor_mod(a, b);

		T_CHECK(r >= 0 && r < b);
		T_CHECK(q * b + r == a);
		T_CHECK(civil_floor_div(-a, -b) == q && civil_floor_mod(-a, -b) == -r);
	}
}

static void
test_leap(void)
{
	T_EQ_INT(civil_is_leap(1900), 0);
	T_EQ_INT(civil_is_leap(2000), 1);
	T_EQ_INT(civil_is_leap(2024), 1);
	T_EQ_INT(civil_is_leap(2100), 0);
	T_EQ_INT(civil_is_leap(2023), 0);
	T_EQ_INT(civil_is_leap(1600), 1);
	T_EQ_INT(civil_is_leap(0), 1);
	T_EQ_INT(civil_is_leap(-1), 0);
	T_EQ_INT(civil_is_leap(-4), 1);
	T_EQ_INT(civil_is_leap(-100), 0);
	T_EQ_INT(civil_is_leap(-400), 1);
	T_EQ_INT(civil_month_days(1900, 2), 28);
	T_EQ_INT(civil_month_days(2000, 2), 29);
	T_EQ_INT(civil_month_days(2024, 2), 29);
	T_EQ_INT(civil_month_days(2100, 2), 28);
	T_EQ_INT(civil_month_days(2023, 1), 31);
	T_EQ_INT(civil_month_days(2023, 4), 30);
	T_EQ_INT(civil_month_days(2023, 12), 31);
	/* Feb 29 exists exactly in leap years; Mar 1 follows Feb 28 otherwise. */
	T_EQ_INT(civil_days_from_ymd(2000, 3, 1) - civil_days_from_ymd(2000, 2, 28), 2);
	T_EQ_INT(civil_days_from_ymd(2024, 3, 1) - civil_days_from_ymd(2024, 2, 28), 2);
	T_EQ_INT(civil_days_from_ymd(1900, 3, 1) - civil_days_from_ymd(1900, 2, 28), 1);
	T_EQ_INT(civil_days_from_ymd(2100, 3, 1) - civil_days_from_ymd(2100, 2, 28), 1);
	T_EQ_INT(civil_days_from_ymd(2001, 1, 1) - civil_days_from_ymd(2000, 1, 1), 366);
	T_EQ_INT(civil_days_from_ymd(1901, 1, 1) - civil_days_from_ymd(1900, 1, 1), 365);
	T_EQ_INT(civil_days_from_ymd(2101, 1, 1) - civil_days_from_ymd(2100, 1, 1), 365);
}

static void
check_ymd(int64_t days, int64_t y, int m, int d)
{
	int64_t gy;
	int gm, gd;

	civil_ymd_from_days(days, &gy, &gm, &gd);
	T_EQ_INT(gy, y);
	T_EQ_INT(gm, m);
	T_EQ_INT(gd, d);
	T_EQ_INT(civil_year_from_days(days), y);
	T_EQ_INT(civil_days_from_ymd(y, m, d), days);
}

static void
test_known_days(void)
{
	check_ymd(0, 1970, 1, 1);
	check_ymd(-1, 1969, 12, 31);
	check_ymd(11016, 2000, 2, 29);
	check_ymd(11017, 2000, 3, 1);
	check_ymd(19782, 2024, 2, 29);
	check_ymd(-25508, 1900, 3, 1);
	check_ymd(47541, 2100, 3, 1);
	check_ymd(-719468, 0, 3, 1);
	check_ymd(-719528, 0, 1, 1);
	check_ymd(-719529, -1, 12, 31);
	check_ymd(2932896, 9999, 12, 31);
	check_ymd(INT32_MAX, 5881580, 7, 11);
	check_ymd(INT32_MIN, -5877641, 6, 23);
}

/* Walks day by day from 1970-01-01 both ways, counting dates by hand. */
static void
test_walk(void)
{
	int64_t i, y = 1970, gy;
	int m = 1, d = 1, gm, gd, bad = 0;

	for (i = 0; i <= WALK_DAYS && bad < 5; i++) {
		civil_ymd_from_days(i, &gy, &gm, &gd);
		if (gy != y || gm != m || gd != d || civil_days_from_ymd(y, m, d) != i) {
			fprintf(stderr, "day %lld: got %lld-%d-%d, want %lld-%d-%d\n", (long long)i,
			    (long long)gy, gm, gd, (long long)y, m, d);
			bad++;
		}
		if (++d > civil_month_days(y, m)) {
			d = 1;
			if (++m > 12) {
				m = 1;
				y++;
			}
		}
	}
	y = 1970;
	m = 1;
	d = 1;
	for (i = 0; i >= -WALK_DAYS && bad < 5; i--) {
		civil_ymd_from_days(i, &gy, &gm, &gd);
		if (gy != y || gm != m || gd != d || civil_days_from_ymd(y, m, d) != i) {
			fprintf(stderr, "day %lld: got %lld-%d-%d, want %lld-%d-%d\n", (long long)i,
			    (long long)gy, gm, gd, (long long)y, m, d);
			bad++;
		}
		if (--d < 1) {
			if (--m < 1) {
				m = 12;
				y--;
			}
			d = civil_month_days(y, m);
		}
	}
	T_EQ_INT(bad, 0);
}

/* Random days far from the epoch: round trips, and the calendar repeats every 400 years. */
static void
test_wide_round_trip(void)
{
	int64_t days, y, y2;
	int k, m, d, m2, d2;

	for (k = 0; k < 200000; k++) {
		/* |days| < 2^50 keeps y within the +-10^15 years civil_days_from_ymd takes. */
		days = (int64_t)(rng() >> 13) - ((int64_t)1 << 50);
		civil_ymd_from_days(days, &y, &m, &d);
		T_CHECK(m >= 1 && m <= 12 && d >= 1 && d <= civil_month_days(y, m));
		T_CHECK(civil_days_from_ymd(y, m, d) == days);
		civil_ymd_from_days(days + 146097, &y2, &m2, &d2);
		T_CHECK(y2 == y + 400 && m2 == m && d2 == d);
	}
}

/* Both ends of the documented ranges: no overflow (the sanitizer build checks) and sane output. */
static void
test_extremes(void)
{
	int64_t ends[] = { INT64_MIN, INT64_MIN + 1, INT64_MAX - 719468, INT64_MAX - 719469 };
	int64_t y, big = (int64_t)1 << 62, lim = 1000000000000000;
	int m, d;
	size_t i;

	for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		civil_ymd_from_days(ends[i], &y, &m, &d);
		T_CHECK(m >= 1 && m <= 12 && d >= 1 && d <= civil_month_days(y, m));
		T_EQ_INT(civil_year_from_days(ends[i]), y);
	}
	civil_ymd_from_days(INT64_MIN, &y, &m, &d);
	T_CHECK(y < -lim * 10);
	civil_ymd_from_days(INT64_MAX - 719468, &y, &m, &d);
	T_CHECK(y > lim * 10);

	/* Round trips at +-10^15 years. */
	for (i = 0; i < 2; i++) {
		int64_t yy = i == 0 ? lim : -lim;
		int64_t day = civil_days_from_ymd(yy, 12, 31);

		civil_ymd_from_days(day, &y, &m, &d);
		T_CHECK(y == yy && m == 12 && d == 31);
		day = civil_days_from_ymd(yy, 1, 1);
		civil_ymd_from_days(day, &y, &m, &d);
		T_CHECK(y == yy && m == 1 && d == 1);
	}
	/* A day of the month only counts on from the 1st, even at 2^62. */
	T_EQ_INT(civil_days_from_ymd(lim, 12, big) - civil_days_from_ymd(lim, 12, 1), big - 1);
	T_EQ_INT(civil_days_from_ymd(-lim, 1, -big) - civil_days_from_ymd(-lim, 1, 1),
	    -big - 1);
}

static void
test_day_overflow_in_month(void)
{
	T_EQ_INT(civil_days_from_ymd(2024, 3, 0), civil_days_from_ymd(2024, 2, 29));
	T_EQ_INT(civil_days_from_ymd(2023, 3, 0), civil_days_from_ymd(2023, 2, 28));
	T_EQ_INT(civil_days_from_ymd(2023, 1, 32), civil_days_from_ymd(2023, 2, 1));
	T_EQ_INT(civil_days_from_ymd(2023, 12, 32), civil_days_from_ymd(2024, 1, 1));
	T_EQ_INT(civil_days_from_ymd(1970, 1, 366), civil_days_from_ymd(1971, 1, 1));
}

int
main(void)
{
	T_RUN(test_floor_div_mod);
	T_RUN(test_leap);
	T_RUN(test_known_days);
	T_RUN(test_walk);
	T_RUN(test_wide_round_trip);
	T_RUN(test_extremes);
	T_RUN(test_day_overflow_in_month);
	return t_report();
}
