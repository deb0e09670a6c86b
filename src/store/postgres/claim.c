/*
 * postgres/claim: the scheduler's claims on PostgreSQL, and the next due time. A claim is one
 * short transaction that turns due rows into 'sending' rows owned by one runner, keeping every
 * rule that decides whether a delivery may go now (expiry, the audience rules, per-account
 * limits, held channels, whole batches), with SQLite's semantics (sqlite/claim.c).
 *
 * Several nodes share one database and claim at once. Rows are selected FOR UPDATE SKIP
 * LOCKED: what another node's claim, an import or a cancel holds is left for the next claim
 * instead of being waited for, and a row is marked only while it still waits. Rules that count
 * across rows (SaiNiu's per-account rule, frequency caps, whole batches, one probe) would see
 * each other's claims only after their commits: the claims of campaigns with such rules take
 * turns under transaction-scoped advisory locks on what they share, the channel or the
 * provider (serialize, pgs_lock_serial), as every write that changes what they read does.
 * The session commits synchronously, so a row is 'sending' on disk before its request leaves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "postgres_int.h"
#include "util.h"

/* What a claim reads of each delivery: everything its request needs. */
#define PGS_CLAIM_COLS \
	"SELECT d.id, d.step, s.day, s.time, d.attempts, d.due_at_ms, d.expires_at_ms, " \
	"coalesce(d.send_at_ms, 0), d.msg_random, r.rid, r.data, s.message, " \
	"coalesce(d.batch_id, 0) FROM deliveries d " \
	"JOIN recipients r ON r.id = d.recipient_id " \
	"JOIN steps s ON s.campaign_id = d.campaign_id AND s.position = d.step "

/* What claim_mark decided for each job. */
enum mark {
	MARK_DROP,        /* left waiting, or settled without a request */
	MARK_DONE,        /* marked 'sending' already (a limited job, with its send time) */
	MARK_SET,         /* to be marked with the others in one statement */
	MARK_SET_CAPPED,  /* likewise, and counted in cap_sends */
};

/* Appends a delivery id to a PostgreSQL array literal being built ("{1,2,3}" once closed). */
static int
id_list_add(struct buf *b, int64_t id)
{
	return buf_printf(b, "%c%lld", b->len ? ',' : '{', (long long)id);
}

/*
 * A paused channel's deliveries wait for an operator, a suspended one's for its probe.
 * greatest() would skip a NULL where SQLite's max() yields one: a suspended channel with nothing
 * waiting must not offer its probe time.
 */
static const char next_due_sql[] =
	"SELECT min(CASE coalesce(ch.state, 'active') WHEN 'active' THEN w.at "
	"WHEN 'suspended' THEN CASE WHEN w.at IS NOT NULL AND ch.next_probe_at_ms IS NOT NULL "
	"THEN greatest(w.at, ch.next_probe_at_ms) END END) FROM "
	"(SELECT c.channel AS channel, (SELECT min(d.next_at_ms) FROM deliveries d "
	"WHERE d.campaign_id = c.id AND d.state IN " PGS_WAITING ") AS at "
	"FROM campaigns c WHERE c.state = 'active') w LEFT JOIN channels ch ON ch.name = w.channel";

int
postgres_next_due(struct store *base, int64_t *next_at_ms, char **err)
{
	int ok;

	*next_at_ms = pgs_scalar((struct pg_store *)base, next_due_sql, NULL, INT64_MAX, "next due",
	                         err, &ok);
	return ok ? 0 : -1;
}

/* Appends the rows of r to *jobs (growing it). 0 / -1 with *err. */
static int
claim_rows(struct pg_store *s, const PGresult *r, const struct store_campaign *c,
           struct store_job **jobs, size_t *n, size_t *alloc, char **err)
{
	int row;

	for (row = 0; row < PQntuples(r); row++) {
		struct store_job *j;

		if (*n == *alloc) {
			size_t na = *alloc ? *alloc * 2 : 64;
			struct store_job *p = realloc(*jobs, na * sizeof *p);

			if (!p)
				return pgs_fail(s, err, "claim", "out of memory");
			*jobs = p;
			*alloc = na;
		}
		j = &(*jobs)[(*n)++];
		memset(j, 0, sizeof *j);
		j->delivery_id = pgs_col_int(r, row, 0, 0);
		j->campaign_id = c->id;
		j->step = (int)pgs_col_int(r, row, 1, 0);
		j->step_day = (int)pgs_col_int(r, row, 2, 0);
		pgs_col_copy(r, row, 3, j->step_time, sizeof j->step_time);
		j->attempts = (int)pgs_col_int(r, row, 4, 0) + 1;
		j->due_at_ms = pgs_col_int(r, row, 5, 0);
		j->expires_at_ms = pgs_col_int(r, row, 6, 0);
		j->send_at_ms = pgs_col_int(r, row, 7, 0);
		j->msg_random = (uint32_t)pgs_col_int(r, row, 8, 0);
		j->campaign = *c;
		j->rid = pgs_col_dup(r, row, 9);
		j->recipient_json = pgs_col_dup(r, row, 10);
		j->message_json = pgs_col_dup(r, row, 11);
		j->batch_id = pgs_col_int(r, row, 12, 0);
		if (!j->rid || !j->recipient_json || !j->message_json)
			return pgs_fail(s, err, "claim", "out of memory");
	}
	return 0;
}

/* The members of batch `batch` a LIMIT cut off: they share its next_at, so they follow the
   last member taken (last) in id order. */
static int
claim_batch_rest(struct store *base, const struct store_campaign *c, int64_t batch,
                 int64_t last, int64_t now_ms, struct store_job **jobs, size_t *n,
                 size_t *alloc, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int rc;

	pgs_int(&p, batch);
	pgs_int(&p, last);
	pgs_int(&p, now_ms);
	if (!(r = pgs_query(s, PGS_CLAIM_COLS "WHERE d.batch_id = $1 AND d.id > $2 AND d.state IN "
	                       PGS_WAITING " AND d.next_at_ms <= $3 ORDER BY d.id "
	                       "FOR UPDATE OF d SKIP LOCKED",
	                    &p, "claim", err)))
		return -1;
	rc = claim_rows(s, r, c, jobs, n, alloc, err);
	PQclear(r);
	return rc;
}

/*
 * The claim's due rows of campaign c, in due order, at most cap, each locked until the claim
 * ends. The order is SQLite's (an index there ends in the rowid): it stays a short index walk
 * only while the ready index ends in id, else every claim sorts the backlog.
 */
static int
claim_due(struct store *base, const struct store_campaign *c, int64_t now_ms, int64_t cap,
          struct store_job **jobs, size_t *n, size_t *alloc, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int rc;

	pgs_int(&p, c->id);
	pgs_int(&p, now_ms);
	pgs_int(&p, cap);
	if (!(r = pgs_query(s, PGS_CLAIM_COLS "WHERE d.campaign_id = $1 AND d.state IN " PGS_WAITING
	                       " AND d.next_at_ms <= $2 ORDER BY d.next_at_ms, d.id LIMIT $3 "
	                       "FOR UPDATE OF d SKIP LOCKED",
	                    &p, "claim", err)))
		return -1;
	rc = claim_rows(s, r, c, jobs, n, alloc, err);
	PQclear(r);
	return rc;
}

/*
 * Decides a job with a limit account: 1 admitted (j->send_at_ms set; the caller marks it and
 * reserves the account), 0 left for later, 2 left deferred, -1 on error with *err.
 */
static int
claim_limited(struct pg_store *s, const struct store_claim_cb *cb, struct store_job *j,
              const char *account, int64_t now_ms, char **err)
{
	struct store_limit lim = {0};
	struct pgs_params p = {0}, q = {0};
	int64_t send_at = 0, defer_until = 0;
	char why[320], when[40];
	PGresult *r;

	pgs_text(&p, j->campaign.provider);
	pgs_text(&p, account);
	/* Held to the commit: a result another node records for the account waits for us, and we
	   decide on the last one committed, never on one about to change. */
	if (!(r = pgs_query(s, "SELECT coalesce(last_call_ms, 0), coalesce(last_send_at_ms, 0), "
	                       "reserved_by IS NOT NULL FROM account_limits "
	                       "WHERE provider = $1 AND account = $2 FOR UPDATE",
	                    &p, "claim", err)))
		return -1;
	if (PQntuples(r) > 0) {
		lim.last_call_ms = pgs_col_int(r, 0, 0, 0);
		lim.last_send_at_ms = pgs_col_int(r, 0, 1, 0);
		lim.reserved = (int)pgs_col_int(r, 0, 2, 0);
	}
	PQclear(r);
	pgs_int(&q, j->delivery_id);
	switch (cb->admit(cb->arg, j, &lim, now_ms, &send_at, &defer_until)) {
	case STORE_ADMIT:
		j->send_at_ms = send_at;
		return 1;
	case STORE_DEFER:
		store_format_when(&s->when_zone, j->campaign.timezone, send_at, when);
		snprintf(why, sizeof why, "deferred by %s's per-account limit for %s: goes at %s",
		         j->campaign.provider, account, when);
		pgs_int(&q, defer_until);
		pgs_int(&q, send_at);
		pgs_text(&q, why);
		/* A rule's deferral is never a reason to drop a delivery (SPEC 5.3): its expiry
		   moves with its send time, keeping the same slack. */
		return pgs_exec(s, "UPDATE deliveries SET state = 'deferred', next_at_ms = $2, "
		                   "send_at_ms = $3, expires_at_ms = greatest(expires_at_ms, "
		                   "$3::bigint + expires_at_ms - due_at_ms), last_error = $4 "
		                   "WHERE id = $1",
		                &q, "claim", err) < 0 ? -1 : 2;
	case STORE_WAIT:
		/* Another call for this account is in flight; look again in a second. */
		pgs_int(&q, now_ms + SECOND_MS);
		return pgs_exec(s, "UPDATE deliveries SET next_at_ms = $2 WHERE id = $1", &q,
		                "claim", err) < 0 ? -1 : 0;
	}
	return pgs_fail(s, err, "claim", "the account limit gave no decision");
}

/*
 * Marks an admitted limited job 'sending' with its send time and reserves its account (the
 * reservation only once the row is surely ours). 1 claimed, 0 no longer waiting, -1.
 */
static int
claim_limited_mark(struct pg_store *s, int64_t runner_id, const struct store_job *j,
                   const char *account, char **err)
{
	struct pgs_params p = {0}, q = {0};
	int64_t got;

	pgs_int(&p, j->delivery_id);
	pgs_int(&p, runner_id);
	pgs_int(&p, j->send_at_ms);
	if ((got = pgs_exec(s, "UPDATE deliveries SET state = 'sending', claimed_by = $2, "
	                       "attempts = attempts + 1, send_at_ms = nullif($3::bigint, 0) "
	                       "WHERE id = $1 AND state IN " PGS_WAITING,
	                    &p, "claim", err)) <= 0)
		return (int)got;
	pgs_text(&q, j->campaign.provider);
	pgs_text(&q, account);
	pgs_int(&q, j->delivery_id);
	return pgs_exec(s, "INSERT INTO account_limits (provider, account, reserved_by) VALUES "
	                   "($1, $2, $3) ON CONFLICT (provider, account) DO UPDATE SET "
	                   "reserved_by = excluded.reserved_by",
	                &q, "claim", err) < 0 ? -1 : 1;
}

#define EXPIRED_WHY \
	"'expired: its last moment to go had passed (expire_after after its due time; for a " \
	"provider-scheduled step, the step itself)'"

/* Expires the rows of ids (an array literal) that still wait; how many, or -1. */
static int64_t
claim_expire(struct pg_store *s, const char *ids, char **err)
{
	struct pgs_params p = {0};

	pgs_text(&p, ids);
	return pgs_exec(s, "UPDATE deliveries SET state = 'expired', last_error = " EXPIRED_WHY
	                   " WHERE id = ANY($1::bigint[]) AND state IN " PGS_WAITING,
	                &p, "claim", err);
}

/*
 * A plain campaign's claim as one statement: its due rows, skipping those another
 * transaction holds, marked 'sending' (or 'expired', past their expiry) and returned with
 * what their requests need, in PGS_CLAIM_COLS's columns (attempts as they were) and whether
 * each expired. The opt-out list has to be read job by job: with any listing, declined.
 */
static int
claim_take(struct store *base, int64_t runner_id, const struct store_campaign *c,
           int64_t now_ms, int64_t cap, struct store_job **jobs, size_t *n, size_t *alloc,
           int64_t settled[3], char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	size_t first = *n, i, kept;
	PGresult *r;
	int rc;

	if (s->claim_suppressions)
		return 0;
	pgs_int(&p, c->id);
	pgs_int(&p, now_ms);
	pgs_int(&p, cap);
	pgs_int(&p, runner_id);
	/* Only rows whose step still exists, as the select of the other path (a step a
	   re-import removed leaves rows that `retry` may make due again). */
	if (!(r = pgs_query(s, "WITH due AS (SELECT d.id, d.send_at_ms FROM deliveries d "
	                       "JOIN steps s ON s.campaign_id = d.campaign_id AND "
	                       "s.position = d.step WHERE d.campaign_id = $1 AND d.state IN "
	                       PGS_WAITING " AND d.next_at_ms <= $2 ORDER BY d.next_at_ms, d.id "
	                       "LIMIT $3 FOR UPDATE OF d SKIP LOCKED), "
	                       "took AS (UPDATE deliveries d SET "
	                       "state = CASE WHEN d.expires_at_ms > $2 THEN 'sending' "
	                       "ELSE 'expired' END, "
	                       "claimed_by = CASE WHEN d.expires_at_ms > $2 THEN $4::bigint END, "
	                       "attempts = d.attempts + (d.expires_at_ms > $2)::integer, "
	                       "send_at_ms = CASE WHEN d.expires_at_ms > $2 THEN NULL "
	                       "ELSE d.send_at_ms END, "
	                       "last_error = CASE WHEN d.expires_at_ms > $2 THEN d.last_error "
	                       "ELSE " EXPIRED_WHY " END "
	                       "FROM due WHERE d.id = due.id RETURNING d.id, d.step, d.attempts, "
	                       "d.due_at_ms, d.next_at_ms, d.expires_at_ms, due.send_at_ms, "
	                       "d.msg_random, d.recipient_id, d.batch_id, d.state) "
	                       "SELECT t.id, t.step, s.day, s.time, "
	                       "t.attempts - (t.state = 'sending')::integer, t.due_at_ms, "
	                       "t.expires_at_ms, coalesce(t.send_at_ms, 0), t.msg_random, r.rid, "
	                       "r.data, s.message, coalesce(t.batch_id, 0), t.state = 'expired' "
	                       "FROM took t JOIN recipients r ON r.id = t.recipient_id "
	                       "JOIN steps s ON s.campaign_id = $1 AND s.position = t.step "
	                       "ORDER BY t.next_at_ms, t.id",
	                    &p, "claim", err)))
		return -1;
	rc = claim_rows(s, r, c, jobs, n, alloc, err);
	for (i = kept = first; rc == 0 && i < *n; i++) {
		if (strcmp(PQgetvalue(r, (int)(i - first), 13), "t") == 0) {
			settled[0]++;
			store_jobs_clear(*jobs, i, i + 1);
			continue;
		}
		if (kept != i)
			(*jobs)[kept] = (*jobs)[i];
		kept++;
	}
	if (rc == 0)
		*n = kept;
	PQclear(r);
	return rc == 0 ? 1 : -1;
}

static int
id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Marks the jobs of ids (an array literal, n_ids of them, flagged MARK_SET*) 'sending' in one
 * statement. A job whose row no longer waits is dropped, and its cap reservation with it.
 */
static int
claim_mark_set(struct pg_store *s, int64_t runner_id, const struct store_job *jobs,
               enum mark *mark, size_t count, const char *ids, size_t n_ids, char **err)
{
	struct pgs_params p = {0};
	struct buf lost = {0};
	int64_t *got = NULL;
	PGresult *r;
	size_t i;
	int row, rc = -1;

	pgs_text(&p, ids);
	pgs_int(&p, runner_id);
	if (!(r = pgs_query(s, "UPDATE deliveries SET state = 'sending', claimed_by = $2, "
	                       "attempts = attempts + 1, send_at_ms = NULL "
	                       "WHERE id = ANY($1::bigint[]) AND state IN " PGS_WAITING
	                       " RETURNING id",
	                    &p, "claim", err)))
		return -1;
	if ((size_t)PQntuples(r) == n_ids) {
		rc = 0;  /* the rows are locked since the select: the usual case */
		goto out;
	}
	if (!(got = malloc(((size_t)PQntuples(r) + 1) * sizeof *got)))
		goto oom;
	for (row = 0; row < PQntuples(r); row++)
		got[row] = pgs_col_int(r, row, 0, 0);
	qsort(got, (size_t)PQntuples(r), sizeof *got, id_cmp);
	for (i = 0; i < count; i++) {
		if ((mark[i] != MARK_SET && mark[i] != MARK_SET_CAPPED) ||
		    bsearch(&jobs[i].delivery_id, got, (size_t)PQntuples(r), sizeof *got, id_cmp))
			continue;
		if (mark[i] == MARK_SET_CAPPED && id_list_add(&lost, jobs[i].delivery_id) != 0)
			goto oom;
		mark[i] = MARK_DROP;
	}
	if (lost.len) {
		struct pgs_params q = {0};

		if (buf_append(&lost, "}", 1) != 0)
			goto oom;
		pgs_text(&q, lost.data);
		if (pgs_exec(s, "DELETE FROM cap_sends WHERE delivery_id = ANY($1::bigint[])", &q,
		             "claim", err) < 0)
			goto out;
	}
	rc = 0;
	goto out;
oom:
	pgs_fail(s, err, "claim", "out of memory");
out:
	PQclear(r);
	free(got);
	buf_free(&lost);
	return rc;
}

/* Marks the claimable jobs of one campaign 'sending', dropping the others from the array;
   counts what it expired (settled[0]), deferred (settled[1]) and suppressed (settled[2]). */
static int
claim_mark(struct store *base, int64_t runner_id, const struct store_claim_cb *cb,
           struct store_job *jobs, size_t first, size_t *n, int64_t now_ms, int64_t settled[3],
           char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct buf expired = {0}, ids = {0};
	size_t i, kept = first, count = *n - first, n_ids = 0;
	enum mark *mark = NULL;
	int64_t got;
	int rc = -1;

	if (count == 0)
		return 0;
	if (!(mark = calloc(count, sizeof *mark)))
		goto oom;
	/* Expired rows are settled as the claim meets them, so no claim walks them all. */
	for (i = first; i < *n; i++) {
		if (jobs[i].expires_at_ms > now_ms)
			continue;
		if (id_list_add(&expired, jobs[i].delivery_id) != 0)
			goto oom;
	}
	if (expired.len) {
		if (buf_append(&expired, "}", 1) != 0)
			goto oom;
		if ((got = claim_expire(s, expired.data, err)) < 0)
			goto out;
		settled[0] += got;
	}
	if (pgs_audience_prefetch(s, jobs + first, count) != 0)
		goto rules;
	for (i = first; i < *n; i++) {
		struct store_job *j = &jobs[i];
		struct store_audience aud;
		const char *account;
		int take;

		if (j->expires_at_ms <= now_ms)
			continue;
		/* Opt-out, quiet hours and the frequency cap come first: a job they hold back must
		   not take a provider's per-account reservation. */
		if ((take = pgs_audience_check(s, cb, j, now_ms, &aud)) < 0)
			goto rules;
		if (!take) {
			settled[aud.held == 1 ? 2 : 1] += aud.held != 0;
			continue;
		}
		account = cb->account ? cb->account(cb->arg, j) : NULL;
		if (!account) {
			/* Counted in the cap at once: a later job of this claim for the same
			   recipient must see it. The row is marked below, with the others. */
			if (pgs_audience_reserve(s, j, &aud, now_ms) != 0)
				goto rules;
			if (id_list_add(&ids, j->delivery_id) != 0)
				goto oom;
			n_ids++;
			mark[i - first] = aud.cap_max > 0 ? MARK_SET_CAPPED : MARK_SET;
			continue;
		}
		if ((take = claim_limited(s, cb, j, account, now_ms, err)) < 0)
			goto out;
		if (take != 1) {
			settled[1] += take == 2;
			continue;
		}
		/* A limited job carries its admitted send time: marked on its own. */
		if ((take = claim_limited_mark(s, runner_id, j, account, err)) < 0)
			goto out;
		if (!take)
			continue;
		if (pgs_audience_reserve(s, j, &aud, now_ms) != 0)
			goto rules;
		mark[i - first] = MARK_DONE;
	}
	if (n_ids) {
		if (buf_append(&ids, "}", 1) != 0)
			goto oom;
		if (claim_mark_set(s, runner_id, jobs + first, mark, count, ids.data, n_ids,
		                   err) != 0)
			goto out;
	}
	for (i = first; i < *n; i++) {
		if (mark[i - first] == MARK_DROP) {
			store_jobs_clear(jobs, i, i + 1);
			continue;
		}
		if (kept != i)
			jobs[kept] = jobs[i];
		kept++;
	}
	*n = kept;
	rc = 0;
	goto out;
oom:
	pgs_fail(s, err, "claim", "out of memory");
	goto out;
rules:
	/* The audience rules leave the server's words on the handle, as SQLite's do. */
	pgs_fail(s, err, "claim", s->errmsg);
out:
	pgs_audience_end(s);
	free(mark);
	buf_free(&expired);
	buf_free(&ids);
	return rc;
}

/*
 * The claim's transaction, fenced: a runner whose connection dropped is settled by another
 * node at once, while its own lease still looks valid to it. What it claimed under its old id
 * would belong to no runner row, and nobody would ever settle it.
 */
#define HELD_SQL \
	"SELECT name, state, coalesce(next_probe_at_ms, 0) FROM channels WHERE state <> 'active'"
#define CAMPAIGNS_SQL \
	"SELECT " PGS_CAMPAIGN_COLS " FROM campaigns c WHERE c.state = 'active' ORDER BY c.id"

/* With its first reads in the same round trip: whether anyone is opted out, the channels that
   are not active, the active campaigns. */
static int
claim_begin(struct store *base, int64_t runner_id, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	PGresult *r[3];

	PQclear(s->claim_read[0]);
	PQclear(s->claim_read[1]);
	s->claim_read[0] = s->claim_read[1] = NULL;
	if (pgs_begin_batch(s, runner_id, 0, PGS_ANY_SUPPRESSION "; " HELD_SQL "; " CAMPAIGNS_SQL,
	                    r, 3, "claim", err) != 0)
		return -1;
	pgs_audience_begin(s, r[0]);
	PQclear(r[0]);
	s->claim_read[0] = r[1];
	s->claim_read[1] = r[2];
	return 0;
}

/* The result of sql: read with the claim's BEGIN (*early, taken), or now. */
static PGresult *
claim_read(struct pg_store *s, PGresult **early, const char *sql, char **err)
{
	PGresult *r = *early;

	*early = NULL;
	return r ? r : pgs_query(s, sql, NULL, "claim", err);
}

static int
claim_serialize(struct store *base, const struct store_serial_key *keys, size_t n, char **err)
{
	struct pg_store *s = (struct pg_store *)base;

	/* The channels, read again in the same round trip once the locks are held. */
	PQclear(s->claim_read[0]);
	return pgs_lock_serial(s, keys, n, HELD_SQL, &s->claim_read[0], "claim", err);
}

/* Reads the channels that are not active. */
static int
claim_held(struct store *base, struct store_held **out, size_t *n, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	PGresult *r;
	int row;

	*out = NULL;
	*n = 0;
	if (!(r = claim_read(s, &s->claim_read[0], HELD_SQL, err)))
		return -1;
	if (PQntuples(r) > 0 && !(*out = calloc((size_t)PQntuples(r), sizeof **out))) {
		PQclear(r);
		return pgs_fail(s, err, "claim", "out of memory");
	}
	for (row = 0; row < PQntuples(r); row++) {
		struct store_held *h = &(*out)[(*n)++];

		pgs_col_copy(r, row, 0, h->name, sizeof h->name);
		h->paused = strcmp(PQgetvalue(r, row, 1), "paused") == 0;
		h->next_probe_at_ms = pgs_col_int(r, row, 2, 0);
	}
	PQclear(r);
	return 0;
}

/* Reads the active campaigns, by id. */
static int
claim_campaigns(struct store *base, struct store_campaign **out, size_t *n, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	PGresult *r;
	int row;

	*out = NULL;
	*n = 0;
	if (!(r = claim_read(s, &s->claim_read[1], CAMPAIGNS_SQL, err)))
		return -1;
	if (PQntuples(r) > 0 && !(*out = calloc((size_t)PQntuples(r), sizeof **out))) {
		PQclear(r);
		return pgs_fail(s, err, "claim", "out of memory");
	}
	for (row = 0; row < PQntuples(r); row++)
		pgs_campaign_from_row(r, row, 0, &(*out)[(*n)++]);
	PQclear(r);
	return 0;
}

/* A probe was claimed: the next one waits the interval, which doubles (at most the cap).
   least() would skip a NULL interval where SQLite's min() keeps it. */
static int
claim_probed(struct store *base, const char *channel, int64_t now_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};

	pgs_text(&p, channel);
	pgs_int(&p, now_ms);
	pgs_int(&p, STORE_PROBE_MAX_MS);
	return pgs_exec(s, "UPDATE channels SET next_probe_at_ms = $2 + probe_interval_ms, "
	                   "probe_interval_ms = CASE WHEN probe_interval_ms IS NOT NULL THEN "
	                   "least(probe_interval_ms * 2, $3::bigint) END "
	                   "WHERE name = $1 AND state = 'suspended'",
	                &p, "claim", err) < 0 ? -1 : 0;
}

static const struct store_claim_ops claim_ops = {
	.begin = claim_begin,
	.serialize = claim_serialize,
	.take = claim_take,
	.held = claim_held,
	.campaigns = claim_campaigns,
	.due = claim_due,
	.batch_rest = claim_batch_rest,
	.mark = claim_mark,
	.probed = claim_probed,
	.commit = postgres_commit,
	.rollback = postgres_rollback,
};

int
postgres_claim(struct store *base, int64_t runner_id, int64_t now_ms,
               const struct store_claim_cb *cb, struct store_job **jobs, size_t *n_jobs,
               char **err)
{
	struct pg_store *s = (struct pg_store *)base;

	return store_claim_run(base, &claim_ops, &s->claim_turn, runner_id, now_ms, cb, jobs,
	                       n_jobs, err);
}
