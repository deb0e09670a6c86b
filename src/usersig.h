/*
 * usersig.h: Tencent Cloud IM UserSig (TLSSigAPIv2), the credential every IM REST
 * call carries. Generation is what the provider needs; verification exists so the
 * mock provider server and the tests can check what we send.
 *
 * Wire form: HMAC-SHA256 over four "TLS.<field>:<value>\n" lines, keyed with the
 * secret key string as given (the console key looks like hex but is NOT decoded),
 * wrapped in a small JSON object, zlib-compressed, base64-encoded, and finally
 * '+' '/' '=' replaced by '*' '-' '_' so the result needs no URL escaping.
 *
 * Limits both sides enforce, so anything generate produces verify accepts:
 * identifier is 1..USERSIG_IDENTIFIER_MAX bytes with no control characters;
 * sdkappid, time and expire are below 2^53 (JSON numbers are doubles on the
 * verifying side) and expire is at least 1 second.
 *
 * Error strings never contain the secret key. All functions are thread-safe.
 */
#ifndef HERALD_USERSIG_H
#define HERALD_USERSIG_H

#include <stdint.h>

/* Longest identifier accepted, in bytes. Tencent caps UserIDs at 32; this bound
   only keeps the decoded JSON small enough for verify's inflate limit. */
#define USERSIG_IDENTIFIER_MAX 1024

/*
 * Generates a UserSig for identifier under sdkappid, signed with secret_key,
 * valid from now_s (Unix seconds) for expire_s seconds.
 * Returns 0 with *out a new NUL-terminated string over [A-Za-z0-9*_-] (caller
 * frees). Returns -1 on bad arguments or allocation failure with *out untouched
 * and, if err is non-NULL, *err a new message (caller frees).
 */
int usersig_generate(uint64_t sdkappid, const char *identifier, const char *secret_key,
    int64_t now_s, int64_t expire_s, char **out, char **err);

/*
 * Decodes and verifies sig: Tencent base64 -> inflate (output bounded, safe on
 * hostile input) -> JSON -> TLS.ver "2.0", same identifier and sdkappid, HMAC
 * recomputed and compared in constant time, and now_s within
 * [TLS.time, TLS.time + TLS.expire).
 * Returns 0 on success and, if expires_at_s is non-NULL, sets it to
 * TLS.time + TLS.expire (Unix seconds). Returns -1 otherwise, with *err (if err
 * is non-NULL) a new message (caller frees), exactly one of:
 *   "usersig malformed"               not Tencent base64 / zlib / the expected JSON
 *   "usersig version unsupported"     TLS.ver is not "2.0"
 *   "usersig for another identifier"
 *   "usersig for another sdkappid"
 *   "usersig signature mismatch"      wrong key, or any signed field altered
 *   "usersig not yet valid"           now_s < TLS.time
 *   "usersig expired"                 now_s >= TLS.time + TLS.expire
 *   "usersig: <argument problem>"     NULL/invalid arguments, out of memory
 * The signature is checked before the validity window, so "expired" and
 * "not yet valid" are only reported for genuine signatures.
 */
int usersig_verify(const char *sig, uint64_t sdkappid, const char *identifier,
    const char *secret_key, int64_t now_s, int64_t *expires_at_s, char **err);

/*
 * Computes only the TLS.sig field: standard base64 (with '+' '/' '=') of
 * HMAC-SHA256 over the four content lines. Exposed for the known-answer test.
 * Returns a new string (caller frees), or NULL on invalid arguments (same limits
 * as usersig_generate) or allocation failure.
 */
char *usersig_hmac_base64(const char *secret_key, uint64_t sdkappid, const char *identifier,
    int64_t time_s, int64_t expire_s);

#endif
