/*
 * recipients.h: a streaming reader for recipient files (SPEC §3,
 * "recipients_file"). Records come out one at a time, each as the same JSON
 * shape an inline recipient has in a campaign file, with the physical line it
 * started on, so import can validate them and point at the offending line.
 * Memory stays bounded by the longest record (capped at 1 MiB), never by the
 * size of the file.
 *
 * Formats, chosen by name: a path ending in ".jsonl" (any case) is JSON Lines,
 * anything else is CSV with a header row. Both may start with a UTF-8 BOM,
 * take LF or CRLF line ends and skip blank lines.
 *
 * CSV follows RFC 4180: comma separated, fields optionally double-quoted, ""
 * inside quotes for a quote, quoted fields may hold commas and line breaks. The
 * header must have no empty or duplicate names and name at least one of id,
 * session_id or chat_id. The reserved columns id, enrolled_at, session_id,
 * chat_id, chat_owner and timezone become top-level string members (an empty cell
 * leaves the member out); every other column becomes a string member of
 * "vars" (an empty cell is ""). Every cell must be valid UTF-8 without NUL
 * bytes, and every record must have as many fields as the header.
 *
 * JSON Lines: each non-blank line must be valid UTF-8 holding one JSON
 * object, returned as parsed; checking its members is the caller's job.
 *
 * A reader is used by one thread at a time.
 */
#ifndef HERALD_RECIPIENTS_H
#define HERALD_RECIPIENTS_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct recipients_reader;

/*
 * Opens path for reading. Returns a reader the caller closes with
 * recipients_close, or NULL with *err set to a new string the caller frees
 * (e.g. "recipients file \"m.csv\": No such file or directory"). On NULL,
 * errno is that of the failure, so ENOENT/EACCES ("missing") can be told from
 * other errors. Only a regular file is read: a directory fails with EISDIR,
 * anything else (a device, a FIFO, a socket) with EINVAL, without waiting
 * for a FIFO's writer; both messages say "not a regular file". err may be
 * NULL.
 */
struct recipients_reader *recipients_open(const char *path, char **err);

/*
 * Reads the next record. *line gets the 1-based physical line the record
 * starts on (line may be NULL). Returns:
 *    1  *out is a new cJSON object the caller deletes:
 *       {"id", "vars": {...}, "enrolled_at", "session_id", "chat_id",
 *       "chat_owner"}, only the members present (CSV), or the line's object
 *       as parsed (JSON Lines);
 *    0  end of file; every later call returns 0 too;
 *   -1  this record is bad and was skipped: *err says why, starting with
 *       "line N: " (e.g. "line 7: 3 fields, header has 4"); call again to go
 *       on and collect further problems;
 *   -2  fatal (read error, broken header, out of memory): *err says why;
 *       every later call returns -2 with the same message.
 * *out is NULL unless 1 is returned. *err (err may be NULL) is a new string
 * the caller frees on -1 and -2, NULL otherwise.
 */
int recipients_next(struct recipients_reader *r, cJSON **out, long *line, char **err);

/*
 * Bytes consumed so far and the total file size (0 when unknown, e.g. a
 * pipe), for a progress indicator. Either pointer may be NULL.
 */
void recipients_progress(const struct recipients_reader *r, uint64_t *done,
    uint64_t *total);

/* Closes the file and frees the reader. NULL is fine. */
void recipients_close(struct recipients_reader *r);

#endif
