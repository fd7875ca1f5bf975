/* PASS/FAIL lines for host unit tests (read by tests/run.py). */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H
#include <stdio.h>
static int check_failed, check_passed;
#define CHECK(name, cond) do { \
	if (cond) { check_passed++; printf("PASS %s\n", name); } \
	else { check_failed++; printf("FAIL %s: %s (%s:%d)\n", name, #cond, __FILE__, __LINE__); } \
} while (0)
#define CHECK_DONE() (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)
#endif
