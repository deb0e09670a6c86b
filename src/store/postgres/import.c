/*
 * postgres/import.c: imports on PostgreSQL, with the semantics of sqlite/import.c. It owns the
 * staging of an import's validated recipients and deliveries in TEMP tables of the importing
 * connection (sent to the server in bulk with COPY, never touching the main tables), the
 * comparison of a re-import with the live campaign and the writing of what differs, a new
 * campaign's batches under the hidden state 'importing', and the sweep of campaigns an import
 * left hidden.
 *
 * Staged rows wait in memory (a few MB at most) until a flush, the end of staging or a full
 * buffer sends them. A rid listed twice is caught by a set of hashes of the rids staged so
 * far; a hash seen before is confirmed by the staged rows on the server, so the answer is
 * exact. That state lives as long as the connection does, like the TEMP tables it feeds: it
 * hangs on the PGconn (libpq instance data) and libpq's close of the connection frees it.
 */
#include <libpq-events.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "util.h"

/* Rows a sweep deletes per transaction: a few tens of milliseconds. */
#define SWEEP_ROWS 5000
/* Staged COPY text held in memory before it is sent: few round trips, flat memory. */
#define STAGE_SEND_BYTES (4u << 20)
/* Bytes per PQputCopyData call. */
#define COPY_CHUNK (256u << 10)

/* The staging tables (see sqlite/import.c, which they mirror) and what the comparison with
   a live campaign finds. */
static const char staging_sql[] =
	/* A recipient as listed, in file order; UNIQUE(rid) confirms one listed twice (and
	   would stop a COPY that carried one). */
	"CREATE TEMP TABLE IF NOT EXISTS import_r (seq bigint PRIMARY KEY, rid text NOT NULL "
	"UNIQUE, data text NOT NULL);"
	"CREATE TEMP TABLE IF NOT EXISTS import_d (seq bigint NOT NULL, step integer NOT NULL, "
	"due bigint NOT NULL, next bigint NOT NULL, expires bigint NOT NULL, rnd bigint NOT NULL, "
	"PRIMARY KEY (seq, step));"
	/* Each staged recipient against the live campaign: kind 0 new, 1 data changed, 2 the
	   same, 3 listed again after a re-import removed it; id its live row. */
	"CREATE TEMP TABLE IF NOT EXISTS import_rmap (seq bigint PRIMARY KEY, id bigint, "
	"kind integer NOT NULL);"
	/* Deliveries of live recipients the re-import writes: missing ones, or ones it
	   reschedules or brings back. */
	"CREATE TEMP TABLE IF NOT EXISTS import_dchg (seq bigint NOT NULL, step integer NOT NULL, "
	"missing boolean NOT NULL, PRIMARY KEY (seq, step));"
	/* Live recipients the definition no longer lists. */
	"CREATE TEMP TABLE IF NOT EXISTS import_gone (id bigint PRIMARY KEY);"
	"TRUNCATE pg_temp.import_r, pg_temp.import_d, pg_temp.import_rmap, pg_temp.import_dchg, "
	"pg_temp.import_gone";

/* ---- staging ------------------------------------------------------------------------------- */

struct stage {
	struct buf r;                   /* COPY text of staged recipients not sent yet */
	struct buf d;                   /* likewise, their deliveries */
	uint64_t *set;                  /* hashes of the rids staged by this import; 0 = free */
	size_t set_cap;                 /* slots: a power of two, or 0 */
	size_t set_n;
	int64_t seq;                    /* the last seq handed out */
};

static void
stage_free(struct stage *st)
{
	if (!st)
		return;
	buf_free(&st->r);
	buf_free(&st->d);
	free(st->set);
	free(st);
}

/* libpq calls this for its own events on a connection that carries staging state; the one
   that matters is the connection's end, which takes the state with it. */
static int
stage_event(PGEventId id, void *info, void *pass)
{
	(void)pass;
	if (id == PGEVT_CONNDESTROY)
		stage_free(PQinstanceData(((PGEventConnDestroy *)info)->conn, stage_event));
	return 1;
}

/* The connection's staging state, NULL with *err when staging was not begun on it (or the
   connection it began on was lost, and its TEMP tables with it). */
static struct stage *
stage_of(struct pg_store *s, const char *what, char **err)
{
	struct stage *st = PQinstanceData(s->conn, stage_event);

	if (!st)
		pgs_fail(s, err, what, "no import is staging on this connection (was it lost?)");
	return st;
}

/* Fresh staging state on the connection: what an earlier import left is dropped. */
static int
stage_reset(struct pg_store *s, char **err)
{
	struct stage *st = PQinstanceData(s->conn, stage_event);

	stage_free(st);
	if (!(st = calloc(1, sizeof *st)))
		return pgs_fail(s, err, "staging", "out of memory");
	/* Registering fails once the procedure is known to the connection: harmless. */
	PQregisterEventProc(s->conn, stage_event, "herald staging", NULL);
	if (!PQsetInstanceData(s->conn, stage_event, st)) {
		stage_free(st);
		return pgs_fail(s, err, "staging", "cannot attach the staging state to the connection");
	}
	return 0;
}

/* Drops the connection's staging state (staging is over). */
static void
stage_drop(struct pg_store *s)
{
	stage_free(PQinstanceData(s->conn, stage_event));
	PQsetInstanceData(s->conn, stage_event, NULL);
}

/* FNV-1a with a final mix: the set takes its slot from the low bits. Never 0 (a free slot). */
static uint64_t
rid_hash(const char *rid)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *rid; rid++) {
		h ^= (unsigned char)*rid;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h ? h : 1;
}

static int
set_has(const struct stage *st, uint64_t h)
{
	size_t mask = st->set_cap - 1, i;

	if (!st->set_cap)
		return 0;
	for (i = h & mask; st->set[i]; i = (i + 1) & mask)
		if (st->set[i] == h)
			return 1;
	return 0;
}

static void
set_put(uint64_t *set, size_t cap, uint64_t h)
{
	size_t mask = cap - 1, i;

	for (i = h & mask; set[i]; i = (i + 1) & mask)
		;
	set[i] = h;
}

/* Adds h (a hash may be there twice: two rids that share it). 0 / -1 out of memory. */
static int
set_add(struct stage *st, uint64_t h)
{
	/* Open addressing stays quick up to three quarters full; 8 bytes a slot keeps a million
	   rids in 16 MB. */
	if ((st->set_n + 1) * 4 > st->set_cap * 3) {
		size_t cap = st->set_cap ? st->set_cap * 2 : 4096, i;
		uint64_t *set = calloc(cap, sizeof *set);

		if (!set)
			return -1;
		for (i = 0; i < st->set_cap; i++)
			if (st->set[i])
				set_put(set, cap, st->set[i]);
		free(st->set);
		st->set = set;
		st->set_cap = cap;
	}
	set_put(st->set, st->set_cap, h);
	st->set_n++;
	return 0;
}

/* Appends v as a field of COPY's text format: backslash, tab, newline and carriage return
   escaped, every other byte as it is. */
static int
copy_text(struct buf *b, const char *v)
{
	size_t n;
	char esc[2] = {'\\', 0};

	for (;;) {
		n = strcspn(v, "\\\t\n\r");
		if (buf_append(b, v, n) != 0)
			return -1;
		if (!v[n])
			return 0;
		esc[1] = v[n] == '\t' ? 't' : v[n] == '\n' ? 'n' : v[n] == '\r' ? 'r' : '\\';
		if (buf_append(b, esc, 2) != 0)
			return -1;
		v += n + 1;
	}
}

/* Appends v in decimal, then the byte after (a field's tab, a row's newline). */
static int
copy_int(struct buf *b, int64_t v, char after)
{
	char text[24], *p = text + sizeof text;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	*--p = after;
	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10));
	if (v < 0)
		*--p = '-';
	return buf_append(b, p, (size_t)(text + sizeof text - p));
}

/* Sends b with the COPY statement sql and empties it. 0 / -1 with *err (the staging
   transaction is then failed). */
static int
copy_in(struct pg_store *s, const char *sql, struct buf *b, const char *what, char **err)
{
	PGresult *r;
	size_t off, n;
	int rc = 0;

	if (b->len == 0)
		return 0;
	if (PQstatus(s->conn) != CONNECTION_OK)
		return pgs_fail(s, err, what, "the connection was lost inside a transaction");
	r = PQexec(s->conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		rc = pgs_fail(s, err, what, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
		PQclear(r);
		goto out;
	}
	PQclear(r);
	for (off = 0; off < b->len && rc == 0; off += n) {
		n = b->len - off < COPY_CHUNK ? b->len - off : COPY_CHUNK;
		if (PQputCopyData(s->conn, b->data + off, (int)n) != 1)
			rc = pgs_fail(s, err, what, PQerrorMessage(s->conn));
	}
	if (PQputCopyEnd(s->conn, rc == 0 ? NULL : "staging failed") != 1 && rc == 0)
		rc = pgs_fail(s, err, what, PQerrorMessage(s->conn));
	/* The COPY's outcome; libpq wants every result read before the next statement. */
	while ((r = PQgetResult(s->conn))) {
		ExecStatusType st = PQresultStatus(r);

		if (st != PGRES_COMMAND_OK && rc == 0)
			rc = pgs_fail(s, err, what, PQresultErrorMessage(r));
		PQclear(r);
		/* Still copying means the end never reached the server: the connection is gone. */
		if (st == PGRES_COPY_IN)
			break;
	}
out:
	b->len = 0;
	return rc;
}

/* Sends what is buffered of both tables. */
static int
stage_send(struct pg_store *s, struct stage *st, char **err)
{
	if (copy_in(s, "COPY pg_temp.import_r (seq, rid, data) FROM STDIN", &st->r,
	            "staging recipients", err) != 0 ||
	    copy_in(s, "COPY pg_temp.import_d (seq, step, due, next, expires, rnd) FROM STDIN", &st->d,
	            "staging deliveries", err) != 0)
		return -1;
	return 0;
}

int
postgres_stage_begin(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;

	if (pgs_run_script(s, staging_sql, "staging", err) != 0 || stage_reset(s, err) != 0)
		return -1;
	return postgres_begin(base, err);
}

int
postgres_stage_flush(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct stage *st = stage_of(s, "staging", err);

	if (!st || stage_send(s, st, err) != 0 || postgres_commit(base, err) != 0)
		return -1;
	return postgres_begin(base, err);
}

int
postgres_stage_end(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct stage *st = stage_of(s, "staging", err);
	int rc = -1;

	if (!st || stage_send(s, st, err) != 0)
		goto out;
	/* Autovacuum never analyzes TEMP tables: without statistics the joins that follow would
	   be planned blind. */
	if (pgs_run_script(s, "ANALYZE pg_temp.import_r, pg_temp.import_d", "staging", err) != 0)
		goto out;
	rc = postgres_commit(base, err);
out:
	stage_drop(s);
	return rc;
}

int
postgres_stage_recipient(struct store *base, const char *rid, const char *data_json, int64_t *seq,
                         char **err)
{
	static const char *const what = "staging a recipient";
	struct pg_store *s = (struct pg_store *)base;
	struct stage *st = stage_of(s, what, err);
	struct pgs_params p = {0};
	uint64_t h;
	size_t mark;
	int ok;

	if (!st)
		return -1;
	h = rid_hash(rid);
	if (set_has(st, h)) {
		/* Listed before, unless two rids share the hash: the staged rows decide. */
		if (stage_send(s, st, err) != 0)
			return -1;
		pgs_text(&p, rid);
		if (pgs_scalar(s, "SELECT count(*) FROM pg_temp.import_r WHERE rid = $1", &p, 0, what,
		               err, &ok) != 0)
			return ok ? STORE_PUT_DUPLICATE : -1;
	}
	mark = st->r.len;
	if (set_add(st, h) != 0 || copy_int(&st->r, st->seq + 1, '\t') != 0 ||
	    copy_text(&st->r, rid) != 0 || buf_append(&st->r, "\t", 1) != 0 ||
	    copy_text(&st->r, data_json) != 0 || buf_append(&st->r, "\n", 1) != 0) {
		st->r.len = mark;
		return pgs_fail(s, err, what, "out of memory");
	}
	*seq = ++st->seq;
	if (st->r.len + st->d.len >= STAGE_SEND_BYTES && stage_send(s, st, err) != 0)
		return -1;
	return STORE_PUT_NEW;
}

int
postgres_stage_delivery(struct store *base, int64_t seq, int step, int64_t due_at_ms,
                        int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random,
                        char **err)
{
	static const char *const what = "staging a delivery";
	struct pg_store *s = (struct pg_store *)base;
	struct stage *st = stage_of(s, what, err);
	size_t mark;

	if (!st)
		return -1;
	mark = st->d.len;
	if (copy_int(&st->d, seq, '\t') != 0 || copy_int(&st->d, step, '\t') != 0 ||
	    copy_int(&st->d, due_at_ms, '\t') != 0 || copy_int(&st->d, next_at_ms, '\t') != 0 ||
	    copy_int(&st->d, expires_at_ms, '\t') != 0 ||
	    copy_int(&st->d, (int64_t)msg_random, '\n') != 0) {
		st->d.len = mark;
		return pgs_fail(s, err, what, "out of memory");
	}
	if (st->r.len + st->d.len >= STAGE_SEND_BYTES && stage_send(s, st, err) != 0)
		return -1;
	return 0;
}

/* ---- comparing and writing ------------------------------------------------------------------- */

/* A campaign's waiting deliveries grew by n new 'pending' rows: inserts do not count
   themselves (the count trigger fires on updates and deletes only). */
static int
count_inserted(struct pg_store *s, int64_t campaign_id, int64_t n, const char *what, char **err)
{
	struct pgs_params p = {0};

	if (n == 0)
		return 0;
	pgs_int(&p, campaign_id);
	pgs_int(&p, n);
	return pgs_exec(s, "INSERT INTO delivery_counts (campaign_id, state, shard, n) VALUES ($1, "
	                   "'pending', herald_count_shard(), $2) ON CONFLICT (campaign_id, state, "
	                   "shard) DO UPDATE SET n = delivery_counts.n + excluded.n",
	                &p, what, err) < 0 ? -1 : 0;
}

int
postgres_import_plan(struct store *base, int64_t campaign_id, struct store_import_plan *p,
                     char **err)
{
	static const char *const what = "comparing with the stored campaign";
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params id = {0};
	PGresult *r = NULL;

	memset(p, 0, sizeof *p);
	pgs_int(&id, campaign_id);
	/* One snapshot for every comparison: they all see the same live campaign. Only TEMP
	   tables are written, so the isolation level never fails the transaction. */
	if (pgs_run_script(s, "BEGIN ISOLATION LEVEL REPEATABLE READ", what, err) != 0)
		return -1;
	s->in_tx = 1;
	if (pgs_exec(s, "TRUNCATE pg_temp.import_rmap, pg_temp.import_dchg, pg_temp.import_gone",
	             NULL, what, err) < 0 ||
	    pgs_exec(s, "INSERT INTO pg_temp.import_rmap (seq, id, kind) SELECT s.seq, r.id, CASE "
	                "WHEN r.id IS NULL THEN 0 WHEN r.active = 0 THEN 3 WHEN r.data = s.data "
	                "THEN 2 ELSE 1 END FROM pg_temp.import_r s LEFT JOIN recipients r "
	                "ON r.campaign_id = $1 AND r.rid = s.rid",
	             &id, what, err) < 0 ||
	    pgs_run_script(s, "ANALYZE pg_temp.import_rmap", what, err) != 0)
		goto fail;
	/* What postgres_import_apply will change, on the same conditions; a revived recipient's
	   deliveries are pending again by then. */
	if (pgs_exec(s, "INSERT INTO pg_temp.import_dchg (seq, step, missing) SELECT d.seq, d.step, "
	                "x.id IS NULL FROM pg_temp.import_d d JOIN pg_temp.import_rmap m "
	                "ON m.seq = d.seq AND m.kind > 0 "
	                "LEFT JOIN deliveries x ON x.recipient_id = m.id AND x.step = d.step "
	                "WHERE x.id IS NULL "
	                "OR ((x.state IN " PGS_WAITING " OR (m.kind = 3 AND x.state = 'cancelled' "
	                "AND x.last_error = '" PGS_REMOVED_REASON "')) "
	                "AND (x.due_at_ms, x.next_at_ms, x.expires_at_ms) "
	                "IS DISTINCT FROM (d.due, d.next, d.expires)) "
	                "OR (x.state = 'cancelled' AND x.last_error = '" PGS_STEP_REMOVED_REASON "')",
	             NULL, what, err) < 0 ||
	    pgs_exec(s, "INSERT INTO pg_temp.import_gone (id) SELECT r.id FROM recipients r "
	                "WHERE r.campaign_id = $1 AND r.active = 1 "
	                "AND NOT EXISTS (SELECT 1 FROM pg_temp.import_r s WHERE s.rid = r.rid)",
	             &id, what, err) < 0 ||
	    pgs_run_script(s, "ANALYZE pg_temp.import_dchg, pg_temp.import_gone", what, err) != 0)
		goto fail;
	if (!(r = pgs_query(s, "SELECT (SELECT count(*) FROM pg_temp.import_rmap WHERE kind = 0), "
	                       "(SELECT count(*) FROM pg_temp.import_rmap WHERE kind IN (1, 3)), "
	                       "(SELECT count(*) FROM pg_temp.import_gone), "
	                       "(SELECT count(*) FROM pg_temp.import_dchg) + "
	                       "(SELECT count(*) FROM pg_temp.import_d d JOIN pg_temp.import_rmap m "
	                       "ON m.seq = d.seq AND m.kind = 0)",
	                    NULL, what, err)))
		goto fail;
	p->recipients_new = pgs_col_int(r, 0, 0, 0);
	p->recipients_changed = pgs_col_int(r, 0, 1, 0);
	p->recipients_removed = pgs_col_int(r, 0, 2, 0);
	p->deliveries_written = pgs_col_int(r, 0, 3, 0);
	PQclear(r);
	return postgres_commit(base, err);
fail:
	postgres_rollback(base);
	return -1;
}

int
postgres_import_apply(struct store *base, int64_t campaign_id, struct store_import_plan *done,
                      char **err)
{
	static const char *const what = "writing the re-import";
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params id = {0};
	int64_t n;

	memset(done, 0, sizeof *done);
	pgs_int(&id, campaign_id);
	/* Changed recipients take their new data; removed ones listed again come back with the
	   deliveries their removal cancelled (still cancelled for that reason now). */
	if ((done->recipients_changed =
	             pgs_exec(s, "UPDATE recipients SET data = s.data, active = 1 "
	                         "FROM pg_temp.import_rmap m JOIN pg_temp.import_r s ON s.seq = m.seq "
	                         "WHERE m.kind IN (1, 3) AND recipients.id = m.id",
	                      NULL, what, err)) < 0 ||
	    pgs_exec(s, "UPDATE deliveries SET state = 'pending', last_error = NULL "
	                "WHERE campaign_id = $1 AND recipient_id IN (SELECT id FROM "
	                "pg_temp.import_rmap WHERE kind = 3) AND state = 'cancelled' "
	                "AND last_error = '" PGS_REMOVED_REASON "'",
	             &id, what, err) < 0)
		return -1;
	/* New recipients, then their ids into the map for their deliveries. */
	if ((done->recipients_new =
	             pgs_exec(s, "INSERT INTO recipients (campaign_id, rid, data) SELECT $1, s.rid, "
	                         "s.data FROM pg_temp.import_rmap m JOIN pg_temp.import_r s "
	                         "ON s.seq = m.seq WHERE m.kind = 0 ORDER BY m.seq",
	                      &id, what, err)) < 0 ||
	    pgs_exec(s, "UPDATE pg_temp.import_rmap m SET id = r.id FROM pg_temp.import_r s "
	                "JOIN recipients r ON r.rid = s.rid WHERE m.kind = 0 AND s.seq = m.seq "
	                "AND r.campaign_id = $1",
	             &id, what, err) < 0)
		return -1;
	/* Deliveries that do not exist yet: every one of a new recipient, and a live recipient's
	   for a step it did not have (two lists, so that an unchanged re-import reads little). */
	if ((n = pgs_exec(s, "INSERT INTO deliveries (campaign_id, recipient_id, step, due_at_ms, "
	                     "next_at_ms, expires_at_ms, msg_random) SELECT $1, m.id, d.step, d.due, "
	                     "d.next, d.expires, d.rnd FROM (SELECT d.seq, d.step FROM "
	                     "pg_temp.import_rmap m JOIN pg_temp.import_d d ON d.seq = m.seq "
	                     "WHERE m.kind = 0 UNION ALL SELECT seq, step FROM pg_temp.import_dchg "
	                     "WHERE missing) k JOIN pg_temp.import_d d ON d.seq = k.seq AND "
	                     "d.step = k.step JOIN pg_temp.import_rmap m ON m.seq = k.seq "
	                     "ORDER BY d.seq, d.step",
	                  &id, what, err)) < 0 ||
	    count_inserted(s, campaign_id, n, what, err) != 0)
		return -1;
	done->deliveries_written = n;
	/* Live deliveries: rescheduled only while still waiting with changed times, or brought
	   back when a step's removal cancelled them. The condition is checked again here, on the
	   row as it is now (a claim since the plan makes it false: the row is left alone). The
	   count trigger keeps their counts. */
	if ((n = pgs_exec(s, "UPDATE deliveries x SET due_at_ms = d.due, next_at_ms = d.next, "
	                     "expires_at_ms = d.expires, last_error = CASE x.state WHEN 'cancelled' "
	                     "THEN NULL ELSE x.last_error END, state = 'pending', send_at_ms = NULL "
	                     "FROM pg_temp.import_dchg c JOIN pg_temp.import_d d ON d.seq = c.seq "
	                     "AND d.step = c.step JOIN pg_temp.import_rmap m ON m.seq = c.seq "
	                     "WHERE NOT c.missing AND x.recipient_id = m.id AND x.step = c.step "
	                     "AND ((x.state IN " PGS_WAITING " AND (x.due_at_ms, x.next_at_ms, "
	                     "x.expires_at_ms) IS DISTINCT FROM (d.due, d.next, d.expires)) "
	                     "OR (x.state = 'cancelled' AND x.last_error = '"
	                     PGS_STEP_REMOVED_REASON "'))",
	                  NULL, what, err)) < 0)
		return -1;
	done->deliveries_written += n;
	/* Recipients no longer listed: their waiting deliveries are cancelled. (The campaign in
	   these conditions changes nothing but keeps the planner off other campaigns' rows.) */
	if (pgs_exec(s, "UPDATE deliveries SET state = 'cancelled', last_error = '"
	                PGS_REMOVED_REASON "' WHERE campaign_id = $1 AND recipient_id IN (SELECT id "
	                "FROM pg_temp.import_gone) AND state IN " PGS_WAITING,
	             &id, what, err) < 0 ||
	    (done->recipients_removed =
	             pgs_exec(s, "UPDATE recipients SET active = 0 WHERE id IN (SELECT id FROM "
	                         "pg_temp.import_gone) AND active = 1",
	                      NULL, what, err)) < 0)
		return -1;
	/* Schedulers on other nodes learn of new or moved work at the commit. */
	return pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, what, err) < 0 ? -1 : 0;
}

int
postgres_import_hide(struct store *base, int64_t campaign_id, char **err)
{
	struct pgs_params p = {0};

	pgs_int(&p, campaign_id);
	return pgs_exec((struct pg_store *)base, "UPDATE campaigns SET state = 'importing' "
	                "WHERE id = $1", &p, "hiding the new campaign", err) < 0 ? -1 : 0;
}

int64_t
postgres_import_batch(struct store *base, int64_t campaign_id, int64_t from_seq, int64_t rows,
                      char **err)
{
	static const char *const what = "writing the new campaign";
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r = NULL;
	int64_t done = -1, n;

	pgs_int(&p, campaign_id);
	pgs_int(&p, from_seq);
	pgs_int(&p, rows);
	if (postgres_begin(base, err) != 0)
		return -1;
	/* Ids come from the sequences, so a delivery finds its recipient's new id through the
	   rid the insert returns. Both inserts keep listing order, as SQLite's ids do. */
	if (!(r = pgs_query(s, "WITH r AS (INSERT INTO recipients (campaign_id, rid, data) "
	                       "SELECT $1::bigint, rid, data FROM pg_temp.import_r "
	                       "WHERE seq >= $2::bigint AND seq < $2::bigint + $3::bigint "
	                       "ORDER BY seq RETURNING id, rid), "
	                       "d AS (INSERT INTO deliveries (campaign_id, recipient_id, step, "
	                       "due_at_ms, next_at_ms, expires_at_ms, msg_random) "
	                       "SELECT $1::bigint, r.id, d.step, d.due, d.next, d.expires, d.rnd "
	                       "FROM r JOIN pg_temp.import_r s ON s.rid = r.rid "
	                       "AND s.seq >= $2::bigint AND s.seq < $2::bigint + $3::bigint "
	                       "JOIN pg_temp.import_d d ON d.seq = s.seq ORDER BY d.seq, d.step "
	                       "RETURNING 1) "
	                       "SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM d)",
	                    &p, what, err)))
		goto out;
	n = pgs_col_int(r, 0, 1, 0);
	if (count_inserted(s, campaign_id, n, what, err) != 0 || postgres_commit(base, err) != 0)
		goto out;
	done = pgs_col_int(r, 0, 0, 0);
out:
	PQclear(r);
	if (done < 0)
		postgres_rollback(base);
	return done;
}

int
postgres_import_reveal(struct store *base, int64_t campaign_id, char **err)
{
	static const char *const what = "making the campaign visible";
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	pgs_int(&p, campaign_id);
	if (postgres_begin(base, err) != 0)
		return -1;
	if ((n = pgs_exec(s, "UPDATE campaigns SET state = 'active' WHERE id = $1 AND "
	                     "state = 'importing'", &p, what, err)) < 0)
		goto fail;
	if (n != 1) {
		pgs_fail(s, err, what, "it is gone");
		goto fail;
	}
	/* Its deliveries are due work for every scheduler from this commit on. */
	if (pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, what, err) < 0)
		goto fail;
	return postgres_commit(base, err);
fail:
	postgres_rollback(base);
	return -1;
}

/* Runs sql (deleting, $1 = the campaign, and $2 = SWEEP_ROWS when limit) in a transaction of
   its own: the rows deleted, or -1. */
static int64_t
sweep_some(struct pg_store *s, const char *sql, int64_t campaign_id, int limit, char **err)
{
	struct pgs_params p = {0};
	int64_t n;

	pgs_int(&p, campaign_id);
	if (limit)
		pgs_int(&p, SWEEP_ROWS);
	if (postgres_begin(&s->base, err) != 0)
		return -1;
	if ((n = pgs_exec(s, sql, &p, "removing an unfinished import", err)) < 0 ||
	    postgres_commit(&s->base, err) != 0) {
		postgres_rollback(&s->base);
		return -1;
	}
	return n;
}

int64_t
postgres_import_sweep(struct store *base, int64_t only_id, char **err)
{
	static const char *const what = "looking for unfinished imports";
	static const char *const batches[] = {
		"DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE campaign_id = $1 "
		"LIMIT $2)",
		"DELETE FROM recipients WHERE id IN (SELECT id FROM recipients WHERE campaign_id = $1 "
		"LIMIT $2)",
	};
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t id, n, swept = 0;
	size_t i;
	int ok;

	pgs_int(&p, only_id);
	for (;;) {
		id = only_id ? pgs_scalar(s, "SELECT id FROM campaigns WHERE id = $1 AND "
		                             "state = 'importing'", &p, 0, what, err, &ok)
		             : pgs_scalar(s, "SELECT id FROM campaigns WHERE state = 'importing' "
		                             "ORDER BY id LIMIT 1", NULL, 0, what, err, &ok);
		if (!ok)
			return -1;
		if (id == 0)
			return swept;
		/* Its counts go first: each deleted delivery would otherwise update the same count
		   row once per row, in the same transaction. The campaign's end takes them anyway. */
		if (sweep_some(s, "DELETE FROM delivery_counts WHERE campaign_id = $1", id, 0, err) < 0)
			return -1;
		for (i = 0; i < sizeof batches / sizeof batches[0]; i++) {
			while ((n = sweep_some(s, batches[i], id, 1, err)) > 0)
				;
			if (n < 0)
				return -1;
		}
		/* Steps go with it (ON DELETE CASCADE). */
		if (sweep_some(s, "DELETE FROM campaigns WHERE id = $1 AND state = 'importing'", id, 0,
		               err) < 0)
			return -1;
		swept++;
	}
}
