/*
 * Provider helpers shared by every module: masking credentials in provider text (whole, cut
 * short, percent-encoded) and the code tables' lookup.
 */
#include <stdlib.h>
#include <string.h>

#include "provider.h"
#include "t.h"

#define SECRET "sk_live_9f8e7d6c5b4a"

/* Masks text in place and returns it. */
static char *
redact(char *text, const char *secret)
{
	provider_redact(text, secret);
	return text;
}

static void
test_redact_whole_and_encoded(void)
{
	char a[] = "bad key " SECRET " twice " SECRET;
	char b[] = "query usersig=ab%2Fcd%3Def12&x=1";
	char c[] = "short abc12 stays";

	T_EQ_STR(redact(a, SECRET), "bad key ******************** twice ********************");
	T_EQ_STR(redact(b, "ab/cd=ef12"), "query usersig=**************&x=1");
	T_EQ_STR(redact(c, "abc12"), "short abc12 stays");  /* under 6 bytes: left alone */
}

/* A provider text bounded by provider_text ends with "…" where it was cut: an echo of the
   secret that the cut split must still be masked, whole or encoded. */
static void
test_redact_cut_short(void)
{
	char in[600], *t;
	size_t at;

	for (at = 495; at < 512; at++) {
		memset(in, 'x', at);
		strcpy(in + at, SECRET " and more text after it");
		t = provider_text(in);
		provider_redact(t, SECRET);
		T_CHECK(strstr(t, "sk_liv") == NULL);
		T_CHECK(strstr(t, "9f8e7d") == NULL);
		free(t);
	}
	{
		char enc[] = "echo ab%2Fcd%3D";
		T_EQ_STR(redact(enc, "ab/cd=efgh12345"), "echo **********");
	}
}

static void
test_code_table(void)
{
	static const struct provider_code table[] = {
		{0, PROVIDER_SENT, 0, 0, "ok"},
		{406, PROVIDER_PERMANENT, 1, 0, "token"},
		{0, PROVIDER_PERMANENT, 0, 0, NULL},
	};

	T_CHECK(provider_code_find(table, 0) == &table[0]);
	T_EQ_INT(provider_code_find(table, 406)->channel_fault, 1);
	T_CHECK(provider_code_find(table, 407) == NULL);
}

int
main(void)
{
	T_RUN(test_redact_whole_and_encoded);
	T_RUN(test_redact_cut_short);
	T_RUN(test_code_table);
	return t_report();
}
