/*
 * statements: every cached statement of the store, in one table keyed by its id, so a call
 * names the statement once (sqlite_stmt(s, SQL_CLAIM_SELECT)) and can never pair an id with
 * another statement's text. Statements that are built at run time (the query commands' filters)
 * are prepared where they are built.
 */
#include "sqlite_int.h"

const char *const sqlite_sql[SQL_COUNT] = {
	/* ---- campaigns and import writes ---- */
	/* A campaign an import is still writing is nobody's business but that import's. */
	[SQL_CAMPAIGN_GET] =
		"SELECT " STORE_CAMPAIGN_COLS " FROM campaigns c WHERE c.key = ?1 AND c.state <> 'importing'",
	[SQL_IMPORT_CAMPAIGN_GET] =
		"SELECT " STORE_CAMPAIGN_COLS " FROM campaigns c WHERE c.key = ?1",
	[SQL_STAGE_RECIPIENT] =
		"INSERT INTO temp.import_r (rid, data) VALUES (?1, ?2)",
	[SQL_STAGE_DELIVERY] =
		"INSERT INTO temp.import_d (seq, step, due, next, expires, rnd) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[SQL_CAMPAIGN_INSERT] =
		"INSERT INTO campaigns (key, name, channel, provider, timezone, start_date, anchor, "
		"expire_after_ms, created_at_ms, updated_at_ms, quiet_hours) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
	[SQL_CAMPAIGN_UPDATE] =
		"UPDATE campaigns SET name = ?2, channel = ?3, provider = ?4, timezone = ?5, "
		"start_date = ?6, anchor = ?7, expire_after_ms = ?8, updated_at_ms = ?9, quiet_hours = ?10 "
		"WHERE id = ?1 AND (name, channel, provider, timezone, coalesce(start_date, ''), anchor, "
		"expire_after_ms, coalesce(quiet_hours, '')) IS NOT "
		"(?2, ?3, ?4, ?5, coalesce(?6, ''), ?7, ?8, coalesce(?10, ''))",
	[SQL_STEP_GET] =
		"SELECT day, time, message FROM steps WHERE campaign_id = ?1 AND position = ?2",
	[SQL_STEP_PUT] =
		"INSERT OR REPLACE INTO steps (campaign_id, position, day, time, message) "
		"VALUES (?1, ?2, ?3, ?4, ?5)",

	/* ---- claims, results, channels ---- */
	[SQL_ACTIVE_CAMPAIGNS] =
		"SELECT " STORE_CAMPAIGN_COLS " FROM campaigns c WHERE c.state = 'active' ORDER BY c.id",
	/* A paused channel's deliveries wait for an operator, a suspended one's for its probe. */
	[SQL_NEXT_DUE] =
		"SELECT min(CASE coalesce(ch.state, 'active') WHEN 'active' THEN w.at "
		"WHEN 'suspended' THEN max(w.at, ch.next_probe_at_ms) END) FROM "
		"(SELECT c.channel AS channel, (SELECT min(d.next_at_ms) FROM deliveries d "
		"WHERE d.campaign_id = c.id AND " STORE_WAITING("d.state") ") AS at "
		"FROM campaigns c WHERE c.state = 'active') w LEFT JOIN channels ch ON ch.name = w.channel",
	[SQL_EXPIRE_DUE] =
		"UPDATE deliveries SET state = 'expired', "
		"last_error = 'expired: its last moment to go had passed (expire_after after its due "
		"time; for a provider-scheduled step, the step itself)' WHERE id = ?1",
	[SQL_CLAIM_SELECT] =
		CLAIM_COLS "WHERE d.campaign_id = ?1 AND " STORE_WAITING("d.state") " AND d.next_at_ms <= ?2 "
		"ORDER BY d.next_at_ms, d.id LIMIT ?3",
	/* The members of batch ?1 a LIMIT cut off: they share its next_at, so they follow the last
	member taken (?2) in id order. */
	[SQL_CLAIM_BATCH_REST] =
		CLAIM_COLS "WHERE d.batch_id = ?1 AND d.id > ?2 AND " STORE_WAITING("d.state")
		" AND d.next_at_ms <= ?3 ORDER BY d.id",
	[SQL_CHANNELS_HELD] =
		"SELECT name, state, coalesce(next_probe_at_ms, 0) FROM channels WHERE state <> 'active'",
	[SQL_CHANNEL_PROBED] =
		"UPDATE channels SET next_probe_at_ms = ?2 + probe_interval_ms, "
		"probe_interval_ms = min(probe_interval_ms * 2, ?3) WHERE name = ?1 AND state = 'suspended'",
	/* A fault suspends an active channel; a suspended one keeps its probe times (a failed probe
	must not restart the doubling); a paused one stays the operator's. */
	[SQL_CHANNEL_SUSPEND] =
		"INSERT INTO channels (name, state, reason, since_ms, next_probe_at_ms, probe_interval_ms) "
		"VALUES (?1, 'suspended', ?2, ?3, ?3 + ?4, min(?4 * 2, ?5)) ON CONFLICT (name) DO UPDATE SET "
		"reason = excluded.reason, "
		"since_ms = CASE state WHEN 'active' THEN excluded.since_ms ELSE since_ms END, "
		"next_probe_at_ms = CASE state WHEN 'active' THEN excluded.next_probe_at_ms "
		"ELSE next_probe_at_ms END, "
		"probe_interval_ms = CASE state WHEN 'active' THEN excluded.probe_interval_ms "
		"ELSE probe_interval_ms END, "
		"state = CASE state WHEN 'paused' THEN 'paused' ELSE 'suspended' END",
	[SQL_CHANNEL_RECOVER] =
		"UPDATE channels SET state = 'active', reason = NULL, since_ms = ?2, next_probe_at_ms = NULL, "
		"probe_interval_ms = NULL WHERE name = ?1 AND state = 'suspended'",
	[SQL_CLAIM_MARK] =
		"UPDATE deliveries SET state = 'sending', claimed_by = ?2, attempts = attempts + 1, "
		"send_at_ms = nullif(?3, 0) WHERE id = ?1",
	/* A rule's deferral is never a reason to drop a delivery (SPEC 5.3): its expiry moves with
	its send time, keeping the same slack. */
	/* The common case in one statement: ?1 is a JSON array of delivery ids. */
	[SQL_CLAIM_MARK_MANY] =
		"UPDATE deliveries SET state = 'sending', claimed_by = ?2, attempts = attempts + 1, "
		"send_at_ms = NULL WHERE id IN (SELECT value FROM json_each(?1))",
	[SQL_DEFER_MARK] =
		"UPDATE deliveries SET state = 'deferred', next_at_ms = ?2, send_at_ms = ?3, "
		"expires_at_ms = max(expires_at_ms, ?3 + expires_at_ms - due_at_ms), "
		"last_error = ?4 WHERE id = ?1",
	[SQL_WAIT_MARK] =
		"UPDATE deliveries SET next_at_ms = ?2 WHERE id = ?1",
	[SQL_LIMIT_GET] =
		"SELECT coalesce(last_call_ms, 0), coalesce(last_send_at_ms, 0), reserved_by IS NOT NULL "
		"FROM account_limits WHERE provider = ?1 AND account = ?2",
	[SQL_LIMIT_RESERVE] =
		"INSERT INTO account_limits (provider, account, reserved_by) VALUES (?1, ?2, ?3) "
		"ON CONFLICT (provider, account) DO UPDATE SET reserved_by = excluded.reserved_by",
	[SQL_RECORD_UPDATE] =
		"UPDATE deliveries SET state = ?2, next_at_ms = coalesce(?3, next_at_ms), "
		"send_at_ms = coalesce(?4, send_at_ms), last_error = ?5, "
		"provider_message_id = coalesce(?6, provider_message_id), claimed_by = NULL, "
		"batch_id = coalesce(?8, batch_id), attempts = attempts - ?9 "
		"WHERE id = ?1 AND state = 'sending' AND claimed_by = ?7",
	[SQL_ATTEMPT_INSERT] =
		"INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, duration_ms, http_status, "
		"provider_code, provider_message, outcome) "
		"SELECT campaign_id, id, ?2, ?3, ?4, ?5, ?6, ?7 FROM deliveries WHERE id = ?1",
	[SQL_CAMPAIGN_ERROR] =
		"UPDATE campaigns SET last_error = ?2 WHERE id = (SELECT campaign_id FROM deliveries WHERE id = ?1)",
	[SQL_LIMIT_SETTLE_OK] =
		"UPDATE account_limits SET last_call_ms = ?3, last_send_at_ms = ?4, reserved_by = NULL "
		"WHERE provider = ?1 AND account = ?2",
	[SQL_LIMIT_RELEASE] =
		"UPDATE account_limits SET reserved_by = NULL WHERE provider = ?1 AND account = ?2",

	/* ---- the audience rules ---- */
	[SQL_SUPPRESS_ANY] =
		"SELECT EXISTS (SELECT 1 FROM suppressions)",
	/* Two primary-key probes: the channel's own list and the every-channel list. */
	[SQL_SUPPRESS_FIND] =
		"SELECT channel FROM suppressions WHERE rid = ?2 AND channel IN (?1, '" STORE_ALL_CHANNELS "') "
		"LIMIT 1",
	[SQL_SUPPRESS_MARK] =
		"UPDATE deliveries SET state = 'suppressed', last_error = ?2 WHERE id = ?1",
	[SQL_SUPPRESS_PUT] =
		"INSERT INTO suppressions (channel, rid, added_at_ms) VALUES (?1, ?2, ?3) "
		"ON CONFLICT (channel, rid) DO NOTHING",
	[SQL_SUPPRESS_DELETE] =
		"DELETE FROM suppressions WHERE channel = ?1 AND rid = ?2",
	/* A rule's deferral is no reason to drop a delivery: its expiry moves with it, keeping the
	slack it had (as for SaiNiu's rule), so quiet hours or a cap never turn it 'expired'. */
	[SQL_AUDIENCE_DEFER] =
		"UPDATE deliveries SET state = 'deferred', next_at_ms = ?2, "
		"expires_at_ms = max(expires_at_ms, ?2 + expires_at_ms - due_at_ms), last_error = ?3 "
		"WHERE id = ?1",
	[SQL_CAP_PRUNE] =
		"DELETE FROM cap_sends WHERE channel = ?1 AND rid = ?2 AND at_ms <= ?3",
	/* The delivery's own row (a resend after an ambiguous outcome) is not another send. */
	[SQL_CAP_COUNT] =
		"SELECT count(*) FROM cap_sends WHERE channel = ?1 AND rid = ?2 AND at_ms > ?3 "
		"AND delivery_id <> ?4",
	[SQL_CAP_NTH] =
		"SELECT at_ms FROM cap_sends WHERE channel = ?1 AND rid = ?2 AND at_ms > ?3 "
		"AND delivery_id <> ?4 ORDER BY at_ms LIMIT 1 OFFSET ?5",
	[SQL_CAP_RESERVE] =
		"INSERT OR REPLACE INTO cap_sends (delivery_id, channel, rid, at_ms) VALUES (?1, ?2, ?3, ?4)",
	[SQL_CAP_KEEP] =
		"UPDATE cap_sends SET at_ms = ?2 WHERE delivery_id = ?1",
	[SQL_CAP_DROP] =
		"DELETE FROM cap_sends WHERE delivery_id = ?1",

	/* ---- runners ---- */
	[SQL_RUNNER_ADD] =
		"INSERT INTO runners (pid, started_at_ms, heartbeat_ms, lease_ms) VALUES (?1, ?2, ?2, ?3)",
	/* A renewal never moves the lease back (a clock stepping back, a late write). */
	[SQL_RUNNER_HEARTBEAT] =
		"UPDATE runners SET heartbeat_ms = max(heartbeat_ms, ?2) WHERE id = ?1",
	[SQL_RUNNER_LIST] =
		"SELECT id, heartbeat_ms, lease_ms FROM runners ORDER BY id",
	[SQL_RUNNER_STALE] =
		"SELECT heartbeat_ms + lease_ms < ?2 FROM runners WHERE id = ?1",
	[SQL_RUNNER_DELETE] =
		"DELETE FROM runners WHERE id = ?1",
	/* A reservation the dead runner held may have been accepted: it counts as a call made. */
	[SQL_REAP_LIMITS] =
		"UPDATE account_limits SET last_call_ms = ?2, last_send_at_ms = coalesce("
		"(SELECT send_at_ms FROM deliveries WHERE id = reserved_by), last_send_at_ms), "
		"reserved_by = NULL WHERE reserved_by IN "
		"(SELECT id FROM deliveries WHERE claimed_by = ?1 AND state = 'sending')",
	[SQL_REAP_LIST] =
		"SELECT d.id, c.provider FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id "
		"WHERE d.claimed_by = ?1 AND d.state = 'sending'",
	[SQL_REAP_RESEND] =
		"UPDATE deliveries SET state = 'pending', next_at_ms = ?2, claimed_by = NULL WHERE id = ?1",
	[SQL_REAP_UNKNOWN] =
		"UPDATE deliveries SET state = 'unknown', claimed_by = NULL, last_error = "
		"'herald stopped while the request was in flight: it may or may not have been sent' "
		"WHERE id = ?1",
	[SQL_REAP_ATTEMPT] =
		"INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, provider_message, outcome) "
		"SELECT campaign_id, id, ?2, ?3, ?4 FROM deliveries WHERE id = ?1",

	/* A late "accepted" for a delivery settled as unknown while its runner was away. */
	[SQL_RECORD_LATE_ACCEPT] =
		"UPDATE deliveries SET state = 'sent', last_error = NULL, "
		"provider_message_id = coalesce(?2, provider_message_id) "
		"WHERE id = ?1 AND state = 'unknown' AND claimed_by IS NULL",
};
