/*
 * recipients.c: the recipient file reader. The file is read through one
 * fixed buffer; the current record is assembled in a second buffer that grows
 * to the longest record seen and is capped, so memory is constant in the
 * number of records. Line numbers are counted on the bytes actually consumed,
 * which keeps them right after quoted fields that span lines.
 */
#include "recipients.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "utf8.h"
#include "util.h"

/* A record larger than this is reported and skipped rather than buffered. */
#define RECORD_MAX	(1024 * 1024)

/* rd_getc() result for a failed read(); EOF (-1) means end of file. */
#define RD_ERR		(-2)

enum column_kind {
	COL_VAR,
	COL_ID,
	COL_ENROLLED_AT,
	COL_SESSION_ID,
	COL_CHAT_ID,
	COL_CHAT_OWNER,
	COL_TIMEZONE,
};

/* Top-level members in the order an inline recipient is usually written. */
static const struct {
	enum column_kind	 kind;
	const char		*name;
} reserved[] = {
	{ COL_ID, "id" },
	{ COL_ENROLLED_AT, "enrolled_at" },
	{ COL_SESSION_ID, "session_id" },
	{ COL_CHAT_ID, "chat_id" },
	{ COL_CHAT_OWNER, "chat_owner" },
	{ COL_TIMEZONE, "timezone" },
};

struct field {
	size_t	off;	/* offset of the field's first byte in rec */
	size_t	len;	/* bytes, excluding the NUL rec holds after it */
};

struct recipients_reader {
	char		*path;		/* as given to recipients_open, for messages */
	int		 fd;
	int		 jsonl;		/* 1: JSON Lines, 0: CSV */

	unsigned char	 buf[64 * 1024];
	size_t		 pos;		/* next unread byte in buf */
	size_t		 len;		/* valid bytes in buf */
	uint64_t	 buf_off;	/* file offset of buf[0] */
	uint64_t	 total;		/* file size in bytes, 0 if unknown */
	int		 eof;		/* read() has returned 0 */
	long		 line;		/* 1-based line of the next unread byte */

	int		 started;	/* BOM skipped and, for CSV, header read */
	int		 done;		/* end of file was returned */
	int		 failed;	/* a fatal error was returned */
	char		*fatal;		/* its message (NULL if that was lost to OOM) */

	char		*rec;		/* current record's bytes, fields NUL-ended */
	size_t		 rec_len;
	size_t		 rec_cap;
	struct field	*fields;	/* current record's fields (CSV) */
	size_t		 nfields;
	size_t		 fields_cap;
	int		 overflow;	/* record passed RECORD_MAX; bytes dropped */
	int		 oom;		/* an append failed for want of memory */

	char		**cols;		/* header names (CSV) */
	enum column_kind *kinds;	/* what each column becomes */
	size_t		 ncols;
	int		 has_vars;	/* some column is a variable */
};

/* Returns the next byte, EOF at end of file, or RD_ERR with errno set. */
static int
rd_getc(struct recipients_reader *r)
{
	ssize_t	n;
	int	c;

	if (r->pos == r->len) {
		if (r->eof)
			return EOF;
		r->buf_off += r->len;
		r->pos = r->len = 0;
		do
			n = read(r->fd, r->buf, sizeof(r->buf));
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return RD_ERR;
		if (n == 0) {
			r->eof = 1;
			return EOF;
		}
		r->len = (size_t)n;
	}
	c = r->buf[r->pos++];
	if (c == '\n')
		r->line++;
	return c;
}

/* Pushes back the byte rd_getc just returned; never call it after EOF. */
static void
rd_ungetc(struct recipients_reader *r)
{
	r->pos--;
	if (r->buf[r->pos] == '\n')
		r->line--;
}

/*
 * Skips a UTF-8 BOM at the start of the file. Reads until three bytes are
 * buffered so a short first read() cannot split the BOM.
 */
static int
skip_bom(struct recipients_reader *r)
{
	ssize_t	n;

	while (r->len < 3 && !r->eof) {
		do
			n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		while (n == -1 && errno == EINTR);
		if (n == -1)
			return -1;
		if (n == 0)
			r->eof = 1;
		else
			r->len += (size_t)n;
	}
	if (r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
		r->pos = 3;
	return 0;
}

static void
rec_reset(struct recipients_reader *r)
{
	r->rec_len = 0;
	r->nfields = 0;
	r->overflow = 0;
}

static void
rec_add(struct recipients_reader *r, char c)
{
	char	*np;
	size_t	 ncap;

	if (r->overflow || r->oom)
		return;
	if (r->rec_len + 1 > RECORD_MAX) {
		r->overflow = 1;
		return;
	}
	if (r->rec_len == r->rec_cap) {
		ncap = r->rec_cap ? r->rec_cap * 2 : 256;
		if ((np = realloc(r->rec, ncap)) == NULL) {
			r->oom = 1;
			return;
		}
		r->rec = np;
		r->rec_cap = ncap;
	}
	r->rec[r->rec_len++] = c;
}

static void
field_begin(struct recipients_reader *r)
{
	struct field	*nf;
	size_t		 ncap;

	if (r->overflow || r->oom)
		return;
	if (r->nfields == r->fields_cap) {
		ncap = r->fields_cap ? r->fields_cap * 2 : 16;
		if ((nf = realloc(r->fields, ncap * sizeof(*nf))) == NULL) {
			r->oom = 1;
			return;
		}
		r->fields = nf;
		r->fields_cap = ncap;
	}
	r->fields[r->nfields].off = r->rec_len;
	r->fields[r->nfields].len = 0;
	r->nfields++;
}

static void
field_end(struct recipients_reader *r)
{
	struct field	*f;

	if (r->overflow || r->oom || r->nfields == 0)
		return;
	f = &r->fields[r->nfields - 1];
	f->len = r->rec_len - f->off;
	rec_add(r, '\0');
}

static const char *
field_str(const struct recipients_reader *r, size_t i)
{
	return r->rec + r->fields[i].off;
}

/* Names field i (0-based) for a message: its column once the header is known. */
static char *
field_label(const struct recipients_reader *r, size_t i)
{
	char	*s = NULL;

	if (i < r->ncols)
		util_err(&s, "column \"%s\"", r->cols[i]);
	else
		util_err(&s, "field %zu", i + 1);
	return s;
}

static int
is_blank(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/*
 * Reads one CSV record into rec/fields, skipping blank lines. Returns 1 (a
 * record), 0 (end of file), -1 (bad record, consumed to the end of its line,
 * *msg set) or -2 (read error or out of memory, *msg set). *start gets the
 * line the record starts on.
 */
static int
csv_record(struct recipients_reader *r, long *start, char **msg)
{
	enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN, SKIP } st;
	char	*what;
	long	 quote_line = 0;
	int	 c, c2, any, quoted;

again:
	rec_reset(r);
	*start = r->line;
	st = FIELD_START;
	any = quoted = 0;
	field_begin(r);
	for (;;) {
		if ((c = rd_getc(r)) == RD_ERR)
			goto io_error;
		if (c == EOF) {
			if (st == SKIP)
				return -1;
			if (st == QUOTED) {
				util_err(msg, "line %ld: quoted field not closed before end of file",
				    quote_line);
				return -1;
			}
			if (!any)
				return 0;
			field_end(r);
			break;
		}
		any = 1;
		switch (st) {
		case SKIP:
			if (c == '\n')
				return -1;
			continue;
		case FIELD_START:
			if (c == '"') {
				st = QUOTED;
				quote_line = r->line;
				quoted = 1;
				continue;
			}
			st = UNQUOTED;
			/* FALLTHROUGH */
		case UNQUOTED:
			if (c == ',') {
				field_end(r);
				field_begin(r);
				st = FIELD_START;
			} else if (c == '\n') {
				field_end(r);
				goto record;
			} else if (c == '\r') {
				if ((c2 = rd_getc(r)) == RD_ERR)
					goto io_error;
				if (c2 == '\n' || c2 == EOF) {
					field_end(r);
					goto record;
				}
				/* A CR not ending a line is data. */
				rd_ungetc(r);
				rec_add(r, '\r');
			} else if (c == '"') {
				what = field_label(r, r->nfields ? r->nfields - 1 : 0);
				util_err(msg, "line %ld: stray quote in %s (a field holding quotes must be quoted, each quote doubled)",
				    r->line, what ? what : "a field");
				free(what);
				st = SKIP;
			} else
				rec_add(r, (char)c);
			continue;
		case QUOTED:
			if (c == '"')
				st = QUOTE_SEEN;
			else
				rec_add(r, (char)c);
			continue;
		case QUOTE_SEEN:
			if (c == '"') {
				rec_add(r, '"');
				st = QUOTED;
				continue;
			}
			if (c == ',') {
				field_end(r);
				field_begin(r);
				st = FIELD_START;
				continue;
			}
			if (c == '\n') {
				field_end(r);
				goto record;
			}
			if (c == '\r') {
				if ((c2 = rd_getc(r)) == RD_ERR)
					goto io_error;
				if (c2 == '\n' || c2 == EOF) {
					field_end(r);
					goto record;
				}
				rd_ungetc(r);
			}
			what = field_label(r, r->nfields ? r->nfields - 1 : 0);
			util_err(msg, "line %ld: unexpected text after the closing quote of %s",
			    r->line, what ? what : "a field");
			free(what);
			st = SKIP;
			continue;
		}
	}
record:
	if (r->oom) {
		util_err(msg, "out of memory");
		return -2;
	}
	if (r->overflow) {
		util_err(msg, "line %ld: record longer than %d bytes", *start, RECORD_MAX);
		return -1;
	}
	if (!quoted && r->nfields == 1 && is_blank(field_str(r, 0), r->fields[0].len))
		goto again;
	return 1;
io_error:
	free(*msg);
	*msg = NULL;
	util_err(msg, "recipients file \"%s\": %s", r->path, strerror(errno));
	return -2;
}

/* Reads and checks the header. Returns 0, or -2 with *msg set. */
static int
csv_header(struct recipients_reader *r, long *start, char **msg)
{
	size_t	i, j, k, bad;
	int	rc, named = 0;

	rc = csv_record(r, start, msg);
	if (rc == 0) {
		util_err(msg, "empty file: no header row");
		return -2;
	}
	if (rc < 0)
		return -2;
	if (r->overflow) {
		util_err(msg, "line %ld: header longer than %d bytes", *start, RECORD_MAX);
		return -2;
	}
	if ((r->cols = calloc(r->nfields, sizeof(*r->cols))) == NULL ||
	    (r->kinds = calloc(r->nfields, sizeof(*r->kinds))) == NULL)
		goto oom;
	for (i = 0; i < r->nfields; i++) {
		const char	*name = field_str(r, i);
		size_t		 len = r->fields[i].len;

		if (len == 0) {
			util_err(msg, "line %ld: header column %zu has no name", *start, i + 1);
			return -2;
		}
		if (!utf8_valid(name, len, &bad) || memchr(name, '\0', len) != NULL) {
			util_err(msg, "line %ld: header column %zu is not valid UTF-8", *start,
			    i + 1);
			return -2;
		}
		for (j = 0; j < i; j++)
			if (strcmp(r->cols[j], name) == 0) {
				util_err(msg, "line %ld: duplicate column \"%s\" in header",
				    *start, name);
				return -2;
			}
		if ((r->cols[i] = strdup(name)) == NULL)
			goto oom;
		r->ncols = i + 1;
		r->kinds[i] = COL_VAR;
		for (k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
			if (strcmp(name, reserved[k].name) == 0)
				r->kinds[i] = reserved[k].kind;
		if (r->kinds[i] == COL_VAR)
			r->has_vars = 1;
		if (r->kinds[i] == COL_ID || r->kinds[i] == COL_SESSION_ID ||
		    r->kinds[i] == COL_CHAT_ID)
			named = 1;
	}
	if (!named) {
		util_err(msg, "line %ld: header has no id, session_id or chat_id column", *start);
		return -2;
	}
	return 0;
oom:
	util_err(msg, "out of memory");
	return -2;
}

/* Turns the current record into a recipient object. Returns 1, -1 or -2. */
static int
csv_build(struct recipients_reader *r, long start, cJSON **out, char **msg)
{
	cJSON	*obj = NULL, *vars = NULL;
	size_t	 i, k, bad;
	int	 rc = -2;

	if (r->nfields != r->ncols) {
		util_err(msg, "line %ld: %zu field%s, header has %zu", start, r->nfields,
		    r->nfields == 1 ? "" : "s", r->ncols);
		rc = -1;
		goto out;
	}
	for (i = 0; i < r->nfields; i++) {
		const char	*s = field_str(r, i);
		size_t		 len = r->fields[i].len;

		if (!utf8_valid(s, len, &bad)) {
			util_err(msg, "line %ld: invalid UTF-8 in column \"%s\" at byte %zu of the cell",
			    start, r->cols[i], bad + 1);
			rc = -1;
			goto out;
		}
		if (memchr(s, '\0', len) != NULL) {
			util_err(msg, "line %ld: NUL byte in column \"%s\"", start, r->cols[i]);
			rc = -1;
			goto out;
		}
	}

	if ((obj = cJSON_CreateObject()) == NULL)
		goto oom;
	for (i = 0; i < r->ncols; i++)
		if (r->kinds[i] == COL_ID && r->fields[i].len > 0 &&
		    cJSON_AddStringToObject(obj, "id", field_str(r, i)) == NULL)
			goto oom;
	if (r->has_vars) {
		if ((vars = cJSON_AddObjectToObject(obj, "vars")) == NULL)
			goto oom;
		for (i = 0; i < r->ncols; i++)
			if (r->kinds[i] == COL_VAR &&
			    cJSON_AddStringToObject(vars, r->cols[i], field_str(r, i)) == NULL)
				goto oom;
	}
	for (k = 1; k < sizeof(reserved) / sizeof(reserved[0]); k++)
		for (i = 0; i < r->ncols; i++)
			if (r->kinds[i] == reserved[k].kind && r->fields[i].len > 0 &&
			    cJSON_AddStringToObject(obj, reserved[k].name,
			    field_str(r, i)) == NULL)
				goto oom;
	*out = obj;
	obj = NULL;
	rc = 1;
	goto out;
oom:
	util_err(msg, "out of memory");
out:
	cJSON_Delete(obj);
	return rc;
}

/* Reads, checks and parses one JSON Lines record. Returns 1, 0, -1 or -2. */
static int
jsonl_record(struct recipients_reader *r, long *start, cJSON **out, char **msg)
{
	const char	*end = NULL;
	cJSON		*obj;
	size_t		 bad, len;
	int		 c, any;

again:
	rec_reset(r);
	*start = r->line;
	any = 0;
	for (;;) {
		if ((c = rd_getc(r)) == RD_ERR) {
			util_err(msg, "recipients file \"%s\": %s", r->path, strerror(errno));
			return -2;
		}
		if (c == EOF) {
			if (!any)
				return 0;
			break;
		}
		any = 1;
		if (c == '\n')
			break;
		rec_add(r, (char)c);
	}
	if (r->rec_len > 0 && r->rec[r->rec_len - 1] == '\r')
		r->rec_len--;
	rec_add(r, '\0');
	if (r->oom) {
		util_err(msg, "out of memory");
		return -2;
	}
	if (r->overflow) {
		util_err(msg, "line %ld: line longer than %d bytes", *start, RECORD_MAX);
		return -1;
	}
	len = r->rec_len - 1;
	if (is_blank(r->rec, len))
		goto again;
	if (!utf8_valid(r->rec, len, &bad)) {
		util_err(msg, "line %ld: invalid UTF-8 at byte %zu", *start, bad + 1);
		return -1;
	}
	if ((bad = strlen(r->rec)) < len) {
		util_err(msg, "line %ld: NUL byte at byte %zu", *start, bad + 1);
		return -1;
	}
	if (util_json_has_nul(r->rec, len, &bad)) {
		util_err(msg, "line %ld: a string holds a NUL character (\\u0000) at byte %zu", *start,
		         bad + 1);
		return -1;
	}
	if ((obj = cJSON_ParseWithOpts(r->rec, &end, 1)) == NULL) {
		/* cJSON reports where it stopped; that is the byte to look at. */
		if (end != NULL && end >= r->rec && end <= r->rec + len)
			util_err(msg, "line %ld: invalid JSON at byte %zu", *start,
			    (size_t)(end - r->rec) + 1);
		else
			util_err(msg, "line %ld: invalid JSON", *start);
		return -1;
	}
	if (!cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		util_err(msg, "line %ld: not a JSON object", *start);
		return -1;
	}
	*out = obj;
	return 1;
}

/* What a file that is not a regular one is, for the message refusing it. */
static const char *
file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a file";
}

struct recipients_reader *
recipients_open(const char *path, char **err)
{
	struct recipients_reader	*r = NULL;
	struct stat			 st;
	size_t				 n;
	int				 saved;

	if (err != NULL)
		*err = NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto fail;
	r->fd = -1;
	r->line = 1;
	if ((r->path = strdup(path)) == NULL)
		goto fail;
	/*
	 * Only a regular file has an end: /dev/zero or /dev/urandom would be read forever, and
	 * opening a FIFO blocks until something writes to it, so the open must not wait
	 * (O_NONBLOCK) and anything but a regular file is refused before the first read.
	 */
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		goto fail;
	if (fstat(r->fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		util_err(err, "recipients file \"%s\": not a regular file (%s)", path,
		    file_kind(st.st_mode));
		errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
		goto fail;
	}
	if (fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) & ~O_NONBLOCK) == -1)
		goto fail;
	r->total = (uint64_t)st.st_size;
	n = strlen(path);
	r->jsonl = n >= 6 && strcasecmp(path + n - 6, ".jsonl") == 0;
	return r;
fail:
	saved = errno;
	if (err != NULL && *err == NULL)
		util_err(err, "recipients file \"%s\": %s", path, strerror(saved));
	recipients_close(r);
	errno = saved;
	return NULL;
}

int
recipients_next(struct recipients_reader *r, cJSON **out, long *line, char **err)
{
	char	*msg = NULL;
	long	 start;
	int	 rc = -2;

	*out = NULL;
	if (err != NULL)
		*err = NULL;
	start = r->line;
	if (r->failed) {
		msg = r->fatal != NULL ? strdup(r->fatal) : NULL;
		goto out;
	}
	if (r->done) {
		rc = 0;
		goto out;
	}
	if (!r->started) {
		if (skip_bom(r) == -1) {
			util_err(&msg, "recipients file \"%s\": %s", r->path, strerror(errno));
			goto out;
		}
		if (!r->jsonl && csv_header(r, &start, &msg) == -2)
			goto out;
		r->started = 1;
	}

	if (r->jsonl)
		rc = jsonl_record(r, &start, out, &msg);
	else if ((rc = csv_record(r, &start, &msg)) == 1)
		rc = csv_build(r, start, out, &msg);
out:
	if (rc == 0)
		r->done = 1;
	if (rc == -2 && !r->failed) {
		r->failed = 1;
		r->fatal = msg != NULL ? strdup(msg) : NULL;
	}
	if (line != NULL)
		*line = start;
	if (err != NULL)
		*err = msg;
	else
		free(msg);
	return rc;
}

void
recipients_progress(const struct recipients_reader *r, uint64_t *done, uint64_t *total)
{
	if (done != NULL)
		*done = r->buf_off + r->pos;
	if (total != NULL)
		*total = r->total;
}

void
recipients_close(struct recipients_reader *r)
{
	size_t	i;

	if (r == NULL)
		return;
	if (r->fd != -1)
		close(r->fd);
	for (i = 0; i < r->ncols; i++)
		free(r->cols[i]);
	free(r->cols);
	free(r->kinds);
	free(r->rec);
	free(r->fields);
	free(r->fatal);
	free(r->path);
	free(r);
}
