/*
 * provider: the interface every provider module implements, and the registry that maps a
 * channel's "provider" name to its module. A module owns its provider's wire format, its
 * verdicts and its rules; it never does I/O itself: the scheduler sends what `build` makes
 * and hands the answer to `judge`, and the store keeps what the verdicts say.
 *
 * Adding a provider: write src/providers/NAME.c defining `const struct provider_ops
 * provider_NAME`, declare it below and list it in provider.c's registry.
 */
#ifndef HERALD_PROVIDER_H
#define HERALD_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"

/* What a provider's answer means for one delivery. */
enum provider_outcome {
	PROVIDER_SENT,        /* accepted (for provider-scheduled sends: accepted for its time) */
	PROVIDER_TRANSIENT,   /* try again later with backoff */
	PROVIDER_PERMANENT,   /* fail now; retrying cannot help */
	PROVIDER_DEFERRED,    /* held back until defer_until_ms (a quota or window reopening) */
	PROVIDER_AMBIGUOUS,   /* sent, and no verdict came back: it may have been accepted (SPEC 5.10) */
	PROVIDER_EXPIRED,     /* build: too late to go out before its expiry; never sent */
};

/* How deliveries share one request. */
enum provider_batching {
	PROVIDER_SINGLE,      /* one delivery per request */
	PROVIDER_BY_MESSAGE,  /* same campaign, step and rendered message (APIUSB BulkSend) */
	PROVIDER_BY_CAMPAIGN, /* every due delivery of a campaign in one call (Tanmarket SOP) */
};

/* One delivery inside a request: its inputs, then the verdict `judge` fills in. */
struct provider_item {
	/* inputs, owned by the caller, valid for the duration of build and judge */
	int64_t delivery_id;
	const char *recipient_id;     /* id, session_id or chat_id: what the provider addresses */
	const cJSON *recipient;       /* the recipient record: {"id"|"session_id"|"chat_id", "chat_owner", "vars", ...} */
	const cJSON *message;         /* the step's message object, placeholders already rendered */
	const char *campaign_key;
	const char *campaign_name;
	int step;                     /* 1-based position of the step */
	int step_day;                 /* the step's day (day 1 = anchor date) */
	const char *step_time;        /* the step's "HH:mm" */
	int campaign_day_now;         /* which campaign day (1-based) it is at the time of the call */
	int64_t due_at_ms;            /* when the message should reach the recipient */
	int64_t send_at_ms;           /* provider-scheduled sends: the send time admitted (SaiNiu
	                                 sendtime); build may move it later, never earlier */
	int64_t expires_at_ms;        /* past this the delivery must not be sent (schedule's expiry) */
	uint32_t msg_random;          /* fixed per delivery; reused on every resend */

	/* verdict, written by judge (or by the scheduler for network failures) */
	enum provider_outcome outcome;
	int channel_fault;            /* 1: a credential or account error; the channel is suspended
	                                 and the item waits, its attempt not counted (SPEC 5.11) */
	int64_t defer_until_ms;       /* PROVIDER_DEFERRED: earliest time to try again */
	char code[32];                /* the provider's own code as text, "" when none */
	char *message_text;           /* the provider's message (malloc'd, may be NULL; scheduler frees) */
	char *message_id;             /* the provider's id for the message (malloc'd, may be NULL) */
};

/* An HTTP request built by a provider. Everything is malloc'd; provider_request_clear frees. */
struct provider_request {
	char *url;                    /* full URL, query string included */
	char *body;                   /* request body (POST), NULL for none */
	size_t body_len;
	char *headers[12];            /* "Name: value" lines */
	int n_headers;
	int no_resend;                /* 1: libcurl must never send it twice, even when a kept-
	                                 alive connection dies (set by the caller for providers
	                                 that cannot de-duplicate) */
};

/* The per-account state a provider rule reads (SaiNiu's 7-day rule). */
struct provider_limit {
	int64_t last_call_ms;         /* last accepted call, 0 = never */
	int64_t last_send_at_ms;      /* the send time that call asked for, 0 = never */
	int reserved;                 /* a call for this account is in flight right now */
};

enum provider_admit {
	PROVIDER_ADMIT,               /* send now; *send_at_ms set */
	PROVIDER_DEFER,               /* not before *defer_until_ms; *send_at_ms = when it will go */
	PROVIDER_WAIT,                /* another call for the account is in flight; look again soon */
};

struct provider_ops {
	const char *name;                        /* config "provider" value */
	enum provider_batching batching;
	int dedups;                              /* 1 if a resend with the same msg_random is de-duplicated by the provider */
	const struct config_key *keys;           /* provider-specific channel keys, {NULL} terminated */

	/* Checks provider-specific channel values beyond their types (e.g. lead >= 2h). 0 / -1 + *err naming the key. */
	int (*check_channel)(const struct channel *ch, char **err);
	/* Checks a recipient record's shape. 0 / -1 + *err (what is wrong, without the path). */
	int (*check_recipient)(const cJSON *recipient, char **err);
	/* Checks a message object; `rendered` is 1 after placeholders were filled (size limits apply then). */
	int (*check_message)(const cJSON *message, int rendered, char **err);

	/*
	 * When the scheduler should act on a delivery due at due_at_ms, given the campaign's day 1
	 * start (00:00 local on the anchor date) and expire_after: sets *next_at_ms and
	 * *expires_at_ms. NULL means next = due, expires = due + expire_after.
	 */
	void (*schedule)(const struct channel *ch, int64_t due_at_ms, int64_t day1_start_ms,
	                 int64_t expire_after_ms, int64_t *next_at_ms, int64_t *expires_at_ms);

	/* Per-account rule (NULL = none): the account a delivery counts against, or NULL. */
	const char *(*limit_account)(const struct provider_item *item);
	/* Decides, inside the claim transaction, whether the item may go now. */
	enum provider_admit (*admit)(const struct channel *ch, const struct provider_item *item,
	                             const struct provider_limit *limit, int64_t now_ms,
	                             int64_t *send_at_ms, int64_t *defer_until_ms);

	/* Per-channel private state (caches such as Tencent's UserSig). NULL open = none. */
	int (*open)(const struct channel *ch, void **state, char **err);
	void (*close)(void *state);
	/* A credential the state made (Tencent's generated UserSig), so provider text echoing it
	   can be masked like the configured ones; NULL when none. May be NULL. */
	const char *(*made_secret)(void *state);

	/*
	 * Builds the request for n items (n == 1 for PROVIDER_SINGLE). 0 / -1 + *err; on -1 the
	 * items are failed permanently with *err as the reason (e.g. a body over the limit), or,
	 * when build set every item's outcome to PROVIDER_EXPIRED, expired.
	 */
	int (*build)(void *state, const struct channel *ch, struct provider_item *items, size_t n,
	             int64_t now_ms, struct provider_request *req, char **err);
	/*
	 * Judges an HTTP answer (status 100..599, body may be empty or garbage) and sets every
	 * item's verdict. Must handle any bytes without crashing.
	 */
	void (*judge)(void *state, const struct channel *ch, long http_status, const char *body,
	              size_t body_len, struct provider_item *items, size_t n, int64_t now_ms);
};

/* The module for a provider name, or NULL. */
const struct provider_ops *provider_find(const char *name);
/* Comma-separated list of known provider names, for error messages. */
const char *provider_names(void);

/*
 * What one of a provider's own codes means, as its document (or providers.md) says: the
 * codes are data, kept as a table per module so they read as the README's provider table does.
 */
struct provider_code {
	int64_t code;
	enum provider_outcome outcome;
	int channel_fault;            /* an account or credential error: suspend the channel */
	int64_t defer_ms;             /* PROVIDER_DEFERRED: how long from now; 0: the module knows */
	const char *meaning;
};
/* The row for code in a table that ends with a row whose meaning is NULL; NULL if absent. */
const struct provider_code *provider_code_find(const struct provider_code *table, int64_t code);

/* Sets an item's verdict from an answer: the outcome, code and (bounded) text, the time a
   deferral lifts and whether the channel is at fault. */
void provider_verdict_answer(struct provider_item *item, enum provider_outcome outcome,
                             const char *code, const char *text, int64_t defer_until_ms,
                             int channel_fault);
/* 1 if s holds a control character: a value that becomes a header line or URL part must not
   (it could split or forge one). */
int provider_has_control(const char *s);

/* Frees what a request holds and zeroes it. */
void provider_request_clear(struct provider_request *req);
/* Appends a header line; 0 / -1 (too many or out of memory). */
int provider_request_header(struct provider_request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Sets an item's verdict; text may be NULL. Replaces any earlier message_text. */
void provider_verdict(struct provider_item *item, enum provider_outcome outcome, const char *code,
                      const char *text);
/* Sets the same verdict on every item. */
void provider_verdict_all(struct provider_item *items, size_t n, enum provider_outcome outcome,
                          const char *code, const char *text);
/* The HTTP-level verdict shared by all providers (SPEC 5.10): 429, 503 and 408 say nothing was
   done (transient); 500, 502, 504 and other 5xx may have done it (ambiguous); other non-2xx
   permanent. Returns 1 if it judged (the status was not 2xx), 0 if the body is the provider's. */
int provider_judge_http(long http_status, struct provider_item *items, size_t n);
/* An answer came but cannot be read (empty, truncated, not the documented shape): the request
   may have been acted on, so every item is ambiguous. */
void provider_verdict_unreadable(struct provider_item *items, size_t n, const char *why);

/* Parses a whole answer body as exactly one JSON value (whitespace around it allowed), so a
   truncated or concatenated answer is never read as a success. NULL when it is not. */
cJSON *provider_parse_answer(const char *body, size_t len);
/* A provider code written as a JSON integer or as a decimal string (providers differ). 0 / -1. */
int provider_json_code(const cJSON *v, int64_t *out);
/* Member `name` of obj when it is a non-empty string, else NULL. */
const char *provider_json_str(const cJSON *obj, const char *name);
/* A provider's message text, cut to 512 columns and 2048 bytes on a character boundary so a
   huge answer cannot flood the attempt log. New string (caller frees), NULL for NULL. */
char *provider_text(const char *s);

/* Masks every occurrence of secret in text (as written and percent-encoded), and a tail of
   text that begins it (a cut-short echo), with '*', in place. Secrets under 6 bytes are
   left alone: masking them would garble ordinary words and hide nothing. */
void provider_redact(char *text, const char *secret);
/* provider_redact for every credential of the channel: its configured secrets and what the
   provider's state made (made_secret). The one place provider text is cleaned. */
void provider_redact_channel(char *text, const struct channel *ch, void *state);

/* Percent-encodes s for a URL query or form body (RFC 3986 unreserved kept). Caller frees. */
char *provider_urlencode(const char *s);
/* Lowercase hex of a byte string into out (2*len+1 bytes). */
void provider_hex(const unsigned char *bytes, size_t len, char *out);

extern const struct provider_ops provider_sainiu;
extern const struct provider_ops provider_tencent_desk;
extern const struct provider_ops provider_apiusb;
extern const struct provider_ops provider_tanmarket;
extern const struct provider_ops provider_feihe;

#endif
