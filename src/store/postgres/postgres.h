/*
 * postgres: the PostgreSQL backend of the store (SPEC §6), for several `herald run` nodes on
 * one database. --db is a libpq connection URI (postgresql://...); every libpq option, TLS
 * included, passes through it. What it opens behaves as store.h says.
 */
#ifndef HERALD_STORE_POSTGRES_H
#define HERALD_STORE_POSTGRES_H

#include "store.h"

/* As store_open, store_open_existing and store_open_reader, on the database URI names. */
struct store *postgres_open(const char *uri, char **err);
struct store *postgres_open_existing(const char *uri, int *missing, char **err);
struct store *postgres_open_reader(const char *uri, char **err);

#endif
