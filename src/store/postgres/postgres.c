/*
 * postgres: the PostgreSQL backend's handle: connecting (every libpq option through the URI),
 * reconnecting after a lost connection, migrating under an advisory lock, transactions, the
 * statement helpers, campaigns and steps, the session locks, and the backend's table of
 * functions. Imports live in import.c, claims in claim.c, results in record.c, queries in
 * query.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "migrations.h"
#include "tz.h"
#include "util.h"

/* ---- statement helpers --------------------------------------------------------------------- */

void
pgs_int(struct pgs_params *p, int64_t v)
{
	if (p->n >= PGS_MAX_PARAMS)
		return;
	snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
	p->v[p->n] = p->num[p->n];
	p->n++;
}

void
pgs_text(struct pgs_params *p, const char *v)
{
	if (p->n < PGS_MAX_PARAMS)
		p->v[p->n++] = v;
}

void
pgs_text_or_null(struct pgs_params *p, const char *v)
{
	pgs_text(p, v && *v ? v : NULL);
}

int
pgs_fail(struct pg_store *s, char **err, const char *what, const char *msg)
{
	char *m = strdup(msg ? msg : "");
	size_t n;

	/* libpq's messages end in a newline; ours do not. */
	if (m && (n = strlen(m)) > 0 && m[n - 1] == '\n')
		m[n - 1] = '\0';
	free(s->errmsg);
	s->errmsg = m;
	return util_err(err, "%s: %s", what, m ? m : "out of memory");
}

/* A connection the server or the network dropped is made again before the next statement
   that is not inside a transaction (one inside has lost its transaction: it must fail). */
static int reconnect(struct pg_store *s, char **err);

static PGresult *
result_of(struct pg_store *s, PGresult *r, const char *what, char **err)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return r;
	pgs_fail(s, err, what, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
	PQclear(r);
	return NULL;
}

static int
ready(struct pg_store *s, char **err)
{
	if (PQstatus(s->conn) == CONNECTION_OK)
		return 0;
	if (s->in_tx)
		return pgs_fail(s, err, "database", "the connection was lost inside a transaction");
	return reconnect(s, err);
}

PGresult *
pgs_query(struct pg_store *s, const char *sql, const struct pgs_params *p, const char *what,
          char **err)
{
	struct pgs_prepared *ps = NULL;
	int i;

	if (ready(s, err) != 0)
		return NULL;
	for (i = 0; i < s->n_prepared; i++)
		if (s->prepared[i].sql == sql) {
			ps = &s->prepared[i];
			break;
		}
	if (!ps) {
		PGresult *r;

		if (s->n_prepared == PGS_CACHE)
			return pgs_query_once(s, sql, p, what, err);
		ps = &s->prepared[s->n_prepared];
		snprintf(ps->name, sizeof ps->name, "h%d", s->n_prepared);
		if (!(r = result_of(s, PQprepare(s->conn, ps->name, sql, 0, NULL), what, err)))
			return NULL;
		PQclear(r);
		ps->sql = sql;
		s->n_prepared++;
	}
	return result_of(s, PQexecPrepared(s->conn, ps->name, p ? p->n : 0, p ? p->v : NULL, NULL,
	                                   NULL, 0),
	                 what, err);
}

PGresult *
pgs_query_once(struct pg_store *s, const char *sql, const struct pgs_params *p, const char *what,
               char **err)
{
	if (ready(s, err) != 0)
		return NULL;
	return result_of(s, PQexecParams(s->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL,
	                                 NULL, 0),
	                 what, err);
}

int64_t
pgs_exec(struct pg_store *s, const char *sql, const struct pgs_params *p, const char *what,
         char **err)
{
	PGresult *r = pgs_query(s, sql, p, what, err);
	int64_t n;

	if (!r)
		return -1;
	n = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

int64_t
pgs_scalar(struct pg_store *s, const char *sql, const struct pgs_params *p, int64_t dflt,
           const char *what, char **err, int *ok)
{
	PGresult *r = pgs_query(s, sql, p, what, err);
	int64_t v;

	*ok = r != NULL;
	if (!r)
		return -1;
	v = PQntuples(r) > 0 ? pgs_col_int(r, 0, 0, dflt) : dflt;
	PQclear(r);
	return v;
}

int64_t
pgs_col_int(const PGresult *r, int row, int col, int64_t dflt)
{
	const char *v;

	if (PQgetisnull(r, row, col))
		return dflt;
	v = PQgetvalue(r, row, col);
	/* Booleans come as "t" / "f". */
	if (v[0] == 't' && v[1] == '\0')
		return 1;
	if (v[0] == 'f' && v[1] == '\0')
		return 0;
	return strtoll(v, NULL, 10);
}

const char *
pgs_col_text(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

void
pgs_col_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
	const char *v = pgs_col_text(r, row, col);

	snprintf(dst, size, "%s", v ? v : "");
}

char *
pgs_col_dup(const PGresult *r, int row, int col)
{
	const char *v = pgs_col_text(r, row, col);

	return v ? strdup(v) : NULL;
}

void
pgs_campaign_from_row(const PGresult *r, int row, int col, struct store_campaign *c)
{
	c->id = pgs_col_int(r, row, col, 0);
	pgs_col_copy(r, row, col + 1, c->key, sizeof c->key);
	pgs_col_copy(r, row, col + 2, c->name, sizeof c->name);
	pgs_col_copy(r, row, col + 3, c->channel, sizeof c->channel);
	pgs_col_copy(r, row, col + 4, c->provider, sizeof c->provider);
	pgs_col_copy(r, row, col + 5, c->timezone, sizeof c->timezone);
	pgs_col_copy(r, row, col + 6, c->start_date, sizeof c->start_date);
	pgs_col_copy(r, row, col + 7, c->anchor, sizeof c->anchor);
	c->expire_after_ms = pgs_col_int(r, row, col + 8, 0);
	pgs_col_copy(r, row, col + 9, c->state, sizeof c->state);
	pgs_col_copy(r, row, col + 10, c->quiet_hours, sizeof c->quiet_hours);
}


int
pgs_run_script(struct pg_store *s, const char *sql, const char *what, char **err)
{
	PGresult *r;

	if (ready(s, err) != 0)
		return -1;
	/* PQexec runs every statement of the text; the result is the last one's. */
	if (!(r = result_of(s, PQexec(s->conn, sql), what, err)))
		return -1;
	PQclear(r);
	return 0;
}

/* The most results run_many keeps. */
#define RUN_MANY_MAX 8

/*
 * Runs the statements of sql (no parameters) in one round trip, keeping the results of the
 * last n of them in out[0..n-1] (caller PQclears each). 0, or -1 with *err (out all NULL)
 * when any failed: the server skips the rest of the text after an error.
 */
static int
run_many(struct pg_store *s, const char *sql, PGresult **out, int n, const char *what,
         char **err)
{
	PGresult *r, *last[RUN_MANY_MAX] = {0};   /* result k at last[k % RUN_MANY_MAX] */
	int count = 0, failed = 0, i;

	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (n > RUN_MANY_MAX || !PQsendQuery(s->conn, sql))
		return pgs_fail(s, err, what, n > RUN_MANY_MAX ? "too many results"
		                                               : PQerrorMessage(s->conn));
	/* Every result is read, whatever happened: the connection is ready again only then. */
	while ((r = PQgetResult(s->conn))) {
		if (failed) {
			PQclear(r);
			continue;
		}
		if (!(r = result_of(s, r, what, err))) {
			failed = 1;
			continue;
		}
		PQclear(last[count % RUN_MANY_MAX]);
		last[count++ % RUN_MANY_MAX] = r;
	}
	if (!failed && count < n)
		failed = pgs_fail(s, err, what, "fewer results than statements");
	for (i = 0; i < n && !failed; i++) {
		out[i] = last[(count - n + i) % RUN_MANY_MAX];
		last[(count - n + i) % RUN_MANY_MAX] = NULL;
	}
	for (i = 0; i < RUN_MANY_MAX; i++)
		PQclear(last[i]);
	return failed ? -1 : 0;
}

int
pgs_begin_batch(struct pg_store *s, int64_t runner_id, int results, const char *then,
                PGresult **got, int n_got, const char *what, char **err)
{
	PGresult *r[RUN_MANY_MAX];
	struct buf sql = {0};
	int i, n = n_got + (runner_id > 0), rc = -1;

	for (i = 0; i < n_got; i++)
		got[i] = NULL;
	if (s->in_tx)
		postgres_rollback(&s->base);  /* abandoned on the way: see postgres_begin */
	if (ready(s, err) != 0)
		return -1;
	/*
	 * One text, so one round trip. Results may be lost to a crash of the server (their rows
	 * are then 'sending' again and settled as after a crash of ours, never sent twice), so
	 * they skip the WAL flush. The runner's row is share-locked: a reap locks it first
	 * (runners.c), so either the reap waits for the claim or the results, or they find it
	 * gone (a claim then fails; results apply only to rows still the runner's, none).
	 */
	if (buf_printf(&sql, "BEGIN%s", results ? "; SET LOCAL synchronous_commit = off" : "") ||
	    (runner_id > 0 && buf_printf(&sql, "; SELECT 1 FROM runners WHERE id = %lld FOR KEY "
	                                 "SHARE", (long long)runner_id)) ||
	    (then && buf_printf(&sql, "; %s", then))) {
		buf_free(&sql);
		return pgs_fail(s, err, what, "out of memory");
	}
	i = run_many(s, sql.data, r, n, what, err);
	buf_free(&sql);
	s->in_tx = PQtransactionStatus(s->conn) != PQTRANS_IDLE;
	if (i != 0)
		goto out;
	if (runner_id > 0 && !results && PQntuples(r[0]) != 1) {
		util_err(err, "%s: runner %lld was settled by another runner (its connection "
		         "was lost); it registers again", what, (long long)runner_id);
		goto out;
	}
	for (i = 0; i < n_got; i++) {
		got[i] = r[n - n_got + i];
		r[n - n_got + i] = NULL;
	}
	rc = 0;
out:
	for (i = 0; i < n - n_got || (rc != 0 && i < n); i++)
		PQclear(r[i]);
	if (rc != 0)
		postgres_rollback(&s->base);
	return rc;
}

/* A serial key's lock number: FNV-1a of its kind and name, as a signed 32-bit half. Two names
   that share one only take turns they need not take. */
static int32_t
serial_number(const struct store_serial_key *k)
{
	uint32_t h = 2166136261u;
	const unsigned char *p = (const unsigned char *)k->name;

	h = (h ^ (uint32_t)k->kind) * 16777619u;
	for (; *p; p++)
		h = (h ^ *p) * 16777619u;
	return (int32_t)h;
}

/* A lock to take: its number, and whether every taker of it only shares it. */
struct serial_lock {
	int32_t num;
	int shared;
};

static int
lock_cmp(const void *a, const void *b)
{
	int32_t x = ((const struct serial_lock *)a)->num, y = ((const struct serial_lock *)b)->num;

	return (x > y) - (x < y);
}

int
pgs_lock_serial(struct pg_store *s, const struct store_serial_key *keys, size_t n,
                const char *then, PGresult **got, const char *what, char **err)
{
	struct serial_lock *lock;
	struct buf sql = {0};
	size_t i, k;
	int rc = -1, shared;

	if (got)
		*got = NULL;
	if (n == 0 && !then)
		return 0;
	if (!(lock = malloc((n + 1) * sizeof *lock)))
		return pgs_fail(s, err, what, "out of memory");
	for (i = 0; i < n; i++) {
		lock[i].num = serial_number(&keys[i]);
		lock[i].shared = keys[i].shared;
	}
	qsort(lock, n, sizeof *lock, lock_cmp);
	/* One text of one statement per lock: they run in the text's order. A lock wanted both
	   ways is taken once, exclusive. */
	for (i = 0; i < n; i = k) {
		for (k = i, shared = 1; k < n && lock[k].num == lock[i].num; k++)
			shared &= lock[k].shared;
		if (buf_printf(&sql, "SELECT pg_advisory_xact_lock%s(" PGS_SERIAL_CLASS ", %ld);",
		               shared ? "_shared" : "", (long)lock[i].num) != 0)
			goto oom;
	}
	if (then && buf_printf(&sql, "%s", then) != 0)
		goto oom;
	rc = then ? run_many(s, sql.data, got, 1, what, err)
	          : pgs_run_script(s, sql.data, what, err);
	goto out;
oom:
	pgs_fail(s, err, what, "out of memory");
out:
	buf_free(&sql);
	free(lock);
	return rc;
}

void
pgs_drain_notifies(struct pg_store *s)
{
	PGnotify *n;

	if (PQconsumeInput(s->conn) != 1)
		return;
	while ((n = PQnotifies(s->conn))) {
		s->notified++;
		PQfreemem(n);
	}
}

/* ---- connecting ---------------------------------------------------------------------------- */

/* NOTICE messages (e.g. "relation already exists, skipping") are not for the operator. */
static void
quiet_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/*
 * The URI as it may be shown: a password (user:password@ or password=) becomes "***". The
 * connection URI is the operator's secret as much as a provider key is.
 */
static char *
masked_uri(const char *uri)
{
	/* A password shorter than "***" grows the text by up to 3 bytes, and each one takes at
	   least ":@" or "password=": twice the length is room enough. */
	size_t len = strlen(uri), n;
	char *m = malloc(2 * len + 16), *at, *colon, *p, *end;

	if (!m)
		return NULL;
	memcpy(m, uri, len + 1);
	/* scheme://user:password@host */
	if ((p = strstr(m, "://")) && (at = strchr(p + 3, '@')) &&
	    (colon = memchr(p + 3, ':', (size_t)(at - (p + 3))))) {
		n = strlen(at);
		memmove(colon + 4, at, n + 1);
		memcpy(colon + 1, "***", 3);
	}
	/* ?password=... or &password=... */
	for (p = m; (p = strstr(p, "password=")); p += 9) {
		if (p != m && p[-1] != '?' && p[-1] != '&')
			continue;
		end = p + 9 + strcspn(p + 9, "&");
		n = strlen(end);
		memmove(p + 12, end, n + 1);
		memcpy(p + 9, "***", 3);
	}
	return m;
}

/* Session settings every connection gets. 0 / -1. */
static int
session_setup(struct pg_store *s, char **err)
{
	PQsetNoticeProcessor(s->conn, quiet_notices, NULL);
	/* A claim's 'sending' must be durable before its request leaves (SPEC 5.5): whatever the
	   server's default, commits here wait for the WAL flush. */
	if (pgs_run_script(s, "SET synchronous_commit = on; SET client_min_messages = warning; "
	                      "SET TIME ZONE 'UTC'", "session", err) != 0)
		return -1;
	if (s->reader)
		return pgs_run_script(s, "SET default_transaction_read_only = on", "session", err);
	/*
	 * The shard of the delivery counts this session writes (migration 0002): the first of
	 * PGS_COUNT_SHARDS whose session lock is free, held until the session ends, so no two
	 * live sessions share one (past that many, each writes one named by its process id).
	 */
	return pgs_run_script(s, "LISTEN " PGS_CHANNEL "; DO $$ BEGIN FOR k IN 1.."
	                      PGS_COUNT_SHARDS " LOOP IF pg_try_advisory_lock(" PGS_SHARD_CLASS
	                      ", k) THEN PERFORM set_config('herald.count_shard', k::text, false); "
	                      "RETURN; END IF; END LOOP; END $$",
	                      "session", err);
}

static int
connect_now(struct pg_store *s, char **err)
{
	if (s->conn)
		PQfinish(s->conn);
	s->n_prepared = 0;
	s->in_tx = 0;
	s->import_locked = 0;
	if (!(s->conn = PQconnectdb(s->conninfo)))
		return util_err(err, "%s: out of memory", s->shown);
	if (PQstatus(s->conn) != CONNECTION_OK)
		return pgs_fail(s, err, s->shown, PQerrorMessage(s->conn));
	s->session++;
	return session_setup(s, err);
}

static int
reconnect(struct pg_store *s, char **err)
{
	return connect_now(s, err);
}

/* ---- migrations ---------------------------------------------------------------------------- */

static const char migrations_table[] =
	"CREATE TABLE IF NOT EXISTS herald_migrations (version integer PRIMARY KEY, "
	"name text NOT NULL, applied_at_ms bigint NOT NULL)";

/* Whether the database holds Herald's schema at all: 1 yes, 0 no, -1 error. */
static int
has_schema(struct pg_store *s, char **err)
{
	int ok;
	int64_t v = pgs_scalar(s, "SELECT to_regclass('herald_migrations') IS NOT NULL", NULL, 0,
	                       "schema", err, &ok);

	return ok ? (int)v : -1;
}

/* Applies what is missing, each migration in its own transaction, under a session advisory
   lock so that several nodes starting at once migrate once. A database already current costs
   one query and takes no lock; one newer than this herald is refused. */
static int
migrate(struct pg_store *s, char **err)
{
	int n = postgres_migrations_count;
	int latest = n ? postgres_migrations[n - 1].version : 0;
	int i, rc = -1, v, has = has_schema(s, err);

	if (has < 0)
		return -1;
	if (has && (v = postgres_version(&s->base)) >= latest) {
		if (v == latest)
			return 0;
		return util_err(err, "%s: schema version %d is newer than this herald knows (%d)",
		                s->shown, v, latest);
	}
	if (pgs_exec(s, "SELECT pg_advisory_lock(" PGS_LOCK_CLASS ", " PGS_LOCK_MIGRATE ")", NULL,
	             "migrate", err) < 0)
		return -1;
	if (pgs_run_script(s, migrations_table, "migrate", err) != 0)
		goto out;
	/* Read again under the lock: another node may have migrated while we waited. */
	if ((v = postgres_version(&s->base)) < 0) {
		pgs_fail(s, err, "migrate", "cannot read the schema version");
		goto out;
	}
	for (i = 0; i < postgres_migrations_count; i++) {
		const struct migration *m = &postgres_migrations[i];
		struct pgs_params p = {0};

		if (m->version <= v)
			continue;
		if (pgs_run_script(s, "BEGIN", "migrate", err) != 0)
			goto out;
		pgs_int(&p, m->version);
		pgs_text(&p, m->name);
		if (pgs_run_script(s, m->sql, m->name, err) != 0 ||
		    pgs_exec(s, "INSERT INTO herald_migrations (version, name, applied_at_ms) VALUES "
		                "($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)",
		             &p, m->name, err) < 0 ||
		    pgs_run_script(s, "COMMIT", "migrate", err) != 0) {
			pgs_run_script(s, "ROLLBACK", "migrate", NULL);
			goto out;
		}
	}
	rc = 0;
out:
	pgs_exec(s, "SELECT pg_advisory_unlock(" PGS_LOCK_CLASS ", " PGS_LOCK_MIGRATE ")", NULL,
	         "migrate", NULL);
	return rc;
}

/* ---- open, close ----------------------------------------------------------------------------- */

static struct pg_store *
handle_new(const char *uri, int reader, char **err)
{
	struct pg_store *s = calloc(1, sizeof *s);

	if (!s) {
		util_err(err, "out of memory");
		return NULL;
	}
	s->base.be = &postgres_backend;
	s->reader = reader;
	if (!(s->conninfo = strdup(uri)) || !(s->shown = masked_uri(uri)) ||
	    !(s->errmsg = strdup(""))) {
		util_err(err, "out of memory");
		postgres_close(&s->base);
		return NULL;
	}
	if (connect_now(s, err) != 0) {
		postgres_close(&s->base);
		return NULL;
	}
	return s;
}

struct store *
postgres_open(const char *uri, char **err)
{
	struct pg_store *s = handle_new(uri, 0, err);

	if (!s)
		return NULL;
	if (migrate(s, err) != 0) {
		postgres_close(&s->base);
		return NULL;
	}
	return &s->base;
}

struct store *
postgres_open_existing(const char *uri, int *missing, char **err)
{
	struct pg_store *s;
	int has;

	*missing = 0;
	if (!(s = handle_new(uri, 0, err)))
		return NULL;
	/* A database without Herald's tables is, to a command that only reads, no database: it
	   is not made one (SPEC §1). */
	if ((has = has_schema(s, err)) <= 0) {
		if (has == 0) {
			*missing = 1;
			util_err(err, "%s: no Herald database there (herald import or herald migrate "
			         "creates one)", s->shown);
		}
		postgres_close(&s->base);
		return NULL;
	}
	if (migrate(s, err) != 0) {
		postgres_close(&s->base);
		return NULL;
	}
	return &s->base;
}

struct store *
postgres_open_reader(const char *uri, char **err)
{
	struct pg_store *s = handle_new(uri, 1, err);

	return s ? &s->base : NULL;
}

void
postgres_close(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	if (!s)
		return;
	if (s->conn)
		PQfinish(s->conn);
	PQclear(s->claim_read[0]);
	PQclear(s->claim_read[1]);
	PQclear(s->claim_optouts);
	tz_free(s->when_zone);
	free(s->conninfo);
	free(s->shown);
	free(s->errmsg);
	free(s);
}

int
postgres_version(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	int ok;
	int64_t v = pgs_scalar(s, "SELECT coalesce(max(version), 0) FROM herald_migrations", NULL, 0,
	                       "schema version", NULL, &ok);

	return ok ? (int)v : -1;
}

const char *
postgres_path(const struct store *base)
{
	return ((const struct pg_store *)base)->shown;
}

const char *
postgres_errmsg(struct store *base)
{
	return ((struct pg_store *)base)->errmsg;
}

int
postgres_begin(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;

	/* A transaction still marked open was abandoned by a failure on the way: end it, or the
	   handle would refuse every statement from now on as one inside a lost transaction. */
	if (s->in_tx)
		postgres_rollback(base);
	if (pgs_run_script(s, "BEGIN", "begin", err) != 0)
		return -1;
	s->in_tx = 1;
	return 0;
}

int
postgres_commit(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	int rc = pgs_run_script(s, "COMMIT", "commit", err);

	if (rc != 0)
		postgres_rollback(base);
	s->in_tx = 0;
	return rc;
}

void
postgres_rollback(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	if (s->in_tx && PQstatus(s->conn) == CONNECTION_OK)
		PQclear(PQexec(s->conn, "ROLLBACK"));
	s->in_tx = 0;
}

int64_t
postgres_data_version(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	pgs_drain_notifies(s);
	/* A new connection may have missed notifications: it counts as a change. */
	return s->notified + (s->session << 32);
}

/* ---- campaigns and steps --------------------------------------------------------------------- */

static int
campaign_lookup(struct pg_store *s, const char *sql, const char *key, struct store_campaign *out,
                char **err)
{
	struct pgs_params p = {0};
	PGresult *r;
	int found;

	pgs_text(&p, key);
	if (!(r = pgs_query(s, sql, &p, "campaign lookup", err)))
		return -1;
	if ((found = PQntuples(r) > 0))
		pgs_campaign_from_row(r, 0, 0, out);
	PQclear(r);
	return found;
}

int
postgres_campaign_get(struct store *base, const char *key, struct store_campaign *out, char **err)
{
	return campaign_lookup((struct pg_store *)base,
	                       "SELECT " PGS_CAMPAIGN_COLS " FROM campaigns c WHERE c.key = $1 "
	                       "AND c.state <> 'importing'",
	                       key, out, err);
}

int
postgres_import_campaign_get(struct store *base, const char *key, struct store_campaign *out,
                             char **err)
{
	return campaign_lookup((struct pg_store *)base,
	                       "SELECT " PGS_CAMPAIGN_COLS " FROM campaigns c WHERE c.key = $1",
	                       key, out, err);
}

/* $2.. of the campaign statements: name, channel, provider, timezone, start_date,
   anchor, expire_after_ms, now, quiet_hours. */
static void
campaign_params(struct pgs_params *p, const struct store_campaign *c, int64_t now_ms)
{
	pgs_text(p, c->name);
	pgs_text(p, c->channel);
	pgs_text(p, c->provider);
	pgs_text(p, c->timezone);
	pgs_text_or_null(p, c->start_date);
	pgs_text(p, c->anchor);
	pgs_int(p, c->expire_after_ms);
	pgs_int(p, now_ms);
	pgs_text_or_null(p, c->quiet_hours);
}

int
postgres_campaign_put(struct store *base, struct store_campaign *c, int64_t now_ms, int *changed,
                      char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	struct store_campaign old;
	int found = postgres_campaign_get(base, c->key, &old, err), ok;
	int64_t n;

	if (found < 0)
		return -1;
	if (!found) {
		pgs_text(&p, c->key);
		campaign_params(&p, c, now_ms);
		c->id = pgs_scalar(s, "INSERT INTO campaigns (key, name, channel, provider, timezone, "
		                      "start_date, anchor, expire_after_ms, created_at_ms, "
		                      "updated_at_ms, quiet_hours) VALUES ($1, $2, $3, $4, $5, $6, $7, "
		                      "$8, $9, $9, $10) RETURNING id",
		                   &p, 0, "campaign insert", err, &ok);
		if (!ok)
			return -1;
		snprintf(c->state, sizeof c->state, "active");
		*changed = 1;
		return 0;
	}
	c->id = old.id;
	memcpy(c->state, old.state, sizeof c->state);
	pgs_int(&p, c->id);
	campaign_params(&p, c, now_ms);
	n = pgs_exec(s, "UPDATE campaigns SET name = $2, channel = $3, provider = $4, timezone = $5, "
	                "start_date = $6, anchor = $7, expire_after_ms = $8, updated_at_ms = $9, "
	                "quiet_hours = $10 WHERE id = $1 AND (name, channel, provider, timezone, "
	                "coalesce(start_date, ''), anchor, expire_after_ms, coalesce(quiet_hours, '')) "
	                "IS DISTINCT FROM ($2, $3, $4, $5, coalesce($6, ''), $7, $8::bigint, "
	                "coalesce($10, ''))",
	             &p, "campaign update", err);
	if (n < 0)
		return -1;
	*changed = n > 0;
	return 0;
}

int64_t
postgres_campaign_set_state(struct store *base, int64_t campaign_id, const char *state, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n = 0;

	pgs_int(&p, campaign_id);
	pgs_text(&p, state);
	if (postgres_begin(base, err) != 0)
		return -1;
	if (pgs_exec(s, "UPDATE campaigns SET state = $2 WHERE id = $1", &p, "campaign state",
	             err) < 0)
		goto fail;
	/* Only the id: a prepared statement takes exactly the parameters it names. */
	p.n = 1;
	if (strcmp(state, "cancelled") == 0 &&
	    (n = pgs_exec(s, "UPDATE deliveries SET state = 'cancelled', last_error = 'campaign "
	                     "cancelled' WHERE campaign_id = $1 AND state IN " PGS_WAITING,
	                  &p, "campaign state", err)) < 0)
		goto fail;
	if (strcmp(state, "active") == 0 &&
	    pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, "campaign state", err) < 0)
		goto fail;
	if (postgres_commit(base, err) != 0)
		return -1;
	return n;
fail:
	postgres_rollback(base);
	return -1;
}

int
postgres_step_differs(struct store *base, int64_t campaign_id, int position, int day,
                      const char *time, const char *message_json, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int differs;

	pgs_int(&p, campaign_id);
	pgs_int(&p, position);
	if (!(r = pgs_query(s, "SELECT day, time, message FROM steps WHERE campaign_id = $1 AND "
	                       "position = $2",
	                    &p, "step lookup", err)))
		return -1;
	differs = !(PQntuples(r) == 1 && pgs_col_int(r, 0, 0, 0) == day &&
	            strcmp(PQgetvalue(r, 0, 1), time) == 0 &&
	            strcmp(PQgetvalue(r, 0, 2), message_json) == 0);
	PQclear(r);
	return differs;
}

int
postgres_step_put(struct store *base, int64_t campaign_id, int position, int day,
                  const char *time, const char *message_json, int *changed, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int differs = postgres_step_differs(base, campaign_id, position, day, time, message_json, err);

	if (differs < 0)
		return -1;
	if (!(*changed = differs))
		return 0;
	pgs_int(&p, campaign_id);
	pgs_int(&p, position);
	pgs_int(&p, day);
	pgs_text(&p, time);
	pgs_text(&p, message_json);
	if (pgs_exec(s, "INSERT INTO steps (campaign_id, position, day, time, message) VALUES "
	                "($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, position) DO UPDATE SET "
	                "day = excluded.day, time = excluded.time, message = excluded.message",
	             &p, "step write", err) < 0)
		return -1;
	*changed = 1;
	return 0;
}

int
postgres_campaign_differs(struct store *base, const struct store_campaign *c, int n_steps,
                          char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int differs;

	pgs_int(&p, c->id);
	campaign_params(&p, c, 0);
	pgs_int(&p, n_steps);
	/* The comparison of the campaign update, and steps past the new last one ($9, the time,
	   is not compared). */
	if (!(r = pgs_query(s, "SELECT (name, channel, provider, timezone, coalesce(start_date, ''), "
	                       "anchor, expire_after_ms, coalesce(quiet_hours, '')) IS DISTINCT FROM "
	                       "($2, $3, $4, $5, coalesce($6, ''), $7, $8::bigint, coalesce($10, '')) "
	                       "OR EXISTS (SELECT 1 FROM steps WHERE campaign_id = $1 AND "
	                       "position > $11::integer) OR $9::bigint IS NULL FROM campaigns "
	                       "WHERE id = $1",
	                    &p, "campaign compare", err)))
		return -1;
	differs = PQntuples(r) > 0 ? (int)pgs_col_int(r, 0, 0, 1) : 1;
	PQclear(r);
	return differs;
}

int
postgres_steps_trim(struct store *base, int64_t campaign_id, int n_steps, int *changed, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	pgs_int(&p, campaign_id);
	pgs_int(&p, n_steps);
	*changed = 0;
	if ((n = pgs_exec(s, "UPDATE deliveries SET state = 'cancelled', last_error = '"
	                     PGS_STEP_REMOVED_REASON "' WHERE campaign_id = $1 AND step > $2 AND "
	                     "state IN " PGS_WAITING,
	                  &p, "step trim", err)) < 0)
		return -1;
	*changed |= n > 0;
	if ((n = pgs_exec(s, "DELETE FROM steps WHERE campaign_id = $1 AND position > $2", &p,
	                  "step trim", err)) < 0)
		return -1;
	*changed |= n > 0;
	return 0;
}

/* ---- session locks ------------------------------------------------------------------------- */

int
postgres_import_lock(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;

	if (pgs_exec(s, "SELECT pg_advisory_lock(" PGS_LOCK_CLASS ", " PGS_LOCK_IMPORT ")", NULL,
	             "import lock", err) < 0)
		return -1;
	s->import_locked = 1;
	return 0;
}

void
postgres_import_unlock(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	if (s->import_locked)
		pgs_exec(s, "SELECT pg_advisory_unlock(" PGS_LOCK_CLASS ", " PGS_LOCK_IMPORT ")", NULL,
		         "import lock", NULL);
	s->import_locked = 0;
}

int
postgres_liveness_hold(struct store *base, int64_t runner_id, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int ok;

	pgs_int(&p, runner_id);
	if (pgs_scalar(s, "SELECT pg_try_advisory_lock(" PGS_LIVENESS_CLASS ", $1::integer)", &p, 0,
	               "liveness lock", err, &ok) != 1)
		return ok ? util_err(err, "runner %lld: its liveness lock is taken",
		                     (long long)runner_id)
		          : -1;
	s->liveness_session = s->session;
	return 0;
}

/*
 * A free lock says the runner's connection is gone, which may not be the runner: a node whose
 * connection the server dropped lives on until it notices. Settling its claims at once is
 * still safe, as after a crash: what a provider cannot de-duplicate becomes 'unknown' and is
 * never resent, what it can goes again with the same de-duplication key, and the node's own
 * late results are fenced (store_record), an accepted one correcting its 'unknown'.
 */
int
postgres_liveness_try(struct store *base, int64_t runner_id, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int ok;
	int64_t got;

	pgs_int(&p, runner_id);
	got = pgs_scalar(s, "SELECT pg_try_advisory_lock(" PGS_LIVENESS_CLASS ", $1::integer)", &p, 0,
	                 "liveness lock", err, &ok);
	return ok ? got != 0 : -1;
}

void
postgres_liveness_release(struct store *base, int64_t runner_id)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};

	pgs_int(&p, runner_id);
	pgs_exec(s, "SELECT pg_advisory_unlock(" PGS_LIVENESS_CLASS ", $1::integer)", &p,
	         "liveness lock", NULL);
}

const struct store_backend postgres_backend = {
	.name = "postgres",
	.close = postgres_close,
	.version = postgres_version,
	.path = postgres_path,
	.errmsg = postgres_errmsg,
	.begin = postgres_begin,
	.commit = postgres_commit,
	.rollback = postgres_rollback,
	.data_version = postgres_data_version,
	.campaign_get = postgres_campaign_get,
	.campaign_put = postgres_campaign_put,
	.campaign_set_state = postgres_campaign_set_state,
	.step_put = postgres_step_put,
	.steps_trim = postgres_steps_trim,
	.stage_begin = postgres_stage_begin,
	.stage_flush = postgres_stage_flush,
	.stage_end = postgres_stage_end,
	.stage_recipient = postgres_stage_recipient,
	.stage_delivery = postgres_stage_delivery,
	.import_campaign_get = postgres_import_campaign_get,
	.campaign_differs = postgres_campaign_differs,
	.step_differs = postgres_step_differs,
	.import_plan = postgres_import_plan,
	.import_apply = postgres_import_apply,
	.import_hide = postgres_import_hide,
	.import_batch = postgres_import_batch,
	.import_reveal = postgres_import_reveal,
	.import_sweep = postgres_import_sweep,
	.status = postgres_status,
	.deliveries = postgres_deliveries,
	.attempts = postgres_attempts,
	.steps = postgres_steps,
	.recipient_count = postgres_recipient_count,
	.is_blank = postgres_is_blank,
	.retry = postgres_retry,
	.claim = postgres_claim,
	.next_due = postgres_next_due,
	.record = postgres_record,
	.suppress_add = postgres_suppress_add,
	.suppress_delete = postgres_suppress_delete,
	.suppress_list = postgres_suppress_list,
	.channel_get = postgres_channel_get,
	.channel_set = postgres_channel_set,
	.ping = postgres_ping,
	.due_backlog = postgres_due_backlog,
	.channel_list = postgres_channel_list,
	.runner_add = postgres_runner_add,
	.runner_heartbeat = postgres_runner_heartbeat,
	.runner_list = postgres_runner_list,
	.runner_reap = postgres_runner_reap,
	.import_lock = postgres_import_lock,
	.import_unlock = postgres_import_unlock,
	.liveness_hold = postgres_liveness_hold,
	.liveness_try = postgres_liveness_try,
	.liveness_release = postgres_liveness_release,
};
