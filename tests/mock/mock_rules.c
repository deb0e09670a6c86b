/*
 * mock_rules.c: scripted rules, the way a test makes the mock fail. This file
 * parses and describes rules and decides whether one fits a request; the rule
 * table itself, and the order rules are tried in, live in mock_state.c.
 *
 * A rule that only delays (no status other than 200, no body, code, drop or
 * omit) does not replace the answer: the request is decided as usual, state
 * included, and answered late. Every other rule replaces the answer and its
 * request is recorded as "scripted".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock.h"

#define RULE_DELAY_MAX_MS	600000

/* Fills r from one rule object; -1 with why filled (r then freed by the caller). */
static int
rule_parse(const cJSON *j, const char *where, struct mock_rule *r, char *why, size_t whylen)
{
	static const char *const members[] = { "provider", "match", "times", "status", "body",
	    "code", "message", "delay_ms", "drop", "omit", "retry_after", "repeat", NULL };
	const cJSON *m;
	const char *s;
	int64_t v;
	char w[256];

	if (mock_json_only(j, members, where, w, sizeof(w)) == -1)
		return snprintf(why, whylen, "%s", w), -1;
	r->status = 200;
	r->times = 1;
	r->provider = -1;
	if ((s = mock_json_str(j, "provider")) == NULL)
		return snprintf(why, whylen, "%s: provider (string) is required", where), -1;
	if (strcmp(s, "*") != 0 &&
	    ((r->provider = mock_provider_lookup(s)) < 0 || r->provider == MOCK_UNKNOWN))
		return snprintf(why, whylen, "%s: unknown provider \"%.32s\"", where, s), -1;
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "match")) != NULL) {
		if (!cJSON_IsString(m))
			return snprintf(why, whylen, "%s: match must be a string", where), -1;
		if (strcmp(m->valuestring, "*") != 0)
			r->match = mock_xstrdup(m->valuestring);
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "times")) != NULL) {
		if (!mock_json_int(m, 0, 1e9, &v))
			return snprintf(why, whylen, "%s: times must be an integer >= 0", where), -1;
		r->times = (long)v;
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "status")) != NULL) {
		if (!mock_json_int(m, 100, 599, &v))
			return snprintf(why, whylen, "%s: status must be an HTTP status", where), -1;
		r->status = (int)v;
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "body")) != NULL) {
		if (!cJSON_IsString(m))
			return snprintf(why, whylen, "%s: body must be a string", where), -1;
		r->body = mock_xstrdup(m->valuestring);
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "code")) != NULL) {
		if (!mock_json_int(m, -9007199254740991.0, 9007199254740991.0, &v))
			return snprintf(why, whylen, "%s: code must be an integer", where), -1;
		r->has_code = 1;
		r->code = v;
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "message")) != NULL) {
		if (!cJSON_IsString(m) || !r->has_code)
			return snprintf(why, whylen, "%s: message must be a string next to code",
			    where), -1;
		r->message = mock_xstrdup(m->valuestring);
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "delay_ms")) != NULL) {
		if (!mock_json_int(m, 0, RULE_DELAY_MAX_MS, &v))
			return snprintf(why, whylen, "%s: delay_ms must be an integer in 0..%d",
			    where, RULE_DELAY_MAX_MS), -1;
		r->delay_ms = (int)v;
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "drop")) != NULL) {
		if (!cJSON_IsBool(m))
			return snprintf(why, whylen, "%s: drop must be true or false", where), -1;
		r->drop = cJSON_IsTrue(m);
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "omit")) != NULL) {
		if (!cJSON_IsBool(m))
			return snprintf(why, whylen, "%s: omit must be true or false", where), -1;
		r->omit = cJSON_IsTrue(m);
	}
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "retry_after")) != NULL) {
		if (!cJSON_IsString(m) || m->valuestring[0] == '\0' ||
		    strpbrk(m->valuestring, "\r\n") != NULL)
			return snprintf(why, whylen, "%s: retry_after must be a header value "
			    "(seconds or an HTTP date)", where), -1;
		r->retry_after = mock_xstrdup(m->valuestring);
	}
	r->repeat = 1;
	if ((m = cJSON_GetObjectItemCaseSensitive(j, "repeat")) != NULL) {
		if (!mock_json_int(m, 1, 64, &v) || r->body == NULL)
			return snprintf(why, whylen, "%s: repeat must be 1..64, next to body", where), -1;
		r->repeat = (int)v;
	}
	if (r->retry_after != NULL && r->drop)
		return snprintf(why, whylen, "%s: drop sends no answer: no retry_after", where), -1;
	if (r->body != NULL && r->has_code)
		return snprintf(why, whylen, "%s: body and code exclude each other", where), -1;
	if (r->drop && (r->body != NULL || r->has_code || r->status != 200))
		return snprintf(why, whylen, "%s: drop sends no answer: no status, body or code",
		    where), -1;
	if (r->omit && r->provider != MOCK_APIUSB)
		return snprintf(why, whylen, "%s: omit needs provider apiusb", where), -1;
	if (r->omit && (r->body != NULL || r->has_code || r->drop || r->status != 200))
		return snprintf(why, whylen, "%s: omit answers success: no status, body, code "
		    "or drop", where), -1;
	return 0;
}

int
mock_rules_parse(const char *text, size_t len, struct mock_rule **rules, size_t *n,
    char *why, size_t whylen)
{
	struct mock_rule *v = NULL;
	const cJSON *e;
	char where[32];
	size_t i = 0, count;
	cJSON *j;
	int rc = -1;

	if ((j = mock_json_parse(text, len, why, whylen)) == NULL)
		return -1;
	if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) {
		snprintf(why, whylen, "expected a rule object or an array of them");
		goto out;
	}
	count = cJSON_IsArray(j) ? (size_t)cJSON_GetArraySize(j) : 1;
	v = mock_xcalloc(count, sizeof(*v));
	if (cJSON_IsObject(j))
		rc = rule_parse(j, "rule", &v[i++], why, whylen);
	else {
		rc = 0;
		cJSON_ArrayForEach(e, j) {
			snprintf(where, sizeof(where), "rules[%zu]", i);
			if ((rc = rule_parse(e, where, &v[i++], why, whylen)) == -1)
				break;
		}
	}
	if (rc == 0) {
		*rules = v;
		*n = count;
		v = NULL;
	}
out:
	if (v != NULL) {
		while (i > 0)
			mock_rule_free(&v[--i]);
		free(v);
	}
	cJSON_Delete(j);
	return rc;
}

void
mock_rule_free(struct mock_rule *r)
{
	free(r->match);
	free(r->body);
	free(r->message);
	free(r->retry_after);
}

int
mock_rule_matches_member(const struct mock_rule *r, const char *m)
{
	return r->match == NULL || strcmp(r->match, m) == 0;
}

int
mock_rule_fits(const struct mock_rule *r, const struct mock_outcome *o)
{
	size_t i;

	if (r->times != 0 && r->used >= r->times)
		return 0;
	if (o->provider == MOCK_UNKNOWN || (r->provider >= 0 && r->provider != (int)o->provider))
		return 0;
	/* Leaving a member out of a success needs a request that would succeed. */
	if (r->omit && (!o->valid || o->verdict != MOCK_ACCEPTED))
		return 0;
	if (r->match == NULL)
		return 1;
	if (o->provider == MOCK_APIUSB) {
		for (i = 0; i < o->nmembers; i++)
			if (strcmp(o->members[i], r->match) == 0)
				return 1;
		return 0;
	}
	return o->key != NULL && strcmp(o->key, r->match) == 0;
}

void
mock_rule_action(const struct mock_rule *r, struct mock_action *a)
{
	a->rule_id = r->id;
	a->replaces = r->drop || r->body != NULL || r->has_code || r->status != 200 || r->omit;
	a->status = r->status;
	a->body = r->body != NULL ? mock_xstrdup(r->body) : NULL;
	a->has_code = r->has_code;
	a->code = r->code;
	a->message = r->message != NULL ? mock_xstrdup(r->message) : NULL;
	a->delay_ms = r->delay_ms;
	a->drop = r->drop;
	a->omit = r->omit;
	a->retry_after = r->retry_after != NULL ? mock_xstrdup(r->retry_after) : NULL;
	a->repeat = r->repeat;
}

void
mock_rule_json(const struct mock_rule *r, struct mock_buf *b)
{
	mock_buf_addf(b, "{\"id\":%d,\"provider\":", r->id);
	mock_buf_add_jstr0(b, r->provider < 0 ? "*" : mock_provider_name(r->provider));
	mock_buf_adds(b, ",\"match\":");
	mock_buf_add_jstr0(b, r->match != NULL ? r->match : "*");
	mock_buf_addf(b, ",\"times\":%ld,\"used\":%ld,\"status\":%d", r->times, r->used, r->status);
	if (r->body != NULL) {
		mock_buf_adds(b, ",\"body\":");
		mock_buf_add_jstr0(b, r->body);
	}
	if (r->has_code)
		mock_buf_addf(b, ",\"code\":%lld", r->code);
	if (r->message != NULL) {
		mock_buf_adds(b, ",\"message\":");
		mock_buf_add_jstr0(b, r->message);
	}
	if (r->retry_after != NULL) {
		mock_buf_adds(b, ",\"retry_after\":");
		mock_buf_add_jstr0(b, r->retry_after);
	}
	mock_buf_addf(b, ",\"delay_ms\":%d,\"drop\":%s,\"omit\":%s}", r->delay_ms,
	    r->drop ? "true" : "false", r->omit ? "true" : "false");
}
