/*
 * bench-measure: runs a command and reports what it cost, for the benchmark driver.
 *
 *   bench-measure OUT CAP_MS COMMAND [ARG...]
 *
 * Writes "wall_s cpu_s maxrss_kb capped" to OUT once COMMAND has exited, and exits with its
 * status (128 + signal if a signal ended it). With CAP_MS > 0, COMMAND gets SIGTERM after
 * that many milliseconds (Herald's graceful stop) and capped is 1.
 *
 * Why a program and not the driver's own wait4(): a child's peak RSS includes the image it
 * was forked from, and a Python driver's is tens of MB; forked from this one, it is not.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct rusage ru;
	struct timespec cap;
	sigset_t chld;
	double t0, wall;
	long cap_ms;
	int status, capped = 0;
	pid_t pid;
	FILE *out;

	if (argc < 4) {
		fprintf(stderr, "usage: bench-measure OUT CAP_MS COMMAND [ARG...]\n");
		return 64;
	}
	cap_ms = strtol(argv[2], NULL, 10);
	/* SIGCHLD stays blocked so sigtimedwait can wait for it with the cap as its timeout. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	t0 = mono_s();
	if ((pid = fork()) < 0) {
		perror("bench-measure: fork");
		return 1;
	}
	if (pid == 0) {
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
		execvp(argv[3], argv + 3);
		perror(argv[3]);
		_exit(127);
	}
	if (cap_ms > 0) {
		cap.tv_sec = cap_ms / 1000;
		cap.tv_nsec = (cap_ms % 1000) * 1000000L;
		for (;;) {
			double left;

			if (sigtimedwait(&chld, NULL, &cap) == SIGCHLD)
				break;
			if (errno == EAGAIN) {
				kill(pid, SIGTERM);
				capped = 1;
				break;
			}
			/* EINTR: wait out the rest of the cap. */
			left = (double)cap_ms / 1000 - (mono_s() - t0);
			if (left <= 0)
				continue;
			cap.tv_sec = (time_t)left;
			cap.tv_nsec = (long)((left - (double)cap.tv_sec) * 1e9);
		}
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("bench-measure: wait4");
			return 1;
		}
	wall = mono_s() - t0;
	if (!(out = fopen(argv[1], "w"))) {
		perror(argv[1]);
		return 1;
	}
	fprintf(out, "%.6f %.6f %ld %d\n", wall,
	        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
	        ru.ru_maxrss, capped);
	if (fclose(out) != 0)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
