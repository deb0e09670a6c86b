/*
 * migrations: the SQL files of migrations/sqlite/, compiled in by cmake/embed_sql.cmake.
 * Only the store reads these.
 */
#ifndef HERALD_MIGRATIONS_H
#define HERALD_MIGRATIONS_H

struct migration {
	int version;        /* NNNN of migrations/NNNN_name.sql */
	const char *name;   /* the file name without .sql */
	const char *sql;    /* the file's text */
};

extern const struct migration migrations[];
extern const int migrations_count;

#endif
