/*
 * postgres_int: what the PostgreSQL backend's source files share and nobody else sees: the
 * handle, the statement helpers (every statement goes through pgs_query / pgs_exec, which
 * prepare a static statement once per connection and run it with text parameters), and the
 * backend's functions that fill the store_backend table.
 *
 * Conventions: every SQL text passed to pgs_query / pgs_exec is a string literal (or another
 * string that lives as long as the program): the statement cache is keyed by its address.
 * Text built at run time goes through pgs_query_once. Parameters are $1, $2, ... as text.
 */
#ifndef HERALD_STORE_POSTGRES_INT_H
#define HERALD_STORE_POSTGRES_INT_H

#include <libpq-fe.h>

#include "backend.h"
#include "postgres.h"

/* Most parameters any statement takes. */
#define PGS_MAX_PARAMS 16
/* Statements a connection keeps prepared. */
#define PGS_CACHE 128

/* The advisory lock keys (two int4 halves), as SQL text: Herald's class ("HRLD"), then what
   is locked. PGS_LIVENESS_CLASS's second half is the runner id. */
#define PGS_LOCK_CLASS "1213353028"
#define PGS_LIVENESS_CLASS "1213353029"
#define PGS_LOCK_MIGRATE "1"
#define PGS_LOCK_IMPORT "2"
/* Claims of campaigns whose rules count across rows, and the writes those counts read, take
   PGS_SERIAL_CLASS with a key of what they share (store_serial_key). */
#define PGS_SERIAL_CLASS "1213353030"
/* A session's count shard (0002_count_shards.sql): PGS_SHARD_CLASS, 1..PGS_COUNT_SHARDS. */
#define PGS_SHARD_CLASS "1213353031"
#define PGS_COUNT_SHARDS "256"

/* The channel a commit that makes work due notifies, and every scheduler listens on. */
#define PGS_CHANNEL "herald_due"

struct pgs_prepared {
	const char *sql;                /* the key: the literal's address */
	char name[16];
};

struct pg_store {
	struct store base;              /* first: the front sees this */
	PGconn *conn;
	char *conninfo;                 /* the URI as given (owned; may hold a password) */
	char *shown;                    /* the URI with any password masked: store_path */
	char *errmsg;                   /* the last error text (owned), "" when none */
	int reader;                     /* opened by store_open_reader: read-only, never migrates */
	int in_tx;                      /* a transaction is open on the connection */
	int64_t session;                /* counts connections made: 1 for the first, +1 per reset */
	int64_t liveness_session;       /* the session the liveness lock was taken in, 0 = none */
	int64_t notified;               /* notifications seen on PGS_CHANNEL (store_data_version) */
	int import_locked;
	struct pgs_prepared prepared[PGS_CACHE];
	int n_prepared;
	int claim_suppressions;         /* the claim under way found the opt-out list non-empty */
	unsigned claim_turn;            /* which campaign the next claim serves first */
	struct tz *when_zone;           /* store_format_when's cached zone (owned), NULL = none */
	PGresult *claim_optouts;        /* the claim's opt-out listings read ahead for one
	                                   campaign's jobs (rid, channel; by rid), NULL = none */
	PGresult *claim_read[2];        /* the claim's channels and campaigns, read with its
	                                   BEGIN, until claim_held / claim_campaigns take them */
};

/* Statement parameters, as text; NULL is SQL NULL. */
struct pgs_params {
	int n;
	const char *v[PGS_MAX_PARAMS];
	char num[PGS_MAX_PARAMS][24];
};
/* Appends a parameter: an integer, a text (NULL = SQL NULL), or text with "" as NULL. */
void pgs_int(struct pgs_params *p, int64_t v);
void pgs_text(struct pgs_params *p, const char *v);
void pgs_text_or_null(struct pgs_params *p, const char *v);

/*
 * Array parameters ($n::bigint[], $n::text[], ...), each built element by element as its text
 * literal, so that one statement carries a whole batch (unnest). Zero them to start; append
 * an integer (pgs_array_int_or_null: 0 is NULL) or a text (NULL is NULL). pgs_array_params
 * closes arrays a[0..n-1] and appends them to p as the next parameters (0, or -1 with *err
 * when out of memory); they stay valid until pgs_array_free(a, n). (record.c)
 */
struct pgs_array {
	char *data;
	size_t len, cap;
	int failed;                     /* out of memory */
};
void pgs_array_int(struct pgs_array *a, int64_t v);
void pgs_array_int_or_null(struct pgs_array *a, int64_t v);
void pgs_array_text(struct pgs_array *a, const char *v);
int pgs_array_params(struct pg_store *s, struct pgs_params *p, struct pgs_array *a, int n,
                     const char *what, char **err);
void pgs_array_free(struct pgs_array *a, int n);

/*
 * Runs static statement SQL (prepared once per connection) with parameters p (NULL = none).
 * Returns the result (caller PQclears) when it succeeded, else NULL with *err set to
 * "what: <server message>" (and the connection marked for a reset if it was lost).
 */
PGresult *pgs_query(struct pg_store *s, const char *sql, const struct pgs_params *p,
                    const char *what, char **err);
/* As pgs_query for text built at run time: not prepared, not cached. */
PGresult *pgs_query_once(struct pg_store *s, const char *sql, const struct pgs_params *p,
                         const char *what, char **err);
/* As pgs_query for statements without result rows: the rows affected, or -1. */
int64_t pgs_exec(struct pg_store *s, const char *sql, const struct pgs_params *p,
                 const char *what, char **err);
/* The single integer a statement returns (empty result or NULL: dflt), or -1 on error with
   *ok set to 0. Convenience for counts and ids. */
int64_t pgs_scalar(struct pg_store *s, const char *sql, const struct pgs_params *p, int64_t dflt,
                   const char *what, char **err, int *ok);

/* Column helpers: integer (NULL = dflt), text (NULL = NULL), copy into a buffer ("" for NULL),
   a new copy (NULL for NULL, or out of memory). */
int64_t pgs_col_int(const PGresult *r, int row, int col, int64_t dflt);
const char *pgs_col_text(const PGresult *r, int row, int col);
void pgs_col_copy(const PGresult *r, int row, int col, char *dst, size_t size);
char *pgs_col_dup(const PGresult *r, int row, int col);

/* Sets *err to "what: msg" and the handle's errmsg; returns -1. */
int pgs_fail(struct pg_store *s, char **err, const char *what, const char *msg);

/* Reads a campaign from the columns of PGS_CAMPAIGN_COLS starting at col. */
void pgs_campaign_from_row(const PGresult *r, int row, int col, struct store_campaign *c);
#define PGS_CAMPAIGN_COLS \
	"c.id, c.key, c.name, c.channel, c.provider, c.timezone, c.start_date, c.anchor, " \
	"c.expire_after_ms, c.state, c.quiet_hours"
#define PGS_CAMPAIGN_NCOLS 11

/* Runs the statements of a multi-statement text with no parameters (migrations). 0 / -1. */
int pgs_run_script(struct pg_store *s, const char *sql, const char *what, char **err);
/*
 * Opens the transaction of a claim or a result batch, in one round trip. runner_id > 0: keeps
 * that runner's row from being reaped until the commit, and for a claim fails unless it is
 * still registered (the fence a claim needs: what it marks is then settled by a reap, never
 * orphaned). results: the commit need not wait for the disk. then (NULL: none): n_got more
 * statements without parameters for the same round trip, their results in got[0..n_got-1]
 * (caller PQclears; NULL on failure), at most 7.
 */
int pgs_begin_batch(struct pg_store *s, int64_t runner_id, int results, const char *then,
                    PGresult **got, int n_got, const char *what, char **err);
/*
 * Takes keys[0..n-1] (PGS_SERIAL_CLASS; shared or not, as each says) until the transaction
 * ends, in the order of their numbers, the same for every taker, so no two transactions wait
 * for each other in a circle. Each key is taken before any row lock its holder needs. then
 * (NULL: none): one more statement for the same round trip, its result in *got (caller
 * PQclears). 0 / -1 with *err.
 */
int pgs_lock_serial(struct pg_store *s, const struct store_serial_key *keys, size_t n,
                    const char *then, PGresult **got, const char *what, char **err);

/* Reads pending notifications without waiting (LISTEN/NOTIFY), counting them. */
void pgs_drain_notifies(struct pg_store *s);

/* The states a delivery waits in until the scheduler acts on it. */
#define PGS_WAITING "('pending', 'retrying', 'deferred')"

/* Why a delivery was cancelled by a re-import; a recipient listed again brings these back. */
#define PGS_REMOVED_REASON "recipient removed from the campaign"
#define PGS_STEP_REMOVED_REASON "step removed from the campaign"

/* ---- the backend's side of each store_* operation (see store.h) ------------------------ */
void postgres_close(struct store *base);
int postgres_version(struct store *base);
const char *postgres_path(const struct store *base);
const char *postgres_errmsg(struct store *base);
int postgres_begin(struct store *base, char **err);
int postgres_commit(struct store *base, char **err);
void postgres_rollback(struct store *base);
int64_t postgres_data_version(struct store *base);
int postgres_campaign_get(struct store *base, const char *key, struct store_campaign *out,
                          char **err);
int postgres_campaign_put(struct store *base, struct store_campaign *c, int64_t now_ms,
                          int *changed, char **err);
int64_t postgres_campaign_set_state(struct store *base, int64_t campaign_id, const char *state,
                                    char **err);
int postgres_step_put(struct store *base, int64_t campaign_id, int position, int day,
                      const char *time, const char *message_json, int *changed, char **err);
int postgres_steps_trim(struct store *base, int64_t campaign_id, int n_steps, int *changed,
                        char **err);
int postgres_stage_begin(struct store *base, char **err);
int postgres_stage_flush(struct store *base, char **err);
int postgres_stage_end(struct store *base, char **err);
int postgres_stage_recipient(struct store *base, const char *rid, const char *data_json,
                             int64_t *seq, char **err);
int postgres_stage_delivery(struct store *base, int64_t seq, int step, int64_t due_at_ms,
                            int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random,
                            char **err);
int postgres_import_campaign_get(struct store *base, const char *key,
                                 struct store_campaign *out, char **err);
int postgres_campaign_differs(struct store *base, const struct store_campaign *c, int n_steps,
                              char **err);
int postgres_step_differs(struct store *base, int64_t campaign_id, int position, int day,
                          const char *time, const char *message_json, char **err);
int postgres_import_plan(struct store *base, int64_t campaign_id, struct store_import_plan *p,
                         char **err);
int postgres_import_apply(struct store *base, int64_t campaign_id,
                          struct store_import_plan *done, char **err);
int postgres_import_hide(struct store *base, int64_t campaign_id, char **err);
int64_t postgres_import_batch(struct store *base, int64_t campaign_id, int64_t from_seq,
                              int64_t rows, char **err);
int postgres_import_reveal(struct store *base, int64_t campaign_id, char **err);
int64_t postgres_import_sweep(struct store *base, int64_t only_id, char **err);
int postgres_status(struct store *base, const char *key,
                    int (*fn)(void *arg, const struct store_status *st), void *arg, char **err);
int postgres_deliveries(struct store *base, int64_t campaign_id, const char *state,
                        const struct store_page *after, int64_t limit,
                        int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                        struct store_page *next, int *more, char **err);
int postgres_attempts(struct store *base, int64_t campaign_id, const char *recipient,
                      int (*fn)(void *arg, const struct store_attempt_row *r), void *arg,
                      char **err);
int postgres_steps(struct store *base, int64_t campaign_id,
                   int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err);
int64_t postgres_recipient_count(struct store *base, int64_t campaign_id, char **err);
int postgres_is_blank(struct store *base);
int64_t postgres_retry(struct store *base, int64_t campaign_id, const char *state,
                       int64_t now_ms, char **err);
int postgres_claim(struct store *base, int64_t runner_id, int64_t now_ms,
                   const struct store_claim_cb *cb, struct store_job **jobs, size_t *n_jobs,
                   char **err);
int postgres_next_due(struct store *base, int64_t *next_at_ms, char **err);
int postgres_record(struct store *base, int64_t runner_id, const struct store_result *r,
                    size_t n, const struct store_channel_event *ev, size_t n_ev, char **err);
int64_t postgres_suppress_add(struct store *base, const char *channel, const char *const *ids,
                              size_t n, int64_t now_ms, char **err);
int postgres_suppress_delete(struct store *base, const char *channel, const char *rid,
                             char **err);
int postgres_suppress_list(struct store *base, const char *channel,
                           int (*fn)(void *arg, const struct store_suppression *r), void *arg,
                           char **err);
int postgres_channel_get(struct store *base, const char *name, struct store_channel *out,
                         char **err);
int postgres_channel_set(struct store *base, const char *name, const char *state,
                         const char *reason, int64_t now_ms, char **err);
int postgres_ping(struct store *base, char **err);
int64_t postgres_due_backlog(struct store *base, int64_t now_ms, char **err);
int postgres_channel_list(struct store *base,
                          int (*fn)(void *arg, const struct store_channel *ch), void *arg,
                          char **err);
int postgres_runner_add(struct store *base, int pid, int64_t now_ms, int64_t lease_ms,
                        int64_t *id, char **err);
int postgres_runner_heartbeat(struct store *base, int64_t id, int64_t now_ms, char **err);
int postgres_runner_list(struct store *base, struct store_runner **rows, size_t *n,
                         char **err);
int64_t postgres_runner_reap(struct store *base, int64_t id,
                             int (*dedups)(const char *provider), int64_t now_ms,
                             int64_t stale_before_ms, char **err);
int postgres_import_lock(struct store *base, char **err);
void postgres_import_unlock(struct store *base);
int postgres_liveness_hold(struct store *base, int64_t runner_id, char **err);
int postgres_liveness_try(struct store *base, int64_t runner_id, char **err);
void postgres_liveness_release(struct store *base, int64_t runner_id);

/* The table of this backend's functions (postgres.c). */
extern const struct store_backend postgres_backend;

/* ---- the claim's audience rules (audience.c), inside the claim transaction ------------------ */
/*
 * pgs_audience_begin: once per claim, before any job, with the answer to
 * PGS_ANY_SUPPRESSION read in the claim's transaction.
 * pgs_audience_check: suppresses or defers a due job (1 = it may go on, 0 = it was settled
 * here, -1 = error); *a gets the job's rules for pgs_audience_reserve.
 * pgs_audience_reserve: the job was claimed: it counts against its channel's cap from now.
 * (A result's effect on the cap is written with the other results of its batch, record.c.)
 * pgs_audience_prefetch: before the checks of one campaign's jobs: reads their recipients'
 * opt-out listings in one statement, which pgs_audience_check then consults instead of asking
 * once per job. pgs_audience_end: the claim is over; frees what was read ahead.
 * Like SQLite's, they take no err: on -1 the handle's errmsg holds the server's message, for
 * the caller to report as pgs_fail(s, err, what, s->errmsg) (sqlite_fail's counterpart).
 */
void pgs_audience_begin(struct pg_store *s, const PGresult *any);
#define PGS_ANY_SUPPRESSION "SELECT EXISTS (SELECT 1 FROM suppressions)"
int pgs_audience_prefetch(struct pg_store *s, const struct store_job *jobs, size_t n);
void pgs_audience_end(struct pg_store *s);
int pgs_audience_check(struct pg_store *s, const struct store_claim_cb *cb, struct store_job *j,
                       int64_t now_ms, struct store_audience *a);
int pgs_audience_reserve(struct pg_store *s, const struct store_job *j,
                         const struct store_audience *a, int64_t now_ms);

#endif
