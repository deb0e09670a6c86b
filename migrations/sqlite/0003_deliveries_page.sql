-- `deliveries KEY` without --state, a page at a time: an index walk from the cursor, in the
-- order pages are cut (due time, then id; both fixed once the scheduler owns a row), instead of
-- sorting every delivery of the campaign for each page.
CREATE INDEX deliveries_due ON deliveries (campaign_id, due_at_ms, id);
