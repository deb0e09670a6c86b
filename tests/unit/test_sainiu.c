/*
 * test_sainiu.c: the SaiNiu provider module: the 7-day admission rule with exact times,
 * the HttpSign known answer (through sainiu_sign, the very function build signs with), the
 * exact form body, and every verdict.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "config.h"
#include "provider.h"
#include "providers/sainiu.h"
#include "t.h"

/* 2026-11-23T10:00:00+08:00 */
#define NOW_MS INT64_C(1795399200000)
#define MIN_MS INT64_C(60000)
#define H_MS (60 * MIN_MS)
#define D_MS (24 * H_MS)
#define W_MS (7 * D_MS)
#define LEAD_MS (2 * H_MS + 30 * MIN_MS)     /* the default lead */
#define EARLIEST_MS (2 * H_MS + 5 * MIN_MS)  /* the 2 h minimum plus the 5 minute margin */

static const struct provider_ops *ops = &provider_sainiu;
static char base_url[] = "http://127.0.0.1:3030";

#include "provider_t.h"

#define make_channel(json) provider_channel(base_url, base_url, json)
/* A form value: any byte outside the unreserved set must arrive encoded, in uppercase hex. */
#define form_decode(s, len) pct_decode(s, len, PCT_UPPER | PCT_UNRESERVED)

static void
test_registry(void)
{
	T_CHECK(provider_find("sainiu") == ops);
	T_EQ_INT(ops->batching, PROVIDER_SINGLE);
	T_EQ_INT(ops->dedups, 0);
	T_EQ_STR(ops->keys[0].name, "sign_key");
	T_EQ_INT(ops->keys[0].type, CONFIG_STRING);
	T_EQ_INT(ops->keys[0].required, 0);
	T_EQ_STR(ops->keys[1].name, "lead");
	T_EQ_INT(ops->keys[1].type, CONFIG_DURATION);
	T_EQ_INT(ops->keys[1].required, 0);
	T_CHECK(ops->keys[2].name == NULL);
	T_CHECK(ops->schedule != NULL && ops->limit_account != NULL && ops->admit != NULL);
	T_CHECK(ops->open == NULL);
}

static void
test_check_channel(void)
{
	static const struct {
		const char *keys;
		const char *err_prefix;
	} cases[] = {
		{"{}", NULL},
		{"{\"lead\":7800000}", NULL},                 /* 2h10m */
		{"{\"lead\":7200000}", NULL},                 /* 2h: SPEC's least */
		{"{\"lead\":86400000,\"sign_key\":\"123ABC\"}", NULL},
		{"{\"lead\":7199999}", "lead"},
		{"{\"lead\":0}", "lead"},
		{"{\"sign_key\":\"\"}", "sign_key"},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct channel ch = make_channel(cases[i].keys);
		char *err = NULL;

		T_EQ_INT(ops->check_channel(&ch, &err), cases[i].err_prefix ? -1 : 0);
		if (cases[i].err_prefix)
			T_CHECK(err != NULL &&
			        strncmp(err, cases[i].err_prefix, strlen(cases[i].err_prefix)) == 0);
		else
			T_CHECK(err == NULL);
		free(err);
		cJSON_Delete(ch.keys);
	}
}

static void
test_checks(void)
{
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"tb123456\"}"), 0);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":\"\"}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{\"id\":1}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "{}"), -1);
	T_EQ_INT(check_json(ops->check_recipient, "null"), -1);

	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"活动通知\"}", 1), 0);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"$userNick$ 你好\"}", 0), 0);
	T_EQ_INT(check_msg("{\"type\":\"text\",\"text\":\"\"}", 1), -1);
	T_EQ_INT(check_msg("{\"type\":\"text\"}", 1), -1);
	T_EQ_INT(check_msg("{\"type\":\"custom\",\"text\":\"x\"}", 1), -1);
	T_EQ_INT(check_msg("{\"text\":\"x\"}", 1), -1);
	T_EQ_INT(check_msg("\"x\"", 1), -1);
}

static void
test_schedule(void)
{
	struct channel dflt = make_channel("{}"), three = make_channel("{\"lead\":10800000}");
	int64_t next = 0, expires = 0;
	int64_t due = NOW_MS + 5 * D_MS;

	/* The call expires once the earliest send time it could carry is expire_after late. */
	ops->schedule(&dflt, due, NOW_MS - D_MS, D_MS, &next, &expires);
	T_EQ_INT(next, due - LEAD_MS);
	T_EQ_INT(expires, due + D_MS - EARLIEST_MS);
	ops->schedule(&three, due, 0, 90 * MIN_MS, &next, &expires);
	T_EQ_INT(next, due - 3 * H_MS);
	T_EQ_INT(expires, due + 90 * MIN_MS - EARLIEST_MS);
	/* However short expire_after is, a call made on time is before its expiry. */
	ops->schedule(&dflt, due, 0, 1, &next, &expires);
	T_CHECK(next < expires);
	cJSON_Delete(dflt.keys);
	cJSON_Delete(three.keys);
}

/*
 * SPEC §5.2 with expire_after, as the scheduler applies the two: a claim at now expires the
 * delivery when expires <= now (src/store/sqlite/claim.c), else admit picks the send time. Whenever the
 * call is made, late or on time, a send time that goes out is before due + expire_after, and
 * a delivery is expired only when the earliest send time the provider takes is not.
 */
static void
test_late_call_within_expiry(void)
{
	static const int64_t expire_after[] = {1, MIN_MS, H_MS, EARLIEST_MS, 3 * H_MS, D_MS};
	static const char *const keys[] = {"{}", "{\"lead\":7800000}", "{\"lead\":86400000}"};
	const int64_t due = NOW_MS + 3 * D_MS;
	size_t e, k;
	int64_t now;

	for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		struct channel ch = make_channel(keys[k]);

		for (e = 0; e < sizeof expire_after / sizeof expire_after[0]; e++) {
			int64_t next = 0, expires = 0, ea = expire_after[e];

			ops->schedule(&ch, due, 0, ea, &next, &expires);
			for (now = next; now <= due + ea + MIN_MS; now += MIN_MS / 2) {
				struct provider_item item;
				int64_t send_at = -1, defer_until = -1;

				memset(&item, 0, sizeof item);
				item.recipient_id = "tb123456";
				item.due_at_ms = due;
				T_EQ_INT(ops->admit(&ch, &item, NULL, now, &send_at, &defer_until),
				         PROVIDER_ADMIT);
				if (now < expires)
					T_CHECK(send_at < due + ea);
				else
					T_CHECK(now + EARLIEST_MS >= due + ea);
				if (t_current_failed) {
					fprintf(stderr, "  lead %s, expire_after %lld ms, now due%+lld ms\n",
					        keys[k], (long long)ea, (long long)(now - due));
					break;
				}
			}
		}
		cJSON_Delete(ch.keys);
	}
}

static void
test_limit_account(void)
{
	struct provider_item item;
	cJSON *r = cJSON_Parse("{\"id\":\"tb123456\"}");

	memset(&item, 0, sizeof item);
	item.recipient = r;
	item.recipient_id = "tb123456";
	T_EQ_STR(ops->limit_account(&item), "tb123456");
	item.recipient = NULL;
	T_EQ_STR(ops->limit_account(&item), "tb123456");
	cJSON_Delete(r);
}

/* SPEC §5.3, case by case, with exact times. All times are relative to NOW_MS. */
static void
test_admit(void)
{
	static const struct {
		const char *what;
		const char *keys;
		int64_t due;                 /* relative */
		int64_t last_call;           /* relative; 0 = never */
		int64_t last_send;           /* relative; 0 = never */
		int reserved;
		enum provider_admit want;
		int64_t send_at;             /* relative */
		int64_t defer_until;         /* relative; DEFER only */
	} cases[] = {
		{"first ever, due exactly one lead away", "{}",
		 LEAD_MS, 0, 0, 0, PROVIDER_ADMIT, LEAD_MS, 0},
		{"first ever, due in 10 days: defer to due - lead", "{}",
		 10 * D_MS, 0, 0, 0, PROVIDER_DEFER, 10 * D_MS, 10 * D_MS - LEAD_MS},
		{"first ever, due one ms more than a lead away", "{}",
		 LEAD_MS + 1, 0, 0, 0, PROVIDER_DEFER, LEAD_MS + 1, 1},
		{"a call for the account is in flight", "{}",
		 LEAD_MS, 0, 0, 1, PROVIDER_WAIT, 0, 0},
		{"in flight wins even over a deferral", "{}",
		 10 * D_MS, -D_MS, -D_MS + LEAD_MS, 1, PROVIDER_WAIT, 0, 0},
		{"due in 1 h: the earliest send time the provider accepts", "{}",
		 H_MS, 0, 0, 0, PROVIDER_ADMIT, EARLIEST_MS, 0},
		{"due 2h05m away: exactly the earliest", "{}",
		 EARLIEST_MS, 0, 0, 0, PROVIDER_ADMIT, EARLIEST_MS, 0},
		{"due already passed", "{}",
		 -10 * MIN_MS, 0, 0, 0, PROVIDER_ADMIT, EARLIEST_MS, 0},
		{"last call 3 days ago: wait out the week, send one lead later", "{}",
		 LEAD_MS, -3 * D_MS, -3 * D_MS + LEAD_MS, 0,
		 PROVIDER_DEFER, 4 * D_MS + LEAD_MS, 4 * D_MS},
		{"last call 3 days ago but due far beyond the week", "{}",
		 30 * D_MS, -3 * D_MS, -3 * D_MS + LEAD_MS, 0,
		 PROVIDER_DEFER, 30 * D_MS, 30 * D_MS - LEAD_MS},
		{"last sendtime 6 days before due: one more day", "{}",
		 LEAD_MS, -6 * D_MS, -6 * D_MS + LEAD_MS, 0,
		 PROVIDER_DEFER, D_MS + LEAD_MS, D_MS},
		{"last sendtime 6 days after due: past that one's week", "{}",
		 LEAD_MS, -H_MS, 6 * D_MS + LEAD_MS, 0,
		 PROVIDER_DEFER, 13 * D_MS + LEAD_MS, 13 * D_MS},
		{"last call exactly 7 days ago", "{}",
		 LEAD_MS, -W_MS, -W_MS + LEAD_MS, 0, PROVIDER_ADMIT, LEAD_MS, 0},
		{"last call 7 days less 1 ms ago", "{}",
		 LEAD_MS, -W_MS + 1, -W_MS + 1 + LEAD_MS, 0, PROVIDER_DEFER, LEAD_MS + 1, 1},
		{"late and long ago", "{}",
		 H_MS, -30 * D_MS, -30 * D_MS + LEAD_MS, 0, PROVIDER_ADMIT, EARLIEST_MS, 0},
		{"the call week ends after due - lead: send 2h05m after that call", "{}",
		 2 * D_MS, -H_MS, H_MS, 0,
		 PROVIDER_DEFER, W_MS + H_MS + 5 * MIN_MS, W_MS - H_MS},
		{"only a send time on record (no call)", "{}",
		 LEAD_MS, 0, -D_MS, 0, PROVIDER_DEFER, 6 * D_MS, 6 * D_MS - LEAD_MS},
		/* The two weeks apart: a call's week binds even when the send time it set is long
		   past (a call Herald counts though no send time came back of it), and a send
		   time's week binds even when its call is over a week old. */
		{"only the call week binds: called 1 day ago, its send time 20 days old", "{}",
		 LEAD_MS, -D_MS, -20 * D_MS, 0,
		 PROVIDER_DEFER, 6 * D_MS + EARLIEST_MS, 6 * D_MS},
		{"only the call week binds, due in 3 days", "{}",
		 3 * D_MS, -D_MS, -20 * D_MS, 0,
		 PROVIDER_DEFER, 6 * D_MS + EARLIEST_MS, 6 * D_MS},
		{"only the call week binds, due just after it ends: sent at due", "{}",
		 6 * D_MS + 3 * H_MS, -D_MS, -20 * D_MS, 0,
		 PROVIDER_DEFER, 6 * D_MS + 3 * H_MS, 6 * D_MS + 3 * H_MS - LEAD_MS},
		{"the call week over by 1 ms, the send time old: admitted", "{}",
		 LEAD_MS, -W_MS, -20 * D_MS, 0, PROVIDER_ADMIT, LEAD_MS, 0},
		{"only the sendtime week binds: called 8 days ago for 3 days ago", "{}",
		 LEAD_MS, -8 * D_MS, -3 * D_MS, 0,
		 PROVIDER_DEFER, 4 * D_MS, 4 * D_MS - LEAD_MS},
		{"only the sendtime week binds, due in 1 h: sent as that week ends", "{}",
		 H_MS, -8 * D_MS, -W_MS + 2 * H_MS + 10 * MIN_MS, 0,
		 PROVIDER_ADMIT, 2 * H_MS + 10 * MIN_MS, 0},
		{"a 3 h lead", "{\"lead\":10800000}",
		 10 * D_MS, 0, 0, 0, PROVIDER_DEFER, 10 * D_MS, 10 * D_MS - 3 * H_MS},
		{"a 3 h lead, due in 2h30m: now, at the due time", "{\"lead\":10800000}",
		 LEAD_MS, 0, 0, 0, PROVIDER_ADMIT, LEAD_MS, 0},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct channel ch = make_channel(cases[i].keys);
		struct provider_item item;
		struct provider_limit limit;
		int64_t send_at = -1, defer_until = -1;
		enum provider_admit got;
		int failed_before = t_failed_checks;

		memset(&item, 0, sizeof item);
		item.recipient_id = "tb123456";
		item.due_at_ms = NOW_MS + cases[i].due;
		limit.last_call_ms = cases[i].last_call ? NOW_MS + cases[i].last_call : 0;
		limit.last_send_at_ms = cases[i].last_send ? NOW_MS + cases[i].last_send : 0;
		limit.reserved = cases[i].reserved;
		got = ops->admit(&ch, &item, &limit, NOW_MS, &send_at, &defer_until);
		T_EQ_INT(got, cases[i].want);
		if (got == cases[i].want && got != PROVIDER_WAIT)
			T_EQ_INT(send_at - NOW_MS, cases[i].send_at);
		if (got == cases[i].want && got == PROVIDER_DEFER)
			T_EQ_INT(defer_until - NOW_MS, cases[i].defer_until);
		/* Whatever is admitted is never inside the provider's 2 h. */
		if (got == PROVIDER_ADMIT)
			T_CHECK(send_at >= NOW_MS + 2 * H_MS);
		if (got == PROVIDER_DEFER)
			T_CHECK(send_at >= defer_until + 2 * H_MS);
		if (t_failed_checks != failed_before)
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].what);
		cJSON_Delete(ch.keys);
	}
}

/* No limit record at all reads as "never". */
static void
test_admit_no_limit(void)
{
	struct channel ch = make_channel("{}");
	struct provider_item item;
	int64_t send_at = 0, defer_until = 0;

	memset(&item, 0, sizeof item);
	item.due_at_ms = NOW_MS + 3 * D_MS;
	T_EQ_INT(ops->admit(&ch, &item, NULL, NOW_MS, &send_at, &defer_until), PROVIDER_DEFER);
	T_EQ_INT(defer_until, NOW_MS + 3 * D_MS - LEAD_MS);
	T_EQ_INT(send_at, NOW_MS + 3 * D_MS);
	cJSON_Delete(ch.keys);
}

/* providers.md §1.3's known answer, through the function build signs with. */
static void
test_httpsign_known_answer(void)
{
	char sign[33];

	T_EQ_INT(sainiu_sign("123ABC", "SendMessages", "{\"userNick\":\"tb123456\"}", "1731682536947",
	                     sign), 0);
	T_EQ_STR(sign, "d5c910b3e70ae1a31c00763c9f1f48c8");
}

/* Splits a form body into an object of decoded values, checking the field order. */
static cJSON *
form_parse(const char *body, const char *const *names)
{
	cJSON *form = cJSON_CreateObject();
	const char *p = body, *amp, *eq;
	char *value;
	size_t i;

	for (i = 0; names[i] != NULL; i++) {
		amp = strchr(p, '&');
		if (amp == NULL)
			amp = p + strlen(p);
		eq = memchr(p, '=', (size_t)(amp - p));
		T_CHECK(eq != NULL && (size_t)(eq - p) == strlen(names[i]) &&
		        strncmp(p, names[i], strlen(names[i])) == 0);
		if (eq == NULL)
			break;
		value = form_decode(eq + 1, (size_t)(amp - eq - 1));
		cJSON_AddStringToObject(form, names[i], value);
		free(value);
		T_CHECK(names[i + 1] == NULL ? *amp == '\0' : *amp == '&');
		if (*amp == '\0')
			break;
		p = amp + 1;
	}
	return form;
}

/* Builds one item admitted for send_at, expiring at expires_at (0: never); *sent_at gets the
   send time the build settled on (it may move a late one), *outcome its verdict. */
static int
build_late(const struct channel *ch, const char *message, int64_t send_at, int64_t expires_at,
           struct provider_request *req, char **err, int64_t *sent_at,
           enum provider_outcome *outcome)
{
	struct provider_item item;
	cJSON *r = cJSON_Parse("{\"id\":\"tb123456\"}"), *m = cJSON_Parse(message);
	int rc;

	memset(&item, 0, sizeof item);
	memset(req, 0, sizeof *req);
	item.recipient = r;
	item.recipient_id = "tb123456";
	item.message = m;
	item.due_at_ms = send_at;
	item.send_at_ms = send_at;
	item.expires_at_ms = expires_at;
	item.outcome = PROVIDER_PERMANENT;
	rc = ops->build(NULL, ch, &item, 1, NOW_MS, req, err);
	*sent_at = item.send_at_ms;
	*outcome = item.outcome;
	free(item.message_text);
	cJSON_Delete(r);
	cJSON_Delete(m);
	return rc;
}

static int
build_one(const struct channel *ch, const char *message, int64_t send_at,
          struct provider_request *req, char **err)
{
	struct provider_item item;
	cJSON *r = cJSON_Parse("{\"id\":\"tb123456\"}"), *m = cJSON_Parse(message);
	int rc;

	memset(&item, 0, sizeof item);
	memset(req, 0, sizeof *req);
	item.recipient = r;
	item.recipient_id = "tb123456";
	item.message = m;
	item.due_at_ms = send_at;
	item.send_at_ms = send_at;
	rc = ops->build(NULL, ch, &item, 1, NOW_MS, req, err);
	cJSON_Delete(r);
	cJSON_Delete(m);
	return rc;
}

static void
test_build_unsigned(void)
{
	static const char *const names[] = {"post", "data", NULL};
	struct channel ch = make_channel("{}");
	struct provider_request req;
	cJSON *form, *data;
	char *err = NULL;

	T_EQ_INT(build_one(&ch, "{\"type\":\"text\",\"text\":\"活动通知 & $userNick$=+\"}",
	                   NOW_MS + LEAD_MS, &req, &err), 0);
	T_CHECK(err == NULL);
	T_EQ_STR(req.url, "http://127.0.0.1:3030/SaiNiuApi/Api");
	T_EQ_INT(req.n_headers, 1);
	T_EQ_STR(req.headers[0], "Content-Type: application/x-www-form-urlencoded");
	T_EQ_INT(req.body_len, strlen(req.body));
	T_CHECK(strncmp(req.body, "post=SendCustomerServiceUserGroup&data=%7B%22userNick%22", 56) == 0);
	form = form_parse(req.body, names);
	T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "post")),
	         "SendCustomerServiceUserGroup");
	T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "data")),
	         "{\"userNick\":\"tb123456\",\"text\":\"活动通知 & $userNick$=+\","
	         "\"sendtime\":\"1795408200000\"}");
	data = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "data")));
	T_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(data, "sendtime")));
	cJSON_Delete(data);
	cJSON_Delete(form);
	provider_request_clear(&req);
	cJSON_Delete(ch.keys);
}

static void
test_build_signed(void)
{
	static const char *const names[] = {"post", "data", "time", "sign", NULL};
	struct channel ch = make_channel("{\"sign_key\":\"123ABC\"}");
	struct provider_request req;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char *err = NULL, *concat, hex[33], via_module[33];
	const char *data, *time_s;
	cJSON *form;

	T_EQ_INT(build_one(&ch, "{\"type\":\"text\",\"text\":\"你好\"}", NOW_MS + 3 * D_MS, &req, &err),
	         0);
	form = form_parse(req.body, names);
	data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "data"));
	time_s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "time"));
	T_EQ_STR(data, "{\"userNick\":\"tb123456\",\"text\":\"你好\",\"sendtime\":\"1795658400000\"}");
	T_EQ_STR(time_s, "1795399200000");
	/* The sign is over the unencoded data, computed here independently. */
	if (data != NULL && time_s != NULL) {
		concat = malloc(strlen(data) + 64);
		sprintf(concat, "123ABCSendCustomerServiceUserGroup%s%s", data, time_s);
		T_CHECK(EVP_Digest(concat, strlen(concat), md, &md_len, EVP_md5(), NULL) == 1);
		provider_hex(md, md_len, hex);
		T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(form, "sign")), hex);
		T_EQ_INT(sainiu_sign("123ABC", "SendCustomerServiceUserGroup", data, time_s, via_module), 0);
		T_EQ_STR(via_module, hex);
		free(concat);
	}
	/* The key itself never travels. */
	T_CHECK(strstr(req.body, "123ABC") == NULL && strstr(req.url, "123ABC") == NULL);
	cJSON_Delete(form);
	provider_request_clear(&req);
	cJSON_Delete(ch.keys);
}

static void
test_build_refuses(void)
{
	struct channel ch = make_channel("{}");
	struct provider_request req;
	struct provider_item items[2];
	enum provider_outcome outcome;
	int64_t sent_at;
	char *err = NULL;

	/*
	 * A send time inside the provider's 2 h (the call came later than the claim planned) is
	 * admitted again: moved to now + 2 h + the margin, the form carrying the new one...
	 */
	T_EQ_INT(build_late(&ch, "{\"type\":\"text\",\"text\":\"x\"}", NOW_MS + 2 * H_MS - 1,
	                    NOW_MS + H_MS, &req, &err, &sent_at, &outcome), 0);
	T_EQ_INT(sent_at, NOW_MS + 2 * H_MS + 5 * 60 * 1000);
	T_CHECK(req.body != NULL && strstr(req.body, "1795406700000") != NULL);
	provider_request_clear(&req);
	/* ...unless the delivery's expiry has passed: then it expires, and nothing is built. */
	T_EQ_INT(build_late(&ch, "{\"type\":\"text\",\"text\":\"x\"}", NOW_MS + 2 * H_MS - 1,
	                    NOW_MS - 1, &req, &err, &sent_at, &outcome), -1);
	T_EQ_INT(outcome, PROVIDER_EXPIRED);
	T_CHECK(err != NULL && strstr(err, "expired") != NULL);
	T_CHECK(req.url == NULL && req.body == NULL && req.n_headers == 0);
	free(err);
	err = NULL;
	/* A send time the provider takes is kept as it is. */
	T_EQ_INT(build_late(&ch, "{\"type\":\"text\",\"text\":\"x\"}", NOW_MS + 2 * H_MS,
	                    NOW_MS - 1, &req, &err, &sent_at, &outcome), 0);
	T_EQ_INT(sent_at, NOW_MS + 2 * H_MS);
	provider_request_clear(&req);
	T_EQ_INT(build_one(&ch, "{\"type\":\"text\"}", NOW_MS + D_MS, &req, &err), -1);
	T_CHECK(err != NULL);
	free(err);
	err = NULL;
	memset(items, 0, sizeof items);
	T_EQ_INT(ops->build(NULL, &ch, items, 2, NOW_MS, &req, &err), -1);
	free(err);
	cJSON_Delete(ch.keys);
}

static void
judge_len(long status, const char *body, size_t len, enum provider_outcome outcome,
          const char *code, const char *text, const char *message_id)
{
	struct channel ch = make_channel("{}");
	/* SaiNiu has no channel fault among its verdicts. */
	struct verdict want = {outcome, code, text, 0, message_id, 0};

	judge_want(NULL, &ch, "tb123456", status, body, len, NOW_MS, &want);
	cJSON_Delete(ch.keys);
}

static void
judge(long status, const char *body, enum provider_outcome outcome, const char *code,
      const char *text, const char *message_id)
{
	judge_len(status, body, body ? strlen(body) : 0, outcome, code, text, message_id);
}

static void
test_judge(void)
{
	const char *obj = "unreadable answer: not a JSON object";
	const char *nocode = "unreadable answer: no integer \"code\"";

	judge(200, "{\"code\":200,\"msg\":\"调用成功\",\"data\":\"sched-1\",\"passkey\":\"1731682536947\"}",
	      PROVIDER_SENT, "200", "调用成功", "sched-1");
	judge(200, "{\"code\":200,\"msg\":\"调用成功\",\"data\":123456789012}", PROVIDER_SENT, "200",
	      "调用成功", "123456789012");
	judge(200, "{\"code\":200,\"msg\":\"调用成功\",\"data\":{\"id\":1}}", PROVIDER_SENT, "200",
	      "调用成功", NULL);
	judge(200, "{\"code\":200,\"data\":\"\"}", PROVIDER_SENT, "200", NULL, NULL);
	judge(200, "{\"code\":\"200\",\"reg\":\"调用成功\"}", PROVIDER_SENT, "200", "调用成功", NULL);
	/* The seed's "reg" stands in for "msg". */
	judge(200, "{\"code\":400,\"data\":\"\",\"reg\":\"参数错误\"}", PROVIDER_PERMANENT, "400",
	      "参数错误", NULL);
	judge(200, "{\"code\":400,\"msg\":\"m\",\"reg\":\"r\"}", PROVIDER_PERMANENT, "400", "m", NULL);
	judge(200, "{\"code\":400,\"msg\":\"\",\"reg\":\"r\"}", PROVIDER_PERMANENT, "400", "r", NULL);
	judge(200, "{\"code\":501,\"msg\":\"未知\",\"passkey\":\"1\"}", PROVIDER_TRANSIENT, "501",
	      "未知", NULL);
	/* Inside 7 days, or anything else not 200/501: permanent, never retried. */
	judge(200, "{\"code\":201,\"msg\":\"间隔一周(7天)允许使用一次\"}", PROVIDER_PERMANENT, "201",
	      "间隔一周(7天)允许使用一次", NULL);
	judge(200, "{\"code\":500,\"msg\":\"x\"}", PROVIDER_PERMANENT, "500", "x", NULL);
	judge(200, "{\"code\":0}", PROVIDER_PERMANENT, "0", NULL, NULL);
	judge(200, "{\"code\":-1,\"msg\":\"失败\"}", PROVIDER_PERMANENT, "-1", "失败", NULL);
	/* Shapes: the code must be an integer (or a digit string). Anything else is unreadable,
	   and an unreadable answer may stand for an accepted notice: ambiguous (SPEC 5.10). */
	judge(200, "{\"code\":\"ok\"}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "{\"code\":200.5}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "{\"code\":null,\"msg\":\"调用成功\"}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "{\"code\":true}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "{\"msg\":\"调用成功\"}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "{\"code\":\" 200\"}", PROVIDER_AMBIGUOUS, "", nocode, NULL);
	judge(200, "", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge(200, "null", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge(200, "[]", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge(200, "{", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge(200, "<html>", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge(200, "{\"code\":200}{\"code\":200}", PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge_len(200, NULL, 0, PROVIDER_AMBIGUOUS, "", obj, NULL);
	judge_len(200, "{\"code\":200}", 11, PROVIDER_AMBIGUOUS, "", obj, NULL);
	/* The HTTP status first (SPEC 5.10): 429, 503 and 408 say nothing was done; 500, 502,
	   504 and other 5xx may have done it; other non-2xx are permanent. */
	judge(429, "{\"code\":200}", PROVIDER_TRANSIENT, "", "HTTP 429", NULL);
	judge(503, "{\"code\":200}", PROVIDER_TRANSIENT, "", "HTTP 503", NULL);
	judge(408, "", PROVIDER_TRANSIENT, "", "HTTP 408", NULL);
	judge(500, "{\"code\":200}", PROVIDER_AMBIGUOUS, "", "HTTP 500", NULL);
	judge(502, "<html>", PROVIDER_AMBIGUOUS, "", "HTTP 502", NULL);
	judge(504, "", PROVIDER_AMBIGUOUS, "", "HTTP 504", NULL);
	judge(501, "{\"code\":501}", PROVIDER_AMBIGUOUS, "", "HTTP 501", NULL);
	judge(400, "{\"code\":200}", PROVIDER_PERMANENT, "", "HTTP 400", NULL);
	judge(404, "{\"code\":200}", PROVIDER_PERMANENT, "", "HTTP 404", NULL);
}

static void
test_judge_huge(void)
{
	size_t n = 1 << 20;
	char *big = malloc(n + 64);
	struct channel ch = make_channel("{}");
	struct provider_item item;

	memset(big, '{', n);
	big[n] = '\0';
	judge(200, big, PROVIDER_AMBIGUOUS, "", "unreadable answer: not a JSON object", NULL);
	/* A megabyte-long data is no message id, and a megabyte-long msg is cut. */
	strcpy(big, "{\"code\":200,\"data\":\"");
	memset(big + 20, 'd', n - 20);
	strcpy(big + n, "\",\"msg\":\"ok\"}");
	judge(200, big, PROVIDER_SENT, "200", "ok", NULL);
	strcpy(big, "{\"code\":400,\"msg\":\"");
	memset(big + 19, 'm', n - 19);
	strcpy(big + n, "\"}");
	memset(&item, 0, sizeof item);
	ops->judge(NULL, &ch, 200, big, strlen(big), &item, 1, NOW_MS);
	T_EQ_INT(item.outcome, PROVIDER_PERMANENT);
	T_CHECK(item.message_text != NULL && strlen(item.message_text) <= 1024);
	free(item.message_text);
	free(item.message_id);
	free(big);
	cJSON_Delete(ch.keys);
}

int
main(void)
{
	T_RUN(test_registry);
	T_RUN(test_check_channel);
	T_RUN(test_checks);
	T_RUN(test_schedule);
	T_RUN(test_late_call_within_expiry);
	T_RUN(test_limit_account);
	T_RUN(test_admit);
	T_RUN(test_admit_no_limit);
	T_RUN(test_httpsign_known_answer);
	T_RUN(test_build_unsigned);
	T_RUN(test_build_signed);
	T_RUN(test_build_refuses);
	T_RUN(test_judge);
	T_RUN(test_judge_huge);
	return t_report();
}
