/*
 * postgres/record: what the scheduler learnt, written back, as SQLite's record.c writes it.
 * Results and the channel events they caused go in one transaction per batch; a row is
 * updated only while the runner still holds its claim, so a runner whose lease ran out cannot
 * overwrite what another settled. The batch travels in array parameters, a few statements per
 * batch rather than per result (only late accepts go one by one); their builder,
 * pgs_array_*, lives here too.
 *
 * Several nodes record at once (READ COMMITTED), each its own deliveries and its own shard of
 * the counts (0002_count_shards.sql), so two recordings share rows only where a rule does.
 * No wait may close a circle. A batch that settles account reservations or changes a channel
 * first takes the serial locks of those providers and channels, as the claims that read them
 * do (claim.c), before any row: a claim holding a channel's row never waits for a recording
 * that wants it. A batch that writes its campaigns' last_error locks them first, in id order,
 * before its deliveries: two such batches could otherwise take two campaigns in opposite
 * orders. Other rows are a recording's own (its runner's 'sending' deliveries, its count
 * shard, its attempts); an operator's cancel or retry moves rows in other states.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "util.h"

#define WHAT "recording results"
/* The attempt a late accept adds (the same words as SQLite's). */
#define LATE_ACCEPTED "accepted, its answer read after the runner's lease ran out"

/* ---- array parameters ---------------------------------------------------------------------- */

static void
array_add(struct pgs_array *a, const char *text, size_t n)
{
	if (a->failed)
		return;
	/* Room for the closing brace too, and the NUL. */
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap : 256;
		char *p;

		while (cap < a->len + n + 2)
			cap *= 2;
		if (!(p = realloc(a->data, cap))) {
			a->failed = 1;
			return;
		}
		a->data = p;
		a->cap = cap;
	}
	memcpy(a->data + a->len, text, n);
	a->len += n;
	a->data[a->len] = '\0';
}

/* Opens the literal before the first element, or separates the next one. */
static void
array_next(struct pgs_array *a)
{
	array_add(a, a->len ? "," : "{", 1);
}

void
pgs_array_int(struct pgs_array *a, int64_t v)
{
	char num[24];

	array_next(a);
	array_add(a, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v));
}

void
pgs_array_int_or_null(struct pgs_array *a, int64_t v)
{
	if (v) {
		pgs_array_int(a, v);
		return;
	}
	array_next(a);
	array_add(a, "NULL", 4);
}

void
pgs_array_text(struct pgs_array *a, const char *v)
{
	size_t run;

	array_next(a);
	if (!v) {
		array_add(a, "NULL", 4);
		return;
	}
	/* Quoted, every element: then only '"' and '\' need a backslash (an unquoted "NULL",
	   braces, commas or blanks would mean something else). */
	array_add(a, "\"", 1);
	while (*v) {
		run = strcspn(v, "\"\\");
		array_add(a, v, run);
		if (!v[run])
			break;
		array_add(a, "\\", 1);
		array_add(a, v + run, 1);
		v += run + 1;
	}
	array_add(a, "\"", 1);
}

int
pgs_array_params(struct pg_store *s, struct pgs_params *p, struct pgs_array *a, int n,
                 const char *what, char **err)
{
	int i;

	for (i = 0; i < n; i++) {
		if (!a[i].len)
			array_add(&a[i], "{", 1);
		array_add(&a[i], "}", 1);
		if (a[i].failed)
			return pgs_fail(s, err, what, "out of memory");
		pgs_text(p, a[i].data);
	}
	return 0;
}

void
pgs_array_free(struct pgs_array *a, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(a[i].data);
		memset(&a[i], 0, sizeof a[i]);
	}
}

/* ---- results ------------------------------------------------------------------------------- */

/* What became of each result of a batch. */
enum outcome {
	LEFT_ALONE,   /* no longer claimed by the runner: another runner settled it */
	APPLIED,
	LATE_ACCEPT,  /* an "accepted" that came too late corrected the settled 'unknown' */
};

struct batch {
	int64_t runner_id;
	const struct store_result *r;
	size_t n;
	unsigned char *how;           /* enum outcome, per result */
	int64_t *campaign;            /* the delivery's campaign, where not LEFT_ALONE */
	int errors;                   /* some result may write its campaign's last_error */
};

/*
 * Every result's delivery, in one statement: updated only while still 'sending' and claimed
 * by the runner. A batch that writes its campaigns' last_error (campaign_errors) locks them
 * first, in id order. A delivery listed twice takes its first result, as one-by-one updates
 * would (the second finds it settled). Sets how[] and campaign[] of the results that applied.
 */
#define UPDATE_DELIVERIES(held, only_held)                                                        \
	"WITH batch AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], "            \
	"$4::bigint[], $5::text[], $6::text[], $7::bigint[], $8::integer[]) WITH ORDINALITY AS "  \
	"b(id, state, next_at, send_at, error, message_id, batch_id, refund, ord))" held " "      \
	"UPDATE deliveries d SET state = r.state, next_at_ms = coalesce(r.next_at, d.next_at_ms), " \
	"send_at_ms = coalesce(r.send_at, d.send_at_ms), last_error = r.error, "                  \
	"provider_message_id = coalesce(r.message_id, d.provider_message_id), "                   \
	"claimed_by = NULL, batch_id = coalesce(r.batch_id, d.batch_id), "                        \
	"attempts = d.attempts - r.refund "                                                       \
	"FROM (SELECT DISTINCT ON (id) * FROM batch ORDER BY id, ord) r "                         \
	"WHERE d.id = r.id AND d.state = 'sending' AND d.claimed_by = $9" only_held               \
	" RETURNING r.ord, d.campaign_id"
#define CAMPAIGNS_LOCKED                                                                          \
	", held AS MATERIALIZED (SELECT id FROM campaigns WHERE id IN (SELECT campaign_id FROM "  \
	"deliveries WHERE id = ANY($1::bigint[]) AND state = 'sending' AND claimed_by = $9) "     \
	"ORDER BY id FOR NO KEY UPDATE)"
static int
update_deliveries(struct pg_store *s, struct batch *b, char **err)
{
	struct pgs_array col[8];
	struct pgs_params p = {0};
	PGresult *res = NULL;
	char error[600];
	size_t i;
	int rc = -1, row;

	memset(col, 0, sizeof col);
	for (i = 0; i < b->n; i++) {
		const struct store_result *r = &b->r[i];

		store_result_error(r, error, sizeof error);
		/* As campaign_errors decides, before knowing which results apply. */
		b->errors |= r->state != STATE_SENT && r->state != STATE_EXPIRED && error[0];
		pgs_array_int(&col[0], r->delivery_id);
		pgs_array_text(&col[1], store_states[r->state]);
		pgs_array_int_or_null(&col[2], r->next_at_ms);
		pgs_array_int_or_null(&col[3], r->send_at_ms);
		pgs_array_text(&col[4], error[0] ? error : NULL);
		pgs_array_text(&col[5], r->message_id);
		pgs_array_int_or_null(&col[6], r->batch_id);
		pgs_array_int(&col[7], r->refund ? 1 : 0);
	}
	if (pgs_array_params(s, &p, col, 8, WHAT, err) != 0)
		goto out;
	pgs_int(&p, b->runner_id);
	res = pgs_query(s, b->errors ? UPDATE_DELIVERIES(CAMPAIGNS_LOCKED,
	                                                 " AND d.campaign_id IN (SELECT id FROM held)")
	                             : UPDATE_DELIVERIES("", ""),
	                &p, WHAT, err);
	if (!res)
		goto out;
	for (row = 0; row < PQntuples(res); row++) {
		int64_t ord = pgs_col_int(res, row, 0, 0);

		if (ord >= 1 && (size_t)ord <= b->n) {
			b->how[ord - 1] = APPLIED;
			b->campaign[ord - 1] = pgs_col_int(res, row, 1, 0);
		}
	}
	rc = 0;
out:
	PQclear(res);
	pgs_array_free(col, 8);
	return rc;
}

/*
 * An answer saying "accepted" that came after our lease ran out: the runner that took over
 * settled the delivery as unknown, as it had to. Knowing better now, it becomes sent, so that
 * `herald retry --state unknown` cannot send it again; only while it is still that unknown
 * (nobody retried it meanwhile). 1 corrected (*campaign set), 0 not, -1.
 */
static int
late_accept(struct pg_store *s, const struct store_result *r, int64_t *campaign, char **err)
{
	struct pgs_params p = {0};
	PGresult *res;
	int found;

	pgs_int(&p, r->delivery_id);
	pgs_text(&p, r->message_id);
	if (!(res = pgs_query(s, "UPDATE deliveries SET state = 'sent', last_error = NULL, "
	                         "provider_message_id = coalesce($2, provider_message_id) "
	                         "WHERE id = $1 AND state = 'unknown' AND claimed_by IS NULL "
	                         "RETURNING campaign_id",
	                      &p, WHAT, err)))
		return -1;
	if ((found = PQntuples(res) > 0))
		*campaign = pgs_col_int(res, 0, 0, 0);
	PQclear(res);
	return found;
}

/* The late accept of each result that did not apply. */
static int
late_accepts(struct pg_store *s, struct batch *b, char **err)
{
	size_t i;
	int late;

	for (i = 0; i < b->n; i++) {
		if (b->how[i] == APPLIED)
			continue;
		/* Not ours any more: our lease ran out and another runner settled it (and its
		   attempt, and any reservation). Recording ours too would count one request
		   twice. */
		if (b->r[i].state != STATE_SENT)
			continue;
		if ((late = late_accept(s, &b->r[i], &b->campaign[i], err)) < 0)
			return -1;
		if (late)
			b->how[i] = LATE_ACCEPT;
	}
	return 0;
}

/* Runs sql (a static text) on the n array columns a batch built, rows long, then frees them;
   with no row, nothing runs. 0 / -1 with *err. */
static int
exec_columns(struct pg_store *s, const char *sql, struct pgs_array *col, int n, size_t rows,
             char **err)
{
	struct pgs_params p = {0};
	int rc = 0;

	if (rows && (pgs_array_params(s, &p, col, n, WHAT, err) != 0 ||
	             pgs_exec(s, sql, &p, WHAT, err) < 0))
		rc = -1;
	pgs_array_free(col, n);
	return rc;
}

/*
 * The frequency cap's count of the results that applied (SPEC 5.12), into col[0..2]: a send
 * that was, or may have been, accepted (as SaiNiu's rule counts it, SPEC 5.10) keeps counting,
 * at the time it was made (col[0], col[1]); any other is taken back (col[2]). Rows the claim
 * counted only; for the rest, nothing. Written with the attempts. How many.
 */
static size_t
cap_columns(const struct batch *b, struct pgs_array *col)
{
	size_t i, rows = 0;

	for (i = 0; i < b->n; i++) {
		const struct store_result *r = &b->r[i];

		if (b->how[i] != APPLIED)
			continue;
		if (r->state == STATE_SENT || r->limit_counts) {
			pgs_array_int(&col[0], r->delivery_id);
			pgs_array_int(&col[1], r->started_at_ms);
		} else {
			pgs_array_int(&col[2], r->delivery_id);
		}
		rows++;
	}
	return rows;
}

/* The attempt rows, in result order (their ids are the log's order), and the caps' counts:
   one statement. */
static int
insert_attempts(struct pg_store *s, const struct batch *b, char **err)
{
	struct pgs_array col[11];
	size_t i, rows = 0;

	memset(col, 0, sizeof col);
	for (i = 0; i < b->n; i++) {
		const struct store_result *r = &b->r[i];
		int late = b->how[i] == LATE_ACCEPT;

		/* Expired before its request could leave: there was no attempt to log. */
		if (b->how[i] == LEFT_ALONE || (!late && r->state == STATE_EXPIRED))
			continue;
		pgs_array_int(&col[0], b->campaign[i]);
		pgs_array_int(&col[1], r->delivery_id);
		pgs_array_int(&col[2], r->started_at_ms);
		pgs_array_int(&col[3], r->duration_ms);
		pgs_array_int_or_null(&col[4], r->http_status);
		pgs_array_text(&col[5], r->code && r->code[0] ? r->code : NULL);
		pgs_array_text(&col[6], late ? LATE_ACCEPTED : r->message);
		pgs_array_text(&col[7], late || r->state == STATE_SENT ? "sent"
		                        : r->state == STATE_PENDING    ? "requeued"
		                                                       : store_states[r->state]);
		rows++;
	}
	rows += cap_columns(b, col + 8);
	return exec_columns(s, "WITH kept AS (UPDATE cap_sends c SET at_ms = v.at_ms FROM "
	                    "unnest($9::bigint[], $10::bigint[]) AS v(id, at_ms) WHERE "
	                    "c.delivery_id = v.id), "
	                    "dropped AS (DELETE FROM cap_sends WHERE delivery_id = "
	                    "ANY($11::bigint[])) "
	                    "INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, "
	                    "duration_ms, http_status, provider_code, provider_message, outcome) "
	                    "SELECT campaign_id, delivery_id, started_at_ms, duration_ms, "
	                    "http_status, provider_code, provider_message, outcome FROM "
	                    "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], "
	                    "$5::integer[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY "
	                    "AS a(campaign_id, delivery_id, started_at_ms, duration_ms, "
	                    "http_status, provider_code, provider_message, outcome, ord) ORDER BY "
	                    "ord",
	                    col, 11, rows, err);
}

/*
 * The account reservations of the results that applied: released, and where the call counts
 * (it may have been accepted, SPEC 5.10) its time noted. For an account named twice the last
 * counting result is the one noted, as one-by-one updates would leave it.
 */
static int
settle_limits(struct pg_store *s, const struct batch *b, char **err)
{
	struct pgs_array col[5];
	size_t i, rows = 0;

	memset(col, 0, sizeof col);
	for (i = 0; i < b->n; i++) {
		const struct store_result *r = &b->r[i];

		if (b->how[i] != APPLIED || !r->limit_account)
			continue;
		pgs_array_text(&col[0], r->limit_provider);
		pgs_array_text(&col[1], r->limit_account);
		pgs_array_int(&col[2], r->state == STATE_SENT || r->limit_counts);
		pgs_array_int(&col[3], r->started_at_ms);
		pgs_array_int(&col[4], r->send_at_ms);
		rows++;
	}
	return exec_columns(s, "WITH v AS (SELECT DISTINCT ON (provider, account) * FROM "
	                    "unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], "
	                    "$5::bigint[]) WITH ORDINALITY AS v(provider, account, counts, "
	                    "call_ms, send_at_ms, ord) ORDER BY provider, account, counts DESC, "
	                    "ord DESC) UPDATE account_limits l SET last_call_ms = CASE v.counts "
	                    "WHEN 1 THEN v.call_ms ELSE l.last_call_ms END, last_send_at_ms = "
	                    "CASE v.counts WHEN 1 THEN v.send_at_ms ELSE l.last_send_at_ms END, "
	                    "reserved_by = NULL FROM v WHERE l.provider = v.provider AND "
	                    "l.account = v.account",
	                    col, 5, rows, err);
}

/* The campaigns' last_error: per campaign, the last error of the batch. */
static int
campaign_errors(struct pg_store *s, const struct batch *b, char **err)
{
	struct pgs_array col[2];
	char error[600];
	size_t i, rows = 0;

	memset(col, 0, sizeof col);
	for (i = 0; i < b->n; i++) {
		const struct store_result *r = &b->r[i];

		if (b->how[i] != APPLIED || r->state == STATE_SENT || r->state == STATE_EXPIRED)
			continue;
		store_result_error(r, error, sizeof error);
		if (!error[0])
			continue;
		pgs_array_int(&col[0], b->campaign[i]);
		pgs_array_text(&col[1], error);
		rows++;
	}
	return exec_columns(s, "WITH e AS (SELECT DISTINCT ON (id) id, error FROM "
	                    "unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS e(id, error, "
	                    "ord) ORDER BY id, ord DESC) UPDATE campaigns c SET last_error = "
	                    "e.error FROM e WHERE c.id = e.id",
	                    col, 2, rows, err);
}

/*
 * A fault suspends an active channel; a suspended one keeps its probe times (a failed probe
 * must not restart the doubling); a paused one stays the operator's. A probe that went through
 * makes a suspended channel active again.
 */
static int
record_channel(struct pg_store *s, const struct store_channel_event *e, char **err)
{
	struct pgs_params p = {0};
	int64_t n;

	pgs_text(&p, e->channel);
	if (e->suspend) {
		pgs_text(&p, e->reason ? e->reason : "suspended");
		pgs_int(&p, e->at_ms);
		pgs_int(&p, e->probe_every_ms);
		pgs_int(&p, STORE_PROBE_MAX_MS);
		n = pgs_exec(s, "INSERT INTO channels (name, state, reason, since_ms, "
		                "next_probe_at_ms, probe_interval_ms) VALUES ($1, 'suspended', $2, "
		                "$3::bigint, $3::bigint + $4::bigint, "
		                "least($4::bigint * 2, $5::bigint)) "
		                "ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, "
		                "since_ms = CASE channels.state WHEN 'active' "
		                "THEN excluded.since_ms ELSE channels.since_ms END, "
		                "next_probe_at_ms = CASE channels.state WHEN 'active' "
		                "THEN excluded.next_probe_at_ms "
		                "ELSE channels.next_probe_at_ms END, "
		                "probe_interval_ms = CASE channels.state WHEN 'active' "
		                "THEN excluded.probe_interval_ms "
		                "ELSE channels.probe_interval_ms END, "
		                "state = CASE channels.state WHEN 'paused' THEN 'paused' "
		                "ELSE 'suspended' END",
		             &p, WHAT, err);
		return n < 0 ? -1 : 0;
	}
	pgs_int(&p, e->at_ms);
	if ((n = pgs_exec(s, "UPDATE channels SET state = 'active', reason = NULL, since_ms = $2, "
	                     "next_probe_at_ms = NULL, probe_interval_ms = NULL "
	                     "WHERE name = $1 AND state = 'suspended'",
	                  &p, WHAT, err)) < 0)
		return -1;
	/* Other nodes hold what waits on a suspended channel back until its next probe (up to
	   half an hour): tell them it is open (sent at commit, not at all on a rollback). */
	if (n > 0 && pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, WHAT, err) < 0)
		return -1;
	return 0;
}

/* The serial locks of what the batch shares with claims: the providers whose account
   reservations it settles, the channels it suspends or opens. */
static int
lock_shared(struct pg_store *s, const struct batch *b, const struct store_channel_event *ev,
            size_t n_ev, char **err)
{
	struct store_serial_key *keys;
	size_t i, n = 0;
	int rc;

	if (!(keys = calloc(b->n + n_ev + 1, sizeof *keys)))
		return pgs_fail(s, err, WHAT, "out of memory");
	for (i = 0; i < b->n; i++)
		if (b->r[i].limit_account && b->r[i].limit_provider) {
			keys[n].kind = STORE_SERIAL_PROVIDER;
			keys[n++].name = b->r[i].limit_provider;
		}
	for (i = 0; i < n_ev; i++) {
		keys[n].kind = STORE_SERIAL_CHANNEL;
		keys[n++].name = ev[i].channel;
	}
	rc = pgs_lock_serial(s, keys, n, NULL, NULL, WHAT, err);
	free(keys);
	return rc;
}

/* Everything a batch writes, inside the caller's transaction. */
static int
record_batch(struct pg_store *s, struct batch *b, const struct store_channel_event *ev,
             size_t n_ev, char **err)
{
	size_t i;

	if (lock_shared(s, b, ev, n_ev, err) != 0)
		return -1;
	if (b->n && (update_deliveries(s, b, err) != 0 || late_accepts(s, b, err) != 0 ||
	             insert_attempts(s, b, err) != 0 || settle_limits(s, b, err) != 0))
		return -1;
	for (i = 0; i < n_ev; i++)
		if (record_channel(s, &ev[i], err) != 0)
			return -1;
	return b->n ? campaign_errors(s, b, err) : 0;
}

/*
 * No NOTIFY for deliveries due again (retrying, deferred, requeued): the node that recorded
 * them wakes for them itself, and any other finds them at its next look.
 */
int
postgres_record(struct store *base, int64_t runner_id, const struct store_result *r, size_t n,
                const struct store_channel_event *ev, size_t n_ev, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct batch b = {runner_id, r, n, NULL, NULL, 0};
	int rc = -1;

	if (n == 0 && n_ev == 0)
		return 0;
	if (n && (!(b.how = calloc(n, sizeof *b.how)) ||
	          !(b.campaign = calloc(n, sizeof *b.campaign)))) {
		pgs_fail(s, err, WHAT, "out of memory");
		goto out;
	}
	if (pgs_begin_batch(s, runner_id, 1, NULL, NULL, 0, WHAT, err) != 0)
		goto out;
	if (record_batch(s, &b, ev, n_ev, err) == 0)
		rc = postgres_commit(base, err);
	else
		postgres_rollback(base);
out:
	free(b.how);
	free(b.campaign);
	return rc;
}
