/*
 * notify: sd_notify's datagram protocol without libsystemd. The protocol is small and stable
 * (sd_notify(3), "Notes"): one AF_UNIX datagram per state change, to the path or abstract
 * name in $NOTIFY_SOCKET. Linking libsystemd for it would tie the build to that library.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "notify.h"
#include "util.h"

/* One warning is enough: the same socket fails the same way every time. */
static atomic_int warned;

int
notify_send(const char *state, char **err)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {0};
	socklen_t sa_len;
	size_t len;
	int fd = -1, rc = -1;

	if (!name || !*name)
		return 0;
	len = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || len >= sizeof sa.sun_path) {
		util_err(err, "NOTIFY_SOCKET \"%s\" is neither a socket path nor an abstract name", name);
		goto out;
	}
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	/* An abstract name has no terminating NUL and starts with one instead of '@'; its
	   length is exactly what is given, so trailing zeros would name another socket. */
	if (name[0] == '@') {
		sa.sun_path[0] = '\0';
		sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		util_err(err, "NOTIFY_SOCKET: socket: %s", strerror(errno));
		goto out;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len) < 0) {
		util_err(err, "NOTIFY_SOCKET %s: %s", name, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

static void
notify_or_warn(const char *state)
{
	char *err = NULL;

	if (notify_send(state, &err) != 0 && atomic_exchange(&warned, 1) == 0)
		log_warn("cannot notify the service manager: %s", err ? err : "?");
	free(err);
}

void
notify_ready(void)
{
	notify_or_warn("READY=1\nSTATUS=scheduling");
}

void
notify_stopping(void)
{
	notify_or_warn("STOPPING=1\nSTATUS=finishing what is in flight");
}

/*
 * The interval in ms at which to ping, or 0 for none. $WATCHDOG_PID names the process the
 * watchdog is meant for; a child that inherited the variables must stay quiet.
 */
static int64_t
watchdog_interval_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	int64_t us, p;

	if (!usec || util_parse_i64(usec, &us) != 0 || us <= 0)
		return 0;
	if (pid && *pid && (util_parse_i64(pid, &p) != 0 || p != (int64_t)getpid()))
		return 0;
	/* Half the timeout, as sd_watchdog_enabled(3) advises, so one late wake-up is not fatal. */
	return us / 2000 > 0 ? us / 2000 : 1;
}

void
notify_watchdog(void)
{
	/* Read once: the environment does not change under a running process. Only the
	   scheduler thread calls this, so plain statics are enough. */
	static int64_t interval = -1, last = -1;
	int64_t now = clock_mono_ms();

	if (interval < 0)
		interval = watchdog_interval_ms();
	if (interval == 0 || (last >= 0 && now - last < interval))
		return;
	last = now;
	notify_or_warn("WATCHDOG=1");
}
