/* table: collects rows, then prints them padded by display width, not bytes. */
#include <stdlib.h>
#include <string.h>

#include "table.h"
#include "utf8.h"

struct table {
	int n_cols;
	char **cells;        /* (n_rows + 1) * n_cols strings; row 0 is the header */
	size_t n_rows;       /* data rows */
	size_t alloc_rows;   /* rows cells has room for, header included */
	int *max_width;      /* per column, 0 = none */
	int *right;          /* per column: right-aligned */
};

struct table *
table_new(int n_cols, const char *const *headers)
{
	struct table *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->n_cols = n_cols;
	t->max_width = calloc((size_t)n_cols, sizeof *t->max_width);
	t->right = calloc((size_t)n_cols, sizeof *t->right);
	if (!t->max_width || !t->right || table_add(t, headers) != 0) {
		table_free(t);
		return NULL;
	}
	t->n_rows = 0;  /* the header is row 0, not data */
	return t;
}

void
table_max_width(struct table *t, int col, int max_cols)
{
	t->max_width[col] = max_cols;
}

void
table_align_right(struct table *t, int col)
{
	t->right[col] = 1;
}

int
table_add(struct table *t, const char *const *cells)
{
	size_t row = t->cells ? t->n_rows + 1 : 0;
	int c;

	if (row + 1 > t->alloc_rows) {
		size_t na = t->alloc_rows ? t->alloc_rows * 2 : 16;
		char **p = realloc(t->cells, na * (size_t)t->n_cols * sizeof *p);

		if (!p)
			return -1;
		t->cells = p;
		t->alloc_rows = na;
	}
	for (c = 0; c < t->n_cols; c++) {
		/* A cell is one line (spacing becomes spaces), and nothing in it can drive the
		   terminal: provider messages, keys and ids are anybody's text. */
		char *safe = utf8_escape_controls(cells[c] ? cells[c] : "-", 1);
		char *cell = safe && t->max_width[c] && utf8_width(safe) > t->max_width[c]
		                 ? utf8_truncate(safe, t->max_width[c])
		                 : safe;

		if (cell != safe)
			free(safe);
		if (!cell) {
			while (c-- > 0)
				free(t->cells[row * (size_t)t->n_cols + (size_t)c]);
			return -1;
		}
		t->cells[row * (size_t)t->n_cols + (size_t)c] = cell;
	}
	if (row > 0)
		t->n_rows++;
	return 0;
}

void
table_print(const struct table *t, FILE *out)
{
	int *w = calloc((size_t)t->n_cols, sizeof *w), c;
	size_t r;

	if (!w)
		return;
	for (r = 0; r <= t->n_rows; r++)
		for (c = 0; c < t->n_cols; c++) {
			int cw = utf8_width(t->cells[r * (size_t)t->n_cols + (size_t)c]);

			if (cw > w[c])
				w[c] = cw;
		}
	for (r = 0; r <= t->n_rows; r++) {
		for (c = 0; c < t->n_cols; c++) {
			const char *cell = t->cells[r * (size_t)t->n_cols + (size_t)c];
			int pad = w[c] - utf8_width(cell), last = c == t->n_cols - 1;

			if (c)
				fputs("  ", out);
			if (t->right[c])
				fprintf(out, "%*s%s", pad, "", cell);
			else
				fprintf(out, "%s%*s", cell, last ? 0 : pad, "");
		}
		fputc('\n', out);
	}
	free(w);
}

void
table_free(struct table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; t->cells && i < (t->n_rows + 1) * (size_t)t->n_cols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->max_width);
	free(t->right);
	free(t);
}
