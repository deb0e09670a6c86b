/*
 * fuzz_recipients: the recipient file reader (src/recipients.c). Built twice: as
 * fuzz_recipients_csv and fuzz_recipients_jsonl (RECIPIENTS_JSONL 0 or 1). The input is
 * written to a file named for its format (the reader picks the format by name and
 * reads only regular files). Invariants: records start on ascending lines; CSV records hold only strings
 * (vars an object of strings), all valid UTF-8; an end or a fatal error stays.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "recipients.h"
#include "utf8.h"

#ifndef RECIPIENTS_JSONL
#error "define RECIPIENTS_JSONL as 0 or 1"
#endif
#define RECIPIENTS_FILE (RECIPIENTS_JSONL ? "members.jsonl" : "members.csv")

/* The cap on records read per input: a long file proves nothing more. */
#define MAX_RECORDS 10000

static int
utf8_str(const char *s)
{
	return s && utf8_valid(s, strlen(s), NULL);
}

static void
check_csv_record(const cJSON *rec)
{
	const cJSON *m, *v;

	FUZZ_CHECK(cJSON_IsObject(rec));
	cJSON_ArrayForEach(m, rec) {
		FUZZ_CHECK(utf8_str(m->string));
		if (strcmp(m->string, "vars") == 0) {
			FUZZ_CHECK(cJSON_IsObject(m));
			cJSON_ArrayForEach(v, m)
				FUZZ_CHECK(cJSON_IsString(v) && utf8_str(v->string) && utf8_str(v->valuestring));
		} else {
			FUZZ_CHECK(cJSON_IsString(m) && utf8_str(m->valuestring) && m->valuestring[0]);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct recipients_reader *r;
	cJSON *rec = NULL;
	char *err = NULL;
	long line = 0, last = 0;
	int rc, n;

	r = recipients_open(fuzz_write(RECIPIENTS_FILE, data, size), &err);
	FUZZ_CHECK(r != NULL && err == NULL);
	for (n = 0; n < MAX_RECORDS; n++) {
		rc = recipients_next(r, &rec, &line, &err);
		FUZZ_CHECK(rc >= -2 && rc <= 1);
		FUZZ_CHECK((rc == 1) == (rec != NULL));
		FUZZ_CHECK((rc < 0) == (err != NULL));
		if (rc == 1) {
			FUZZ_CHECK(line > last);
			last = line;
			if (!RECIPIENTS_JSONL)
				check_csv_record(rec);
			else
				FUZZ_CHECK(cJSON_IsObject(rec));
		}
		cJSON_Delete(rec);
		rec = NULL;
		free(err);
		err = NULL;
		if (rc == 0 || rc == -2) {
			/* Both are final. */
			FUZZ_CHECK(recipients_next(r, &rec, &line, &err) == rc);
			cJSON_Delete(rec);
			free(err);
			break;
		}
	}
	recipients_close(r);
	return 0;
}
