/*
 * cli: argv to a command, and the helpers the command files share. The commands themselves
 * live in cli_campaign.c, cli_run.c, cli_show.c, cli_channels.c and cli_suppress.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
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

static const struct cmd_entry cmd_table[] = {
	{"import", cmd_import, "import FILE [--dry-run]",
	 "Validate a campaign definition (FILE, or - for stdin) and upsert it. Nothing is written\n"
	 "unless all of it is valid. --dry-run validates and prints the summary only."},
	{"status", cmd_status, "status [KEY] [--json]",
	 "Every campaign, or one: state, deliveries per state, next send time, latest error."},
	{"deliveries", cmd_deliveries,
	 "deliveries KEY [--state STATE] [--limit N] [--after CURSOR] [--json]",
	 "The deliveries of a campaign in due order: recipient, step, due time, state, attempts,\n"
	 "last error, provider message id. --limit N prints a page of N rows and, when more\n"
	 "follow, the cursor for --after (\"next\" in --json). Without --limit a terminal gets a\n"
	 "screenful, a pipe every row."},
	{"attempts", cmd_attempts, "attempts KEY [--recipient ID] [--json]",
	 "The attempt log: when, how long, HTTP status, provider code and message, outcome."},
	{"show", cmd_show, "show KEY [--json]",
	 "The campaign's stored definition: channel, time zone, anchor, expiry, steps with their\n"
	 "messages, recipient count."},
	{"export", cmd_export, "export KEY [--state STATE] [--format csv|jsonl]",
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
	{"suppress", cmd_suppress,
	 "suppress add|remove CHANNEL ID... | suppress import CHANNEL FILE | "
	 "suppress list [CHANNEL] [--json]",
	 "The opt-out list. A listed id's deliveries on CHANNEL (\"*\": every channel) become\n"
	 "suppressed when they come due, never sent. import reads one id a line, or a CSV with an\n"
	 "id column, in one transaction. remove lets later deliveries go; ones already\n"
	 "suppressed stay so (herald retry KEY --state suppressed sends them)."},
	{"channels", cmd_channels, "channels [--json]",
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
