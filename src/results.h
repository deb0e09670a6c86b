/*
 * results: what the scheduler learnt and has not yet written: one store_result per delivery
 * settled, the channel events they caused, and copies of every string they point to. Owned by
 * whoever holds the struct; results_clear frees it all.
 */
#ifndef HERALD_RESULTS_H
#define HERALD_RESULTS_H

#include <stddef.h>

#include "store.h"

/* Results waiting to be recorded, with the strings they point to. */
struct results {
	struct store_result *r;       /* n of them */
	size_t n, cap;
	char **strs;                  /* owned strings the results point into */
	size_t n_strs, cap_strs;
	struct store_channel_event *ev;  /* channel suspensions and recoveries, n_ev of them */
	size_t n_ev, cap_ev;
	int oom;                      /* a result or one of its strings could not be kept: the
	                                 process must stop, so the next start settles what is left */
};

/* Frees the results and their strings; keeps only oom, which is the process's to act on. */
void results_clear(struct results *res);
/* A copy of s kept with the results (NULL for NULL, or when out of memory: oom is set). */
char *results_keep(struct results *res, const char *s);
/* A new zeroed result at the end (NULL when out of memory: oom is set). Valid until the next
   results_add. */
struct store_result *results_add(struct results *res);

#endif
