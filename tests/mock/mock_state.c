/*
 * mock_state.c: everything requests share, behind one mutex held only for a
 * few table look-ups and copies per request: the rule table, the record list
 * and log, per provider and verdict counts, Tencent's MsgRandom
 * de-duplication and SaiNiu's last accepted call and sendtime per userNick.
 *
 * Records are kept pre-serialised (one JSON object per request) so listing
 * them and logging them cost a copy, not a rebuild.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mock.h"

/* SaiNiu: "间隔一周(7天)允许使用一次". */
#define SAINIU_WEEK_MS	(7 * 24 * 3600 * 1000LL)

/* String -> int64 table, open addressing with linear probing. */
struct map_slot {
	char		*key;		/* NULL: empty */
	uint64_t	 hash;
	int64_t		 val;
};
struct map {
	struct map_slot	*v;
	size_t		 cap;		/* a power of two, or 0 */
	size_t		 n;
};

struct record {
	enum mock_provider	 provider;
	char			*line;	/* one JSON object, no newline */
	size_t			 len;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const struct mock_config *cfg;
static struct mock_rule *rules;
static size_t nrules;
static int next_rule_id = 1;
static struct record *records;
static size_t nrecords, caprecords;
static uint64_t counts[MOCK_NPROVIDERS][MOCK_NVERDICTS];
static uint64_t seq;
static uint64_t serial[MOCK_NPROVIDERS];
static struct map tim_seen;	/* dedup key -> seq of the accepted request */
static struct map sainiu_last;	/* userNick -> last accepted sendtime, ms */
static struct map sainiu_call;	/* userNick -> mock clock of the last accepted call, ms */

static uint64_t
map_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static struct map_slot *
map_slot(const struct map *m, const char *key, uint64_t h)
{
	size_t i;

	for (i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (m->v[i].key == NULL || (m->v[i].hash == h && strcmp(m->v[i].key, key) == 0))
			return &m->v[i];
}

static int64_t *
map_find(const struct map *m, const char *key)
{
	struct map_slot *s;

	if (m->cap == 0)
		return NULL;
	s = map_slot(m, key, map_hash(key));
	return s->key != NULL ? &s->val : NULL;
}

static void
map_put(struct map *m, const char *key, int64_t val)
{
	struct map_slot *s, *old = m->v;
	uint64_t h = map_hash(key);
	size_t i, oldcap = m->cap;

	if (2 * (m->n + 1) > m->cap) {
		m->cap = oldcap ? 2 * oldcap : 64;
		m->v = mock_xcalloc(m->cap, sizeof(*m->v));
		for (i = 0; i < oldcap; i++)
			if (old[i].key != NULL)
				*map_slot(m, old[i].key, old[i].hash) = old[i];
		free(old);
	}
	s = map_slot(m, key, h);
	if (s->key == NULL) {
		s->key = mock_xstrdup(key);
		s->hash = h;
		m->n++;
	}
	s->val = val;
}

static void
map_clear(struct map *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->v[i].key);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static void
clear_locked(void)
{
	size_t i;

	for (i = 0; i < nrules; i++)
		mock_rule_free(&rules[i]);
	free(rules);
	rules = NULL;
	nrules = 0;
	next_rule_id = 1;
	for (i = 0; i < nrecords; i++)
		free(records[i].line);
	free(records);
	records = NULL;
	nrecords = caprecords = 0;
	memset(counts, 0, sizeof(counts));
	memset(serial, 0, sizeof(serial));
	seq = 0;
	map_clear(&tim_seen);
	map_clear(&sainiu_last);
	map_clear(&sainiu_call);
}

void
mock_state_init(const struct mock_config *c)
{
	cfg = c;
}

void
mock_state_fini(void)
{
	pthread_mutex_lock(&lock);
	clear_locked();
	pthread_mutex_unlock(&lock);
}

void
mock_state_reset(void)
{
	pthread_mutex_lock(&lock);
	clear_locked();
	pthread_mutex_unlock(&lock);
	mock_clock_set_offset(0);
}

int
mock_state_wants_records(void)
{
	return cfg->record || cfg->log_fd >= 0;
}

/*
 * The first fitting rule decides. An omit rule also lets every later omit rule
 * drop its own members from the same answer; each rule that does is used once.
 */
static void
apply_rules_locked(struct mock_outcome *o)
{
	struct mock_rule *r, *first = NULL;
	struct mock_buf why = { 0 };
	size_t i, k, hit;

	for (i = 0; i < nrules && first == NULL; i++)
		if (mock_rule_fits(&rules[i], o))
			first = &rules[i];
	if (first == NULL)
		return;
	mock_rule_action(first, &o->act);
	if (!first->omit) {
		first->used++;
		return;
	}
	for (i = (size_t)(first - rules); i < nrules; i++) {
		r = &rules[i];
		if (!r->omit || !mock_rule_fits(r, o))
			continue;
		for (k = 0, hit = 0; k < o->nmembers; k++)
			if (!o->omitted[k] && mock_rule_matches_member(r, o->members[k])) {
				o->omitted[k] = 1;
				mock_buf_addf(&why, "%s%s", why.len ? "," : "", o->members[k]);
				hit++;
			}
		if (hit > 0)
			r->used++;
	}
	snprintf(o->reason, sizeof(o->reason), "rule %d omitted %s", first->id,
	    why.p != NULL ? why.p : "nothing");
	mock_buf_free(&why);
}

static void
provider_state_locked(struct mock_outcome *o)
{
	int64_t *v;

	if (o->provider == MOCK_TENCENT && o->state_key != NULL) {
		if ((v = map_find(&tim_seen, o->state_key)) != NULL) {
			o->verdict = MOCK_DUPLICATE;
			snprintf(o->reason, sizeof(o->reason),
			    "same MsgRandom and recipient as accepted seq %lld", (long long)*v);
		} else
			map_put(&tim_seen, o->state_key, (int64_t)o->seq);
	} else if (o->provider == MOCK_SAINIU && o->state_key != NULL) {
		/* Once a week, read both ways: the calls a week apart, and the send times. */
		int64_t now = mock_now_ms();
		int64_t *call = map_find(&sainiu_call, o->state_key);

		v = map_find(&sainiu_last, o->state_key);
		if (call != NULL && now - *call < SAINIU_WEEK_MS)
			mock_reject(o, 500, "间隔一周(7天)允许使用一次", "call within 7 days "
			    "of the last accepted call at %lld for this userNick", (long long)*call);
		else if (v != NULL && llabs(o->sendtime_ms - *v) < SAINIU_WEEK_MS)
			mock_reject(o, 500, "间隔一周(7天)允许使用一次", "sendtime within 7 days "
			    "of the last accepted sendtime %lld for this userNick", (long long)*v);
		else {
			map_put(&sainiu_last, o->state_key, o->sendtime_ms);
			map_put(&sainiu_call, o->state_key, now);
		}
	}
}

static void
record_locked(const struct mock_outcome *o, const char *mid)
{
	static char newline[] = "\n";
	struct mock_buf b = { 0 };
	struct iovec iov[2];
	struct record *r;

	mock_buf_addf(&b, "{\"seq\":%llu,\"provider\":\"%s\",%s\"verdict\":\"%s\",\"reason\":",
	    (unsigned long long)o->seq, mock_provider_name(o->provider), mid,
	    mock_verdict_name(o->verdict));
	mock_buf_add_jstr0(&b, o->reason[0] != '\0' ? o->reason : NULL);
	mock_buf_adds(&b, ",\"key\":");
	mock_buf_add_jstr0(&b, o->key);
	if (o->act.rule_id != 0)
		mock_buf_addf(&b, ",\"rule\":%d}", o->act.rule_id);
	else
		mock_buf_adds(&b, ",\"rule\":null}");
	if (cfg->log_fd >= 0) {
		iov[0].iov_base = b.p;
		iov[0].iov_len = b.len;
		iov[1].iov_base = newline;
		iov[1].iov_len = 1;
		/* A short or failed write loses one log line; the server goes on. */
		(void)!writev(cfg->log_fd, iov, 2);
	}
	if (!cfg->record) {
		mock_buf_free(&b);
		return;
	}
	if (nrecords == caprecords) {
		caprecords = caprecords ? 2 * caprecords : 1024;
		records = mock_xrealloc(records, caprecords * sizeof(*records));
	}
	r = &records[nrecords++];
	r->provider = o->provider;
	r->len = b.len;
	r->line = mock_buf_take(&b);
}

void
mock_state_decide(struct mock_outcome *o, const char *record_mid)
{
	char invalid[sizeof(o->reason)];

	pthread_mutex_lock(&lock);
	o->seq = ++seq;
	apply_rules_locked(o);
	if (o->act.replaces) {
		if (!o->act.omit) {
			snprintf(invalid, sizeof(invalid), "%s", o->reason);
			if (o->valid)
				snprintf(o->reason, sizeof(o->reason), "rule %d", o->act.rule_id);
			else
				snprintf(o->reason, sizeof(o->reason), "rule %d; request invalid: "
				    "%.450s", o->act.rule_id, invalid);
		}
		o->verdict = MOCK_SCRIPTED;
	} else if (o->verdict == MOCK_ACCEPTED)
		provider_state_locked(o);
	if (o->valid && (o->verdict == MOCK_ACCEPTED || o->act.omit)) {
		o->serial = serial[o->provider] + 1;
		serial[o->provider] += o->provider == MOCK_APIUSB ? o->nmembers : 1;
	}
	counts[o->provider][o->verdict]++;
	if (record_mid != NULL)
		record_locked(o, record_mid);
	pthread_mutex_unlock(&lock);
}

void
mock_state_add_rules(struct mock_rule *add, size_t n, struct mock_buf *ids)
{
	size_t i;

	pthread_mutex_lock(&lock);
	rules = mock_xrealloc(rules, (nrules + n) * sizeof(*rules));
	mock_buf_adds(ids, "{\"ok\":true,\"ids\":[");
	for (i = 0; i < n; i++) {
		add[i].id = next_rule_id++;
		rules[nrules++] = add[i];
		mock_buf_addf(ids, "%s%d", i ? "," : "", add[i].id);
	}
	mock_buf_adds(ids, "]}");
	pthread_mutex_unlock(&lock);
	free(add);
}

void
mock_state_rules_json(struct mock_buf *b)
{
	size_t i;

	pthread_mutex_lock(&lock);
	mock_buf_adds(b, "{\"rules\":[");
	for (i = 0; i < nrules; i++) {
		if (i > 0)
			mock_buf_adds(b, ",");
		mock_rule_json(&rules[i], b);
	}
	mock_buf_adds(b, "]}");
	pthread_mutex_unlock(&lock);
}

void
mock_state_requests_json(int provider, struct mock_buf *b)
{
	const char *sep = "";
	size_t i;

	pthread_mutex_lock(&lock);
	mock_buf_addf(b, "{\"recording\":%s,\"requests\":[", cfg->record ? "true" : "false");
	for (i = 0; i < nrecords; i++) {
		if (provider >= 0 && (int)records[i].provider != provider)
			continue;
		mock_buf_adds(b, sep);
		mock_buf_add(b, records[i].line, records[i].len);
		sep = ",";
	}
	mock_buf_adds(b, "]}");
	pthread_mutex_unlock(&lock);
}

void
mock_state_stats_json(struct mock_buf *b)
{
	uint64_t total = 0, per, byv[MOCK_NVERDICTS] = { 0 };
	int p, v;

	pthread_mutex_lock(&lock);
	mock_buf_adds(b, "{\"providers\":{");
	for (p = 0; p < MOCK_NPROVIDERS; p++) {
		per = 0;
		mock_buf_addf(b, "%s\"%s\":{", p ? "," : "", mock_provider_name(p));
		for (v = 0; v < MOCK_NVERDICTS; v++) {
			mock_buf_addf(b, "\"%s\":%llu,", mock_verdict_name(v),
			    (unsigned long long)counts[p][v]);
			per += counts[p][v];
			byv[v] += counts[p][v];
		}
		mock_buf_addf(b, "\"total\":%llu}", (unsigned long long)per);
		total += per;
	}
	mock_buf_adds(b, "},\"verdicts\":{");
	for (v = 0; v < MOCK_NVERDICTS; v++)
		mock_buf_addf(b, "%s\"%s\":%llu", v ? "," : "", mock_verdict_name(v),
		    (unsigned long long)byv[v]);
	mock_buf_addf(b, "},\"total\":%llu}", (unsigned long long)total);
	pthread_mutex_unlock(&lock);
}
