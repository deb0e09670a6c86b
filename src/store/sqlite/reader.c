/*
 * reader: the read-only side a running scheduler serves over HTTP (metrics, health,
 * status page). It has its own connection, opened read-only and query-only, so a scrape never
 * takes the write lock: under WAL a reader neither waits for the scheduler's writes nor
 * delays them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite_int.h"
#include "util.h"

/* A reader gives up quickly: a health check that waits is no better than one that fails. */
#define READER_BUSY_MS 1000

struct store *
sqlite_open_reader(const char *path, char **err)
{
	struct sqlite_store *s = calloc(1, sizeof *s);

	if (!s) {
		util_err(err, "out of memory");
		return NULL;
	}
	s->base.be = &sqlite_backend;
	s->import_fd = s->runners_fd = -1;
	if (!(s->path = strdup(path))) {
		util_err(err, "out of memory");
		goto fail;
	}
	/* FULLMUTEX: the reader may be handed between the server's threads. */
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		util_err(err, "%s: cannot open database: %s", path,
		         s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, READER_BUSY_MS);
	sqlite3_extended_result_codes(s->db, 1);
	if (sqlite_exec(s, "PRAGMA query_only = 1", err) != 0)
		goto fail;
	return &s->base;
fail:
	sqlite_close(&s->base);
	return NULL;
}

int
sqlite_ping(struct store *base, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	sqlite3_stmt *q = NULL;
	int rc = -1;

	/* A real read of a table: takes a WAL read mark, so a locked or vanished file shows. */
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM (SELECT 1 FROM campaigns LIMIT 1)", -1,
	                       &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		rc = 0;
	if (rc)
		sqlite_fail(s, err, "database read");
	sqlite3_finalize(q);
	return rc;
}

int64_t
sqlite_due_backlog(struct store *base, int64_t now_ms, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;

	/* Per active campaign, a range count on the partial index deliveries_ready
	   (campaign_id, next_at_ms WHERE state is waiting): no scan of sent rows. */
	static const char sql[] =
		"SELECT coalesce(sum((SELECT count(*) FROM deliveries d WHERE d.campaign_id = c.id "
		"AND " STORE_WAITING("d.state") " AND d.next_at_ms <= ?1)), 0) "
		"FROM campaigns c WHERE c.state = 'active'";
	sqlite3_stmt *q = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, now_ms);
		if (sqlite3_step(q) == SQLITE_ROW)
			n = sqlite3_column_int64(q, 0);
	}
	if (n < 0)
		sqlite_fail(s, err, "due backlog");
	sqlite3_finalize(q);
	return n;
}

int
sqlite_channel_list(struct store *base, int (*fn)(void *arg, const struct store_channel *ch),
                   void *arg, char **err)
{
	struct sqlite_store *s = (struct sqlite_store *)base;
	static const char sql[] =
		"SELECT channel FROM campaigns WHERE state <> 'importing' UNION SELECT name FROM channels "
		"ORDER BY 1";
	struct store_channel ch;
	sqlite3_stmt *q = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int rc = -1, step;

	/* One read transaction: the names and their states agree. */
	if (sqlite_exec(s, "BEGIN", err) != 0)
		return -1;
	if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
		goto fail;
	while ((step = sqlite3_step(q)) == SQLITE_ROW) {
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *p);

			if (!p)
				goto fail;
			names = p;
		}
		if (!(names[n] = sqlite_col_dup(q, 0)))
			goto fail;
		n++;
	}
	if (step != SQLITE_DONE)
		goto fail;
	for (i = 0; i < n; i++) {
		if (sqlite_channel_get(&s->base, names[i], &ch, err) != 0)
			goto out;
		if (fn(arg, &ch) != 0)
			break;
	}
	rc = 0;
	goto out;
fail:
	sqlite_fail(s, err, "channels");
out:
	sqlite3_finalize(q);
	sqlite_rollback(&s->base);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}
