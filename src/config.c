/*
 * config: loads and validates the channels file. Every key K may be written K_env, naming an
 * environment variable that holds the value; the resolved values stay in memory only.
 * Errors name the file, the channel and the key, never a value (values may be secrets).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "provider.h"
#include "sop.h"
#include "utf8.h"
#include "util.h"

/* Keys every channel takes, whatever its provider. */
static const struct config_key common_keys[] = {
	{"provider", CONFIG_STRING, 1},
	{"base_url", CONFIG_STRING, 0},
	{"max_in_flight", CONFIG_INT, 0},
	{"rate_per_sec", CONFIG_INT, 0},
	{"timeout", CONFIG_DURATION, 0},
	{"connect_timeout", CONFIG_DURATION, 0},
	{"on_ambiguous", CONFIG_STRING, 0},
	{"suspend_after", CONFIG_INT, 0},
	{"probe_every", CONFIG_DURATION, 0},
	{"allow_insecure_http", CONFIG_BOOL, 0},
	{"frequency_cap", CONFIG_OBJECT, 0},
	{"quiet_hours", CONFIG_OBJECT, 0},
	{NULL, 0, 0},
};

/* Where each provider lives unless base_url says otherwise (Tanmarket has no single one). */
static const struct {
	const char *provider, *url;
} default_urls[] = {
	{"sainiu", "http://127.0.0.1:3030"},
	{"tencent_desk", "https://console.tim.qq.com"},
	{"apiusb", "https://api.apiusb.com"},
	{"feihe", "https://guide-api.feihe.com"},
};

/*
 * The keys that are credentials. A command that does not send (import validates and schedules)
 * never needs them, so their K_env may be unset there.
 */
static const char *const secret_keys[] = {
	"secret_key", "usersig", "access_token", "app_key", "sign_key", NULL,
};

static int
is_secret(const char *name)
{
	int i;

	for (i = 0; secret_keys[i]; i++)
		if (strcmp(secret_keys[i], name) == 0)
			return 1;
	return 0;
}

static const struct config_key *
key_find(const struct config_key *keys, const char *name)
{
	for (; keys && keys->name; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

/*
 * Resolves one value of channel `chan` into its keys as the key's type demands: JSON strings
 * and numbers as written, or the environment variable an _env key names. An unset variable
 * is no error yet: the key becomes null and the channel remembers why (config_usable).
 */
static int
resolve_value(const char *path, struct channel *chan, const struct config_key *k, const cJSON *v,
              int from_env, char **err)
{
	const char *text = NULL, *ch = chan->name;
	cJSON *out = chan->keys;
	char **unset;
	int64_t n;

	if (k->type == CONFIG_OBJECT) {
		/* A rule, not a value that could be a secret: it is written in the file. */
		if (from_env || !cJSON_IsObject(v))
			return util_err(err, "%s: channel \"%s\": %s must be an object", path, ch, k->name);
		cJSON_AddItemToObject(out, k->name, cJSON_Duplicate(v, 1));
		return 0;
	}
	if (from_env) {
		if (!cJSON_IsString(v) || !v->valuestring[0])
			return util_err(err, "%s: channel \"%s\": %s_env must name an environment variable",
			                path, ch, k->name);
		if (!(text = getenv(v->valuestring)) || !text[0]) {
			unset = is_secret(k->name) ? &chan->unset_secret : &chan->unset_setting;
			if (!*unset) {
				util_err(unset, "%s: channel \"%s\": %s_env: environment variable %s is not "
				         "set", path, ch, k->name, v->valuestring);
				if (!*unset)
					return util_err(err, "out of memory");
			}
			cJSON_AddNullToObject(out, k->name);
			return 0;
		}
	} else if (cJSON_IsString(v)) {
		text = v->valuestring;
	}
	switch (k->type) {
	case CONFIG_STRING:
		if (!text || !text[0])
			return util_err(err, "%s: channel \"%s\": %s must be a non-empty string", path, ch,
			                k->name);
		cJSON_AddStringToObject(out, k->name, text);
		return 0;
	case CONFIG_INT:
		/* Written in the file it must be a JSON number ("5" is a wrong type); an
		   environment variable can only hold text. */
		if (from_env ? util_parse_i64(text, &n) != 0
		             : !(cJSON_IsNumber(v) && util_json_i64(v, &n) == 0))
			return util_err(err, "%s: channel \"%s\": %s must be an integer", path, ch, k->name);
		if (n < 0)
			return util_err(err, "%s: channel \"%s\": %s must not be negative", path, ch, k->name);
		cJSON_AddNumberToObject(out, k->name, (double)n);
		return 0;
	case CONFIG_DURATION:
		if (!text || sop_parse_duration(text, &n) != 0)
			return util_err(err, "%s: channel \"%s\": %s must be a duration such as \"90s\", "
			                "\"15m\" or \"2h30m\"", path, ch, k->name);
		cJSON_AddNumberToObject(out, k->name, (double)n);
		return 0;
	case CONFIG_BOOL:
		if (text ? strcmp(text, "true") != 0 && strcmp(text, "false") != 0 : !cJSON_IsBool(v))
			return util_err(err, "%s: channel \"%s\": %s must be true or false", path, ch,
			                k->name);
		cJSON_AddNumberToObject(out, k->name, text ? strcmp(text, "true") == 0 : cJSON_IsTrue(v));
		return 0;
	case CONFIG_OBJECT:
		break;
	}
	return util_err(err, "%s: channel \"%s\": %s: unknown type", path, ch, k->name);
}

/* Resolves every key of one channel object into ch->keys, rejecting unknown ones. */
static int
channel_keys(const char *path, struct channel *ch, const cJSON *obj, char **err)
{
	const struct provider_ops *ops = ch->ops;
	const char *name = ch->name;
	cJSON *out = ch->keys;
	const cJSON *v;
	char key[128];

	cJSON_ArrayForEach(v, obj) {
		const struct config_key *k;
		size_t len = strlen(v->string);
		int from_env = len > 4 && strcmp(v->string + len - 4, "_env") == 0;

		snprintf(key, sizeof key, "%.*s", (int)(from_env ? len - 4 : len), v->string);
		if (!(k = key_find(common_keys, key)) && !(k = key_find(ops->keys, key)))
			return util_err(err, "%s: channel \"%s\": unknown key \"%s\" for provider %s", path,
			                name, v->string, ops->name);
		if (cJSON_GetObjectItemCaseSensitive(out, key))
			return util_err(err, "%s: channel \"%s\": %s is given twice (directly and as _env)",
			                path, name, key);
		if (resolve_value(path, ch, k, v, from_env, err) != 0)
			return -1;
	}
	return 0;
}

static int
check_required(const char *path, const char *name, const struct config_key *keys, const cJSON *out,
               char **err)
{
	for (; keys && keys->name; keys++)
		if (keys->required && !cJSON_GetObjectItemCaseSensitive(out, keys->name))
			return util_err(err, "%s: channel \"%s\": missing required key %s (or %s_env)", path,
			                name, keys->name, keys->name);
	return 0;
}

/*
 * Whether an http:// URL's host is a loopback address: 127.0.0.0/8, ::1 or localhost. Only
 * there may credentials travel in clear (SPEC §2, allow_insecure_http). The host is copied
 * into host (for the message) without any user:password@ part.
 */
static int
url_loopback(const char *url, char *host, size_t size)
{
	const char *h = url + strlen("http://"), *end, *at;
	struct in_addr a4;
	struct in6_addr a6;
	size_t len;

	end = h + strcspn(h, "/?#");
	/* userinfo ends at the last '@' before the path; it may hold a password: skip it */
	for (at = end; at > h && at[-1] != '@'; at--)
		;
	if (at > h)
		h = at;
	if (*h == '[') {
		h++;
		len = strcspn(h, "]");
	} else {
		len = strcspn(h, ":/?#");
	}
	if (len >= size)
		len = size - 1;
	memcpy(host, h, len);
	host[len] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int
config_quiet_hours(const cJSON *v, int *from, int *to, char **err)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "from");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "to");

	if (!cJSON_IsObject(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(f) ||
	    !cJSON_IsString(t) || sop_parse_hhmm(f->valuestring, from) != 0 ||
	    sop_parse_hhmm(t->valuestring, to) != 0)
		return util_err(err, "must be {\"from\": \"HH:mm\", \"to\": \"HH:mm\"}");
	if (*from == *to)
		return util_err(err, "from and to are the same time: an empty window");
	return 0;
}

/* frequency_cap and quiet_hours, the channel's audience rules (SPEC 2, 5.12). */
static int
audience_load(const char *path, struct channel *ch, char **err)
{
	const cJSON *cap = cJSON_GetObjectItemCaseSensitive(ch->keys, "frequency_cap");
	const cJSON *quiet = cJSON_GetObjectItemCaseSensitive(ch->keys, "quiet_hours");
	const cJSON *max = cJSON_GetObjectItemCaseSensitive(cap, "max");
	const cJSON *per = cJSON_GetObjectItemCaseSensitive(cap, "per");
	char *why = NULL;

	ch->quiet_from = ch->quiet_to = -1;
	if (cap && (cJSON_GetArraySize(cap) != 2 || !cJSON_IsNumber(max) ||
	            util_json_i64(max, &ch->cap_max) != 0 || ch->cap_max < 1 ||
	            !cJSON_IsString(per) || sop_parse_duration(per->valuestring, &ch->cap_per_ms) != 0 ||
	            ch->cap_per_ms < 1000 || ch->cap_per_ms > 3650 * 86400000LL))
		return util_err(err, "%s: channel \"%s\": frequency_cap must be {\"max\": N, \"per\": "
		                "DURATION} with N >= 1 and a duration from \"1s\" to \"3650d\"", path,
		                ch->name);
	if (quiet && config_quiet_hours(quiet, &ch->quiet_from, &ch->quiet_to, &why) != 0) {
		util_err(err, "%s: channel \"%s\": quiet_hours %s", path, ch->name,
		         why ? why : "is invalid");
		free(why);
		return -1;
	}
	return 0;
}

static int
channel_load(const char *path, const cJSON *obj, struct channel *ch, char **err)
{
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "provider");
	const char *url;
	size_t i;

	if (!cJSON_IsObject(obj))
		return util_err(err, "%s: channel \"%s\" must be an object", path, ch->name);
	if (!cJSON_IsString(p))
		return util_err(err, "%s: channel \"%s\": missing required key provider (one of %s)", path,
		                ch->name, provider_names());
	if (!(ch->ops = provider_find(p->valuestring)))
		return util_err(err, "%s: channel \"%s\": unknown provider \"%s\" (known: %s)", path,
		                ch->name, p->valuestring, provider_names());
	if (!(ch->keys = cJSON_CreateObject()))
		return util_err(err, "out of memory");
	if (channel_keys(path, ch, obj, err) != 0 ||
	    check_required(path, ch->name, ch->ops->keys, ch->keys, err) != 0)
		return -1;
	if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ch->keys, "base_url")))
		goto checks;              /* base_url_env unset: nothing to check it against yet */
	url = config_str(ch, "base_url");
	for (i = 0; !url && i < sizeof default_urls / sizeof default_urls[0]; i++)
		if (strcmp(default_urls[i].provider, ch->ops->name) == 0)
			url = default_urls[i].url;
	if (!url)
		return util_err(err, "%s: channel \"%s\": missing required key base_url", path, ch->name);
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return util_err(err, "%s: channel \"%s\": base_url must start with http:// or https://",
		                path, ch->name);
	if (strncmp(url, "http://", 7) == 0 && !config_int(ch, "allow_insecure_http", 0)) {
		char host[256];

		if (!url_loopback(url, host, sizeof host))
			return util_err(err, "%s: channel \"%s\": base_url: plain http:// to \"%s\" "
			                "would send credentials in clear; use https://, or set "
			                "\"allow_insecure_http\": true", path, ch->name, host);
	}
	if (!(ch->base_url = strdup(url)))
		return util_err(err, "out of memory");
	while (strlen(ch->base_url) > 8 && ch->base_url[strlen(ch->base_url) - 1] == '/')
		ch->base_url[strlen(ch->base_url) - 1] = '\0';
checks:
	ch->max_in_flight = (int)config_int(ch, "max_in_flight", 16);
	if (ch->max_in_flight < 1 || ch->max_in_flight > 1024)
		return util_err(err, "%s: channel \"%s\": max_in_flight must be 1..1024", path, ch->name);
	ch->rate_per_sec = (double)config_int(ch, "rate_per_sec", 0);
	ch->timeout_ms = config_int(ch, "timeout", 30000);
	ch->connect_timeout_ms = config_int(ch, "connect_timeout", 10000);
	if ((url = config_str(ch, "on_ambiguous")) && strcmp(url, "retry") != 0 &&
	    strcmp(url, "unknown") != 0)
		return util_err(err, "%s: channel \"%s\": on_ambiguous must be \"unknown\" or \"retry\"",
		                path, ch->name);
	ch->on_ambiguous_retry = url && strcmp(url, "retry") == 0;
	ch->suspend_after = (int)config_int(ch, "suspend_after", 20);
	if (ch->suspend_after < 1 || ch->suspend_after > 1000000)
		return util_err(err, "%s: channel \"%s\": suspend_after must be 1..1000000", path,
		                ch->name);
	ch->probe_every_ms = config_int(ch, "probe_every", 60000);
	if (ch->probe_every_ms < 100 || ch->probe_every_ms > 86400000)
		return util_err(err, "%s: channel \"%s\": probe_every must be 100ms..24h", path,
		                ch->name);
	if (audience_load(path, ch, err) != 0)
		return -1;
	/*
	 * The provider's own checks read the values, which an unset variable leaves out: they run
	 * in the process where the variables are set, the one that sends.
	 */
	if (ch->unset_secret || ch->unset_setting)
		return 0;
	if (ch->ops->check_channel && ch->ops->check_channel(ch, err) != 0) {
		char *inner = *err;

		*err = NULL;
		util_err(err, "%s: channel \"%s\": %s", path, ch->name, inner);
		free(inner);
		return -1;
	}
	return 0;
}

/*
 * Overwrites every string and number in v before it is freed, so no secret lingers in freed
 * memory (a later core, a heap read through another bug). All values, not just the secret
 * keys: the resolved keys do not record which came from a K_env variable, and they are few.
 */
static void
wipe_values(cJSON *v)
{
	for (; v; v = v->next) {
		if (v->valuestring)
			explicit_bzero(v->valuestring, strlen(v->valuestring));
		v->valuedouble = 0;
		v->valueint = 0;
		wipe_values(v->child);
	}
}

static void
channel_free(struct channel *ch)
{
	free(ch->name);
	free(ch->base_url);
	free(ch->unset_secret);
	free(ch->unset_setting);
	wipe_values(ch->keys);
	cJSON_Delete(ch->keys);
}

/* Reads the optional "scheduler" section. */
static int
scheduler_load(const char *path, const cJSON *obj, struct config *c, char **err)
{
	const cJSON *v;
	int64_t n;

	if (!obj)
		return 0;
	if (!cJSON_IsObject(obj))
		return util_err(err, "%s: scheduler must be an object", path);
	cJSON_ArrayForEach(v, obj) {
		if (strcmp(v->string, "lease") == 0) {
			/* Long enough to ride out a busy store; short enough to hand claims on. */
			if (!cJSON_IsString(v) || sop_parse_duration(v->valuestring, &n) != 0 ||
			    n < 1000 || n > 86400000)
				return util_err(err, "%s: scheduler.lease must be a duration from \"1s\" to "
				                "\"24h\"", path);
			c->lease_ms = n;
			continue;
		}
		if (!cJSON_IsNumber(v) || util_json_i64(v, &n) != 0 || n < 1)
			return util_err(err, "%s: scheduler.%s must be a positive integer", path, v->string);
		if (strcmp(v->string, "max_attempts") == 0)
			c->max_attempts = n > 1000 ? 1000 : (int)n;
		else if (strcmp(v->string, "backoff_base_ms") == 0)
			c->backoff_base_ms = n;
		else if (strcmp(v->string, "backoff_max_ms") == 0)
			c->backoff_max_ms = n;
		else
			return util_err(err, "%s: scheduler: unknown key \"%s\"", path, v->string);
	}
	if (c->backoff_max_ms < c->backoff_base_ms)
		return util_err(err, "%s: scheduler.backoff_max_ms is below backoff_base_ms", path);
	return 0;
}

static int
config_parse(const char *path, const cJSON *root, struct config *c, char **err)
{
	const cJSON *chans = cJSON_GetObjectItemCaseSensitive(root, "channels"), *v;
	size_t n;

	if (!cJSON_IsObject(root))
		return util_err(err, "%s: the top level must be an object", path);
	cJSON_ArrayForEach(v, root)
		if (strcmp(v->string, "channels") != 0 && strcmp(v->string, "scheduler") != 0)
			return util_err(err, "%s: unknown top-level key \"%s\"", path, v->string);
	if (!cJSON_IsObject(chans))
		return util_err(err, "%s: \"channels\" must be an object", path);
	n = (size_t)cJSON_GetArraySize(chans);
	if (n && (!(c->channels = calloc(n, sizeof *c->channels)) ||
	          !(c->unready = calloc(n, sizeof *c->unready))))
		return util_err(err, "out of memory");
	cJSON_ArrayForEach(v, chans) {
		struct channel ch = {0};

		if (!(ch.name = strdup(v->string))) {
			util_err(err, "out of memory");
			channel_free(&ch);
			return -1;
		}
		if (channel_load(path, v, &ch, err) != 0) {
			channel_free(&ch);
			return -1;
		}
		if (ch.unset_secret || ch.unset_setting)
			c->unready[c->n_unready++] = ch;
		else
			c->channels[c->n_channels++] = ch;
	}
	return scheduler_load(path, cJSON_GetObjectItemCaseSensitive(root, "scheduler"), c, err);
}

struct config *
config_load(const char *path, int *missing, char **err)
{
	struct config *c = NULL, *result = NULL;
	cJSON *root = NULL;
	char *text = NULL;
	size_t len = 0, bad;

	*missing = 0;
	if (util_read_file(path, 1 << 24, &text, &len) != 0) {
		*missing = errno == ENOENT;
		util_err(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* Names and values end up in messages; raw bytes would garble the terminal. */
	if (!utf8_valid(text, len, &bad)) {
		util_err(err, "%s: invalid UTF-8 at byte %zu", path, bad);
		goto out;
	}
	if (util_json_has_nul(text, len, &bad)) {
		util_err(err, "%s: a string holds a NUL character (\\u0000) at byte %zu", path, bad);
		goto out;
	}
	if (!(root = cJSON_ParseWithLength(text, len))) {
		util_err(err, "%s: invalid JSON near byte %ld", path,
		         (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - text : 0));
		goto out;
	}
	if (!(c = calloc(1, sizeof *c))) {
		util_err(err, "out of memory");
		goto out;
	}
	c->max_attempts = 8;
	c->backoff_base_ms = 1000;
	c->backoff_max_ms = 3600000;
	c->lease_ms = 60000;
	if (config_parse(path, root, c, err) != 0)
		goto out;
	result = c;
	c = NULL;
out:
	config_free(c);
	/* The file and its tree may hold secrets written inline. */
	wipe_values(root);
	cJSON_Delete(root);
	if (text)
		explicit_bzero(text, len);
	free(text);
	return result;
}

void
config_free(struct config *c)
{
	int i;

	if (!c)
		return;
	for (i = 0; i < c->n_channels; i++)
		channel_free(&c->channels[i]);
	for (i = 0; i < c->n_unready; i++)
		channel_free(&c->unready[i]);
	free(c->channels);
	free(c->unready);
	free(c);
}

const struct channel *
config_channel(const struct config *c, const char *name)
{
	int i;

	for (i = 0; c && i < c->n_channels; i++)
		if (strcmp(c->channels[i].name, name) == 0)
			return &c->channels[i];
	for (i = 0; c && i < c->n_unready; i++)
		if (strcmp(c->unready[i].name, name) == 0)
			return &c->unready[i];
	return NULL;
}

int
config_usable(const struct channel *ch, enum config_need need, char **err)
{
	const char *why = ch->unset_setting;

	if (!why && need == CONFIG_NEED_SECRETS)
		why = ch->unset_secret;
	return why ? util_err(err, "%s", why) : 0;
}

const char *
config_str(const struct channel *ch, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ch->keys, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t
config_int(const struct channel *ch, const char *key, int64_t dflt)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ch->keys, key);
	int64_t n;

	return cJSON_IsNumber(v) && util_json_i64(v, &n) == 0 ? n : dflt;
}
