/*
 * clock: the one place Herald reads time. Wall time is Unix ms UTC; monotonic time is for
 * waits and durations only and never stored.
 */
#ifndef HERALD_CLOCK_H
#define HERALD_CLOCK_H

#include <stdint.h>

/* Durations in milliseconds, the unit of every *_ms value in Herald. */
#define SECOND_MS INT64_C(1000)
#define MINUTE_MS (60 * SECOND_MS)
#define HOUR_MS (60 * MINUTE_MS)
#define DAY_MS (24 * HOUR_MS)
#define WEEK_MS (7 * DAY_MS)

/* Wall clock, Unix milliseconds UTC. */
int64_t clock_now_ms(void);
/* Monotonic clock, milliseconds from an arbitrary origin. */
int64_t clock_mono_ms(void);
/* Sleeps ms milliseconds (signals do not cut it short). */
void clock_sleep_ms(int ms);

#endif
