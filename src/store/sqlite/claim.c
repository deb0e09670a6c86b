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

/* The claim's due rows of campaign c, in due order, at most cap. */
static int
claim_due(struct store *base, const struct store_campaign *c, int64_t now_ms, int64_t cap,
          struct store_job **jobs, size_t *n, size_t *alloc, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CLAIM_SELECT);

	if (!st)
		return sqlite_fail(s, err, "claim");
	sqlite3_bind_int64(st, 1, c->id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, cap);
	return claim_rows(st, c, jobs, n, alloc) == SQLITE_DONE ? 0 : sqlite_fail(s, err, "claim");
}

/* The members of batch `batch` a cap cut off: they share its next_at, so they follow the last
   member taken (last) in id order. */
static int
claim_batch_rest(struct store *base, const struct store_campaign *c, int64_t batch,
                 int64_t last, int64_t now_ms, struct store_job **jobs, size_t *n,
                 size_t *alloc, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CLAIM_BATCH_REST);

	if (!st)
		return sqlite_fail(s, err, "claim");
	sqlite3_bind_int64(st, 1, batch);
	sqlite3_bind_int64(st, 2, last);
	sqlite3_bind_int64(st, 3, now_ms);
	return claim_rows(st, c, jobs, n, alloc) == SQLITE_DONE ? 0 : sqlite_fail(s, err, "claim");
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
claim_mark(struct store *base, int64_t runner_id, const struct store_claim_cb *cb,
           struct store_job *jobs, size_t first, size_t *n, int64_t now_ms, int64_t settled[3],
           char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
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
	store_jobs_clear(jobs, kept, *n);
	*n = kept;
	rc = 0;
out:
	buf_free(&ids);
	return rc == 0 ? 0 : sqlite_fail(s, err, "claim");
}

/* The claim's transaction: SQLite's write lock keeps claims one at a time. */
static int
claim_begin(struct store *base, int64_t runner_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	(void)runner_id;
	if (sqlite_begin(base, err) != 0)
		return -1;
	return sqlite_audience_begin(s) == 0 ? 0 : sqlite_fail(s, err, "claim");
}

/* Reads the channels that are not active. */
static int
claim_held(struct store *base, struct store_held **out, size_t *n, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CHANNELS_HELD);
	size_t alloc = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return sqlite_fail(s, err, "claim");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_held *h;

		if (*n == alloc) {
			struct store_held *p = realloc(*out, (alloc = alloc ? alloc * 2 : 8) * sizeof *p);

			if (!p) {
				sqlite3_reset(st);
				return util_err(err, "claim: out of memory");
			}
			*out = p;
		}
		h = &(*out)[(*n)++];
		sqlite_col_copy(st, 0, h->name, sizeof h->name);
		h->paused = strcmp((const char *)sqlite3_column_text(st, 1), "paused") == 0;
		h->next_probe_at_ms = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "claim");
}

/* Reads the active campaigns, by id. */
static int
claim_campaigns(struct store *base, struct store_campaign **out, size_t *n, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_ACTIVE_CAMPAIGNS);
	size_t alloc = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!st)
		return sqlite_fail(s, err, "claim");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == alloc) {
			struct store_campaign *p = realloc(*out, (alloc = alloc ? alloc * 2 : 16) *
			                                   sizeof *p);

			if (!p) {
				sqlite3_reset(st);
				return util_err(err, "claim: out of memory");
			}
			*out = p;
		}
		sqlite_campaign_from_row(st, 0, &(*out)[(*n)++]);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "claim");
}

/* A probe was claimed: the next one waits the interval, which doubles. */
static int
claim_probed(struct store *base, const char *channel, int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_CHANNEL_PROBED);

	if (!st)
		return sqlite_fail(s, err, "claim");
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, STORE_PROBE_MAX_MS);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite_fail(s, err, "claim");
}

static const struct store_claim_ops claim_ops = {
	.begin = claim_begin,
	.held = claim_held,
	.campaigns = claim_campaigns,
	.due = claim_due,
	.batch_rest = claim_batch_rest,
	.mark = claim_mark,
	.probed = claim_probed,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
};

/*
 * Read first, write after: the driver has a campaign's rows read (and the statement reset)
 * before it asks to mark them, as updating rows a SELECT is walking is undefined in SQLite.
 */
int
sqlite_claim(struct store *base, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
            struct store_job **jobs, size_t *n_jobs, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return store_claim_run(base, &claim_ops, &s->claim_turn, runner_id, now_ms, cb, jobs,
	                       n_jobs, err);
}
