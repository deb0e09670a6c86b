/*
 * util: the few helpers every module needs: error strings, integer parsing, whole-file
 * reads and a growable byte buffer.
 */
#ifndef HERALD_UTIL_H
#define HERALD_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Sets *err (if err is non-NULL) to a new formatted string, freeing nothing. Returns -1. */
int util_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict decimal int64: optional '-', digits only, no overflow. 0 / -1. */
int util_parse_i64(const char *s, int64_t *out);
/* A cJSON number that is an exact integer within +-2^53. 0 / -1. */
int util_json_i64(const cJSON *v, int64_t *out);

/* Reads a whole file (at most max bytes) into a new NUL-terminated buffer (caller frees).
   0 / -1 with errno set (EFBIG when larger than max). */
int util_read_file(const char *path, size_t max, char **out, size_t *len);
/* 1 if the JSON text spells a NUL character (\u0000) inside a string, with *at (if not NULL)
   set to the byte offset of its backslash; else 0. A C string would end there, silently
   changing the value (two keys that differ after it would be one), so callers refuse it. */
int util_json_has_nul(const char *text, size_t len, size_t *at);

/* A growable byte buffer; always NUL-terminated when len > 0. */
struct buf {
	char *data;   /* malloc'd, owned */
	size_t len;
	size_t cap;
};
int buf_append(struct buf *b, const char *s, size_t n);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *b);

#endif
