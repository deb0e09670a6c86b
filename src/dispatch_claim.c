/*
 * dispatch_claim: the questions a claim asks the dispatch while it holds the write lock: how
 * many deliveries each campaign may take now (slots, rates, Retry-After holds), a suspended
 * channel's probe, the per-account limits (SaiNiu) and the audience rules' zones and caps.
 */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "dispatch_int.h"
#include "log.h"
#include "sop.h"

/* ---- claim callbacks ------------------------------------------------------------------- */

/* Items one request of this channel carries. */
int64_t
dispatch_per_request(const struct chan_state *cs)
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
void
dispatch_refill(struct chan_state *cs, int64_t mono)
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
	struct chan_state *cs = dispatch_chan(d, c);
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
		dispatch_refill(cs, now);
		if ((int64_t)cs->tokens < slots)
			slots = cs->tokens < 1 ? 1 : (int64_t)cs->tokens;
	}
	slots -= cs->queued + cs->claiming;
	return slots > 0 ? slots * dispatch_per_request(cs) : 0;
}

/* A suspended channel's probe: one request, and only when nothing of it is on the wire. */
static int64_t
cb_probe(void *arg, const struct store_campaign *c)
{
	struct chan_state *cs = dispatch_chan(arg, c);

	if (!cs || cs->in_flight + cs->queued + cs->claiming > 0 ||
	    clock_mono_ms() < cs->hold_until_mono)
		return 0;
	cs->probe_claim = 1;
	return dispatch_per_request(cs);
}

static void
cb_claimed(void *arg, const struct store_campaign *c, size_t n)
{
	struct chan_state *cs = dispatch_chan(arg, c);
	int64_t per;

	if (cs && n) {
		per = dispatch_per_request(cs);
		cs->claiming += (int)(((int64_t)n + per - 1) / per);
	}
}

/* The provider_item view of a job, enough for limit_account() and admit(). */
void
dispatch_item_from_job(struct provider_item *it, const struct store_job *j)
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

const char *
dispatch_account(struct dispatch *d, const struct store_job *j)
{
	struct chan_state *cs = dispatch_chan(d, &j->campaign);
	struct provider_item it;

	if (!cs || !cs->ch->ops->limit_account)
		return NULL;
	dispatch_item_from_job(&it, j);
	return cs->ch->ops->limit_account(&it);
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
	return dispatch_zone(d, name[0] ? name : j->campaign.timezone);
}

/* The quiet hours in force for a job (the campaign's own, else its channel's), as minutes
   after midnight in *z: 0, or -1 when there are none. */
static int
quiet_hours(struct dispatch *d, const struct chan_state *cs, const struct store_job *j,
            int *from, int *to, const struct tz **z)
{
	int fh, fm, th, tm;

	*from = cs->ch->quiet_from;
	*to = cs->ch->quiet_to;
	if (j->campaign.quiet_hours[0] &&
	    sscanf(j->campaign.quiet_hours, "%d:%d-%d:%d", &fh, &fm, &th, &tm) == 4) {
		*from = fh * 60 + fm;
		*to = th * 60 + tm;
	}
	if (*from < 0 || !(*z = audience_zone(d, j)))
		return -1;
	return 0;
}

static enum store_admit
cb_admit(void *arg, const struct store_job *j, const struct store_limit *l, int64_t now_ms,
         int64_t *send_at_ms, int64_t *defer_until_ms)
{
	struct dispatch *d = arg;
	struct chan_state *cs = dispatch_chan(d, &j->campaign);
	struct provider_limit pl = {l->last_call_ms, l->last_send_at_ms, l->reserved};
	struct provider_item it;

	const struct tz *z;
	int64_t end;
	int from, to;
	enum store_admit verdict;

	dispatch_item_from_job(&it, j);
	switch (cs->ch->ops->admit(cs->ch, &it, &pl, now_ms, send_at_ms, defer_until_ms)) {
	case PROVIDER_ADMIT:
		verdict = STORE_ADMIT;
		break;
	case PROVIDER_DEFER:
		verdict = STORE_DEFER;
		break;
	default:
		return STORE_WAIT;
	}
	/*
	 * The step's own send time was held to the quiet hours at import, but the per-account
	 * rule (7 days after the last) or the provider's 2-hour minimum may move it: a send time
	 * that lands inside them goes to their end, as any delivery due inside them would.
	 */
	if (cs->ch->ops->schedule && quiet_hours(d, cs, j, &from, &to, &z) == 0 &&
	    (end = sop_quiet_end(z, from, to, *send_at_ms)) > *send_at_ms)
		*send_at_ms = end;
	return verdict;
}

/* The audience rules of a job (SPEC 5.12): its channel's cap, and the quiet hours in force
   (the campaign's own, else the channel's) if now is inside them. */
static void
cb_audience(void *arg, const struct store_job *j, int64_t now_ms, struct store_audience *out)
{
	struct dispatch *d = arg;
	struct chan_state *cs = dispatch_chan(d, &j->campaign);
	int from, to;
	const struct tz *z;

	if (!cs)
		return;
	out->cap_max = cs->ch->cap_max;
	out->cap_per_ms = cs->ch->cap_per_ms;
	/* A provider-scheduled call sends nothing now: its send time, the step's, was held to
	   the quiet hours at import, and one a rule moves is held to them at admission. */
	if (cs->ch->ops->schedule || quiet_hours(d, cs, j, &from, &to, &z) != 0)
		return;
	out->quiet_until_ms = sop_quiet_end(z, from, to, now_ms);
	snprintf(out->quiet_why, sizeof out->quiet_why, "%02d:%02d-%02d:%02d %s", from / 60,
	         from % 60, to / 60, to % 60, tz_name(z));
}

static const char *
cb_account(void *arg, const struct store_job *j)
{
	return dispatch_account(arg, j);
}

/* Per-account limits are counted over the provider's accounts; a frequency cap, and the
   batches a request carries, over the channel's deliveries. */
static enum store_serial
cb_serial(void *arg, const struct store_campaign *c)
{
	struct chan_state *cs = dispatch_chan(arg, c);

	if (!cs)
		return STORE_SERIAL_NONE;
	if (cs->ch->ops->limit_account)
		return STORE_SERIAL_PROVIDER;
	if (cs->ch->cap_max > 0 || cs->ch->ops->batching != PROVIDER_SINGLE)
		return STORE_SERIAL_CHANNEL;
	return STORE_SERIAL_NONE;
}

/* No rule but expiry and the opt-out list can hold a delivery of campaign c back. */
static int
cb_plain(void *arg, const struct store_campaign *c)
{
	struct chan_state *cs = dispatch_chan(arg, c);

	return cs && cb_serial(arg, c) == STORE_SERIAL_NONE &&
	       (cs->ch->ops->schedule || (cs->ch->quiet_from < 0 && !c->quiet_hours[0]));
}

struct store_claim_cb
dispatch_claim_cb(struct dispatch *d)
{
	struct store_claim_cb cb = {d, cb_capacity, cb_claimed, cb_account, cb_admit, cb_probe,
	                            cb_audience};

	cb.serial = cb_serial;
	cb.plain = cb_plain;
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
