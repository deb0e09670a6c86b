/*
 * record: what the scheduler learnt, written back. Results and the channel events they
 * caused go in one transaction per batch; a row is updated only while the runner still holds
 * its claim, so a runner whose lease ran out cannot overwrite what another settled.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sqlite_int.h"

/*
 * An answer saying "accepted" that came after our lease ran out: the runner that took over
 * settled the delivery as unknown, as it had to. Knowing better now, it becomes sent, so that
 * `herald retry --state unknown` cannot send it again; only while it is still that unknown
 * (nobody retried it meanwhile).
 */
static int
record_late_accept(struct sqlite_store *s, const struct store_result *r)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RECORD_LATE_ACCEPT);

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, r->delivery_id);
	if (r->message_id)
		sqlite3_bind_text(st, 2, r->message_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (sqlite3_changes(s->db) == 0)
		return 0;  /* retried meanwhile, or never settled as unknown: nothing to correct */
	if (!(st = sqlite_stmt(s, SQL_ATTEMPT_INSERT)))
		return -1;
	sqlite3_bind_int64(st, 1, r->delivery_id);
	sqlite3_bind_int64(st, 2, r->started_at_ms);
	sqlite3_bind_int64(st, 3, r->duration_ms);
	if (r->http_status)
		sqlite3_bind_int(st, 4, r->http_status);
	if (r->code && r->code[0])
		sqlite3_bind_text(st, 5, r->code, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, "accepted, its answer read after the runner's lease ran out", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(st, 7, "sent", -1, SQLITE_STATIC);
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
record_one(struct sqlite_store *s, int64_t runner_id, const struct store_result *r)
{
	sqlite3_stmt *st = sqlite_stmt(s, SQL_RECORD_UPDATE);
	char err_text[600];
	int sent = r->state == STATE_SENT;

	if (!st)
		return -1;
	store_result_error(r, err_text, sizeof err_text);
	sqlite3_bind_int64(st, 1, r->delivery_id);
	sqlite3_bind_text(st, 2, store_states[r->state], -1, SQLITE_STATIC);
	if (r->next_at_ms)
		sqlite3_bind_int64(st, 3, r->next_at_ms);
	if (r->send_at_ms)
		sqlite3_bind_int64(st, 4, r->send_at_ms);
	if (err_text[0])
		sqlite3_bind_text(st, 5, err_text, -1, SQLITE_STATIC);
	if (r->message_id)
		sqlite3_bind_text(st, 6, r->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, runner_id);
	if (r->batch_id)
		sqlite3_bind_int64(st, 8, r->batch_id);
	sqlite3_bind_int(st, 9, r->refund ? 1 : 0);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	/* Not ours any more: our lease ran out and another runner settled it (and its attempt,
	   and any reservation). Recording ours too would count one request twice. */
	if (sqlite3_changes(s->db) == 0)
		return r->state == STATE_SENT ? record_late_accept(s, r) : 0;
	if (sqlite_audience_settle(s, r) != 0)
		return -1;
	/* Expired before its request could leave: there was no attempt to log. */
	if (r->state == STATE_EXPIRED)
		goto settle;
	if (!(st = sqlite_stmt(s, SQL_ATTEMPT_INSERT)))
		return -1;
	sqlite3_bind_int64(st, 1, r->delivery_id);
	sqlite3_bind_int64(st, 2, r->started_at_ms);
	sqlite3_bind_int64(st, 3, r->duration_ms);
	if (r->http_status)
		sqlite3_bind_int(st, 4, r->http_status);
	if (r->code && r->code[0])
		sqlite3_bind_text(st, 5, r->code, -1, SQLITE_STATIC);
	if (r->message)
		sqlite3_bind_text(st, 6, r->message, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->state == STATE_PENDING ? "requeued" : store_states[r->state], -1,
	                  SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		return -1;
	if (!sent && err_text[0]) {
		if (!(st = sqlite_stmt(s, SQL_CAMPAIGN_ERROR)))
			return -1;
		sqlite3_bind_int64(st, 1, r->delivery_id);
		sqlite3_bind_text(st, 2, err_text, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			return -1;
	}
settle:
	if (!r->limit_account)
		return 0;
	/* A call that may have been accepted counts for the rule as if it was (SPEC 5.10). */
	st = sent || r->limit_counts ? sqlite_stmt(s, SQL_LIMIT_SETTLE_OK)
	                             : sqlite_stmt(s, SQL_LIMIT_RELEASE);
	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, r->limit_provider, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->limit_account, -1, SQLITE_STATIC);
	if (sent || r->limit_counts) {
		sqlite3_bind_int64(st, 3, r->started_at_ms);
		sqlite3_bind_int64(st, 4, r->send_at_ms);
	}
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

static int
record_channel(struct sqlite_store *s, const struct store_channel_event *e)
{
	sqlite3_stmt *st = e->suspend ? sqlite_stmt(s, SQL_CHANNEL_SUSPEND)
	                              : sqlite_stmt(s, SQL_CHANNEL_RECOVER);

	if (!st)
		return -1;
	sqlite3_bind_text(st, 1, e->channel, -1, SQLITE_STATIC);
	if (e->suspend) {
		sqlite3_bind_text(st, 2, e->reason ? e->reason : "suspended", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, e->at_ms);
		sqlite3_bind_int64(st, 4, e->probe_every_ms);
		sqlite3_bind_int64(st, 5, STORE_PROBE_MAX_MS);
	} else {
		sqlite3_bind_int64(st, 2, e->at_ms);
	}
	return sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
}

int
sqlite_record(struct store *base, int64_t runner_id, const struct store_result *r, size_t n,
             const struct store_channel_event *ev, size_t n_ev, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	size_t i;
	int rc;

	if (n == 0 && n_ev == 0)
		return 0;
	/*
	 * Results need not reach the disk before we go on: if a power loss takes the last of
	 * them, their rows are 'sending' again and the next start settles them as after a crash
	 * (resent where the provider de-duplicates, else unknown), never sent twice. So no fsync
	 * here; the next claim's commit (synchronous=FULL) carries them to the disk anyway.
	 */
	if (sqlite_exec(s, "PRAGMA synchronous = NORMAL", err) != 0)
		return -1;
	rc = sqlite_begin(&s->base, err);
	for (i = 0; rc == 0 && i < n + n_ev; i++) {
		if ((i < n ? record_one(s, runner_id, &r[i]) : record_channel(s, &ev[i - n])) != 0) {
			sqlite_fail(s, err, "recording results");
			sqlite_rollback(&s->base);
			rc = -1;
		}
	}
	if (rc == 0)
		rc = sqlite_commit(&s->base, err);
	/* Claims must reach the disk: back to FULL whatever happened. */
	if (sqlite_exec(s, "PRAGMA synchronous = FULL", rc ? NULL : err) != 0)
		rc = -1;
	return rc;
}
