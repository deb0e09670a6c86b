/* test_tanmarket: the Tanmarket group-SOP module: sign, schedule, the one-call body, verdicts. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "clock.h"
#include "provider.h"
#include "providers/tanmarket.h"
#include "t.h"

#define BASE_URL "http://127.0.0.1:9"
#define NOW_MS 1700000000000LL
#define BIG (1024 * 1024)
#define UNREADABLE "unreadable answer"

/* Step contents exactly as a campaign file would hold them (compact, so bytes can be compared). */
#define CONTENTS_1 "[{\"type\":1,\"content\":\"#客户昵称#，早上好\"},{\"type\":99,\"mcId\":" \
	"\"bbbfe85ba01711ecacc500163e106b20\",\"title\":\"官网测一波\",\"content\":\"大大滴\"," \
	"\"fileUrl\":\"https://dev.tanmarket.cn/a.jpg\",\"mcType\":2}]"
#define CONTENTS_2 "[{\"type\":3,\"fileName\":\"Snipaste.png\",\"fileUrl\":\"https://x.test/y.png\"," \
	"\"mediaId\":\"31sRwaYu\",\"fileId\":9176,\"link\":\"https://ww.tm.com\",\"title\":\"链接\"}]"

static const struct provider_ops *ops = &provider_tanmarket;

#include "provider_t.h"

#define chan(keys_json) provider_channel("groups", BASE_URL, keys_json)
#define judge(ch, status, body, len, it, n) judge_items(ch, status, body, len, it, n, NOW_MS)

/* The reference sign, computed here independently of the module. */
static void
sha256_sign(const char *app_id, const char *ts, const char *body, size_t len, const char *key,
            char out[65])
{
	unsigned char md[32];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t i;

	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, app_id, strlen(app_id));
	EVP_DigestUpdate(ctx, ts, strlen(ts));
	EVP_DigestUpdate(ctx, body, len);
	EVP_DigestUpdate(ctx, key, strlen(key));
	EVP_DigestFinal_ex(ctx, md, &md_len);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
test_ops(void)
{
	const struct config_key *k;
	int seen = 0, other = 0;

	T_EQ_STR(ops->name, "tanmarket");
	T_EQ_INT(ops->batching, PROVIDER_BY_CAMPAIGN);
	T_EQ_INT(ops->dedups, 0);
	T_CHECK(ops->schedule && ops->build && ops->judge && ops->check_channel &&
	        ops->check_recipient && ops->check_message);
	for (k = ops->keys; k && k->name; k++) {
		if (strcmp(k->name, "app_id") == 0 || strcmp(k->name, "app_key") == 0)
			seen += k->type == CONFIG_STRING && k->required;
		else if (strcmp(k->name, "mode") == 0)
			seen += k->type == CONFIG_INT && !k->required;
		else
			other++;
	}
	T_EQ_INT(seen, 3);
	T_EQ_INT(other, 0);
}

static void
test_sign_known_answer(void)
{
	char out[TANMARKET_SIGN_LEN], ref[65];

	/* providers.md §4.1 */
	tanmarket_sign_hex("demoApp", "1700000000000", "{\"a\":1}", 7, "demoKey", out);
	T_EQ_STR(out, "4b6e06bd8870770ca90191baf2c993bbfb39d02bb8ae86d2f2234e78bb6336e8");
	/* An empty body signs as the empty string. */
	tanmarket_sign_hex("demoApp", "1700000000000", NULL, 0, "demoKey", out);
	sha256_sign("demoApp", "1700000000000", "", 0, "demoKey", ref);
	T_EQ_STR(out, ref);
	/* Only body_len bytes count. */
	tanmarket_sign_hex("demoApp", "1700000000000", "{\"a\":1}garbage", 7, "demoKey", out);
	T_EQ_STR(out, "4b6e06bd8870770ca90191baf2c993bbfb39d02bb8ae86d2f2234e78bb6336e8");
}

static void
test_schedule(void)
{
	int64_t next = 0, expires = 0;

	ops->schedule(NULL, NOW_MS + 3 * DAY_MS, NOW_MS, 24 * HOUR_MS, &next, &expires);
	T_EQ_INT(next, NOW_MS);
	T_EQ_INT(expires, NOW_MS + 3 * DAY_MS - 60 * 1000);
}

static void
test_check_channel(void)
{
	T_EQ_INT(channel_ok("{\"app_id\":\"a\",\"app_key\":\"k\"}", ""), 0);
	T_EQ_INT(channel_ok("{\"app_id\":\"a\",\"app_key\":\"k\",\"mode\":2}", ""), 0);
	T_EQ_INT(channel_ok("{\"app_id\":\"\",\"app_key\":\"k\"}", "app_id"), -1);
	T_EQ_INT(channel_ok("{\"app_id\":\"a\"}", "app_key"), -1);
	T_EQ_INT(channel_ok("{\"app_id\":\"a\\r\\nX-Evil: 1\",\"app_key\":\"k\"}", "app_id"), -1);
	T_EQ_INT(channel_ok("{\"app_id\":\"a\",\"app_key\":\"k\\n\"}", "app_key"), -1);
	T_EQ_INT(channel_ok("{\"app_id\":\"a\",\"app_key\":\"k\",\"mode\":4294967296}", "mode"), -1);
}

static void
test_check_recipient_message(void)
{
	T_EQ_INT(check_json(ops->check_recipient, "{\"chat_id\":\"wr1\",\"chat_owner\":\"39965\"}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"chat_id\":\"wr1\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"chat_id\":\"\",\"chat_owner\":\"o\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"chat_id\":\"wr1\",\"chat_owner\":5}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"wr1\"}"), -1);

	T_EQ_INT(check_msg("{\"contents\":" CONTENTS_1 "}", 1), 0);
	T_EQ_INT(check_msg("{\"contents\":[{\"type\":1,\"content\":\"x\"}]}", 1), 0);
	T_EQ_INT(check_msg("{\"contents\":[]}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":{}}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":[{\"content\":\"x\"}]}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":[{\"type\":\"1\"}]}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":[{\"type\":1.5}]}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":[{\"type\":1},2]}", 1), -1);
	T_EQ_INT(check_msg("{\"contents\":[{\"type\":1}],\"type\":\"text\"}", 1), -1);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"x\"}", 1), -1);
	T_EQ_INT(check_msg("[]", 1), -1);
}

/* A campaign's deliveries: 3 groups x 2 steps, handed over in a scrambled order. */
struct fixture {
	cJSON *groups[3];
	cJSON *msg[2];
	struct provider_item it[6];
};

static void
fixture_init(struct fixture *f, int day_now)
{
	/* (group, step) in the order the scheduler hands them over. */
	static const int order[6][2] = {{1, 1}, {0, 0}, {2, 1}, {1, 0}, {0, 1}, {2, 0}};
	static const char *const ids[3] = {"wrvRo3DwAAWTbx-g1", "wrvRo3DwAAnjo-g2", "wrvRo3-g3"};
	static const char *const owners[3] = {"399653652604992", "412770248998976", "5"};
	static const int day[2] = {3, 5};
	static const char *const at[2] = {"10:00", "20:30"};
	size_t i;

	memset(f, 0, sizeof *f);
	for (i = 0; i < 3; i++) {
		f->groups[i] = cJSON_CreateObject();
		cJSON_AddStringToObject(f->groups[i], "chat_id", ids[i]);
		cJSON_AddStringToObject(f->groups[i], "chat_owner", owners[i]);
	}
	f->msg[0] = cJSON_Parse("{\"contents\":" CONTENTS_1 "}");
	f->msg[1] = cJSON_Parse("{\"contents\":" CONTENTS_2 "}");
	for (i = 0; i < 6; i++) {
		struct provider_item *x = &f->it[i];
		int g = order[i][0], s = order[i][1];

		x->delivery_id = (int64_t)i + 1;
		x->recipient_id = ids[g];
		x->recipient = f->groups[g];
		x->message = f->msg[s];
		x->campaign_key = "sop-2026";
		x->campaign_name = "探马测试";
		x->step = s + 1;
		x->step_day = day[s];
		x->step_time = at[s];
		x->campaign_day_now = day_now;
		/* Due at the step's time: day_now's 00:00 is NOW_MS - 1 h here. */
		x->due_at_ms = NOW_MS - HOUR_MS + (int64_t)(day[s] - day_now) * DAY_MS +
		    (s == 0 ? 10 : 20) * HOUR_MS;
		x->outcome = PROVIDER_DEFERRED;
	}
}

static void
fixture_free(struct fixture *f)
{
	size_t i;

	items_reset(f->it, 6);
	for (i = 0; i < 3; i++)
		cJSON_Delete(f->groups[i]);
	cJSON_Delete(f->msg[0]);
	cJSON_Delete(f->msg[1]);
}

static const char *
header(const struct provider_request *req, const char *name)
{
	size_t len = strlen(name);
	int i;

	for (i = 0; i < req->n_headers; i++)
		if (strncmp(req->headers[i], name, len) == 0 && req->headers[i][len] == ':' &&
		    req->headers[i][len + 1] == ' ')
			return req->headers[i] + len + 2;
	return NULL;
}

static void
check_build(int day_now, int date1, int date2)
{
	struct channel ch = chan("{\"app_id\":\"demoApp\",\"app_key\":\"demoKey\"}");
	struct provider_request req = {0};
	struct fixture f;
	char *err = NULL, want[4096], sign[65];

	fixture_init(&f, day_now);
	T_EQ_INT(ops->build(NULL, &ch, f.it, 6, NOW_MS, &req, &err), 0);
	T_CHECK(err == NULL);
	snprintf(want, sizeof want,
	         "{\"groupInfos\":["
	         "{\"chatId\":\"wrvRo3DwAAnjo-g2\",\"chatOwner\":\"412770248998976\"},"
	         "{\"chatId\":\"wrvRo3DwAAWTbx-g1\",\"chatOwner\":\"399653652604992\"},"
	         "{\"chatId\":\"wrvRo3-g3\",\"chatOwner\":\"5\"}],"
	         "\"title\":\"探马测试\",\"mode\":1,\"sopContents\":["
	         "{\"showDate\":%d,\"showTime\":\"10:00\",\"sopDatas\":" CONTENTS_1 "},"
	         "{\"showDate\":%d,\"showTime\":\"20:30\",\"sopDatas\":" CONTENTS_2 "}]}",
	         date1, date2);
	T_EQ_STR(req.body, want);
	T_EQ_INT(req.body_len, strlen(want));
	T_EQ_STR(req.url, BASE_URL "/api/v3/groupSop/addGroupCorporate");
	T_EQ_INT(req.n_headers, 5);
	T_EQ_STR(header(&req, "appId"), "demoApp");
	T_EQ_STR(header(&req, "timestamp"), "1700000000000");
	T_EQ_STR(header(&req, "appKey"), "demoKey");
	T_EQ_STR(header(&req, "Content-Type"), "application/json");
	if (req.body) {
		sha256_sign("demoApp", "1700000000000", req.body, req.body_len, "demoKey", sign);
		T_EQ_STR(header(&req, "sign"), sign);
	}
	provider_request_clear(&req);
	fixture_free(&f);
	cJSON_Delete(ch.keys);
}

static void
test_build_day1(void)
{
	check_build(1, 3, 5);
}

static void
test_build_day3(void)
{
	/* Called on campaign day 3, the SOP's day 1 is today. */
	check_build(3, 1, 3);
}

static void
test_build_title_mode(void)
{
	struct channel ch = chan("{\"app_id\":\"a\",\"app_key\":\"k\",\"mode\":2}");
	struct provider_request req = {0};
	struct fixture f;
	char *err = NULL;
	cJSON *body;
	size_t i;

	fixture_init(&f, 1);
	for (i = 0; i < 6; i++) {
		f.it[i].campaign_name = i % 2 ? "" : NULL;
		f.it[i].recipient_id = NULL; /* chat_id comes from the record then */
	}
	T_EQ_INT(ops->build(NULL, &ch, f.it, 6, NOW_MS, &req, &err), 0);
	body = cJSON_Parse(req.body);
	T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(body, "title")), "sop-2026");
	T_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(body, "mode")), 2);
	T_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(body, "groupInfos")), 3);
	cJSON_Delete(body);
	provider_request_clear(&req);
	fixture_free(&f);

	/* One group under two owners is two entries; a repeat of a pair is one. */
	fixture_init(&f, 1);
	f.it[0].recipient = f.groups[0];
	f.it[0].recipient_id = "wrvRo3DwAAWTbx-g1";
	cJSON_ReplaceItemInObjectCaseSensitive(f.groups[2], "chat_id",
	                                       cJSON_CreateString("wrvRo3DwAAWTbx-g1"));
	for (i = 0; i < 6; i++)
		if (f.it[i].recipient == f.groups[2])
			f.it[i].recipient_id = "wrvRo3DwAAWTbx-g1";
	T_EQ_INT(ops->build(NULL, &ch, f.it, 6, NOW_MS, &req, &err), 0);
	T_CHECK(req.body && strstr(req.body, "\"groupInfos\":["
	        "{\"chatId\":\"wrvRo3DwAAWTbx-g1\",\"chatOwner\":\"399653652604992\"},"
	        "{\"chatId\":\"wrvRo3DwAAWTbx-g1\",\"chatOwner\":\"5\"},"
	        "{\"chatId\":\"wrvRo3DwAAnjo-g2\",\"chatOwner\":\"412770248998976\"}],"));
	provider_request_clear(&req);
	fixture_free(&f);
	cJSON_Delete(ch.keys);
}

/* build must fail naming err_has and leave the request empty. */
static void
build_fails(struct fixture *f, size_t n, const char *err_has)
{
	struct channel ch = chan("{\"app_id\":\"a\",\"app_key\":\"k\"}");
	struct provider_request req = {0};
	char *err = NULL;

	T_EQ_INT(ops->build(NULL, &ch, f->it, n, NOW_MS, &req, &err), -1);
	T_CHECK(err && strstr(err, err_has));
	if (err && !strstr(err, err_has))
		fprintf(stderr, "  err: %s\n", err);
	T_CHECK(req.url == NULL && req.body == NULL && req.n_headers == 0);
	free(err);
	fixture_free(f);
	cJSON_Delete(ch.keys);
}

static void
test_build_rejects(void)
{
	struct fixture f;
	cJSON *other;

	/* Day 4: step 1 (day 3) is yesterday; no SOP made now can carry it. */
	fixture_init(&f, 4);
	build_fails(&f, 6, "has passed");
	/* Day 3 but step 1's 10:00 is over. */
	fixture_init(&f, 3);
	f.it[1].due_at_ms = NOW_MS;
	build_fails(&f, 6, "delivery 2");
	/* One step, two contents. */
	fixture_init(&f, 1);
	other = cJSON_Parse("{\"contents\":[{\"type\":1,\"content\":\"other\"}]}");
	f.it[5].message = other;
	build_fails(&f, 6, "step 1 differs");
	cJSON_Delete(other);
	/* One step, two times. */
	fixture_init(&f, 1);
	f.it[5].step_time = "10:01";
	build_fails(&f, 6, "differs");
	fixture_init(&f, 1);
	cJSON_DeleteItemFromObjectCaseSensitive(f.groups[2], "chat_owner");
	build_fails(&f, 6, "chat_owner");
	fixture_init(&f, 1);
	f.it[3].campaign_key = "another";
	build_fails(&f, 6, "delivery 4");
	fixture_init(&f, 1);
	f.it[3].campaign_day_now = 2;
	build_fails(&f, 6, "delivery 4");
	fixture_init(&f, 1);
	other = cJSON_Parse("{\"contents\":[]}");
	f.it[2].message = other;
	build_fails(&f, 6, "contents");
	cJSON_Delete(other);
	fixture_init(&f, 1);
	build_fails(&f, 0, "empty");
}

struct verdict_case {
	long http;
	const char *body;
	enum provider_outcome outcome;
	const char *code;      /* NULL: not checked */
	const char *text_has;  /* NULL: not checked */
	const char *id;        /* NULL: no message id */
	int fault;             /* channel_fault wanted on every item (SPEC 5.11) */
};

static void
check_verdicts(const struct verdict_case *c, size_t n_cases)
{
	struct channel ch = chan("{\"app_id\":\"a\",\"app_key\":\"secret-app-key\"}");
	struct fixture f;
	size_t i, j;

	fixture_init(&f, 1);
	for (i = 0; i < n_cases; i++) {
		judge(&ch, c[i].http, c[i].body, strlen(c[i].body), f.it, 6);
		for (j = 0; j < 6; j++) {
			T_EQ_INT(f.it[j].outcome, c[i].outcome);
			if (c[i].code)
				T_EQ_STR(f.it[j].code, c[i].code);
			if (c[i].text_has)
				T_CHECK(f.it[j].message_text && strstr(f.it[j].message_text, c[i].text_has));
			if (f.it[j].message_text)
				T_CHECK(!strstr(f.it[j].message_text, "secret-app-key"));
			if (c[i].id)
				T_EQ_STR(f.it[j].message_id, c[i].id);
			else
				T_CHECK(f.it[j].message_id == NULL);
			T_EQ_INT(f.it[j].channel_fault, c[i].fault);
		}
		if (t_current_failed) {
			fprintf(stderr, "  case %zu: HTTP %ld %.200s\n", i, c[i].http, c[i].body);
			break;
		}
	}
	fixture_free(&f);
	cJSON_Delete(ch.keys);
}

static void
test_judge_codes(void)
{
	static const struct verdict_case cases[] = {
		{200, "{}", PROVIDER_SENT, "", NULL, NULL, 0},
		{200, " {}\r\n", PROVIDER_SENT, "", NULL, NULL, 0},
		{200, "{\"code\":0}", PROVIDER_SENT, "0", NULL, NULL, 0},
		{200, "{\"code\":0,\"msg\":\"ok\",\"data\":{\"sopId\":\"S-1\",\"id\":\"other\"}}",
		 PROVIDER_SENT, "0", "ok", "S-1", 0},
		{200, "{\"code\":0,\"data\":{\"id\":123456789012}}", PROVIDER_SENT, "0", NULL, "123456789012",
		 0},
		{200, "{\"code\":0,\"data\":{\"sopId\":\"\",\"id\":\"I-2\"}}", PROVIDER_SENT, "0", NULL, "I-2", 0},
		{200, "{\"code\":0,\"data\":\"S-9\"}", PROVIDER_SENT, "0", NULL, NULL, 0},
		{200, "{\"code\":\"0\"}", PROVIDER_SENT, "0", NULL, NULL, 0},
		/* No code: success only without a sign of failure (SPEC 5.4). */
		{200, "{\"success\":true,\"data\":{\"sopId\":\"S-3\"}}", PROVIDER_SENT, "", NULL, "S-3", 0},
		{200, "{\"success\":false}", PROVIDER_PERMANENT, "", "success: false", NULL, 0},
		{200, "{\"success\":false,\"msg\":\"群不存在\",\"data\":{\"sopId\":\"S-4\"}}", PROVIDER_PERMANENT,
		 "", "群不存在", NULL, 0},
		{200, "{\"success\":false,\"message\":\"no such group\"}", PROVIDER_PERMANENT, "",
		 "no such group", NULL, 0},
		{200, "{\"error\":\"Bad Request\"}", PROVIDER_PERMANENT, "", "success: false", NULL, 0},
		{200, "{\"error\":\"Bad Request\",\"message\":\"groupInfos required\"}", PROVIDER_PERMANENT, "",
		 "groupInfos required", NULL, 0},
		/* An empty "error" says nothing went wrong. */
		{200, "{\"success\":true,\"error\":null,\"data\":{\"sopId\":\"S-5\"}}", PROVIDER_SENT, "",
		 NULL, "S-5", 0},
		{200, "{\"error\":\"\"}", PROVIDER_SENT, "", NULL, NULL, 0},
		{200, "{\"error\":false}", PROVIDER_SENT, "", NULL, NULL, 0},
		{500, "{\"success\":false}", PROVIDER_AMBIGUOUS, "", "HTTP 500", NULL, 0},
		{429, "{\"error\":\"Too Many Requests\"}", PROVIDER_TRANSIENT, "", "HTTP 429", NULL, 0},
		{400, "{\"success\":false}", PROVIDER_PERMANENT, "", "HTTP 400", NULL, 0},
		/* A code decides over success: code 0 is success. */
		{200, "{\"code\":0,\"success\":false}", PROVIDER_SENT, "0", NULL, NULL, 0},
		{200, "{\"code\":1003,\"msg\":\"请求时间与服务器时间相差过大\"}", PROVIDER_TRANSIENT, "1003",
		 "相差过大", NULL, 0},
		{200, "{\"code\":1003}", PROVIDER_TRANSIENT, "1003", "clock", NULL, 0},
		{400, "{\"code\":1003}", PROVIDER_TRANSIENT, "1003", NULL, NULL, 0},
		/* A refused sign is the channel's credentials: the channel is suspended (SPEC 5.11). */
		{200, "{\"code\":1002,\"msg\":\"签名校验未通过\"}", PROVIDER_PERMANENT, "1002", "签名", NULL, 1},
		{200, "{\"code\":1002}", PROVIDER_PERMANENT, "1002", "app_key", NULL, 1},
		{200, "{\"code\":1002,\"msg\":\"bad key secret-app-key\"}", PROVIDER_PERMANENT, "1002",
		 "sign rejected", NULL, 1},
		{401, "{\"code\":1002}", PROVIDER_PERMANENT, "1002", NULL, NULL, 1},
		/* Other codes are the SOP's, not the channel's. */
		{200, "{\"code\":40417,\"msg\":\"请求参数验证失败\"}", PROVIDER_PERMANENT, "40417", "参数", NULL,
		 0},
		{200, "{\"code\":40001,\"msg\":\"x\"}", PROVIDER_PERMANENT, "40001", "x", NULL, 0},
		{200, "{\"code\":1001}", PROVIDER_PERMANENT, "1001", NULL, NULL, 0},
		{200, "{\"code\":-1}", PROVIDER_PERMANENT, "-1", NULL, NULL, 0},
		{200, "{\"code\":\"500\",\"msg\":\"x\"}", PROVIDER_PERMANENT, "500", "x", NULL, 0},
		{200, "{\"code\":1,\"data\":{\"sopId\":\"S-1\"}}", PROVIDER_PERMANENT, "1", NULL, NULL, 0},
		/* The HTTP status, where the body carries no refusal (SPEC 5.10). */
		{500, "{}", PROVIDER_AMBIGUOUS, "", "HTTP 500", NULL, 0},
		{502, "{}", PROVIDER_AMBIGUOUS, "", "HTTP 502", NULL, 0},
		{504, "{\"code\":0}", PROVIDER_AMBIGUOUS, "", "HTTP 504", NULL, 0},
		{503, "{\"code\":0,\"data\":{\"sopId\":\"S-1\"}}", PROVIDER_TRANSIENT, "", "HTTP 503", NULL, 0},
		{429, "{}", PROVIDER_TRANSIENT, "", "HTTP 429", NULL, 0},
		{408, "{}", PROVIDER_TRANSIENT, "", "HTTP 408", NULL, 0},
		{400, "{}", PROVIDER_PERMANENT, "", "HTTP 400", NULL, 0},
		{404, "{}", PROVIDER_PERMANENT, "", "HTTP 404", NULL, 0},
		{201, "{}", PROVIDER_PERMANENT, "", "HTTP 201", NULL, 0},
		/* A refusal with a status that says nothing was done: try again (SPEC 5.10). */
		{429, "{\"code\":40001,\"msg\":\"slow down\"}", PROVIDER_TRANSIENT, "40001", "slow down", NULL,
		 0},
		{503, "{\"code\":40417}", PROVIDER_TRANSIENT, "40417", NULL, NULL, 0},
		/* Other 5xx no longer force a retry: the refusal in the body decides. */
		{502, "{\"code\":1002}", PROVIDER_PERMANENT, "1002", NULL, NULL, 1},
		{500, "{\"code\":40417,\"msg\":\"x\"}", PROVIDER_PERMANENT, "40417", "x", NULL, 0},
	};

	check_verdicts(cases, sizeof cases / sizeof cases[0]);
}

static void
test_judge_garbage(void)
{
	static const char *const bodies[] = {
		"", "null", "[]", "{", "<html>", "[{}]", "0", "\"ok\"", "{}x", "{}{}",
		"{\"code\":null}", "{\"code\":\"abc\"}", "{\"code\":\"\"}", "{\"code\":1.5}",
		"{\"code\":true}", "{\"code\":{}}", "{\"code\":1e300}",
	};
	struct verdict_case c[3];
	char *big = malloc(BIG + 3);
	size_t i;

	/* The SOP may exist behind an answer that cannot be read: ambiguous (SPEC 5.10). */
	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		struct verdict_case a = {200, bodies[i], PROVIDER_AMBIGUOUS, "", UNREADABLE, NULL, 0};
		struct verdict_case b = {500, bodies[i], PROVIDER_AMBIGUOUS, "", "HTTP 500", NULL, 0};
		struct verdict_case d = {404, bodies[i], PROVIDER_PERMANENT, "", "HTTP 404", NULL, 0};

		c[0] = a;
		c[1] = b;
		c[2] = d;
		check_verdicts(c, 3);
	}
	/* 1 MB: a JSON string, raw bytes, nesting. */
	big[0] = '"';
	memset(big + 1, 'a', BIG);
	big[BIG + 1] = '"';
	big[BIG + 2] = '\0';
	c[0] = (struct verdict_case){200, big, PROVIDER_AMBIGUOUS, "", UNREADABLE, NULL, 0};
	c[1] = (struct verdict_case){200, big + 1, PROVIDER_AMBIGUOUS, "", UNREADABLE, NULL, 0};
	c[2] = (struct verdict_case){503, big, PROVIDER_TRANSIENT, "", "HTTP 503", NULL, 0};
	big[BIG + 1] = '\0';
	check_verdicts(&c[1], 1);
	big[BIG + 1] = '"';
	check_verdicts(c, 1);
	check_verdicts(&c[2], 1);
	memset(big, '{', BIG);
	big[BIG] = '\0';
	c[0].body = big;
	check_verdicts(c, 1);
	/* A huge msg is judged and cut short. */
	memcpy(big, "{\"code\":1002,\"msg\":\"", 20);
	memset(big + 20, 'x', BIG - 20);
	memcpy(big + BIG - 2, "\"}", 3);
	c[0] = (struct verdict_case){200, big, PROVIDER_PERMANENT, "1002", "xxx", NULL, 1};
	check_verdicts(c, 1);
	{
		struct channel ch = chan("{}");
		struct provider_item it = {0};

		judge(&ch, 200, big, strlen(big), &it, 1);
		T_CHECK(it.message_text && strlen(it.message_text) < 4096);
		for (i = 20; i + 3 < BIG; i += 2)
			memcpy(big + i, "\xCC\x81", 2);
		judge(&ch, 200, big, strlen(big), &it, 1);
		T_EQ_STR(it.code, "1002");
		T_CHECK(it.message_text && strlen(it.message_text) < 4096);
		judge(&ch, 200, NULL, 0, &it, 1);
		T_EQ_INT(it.outcome, PROVIDER_AMBIGUOUS);
		T_EQ_STR(it.message_text, UNREADABLE " (no JSON object with an integer code): it may have "
		         "been accepted");
		T_EQ_INT(it.channel_fault, 0);
		items_reset(&it, 1);
		cJSON_Delete(ch.keys);
	}
	free(big);
}

int
main(void)
{
	T_RUN(test_ops);
	T_RUN(test_sign_known_answer);
	T_RUN(test_schedule);
	T_RUN(test_check_channel);
	T_RUN(test_check_recipient_message);
	T_RUN(test_build_day1);
	T_RUN(test_build_day3);
	T_RUN(test_build_title_mode);
	T_RUN(test_build_rejects);
	T_RUN(test_judge_codes);
	T_RUN(test_judge_garbage);
	return t_report();
}
