/*
 * fuzz_config: the channels file loader (src/config.c). The input is written to a file
 * in the harness's directory and loaded with config_load. A few variables are set for
 * K_env keys to name (FUZZ_SECRET, FUZZ_NUM, FUZZ_BOOL, FUZZ_DURATION, FUZZ_URL).
 * Invariants: an error never holds the value of a variable unless the input itself
 * spells it out; every loaded channel is found by name; a ready channel is usable for
 * sending and an unready one is not.
 */
#define _GNU_SOURCE		/* memmem */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define SECRET "fzSecret-7Qm2vX"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("FUZZ_SECRET", SECRET, 1);
	setenv("FUZZ_NUM", "1400000000", 1);
	setenv("FUZZ_BOOL", "true", 1);
	setenv("FUZZ_DURATION", "2h30m", 1);
	setenv("FUZZ_URL", "https://example.com/api/", 1);
	unsetenv("FUZZ_UNSET");
	return 0;
}

static void
check_channel(const struct config *c, const struct channel *ch, int ready, int spelt)
{
	char *err = NULL;

	FUZZ_CHECK(ch->name && ch->ops && ch->keys);
	FUZZ_CHECK(config_channel(c, ch->name) != NULL);
	FUZZ_CHECK(ch->max_in_flight >= 1 && ch->max_in_flight <= 1024);
	if (ready) {
		FUZZ_CHECK(ch->base_url != NULL);
		FUZZ_CHECK(strncmp(ch->base_url, "http://", 7) == 0 ||
		           strncmp(ch->base_url, "https://", 8) == 0);
		FUZZ_CHECK(config_usable(ch, CONFIG_NEED_SECRETS, &err) == 0 && err == NULL);
	} else {
		FUZZ_CHECK(config_usable(ch, CONFIG_NEED_SECRETS, &err) == -1);
		FUZZ_CHECK(spelt || err == NULL || !strstr(err, SECRET));
		free(err);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_write("herald.json", data, size);
	struct config *c;
	char *err = NULL;
	int missing = -1, i, spelt = memmem(data, size, SECRET, strlen(SECRET)) != NULL;

	c = config_load(path, &missing, &err);
	FUZZ_CHECK(missing == 0);
	FUZZ_CHECK((c == NULL) == (err != NULL));
	if (err && !spelt)
		FUZZ_CHECK(!strstr(err, SECRET));
	if (c) {
		FUZZ_CHECK(c->n_channels >= 0 && c->n_unready >= 0);
		for (i = 0; i < c->n_channels; i++)
			check_channel(c, &c->channels[i], 1, spelt);
		for (i = 0; i < c->n_unready; i++)
			check_channel(c, &c->unready[i], 0, spelt);
	}
	config_free(c);
	free(err);
	return 0;
}
