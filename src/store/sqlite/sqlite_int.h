/*
 * sqlite_int: what the SQLite backend's source files share and nobody else sees: the handle
 * and its cache of prepared statements, held for the life of the handle so hot paths never
 * re-parse SQL, and the backend's functions that fill the store_backend table.
 */
#ifndef HERALD_STORE_SQLITE_INT_H
#define HERALD_STORE_SQLITE_INT_H

#include <sqlite3.h>

#include "backend.h"
#include "sqlite.h"

enum sqlite_sql {
	SQL_CAMPAIGN_GET,
	SQL_CAMPAIGN_INSERT,
	SQL_CAMPAIGN_UPDATE,
	SQL_STEP_GET,
	SQL_STEP_PUT,
	SQL_IMPORT_CAMPAIGN_GET,
	SQL_STAGE_RECIPIENT,
	SQL_STAGE_DELIVERY,
	SQL_NEXT_DUE,
	SQL_ACTIVE_CAMPAIGNS,
	SQL_EXPIRE_DUE,
	SQL_CLAIM_SELECT,
	SQL_CLAIM_MARK,
	SQL_CLAIM_MARK_MANY,
	SQL_DEFER_MARK,
	SQL_WAIT_MARK,
	SQL_LIMIT_GET,
	SQL_LIMIT_RESERVE,
	SQL_RECORD_UPDATE,
	SQL_ATTEMPT_INSERT,
	SQL_CAMPAIGN_ERROR,
	SQL_LIMIT_SETTLE_OK,
	SQL_LIMIT_RELEASE,
	SQL_CLAIM_BATCH_REST,
	SQL_RECORD_LATE_ACCEPT,
	SQL_RUNNER_ADD,
	SQL_RUNNER_HEARTBEAT,
	SQL_RUNNER_LIST,
	SQL_RUNNER_STALE,
	SQL_RUNNER_DELETE,
	SQL_REAP_LIMITS,
	SQL_REAP_LIST,
	SQL_REAP_RESEND,
	SQL_REAP_UNKNOWN,
	SQL_REAP_ATTEMPT,
	SQL_CHANNELS_HELD,
	SQL_CHANNEL_PROBED,
	SQL_CHANNEL_SUSPEND,
	SQL_CHANNEL_RECOVER,
	SQL_SUPPRESS_ANY,
	SQL_SUPPRESS_FIND,
	SQL_SUPPRESS_MARK,
	SQL_SUPPRESS_PUT,
	SQL_SUPPRESS_DELETE,
	SQL_AUDIENCE_DEFER,
	SQL_CAP_PRUNE,
	SQL_CAP_COUNT,
	SQL_CAP_NTH,
	SQL_CAP_RESERVE,
	SQL_CAP_KEEP,
	SQL_CAP_DROP,
	SQL_COUNT
};

struct sqlite_store {
	struct store base;              /* first: the front sees this */
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[SQL_COUNT];  /* prepared on first use, finalized by sqlite_close */
	int64_t busy_max_ms;
	int64_t busy_since_mono;        /* when the current wait for a lock began */
	int claim_suppressions;         /* the claim under way found the opt-out list non-empty */
	unsigned claim_turn;            /* which campaign the next claim serves first */
	int import_fd;                  /* DB-import.lock, -1 until first locked (locks.c) */
	int runners_fd;                 /* DB-runners.lock, -1 until first used (locks.c) */
	struct tz *when_zone;           /* store_format_when's cached zone (owned), NULL = none */
};

/* The text of every cached statement, indexed by id (sqlite_sql.c). */
extern const char *const sqlite_sql[SQL_COUNT];
/* Statement id, prepared from sqlite_sql on first use, else reset with bindings cleared. NULL on
   error. */
sqlite3_stmt *sqlite_stmt(struct sqlite_store *s, enum sqlite_sql id);
/* Sets *err to "what: <sqlite message>" and returns -1. */
int sqlite_fail(struct sqlite_store *s, char **err, const char *what);
/* Runs SQL with no result rows. 0 / -1 with *err. */
int sqlite_exec(struct sqlite_store *s, const char *sql, char **err);
/* Reads a campaign row from columns id, key, name, channel, provider, timezone, start_date,
   anchor, expire_after_ms, state, quiet_hours starting at column `col`. */
void sqlite_campaign_from_row(sqlite3_stmt *st, int col, struct store_campaign *c);
/* Copies column text into a fixed buffer (empty for NULL). */
void sqlite_col_copy(sqlite3_stmt *st, int col, char *dst, size_t size);
/* A new copy of column text, or NULL for NULL (or out of memory). */
char *sqlite_col_dup(sqlite3_stmt *st, int col);

/*
 * The claim's audience rules (audience.c), inside the claim transaction.
 * sqlite_audience_begin: once per claim, before any job.
 * sqlite_audience_check: suppresses or defers a due job (1 = it may go on, 0 = it was settled
 * here, -1 = error); *a gets the job's rules for sqlite_audience_reserve.
 * sqlite_audience_reserve: the job was claimed: it counts against its channel's cap from now.
 * sqlite_audience_settle: a result came: the send keeps counting if it was (or may have been)
 * accepted, at the attempt's start, else it no longer counts.
 */
int sqlite_audience_begin(struct sqlite_store *s);
int sqlite_audience_check(struct sqlite_store *s, const struct store_claim_cb *cb,
                          struct store_job *j, int64_t now_ms, struct store_audience *a);
int sqlite_audience_reserve(struct sqlite_store *s, const struct store_job *j,
                            const struct store_audience *a, int64_t now_ms);
int sqlite_audience_settle(struct sqlite_store *s, const struct store_result *r);

/* The columns sqlite_campaign_from_row reads, for SELECT lists. */
#define STORE_CAMPAIGN_COLS \
	"c.id, c.key, c.name, c.channel, c.provider, c.timezone, c.start_date, c.anchor, " \
	"c.expire_after_ms, c.state, c.quiet_hours"
/* How many columns STORE_CAMPAIGN_COLS is. */
#define STORE_CAMPAIGN_NCOLS 11

/* Why a delivery was cancelled by a re-import; a recipient listed again brings these back. */
#define REMOVED_REASON "recipient removed from the campaign"
/* Likewise for a step: a definition that has the step again brings its deliveries back. */
#define STEP_REMOVED_REASON "step removed from the campaign"

/* What a claim reads of each delivery: everything its request needs. */
#define CLAIM_COLS \
	"SELECT d.id, d.step, s.day, s.time, d.attempts, d.due_at_ms, d.expires_at_ms, " \
	"coalesce(d.send_at_ms, 0), d.msg_random, r.rid, r.data, s.message, " \
	"coalesce(d.batch_id, 0) FROM deliveries d " \
	"JOIN recipients r ON r.id = d.recipient_id " \
	"JOIN steps s ON s.campaign_id = d.campaign_id AND s.position = d.step "

/* The states a delivery waits in until the scheduler acts on it, as a predicate on column col.
   Written as deliveries_ready's WHERE is (ORs, which SQLite checks without building a b-tree
   as it does for an IN list), so that the planner sees the query implies the index's. */
#define STORE_WAITING(col) \
	"(" col " = 'pending' OR " col " = 'retrying' OR " col " = 'deferred')"

/* Creates the import's staging tables in the connection's temp schema if missing
   (import.c). 0 / -1 with *err. */
int sqlite_stage_tables(struct sqlite_store *s, char **err);

/* The table of this backend's functions (sqlite.c). */
extern const struct store_backend sqlite_backend;

/* The backend's side of each store_* operation (see store.h); sqlite.c puts them in its
   store_backend table. */
void sqlite_close(struct store *base);
int sqlite_version(struct store *base);
const char *sqlite_path(const struct store *base);
const char *sqlite_errmsg(struct store *base);
int sqlite_begin(struct store *base, char **err);
int sqlite_commit(struct store *base, char **err);
void sqlite_rollback(struct store *base);
int64_t sqlite_data_version(struct store *base);
int sqlite_campaign_get(struct store *base, const char *key, struct store_campaign *out,
                        char **err);
int sqlite_campaign_put(struct store *base, struct store_campaign *c, int64_t now_ms, int *changed,
                        char **err);
int64_t sqlite_campaign_set_state(struct store *base, int64_t campaign_id, const char *state,
                                  char **err);
int sqlite_step_put(struct store *base, int64_t campaign_id, int position, int day,
                    const char *time, const char *message_json, int *changed, char **err);
int sqlite_steps_trim(struct store *base, int64_t campaign_id, int n_steps, int *changed,
                      char **err);
int sqlite_stage_begin(struct store *base, char **err);
int sqlite_stage_flush(struct store *base, char **err);
int sqlite_stage_end(struct store *base, char **err);
int sqlite_stage_recipient(struct store *base, const char *rid, const char *data_json, int64_t *seq,
                           char **err);
int sqlite_stage_delivery(struct store *base, int64_t seq, int step, int64_t due_at_ms,
                          int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random,
                          char **err);
int sqlite_import_campaign_get(struct store *base, const char *key, struct store_campaign *out,
                               char **err);
int sqlite_campaign_differs(struct store *base, const struct store_campaign *c, int n_steps,
                            char **err);
int sqlite_step_differs(struct store *base, int64_t campaign_id, int position, int day,
                        const char *time, const char *message_json, char **err);
int sqlite_import_plan(struct store *base, int64_t campaign_id, struct store_import_plan *p,
                       char **err);
int sqlite_import_apply(struct store *base, int64_t campaign_id, struct store_import_plan *done,
                        char **err);
int sqlite_import_hide(struct store *base, int64_t campaign_id, char **err);
int64_t sqlite_import_batch(struct store *base, int64_t campaign_id, int64_t from_seq, int64_t rows,
                            char **err);
int sqlite_import_reveal(struct store *base, int64_t campaign_id, char **err);
int64_t sqlite_import_sweep(struct store *base, int64_t only_id, char **err);
int sqlite_status(struct store *base, const char *key,
                  int (*fn)(void *arg, const struct store_status *st), void *arg, char **err);
int sqlite_deliveries(struct store *base, int64_t campaign_id, const char *state,
                      const struct store_page *after, int64_t limit,
                      int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                      struct store_page *next, int *more, char **err);
int sqlite_attempts(struct store *base, int64_t campaign_id, const char *recipient,
                    int (*fn)(void *arg, const struct store_attempt_row *r), void *arg, char **err);
int sqlite_steps(struct store *base, int64_t campaign_id,
                 int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err);
int64_t sqlite_recipient_count(struct store *base, int64_t campaign_id, char **err);
int sqlite_is_blank(struct store *base);
int64_t sqlite_retry(struct store *base, int64_t campaign_id, const char *state, int64_t now_ms,
                     char **err);
int sqlite_claim(struct store *base, int64_t runner_id, int64_t now_ms,
                 const struct store_claim_cb *cb, struct store_job **jobs, size_t *n_jobs,
                 char **err);
int sqlite_next_due(struct store *base, int64_t *next_at_ms, char **err);
int sqlite_record(struct store *base, int64_t runner_id, const struct store_result *r, size_t n,
                  const struct store_channel_event *ev, size_t n_ev, char **err);
int64_t sqlite_suppress_add(struct store *base, const char *channel, const char *const *ids,
                            size_t n, int64_t now_ms, char **err);
int sqlite_suppress_delete(struct store *base, const char *channel, const char *rid, char **err);
int sqlite_suppress_list(struct store *base, const char *channel,
                         int (*fn)(void *arg, const struct store_suppression *r), void *arg,
                         char **err);
int sqlite_channel_get(struct store *base, const char *name, struct store_channel *out, char **err);
int sqlite_channel_set(struct store *base, const char *name, const char *state, const char *reason,
                       int64_t now_ms, char **err);
int sqlite_ping(struct store *base, char **err);
int64_t sqlite_due_backlog(struct store *base, int64_t now_ms, char **err);
int sqlite_channel_list(struct store *base, int (*fn)(void *arg, const struct store_channel *ch),
                        void *arg, char **err);
int sqlite_runner_add(struct store *base, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                      char **err);
int sqlite_runner_heartbeat(struct store *base, int64_t id, int64_t now_ms, char **err);
int sqlite_runner_list(struct store *base, struct store_runner **rows, size_t *n, char **err);
int64_t sqlite_runner_reap(struct store *base, int64_t id, int (*dedups)(const char *provider),
                           int64_t now_ms, int64_t stale_before_ms, char **err);
int sqlite_import_lock(struct store *base, char **err);
void sqlite_import_unlock(struct store *base);
int sqlite_liveness_hold(struct store *base, int64_t runner_id, char **err);
int sqlite_liveness_try(struct store *base, int64_t runner_id, char **err);
void sqlite_liveness_release(struct store *base, int64_t runner_id);
/* Closes the lock files, dropping every lock this handle holds (locks.c). */
void sqlite_locks_close(struct sqlite_store *s);

#endif
