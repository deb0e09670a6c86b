-- Audience rules (SPEC 5.12): the opt-out list, per-channel frequency caps, quiet hours.

-- The opt-out list. A row for channel '*' suppresses the id on every channel. Checked inside
-- the claim transaction, so a delivery that comes due for a listed id is never sent.
CREATE TABLE suppressions (
	channel     TEXT NOT NULL,                -- a channel name, or '*' for every channel
	rid         TEXT NOT NULL,                -- the recipient id as campaigns list it
	added_at_ms INTEGER NOT NULL,
	PRIMARY KEY (channel, rid)
) WITHOUT ROWID;

-- The sends a channel's frequency cap counts: one row per delivery claimed on a capped
-- channel, made in the claim (so two runners cannot both pass the cap) and kept once the
-- provider accepted it or may have (an ambiguous outcome counts, as for SaiNiu's rule); a
-- refused attempt removes it. at_ms is the accepted attempt's start. Rows older than the
-- channel's window are pruned as the claim meets them.
CREATE TABLE cap_sends (
	delivery_id INTEGER PRIMARY KEY,          -- deliveries.id: a delivery counts once
	channel     TEXT NOT NULL,
	rid         TEXT NOT NULL,
	at_ms       INTEGER NOT NULL
);
-- The cap check: the sends of one (channel, recipient) in the window, an index range.
CREATE INDEX cap_sends_window ON cap_sends (channel, rid, at_ms);

-- A campaign's own quiet hours, "HH:mm-HH:mm" local; NULL = the channel's (if any).
ALTER TABLE campaigns ADD COLUMN quiet_hours TEXT;

-- A new delivery state, 'suppressed', widens the CHECK: SQLite cannot alter a constraint, so
-- the table is rebuilt (the store runs migrations with foreign keys off, so dropping the old
-- table cascades to no attempt), keeping every column, index and trigger it had.
CREATE TABLE deliveries_new (
	id                  INTEGER PRIMARY KEY,
	campaign_id         INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	recipient_id        INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
	step                INTEGER NOT NULL,     -- steps.position
	due_at_ms           INTEGER NOT NULL,
	next_at_ms          INTEGER NOT NULL,
	expires_at_ms       INTEGER NOT NULL,
	state               TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
	                    ('pending', 'sending', 'sent', 'retrying', 'deferred', 'failed',
	                     'expired', 'cancelled', 'unknown', 'suppressed')),
	attempts            INTEGER NOT NULL DEFAULT 0,
	last_error          TEXT,
	provider_message_id TEXT,
	msg_random          INTEGER NOT NULL,     -- fixed per delivery: Tencent's MsgRandom de-duplicates resends
	claimed_by          INTEGER,              -- runners.id while state = 'sending'
	send_at_ms          INTEGER,              -- provider-scheduled sends: the send time asked for
	batch_id            INTEGER,              -- the failed request whose members retry together
	UNIQUE (recipient_id, step)
);
INSERT INTO deliveries_new (id, campaign_id, recipient_id, step, due_at_ms, next_at_ms,
	expires_at_ms, state, attempts, last_error, provider_message_id, msg_random, claimed_by,
	send_at_ms, batch_id)
	SELECT id, campaign_id, recipient_id, step, due_at_ms, next_at_ms, expires_at_ms, state,
	attempts, last_error, provider_message_id, msg_random, claimed_by, send_at_ms, batch_id
	FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;

CREATE INDEX deliveries_ready ON deliveries (campaign_id, next_at_ms)
	WHERE state IN ('pending', 'retrying', 'deferred');
CREATE INDEX deliveries_sending ON deliveries (claimed_by) WHERE state = 'sending';
CREATE INDEX deliveries_campaign_state ON deliveries (campaign_id, state, due_at_ms);
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX deliveries_due ON deliveries (campaign_id, due_at_ms, id);
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
	WHEN OLD.state <> NEW.state BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
	INSERT INTO delivery_counts (campaign_id, state, n) VALUES (NEW.campaign_id, NEW.state, 1)
		ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
	UPDATE delivery_counts SET n = n - 1 WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
END;
