/*
 * tz.c: owns reading TZif files (RFC 8536, versions 1 to 4) and their POSIX TZ
 * footer, and answering "what offset is in force at this instant" and "which
 * instant is this wall-clock time". Nothing here reads or sets TZ or calls
 * localtime: a zone is plain immutable data once tz_load returns.
 *
 * Times inside are int64_t seconds (TZif transitions are whole seconds); the
 * exported functions take and return milliseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "civil.h"
#include "tz.h"

#define TZ_DEFAULT_DIR	"/usr/share/zoneinfo"
#define TZ_FILE_MAX	(1024 * 1024)	/* real files are under 4 KiB */
#define TZ_NAME_MAX	255
#define DAY_S		86400
/* RFC 8536 asks utoff to stay within this range; it also bounds gap searches. */
#define UTOFF_MIN	(-89999)
#define UTOFF_MAX	93599
/* The Gregorian calendar repeats every 400 years, and so do POSIX TZ rules. */
#define CYCLE_S		((int64_t)146097 * DAY_S)
/* Local times beyond this (about 36 million years) skip gap/overlap handling. */
#define LOCAL_LIMIT_MS	((int64_t)1 << 60)

/* One date rule of a POSIX TZ string: when DST starts or ends in a year. */
struct tz_rule {
	char	 kind;	/* 'J' Julian 1..365 without Feb 29, 'D' zero-based 0..365, 'M' */
	int	 day;	/* J and D: the day number; M: weekday, 0 = Sunday .. 6 */
	int	 week;	/* M only: 1..5, 5 meaning the last such weekday of the month */
	int	 month;	/* M only: 1..12 */
	int32_t	 secs;	/* local time of the change after midnight, -167 h .. 167 h */
};

/* A POSIX TZ string such as "EST5EDT,M3.2.0,M11.1.0" (offsets made east-positive). */
struct tz_posix {
	int32_t		std_off;	/* seconds east of UTC */
	int32_t		dst_off;	/* seconds east of UTC; meaningful when has_dst */
	int		has_dst;
	struct tz_rule	start;		/* into DST, stated in standard local time */
	struct tz_rule	end;		/* out of DST, stated in DST local time */
};

struct tz {
	char		*name;		/* owned */
	size_t		 ntrans;
	int64_t		*trans;		/* UTC seconds, strictly ascending; owned */
	uint8_t		*trans_type;	/* per transition, an index below ntypes; owned */
	size_t		 ntypes;	/* at least 1 */
	int32_t		*types;		/* utoff of each local time type, seconds; owned */
	int		 has_footer;	/* the footer governs after the last transition */
	struct tz_posix	 footer;
};

/* A bounds-checked cursor over the file bytes. */
struct tz_reader {
	const unsigned char	*buf;
	size_t			 len;
	size_t			 pos;
};

/* The six counts of a TZif header, in file order. */
struct tz_counts {
	uint32_t	isut, isstd, leap, time, type, chars;
};

/* ---- POSIX TZ footer ---- */

/* Reads 1..maxdig digits into a value within [0, hi]. */
static int
posix_num(const char **sp, int maxdig, int hi, int *out)
{
	const char *s = *sp;
	int v = 0, n = 0;

	while (*s >= '0' && *s <= '9' && n < maxdig) {
		v = v * 10 + (*s - '0');
		s++;
		n++;
	}
	if (n == 0 || v > hi)
		return -1;
	*sp = s;
	*out = v;
	return 0;
}

/* [+-]h[h[h]][:mm[:ss]] with hours at most max_h; returns signed seconds. */
static int
posix_hms(const char **sp, int max_h, int32_t *out)
{
	const char *s = *sp;
	int sign = 1, h, m = 0, sec = 0;

	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (posix_num(&s, 3, max_h, &h) == -1)
		return -1;
	if (*s == ':') {
		s++;
		if (posix_num(&s, 2, 59, &m) == -1)
			return -1;
		if (*s == ':') {
			s++;
			if (posix_num(&s, 2, 59, &sec) == -1)
				return -1;
		}
	}
	*sp = s;
	*out = sign * (h * 3600 + m * 60 + sec);
	return 0;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, + and -. */
static int
posix_name(const char **sp)
{
	const char *s = *sp;
	size_t n = 0;

	if (*s == '<') {
		for (s++; *s != '>'; s++, n++) {
			if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
			    (*s >= '0' && *s <= '9') || *s == '+' || *s == '-'))
				return -1;
		}
		s++;
	} else {
		for (; (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'); s++)
			n++;
	}
	if (n < 3)
		return -1;
	*sp = s;
	return 0;
}

/* One "date[/time]" of a rule: Jn, n or Mm.w.d; the time defaults to 02:00. */
static int
posix_rule(const char **sp, struct tz_rule *r)
{
	const char *s = *sp;

	memset(r, 0, sizeof(*r));
	if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (posix_num(&s, 3, 365, &r->day) == -1 || r->day < 1)
			return -1;
	} else if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (posix_num(&s, 2, 12, &r->month) == -1 || r->month < 1 || *s++ != '.' ||
		    posix_num(&s, 1, 5, &r->week) == -1 || r->week < 1 || *s++ != '.' ||
		    posix_num(&s, 1, 6, &r->day) == -1)
			return -1;
	} else {
		r->kind = 'D';
		if (posix_num(&s, 3, 365, &r->day) == -1)
			return -1;
	}
	r->secs = 2 * 3600;
	if (*s == '/') {
		s++;
		/* RFC 8536 section 3.3.1 widens POSIX hours to -167..167. */
		if (posix_hms(&s, 167, &r->secs) == -1)
			return -1;
	}
	*sp = s;
	return 0;
}

/* "start[/time],end[/time]" and nothing after it. */
static int
posix_parse_rules(const char *s, struct tz_posix *p)
{
	if (posix_rule(&s, &p->start) == -1 || *s++ != ',' ||
	    posix_rule(&s, &p->end) == -1 || *s != '\0')
		return -1;
	return 0;
}

/* Parses a whole POSIX TZ string. POSIX offsets count west, so signs flip. */
static int
posix_parse(const char *s, struct tz_posix *p)
{
	int32_t off;

	memset(p, 0, sizeof(*p));
	if (posix_name(&s) == -1 || posix_hms(&s, 24, &off) == -1)
		return -1;
	p->std_off = -off;
	if (*s == '\0')
		return 0;
	if (posix_name(&s) == -1)
		return -1;
	p->has_dst = 1;
	p->dst_off = p->std_off + 3600;
	if (*s != ',' && *s != '\0') {
		if (posix_hms(&s, 24, &off) == -1)
			return -1;
		p->dst_off = -off;
	}
	/* No rule given: POSIX leaves it to the implementation; use the US rule. */
	if (*s == '\0')
		return posix_parse_rules("M3.2.0,M11.1.0", p);
	if (*s++ != ',')
		return -1;
	return posix_parse_rules(s, p);
}

/* The day (since 1970-01-01) on which rule r falls in year y. */
static int64_t
rule_day(const struct tz_rule *r, int64_t y)
{
	int64_t jan1 = civil_days_from_ymd(y, 1, 1);
	int64_t first, d;
	int wd, mlen;

	if (r->kind == 'J')
		return jan1 + r->day - 1 + (civil_is_leap(y) && r->day >= 60 ? 1 : 0);
	if (r->kind == 'D')
		return jan1 + r->day;
	first = civil_days_from_ymd(y, r->month, 1);
	wd = (int)civil_floor_mod(first + 4, 7);	/* 1970-01-01 was a Thursday */
	d = (r->day - wd + 7) % 7 + (int64_t)(r->week - 1) * 7;
	mlen = civil_month_days(y, r->month);
	while (d >= mlen)
		d -= 7;
	return first + d;
}

/*
 * The DST changes of years y-2 .. y+2 as UTC seconds: even with 167-hour rule
 * times some change lies before and some after any instant in year y.
 * Starts are at even indexes, ends at odd ones.
 */
static void
posix_events(const struct tz_posix *p, int64_t y, int64_t ev[10])
{
	int i;

	for (i = 0; i < 5; i++) {
		ev[2 * i] = rule_day(&p->start, y - 2 + i) * DAY_S + p->start.secs - p->std_off;
		ev[2 * i + 1] = rule_day(&p->end, y - 2 + i) * DAY_S + p->end.secs - p->dst_off;
	}
}

/* Offset at t for t within a few centuries of the epoch (callers reduce t). */
static int32_t
posix_offset_near(const struct tz_posix *p, int64_t t)
{
	int64_t ev[10], best = INT64_MIN;
	int i, best_i = -1;

	if (!p->has_dst)
		return p->std_off;
	posix_events(p, civil_year_from_days(civil_floor_div(t + p->std_off, DAY_S)), ev);
	for (i = 0; i < 10; i++) {
		/* On a tie the start wins: "DST all year" is written as start == end. */
		if (ev[i] <= t && (ev[i] > best || (ev[i] == best && i % 2 == 0))) {
			best = ev[i];
			best_i = i;
		}
	}
	return best_i >= 0 && best_i % 2 == 0 ? p->dst_off : p->std_off;
}

static int32_t
posix_offset(const struct tz_posix *p, int64_t t)
{
	/* Rules repeat every 400 years; reducing t keeps the year arithmetic small. */
	return posix_offset_near(p, t % CYCLE_S);
}

/* The first DST change strictly after t; -1 when the rule has none. */
static int
posix_next(const struct tz_posix *p, int64_t t, int64_t *when)
{
	/* A truncating remainder, so base = t - near cannot overflow at the int64 ends. */
	int64_t ev[10], near = t % CYCLE_S, base = t - near, best = INT64_MAX;
	int i;

	if (!p->has_dst)
		return -1;
	posix_events(p, civil_year_from_days(civil_floor_div(near + p->std_off, DAY_S)), ev);
	for (i = 0; i < 10; i++)
		if (ev[i] > near && ev[i] < best)
			best = ev[i];
	if (best == INT64_MAX || __builtin_add_overflow(base, best, when))
		return -1;
	return 0;
}

/* ---- lookups ---- */

/* Index of the last transition at or before t; t must be >= trans[0]. */
static size_t
last_trans_at(const struct tz *z, int64_t t)
{
	size_t lo = 0, hi = z->ntrans;	/* trans[lo] <= t < trans[hi] */

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static int32_t
offset_s(const struct tz *z, int64_t t)
{
	if (z->ntrans == 0)
		return z->has_footer ? posix_offset(&z->footer, t) : z->types[0];
	if (t < z->trans[0])
		return z->types[0];
	if (z->has_footer && t >= z->trans[z->ntrans - 1])
		return posix_offset(&z->footer, t);
	return z->types[z->trans_type[last_trans_at(z, t)]];
}

/* The first instant after t at which the offset may change; -1 if none. */
static int
next_change(const struct tz *z, int64_t t, int64_t *when)
{
	if (z->ntrans > 0 && t < z->trans[0]) {
		*when = z->trans[0];
		return 0;
	}
	if (z->ntrans > 0 && t < z->trans[z->ntrans - 1]) {
		*when = z->trans[last_trans_at(z, t) + 1];
		return 0;
	}
	if (z->has_footer)
		return posix_next(&z->footer, t, when);
	return -1;
}

int32_t
tz_offset_at(const struct tz *z, int64_t utc_ms)
{
	return offset_s(z, civil_floor_div(utc_ms, 1000));
}

/*
 * Walks the constant-offset stretches of UTC time that can hold local_ms (offsets
 * are within +-26 h, so a +-2 day window is enough). The first stretch where
 * local_ms - offset falls inside it is the earliest occurrence; if none, local_ms
 * sits in a gap, and is read in the offset in force before that gap.
 */
int64_t
tz_local_to_utc(const struct tz *z, int64_t local_ms)
{
	int64_t ls, seg, seg_end, u, gap_u = 0;
	int32_t off, next_off;
	int have_next, have_gap = 0;

	if (local_ms > LOCAL_LIMIT_MS || local_ms < -LOCAL_LIMIT_MS) {
		/* Saturates instead of overflowing at the int64 ends. */
		if (__builtin_sub_overflow(local_ms,
		    (int64_t)offset_s(z, civil_floor_div(local_ms, 1000)) * 1000, &u))
			return local_ms < 0 ? INT64_MIN : INT64_MAX;
		return u;
	}
	ls = civil_floor_div(local_ms, 1000);
	seg = ls - 2 * DAY_S;
	off = offset_s(z, seg);
	for (;;) {
		have_next = next_change(z, seg, &seg_end) == 0 && seg_end <= ls + 2 * DAY_S;
		u = local_ms - (int64_t)off * 1000;
		if (civil_floor_div(u, 1000) >= seg &&
		    (!have_next || civil_floor_div(u, 1000) < seg_end))
			return u;
		if (!have_next)
			break;
		next_off = offset_s(z, seg_end);
		if (!have_gap && next_off > off && local_ms >= (seg_end + off) * 1000 &&
		    local_ms < (seg_end + next_off) * 1000) {
			have_gap = 1;
			gap_u = u;
		}
		seg = seg_end;
		off = next_off;
	}
	return have_gap ? gap_u : local_ms - (int64_t)offset_s(z, ls) * 1000;
}

/* ---- TZif parsing ---- */

static int
rd_take(struct tz_reader *r, uint64_t n, const unsigned char **out)
{
	if (n > r->len - r->pos)
		return -1;
	*out = r->buf + r->pos;
	r->pos += (size_t)n;
	return 0;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be_time(const unsigned char *p, int tsize)
{
	uint64_t v;

	if (tsize == 4)
		return (int32_t)be32(p);
	v = (uint64_t)be32(p) << 32 | be32(p + 4);
	return v > INT64_MAX ? -(int64_t)(~v) - 1 : (int64_t)v;
}

/* Reads a 44-byte header; *version is 1..4. Counts are checked by the block readers. */
static int
tzif_header(struct tz_reader *r, int *version, struct tz_counts *c)
{
	const unsigned char *p;

	if (rd_take(r, 44, &p) == -1 || memcmp(p, "TZif", 4) != 0)
		return -1;
	if (p[4] == '\0')
		*version = 1;
	else if (p[4] >= '2' && p[4] <= '4')
		*version = p[4] - '0';
	else
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	return 0;
}

static uint64_t
block_size(const struct tz_counts *c, int tsize)
{
	return (uint64_t)c->time * (tsize + 1) + (uint64_t)c->type * 6 + c->chars +
	    (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

/* Transition times and their type indexes; both arrays go to z. */
static int
tzif_transitions(struct tz_reader *r, const struct tz_counts *c, int tsize, struct tz *z)
{
	const unsigned char *times, *idx;
	uint32_t i;

	if (rd_take(r, (uint64_t)c->time * tsize, &times) == -1 ||
	    rd_take(r, c->time, &idx) == -1)
		return -1;
	z->ntrans = c->time;
	z->trans = calloc(c->time ? c->time : 1, sizeof(*z->trans));
	z->trans_type = calloc(c->time ? c->time : 1, 1);
	if (z->trans == NULL || z->trans_type == NULL)
		return -1;
	for (i = 0; i < c->time; i++) {
		z->trans[i] = be_time(times + (size_t)i * tsize, tsize);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			return -1;
		if (idx[i] >= c->type)
			return -1;
		z->trans_type[i] = idx[i];
	}
	return 0;
}

/* Local time types, then the parts this reader does not need, checked and skipped. */
static int
tzif_types(struct tz_reader *r, const struct tz_counts *c, int tsize, struct tz *z)
{
	const unsigned char *p, *flags;
	uint32_t i;
	int32_t utoff;

	if (rd_take(r, (uint64_t)c->type * 6, &p) == -1)
		return -1;
	z->ntypes = c->type;
	z->types = calloc(c->type, sizeof(*z->types));
	if (z->types == NULL)
		return -1;
	for (i = 0; i < c->type; i++, p += 6) {
		utoff = (int32_t)be32(p);
		if (utoff < UTOFF_MIN || utoff > UTOFF_MAX || p[4] > 1 || p[5] >= c->chars)
			return -1;
		z->types[i] = utoff;
	}
	if (rd_take(r, c->chars, &p) == -1 ||
	    rd_take(r, (uint64_t)c->leap * (tsize + 4), &p) == -1 ||
	    rd_take(r, c->isstd, &flags) == -1)
		return -1;
	for (i = 0; i < c->isstd; i++)
		if (flags[i] > 1)
			return -1;
	if (rd_take(r, c->isut, &flags) == -1)
		return -1;
	for (i = 0; i < c->isut; i++)
		if (flags[i] > 1)
			return -1;
	return 0;
}

/*
 * One data block. Leap-second records are refused: with them, transition
 * times count leap seconds and are not POSIX time.
 */
static int
tzif_block(struct tz_reader *r, const struct tz_counts *c, int tsize, struct tz *z)
{
	if (c->type == 0 || c->type > 256 || c->chars == 0 || c->leap != 0 ||
	    (c->isstd != 0 && c->isstd != c->type) || (c->isut != 0 && c->isut != c->type))
		return -1;
	if (block_size(c, tsize) > r->len - r->pos)
		return -1;
	if (tzif_transitions(r, c, tsize, z) == -1 || tzif_types(r, c, tsize, z) == -1)
		return -1;
	return 0;
}

/* The footer: '\n', a POSIX TZ string (possibly empty), '\n'. */
static int
tzif_footer(struct tz_reader *r, struct tz *z)
{
	const unsigned char *p, *nl;
	char tzstr[256];
	size_t n;

	if (rd_take(r, 1, &p) == -1 || *p != '\n')
		return -1;
	nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
	if (nl == NULL)
		return -1;
	n = (size_t)(nl - (r->buf + r->pos));
	if (n >= sizeof(tzstr) || memchr(r->buf + r->pos, '\0', n) != NULL)
		return -1;
	memcpy(tzstr, r->buf + r->pos, n);
	tzstr[n] = '\0';
	r->pos += n + 1;
	if (n == 0)
		return 0;
	if (posix_parse(tzstr, &z->footer) == -1)
		return -1;
	z->has_footer = 1;
	return 0;
}

/* Fills z from a whole TZif file; on -1, z may hold partial arrays for tz_free. */
static int
tzif_parse(const unsigned char *buf, size_t len, struct tz *z)
{
	struct tz_reader r = { buf, len, 0 };
	struct tz_counts c;
	const unsigned char *skip;
	int version, version2;

	if (tzif_header(&r, &version, &c) == -1)
		return -1;
	if (version == 1)
		return tzif_block(&r, &c, 4, z);
	/* Version 2+ readers skip the 32-bit block and use the 64-bit one. */
	if (rd_take(&r, block_size(&c, 4), &skip) == -1 ||
	    tzif_header(&r, &version2, &c) == -1 || version2 < 2)
		return -1;
	if (tzif_block(&r, &c, 8, z) == -1)
		return -1;
	return tzif_footer(&r, z);
}

/* ---- loading ---- */

static int
name_ok(const char *name)
{
	const char *s;
	size_t n = strlen(name);

	if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || strstr(name, "..") != NULL)
		return 0;
	for (s = name; *s != '\0'; s++) {
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || strchr("/_+-.", *s) != NULL))
			return 0;
	}
	return 1;
}

/* Sets *err to `unknown time zone "NAME"` plus detail, the name made printable. */
static void
set_err(char **err, const char *name, const char *detail)
{
	char shown[68];
	size_t i, n;
	int len;

	if (err == NULL)
		return;
	for (i = 0, n = 0; name[i] != '\0' && n < 64; i++, n++)
		shown[n] = (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '"') ? name[i] : '?';
	if (name[i] != '\0') {
		memcpy(shown + n, "...", 3);
		n += 3;
	}
	shown[n] = '\0';
	len = snprintf(NULL, 0, "unknown time zone \"%s\"%s", shown, detail);
	*err = malloc((size_t)len + 1);
	if (*err != NULL)
		snprintf(*err, (size_t)len + 1, "unknown time zone \"%s\"%s", shown, detail);
}

/*
 * Reads a regular file of at most TZ_FILE_MAX bytes into a new buffer the caller
 * frees. Returns 0, -2 when the file does not exist, or -1.
 */
static int
read_file(const char *path, unsigned char **out, size_t *out_len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t len = 0, want;
	ssize_t got;
	int fd, rc = -1;

	/* O_NONBLOCK: a FIFO planted in the zone directory must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1)
		return errno == ENOENT || errno == ENOTDIR ? -2 : -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > TZ_FILE_MAX)
		goto out;
	/* One byte more than stat said, to notice a file that grew meanwhile. */
	want = (size_t)st.st_size + 1;
	if ((buf = malloc(want)) == NULL)
		goto out;
	while (len < want) {
		got = read(fd, buf + len, want - len);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1)
			goto out;
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len != (size_t)st.st_size)
		goto out;
	*out = buf;
	*out_len = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

static int
is_utc_name(const char *name)
{
	return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0;
}

struct tz *
tz_load(const char *name, char **err)
{
	struct tz *z = NULL, *result = NULL;
	unsigned char *buf = NULL;
	const char *dir = getenv("TZDIR"), *detail = "";
	char *path = NULL;
	size_t len = 0, plen;
	int rc;

	if (err != NULL)
		*err = NULL;
	if (name == NULL)
		name = "";
	if (!name_ok(name))
		goto out;
	if (dir == NULL || dir[0] == '\0')
		dir = TZ_DEFAULT_DIR;
	plen = strlen(dir) + strlen(name) + 2;
	detail = ": out of memory";
	if ((path = malloc(plen)) == NULL || (z = calloc(1, sizeof(*z))) == NULL ||
	    (z->name = strdup(name)) == NULL)
		goto out;
	snprintf(path, plen, "%s/%s", dir, name);
	rc = read_file(path, &buf, &len);
	if (rc == -2 && is_utc_name(name)) {
		/* UTC needs no file, so it works on a machine without tzdata. */
		z->ntypes = 1;
		rc = (z->types = calloc(1, sizeof(*z->types))) != NULL ? 0 : -1;
	} else if (rc == 0) {
		detail = ": not a valid TZif file";
		rc = tzif_parse(buf, len, z);
	} else
		detail = "";
	if (rc == 0) {
		result = z;
		z = NULL;
	}
out:
	if (result == NULL)
		set_err(err, name, detail);
	tz_free(z);
	free(buf);
	free(path);
	return result;
}

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->trans_type);
	free(z->types);
	free(z);
}

const char *
tz_name(const struct tz *z)
{
	return z->name;
}
