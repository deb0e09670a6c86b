/* test_apiusb: the APIUSB BulkSend module: checks, the form body, per-member verdicts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "provider.h"
#include "t.h"

#define BASE_URL "http://127.0.0.1:9"
#define NOT_LISTED "not in data.item of an accepted BulkSend"
#define BIG (1024 * 1024)

static const struct provider_ops *ops = &provider_apiusb;

#include "provider_t.h"

#define chan(keys_json) provider_channel("members", BASE_URL, keys_json)
#define judge(ch, status, body, len, it, n) judge_items(ch, status, body, len, it, n, 1700000000000LL)
#define recipient_ok(json) check_json(ops->check_recipient, json)

/* n items addressed to ids[i], all pointing at the same message. */
static struct provider_item *
items_new(char **ids, size_t n, const cJSON *message)
{
	struct provider_item *it = calloc(n, sizeof *it);
	size_t i;

	for (i = 0; i < n; i++) {
		it[i].delivery_id = (int64_t)i + 1;
		it[i].recipient_id = ids[i];
		it[i].message = message;
		it[i].campaign_key = "c1";
		it[i].step = 1;
		/* A value judge never writes here, so a forgotten item shows up. */
		it[i].outcome = PROVIDER_DEFERRED;
	}
	return it;
}

static void
items_free(struct provider_item *it, size_t n)
{
	items_reset(it, n);
	free(it);
}

/* A decoded form body: names and values in order. */
struct form {
	int n;
	char *name[16];
	char *value[16];
};

static void
form_parse(const char *body, struct form *f)
{
	const char *p = body, *amp, *eq;

	memset(f, 0, sizeof *f);
	while (p && *p && f->n < 16) {
		amp = strchr(p, '&');
		if (!amp)
			amp = p + strlen(p);
		eq = memchr(p, '=', (size_t)(amp - p));
		if (!eq)
			eq = amp;
		f->name[f->n] = pct_decode(p, (size_t)(eq - p), PCT_STRICT);
		f->value[f->n] = eq < amp ? pct_decode(eq + 1, (size_t)(amp - eq - 1), PCT_STRICT) : NULL;
		f->n++;
		p = *amp ? amp + 1 : NULL;
	}
}

static void
form_free(struct form *f)
{
	int i;

	for (i = 0; i < f->n; i++) {
		free(f->name[i]);
		free(f->value[i]);
	}
}

/* Every byte of a form body is unreserved, '%', '&' or '=': the values were all encoded. */
static int
form_is_encoded(const char *body)
{
	const char *p;

	for (p = body; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || strchr("-_.~%&=", *p)))
			return 0;
	return 1;
}

static void
test_ops(void)
{
	const struct config_key *k;
	int token = 0, batch = 0, other = 0;

	T_EQ_STR(ops->name, "apiusb");
	T_EQ_INT(ops->batching, PROVIDER_BY_MESSAGE);
	T_EQ_INT(ops->dedups, 0);
	T_CHECK(ops->schedule == NULL);
	T_CHECK(ops->build && ops->judge && ops->check_channel && ops->check_recipient &&
	        ops->check_message);
	for (k = ops->keys; k && k->name; k++) {
		if (strcmp(k->name, "access_token") == 0)
			token = k->type == CONFIG_STRING && !k->required;
		else if (strcmp(k->name, "batch_size") == 0)
			batch = k->type == CONFIG_INT && !k->required;
		else
			other++;
	}
	T_CHECK(token && batch);
	T_EQ_INT(other, 0);
}

static void
test_check_channel(void)
{
	T_EQ_INT(channel_ok("{}", ""), 0);
	T_EQ_INT(channel_ok("{\"batch_size\":1}", ""), 0);
	T_EQ_INT(channel_ok("{\"batch_size\":1000,\"access_token\":\"t\"}", ""), 0);
	T_EQ_INT(channel_ok("{\"batch_size\":0}", "batch_size"), -1);
	T_EQ_INT(channel_ok("{\"batch_size\":1001}", "batch_size"), -1);
	T_EQ_INT(channel_ok("{\"batch_size\":-3}", "batch_size"), -1);
	T_EQ_INT(channel_ok("{\"access_token\":\"\"}", "access_token"), -1);
}

static void
test_check_recipient(void)
{
	T_EQ_INT(recipient_ok("{\"id\":\"12345678123456781234567812345678\",\"vars\":{}}"), 0);
	T_EQ_INT(recipient_ok("{\"id\":\"\"}"), -1);
	T_EQ_INT(recipient_ok("{\"id\":\"a,b\"}"), -1);
	T_EQ_INT(recipient_ok("{\"id\":12}"), -1);
	T_EQ_INT(recipient_ok("{}"), -1);
	T_EQ_INT(recipient_ok("[]"), -1);
}

static int
message_ok(const char *json)
{
	int rc = check_msg(json, 0);

	T_EQ_INT(check_msg(json, 1), rc);
	return rc;
}

static void
test_check_message(void)
{
	static const char *const types[] = {"text", "html", "image", "link", "custom"};
	char buf[128];
	size_t i;

	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		snprintf(buf, sizeof buf, "{\"type\":\"%s\",\"data\":\"x\"}", types[i]);
		T_EQ_INT(message_ok(buf), 0);
	}
	T_EQ_INT(message_ok("{\"type\":\"custom\",\"data\":{\"a\":1}}"), 0);
	T_EQ_INT(message_ok("{\"type\":\"custom\",\"data\":[1,2]}"), 0);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":\"x\",\"ext_data\":\"e\"}"), 0);
	T_EQ_INT(message_ok("{\"type\":\"video\",\"data\":\"x\"}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"TEXT\",\"data\":\"x\"}"), -1);
	T_EQ_INT(message_ok("{\"data\":\"x\"}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\"}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":\"\"}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":5}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":null}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":\"x\",\"ext_data\":{}}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"text\":\"x\"}"), -1);
	T_EQ_INT(message_ok("{\"type\":\"text\",\"data\":\"x\",\"extra\":1}"), -1);
	T_EQ_INT(message_ok("\"text\""), -1);
}

/* 250 ids, one with bytes that need encoding; the caller frees ids[0..250) and ids. */
static char **
ids_new(size_t n)
{
	char **ids = calloc(n, sizeof *ids);
	size_t i;

	for (i = 0; i < n; i++) {
		ids[i] = malloc(40);
		snprintf(ids[i], 40, "%032zx", i * 7919 + 1);
	}
	snprintf(ids[7], 40, "m\xC3\xA9mber+7/&=x y");
	return ids;
}

static void
ids_free(char **ids, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void
test_build_250(void)
{
	const char *data = "Hello & welcome, \xE5\xB0\x8F\xE7\x8E\x8B = 100% +1\n";
	struct channel ch = chan("{\"access_token\":\"tok/+= &\",\"batch_size\":100}");
	cJSON *msg = cJSON_CreateObject();
	char **ids = ids_new(250), *joined = calloc(250, 41), *err = NULL;
	struct provider_item *it;
	struct provider_request req = {0};
	struct form f;
	size_t i;

	cJSON_AddStringToObject(msg, "type", "text");
	cJSON_AddStringToObject(msg, "data", data);
	cJSON_AddStringToObject(msg, "ext_data", "k=v&x");
	it = items_new(ids, 250, msg);
	for (i = 0; i < 250; i++) {
		if (i)
			strcat(joined, ",");
		strcat(joined, ids[i]);
	}
	T_EQ_INT(ops->build(NULL, &ch, it, 250, 1700000000000LL, &req, &err), 0);
	T_CHECK(err == NULL);
	T_EQ_STR(req.url, BASE_URL "/api/platform?s=Platform.ChatMessage.BulkSend");
	T_EQ_INT(req.n_headers, 1);
	T_EQ_STR(req.headers[0], "Content-Type: application/x-www-form-urlencoded");
	T_CHECK(req.body && req.body_len == strlen(req.body));
	T_CHECK(req.body && form_is_encoded(req.body));
	form_parse(req.body, &f);
	T_EQ_INT(f.n, 5);
	T_EQ_STR(f.name[0], "chat_message_to_uuid");
	T_EQ_STR(f.value[0], joined);
	T_EQ_STR(f.name[1], "chat_message_data");
	T_EQ_STR(f.value[1], data);
	T_EQ_STR(f.name[2], "chat_message_type");
	T_EQ_STR(f.value[2], "text");
	T_EQ_STR(f.name[3], "access_token");
	T_EQ_STR(f.value[3], "tok/+= &");
	T_EQ_STR(f.name[4], "ext_data");
	T_EQ_STR(f.value[4], "k=v&x");
	/* The uuid list splits back into exactly the members, in order. */
	{
		char *save = NULL, *tok, *copy = strdup(f.value[0] ? f.value[0] : "");

		for (i = 0, tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save), i++)
			T_CHECK(i < 250 && strcmp(tok, ids[i]) == 0);
		T_EQ_INT(i, 250);
		free(copy);
	}
	form_free(&f);
	provider_request_clear(&req);
	items_free(it, 250);
	ids_free(ids, 250);
	free(joined);
	cJSON_Delete(msg);
	cJSON_Delete(ch.keys);
}

static void
test_build_minimal(void)
{
	struct channel ch = chan("{}");
	cJSON *a = cJSON_Parse("{\"type\":\"custom\",\"data\":{\"a\": [1, 2], \"b\": \"x\"}}");
	cJSON *b = cJSON_Parse("{\"data\":{\"a\":[1,2],\"b\":\"x\"},\"type\":\"custom\"}");
	char *ids[] = {"u1", "u2"}, *err = NULL;
	struct provider_item *it = items_new(ids, 2, a);
	struct provider_request req = {0};
	struct form f;

	it[1].message = b; /* the same rendered message in another tree */
	T_EQ_INT(ops->build(NULL, &ch, it, 2, 0, &req, &err), 0);
	form_parse(req.body, &f);
	T_EQ_INT(f.n, 3);
	T_EQ_STR(f.value[0], "u1,u2");
	T_EQ_STR(f.value[1], "{\"a\":[1,2],\"b\":\"x\"}");
	T_EQ_STR(f.value[2], "custom");
	T_EQ_STR(req.body, "chat_message_to_uuid=u1%2Cu2&chat_message_data=%7B%22a%22%3A%5B1%2C2%5D"
	         "%2C%22b%22%3A%22x%22%7D&chat_message_type=custom");
	form_free(&f);
	provider_request_clear(&req);
	items_free(it, 2);
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(ch.keys);
}

/* build must fail, name the cause, and leave the request empty. */
static void
build_fails(const char *m0, const char *m1, const char *id0, const char *id1, size_t n,
            const char *err_has)
{
	struct channel ch = chan("{\"access_token\":\"t\"}");
	cJSON *a = cJSON_Parse(m0), *b = cJSON_Parse(m1);
	char *ids[] = {"", ""}, *err = NULL;
	struct provider_item *it = items_new(ids, 2, a);
	struct provider_request req = {0};

	it[0].recipient_id = id0;
	it[1].recipient_id = id1;
	it[1].message = b;
	T_EQ_INT(ops->build(NULL, &ch, it, n, 0, &req, &err), -1);
	T_CHECK(err && strstr(err, err_has));
	T_CHECK(req.url == NULL && req.body == NULL && req.n_headers == 0);
	free(err);
	items_free(it, 2);
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(ch.keys);
}

static void
test_build_rejects(void)
{
	const char *m = "{\"type\":\"text\",\"data\":\"hi\"}";

	build_fails(m, "{\"type\":\"text\",\"data\":\"hi!\"}", "u1", "u2", 2, "delivery 2");
	build_fails(m, "{\"type\":\"html\",\"data\":\"hi\"}", "u1", "u2", 2, "differs");
	build_fails(m, "{\"type\":\"text\",\"data\":\"hi\",\"ext_data\":\"e\"}", "u1", "u2", 2,
	            "differs");
	build_fails("{\"type\":\"text\",\"data\":\"hi\",\"ext_data\":\"e\"}",
	            "{\"type\":\"text\",\"data\":\"hi\",\"ext_data\":\"f\"}", "u1", "u2", 2, "differs");
	build_fails(m, "{\"type\":\"text\",\"data\":5}", "u1", "u2", 2, "data");
	build_fails(m, m, "u1", "u,2", 2, "comma");
	build_fails(m, m, "", "u2", 2, "delivery 1");
	build_fails(m, m, "u1", "u2", 0, "empty");
}

static int
count(const struct provider_item *it, size_t n, enum provider_outcome o)
{
	size_t i;
	int c = 0;

	for (i = 0; i < n; i++)
		c += it[i].outcome == o;
	return c;
}

/* Every item has outcome o, code, a text containing text_has (NULL: not checked), no id,
   and channel_fault exactly fault (1: the channel is suspended, SPEC 5.11). */
static void
all_are_fault(const struct provider_item *it, size_t n, enum provider_outcome o, const char *code,
              const char *text_has, int fault)
{
	size_t i;

	for (i = 0; i < n; i++) {
		T_EQ_INT(it[i].outcome, o);
		if (code)
			T_EQ_STR(it[i].code, code);
		if (text_has)
			T_CHECK(it[i].message_text && strstr(it[i].message_text, text_has));
		T_CHECK(it[i].message_id == NULL);
		T_EQ_INT(it[i].channel_fault, fault);
	}
}

/* The same, for a verdict that is the message's or the request's, never the channel's. */
static void
all_are(const struct provider_item *it, size_t n, enum provider_outcome o, const char *code,
        const char *text_has)
{
	all_are_fault(it, n, o, code, text_has, 0);
}

static void
test_judge_partial(void)
{
	struct channel ch = chan("{}");
	char **ids = ids_new(250), *body, *want;
	cJSON *root = cJSON_CreateObject(), *data, *list, *e;
	struct provider_item *it = items_new(ids, 250, NULL);
	int i;

	cJSON_AddNumberToObject(root, "ret", 200);
	data = cJSON_AddObjectToObject(root, "data");
	list = cJSON_AddArrayToObject(data, "item");
	cJSON_AddStringToObject(root, "msg", "");
	/* Answer order is not request order: list them backwards. */
	for (i = 219; i >= 0; i--) {
		char id[32];

		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "other_uuid", ids[i]);
		snprintf(id, sizeof id, "m-%d", i);
		cJSON_AddStringToObject(e, "chat_message_id", i < 200 ? id : "");
		cJSON_AddItemToArray(list, e);
	}
	body = cJSON_PrintUnformatted(root);
	judge(&ch, 200, body, strlen(body), it, 250);
	T_EQ_INT(count(it, 250, PROVIDER_SENT), 200);
	T_EQ_INT(count(it, 250, PROVIDER_PERMANENT), 50);
	want = malloc(32);
	for (i = 0; i < 250; i++) {
		snprintf(want, 32, "m-%d", i);
		if (i < 200) {
			T_EQ_INT(it[i].outcome, PROVIDER_SENT);
			T_EQ_STR(it[i].message_id, want);
			T_EQ_STR(it[i].code, "200");
		} else {
			T_EQ_INT(it[i].outcome, PROVIDER_PERMANENT);
			T_EQ_STR(it[i].message_text, NOT_LISTED);
			T_CHECK(it[i].message_id == NULL);
		}
	}
	free(want);
	free(body);
	cJSON_Delete(root);
	items_free(it, 250);
	ids_free(ids, 250);
	cJSON_Delete(ch.keys);
}

static void
test_judge_duplicates_unknown(void)
{
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2", "u3", "u4", "u5"};
	struct provider_item *it = items_new(ids, 5, NULL);
	const char *body =
	    "{\"ret\":200,\"msg\":\"\",\"data\":{\"item\":["
	    "{\"other_uuid\":\"u1\",\"chat_message_id\":\"a\"},"
	    "{\"other_uuid\":\"u1\",\"chat_message_id\":\"b\"},"
	    "{\"other_uuid\":\"u2\",\"chat_message_id\":\"\"},"
	    "{\"other_uuid\":\"u2\",\"chat_message_id\":\"c\"},"
	    "{\"other_uuid\":\"stranger\",\"chat_message_id\":\"q\"},"
	    "{\"other_uuid\":5,\"chat_message_id\":\"r\"},"
	    "\"junk\",null,[],{},"
	    "{\"chat_message_id\":\"x\"},"
	    "{\"other_uuid\":\"u3\",\"chat_message_id\":77},"
	    "{\"other_uuid\":\"u4\",\"chat_message_id\":null},"
	    "{\"other_uuid\":\"u5\",\"chat_message_id\":1.5}]}}";

	judge(&ch, 200, body, strlen(body), it, 5);
	T_EQ_INT(it[0].outcome, PROVIDER_SENT);
	T_EQ_STR(it[0].message_id, "a");
	T_EQ_INT(it[1].outcome, PROVIDER_SENT);
	T_EQ_STR(it[1].message_id, "c");
	T_EQ_INT(it[2].outcome, PROVIDER_SENT);
	T_EQ_STR(it[2].message_id, "77");
	T_EQ_INT(it[3].outcome, PROVIDER_PERMANENT);
	T_EQ_STR(it[3].message_text, NOT_LISTED);
	T_EQ_INT(it[4].outcome, PROVIDER_PERMANENT);

	/* The same member twice in one batch: both get its result. */
	it[1].recipient_id = "u1";
	judge(&ch, 200, body, strlen(body), it, 2);
	T_EQ_STR(it[0].message_id, "a");
	T_EQ_STR(it[1].message_id, "a");
	items_free(it, 5);
	cJSON_Delete(ch.keys);
}

static void
test_judge_single_object(void)
{
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2"};
	struct provider_item *it = items_new(ids, 2, NULL);
	const char *body = "{\"ret\":200,\"data\":{\"item\":{\"other_uuid\":\"u1\","
	                   "\"chat_message_id\":\"m-1\"}},\"msg\":\"\"}";
	const char *empty = "{\"ret\":200,\"data\":{\"item\":{\"other_uuid\":\"u1\","
	                    "\"chat_message_id\":\"\"}},\"msg\":\"\"}";

	judge(&ch, 200, body, strlen(body), it, 2);
	T_EQ_INT(it[0].outcome, PROVIDER_SENT);
	T_EQ_STR(it[0].message_id, "m-1");
	T_CHECK(it[0].message_text == NULL);
	T_EQ_INT(it[1].outcome, PROVIDER_PERMANENT);
	T_EQ_STR(it[1].message_text, NOT_LISTED);
	judge(&ch, 200, empty, strlen(empty), it, 2);
	all_are(it, 2, PROVIDER_PERMANENT, "", NOT_LISTED);
	items_free(it, 2);
	cJSON_Delete(ch.keys);
}

/* Numeric ids stay with their members whatever order the answer lists them in, and a string
   id next to a numeric one does not hide the other member. */
static void
test_judge_numeric_ids(void)
{
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2"};
	struct provider_item *it = items_new(ids, 2, NULL);
	const char *nums = "{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u2\","
	                   "\"chat_message_id\":77},{\"other_uuid\":\"u1\",\"chat_message_id\":88}]}}";
	const char *mixed = "{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u2\","
	                    "\"chat_message_id\":77},{\"other_uuid\":\"u1\",\"chat_message_id\":\"m-1\"}]}}";

	judge(&ch, 200, nums, strlen(nums), it, 2);
	T_EQ_INT(it[0].outcome, PROVIDER_SENT);
	T_EQ_STR(it[0].message_id, "88");
	T_EQ_INT(it[1].outcome, PROVIDER_SENT);
	T_EQ_STR(it[1].message_id, "77");
	judge(&ch, 200, mixed, strlen(mixed), it, 2);
	T_EQ_STR(it[0].message_id, "m-1");
	T_EQ_INT(it[1].outcome, PROVIDER_SENT);
	T_EQ_STR(it[1].message_id, "77");
	items_free(it, 2);
	cJSON_Delete(ch.keys);
}

/* HTTP 429 and 503 say nothing was done, whatever ret the body carries (SPEC 5.10). */
static void
test_judge_http_outranks_ret(void)
{
	struct channel ch = chan("{}");
	char *ids[] = {"u1"};
	struct provider_item *it = items_new(ids, 1, NULL);
	const char *slow = "{\"ret\":429,\"msg\":\"slow down\"}", *down = "{\"ret\":503}";

	judge(&ch, 429, slow, strlen(slow), it, 1);
	T_EQ_INT(it[0].outcome, PROVIDER_TRANSIENT);
	T_EQ_INT(it[0].channel_fault, 0);
	judge(&ch, 503, down, strlen(down), it, 1);
	T_EQ_INT(it[0].outcome, PROVIDER_TRANSIENT);
	items_free(it, 1);
	cJSON_Delete(ch.keys);
}

/*
 * An accepted call with no data.item at all (the seed's own sample answer) is sent to every
 * member, with no message id (SPEC 5.4); a data.item that is there but names nobody leaves
 * every member unlisted.
 */
static void
test_judge_item_missing(void)
{
	static const char *const absent[] = {
		"{\"ret\":200,\"data\":{},\"msg\":\"\"}",
		"{\"ret\":200,\"data\":{\"id\":\"2\"},\"msg\":\"\"}", /* the document's own example */
		"{\"ret\":200,\"data\":null,\"msg\":\"\"}",
		"{\"ret\":200,\"data\":[],\"msg\":\"\"}",
		"{\"ret\":200}",
		"{\"ret\":200,\"data\":{\"item\":null}}",
		"{\"ret\":200,\"data\":{\"Item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
	};
	static const char *const empty[] = {
		"{\"ret\":200,\"data\":{\"item\":\"u1\"}}",
		"{\"ret\":200,\"data\":{\"item\":[]}}",
		"{\"ret\":200,\"data\":{\"item\":{}}}",
	};
	const char *with_msg = "{\"ret\":200,\"data\":{\"id\":\"2\"},\"msg\":\"queued\"}";
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2", "u3"};
	struct provider_item *it = items_new(ids, 3, NULL);
	size_t i;

	for (i = 0; i < sizeof absent / sizeof absent[0]; i++) {
		judge(&ch, 200, absent[i], strlen(absent[i]), it, 3);
		all_are(it, 3, PROVIDER_SENT, "200", "no data.item");
		if (t_current_failed) {
			fprintf(stderr, "  body: %s\n", absent[i]);
			break;
		}
	}
	judge(&ch, 200, with_msg, strlen(with_msg), it, 3);
	all_are(it, 3, PROVIDER_SENT, "200", NULL);
	for (i = 0; i < 3; i++)
		T_EQ_STR(it[i].message_text, "queued");
	for (i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		judge(&ch, 200, empty[i], strlen(empty[i]), it, 3);
		all_are(it, 3, PROVIDER_PERMANENT, "", NOT_LISTED);
		if (t_current_failed) {
			fprintf(stderr, "  body: %s\n", empty[i]);
			break;
		}
	}
	items_free(it, 3);
	cJSON_Delete(ch.keys);
}

/* data.item as an object of results keyed by uuid: each member found under its own key. */
static void
test_judge_item_by_uuid(void)
{
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2", "u3", "u4", "u5"};
	struct provider_item *it = items_new(ids, 5, NULL);
	const char *body =
	    "{\"ret\":200,\"msg\":\"\",\"data\":{\"item\":{"
	    "\"u2\":{\"chat_message_id\":\"m-2\"},"
	    "\"u1\":{\"chat_message_id\":\"m-1\"},"
	    "\"u3\":{\"chat_message_id\":\"\"},"
	    "\"stranger\":{\"chat_message_id\":\"q\"},"
	    "\"k5\":{\"other_uuid\":\"u5\",\"chat_message_id\":\"m-5\"}}}}";
	size_t i;

	judge(&ch, 200, body, strlen(body), it, 5);
	T_EQ_INT(it[0].outcome, PROVIDER_SENT);
	T_EQ_STR(it[0].message_id, "m-1");
	T_EQ_STR(it[0].code, "200");
	T_EQ_INT(it[1].outcome, PROVIDER_SENT);
	T_EQ_STR(it[1].message_id, "m-2");
	/* Listed without an id, or not listed: not sent. */
	T_EQ_INT(it[2].outcome, PROVIDER_PERMANENT);
	T_EQ_STR(it[2].message_text, NOT_LISTED);
	T_CHECK(it[2].message_id == NULL);
	T_EQ_INT(it[3].outcome, PROVIDER_PERMANENT);
	T_EQ_STR(it[3].message_text, NOT_LISTED);
	T_CHECK(it[3].message_id == NULL);
	/* An other_uuid inside a keyed result names the member. */
	T_EQ_INT(it[4].outcome, PROVIDER_SENT);
	T_EQ_STR(it[4].message_id, "m-5");
	for (i = 0; i < 5; i++)
		T_EQ_INT(it[i].channel_fault, 0);
	items_free(it, 5);
	cJSON_Delete(ch.keys);
}

static void
test_judge_ret_codes(void)
{
	static const struct {
		long http;
		const char *body;
		enum provider_outcome outcome;
		const char *code;
		const char *text_has;
		int fault;
	} cases[] = {
		{200, "{\"ret\":400,\"data\":{},\"msg\":\"bad param\"}", PROVIDER_PERMANENT, "400", "bad param",
		 0},
		{200, "{\"ret\":401,\"data\":{},\"msg\":\"\"}", PROVIDER_PERMANENT, "401", "rejected", 0},
		{200, "{\"ret\":404,\"data\":{},\"msg\":\"no such service\"}", PROVIDER_PERMANENT, "404",
		 "no such", 0},
		/* 406, 407, 408: the token or the account, so the channel is suspended (SPEC 5.11). */
		{200, "{\"ret\":406,\"data\":{},\"msg\":\"access_token check failed\"}", PROVIDER_PERMANENT,
		 "406", "access_token", 1},
		{200, "{\"ret\":406}", PROVIDER_PERMANENT, "406", "access_token rejected", 1},
		{200, "{\"ret\":407,\"data\":{},\"msg\":\"app_key\"}", PROVIDER_PERMANENT, "407", "app_key", 1},
		{200, "{\"ret\":407}", PROVIDER_PERMANENT, "407", "account refused", 1},
		{200, "{\"ret\":408,\"data\":{},\"msg\":\"user banned\"}", PROVIDER_PERMANENT, "408", "banned",
		 1},
		{200, "{\"ret\":405,\"data\":{},\"msg\":\"no\"}", PROVIDER_PERMANENT, "405", "rejected", 0},
		{200, "{\"ret\":409,\"data\":{},\"msg\":\"no\"}", PROVIDER_PERMANENT, "409", "rejected", 0},
		{200, "{\"ret\":429,\"data\":{}}", PROVIDER_PERMANENT, "429", NULL, 0},
		/* A PhalApi server error may come after the server acted: ambiguous (SPEC 5.10). */
		{200, "{\"ret\":500,\"data\":{},\"msg\":\"oops\"}", PROVIDER_AMBIGUOUS, "500", "oops", 0},
		{200, "{\"ret\":502}", PROVIDER_AMBIGUOUS, "502", "server error", 0},
		{200, "{\"ret\":503}", PROVIDER_AMBIGUOUS, "503", "server error", 0},
		{200, "{\"ret\":599,\"msg\":\"x\"}", PROVIDER_AMBIGUOUS, "599", "x", 0},
		{200, "{\"ret\":0,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		 PROVIDER_PERMANENT, "0", NULL, 0},
		{200, "{\"ret\":302}", PROVIDER_PERMANENT, "302", NULL, 0},
		{200, "{\"ret\":600}", PROVIDER_PERMANENT, "600", NULL, 0},
		{400, "{\"ret\":400,\"msg\":\"bad\"}", PROVIDER_PERMANENT, "400", "bad", 0},
		{500, "{\"ret\":500,\"msg\":\"down\"}", PROVIDER_AMBIGUOUS, "500", "down", 0},
		/* ret 200 behind an HTTP error is never "sent": the HTTP status decides. */
		{502, "{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		 PROVIDER_AMBIGUOUS, "", "HTTP 502", 0},
		{404, "{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		 PROVIDER_PERMANENT, "", "HTTP 404", 0},
		{429, "{\"ret\":200}", PROVIDER_TRANSIENT, "", "HTTP 429", 0},
		/* ret must be a JSON integer: anything else is an unreadable answer. */
		{200, "{\"ret\":\"200\",\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		 PROVIDER_AMBIGUOUS, "", "unreadable answer", 0},
		{200, "{\"ret\":200.5}", PROVIDER_AMBIGUOUS, "", "unreadable answer", 0},
		{200, "{\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		 PROVIDER_AMBIGUOUS, "", "unreadable answer", 0},
		{200, "{\"ret\":\"406\"}", PROVIDER_AMBIGUOUS, "", "unreadable answer", 0},
	};
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2"};
	struct provider_item *it = items_new(ids, 2, NULL);
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		judge(&ch, cases[i].http, cases[i].body, strlen(cases[i].body), it, 2);
		all_are_fault(it, 2, cases[i].outcome, cases[i].code, cases[i].text_has, cases[i].fault);
		if (t_current_failed) {
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].body);
			break;
		}
	}
	items_free(it, 2);
	cJSON_Delete(ch.keys);
}

static void
test_judge_never_echoes_token(void)
{
	struct channel ch = chan("{\"access_token\":\"sekret-token-123\"}");
	char *ids[] = {"u1"};
	struct provider_item *it = items_new(ids, 1, NULL);
	const char *body = "{\"ret\":406,\"data\":{},\"msg\":\"token sekret-token-123 expired\"}";

	judge(&ch, 200, body, strlen(body), it, 1);
	T_EQ_INT(it[0].outcome, PROVIDER_PERMANENT);
	T_EQ_STR(it[0].code, "406");
	T_CHECK(it[0].message_text && strstr(it[0].message_text, "access_token"));
	T_CHECK(it[0].message_text && !strstr(it[0].message_text, "sekret"));
	T_EQ_INT(it[0].channel_fault, 1);
	items_free(it, 1);
	cJSON_Delete(ch.keys);
}

/*
 * provider_judge_http's table (SPEC 5.10): 429, 503 and 408 say nothing was done (transient);
 * 500, 502, 504 and other 5xx may have done it (ambiguous); other non-2xx are permanent. It
 * decides whatever the body says, and marks no channel fault.
 */
static void
test_judge_http(void)
{
	static const struct {
		long http;
		enum provider_outcome outcome;
	} cases[] = {
		{429, PROVIDER_TRANSIENT}, {503, PROVIDER_TRANSIENT}, {408, PROVIDER_TRANSIENT},
		{500, PROVIDER_AMBIGUOUS}, {502, PROVIDER_AMBIGUOUS}, {504, PROVIDER_AMBIGUOUS},
		{501, PROVIDER_AMBIGUOUS}, {599, PROVIDER_AMBIGUOUS},
		{400, PROVIDER_PERMANENT}, {401, PROVIDER_PERMANENT}, {404, PROVIDER_PERMANENT},
		{301, PROVIDER_PERMANENT},
	};
	static const char *const bodies[] = {
		"{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}",
		"{\"ret\":200}",
		"<html>gateway</html>",
		"",
	};
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2"}, text[32];
	struct provider_item *it = items_new(ids, 2, NULL);
	size_t i, j;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, "HTTP %ld", cases[i].http);
		for (j = 0; j < sizeof bodies / sizeof bodies[0]; j++) {
			judge(&ch, cases[i].http, bodies[j], strlen(bodies[j]), it, 2);
			all_are(it, 2, cases[i].outcome, "", text);
			T_EQ_STR(it[0].message_text, text);
		}
		if (t_current_failed) {
			fprintf(stderr, "  HTTP %ld\n", cases[i].http);
			break;
		}
	}
	items_free(it, 2);
	cJSON_Delete(ch.keys);
}

static void
test_judge_garbage(void)
{
	static const char *const small[] = {
		"", "null", "[]", "{", "<html>", "{}", "true", "200", "\"ret\"", "{\"ret\":",
		"<html><body>502 Bad Gateway</body></html>",
		"{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}x",
		"{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\",\"chat_message_id\":\"m\"}]}}{}",
		"\xEF\xBB\xBF\xFF\xFE",
	};
	static const char nul_body[] = "{\"ret\":200,\"data\":{\"item\":[{\"other_uuid\":\"u1\","
	                               "\"chat_message_id\":\"m\"}]}}\0junk";
	struct channel ch = chan("{}");
	char *ids[] = {"u1", "u2"}, *big = malloc(BIG + 2), *huge_msg;
	struct provider_item *it = items_new(ids, 2, NULL);
	size_t i, len;

	/* An answer that cannot be read may stand for an accepted BulkSend: ambiguous. */
	for (i = 0; i < sizeof small / sizeof small[0]; i++) {
		judge(&ch, 200, small[i], strlen(small[i]), it, 2);
		all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");
		judge(&ch, 503, small[i], strlen(small[i]), it, 2);
		all_are(it, 2, PROVIDER_TRANSIENT, "", "HTTP 503");
		judge(&ch, 502, small[i], strlen(small[i]), it, 2);
		all_are(it, 2, PROVIDER_AMBIGUOUS, "", "HTTP 502");
		judge(&ch, 404, small[i], strlen(small[i]), it, 2);
		all_are(it, 2, PROVIDER_PERMANENT, "", "HTTP 404");
	}
	judge(&ch, 200, NULL, 0, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");
	judge(&ch, 200, nul_body, sizeof nul_body - 1, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");

	/* A 1 MB JSON string, 1 MB of bytes, 1 MB of nesting. */
	big[0] = '"';
	memset(big + 1, 'a', BIG);
	big[BIG + 1] = '"';
	judge(&ch, 200, big, BIG + 2, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");
	judge(&ch, 500, big, BIG + 2, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "HTTP 500");
	judge(&ch, 200, big + 1, BIG, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");
	memset(big, '[', BIG);
	judge(&ch, 200, big, BIG, it, 2);
	all_are(it, 2, PROVIDER_AMBIGUOUS, "", "unreadable answer");
	free(big);

	/* A valid answer with a 1 MB msg: judged, and the text kept short. */
	huge_msg = malloc(BIG + 128);
	len = (size_t)snprintf(huge_msg, 64, "{\"ret\":400,\"msg\":\"");
	memset(huge_msg + len, 'x', BIG);
	memcpy(huge_msg + len + BIG, "\"}", 3);
	judge(&ch, 200, huge_msg, strlen(huge_msg), it, 2);
	all_are(it, 2, PROVIDER_PERMANENT, "400", "xxx");
	T_CHECK(it[0].message_text && strlen(it[0].message_text) < 4096);
	/* Zero-width characters take no columns: the byte bound still holds. */
	len = (size_t)snprintf(huge_msg, 128, "{\"ret\":200,\"data\":{\"item\":{\"other_uuid\":"
	                       "\"u1\",\"chat_message_id\":\"m\"}},\"msg\":\"");
	for (i = 0; i + 1 < BIG; i += 2)
		memcpy(huge_msg + len + i, "\xCC\x81", 2);
	memcpy(huge_msg + len + BIG, "\"}", 3);
	judge(&ch, 200, huge_msg, strlen(huge_msg), it, 2);
	T_EQ_INT(it[0].outcome, PROVIDER_SENT);
	T_CHECK(it[0].message_text && strlen(it[0].message_text) <= 2048);
	free(huge_msg);
	items_free(it, 2);
	cJSON_Delete(ch.keys);
}

int
main(void)
{
	T_RUN(test_ops);
	T_RUN(test_check_channel);
	T_RUN(test_check_recipient);
	T_RUN(test_check_message);
	T_RUN(test_build_250);
	T_RUN(test_build_minimal);
	T_RUN(test_build_rejects);
	T_RUN(test_judge_partial);
	T_RUN(test_judge_numeric_ids);
	T_RUN(test_judge_http_outranks_ret);
	T_RUN(test_judge_duplicates_unknown);
	T_RUN(test_judge_single_object);
	T_RUN(test_judge_item_missing);
	T_RUN(test_judge_item_by_uuid);
	T_RUN(test_judge_ret_codes);
	T_RUN(test_judge_never_echoes_token);
	T_RUN(test_judge_http);
	T_RUN(test_judge_garbage);
	return t_report();
}
