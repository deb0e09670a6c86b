/*
 * http: the only module that speaks libcurl. Many requests in flight on one multi handle,
 * connections reused, timeouts on connect and on the whole request, no signals (NOSIGNAL).
 * A thread of its own drives the transfers, so answers are read on time whatever the caller
 * is doing. Used by one caller thread; only http_wakeup may be called from another.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "provider.h"

struct http;

/* A finished request. body is malloc'd (caller frees), NUL-terminated, may be empty. */
struct http_result {
	void *ctx;                    /* what http_start was given */
	long status;                  /* HTTP status, 0 when no answer came */
	char *body;
	size_t body_len;
	char error[256];              /* why no answer came (status 0) */
	int sent;                     /* 1 unless the request certainly never reached the provider
	                                 (DNS, connect or TLS failure, nothing written): SPEC 5.10 */
	int64_t retry_after_ms;       /* the answer's Retry-After, 0 when none */
	int64_t duration_ms;
};

/* Initialises libcurl once per process; call before threads start. 0 / -1. */
int http_global_init(void);
void http_global_cleanup(void);

struct http *http_new(void);
/* Abandons what is in flight, handing each request's ctx to drop (if non-NULL). NULL ok. */
void http_free(struct http *h, void (*drop)(void *ctx));

/* Starts req (which the call copies what it needs from). 0 / -1 with *err. */
int http_start(struct http *h, const struct provider_request *req, int64_t timeout_ms,
               int64_t connect_timeout_ms, void *ctx, char **err);
/* Waits at most timeout_ms for a finished request (or http_wakeup). */
int http_wait(struct http *h, int timeout_ms);
/* Pops one finished request: 1 (filled *out), 0 none. */
int http_next(struct http *h, struct http_result *out);
/* Requests in flight. */
int http_in_flight(const struct http *h);
/* Makes a blocked http_wait return early; safe from any thread. */
void http_wakeup(struct http *h);

#endif
