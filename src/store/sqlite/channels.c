/*
 * channels: the channels table, read by `herald channels` and changed by the operator's
 * `pause|resume --channel`. Suspensions and recoveries caused by provider answers are
 * written with results (record.c), in the same transaction as the deliveries they hold.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"
#include "util.h"

int
sqlite_channel_get(struct store *base, const char *name, struct store_channel *out, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const row_sql =
		"SELECT state, coalesce(reason, ''), since_ms, coalesce(next_probe_at_ms, -1) "
		"FROM channels WHERE name = ?1";
	static const char *const waiting_sql =
		"SELECT coalesce(sum(n.n), 0) FROM campaigns c JOIN delivery_counts n ON "
		"n.campaign_id = c.id WHERE c.channel = ?1 AND c.state = 'active' AND "
		STORE_WAITING("n.state");
	sqlite3_stmt *q = NULL;
	int rc = -1, step;

	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	snprintf(out->state, sizeof out->state, "active");
	out->since_ms = -1;
	out->next_probe_at_ms = -1;
	if (sqlite3_prepare_v2(s->db, row_sql, -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	if ((step = sqlite3_step(q)) == SQLITE_ROW) {
		sqlite_col_copy(q, 0, out->state, sizeof out->state);
		sqlite_col_copy(q, 1, out->reason, sizeof out->reason);
		out->since_ms = sqlite3_column_int64(q, 2);
		out->next_probe_at_ms = sqlite3_column_int64(q, 3);
	} else if (step != SQLITE_DONE) {
		goto out;
	}
	sqlite3_finalize(q);
	if (sqlite3_prepare_v2(s->db, waiting_sql, -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW)
		goto out;
	out->waiting = sqlite3_column_int64(q, 0);
	rc = 0;
out:
	if (rc)
		sqlite_fail(s, err, "channel state");
	sqlite3_finalize(q);
	return rc;
}

int
sqlite_channel_set(struct store *base, const char *name, const char *state, const char *reason,
                  int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const sql =
		"INSERT INTO channels (name, state, reason, since_ms) VALUES (?1, ?2, ?3, ?4) "
		"ON CONFLICT (name) DO UPDATE SET state = excluded.state, reason = excluded.reason, "
		"since_ms = excluded.since_ms, next_probe_at_ms = NULL, probe_interval_ms = NULL "
		"WHERE state <> excluded.state";
	sqlite3_stmt *q = NULL;
	int changed;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
	if (reason)
		sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, now_ms);
	if (sqlite3_step(q) != SQLITE_DONE)
		goto fail;
	changed = sqlite3_changes(s->db) > 0;
	sqlite3_finalize(q);
	/* An active channel that never had a row gets one: harmless, and it says since when. */
	return sqlite_commit(&s->base, err) == 0 ? changed : -1;
fail:
	sqlite_fail(s, err, "channel state");
	sqlite3_finalize(q);
	sqlite_rollback(&s->base);
	return -1;
}
