/*
 * store_int: what the store's source files share and nobody else sees: the handle and its
 * cache of prepared statements, held for the life of the handle so hot paths never re-parse SQL.
 */
#ifndef HERALD_STORE_INT_H
#define HERALD_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

enum store_sql {
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

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[SQL_COUNT];  /* prepared on first use, finalized by store_close */
	int64_t busy_max_ms;
	int64_t busy_since_mono;        /* when the current wait for a lock began */
	int claim_suppressions;         /* the claim under way found the opt-out list non-empty */
	unsigned claim_turn;            /* which campaign the next claim serves first */
	struct tz *when_zone;           /* store_format_when's cached zone (owned), NULL = none */
};

/* Formats ms as ISO 8601 in the named zone (a campaign's), for reasons written to rows; UTC
   if the zone cannot load. The zone is cached on the handle. */
void store_format_when(struct store *s, const char *zone, int64_t ms, char out[40]);

/* The text of every cached statement, indexed by id (store_sql.c). */
extern const char *const store_sql[SQL_COUNT];
/* Statement id, prepared from store_sql on first use, else reset with bindings cleared. NULL on
   error. */
sqlite3_stmt *store_stmt(struct store *s, enum store_sql id);
/* Sets *err to "what: <sqlite message>" and returns -1. */
int store_fail(struct store *s, char **err, const char *what);
/* Runs SQL with no result rows. 0 / -1 with *err. */
int store_exec(struct store *s, const char *sql, char **err);
/* Reads a campaign row from columns id, key, name, channel, provider, timezone, start_date,
   anchor, expire_after_ms, state, quiet_hours starting at column `col`. */
void store_campaign_from_row(sqlite3_stmt *st, int col, struct store_campaign *c);
/* Copies column text into a fixed buffer (empty for NULL). */
void store_col_copy(sqlite3_stmt *st, int col, char *dst, size_t size);
/* A new copy of column text, or NULL for NULL (or out of memory). */
char *store_col_dup(sqlite3_stmt *st, int col);

/*
 * The claim's audience rules (store_audience.c), inside the claim transaction.
 * store_audience_begin: once per claim, before any job.
 * store_audience_check: suppresses or defers a due job (1 = it may go on, 0 = it was settled
 * here, -1 = error); *a gets the job's rules for store_audience_reserve.
 * store_audience_reserve: the job was claimed: it counts against its channel's cap from now.
 * store_audience_settle: a result came: the send keeps counting if it was (or may have been)
 * accepted, at the attempt's start, else it no longer counts.
 */
int store_audience_begin(struct store *s);
int store_audience_check(struct store *s, const struct store_claim_cb *cb, struct store_job *j,
                         int64_t now_ms, struct store_audience *a);
int store_audience_reserve(struct store *s, const struct store_job *j,
                           const struct store_audience *a, int64_t now_ms);
int store_audience_settle(struct store *s, const struct store_result *r);

/* The columns store_campaign_from_row reads, for SELECT lists. */
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

/* The states a delivery waits in until the scheduler acts on it. */
#define STORE_WAITING "('pending', 'retrying', 'deferred')"

/* Creates the import's staging tables in the connection's temp schema if missing
   (store_import.c). 0 / -1 with *err. */
int store_stage_tables(struct store *s, char **err);

#endif
