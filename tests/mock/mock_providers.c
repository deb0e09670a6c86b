/*
 * mock_providers.c: which provider a path belongs to, the Feihe and Tanmarket
 * checks, and every provider's answer. Tencent desk is checked in
 * mock_tencent.c, the form-encoded providers (APIUSB, SaiNiu) in mock_forms.c.
 *
 * A check reads the match key before anything can fail, so a scripted rule can
 * still find a request that breaks the document; after that it stops at the
 * first violation, in the order the provider would notice it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

/* Tanmarket's accepted clock skew for the timestamp header. */
#define TAN_SKEW_MS	(5 * 60 * 1000)

static const struct {
	const char	*name;
	const char	*suffix;
} providers[MOCK_NPROVIDERS] = {
	[MOCK_FEIHE] = { "feihe", "/wisdom-api/weixin/v1/sendCustomerMessage" },
	[MOCK_TENCENT] = { "tencent_desk", "/v4/desk_http_svc/send_msg" },
	[MOCK_APIUSB] = { "apiusb", "/api/platform" },
	[MOCK_SAINIU] = { "sainiu", "/SaiNiuApi/Api" },
	[MOCK_TANMARKET] = { "tanmarket", "/api/v3/groupSop/addGroupCorporate" },
	[MOCK_UNKNOWN] = { "unknown", NULL },
};

static const char *const verdicts[MOCK_NVERDICTS] = {
	"accepted", "rejected", "duplicate", "scripted"
};

enum mock_provider
mock_provider_route(const char *path)
{
	size_t plen = strlen(path), slen;
	int p;

	for (p = 0; p < MOCK_UNKNOWN; p++) {
		slen = strlen(providers[p].suffix);
		if (plen >= slen && strcmp(path + plen - slen, providers[p].suffix) == 0)
			return (enum mock_provider)p;
	}
	return MOCK_UNKNOWN;
}

const char *
mock_provider_name(enum mock_provider p)
{
	return providers[p].name;
}

int
mock_provider_lookup(const char *name)
{
	int p;

	for (p = 0; p < MOCK_NPROVIDERS; p++)
		if (strcmp(providers[p].name, name) == 0)
			return p;
	return -1;
}

const char *
mock_verdict_name(enum mock_verdict v)
{
	return verdicts[v];
}

void
mock_outcome_free(struct mock_outcome *o)
{
	size_t i;

	free(o->key);
	for (i = 0; i < o->nmembers; i++)
		free(o->members[i]);
	free(o->members);
	free(o->omitted);
	free(o->state_key);
	free(o->act.body);
	free(o->act.message);
	free(o->act.retry_after);
}

void
mock_reject(struct mock_outcome *o, long long code, const char *msg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
	va_end(ap);
	o->verdict = MOCK_REJECTED;
	o->valid = 0;
	o->code = code;
	snprintf(o->msg, sizeof(o->msg), "%s", msg != NULL ? msg : o->reason);
}

void
mock_reject_method(struct mock_outcome *o, const char *method)
{
	mock_reject(o, 0, NULL, "method %.16s not allowed", method);
	o->http_status = 405;
}

/* Checks the header is present once; otherwise rejects with code. */
static const char *
one_header(const struct mock_request *req, enum mock_header h, const char *name,
    struct mock_outcome *o, long long code, const char *msg)
{
	if (req->hdr[h] == NULL) {
		mock_reject(o, code, msg, "missing header %s", name);
		return NULL;
	}
	if (req->hdr_dup & (1u << h)) {
		mock_reject(o, code, msg, "header %s sent more than once", name);
		return NULL;
	}
	return req->hdr[h];
}

/* ---- Feihe ---- */

/*
 * WeChat's text limit, which Feihe passes on: 2048 bytes of msg (providers.md: WeCom
 * documents it, a WeChat community answer confirms it). Over it, WeChat answers 45002
 * "content size out of limit", inside Feihe's envelope like any WeChat errcode.
 */
#define FEIHE_MSG_MAX	2048
#define FEIHE_TOO_LONG	45002

static void
feihe_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	static const char *const members[] = { "openId", "msg", NULL };
	const char *system, *s;
	char why[256];
	size_t n;
	cJSON *j;

	j = mock_json_parse(req->body, req->body_len, why, sizeof(why));
	if (j != NULL && (s = mock_json_str(j, "openId")) != NULL)
		o->key = mock_xstrdup(s);
	if (strcmp(req->method, "POST") != 0)
		mock_reject_method(o, req->method);
	else if ((system = one_header(req, MOCK_H_SYSTEM, "system", o, 400, NULL)) == NULL)
		;
	else if (strcmp(system, cfg->feihe_system) != 0)
		mock_reject(o, 400, NULL, "header system must be %s", cfg->feihe_system);
	else if (!mock_media_type_is(req->hdr[MOCK_H_CTYPE], "application/json"))
		mock_reject(o, 400, NULL, "Content-Type must be application/json");
	else if (j == NULL)
		mock_reject(o, 400, NULL, "%s", why);
	else if (mock_json_only(j, members, "body", why, sizeof(why)) == -1)
		mock_reject(o, 400, NULL, "%s", why);
	else if (!mock_json_nonempty(j, "openId"))
		mock_reject(o, 400, NULL, "openId must be a non-empty string");
	else if (!mock_json_nonempty(j, "msg"))
		mock_reject(o, 400, NULL, "msg must be a non-empty string");
	else if ((n = strlen(mock_json_str(j, "msg"))) > FEIHE_MSG_MAX)
		mock_reject(o, FEIHE_TOO_LONG, "content size out of limit",
		    "msg is %zu bytes, over %d", n, FEIHE_MSG_MAX);
	cJSON_Delete(j);
}

/* ---- Tanmarket ---- */

static int
hhmm(const char *s)
{
	return s != NULL && strlen(s) == 5 && s[2] == ':' &&
	    s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' &&
	    (s[0] < '2' || s[1] <= '3') && s[3] >= '0' && s[3] <= '5' &&
	    s[4] >= '0' && s[4] <= '9';
}

/* Checks the SOP body; -1 with why filled. */
static int
tan_body(const cJSON *j, char *why, size_t whylen)
{
	static const char *const top[] = { "groupInfos", "title", "mode", "sopContents", NULL };
	static const char *const gi[] = { "chatId", "chatOwner", NULL };
	static const char *const sc[] = { "showDate", "showTime", "sopDatas", NULL };
	const cJSON *groups, *contents, *g, *c, *datas, *d;
	char where[64];
	size_t i = 0, k;

	if (mock_json_only(j, top, "body", why, whylen) == -1)
		return -1;
	groups = cJSON_GetObjectItemCaseSensitive(j, "groupInfos");
	contents = cJSON_GetObjectItemCaseSensitive(j, "sopContents");
	if (!cJSON_IsArray(groups) || cJSON_GetArraySize(groups) == 0)
		return snprintf(why, whylen, "groupInfos must be a non-empty array"), -1;
	cJSON_ArrayForEach(g, groups) {
		snprintf(where, sizeof(where), "groupInfos[%zu]", i++);
		if (mock_json_only(g, gi, where, why, whylen) == -1)
			return -1;
		if (!mock_json_nonempty(g, "chatId") || !mock_json_nonempty(g, "chatOwner"))
			return snprintf(why, whylen, "%s needs chatId and chatOwner strings",
			    where), -1;
	}
	if (!mock_json_nonempty(j, "title"))
		return snprintf(why, whylen, "title must be a non-empty string"), -1;
	if (!mock_json_int(cJSON_GetObjectItemCaseSensitive(j, "mode"), -2147483648.0,
	    2147483647.0, NULL))
		return snprintf(why, whylen, "mode must be an integer"), -1;
	if (!cJSON_IsArray(contents) || cJSON_GetArraySize(contents) == 0)
		return snprintf(why, whylen, "sopContents must be a non-empty array"), -1;
	i = 0;
	cJSON_ArrayForEach(c, contents) {
		snprintf(where, sizeof(where), "sopContents[%zu]", i);
		if (mock_json_only(c, sc, where, why, whylen) == -1)
			return -1;
		if (!mock_json_int(cJSON_GetObjectItemCaseSensitive(c, "showDate"), 1,
		    2147483647.0, NULL))
			return snprintf(why, whylen, "%s.showDate must be an integer >= 1",
			    where), -1;
		if (!hhmm(mock_json_str(c, "showTime")))
			return snprintf(why, whylen, "%s.showTime must be \"HH:mm\"", where), -1;
		datas = cJSON_GetObjectItemCaseSensitive(c, "sopDatas");
		if (!cJSON_IsArray(datas) || cJSON_GetArraySize(datas) == 0)
			return snprintf(why, whylen, "%s.sopDatas must be a non-empty array",
			    where), -1;
		k = 0;
		cJSON_ArrayForEach(d, datas) {
			if (!cJSON_IsObject(d) || !mock_json_int(
			    cJSON_GetObjectItemCaseSensitive(d, "type"), -2147483648.0,
			    2147483647.0, NULL))
				return snprintf(why, whylen, "%s.sopDatas[%zu] must be an object "
				    "with an integer type", where, k), -1;
			k++;
		}
		i++;
	}
	return 0;
}

static void
tanmarket_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	static const char sign_msg[] = "签名校验未通过";
	static const char time_msg[] = "请求时间与服务器时间相差过大,请校对时间后重新请求";
	const char *app_id, *ts, *sign, *app_key, *parts[4];
	const cJSON *g;
	size_t lens[4];
	char why[256], hex[65];
	uint64_t t;
	cJSON *j;

	j = mock_json_parse(req->body, req->body_len, why, sizeof(why));
	g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "groupInfos"), 0);
	if (mock_json_str(g, "chatId") != NULL)
		o->key = mock_xstrdup(mock_json_str(g, "chatId"));
	if (strcmp(req->method, "POST") != 0) {
		mock_reject_method(o, req->method);
		goto out;
	}
	if ((app_id = one_header(req, MOCK_H_APPID, "appId", o, 1002, sign_msg)) == NULL ||
	    (ts = one_header(req, MOCK_H_TIMESTAMP, "timestamp", o, 1003, time_msg)) == NULL ||
	    (sign = one_header(req, MOCK_H_SIGN, "sign", o, 1002, sign_msg)) == NULL ||
	    (app_key = one_header(req, MOCK_H_APPKEY, "appKey", o, 1002, sign_msg)) == NULL)
		goto out;
	if (!mock_digits(ts, 13) || mock_parse_u64(ts, UINT64_MAX, &t) == -1) {
		mock_reject(o, 1003, time_msg, "timestamp is not 13 digits of ms");
		goto out;
	}
	if (llabs((long long)t - (long long)mock_now_ms()) > TAN_SKEW_MS) {
		mock_reject(o, 1003, time_msg, "timestamp more than 5 minutes off the clock");
		goto out;
	}
	if (cfg->tanmarket_app_id != NULL && strcmp(app_id, cfg->tanmarket_app_id) != 0) {
		mock_reject(o, 1002, sign_msg, "appId is not the configured one");
		goto out;
	}
	if (cfg->tanmarket_app_key != NULL && strcmp(app_key, cfg->tanmarket_app_key) != 0) {
		mock_reject(o, 1002, sign_msg, "appKey header is not the configured key");
		goto out;
	}
	parts[0] = app_id;
	parts[1] = ts;
	parts[2] = req->body;
	parts[3] = cfg->tanmarket_app_key != NULL ? cfg->tanmarket_app_key : app_key;
	lens[0] = strlen(parts[0]);
	lens[1] = strlen(parts[1]);
	lens[2] = req->body_len;
	lens[3] = strlen(parts[3]);
	mock_digest_hex(1, parts, lens, 4, hex);
	if (strcmp(sign, hex) != 0) {
		mock_reject(o, 1002, sign_msg, "sign is not sha256(appId+timestamp+body+appKey)");
		goto out;
	}
	if (!mock_media_type_is(req->hdr[MOCK_H_CTYPE], "application/json"))
		mock_reject(o, 40001, NULL, "Content-Type must be application/json");
	else if (j == NULL)
		mock_reject(o, 40001, NULL, "%s", why);
	else if (tan_body(j, why, sizeof(why)) == -1)
		mock_reject(o, 40001, NULL, "%s", why);
out:
	cJSON_Delete(j);
}

void
mock_provider_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	o->provider = mock_provider_route(req->path);
	o->verdict = MOCK_ACCEPTED;
	o->valid = 1;
	o->http_status = 200;
	switch (o->provider) {
	case MOCK_FEIHE:
		feihe_check(cfg, req, o);
		break;
	case MOCK_TENCENT:
		mock_tencent_check(cfg, req, o);
		break;
	case MOCK_APIUSB:
		mock_apiusb_check(cfg, req, o);
		break;
	case MOCK_SAINIU:
		mock_sainiu_check(cfg, req, o);
		break;
	case MOCK_TANMARKET:
		tanmarket_check(cfg, req, o);
		break;
	default:
		mock_reject(o, 0, NULL, "no provider endpoint at this path");
		o->http_status = 404;
		break;
	}
}

/* The provider's own failure envelope; scripted Feihe codes go in data.errcode. */
static void
error_envelope(enum mock_provider p, int scripted, long long code, const char *msg,
    struct mock_buf *b)
{
	switch (p) {
	case MOCK_FEIHE:
		/* WeChat's own errcodes (40000 and up) come inside the success envelope. */
		if (scripted || code >= 40000) {
			mock_buf_addf(b, "{\"code\":200,\"msg\":\"操作成功\",\"data\":"
			    "{\"errcode\":%lld,\"errmsg\":", code);
			mock_buf_add_jstr0(b, msg);
			mock_buf_adds(b, "}}");
		} else {
			mock_buf_addf(b, "{\"code\":%lld,\"msg\":", code);
			mock_buf_add_jstr0(b, msg);
			mock_buf_adds(b, ",\"data\":null}");
		}
		break;
	case MOCK_TENCENT:
		mock_buf_adds(b, "{\"ActionStatus\":\"FAIL\",\"ErrorInfo\":");
		mock_buf_add_jstr0(b, msg);
		mock_buf_addf(b, ",\"ErrorCode\":%lld}", code);
		break;
	case MOCK_APIUSB:
		mock_buf_addf(b, "{\"ret\":%lld,\"data\":{},\"msg\":", code);
		mock_buf_add_jstr0(b, msg);
		mock_buf_adds(b, "}");
		break;
	case MOCK_SAINIU:
		mock_buf_addf(b, "{\"code\":%lld,\"msg\":", code);
		mock_buf_add_jstr0(b, msg);
		mock_buf_addf(b, ",\"data\":null,\"passkey\":\"%lld\"}", (long long)mock_now_ms());
		break;
	default:
		mock_buf_addf(b, "{\"code\":%lld,\"msg\":", code);
		mock_buf_add_jstr0(b, msg);
		mock_buf_adds(b, ",\"data\":null}");
		break;
	}
}

static void
success(const struct mock_outcome *o, struct mock_buf *b)
{
	uint64_t n = o->serial;
	const char *sep = "";
	size_t i;

	switch (o->provider) {
	case MOCK_FEIHE:
		mock_buf_adds(b, "{\"code\":200,\"msg\":\"操作成功\","
		    "\"data\":{\"errcode\":0,\"errmsg\":\"ok\"}}");
		break;
	case MOCK_TENCENT:
		mock_buf_adds(b, "{\"ActionStatus\":\"OK\",\"ErrorInfo\":\"\",\"ErrorCode\":0}");
		break;
	case MOCK_APIUSB:
		mock_buf_adds(b, "{\"ret\":200,\"data\":{\"item\":[");
		for (i = 0; i < o->nmembers; i++) {
			if (o->omitted != NULL && o->omitted[i])
				continue;
			mock_buf_addf(b, "%s{\"other_uuid\":", sep);
			mock_buf_add_jstr0(b, o->members[i]);
			mock_buf_addf(b, ",\"chat_message_id\":\"m-%llu\"}", (unsigned long long)n++);
			sep = ",";
		}
		mock_buf_adds(b, "]},\"msg\":\"\"}");
		break;
	case MOCK_SAINIU:
		mock_buf_addf(b, "{\"code\":200,\"msg\":\"调用成功\",\"data\":\"%llu\","
		    "\"passkey\":\"%lld\"}", (unsigned long long)n, (long long)mock_now_ms());
		break;
	default:
		mock_buf_addf(b, "{\"code\":0,\"msg\":\"成功\",\"data\":{\"sopId\":\"sop-%llu\"}}",
		    (unsigned long long)n);
		break;
	}
}

void
mock_provider_answer(const struct mock_outcome *o, unsigned *status, struct mock_buf *b,
    const char **content_type)
{
	const struct mock_action *a = &o->act;

	*content_type = "application/json; charset=utf-8";
	*status = 200;
	if (a->replaces && !a->omit) {
		*status = (unsigned)a->status;
		if (a->body != NULL)
			for (int k = 0; k < (a->repeat > 1 ? a->repeat : 1); k++)
				mock_buf_adds(b, a->body);
		else if (a->has_code)
			error_envelope(o->provider, 1, a->code,
			    a->message != NULL ? a->message : "mock scripted error", b);
		else {
			*content_type = "text/plain; charset=utf-8";
			mock_buf_addf(b, "mock: scripted HTTP %d\n", a->status);
		}
		return;
	}
	if (o->http_status != 200) {
		*status = (unsigned)o->http_status;
		*content_type = "text/plain; charset=utf-8";
		mock_buf_addf(b, "%s\n", o->reason);
	} else if (o->verdict == MOCK_REJECTED || !o->valid)
		error_envelope(o->provider, 0, o->code, o->msg, b);
	else
		success(o, b);
}
