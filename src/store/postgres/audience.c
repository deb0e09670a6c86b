/*
 * postgres/audience: the claim's side of the audience rules (SPEC 5.12), as SQLite's
 * audience.c keeps them: a suppressed recipient's due delivery becomes 'suppressed', a delivery
 * inside quiet hours or past its channel's frequency cap is 'deferred' to the earliest allowed
 * time, and a claimed send counts in cap_sends until its result says it went (or may have).
 * Everything but the settle runs inside the claim's transaction; a capped channel's claims
 * take turns (claim.c), so no two nodes can both pass the cap. (The opt-out list's own
 * operations are elsewhere.)
 *
 * Like SQLite's, these take no err: on -1 the handle's errmsg holds the server's message.
 */
#include <stdio.h>
#include <string.h>

#include "postgres_int.h"
#include "util.h"

void
pgs_audience_begin(struct pg_store *s, const PGresult *any)
{
	pgs_audience_end(s);
	/* An empty list (the usual case) costs one probe per claim instead of one per job. */
	s->claim_suppressions = PQntuples(any) == 1 && strcmp(PQgetvalue(any, 0, 0), "t") == 0;
}

void
pgs_audience_end(struct pg_store *s)
{
	PQclear(s->claim_optouts);
	s->claim_optouts = NULL;
}

/*
 * One statement for the opt-out listings of all the jobs (one campaign's: one channel) instead
 * of one per job; nothing the claim does changes the list. Listed on both the channel's list
 * and every channel's, the first in byte order is named, as SQLite's index walk names it.
 */
int
pgs_audience_prefetch(struct pg_store *s, const struct store_job *jobs, size_t n)
{
	struct pgs_params p = {0};
	struct buf rids = {0};
	const char *c;
	size_t i;
	int bad = 0;

	pgs_audience_end(s);
	if (!s->claim_suppressions || n == 0)
		return 0;
	/* An array literal of quoted elements: {"a","b\"c"}. */
	for (i = 0; i < n; i++) {
		bad |= buf_append(&rids, i ? ",\"" : "{\"", 2);
		for (c = jobs[i].rid; *c; c++) {
			if (*c == '"' || *c == '\\')
				bad |= buf_append(&rids, "\\", 1);
			bad |= buf_append(&rids, c, 1);
		}
		bad |= buf_append(&rids, "\"", 1);
	}
	if (bad || buf_append(&rids, "}", 1) != 0) {
		buf_free(&rids);
		return pgs_fail(s, NULL, "claim", "out of memory");
	}
	pgs_text(&p, jobs[0].campaign.channel);
	pgs_text(&p, rids.data);
	s->claim_optouts = pgs_query(s, "SELECT rid, min(channel COLLATE \"C\") FROM suppressions "
	                                "WHERE channel IN ($1, '" STORE_ALL_CHANNELS "') AND "
	                                "rid = ANY($2::text[]) GROUP BY rid "
	                                "ORDER BY rid COLLATE \"C\"",
	                             &p, "claim", NULL);
	buf_free(&rids);
	return s->claim_optouts ? 0 : -1;
}

/* 1 and the listing's channel in list (a name or "*") if the job's recipient is suppressed. */
static int
suppressed(struct store *base, const struct store_job *j, char *list, size_t size)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r = s->claim_optouts;
	int lo = 0, hi, mid, cmp, found;

	if (!s->claim_suppressions)
		return 0;  /* an empty list, as seen at the claim's start: no lookup per job */
	if (r) {
		/* Read ahead, by rid in byte order. */
		for (hi = PQntuples(r); lo < hi;) {
			mid = lo + (hi - lo) / 2;
			if ((cmp = strcmp(PQgetvalue(r, mid, 0), j->rid)) == 0) {
				pgs_col_copy(r, mid, 1, list, size);
				return 1;
			}
			if (cmp < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		return 0;
	}
	pgs_text(&p, j->campaign.channel);
	pgs_text(&p, j->rid);
	if (!(r = pgs_query(s, "SELECT channel FROM suppressions WHERE rid = $2 AND channel IN "
	                       "($1, '" STORE_ALL_CHANNELS "') ORDER BY channel COLLATE \"C\" "
	                       "LIMIT 1",
	                    &p, "claim", NULL)))
		return -1;
	if ((found = PQntuples(r) > 0))
		pgs_col_copy(r, 0, 0, list, size);
	PQclear(r);
	return found;
}

static int
suppress(struct store *base, int64_t delivery_id, const char *why)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};

	pgs_int(&p, delivery_id);
	pgs_text(&p, why);
	return pgs_exec(s, "UPDATE deliveries SET state = 'suppressed', last_error = $2 "
	                   "WHERE id = $1",
	                &p, "claim", NULL) < 0 ? -1 : 0;
}

/* A rule's deferral is no reason to drop a delivery: its expiry moves with it, keeping the
   slack it had (as for SaiNiu's rule), so quiet hours or a cap never turn it 'expired'. */
static int
defer(struct store *base, int64_t delivery_id, int64_t at_ms, const char *why)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};

	pgs_int(&p, delivery_id);
	pgs_int(&p, at_ms);
	pgs_text(&p, why);
	return pgs_exec(s, "UPDATE deliveries SET state = 'deferred', next_at_ms = $2, "
	                   "expires_at_ms = greatest(expires_at_ms, $2::bigint + expires_at_ms - "
	                   "due_at_ms), last_error = $3 WHERE id = $1",
	                &p, "claim", NULL) < 0 ? -1 : 0;
}

/*
 * The earliest time the job's recipient is under its channel's cap: 0 when it is now, else
 * the moment the oldest send that keeps it over leaves the window. With c sends in the window
 * (oldest first a[0..c-1]) one more may go once at most max-1 remain, that is at
 * a[c-max] + per. Sends older than the window are pruned in the same statement (its SELECT
 * reads them past the window, so the prune cannot change what it counts), which keeps the
 * window's rows few; the delivery's own row (a resend after an ambiguous outcome) is not
 * another send.
 */
static int
cap_until(struct store *base, const struct store_job *j, const struct store_audience *a,
          int64_t now_ms, int64_t *until_ms)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int count;

	*until_ms = 0;
	pgs_text(&p, j->campaign.channel);
	pgs_text(&p, j->rid);
	pgs_int(&p, now_ms - a->cap_per_ms);
	pgs_int(&p, j->delivery_id);
	/* Pruning is housekeeping: an old row a result batch holds is left for a later claim,
	   never waited for (the batch may be waiting for a row this claim pruned). */
	if (!(r = pgs_query(s, "WITH pruned AS (DELETE FROM cap_sends WHERE delivery_id IN "
	                       "(SELECT delivery_id FROM cap_sends WHERE channel = $1 AND rid = $2 "
	                       "AND at_ms <= $3 FOR UPDATE SKIP LOCKED)) SELECT at_ms FROM cap_sends WHERE "
	                       "channel = $1 AND rid = $2 AND at_ms > $3 AND delivery_id <> $4 "
	                       "ORDER BY at_ms",
	                    &p, "claim", NULL)))
		return -1;
	count = PQntuples(r);
	if (count >= a->cap_max)
		*until_ms = pgs_col_int(r, (int)(count - a->cap_max), 0, 0) + a->cap_per_ms;
	PQclear(r);
	return 0;
}

static const struct store_audience_ops audience_ops = {
	.suppressed = suppressed,
	.cap_until = cap_until,
	.suppress = suppress,
	.defer = defer,
};

int
pgs_audience_check(struct pg_store *s, const struct store_claim_cb *cb, struct store_job *j,
                   int64_t now_ms, struct store_audience *a)
{
	return store_audience_check(&s->base, &audience_ops, &s->when_zone, cb, j, now_ms, a);
}

int
pgs_audience_reserve(struct pg_store *s, const struct store_job *j,
                     const struct store_audience *a, int64_t now_ms)
{
	struct pgs_params p = {0};

	if (a->cap_max <= 0)
		return 0;
	pgs_int(&p, j->delivery_id);
	pgs_text(&p, j->campaign.channel);
	pgs_text(&p, j->rid);
	pgs_int(&p, now_ms);
	return pgs_exec(s, "INSERT INTO cap_sends (delivery_id, channel, rid, at_ms) "
	                   "VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_id) DO UPDATE SET "
	                   "channel = excluded.channel, rid = excluded.rid, at_ms = excluded.at_ms",
	                &p, "claim", NULL) < 0 ? -1 : 0;
}
