/*
 * Store tests on real temp-file databases: the migrated schema matches schema/schema.sql,
 * claims racing on two connections never hand one delivery to two runners, results and
 * reaping settle rows as the crash rules say, and the per-account limit is reserved inside
 * the claim.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "migrations.h"
#include "store.h"
#include "sqlite/sqlite_int.h"
#include "t.h"

/* The claim race: deliveries per round, claimed RACE_CAP at a time, RACE_ROUNDS rounds. */
#define RACE_N 400
#define RACE_CAP 7
#define RACE_ROUNDS 10

static char dir[] = "/tmp/herald-store-XXXXXX";
static char path[256];

/* The SQLite connection behind a store this test opened, to write rows the way only a test
   may. */
static sqlite3 *
db_of(struct store *s)
{
	return ((struct sqlite_store *)s)->db;
}

static struct store *
fresh(void)
{
	char *err = NULL;
	struct store *s;

	snprintf(path, sizeof path, "%s/t%d.db", dir, rand());
	s = store_open(path, &err);
	if (!s)
		fprintf(stderr, "store_open: %s\n", err);
	free(err);
	return s;
}

/* The schema as SQLite reports it, one statement per object in name order. */
static char *
dump_schema(const char *db_path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	size_t len = 0;
	char *out = calloc(1, 1);

	sqlite3_open(db_path, &db);
	sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
	                       "AND name NOT LIKE 'sqlite_%' "
	                       "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name", -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *sql = (const char *)sqlite3_column_text(st, 0);

		out = realloc(out, len + strlen(sql) + 4);
		len += (size_t)sprintf(out + len, "%s;\n", sql);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return out;
}

/* A runner reaped and registering again never gets its old id back: results of its old claims
   must not match rows it has claimed since, nor its old lock byte be the one it holds. */
static void
test_runner_ids_never_reused(void)
{
	struct store *s = fresh();
	int64_t a = 0, b = 0;

	T_CHECK(s != NULL);
	T_EQ_INT(store_runner_add(s, 1, 1000, 60000, &a, NULL), 0);
	T_EQ_INT((int)store_runner_reap(s, a, NULL, 2000, 0, NULL), 0);
	T_EQ_INT(store_runner_add(s, 1, 3000, 60000, &b, NULL), 0);
	T_CHECK(b > a);
	store_close(s);
}

/* Every statement id has its text, and every text prepares against the migrated schema. */
static void
test_every_statement_prepares(void)
{
	struct store *base = fresh();
	struct sqlite_store *s = (struct sqlite_store *)base;
	int id;

	T_CHECK(s != NULL);
	/* The import's statements need the staging tables an import makes first. */
	T_EQ_INT(sqlite_stage_tables(s, NULL), 0);
	for (id = 0; s && id < SQL_COUNT; id++) {
		T_CHECK(sqlite_sql[id] != NULL);
		if (sqlite_sql[id] && !sqlite_stmt(s, (enum sqlite_sql)id))
			fprintf(stderr, "statement %d: %s\n", id, store_errmsg(base));
		T_CHECK(!sqlite_sql[id] || sqlite_stmt(s, (enum sqlite_sql)id) != NULL);
	}
	store_close(base);
}

static void
test_schema_matches_file(void)
{
	struct store *s = fresh();
	char file[512], *want = NULL, *got;
	const char *src = getenv("HERALD_SRC");
	FILE *f;
	long n;

	T_CHECK(s != NULL);
	T_EQ_INT(store_version(s), sqlite_migrations[sqlite_migrations_count - 1].version);
	store_close(s);
	got = dump_schema(path);
	snprintf(file, sizeof file, "%s/schema/schema.sql", src ? src : ".");
	if (getenv("HERALD_UPDATE_SCHEMA") && (f = fopen(file, "w"))) {
		fputs("-- The full schema after every migration, for readers. Generated: do not edit;\n"
		      "-- HERALD_UPDATE_SCHEMA=1 ctest -R test_store rewrites it.\n", f);
		fputs(got, f);
		fclose(f);
	}
	if ((f = fopen(file, "r"))) {
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		want = calloc(1, (size_t)n + 1);
		if (fread(want, 1, (size_t)n, f) != (size_t)n)
			n = 0;
		fclose(f);
	}
	T_CHECK(want != NULL);
	/* Skip the two comment lines at the top of the file. */
	if (want) {
		const char *body = strstr(want, "rewrites it.\n");

		T_CHECK(body != NULL);
		if (body)
			T_EQ_STR(body + strlen("rewrites it.\n"), got);
	}
	free(want);
	free(got);
}

/* One campaign, n recipients, one step due at due_ms. */
static int64_t
seed(struct store *s, int n, int64_t due_ms, const char *provider)
{
	struct store_campaign c = {0};
	char rid[32], *err = NULL;
	int64_t rec;
	int changed, i;

	snprintf(c.key, sizeof c.key, "k");
	snprintf(c.name, sizeof c.name, "n");
	snprintf(c.channel, sizeof c.channel, "ch");
	snprintf(c.provider, sizeof c.provider, "%s", provider);
	snprintf(c.timezone, sizeof c.timezone, "UTC");
	snprintf(c.start_date, sizeof c.start_date, "2026-01-01");
	snprintf(c.anchor, sizeof c.anchor, "start_date");
	c.expire_after_ms = 86400000;
	T_EQ_INT(store_begin(s, &err), 0);
	T_EQ_INT(store_campaign_put(s, &c, 0, &changed, &err), 0);
	T_EQ_INT(store_step_put(s, c.id, 1, 1, "10:00", "{\"type\":\"text\",\"text\":\"hi\"}", &changed,
	                        &err), 0);
	/* Recipients and deliveries straight into the tables: what an import leaves behind. */
	for (i = 0; i < n; i++) {
		char sql[512];

		snprintf(rid, sizeof rid, "r%d", i);
		snprintf(sql, sizeof sql, "INSERT INTO recipients (campaign_id, rid, data) VALUES "
		         "(%lld, '%s', '{}')", (long long)c.id, rid);
		T_EQ_INT(sqlite3_exec(db_of(s), sql, NULL, NULL, NULL), SQLITE_OK);
		rec = sqlite3_last_insert_rowid(db_of(s));
		snprintf(sql, sizeof sql, "INSERT INTO deliveries (campaign_id, recipient_id, step, "
		         "due_at_ms, next_at_ms, expires_at_ms, msg_random) VALUES (%lld, %lld, 1, %lld, "
		         "%lld, %lld, %u)", (long long)c.id, (long long)rec, (long long)due_ms,
		         (long long)due_ms, (long long)(due_ms + 86400000),
		         (unsigned)((uint32_t)(i + 1) * 0x9e3779b9u));
		T_EQ_INT(sqlite3_exec(db_of(s), sql, NULL, NULL, NULL), SQLITE_OK);
	}
	{
		char sql[160];

		snprintf(sql, sizeof sql, "INSERT INTO delivery_counts (campaign_id, state, n) VALUES "
		         "(%lld, 'pending', %d)", (long long)c.id, n);
		T_EQ_INT(sqlite3_exec(db_of(s), sql, NULL, NULL, NULL), SQLITE_OK);
	}
	T_EQ_INT(store_commit(s, &err), 0);
	free(err);
	return c.id;
}

static int64_t
cap_all(void *arg, const struct store_campaign *c)
{
	(void)c;
	return *(int64_t *)arg;
}

static const char *
no_account(void *arg, const struct store_job *j)
{
	(void)arg;
	return strcmp(j->campaign.provider, "sainiu") == 0 ? j->rid : NULL;
}

static enum store_admit
admit_all(void *arg, const struct store_job *j, const struct store_limit *l, int64_t now,
          int64_t *send_at, int64_t *defer)
{
	(void)arg;
	(void)j;
	*send_at = now + 1;
	*defer = now + 1000;
	return l->reserved ? STORE_WAIT : l->last_call_ms ? STORE_DEFER : STORE_ADMIT;
}

/* One runner of the race below: its own connection, claiming until nothing is left. */
struct racer {
	int64_t runner_id;
	pthread_barrier_t *start;
	int64_t ids[RACE_N];
	size_t n_ids;
	int failures;
};

static void *
race_claims(void *arg)
{
	struct racer *r = arg;
	int64_t cap = RACE_CAP;
	struct store_claim_cb cb = {&cap, cap_all, NULL, no_account, admit_all};
	struct store_job *j;
	size_t n, i;
	char *err = NULL;
	struct store *s = store_open(path, &err);

	pthread_barrier_wait(r->start);
	if (s == NULL) {
		r->failures++;
		free(err);
		return NULL;
	}
	for (;;) {
		if (store_claim(s, r->runner_id, 5000, &cb, &j, &n, &err) != 0) {
			fprintf(stderr, "runner %lld: claim failed: %s\n", (long long)r->runner_id,
			        err ? err : "(no message)");
			free(err);
			err = NULL;
			r->failures++;
			break;
		}
		for (i = 0; i < n && r->n_ids < RACE_N; i++)
			r->ids[r->n_ids++] = j[i].delivery_id;
		store_jobs_free(j, n);
		if (n == 0)
			break;
	}
	store_close(s);
	return NULL;
}

/*
 * Two runners on two connections claim the same due deliveries at the same moment, a small
 * capacity at a time so many claims overlap, round after round: every delivery is handed
 * out exactly once, and no claim fails for the contention.
 */
static void
test_claim_is_exclusive(void)
{
	int round;

	for (round = 0; round < RACE_ROUNDS; round++) {
		struct store *s = fresh();
		static struct racer r[2];
		static unsigned char seen[RACE_N + 1];
		pthread_barrier_t start;
		pthread_t th[2];
		size_t i, total = 0;
		int k, twice = 0;

		seed(s, RACE_N, 1000, "feihe");
		store_close(s);
		pthread_barrier_init(&start, NULL, 2);
		memset(r, 0, sizeof r);
		memset(seen, 0, sizeof seen);
		for (k = 0; k < 2; k++) {
			r[k].runner_id = k + 1;
			r[k].start = &start;
			T_EQ_INT(pthread_create(&th[k], NULL, race_claims, &r[k]), 0);
		}
		for (k = 0; k < 2; k++)
			pthread_join(th[k], NULL);
		pthread_barrier_destroy(&start);
		for (k = 0; k < 2; k++) {
			T_EQ_INT(r[k].failures, 0);
			for (i = 0; i < r[k].n_ids; i++) {
				int64_t id = r[k].ids[i];

				T_CHECK(id >= 1 && id <= RACE_N);
				if (id >= 1 && id <= RACE_N && seen[id]++)
					twice++;
			}
			total += r[k].n_ids;
		}
		T_EQ_INT(twice, 0);
		T_EQ_INT(total, RACE_N);
		if (t_current_failed) {
			fprintf(stderr, "  round %d: runner 1 took %zu, runner 2 took %zu\n", round,
			        r[0].n_ids, r[1].n_ids);
			break;
		}
	}
}

/* One claim takes its capacity and counts the attempt; nothing is left due after. */
static void
test_claim_takes_capacity(void)
{
	struct store *a = fresh();
	char *err = NULL;
	int64_t cap = 100, next;
	struct store_claim_cb cb = {&cap, cap_all, NULL, no_account, admit_all};
	struct store_job *ja, *jb;
	size_t na, nb;

	seed(a, 150, 1000, "feihe");
	T_EQ_INT(store_claim(a, 1, 5000, &cb, &ja, &na, &err), 0);
	T_EQ_INT(store_claim(a, 2, 5000, &cb, &jb, &nb, &err), 0);
	T_EQ_INT(na, 100);
	T_EQ_INT(nb, 50);
	T_EQ_INT(ja[0].attempts, 1);
	T_EQ_INT(store_next_due(a, &next, &err), 0);
	T_EQ_INT(next, INT64_MAX);
	store_jobs_free(ja, na);
	store_jobs_free(jb, nb);
	store_close(a);
	free(err);
}

static int
grab_status(void *arg, const struct store_status *st)
{
	*(struct store_status *)arg = *st;
	return 0;
}

static void
test_not_due_and_expired(void)
{
	struct store *s = fresh();
	char *err = NULL;
	int64_t cap = 100;
	struct store_claim_cb cb = {&cap, cap_all, NULL, no_account, admit_all};
	struct store_job *j;
	size_t n;
	struct store_status st;

	seed(s, 3, 10000, "feihe");
	T_EQ_INT(store_claim(s, 1, 9999, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 0);  /* not due yet */
	store_jobs_free(j, n);
	/* Past expiry (due + 24h): expired, not claimed. */
	T_EQ_INT(store_claim(s, 1, 10000 + 86400000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 0);
	store_jobs_free(j, n);
	T_EQ_INT(store_status(s, "k", grab_status, &st, &err), 1);
	T_EQ_INT(st.counts[store_state_index("expired")], 3);
	store_close(s);
	free(err);
}

static int
never_dedups(const char *provider)
{
	(void)provider;
	return 0;
}

static int
always_dedups(const char *provider)
{
	(void)provider;
	return 1;
}

/* A de-duplicating provider's in-flight rows go back to pending, to be resent. */
static void
test_reap_requeues_when_provider_dedups(void)
{
	struct store *s = fresh();
	char *err = NULL;
	int64_t cap = 10, next;
	struct store_claim_cb cb = {&cap, cap_all, NULL, no_account, admit_all};
	struct store_job *j;
	struct store_status st;
	int64_t first_id[3] = {0};
	uint32_t first_random[3] = {0};
	size_t n, i;

	seed(s, 3, 1000, "tencent_desk");
	T_EQ_INT(store_claim(s, 5, 2000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 3);
	for (i = 0; i < n && i < 3; i++) {
		first_id[i] = j[i].delivery_id;
		first_random[i] = j[i].msg_random;
	}
	store_jobs_free(j, n);
	T_EQ_INT(store_runner_reap(s, 5, always_dedups, 3000, 0, &err), 3);
	T_EQ_INT(store_status(s, "k", grab_status, &st, &err), 1);
	T_EQ_INT(st.counts[store_state_index("pending")], 3);
	T_EQ_INT(store_next_due(s, &next, &err), 0);
	T_EQ_INT(next, 3000);
	/* The MsgRandom a resend carries is the one the first send carried. */
	T_EQ_INT(store_claim(s, 6, 3000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 3);
	for (i = 0; i < n; i++) {
		size_t k;

		T_EQ_INT(j[i].attempts, 2);
		for (k = 0; k < 3 && first_id[k] != j[i].delivery_id; k++)
			;
		T_CHECK(k < 3);
		if (k < 3)
			T_EQ_INT(j[i].msg_random, first_random[k]);
	}
	store_jobs_free(j, n);
	store_close(s);
	free(err);
}

static const char *
one_account(void *arg, const struct store_job *j)
{
	(void)arg;
	(void)j;
	return "seller";
}

/* A delivery's state and next_at_ms, read straight from the file. */
static void
row_of(int64_t delivery_id, char state[16], int64_t *next_at_ms)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	state[0] = '\0';
	*next_at_ms = -1;
	sqlite3_open(path, &db);
	sqlite3_prepare_v2(db, "SELECT state, next_at_ms FROM deliveries WHERE id = ?1", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, delivery_id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(state, 16, "%s", (const char *)sqlite3_column_text(st, 0));
		*next_at_ms = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/*
 * The per-account reservation: two deliveries due for the same account; the claim takes one
 * and reserves the account, and the second waits (looked at again a second later) while the
 * first is in flight. Once the first is recorded the reservation is gone and the rule, not
 * the reservation, decides the second.
 */
static void
test_limit_reservation(void)
{
	struct store *s = fresh();
	char *err = NULL, state[16];
	int64_t cap = 10, next_at, first, second;
	struct store_claim_cb cb = {&cap, cap_all, NULL, one_account, admit_all};
	struct store_job *j;
	struct store_result r = {0};
	size_t n;

	seed(s, 2, 1000, "sainiu");
	T_EQ_INT(store_claim(s, 1, 2000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 1);  /* one account: one call in flight */
	first = n ? j[0].delivery_id : 0;
	second = first == 1 ? 2 : 1;
	row_of(second, state, &next_at);
	T_EQ_STR(state, "pending");
	T_EQ_INT(next_at, 3000);
	store_jobs_free(j, n);
	/* Due again while the first is still in flight: it waits again. */
	T_EQ_INT(store_claim(s, 2, 3000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 0);
	store_jobs_free(j, n);
	row_of(second, state, &next_at);
	T_EQ_STR(state, "pending");
	T_EQ_INT(next_at, 4000);
	r.delivery_id = first;
	r.state = STATE_SENT;
	r.started_at_ms = 2000;
	r.send_at_ms = 2001;
	r.limit_provider = "sainiu";
	r.limit_account = "seller";
	r.limit_counts = 1;
	T_EQ_INT(store_record(s, 1, &r, 1, NULL, 0, &err), 0);
	{
		sqlite3 *db;
		sqlite3_stmt *st;

		sqlite3_open(path, &db);
		sqlite3_prepare_v2(db, "SELECT account, last_call_ms, last_send_at_ms, reserved_by IS NULL "
		                       "FROM account_limits ORDER BY account", -1, &st, NULL);
		T_EQ_INT(sqlite3_step(st), SQLITE_ROW);
		T_EQ_STR((const char *)sqlite3_column_text(st, 0), "seller");
		T_EQ_INT(sqlite3_column_int64(st, 1), 2000);
		T_EQ_INT(sqlite3_column_int64(st, 2), 2001);
		T_EQ_INT(sqlite3_column_int(st, 3), 1);
		T_EQ_INT(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	/* Released: admit_all now sees the recorded call and defers the second. */
	T_EQ_INT(store_claim(s, 3, 4000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 0);
	store_jobs_free(j, n);
	row_of(second, state, &next_at);
	T_EQ_STR(state, "deferred");
	T_EQ_INT(next_at, 5000);
	store_close(s);
	free(err);
}

static void
test_record_and_reap(void)
{
	struct store *s = fresh();
	char *err = NULL;
	int64_t cap = 10;
	struct store_claim_cb cb = {&cap, cap_all, NULL, no_account, admit_all};
	struct store_job *j;
	struct store_status st;
	struct store_result r[2] = {{0}};
	size_t n;

	seed(s, 4, 1000, "feihe");
	T_EQ_INT(store_claim(s, 7, 2000, &cb, &j, &n, &err), 0);
	T_EQ_INT(n, 4);
	r[0].delivery_id = j[0].delivery_id;
	r[0].state = STATE_SENT;
	r[0].started_at_ms = 2000;
	r[0].http_status = 200;
	r[1].delivery_id = j[1].delivery_id;
	r[1].state = STATE_FAILED;
	r[1].code = "40003";
	r[1].message = "invalid openid";
	r[1].http_status = 200;
	T_EQ_INT(store_record(s, 7, r, 2, NULL, 0, &err), 0);
	/* A result from a runner that does not own the row changes nothing. */
	r[0].delivery_id = j[2].delivery_id;
	T_EQ_INT(store_record(s, 8, r, 1, NULL, 0, &err), 0);
	T_EQ_INT(store_status(s, "k", grab_status, &st, &err), 1);
	T_EQ_INT(st.counts[store_state_index("sent")], 1);
	T_EQ_INT(st.counts[store_state_index("failed")], 1);
	T_EQ_INT(st.counts[store_state_index("sending")], 2);
	T_EQ_STR(st.last_error, "40003: invalid openid");
	/* Runner 7 dies: its two in-flight rows become unknown (Feihe does not de-duplicate). */
	T_EQ_INT(store_runner_reap(s, 7, never_dedups, 3000, 0, &err), 2);
	T_EQ_INT(store_status(s, "k", grab_status, &st, &err), 1);
	T_EQ_INT(st.counts[store_state_index("unknown")], 2);
	T_EQ_INT(st.counts[store_state_index("sending")], 0);
	store_jobs_free(j, n);
	store_close(s);
	free(err);
}

int
main(void)
{
	if (!mkdtemp(dir))
		return 1;
	T_RUN(test_schema_matches_file);
	T_RUN(test_every_statement_prepares);
	T_RUN(test_runner_ids_never_reused);
	T_RUN(test_claim_takes_capacity);
	T_RUN(test_claim_is_exclusive);
	T_RUN(test_not_due_and_expired);
	T_RUN(test_record_and_reap);
	T_RUN(test_reap_requeues_when_provider_dedups);
	T_RUN(test_limit_reservation);
	{
		char cmd[300];

		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return t_report();
}
