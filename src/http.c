/*
 * http: libcurl's multi interface behind a small API. Each transfer owns a copy of its
 * request (URL, headers, body) and collects the answer body up to a cap, so a provider that
 * answers gigabytes cannot exhaust memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "clock.h"
#include "http.h"
#include "util.h"

/* Provider answers are small; anything bigger is an error, not something to buffer. */
#define BODY_MAX (1 << 20)

struct transfer {
	struct transfer *prev, *next; /* the http's list of transfers in flight */
	CURL *easy;
	struct curl_slist *headers;
	char *body;                   /* request body (owned; curl reads it in place) */
	struct buf answer;
	int too_big;
	int64_t started_mono;
	void *ctx;
	char errbuf[CURL_ERROR_SIZE];
};

struct http {
	CURLM *multi;
	struct transfer *head;        /* in flight */
	int in_flight;
};

static void
unlink_transfer(struct http *h, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		h->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	h->in_flight--;
}

int
http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
http_global_cleanup(void)
{
	curl_global_cleanup();
}

struct http *
http_new(void)
{
	struct http *h = calloc(1, sizeof *h);

	if (!h || !(h->multi = curl_multi_init())) {
		free(h);
		return NULL;
	}
	/* Reuse connections to each provider instead of a TLS handshake per message. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 256L);
	return h;
}

static void
transfer_free(struct transfer *t)
{
	if (!t)
		return;
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->body);
	buf_free(&t->answer);
	free(t);
}

void
http_free(struct http *h, void (*drop)(void *ctx))
{
	if (!h)
		return;
	/* Abandon whatever is still in flight (a bounded shutdown ran out of time). */
	while (h->head) {
		struct transfer *t = h->head;

		unlink_transfer(h, t);
		curl_multi_remove_handle(h->multi, t->easy);
		if (drop)
			drop(t->ctx);
		transfer_free(t);
	}
	curl_multi_cleanup(h->multi);
	free(h);
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t n = size * nmemb;

	if (t->answer.len + n > BODY_MAX) {
		t->too_big = 1;
		return 0;  /* aborts the transfer */
	}
	return buf_append(&t->answer, data, n) == 0 ? n : 0;
}

int
http_start(struct http *h, const struct provider_request *req, int64_t timeout_ms,
           int64_t connect_timeout_ms, void *ctx, char **err)
{
	struct transfer *t = calloc(1, sizeof *t);
	int i;

	if (!t || !(t->easy = curl_easy_init()))
		goto fail;
	for (i = 0; i < req->n_headers; i++) {
		struct curl_slist *l = curl_slist_append(t->headers, req->headers[i]);

		if (!l)
			goto fail;
		t->headers = l;
	}
	/* No "Expect: 100-continue" round trip before every POST. */
	if (!(t->headers = curl_slist_append(t->headers, "Expect:")))
		goto fail;
	t->ctx = ctx;
	curl_easy_setopt(t->easy, CURLOPT_URL, req->url);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_timeout_ms);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "herald/" HERALD_VERSION);
	if (req->body) {
		if (!(t->body = malloc(req->body_len + 1)))
			goto fail;
		memcpy(t->body, req->body, req->body_len);
		curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	}
	t->started_mono = clock_mono_ms();
	if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK)
		goto fail;
	t->next = h->head;
	if (h->head)
		h->head->prev = t;
	h->head = t;
	h->in_flight++;
	return 0;
fail:
	transfer_free(t);
	return util_err(err, "cannot start an HTTP request (out of memory)");
}

int
http_wait(struct http *h, int timeout_ms)
{
	int running;

	if (curl_multi_perform(h->multi, &running) != CURLM_OK)
		return -1;
	/* Transfers that finished in that perform are ready now: do not sleep on them. */
	if (running < h->in_flight)
		return 0;
	if (curl_multi_poll(h->multi, NULL, 0, timeout_ms < 0 ? 0 : timeout_ms, NULL) != CURLM_OK)
		return -1;
	return curl_multi_perform(h->multi, &running) == CURLM_OK ? 0 : -1;
}

/*
 * Whether a failed transfer may have reached the provider. Failures before the request could
 * leave (name resolution, connecting, the TLS handshake) are safe to retry; once any byte of
 * the request was written, the provider may have acted on it, so in doubt it was sent.
 */
static int
maybe_sent(CURL *easy, CURLcode result)
{
	long req_size = 0;

	switch (result) {
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return 0;
	default:
		break;
	}
	if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &req_size) == CURLE_OK && req_size == 0)
		return 0;
	return 1;
}

void
http_drive(struct http *h, int timeout_ms)
{
	int running;

	if (!h || h->in_flight == 0) {
		clock_sleep_ms(timeout_ms);
		return;
	}
	curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
	curl_multi_perform(h->multi, &running);
}

int
http_next(struct http *h, struct http_result *out)
{
	struct transfer *t = NULL;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		memset(out, 0, sizeof *out);
		out->ctx = t->ctx;
		out->duration_ms = clock_mono_ms() - t->started_mono;
		{
			/* When it ended, not when we got round to asking (a store wait may lie between). */
			curl_off_t total_us = 0;

			if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK &&
			    total_us > 0 && total_us / 1000 < out->duration_ms)
				out->duration_ms = (int64_t)(total_us / 1000);
		}
		out->sent = 1;
		if (m->data.result == CURLE_OK) {
			curl_off_t ra = 0;

			curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &out->status);
			/* Seconds or an HTTP date; libcurl turns either into seconds from now. */
			if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
				out->retry_after_ms = (int64_t)(ra > 86400 * 30 ? 86400 * 30 : ra) * 1000;
		} else {
			snprintf(out->error, sizeof out->error, "%s",
			         t->too_big ? "answer larger than 1 MiB"
			         : t->errbuf[0] ? t->errbuf : curl_easy_strerror(m->data.result));
			out->sent = t->too_big || maybe_sent(t->easy, m->data.result);
		}
		if (out->status == 0 && !out->error[0])
			snprintf(out->error, sizeof out->error, "no HTTP answer");
		if (buf_append(&t->answer, "", 0) != 0)
			out->status = 0;
		out->body = t->answer.data;
		out->body_len = t->answer.len;
		t->answer.data = NULL;
		unlink_transfer(h, t);
		curl_multi_remove_handle(h->multi, t->easy);
		transfer_free(t);
		return 1;
	}
	return 0;
}

int
http_in_flight(const struct http *h)
{
	return h->in_flight;
}

void
http_wakeup(struct http *h)
{
	curl_multi_wakeup(h->multi);
}
