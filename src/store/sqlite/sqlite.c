/*
 * sqlite: the SQLite backend's handle: opening and migrating the database, the statement
 * cache, transactions, campaigns and steps, and the backend's table of functions. Queries
 * live in query.c, the scheduler's claims in claim.c, results in record.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "migrations.h"
#include "sqlite_int.h"
#include "tz.h"
#include "util.h"





/* SQLite's busy handler: n counts the calls of this wait. 1 to try again, 0 to give up. */
static int
busy_handler(void *arg, int n)
{
	struct sqlite_store *s = arg;
	int64_t now = clock_mono_ms();

	if (n == 0)
		s->busy_since_mono = now;
	if (now - s->busy_since_mono >= s->busy_max_ms)
		return 0;
	/* Short at first (locks are mostly short), then a steady 10 ms. Nothing else waits on
	   this thread meanwhile: the network has a thread of its own (http.c). */
	clock_sleep_ms(n < 10 ? 1 : 10);
	return 1;
}

sqlite3_stmt *
sqlite_stmt(struct sqlite_store *s, enum sqlite_sql id)
{
	sqlite3_stmt *st = s->stmt[id];

	if (!st) {
		if (sqlite3_prepare_v3(s->db, sqlite_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id],
		                       NULL) != SQLITE_OK)
			return NULL;
		return s->stmt[id];
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int
sqlite_fail(struct sqlite_store *s, char **err, const char *what)
{
	return util_err(err, "%s: %s", what, sqlite3_errmsg(s->db));
}

int
sqlite_exec(struct sqlite_store *s, const char *sql, char **err)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		util_err(err, "database: %s", msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

void
sqlite_col_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

char *
sqlite_col_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? strdup((const char *)t) : NULL;
}

void
sqlite_campaign_from_row(sqlite3_stmt *st, int col, struct store_campaign *c)
{
	c->id = sqlite3_column_int64(st, col);
	sqlite_col_copy(st, col + 1, c->key, sizeof c->key);
	sqlite_col_copy(st, col + 2, c->name, sizeof c->name);
	sqlite_col_copy(st, col + 3, c->channel, sizeof c->channel);
	sqlite_col_copy(st, col + 4, c->provider, sizeof c->provider);
	sqlite_col_copy(st, col + 5, c->timezone, sizeof c->timezone);
	sqlite_col_copy(st, col + 6, c->start_date, sizeof c->start_date);
	sqlite_col_copy(st, col + 7, c->anchor, sizeof c->anchor);
	c->expire_after_ms = sqlite3_column_int64(st, col + 8);
	sqlite_col_copy(st, col + 9, c->state, sizeof c->state);
	sqlite_col_copy(st, col + 10, c->quiet_hours, sizeof c->quiet_hours);
}


/* Applies one migration in its own transaction, unless another process already did. */
static int
migrate_one(struct sqlite_store *s, const struct migration *m, char **err)
{
	char sql[64];

	if (sqlite_exec(s, "BEGIN IMMEDIATE", err) != 0)
		return -1;
	/* Another process may have migrated while we waited for the write lock. */
	if (sqlite_version(&s->base) >= m->version) {
		sqlite_rollback(&s->base);
		return 0;
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", m->version);
	if (sqlite_exec(s, m->sql, err) != 0 || sqlite_exec(s, sql, err) != 0 ||
	    sqlite_exec(s, "COMMIT", err) != 0) {
		sqlite_rollback(&s->base);
		return -1;
	}
	return 0;
}

/* Applies every embedded migration newer than the file, each in its own transaction. */
static int
sqlite_migrate(struct sqlite_store *s, char **err)
{
	int version = sqlite_version(&s->base), i, rc = 0, defensive = 0;
	int latest = sqlite_migrations[sqlite_migrations_count - 1].version;

	if (version > latest)
		return util_err(err, "%s: schema version %d is newer than this herald knows (%d)", s->path,
		                version, latest);
	if (version == latest)
		return 0;
	/*
	 * Foreign keys off while migrations run (the pragma is a no-op inside a transaction): a
	 * migration that rebuilds a table, SQLite's way to change a constraint, drops the old
	 * one, and with them on that drop would cascade into the rows that reference it. The
	 * rebuild copies every row under the same ids, so none is left dangling.
	 */
	if (sqlite_exec(s, "PRAGMA foreign_keys = OFF", err) != 0)
		return -1;
	/* A migration may rewrite a table's CHECK in sqlite_schema (PRAGMA writable_schema, as
	   SQLite documents for that change), which a library built defensive would refuse. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 0, (int *)NULL);
	for (i = 0; rc == 0 && i < sqlite_migrations_count; i++)
		if (sqlite_migrations[i].version > version)
			rc = migrate_one(s, &sqlite_migrations[i], err);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, defensive, (int *)NULL);
	if (sqlite_exec(s, "PRAGMA foreign_keys = ON", rc ? NULL : err) != 0)
		rc = -1;
	return rc;
}

/*
 * Creates the database file owner-only (0600) when it does not exist yet, so that SQLite,
 * which gives its -wal and -shm files the main file's mode, creates those 0600 too. The
 * campaigns hold recipient ids and message texts: other local users have no business there.
 * fchmod makes the mode independent of the umask. An existing file keeps the mode its owner
 * gave it.
 */
static int
create_private(const char *path, char **err)
{
	int fd;

	if (strcmp(path, ":memory:") == 0 || path[0] == '\0')
		return 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		if (errno == EEXIST)
			return 0;
		return util_err(err, "%s: cannot create database: %s", path, strerror(errno));
	}
	if (fchmod(fd, 0600) != 0) {
		util_err(err, "%s: cannot set mode 0600: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* Opens PATH with SQLite open flags `create` (0 or SQLITE_OPEN_CREATE), then migrates. */
static struct store *
sqlite_open_flags(const char *path, int create, char **err)
{
	struct sqlite_store *s = calloc(1, sizeof *s);

	if (!s) {
		util_err(err, "out of memory");
		return NULL;
	}
	s->base.be = &sqlite_backend;
	s->import_fd = s->runners_fd = -1;
	if (!(s->path = strdup(path))) {
		util_err(err, "out of memory");
		goto fail;
	}
	if (create && create_private(path, err) != 0)
		goto fail;
	/* NOMUTEX: a handle belongs to one thread at a time, so SQLite's own locking is waste. */
	if (sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | create | SQLITE_OPEN_NOMUTEX,
	                    NULL) != SQLITE_OK) {
		util_err(err, "%s: cannot open database: %s", path,
		         s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	s->busy_max_ms = 10000;
	sqlite3_busy_handler(s->db, busy_handler, s);
	sqlite3_extended_result_codes(s->db, 1);
	/*
	 * WAL lets `herald status` read while the scheduler writes. synchronous=FULL: a claim
	 * ('sending') must survive even a power loss before its request leaves, or a restart could
	 * send twice; the scheduler batches claims and results so the fsyncs stay few.
	 */
	if (sqlite_exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
	                  "PRAGMA foreign_keys = ON; PRAGMA temp_store = FILE;", err) != 0)
		goto fail;
	if (sqlite_migrate(s, err) != 0)
		goto fail;
	return &s->base;
fail:
	sqlite_close(&s->base);
	return NULL;
}

struct store *
sqlite_open(const char *path, char **err)
{
	return sqlite_open_flags(path, SQLITE_OPEN_CREATE, err);
}

struct store *
sqlite_open_existing(const char *path, int *missing, char **err)
{
	struct stat st;
	int stat_rc;

	*missing = 0;
	/* SQLite would say only "unable to open database file"; the operator needs to know the
	   file is not there, which is a different fix from a file that cannot be opened. */
	if ((stat_rc = stat(path, &st)) != 0 && errno == ENOENT) {
		*missing = 1;
		util_err(err, "%s: no such database (herald import or herald migrate creates it)", path);
		return NULL;
	}
	/* An empty file holds no database: opening it would turn it into one, and a command that
	   only reads must not write (SPEC §1). */
	if (stat_rc == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
		*missing = 1;
		util_err(err, "%s: an empty file, not a database (herald import or herald migrate "
		         "creates one)", path);
		return NULL;
	}
	/* Without SQLITE_OPEN_CREATE: should the file vanish after the check, nothing is made. */
	return sqlite_open_flags(path, 0, err);
}


void
sqlite_close(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	int i;

	if (!s)
		return;
	for (i = 0; i < SQL_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	sqlite_locks_close(s);
	tz_free(s->when_zone);
	free(s->path);
	free(s);
}

int
sqlite_version(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

const char *
sqlite_path(const struct store *base)
{
	const struct sqlite_store *s = (const struct sqlite_store *)base;

	return s->path;
}

const char *
sqlite_errmsg(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return sqlite3_errmsg(s->db);
}

int
sqlite_begin(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return sqlite_exec(s, "BEGIN IMMEDIATE", err);
}

int
sqlite_commit(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (sqlite_exec(s, "COMMIT", err) != 0) {
		sqlite_rollback(&s->base);
		return -1;
	}
	return 0;
}

void
sqlite_rollback(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int64_t
sqlite_data_version(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---- campaigns ------------------------------------------------------------------------- */

/* Looks a campaign up by key with statement id: 1 found, 0 not found, -1 error. */
static int
campaign_lookup(struct sqlite_store *s, enum sqlite_sql id, const char *key, struct store_campaign *out,
                char **err)
{
	sqlite3_stmt *st = sqlite_stmt(s, id);
	int rc;

	if (!st)
		return sqlite_fail(s, err, "campaign lookup");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		sqlite_campaign_from_row(st, 0, out);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : sqlite_fail(s, err, "campaign lookup");
}

int
sqlite_campaign_get(struct store *base, const char *key, struct store_campaign *out, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return campaign_lookup(s, SQL_CAMPAIGN_GET, key, out, err);
}

int
sqlite_import_campaign_get(struct store *base, const char *key, struct store_campaign *out, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	return campaign_lookup(s, SQL_IMPORT_CAMPAIGN_GET, key, out, err);
}

static void
bind_campaign(sqlite3_stmt *st, const struct store_campaign *c, int64_t now_ms)
{
	sqlite3_bind_text(st, 2, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c->channel, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, c->provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, c->timezone, -1, SQLITE_STATIC);
	if (c->start_date[0])
		sqlite3_bind_text(st, 6, c->start_date, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, c->anchor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, c->expire_after_ms);
	sqlite3_bind_int64(st, 9, now_ms);
	if (c->quiet_hours[0])
		sqlite3_bind_text(st, 10, c->quiet_hours, -1, SQLITE_STATIC);
}

int
sqlite_campaign_put(struct store *base, struct store_campaign *c, int64_t now_ms, int *changed,
                   char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	struct store_campaign old;
	sqlite3_stmt *st;
	int found = sqlite_campaign_get(&s->base, c->key, &old, err);

	if (found < 0)
		return -1;
	if (!found) {
		if (!(st = sqlite_stmt(s, SQL_CAMPAIGN_INSERT)))
			return sqlite_fail(s, err, "campaign insert");
		sqlite3_bind_text(st, 1, c->key, -1, SQLITE_STATIC);
		bind_campaign(st, c, now_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			return sqlite_fail(s, err, "campaign insert");
		c->id = sqlite3_last_insert_rowid(s->db);
		snprintf(c->state, sizeof c->state, "active");
		*changed = 1;
		return 0;
	}
	c->id = old.id;
	memcpy(c->state, old.state, sizeof c->state);
	if (!(st = sqlite_stmt(s, SQL_CAMPAIGN_UPDATE)))
		return sqlite_fail(s, err, "campaign update");
	sqlite3_bind_int64(st, 1, c->id);
	bind_campaign(st, c, now_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		return sqlite_fail(s, err, "campaign update");
	*changed = sqlite3_changes(s->db) > 0;
	return 0;
}

int64_t
sqlite_campaign_set_state(struct store *base, int64_t campaign_id, const char *state, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = NULL;
	int64_t n = 0;

	if (sqlite_begin(&s->base, err) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, "UPDATE campaigns SET state = ?2 WHERE id = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, campaign_id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (strcmp(state, "cancelled") == 0) {
		if (sqlite3_prepare_v2(s->db,
		                       "UPDATE deliveries SET state = 'cancelled', last_error = "
		                       "'campaign cancelled' WHERE campaign_id = ?1 AND " STORE_WAITING("state"),
		                       -1, &st, NULL) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, campaign_id);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
		n = sqlite3_changes(s->db);
		sqlite3_finalize(st);
		st = NULL;
	}
	if (sqlite_commit(&s->base, err) != 0)
		return -1;
	return n;
fail:
	sqlite_fail(s, err, "campaign state");
	sqlite3_finalize(st);
	sqlite_rollback(&s->base);
	return -1;
}

/* ---- import -------------------------------------------------------------------------- */

int
sqlite_step_differs(struct store *base, int64_t campaign_id, int position, int day, const char *time,
                   const char *message_json, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = sqlite_stmt(s, SQL_STEP_GET);
	int rc, differs;

	if (!st)
		return sqlite_fail(s, err, "step lookup");
	sqlite3_bind_int64(st, 1, campaign_id);
	sqlite3_bind_int(st, 2, position);
	rc = sqlite3_step(st);
	differs = !(rc == SQLITE_ROW && sqlite3_column_int(st, 0) == day &&
	            strcmp((const char *)sqlite3_column_text(st, 1), time) == 0 &&
	            strcmp((const char *)sqlite3_column_text(st, 2), message_json) == 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlite_fail(s, err, "step lookup");
	return differs;
}

int
sqlite_step_put(struct store *base, int64_t campaign_id, int position, int day, const char *time,
               const char *message_json, int *changed, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st;
	int differs = sqlite_step_differs(&s->base, campaign_id, position, day, time, message_json, err);

	if (differs < 0)
		return -1;
	if (!(*changed = differs))
		return 0;
	if (!(st = sqlite_stmt(s, SQL_STEP_PUT)))
		return sqlite_fail(s, err, "step write");
	sqlite3_bind_int64(st, 1, campaign_id);
	sqlite3_bind_int(st, 2, position);
	sqlite3_bind_int(st, 3, day);
	sqlite3_bind_text(st, 4, time, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, message_json, -1, SQLITE_STATIC);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite_fail(s, err, "step write");
}

int
sqlite_campaign_differs(struct store *base, const struct store_campaign *c, int n_steps, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	/* The comparison of SQL_CAMPAIGN_UPDATE, and steps past the new last one. */
	static const char *const sql =
		"SELECT (name, channel, provider, timezone, coalesce(start_date, ''), anchor, "
		"expire_after_ms, coalesce(quiet_hours, '')) IS NOT "
		"(?2, ?3, ?4, ?5, coalesce(?6, ''), ?7, ?8, coalesce(?10, '')) OR EXISTS "
		"(SELECT 1 FROM steps WHERE campaign_id = ?1 AND position > ?11) "
		"FROM campaigns WHERE id = ?1";
	sqlite3_stmt *st;
	int rc, differs = 1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sqlite_fail(s, err, "campaign lookup");
	sqlite3_bind_int64(st, 1, c->id);
	bind_campaign(st, c, 0);
	sqlite3_bind_int(st, 11, n_steps);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		differs = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqlite_fail(s, err, "campaign lookup");
	return differs;
}

int
sqlite_steps_trim(struct store *base, int64_t campaign_id, int n_steps, int *changed, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *st = NULL;
	static const char *const sql[] = {
		"UPDATE deliveries SET state = 'cancelled', last_error = '" STEP_REMOVED_REASON "' "
		"WHERE campaign_id = ?1 AND step > ?2 AND " STORE_WAITING("state"),
		"DELETE FROM steps WHERE campaign_id = ?1 AND position > ?2",
	};
	size_t i;

	*changed = 0;
	for (i = 0; i < sizeof sql / sizeof sql[0]; i++) {
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK)
			return sqlite_fail(s, err, "step trim");
		sqlite3_bind_int64(st, 1, campaign_id);
		sqlite3_bind_int(st, 2, n_steps);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite_fail(s, err, "step trim");
			sqlite3_finalize(st);
			return -1;
		}
		*changed |= sqlite3_changes(s->db) > 0;
		sqlite3_finalize(st);
	}
	return 0;
}


const struct store_backend sqlite_backend = {
	.name = "sqlite",
	.close = sqlite_close,
	.version = sqlite_version,
	.path = sqlite_path,
	.errmsg = sqlite_errmsg,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.data_version = sqlite_data_version,
	.campaign_get = sqlite_campaign_get,
	.campaign_put = sqlite_campaign_put,
	.campaign_set_state = sqlite_campaign_set_state,
	.step_put = sqlite_step_put,
	.steps_trim = sqlite_steps_trim,
	.stage_begin = sqlite_stage_begin,
	.stage_flush = sqlite_stage_flush,
	.stage_end = sqlite_stage_end,
	.stage_recipient = sqlite_stage_recipient,
	.stage_delivery = sqlite_stage_delivery,
	.import_campaign_get = sqlite_import_campaign_get,
	.campaign_differs = sqlite_campaign_differs,
	.step_differs = sqlite_step_differs,
	.import_plan = sqlite_import_plan,
	.import_apply = sqlite_import_apply,
	.import_hide = sqlite_import_hide,
	.import_batch = sqlite_import_batch,
	.import_reveal = sqlite_import_reveal,
	.import_sweep = sqlite_import_sweep,
	.status = sqlite_status,
	.deliveries = sqlite_deliveries,
	.attempts = sqlite_attempts,
	.steps = sqlite_steps,
	.recipient_count = sqlite_recipient_count,
	.is_blank = sqlite_is_blank,
	.retry = sqlite_retry,
	.claim = sqlite_claim,
	.next_due = sqlite_next_due,
	.record = sqlite_record,
	.suppress_add = sqlite_suppress_add,
	.suppress_delete = sqlite_suppress_delete,
	.suppress_list = sqlite_suppress_list,
	.channel_get = sqlite_channel_get,
	.channel_set = sqlite_channel_set,
	.ping = sqlite_ping,
	.due_backlog = sqlite_due_backlog,
	.channel_list = sqlite_channel_list,
	.runner_add = sqlite_runner_add,
	.runner_heartbeat = sqlite_runner_heartbeat,
	.runner_list = sqlite_runner_list,
	.runner_reap = sqlite_runner_reap,
	.import_lock = sqlite_import_lock,
	.import_unlock = sqlite_import_unlock,
	.liveness_hold = sqlite_liveness_hold,
	.liveness_try = sqlite_liveness_try,
	.liveness_release = sqlite_liveness_release,
};
