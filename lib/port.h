/* The few C library functions cow/ may use. Hosted builds take them from libc; the EFI image
 * gets them from kernel/libc.c. Nothing else from a C library is allowed in cow/. */
#ifndef COW_PORT_H
#define COW_PORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__STDC_HOSTED__) && __STDC_HOSTED__
#include <string.h>
#else
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
#endif

/* snprintf-alike available everywhere (lib/fmt.c); supports
 * %d %i %u %x %X %o %c %s %p %% with flags '-', '0', width, precision, and l/ll/z/j/h/hh. */
int fmt_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
