/*
 * test_feihe.c: the Feihe provider module: checks, the exact request, and every verdict,
 * garbage and hostile answers included.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "provider.h"
#include "t.h"

#define OPEN_ID "oc63ewmuBYT11PkeC2IEsT0n2gggg"
/* 2026-11-23T10:00:00+08:00 */
#define NOW_MS INT64_C(1795399200000)

static const struct provider_ops *ops = &provider_feihe;
static char base_url[] = "http://127.0.0.1:8089";

#include "provider_t.h"

#define make_channel(json) provider_channel(base_url + 7, base_url, json)

static void
test_registry(void)
{
	T_CHECK(provider_find("feihe") == ops);
	T_EQ_STR(ops->name, "feihe");
	T_EQ_INT(ops->batching, PROVIDER_SINGLE);
	T_EQ_INT(ops->dedups, 0);
	T_EQ_STR(ops->keys[0].name, "system");
	T_EQ_INT(ops->keys[0].type, CONFIG_STRING);
	T_EQ_INT(ops->keys[0].required, 0);
	T_CHECK(ops->keys[1].name == NULL);
	T_CHECK(ops->schedule == NULL && ops->admit == NULL && ops->limit_account == NULL);
	T_CHECK(ops->open == NULL);
}

static void
test_check_channel(void)
{
	static const struct {
		const char *keys;
		int rc;
	} cases[] = {
		{"{}", 0},
		{"{\"system\":\"NEW_MEMBER\"}", 0},
		{"{\"system\":\"\"}", -1},
		{"{\"system\":\"A\\r\\nX-Evil: 1\"}", -1},
		{"{\"system\":\"tab\\there\"}", -1},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct channel ch = make_channel(cases[i].keys);
		char *err = NULL;

		T_EQ_INT(ops->check_channel(&ch, &err), cases[i].rc);
		T_CHECK(cases[i].rc == 0 ? err == NULL : err != NULL && strncmp(err, "system", 6) == 0);
		free(err);
		cJSON_Delete(ch.keys);
	}
}

static void
test_check_recipient(void)
{
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"" OPEN_ID "\"}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"x\",\"vars\":{\"a\":1}}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":42}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"session_id\":\"s\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "[\"id\"]"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "\"" OPEN_ID "\""), -1);
}

static void
test_check_message(void)
{
	char *m;

	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"客服消息\"}", 0), 0);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"客服消息\"}", 1), 0);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"\"}", 0), -1);
	T_EQ_INT(check_msg("{\"type\":\"text\"}", 0), -1);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":7}", 0), -1);
	T_EQ_INT(check_msg("{\"type\":\"image\",\"text\":\"x\"}", 0), -1);
	T_EQ_INT(check_msg("{\"text\":\"x\"}", 0), -1);
	T_EQ_INT(check_msg("[]", 0), -1);

	/* 2048 bytes is the limit, counted in bytes, and only once rendered. */
	m = repeated_message("a", 2048);
	T_EQ_INT(check_msg(m, 1), 0);
	cJSON_free(m);
	m = repeated_message("a", 2049);
	T_EQ_INT(check_msg(m, 1), -1);
	T_EQ_INT(check_msg(m, 0), 0);
	cJSON_free(m);
	m = repeated_message("汉", 682); /* 2046 bytes */
	T_EQ_INT(check_msg(m, 1), 0);
	cJSON_free(m);
	m = repeated_message("汉", 683); /* 2049 bytes */
	T_EQ_INT(check_msg(m, 1), -1);
	cJSON_free(m);
}

static int
build(const char *channel_keys, const char *recipient_id, const char *message,
      struct provider_request *req, char **err)
{
	struct channel ch = make_channel(channel_keys);
	struct provider_item item;
	cJSON *msg = cJSON_Parse(message), *rcpt = cJSON_CreateObject();
	int rc;

	memset(&item, 0, sizeof item);
	memset(req, 0, sizeof *req);
	cJSON_AddStringToObject(rcpt, "id", recipient_id);
	item.recipient_id = recipient_id;
	item.recipient = rcpt;
	item.message = msg;
	item.due_at_ms = NOW_MS;
	rc = ops->build(NULL, &ch, &item, 1, NOW_MS, req, err);
	cJSON_Delete(msg);
	cJSON_Delete(rcpt);
	cJSON_Delete(ch.keys);
	return rc;
}

static void
test_build(void)
{
	struct provider_request req;
	cJSON *body;
	char *err = NULL;

	T_EQ_INT(build("{}", OPEN_ID, "{\"type\":\"text\",\"text\":\"客服消息\"}", &req, &err), 0);
	T_CHECK(err == NULL);
	T_EQ_STR(req.url, "http://127.0.0.1:8089/wisdom-api/weixin/v1/sendCustomerMessage");
	T_EQ_INT(req.n_headers, 2);
	T_EQ_STR(req.headers[0], "system: NEW_MEMBER");
	T_EQ_STR(req.headers[1], "Content-Type: application/json");
	T_EQ_STR(req.body, "{\"openId\":\"" OPEN_ID "\",\"msg\":\"客服消息\"}");
	T_EQ_INT(req.body_len, strlen(req.body));
	provider_request_clear(&req);

	/* The configured system header; text that needs JSON escaping round-trips. */
	T_EQ_INT(build("{\"system\":\"VIP\"}", "o\"1",
	               "{\"type\":\"text\",\"text\":\"a\\\"b\\\\c\\nd\"}", &req, &err), 0);
	T_EQ_STR(req.headers[0], "system: VIP");
	body = cJSON_ParseWithLength(req.body, req.body_len);
	T_CHECK(cJSON_IsObject(body) && cJSON_GetArraySize(body) == 2);
	T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "openId")), "o\"1");
	T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "msg")), "a\"b\\c\nd");
	cJSON_Delete(body);
	provider_request_clear(&req);
}

static void
test_build_refuses(void)
{
	struct provider_request req;
	struct provider_item items[2];
	struct channel ch = make_channel("{}");
	cJSON *msg = cJSON_Parse("{\"type\":\"text\",\"text\":\"x\"}");
	char *err = NULL, *big;

	big = repeated_message("a", 2049);
	T_EQ_INT(build("{}", OPEN_ID, big, &req, &err), -1);
	T_CHECK(err != NULL && strstr(err, "2048") != NULL);
	T_CHECK(req.url == NULL && req.body == NULL && req.n_headers == 0);
	free(err);
	err = NULL;
	cJSON_free(big);

	T_EQ_INT(build("{}", "", "{\"type\":\"text\",\"text\":\"x\"}", &req, &err), -1);
	T_CHECK(err != NULL);
	free(err);
	err = NULL;

	/* One openId per call. */
	memset(items, 0, sizeof items);
	memset(&req, 0, sizeof req);
	items[0].recipient_id = items[1].recipient_id = OPEN_ID;
	items[0].message = items[1].message = msg;
	T_EQ_INT(ops->build(NULL, &ch, items, 2, NOW_MS, &req, &err), -1);
	T_CHECK(err != NULL);
	free(err);
	cJSON_Delete(msg);
	cJSON_Delete(ch.keys);
}

/*
 * Judges body (len bytes) at HTTP status; checks outcome, code and text (NULL = none). No
 * Feihe verdict is a channel fault: its token errors count among failed requests instead
 * (SPEC 5.11), so channel_fault, set beforehand, must come back 0.
 */
static void
judge_len(long status, const char *body, size_t len, enum provider_outcome outcome,
          const char *code, const char *text, int64_t defer_until_ms)
{
	struct channel ch = make_channel("{}");
	struct verdict want = {outcome, code, text, defer_until_ms, NULL, 0};

	judge_want(NULL, &ch, OPEN_ID, status, body, len, NOW_MS, &want);
	cJSON_Delete(ch.keys);
}

static void
judge(long status, const char *body, enum provider_outcome outcome, const char *code,
      const char *text)
{
	judge_len(status, body, body ? strlen(body) : 0, outcome, code, text, 0);
}

/* An answer with outer code 200 carrying errcode; the text is "m<errcode>". */
static void
judge_errcode(const char *errcode, enum provider_outcome outcome, int64_t defer_until_ms)
{
	char body[256], text[64];

	snprintf(body, sizeof body, "{\"code\":200,\"msg\":\"操作成功\",\"data\":{\"errcode\":%s,"
	         "\"errmsg\":\"m%s\"}}", errcode, errcode);
	snprintf(text, sizeof text, "m%s", errcode);
	judge_len(200, body, strlen(body), outcome, errcode, text, defer_until_ms);
}

static void
test_judge_codes(void)
{
	static const struct {
		const char *errcode;
		enum provider_outcome outcome;
	} cases[] = {
		{"0", PROVIDER_SENT},
		{"-1", PROVIDER_TRANSIENT},
		{"40001", PROVIDER_TRANSIENT},
		{"40014", PROVIDER_TRANSIENT},
		{"42001", PROVIDER_TRANSIENT},
		{"40003", PROVIDER_PERMANENT},
		{"43004", PROVIDER_PERMANENT},
		{"45002", PROVIDER_PERMANENT},
		{"45015", PROVIDER_PERMANENT},
		{"45047", PROVIDER_PERMANENT},
		{"48001", PROVIDER_PERMANENT},
		{"12345", PROVIDER_PERMANENT},
		{"1", PROVIDER_PERMANENT},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		judge_errcode(cases[i].errcode, cases[i].outcome, 0);

	/* The seed's own examples. */
	judge(200, "{\"code\":200,\"msg\":\"操作成功\",\"data\":{\"errcode\":0,\"errmsg\":\"ok\"}}",
	      PROVIDER_SENT, "0", "ok");
	judge(200, "{\"code\": 200, \"msg\": \"操作成功\", \"data\": {\"errcode\": 40003, "
	      "\"errmsg\": \"invalid openid rid: 66f3bd4d-25a283a9-73c6a452\"}}\n",
	      PROVIDER_PERMANENT, "40003", "invalid openid rid: 66f3bd4d-25a283a9-73c6a452");
	/* No errmsg: the outer msg stands in. */
	judge(200, "{\"code\":200,\"msg\":\"操作成功\",\"data\":{\"errcode\":48001}}",
	      PROVIDER_PERMANENT, "48001", "操作成功");
}

static void
test_judge_deferred(void)
{
	/* 45011: a minute. */
	judge_errcode("45011", PROVIDER_DEFERRED, NOW_MS + 60000);
	/* 45009: the next 00:00 Asia/Shanghai (2026-11-24T00:00+08:00). */
	judge_errcode("45009", PROVIDER_DEFERRED, INT64_C(1795449600000));
}

/* The daily-quota reopening at the edges of a Shanghai day. */
static void
test_judge_midnight(void)
{
	static const struct {
		int64_t now, want;
	} cases[] = {
		/* 23:59:59.999 local -> the coming midnight */
		{INT64_C(1795449599999), INT64_C(1795449600000)},
		/* exactly 00:00 local -> the next one, a day later */
		{INT64_C(1795449600000), INT64_C(1795536000000)},
		/* 00:00 UTC is 08:00 local -> 16:00 UTC the same day */
		{INT64_C(1795392000000), INT64_C(1795449600000)},
	};
	const char *body = "{\"code\":200,\"data\":{\"errcode\":45009,\"errmsg\":\"api freq out of limit\"}}";
	struct channel ch = make_channel("{}");
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct provider_item item;

		memset(&item, 0, sizeof item);
		ops->judge(NULL, &ch, 200, body, strlen(body), &item, 1, cases[i].now);
		T_EQ_INT(item.outcome, PROVIDER_DEFERRED);
		T_EQ_INT(item.defer_until_ms, cases[i].want);
		T_EQ_STR(item.message_text, "api freq out of limit");
		free(item.message_text);
	}
	cJSON_Delete(ch.keys);
}

/*
 * The wrapper's own codes are undocumented: a non-200 outer code is retried (providers.md),
 * except 500..599, after which WeChat may already have the message (ambiguous, SPEC 5.10).
 */
static void
test_judge_outer_code(void)
{
	judge(200, "{\"code\":500,\"msg\":\"系统异常\",\"data\":null}", PROVIDER_AMBIGUOUS, "500",
	      "系统异常");
	judge(200, "{\"code\":502,\"msg\":\"bad gateway\"}", PROVIDER_AMBIGUOUS, "502", "bad gateway");
	judge(200, "{\"code\":503,\"msg\":\"busy\"}", PROVIDER_AMBIGUOUS, "503", "busy");
	judge(200, "{\"code\":504}", PROVIDER_AMBIGUOUS, "504", NULL);
	judge(200, "{\"code\":599,\"msg\":\"x\"}", PROVIDER_AMBIGUOUS, "599", "x");
	judge(200, "{\"code\":401,\"msg\":\"未授权\"}", PROVIDER_TRANSIENT, "401", "未授权");
	judge(200, "{\"code\":400,\"msg\":\"参数错误\",\"data\":{\"errcode\":0}}", PROVIDER_TRANSIENT,
	      "400", "参数错误");
	judge(200, "{\"code\":499,\"msg\":\"x\"}", PROVIDER_TRANSIENT, "499", "x");
	judge(200, "{\"code\":600,\"msg\":\"x\"}", PROVIDER_TRANSIENT, "600", "x");
	judge(200, "{\"code\":0,\"data\":{\"errcode\":0}}", PROVIDER_TRANSIENT, "0", NULL);
	judge(200, "{\"code\":-1}", PROVIDER_TRANSIENT, "-1", NULL);
}

/* Codes given as digit strings are read as numbers; every other shape is unreadable, and
   an unreadable answer may stand for a message WeChat accepted: ambiguous (SPEC 5.10). */
static void
test_judge_types(void)
{
	judge(200, "{\"code\":\"200\",\"data\":{\"errcode\":\"0\",\"errmsg\":\"ok\"}}",
	      PROVIDER_SENT, "0", "ok");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":\"40003\",\"errmsg\":\"bad\"}}",
	      PROVIDER_PERMANENT, "40003", "bad");
	judge(200, "{\"code\":200.0,\"data\":{\"errcode\":0.0}}", PROVIDER_SENT, "0", NULL);
	judge(200, "{\"code\":\"500\",\"msg\":\"x\"}", PROVIDER_AMBIGUOUS, "500", "x");

	judge(200, "{\"code\":200,\"data\":{\"errcode\":\"0 \"}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":\"ok\"}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":0.5}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":false}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":null}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":{\"errcode\":1e300}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"msg\":\"ok\"}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":[{\"errcode\":0}]}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":200,\"data\":\"{\\\"errcode\\\":0}\"}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"data.errcode\"");
	judge(200, "{\"code\":true,\"data\":{\"errcode\":0}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"code\"");
	judge(200, "{\"data\":{\"errcode\":0}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"code\"");
	/* Keys are case-sensitive. */
	judge(200, "{\"Code\":200,\"data\":{\"ErrCode\":0}}", PROVIDER_AMBIGUOUS, "",
	      "unreadable answer: no integer \"code\"");
}

static void
test_judge_garbage(void)
{
	static const char *const bodies[] = {
		"", "null", "[]", "{", "<html>", "200", "\"ok\"", "true",
		"{\"code\":200,\"data\":{\"errcode\":0}", "{\"code\":200,\"data\":{\"errcode\":0}}x",
		"{\"code\":200,\"data\":{\"errcode\":0}}{}",
	};
	const char *whole = "{\"code\":200,\"data\":{\"errcode\":0}}";
	char *big;
	size_t i, n = 1 << 20;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		judge(200, bodies[i], PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
	judge_len(200, NULL, 0, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object", 0);

	/* Only body_len bytes count: a success followed by bytes outside it is still a success. */
	judge_len(200, "{\"code\":200,\"data\":{\"errcode\":0}}GARBAGE", strlen(whole),
	          PROVIDER_SENT, "0", NULL, 0);
	/* A NUL byte inside the answer is not whitespace. */
	judge_len(200, "{\"code\":200,\"data\":{\"errcode\":0}}\0x", strlen(whole) + 2,
	          PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object", 0);
	/* A success cut short is not one. */
	judge_len(200, whole, strlen(whole) - 1, PROVIDER_AMBIGUOUS, "",
	          "unreadable answer: not a JSON object", 0);

	/* A megabyte of garbage, and a megabyte-long JSON string. */
	big = malloc(n + 3);
	memset(big, 'a', n + 2);
	big[n + 2] = '\0';
	judge(200, big, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
	big[0] = '"';
	big[n + 1] = '"';
	judge(200, big, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
	free(big);
}

/* A huge errmsg is cut before it reaches the attempt log. */
static void
test_judge_long_text(void)
{
	struct channel ch = make_channel("{}");
	struct provider_item item;
	cJSON *root = cJSON_CreateObject(), *data;
	char *text = malloc(1 << 20), *body;

	memset(text, 'x', (1 << 20) - 1);
	text[(1 << 20) - 1] = '\0';
	cJSON_AddNumberToObject(root, "code", 200);
	data = cJSON_AddObjectToObject(root, "data");
	cJSON_AddNumberToObject(data, "errcode", 40003);
	cJSON_AddStringToObject(data, "errmsg", text);
	body = cJSON_PrintUnformatted(root);
	memset(&item, 0, sizeof item);
	ops->judge(NULL, &ch, 200, body, strlen(body), &item, 1, NOW_MS);
	T_EQ_INT(item.outcome, PROVIDER_PERMANENT);
	T_EQ_STR(item.code, "40003");
	T_CHECK(item.message_text != NULL && strlen(item.message_text) <= 1024);
	T_CHECK(item.message_text != NULL && strncmp(item.message_text, "xxxx", 4) == 0);
	free(item.message_text);
	cJSON_free(body);
	cJSON_Delete(root);
	free(text);
	cJSON_Delete(ch.keys);
}

static void
test_judge_http(void)
{
	const char *ok = "{\"code\":200,\"data\":{\"errcode\":0}}";

	/* The HTTP status wins over any body (SPEC 5.10): 429, 503 and 408 say nothing was done;
	   500, 502, 504 and other 5xx may have done it; other non-2xx are permanent. */
	judge(429, ok, PROVIDER_TRANSIENT, "", "HTTP 429");
	judge(503, ok, PROVIDER_TRANSIENT, "", "HTTP 503");
	judge(408, ok, PROVIDER_TRANSIENT, "", "HTTP 408");
	judge(500, ok, PROVIDER_AMBIGUOUS, "", "HTTP 500");
	judge(502, "<html>bad gateway</html>", PROVIDER_AMBIGUOUS, "", "HTTP 502");
	judge(504, "", PROVIDER_AMBIGUOUS, "", "HTTP 504");
	judge(501, ok, PROVIDER_AMBIGUOUS, "", "HTTP 501");
	judge(400, ok, PROVIDER_PERMANENT, "", "HTTP 400");
	judge(404, ok, PROVIDER_PERMANENT, "", "HTTP 404");
	judge(301, "", PROVIDER_PERMANENT, "", "HTTP 301");
	/* A 2xx is the body's to judge: an empty one is unreadable. */
	judge(204, "", PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object");
}

/* One verdict is written to every item handed over. */
static void
test_judge_all_items(void)
{
	const char *body = "{\"code\":200,\"data\":{\"errcode\":45011,\"errmsg\":\"slow down\"}}";
	struct channel ch = make_channel("{}");
	struct provider_item items[2];
	int i;

	memset(items, 0, sizeof items);
	ops->judge(NULL, &ch, 200, body, strlen(body), items, 2, NOW_MS);
	for (i = 0; i < 2; i++) {
		T_EQ_INT(items[i].outcome, PROVIDER_DEFERRED);
		T_EQ_INT(items[i].defer_until_ms, NOW_MS + 60000);
		T_EQ_STR(items[i].message_text, "slow down");
		free(items[i].message_text);
	}
	cJSON_Delete(ch.keys);
}

int
main(void)
{
	T_RUN(test_registry);
	T_RUN(test_check_channel);
	T_RUN(test_check_recipient);
	T_RUN(test_check_message);
	T_RUN(test_build);
	T_RUN(test_build_refuses);
	T_RUN(test_judge_codes);
	T_RUN(test_judge_deferred);
	T_RUN(test_judge_midnight);
	T_RUN(test_judge_outer_code);
	T_RUN(test_judge_types);
	T_RUN(test_judge_garbage);
	T_RUN(test_judge_long_text);
	T_RUN(test_judge_http);
	T_RUN(test_judge_all_items);
	return t_report();
}
