/*
 * test_render.c: placeholder rendering. The pass-through cases matter as
 * much as the substitutions: provider-side placeholders and anything that is
 * not a complete {{name}} must survive byte for byte.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "render.h"
#include "t.h"

static cJSON *vars;

/* Renders tmpl with the shared vars and recipient id "R1"; checks the result. */
static void
check_ok(const char *tmpl, const char *want)
{
	char	*out = NULL, *missing = NULL;

	T_EQ_INT(render_text(tmpl, "R1", vars, &out, &missing), 0);
	T_EQ_STR(out, want);
	T_CHECK(missing == NULL);
	if (out == NULL || strcmp(out, want) != 0)
		fprintf(stderr, "  template: %s\n", tmpl);
	free(out);
	free(missing);
}

static void
check_same(const char *tmpl)
{
	check_ok(tmpl, tmpl);
	T_EQ_INT(render_has_placeholders(tmpl), 0);
}

static void
check_missing(const char *tmpl, const char *want_name)
{
	char	 sentinel[] = "untouched";
	char	*out = sentinel, *missing = NULL;

	T_EQ_INT(render_text(tmpl, "R1", vars, &out, &missing), -1);
	T_CHECK(out == sentinel);
	T_EQ_STR(missing, want_name);
	free(missing);
}

static void
test_substitution(void)
{
	check_ok("{{nickname}}，欢迎加入！", "小王，欢迎加入！");
	check_ok("{{nickname|朋友}}，您的优惠券明天到期", "小王，您的优惠券明天到期");
	check_ok("Hi {{nickname}} and {{nickname}}!", "Hi 小王 and 小王!");
	check_ok("{{nickname}}", "小王");
	check_ok("{{city}}{{nickname}}", "上海小王");
	check_ok("{{ nickname }}", "小王");
	check_ok("{{\tnickname\t}}", "小王");
	check_ok("{{ nickname |朋友}}", "小王");
	check_ok("{{a.b-c_d}}", "dotted");	/* one literal key, not a path */
	check_ok("{{_x9}}", "under");
	check_ok("", "");
	check_ok("no placeholders at all", "no placeholders at all");
}

static void
test_defaults(void)
{
	check_ok("{{absent|朋友}}，您好", "朋友，您好");
	check_ok("{{absent|}}", "");
	check_ok("[{{absent|}}]", "[]");
	check_ok("{{nothing|默认}}", "默认");		/* null has no value */
	/* The default is verbatim: spaces, pipes and braces kept. */
	check_ok("{{absent| 朋友 }}", " 朋友 ");
	check_ok("{{absent|a|b}}", "a|b");
	check_ok("{{absent|{x}}}", "{x}");
	check_ok("{{ absent |x}}", "x");
}

static void
test_value_types(void)
{
	check_ok("{{count}}", "3");
	check_ok("{{neg}}", "-42");
	check_ok("{{big}}", "12345678901234");
	check_ok("{{half}}", "2.5");
	check_ok("{{tenth}}", "0.1");
	check_ok("{{sum}}", "0.30000000000000004");
	check_ok("{{huge}}", "1e+300");
	check_ok("{{yes}}/{{no}}", "true/false");
	check_ok("{{empty|d}}", "d");		/* "" is no value: the default applies */
	check_ok("{{obj}}", "{\"k\":\"v\"}");
	check_ok("{{arr}}", "[1,\"二\"]");
}

static void
test_id(void)
{
	cJSON	*own = cJSON_Parse("{\"id\": \"from-vars\"}");
	cJSON	*nul = cJSON_Parse("{\"id\": null}");
	char	*out = NULL, *missing = NULL;

	check_ok("{{id}}", "R1");
	check_ok("{{ id |x}}", "R1");
	T_EQ_INT(render_text("{{id}}", "R1", own, &out, &missing), 0);
	T_EQ_STR(out, "from-vars");
	free(out);
	out = NULL;
	T_EQ_INT(render_text("{{id}}", "R1", nul, &out, &missing), 0);
	T_EQ_STR(out, "R1");
	free(out);
	out = NULL;
	T_EQ_INT(render_text("{{id}}", NULL, NULL, &out, &missing), -1);
	T_EQ_STR(missing, "id");
	free(missing);
	missing = NULL;
	T_EQ_INT(render_text("{{id|none}}", NULL, NULL, &out, &missing), 0);
	T_EQ_STR(out, "none");
	free(out);
	/* No vars at all is fine for templates that need none. */
	out = NULL;
	T_EQ_INT(render_text("plain", NULL, NULL, &out, NULL), 0);
	T_EQ_STR(out, "plain");
	free(out);
	cJSON_Delete(own);
	cJSON_Delete(nul);
}

static void
test_missing(void)
{
	char	*out = NULL;

	check_missing("{{absent}}", "absent");
	check_missing("ok {{nickname}} then {{ absent }} and {{other}}", "absent");
	check_missing("{{nothing}}", "nothing");
	check_missing("{{a.b.c}}", "a.b.c");
	/* missing may be NULL when only the verdict is wanted. */
	T_EQ_INT(render_text("{{absent}}", "R1", vars, &out, NULL), -1);
	T_CHECK(out == NULL);
}

static void
test_pass_through(void)
{
	check_same("#客户昵称#，欢迎");
	check_same("$userNick$ 您好");
	check_same("{{");
	check_same("}}");
	check_same("{{ }}");
	check_same("{{}}");
	check_same("{{|default}}");
	check_same("{{1abc}}");
	check_same("{{-x}}");
	check_same("{{a b}}");
	check_same("{{nickname");
	check_same("{{nickname|no end");
	check_same("{{nickname}");
	check_same("{ {nickname}}");
	check_same("{{名字}}");
	check_same("{{nick!name}}");
	check_same("{\"json\": {\"nested\": 1}}");
	check_same("#{{#");
	/* Provider placeholders next to ours. */
	check_ok("#客户昵称# / {{nickname}} / $userNick$", "#客户昵称# / 小王 / $userNick$");
	/* A failed "{{" only gives up its first brace. */
	check_ok("{{{nickname}}}", "{小王}");
	check_ok("{{ {{nickname}}", "{{ 小王");
	check_ok("{{nickname}}}}", "小王}}");
}

static void
test_has_placeholders(void)
{
	T_EQ_INT(render_has_placeholders("{{x}}"), 1);
	T_EQ_INT(render_has_placeholders("hi {{ x | y }}"), 1);
	T_EQ_INT(render_has_placeholders("{{ {{x}}"), 1);
	T_EQ_INT(render_has_placeholders("{{x|}}"), 1);
	T_EQ_INT(render_has_placeholders("#客户昵称# $userNick$"), 0);
	T_EQ_INT(render_has_placeholders("{{ }} {{1}} {{x"), 0);
	T_EQ_INT(render_has_placeholders(""), 0);
	T_EQ_INT(render_has_placeholders(NULL), 0);
}

/* Detection on a tree looks at decoded string values, as render_json renders them. */
static void
test_json_has_placeholders(void)
{
	static const struct {
		const char	*json;
		int		 want;
	} cases[] = {
		/* A real newline or tab inside the braces is whitespace around the name. */
		{ "{\"type\":\"text\",\"text\":\"{{\\nnickname}}\"}", 1 },
		{ "{\"text\":\"{{\\tx|d\\n}}\"}", 1 },
		/* A backslash and an n are not whitespace: no placeholder. */
		{ "{\"text\":\"{{\\\\nnickname}}\"}", 0 },
		/* Keys are never rendered. */
		{ "{\"{{k}}\":\"v\"}", 0 },
		/* Nested in arrays and objects. */
		{ "{\"contents\":[{\"type\":1},[\"a\",\"{{b}}\"]]}", 1 },
		{ "{\"contents\":[{\"type\":1,\"n\":2.5,\"z\":null,\"t\":true}]}", 0 },
		/* Halves in two strings are not one placeholder, though the JSON text has one. */
		{ "[\"{{a\",\"}}\"]", 0 },
		{ "{\"a\":\"{{x|\",\"b\":\"}}\"}", 0 },
		{ "\"{{x}}\"", 1 },
	};
	size_t	 i;
	cJSON	*v;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = cJSON_Parse(cases[i].json);
		T_CHECK(v != NULL);
		T_EQ_INT(render_json_has_placeholders(v), cases[i].want);
		if (t_current_failed)
			fprintf(stderr, "  case %zu: %s\n", i, cases[i].json);
		cJSON_Delete(v);
	}
	T_EQ_INT(render_json_has_placeholders(NULL), 0);
}

/* CPU seconds of the best of three renders of tmpl (the least disturbed by other work). */
static double
render_seconds(const char *tmpl)
{
	struct timespec	 t0, t1;
	double		 best = -1, secs;
	char		*out = NULL;
	int		 i;

	for (i = 0; i < 3; i++) {
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
		T_EQ_INT(render_text(tmpl, "R1", vars, &out, NULL), 0);
		T_EQ_INT(render_has_placeholders(tmpl), 0);
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
		T_CHECK(out != NULL && strcmp(out, tmpl) == 0);
		free(out);
		out = NULL;
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		if (best < 0 || secs < best)
			best = secs;
	}
	return best;
}

/* A template of n bytes: unit repeated, with no "}}" anywhere. */
static char *
repeated(const char *unit, size_t n)
{
	size_t	 len = strlen(unit), i;
	char	*s = malloc(n + 1);

	if (s == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		s[i] = unit[i % len];
	s[n] = '\0';
	return s;
}

/*
 * Rendering runs per delivery, so its time must grow with the template, not with its
 * square: "{{a|" opens a default that never closes, and a scan that looks for "}}" again at
 * every "{{" reads the rest of the text each time. Four times the text may take about four
 * times as long, never sixteen; the bound of 8 leaves room for a noisy machine.
 */
static void
test_linear_time(void)
{
	static const char	*units[] = { "{{a|", "{{ a |x", "{{{{", "{{a" };
	const size_t		 n = 512 * 1024;
	size_t			 i;
	char			*small, *large;
	double			 ts, tl;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		small = repeated(units[i], n);
		large = repeated(units[i], 4 * n);
		T_CHECK(small != NULL && large != NULL);
		if (small == NULL || large == NULL) {
			free(small);
			free(large);
			return;
		}
		ts = render_seconds(small);
		tl = render_seconds(large);
		/* Below a millisecond the clock's grain decides the ratio; call that linear. */
		T_CHECK(tl < 0.001 || tl < 8 * ts);
		if (t_current_failed)
			fprintf(stderr, "  \"%s\": %zu bytes %.4f s, %zu bytes %.4f s\n", units[i],
			    n, ts, 4 * n, tl);
		free(small);
		free(large);
	}
}

static void
test_json(void)
{
	cJSON	*in, *out;
	char	*s, *missing = NULL;

	in = cJSON_Parse("{\"type\":\"text\",\"text\":\"{{nickname}}，欢迎\","
	    "\"{{nickname}}\":\"key kept\",\"n\":1.5,\"b\":true,\"z\":null,"
	    "\"contents\":[{\"type\":1,\"text\":\"#客户昵称# {{city|北京}}\"},\"{{id}}\",[\"{{count}}\"]]}");
	T_CHECK(in != NULL);
	out = render_json(in, "R1", vars, &missing);
	T_CHECK(out != NULL);
	T_CHECK(missing == NULL);
	s = cJSON_PrintUnformatted(out);
	T_EQ_STR(s, "{\"type\":\"text\",\"text\":\"小王，欢迎\",\"{{nickname}}\":\"key kept\","
	    "\"n\":1.5,\"b\":true,\"z\":null,"
	    "\"contents\":[{\"type\":1,\"text\":\"#客户昵称# 上海\"},\"R1\",[\"3\"]]}");
	free(s);
	cJSON_Delete(out);
	cJSON_Delete(in);

	/* A missing value deep inside fails the whole copy, naming it. */
	in = cJSON_Parse("{\"a\":[\"ok\",{\"b\":\"{{nope}}\"}]}");
	T_CHECK(render_json(in, "R1", vars, &missing) == NULL);
	T_EQ_STR(missing, "nope");
	free(missing);
	cJSON_Delete(in);

	/* Scalars copy as themselves. */
	in = cJSON_CreateNumber(7);
	out = render_json(in, "R1", vars, &missing);
	T_CHECK(out != NULL && cJSON_IsNumber(out) && out->valuedouble == 7);
	cJSON_Delete(out);
	cJSON_Delete(in);
	in = cJSON_CreateString("{{nickname}}");
	out = render_json(in, "R1", vars, &missing);
	T_CHECK(out != NULL && cJSON_IsString(out));
	if (out != NULL)
		T_EQ_STR(out->valuestring, "小王");
	cJSON_Delete(out);
	cJSON_Delete(in);

	missing = NULL;
	T_CHECK(render_json(NULL, "R1", vars, &missing) == NULL);
	T_CHECK(missing == NULL);
}

int
main(void)
{
	vars = cJSON_Parse("{\"nickname\":\"小王\",\"city\":\"上海\",\"a.b-c_d\":\"dotted\","
	    "\"_x9\":\"under\",\"nothing\":null,\"count\":3,\"neg\":-42,"
	    "\"big\":12345678901234,\"half\":2.5,\"tenth\":0.1,\"sum\":0.30000000000000004,"
	    "\"huge\":1e300,\"yes\":true,\"no\":false,\"empty\":\"\","
	    "\"obj\":{\"k\":\"v\"},\"arr\":[1,\"二\"]}");
	if (vars == NULL) {
		fprintf(stderr, "bad vars fixture\n");
		return 1;
	}
	T_RUN(test_substitution);
	T_RUN(test_defaults);
	T_RUN(test_value_types);
	T_RUN(test_id);
	T_RUN(test_missing);
	T_RUN(test_pass_through);
	T_RUN(test_has_placeholders);
	T_RUN(test_json_has_placeholders);
	T_RUN(test_linear_time);
	T_RUN(test_json);
	cJSON_Delete(vars);
	return t_report();
}
