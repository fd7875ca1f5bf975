/* Console output and input: output is queued and drained by a poller to the serial port (COM1)
 * and drawn on the framebuffer, so a slow or stalled line holds back only output, never a job.
 * Every part of the appliance prints through here. */
#ifndef KERNEL_CONSOLE_H
#define KERNEL_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Queues output. The shell (what a person asked for) waits, yielding to the jobs, until there
 * is room, so none of it is lost; a background job or a poller never waits: when the queue is
 * full its line is dropped (events are in the log) and a note says how much was dropped. */
void console_write(const char *s, size_t n);
void console_puts(const char *s);
int kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kvprintf(const char *fmt, va_list ap);
/* A progress line ("\r..." or a line of its own): sent at once when the line keeps up, else it
 * replaces the one still waiting, so a slow line shows the latest progress, not a backlog. */
void console_progress(const char *s, size_t n);
/* Sends what is queued now, spinning up to timeout_ms (power-off, reboot). */
void console_flush(unsigned timeout_ms);
/* The exception handler: flushes what it can, then every write goes straight out. */
void console_panic(void);

/* Severity for the screen, which draws warnings yellow and errors red (the serial line has the
 * words). console_mark marks the line being written (at the start of a line: the next one);
 * console_mark_since the lines completed since console_line() returned `line` (a failing
 * command's output: the shell knows it failed only when the command returns). Event lines keep
 * their own level. */
enum console_sev { CON_SEV_WARN = 1, CON_SEV_ERROR = 2 };
void console_mark(enum console_sev sev);
uint64_t console_line(void);
void console_mark_since(uint64_t line, enum console_sev sev);

struct console_stats {
	uint64_t queued, sent;          /* bytes into and out of the queue */
	uint64_t dropped_bytes, dropped_lines, coalesced, shell_waits;
	unsigned pending, size;         /* bytes queued now, queue size */
};
void console_get_stats(struct console_stats *st);

/* Keyboards (PS/2, USB HID) queue their keys here as the bytes a serial terminal would send
 * (VT100 escape sequences for arrows, Home/End, PgUp/PgDn; 0x03 for Ctrl-C), so the line
 * editor and Ctrl-C work the same at every input. Shift+PgUp/PgDn (ESC [5;2~ and ESC [6;2~,
 * given in one call) scroll the screen back and forth instead. Bytes that do not fit are
 * dropped. */
void console_input(const char *s, size_t n);
/* One byte of input from a keyboard or serial, or -1 when none is waiting. Never blocks. */
int console_getc(void);
/* Ctrl-C seen since the last call (consumes it). Long commands poll this. */
int console_interrupted(void);

#endif
