/*
 * store: the only module that speaks SQL, behind one interface with a backend per engine
 * (backend.h; sqlite/ is the embedded default). It opens and migrates the database --db
 * names and offers the operations the commands and the scheduler need, in Herald's terms,
 * each one short transaction or part of a caller's transaction. A store handle belongs to
 * one thread at a time.
 *
 * Delivery states are the strings of SPEC §4; campaign states 'active', 'paused',
 * 'cancelled' (and 'completed', derived, in status output).
 */
#ifndef HERALD_STORE_H
#define HERALD_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* The delivery states of SPEC §4, in its order; counts arrays are indexed by them. The store
   alone turns them into the text it keeps (store_states). */
enum delivery_state {
	STATE_PENDING,
	STATE_SENDING,
	STATE_SENT,
	STATE_RETRYING,
	STATE_DEFERRED,
	STATE_FAILED,
	STATE_EXPIRED,
	STATE_CANCELLED,
	STATE_UNKNOWN,
	STATE_SUPPRESSED,
	STORE_N_STATES
};
/* The stored name of each state, indexed by enum delivery_state. */
extern const char *const store_states[STORE_N_STATES];
/* Index of a delivery state name, or -1. */
int store_state_index(const char *state);

/* ---- open, migrate, transactions ---------------------------------------------------- */

/*
 * DB is what --db names: a SQLite file path, or a PostgreSQL connection URI
 * (postgresql://... or postgres://..., SPEC §6). 1 if DB names a database server, 0 a file.
 */
int store_is_server(const char *db);
/* Opens (a file: creating if needed) and migrates DB. NULL with *err on failure. */
struct store *store_open(const char *db, char **err);
/* Opens and migrates an existing DB; never creates one. NULL with *err on failure, and
   *missing set to 1 when there is none (no file; a server database without Herald's tables). */
struct store *store_open_existing(const char *db, int *missing, char **err);
/*
 * Opens DB for a command that writes and may be the first to (import, suppress import).
 * *made is set to 1 when there was no database file and this open made one: should the
 * command write nothing, store_unmake() takes it away again. A dry run writes nothing at all:
 * where no database is there yet (no file, an empty file, a server database without Herald's
 * tables), it gets an empty scratch store in memory instead. made may be NULL. NULL with
 * *err on failure.
 */
struct store *store_open_writer(const char *db, int dry_run, int *made, char **err);
/* Removes the database file store_open_writer made, with its side files and lock files,
   unless another process began to use it meanwhile. Call after store_close. */
void store_unmake(const char *db);
void store_close(struct store *s);  /* NULL ok */
/* The schema version after migration (the number of the last migration applied). */
int store_version(struct store *s);
/* What the store was opened on, fit to show: the path, or the URI with any password masked. */
const char *store_path(const struct store *s);
/* The last database error text for this handle (valid until the next call). */
const char *store_errmsg(struct store *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0 / -1 with *err. */
int store_begin(struct store *s, char **err);
int store_commit(struct store *s, char **err);
void store_rollback(struct store *s);
/* A number that changes when another connection commits (PRAGMA data_version). */
int64_t store_data_version(struct store *s);

/* ---- campaigns ------------------------------------------------------------------------ */

struct store_campaign {
	int64_t id;
	char key[256];
	char name[512];
	char channel[256];
	char provider[32];
	char timezone[64];
	char start_date[16];            /* "" when absent */
	char anchor[16];                /* start_date | enrollment */
	int64_t expire_after_ms;
	char state[16];                 /* active | paused | cancelled */
	char quiet_hours[16];           /* its own quiet hours "HH:mm-HH:mm", "" = the channel's */
};

/* Looks a campaign up by key: 1 found, 0 not found, -1 error. */
int store_campaign_get(struct store *s, const char *key, struct store_campaign *out, char **err);
/* Inside a transaction: inserts a new campaign (out->id set) or updates the definition
   fields of an existing one with the same key. *changed set to 1 if anything was written. */
int store_campaign_put(struct store *s, struct store_campaign *c, int64_t now_ms, int *changed,
                       char **err);
/* pause / resume / cancel. cancel also cancels every delivery not yet sent or in flight.
   Returns the number of deliveries changed, or -1. */
int64_t store_campaign_set_state(struct store *s, int64_t campaign_id, const char *state,
                                 char **err);

/* ---- import (inside the caller's transaction) ------------------------------------------ */

/* Replaces step `position` if different; *changed set to 1 if it was written. */
int store_step_put(struct store *s, int64_t campaign_id, int position, int day, const char *time,
                   const char *message_json, int *changed, char **err);
/* Steps past n_steps are dropped; their waiting deliveries are cancelled (and come back
   should a later definition have the step again). *changed set to 1 if anything was. */
int store_steps_trim(struct store *s, int64_t campaign_id, int n_steps, int *changed, char **err);

enum store_put {
	STORE_PUT_NEW,        /* inserted */
	STORE_PUT_CHANGED,    /* updated (data changed, or re-activated) */
	STORE_PUT_SAME,       /* already there, unchanged */
	STORE_PUT_DUPLICATE,  /* this import already listed the same id */
};

/* ---- import in bounded transactions ------------------------------------------------------ */

/*
 * Staging: the validated recipients and their deliveries go into TEMP tables of this
 * connection (SQLite's temp file), never into the main database, so staging takes no write
 * lock there. store_stage_begin empties them and opens the staging transaction,
 * store_stage_flush commits what is staged so far and opens the next (so the transaction
 * stays small), store_stage_end commits. 0 / -1 with *err.
 */
int store_stage_begin(struct store *s, char **err);
int store_stage_flush(struct store *s, char **err);
int store_stage_end(struct store *s, char **err);
/* Stages a recipient record; *seq is its place in the listing (1, 2, ...). Returns
   STORE_PUT_NEW, STORE_PUT_DUPLICATE (the rid was already staged; nothing written), or -1. */
int store_stage_recipient(struct store *s, const char *rid, const char *data_json, int64_t *seq,
                          char **err);
/* Stages the delivery of recipient seq for step (1-based). 0 / -1. */
int store_stage_delivery(struct store *s, int64_t seq, int step, int64_t due_at_ms,
                         int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random,
                         char **err);

/* What an import changes in a stored campaign. */
struct store_import_plan {
	int64_t recipients_new;
	int64_t recipients_changed;      /* data changed, or listed again after removal */
	int64_t recipients_removed;
	int64_t deliveries_written;      /* inserted, rescheduled or brought back */
};
/* Like store_campaign_get, but also finds a campaign an import is still writing (state
   'importing'). 1 found, 0 not found, -1. */
int store_import_campaign_get(struct store *s, const char *key, struct store_campaign *out,
                              char **err);
/* Reading only: 1 if writing c (with n_steps steps) would change the stored campaign row or
   drop steps, 0 if not, -1. */
int store_campaign_differs(struct store *s, const struct store_campaign *c, int n_steps,
                           char **err);
/* Reading only: 1 if step `position` is missing or differs, 0 if the same, -1. */
int store_step_differs(struct store *s, int64_t campaign_id, int position, int day,
                       const char *time, const char *message_json, char **err);
/* Reading only (in one read transaction; only temp tables are written): compares the staged
   rows with stored campaign campaign_id and fills *p with what store_import_apply would
   write. 0 / -1. */
int store_import_plan(struct store *s, int64_t campaign_id, struct store_import_plan *p,
                      char **err);
/* Inside the caller's transaction, after store_import_plan and the campaign's own rows:
   writes the differences the plan found, each checked again (a delivery the scheduler took
   meanwhile is left alone), and fills *done with what was written. Its time grows with the
   rows it writes, not with the campaign's size. 0 / -1. */
int store_import_apply(struct store *s, int64_t campaign_id, struct store_import_plan *done,
                       char **err);
/* Inside the caller's transaction: marks a campaign just inserted as 'importing', which no
   claim, query or status sees. */
int store_import_hide(struct store *s, int64_t campaign_id, char **err);
/* One transaction of its own: writes staged recipients from_seq .. from_seq + rows - 1 and
   their deliveries into the hidden campaign. Returns how many recipients, or -1 (nothing of
   this batch written). */
int64_t store_import_batch(struct store *s, int64_t campaign_id, int64_t from_seq, int64_t rows,
                           char **err);
/* One short transaction: the hidden campaign becomes 'active', visible with all its rows. */
int store_import_reveal(struct store *s, int64_t campaign_id, char **err);
/* Removes campaigns left 'importing' (only_id, or 0 for every one) with their rows, in
   transactions of a few thousand rows. The caller must hold the import lock, so that none of
   them belongs to a running import. Returns how many campaigns, or -1. */
int64_t store_import_sweep(struct store *s, int64_t only_id, char **err);

/* ---- queries -------------------------------------------------------------------------- */

struct store_status {
	struct store_campaign c;
	int64_t counts[STORE_N_STATES];  /* indexed like store_states */
	int64_t next_due_at_ms;          /* earliest due time of a waiting delivery, -1 = none */
	char last_error[512];            /* "" when none */
	char channel_state[16];          /* its channel: active | paused | suspended */
	char channel_reason[512];        /* why the channel is held, "" when active */
};
/* Calls fn for every campaign (key NULL) or the one with KEY, ordered by key. fn returns 0 to
   go on. Returns the number of campaigns visited, or -1. */
int store_status(struct store *s, const char *key,
                 int (*fn)(void *arg, const struct store_status *st), void *arg, char **err);

struct store_delivery_row {
	int64_t id;                      /* with due_at_ms, the row's place in page order */
	const char *recipient;
	int step;
	int64_t due_at_ms;
	const char *state;
	int attempts;
	const char *last_error;          /* NULL when none */
	const char *provider_message_id; /* NULL when none */
	int64_t send_at_ms;              /* provider-scheduled send time asked for, -1 = none */
};
/*
 * A place in a campaign's deliveries, in page order (due time, then id). Neither changes while
 * the scheduler works, so pages cut at such places show every delivery exactly once however
 * states change between them (a re-import that reschedules moves rows, by design).
 */
struct store_page {
	int64_t due_at_ms;
	int64_t id;
};

/*
 * A page of a campaign's deliveries in due order, each an index walk: state NULL = all; after
 * NULL = from the start, else only rows past it; limit <= 0 = no limit. *more is set to 1 and
 * *next to the last row's place when rows remain past the page, else *more is 0. Row
 * pointers are valid during the callback only.
 */
int store_deliveries(struct store *s, int64_t campaign_id, const char *state,
                     const struct store_page *after, int64_t limit,
                     int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                     struct store_page *next, int *more, char **err);

struct store_attempt_row {
	const char *recipient;
	int step;
	int64_t started_at_ms;
	int64_t duration_ms;             /* -1 = unknown */
	int http_status;                 /* 0 = no HTTP answer */
	const char *provider_code;       /* NULL when none */
	const char *provider_message;    /* NULL when none */
	const char *outcome;
};
/* The attempt log of a campaign (optionally one recipient), oldest first. */
int store_attempts(struct store *s, int64_t campaign_id, const char *recipient,
                   int (*fn)(void *arg, const struct store_attempt_row *r), void *arg, char **err);

struct store_step_row {
	int position;                    /* 1-based */
	int day;                         /* campaign day, 1 = the anchor date */
	const char *time;                /* HH:mm local to the campaign's zone */
	const char *message_json;        /* the message object as imported, unrendered */
};
/* The steps of a campaign in definition order. Row pointers are valid during the callback
   only; fn returns 0 to go on. 0 / -1 with *err. */
int store_steps(struct store *s, int64_t campaign_id,
                int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err);
/* How many recipients the campaign's current definition lists, or -1 with *err. */
int64_t store_recipient_count(struct store *s, int64_t campaign_id, char **err);
/* 1 if the database holds no campaign and no runner (a file nothing has used yet), else 0. */
int store_is_blank(struct store *s);

/* herald retry: deliveries of the campaign in `state` go back to pending now, with a fresh
   attempt budget and a fresh expiry. Returns how many, or -1. */
int64_t store_retry(struct store *s, int64_t campaign_id, const char *state, int64_t now_ms,
                    char **err);


/* ---- the scheduler's side: runners, claims, results ------------------------------------ */

/* A claimed delivery with everything needed to send it. Strings are owned by the job. */
struct store_job {
	int64_t delivery_id;
	int64_t campaign_id;
	int step;
	int step_day;
	char step_time[8];
	int attempts;                    /* attempts made, this one included */
	int64_t due_at_ms;
	int64_t expires_at_ms;
	int64_t send_at_ms;              /* admitted provider-scheduled send time, 0 = none */
	uint32_t msg_random;
	int64_t batch_id;                /* a failed request's members share it until sent; 0 = none */
	struct store_campaign campaign;
	char *rid;                       /* the recipient id as the provider addresses it */
	char *recipient_json;            /* the recipient record */
	char *message_json;              /* the step's message, unrendered */
};
void store_jobs_free(struct store_job *jobs, size_t n);

/* The per-account limit state the claim reads (see provider.h's struct provider_limit). */
struct store_limit {
	int64_t last_call_ms;
	int64_t last_send_at_ms;
	int reserved;
};

enum store_admit { STORE_ADMIT, STORE_DEFER, STORE_WAIT };

/* The audience rules of one job's channel and campaign, as the claim applies them. */
struct store_audience {
	int64_t cap_max;                 /* frequency cap: sends per recipient per window, 0 = none */
	int64_t cap_per_ms;              /* the rolling window */
	int64_t quiet_until_ms;          /* inside quiet hours: when they end; 0 = not quiet now */
	char quiet_why[96];              /* the window, for last_error ("22:00-08:00 Asia/Shanghai") */
	int held;                        /* set by the claim: 1 suppressed, 2 deferred, 0 neither */
};

/* What store_claim asks the scheduler while it holds the write lock. */
/* What a campaign's claims share with other claims (store_claim_cb.serial). */
enum store_serial {
	STORE_SERIAL_NONE,
	STORE_SERIAL_CHANNEL,
	STORE_SERIAL_PROVIDER,
};

struct store_claim_cb {
	void *arg;
	/* How many deliveries of campaign c may be claimed now (0 = none). */
	int64_t (*capacity)(void *arg, const struct store_campaign *c);
	/* How many of campaign c's deliveries this claim took (called after capacity). */
	void (*claimed)(void *arg, const struct store_campaign *c, size_t n);
	/* The limit account a job counts against (e.g. SaiNiu userNick), or NULL. The string must
	   stay valid until the next call. */
	const char *(*account)(void *arg, const struct store_job *job);
	/* Decides a limited job; sets *send_at_ms, and *defer_until_ms for STORE_DEFER. */
	enum store_admit (*admit)(void *arg, const struct store_job *job, const struct store_limit *l,
	                          int64_t now_ms, int64_t *send_at_ms, int64_t *defer_until_ms);
	/* A suspended channel's probe is due: how many of campaign c's deliveries one request
	   may carry (0 = no probe now). NULL: suspended channels are never probed. */
	int64_t (*probe)(void *arg, const struct store_campaign *c);
	/* The audience rules (SPEC 5.12) that apply to a job now: fills *out (zeroed by the
	   caller). NULL: only the opt-out list applies. */
	void (*audience)(void *arg, const struct store_job *job, int64_t now_ms,
	                 struct store_audience *out);
	/* n deliveries of channel that the claim settled itself, without a request: "expired",
	   or "deferred" by an account limit. Called after the claim committed. NULL: not told. */
	void (*settled)(void *arg, const char *channel, const char *state, int64_t n);
	/* What campaign c's claims decide from rows other than their own (SPEC 6: exact across
	   nodes): STORE_SERIAL_CHANNEL, a frequency cap or whole batches, counted over the
	   channel; STORE_SERIAL_PROVIDER, per-account limits, over the provider's accounts. Such
	   claims, and the results that change what they read, take turns; others run side by
	   side. NULL: nothing is shared. */
	enum store_serial (*serial)(void *arg, const struct store_campaign *c);
	/* 1 when nothing but expiry and the opt-out list decides whether campaign c's due
	   deliveries go now (no account limit, cap, batches or quiet hours): a backend may then
	   claim them in one statement. NULL: never. */
	int (*plain)(void *arg, const struct store_campaign *c);
};

/*
 * One short write transaction: expires what is past its expiry, then claims due deliveries of
 * active campaigns on channels that are not paused or suspended (up to each campaign's
 * capacity) for runner_id, marking them 'sending' and counting the attempt, and reserving
 * limited accounts. A batch (batch_id) is claimed whole. A suspended channel whose probe is
 * due gets one request's worth, and its next probe moves on (the interval doubling, at most
 * 30 minutes). On return *jobs (caller frees with store_jobs_free) holds the claimed ones.
 * Returns 0 / -1 (nothing changed).
 */
int store_claim(struct store *s, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
                struct store_job **jobs, size_t *n_jobs, char **err);

/* The earliest time a waiting delivery of an active campaign may go: its next_at_ms, held
   back to the next probe on a suspended channel, never on a paused one; INT64_MAX if none. */
int store_next_due(struct store *s, int64_t *next_at_ms, char **err);

/* The result of one attempt, recorded by store_record. */
struct store_result {
	int64_t delivery_id;
	enum delivery_state state;       /* sent, retrying, deferred, failed, unknown, expired, or
	                                    pending (requeued, the attempt not counted) */
	int64_t next_at_ms;              /* retrying, deferred, pending */
	int64_t send_at_ms;              /* provider-scheduled send time, 0 = none */
	int64_t started_at_ms;
	int64_t duration_ms;
	int http_status;                 /* 0 = no HTTP answer */
	const char *code;                /* provider code, NULL = none */
	const char *message;             /* provider message or network error, NULL = none */
	const char *message_id;          /* provider message id, NULL = none */
	const char *limit_provider;      /* non-NULL: the account reservation to settle */
	const char *limit_account;
	int limit_counts;                /* 1: the call counts as made (sent, or maybe sent) */
	int64_t batch_id;                /* retried with the other members of its request; 0 = none */
	int refund;                      /* 1: the attempt does not count against max_attempts */
};

/* A change of a channel's state that a result caused (SPEC 5.11). */
struct store_channel_event {
	const char *channel;
	int suspend;                     /* 1: suspend (first probe after probe_every_ms); 0: the
	                                    probe went through, back to active */
	const char *reason;              /* suspend: why, said once in the log and in `channels` */
	int64_t probe_every_ms;
	int64_t at_ms;
};

/* Records results and channel events in one transaction: updates each delivery still claimed
   by runner_id and appends its attempt (a delivery no longer claimed by it, settled by another
   runner after its lease ran out, is left alone). Returns 0 / -1 (nothing recorded). */
int store_record(struct store *s, int64_t runner_id, const struct store_result *r, size_t n,
                 const struct store_channel_event *ev, size_t n_ev, char **err);

/* ---- the opt-out list (SPEC 5.12) ------------------------------------------------------- */

/* The channel name that suppresses an id on every channel. */
#define STORE_ALL_CHANNELS "*"

/* Inside the caller's transaction: lists ids[0..n) for channel, added at now_ms; an id
   already listed (or listed twice) stays as it was. How many were added, or -1 with *err. */
int64_t store_suppress_add(struct store *s, const char *channel, const char *const *ids,
                           size_t n, int64_t now_ms, char **err);
/* Inside the caller's transaction: unlists rid for channel. 1 removed, 0 was not listed, -1. */
int store_suppress_delete(struct store *s, const char *channel, const char *rid, char **err);
struct store_suppression {
	const char *channel;             /* a name, or STORE_ALL_CHANNELS */
	const char *rid;
	int64_t added_at_ms;
};
/* Calls fn for every suppression (channel NULL) or those of one channel, by channel and id,
   streamed. Row pointers are valid during the callback only; fn returns 0 to go on. 0 / -1. */
int store_suppress_list(struct store *s, const char *channel,
                        int (*fn)(void *arg, const struct store_suppression *r), void *arg,
                        char **err);

/* ---- channels ------------------------------------------------------------------------- */

/* The longest wait between two probes of a suspended channel (SPEC 2: doubling up to 30m). */
#define STORE_PROBE_MAX_MS (30 * 60 * 1000LL)

struct store_channel {
	char name[256];
	char state[16];                  /* active | paused | suspended */
	char reason[512];                /* "" when none */
	int64_t since_ms;                /* -1 when never changed */
	int64_t next_probe_at_ms;        /* suspended: next probe; -1 otherwise */
	int64_t waiting;                 /* deliveries waiting in active campaigns on it */
};
/* The stored state of channel NAME (active with since_ms -1 when it has no row). 0 / -1. */
int store_channel_get(struct store *s, const char *name, struct store_channel *out, char **err);
/* herald pause|resume --channel: state "paused" or "active" (which also ends a suspension).
   Returns 1 if the state changed, 0 if it already was, -1 on error. */
int store_channel_set(struct store *s, const char *name, const char *state, const char *reason,
                      int64_t now_ms, char **err);

/* ---- the read-only side: what `herald run --listen` serves -------------------------- */

/* Opens an existing DB read-only and query-only, without migrating: its reads never take
   the write lock. Its calls may come from any thread, one at a time. NULL with *err. */
struct store *store_open_reader(const char *db, char **err);
/* A quick read of a table: 0 when the database answers, else -1 with *err. */
int store_ping(struct store *s, char **err);
/* Deliveries of active campaigns due by now_ms (next attempt time passed) and not claimed:
   waiting in pending, retrying or deferred. -1 with *err. */
int64_t store_due_backlog(struct store *s, int64_t now_ms, char **err);
/* Every channel a campaign names or the channels table holds, by name, each as
   store_channel_get reads it; fn returns 0 to go on. 0 / -1 with *err. */
int store_channel_list(struct store *s, int (*fn)(void *arg, const struct store_channel *ch),
                       void *arg, char **err);

/* ---- moving up: herald copy ---------------------------------------------------------------- */

/* The tables herald copy moves, and how many rows each held. */
#define STORE_COPY_TABLES 11
struct store_copy_count {
	const char *table;
	int64_t rows;
};
/*
 * Copies every row of the SQLite database FROM into the PostgreSQL database TO (migrated if
 * need be, and holding no Herald data yet), ids kept, in one transaction on TO, with FROM held
 * under its write lock throughout; refuses while a scheduler runs on FROM. Fills counts.
 * 0; -2 when FROM does not exist; -1 otherwise (nothing written to TO); *err says why.
 */
int store_copy(const char *from, const char *to, struct store_copy_count counts[STORE_COPY_TABLES],
               char **err);

/* ---- locks that die with their process ------------------------------------------------- */

/* One writing import at a time per database: waits while another holds it. Held until
   store_import_unlock, the handle's close, or the process's end, however it ends. 0 / -1. */
int store_import_lock(struct store *s, char **err);
void store_import_unlock(struct store *s);
/* Runner liveness: a runner holds the lock of its own id for its whole life (through the
   handle it registered with), and the lock is dropped when the process ends, however it
   ends. 0 / -1 with *err. */
int store_liveness_hold(struct store *s, int64_t runner_id, char **err);
/* Tries to take another runner's liveness lock: 1 taken (its holder is gone; release it when
   done), 0 held by a live process, -1 with *err. */
int store_liveness_try(struct store *s, int64_t runner_id, char **err);
void store_liveness_release(struct store *s, int64_t runner_id);

/* Registers a runner row holding a lease of lease_ms; *id is its id. */
int store_runner_add(struct store *s, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                     char **err);
/* Renews the runner's lease (heartbeat_ms = now_ms, wall clock). Returns 1 when renewed, 0 when
   the row is gone (another runner found the lease run out and settled its claims), -1. */
int store_runner_heartbeat(struct store *s, int64_t id, int64_t now_ms, char **err);
struct store_runner {
	int64_t id;
	int64_t heartbeat_ms;            /* last renewal, wall clock */
	int64_t lease_ms;
};
/* Every registered runner (caller frees *rows). */
int store_runner_list(struct store *s, struct store_runner **rows, size_t *n, char **err);
/*
 * Settles the deliveries a dead runner left 'sending' and removes its row: where the provider
 * de-duplicates (dedups(provider) returns 1) they go back to pending, else they become
 * 'unknown'; each gets an attempt row saying so. A reservation it held counts as a call made
 * (the provider may have accepted it). stale_before_ms > 0 reaps only a runner whose lease
 * has run out by then (heartbeat_ms + lease_ms < stale_before_ms, checked inside the
 * transaction, so a renewal that won the race keeps it alive); 0 reaps unconditionally.
 * Returns how many deliveries were settled (0 also when the runner is alive or gone), or -1.
 */
int64_t store_runner_reap(struct store *s, int64_t id, int (*dedups)(const char *provider),
                          int64_t now_ms, int64_t stale_before_ms, char **err);

#endif
