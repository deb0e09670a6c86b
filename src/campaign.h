/*
 * campaign: a campaign definition file (SPEC §3): parsing, validation with JSON paths, and
 * the per-recipient checks (shape, anchor date, placeholders, rendered limits). It writes
 * nothing; import.c streams the recipients through it into the store.
 */
#ifndef HERALD_CAMPAIGN_H
#define HERALD_CAMPAIGN_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "store.h"
#include "tz.h"

/* Receives each problem found, already formatted with file and location. */
typedef void campaign_problem_fn(void *arg, const char *msg);

struct campaign_step {
	int day;                      /* >= 1 */
	int minutes;                  /* minutes after local midnight */
	char time[6];                 /* "HH:mm" */
	const cJSON *message;         /* borrowed from the definition's tree */
	char *message_json;           /* compact JSON of message (owned) */
	int has_placeholders;         /* 1 if rendering can change it */
	/* One request for every recipient (PROVIDER_BY_CAMPAIGN): the rendering all must share. */
	char *first_rendered;         /* compact JSON of the first recipient's rendering (owned) */
	char *first_rid;              /* that recipient (owned) */
	int differs_reported;         /* a recipient that renders otherwise was reported */
};

struct campaign_def {
	cJSON *root;                  /* the parsed file; owns what is borrowed below */
	char *path;                   /* the definition file, for messages ("-" = stdin) */
	struct store_campaign row;    /* key, name, channel, provider, timezone, dates, expiry */
	const struct channel *channel;
	struct tz *tz;
	int32_t start_day;            /* days since epoch of start_date, when given */
	struct campaign_step *steps;  /* n_steps of them, in definition order */
	int n_steps;
	const cJSON *recipients;      /* inline recipients array, or NULL */
	char *recipients_file;        /* resolved path, or NULL */
	int quiet_from, quiet_to;     /* the quiet hours in force (campaign's, else channel's), in
	                                 minutes after local midnight; -1 = none */
	struct tz *zones[32];         /* recipients' own time zones, loaded once each */
	int n_zones;
	struct tz *spare_zone;        /* a zone past the cache's room, kept for one recipient */
};

/* How campaign_parse ended. The values are the exit codes of SPEC §1. */
enum campaign_rc {
	CAMPAIGN_OK = 0,
	CAMPAIGN_INVALID = 65,        /* problems were reported */
	CAMPAIGN_NOINPUT = 66,
	CAMPAIGN_CONFIG = 78,
	CAMPAIGN_ERROR = 1,
};

/*
 * Parses and validates the definition in text (len bytes) read from path. Every problem
 * goes to problem(); the return says how it ended. On CAMPAIGN_OK def is filled and must be
 * freed with campaign_def_free (which is also safe after a failure).
 */
enum campaign_rc campaign_parse(const char *path, const char *text, size_t len,
                                const struct config *cfg, struct campaign_def *def,
                                campaign_problem_fn *problem, void *arg);
void campaign_def_free(struct campaign_def *def);

/* What campaign_recipient learns about a valid recipient. */
struct campaign_recipient {
	const char *rid;              /* borrowed from the record */
	int32_t anchor_day;           /* the recipient's day 1 */
	const struct tz *tz;          /* its time zone: its own, else the campaign's (def owns it) */
};

/*
 * Checks one recipient record (inline or from a file): its shape for the provider, its vars,
 * its anchor date, and that every step renders (no placeholder without a value) within the
 * provider's limits and, where one request carries every recipient, the same as for the
 * first recipient (def remembers that rendering, so recipients go through in order). 0 / -1
 * with *err (caller frees) saying what, naming the step by JSON path, without the location.
 */
int campaign_recipient(struct campaign_def *def, const cJSON *rec,
                       struct campaign_recipient *out, char **err);

#endif
