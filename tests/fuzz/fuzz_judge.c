/*
 * fuzz_judge: one provider's answer judge (src/providers/PROVIDER.c), built once per
 * provider as fuzz_judge_PROVIDER, JUDGE_PROVIDER naming it (an identifier, not a
 * string: a quoted definition does not survive CMake). Input: a byte picking the HTTP
 * status, a byte picking the number of items (and, for tencent_desk, a
 * configured UserSig instead of a generated one), then the answer body.
 * Invariants: every item gets a valid outcome, channel_fault 0 or 1, a terminated code,
 * a deferral into the future; no verdict text or message id holds the channel's secret
 * unless the answer spells it out. Then the providers that filter it (APIUSB, Tanmarket)
 * must still keep it out of the text; an id is the provider's and is kept as sent.
 */
#define _GNU_SOURCE		/* memmem */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "provider.h"

#ifndef JUDGE_PROVIDER
#error "define JUDGE_PROVIDER as a provider name"
#endif
#define STR_(x) #x
#define STR(x) STR_(x)
#define PROVIDER STR(JUDGE_PROVIDER)

#define SECRET "fzSecret-7Qm2vX"
#define NOW_MS 1795000000000LL
#define MAX_ITEMS 4

/* Statuses worth most of the fuzzer's time; other first bytes spread over 100..599. */
static const long statuses[] = {200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 408, 429,
                                500, 502, 503, 504};

static const char *const ids[MAX_ITEMS] = {"u1", "u2", "member-3", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"};

/* The channel's keys: its secret is SECRET wherever it has one. */
static const char *
keys_json(int configured_sig)
{
	const char *p = PROVIDER;

	if (strcmp(p, "sainiu") == 0)
		return "{\"sign_key\": \"" SECRET "\", \"lead\": 9000000}";
	if (strcmp(p, "tencent_desk") == 0)
		return configured_sig
		    ? "{\"sdkappid\": 1400000000, \"identifier\": \"admin\", \"usersig\": \"" SECRET
		      "\", \"from_account\": \"cs\"}"
		    : "{\"sdkappid\": 1400000000, \"identifier\": \"admin\", \"secret_key\": \"" SECRET
		      "\", \"from_account\": \"cs\"}";
	if (strcmp(p, "apiusb") == 0)
		return "{\"access_token\": \"" SECRET "\", \"batch_size\": 100}";
	if (strcmp(p, "tanmarket") == 0)
		return "{\"app_id\": \"demo-app\", \"app_key\": \"" SECRET "\"}";
	return "{\"system\": \"NEW_MEMBER\"}";
}

/* Providers whose judges keep a secret the answer echoes out of their text. */
static int
filters_secret(void)
{
	return strcmp(PROVIDER, "apiusb") == 0 || strcmp(PROVIDER, "tanmarket") == 0;
}

static int
holds_secret(const char *s)
{
	return s && strstr(s, SECRET);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct provider_ops *ops = provider_find(PROVIDER);
	struct provider_item items[MAX_ITEMS];
	cJSON *rec[MAX_ITEMS], *message;
	struct channel ch;
	void *state = NULL;
	char *err = NULL, *body;
	size_t n, i, blen;
	long status;
	int echoed;

	FUZZ_CHECK(ops && ops->judge);
	if (size < 2)
		return 0;
	status = data[0] < 0x80 ? statuses[data[0] % 16] : 100 + (data[0] & 0x7f) * 4 % 500;
	n = ops->batching == PROVIDER_SINGLE ? 1 : 1 + (size_t)(data[1] & 0x7f) % MAX_ITEMS;
	blen = size - 2;
	/* An exact-size copy, so a read past the body trips AddressSanitizer. */
	if (!(body = malloc(blen ? blen : 1)))
		return 0;
	memcpy(body, data + 2, blen);
	echoed = memmem(body, blen, SECRET, strlen(SECRET)) != NULL;

	memset(&ch, 0, sizeof ch);
	ch.name = "fuzz";
	ch.ops = ops;
	ch.base_url = "https://example.com";
	ch.max_in_flight = 16;
	ch.keys = cJSON_Parse(keys_json(data[1] & 0x80));
	FUZZ_CHECK(ch.keys != NULL);
	if (ops->open && ops->open(&ch, &state, &err) != 0) {
		fuzz_fail(__FILE__, __LINE__, err ? err : "open failed");
	}
	message = cJSON_Parse("{\"type\": \"text\", \"text\": \"hello\"}");
	memset(items, 0, sizeof items);
	for (i = 0; i < n; i++) {
		rec[i] = cJSON_CreateObject();
		cJSON_AddStringToObject(rec[i], "id", ids[i]);
		items[i].delivery_id = (int64_t)i + 1;
		items[i].recipient_id = ids[i];
		items[i].recipient = rec[i];
		items[i].message = message;
		items[i].campaign_key = "c1";
		items[i].campaign_name = "fuzz";
		items[i].step = 1;
		items[i].step_day = 1;
		items[i].step_time = "10:00";
		items[i].campaign_day_now = 1;
		items[i].due_at_ms = NOW_MS;
		items[i].send_at_ms = NOW_MS;
		items[i].msg_random = 12345;
		/* Values judge must overwrite: one it forgets shows up. */
		items[i].outcome = (enum provider_outcome)-1;
		items[i].channel_fault = -1;
		memset(items[i].code, 'x', sizeof items[i].code);
	}

	ops->judge(state, &ch, status, body, blen, items, n, NOW_MS);

	for (i = 0; i < n; i++) {
		struct provider_item *it = &items[i];

		FUZZ_CHECK(it->outcome == PROVIDER_SENT || it->outcome == PROVIDER_TRANSIENT ||
		           it->outcome == PROVIDER_PERMANENT || it->outcome == PROVIDER_DEFERRED ||
		           it->outcome == PROVIDER_AMBIGUOUS);
		FUZZ_CHECK(it->channel_fault == 0 || it->channel_fault == 1);
		FUZZ_CHECK(memchr(it->code, '\0', sizeof it->code) != NULL);
		if (it->outcome == PROVIDER_DEFERRED)
			FUZZ_CHECK(it->defer_until_ms > NOW_MS);
		/* Only 2xx answers can be accepted (SPEC 5.10). */
		if (it->outcome == PROVIDER_SENT)
			FUZZ_CHECK(status >= 200 && status <= 299);
		if (!echoed || filters_secret())
			FUZZ_CHECK(!holds_secret(it->message_text));
		if (!echoed)
			FUZZ_CHECK(!holds_secret(it->message_id));
		free(it->message_text);
		free(it->message_id);
		cJSON_Delete(rec[i]);
	}
	if (ops->close)
		ops->close(state);
	cJSON_Delete(message);
	cJSON_Delete(ch.keys);
	free(body);
	return 0;
}
