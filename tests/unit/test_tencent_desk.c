/*
 * test_tencent_desk.c: the Tencent IM desk provider module. Requests are taken apart the
 * way a server would (query string percent-decoded, body parsed as JSON) and every field
 * is checked; the UserSig is checked with usersig_verify.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "provider.h"
#include "t.h"
#include "usersig.h"

#define APP 1400000000
#define KEY "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define SESSION "fd8a2e30-54de-4e40-bcaf-02718409c5cf"
#define CHANNEL_KEY "{\"sdkappid\":1400000000,\"identifier\":\"admin\",\"secret_key\":\"" KEY "\"," \
	"\"from_account\":\"@customer_service_account\"}"
/* 2026-11-23T10:00:00+08:00 */
#define NOW_MS INT64_C(1795399200000)

static const struct provider_ops *ops = &provider_tencent_desk;
static char base_url[] = "https://console.tim.qq.com";

#include "provider_t.h"

#define make_channel(json) provider_channel(base_url, base_url, json)
#define text_message(len) repeated_message("a", len)

/* The URL's path (before '?') in *path and its query as an object of decoded strings. */
static cJSON *
parse_url(const char *url, char **path)
{
	const char *q = strchr(url, '?'), *p, *amp, *eq;
	cJSON *params = cJSON_CreateObject();
	char *name, *value;

	T_CHECK(q != NULL);
	*path = pct_decode(url, q ? (size_t)(q - url) : strlen(url), 0);
	for (p = q ? q + 1 : ""; *p != '\0'; p = *amp ? amp + 1 : amp) {
		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		eq = memchr(p, '=', (size_t)(amp - p));
		T_CHECK(eq != NULL);
		if (eq == NULL)
			continue;
		name = pct_decode(p, (size_t)(eq - p), 0);
		value = pct_decode(eq + 1, (size_t)(amp - eq - 1), 0);
		T_CHECK(cJSON_GetObjectItemCaseSensitive(params, name) == NULL);
		cJSON_AddStringToObject(params, name, value);
		free(name);
		free(value);
	}
	return params;
}

static const char *
str_at(const cJSON *obj, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

/* A parsed request: its query parameters and its body. */
struct parsed {
	cJSON *query;
	cJSON *body;
	char *path;
};

static void
parse_request(const struct provider_request *req, struct parsed *p)
{
	p->query = parse_url(req->url, &p->path);
	p->body = cJSON_ParseWithLength(req->body, req->body_len);
	T_CHECK(cJSON_IsObject(p->body));
	T_EQ_INT(req->body_len, strlen(req->body));
	T_EQ_INT(req->n_headers, 1);
	T_EQ_STR(req->headers[0], "Content-Type: application/json");
}

static void
parsed_free(struct parsed *p)
{
	cJSON_Delete(p->query);
	cJSON_Delete(p->body);
	free(p->path);
}

/* Builds one delivery. */
static int
build_one(void *state, const struct channel *ch, const char *recipient, const char *message,
          uint32_t msg_random, int64_t now_ms, struct provider_request *req, char **err)
{
	struct provider_item item;
	cJSON *r = cJSON_Parse(recipient), *m = cJSON_Parse(message);
	int rc;

	T_CHECK(r != NULL && m != NULL);
	memset(&item, 0, sizeof item);
	memset(req, 0, sizeof *req);
	item.recipient = r;
	item.recipient_id = str_at(r, "session_id") ? str_at(r, "session_id") : str_at(r, "id");
	item.message = m;
	item.msg_random = msg_random;
	item.due_at_ms = now_ms;
	rc = ops->build(state, ch, &item, 1, now_ms, req, err);
	cJSON_Delete(r);
	cJSON_Delete(m);
	return rc;
}

/* The usersig a successful build put in its URL (new string). */
static char *
built_sig(void *state, const struct channel *ch, int64_t now_ms)
{
	struct provider_request req;
	struct parsed p;
	char *err = NULL, *sig = NULL;

	if (build_one(state, ch, "{\"session_id\":\"" SESSION "\"}",
	              "{\"type\":\"text\",\"text\":\"hi\"}", 1, now_ms, &req, &err) != 0) {
		fprintf(stderr, "build: %s\n", err ? err : "?");
		T_CHECK(0);
		free(err);
		return strdup("");
	}
	parse_request(&req, &p);
	sig = strdup(str_at(p.query, "usersig") ? str_at(p.query, "usersig") : "");
	parsed_free(&p);
	provider_request_clear(&req);
	return sig;
}

/* Checks sig is a valid UserSig at now_s for the test channel; returns its expiry (s). */
static int64_t
verify_sig(const char *sig, int64_t now_s)
{
	int64_t expires = -1;
	char *err = NULL;

	T_EQ_INT(usersig_verify(sig, APP, "admin", KEY, now_s, &expires, &err), 0);
	if (err != NULL)
		fprintf(stderr, "usersig_verify: %s\n", err);
	free(err);
	return expires;
}

static void *
open_state(const struct channel *ch)
{
	void *state = NULL;
	char *err = NULL;

	T_EQ_INT(ops->open(ch, &state, &err), 0);
	T_CHECK(err == NULL && state != NULL);
	free(err);
	return state;
}

static void
test_registry(void)
{
	static const struct {
		const char *name;
		enum config_type type;
		int required;
	} keys[] = {
		{"sdkappid", CONFIG_INT, 1}, {"identifier", CONFIG_STRING, 1},
		{"usersig", CONFIG_STRING, 0}, {"secret_key", CONFIG_STRING, 0},
		{"from_account", CONFIG_STRING, 0}, {"usersig_ttl", CONFIG_DURATION, 0},
	};
	size_t i;

	T_CHECK(provider_find("tencent_desk") == ops);
	T_EQ_INT(ops->batching, PROVIDER_SINGLE);
	T_EQ_INT(ops->dedups, 1);
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		T_EQ_STR(ops->keys[i].name, keys[i].name);
		T_EQ_INT(ops->keys[i].type, keys[i].type);
		T_EQ_INT(ops->keys[i].required, keys[i].required);
	}
	T_CHECK(ops->keys[i].name == NULL);
	T_CHECK(ops->open != NULL && ops->close != NULL && ops->admit == NULL);
}

static void
test_check_channel(void)
{
	static const struct {
		const char *keys;
		const char *err_prefix;   /* NULL: accepted */
	} cases[] = {
		{CHANNEL_KEY, NULL},
		{"{\"sdkappid\":1400000000,\"identifier\":\"admin\",\"usersig\":\"abc\"}", NULL},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"secret_key\":\"k\",\"usersig_ttl\":86400000}", NULL},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"secret_key\":\"k\",\"usersig_ttl\":86399999}",
		 "usersig_ttl"},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"secret_key\":\"k\",\"usersig\":\"s\"}", "usersig"},
		{"{\"sdkappid\":1,\"identifier\":\"a\"}", "usersig"},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"secret_key\":\"\"}", "secret_key"},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"usersig\":\"\"}", "usersig"},
		{"{\"sdkappid\":0,\"identifier\":\"a\",\"secret_key\":\"k\"}", "sdkappid"},
		{"{\"identifier\":\"a\",\"secret_key\":\"k\"}", "sdkappid"},
		{"{\"sdkappid\":1,\"identifier\":\"\",\"secret_key\":\"k\"}", "identifier"},
		{"{\"sdkappid\":1,\"identifier\":\"a\\nb\",\"secret_key\":\"k\"}", "identifier"},
		{"{\"sdkappid\":1,\"secret_key\":\"k\"}", "identifier"},
		{"{\"sdkappid\":1,\"identifier\":\"a\",\"secret_key\":\"k\",\"from_account\":\"\"}",
		 "from_account"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct channel ch = make_channel(cases[i].keys);
		char *err = NULL;
		int rc = ops->check_channel(&ch, &err);

		T_EQ_INT(rc, cases[i].err_prefix ? -1 : 0);
		if (cases[i].err_prefix) {
			T_CHECK(err != NULL &&
			        strncmp(err, cases[i].err_prefix, strlen(cases[i].err_prefix)) == 0);
			T_CHECK(err == NULL || strstr(err, KEY) == NULL);
		} else {
			T_CHECK(err == NULL);
		}
		if (rc != (cases[i].err_prefix ? -1 : 0))
			fprintf(stderr, "  case %zu: %s\n", i, err ? err : "(accepted)");
		free(err);
		cJSON_Delete(ch.keys);
	}
}

static void
test_check_recipient(void)
{
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"user45\"}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"session_id\":\"" SESSION "\"}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"u\",\"session_id\":\"s\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"session_id\":\"\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"session_id\":5}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "[]"), -1);
}

static void
test_check_message(void)
{
	static const struct {
		const char *json;
		int rc;
	} cases[] = {
		{"{\"type\":\"text\",\"text\":\"hi\"}", 0},
		{"{\"type\":\"custom\",\"data\":\"raw\"}", 0},
		{"{\"type\":\"custom\",\"data\":{\"src\":\"22\"},\"desc\":\"d\",\"ext\":\"e\",\"sound\":\"s\"}", 0},
		{"{\"elements\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"face\",\"index\":1,\"data\":\"x\"},"
		 "{\"type\":\"location\",\"desc\":\"here\",\"latitude\":39.9,\"longitude\":116.4},"
		 "{\"type\":\"custom\",\"data\":\"c\"}]}", 0},
		{"{\"type\":\"text\",\"text\":\"a\",\"cloud_custom_data\":{\"k\":1},"
		 "\"exclude_from_user_resp_timeout\":true}", 0},
		{"{\"type\":\"text\",\"text\":\"a\",\"cloud_custom_data\":\"s\","
		 "\"exclude_from_user_resp_timeout\":0}", 0},
		{"{\"type\":\"face\",\"index\":0}", 0},
		{"{\"type\":\"text\",\"text\":\"\"}", -1},
		{"{\"type\":\"text\"}", -1},
		{"{\"type\":\"image\",\"url\":\"x\"}", -1},
		{"{\"type\":\"custom\"}", -1},
		{"{\"type\":\"custom\",\"data\":5}", -1},
		{"{\"type\":\"custom\",\"data\":[1]}", -1},
		{"{\"type\":\"custom\",\"data\":\"x\",\"desc\":1}", -1},
		{"{\"type\":\"face\",\"index\":-1}", -1},
		{"{\"type\":\"face\",\"index\":1.5}", -1},
		{"{\"type\":\"face\",\"index\":\"1\"}", -1},
		{"{\"type\":\"face\"}", -1},
		{"{\"type\":\"location\",\"latitude\":91,\"longitude\":0}", -1},
		{"{\"type\":\"location\",\"latitude\":0,\"longitude\":-181}", -1},
		{"{\"type\":\"location\",\"latitude\":0}", -1},
		{"{\"elements\":[]}", -1},
		{"{\"elements\":{}}", -1},
		{"{\"elements\":[{\"type\":\"text\",\"text\":\"a\"},\"x\"]}", -1},
		{"{\"elements\":[{\"type\":\"custom\",\"data\":\"a\"},{\"type\":\"custom\",\"data\":\"b\"}]}", -1},
		{"{\"type\":\"text\",\"text\":\"a\",\"elements\":[{\"type\":\"text\",\"text\":\"a\"}]}", -1},
		{"{}", -1},
		{"{\"type\":\"text\",\"text\":\"a\",\"cloud_custom_data\":5}", -1},
		{"{\"type\":\"text\",\"text\":\"a\",\"exclude_from_user_resp_timeout\":2}", -1},
		{"{\"type\":\"text\",\"text\":\"a\",\"exclude_from_user_resp_timeout\":\"1\"}", -1},
		{"[]", -1},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = check_msg(cases[i].json, 0);

		T_EQ_INT(rc, cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].json);
		T_EQ_INT(check_msg(cases[i].json, 1), cases[i].rc);
	}
}

static void
test_build_session_text(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct provider_request req;
	struct parsed p;
	const char *random;
	char *err = NULL, *end;
	unsigned long long r;

	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"" SESSION "\"}",
	                   "{\"type\":\"text\",\"text\":\"欢迎使用智能客服,很高兴为您服务!\","
	                   "\"cloud_custom_data\":\"your cloud custom data\"}",
	                   8436874, NOW_MS, &req, &err), 0);
	T_CHECK(err == NULL);
	parse_request(&req, &p);
	T_EQ_STR(p.path, "https://console.tim.qq.com/v4/desk_http_svc/send_msg");
	T_EQ_INT(cJSON_GetArraySize(p.query), 5);
	T_EQ_STR(str_at(p.query, "sdkappid"), "1400000000");
	T_EQ_STR(str_at(p.query, "identifier"), "admin");
	T_EQ_STR(str_at(p.query, "contenttype"), "json");
	random = str_at(p.query, "random");
	T_CHECK(random != NULL && random[0] != '\0' && isdigit((unsigned char)random[0]));
	r = random ? strtoull(random, &end, 10) : 0;
	T_CHECK(random != NULL && *end == '\0' && r <= 4294967295ULL);
	verify_sig(str_at(p.query, "usersig"), NOW_MS / 1000);
	/* The seed's example, byte for byte. */
	T_EQ_STR(req.body, "{\"SessionId\":\"" SESSION "\",\"MsgRandom\":8436874,\"MsgBody\":"
	         "[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"欢迎使用智能客服,很高兴为您服务!\"}}],"
	         "\"CloudCustomData\":\"your cloud custom data\"}");
	parsed_free(&p);
	provider_request_clear(&req);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

static void
test_build_account_custom(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct provider_request req;
	struct parsed p;
	const cJSON *el, *content;
	char *err = NULL;

	T_EQ_INT(build_one(state, &ch, "{\"id\":\"user45\",\"vars\":{\"x\":1}}",
	                   "{\"type\":\"custom\",\"data\":{\"src\":\"22\",\"content\":{\"header\":\"卡片标题\"},"
	                   "\"customerServicePlugin\":0},\"desc\":\"D\",\"ext\":\"E\",\"sound\":\"S\","
	                   "\"cloud_custom_data\":{\"a\":[1,2]},\"exclude_from_user_resp_timeout\":true}",
	                   4294967295u, NOW_MS, &req, &err), 0);
	T_CHECK(err == NULL);
	parse_request(&req, &p);
	T_CHECK(cJSON_GetObjectItemCaseSensitive(p.body, "SessionId") == NULL);
	T_EQ_STR(str_at(p.body, "FromAccount"), "@customer_service_account");
	T_EQ_STR(str_at(p.body, "ToAccount"), "user45");
	T_CHECK(strstr(req.body, "\"MsgRandom\":4294967295,") != NULL);
	T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p.body, "MsgRandom")) ==
	        4294967295.0);
	T_EQ_STR(str_at(p.body, "CloudCustomData"), "{\"a\":[1,2]}");
	T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p.body,
	        "ExcludeFromUserRespTimeout")) == 1.0);
	el = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p.body, "MsgBody"), 0);
	T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p.body, "MsgBody")), 1);
	T_EQ_STR(str_at(el, "MsgType"), "TIMCustomElem");
	content = cJSON_GetObjectItemCaseSensitive(el, "MsgContent");
	T_EQ_STR(str_at(content, "Data"),
	         "{\"src\":\"22\",\"content\":{\"header\":\"卡片标题\"},\"customerServicePlugin\":0}");
	T_EQ_STR(str_at(content, "Desc"), "D");
	T_EQ_STR(str_at(content, "Ext"), "E");
	T_EQ_STR(str_at(content, "Sound"), "S");
	parsed_free(&p);
	provider_request_clear(&req);

	/* A string data goes as it is; exclude 0 is sent as 0. */
	T_EQ_INT(build_one(state, &ch, "{\"id\":\"user45\"}",
	                   "{\"type\":\"custom\",\"data\":\"{\\\"k\\\": 1}\","
	                   "\"exclude_from_user_resp_timeout\":false}", 82139, NOW_MS, &req, &err), 0);
	T_EQ_STR(req.body, "{\"FromAccount\":\"@customer_service_account\",\"ToAccount\":\"user45\","
	         "\"MsgRandom\":82139,\"MsgBody\":[{\"MsgType\":\"TIMCustomElem\",\"MsgContent\":"
	         "{\"Data\":\"{\\\"k\\\": 1}\"}}],\"ExcludeFromUserRespTimeout\":0}");
	provider_request_clear(&req);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

static void
test_build_elements(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct provider_request req;
	struct parsed p;
	const cJSON *body, *c;
	char *err = NULL;

	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"s-1\"}",
	                   "{\"elements\":[{\"type\":\"text\",\"text\":\"看这里\"},"
	                   "{\"type\":\"face\",\"index\":3,\"data\":\"smile\"},"
	                   "{\"type\":\"location\",\"desc\":\"北京\",\"latitude\":39.9042,\"longitude\":116.4074},"
	                   "{\"type\":\"custom\",\"data\":{\"card\":true}}]}",
	                   5, NOW_MS, &req, &err), 0);
	T_CHECK(err == NULL);
	parse_request(&req, &p);
	body = cJSON_GetObjectItemCaseSensitive(p.body, "MsgBody");
	T_EQ_INT(cJSON_GetArraySize(body), 4);
	T_EQ_STR(str_at(cJSON_GetArrayItem(body, 0), "MsgType"), "TIMTextElem");
	c = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(body, 0), "MsgContent");
	T_EQ_STR(str_at(c, "Text"), "看这里");
	T_EQ_STR(str_at(cJSON_GetArrayItem(body, 1), "MsgType"), "TIMFaceElem");
	c = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(body, 1), "MsgContent");
	T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "Index")) == 3.0);
	T_EQ_STR(str_at(c, "Data"), "smile");
	T_EQ_STR(str_at(cJSON_GetArrayItem(body, 2), "MsgType"), "TIMLocationElem");
	c = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(body, 2), "MsgContent");
	T_EQ_STR(str_at(c, "Desc"), "北京");
	T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "Latitude")) == 39.9042);
	T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "Longitude")) == 116.4074);
	T_EQ_STR(str_at(cJSON_GetArrayItem(body, 3), "MsgType"), "TIMCustomElem");
	c = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(body, 3), "MsgContent");
	T_EQ_STR(str_at(c, "Data"), "{\"card\":true}");
	T_CHECK(cJSON_GetObjectItemCaseSensitive(p.body, "CloudCustomData") == NULL);
	T_CHECK(cJSON_GetObjectItemCaseSensitive(p.body, "ExcludeFromUserRespTimeout") == NULL);
	parsed_free(&p);
	provider_request_clear(&req);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

static void
test_build_refuses(void)
{
	struct channel ch = make_channel("{\"sdkappid\":1400000000,\"identifier\":\"admin\","
	                                 "\"secret_key\":\"" KEY "\"}");
	void *state = open_state(&ch);
	struct provider_request req;
	struct provider_item items[2];
	char *err = NULL;

	/* ToAccount needs the channel's from_account. */
	T_EQ_INT(build_one(state, &ch, "{\"id\":\"user45\"}", "{\"type\":\"text\",\"text\":\"a\"}",
	                   1, NOW_MS, &req, &err), -1);
	T_CHECK(err != NULL && strstr(err, "from_account") != NULL);
	T_CHECK(req.url == NULL && req.body == NULL && req.n_headers == 0);
	free(err);
	err = NULL;
	/* The same session recipient works. */
	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"s\"}", "{\"type\":\"text\",\"text\":\"a\"}",
	                   1, NOW_MS, &req, &err), 0);
	provider_request_clear(&req);
	/* A broken message fails the build. */
	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"s\"}", "{\"type\":\"text\"}",
	                   1, NOW_MS, &req, &err), -1);
	T_CHECK(err != NULL);
	free(err);
	err = NULL;
	/* One delivery per request; a channel that was not opened. */
	memset(items, 0, sizeof items);
	T_EQ_INT(ops->build(state, &ch, items, 2, NOW_MS, &req, &err), -1);
	free(err);
	err = NULL;
	T_EQ_INT(ops->build(NULL, &ch, items, 1, NOW_MS, &req, &err), -1);
	T_CHECK(err != NULL);
	free(err);
	ops->close(state);
	ops->close(NULL);
	cJSON_Delete(ch.keys);
}

/* MsgRandom is the delivery's, on every build; the URL's random is new every time. */
static void
test_random(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct provider_request req;
	struct parsed p;
	char randoms[4][16], *err = NULL;
	int i, distinct = 0;

	for (i = 0; i < 4; i++) {
		T_EQ_INT(build_one(state, &ch, "{\"id\":\"u\"}", "{\"type\":\"text\",\"text\":\"a\"}",
		                   3000000001u, NOW_MS, &req, &err), 0);
		parse_request(&req, &p);
		T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p.body, "MsgRandom")) ==
		        3000000001.0);
		snprintf(randoms[i], sizeof randoms[i], "%s",
		         str_at(p.query, "random") ? str_at(p.query, "random") : "");
		parsed_free(&p);
		provider_request_clear(&req);
	}
	/* Four equal 32-bit random draws would happen once in 2^96 runs. */
	for (i = 1; i < 4; i++)
		distinct += strcmp(randoms[i], randoms[0]) != 0;
	T_CHECK(distinct > 0);
	T_CHECK(strcmp(randoms[0], randoms[1]) != 0 || strcmp(randoms[1], randoms[2]) != 0);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

/* Default lifetime (180 d): renewed once less than a day is left. */
static void
test_usersig_renewal(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	int64_t issued, expires_s, later;
	char *a, *b, *c, *d;

	/* The UserSig made at open is good now (open reads the real clock). */
	issued = clock_now_ms();
	a = built_sig(state, &ch, issued);
	expires_s = verify_sig(a, issued / 1000);
	T_CHECK(expires_s - 180 * 86400 <= issued / 1000 && expires_s - 180 * 86400 >= issued / 1000 - 60);
	/* A day and a second before expiry: still the same one. */
	later = (expires_s - 86400 - 1) * 1000;
	b = built_sig(state, &ch, later);
	T_EQ_STR(b, a);
	/* Less than a day left: a new one, issued then. */
	later = (expires_s - 86400) * 1000 + 1;
	c = built_sig(state, &ch, later);
	T_CHECK(strcmp(c, a) != 0);
	T_EQ_INT(verify_sig(c, later / 1000), later / 1000 + 180 * 86400);
	/* A clock that went back before the UserSig was issued: a new one. */
	d = built_sig(state, &ch, later - 5000);
	T_CHECK(strcmp(d, c) != 0);
	T_EQ_INT(verify_sig(d, (later - 5000) / 1000), (later - 5000) / 1000 + 180 * 86400);
	free(a);
	free(b);
	free(c);
	free(d);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

/* A one-day lifetime: renewed when less than a tenth of it (2.4 h) is left, exactly. */
static void
test_usersig_short_ttl(void)
{
	struct channel ch = make_channel("{\"sdkappid\":1400000000,\"identifier\":\"admin\","
	                                 "\"secret_key\":\"" KEY "\",\"usersig_ttl\":86400000}");
	void *state = open_state(&ch);
	int64_t t = NOW_MS + 30 * DAY_MS; /* past whatever open made: a fresh one at t */
	char *a, *b, *c;

	a = built_sig(state, &ch, t);
	T_EQ_INT(verify_sig(a, t / 1000), t / 1000 + 86400);
	b = built_sig(state, &ch, t + DAY_MS - DAY_MS / 10);
	T_EQ_STR(b, a);
	c = built_sig(state, &ch, t + DAY_MS - DAY_MS / 10 + 1);
	T_CHECK(strcmp(c, a) != 0);
	verify_sig(c, (t + DAY_MS - DAY_MS / 10 + 1) / 1000);
	free(a);
	free(b);
	free(c);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

static void
judge_state(void *state, const struct channel *ch, const char *body, enum provider_outcome want,
            const char *code, int fault)
{
	struct provider_item item;

	memset(&item, 0, sizeof item);
	item.channel_fault = -1;
	ops->judge(state, ch, 200, body, strlen(body), &item, 1, NOW_MS);
	T_EQ_INT(item.outcome, want);
	T_EQ_STR(item.code, code);
	T_EQ_INT(item.channel_fault, fault);
	free(item.message_text);
}

/*
 * 70001 drops a generated UserSig: the next build makes a new one, and the retry is safe. A
 * configured UserSig cannot renew itself, so 70001 is the channel's fault: permanent, and
 * the channel is suspended until an operator acts (SPEC 5.11).
 */
static void
test_usersig_expired(void)
{
	const char *expired = "{\"ActionStatus\":\"FAIL\",\"ErrorInfo\":\"usersig expired\","
	                      "\"ErrorCode\":70001}";
	struct channel ch = make_channel(CHANNEL_KEY);
	struct channel fixed = make_channel("{\"sdkappid\":1400000000,\"identifier\":\"admin\","
	                                    "\"usersig\":\"abc*def-_\"}");
	void *state = open_state(&ch), *fixed_state = open_state(&fixed);
	int64_t t = NOW_MS + 30 * DAY_MS;
	char *a, *b, *c;

	a = built_sig(state, &ch, t);
	b = built_sig(state, &ch, t + 10000);
	T_EQ_STR(b, a);
	judge_state(state, &ch, expired, PROVIDER_TRANSIENT, "70001", 0);
	c = built_sig(state, &ch, t + 10000);
	T_CHECK(strcmp(c, a) != 0);
	T_EQ_INT(verify_sig(c, (t + 10000) / 1000), (t + 10000) / 1000 + 180 * 86400);
	free(a);
	free(b);
	free(c);

	/* A configured UserSig is sent as given (decoded from the URL) and never replaced. */
	a = built_sig(fixed_state, &fixed, t);
	T_EQ_STR(a, "abc*def-_");
	judge_state(fixed_state, &fixed, expired, PROVIDER_PERMANENT, "70001", 1);
	b = built_sig(fixed_state, &fixed, t + 10000);
	T_EQ_STR(b, "abc*def-_");
	free(a);
	free(b);
	ops->close(state);
	ops->close(fixed_state);
	cJSON_Delete(ch.keys);
	cJSON_Delete(fixed.keys);
}

static void
test_open_errors(void)
{
	struct channel ch = make_channel("{\"sdkappid\":0,\"identifier\":\"admin\",\"secret_key\":\"" KEY "\"}");
	void *state = (void *)&ch;
	char *err = NULL;

	T_EQ_INT(ops->open(&ch, &state, &err), -1);
	T_CHECK(state == NULL);
	T_CHECK(err != NULL && strstr(err, KEY) == NULL);
	free(err);
	cJSON_Delete(ch.keys);
}

/* The JSON a text message of text_len 'a's makes in the lower-bound form. */
#define LOWER_BOUND_OVERHEAD \
	"{\"SessionId\":\"\",\"MsgRandom\":4294967295,\"MsgBody\":[{\"MsgType\":\"TIMTextElem\"," \
	"\"MsgContent\":{\"Text\":\"\"}}]}"

static void
test_size_limit(void)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct provider_request req;
	size_t max_text = 12288 - strlen(LOWER_BOUND_OVERHEAD);
	char *fits = text_message(max_text), *over = text_message(max_text + 1), *err = NULL;

	/* The check counts everything but the recipient's id. */
	T_EQ_INT(check_msg(fits, 1), 0);
	T_EQ_INT(check_msg(over, 1), -1);
	T_EQ_INT(check_msg(over, 0), 0);
	{
		cJSON *m = cJSON_Parse(over);

		T_EQ_INT(ops->check_message(m, 1, &err), -1);
		T_CHECK(err != NULL && strstr(err, "12288") != NULL && strstr(err, "12289") != NULL);
		free(err);
		err = NULL;
		cJSON_Delete(m);
	}
	/* Build counts the exact body: one byte of session id is one too many... */
	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"s\"}", fits, 4294967295u, NOW_MS, &req,
	                   &err), -1);
	T_CHECK(err != NULL && strstr(err, "12289 bytes") != NULL);
	T_CHECK(req.url == NULL && req.body == NULL);
	free(err);
	err = NULL;
	/* ...unless MsgRandom is 9 digits shorter: then 9 bytes of id fit exactly. */
	T_EQ_INT(build_one(state, &ch, "{\"session_id\":\"123456789\"}", fits, 7, NOW_MS, &req,
	                   &err), 0);
	T_EQ_INT(req.body_len, 12288);
	provider_request_clear(&req);
	cJSON_free(fits);
	cJSON_free(over);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

/* Judges body with a generated UserSig; checks the verdict and channel_fault (SPEC 5.11). */
static void
judge_fault(long status, const char *body, size_t len, enum provider_outcome outcome,
            const char *code, const char *text, int64_t defer, int fault)
{
	struct channel ch = make_channel(CHANNEL_KEY);
	void *state = open_state(&ch);
	struct verdict want = {outcome, code, text, defer, NULL, fault};

	judge_want(state, &ch, NULL, status, body, len, NOW_MS, &want);
	ops->close(state);
	cJSON_Delete(ch.keys);
}

/* The same, for a verdict that is the message's or the request's, never the channel's. */
static void
judge_len(long status, const char *body, size_t len, enum provider_outcome outcome,
          const char *code, const char *text, int64_t defer)
{
	judge_fault(status, body, len, outcome, code, text, defer, 0);
}

static void
judge(long status, const char *body, enum provider_outcome outcome, const char *code,
      const char *text)
{
	judge_len(status, body, body ? strlen(body) : 0, outcome, code, text, 0);
}

static void
test_judge_codes(void)
{
	static const int transient[] = {141002, 60007, 60008, 60011, 60018, 60019, 70001};
	/* The message's own errors, codes not classified yet, and the neighbours of the account
	   codes below (so that set is exact): permanent for the message alone. */
	static const int permanent[] = {
		90001, 90005, 90007, 93000, 141004, 141005, 70107, 70051, 12345, -1,
		60001, 60009, 60013, 60014, 60022, 70002, 70010, 70015, 70017, 70021, 90008, 90010,
		141001,
	};
	/* The account errors of providers.md: permanent, and the channel is suspended. */
	static const int account[] = {
		60002, 60003, 60004, 60005, 60006, 60010, 60012, 60015, 60016, 60017, 60020, 60021,
		70003, 70009, 70013, 70014, 70016, 70020, 90009, 141000,
	};
	char body[160], code[16], text[16];
	size_t i;

	judge(200, "{\"ActionStatus\": \"OK\",\"ErrorInfo\": \"\",\"ErrorCode\": 0}", PROVIDER_SENT,
	      "0", NULL);
	for (i = 0; i < sizeof transient / sizeof transient[0]; i++) {
		snprintf(body, sizeof body, "{\"ActionStatus\":\"FAIL\",\"ErrorInfo\":\"e%d\","
		         "\"ErrorCode\":%d}", transient[i], transient[i]);
		snprintf(code, sizeof code, "%d", transient[i]);
		snprintf(text, sizeof text, "e%d", transient[i]);
		judge(200, body, PROVIDER_TRANSIENT, code, text);
	}
	for (i = 0; i < sizeof permanent / sizeof permanent[0]; i++) {
		snprintf(body, sizeof body, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":%d,"
		         "\"ErrorInfo\":\"info\"}", permanent[i]);
		snprintf(code, sizeof code, "%d", permanent[i]);
		judge(200, body, PROVIDER_PERMANENT, code, "info");
	}
	for (i = 0; i < sizeof account / sizeof account[0]; i++) {
		snprintf(body, sizeof body, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":%d,"
		         "\"ErrorInfo\":\"info\"}", account[i]);
		snprintf(code, sizeof code, "%d", account[i]);
		judge_fault(200, body, strlen(body), PROVIDER_PERMANENT, code, "info", 0, 1);
	}
	snprintf(body, sizeof body, "{\"ActionStatus\":\"FAIL\",\"ErrorInfo\":\"too frequent\","
	         "\"ErrorCode\":70050}");
	judge_len(200, body, strlen(body), PROVIDER_DEFERRED, "70050", "too frequent",
	          NOW_MS + 60000);
}

static void
test_judge_shapes(void)
{
	/* Unreadable: it may have been delivered, so ambiguous (SPEC 5.10); the resend carries
	   the same MsgRandom. */
	const char *malformed_code = "unreadable answer: no integer \"ErrorCode\"";
	const char *malformed_obj = "unreadable answer: not a JSON object";
	const char *malformed_ok = "unreadable answer: ErrorCode 0 without ActionStatus \"OK\"";

	/* A digit string is read as its number. */
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":\"0\"}", PROVIDER_SENT, "0", NULL);
	judge(200, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":\"93000\",\"ErrorInfo\":\"big\"}",
	      PROVIDER_PERMANENT, "93000", "big");
	/* Success needs both halves. */
	judge(200, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":0}", PROVIDER_AMBIGUOUS, "0", malformed_ok);
	judge(200, "{\"ErrorCode\":0}", PROVIDER_AMBIGUOUS, "0", malformed_ok);
	judge(200, "{\"ActionStatus\":\"ok\",\"ErrorCode\":0}", PROVIDER_AMBIGUOUS, "0", malformed_ok);
	judge(200, "{\"ActionStatus\":true,\"ErrorCode\":0}", PROVIDER_AMBIGUOUS, "0", malformed_ok);
	judge(200, "{\"ActionStatus\":\"OK\"}", PROVIDER_AMBIGUOUS, "", malformed_code);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":null}", PROVIDER_AMBIGUOUS, "", malformed_code);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":\"zero\"}", PROVIDER_AMBIGUOUS, "",
	      malformed_code);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":0.5}", PROVIDER_AMBIGUOUS, "", malformed_code);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":false}", PROVIDER_AMBIGUOUS, "",
	      malformed_code);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":[0]}", PROVIDER_AMBIGUOUS, "",
	      malformed_code);
	/* An OK with an error code is an error. */
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":141004}", PROVIDER_PERMANENT, "141004", NULL);
	/* ErrorInfo that is not a string is ignored. */
	judge(200, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":141002,\"ErrorInfo\":{}}",
	      PROVIDER_TRANSIENT, "141002", NULL);
	judge(200, "", PROVIDER_AMBIGUOUS, "", malformed_obj);
	judge(200, "null", PROVIDER_AMBIGUOUS, "", malformed_obj);
	judge(200, "[]", PROVIDER_AMBIGUOUS, "", malformed_obj);
	judge(200, "{", PROVIDER_AMBIGUOUS, "", malformed_obj);
	judge(200, "<html>", PROVIDER_AMBIGUOUS, "", malformed_obj);
	judge(200, "{\"ActionStatus\":\"OK\",\"ErrorCode\":0} trailing", PROVIDER_AMBIGUOUS, "",
	      malformed_obj);
	judge_len(200, NULL, 0, PROVIDER_AMBIGUOUS, "", malformed_obj, 0);
}

static void
test_judge_huge(void)
{
	size_t n = 1 << 20;
	char *big = malloc(n + 64);
	struct channel ch = make_channel(CHANNEL_KEY);
	struct provider_item item;

	memset(big, '7', n);
	big[n] = '\0';
	judge(200, big, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
	big[0] = '"';
	big[n - 1] = '"';
	judge(200, big, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
	/* A megabyte of ErrorInfo is cut. */
	memcpy(big, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":90001,\"ErrorInfo\":\"", 54);
	memset(big + 54, 'x', n - 54);
	strcpy(big + n, "\"}");
	memset(&item, 0, sizeof item);
	ops->judge(NULL, &ch, 200, big, strlen(big), &item, 1, NOW_MS);
	T_EQ_INT(item.outcome, PROVIDER_PERMANENT);
	T_EQ_STR(item.code, "90001");
	T_CHECK(item.message_text != NULL && strlen(item.message_text) <= 1024);
	free(item.message_text);
	free(big);
	cJSON_Delete(ch.keys);
}

static void
test_judge_http(void)
{
	const char *ok = "{\"ActionStatus\":\"OK\",\"ErrorInfo\":\"\",\"ErrorCode\":0}";

	/* SPEC 5.10: 429, 503 and 408 say nothing was done; 500, 502, 504 and other 5xx may
	   have done it; other non-2xx are permanent. The status decides over any body. */
	judge(429, ok, PROVIDER_TRANSIENT, "", "HTTP 429");
	judge(503, ok, PROVIDER_TRANSIENT, "", "HTTP 503");
	judge(408, "", PROVIDER_TRANSIENT, "", "HTTP 408");
	judge(500, ok, PROVIDER_AMBIGUOUS, "", "HTTP 500");
	judge(502, "<html>", PROVIDER_AMBIGUOUS, "", "HTTP 502");
	judge(504, "", PROVIDER_AMBIGUOUS, "", "HTTP 504");
	judge(501, ok, PROVIDER_AMBIGUOUS, "", "HTTP 501");
	judge(400, ok, PROVIDER_PERMANENT, "", "HTTP 400");
	judge(404, ok, PROVIDER_PERMANENT, "", "HTTP 404");
	judge(403, "", PROVIDER_PERMANENT, "", "HTTP 403");
	/* Even an account error in the body is not read behind an HTTP error. */
	judge(502, "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":70009}", PROVIDER_AMBIGUOUS, "",
	      "HTTP 502");
}

int
main(void)
{
	T_RUN(test_registry);
	T_RUN(test_check_channel);
	T_RUN(test_check_recipient);
	T_RUN(test_check_message);
	T_RUN(test_build_session_text);
	T_RUN(test_build_account_custom);
	T_RUN(test_build_elements);
	T_RUN(test_build_refuses);
	T_RUN(test_random);
	T_RUN(test_usersig_renewal);
	T_RUN(test_usersig_short_ttl);
	T_RUN(test_usersig_expired);
	T_RUN(test_open_errors);
	T_RUN(test_size_limit);
	T_RUN(test_judge_codes);
	T_RUN(test_judge_shapes);
	T_RUN(test_judge_huge);
	T_RUN(test_judge_http);
	return t_report();
}
