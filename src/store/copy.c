/*
 * copy: `herald copy`, moving a SQLite database up to PostgreSQL (SPEC §6). Every table goes
 * across with its ids, in one PostgreSQL transaction, from a source frozen under SQLite's
 * write lock for the whole copy, so no scheduler or import can change it meanwhile; the
 * counts are compared table by table before the commit. The two schemas share table and
 * column names (migrations/sqlite, migrations/postgres), which is what makes a plain copy
 * right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres/postgres_int.h"
#include "sqlite/sqlite_int.h"
#include "util.h"

/* In dependency order: a row's references are copied before it. */
static const struct copy_table {
	const char *name;
	const char *columns;
	int identity;               /* its id comes from a sequence on PostgreSQL */
} copy_tables[] = {
	{"campaigns", "id, key, name, channel, provider, timezone, start_date, anchor, "
	              "expire_after_ms, state, last_error, created_at_ms, updated_at_ms, quiet_hours",
	 1},
	{"steps", "campaign_id, position, day, time, message", 0},
	{"recipients", "id, campaign_id, rid, data, active", 1},
	{"deliveries", "id, campaign_id, recipient_id, step, due_at_ms, next_at_ms, expires_at_ms, "
	               "state, attempts, last_error, provider_message_id, msg_random, claimed_by, "
	               "send_at_ms, batch_id",
	 1},
	{"attempts", "id, campaign_id, delivery_id, started_at_ms, duration_ms, http_status, "
	             "provider_code, provider_message, outcome",
	 1},
	{"delivery_counts", "campaign_id, state, n", 0},
	{"runners", "id, pid, started_at_ms, heartbeat_ms, lease_ms", 1},
	{"account_limits", "provider, account, last_call_ms, last_send_at_ms, reserved_by", 0},
	{"channels", "name, state, reason, since_ms, next_probe_at_ms, probe_interval_ms", 0},
	{"suppressions", "channel, rid, added_at_ms", 0},
	{"cap_sends", "delivery_id, channel, rid, at_ms", 0},
};
#define N_TABLES (sizeof copy_tables / sizeof copy_tables[0])

/* A growing buffer of COPY text. */
struct copy_buf {
	char *p;
	size_t len, cap;
};

static int
buf_put(struct copy_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1 << 16;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->p, cap)))
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

/* Appends a value in COPY's text format: \N for NULL; backslash, tab, newline, CR escaped. */
static int
buf_value(struct copy_buf *b, const char *v, size_t n)
{
	size_t i, from = 0;

	if (!v)
		return buf_put(b, "\\N", 2);
	for (i = 0; i < n; i++) {
		const char *esc = v[i] == '\\' ? "\\\\" : v[i] == '\t' ? "\\t" : v[i] == '\n' ? "\\n"
		                : v[i] == '\r' ? "\\r" : NULL;

		if (!esc)
			continue;
		if (buf_put(b, v + from, i - from) != 0 || buf_put(b, esc, 2) != 0)
			return -1;
		from = i + 1;
	}
	return buf_put(b, v + from, n - from);
}

/* Ships what b holds to the COPY under way and empties it. 0 / -1. */
static int
buf_ship(struct pg_store *pg, struct copy_buf *b, char **err)
{
	if (b->len && PQputCopyData(pg->conn, b->p, (int)b->len) != 1)
		return pgs_fail(pg, err, "copy", PQerrorMessage(pg->conn));
	b->len = 0;
	return 0;
}

/* Copies one table's rows; *rows gets how many were sent. 0 / -1. */
static int
copy_table(struct sqlite_store *lite, struct pg_store *pg, const struct copy_table *t,
           int64_t *rows, char **err)
{
	char sql[512];
	sqlite3_stmt *st = NULL;
	struct copy_buf b = {0};
	PGresult *r;
	int rc = -1, step, i, n;

	*rows = 0;
	snprintf(sql, sizeof sql, "SELECT %s FROM %s", t->columns, t->name);
	if (sqlite3_prepare_v2(lite->db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqlite_fail(lite, err, t->name);
		goto out;
	}
	snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN", t->name, t->columns);
	r = PQexec(pg->conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		pgs_fail(pg, err, t->name, r ? PQresultErrorMessage(r) : PQerrorMessage(pg->conn));
		PQclear(r);
		goto out;
	}
	PQclear(r);
	n = sqlite3_column_count(st);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < n; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);

			if ((i && buf_put(&b, "\t", 1) != 0) ||
			    buf_value(&b, v, v ? (size_t)sqlite3_column_bytes(st, i) : 0) != 0) {
				util_err(err, "out of memory");
				goto end_copy;
			}
		}
		if (buf_put(&b, "\n", 1) != 0) {
			util_err(err, "out of memory");
			goto end_copy;
		}
		(*rows)++;
		if (b.len >= (1 << 20) && buf_ship(pg, &b, err) != 0)
			goto end_copy;
	}
	if (step != SQLITE_DONE) {
		sqlite_fail(lite, err, t->name);
		goto end_copy;
	}
	if (buf_ship(pg, &b, err) != 0)
		goto end_copy;
	rc = 0;
end_copy:
	/* A COPY is ended either way; on failure with a reason, so the server rolls it back. */
	if (PQputCopyEnd(pg->conn, rc == 0 ? NULL : "herald copy failed") != 1 && rc == 0)
		rc = pgs_fail(pg, err, t->name, PQerrorMessage(pg->conn));
	while ((r = PQgetResult(pg->conn))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
			rc = pgs_fail(pg, err, t->name, PQresultErrorMessage(r));
		PQclear(r);
	}
out:
	sqlite3_finalize(st);
	free(b.p);
	return rc;
}

/* The source's runners must all be gone: a live scheduler would go on sending what the
   target then sends again. 0 / -1 with *err. */
static int
source_idle(struct store *src, char **err)
{
	struct store_runner *runners = NULL;
	size_t n, i;
	int alive = 0, rc;

	if (store_runner_list(src, &runners, &n, err) != 0)
		return -1;
	for (i = 0; i < n && !alive; i++) {
		if ((rc = store_liveness_try(src, runners[i].id, err)) < 0) {
			free(runners);
			return -1;
		}
		if (rc == 1)
			store_liveness_release(src, runners[i].id);
		else
			alive = 1;
	}
	if (alive)
		util_err(err, "%s: a scheduler (runner %lld) is running on it; stop every herald run "
		         "on it first", store_path(src), (long long)runners[i - 1].id);
	free(runners);
	return alive ? -1 : 0;
}

/* 1 if the target holds no campaign, suppression, channel state or runner yet, 0 if it does. */
static int
target_empty(struct pg_store *pg, char **err)
{
	int ok;
	int64_t used = pgs_scalar(pg, "SELECT EXISTS (SELECT 1 FROM campaigns) OR EXISTS (SELECT 1 "
	                              "FROM suppressions) OR EXISTS (SELECT 1 FROM channels) OR "
	                              "EXISTS (SELECT 1 FROM runners)",
	                          NULL, 1, "target", err, &ok);

	return ok ? !used : -1;
}

/* Sequences continue past the copied ids, and the counts match table by table. 0 / -1. */
static int
finish(struct sqlite_store *lite, struct pg_store *pg, const int64_t *rows, char **err)
{
	char sql[256];
	size_t i;
	PGresult *r;

	for (i = 0; i < N_TABLES; i++) {
		const struct copy_table *t = &copy_tables[i];
		int64_t there;

		if (t->identity) {
			snprintf(sql, sizeof sql, "SELECT setval(pg_get_serial_sequence('%s', 'id'), "
			         "coalesce(max(id), 0) + 1, false) FROM %s", t->name, t->name);
			if (!(r = pgs_query_once(pg, sql, NULL, t->name, err)))
				return -1;
			PQclear(r);
		}
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", t->name);
		if (!(r = pgs_query_once(pg, sql, NULL, t->name, err)))
			return -1;
		there = pgs_col_int(r, 0, 0, -1);
		PQclear(r);
		if (there != rows[i])
			return util_err(err, "%s: %lld rows read from %s but %lld on the target",
			                t->name, (long long)rows[i], lite->path, (long long)there);
	}
	return 0;
}

int
store_copy(const char *from, const char *to, struct store_copy_count counts[STORE_COPY_TABLES],
           char **err)
{
	int missing, rc = -1;
	size_t i;
	struct store *src = NULL, *dst = NULL;
	struct sqlite_store *lite;
	struct pg_store *pg;
	int64_t rows[N_TABLES];

	if (store_is_server(from) || !store_is_server(to))
		return util_err(err, "copy goes from a SQLite file to a PostgreSQL URI");
	if (!(src = store_open_existing(from, &missing, err)))
		return missing ? -2 : -1;
	lite = (struct sqlite_store *)src;
	/* Frozen for the whole copy: nothing writes the source until the target has it all. */
	if (store_begin(src, err) != 0)
		goto out;
	if (source_idle(src, err) != 0)
		goto out;
	if (!(dst = store_open(to, err)))
		goto out;
	pg = (struct pg_store *)dst;
	if ((rc = target_empty(pg, err)) <= 0) {
		if (rc == 0)
			util_err(err, "%s already holds Herald data; copy into an empty database",
			         store_path(dst));
		rc = -1;
		goto out;
	}
	rc = -1;
	if (store_begin(dst, err) != 0)
		goto out;
	for (i = 0; i < N_TABLES; i++)
		if (copy_table(lite, pg, &copy_tables[i], &rows[i], err) != 0)
			goto out;
	if (finish(lite, pg, rows, err) != 0 || store_commit(dst, err) != 0)
		goto out;
	for (i = 0; i < N_TABLES && i < STORE_COPY_TABLES; i++) {
		counts[i].table = copy_tables[i].name;
		counts[i].rows = rows[i];
	}
	rc = 0;
out:
	if (dst)
		store_rollback(dst);
	store_rollback(src);
	store_close(dst);
	store_close(src);
	return rc;
}
