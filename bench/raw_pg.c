/*
 * bench-raw-pg: the PostgreSQL benchmark's limits, two minimal libpq clients on a database
 * `herald migrate` created (Herald's schema, its count trigger included: a limit cannot skip
 * what the schema makes every writer do).
 *
 *   bench-raw-pg claim URI CAMPAIGN_ID NOW_MS WORKERS BATCH
 *   bench-raw-pg copy URI CSV EXPIRE_AFTER_MS DUE_MS...
 *   bench-raw-pg --version          (prints the libpq it runs on)
 *
 * claim: the store work of a dispatch, without HTTP and without Herald's rules. WORKERS
 * connections (a thread each) loop until nothing is left: one transaction claims up to BATCH
 * due deliveries of the campaign (FOR UPDATE SKIP LOCKED, marked 'sending' with the worker's
 * id, attempts counted) and commits; a second marks them 'sent' in one statement over an
 * array of their ids and inserts their attempt rows, and commits. Commits are synchronous, as
 * Herald's session makes them. Prints "workers W batch B claimed N sent M transactions T";
 * exit 0 when every claimed delivery was recorded sent.
 *
 * copy: the import's limit. The rows `herald import` writes for the benchmark's generated
 * campaign (one campaign, its steps, one recipient per CSV row, one delivery per recipient
 * and step, the campaign's pending count), in one transaction, the recipients and the
 * deliveries each through one COPY. No validation, no lookups, no staging. CSV is the
 * benchmark's own (a header "id,var1,var2...", then unquoted rows); DUE_MS gives each step's
 * due time. Prints "recipients N deliveries M"; exit 0, or 1 with a message on stderr.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#define MAX_STEPS 16
#define MAX_COLS 16
#define MAX_WORKERS 64
/* COPY text held before it is sent: few round trips, flat memory. */
#define COPY_CHUNK (256u << 10)

/* ---- claims and results ------------------------------------------------------------------- */

/* The claim as the issue states it: Herald's due order, the rows other workers hold skipped. */
static const char q_claim[] =
	"UPDATE deliveries SET state = 'sending', claimed_by = $1, attempts = attempts + 1 "
	"WHERE id IN (SELECT id FROM deliveries WHERE campaign_id = $2 AND state IN "
	"('pending', 'retrying', 'deferred') AND next_at_ms <= $3 ORDER BY next_at_ms, id "
	"LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id";
/* The results, only where the worker still holds the claim (as Herald's are). */
static const char q_sent[] =
	"UPDATE deliveries SET state = 'sent', claimed_by = NULL, last_error = NULL "
	"WHERE id = ANY($1::bigint[]) AND state = 'sending' AND claimed_by = $2";
static const char q_attempts[] =
	"INSERT INTO attempts (campaign_id, delivery_id, started_at_ms, duration_ms, http_status, "
	"outcome) SELECT $2, id, $3, 0, 200, 'sent' FROM unnest($1::bigint[]) AS a(id)";

struct job {
	const char *uri;
	const char *campaign;         /* CAMPAIGN_ID, NOW_MS, BATCH: passed on as text */
	const char *now_ms;
	const char *batch;
};

struct worker {
	pthread_t thread;
	const struct job *job;
	pthread_barrier_t *start;
	int id;                       /* claimed_by: 1.. (no runner row: nothing here checks) */
	int64_t claimed, sent, transactions;
	int failed;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reports what went wrong with r (NULL: the connection's error) and clears it. -1. */
static int
fail_result(PGconn *conn, PGresult *r, const char *what)
{
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);

	fprintf(stderr, "bench-raw-pg: %s: %s%s", what, *msg ? msg : "unexpected answer",
	        *msg ? "" : "\n");
	PQclear(r);
	return -1;
}

/* Takes r: clears it, reporting it unless its status is want. 0 / -1. */
static int
result_ok(PGconn *conn, PGresult *r, ExecStatusType want, const char *what)
{
	if (!r || PQresultStatus(r) != want)
		return fail_result(conn, r, what);
	PQclear(r);
	return 0;
}

static int
exec_ok(PGconn *conn, const char *sql)
{
	return result_ok(conn, PQexec(conn, sql), PGRES_COMMAND_OK, sql);
}

static PGconn *
connect_to(const char *uri)
{
	PGconn *conn = PQconnectdb(uri);

	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "bench-raw-pg: %s", conn ? PQerrorMessage(conn) : "out of memory\n");
		PQfinish(conn);
		return NULL;
	}
	/* As Herald's session: a claim is durable before anything could be sent for it. */
	if (exec_ok(conn, "SET synchronous_commit = on") != 0) {
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * One claim and its results. Returns the number claimed (0: nothing left), or -1. The ids
 * travel back as an array literal built from the claim's answer, as Herald's batches do.
 */
static int
claim_round(struct worker *w, PGconn *conn, const char *worker_id, char **ids, size_t *cap)
{
	const char *claim_params[4] = {worker_id, w->job->campaign, w->job->now_ms, w->job->batch};
	const char *sent_params[2], *attempt_params[3];
	char started[24];
	PGresult *r;
	size_t len = 0;
	int n, i;

	if (exec_ok(conn, "BEGIN") != 0)
		return -1;
	r = PQexecPrepared(conn, "claim", 4, claim_params, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
		return fail_result(conn, r, "claim");
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		const char *id = PQgetvalue(r, i, 0);
		size_t need = len + strlen(id) + 3;

		if (need > *cap) {
			size_t grown = *cap ? *cap * 2 : 1024;
			char *p;

			while (grown < need)
				grown *= 2;
			if (!(p = realloc(*ids, grown))) {
				fprintf(stderr, "bench-raw-pg: out of memory\n");
				PQclear(r);
				return -1;
			}
			*ids = p;
			*cap = grown;
		}
		(*ids)[len++] = i ? ',' : '{';
		memcpy(*ids + len, id, strlen(id));
		len += strlen(id);
	}
	PQclear(r);
	if (exec_ok(conn, "COMMIT") != 0)
		return -1;
	w->transactions++;
	if (n == 0)
		return 0;
	(*ids)[len++] = '}';
	(*ids)[len] = '\0';
	w->claimed += n;

	/* No request: the answers would all say "accepted" now. */
	snprintf(started, sizeof started, "%" PRId64, now_ms());
	sent_params[0] = *ids;
	sent_params[1] = worker_id;
	attempt_params[0] = *ids;
	attempt_params[1] = w->job->campaign;
	attempt_params[2] = started;
	if (exec_ok(conn, "BEGIN") != 0)
		return -1;
	r = PQexecPrepared(conn, "sent", 2, sent_params, NULL, NULL, 0);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
		return fail_result(conn, r, "results");
	w->sent += strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	if (result_ok(conn, PQexecPrepared(conn, "attempts", 3, attempt_params, NULL, NULL, 0),
	              PGRES_COMMAND_OK, "attempts") != 0 ||
	    exec_ok(conn, "COMMIT") != 0)
		return -1;
	w->transactions++;
	return n;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	PGconn *conn;
	char worker_id[16], shard_sql[80], *ids = NULL;
	size_t cap = 0;
	int n;

	snprintf(worker_id, sizeof worker_id, "%d", w->id);
	w->failed = 1;
	/* Each connection writes its own shard of the counts, as each Herald session does. */
	snprintf(shard_sql, sizeof shard_sql,
	         "SELECT set_config('herald.count_shard', '%d', false)", w->id);
	if ((conn = connect_to(w->job->uri)) &&
	    result_ok(conn, PQexec(conn, shard_sql), PGRES_TUPLES_OK, "count shard") == 0 &&
	    result_ok(conn, PQprepare(conn, "claim", q_claim, 0, NULL), PGRES_COMMAND_OK,
	              "prepare claim") == 0 &&
	    result_ok(conn, PQprepare(conn, "sent", q_sent, 0, NULL), PGRES_COMMAND_OK,
	              "prepare results") == 0 &&
	    result_ok(conn, PQprepare(conn, "attempts", q_attempts, 0, NULL), PGRES_COMMAND_OK,
	              "prepare attempts") == 0)
		w->failed = 0;
	/* Every worker waits here, failed or not, so that none is left waiting for it; the
	   others then start together, each connection made beforehand. */
	pthread_barrier_wait(w->start);
	while (!w->failed && (n = claim_round(w, conn, worker_id, &ids, &cap)) != 0)
		if (n < 0)
			w->failed = 1;
	free(ids);
	PQfinish(conn);
	return NULL;
}

static int
claim_main(int argc, char **argv)
{
	struct worker workers[MAX_WORKERS];
	pthread_barrier_t start;
	struct job job;
	int64_t claimed = 0, sent = 0, transactions = 0;
	long n_workers, batch;
	int i, failed = 0;

	if (argc != 7 || (n_workers = strtol(argv[5], NULL, 10)) < 1 || n_workers > MAX_WORKERS ||
	    (batch = strtol(argv[6], NULL, 10)) < 1) {
		fprintf(stderr, "usage: bench-raw-pg claim URI CAMPAIGN_ID NOW_MS WORKERS BATCH\n");
		return 64;
	}
	job.uri = argv[2];
	job.campaign = argv[3];
	job.now_ms = argv[4];
	job.batch = argv[6];
	if (pthread_barrier_init(&start, NULL, (unsigned)n_workers) != 0) {
		fprintf(stderr, "bench-raw-pg: cannot make a barrier\n");
		return 1;
	}
	memset(workers, 0, sizeof workers);
	for (i = 0; i < n_workers; i++) {
		workers[i].job = &job;
		workers[i].start = &start;
		workers[i].id = i + 1;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			/* The barrier counts on every worker: without this one, none could start. */
			fprintf(stderr, "bench-raw-pg: cannot start a worker thread\n");
			exit(1);
		}
	}
	for (i = 0; i < n_workers; i++) {
		pthread_join(workers[i].thread, NULL);
		claimed += workers[i].claimed;
		sent += workers[i].sent;
		transactions += workers[i].transactions;
		failed |= workers[i].failed;
	}
	pthread_barrier_destroy(&start);
	printf("workers %ld batch %ld claimed %" PRId64 " sent %" PRId64 " transactions %" PRId64
	       "\n", n_workers, batch, claimed, sent, transactions);
	return failed || sent != claimed ? 1 : 0;
}

/* ---- the import's COPY -------------------------------------------------------------------- */

static const char q_campaign[] =
	"INSERT INTO campaigns (key, name, channel, provider, timezone, start_date, anchor, "
	"expire_after_ms, created_at_ms, updated_at_ms) VALUES ('raw', 'raw', 'fh', 'feihe', "
	"'Asia/Shanghai', '2030-01-01', 'start_date', $1, 0, 0) RETURNING id";
static const char q_step[] =
	"INSERT INTO steps (campaign_id, position, day, time, message) VALUES ($1, $2, $2, '10:00', "
	"'{\"type\":\"text\",\"text\":\"{{nickname|朋友}}，欢迎！\"}')";
/* The recipients get their ids here, so the deliveries' COPY can name them without a lookup;
   the sequence is then moved past them, as if it had handed them out. */
static const char q_last_recipient[] = "SELECT coalesce(max(id), 0) FROM recipients";
static const char q_recipient_seq[] =
	"SELECT setval(pg_get_serial_sequence('recipients', 'id'), $1)";
/* The counts `status` reads; the schema's trigger counts only changes of state. */
static const char q_counts[] =
	"INSERT INTO delivery_counts (campaign_id, state, n) VALUES ($1, 'pending', $2) "
	"ON CONFLICT (campaign_id, state, shard) DO UPDATE SET n = excluded.n";

struct copy {
	PGconn *conn;
	FILE *csv;
	char campaign_id[24];
	int64_t first_id;             /* the first recipient's id, minus one */
	int64_t expire_after_ms;
	int64_t due_ms[MAX_STEPS];
	int n_steps;
	int64_t recipients, deliveries;
	uint64_t rng;                 /* xorshift, as import's MsgRandom */
	char *cols[MAX_COLS];         /* the CSV header's names (owned) */
	int n_cols;
	char *out;                    /* COPY text not sent yet */
	size_t len, cap;
	int failed;                   /* out of memory, or a record too long */
};

static uint32_t
next_random(struct copy *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return (uint32_t)(c->rng >> 16);
}

static int
split(char *line, char **f, int max)
{
	int n = 0;

	while (n < max) {
		f[n++] = line;
		if (!(line = strchr(line, ',')))
			break;
		*line++ = '\0';
	}
	return n;
}

static void
out_add(struct copy *c, const char *s, size_t n)
{
	if (c->failed)
		return;
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : COPY_CHUNK * 2;
		char *p;

		while (cap < c->len + n + 1)
			cap *= 2;
		if (!(p = realloc(c->out, cap))) {
			c->failed = 1;
			return;
		}
		c->out = p;
		c->cap = cap;
	}
	memcpy(c->out + c->len, s, n);
	c->len += n;
}

/* A field of COPY's text format: backslash, tab, newline and carriage return escaped. */
static void
out_field(struct copy *c, const char *v)
{
	size_t run;

	while (*v) {
		run = strcspn(v, "\\\t\n\r");
		out_add(c, v, run);
		if (!v[run])
			break;
		/* A backslash, then t, n, r or the backslash itself. */
		out_add(c, "\\", 1);
		out_add(c, v[run] == '\t' ? "t" : v[run] == '\n' ? "n" : v[run] == '\r' ? "r" : "\\", 1);
		v += run + 1;
	}
}

static void
out_printf(struct copy *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out_printf(struct copy *c, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		c->failed = 1;
		return;
	}
	out_add(c, tmp, (size_t)n);
}

/* Sends what is buffered, once there is a chunk of it (or all of it, with all). 0 / -1. */
static int
out_send(struct copy *c, int all)
{
	if (c->failed) {
		fprintf(stderr, "bench-raw-pg: out of memory, or a record too long\n");
		return -1;
	}
	if (!c->len || (!all && c->len < COPY_CHUNK))
		return 0;
	if (PQputCopyData(c->conn, c->out, (int)c->len) != 1) {
		fprintf(stderr, "bench-raw-pg: COPY: %s", PQerrorMessage(c->conn));
		return -1;
	}
	c->len = 0;
	return 0;
}

/* The recipient record as import stores it: {"id":...,"vars":{name:value,...}}. */
static void
out_record(struct copy *c, char **f, int n)
{
	int i;

	out_add(c, "{\"id\":\"", 7);
	out_field(c, f[0]);
	out_add(c, "\"", 1);
	for (i = 1; i < n && i < c->n_cols; i++) {
		out_add(c, i == 1 ? ",\"vars\":{\"" : ",\"", i == 1 ? 10 : 2);
		out_field(c, c->cols[i]);
		out_add(c, "\":\"", 3);
		out_field(c, f[i]);
		out_add(c, "\"", 1);
	}
	out_add(c, n > 1 ? "}}" : "}", n > 1 ? 2 : 1);
}

/*
 * One COPY over the CSV's rows: the recipients (deliveries == 0) or their deliveries. The file
 * is read once for each, as one connection carries one COPY at a time and the deliveries of a
 * million recipients would not fit in memory. 0 / -1.
 */
static int
copy_pass(struct copy *c, int deliveries)
{
	char *line = NULL, *f[MAX_COLS];
	size_t cap = 0;
	ssize_t len;
	int64_t row = 0;
	int n, i, rc = -1;
	PGresult *r;

	r = PQexec(c->conn, deliveries ?
	           "COPY deliveries (campaign_id, recipient_id, step, due_at_ms, next_at_ms, "
	           "expires_at_ms, msg_random) FROM STDIN" :
	           "COPY recipients (id, campaign_id, rid, data) FROM STDIN");
	if (result_ok(c->conn, r, PGRES_COPY_IN, "COPY") != 0)
		return -1;
	rewind(c->csv);
	if (getline(&line, &cap, c->csv) <= 0)
		goto end;
	while ((len = getline(&line, &cap, c->csv)) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		n = split(line, f, MAX_COLS);
		row++;
		if (!deliveries) {
			out_printf(c, "%" PRId64 "\t%s\t", c->first_id + row, c->campaign_id);
			out_field(c, f[0]);
			out_add(c, "\t", 1);
			out_record(c, f, n);
			out_add(c, "\n", 1);
		}
		/* campaign, recipient, step, due, next attempt (= due), expiry, MsgRandom */
		for (i = 0; deliveries && i < c->n_steps; i++)
			out_printf(c, "%s\t%" PRId64 "\t%d\t%" PRId64 "\t%" PRId64 "\t%" PRId64
			           "\t%" PRIu32 "\n", c->campaign_id, c->first_id + row, i + 1,
			           c->due_ms[i], c->due_ms[i], c->due_ms[i] + c->expire_after_ms,
			           next_random(c));
		if (out_send(c, 0) != 0)
			goto end;
	}
	if (out_send(c, 1) != 0)
		goto end;
	rc = 0;
end:
	free(line);
	/* The COPY ends either way; on an error it is abandoned, and the transaction with it. */
	if (PQputCopyEnd(c->conn, rc ? "bench-raw-pg gave up" : NULL) != 1) {
		fprintf(stderr, "bench-raw-pg: COPY: %s", PQerrorMessage(c->conn));
		rc = -1;
	}
	/* libpq wants every result read before the next statement. */
	while ((r = PQgetResult(c->conn))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
			fprintf(stderr, "bench-raw-pg: COPY: %s", PQresultErrorMessage(r));
			rc = -1;
		}
		PQclear(r);
	}
	if (rc == 0) {
		if (deliveries)
			c->deliveries = row * c->n_steps;
		else
			c->recipients = row;
	}
	return rc;
}

/* Runs a statement with text parameters; its first value copied into out (if given). 0 / -1. */
static int
query_value(struct copy *c, const char *what, const char *sql, int n, const char *const *params,
            char *out, size_t size)
{
	PGresult *r = PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);

	if (!r || PQresultStatus(r) != (out ? PGRES_TUPLES_OK : PGRES_COMMAND_OK) ||
	    (out && PQntuples(r) < 1))
		return fail_result(c->conn, r, what);
	if (out)
		snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

/* The CSV's header: the names of the recipients' variables. 0 / -1. */
static int
read_header(struct copy *c)
{
	char *line = NULL, *f[MAX_COLS];
	size_t cap = 0;
	int i, n, rc = -1;

	if (getline(&line, &cap, c->csv) <= 0) {
		fprintf(stderr, "bench-raw-pg: empty CSV\n");
		goto out;
	}
	line[strcspn(line, "\r\n")] = '\0';
	n = split(line, f, MAX_COLS);
	for (i = 0; i < n; i++)
		if (!(c->cols[c->n_cols++] = strdup(f[i]))) {
			fprintf(stderr, "bench-raw-pg: out of memory\n");
			goto out;
		}
	rc = 0;
out:
	free(line);
	return rc;
}

static int
copy_main(int argc, char **argv)
{
	struct copy c;
	char num[2][24], last[24];
	const char *p[2];
	int i, rc = 1;

	if (argc < 6 || argc - 5 > MAX_STEPS) {
		fprintf(stderr, "usage: bench-raw-pg copy URI CSV EXPIRE_AFTER_MS DUE_MS...\n");
		return 64;
	}
	memset(&c, 0, sizeof c);
	c.expire_after_ms = strtoll(argv[4], NULL, 10);
	for (i = 5; i < argc; i++)
		c.due_ms[c.n_steps++] = strtoll(argv[i], NULL, 10);
	c.rng = 0x9e3779b97f4a7c15ULL;
	if (!(c.csv = fopen(argv[3], "r"))) {
		perror(argv[3]);
		return 1;
	}
	if (read_header(&c) != 0 || !(c.conn = connect_to(argv[2])) || exec_ok(c.conn, "BEGIN") != 0)
		goto out;
	snprintf(num[0], sizeof num[0], "%" PRId64, c.expire_after_ms);
	p[0] = num[0];
	if (query_value(&c, "campaign", q_campaign, 1, p, c.campaign_id, sizeof c.campaign_id) != 0)
		goto out;
	p[0] = c.campaign_id;
	p[1] = num[1];
	for (i = 0; i < c.n_steps; i++) {
		snprintf(num[1], sizeof num[1], "%d", i + 1);
		if (query_value(&c, "step", q_step, 2, p, NULL, 0) != 0)
			goto out;
	}
	if (query_value(&c, "recipient ids", q_last_recipient, 0, NULL, last, sizeof last) != 0)
		goto out;
	c.first_id = strtoll(last, NULL, 10);
	if (copy_pass(&c, 0) != 0 || copy_pass(&c, 1) != 0)
		goto out;
	snprintf(num[0], sizeof num[0], "%" PRId64, c.first_id + c.recipients);
	p[0] = num[0];
	if (query_value(&c, "recipient ids", q_recipient_seq, 1, p, last, sizeof last) != 0)
		goto out;
	snprintf(num[1], sizeof num[1], "%" PRId64, c.deliveries);
	p[0] = c.campaign_id;
	if (query_value(&c, "counts", q_counts, 2, p, NULL, 0) != 0 || exec_ok(c.conn, "COMMIT") != 0)
		goto out;
	printf("recipients %" PRId64 " deliveries %" PRId64 "\n", c.recipients, c.deliveries);
	rc = 0;
out:
	PQfinish(c.conn);
	for (i = 0; i < c.n_cols; i++)
		free(c.cols[i]);
	free(c.out);
	fclose(c.csv);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		int v = PQlibVersion();

		printf("libpq %d.%d\n", v / 10000, v % 10000);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "claim") == 0)
		return claim_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "copy") == 0)
		return copy_main(argc, argv);
	fprintf(stderr, "usage: bench-raw-pg claim URI CAMPAIGN_ID NOW_MS WORKERS BATCH\n"
	                "       bench-raw-pg copy URI CSV EXPIRE_AFTER_MS DUE_MS...\n"
	                "       bench-raw-pg --version\n");
	return 64;
}
