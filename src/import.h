/*
 * import: `herald import`. Streams a campaign's recipients (inline, then the file) through
 * campaign validation into staging tables, then writes them in transactions that each hold
 * the write lock briefly (see store/sqlite/import.c): on any problem nothing is written, and every
 * problem (up to a cap) is reported with its location.
 */
#ifndef HERALD_IMPORT_H
#define HERALD_IMPORT_H

#include <stdint.h>

#include "campaign.h"
#include "config.h"
#include "store.h"

struct import_summary {
	char key[256];
	char timezone[64];
	int64_t recipients;           /* listed in the definition */
	int64_t recipients_new;
	int64_t recipients_changed;
	int64_t recipients_removed;
	int64_t deliveries;           /* (recipient, step) pairs the definition schedules */
	int64_t deliveries_written;   /* inserted or rescheduled by this import */
	int64_t first_due_ms;         /* -1 when none */
	int64_t last_due_ms;
	int changed;                  /* 1 if the import wrote anything */
};

struct import_opts {
	int dry_run;                  /* validate and summarise by reading; write nothing */
	int progress;                 /* show progress on stderr */
	int max_problems;             /* stop reporting after this many (0 = 50) */
};

/*
 * Imports the definition at path ("-" = stdin). s may be NULL for a dry run without a
 * database. Returns an enum campaign_rc (the exit code).
 */
enum campaign_rc import_run(struct store *s, const struct config *cfg, const char *path,
                            const struct import_opts *opts, int64_t now_ms,
                            campaign_problem_fn *problem, void *arg, struct import_summary *out);

#endif
