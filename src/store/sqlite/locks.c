/*
 * locks: what SQLite's own locks cannot say, kept in fcntl locks on files beside the
 * database, which the kernel drops when the process ends, however it ends.
 * DB-import.lock: one writing import at a time (byte 0). DB-runners.lock: byte N held by
 * runner N for its whole life, so a byte another process can take marks a dead runner.
 * Both files are 0600 and opened once per handle: fcntl locks belong to the process, and
 * closing any descriptor of the file would drop every lock the process holds on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqlite_int.h"
#include "util.h"

/* Opens DB-<what>.lock into *fd once. 0 / -1 with *err. */
static int
lock_file(struct sqlite_store *s, int *fd, const char *what, char **err)
{
	char path[4096];

	if (*fd >= 0)
		return 0;
	snprintf(path, sizeof path, "%s-%s.lock", s->path, what);
	if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return util_err(err, "%s: %s", path, strerror(errno));
	return 0;
}

/* Locks (F_WRLCK) or unlocks (F_UNLCK) byte `at`; wait: F_SETLKW, else F_SETLK. 0 / -1. */
static int
lock_byte(int fd, int64_t at, short type, int wait)
{
	struct flock fl = {0};

	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)at;
	fl.l_len = 1;
	return fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
}

int
sqlite_import_lock(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (lock_file(s, &s->import_fd, "import", err) != 0)
		return -1;
	while (lock_byte(s->import_fd, 0, F_WRLCK, 1) != 0)
		if (errno != EINTR)
			return util_err(err, "%s-import.lock: cannot lock: %s", s->path, strerror(errno));
	return 0;
}

void
sqlite_import_unlock(struct store *base)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (s->import_fd >= 0)
		lock_byte(s->import_fd, 0, F_UNLCK, 0);
}

int
sqlite_liveness_hold(struct store *base, int64_t runner_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (lock_file(s, &s->runners_fd, "runners", err) != 0)
		return -1;
	if (lock_byte(s->runners_fd, runner_id, F_WRLCK, 0) != 0)
		return util_err(err, "%s-runners.lock: cannot lock runner slot %lld: %s", s->path,
		                (long long)runner_id, strerror(errno));
	return 0;
}

int
sqlite_liveness_try(struct store *base, int64_t runner_id, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (lock_file(s, &s->runners_fd, "runners", err) != 0)
		return -1;
	if (lock_byte(s->runners_fd, runner_id, F_WRLCK, 0) == 0)
		return 1;
	if (errno == EAGAIN || errno == EACCES)
		return 0;
	return util_err(err, "%s-runners.lock: cannot test runner slot %lld: %s", s->path,
	                (long long)runner_id, strerror(errno));
}

void
sqlite_liveness_release(struct store *base, int64_t runner_id)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	if (s->runners_fd >= 0)
		lock_byte(s->runners_fd, runner_id, F_UNLCK, 0);
}

void
sqlite_locks_close(struct sqlite_store *s)
{
	if (s->import_fd >= 0)
		close(s->import_fd);
	if (s->runners_fd >= 0)
		close(s->runners_fd);
	s->import_fd = s->runners_fd = -1;
}
