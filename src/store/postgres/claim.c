/* postgres/claim.c: not written yet: every operation fails with a clear error. */
#include "postgres_int.h"
#include "util.h"

int
postgres_claim(struct store *base, int64_t runner_id, int64_t now_ms, const struct store_claim_cb *cb, struct store_job **jobs, size_t *n_jobs, char **err)
{
	(void)base;
	(void)runner_id;
	(void)now_ms;
	(void)cb;
	(void)jobs;
	(void)n_jobs;
	(void)err;
	util_err(err, "PostgreSQL: claim is not written yet");
	return -1;
}

int
postgres_next_due(struct store *base, int64_t *next_at_ms, char **err)
{
	(void)base;
	(void)next_at_ms;
	(void)err;
	util_err(err, "PostgreSQL: next_due is not written yet");
	return -1;
}
