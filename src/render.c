/*
 * render.c: placeholder substitution for message templates. One left-to-right
 * scan: at each "{{" try to read a whole placeholder; if that fails, emit the
 * first "{" literally and try again one byte later, so "{{{x}}}" renders as
 * "{" + x + "}" and anything malformed survives byte for byte.
 *
 * The scan is linear in the template: a default runs to the next "}}", and
 * that position is remembered across attempts (struct scan), so "{{a|"
 * repeated a million times without a "}}" costs one search, not one per "{{".
 * Rendering runs per delivery in the scheduler, so a hostile template must
 * not cost more than its length.
 */
#include "render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct placeholder {
	const char	*name;		/* into the template, not NUL-terminated */
	size_t		 name_len;
	const char	*def;		/* default text, NULL when there is no "|" */
	size_t		 def_len;
};

/* The next "}}" at or after a position, found once and reused while the scan moves on. */
struct scan {
	const char	*close;		/* the "}}" found, NULL when there is none */
	const char	*from;		/* where that search started; NULL before the first */
};

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Deliberately ASCII-only and locale-free: names are identifiers, not text. */
static int
is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int
is_name_char(char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/*
 * The first pair "cc" at or after p, or NULL. A plain loop rather than strstr:
 * a checking strstr (AddressSanitizer's) measures the whole rest of the
 * string on every call, which made the scan quadratic again.
 */
static const char *
find_pair(const char *p, char c)
{
	for (; *p != '\0'; p++)
		if (p[0] == c && p[1] == c)
			return p;
	return NULL;
}

/*
 * The first "}}" at or after q. Callers ask for non-decreasing q, so a "}}"
 * already found at or after q is still the first one, and "none after from"
 * means none after q either: each byte is searched at most once.
 */
static const char *
next_close(struct scan *sc, const char *q)
{
	if (sc->from == NULL || (sc->close != NULL && sc->close < q) ||
	    (sc->close == NULL && q < sc->from)) {
		sc->from = q;
		sc->close = find_pair(q, '}');
	}
	return sc->close;
}

/*
 * If p starts a complete placeholder, fills *ph and returns its length in
 * bytes; otherwise returns 0. The name and the whitespace around it stop at
 * the first byte that does not belong there, and the next "{{" cannot belong,
 * so they are linear over a scan too.
 */
static size_t
parse_placeholder(const char *p, struct placeholder *ph, struct scan *sc)
{
	const char	*q, *end;

	if (p[0] != '{' || p[1] != '{')
		return 0;
	q = p + 2;
	while (is_space(*q))
		q++;
	if (!is_name_start(*q))
		return 0;
	ph->name = q;
	while (is_name_char(*q))
		q++;
	ph->name_len = (size_t)(q - ph->name);
	while (is_space(*q))
		q++;
	if (q[0] == '}' && q[1] == '}') {
		ph->def = NULL;
		ph->def_len = 0;
		return (size_t)(q + 2 - p);
	}
	if (q[0] != '|')
		return 0;
	if ((end = next_close(sc, q + 1)) == NULL)
		return 0;
	ph->def = q + 1;
	ph->def_len = (size_t)(end - ph->def);
	return (size_t)(end + 2 - p);
}

static const cJSON *
lookup(const cJSON *vars, const char *name, size_t len)
{
	const cJSON	*c;

	if (vars == NULL || !cJSON_IsObject(vars))
		return NULL;
	for (c = vars->child; c != NULL; c = c->next)
		if (c->string != NULL && strlen(c->string) == len &&
		    memcmp(c->string, name, len) == 0)
			return c;
	return NULL;
}

/*
 * Integral values print as integers so "{{count}}" with 3 gives "3", not
 * "3.0"; others take the fewest digits that still read back as the same
 * double, so 0.1 prints as "0.1" rather than "0.10000000000000001".
 */
static void
format_number(double d, char *s, size_t size)
{
	int	prec;

	if (d == floor(d) && fabs(d) < 1e18) {
		snprintf(s, size, "%lld", (long long)d);
		return;
	}
	for (prec = 15; prec < 17; prec++) {
		snprintf(s, size, "%.*g", prec, d);
		if (strtod(s, NULL) == d)
			return;
	}
	snprintf(s, size, "%.17g", d);
}

/*
 * Appends the value of v to b. Returns 1 if appended, 0 if v has no value,
 * -1 when out of memory. An empty string counts as no value: a CSV cell left
 * blank is how a spreadsheet says "unknown", and {{name|friend}} should then
 * fall back to its default.
 */
static int
append_value(struct buf *b, const cJSON *v)
{
	char	num[64], *json;
	int	rc;

	if (v == NULL || cJSON_IsNull(v) || cJSON_IsInvalid(v))
		return 0;
	if (cJSON_IsString(v) || cJSON_IsRaw(v)) {
		if (v->valuestring == NULL || v->valuestring[0] == '\0')
			return 0;
		return buf_append(b, v->valuestring, strlen(v->valuestring)) == 0 ? 1 : -1;
	}
	if (cJSON_IsNumber(v)) {
		format_number(v->valuedouble, num, sizeof(num));
		return buf_append(b, num, strlen(num)) == 0 ? 1 : -1;
	}
	if (cJSON_IsTrue(v))
		return buf_append(b, "true", 4) == 0 ? 1 : -1;
	if (cJSON_IsFalse(v))
		return buf_append(b, "false", 5) == 0 ? 1 : -1;
	if ((json = cJSON_PrintUnformatted(v)) == NULL)
		return -1;
	rc = buf_append(b, json, strlen(json)) == 0 ? 1 : -1;
	cJSON_free(json);
	return rc;
}

int
render_text(const char *tmpl, const char *id, const cJSON *vars, char **out,
    char **missing)
{
	struct buf		 b = { NULL, 0, 0 };
	struct placeholder	 ph;
	struct scan		 sc = { NULL, NULL };
	const char		*p, *lit, *brace;
	const cJSON		*v;
	size_t			 n;
	int			 rc = -1, got;

	if (missing != NULL)
		*missing = NULL;
	if (tmpl == NULL)
		goto out;
	if (buf_append(&b, "", 0) == -1)
		goto out;

	lit = p = tmpl;
	while ((brace = find_pair(p, '{')) != NULL) {
		if ((n = parse_placeholder(brace, &ph, &sc)) == 0) {
			p = brace + 1;
			continue;
		}
		if (buf_append(&b, lit, (size_t)(brace - lit)) == -1)
			goto out;

		v = lookup(vars, ph.name, ph.name_len);
		if ((got = append_value(&b, v)) == -1)
			goto out;
		if (got == 0 && ph.name_len == 2 && memcmp(ph.name, "id", 2) == 0 &&
		    id != NULL) {
			if (buf_append(&b, id, strlen(id)) == -1)
				goto out;
			got = 1;
		}
		if (got == 0 && ph.def != NULL) {
			if (buf_append(&b, ph.def, ph.def_len) == -1)
				goto out;
			got = 1;
		}
		if (got == 0) {
			if (missing != NULL)
				*missing = strndup(ph.name, ph.name_len);
			goto out;
		}
		lit = p = brace + n;
	}
	if (buf_append(&b, lit, strlen(lit)) == -1)
		goto out;

	*out = b.data;
	b.data = NULL;
	rc = 0;
out:
	buf_free(&b);
	return rc;
}

cJSON *
render_json(const cJSON *v, const char *id, const cJSON *vars, char **missing)
{
	const cJSON	*c;
	cJSON		*res = NULL, *copy = NULL, *item;
	char		*s = NULL;
	cJSON_bool	 added;

	if (missing != NULL)
		*missing = NULL;
	if (v == NULL)
		goto out;

	if (cJSON_IsString(v) && v->valuestring != NULL) {
		if (render_text(v->valuestring, id, vars, &s, missing) == 0)
			res = cJSON_CreateString(s);
		goto out;
	}
	if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) {
		/* Numbers, booleans, null and raw JSON hold no template text. */
		res = cJSON_Duplicate(v, 0);
		goto out;
	}

	if ((copy = cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray()) == NULL)
		goto out;
	for (c = v->child; c != NULL; c = c->next) {
		if ((item = render_json(c, id, vars, missing)) == NULL)
			goto out;
		if (cJSON_IsObject(v))
			added = cJSON_AddItemToObject(copy, c->string ? c->string : "", item);
		else
			added = cJSON_AddItemToArray(copy, item);
		if (!added) {
			cJSON_Delete(item);
			goto out;
		}
	}
	res = copy;
	copy = NULL;
out:
	free(s);
	cJSON_Delete(copy);
	return res;
}

int
render_has_placeholders(const char *tmpl)
{
	struct placeholder	 ph;
	struct scan		 sc = { NULL, NULL };
	const char		*p = tmpl;

	if (tmpl == NULL)
		return 0;
	while ((p = find_pair(p, '{')) != NULL) {
		if (parse_placeholder(p, &ph, &sc) != 0)
			return 1;
		p++;
	}
	return 0;
}

int
render_json_has_placeholders(const cJSON *v)
{
	const cJSON	*c;

	if (v == NULL)
		return 0;
	if (cJSON_IsString(v))
		return render_has_placeholders(v->valuestring);
	/* Keys are copied, never rendered (render_json), so only values count. */
	for (c = (cJSON_IsObject(v) || cJSON_IsArray(v)) ? v->child : NULL; c != NULL; c = c->next)
		if (render_json_has_placeholders(c))
			return 1;
	return 0;
}
