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
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "render.h"
#include "sop.h"
#include "util.h"

/* How many deliveries one campaign-wide request (a Tanmarket SOP) may carry at most. */
#define DISPATCH_CAMPAIGN_BATCH_MAX 100000

struct chan_state {
	const struct channel *ch;
	void *pstate;                 /* the provider's open() state */
	int in_flight;                /* requests on the wire */
	int queued;                   /* requests waiting in the queue */
	int claiming;                 /* requests' worth taken by the claim under way */
	int probe_claim;              /* the claim under way took this suspended channel's probe */
	int failures;                 /* consecutive failed requests (suspend_after) */
	int64_t hold_until_mono;      /* a Retry-After: no request starts before this */
	double tokens;                /* rate_per_sec bucket */
	int64_t tokens_mono;
};

struct flight {
	struct flight *next;          /* the channel queue, then nothing once started */
	struct chan_state *cs;
	struct store_job *jobs;       /* n, owned */
	struct provider_item *items;  /* n */
	cJSON **trees;                /* 2n: recipient record and rendered message per item */
	size_t n;
	size_t cap;                   /* room in jobs, items and trees */
	char *batch_key;              /* batching by message: the rendered message (owned) */
	int64_t batch_id;             /* the failed request these jobs retry together, 0 = none */
	int probe;                    /* the one request a suspended channel tries */
	int64_t started_at_ms;
};

struct zone {
	char name[64];
	struct tz *tz;
};

struct dispatch {
	const struct config *cfg;
	struct chan_state *chans;     /* cfg->n_channels */
	struct flight *queue_head, *queue_tail;
	size_t queued, in_flight;
	struct zone zones[16];        /* time zones of the campaigns seen, loaded once */
	int n_zones;
	uint64_t rng;
	int64_t warned_mono;          /* last "channel not in the configuration" warning */
	int64_t sent, failed, retried, unknown, deferred, suspended, expired;
};

static char *
keep(struct results *res, const char *s)
{
	char *copy;

	if (!s)
		return NULL;
	if (res->n_strs == res->cap_strs) {
		size_t na = res->cap_strs ? res->cap_strs * 2 : 64;
		char **p = realloc(res->strs, na * sizeof *p);

		if (!p) {
			res->oom = 1;
			return NULL;
		}
		res->strs = p;
		res->cap_strs = na;
	}
	if (!(copy = strdup(s))) {
		res->oom = 1;
		return NULL;
	}
	res->strs[res->n_strs++] = copy;
	return copy;
}

static struct store_result *
result_new(struct results *res)
{
	if (res->n == res->cap) {
		size_t na = res->cap ? res->cap * 2 : 64;
		struct store_result *p = realloc(res->r, na * sizeof *p);

		if (!p) {
			res->oom = 1;
			return NULL;
		}
		res->r = p;
		res->cap = na;
	}
	memset(&res->r[res->n], 0, sizeof res->r[0]);
	return &res->r[res->n++];
}

void
results_clear(struct results *res)
{
	size_t i;
	int oom;

	for (i = 0; i < res->n_strs; i++)
		free(res->strs[i]);
	free(res->strs);
	free(res->r);
	free(res->ev);
	oom = res->oom;  /* outlives the results: it is the process's to act on */
	memset(res, 0, sizeof *res);
	res->oom = oom;
}

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

static void
flight_free(struct flight *f)
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
		flight_free(f);
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
static struct chan_state *
chan_for(struct dispatch *d, const struct store_campaign *c)
{
	int i;

	for (i = 0; i < d->cfg->n_channels; i++)
		if (strcmp(d->chans[i].ch->name, c->channel) == 0)
			return strcmp(d->chans[i].ch->ops->name, c->provider) == 0 ? &d->chans[i] : NULL;
	return NULL;
}

static const struct tz *
zone_for(struct dispatch *d, const char *name)
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

/* ---- claim callbacks ------------------------------------------------------------------- */

/* Items one request of this channel carries. */
static int64_t
per_request(const struct chan_state *cs)
{
	switch (cs->ch->ops->batching) {
	case PROVIDER_BY_MESSAGE:
		return config_int(cs->ch, "batch_size", 100);
	case PROVIDER_BY_CAMPAIGN:
		return DISPATCH_CAMPAIGN_BATCH_MAX;
	case PROVIDER_SINGLE:
		break;
	}
	return 1;
}

/* Refills a channel's rate bucket to now. */
static void
refill(struct chan_state *cs, int64_t mono)
{
	double rate = cs->ch->rate_per_sec, burst = rate < 1 ? 1 : rate;

	cs->tokens += (double)(mono - cs->tokens_mono) * rate / 1000.0;
	cs->tokens_mono = mono;
	if (cs->tokens > burst)
		cs->tokens = burst;
}

/*
 * Campaigns sharing a channel share its slots, and requests still queued hold theirs: a claim
 * takes no more than the wire can carry now, so nothing sits 'sending' that has not left
 * (after a crash it would count as unknown). Under a rate limit the slots are the tokens in
 * the bucket, but at least one, so the queue always has the next request ready.
 */
static int64_t
cb_capacity(void *arg, const struct store_campaign *c)
{
	struct dispatch *d = arg;
	struct chan_state *cs = chan_for(d, c);
	int64_t slots, now = clock_mono_ms();

	if (!cs) {
		if (now - d->warned_mono > MINUTE_MS) {
			d->warned_mono = now;
			log_warn("campaign %s: channel \"%s\" (%s) is not in the configuration; holding "
			         "its deliveries", c->key, c->channel, c->provider);
		}
		return 0;
	}
	if (now < cs->hold_until_mono)
		return 0;
	slots = cs->ch->max_in_flight - cs->in_flight;
	if (cs->ch->rate_per_sec > 0) {
		refill(cs, now);
		if ((int64_t)cs->tokens < slots)
			slots = cs->tokens < 1 ? 1 : (int64_t)cs->tokens;
	}
	slots -= cs->queued + cs->claiming;
	return slots > 0 ? slots * per_request(cs) : 0;
}

/* A suspended channel's probe: one request, and only when nothing of it is on the wire. */
static int64_t
cb_probe(void *arg, const struct store_campaign *c)
{
	struct chan_state *cs = chan_for(arg, c);

	if (!cs || cs->in_flight + cs->queued + cs->claiming > 0 ||
	    clock_mono_ms() < cs->hold_until_mono)
		return 0;
	cs->probe_claim = 1;
	return per_request(cs);
}

static void
cb_claimed(void *arg, const struct store_campaign *c, size_t n)
{
	struct chan_state *cs = chan_for(arg, c);
	int64_t per;

	if (cs && n) {
		per = per_request(cs);
		cs->claiming += (int)(((int64_t)n + per - 1) / per);
	}
}

/* The provider_item view of a job, enough for limit_account() and admit(). */
static void
item_from_job(struct provider_item *it, const struct store_job *j)
{
	memset(it, 0, sizeof *it);
	it->delivery_id = j->delivery_id;
	it->recipient_id = j->rid;
	it->campaign_key = j->campaign.key;
	it->campaign_name = j->campaign.name;
	it->step = j->step;
	it->step_day = j->step_day;
	it->step_time = j->step_time;
	it->due_at_ms = j->due_at_ms;
	it->send_at_ms = j->send_at_ms;
	it->expires_at_ms = j->expires_at_ms;
	it->msg_random = j->msg_random;
}

static const char *
cb_account(void *arg, const struct store_job *j)
{
	struct dispatch *d = arg;
	struct chan_state *cs = chan_for(d, &j->campaign);
	struct provider_item it;

	if (!cs || !cs->ch->ops->limit_account)
		return NULL;
	item_from_job(&it, j);
	return cs->ch->ops->limit_account(&it);
}

static enum store_admit
cb_admit(void *arg, const struct store_job *j, const struct store_limit *l, int64_t now_ms,
         int64_t *send_at_ms, int64_t *defer_until_ms)
{
	struct dispatch *d = arg;
	struct chan_state *cs = chan_for(d, &j->campaign);
	struct provider_limit pl = {l->last_call_ms, l->last_send_at_ms, l->reserved};
	struct provider_item it;

	item_from_job(&it, j);
	switch (cs->ch->ops->admit(cs->ch, &it, &pl, now_ms, send_at_ms, defer_until_ms)) {
	case PROVIDER_ADMIT:
		return STORE_ADMIT;
	case PROVIDER_DEFER:
		return STORE_DEFER;
	case PROVIDER_WAIT:
		break;
	}
	return STORE_WAIT;
}

/* The zone a recipient's quiet hours are local to: its own timezone member, else the
   campaign's. Only parsed when quiet hours apply, so most claims never parse a record. */
static const struct tz *
audience_zone(struct dispatch *d, const struct store_job *j)
{
	const cJSON *v;
	cJSON *rec;
	char name[64] = "";

	if (strstr(j->recipient_json, "\"timezone\"") && (rec = cJSON_Parse(j->recipient_json))) {
		v = cJSON_GetObjectItemCaseSensitive(rec, "timezone");
		if (cJSON_IsString(v))
			snprintf(name, sizeof name, "%s", v->valuestring);
		cJSON_Delete(rec);
	}
	return zone_for(d, name[0] ? name : j->campaign.timezone);
}

/* The audience rules of a job (SPEC 5.12): its channel's cap, and the quiet hours in force
   (the campaign's own, else the channel's) if now is inside them. */
static void
cb_audience(void *arg, const struct store_job *j, int64_t now_ms, struct store_audience *out)
{
	struct dispatch *d = arg;
	struct chan_state *cs = chan_for(d, &j->campaign);
	int from, to, fh, fm, th, tm;
	const struct tz *z;

	if (!cs)
		return;
	out->cap_max = cs->ch->cap_max;
	out->cap_per_ms = cs->ch->cap_per_ms;
	/* A provider-scheduled call sends nothing now: its send time, the step's, was held to
	   the quiet hours at import. */
	if (cs->ch->ops->schedule)
		return;
	from = cs->ch->quiet_from;
	to = cs->ch->quiet_to;
	if (j->campaign.quiet_hours[0] &&
	    sscanf(j->campaign.quiet_hours, "%d:%d-%d:%d", &fh, &fm, &th, &tm) == 4) {
		from = fh * 60 + fm;
		to = th * 60 + tm;
	}
	if (from < 0 || !(z = audience_zone(d, j)))
		return;
	out->quiet_until_ms = sop_quiet_end(z, from, to, now_ms);
	snprintf(out->quiet_why, sizeof out->quiet_why, "%02d:%02d-%02d:%02d %s", from / 60,
	         from % 60, to / 60, to % 60, tz_name(z));
}

struct store_claim_cb
dispatch_claim_cb(struct dispatch *d)
{
	struct store_claim_cb cb = {d, cb_capacity, cb_claimed, cb_account, cb_admit, cb_probe,
	                            cb_audience};

	return cb;
}

void
dispatch_claim_begin(struct dispatch *d)
{
	int i;

	for (i = 0; i < d->cfg->n_channels; i++) {
		d->chans[i].claiming = 0;
		d->chans[i].probe_claim = 0;
	}
}

void
dispatch_drop(void *flight)
{
	flight_free(flight);
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
}

/* ---- from jobs to flights ---------------------------------------------------------------- */

/* A result for a job that never reached the wire. */
static void
fail_job(struct dispatch *d, struct results *res, const struct store_job *j, const char *why,
         int64_t now_ms)
{
	struct store_result *r = result_new(res);
	const char *account = cb_account(d, j);

	if (!r)
		return;
	r->delivery_id = j->delivery_id;
	r->state = STATE_FAILED;
	r->started_at_ms = now_ms;
	r->message = keep(res, why);
	if (account) {
		r->limit_provider = keep(res, j->campaign.provider);
		r->limit_account = keep(res, account);
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
	item_from_job(it, &f->jobs[i]);
	it->recipient = f->trees[2 * i] = rec;
	it->message = f->trees[2 * i + 1] = out;
	if (j->campaign.start_date[0] && (z = zone_for(d, j->campaign.timezone)) &&
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
	struct chan_state *cs = chan_for(d, &j->campaign);
	struct flight *f = NULL, *single, **grown;
	char *err = NULL, *key = NULL;

	if (!cs || !(single = flight_new(cs, (size_t)per_request(cs)))) {
		fail_job(d, out, j, cs ? "out of memory" : "channel not in the configuration", now_ms);
		return -1;
	}
	if (flight_push(d, single, j, now_ms, &err) != 0) {
		fail_job(d, out, j, err, now_ms);
		free(err);
		flight_free(single);
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
		flight_free(single);
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
	refill(cs, mono);
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
	flight_free(f);
}

/* Every item of a flight turned out too late to go at all: expired, nothing spent. */
static void
expire_flight(struct dispatch *d, struct flight *f, const char *why, int64_t now_ms,
              struct results *out)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct store_result *r = result_new(out);
		const char *account = cb_account(d, &f->jobs[i]);

		if (!r)
			continue;
		r->delivery_id = f->jobs[i].delivery_id;
		r->state = STATE_EXPIRED;
		d->expired++;
		r->started_at_ms = now_ms;
		r->refund = 1;
		r->message = keep(out, why);
		if (account) {
			r->limit_provider = keep(out, f->jobs[i].campaign.provider);
			r->limit_account = keep(out, account);
		}
	}
	flight_free(f);
}

static void
start(struct dispatch *d, struct http *h, struct flight *f, int64_t now_ms, struct results *out)
{
	struct chan_state *cs = f->cs;
	struct provider_request req = {0};
	char *err = NULL;
	size_t i, expired = 0;

	f->started_at_ms = now_ms;
	for (i = 0; i < f->n; i++)
		provider_verdict(&f->items[i], PROVIDER_PERMANENT, NULL, NULL);
	/* Signatures, timestamps and UserSigs are for the provider's real clock, even under --now. */
	if (cs->ch->ops->build(cs->pstate, cs->ch, f->items, f->n, clock_now_ms(), &req, &err) != 0 ||
	    http_start(h, &req, cs->ch->timeout_ms, cs->ch->connect_timeout_ms, f, &err) != 0) {
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

/* ---- answers ----------------------------------------------------------------------------- */

static int64_t
backoff_ms(struct dispatch *d, int attempts)
{
	double delay = (double)d->cfg->backoff_base_ms * pow(2, attempts > 1 ? attempts - 1 : 0);

	if (delay > (double)d->cfg->backoff_max_ms)
		delay = (double)d->cfg->backoff_max_ms;
	/* Jitter: anywhere in [delay/2, delay], so a burst of failures does not retry in lockstep. */
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 7;
	d->rng ^= d->rng << 17;
	return (int64_t)(delay * (0.5 + 0.5 * (double)(d->rng >> 11) / 9007199254740992.0));
}

/* Appends a channel event (strings kept in out). 0 / -1. */
static int
channel_event(struct results *out, const struct chan_state *cs, int suspend, const char *reason,
              int64_t now_ms)
{
	struct store_channel_event *e;

	if (out->n_ev == out->cap_ev) {
		size_t na = out->cap_ev ? out->cap_ev * 2 : 8;
		struct store_channel_event *p = realloc(out->ev, na * sizeof *p);

		if (!p)
			return -1;
		out->ev = p;
		out->cap_ev = na;
	}
	e = &out->ev[out->n_ev++];
	memset(e, 0, sizeof *e);
	e->channel = keep(out, cs->ch->name);
	e->suspend = suspend;
	e->reason = keep(out, reason);
	e->probe_every_ms = cs->ch->probe_every_ms;
	e->at_ms = now_ms;
	return 0;
}

/* What one request's answer decided, shared by its items. */
struct verdicts {
	int64_t wait_ms;              /* one backoff for the whole request (SPEC 5.9) */
	int64_t batch_id;             /* the id its retried members share, 0 = none */
	int fault;                    /* a credential or account error: suspend, requeue */
};

/* The state an ambiguous item goes to: resent where that is safe, else unknown. */
static void
ambiguous_result(struct dispatch *d, const struct flight *f, size_t i, struct store_result *r,
                 const struct verdicts *v, int64_t now_ms, struct results *out)
{
	const struct provider_item *it = &f->items[i];
	const struct store_job *j = &f->jobs[i];
	const struct channel *ch = f->cs->ch;
	char text[700];

	r->limit_counts = 1;  /* it may have been accepted: it counts for the provider's rules */
	if ((ch->ops->dedups || ch->on_ambiguous_retry) && j->attempts < d->cfg->max_attempts) {
		r->state = STATE_RETRYING;
		r->next_at_ms = now_ms + v->wait_ms;
		r->batch_id = v->batch_id;
		d->retried++;
		return;
	}
	if (ch->ops->dedups || ch->on_ambiguous_retry) {
		snprintf(text, sizeof text, "gave up after %d attempts: %s", j->attempts,
		         it->message_text ? it->message_text : "no verdict");
		r->state = ch->ops->dedups ? STATE_FAILED : STATE_UNKNOWN;
	} else {
		snprintf(text, sizeof text, "%s; not resent: %s cannot de-duplicate a resend "
		         "(herald retry --state unknown sends it again)",
		         it->message_text ? it->message_text : "no verdict", ch->ops->name);
		r->state = STATE_UNKNOWN;
	}
	r->message = keep(out, text);
	if (r->state == STATE_FAILED)
		d->failed++;
	else
		d->unknown++;
}

/* Appends item i's result; returns it (valid until out grows), NULL on out of memory. */
static const struct store_result *
item_result(struct dispatch *d, struct flight *f, size_t i, const struct http_result *hr,
            const struct verdicts *v, int64_t now_ms, struct results *out)
{
	struct provider_item *it = &f->items[i];
	const struct store_job *j = &f->jobs[i];
	const struct provider_ops *ops = f->cs->ch->ops;
	struct store_result *r = result_new(out);
	char text[700];

	if (!r)
		return NULL;
	r->delivery_id = j->delivery_id;
	r->started_at_ms = f->started_at_ms;
	r->duration_ms = hr->duration_ms;
	r->http_status = (int)hr->status;
	r->code = keep(out, it->code);
	r->message = keep(out, it->message_text);
	r->message_id = keep(out, it->message_id);
	r->send_at_ms = it->send_at_ms;
	if (ops->limit_account && ops->limit_account(it)) {
		r->limit_provider = keep(out, ops->name);
		r->limit_account = keep(out, ops->limit_account(it));
	}
	if (v->fault) {
		/* The channel is at fault, not this message: it waits for the suspension to end,
		   and the attempt is not held against it. */
		snprintf(text, sizeof text, "channel %s suspended: %s", f->cs->ch->name,
		         it->message_text ? it->message_text : "account error");
		r->state = STATE_PENDING;
		r->next_at_ms = now_ms;
		r->refund = 1;
		r->batch_id = v->batch_id;
		r->message = keep(out, text);
		d->suspended++;
		return r;
	}
	switch (it->outcome) {
	case PROVIDER_SENT:
		r->state = STATE_SENT;
		d->sent++;
		break;
	case PROVIDER_DEFERRED:
		r->state = STATE_DEFERRED;
		r->next_at_ms = it->defer_until_ms > now_ms ? it->defer_until_ms : now_ms + SECOND_MS;
		d->deferred++;
		break;
	case PROVIDER_AMBIGUOUS:
		ambiguous_result(d, f, i, r, v, now_ms, out);
		break;
	case PROVIDER_TRANSIENT:
		if (j->attempts < d->cfg->max_attempts) {
			r->state = STATE_RETRYING;
			r->next_at_ms = now_ms + v->wait_ms;
			r->batch_id = v->batch_id;
			d->retried++;
			break;
		}
		snprintf(text, sizeof text, "gave up after %d attempts: %s", j->attempts,
		         it->message_text ? it->message_text : "transient failure");
		r->message = keep(out, text);
		/* fall through */
	case PROVIDER_EXPIRED:  /* build's verdict only; a judge never gives it */
	case PROVIDER_PERMANENT:
		r->state = STATE_FAILED;
		d->failed++;
		break;
	}
	metrics_delivery_state(f->cs->ch->name, store_states[r->state], 1);
	return r;
}

/*
 * The request-level part of a verdict: one backoff (stretched by a Retry-After), the batch id
 * its retried members keep, whether the channel is at fault, and the channel's run of
 * failures (SPEC 5.11), which may suspend it; a probe that got through ends a suspension.
 */
static void
request_verdict(struct dispatch *d, struct flight *f, const struct http_result *hr,
                int64_t now_ms, struct verdicts *v, struct results *out)
{
	struct chan_state *cs = f->cs;
	const char *why = NULL;
	int answered = 0, accepted = 0;
	char reason[700];
	size_t i;

	memset(v, 0, sizeof *v);
	v->wait_ms = backoff_ms(d, f->jobs[0].attempts);
	if (hr->retry_after_ms > 0) {
		cs->hold_until_mono = clock_mono_ms() + hr->retry_after_ms;
		if (hr->retry_after_ms > v->wait_ms)
			v->wait_ms = hr->retry_after_ms;
	}
	for (i = 0; i < f->n; i++) {
		const struct provider_item *it = &f->items[i];

		if (it->channel_fault && !v->fault) {
			v->fault = 1;
			why = it->message_text;
			snprintf(reason, sizeof reason, "%s%s%s", it->code, it->code[0] ? ": " : "",
			         why ? why : "account error");
		}
		if (it->outcome == PROVIDER_SENT)
			accepted = 1;
		if (it->outcome == PROVIDER_SENT || it->outcome == PROVIDER_PERMANENT ||
		    it->outcome == PROVIDER_DEFERRED)
			answered = 1;
		if (!why)
			why = it->message_text;
		if (cs->ch->ops->batching != PROVIDER_SINGLE && f->n > 1 &&
		    (!v->batch_id || f->jobs[i].delivery_id < v->batch_id))
			v->batch_id = f->jobs[i].delivery_id;
	}
	if (v->fault) {
		cs->failures = 0;
		log_error("channel %s suspended: %s; deliveries wait, one probe every %llds",
		          cs->ch->name, reason, (long long)(cs->ch->probe_every_ms / 1000));
		channel_event(out, cs, 1, reason, now_ms);
		return;
	}
	if (answered && !v->fault) {
		cs->failures = 0;
	} else if (++cs->failures >= cs->ch->suspend_after) {
		snprintf(reason, sizeof reason, "%d consecutive failed requests; the last: %s",
		         cs->failures, why ? why : hr->error);
		cs->failures = 0;
		log_error("channel %s suspended: %s", cs->ch->name, reason);
		channel_event(out, cs, 1, reason, now_ms);
	}
	if (f->probe && accepted) {
		log_info("channel %s: the probe went through; the suspension is over", cs->ch->name);
		channel_event(out, cs, 0, NULL, now_ms);
	}
}

void
dispatch_finish(struct dispatch *d, struct http_result *hr, int64_t now_ms, struct results *out)
{
	struct flight *f = hr->ctx;
	struct chan_state *cs = f->cs;
	struct verdicts v;
	size_t i;

	cs->in_flight--;
	d->in_flight--;
	metrics_request_done(cs->ch->name, hr->status, hr->error, hr->duration_ms);
	for (i = 0; i < f->n; i++)
		provider_verdict(&f->items[i], PROVIDER_TRANSIENT, NULL, "no verdict");
	if (hr->status == 0)
		/* No answer: safe to retry only if the request certainly never left (SPEC 5.10). */
		provider_verdict_all(f->items, f->n, hr->sent ? PROVIDER_AMBIGUOUS : PROVIDER_TRANSIENT,
		                     NULL, hr->error);
	else
		cs->ch->ops->judge(cs->pstate, cs->ch, hr->status, hr->body ? hr->body : "",
		                   hr->body_len, f->items, f->n, now_ms);
	/* Whatever a provider says goes to the database and the log: never a credential, even
	   one it echoes back. */
	for (i = 0; i < f->n; i++)
		provider_redact_channel(f->items[i].message_text, cs->ch, cs->pstate);
	request_verdict(d, f, hr, now_ms, &v, out);
	for (i = 0; i < f->n; i++) {
		const struct store_result *r = item_result(d, f, i, hr, &v, now_ms, out);

		if (r && r->state != STATE_SENT)
			/* Failures are worth a line; a retry is routine until it becomes one. */
			log_msg(r->state == STATE_FAILED || r->state == STATE_UNKNOWN ? LOG_WARN
			        : r->state == STATE_DEFERRED                          ? LOG_INFO
			                                                              : LOG_DEBUG,
			        "%s: %s step %d %s: %s%s%s", f->jobs[i].campaign.key, f->jobs[i].rid,
			        f->jobs[i].step, store_states[r->state], f->items[i].code, f->items[i].code[0] ? " " : "",
			        r->message ? r->message : "");
	}
	flight_free(f);
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
		flight_free(f);
	}
	d->queue_tail = NULL;
	return n;
}

int
dispatch_queued(const struct dispatch *d)
{
	return d->queue_head != NULL;
}
