/*
 * postgres/runners: the runners table, as SQLite's runners.c keeps it. Each `herald run` has a
 * row while it lives, its id from the identity column (never reused); its lease (heartbeat_ms +
 * lease_ms) says how long others must wait before treating it as dead, and reaping settles
 * what a dead or silent runner left in flight, exactly as after a crash. Several nodes share
 * the table: a renewal and a reap of the same runner meet at its row's lock.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "util.h"

#define REAPING "reaping a stopped runner"

int
postgres_runner_add(struct store *base, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                    char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int ok;

	pgs_int(&p, pid);
	pgs_int(&p, now_ms);
	pgs_int(&p, lease_ms);
	*id = pgs_scalar(s, "INSERT INTO runners (pid, started_at_ms, heartbeat_ms, lease_ms) "
	                    "VALUES ($1, $2, $2, $3) RETURNING id",
	                 &p, 0, "runner registration", err, &ok);
	return ok ? 0 : -1;
}

/*
 * The liveness lock is the connection's: a connection made again (by this call's statement
 * too) has lost it, and others may count the runner as dead and settle its claims. So the old
 * row is renewed only while this connection holds the lock; else 0, and the runner registers
 * afresh (runner.c), everything it claimed before fenced.
 */
int
postgres_runner_heartbeat(struct store *base, int64_t id, int64_t now_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	if (s->liveness_session != s->session)
		return 0;
	pgs_int(&p, id);
	pgs_int(&p, now_ms);
	/* A renewal never moves the lease back (a clock stepping back, a late write). */
	n = pgs_exec(s, "UPDATE runners SET heartbeat_ms = greatest(heartbeat_ms, $2) "
	                "WHERE id = $1 AND EXISTS (SELECT 1 FROM pg_locks "
	                "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database "
	                "WHERE datname = current_database()) AND classid = " PGS_LIVENESS_CLASS " "
	                "AND objid = $1 AND objsubid = 2 AND pid = pg_backend_pid() AND granted)",
	             &p, "runner heartbeat", err);
	if (n < 0)
		return -1;
	return n > 0 && s->liveness_session == s->session ? 1 : 0;
}

int
postgres_runner_list(struct store *base, struct store_runner **rows, size_t *n, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	PGresult *res;
	int i, count;

	*rows = NULL;
	*n = 0;
	if (!(res = pgs_query(s, "SELECT id, heartbeat_ms, lease_ms FROM runners ORDER BY id", NULL,
	                      "runner list", err)))
		return -1;
	if ((count = PQntuples(res)) > 0 && !(*rows = calloc((size_t)count, sizeof **rows))) {
		PQclear(res);
		return pgs_fail(s, err, "runner list", "out of memory");
	}
	for (i = 0; i < count; i++) {
		(*rows)[i].id = pgs_col_int(res, i, 0, 0);
		(*rows)[i].heartbeat_ms = pgs_col_int(res, i, 1, 0);
		(*rows)[i].lease_ms = pgs_col_int(res, i, 2, 0);
	}
	*n = (size_t)count;
	PQclear(res);
	return 0;
}

/*
 * Settles the rows of res (id, provider: the runner's in-flight deliveries) with an attempt row
 * each saying how: back to pending where the provider de-duplicates, else unknown.
 */
static int
reap_rows(struct pg_store *s, const PGresult *res, int (*dedups)(const char *provider),
          int64_t id, int64_t now_ms, char **err)
{
	struct pgs_array col[2];
	struct pgs_params p = {0}, q = {0};
	int i, rc = -1;

	memset(col, 0, sizeof col);
	for (i = 0; i < PQntuples(res); i++) {
		pgs_array_int(&col[0], pgs_col_int(res, i, 0, 0));
		pgs_array_int(&col[1], dedups(pgs_col_text(res, i, 1)) ? 1 : 0);
	}
	if (pgs_array_params(s, &p, col, 2, REAPING, err) != 0)
		goto out;
	pgs_int(&p, now_ms);
	pgs_int(&q, id);
	pgs_int(&q, now_ms);
	/* A reservation the dead runner held may have been accepted: it counts as a call made. */
	if (pgs_exec(s, "UPDATE account_limits SET last_call_ms = $2, last_send_at_ms = coalesce("
	                "(SELECT send_at_ms FROM deliveries WHERE id = reserved_by), "
	                "last_send_at_ms), reserved_by = NULL WHERE reserved_by IN "
	                "(SELECT id FROM deliveries WHERE claimed_by = $1 AND state = 'sending')",
	             &q, REAPING, err) < 0 ||
	    pgs_exec(s, "UPDATE deliveries d SET claimed_by = NULL, "
	                "state = CASE a.resend WHEN 1 THEN 'pending' ELSE 'unknown' END, "
	                "next_at_ms = CASE a.resend WHEN 1 THEN $3::bigint ELSE d.next_at_ms END, "
	                "last_error = CASE a.resend WHEN 1 THEN d.last_error ELSE 'herald stopped "
	                "while the request was in flight: it may or may not have been sent' END "
	                "FROM unnest($1::bigint[], $2::integer[]) AS a(id, resend) "
	                "WHERE d.id = a.id",
	             &p, REAPING, err) < 0 ||
	    pgs_exec(s, "INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, "
	                "provider_message, outcome) SELECT d.campaign_id, d.id, $3::bigint, "
	                "CASE a.resend WHEN 1 THEN 'herald stopped mid-request; resent, the "
	                "provider de-duplicates it' ELSE 'herald stopped mid-request; the outcome "
	                "is unknown' END, CASE a.resend WHEN 1 THEN 'requeued' ELSE 'unknown' END "
	                "FROM unnest($1::bigint[], $2::integer[]) WITH ORDINALITY AS a(id, resend, "
	                "ord) JOIN deliveries d ON d.id = a.id ORDER BY a.ord",
	             &p, REAPING, err) < 0)
		goto out;
	rc = 0;
out:
	pgs_array_free(col, 2);
	return rc;
}

/*
 * The serial locks of the providers of the runner's in-flight rows (one = its id): their
 * account reservations are settled here, as a recording settles them (record.c), and taken
 * before any other row this transaction locks.
 */
static int
lock_providers(struct pg_store *s, const struct pgs_params *one, char **err)
{
	struct store_serial_key *keys = NULL;
	PGresult *res;
	int i, rc = -1;

	if (!(res = pgs_query(s, "SELECT DISTINCT c.provider FROM deliveries d JOIN campaigns c "
	                         "ON c.id = d.campaign_id WHERE d.claimed_by = $1 AND "
	                         "d.state = 'sending'",
	                      one, REAPING, err)))
		return -1;
	if (PQntuples(res) > 0 && !(keys = calloc((size_t)PQntuples(res), sizeof *keys))) {
		pgs_fail(s, err, REAPING, "out of memory");
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		keys[i].kind = STORE_SERIAL_PROVIDER;
		keys[i].name = PQgetvalue(res, i, 0);
	}
	rc = pgs_lock_serial(s, keys, (size_t)PQntuples(res), NULL, NULL, REAPING, err);
out:
	free(keys);
	PQclear(res);
	return rc;
}

/* Inside the reap's transaction: how many deliveries were settled, or -1. */
static int64_t
reap(struct pg_store *s, int64_t id, int (*dedups)(const char *provider), int64_t now_ms,
     int64_t stale_before_ms, char **err)
{
	struct pgs_params p = {0}, one = {0};
	PGresult *res = NULL;
	int64_t n = -1, stale;
	int ok;

	pgs_int(&p, id);
	pgs_int(&p, stale_before_ms);
	/*
	 * Decided under the row's lock, which every claim and recording of the runner
	 * share-locks first (pgs_begin_batch): a renewal either landed before us or waits for us
	 * (and then finds the row gone); a claim or recording of this runner is over before we
	 * list its rows, or waits and then finds it gone. None can leave a row claimed by a
	 * runner that is gone.
	 */
	stale = pgs_scalar(s, "SELECT heartbeat_ms + lease_ms < $2 FROM runners WHERE id = $1 "
	                      "FOR UPDATE",
	                   &p, 0, REAPING, err, &ok);
	if (!ok)
		goto out;
	if (stale_before_ms > 0 && !stale) {
		n = 0;
		goto out;
	}
	pgs_int(&one, id);
	if (lock_providers(s, &one, err) != 0)
		goto out;
	if (!(res = pgs_query(s, "SELECT d.id, c.provider FROM deliveries d JOIN campaigns c ON "
	                         "c.id = d.campaign_id WHERE d.claimed_by = $1 AND "
	                         "d.state = 'sending' ORDER BY d.id FOR NO KEY UPDATE OF d",
	                      &one, REAPING, err)))
		goto out;
	if (PQntuples(res) > 0 && reap_rows(s, res, dedups, id, now_ms, err) != 0)
		goto out;
	if (pgs_exec(s, "DELETE FROM runners WHERE id = $1", &one, REAPING, err) < 0)
		goto out;
	n = PQntuples(res);
out:
	PQclear(res);
	return n;
}

int64_t
postgres_runner_reap(struct store *base, int64_t id, int (*dedups)(const char *provider),
                     int64_t now_ms, int64_t stale_before_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	int64_t n;

	if (postgres_begin(base, err) != 0)
		return -1;
	if ((n = reap(s, id, dedups, now_ms, stale_before_ms, err)) < 0)
		postgres_rollback(base);
	else if (postgres_commit(base, err) != 0)
		n = -1;
	return n;
}
