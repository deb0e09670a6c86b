/*
 * results: what came back from the wire, waiting to be recorded: store results, the channel
 * events they caused, and the strings they point into, all owned here until cleared.
 */
#include <stdlib.h>
#include <string.h>

#include "results.h"

char *
results_keep(struct results *res, const char *s)
{
	char *copy;

	if (!s)
		return NULL;
	if (res->n_strs == res->cap_strs) {
		size_t na = res->cap_strs ? res->cap_strs * 2 : 64;
		char **p = realloc(res->strs, na * sizeof *p);

		if (!p) {
			res->oom = 1;
			return NULL;
		}
		res->strs = p;
		res->cap_strs = na;
	}
	if (!(copy = strdup(s))) {
		res->oom = 1;
		return NULL;
	}
	res->strs[res->n_strs++] = copy;
	return copy;
}

struct store_result *
results_add(struct results *res)
{
	if (res->n == res->cap) {
		size_t na = res->cap ? res->cap * 2 : 64;
		struct store_result *p = realloc(res->r, na * sizeof *p);

		if (!p) {
			res->oom = 1;
			return NULL;
		}
		res->r = p;
		res->cap = na;
	}
	memset(&res->r[res->n], 0, sizeof res->r[0]);
	return &res->r[res->n++];
}

void
results_clear(struct results *res)
{
	size_t i;
	int oom;

	for (i = 0; i < res->n_strs; i++)
		free(res->strs[i]);
	free(res->strs);
	free(res->r);
	free(res->ev);
	oom = res->oom;  /* outlives the results: it is the process's to act on */
	memset(res, 0, sizeof *res);
	res->oom = oom;
}
