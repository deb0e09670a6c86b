/*
 * dispatch_answer: what an answer means for the deliveries of its request. One backoff per
 * request (a batch comes back whole), ambiguous outcomes resent only where that is safe, the
 * channel's run of failures and its suspension, and one result per delivery for the store.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch_int.h"
#include "log.h"
#include "metrics.h"

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
	e->channel = results_keep(out, cs->ch->name);
	e->suspend = suspend;
	e->reason = results_keep(out, reason);
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
	r->message = results_keep(out, text);
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
	struct store_result *r = results_add(out);
	char text[700];

	if (!r)
		return NULL;
	r->delivery_id = j->delivery_id;
	r->started_at_ms = f->started_at_ms;
	r->duration_ms = hr->duration_ms;
	r->http_status = (int)hr->status;
	r->code = results_keep(out, it->code);
	r->message = results_keep(out, it->message_text);
	r->message_id = results_keep(out, it->message_id);
	r->send_at_ms = it->send_at_ms;
	if (ops->limit_account && ops->limit_account(it)) {
		r->limit_provider = results_keep(out, ops->name);
		r->limit_account = results_keep(out, ops->limit_account(it));
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
		r->message = results_keep(out, text);
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
		r->message = results_keep(out, text);
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
		/* One line says why (SPEC 5.11): the other requests in flight then, and each failed
		   probe, only repeat it. */
		log_msg(cs->suspended ? LOG_DEBUG : LOG_ERROR,
		        "channel %s suspended: %s; deliveries wait, one probe every %llds",
		        cs->ch->name, reason, (long long)(cs->ch->probe_every_ms / 1000));
		cs->suspended = 1;
		channel_event(out, cs, 1, reason, now_ms);
		return;
	}
	if (answered && !v->fault) {
		cs->failures = 0;
	} else if (++cs->failures >= cs->ch->suspend_after) {
		snprintf(reason, sizeof reason, "%d consecutive failed requests; the last: %s",
		         cs->failures, why ? why : hr->error);
		cs->failures = 0;
		log_msg(cs->suspended ? LOG_DEBUG : LOG_ERROR, "channel %s suspended: %s", cs->ch->name,
		        reason);
		cs->suspended = 1;
		channel_event(out, cs, 1, reason, now_ms);
	}
	if (accepted)
		cs->suspended = 0;  /* a send went through: a new fault is news again */
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
	dispatch_flight_free(f);
}
