/*
 * backend: what a store backend provides, one function per operation of store.h, and the
 * handle every backend's own handle begins with. store.c forwards each store_* call through
 * the table of the backend the handle was opened with; a backend fills the table with its
 * own functions and keeps its SQL, its connection and its files to itself (sqlite/).
 * Only store.c and the backends include this file.
 */
#ifndef HERALD_STORE_BACKEND_H
#define HERALD_STORE_BACKEND_H

#include "store.h"

/* Each member does what the store_* function of the same name says in store.h. */
struct store_backend {
	const char *name;
	void (*close)(struct store *s);
	int (*version)(struct store *s);
	const char *(*path)(const struct store *s);
	const char *(*errmsg)(struct store *s);
	int (*begin)(struct store *s, char **err);
	int (*commit)(struct store *s, char **err);
	void (*rollback)(struct store *s);
	int64_t (*data_version)(struct store *s);
	int (*campaign_get)(struct store *s, const char *key, struct store_campaign *out,
	                    char **err);
	int (*campaign_put)(struct store *s, struct store_campaign *c, int64_t now_ms, int *changed,
	                    char **err);
	int64_t (*campaign_set_state)(struct store *s, int64_t campaign_id, const char *state,
	                              char **err);
	int (*step_put)(struct store *s, int64_t campaign_id, int position, int day,
	                const char *time, const char *message_json, int *changed, char **err);
	int (*steps_trim)(struct store *s, int64_t campaign_id, int n_steps, int *changed,
	                  char **err);
	int (*stage_begin)(struct store *s, char **err);
	int (*stage_flush)(struct store *s, char **err);
	int (*stage_end)(struct store *s, char **err);
	int (*stage_recipient)(struct store *s, const char *rid, const char *data_json,
	                       int64_t *seq, char **err);
	int (*stage_delivery)(struct store *s, int64_t seq, int step, int64_t due_at_ms,
	                      int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random,
	                      char **err);
	int (*import_campaign_get)(struct store *s, const char *key, struct store_campaign *out,
	                           char **err);
	int (*campaign_differs)(struct store *s, const struct store_campaign *c, int n_steps,
	                        char **err);
	int (*step_differs)(struct store *s, int64_t campaign_id, int position, int day,
	                    const char *time, const char *message_json, char **err);
	int (*import_plan)(struct store *s, int64_t campaign_id, struct store_import_plan *p,
	                   char **err);
	int (*import_apply)(struct store *s, int64_t campaign_id, struct store_import_plan *done,
	                    char **err);
	int (*import_hide)(struct store *s, int64_t campaign_id, char **err);
	int64_t (*import_batch)(struct store *s, int64_t campaign_id, int64_t from_seq,
	                        int64_t rows, char **err);
	int (*import_reveal)(struct store *s, int64_t campaign_id, char **err);
	int64_t (*import_sweep)(struct store *s, int64_t only_id, char **err);
	int (*status)(struct store *s, const char *key,
	              int (*fn)(void *arg, const struct store_status *st), void *arg, char **err);
	int (*deliveries)(struct store *s, int64_t campaign_id, const char *state,
	                  const struct store_page *after, int64_t limit,
	                  int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
	                  struct store_page *next, int *more, char **err);
	int (*attempts)(struct store *s, int64_t campaign_id, const char *recipient,
	                int (*fn)(void *arg, const struct store_attempt_row *r), void *arg,
	                char **err);
	int (*steps)(struct store *s, int64_t campaign_id,
	             int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err);
	int64_t (*recipient_count)(struct store *s, int64_t campaign_id, char **err);
	int (*is_blank)(struct store *s);
	int64_t (*retry)(struct store *s, int64_t campaign_id, const char *state, int64_t now_ms,
	                 char **err);
	int (*claim)(struct store *s, int64_t runner_id, int64_t now_ms,
	             const struct store_claim_cb *cb, struct store_job **jobs, size_t *n_jobs,
	             char **err);
	int (*next_due)(struct store *s, int64_t *next_at_ms, char **err);
	int (*record)(struct store *s, int64_t runner_id, const struct store_result *r, size_t n,
	              const struct store_channel_event *ev, size_t n_ev, char **err);
	int64_t (*suppress_add)(struct store *s, const char *channel, const char *const *ids,
	                        size_t n, int64_t now_ms, char **err);
	int (*suppress_delete)(struct store *s, const char *channel, const char *rid, char **err);
	int (*suppress_list)(struct store *s, const char *channel,
	                     int (*fn)(void *arg, const struct store_suppression *r), void *arg,
	                     char **err);
	int (*channel_get)(struct store *s, const char *name, struct store_channel *out,
	                   char **err);
	int (*channel_set)(struct store *s, const char *name, const char *state, const char *reason,
	                   int64_t now_ms, char **err);
	int (*ping)(struct store *s, char **err);
	int64_t (*due_backlog)(struct store *s, int64_t now_ms, char **err);
	int (*channel_list)(struct store *s, int (*fn)(void *arg, const struct store_channel *ch),
	                    void *arg, char **err);
	int (*runner_add)(struct store *s, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
	                  char **err);
	int (*runner_heartbeat)(struct store *s, int64_t id, int64_t now_ms, char **err);
	int (*runner_list)(struct store *s, struct store_runner **rows, size_t *n, char **err);
	int64_t (*runner_reap)(struct store *s, int64_t id, int (*dedups)(const char *provider),
	                       int64_t now_ms, int64_t stale_before_ms, char **err);
	int (*import_lock)(struct store *s, char **err);
	void (*import_unlock)(struct store *s);
	int (*liveness_hold)(struct store *s, int64_t runner_id, char **err);
	int (*liveness_try)(struct store *s, int64_t runner_id, char **err);
	void (*liveness_release)(struct store *s, int64_t runner_id);
};

/* The first member of every backend's handle, so a backend converts a struct store * to
   its own handle type with a cast (C11 6.7.2.1: a struct and its first member share their
   address). */
struct store {
	const struct store_backend *be;
};

/* ---- what the backends share (store.c): the texts rows carry, so both write the same ------ */

struct tz;

/* A result's new last_error: "code: message", the message alone, or "" once sent. */
void store_result_error(const struct store_result *r, char *out, size_t size);
/* Formats ms as ISO 8601 in the named zone (a campaign's), UTC if it cannot load; *cache
   holds the last zone loaded (owned by the caller's handle, freed with tz_free). */
void store_format_when(struct tz **cache, const char *zone, int64_t ms, char out[40]);
/* Why the claim held job back: on the opt-out list LIST (a channel or STORE_ALL_CHANNELS);
   inside quiet hours until until_ms; past its channel's frequency cap until until_ms. */
void store_why_suppressed(const struct store_job *j, const char *list, char *out, size_t size);
void store_why_quiet(struct tz **cache, const struct store_job *j, const struct store_audience *a,
                     int64_t until_ms, char *out, size_t size);
void store_why_capped(struct tz **cache, const struct store_job *j,
                      const struct store_audience *a, int64_t until_ms, char *out, size_t size);

/* ---- the claim (claim.c): its steps in one order, the engine's parts from the backend ---- */

/* A channel that is not active, as a claim reads it. */
struct store_held {
	char name[256];
	int paused;                   /* else suspended */
	int64_t next_probe_at_ms;
};

/*
 * The engine's parts of a claim, each 0 or -1 with *err. begin opens the claim's transaction
 * with whatever keeps claims exact on the engine (and the audience rules' per-claim state);
 * held lists the channels not active, campaigns the active campaigns by id (both malloc'd);
 * due appends campaign c's rows due at now_ms, in due order, at most cap, and batch_rest the
 * members of batch `batch` after id `last` that are due (both growing *jobs, *alloc its room);
 * mark decides jobs [first, *n) under every rule, marks those that go 'sending', drops the
 * others (shrinking *n) and counts in settled[] the expired, deferred and suppressed; probed
 * notes that a suspended channel's probe was taken; commit and rollback end it.
 */
/* What a claim shares with other claims across nodes (store_claim_cb.serial), as a lock. */
struct store_serial_key {
	enum store_serial kind;        /* STORE_SERIAL_CHANNEL or STORE_SERIAL_PROVIDER */
	const char *name;              /* the channel's, or the provider's, name */
	int shared;                    /* 1: held alongside other sharers, only not with a taker
	                                  that holds it alone */
};

/*
 * A backend's parts of a claim. serialize (NULL where one writer at a time is the engine's
 * rule, as SQLite's) takes keys[0..n-1] for the rest of the transaction, waiting for the
 * claims and writes that hold any, in an order every taker shares (so none waits in a circle).
 * The next held then reads the channels as they are once the keys are held.
 */
/*
 * take (NULL: never) claims a plain campaign's due rows (store_claim_cb.plain) in one step:
 * up to cap in due order, marked 'sending' for runner_id and appended to *jobs, those past
 * their expiry settled instead and counted in settled[0]. 1 done, 0 declined (the caller
 * then selects and marks as for any campaign), -1 error.
 */
struct store_claim_ops {
	int (*begin)(struct store *s, int64_t runner_id, char **err);
	int (*serialize)(struct store *s, const struct store_serial_key *keys, size_t n, char **err);
	int (*take)(struct store *s, int64_t runner_id, const struct store_campaign *c,
	            int64_t now_ms, int64_t cap, struct store_job **jobs, size_t *n,
	            size_t *alloc, int64_t settled[3], char **err);
	int (*held)(struct store *s, struct store_held **out, size_t *n, char **err);
	int (*campaigns)(struct store *s, struct store_campaign **out, size_t *n, char **err);
	int (*due)(struct store *s, const struct store_campaign *c, int64_t now_ms, int64_t cap,
	           struct store_job **jobs, size_t *n, size_t *alloc, char **err);
	int (*batch_rest)(struct store *s, const struct store_campaign *c, int64_t batch,
	                  int64_t last, int64_t now_ms, struct store_job **jobs, size_t *n,
	                  size_t *alloc, char **err);
	int (*mark)(struct store *s, int64_t runner_id, const struct store_claim_cb *cb,
	            struct store_job *jobs, size_t first, size_t *n, int64_t now_ms,
	            int64_t settled[3], char **err);
	int (*probed)(struct store *s, const char *channel, int64_t now_ms, char **err);
	int (*commit)(struct store *s, char **err);
	void (*rollback)(struct store *s);
};

/* store_claim through a backend's parts; *turn is the handle's campaign-in-turn counter. */
int store_claim_run(struct store *s, const struct store_claim_ops *ops, unsigned *turn,
                    int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
                    struct store_job **jobs, size_t *n_jobs, char **err);
/* Frees what jobs [from, to) hold, not the array. */
void store_jobs_clear(struct store_job *jobs, size_t from, size_t to);

/*
 * The engine's parts of the audience rules (SPEC 5.12), inside the claim's transaction, each
 * 0 or -1 unless said. suppressed: 1 with the list's name in list when j's recipient is on an
 * opt-out list of j's channel or of every channel, else 0. cap_until: the earliest time j's
 * recipient is under a->cap_max sends per a->cap_per_ms, 0 when it is now (the delivery's
 * own earlier send not counted). suppress and defer settle the delivery with why as its
 * last_error: 'suppressed', or 'deferred' to until_ms (its expiry moving with it).
 */
struct store_audience_ops {
	int (*suppressed)(struct store *s, const struct store_job *j, char *list, size_t size);
	int (*cap_until)(struct store *s, const struct store_job *j, const struct store_audience *a,
	                 int64_t now_ms, int64_t *until_ms);
	int (*suppress)(struct store *s, int64_t delivery_id, const char *why);
	int (*defer)(struct store *s, int64_t delivery_id, int64_t until_ms, const char *why);
};

/* The audience rules of one due job, in their order: the opt-out list, the quiet hours, the
   frequency cap; a job they hold back is settled through ops. 1 it may go on (*a then says
   what to reserve), 0 it was settled, -1 error. when_zone: the handle's zone cache. */
int store_audience_check(struct store *s, const struct store_audience_ops *ops,
                         struct tz **when_zone, const struct store_claim_cb *cb,
                         struct store_job *j, int64_t now_ms, struct store_audience *a);

#endif
