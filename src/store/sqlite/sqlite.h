/*
 * sqlite: the SQLite backend of the store, the embedded default: one database file (WAL),
 * with its lock files beside it. What it opens behaves as store.h says.
 */
#ifndef HERALD_STORE_SQLITE_H
#define HERALD_STORE_SQLITE_H

#include "store.h"

/* As store_open, store_open_existing and store_open_reader, on the SQLite file PATH. */
struct store *sqlite_open(const char *path, char **err);
struct store *sqlite_open_existing(const char *path, int *missing, char **err);
struct store *sqlite_open_reader(const char *path, char **err);

#endif
