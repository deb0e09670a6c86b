/*
 * test_recipients.c: the recipient file reader. Each case writes a file into
 * a private temp directory and states the exact sequence of results it must
 * produce: records (as compact JSON), per-record errors and fatal errors, each
 * with the physical line it is reported on. The large-file case checks that
 * reading 200,000 rows does not grow the peak RSS.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "recipients.h"
#include "t.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifdef UNDER_ASAN
/*
 * ASan's quarantine keeps freed blocks out of reuse (256 MB by default), which
 * makes a constant-memory loop look like growth. A small quarantine keeps
 * use-after-free detection for recent frees and lets the RSS check mean
 * something under the sanitizer build too.
 */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "quarantine_size_mb=1:thread_local_quarantine_size_kb=64";
}
#endif

#define MAX_FILES	64

static char	 tmpdir[64];
static char	*files[MAX_FILES];
static int	 nfiles;

/* Writes len bytes to a new file in the temp dir; returns its path. */
static const char *
mkfile(const char *name, const char *data, size_t len)
{
	char	*path;
	FILE	*f;
	size_t	 n = strlen(tmpdir) + strlen(name) + 2;

	if (nfiles == MAX_FILES || (path = malloc(n)) == NULL)
		abort();
	snprintf(path, n, "%s/%s", tmpdir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len ||
	    fclose(f) != 0) {
		perror(path);
		abort();
	}
	files[nfiles++] = path;
	return path;
}

static const char *
mkfile_str(const char *name, const char *data)
{
	return mkfile(name, data, strlen(data));
}

/* One expected result of recipients_next. */
struct step {
	int		 rc;	/* 1, -1 or -2 */
	long		 line;
	const char	*text;	/* the record as compact JSON, or the message */
};

/*
 * Reads path and checks it yields exactly steps[], then end of file (or, after
 * a -2, the same -2 again). A step with rc 0 expects end of file there.
 */
static void
expect(const char *path, const struct step *steps, size_t n)
{
	struct recipients_reader	*r;
	cJSON				*rec;
	char				*err = NULL, *s;
	long				 line;
	size_t				 i;
	int				 rc, failed_before = t_current_failed;

	t_current_failed = 0;
	r = recipients_open(path, &err);
	T_CHECK(r != NULL);
	if (r == NULL) {
		fprintf(stderr, "  open %s: %s\n", path, err ? err : "?");
		free(err);
		return;
	}
	for (i = 0; i < n; i++) {
		line = -1;
		rc = recipients_next(r, &rec, &line, &err);
		T_EQ_INT(rc, steps[i].rc);
		T_EQ_INT(line, steps[i].line);
		if (rc == 0) {
			T_CHECK(rec == NULL);
			T_CHECK(err == NULL);
		} else if (rc == 1) {
			T_CHECK(err == NULL);
			s = cJSON_PrintUnformatted(rec);
			T_EQ_STR(s, steps[i].text);
			free(s);
		} else {
			T_CHECK(rec == NULL);
			T_EQ_STR(err, steps[i].text);
		}
		cJSON_Delete(rec);
		free(err);
		err = NULL;
		if (t_current_failed) {
			fprintf(stderr, "  at step %zu of %s\n", i, path);
			break;
		}
	}
	if (!t_current_failed) {
		rc = recipients_next(r, &rec, &line, &err);
		if (n > 0 && steps[n - 1].rc == -2) {
			T_EQ_INT(rc, -2);
			T_EQ_STR(err, steps[n - 1].text);
		} else {
			T_EQ_INT(rc, 0);
			T_CHECK(err == NULL);
			/* End of file is sticky. */
			T_EQ_INT(recipients_next(r, &rec, &line, NULL), 0);
		}
		T_CHECK(rec == NULL);
		free(err);
		if (t_current_failed)
			fprintf(stderr, "  at the end of %s\n", path);
	}
	recipients_close(r);
	t_current_failed |= failed_before;
}

#define EXPECT(path, ...)                                                        \
	do {                                                                     \
		static const struct step steps_[] = { __VA_ARGS__ };             \
		expect((path), steps_, sizeof(steps_) / sizeof(steps_[0]));      \
	} while (0)

static void
test_csv_basic(void)
{
	EXPECT(mkfile_str("basic.csv",
	    "id,nickname,enrolled_at,city\n"
	    "oc63ewmuBYT11PkeC2IEsT0n2gggg,小王,2026-11-20,上海\n"
	    "u2,\"李 雷\",,\n"
	    "u3,,2026-11-21,北京\n"),
	    { 1, 2, "{\"id\":\"oc63ewmuBYT11PkeC2IEsT0n2gggg\",\"vars\":{\"nickname\":\"小王\","
	        "\"city\":\"上海\"},\"enrolled_at\":\"2026-11-20\"}" },
	    { 1, 3, "{\"id\":\"u2\",\"vars\":{\"nickname\":\"李 雷\",\"city\":\"\"}}" },
	    { 1, 4, "{\"id\":\"u3\",\"vars\":{\"nickname\":\"\",\"city\":\"北京\"},"
	        "\"enrolled_at\":\"2026-11-21\"}" });
	/* No trailing newline on the last record. */
	EXPECT(mkfile_str("nonl.csv", "id\na\nb"),
	    { 1, 2, "{\"id\":\"a\"}" },
	    { 1, 3, "{\"id\":\"b\"}" });
	/* A header and nothing else is an empty list, not an error. */
	EXPECT(mkfile_str("header-only.csv", "id,name\n"), { 0, 2, NULL });
}

static void
test_csv_reserved_columns(void)
{
	EXPECT(mkfile_str("tan.csv",
	    "chat_owner,chat_id\n"
	    "zhangsan,wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA\n"
	    ",wrOgQhDgAAMYQiS5ol9G7gK9JVBBBB\n"),
	    { 1, 2, "{\"chat_id\":\"wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA\",\"chat_owner\":\"zhangsan\"}" },
	    { 1, 3, "{\"chat_id\":\"wrOgQhDgAAMYQiS5ol9G7gK9JVBBBB\"}" });
	EXPECT(mkfile_str("session.csv",
	    "nick,session_id,id\n"
	    "阿强,s-1,\n"
	    "阿珍,,acc2\n"),
	    { 1, 2, "{\"vars\":{\"nick\":\"阿强\"},\"session_id\":\"s-1\"}" },
	    { 1, 3, "{\"id\":\"acc2\",\"vars\":{\"nick\":\"阿珍\"}}" });
	/* Column names are case-sensitive: "ID" is a variable. */
	EXPECT(mkfile_str("case.csv", "id,ID\nx,y\n"),
	    { 1, 2, "{\"id\":\"x\",\"vars\":{\"ID\":\"y\"}}" });
}

static void
test_csv_quoting_and_lines(void)
{
	EXPECT(mkfile_str("multi.csv",
	    "id,note\n"			/* 1 */
	    "a,\"x\ny\"\n"		/* 2-3 */
	    "b,\"p,\"\"q\"\"\"\n"	/* 4 */
	    "c,\"1\n2\n\n3\"\n"		/* 5-8 */
	    "\"d\",z\n"			/* 9 */
	    "e,\"\"\n"			/* 10 */
	    "\"\",\"a\"\"\"\n"		/* 11 */
	    "f,\"\n\"\n"		/* 12-13 */
	    "g,last\n"),		/* 14 */
	    { 1, 2, "{\"id\":\"a\",\"vars\":{\"note\":\"x\\ny\"}}" },
	    { 1, 4, "{\"id\":\"b\",\"vars\":{\"note\":\"p,\\\"q\\\"\"}}" },
	    { 1, 5, "{\"id\":\"c\",\"vars\":{\"note\":\"1\\n2\\n\\n3\"}}" },
	    { 1, 9, "{\"id\":\"d\",\"vars\":{\"note\":\"z\"}}" },
	    { 1, 10, "{\"id\":\"e\",\"vars\":{\"note\":\"\"}}" },
	    { 1, 11, "{\"vars\":{\"note\":\"a\\\"\"}}" },
	    { 1, 12, "{\"id\":\"f\",\"vars\":{\"note\":\"\\n\"}}" },
	    { 1, 14, "{\"id\":\"g\",\"vars\":{\"note\":\"last\"}}" });
	/* A quoted header works like any other record. */
	EXPECT(mkfile_str("qhead.csv", "\"id\",\"na,me\"\nu,v\n"),
	    { 1, 2, "{\"id\":\"u\",\"vars\":{\"na,me\":\"v\"}}" });
}

static void
test_csv_bom_crlf_blank(void)
{
	EXPECT(mkfile_str("bom.csv",
	    "\xEF\xBB\xBF" "id,name\r\n"	/* 1 */
	    "u1,小王\r\n"			/* 2 */
	    "\r\n"				/* 3 */
	    "u2,\"B\r\nC\"\r\n"			/* 4-5 */
	    "u3,\"D\"\r\n"			/* 6 */
	    "u4,E"),				/* 7 */
	    { 1, 2, "{\"id\":\"u1\",\"vars\":{\"name\":\"小王\"}}" },
	    { 1, 4, "{\"id\":\"u2\",\"vars\":{\"name\":\"B\\r\\nC\"}}" },
	    { 1, 6, "{\"id\":\"u3\",\"vars\":{\"name\":\"D\"}}" },
	    { 1, 7, "{\"id\":\"u4\",\"vars\":{\"name\":\"E\"}}" });
	/* Blank lines anywhere, the header's included, are skipped. */
	EXPECT(mkfile_str("blank.csv",
	    "\n"		/* 1 */
	    "\r\n"		/* 2 */
	    "id,name\n"		/* 3 */
	    "\n"		/* 4 */
	    "a,1\n"		/* 5 */
	    "  \t\n"		/* 6 */
	    "\n"		/* 7 */
	    "b,2\n"		/* 8 */
	    "\n\n"),		/* 9-10 */
	    { 1, 5, "{\"id\":\"a\",\"vars\":{\"name\":\"1\"}}" },
	    { 1, 8, "{\"id\":\"b\",\"vars\":{\"name\":\"2\"}}" });
	/* A BOM that is not at the start is data (and then a bad header name). */
	EXPECT(mkfile_str("bom-late.csv", "\n\xEF\xBB\xBF" "id\nx\n"),
	    { -2, 2, "line 2: header has no id, session_id or chat_id column" });
	/* A quoted empty field is a value, not a blank line. */
	EXPECT(mkfile_str("quoted-empty.csv", "id\n\"\"\nz\n"),
	    { 1, 2, "{}" },
	    { 1, 3, "{\"id\":\"z\"}" });
}

static void
test_csv_ragged(void)
{
	EXPECT(mkfile_str("ragged.csv",
	    "id,name,city\n"		/* 1 */
	    "a,1,x\n"			/* 2 */
	    "b,2,x,extra\n"		/* 3 */
	    "c,3\n"			/* 4 */
	    "d\n"			/* 5 */
	    "e,\"multi\nline\",x,y\n"	/* 6-7 */
	    "f,6,x\n"),			/* 8 */
	    { 1, 2, "{\"id\":\"a\",\"vars\":{\"name\":\"1\",\"city\":\"x\"}}" },
	    { -1, 3, "line 3: 4 fields, header has 3" },
	    { -1, 4, "line 4: 2 fields, header has 3" },
	    { -1, 5, "line 5: 1 field, header has 3" },
	    { -1, 6, "line 6: 4 fields, header has 3" },
	    { 1, 8, "{\"id\":\"f\",\"vars\":{\"name\":\"6\",\"city\":\"x\"}}" });
	/* The example from the contract. */
	EXPECT(mkfile_str("ragged7.csv", "id,a,b,c\n1,,,\n2,,,\n3,,,\n4,,,\n5,,,\n6,,\n"),
	    { 1, 2, "{\"id\":\"1\",\"vars\":{\"a\":\"\",\"b\":\"\",\"c\":\"\"}}" },
	    { 1, 3, "{\"id\":\"2\",\"vars\":{\"a\":\"\",\"b\":\"\",\"c\":\"\"}}" },
	    { 1, 4, "{\"id\":\"3\",\"vars\":{\"a\":\"\",\"b\":\"\",\"c\":\"\"}}" },
	    { 1, 5, "{\"id\":\"4\",\"vars\":{\"a\":\"\",\"b\":\"\",\"c\":\"\"}}" },
	    { 1, 6, "{\"id\":\"5\",\"vars\":{\"a\":\"\",\"b\":\"\",\"c\":\"\"}}" },
	    { -1, 7, "line 7: 3 fields, header has 4" });
}

static void
test_csv_utf8(void)
{
	static const char data[] =
	    "id,name\n"			/* 1 */
	    "a,\xC0\xAF\n"		/* 2: overlong '/' */
	    "b,ok\xE4\xB8\n"		/* 3: truncated at end of cell */
	    "c,\xE4\xB8" "x\n"		/* 4: truncated, then ASCII */
	    "d,\x80\n"			/* 5: lone continuation */
	    "\xED\xA0\x80,x\n"		/* 6: surrogate, in the id */
	    "e,\"多\n\xFF\"\n"		/* 7-8: in a multi-line cell */
	    "f,好\n"			/* 9 */
	    "g,a\0b\n";			/* 10: NUL */

	EXPECT(mkfile("utf8.csv", data, sizeof(data) - 1),
	    { -1, 2, "line 2: invalid UTF-8 in column \"name\" at byte 1 of the cell" },
	    { -1, 3, "line 3: invalid UTF-8 in column \"name\" at byte 3 of the cell" },
	    { -1, 4, "line 4: invalid UTF-8 in column \"name\" at byte 1 of the cell" },
	    { -1, 5, "line 5: invalid UTF-8 in column \"name\" at byte 1 of the cell" },
	    { -1, 6, "line 6: invalid UTF-8 in column \"id\" at byte 1 of the cell" },
	    { -1, 7, "line 7: invalid UTF-8 in column \"name\" at byte 5 of the cell" },
	    { 1, 9, "{\"id\":\"f\",\"vars\":{\"name\":\"好\"}}" },
	    { -1, 10, "line 10: NUL byte in column \"name\"" });
}

static void
test_csv_quote_errors(void)
{
	EXPECT(mkfile_str("stray.csv",
	    "id,n\n"			/* 1 */
	    "a,b\"c\n"			/* 2 */
	    "b,ok\n"			/* 3 */
	    "c,\"x\"y\n"		/* 4 */
	    "d,\"x\ny\"\"\"\n"		/* 5-6 */
	    "e,\"p\nq\"r,s\n"		/* 7-8 */
	    "f, \"lead\"\n"		/* 9 */
	    "g,fine\n"),		/* 10 */
	    { -1, 2, "line 2: stray quote in column \"n\" (a field holding quotes must be quoted, each quote doubled)" },
	    { 1, 3, "{\"id\":\"b\",\"vars\":{\"n\":\"ok\"}}" },
	    { -1, 4, "line 4: unexpected text after the closing quote of column \"n\"" },
	    { 1, 5, "{\"id\":\"d\",\"vars\":{\"n\":\"x\\ny\\\"\"}}" },
	    { -1, 7, "line 8: unexpected text after the closing quote of column \"n\"" },
	    { -1, 9, "line 9: stray quote in column \"n\" (a field holding quotes must be quoted, each quote doubled)" },
	    { 1, 10, "{\"id\":\"g\",\"vars\":{\"n\":\"fine\"}}" });
	/* Unterminated quote: named by the line the quote opened on. */
	EXPECT(mkfile_str("unterminated.csv",
	    "id,a,b\n"			/* 1 */
	    "x,1,2\n"			/* 2 */
	    "y,\"two\nlines\",\"open\n"	/* 3-4 */
	    "z,1,2\n"),			/* 5 */
	    { 1, 2, "{\"id\":\"x\",\"vars\":{\"a\":\"1\",\"b\":\"2\"}}" },
	    { -1, 3, "line 4: quoted field not closed before end of file" });
	EXPECT(mkfile_str("unterminated2.csv", "id\n\"abc"),
	    { -1, 2, "line 2: quoted field not closed before end of file" });
}

static void
test_csv_long_record(void)
{
	size_t	 big = 1100 * 1024, n = 0;
	char	*data = malloc(big + 64);

	if (data == NULL)
		abort();
	n += (size_t)sprintf(data + n, "id,v\na,");
	memset(data + n, 'x', big);
	n += big;
	n += (size_t)sprintf(data + n, "\nb,ok\n");
	EXPECT(mkfile("long.csv", data, n),
	    { -1, 2, "line 2: record longer than 1048576 bytes" },
	    { 1, 3, "{\"id\":\"b\",\"vars\":{\"v\":\"ok\"}}" });
	free(data);
}

static void
test_csv_header_errors(void)
{
	EXPECT(mkfile_str("empty.csv", ""), { -2, 1, "empty file: no header row" });
	EXPECT(mkfile_str("blanks.csv", "\n\r\n\n"), { -2, 4, "empty file: no header row" });
	EXPECT(mkfile_str("bomonly.csv", "\xEF\xBB\xBF"), { -2, 1, "empty file: no header row" });
	EXPECT(mkfile_str("dup.csv", "id,name,name\na,b,c\n"),
	    { -2, 1, "line 1: duplicate column \"name\" in header" });
	EXPECT(mkfile_str("dup-id.csv", "\nid,id\n"),
	    { -2, 2, "line 2: duplicate column \"id\" in header" });
	EXPECT(mkfile_str("noname.csv", "id,,city\n"),
	    { -2, 1, "line 1: header column 2 has no name" });
	EXPECT(mkfile_str("noname2.csv", "id,\n"),
	    { -2, 1, "line 1: header column 2 has no name" });
	EXPECT(mkfile_str("noid.csv", "name,phone\n小王,1\n"),
	    { -2, 1, "line 1: header has no id, session_id or chat_id column" });
	EXPECT(mkfile_str("ownerOnly.csv", "chat_owner,enrolled_at\nx,y\n"),
	    { -2, 1, "line 1: header has no id, session_id or chat_id column" });
	EXPECT(mkfile_str("badhead.csv", "id,n\xC3\n"),
	    { -2, 1, "line 1: header column 2 is not valid UTF-8" });
	EXPECT(mkfile_str("quotehead.csv", "id,na\"me\n"),
	    { -2, 1, "line 1: stray quote in field 2 (a field holding quotes must be quoted, each quote doubled)" });
	EXPECT(mkfile_str("openhead.csv", "id,\"name\n"),
	    { -2, 1, "line 1: quoted field not closed before end of file" });
}

static void
test_jsonl(void)
{
	static const char	nul[] = "{\"id\":\"a\0\"}\n";

	EXPECT(mkfile_str("r.jsonl",
	    "{\"id\":\"u1\",\"vars\":{\"nickname\":\"小王\"}}\n"	/* 1 */
	    "\n"							/* 2 */
	    "  {\"id\": \"u2\", \"enrolled_at\": \"2026-11-20\"}  \r\n"	/* 3 */
	    "{\"id\":\"u3\"\n"						/* 4 */
	    "[1,2]\n"							/* 5 */
	    "\"str\"\n"							/* 6 */
	    "{\"id\":\"u4\",\"vars\":{\"n\":\"\xC0\xAF\"}}\n"		/* 7 */
	    "{} trailing\n"						/* 8 */
	    "   \t \r\n"						/* 9 */
	    "{\"chat_id\":\"c\",\"chat_owner\":\"o\",\"extra\":[1]}\n"	/* 10 */
	    "{\"id\":\"u5\"}"),						/* 11 */
	    { 1, 1, "{\"id\":\"u1\",\"vars\":{\"nickname\":\"小王\"}}" },
	    { 1, 3, "{\"id\":\"u2\",\"enrolled_at\":\"2026-11-20\"}" },
	    { -1, 4, "line 4: invalid JSON at byte 11" },
	    { -1, 5, "line 5: not a JSON object" },
	    { -1, 6, "line 6: not a JSON object" },
	    { -1, 7, "line 7: invalid UTF-8 at byte 25" },
	    { -1, 8, "line 8: invalid JSON at byte 4" },
	    { 1, 10, "{\"chat_id\":\"c\",\"chat_owner\":\"o\",\"extra\":[1]}" },
	    { 1, 11, "{\"id\":\"u5\"}" });
	EXPECT(mkfile_str("bom.jsonl", "\xEF\xBB\xBF{\"id\":\"b\"}\r\n"),
	    { 1, 1, "{\"id\":\"b\"}" });
	EXPECT(mkfile_str("upper.JSONL", "{\"id\":\"U\"}\n"), { 1, 1, "{\"id\":\"U\"}" });
	EXPECT(mkfile_str("empty.jsonl", ""), { 0, 1, NULL });
	EXPECT(mkfile_str("blank.jsonl", "\n\n"), { 0, 3, NULL });
	EXPECT(mkfile("nul.jsonl", nul, sizeof(nul) - 1), { -1, 1, "line 1: NUL byte at byte 9" });
	/* A file named .csv holding JSON is read as CSV: the name decides. */
	EXPECT(mkfile_str("json.csv", "{\"id\":\"x\"}\n"),
	    { -2, 1, "line 1: stray quote in field 1 (a field holding quotes must be quoted, each quote doubled)" });
}

static void
test_open_errors(void)
{
	struct recipients_reader	*r;
	char				*err = NULL, want[256], path[128];

	snprintf(path, sizeof(path), "%s/does-not-exist.csv", tmpdir);
	errno = 0;
	r = recipients_open(path, &err);
	T_CHECK(r == NULL);
	T_EQ_INT(errno, ENOENT);
	snprintf(want, sizeof(want), "recipients file \"%s\": No such file or directory", path);
	T_EQ_STR(err, want);
	free(err);
	err = NULL;

	errno = 0;
	r = recipients_open(tmpdir, &err);
	T_CHECK(r == NULL);
	T_EQ_INT(errno, EISDIR);
	snprintf(want, sizeof(want), "recipients file \"%s\": not a regular file (a directory)",
	    tmpdir);
	T_EQ_STR(err, want);
	free(err);
	err = NULL;

	/* A device never ends; a FIFO without a writer would block the open itself. */
	errno = 0;
	r = recipients_open("/dev/zero", &err);
	T_CHECK(r == NULL);
	T_EQ_INT(errno, EINVAL);
	T_EQ_STR(err, "recipients file \"/dev/zero\": not a regular file (a character device)");
	free(err);
	err = NULL;

	snprintf(path, sizeof(path), "%s/fifo.csv", tmpdir);
	T_EQ_INT(mkfifo(path, 0600), 0);
	alarm(10);	/* a blocked open fails the test instead of hanging it */
	errno = 0;
	r = recipients_open(path, &err);
	alarm(0);
	T_CHECK(r == NULL);
	T_EQ_INT(errno, EINVAL);
	snprintf(want, sizeof(want), "recipients file \"%s\": not a regular file (a FIFO)", path);
	T_EQ_STR(err, want);
	free(err);
	unlink(path);
	snprintf(path, sizeof(path), "%s/does-not-exist.csv", tmpdir);

	errno = 0;
	T_CHECK(recipients_open(path, NULL) == NULL);
	T_EQ_INT(errno, ENOENT);
	recipients_close(NULL);
}

static void
test_progress(void)
{
	static const char	 data[] = "id,n\na,1\nb,2\n";
	struct recipients_reader	*r;
	cJSON			*rec;
	uint64_t		 done = 99, total = 0, prev = 0;
	long			 line;
	int			 rc;

	r = recipients_open(mkfile("prog.csv", data, sizeof(data) - 1), NULL);
	T_CHECK(r != NULL);
	if (r == NULL)
		return;
	recipients_progress(r, &done, &total);
	T_EQ_INT(done, 0);
	T_EQ_INT(total, sizeof(data) - 1);
	while ((rc = recipients_next(r, &rec, &line, NULL)) == 1) {
		cJSON_Delete(rec);
		recipients_progress(r, &done, NULL);
		T_CHECK(done > prev);
		prev = done;
	}
	T_EQ_INT(rc, 0);
	recipients_progress(r, &done, &total);
	T_EQ_INT(done, total);
	recipients_close(r);
}

static long
max_rss_kb(void)
{
	struct rusage	ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		return -1;
	return ru.ru_maxrss;	/* kilobytes on Linux */
}

static void
test_large_file_constant_memory(void)
{
	enum { ROWS = 200000, WARMUP = 5000 };
	struct recipients_reader	*r;
	const char			*path;
	cJSON				*rec, *v;
	char				*err = NULL, name[64];
	FILE				*f;
	long				 line = 0, opened, before = -1, after, count = 0, bad = 0;
	uint64_t			 done, total;
	struct stat			 st;
	int				 i, rc;

	path = mkfile_str("big.csv", "");
	if ((f = fopen(path, "w")) == NULL)
		abort();
	fputs("\xEF\xBB\xBFid,nickname,enrolled_at,note\r\n", f);
	for (i = 0; i < ROWS; i++)
		fprintf(f, "oc63ewmuBYT11PkeC2IEsT0n%06d,会员%d号,2026-11-%02d,\"第%d位, \"\"欢迎\"\"\"\r\n",
		    i, i, 1 + i % 28, i);
	if (fclose(f) != 0)
		abort();
	T_CHECK(stat(path, &st) == 0 && st.st_size > 10 * 1024 * 1024);

	opened = max_rss_kb();
	r = recipients_open(path, &err);
	T_CHECK(r != NULL);
	if (r == NULL) {
		free(err);
		return;
	}
	while ((rc = recipients_next(r, &rec, &line, &err)) != 0) {
		if (rc != 1) {
			if (bad++ == 0)
				fprintf(stderr, "  unexpected: %s\n", err ? err : "?");
			free(err);
			if (rc == -2)
				break;
			continue;
		}
		if (count == 0) {
			char	*s = cJSON_PrintUnformatted(rec);

			T_EQ_STR(s, "{\"id\":\"oc63ewmuBYT11PkeC2IEsT0n000000\",\"vars\":"
			    "{\"nickname\":\"会员0号\",\"note\":\"第0位, \\\"欢迎\\\"\"},"
			    "\"enrolled_at\":\"2026-11-01\"}");
			T_EQ_INT(line, 2);
			free(s);
		}
		if (count == ROWS - 1) {
			v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec,
			    "vars"), "nickname");
			snprintf(name, sizeof(name), "会员%d号", ROWS - 1);
			T_CHECK(v != NULL && cJSON_IsString(v) && strcmp(v->valuestring, name) == 0);
			T_EQ_INT(line, ROWS + 1);
		}
		count++;
		cJSON_Delete(rec);
		/*
		 * The steady-state baseline: the reader's buffers and the
		 * allocator's caches (and, under ASan, its quarantine) have
		 * settled by now, so from here on nothing may grow.
		 */
		if (count == WARMUP)
			before = max_rss_kb();
	}
	recipients_progress(r, &done, &total);
	recipients_close(r);
	after = max_rss_kb();

	T_EQ_INT(bad, 0);
	T_EQ_INT(count, ROWS);
	T_EQ_INT(done, (uint64_t)st.st_size);
	T_EQ_INT(total, (uint64_t)st.st_size);
	T_CHECK(opened > 0 && before > 0 && after > 0);
	/*
	 * The file is over 10 MB: a reader holding it would break the first
	 * bound, one leaking or growing per record either. The second bound is
	 * the steady state after the warm-up rows, where nothing may grow.
	 */
	T_CHECK(after - opened < 4096);
	T_CHECK(after - before < 1024);
	if (after - opened >= 4096 || after - before >= 1024)
		fprintf(stderr, "  peak RSS grew %ld KB from open, %ld KB after %d rows, reading %ld rows\n",
		    after - opened, after - before, WARMUP, count);
}

static int
setup(void)
{
	const char	*base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/herald-recip-XXXXXX",
	    base != NULL && *base != '\0' && strlen(base) < 32 ? base : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static void
cleanup(void)
{
	int	i;

	for (i = 0; i < nfiles; i++) {
		unlink(files[i]);
		free(files[i]);
	}
	rmdir(tmpdir);
}

int
main(void)
{
	int	rc;

	if (setup() == -1) {
		perror("mkdtemp");
		return 1;
	}
	/* First, so earlier cases cannot have raised the peak RSS already. */
	T_RUN(test_large_file_constant_memory);
	T_RUN(test_csv_basic);
	T_RUN(test_csv_reserved_columns);
	T_RUN(test_csv_quoting_and_lines);
	T_RUN(test_csv_bom_crlf_blank);
	T_RUN(test_csv_ragged);
	T_RUN(test_csv_utf8);
	T_RUN(test_csv_quote_errors);
	T_RUN(test_csv_long_record);
	T_RUN(test_csv_header_errors);
	T_RUN(test_jsonl);
	T_RUN(test_open_errors);
	T_RUN(test_progress);
	rc = t_report();
	cleanup();
	return rc;
}
