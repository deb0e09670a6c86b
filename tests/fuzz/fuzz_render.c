/*
 * fuzz_render: the placeholder renderer (src/render.c). Input: a template, a NUL byte,
 * then a JSON object of vars (no NUL: the template alone, without vars).
 * Invariants: a template without placeholders renders to itself; a rendering of valid
 * UTF-8 with valid UTF-8 values is valid UTF-8; render_json agrees with
 * render_json_has_placeholders.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "render.h"
#include "utf8.h"

/* 1 when every string (values and keys) in v is valid UTF-8. */
static int
json_utf8(const cJSON *v)
{
	const cJSON *c;

	if (v->string && !utf8_valid(v->string, strlen(v->string), NULL))
		return 0;
	if (cJSON_IsString(v) && !utf8_valid(v->valuestring, strlen(v->valuestring), NULL))
		return 0;
	for (c = v->child; c; c = c->next)
		if (!json_utf8(c))
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char *tmpl = fuzz_str(data, tlen), *out = NULL, *missing = NULL, *p1, *p2;
	cJSON *vars = NULL, *tree, *r;
	int valid;

	if (nul)
		vars = cJSON_ParseWithLength((const char *)nul + 1, size - tlen - 1);
	valid = utf8_valid(tmpl, tlen, NULL) && (!vars || json_utf8(vars));
	if (render_text(tmpl, "r1", vars, &out, &missing) == 0) {
		FUZZ_CHECK(out != NULL && missing == NULL);
		if (!render_has_placeholders(tmpl))
			FUZZ_CHECK(strcmp(out, tmpl) == 0);
		if (valid)
			FUZZ_CHECK(utf8_valid(out, strlen(out), NULL));
		free(out);
	} else {
		/* Only a placeholder can be missing; without one, only memory can run out. */
		FUZZ_CHECK(missing == NULL || render_has_placeholders(tmpl));
		free(missing);
		missing = NULL;
	}

	/* The same template as a message string, rendered as a tree. */
	if ((tree = cJSON_CreateObject()) && cJSON_AddStringToObject(tree, "text", tmpl)) {
		r = render_json(tree, NULL, vars, &missing);
		if (r && !render_json_has_placeholders(tree)) {
			p1 = cJSON_PrintUnformatted(tree);
			p2 = cJSON_PrintUnformatted(r);
			FUZZ_CHECK(p1 && p2 && strcmp(p1, p2) == 0);
			cJSON_free(p1);
			cJSON_free(p2);
		}
		cJSON_Delete(r);
		free(missing);
	}
	cJSON_Delete(tree);
	cJSON_Delete(vars);
	free(tmpl);
	return 0;
}
