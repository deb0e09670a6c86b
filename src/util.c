/* util: error strings, integer parsing, file reads, growable buffers. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int
util_err(char **err, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (!err)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = malloc((size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*err = s;
	return -1;
}

int
util_parse_i64(const char *s, int64_t *out)
{
	const char *p = s;
	int neg = 0;
	uint64_t v = 0;

	if (*p == '-')
		neg = 1, p++;
	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int
util_json_i64(const cJSON *v, int64_t *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || floor(d) != d)
		return -1;
	*out = (int64_t)d;
	return 0;
}

int
util_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct buf b = {0};
	char chunk[65536];
	size_t n;
	int saved;

	if (!f)
		return -1;
	errno = 0;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b.len + n > max) {
			errno = EFBIG;
			goto fail;
		}
		if (buf_append(&b, chunk, n) != 0)
			goto fail;
	}
	if (ferror(f)) {
		/* Keep fread's errno (EISDIR says more than EIO). */
		if (!errno)
			errno = EIO;
		goto fail;
	}
	if (f != stdin)
		fclose(f);
	if (!b.data && buf_append(&b, "", 0) != 0)
		return -1;
	*out = b.data;
	*len = b.len;
	return 0;
fail:
	saved = errno;
	if (f != stdin)
		fclose(f);
	buf_free(&b);
	errno = saved;
	return -1;
}

int
buf_append(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(p = realloc(b->data, cap)))
			return -1;
		b->data = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char small[256], *big;
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof small)
		return buf_append(b, small, (size_t)n);
	if (!(big = malloc((size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = buf_append(b, big, (size_t)n);
	free(big);
	return rc;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

int
util_json_has_nul(const char *text, size_t len, size_t *at)
{
	size_t i;

	/* Escapes occur only inside strings, so a scan of escapes needs no JSON grammar. */
	for (i = 0; i + 1 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0) {
			if (at)
				*at = i;
			return 1;
		}
		i++;  /* the escaped character, a backslash among them, is not an escape itself */
	}
	return 0;
}
