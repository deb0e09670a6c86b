/*
 * clock: the one place Herald reads time. Wall time is Unix ms UTC; monotonic time is for
 * waits and durations only and never stored.
 */
#ifndef HERALD_CLOCK_H
#define HERALD_CLOCK_H

#include <stdint.h>

/* Wall clock, Unix milliseconds UTC. */
int64_t clock_now_ms(void);
/* Monotonic clock, milliseconds from an arbitrary origin. */
int64_t clock_mono_ms(void);
/* Sleeps ms milliseconds (signals do not cut it short). */
void clock_sleep_ms(int ms);

#endif
