/* What the fuzz targets assert about what a parser hands its callers (abort() is the finding). */
#ifndef TESTS_FUZZ_CHECKS_H
#define TESTS_FUZZ_CHECKS_H
#include <stdlib.h>
#include <string.h>

/* A string the console can print: NUL-terminated within its cap bytes, printable ASCII. */
static inline void assert_printable(const char *s, size_t cap)
{
	const char *end = memchr(s, '\0', cap);
	if (!end)
		abort();
	for (; s < end; s++)
		if (*s < 0x20 || *s > 0x7e)
			abort();
}
#endif
