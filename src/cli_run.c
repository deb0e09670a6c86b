/*
 * cli_run: the scheduler (`herald run`) and the schema (`herald migrate`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "scheduler.h"
#include "sop.h"
#include "store.h"

int
cmd_copy(const struct cli_env *env)
{
	struct store_copy_count counts[STORE_COPY_TABLES] = {{0}};
	const char *from = cli_opt(env, "--from"), *to = cli_opt(env, "--to");
	char *err = NULL;
	int rc, i;

	if (!from || !to) {
		cli_error("copy needs --from SQLITE_FILE and --to postgresql://...");
		return EXIT_USAGE;
	}
	if ((rc = store_copy(from, to, counts, &err)) != 0) {
		cli_error("copy: %s", err ? err : "failed");
		free(err);
		return rc == -2 ? EXIT_NOINPUT : 1;
	}
	for (i = 0; i < STORE_COPY_TABLES; i++)
		printf("%-16s %lld\n", counts[i].table, (long long)counts[i].rows);
	printf("copied; the counts match on both sides\n");
	return 0;
}

int
cmd_migrate(const struct cli_env *env)
{
	struct store *s;

	if (!(s = cli_open_writer(env, 0, NULL)))
		return 1;
	printf("%s: schema version %d\n", store_path(s), store_version(s));
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

int
cmd_run(const struct cli_env *env)
{
	const char *now = cli_opt(env, "--now"), *format = cli_opt(env, "--log-format");
	const char *addr = cli_opt(env, "--listen");
	char *err = NULL;
	struct scheduler_opts so = {0};
	struct config *cfg;
	int rc;

	so.once = cli_flag(env, "--once");
	if (now && (!so.once || sop_parse_instant(now, &so.now_ms) != 0)) {
		cli_error(so.once ? "--now: \"%s\" is not an ISO 8601 time with offset or epoch ms"
		                  : "--now works only with --once", now);
		return EXIT_USAGE;
	}
	if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
		cli_error("--log-format must be text or json");
		return EXIT_USAGE;
	}
	if (addr && httpd_check_addr(addr, &err) != 0) {
		cli_error("%s", err);
		free(err);
		return EXIT_USAGE;
	}
	so.listen = addr;
	log_init(format && strcmp(format, "json") == 0 ? LOG_JSON : LOG_TEXT,
	         cli_flag(env, "--verbose") ? LOG_DEBUG : LOG_INFO);
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
