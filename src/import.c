/*
 * import: one pass over a campaign's recipients that validates and stages them, then the
 * writes in bounded transactions (the store's import). Memory stays flat whatever the recipient
 * count: records are read, checked, staged and freed one at a time, and duplicates are found
 * by the staging table, not in memory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "import.h"
#include "provider.h"
#include "recipients.h"
#include "sop.h"
#include "util.h"

/* Files smaller than this import too fast to need a progress line. */
#define PROGRESS_MIN_BYTES (8 << 20)
/* Staged recipients per temp-table commit. */
#define STAGE_FLUSH_ROWS 65536
/* A new campaign's batches: each transaction aims at BATCH_MS holding the write lock, within
   these many recipients. */
#define BATCH_MS 100
#define BATCH_MIN_ROWS 100
#define BATCH_MAX_ROWS 100000
/* The pause between two batches that lets other writers in. */
#define BATCH_REST_MS 15

struct run {
	struct store *s;
	struct campaign_def *def;
	const struct import_opts *opts;
	struct import_summary *sum;
	campaign_problem_fn *problem;
	void *arg;
	int problems;
	int fatal;                    /* a database error: stop */
	int64_t staged;               /* valid recipients staged */
	uint64_t rng;                 /* xorshift state for MsgRandom values */
	int64_t progress_at;          /* monotonic ms of the last progress line */
	int64_t progress_start;       /* monotonic ms of the first */
};

static void say(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(struct run *r, const char *fmt, ...)
{
	int cap = r->opts->max_problems > 0 ? r->opts->max_problems : 50;
	char msg[1400];
	va_list ap;

	if (++r->problems > cap)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->problem(r->arg, msg);
}

/* The problem callback campaign_parse uses; counts into the same run. */
static void
forward(void *arg, const char *msg)
{
	struct run *r = arg;

	say(r, "%s", msg);
}

static uint32_t
next_random(struct run *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return (uint32_t)(r->rng >> 16);
}

/* Stages one valid recipient and its deliveries. */
static int
stage_recipient(struct run *r, const cJSON *rec, const struct campaign_recipient *cr,
                const char *where)
{
	const struct campaign_def *d = r->def;
	int64_t seq, due, next, expires, day1;
	char *json = cJSON_PrintUnformatted(rec), *err = NULL;
	int put, i;

	if (!json)
		return -1;
	put = store_stage_recipient(r->s, cr->rid, json, &seq, &err);
	cJSON_free(json);
	if (put < 0)
		goto fail;
	if (put == STORE_PUT_DUPLICATE) {
		say(r, "%s: recipient \"%s\" is listed twice", where, cr->rid);
		return 0;
	}
	r->staged++;
	day1 = sop_day_start_ms(cr->tz, cr->anchor_day);
	for (i = 0; i < d->n_steps; i++) {
		due = sop_due_ms(cr->tz, cr->anchor_day, d->steps[i].day, d->steps[i].minutes);
		next = due;
		expires = due + d->row.expire_after_ms;
		if (d->channel->ops->schedule)
			d->channel->ops->schedule(d->channel, due, day1, d->row.expire_after_ms, &next,
			                          &expires);
		if (store_stage_delivery(r->s, seq, i + 1, due, next, expires, next_random(r), &err) != 0)
			goto fail;
		r->sum->deliveries++;
		if (r->sum->first_due_ms < 0 || due < r->sum->first_due_ms)
			r->sum->first_due_ms = due;
		if (due > r->sum->last_due_ms)
			r->sum->last_due_ms = due;
	}
	/* Commit the temp tables now and then: the staging transaction stays small. */
	if (r->staged % STAGE_FLUSH_ROWS == 0 && store_stage_flush(r->s, &err) != 0)
		goto fail;
	return 0;
fail:
	say(r, "%s", err ? err : "database error");
	free(err);
	r->fatal = 1;
	return -1;
}

/* The id a problem names the recipient by: whichever address the provider uses (SPEC §3). */
static const char *
record_id(const cJSON *rec)
{
	static const char *const keys[] = {"id", "session_id", "chat_id"};
	const cJSON *v;
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(rec, keys[i])) &&
		    v->valuestring[0])
			return v->valuestring;
	return NULL;
}

static void
one_recipient(struct run *r, const cJSON *rec, const char *where)
{
	struct campaign_recipient cr;
	char *err = NULL;

	r->sum->recipients++;
	if (campaign_recipient(r->def, rec, &cr, &err) != 0) {
		const char *id = record_id(rec);

		if (id)
			say(r, "%s (recipient \"%s\"): %s", where, id, err ? err : "invalid");
		else
			say(r, "%s: %s", where, err ? err : "invalid");
		free(err);
		return;
	}
	stage_recipient(r, rec, &cr, where);
}

static void
show_progress(struct run *r, struct recipients_reader *rd, int done)
{
	static const char bar[] = "########################################";
	const int width = (int)sizeof bar - 1;
	uint64_t at, total;
	int64_t now = clock_mono_ms(), spent, eta_s;
	double rate;
	int pct, filled;

	if (!r->opts->progress || (!done && now - r->progress_at < 500))
		return;
	if (!r->progress_start)
		r->progress_start = now;
	r->progress_at = now;
	recipients_progress(rd, &at, &total);
	/* Only a file that takes a while is worth a progress line. */
	if (total < PROGRESS_MIN_BYTES)
		return;
	pct = total ? (int)(at * 100 / total) : 0;
	filled = width * pct / 100;
	spent = now - r->progress_start;
	rate = spent > 0 ? (double)r->sum->recipients * 1000.0 / (double)spent : 0;
	/* The rest of the file at the rate so far: bytes, as records vary in size. */
	eta_s = at > 0 && spent > 0 ? (int64_t)((double)(total - at) * (double)spent / (double)at / 1000)
	                             : -1;
	fprintf(stderr, "\rimporting %s [%.*s%*s] %3d%%  %lld recipients  %.0f/s  ",
	        r->def->recipients_file, filled, bar, width - filled, "", pct,
	        (long long)r->sum->recipients, rate);
	if (done)
		fprintf(stderr, "done in %llds\n", (long long)(spent / 1000));
	else if (eta_s >= 0)
		fprintf(stderr, "ETA %lldm%02llds ", (long long)(eta_s / 60), (long long)(eta_s % 60));
}

/* Streams recipients_file; returns an exit code for a file that cannot be read at all. */
static enum campaign_rc
file_recipients(struct run *r)
{
	struct recipients_reader *rd;
	char where[1200], *err = NULL;
	cJSON *rec;
	long line;
	int rc;

	if (!(rd = recipients_open(r->def->recipients_file, &err))) {
		/* Missing, unreadable, or not a file at all: an input file problem (SPEC §1). */
		int nomem = errno == ENOMEM;

		say(r, "%s: %s", r->def->path, err ? err : "cannot open the recipients file");
		free(err);
		return nomem ? CAMPAIGN_ERROR : CAMPAIGN_NOINPUT;
	}
	while (!r->fatal && (rc = recipients_next(rd, &rec, &line, &err)) != 0) {
		if (rc < 0) {
			say(r, "%s: %s", r->def->recipients_file, err ? err : "unreadable record");
			free(err);
			err = NULL;
			if (rc == -2)
				break;
			continue;
		}
		snprintf(where, sizeof where, "%s: line %ld", r->def->recipients_file, line);
		one_recipient(r, rec, where);
		cJSON_Delete(rec);
		show_progress(r, rd, 0);
	}
	show_progress(r, rd, 1);
	recipients_close(rd);
	return CAMPAIGN_OK;
}

/* Reports a database error and stops the import. */
static void
db_fail(struct run *r, char *err)
{
	say(r, "%s", err ? err : "database error");
	free(err);
	r->fatal = 1;
}

/*
 * Finds the stored campaign of the definition's key: 1 a live one (*old), 0 none (or one an
 * unfinished import left hidden, which the writing import sweeps), -1 after saying why the
 * definition cannot go in: a cancelled campaign stays cancelled, and none changes provider.
 */
static int
stored_campaign(struct run *r, struct campaign_def *d, struct store_campaign *old)
{
	char *err = NULL;
	int found = store_import_campaign_get(r->s, d->row.key, old, &err);

	if (found < 0) {
		db_fail(r, err);
		return -1;
	}
	if (found == 0 || strcmp(old->state, "importing") == 0)
		return 0;
	if (strcmp(old->state, "cancelled") == 0) {
		say(r, "%s: campaign \"%s\" was cancelled; a cancelled campaign stays cancelled (give "
		    "the new one a new key)", d->path, d->row.key);
		return -1;
	}
	if (strcmp(old->provider, d->row.provider) != 0) {
		say(r, "%s: $.channel: campaign \"%s\" was imported for provider %s; it cannot move to "
		    "%s (give it a new key)", d->path, d->row.key, old->provider, d->row.provider);
		return -1;
	}
	return 1;
}

/* Campaign row and steps, inside the caller's transaction. */
static int
write_header(struct run *r, struct campaign_def *d, int64_t now_ms)
{
	char *err = NULL;
	int i, changed;

	if (store_campaign_put(r->s, &d->row, now_ms, &changed, &err) != 0)
		goto fail;
	r->sum->changed |= changed;
	for (i = 0; i < d->n_steps; i++) {
		if (store_step_put(r->s, d->row.id, i + 1, d->steps[i].day, d->steps[i].time,
		                   d->steps[i].message_json, &changed, &err) != 0)
			goto fail;
		r->sum->changed |= changed;
	}
	if (store_steps_trim(r->s, d->row.id, d->n_steps, &changed, &err) != 0)
		goto fail;
	r->sum->changed |= changed;
	return 0;
fail:
	db_fail(r, err);
	return -1;
}

/* Reading only: would the campaign row or its steps change? 1 / 0 / -1. */
static int
header_differs(struct run *r, struct campaign_def *d, const struct store_campaign *old)
{
	struct store_campaign c = d->row;
	char *err = NULL;
	int i, differs;

	c.id = old->id;
	if ((differs = store_campaign_differs(r->s, &c, d->n_steps, &err)) != 0)
		goto out;
	for (i = 0; i < d->n_steps && differs == 0; i++)
		differs = store_step_differs(r->s, old->id, i + 1, d->steps[i].day, d->steps[i].time,
		                             d->steps[i].message_json, &err);
out:
	if (differs < 0)
		db_fail(r, err);
	return differs;
}

static void
plan_into(struct import_summary *sum, const struct store_import_plan *p)
{
	sum->recipients_new = p->recipients_new;
	sum->recipients_changed = p->recipients_changed;
	sum->recipients_removed = p->recipients_removed;
	sum->deliveries_written = p->deliveries_written;
	sum->changed |= p->recipients_new || p->recipients_changed || p->recipients_removed ||
	                p->deliveries_written;
}

/*
 * The import lock (store_import_lock): one writing import at a time per database, held from
 * before it looks for leftovers until it is done, so a campaign found 'importing' under it
 * belongs to an import that died. Waits for another import to finish. 0 / -1.
 */
static int
import_lock(struct run *r)
{
	char *err = NULL;

	if (store_import_lock(r->s, &err) == 0)
		return 0;
	say(r, "%s", err);
	free(err);
	r->fatal = 1;
	return -1;
}

/*
 * A new campaign: written hidden ('importing') in batches of about BATCH_MS each, then shown
 * in one short transaction. On failure its rows are removed again.
 */
static int
write_new(struct run *r, struct campaign_def *d, int64_t now_ms)
{
	int64_t seq = 1, rows = BATCH_MIN_ROWS, n, t0, took;
	char *err = NULL;
	int i, changed;

	if (store_begin(r->s, &err) != 0 ||
	    store_campaign_put(r->s, &d->row, now_ms, &changed, &err) != 0 ||
	    store_import_hide(r->s, d->row.id, &err) != 0)
		goto fail;
	for (i = 0; i < d->n_steps; i++)
		if (store_step_put(r->s, d->row.id, i + 1, d->steps[i].day, d->steps[i].time,
		                   d->steps[i].message_json, &changed, &err) != 0)
			goto fail;
	if (store_commit(r->s, &err) != 0)
		goto fail;
	while (seq <= r->staged) {
		t0 = clock_mono_ms();
		if ((n = store_import_batch(r->s, d->row.id, seq, rows, &err)) < 0)
			goto fail;
		seq += rows;
		/* Aim each transaction at BATCH_MS: grow while well under it, shrink when over. */
		took = clock_mono_ms() - t0;
		if (took > BATCH_MS)
			rows = rows * BATCH_MS / took;
		else if (took < BATCH_MS / 2)
			rows *= 2;
		rows = rows < BATCH_MIN_ROWS ? BATCH_MIN_ROWS : rows > BATCH_MAX_ROWS ? BATCH_MAX_ROWS : rows;
		/* SQLite's lock is not fair: a writer that asked while this batch ran polls (every
		   10 ms for herald's own), and would lose every race to a next batch begun at once. */
		if (seq <= r->staged)
			clock_sleep_ms(BATCH_REST_MS);
	}
	if (store_import_reveal(r->s, d->row.id, &err) != 0)
		goto fail;
	r->sum->recipients_new = r->staged;
	r->sum->deliveries_written = r->sum->deliveries;
	r->sum->changed = 1;
	return 0;
fail:
	store_rollback(r->s);
	db_fail(r, err);
	err = NULL;
	if (d->row.id > 0 && store_import_sweep(r->s, d->row.id, &err) < 0)
		free(err);
	return -1;
}

/* A re-import: the differences, read first, then written in one transaction. */
static int
write_changes(struct run *r, struct campaign_def *d, int64_t now_ms)
{
	struct store_import_plan done;
	char *err = NULL;

	if (store_begin(r->s, &err) != 0 || write_header(r, d, now_ms) != 0 ||
	    store_import_apply(r->s, d->row.id, &done, &err) != 0)
		goto fail;
	if (store_commit(r->s, &err) != 0)
		goto fail;
	plan_into(r->sum, &done);
	return 0;
fail:
	store_rollback(r->s);
	if (!r->fatal)
		db_fail(r, err);
	return -1;
}

/* Stages every recipient; then a dry run reads what would change, an import writes it. */
static enum campaign_rc
import_body(struct run *r, struct campaign_def *d, int64_t now_ms)
{
	enum campaign_rc rc = CAMPAIGN_OK;
	struct store_campaign old;
	struct store_import_plan plan;
	char where[64], *err = NULL;
	const cJSON *rec;
	int i = 0, live, locked = 0;

	if ((live = stored_campaign(r, d, &old)) < 0)
		goto out;
	if (store_stage_begin(r->s, &err) != 0) {
		db_fail(r, err);
		goto out;
	}
	cJSON_ArrayForEach(rec, d->recipients) {
		snprintf(where, sizeof where, "$.recipients[%d]", i++);
		one_recipient(r, rec, where);
		if (r->fatal)
			goto out;
	}
	if (d->recipients_file && (rc = file_recipients(r)) != CAMPAIGN_OK)
		goto out;
	if (r->fatal || r->problems)
		goto out;
	if (store_stage_end(r->s, &err) != 0) {
		db_fail(r, err);
		goto out;
	}
	if (r->opts->dry_run) {
		/* Reading only: the same numbers the import would print. */
		if (!live) {
			r->sum->recipients_new = r->staged;
			r->sum->deliveries_written = r->sum->deliveries;
			r->sum->changed = 1;
		} else if (store_import_plan(r->s, old.id, &plan, &err) != 0) {
			db_fail(r, err);
		} else if ((r->sum->changed = header_differs(r, d, &old)) >= 0) {
			plan_into(r->sum, &plan);
		}
		goto out;
	}
	if (import_lock(r) != 0)
		goto out;
	locked = 1;
	/* Under the lock: leftovers of dead imports go, and the campaign is looked up again (an
	   import that held the lock may have written it meanwhile). */
	if (store_import_sweep(r->s, 0, &err) < 0) {
		db_fail(r, err);
		goto out;
	}
	if ((live = stored_campaign(r, d, &old)) < 0)
		goto out;
	if (!live) {
		d->row.id = 0;
		write_new(r, d, now_ms);
	} else if (store_import_plan(r->s, old.id, &plan, &err) != 0) {
		db_fail(r, err);
	} else {
		write_changes(r, d, now_ms);
	}
out:
	store_rollback(r->s);
	if (locked)
		store_import_unlock(r->s);
	if (rc != CAMPAIGN_OK)
		return rc;
	return r->fatal ? CAMPAIGN_ERROR : r->problems ? CAMPAIGN_INVALID : CAMPAIGN_OK;
}

enum campaign_rc
import_run(struct store *s, const struct config *cfg, const char *path,
           const struct import_opts *opts, int64_t now_ms, campaign_problem_fn *problem, void *arg,
           struct import_summary *out)
{
	struct campaign_def def;
	struct run r = {s, &def, opts, out, problem, arg, 0, 0, 0, 0, 0};
	enum campaign_rc rc;
	char *text = NULL;
	size_t len;
	int cap = opts->max_problems > 0 ? opts->max_problems : 50;

	memset(out, 0, sizeof *out);
	out->first_due_ms = out->last_due_ms = -1;
	if (util_read_file(path, 64 << 20, &text, &len) != 0) {
		int missing = errno == ENOENT || errno == EACCES || errno == EISDIR;

		say(&r, "%s: %s", path, strerror(errno));
		return missing ? CAMPAIGN_NOINPUT : CAMPAIGN_INVALID;
	}
	if (getrandom(&r.rng, sizeof r.rng, 0) != sizeof r.rng || r.rng == 0)
		r.rng = (uint64_t)now_ms | 1;
	rc = campaign_parse(path, text, len, cfg, &def, forward, &r);
	free(text);
	if (rc == CAMPAIGN_OK) {
		snprintf(out->key, sizeof out->key, "%s", def.row.key);
		snprintf(out->timezone, sizeof out->timezone, "%s", def.row.timezone);
		rc = import_body(&r, &def, now_ms);
	}
	campaign_def_free(&def);
	if (r.problems > cap) {
		char more[96];

		snprintf(more, sizeof more, "... and %d more problems", r.problems - cap);
		problem(arg, more);
	}
	return rc;
}
