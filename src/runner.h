/*
 * runner: one `herald run` process as the database knows it. A runner holds the liveness
 * lock of its id (store_liveness_hold) for its whole life; the lock is dropped when the
 * process dies, however it dies, so a lock another process can take marks a dead runner
 * whose in-flight deliveries may be settled. A process that lives but stops renewing
 * its lease (hung, stopped with SIGSTOP, starved of the store) is treated as dead too once
 * its lease has run out (SPEC 5.5); it must then start no request it had claimed, which is
 * why the scheduler checks runner_lease_valid before every request leaves.
 */
#ifndef HERALD_RUNNER_H
#define HERALD_RUNNER_H

#include <stdint.h>

#include "store.h"

struct runner;

/* Registers this process as a runner of the database s was opened on, holding a lease of
   lease_ms. NULL with *err. */
struct runner *runner_start(struct store *s, int64_t lease_ms, char **err);
/* The runner's id (deliveries.claimed_by). */
int64_t runner_id(const struct runner *r);
/* Settles the in-flight deliveries of every dead runner and of every runner whose lease ran
   out. now_ms stamps the attempts (the scheduler's clock); leases are judged by the wall
   clock. Returns how many, or -1. */
int64_t runner_reap_dead(struct runner *r, struct store *s, int64_t now_ms, char **err);
/* Renews the lease. Returns 1 renewed, 0 lost (our claims were settled by another runner: a
   new registration has replaced us, so nothing claimed before may go), -1 store error. */
int runner_renew(struct runner *r, struct store *s, char **err);
/* Whether the lease is safely alive: renewed less than half a lease ago (monotonic clock),
   so no other runner can take our claims before a request that starts now has left. */
int runner_lease_valid(const struct runner *r);
/* Whether a renewal is due (a quarter of the lease since the last). */
int runner_renew_due(const struct runner *r);
/* Deregisters (if the store is given) and releases the lock. NULL ok. */
void runner_stop(struct runner *r, struct store *s);

#endif
