/*
 * t.h: the unit-test harness. Each test file defines test functions, lists them in
 * main() through T_RUN, and returns t_report(). A failed check prints file:line and
 * the expression and marks the test failed; the run goes on so one report shows all.
 */
#ifndef HERALD_T_H
#define HERALD_T_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int t_failed_checks;
static int t_tests_run, t_tests_failed;
static int t_current_failed;

#define T_CHECK(cond)                                                              \
	do {                                                                           \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			t_failed_checks++;                                                     \
			t_current_failed = 1;                                                  \
		}                                                                          \
	} while (0)

#define T_EQ_INT(a, b)                                                                     \
	do {                                                                                   \
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);                            \
		if (t_a_ != t_b_) {                                                                \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__, #a, t_a_, \
			        t_b_);                                                                 \
			t_failed_checks++;                                                             \
			t_current_failed = 1;                                                          \
		}                                                                                  \
	} while (0)

#define T_EQ_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *t_a_ = (a), *t_b_ = (b);                                                   \
		if (!t_a_ || !t_b_ || strcmp(t_a_, t_b_) != 0) {                                       \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", __FILE__, __LINE__, #a,      \
			        t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)");                            \
			t_failed_checks++;                                                                 \
			t_current_failed = 1;                                                              \
		}                                                                                      \
	} while (0)

#define T_RUN(fn)                                                   \
	do {                                                            \
		t_current_failed = 0;                                       \
		fn();                                                       \
		t_tests_run++;                                              \
		if (t_current_failed) {                                     \
			t_tests_failed++;                                       \
			fprintf(stderr, "FAIL %s\n", #fn);                      \
		}                                                           \
	} while (0)

/* A fixed-seed xorshift64 generator, so a randomised test draws the same cases every run.
   A file wanting other cases sets t_rng_state before its first draw. */
static uint64_t t_rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t
rng(void)
{
	t_rng_state ^= t_rng_state << 13;
	t_rng_state ^= t_rng_state >> 7;
	t_rng_state ^= t_rng_state << 17;
	return t_rng_state;
}

/* Prints the plain closing line CI reads and returns the process exit status. */
static inline int
t_report(void)
{
	printf("%d passed, %d failed\n", t_tests_run - t_tests_failed, t_tests_failed);
	return t_tests_failed ? 1 : 0;
}

#endif
