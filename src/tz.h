/*
 * tz.h: IANA time zones read straight from TZif files (RFC 8536), so that wall-clock
 * math never touches the process-global TZ / localtime state (the daemon is threaded).
 *
 * Instants are int64_t Unix milliseconds UTC. "Local" milliseconds count from
 * 1970-01-01T00:00 on the zone's wall clock, as if that wall clock were UTC.
 */
#ifndef HERALD_TZ_H
#define HERALD_TZ_H

#include <stdint.h>

/* Opaque and immutable once loaded: one zone may be shared between threads. */
struct tz;

/*
 * Loads zone `name` ("Asia/Shanghai", "America/New_York", "UTC") from the TZif file
 * under $TZDIR, or /usr/share/zoneinfo when TZDIR is unset or empty. Names that are
 * empty, absolute, contain "..", hold characters outside [A-Za-z0-9/_+-.], or name
 * something that is not a valid TZif file (version 1 to 4) are rejected. "UTC" and
 * "Etc/UTC" work even when no file for them exists. Files that carry leap-second
 * records ("right/" zones) are rejected: their transition times are not POSIX time.
 * Returns a new zone the caller frees with tz_free, or NULL with *err set to a
 * malloc'd message beginning `unknown time zone "NAME"` (caller frees; err may be NULL).
 */
struct tz	*tz_load(const char *name, char **err);

/* Frees a zone from tz_load. NULL is fine. */
void		 tz_free(struct tz *z);

/* The name the zone was loaded under; valid until tz_free. */
const char	*tz_name(const struct tz *z);

/*
 * The UTC offset in seconds (east of Greenwich positive) in force at `utc_ms`.
 * Past the last transition in the file the POSIX TZ footer decides; before the
 * first, the file's first local time type (RFC 8536 section 3.2).
 */
int32_t		 tz_offset_at(const struct tz *z, int64_t utc_ms);

/*
 * Converts local wall-clock ms to UTC ms. A local time that does not exist (a
 * DST gap) moves forward by the gap: 02:30 in a one-hour spring-forward gap is
 * read in the offset before the gap, so it lands on 03:30 new local time. An
 * ambiguous local time (a fall-back overlap) takes its first occurrence, the
 * earlier UTC instant. Inputs beyond about +-36 million years are converted with
 * the offset in force at the input itself, without gap or overlap handling.
 */
int64_t		 tz_local_to_utc(const struct tz *z, int64_t local_ms);

#endif
