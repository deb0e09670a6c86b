/*
 * test_utf8.c: UTF-8 validation against the well-formed byte table, display
 * widths of the text campaigns carry (Chinese, fullwidth punctuation, emoji,
 * combining marks) and truncation on character boundaries.
 */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "utf8.h"

/* Checks s (len bytes) is rejected with the first bad sequence at want_at. */
static int
invalid_at(const char *s, size_t len, size_t want_at)
{
	size_t	at = (size_t)-1;

	return utf8_valid(s, len, &at) == 0 && at == want_at;
}

static void
test_valid_accepts(void)
{
	size_t	at = 1234;

	T_EQ_INT(utf8_valid("", 0, NULL), 1);
	T_EQ_INT(utf8_valid("plain ascii", 11, NULL), 1);
	T_EQ_INT(utf8_valid("新会员欢迎", strlen("新会员欢迎"), &at), 1);
	T_EQ_INT(at, 1234);	/* untouched on success */
	T_EQ_INT(utf8_valid("\xC2\x80", 2, NULL), 1);		/* U+0080, smallest 2-byte */
	T_EQ_INT(utf8_valid("\xE0\xA0\x80", 3, NULL), 1);	/* U+0800, smallest 3-byte */
	T_EQ_INT(utf8_valid("\xED\x9F\xBF", 3, NULL), 1);	/* U+D7FF, below surrogates */
	T_EQ_INT(utf8_valid("\xEE\x80\x80", 3, NULL), 1);	/* U+E000, above surrogates */
	T_EQ_INT(utf8_valid("\xF0\x90\x80\x80", 4, NULL), 1);	/* U+10000 */
	T_EQ_INT(utf8_valid("\xF0\x9F\x98\x80", 4, NULL), 1);	/* 😀 */
	T_EQ_INT(utf8_valid("\xF4\x8F\xBF\xBF", 4, NULL), 1);	/* U+10FFFF */
	T_EQ_INT(utf8_valid("a\0b", 3, NULL), 1);		/* U+0000 is well-formed */
	/* len bounds the check: the bad byte after it is not looked at. */
	T_EQ_INT(utf8_valid("ok\xFF", 2, NULL), 1);
}

static void
test_valid_rejects(void)
{
	/* Overlongs. */
	T_CHECK(invalid_at("\xC0\xAF", 2, 0));
	T_CHECK(invalid_at("\xC1\xBF", 2, 0));
	T_CHECK(invalid_at("ab\xE0\x80\xAF", 5, 2));
	T_CHECK(invalid_at("\xE0\x9F\xBF", 3, 0));
	T_CHECK(invalid_at("\xF0\x80\x80\xAF", 4, 0));
	T_CHECK(invalid_at("\xF0\x8F\xBF\xBF", 4, 0));
	/* Surrogates U+D800..U+DFFF. */
	T_CHECK(invalid_at("\xED\xA0\x80", 3, 0));
	T_CHECK(invalid_at("x\xED\xBF\xBF", 4, 1));
	/* Above U+10FFFF, and lead bytes that can never appear. */
	T_CHECK(invalid_at("\xF4\x90\x80\x80", 4, 0));
	T_CHECK(invalid_at("\xF5\x80\x80\x80", 4, 0));
	T_CHECK(invalid_at("\xFE", 1, 0));
	T_CHECK(invalid_at("\xFF", 1, 0));
	/* Truncated sequences: at the end, and followed by something else. */
	T_CHECK(invalid_at("新\xE4\xB8", 5, 3));
	T_CHECK(invalid_at("\xE4\xB8" "a", 3, 0));
	T_CHECK(invalid_at("\xF0\x9F\x98", 3, 0));
	T_CHECK(invalid_at("\xC3", 1, 0));
	/* Lone continuation bytes. */
	T_CHECK(invalid_at("\x80", 1, 0));
	T_CHECK(invalid_at("abc\xBF" "def", 7, 3));
	T_CHECK(invalid_at("新\x80", 4, 3));
	/* bad_at may be NULL. */
	T_EQ_INT(utf8_valid("\x80", 1, NULL), 0);
}

static void
test_width(void)
{
	T_EQ_INT(utf8_width(""), 0);
	T_EQ_INT(utf8_width(NULL), 0);
	T_EQ_INT(utf8_width("hello"), 5);
	T_EQ_INT(utf8_width("新会员欢迎"), 10);
	T_EQ_INT(utf8_width("a，b"), 4);			/* U+FF0C fullwidth comma */
	T_EQ_INT(utf8_width("a、b"), 4);			/* U+3001 ideographic comma */
	T_EQ_INT(utf8_width("e\xCC\x81"), 1);			/* e + U+0301 */
	T_EQ_INT(utf8_width("\xC3\xA9"), 1);			/* precomposed é */
	T_EQ_INT(utf8_width("小王，欢迎加入！"), 16);
	T_EQ_INT(utf8_width("Hi 小王!"), 8);
	T_EQ_INT(utf8_width("한국어"), 6);			/* Hangul syllables */
	T_EQ_INT(utf8_width("カタカナ"), 8);			/* fullwidth katakana */
	T_EQ_INT(utf8_width("ｶﾀｶﾅ"), 4);			/* halfwidth katakana */
	T_EQ_INT(utf8_width("ＡＢ"), 4);			/* fullwidth Latin */
	T_EQ_INT(utf8_width("「好」"), 6);			/* CJK brackets */
	T_EQ_INT(utf8_width("\xF0\x9F\x98\x80"), 2);		/* 😀 */
	T_EQ_INT(utf8_width("ok\xF0\x9F\x8E\x89"), 4);		/* ok🎉 */
	T_EQ_INT(utf8_width("\xF0\xA0\x80\x80"), 2);		/* U+20000, CJK Ext. B */
	T_EQ_INT(utf8_width("a\xE2\x80\x8B" "b"), 2);		/* zero-width space */
	T_EQ_INT(utf8_width("\xE2\x80\x8D"), 0);		/* zero-width joiner */
	T_EQ_INT(utf8_width("\xEF\xBB\xBF" "x"), 1);		/* BOM / ZWNBSP */
	T_EQ_INT(utf8_width("\xE3\x81\x8B\xE3\x82\x99"), 2);	/* か + combining dakuten */
	T_EQ_INT(utf8_width("#客户昵称#"), 10);
	T_EQ_INT(utf8_width("\x80" "a"), 2);			/* ill-formed byte: 1 column */
}

static void
check_trunc(const char *s, int max, const char *want)
{
	char	*got = utf8_truncate(s, max);

	T_EQ_STR(got, want);
	if (got != NULL && max >= 0)
		T_CHECK(utf8_width(got) <= max);
	free(got);
}

static void
test_truncate(void)
{
	check_trunc("abc", 3, "abc");
	check_trunc("abc", 10, "abc");
	check_trunc("", 0, "");
	check_trunc("abcdef", 3, "ab…");
	check_trunc("abcdef", 1, "…");
	check_trunc("abcdef", 0, "");
	check_trunc("abcdef", -5, "");
	check_trunc("新会员欢迎", 10, "新会员欢迎");
	check_trunc("新会员欢迎", 9, "新会员欢…");
	check_trunc("新会员欢迎", 5, "新会…");
	/* A wide character that would straddle the limit is left out whole. */
	check_trunc("新会员欢迎", 4, "新…");
	check_trunc("新会员欢迎", 2, "…");
	check_trunc("a新b", 3, "a…");
	/* Combining marks stay with their base character. */
	check_trunc("e\xCC\x81" "e\xCC\x81" "e\xCC\x81", 3, "e\xCC\x81" "e\xCC\x81" "e\xCC\x81");
	check_trunc("e\xCC\x81" "e\xCC\x81" "e\xCC\x81", 2, "e\xCC\x81…");
	check_trunc("\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 3, "\xF0\x9F\x98\x80…");
	T_CHECK(utf8_truncate(NULL, 3) == NULL);
}

int
main(void)
{
	T_RUN(test_valid_accepts);
	T_RUN(test_valid_rejects);
	T_RUN(test_width);
	T_RUN(test_truncate);
	return t_report();
}
