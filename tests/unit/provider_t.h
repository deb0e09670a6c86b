/*
 * provider_t.h: what the provider unit tests share, next to t.h (include it after t.h).
 * The including file defines `static const struct provider_ops *ops` first: the helpers
 * below test that provider.
 *
 *   provider_channel   a channel of the provider with keys parsed from JSON
 *   channel_ok         check_channel's verdict, and the error naming err_has
 *   check_json         check_recipient and the like on a JSON text
 *   check_msg          check_message on a JSON text
 *   items_reset        clears what judge wrote, to values judge must overwrite
 *   judge_items        judge on an exact-length copy of the body (over-reads trip ASan)
 *   judge_want         judge of one item, checked field by field against a struct verdict
 *   pct_decode         percent-decoding, strict or lenient
 *   repeated_message   a text message of n copies of a unit
 */
#ifndef HERALD_PROVIDER_T_H
#define HERALD_PROVIDER_T_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "provider.h"

/* A channel of ops named name at url; the caller frees ch.keys. */
static inline struct channel
provider_channel(char *name, char *url, const char *keys_json)
{
	struct channel ch;

	memset(&ch, 0, sizeof ch);
	ch.name = name;
	ch.ops = ops;
	ch.base_url = url;
	ch.keys = cJSON_Parse(keys_json);
	T_CHECK(ch.keys != NULL);
	return ch;
}

/* check_channel on keys_json: 0 or -1; a refusal's message must contain err_has. */
static inline int
channel_ok(const char *keys_json, const char *err_has)
{
	struct channel ch = provider_channel("test", "http://127.0.0.1:9", keys_json);
	char *err = NULL;
	int rc = ops->check_channel(&ch, &err);

	if (rc == -1)
		T_CHECK(err && err[0] != '\0' && strstr(err, err_has));
	else
		T_CHECK(err == NULL);
	free(err);
	cJSON_Delete(ch.keys);
	return rc;
}

/* fn (check_recipient or the like) on a JSON text: 0, or -1 with a message. */
static inline int
check_json(int (*fn)(const cJSON *, char **), const char *json)
{
	cJSON *v = cJSON_Parse(json);
	char *err = NULL;
	int rc = fn(v, &err);

	T_CHECK(rc == 0 ? err == NULL : err != NULL && err[0] != '\0');
	free(err);
	cJSON_Delete(v);
	return rc;
}

/* check_message on a JSON text (which must parse), rendered or not. */
static inline int
check_msg(const char *json, int rendered)
{
	cJSON *v = cJSON_Parse(json);
	char *err = NULL;
	int rc;

	T_CHECK(v != NULL);
	rc = ops->check_message(v, rendered, &err);
	T_CHECK(rc == 0 ? err == NULL : err != NULL && err[0] != '\0');
	free(err);
	cJSON_Delete(v);
	return rc;
}

/* Frees what judge wrote and sets values it must overwrite, so a skipped item shows. */
static inline void
items_reset(struct provider_item *it, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(it[i].message_text);
		free(it[i].message_id);
		it[i].message_text = it[i].message_id = NULL;
		it[i].code[0] = '\0';
		it[i].outcome = PROVIDER_DEFERRED;
		/* judge writes 0 or 1 here on every item; -1 shows one it skipped. */
		it[i].channel_fault = -1;
	}
}

/* Judges a copy of body in a buffer of exactly len bytes, so an over-read trips ASan. */
static inline void
judge_items(const struct channel *ch, long status, const char *body, size_t len,
            struct provider_item *it, size_t n, int64_t now_ms)
{
	char *copy = NULL;

	items_reset(it, n);
	if (body) {
		copy = malloc(len ? len : 1);
		memcpy(copy, body, len);
	}
	ops->judge(NULL, ch, status, copy, len, it, n, now_ms);
	free(copy);
}

/* What judge must make of one item. NULL text or message_id: none. */
struct verdict {
	enum provider_outcome outcome;
	const char *code;
	const char *text;
	int64_t defer_until_ms;          /* checked on PROVIDER_DEFERRED */
	const char *message_id;
	int channel_fault;
};

/*
 * Judges body (len bytes) for one item addressed to recipient_id and checks every field
 * against want. channel_fault starts as the opposite of the wanted value, so a judge that
 * never writes it fails.
 */
static inline void
judge_want(void *state, const struct channel *ch, const char *recipient_id, long status,
           const char *body, size_t len, int64_t now_ms, const struct verdict *want)
{
	struct provider_item item;
	int failed_before = t_failed_checks;

	memset(&item, 0, sizeof item);
	item.recipient_id = recipient_id;
	item.channel_fault = !want->channel_fault;
	ops->judge(state, ch, status, body, len, &item, 1, now_ms);
	T_EQ_INT(item.outcome, want->outcome);
	T_EQ_STR(item.code, want->code);
	T_EQ_INT(item.channel_fault, want->channel_fault);
	if (want->text)
		T_EQ_STR(item.message_text, want->text);
	else
		T_CHECK(item.message_text == NULL);
	if (want->outcome == PROVIDER_DEFERRED)
		T_EQ_INT(item.defer_until_ms, want->defer_until_ms);
	if (want->message_id)
		T_EQ_STR(item.message_id, want->message_id);
	else
		T_CHECK(item.message_id == NULL);
	if (t_failed_checks != failed_before)
		fprintf(stderr, "  body: %.200s\n", body ? body : "(null)");
	free(item.message_text);
	free(item.message_id);
}

static inline int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* How pct_decode treats its input. */
enum {
	PCT_STRICT = 1,       /* a broken escape makes the result NULL (else it stays literal) */
	PCT_UPPER = 2,        /* only uppercase hex digits make an escape */
	PCT_UNRESERVED = 4,   /* every byte not escaped must be unreserved (a failed check) */
};

/* Percent-decodes s[0..len) into a new string ('+' stays '+'); see the flags above. */
static inline char *
pct_decode(const char *s, size_t len, int flags)
{
	char *out = malloc(len + 1);
	size_t i, j = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 &&
		    hexval(s[i + 2]) >= 0 && (!(flags & PCT_UPPER) || (s[i + 1] < 'a' && s[i + 2] < 'a'))) {
			out[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
			continue;
		}
		if (s[i] == '%' && (flags & PCT_STRICT)) {
			free(out);
			return NULL;
		}
		if (flags & PCT_UNRESERVED)
			T_CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~",
			               s[i]) != NULL);
		out[j++] = s[i];
	}
	out[j] = '\0';
	return out;
}

/* The message {"type":"text","text": n copies of unit}, as unformatted JSON (caller frees). */
static inline char *
repeated_message(const char *unit, size_t n)
{
	size_t ulen = strlen(unit), i;
	char *text = malloc(ulen * n + 1), *json;
	cJSON *m = cJSON_CreateObject();

	for (i = 0; i < n; i++)
		memcpy(text + i * ulen, unit, ulen);
	text[ulen * n] = '\0';
	cJSON_AddStringToObject(m, "type", "text");
	cJSON_AddStringToObject(m, "text", text);
	json = cJSON_PrintUnformatted(m);
	cJSON_Delete(m);
	free(text);
	return json;
}

#endif
