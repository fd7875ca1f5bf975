/* Console output and input: serial (COM1) first, mirrored to the framebuffer.
 * Every part of the appliance prints through here. */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

void console_write(const char *s, size_t n);
void console_puts(const char *s);
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvprintf(const char *fmt, va_list ap);
/* One byte of input from serial (or keyboard), or -1 when none is waiting. Never blocks. */
int console_getc(void);
/* Ctrl-C seen since the last call (consumes it). Long commands poll this. */
int console_interrupted(void);

#endif
