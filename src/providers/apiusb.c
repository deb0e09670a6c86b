/*
 * apiusb: APIUSB's Platform.ChatMessage.BulkSend, a PhalApi service. One form POST carries one
 * rendered message to many member uuids; `ret` says whether the call was accepted and
 * data.item says, member by member, which message id each one got. A member the answer does
 * not list (or lists without an id) counts as not sent, whatever `ret` says: the document
 * promises per-member results, and guessing "sent" could hide a lost message.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "provider.h"
#include "util.h"

/* The Platform entry point and the service, in the query (PhalApi takes s= or service=). */
#define APIUSB_PATH "/api/platform?s=Platform.ChatMessage.BulkSend"
#define APIUSB_BATCH_DEFAULT 100
#define APIUSB_BATCH_MAX 1000
#define APIUSB_TEXT_BYTES 2048 /* zero-width characters make columns alone no bound */

#define APIUSB_NOT_LISTED "not in data.item of an accepted BulkSend"

static const struct config_key apiusb_keys[] = {
	{"access_token", CONFIG_STRING, 0},
	{"batch_size", CONFIG_INT, 0},
	{NULL, CONFIG_STRING, 0},
};

static const char *const apiusb_types[] = {"text", "html", "image", "link", "custom", NULL};

/* The wire values of one rendered message. */
struct apiusb_msg {
	const char *type;             /* points into the message */
	char *data;                   /* malloc'd: the string, or compact JSON of an object/array */
	const char *ext_data;         /* points into the message, NULL when absent */
};

/* One member result from data.item; pos keeps the answer's order for duplicates. */
struct apiusb_entry {
	const char *uuid;             /* points into the parsed answer */
	const char *id;               /* points into the answer; "" when missing or numeric */
	size_t pos;
	char num[32];                 /* a numeric chat_message_id as text, "" when none (kept in
	                                 the entry, not pointed at: qsort moves entries) */
};

/* The provider's "msg", bounded, and dropped entirely if it would echo the access token. */
static char *
apiusb_answer_text(const cJSON *root, const struct channel *ch)
{
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "msg");
	const char *token = ch ? config_str(ch, "access_token") : NULL;

	if (!cJSON_IsString(msg) || msg->valuestring[0] == '\0')
		return NULL;
	if (token && token[0] && strstr(msg->valuestring, token))
		return NULL;
	return provider_text(msg->valuestring);
}

static int
apiusb_check_channel(const struct channel *ch, char **err)
{
	const char *token = config_str(ch, "access_token");
	int64_t batch = config_int(ch, "batch_size", APIUSB_BATCH_DEFAULT);

	if (batch < 1 || batch > APIUSB_BATCH_MAX)
		return util_err(err, "batch_size: must be 1..%d", APIUSB_BATCH_MAX);
	if (token && token[0] == '\0') {
		return util_err(err, "access_token: must not be empty (leave it out when the API "
		                "needs none)");
	}
	return 0;
}

static int
apiusb_check_recipient(const cJSON *recipient, char **err)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(recipient, "id");

	if (!cJSON_IsString(id) || id->valuestring[0] == '\0')
		return util_err(err, "\"id\" (the member uuid) must be a non-empty string");
	if (strchr(id->valuestring, ',')) {
		/* BulkSend separates uuids with commas, so one would split into two members. */
		return util_err(err, "\"id\" must not contain a comma");
	}
	return 0;
}

/* Reads and checks type, data and ext_data; 0 with m->data malloc'd, or -1 + *err. */
static int
apiusb_msg_read(const cJSON *message, struct apiusb_msg *m, char **err)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(message, "type");
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(message, "data");
	const cJSON *ext = cJSON_GetObjectItemCaseSensitive(message, "ext_data");
	size_t i;

	memset(m, 0, sizeof *m);
	for (i = 0; cJSON_IsString(type) && apiusb_types[i]; i++)
		if (strcmp(type->valuestring, apiusb_types[i]) == 0)
			m->type = apiusb_types[i];
	if (m->type == NULL)
		return util_err(err, "\"type\" must be one of text, html, image, link, custom");
	if (ext && !cJSON_IsString(ext))
		return util_err(err, "\"ext_data\" must be a string");
	m->ext_data = ext ? ext->valuestring : NULL;
	if (cJSON_IsString(data) && data->valuestring[0] != '\0')
		m->data = strdup(data->valuestring);
	else if (cJSON_IsObject(data) || cJSON_IsArray(data))
		m->data = cJSON_PrintUnformatted(data);
	else
		return util_err(err, "\"data\" must be a non-empty string, an object or an array");
	if (m->data == NULL)
		return util_err(err, "out of memory");
	return 0;
}

static int
apiusb_check_message(const cJSON *message, int rendered, char **err)
{
	struct apiusb_msg m;
	const cJSON *c;

	(void)rendered; /* no size limit is documented */
	if (!cJSON_IsObject(message))
		return util_err(err, "the message must be an object {\"type\", \"data\"}");
	for (c = message->child; c; c = c->next) {
		if (strcmp(c->string, "type") && strcmp(c->string, "data") &&
		    strcmp(c->string, "ext_data")) {
			return util_err(err, "unknown member \"%s\" (apiusb messages take type, "
			                "data, ext_data)", c->string);
		}
	}
	if (apiusb_msg_read(message, &m, err) == -1)
		return -1;
	free(m.data);
	return 0;
}

static int
apiusb_msg_same(const struct apiusb_msg *a, const struct apiusb_msg *b)
{
	if (strcmp(a->type, b->type) != 0 || strcmp(a->data, b->data) != 0)
		return 0;
	if (!a->ext_data || !b->ext_data)
		return a->ext_data == b->ext_data;
	return strcmp(a->ext_data, b->ext_data) == 0;
}

/* Appends "&name=value" (no "&" when first), value percent-encoded; 0 / -1. */
static int
apiusb_form_add(struct buf *b, const char *name, const char *value)
{
	char *enc = provider_urlencode(value);
	int rc = enc ? buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, enc) : -1;

	free(enc);
	return rc;
}

/* chat_message_to_uuid: the members' uuids joined by "," (sent encoded, as %2C). */
static int
apiusb_form_uuids(struct buf *b, const struct provider_item *items, size_t n, char **err)
{
	char *enc;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const char *id = items[i].recipient_id;

		if (id == NULL || id[0] == '\0' || strchr(id, ','))
			return util_err(err, "delivery %lld: the member uuid is empty or holds a comma",
			                (long long)items[i].delivery_id);
	}
	if (buf_append(b, "chat_message_to_uuid=", 21) != 0)
		return util_err(err, "out of memory");
	for (i = 0; i < n; i++) {
		if ((enc = provider_urlencode(items[i].recipient_id)) == NULL)
			return util_err(err, "out of memory");
		rc = buf_printf(b, "%s%s", i ? "%2C" : "", enc);
		free(enc);
		if (rc != 0)
			return util_err(err, "out of memory");
	}
	return 0;
}

static int
apiusb_build(void *state, const struct channel *ch, struct provider_item *items, size_t n,
             int64_t now_ms, struct provider_request *req, char **err)
{
	struct apiusb_msg first = {0}, other = {0};
	const char *token = config_str(ch, "access_token");
	struct buf body = {0}, url = {0};
	size_t i;
	int rc = -1;

	(void)state;
	(void)now_ms;
	if (n == 0) {
		util_err(err, "empty batch");
		goto out;
	}
	if (apiusb_msg_read(items[0].message, &first, err) == -1)
		goto out;
	for (i = 1; i < n; i++) {
		if (apiusb_msg_read(items[i].message, &other, err) == -1)
			goto out;
		if (!apiusb_msg_same(&first, &other)) {
			util_err(err, "delivery %lld: its rendered message differs from the rest of the "
			         "batch (BulkSend sends one message to all members)",
			         (long long)items[i].delivery_id);
			goto out;
		}
		free(other.data);
		other.data = NULL;
	}
	if (apiusb_form_uuids(&body, items, n, err) == -1)
		goto out;
	if (apiusb_form_add(&body, "chat_message_data", first.data) != 0 ||
	    apiusb_form_add(&body, "chat_message_type", first.type) != 0 ||
	    (token && token[0] && apiusb_form_add(&body, "access_token", token) != 0) ||
	    (first.ext_data && apiusb_form_add(&body, "ext_data", first.ext_data) != 0) ||
	    buf_printf(&url, "%s%s", ch->base_url, APIUSB_PATH) != 0 ||
	    provider_request_header(req, "Content-Type: application/x-www-form-urlencoded") != 0) {
		util_err(err, "out of memory");
		goto out;
	}
	req->body = body.data;
	req->body_len = body.len;
	req->url = url.data;
	body.data = url.data = NULL;
	rc = 0;
out:
	if (rc == -1)
		provider_request_clear(req);
	buf_free(&body);
	buf_free(&url);
	free(first.data);
	free(other.data);
	return rc;
}

static int
apiusb_entry_cmp(const void *pa, const void *pb)
{
	const struct apiusb_entry *a = pa, *b = pb;
	int c = strcmp(a->uuid, b->uuid);

	if (c != 0)
		return c;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Adds one data.item member if it names a uuid (its other_uuid, else the key it is filed
   under when data.item is an object keyed by uuid); anything else in it is ignored. */
static void
apiusb_entry_add(const cJSON *obj, const char *key, struct apiusb_entry *e, size_t *n)
{
	const cJSON *uuid = cJSON_GetObjectItemCaseSensitive(obj, "other_uuid");
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "chat_message_id");
	struct apiusb_entry *x = &e[*n];
	int64_t num;

	if (cJSON_IsString(uuid))
		x->uuid = uuid->valuestring;
	else if (key && key[0])
		x->uuid = key;
	else
		return;
	x->pos = *n;
	x->id = "";
	if (cJSON_IsString(id)) {
		x->id = id->valuestring;
	} else if (util_json_i64(id, &num) == 0) {
		snprintf(x->num, sizeof x->num, "%lld", (long long)num);
	}
	(*n)++;
}

/* The first id the answer gives uuid (entries sorted), or NULL when none. */
static const char *
apiusb_entry_find(const struct apiusb_entry *e, size_t n, const char *uuid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e[mid].uuid, uuid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && strcmp(e[lo].uuid, uuid) == 0; lo++) {
		if (e[lo].num[0] != '\0')
			return e[lo].num;
		if (e[lo].id[0] != '\0')
			return e[lo].id;
	}
	return NULL;
}

static void
apiusb_set_sent(struct provider_item *item, const char *id, const char *text)
{
	provider_verdict(item, PROVIDER_SENT, "200", text);
	free(item->message_id);
	item->message_id = strdup(id);
}

/*
 * ret 200: each member's verdict comes from data.item, matched by other_uuid. data.item may
 * be an array of results, one result object, or an object of results keyed by uuid. An
 * accepted call with no data.item at all (the seed's own sample answer) is sent, with no
 * message id to record (SPEC 5.4).
 */
static void
apiusb_judge_members(const cJSON *root, const char *text, struct provider_item *items, size_t n)
{
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
	const cJSON *list = cJSON_IsObject(data) ? cJSON_GetObjectItemCaseSensitive(data, "item") : NULL;
	struct apiusb_entry *e = NULL;
	const cJSON *c;
	const char *id;
	size_t m = 0, count = 0, i;
	int one = 0;

	if (!list || cJSON_IsNull(list)) {
		provider_verdict_all(items, n, PROVIDER_SENT, "200",
		                     text ? text : "accepted; the answer lists no members (no data.item)");
		return;
	}
	if (cJSON_IsArray(list) || cJSON_IsObject(list))
		count = (size_t)cJSON_GetArraySize(list);
	/* The document calls data.item an object: one member's result, or results by uuid. */
	one = cJSON_IsObject(list) && cJSON_GetObjectItemCaseSensitive(list, "other_uuid") != NULL;
	if (one)
		count = 1;
	if (count > 0 && (e = calloc(count, sizeof *e)) == NULL) {
		/* Accepted but unreadable for want of memory: it may have gone to anyone. */
		provider_verdict_all(items, n, PROVIDER_AMBIGUOUS, "200", "out of memory reading data.item");
		return;
	}
	if (one) {
		apiusb_entry_add(list, NULL, e, &m);
	} else if (count > 0) {
		cJSON_ArrayForEach(c, list)
			if (cJSON_IsObject(c) && m < count)
				apiusb_entry_add(c, cJSON_IsObject(list) ? c->string : NULL, e, &m);
	}
	if (m > 1)
		qsort(e, m, sizeof *e, apiusb_entry_cmp);
	for (i = 0; i < n; i++) {
		id = items[i].recipient_id ? apiusb_entry_find(e, m, items[i].recipient_id) : NULL;
		if (id)
			apiusb_set_sent(&items[i], id, text);
		else
			provider_verdict(&items[i], PROVIDER_PERMANENT, "", APIUSB_NOT_LISTED);
	}
	free(e);
}

/*
 * A ret other than 200: PhalApi's 4xx are the caller's fault (ret = 400 + a project code),
 * 5xx the server's, which may have acted before it failed. 406 is a rejected access token;
 * 407 and 408 are undocumented account refusals next to it: all three are the channel's
 * fault, not the message's, so they suspend the channel (SPEC 5.11).
 */
static void
apiusb_judge_ret(int64_t ret, const char *text, struct provider_item *items, size_t n)
{
	char code[32], buf[APIUSB_TEXT_BYTES + 128];
	size_t i;

	snprintf(code, sizeof code, "%" PRId64, ret);
	if (ret >= 406 && ret <= 408) {
		snprintf(buf, sizeof buf, "%s%s%s", ret == 406 ? "access_token rejected (expired, "
		         "invalid, or the channel has none)" : "account refused", text ? ": " : "",
		         text ? text : "");
		provider_verdict_all(items, n, PROVIDER_PERMANENT, code, buf);
		for (i = 0; i < n; i++)
			items[i].channel_fault = 1;
	} else if (ret >= 500 && ret <= 599) {
		snprintf(buf, sizeof buf, "server error%s%s", text ? ": " : "", text ? text : "");
		provider_verdict_all(items, n, PROVIDER_AMBIGUOUS, code, buf);
	} else {
		snprintf(buf, sizeof buf, "request rejected%s%s", text ? ": " : "", text ? text : "");
		provider_verdict_all(items, n, PROVIDER_PERMANENT, code, buf);
	}
}

static void
apiusb_judge(void *state, const struct channel *ch, long http_status, const char *body,
             size_t body_len, struct provider_item *items, size_t n, int64_t now_ms)
{
	cJSON *root = provider_parse_answer(body, body_len);
	char *text = NULL;
	int64_t ret;

	(void)state;
	(void)now_ms;
	if (!cJSON_IsObject(root) ||
	    util_json_i64(cJSON_GetObjectItemCaseSensitive(root, "ret"), &ret) == -1) {
		if (!provider_judge_http(http_status, items, n))
			provider_verdict_unreadable(items, n, "no integer \"ret\"");
		goto out;
	}
	text = apiusb_answer_text(root, ch);
	/* The HTTP status says nothing was done (SPEC 5.10): that outranks any ret in the body. */
	if (http_status == 429 || http_status == 503 || http_status == 408) {
		provider_judge_http(http_status, items, n);
		goto out;
	}
	if (ret == 200) {
		/* An accepted body behind an HTTP error is a contradiction: never call it sent. */
		if (provider_judge_http(http_status, items, n))
			goto out;
		apiusb_judge_members(root, text, items, n);
	} else {
		apiusb_judge_ret(ret, text, items, n);
	}
out:
	free(text);
	cJSON_Delete(root);
}

const struct provider_ops provider_apiusb = {
	.name = "apiusb",
	.batching = PROVIDER_BY_MESSAGE,
	.dedups = 0,
	.keys = apiusb_keys,
	.check_channel = apiusb_check_channel,
	.check_recipient = apiusb_check_recipient,
	.check_message = apiusb_check_message,
	.build = apiusb_build,
	.judge = apiusb_judge,
};
