/*
 * audience: the audience rules as the store keeps them (SPEC 5.12): the opt-out list,
 * and the claim's side of the rules: a suppressed recipient's due delivery becomes
 * 'suppressed', a delivery inside quiet hours or past its channel's frequency cap is
 * 'deferred' to the earliest allowed time. Everything here runs inside the claim's write
 * transaction, so no two processes can both pass a rule, and a suppression committed by any
 * process holds from the next claim on.
 */
#include <stdio.h>
#include <string.h>

#include "sop.h"
#include "sqlite_int.h"


int64_t
sqlite_suppress_add(struct store *base, const char *channel, const char *const *ids, size_t n,
                    int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int64_t added = 0;
	size_t i;

	/* A statement per id costs SQLite no round trip. */
	for (i = 0; i < n; i++) {
		if (!(st = sqlite_stmt(s, SQL_SUPPRESS_PUT)))
			return sqlite_fail(s, err, "suppress");
		sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			return sqlite_fail(s, err, "suppress");
		added += sqlite3_changes(s->db) > 0;
	}
	return added;
}

int
sqlite_suppress_delete(struct store *base, const char *channel, const char *rid, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_SUPPRESS_DELETE);

	if (!st)
		return sqlite_fail(s, err, "suppress remove");
	sqlite3_bind_text(st, 1, channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return sqlite_fail(s, err, "suppress remove");
	return sqlite3_changes(s->db) > 0;
}

int
sqlite_suppress_list(struct store *base, const char *channel,
                    int (*fn)(void *arg, const struct store_suppression *r), void *arg,
                    char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	const char *sql = "SELECT channel, rid, added_at_ms FROM suppressions "
	                  "WHERE ?1 IS NULL OR channel = ?1 ORDER BY channel, rid";
	struct store_suppression r;
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "suppress list");
	if (channel)
		sqlite3_bind_text(q, 1, channel, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		r.channel = (const char *)sqlite3_column_text(q, 0);
		r.rid = (const char *)sqlite3_column_text(q, 1);
		r.added_at_ms = sqlite3_column_int64(q, 2);
		if (fn(arg, &r) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "suppress list");
}

/* ---- the claim's side ------------------------------------------------------------------ */

int
sqlite_audience_begin(struct sqlite_store *s)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_SUPPRESS_ANY);
	int rc;

	/* An empty list (the usual case) costs one probe per claim instead of one per job. */
	if (!st)
		return -1;
	rc = sqlite3_step(st);
	s->claim_suppressions = rc == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
suppressed(struct store *base, const struct store_job *j, char *list, size_t size)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int rc;

	if (!s->claim_suppressions)
		return 0;  /* an empty list, as seen at the claim's start: no lookup per job */
	if (!(st = sqlite_stmt(s, SQL_SUPPRESS_FIND)))
		return -1;
	sqlite3_bind_text(st, 1, j->campaign.channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->rid, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		sqlite_col_copy(st, 0, list, size);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int
mark(struct sqlite_store *s, enum sqlite_sql id, int64_t delivery_id, int64_t at_ms,
     const char *why)
{
	sqlite3_stmt *st = sqlite_stmt(s, id);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, delivery_id);
	if (at_ms)
		sqlite3_bind_int64(st, 2, at_ms);
	sqlite3_bind_text(st, at_ms ? 3 : 2, why, -1, SQLITE_TRANSIENT);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
suppress(struct store *base, int64_t delivery_id, const char *why)
{
	return mark((struct sqlite_store *)base, SQL_SUPPRESS_MARK, delivery_id, 0, why);
}

static int
defer(struct store *base, int64_t delivery_id, int64_t until_ms, const char *why)
{
	return mark((struct sqlite_store *)base, SQL_AUDIENCE_DEFER, delivery_id, until_ms, why);
}

/* Binds channel, rid, window start and own id, the first four parameters of the cap queries. */
static sqlite3_stmt *
cap_stmt(struct sqlite_store *s, enum sqlite_sql id, const struct store_job *j,
         int64_t since_ms)
{
	sqlite3_stmt *st = sqlite_stmt(s, id);

	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, j->campaign.channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->rid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, since_ms);
	if (sqlite3_bind_parameter_count(st) >= 4)
		sqlite3_bind_int64(st, 4, j->delivery_id);
	return st;
}

/*
 * The earliest time the job's recipient is under its channel's cap: 0 when it is now, else
 * the moment the oldest send that keeps it over leaves the window. With c sends in the window
 * (oldest first a[0..c-1]) one more may go once at most max-1 remain, that is at
 * a[c-max] + per. Sends older than the window are pruned first, so the walk stays short.
 */
static int
cap_until(struct store *base, const struct store_job *j, const struct store_audience *a,
          int64_t now_ms, int64_t *until_ms)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t since = now_ms - a->cap_per_ms, count;
	sqlite3_stmt *st;
	int rc;

	*until_ms = 0;
	if (!(st = cap_stmt(s, SQL_CAP_PRUNE, j, since)) ||
	    sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (!(st = cap_stmt(s, SQL_CAP_COUNT, j, since)))
		return -1;
	rc = sqlite3_step(st);
	count = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return -1;
	if (count < a->cap_max)
		return 0;
	if (!(st = cap_stmt(s, SQL_CAP_NTH, j, since)))
		return -1;
	sqlite3_bind_int64(st, 5, count - a->cap_max);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*until_ms = sqlite3_column_int64(st, 0) + a->cap_per_ms;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static const struct store_audience_ops audience_ops = {
	.suppressed = suppressed,
	.cap_until = cap_until,
	.suppress = suppress,
	.defer = defer,
};

int
sqlite_audience_check(struct sqlite_store *s, const struct store_claim_cb *cb, struct store_job *j,
                     int64_t now_ms, struct store_audience *a)
{
	return store_audience_check(&s->base, &audience_ops, &s->when_zone, cb, j, now_ms, a);
}

int
sqlite_audience_reserve(struct sqlite_store *s, const struct store_job *j, const struct store_audience *a,
                       int64_t now_ms)
{
	sqlite3_stmt *st;

	if (a->cap_max <= 0)
		return 0;
	if (!(st = sqlite_stmt(s, SQL_CAP_RESERVE)))
		return -1;
	sqlite3_bind_int64(st, 1, j->delivery_id);
	sqlite3_bind_text(st, 2, j->campaign.channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->rid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now_ms);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int
sqlite_audience_settle(struct sqlite_store *s, const struct store_result *r)
{
	/* What SaiNiu's rule counts, the cap counts: accepted, or maybe accepted (SPEC 5.10). */
	int counts = r->state == STATE_SENT || r->limit_counts;
	sqlite3_stmt *st = counts ? sqlite_stmt(s, SQL_CAP_KEEP)
	                          : sqlite_stmt(s, SQL_CAP_DROP);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, r->delivery_id);
	if (counts)
		sqlite3_bind_int64(st, 2, r->started_at_ms);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}
