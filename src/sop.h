/*
 * sop.h: the calendar math of a campaign, as pure functions. "Now" is always an
 * argument; the only I/O is what a struct tz did when it was loaded.
 *
 * Instants are int64_t Unix milliseconds UTC (names end in _ms). Calendar days are
 * int32_t days since 1970-01-01 (names end in _day), proleptic Gregorian.
 */
#ifndef HERALD_SOP_H
#define HERALD_SOP_H

#include <stdint.h>

#include "tz.h"

/* "YYYY-MM-DD", exactly that shape and a real date (0000..9999) -> *out_day. 0 / -1. */
int	 sop_parse_date(const char *s, int32_t *out_day);

/*
 * Writes `day` as "YYYY-MM-DD" into out. Only years 0000..9999 fit the shape:
 * earlier days are written as "0000-01-01" and later ones as "9999-12-31".
 */
void	 sop_format_date(int32_t day, char out[11]);

/* "HH:mm", 00:00..23:59, exactly two digits each -> minutes after midnight. 0 / -1. */
int	 sop_parse_hhmm(const char *s, int *out_minutes);

/*
 * Durations such as "90s", "15m", "2h30m", "7d", "1d12h", "500ms": units d, h, m,
 * s, ms in that order, each at most once, each after one or more digits; no sign,
 * no spaces, not empty. The total must be > 0 and fit in int64 ms. 0 / -1.
 */
int	 sop_parse_duration(const char *s, int64_t *out_ms);

/*
 * UTC ms of local date anchor_day + (day - 1) days at minute_of_day in zone z
 * (day 1 is the anchor date). Gaps and overlaps follow tz_local_to_utc: a time in
 * a gap moves forward by the gap, an ambiguous one takes its first occurrence.
 */
int64_t	 sop_due_ms(const struct tz *z, int32_t anchor_day, int day, int minute_of_day);

/*
 * Quiet hours: the local window [from, to) in minutes after midnight in z, spanning midnight
 * when from > to (22:00-08:00). If utc_ms falls inside it, returns the instant it ends: the
 * next `to` on z's wall clock, DST-correct (a `to` inside a gap moves forward by the gap; in
 * a fall-back overlap, the occurrence after utc_ms). Else returns 0.
 */
int64_t	 sop_quiet_end(const struct tz *z, int from, int to, int64_t utc_ms);

/* UTC ms of 00:00 local on `day` in z (a midnight inside a gap moves forward). */
int64_t	 sop_day_start_ms(const struct tz *z, int32_t day);

/* The local calendar day that instant utc_ms falls on in z (clamped to int32). */
int32_t	 sop_local_day(const struct tz *z, int64_t utc_ms);

/*
 * An ISO 8601 instant with an offset -> UTC ms: "2026-11-23T10:00:00+08:00",
 * "2026-11-23T02:00:00Z", "2026-11-23T10:00:00.250+08:00", "2026-11-23T10:00+08:00".
 * Also accepted: 't' or ' ' for 'T', 'z' for 'Z', 1..9 fraction digits (ms kept,
 * the rest truncated), offsets as +HH:MM, +HHMM, +HH or +HH:MM:SS. Or plain epoch
 * milliseconds ("1795000000000", optionally with a leading '-'). A time without an
 * offset is rejected: it would be ambiguous. 0 / -1.
 */
int	 sop_parse_instant(const char *s, int64_t *out_ms);

/*
 * Writes utc_ms as ISO 8601 at the given offset (seconds east of UTC):
 * "2026-11-23T10:00:00+08:00"; offset 0 gives "+00:00"; milliseconds appear only
 * when non-zero ("...T10:00:00.250+08:00"); an offset with seconds (old LMT
 * offsets) is written +HH:MM:SS. Every int64 instant fits in out.
 */
void	 sop_format_instant(int64_t utc_ms, int32_t offset_s, char out[40]);

/*
 * Days since 1970-01-01 of y-m-d, proleptic Gregorian; m is 1..12, d is not
 * checked against the month (d = 0 is the last day of the previous month).
 * Years whose days do not fit int32 (beyond about +-5.8 million) are clamped.
 */
int32_t	 sop_days_from_civil(int y, unsigned m, unsigned d);

/* The inverse, for any int32 day: *m is 1..12, *d is 1..31. */
void	 sop_civil_from_days(int32_t day, int *y, unsigned *m, unsigned *d);

#endif
