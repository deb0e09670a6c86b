-- SQLite evaluates `x IN (a, b, c)` over a list of more than two constants by building a
-- temporary b-tree, each time: the state CHECK of deliveries, the outcome CHECK of attempts
-- and the predicate of deliveries_ready cost one or two of them for every row the scheduler
-- writes, half of what a result costs. The same rules as ORs of equalities are a few
-- comparisons. The tables' text is rewritten in place, SQLite's documented way to change a
-- CHECK (the rows on disk are unchanged and already satisfy it); the index is rebuilt, which
-- also tells every other connection to reload the schema.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = 'CREATE TABLE "deliveries" (
	id                  INTEGER PRIMARY KEY,
	campaign_id         INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	recipient_id        INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,
	step                INTEGER NOT NULL,     -- steps.position
	due_at_ms           INTEGER NOT NULL,
	next_at_ms          INTEGER NOT NULL,
	expires_at_ms       INTEGER NOT NULL,
	state               TEXT NOT NULL DEFAULT ''pending'' CHECK (
	                    state = ''pending'' OR state = ''sending'' OR state = ''sent'' OR
	                    state = ''retrying'' OR state = ''deferred'' OR state = ''failed'' OR
	                    state = ''expired'' OR state = ''cancelled'' OR state = ''unknown'' OR
	                    state = ''suppressed''),
	attempts            INTEGER NOT NULL DEFAULT 0,
	last_error          TEXT,
	provider_message_id TEXT,
	msg_random          INTEGER NOT NULL,     -- fixed per delivery: Tencent''s MsgRandom de-duplicates resends
	claimed_by          INTEGER,              -- runners.id while state = ''sending''
	send_at_ms          INTEGER,              -- provider-scheduled sends: the send time asked for
	batch_id            INTEGER,              -- the failed request whose members retry together
	UNIQUE (recipient_id, step)
)' WHERE type = 'table' AND name = 'deliveries';
UPDATE sqlite_schema SET sql = 'CREATE TABLE attempts (
	id               INTEGER PRIMARY KEY,
	campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
	delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
	started_at_ms    INTEGER NOT NULL,
	duration_ms      INTEGER,                 -- NULL when the outcome is unknown
	http_status      INTEGER,                 -- NULL when no HTTP answer came
	provider_code    TEXT,
	provider_message TEXT,
	outcome          TEXT NOT NULL CHECK (
	                 outcome = ''sent'' OR outcome = ''retrying'' OR outcome = ''deferred'' OR
	                 outcome = ''failed'' OR outcome = ''unknown'' OR outcome = ''requeued'')
)' WHERE type = 'table' AND name = 'attempts';
PRAGMA writable_schema = RESET;
DROP INDEX deliveries_ready;
CREATE INDEX deliveries_ready ON deliveries (campaign_id, next_at_ms)
	WHERE state = 'pending' OR state = 'retrying' OR state = 'deferred';
