/*
 * log: leveled event lines on stderr, text or JSON. Under systemd, when stderr is the journal,
 * lines carry the journal's own priority prefix and no timestamp: the journal stamps each line
 * itself, and the prefix is how it learns the level (sd-daemon(3)).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "log.h"
#include "utf8.h"

static enum log_format log_fmt = LOG_TEXT;
static enum log_level log_min = LOG_INFO;

static int log_journal;           /* stderr is the journal: "<N>" prefixes, no timestamps */

static const char *const level_names[] = {"debug", "info", "warn", "error"};
/* sd-daemon(3) priorities, indexed like enum log_level: debug, info, warning, err. */
static const char *const journal_prefix[] = {"<7>", "<6>", "<4>", "<3>"};

/*
 * $JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected. It is inherited by
 * children whose stderr may point elsewhere, so it counts only when it names our stderr.
 */
static int
stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	if (!v || sscanf(v, "%ju:%ju%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void
log_init(enum log_format format, enum log_level min_level)
{
	log_fmt = format;
	log_min = min_level;
	log_journal = stderr_is_journal();
}

/* Copies text to out, starting every line after the first with prefix, so a message with a
   newline in it does not leave its second line at the journal's default priority. */
static void
prefix_lines(const char *text, const char *prefix, char *out, size_t size)
{
	size_t n = 0, plen = strlen(prefix);

	for (; *text && n + 1 < size; text++) {
		out[n++] = *text;
		if (*text == '\n' && text[1] && n + plen + 1 < size) {
			memcpy(out + n, prefix, plen);
			n += plen;
		}
	}
	out[n] = '\0';
}

/* Formats "2026-11-23T10:00:00.123Z" for now. */
static void
log_stamp(char out[64])
{
	int64_t ms = clock_now_ms();
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char raw[2048], text[2048], stamp[64], line[4096], body[3072], *safe;
	va_list ap;
	int n;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	/* Messages carry provider text, keys and ids: in a text line no control character may
	   forge a second line or drive a terminal (JSON escapes them itself). */
	if (log_fmt == LOG_TEXT && (safe = utf8_escape_controls(raw, 0))) {
		snprintf(text, sizeof text, "%s", safe);
		free(safe);
	} else {
		memcpy(text, raw, sizeof text);
	}
	log_stamp(stamp);
	if (log_fmt == LOG_JSON) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		if (!log_journal)
			cJSON_AddStringToObject(o, "ts", stamp);
		cJSON_AddStringToObject(o, "level", level_names[level]);
		cJSON_AddStringToObject(o, "msg", text);
		s = cJSON_PrintUnformatted(o);
		n = snprintf(line, sizeof line, "%s%s\n", log_journal ? journal_prefix[level] : "",
		             s ? s : "{}");
		cJSON_free(s);
		cJSON_Delete(o);
	} else if (log_journal) {
		prefix_lines(text, journal_prefix[level], body, sizeof body);
		n = snprintf(line, sizeof line, "%s%s: %s\n", journal_prefix[level], level_names[level],
		             body);
	} else {
		n = snprintf(line, sizeof line, "%s herald %s: %s\n", stamp, level_names[level], text);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1, line[n - 1] = '\n';
	/* One write per line keeps lines whole when threads log at once. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
