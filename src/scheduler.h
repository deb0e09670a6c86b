/*
 * scheduler: `herald run`. A scheduler thread claims due deliveries, hands them to dispatch
 * and records results, sleeping until the next due time; the main thread only waits for
 * signals (SIGINT/SIGTERM: stop claiming, finish what is in flight, exit 0; SIGHUP: reload the
 * channels file once nothing is in flight).
 */
#ifndef HERALD_SCHEDULER_H
#define HERALD_SCHEDULER_H

#include <stdint.h>

#include "config.h"

struct scheduler_opts {
	const char *db_path;
	const char *config_path;      /* for SIGHUP reloads */
	int once;                     /* one pass: dispatch what is due, wait for results, exit */
	int64_t now_ms;               /* with once: the clock reads this at the start (0 = real) */
	const char *listen;           /* --listen ADDR:PORT: serve metrics there (NULL = no) */
};

/* Runs until done or signalled. Takes ownership of cfg. Returns the exit status. */
int scheduler_run(struct config *cfg, const struct scheduler_opts *opts);

#endif
