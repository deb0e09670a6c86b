/*
 * mock_forms.c: the two providers that take application/x-www-form-urlencoded
 * parameters, APIUSB's Platform.ChatMessage.BulkSend (PhalApi conventions: ret
 * 400 + a project code) and SaiNiu's SendCustomerServiceUserGroup (a JSON text
 * inside the form, optionally signed with MD5).
 *
 * Codes the documents do not give are this mock's choice, documented in
 * mock_main.c: SaiNiu answers 400 for a malformed request and 403 for a bad or
 * stale signature.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

#define APIUSB_SERVICE	"Platform.ChatMessage.BulkSend"
#define SAINIU_POST	"SendCustomerServiceUserGroup"
/* The signature is valid for 15 s ("签名后15秒失效"). */
#define SAINIU_SIGN_MS	15000
/* sendtime must be at least 2 h after the call ("时间至少延后2个小时"). */
#define SAINIU_LEAD_MS	(2 * 3600 * 1000LL)

static int
in_list(const char *name, const char *const *list)
{
	size_t i;

	for (i = 0; list[i] != NULL; i++)
		if (strcmp(list[i], name) == 0)
			return 1;
	return 0;
}

/* ---- APIUSB ---- */

/* A parameter from the form body, else from the query. */
static const struct mock_param *
apiusb_param(const struct mock_form *q, const struct mock_form *f, const char *name)
{
	const struct mock_param *p = mock_form_get(f, name);

	return p != NULL ? p : mock_form_get(q, name);
}

/* Splits the comma list into o->members (empty pieces skipped). */
static void
apiusb_members(const char *list, struct mock_outcome *o)
{
	const char *s = list, *c;

	o->key = mock_xstrdup(list);
	for (;;) {
		c = strchr(s, ',');
		if (c == NULL)
			c = s + strlen(s);
		if (c > s) {
			o->members = mock_xrealloc(o->members,
			    (o->nmembers + 1) * sizeof(*o->members));
			o->members[o->nmembers++] = mock_xstrndup(s, (size_t)(c - s));
		}
		if (*c == '\0')
			break;
		s = c + 1;
	}
	o->omitted = mock_xcalloc(o->nmembers ? o->nmembers : 1, 1);
}

/*
 * The most uuids one BulkSend may name. No source gives APIUSB's limit (providers.md finds
 * none); 1000 is this mock's choice, the largest batch_size Herald accepts, so a request
 * Herald could never send is refused rather than taken.
 */
#define APIUSB_UUIDS_MAX	1000

/* Checks the uuid list; -1 with why filled. */
static int
apiusb_uuids(const char *list, const struct mock_outcome *o, char *why, size_t whylen)
{
	size_t i, j, n = 1;
	const char *s;

	for (s = list; *s != '\0'; s++) {
		if (*s == ',')
			n++;
		else if ((unsigned char)*s <= ' ') {
			snprintf(why, whylen, "chat_message_to_uuid holds a space or control character");
			return -1;
		}
	}
	if (n != o->nmembers) {
		snprintf(why, whylen, "chat_message_to_uuid has an empty uuid");
		return -1;
	}
	if (n > APIUSB_UUIDS_MAX) {
		snprintf(why, whylen, "chat_message_to_uuid lists %zu uuids, over %d", n,
		    APIUSB_UUIDS_MAX);
		return -1;
	}
	for (i = 0; i < o->nmembers; i++)
		for (j = i + 1; j < o->nmembers; j++)
			if (strcmp(o->members[i], o->members[j]) == 0) {
				snprintf(why, whylen, "chat_message_to_uuid lists %.64s twice",
				    o->members[i]);
				return -1;
			}
	return 0;
}

/* Returns 0, or -1 with o rejected: parameters sit where the method puts them. */
static int
apiusb_params(const struct mock_request *req, const struct mock_form *q,
    const struct mock_form *f, struct mock_outcome *o)
{
	static const char *const known[] = { "s", "service", "access_token",
	    "chat_message_to_uuid", "chat_message_data", "chat_message_type", "ext_data", NULL };
	static const char *const service[] = { "s", "service", NULL };
	const char *dup;
	size_t i;

	if ((dup = mock_form_dup(q)) != NULL || (dup = mock_form_dup(f)) != NULL) {
		mock_reject(o, 400, NULL, "parameter %.32s given twice", dup);
		return -1;
	}
	for (i = 0; i < q->n; i++) {
		if (mock_form_get(f, q->v[i].name) != NULL) {
			mock_reject(o, 400, NULL, "parameter %.32s given twice", q->v[i].name);
			return -1;
		}
		if (strcmp(req->method, "POST") == 0 && !in_list(q->v[i].name, service) &&
		    in_list(q->v[i].name, known)) {
			mock_reject(o, 400, NULL, "parameter %.32s belongs in the form body",
			    q->v[i].name);
			return -1;
		}
	}
	for (i = 0; i < q->n + f->n; i++) {
		const char *name = i < q->n ? q->v[i].name : f->v[i - q->n].name;

		if (!in_list(name, known)) {
			mock_reject(o, 400, NULL, "unknown parameter %.32s", name);
			return -1;
		}
	}
	return 0;
}

void
mock_apiusb_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	static const char *const types[] = { "text", "html", "image", "link", "custom", NULL };
	static const char *const required[] = { "chat_message_to_uuid", "chat_message_data",
	    "chat_message_type", NULL };
	struct mock_form q = { 0 }, f = { 0 };
	const struct mock_param *p, *s, *svc, *tok;
	int qbad, fbad = 0, post = strcmp(req->method, "POST") == 0;
	char qwhy[256], fwhy[256], why[256];
	size_t i;

	qbad = mock_form_parse(req->query, strlen(req->query), &q, qwhy, sizeof(qwhy));
	if (post)
		fbad = mock_form_parse(req->body, req->body_len, &f, fwhy, sizeof(fwhy));
	if ((p = apiusb_param(&q, &f, "chat_message_to_uuid")) != NULL)
		apiusb_members(p->value, o);
	if (!post && strcmp(req->method, "GET") != 0) {
		mock_reject_method(o, req->method);
		goto out;
	}
	if (qbad == -1) {
		mock_reject(o, 400, NULL, "query: %s", qwhy);
		goto out;
	}
	if (post && !mock_media_type_is(req->hdr[MOCK_H_CTYPE],
	    "application/x-www-form-urlencoded")) {
		mock_reject(o, 400, NULL, "Content-Type must be application/x-www-form-urlencoded");
		goto out;
	}
	if (fbad == -1) {
		mock_reject(o, 400, NULL, "form body: %s", fwhy);
		goto out;
	}
	if (!post && req->body_len > 0) {
		mock_reject(o, 400, NULL, "a GET request carries no body");
		goto out;
	}
	if (apiusb_params(req, &q, &f, o) == -1)
		goto out;
	s = apiusb_param(&q, &f, "s");
	svc = apiusb_param(&q, &f, "service");
	if (s != NULL && svc != NULL) {
		mock_reject(o, 400, NULL, "give s or service, not both");
		goto out;
	}
	if (s == NULL && (s = svc) == NULL) {
		mock_reject(o, 400, NULL, "非法请求：缺少必要参数service");
		goto out;
	}
	if (strcmp(s->value, APIUSB_SERVICE) != 0) {
		mock_reject(o, 404, NULL, "非法请求：接口服务%.64s不存在", s->value);
		goto out;
	}
	tok = apiusb_param(&q, &f, "access_token");
	if (cfg->apiusb_token != NULL && (tok == NULL || strcmp(tok->value, cfg->apiusb_token) != 0)) {
		mock_reject(o, 406, "非法请求：access_token校验不通过",
		    tok == NULL ? "access_token missing" : "access_token does not match");
		goto out;
	}
	for (i = 0; required[i] != NULL; i++) {
		p = apiusb_param(&q, &f, required[i]);
		if (p == NULL || p->value_len == 0) {
			mock_reject(o, 400, NULL, "非法请求：缺少必要参数%s", required[i]);
			goto out;
		}
		if (!mock_utf8_valid(p->value, p->value_len)) {
			mock_reject(o, 400, NULL, "%s is not valid UTF-8", required[i]);
			goto out;
		}
	}
	if (apiusb_uuids(apiusb_param(&q, &f, "chat_message_to_uuid")->value, o, why,
	    sizeof(why)) == -1) {
		mock_reject(o, 400, NULL, "%s", why);
		goto out;
	}
	if (!in_list(apiusb_param(&q, &f, "chat_message_type")->value, types)) {
		mock_reject(o, 400, NULL, "chat_message_type must be one of "
		    "text/html/image/link/custom");
		goto out;
	}
	p = apiusb_param(&q, &f, "ext_data");
	if (p != NULL && !mock_utf8_valid(p->value, p->value_len))
		mock_reject(o, 400, NULL, "ext_data is not valid UTF-8");
out:
	mock_form_free(&q);
	mock_form_free(&f);
}

/* ---- SaiNiu ---- */

/* Returns 0, or -1 with o rejected: time and sign as HttpSign defines them. */
static int
sainiu_sign(const char *key, const struct mock_form *f, struct mock_outcome *o)
{
	const struct mock_param *post = mock_form_get(f, "post"), *data = mock_form_get(f, "data");
	const struct mock_param *t = mock_form_get(f, "time"), *sign = mock_form_get(f, "sign");
	const char *parts[4];
	size_t lens[4];
	uint64_t ms;
	char hex[65];

	if (t == NULL || sign == NULL) {
		mock_reject(o, 403, "签名错误", "time and sign are required (sign key configured)");
		return -1;
	}
	if (!mock_digits(t->value, 13) || mock_parse_u64(t->value, UINT64_MAX, &ms) == -1) {
		mock_reject(o, 403, "签名错误", "time is not 13 digits of ms");
		return -1;
	}
	if (llabs((long long)ms - (long long)mock_now_ms()) > SAINIU_SIGN_MS) {
		mock_reject(o, 403, "签名已过期", "time is more than 15 s off the clock");
		return -1;
	}
	parts[0] = key;
	parts[1] = post->value;
	parts[2] = data->value;
	parts[3] = t->value;
	lens[0] = strlen(key);
	lens[1] = post->value_len;
	lens[2] = data->value_len;
	lens[3] = t->value_len;
	mock_digest_hex(0, parts, lens, 4, hex);
	if (strcmp(sign->value, hex) != 0) {
		mock_reject(o, 403, "签名错误", "sign is not md5(key+post+data+time) in lowercase hex");
		return -1;
	}
	return 0;
}

/* Checks the data JSON; returns with o rejected or carrying the state inputs. */
static void
sainiu_data(const cJSON *j, struct mock_outcome *o)
{
	static const char *const members[] = { "userNick", "text", "sendtime", NULL };
	const char *nick, *text, *st;
	uint64_t ms;
	char why[256];

	if (mock_json_only(j, members, "data", why, sizeof(why)) == -1) {
		mock_reject(o, 400, NULL, "%s", why);
		return;
	}
	nick = mock_json_str(j, "userNick");
	text = mock_json_str(j, "text");
	st = mock_json_str(j, "sendtime");
	if (nick == NULL || *nick == '\0')
		mock_reject(o, 400, NULL, "userNick must be a non-empty string");
	else if (text == NULL || *text == '\0')
		mock_reject(o, 400, NULL, "text must be a non-empty string");
	else if (st == NULL || !mock_digits(st, 13) || mock_parse_u64(st, UINT64_MAX, &ms) == -1)
		mock_reject(o, 400, NULL, "sendtime must be a string of 13 digits (ms)");
	else if ((int64_t)ms < mock_now_ms() + SAINIU_LEAD_MS)
		mock_reject(o, 400, "sendtime至少延后2个小时",
		    "sendtime is less than 2 h after the mock's clock");
	else {
		o->state_key = mock_xstrdup(nick);
		o->sendtime_ms = (int64_t)ms;
	}
}

void
mock_sainiu_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	static const char *const known[] = { "post", "data", "time", "sign", NULL };
	struct mock_form f = { 0 };
	const struct mock_param *post, *data;
	const char *dup, *nick;
	char why[256], jwhy[256];
	cJSON *j = NULL;
	int fbad;
	size_t i;

	fbad = mock_form_parse(req->body, req->body_len, &f, why, sizeof(why));
	if ((data = mock_form_get(&f, "data")) != NULL) {
		j = mock_json_parse(data->value, data->value_len, jwhy, sizeof(jwhy));
		if ((nick = mock_json_str(j, "userNick")) != NULL)
			o->key = mock_xstrdup(nick);
	}
	if (strcmp(req->method, "POST") != 0) {
		mock_reject_method(o, req->method);
		goto out;
	}
	if (!mock_media_type_is(req->hdr[MOCK_H_CTYPE], "application/x-www-form-urlencoded")) {
		mock_reject(o, 400, NULL, "Content-Type must be application/x-www-form-urlencoded");
		goto out;
	}
	if (req->query[0] != '\0') {
		mock_reject(o, 400, NULL, "parameters belong in the form body, not the query");
		goto out;
	}
	if (fbad == -1) {
		mock_reject(o, 400, NULL, "form body: %s", why);
		goto out;
	}
	if ((dup = mock_form_dup(&f)) != NULL) {
		mock_reject(o, 400, NULL, "parameter %.32s given twice", dup);
		goto out;
	}
	for (i = 0; i < f.n; i++)
		if (!in_list(f.v[i].name, known)) {
			mock_reject(o, 400, NULL, "unknown parameter %.32s", f.v[i].name);
			goto out;
		}
	if ((post = mock_form_get(&f, "post")) == NULL) {
		mock_reject(o, 400, NULL, "post parameter missing");
		goto out;
	}
	if (strcmp(post->value, SAINIU_POST) != 0) {
		mock_reject(o, 400, NULL, "post %.64s is not " SAINIU_POST, post->value);
		goto out;
	}
	if (data == NULL) {
		mock_reject(o, 400, NULL, "data parameter missing");
		goto out;
	}
	if (cfg->sainiu_sign_key != NULL && sainiu_sign(cfg->sainiu_sign_key, &f, o) == -1)
		goto out;
	if (j == NULL)
		mock_reject(o, 400, NULL, "data: %s", jwhy);
	else
		sainiu_data(j, o);
out:
	cJSON_Delete(j);
	mock_form_free(&f);
}
