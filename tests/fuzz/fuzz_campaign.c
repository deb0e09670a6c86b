/*
 * fuzz_campaign: the campaign definition parser and validator (src/campaign.c), as
 * import uses it: campaign_parse on the input, then campaign_recipient on each inline
 * recipient. The channels are those of examples/herald.json (one per provider, with
 * secrets given inline), loaded once from the harness's directory. Nothing touches a
 * database; a recipients_file is resolved but not read (fuzz_recipients_* read files).
 * Invariants: the result agrees with the problems reported; problems are valid UTF-8;
 * a valid definition has a key, a channel, a zone and steps in range.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "campaign.h"
#include "fuzz.h"
#include "utf8.h"

/* Inline recipients checked per input: the rest only repeat the work. */
#define MAX_RECIPIENTS 200

static struct config *cfg;

static const char channels[] =
    "{\"channels\": {\n"
    " \"feihe-prod\": {\"provider\": \"feihe\", \"base_url\": \"http://127.0.0.1:9\","
    " \"system\": \"NEW_MEMBER\"},\n"
    " \"desk\": {\"provider\": \"tencent_desk\", \"base_url\": \"http://127.0.0.1:9\","
    " \"sdkappid\": 1400000000, \"identifier\": \"admin\", \"secret_key\": \"fuzz\","
    " \"from_account\": \"@customer_service_account\"},\n"
    " \"members\": {\"provider\": \"apiusb\", \"base_url\": \"http://127.0.0.1:9\","
    " \"access_token\": \"fuzz\", \"batch_size\": 100},\n"
    " \"shop-notify\": {\"provider\": \"sainiu\", \"base_url\": \"http://127.0.0.1:9\","
    " \"lead\": \"2h30m\"},\n"
    " \"groups\": {\"provider\": \"tanmarket\", \"base_url\": \"http://127.0.0.1:9\","
    " \"app_id\": \"demo-app\", \"app_key\": \"fuzz\"}\n"
    "}}\n";

static int problems;

static void
problem(void *arg, const char *msg)
{
	(void)arg;
	FUZZ_CHECK(msg != NULL && msg[0] != '\0');
	FUZZ_CHECK(utf8_valid(msg, strlen(msg), NULL));
	problems++;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *err = NULL;
	int missing;

	(void)argc;
	(void)argv;
	cfg = config_load(fuzz_write("herald.json", channels, sizeof channels - 1), &missing, &err);
	if (!cfg)
		fuzz_fail(__FILE__, __LINE__, err ? err : "config_load");
	return 0;
}

static void
check_valid(const struct campaign_def *d)
{
	int i;

	FUZZ_CHECK(d->row.key[0] && d->row.channel[0] && d->row.provider[0]);
	FUZZ_CHECK(d->channel != NULL && d->tz != NULL);
	FUZZ_CHECK(d->n_steps >= 1 && d->steps != NULL);
	FUZZ_CHECK(d->recipients != NULL || d->recipients_file != NULL);
	for (i = 0; i < d->n_steps; i++) {
		FUZZ_CHECK(d->steps[i].day >= 1);
		FUZZ_CHECK(d->steps[i].minutes >= 0 && d->steps[i].minutes < 24 * 60);
		FUZZ_CHECK(d->steps[i].message != NULL && d->steps[i].message_json != NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct campaign_def def;
	struct campaign_recipient out;
	enum campaign_rc rc;
	const cJSON *rec;
	char *err, path[4200];
	int n = 0;

	/* The problem callback is a plain function: the count lives here, not in arg. */
	problems = 0;
	snprintf(path, sizeof path, "%s/campaign.json", fuzz_dir());
	rc = campaign_parse(path, (const char *)data, size, cfg, &def, problem, NULL);
	FUZZ_CHECK(rc == CAMPAIGN_OK || rc == CAMPAIGN_INVALID || rc == CAMPAIGN_NOINPUT ||
	           rc == CAMPAIGN_CONFIG || rc == CAMPAIGN_ERROR);
	if (rc == CAMPAIGN_OK) {
		FUZZ_CHECK(problems == 0);
		check_valid(&def);
		cJSON_ArrayForEach(rec, def.recipients) {
			if (n++ == MAX_RECIPIENTS)
				break;
			err = NULL;
			if (campaign_recipient(&def, rec, &out, &err) == 0) {
				FUZZ_CHECK(err == NULL && out.rid && out.rid[0]);
			} else {
				FUZZ_CHECK(err == NULL || utf8_valid(err, strlen(err), NULL));
				free(err);
			}
		}
	} else if (rc == CAMPAIGN_INVALID) {
		FUZZ_CHECK(problems > 0);
	}
	campaign_def_free(&def);
	return 0;
}
