-- Exactly once at the edges: batches retried whole, channel suspension, runner leases.

-- A request that carried several deliveries (an APIUSB BulkSend, a Tanmarket SOP) and must be
-- retried as the same request: every member of a failed batch carries the batch's id (the
-- smallest delivery id in it), and a claim that takes one member takes them all.
ALTER TABLE deliveries ADD COLUMN batch_id INTEGER;
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL;

-- The state of a channel (a provider account) as every process sees it. No row = active.
--   paused     an operator held it (`herald pause --channel`)
--   suspended  a credential or account error, or suspend_after consecutive failed requests;
--              one probe (a real delivery) goes at next_probe_at_ms, the interval doubling
CREATE TABLE channels (
	name              TEXT PRIMARY KEY,       -- the channel's key in the config file
	state             TEXT NOT NULL CHECK (state IN ('active', 'paused', 'suspended')),
	reason            TEXT,                   -- why it is paused or suspended
	since_ms          INTEGER NOT NULL,       -- when it entered this state
	next_probe_at_ms  INTEGER,                -- suspended: when the next probe may go
	probe_interval_ms INTEGER                 -- suspended: the wait after the next probe
) WITHOUT ROWID;

-- A runner that has not renewed its lease (heartbeat_ms) within lease_ms is treated as dead
-- even while its process holds its lock: hung or stopped, it must not keep its claims.
ALTER TABLE runners ADD COLUMN lease_ms INTEGER NOT NULL DEFAULT 60000;
