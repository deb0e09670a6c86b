/* postgres/query.c: not written yet: every operation fails with a clear error. */
#include "postgres_int.h"
#include "util.h"

int
postgres_status(struct store *base, const char *key, int (*fn)(void *arg, const struct store_status *st), void *arg, char **err)
{
	(void)base;
	(void)key;
	(void)fn;
	(void)arg;
	(void)err;
	util_err(err, "PostgreSQL: status is not written yet");
	return -1;
}

int
postgres_deliveries(struct store *base, int64_t campaign_id, const char *state, const struct store_page *after, int64_t limit, int (*fn)(void *arg, const struct store_delivery_row *r), void *arg, struct store_page *next, int *more, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)state;
	(void)after;
	(void)limit;
	(void)fn;
	(void)arg;
	(void)next;
	(void)more;
	(void)err;
	util_err(err, "PostgreSQL: deliveries is not written yet");
	return -1;
}

int
postgres_attempts(struct store *base, int64_t campaign_id, const char *recipient, int (*fn)(void *arg, const struct store_attempt_row *r), void *arg, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)recipient;
	(void)fn;
	(void)arg;
	(void)err;
	util_err(err, "PostgreSQL: attempts is not written yet");
	return -1;
}

int
postgres_steps(struct store *base, int64_t campaign_id, int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)fn;
	(void)arg;
	(void)err;
	util_err(err, "PostgreSQL: steps is not written yet");
	return -1;
}

int64_t
postgres_recipient_count(struct store *base, int64_t campaign_id, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)err;
	util_err(err, "PostgreSQL: recipient_count is not written yet");
	return -1;
}

int
postgres_is_blank(struct store *base)
{
	(void)base;
	return 0;
}

int64_t
postgres_retry(struct store *base, int64_t campaign_id, const char *state, int64_t now_ms, char **err)
{
	(void)base;
	(void)campaign_id;
	(void)state;
	(void)now_ms;
	(void)err;
	util_err(err, "PostgreSQL: retry is not written yet");
	return -1;
}

int
postgres_suppress_put(struct store *base, const char *channel, const char *rid, int64_t now_ms, char **err)
{
	(void)base;
	(void)channel;
	(void)rid;
	(void)now_ms;
	(void)err;
	util_err(err, "PostgreSQL: suppress_put is not written yet");
	return -1;
}

int
postgres_suppress_delete(struct store *base, const char *channel, const char *rid, char **err)
{
	(void)base;
	(void)channel;
	(void)rid;
	(void)err;
	util_err(err, "PostgreSQL: suppress_delete is not written yet");
	return -1;
}

int
postgres_suppress_list(struct store *base, const char *channel, int (*fn)(void *arg, const struct store_suppression *r), void *arg, char **err)
{
	(void)base;
	(void)channel;
	(void)fn;
	(void)arg;
	(void)err;
	util_err(err, "PostgreSQL: suppress_list is not written yet");
	return -1;
}

int
postgres_channel_get(struct store *base, const char *name, struct store_channel *out, char **err)
{
	(void)base;
	(void)name;
	(void)out;
	(void)err;
	util_err(err, "PostgreSQL: channel_get is not written yet");
	return -1;
}

int
postgres_channel_set(struct store *base, const char *name, const char *state, const char *reason, int64_t now_ms, char **err)
{
	(void)base;
	(void)name;
	(void)state;
	(void)reason;
	(void)now_ms;
	(void)err;
	util_err(err, "PostgreSQL: channel_set is not written yet");
	return -1;
}

int
postgres_ping(struct store *base, char **err)
{
	(void)base;
	(void)err;
	util_err(err, "PostgreSQL: ping is not written yet");
	return -1;
}

int64_t
postgres_due_backlog(struct store *base, int64_t now_ms, char **err)
{
	(void)base;
	(void)now_ms;
	(void)err;
	util_err(err, "PostgreSQL: due_backlog is not written yet");
	return -1;
}

int
postgres_channel_list(struct store *base, int (*fn)(void *arg, const struct store_channel *ch), void *arg, char **err)
{
	(void)base;
	(void)fn;
	(void)arg;
	(void)err;
	util_err(err, "PostgreSQL: channel_list is not written yet");
	return -1;
}
