/* runner: runner registration, liveness (the store's liveness locks) and leases. */
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "provider.h"
#include "runner.h"
#include "util.h"

struct runner {
	int64_t id;
	int64_t lease_ms;
	int64_t renewed_mono;         /* when the last successful renewal began (monotonic) */
};

/* Adds a runner row and takes its liveness lock, in one transaction so nobody sees the row
   unlocked. Sets r->id. 0 / -1. */
static int
runner_register(struct runner *r, struct store *s, char **err)
{
	int64_t mono = clock_mono_ms();

	if (store_begin(s, err) != 0)
		return -1;
	if (store_runner_add(s, (int)getpid(), clock_now_ms(), r->lease_ms, &r->id, err) != 0) {
		store_rollback(s);
		return -1;
	}
	if (store_liveness_hold(s, r->id, err) != 0) {
		store_rollback(s);
		return -1;
	}
	if (store_commit(s, err) != 0) {
		store_liveness_release(s, r->id);
		return -1;
	}
	r->renewed_mono = mono;
	return 0;
}

struct runner *
runner_start(struct store *s, int64_t lease_ms, char **err)
{
	struct runner *r = calloc(1, sizeof *r);

	if (!r) {
		util_err(err, "out of memory");
		return NULL;
	}
	r->lease_ms = lease_ms;
	if (runner_register(r, s, err) != 0) {
		free(r);
		return NULL;
	}
	return r;
}

int
runner_renew(struct runner *r, struct store *s, char **err)
{
	int64_t mono = clock_mono_ms(), old = r->id;
	int rc = store_runner_heartbeat(s, r->id, clock_now_ms(), err);

	if (rc == 1)
		r->renewed_mono = mono;
	if (rc != 0)
		return rc;
	/* Reaped: our old slot means nothing now. Come back as a new runner for new claims. */
	if (runner_register(r, s, err) != 0) {
		r->renewed_mono = INT64_MIN / 2;
		return -1;
	}
	/* Ids are never reused (AUTOINCREMENT), so old is not the byte we now hold; checked all
	   the same, as giving up our own lock would make us look dead while alive. */
	if (old != r->id)
		store_liveness_release(s, old);
	return 0;
}

int
runner_lease_valid(const struct runner *r)
{
	return clock_mono_ms() - r->renewed_mono < r->lease_ms / 2;
}

int
runner_renew_due(const struct runner *r)
{
	return clock_mono_ms() - r->renewed_mono >= r->lease_ms / 4;
}

int64_t
runner_id(const struct runner *r)
{
	return r->id;
}

static int
provider_dedups(const char *name)
{
	const struct provider_ops *ops = provider_find(name);

	return ops && ops->dedups;
}

int64_t
runner_reap_dead(struct runner *r, struct store *s, int64_t now_ms, char **err)
{
	struct store_runner *rows = NULL;
	int64_t total = 0, n, wall = clock_now_ms();
	size_t count, i;
	int locked;

	if (store_runner_list(s, &rows, &count, err) != 0)
		return -1;
	for (i = 0; i < count; i++) {
		int64_t id = rows[i].id;

		if (id == r->id)
			continue;
		if ((locked = store_liveness_try(s, id, err)) < 0) {
			free(rows);
			return -1;
		}
		if (!locked && rows[i].heartbeat_ms + rows[i].lease_ms >= wall)
			continue;  /* alive, and within its lease */
		/* Dead (its lock was free), or alive past its lease: the store rechecks the latter
		   under its write lock, where a renewal cannot slip in between. */
		n = store_runner_reap(s, id, provider_dedups, now_ms, locked ? 0 : wall, err);
		if (locked)
			store_liveness_release(s, id);
		if (n < 0) {
			free(rows);
			return -1;
		}
		if (n > 0)
			log_warn("runner %lld %s with %lld deliveries in flight; settled them",
			         (long long)id, locked ? "had stopped" : "let its lease run out",
			         (long long)n);
		total += n;
	}
	free(rows);
	return total;
}

void
runner_stop(struct runner *r, struct store *s)
{
	if (!r)
		return;
	if (s) {
		char *err = NULL;

		/* Reaping ourselves settles nothing when nothing is left in flight, and drops the row. */
		if (store_runner_reap(s, r->id, provider_dedups, clock_now_ms(), 0, &err) < 0) {
			log_warn("could not deregister runner %lld: %s", (long long)r->id, err);
			free(err);
		}
	}
	free(r);
}
