/* log: leveled event lines on stderr, text or JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "log.h"

static enum log_format log_fmt = LOG_TEXT;
static enum log_level log_min = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_init(enum log_format format, enum log_level min_level)
{
	log_fmt = format;
	log_min = min_level;
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
	char text[2048], stamp[64], line[4096];
	va_list ap;
	int n;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	log_stamp(stamp);
	if (log_fmt == LOG_JSON) {
		cJSON *o = cJSON_CreateObject();
		char *s;

		cJSON_AddStringToObject(o, "ts", stamp);
		cJSON_AddStringToObject(o, "level", level_names[level]);
		cJSON_AddStringToObject(o, "msg", text);
		s = cJSON_PrintUnformatted(o);
		n = snprintf(line, sizeof line, "%s\n", s ? s : "{}");
		cJSON_free(s);
		cJSON_Delete(o);
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
