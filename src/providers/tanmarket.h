/*
 * tanmarket: the one piece of the Tanmarket provider module that is exported besides
 * `provider_tanmarket` (provider.h): the request signature, so tests can check it against a
 * known answer.
 */
#ifndef HERALD_TANMARKET_H
#define HERALD_TANMARKET_H

#include <stddef.h>

/* Size of a sign buffer: 64 lowercase hex digits of a SHA-256, plus the NUL. */
#define TANMARKET_SIGN_LEN 65

/*
 * Writes into out the sign of one request: lowercase hex SHA-256 of
 * app_id + timestamp + body[0..body_len) + app_key, where timestamp is the exact string sent
 * in the `timestamp` header and body the exact bytes sent (NULL allowed when body_len is 0).
 * out is "" if the digest could not be computed. Thread-safe, no state.
 */
void tanmarket_sign_hex(const char *app_id, const char *timestamp, const char *body,
                        size_t body_len, const char *app_key, char out[TANMARKET_SIGN_LEN]);

#endif
