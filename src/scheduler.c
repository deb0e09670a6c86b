/*
 * scheduler: the loop of `herald run`. Tick, then sleep until the next deadline:
 *   claim what is due (one short write transaction) -> dispatch -> wait on the wire or the
 *   clock -> record what finished (one short write transaction per batch).
 * It sleeps exactly until the next due time, but at most a second, to notice other processes'
 * imports, pauses and cancels (PRAGMA data_version) within a second. Signals are taken by the
 * main thread with sigwait, so nothing here runs in a signal handler.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "dispatch.h"
#include "http.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "runner.h"
#include "scheduler.h"
#include "store.h"

/* How often to look for other processes' changes and for dead runners, in ms. */
#define DATA_CHECK_MS SECOND_MS
#define REAP_EVERY_MS (5 * SECOND_MS)
#define SUMMARY_EVERY_MS MINUTE_MS
/* How long SIGTERM waits for requests in flight before giving up on them. */
#define DRAIN_MAX_MS (30 * SECOND_MS)
/* How a failing store is retried: doubling from the first to the second. */
#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS (5 * SECOND_MS)

struct sched {
	struct config *cfg;           /* owned; replaced on SIGHUP */
	const struct scheduler_opts *opts;
	struct store *s;
	struct runner *runner;
	struct dispatch *d;
	struct http *h;
	struct results res;
	int64_t clock_base_ms;        /* --now: the virtual clock's start */
	int64_t mono_base;
	int64_t next_due_ms;          /* earliest next_at of a waiting delivery, INT64_MAX if none */
	int64_t data_version;
	atomic_int stop;              /* 1: stop claiming and drain; 2: stop now */
	atomic_int reload;            /* SIGHUP seen */
	pthread_t main_thread;
	int exit_code;
	/* A store that fails (locked past the busy wait, disk full): judged results wait in res
	   and are written again; no claim is made meanwhile. One log line per episode. */
	struct dispatch_counts before;  /* counts of the dispatches a SIGHUP replaced */
	struct dispatch_counts shown;   /* totals at the last periodic summary */
	int store_failing;
	int64_t store_retry_mono;     /* when to try the store again */
	int64_t store_backoff_ms;
};

static int64_t
sched_now(const struct sched *sc)
{
	if (sc->opts->now_ms)
		return sc->clock_base_ms + (clock_mono_ms() - sc->mono_base);
	return clock_now_ms();
}

static int
refresh_next_due(struct sched *sc)
{
	char *err = NULL;

	if (store_next_due(sc->s, &sc->next_due_ms, &err) != 0) {
		log_error("%s", err ? err : "cannot read the next due time");
		free(err);
		return -1;
	}
	return 0;
}

/* The store failed (what names the operation): back off, and say so once per episode. */
static void
store_trouble(struct sched *sc, const char *what, const char *err)
{
	if (!sc->store_failing)
		log_error("%s: %s; keeping what was judged in memory and trying again", what,
		          err ? err : "?");
	sc->store_failing = 1;
	sc->store_backoff_ms = sc->store_backoff_ms ? sc->store_backoff_ms * 2 : STORE_RETRY_MIN_MS;
	if (sc->store_backoff_ms > STORE_RETRY_MAX_MS)
		sc->store_backoff_ms = STORE_RETRY_MAX_MS;
	sc->store_retry_mono = clock_mono_ms() + sc->store_backoff_ms;
}

static void
store_recovered(struct sched *sc)
{
	if (sc->store_failing)
		log_info("the database answers again");
	sc->store_failing = 0;
	sc->store_backoff_ms = 0;
}

/* Whether the store may be tried now. */
static int
store_ready(const struct sched *sc)
{
	return !sc->store_failing || clock_mono_ms() >= sc->store_retry_mono;
}

/*
 * Records and clears what finished. A failure keeps every result in memory to be written again
 * (the transaction rolled back, so nothing was half written): an answer the provider gave must
 * never be lost to a busy or full disk, nor settled later as unknown.
 */
static int
flush(struct sched *sc)
{
	char *err = NULL;
	int rc;
	size_t i;

	if (!store_ready(sc))
		return -1;
	rc = store_record(sc->s, runner_id(sc->runner), sc->res.r, sc->res.n, sc->res.ev,
	                  sc->res.n_ev, &err);
	if (rc != 0) {
		store_trouble(sc, "cannot record results", err);
		free(err);
		return -1;
	}
	store_recovered(sc);
	/* A retry or deferral is due again later: wake for it (our own writes do not change
	   data_version, so nothing else would). */
	for (i = 0; i < sc->res.n; i++)
		if (sc->res.r[i].next_at_ms && sc->res.r[i].next_at_ms < sc->next_due_ms)
			sc->next_due_ms = sc->res.r[i].next_at_ms;
	/* A suspension holds back what waits on the channel; a recovery lets it go. */
	if (sc->res.n_ev)
		refresh_next_due(sc);
	results_clear(&sc->res);
	return 0;
}

/* What a claim settled by itself (expired, deferred by a rule, suppressed): the metrics and the
   run's summary count it like a request's outcome. */
static void
settled(void *arg, const char *channel, const char *state, int64_t n)
{
	struct dispatch *d = arg;

	metrics_delivery_state(channel, state, n);
	dispatch_count_settled(d, state, n);
}

/* Claims what is due and hands it to dispatch. Returns the number claimed, or -1. */
static int64_t
claim(struct sched *sc, int64_t now)
{
	struct store_claim_cb cb = dispatch_claim_cb(sc->d);
	struct store_job *jobs = NULL;
	size_t n = 0;
	char *err = NULL;

	dispatch_claim_begin(sc->d);
	cb.settled = settled;
	if (store_claim(sc->s, runner_id(sc->runner), now, &cb, &jobs, &n, &err) != 0) {
		store_trouble(sc, "cannot claim", err);
		free(err);
		return -1;
	}
	store_recovered(sc);
	if (n)
		log_debug("claimed %zu deliveries", n);
	dispatch_add(sc->d, jobs, n, now, &sc->res);
	return (int64_t)n;
}

/* Everything since start: the current dispatch's counts plus those it replaced. */
static void
totals(const struct sched *sc, struct dispatch_counts *t)
{
	dispatch_counts(sc->d, t);
	t->sent += sc->before.sent;
	t->failed += sc->before.failed;
	t->retried += sc->before.retried;
	t->deferred += sc->before.deferred;
	t->expired += sc->before.expired;
	t->unknown += sc->before.unknown;
	t->suspended += sc->before.suspended;
	t->suppressed += sc->before.suppressed;
}

/* SIGHUP: swap in a new channels file, only when nothing is in flight. */
static void
reload(struct sched *sc)
{
	struct config *cfg;
	struct dispatch *d;
	char *err = NULL;
	int missing;

	atomic_store(&sc->reload, 0);
	if (!(cfg = config_load(sc->opts->config_path, &missing, &err))) {
		log_error("SIGHUP: keeping the old configuration: %s", err ? err : "?");
		free(err);
		return;
	}
	if (!(d = dispatch_new(cfg, &err))) {
		log_error("SIGHUP: keeping the old configuration: %s", err ? err : "?");
		free(err);
		config_free(cfg);
		return;
	}
	{
		struct dispatch_counts t;  /* the summary keeps counting across the swap */

		totals(sc, &t);
		sc->before = t;
	}
	dispatch_free(sc->d);
	config_free(sc->cfg);
	sc->d = d;
	sc->cfg = cfg;
	log_info("SIGHUP: configuration reloaded (%d channels)", cfg->n_channels);
}

/*
 * Renews the runner's lease. A lease found lost means another runner settled our claims while
 * we were not looking (stopped, hung, or the store was held from us): nothing we claimed may
 * start now, and whatever is in flight will be recorded by nobody (the store refuses results
 * for rows we no longer own). Returns 1 when the lease is good.
 */
static int
renew(struct sched *sc)
{
	char *err = NULL;
	int64_t old = runner_id(sc->runner);
	size_t dropped;

	switch (runner_renew(sc->runner, sc->s, &err)) {
	case 1:
		store_recovered(sc);
		return 1;
	case 0:
		store_recovered(sc);
		dropped = dispatch_abandon(sc->d);
		log_error("lease lost: runner %lld was taken for dead and its claims settled by "
		          "another runner; dropped %zu deliveries not yet sent, now runner %lld",
		          (long long)old, dropped, (long long)runner_id(sc->runner));
		return 1;
	default:
		/* The store's own backoff and one line per episode: a database that is down must
		   not be asked again, and logged again, at every turn of the loop. */
		store_trouble(sc, "lease renewal", err);
		free(err);
		return 0;
	}
}

/* Whether our lease is surely ours, renewing it first if it is getting old: nothing is
   claimed, and no request leaves, otherwise (SPEC 5.5). */
static int
lease_ok(struct sched *sc)
{
	if (!runner_lease_valid(sc->runner) && store_ready(sc))
		renew(sc);
	return runner_lease_valid(sc->runner);
}

/* Dead runners are looked for every 5 s, or oftener under a short lease. */
static int64_t
reap_every(const struct sched *sc)
{
	return sc->cfg->lease_ms / 2 < REAP_EVERY_MS ? sc->cfg->lease_ms / 2 : REAP_EVERY_MS;
}

static void
chores(struct sched *sc, int64_t mono, int64_t *last_data, int64_t *last_reap)
{
	char *err = NULL;
	int64_t v;

	if (mono - *last_data >= DATA_CHECK_MS) {
		*last_data = mono;
		v = store_data_version(sc->s);
		if (v != sc->data_version) {
			sc->data_version = v;
			refresh_next_due(sc);
		}
	}
	if (runner_renew_due(sc->runner))
		renew(sc);
	if (mono - *last_reap >= reap_every(sc)) {
		*last_reap = mono;
		if (runner_reap_dead(sc->runner, sc->s, sched_now(sc), &err) < 0) {
			log_warn("reaping stopped runners: %s", err ? err : "?");
			free(err);
		} else {
			refresh_next_due(sc);
		}
	}
}

static void
summary(struct sched *sc, int64_t *last, int64_t mono, int final)
{
	struct dispatch_counts t, p = sc->shown;
	int64_t span = mono - *last;

	if (!final && span < SUMMARY_EVERY_MS)
		return;
	totals(sc, &t);
	if (final)
		log_info("stopped: %lld sent, %lld failed, %lld unknown, %lld deferred, %lld expired, "
		         "%lld suppressed, %lld held by suspended channels, %lld retries scheduled",
		         (long long)t.sent, (long long)t.failed, (long long)t.unknown,
		         (long long)t.deferred, (long long)t.expired, (long long)t.suppressed,
		         (long long)t.suspended, (long long)t.retried);
	else if (memcmp(&t, &p, sizeof t) != 0)
		log_info("last %llds: %lld sent (%.2f/s), %lld failed, %lld unknown, %lld deferred, "
		         "%lld expired, %lld suppressed, %lld held by suspended channels, "
		         "%lld retries scheduled, %zu busy",
		         (long long)(span / 1000), (long long)(t.sent - p.sent),
		         (double)(t.sent - p.sent) * 1000.0 / (double)(span ? span : 1),
		         (long long)(t.failed - p.failed), (long long)(t.unknown - p.unknown),
		         (long long)(t.deferred - p.deferred), (long long)(t.expired - p.expired),
		         (long long)(t.suppressed - p.suppressed), (long long)(t.suspended - p.suspended),
		         (long long)(t.retried - p.retried), dispatch_busy(sc->d));
	sc->shown = t;
	*last = mono;
}

/*
 * How long to sleep: until the next due time, a rate token, or the next data check. The data
 * check is a store call: while the store is failing it is as late as the store's retry time
 * (rate_wait then), and a deadline already past must not make the loop spin until then.
 */
static int
sleep_ms(struct sched *sc, int64_t now, int64_t rate_wait, int starved, int64_t last_data)
{
	int64_t t = sc->store_failing ? DATA_CHECK_MS
	                              : DATA_CHECK_MS - (clock_mono_ms() - last_data);

	if (!atomic_load(&sc->stop) && !starved && sc->next_due_ms != INT64_MAX)
		t = sc->next_due_ms - now < t ? sc->next_due_ms - now : t;
	if (rate_wait >= 0 && rate_wait < t)
		t = rate_wait;
	return t < 0 ? 0 : (int)t;
}

static void
loop(struct sched *sc)
{
	int64_t mono = clock_mono_ms(), last_data = mono, last_reap = mono, last_sum = mono;
	int64_t stop_at = -1, rate_wait, now, got;
	struct http_result hr;
	int starved = 0, pending, claimed;

	refresh_next_due(sc);
	for (;;) {
		metrics_heartbeat();
		now = sched_now(sc);
		pending = sc->res.n || sc->res.n_ev;
		/* Due rows that wait for capacity sleep on the wire, not the clock. No claim while
		   results wait to be written: the store is failing, and memory must stay bounded. */
		starved = claimed = 0;
		if (!atomic_load(&sc->stop) && !atomic_load(&sc->reload) && sc->next_due_ms <= now &&
		    !pending && store_ready(sc) && lease_ok(sc)) {
			starved = 1;
			if (dispatch_hungry(sc->d) && (got = claim(sc, now)) >= 0) {
				claimed = got > 0;
				refresh_next_due(sc);
				starved = sc->next_due_ms <= now;
				if (sc->opts->once && got == 0 && dispatch_busy(sc->d) == 0)
					break;
			}
		}
		/* Fencing (SPEC 5.5): no request leaves unless our lease is surely ours. */
		rate_wait = -1;
		if (dispatch_queued(sc->d) && !runner_lease_valid(sc->runner) && store_ready(sc))
			renew(sc);
		if (runner_lease_valid(sc->runner))
			rate_wait = dispatch_pump(sc->d, sc->h, now, &sc->res);
		else if (dispatch_queued(sc->d))
			rate_wait = 100;
		if (sc->res.n || sc->res.n_ev)
			flush(sc);
		/* A claim that found work and left room for more goes round again at once: nothing
		   would wake us otherwise (the network reports only finished requests). */
		if (claimed && starved && dispatch_hungry(sc->d))
			rate_wait = 0;
		pending = sc->res.n || sc->res.n_ev;
		if (dispatch_busy(sc->d) == 0 && !pending) {
			if (atomic_load(&sc->reload))
				reload(sc);
			if (atomic_load(&sc->stop) || (sc->opts->once && sc->next_due_ms > now))
				break;
		}
		if (atomic_load(&sc->stop) == 2)
			break;
		if (atomic_load(&sc->stop) && stop_at < 0)
			stop_at = clock_mono_ms();
		if (stop_at >= 0 && clock_mono_ms() - stop_at > DRAIN_MAX_MS) {
			log_warn("gave up waiting for %zu requests in flight", dispatch_busy(sc->d));
			break;
		}
		if (sc->store_failing && (rate_wait < 0 || sc->store_retry_mono - clock_mono_ms() < rate_wait))
			rate_wait = sc->store_retry_mono - clock_mono_ms();
		/* Due work that cannot be claimed yet (the store failing, the lease not renewed)
		   waits for the retry time, not the due time already past: no spinning. */
		http_wait(sc->h, sleep_ms(sc, now, rate_wait, starved || sc->store_failing ||
		                          !runner_lease_valid(sc->runner), last_data));
		while (http_next(sc->h, &hr)) {
			dispatch_finish(sc->d, &hr, sched_now(sc), &sc->res);
			free(hr.body);
		}
		if (sc->res.n || sc->res.n_ev)
			flush(sc);
		if (sc->res.oom && !atomic_load(&sc->stop)) {
			/* A result was lost to memory: its row stays 'sending' under a live runner
			   until this process goes. Stop, so the next start settles it as after a crash. */
			log_error("out of memory: a result could not be kept; stopping");
			sc->exit_code = 1;
			atomic_store(&sc->stop, 1);
		}
		mono = clock_mono_ms();
		if (store_ready(sc))
			chores(sc, mono, &last_data, &last_reap);
		summary(sc, &last_sum, mono, 0);
		notify_watchdog();
	}
	/* A stop that could not wait (a second signal, the drain's time up): what never left
	   goes back to waiting, rather than be settled as unknown by runner_stop. */
	if (dispatch_queued(sc->d)) {
		dispatch_requeue(sc->d, sched_now(sc), &sc->res);
		flush(sc);
	}
	if (sc->res.n || sc->res.n_ev) {
		/* Judged but never written: their rows stay 'sending' and the next start settles them
		   as after a crash. That is a failure to report, not a clean stop. */
		log_error("stopping with %zu results the database would not take",
		          sc->res.n + sc->res.n_ev);
		sc->exit_code = 1;
	}
	summary(sc, &last_sum, clock_mono_ms(), 1);
}

static void *
thread_main(void *arg)
{
	struct sched *sc = arg;

	loop(sc);
	/* Wake the main thread out of sigwait. */
	pthread_kill(sc->main_thread, SIGUSR1);
	return NULL;
}

/* Main thread: turn signals into flags until the scheduler thread is done. */
static void
wait_signals(struct sched *sc, const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			return;
		if (sig == SIGHUP) {
			atomic_store(&sc->reload, 1);
		} else if (atomic_load(&sc->stop)) {
			log_warn("second signal: stopping now; what is in flight is settled as after a crash");
			atomic_store(&sc->stop, 2);
		} else {
			log_info("signal %d: no new claims; finishing what is in flight", sig);
			notify_stopping();
			atomic_store(&sc->stop, 1);
		}
		http_wakeup(sc->h);
	}
}

static int
setup(struct sched *sc, char **err)
{
	int64_t n;

	if (!(sc->s = store_open(sc->opts->db_path, err)) || !(sc->runner = runner_start(sc->s, sc->cfg->lease_ms, err)))
		return -1;
	if (!(sc->d = dispatch_new(sc->cfg, err)) || !(sc->h = http_new()))
		return -1;
	sc->data_version = store_data_version(sc->s);
	if ((n = runner_reap_dead(sc->runner, sc->s, sched_now(sc), err)) < 0)
		return -1;
	log_info("runner %lld (pid %d) on %s: %d channels%s", (long long)runner_id(sc->runner),
	         (int)getpid(), store_path(sc->s), sc->cfg->n_channels,
	         sc->opts->once ? ", one pass" : "");
	return 0;
}

int
scheduler_run(struct config *cfg, const struct scheduler_opts *opts)
{
	struct sched sc = {0};
	struct httpd *httpd = NULL;
	sigset_t set, old;
	pthread_t th;
	char *err = NULL;

	sc.cfg = cfg;
	sc.opts = opts;
	sc.clock_base_ms = opts->now_ms;
	sc.mono_base = clock_mono_ms();
	sc.main_thread = pthread_self();
	if (http_global_init() != 0) {
		log_error("cannot initialise libcurl");
		config_free(cfg);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	if (setup(&sc, &err) != 0) {
		log_error("%s", err ? err : "cannot start");
		free(err);
		sc.exit_code = 1;
	} else if (opts->listen && !(httpd = httpd_start(opts->listen, opts->db_path, sc.cfg, &err))) {
		log_error("%s", err ? err : "cannot listen");
		free(err);
		sc.exit_code = 1;
	} else if (pthread_create(&th, NULL, thread_main, &sc) != 0) {
		log_error("cannot start the scheduler thread");
		sc.exit_code = 1;
	} else {
		notify_ready();
		wait_signals(&sc, &set);
		pthread_join(th, NULL);
	}
	httpd_stop(httpd);
	http_free(sc.h, dispatch_drop);
	dispatch_free(sc.d);
	runner_stop(sc.runner, sc.s);
	store_close(sc.s);
	config_free(sc.cfg);
	http_global_cleanup();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return sc.exit_code;
}
