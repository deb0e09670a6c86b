/*
 * herald-mock: a mock of the five providers Herald sends through, on loopback,
 * with no credentials. It speaks each provider's documented wire format
 * strictly (anything that breaks the document is rejected, and the reason
 * recorded), can be scripted to fail in every way a provider or network does,
 * and records every request it received. Herald's end-to-end tests and the
 * quick-start demo point channels' base_url at it.
 *
 * COMMAND LINE
 *
 *   herald-mock [--port N] [--port-file FILE] [--log FILE] [--threads N]
 *               [--no-record] [--feihe-system NAME]
 *               [--tim-sdkappid N --tim-identifier ID --tim-secret KEY]
 *               [--tim-usersig SIG]
 *               [--tanmarket-app-id ID --tanmarket-app-key KEY]
 *               [--sainiu-sign-key KEY] [--apiusb-token TOKEN]
 *
 *   --port N            listen on 127.0.0.1:N (only loopback, ever); 0, the
 *                       default, picks a free port
 *   --port-file FILE    once listening, write the port and "\n" to FILE
 *                       atomically (FILE.tmp, then rename): wait for FILE
 *   --log FILE          also append every provider request to FILE as one JSON
 *                       line (the record object below), written per line
 *   --threads N         MHD polling threads, 1..64 (default 4)
 *   --no-record         keep no records in memory (GET /_mock/requests then
 *                       lists nothing); counts, rules and state still work
 *   --close             every answer says "Connection: close", so a client
 *                       never reuses a connection: a dropped request then
 *                       always fails on its own connection, never one libcurl
 *                       silently sends again on a fresh one
 *   --feihe-system NAME required value of Feihe's system header (NEW_MEMBER)
 *   --tim-sdkappid N, --tim-identifier ID
 *                       Tencent: the query's sdkappid / identifier must equal
 *   --tim-secret KEY    Tencent: verify usersig as TLSSigAPIv2 with this key,
 *                       by the mock's own decoder (mock_usersig.c), never by
 *                       Herald's src/usersig.c
 *   --tim-usersig SIG   Tencent: usersig must equal SIG (ignored with a secret)
 *   --tanmarket-app-id ID, --tanmarket-app-key KEY
 *                       Tanmarket: appId must equal ID; the appKey header must
 *                       equal KEY and the sign is checked with KEY. Without
 *                       KEY the sign is checked with the appKey header.
 *   --sainiu-sign-key KEY
 *                       SaiNiu: require time and sign (HttpSign)
 *   --apiusb-token TOKEN
 *                       APIUSB: require access_token == TOKEN
 *
 * Secrets may come from the environment instead (the command line wins):
 * MOCK_TIM_SECRET, MOCK_TIM_USERSIG, MOCK_TANMARKET_APP_KEY,
 * MOCK_SAINIU_SIGN_KEY, MOCK_APIUSB_TOKEN. Nothing secret is ever printed.
 * Runs until SIGINT or SIGTERM, then answers any delayed request, stops and
 * exits 0. Exit 64: bad command line; 1: cannot listen or write a file.
 *
 * PROVIDER ENDPOINTS (matched by path suffix; any prefix, as a base_url may
 * carry one; any other path: HTTP 404, recorded as provider "unknown")
 *
 *   feihe         POST .../wisdom-api/weixin/v1/sendCustomerMessage
 *                 header system; application/json {"openId","msg"} only, both
 *                 non-empty strings. OK: 200 {"code":200,"msg":"操作成功",
 *                 "data":{"errcode":0,"errmsg":"ok"}}. Bad: 200 {"code":400,
 *                 "msg":"<reason>","data":null}. msg over 2048 bytes (WeChat's
 *                 text limit): WeChat's 45002 through the Feihe envelope, 200
 *                 {"code":200,"msg":"操作成功","data":{"errcode":45002,
 *                 "errmsg":"content size out of limit"}}. Key: openId.
 *   tencent_desk  POST .../v4/desk_http_svc/send_msg?sdkappid=&identifier=
 *                 &usersig=&random=&contenttype=json (exactly these five).
 *                 Always HTTP 200, {"ActionStatus","ErrorInfo","ErrorCode"}.
 *                 Query problems 60003; sdkappid not the configured 70020;
 *                 identifier not the configured 90009; usersig 70001 (expired)
 *                 or 70009 (anything else); body over 12288 bytes 93000;
 *                 not JSON 90001; MsgRandom 90005; MsgBody 90007; anything
 *                 else 141004 (the body rules are those of the desk document).
 *                 A second accepted (SessionId or ToAccount, MsgRandom) answers
 *                 OK and is recorded "duplicate". Key: SessionId or ToAccount.
 *                 60003, 70020 and 90009 for URL problems are this mock's
 *                 choice among the documented codes.
 *   apiusb        POST .../api/platform, s or service =
 *                 Platform.ChatMessage.BulkSend in the query or the form body,
 *                 everything else in an x-www-form-urlencoded body (GET: all in
 *                 the query). Unknown, repeated or misplaced parameters: ret
 *                 400; other service: 404; token: 406. Over 1000 uuids in one
 *                 call: ret 400 (no source gives APIUSB's limit: 1000 is this
 *                 mock's choice, Herald's largest batch_size). OK: {"ret":200,"data":
 *                 {"item":[{"other_uuid","chat_message_id":"m-<n>"},...]},
 *                 "msg":""}. Key: each member uuid (record key: the list).
 *   sainiu        POST .../SaiNiuApi/Api, x-www-form-urlencoded body only:
 *                 post=SendCustomerServiceUserGroup&data=<JSON>[&time=&sign=].
 *                 Malformed: code 400; sendtime under clock + 2 h: 400
 *                 "sendtime至少延后2个小时"; a call within 7x24 h (mock clock)
 *                 of the last accepted call for the userNick, or a sendtime
 *                 within 7x24 h of the last accepted sendtime for it: 500
 *                 "间隔一周(7天)允许使用一次"; missing, stale (over 15 s) or
 *                 wrong sign: 403 (these codes are undocumented: this mock's
 *                 choice). Without a sign key, time and sign are allowed and
 *                 ignored. OK: {"code":200,
 *                 "msg":"调用成功","data":"<n>","passkey":"<ms>"}. Key: userNick.
 *   tanmarket     POST .../api/v3/groupSop/addGroupCorporate, headers appId,
 *                 timestamp, sign, appKey. Timestamp missing or over 5 min off:
 *                 1003; anything wrong with appId, appKey or sign: 1002
 *                 "签名校验未通过"; body: 40001. OK: {"code":0,"msg":"成功",
 *                 "data":{"sopId":"sop-<n>"}}. Key: the first chatId.
 *   Any provider: a method it does not take is HTTP 405; a body over 1 MiB 413.
 *
 * CONTROL API (under /_mock/, never recorded; errors are HTTP 4xx with
 * {"ok":false,"error":"..."})
 *
 *   POST /_mock/rules     one rule object or an array; all or none are added.
 *                         Answer {"ok":true,"ids":[...]}.
 *   GET  /_mock/rules     {"rules":[{"id","provider","match","times","used",...}]}
 *   POST /_mock/reset     clears rules, records, counts, provider state and the
 *                         clock offset; numbering starts again at 1
 *   GET  /_mock/requests[?provider=NAME]
 *                         {"recording":bool,"requests":[record, ...]} in order
 *   GET  /_mock/stats     {"providers":{"feihe":{"accepted":n,"rejected":n,
 *                         "duplicate":n,"scripted":n,"total":n},...,"unknown":
 *                         {...}},"verdicts":{...},"total":n}
 *   GET  /_mock/health    200 "ok"
 *   GET|POST /_mock/clock {"offset_ms":N} shifts the clock every time check
 *                         uses (SaiNiu 2 h and sign, Tanmarket timestamp,
 *                         usersig expiry, passkey); answers {"ok":true,
 *                         "now_ms","offset_ms"}
 *
 * RULES
 *
 *   {"provider": "feihe"|"tencent_desk"|"apiusb"|"sainiu"|"tanmarket"|"*",
 *    "match": KEY or "*" (default), "times": N (default 1; 0: every time),
 *    "status": HTTP status (default 200), "body": "raw answer body",
 *    "code": provider error code, "message": text for that code,
 *    "delay_ms": 0..600000, "drop": true, "omit": true,
 *    "retry_after": "120" or an HTTP date, "repeat": 1..64}
 *
 *   Rules are tried in the order added; the first whose provider and match fit
 *   and that has times left applies, using one of its times ("*" is any of the
 *   five providers, never an unknown path; for apiusb a match fits when it
 *   names any member of the request). What it does:
 *   - body: that string is the answer, with status.
 *   - code: the provider's own failure envelope with that code and message
 *     (default "mock scripted error"; Feihe: code 200, data.errcode = code;
 *     Tencent: FAIL + ErrorCode; APIUSB: ret; SaiNiu and Tanmarket: code),
 *     with status.
 *   - status alone (not 200): that status with a short text/plain body.
 *   - drop: the connection is closed with no answer (after delay_ms if set).
 *   - omit (apiusb only): the matched member is left out of data.item and the
 *     request otherwise succeeds; only fits requests that would succeed, and
 *     later omit rules may drop further members of the same request.
 *   - repeat (with body): the body is sent that many times over, for answers
 *     larger than a rule may be posted.
 *   - retry_after: the answer (scripted or not) carries that Retry-After
 *     header, as a 429 or 503 would.
 *   - delay_ms: the answer waits that long without holding up any other
 *     connection. A rule with nothing but delay_ms answers normally, late:
 *     the request is decided as usual (state included).
 *   A request answered by a rule is still checked and recorded with verdict
 *   "scripted" (its reason says whether the request was valid); it never
 *   changes provider state (no de-duplication or 7-day entry). Records are
 *   made when the request has arrived, before any delay.
 *
 * RECORDS (GET /_mock/requests and --log lines)
 *
 *   {"seq":n,"provider":NAME,"method","path","query" (raw, no '?'),
 *    "headers":{"system","appId","timestamp","sign","appKey","content-type"}
 *    (null when absent),"body" (text; invalid UTF-8 shown as U+FFFD),
 *    "received_at_ms","verdict":"accepted"|"rejected"|"duplicate"|"scripted",
 *    "reason" (null when accepted),"key" (null if unreadable),
 *    "rule" (id of the rule applied, or null)}
 *
 *   Credentials are recorded as "***", whether right or wrong: the usersig and
 *   access_token parameters of a query or form body, and the appKey header.
 *   Signatures (sign) are kept. The mock judges the real values all the same.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mock.h"

#define EX_USAGE	64

enum opt {
	OPT_PORT = 256, OPT_PORT_FILE, OPT_LOG, OPT_THREADS, OPT_NO_RECORD, OPT_CLOSE,
	OPT_FEIHE_SYSTEM, OPT_TIM_SDKAPPID, OPT_TIM_IDENTIFIER, OPT_TIM_SECRET,
	OPT_TIM_USERSIG, OPT_TAN_APP_ID, OPT_TAN_APP_KEY, OPT_SAINIU_KEY, OPT_APIUSB_TOKEN,
	OPT_HELP
};

static const struct option options[] = {
	{ "port", required_argument, NULL, OPT_PORT },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "no-record", no_argument, NULL, OPT_NO_RECORD },
	{ "close", no_argument, NULL, OPT_CLOSE },
	{ "feihe-system", required_argument, NULL, OPT_FEIHE_SYSTEM },
	{ "tim-sdkappid", required_argument, NULL, OPT_TIM_SDKAPPID },
	{ "tim-identifier", required_argument, NULL, OPT_TIM_IDENTIFIER },
	{ "tim-secret", required_argument, NULL, OPT_TIM_SECRET },
	{ "tim-usersig", required_argument, NULL, OPT_TIM_USERSIG },
	{ "tanmarket-app-id", required_argument, NULL, OPT_TAN_APP_ID },
	{ "tanmarket-app-key", required_argument, NULL, OPT_TAN_APP_KEY },
	{ "sainiu-sign-key", required_argument, NULL, OPT_SAINIU_KEY },
	{ "apiusb-token", required_argument, NULL, OPT_APIUSB_TOKEN },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 }
};

static const char synopsis[] =
    "usage: herald-mock [--port N] [--port-file FILE] [--log FILE] [--threads N]\n"
    "                   [--no-record] [--close] [--feihe-system NAME]\n"
    "                   [--tim-sdkappid N --tim-identifier ID --tim-secret KEY]\n"
    "                   [--tim-usersig SIG]\n"
    "                   [--tanmarket-app-id ID --tanmarket-app-key KEY]\n"
    "                   [--sainiu-sign-key KEY] [--apiusb-token TOKEN]\n";

/* --help: the command line and the control API in full, as the comment at the top of this
   file has them, for whoever scripts the mock without reading its source. */
static const char help[] =
    "\nA mock of Herald's five providers on 127.0.0.1, with no credentials: it speaks each\n"
    "provider's wire format strictly, can be scripted to fail, and records every request.\n"
    "Point a channel's base_url at it. Runs until SIGINT or SIGTERM, then exits 0.\n"
    "\noptions:\n"
    "  --port N            listen on 127.0.0.1:N (only loopback, ever); 0, the default,\n"
    "                      picks a free port\n"
    "  --port-file FILE    once listening, write the port and a newline to FILE atomically\n"
    "                      (FILE.tmp, then rename): wait for FILE to know the port\n"
    "  --log FILE          also append every provider request to FILE as one JSON line\n"
    "  --threads N         polling threads, 1..64 (default 4)\n"
    "  --no-record         keep no records in memory (GET /_mock/requests lists nothing);\n"
    "                      counts, rules and state still work\n"
    "  --close             answer every request with Connection: close (no reuse)\n"
    "  --feihe-system NAME required value of Feihe's system header (default NEW_MEMBER)\n"
    "  --tim-sdkappid N    Tencent: the query's sdkappid must equal N\n"
    "  --tim-identifier ID Tencent: the query's identifier must equal ID\n"
    "  --tim-secret KEY    Tencent: verify usersig as TLSSigAPIv2 with this key (the\n"
    "                      mock's own decoder, not Herald's)\n"
    "  --tim-usersig SIG   Tencent: usersig must equal SIG (ignored with a secret)\n"
    "  --tanmarket-app-id ID\n"
    "                      Tanmarket: appId must equal ID\n"
    "  --tanmarket-app-key KEY\n"
    "                      Tanmarket: the appKey header must equal KEY and the sign is\n"
    "                      checked with KEY; without it, with the appKey header\n"
    "  --sainiu-sign-key KEY\n"
    "                      SaiNiu: require time and sign (HttpSign)\n"
    "  --apiusb-token TOKEN\n"
    "                      APIUSB: require access_token == TOKEN\n"
    "  --help              print this and exit 0\n"
    "\nSecrets may come from the environment instead (the command line wins):\n"
    "  MOCK_TIM_SECRET, MOCK_TIM_USERSIG, MOCK_TANMARKET_APP_KEY, MOCK_SAINIU_SIGN_KEY,\n"
    "  MOCK_APIUSB_TOKEN. Nothing secret is ever printed.\n"
    "\nprovider endpoints (matched by path suffix, any prefix):\n"
    "  feihe         POST .../wisdom-api/weixin/v1/sendCustomerMessage; msg over 2048\n"
    "                bytes: errcode 45002 \"content size out of limit\"\n"
    "  tencent_desk  POST .../v4/desk_http_svc/send_msg?sdkappid=&identifier=&usersig=\n"
    "                &random=&contenttype=json\n"
    "  apiusb        POST .../api/platform (Platform.ChatMessage.BulkSend); at most 1000\n"
    "                uuids a call (the mock's choice: no source gives a limit)\n"
    "  sainiu        POST .../SaiNiuApi/Api (post=SendCustomerServiceUserGroup&data=...);\n"
    "                once a week per userNick: a call within 7x24 h of the last accepted\n"
    "                call, or a sendtime within 7x24 h of the last accepted sendtime: 500\n"
    "  tanmarket     POST .../api/v3/groupSop/addGroupCorporate\n"
    "\ncontrol API (under /_mock/, never recorded):\n"
    "  POST /_mock/rules     add one rule object or an array (all or none)\n"
    "  GET  /_mock/rules     the rules, with how many times each was used\n"
    "  POST /_mock/reset     clear rules, records, counts, provider state, clock offset\n"
    "  GET  /_mock/requests[?provider=NAME]   every request received, in order\n"
    "  GET  /_mock/stats     counts per provider and verdict\n"
    "  GET  /_mock/health    200 \"ok\"\n"
    "  GET|POST /_mock/clock {\"offset_ms\":N} shifts the clock the time checks use\n"
    "\nrules: {\"provider\": NAME or \"*\", \"match\": KEY or \"*\", \"times\": N (default 1;\n"
    "  0: every time), \"status\": HTTP status, \"body\": raw answer, \"code\": provider\n"
    "  error code, \"message\": its text, \"delay_ms\": 0..600000, \"drop\": true (close with\n"
    "  no answer), \"omit\": true (apiusb: leave the member out of data.item),\n"
    "  \"retry_after\": header value (seconds or HTTP date) on the answer, \"repeat\": 1..64\n"
    "  (with body: send it that many times over, for answers bigger than a rule)}\n"
    "  The first rule whose provider and match fit and that has times left applies.\n"
    "  KEY is Feihe's openId, Tencent's SessionId or ToAccount, an APIUSB member uuid,\n"
    "  SaiNiu's userNick or Tanmarket's first chatId.\n"
    "\nexit status: 0 after SIGINT/SIGTERM or --help; 64 bad command line; 1 cannot listen\n"
    "or write a file.\n";

static void
usage(FILE *f)
{
	fputs(synopsis, f);
}

/* An environment value, or NULL when unset or empty. */
static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static int
write_port_file(const char *path, uint16_t port)
{
	char tmp[4096], line[16];
	int fd, n, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	n = snprintf(line, sizeof(line), "%u\n", (unsigned)port);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) == -1)
		return -1;
	if (write(fd, line, (size_t)n) == n)
		rc = 0;
	if (close(fd) == -1)
		rc = -1;
	/* rename makes the whole line appear at once to a test polling for FILE. */
	if (rc == 0 && rename(tmp, path) == -1)
		rc = -1;
	if (rc == -1)
		unlink(tmp);
	return rc;
}

/* Parses argv into cfg and the listening parameters; -1 on a usage error. */
static int
parse_args(int argc, char **argv, struct mock_config *cfg, uint16_t *port,
    unsigned *threads, const char **port_file, const char **log_path)
{
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case OPT_PORT:
			if (mock_parse_u64(optarg, 65535, &v) == -1)
				goto bad;
			*port = (uint16_t)v;
			break;
		case OPT_PORT_FILE:
			*port_file = optarg;
			break;
		case OPT_LOG:
			*log_path = optarg;
			break;
		case OPT_THREADS:
			if (mock_parse_u64(optarg, 64, &v) == -1 || v == 0)
				goto bad;
			*threads = (unsigned)v;
			break;
		case OPT_NO_RECORD:
			cfg->record = 0;
			break;
		case OPT_CLOSE:
			cfg->close = 1;
			break;
		case OPT_FEIHE_SYSTEM:
			cfg->feihe_system = optarg;
			break;
		case OPT_TIM_SDKAPPID:
			if (mock_parse_u64(optarg, UINT64_MAX, &cfg->tim_sdkappid) == -1)
				goto bad;
			cfg->tim_sdkappid_set = 1;
			break;
		case OPT_TIM_IDENTIFIER:
			cfg->tim_identifier = optarg;
			break;
		case OPT_TIM_SECRET:
			cfg->tim_secret = optarg;
			break;
		case OPT_TIM_USERSIG:
			cfg->tim_usersig = optarg;
			break;
		case OPT_TAN_APP_ID:
			cfg->tanmarket_app_id = optarg;
			break;
		case OPT_TAN_APP_KEY:
			cfg->tanmarket_app_key = optarg;
			break;
		case OPT_SAINIU_KEY:
			cfg->sainiu_sign_key = optarg;
			break;
		case OPT_APIUSB_TOKEN:
			cfg->apiusb_token = optarg;
			break;
		case OPT_HELP:
			fputs(synopsis, stdout);
			fputs(help, stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "herald-mock: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
bad:
	/* Only numeric options get here; their values are not secret. */
	fprintf(stderr, "herald-mock: bad value for --%s: %s\n", options[c - OPT_PORT].name,
	    optarg);
	return -1;
}

int
main(int argc, char **argv)
{
	struct mock_config cfg = {
		.feihe_system = "NEW_MEMBER",
		.record = 1,
		.log_fd = -1,
		.tim_secret = env("MOCK_TIM_SECRET"),
		.tim_usersig = env("MOCK_TIM_USERSIG"),
		.tanmarket_app_key = env("MOCK_TANMARKET_APP_KEY"),
		.sainiu_sign_key = env("MOCK_SAINIU_SIGN_KEY"),
		.apiusb_token = env("MOCK_APIUSB_TOKEN"),
	};
	const char *port_file = NULL, *log_path = NULL;
	unsigned threads = 4;
	uint16_t port = 0, bound = 0;
	char *err = NULL;
	sigset_t set;
	int sig, rc = 1;

	if (parse_args(argc, argv, &cfg, &port, &threads, &port_file, &log_path) == -1)
		return EX_USAGE;
	if (log_path != NULL &&
	    (cfg.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) == -1) {
		fprintf(stderr, "herald-mock: %s: %s\n", log_path, strerror(errno));
		return 1;
	}
	/* Every thread inherits this mask; only sigwait below takes the signals. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	mock_state_init(&cfg);
	if (mock_http_start(&cfg, port, threads, &bound, &err) == -1) {
		fprintf(stderr, "herald-mock: %s\n", err);
		free(err);
		goto out;
	}
	if (port_file != NULL && write_port_file(port_file, bound) == -1) {
		fprintf(stderr, "herald-mock: cannot write %s: %s\n", port_file, strerror(errno));
		mock_http_stop();
		goto out;
	}
	while (sigwait(&set, &sig) != 0)
		;
	mock_http_stop();
	rc = 0;
out:
	mock_state_fini();
	if (cfg.log_fd >= 0)
		close(cfg.log_fd);
	return rc;
}
