/*
 * dispatch_int: what the dispatch files share and nobody else sees: the per-channel state,
 * flights (one request's worth of jobs, items and rendered messages) and the dispatch itself.
 *
 *   dispatch.c         life cycle, jobs -> flights, onto the wire
 *   dispatch_claim.c   what the claim asks (capacity, probes, limits, audience rules)
 *   dispatch_answer.c  an answer -> results, backoff, ambiguity, channel events
 */
#ifndef HERALD_DISPATCH_INT_H
#define HERALD_DISPATCH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"
#include "provider.h"
#include "tz.h"

/* How many deliveries one campaign-wide request (a Tanmarket SOP) may carry at most. */
#define DISPATCH_CAMPAIGN_BATCH_MAX 100000

struct chan_state {
	const struct channel *ch;
	void *pstate;                 /* the provider's open() state */
	int in_flight;                /* requests on the wire */
	int queued;                   /* requests waiting in the queue */
	int claiming;                 /* requests' worth taken by the claim under way */
	int probe_claim;              /* the claim under way took this suspended channel's probe */
	int failures;                 /* consecutive failed requests (suspend_after) */
	int suspended;                /* this process suspended it and has said so in the log */
	int64_t hold_until_mono;      /* a Retry-After: no request starts before this */
	double tokens;                /* rate_per_sec bucket */
	int64_t tokens_mono;
};

struct flight {
	struct flight *next;          /* the channel queue, then nothing once started */
	struct chan_state *cs;
	struct store_job *jobs;       /* n, owned */
	struct provider_item *items;  /* n */
	cJSON **trees;                /* 2n: recipient record and rendered message per item */
	size_t n;
	size_t cap;                   /* room in jobs, items and trees */
	char *batch_key;              /* batching by message: the rendered message (owned) */
	int64_t batch_id;             /* the failed request these jobs retry together, 0 = none */
	int probe;                    /* the one request a suspended channel tries */
	int64_t started_at_ms;
};

struct zone {
	char name[64];
	struct tz *tz;
};

struct dispatch {
	const struct config *cfg;
	struct chan_state *chans;     /* cfg->n_channels */
	struct flight *queue_head, *queue_tail;
	size_t queued, in_flight;
	struct zone zones[16];        /* time zones of the campaigns seen, loaded once */
	int n_zones;
	uint64_t rng;
	int64_t warned_mono;          /* last "channel not in the configuration" warning */
	int64_t sent, failed, retried, unknown, deferred, suspended, expired, suppressed;
};

/* The channel a campaign sends through, if the config still has it for the same provider. */
struct chan_state *dispatch_chan(struct dispatch *d, const struct store_campaign *c);
/* A zone by name, loaded once and cached (the oldest evicted); NULL if it cannot load. Valid
   until the next call. */
const struct tz *dispatch_zone(struct dispatch *d, const char *name);
/* Items one request of this channel carries. */
int64_t dispatch_per_request(const struct chan_state *cs);
/* Refills a channel's rate bucket to mono. */
void dispatch_refill(struct chan_state *cs, int64_t mono);
/* The provider_item view of a job, enough for limit_account() and admit(). */
void dispatch_item_from_job(struct provider_item *it, const struct store_job *j);
/* The per-account limit a job counts against (SaiNiu's seller), or NULL. Valid until the next
   call. */
const char *dispatch_account(struct dispatch *d, const struct store_job *j);
/* Frees a flight and everything it owns. NULL ok. */
void dispatch_flight_free(struct flight *f);

#endif
