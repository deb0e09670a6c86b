/*
 * runners: the runners table. Each `herald run` has a row while it lives; its lease
 * (heartbeat_ms + lease_ms) says how long others must wait before treating it as dead, and
 * reaping settles what a dead or silent runner left in flight, exactly as after a crash.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sqlite_int.h"

int
sqlite_runner_add(struct store *base, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                 char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RUNNER_ADD);

	if (!st)
		return sqlite_fail(s, err, "runner registration");
	sqlite3_bind_int(st, 1, pid);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, lease_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		return sqlite_fail(s, err, "runner registration");
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
sqlite_runner_heartbeat(struct store *base, int64_t id, int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RUNNER_HEARTBEAT);

	if (!st)
		return sqlite_fail(s, err, "runner heartbeat");
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		return sqlite_fail(s, err, "runner heartbeat");
	return sqlite3_changes(s->db) > 0 ? 1 : 0;
}

int
sqlite_runner_list(struct store *base, struct store_runner **rows, size_t *n, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RUNNER_LIST);
	size_t alloc = 0;
	int rc = SQLITE_ERROR;

	*rows = NULL;
	*n = 0;
	while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
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
	if (st)
		sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(*rows);
		*rows = NULL;
		*n = 0;
		return sqlite_fail(s, err, "runner list");
	}
	return 0;
}

/* Runs a cached statement binding ?1 = a and, when the statement has it, ?2 = b. */
static int
run2(struct sqlite_store *s, enum sqlite_sql id, int64_t a, int64_t b)
{
	sqlite3_stmt *st = sqlite_stmt(s, id);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Settles one in-flight delivery of a dead runner, with an attempt row saying how. */
static int
reap_one(struct sqlite_store *s, int64_t delivery_id, int resend, int64_t now_ms)
{
	const char *msg = resend ? "herald stopped mid-request; resent, the provider de-duplicates it"
	                         : "herald stopped mid-request; the outcome is unknown";
	sqlite3_stmt *st;

	if (run2(s, resend ? SQL_REAP_RESEND : SQL_REAP_UNKNOWN, delivery_id, now_ms) != 0 ||
	    !(st = sqlite_stmt(s, SQL_REAP_ATTEMPT)))
		return -1;
	sqlite3_bind_int64(st, 1, delivery_id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, msg, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, resend ? "requeued" : "unknown", -1, SQLITE_STATIC);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

/* Whether runner id's lease had run out by stale_before_ms: 1, 0, or -1. */
static int
lease_ran_out(struct sqlite_store *s, int64_t id, int64_t stale_before_ms)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RUNNER_STALE);
	int rc, out;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, stale_before_ms);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW && rc != SQLITE_DONE)
		return -1;
	out = rc == SQLITE_ROW && sqlite3_column_int(st, 0) != 0;
	sqlite3_reset(st);
	return out;
}

int64_t
sqlite_runner_reap(struct store *base, int64_t id, int (*dedups)(const char *provider), int64_t now_ms,
                  int64_t stale_before_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int64_t n = 0, *ids = NULL;
	int *resend = NULL, rc = SQLITE_ERROR, stale;
	size_t cnt = 0, alloc = 0, i;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	/* Decided under the write lock: a renewal either landed before us or waits for us. */
	if (stale_before_ms > 0 && (stale = lease_ran_out(s, id, stale_before_ms)) <= 0) {
		if (stale < 0)
			goto fail;
		sqlite_rollback(&s->base);
		return 0;
	}
	/* A reservation the dead runner held may have been accepted: count it as a call. */
	if (run2(s, SQL_REAP_LIMITS, id, now_ms) != 0 || !(st = sqlite_stmt(s, SQL_REAP_LIST)))
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == alloc) {
			size_t na = alloc ? alloc * 2 : 64;
			int64_t *ni = realloc(ids, na * sizeof *ni);
			int *nr = ni ? realloc(resend, na * sizeof *nr) : NULL;

			if (ni)
				ids = ni;
			if (!nr) {
				rc = SQLITE_NOMEM;
				break;
			}
			resend = nr;
			alloc = na;
		}
		ids[cnt] = sqlite3_column_int64(st, 0);
		resend[cnt++] = dedups((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	/* An error is not the end of the rows: deleting the runner then would strand them. */
	if (rc != SQLITE_DONE)
		goto fail;
	for (i = 0; i < cnt; i++, n++)
		if (reap_one(s, ids[i], resend[i], now_ms) != 0)
			goto fail;
	if (run2(s, SQL_RUNNER_DELETE, id, 0) != 0)
		goto fail;
	free(ids);
	free(resend);
	return sqlite_commit(&s->base, err) == 0 ? n : -1;
fail:
	sqlite_fail(s, err, "reaping a stopped runner");
	sqlite_rollback(&s->base);
	free(ids);
	free(resend);
	return -1;
}
