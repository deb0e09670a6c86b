/*
 * cli: the table of commands, the one description of each (its arguments, options and help),
 * the parser that reads argv against it, and the dispatch to the handler. The handlers live
 * in cli_campaign.c, cli_run.c, cli_show.c, cli_channels.c and cli_suppress.c; the helpers
 * they share (errors, opening the database and the channels file) are at the end of this file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "store.h"

/* ---- the commands ---------------------------------------------------------------------- */

static const struct cli_option import_options[] = {
	CLI_FLAG("--dry-run", "validate and print the summary; write nothing, not even a new file"),
	{0},
};

static const struct cli_option status_options[] = {
	CLI_FLAG("--json", "print JSON instead of a table"),
	{0},
};

static const struct cli_option deliveries_options[] = {
	CLI_VALUE("--state", "STATE", "only the deliveries in STATE"),
	CLI_VALUE("--limit", "N", "a page of N rows; when more follow, the cursor of the next"),
	CLI_VALUE("--after", "CURSOR", "the page after CURSOR, as the previous page printed it"),
	CLI_FLAG("--json", "print JSON instead of a table (\"next\": the next page's cursor)"),
	{0},
};

static const struct cli_option attempts_options[] = {
	CLI_VALUE("--recipient", "ID", "only the attempts for recipient ID"),
	CLI_FLAG("--json", "print JSON instead of a table"),
	{0},
};

static const struct cli_option show_options[] = {
	CLI_FLAG("--json", "print JSON instead of text"),
	{0},
};

static const struct cli_option export_options[] = {
	CLI_VALUE("--state", "STATE", "only the deliveries in STATE"),
	CLI_VALUE("--format", "csv|jsonl", "CSV (the default) or JSON Lines, one object a line"),
	{0},
};

static const struct cli_option pause_options[] = {
	CLI_INSTEAD("--channel", "NAME", "pause every campaign on channel NAME instead"),
	{0},
};

static const struct cli_option resume_options[] = {
	CLI_INSTEAD("--channel", "NAME", "release channel NAME instead (also ends a suspension)"),
	{0},
};

static const struct cli_option retry_options[] = {
	CLI_VALUE("--state", "failed|unknown|expired|suppressed",
	          "the deliveries to retry (default failed)"),
	{0},
};

static const struct cli_option run_options[] = {
	CLI_FLAG("--once", "dispatch everything due, wait for every result, exit"),
	CLI_VALUE("--now", "TIME", "with --once: act as if the clock read TIME "
	          "(ISO 8601 with offset, or epoch ms)"),
	CLI_VALUE("--log-format", "text|json", "the log lines' format (default text)"),
	CLI_FLAG("--verbose", "log debug lines too"),
	CLI_VALUE("--listen", "ADDR:PORT", "also serve GET /metrics (Prometheus), /healthz and a "
	          "status page at /"),
	{0},
};

/* Only `suppress list` takes it; the usage line shows it after that form, the last. */
static const struct cli_option suppress_options[] = {
	CLI_FLAG("--json", "with list: print JSON"),
	{0},
};

static const struct cli_option copy_options[] = {
	CLI_VALUE("--from", "SQLITE_FILE", "the SQLite database to copy (required)"),
	CLI_VALUE("--to", "postgresql://...", "the PostgreSQL database to copy into (required)"),
	{0},
};

static const struct cli_option channels_options[] = {
	CLI_FLAG("--json", "print JSON instead of a table"),
	{0},
};

static const struct cli_command cmd_table[] = {
	{"import", cmd_import, "FILE", 1, 1, import_options,
	 "Validate a campaign definition (FILE, or - for stdin) and upsert it. Nothing is written\n"
	 "unless all of it is valid."},
	{"status", cmd_status, "[KEY]", 0, 1, status_options,
	 "Every campaign, or one: state, deliveries per state, next send time, latest error."},
	{"deliveries", cmd_deliveries, "KEY", 1, 1, deliveries_options,
	 "The deliveries of a campaign in due order: recipient, step, due time, state, attempts,\n"
	 "last error, provider message id. Without --limit a terminal gets a screenful, a pipe\n"
	 "every row."},
	{"attempts", cmd_attempts, "KEY", 1, 1, attempts_options,
	 "The attempt log: when, how long, HTTP status, provider code and message, outcome."},
	{"show", cmd_show, "KEY", 1, 1, show_options,
	 "The campaign's stored definition: channel, time zone, anchor, expiry, steps with their\n"
	 "messages, recipient count."},
	{"export", cmd_export, "KEY", 1, 1, export_options,
	 "Every delivery of the campaign to stdout, streamed: recipient, step, due_at, state,\n"
	 "attempts, last_error, provider_message_id. CSV (the default) starts with a UTF-8 BOM."},
	{"pause", cmd_pause, "KEY", 1, 1, pause_options,
	 "Stop dispatching the campaign (or every campaign on channel NAME); everything is kept."},
	{"resume", cmd_resume, "KEY", 1, 1, resume_options,
	 "Continue a paused campaign, or a paused or suspended channel."},
	{"cancel", cmd_cancel, "KEY", 1, 1, NULL,
	 "Cancel every delivery of the campaign not yet sent. A completed campaign (nothing left\n"
	 "to send) is refused."},
	{"retry", cmd_retry, "KEY", 1, 1, retry_options,
	 "Put the campaign's deliveries in that state (default failed) back to pending."},
	{"run", cmd_run, "", 0, 0, run_options,
	 "The scheduler. Runs until SIGINT/SIGTERM; SIGHUP reloads the channels file.\n"
	 "--listen serves on that address only (IPv4, or [IPv6]; PORT alone means 127.0.0.1;\n"
	 "port 0 picks one)."},
	{"migrate", cmd_migrate, "", 0, 0, NULL,
	 "Bring the database to the current schema; print its version."},
	{"copy", cmd_copy, "", 0, 0, copy_options,
	 "Move a SQLite database to PostgreSQL: every campaign, delivery, attempt, limit, channel\n"
	 "state and suppression, ids kept, counts verified, in one transaction. The target must\n"
	 "hold no Herald data; every herald run on the source must be stopped."},
	{"suppress", cmd_suppress,
	 "add|remove CHANNEL ID... | suppress import CHANNEL FILE | suppress list [CHANNEL]",
	 1, CLI_ARGS_ANY, suppress_options,
	 "The opt-out list. A listed id's deliveries on CHANNEL (\"*\": every channel) become\n"
	 "suppressed when they come due, never sent. import reads one id a line, or a CSV with an\n"
	 "id column, in one transaction. remove lets later deliveries go; ones already\n"
	 "suppressed stay so (herald retry KEY --state suppressed sends them)."},
	{"channels", cmd_channels, "", 0, 0, channels_options,
	 "Every configured channel: provider, state (active, paused, suspended), why and since\n"
	 "when, the next probe of a suspended one, and how many deliveries wait on it."},
};

#define N_COMMANDS (sizeof cmd_table / sizeof cmd_table[0])

/* The options every command takes, wherever they stand, and --version. */
enum { GLOBAL_DB, GLOBAL_CONFIG };
static const struct cli_option global_options[] = {
	[GLOBAL_DB] = CLI_VALUE("--db", "PATH",
	                        "the SQLite file (default $HERALD_DB, else ./herald.db)"),
	[GLOBAL_CONFIG] = CLI_VALUE("--config", "PATH",
	                            "the channels file (default $HERALD_CONFIG, else ./herald.json)"),
	CLI_FLAG("--version", "print the version"),
	{0},
};

/* ---- usage and help, made from the table ----------------------------------------------- */

/* "herald status [KEY] [--json]": the arguments, then each option; an `alone` option as a
   form of its own ("herald pause KEY | pause --channel NAME"). */
static void
print_usage(FILE *out, const struct cli_command *cmd)
{
	const struct cli_option *o;

	fprintf(out, "herald %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
	for (o = cmd->options; o && o->name; o++)
		if (!o->alone)
			fprintf(out, o->meta ? " [%s %s]" : " [%s]", o->name, o->meta);
	for (o = cmd->options; o && o->name; o++)
		if (o->alone)
			fprintf(out, " | %s %s %s", cmd->name, o->name, o->meta);
}

/* The columns "--name META" takes. */
static int
option_width(const struct cli_option *o)
{
	return (int)(strlen(o->name) + (o->meta ? 1 + strlen(o->meta) : 0));
}

/* The options, one a line, their descriptions aligned. */
static void
print_options(FILE *out, const struct cli_option *options)
{
	const struct cli_option *o;
	int width = 0;

	for (o = options; o && o->name; o++)
		if (option_width(o) > width)
			width = option_width(o);
	for (o = options; o && o->name; o++)
		fprintf(out, "  %s%s%s%*s  %s\n", o->name, o->meta ? " " : "", o->meta ? o->meta : "",
		        width - option_width(o), "", o->help);
}

static void
print_help(const struct cli_command *cmd)
{
	fputs("usage: ", stdout);
	print_usage(stdout, cmd);
	printf("\n\n%s\n", cmd->help);
	if (cmd->options && cmd->options[0].name) {
		fputs("\noptions:\n", stdout);
		print_options(stdout, cmd->options);
	}
}

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: herald [--db PATH] [--config PATH] COMMAND [OPTIONS]\n\n"
	             "Herald schedules private-domain customer messaging campaigns and sends them\n"
	             "through their providers.\n\ncommands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		fputs("  ", out);
		print_usage(out, &cmd_table[i]);
		fputc('\n', out);
	}
	fputc('\n', out);
	print_options(out, global_options);
	fprintf(out, "\nRun 'herald COMMAND --help' for a command's details.\n");
}

int
cli_usage_error(const struct cli_env *env, const char *fmt, ...)
{
	va_list ap;

	fputs("herald: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: ", stderr);
	print_usage(stderr, env->cmd);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

/* ---- the parser ------------------------------------------------------------------------ */

/* The row of options named by arg ("--state" or "--state=..."), or NULL. */
static const struct cli_option *
find_option(const struct cli_option *options, const char *arg)
{
	const struct cli_option *o;
	size_t len = strcspn(arg, "=");

	for (o = options; o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0)
			return o;
	return NULL;
}

/* The value of option o, which argv[*i] names: a flag's name, the VALUE of --name=VALUE, or
   the word after --name (then *i moves onto it); NULL when that word is missing. */
static const char *
option_value(const struct cli_option *o, int argc, char **argv, int *i)
{
	const char *eq = strchr(argv[*i], '=');

	if (!o->meta)
		return o->name;
	if (eq)
		return eq + 1;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

/*
 * Reads the command's own words, argv[0..argc), against its table: an option as --name,
 * --name=VALUE or --name VALUE, into env->opts; anything else (and "-", stdin) is an
 * argument, kept in order at the front of argv. Returns 0, or EXIT_USAGE after printing why:
 * an unknown option (a flag given a value among them), a value missing, an argument too many
 * or too few, or arguments with an `alone` option.
 */
static int
parse_command(struct cli_env *env, int argc, char **argv)
{
	const struct cli_command *cmd = env->cmd;
	const struct cli_option *o, *alone = NULL;
	const char *a;
	int i;

	env->argv = argv;
	env->argc = 0;
	for (i = 0; i < argc; i++) {
		a = argv[i];
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (env->argc == cmd->max_args)
				return cli_usage_error(env, "unexpected argument \"%s\"", a);
			env->argv[env->argc++] = argv[i];
			continue;
		}
		if (!(o = find_option(cmd->options, a)) || (!o->meta && strchr(a, '=')))
			return cli_usage_error(env, "unknown option \"%s\"", a);
		if (!(env->opts[o - cmd->options] = option_value(o, argc, argv, &i)))
			return cli_usage_error(env, "%s needs a value", o->name);
	}
	for (o = cmd->options; o && o->name; o++)
		if (o->alone && env->opts[o - cmd->options])
			alone = o;
	if (alone && env->argc > 0)
		return cli_usage_error(env, "give %s or %s %s, not both", cmd->args, alone->name,
		                       alone->meta);
	if (!alone && env->argc < cmd->min_args)
		return cli_usage_error(env, "missing argument");
	return 0;
}

/* The row of the running command's options named name; a name it lacks is a bug here. */
static const struct cli_option *
declared(const struct cli_env *env, const char *name, int valued)
{
	const struct cli_option *o;

	for (o = env->cmd->options; o && o->name; o++)
		if (strcmp(o->name, name) == 0 && (o->meta != NULL) == valued)
			return o;
	cli_error("internal error: %s has no %s %s", env->cmd->name, valued ? "option" : "flag", name);
	return NULL;
}

const char *
cli_opt(const struct cli_env *env, const char *name)
{
	const struct cli_option *o = declared(env, name, 1);

	return o ? env->opts[o - env->cmd->options] : NULL;
}

int
cli_flag(const struct cli_env *env, const char *name)
{
	const struct cli_option *o = declared(env, name, 0);

	return o && env->opts[o - env->cmd->options] != NULL;
}

/* Takes --db and --config out of argv wherever they stand; returns the words left, or -1
   after printing why (EXIT_USAGE). */
static int
take_global_options(int argc, char **argv, struct cli_env *env)
{
	const char **dst[] = {[GLOBAL_DB] = &env->db_path, [GLOBAL_CONFIG] = &env->config_path};
	const struct cli_option *o;
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		o = find_option(global_options, argv[i]);
		if (!o || !o->meta) {
			argv[n++] = argv[i];
			continue;
		}
		if (!(*dst[o - global_options] = option_value(o, argc, argv, &i))) {
			cli_error("%s needs a value", o->name);
			return -1;
		}
	}
	return n;
}

static const struct cli_command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

static const char *
env_or(const char *var, const char *fallback)
{
	const char *v = getenv(var);

	return v && *v ? v : fallback;
}

int
cli_main(int argc, char **argv)
{
	struct cli_env env = {0};
	const struct cli_option *o;
	size_t n_options = 0;
	int rc, n, i;

	env.db_path = env_or("HERALD_DB", "./herald.db");
	env.config_path = env_or("HERALD_CONFIG", "./herald.json");
	if ((n = take_global_options(argc - 1, argv + 1, &env)) < 0)
		return EXIT_USAGE;
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
	if (!(env.cmd = find_command(argv[1]))) {
		cli_error("unknown command \"%s\"", argv[1]);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 2; i < n + 1; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			print_help(env.cmd);
			return 0;
		}
	for (o = env.cmd->options; o && o->name; o++)
		n_options++;
	if (!(env.opts = calloc(n_options + 1, sizeof *env.opts)))
		return 1;
	if ((rc = parse_command(&env, n - 1, argv + 2)) == 0)
		rc = env.cmd->exec(&env);
	free(env.opts);
	return rc;
}

/* ---- helpers the command files share --------------------------------------------------- */

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

struct store *
cli_open_writer(const struct cli_env *env, int dry_run, int *made)
{
	char *err = NULL;
	struct store *s = store_open_writer(env->db_path, dry_run, made, &err);

	if (!s) {
		cli_error("%s", err ? err : "cannot open the database");
		free(err);
	}
	return s;
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

