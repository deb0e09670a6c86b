/*
 * runner: one `herald run` process as the database knows it. A runner holds an advisory
 * write lock on byte `id` of DB-runners.lock for its whole life; the kernel drops the lock
 * when the process dies, however it dies, so a lock another process can take marks a dead
 * runner whose in-flight deliveries may be settled. A live one's rows are never touched.
 */
#ifndef HERALD_RUNNER_H
#define HERALD_RUNNER_H

#include <stdint.h>

#include "store.h"

struct runner;

/* Registers this process as a runner of the database s was opened on. NULL with *err. */
struct runner *runner_start(struct store *s, char **err);
/* The runner's id (deliveries.claimed_by). */
int64_t runner_id(const struct runner *r);
/* Settles the in-flight deliveries of every dead runner. Returns how many, or -1. */
int64_t runner_reap_dead(struct runner *r, struct store *s, int64_t now_ms, char **err);
/* Deregisters (if the store is given) and releases the lock. NULL ok. */
void runner_stop(struct runner *r, struct store *s);

#endif
