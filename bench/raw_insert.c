/*
 * bench-raw-insert: the import benchmark's limit. It writes the rows `herald import` writes
 * for a generated campaign (one campaign, its steps, one recipient per CSV row and one
 * delivery per recipient and step) into a database `herald migrate` created, with the
 * pragmas Herald's store sets, in one transaction, through prepared statements reused for
 * every row, and the campaign's delivery count. It does nothing else: no validation, no
 * lookups, no upserts, no rendering.
 *
 *   bench-raw-insert DB CSV EXPIRE_AFTER_MS DUE_MS...
 *   bench-raw-insert --version      (prints the SQLite it runs on)
 *
 * BENCH_PRAGMAS, when set, replaces the built-in copy of Herald's pragmas.
 * CSV is the benchmark's own: a header "id,var1,var2...", then unquoted rows. DUE_MS gives
 * each step's due time (one argument per step). Exit 0, or 1 with a message on stderr.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/* Herald's store_open sets these on every connection (src/store/sqlite/sqlite.c). The benchmark reads them
   from there and passes them in BENCH_PRAGMAS, so the two cannot drift apart. */
#define HERALD_PRAGMAS \
	"PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; " \
	"PRAGMA foreign_keys = ON; PRAGMA temp_store = FILE;"

#define MAX_STEPS 16
#define MAX_COLS 16

static const char q_campaign[] =
	"INSERT INTO campaigns (key, name, channel, provider, timezone, start_date, anchor, "
	"expire_after_ms, created_at_ms, updated_at_ms) VALUES ('raw', 'raw', 'fh', 'feihe', "
	"'Asia/Shanghai', '2030-01-01', 'start_date', ?1, 0, 0)";
static const char q_step[] =
	"INSERT INTO steps (campaign_id, position, day, time, message) VALUES (?1, ?2, ?2, '10:00', "
	"'{\"type\":\"text\",\"text\":\"{{nickname|朋友}}，欢迎！\"}')";
static const char q_recipient[] =
	"INSERT INTO recipients (campaign_id, rid, data) VALUES (?1, ?2, ?3)";
/* The counts `status` reads; one upsert at the end (a count trigger, if the schema has one,
   has already made them right, and this leaves them so). */
static const char q_counts[] =
	"INSERT INTO delivery_counts (campaign_id, state, n) VALUES (?1, 'pending', ?2) "
	"ON CONFLICT (campaign_id, state) DO UPDATE SET n = excluded.n";
static const char q_delivery[] =
	"INSERT INTO deliveries (campaign_id, recipient_id, step, due_at_ms, next_at_ms, "
	"expires_at_ms, msg_random) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)";

struct raw {
	sqlite3 *db;
	sqlite3_stmt *recipient;      /* q_recipient */
	sqlite3_stmt *delivery;       /* q_delivery */
	int64_t campaign_id;
	int64_t expire_after_ms;
	int64_t deliveries;           /* rows written */
	int64_t due_ms[MAX_STEPS];
	int n_steps;
	uint64_t rng;                 /* xorshift, as import's MsgRandom */
	char *cols[MAX_COLS];         /* the CSV header's names (owned) */
	int n_cols;
};

static int
fail(struct raw *r, const char *what)
{
	fprintf(stderr, "bench-raw-insert: %s: %s\n", what, r->db ? sqlite3_errmsg(r->db) : "?");
	return -1;
}

static int
exec(struct raw *r, const char *sql)
{
	return sqlite3_exec(r->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : fail(r, sql);
}

static uint32_t
next_random(struct raw *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return (uint32_t)(r->rng >> 16);
}

/* Splits line in place at commas; returns the field count (at most max). */
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

/* The recipient record as import stores it: {"id":...,"vars":{name:value,...}}. */
static int
record_json(const struct raw *r, char **f, int n, char *out, size_t size)
{
	size_t len;
	int i, w;

	w = snprintf(out, size, "{\"id\":\"%s\"", f[0]);
	if (w < 0 || (size_t)w >= size)
		return -1;
	len = (size_t)w;
	for (i = 1; i < n && i < r->n_cols; i++) {
		w = snprintf(out + len, size - len, "%s\"%s\":\"%s\"", i == 1 ? ",\"vars\":{" : ",",
		             r->cols[i], f[i]);
		if (w < 0 || (size_t)w >= size - len)
			return -1;
		len += (size_t)w;
	}
	if (len + 3 > size)
		return -1;
	memcpy(out + len, n > 1 ? "}}" : "}", n > 1 ? 3 : 2);
	return 0;
}

static int
insert_row(struct raw *r, char **f, int n)
{
	char json[4096];
	int64_t rid;
	int i;

	if (record_json(r, f, n, json, sizeof json) != 0) {
		fprintf(stderr, "bench-raw-insert: record too long\n");
		return -1;
	}
	sqlite3_bind_int64(r->recipient, 1, r->campaign_id);
	sqlite3_bind_text(r->recipient, 2, f[0], -1, SQLITE_STATIC);
	sqlite3_bind_text(r->recipient, 3, json, -1, SQLITE_STATIC);
	if (sqlite3_step(r->recipient) != SQLITE_DONE)
		return fail(r, "recipient insert");
	sqlite3_reset(r->recipient);
	rid = sqlite3_last_insert_rowid(r->db);
	for (i = 0; i < r->n_steps; i++) {
		sqlite3_bind_int64(r->delivery, 1, r->campaign_id);
		sqlite3_bind_int64(r->delivery, 2, rid);
		sqlite3_bind_int(r->delivery, 3, i + 1);
		sqlite3_bind_int64(r->delivery, 4, r->due_ms[i]);
		sqlite3_bind_int64(r->delivery, 5, r->due_ms[i] + r->expire_after_ms);
		sqlite3_bind_int64(r->delivery, 6, (int64_t)next_random(r));
		if (sqlite3_step(r->delivery) != SQLITE_DONE)
			return fail(r, "delivery insert");
		sqlite3_reset(r->delivery);
		r->deliveries++;
	}
	return 0;
}

/* The campaign and its steps, then every CSV row. */
static int
load(struct raw *r, FILE *csv)
{
	sqlite3_stmt *st = NULL;
	char *line = NULL, *f[MAX_COLS];
	size_t cap = 0;
	ssize_t len;
	int i, n, rc = -1;

	if (sqlite3_prepare_v2(r->db, q_campaign, -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, r->expire_after_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	sqlite3_finalize(st);
	r->campaign_id = sqlite3_last_insert_rowid(r->db);
	if (sqlite3_prepare_v2(r->db, q_step, -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (i = 0; i < r->n_steps; i++) {
		sqlite3_bind_int64(st, 1, r->campaign_id);
		sqlite3_bind_int(st, 2, i + 1);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_reset(st);
	}
	if ((len = getline(&line, &cap, csv)) <= 0) {
		fprintf(stderr, "bench-raw-insert: empty CSV\n");
		goto out_quiet;
	}
	line[strcspn(line, "\r\n")] = '\0';
	n = split(line, f, MAX_COLS);
	for (i = 0; i < n; i++)
		if (!(r->cols[r->n_cols++] = strdup(f[i])))
			goto out;
	while ((len = getline(&line, &cap, csv)) > 0) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		n = split(line, f, MAX_COLS);
		if (insert_row(r, f, n) != 0)
			goto out_quiet;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(r->db, q_counts, -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, r->campaign_id);
	sqlite3_bind_int64(st, 2, r->deliveries);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	rc = 0;
out:
	if (rc)
		fail(r, "setup");
out_quiet:
	sqlite3_finalize(st);
	free(line);
	return rc;
}

int
main(int argc, char **argv)
{
	struct raw r = {0};
	const char *pragmas = getenv("BENCH_PRAGMAS");
	FILE *csv = NULL;
	int i, rc = 1;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("sqlite %s\n", sqlite3_libversion());
		return 0;
	}
	if (argc < 5 || argc - 4 > MAX_STEPS) {
		fprintf(stderr, "usage: bench-raw-insert DB CSV EXPIRE_AFTER_MS DUE_MS...\n");
		return 64;
	}
	r.expire_after_ms = strtoll(argv[3], NULL, 10);
	for (i = 4; i < argc; i++)
		r.due_ms[r.n_steps++] = strtoll(argv[i], NULL, 10);
	r.rng = 0x9e3779b97f4a7c15ULL;
#ifdef M_TRIM_THRESHOLD
	/* As herald's main() does: SQLite's per-statement buffers must not go back to the kernel. */
	mallopt(M_TRIM_THRESHOLD, 1 << 20);
#endif
	if (!(csv = fopen(argv[2], "r"))) {
		perror(argv[2]);
		return 1;
	}
	if (sqlite3_open_v2(argv[1], &r.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fail(&r, argv[1]);
		goto out;
	}
	sqlite3_busy_timeout(r.db, 10000);
	if (exec(&r, pragmas && *pragmas ? pragmas : HERALD_PRAGMAS) != 0 || exec(&r, "BEGIN IMMEDIATE") != 0)
		goto out;
	if (sqlite3_prepare_v3(r.db, q_recipient, -1, SQLITE_PREPARE_PERSISTENT, &r.recipient,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(r.db, q_delivery, -1, SQLITE_PREPARE_PERSISTENT, &r.delivery,
	                       NULL) != SQLITE_OK) {
		fail(&r, "prepare");
		goto out;
	}
	if (load(&r, csv) != 0 || exec(&r, "COMMIT") != 0)
		goto out;
	rc = 0;
out:
	sqlite3_finalize(r.recipient);
	sqlite3_finalize(r.delivery);
	sqlite3_close(r.db);
	for (i = 0; i < r.n_cols; i++)
		free(r.cols[i]);
	fclose(csv);
	return rc;
}
