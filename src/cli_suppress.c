/*
 * cli_suppress: `herald suppress`, the opt-out list (SPEC 5.12). add and import create the
 * database if needed (an opt-out may come before any campaign); list and remove need it to
 * exist. import streams its file in one transaction: every bad row is reported with its line
 * and nothing is written unless all are good.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "clock.h"
#include "recipients.h"
#include "sop.h"
#include "store.h"
#include "utf8.h"

/* The longest id kept: longer than any provider's id, short enough to spot garbage. */
#define ID_MAX 512
/* Bad rows listed before the rest are only counted. */
#define PROBLEMS_MAX 50

/* The UTF-8 byte order mark spreadsheet programs write at the start of a file. */
static const char bom[] = "\xEF\xBB\xBF";
#define BOM_LEN (sizeof bom - 1)

/* NULL if id is one a campaign could list, else why not. */
static const char *
id_problem(const char *id, size_t len)
{
	size_t i;

	if (len == 0)
		return "empty id";
	if (len > ID_MAX)
		return "id longer than 512 bytes";
	if (!utf8_valid(id, len, NULL))
		return "id is not valid UTF-8";
	for (i = 0; i < len; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return "id holds a control character";
	if (id[0] == ' ' || id[len - 1] == ' ')
		return "id starts or ends with a space";
	return NULL;
}

static int
check_channel(const char *channel)
{
	if (!channel[0] || strlen(channel) > 255) {
		cli_error("CHANNEL must be a channel name or \"*\" (every channel)");
		return EXIT_USAGE;
	}
	return 0;
}

static void
fail(const char *what, char *err)
{
	cli_error("%s", err ? err : what);
	free(err);
}

/* add / remove CHANNEL ID...: one transaction. */
static int
add_remove(const struct cli_env *env, int add, const char *channel, const char *const *ids, int n)
{
	struct store *s;
	char *err = NULL;
	int64_t done = 0, now = clock_now_ms();
	int rc = 0, i, r;
	const char *bad;

	for (i = 0; i < n; i++)
		if ((bad = id_problem(ids[i], strlen(ids[i])))) {
			cli_error("argument %d: %s", i + 3, bad);
			return EXIT_DATAERR;
		}
	if (!(s = add ? cli_open_writer(env, 0, NULL) : cli_open_existing(env, &rc)))
		return add ? 1 : rc;
	if (store_begin(s, &err) != 0) {
		fail("cannot begin", err);
		store_close(s);
		return 1;
	}
	if (add) {
		done = store_suppress_add(s, channel, ids, (size_t)n, now, &err);
		i = done < 0 ? 0 : n;
	} else {
		for (i = 0; i < n; i++) {
			if ((r = store_suppress_delete(s, channel, ids[i], &err)) < 0)
				break;
			done += r;
		}
	}
	if (i < n || store_commit(s, &err) != 0) {
		store_rollback(s);
		fail("database error", err);
		store_close(s);
		return 1;
	}
	if (add)
		printf("%s: %lld added, %lld already listed\n", channel, (long long)done,
		       (long long)(n - done));
	else
		/* Said every time: an operator who removes an id expects its deliveries back. */
		printf("%s: %lld removed, %lld were not listed\n"
		       "deliveries already suppressed stay suppressed; herald retry KEY --state "
		       "suppressed sends them\n", channel, (long long)done, (long long)(n - done));
	store_close(s);
	return 0;
}

/* How many ids go to the store at once. */
#define IDS_BATCH 1000

/* The import's running state. */
struct ids_in {
	struct store *s;
	const char *path;
	const char *channel;
	int64_t now_ms;
	int64_t added, seen;
	int problems;
	int fatal;
	char *batch[IDS_BATCH];       /* ids read and not yet written (owned) */
	size_t n_batch;
};

/* Writes the batch of ids read so far. */
static void
flush_ids(struct ids_in *in)
{
	char *err = NULL;
	int64_t r = 0;
	size_t i;

	if (!in->fatal && !in->problems &&
	    (r = store_suppress_add(in->s, in->channel, (const char *const *)in->batch,
	                            in->n_batch, in->now_ms, &err)) < 0) {
		fail("database error", err);
		in->fatal = 1;
	}
	in->added += r > 0 ? r : 0;
	for (i = 0; i < in->n_batch; i++)
		free(in->batch[i]);
	in->n_batch = 0;
}

static void
bad_row(struct ids_in *in, long line, const char *why)
{
	if (++in->problems <= PROBLEMS_MAX)
		cli_error("%s: line %ld: %s", in->path, line, why);
}

static void
take_id(struct ids_in *in, long line, const char *id, size_t len)
{
	const char *bad = id_problem(id, len);

	if (bad) {
		bad_row(in, line, bad);
		return;
	}
	in->seen++;
	/* After a bad row nothing will be written: only look for more problems. */
	if (in->problems || in->fatal)
		return;
	if (!(in->batch[in->n_batch] = strdup(id))) {
		cli_error("out of memory");
		in->fatal = 1;
		return;
	}
	if (++in->n_batch == IDS_BATCH)
		flush_ids(in);
}

/*
 * Whether the file is a CSV with an id column: its first line (after a BOM) is a header that
 * has a comma or is just "id". A plain list is one id a line, so a comma cannot be in it.
 */
static int
looks_csv(FILE *f)
{
	char line[4096];
	char *p = line;
	size_t len;

	if (!fgets(line, sizeof line, f))
		return 0;
	if (strncmp(p, bom, BOM_LEN) == 0)
		p += BOM_LEN;
	len = strcspn(p, "\r\n");
	p[len] = '\0';
	return strchr(p, ',') || strcmp(p, "id") == 0 || strcmp(p, "\"id\"") == 0;
}

/* A CSV file through the recipients reader (RFC 4180, BOM, line numbers), its id column. */
static void
read_csv(struct ids_in *in)
{
	struct recipients_reader *r;
	cJSON *rec = NULL;
	const cJSON *id;
	char *err = NULL;
	long line = 0;
	int n;

	if (!(r = recipients_open(in->path, &err))) {
		fail("cannot open", err);
		in->fatal = 1;
		return;
	}
	while ((n = recipients_next(r, &rec, &line, &err)) != 0) {
		if (n == -2) {
			fail("cannot read", err);
			in->fatal = 1;
			break;
		}
		if (n == -1) {
			if (++in->problems <= PROBLEMS_MAX)
				cli_error("%s: %s", in->path, err);
			free(err);
			err = NULL;
			continue;
		}
		id = cJSON_GetObjectItemCaseSensitive(rec, "id");
		if (cJSON_IsString(id))
			take_id(in, line, id->valuestring, strlen(id->valuestring));
		else
			bad_row(in, line, "no id (the id column is empty or missing)");
		cJSON_Delete(rec);
		rec = NULL;
	}
	recipients_close(r);
}

/* One id a line; blank lines are skipped. */
static void
read_lines(struct ids_in *in, FILE *f)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;
	long line = 0;

	while ((len = getline(&buf, &cap, f)) >= 0) {
		char *p = buf;

		line++;
		if (line == 1 && (size_t)len >= BOM_LEN && strncmp(p, bom, BOM_LEN) == 0) {
			p += BOM_LEN;
			len -= (ssize_t)BOM_LEN;
		}
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		/* The store takes the id as a C string: without the line ending it was kept with. */
		p[len] = '\0';
		if (memchr(p, '\0', (size_t)len))
			bad_row(in, line, "a NUL byte");
		else
			take_id(in, line, p, (size_t)len);
	}
	if (ferror(f)) {
		cli_error("%s: read error: %s", in->path, strerror(errno));
		in->fatal = 1;
	}
	free(buf);
}

static int
import_ids(const struct cli_env *env, const char *channel, const char *path)
{
	struct ids_in in = {0};
	char *err = NULL;
	FILE *f;
	int csv, rc = 0, made;

	if (!(f = fopen(path, "r"))) {
		cli_error("%s: %s", path, strerror(errno));
		return EXIT_NOINPUT;
	}
	csv = looks_csv(f);
	rewind(f);
	in.path = path;
	in.channel = channel;
	in.now_ms = clock_now_ms();
	if (!(in.s = cli_open_writer(env, 0, &made))) {
		fclose(f);
		return 1;
	}
	if (store_begin(in.s, &err) != 0) {
		fail("cannot begin", err);
		rc = 1;
		goto out;
	}
	if (csv)
		read_csv(&in);
	else
		read_lines(&in, f);
	flush_ids(&in);
	if (in.fatal) {
		store_rollback(in.s);
		rc = 1;
	} else if (in.problems) {
		store_rollback(in.s);
		if (in.problems > PROBLEMS_MAX)
			cli_error("%s: %d more bad rows", path, in.problems - PROBLEMS_MAX);
		cli_error("%s: invalid, nothing was written", path);
		rc = EXIT_DATAERR;
	} else if (store_commit(in.s, &err) != 0) {
		fail("cannot commit", err);
		rc = 1;
	} else {
		printf("%s: %lld ids read, %lld added, %lld already listed\n", channel,
		       (long long)in.seen, (long long)in.added, (long long)(in.seen - in.added));
	}
out:
	fclose(f);
	store_close(in.s);
	/* As for `herald import`: a file made for an import that wrote nothing must not stay. */
	if (rc != 0 && made)
		store_unmake(env->db_path);
	return rc;
}

struct listing {
	cJSON *array;                 /* --json: rows gathered... */
	int json;
	int first;
};

static int
list_row(void *arg, const struct store_suppression *r)
{
	struct listing *l = arg;
	char when[40];
	cJSON *o;
	char *text;

	sop_format_instant(r->added_at_ms, 0, when);
	if (!l->json) {
		printf("%s\t%s\t%s\n", r->channel, r->rid, when);
		return 0;
	}
	/* ...streamed one object at a time, so a million ids print in flat memory. */
	if (!(o = cJSON_CreateObject()))
		return -1;
	cJSON_AddStringToObject(o, "channel", r->channel);
	cJSON_AddStringToObject(o, "id", r->rid);
	cJSON_AddStringToObject(o, "added_at", when);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return -1;
	printf("%s%s", l->first ? "" : ",", text);
	l->first = 0;
	cJSON_free(text);
	return 0;
}

static int
list(const struct cli_env *env, const char *channel, int json)
{
	struct listing l = {NULL, json, 1};
	struct store *s;
	char *err = NULL;
	int rc = 0;

	if (!(s = cli_open_existing(env, &rc)))
		return rc;
	if (json)
		printf("{\"suppressions\":[");
	if (store_suppress_list(s, channel, list_row, &l, &err) != 0) {
		fail("cannot list", err);
		rc = 1;
	}
	if (json)
		printf("]}\n");
	store_close(s);
	return rc;
}

int
cmd_suppress(const struct cli_env *env)
{
	const char *const *arg = (const char *const *)env->argv, *verb = arg[0];
	int n = env->argc, json = cli_flag(env, "--json");

	if (json && strcmp(verb, "list") != 0)
		return cli_usage_error(env, "--json goes with list only");
	if ((strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0) && n >= 3)
		return check_channel(arg[1]) ? EXIT_USAGE
		                             : add_remove(env, verb[0] == 'a', arg[1], arg + 2, n - 2);
	if (strcmp(verb, "import") == 0 && n == 3)
		return check_channel(arg[1]) ? EXIT_USAGE : import_ids(env, arg[1], arg[2]);
	if (strcmp(verb, "list") == 0 && n <= 2)
		return n == 2 && check_channel(arg[1]) ? EXIT_USAGE
		                                       : list(env, n == 2 ? arg[1] : NULL, json);
	return cli_usage_error(env, "%s", strcmp(verb, "add") && strcmp(verb, "remove") &&
	                                          strcmp(verb, "import") && strcmp(verb, "list")
	                                      ? "unknown suppress command" : "wrong arguments");
}
