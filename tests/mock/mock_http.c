/*
 * mock_http.c: the HTTP side of herald-mock on libmicrohttpd: request
 * bodies, routing between provider endpoints and /_mock/ control endpoints,
 * and delayed answers.
 *
 * MHD runs its own epoll threads (a small pool). A delayed answer must not
 * hold a thread that other connections share, so the connection is suspended
 * and a timer thread resumes it when due; MHD then calls the access handler
 * again and the prepared answer goes out (or the connection is closed, for
 * "drop"). Each request's context is created in the URI log callback, which
 * sees the raw request target (MHD strips the query from the URL it hands
 * on), and freed in the completion callback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "mock.h"

/* Bodies beyond this are answered 413; Herald never sends anything near it. */
#define BODY_MAX	(1024 * 1024)
/* How long stopping waits for delayed answers to go out. */
#define STOP_WAIT_MS	5000

struct conn_ctx {
	char			*uri;		/* raw request target */
	int64_t			 received_at_ms;
	struct mock_buf		 body;
	int			 started;	/* the header call has been seen */
	int			 too_large;
	int			 ready;		/* answer prepared, waiting out a delay */
	int			 drop;		/* close instead of answering */
	int			 delayed;	/* counted in delayed_live */
	unsigned		 status;
	struct MHD_Response	*resp;
};

struct pending {
	int64_t			 due_ms;	/* monotonic */
	struct MHD_Connection	*conn;		/* suspended */
};

static const struct mock_config *cfg;
static struct MHD_Daemon *daemon_;

static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcond;
static pthread_t tthread;
static struct pending *heap;		/* min-heap on due_ms */
static size_t nheap, capheap;
static int tstop;
static int delayed_live;		/* delayed requests not yet completed */

static void
heap_push(struct pending p)
{
	size_t i, up;

	if (nheap == capheap) {
		capheap = capheap ? 2 * capheap : 64;
		heap = mock_xrealloc(heap, capheap * sizeof(*heap));
	}
	for (i = nheap++; i > 0 && heap[up = (i - 1) / 2].due_ms > p.due_ms; i = up)
		heap[i] = heap[up];
	heap[i] = p;
}

static struct MHD_Connection *
heap_pop(void)
{
	struct MHD_Connection *top = heap[0].conn;
	struct pending last = heap[--nheap];
	size_t i = 0, c;

	for (; (c = 2 * i + 1) < nheap; i = c) {
		if (c + 1 < nheap && heap[c + 1].due_ms < heap[c].due_ms)
			c++;
		if (heap[c].due_ms >= last.due_ms)
			break;
		heap[i] = heap[c];
	}
	heap[i] = last;
	return top;
}

static void *
timer_main(void *arg)
{
	struct MHD_Connection *c;
	struct timespec ts;
	int64_t due;

	(void)arg;
	pthread_mutex_lock(&tlock);
	for (;;) {
		if (nheap > 0 && (tstop || heap[0].due_ms <= mock_mono_ms())) {
			c = heap_pop();
			/* Resume outside our lock: the handler suspends while holding it. */
			pthread_mutex_unlock(&tlock);
			MHD_resume_connection(c);
			pthread_mutex_lock(&tlock);
			continue;
		}
		if (tstop)
			break;
		if (nheap == 0)
			pthread_cond_wait(&tcond, &tlock);
		else {
			due = heap[0].due_ms;
			ts.tv_sec = (time_t)(due / 1000);
			ts.tv_nsec = (long)(due % 1000) * 1000000;
			pthread_cond_timedwait(&tcond, &tlock, &ts);
		}
	}
	pthread_mutex_unlock(&tlock);
	return NULL;
}

/* Suspends c for delay_ms; -1 (c untouched) once the server is stopping. */
static int
timer_add(struct MHD_Connection *c, struct conn_ctx *x, int delay_ms)
{
	struct pending p;

	pthread_mutex_lock(&tlock);
	if (tstop) {
		pthread_mutex_unlock(&tlock);
		return -1;
	}
	MHD_suspend_connection(c);
	p.due_ms = mock_mono_ms() + delay_ms;
	p.conn = c;
	heap_push(p);
	x->delayed = 1;
	delayed_live++;
	pthread_cond_signal(&tcond);
	pthread_mutex_unlock(&tlock);
	return 0;
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *ctype, struct mock_buf *b)
{
	size_t len = b->len;
	char *p = mock_buf_take(b);
	struct MHD_Response *r;
	enum MHD_Result ret;

	if ((r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(p);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
reply_json(struct MHD_Connection *c, unsigned status, struct mock_buf *b)
{
	return reply(c, status, "application/json; charset=utf-8", b);
}

static enum MHD_Result
control_error(struct MHD_Connection *c, unsigned status, const char *why)
{
	struct mock_buf b = { 0 };

	mock_buf_adds(&b, "{\"ok\":false,\"error\":");
	mock_buf_add_jstr0(&b, why);
	mock_buf_adds(&b, "}");
	return reply_json(c, status, &b);
}

static enum MHD_Result
control_requests(struct MHD_Connection *c, const char *query)
{
	struct mock_form q = { 0 };
	const struct mock_param *p;
	struct mock_buf b = { 0 };
	enum MHD_Result ret;
	char why[256];
	int provider = -1;

	if (mock_form_parse(query, strlen(query), &q, why, sizeof(why)) == -1)
		ret = control_error(c, 400, why);
	else if (q.n > 1 || (q.n == 1 && strcmp(q.v[0].name, "provider") != 0))
		ret = control_error(c, 400, "the only parameter is provider");
	else if ((p = mock_form_get(&q, "provider")) != NULL &&
	    (provider = mock_provider_lookup(p->value)) < 0)
		ret = control_error(c, 400, "unknown provider");
	else {
		mock_state_requests_json(provider, &b);
		ret = reply_json(c, 200, &b);
	}
	mock_form_free(&q);
	return ret;
}

static enum MHD_Result
control_clock(struct MHD_Connection *c, const char *method, const struct conn_ctx *x)
{
	static const char *const members[] = { "offset_ms", NULL };
	struct mock_buf b = { 0 };
	char why[256];
	int64_t off;
	cJSON *j;

	if (strcmp(method, "POST") == 0) {
		if ((j = mock_json_parse(x->body.p, x->body.len, why, sizeof(why))) == NULL)
			return control_error(c, 400, why);
		if (mock_json_only(j, members, "body", why, sizeof(why)) == -1 ||
		    !mock_json_int(cJSON_GetObjectItemCaseSensitive(j, "offset_ms"),
		    -1e15, 1e15, &off)) {
			cJSON_Delete(j);
			return control_error(c, 400, "expected {\"offset_ms\": integer}");
		}
		cJSON_Delete(j);
		mock_clock_set_offset(off);
	}
	mock_buf_addf(&b, "{\"ok\":true,\"now_ms\":%lld,\"offset_ms\":%lld}",
	    (long long)mock_now_ms(), (long long)mock_clock_offset());
	return reply_json(c, 200, &b);
}

static enum MHD_Result
control(struct MHD_Connection *c, struct conn_ctx *x, const char *method, const char *path,
    const char *query)
{
	int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
	struct mock_buf b = { 0 };
	struct mock_rule *rules;
	char why[256];
	size_t n;

	if (x->too_large)
		return control_error(c, 413, "body too large");
	if (strcmp(path, "/_mock/health") == 0 && get) {
		mock_buf_adds(&b, "ok");
		return reply(c, 200, "text/plain; charset=utf-8", &b);
	}
	if (strcmp(path, "/_mock/rules") == 0 && post) {
		if (mock_rules_parse(x->body.p, x->body.len, &rules, &n, why, sizeof(why)) == -1)
			return control_error(c, 400, why);
		mock_state_add_rules(rules, n, &b);
		return reply_json(c, 200, &b);
	}
	if (strcmp(path, "/_mock/rules") == 0 && get) {
		mock_state_rules_json(&b);
		return reply_json(c, 200, &b);
	}
	if (strcmp(path, "/_mock/reset") == 0 && post) {
		mock_state_reset();
		mock_buf_adds(&b, "{\"ok\":true}");
		return reply_json(c, 200, &b);
	}
	if (strcmp(path, "/_mock/requests") == 0 && get)
		return control_requests(c, query);
	if (strcmp(path, "/_mock/stats") == 0 && get) {
		mock_state_stats_json(&b);
		return reply_json(c, 200, &b);
	}
	if (strcmp(path, "/_mock/clock") == 0 && (get || post))
		return control_clock(c, method, x);
	return control_error(c, 404, "no such control endpoint or method");
}

static enum MHD_Result
on_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	static const char *const names[MOCK_NHEADERS] = {
		[MOCK_H_SYSTEM] = "system", [MOCK_H_APPID] = "appId",
		[MOCK_H_TIMESTAMP] = "timestamp", [MOCK_H_SIGN] = "sign",
		[MOCK_H_APPKEY] = "appKey", [MOCK_H_CTYPE] = "Content-Type",
	};
	struct mock_request *req = cls;
	int h;

	(void)kind;
	for (h = 0; h < MOCK_NHEADERS; h++)
		if (strcasecmp(key, names[h]) == 0) {
			if (req->hdr[h] != NULL)
				req->hdr_dup |= 1u << h;
			else
				req->hdr[h] = value != NULL ? value : "";
		}
	return MHD_YES;
}

/*
 * What records and the log show instead of a credential. Records and the --log file end up
 * on disk and in CI artifacts; a real key pointed at the mock must not. Signatures (Tanmarket
 * sign, SaiNiu sign) are kept: they are one-way, per request, and tests compare them.
 */
#define MASK		"***"

/* Whether a form or query parameter name (raw, maybe percent-encoded) names a credential. */
static int
secret_param(const char *name, size_t len)
{
	static const char *const secrets[] = { "usersig", "access_token" };
	char dec[32];
	size_t i, n = 0;
	unsigned v;

	for (i = 0; i < len; i++) {
		if (n + 1 == sizeof(dec))
			return 0;	/* longer than any credential's name */
		if (name[i] == '%' && i + 2 < len && sscanf(name + i + 1, "%2x", &v) == 1) {
			dec[n++] = (char)v;
			i += 2;
		} else
			dec[n++] = name[i] == '+' ? ' ' : name[i];
	}
	dec[n] = '\0';
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (strcasecmp(dec, secrets[i]) == 0)
			return 1;
	return 0;
}

/* An a=b&c=d string (query or form body) as a JSON string, credentials masked. */
static void
add_masked_form(struct mock_buf *b, const char *s, size_t len)
{
	struct mock_buf out = { 0 };
	const char *end = s + len, *p, *amp, *eq;

	for (p = s; p < end; p = amp + 1) {
		if ((amp = memchr(p, '&', (size_t)(end - p))) == NULL)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (eq != NULL && secret_param(p, (size_t)(eq - p))) {
			mock_buf_add(&out, p, (size_t)(eq + 1 - p));
			mock_buf_adds(&out, MASK);
		} else
			mock_buf_add(&out, p, (size_t)(amp - p));
		if (amp < end)
			mock_buf_add(&out, "&", 1);
	}
	mock_buf_add_jstr(b, out.p != NULL ? out.p : "", out.len);
	mock_buf_free(&out);
}

/* The record object's members from method to received_at_ms, comma-terminated. */
static char *
record_mid(const struct mock_request *req)
{
	static const char *const names[MOCK_NHEADERS] = {
		"system", "appId", "timestamp", "sign", "appKey", "content-type"
	};
	struct mock_buf b = { 0 };
	int h;

	mock_buf_adds(&b, "\"method\":");
	mock_buf_add_jstr0(&b, req->method);
	mock_buf_adds(&b, ",\"path\":");
	mock_buf_add_jstr0(&b, req->path);
	mock_buf_adds(&b, ",\"query\":");
	add_masked_form(&b, req->query, strlen(req->query));
	mock_buf_adds(&b, ",\"headers\":{");
	for (h = 0; h < MOCK_NHEADERS; h++) {
		mock_buf_addf(&b, "%s\"%s\":", h ? "," : "", names[h]);
		mock_buf_add_jstr0(&b, h == MOCK_H_APPKEY && req->hdr[h] != NULL ? MASK :
		    req->hdr[h]);
	}
	mock_buf_adds(&b, "},\"body\":");
	/* APIUSB's access_token travels in its form body (or its query). */
	if (req->hdr[MOCK_H_CTYPE] != NULL && strncasecmp(req->hdr[MOCK_H_CTYPE],
	    "application/x-www-form-urlencoded", 33) == 0)
		add_masked_form(&b, req->body, req->body_len);
	else
		mock_buf_add_jstr(&b, req->body, req->body_len);
	mock_buf_addf(&b, ",\"received_at_ms\":%lld,", (long long)req->received_at_ms);
	return mock_buf_take(&b);
}

static enum MHD_Result
finish(struct MHD_Connection *c, struct conn_ctx *x)
{
	enum MHD_Result ret;

	if (x->drop)
		return MHD_NO;		/* MHD closes the connection, sending nothing */
	ret = MHD_queue_response(c, x->status, x->resp);
	MHD_destroy_response(x->resp);
	x->resp = NULL;
	return ret;
}

static enum MHD_Result
provider_request(struct MHD_Connection *c, struct conn_ctx *x, const char *method,
    const char *path, const char *query)
{
	struct mock_request req = { 0 };
	struct mock_outcome o = { 0 };
	struct mock_buf b = { 0 };
	const char *ctype;
	char *mid = NULL;
	size_t len;
	int delay;

	req.method = method;
	req.path = path;
	req.query = query;
	req.body = x->body.p != NULL ? x->body.p : "";
	req.body_len = x->body.len;
	req.received_at_ms = x->received_at_ms;
	MHD_get_connection_values(c, MHD_HEADER_KIND, on_header, &req);
	if (x->too_large) {
		o.provider = mock_provider_route(path);
		mock_reject(&o, 0, NULL, "body over %d bytes", BODY_MAX);
		o.http_status = 413;
	} else
		mock_provider_check(cfg, &req, &o);
	if (mock_state_wants_records())
		mid = record_mid(&req);
	mock_state_decide(&o, mid);
	free(mid);
	x->drop = o.act.drop;
	delay = o.act.delay_ms;
	if (!x->drop) {
		mock_provider_answer(&o, &x->status, &b, &ctype);
		len = b.len;
		x->resp = MHD_create_response_from_buffer(len, mock_buf_take(&b),
		    MHD_RESPMEM_MUST_FREE);
		if (x->resp == NULL)
			x->drop = 1;
		else
			MHD_add_response_header(x->resp, "Content-Type", ctype);
		if (x->resp != NULL && cfg->close)
			MHD_add_response_header(x->resp, "Connection", "close");
		if (x->resp != NULL && o.act.retry_after != NULL)
			MHD_add_response_header(x->resp, "Retry-After", o.act.retry_after);
	}
	mock_outcome_free(&o);
	x->ready = 1;
	if (delay > 0 && timer_add(c, x, delay) == 0)
		return MHD_YES;
	return finish(c, x);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct conn_ctx *x = *con_cls;
	char *path, *q;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (x == NULL) {
		x = mock_xcalloc(1, sizeof(*x));
		x->uri = mock_xstrdup(url);
		x->received_at_ms = mock_now_ms();
		*con_cls = x;
	}
	if (x->ready)
		return finish(c, x);
	if (!x->started) {
		x->started = 1;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (x->too_large || x->body.len + *upload_data_size > BODY_MAX)
			x->too_large = 1;
		else
			mock_buf_add(&x->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	path = mock_xstrdup(x->uri);
	if ((q = strchr(path, '?')) != NULL)
		*q++ = '\0';
	if (strncmp(path, "/_mock/", 7) == 0)
		ret = control(c, x, method, path, q != NULL ? q : "");
	else
		ret = provider_request(c, x, method, path, q != NULL ? q : "");
	free(path);
	return ret;
}

static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn_ctx *x = mock_xcalloc(1, sizeof(*x));

	(void)cls;
	(void)c;
	x->uri = mock_xstrdup(uri);
	x->received_at_ms = mock_now_ms();
	return x;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct conn_ctx *x = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (x == NULL)
		return;
	if (x->delayed) {
		pthread_mutex_lock(&tlock);
		delayed_live--;
		pthread_cond_broadcast(&tcond);
		pthread_mutex_unlock(&tlock);
	}
	if (x->resp != NULL)
		MHD_destroy_response(x->resp);
	mock_buf_free(&x->body);
	free(x->uri);
	free(x);
	*con_cls = NULL;
}

int
mock_http_start(const struct mock_config *c, uint16_t port, unsigned threads,
    uint16_t *bound, char **err)
{
	struct sockaddr_in sa;
	struct MHD_OptionItem opts[8];
	pthread_condattr_t ca;
	const union MHD_DaemonInfo *info;
	size_t n = 0;
	char msg[128];

	cfg = c;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &sa };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED,
	    (intptr_t)on_completed, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, 4000, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL };
	if (threads > 1)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, threads, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tcond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&tthread, NULL, timer_main, NULL) != 0) {
		*err = mock_xstrdup("cannot start the timer thread");
		pthread_cond_destroy(&tcond);
		return -1;
	}
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME, port, NULL, NULL, on_request, NULL,
	    MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (daemon_ == NULL ||
	    (info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)) == NULL) {
		snprintf(msg, sizeof(msg), "cannot listen on 127.0.0.1:%u", (unsigned)port);
		*err = mock_xstrdup(msg);
		mock_http_stop();
		return -1;
	}
	*bound = info->port;
	return 0;
}

void
mock_http_stop(void)
{
	struct timespec ts;
	int64_t until;

	pthread_mutex_lock(&tlock);
	tstop = 1;
	pthread_cond_broadcast(&tcond);
	pthread_mutex_unlock(&tlock);
	/* The timer thread resumes every suspended connection before it ends;
	   MHD must not be stopped while any is suspended. */
	pthread_join(tthread, NULL);
	/* Let the resumed ones send their answers (bounded: a client may not read). */
	until = mock_mono_ms() + STOP_WAIT_MS;
	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	pthread_mutex_lock(&tlock);
	while (delayed_live > 0 && pthread_cond_timedwait(&tcond, &tlock, &ts) == 0)
		;
	pthread_mutex_unlock(&tlock);
	if (daemon_ != NULL)
		MHD_stop_daemon(daemon_);
	daemon_ = NULL;
	pthread_cond_destroy(&tcond);
	free(heap);
	heap = NULL;
	nheap = capheap = 0;
}
