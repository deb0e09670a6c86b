/*
 * cli_show: `status`, `deliveries` and `attempts`, as aligned tables for people or as the
 * JSON of SPEC §1 for scripts. Times print in the campaign's own time zone, with the offset.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "sop.h"
#include "store.h"
#include "table.h"
#include "tz.h"
#include "util.h"

/* What the callbacks share: output mode, the campaign's zone, the table or JSON array. */
struct show {
	int json;
	struct tz *zone;             /* the current campaign's zone (owned), NULL = UTC */
	struct table *table;
	cJSON *array;                /* borrowed from root */
	cJSON *root;
};

static void
fmt_time(const struct show *sh, int64_t ms, char out[40])
{
	if (ms < 0) {
		snprintf(out, 40, "-");
		return;
	}
	sop_format_instant(ms, sh->zone ? tz_offset_at(sh->zone, ms) : 0, out);
}

/* A JSON time: ISO 8601 with offset, or null. */
static void
add_time(const struct show *sh, cJSON *o, const char *name, int64_t ms)
{
	char buf[40];

	if (ms < 0) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	fmt_time(sh, ms, buf);
	cJSON_AddStringToObject(o, name, buf);
}

static void
add_str_or_null(cJSON *o, const char *name, const char *v)
{
	if (v && v[0])
		cJSON_AddStringToObject(o, name, v);
	else
		cJSON_AddNullToObject(o, name);
}

/* Starts the output: a table with these headers, or {"<key>": []}. */
static int
show_begin(struct show *sh, const char *key, int n_cols, const char *const *headers)
{
	if (sh->json) {
		sh->root = cJSON_CreateObject();
		sh->array = cJSON_AddArrayToObject(sh->root, key);
		return sh->array ? 0 : -1;
	}
	return (sh->table = table_new(n_cols, headers)) ? 0 : -1;
}

static void
show_end(struct show *sh, int print)
{
	if (print && sh->json) {
		char *s = cJSON_Print(sh->root);

		if (s)
			printf("%s\n", s);
		cJSON_free(s);
	} else if (print && sh->table) {
		table_print(sh->table, stdout);
	}
	cJSON_Delete(sh->root);
	table_free(sh->table);
	tz_free(sh->zone);
	memset(sh, 0, sizeof *sh);
}

static void
set_zone(struct show *sh, const char *name)
{
	if (sh->zone && strcmp(tz_name(sh->zone), name) == 0)
		return;
	tz_free(sh->zone);
	sh->zone = tz_load(name, NULL);
}

const char *
cli_campaign_state(const struct store_status *st)
{
	static const char *const open_states[] = {"pending", "sending", "retrying", "deferred"};
	size_t i;

	if (strcmp(st->c.state, "active") != 0)
		return st->c.state;
	for (i = 0; i < sizeof open_states / sizeof open_states[0]; i++)
		if (st->counts[store_state_index(open_states[i])] > 0)
			return "active";
	return "completed";
}

/* The latest error, or what the campaign waits on: a channel held by an operator or
   suspended by a fault outranks any single delivery's error (SPEC 5.11). */
static const char *
held_error(const struct store_status *st, char *buf, size_t size)
{
	if (strcmp(st->channel_state, "active") == 0 || strcmp(st->c.state, "active") != 0)
		return st->last_error;
	snprintf(buf, size, "waiting: channel %s %s%s%s", st->c.channel, st->channel_state,
	         st->channel_reason[0] ? ": " : "", st->channel_reason);
	return buf;
}

static int
status_row(void *arg, const struct store_status *st)
{
	struct show *sh = arg;
	char next[40], nums[STORE_N_STATES][24], held[1024];
	const char *cells[5 + STORE_N_STATES + 2];
	int i;

	set_zone(sh, st->c.timezone);
	if (sh->json) {
		cJSON *o = cJSON_CreateObject(), *counts;

		cJSON_AddStringToObject(o, "key", st->c.key);
		cJSON_AddStringToObject(o, "name", st->c.name);
		cJSON_AddStringToObject(o, "channel", st->c.channel);
		cJSON_AddStringToObject(o, "provider", st->c.provider);
		cJSON_AddStringToObject(o, "state", cli_campaign_state(st));
		counts = cJSON_AddObjectToObject(o, "counts");
		for (i = 0; i < STORE_N_STATES; i++)
			cJSON_AddNumberToObject(counts, store_states[i], (double)st->counts[i]);
		add_time(sh, o, "next_due_at", st->next_due_at_ms);
		add_str_or_null(o, "last_error", held_error(st, held, sizeof held));
		cJSON_AddItemToArray(sh->array, o);
		return 0;
	}
	fmt_time(sh, st->next_due_at_ms, next);
	cells[0] = st->c.key;
	cells[1] = st->c.name;
	cells[2] = st->c.channel;
	cells[3] = st->c.provider;
	cells[4] = cli_campaign_state(st);
	for (i = 0; i < STORE_N_STATES; i++) {
		snprintf(nums[i], sizeof nums[i], "%lld", (long long)st->counts[i]);
		cells[5 + i] = nums[i];
	}
	cells[5 + STORE_N_STATES] = next;
	cells[6 + STORE_N_STATES] = held_error(st, held, sizeof held);
	if (!cells[6 + STORE_N_STATES][0])
		cells[6 + STORE_N_STATES] = NULL;
	return table_add(sh->table, cells);
}

int
cmd_status(const struct cli_env *env)
{
	static const char *const headers[] = {
		"KEY", "NAME", "CHANNEL", "PROVIDER", "STATE", "PENDING", "SENDING", "SENT", "RETRYING",
		"DEFERRED", "FAILED", "EXPIRED", "CANCELLED", "UNKNOWN", "SUPPRESSED", "NEXT SEND",
		"LAST ERROR",
	};
	const char *key = env->argc > 0 ? env->argv[0] : NULL;
	struct show sh = {0};
	struct store *s;
	char *err = NULL;
	int rc = 0, n, i;

	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	sh.json = cli_flag(env, "--json");
	if (show_begin(&sh, "campaigns", 17, headers) != 0) {
		store_close(s);
		return 1;
	}
	if (!sh.json) {
		table_max_width(sh.table, 1, 24);
		table_max_width(sh.table, 16, 60);
		for (i = 5; i < 5 + STORE_N_STATES; i++)
			table_align_right(sh.table, i);
	}
	n = store_status(s, key, status_row, &sh, &err);
	if (n < 0) {
		cli_error("%s", err ? err : "status failed");
		rc = 1;
	} else if (n == 0 && key) {
		cli_error("no campaign with key \"%s\"", key);
		rc = EXIT_DATAERR;
	}
	show_end(&sh, rc == 0);
	free(err);
	store_close(s);
	return rc;
}

/* Opens the store and finds KEY for deliveries/attempts; prints why on failure. */
static struct store *
open_campaign(const struct cli_env *env, const char *key, struct store_campaign *c, int *rc)
{
	struct store *s = cli_open_existing(env, rc);
	char *err = NULL;
	int found;

	if (!s)
		return NULL;
	*rc = 1;
	if ((found = store_campaign_get(s, key, c, &err)) > 0) {
		*rc = 0;
		return s;
	}
	if (found == 0) {
		cli_error("no campaign with key \"%s\"", key);
		*rc = EXIT_DATAERR;
	} else {
		cli_error("%s", err);
	}
	free(err);
	store_close(s);
	return NULL;
}

static int
delivery_row(void *arg, const struct store_delivery_row *r)
{
	struct show *sh = arg;
	char due[40], step[16], attempts[16];

	if (sh->json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "recipient", r->recipient);
		cJSON_AddNumberToObject(o, "step", r->step);
		add_time(sh, o, "due_at", r->due_at_ms);
		cJSON_AddStringToObject(o, "state", r->state);
		cJSON_AddNumberToObject(o, "attempts", r->attempts);
		add_str_or_null(o, "last_error", r->last_error);
		add_str_or_null(o, "provider_message_id", r->provider_message_id);
		cJSON_AddItemToArray(sh->array, o);
		return 0;
	}
	fmt_time(sh, r->due_at_ms, due);
	snprintf(step, sizeof step, "%d", r->step);
	snprintf(attempts, sizeof attempts, "%d", r->attempts);
	return table_add(sh->table, (const char *const[]){r->recipient, step, due, r->state, attempts,
	                                                   r->provider_message_id, r->last_error});
}

/*
 * The cursor `deliveries` prints for the next page: the last row's due time and id, in hex.
 * Opaque to users (the README says so), so its form may change with the page order.
 */
static void
cursor_format(const struct store_page *p, char out[40])
{
	snprintf(out, 40, "%" PRIx64 "-%" PRIx64, (uint64_t)p->due_at_ms, (uint64_t)p->id);
}

/* One lowercase hex number of 1-16 digits at *s, which is moved past it. */
static int
hex_part(const char **s, uint64_t *v)
{
	int n;

	for (*v = 0, n = 0; (**s >= '0' && **s <= '9') || (**s >= 'a' && **s <= 'f'); (*s)++, n++)
		*v = *v << 4 | (uint64_t)(**s <= '9' ? **s - '0' : **s - 'a' + 10);
	return n >= 1 && n <= 16 ? 0 : -1;
}

static int
cursor_parse(const char *s, struct store_page *p)
{
	uint64_t due, id;

	if (hex_part(&s, &due) != 0 || *s++ != '-' || hex_part(&s, &id) != 0 || *s != '\0')
		return -1;
	p->due_at_ms = (int64_t)due;
	p->id = (int64_t)id;
	return 0;
}

/* Rows a terminal shows under the header with room for the cursor line and the prompt. */
static int64_t
screenful(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 6)
		return ws.ws_row - 3;
	return 21;
}


/* Whether state names a delivery state; if not, says so with the list, taken from the store. */
static int
known_state(const char *state)
{
	char list[256] = "";
	size_t used = 0;
	int i;

	if (store_state_index(state) >= 0)
		return 1;
	for (i = 0; i < STORE_N_STATES && used < sizeof list; i++)
		used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
		                         store_states[i]);
	cli_error("--state: \"%s\" is not a delivery state (%s)", state, list);
	return 0;
}

int
cmd_deliveries(const struct cli_env *env)
{
	static const char *const headers[] = {"RECIPIENT", "STEP", "DUE", "STATE", "ATTEMPTS",
	                                      "MESSAGE ID", "LAST ERROR"};
	const char *state = cli_opt(env, "--state"), *limit_arg = cli_opt(env, "--limit");
	const char *after_arg = cli_opt(env, "--after");
	struct store_page after, next = {0, 0};
	struct store_campaign c;
	struct show sh = {0};
	struct store *s;
	char *err = NULL, cursor[40];
	int64_t limit = 0;
	int rc, more = 0;

	if (state && !known_state(state))
		return EXIT_USAGE;
	if (limit_arg && (util_parse_i64(limit_arg, &limit) != 0 || limit < 1)) {
		cli_error("--limit must be a positive integer");
		return EXIT_USAGE;
	}
	if (after_arg && cursor_parse(after_arg, &after) != 0) {
		cli_error("--after: \"%s\" is not a cursor printed by herald deliveries", after_arg);
		return EXIT_USAGE;
	}
	/* A person at a terminal gets a screenful and the cursor on; a script gets everything. */
	if (!limit_arg && isatty(STDOUT_FILENO))
		limit = screenful();
	if (!(s = open_campaign(env, env->argv[0], &c, &rc)))
		return rc;
	sh.json = cli_flag(env, "--json");
	set_zone(&sh, c.timezone);
	if (show_begin(&sh, "deliveries", 7, headers) == 0) {
		if (!sh.json) {
			table_align_right(sh.table, 1);
			table_align_right(sh.table, 4);
			table_max_width(sh.table, 6, 80);
		}
		if (store_deliveries(s, c.id, state, after_arg ? &after : NULL, limit, delivery_row,
		                     &sh, &next, &more, &err) != 0) {
			cli_error("%s", err ? err : "deliveries failed");
			rc = 1;
		}
	} else {
		rc = 1;
	}
	if (rc == 0 && more)
		cursor_format(&next, cursor);
	if (rc == 0 && sh.json) {
		if (more)
			cJSON_AddStringToObject(sh.root, "next", cursor);
		else
			cJSON_AddNullToObject(sh.root, "next");
	}
	show_end(&sh, rc == 0);
	if (rc == 0 && !cli_flag(env, "--json") && more)
		printf("more: herald deliveries %s%s%s --after %s\n", c.key, state ? " --state " : "",
		       state ? state : "", cursor);
	free(err);
	store_close(s);
	return rc;
}

static int
attempt_row(void *arg, const struct store_attempt_row *r)
{
	struct show *sh = arg;
	char at[40], step[16], dur[24] = "-", http[16] = "-";

	if (sh->json) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "recipient", r->recipient);
		cJSON_AddNumberToObject(o, "step", r->step);
		add_time(sh, o, "started_at", r->started_at_ms);
		if (r->duration_ms >= 0)
			cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_ms);
		else
			cJSON_AddNullToObject(o, "duration_ms");
		if (r->http_status)
			cJSON_AddNumberToObject(o, "http_status", r->http_status);
		else
			cJSON_AddNullToObject(o, "http_status");
		add_str_or_null(o, "provider_code", r->provider_code);
		add_str_or_null(o, "provider_message", r->provider_message);
		cJSON_AddStringToObject(o, "outcome", r->outcome);
		cJSON_AddItemToArray(sh->array, o);
		return 0;
	}
	fmt_time(sh, r->started_at_ms, at);
	snprintf(step, sizeof step, "%d", r->step);
	if (r->duration_ms >= 0)
		snprintf(dur, sizeof dur, "%lld", (long long)r->duration_ms);
	if (r->http_status)
		snprintf(http, sizeof http, "%d", r->http_status);
	return table_add(sh->table, (const char *const[]){r->recipient, step, at, dur, http,
	                                                   r->provider_code, r->outcome,
	                                                   r->provider_message});
}

int
cmd_attempts(const struct cli_env *env)
{
	static const char *const headers[] = {"RECIPIENT", "STEP", "STARTED", "MS", "HTTP", "CODE",
	                                      "OUTCOME", "MESSAGE"};
	struct store_campaign c;
	struct show sh = {0};
	struct store *s;
	char *err = NULL;
	int rc;

	if (!(s = open_campaign(env, env->argv[0], &c, &rc)))
		return rc;
	sh.json = cli_flag(env, "--json");
	set_zone(&sh, c.timezone);
	if (show_begin(&sh, "attempts", 8, headers) == 0) {
		if (!sh.json) {
			table_align_right(sh.table, 1);
			table_align_right(sh.table, 3);
			table_align_right(sh.table, 4);
			table_max_width(sh.table, 7, 80);
		}
		if (store_attempts(s, c.id, cli_opt(env, "--recipient"), attempt_row, &sh, &err) != 0) {
			cli_error("%s", err ? err : "attempts failed");
			rc = 1;
		}
	} else {
		rc = 1;
	}
	show_end(&sh, rc == 0);
	free(err);
	store_close(s);
	return rc;
}

/* ---- show ------------------------------------------------------------------------------ */

/* "1d2h30m", "90s", "500ms": the duration units campaign definitions use. */
static void
fmt_duration(int64_t ms, char out[48])
{
	static const struct { const char *unit; int64_t ms; } units[] = {
		{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
	};
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < sizeof units / sizeof units[0] && n < 40; i++) {
		if (ms < units[i].ms)
			continue;
		n += (size_t)snprintf(out + n, 48 - n, "%lld%s", (long long)(ms / units[i].ms),
		                      units[i].unit);
		ms %= units[i].ms;
	}
	if (!out[0])
		snprintf(out, 48, "0s");
}

static int
status_copy(void *arg, const struct store_status *st)
{
	memcpy(arg, st, sizeof *st);
	return 0;
}

static int
step_json(void *arg, const struct store_step_row *r)
{
	cJSON *steps = arg, *o = cJSON_CreateObject(), *msg = cJSON_Parse(r->message_json);

	if (!o) {
		cJSON_Delete(msg);
		return -1;
	}
	cJSON_AddNumberToObject(o, "step", r->position);
	cJSON_AddNumberToObject(o, "day", r->day);
	cJSON_AddStringToObject(o, "time", r->time);
	if (msg)
		cJSON_AddItemToObject(o, "message", msg);
	else
		cJSON_AddStringToObject(o, "message", r->message_json);
	cJSON_AddItemToArray(steps, o);
	return 0;
}

static int
step_text(void *arg, const struct store_step_row *r)
{
	(void)arg;
	printf("  %d. day %d %s  %s\n", r->position, r->day, r->time, r->message_json);
	return 0;
}

int
cmd_show(const struct cli_env *env)
{
	struct store_status st;
	struct store_campaign c;
	struct store *s;
	char *err = NULL, expire[48];
	int64_t recipients;
	cJSON *root = NULL;
	int rc;

	if (!(s = open_campaign(env, env->argv[0], &c, &rc)))
		return rc;
	rc = 1;
	memset(&st, 0, sizeof st);
	if (store_status(s, c.key, status_copy, &st, &err) != 1 ||
	    (recipients = store_recipient_count(s, c.id, &err)) < 0) {
		cli_error("%s", err ? err : "show failed");
		goto out;
	}
	fmt_duration(c.expire_after_ms, expire);
	if (cli_flag(env, "--json")) {
		cJSON *steps;
		char *text;

		if (!(root = cJSON_CreateObject()))
			goto out;
		cJSON_AddStringToObject(root, "key", c.key);
		cJSON_AddStringToObject(root, "name", c.name);
		cJSON_AddStringToObject(root, "channel", c.channel);
		cJSON_AddStringToObject(root, "provider", c.provider);
		cJSON_AddStringToObject(root, "state", cli_campaign_state(&st));
		cJSON_AddStringToObject(root, "timezone", c.timezone);
		cJSON_AddStringToObject(root, "anchor", c.anchor);
		add_str_or_null(root, "start_date", c.start_date);
		cJSON_AddStringToObject(root, "expire_after", expire);
		/* The campaign's own; null means its channel's, which lives in the channels file. */
		add_str_or_null(root, "quiet_hours", c.quiet_hours);
		cJSON_AddNumberToObject(root, "recipients", (double)recipients);
		if (!(steps = cJSON_AddArrayToObject(root, "steps")) ||
		    store_steps(s, c.id, step_json, steps, &err) != 0) {
			cli_error("%s", err ? err : "show failed");
			goto out;
		}
		if (!(text = cJSON_Print(root)))
			goto out;
		printf("%s\n", text);
		cJSON_free(text);
	} else {
		printf("key:          %s\nname:         %s\nstate:        %s\n"
		       "channel:      %s (%s)\ntime zone:    %s\nanchor:       %s%s%s\n"
		       "expire after: %s\nquiet hours:  %s\nrecipients:   %lld\nsteps:\n",
		       c.key, c.name, cli_campaign_state(&st), c.channel, c.provider, c.timezone,
		       c.anchor, c.start_date[0] ? " " : "", c.start_date, expire,
		       c.quiet_hours[0] ? c.quiet_hours : "the channel's", (long long)recipients);
		if (store_steps(s, c.id, step_text, NULL, &err) != 0) {
			cli_error("%s", err ? err : "show failed");
			goto out;
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	free(err);
	store_close(s);
	return rc;
}

/* ---- export ---------------------------------------------------------------------------- */

struct export {
	struct show sh;              /* for the zone and time formatting */
	int csv;
	FILE *out;
};

/* One RFC 4180 field: quoted (with quotes doubled) when it holds a separator, quote or line
   break; NULL is an empty field. */
static void
csv_field(FILE *out, const char *v, int last)
{
	if (v && strpbrk(v, ",\"\r\n")) {
		fputc('"', out);
		for (; *v; v++) {
			if (*v == '"')
				fputc('"', out);
			fputc(*v, out);
		}
		fputc('"', out);
	} else if (v) {
		fputs(v, out);
	}
	fputs(last ? "\r\n" : ",", out);
}

static int
export_row(void *arg, const struct store_delivery_row *r)
{
	struct export *x = arg;
	char due[40], num[16];

	if (!x->csv) {
		cJSON *o = cJSON_CreateObject();
		char *line;

		if (!o)
			return -1;
		cJSON_AddStringToObject(o, "recipient", r->recipient);
		cJSON_AddNumberToObject(o, "step", r->step);
		add_time(&x->sh, o, "due_at", r->due_at_ms);
		cJSON_AddStringToObject(o, "state", r->state);
		cJSON_AddNumberToObject(o, "attempts", r->attempts);
		add_str_or_null(o, "last_error", r->last_error);
		add_str_or_null(o, "provider_message_id", r->provider_message_id);
		line = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!line)
			return -1;
		fprintf(x->out, "%s\n", line);
		cJSON_free(line);
	} else {
		fmt_time(&x->sh, r->due_at_ms, due);
		csv_field(x->out, r->recipient, 0);
		snprintf(num, sizeof num, "%d", r->step);
		csv_field(x->out, num, 0);
		csv_field(x->out, due, 0);
		csv_field(x->out, r->state, 0);
		snprintf(num, sizeof num, "%d", r->attempts);
		csv_field(x->out, num, 0);
		csv_field(x->out, r->last_error, 0);
		csv_field(x->out, r->provider_message_id, 1);
	}
	/* A closed pipe (export | head) ends the export instead of reading every row for nothing. */
	return ferror(x->out) ? -1 : 0;
}

int
cmd_export(const struct cli_env *env)
{
	const char *state = cli_opt(env, "--state"), *format = cli_opt(env, "--format");
	struct export x = {{0}, 1, stdout};
	struct store_page end;
	int more;
	struct store_campaign c;
	struct store *s;
	char *err = NULL;
	int rc;

	if (state && !known_state(state))
		return EXIT_USAGE;
	if (format && strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0) {
		cli_error("--format must be csv or jsonl");
		return EXIT_USAGE;
	}
	x.csv = !format || strcmp(format, "csv") == 0;
	if (!(s = open_campaign(env, env->argv[0], &c, &rc)))
		return rc;
	set_zone(&x.sh, c.timezone);
	/* The byte order mark is what makes spreadsheet programs read the file as UTF-8. */
	if (x.csv)
		fputs("\xEF\xBB\xBF" "recipient,step,due_at,state,attempts,last_error,"
		      "provider_message_id\r\n", x.out);
	if (store_deliveries(s, c.id, state, NULL, 0, export_row, &x, &end, &more, &err) != 0 &&
	    !ferror(x.out)) {
		cli_error("%s", err ? err : "export failed");
		rc = 1;
	}
	if (fflush(x.out) != 0 || ferror(x.out)) {
		cli_error("writing the export: %s", strerror(errno));
		rc = 1;
	}
	tz_free(x.sh.zone);
	free(err);
	store_close(s);
	return rc;
}
