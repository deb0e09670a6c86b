/*
 * tz_t.h: what the time-zone tests share (include after t.h): loading a zone from the
 * system's database, a failed check when it cannot be loaded.
 */
#ifndef HERALD_TZ_T_H
#define HERALD_TZ_T_H

#include <stdio.h>
#include <stdlib.h>

#include "tz.h"

/* The zone name, or NULL (a failed check, the reason printed). */
static inline struct tz *
load(const char *name)
{
	char *err = NULL;
	struct tz *z = tz_load(name, &err);

	if (z == NULL)
		fprintf(stderr, "tz_load(%s): %s\n", name, err ? err : "(no message)");
	T_CHECK(z != NULL);
	T_CHECK(z == NULL || err == NULL);
	free(err);
	return z;
}

#endif
