/*
 * config: the channels file (SPEC §2). Parses and validates it, resolves every `K_env`
 * indirection from the environment, and hands out read-only channels. Secrets live only
 * in this memory: never in the database, never in a message (errors name keys, not values).
 */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct provider_ops;

/* The type of a channel key, checked at load. */
enum config_type {
	CONFIG_STRING,
	CONFIG_INT,        /* a JSON integer (or an _env variable holding one) */
	CONFIG_DURATION,   /* "90s", "2h30m", ... stored as ms */
	CONFIG_BOOL,       /* true or false (an _env variable: "true" or "false"), stored as 1/0 */
	CONFIG_OBJECT,     /* a JSON object, stored as written (no _env); its owner checks its keys */
};

/* One key a provider accepts in its channels (besides the common ones). */
struct config_key {
	const char *name;
	enum config_type type;
	int required;
};

struct channel {
	char *name;                       /* the channel's key in the config */
	const struct provider_ops *ops;   /* its provider module */
	char *base_url;                   /* no trailing slash */
	int max_in_flight;                /* concurrent requests, >= 1 */
	double rate_per_sec;              /* request rate cap, 0 = none */
	int64_t timeout_ms;               /* whole request */
	int64_t connect_timeout_ms;
	int on_ambiguous_retry;           /* on_ambiguous "retry": resend even without de-duplication */
	int suspend_after;                /* consecutive failed requests that suspend the channel */
	int64_t probe_every_ms;           /* a suspended channel's first probe interval (doubling) */
	int64_t cap_max;                  /* frequency_cap.max: sends per recipient per window, 0 = none */
	int64_t cap_per_ms;               /* frequency_cap.per: the rolling window */
	int quiet_from;                   /* quiet_hours.from, minutes after local midnight; -1 = none */
	int quiet_to;                     /* quiet_hours.to (before from: the window spans midnight) */
	cJSON *keys;                      /* every key with _env resolved: {"secret_key": "..."};
	                                     an _env whose variable is unset is null here */
	char *unset_secret;               /* the error for its first unset secret K_env, or NULL */
	char *unset_setting;              /* likewise for any other key, or NULL */
};

/*
 * A K_env whose variable is unset is an error only where its channel is used (SPEC §2), so a
 * channel with one loads, but apart: `channels` holds only those a scheduler can send on, and
 * `unready` the others, which config_channel still finds for commands that need less.
 */
struct config {
	struct channel *channels;         /* n_channels of them, in file order, every key resolved */
	int n_channels;
	struct channel *unready;          /* n_unready channels with an unset K_env */
	int n_unready;
	int max_attempts;                 /* scheduler: attempts before failed */
	int64_t backoff_base_ms;
	int64_t backoff_max_ms;
	int64_t lease_ms;                 /* a runner silent this long loses its claims */
};

/*
 * Loads PATH. Returns a new config (config_free) or NULL with *err naming the file, channel
 * and key at fault. *missing is set to 1 when the file itself does not exist, so a command
 * that does not need channels may go on without one.
 */
struct config *config_load(const char *path, int *missing, char **err);
void config_free(struct config *c);

/* The channel called NAME, ready or not (config_usable), or NULL. Valid as long as the config. */
const struct channel *config_channel(const struct config *c, const char *name);

/* What a command needs of a channel it touches. */
enum config_need {
	CONFIG_NEED_SETTINGS,             /* every key but the secrets: validating, scheduling */
	CONFIG_NEED_SECRETS,              /* every key: sending */
};

/* 0 when ch has every key NEED asks for, else -1 with *err naming channel, key and variable. */
int config_usable(const struct channel *ch, enum config_need need, char **err);

/* A channel key's string value (after _env), or NULL when absent. */
const char *config_str(const struct channel *ch, const char *key);
/* Reads a quiet_hours object {"from": "HH:mm", "to": "HH:mm"} (channel or campaign) into
   minutes after midnight. 0 / -1 with *err saying what is wrong (without a location). */
int config_quiet_hours(const cJSON *v, int *from, int *to, char **err);
/* A channel key's integer or duration value, or dflt when absent. */
int64_t config_int(const struct channel *ch, const char *key, int64_t dflt);

#endif
