/*
 * store_sched: the scheduler's side of the store. A claim is one short write transaction
 * that turns due rows into 'sending' rows owned by one runner; a result batch is another.
 * Because both take SQLite's write lock (BEGIN IMMEDIATE), two runners can never claim the
 * same row, and a row is 'sending' on disk before its request leaves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sop.h"
#include "store_int.h"
#include "util.h"

static const char q_active_campaigns[] =
	"SELECT " STORE_CAMPAIGN_COLS " FROM campaigns c WHERE c.state = 'active' ORDER BY c.id";
/* A paused channel's deliveries wait for an operator, a suspended one's for its probe. */
static const char q_next_due[] =
	"SELECT min(CASE coalesce(ch.state, 'active') WHEN 'active' THEN w.at "
	"WHEN 'suspended' THEN max(w.at, ch.next_probe_at_ms) END) FROM "
	"(SELECT c.channel AS channel, (SELECT min(d.next_at_ms) FROM deliveries d "
	"WHERE d.campaign_id = c.id AND d.state IN " STORE_WAITING ") AS at "
	"FROM campaigns c WHERE c.state = 'active') w LEFT JOIN channels ch ON ch.name = w.channel";
static const char q_expire_one[] =
	"UPDATE deliveries SET state = 'expired', "
	"last_error = 'expired: not sent within expire_after of its due time' WHERE id = ?1";
#define CLAIM_COLS \
	"SELECT d.id, d.step, s.day, s.time, d.attempts, d.due_at_ms, d.expires_at_ms, " \
	"coalesce(d.send_at_ms, 0), d.msg_random, r.rid, r.data, s.message, " \
	"coalesce(d.batch_id, 0) FROM deliveries d " \
	"JOIN recipients r ON r.id = d.recipient_id " \
	"JOIN steps s ON s.campaign_id = d.campaign_id AND s.position = d.step "
static const char q_claim_select[] =
	CLAIM_COLS "WHERE d.campaign_id = ?1 AND d.state IN " STORE_WAITING " AND d.next_at_ms <= ?2 "
	"ORDER BY d.next_at_ms, d.id LIMIT ?3";
/* The members of batch ?1 a LIMIT cut off: they share its next_at, so they follow the last
   member taken (?2) in id order. */
static const char q_claim_batch_rest[] =
	CLAIM_COLS "WHERE d.batch_id = ?1 AND d.id > ?2 AND d.state IN " STORE_WAITING
	" AND d.next_at_ms <= ?3 ORDER BY d.id";
static const char q_channels_held[] =
	"SELECT name, state, coalesce(next_probe_at_ms, 0) FROM channels WHERE state <> 'active'";
static const char q_channel_probed[] =
	"UPDATE channels SET next_probe_at_ms = ?2 + probe_interval_ms, "
	"probe_interval_ms = min(probe_interval_ms * 2, ?3) WHERE name = ?1 AND state = 'suspended'";
/* A fault suspends an active channel; a suspended one keeps its probe times (a failed probe
   must not restart the doubling); a paused one stays the operator's. */
static const char q_channel_suspend[] =
	"INSERT INTO channels (name, state, reason, since_ms, next_probe_at_ms, probe_interval_ms) "
	"VALUES (?1, 'suspended', ?2, ?3, ?3 + ?4, min(?4 * 2, ?5)) ON CONFLICT (name) DO UPDATE SET "
	"reason = excluded.reason, "
	"since_ms = CASE state WHEN 'active' THEN excluded.since_ms ELSE since_ms END, "
	"next_probe_at_ms = CASE state WHEN 'active' THEN excluded.next_probe_at_ms "
	"ELSE next_probe_at_ms END, "
	"probe_interval_ms = CASE state WHEN 'active' THEN excluded.probe_interval_ms "
	"ELSE probe_interval_ms END, "
	"state = CASE state WHEN 'paused' THEN 'paused' ELSE 'suspended' END";
static const char q_channel_recover[] =
	"UPDATE channels SET state = 'active', reason = NULL, since_ms = ?2, next_probe_at_ms = NULL, "
	"probe_interval_ms = NULL WHERE name = ?1 AND state = 'suspended'";
static const char q_claim_mark[] =
	"UPDATE deliveries SET state = 'sending', claimed_by = ?2, attempts = attempts + 1, "
	"send_at_ms = nullif(?3, 0) WHERE id = ?1";
/* A rule's deferral is never a reason to drop a delivery (SPEC 5.3): its expiry moves with
   its send time, keeping the same slack. */
/* The common case in one statement: ?1 is a JSON array of delivery ids. */
static const char q_claim_mark_many[] =
	"UPDATE deliveries SET state = 'sending', claimed_by = ?2, attempts = attempts + 1, "
	"send_at_ms = NULL WHERE id IN (SELECT value FROM json_each(?1))";
static const char q_defer_mark[] =
	"UPDATE deliveries SET state = 'deferred', next_at_ms = ?2, send_at_ms = ?3, "
	"expires_at_ms = max(expires_at_ms, ?3 + expires_at_ms - due_at_ms), "
	"last_error = ?4 WHERE id = ?1";
static const char q_wait_mark[] = "UPDATE deliveries SET next_at_ms = ?2 WHERE id = ?1";
static const char q_limit_get[] =
	"SELECT coalesce(last_call_ms, 0), coalesce(last_send_at_ms, 0), reserved_by IS NOT NULL "
	"FROM account_limits WHERE provider = ?1 AND account = ?2";
static const char q_limit_reserve[] =
	"INSERT INTO account_limits (provider, account, reserved_by) VALUES (?1, ?2, ?3) "
	"ON CONFLICT (provider, account) DO UPDATE SET reserved_by = excluded.reserved_by";
static const char q_record_update[] =
	"UPDATE deliveries SET state = ?2, next_at_ms = coalesce(?3, next_at_ms), "
	"send_at_ms = coalesce(?4, send_at_ms), last_error = ?5, "
	"provider_message_id = coalesce(?6, provider_message_id), claimed_by = NULL, "
	"batch_id = coalesce(?8, batch_id), attempts = attempts - ?9 "
	"WHERE id = ?1 AND state = 'sending' AND claimed_by = ?7";
static const char q_attempt_insert[] =
	"INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, duration_ms, http_status, "
	"provider_code, provider_message, outcome) "
	"SELECT campaign_id, id, ?2, ?3, ?4, ?5, ?6, ?7 FROM deliveries WHERE id = ?1";
static const char q_campaign_error[] =
	"UPDATE campaigns SET last_error = ?2 WHERE id = (SELECT campaign_id FROM deliveries WHERE id = ?1)";
static const char q_limit_settle_ok[] =
	"UPDATE account_limits SET last_call_ms = ?3, last_send_at_ms = ?4, reserved_by = NULL "
	"WHERE provider = ?1 AND account = ?2";
static const char q_limit_release[] =
	"UPDATE account_limits SET reserved_by = NULL WHERE provider = ?1 AND account = ?2";

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

void
store_jobs_free(struct store_job *jobs, size_t n)
{
	jobs_clear(jobs, 0, n);
	free(jobs);
}

int
store_next_due(struct store *s, int64_t *next_at_ms, char **err)
{
	sqlite3_stmt *st = store_stmt(s, SQL_NEXT_DUE, q_next_due);
	int rc;

	if (!st)
		return store_fail(s, err, "next due");
	rc = sqlite3_step(st);
	*next_at_ms = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
	                  ? sqlite3_column_int64(st, 0)
	                  : INT64_MAX;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_fail(s, err, "next due");
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
		store_col_copy(st, 3, j->step_time, sizeof j->step_time);
		j->attempts = sqlite3_column_int(st, 4) + 1;
		j->due_at_ms = sqlite3_column_int64(st, 5);
		j->expires_at_ms = sqlite3_column_int64(st, 6);
		j->send_at_ms = sqlite3_column_int64(st, 7);
		j->msg_random = (uint32_t)sqlite3_column_int64(st, 8);
		j->campaign = *c;
		j->rid = store_col_dup(st, 9);
		j->recipient_json = store_col_dup(st, 10);
		j->message_json = store_col_dup(st, 11);
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
claim_select(struct store *s, const struct store_campaign *c, int64_t now_ms, int64_t cap,
             struct store_job **jobs, size_t *n, size_t *alloc)
{
	sqlite3_stmt *st = store_stmt(s, SQL_CLAIM_SELECT, q_claim_select);
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
		if (!(st = store_stmt(s, SQL_CLAIM_BATCH_REST, q_claim_batch_rest)))
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
run_update(struct store *s, enum store_sql id, const char *sql, int64_t a, int64_t b, int64_t c,
           const char *text)
{
	sqlite3_stmt *st = store_stmt(s, id, sql);

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
claim_limited(struct store *s, const struct store_claim_cb *cb, struct store_job *j,
              const char *account, int64_t now_ms)
{
	struct store_limit lim = {0};
	int64_t send_at = 0, defer_until = 0;
	sqlite3_stmt *st = store_stmt(s, SQL_LIMIT_GET, q_limit_get);
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
		if (!(st = store_stmt(s, SQL_LIMIT_RESERVE, q_limit_reserve)))
			return -1;
		sqlite3_bind_text(st, 1, j->campaign.provider, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, account, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->delivery_id);
		return sqlite3_step(st) == SQLITE_DONE ? 1 : -1;
	case STORE_DEFER:
		sop_format_instant(send_at, 0, when);
		snprintf(why, sizeof why, "deferred by %s's per-account limit for %s: goes at %s",
		         j->campaign.provider, account, when);
		return run_update(s, SQL_DEFER_MARK, q_defer_mark, j->delivery_id, defer_until, send_at,
		                  why) == 0 ? 2 : -1;
	case STORE_WAIT:
		/* Another call for this account is in flight; look again in a second. */
		return run_update(s, SQL_WAIT_MARK, q_wait_mark, j->delivery_id, now_ms + SECOND_MS, 0,
		                  NULL) == 0 ? 0 : -1;
	}
	return -1;
}

/* Marks the claimable jobs of one campaign 'sending', dropping the others from the array;
   counts what it expired (settled[0]), deferred (settled[1]) and suppressed (settled[2]). */
static int
claim_mark(struct store *s, int64_t runner_id, const struct store_claim_cb *cb,
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
			if (run_update(s, SQL_EXPIRE_DUE, q_expire_one, j->delivery_id, 0, 0, NULL) != 0)
				goto out;
			settled[0]++;
			continue;
		}
		/* Opt-out, quiet hours and the frequency cap come first: a job they hold back must
		   not take a provider's per-account reservation. */
		if ((take = store_audience_check(s, cb, j, now_ms, &aud)) < 0)
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
		if (store_audience_reserve(s, j, &aud, now_ms) != 0)
			goto out;
		/* A limited job carries its admitted send time; the rest are marked together. */
		if (account ? run_update(s, SQL_CLAIM_MARK, q_claim_mark, j->delivery_id, runner_id,
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
		    !(st = store_stmt(s, SQL_CLAIM_MARK_MANY, q_claim_mark_many)))
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
held_load(struct store *s, struct held **out, size_t *n)
{
	sqlite3_stmt *st = store_stmt(s, SQL_CHANNELS_HELD, q_channels_held);
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
		store_col_copy(st, 0, h->name, sizeof h->name);
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
claim_probed(struct store *s, struct held *h, int64_t now_ms)
{
	sqlite3_stmt *st = store_stmt(s, SQL_CHANNEL_PROBED, q_channel_probed);

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
store_claim(struct store *s, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
            struct store_job **jobs, size_t *n_jobs, char **err)
{
	struct store_campaign *camps = NULL;
	struct held *held = NULL;
	int64_t (*settled)[3] = NULL;
	size_t n_camps = 0, alloc_camps = 0, alloc = 0, n_held = 0, i;
	sqlite3_stmt *st;
	int rc, probe;

	*jobs = NULL;
	*n_jobs = 0;
	if (store_begin(s, err) != 0)
		return -1;
	if (held_load(s, &held, &n_held) != 0 || store_audience_begin(s) != 0 ||
	    !(st = store_stmt(s, SQL_ACTIVE_CAMPAIGNS, q_active_campaigns)))
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
		store_campaign_from_row(st, 0, &camps[n_camps++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE || !(settled = calloc(n_camps + 1, sizeof *settled)))
		goto fail;
	for (i = 0; i < n_camps; i++) {
		struct held *h = held_find(held, n_held, camps[i].channel);
		int64_t cap = claim_capacity(cb, &camps[i], h, now_ms, &probe);
		size_t first = *n_jobs;

		if (cap <= 0)
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
	if (store_commit(s, err) != 0)
		goto fail_committed;
	/* Told only now: a claim that rolled back settled nothing. */
	for (i = 0; i < n_camps && cb->settled; i++) {
		if (settled[i][0])
			cb->settled(camps[i].channel, "expired", settled[i][0]);
		if (settled[i][1])
			cb->settled(camps[i].channel, "deferred", settled[i][1]);
		if (settled[i][2])
			cb->settled(camps[i].channel, "suppressed", settled[i][2]);
	}
	free(settled);
	free(camps);
	free(held);
	return 0;
fail:
	store_fail(s, err, "claim");
	store_rollback(s);
fail_committed:
	free(settled);
	free(camps);
	free(held);
	store_jobs_free(*jobs, *n_jobs);
	*jobs = NULL;
	*n_jobs = 0;
	return -1;
}

/* The delivery's new last_error: the provider's words, or NULL once sent. */
static void
result_error(const struct store_result *r, char *out, size_t size)
{
	if (strcmp(r->state, "sent") == 0) {
		out[0] = '\0';
		return;
	}
	if (r->code && r->code[0])
		snprintf(out, size, "%s: %s", r->code, r->message ? r->message : "");
	else
		snprintf(out, size, "%s", r->message ? r->message : "");
}

static int
record_one(struct store *s, int64_t runner_id, const struct store_result *r)
{
	sqlite3_stmt *st = store_stmt(s, SQL_RECORD_UPDATE, q_record_update);
	char err_text[600];
	int sent = strcmp(r->state, "sent") == 0;

	if (!st)
		return -1;
	result_error(r, err_text, sizeof err_text);
	sqlite3_bind_int64(st, 1, r->delivery_id);
	sqlite3_bind_text(st, 2, r->state, -1, SQLITE_STATIC);
	if (r->next_at_ms)
		sqlite3_bind_int64(st, 3, r->next_at_ms);
	if (r->send_at_ms)
		sqlite3_bind_int64(st, 4, r->send_at_ms);
	if (err_text[0])
		sqlite3_bind_text(st, 5, err_text, -1, SQLITE_STATIC);
	if (r->message_id)
		sqlite3_bind_text(st, 6, r->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, runner_id);
	if (r->batch_id)
		sqlite3_bind_int64(st, 8, r->batch_id);
	sqlite3_bind_int(st, 9, r->refund ? 1 : 0);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	/* Not ours any more: our lease ran out and another runner settled it (and its attempt,
	   and any reservation). Recording ours too would count one request twice. */
	if (sqlite3_changes(s->db) == 0)
		return 0;
	if (store_audience_settle(s, r) != 0)
		return -1;
	/* Expired before its request could leave: there was no attempt to log. */
	if (strcmp(r->state, "expired") == 0)
		goto settle;
	if (!(st = store_stmt(s, SQL_ATTEMPT_INSERT, q_attempt_insert)))
		return -1;
	sqlite3_bind_int64(st, 1, r->delivery_id);
	sqlite3_bind_int64(st, 2, r->started_at_ms);
	sqlite3_bind_int64(st, 3, r->duration_ms);
	if (r->http_status)
		sqlite3_bind_int(st, 4, r->http_status);
	if (r->code && r->code[0])
		sqlite3_bind_text(st, 5, r->code, -1, SQLITE_STATIC);
	if (r->message)
		sqlite3_bind_text(st, 6, r->message, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, strcmp(r->state, "pending") == 0 ? "requeued" : r->state, -1,
	                  SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (!sent && err_text[0]) {
		if (!(st = store_stmt(s, SQL_CAMPAIGN_ERROR, q_campaign_error)))
			return -1;
		sqlite3_bind_int64(st, 1, r->delivery_id);
		sqlite3_bind_text(st, 2, err_text, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
settle:
	if (!r->limit_account)
		return 0;
	/* A call that may have been accepted counts for the rule as if it was (SPEC 5.10). */
	st = sent || r->limit_counts ? store_stmt(s, SQL_LIMIT_SETTLE_OK, q_limit_settle_ok)
	                             : store_stmt(s, SQL_LIMIT_RELEASE, q_limit_release);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, r->limit_provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->limit_account, -1, SQLITE_STATIC);
	if (sent || r->limit_counts) {
		sqlite3_bind_int64(st, 3, r->started_at_ms);
		sqlite3_bind_int64(st, 4, r->send_at_ms);
	}
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
record_channel(struct store *s, const struct store_channel_event *e)
{
	sqlite3_stmt *st = e->suspend ? store_stmt(s, SQL_CHANNEL_SUSPEND, q_channel_suspend)
	                              : store_stmt(s, SQL_CHANNEL_RECOVER, q_channel_recover);

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, e->channel, -1, SQLITE_STATIC);
	if (e->suspend) {
		sqlite3_bind_text(st, 2, e->reason ? e->reason : "suspended", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, e->at_ms);
		sqlite3_bind_int64(st, 4, e->probe_every_ms);
		sqlite3_bind_int64(st, 5, STORE_PROBE_MAX_MS);
	} else {
		sqlite3_bind_int64(st, 2, e->at_ms);
	}
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int
store_record(struct store *s, int64_t runner_id, const struct store_result *r, size_t n,
             const struct store_channel_event *ev, size_t n_ev, char **err)
{
	size_t i;
	int rc;

	if (n == 0 && n_ev == 0)
		return 0;
	/*
	 * Results need not reach the disk before we go on: if a power loss takes the last of
	 * them, their rows are 'sending' again and the next start settles them as after a crash
	 * (resent where the provider de-duplicates, else unknown), never sent twice. So no fsync
	 * here; the next claim's commit (synchronous=FULL) carries them to the disk anyway.
	 */
	if (store_exec(s, "PRAGMA synchronous = NORMAL", err) != 0)
		return -1;
	rc = store_begin(s, err);
	for (i = 0; rc == 0 && i < n + n_ev; i++) {
		if ((i < n ? record_one(s, runner_id, &r[i]) : record_channel(s, &ev[i - n])) != 0) {
			store_fail(s, err, "recording results");
			store_rollback(s);
			rc = -1;
		}
	}
	if (rc == 0)
		rc = store_commit(s, err);
	/* Claims must reach the disk: back to FULL whatever happened. */
	if (store_exec(s, "PRAGMA synchronous = FULL", rc ? NULL : err) != 0)
		rc = -1;
	return rc;
}

/* ---- runners ------------------------------------------------------------------------- */

int
store_runner_add(struct store *s, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                 char **err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "INSERT INTO runners (pid, started_at_ms, heartbeat_ms, lease_ms) "
	                              "VALUES (?1, ?2, ?2, ?3)", -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, err, "runner registration");
	sqlite3_bind_int(st, 1, pid);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, lease_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, err, "runner registration");
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
store_runner_heartbeat(struct store *s, int64_t id, int64_t now_ms, char **err)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE runners SET heartbeat_ms = max(heartbeat_ms, ?2) "
	                              "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, err, "runner heartbeat");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, err, "runner heartbeat");
	return sqlite3_changes(s->db) > 0 ? 1 : 0;
}

int
store_runner_list(struct store *s, struct store_runner **rows, size_t *n, char **err)
{
	sqlite3_stmt *st;
	size_t alloc = 0;
	int rc;

	*rows = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT id, heartbeat_ms, lease_ms FROM runners ORDER BY id", -1,
	                       &st, NULL) != SQLITE_OK)
		return store_fail(s, err, "runner list");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == alloc) {
			struct store_runner *p = realloc(*rows, (alloc = alloc ? alloc * 2 : 8) * sizeof *p);

			if (!p) {
				rc = SQLITE_NOMEM;
				break;
			}
			*rows = p;
		}
		(*rows)[*n].id = sqlite3_column_int64(st, 0);
		(*rows)[*n].heartbeat_ms = sqlite3_column_int64(st, 1);
		(*rows)[*n].lease_ms = sqlite3_column_int64(st, 2);
		(*n)++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(*rows);
		*rows = NULL;
		*n = 0;
		return store_fail(s, err, "runner list");
	}
	return 0;
}

/* Settles one in-flight delivery of a dead runner. */
static int
reap_one(struct store *s, int64_t delivery_id, int resend, int64_t now_ms)
{
	static const char *const resend_sql =
		"UPDATE deliveries SET state = 'pending', next_at_ms = ?2, claimed_by = NULL WHERE id = ?1";
	static const char *const unknown_sql =
		"UPDATE deliveries SET state = 'unknown', claimed_by = NULL, last_error = "
		"'herald stopped while the request was in flight: it may or may not have been sent' "
		"WHERE id = ?1";
	static const char *const attempt_sql =
		"INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, provider_message, outcome) "
		"SELECT campaign_id, id, ?2, ?3, ?4 FROM deliveries WHERE id = ?1";
	const char *msg = resend ? "herald stopped mid-request; resent, the provider de-duplicates it"
	                         : "herald stopped mid-request; the outcome is unknown";
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, resend ? resend_sql : unknown_sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, delivery_id);
	if (resend)
		sqlite3_bind_int64(st, 2, now_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(s->db, attempt_sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, delivery_id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, msg, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, resend ? "requeued" : "unknown", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int64_t
store_runner_reap(struct store *s, int64_t id, int (*dedups)(const char *provider), int64_t now_ms,
                  int64_t stale_before_ms, char **err)
{
	/* A reservation the dead runner held may have been accepted: count it as a call. */
	static const char *const limits_sql =
		"UPDATE account_limits SET last_call_ms = ?2, last_send_at_ms = coalesce("
		"(SELECT send_at_ms FROM deliveries WHERE id = reserved_by), last_send_at_ms), "
		"reserved_by = NULL WHERE reserved_by IN "
		"(SELECT id FROM deliveries WHERE claimed_by = ?1 AND state = 'sending')";
	sqlite3_stmt *st = NULL;
	int64_t n = 0, *ids = NULL;
	int *resend = NULL;
	size_t cnt = 0, alloc = 0, i;
	int rc;

	if (store_begin(s, err) != 0)
		return -1;
	if (stale_before_ms > 0) {
		/* Decided under the write lock: a renewal either landed before us or waits for us. */
		if (sqlite3_prepare_v2(s->db, "SELECT heartbeat_ms + lease_ms < ?2 FROM runners "
		                              "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, stale_before_ms);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			goto fail;
		if (rc == SQLITE_DONE || sqlite3_column_int(st, 0) == 0) {
			sqlite3_finalize(st);
			store_rollback(s);
			return 0;
		}
		sqlite3_finalize(st);
	}
	if (sqlite3_prepare_v2(s->db, limits_sql, -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->db, "SELECT d.id, c.provider FROM deliveries d JOIN campaigns c ON "
	                              "c.id = d.campaign_id WHERE d.claimed_by = ?1 AND d.state = 'sending'",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == alloc) {
			int64_t *ni = realloc(ids, (alloc ? alloc * 2 : 64) * sizeof *ni);
			int *nr = ni ? realloc(resend, (alloc ? alloc * 2 : 64) * sizeof *nr) : NULL;

			if (ni)
				ids = ni;
			if (!nr)
				goto fail;
			resend = nr;
			alloc = alloc ? alloc * 2 : 64;
		}
		ids[cnt] = sqlite3_column_int64(st, 0);
		resend[cnt++] = dedups((const char *)sqlite3_column_text(st, 1));
	}
	/* An error is not the end of the rows: deleting the runner then would strand them. */
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	for (i = 0; i < cnt; i++, n++)
		if (reap_one(s, ids[i], resend[i], now_ms) != 0)
			goto fail;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM runners WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	free(ids);
	free(resend);
	return store_commit(s, err) == 0 ? n : -1;
fail:
	store_fail(s, err, "reaping a stopped runner");
	sqlite3_finalize(st);
	store_rollback(s);
	free(ids);
	free(resend);
	return -1;
}
