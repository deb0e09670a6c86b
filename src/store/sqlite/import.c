/*
 * import: an import in bounded transactions. The validated recipients and their
 * deliveries are first staged in TEMP tables of the importing connection, which live in
 * SQLite's own temp file: staging never takes the main database's write lock. Then:
 *
 * - a new campaign is written in batches, each one short transaction, under the campaign
 *   state 'importing' that no claim (it takes 'active' campaigns only), query or status
 *   shows; one last O(1) transaction makes it 'active';
 * - a re-import is compared with the live campaign by reading only (sqlite_import_plan), and
 *   the rows that differ are written in one transaction (sqlite_import_apply): its length
 *   grows with what the re-import changes, not with the campaign's size.
 *
 * A campaign left 'importing' (the import was killed, or failed while writing) is removed,
 * in batches too, by sqlite_import_sweep.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"

/* Rows a sweep deletes per transaction: a few tens of milliseconds. */
#define SWEEP_ROWS 5000

/* The staging tables (see the top of this file) and what the comparison with a live
   campaign finds; all in the connection's temp schema. */
static const char staging_sql[] =
	/* A recipient as listed, in file order; UNIQUE(rid) finds one listed twice. */
	"CREATE TEMP TABLE IF NOT EXISTS import_r (seq INTEGER PRIMARY KEY, rid TEXT NOT NULL "
	"UNIQUE, data TEXT NOT NULL);"
	"CREATE TEMP TABLE IF NOT EXISTS import_d (seq INTEGER NOT NULL, step INTEGER NOT NULL, "
	"due INTEGER NOT NULL, next INTEGER NOT NULL, expires INTEGER NOT NULL, "
	"rnd INTEGER NOT NULL, PRIMARY KEY (seq, step)) WITHOUT ROWID;"
	/* Each staged recipient against the live campaign: kind 0 new, 1 data changed, 2 the
	   same, 3 listed again after a re-import removed it; id its live row. */
	"CREATE TEMP TABLE IF NOT EXISTS import_rmap (seq INTEGER PRIMARY KEY, id INTEGER, "
	"kind INTEGER NOT NULL);"
	/* Deliveries of live recipients the re-import writes: missing ones, or ones it
	   reschedules or brings back. */
	"CREATE TEMP TABLE IF NOT EXISTS import_dchg (seq INTEGER NOT NULL, step INTEGER NOT NULL, "
	"missing INTEGER NOT NULL, PRIMARY KEY (seq, step)) WITHOUT ROWID;"
	/* Live recipients the definition no longer lists. */
	"CREATE TEMP TABLE IF NOT EXISTS import_gone (id INTEGER PRIMARY KEY);";

static const char staging_clear_sql[] =
	"DELETE FROM temp.import_r; DELETE FROM temp.import_d; DELETE FROM temp.import_rmap; "
	"DELETE FROM temp.import_dchg; DELETE FROM temp.import_gone;";

int
sqlite_stage_tables(struct sqlite_store *s, char **err)
{
	return sqlite_exec(s, staging_sql, err);
}

int
sqlite_stage_begin(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (sqlite_stage_tables(s, err) != 0 || sqlite_exec(s, staging_clear_sql, err) != 0)
		return -1;
	return sqlite_exec(s, "BEGIN", err);
}

int
sqlite_stage_flush(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (sqlite_commit(&s->base, err) != 0)
		return -1;
	return sqlite_exec(s, "BEGIN", err);
}

int
sqlite_stage_end(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return sqlite_commit(&s->base, err);
}

int
sqlite_stage_recipient(struct store *base, const char *rid, const char *data_json, int64_t *seq,
                      char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_STAGE_RECIPIENT);
	int rc;

	if (!st)
		return sqlite_fail(s, err, "staging a recipient");
	sqlite3_bind_text(st, 1, rid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, data_json, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return STORE_PUT_DUPLICATE;
	if (rc != SQLITE_DONE)
		return sqlite_fail(s, err, "staging a recipient");
	*seq = sqlite3_last_insert_rowid(s->db);
	return STORE_PUT_NEW;
}

int
sqlite_stage_delivery(struct store *base, int64_t seq, int step, int64_t due_at_ms, int64_t next_at_ms,
                     int64_t expires_at_ms, uint32_t msg_random, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_STAGE_DELIVERY);

	if (!st)
		return sqlite_fail(s, err, "staging a delivery");
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int(st, 2, step);
	sqlite3_bind_int64(st, 3, due_at_ms);
	sqlite3_bind_int64(st, 4, next_at_ms);
	sqlite3_bind_int64(st, 5, expires_at_ms);
	sqlite3_bind_int64(st, 6, (int64_t)msg_random);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite_fail(s, err, "staging a delivery");
}

/* Runs one statement of sql, binding ?i to args[i - 1] (args may be NULL when it has no
   parameter); *n (may be NULL) gets its changes, or for a query its first row's integer.
   0 / -1 with *err. */
static int
run(struct sqlite_store *s, const char *sql, const int64_t *args, int64_t *n, const char *what,
    char **err)
{
	sqlite3_stmt *st;
	int rc, i;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, what);
	for (i = 1; i <= sqlite3_bind_parameter_count(st); i++)
		sqlite3_bind_int64(st, i, args[i - 1]);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (n)
			*n = sqlite3_column_int64(st, 0);
		rc = SQLITE_DONE;
	} else if (n && rc == SQLITE_DONE) {
		/* A query without a row gives 0, a change its row count. */
		*n = sqlite3_column_count(st) > 0 ? 0 : sqlite3_changes(s->db);
	}
	if (rc != SQLITE_DONE) {
		sqlite_fail(s, err, what);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return 0;
}

/* A campaign's waiting deliveries grew by n new 'pending' rows: inserts do not count
   themselves (see the first migration). */
static int
count_inserted(struct sqlite_store *s, int64_t campaign_id, int64_t n, char **err)
{
	if (n == 0)
		return 0;
	return run(s, "INSERT INTO delivery_counts (campaign_id, state, n) VALUES (?1, 'pending', ?2) "
	              "ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + excluded.n",
	           (int64_t[]){campaign_id, n}, NULL, "delivery counts", err);
}

int
sqlite_import_plan(struct store *base, int64_t campaign_id, struct store_import_plan *p, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const sql[] = {
		"DELETE FROM temp.import_rmap",
		"DELETE FROM temp.import_dchg",
		"DELETE FROM temp.import_gone",
		"INSERT INTO temp.import_rmap (seq, id, kind) SELECT s.seq, r.id, CASE "
		"WHEN r.id IS NULL THEN 0 WHEN r.active = 0 THEN 3 WHEN r.data = s.data THEN 2 ELSE 1 END "
		"FROM temp.import_r s LEFT JOIN main.recipients r ON r.campaign_id = ?1 AND r.rid = s.rid "
		"ORDER BY s.seq",
		/* What sqlite_import_apply's upsert will change, on the same conditions; a revived
		   recipient's deliveries are pending again by then. */
		"INSERT INTO temp.import_dchg (seq, step, missing) SELECT d.seq, d.step, x.id IS NULL "
		"FROM temp.import_d d JOIN temp.import_rmap m ON m.seq = d.seq AND m.kind > 0 "
		"LEFT JOIN main.deliveries x ON x.recipient_id = m.id AND x.step = d.step "
		"WHERE x.id IS NULL "
		"OR ((" STORE_WAITING("x.state") " OR (m.kind = 3 AND x.state = 'cancelled' AND "
		"x.last_error = '" REMOVED_REASON "')) AND (x.due_at_ms, x.next_at_ms, x.expires_at_ms) "
		"IS NOT (d.due, d.next, d.expires)) "
		"OR (x.state = 'cancelled' AND x.last_error = '" STEP_REMOVED_REASON "')",
		"INSERT INTO temp.import_gone (id) SELECT r.id FROM main.recipients r "
		"WHERE r.campaign_id = ?1 AND r.active = 1 "
		"AND NOT EXISTS (SELECT 1 FROM temp.import_r s WHERE s.rid = r.rid)",
	};
	static const char *const what = "comparing with the stored campaign";
	int64_t n = 0;
	size_t i;

	memset(p, 0, sizeof *p);
	/* One read transaction: every comparison sees the same live campaign. Only the temp
	   schema is written. */
	if (sqlite_exec(s, "BEGIN", err) != 0)
		return -1;
	for (i = 0; i < sizeof sql / sizeof sql[0]; i++)
		if (run(s, sql[i], &campaign_id, NULL, what, err) != 0)
			goto fail;
	if (run(s, "SELECT count(*) FROM temp.import_rmap WHERE kind = 0", NULL, &p->recipients_new,
	        what, err) != 0 ||
	    run(s, "SELECT count(*) FROM temp.import_rmap WHERE kind IN (1, 3)", NULL,
	        &p->recipients_changed, what, err) != 0 ||
	    run(s, "SELECT count(*) FROM temp.import_gone", NULL, &p->recipients_removed, what,
	        err) != 0 ||
	    run(s, "SELECT count(*) FROM temp.import_dchg", NULL, &p->deliveries_written, what,
	        err) != 0 ||
	    run(s, "SELECT count(*) FROM temp.import_d d JOIN temp.import_rmap m ON m.seq = d.seq "
	           "AND m.kind = 0", NULL, &n, what, err) != 0)
		goto fail;
	p->deliveries_written += n;
	return sqlite_commit(&s->base, err);
fail:
	sqlite_rollback(&s->base);
	return -1;
}

int
sqlite_import_apply(struct store *base, int64_t campaign_id, struct store_import_plan *done,
                   char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const what = "writing the re-import";
	int64_t n = 0;

	memset(done, 0, sizeof *done);
	/* Changed recipients take their new data; removed ones listed again come back with the
	   deliveries their removal cancelled. */
	if (run(s, "UPDATE recipients SET data = s.data, active = 1 FROM temp.import_rmap m "
	           "JOIN temp.import_r s ON s.seq = m.seq WHERE m.kind IN (1, 3) "
	           "AND recipients.id = m.id", NULL, &done->recipients_changed, what, err) != 0 ||
	    run(s, "UPDATE deliveries SET state = 'pending', last_error = NULL WHERE recipient_id IN "
	           "(SELECT id FROM temp.import_rmap WHERE kind = 3) AND state = 'cancelled' AND "
	           "last_error = '" REMOVED_REASON "'", NULL, NULL, what, err) != 0)
		return -1;
	/* New recipients, then their ids into the map for their deliveries. */
	if (run(s, "INSERT INTO recipients (campaign_id, rid, data) SELECT ?1, s.rid, s.data "
	           "FROM temp.import_rmap m JOIN temp.import_r s ON s.seq = m.seq WHERE m.kind = 0 "
	           "ORDER BY m.seq", &campaign_id, &done->recipients_new, what, err) != 0 ||
	    run(s, "UPDATE temp.import_rmap SET id = (SELECT r.id FROM main.recipients r "
	           "JOIN temp.import_r s ON s.seq = import_rmap.seq "
	           "WHERE r.campaign_id = ?1 AND r.rid = s.rid) WHERE kind = 0",
	        &campaign_id, NULL, what, err) != 0)
		return -1;
	/* Deliveries that do not exist yet: every one of a new recipient, and a live recipient's
	   for a step it did not have. */
	if (run(s, "INSERT INTO deliveries (campaign_id, recipient_id, step, due_at_ms, next_at_ms, "
	           "expires_at_ms, msg_random) SELECT ?1, m.id, d.step, d.due, d.next, d.expires, d.rnd "
	           "FROM temp.import_rmap m JOIN temp.import_d d ON d.seq = m.seq "
	           "WHERE m.kind = 0 OR EXISTS (SELECT 1 FROM temp.import_dchg c "
	           "WHERE c.seq = d.seq AND c.step = d.step AND c.missing = 1) "
	           "ORDER BY d.seq, d.step", &campaign_id, &n, what, err) != 0 ||
	    count_inserted(s, campaign_id, n, err) != 0)
		return -1;
	done->deliveries_written = n;
	/* Live deliveries: rescheduled only while still waiting with changed times, or brought
	   back when a step's removal cancelled them; checked again now (the scheduler may have
	   moved a row since the plan). The count trigger keeps their counts. */
	if (run(s, "INSERT INTO deliveries (campaign_id, recipient_id, step, due_at_ms, next_at_ms, "
	           "expires_at_ms, msg_random) SELECT ?1, m.id, d.step, d.due, d.next, d.expires, d.rnd "
	           "FROM temp.import_dchg c JOIN temp.import_d d ON d.seq = c.seq AND d.step = c.step "
	           "JOIN temp.import_rmap m ON m.seq = c.seq WHERE c.missing = 0 "
	           "ON CONFLICT (recipient_id, step) DO UPDATE SET due_at_ms = excluded.due_at_ms, "
	           "next_at_ms = excluded.next_at_ms, expires_at_ms = excluded.expires_at_ms, "
	           "last_error = CASE state WHEN 'cancelled' THEN NULL ELSE last_error END, "
	           "state = 'pending', send_at_ms = NULL "
	           "WHERE (" STORE_WAITING("state") " AND (due_at_ms, next_at_ms, expires_at_ms) IS NOT "
	           "(excluded.due_at_ms, excluded.next_at_ms, excluded.expires_at_ms)) "
	           "OR (state = 'cancelled' AND last_error = '" STEP_REMOVED_REASON "')",
	        &campaign_id, &n, what, err) != 0)
		return -1;
	done->deliveries_written += n;
	/* Recipients no longer listed: their waiting deliveries are cancelled. */
	if (run(s, "UPDATE deliveries SET state = 'cancelled', last_error = '" REMOVED_REASON "' "
	           "WHERE recipient_id IN (SELECT id FROM temp.import_gone) AND " STORE_WAITING("state"),
	        NULL, NULL, what, err) != 0 ||
	    run(s, "UPDATE recipients SET active = 0 WHERE id IN (SELECT id FROM temp.import_gone) "
	           "AND active = 1", NULL, &done->recipients_removed, what, err) != 0)
		return -1;
	return 0;
}

int
sqlite_import_hide(struct store *base, int64_t campaign_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return run(s, "UPDATE campaigns SET state = 'importing' WHERE id = ?1", &campaign_id, NULL,
	           "hiding the new campaign", err);
}

int64_t
sqlite_import_batch(struct store *base, int64_t campaign_id, int64_t from_seq, int64_t rows,
                   char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const what = "writing the new campaign";
	int64_t off = 0, n = 0, done = 0;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	/* Recipients take consecutive ids after the last one, so their deliveries need no
	   look-up: id = seq + off. Nobody else inserts while this transaction holds the lock. */
	if (run(s, "SELECT coalesce(max(id), 0) FROM recipients", NULL, &off, what, err) != 0)
		goto fail;
	off = off + 1 - from_seq;
	if (run(s, "INSERT INTO recipients (id, campaign_id, rid, data) SELECT seq + ?2, ?1, rid, "
	           "data FROM temp.import_r WHERE seq >= ?3 AND seq < ?3 + ?4 ORDER BY seq",
	        (int64_t[]){campaign_id, off, from_seq, rows}, &done, what, err) != 0 ||
	    run(s, "INSERT INTO deliveries (campaign_id, recipient_id, step, due_at_ms, next_at_ms, "
	           "expires_at_ms, msg_random) SELECT ?1, seq + ?2, step, due, next, expires, rnd "
	           "FROM temp.import_d WHERE seq >= ?3 AND seq < ?3 + ?4 ORDER BY seq, step",
	        (int64_t[]){campaign_id, off, from_seq, rows}, &n, what, err) != 0 ||
	    count_inserted(s, campaign_id, n, err) != 0 || sqlite_commit(&s->base, err) != 0)
		goto fail;
	return done;
fail:
	sqlite_rollback(&s->base);
	return -1;
}

int
sqlite_import_reveal(struct store *base, int64_t campaign_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int64_t n = 0;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (run(s, "UPDATE campaigns SET state = 'active' WHERE id = ?1 AND state = 'importing'",
	        &campaign_id, &n, "making the campaign visible", err) != 0)
		goto fail;
	if (n != 1) {
		sqlite_fail(s, err, "making the campaign visible: it is gone");
		goto fail;
	}
	return sqlite_commit(&s->base, err);
fail:
	sqlite_rollback(&s->base);
	return -1;
}

/* Deletes up to SWEEP_ROWS rows of sql (?1 = the campaign) in one transaction: how many,
   or -1. */
static int64_t
sweep_some(struct sqlite_store *s, const char *sql, int64_t campaign_id, char **err)
{
	int64_t n = 0;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (run(s, sql, (int64_t[]){campaign_id, SWEEP_ROWS}, &n, "removing an unfinished import",
	        err) != 0 || sqlite_commit(&s->base, err) != 0) {
		sqlite_rollback(&s->base);
		return -1;
	}
	return n;
}

int64_t
sqlite_import_sweep(struct store *base, int64_t only_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char *const sql[] = {
		"DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE campaign_id = ?1 "
		"LIMIT ?2)",
		"DELETE FROM recipients WHERE id IN (SELECT id FROM recipients WHERE campaign_id = ?1 "
		"LIMIT ?2)",
		/* Steps and counts go with it (ON DELETE CASCADE). */
		"DELETE FROM campaigns WHERE id = ?1 AND state = 'importing' AND ?2 > 0",
	};
	int64_t id = 0, n, swept = 0;
	size_t i;

	for (;;) {
		id = 0;
		if (run(s, only_id ? "SELECT id FROM campaigns WHERE id = ?1 AND state = 'importing'"
		                   : "SELECT id FROM campaigns WHERE state = 'importing' ORDER BY id LIMIT 1",
		        &only_id, &id, "looking for unfinished imports", err) != 0)
			return -1;
		if (id == 0)
			return swept;
		for (i = 0; i < sizeof sql / sizeof sql[0]; i++) {
			while ((n = sweep_some(s, sql[i], id, err)) > 0 && i + 1 < sizeof sql / sizeof sql[0])
				;
			if (n < 0)
				return -1;
		}
		swept++;
	}
}
