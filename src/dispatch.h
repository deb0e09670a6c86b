/*
 * dispatch: between the store and the wire. It turns claimed deliveries into provider
 * requests (rendering placeholders, batching as the provider batches, keeping each channel's
 * max_in_flight and rate_per_sec), and provider answers into results for the store
 * (verdicts, exponential backoff with jitter, the attempt budget). Used by the scheduler
 * thread only.
 */
#ifndef HERALD_DISPATCH_H
#define HERALD_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "results.h"
#include "store.h"

struct dispatch;

/* Opens every channel's provider state. NULL with *err. The config must outlive it. */
struct dispatch *dispatch_new(const struct config *cfg, char **err);
void dispatch_free(struct dispatch *d);  /* NULL ok; nothing may be in flight */

/* The claim callbacks (struct store_claim_cb) bound to d. */
struct store_claim_cb dispatch_claim_cb(struct dispatch *d);
/* Resets the per-claim bookkeeping; call before each store_claim. */
void dispatch_claim_begin(struct dispatch *d);

/*
 * Takes ownership of claimed jobs: renders and batches them into requests, queued per
 * channel. Jobs that cannot go (a placeholder lost its value, a build error) become results
 * at once.
 */
void dispatch_add(struct dispatch *d, struct store_job *jobs, size_t n, int64_t now_ms,
                  struct results *out);
/* Starts queued requests as each channel's limits allow. Returns ms until a rate limit lets
   the next one go (-1 when nothing waits on a rate). */
int64_t dispatch_pump(struct dispatch *d, struct http *h, int64_t now_ms, struct results *out);
/* Judges a finished request and appends its results. */
void dispatch_finish(struct dispatch *d, struct http_result *hr, int64_t now_ms,
                     struct results *out);
/* Frees a request abandoned in flight (the ctx http_free hands back). */
void dispatch_drop(void *flight);
/* Drops every request not yet started, recording nothing: our lease ran out and another
   runner has settled those claims. Returns how many deliveries were dropped. */
size_t dispatch_abandon(struct dispatch *d);
/* Turns every request not yet started back into waiting deliveries (pending, the attempt not
   counted) with results in out: they certainly never left. For a stop that cannot wait for
   them; the flights are freed. */
void dispatch_requeue(struct dispatch *d, int64_t now_ms, struct results *out);
/* 1 when requests wait to start. */
int dispatch_queued(const struct dispatch *d);
/* 1 when a claim is worth its transaction: some channel has half its slots free (or is idle).
   Claiming for every freed slot would cost a synchronous commit per delivery. */
int dispatch_hungry(const struct dispatch *d);
/* Requests queued or in flight. */
size_t dispatch_busy(const struct dispatch *d);
/* What this dispatch's results said, since it was made. */
struct dispatch_counts {
	int64_t sent, failed, retried, deferred, expired, unknown, suspended, suppressed;
};
void dispatch_counts(const struct dispatch *d, struct dispatch_counts *out);
/* Counts n deliveries a claim settled without a request (state "expired", "deferred" or
   "suppressed"; others are ignored). */
void dispatch_count_settled(struct dispatch *d, const char *state, int64_t n);

#endif
