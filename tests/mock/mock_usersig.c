/*
 * mock_usersig.c: the mock's own TLSSigAPIv2 check, written from the format
 * (providers.md 2.1, after Tencent's reference clients) and not from Herald's
 * src/usersig.c, so that a fault in the project's encoder cannot pass because
 * the same fault sits in the decoder judging it.
 *
 * A UserSig is base64 with '*' '-' '_' for '+' '/' '=', of a zlib stream, of
 * a JSON object {"TLS.ver":"2.0","TLS.identifier","TLS.sdkappid","TLS.time",
 * "TLS.expire","TLS.sig"}; TLS.sig is standard base64 of HMAC-SHA256, keyed
 * with the secret key's bytes as given, over the four lines
 * "TLS.identifier:<id>\nTLS.sdkappid:<n>\nTLS.time:<n>\nTLS.expire:<n>\n".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zlib.h>

#include "mock.h"

/* A UserSig's JSON is a few hundred bytes; anything inflating past this is refused. */
#define SIG_JSON_MAX	8192
/* Longest UserSig looked at: a real one is well under 1 KiB. */
#define SIG_TEXT_MAX	8192

static int
b64_value(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '*' : '+'))
		return 62;
	if (c == (url ? '-' : '/'))
		return 63;
	return -1;
}

/*
 * Decodes base64 (url: Tencent's '*' '-' '_' alphabet, else '+' '/' '=') into
 * out; the length must be a multiple of 4 with at most two pad characters at
 * the end. Returns the byte count, or -1.
 */
static long
b64_decode(const char *s, int url, unsigned char *out, size_t cap)
{
	size_t len = strlen(s), i, n = 0, pad = 0;
	char padc = url ? '_' : '=';
	uint32_t acc;
	int k, v;

	if (len == 0 || len % 4 != 0)
		return -1;
	while (pad < 2 && s[len - 1 - pad] == padc)
		pad++;
	for (i = 0; i < len; i += 4) {
		acc = 0;
		for (k = 0; k < 4; k++) {
			if (i + (size_t)k >= len - pad)
				v = 0;
			else if ((v = b64_value((unsigned char)s[i + k], url)) < 0)
				return -1;
			acc = acc << 6 | (uint32_t)v;
		}
		for (k = 0; k < 3; k++) {
			if (i + 4 == len && k >= 3 - (int)pad)
				break;
			if (n == cap)
				return -1;
			out[n++] = (unsigned char)(acc >> (16 - 8 * k));
		}
	}
	return (long)n;
}

/* Inflates a zlib stream into a new NUL-terminated string of at most SIG_JSON_MAX bytes. */
static char *
inflate_json(const unsigned char *in, size_t len)
{
	char *out = mock_xcalloc(SIG_JSON_MAX + 1, 1);
	z_stream z;
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit(&z) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (unsigned char *)out;
	z.avail_out = SIG_JSON_MAX;
	rc = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	/* Anything but a whole stream that fits, and nothing after it, is malformed. */
	if (rc != Z_STREAM_END || z.avail_in != 0 || memchr(out, '\0', z.total_out) != NULL) {
		free(out);
		return NULL;
	}
	out[z.total_out] = '\0';
	return out;
}

/* A JSON number that is a whole value in [0, 2^53); -1 if not. */
static int
whole(const cJSON *j, const char *name, int64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, name);

	if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble >= 9007199254740992.0 ||
	    n->valuedouble != (double)(int64_t)n->valuedouble)
		return -1;
	*v = (int64_t)n->valuedouble;
	return 0;
}

int
mock_usersig_check(const char *sig, uint64_t sdkappid, const char *identifier,
    const char *secret, int64_t now_s, const char **why)
{
	unsigned char raw[SIG_TEXT_MAX], mac[EVP_MAX_MD_SIZE], want[64];
	unsigned int mac_len = 0;
	char *json = NULL, content[2048];
	const char *ver, *id, *b64sig;
	int64_t app, t, expire;
	long n, want_len;
	cJSON *j = NULL;
	int rc = -1, len;

	*why = "usersig malformed";
	if (strlen(sig) > SIG_TEXT_MAX ||
	    (n = b64_decode(sig, 1, raw, sizeof(raw))) < 0 ||
	    (json = inflate_json(raw, (size_t)n)) == NULL ||
	    (j = cJSON_Parse(json)) == NULL || !cJSON_IsObject(j))
		goto out;
	ver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "TLS.ver"));
	id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "TLS.identifier"));
	b64sig = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "TLS.sig"));
	if (ver == NULL || id == NULL || b64sig == NULL || whole(j, "TLS.sdkappid", &app) == -1 ||
	    whole(j, "TLS.time", &t) == -1 || whole(j, "TLS.expire", &expire) == -1)
		goto out;
	if (strcmp(ver, "2.0") != 0) {
		*why = "usersig version unsupported";
		goto out;
	}
	if (strcmp(id, identifier) != 0) {
		*why = "usersig for another identifier";
		goto out;
	}
	if ((uint64_t)app != sdkappid) {
		*why = "usersig for another sdkappid";
		goto out;
	}
	len = snprintf(content, sizeof(content),
	    "TLS.identifier:%s\nTLS.sdkappid:%" PRId64 "\nTLS.time:%" PRId64
	    "\nTLS.expire:%" PRId64 "\n", id, app, t, expire);
	if (len < 0 || (size_t)len >= sizeof(content))
		goto out;
	if ((want_len = b64_decode(b64sig, 0, want, sizeof(want))) != 32)
		goto out;
	if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)content,
	    (size_t)len, mac, &mac_len) == NULL || mac_len != 32 ||
	    CRYPTO_memcmp(mac, want, 32) != 0) {
		*why = "usersig signature mismatch";
		goto out;
	}
	if (now_s < t) {
		*why = "usersig not yet valid";
		goto out;
	}
	if (now_s >= t + expire) {
		*why = "usersig expired";
		goto out;
	}
	*why = NULL;
	rc = 0;
out:
	cJSON_Delete(j);
	free(json);
	return rc;
}
