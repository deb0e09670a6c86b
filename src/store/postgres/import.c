/* postgres/import.c: not written yet: every operation fails with a clear error. */
#include "postgres_int.h"
#include "util.h"

int
postgres_stage_begin(struct store *base, char **err)
{
	(void)base;
	(void)err;
	util_err(err, "PostgreSQL: stage_begin is not written yet");
	return -1;
}

int
postgres_stage_flush(struct store *base, char **err)
{
	(void)base;
	(void)err;
	util_err(err, "PostgreSQL: stage_flush is not written yet");
	return -1;
}

int
postgres_stage_end(struct store *base, char **err)
{
	(void)base;
	(void)err;
	util_err(err, "PostgreSQL: stage_end is not written yet");
	return -1;
}

int
postgres_stage_recipient(struct store *base, const char *rid, const char *data_json, int64_t *seq, char **err)
{
	(void)base;
	(void)rid;
	(void)data_json;
	(void)seq;
	(void)err;
	util_err(err, "PostgreSQL: stage_recipient is not written yet");
	return -1;
}

int
postgres_stage_delivery(struct store *base, int64_t seq, int step, int64_t due_at_ms, int64_t next_at_ms, int64_t expires_at_ms, uint32_t msg_random, char **err)
{
	(void)base;
	(void)seq;
	(void)step;
	(void)due_at_ms;
	(void)next_at_ms;
	(void)expires_at_ms;
	(void)msg_random;
	(void)err;
	util_err(err, "PostgreSQL: stage_delivery is not written yet");
	return -1;
}

int
postgres_import_plan(struct store *base, int64_t campaign_id, struct store_import_plan *p, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)p;
	(void)err;
	util_err(err, "PostgreSQL: import_plan is not written yet");
	return -1;
}

int
postgres_import_apply(struct store *base, int64_t campaign_id, struct store_import_plan *done, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)done;
	(void)err;
	util_err(err, "PostgreSQL: import_apply is not written yet");
	return -1;
}

int
postgres_import_hide(struct store *base, int64_t campaign_id, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)err;
	util_err(err, "PostgreSQL: import_hide is not written yet");
	return -1;
}

int64_t
postgres_import_batch(struct store *base, int64_t campaign_id, int64_t from_seq, int64_t rows, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)from_seq;
	(void)rows;
	(void)err;
	util_err(err, "PostgreSQL: import_batch is not written yet");
	return -1;
}

int
postgres_import_reveal(struct store *base, int64_t campaign_id, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)err;
	util_err(err, "PostgreSQL: import_reveal is not written yet");
	return -1;
}

int64_t
postgres_import_sweep(struct store *base, int64_t only_id, char **err)
{
	(void)base;
	(void)only_id;
	(void)err;
	util_err(err, "PostgreSQL: import_sweep is not written yet");
	return -1;
}
