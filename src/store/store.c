/*
 * store: the front of the store. It chooses the backend from what --db names, keeps what
 * does not depend on one (the state names, freeing jobs), and forwards every other call to
 * the backend the handle was opened with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "postgres/postgres.h"
#include "sqlite/sqlite.h"
#include "sop.h"
#include "tz.h"

const char *const store_states[STORE_N_STATES] = {
    [STATE_PENDING] = "pending",       [STATE_SENDING] = "sending",     [STATE_SENT] = "sent",
    [STATE_RETRYING] = "retrying",     [STATE_DEFERRED] = "deferred",   [STATE_FAILED] = "failed",
    [STATE_EXPIRED] = "expired",       [STATE_CANCELLED] = "cancelled", [STATE_UNKNOWN] = "unknown",
    [STATE_SUPPRESSED] = "suppressed",
};

int
store_state_index(const char *state)
{
	int i;

	for (i = 0; i < STORE_N_STATES; i++)
		if (strcmp(store_states[i], state) == 0)
			return i;
	return -1;
}

void
store_jobs_free(struct store_job *jobs, size_t n)
{
	store_jobs_clear(jobs, 0, n);
	free(jobs);
}

int
store_is_server(const char *db)
{
	static const char *const schemes[] = {"postgresql://", "postgres://"};
	size_t i;

	for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
		if (strncmp(db, schemes[i], strlen(schemes[i])) == 0)
			return 1;
	return 0;
}

struct store *
store_open(const char *db, char **err)
{
	return store_is_server(db) ? postgres_open(db, err) : sqlite_open(db, err);
}

struct store *
store_open_existing(const char *db, int *missing, char **err)
{
	return store_is_server(db) ? postgres_open_existing(db, missing, err)
	                           : sqlite_open_existing(db, missing, err);
}

struct store *
store_open_reader(const char *db, char **err)
{
	return store_is_server(db) ? postgres_open_reader(db, err) : sqlite_open_reader(db, err);
}

struct store *
store_open_writer(const char *db, int dry_run, int *made, char **err)
{
	struct store *s;
	int missing = 0, made_here;

	if (!made)
		made = &made_here;
	*made = 0;
	if (dry_run) {
		if ((s = store_open_existing(db, &missing, err)) || !missing)
			return s;
		free(*err);
		*err = NULL;
		return sqlite_open(":memory:", err);
	}
	*made = !store_is_server(db) && access(db, F_OK) != 0 && errno == ENOENT;
	return store_open(db, err);
}

void
store_unmake(const char *db)
{
	static const char *const suffixes[] = {"-wal", "-shm", "-journal", "-import.lock"};
	char *err = NULL, side[4096];
	int missing, blank;
	struct store *s;
	size_t i;

	if (store_is_server(db))
		return;
	s = store_open_existing(db, &missing, &err);
	blank = s && store_is_blank(s);
	store_close(s);
	free(err);
	if (!blank)
		return;  /* another process's import or runner got there first: it stays */
	unlink(db);
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (snprintf(side, sizeof side, "%s%s", db, suffixes[i]) < (int)sizeof side)
			unlink(side);
}

void
store_close(struct store *s)
{
	if (s)
		s->be->close(s);
}

int
store_version(struct store *s)
{
	return s->be->version(s);
}

const char *
store_path(const struct store *s)
{
	return s->be->path(s);
}

const char *
store_errmsg(struct store *s)
{
	return s->be->errmsg(s);
}

int
store_begin(struct store *s, char **err)
{
	return s->be->begin(s, err);
}

int
store_commit(struct store *s, char **err)
{
	return s->be->commit(s, err);
}

void
store_rollback(struct store *s)
{
	s->be->rollback(s);
}

int64_t
store_data_version(struct store *s)
{
	return s->be->data_version(s);
}

int
store_campaign_get(struct store *s, const char *key, struct store_campaign *out, char **err)
{
	return s->be->campaign_get(s, key, out, err);
}

int
store_campaign_put(struct store *s, struct store_campaign *c, int64_t now_ms, int *changed,
                   char **err)
{
	return s->be->campaign_put(s, c, now_ms, changed, err);
}

int64_t
store_campaign_set_state(struct store *s, int64_t campaign_id, const char *state, char **err)
{
	return s->be->campaign_set_state(s, campaign_id, state, err);
}

int
store_step_put(struct store *s, int64_t campaign_id, int position, int day, const char *time,
               const char *message_json, int *changed, char **err)
{
	return s->be->step_put(s, campaign_id, position, day, time, message_json, changed, err);
}

int
store_steps_trim(struct store *s, int64_t campaign_id, int n_steps, int *changed, char **err)
{
	return s->be->steps_trim(s, campaign_id, n_steps, changed, err);
}

int
store_stage_begin(struct store *s, char **err)
{
	return s->be->stage_begin(s, err);
}

int
store_stage_flush(struct store *s, char **err)
{
	return s->be->stage_flush(s, err);
}

int
store_stage_end(struct store *s, char **err)
{
	return s->be->stage_end(s, err);
}

int
store_stage_recipient(struct store *s, const char *rid, const char *data_json, int64_t *seq,
                      char **err)
{
	return s->be->stage_recipient(s, rid, data_json, seq, err);
}

int
store_stage_delivery(struct store *s, int64_t seq, int step, int64_t due_at_ms, int64_t next_at_ms,
                     int64_t expires_at_ms, uint32_t msg_random, char **err)
{
	return s->be->stage_delivery(s, seq, step, due_at_ms, next_at_ms, expires_at_ms, msg_random,
	                             err);
}

int
store_import_campaign_get(struct store *s, const char *key, struct store_campaign *out, char **err)
{
	return s->be->import_campaign_get(s, key, out, err);
}

int
store_campaign_differs(struct store *s, const struct store_campaign *c, int n_steps, char **err)
{
	return s->be->campaign_differs(s, c, n_steps, err);
}

int
store_step_differs(struct store *s, int64_t campaign_id, int position, int day, const char *time,
                   const char *message_json, char **err)
{
	return s->be->step_differs(s, campaign_id, position, day, time, message_json, err);
}

int
store_import_plan(struct store *s, int64_t campaign_id, struct store_import_plan *p, char **err)
{
	return s->be->import_plan(s, campaign_id, p, err);
}

int
store_import_apply(struct store *s, int64_t campaign_id, struct store_import_plan *done, char **err)
{
	return s->be->import_apply(s, campaign_id, done, err);
}

int
store_import_hide(struct store *s, int64_t campaign_id, char **err)
{
	return s->be->import_hide(s, campaign_id, err);
}

int64_t
store_import_batch(struct store *s, int64_t campaign_id, int64_t from_seq, int64_t rows, char **err)
{
	return s->be->import_batch(s, campaign_id, from_seq, rows, err);
}

int
store_import_reveal(struct store *s, int64_t campaign_id, char **err)
{
	return s->be->import_reveal(s, campaign_id, err);
}

int64_t
store_import_sweep(struct store *s, int64_t only_id, char **err)
{
	return s->be->import_sweep(s, only_id, err);
}

int
store_status(struct store *s, const char *key, int (*fn)(void *arg, const struct store_status *st),
             void *arg, char **err)
{
	return s->be->status(s, key, fn, arg, err);
}

int
store_deliveries(struct store *s, int64_t campaign_id, const char *state,
                 const struct store_page *after, int64_t limit,
                 int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                 struct store_page *next, int *more, char **err)
{
	return s->be->deliveries(s, campaign_id, state, after, limit, fn, arg, next, more, err);
}

int
store_attempts(struct store *s, int64_t campaign_id, const char *recipient,
               int (*fn)(void *arg, const struct store_attempt_row *r), void *arg, char **err)
{
	return s->be->attempts(s, campaign_id, recipient, fn, arg, err);
}

int
store_steps(struct store *s, int64_t campaign_id,
            int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err)
{
	return s->be->steps(s, campaign_id, fn, arg, err);
}

int64_t
store_recipient_count(struct store *s, int64_t campaign_id, char **err)
{
	return s->be->recipient_count(s, campaign_id, err);
}

int
store_is_blank(struct store *s)
{
	return s->be->is_blank(s);
}

int64_t
store_retry(struct store *s, int64_t campaign_id, const char *state, int64_t now_ms, char **err)
{
	return s->be->retry(s, campaign_id, state, now_ms, err);
}

int
store_claim(struct store *s, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb,
            struct store_job **jobs, size_t *n_jobs, char **err)
{
	return s->be->claim(s, runner_id, now_ms, cb, jobs, n_jobs, err);
}

int
store_next_due(struct store *s, int64_t *next_at_ms, char **err)
{
	return s->be->next_due(s, next_at_ms, err);
}

int
store_record(struct store *s, int64_t runner_id, const struct store_result *r, size_t n,
             const struct store_channel_event *ev, size_t n_ev, char **err)
{
	return s->be->record(s, runner_id, r, n, ev, n_ev, err);
}

int64_t
store_suppress_add(struct store *s, const char *channel, const char *const *ids, size_t n,
                   int64_t now_ms, char **err)
{
	return n ? s->be->suppress_add(s, channel, ids, n, now_ms, err) : 0;
}

int
store_suppress_delete(struct store *s, const char *channel, const char *rid, char **err)
{
	return s->be->suppress_delete(s, channel, rid, err);
}

int
store_suppress_list(struct store *s, const char *channel,
                    int (*fn)(void *arg, const struct store_suppression *r), void *arg, char **err)
{
	return s->be->suppress_list(s, channel, fn, arg, err);
}

int
store_channel_get(struct store *s, const char *name, struct store_channel *out, char **err)
{
	return s->be->channel_get(s, name, out, err);
}

int
store_channel_set(struct store *s, const char *name, const char *state, const char *reason,
                  int64_t now_ms, char **err)
{
	return s->be->channel_set(s, name, state, reason, now_ms, err);
}

int
store_ping(struct store *s, char **err)
{
	return s->be->ping(s, err);
}

int64_t
store_due_backlog(struct store *s, int64_t now_ms, char **err)
{
	return s->be->due_backlog(s, now_ms, err);
}

int
store_channel_list(struct store *s, int (*fn)(void *arg, const struct store_channel *ch), void *arg,
                   char **err)
{
	return s->be->channel_list(s, fn, arg, err);
}

int
store_runner_add(struct store *s, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id,
                 char **err)
{
	return s->be->runner_add(s, pid, now_ms, lease_ms, id, err);
}

int
store_runner_heartbeat(struct store *s, int64_t id, int64_t now_ms, char **err)
{
	return s->be->runner_heartbeat(s, id, now_ms, err);
}

int
store_runner_list(struct store *s, struct store_runner **rows, size_t *n, char **err)
{
	return s->be->runner_list(s, rows, n, err);
}

int64_t
store_runner_reap(struct store *s, int64_t id, int (*dedups)(const char *provider), int64_t now_ms,
                  int64_t stale_before_ms, char **err)
{
	return s->be->runner_reap(s, id, dedups, now_ms, stale_before_ms, err);
}

int
store_import_lock(struct store *s, char **err)
{
	return s->be->import_lock(s, err);
}

void
store_import_unlock(struct store *s)
{
	s->be->import_unlock(s);
}

int
store_liveness_hold(struct store *s, int64_t runner_id, char **err)
{
	return s->be->liveness_hold(s, runner_id, err);
}

int
store_liveness_try(struct store *s, int64_t runner_id, char **err)
{
	return s->be->liveness_try(s, runner_id, err);
}

void
store_liveness_release(struct store *s, int64_t runner_id)
{
	s->be->liveness_release(s, runner_id);
}

/* ---- what the backends share --------------------------------------------------------------- */

void
store_result_error(const struct store_result *r, char *out, size_t size)
{
	if (r->state == STATE_SENT)
		out[0] = '\0';
	else if (r->code && r->code[0])
		snprintf(out, size, "%s: %s", r->code, r->message ? r->message : "");
	else
		snprintf(out, size, "%s", r->message ? r->message : "");
}

void
store_format_when(struct tz **cache, const char *zone, int64_t ms, char out[40])
{
	if (!*cache || strcmp(tz_name(*cache), zone) != 0) {
		tz_free(*cache);
		*cache = tz_load(zone, NULL);
	}
	sop_format_instant(ms, *cache ? tz_offset_at(*cache, ms) : 0, out);
}

void
store_why_suppressed(const struct store_job *j, const char *list, char *out, size_t size)
{
	int every = strcmp(list, STORE_ALL_CHANNELS) == 0;

	snprintf(out, size, "suppressed: %s is on the opt-out list of %s%s", j->rid,
	         every ? "every channel" : "channel ", every ? "" : list);
}

void
store_why_quiet(struct tz **cache, const struct store_job *j, const struct store_audience *a,
                int64_t until_ms, char *out, size_t size)
{
	char when[40];

	store_format_when(cache, j->campaign.timezone, until_ms, when);
	snprintf(out, size, "deferred by quiet hours %s: goes at %s", a->quiet_why, when);
}

void
store_why_capped(struct tz **cache, const struct store_job *j, const struct store_audience *a,
                 int64_t until_ms, char *out, size_t size)
{
	char when[40];

	store_format_when(cache, j->campaign.timezone, until_ms, when);
	snprintf(out, size, "deferred by the frequency cap of channel %s (%lld per %llds) for %s: "
	         "goes at %s", j->campaign.channel, (long long)a->cap_max,
	         (long long)(a->cap_per_ms / 1000), j->rid, when);
}
