/* postgres/record.c: not written yet: every operation fails with a clear error. */
#include "postgres_int.h"
#include "util.h"

int
postgres_record(struct store *base, int64_t runner_id, const struct store_result *r, size_t n, const struct store_channel_event *ev, size_t n_ev, char **err)
{
	(void)base;
	(void)runner_id;
	(void)r;
	(void)n;
	(void)ev;
	(void)n_ev;
	(void)err;
	util_err(err, "PostgreSQL: record is not written yet");
	return -1;
}

int
postgres_runner_add(struct store *base, int pid, int64_t now_ms, int64_t lease_ms, int64_t *id, char **err)
{
	(void)base;
	(void)pid;
	(void)now_ms;
	(void)lease_ms;
	(void)id;
	(void)err;
	util_err(err, "PostgreSQL: runner_add is not written yet");
	return -1;
}

int
postgres_runner_heartbeat(struct store *base, int64_t id, int64_t now_ms, char **err)
{
	(void)base;
	(void)id;
	(void)now_ms;
	(void)err;
	util_err(err, "PostgreSQL: runner_heartbeat is not written yet");
	return -1;
}

int
postgres_runner_list(struct store *base, struct store_runner **rows, size_t *n, char **err)
{
	(void)base;
	(void)rows;
	(void)n;
	(void)err;
	util_err(err, "PostgreSQL: runner_list is not written yet");
	return -1;
}

int64_t
postgres_runner_reap(struct store *base, int64_t id, int (*dedups)(const char *provider), int64_t now_ms, int64_t stale_before_ms, char **err)
{
	(void)base;
	(void)id;
	(void)dedups;
	(void)now_ms;
	(void)stale_before_ms;
	(void)err;
	util_err(err, "PostgreSQL: runner_reap is not written yet");
	return -1;
}
