/*
 * mock_tencent.c: the Tencent Cloud IM desk check, desk_http_svc/send_msg. The
 * URL carries the credentials (sdkappid, identifier, usersig) and a random; the
 * JSON body is one message for a session or for a user, with MsgRandom as the
 * provider's de-duplication key (mock_state.c keeps the accepted ones).
 *
 * The order of the checks follows the error codes: the URL and the UserSig
 * first, then size (93000), JSON (90001), MsgRandom (90005), MsgBody (90007),
 * and everything else 141004.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

/* Tencent's limit on the request body ("消息包体请不要超过12K"). */
#define TIM_BODY_MAX	12288

/* Checks one MsgBody element; -1 with why filled. */
static int
tim_element(const cJSON *e, size_t i, int *customs, char *why, size_t whylen)
{
	static const char *const elem[] = { "MsgType", "MsgContent", NULL };
	static const char *const text[] = { "Text", NULL };
	static const char *const custom[] = { "Data", "Desc", "Ext", "Sound", NULL };
	static const char *const face[] = { "Index", "Data", NULL };
	static const char *const loc[] = { "Desc", "Latitude", "Longitude", NULL };
	static const char *const opt[] = { "Desc", "Ext", "Sound", NULL };
	const cJSON *c, *m;
	const char *type;
	char where[64];
	size_t k;

	snprintf(where, sizeof(where), "MsgBody[%zu]", i);
	if (mock_json_only(e, elem, where, why, whylen) == -1)
		return -1;
	c = cJSON_GetObjectItemCaseSensitive(e, "MsgContent");
	if ((type = mock_json_str(e, "MsgType")) == NULL || c == NULL) {
		snprintf(why, whylen, "%s needs MsgType (string) and MsgContent", where);
		return -1;
	}
	snprintf(where, sizeof(where), "MsgBody[%zu].MsgContent", i);
	if (strcmp(type, "TIMTextElem") == 0) {
		if (mock_json_only(c, text, where, why, whylen) == -1)
			return -1;
		if (!mock_json_nonempty(c, "Text"))
			goto bad;
	} else if (strcmp(type, "TIMCustomElem") == 0) {
		if (mock_json_only(c, custom, where, why, whylen) == -1)
			return -1;
		if (mock_json_str(c, "Data") == NULL)
			goto bad;
		for (k = 0; opt[k] != NULL; k++) {
			m = cJSON_GetObjectItemCaseSensitive(c, opt[k]);
			if (m != NULL && !cJSON_IsString(m))
				goto bad;
		}
		if (++*customs > 1) {
			snprintf(why, whylen, "more than one TIMCustomElem in one message");
			return -1;
		}
	} else if (strcmp(type, "TIMFaceElem") == 0) {
		if (mock_json_only(c, face, where, why, whylen) == -1)
			return -1;
		if (!mock_json_int(cJSON_GetObjectItemCaseSensitive(c, "Index"),
		    -2147483648.0, 2147483647.0, NULL) || mock_json_str(c, "Data") == NULL)
			goto bad;
	} else if (strcmp(type, "TIMLocationElem") == 0) {
		if (mock_json_only(c, loc, where, why, whylen) == -1)
			return -1;
		if (mock_json_str(c, "Desc") == NULL ||
		    !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, "Latitude")) ||
		    !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, "Longitude")))
			goto bad;
	} else {
		snprintf(why, whylen, "MsgBody[%zu].MsgType \"%.32s\" is not supported", i, type);
		return -1;
	}
	return 0;
bad:
	snprintf(why, whylen, "%s does not fit %s", where, type);
	return -1;
}

/* The body checks, after the URL passed; returns with o rejected or not. */
static void
tim_body(const cJSON *j, struct mock_outcome *o)
{
	static const char *const members[] = { "SessionId", "FromAccount", "ToAccount",
	    "MsgRandom", "MsgBody", "CloudCustomData", "ExcludeFromUserRespTimeout", NULL };
	const cJSON *sid, *from, *to, *body, *e, *m;
	struct mock_buf k = { 0 };
	int64_t rnd;
	int customs = 0;
	char why[256];
	size_t i = 0;

	if (!mock_json_int(cJSON_GetObjectItemCaseSensitive(j, "MsgRandom"), 0,
	    4294967295.0, &rnd)) {
		mock_reject(o, 90005, NULL, "MsgRandom missing or not an integer in 0..4294967295");
		return;
	}
	body = cJSON_GetObjectItemCaseSensitive(j, "MsgBody");
	if (!cJSON_IsArray(body) || cJSON_GetArraySize(body) == 0) {
		mock_reject(o, 90007, NULL, "MsgBody missing, not an array or empty");
		return;
	}
	if (mock_json_only(j, members, "body", why, sizeof(why)) == -1) {
		mock_reject(o, 141004, NULL, "%s", why);
		return;
	}
	sid = cJSON_GetObjectItemCaseSensitive(j, "SessionId");
	from = cJSON_GetObjectItemCaseSensitive(j, "FromAccount");
	to = cJSON_GetObjectItemCaseSensitive(j, "ToAccount");
	if (sid != NULL && (from != NULL || to != NULL)) {
		mock_reject(o, 141004, NULL, "SessionId together with FromAccount/ToAccount");
		return;
	}
	if (sid != NULL ? !mock_json_nonempty(j, "SessionId") :
	    !mock_json_nonempty(j, "FromAccount") || !mock_json_nonempty(j, "ToAccount")) {
		mock_reject(o, 141004, NULL, "needs SessionId, or FromAccount and ToAccount, "
		    "as non-empty strings");
		return;
	}
	cJSON_ArrayForEach(e, body) {
		if (tim_element(e, i++, &customs, why, sizeof(why)) == -1) {
			mock_reject(o, 141004, NULL, "%s", why);
			return;
		}
	}
	m = cJSON_GetObjectItemCaseSensitive(j, "CloudCustomData");
	if (m != NULL && !cJSON_IsString(m)) {
		mock_reject(o, 141004, NULL, "CloudCustomData must be a string");
		return;
	}
	m = cJSON_GetObjectItemCaseSensitive(j, "ExcludeFromUserRespTimeout");
	if (m != NULL && !mock_json_int(m, 0, 1, NULL)) {
		mock_reject(o, 141004, NULL, "ExcludeFromUserRespTimeout must be 0 or 1");
		return;
	}
	/* Sessions and accounts are separate namespaces; 0x1f never occurs raw in JSON. */
	mock_buf_addf(&k, "%c\x1f%s\x1f%lld", sid != NULL ? 'S' : 'U',
	    sid != NULL ? sid->valuestring : to->valuestring, (long long)rnd);
	free(o->state_key);
	o->state_key = mock_buf_take(&k);
}

/* Checks the query string; returns 0, or -1 with o rejected. */
static int
tim_query(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	static const char *const names[] = { "sdkappid", "identifier", "usersig", "random",
	    "contenttype", NULL };
	struct mock_form q = { 0 };
	const char *v[5], *dup, *sig_why;
	uint64_t appid, rnd;
	char why[256];
	int rc = -1;
	size_t i;

	if (mock_form_parse(req->query, strlen(req->query), &q, why, sizeof(why)) == -1) {
		mock_reject(o, 60003, NULL, "query: %s", why);
		goto out;
	}
	if ((dup = mock_form_dup(&q)) != NULL) {
		mock_reject(o, 60003, NULL, "query parameter %.32s given twice", dup);
		goto out;
	}
	for (i = 0; i < q.n; i++) {
		size_t k;

		for (k = 0; names[k] != NULL && strcmp(names[k], q.v[i].name) != 0; k++)
			;
		if (names[k] == NULL) {
			mock_reject(o, 60003, NULL, "unknown query parameter %.32s", q.v[i].name);
			goto out;
		}
	}
	for (i = 0; names[i] != NULL; i++) {
		const struct mock_param *p = mock_form_get(&q, names[i]);

		if (p == NULL || p->value[0] == '\0') {
			mock_reject(o, 60003, NULL, "query parameter %s missing or empty", names[i]);
			goto out;
		}
		v[i] = p->value;
	}
	if (mock_parse_u64(v[0], UINT64_MAX, &appid) == -1) {
		mock_reject(o, 60003, NULL, "sdkappid is not a decimal number");
		goto out;
	}
	if (mock_parse_u64(v[3], 4294967295u, &rnd) == -1) {
		mock_reject(o, 60003, NULL, "random is not a decimal in 0..4294967295");
		goto out;
	}
	if (strcmp(v[4], "json") != 0) {
		mock_reject(o, 60003, NULL, "contenttype must be json");
		goto out;
	}
	if (cfg->tim_sdkappid_set && appid != cfg->tim_sdkappid) {
		mock_reject(o, 70020, NULL, "sdkappid is not the configured one");
		goto out;
	}
	if (cfg->tim_identifier != NULL && strcmp(v[1], cfg->tim_identifier) != 0) {
		mock_reject(o, 90009, NULL, "identifier is not the configured App admin");
		goto out;
	}
	if (cfg->tim_secret != NULL) {
		if (mock_usersig_check(v[2], appid, v[1], cfg->tim_secret, mock_now_ms() / 1000,
		    &sig_why) == -1) {
			mock_reject(o, strcmp(sig_why, "usersig expired") == 0 ? 70001 : 70009, NULL,
			    "%s", sig_why);
			goto out;
		}
	} else if (cfg->tim_usersig != NULL && strcmp(v[2], cfg->tim_usersig) != 0) {
		mock_reject(o, 70009, NULL, "usersig is not the configured one");
		goto out;
	}
	rc = 0;
out:
	mock_form_free(&q);
	return rc;
}

void
mock_tencent_check(const struct mock_config *cfg, const struct mock_request *req,
    struct mock_outcome *o)
{
	const char *s;
	char why[256];
	cJSON *j = NULL;

	if (req->body_len <= TIM_BODY_MAX)
		j = mock_json_parse(req->body, req->body_len, why, sizeof(why));
	if (cJSON_IsObject(j) && ((s = mock_json_str(j, "SessionId")) != NULL ||
	    (s = mock_json_str(j, "ToAccount")) != NULL))
		o->key = mock_xstrdup(s);
	if (strcmp(req->method, "POST") != 0)
		mock_reject_method(o, req->method);
	else if (tim_query(cfg, req, o) == -1)
		;
	else if (req->body_len > TIM_BODY_MAX)
		mock_reject(o, 93000, NULL, "body of %zu bytes is over 12288", req->body_len);
	else if (j == NULL)
		mock_reject(o, 90001, NULL, "%s", why);
	else if (!cJSON_IsObject(j))
		mock_reject(o, 90001, NULL, "body is not a JSON object");
	else
		tim_body(j, o);
	cJSON_Delete(j);
}
