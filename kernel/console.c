/* The console: serial first (the line scripts and people read), mirrored to the framebuffer. */
#include "console.h"
#include "fbcon.h"
#include "../lib/port.h"
#include "serial.h"

static int ctrl_c_seen;

/* Keyboard bytes waiting for console_getc; a power of two so the indices wrap cheaply. */
#define INPUT_QUEUE 256
static char input_q[INPUT_QUEUE];
static unsigned input_head, input_tail;

void console_input(const char *s, size_t n)
{
	for (size_t i = 0; i < n && input_head - input_tail < INPUT_QUEUE; i++)
		input_q[input_head++ % INPUT_QUEUE] = s[i];
}

static int input_getc(void)
{
	if (input_head != input_tail)
		return (unsigned char)input_q[input_tail++ % INPUT_QUEUE];
	return serial_getc();
}

void console_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			serial_putc('\r');
		serial_putc(s[i]);
	}
	fbcon_write(s, n);
}

void console_puts(const char *s)
{
	console_write(s, strlen(s));
}

int kvprintf(const char *fmt, va_list ap)
{
	char buf[512];
	int n = fmt_vsnprintf(buf, sizeof(buf), fmt, ap);
	console_write(buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	return n;
}

int kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = kvprintf(fmt, ap);
	va_end(ap);
	return n;
}

int console_getc(void)
{
	int c = input_getc();
	if (c == 0x03)
		ctrl_c_seen = 1;
	return c;
}

int console_interrupted(void)
{
	/* Drain input so a Ctrl-C typed during a long command is seen. */
	int c;
	while (!ctrl_c_seen && (c = input_getc()) >= 0)
		if (c == 0x03)
			ctrl_c_seen = 1;
	int r = ctrl_c_seen;
	ctrl_c_seen = 0;
	return r;
}
