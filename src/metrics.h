/*
 * metrics: the scheduler's counters, gauges and histograms, per channel, in memory. The
 * scheduler thread records (a few relaxed atomic adds per call, no lock, no allocation); any
 * thread may read them for an exposition at the same time. Values count from process start,
 * as Prometheus counters do.
 *
 * Channels are found by name; the first record of a new name registers it (up to
 * METRICS_MAX_CHANNELS; past that, records for new names are dropped).
 */
#ifndef HERALD_METRICS_H
#define HERALD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define METRICS_MAX_CHANNELS 256

/* herald_deliveries_total{outcome}: how a delivery's attempt, or the claim, settled it. */
enum metrics_outcome {
	METRICS_SENT,
	METRICS_FAILED,
	METRICS_RETRIED,      /* a retry was scheduled */
	METRICS_DEFERRED,
	METRICS_EXPIRED,
	METRICS_UNKNOWN,
	METRICS_SUPPRESSED,
	METRICS_N_OUTCOMES
};

/* The outcome a result's delivery state counts as ("retrying" is retried), or -1 for a state
   that settles nothing (a suspended channel's "pending"). */
int metrics_outcome_of(const char *state);

/* Registers channel `name` so its series exist (at zero) before anything happens on it. */
void metrics_channel(const char *name);
/* n deliveries of channel settled with outcome. */
void metrics_delivery(const char *channel, enum metrics_outcome outcome, int64_t n);
/* The same, by delivery state (metrics_outcome_of); states that settle nothing are ignored. */
void metrics_delivery_state(const char *channel, const char *state, int64_t n);
/* A request of channel left; lag_ms is its start minus a delivery's due time, observed once
   per delivery it carries (call it for each; in_flight moves once, with first = 1). */
void metrics_request_started(const char *channel, int first, int64_t lag_ms);
/* A request of channel finished: HTTP status (0 = no answer), the transport's error text when
   there was none, and its duration. */
void metrics_request_done(const char *channel, long status, const char *error,
                          int64_t duration_ms);

/* The scheduler loop is alive: called once per iteration. */
void metrics_heartbeat(void);
/* Milliseconds (monotonic) since the last heartbeat; -1 before the first. */
int64_t metrics_heartbeat_age_ms(void);

/* Appends the in-memory metrics (deliveries, requests, durations, lag, in flight) and the
   process_* metrics to out, in the Prometheus text format 0.0.4. 0 / -1 (out of memory). */
int metrics_write(struct buf *out);
/* Appends a label value escaped as the text format wants (\\, \", \n). 0 / -1. */
int metrics_escape(struct buf *out, const char *value);

#endif
