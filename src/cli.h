/*
 * cli: the command line. One table entry per command (SPEC §1); each command parses its own
 * options, opens what it needs, prints, and returns a BSD sysexits code.
 */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#define EXIT_USAGE 64
#define EXIT_DATAERR 65
#define EXIT_NOINPUT 66
#define EXIT_CONFIG 78

/* What every command is given. */
struct cli_env {
	const char *db_path;          /* --db, $HERALD_DB, ./herald.db */
	const char *config_path;      /* --config, $HERALD_CONFIG, ./herald.json */
	int argc;                     /* the command's own arguments, after its name */
	char **argv;
};

/* Runs herald with argv; returns the process exit status. */
int cli_main(int argc, char **argv);

/* The commands that change a campaign (cli_campaign.c). */
int cmd_import(const struct cli_env *env);
int cmd_pause(const struct cli_env *env);
int cmd_resume(const struct cli_env *env);
int cmd_cancel(const struct cli_env *env);
int cmd_retry(const struct cli_env *env);
/* The scheduler and the schema (cli_run.c). */
int cmd_run(const struct cli_env *env);
int cmd_migrate(const struct cli_env *env);
/* The commands that print campaign data (cli_show.c). */
int cmd_status(const struct cli_env *env);
int cmd_deliveries(const struct cli_env *env);
int cmd_attempts(const struct cli_env *env);
/* The channels and their holds (cli_channels.c). */
int cmd_channels(const struct cli_env *env);
/* pause|resume --channel NAME: pause 1 holds the channel, 0 releases it (and ends a
   suspension). */
int cli_channel_hold(const struct cli_env *env, const char *name, int pause);
int cmd_show(const struct cli_env *env);
/* The opt-out list (cli_suppress.c). */
int cmd_suppress(const struct cli_env *env);
int cmd_export(const struct cli_env *env);
struct store_status;
/* A campaign's state for people: active, paused, cancelled, or completed when nothing is left
   to send. */
const char *cli_campaign_state(const struct store_status *st);

/* Helpers the command files share. */
struct store;
struct config;
/* Loads the channels file, printing the error and setting *rc (78); NULL on failure. */
struct config *cli_load_config(const struct cli_env *env, int *rc);
/* Opens the database, creating it if needed, printing the error; NULL on failure. */
struct store *cli_open_store(const struct cli_env *env);
/* Opens an existing database for the commands that only read or change rows; never creates
   one. NULL after printing the error, with *rc = 66 when the file is missing, else 1. */
struct store *cli_open_existing(const struct cli_env *env, int *rc);
/* Removes a database file (and its -wal, -shm, -journal) that holds nothing yet: what a
   failed first write on a fresh path created. A file another process began to use stays. */
void cli_remove_fresh_db(const char *path);
/* Prints "herald: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses the command's options against a NULL-terminated list of flags ("--json") and
   valued options ("--state="), storing values in vals[i] (flags get "1"); positional
   arguments go to pos[] (at most max_pos). Returns 0, or EXIT_USAGE after printing why. */
int cli_parse(const struct cli_env *env, const char *const *opts, const char **vals,
              const char **pos, int min_pos, int max_pos, const char *usage);

#endif
