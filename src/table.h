/*
 * table: human-readable tables whose columns line up in a terminal even when cells hold
 * Chinese text (East Asian wide characters take two columns).
 */
#ifndef HERALD_TABLE_H
#define HERALD_TABLE_H

#include <stdio.h>

struct table;

/* A table with n_cols columns and these headers (copied). NULL on out of memory. */
struct table *table_new(int n_cols, const char *const *headers);
/* Sets the widest a column may print (cells are cut with "…"); 0 = no limit. */
void table_max_width(struct table *t, int col, int max_cols);
/* Right-aligns a column (numbers). */
void table_align_right(struct table *t, int col);
/* Appends a row of n_cols cells (copied; NULL prints as "-"). 0 / -1. */
int table_add(struct table *t, const char *const *cells);
/* Prints header and rows, columns separated by two spaces, no trailing blanks. */
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);  /* NULL ok */

#endif
