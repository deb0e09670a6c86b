/*
 * render.h: campaign placeholders. A message template names recipient
 * variables as {{name}} or {{name|default}}; rendering replaces them with the
 * recipient's values and leaves every other byte, provider-side placeholders
 * such as "#客户昵称#" or "$userNick$" included, exactly as written.
 *
 * Syntax: "{{", optional whitespace, a name matching [A-Za-z_][A-Za-z0-9_.-]*,
 * optional whitespace, then either "}}" or "|" followed by a default that runs
 * verbatim (whitespace and all, possibly empty) up to the next "}}". A name is
 * looked up as one literal key of vars: "a.b" is the member "a.b", not a path.
 * Text that is not such a placeholder (a lone "{{", "{{ }}", "{{1x}}") is
 * copied through untouched.
 *
 * Pure functions, no state, safe from any thread.
 */
#ifndef HERALD_RENDER_H
#define HERALD_RENDER_H

#include <cjson/cJSON.h>

/*
 * Renders tmpl (NUL-terminated UTF-8) for one recipient. id is the recipient
 * id, used for {{id}} unless vars has an "id" of its own with a value (id may
 * be NULL). vars is a cJSON object or NULL. A value is a string used as is, a
 * number (integers without a fraction, others in the shortest of %.15g..%.17g
 * that reads back exactly), true/false as text, or an object/array as compact
 * JSON; a null or absent member has no value and the default applies.
 *
 * Returns 0 with *out set to a new string (caller frees). Returns -1 when a
 * placeholder has no value and no default: *missing is set to a new string
 * holding its name (caller frees) and *out is untouched. Returns -1 with
 * *missing NULL when out of memory. missing may be NULL if the name is not
 * wanted.
 */
int render_text(const char *tmpl, const char *id, const cJSON *vars, char **out,
    char **missing);

/*
 * Deep-copies v, rendering every string value with render_text (object keys
 * are copied, never rendered). Returns a new tree the caller cJSON_Deletes, or
 * NULL with *missing set as for render_text (a name, or NULL when out of
 * memory or v is NULL). Nothing is leaked on failure.
 */
cJSON *render_json(const cJSON *v, const char *id, const cJSON *vars, char **missing);

/*
 * Returns 1 if tmpl holds at least one placeholder render_text would
 * substitute, else 0 (tmpl NULL gives 0).
 */
int render_has_placeholders(const char *tmpl);

/*
 * Returns 1 if render_json would substitute anything in v: a placeholder in
 * one of its string values, looked for in the decoded strings (a newline in
 * "{{\nname}}" is whitespace inside the braces, as the renderer sees it), never
 * in keys. Returns 0 otherwise, and for NULL.
 */
int render_json_has_placeholders(const cJSON *v);

#endif
