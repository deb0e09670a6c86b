-- Herald's first schema. Instants are Unix milliseconds UTC (columns ending in _ms).

-- One row per imported campaign definition (keyed by the definition's "key").
CREATE TABLE campaigns (
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
	                CHECK (state IN ('active', 'paused', 'cancelled')),
	last_error      TEXT,                     -- latest failure of any delivery, for `status`
	created_at_ms   INTEGER NOT NULL,
	updated_at_ms   INTEGER NOT NULL
);

-- The steps of a campaign, by 1-based position in the definition.
CREATE TABLE steps (
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	position    INTEGER NOT NULL,             -- 1-based
	day         INTEGER NOT NULL CHECK (day >= 1),
	time        TEXT NOT NULL,                -- HH:mm local to the campaign's timezone
	message     TEXT NOT NULL,                -- the message object, JSON, unrendered
	PRIMARY KEY (campaign_id, position)
) WITHOUT ROWID;

-- Recipients of a campaign. rid is what the provider addresses: id, session_id or chat_id.
CREATE TABLE recipients (
	id          INTEGER PRIMARY KEY,
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	rid         TEXT NOT NULL,
	data        TEXT NOT NULL,                -- the recipient record, JSON (vars, enrolled_at, ...)
	active      INTEGER NOT NULL DEFAULT 1,   -- 0 once a re-import no longer lists it
	UNIQUE (campaign_id, rid)
);

-- One delivery per (recipient, step).
--   due_at_ms     when the message should reach the recipient (the time users see)
--   next_at_ms    when the scheduler acts on it next: due time, a provider's lead (SaiNiu calls
--                 ahead), the campaign's day 1 (Tanmarket), a retry or a deferral
--   expires_at_ms past this, an unsent delivery becomes expired instead of going out late
CREATE TABLE deliveries (
	id                  INTEGER PRIMARY KEY,
	campaign_id         INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	recipient_id        INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
	step                INTEGER NOT NULL,     -- steps.position
	due_at_ms           INTEGER NOT NULL,
	next_at_ms          INTEGER NOT NULL,
	expires_at_ms       INTEGER NOT NULL,
	state               TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
	                    ('pending', 'sending', 'sent', 'retrying', 'deferred', 'failed',
	                     'expired', 'cancelled', 'unknown')),
	attempts            INTEGER NOT NULL DEFAULT 0,
	last_error          TEXT,
	provider_message_id TEXT,
	msg_random          INTEGER NOT NULL,     -- fixed per delivery: Tencent's MsgRandom de-duplicates resends
	claimed_by          INTEGER,              -- runners.id while state = 'sending'
	send_at_ms          INTEGER,              -- provider-scheduled sends: the send time asked for
	UNIQUE (recipient_id, step)
);

-- The scheduler's only way in: per campaign, the dispatchable rows in time order.
CREATE INDEX deliveries_ready ON deliveries (campaign_id, next_at_ms)
	WHERE state IN ('pending', 'retrying', 'deferred');
-- Reconciling a dead runner's in-flight rows.
CREATE INDEX deliveries_sending ON deliveries (claimed_by) WHERE state = 'sending';
-- `deliveries KEY --state S`, in due order.
CREATE INDEX deliveries_campaign_state ON deliveries (campaign_id, state, due_at_ms);

-- Delivery counts per campaign and state, so `status` never counts millions of rows. State
-- changes keep them by trigger; inserts are only made by import, which recounts the campaign
-- once at its end (a trigger per inserted row made a million-row import several times slower).
CREATE TABLE delivery_counts (
	campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	state       TEXT NOT NULL,
	n           INTEGER NOT NULL,
	PRIMARY KEY (campaign_id, state)
) WITHOUT ROWID;

CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
	WHEN OLD.state <> NEW.state BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
	INSERT INTO delivery_counts (campaign_id, state, n) VALUES (NEW.campaign_id, NEW.state, 1)
		ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
END;

-- Every attempt to send, including ones whose outcome a crash made unknown.
CREATE TABLE attempts (
	id               INTEGER PRIMARY KEY,
	campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	started_at_ms    INTEGER NOT NULL,
	duration_ms      INTEGER,                 -- NULL when the outcome is unknown
	http_status      INTEGER,                 -- NULL when no HTTP answer came
	provider_code    TEXT,
	provider_message TEXT,
	outcome          TEXT NOT NULL CHECK (outcome IN
	                 ('sent', 'retrying', 'deferred', 'failed', 'unknown', 'requeued'))
);
CREATE INDEX attempts_campaign ON attempts (campaign_id, id);
CREATE INDEX attempts_delivery ON attempts (delivery_id);

-- Per-account provider limits shared by every campaign and process (SaiNiu's 7-day rule).
CREATE TABLE account_limits (
	provider         TEXT NOT NULL,
	account          TEXT NOT NULL,
	last_call_ms     INTEGER,                 -- last accepted call
	last_send_at_ms  INTEGER,                 -- send time that call asked for
	reserved_by      INTEGER,                 -- deliveries.id of the call now in flight
	PRIMARY KEY (provider, account)
) WITHOUT ROWID;

-- One row per live `herald run`. Its liveness is the advisory lock it holds on byte `id` of
-- the file DB-runners.lock; a row whose byte can be locked by someone else belongs to the dead.
CREATE TABLE runners (
	id            INTEGER PRIMARY KEY,
	pid           INTEGER NOT NULL,
	started_at_ms INTEGER NOT NULL,
	heartbeat_ms  INTEGER NOT NULL
);
