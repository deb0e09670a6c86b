/*
 * metrics: per-channel counters in a fixed table of slots. A slot's name is written once,
 * under the registration lock, before the slot count that publishes it is raised (release);
 * readers and recorders load the count (acquire) and never see a half-written name. Every
 * value is an atomic updated with relaxed order: a scrape may see one observation in a
 * histogram bucket before its sum, which Prometheus tolerates, and nothing else depends on it.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "metrics.h"

/* herald_requests_total{result}: what the wire did, not the provider's verdict. */
enum metrics_result {
	RESULT_OK,            /* HTTP 2xx (the provider may still refuse inside it) */
	RESULT_4XX,           /* HTTP 4xx but 429 */
	RESULT_429,           /* HTTP 429: rate limited */
	RESULT_5XX,           /* HTTP 5xx */
	RESULT_OTHER,         /* another HTTP status (1xx, 3xx) */
	RESULT_TIMEOUT,       /* no answer within the channel's timeout */
	RESULT_ERROR,         /* no answer: DNS, connect, TLS, reset, a body too large */
	N_RESULTS
};

static const char *const outcome_names[METRICS_N_OUTCOMES] = {
	"sent", "failed", "retried", "deferred", "expired", "unknown", "suppressed",
};
static const char *const result_names[N_RESULTS] = {
	"ok", "http_4xx", "http_429", "http_5xx", "http_other", "timeout", "error",
};

/* Bucket upper bounds in ms. Requests: a fast API to a slow one near its timeout. Lag (start
   minus due time): on time is milliseconds, a retry with backoff minutes, a backlog hours. */
static const int64_t duration_le_ms[] = {
	5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
};
static const int64_t lag_le_ms[] = {
	1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 900000,
	1800000, 3600000, 7200000, 21600000, 86400000,
};
#define N_DURATION (sizeof duration_le_ms / sizeof duration_le_ms[0])
#define N_LAG (sizeof lag_le_ms / sizeof lag_le_ms[0])
#define MAX_BUCKETS N_LAG

struct histogram {
	atomic_llong bucket[MAX_BUCKETS + 1];  /* per bucket, not cumulative; the last is +Inf */
	atomic_llong sum_ms;
};

struct slot {
	char name[256];               /* written once, before the slot is published */
	atomic_llong deliveries[METRICS_N_OUTCOMES];
	atomic_llong requests[N_RESULTS];
	atomic_int in_flight;
	struct histogram duration;
	struct histogram lag;
};

static struct slot slots[METRICS_MAX_CHANNELS];
static atomic_int n_slots;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_llong heartbeat_mono = -1;

/* The slot of channel name, registering it if new; NULL when the table is full. */
static struct slot *
slot_for(const char *name)
{
	int n = atomic_load_explicit(&n_slots, memory_order_acquire), i;
	struct slot *s = NULL;

	for (i = 0; i < n; i++)
		if (strcmp(slots[i].name, name) == 0)
			return &slots[i];
	pthread_mutex_lock(&register_lock);
	n = atomic_load_explicit(&n_slots, memory_order_acquire);
	for (i = 0; i < n && !s; i++)
		if (strcmp(slots[i].name, name) == 0)
			s = &slots[i];
	if (!s && n < METRICS_MAX_CHANNELS) {
		s = &slots[n];
		snprintf(s->name, sizeof s->name, "%s", name);
		atomic_store_explicit(&n_slots, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&register_lock);
	return s;
}

static void
observe(struct histogram *h, const int64_t *le, size_t n, int64_t ms)
{
	size_t i = 0;

	while (i < n && ms > le[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ms, ms, memory_order_relaxed);
}

int
metrics_outcome_of(const char *state)
{
	static const char *const states[METRICS_N_OUTCOMES] = {
		"sent", "failed", "retrying", "deferred", "expired", "unknown", "suppressed",
	};
	int i;

	for (i = 0; i < METRICS_N_OUTCOMES; i++)
		if (strcmp(state, states[i]) == 0)
			return i;
	return -1;
}

void
metrics_channel(const char *name)
{
	slot_for(name);
}

void
metrics_delivery(const char *channel, enum metrics_outcome outcome, int64_t n)
{
	struct slot *s = slot_for(channel);

	if (s && outcome < METRICS_N_OUTCOMES)
		atomic_fetch_add_explicit(&s->deliveries[outcome], n, memory_order_relaxed);
}

void
metrics_delivery_state(const char *channel, const char *state, int64_t n)
{
	int o = metrics_outcome_of(state);

	if (o >= 0)
		metrics_delivery(channel, (enum metrics_outcome)o, n);
}

void
metrics_request_started(const char *channel, int first, int64_t lag_ms)
{
	struct slot *s = slot_for(channel);

	if (!s)
		return;
	if (first)
		atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
	/* A call made ahead of its due time (SaiNiu's lead, a Tanmarket SOP's later steps) is
	   not late: it counts as no lag, so the sum stays a sum of delays. */
	observe(&s->lag, lag_le_ms, N_LAG, lag_ms > 0 ? lag_ms : 0);
}

static enum metrics_result
classify(long status, const char *error)
{
	if (status >= 200 && status < 300)
		return RESULT_OK;
	if (status == 429)
		return RESULT_429;
	if (status >= 400 && status < 500)
		return RESULT_4XX;
	if (status >= 500 && status < 600)
		return RESULT_5XX;
	if (status)
		return RESULT_OTHER;
	/* libcurl says "Timeout was reached" or "Operation timed out after ...". */
	if (error && (strstr(error, "timed out") || strstr(error, "Timeout")))
		return RESULT_TIMEOUT;
	return RESULT_ERROR;
}

void
metrics_request_done(const char *channel, long status, const char *error, int64_t duration_ms)
{
	struct slot *s = slot_for(channel);

	if (!s)
		return;
	atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->requests[classify(status, error)], 1, memory_order_relaxed);
	observe(&s->duration, duration_le_ms, N_DURATION, duration_ms > 0 ? duration_ms : 0);
}

void
metrics_heartbeat(void)
{
	atomic_store_explicit(&heartbeat_mono, clock_mono_ms(), memory_order_relaxed);
}

int64_t
metrics_heartbeat_age_ms(void)
{
	int64_t t = atomic_load_explicit(&heartbeat_mono, memory_order_relaxed);

	return t < 0 ? -1 : clock_mono_ms() - t;
}

/* ---- exposition ---------------------------------------------------------------------- */

int
metrics_escape(struct buf *out, const char *value)
{
	const char *p;

	for (p = value; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;

		if (esc ? buf_append(out, esc, 2) != 0 : buf_append(out, p, 1) != 0)
			return -1;
	}
	return 0;
}

static int
header(struct buf *out, const char *name, const char *type, const char *help)
{
	return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Seconds from ms, exactly as decimal text (no float rounding in bucket bounds). */
static int
seconds(struct buf *out, int64_t ms)
{
	int64_t a = ms < 0 ? -ms : ms;

	char frac[8];
	int i;

	snprintf(frac, sizeof frac, ".%03lld", (long long)(a % 1000));
	for (i = 3; i > 0 && frac[i] == '0'; i--)
		frac[i] = '\0';
	return buf_printf(out, "%s%lld%s", ms < 0 ? "-" : "", (long long)(a / 1000),
	                  i ? frac : "");
}

/* One histogram's series for every channel; off is the histogram's offset in a slot. The
   count is the +Inf bucket as read, so the two always agree within a scrape. */
static int
write_histogram(struct buf *out, const char *name, const char *help, size_t off,
                const int64_t *le, size_t n_le, const struct buf *labels, int n)
{
	int i, rc = header(out, name, "histogram", help);
	size_t b;

	for (i = 0; i < n && rc == 0; i++) {
		const struct histogram *h = (const struct histogram *)((const char *)&slots[i] + off);
		const char *ch = labels[i].data ? labels[i].data : "";
		long long cum = 0;

		for (b = 0; b <= n_le && rc == 0; b++) {
			cum += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
			rc |= buf_printf(out, "%s_bucket{channel=\"%s\",le=\"", name, ch);
			rc |= b < n_le ? seconds(out, le[b]) : buf_append(out, "+Inf", 4);
			rc |= buf_printf(out, "\"} %lld\n", cum);
		}
		rc |= buf_printf(out, "%s_sum{channel=\"%s\"} ", name, ch);
		rc |= seconds(out, atomic_load_explicit(&h->sum_ms, memory_order_relaxed));
		rc |= buf_printf(out, "\n%s_count{channel=\"%s\"} %lld\n", name, ch, cum);
	}
	return rc ? -1 : 0;
}

/* ---- process_*: read from /proc, as the Prometheus client libraries do ---------------- */

/* utime, stime (clock ticks) and starttime (ticks after boot) from /proc/self/stat. */
static int
proc_stat(unsigned long long *utime, unsigned long long *stime, unsigned long long *start)
{
	char text[1024], *p;
	size_t len;
	FILE *f = fopen("/proc/self/stat", "r");
	int rc = -1;

	if (!f)
		return -1;
	len = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[len] = '\0';
	/* The command name may hold spaces and parentheses: fields count from the last ')'. */
	if ((p = strrchr(text, ')')) &&
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
	                  "%*d %*d %llu", utime, stime, start) == 3)
		rc = 0;
	return rc;
}

static long long
boot_time(void)
{
	char line[256];
	long long t = -1;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "btime %lld", &t) == 1)
			break;
	fclose(f);
	return t;
}

static long long
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;  /* the directory stream's own descriptor */
}

static int
write_process(struct buf *out)
{
	unsigned long long utime, stime, start, size, resident;
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	long long fds = open_fds(), btime = boot_time();
	struct rlimit rl;
	FILE *f;
	int rc = 0;

	if (tick > 0 && proc_stat(&utime, &stime, &start) == 0) {
		rc |= header(out, "process_cpu_seconds_total", "counter",
		             "Total user and system CPU time spent in seconds.");
		rc |= buf_printf(out, "process_cpu_seconds_total %.2f\n",
		                 (double)(utime + stime) / (double)tick);
		if (btime >= 0) {
			rc |= header(out, "process_start_time_seconds", "gauge",
			             "Start time of the process since unix epoch in seconds.");
			rc |= buf_printf(out, "process_start_time_seconds %.2f\n",
			                 (double)btime + (double)start / (double)tick);
		}
	}
	if ((f = fopen("/proc/self/statm", "r"))) {
		if (page > 0 && fscanf(f, "%llu %llu", &size, &resident) == 2) {
			rc |= header(out, "process_virtual_memory_bytes", "gauge",
			             "Virtual memory size in bytes.");
			rc |= buf_printf(out, "process_virtual_memory_bytes %llu\n", size * (unsigned long long)page);
			rc |= header(out, "process_resident_memory_bytes", "gauge",
			             "Resident memory size in bytes.");
			rc |= buf_printf(out, "process_resident_memory_bytes %llu\n",
			                 resident * (unsigned long long)page);
		}
		fclose(f);
	}
	if (fds >= 0) {
		rc |= header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
		rc |= buf_printf(out, "process_open_fds %lld\n", fds);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		rc |= header(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		rc |= buf_printf(out, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	return rc ? -1 : 0;
}

int
metrics_write(struct buf *out)
{
	struct buf labels[METRICS_MAX_CHANNELS];
	int n = atomic_load_explicit(&n_slots, memory_order_acquire), i, j, rc = -1;

	memset(labels, 0, sizeof labels);
	for (i = 0; i < n; i++)
		if (metrics_escape(&labels[i], slots[i].name) != 0 || buf_append(&labels[i], "", 1) != 0)
			goto out;  /* (the appended NUL makes data non-NULL even for an empty name) */
	rc = 0;
	rc |= header(out, "herald_deliveries_total", "counter",
	             "Deliveries settled since start, by channel and outcome.");
	for (i = 0; i < n; i++)
		for (j = 0; j < METRICS_N_OUTCOMES; j++)
			rc |= buf_printf(out, "herald_deliveries_total{channel=\"%s\",outcome=\"%s\"} %lld\n",
			                 labels[i].data, outcome_names[j],
			                 atomic_load_explicit(&slots[i].deliveries[j], memory_order_relaxed));
	rc |= header(out, "herald_requests_total", "counter",
	             "Provider requests finished since start, by channel and what the wire did.");
	for (i = 0; i < n; i++)
		for (j = 0; j < N_RESULTS; j++)
			rc |= buf_printf(out, "herald_requests_total{channel=\"%s\",result=\"%s\"} %lld\n",
			                 labels[i].data, result_names[j],
			                 atomic_load_explicit(&slots[i].requests[j], memory_order_relaxed));
	rc |= write_histogram(out, "herald_request_duration_seconds",
	                      "Provider request duration in seconds.",
	                      offsetof(struct slot, duration), duration_le_ms, N_DURATION, labels, n);
	rc |= write_histogram(out, "herald_send_lag_seconds",
	                      "Request start minus the delivery's due time, in seconds.",
	                      offsetof(struct slot, lag), lag_le_ms, N_LAG, labels, n);
	rc |= header(out, "herald_in_flight", "gauge", "Provider requests on the wire now.");
	for (i = 0; i < n; i++)
		rc |= buf_printf(out, "herald_in_flight{channel=\"%s\"} %d\n", labels[i].data,
		                 atomic_load_explicit(&slots[i].in_flight, memory_order_relaxed));
	rc |= write_process(out);
out:
	for (i = 0; i < n; i++)
		buf_free(&labels[i]);
	return rc ? -1 : 0;
}
