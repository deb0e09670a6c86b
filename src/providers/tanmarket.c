/*
 * tanmarket: Tanmarket (探马 SCRM) group SOPs through /api/v3/groupSop/addGroupCorporate.
 * Tanmarket runs the schedule itself: one call per campaign lists every WeCom group and every
 * step (showDate, showTime, contents), and the provider sends each step to each group on its
 * day. So one answer decides every delivery in the call, the call is made on the campaign's
 * day 1 or later, and showDate counts from the day of the call (its day 1 is "today").
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "clock.h"
#include "provider.h"
#include "tanmarket.h"
#include "util.h"


#define TANMARKET_PATH "/api/v3/groupSop/addGroupCorporate"
#define TANMARKET_CODE_BAD_SIGN 1002
#define TANMARKET_CODE_CLOCK_SKEW 1003

static const struct config_key tanmarket_keys[] = {
	{"app_id", CONFIG_STRING, 1},
	{"app_key", CONFIG_STRING, 1},
	{"mode", CONFIG_INT, 0},
	{NULL, CONFIG_STRING, 0},
};

/* One delivery seen through what the body needs from it; pos is its place in the batch. */
struct tanmarket_ref {
	const struct provider_item *item;
	const char *chat_id;
	const char *chat_owner;
	size_t pos;
};

/*
 * The provider's page names the sign header but not how to compute it. The algorithm comes
 * from public client code, where independent clients agree: lowercase hex SHA-256 over
 * appId + timestamp + body + appKey, body being byte for byte what is sent.
 */
static void
tanmarket_sign(const char *app_id, const char *timestamp, const char *body, size_t body_len,
               const char *app_key, char out[TANMARKET_SIGN_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	out[0] = '\0';
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, app_id, strlen(app_id)) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    (body_len == 0 || EVP_DigestUpdate(ctx, body, body_len) == 1) &&
	    EVP_DigestUpdate(ctx, app_key, strlen(app_key)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 32;
	if (ok)
		provider_hex(md, md_len, out);
	EVP_MD_CTX_free(ctx);
}

void
tanmarket_sign_hex(const char *app_id, const char *timestamp, const char *body, size_t body_len,
                   const char *app_key, char out[TANMARKET_SIGN_LEN])
{
	tanmarket_sign(app_id, timestamp, body, body_len, app_key, out);
}

/* app_id and app_key travel as header values: a CR or LF would forge headers. */
static int
tanmarket_check_header_key(const struct channel *ch, const char *key, char **err)
{
	const char *v = config_str(ch, key);

	if (v == NULL || v[0] == '\0')
		return util_err(err, "%s: required and must not be empty", key);
	if (provider_has_control(v))
		return util_err(err, "%s: must not contain control characters", key);
	return 0;
}

static int
tanmarket_check_channel(const struct channel *ch, char **err)
{
	int64_t mode = config_int(ch, "mode", 1);

	if (tanmarket_check_header_key(ch, "app_id", err) == -1 ||
	    tanmarket_check_header_key(ch, "app_key", err) == -1)
		return -1;
	if (mode < INT32_MIN || mode > INT32_MAX)
		return util_err(err, "mode: must be a 32-bit integer");
	return 0;
}

static int
tanmarket_check_recipient(const cJSON *recipient, char **err)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(recipient, "chat_id");
	const cJSON *owner = cJSON_GetObjectItemCaseSensitive(recipient, "chat_owner");

	if (!cJSON_IsString(id) || id->valuestring[0] == '\0')
		return util_err(err, "\"chat_id\" (the WeCom group id) must be a non-empty string");
	if (!cJSON_IsString(owner) || owner->valuestring[0] == '\0')
		return util_err(err, "\"chat_owner\" (the group owner's id) must be a non-empty string");
	return 0;
}

/* The message's contents if well-formed, else NULL + *err. */
static const cJSON *
tanmarket_contents(const cJSON *message, char **err)
{
	const cJSON *contents = cJSON_GetObjectItemCaseSensitive(message, "contents");
	const cJSON *c, *type;
	int i = 0;

	if (!cJSON_IsArray(contents) || contents->child == NULL) {
		util_err(err, "\"contents\" must be a non-empty array (the step's sopDatas)");
		return NULL;
	}
	cJSON_ArrayForEach(c, contents) {
		type = cJSON_GetObjectItemCaseSensitive(c, "type");
		if (!cJSON_IsObject(c) || !cJSON_IsNumber(type) ||
		    !(type->valuedouble >= INT32_MIN && type->valuedouble <= INT32_MAX) ||
		    type->valuedouble != (double)(int32_t)type->valuedouble) {
			util_err(err, "contents[%d] must be an object with an integer \"type\"", i);
			return NULL;
		}
		i++;
	}
	return contents;
}

static int
tanmarket_check_message(const cJSON *message, int rendered, char **err)
{
	const cJSON *c;

	(void)rendered; /* no size limit is documented */
	if (!cJSON_IsObject(message))
		return util_err(err, "the message must be an object {\"contents\": [...]}");
	for (c = message->child; c; c = c->next) {
		if (strcmp(c->string, "contents") != 0) {
			return util_err(err, "unknown member \"%s\" (tanmarket messages take only "
			                "contents)", c->string);
		}
	}
	return tanmarket_contents(message, err) ? 0 : -1;
}

/*
 * The SOP is made on day 1 (never before: the provider's day 1 is the day of the call), and a
 * step whose time has passed can no longer be carried by one, so it expires a minute before its
 * due time: build refuses a step already due, and that minute keeps a step from expiring
 * between the claim and the build and failing the whole call with it.
 */
static void
tanmarket_schedule(const struct channel *ch, int64_t due_at_ms, int64_t day1_start_ms,
                   int64_t expire_after_ms, int64_t *next_at_ms, int64_t *expires_at_ms)
{
	(void)ch;
	(void)expire_after_ms;
	*next_at_ms = day1_start_ms;
	*expires_at_ms = due_at_ms - MINUTE_MS;
}

/* The SOP day a step falls on when the call is made on campaign_day_now. */
static int64_t
tanmarket_show_date(const struct provider_item *item)
{
	return (int64_t)item->step_day - ((int64_t)item->campaign_day_now - 1);
}

static const char *
tanmarket_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* Fills ref for item i, or -1 + *err when the item cannot be part of this SOP. */
static int
tanmarket_ref_fill(const struct provider_item *items, size_t i, int64_t now_ms,
                   struct tanmarket_ref *ref, char **err)
{
	const struct provider_item *it = &items[i];
	long long id = (long long)it->delivery_id;

	ref->item = it;
	ref->pos = i;
	ref->chat_id = it->recipient_id && it->recipient_id[0] ? it->recipient_id :
	    tanmarket_str(it->recipient, "chat_id");
	ref->chat_owner = tanmarket_str(it->recipient, "chat_owner");
	if (!ref->chat_id || !ref->chat_owner)
		return util_err(err, "delivery %lld: the recipient needs chat_id and chat_owner", id);
	if (!it->campaign_key || !items[0].campaign_key ||
	    strcmp(it->campaign_key, items[0].campaign_key) != 0 ||
	    it->campaign_day_now != items[0].campaign_day_now || !it->step_time) {
		return util_err(err, "delivery %lld: not of the same campaign call as the batch", id);
	}
	if (tanmarket_show_date(it) < 1 || it->due_at_ms <= now_ms) {
		return util_err(err, "delivery %lld: step %d (day %d %s) has passed on campaign day "
		                "%d; an SOP created now cannot carry it", id, it->step, it->step_day,
		                it->step_time, it->campaign_day_now);
	}
	return tanmarket_contents(it->message, err) ? 0 : -1;
}

static int
tanmarket_cmp_group(const void *pa, const void *pb)
{
	const struct tanmarket_ref *a = pa, *b = pb;
	int c = strcmp(a->chat_id, b->chat_id);

	if (c == 0)
		c = strcmp(a->chat_owner, b->chat_owner);
	if (c == 0)
		c = a->pos < b->pos ? -1 : a->pos > b->pos;
	return c;
}

static int
tanmarket_cmp_step(const void *pa, const void *pb)
{
	const struct tanmarket_ref *a = pa, *b = pb;

	if (a->item->step != b->item->step)
		return a->item->step < b->item->step ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* groupInfos: one per distinct (chat_id, chat_owner), in the order first seen. */
static cJSON *
tanmarket_groups(struct tanmarket_ref *refs, size_t n)
{
	const struct tanmarket_ref **first = calloc(n, sizeof *first);
	cJSON *arr = cJSON_CreateArray(), *g;
	size_t i;
	int ok = first && arr;

	if (ok) {
		qsort(refs, n, sizeof *refs, tanmarket_cmp_group);
		for (i = 0; i < n; i++)
			if (i == 0 || strcmp(refs[i].chat_id, refs[i - 1].chat_id) ||
			    strcmp(refs[i].chat_owner, refs[i - 1].chat_owner))
				first[refs[i].pos] = &refs[i];
	}
	for (i = 0; ok && i < n; i++) {
		if (!first[i])
			continue;
		ok = (g = cJSON_CreateObject()) != NULL && cJSON_AddItemToArray(arr, g) &&
		    cJSON_AddStringToObject(g, "chatId", first[i]->chat_id) &&
		    cJSON_AddStringToObject(g, "chatOwner", first[i]->chat_owner);
	}
	free(first);
	if (!ok) {
		cJSON_Delete(arr);
		return NULL;
	}
	return arr;
}

/* One sopContents entry for the step whose first delivery is head. */
static int
tanmarket_step_add(cJSON *arr, const struct provider_item *head)
{
	const cJSON *contents = cJSON_GetObjectItemCaseSensitive(head->message, "contents");
	cJSON *s = cJSON_CreateObject(), *datas = cJSON_Duplicate(contents, 1);

	if (!s || !datas || !cJSON_AddItemToArray(arr, s)) {
		cJSON_Delete(s);
		cJSON_Delete(datas);
		return -1;
	}
	if (!cJSON_AddNumberToObject(s, "showDate", (double)tanmarket_show_date(head)) ||
	    !cJSON_AddStringToObject(s, "showTime", head->step_time) ||
	    !cJSON_AddItemToObject(s, "sopDatas", datas)) {
		cJSON_Delete(datas);
		return -1;
	}
	return 0;
}

/* sopContents: one per distinct step, in step order. NULL + *err when a step is inconsistent. */
static cJSON *
tanmarket_steps(struct tanmarket_ref *refs, size_t n, char **err)
{
	const struct provider_item *head = NULL, *it;
	cJSON *arr = cJSON_CreateArray();
	size_t i;

	if (arr == NULL)
		goto oom;
	qsort(refs, n, sizeof *refs, tanmarket_cmp_step);
	for (i = 0; i < n; i++) {
		it = refs[i].item;
		if (head && head->step == it->step) {
			/* One SOP step carries one content to every group. */
			if (it->step_day != head->step_day || strcmp(it->step_time, head->step_time) ||
			    !cJSON_Compare(cJSON_GetObjectItemCaseSensitive(it->message, "contents"),
			                   cJSON_GetObjectItemCaseSensitive(head->message, "contents"), 1)) {
				util_err(err, "delivery %lld: step %d differs from the other groups' (an "
				         "SOP step has one time and one content for every group)",
				         (long long)it->delivery_id, it->step);
				cJSON_Delete(arr);
				return NULL;
			}
			continue;
		}
		head = it;
		if (tanmarket_step_add(arr, head) == -1)
			goto oom;
	}
	return arr;
oom:
	cJSON_Delete(arr);
	util_err(err, "out of memory");
	return NULL;
}

/* The whole request body as a tree, or NULL + *err. */
static cJSON *
tanmarket_body(const struct channel *ch, struct provider_item *items, size_t n, int64_t now_ms,
               char **err)
{
	struct tanmarket_ref *refs = calloc(n, sizeof *refs);
	cJSON *root = cJSON_CreateObject(), *groups = NULL, *steps = NULL;
	const char *title = items[0].campaign_name;
	size_t i;

	if (!refs || !root)
		goto oom;
	for (i = 0; i < n; i++)
		if (tanmarket_ref_fill(items, i, now_ms, &refs[i], err) == -1)
			goto fail;
	if (!title || !title[0])
		title = items[0].campaign_key;
	if ((groups = tanmarket_groups(refs, n)) == NULL ||
	    !cJSON_AddItemToObject(root, "groupInfos", groups))
		goto oom;
	groups = NULL;
	if (!cJSON_AddStringToObject(root, "title", title) ||
	    !cJSON_AddNumberToObject(root, "mode", (double)config_int(ch, "mode", 1)))
		goto oom;
	if ((steps = tanmarket_steps(refs, n, err)) == NULL)
		goto fail;
	if (!cJSON_AddItemToObject(root, "sopContents", steps))
		goto oom;
	free(refs);
	return root;
oom:
	util_err(err, "out of memory");
fail:
	cJSON_Delete(groups);
	cJSON_Delete(steps);
	cJSON_Delete(root);
	free(refs);
	return NULL;
}

static int
tanmarket_build(void *state, const struct channel *ch, struct provider_item *items, size_t n,
                int64_t now_ms, struct provider_request *req, char **err)
{
	const char *app_id = config_str(ch, "app_id"), *app_key = config_str(ch, "app_key");
	char ts[24], sign[TANMARKET_SIGN_LEN];
	struct buf url = {0};
	cJSON *root = NULL;
	int rc = -1;

	(void)state;
	if (n == 0 || !app_id || !app_key) {
		util_err(err, "%s", n == 0 ? "empty batch" : "app_id and app_key are required");
		goto out;
	}
	if ((root = tanmarket_body(ch, items, n, now_ms, err)) == NULL)
		goto out;
	/* Serialized once: the bytes signed are the bytes sent. */
	if ((req->body = cJSON_PrintUnformatted(root)) == NULL)
		goto oom;
	req->body_len = strlen(req->body);
	snprintf(ts, sizeof ts, "%" PRId64, now_ms);
	tanmarket_sign(app_id, ts, req->body, req->body_len, app_key, sign);
	if (sign[0] == '\0') {
		util_err(err, "could not compute the request sign (SHA-256)");
		goto out;
	}
	if (buf_printf(&url, "%s%s", ch->base_url, TANMARKET_PATH) != 0)
		goto oom;
	req->url = url.data;
	url.data = NULL;
	if (provider_request_header(req, "appId: %s", app_id) == -1 ||
	    provider_request_header(req, "timestamp: %s", ts) == -1 ||
	    provider_request_header(req, "sign: %s", sign) == -1 ||
	    provider_request_header(req, "appKey: %s", app_key) == -1 ||
	    provider_request_header(req, "Content-Type: application/json") == -1)
		goto oom;
	rc = 0;
	goto out;
oom:
	util_err(err, "out of memory");
out:
	if (rc == -1)
		provider_request_clear(req);
	buf_free(&url);
	cJSON_Delete(root);
	return rc;
}

/* The SOP's id from data.sopId or data.id, as new text; NULL when none. */
static char *
tanmarket_answer_id(const cJSON *root)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	const char *names[] = {"sopId", "id"};
	const cJSON *v;
	struct buf b = {0};
	int64_t num;
	size_t i;

	for (i = 0; cJSON_IsObject(data) && i < sizeof names / sizeof names[0]; i++) {
		v = cJSON_GetObjectItemCaseSensitive(data, names[i]);
		if (cJSON_IsString(v) && v->valuestring[0])
			return provider_text(v->valuestring);
		if (cJSON_IsNumber(v) && util_json_i64(v, &num) == 0)
			return buf_printf(&b, "%" PRId64, num) == 0 ? b.data : NULL;
	}
	return NULL;
}

/* The provider's message, bounded, and dropped entirely if it would echo the app key. */
static char *
tanmarket_answer_text(const cJSON *root, const struct channel *ch)
{
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "msg");
	const char *key = ch ? config_str(ch, "app_key") : NULL;

	if (!cJSON_IsString(msg) || !msg->valuestring[0])
		msg = cJSON_GetObjectItemCaseSensitive(root, "message");
	if (!cJSON_IsString(msg) || !msg->valuestring[0])
		return NULL;
	if (key && key[0] && strstr(msg->valuestring, key))
		return NULL;
	return provider_text(msg->valuestring);
}

/* An "error" member that says something: not null, false, 0 or "". */
static int
tanmarket_says_error(const cJSON *e)
{
	if (!e || cJSON_IsNull(e) || cJSON_IsFalse(e))
		return 0;
	if (cJSON_IsString(e))
		return e->valuestring[0] != '\0';
	if (cJSON_IsNumber(e))
		return e->valuedouble != 0;
	return 1;
}

/* A non-zero code: the call was refused, and the SOP was not created. */
static void
tanmarket_judge_code(long http_status, int64_t code, const char *text,
                     struct provider_item *items, size_t n)
{
	enum provider_outcome outcome = PROVIDER_PERMANENT;
	char code_s[32];
	const char *what = "request rejected";

	snprintf(code_s, sizeof code_s, "%" PRId64, code);
	if (code == TANMARKET_CODE_CLOCK_SKEW) {
		/* The next attempt carries a fresh timestamp and sign. */
		outcome = PROVIDER_TRANSIENT;
		what = "request time too far from the provider's clock";
	} else if (code == TANMARKET_CODE_BAD_SIGN) {
		what = "sign rejected: check app_id and app_key";
	}
	if (http_status == 429 || http_status == 503)
		outcome = PROVIDER_TRANSIENT;
	provider_verdict_all(items, n, outcome, code_s, text ? text : what);
	/* A refused sign is the channel's credentials, not this SOP: suspend the channel. */
	if (code == TANMARKET_CODE_BAD_SIGN)
		for (size_t i = 0; i < n; i++)
			items[i].channel_fault = 1;
}

static void
tanmarket_judge(void *state, const struct channel *ch, long http_status, const char *body,
                size_t body_len, struct provider_item *items, size_t n, int64_t now_ms)
{
	cJSON *root = provider_parse_answer(body, body_len);
	const cJSON *code_v = cJSON_GetObjectItemCaseSensitive(root, "code");
	char *text = NULL, *id = NULL, buf[64];
	int64_t code = 0;
	size_t i;

	(void)state;
	(void)now_ms;
	if (!cJSON_IsObject(root) || (code_v && provider_json_code(code_v, &code) == -1)) {
		/* The SOP may exist: a blind retry could create a second one. */
		if (!provider_judge_http(http_status, items, n))
			provider_verdict_unreadable(items, n, "no JSON object with an integer code");
		goto out;
	}
	text = tanmarket_answer_text(root, ch);
	if (code != 0) {
		tanmarket_judge_code(http_status, code, text, items, n);
		goto out;
	}
	/* No code at all is success only without a sign of failure (SPEC 5.4). */
	if (!code_v && (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "success")) ||
	                tanmarket_says_error(cJSON_GetObjectItemCaseSensitive(root, "error")))) {
		if (!provider_judge_http(http_status, items, n))
			provider_verdict_all(items, n, PROVIDER_PERMANENT, NULL,
			                     text ? text : "the answer says success: false");
		goto out;
	}
	if (http_status != 200) {
		snprintf(buf, sizeof buf, "unexpected HTTP %ld", http_status);
		if (!provider_judge_http(http_status, items, n))
			provider_verdict_all(items, n, PROVIDER_PERMANENT, NULL, buf);
		goto out;
	}
	id = tanmarket_answer_id(root);
	for (i = 0; i < n; i++) {
		provider_verdict(&items[i], PROVIDER_SENT, code_v ? "0" : "", text);
		free(items[i].message_id);
		items[i].message_id = id ? strdup(id) : NULL;
	}
out:
	free(id);
	free(text);
	cJSON_Delete(root);
}

const struct provider_ops provider_tanmarket = {
	.name = "tanmarket",
	.batching = PROVIDER_BY_CAMPAIGN,
	.dedups = 0,
	.keys = tanmarket_keys,
	.check_channel = tanmarket_check_channel,
	.check_recipient = tanmarket_check_recipient,
	.check_message = tanmarket_check_message,
	.schedule = tanmarket_schedule,
	.build = tanmarket_build,
	.judge = tanmarket_judge,
};
