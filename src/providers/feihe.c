/*
 * feihe: Feihe's wisdom-api wrapper around the WeChat official-account customer-service
 * message (seed 004, providers.md §5). One openId per call, sent at once; no de-duplication
 * key exists, so a resend after a crash is never safe (dedups = 0) and Feihe returns no
 * message id.
 *
 * Verdicts: success only when the outer code is 200 AND data.errcode is 0 (an answer with
 * code 200 can still carry a WeChat error). A code given as a string of decimal digits is
 * read as that number, because the document types data.errcode as "string"; any other
 * shape is an unreadable answer: never taken as sent, and ambiguous (SPEC 5.10), since the
 * message may have gone out before the wrapper failed to say so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "provider.h"
#include "sop.h"
#include "tz.h"
#include "util.h"

/* WeChat's daily quota resets at midnight Beijing time. */
#define FEIHE_QUOTA_ZONE "Asia/Shanghai"
#define FEIHE_PATH "/wisdom-api/weixin/v1/sendCustomerMessage"
#define FEIHE_SYSTEM_DEFAULT "NEW_MEMBER"

/* WeChat answers 45002 above this (providers.md §5.2); refusing earlier gives a clear reason. */
#define FEIHE_TEXT_MAX 2048


/* WeChat's daily quota resets at midnight China time; Asia/Shanghai has no DST. */

/* The verdict read from one answer; text points into the parsed answer or a literal. */
struct feihe_answer {
	enum provider_outcome outcome;
	char code[32];
	const char *text;
	int64_t defer_until_ms;       /* PROVIDER_DEFERRED only */
};

static const struct config_key feihe_keys[] = {
	{"system", CONFIG_STRING, 0},
	{NULL, CONFIG_STRING, 0},
};

static const char *
feihe_system(const struct channel *ch)
{
	const char *s = config_str(ch, "system");

	return s != NULL ? s : FEIHE_SYSTEM_DEFAULT;
}

static int
feihe_check_channel(const struct channel *ch, char **err)
{
	const char *s = config_str(ch, "system");

	if (s == NULL)
		return 0;
	if (s[0] == '\0')
		return util_err(err, "system: must not be empty");
	/* It becomes a header line. */
	if (provider_has_control(s))
		return util_err(err, "system: must not contain control characters");
	return 0;
}

static int
feihe_check_recipient(const cJSON *recipient, char **err)
{
	if (!cJSON_IsObject(recipient) || provider_json_str(recipient, "id") == NULL)
		return util_err(err, "a feihe recipient needs a non-empty string \"id\" (the WeChat "
		                "openId)");
	return 0;
}

/*
 * Sets *text to the message's text; with rendered, enforces WeChat's size limit too. *text is
 * NULL on failure: util_err lives in another file, so at -O3 the compiler cannot see that its
 * -1 reaches the caller's check, and an unset *text looked used uninitialized.
 */
static int
feihe_message_text(const cJSON *message, int rendered, const char **text, char **err)
{
	const cJSON *type;
	size_t len;

	*text = NULL;
	type = cJSON_GetObjectItemCaseSensitive(message, "type");
	if (!cJSON_IsObject(message) || !cJSON_IsString(type) ||
	    strcmp(type->valuestring, "text") != 0)
		return util_err(err, "a feihe message must be {\"type\": \"text\", \"text\": ...}");
	if ((*text = provider_json_str(message, "text")) == NULL)
		return util_err(err, "\"text\" must be a non-empty string");
	if (rendered && (len = strlen(*text)) > FEIHE_TEXT_MAX)
		return util_err(err, "text is %zu bytes; WeChat customer-service "
		                "text is limited to %d bytes (errcode 45002)", len, FEIHE_TEXT_MAX);
	return 0;
}

static int
feihe_check_message(const cJSON *message, int rendered, char **err)
{
	const char *text;

	return feihe_message_text(message, rendered, &text, err);
}

static int
feihe_build(void *state, const struct channel *ch, struct provider_item *items, size_t n,
            int64_t now_ms, struct provider_request *req, char **err)
{
	struct buf url = {0};
	cJSON *body = NULL;
	char *json = NULL;
	const char *text, *open_id;
	int rc = -1;

	(void)state;
	(void)now_ms;
	if (n != 1) {
		util_err(err, "feihe sends one message per request");
		goto out;
	}
	if (feihe_message_text(items[0].message, 1, &text, err) == -1)
		goto out;
	open_id = items[0].recipient_id;
	if (open_id == NULL || open_id[0] == '\0') {
		util_err(err, "recipient has no id (openId)");
		goto out;
	}
	if ((body = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(body, "openId", open_id) == NULL ||
	    cJSON_AddStringToObject(body, "msg", text) == NULL ||
	    (json = cJSON_PrintUnformatted(body)) == NULL ||
	    (req->body = strdup(json)) == NULL ||
	    buf_printf(&url, "%s%s", ch->base_url, FEIHE_PATH) != 0 ||
	    provider_request_header(req, "system: %s", feihe_system(ch)) == -1 ||
	    provider_request_header(req, "Content-Type: application/json") == -1) {
		util_err(err, "out of memory");
		goto out;
	}
	req->body_len = strlen(req->body);
	req->url = url.data;
	url.data = NULL;
	rc = 0;
out:
	if (rc == -1)
		provider_request_clear(req);
	buf_free(&url);
	cJSON_free(json);
	cJSON_Delete(body);
	return rc;
}

/*
 * The next 00:00 in WeChat's quota zone, Asia/Shanghai, strictly after now_ms: zone math only
 * through tz and sop. Without the zone data (no tzdata), a day from now is a safe wait.
 */
static int64_t
feihe_next_quota_day(int64_t now_ms)
{
	struct tz *z = tz_load(FEIHE_QUOTA_ZONE, NULL);
	int64_t next = now_ms + DAY_MS;

	if (z) {
		next = sop_day_start_ms(z, sop_local_day(z, now_ms) + 1);
		tz_free(z);
	}
	return next;
}

/*
 * WeChat's errcodes (providers.md "Implications -> Feihe / WeChat"). Not listed: permanent.
 * Token errors are the wrapper's own access_token, which we cannot refresh: retried, and they
 * count toward the channel's suspend_after. 45015/45047: the 48-hour window is closed or used
 * up; only the user can reopen it, so no timer helps.
 */
static const struct provider_code feihe_codes[] = {
	{0, PROVIDER_SENT, 0, 0, "ok"},
	{-1, PROVIDER_TRANSIENT, 0, 0, "system busy"},
	{40001, PROVIDER_TRANSIENT, 0, 0, "AppSecret wrong or access_token invalid"},
	{40014, PROVIDER_TRANSIENT, 0, 0, "access_token not valid"},
	{42001, PROVIDER_TRANSIENT, 0, 0, "access_token expired"},
	{45011, PROVIDER_DEFERRED, 0, MINUTE_MS, "per-minute quota"},
	{45009, PROVIDER_DEFERRED, 0, 0, "daily quota: until midnight Beijing time"},
	{40003, PROVIDER_PERMANENT, 0, 0, "invalid openId"},
	{43004, PROVIDER_PERMANENT, 0, 0, "the user does not follow"},
	{45002, PROVIDER_PERMANENT, 0, 0, "content too long"},
	{45015, PROVIDER_PERMANENT, 0, 0, "48-hour window closed"},
	{45047, PROVIDER_PERMANENT, 0, 0, "48-hour window used up"},
	{48001, PROVIDER_PERMANENT, 0, 0, "api unauthorized"},
	{0, PROVIDER_PERMANENT, 0, 0, NULL},
};

static void
feihe_classify(int64_t errcode, int64_t now_ms, struct feihe_answer *a)
{
	const struct provider_code *c = provider_code_find(feihe_codes, errcode);

	a->outcome = c ? c->outcome : PROVIDER_PERMANENT;
	if (a->outcome == PROVIDER_DEFERRED)
		a->defer_until_ms = c->defer_ms ? now_ms + c->defer_ms : feihe_next_quota_day(now_ms);
}

static void
feihe_read_answer(const cJSON *root, int64_t now_ms, struct feihe_answer *a)
{
	const cJSON *data;
	const char *msg, *errmsg;
	int64_t code, errcode;

	/* An answer that cannot be read may stand for a message WeChat accepted. */
	a->outcome = PROVIDER_AMBIGUOUS;
	if (!cJSON_IsObject(root)) {
		a->text = "unreadable answer: not a JSON object";
		return;
	}
	if (provider_json_code(cJSON_GetObjectItemCaseSensitive(root, "code"), &code) == -1) {
		a->text = "unreadable answer: no integer \"code\"";
		return;
	}
	msg = provider_json_str(root, "msg");
	if (code != 200) {
		/* The wrapper's own codes are undocumented (providers.md: retry with a cap); a
		   5xx of its own may come after it passed the message on. */
		snprintf(a->code, sizeof a->code, "%lld", (long long)code);
		a->outcome = code >= 500 && code <= 599 ? PROVIDER_AMBIGUOUS : PROVIDER_TRANSIENT;
		a->text = msg;
		return;
	}
	data = cJSON_GetObjectItemCaseSensitive(root, "data");
	if (!cJSON_IsObject(data) ||
	    provider_json_code(cJSON_GetObjectItemCaseSensitive(data, "errcode"), &errcode) == -1) {
		a->text = "unreadable answer: no integer \"data.errcode\"";
		return;
	}
	snprintf(a->code, sizeof a->code, "%lld", (long long)errcode);
	errmsg = provider_json_str(data, "errmsg");
	a->text = errmsg != NULL ? errmsg : msg;
	feihe_classify(errcode, now_ms, a);
}

static void
feihe_judge(void *state, const struct channel *ch, long http_status, const char *body,
            size_t body_len, struct provider_item *items, size_t n, int64_t now_ms)
{
	struct feihe_answer a;
	cJSON *root = NULL;
	size_t i;

	(void)state;
	(void)ch;
	if (provider_judge_http(http_status, items, n))
		return;
	memset(&a, 0, sizeof a);
	root = provider_parse_answer(body, body_len);
	feihe_read_answer(root, now_ms, &a);
	for (i = 0; i < n; i++)
		provider_verdict_answer(&items[i], a.outcome, a.code, a.text, a.defer_until_ms, 0);
	cJSON_Delete(root);
}

const struct provider_ops provider_feihe = {
	.name = "feihe",
	.batching = PROVIDER_SINGLE,
	.dedups = 0,
	.keys = feihe_keys,
	.check_channel = feihe_check_channel,
	.check_recipient = feihe_check_recipient,
	.check_message = feihe_check_message,
	.build = feihe_build,
	.judge = feihe_judge,
};
