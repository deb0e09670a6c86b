/*
 * http: libcurl's multi interface behind a small API, driven by a thread of its own. The
 * caller (the scheduler) hands requests over and collects finished ones; the network thread
 * does all reading and writing, so an answer is read when it arrives whatever the caller is
 * doing: a commit's fsync, a wait for another process's lock. Each transfer owns a copy of its
 * request (URL, headers, body) and collects the answer body up to a cap, so a provider that
 * answers gigabytes cannot exhaust memory.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "http.h"
#include "util.h"

/* Provider answers are small; anything bigger is an error, not something to buffer. */
#define BODY_MAX (1 << 20)
/* The network thread's longest sleep when nothing happens (it wakes on any activity). */
#define HTTP_IDLE_MS 1000

struct transfer {
	struct transfer *prev, *next; /* the todo queue, then the in-flight list (network thread) */
	CURL *easy;
	struct curl_slist *headers;
	char *body;                   /* request body (owned; curl reads it in place) */
	size_t body_len, body_off;    /* read by on_read when the request must not be resent */
	struct buf answer;
	int too_big;
	int64_t started_mono;
	void *ctx;
	struct done *done;            /* its result's node, made up front: the network thread
	                                 never needs memory to hand a result back */
	char errbuf[CURL_ERROR_SIZE];
};

/* A finished transfer waiting for http_next. */
struct done {
	struct done *next;
	struct http_result r;
};

struct http {
	CURLM *multi;                 /* used by the network thread only (wakeup excepted) */
	struct transfer *flying;      /* network thread only: in flight */
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;           /* guards everything below */
	pthread_cond_t cv;            /* the caller waits here for a finished transfer or a wake */
	struct transfer *todo, *todo_tail;  /* handed over, not yet added to multi */
	struct done *done, *done_tail;
	int wake;                     /* http_wakeup was called since the last http_wait */
	int stop;
	int in_flight;                /* caller side: started and not yet returned by http_next */
};

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

static void
transfer_free(struct transfer *t)
{
	if (!t)
		return;
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	free(t->body);
	buf_free(&t->answer);
	free(t->done);
	free(t);
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

/* A body handed to libcurl piece by piece (the requests that must never be resent). */
static size_t
on_read(char *to, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t n = size * nmemb;

	if (n > t->body_len - t->body_off)
		n = t->body_len - t->body_off;
	memcpy(to, t->body + t->body_off, n);
	t->body_off += n;
	return n;
}

/* Refuses every rewind: libcurl's own resend of a body it already read fails instead. */
static int
on_seek(void *arg, curl_off_t offset, int origin)
{
	(void)arg;
	(void)offset;
	(void)origin;
	return CURL_SEEKFUNC_FAIL;
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
	case CURLE_SEND_FAIL_REWIND:
		/* libcurl wanted to send the body again: it left once, whatever the counters say
		   of the attempt that failed to rewind. */
		return 1;
	default:
		break;
	}
	if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &req_size) == CURLE_OK && req_size == 0)
		return 0;
	return 1;
}

/* Fills out from a finished transfer (network thread); takes the answer body. */
static void
result_of(struct transfer *t, CURLcode result, struct http_result *out)
{
	curl_off_t total_us = 0, ra = 0;

	memset(out, 0, sizeof *out);
	out->ctx = t->ctx;
	out->duration_ms = clock_mono_ms() - t->started_mono;
	if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK &&
	    total_us > 0 && total_us / 1000 < out->duration_ms)
		out->duration_ms = (int64_t)(total_us / 1000);
	out->sent = 1;
	if (result == CURLE_OK) {
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &out->status);
		/* Seconds or an HTTP date; libcurl turns either into seconds from now. */
		if (curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
			out->retry_after_ms = (int64_t)(ra > 86400 * 30 ? 86400 * 30 : ra) * 1000;
	} else {
		snprintf(out->error, sizeof out->error, "%s",
		         t->too_big ? "answer larger than 1 MiB"
		         : result == CURLE_SEND_FAIL_REWIND
		             ? "the kept-alive connection closed with no answer after the request left"
		         : t->errbuf[0] ? t->errbuf : curl_easy_strerror(result));
		out->sent = t->too_big || maybe_sent(t->easy, result);
	}
	if (out->status == 0 && !out->error[0])
		snprintf(out->error, sizeof out->error, "no HTTP answer");
	if (buf_append(&t->answer, "", 0) != 0)
		out->status = 0;
	out->body = t->answer.data;
	out->body_len = t->answer.len;
	t->answer.data = NULL;
}

/* Hands a finished transfer's result to the caller (network thread). */
static void
deliver(struct http *h, struct done *d)
{
	pthread_mutex_lock(&h->mu);
	if (h->done_tail) {
		h->done_tail->next = d;
	} else {
		/* Only the first needs a signal: the caller waits while the list is empty. */
		h->done = d;
		pthread_cond_signal(&h->cv);
	}
	h->done_tail = d;
	pthread_mutex_unlock(&h->mu);
}

/* A transfer that could not even be added: it never left, so it is safe to retry. */
static void
deliver_unsent(struct http *h, struct transfer *t, const char *why)
{
	struct done *d = t->done;

	t->done = NULL;
	d->r.ctx = t->ctx;
	snprintf(d->r.error, sizeof d->r.error, "%s", why);
	transfer_free(t);
	deliver(h, d);
}

static void
add_flying(struct http *h, struct transfer *t)
{
	t->prev = NULL;
	t->next = h->flying;
	if (h->flying)
		h->flying->prev = t;
	h->flying = t;
}

static void
remove_flying(struct http *h, struct transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		h->flying = t->next;
	if (t->next)
		t->next->prev = t->prev;
}

/* Moves the transfers handed over since the last turn into multi (network thread). */
static void
take_todo(struct http *h)
{
	struct transfer *t, *next;

	pthread_mutex_lock(&h->mu);
	t = h->todo;
	h->todo = h->todo_tail = NULL;
	pthread_mutex_unlock(&h->mu);
	for (; t; t = next) {
		next = t->next;
		t->started_mono = clock_mono_ms();
		if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
			deliver_unsent(h, t, "cannot start an HTTP request");
			continue;
		}
		add_flying(h, t);
	}
}

/* Hands every finished transfer to the caller (network thread). */
static void
collect(struct http *h)
{
	struct transfer *t = NULL;
	struct done *d;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		d = t->done;
		t->done = NULL;
		result_of(t, m->data.result, &d->r);
		remove_flying(h, t);
		curl_multi_remove_handle(h->multi, t->easy);
		transfer_free(t);
		deliver(h, d);
	}
}

static void *
network_main(void *arg)
{
	struct http *h = arg;
	int running, stop;

	for (;;) {
		pthread_mutex_lock(&h->mu);
		stop = h->stop;
		pthread_mutex_unlock(&h->mu);
		if (stop)
			break;
		take_todo(h);
		curl_multi_perform(h->multi, &running);
		collect(h);
		curl_multi_poll(h->multi, NULL, 0, HTTP_IDLE_MS, NULL);
		curl_multi_perform(h->multi, &running);
		collect(h);
	}
	return NULL;
}

struct http *
http_new(void)
{
	struct http *h = calloc(1, sizeof *h);

	if (!h)
		return NULL;
	if (!(h->multi = curl_multi_init())) {
		free(h);
		return NULL;
	}
	/* Reuse connections to each provider instead of a TLS handshake per message. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 256L);
	pthread_mutex_init(&h->mu, NULL);
	/* Waits are timed on the monotonic clock: a wall clock stepped back (NTP) must not
	   stretch an idle wait, and with it the lease renewals and the watchdog. */
	{
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&h->cv, &attr);
		pthread_condattr_destroy(&attr);
	}
	if (pthread_create(&h->thread, NULL, network_main, h) != 0) {
		http_free(h, NULL);
		return NULL;
	}
	h->thread_started = 1;
	return h;
}

void
http_free(struct http *h, void (*drop)(void *ctx))
{
	struct transfer *t;
	struct done *d;

	if (!h)
		return;
	if (h->thread_started) {
		pthread_mutex_lock(&h->mu);
		h->stop = 1;
		pthread_mutex_unlock(&h->mu);
		curl_multi_wakeup(h->multi);
		pthread_join(h->thread, NULL);
	}
	/* Abandon whatever is still in flight or queued (a bounded shutdown ran out of time). */
	while ((t = h->flying)) {
		remove_flying(h, t);
		curl_multi_remove_handle(h->multi, t->easy);
		if (drop)
			drop(t->ctx);
		transfer_free(t);
	}
	while ((t = h->todo)) {
		h->todo = t->next;
		if (drop)
			drop(t->ctx);
		transfer_free(t);
	}
	while ((d = h->done)) {
		h->done = d->next;
		if (drop)
			drop(d->r.ctx);
		free(d->r.body);
		free(d);
	}
	curl_multi_cleanup(h->multi);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

int
http_start(struct http *h, const struct provider_request *req, int64_t timeout_ms,
           int64_t connect_timeout_ms, void *ctx, char **err)
{
	struct transfer *t = calloc(1, sizeof *t);
	int i, wake;

	if (!t || !(t->done = calloc(1, sizeof *t->done)) || !(t->easy = curl_easy_init()))
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
	/*
	 * libcurl resends a request by itself, up to five times, when a reused connection dies
	 * before any answer. It must first rewind the body it already read, and a body given by a
	 * read callback whose seek always fails cannot be rewound: the transfer fails instead,
	 * and the request, whose body left once, is never sent again (a request that left without
	 * its body cannot have been acted on). So a request that must not reach the provider
	 * twice still shares kept-alive connections; one without a body gets a connection of its
	 * own, closed after it.
	 */
	if (req->no_resend && !req->body) {
		curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
	}
	/*
	 * Idle connections older than this are not reused: the older a kept-alive connection,
	 * the likelier the provider closes it just as a request goes out. For a request that
	 * must not be resent that race costs an 'unknown', so it takes only connections idle
	 * for less than the shortest keep-alive servers commonly give (Apache's 5 s).
	 */
	curl_easy_setopt(t->easy, CURLOPT_MAXAGE_CONN, req->no_resend ? 4L : 20L);
	if (req->body) {
		if (!(t->body = malloc(req->body_len + 1)))
			goto fail;
		memcpy(t->body, req->body, req->body_len);
		t->body_len = req->body_len;
		curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		if (req->no_resend) {
			curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
			curl_easy_setopt(t->easy, CURLOPT_SEEKFUNCTION, on_seek);
		} else {
			curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
		}
	}
	/* Handed over: the network thread adds it to multi on its next turn, which we start. */
	pthread_mutex_lock(&h->mu);
	if (h->todo_tail)
		h->todo_tail->next = t;
	else
		h->todo = t;
	h->todo_tail = t;
	/* A list that was not empty has a wake-up on its way already: the network thread takes
	   the whole list at once, after the wake-up that its first transfer sent. */
	wake = h->todo == t;
	pthread_mutex_unlock(&h->mu);
	if (wake)
		curl_multi_wakeup(h->multi);
	h->in_flight++;
	return 0;
fail:
	transfer_free(t);
	return util_err(err, "cannot start an HTTP request (out of memory)");
}

int
http_wait(struct http *h, int timeout_ms)
{
	struct timespec until;
	int64_t ns;

	pthread_mutex_lock(&h->mu);
	if (!h->done && !h->wake && timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		ns = until.tv_nsec + (int64_t)(timeout_ms % 1000) * 1000000;
		until.tv_sec += timeout_ms / 1000 + (time_t)(ns / 1000000000);
		until.tv_nsec = (long)(ns % 1000000000);
		while (!h->done && !h->wake)
			if (pthread_cond_timedwait(&h->cv, &h->mu, &until) != 0)
				break;
	}
	h->wake = 0;
	pthread_mutex_unlock(&h->mu);
	return 0;
}

int
http_next(struct http *h, struct http_result *out)
{
	struct done *d;

	pthread_mutex_lock(&h->mu);
	if ((d = h->done) && !(h->done = d->next))
		h->done_tail = NULL;
	pthread_mutex_unlock(&h->mu);
	if (!d)
		return 0;
	*out = d->r;
	free(d);
	h->in_flight--;
	return 1;
}

int
http_in_flight(const struct http *h)
{
	return h->in_flight;
}

void
http_wakeup(struct http *h)
{
	pthread_mutex_lock(&h->mu);
	h->wake = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}
