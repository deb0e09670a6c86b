/*
 * dispatch: claimed jobs -> rendered provider items -> batched requests (flights) -> results.
 * A flight owns its jobs, the parsed recipient records and the rendered messages until its
 * answer is judged and its results are copied out.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "dispatch_int.h"
#include "metrics.h"
#include "render.h"
#include "results.h"
#include "sop.h"
#include "util.h"

struct dispatch *
dispatch_new(const struct config *cfg, char **err)
{
	struct dispatch *d = calloc(1, sizeof *d);
	int i;

	if (!d || !(d->chans = calloc((size_t)cfg->n_channels + 1, sizeof *d->chans))) {
		free(d);
		util_err(err, "out of memory");
		return NULL;
	}
	d->cfg = cfg;
	for (i = 0; i < cfg->n_channels; i++) {
		struct chan_state *cs = &d->chans[i];

		cs->ch = &cfg->channels[i];
		cs->tokens = cs->ch->rate_per_sec;
		cs->tokens_mono = clock_mono_ms();
		if (cs->ch->ops->open && cs->ch->ops->open(cs->ch, &cs->pstate, err) != 0) {
			dispatch_free(d);
			return NULL;
		}
	}
	if (getrandom(&d->rng, sizeof d->rng, 0) != sizeof d->rng || !d->rng)
		d->rng = (uint64_t)clock_mono_ms() | 1;
	return d;
}

void
dispatch_flight_free(struct flight *f)
{
	size_t i;

	if (!f)
		return;
	for (i = 0; i < f->n; i++) {
		free(f->items[i].message_text);
		free(f->items[i].message_id);
		cJSON_Delete(f->trees[2 * i]);
		cJSON_Delete(f->trees[2 * i + 1]);
	}
	store_jobs_free(f->jobs, f->n);
	free(f->items);
	free(f->trees);
	cJSON_free(f->batch_key);
	free(f);
}

void
dispatch_free(struct dispatch *d)
{
	int i;

	if (!d)
		return;
	while (d->queue_head) {
		struct flight *f = d->queue_head;

		d->queue_head = f->next;
		dispatch_flight_free(f);
	}
	for (i = 0; i < d->cfg->n_channels; i++)
		if (d->chans[i].pstate && d->chans[i].ch->ops->close)
			d->chans[i].ch->ops->close(d->chans[i].pstate);
	for (i = 0; i < d->n_zones; i++)
		tz_free(d->zones[i].tz);
	free(d->chans);
	free(d);
}

/* The channel a campaign sends through, if the config still has it for the same provider. */
struct chan_state *
dispatch_chan(struct dispatch *d, const struct store_campaign *c)
{
	int i;

	for (i = 0; i < d->cfg->n_channels; i++)
		if (strcmp(d->chans[i].ch->name, c->channel) == 0)
			return strcmp(d->chans[i].ch->ops->name, c->provider) == 0 ? &d->chans[i] : NULL;
	return NULL;
}

const struct tz *
dispatch_zone(struct dispatch *d, const char *name)
{
	int i;

	for (i = 0; i < d->n_zones; i++)
		if (strcmp(d->zones[i].name, name) == 0)
			return d->zones[i].tz;
	/* Full: the oldest goes (a zone is only used while a job is rendered, never kept). */
	if (d->n_zones == (int)(sizeof d->zones / sizeof d->zones[0])) {
		tz_free(d->zones[0].tz);
		memmove(&d->zones[0], &d->zones[1], (size_t)--d->n_zones * sizeof d->zones[0]);
	}
	snprintf(d->zones[d->n_zones].name, sizeof d->zones[0].name, "%s", name);
	d->zones[d->n_zones].tz = tz_load(name, NULL);
	return d->zones[d->n_zones++].tz;
}

void
dispatch_drop(void *flight)
{
	dispatch_flight_free(flight);
}

int
dispatch_hungry(const struct dispatch *d)
{
	int i;

	for (i = 0; i < d->cfg->n_channels; i++) {
		const struct chan_state *cs = &d->chans[i];
		int used = cs->in_flight + cs->queued;

		if (used == 0 || 2 * (cs->ch->max_in_flight - used) >= cs->ch->max_in_flight)
			return 1;
	}
	return 0;
}

size_t
dispatch_busy(const struct dispatch *d)
{
	return d->queued + d->in_flight;
}

void
dispatch_counts(const struct dispatch *d, struct dispatch_counts *out)
{
	out->sent = d->sent;
	out->failed = d->failed;
	out->retried = d->retried;
	out->deferred = d->deferred;
	out->expired = d->expired;
	out->unknown = d->unknown;
	out->suspended = d->suspended;
	out->suppressed = d->suppressed;
}

void
dispatch_count_settled(struct dispatch *d, const char *state, int64_t n)
{
	if (strcmp(state, "expired") == 0)
		d->expired += n;
	else if (strcmp(state, "deferred") == 0)
		d->deferred += n;
	else if (strcmp(state, "suppressed") == 0)
		d->suppressed += n;
}

/* ---- from jobs to flights ---------------------------------------------------------------- */

/* A result for a job that never reached the wire. */
static void
fail_job(struct dispatch *d, struct results *res, const struct store_job *j, const char *why,
         int64_t now_ms)
{
	struct store_result *r = results_add(res);
	const char *account = dispatch_account(d, j);

	if (!r)
		return;
	r->delivery_id = j->delivery_id;
	r->state = STATE_FAILED;
	r->started_at_ms = now_ms;
	r->message = results_keep(res, why);
	if (account) {
		r->limit_provider = results_keep(res, j->campaign.provider);
		r->limit_account = results_keep(res, account);
	}
	d->failed++;
	metrics_delivery(j->campaign.channel, METRICS_FAILED, 1);
}

static struct flight *
flight_new(struct chan_state *cs, size_t cap)
{
	struct flight *f = calloc(1, sizeof *f);

	if (!f)
		return NULL;
	f->jobs = calloc(cap, sizeof *f->jobs);
	f->items = calloc(cap, sizeof *f->items);
	f->trees = calloc(2 * cap, sizeof *f->trees);
	if (!f->jobs || !f->items || !f->trees) {
		free(f->jobs);
		free(f->items);
		free(f->trees);
		free(f);
		return NULL;
	}
	f->cs = cs;
	f->cap = cap;
	f->probe = cs->probe_claim;
	return f;
}

/* Parses a job's recipient and renders its message into the flight's next item. 0 / -1. */
static int
flight_push(struct dispatch *d, struct flight *f, struct store_job *j, int64_t now_ms, char **err)
{
	size_t i = f->n;
	struct provider_item *it = &f->items[i];
	cJSON *rec = cJSON_Parse(j->recipient_json), *msg = cJSON_Parse(j->message_json), *out = NULL;
	char *missing = NULL;
	const struct tz *z;
	int32_t day1;

	if (!rec || !msg) {
		util_err(err, "stored recipient or message is not valid JSON");
		goto fail;
	}
	if (!(out = render_json(msg, j->rid, cJSON_GetObjectItemCaseSensitive(rec, "vars"), &missing))) {
		util_err(err, "no value for {{%s}} and no default", missing ? missing : "?");
		free(missing);
		goto fail;
	}
	cJSON_Delete(msg);
	f->jobs[i] = *j;
	dispatch_item_from_job(it, &f->jobs[i]);
	it->recipient = f->trees[2 * i] = rec;
	it->message = f->trees[2 * i + 1] = out;
	if (j->campaign.start_date[0] && (z = dispatch_zone(d, j->campaign.timezone)) &&
	    sop_parse_date(j->campaign.start_date, &day1) == 0)
		it->campaign_day_now = sop_local_day(z, now_ms) - day1 + 1;
	f->n++;
	return 0;
fail:
	cJSON_Delete(rec);
	cJSON_Delete(msg);
	return -1;
}

static void
enqueue(struct dispatch *d, struct flight *f)
{
	f->next = NULL;
	if (d->queue_tail)
		d->queue_tail->next = f;
	else
		d->queue_head = f;
	d->queue_tail = f;
	d->queued++;
	f->cs->queued++;
}

/* An open batch job j may join: same channel and campaign, and for batching by message the
   same step and rendered message. */
static struct flight *
find_batch(struct flight **open, size_t n_open, const struct chan_state *cs,
           const struct store_job *j, const char *key)
{
	size_t i;

	for (i = 0; i < n_open; i++) {
		struct flight *f = open[i];

		/* A failed request comes back as itself: its members only with each other. */
		if (f->cs != cs || f->n >= f->cap || f->jobs[0].campaign_id != j->campaign_id ||
		    f->batch_id != j->batch_id)
			continue;
		if (cs->ch->ops->batching == PROVIDER_BY_CAMPAIGN ||
		    (f->jobs[0].step == j->step && key && f->batch_key && strcmp(f->batch_key, key) == 0))
			return f;
	}
	return NULL;
}

/* Places one job: into an open batch, or a new flight. Returns 0, or -1 if it failed. */
static int
place(struct dispatch *d, struct store_job *j, struct flight ***open, size_t *n_open,
      int64_t now_ms, struct results *out)
{
	struct chan_state *cs = dispatch_chan(d, &j->campaign);
	struct flight *f = NULL, *single, **grown;
	char *err = NULL, *key = NULL;

	if (!cs || !(single = flight_new(cs, (size_t)dispatch_per_request(cs)))) {
		fail_job(d, out, j, cs ? "out of memory" : "channel not in the configuration", now_ms);
		return -1;
	}
	if (flight_push(d, single, j, now_ms, &err) != 0) {
		fail_job(d, out, j, err, now_ms);
		free(err);
		dispatch_flight_free(single);
		return -1;
	}
	if (single->cap == 1) {
		enqueue(d, single);
		return 0;
	}
	if (cs->ch->ops->batching == PROVIDER_BY_MESSAGE)
		key = cJSON_PrintUnformatted(single->items[0].message);
	if ((f = find_batch(*open, *n_open, cs, j, key))) {
		/* Move the one item over; the shell goes. */
		struct provider_item *it = &f->items[f->n];

		f->jobs[f->n] = single->jobs[0];
		*it = single->items[0];
		/* The job moved: re-point the item at the strings embedded in it. */
		it->campaign_key = f->jobs[f->n].campaign.key;
		it->campaign_name = f->jobs[f->n].campaign.name;
		it->step_time = f->jobs[f->n].step_time;
		f->trees[2 * f->n] = single->trees[0];
		f->trees[2 * f->n + 1] = single->trees[1];
		f->n++;
		single->n = 0;
		dispatch_flight_free(single);
		cJSON_free(key);
		return 0;
	}
	single->batch_key = key;
	single->batch_id = j->batch_id;
	if (!(grown = realloc(*open, (*n_open + 1) * sizeof *grown))) {
		enqueue(d, single);
		return 0;
	}
	*open = grown;
	(*open)[(*n_open)++] = single;
	return 0;
}

void
dispatch_add(struct dispatch *d, struct store_job *jobs, size_t n, int64_t now_ms,
             struct results *out)
{
	struct flight **open = NULL;
	size_t n_open = 0, i;

	for (i = 0; i < n; i++) {
		if (place(d, &jobs[i], &open, &n_open, now_ms, out) != 0) {
			free(jobs[i].rid);
			free(jobs[i].recipient_json);
			free(jobs[i].message_json);
		}
	}
	for (i = 0; i < n_open; i++)
		enqueue(d, open[i]);
	free(open);
	free(jobs);  /* the strings moved into flights or were freed */
}

/* ---- onto the wire ----------------------------------------------------------------------- */

/* Whether the channel may start one more request now; refills its rate bucket. Sets *wait_ms
   to when a token comes if the rate is what stops it. */
static int
may_start(struct chan_state *cs, int64_t mono, int64_t *wait_ms)
{
	double rate = cs->ch->rate_per_sec;
	int64_t w;

	if (cs->in_flight >= cs->ch->max_in_flight)
		return 0;
	if (mono < cs->hold_until_mono) {
		w = cs->hold_until_mono - mono;
		if (*wait_ms < 0 || w < *wait_ms)
			*wait_ms = w;
		return 0;
	}
	if (rate <= 0)
		return 1;
	dispatch_refill(cs, mono);
	if (cs->tokens >= 1)
		return 1;
	w = (int64_t)ceil((1 - cs->tokens) * 1000.0 / rate);
	if (*wait_ms < 0 || w < *wait_ms)
		*wait_ms = w;
	return 0;
}

/* Every item of a flight failed before it left; results out, flight freed. */
static void
fail_flight(struct dispatch *d, struct flight *f, const char *why, int64_t now_ms,
            struct results *out)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		fail_job(d, out, &f->jobs[i], why, now_ms);
	dispatch_flight_free(f);
}

/* Every item of a flight turned out too late to go at all: expired, nothing spent. */
static void
expire_flight(struct dispatch *d, struct flight *f, const char *why, int64_t now_ms,
              struct results *out)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct store_result *r = results_add(out);
		const char *account = dispatch_account(d, &f->jobs[i]);

		if (!r)
			continue;
		r->delivery_id = f->jobs[i].delivery_id;
		r->state = STATE_EXPIRED;
		d->expired++;
		r->started_at_ms = now_ms;
		r->refund = 1;
		r->message = results_keep(out, why);
		if (account) {
			r->limit_provider = results_keep(out, f->jobs[i].campaign.provider);
			r->limit_account = results_keep(out, account);
		}
	}
	dispatch_flight_free(f);
}

static void
start(struct dispatch *d, struct http *h, struct flight *f, int64_t now_ms, struct results *out)
{
	struct chan_state *cs = f->cs;
	struct provider_request req = {0};
	char *err = NULL;
	size_t i, expired = 0;
	int rc;

	f->started_at_ms = now_ms;
	for (i = 0; i < f->n; i++)
		provider_verdict(&f->items[i], PROVIDER_PERMANENT, NULL, NULL);
	/* Signatures, timestamps and UserSigs are for the provider's real clock, even under --now. */
	rc = cs->ch->ops->build(cs->pstate, cs->ch, f->items, f->n, clock_now_ms(), &req, &err);
	if (rc == 0) {
		/* A provider that cannot de-duplicate gets a connection of its own (http.c). */
		req.no_resend = !cs->ch->ops->dedups;
		rc = http_start(h, &req, cs->ch->timeout_ms, cs->ch->connect_timeout_ms, f, &err);
	}
	if (rc != 0) {
		for (i = 0; i < f->n; i++)
			expired += f->items[i].outcome == PROVIDER_EXPIRED;
		if (expired == f->n)
			expire_flight(d, f, err ? err : "expired", now_ms, out);
		else
			fail_flight(d, f, err ? err : "cannot build the request", now_ms, out);
		free(err);
		provider_request_clear(&req);
		return;
	}
	provider_request_clear(&req);
	cs->in_flight++;
	if (cs->ch->rate_per_sec > 0)
		cs->tokens -= 1;
	d->in_flight++;
	for (i = 0; i < f->n; i++)
		metrics_request_started(cs->ch->name, i == 0, now_ms - f->jobs[i].due_at_ms);
}

int64_t
dispatch_pump(struct dispatch *d, struct http *h, int64_t now_ms, struct results *out)
{
	struct flight *f = d->queue_head, *prev = NULL, *next;
	int64_t mono = clock_mono_ms(), wait_ms = -1;

	for (; f; f = next) {
		next = f->next;
		if (!may_start(f->cs, mono, &wait_ms)) {
			prev = f;
			continue;
		}
		if (prev)
			prev->next = next;
		else
			d->queue_head = next;
		if (d->queue_tail == f)
			d->queue_tail = prev;
		d->queued--;
		f->cs->queued--;
		start(d, h, f, now_ms, out);
	}
	return wait_ms;
}

size_t
dispatch_abandon(struct dispatch *d)
{
	size_t n = 0;

	while (d->queue_head) {
		struct flight *f = d->queue_head;

		d->queue_head = f->next;
		f->cs->queued--;
		d->queued--;
		n += f->n;
		dispatch_flight_free(f);
	}
	d->queue_tail = NULL;
	return n;
}

void
dispatch_requeue(struct dispatch *d, int64_t now_ms, struct results *out)
{
	struct flight *f;
	size_t i;

	while ((f = d->queue_head)) {
		d->queue_head = f->next;
		f->cs->queued--;
		d->queued--;
		for (i = 0; i < f->n; i++) {
			struct store_result *r = results_add(out);
			const char *account = dispatch_account(d, &f->jobs[i]);

			if (!r)
				continue;
			r->delivery_id = f->jobs[i].delivery_id;
			r->state = STATE_PENDING;
			r->next_at_ms = now_ms;
			r->started_at_ms = now_ms;
			r->refund = 1;
			r->batch_id = f->batch_id;
			r->message = results_keep(out, "not sent: herald stopped before its request left");
			if (account) {
				r->limit_provider = results_keep(out, f->jobs[i].campaign.provider);
				r->limit_account = results_keep(out, account);
			}
		}
		dispatch_flight_free(f);
	}
	d->queue_tail = NULL;
}

int
dispatch_queued(const struct dispatch *d)
{
	return d->queue_head != NULL;
}
