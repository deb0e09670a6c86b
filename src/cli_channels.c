/*
 * cli_channels: the channels as the operator sees them (`herald channels`) and holds them
 * (`herald pause|resume --channel NAME`). A channel's state lives in the database, so every
 * process, a running scheduler included, sees a change at its next claim.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "provider.h"
#include "sop.h"
#include "store.h"
#include "table.h"
#include "tz.h"

/* Channel times print in Herald's default zone, the one campaigns default to. */
#define CHANNELS_ZONE "Asia/Shanghai"

static void
fmt_time(const struct tz *z, int64_t ms, char out[40])
{
	if (ms < 0)
		snprintf(out, 40, "-");
	else
		sop_format_instant(ms, z ? tz_offset_at(z, ms) : 0, out);
}

static cJSON *
channel_json(const struct tz *z, const char *provider, const struct store_channel *c)
{
	cJSON *o = cJSON_CreateObject();
	char buf[40];

	cJSON_AddStringToObject(o, "name", c->name);
	cJSON_AddStringToObject(o, "provider", provider);
	cJSON_AddStringToObject(o, "state", c->state);
	if (c->reason[0])
		cJSON_AddStringToObject(o, "reason", c->reason);
	else
		cJSON_AddNullToObject(o, "reason");
	fmt_time(z, c->since_ms, buf);
	if (c->since_ms >= 0)
		cJSON_AddStringToObject(o, "since", buf);
	else
		cJSON_AddNullToObject(o, "since");
	fmt_time(z, c->next_probe_at_ms, buf);
	if (c->next_probe_at_ms >= 0)
		cJSON_AddStringToObject(o, "next_probe_at", buf);
	else
		cJSON_AddNullToObject(o, "next_probe_at");
	cJSON_AddNumberToObject(o, "waiting", (double)c->waiting);
	return o;
}

int
cmd_channels(const struct cli_env *env)
{
	static const char *const headers[] = {
		"CHANNEL", "PROVIDER", "STATE", "SINCE", "NEXT PROBE", "WAITING", "REASON",
	};
	int json = cli_flag(env, "--json");
	struct config *cfg = NULL;
	struct store *s = NULL;
	struct table *t = NULL;
	struct tz *z = tz_load(CHANNELS_ZONE, NULL);
	cJSON *root = NULL, *arr = NULL;
	char *err = NULL, since[40], probe[40], waiting[24];
	int rc = 1, i;

	if (!(cfg = cli_load_config(env, &rc)) || !(s = cli_open_existing(env, &rc)))
		goto out;
	rc = 1;
	if (json) {
		root = cJSON_CreateObject();
		arr = cJSON_AddArrayToObject(root, "channels");
	} else if ((t = table_new(7, headers))) {
		table_align_right(t, 5);
		table_max_width(t, 6, 80);
	}
	if (json ? !arr : !t)
		goto out;
	for (i = 0; i < cfg->n_channels; i++) {
		const struct channel *ch = &cfg->channels[i];
		struct store_channel c;

		if (store_channel_get(s, ch->name, &c, &err) != 0) {
			cli_error("%s", err);
			goto out;
		}
		if (arr) {
			cJSON_AddItemToArray(arr, channel_json(z, ch->ops->name, &c));
			continue;
		}
		fmt_time(z, c.since_ms, since);
		fmt_time(z, c.next_probe_at_ms, probe);
		snprintf(waiting, sizeof waiting, "%lld", (long long)c.waiting);
		if (table_add(t, (const char *const[]){ch->name, ch->ops->name, c.state, since, probe,
		                                       waiting, c.reason[0] ? c.reason : NULL}) != 0)
			goto out;
	}
	if (root) {
		char *text = cJSON_Print(root);

		if (text)
			printf("%s\n", text);
		cJSON_free(text);
	} else {
		table_print(t, stdout);
	}
	rc = 0;
out:
	free(err);
	cJSON_Delete(root);
	table_free(t);
	tz_free(z);
	store_close(s);
	config_free(cfg);
	return rc;
}

int
cli_channel_hold(const struct cli_env *env, const char *name, int pause)
{
	struct config *cfg = NULL;
	struct store *s = NULL;
	char *err = NULL;
	int rc = 1, changed;

	if (!(cfg = cli_load_config(env, &rc)))
		goto out;
	rc = 1;
	if (!config_channel(cfg, name)) {
		cli_error("no channel \"%s\" in %s", name, env->config_path);
		rc = EXIT_DATAERR;
		goto out;
	}
	if (!(s = cli_open_existing(env, &rc)))
		goto out;
	rc = 1;
	changed = store_channel_set(s, name, pause ? "paused" : "active",
	                            pause ? "paused by an operator" : NULL, clock_now_ms(), &err);
	if (changed < 0) {
		cli_error("%s", err);
		goto out;
	}
	printf("channel %s: %s%s\n", name, pause ? "paused" : "active",
	       changed ? "" : " (it already was)");
	rc = 0;
out:
	free(err);
	store_close(s);
	config_free(cfg);
	return rc;
}
