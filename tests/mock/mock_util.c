/*
 * mock_util.c: the small tools every part of herald-mock uses: allocation that
 * cannot fail, byte buffers with JSON string escaping, strict JSON and form
 * parsing, digests and the clock.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mock.h"

static _Atomic int64_t clock_offset_ms;

static void
die_oom(void)
{
	static const char msg[] = "herald-mock: out of memory\n";

	/* Nothing sensible is left to do for a test server that cannot allocate. */
	(void)!write(2, msg, sizeof(msg) - 1);
	_exit(70);
}

void *
mock_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die_oom();
	return p;
}

void *
mock_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		die_oom();
	return p;
}

void *
mock_xrealloc(void *old, size_t n)
{
	void *p = realloc(old, n ? n : 1);

	if (p == NULL)
		die_oom();
	return p;
}

char *
mock_xstrdup(const char *s)
{
	return mock_xstrndup(s, strlen(s));
}

char *
mock_xstrndup(const char *s, size_t n)
{
	char *p = mock_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
buf_reserve(struct mock_buf *b, size_t more)
{
	size_t need = b->len + more + 1;

	if (need <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 256;
	while (b->cap < need)
		b->cap *= 2;
	b->p = mock_xrealloc(b->p, b->cap);
}

void
mock_buf_add(struct mock_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
mock_buf_adds(struct mock_buf *b, const char *s)
{
	mock_buf_add(b, s, strlen(s));
}

void
mock_buf_addf(struct mock_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

int
mock_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		if ((k = utf8_seq(p + i, n - i)) == 0)
			return 0;
		i += k;
	}
	return 1;
}

void
mock_buf_add_jstr(struct mock_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, run;

	buf_reserve(b, n + 2);
	b->p[b->len++] = '"';
	while (i < n) {
		/* Copy the longest stretch that needs no escaping in one go. */
		for (run = i; run < n && p[run] >= 0x20 && p[run] < 0x80 &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		if (run > i) {
			mock_buf_add(b, p + i, run - i);
			i = run;
			continue;
		}
		if (p[i] == '"')
			mock_buf_add(b, "\\\"", 2);
		else if (p[i] == '\\')
			mock_buf_add(b, "\\\\", 2);
		else if (p[i] == '\n')
			mock_buf_add(b, "\\n", 2);
		else if (p[i] == '\r')
			mock_buf_add(b, "\\r", 2);
		else if (p[i] == '\t')
			mock_buf_add(b, "\\t", 2);
		else if (p[i] < 0x20)
			mock_buf_addf(b, "\\u%04x", p[i]);
		else if ((k = utf8_seq(p + i, n - i)) > 0) {
			mock_buf_add(b, p + i, k);
			i += k;
			continue;
		} else
			mock_buf_add(b, "\\ufffd", 6);
		i++;
	}
	mock_buf_add(b, "\"", 1);
}

void
mock_buf_add_jstr0(struct mock_buf *b, const char *s)
{
	if (s == NULL)
		mock_buf_add(b, "null", 4);
	else
		mock_buf_add_jstr(b, s, strlen(s));
}

char *
mock_buf_take(struct mock_buf *b)
{
	char *p = b->p;

	if (p == NULL)
		p = mock_xstrdup("");
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void
mock_buf_free(struct mock_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int64_t
mock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	    atomic_load(&clock_offset_ms);
}

void
mock_clock_set_offset(int64_t offset_ms)
{
	atomic_store(&clock_offset_ms, offset_ms);
}

int64_t
mock_clock_offset(void)
{
	return atomic_load(&clock_offset_ms);
}

int64_t
mock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
mock_media_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

int
mock_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n == 0 ? i > 0 : i == n;
}

int
mock_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!mock_digits(s, 0) || strlen(s) > 20)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

void
mock_digest_hex(int sha256, const char *const *parts, const size_t *lens,
    size_t nparts, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx;
	size_t k;

	out[0] = '\0';
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(ctx, sha256 ? EVP_sha256() : EVP_md5(), NULL) == 1) {
		for (k = 0; k < nparts; k++)
			EVP_DigestUpdate(ctx, parts[k], lens[k]);
		if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
			mdlen = 0;
	}
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..n) into a new string; -1 on a bad escape or a NUL byte. */
static int
form_decode(const char *s, size_t n, char **out, size_t *outlen)
{
	char *d = mock_xmalloc(n + 1);
	size_t i, k = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			d[k++] = ' ';
		else if (s[i] != '%')
			d[k++] = s[i];
		else {
			if (i + 2 >= n)
				goto bad;
			if ((hi = hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)s[i + 2])) < 0)
				goto bad;
			d[k++] = (char)(hi << 4 | lo);
			i += 2;
		}
		if (d[k - 1] == '\0')
			goto bad;
	}
	d[k] = '\0';
	*out = d;
	*outlen = k;
	return 0;
bad:
	free(d);
	return -1;
}

int
mock_form_parse(const char *s, size_t len, struct mock_form *out, char *why, size_t whylen)
{
	size_t i = 0, end, eq, vlen, nlen;
	struct mock_param *p;

	while (i < len) {
		for (end = i; end < len && s[end] != '&'; end++)
			;
		if (end == i) {
			snprintf(why, whylen, "empty parameter at byte %zu", i);
			return -1;
		}
		for (eq = i; eq < end && s[eq] != '='; eq++)
			;
		if (eq == end || eq == i) {
			snprintf(why, whylen, "parameter without a name or '=' at byte %zu", i);
			return -1;
		}
		out->v = mock_xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
		p = &out->v[out->n];
		p->name = p->value = NULL;
		if (form_decode(s + i, eq - i, &p->name, &nlen) == -1 ||
		    form_decode(s + eq + 1, end - eq - 1, &p->value, &vlen) == -1) {
			free(p->name);
			snprintf(why, whylen, "bad percent-encoding in parameter at byte %zu", i);
			return -1;
		}
		p->value_len = vlen;
		out->n++;
		/* A trailing '&' would leave an empty last segment. */
		if (end + 1 == len) {
			snprintf(why, whylen, "trailing '&'");
			return -1;
		}
		i = end + 1;
	}
	return 0;
}

void
mock_form_free(struct mock_form *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].name);
		free(f->v[i].value);
	}
	free(f->v);
	f->v = NULL;
	f->n = 0;
}

const struct mock_param *
mock_form_get(const struct mock_form *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->v[i].name, name) == 0)
			return &f->v[i];
	return NULL;
}

const char *
mock_form_dup(const struct mock_form *f)
{
	size_t i, j;

	for (i = 0; i < f->n; i++)
		for (j = i + 1; j < f->n; j++)
			if (strcmp(f->v[i].name, f->v[j].name) == 0)
				return f->v[i].name;
	return NULL;
}

/* cJSON lets raw control characters through inside strings; JSON does not. */
static int
raw_control_in_string(const char *s, size_t n)
{
	int in = 0, esc = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!in) {
			if (c == '"')
				in = 1;
		} else if (esc)
			esc = 0;
		else if (c == '\\')
			esc = 1;
		else if (c == '"')
			in = 0;
		else if (c < 0x20)
			return 1;
	}
	return 0;
}

/* cJSON keeps duplicate member names; a strict reader must not. */
static const char *
duplicate_member(const cJSON *item)
{
	const cJSON *a, *b, *child;
	const char *d;

	if (cJSON_IsObject(item))
		for (a = item->child; a != NULL; a = a->next)
			for (b = a->next; b != NULL; b = b->next)
				if (strcmp(a->string, b->string) == 0)
					return a->string;
	if (cJSON_IsObject(item) || cJSON_IsArray(item))
		for (child = item->child; child != NULL; child = child->next)
			if ((d = duplicate_member(child)) != NULL)
				return d;
	return NULL;
}

cJSON *
mock_json_parse(const char *text, size_t len, char *why, size_t whylen)
{
	const char *end = NULL, *dup;
	cJSON *j;

	if (len == 0) {
		snprintf(why, whylen, "empty body, expected JSON");
		return NULL;
	}
	if (!mock_utf8_valid(text, len) || memchr(text, '\0', len) != NULL) {
		snprintf(why, whylen, "JSON text is not valid UTF-8");
		return NULL;
	}
	if (raw_control_in_string(text, len)) {
		snprintf(why, whylen, "raw control character inside a JSON string");
		return NULL;
	}
	if ((j = cJSON_ParseWithLengthOpts(text, len, &end, 0)) == NULL) {
		snprintf(why, whylen, "invalid JSON near byte %td",
		    end != NULL ? end - text : (ptrdiff_t)0);
		return NULL;
	}
	while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != text + len) {
		snprintf(why, whylen, "trailing data after JSON at byte %td", end - text);
		cJSON_Delete(j);
		return NULL;
	}
	if ((dup = duplicate_member(j)) != NULL) {
		snprintf(why, whylen, "duplicate member \"%.64s\"", dup);
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

int
mock_json_only(const cJSON *obj, const char *const *names, const char *where,
    char *why, size_t whylen)
{
	const cJSON *m;
	size_t i;

	if (!cJSON_IsObject(obj)) {
		snprintf(why, whylen, "%s is not a JSON object", where);
		return -1;
	}
	for (m = obj->child; m != NULL; m = m->next) {
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(m->string, names[i]) == 0)
				break;
		if (names[i] == NULL) {
			snprintf(why, whylen, "%s has an unknown member \"%.64s\"", where, m->string);
			return -1;
		}
	}
	return 0;
}

int
mock_json_int(const cJSON *item, double min, double max, int64_t *out)
{
	double v;

	if (!cJSON_IsNumber(item))
		return 0;
	v = item->valuedouble;
	if (v != v || v < min || v > max || v != (double)(int64_t)v)
		return 0;
	if (out != NULL)
		*out = (int64_t)v;
	return 1;
}

const char *
mock_json_str(const cJSON *obj, const char *name)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(m) ? m->valuestring : NULL;
}

int
mock_json_nonempty(const cJSON *obj, const char *name)
{
	const char *s = mock_json_str(obj, name);

	return s != NULL && *s != '\0';
}
