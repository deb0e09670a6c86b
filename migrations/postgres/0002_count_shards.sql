-- The per-campaign counts, split by writer: every connection that writes takes a shard of its
-- own for its session (herald.count_shard, set when it connects), and the trigger adds its
-- changes to that shard's rows only. Two nodes recording results of one campaign then never
-- wait for each other's count rows, and never hold two of them in opposite orders (the reason
-- every writer had to take one lock before). Readers sum the shards.

ALTER TABLE delivery_counts ADD COLUMN shard integer NOT NULL DEFAULT 0;
ALTER TABLE delivery_counts DROP CONSTRAINT delivery_counts_pkey;
ALTER TABLE delivery_counts ADD PRIMARY KEY (campaign_id, state, shard);

-- The writer's shard. A session that took none (all were taken, or psql, a tool) writes one
-- of its own past them, by its process id, unique among live sessions too. (Shard 0 holds
-- the rows from before this migration and those `herald copy` brings.)
CREATE FUNCTION herald_count_shard() RETURNS integer LANGUAGE sql STABLE AS $$
	SELECT coalesce(nullif(current_setting('herald.count_shard', true), '')::integer,
	                1000 + pg_backend_pid())
$$;

-- Deleted deliveries are counted only while their campaign stays: when the campaign goes, its
-- counts go with it (ON DELETE CASCADE), and a row added for it would name no campaign.
CREATE OR REPLACE FUNCTION herald_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' THEN
		INSERT INTO delivery_counts (campaign_id, state, shard, n)
		SELECT campaign_id, state, herald_count_shard(), sum(k) FROM (
			SELECT campaign_id, state, -count(*) AS k FROM gone GROUP BY 1, 2
			UNION ALL
			SELECT campaign_id, state, count(*) FROM came GROUP BY 1, 2) x
		GROUP BY 1, 2 HAVING sum(k) <> 0
		ORDER BY 1, 2
		ON CONFLICT (campaign_id, state, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
	ELSE
		INSERT INTO delivery_counts (campaign_id, state, shard, n)
		SELECT x.campaign_id, x.state, herald_count_shard(), -x.k
		FROM (SELECT campaign_id, state, count(*) AS k FROM gone GROUP BY 1, 2) x
		WHERE EXISTS (SELECT 1 FROM campaigns c WHERE c.id = x.campaign_id)
		ORDER BY 1, 2
		ON CONFLICT (campaign_id, state, shard) DO UPDATE SET n = delivery_counts.n + excluded.n;
	END IF;
	RETURN NULL;
END $$;
