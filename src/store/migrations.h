/*
 * migrations: each backend's SQL files (migrations/sqlite/, migrations/postgres/), compiled in
 * by cmake/embed_sql.cmake. Only the store's backends read these.
 */
#ifndef HERALD_MIGRATIONS_H
#define HERALD_MIGRATIONS_H

struct migration {
	int version;        /* NNNN of migrations/BACKEND/NNNN_name.sql */
	const char *name;   /* the file name without .sql */
	const char *sql;    /* the file's text */
};

extern const struct migration sqlite_migrations[];
extern const int sqlite_migrations_count;
extern const struct migration postgres_migrations[];
extern const int postgres_migrations_count;

#endif
