-- Runner ids are never used twice. A runner whose lease ran out and was reaped registers again;
-- had it got its old id back, results of requests it claimed before could land on rows it has
-- claimed since, and the liveness lock byte it gives up would be the one it holds.
CREATE TABLE runners_new (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	pid           INTEGER NOT NULL,
	started_at_ms INTEGER NOT NULL,
	heartbeat_ms  INTEGER NOT NULL,           -- last lease renewal, wall clock
	lease_ms      INTEGER NOT NULL DEFAULT 60000
);
INSERT INTO runners_new (id, pid, started_at_ms, heartbeat_ms, lease_ms)
	SELECT id, pid, started_at_ms, heartbeat_ms, lease_ms FROM runners;
DROP TABLE runners;
ALTER TABLE runners_new RENAME TO runners;
