/*
 * test_usersig.c: TLSSigAPIv2 UserSig. The decoding here is deliberately
 * independent of src/usersig.c (OpenSSL's EVP base64, zlib's one-shot
 * uncompress, cJSON), so a bug shared by generate and verify cannot hide.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#define ZLIB_CONST
#include <zlib.h>

#include "t.h"
#include "usersig.h"

/* The demo key from Tencent's SDK repositories and the vector in providers.md §2.1. */
#define KAT_KEY "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define KAT_APP 1400000000u
#define KAT_ID "xiaojun"
#define KAT_TIME 1700000000
#define KAT_EXPIRE 15552000
#define KAT_HEX "2ef03b77f230ee04ac9ec92f5730433ce0820dbb8d0b0e061f04c2d1b8a9f81e"
#define KAT_SIG "LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B4="

/* Checks an error message and that no piece of the key leaked into it. */
static void
check_err(char *err, const char *want)
{
	T_EQ_STR(err, want);
	if (err != NULL) {
		T_CHECK(strstr(err, KAT_KEY) == NULL);
		T_CHECK(strstr(err, "5bd2850f") == NULL);
		T_CHECK(strstr(err, "1bb93b5e") == NULL);
	}
	free(err);
}

/* Runs verify expecting failure with exactly want (NULL: any message). */
static void
expect_reject(const char *sig, uint64_t app, const char *id, const char *key, int64_t now,
    const char *want)
{
	char *err = NULL;
	int64_t exp_at = -7;

	T_EQ_INT(usersig_verify(sig, app, id, key, now, &exp_at, &err), -1);
	T_EQ_INT(exp_at, -7);
	T_CHECK(err != NULL);
	if (want == NULL) {
		T_CHECK(err != NULL && strncmp(err, "usersig", 7) == 0);
		check_err(err, err != NULL ? err : "");
	} else {
		check_err(err, want);
	}
}

static int
alphabet_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		char c = *s;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '*' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Tencent base64 -> bytes via OpenSSL; returns a new buffer or NULL. */
static unsigned char *
tencent_unbase64(const char *sig, size_t *len)
{
	size_t n = strlen(sig), i, pad = 0;
	char *std = malloc(n + 1);
	unsigned char *out = malloc(n / 4 * 3 + 1);
	int got;

	if (std == NULL || out == NULL || n % 4 != 0)
		goto fail;
	for (i = 0; i < n; i++)
		std[i] = sig[i] == '*' ? '+' : sig[i] == '-' ? '/' : sig[i] == '_' ? '=' : sig[i];
	std[n] = '\0';
	if (n >= 1 && std[n - 1] == '=')
		pad++;
	if (n >= 2 && std[n - 2] == '=')
		pad++;
	got = EVP_DecodeBlock(out, (unsigned char *)std, (int)n);
	if (got < 0 || (size_t)got < pad)
		goto fail;
	*len = (size_t)got - pad;
	free(std);
	return out;
fail:
	free(std);
	free(out);
	return NULL;
}

/* bytes -> Tencent base64 via OpenSSL; returns a new string. */
static char *
tencent_base64(const unsigned char *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);
	size_t i;

	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	for (i = 0; out[i] != '\0'; i++)
		out[i] = out[i] == '+' ? '*' : out[i] == '/' ? '-' : out[i] == '=' ? '_' : out[i];
	return out;
}

/* Wraps arbitrary text the way a UserSig is wrapped: zlib, then Tencent base64. */
static char *
wrap(const char *text, size_t len)
{
	uLongf zlen = compressBound((uLong)len);
	unsigned char *z = malloc(zlen);
	char *s = NULL;

	if (z != NULL && compress2(z, &zlen, (const Bytef *)text, (uLong)len, 9) == Z_OK)
		s = tencent_base64(z, zlen);
	free(z);
	return s;
}

/* Full independent decode: returns the JSON text (new string) or NULL. */
static char *
unwrap(const char *sig)
{
	size_t zlen = 0;
	unsigned char *z = tencent_unbase64(sig, &zlen);
	uLongf jlen = 65536;
	char *json = malloc(jlen + 1);

	if (z == NULL || json == NULL || uncompress((Bytef *)json, &jlen, z, (uLong)zlen) != Z_OK) {
		free(z);
		free(json);
		return NULL;
	}
	json[jlen] = '\0';
	free(z);
	return json;
}

static char *
gen(uint64_t app, const char *id, const char *key, int64_t now, int64_t expire)
{
	char *out = NULL, *err = NULL;

	T_EQ_INT(usersig_generate(app, id, key, now, expire, &out, &err), 0);
	T_CHECK(err == NULL);
	free(err);
	T_CHECK(out != NULL);
	return out;
}

static void
test_known_answer(void)
{
	char *sig = usersig_hmac_base64(KAT_KEY, KAT_APP, KAT_ID, KAT_TIME, KAT_EXPIRE);
	unsigned char raw[48];
	char hex[65];
	int n, i;

	T_EQ_STR(sig, KAT_SIG);
	/* The hex form in providers.md, through OpenSSL's decoder rather than ours. */
	n = EVP_DecodeBlock(raw, (const unsigned char *)KAT_SIG, 44);
	T_EQ_INT(n, 33); /* 32 bytes plus the one padding byte EVP_DecodeBlock counts */
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	T_EQ_STR(hex, KAT_HEX);
	free(sig);

	/* The key is the ASCII string: a different spelling of the same hex differs. */
	sig = usersig_hmac_base64(
	    "5BD2850FFF3ECB11D7C805251C51EE463A25727BDDC2385F3FA8BFEE1BB93B5E", KAT_APP, KAT_ID,
	    KAT_TIME, KAT_EXPIRE);
	T_CHECK(sig != NULL && strcmp(sig, KAT_SIG) != 0);
	free(sig);

	T_CHECK(usersig_hmac_base64(NULL, KAT_APP, KAT_ID, KAT_TIME, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64("", KAT_APP, KAT_ID, KAT_TIME, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64(KAT_KEY, KAT_APP, "", KAT_TIME, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64(KAT_KEY, KAT_APP, "a\nb", KAT_TIME, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64(KAT_KEY, 0, KAT_ID, KAT_TIME, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64(KAT_KEY, KAT_APP, KAT_ID, -1, KAT_EXPIRE) == NULL);
	T_CHECK(usersig_hmac_base64(KAT_KEY, KAT_APP, KAT_ID, KAT_TIME, 0) == NULL);
}

static void
test_generate_decode_verify(void)
{
	char *sig = gen(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE);
	char *json = NULL, *err = NULL;
	cJSON *obj = NULL, *it;
	int64_t exp_at = 0;

	if (sig == NULL)
		return;
	T_CHECK(alphabet_ok(sig));
	json = unwrap(sig);
	T_CHECK(json != NULL);
	obj = json != NULL ? cJSON_Parse(json) : NULL;
	T_CHECK(cJSON_IsObject(obj));
	T_EQ_INT(cJSON_GetArraySize(obj), 6);
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.ver");
	T_CHECK(cJSON_IsString(it));
	T_EQ_STR(cJSON_GetStringValue(it), "2.0");
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.identifier");
	T_CHECK(cJSON_IsString(it));
	T_EQ_STR(cJSON_GetStringValue(it), KAT_ID);
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.sdkappid");
	T_CHECK(cJSON_IsNumber(it));
	T_CHECK(cJSON_GetNumberValue(it) == 1400000000.0);
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.time");
	T_CHECK(cJSON_IsNumber(it));
	T_CHECK(cJSON_GetNumberValue(it) == 1700000000.0);
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.expire");
	T_CHECK(cJSON_IsNumber(it));
	T_CHECK(cJSON_GetNumberValue(it) == 15552000.0);
	it = cJSON_GetObjectItemCaseSensitive(obj, "TLS.sig");
	T_CHECK(cJSON_IsString(it));
	T_EQ_STR(cJSON_GetStringValue(it), KAT_SIG);
	/* Numbers are written as plain integers, not 1.4e9. */
	T_CHECK(json != NULL && strstr(json, "\"TLS.sdkappid\":1400000000") != NULL);
	T_CHECK(json != NULL && strstr(json, "\"TLS.time\":1700000000") != NULL);

	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, &exp_at, &err), 0);
	T_CHECK(err == NULL);
	T_EQ_INT(exp_at, (int64_t)KAT_TIME + KAT_EXPIRE);
	/* expires_at_s and err are optional. */
	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME + 100, NULL, NULL), 0);

	free(err);
	cJSON_Delete(obj);
	free(json);
	free(sig);
}

static void
test_validity_window(void)
{
	char *sig = gen(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE);
	int64_t exp_at = 0;

	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME + KAT_EXPIRE - 1, &exp_at,
	    NULL), 0);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME + KAT_EXPIRE, "usersig expired");
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, INT64_MAX, "usersig expired");
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME - 1, "usersig not yet valid");
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, INT64_MIN, "usersig not yet valid");
	free(sig);

	/* A one-second lifetime is valid for exactly one second. */
	sig = gen(KAT_APP, KAT_ID, KAT_KEY, 5, 1);
	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, 5, &exp_at, NULL), 0);
	T_EQ_INT(exp_at, 6);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, 6, "usersig expired");
	free(sig);
}

static void
test_wrong_party(void)
{
	char *sig = gen(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE);

	expect_reject(sig, KAT_APP, KAT_ID,
	    "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5f", KAT_TIME,
	    "usersig signature mismatch");
	expect_reject(sig, KAT_APP, KAT_ID, "x", KAT_TIME, "usersig signature mismatch");
	expect_reject(sig, KAT_APP, "xiaojun2", KAT_KEY, KAT_TIME, "usersig for another identifier");
	expect_reject(sig, KAT_APP, "Xiaojun", KAT_KEY, KAT_TIME, "usersig for another identifier");
	expect_reject(sig, KAT_APP + 1, KAT_ID, KAT_KEY, KAT_TIME, "usersig for another sdkappid");
	/* Wrong key on an expired sig says mismatch: the window is only judged for genuine sigs. */
	expect_reject(sig, KAT_APP, KAT_ID, "other", KAT_TIME + KAT_EXPIRE,
	    "usersig signature mismatch");
	/* Bad arguments on the verifying side. */
	expect_reject(sig, KAT_APP, KAT_ID, "", KAT_TIME, "usersig: secret key is empty");
	expect_reject(sig, KAT_APP, KAT_ID, NULL, KAT_TIME, "usersig: secret key is empty");
	expect_reject(sig, KAT_APP, NULL, KAT_KEY, KAT_TIME, NULL);
	expect_reject(sig, KAT_APP, "", KAT_KEY, KAT_TIME, NULL);
	free(sig);
}

/* Every single-character substitution anywhere in the text must be refused. */
static void
test_tampered_text(void)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_";
	char *sig = gen(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE);
	size_t i, n, accepted = 0;
	int k;

	if (sig == NULL)
		return;
	n = strlen(sig);
	for (i = 0; i < n; i++) {
		char orig = sig[i];

		for (k = 0; k < 3; k++) {
			char *err = NULL;

			/* Three replacements per position, spread over the alphabet. */
			sig[i] = alpha[(strchr(alpha, orig) - alpha + 1 + k * 21) % 65];
			if (usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, NULL, &err) == 0)
				accepted++;
			else
				T_CHECK(err != NULL && strstr(err, KAT_KEY) == NULL);
			free(err);
		}
		sig[i] = orig;
	}
	T_EQ_INT(accepted, 0);
	/* Truncation and extension. */
	sig[n - 4] = '\0';
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
}

/* Signed fields altered inside a well-formed envelope: the MAC must catch each. */
static void
test_tampered_json(void)
{
	static const struct {
		const char *json;
		const char *want;
	} cases[] = {
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    NULL },
		/* Whitespace and key order are not signed, so a re-serialised copy is fine. */
		{ "{ \"TLS.sig\" : \"" KAT_SIG "\", \"TLS.time\": 1700000000, \"TLS.expire\": 15552000,"
		  " \"TLS.sdkappid\": 1400000000, \"TLS.identifier\": \"xiaojun\", \"TLS.ver\": \"2.0\" }\n",
		    NULL },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000001,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig signature mismatch" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":31104000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig signature mismatch" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,"
		  "\"TLS.sig\":\"LvA7d/Iw7gSsnskvVzBDPOCCDbuNCw4GHwTC0bip+B5=\"}",
		    "usersig signature mismatch" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "AAAA\"}",
		    "usersig signature mismatch" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"\"}",
		    "usersig signature mismatch" },
		{ "{\"TLS.ver\":\"1.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig version unsupported" },
		{ "{\"TLS.ver\":2.0,\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":\"1400000000\","
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000.5,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":-1,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":1e400,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"} x",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"",
		    "usersig malformed" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\",\"TLS.sdkappid\":1400000001,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"" KAT_SIG "\"}",
		    "usersig for another sdkappid" },
		{ "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\\u0000x\",\"TLS.sdkappid\":1400000000,"
		  "\"TLS.expire\":15552000,\"TLS.time\":1700000000,\"TLS.sig\":\"AAAA\"}",
		    NULL /* any rejection */ },
		{ "[\"TLS.ver\",\"2.0\"]", "usersig malformed" },
		{ "\"2.0\"", "usersig malformed" },
		{ "null", "usersig malformed" },
		{ "", "usersig malformed" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *sig = wrap(cases[i].json, strlen(cases[i].json));
		char *err = NULL;
		int rc;

		T_CHECK(sig != NULL);
		if (sig == NULL)
			continue;
		rc = usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, NULL, &err);
		if (i < 2) {
			if (rc != 0)
				fprintf(stderr, "case %zu: %s\n", i, err ? err : "(null)");
			T_EQ_INT(rc, 0);
			T_CHECK(err == NULL);
			free(err);
		} else {
			if (rc != -1)
				fprintf(stderr, "case %zu accepted\n", i);
			T_EQ_INT(rc, -1);
			if (cases[i].want != NULL)
				check_err(err, cases[i].want);
			else
				check_err(err, err != NULL ? err : "");
		}
		free(sig);
	}
}

/* Envelopes that are not zlib, or zlib with extra bytes. */
static void
test_bad_envelope(void)
{
	const char *json = "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"xiaojun\","
	    "\"TLS.sdkappid\":1400000000,\"TLS.expire\":15552000,\"TLS.time\":1700000000,"
	    "\"TLS.sig\":\"" KAT_SIG "\"}";
	size_t len = strlen(json);
	uLongf zlen = compressBound((uLong)len) + 8;
	unsigned char *z = malloc(zlen);
	char *sig;
	z_stream zs;

	T_CHECK(z != NULL);
	if (z == NULL)
		return;
	T_EQ_INT(compress2(z, &zlen, (const Bytef *)json, (uLong)len, 6), Z_OK);
	/* Sanity: the untouched stream is accepted. */
	sig = tencent_base64(z, zlen);
	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, NULL, NULL), 0);
	free(sig);
	/* Stored blocks, as Tencent's Go SDK writes them (zlib.NoCompression), are accepted too. */
	zlen = compressBound((uLong)len) + 8;
	T_EQ_INT(compress2(z, &zlen, (const Bytef *)json, (uLong)len, 0), Z_OK);
	T_CHECK(zlen > len);
	sig = tencent_base64(z, zlen);
	T_EQ_INT(usersig_verify(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, NULL, NULL), 0);
	free(sig);
	/* Trailing junk after the stream. */
	z[zlen] = 0x41;
	sig = tencent_base64(z, zlen + 1);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	/* Truncated stream (checksum missing). */
	sig = tencent_base64(z, zlen - 2);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	/* Bad adler32. */
	z[zlen - 1] ^= 1;
	sig = tencent_base64(z, zlen);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	/* The JSON itself, uncompressed. */
	sig = tencent_base64((const unsigned char *)json, len);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	/* gzip framing instead of zlib. */
	memset(&zs, 0, sizeof(zs));
	T_EQ_INT(deflateInit2(&zs, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (const Bytef *)json;
	zs.avail_in = (uInt)len;
	zs.next_out = z;
	zs.avail_out = (uInt)compressBound((uLong)len) + 8;
	T_EQ_INT(deflate(&zs, Z_FINISH), Z_STREAM_END);
	sig = tencent_base64(z, zs.total_out);
	deflateEnd(&zs);
	expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	free(z);
}

static void
test_garbage(void)
{
	static const char *const junk[] = {
		"", "A", "AA", "AAA", "AAAA", "____", "A___", "AA__", "AAA_", "AAAAAAAA",
		"not a usersig", "!!!!", "eJ__", "eJyrVgpVslIqSU0uUaoFADyNBoI_",
		/* Standard-alphabet characters are not part of Tencent's variant. */
		"eJyrVgpVslIqSU0uUaoFADyNBoI=", "eJy+", "eJy/", "AA=_", "A_AA", "AB__",
		"eJwrSS0uUSjKL8nPTVUEAB/XBPQ_\n", " eJwrSS0uUSjKL8nPTVUEAB-XBPQ_",
	};
	size_t i;
	char *big;

	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		expect_reject(junk[i], KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	expect_reject(NULL, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	T_EQ_INT(usersig_verify("", KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, NULL, NULL), -1);

	/* A megabyte of valid-alphabet text is refused before any decoding work. */
	big = malloc(1 << 20);
	T_CHECK(big != NULL);
	if (big != NULL) {
		memset(big, 'A', (1 << 20) - 1);
		big[(1 << 20) - 1] = '\0';
		expect_reject(big, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
		free(big);
	}
}

/* Small input, huge output: must stop at the bound, not allocate the output. */
static void
test_zlib_bomb(void)
{
	const size_t n = 4u << 20;
	char *text = malloc(n);
	char *sig = NULL;
	static const char head[] = "{\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"";

	T_CHECK(text != NULL);
	if (text == NULL)
		return;
	/* A plausible head so the prefix looks like a real envelope, then 4 MiB of 'a'. */
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'a', n - (sizeof(head) - 1));
	sig = wrap(text, n);
	T_CHECK(sig != NULL && strlen(sig) < 16384);
	if (sig != NULL)
		expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	/* Pure zeros, the classic shape. */
	memset(text, 0, n);
	sig = wrap(text, n);
	if (sig != NULL)
		expect_reject(sig, KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, "usersig malformed");
	free(sig);
	free(text);
}

static void
test_generate_errors(void)
{
	char *out = (char *)"untouched", *err = NULL;
	char longid[USERSIG_IDENTIFIER_MAX + 2];

	T_EQ_INT(usersig_generate(KAT_APP, "", KAT_KEY, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	T_CHECK(err != NULL && strncmp(err, "usersig: ", 9) == 0);
	check_err(err, err != NULL ? err : "");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, NULL, KAT_KEY, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, err != NULL ? err : "");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, "a\nTLS.sdkappid:1", KAT_KEY, KAT_TIME, KAT_EXPIRE, &out,
	    &err), -1);
	check_err(err, err != NULL ? err : "");
	err = NULL;
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	T_EQ_INT(usersig_generate(KAT_APP, longid, KAT_KEY, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, err != NULL ? err : "");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, "", KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, "usersig: secret key is empty");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, NULL, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, "usersig: secret key is empty");
	err = NULL;
	T_EQ_INT(usersig_generate(0, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, "usersig: sdkappid out of range");
	err = NULL;
	T_EQ_INT(usersig_generate(UINT64_MAX, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE, &out, &err), -1);
	check_err(err, "usersig: sdkappid out of range");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, KAT_KEY, -1, KAT_EXPIRE, &out, &err), -1);
	check_err(err, "usersig: time out of range");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, 0, &out, &err), -1);
	check_err(err, "usersig: expire must be positive");
	err = NULL;
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, -5, &out, NULL), -1);
	T_EQ_INT(usersig_generate(KAT_APP, KAT_ID, KAT_KEY, KAT_TIME, KAT_EXPIRE, NULL, &err), -1);
	check_err(err, err != NULL ? err : "");
	T_EQ_STR(out, "untouched");
}

/* Identifiers of every length mod 3 (all padding cases) and JSON-special bytes. */
static void
test_round_trips(void)
{
	static const char *const ids[] = {
		"a", "ab", "abc", "user_01", "a\"b\\c/d", "\xe5\xb0\x8f\xe5\x86\x9b", "x-y.z@w",
	};
	char id[USERSIG_IDENTIFIER_MAX + 1];
	size_t i, pads[3] = { 0, 0, 0 };

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char *sig = gen(KAT_APP, ids[i], KAT_KEY, KAT_TIME, KAT_EXPIRE);
		char *json = sig != NULL ? unwrap(sig) : NULL;
		cJSON *obj = json != NULL ? cJSON_Parse(json) : NULL;

		T_CHECK(sig != NULL && alphabet_ok(sig));
		T_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "TLS.identifier")),
		    ids[i]);
		T_EQ_INT(usersig_verify(sig, KAT_APP, ids[i], KAT_KEY, KAT_TIME, NULL, NULL), 0);
		cJSON_Delete(obj);
		free(json);
		free(sig);
	}
	for (i = 1; i <= 60; i++) {
		char *sig;
		size_t n;

		memset(id, 'a' + (int)(i % 26), i);
		id[i] = '\0';
		sig = gen((uint64_t)1400000000 + i, id, KAT_KEY, KAT_TIME + (int64_t)i, 86400);
		if (sig == NULL)
			continue;
		T_CHECK(alphabet_ok(sig));
		n = strlen(sig);
		pads[(sig[n - 1] == '_') + (sig[n - 2] == '_')]++;
		T_EQ_INT(usersig_verify(sig, (uint64_t)1400000000 + i, id, KAT_KEY,
		    KAT_TIME + (int64_t)i, NULL, NULL), 0);
		free(sig);
	}
	T_CHECK(pads[0] > 0 && pads[1] > 0 && pads[2] > 0);
	/* The longest identifier, all characters needing JSON escapes, still verifies. */
	memset(id, '"', USERSIG_IDENTIFIER_MAX);
	id[USERSIG_IDENTIFIER_MAX] = '\0';
	{
		char *sig = gen(KAT_APP, id, KAT_KEY, KAT_TIME, KAT_EXPIRE);

		T_EQ_INT(usersig_verify(sig, KAT_APP, id, KAT_KEY, KAT_TIME, NULL, NULL), 0);
		free(sig);
	}
	/* Large but representable numbers survive the JSON round trip exactly. */
	{
		uint64_t app = ((uint64_t)1 << 53) - 1;
		int64_t t = ((int64_t)1 << 52), e = ((int64_t)1 << 52) - 1, at = 0;
		char *sig = gen(app, KAT_ID, KAT_KEY, t, e);

		T_EQ_INT(usersig_verify(sig, app, KAT_ID, KAT_KEY, t + e - 1, &at, NULL), 0);
		T_EQ_INT(at, t + e);
		expect_reject(sig, app - 1, KAT_ID, KAT_KEY, t, "usersig for another sdkappid");
		free(sig);
	}
}

int
main(void)
{
	T_RUN(test_known_answer);
	T_RUN(test_generate_decode_verify);
	T_RUN(test_validity_window);
	T_RUN(test_wrong_party);
	T_RUN(test_tampered_text);
	T_RUN(test_tampered_json);
	T_RUN(test_bad_envelope);
	T_RUN(test_garbage);
	T_RUN(test_zlib_bomb);
	T_RUN(test_generate_errors);
	T_RUN(test_round_trips);
	return t_report();
}
