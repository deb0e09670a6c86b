/*
 * sainiu: SaiNiuApi's SendCustomerServiceUserGroup (seed 000, providers.md §1): a Qianniu
 * seller account (userNick) notifies everyone subscribed to its exclusive customer service.
 *
 * The provider schedules the send itself: the call carries `sendtime`, which must be at
 * least 2 h after the call, so Herald calls `lead` ahead of the due time (SPEC §5.2). The
 * account may be used once per 7×24 h, for calls and for send times alike (SPEC §5.3):
 * admit() keeps that rule from the per-account state the store hands it.
 *
 * No de-duplication key exists (dedups = 0). A code given as a string of decimal digits is
 * read as that number; any other shape is a malformed answer, retried, never taken as sent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "clock.h"
#include "provider.h"
#include "sainiu.h"
#include "util.h"

#define SAINIU_PATH "/SaiNiuApi/Api"
#define SAINIU_POST "SendCustomerServiceUserGroup"
/* Longer `data` is a text, not an id worth keeping. */
#define SAINIU_ID_MAX 256

/* The provider's minimum distance from the call to sendtime ("时间至少延后2个小时"). */
#define SAINIU_MIN_AHEAD_MS (2 * HOUR_MS)
/* Headroom on top of it for clock skew and request latency when admitting a late call. */
#define SAINIU_MARGIN_MS (5 * MINUTE_MS)
#define SAINIU_LEAD_DEFAULT_MS (2 * HOUR_MS + 30 * MINUTE_MS)
/* SPEC §2: at least the provider's 2 hours. A lead under 2h05m (the minimum plus the margin)
   still works: the margin then moves sendtime a few minutes past the due time. */
#define SAINIU_LEAD_MIN_MS SAINIU_MIN_AHEAD_MS

/* The verdict read from one answer; strings point into the parsed answer or a literal. */
struct sainiu_answer {
	enum provider_outcome outcome;
	char code[32];
	const char *text;
	const char *message_id;       /* SENT only; NULL when none */
	char num[32];                 /* a numeric data, as text */
};

static const struct config_key sainiu_keys[] = {
	{"sign_key", CONFIG_STRING, 0},
	{"lead", CONFIG_DURATION, 0},
	{NULL, CONFIG_STRING, 0},
};

static int64_t
sainiu_max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static int64_t
sainiu_lead(const struct channel *ch)
{
	return config_int(ch, "lead", SAINIU_LEAD_DEFAULT_MS);
}

static int
sainiu_check_channel(const struct channel *ch, char **err)
{
	const char *key = config_str(ch, "sign_key");

	if (sainiu_lead(ch) < SAINIU_LEAD_MIN_MS)
		return util_err(err, "lead: must be at least 2h (the least the provider accepts "
		                "between the call and sendtime)");
	if (key != NULL && key[0] == '\0')
		return util_err(err, "sign_key: must not be empty (leave it out when the server "
		                "has no key)");
	return 0;
}

static int
sainiu_check_recipient(const cJSON *recipient, char **err)
{
	if (!cJSON_IsObject(recipient) || provider_json_str(recipient, "id") == NULL)
		return util_err(err, "a sainiu recipient needs a non-empty string \"id\" (the "
		                "seller's userNick)");
	return 0;
}

/* Sets *text to the message's text. "$userNick$" is the provider's and passes through. */
static int
sainiu_message_text(const cJSON *message, const char **text, char **err)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(message, "type");

	if (!cJSON_IsObject(message) || !cJSON_IsString(type) ||
	    strcmp(type->valuestring, "text") != 0)
		return util_err(err, "a sainiu message must be {\"type\": \"text\", \"text\": ...}");
	if ((*text = provider_json_str(message, "text")) == NULL)
		return util_err(err, "\"text\" must be a non-empty string");
	return 0;
}

static int
sainiu_check_message(const cJSON *message, int rendered, char **err)
{
	const char *text;

	(void)rendered; /* no size limit is documented */
	return sainiu_message_text(message, &text, err);
}

/*
 * The call goes `lead` ahead of the due time. What expires is the send time, not the call: a
 * late call (the scheduler was down, or the due time was already near) carries the earliest
 * send time the provider accepts, now + 2 h + margin (admit), and that must stay before
 * due + expire_after like any late send. So the last moment to call is expire_after less
 * that distance after the due time; the claim expires the delivery from then on, the same
 * instant at which any other provider's delivery would be sent that late. Since lead is at
 * least the distance plus 5 minutes, a call made on time never meets this expiry.
 */
static void
sainiu_schedule(const struct channel *ch, int64_t due_at_ms, int64_t day1_start_ms,
                int64_t expire_after_ms, int64_t *next_at_ms, int64_t *expires_at_ms)
{
	(void)day1_start_ms;
	*next_at_ms = due_at_ms - sainiu_lead(ch);
	*expires_at_ms = due_at_ms + expire_after_ms - (SAINIU_MIN_AHEAD_MS + SAINIU_MARGIN_MS);
}

/* The 7-day rule counts per seller account: the recipient is that account. */
static const char *
sainiu_limit_account(const struct provider_item *item)
{
	const char *id = provider_json_str(item->recipient, "id");

	return id != NULL ? id : item->recipient_id;
}

/*
 * SPEC §5.3. The send time is the due time, pushed past the last accepted sendtime + 7 d;
 * the call goes `lead` before it, but not before now or the last accepted call + 7 d. When
 * the call cannot go now, it is deferred to that time and the send time it will then carry
 * is reported; when it can, a send time the provider would refuse (closer than the 2 h
 * minimum plus the margin) moves to the earliest one it accepts.
 */
static enum provider_admit
sainiu_admit(const struct channel *ch, const struct provider_item *item,
             const struct provider_limit *limit, int64_t now_ms, int64_t *send_at_ms,
             int64_t *defer_until_ms)
{
	int64_t target = item->due_at_ms, call_at = now_ms;

	if (limit != NULL && limit->reserved)
		return PROVIDER_WAIT;
	if (limit != NULL && limit->last_send_at_ms != 0)
		target = sainiu_max64(target, limit->last_send_at_ms + WEEK_MS);
	if (limit != NULL && limit->last_call_ms != 0)
		call_at = sainiu_max64(call_at, limit->last_call_ms + WEEK_MS);
	call_at = sainiu_max64(call_at, target - sainiu_lead(ch));
	if (call_at > now_ms) {
		*defer_until_ms = call_at;
		*send_at_ms = sainiu_max64(target, call_at + SAINIU_MIN_AHEAD_MS + SAINIU_MARGIN_MS);
		return PROVIDER_DEFER;
	}
	*send_at_ms = sainiu_max64(target, now_ms + SAINIU_MIN_AHEAD_MS + SAINIU_MARGIN_MS);
	return PROVIDER_ADMIT;
}

int
sainiu_sign(const char *key, const char *post, const char *data, const char *stamp,
            char out[33])
{
	const char *parts[4] = {key, post, data, stamp};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t i;
	int rc = -1;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1)
		goto out;
	for (i = 0; i < 4; i++)
		if (EVP_DigestUpdate(ctx, parts[i], strlen(parts[i])) != 1)
			goto out;
	if (EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 16)
		goto out;
	provider_hex(md, md_len, out);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

/*
 * The whole form body, in one place because its encoding is unverified upstream (public
 * clients differ, providers.md §1.5): both values percent-encoded, as a form encoder
 * does, and the signature (when the channel has a key) over the unencoded data.
 */
static int
sainiu_form(struct buf *b, const char *data_json, const char *sign_key, int64_t now_ms)
{
	char stamp[24], sign[33], *enc;
	int rc;

	if ((enc = provider_urlencode(data_json)) == NULL)
		return -1;
	rc = buf_printf(b, "post=%s&data=%s", SAINIU_POST, enc);
	free(enc);
	if (rc != 0 || sign_key == NULL)
		return rc;
	snprintf(stamp, sizeof stamp, "%" PRId64, now_ms);
	if (sainiu_sign(sign_key, SAINIU_POST, data_json, stamp, sign) != 0)
		return -1;
	return buf_printf(b, "&time=%s&sign=%s", stamp, sign);
}

/* The data JSON: {"userNick", "text", "sendtime": 13-digit ms as a string}. */
static char *
sainiu_data(const char *nick, const char *text, int64_t send_at_ms)
{
	char sendtime[24], *printed, *json = NULL;
	cJSON *data;

	snprintf(sendtime, sizeof sendtime, "%" PRId64, send_at_ms);
	if ((data = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(data, "userNick", nick) == NULL ||
	    cJSON_AddStringToObject(data, "text", text) == NULL ||
	    cJSON_AddStringToObject(data, "sendtime", sendtime) == NULL ||
	    (printed = cJSON_PrintUnformatted(data)) == NULL) {
		cJSON_Delete(data);
		return NULL;
	}
	json = strdup(printed);
	cJSON_free(printed);
	cJSON_Delete(data);
	return json;
}

static int
sainiu_build(void *state, const struct channel *ch, struct provider_item *items, size_t n,
             int64_t now_ms, struct provider_request *req, char **err)
{
	struct buf url = {0}, form = {0};
	const char *text, *nick;
	char *data = NULL;
	int rc = -1;

	(void)state;
	if (n != 1) {
		util_err(err, "sainiu sends one message per request");
		goto out;
	}
	if (sainiu_message_text(items[0].message, &text, err) == -1)
		goto out;
	if ((nick = sainiu_limit_account(&items[0])) == NULL || nick[0] == '\0') {
		util_err(err, "recipient has no id (userNick)");
		goto out;
	}
	/*
	 * The claim admitted a send time with a margin, but the call can come later than that
	 * (a Retry-After held the channel, a slow queue): admit it again here. A later send time
	 * keeps the 7-day rule, since this call holds the account's reservation and a later
	 * sendtime only widens the gap to the last one; past the delivery's expiry it may not go.
	 */
	if (items[0].send_at_ms < now_ms + SAINIU_MIN_AHEAD_MS) {
		if (items[0].expires_at_ms && now_ms > items[0].expires_at_ms) {
			provider_verdict(&items[0], PROVIDER_EXPIRED, NULL, NULL);
			util_err(err, "expired: the call came too late for any send time before "
			         "due + expire_after");
			goto out;
		}
		items[0].send_at_ms = now_ms + SAINIU_MIN_AHEAD_MS + SAINIU_MARGIN_MS;
	}
	if ((data = sainiu_data(nick, text, items[0].send_at_ms)) == NULL ||
	    sainiu_form(&form, data, config_str(ch, "sign_key"), now_ms) != 0 ||
	    buf_printf(&url, "%s%s", ch->base_url, SAINIU_PATH) != 0 ||
	    provider_request_header(req, "Content-Type: application/x-www-form-urlencoded") == -1) {
		util_err(err, "out of memory");
		goto out;
	}
	req->url = url.data;
	req->body = form.data;
	req->body_len = form.len;
	url.data = form.data = NULL;
	rc = 0;
out:
	if (rc == -1)
		provider_request_clear(req);
	buf_free(&url);
	buf_free(&form);
	free(data);
	return rc;
}

/* data as the message id when it is a short string or a number. */
static void
sainiu_read_message_id(const cJSON *data, struct sainiu_answer *a)
{
	int64_t n;

	if (cJSON_IsString(data) && data->valuestring[0] != '\0' &&
	    strlen(data->valuestring) <= SAINIU_ID_MAX) {
		a->message_id = data->valuestring;
	} else if (cJSON_IsNumber(data)) {
		if (util_json_i64(data, &n) == 0)
			snprintf(a->num, sizeof a->num, "%" PRId64, n);
		else
			snprintf(a->num, sizeof a->num, "%.17g", data->valuedouble);
		a->message_id = a->num;
	}
}

static void
sainiu_read_answer(const cJSON *root, struct sainiu_answer *a)
{
	const char *msg;
	int64_t code;

	/* An unreadable answer may stand for an accepted notice: it counts for the 7 days. */
	a->outcome = PROVIDER_AMBIGUOUS;
	if (!cJSON_IsObject(root)) {
		a->text = "unreadable answer: not a JSON object";
		return;
	}
	if (provider_json_code(cJSON_GetObjectItemCaseSensitive(root, "code"), &code) == -1) {
		a->text = "unreadable answer: no integer \"code\"";
		return;
	}
	snprintf(a->code, sizeof a->code, "%" PRId64, code);
	/* The live pages say "msg", the seed says "reg". */
	msg = provider_json_str(root, "msg");
	a->text = msg != NULL ? msg : provider_json_str(root, "reg");
	if (code == 200) {
		a->outcome = PROVIDER_SENT;
		sainiu_read_message_id(cJSON_GetObjectItemCaseSensitive(root, "data"), a);
	} else if (code == 501) {
		/* Public clients retry it; its meaning is not documented. */
		a->outcome = PROVIDER_TRANSIENT;
	} else {
		/* The code list was not found. A second call inside 7 days lands here too. */
		a->outcome = PROVIDER_PERMANENT;
	}
}

static void
sainiu_judge(void *state, const struct channel *ch, long http_status, const char *body,
             size_t body_len, struct provider_item *items, size_t n, int64_t now_ms)
{
	struct sainiu_answer a;
	cJSON *root = NULL;
	char *text;
	size_t i;

	(void)state;
	(void)ch;
	(void)now_ms;
	if (provider_judge_http(http_status, items, n))
		return;
	memset(&a, 0, sizeof a);
	root = provider_parse_answer(body, body_len);
	sainiu_read_answer(root, &a);
	text = provider_text(a.text);
	for (i = 0; i < n; i++) {
		provider_verdict(&items[i], a.outcome, a.code, text);
		free(items[i].message_id);
		items[i].message_id = a.message_id != NULL ? strdup(a.message_id) : NULL;
	}
	free(text);
	cJSON_Delete(root);
}

const struct provider_ops provider_sainiu = {
	.name = "sainiu",
	.batching = PROVIDER_SINGLE,
	.dedups = 0,
	.keys = sainiu_keys,
	.check_channel = sainiu_check_channel,
	.check_recipient = sainiu_check_recipient,
	.check_message = sainiu_check_message,
	.schedule = sainiu_schedule,
	.limit_account = sainiu_limit_account,
	.admit = sainiu_admit,
	.build = sainiu_build,
	.judge = sainiu_judge,
};
