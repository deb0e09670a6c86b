/*
 * postgres/query.c: the read side the commands print (status, deliveries, attempts, the steps
 * and recipient count of `show`) and the operator's `retry`; the opt-out list; the channels
 * table as `channels` and `pause|resume --channel` use it; and what a reader handle serves to
 * `herald run --listen` (ping, due backlog, channel list). The SQLite backend's query.c,
 * channels.c, reader.c and the opt-out list of audience.c, with the same rows in the same
 * order. Counts come from delivery_counts (kept by triggers and the import), never from a scan
 * of deliveries.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_int.h"
#include "util.h"

/* ---- streamed reads -------------------------------------------------------------------------- */

/* Asks the server to stop the statement under way. One that has already ended is not
   affected: a backend waiting for its next command ignores a cancel. */
static void
cancel(struct pg_store *s)
{
	PGcancel *c = PQgetCancel(s->conn);
	char why[256];

	if (!c)
		return;
	PQcancel(c, why, sizeof why);
	PQfreeCancel(c);
}

/*
 * Runs SQL and hands row() each row, stopping when it returns non-zero. Listings that may be
 * long (deliveries, attempts, the opt-out list, campaigns) come this way, in single-row mode
 * rather than through a cursor: one statement is one snapshot wherever it runs (a reader's
 * session, a caller's transaction or neither) and needs no transaction of its own to keep a
 * cursor open, and only the current row sits in memory. The statement goes unprepared
 * (PQsendQueryParams): it runs once per command, and planning with the actual values shows the
 * planner a state's share of the rows and the page size.
 *
 * After a stop the rest of the result is still read and dropped (libpq must reach its end
 * before the next statement). A listing that is not `bounded` by a LIMIT of its own is
 * cancelled first, so that `herald export KEY | head` does not pull a million rows only to
 * throw them away; inside a caller's transaction nothing is cancelled, as that would abort it.
 * 0 / -1 with *err.
 */
static int
stream(struct pg_store *s, const char *sql, const struct pgs_params *p, int bounded,
       const char *what, int (*row)(void *ctx, const PGresult *r, int i), void *ctx, char **err)
{
	PGresult *r;
	int rc = 0, stop = 0, cancelled = 0, i, n;

	/* pgs_run_script makes a dropped connection again, as every statement helper does. */
	if (PQstatus(s->conn) != CONNECTION_OK && pgs_run_script(s, "SELECT 1", what, err) != 0)
		return -1;
	if (!PQsendQueryParams(s->conn, sql, p ? p->n : 0, NULL, p ? p->v : NULL, NULL, NULL, 0))
		return pgs_fail(s, err, what, PQerrorMessage(s->conn));
	/* Should it be refused, the rows come in one result: the same rows, all at once. */
	PQsetSingleRowMode(s->conn);
	while ((r = PQgetResult(s->conn))) {
		switch (PQresultStatus(r)) {
		case PGRES_SINGLE_TUPLE:
		case PGRES_TUPLES_OK:
			for (i = 0, n = PQntuples(r); i < n && !stop; i++)
				stop = row(ctx, r, i) != 0;
			if (stop && !bounded && !cancelled && !s->in_tx) {
				cancel(s);
				cancelled = 1;
			}
			break;
		default:
			/* Once row() has stopped, the end of the rows is not wanted: an error
			   there (the cancel's own) is no failure of the listing. */
			if (!stop && rc == 0)
				rc = pgs_fail(s, err, what, PQresultErrorMessage(r));
			break;
		}
		PQclear(r);
	}
	return rc;
}

/* ---- status ---------------------------------------------------------------------------------- */

/*
 * Every campaign's counts and next due time in the statement that lists the campaigns, so that
 * they agree with each other (SQLite reads them in one transaction) and the listing can stream.
 * Counts come as "state:n,..." from delivery_counts, its writers' shards summed. The next time
 * something goes: a deferral's send time, a retry's time, else the due time, of the first
 * waiting delivery on the ready index (campaign_id, next_at_ms).
 */
#define STATUS_SQL(where)                                                                         \
	"SELECT " PGS_CAMPAIGN_COLS ", c.last_error, coalesce(ch.state, 'active'), ch.reason, "   \
	"(SELECT string_agg(k.state || ':' || k.n, ',') FROM (SELECT state, sum(n) AS n "        \
	"FROM delivery_counts WHERE campaign_id = c.id GROUP BY state) k), "                      \
	"(SELECT CASE d.state WHEN 'deferred' THEN coalesce(d.send_at_ms, d.next_at_ms) "         \
	"WHEN 'retrying' THEN d.next_at_ms ELSE greatest(d.due_at_ms, d.next_at_ms) END "         \
	"FROM deliveries d WHERE d.campaign_id = c.id AND d.state IN " PGS_WAITING                \
	" ORDER BY d.next_at_ms LIMIT 1) "                                                        \
	"FROM campaigns c LEFT JOIN channels ch ON ch.name = c.channel "                          \
	"WHERE c.state <> 'importing'" where

struct status_walk {
	int (*fn)(void *arg, const struct store_status *st);
	void *arg;
	int n;
	struct store_status st;
};

/* Reads "pending:3,sent:5" into counts; states it does not know are left out, as SQLite's. */
static void
counts_parse(const char *text, int64_t counts[STORE_N_STATES])
{
	const char *p = text, *colon;
	char name[32];
	size_t len;
	int i;

	while (p && (colon = strchr(p, ':'))) {
		len = (size_t)(colon - p);
		if (len < sizeof name) {
			memcpy(name, p, len);
			name[len] = '\0';
			if ((i = store_state_index(name)) >= 0)
				counts[i] = strtoll(colon + 1, NULL, 10);
		}
		if ((p = strchr(colon, ',')))
			p++;
	}
}

static int
status_row(void *ctx, const PGresult *r, int i)
{
	struct status_walk *w = ctx;
	struct store_status *st = &w->st;
	const int k = PGS_CAMPAIGN_NCOLS;

	memset(st, 0, sizeof *st);
	pgs_campaign_from_row(r, i, 0, &st->c);
	pgs_col_copy(r, i, k, st->last_error, sizeof st->last_error);
	pgs_col_copy(r, i, k + 1, st->channel_state, sizeof st->channel_state);
	pgs_col_copy(r, i, k + 2, st->channel_reason, sizeof st->channel_reason);
	counts_parse(pgs_col_text(r, i, k + 3), st->counts);
	st->next_due_at_ms = pgs_col_int(r, i, k + 4, -1);
	w->n++;
	return w->fn(w->arg, st);
}

int
postgres_status(struct store *base, const char *key,
                int (*fn)(void *arg, const struct store_status *st), void *arg, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	struct status_walk *w = calloc(1, sizeof *w);
	int n = -1;

	if (!w)
		return util_err(err, "status: out of memory");
	w->fn = fn;
	w->arg = arg;
	if (key) {
		pgs_text(&p, key);
		if (stream(s, STATUS_SQL(" AND c.key = $1"), &p, 1, "status", status_row, w,
		           err) != 0)
			goto out;
	} else if (stream(s, STATUS_SQL(" ORDER BY c.key COLLATE \"C\""), NULL, 0, "status",
	                  status_row, w, err) != 0) {
		goto out;
	}
	n = w->n;
out:
	free(w);
	return n;
}

/* ---- deliveries, attempts, steps ------------------------------------------------------------- */

/*
 * Pages are cut on (due_at_ms, id), and "(due_at_ms, id) > ($, $)" is one range of the index
 * deliveries_due (campaign_id, due_at_ms, id): each page is an index walk from its cursor that
 * stops one row past the page (LIMIT NULL: every row). One text per filter, so that the
 * planner sees the state it filters on. Filtered, the walk steps over the other states' rows:
 * deliveries_campaign_state (campaign_id, state, due_at_ms) cannot give id order within a due
 * time, which SQLite's index carries implicitly (the rowid); with id as a fourth column the
 * same statement walks that state's rows only.
 */
#define DELIVERIES_SQL(where)                                                                     \
	"SELECT d.id, r.rid, d.step, d.due_at_ms, d.state, d.attempts, d.last_error, "            \
	"d.provider_message_id, coalesce(d.send_at_ms, -1) FROM deliveries d "                    \
	"JOIN recipients r ON r.id = d.recipient_id WHERE d.campaign_id = $1" where               \
	" ORDER BY d.due_at_ms, d.id LIMIT $2"

struct delivery_walk {
	int (*fn)(void *arg, const struct store_delivery_row *r);
	void *arg;
	int64_t limit, n;
	struct store_page *next;
	int *more;
};

static int
delivery_row(void *ctx, const PGresult *res, int i)
{
	struct delivery_walk *w = ctx;
	struct store_delivery_row r;

	/* The row past the page only says that there is a next one. */
	if (w->limit > 0 && w->n == w->limit) {
		*w->more = 1;
		return 1;
	}
	r.id = pgs_col_int(res, i, 0, 0);
	r.recipient = pgs_col_text(res, i, 1);
	r.step = (int)pgs_col_int(res, i, 2, 0);
	r.due_at_ms = pgs_col_int(res, i, 3, 0);
	r.state = pgs_col_text(res, i, 4);
	r.attempts = (int)pgs_col_int(res, i, 5, 0);
	r.last_error = pgs_col_text(res, i, 6);
	r.provider_message_id = pgs_col_text(res, i, 7);
	r.send_at_ms = pgs_col_int(res, i, 8, -1);
	w->next->due_at_ms = r.due_at_ms;
	w->next->id = r.id;
	w->n++;
	return w->fn(w->arg, &r);
}

int
postgres_deliveries(struct store *base, int64_t campaign_id, const char *state,
                    const struct store_page *after, int64_t limit,
                    int (*fn)(void *arg, const struct store_delivery_row *r), void *arg,
                    struct store_page *next, int *more, char **err)
{
	static const char *const sql[2][2] = {
		{DELIVERIES_SQL(""), DELIVERIES_SQL(" AND d.state = $3")},
		{DELIVERIES_SQL(" AND (d.due_at_ms, d.id) > ($3, $4)"),
		 DELIVERIES_SQL(" AND d.state = $3 AND (d.due_at_ms, d.id) > ($4, $5)")},
	};
	struct pg_store *s = (struct pg_store *)base;
	struct delivery_walk w = {fn, arg, limit, 0, next, more};
	struct pgs_params p = {0};

	*more = 0;
	pgs_int(&p, campaign_id);
	/* No page can hold INT64_MAX rows: that limit reads every row, like none (SQLite's
	   LIMIT -1), instead of overflowing to a negative LIMIT. */
	if (limit > 0 && limit < INT64_MAX)
		pgs_int(&p, limit + 1);
	else
		pgs_text(&p, NULL);
	if (state)
		pgs_text(&p, state);
	if (after) {
		pgs_int(&p, after->due_at_ms);
		pgs_int(&p, after->id);
	}
	return stream(s, sql[after != NULL][state != NULL], &p, limit > 0 && limit < INT64_MAX,
	              "deliveries", delivery_row, &w, err);
}

struct attempt_walk {
	int (*fn)(void *arg, const struct store_attempt_row *r);
	void *arg;
};

static int
attempt_row(void *ctx, const PGresult *res, int i)
{
	struct attempt_walk *w = ctx;
	struct store_attempt_row r;

	r.recipient = pgs_col_text(res, i, 0);
	r.step = (int)pgs_col_int(res, i, 1, 0);
	r.started_at_ms = pgs_col_int(res, i, 2, 0);
	r.duration_ms = pgs_col_int(res, i, 3, -1);
	r.http_status = (int)pgs_col_int(res, i, 4, 0);
	r.provider_code = pgs_col_text(res, i, 5);
	r.provider_message = pgs_col_text(res, i, 6);
	r.outcome = pgs_col_text(res, i, 7);
	return w->fn(w->arg, &r);
}

int
postgres_attempts(struct store *base, int64_t campaign_id, const char *recipient,
                  int (*fn)(void *arg, const struct store_attempt_row *r), void *arg,
                  char **err)
{
#define ATTEMPTS_SQL(where)                                                                       \
	"SELECT r.rid, d.step, a.started_at_ms, a.duration_ms, a.http_status, a.provider_code, "  \
	"a.provider_message, a.outcome FROM attempts a JOIN deliveries d ON d.id = a.delivery_id " \
	"JOIN recipients r ON r.id = d.recipient_id WHERE a.campaign_id = $1" where               \
	" ORDER BY a.id"
	struct pg_store *s = (struct pg_store *)base;
	struct attempt_walk w = {fn, arg};
	struct pgs_params p = {0};

	pgs_int(&p, campaign_id);
	if (recipient)
		pgs_text(&p, recipient);
	return stream(s, recipient ? ATTEMPTS_SQL(" AND r.rid = $2") : ATTEMPTS_SQL(""), &p, 0,
	              "attempts", attempt_row, &w, err);
#undef ATTEMPTS_SQL
}

int
postgres_steps(struct store *base, int64_t campaign_id,
               int (*fn)(void *arg, const struct store_step_row *r), void *arg, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	struct store_step_row row;
	PGresult *r;
	int i, n;

	/* A definition's few steps: read whole. */
	pgs_int(&p, campaign_id);
	if (!(r = pgs_query(s, "SELECT position, day, time, message FROM steps "
	                       "WHERE campaign_id = $1 ORDER BY position",
	                    &p, "steps", err)))
		return -1;
	for (i = 0, n = PQntuples(r); i < n; i++) {
		row.position = (int)pgs_col_int(r, i, 0, 0);
		row.day = (int)pgs_col_int(r, i, 1, 0);
		row.time = pgs_col_text(r, i, 2);
		row.message_json = pgs_col_text(r, i, 3);
		if (fn(arg, &row) != 0)
			break;
	}
	PQclear(r);
	return 0;
}

int64_t
postgres_recipient_count(struct store *base, int64_t campaign_id, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int ok;
	int64_t n;

	/* Recipients a re-import dropped stay as rows (their deliveries are history) but are no
	   longer part of the definition. */
	pgs_int(&p, campaign_id);
	n = pgs_scalar(s, "SELECT count(*) FROM recipients WHERE campaign_id = $1 AND active <> 0",
	               &p, 0, "recipients", err, &ok);
	return ok ? n : -1;
}

int
postgres_is_blank(struct store *base)
{
	struct pg_store *s = (struct pg_store *)base;
	int ok;
	int64_t blank;

	/* Whether anything is there, not how much: a million suppressions are not counted. */
	blank = pgs_scalar(s, "SELECT NOT EXISTS (SELECT 1 FROM campaigns) AND "
	                      "NOT EXISTS (SELECT 1 FROM runners) AND "
	                      "NOT EXISTS (SELECT 1 FROM suppressions)",
	                   NULL, 0, "database read", NULL, &ok);
	return ok && blank == 1;
}

/* ---- retry ----------------------------------------------------------------------------------- */

int64_t
postgres_retry(struct store *base, int64_t campaign_id, const char *state, int64_t now_ms,
               char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	pgs_int(&p, campaign_id);
	pgs_text(&p, state);
	pgs_int(&p, now_ms);
	if (postgres_begin(base, err) != 0)
		return -1;
	n = pgs_exec(s, "UPDATE deliveries SET state = 'pending', attempts = 0, last_error = NULL, "
	                "send_at_ms = NULL, next_at_ms = $3, "
	                "expires_at_ms = greatest(expires_at_ms, "
	                "$3 + (SELECT expire_after_ms FROM campaigns WHERE id = $1)) "
	                "WHERE campaign_id = $1 AND state = $2",
	             &p, "retry", err);
	/* These are due now: the schedulers, asleep until the next time they know of, are woken
	   when the change commits. */
	if (n > 0 && pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, "retry", err) < 0)
		n = -1;
	if (n < 0)
		postgres_rollback(base);
	else if (postgres_commit(base, err) != 0)
		n = -1;
	return n;
}

/* ---- the opt-out list ------------------------------------------------------------------------ */

/* One statement for the lot: a round trip per id made 100,000 of them take seconds. */
int64_t
postgres_suppress_add(struct store *base, const char *channel, const char *const *ids, size_t n,
                      int64_t now_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	struct pgs_array a;
	int64_t added = -1;
	size_t i;

	memset(&a, 0, sizeof a);
	for (i = 0; i < n; i++)
		pgs_array_text(&a, ids[i]);
	if (pgs_array_params(s, &p, &a, 1, "suppress", err) == 0) {
		pgs_text(&p, channel);
		pgs_int(&p, now_ms);
		added = pgs_exec(s, "INSERT INTO suppressions (channel, rid, added_at_ms) "
		                    "SELECT $2, rid, $3 FROM unnest($1::text[]) AS u(rid) "
		                    "ON CONFLICT (channel, rid) DO NOTHING",
		                 &p, "suppress", err);
	}
	pgs_array_free(&a, 1);
	return added;
}

int
postgres_suppress_delete(struct store *base, const char *channel, const char *rid, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	pgs_text(&p, channel);
	pgs_text(&p, rid);
	n = pgs_exec(s, "DELETE FROM suppressions WHERE channel = $1 AND rid = $2", &p,
	             "suppress remove", err);
	return n < 0 ? -1 : n > 0;
}

struct suppression_walk {
	int (*fn)(void *arg, const struct store_suppression *r);
	void *arg;
};

static int
suppression_row(void *ctx, const PGresult *res, int i)
{
	struct suppression_walk *w = ctx;
	struct store_suppression r;

	r.channel = pgs_col_text(res, i, 0);
	r.rid = pgs_col_text(res, i, 1);
	r.added_at_ms = pgs_col_int(res, i, 2, 0);
	return w->fn(w->arg, &r);
}

int
postgres_suppress_list(struct store *base, const char *channel,
                       int (*fn)(void *arg, const struct store_suppression *r), void *arg,
                       char **err)
{
	/*
	 * By bytes, as SQLite orders text, whatever the database's collation: the list reads the
	 * same from either backend. The server sorts (spilling to disk when large) unless the
	 * columns are COLLATE "C", when the primary key gives the order.
	 */
#define SUPPRESS_SQL(where)                                                                       \
	"SELECT channel, rid, added_at_ms FROM suppressions" where                                \
	" ORDER BY channel COLLATE \"C\", rid COLLATE \"C\""
	struct pg_store *s = (struct pg_store *)base;
	struct suppression_walk w = {fn, arg};
	struct pgs_params p = {0};

	if (channel)
		pgs_text(&p, channel);
	return stream(s, channel ? SUPPRESS_SQL(" WHERE channel = $1") : SUPPRESS_SQL(""), &p, 0,
	              "suppress list", suppression_row, &w, err);
#undef SUPPRESS_SQL
}

/* ---- channels -------------------------------------------------------------------------------- */

/*
 * A channel as store_channel_get reads it, for the name in column n.name: its row (active,
 * never changed, when it has none) and the deliveries waiting in its active campaigns, summed
 * from delivery_counts.
 */
#define CHANNEL_SQL(from)                                                                         \
	"SELECT n.name, coalesce(ch.state, 'active'), ch.reason, coalesce(ch.since_ms, -1), "     \
	"coalesce(ch.next_probe_at_ms, -1), (SELECT coalesce(sum(k.n), 0) FROM campaigns c "      \
	"JOIN delivery_counts k ON k.campaign_id = c.id WHERE c.channel = n.name "                \
	"AND c.state = 'active' AND k.state IN " PGS_WAITING ") FROM " from                       \
	" LEFT JOIN channels ch ON ch.name = n.name"

static void
channel_from_row(const PGresult *r, int i, struct store_channel *out)
{
	memset(out, 0, sizeof *out);
	pgs_col_copy(r, i, 0, out->name, sizeof out->name);
	pgs_col_copy(r, i, 1, out->state, sizeof out->state);
	pgs_col_copy(r, i, 2, out->reason, sizeof out->reason);
	out->since_ms = pgs_col_int(r, i, 3, -1);
	out->next_probe_at_ms = pgs_col_int(r, i, 4, -1);
	out->waiting = pgs_col_int(r, i, 5, 0);
}

int
postgres_channel_get(struct store *base, const char *name, struct store_channel *out,
                     char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	PGresult *r;
	int rc = -1;

	pgs_text(&p, name);
	if (!(r = pgs_query(s, CHANNEL_SQL("(SELECT $1::text AS name) n"), &p, "channel state",
	                    err)))
		return -1;
	if (PQntuples(r) != 1) {
		pgs_fail(s, err, "channel state", "no row");
		goto out;
	}
	channel_from_row(r, 0, out);
	rc = 0;
out:
	PQclear(r);
	return rc;
}

int
postgres_channel_set(struct store *base, const char *name, const char *state, const char *reason,
                     int64_t now_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int64_t n;

	pgs_text(&p, name);
	pgs_text(&p, state);
	pgs_text(&p, reason);
	pgs_int(&p, now_ms);
	if (postgres_begin(base, err) != 0)
		return -1;
	/* An active channel that never had a row gets one: harmless, and it says since when. */
	n = pgs_exec(s, "INSERT INTO channels (name, state, reason, since_ms) "
	                "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET "
	                "state = excluded.state, reason = excluded.reason, "
	                "since_ms = excluded.since_ms, next_probe_at_ms = NULL, "
	                "probe_interval_ms = NULL "
	                "WHERE channels.state <> excluded.state",
	             &p, "channel state", err);
	/* What the channel held is free to go: the schedulers are woken when this commits. */
	if (n > 0 && strcmp(state, "active") == 0 &&
	    pgs_exec(s, "NOTIFY " PGS_CHANNEL, NULL, "channel state", err) < 0)
		n = -1;
	if (n < 0)
		postgres_rollback(base);
	else if (postgres_commit(base, err) != 0)
		n = -1;
	return n < 0 ? -1 : n > 0;
}

/* ---- the read-only side: what `herald run --listen` serves ----------------------------------- */

int
postgres_ping(struct store *base, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	int ok;

	/* A real read of a table, not only of the connection. */
	pgs_scalar(s, "SELECT count(*) FROM (SELECT 1 FROM campaigns LIMIT 1) x", NULL, 0,
	           "database read", err, &ok);
	return ok ? 0 : -1;
}

int64_t
postgres_due_backlog(struct store *base, int64_t now_ms, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct pgs_params p = {0};
	int ok;
	int64_t n;

	/* Per active campaign, a range count on the partial index deliveries_ready
	   (campaign_id, next_at_ms WHERE state is waiting): no scan of sent rows. */
	pgs_int(&p, now_ms);
	n = pgs_scalar(s, "SELECT coalesce(sum(w.n), 0) FROM campaigns c CROSS JOIN LATERAL "
	                  "(SELECT count(*) AS n FROM deliveries d WHERE d.campaign_id = c.id AND "
	                  "d.state IN " PGS_WAITING " AND d.next_at_ms <= $1) w "
	                  "WHERE c.state = 'active'",
	               &p, 0, "due backlog", err, &ok);
	return ok ? n : -1;
}

int
postgres_channel_list(struct store *base, int (*fn)(void *arg, const struct store_channel *ch),
                      void *arg, char **err)
{
	struct pg_store *s = (struct pg_store *)base;
	struct store_channel ch;
	PGresult *r;
	int i, n;

	/* One statement, so the names and their states agree; a handful of rows, read whole.
	   Names sort by bytes, as SQLite's. */
	if (!(r = pgs_query(s, CHANNEL_SQL("(SELECT channel AS name FROM campaigns WHERE state <> "
	                                   "'importing' UNION SELECT name FROM channels) n")
	                       " ORDER BY n.name COLLATE \"C\"",
	                    NULL, "channels", err)))
		return -1;
	for (i = 0, n = PQntuples(r); i < n; i++) {
		channel_from_row(r, i, &ch);
		if (fn(arg, &ch) != 0)
			break;
	}
	PQclear(r);
	return 0;
}
