/*
 * cli: argv to a command, and the commands that change things (import, pause, resume,
 * cancel, retry, run, migrate). The ones that print campaign data are in cli_show.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "config.h"
#include "httpd.h"
#include "import.h"
#include "log.h"
#include "scheduler.h"
#include "sop.h"
#include "store.h"

struct cmd_entry {
	const char *name;
	int (*exec)(const struct cli_env *env);
	const char *usage;            /* after "herald " */
	const char *help;             /* what it does, for --help */
};

void
cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("herald: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
cli_parse(const struct cli_env *env, const char *const *opts, const char **vals, const char **pos,
          int min_pos, int max_pos, const char *usage)
{
	int i, n_pos = 0, k;

	for (i = 0; i < env->argc; i++) {
		const char *a = env->argv[i];

		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (n_pos == max_pos) {
				cli_error("unexpected argument \"%s\"\nusage: herald %s", a, usage);
				return EXIT_USAGE;
			}
			pos[n_pos++] = a;
			continue;
		}
		for (k = 0; opts[k]; k++) {
			size_t len = strlen(opts[k]);

			if (opts[k][len - 1] == '=') {
				if (strncmp(a, opts[k], len) == 0) {
					vals[k] = a + len;
					break;
				}
				if (strncmp(a, opts[k], len - 1) == 0 && a[len - 1] == '\0') {
					if (i + 1 == env->argc) {
						cli_error("%.*s needs a value\nusage: herald %s", (int)len - 1, a, usage);
						return EXIT_USAGE;
					}
					vals[k] = env->argv[++i];
					break;
				}
			} else if (strcmp(a, opts[k]) == 0) {
				vals[k] = "1";
				break;
			}
		}
		if (!opts[k]) {
			cli_error("unknown option \"%s\"\nusage: herald %s", a, usage);
			return EXIT_USAGE;
		}
	}
	if (n_pos < min_pos) {
		cli_error("missing argument\nusage: herald %s", usage);
		return EXIT_USAGE;
	}
	return 0;
}

struct store *
cli_open_store(const struct cli_env *env)
{
	char *err = NULL;
	struct store *s = store_open(env->db_path, &err);

	if (!s) {
		cli_error("%s", err ? err : "cannot open the database");
		free(err);
	}
	return s;
}

struct store *
cli_open_existing(const struct cli_env *env, int *rc)
{
	char *err = NULL;
	int missing;
	struct store *s = store_open_existing(env->db_path, &missing, &err);

	if (!s) {
		cli_error("%s%s", err ? err : "cannot open the database",
		          missing ? " (set --db or $HERALD_DB)" : "");
		free(err);
		*rc = missing ? EXIT_NOINPUT : 1;
	}
	return s;
}

/*
 * Removes a database file this process created and left without a campaign, with its WAL,
 * shared-memory and journal files, so a failed import on a fresh path leaves nothing behind.
 * A file another process has started using meanwhile (a campaign or a runner row) is kept.
 */
void
cli_remove_fresh_db(const char *path)
{
	static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
	char *err = NULL, side[4096];
	int missing;
	size_t i;
	struct store *s = store_open_existing(path, &missing, &err);
	int blank = s && store_is_blank(s);

	store_close(s);
	free(err);
	if (!blank)
		return;
	unlink(path);
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (snprintf(side, sizeof side, "%s%s", path, suffixes[i]) < (int)sizeof side)
			unlink(side);
}

struct config *
cli_load_config(const struct cli_env *env, int *rc)
{
	char *err = NULL;
	int missing;
	struct config *c = config_load(env->config_path, &missing, &err);

	if (!c) {
		cli_error("%s%s", err ? err : "cannot read the configuration",
		          missing ? " (set --config or $HERALD_CONFIG)" : "");
		free(err);
		*rc = EXIT_CONFIG;
	}
	return c;
}

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

static int
cmd_import(const struct cli_env *env)
{
	static const char *const opts[] = {"--dry-run", NULL};
	const char *vals[1] = {NULL}, *pos[1];
	struct import_opts io = {0};
	struct import_summary sum;
	struct config *cfg;
	struct store *s;
	int rc, fresh;

	if ((rc = cli_parse(env, opts, vals, pos, 1, 1, "import FILE [--dry-run]")) != 0)
		return rc;
	io.dry_run = vals[0] != NULL;
	io.progress = isatty(STDERR_FILENO);
	if (!(cfg = cli_load_config(env, &rc)))
		return rc;
	fresh = access(env->db_path, F_OK) != 0 && errno == ENOENT;
	/* A dry run writes nothing, not even a new database file: it works on a scratch copy. */
	s = cli_open_store(&(struct cli_env){io.dry_run && fresh ? ":memory:" : env->db_path,
	                                     env->config_path, 0, NULL});
	if (!s) {
		config_free(cfg);
		return 1;
	}
	rc = (int)import_run(s, cfg, pos[0], &io, clock_now_ms(), print_problem, NULL, &sum);
	if (rc == 0)
		print_import_summary(&sum, io.dry_run);
	else if (rc == EXIT_DATAERR)
		cli_error("%s: invalid, nothing was written", pos[0]);
	store_close(s);
	/* The file was made to hold this import; with nothing written it must not stay. */
	if (rc != 0 && fresh && !io.dry_run)
		cli_remove_fresh_db(env->db_path);
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

/* pause, resume, cancel; pause and resume also take --channel NAME. */
static int
set_state(const struct cli_env *env, const char *state, const char *usage)
{
	static const char *const opts[] = {"--channel=", NULL};
	const char *pos[1] = {NULL}, *vals[1] = {NULL};
	struct store_campaign c;
	struct store *s;
	char *err = NULL;
	int64_t n;
	int rc;

	if ((rc = cli_parse(env, opts, vals, pos, 0, 1, usage)) != 0)
		return rc;
	if (vals[0] && !pos[0] && strcmp(state, "cancelled") != 0)
		return cli_channel_hold(env, vals[0], strcmp(state, "paused") == 0);
	if (!pos[0] || vals[0]) {
		cli_error("%s\nusage: herald %s", pos[0] ? "give KEY or --channel NAME, not both"
		                                         : "missing argument", usage);
		return EXIT_USAGE;
	}
	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	if ((rc = find_campaign(s, pos[0], &c)) != 0)
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

static int
cmd_pause(const struct cli_env *env)
{
	return set_state(env, "paused", "pause KEY | pause --channel NAME");
}

static int
cmd_resume(const struct cli_env *env)
{
	return set_state(env, "active", "resume KEY | resume --channel NAME");
}

static int
cmd_cancel(const struct cli_env *env)
{
	return set_state(env, "cancelled", "cancel KEY");
}

static int
cmd_retry(const struct cli_env *env)
{
	static const char *const opts[] = {"--state=", NULL};
	const char *vals[1] = {NULL}, *pos[1], *state;
	struct store_campaign c;
	struct store *s;
	char *err = NULL;
	int64_t n;
	int rc;

	if ((rc = cli_parse(env, opts, vals, pos, 1, 1,
	                    "retry KEY [--state failed|unknown|expired|suppressed]")))
		return rc;
	state = vals[0] ? vals[0] : "failed";
	/* suppressed: an operator's deliberate choice after `suppress remove`; a recipient still
	   listed is suppressed again when the delivery comes due. */
	if (strcmp(state, "failed") && strcmp(state, "unknown") && strcmp(state, "expired") &&
	    strcmp(state, "suppressed")) {
		cli_error("--state must be failed, unknown, expired or suppressed");
		return EXIT_USAGE;
	}
	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	if ((rc = find_campaign(s, pos[0], &c)) == 0 && strcmp(c.state, "cancelled") == 0) {
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

static int
cmd_migrate(const struct cli_env *env)
{
	static const char *const opts[] = {NULL};
	struct store *s;
	int rc;

	if ((rc = cli_parse(env, opts, NULL, NULL, 0, 0, "migrate")) != 0)
		return rc;
	if (!(s = cli_open_store(env)))
		return 1;
	printf("%s: schema version %d\n", env->db_path, store_version(s));
	store_close(s);
	return 0;
}

struct run_check {
	const struct config *cfg;
	char *err;                    /* the first channel that cannot send */
};

static int
run_check_campaign(void *arg, const struct store_status *st)
{
	static const char *const waiting[] = {"pending", "sending", "retrying", "deferred"};
	struct run_check *rc = arg;
	const struct channel *ch;
	int64_t n = 0;
	size_t i;

	if (strcmp(st->c.state, "active") != 0)
		return 0;
	for (i = 0; i < sizeof waiting / sizeof waiting[0]; i++)
		n += st->counts[store_state_index(waiting[i])];
	if (n == 0 || !(ch = config_channel(rc->cfg, st->c.channel)))
		return 0;
	return config_usable(ch, CONFIG_NEED_SECRETS, &rc->err) != 0;
}

/*
 * A scheduler needs every key, secrets included, of the channels it is about to send on: those
 * of active campaigns with deliveries waiting. One of them without its secret refuses the
 * start (78), so a deployment that forgot a variable fails where its operator looks, instead
 * of quietly holding a campaign. Channels nothing waits on may lack theirs.
 */
static int
check_run_channels(const struct cli_env *env, const struct config *cfg)
{
	struct run_check rc = {cfg, NULL};
	struct store *s;
	char *err = NULL;
	int ret = 0;

	/* The scheduler's own errors go to its log (journal priorities and all), not as a CLI's. */
	if (!(s = store_open(env->db_path, &err))) {
		log_error("%s", err ? err : "cannot open the database");
		free(err);
		return 1;
	}
	if (store_status(s, NULL, run_check_campaign, &rc, &err) < 0) {
		log_error("%s", err ? err : "cannot read the campaigns");
		ret = 1;
	} else if (rc.err) {
		log_error("%s (needed to send: set it, or pause the channel's campaigns)", rc.err);
		ret = EXIT_CONFIG;
	}
	free(err);
	free(rc.err);
	store_close(s);
	return ret;
}

static int
cmd_run(const struct cli_env *env)
{
	static const char *const opts[] = {"--once", "--now=", "--log-format=", "--verbose",
	                                   "--listen=", NULL};
	const char *vals[5] = {NULL};
	char *err = NULL;
	struct scheduler_opts so = {0};
	struct config *cfg;
	int rc;

	if ((rc = cli_parse(env, opts, vals, NULL, 0, 0,
	                    "run [--once] [--now TIME] [--log-format text|json] [--verbose] "
	                    "[--listen ADDR:PORT]")) != 0)
		return rc;
	so.once = vals[0] != NULL;
	if (vals[1] && (!so.once || sop_parse_instant(vals[1], &so.now_ms) != 0)) {
		cli_error(so.once ? "--now: \"%s\" is not an ISO 8601 time with offset or epoch ms"
		                  : "--now works only with --once", vals[1]);
		return EXIT_USAGE;
	}
	if (vals[2] && strcmp(vals[2], "text") != 0 && strcmp(vals[2], "json") != 0) {
		cli_error("--log-format must be text or json");
		return EXIT_USAGE;
	}
	if (vals[4] && httpd_check_addr(vals[4], &err) != 0) {
		cli_error("%s", err);
		free(err);
		return EXIT_USAGE;
	}
	so.listen = vals[4];
	log_init(vals[2] && strcmp(vals[2], "json") == 0 ? LOG_JSON : LOG_TEXT,
	         vals[3] ? LOG_DEBUG : LOG_INFO);
	if (!(cfg = cli_load_config(env, &rc)))
		return rc;
	if ((rc = check_run_channels(env, cfg)) != 0) {
		config_free(cfg);
		return rc;
	}
	so.db_path = env->db_path;
	so.config_path = env->config_path;
	rc = scheduler_run(cfg, &so);
	return rc;
}

static const struct cmd_entry cmd_table[] = {
	{"import", cmd_import, "import FILE [--dry-run]",
	 "Validate a campaign definition (FILE, or - for stdin) and upsert it. Nothing is written\n"
	 "unless all of it is valid. --dry-run validates and prints the summary only."},
	{"status", cli_status, "status [KEY] [--json]",
	 "Every campaign, or one: state, deliveries per state, next send time, latest error."},
	{"deliveries", cli_deliveries,
	 "deliveries KEY [--state STATE] [--limit N] [--after CURSOR] [--json]",
	 "The deliveries of a campaign in due order: recipient, step, due time, state, attempts,\n"
	 "last error, provider message id. --limit N prints a page of N rows and, when more\n"
	 "follow, the cursor for --after (\"next\" in --json). Without --limit a terminal gets a\n"
	 "screenful, a pipe every row."},
	{"attempts", cli_attempts, "attempts KEY [--recipient ID] [--json]",
	 "The attempt log: when, how long, HTTP status, provider code and message, outcome."},
	{"show", cli_show, "show KEY [--json]",
	 "The campaign's stored definition: channel, time zone, anchor, expiry, steps with their\n"
	 "messages, recipient count."},
	{"export", cli_export, "export KEY [--state STATE] [--format csv|jsonl]",
	 "Every delivery of the campaign to stdout, streamed: recipient, step, due_at, state,\n"
	 "attempts, last_error, provider_message_id. CSV (the default) starts with a UTF-8 BOM."},
	{"pause", cmd_pause, "pause KEY | pause --channel NAME",
	 "Stop dispatching the campaign (or every campaign on channel NAME); everything is kept."},
	{"resume", cmd_resume, "resume KEY | resume --channel NAME",
	 "Continue a paused campaign, or a paused or suspended channel."},
	{"cancel", cmd_cancel, "cancel KEY",
	 "Cancel every delivery of the campaign not yet sent. A completed campaign (nothing left\n"
	 "to send) is refused."},
	{"retry", cmd_retry, "retry KEY [--state failed|unknown|expired|suppressed]",
	 "Put the campaign's deliveries in that state (default failed) back to pending."},
	{"run", cmd_run,
	 "run [--once] [--now TIME] [--log-format text|json] [--verbose] [--listen ADDR:PORT]",
	 "The scheduler. Runs until SIGINT/SIGTERM; SIGHUP reloads the channels file.\n"
	 "--once: dispatch everything due, wait for every result, exit.\n"
	 "--now TIME (with --once): act as if the clock read TIME (ISO 8601 with offset, or epoch ms).\n"
	 "--listen ADDR:PORT: also serve GET /metrics (Prometheus), /healthz and a status page at /\n"
	 "on that address only (IPv4, or [IPv6]; PORT alone means 127.0.0.1; port 0 picks one)."},
	{"migrate", cmd_migrate, "migrate", "Bring the database to the current schema; print its version."},
	{"suppress", cli_suppress,
	 "suppress add|remove CHANNEL ID... | suppress import CHANNEL FILE | "
	 "suppress list [CHANNEL] [--json]",
	 "The opt-out list. A listed id's deliveries on CHANNEL (\"*\": every channel) become\n"
	 "suppressed when they come due, never sent. import reads one id a line, or a CSV with an\n"
	 "id column, in one transaction. remove lets later deliveries go; ones already\n"
	 "suppressed stay so (herald retry KEY --state suppressed sends them)."},
	{"channels", cli_channels, "channels [--json]",
	 "Every configured channel: provider, state (active, paused, suspended), why and since\n"
	 "when, the next probe of a suspended one, and how many deliveries wait on it."},
};

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: herald [--db PATH] [--config PATH] COMMAND [OPTIONS]\n\n"
	             "Herald schedules private-domain customer messaging campaigns and sends them\n"
	             "through their providers.\n\ncommands:\n");
	for (i = 0; i < sizeof cmd_table / sizeof cmd_table[0]; i++)
		fprintf(out, "  herald %s\n", cmd_table[i].usage);
	fprintf(out, "\n  --db PATH      the SQLite file (default $HERALD_DB, else ./herald.db)\n"
	             "  --config PATH  the channels file (default $HERALD_CONFIG, else ./herald.json)\n"
	             "  --version      print the version\n\n"
	             "Run 'herald COMMAND --help' for a command's details.\n");
}

/* Takes --db/--config out of argv wherever they stand; returns the remaining count. */
static int
global_options(int argc, char **argv, struct cli_env *env, int *rc)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		const char **dst = strcmp(argv[i], "--db") == 0 ? &env->db_path
		                 : strcmp(argv[i], "--config") == 0 ? &env->config_path : NULL;

		if (strncmp(argv[i], "--db=", 5) == 0)
			env->db_path = argv[i] + 5;
		else if (strncmp(argv[i], "--config=", 9) == 0)
			env->config_path = argv[i] + 9;
		else if (dst && i + 1 < argc)
			*dst = argv[++i];
		else if (dst) {
			cli_error("%s needs a value", argv[i]);
			*rc = EXIT_USAGE;
			return -1;
		} else
			argv[n++] = argv[i];
	}
	return n;
}

int
cli_main(int argc, char **argv)
{
	struct cli_env env = {0};
	int rc = 0, n, i;
	size_t k;

	env.db_path = getenv("HERALD_DB") && *getenv("HERALD_DB") ? getenv("HERALD_DB") : "./herald.db";
	env.config_path = getenv("HERALD_CONFIG") && *getenv("HERALD_CONFIG") ? getenv("HERALD_CONFIG")
	                                                                         : "./herald.json";
	if ((n = global_options(argc - 1, argv + 1, &env, &rc)) < 0)
		return rc;
	if (n == 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("herald %s\n", HERALD_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (k = 0; k < sizeof cmd_table / sizeof cmd_table[0]; k++)
		if (strcmp(cmd_table[k].name, argv[1]) == 0)
			break;
	if (k == sizeof cmd_table / sizeof cmd_table[0]) {
		cli_error("unknown command \"%s\"", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 2; i < n + 1; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: herald %s\n\n%s\n", cmd_table[k].usage, cmd_table[k].help);
			return 0;
		}
	env.argc = n - 1;
	env.argv = argv + 2;
	return cmd_table[k].exec(&env);
}
