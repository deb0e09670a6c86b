/*
 * usersig.c: TLSSigAPIv2 UserSig generation and verification.
 *
 * Owns the content-to-sign layout, the JSON envelope, the zlib step and Tencent's
 * base64 variant. Nothing here keeps state; every buffer is per call. The secret
 * key is only ever handed to HMAC and never copied into a message.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#define ZLIB_CONST /* const next_in, so hostile input stays read-only */
#include <zlib.h>

#include "usersig.h"

/* JSON numbers come back as doubles; keep every number exactly representable. */
#define NUM_LIMIT ((int64_t)1 << 53)

/*
 * Hostile-input bounds for verify. A real UserSig is a few hundred characters and
 * inflates to a couple of hundred bytes; with a USERSIG_IDENTIFIER_MAX identifier
 * that is all JSON escapes the JSON stays under 2.3 KiB. Both bounds leave ample
 * room while stopping a zlib bomb after SIG_JSON_MAX bytes of output.
 */
#define SIG_TEXT_MAX 16384
#define SIG_JSON_MAX 16384

/* The signed text: exactly these four lines, each ending in '\n'. The optional
   fifth userbuf line of TLSSigAPIv2 is not used by IM and never written. */
#define CONTENT_FMT \
	"TLS.identifier:%s\nTLS.sdkappid:%" PRIu64 "\nTLS.time:%" PRId64 "\nTLS.expire:%" PRId64 "\n"

#define HMAC_B64_LEN 44 /* base64 of a 32-byte SHA-256 MAC */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
set_err(char **err, const char *msg)
{
	if (err != NULL)
		*err = strdup(msg);
}

/* Control characters are refused because '\n' ends a content line: an identifier
   holding one could forge the layout of the signed text. */
static int
identifier_ok(const char *identifier)
{
	size_t n;

	if (identifier == NULL)
		return 0;
	for (n = 0; identifier[n] != '\0'; n++) {
		unsigned char c = (unsigned char)identifier[n];

		if (c < 0x20 || c == 0x7f || n >= USERSIG_IDENTIFIER_MAX)
			return 0;
	}
	return n > 0;
}

static int
key_ok(const char *secret_key)
{
	/* HMAC() takes the key length as an int. */
	return secret_key != NULL && secret_key[0] != '\0' && strlen(secret_key) <= INT_MAX;
}

static int
numbers_ok(uint64_t sdkappid, int64_t time_s, int64_t expire_s)
{
	return sdkappid >= 1 && sdkappid < (uint64_t)NUM_LIMIT && time_s >= 0 &&
	    time_s < NUM_LIMIT && expire_s >= 1 && expire_s < NUM_LIMIT;
}

/* Returns a new string of standard base64 (with '=' padding), or NULL. */
static char *
b64_encode(const unsigned char *in, size_t len)
{
	char *out, *p;
	size_t i;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	p = out;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		*p++ = b64_std[v >> 18 & 63];
		*p++ = b64_std[v >> 12 & 63];
		*p++ = b64_std[v >> 6 & 63];
		*p++ = b64_std[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		*p++ = b64_std[v >> 18 & 63];
		*p++ = b64_std[v >> 12 & 63];
		*p++ = '=';
		*p++ = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		*p++ = b64_std[v >> 18 & 63];
		*p++ = b64_std[v >> 12 & 63];
		*p++ = b64_std[v >> 6 & 63];
		*p++ = '=';
	}
	*p = '\0';
	return out;
}

/* Value of one character of Tencent's alphabet, -2 for the pad '_', -1 otherwise. */
static int
tencent_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '*')
		return 62;
	if (c == '-')
		return 63;
	if (c == '_')
		return -2;
	return -1;
}

/*
 * Strict decoder for Tencent's base64: length a multiple of 4, padding only at
 * the end, unused trailing bits zero (one canonical spelling per byte string).
 * On success *out is a new buffer of *out_len bytes (caller frees).
 */
static int
tencent_b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	unsigned char *buf = NULL;
	size_t i, o = 0, pad = 0;
	int rc = -1;

	if (len == 0 || len % 4 != 0)
		goto out;
	if (in[len - 1] == '_')
		pad = in[len - 2] == '_' ? 2 : 1;
	buf = malloc(len / 4 * 3);
	if (buf == NULL)
		goto out;
	for (i = 0; i < len; i += 4) {
		int v[4], k, n = i + 4 == len ? 4 - (int)pad : 4;
		uint32_t w = 0;

		for (k = 0; k < 4; k++) {
			v[k] = tencent_b64_value((unsigned char)in[i + k]);
			if (k < n ? v[k] < 0 : v[k] != -2)
				goto out;
			w = w << 6 | (k < n ? (uint32_t)v[k] : 0);
		}
		buf[o++] = (unsigned char)(w >> 16);
		if (n > 2)
			buf[o++] = (unsigned char)(w >> 8);
		if (n > 3)
			buf[o++] = (unsigned char)w;
		if ((n == 2 && (w & 0xffff) != 0) || (n == 3 && (w & 0xff) != 0))
			goto out;
	}
	*out = buf;
	*out_len = o;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

/*
 * Inflates one complete zlib stream into a new NUL-terminated buffer of at most
 * cap bytes. Output is bounded up front, so a bomb costs at most cap bytes and
 * one pass over the input. Trailing bytes after the stream are refused.
 */
static int
inflate_bounded(const unsigned char *in, size_t in_len, size_t cap, char **out,
    size_t *out_len)
{
	z_stream zs;
	char *buf = NULL;
	int zrc, inited = 0, rc = -1;

	if (in_len > UINT_MAX)
		goto out;
	buf = malloc(cap + 1);
	if (buf == NULL)
		goto out;
	memset(&zs, 0, sizeof(zs));
	if (inflateInit(&zs) != Z_OK)
		goto out;
	inited = 1;
	zs.next_in = in;
	zs.avail_in = (uInt)in_len;
	zs.next_out = (Bytef *)buf;
	zs.avail_out = (uInt)cap;
	/* One call runs until the stream ends, the input runs out or cap is reached. */
	zrc = inflate(&zs, Z_FINISH);
	if (zrc != Z_STREAM_END || zs.avail_in != 0)
		goto out;
	*out_len = cap - zs.avail_out;
	buf[*out_len] = '\0';
	*out = buf;
	buf = NULL;
	rc = 0;
out:
	if (inited)
		inflateEnd(&zs);
	free(buf);
	return rc;
}

char *
usersig_hmac_base64(const char *secret_key, uint64_t sdkappid, const char *identifier,
    int64_t time_s, int64_t expire_s)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char *content = NULL, *sig = NULL;
	int n;

	if (!key_ok(secret_key) || !identifier_ok(identifier) ||
	    !numbers_ok(sdkappid, time_s, expire_s))
		goto out;
	n = snprintf(NULL, 0, CONTENT_FMT, identifier, sdkappid, time_s, expire_s);
	if (n < 0)
		goto out;
	content = malloc((size_t)n + 1);
	if (content == NULL)
		goto out;
	snprintf(content, (size_t)n + 1, CONTENT_FMT, identifier, sdkappid, time_s, expire_s);
	/* The key is the string's bytes as given; Tencent's SDKs do not hex-decode it. */
	if (HMAC(EVP_sha256(), secret_key, (int)strlen(secret_key), (unsigned char *)content,
	    (size_t)n, md, &md_len) == NULL)
		goto out;
	sig = b64_encode(md, md_len);
out:
	free(content);
	return sig;
}

/* Adds a JSON number written from an integer, so no double rounding is involved. */
static int
add_int(cJSON *obj, const char *name, int64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRId64, v);
	return cJSON_AddRawToObject(obj, name, num) != NULL ? 0 : -1;
}

int
usersig_generate(uint64_t sdkappid, const char *identifier, const char *secret_key,
    int64_t now_s, int64_t expire_s, char **out, char **err)
{
	cJSON *obj = NULL;
	char *sig = NULL, *json = NULL, *text = NULL;
	unsigned char *z = NULL;
	uLongf z_len;
	size_t json_len, i;
	int rc = -1;

	if (out == NULL) {
		set_err(err, "usersig: no output pointer");
		goto out;
	}
	if (!key_ok(secret_key)) {
		set_err(err, "usersig: secret key is empty");
		goto out;
	}
	if (!identifier_ok(identifier)) {
		set_err(err, "usersig: identifier must be 1-1024 bytes without control characters");
		goto out;
	}
	if (sdkappid < 1 || sdkappid >= (uint64_t)NUM_LIMIT) {
		set_err(err, "usersig: sdkappid out of range");
		goto out;
	}
	if (now_s < 0 || now_s >= NUM_LIMIT) {
		set_err(err, "usersig: time out of range");
		goto out;
	}
	if (expire_s < 1 || expire_s >= NUM_LIMIT) {
		set_err(err, "usersig: expire must be positive");
		goto out;
	}
	sig = usersig_hmac_base64(secret_key, sdkappid, identifier, now_s, expire_s);
	if (sig == NULL)
		goto oom;

	/* Field order follows the official SDKs; verifiers parse JSON, so it is cosmetic. */
	obj = cJSON_CreateObject();
	if (obj == NULL || cJSON_AddStringToObject(obj, "TLS.ver", "2.0") == NULL ||
	    cJSON_AddStringToObject(obj, "TLS.identifier", identifier) == NULL ||
	    add_int(obj, "TLS.sdkappid", (int64_t)sdkappid) == -1 ||
	    add_int(obj, "TLS.expire", expire_s) == -1 ||
	    add_int(obj, "TLS.time", now_s) == -1 ||
	    cJSON_AddStringToObject(obj, "TLS.sig", sig) == NULL)
		goto oom;
	json = cJSON_PrintUnformatted(obj);
	if (json == NULL)
		goto oom;
	json_len = strlen(json);

	z_len = compressBound((uLong)json_len);
	z = malloc(z_len);
	if (z == NULL)
		goto oom;
	if (compress2(z, &z_len, (const Bytef *)json, (uLong)json_len, Z_DEFAULT_COMPRESSION) !=
	    Z_OK) {
		set_err(err, "usersig: zlib compression failed");
		goto out;
	}
	text = b64_encode(z, z_len);
	if (text == NULL)
		goto oom;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] == '+')
			text[i] = '*';
		else if (text[i] == '/')
			text[i] = '-';
		else if (text[i] == '=')
			text[i] = '_';
	}
	*out = text;
	text = NULL;
	rc = 0;
	goto out;
oom:
	set_err(err, "usersig: out of memory");
out:
	cJSON_Delete(obj);
	cJSON_free(json);
	free(sig);
	free(z);
	free(text);
	return rc;
}

/* Reads a JSON integer in [min, 2^53); doubles above that could not be exact. */
static int
json_int(const cJSON *obj, const char *name, int64_t min, int64_t *v)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	/* NaN and infinities fail the range test, so the cast below is defined. */
	if (!(d >= (double)min && d < (double)NUM_LIMIT) || (double)(int64_t)d != d)
		return -1;
	*v = (int64_t)d;
	return 0;
}

int
usersig_verify(const char *sig, uint64_t sdkappid, const char *identifier,
    const char *secret_key, int64_t now_s, int64_t *expires_at_s, char **err)
{
	cJSON *obj = NULL;
	const cJSON *ver, *id, *mac;
	unsigned char *z = NULL;
	char *json = NULL, *want = NULL;
	const char *msg = "usersig malformed";
	size_t sig_len, z_len, json_len;
	int64_t app, time_s, expire_s;
	int rc = -1;

	if (!key_ok(secret_key)) {
		msg = "usersig: secret key is empty";
		goto out;
	}
	if (!identifier_ok(identifier)) {
		msg = "usersig: identifier must be 1-1024 bytes without control characters";
		goto out;
	}
	if (sig == NULL)
		goto out;
	sig_len = strnlen(sig, SIG_TEXT_MAX + 1);
	if (sig_len > SIG_TEXT_MAX || tencent_b64_decode(sig, sig_len, &z, &z_len) == -1)
		goto out;
	if (inflate_bounded(z, z_len, SIG_JSON_MAX, &json, &json_len) == -1)
		goto out;
	/* A NUL inside would let bytes after it escape the parser. */
	if (memchr(json, '\0', json_len) != NULL)
		goto out;
	obj = cJSON_ParseWithLengthOpts(json, json_len + 1, NULL, 1);
	if (!cJSON_IsObject(obj))
		goto out;
	ver = cJSON_GetObjectItemCaseSensitive(obj, "TLS.ver");
	id = cJSON_GetObjectItemCaseSensitive(obj, "TLS.identifier");
	mac = cJSON_GetObjectItemCaseSensitive(obj, "TLS.sig");
	if (!cJSON_IsString(ver) || !cJSON_IsString(id) || !cJSON_IsString(mac) ||
	    json_int(obj, "TLS.sdkappid", 1, &app) == -1 ||
	    json_int(obj, "TLS.time", 0, &time_s) == -1 ||
	    json_int(obj, "TLS.expire", 1, &expire_s) == -1)
		goto out;
	if (strcmp(ver->valuestring, "2.0") != 0) {
		msg = "usersig version unsupported";
		goto out;
	}
	if (strcmp(id->valuestring, identifier) != 0) {
		msg = "usersig for another identifier";
		goto out;
	}
	if ((uint64_t)app != sdkappid) {
		msg = "usersig for another sdkappid";
		goto out;
	}
	/* Recomputed from the caller's identifier and sdkappid, not the JSON's copies. */
	want = usersig_hmac_base64(secret_key, sdkappid, identifier, time_s, expire_s);
	if (want == NULL) {
		msg = "usersig: out of memory";
		goto out;
	}
	/* The length is public (always 44 for a genuine MAC); only the bytes need constant time. */
	if (strlen(mac->valuestring) != HMAC_B64_LEN ||
	    CRYPTO_memcmp(mac->valuestring, want, HMAC_B64_LEN) != 0) {
		msg = "usersig signature mismatch";
		goto out;
	}
	if (now_s < time_s) {
		msg = "usersig not yet valid";
		goto out;
	}
	if (now_s >= time_s + expire_s) {
		msg = "usersig expired";
		goto out;
	}
	if (expires_at_s != NULL)
		*expires_at_s = time_s + expire_s;
	rc = 0;
out:
	if (rc == -1)
		set_err(err, msg);
	cJSON_Delete(obj);
	free(z);
	free(json);
	free(want);
	return rc;
}
