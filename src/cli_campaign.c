/*
 * cli_campaign: the commands that change a campaign: import (the definition), pause, resume,
 * cancel (its state) and retry (its deliveries).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "import.h"
#include "sop.h"
#include "store.h"
#include "tz.h"

static void
print_problem(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "herald: %s\n", msg);
}

static void
print_import_summary(const struct import_summary *s, int dry_run)
{
	char first[40] = "-", last[40] = "-";
	struct tz *z = tz_load(s->timezone, NULL);

	if (s->first_due_ms >= 0) {
		sop_format_instant(s->first_due_ms, z ? tz_offset_at(z, s->first_due_ms) : 0, first);
		sop_format_instant(s->last_due_ms, z ? tz_offset_at(z, s->last_due_ms) : 0, last);
	}
	tz_free(z);
	printf("%s%s\n", dry_run ? "dry run, nothing written: " : "", s->key);
	printf("  recipients:  %lld (new %lld, changed %lld, removed %lld)\n", (long long)s->recipients,
	       (long long)s->recipients_new, (long long)s->recipients_changed,
	       (long long)s->recipients_removed);
	printf("  deliveries:  %lld scheduled, %lld %s\n", (long long)s->deliveries,
	       (long long)s->deliveries_written, dry_run ? "would be written" : "written");
	printf("  first send:  %s\n  last send:   %s\n", first, last);
	if (!s->changed)
		printf("  unchanged\n");
}

int
cmd_import(const struct cli_env *env)
{
	const char *file = env->argv[0];
	struct import_opts io = {0};
	struct import_summary sum;
	struct config *cfg;
	struct store *s;
	int rc, made;

	io.dry_run = cli_flag(env, "--dry-run");
	io.progress = isatty(STDERR_FILENO);
	if (!(cfg = cli_load_config(env, &rc)))
		return rc;
	if (!(s = cli_open_writer(env, io.dry_run, &made))) {
		config_free(cfg);
		return 1;
	}
	rc = (int)import_run(s, cfg, file, &io, clock_now_ms(), print_problem, NULL, &sum);
	if (rc == 0)
		print_import_summary(&sum, io.dry_run);
	else if (rc == EXIT_DATAERR)
		cli_error("%s: invalid, nothing was written", file);
	store_close(s);
	/* The file was made to hold this import; with nothing written it must not stay. */
	if (rc != 0 && made)
		store_unmake(env->db_path);
	config_free(cfg);
	return rc;
}

/* Finds KEY or prints that it is unknown (65). */
static int
find_campaign(struct store *s, const char *key, struct store_campaign *c)
{
	char *err = NULL;
	int found = store_campaign_get(s, key, c, &err);

	if (found < 0) {
		cli_error("%s", err);
		free(err);
		return 1;
	}
	if (!found) {
		cli_error("no campaign with key \"%s\"", key);
		return EXIT_DATAERR;
	}
	return 0;
}

static int
count_open(void *arg, const struct store_status *st)
{
	static const char *const open_states[] = {"pending", "sending", "retrying", "deferred"};
	int64_t *n = arg;
	size_t i;

	for (i = 0; i < sizeof open_states / sizeof open_states[0]; i++)
		*n += st->counts[store_state_index(open_states[i])];
	return 0;
}

/* 1 if KEY has deliveries waiting or in flight, 0 if none (it is completed), -1 after printing
   an error. */
static int
open_deliveries(struct store *s, const char *key)
{
	char *err = NULL;
	int64_t n = 0;

	if (store_status(s, key, count_open, &n, &err) < 0) {
		cli_error("%s", err ? err : "status failed");
		free(err);
		return -1;
	}
	return n > 0;
}

/* pause, resume, cancel KEY. */
static int
set_state(const struct cli_env *env, const char *state)
{
	struct store_campaign c;
	struct store *s;
	char *err = NULL;
	int64_t n;
	int rc;

	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	if ((rc = find_campaign(s, env->argv[0], &c)) != 0)
		goto out;
	if (strcmp(c.state, "cancelled") == 0 && strcmp(state, "cancelled") != 0) {
		cli_error("campaign \"%s\" is cancelled; it cannot be paused or resumed", c.key);
		rc = EXIT_DATAERR;
		goto out;
	}
	if (strcmp(state, "cancelled") == 0 && strcmp(c.state, "cancelled") != 0) {
		if ((rc = open_deliveries(s, c.key)) < 0) {
			rc = 1;
			goto out;
		}
		if (rc == 0) {
			cli_error("campaign \"%s\" is completed: nothing left to cancel", c.key);
			rc = EXIT_DATAERR;
			goto out;
		}
		rc = 0;
	}
	if ((n = store_campaign_set_state(s, c.id, state, &err)) < 0) {
		cli_error("%s", err);
		rc = 1;
		goto out;
	}
	if (strcmp(state, "cancelled") == 0)
		printf("%s: cancelled (%lld deliveries cancelled)\n", c.key, (long long)n);
	else
		printf("%s: %s\n", c.key, state);
out:
	free(err);
	store_close(s);
	return rc;
}

/* pause and resume take KEY or --channel NAME (the parser lets through one, never both). */
int
cmd_pause(const struct cli_env *env)
{
	const char *channel = cli_opt(env, "--channel");

	return channel ? cli_channel_hold(env, channel, 1) : set_state(env, "paused");
}

int
cmd_resume(const struct cli_env *env)
{
	const char *channel = cli_opt(env, "--channel");

	return channel ? cli_channel_hold(env, channel, 0) : set_state(env, "active");
}

int
cmd_cancel(const struct cli_env *env)
{
	return set_state(env, "cancelled");
}

int
cmd_retry(const struct cli_env *env)
{
	const char *state = cli_opt(env, "--state");
	struct store_campaign c;
	struct store *s;
	char *err = NULL;
	int64_t n;
	int rc;

	if (!state)
		state = "failed";
	/* suppressed: an operator's deliberate choice after `suppress remove`; a recipient still
	   listed is suppressed again when the delivery comes due. */
	if (strcmp(state, "failed") && strcmp(state, "unknown") && strcmp(state, "expired") &&
	    strcmp(state, "suppressed")) {
		cli_error("--state must be failed, unknown, expired or suppressed");
		return EXIT_USAGE;
	}
	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	if ((rc = find_campaign(s, env->argv[0], &c)) == 0 && strcmp(c.state, "cancelled") == 0) {
		/* Pending again in a cancelled campaign would never go out, and the operator would
		   wait for it. */
		cli_error("campaign \"%s\" is cancelled; its deliveries cannot be retried", c.key);
		rc = EXIT_DATAERR;
	} else if (rc == 0) {
		if ((n = store_retry(s, c.id, state, clock_now_ms(), &err)) < 0) {
			cli_error("%s", err);
			rc = 1;
		} else {
			printf("%s: %lld %s deliveries back to pending\n", c.key, (long long)n, state);
		}
	}
	free(err);
	store_close(s);
	return rc;
}
