-- Imports in bounded transactions: a new campaign is written in batches under the state
-- 'importing', which no claim, query or status shows, and one short last transaction makes it
-- 'active'. A campaign left 'importing' by an import that died is removed by the next import.
-- SQLite cannot alter a CHECK, so the table is rebuilt (foreign keys are off while migrations
-- run, so dropping the old table cascades to nothing) under the same ids.
CREATE TABLE campaigns_new (
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
INSERT INTO campaigns_new (id, key, name, channel, provider, timezone, start_date, anchor,
	expire_after_ms, state, last_error, created_at_ms, updated_at_ms, quiet_hours)
	SELECT id, key, name, channel, provider, timezone, start_date, anchor, expire_after_ms,
	state, last_error, created_at_ms, updated_at_ms, quiet_hours FROM campaigns;
DROP TABLE campaigns;
ALTER TABLE campaigns_new RENAME TO campaigns;
