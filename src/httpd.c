/*
 * httpd: the listener of `herald run --listen`. libmicrohttpd runs one internal polling
 * thread, so requests are answered one at a time there and the read-only store handle is
 * never used by two requests at once. Every answer is built whole in memory and handed to
 * libmicrohttpd, which frees it; nothing here writes to the database.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli.h"
#include "clock.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "sop.h"
#include "store.h"
#include "tz.h"
#include "util.h"

/* The scheduler loop beats at least every second (its data check); a store call waiting for
   another process's lock may hold it up to 10 s. Past this, it is taken for stuck. */
#define HEARTBEAT_STALE_MS 15000
/* The status page reloads itself this often, in seconds. */
#define PAGE_REFRESH_S 10

struct httpd {
	struct MHD_Daemon *mhd;
	struct store *reader;         /* read-only connection, used on the server's thread only */
	char *db_path;
	int db_file;                  /* db_path names a file (not a server URI) */
	dev_t db_dev;                 /* the file the scheduler opened, to notice it moved away */
	ino_t db_ino;
};

/* ---- addresses ----------------------------------------------------------------------- */

static int
parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len, char **err)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	char host[64];
	const char *port, *end;
	int64_t p;

	memset(ss, 0, sizeof *ss);
	if (text[0] == '[') {
		if (!(end = strchr(text, ']')) || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
			return util_err(err, "--listen: \"%s\" is not [IPv6]:PORT", text);
		snprintf(host, sizeof host, "%.*s", (int)(end - text - 1), text + 1);
		port = end + 2;
	} else if ((end = strrchr(text, ':'))) {
		if ((size_t)(end - text) >= sizeof host)
			return util_err(err, "--listen: \"%s\" is not ADDR:PORT", text);
		snprintf(host, sizeof host, "%.*s", (int)(end - text), text);
		port = end + 1;
	} else {
		host[0] = '\0';
		port = text;
	}
	if (util_parse_i64(port, &p) != 0 || p < 0 || p > 65535)
		return util_err(err, "--listen: \"%s\": the port must be 0-65535", text);
	if (text[0] == '[') {
		if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
			return util_err(err, "--listen: \"%s\" is not an IPv6 address", host);
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		*len = sizeof *v6;
		return 0;
	}
	/* No address: loopback, since the server has no login (see the README). */
	if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &v4->sin_addr) != 1)
		return util_err(err, "--listen: \"%s\" is not an IPv4 address (IPv6 goes in brackets)",
		                host);
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)p);
	*len = sizeof *v4;
	return 0;
}

int
httpd_check_addr(const char *text, char **err)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return parse_addr(text, &ss, &len, err);
}

/* ---- answers ------------------------------------------------------------------------- */

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned int status, const char *type, struct buf *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	/* The buffer moves to libmicrohttpd, which frees it. */
	r = MHD_create_response_from_buffer(body->len, body->data ? body->data : (void *)"",
	                                    body->data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		buf_free(body);
		return MHD_NO;
	}
	memset(body, 0, sizeof *body);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned int status, const char *text)
{
	struct buf b = {0};

	if (buf_printf(&b, "%s\n", text) != 0)
		return MHD_NO;
	return reply(conn, status, "text/plain; charset=utf-8", &b);
}

/* Why the service is unhealthy, in buf, or "" when it is not. */
static void
health(struct httpd *h, char *why, size_t size)
{
	int64_t age = metrics_heartbeat_age_ms();
	struct stat st;
	char *err = NULL;

	why[0] = '\0';
	if (age < 0)
		snprintf(why, size, "scheduler: not started");
	else if (age > HEARTBEAT_STALE_MS)
		snprintf(why, size, "scheduler: no loop iteration for %lld s", (long long)(age / 1000));
	/* The open connection would keep reading a file renamed or deleted under it; the
	   operator's commands would not find it. */
	else if (h->db_file && stat(h->db_path, &st) != 0)
		snprintf(why, size, "database: %s: %s", h->db_path, strerror(errno));
	else if (h->db_file && (st.st_dev != h->db_dev || st.st_ino != h->db_ino))
		snprintf(why, size, "database: %s is no longer the file the scheduler opened",
		         h->db_path);
	else if (store_ping(h->reader, &err) != 0)
		snprintf(why, size, "database: %s", err ? err : "no answer");
	free(err);
}

static enum MHD_Result
serve_healthz(struct httpd *h, struct MHD_Connection *conn)
{
	char why[700];

	health(h, why, sizeof why);
	return why[0] ? reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why)
	              : reply_text(conn, MHD_HTTP_OK, "ok");
}

/* ---- /metrics -------------------------------------------------------------------------- */

static int
suspended_row(void *arg, const struct store_channel *ch)
{
	struct buf *b = arg;
	int rc = buf_printf(b, "herald_channel_suspended{channel=\"");

	rc |= metrics_escape(b, ch->name);
	rc |= buf_printf(b, "\"} %d\n", strcmp(ch->state, "suspended") == 0);
	return rc ? -1 : 0;
}

/* The gauges read from the database, each only if its read worked: a missing series is
   honest, a zero would not be. */
static int
db_metrics(struct httpd *h, struct buf *out)
{
	struct buf ch = {0};
	char *err = NULL;
	int64_t backlog;
	int up = 1, rc = 0;

	if ((backlog = store_due_backlog(h->reader, clock_now_ms(), &err)) < 0)
		up = 0;
	else
		rc |= buf_printf(out, "# HELP herald_due_backlog Deliveries of active campaigns that "
		                      "are due and not yet claimed.\n# TYPE herald_due_backlog gauge\n"
		                      "herald_due_backlog %lld\n", (long long)backlog);
	free(err);
	err = NULL;
	if (store_channel_list(h->reader, suspended_row, &ch, &err) != 0) {
		up = 0;
	} else {
		rc |= buf_printf(out, "# HELP herald_channel_suspended 1 while a fault holds the "
		                      "channel (SPEC 5.11), else 0.\n"
		                      "# TYPE herald_channel_suspended gauge\n");
		if (ch.len)
			rc |= buf_append(out, ch.data, ch.len);
	}
	free(err);
	buf_free(&ch);
	rc |= buf_printf(out, "# HELP herald_database_up 1 when the database answered this "
	                      "scrape's reads.\n# TYPE herald_database_up gauge\n"
	                      "herald_database_up %d\n", up);
	return rc ? -1 : 0;
}

static enum MHD_Result
serve_metrics(struct httpd *h, struct MHD_Connection *conn)
{
	struct buf b = {0};

	if (metrics_write(&b) != 0 || db_metrics(h, &b) != 0) {
		buf_free(&b);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* ---- / : the status page --------------------------------------------------------------- */

static int
html(struct buf *b, const char *s)
{
	const char *p;
	int rc = 0;

	for (p = s; *p && rc == 0; p++) {
		switch (*p) {
		case '&': rc = buf_append(b, "&amp;", 5); break;
		case '<': rc = buf_append(b, "&lt;", 4); break;
		case '>': rc = buf_append(b, "&gt;", 4); break;
		case '"': rc = buf_append(b, "&quot;", 6); break;
		case '\'': rc = buf_append(b, "&#39;", 5); break;
		default: rc = buf_append(b, p, 1);
		}
	}
	return rc;
}

/*
 * The page shows only what kind of error came last: the part before its first colon (a
 * provider code, "gave up after 4 attempts", "channel x suspended"). What follows is the
 * provider's own text, which often quotes the recipient id or the message: aggregates only
 * (SPEC §7); `herald status` shows it whole.
 */
static int
html_error_kind(struct buf *b, const char *err)
{
	char kind[64];
	size_t n;

	if (!err || !err[0])
		return html(b, "-");
	n = strcspn(err, ":;(");
	if (n >= sizeof kind)
		n = sizeof kind - 1;
	while (n > 0 && err[n - 1] == ' ')
		n--;
	memcpy(kind, err, n);
	kind[n] = '\0';
	return html(b, kind[0] ? kind : "error") |
	       buf_printf(b, " <small>(herald status shows it)</small>");
}

/* Bar colours per delivery state, in store_states order (unknown names get grey). */
static const char *
state_colour(const char *state)
{
	static const struct { const char *state, *colour; } colours[] = {
		{"pending", "#9aa5b1"}, {"sending", "#3b82f6"}, {"sent", "#16a34a"},
		{"retrying", "#f59e0b"}, {"deferred", "#8b5cf6"}, {"failed", "#dc2626"},
		{"expired", "#92400e"}, {"cancelled", "#52525b"}, {"unknown", "#eab308"},
		{"suppressed", "#0d9488"},
	};
	size_t i;

	for (i = 0; i < sizeof colours / sizeof colours[0]; i++)
		if (strcmp(colours[i].state, state) == 0)
			return colours[i].colour;
	return "#cbd5e1";
}

static const char page_head[] =
	"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	"<meta http-equiv=\"refresh\" content=\"%d\"><title>Herald status</title><style>"
	"body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f2937;background:#f8fafc}"
	"h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}"
	".meta{color:#64748b;margin:0}"
	"table{border-collapse:collapse;width:100%%;background:#fff;box-shadow:0 1px 2px #0002}"
	"th,td{text-align:left;padding:8px 10px;border-bottom:1px solid #e2e8f0;vertical-align:top}"
	"th{font-weight:600;color:#475569;background:#f1f5f9}"
	".bar{display:flex;height:12px;min-width:200px;border-radius:6px;overflow:hidden;"
	"background:#e2e8f0}.bar span{display:block;height:100%%}"
	"ul.counts{list-style:none;padding:0;margin:6px 0 0;display:flex;flex-wrap:wrap;gap:4px 12px}"
	"ul.counts i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:4px}"
	".state{font-weight:600}.state-active{color:#16a34a}.state-paused{color:#b45309}"
	".state-suspended,.state-cancelled{color:#dc2626}.state-completed{color:#475569}"
	".err{color:#b91c1c;max-width:28em;word-break:break-word}.key{font-family:monospace}"
	"time{white-space:nowrap}"
	"</style></head><body>\n";

/* The page's state for one render. */
struct page {
	struct buf *b;
	struct tz *zone;              /* the current campaign's zone (owned), NULL = UTC */
	int rc;
};

static void
page_time(struct page *pg, int64_t ms)
{
	char t[40];

	if (ms < 0) {
		pg->rc |= buf_append(pg->b, "-", 1);
		return;
	}
	sop_format_instant(ms, pg->zone ? tz_offset_at(pg->zone, ms) : 0, t);
	pg->rc |= buf_printf(pg->b, "<time>%s</time>", t);
}

static int
campaign_row(void *arg, const struct store_status *st)
{
	struct page *pg = arg;
	struct buf *b = pg->b;
	int64_t total = 0;
	const char *state = cli_campaign_state(st);
	int i, rc = 0;

	if (!pg->zone || strcmp(tz_name(pg->zone), st->c.timezone) != 0) {
		tz_free(pg->zone);
		pg->zone = tz_load(st->c.timezone, NULL);
	}
	for (i = 0; i < STORE_N_STATES; i++)
		total += st->counts[i];
	rc |= buf_printf(b, "<tr class=\"campaign\" data-key=\"");
	rc |= html(b, st->c.key);
	rc |= buf_printf(b, "\"><td><span class=\"key\">");
	rc |= html(b, st->c.key);
	rc |= buf_printf(b, "</span><br><span class=\"name\">");
	rc |= html(b, st->c.name);
	rc |= buf_printf(b, "</span></td><td>");
	rc |= html(b, st->c.channel);
	rc |= buf_printf(b, " <small>(");
	rc |= html(b, st->c.provider);
	rc |= buf_printf(b, ")</small></td><td class=\"state state-%s\">%s</td><td><div class=\"bar\">",
	                 state, state);
	for (i = 0; i < STORE_N_STATES && total; i++)
		if (st->counts[i])
			rc |= buf_printf(b, "<span style=\"width:%.3f%%;background:%s\" title=\"%s %lld\">"
			                    "</span>", 100.0 * (double)st->counts[i] / (double)total,
			                 state_colour(store_states[i]), store_states[i],
			                 (long long)st->counts[i]);
	rc |= buf_printf(b, "</div><ul class=\"counts\">");
	for (i = 0; i < STORE_N_STATES; i++)
		if (st->counts[i])
			rc |= buf_printf(b, "<li data-state=\"%s\"><i style=\"background:%s\"></i>%s "
			                    "<b>%lld</b></li>", store_states[i], state_colour(store_states[i]),
			                 store_states[i], (long long)st->counts[i]);
	rc |= buf_printf(b, "<li data-state=\"total\">total <b>%lld</b></li></ul></td><td>",
	                 (long long)total);
	pg->rc |= rc;
	page_time(pg, st->next_due_at_ms);
	rc = buf_printf(b, "</td><td class=\"err\">");
	rc |= html_error_kind(b, st->last_error);
	rc |= buf_printf(b, "</td></tr>\n");
	pg->rc |= rc;
	return pg->rc ? -1 : 0;
}

static int
channel_row(void *arg, const struct store_channel *ch)
{
	struct page *pg = arg;
	struct buf *b = pg->b;
	int rc = buf_printf(b, "<tr class=\"channel\" data-channel=\"");

	rc |= html(b, ch->name);
	rc |= buf_printf(b, "\"><td>");
	rc |= html(b, ch->name);
	rc |= buf_printf(b, "</td><td class=\"state state-%s\">%s</td><td>", ch->state, ch->state);
	rc |= html(b, ch->reason[0] ? ch->reason : "-");
	rc |= buf_printf(b, "</td><td>");
	pg->rc |= rc;
	page_time(pg, ch->since_ms);
	pg->rc |= buf_printf(b, "</td><td>");
	page_time(pg, ch->next_probe_at_ms);
	pg->rc |= buf_printf(b, "</td><td class=\"waiting\">%lld</td></tr>\n", (long long)ch->waiting);
	return pg->rc ? -1 : 0;
}

static enum MHD_Result
serve_page(struct httpd *h, struct MHD_Connection *conn)
{
	struct buf b = {0};
	struct page pg = {&b, NULL, 0};
	char now[40], why[700], *err = NULL;
	int n;

	sop_format_instant(clock_now_ms(), 0, now);
	health(h, why, sizeof why);
	pg.rc |= buf_printf(&b, page_head, PAGE_REFRESH_S);
	pg.rc |= buf_printf(&b, "<h1>Herald</h1><p class=\"meta\">%s &middot; pid %d &middot; "
	                        "<span class=\"health\">", now, (int)getpid());
	pg.rc |= html(&b, why[0] ? why : "healthy");
	pg.rc |= buf_printf(&b, "</span> &middot; refreshes every %d s</p>\n<h2>Campaigns</h2>\n"
	                        "<table class=\"campaigns\"><thead><tr><th>Campaign</th>"
	                        "<th>Channel</th><th>State</th><th>Deliveries</th><th>Next send</th>"
	                        "<th>Latest error</th></tr></thead><tbody>\n", PAGE_REFRESH_S);
	if ((n = store_status(h->reader, NULL, campaign_row, &pg, &err)) < 0) {
		pg.rc |= buf_printf(&b, "<tr><td colspan=\"6\" class=\"err\">cannot read: ");
		pg.rc |= html(&b, err ? err : "?");
		pg.rc |= buf_printf(&b, "</td></tr>\n");
	} else if (n == 0) {
		pg.rc |= buf_printf(&b, "<tr><td colspan=\"6\">no campaigns yet</td></tr>\n");
	}
	free(err);
	err = NULL;
	/* Channel times print in UTC: a channel has no zone of its own. */
	tz_free(pg.zone);
	pg.zone = NULL;
	pg.rc |= buf_printf(&b, "</tbody></table>\n<h2>Channels</h2>\n<table class=\"channels\">"
	                        "<thead><tr><th>Channel</th><th>State</th><th>Why</th><th>Since</th>"
	                        "<th>Next probe</th><th>Waiting</th></tr></thead><tbody>\n");
	if (store_channel_list(h->reader, channel_row, &pg, &err) != 0) {
		pg.rc |= buf_printf(&b, "<tr><td colspan=\"6\" class=\"err\">cannot read: ");
		pg.rc |= html(&b, err ? err : "?");
		pg.rc |= buf_printf(&b, "</td></tr>\n");
	}
	free(err);
	pg.rc |= buf_printf(&b, "</tbody></table>\n<p class=\"meta\">Counts per delivery state; "
	                        "no recipient and no message is shown here. Also: "
	                        "<a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>."
	                        "</p>\n</body></html>\n");
	if (pg.rc) {
		buf_free(&b);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	return reply(conn, MHD_HTTP_OK, "text/html; charset=utf-8", &b);
}

/* ---- the server ------------------------------------------------------------------------ */

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size,
           void **con_cls)
{
	struct httpd *h = cls;
	struct MHD_Response *r;
	enum MHD_Result rc;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		/* 405 must say what is allowed. */
		if (!(r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)))
			return MHD_NO;
		MHD_add_response_header(r, "Allow", "GET, HEAD");
		rc = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return rc;
	}
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn);
	if (strcmp(url, "/healthz") == 0)
		return serve_healthz(h, conn);
	if (strcmp(url, "/") == 0)
		return serve_page(h, conn);
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found: try /, /metrics or /healthz");
}

struct httpd *
httpd_start(const char *addr, const char *db_path, const struct config *cfg, char **err)
{
	struct httpd *h = calloc(1, sizeof *h);
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	struct stat st;
	socklen_t len;
	char shown[80];
	int i;

	if (!h || !(h->db_path = strdup(db_path))) {
		util_err(err, "out of memory");
		goto fail;
	}
	if (parse_addr(addr, &ss, &len, err) != 0)
		goto fail;
	/* A file is watched for being replaced; a server database is only pinged. */
	if ((h->db_file = !store_is_server(db_path))) {
		if (stat(db_path, &st) != 0) {
			util_err(err, "%s: %s", db_path, strerror(errno));
			goto fail;
		}
		h->db_dev = st.st_dev;
		h->db_ino = st.st_ino;
	}
	if (!(h->reader = store_open_reader(db_path, err)))
		goto fail;
	for (i = 0; i < cfg->n_channels; i++)
		metrics_channel(cfg->channels[i].name);
	/* One internal thread (poll or epoll, whichever is best here): scrapes and health checks
	   are small and rare, and one thread keeps the reader single-threaded. */
	h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
	                          (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
	                          0, NULL, NULL, on_request, h,
	                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	                          MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
	                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
	                          MHD_OPTION_END);
	if (!h->mhd) {
		util_err(err, "--listen %s: cannot listen there (in use, or not an address of this "
		         "host?)", addr);
		goto fail;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	if (ss.ss_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof a);
		snprintf(shown, sizeof shown, "[%s]", a);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, shown, sizeof shown);
	}
	log_info("listening on http://%s:%u/ (/metrics, /healthz, status page at /)", shown,
	         info ? (unsigned)info->port : 0u);
	(void)len;
	return h;
fail:
	httpd_stop(h);
	return NULL;
}

void
httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	store_close(h->reader);
	free(h->db_path);
	free(h);
}
