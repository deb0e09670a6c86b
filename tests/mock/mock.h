/*
 * mock.h: the internals shared by the files of herald-mock, the mock provider
 * server (the command line and control API are documented in mock_main.c).
 *
 *   mock_main.c       command line, signals, port file, start and stop
 *   mock_http.c       libmicrohttpd callbacks, control endpoints, delayed answers
 *   mock_providers.c  routing, Feihe and Tanmarket checks, every answer
 *   mock_tencent.c    the Tencent desk check
 *   mock_forms.c      the two form-encoded providers: APIUSB and SaiNiu
 *   mock_rules.c      scripted rules: parsing, matching, listing
 *   mock_state.c      everything shared between requests, under one mutex
 *   mock_util.c       buffers, JSON and form parsing, digests, clock
 *
 * Not a library: only these files include it. Allocation failure ends the
 * process (mock_x* functions); a test tool has nothing better to do.
 */
#ifndef HERALD_MOCK_H
#define HERALD_MOCK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum mock_provider {
	MOCK_FEIHE,
	MOCK_TENCENT,
	MOCK_APIUSB,
	MOCK_SAINIU,
	MOCK_TANMARKET,
	MOCK_UNKNOWN,		/* no provider owns the path: answered 404 */
	MOCK_NPROVIDERS
};

enum mock_verdict {
	MOCK_ACCEPTED,
	MOCK_REJECTED,
	MOCK_DUPLICATE,
	MOCK_SCRIPTED,
	MOCK_NVERDICTS
};

/* Set once by mock_main.c before serving; read-only afterwards. */
struct mock_config {
	const char	*feihe_system;		/* required value of the system header */
	int		 tim_sdkappid_set;	/* tim_sdkappid was given */
	uint64_t	 tim_sdkappid;
	const char	*tim_identifier;	/* NULL: any identifier */
	const char	*tim_secret;		/* NULL: no TLSSigAPIv2 verification */
	const char	*tim_usersig;		/* NULL: no fixed usersig */
	const char	*tanmarket_app_id;	/* NULL: any appId */
	const char	*tanmarket_app_key;	/* NULL: sign checked with the appKey header */
	const char	*sainiu_sign_key;	/* NULL: time and sign not required */
	const char	*apiusb_token;		/* NULL: access_token optional */
	int		 record;		/* keep records for GET /_mock/requests */
	int		 close;			/* every answer says Connection: close */
	int		 log_fd;		/* -1, or an O_APPEND file for JSON lines */
};

/* ---- mock_util.c ---- */

void	*mock_xmalloc(size_t);
void	*mock_xcalloc(size_t, size_t);
void	*mock_xrealloc(void *, size_t);
char	*mock_xstrdup(const char *);
char	*mock_xstrndup(const char *, size_t);

/* A growable byte string, always NUL-terminated once anything was added. */
struct mock_buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};
void	 mock_buf_add(struct mock_buf *, const void *, size_t);
void	 mock_buf_adds(struct mock_buf *, const char *);
void	 mock_buf_addf(struct mock_buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Appends s as a quoted JSON string; invalid UTF-8 becomes U+FFFD. */
void	 mock_buf_add_jstr(struct mock_buf *, const char *s, size_t len);
/* Appends s quoted, or null when s is NULL. */
void	 mock_buf_add_jstr0(struct mock_buf *, const char *s);
/* Returns the contents (caller frees; "" when empty) and empties the buffer. */
char	*mock_buf_take(struct mock_buf *);
void	 mock_buf_free(struct mock_buf *);

/* Wall clock in Unix ms, shifted by the offset POST /_mock/clock sets. */
int64_t	 mock_now_ms(void);
void	 mock_clock_set_offset(int64_t offset_ms);
int64_t	 mock_clock_offset(void);
/* Monotonic ms, for delays. */
int64_t	 mock_mono_ms(void);

int	 mock_utf8_valid(const char *, size_t);
/* Whether a Content-Type value names media type want (parameters ignored). */
int	 mock_media_type_is(const char *content_type, const char *want);
/* Whether s is exactly n ASCII digits (n == 0: one or more). */
int	 mock_digits(const char *s, size_t n);
/* Parses an unsigned decimal with no sign or spaces; 0 ok, -1 otherwise. */
int	 mock_parse_u64(const char *s, uint64_t max, uint64_t *out);

/*
 * Lowercase hex digest of the concatenated parts: sha256 != 0 picks SHA-256,
 * else MD5. out must hold 65 bytes.
 */
void	 mock_digest_hex(int sha256, const char *const *parts, const size_t *lens,
	    size_t nparts, char *out);

/* One decoded application/x-www-form-urlencoded (or query) parameter. */
struct mock_param {
	char	*name;
	char	*value;
	size_t	 value_len;
};
struct mock_form {
	struct mock_param	*v;
	size_t			 n;
};
/*
 * Decodes "a=1&b=x+y%21": '+' is a space, %XX a byte. Empty segments, names
 * without '=', bad escapes and NUL bytes are errors. Returns 0, or -1 with why
 * filled. out must be zeroed; free it with mock_form_free either way.
 */
int	 mock_form_parse(const char *s, size_t len, struct mock_form *out,
	    char *why, size_t whylen);
void	 mock_form_free(struct mock_form *);
/* The first parameter called name, or NULL. */
const struct mock_param *mock_form_get(const struct mock_form *, const char *name);
/* Name of a parameter given twice, or NULL. */
const char *mock_form_dup(const struct mock_form *);

/*
 * Parses JSON strictly: valid UTF-8, no raw control characters in strings, no
 * duplicate member names anywhere, nothing after the value. Returns the tree
 * (caller frees with cJSON_Delete) or NULL with why filled.
 */
cJSON	*mock_json_parse(const char *text, size_t len, char *why, size_t whylen);
/*
 * Checks that obj is an object with no members beyond names (NULL-terminated).
 * Returns 0, or -1 with why filled (naming the object as where).
 */
int	 mock_json_only(const cJSON *obj, const char *const *names, const char *where,
	    char *why, size_t whylen);
/* Whether item is a number with an integral value in [min, max]; sets *out. */
int	 mock_json_int(const cJSON *item, double min, double max, int64_t *out);
/* The string value of member name of obj, or NULL if absent or not a string. */
const char *mock_json_str(const cJSON *obj, const char *name);
/* Whether member name of obj is a non-empty string. */
int	 mock_json_nonempty(const cJSON *obj, const char *name);

/* ---- requests and their outcome ---- */

enum mock_header {
	MOCK_H_SYSTEM,
	MOCK_H_APPID,
	MOCK_H_TIMESTAMP,
	MOCK_H_SIGN,
	MOCK_H_APPKEY,
	MOCK_H_CTYPE,
	MOCK_NHEADERS
};

/* A request as the HTTP layer hands it over; everything borrowed. */
struct mock_request {
	const char	*method;
	const char	*path;			/* raw path, no query */
	const char	*query;			/* raw query without '?'; "" if none */
	const char	*body;			/* NUL-terminated (may hold NULs) */
	size_t		 body_len;
	const char	*hdr[MOCK_NHEADERS];	/* NULL when absent */
	unsigned	 hdr_dup;		/* bit (1 << h) when sent twice */
	int64_t		 received_at_ms;
};

/* What a scripted rule does to one request; strings owned. */
struct mock_action {
	int		 rule_id;	/* 0: no rule applied */
	int		 replaces;	/* the rule, not the provider logic, answers */
	int		 status;	/* HTTP status of a replacing answer */
	char		*body;		/* raw body, or NULL */
	int		 has_code;
	long long	 code;
	char		*message;	/* NULL: a default text */
	int		 delay_ms;
	int		 drop;
	int		 omit;		/* some members left out (APIUSB) */
	char		*retry_after;	/* a Retry-After header value, or NULL */
	int		 repeat;	/* the body is sent this many times over (>= 1) */
};

/*
 * The verdict on one provider request. The provider check fills provider,
 * verdict (ACCEPTED or REJECTED), the rejection and the keys; mock_state_decide
 * then applies rules and provider state and numbers it. Free with
 * mock_outcome_free.
 */
struct mock_outcome {
	enum mock_provider	 provider;
	enum mock_verdict	 verdict;
	int			 valid;		/* the request met the document */
	int			 http_status;	/* of the provider's own answer */
	long long		 code;		/* provider error code of a rejection */
	char			 msg[512];	/* text for the rejection envelope */
	char			 reason[512];	/* recorded; "" when accepted */
	char			*key;		/* match key, NULL if unreadable */
	char			**members;	/* APIUSB uuids, in order */
	size_t			 nmembers;
	unsigned char		*omitted;	/* per member, set by omit rules */
	char			*state_key;	/* Tencent dedup key, SaiNiu userNick */
	int64_t			 sendtime_ms;	/* SaiNiu */
	struct mock_action	 act;
	uint64_t		 seq;		/* record number, from 1 */
	uint64_t		 serial;	/* first id number of a success answer */
};

void	 mock_outcome_free(struct mock_outcome *);
/* Marks o rejected with a provider code, envelope text and recorded reason. */
void	 mock_reject(struct mock_outcome *o, long long code, const char *msg,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- mock_providers.c ---- */

/* The provider owning path (by suffix), or MOCK_UNKNOWN. */
enum mock_provider mock_provider_route(const char *path);
const char *mock_provider_name(enum mock_provider);
/* Provider by name ("tencent_desk", ...); -1 if none. */
int	 mock_provider_lookup(const char *name);
const char *mock_verdict_name(enum mock_verdict);
/* Validates req against its provider's document into o (zeroed by caller). */
void	 mock_provider_check(const struct mock_config *, const struct mock_request *,
	    struct mock_outcome *o);
/*
 * The answer to o, after mock_state_decide: HTTP status, body and content
 * type. Not used when o->act.drop is set.
 */
void	 mock_provider_answer(const struct mock_outcome *o, unsigned *status,
	    struct mock_buf *body, const char **content_type);

/* Marks o rejected as HTTP 405: only a gateway would answer that. */
void	 mock_reject_method(struct mock_outcome *o, const char *method);

/* ---- mock_tencent.c ---- */

/*
 * mock_usersig.c: verifies a TLSSigAPIv2 UserSig for sdkappid and identifier
 * with secret at now_s, independently of Herald's src/usersig.c. Returns 0, or
 * -1 with *why one of "usersig malformed", "usersig version unsupported",
 * "usersig for another identifier", "usersig for another sdkappid", "usersig
 * signature mismatch", "usersig not yet valid", "usersig expired".
 */
int	 mock_usersig_check(const char *sig, uint64_t sdkappid, const char *identifier,
	    const char *secret, int64_t now_s, const char **why);

void	 mock_tencent_check(const struct mock_config *, const struct mock_request *,
	    struct mock_outcome *);

/* ---- mock_forms.c ---- */

void	 mock_apiusb_check(const struct mock_config *, const struct mock_request *,
	    struct mock_outcome *);
void	 mock_sainiu_check(const struct mock_config *, const struct mock_request *,
	    struct mock_outcome *);

/* ---- mock_rules.c ---- */

struct mock_rule {
	int		 id;
	int		 provider;	/* enum mock_provider, or -1 for any */
	char		*match;		/* NULL: any key */
	long		 times;		/* 0: unlimited */
	long		 used;
	int		 status;
	char		*body;
	int		 has_code;
	long long	 code;
	char		*message;
	int		 delay_ms;
	int		 drop;
	int		 omit;
	char		*retry_after;	/* NULL: no Retry-After header */
	int		 repeat;	/* body repeated this many times: answers too big to post */
};

/*
 * Parses the body of POST /_mock/rules (one rule object or an array) into
 * *rules (caller frees each with mock_rule_free, then the array). Ids are not
 * set. Returns 0, or -1 with why filled and nothing allocated.
 */
int	 mock_rules_parse(const char *text, size_t len, struct mock_rule **rules,
	    size_t *n, char *why, size_t whylen);
void	 mock_rule_free(struct mock_rule *);
/* Whether the rule has times left and fits o's provider and key. */
int	 mock_rule_fits(const struct mock_rule *, const struct mock_outcome *o);
/* Whether the rule's match names member m (always for "*"). */
int	 mock_rule_matches_member(const struct mock_rule *, const char *m);
/* Copies what the rule does into a (owned strings). */
void	 mock_rule_action(const struct mock_rule *, struct mock_action *a);
void	 mock_rule_json(const struct mock_rule *, struct mock_buf *);

/* ---- mock_state.c ---- */

void	 mock_state_init(const struct mock_config *);
void	 mock_state_fini(void);
/*
 * Decides o under the state mutex: applies the first fitting rule, the
 * provider's de-duplication and 7-day state, numbers it and records it.
 * record_mid is the middle of the record object (method .. received_at_ms,
 * with a trailing comma), or NULL when nothing is recorded or logged.
 */
void	 mock_state_decide(struct mock_outcome *o, const char *record_mid);
/* Whether requests are recorded or logged (record_mid is needed). */
int	 mock_state_wants_records(void);
void	 mock_state_reset(void);
/* Adds rules; takes ownership of the array and its rules. Appends ids JSON. */
void	 mock_state_add_rules(struct mock_rule *rules, size_t n, struct mock_buf *ids);
void	 mock_state_rules_json(struct mock_buf *);
/* provider < 0: all. */
void	 mock_state_requests_json(int provider, struct mock_buf *);
void	 mock_state_stats_json(struct mock_buf *);

/* ---- mock_http.c ---- */

/*
 * Starts serving on 127.0.0.1:port (0: any free port) with threads polling
 * threads. Returns 0 with *bound the port, or -1 with *err (caller frees).
 */
int	 mock_http_start(const struct mock_config *, uint16_t port, unsigned threads,
	    uint16_t *bound, char **err);
/* Answers every delayed request, then stops the server. */
void	 mock_http_stop(void);

#endif
