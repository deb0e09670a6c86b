/*
 * provider: the registry of provider modules and the small helpers they share
 * (request building, verdicts, URL encoding).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "utf8.h"
#include "util.h"

static const struct provider_ops *const registry[] = {
	&provider_sainiu, &provider_tencent_desk, &provider_apiusb, &provider_tanmarket, &provider_feihe,
};

const struct provider_ops *
provider_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof registry / sizeof registry[0]; i++)
		if (strcmp(registry[i]->name, name) == 0)
			return registry[i];
	return NULL;
}

const char *
provider_names(void)
{
	return "sainiu, tencent_desk, apiusb, tanmarket, feihe";
}

void
provider_request_clear(struct provider_request *req)
{
	int i;

	free(req->url);
	free(req->body);
	for (i = 0; i < req->n_headers; i++)
		free(req->headers[i]);
	memset(req, 0, sizeof *req);
}

int
provider_request_header(struct provider_request *req, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int n;

	if (req->n_headers >= (int)(sizeof req->headers / sizeof req->headers[0]))
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(line = malloc((size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(line, (size_t)n + 1, fmt, ap);
	va_end(ap);
	req->headers[req->n_headers++] = line;
	return 0;
}

void
provider_verdict(struct provider_item *item, enum provider_outcome outcome, const char *code,
                 const char *text)
{
	item->outcome = outcome;
	item->channel_fault = 0;
	snprintf(item->code, sizeof item->code, "%s", code ? code : "");
	free(item->message_text);
	item->message_text = text ? strdup(text) : NULL;
}

void
provider_verdict_all(struct provider_item *items, size_t n, enum provider_outcome outcome,
                     const char *code, const char *text)
{
	size_t i;

	for (i = 0; i < n; i++)
		provider_verdict(&items[i], outcome, code, text);
}

int
provider_judge_http(long http_status, struct provider_item *items, size_t n)
{
	char text[64];

	if (http_status >= 200 && http_status < 300)
		return 0;
	snprintf(text, sizeof text, "HTTP %ld", http_status);
	if (http_status == 429 || http_status == 503 || http_status == 408)
		provider_verdict_all(items, n, PROVIDER_TRANSIENT, NULL, text);
	else if (http_status >= 500)
		provider_verdict_all(items, n, PROVIDER_AMBIGUOUS, NULL, text);
	else
		provider_verdict_all(items, n, PROVIDER_PERMANENT, NULL, text);
	return 1;
}

void
provider_verdict_unreadable(struct provider_item *items, size_t n, const char *why)
{
	char text[160];

	snprintf(text, sizeof text, "unreadable answer (%s): it may have been accepted", why);
	provider_verdict_all(items, n, PROVIDER_AMBIGUOUS, NULL, text);
}

char *
provider_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s), i, j = 0;
	char *out = malloc(len * 3 + 1);

	if (!out)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			out[j++] = (char)c;
		} else {
			out[j++] = '%';
			out[j++] = hex[c >> 4];
			out[j++] = hex[c & 15];
		}
	}
	out[j] = '\0';
	return out;
}

void
provider_hex(const unsigned char *bytes, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	out[2 * len] = '\0';
}

cJSON *
provider_parse_answer(const char *body, size_t len)
{
	const char *end = NULL;
	cJSON *root;

	if (!body || len == 0 || !(root = cJSON_ParseWithLengthOpts(body, len, &end, 0)))
		return NULL;
	while (end && end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (end != body + len) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

int
provider_json_code(const cJSON *v, int64_t *out)
{
	if (cJSON_IsString(v))
		return util_parse_i64(v->valuestring, out);
	return util_json_i64(v, out);
}

const char *
provider_json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

char *
provider_text(const char *s)
{
	char *t = s ? utf8_truncate(s, 512) : NULL;
	size_t k = 2048;

	if (t && strlen(t) > k) {
		while (k > 0 && ((unsigned char)t[k] & 0xC0) == 0x80)
			k--;
		t[k] = '\0';
	}
	return t;
}

/* Masks every occurrence of needle (length n) in text. */
static void
mask_all(char *text, const char *needle, size_t n)
{
	char *p = text;

	while ((p = strstr(p, needle)) != NULL) {
		memset(p, '*', n);
		p += n;
	}
}

/* Masks the tail of text (its first len bytes) that begins needle: an echo cut short. */
static void
mask_tail(char *text, size_t len, const char *needle)
{
	size_t n = strlen(needle), k;

	for (k = n - 1 < len ? n - 1 : len; k >= 6; k--)
		if (memcmp(text + len - k, needle, k) == 0) {
			memset(text + len - k, '*', k);
			return;
		}
}

void
provider_redact(char *text, const char *secret)
{
	static const char ellipsis[] = "\xE2\x80\xA6";  /* what utf8_truncate appends to a cut */
	size_t n, len, el = sizeof ellipsis - 1;
	char *enc;

	if (!text || !secret || (n = strlen(secret)) < 6)
		return;
	enc = provider_urlencode(secret);
	mask_all(text, secret, n);
	if (enc && strcmp(enc, secret) != 0)
		mask_all(text, enc, strlen(enc));
	/* A provider text cut short (provider_text bounds it) may end inside the secret, before
	   the ellipsis the cut added. */
	len = strlen(text);
	if (len >= el && memcmp(text + len - el, ellipsis, el) == 0)
		len -= el;
	mask_tail(text, len, secret);
	if (enc && strcmp(enc, secret) != 0)
		mask_tail(text, len, enc);
	free(enc);
}

void
provider_redact_channel(char *text, const struct channel *ch, void *state)
{
	static const char *const keys[] = {
		"secret_key", "usersig", "access_token", "app_key", "sign_key", NULL,
	};
	size_t i;

	if (!text || !ch)
		return;
	for (i = 0; keys[i]; i++)
		provider_redact(text, config_str(ch, keys[i]));
	if (ch->ops && ch->ops->made_secret && state)
		provider_redact(text, ch->ops->made_secret(state));
}

const struct provider_code *
provider_code_find(const struct provider_code *table, int64_t code)
{
	for (; table && table->meaning; table++)
		if (table->code == code)
			return table;
	return NULL;
}

void
provider_verdict_answer(struct provider_item *item, enum provider_outcome outcome,
                        const char *code, const char *text, int64_t defer_until_ms,
                        int channel_fault)
{
	char *bounded = provider_text(text);

	provider_verdict(item, outcome, code, bounded);
	free(bounded);
	item->defer_until_ms = outcome == PROVIDER_DEFERRED ? defer_until_ms : 0;
	item->channel_fault = channel_fault;
}

int
provider_has_control(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}
