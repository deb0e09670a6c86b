/*
 * campaign: parses and validates a campaign definition. Problems are reported with the
 * file and a JSON path ($.steps[1].time) and validation goes on, so one run lists them all.
 */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "provider.h"
#include "render.h"
#include "sop.h"
#include "utf8.h"
#include "util.h"

/*
 * Bounds on what a definition may say, so every instant Herald derives from it (due +
 * expire_after, day 1 + 3660 days, ...) stays far inside int64 milliseconds and inside the
 * four-digit years every printed date has. Ten years of expiry is already no expiry.
 */
#define DURATION_MAX_MS (3650 * 86400000LL)
#define DAY_MIN 0                     /* 1970-01-01 */
#define DAY_MAX 2932896               /* 9999-12-31 */
#define DATE_RANGE "1970-01-01 to 9999-12-31"

struct parse {
	const char *path;
	campaign_problem_fn *problem;
	void *arg;
	int problems;
};

static void report(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
report(struct parse *p, const char *fmt, ...)
{
	char msg[1024];
	char line[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(line, sizeof line, "%s: %s", p->path, msg);
	p->problems++;
	p->problem(p->arg, line);
}

/* Line and column (1-based) of byte offset `at` in text. */
static void
line_col(const char *text, size_t at, long *line, long *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < at; i++) {
		if (text[i] == '\n')
			(*line)++, *col = 1;
		else if (((unsigned char)text[i] & 0xC0) != 0x80)
			(*col)++;
	}
}

static const char *const top_keys[] = {
	"key", "name", "channel", "timezone", "start_date", "anchor", "expire_after", "steps",
	"recipients", "recipients_file", "quiet_hours", NULL,
};

static int
known_key(const char *const *keys, const char *k)
{
	for (; *keys; keys++)
		if (strcmp(*keys, k) == 0)
			return 1;
	return 0;
}

/* A string member: NULL if absent; reports a wrong type. */
static const char *
get_string(struct parse *p, const cJSON *obj, const char *key, int required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		if (required)
			report(p, "$.%s: missing (required)", key);
		return NULL;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0]) {
		report(p, "$.%s: must be a non-empty string", key);
		return NULL;
	}
	return v->valuestring;
}

static void
copy_field(struct parse *p, const char *key, const char *value, char *dst, size_t size)
{
	if (strlen(value) >= size) {
		report(p, "$.%s: longer than %zu bytes", key, size - 1);
		return;
	}
	memcpy(dst, value, strlen(value) + 1);
}

/* quiet_hours: the campaign's own, which overrides its channel's. */
static void
parse_quiet(struct parse *p, const cJSON *root, struct campaign_def *d)
{
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quiet_hours");
	char *err = NULL;

	d->quiet_from = d->quiet_to = -1;
	if (!q) {
		if (d->channel) {
			d->quiet_from = d->channel->quiet_from;
			d->quiet_to = d->channel->quiet_to;
		}
		return;
	}
	if (config_quiet_hours(q, &d->quiet_from, &d->quiet_to, &err) != 0) {
		report(p, "$.quiet_hours: %s", err ? err : "invalid");
		free(err);
		d->quiet_from = d->quiet_to = -1;
		return;
	}
	/* Both are minutes of a day (config_quiet_hours), so the text has exactly 11 bytes. */
	snprintf(d->row.quiet_hours, sizeof d->row.quiet_hours, "%02u:%02u-%02u:%02u",
	         (unsigned)d->quiet_from / 60 % 24, (unsigned)d->quiet_from % 60,
	         (unsigned)d->quiet_to / 60 % 24, (unsigned)d->quiet_to % 60);
}

/*
 * A provider that sends at the step's time itself (SaiNiu's sendtime, Tanmarket's showTime)
 * cannot be held back by quiet hours once called: a step inside them is invalid input.
 */
static void
check_quiet_steps(struct parse *p, const struct campaign_def *d)
{
	int i, m;

	if (!d->channel || !d->channel->ops->schedule || d->quiet_from < 0)
		return;
	for (i = 0; i < d->n_steps; i++) {
		m = d->steps[i].minutes;
		if (!d->steps[i].time[0] || (d->quiet_from < d->quiet_to
		                                 ? m < d->quiet_from || m >= d->quiet_to
		                                 : m < d->quiet_from && m >= d->quiet_to))
			continue;
		report(p, "$.steps[%d].time: %s is inside the quiet hours %02d:%02d-%02d:%02d; %s "
		       "sends at the step's time itself, so it cannot be deferred", i, d->steps[i].time,
		       d->quiet_from / 60, d->quiet_from % 60, d->quiet_to / 60, d->quiet_to % 60,
		       d->row.provider);
	}
}

/* key, name, channel, timezone, dates, anchor, expiry. */
static void
parse_header(struct parse *p, const cJSON *root, const struct config *cfg, struct campaign_def *d,
             enum campaign_rc *rc)
{
	const char *key = get_string(p, root, "key", 1), *name = get_string(p, root, "name", 0);
	const char *chan = get_string(p, root, "channel", 1), *zone = get_string(p, root, "timezone", 0);
	const char *start = get_string(p, root, "start_date", 0), *anchor = get_string(p, root, "anchor", 0);
	const char *expire = get_string(p, root, "expire_after", 0);
	char *err = NULL;

	if (key)
		copy_field(p, "key", key, d->row.key, sizeof d->row.key);
	copy_field(p, "name", name ? name : (key ? key : ""), d->row.name, sizeof d->row.name);
	if (chan) {
		copy_field(p, "channel", chan, d->row.channel, sizeof d->row.channel);
		if (!cfg) {
			report(p, "$.channel: \"%s\" cannot be checked: no configuration file", chan);
			*rc = CAMPAIGN_CONFIG;
		} else if (!(d->channel = config_channel(cfg, chan))) {
			report(p, "$.channel: no channel \"%s\" in the configuration", chan);
		} else if (config_usable(d->channel, CONFIG_NEED_SETTINGS, &err) != 0) {
			/* Its secrets are the sender's business; its other keys shape the schedule. */
			report(p, "%s", err ? err : "out of memory");
			free(err);
			err = NULL;
			*rc = CAMPAIGN_CONFIG;
		} else {
			snprintf(d->row.provider, sizeof d->row.provider, "%s", d->channel->ops->name);
		}
	}
	zone = zone ? zone : "Asia/Shanghai";
	copy_field(p, "timezone", zone, d->row.timezone, sizeof d->row.timezone);
	if (!(d->tz = tz_load(zone, &err)))
		report(p, "$.timezone: %s", err ? err : "unknown time zone");
	free(err);
	anchor = anchor ? anchor : "start_date";
	if (strcmp(anchor, "start_date") != 0 && strcmp(anchor, "enrollment") != 0)
		report(p, "$.anchor: must be \"start_date\" or \"enrollment\", not \"%s\"", anchor);
	snprintf(d->row.anchor, sizeof d->row.anchor, "%s", anchor);
	if (start && sop_parse_date(start, &d->start_day) != 0)
		report(p, "$.start_date: \"%s\" is not a date YYYY-MM-DD", start);
	else if (start && (d->start_day < DAY_MIN || d->start_day > DAY_MAX))
		report(p, "$.start_date: \"%s\" is outside %s", start, DATE_RANGE);
	else if (start)
		snprintf(d->row.start_date, sizeof d->row.start_date, "%s", start);
	if (!start && strcmp(anchor, "start_date") == 0)
		report(p, "$.start_date: missing (required when anchor is start_date)");
	if (d->channel && d->channel->ops->batching == PROVIDER_BY_CAMPAIGN &&
	    strcmp(anchor, "start_date") != 0)
		report(p, "$.anchor: must be start_date for %s (the provider counts days from one date)",
		       d->row.provider);
	d->row.expire_after_ms = 24 * 3600 * 1000LL;
	if (expire && sop_parse_duration(expire, &d->row.expire_after_ms) != 0)
		report(p, "$.expire_after: \"%s\" is not a duration such as \"90s\", \"15m\", \"2h30m\" or "
		       "\"7d\" (at most 3650d)", expire);
	else if (expire && d->row.expire_after_ms > DURATION_MAX_MS)
		report(p, "$.expire_after: \"%s\" is longer than 3650d", expire);
	parse_quiet(p, root, d);
}

static void
parse_step(struct parse *p, const cJSON *s, int i, struct campaign_def *d)
{
	struct campaign_step *st = &d->steps[d->n_steps];
	const cJSON *day = cJSON_GetObjectItemCaseSensitive(s, "day");
	const cJSON *time = cJSON_GetObjectItemCaseSensitive(s, "time");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(s, "message"), *v;
	char *err = NULL;
	int64_t n;

	if (!cJSON_IsObject(s)) {
		report(p, "$.steps[%d]: must be an object", i);
		return;
	}
	cJSON_ArrayForEach(v, s)
		if (strcmp(v->string, "day") && strcmp(v->string, "time") && strcmp(v->string, "message"))
			report(p, "$.steps[%d].%s: unknown key", i, v->string);
	if (!day || util_json_i64(day, &n) != 0 || n < 1 || n > 3660)
		report(p, "$.steps[%d].day: must be an integer from 1 (day 1 is the anchor date)", i);
	else
		st->day = (int)n;
	if (!cJSON_IsString(time) || sop_parse_hhmm(time->valuestring, &st->minutes) != 0)
		report(p, "$.steps[%d].time: must be \"HH:mm\" (00:00 to 23:59)", i);
	else
		snprintf(st->time, sizeof st->time, "%s", time->valuestring);
	if (!cJSON_IsObject(msg)) {
		report(p, "$.steps[%d].message: must be an object", i);
		return;
	}
	/*
	 * Placeholders are looked for in the decoded strings, as the scheduler renders them: in
	 * the serialized JSON a newline inside the braces is the two bytes "\n" and would hide
	 * one. A message with none is final as written, so it is held to the provider's limits
	 * now; one with placeholders is held to them per recipient (check_render).
	 */
	st->has_placeholders = render_json_has_placeholders(msg);
	if (d->channel && d->channel->ops->check_message(msg, !st->has_placeholders, &err) != 0)
		report(p, "$.steps[%d].message: %s", i, err ? err : "invalid");
	free(err);
	st->message = msg;
	st->message_json = cJSON_PrintUnformatted(msg);
	d->n_steps++;
}

static void
parse_steps(struct parse *p, const cJSON *root, struct campaign_def *d)
{
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(root, "steps"), *s;
	int i = 0;

	if (!cJSON_IsArray(steps) || cJSON_GetArraySize(steps) == 0) {
		report(p, "$.steps: must be a non-empty array");
		return;
	}
	if (!(d->steps = calloc((size_t)cJSON_GetArraySize(steps), sizeof *d->steps))) {
		report(p, "out of memory");
		return;
	}
	cJSON_ArrayForEach(s, steps)
		parse_step(p, s, i++, d);
}

/* recipients and recipients_file; the file path is relative to the definition's folder. */
static void
parse_recipient_sources(struct parse *p, const cJSON *root, struct campaign_def *d)
{
	const cJSON *inl = cJSON_GetObjectItemCaseSensitive(root, "recipients");
	const char *file = get_string(p, root, "recipients_file", 0);

	if (inl && !cJSON_IsArray(inl))
		report(p, "$.recipients: must be an array");
	else
		d->recipients = inl;
	if (file) {
		struct buf b = {0};
		char *dir = strdup(strcmp(d->path, "-") == 0 ? "." : d->path);

		if (dir && (file[0] == '/' || buf_printf(&b, "%s/%s", dirname(dir), file) == 0))
			d->recipients_file = file[0] == '/' ? strdup(file) : b.data;
		else
			buf_free(&b);
		free(dir);
	}
	if (!inl && !file)
		report(p, "$: no recipients: give \"recipients\", \"recipients_file\" or both");
}

enum campaign_rc
campaign_parse(const char *path, const char *text, size_t len, const struct config *cfg,
               struct campaign_def *d, campaign_problem_fn *problem, void *arg)
{
	struct parse p = {path, problem, arg, 0};
	enum campaign_rc rc = CAMPAIGN_OK;
	const cJSON *v;
	size_t bad;
	long line, col;

	memset(d, 0, sizeof *d);
	if (!(d->path = strdup(path)))
		return CAMPAIGN_ERROR;
	if (!utf8_valid(text, len, &bad)) {
		line_col(text, bad, &line, &col);
		report(&p, "line %ld, column %ld: invalid UTF-8", line, col);
		return CAMPAIGN_INVALID;
	}
	if (util_json_has_nul(text, len, &bad)) {
		line_col(text, bad, &line, &col);
		report(&p, "line %ld, column %ld: a string holds a NUL character (\\u0000)", line, col);
		return CAMPAIGN_INVALID;
	}
	if (!(d->root = cJSON_ParseWithLength(text, len))) {
		const char *at = cJSON_GetErrorPtr();

		line_col(text, at && at >= text && at <= text + len ? (size_t)(at - text) : 0, &line, &col);
		report(&p, "line %ld, column %ld: invalid JSON", line, col);
		return CAMPAIGN_INVALID;
	}
	if (!cJSON_IsObject(d->root)) {
		report(&p, "$: the definition must be a JSON object");
		return CAMPAIGN_INVALID;
	}
	cJSON_ArrayForEach(v, d->root)
		if (!known_key(top_keys, v->string))
			report(&p, "$.%s: unknown key", v->string);
	parse_header(&p, d->root, cfg, d, &rc);
	parse_steps(&p, d->root, d);
	check_quiet_steps(&p, d);
	parse_recipient_sources(&p, d->root, d);
	if (rc != CAMPAIGN_OK)
		return rc;
	return p.problems ? CAMPAIGN_INVALID : CAMPAIGN_OK;
}

void
campaign_def_free(struct campaign_def *d)
{
	int i;

	for (i = 0; d->steps && i < d->n_steps; i++) {
		cJSON_free(d->steps[i].message_json);
		cJSON_free(d->steps[i].first_rendered);
		free(d->steps[i].first_rid);
	}
	free(d->steps);
	tz_free(d->tz);
	for (i = 0; i < d->n_zones; i++)
		tz_free(d->zones[i]);
	tz_free(d->spare_zone);
	cJSON_Delete(d->root);
	free(d->recipients_file);
	free(d->path);
	memset(d, 0, sizeof *d);
}

/* vars: an object of scalars. */
static int
check_vars(const cJSON *vars, char **err)
{
	const cJSON *v;

	if (!vars)
		return 0;
	if (!cJSON_IsObject(vars))
		return util_err(err, "vars must be an object");
	cJSON_ArrayForEach(v, vars)
		if (cJSON_IsObject(v) || cJSON_IsArray(v))
			return util_err(err, "vars.%s must be a string, number or boolean", v->string);
	return 0;
}

/*
 * The recipient's own time zone, if it names one (SPEC 3): its day/time and quiet hours are
 * then local to it. Zones are loaded once per import; *z is the campaign's when none.
 */
static int
recipient_zone(struct campaign_def *d, const cJSON *rec, const struct tz **z, char **err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "timezone");
	struct tz *loaded;
	char *why = NULL;
	int i;

	*z = d->tz;
	if (!v)
		return 0;
	if (d->channel->ops->batching == PROVIDER_BY_CAMPAIGN)
		return util_err(err, "timezone: %s runs every group on the campaign's time zone; a "
		                "recipient cannot have its own", d->row.provider);
	if (!cJSON_IsString(v))
		return util_err(err, "timezone: must be an IANA time zone name");
	for (i = 0; i < d->n_zones; i++)
		if (strcmp(tz_name(d->zones[i]), v->valuestring) == 0) {
			*z = d->zones[i];
			return 0;
		}
	if (!(loaded = tz_load(v->valuestring, &why))) {
		util_err(err, "timezone: %s", why ? why : "unknown time zone");
		free(why);
		return -1;
	}
	if (d->n_zones < (int)(sizeof d->zones / sizeof d->zones[0])) {
		d->zones[d->n_zones++] = loaded;
	} else {
		tz_free(d->spare_zone);
		d->spare_zone = loaded;
	}
	*z = loaded;
	return 0;
}

/* The recipient's day 1: start_date, or its own enrolled_at (a date, or an instant, whose
   date is taken in the recipient's zone z). */
static int
anchor_day(const struct campaign_def *d, const cJSON *rec, const struct tz *z, int32_t *day,
           char **err)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(rec, "enrolled_at");
	int start = strcmp(d->row.anchor, "start_date") == 0;
	int64_t ms;

	/* Under a start_date anchor enrolled_at is unused, but a value that is wrong is still a
	   mistake in the data, and said so. */
	if (start && !e) {
		*day = d->start_day;
		return 0;
	}
	if (start && !cJSON_IsString(e))
		return util_err(err, "enrolled_at must be a date YYYY-MM-DD or an ISO 8601 time with "
		                "offset");
	if (!cJSON_IsString(e))
		return util_err(err, "enrolled_at is required (anchor is enrollment): a date YYYY-MM-DD "
		                "or an ISO 8601 time with offset");
	if (sop_parse_date(e->valuestring, day) == 0) {
		if (*day < DAY_MIN || *day > DAY_MAX)
			return util_err(err, "enrolled_at \"%s\" is outside %s", e->valuestring,
			                DATE_RANGE);
		if (start)
			*day = d->start_day;
		return 0;
	}
	if (sop_parse_instant(e->valuestring, &ms) == 0) {
		/* Bounded before any zone arithmetic, so none of it can overflow. */
		if (ms < (int64_t)DAY_MIN * 86400000 || ms >= ((int64_t)DAY_MAX + 1) * 86400000)
			return util_err(err, "enrolled_at \"%s\" is outside %s", e->valuestring,
			                DATE_RANGE);
		*day = start ? d->start_day : sop_local_day(z, ms);
		return 0;
	}
	return util_err(err, "enrolled_at \"%s\" is not a date YYYY-MM-DD or an ISO 8601 time with "
	                "offset", e->valuestring);
}

/*
 * A provider that carries every recipient in one request (Tanmarket's SOP: one content per
 * step for every group) cannot send a step that renders differently between recipients. The
 * first recipient's rendering is the reference; the first one that differs from it is
 * reported, once per step, so a thousand differing groups do not bury the other problems.
 */
static int
check_same(struct campaign_def *d, int i, const char *rid, const cJSON *out, char **err)
{
	struct campaign_step *st = &d->steps[i];
	char *json;
	int rc = 0;

	if (d->channel->ops->batching != PROVIDER_BY_CAMPAIGN)
		return 0;
	if (!(json = cJSON_PrintUnformatted(out)))
		return util_err(err, "out of memory");
	if (!st->first_rendered) {
		st->first_rendered = json;
		if (!(st->first_rid = strdup(rid)))
			rc = util_err(err, "out of memory");
		return rc;
	}
	if (strcmp(json, st->first_rendered) != 0 && !st->differs_reported) {
		st->differs_reported = 1;
		rc = util_err(err, "$.steps[%d].message renders differently for this group than for "
		              "\"%s\"; %s sends one content per step to every group, so its "
		              "placeholders must render the same for all", i, st->first_rid,
		              d->row.provider);
	}
	cJSON_free(json);
	return rc;
}

/* Renders every step for the recipient and checks the provider's limits on the result. */
static int
check_render(struct campaign_def *d, const char *rid, const cJSON *vars, char **err)
{
	char *missing = NULL, *inner = NULL;
	cJSON *out;
	int i, rc;

	for (i = 0; i < d->n_steps; i++) {
		if (!d->steps[i].has_placeholders)
			continue;
		if (!(out = render_json(d->steps[i].message, rid, vars, &missing))) {
			rc = missing ? util_err(err, "$.steps[%d].message: no value for {{%s}} and no "
			                        "default", i, missing)
			             : util_err(err, "out of memory");
			free(missing);
			return rc;
		}
		if ((rc = d->channel->ops->check_message(out, 1, &inner)) != 0)
			util_err(err, "$.steps[%d].message, rendered for this recipient: %s", i,
			         inner ? inner : "invalid");
		else
			rc = check_same(d, i, rid, out, err);
		free(inner);
		cJSON_Delete(out);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int
campaign_recipient(struct campaign_def *d, const cJSON *rec, struct campaign_recipient *out,
                   char **err)
{
	static const char *const rid_keys[] = {"id", "session_id", "chat_id"};
	static const char *const known[] = {"id", "session_id", "chat_id", "chat_owner", "vars",
	                                    "enrolled_at", "timezone", NULL};
	const cJSON *v;
	size_t i;

	if (!cJSON_IsObject(rec))
		return util_err(err, "a recipient must be an object");
	cJSON_ArrayForEach(v, rec)
		if (!known_key(known, v->string))
			return util_err(err, "unknown key \"%s\"", v->string);
	out->rid = NULL;
	for (i = 0; i < sizeof rid_keys / sizeof rid_keys[0] && !out->rid; i++)
		if (cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(rec, rid_keys[i])))
			out->rid = v->valuestring;
	if (d->channel->ops->check_recipient(rec, err) != 0)
		return -1;
	if (!out->rid || !out->rid[0])
		return util_err(err, "no recipient id");
	if (strlen(out->rid) > 512)
		return util_err(err, "recipient id longer than 512 bytes");
	v = cJSON_GetObjectItemCaseSensitive(rec, "vars");
	if (check_vars(v, err) != 0 || recipient_zone(d, rec, &out->tz, err) != 0 ||
	    anchor_day(d, rec, out->tz, &out->anchor_day, err) != 0)
		return -1;
	return check_render(d, out->rid, v, err);
}
