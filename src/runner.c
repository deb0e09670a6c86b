/* runner: runner registration and liveness through byte-range locks on a side file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "provider.h"
#include "runner.h"
#include "util.h"

struct runner {
	int64_t id;
	int fd;                       /* DB-runners.lock, open for the life of the runner */
};

/* Locks (or, with F_UNLCK, unlocks) byte id without waiting. 0 / -1 (errno EAGAIN/EACCES: held). */
static int
lock_byte(int fd, int64_t id, short type)
{
	struct flock fl = {0};

	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)id;
	fl.l_len = 1;
	return fcntl(fd, F_SETLK, &fl);
}

struct runner *
runner_start(struct store *s, char **err)
{
	struct runner *r = calloc(1, sizeof *r);
	char path[4096];

	if (!r) {
		util_err(err, "out of memory");
		return NULL;
	}
	snprintf(path, sizeof path, "%s-runners.lock", store_path(s));
	if ((r->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		util_err(err, "%s: %s", path, strerror(errno));
		free(r);
		return NULL;
	}
	/* Lock inside the transaction that creates the row, so nobody sees the row unlocked. */
	if (store_begin(s, err) != 0)
		goto fail;
	if (store_runner_add(s, (int)getpid(), clock_now_ms(), &r->id, err) != 0) {
		store_rollback(s);
		goto fail;
	}
	if (lock_byte(r->fd, r->id, F_WRLCK) != 0) {
		util_err(err, "%s: cannot lock runner slot %lld: %s", path, (long long)r->id,
		         strerror(errno));
		store_rollback(s);
		goto fail;
	}
	if (store_commit(s, err) != 0)
		goto fail;
	return r;
fail:
	close(r->fd);
	free(r);
	return NULL;
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
	int64_t *ids = NULL, total = 0, n;
	size_t count, i;

	if (store_runner_list(s, &ids, &count, err) != 0)
		return -1;
	for (i = 0; i < count; i++) {
		if (ids[i] == r->id)
			continue;
		if (lock_byte(r->fd, ids[i], F_WRLCK) != 0)
			continue;  /* held: that runner is alive */
		n = store_runner_reap(s, ids[i], provider_dedups, now_ms, err);
		lock_byte(r->fd, ids[i], F_UNLCK);
		if (n < 0) {
			free(ids);
			return -1;
		}
		if (n > 0)
			log_warn("runner %lld had stopped with %lld deliveries in flight; settled them",
			         (long long)ids[i], (long long)n);
		total += n;
	}
	free(ids);
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
		if (store_runner_reap(s, r->id, provider_dedups, clock_now_ms(), &err) < 0) {
			log_warn("could not deregister runner %lld: %s", (long long)r->id, err);
			free(err);
		}
	}
	close(r->fd);
	free(r);
}
