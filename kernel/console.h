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
/* Keyboards (PS/2, USB HID) queue their keys here as the bytes a serial terminal would send
 * (VT100 escape sequences for arrows, Home/End, PgUp/PgDn; 0x03 for Ctrl-C), so the line
 * editor and Ctrl-C work the same at every input. Bytes that do not fit are dropped. */
void console_input(const char *s, size_t n);
/* One byte of input from a keyboard or serial, or -1 when none is waiting. Never blocks. */
int console_getc(void);
/* Ctrl-C seen since the last call (consumes it). Long commands poll this. */
int console_interrupted(void);

#endif
