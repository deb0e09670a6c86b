/*
 * claim: the scheduler's claim, whichever the backend. One transaction takes, campaign by
 * campaign in turn, what is due and what the channel has room for, keeps batches whole and a
 * suspended channel to its one probe, and has the backend decide and mark each row
 * (store_claim_ops in backend.h). What is engine-specific (SQL, locks, the rules' reads and
 * writes) stays in sqlite/claim.c and postgres/claim.c; the order of the steps, which decides
 * what a claim takes, is written once, here. Where several nodes claim at once, claims hold
 * their channels shared, and those whose rules count across rows take turns (serialize);
 * otherwise they only skip each other's rows.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

void
store_jobs_clear(struct store_job *jobs, size_t from, size_t to)
{
	size_t i;

	for (i = from; jobs && i < to; i++) {
		free(jobs[i].rid);
		free(jobs[i].recipient_json);
		free(jobs[i].message_json);
	}
}

static struct store_held *
held_find(struct store_held *h, size_t n, const char *channel)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(h[i].name, channel) == 0)
			return &h[i];
	return NULL;
}

/* How many of campaign c's deliveries to claim now, and whether they are a probe. */
static int64_t
capacity(const struct store_claim_cb *cb, const struct store_campaign *c,
         const struct store_held *h, int64_t now_ms, int *probe)
{
	*probe = 0;
	if (!h)
		return cb->capacity(cb->arg, c);
	if (h->paused || h->next_probe_at_ms > now_ms || !cb->probe)
		return 0;
	*probe = 1;
	return cb->probe(cb->arg, c);
}

/*
 * Appends the due rows of one campaign to *jobs, up to cap, then the members of any batch the
 * cap cut in two: a batch is retried as the one request it was (SPEC 5.9), so it is claimed
 * whole even if that takes a little more than cap.
 */
static int
select_due(struct store *s, const struct store_claim_ops *ops, const struct store_campaign *c,
           int64_t now_ms, int64_t cap, struct store_job **jobs, size_t *n, size_t *alloc,
           char **err)
{
	size_t first = *n, taken, i, k;

	if (ops->due(s, c, now_ms, cap, jobs, n, alloc, err) != 0)
		return -1;
	taken = *n;
	if ((int64_t)(taken - first) < cap)
		return 0;  /* everything due was taken: no batch was cut */
	for (i = first; i < taken; i++) {
		int64_t batch = (*jobs)[i].batch_id, last = (*jobs)[i].delivery_id;

		if (!batch)
			continue;
		for (k = first; k < i && (*jobs)[k].batch_id != batch; k++)
			;
		if (k < i)
			continue;  /* this batch was handled at its first member */
		for (k = i + 1; k < taken; k++)
			if ((*jobs)[k].batch_id == batch && (*jobs)[k].delivery_id > last)
				last = (*jobs)[k].delivery_id;
		if (ops->batch_rest(s, c, batch, last, now_ms, jobs, n, alloc, err) != 0)
			return -1;
	}
	return 0;
}

/* A probe is one request: the first job's batch, or jobs that belong to no batch. The rows
   left out stay waiting. */
static void
probe_one_request(struct store_job *jobs, size_t first, size_t *n)
{
	size_t i, kept = first + 1;

	for (i = first + 1; i < *n; i++) {
		if (jobs[i].batch_id != jobs[first].batch_id) {
			store_jobs_clear(jobs, i, i + 1);
			continue;
		}
		if (kept != i)
			jobs[kept] = jobs[i];
		kept++;
	}
	if (*n > first)
		*n = kept;
}

/*
 * Takes the keys of what this claim's campaigns share with other nodes' writes: each channel
 * it may claim from, shared with other claims (a result that suspends or reopens the channel
 * takes it alone, so no claim reads the channel as open while its suspension commits); alone,
 * a campaign's serial rule, and a suspended channel's probe when it is due (one probe per
 * channel, whoever takes it). The channels are read again once the keys are held: what
 * committed while we waited (a suspension, a probe another node took) is seen.
 */
static int
serialize(struct store *s, const struct store_claim_ops *ops, const struct store_claim_cb *cb,
          const struct store_campaign *camps, size_t n_camps, struct store_held **held,
          size_t *n_held, int64_t now_ms, char **err)
{
	struct store_serial_key *keys;
	const struct store_held *h;
	enum store_serial kind;
	size_t i, n = 0;
	int rc = 0;

	if (!(keys = calloc(2 * n_camps + 1, sizeof *keys)))
		return util_err(err, "claim: out of memory");
	for (i = 0; i < n_camps; i++) {
		h = held_find(*held, *n_held, camps[i].channel);
		keys[n].kind = STORE_SERIAL_CHANNEL;
		keys[n].name = camps[i].channel;
		keys[n++].shared = !(h && !h->paused && h->next_probe_at_ms <= now_ms);
		kind = cb->serial ? cb->serial(cb->arg, &camps[i]) : STORE_SERIAL_NONE;
		if (kind != STORE_SERIAL_NONE) {
			keys[n].kind = kind;
			keys[n++].name = kind == STORE_SERIAL_PROVIDER ? camps[i].provider
			                                              : camps[i].channel;
		}
	}
	if (n && (rc = ops->serialize(s, keys, n, err)) == 0) {
		free(*held);
		rc = ops->held(s, held, n_held, err);
	}
	free(keys);
	return rc;
}

/* What a committed claim settled by itself, per campaign: told only once it is committed. */
static void
tell_settled(const struct store_claim_cb *cb, const struct store_campaign *camps, size_t n,
             int64_t (*settled)[3])
{
	static const char *const states[3] = {"expired", "deferred", "suppressed"};
	size_t i;
	int k;

	for (i = 0; i < n && cb->settled; i++)
		for (k = 0; k < 3; k++)
			if (settled[i][k])
				cb->settled(cb->arg, camps[i].channel, states[k], settled[i][k]);
}

int
store_claim_run(struct store *s, const struct store_claim_ops *ops, unsigned *turn,
                int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
                struct store_job **jobs, size_t *n_jobs, char **err)
{
	struct store_campaign *camps = NULL;
	struct store_held *held = NULL, *h;
	int64_t (*settled)[3] = NULL, cap;
	size_t n_camps = 0, n_held = 0, alloc = 0, first, i, k;
	int rc = -1, probe, took;

	*jobs = NULL;
	*n_jobs = 0;
	/* A begin that failed half way (the transaction open, a statement after it not) must
	   not leave it open: every later claim would fail on it. Rolling back nothing is safe. */
	if (ops->begin(s, runner_id, err) != 0) {
		ops->rollback(s);
		return -1;
	}
	if (ops->held(s, &held, &n_held, err) != 0 || ops->campaigns(s, &camps, &n_camps, err) != 0)
		goto fail;
	if (ops->serialize && serialize(s, ops, cb, camps, n_camps, &held, &n_held, now_ms,
	                                err) != 0)
		goto fail;
	if (!(settled = calloc(n_camps + 1, sizeof *settled))) {
		util_err(err, "claim: out of memory");
		goto fail;
	}
	/*
	 * Campaigns sharing a channel share its slots. Each claim starts with the next campaign
	 * in turn, so a big backlog, which would take every slot it is offered, cannot keep a
	 * small campaign's due deliveries waiting for more than a claim or two.
	 */
	(*turn)++;
	for (k = 0; k < n_camps; k++) {
		i = (k + *turn) % n_camps;
		first = *n_jobs;
		h = held_find(held, n_held, camps[i].channel);
		if ((cap = capacity(cb, &camps[i], h, now_ms, &probe)) <= 0)
			continue;
		took = 0;
		if (!probe && ops->take && cb->plain && cb->plain(cb->arg, &camps[i]) &&
		    (took = ops->take(s, runner_id, &camps[i], now_ms, cap, jobs, n_jobs, &alloc,
		                      settled[i], err)) < 0)
			goto fail;
		if (!took && select_due(s, ops, &camps[i], now_ms, cap, jobs, n_jobs, &alloc,
		                        err) != 0)
			goto fail;
		if (probe)
			probe_one_request(*jobs, first, n_jobs);
		if (!took && ops->mark(s, runner_id, cb, *jobs, first, n_jobs, now_ms, settled[i],
		                       err) != 0)
			goto fail;
		if (probe && *n_jobs > first) {
			if (ops->probed(s, h->name, now_ms, err) != 0)
				goto fail;
			h->next_probe_at_ms = INT64_MAX;  /* one probe per channel per claim */
		}
		if (cb->claimed)
			cb->claimed(cb->arg, &camps[i], *n_jobs - first);
	}
	if (ops->commit(s, err) != 0)
		goto fail;
	tell_settled(cb, camps, n_camps, settled);
	rc = 0;
	goto out;
fail:
	ops->rollback(s);  /* nothing if the commit failed: it rolled back already */
	store_jobs_free(*jobs, *n_jobs);
	*jobs = NULL;
	*n_jobs = 0;
out:
	free(settled);
	free(camps);
	free(held);
	return rc;
}

int
store_audience_check(struct store *s, const struct store_audience_ops *ops,
                     struct tz **when_zone, const struct store_claim_cb *cb,
                     struct store_job *j, int64_t now_ms, struct store_audience *a)
{
	char list[256], why[400];
	int64_t until;
	int rc;

	memset(a, 0, sizeof *a);
	if ((rc = ops->suppressed(s, j, list, sizeof list)) < 0)
		return -1;
	if (rc) {
		store_why_suppressed(j, list, why, sizeof why);
		a->held = 1;
		return ops->suppress(s, j->delivery_id, why) == 0 ? 0 : -1;
	}
	if (!cb->audience)
		return 1;
	cb->audience(cb->arg, j, now_ms, a);
	if (a->quiet_until_ms > now_ms) {
		store_why_quiet(when_zone, j, a, a->quiet_until_ms, why, sizeof why);
		a->held = 2;
		return ops->defer(s, j->delivery_id, a->quiet_until_ms, why) == 0 ? 0 : -1;
	}
	if (a->cap_max <= 0)
		return 1;
	if (ops->cap_until(s, j, a, now_ms, &until) != 0)
		return -1;
	if (until <= now_ms)
		return 1;
	store_why_capped(when_zone, j, a, until, why, sizeof why);
	a->held = 2;
	return ops->defer(s, j->delivery_id, until, why) == 0 ? 0 : -1;
}
