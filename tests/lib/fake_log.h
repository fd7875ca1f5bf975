/* The event log for host tests of drivers (included once, after the driver's source): every
 * event kept in fake_logs, one a line, for checks to search (a test empties it with
 * fake_logs[0] = '\0'); with DRIVER_TEST_VERBOSE set they are printed as well. */
#ifndef TESTS_LIB_FAKE_LOG_H
#define TESTS_LIB_FAKE_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char fake_logs[16384];

void log_event(enum log_level lvl, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strlen(fake_logs) + strlen(line) + 2 < sizeof(fake_logs)) {
		strcat(fake_logs, line);
		strcat(fake_logs, "\n");
	}
	if (getenv("DRIVER_TEST_VERBOSE"))
		printf("  [%d] %s\n", lvl, line);
}

#endif
