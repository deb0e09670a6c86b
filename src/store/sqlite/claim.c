/*
 * claim: the scheduler's claims. A claim is one short write transaction that turns due
 * rows into 'sending' rows owned by one runner, keeping every rule that decides whether a
 * delivery may go now (expiry, the audience rules, per-account limits, held channels, whole
 * batches). Because it takes SQLite's write lock (BEGIN IMMEDIATE), two runners can never
 * claim the same row, and a row is 'sending' on disk before its request leaves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sop.h"
#include "sqlite_int.h"
#include "util.h"


/* Frees what jobs [from, to) hold, not the array. */
static void
jobs_clear(struct store_job *jobs, size_t from, size_t to)
{
	size_t i;

	for (i = from; jobs && i < to; i++) {
		free(jobs[i].rid);
		free(jobs[i].recipient_json);
		free(jobs[i].message_json);
	}
}


int
sqlite_next_due(struct store *base, int64_t *next_at_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_NEXT_DUE);
	int rc;

	if (!st)
		return sqlite_fail(s, err, "next due");
	rc = sqlite3_step(st);
	*next_at_ms = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
	                  ? sqlite3_column_int64(st, 0)
	                  : INT64_MAX;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "next due");
}

/* Appends the rows st yields to *jobs (growing it). SQLITE_DONE, or the error. */
static int
claim_rows(sqlite3_stmt *st, const struct store_campaign *c, struct store_job **jobs, size_t *n,
           size_t *alloc)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_job *j;

		if (*n == *alloc) {
			size_t na = *alloc ? *alloc * 2 : 64;
			struct store_job *p = realloc(*jobs, na * sizeof *p);

			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			*jobs = p;
			*alloc = na;
		}
		j = &(*jobs)[(*n)++];
		memset(j, 0, sizeof *j);
		j->delivery_id = sqlite3_column_int64(st, 0);
		j->campaign_id = c->id;
		j->step = sqlite3_column_int(st, 1);
		j->step_day = sqlite3_column_int(st, 2);
		sqlite_col_copy(st, 3, j->step_time, sizeof j->step_time);
		j->attempts = sqlite3_column_int(st, 4) + 1;
		j->due_at_ms = sqlite3_column_int64(st, 5);
		j->expires_at_ms = sqlite3_column_int64(st, 6);
		j->send_at_ms = sqlite3_column_int64(st, 7);
		j->msg_random = (uint32_t)sqlite3_column_int64(st, 8);
		j->campaign = *c;
		j->rid = sqlite_col_dup(st, 9);
		j->recipient_json = sqlite_col_dup(st, 10);
		j->message_json = sqlite_col_dup(st, 11);
		j->batch_id = sqlite3_column_int64(st, 12);
		if (!j->rid || !j->recipient_json || !j->message_json) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	return rc;
}

/*
 * Appends the due rows of one campaign to *jobs (growing it), up to cap, then the members of
 * any batch the cap cut in two: a batch is retried as the one request it was (SPEC 5.9), so
 * it is claimed whole even if that takes a little more than cap.
 */
static int
claim_select(struct sqlite_store *s, const struct store_campaign *c, int64_t now_ms, int64_t cap,
             struct store_job **jobs, size_t *n, size_t *alloc)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CLAIM_SELECT);
	size_t first = *n, taken, i, k;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, c->id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, cap);
	if (claim_rows(st, c, jobs, n, alloc) != SQLITE_DONE)
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
		if (!(st = sqlite_stmt(s, SQL_CLAIM_BATCH_REST)))
			return -1;
		sqlite3_bind_int64(st, 1, batch);
		sqlite3_bind_int64(st, 2, last);
		sqlite3_bind_int64(st, 3, now_ms);
		if (claim_rows(st, c, jobs, n, alloc) != SQLITE_DONE)
			return -1;
	}
	return 0;
}

/* Runs one cached write binding ?1 = a, ?2 = b, ?3 = c (if the statement has it), ?4 = text. */
static int
run_update(struct sqlite_store *s, enum sqlite_sql id, int64_t a, int64_t b, int64_t c,
           const char *text)
{
	sqlite3_stmt *st = sqlite_stmt(s, id);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sqlite3_bind_int64(st, 3, c);
	if (text)
		sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Decides a job with a limit account; returns 1 to claim it, 0 to leave it, 2 when it left it
   deferred, -1 on error. */
static int
claim_limited(struct sqlite_store *s, const struct store_claim_cb *cb, struct store_job *j,
              const char *account, int64_t now_ms)
{
	struct store_limit lim = {0};
	int64_t send_at = 0, defer_until = 0;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_LIMIT_GET);
	char why[320], when[40];
	int rc;

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, j->campaign.provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		lim.last_call_ms = sqlite3_column_int64(st, 0);
		lim.last_send_at_ms = sqlite3_column_int64(st, 1);
		lim.reserved = sqlite3_column_int(st, 2);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	switch (cb->admit(cb->arg, j, &lim, now_ms, &send_at, &defer_until)) {
	case STORE_ADMIT:
		j->send_at_ms = send_at;
		if (!(st = sqlite_stmt(s, SQL_LIMIT_RESERVE)))
			return -1;
		sqlite3_bind_text(st, 1, j->campaign.provider, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->delivery_id);
		return sqlite3_step(st) == SQLITE_DONE ? 1 : -1;
	case STORE_DEFER:
		store_format_when(&s->when_zone, j->campaign.timezone, send_at, when);
		snprintf(why, sizeof why, "deferred by %s's per-account limit for %s: goes at %s",
		         j->campaign.provider, account, when);
		return run_update(s, SQL_DEFER_MARK, j->delivery_id, defer_until, send_at,
		                  why) == 0 ? 2 : -1;
	case STORE_WAIT:
		/* Another call for this account is in flight; look again in a second. */
		return run_update(s, SQL_WAIT_MARK, j->delivery_id, now_ms + SECOND_MS, 0,
		                  NULL) == 0 ? 0 : -1;
	}
	return -1;
}

/* Marks the claimable jobs of one campaign 'sending', dropping the others from the array;
   counts what it expired (settled[0]), deferred (settled[1]) and suppressed (settled[2]). */
static int
claim_mark(struct sqlite_store *s, int64_t runner_id, const struct store_claim_cb *cb,
           struct store_job *jobs, size_t first, size_t *n, int64_t now_ms, int64_t settled[3])
{
	struct buf ids = {0};
	sqlite3_stmt *st;
	size_t i, kept = first;
	int rc = -1;

	for (i = first; i < *n; i++) {
		struct store_job *j = &jobs[i];
		struct store_audience aud;
		const char *account = NULL;
		int take;

		/* Expired rows are settled as the claim meets them, so no claim walks them all. */
		if (j->expires_at_ms <= now_ms) {
			if (run_update(s, SQL_EXPIRE_DUE, j->delivery_id, 0, 0, NULL) != 0)
				goto out;
			settled[0]++;
			continue;
		}
		/* Opt-out, quiet hours and the frequency cap come first: a job they hold back must
		   not take a provider's per-account reservation. */
		if ((take = sqlite_audience_check(s, cb, j, now_ms, &aud)) < 0)
			goto out;
		if (!take) {
			settled[aud.held == 1 ? 2 : 1] += aud.held != 0;
			continue;
		}
		account = cb->account ? cb->account(cb->arg, j) : NULL;
		if ((take = account ? claim_limited(s, cb, j, account, now_ms) : 1) < 0)
			goto out;
		if (take != 1) {
			settled[1] += take == 2;
			continue;
		}
		if (sqlite_audience_reserve(s, j, &aud, now_ms) != 0)
			goto out;
		/* A limited job carries its admitted send time; the rest are marked together. */
		if (account ? run_update(s, SQL_CLAIM_MARK, j->delivery_id, runner_id,
		                         j->send_at_ms, NULL) != 0
		            : buf_printf(&ids, "%c%lld", ids.len ? ',' : '[',
		                         (long long)j->delivery_id) != 0)
			goto out;
		if (kept != i) {
			struct store_job tmp = jobs[kept];

			jobs[kept] = *j;
			*j = tmp;
		}
		kept++;
	}
	if (ids.len) {
		if (buf_append(&ids, "]", 1) != 0 ||
		    !(st = sqlite_stmt(s, SQL_CLAIM_MARK_MANY)))
			goto out;
		sqlite3_bind_text(st, 1, ids.data, (int)ids.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, runner_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
	}
	jobs_clear(jobs, kept, *n);
	*n = kept;
	rc = 0;
out:
	buf_free(&ids);
	return rc;
}

/* A channel an operator paused or a fault suspended, as the claim sees it. */
struct held {
	char name[256];
	int paused;                   /* else suspended */
	int64_t next_probe_at_ms;
};

/* Reads the channels that are not active. 0 / -1. */
static int
held_load(struct sqlite_store *s, struct held **out, size_t *n)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CHANNELS_HELD);
	size_t alloc = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct held *h;

		if (*n == alloc) {
			struct held *p = realloc(*out, (alloc = alloc ? alloc * 2 : 8) * sizeof *p);

			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			*out = p;
		}
		h = &(*out)[(*n)++];
		sqlite_col_copy(st, 0, h->name, sizeof h->name);
		h->paused = strcmp((const char *)sqlite3_column_text(st, 1), "paused") == 0;
		h->next_probe_at_ms = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static struct held *
held_find(struct held *h, size_t n, const char *channel)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(h[i].name, channel) == 0)
			return &h[i];
	return NULL;
}

/* How many of campaign c's deliveries to claim now, and whether they are a probe. */
static int64_t
claim_capacity(const struct store_claim_cb *cb, const struct store_campaign *c, struct held *h,
               int64_t now_ms, int *probe)
{
	*probe = 0;
	if (!h)
		return cb->capacity(cb->arg, c);
	if (h->paused || h->next_probe_at_ms > now_ms || !cb->probe)
		return 0;
	*probe = 1;
	return cb->probe(cb->arg, c);
}

/* A probe is one request: the first job's batch, or jobs that belong to no batch. */
static void
probe_one_request(struct store_job *jobs, size_t first, size_t *n)
{
	size_t i, kept = first + 1;

	for (i = first + 1; i < *n; i++) {
		if (jobs[i].batch_id != jobs[first].batch_id) {
			jobs_clear(jobs, i, i + 1);
			continue;
		}
		if (kept != i)
			jobs[kept] = jobs[i];
		kept++;
	}
	if (*n > first)
		*n = kept;
}

/* A probe was claimed: the next one waits the interval, which doubles. */
static int
claim_probed(struct sqlite_store *s, struct held *h, int64_t now_ms)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CHANNEL_PROBED);

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, h->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, STORE_PROBE_MAX_MS);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	h->next_probe_at_ms = INT64_MAX;  /* one probe per channel per claim */
	return 0;
}

int
sqlite_claim(struct store *base, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
            struct store_job **jobs, size_t *n_jobs, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	struct store_campaign *camps = NULL;
	struct held *held = NULL;
	int64_t (*settled)[3] = NULL;
	size_t n_camps = 0, alloc_camps = 0, alloc = 0, n_held = 0, i, k;
	sqlite3_stmt *st;
	int rc, probe;

	*jobs = NULL;
	*n_jobs = 0;
	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (held_load(s, &held, &n_held) != 0 || sqlite_audience_begin(s) != 0 ||
	    !(st = sqlite_stmt(s, SQL_ACTIVE_CAMPAIGNS)))
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n_camps == alloc_camps) {
			size_t na = alloc_camps ? alloc_camps * 2 : 16;
			struct store_campaign *p = realloc(camps, na * sizeof *p);

			if (!p)
				goto fail;
			camps = p;
			alloc_camps = na;
		}
		sqlite_campaign_from_row(st, 0, &camps[n_camps++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE || !(settled = calloc(n_camps + 1, sizeof *settled)))
		goto fail;
	/*
	 * Campaigns sharing a channel share its slots. Each claim starts with the next campaign
	 * in turn, so a big backlog, which would take every slot it is offered, cannot keep a
	 * small campaign's due deliveries waiting for more than a claim or two.
	 */
	s->claim_turn++;
	for (k = 0; k < n_camps; k++) {
		struct held *h;
		int64_t cap;
		size_t first = *n_jobs;

		i = (k + s->claim_turn) % n_camps;
		h = held_find(held, n_held, camps[i].channel);
		if ((cap = claim_capacity(cb, &camps[i], h, now_ms, &probe)) <= 0)
			continue;
		/* Read first, write after: updating rows a SELECT is walking is undefined in SQLite. */
		if (claim_select(s, &camps[i], now_ms, cap, jobs, n_jobs, &alloc) != 0)
			goto fail;
		if (probe)
			probe_one_request(*jobs, first, n_jobs);
		if (claim_mark(s, runner_id, cb, *jobs, first, n_jobs, now_ms, settled[i]) != 0)
			goto fail;
		if (probe && *n_jobs > first && claim_probed(s, h, now_ms) != 0)
			goto fail;
		if (cb->claimed)
			cb->claimed(cb->arg, &camps[i], *n_jobs - first);
	}
	if (sqlite_commit(&s->base, err) != 0)
		goto fail_committed;
	/* Told only now: a claim that rolled back settled nothing. */
	for (i = 0; i < n_camps && cb->settled; i++) {
		if (settled[i][0])
			cb->settled(cb->arg, camps[i].channel, "expired", settled[i][0]);
		if (settled[i][1])
			cb->settled(cb->arg, camps[i].channel, "deferred", settled[i][1]);
		if (settled[i][2])
			cb->settled(cb->arg, camps[i].channel, "suppressed", settled[i][2]);
	}
	free(settled);
	free(camps);
	free(held);
	return 0;
fail:
	sqlite_fail(s, err, "claim");
	sqlite_rollback(&s->base);
fail_committed:
	free(settled);
	free(camps);
	free(held);
	store_jobs_free(*jobs, *n_jobs);
	*jobs = NULL;
	*n_jobs = 0;
	return -1;
}
