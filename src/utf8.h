/*
 * utf8.h: UTF-8 checks and terminal-width arithmetic for text Herald shows or
 * forwards (recipient files, rendered messages, CLI tables). Pure functions,
 * no state, safe from any thread.
 */
#ifndef HERALD_UTF8_H
#define HERALD_UTF8_H

#include <stddef.h>

/*
 * Returns 1 if s[0..len) is well-formed UTF-8 (shortest form only, no
 * surrogates, nothing above U+10FFFF), else 0. On 0, *bad_at (if bad_at is
 * not NULL) gets the byte offset where the first ill-formed sequence starts;
 * on 1 it is left untouched. NUL bytes are well-formed (U+0000); callers that
 * need C strings check for them separately.
 */
int utf8_valid(const char *s, size_t len, size_t *bad_at);

/*
 * Returns the terminal columns the NUL-terminated UTF-8 string s occupies:
 * East Asian Wide and Fullwidth characters count 2, combining marks and
 * zero-width characters 0, everything else 1. An ill-formed byte counts as
 * one column, so the result is defined for any input. s == NULL gives 0.
 */
int utf8_width(const char *s);

/*
 * Returns a new string (caller frees) holding as much of s as fits in
 * max_cols columns. When s does not fit, it is cut on a character boundary
 * and "…" is appended; the ellipsis takes one of the max_cols columns.
 * Combining marks stay with the character before them. max_cols <= 0 gives
 * "" for any s. Returns NULL only when out of memory (or s is NULL).
 */
char *utf8_truncate(const char *s, int max_cols);

/*
 * Returns a new string (caller frees) in which every byte a terminal or a log reader could
 * take for a command is written out as \xNN: C0 controls (tab, CR and LF too, unless
 * keep_spacing turns those into spaces), DEL, the C1 controls U+0080..U+009F and bytes of
 * ill-formed UTF-8. So an ESC sequence cannot reach a terminal and a newline cannot forge a log
 * line. NULL only when out of memory (or s is NULL).
 */
char *utf8_escape_controls(const char *s, int keep_spacing);

#endif
