/*
 * httpd: what `herald run --listen ADDR:PORT` serves, on libmicrohttpd's own thread, never
 * the scheduler's: GET /metrics (Prometheus text format 0.0.4), GET /healthz and GET / (a
 * self-contained status page of aggregates). What needs the database is read on a separate
 * read-only connection (store_open_reader), so a scrape neither takes the write lock nor
 * slows dispatch; the counters come from metrics.h.
 */
#ifndef HERALD_HTTPD_H
#define HERALD_HTTPD_H

#include "config.h"

struct httpd;

/*
 * Checks an address: "A.B.C.D:PORT", "[IPv6]:PORT", or ":PORT" / "PORT" for 127.0.0.1.
 * PORT 0 asks for a free port. 0 / -1 with *err.
 */
int httpd_check_addr(const char *text, char **err);

/* Binds addr and starts serving db_path; cfg's channels get their series at once (the
   config need not outlive the call). Logs the address it listens on, the bound port
   included. Call with the signals the process handles blocked: the server's thread inherits
   the mask. NULL with *err. */
struct httpd *httpd_start(const char *addr, const char *db_path, const struct config *cfg,
                          char **err);
/* Stops serving and frees everything; NULL ok. */
void httpd_stop(struct httpd *h);

#endif
