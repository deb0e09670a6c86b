/*
 * query: the read side the commands print (status, deliveries, attempts) and the
 * operator's `retry`. Reads never scan a campaign's deliveries to count them: counts come from
 * delivery_counts, kept by triggers, and the next due time from the ready index.
 */
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"
#include "util.h"

/* Fills counts, next due time and last error of one campaign. */
static int
status_detail(struct sqlite_store *s, struct store_status *st, char **err)
{
	static const char *const counts_sql = "SELECT state, n FROM delivery_counts WHERE campaign_id = ?1";
	/* The next time something goes: a deferral's send time, a retry's time, else the due time. */
	static const char *const next_sql =
		"SELECT CASE state WHEN 'deferred' THEN coalesce(send_at_ms, next_at_ms) "
		"WHEN 'retrying' THEN next_at_ms ELSE max(due_at_ms, next_at_ms) END "
		"FROM deliveries WHERE campaign_id = ?1 AND " STORE_WAITING("state")
		" ORDER BY next_at_ms LIMIT 1";
	sqlite3_stmt *q = NULL;
	int rc = -1, i, step;

	memset(st->counts, 0, sizeof st->counts);
	st->next_due_at_ms = -1;
	if (sqlite3_prepare_v2(s->db, counts_sql, -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(q, 1, st->c.id);
	while ((step = sqlite3_step(q)) == SQLITE_ROW)
		if ((i = store_state_index((const char *)sqlite3_column_text(q, 0))) >= 0)
			st->counts[i] = sqlite3_column_int64(q, 1);
	/* An error is not the end of the rows: partial counts would be a lie. */
	if (step != SQLITE_DONE)
		goto out;
	sqlite3_finalize(q);
	if (sqlite3_prepare_v2(s->db, next_sql, -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(q, 1, st->c.id);
	if ((step = sqlite3_step(q)) == SQLITE_ROW)
		st->next_due_at_ms = sqlite3_column_int64(q, 0);
	else if (step != SQLITE_DONE)
		goto out;
	rc = 0;
out:
	if (rc)
		sqlite_fail(s, err, "status");
	sqlite3_finalize(q);
	return rc;
}

int
sqlite_status(struct store *base, const char *key,
             int (*fn)(void *arg, const struct store_status *st), void *arg, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

#define STATUS_SQL "SELECT " STORE_CAMPAIGN_COLS ", c.last_error, ch.state, ch.reason " \
	"FROM campaigns c LEFT JOIN channels ch ON ch.name = c.channel "
	/* A campaign an import is still writing ('importing') shows once it is complete. */
	const char *sql = key ? STATUS_SQL "WHERE c.key = ?1 AND c.state <> 'importing'"
	                      : STATUS_SQL "WHERE c.state <> 'importing' ORDER BY c.key";
	struct store_status st;
	sqlite3_stmt *q;
	int n = 0, rc;

	/* One read transaction, so the counts and the list agree with each other. */
	if (sqlite_exec(s, "BEGIN", err) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
		sqlite_fail(s, err, "status");
		sqlite_rollback(&s->base);
		return -1;
	}
	if (key)
		sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		memset(&st, 0, sizeof st);
		sqlite_campaign_from_row(q, 0, &st.c);
		sqlite_col_copy(q, STORE_CAMPAIGN_NCOLS, st.last_error, sizeof st.last_error);
		sqlite_col_copy(q, STORE_CAMPAIGN_NCOLS + 1, st.channel_state, sizeof st.channel_state);
		sqlite_col_copy(q, STORE_CAMPAIGN_NCOLS + 2, st.channel_reason, sizeof st.channel_reason);
		if (!st.channel_state[0])
			snprintf(st.channel_state, sizeof st.channel_state, "active");
		if (status_detail(s, &st, err) != 0)
			break;
		n++;
		if (fn(arg, &st) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		if (err && !*err)
			sqlite_fail(s, err, "status");
		n = -1;
	}
	sqlite3_finalize(q);
	sqlite_rollback(&s->base);
	return n;
}

int
sqlite_deliveries(struct store *base, int64_t campaign_id, const char *state,
                 const struct store_page *after, int64_t limit,
                 int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                 struct store_page *next, int *more, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	/*
	 * Two texts per filter, not "(?2 IS NULL OR state = ?2)": that form keeps SQLite off the
	 * (campaign_id, state, due_at_ms) index, and a filtered page of 3M rows took half a second.
	 * Unfiltered, (campaign_id, due_at_ms, id) serves. Past a cursor, "(due_at_ms, id) > (?, ?)"
	 * would seek on due_at_ms only (SQLite does not range over a rowid inside a row value) and
	 * then step over every row sharing the cursor's due time, a million in a big campaign. So
	 * the page is the rest of the cursor's due time by id, then the later due times, each a
	 * seek, and the outer sort orders at most twice the page. One row past the page says
	 * whether there is a next one.
	 */
#define DELIVERIES_COLS                                                                       \
	"SELECT d.id, r.rid, d.step, d.due_at_ms, d.state, d.attempts, d.last_error, "            \
	"d.provider_message_id, coalesce(d.send_at_ms, -1) "
#define DELIVERIES_FIRST(where)                                                               \
	DELIVERIES_COLS "FROM deliveries d JOIN recipients r ON r.id = d.recipient_id "           \
	"WHERE d.campaign_id = ?1" where " ORDER BY d.due_at_ms, d.id LIMIT ?3"
#define DELIVERIES_AFTER(where)                                                               \
	DELIVERIES_COLS "FROM (SELECT * FROM (SELECT id, due_at_ms FROM deliveries "              \
	"WHERE campaign_id = ?1" where " AND due_at_ms = ?4 AND id > ?5 ORDER BY id LIMIT ?3) "   \
	"UNION ALL SELECT * FROM (SELECT id, due_at_ms FROM deliveries WHERE campaign_id = ?1"    \
	where " AND due_at_ms > ?4 ORDER BY due_at_ms, id LIMIT ?3)) p "                          \
	"JOIN deliveries d ON d.id = p.id JOIN recipients r ON r.id = d.recipient_id "            \
	"ORDER BY p.due_at_ms, p.id LIMIT ?3"
	const char *sql = after ? (state ? DELIVERIES_AFTER(" AND state = ?2") : DELIVERIES_AFTER(""))
	                        : (state ? DELIVERIES_FIRST(" AND d.state = ?2") : DELIVERIES_FIRST(""));
#undef DELIVERIES_AFTER
#undef DELIVERIES_FIRST
#undef DELIVERIES_COLS
	struct store_delivery_row r;
	sqlite3_stmt *q;
	int64_t n = 0;
	int rc;

	*more = 0;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "deliveries");
	sqlite3_bind_int64(q, 1, campaign_id);
	if (state)
		sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, limit > 0 ? limit + 1 : -1);
	if (after) {
		sqlite3_bind_int64(q, 4, after->due_at_ms);
		sqlite3_bind_int64(q, 5, after->id);
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			*more = 1;
			rc = SQLITE_DONE;
			break;
		}
		r.id = sqlite3_column_int64(q, 0);
		r.recipient = (const char *)sqlite3_column_text(q, 1);
		r.step = sqlite3_column_int(q, 2);
		r.due_at_ms = sqlite3_column_int64(q, 3);
		r.state = (const char *)sqlite3_column_text(q, 4);
		r.attempts = sqlite3_column_int(q, 5);
		r.last_error = (const char *)sqlite3_column_text(q, 6);
		r.provider_message_id = (const char *)sqlite3_column_text(q, 7);
		r.send_at_ms = sqlite3_column_int64(q, 8);
		next->due_at_ms = r.due_at_ms;
		next->id = r.id;
		n++;
		if (fn(arg, &r) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "deliveries");
}

int
sqlite_attempts(struct store *base, int64_t campaign_id, const char *recipient,
               int (*fn)(void *arg, const struct store_attempt_row *r), void *arg, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	const char *sql =
		"SELECT r.rid, d.step, a.started_at_ms, coalesce(a.duration_ms, -1), "
		"coalesce(a.http_status, 0), a.provider_code, a.provider_message, a.outcome "
		"FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
		"JOIN recipients r ON r.id = d.recipient_id "
		"WHERE a.campaign_id = ?1 AND (?2 IS NULL OR r.rid = ?2) ORDER BY a.id";
	struct store_attempt_row r;
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "attempts");
	sqlite3_bind_int64(q, 1, campaign_id);
	if (recipient)
		sqlite3_bind_text(q, 2, recipient, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		r.recipient = (const char *)sqlite3_column_text(q, 0);
		r.step = sqlite3_column_int(q, 1);
		r.started_at_ms = sqlite3_column_int64(q, 2);
		r.duration_ms = sqlite3_column_int64(q, 3);
		r.http_status = sqlite3_column_int(q, 4);
		r.provider_code = (const char *)sqlite3_column_text(q, 5);
		r.provider_message = (const char *)sqlite3_column_text(q, 6);
		r.outcome = (const char *)sqlite3_column_text(q, 7);
		if (fn(arg, &r) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "attempts");
}

int64_t
sqlite_retry(struct store *base, int64_t campaign_id, const char *state, int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	const char *sql =
		"UPDATE deliveries SET state = 'pending', attempts = 0, last_error = NULL, "
		"send_at_ms = NULL, next_at_ms = ?3, "
		"expires_at_ms = max(expires_at_ms, ?3 + (SELECT expire_after_ms FROM campaigns WHERE id = ?1)) "
		"WHERE campaign_id = ?1 AND state = ?2";
	sqlite3_stmt *q;
	int64_t n;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
		sqlite_fail(s, err, "retry");
		sqlite_rollback(&s->base);
		return -1;
	}
	sqlite3_bind_int64(q, 1, campaign_id);
	sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, now_ms);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sqlite_fail(s, err, "retry");
		sqlite3_finalize(q);
		sqlite_rollback(&s->base);
		return -1;
	}
	n = sqlite3_changes(s->db);
	sqlite3_finalize(q);
	return sqlite_commit(&s->base, err) == 0 ? n : -1;
}

int
sqlite_steps(struct store *base, int64_t campaign_id,
            int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	const char *sql = "SELECT position, day, time, message FROM steps WHERE campaign_id = ?1 "
	                  "ORDER BY position";
	struct store_step_row r;
	sqlite3_stmt *q;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "steps");
	sqlite3_bind_int64(q, 1, campaign_id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		r.position = sqlite3_column_int(q, 0);
		r.day = sqlite3_column_int(q, 1);
		r.time = (const char *)sqlite3_column_text(q, 2);
		r.message_json = (const char *)sqlite3_column_text(q, 3);
		if (fn(arg, &r) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "steps");
}

int64_t
sqlite_recipient_count(struct store *base, int64_t campaign_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	/* Recipients a re-import dropped stay as rows (their deliveries are history) but are no
	   longer part of the definition. */
	const char *sql = "SELECT count(*) FROM recipients WHERE campaign_id = ?1 AND active";
	sqlite3_stmt *q;
	int64_t n = -1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "recipients");
	sqlite3_bind_int64(q, 1, campaign_id);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int64(q, 0);
	else
		sqlite_fail(s, err, "recipients");
	sqlite3_finalize(q);
	return n;
}

int
sqlite_is_blank(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	const char *sql = "SELECT (SELECT count(*) FROM campaigns) + (SELECT count(*) FROM runners) + "
	                  "(SELECT count(*) FROM suppressions)";
	sqlite3_stmt *q;
	int blank = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(q) == SQLITE_ROW)
		blank = sqlite3_column_int64(q, 0) == 0;
	sqlite3_finalize(q);
	return blank;
}
