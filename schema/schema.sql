-- The full schema after every migration, for readers. Generated: do not edit;
-- HERALD_UPDATE_SCHEMA=1 ctest -R test_store rewrites it.
CREATE TABLE account_limits (
	provider         TEXT NOT NULL,
	account          TEXT NOT NULL,
	last_call_ms     INTEGER,                 -- last accepted call
	last_send_at_ms  INTEGER,                 -- send time that call asked for
	reserved_by      INTEGER,                 -- deliveries.id of the call now in flight
	PRIMARY KEY (provider, account)
) WITHOUT ROWID;
CREATE TABLE attempts (
	id               INTEGER PRIMARY KEY,
	campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	started_at_ms    INTEGER NOT NULL,
	duration_ms      INTEGER,                 -- NULL when the outcome is unknown
	http_status      INTEGER,                 -- NULL when no HTTP answer came
	provider_code    TEXT,
	provider_message TEXT,
	outcome          TEXT NOT NULL CHECK (
	                 outcome = 'sent' OR outcome = 'retrying' OR outcome = 'deferred' OR
	                 outcome = 'failed' OR outcome = 'unknown' OR outcome = 'requeued')
);
CREATE TABLE "campaigns" (
	id              INTEGER PRIMARY KEY,
	key             TEXT NOT NULL UNIQUE,
	name            TEXT NOT NULL,
	channel         TEXT NOT NULL,            -- channel name in the config file
	provider        TEXT NOT NULL,            -- provider of that channel at import time
	timezone        TEXT NOT NULL,            -- IANA name
	start_date      TEXT,                     -- YYYY-MM-DD, NULL when anchor is enrollment only
	anchor          TEXT NOT NULL CHECK (anchor IN ('start_date', 'enrollment')),
	expire_after_ms INTEGER NOT NULL,
	state           TEXT NOT NULL DEFAULT 'active'
	                CHECK (state IN ('active', 'paused', 'cancelled', 'importing')),
	last_error      TEXT,                     -- latest failure of any delivery, for `status`
	created_at_ms   INTEGER NOT NULL,
	updated_at_ms   INTEGER NOT NULL,
	quiet_hours     TEXT                      -- its own "HH:mm-HH:mm", NULL = the channel's
);
CREATE TABLE cap_sends (
	delivery_id INTEGER PRIMARY KEY,          -- deliveries.id: a delivery counts once
	channel     TEXT NOT NULL,
	rid         TEXT NOT NULL,
	at_ms       INTEGER NOT NULL
);
CREATE TABLE channels (
	name              TEXT PRIMARY KEY,       -- the channel's key in the config file
	state             TEXT NOT NULL CHECK (state IN ('active', 'paused', 'suspended')),
	reason            TEXT,                   -- why it is paused or suspended
	since_ms          INTEGER NOT NULL,       -- when it entered this state
	next_probe_at_ms  INTEGER,                -- suspended: when the next probe may go
	probe_interval_ms INTEGER                 -- suspended: the wait after the next probe
) WITHOUT ROWID;
CREATE TABLE "deliveries" (
	id                  INTEGER PRIMARY KEY,
	campaign_id         INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	recipient_id        INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
	step                INTEGER NOT NULL,     -- steps.position
	due_at_ms           INTEGER NOT NULL,
	next_at_ms          INTEGER NOT NULL,
	expires_at_ms       INTEGER NOT NULL,
	state               TEXT NOT NULL DEFAULT 'pending' CHECK (
	                    state = 'pending' OR state = 'sending' OR state = 'sent' OR
	                    state = 'retrying' OR state = 'deferred' OR state = 'failed' OR
	                    state = 'expired' OR state = 'cancelled' OR state = 'unknown' OR
	                    state = 'suppressed'),
	attempts            INTEGER NOT NULL DEFAULT 0,
	last_error          TEXT,
	provider_message_id TEXT,
	msg_random          INTEGER NOT NULL,     -- fixed per delivery: Tencent's MsgRandom de-duplicates resends
	claimed_by          INTEGER,              -- runners.id while state = 'sending'
	send_at_ms          INTEGER,              -- provider-scheduled sends: the send time asked for
	batch_id            INTEGER,              -- the failed request whose members retry together
	UNIQUE (recipient_id, step)
);
CREATE TABLE delivery_counts (
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	state       TEXT NOT NULL,
	n           INTEGER NOT NULL,
	PRIMARY KEY (campaign_id, state)
) WITHOUT ROWID;
CREATE TABLE recipients (
	id          INTEGER PRIMARY KEY,
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	rid         TEXT NOT NULL,
	data        TEXT NOT NULL,                -- the recipient record, JSON (vars, enrolled_at, ...)
	active      INTEGER NOT NULL DEFAULT 1,   -- 0 once a re-import no longer lists it
	UNIQUE (campaign_id, rid)
);
CREATE TABLE "runners" (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	pid           INTEGER NOT NULL,
	started_at_ms INTEGER NOT NULL,
	heartbeat_ms  INTEGER NOT NULL,           -- last lease renewal, wall clock
	lease_ms      INTEGER NOT NULL DEFAULT 60000
);
CREATE TABLE steps (
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,             -- 1-based
	day         INTEGER NOT NULL CHECK (day >= 1),
	time        TEXT NOT NULL,                -- HH:mm local to the campaign's timezone
	message     TEXT NOT NULL,                -- the message object, JSON, unrendered
	PRIMARY KEY (campaign_id, position)
) WITHOUT ROWID;
CREATE TABLE suppressions (
	channel     TEXT NOT NULL,                -- a channel name, or '*' for every channel
	rid         TEXT NOT NULL,                -- the recipient id as campaigns list it
	added_at_ms INTEGER NOT NULL,
	PRIMARY KEY (channel, rid)
) WITHOUT ROWID;
CREATE INDEX attempts_campaign ON attempts (campaign_id, id);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
CREATE INDEX cap_sends_window ON cap_sends (channel, rid, at_ms);
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX deliveries_campaign_state ON deliveries (campaign_id, state, due_at_ms);
CREATE INDEX deliveries_due ON deliveries (campaign_id, due_at_ms, id);
CREATE INDEX deliveries_ready ON deliveries (campaign_id, next_at_ms)
	WHERE state = 'pending' OR state = 'retrying' OR state = 'deferred';
CREATE INDEX deliveries_sending ON deliveries (claimed_by) WHERE state = 'sending';
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
END;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
	WHEN OLD.state <> NEW.state BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
	INSERT INTO delivery_counts (campaign_id, state, n) VALUES (NEW.campaign_id, NEW.state, 1)
		ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + 1;
END;
