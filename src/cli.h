/*
 * cli: the command line. cli.c holds the one table of commands (SPEC §1): each entry names
 * the command, its handler, its arguments, its options and its help, and the usage lines,
 * `herald CMD --help` and the option parsing are all made from it. A handler finds its
 * options already parsed (cli_opt, cli_flag) and its arguments in order, opens what it
 * needs, prints, and returns a BSD sysexits code.
 */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#define EXIT_USAGE 64
#define EXIT_DATAERR 65
#define EXIT_NOINPUT 66
#define EXIT_CONFIG 78

/* One option of a command, a row of its options table; a row with a NULL name ends it. */
struct cli_option {
	const char *name;             /* "--state" */
	const char *meta;             /* what its value is called ("STATE", "csv|jsonl"): given as
	                                 --name META or --name=META; NULL: a flag, no value */
	int alone;                    /* 1: given instead of the command's arguments, never
	                                 with them ("pause KEY | pause --channel NAME") */
	const char *help;             /* one line for `herald CMD --help` */
};

/* The rows, so a table says at a glance which options take a value. */
#define CLI_FLAG(name, help) {name, NULL, 0, help}
#define CLI_VALUE(name, meta, help) {name, meta, 0, help}
#define CLI_INSTEAD(name, meta, help) {name, meta, 1, help}

struct cli_env;

/* A command, an entry of cli.c's table. */
struct cli_command {
	const char *name;
	int (*exec)(const struct cli_env *env);
	const char *args;             /* its arguments in the usage line ("KEY", "[KEY]"), which
	                                 shows the options after them; "" for none */
	int min_args;                 /* arguments it needs, unless an `alone` option is given */
	int max_args;                 /* arguments it takes; CLI_ARGS_ANY: no limit */
	const struct cli_option *options;  /* NULL: none */
	const char *help;             /* what it does, for --help */
};

#define CLI_ARGS_ANY (-1)

/* What a handler is given. */
struct cli_env {
	const char *db_path;          /* --db, $HERALD_DB, ./herald.db */
	const char *config_path;      /* --config, $HERALD_CONFIG, ./herald.json */
	const struct cli_command *cmd;  /* the command run; NULL outside one */
	const char **opts;            /* its options' values, by their rows in cmd->options:
	                                 NULL when absent; use cli_opt and cli_flag */
	int argc;                     /* its arguments (not options), in order */
	char **argv;
};

/* Runs herald with argv; returns the process exit status. */
int cli_main(int argc, char **argv);

/* The value given to NAME, a valued option of the command ("--state"); NULL if absent. */
const char *cli_opt(const struct cli_env *env, const char *name);
/* 1 if the flag NAME ("--json") was given, else 0. */
int cli_flag(const struct cli_env *env, const char *name);
/* Prints "herald: <msg>" and the command's usage line to stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli_env *env, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The commands that change a campaign (cli_campaign.c). */
int cmd_import(const struct cli_env *env);
int cmd_pause(const struct cli_env *env);
int cmd_resume(const struct cli_env *env);
int cmd_cancel(const struct cli_env *env);
int cmd_retry(const struct cli_env *env);
/* The scheduler and the schema (cli_run.c). */
int cmd_run(const struct cli_env *env);
int cmd_migrate(const struct cli_env *env);
int cmd_copy(const struct cli_env *env);
/* The commands that print campaign data (cli_show.c). */
int cmd_status(const struct cli_env *env);
int cmd_deliveries(const struct cli_env *env);
int cmd_attempts(const struct cli_env *env);
int cmd_show(const struct cli_env *env);
int cmd_export(const struct cli_env *env);
struct store_status;
/* A campaign's state for people: active, paused, cancelled, or completed when nothing is left
   to send. */
const char *cli_campaign_state(const struct store_status *st);
/* The channels and their holds (cli_channels.c). */
int cmd_channels(const struct cli_env *env);
/* pause|resume --channel NAME: pause 1 holds the channel, 0 releases it (and ends a
   suspension). */
int cli_channel_hold(const struct cli_env *env, const char *name, int pause);
/* The opt-out list (cli_suppress.c). */
int cmd_suppress(const struct cli_env *env);

/* Helpers the command files share (cli.c). */
struct store;
struct config;
/* Loads the channels file, printing the error and setting *rc (78); NULL on failure. */
struct config *cli_load_config(const struct cli_env *env, int *rc);
/* Opens an existing database for the commands that only read or change rows; never creates
   one. NULL after printing the error, with *rc = 66 when the file is missing, else 1. */
struct store *cli_open_existing(const struct cli_env *env, int *rc);
/* Opens the database, creating it if needed (store_open_writer; made may be NULL), printing
   the error; NULL on failure. */
struct store *cli_open_writer(const struct cli_env *env, int dry_run, int *made);
/* Prints "herald: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
