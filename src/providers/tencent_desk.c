/*
 * tencent_desk: Tencent Cloud IM desk (智能客服) `v4/desk_http_svc/send_msg` (seed 001,
 * providers.md §2). One session or one user per call, sent at once.
 *
 * The channel authenticates with a UserSig in the query string: either one configured as
 * `usersig` (used as given, never renewed), or one this module generates from `secret_key`
 * (TLSSigAPIv2) and keeps in its per-channel state, renewing it before it runs out and
 * dropping it when Tencent answers 70001 (expired). The state is used by the scheduler
 * thread only, one call at a time, so it needs no lock.
 *
 * MsgRandom is the delivery's msg_random, the same on every resend, which is what lets
 * Tencent de-duplicate a resend after a crash (dedups = 1). The URL's `random` is fresh per
 * request. Tencent returns no message id.
 *
 * A code given as a string of decimal digits is read as that number; any other shape is a
 * malformed answer, retried (safe: MsgRandom de-duplicates) and never taken as sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "provider.h"
#include "util.h"
#include "usersig.h"

#define DESK_PATH "/v4/desk_http_svc/send_msg"
/* Tencent rejects larger bodies with 93000 ("消息包体请不要超过12K"). */
#define DESK_BODY_MAX 12288

#define DESK_TTL_DEFAULT_MS (180 * DAY_MS)
/* Tencent advises UserSigs valid for at least 24 h (providers.md §2.2). */
#define DESK_TTL_MIN_MS DAY_MS
/* usersig.h: numbers must stay below 2^53. */
#define DESK_NUM_LIMIT ((int64_t)1 << 53)

/* Per-channel state. */
struct desk_state {
	char *usersig;                /* the UserSig sent; NULL when it must be (re)generated */
	int generated;                /* 1: made here from secret_key; 0: the configured usersig */
	int64_t issued_ms;            /* generated: TLS.time in ms */
	int64_t expires_ms;           /* generated: TLS.time + TLS.expire in ms */
};

/* Who a message goes to: a session, or from the channel's account to a user. */
struct desk_addr {
	const char *session_id;       /* non-NULL: SessionId form */
	const char *from;             /* otherwise FromAccount ... */
	const char *to;               /* ... and ToAccount */
};

/* The verdict read from one answer; text points into the parsed answer or a literal. */
struct desk_answer {
	enum provider_outcome outcome;
	char code[32];
	const char *text;
	int64_t defer_until_ms;
	int usersig_expired;          /* 70001: drop the UserSig so the next build makes a new one */
	int channel_fault;            /* the account or its credentials: suspend the channel */
};

enum desk_field_type {
	FIELD_TEXT,                   /* a non-empty string */
	FIELD_STR,                    /* optional string */
	FIELD_DATA,                   /* a string, or an object sent as its JSON text */
	FIELD_INDEX,                  /* an integer 0..2^31-1 */
	FIELD_LATITUDE,
	FIELD_LONGITUDE,
};

#define DESK_ELEM_FIELDS 4

/* One element type a message may hold: the message's "type", Tencent's MsgType, fields. */
struct desk_elem_kind {
	const char *type;
	const char *msg_type;
	struct desk_elem_field {
		const char *name;     /* in the message; NULL ends the list */
		const char *wire;     /* in MsgContent */
		enum desk_field_type type;
	} fields[DESK_ELEM_FIELDS];
};

static const struct config_key desk_keys[] = {
	{"sdkappid", CONFIG_INT, 1},
	{"identifier", CONFIG_STRING, 1},
	{"usersig", CONFIG_STRING, 0},
	{"secret_key", CONFIG_STRING, 0},
	{"from_account", CONFIG_STRING, 0},
	{"usersig_ttl", CONFIG_DURATION, 0},
	{NULL, CONFIG_STRING, 0},
};

/* Channel checks */

static int
desk_check_channel(const struct channel *ch, char **err)
{
	const char *id = config_str(ch, "identifier"), *sig = config_str(ch, "usersig");
	const char *key = config_str(ch, "secret_key"), *from = config_str(ch, "from_account");
	int64_t app = config_int(ch, "sdkappid", 0);
	int64_t ttl = config_int(ch, "usersig_ttl", DESK_TTL_DEFAULT_MS);

	if (app < 1 || app >= DESK_NUM_LIMIT)
		return util_err(err, "sdkappid: must be a positive integer");
	if (id == NULL || id[0] == '\0' || strlen(id) > USERSIG_IDENTIFIER_MAX ||
	    provider_has_control(id))
		return util_err(err, "identifier: must be 1-%d bytes without control characters",
		                USERSIG_IDENTIFIER_MAX);
	if ((sig != NULL) == (key != NULL))
		return util_err(err, "usersig, secret_key: give exactly one of them");
	if ((sig != NULL && sig[0] == '\0') || (key != NULL && key[0] == '\0'))
		return util_err(err, "%s: must not be empty", sig != NULL ? "usersig" : "secret_key");
	if (from != NULL && from[0] == '\0')
		return util_err(err, "from_account: must not be empty");
	if (ttl < DESK_TTL_MIN_MS || ttl / 1000 >= DESK_NUM_LIMIT)
		return util_err(err, "usersig_ttl: must be at least 1d");
	return 0;
}

/*
 * A recipient is {"id": ToAccount} or {"session_id": SessionId}. The id form also needs
 * the channel's from_account, which this check cannot see: build fails the delivery when
 * it is missing (an import that knows the channel can check it earlier).
 */
static int
desk_check_recipient(const cJSON *recipient, char **err)
{
	const char *id = provider_json_str(recipient, "id");
	const char *session = provider_json_str(recipient, "session_id");

	if (!cJSON_IsObject(recipient) || (id == NULL) == (session == NULL))
		return util_err(err, "a tencent_desk recipient needs exactly one of a non-empty "
		                "\"id\" (ToAccount) or \"session_id\"");
	return 0;
}

/* Message elements */

/*
 * Each element type's fields, in Tencent's order: the message's name, Tencent's name, and
 * what the value must be. The lower-case names mirror Tencent's MsgContent fields.
 */
static const struct desk_elem_kind desk_elem_kinds[] = {
	{"text", "TIMTextElem", {{"text", "Text", FIELD_TEXT}}},
	{"custom", "TIMCustomElem", {{"data", "Data", FIELD_DATA}, {"desc", "Desc", FIELD_STR},
	                             {"ext", "Ext", FIELD_STR}, {"sound", "Sound", FIELD_STR}}},
	{"face", "TIMFaceElem", {{"index", "Index", FIELD_INDEX}, {"data", "Data", FIELD_STR}}},
	{"location", "TIMLocationElem", {{"desc", "Desc", FIELD_STR},
	                                 {"latitude", "Latitude", FIELD_LATITUDE},
	                                 {"longitude", "Longitude", FIELD_LONGITUDE}}},
};

static const char *const desk_field_want[] = {
	[FIELD_TEXT] = "a non-empty string",
	[FIELD_STR] = "a string",
	[FIELD_DATA] = "a string or an object",
	[FIELD_INDEX] = "a non-negative integer",
	[FIELD_LATITUDE] = "a number from -90 to 90",
	[FIELD_LONGITUDE] = "a number from -180 to 180",
};

static int
desk_field_ok(const cJSON *v, enum desk_field_type type)
{
	double d = cJSON_IsNumber(v) ? v->valuedouble : 1e300;

	switch (type) {
	case FIELD_TEXT:
		return cJSON_IsString(v) && v->valuestring[0] != '\0';
	case FIELD_STR:
		return v == NULL || cJSON_IsString(v);
	case FIELD_DATA:
		return cJSON_IsString(v) || cJSON_IsObject(v);
	case FIELD_INDEX:
		return d >= 0 && d <= 2147483647.0 && d == (double)(int64_t)d;
	case FIELD_LATITUDE:
		return d >= -90 && d <= 90;
	case FIELD_LONGITUDE:
		return d >= -180 && d <= 180;
	}
	return 0;
}

/* Tencent's MsgContent for el. An object value is sent as its compact JSON text. */
static cJSON *
desk_elem_content(const cJSON *el, const struct desk_elem_kind *k, const char *where, char **err)
{
	const struct desk_elem_field *f;
	const cJSON *v;
	cJSON *c, *copy;
	char *printed;
	size_t i;

	if ((c = cJSON_CreateObject()) == NULL)
		goto oom;
	for (i = 0; i < DESK_ELEM_FIELDS && (f = &k->fields[i])->name != NULL; i++) {
		v = cJSON_GetObjectItemCaseSensitive(el, f->name);
		if (!desk_field_ok(v, f->type)) {
			util_err(err, "%sa %s element's \"%s\" must be %s", where, k->type, f->name,
			         desk_field_want[f->type]);
			cJSON_Delete(c);
			return NULL;
		}
		if (v == NULL)
			continue;
		printed = cJSON_IsObject(v) ? cJSON_PrintUnformatted(v) : NULL;
		copy = printed != NULL ? cJSON_CreateString(printed) :
		    cJSON_IsObject(v) ? NULL : cJSON_Duplicate(v, 0);
		cJSON_free(printed);
		if (copy == NULL || !cJSON_AddItemToObject(c, f->wire, copy)) {
			cJSON_Delete(copy);
			goto oom;
		}
	}
	return c;
oom:
	cJSON_Delete(c);
	util_err(err, "out of memory");
	return NULL;
}

/* Appends el as {"MsgType", "MsgContent"} to desk_msg_body; counts custom elements. */
static int
desk_add_elem(cJSON *desk_msg_body, const cJSON *el, const char *where, int *customs, char **err)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(el, "type");
	const struct desk_elem_kind *k = NULL;
	cJSON *wrap = NULL, *content;
	size_t i;

	for (i = 0; cJSON_IsString(type) && i < sizeof desk_elem_kinds / sizeof desk_elem_kinds[0]; i++)
		if (strcmp(type->valuestring, desk_elem_kinds[i].type) == 0)
			k = &desk_elem_kinds[i];
	if (!cJSON_IsObject(el) || k == NULL)
		return util_err(err, "%s\"type\" must be one of text, custom, face, location", where);
	if ((content = desk_elem_content(el, k, where, err)) == NULL)
		return -1;
	if (k == &desk_elem_kinds[1])
		(*customs)++;
	if ((wrap = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(wrap, "MsgType", k->msg_type) == NULL ||
	    !cJSON_AddItemToObject(wrap, "MsgContent", content)) {
		cJSON_Delete(content);
		goto oom;
	}
	if (!cJSON_AddItemToArray(desk_msg_body, wrap))
		goto oom;
	return 0;
oom:
	cJSON_Delete(wrap);
	return util_err(err, "out of memory");
}

/* The MsgBody array for a message: its single "type", or each of its "elements". */
static cJSON *
desk_msg_body(const cJSON *message, char **err)
{
	const cJSON *elements = cJSON_GetObjectItemCaseSensitive(message, "elements"), *el;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(message, "type");
	cJSON *body = NULL;
	char where[48];
	int i = 0, customs = 0;

	if (!cJSON_IsObject(message) || (elements == NULL) == (type == NULL)) {
		util_err(err, "a tencent_desk message has either a \"type\" or \"elements\"");
		return NULL;
	}
	if (elements != NULL && (!cJSON_IsArray(elements) || cJSON_GetArraySize(elements) == 0)) {
		util_err(err, "\"elements\" must be a non-empty array");
		return NULL;
	}
	if ((body = cJSON_CreateArray()) == NULL) {
		util_err(err, "out of memory");
		return NULL;
	}
	if (elements == NULL && desk_add_elem(body, message, "", &customs, err) == -1)
		goto fail;
	cJSON_ArrayForEach(el, elements) {
		snprintf(where, sizeof where, "elements[%d]: ", i++);
		if (desk_add_elem(body, el, where, &customs, err) == -1)
			goto fail;
	}
	/* Tencent: "一条组合消息中只能包含一个 TIMCustomElem". */
	if (customs > 1) {
		util_err(err, "a message may hold only one custom element");
		goto fail;
	}
	return body;
fail:
	cJSON_Delete(body);
	return NULL;
}

/* Adds CloudCustomData and ExcludeFromUserRespTimeout when the message has them. */
static int
desk_add_options(cJSON *root, const cJSON *message, char **err)
{
	const cJSON *ccd = cJSON_GetObjectItemCaseSensitive(message, "cloud_custom_data");
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(message, "exclude_from_user_resp_timeout");
	char *printed = NULL;
	int exclude, rc = -1;

	if (ccd != NULL && !cJSON_IsString(ccd) && !cJSON_IsObject(ccd))
		return util_err(err, "\"cloud_custom_data\" must be a string or an object");
	exclude = cJSON_IsTrue(ex) || (cJSON_IsNumber(ex) && ex->valuedouble == 1);
	if (ex != NULL && !cJSON_IsFalse(ex) && !exclude &&
	    !(cJSON_IsNumber(ex) && ex->valuedouble == 0))
		return util_err(err, "\"exclude_from_user_resp_timeout\" must be true, false, 0 or 1");
	if ((cJSON_IsObject(ccd) && (printed = cJSON_PrintUnformatted(ccd)) == NULL) ||
	    (ccd != NULL && cJSON_AddStringToObject(root, "CloudCustomData",
	                                            printed ? printed : ccd->valuestring) == NULL) ||
	    (ex != NULL && cJSON_AddNumberToObject(root, "ExcludeFromUserRespTimeout", exclude) == NULL))
		util_err(err, "out of memory");
	else
		rc = 0;
	cJSON_free(printed);
	return rc;
}

/* Returns the request body as a new string (caller frees), or NULL with *err. */
static char *
desk_body_json(const cJSON *message, const struct desk_addr *addr, uint32_t msg_random, char **err)
{
	cJSON *root = NULL, *mb;
	char num[16], *printed = NULL, *json = NULL;

	if ((mb = desk_msg_body(message, err)) == NULL)
		return NULL;
	snprintf(num, sizeof num, "%" PRIu32, msg_random);
	if ((root = cJSON_CreateObject()) == NULL ||
	    (addr->session_id != NULL &&
	     cJSON_AddStringToObject(root, "SessionId", addr->session_id) == NULL) ||
	    (addr->session_id == NULL &&
	     (cJSON_AddStringToObject(root, "FromAccount", addr->from) == NULL ||
	      cJSON_AddStringToObject(root, "ToAccount", addr->to) == NULL)) ||
	    cJSON_AddRawToObject(root, "MsgRandom", num) == NULL ||
	    !cJSON_AddItemToObject(root, "MsgBody", mb)) {
		cJSON_Delete(mb);
		util_err(err, "out of memory");
		goto out;
	}
	if (desk_add_options(root, message, err) == -1)
		goto out;
	if ((printed = cJSON_PrintUnformatted(root)) == NULL || (json = strdup(printed)) == NULL)
		util_err(err, "out of memory");
out:
	cJSON_free(printed);
	cJSON_Delete(root);
	return json;
}

/*
 * With rendered, the size is bounded from below: the body is made in the shorter SessionId
 * form with an empty id and the longest MsgRandom, so only the recipient's own id bytes
 * (not known here) are missing. A message refused here can never fit; one accepted may
 * still be refused by build, which checks the exact body.
 */
static int
desk_check_message(const cJSON *message, int rendered, char **err)
{
	const struct desk_addr addr = {"", NULL, NULL};
	char *json;
	size_t len;

	if ((json = desk_body_json(message, &addr, UINT32_MAX, err)) == NULL)
		return -1;
	len = strlen(json);
	free(json);
	if (rendered && len > DESK_BODY_MAX)
		return util_err(err, "the message makes a request body of at least %zu bytes; "
		                "Tencent accepts at most %d (12 KB, ErrorCode 93000)", len,
		                DESK_BODY_MAX);
	return 0;
}

/* UserSig */

/* Frees a UserSig (or its URL-encoded copy) after overwriting it: it is a credential. */
static void
desk_sig_free(char *sig)
{
	if (sig)
		explicit_bzero(sig, strlen(sig));
	free(sig);
}

/*
 * Makes a new UserSig when there is none, when less than a tenth of its lifetime (at most
 * one day) is left, or when it was issued after now_ms (the clock went back, or a run
 * acts at a simulated time): a UserSig is only good from its TLS.time on. A configured
 * UserSig is used as it is.
 */
static int
desk_usersig_refresh(struct desk_state *st, const struct channel *ch, int64_t now_ms, char **err)
{
	int64_t ttl_ms = config_int(ch, "usersig_ttl", DESK_TTL_DEFAULT_MS);
	int64_t ttl_s = ttl_ms / SECOND_MS;
	/* Renewed with a tenth of its lifetime left, at most a day. */
	int64_t margin_ms = ttl_ms / 10 < DAY_MS ? ttl_ms / 10 : DAY_MS;
	char *sig = NULL, *uerr = NULL;

	if (!st->generated)
		return 0;
	if (st->usersig != NULL && now_ms >= st->issued_ms && st->expires_ms - now_ms >= margin_ms)
		return 0;
	if (now_ms < 0 || usersig_generate((uint64_t)config_int(ch, "sdkappid", 0),
	                                   config_str(ch, "identifier"), config_str(ch, "secret_key"),
	                                   now_ms / SECOND_MS, ttl_s, &sig, &uerr) == -1) {
		/* usersig's messages never hold the key. */
		util_err(err, "%s", uerr != NULL ? uerr : "usersig: cannot generate");
		free(uerr);
		return -1;
	}
	desk_sig_free(st->usersig);
	st->usersig = sig;
	st->issued_ms = now_ms / SECOND_MS * SECOND_MS;
	st->expires_ms = st->issued_ms + ttl_s * SECOND_MS;
	return 0;
}

static const char *
desk_made_secret(void *state)
{
	const struct desk_state *st = state;

	return st && st->generated ? st->usersig : NULL;
}

static void
desk_close(void *state)
{
	struct desk_state *st = state;

	if (st == NULL)
		return;
	desk_sig_free(st->usersig);
	free(st);
}

static int
desk_open(const struct channel *ch, void **state, char **err)
{
	const char *sig = config_str(ch, "usersig");
	struct desk_state *st;

	*state = NULL;
	if ((st = calloc(1, sizeof *st)) == NULL)
		goto oom;
	if (sig != NULL) {
		if ((st->usersig = strdup(sig)) == NULL)
			goto oom;
	} else {
		st->generated = 1;
		/* Generating now reports a bad key or identifier at startup, not at the first send. */
		if (desk_usersig_refresh(st, ch, clock_now_ms(), err) == -1)
			goto fail;
	}
	*state = st;
	return 0;
oom:
	util_err(err, "out of memory");
fail:
	desk_close(st);
	return -1;
}

/* Building */

static int
desk_recipient_addr(const struct channel *ch, const struct provider_item *item,
               struct desk_addr *addr, char **err)
{
	const char *id = provider_json_str(item->recipient, "id");

	memset(addr, 0, sizeof *addr);
	if ((addr->session_id = provider_json_str(item->recipient, "session_id")) != NULL)
		return 0;
	addr->to = id != NULL ? id : item->recipient_id;
	if (addr->to == NULL || addr->to[0] == '\0')
		return util_err(err, "recipient has neither a session_id nor an id");
	if ((addr->from = config_str(ch, "from_account")) == NULL)
		return util_err(err, "recipient has an id (ToAccount) but the channel has no "
		                "from_account");
	return 0;
}

/* The URL's `random` differs on every request, unlike MsgRandom. */
static int
desk_fresh_random(uint32_t *r, char **err)
{
	ssize_t got;

	do
		got = getrandom(r, sizeof *r, 0);
	while (got == -1 && errno == EINTR);
	if (got != (ssize_t)sizeof *r)
		return util_err(err, "getrandom failed");
	return 0;
}

static int
desk_build(void *state, const struct channel *ch, struct provider_item *items, size_t n,
           int64_t now_ms, struct provider_request *req, char **err)
{
	struct desk_state *st = state;
	struct desk_addr addr;
	struct buf url = {0};
	char *json = NULL, *id = NULL, *sig = NULL;
	uint32_t rnd;
	size_t len;
	int rc = -1;

	if (n != 1 || st == NULL) {
		util_err(err, n != 1 ? "tencent_desk sends one message per request" :
		         "tencent_desk channel is not open");
		goto out;
	}
	if (desk_recipient_addr(ch, &items[0], &addr, err) == -1 ||
	    desk_usersig_refresh(st, ch, now_ms, err) == -1 || desk_fresh_random(&rnd, err) == -1 ||
	    (json = desk_body_json(items[0].message, &addr, items[0].msg_random, err)) == NULL)
		goto out;
	if ((len = strlen(json)) > DESK_BODY_MAX) {
		util_err(err, "the request body is %zu bytes; Tencent accepts at most %d "
		         "(12 KB, ErrorCode 93000)", len, DESK_BODY_MAX);
		goto out;
	}
	if ((id = provider_urlencode(config_str(ch, "identifier"))) == NULL ||
	    (sig = provider_urlencode(st->usersig)) == NULL ||
	    buf_printf(&url, "%s" DESK_PATH "?sdkappid=%" PRId64 "&identifier=%s&usersig=%s"
	               "&random=%" PRIu32 "&contenttype=json", ch->base_url,
	               config_int(ch, "sdkappid", 0), id, sig, rnd) != 0 ||
	    provider_request_header(req, "Content-Type: application/json") == -1) {
		util_err(err, "out of memory");
		goto out;
	}
	req->url = url.data;
	url.data = NULL;
	req->body = json;
	req->body_len = len;
	json = NULL;
	rc = 0;
out:
	if (rc == -1)
		provider_request_clear(req);
	buf_free(&url);
	free(json);
	free(id);
	desk_sig_free(sig);
	return rc;
}

/* Judging */

/*
 * ErrorCodes (providers.md "Implications -> Tencent desk"). Not listed: permanent, a fault of
 * the message. The channel's configuration or App ("pause the provider") suspends the channel.
 */
static const struct provider_code desk_codes[] = {
	{141002, PROVIDER_TRANSIENT, 0, 0, "internal error, retry"},
	{60007, PROVIDER_TRANSIENT, 0, 0, "rate limited"},
	{60008, PROVIDER_TRANSIENT, 0, 0, "server timeout"},
	{60011, PROVIDER_TRANSIENT, 0, 0, "rate limited"},
	{60018, PROVIDER_TRANSIENT, 0, 0, "rate limited"},
	{60019, PROVIDER_TRANSIENT, 0, 0, "rate limited"},
	{70001, PROVIDER_TRANSIENT, 0, 0, "UserSig expired: a generated one is renewed"},
	{70050, PROVIDER_DEFERRED, 0, MINUTE_MS, "UserSig failures too frequent"},
	{90001, PROVIDER_PERMANENT, 0, 0, "body is not JSON"},
	{90005, PROVIDER_PERMANENT, 0, 0, "MsgRandom missing or not an integer"},
	{90007, PROVIDER_PERMANENT, 0, 0, "MsgBody invalid"},
	{93000, PROVIDER_PERMANENT, 0, 0, "body over 12 KB"},
	{141004, PROVIDER_PERMANENT, 0, 0, "invalid parameter"},
	{141005, PROVIDER_PERMANENT, 0, 0, "session gone"},
	{70107, PROVIDER_PERMANENT, 0, 0, "no such user"},
	{60002, PROVIDER_PERMANENT, 1, 0, "request could not be parsed"},
	{60003, PROVIDER_PERMANENT, 1, 0, "request could not be parsed"},
	{60004, PROVIDER_PERMANENT, 1, 0, "account or signature wrong"},
	{60005, PROVIDER_PERMANENT, 1, 0, "account or signature wrong"},
	{60006, PROVIDER_PERMANENT, 1, 0, "SDKAppID no longer valid"},
	{60010, PROVIDER_PERMANENT, 1, 0, "needs an App admin"},
	{60012, PROVIDER_PERMANENT, 1, 0, "SDKAppID missing"},
	{60015, PROVIDER_PERMANENT, 1, 0, "wrong account type"},
	{60016, PROVIDER_PERMANENT, 1, 0, "SDKAppID disabled"},
	{60017, PROVIDER_PERMANENT, 1, 0, "request disabled"},
	{60020, PROVIDER_PERMANENT, 1, 0, "plan expired and stopped"},
	{60021, PROVIDER_PERMANENT, 1, 0, "calling IP not allowed"},
	{70003, PROVIDER_PERMANENT, 1, 0, "UserSig could not be parsed"},
	{70009, PROVIDER_PERMANENT, 1, 0, "UserSig verification failed"},
	{70013, PROVIDER_PERMANENT, 1, 0, "UserSig for another UserID"},
	{70014, PROVIDER_PERMANENT, 1, 0, "UserSig for another SDKAppID"},
	{70016, PROVIDER_PERMANENT, 1, 0, "key not found (wrong data centre)"},
	{70020, PROVIDER_PERMANENT, 1, 0, "SDKAppID not found (wrong data centre)"},
	{90009, PROVIDER_PERMANENT, 1, 0, "needs an App admin"},
	{141000, PROVIDER_PERMANENT, 1, 0, "not a customer-service (desk) App"},
	{0, PROVIDER_PERMANENT, 0, 0, NULL},
};

static void
desk_classify(int64_t code, int64_t now_ms, struct desk_answer *a)
{
	const struct provider_code *c = provider_code_find(desk_codes, code);

	a->outcome = c ? c->outcome : PROVIDER_PERMANENT;
	a->channel_fault = c ? c->channel_fault : 0;
	a->usersig_expired = code == 70001;
	if (a->outcome == PROVIDER_DEFERRED)
		a->defer_until_ms = now_ms + c->defer_ms;
}

static void
desk_read_answer(const cJSON *root, int64_t now_ms, struct desk_answer *a)
{
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "ActionStatus");
	int64_t code;

	/* Unreadable: it may have been delivered; the resend carries the same MsgRandom. */
	a->outcome = PROVIDER_AMBIGUOUS;
	if (!cJSON_IsObject(root)) {
		a->text = "unreadable answer: not a JSON object";
		return;
	}
	if (provider_json_code(cJSON_GetObjectItemCaseSensitive(root, "ErrorCode"), &code) == -1) {
		a->text = "unreadable answer: no integer \"ErrorCode\"";
		return;
	}
	snprintf(a->code, sizeof a->code, "%lld", (long long)code);
	a->text = provider_json_str(root, "ErrorInfo");
	if (code == 0 && cJSON_IsString(status) && strcmp(status->valuestring, "OK") == 0)
		a->outcome = PROVIDER_SENT;
	else if (code == 0)
		a->text = "unreadable answer: ErrorCode 0 without ActionStatus \"OK\"";
	else
		desk_classify(code, now_ms, a);
}

static void
desk_judge(void *state, const struct channel *ch, long http_status, const char *body,
           size_t body_len, struct provider_item *items, size_t n, int64_t now_ms)
{
	struct desk_state *st = state;
	struct desk_answer a;
	cJSON *root = NULL;
	size_t i;

	(void)ch;
	if (provider_judge_http(http_status, items, n))
		return;
	memset(&a, 0, sizeof a);
	root = provider_parse_answer(body, body_len);
	desk_read_answer(root, now_ms, &a);
	if (a.usersig_expired && st != NULL && st->generated) {
		/* Renewed at the next build; kept until then so an echo of it can still be masked. */
		st->expires_ms = 0;
	} else if (a.usersig_expired) {
		/* A configured usersig cannot renew itself: retrying it only burns attempts. */
		a.outcome = PROVIDER_PERMANENT;
		a.channel_fault = 1;
	}
	for (i = 0; i < n; i++)
		provider_verdict_answer(&items[i], a.outcome, a.code, a.text, a.defer_until_ms,
		                        a.channel_fault);
	cJSON_Delete(root);
}

const struct provider_ops provider_tencent_desk = {
	.name = "tencent_desk",
	.batching = PROVIDER_SINGLE,
	.dedups = 1,
	.keys = desk_keys,
	.check_channel = desk_check_channel,
	.check_recipient = desk_check_recipient,
	.check_message = desk_check_message,
	.open = desk_open,
	.close = desk_close,
	.made_secret = desk_made_secret,
	.build = desk_build,
	.judge = desk_judge,
};
